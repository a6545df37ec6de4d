"""The registry's tables as Spark Declarative Pipelines datasets: what ``pipelines/*.py`` loop over.

:func:`define` turns one declaration (pi_lakeflow.tables.registry.Table) into a ``dp.table`` or
``dp.materialized_view``: a bronze table reads its data source with the pipeline settings; a
silver table is its build function of pi_lakeflow.spark.silver, with its quality rules. A table
that must come after others in the same run (``after``) gets a dependency on them that adds no
rows; in a pipeline that makes everything, the catalog waits for the time series, which gets
the cores first.
"""

from __future__ import annotations

from typing import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pi_lakeflow.config.settings import Settings
from pi_lakeflow.spark import quality, silver
from pi_lakeflow.tables import registry
from pi_lakeflow.tables.registry import BRONZE, STREAMING, VIEW, Table


def after(table: Table, settings: Settings) -> tuple[str, ...]:
    """The tables ``table`` waits for in a pipeline with these settings (those it makes)."""
    made = {t.name for t in registry.made_by(settings)}
    first = ("pi_timeseries",) if settings.tables == "all" and table.table_set == "catalog" \
        and table.layer == BRONZE and not table.after else ()
    return tuple(name for name in (*table.after, *first) if name in made)


def _bronze(spark: SparkSession, table: Table, options: Mapping[str, str], settings: Settings) -> DataFrame:
    """The table's data source, with a dependency on the tables it comes after (it adds no rows:
    the engine then runs it after their flows of the same run)."""
    reader = spark.readStream if table.kind == STREAMING else spark.read
    frame = reader.format(table.source).options(**options).option("table", table.name).load()
    for name in after(table, settings):
        nothing = spark.read.table(name).limit(0)
        frame = frame.unionByName(nothing.select(*(F.lit(None).alias(c) for c in table.schema.names)))
    return frame


def define(dp, spark: SparkSession, table: Table, options: Mapping[str, str], settings: Settings) -> None:
    """Define ``table`` in the pipeline being loaded (``dp``: pyspark.pipelines or Databricks'),
    reading its source with ``options`` (the pipeline configuration, settings.configuration)."""
    if table.layer == BRONZE:
        def query() -> DataFrame:
            return _bronze(spark, table, options, settings)
    else:
        build, context = getattr(silver, table.build), silver.SilverContext(spark, settings)

        def query() -> DataFrame:
            return build(context)
        if table.rules is not None:
            query = quality.expect(dp, quality.rule_set(table.rules, settings.future_tolerance_ns))(query)
    if table.kind == VIEW:
        dp.materialized_view(query, name=table.name, comment=table.comment)
    else:
        dp.table(query, name=table.name, comment=table.comment, partition_cols=list(table.partition_cols) or None)
