"""The registry's tables as Spark Declarative Pipelines datasets: what ``pipelines/*.py`` loop over.

:func:`define` turns one declaration (pi_lakeflow.tables.registry.Table) into a ``dp.table`` or
``dp.materialized_view``: a bronze table reads its data source with the pipeline settings; a
silver table is its build function of pi_lakeflow.spark.silver, with its quality rules. A
``current`` table (the current values of the change log) is an AUTO CDC flow where the engine
has one (Databricks: a streaming table fed by ``dp.create_auto_cdc_flow`` from a temporary view
of the changes, with the rules as expectations), else a materialized view of each key's latest
change (open-source Spark: no MERGE-capable table format there). A table
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
from pi_lakeflow.tables.registry import BRONZE, CURRENT, STREAMING, VIEW, Table


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
    if table.kind == CURRENT:
        _define_current(dp, spark, table, settings)
        return
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


def _define_current(dp, spark: SparkSession, table: Table, settings: Settings) -> None:
    """A table of current values: AUTO CDC (keyed by silver.VALUE_KEY, sequenced by the batch; a
    Delete, or a change whose value does not belong in the table, applied as a delete), or,
    without expectations in the engine, the same computed whole (silver.current_values)."""
    build, context = getattr(silver, table.build), silver.SilverContext(spark, settings)
    rules = quality.rule_set(table.rules, settings.future_tolerance_ns) if table.rules else ()
    partitions = list(table.partition_cols) or None
    if quality.native(dp):
        changes = f"{table.name}_changes"
        dp.temporary_view(quality.expect(dp, rules, routed=True)(lambda: build(context, True).frame), name=changes,
                          comment=f"The changes {table.name} is made of.")
        dp.create_streaming_table(name=table.name, comment=table.comment, partition_cols=partitions)
        dp.create_auto_cdc_flow(target=table.name, source=changes, keys=list(silver.VALUE_KEY),
                                sequence_by=silver.SEQUENCE, apply_as_deletes="action = 'Delete' OR NOT in_table",
                                except_column_list=["action", "in_table"], stored_as_scd_type=1)
    else:
        def current() -> DataFrame:
            changes = build(context, False)
            checked = quality.expect(dp, rules, routed=True)(lambda: changes.frame)
            return silver.current_values(silver.Changes(checked(), changes.columns))
        dp.materialized_view(current, name=table.name, comment=table.comment, partition_cols=partitions)
