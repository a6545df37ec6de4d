"""Time for the simulator: 100 ns ticks, PI time strings, and fast ISO 8601 rendering.

All times inside the simulator are ``int`` ticks of 100 ns since the Unix epoch, UTC: the
resolution PI keeps. The server's time zone is UTC, so relative PI time strings (``*-1d``,
``t``, ``y``) are evaluated in UTC.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TICKS_PER_SECOND = 10_000_000
TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
#: AF's "no end time": what an in-progress event frame reports as its EndTime.
AF_MAX_TIME = "9999-12-31T23:59:59Z"

_UNIT_SECONDS = {
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86_400, "day": 86_400, "days": 86_400,
    "w": 604_800, "week": 604_800, "weeks": 604_800,
}
_OFFSET = re.compile(r"\s*([+-])\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", re.IGNORECASE)
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)


class TimeStringError(ValueError):
    """A PI time string that the simulator cannot interpret."""


def parse_duration(text: str) -> int:
    """Parse a PI duration such as ``1h``, ``30m``, ``1.5d`` into ticks."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", text, re.IGNORECASE)
    if not match or match.group(2).lower() not in _UNIT_SECONDS:
        raise TimeStringError(f"Cannot parse duration '{text}'; expected e.g. 10s, 5m, 1h, 1d.")
    return round(float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()] * TICKS_PER_SECOND)


def parse_time(text: str, now: int) -> int:
    """Evaluate a PI time string (``*``, ``t``, ``y``, ``*-1d``, ISO 8601) into ticks."""
    text = text.strip()
    lowered = text.lower()
    for base_word, base in (("*", now), ("today", _midnight(now)), ("t", _midnight(now)),
                            ("yesterday", _midnight(now) - TICKS_PER_DAY),
                            ("y", _midnight(now) - TICKS_PER_DAY)):
        if lowered.startswith(base_word) and (len(lowered) == len(base_word) or lowered[len(base_word)] in "+- "):
            rest = text[len(base_word):]
            return base + _offsets(rest, text)
    match = _ISO.match(text)
    if match:
        return _iso_to_ticks(match)
    raise TimeStringError(
        f"Cannot parse time '{text}'; expected *, t, y, an offset such as *-1d, or ISO 8601."
    )


def _offsets(rest: str, whole: str) -> int:
    total, pos = 0, 0
    while pos < len(rest):
        match = _OFFSET.match(rest, pos)
        if not match or match.group(3).lower() not in _UNIT_SECONDS:
            raise TimeStringError(f"Cannot parse time '{whole}'.")
        sign = -1 if match.group(1) == "-" else 1
        total += sign * round(float(match.group(2)) * _UNIT_SECONDS[match.group(3).lower()] * TICKS_PER_SECOND)
        pos = match.end()
    return total


def _midnight(ticks: int) -> int:
    return ticks - ticks % TICKS_PER_DAY


def _iso_to_ticks(match: re.Match) -> int:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                      int(second or 0), tzinfo=timezone.utc)
    ticks = (int(moment.timestamp()) * TICKS_PER_SECOND
             + int(((fraction or "") + "0000000")[:7]))
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        ticks -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * TICKS_PER_SECOND
    return ticks


def format_tick(ticks: int) -> str:
    """One tick count as PI Web API writes it: UTC, trailing zeros of the fraction trimmed."""
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:07d}".rstrip("0")
    return text + "Z"


@lru_cache(maxsize=1)
def _time_of_day_table() -> pa.Array:
    seconds = np.arange(86_400)
    return pa.array([f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in seconds.tolist()])


@lru_cache(maxsize=1)
def _fraction_tables() -> tuple[pa.Array, pa.Array]:
    """Lookup tables that render a 7-digit fraction as its first 4 digits plus its last 3.

    Entry ``hi`` of the first table is for a fraction whose last 3 digits are zero (trimmed),
    entry ``10_000 + hi`` for one where they are not (all 4 digits kept).
    """
    high = pa.array([("." + f"{i:04d}".rstrip("0")) if i else "" for i in range(10_000)]
                    + ["." + f"{i:04d}" for i in range(10_000)])
    low = pa.array([f"{i:03d}".rstrip("0") for i in range(1_000)])
    return high, low


def format_ticks(ticks: np.ndarray, prefix: str = "", suffix: str = "Z") -> pa.StringArray:
    """Render many tick counts as ISO 8601 strings, vectorized (about 5x Arrow's strftime).

    ``prefix`` and ``suffix`` are glued on in the same pass (the JSON around the value).
    """
    days, within = np.divmod(ticks, TICKS_PER_DAY)
    second_of_day, fraction = np.divmod(within, TICKS_PER_SECOND)
    unique_days, day_index = np.unique(days, return_inverse=True)
    day_text = pa.array([prefix + datetime.fromtimestamp(int(d) * 86_400, tz=timezone.utc).strftime("%Y-%m-%d")
                         for d in unique_days.tolist()])
    high, low = _fraction_tables()
    hi, lo = np.divmod(fraction, 1_000)
    return pc.binary_join_element_wise(
        day_text.take(pa.array(day_index)),
        _time_of_day_table().take(pa.array(second_of_day)),
        high.take(pa.array(hi + 10_000 * (lo != 0))),
        low.take(pa.array(lo)),
        suffix,
        "",
    )
