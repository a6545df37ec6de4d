"""The oracle: the simulator's ground truth as rows and changes, and landed rows in the same shape,
so that a test compares what landed with what PI holds (or reported) without the code under test."""

from __future__ import annotations

import json
from collections import Counter
from typing import Iterable

from pi_client.times import to_ns
from pi_simulator import GroundTruth


def value_json(row: dict) -> str:
    """A typed value row (pi_client.schemas.VALUES) back as the JSON of PI Web API's ``Value``."""
    if row["error"] is not None:
        return json.dumps({"Errors": row["error"].split("; ")}, sort_keys=True)
    if row["state_name"] is not None:
        return json.dumps({"IsSystem": row["is_system"], "Name": row["state_name"], "Value": row["state_code"]},
                          sort_keys=True)
    if row["value_string"] is not None:
        return json.dumps(row["value_string"])
    return json.dumps(row["value_double"])


def truth_json(value) -> str:
    """A ground-truth ``Value`` as value_json writes it (JSON numbers compared as doubles)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return json.dumps(float(value) if number else value, sort_keys=True)


def value_row(row: dict) -> tuple:
    """A landed value (a row of pi_timeseries, as a dict) as the tuple truth_rows makes."""
    return (row["name"], row["timestamp_ns"], row["ordinal"], value_json(row), row["good"], row["questionable"],
            row["substituted"], row["annotated"])


def current_rows(rows: Iterable[dict]) -> Counter:
    """The values a change log (rows of pi_timeseries, as dicts) leaves: per key (tag, time,
    ordinal) its row of the latest batch, unless a Delete; as value_row tuples."""
    latest = {}
    for row in sorted(rows, key=lambda r: r["batch"]):
        latest[(row["name"], row["timestamp_ns"], row["ordinal"])] = row
    return Counter(value_row(r) for r in latest.values() if r["action"] != "Delete")


def landed_changes(rows: Iterable[dict]) -> Counter:
    """Rows of a change log as (action, value_row), a Delete as (action, key)."""
    return Counter((r["action"], (r["name"], r["timestamp_ns"], r["ordinal"]) if r["action"] == "Delete"
                    else value_row(r)) for r in rows)


def truth_changes(before: Iterable[tuple], after: Iterable[tuple]) -> Counter:
    """What changed from one set of truth_rows to another, as landed_changes counts it: a new
    key is an Add, a key whose value differs an Update, a key gone a Delete."""
    old, new = {r[:3]: r for r in before}, {r[:3]: r for r in after}
    found = Counter(("Add", row) if key not in old else ("Update", row)
                    for key, row in new.items() if old.get(key) != row)
    found.update(("Delete", key) for key in old.keys() - new.keys())
    return found


def truth_rows(truth: GroundTruth, points, start_ns: int, end_ns: int) -> list[tuple]:
    """(name, timestamp_ns, ordinal, value JSON, good, questionable, substituted, annotated) of
    every value of ``points`` in [start, end), as the server serves them now."""
    rows = []
    for point in points:
        seen = Counter()
        for value in truth.recorded(point.name, start_ns // 100, end_ns // 100 - 1):
            stamp = to_ns(value["Timestamp"])
            rows.append((point.name, stamp, seen[stamp], truth_json(value["Value"]), value["Good"],
                         value["Questionable"], value["Substituted"], value["Annotated"]))
            seen[stamp] += 1
    return rows


def event_row(row: dict) -> tuple:
    """A landed event: (name, action, timestamp_ns, value JSON, flags)."""
    return (row["name"], row["action"], row["timestamp_ns"], value_json(row), row["good"], row["questionable"],
            row["substituted"], row["annotated"])


def truth_events(truth: GroundTruth, points, since_ticks: int, now_ticks: int) -> Counter:
    """Every change of ``points`` in (since, now], as event_row makes them."""
    found = Counter()
    for point in points:
        for action, value in truth.changes(point.name, since_ticks, now_ticks):
            found[(point.name, action, to_ns(value["Timestamp"]), truth_json(value["Value"]), value["Good"],
                   value["Questionable"], value["Substituted"], value["Annotated"])] += 1
    return found
