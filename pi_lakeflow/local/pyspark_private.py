"""Every use of pyspark's private parts, in one place: what the local engine needs that pyspark
has no public API for. Each was checked against pyspark 4.3.0 (the version constraints.txt
pins for local runs; ``pyspark[pipelines]>=4.3,<5`` in pyproject.toml); tests/test_pyspark_private.py
fails with the line :func:`check` gives when a new pyspark moves one of them.

- ``pyspark.pipelines.cli``, ``.spark_connect_graph_element_registry`` and
  ``.spark_connect_pipeline``: the modules behind ``spark-pipelines run`` (load the spec, register
  the definitions, create the dataflow graph, start a run and read its events). The engine runs
  them itself to show its own terminal and summary.
- ``pyspark.sql.connect.session.SparkSession._start_connect_server`` and the classic session's
  ``_instantiatedSession._jvm``: start this process's own Spark Connect server on a free loopback
  port and read the port it bound (pyspark's local mode would take port 15002 for every run).
"""

from __future__ import annotations

import importlib
import os

#: (module, attribute) of each private part used here.
USED = (
    ("pyspark.pipelines.cli", "load_pipeline_spec"),
    ("pyspark.pipelines.cli", "register_definitions"),
    ("pyspark.pipelines.spark_connect_graph_element_registry", "SparkConnectGraphElementRegistry"),
    ("pyspark.pipelines.spark_connect_pipeline", "create_dataflow_graph"),
    ("pyspark.pipelines.spark_connect_pipeline", "start_run"),
    ("pyspark.sql.connect.session", "SparkSession._start_connect_server"),
    ("pyspark.sql.session", "SparkSession._instantiatedSession"),
)
#: The pyspark versions the parts above were checked against.
CHECKED = ("4.3.0",)


def check() -> list[str]:
    """One line per private part this pyspark no longer has where it was (none: all there)."""
    import pyspark

    moved = []
    for module, attribute in USED:
        try:
            found = importlib.import_module(module)
            for name in attribute.split("."):
                found = getattr(found, name)
        except (ImportError, AttributeError) as error:
            moved.append(f"pyspark {pyspark.__version__} moved {module}.{attribute}, which pi-lakeflow's local "
                         f"engine uses (checked against pyspark {', '.join(CHECKED)}; "
                         f"pi_lakeflow/local/pyspark_private.py): {error}")
    return moved


def load_spec(path):
    """The ``spark-pipelines`` spec at ``path``."""
    from pyspark.pipelines.cli import load_pipeline_spec

    return load_pipeline_spec(path)


def define_graph(spark, spec, spec_path) -> str:
    """A new dataflow graph with every definition of ``spec`` registered in it; its id."""
    from pyspark.pipelines.cli import register_definitions
    from pyspark.pipelines.spark_connect_graph_element_registry import SparkConnectGraphElementRegistry
    from pyspark.pipelines.spark_connect_pipeline import create_dataflow_graph

    graph = create_dataflow_graph(spark, default_catalog=spec.catalog, default_database=spec.database,
                                  sql_conf=spec.configuration)
    register_definitions(spec_path, SparkConnectGraphElementRegistry(spark, graph), spec, spark, graph)
    return graph


def run_events(spark, graph: str, storage: str, refresh: list[str]):
    """Start a run of ``graph`` that refreshes the datasets ``refresh``; its events as they come."""
    from pyspark.pipelines.spark_connect_pipeline import start_run

    return start_run(spark, graph, full_refresh=[], full_refresh_all=False, refresh=refresh, dry=False,
                     storage=storage)


def loopback_session():
    """A Spark Connect session on a server of this process's own, on a free loopback port, with the
    per-run token pyspark makes (pyspark's local mode would take port 15002)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession
    from pyspark.sql.session import SparkSession as ClassicSession

    ConnectSession._start_connect_server(os.environ["SPARK_REMOTE"], {  # local[N], from the launcher's --remote
        "spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": "0"})
    jvm = ClassicSession._instantiatedSession._jvm
    port = getattr(getattr(jvm, "org.apache.spark.sql.connect.service.SparkConnectService$"), "MODULE$").localPort()
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    os.environ.pop("PYSPARK_REMOTE_INIT_CONF_LEN", None)  # the server has them; static ones cannot be set again
    return ConnectSession.builder.remote(f"sc://localhost:{port}") \
        .config("spark.sql.connect.serverStacktrace.enabled", "false").getOrCreate()
