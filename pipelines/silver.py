"""Silver tables: PI values and event frames that pass the quality rules, what did not, and the
rule counts; every table pi_lakeflow.tables.registry declares for this layer (their frames:
pi_lakeflow.spark.silver; their rules: pi_lakeflow.spark.quality).
"""

from pyspark import pipelines as dp

from pi_lakeflow.config.settings import configuration, parse
from pi_lakeflow.spark.definitions import define
from pi_lakeflow.tables import registry

OPTIONS = configuration(lambda key: spark.conf.get(key, None))  # noqa: F821 (the engine provides spark)
SETTINGS = parse(OPTIONS)

for table in registry.made_by(SETTINGS, registry.SILVER):
    define(dp, spark, table, OPTIONS, SETTINGS)  # noqa: F821
