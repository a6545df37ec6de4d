"""Bronze tables of PI System data: time series, the tag catalog, AF and event frames.

Spark Declarative Pipelines definitions: the same file runs on open-source Spark
(``pi-lakeflow run``) and on Databricks Lakeflow. The engine imports this file on its own and
provides ``spark``; everything else comes from the installed ``pi_lakeflow`` package. Settings are
the pipeline configuration (pi_lakeflow.settings.KEYS), read here and handed to the sources.
"""

from pyspark import pipelines as dp
from pyspark.sql import functions as F

from pi_lakeflow import tables
from pi_lakeflow.settings import configuration, parse
from pi_lakeflow.sources import SOURCES

for source in SOURCES:
    spark.dataSource.register(source)  # noqa: F821 (the engine provides spark)

SETTINGS = configuration(lambda key: spark.conf.get(key, None))  # noqa: F821 (secrets: see configuration)
#: all, timeseries or catalog: one pipeline, or two with their own schedules (the bundle's way);
#: updates: the real-time table alone (a continuous pipeline).
TABLES = parse(SETTINGS).tables


def _after(frame, columns, names):
    """``frame`` with a dependency on the tables ``names``, so that the engine runs it after their
    flows of the same run (it adds no rows)."""
    for name in names:
        nothing = spark.read.table(name).limit(0)  # noqa: F821
        frame = frame.unionByName(nothing.select(*(F.lit(None).alias(c) for c in columns)))
    return frame


def _view(name: str, comment: str, after: tuple[str, ...]) -> None:
    @dp.materialized_view(name=name, comment=comment)
    def view():
        found = spark.read.format("pi_catalog").options(**SETTINGS).option("table", name).load()  # noqa: F821
        return _after(found, tables.CATALOG_SOURCE_TABLES[name].names, after)


if TABLES in ("all", "timeseries"):
    @dp.table(name=tables.TIMESERIES_NAME, partition_cols=["date"],
              comment="One row per PI value: typed value, quality flags, tag, exact timestamp, batch and ingestion time.")
    def pi_timeseries():
        return spark.readStream.format("pi_timeseries").options(**SETTINGS).load()  # noqa: F821

    for _name in tables.STATE:
        _view(_name, f"{_name}: from the time-series source's state, after pi_timeseries.", (tables.TIMESERIES_NAME,))

if TABLES == "updates":
    @dp.table(name=tables.UPDATES_NAME, partition_cols=["date"],
              comment="Real time: one row per PI stream-update event (action Add, Update or Delete), per poll.")
    def pi_timeseries_updates():
        return spark.readStream.format("pi_updates").options(**SETTINGS).load()  # noqa: F821

if TABLES in ("all", "catalog"):
    # In one pipeline, the catalog waits for the time series, which gets the cores first.
    for _name in tables.CATALOG:
        _view(_name, f"{_name}: read whole from the PI Web API on each run.",
              (tables.TIMESERIES_NAME,) if TABLES == "all" else ())
    _view(tables.CATALOG_LOG_NAME, "The items the catalog tables' latest reads could not read, with the server's "
                                   "message.", tuple(tables.CATALOG))
