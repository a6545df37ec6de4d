"""PI Web API value JSON to Arrow, without a Python dict per value.

Why these tools (measured on a 122 MB streamsets/batch payload, one core; bench/parse_throughput.py):
``msgspec`` decodes straight into typed ``Struct`` classes in C, about 3x faster than ``orjson`` or
``json`` building dicts, and the typed union ``float | str | bool | State`` sorts each ``Value``
while decoding. Columns are then lifted out with one list pass per field and handed to Arrow with
an explicit type; timestamps are parsed by Arrow's ISO-8601 cast (nanoseconds, so PI's 7
fractional digits survive). pyarrow's own JSON reader cannot be used: it refuses a column whose
values change type (a number, then a digital state object) and wants one object per line. DuckDB's
JSON reader was two orders of magnitude slower on this payload shape.
"""

from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any, Sequence

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import schemas
from .errors import PiDecodeError


class State(msgspec.Struct, gc=False):
    """An object in a ``Value``: a digital or system state, or ``{"Errors": [...]}``."""

    Name: str | None = None
    Value: float | None = None
    IsSystem: bool = False
    Errors: list[str] | None = None


class PiValue(msgspec.Struct, gc=False):
    """A value object (``Action`` only in stream updates)."""

    Timestamp: str
    Value: float | str | bool | State | None = None
    Good: bool = True
    Questionable: bool = False
    Substituted: bool = False
    Annotated: bool = False
    UnitsAbbreviation: str | None = None
    Action: str | None = None


class Stream(msgspec.Struct, gc=False):
    """One item of a streamset reply: a stream's identity and its values."""

    WebId: str = ""
    Name: str = ""
    Path: str = ""
    UnitsAbbreviation: str | None = None
    Items: list[PiValue] = []


class Streams(msgspec.Struct, gc=False):
    Items: list[Stream] = []


class StreamValues(msgspec.Struct, gc=False):
    """The reply of ``streams/{webId}/recorded`` or ``/interpolated``."""

    Items: list[PiValue] = []
    UnitsAbbreviation: str | None = None


class SummaryItem(msgspec.Struct, gc=False):
    Type: str
    Value: PiValue


class SummaryStream(msgspec.Struct, gc=False):
    WebId: str = ""
    Name: str = ""
    UnitsAbbreviation: str | None = None
    Items: list[SummaryItem] = []


class SummaryStreams(msgspec.Struct, gc=False):
    Items: list[SummaryStream] = []


class OwnerValue(msgspec.Struct, gc=False):
    """One item of ``streamsets/{webId}/value``: an attribute and its current value."""

    WebId: str
    Name: str = ""
    Path: str = ""
    Value: PiValue | None = None


class OwnerValues(msgspec.Struct, gc=False):
    Items: list[OwnerValue] = []


class UpdateStream(msgspec.Struct, gc=False):
    """One stream of a stream-updates reply."""

    Source: str = ""
    SourceName: str = ""
    RequestedMarker: str = ""
    LatestMarker: str = ""
    Status: str = ""
    Exception: Any = None
    Events: list[PiValue] = []


class UpdateStreams(msgspec.Struct, gc=False):
    Items: list[UpdateStream] = []


class SystemStatus(msgspec.Struct, gc=False):
    """``GET system/status``: the server's clock among its run state."""
    ServerTime: str
    State: str = ""


class Registration(msgspec.Struct, gc=False):
    Source: str = ""
    SourceName: str = ""
    Status: str = ""
    Exception: Any = None
    LatestMarker: str | None = None


class Registrations(msgspec.Struct, gc=False):
    Items: list[Registration] = []


_decoders: dict[type, msgspec.json.Decoder] = {}
_gc_pauses = 0
_gc_lock = threading.Lock()


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while millions of acyclic objects are made.

    Decoding allocates one Struct per value; the collector would scan them again and again
    (about a third of the decode time). Pauses nest across threads: the collector runs again
    when the last one ends, and only if it was running before the first.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


_gc_was_enabled = True


