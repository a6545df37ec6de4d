"""Instants as integer nanoseconds since the Unix epoch (UTC), and their PI Web API text.

The client always sends absolute UTC times with 7 fractional digits (PI keeps 100 ns); relative
PI time strings (``*-1d``) would be read in the server's time zone.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from .errors import PiConfigError

NS_PER_SECOND = 1_000_000_000
#: The resolution of PI timestamps in the Web API's text: 100 ns.
TICK_NS = 100
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hour|d|day|w|week)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> int:
    """A duration as PI writes one (``30s``, ``15m``, ``1h``, ``7d``, ``2w``; also ``sec``, ``min``,
    ``hour``, ``day``, ``week``) in nanoseconds; PiConfigError (a ValueError) for anything else."""
    found = _DURATION.match(str(text or ""))
    if not found:
        raise PiConfigError(f"'{text}' is not a duration; write a number and a unit s, m, h, d or w, e.g. 1h")
    return int(float(found.group(1)) * _UNIT_SECONDS[found.group(2)[0].lower()] * NS_PER_SECOND)


def to_pi_time(ns: int) -> str:
    """``2024-05-01T10:00:00.1234567Z`` for an instant in nanoseconds (truncated to 100 ns)."""
    seconds, rest = divmod(int(ns), NS_PER_SECOND)
    stamp = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // TICK_NS:07d}Z"


def to_ns(value: str | datetime | int) -> int:
    """An instant as nanoseconds: from ISO 8601 text with a zone (``Z`` or an offset), an aware
    ``datetime``, or nanoseconds already."""
    if isinstance(value, bool):
        raise PiConfigError(f"{value!r} is not a time: give ISO 8601 text with a zone or a datetime.")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise PiConfigError(f"The datetime {value} has no time zone; give an aware datetime (UTC).")
        delta = value - datetime(1970, 1, 1, tzinfo=timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1000
    if isinstance(value, str):
        try:
            return pc.cast(pa.array([value.strip()]), pa.timestamp("ns", "UTC"))[0].value
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    raise PiConfigError(f"'{value}' is not a time: give ISO 8601 with a zone, e.g. 2024-05-01T00:00:00Z.")
