"""The tables the pipeline creates: names and Arrow schemas, declared once.

Spark keeps microseconds, PI keeps 100 ns: ``timestamp`` is the value's time for queries (to the
microsecond) and ``timestamp_ns`` the exact instant, so (web_id, timestamp_ns, ordinal) identifies
a value even when two are less than a microsecond apart.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pi_client import schemas

SPARK_TIMESTAMP = pa.timestamp("us", tz="UTC")

TIMESERIES_NAME = "pi_timeseries"

#: pi_timeseries: one row per PI value landed, with where and when it landed.
TIMESERIES = pa.schema([
    *(pa.field(f.name, SPARK_TIMESTAMP, f.nullable) if f.type == schemas.TIMESTAMP else f
      for f in schemas.VALUE_FIELDS),
    pa.field("timestamp_ns", pa.int64(), nullable=False),
    pa.field("batch", pa.int64(), nullable=False),
    pa.field("ingested_at", SPARK_TIMESTAMP, nullable=False),
    pa.field("date", pa.date32(), nullable=False),
])

UPDATES_NAME = "pi_timeseries_updates"
#: pi_timeseries_updates (real time): one row per stream-update event, its ``action`` Add, Update
#: or Delete; ``batch`` is the poll that read it.
UPDATES = pa.schema([*TIMESERIES, pa.field("action", pa.string(), nullable=False)])

#: pi_ingestion_log: one row per batch (one pipeline run) and tag partition. ``partition`` is -1
#: for the tags that the selection names but the server does not have (``failed_tags``).
INGESTION_LOG = pa.schema([
    pa.field("batch", pa.int64(), nullable=False),
    pa.field("partition", pa.int32(), nullable=False),
    pa.field("started_at", SPARK_TIMESTAMP),
    pa.field("seconds", pa.float64()),
    pa.field("tags", pa.int32(), nullable=False),
    pa.field("tags_failed", pa.int32(), nullable=False),
    pa.field("values_read", pa.int64(), nullable=False),
    pa.field("values_landed", pa.int64(), nullable=False),
    pa.field("requests", pa.int64(), nullable=False),
    pa.field("retries", pa.int64(), nullable=False),
    pa.field("bytes_received", pa.int64(), nullable=False),
    pa.field("read_from_min", SPARK_TIMESTAMP),
    pa.field("read_from_max", SPARK_TIMESTAMP),
    pa.field("read_to", SPARK_TIMESTAMP),
    pa.field("failed_tags", pa.map_(pa.string(), pa.string())),
])

#: pi_tag_cursors: where each tag's next read starts, after the latest batch.
TAG_CURSORS = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("cursor", SPARK_TIMESTAMP),
    pa.field("origin", SPARK_TIMESTAMP),
    pa.field("batch", pa.int64(), nullable=False),
    pa.field("last_error", pa.string()),
])

#: Tables read whole on each run (materialized views), by name, with their pi_client schema.
CATALOG = {
    "pi_points": schemas.POINTS,
    "pi_af_elements": schemas.ELEMENTS,
    "pi_af_attributes": schemas.ATTRIBUTES,
    "pi_af_templates": schemas.TEMPLATES,
    "pi_event_frames": schemas.EVENT_FRAMES,
    "pi_event_frame_attributes": schemas.OWNER_VALUES,
}
#: Tables made from the time-series source's state, after pi_timeseries in each run.
STATE = {"pi_ingestion_log": INGESTION_LOG, "pi_tag_cursors": TAG_CURSORS}

CATALOG_LOG_NAME = "pi_catalog_log"
#: pi_catalog_log: the items of the catalog tables' latest read that the server refused or does
#: not have (an element whose attributes AF security hides, a selected name that does not exist),
#: with the server's message; made after the catalog tables in each run.
CATALOG_LOG = pa.schema([
    pa.field("table", pa.string(), nullable=False),
    pa.field("item", pa.string(), nullable=False),
    pa.field("error", pa.string(), nullable=False),
    pa.field("read_at", SPARK_TIMESTAMP, nullable=False),
])

#: Silver and quality tables (pipelines/silver.py; their rules are pi_lakeflow.quality's).
TIMESERIES_SILVER = "pi_timeseries_silver"
TIMESERIES_QUARANTINE = "pi_timeseries_quarantine"
RULE_COUNTS = "pi_timeseries_rule_counts"
QUALITY_METRICS = "pi_quality_metrics"
EVENT_FRAMES_SILVER = "pi_event_frames_silver"
SILVER = (TIMESERIES_SILVER, TIMESERIES_QUARANTINE, RULE_COUNTS, QUALITY_METRICS, EVENT_FRAMES_SILVER)

#: Every table of the batch ``pi_catalog`` source, by name.
CATALOG_SOURCE_TABLES = {**CATALOG, **STATE, CATALOG_LOG_NAME: CATALOG_LOG}

ALL_TABLES = (TIMESERIES_NAME, *CATALOG, CATALOG_LOG_NAME, *STATE, *SILVER, UPDATES_NAME)

#: The time-series pipeline's event log, which Databricks writes as a table of the schema (the
#: bundle's ``event_log`` setting); the dashboard reads it, local runs have none.
EVENT_LOG_NAME = "pi_lakeflow_timeseries_event_log"
PLATFORM_TABLES = (EVENT_LOG_NAME,)


def for_spark(table: pa.Table, schema: pa.Schema | None = None) -> pa.Table:
    """Nanosecond timestamps truncated to Spark's microseconds (schema: the table's own, converted)."""
    target = schema or spark_schema(table.schema)
    columns = [pc.cast(table[f.name], f.type, safe=False) if table.schema.field(f.name).type != f.type
               else table[f.name] for f in target]
    return pa.Table.from_arrays(columns, schema=target)


def spark_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, SPARK_TIMESTAMP, f.nullable) if pa.types.is_timestamp(f.type) else f
                      for f in schema])


def datasets(table_set: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (bronze, silver) datasets that a pipeline with pi.tables ``table_set`` defines:
    all, timeseries (values, state, their silver and metrics), catalog (points, AF, event frames)
    or updates (the real-time table)."""
    if table_set == "updates":
        return (UPDATES_NAME,), ()
    timeseries, catalog = table_set in ("all", "timeseries"), table_set in ("all", "catalog")
    bronze = ((TIMESERIES_NAME, *STATE) if timeseries else ()) + ((*CATALOG, CATALOG_LOG_NAME) if catalog else ())
    silver = (((TIMESERIES_SILVER, TIMESERIES_QUARANTINE, RULE_COUNTS, QUALITY_METRICS) if timeseries else ())
              + ((EVENT_FRAMES_SILVER,) if catalog else ()))
    return bronze, silver