def decode(content: bytes | msgspec.Raw, kind: type):
    """Decode a reply body into ``kind`` (a Struct above, or any msgspec type)."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        return decoder.decode(content)
    except msgspec.DecodeError as error:
        raise PiDecodeError(f"Unexpected reply shape for {getattr(kind, '__name__', kind)}: {error}") from None


@dataclass
class StreamData:
    """The values of one stream gathered for conversion (possibly several pages, in time order)."""

    web_id: str
    name: str
    units: str | None
    items: list[PiValue]
    #: Ordinal of the first value: a page that restarts at a timestamp continues its numbering.
    first_ordinal: int = 0


def parse_timestamps(texts: pa.Array) -> pa.Array:
    """ISO-8601 strings (``Z`` or an offset, up to 9 fractional digits) to timestamp[ns, UTC]."""
    try:
        return pc.cast(texts, schemas.TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for text in texts.to_pylist():
            if text is not None:
                try:
                    pc.cast(pa.array([text]), schemas.TIMESTAMP)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise PiDecodeError(f"Timestamp '{text}' is not ISO 8601 with a time zone "
                                        "(e.g. 2024-05-01T10:00:00.1234567Z).") from None
        raise


def _scatter(n: int, rows: np.ndarray, values: list, kind: pa.DataType) -> pa.Array:
    """A length-``n`` array holding ``values`` at ``rows`` and nulls elsewhere."""
    if not len(rows):
        return pa.nulls(n, kind)
    index = np.full(n, -1, np.int64)
    index[rows] = np.arange(len(rows))
    return pa.array(values, kind).take(pa.array(index, mask=index < 0))


def value_columns(items: Sequence[PiValue], timestamp_rows: np.ndarray | None = None) -> dict[str, pa.Array]:
    """The typed value columns of ``items`` (see schemas.VALUE_FIELDS), one list pass per field.

    Numbers (the bulk) go to Arrow in one pass; the other values (states, strings, booleans,
    errors) are sorted by class in passes over just those rows and scattered into place.
    ``timestamp_rows`` marks rows whose string value is a timestamp (points of type Timestamp).
    """
    n = len(items)
    raw = [v.Value for v in items]
    doubles = pa.array([x if x.__class__ is float else None for x in raw], pa.float64())
    others = np.flatnonzero(doubles.is_null().to_numpy(zero_copy_only=False)) if doubles.null_count else \
        np.zeros(0, np.int64)
    other_values = [raw[i] for i in others.tolist()]
    classes = np.array([_CLASS_CODES.get(x.__class__, 0) for x in other_values], np.int8)

    def rows_of(code: int) -> tuple[np.ndarray, list]:
        chosen = np.flatnonzero(classes == code)
        return others[chosen], [other_values[i] for i in chosen.tolist()]

    state_rows, states = rows_of(1)
    is_error = np.array([s.Errors is not None for s in states], np.bool_)
    error_rows = state_rows[is_error]
    errors = ["; ".join(s.Errors) or "error" for s, e in zip(states, is_error.tolist()) if e]
    if len(error_rows):
        state_rows = state_rows[~is_error]
        states = [s for s, e in zip(states, is_error.tolist()) if not e]
    string_rows, strings = rows_of(2)
    bool_rows, bools = rows_of(3)
    system = np.zeros(n, np.bool_)
    system[state_rows] = np.array([s.IsSystem for s in states], np.bool_)
    columns: dict[str, pa.Array] = {
        "value_double": doubles,
        "value_string": _scatter(n, string_rows, strings, pa.string()),
        "value_bool": _scatter(n, bool_rows, bools, pa.bool_()),
        "state_name": _scatter(n, state_rows, [s.Name for s in states], pa.string()),
        "state_code": _scatter(n, state_rows, [None if s.Value is None else int(s.Value) for s in states],
                               pa.int32()),
        "is_system": pa.array(system),
        "error": _scatter(n, error_rows, errors, pa.string()),
    }
    stamps = pa.nulls(n, schemas.TIMESTAMP)
    if timestamp_rows is not None and len(string_rows) and timestamp_rows[string_rows].any():
        mask = np.zeros(n, np.bool_)
        mask[string_rows] = timestamp_rows[string_rows]
        texts = columns["value_string"].filter(pa.array(mask))
        stamps = pc.replace_with_mask(stamps, pa.array(mask), parse_timestamps(texts))
    columns["value_timestamp"] = stamps
    # The four quality flags in one pass, as bits of one byte per value.
    flags = np.frombuffer(bytes([v.Good + 2 * v.Questionable + 4 * v.Substituted + 8 * v.Annotated
                                 for v in items]), np.uint8)
    for bit, field in enumerate(("good", "questionable", "substituted", "annotated")):
        columns[field] = pa.array((flags >> bit) & 1 == 1)
    return columns


_CLASS_CODES = {State: 1, str: 2, bool: 3}


def ordinals(stream_index: np.ndarray, ticks: np.ndarray) -> np.ndarray:
    """Position of each value among the values of its stream with the same timestamp (0, 1, ...)."""
    n = len(ticks)
    if n == 0:
        return np.zeros(0, np.int32)
    new_run = np.ones(n, np.bool_)
    new_run[1:] = (ticks[1:] != ticks[:-1]) | (stream_index[1:] != stream_index[:-1])
    positions = np.arange(n)
    return (positions - np.maximum.accumulate(np.where(new_run, positions, 0))).astype(np.int32)


def values_table(streams: Sequence[StreamData], timestamp_web_ids: frozenset[str] = frozenset(),
                 with_action: bool = False) -> pa.Table:
    """One table (schemas.VALUES, or schemas.UPDATES with ``with_action``) for many streams."""
    schema = schemas.UPDATES if with_action else schemas.VALUES
    items = list(chain.from_iterable(s.items for s in streams))
    if not items:
        return schema.empty_table()
    lengths = np.fromiter((len(s.items) for s in streams), np.int64, len(streams))
    stream_index = np.repeat(np.arange(len(streams)), lengths)
    index = pa.array(stream_index)
    timestamps = parse_timestamps(pa.array([v.Timestamp for v in items], pa.string()))
    timestamp_rows = None
    if timestamp_web_ids:
        timestamp_rows = np.repeat(np.array([s.web_id in timestamp_web_ids for s in streams]), lengths)
    columns = value_columns(items, timestamp_rows)
    ticks = timestamps.to_numpy(zero_copy_only=False).view(np.int64)
    ordinal = ordinals(stream_index, ticks)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for i, stream in enumerate(streams):
        if stream.first_ordinal:
            first = offsets[i]
            run = first + 1
            while run < offsets[i + 1] and ticks[run] == ticks[first]:
                run += 1
            ordinal[first:run] += stream.first_ordinal
    columns.update(
        web_id=pa.array([s.web_id for s in streams], pa.string()).take(index),
        name=pa.array([s.name or None for s in streams], pa.string()).take(index),
        timestamp=timestamps,
        ordinal=pa.array(ordinal),
        units=pa.array([s.units if s.units is not None else next((v.UnitsAbbreviation for v in s.items), None)
                        for s in streams], pa.string()).take(index),
    )
    if with_action:
        columns["action"] = pa.array([v.Action or "Add" for v in items], pa.string())
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)
