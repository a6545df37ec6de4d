"""Parsers of setting values: each takes the text a setting was given and returns its value, or
raises ValueError saying what is accepted (settings.parse adds the key)."""

from __future__ import annotations

import re
from typing import Callable

from pi_client import PiConfigError, to_ns
from pi_client.times import NS_PER_SECOND, parse_duration


def resolve_time(text: str, now: int) -> int:
    """``*`` (now), ``*-DURATION`` (before now) or ISO 8601 with a zone, as nanoseconds."""
    text = text.strip()
    if text == "*":
        return now
    if text.startswith("*-"):
        return now - parse_duration(text[2:])
    try:
        return to_ns(text)
    except PiConfigError:
        raise ValueError(f"'{text}' is not a time; write ISO 8601 with a zone (2024-05-01T00:00:00Z), "
                         f"* for now or *-DURATION such as *-7d") from None


def names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"'{text}' is not true or false")
    return lowered == "true"


def number(kind: type, what: str, low: float, meaning: str = ""):
    """A parser of ``kind`` that must be ``low`` or more (``meaning``: what ``low`` means)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"'{text}' is not {what}") from None
        if value < low:
            raise ValueError(f"'{text}' must be {low}{meaning} or more")
        return value
    return parse


positive_int = number(int, "a whole number", 1)
rate = number(float, "a number", 0, " (no ceiling)")


def choice(accepted: tuple[str, ...]) -> Callable[[str], str]:
    """A parser that accepts one of ``accepted`` in any letter case and returns its spelling."""
    def check(text: str) -> str:
        for option in accepted:
            if text.strip().lower() == option.lower():
                return option
        raise ValueError(f"'{text}' is not one of {', '.join(accepted)}")
    return check


def url(text: str) -> str:
    if not re.match(r"^https?://[^/\s]+", text.strip()):
        raise ValueError(f"'{text}' is not an http(s) URL such as https://pi.example.com/piwebapi")
    return text.strip().rstrip("/")


def time_text(text: str) -> str:
    resolve_time(text, 0)
    return text.strip()


def maybe_time(text: str) -> str:
    return time_text(text) if text.strip() else ""


def duration(text: str) -> int:
    value = parse_duration(text)
    if value < 0:
        raise ValueError(f"'{text}' must not be negative")
    return value


def seconds(text: str) -> float:
    value = duration(text)
    if value == 0:
        raise ValueError(f"'{text}' must be longer than zero")
    return value / NS_PER_SECOND


def step(text: str) -> int:
    """A duration of at least a minute, or ``none`` (0: no bound)."""
    if text.strip().lower() == "none":
        return 0
    value = duration(text)
    if value < 60 * NS_PER_SECOND:
        raise ValueError(f"'{text}' must be at least 1m (or none: a back-fill in one batch)")
    return value


def shard(text: str) -> tuple[int, int]:
    found = re.match(r"^\s*(\d+)\s*/\s*(\d+)\s*$", text)
    if not found or not int(found.group(1)) < int(found.group(2)):
        raise ValueError(f"'{text}' is not INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/1 or 2/4")
    return int(found.group(1)), int(found.group(2))


def schema_name(text: str) -> str:
    if text.strip() and not re.match(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)?$", text.strip()):
        raise ValueError(f"'{text}' is not a schema name; write schema or catalog.schema, or leave it empty")
    return text.strip()


def path(text: str) -> str:
    if not text.strip():
        raise ValueError("an empty path")
    return text.strip()


def plain_text(text: str) -> str:
    return text


def name_filter(text: str) -> str:
    if not text.strip():
        raise ValueError("an empty filter; write * for every tag")
    return text.strip()


def interval(text: str) -> int:
    """An interval of whole seconds, or empty (the table is not made)."""
    if not text.strip():
        return 0
    value = duration(text)
    if value < NS_PER_SECOND or value % NS_PER_SECOND:
        raise ValueError(f"'{text}' must be whole seconds, at least 1s (or empty: no table)")
    return value
