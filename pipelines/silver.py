"""Silver tables: PI values and event frames that pass the quality rules, and what did not.

The rules are pi_lakeflow.quality's, declared once: on Databricks they are native expectations
(the event log and the Lakeflow UI show them), on open-source Spark the project applies them.
The quarantine and pi_quality_metrics come from the same constraints on both engines.

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

from pyspark import pipelines as dp
from pyspark.sql import functions as F

from pi_lakeflow import quality, tables
from pi_lakeflow.settings import configuration, parse

SETTINGS = parse(configuration(lambda key: spark.conf.get(key, None)))  # noqa: F821 (the engine provides spark)
TIMESERIES_RULES = quality.timeseries_rules(SETTINGS.future_tolerance_ns)


def _read(name: str):
    """A table of the catalog side: this pipeline's own, or pi.catalog_schema's."""
    return spark.read.table(f"{SETTINGS.catalog_schema}.{name}" if SETTINGS.catalog_schema else name)  # noqa: F821


def _points():
    return _read("pi_points").select("web_id", "point_type", "engineering_units", "span", "zero", "future")


def _af_context():
    """Per PI point: the first (element path, attribute name) that reads it, and how many do."""
    readers = _read("pi_af_attributes").where(F.col("point_web_id").isNotNull())
    first = F.min(F.struct(F.col("element_path"), F.col("name").alias("attribute_name")))
    return (readers.groupBy(F.col("point_web_id").alias("web_id"))
            .agg(first.alias("first"), F.count(F.lit(1)).cast("int").alias("af_references"))
            .select("web_id", "first.element_path", "first.attribute_name", "af_references"))


def _checked():
    """The bronze stream with what the rules and silver need to know about each value's point."""
    values = spark.readStream.table(tables.TIMESERIES_NAME)  # noqa: F821
    return (values.join(F.broadcast(_points()), "web_id", "left")
            .join(F.broadcast(_af_context()), "web_id", "left"))


def _frames():
    """Event frames with their duration, element paths and attribute values (as text)."""
    frames = _read("pi_event_frames")
    elements = _read("pi_af_elements").select(F.col("web_id").alias("element_web_id"), "path")
    referenced = (frames.select("web_id", F.posexplode("ref_element_web_ids").alias("position", "element_web_id"))
                  .join(elements, "element_web_id")
                  .groupBy("web_id").agg(F.sort_array(F.collect_list(F.struct("position", "path"))).alias("found"))
                  .select("web_id", F.col("found.path").alias("element_paths")))
    primary = elements.select(F.col("element_web_id").alias("primary_element_web_id"),
                              F.col("path").alias("primary_element_path"))
    text = F.coalesce("state_name", "value_string", F.col("value_double").cast("string"),
                      F.col("value_bool").cast("string"), "error")
    values = (_read("pi_event_frame_attributes")
              .groupBy("owner_web_id", "attribute_name").agg(F.max(text).alias("text"))
              .groupBy(F.col("owner_web_id").alias("web_id"))
              .agg(F.map_from_entries(F.collect_list(F.struct("attribute_name", "text"))).alias("attribute_values")))
    duration = (F.unix_micros("end_time") - F.unix_micros("start_time")) / 1e6
    return (frames.join(primary, "primary_element_web_id", "left").join(referenced, "web_id", "left")
            .join(values, "web_id", "left").withColumn("duration_seconds", duration))


if SETTINGS.tables in ("all", "timeseries"):
    @dp.table(name=tables.TIMESERIES_SILVER, partition_cols=["date"],
              comment="PI values that pass the drop rules, with their point and AF context.")
    @quality.expect(dp, TIMESERIES_RULES)
    def pi_timeseries_silver():
        return _checked().withColumn("warnings", quality.failed_rules(TIMESERIES_RULES, (quality.WARN,)))

    @dp.table(name=tables.TIMESERIES_QUARANTINE,
              comment="PI values that fail a drop rule: failed_rules, the drop rules; warnings, the warn rules.")
    def pi_timeseries_quarantine():
        checked = _checked()
        return (checked.where(~quality.passes(TIMESERIES_RULES, quality.DROP))
                .withColumn("failed_rules", quality.failed_rules(TIMESERIES_RULES, (quality.DROP,)))
                .withColumn("warnings", quality.failed_rules(TIMESERIES_RULES, (quality.WARN,))))

    @dp.table(name=tables.RULE_COUNTS, comment="Per batch (run) and rule: values passed and failed.")
    def pi_timeseries_rule_counts():
        # Each run is one batch; its counts leave the aggregation when the watermark passes it,
        # which is at the end of the same run.
        rows = spark.sql("SELECT * FROM {rows} WATERMARK run DELAY OF INTERVAL 0 SECONDS",  # noqa: F821
                         rows=_checked().withColumn("run", F.timestamp_seconds("batch")))
        return quality.rule_counts(rows, TIMESERIES_RULES, [F.col("run"), F.col("batch")], F.max("ingested_at"))

    @dp.materialized_view(name=tables.QUALITY_METRICS,
                          comment="Per run, table and rule: rows passed and failed, and the rule's action.")
    def pi_quality_metrics():
        frames = quality.rule_counts(_frames(), quality.EVENT_FRAME_RULES, [F.lit(None).cast("long").alias("batch")],
                                     F.max(F.current_timestamp()))
        return spark.read.table(tables.RULE_COUNTS).unionByName(frames)  # noqa: F821

if SETTINGS.tables in ("all", "catalog"):
    @dp.materialized_view(name=tables.EVENT_FRAMES_SILVER,
                          comment="Event frames that pass the rules, with duration, element paths and attribute values.")
    @quality.expect(dp, quality.EVENT_FRAME_RULES)
    def pi_event_frames_silver():
        return _frames()
