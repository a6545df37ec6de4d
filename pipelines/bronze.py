"""Bronze tables of PI System data: time series, interpolated values and summaries, the tag
catalog, AF and event frames; every table pi_lakeflow.tables.registry declares for this layer.

Spark Declarative Pipelines definitions: the same file runs on open-source Spark
(``pi-lakeflow run``) and on Databricks Lakeflow. The engine imports this file on its own and
provides ``spark``; everything else comes from the installed ``pi_lakeflow`` package. Settings are
the pipeline configuration (pi_lakeflow.config.settings), read here and handed to the sources.
"""

from pyspark import pipelines as dp

from pi_lakeflow.config.settings import configuration, parse
from pi_lakeflow.spark.definitions import define
from pi_lakeflow.spark.sources import SOURCES
from pi_lakeflow.tables import registry

for source in SOURCES:
    spark.dataSource.register(source)  # noqa: F821 (the engine provides spark)

OPTIONS = configuration(lambda key: spark.conf.get(key, None))  # noqa: F821 (secrets: see configuration)
SETTINGS = parse(OPTIONS)

for table in registry.made_by(SETTINGS, registry.BRONZE):
    define(dp, spark, table, OPTIONS, SETTINGS)  # noqa: F821
