"""The Arrow schemas of the tables the sources make, declared once (the registry, registry.py,
says which table has which schema, key, reader and rules).

Spark keeps microseconds, PI keeps 100 ns: ``timestamp`` is the value's time for queries (to the
microsecond) and ``timestamp_ns`` the exact instant, so (web_id, timestamp_ns, ordinal) identifies
a value even when two are less than a microsecond apart.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pi_client import schemas

SPARK_TIMESTAMP = pa.timestamp("us", tz="UTC")

#: The change logs of PI values, pi_timeseries (scheduled runs) and pi_timeseries_updates (real
#: time): one row per change PI made to a value, with where and when it landed. ``action`` is Add
#: (a value PI added, or one read for the first time), Update (its content changed: the row
#: carries the new content) or Delete (PI no longer holds it: the row carries only its key, the
#: value columns null and the flags false). ``batch`` is the batch that read it (a run, or one step of a
#: back-fill: pi.step), or the real-time poll.
TIMESERIES = pa.schema([
    *(pa.field(f.name, SPARK_TIMESTAMP, f.nullable) if f.type == schemas.TIMESTAMP else f
      for f in schemas.VALUE_FIELDS),
    pa.field("timestamp_ns", pa.int64(), nullable=False),
    pa.field("batch", pa.int64(), nullable=False),
    pa.field("action", pa.string(), nullable=False),
    pa.field("ingested_at", SPARK_TIMESTAMP, nullable=False),
    pa.field("date", pa.date32(), nullable=False),  # last: Spark wants partition columns at the end
])

#: pi_ingestion_log: one row per batch (one pipeline run) and tag partition. ``partition`` is -1
#: for the tags that the selection names but the server does not have (``failed_tags``).
#: ``tags_reread`` and ``markers_lost``: with pi.changes markers, the tags read again around a
#: change before their cursor, and those whose marker the server no longer had.
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
    pa.field("tags_reread", pa.int32()),
    pa.field("markers_lost", pa.int32()),
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

#: pi_timeseries_interpolated: each selected tag's value at every pi.interpolated.interval (times
#: aligned to the interval since 1970), the value governing that time, on the line to the next
#: value for a continuous point; ``batch`` is the end of the window it was read in, in seconds.
INTERPOLATED = pa.schema([
    *(pa.field(f.name, SPARK_TIMESTAMP, f.nullable) if f.type == schemas.TIMESTAMP else f
      for f in schemas.VALUE_FIELDS if f.name != "ordinal"),
    pa.field("timestamp_ns", pa.int64(), nullable=False),
    pa.field("batch", pa.int64(), nullable=False),
    pa.field("ingested_at", SPARK_TIMESTAMP, nullable=False),
    pa.field("date", pa.date32(), nullable=False),
])

#: pi_timeseries_summaries: per numeric tag and interval [interval_start, interval_end) of
#: pi.summaries.interval: the time-weighted average, the minimum and maximum of the values
#: recorded in it, their count, and the percent of the interval's time with a good value. A
#: statistic PI cannot compute (no good value) is null.
SUMMARIES = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("interval_start", SPARK_TIMESTAMP, nullable=False),
    pa.field("interval_end", SPARK_TIMESTAMP, nullable=False),
    pa.field("average", pa.float64()),
    pa.field("minimum", pa.float64()),
    pa.field("maximum", pa.float64()),
    pa.field("count", pa.int64()),
    pa.field("percent_good", pa.float64()),
    pa.field("units", pa.string()),
    pa.field("batch", pa.int64(), nullable=False),
    pa.field("ingested_at", SPARK_TIMESTAMP, nullable=False),
    pa.field("date", pa.date32(), nullable=False),
])

#: pi_catalog_log: the items of the catalog tables' latest read that the server refused or does
#: not have (an element whose attributes AF security hides, a selected name that does not exist),
#: with the server's message; made after the catalog tables in each run.
CATALOG_LOG = pa.schema([
    pa.field("table", pa.string(), nullable=False),
    pa.field("item", pa.string(), nullable=False),
    pa.field("error", pa.string(), nullable=False),
    pa.field("read_at", SPARK_TIMESTAMP, nullable=False),
])


def for_spark(table: pa.Table, schema: pa.Schema | None = None) -> pa.Table:
    """Nanosecond timestamps truncated to Spark's microseconds (schema: the table's own, converted)."""
    target = schema or spark_schema(table.schema)
    columns = [pc.cast(table[f.name], f.type, safe=False) if table.schema.field(f.name).type != f.type
               else table[f.name] for f in target]
    return pa.Table.from_arrays(columns, schema=target)


def spark_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, SPARK_TIMESTAMP, f.nullable) if pa.types.is_timestamp(f.type) else f
                      for f in schema])
