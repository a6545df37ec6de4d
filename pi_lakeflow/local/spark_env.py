"""The Spark environment of the local commands: the settings every local JVM gets, the
loopback-only network, a quiet classic session for queries, and Spark's errors as one line."""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pi_lakeflow.local.config import LocalConfig


def spark_confs(config: LocalConfig) -> dict[str, str]:
    """Static Spark settings of a local run or query: the persistent catalog, no console noise."""
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(config.warehouse),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={config.metastore}",
        # The current-value views read the whole change log each run (silver.current_values); with
        # Spark's 1 GB default, their earlier sort of the README's pi.yml (90 M values) ran out of
        # heap. A ceiling, not an allocation.
        "spark.driver.memory": "6g",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        # The driver's ports (RPC, block manager) on the loopback address only: nothing of a local
        # run listens where the network reaches it.
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        **config.spark_conf,
    }


#: Every process a local run starts resolves its own address as the loopback one.
LOOPBACK_ENVIRONMENT = {"SPARK_LOCAL_IP": "127.0.0.1"}


def write_spark_conf_dir(config: LocalConfig) -> Path:
    """A SPARK_CONF_DIR for the run: spark-defaults.conf reaches every JVM the launcher starts
    (``--conf`` does not reach its Spark Connect server), and Spark logs errors only."""
    folder = config.state_dir / "pipeline" / "spark-conf"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spark-defaults.conf").write_text(
        "".join(f"{key} {value}\n" for key, value in spark_confs(config).items()), encoding="utf-8")
    shutil.copy2(Path(__file__).parent / "log4j2.properties", folder / "log4j2.properties")
    return folder


def spark_home() -> Path:
    import pyspark
    return Path(pyspark.__file__).parent


def local_session(config: LocalConfig, catalog: bool = True, verbose: bool = False):
    """A classic SparkSession over the local catalog (streaming), as quiet as a run; without
    ``catalog`` an empty in-memory one, which needs neither the metastore nor its lock (queries
    and the report: query.folder_session). Unless ``verbose``, what the JVM writes on its own
    (its incubator-modules warning, Spark's log-level notice, any later log line) goes to
    :func:`spark_output` instead of the terminal."""
    import logging

    from pyspark.sql import SparkSession

    os.environ.update(LOOPBACK_ENVIRONMENT)
    os.environ["SPARK_CONF_DIR"] = str(write_spark_conf_dir(config))
    os.environ["PYSPARK_PYTHON"] = sys.executable  # Python workers (data sources) with this environment
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)  # the error is reported once, by us
    builder = SparkSession.builder.appName("pi-lakeflow query").master(f"local[{config.cores}]")
    for key, value in spark_confs(config).items():
        builder = builder.config(key, value)
    if not catalog:
        builder = builder.config("spark.sql.catalogImplementation", "in-memory")
    if verbose:
        return builder.getOrCreate()
    log = spark_output(config)
    try:
        with _stderr_to(log):  # the JVM starts here and keeps this stderr
            return builder.getOrCreate()
    except Exception:
        print(f"(Spark's own output is in {log})", file=sys.stderr)
        raise


def spark_output(config: LocalConfig) -> Path:
    """The file where the JVM of a query, report or stream writes its own lines."""
    return config.state_dir / "spark-output.log"


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send this process's standard error (file descriptor 2, which child processes inherit) to
    ``path`` (appended) while the block runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def spark_error(error: BaseException) -> str:
    """A Spark error as one line: its error class and the first line that says something (Spark's
    messages may start with a blank line, and carry the query plan after the first line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    condition = getattr(error, "getCondition", lambda: None)()
    return text if not condition or condition in text else f"[{condition}] {text}"
