"""The silver tables' frames: PI values and event frames that pass the quality rules, and what did
not. One function per silver table of the registry (its ``build``), each taking a
:class:`SilverContext`; pi_lakeflow.spark.definitions defines them.

The rules are pi_lakeflow.spark.quality's, declared once: on Databricks they are native
expectations (the event log and the Lakeflow UI show them), on open-source Spark the project
applies them. The quarantine and pi_quality_metrics come from the same constraints on both engines.

* pi_timeseries_silver: PI's current values (bronze is the change log: each key's latest change,
  unless a Delete) that pass the drop rules, one row per (web_id, timestamp_ns, ordinal), with
  their point (type, engineering units, span, zero) and AF context (the first element path and
  attribute name that reads the point, and how many attributes do), and ``warnings``: the warn
  rules they fail. An edit replaces the value; a value PI deleted leaves.
* pi_timeseries_quarantine: the current values that fail a drop rule, with ``failed_rules``
  (the drop rules they fail) and ``warnings``. A value edited from bad to good moves to silver.
* pi_quality_metrics: per rule, the current values that pass and fail it (``batch``: the latest
  run they come from), and the event frame rules' counts.
* pi_event_frames_silver: frames that pass, with duration, element paths and attribute values.

Both current-value tables are declared ``kind=current`` in the registry: their build function
returns :class:`Changes`: the change rows with the table's columns, ``action`` and ``in_table``
(whether the row's value belongs in this table); pi_lakeflow.spark.definitions makes them with
AUTO CDC where the engine has it (Databricks) and as each key's latest change otherwise
(:func:`current_values`). Their columns are named here, not found by analysis: Spark Connect
analyses a plan that drops columns when it is registered, before the tables it reads exist.

Tables that another pipeline makes (pi.tables timeseries or catalog) are read from
pi.catalog_schema, or from this pipeline's schema when that is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from pi_lakeflow.config.settings import Settings
from pi_lakeflow.spark import quality
from pi_lakeflow.tables.schemas import TIMESERIES

_POINT_COLUMNS = ("point_type", "engineering_units", "span", "zero", "future")
_AF_COLUMNS = ("element_path", "attribute_name", "af_references")
#: The columns of pi_timeseries_silver; the quarantine adds ``failed_rules``.
SILVER_COLUMNS = (*(n for n in TIMESERIES.names if n != "action"), *_POINT_COLUMNS, *_AF_COLUMNS, "warnings")


@dataclass(frozen=True)
class SilverContext:
    spark: SparkSession
    settings: Settings

    @property
    def timeseries_rules(self) -> tuple[quality.Rule, ...]:
        return quality.timeseries_rules(self.settings.future_tolerance_ns)

    def catalog(self, name: str) -> DataFrame:
        """A table of the catalog side: this pipeline's own, or pi.catalog_schema's."""
        schema = self.settings.catalog_schema
        return self.spark.read.table(f"{schema}.{name}" if schema else name)


@dataclass(frozen=True)
class Changes:
    """The change rows a current-value table is made of: ``frame`` has the table's ``columns``,
    ``action`` and ``in_table`` (whether the row's value belongs in the table)."""

    frame: DataFrame
    columns: tuple[str, ...]


def _points(context: SilverContext) -> DataFrame:
    return context.catalog("pi_points").select("web_id", *_POINT_COLUMNS)


def _af_context(context: SilverContext) -> DataFrame:
    """Per PI point: the first (element path, attribute name) that reads it, and how many do."""
    readers = context.catalog("pi_af_attributes").where(F.col("point_web_id").isNotNull())
    first = F.min(F.struct(F.col("element_path"), F.col("name").alias("attribute_name")))
    return (readers.groupBy(F.col("point_web_id").alias("web_id"))
            .agg(first.alias("first"), F.count(F.lit(1)).cast("int").alias("af_references"))
            .select("web_id", *(f"first.{c}" for c in _AF_COLUMNS[:2]), _AF_COLUMNS[2]))


#: What identifies a PI value; the key of the current-value tables.
VALUE_KEY = ("web_id", "timestamp_ns", "ordinal")
#: The column that orders a key's changes: the run (batch) that landed them.
SEQUENCE = "batch"


def _checked(context: SilverContext, stream: bool) -> DataFrame:
    """The bronze change log (a stream, or read whole) with what the rules and silver need to
    know about each value's point."""
    reader = context.spark.readStream if stream else context.spark.read
    values = reader.table("pi_timeseries")
    return (values.join(F.broadcast(_points(context)), "web_id", "left")
            .join(F.broadcast(_af_context(context)), "web_id", "left"))


def current_values(changes: Changes) -> DataFrame:
    """Each key's latest change that is not a Delete and belongs in the table (``in_table``),
    with the table's columns: what AUTO CDC (SCD type 1, sequenced by batch, a Delete or a change
    that does not belong applied as a delete) leaves, computed whole.

    Bronze lands a key's Add once (again only after a Delete), and edits and deletes are few
    beside the values, so the keys that ever had an Update or a Delete are collected and sent to
    every task: the other keys' single Add is taken as it is, without a shuffle or a sort of the
    whole change log; only the changed keys' rows are ranked by batch."""
    frame, key, kept = changes.frame, list(VALUE_KEY), (*changes.columns, "action", "in_table")
    changed = F.broadcast(frame.where("action != 'Add'").select(*key).distinct())
    latest = Window.partitionBy(*key).orderBy(F.col(SEQUENCE).desc())
    edited = (frame.join(changed, key, "left_semi").withColumn("change_rank", F.row_number().over(latest))
              .where("change_rank = 1").select(*kept))
    added = frame.join(changed, key, "left_anti").select(*kept)
    return added.unionByName(edited).where("action != 'Delete' AND in_table").select(*changes.columns)


def _frames(context: SilverContext) -> DataFrame:
    """Event frames with their duration, element paths and attribute values (as text)."""
    frames = context.catalog("pi_event_frames")
    elements = context.catalog("pi_af_elements").select(F.col("web_id").alias("element_web_id"), "path")
    referenced = (frames.select("web_id", F.posexplode("ref_element_web_ids").alias("position", "element_web_id"))
                  .join(elements, "element_web_id")
                  .groupBy("web_id").agg(F.sort_array(F.collect_list(F.struct("position", "path"))).alias("found"))
                  .select("web_id", F.col("found.path").alias("element_paths")))
    primary = elements.select(F.col("element_web_id").alias("primary_element_web_id"),
                              F.col("path").alias("primary_element_path"))
    text = F.coalesce("state_name", "value_string", F.col("value_double").cast("string"),
                      F.col("value_bool").cast("string"), "error")
    values = (context.catalog("pi_event_frame_attributes")
              .groupBy("owner_web_id", "attribute_name").agg(F.max(text).alias("text"))
              .groupBy(F.col("owner_web_id").alias("web_id"))
              .agg(F.map_from_entries(F.collect_list(F.struct("attribute_name", "text"))).alias("attribute_values")))
    duration = (F.unix_micros("end_time") - F.unix_micros("start_time")) / 1e6
    return (frames.join(primary, "primary_element_web_id", "left").join(referenced, "web_id", "left")
            .join(values, "web_id", "left").withColumn("duration_seconds", duration))


def timeseries_silver(context: SilverContext, stream: bool) -> Changes:
    rules = context.timeseries_rules
    frame = (_checked(context, stream).withColumn("warnings", quality.failed_rules(rules, (quality.WARN,)))
             .withColumn("in_table", quality.passes(rules, quality.DROP)))
    return Changes(frame, SILVER_COLUMNS)


def timeseries_quarantine(context: SilverContext, stream: bool) -> Changes:
    rules = context.timeseries_rules
    frame = (_checked(context, stream)
             .withColumn("failed_rules", quality.failed_rules(rules, (quality.DROP,)))
             .withColumn("warnings", quality.failed_rules(rules, (quality.WARN,)))
             .withColumn("in_table", ~quality.passes(rules, quality.DROP)))
    return Changes(frame, (*SILVER_COLUMNS, "failed_rules"))


def quality_metrics(context: SilverContext) -> DataFrame:
    current = context.spark.read.table("pi_timeseries_silver").unionByName(
        context.spark.read.table("pi_timeseries_quarantine"), allowMissingColumns=True)
    values = quality.rule_counts(current, context.timeseries_rules, [], F.max("batch"), F.max("ingested_at"))
    frames = quality.rule_counts(_frames(context), quality.EVENT_FRAME_RULES, [], F.lit(None).cast("long"),
                                 F.max(F.current_timestamp()))
    return values.unionByName(frames)


def event_frames_silver(context: SilverContext) -> DataFrame:
    return _frames(context)

