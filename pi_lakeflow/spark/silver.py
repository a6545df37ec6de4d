"""The silver tables' frames: PI values and event frames that pass the quality rules, and what did
not. One function per silver table of the registry (its ``build``), each taking a
:class:`SilverContext`; pi_lakeflow.spark.definitions defines them.

The rules are pi_lakeflow.spark.quality's, declared once: on Databricks they are native
expectations (the event log and the Lakeflow UI show them), on open-source Spark the project
applies them. The quarantine and pi_quality_metrics come from the same constraints on both engines.

* pi_timeseries_silver: bronze rows that pass the drop rules, with their point (type, engineering
  units, span, zero) and AF context (the first element path and attribute name that reads the
  point, and how many attributes do), and ``warnings``: the warn rules they fail. Bronze holds
  each value once per version PI showed (re-reads are dropped there), and so does silver: an
  edit is a later row with the same (web_id, timestamp_ns, ordinal), flagged substituted.
* pi_timeseries_quarantine: the rows that fail a drop rule, with ``failed_rules`` (the drop
  rules they fail) and ``warnings``.
* pi_timeseries_rule_counts: per batch (one run) and rule, rows passed and failed; counted as
  the rows stream in, a batch's counts are final when its run ends.
* pi_quality_metrics: those counts and the event frame rules' counts of the latest run.
* pi_event_frames_silver: frames that pass, with duration, element paths and attribute values.

Tables that another pipeline makes (pi.tables timeseries or catalog) are read from
pi.catalog_schema, or from this pipeline's schema when that is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from pi_lakeflow.config.settings import Settings
from pi_lakeflow.spark import quality


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


def _points(context: SilverContext) -> DataFrame:
    return context.catalog("pi_points").select("web_id", "point_type", "engineering_units", "span", "zero", "future")


def _af_context(context: SilverContext) -> DataFrame:
    """Per PI point: the first (element path, attribute name) that reads it, and how many do."""
    readers = context.catalog("pi_af_attributes").where(F.col("point_web_id").isNotNull())
    first = F.min(F.struct(F.col("element_path"), F.col("name").alias("attribute_name")))
    return (readers.groupBy(F.col("point_web_id").alias("web_id"))
            .agg(first.alias("first"), F.count(F.lit(1)).cast("int").alias("af_references"))
            .select("web_id", "first.element_path", "first.attribute_name", "af_references"))


def _checked(context: SilverContext) -> DataFrame:
    """The bronze stream with what the rules and silver need to know about each value's point."""
    values = context.spark.readStream.table("pi_timeseries")
    return (values.join(F.broadcast(_points(context)), "web_id", "left")
            .join(F.broadcast(_af_context(context)), "web_id", "left"))


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


def timeseries_silver(context: SilverContext) -> DataFrame:
    rules = context.timeseries_rules
    return _checked(context).withColumn("warnings", quality.failed_rules(rules, (quality.WARN,)))


def timeseries_quarantine(context: SilverContext) -> DataFrame:
    rules = context.timeseries_rules
    return (_checked(context).where(~quality.passes(rules, quality.DROP))
            .withColumn("failed_rules", quality.failed_rules(rules, (quality.DROP,)))
            .withColumn("warnings", quality.failed_rules(rules, (quality.WARN,))))


def timeseries_rule_counts(context: SilverContext) -> DataFrame:
    # Each run is one batch; its counts leave the aggregation when the watermark passes it,
    # which is at the end of the same run.
    rows = context.spark.sql("SELECT * FROM {rows} WATERMARK run DELAY OF INTERVAL 0 SECONDS",
                             rows=_checked(context).withColumn("run", F.timestamp_seconds("batch")))
    return quality.rule_counts(rows, context.timeseries_rules, [F.col("run"), F.col("batch")], F.max("ingested_at"))


def quality_metrics(context: SilverContext) -> DataFrame:
    frames = quality.rule_counts(_frames(context), quality.EVENT_FRAME_RULES,
                                 [F.lit(None).cast("long").alias("batch")], F.max(F.current_timestamp()))
    return context.spark.read.table("pi_timeseries_rule_counts").unionByName(frames)


def event_frames_silver(context: SilverContext) -> DataFrame:
    return _frames(context)

