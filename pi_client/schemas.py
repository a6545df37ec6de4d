"""The Arrow schemas of everything pi_client returns, declared once.

Timestamps are ``timestamp[ns, UTC]``: PI keeps 100 ns, so two values 300 ns apart stay distinct
and ordered. Names follow the PI Web API fields in snake_case.
"""

from __future__ import annotations

import pyarrow as pa

TIMESTAMP = pa.timestamp("ns", tz="UTC")

#: One row per PI value (recorded, interpolated or a stream-update event).
#: ``ordinal`` numbers the values that share one timestamp of one stream (0, 1, ...), so that
#: (web_id, timestamp, ordinal) identifies a value while genuine duplicate timestamps survive.
#: Exactly one of the value_* / state_* / error groups is set, by what the value was:
#: a number -> value_double; a string -> value_string; a boolean -> value_bool; a timestamp point's
#: value -> value_timestamp (and value_string); a digital or system state -> state_name,
#: state_code, is_system (value_double null); ``{"Errors": [...]}`` -> error.
VALUE_FIELDS = [
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("timestamp", TIMESTAMP, nullable=False),
    pa.field("ordinal", pa.int32(), nullable=False),
    pa.field("value_double", pa.float64()),
    pa.field("value_string", pa.string()),
    pa.field("value_bool", pa.bool_()),
    pa.field("value_timestamp", TIMESTAMP),
    pa.field("state_name", pa.string()),
    pa.field("state_code", pa.int32()),
    pa.field("is_system", pa.bool_(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("good", pa.bool_(), nullable=False),
    pa.field("questionable", pa.bool_(), nullable=False),
    pa.field("substituted", pa.bool_(), nullable=False),
    pa.field("annotated", pa.bool_(), nullable=False),
    pa.field("units", pa.string()),
]
VALUES = pa.schema(VALUE_FIELDS)

#: Stream-update events: a value plus what happened to it ("Add", "Update" or "Delete").
UPDATES = pa.schema([*VALUE_FIELDS, pa.field("action", pa.string(), nullable=False)])

#: Summary values: one row per stream, summary type and interval start.
SUMMARIES = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("summary_type", pa.string(), nullable=False),
    pa.field("timestamp", TIMESTAMP, nullable=False),
    pa.field("value_double", pa.float64()),
    pa.field("state_name", pa.string()),
    pa.field("good", pa.bool_(), nullable=False),
    pa.field("units", pa.string()),
])

#: What happened to each tag of a unit of work. ``cursor`` is where the next read starts: the
#: window's end after a complete read, the unchanged start when the tag failed (``error`` says why).
OUTCOMES = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("start", TIMESTAMP, nullable=False),
    pa.field("cursor", TIMESTAMP, nullable=False),
    pa.field("values", pa.int64(), nullable=False),
    pa.field("pages", pa.int32(), nullable=False),
    pa.field("error", pa.string()),
])

DATA_SERVERS = pa.schema([
    pa.field("web_id", pa.string(), nullable=False), pa.field("id", pa.string()), pa.field("name", pa.string()),
    pa.field("path", pa.string()), pa.field("is_connected", pa.bool_()), pa.field("server_version", pa.string()),
])

#: PI points with their metadata (discovery).
POINTS = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("id", pa.int64()),
    pa.field("name", pa.string(), nullable=False),
    pa.field("path", pa.string()),
    pa.field("descriptor", pa.string()),
    pa.field("point_class", pa.string()),
    pa.field("point_type", pa.string()),
    pa.field("digital_set_name", pa.string()),
    pa.field("engineering_units", pa.string()),
    pa.field("span", pa.float64()),
    pa.field("zero", pa.float64()),
    pa.field("step", pa.bool_()),
    pa.field("future", pa.bool_()),
])

ASSET_SERVERS = pa.schema([
    pa.field("web_id", pa.string(), nullable=False), pa.field("id", pa.string()), pa.field("name", pa.string()),
    pa.field("path", pa.string()), pa.field("is_connected", pa.bool_()),
])

ASSET_DATABASES = pa.schema([
    pa.field("web_id", pa.string(), nullable=False), pa.field("id", pa.string()), pa.field("name", pa.string()),
    pa.field("path", pa.string()), pa.field("description", pa.string()),
])

#: AF elements; ``parent_path`` and ``depth`` come from the path (the API has no parent field):
#: depth 1 is a root element of the database.
ELEMENTS = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("id", pa.string()),
    pa.field("name", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("parent_path", pa.string()),
    pa.field("depth", pa.int32(), nullable=False),
    pa.field("template_name", pa.string()),
    pa.field("category_names", pa.list_(pa.string())),
    pa.field("description", pa.string()),
    pa.field("has_children", pa.bool_()),
])

#: AF attributes; ``point_web_id`` / ``point_path`` name the PI point a "PI Point" reference reads.
ATTRIBUTES = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("id", pa.string()),
    pa.field("element_web_id", pa.string(), nullable=False),
    pa.field("element_path", pa.string()),
    pa.field("name", pa.string(), nullable=False),
    pa.field("path", pa.string()),
    pa.field("type", pa.string()),
    pa.field("units", pa.string()),
    pa.field("data_reference", pa.string()),
    pa.field("config_string", pa.string()),
    pa.field("is_configuration_item", pa.bool_()),
    pa.field("point_web_id", pa.string()),
    pa.field("point_path", pa.string()),
])

#: Element templates; event frame templates have instance_type "EventFrame".
TEMPLATES = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("id", pa.string()),
    pa.field("name", pa.string(), nullable=False),
    pa.field("path", pa.string()),
    pa.field("description", pa.string()),
    pa.field("instance_type", pa.string()),
    pa.field("base_template", pa.string()),
    pa.field("category_names", pa.list_(pa.string())),
])

#: Event frames; ``end_time`` is null while the frame is in progress.
EVENT_FRAMES = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("id", pa.string()),
    pa.field("name", pa.string(), nullable=False),
    pa.field("path", pa.string()),
    pa.field("description", pa.string()),
    pa.field("template_name", pa.string()),
    pa.field("start_time", TIMESTAMP, nullable=False),
    pa.field("end_time", TIMESTAMP),
    pa.field("in_progress", pa.bool_(), nullable=False),
    pa.field("severity", pa.string()),
    pa.field("category_names", pa.list_(pa.string())),
    pa.field("ref_element_web_ids", pa.list_(pa.string())),
    pa.field("primary_element_web_id", pa.string()),
    pa.field("is_acknowledged", pa.bool_()),
    pa.field("acknowledged_by", pa.string()),
    pa.field("can_be_acknowledged", pa.bool_()),
    pa.field("is_annotated", pa.bool_()),
    pa.field("is_locked", pa.bool_()),
    pa.field("are_values_captured", pa.bool_()),
])

#: One attribute value of one owner (event frame or element), from ``streamsets/{webId}/value``.
OWNER_VALUES = pa.schema([
    pa.field("owner_web_id", pa.string(), nullable=False),
    pa.field("attribute_web_id", pa.string(), nullable=False),
    pa.field("attribute_name", pa.string()),
    *[f for f in VALUE_FIELDS if f.name not in ("web_id", "name", "ordinal")],
])
