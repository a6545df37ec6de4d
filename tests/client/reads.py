"""What the client's read tests share: the window they read, and rows of the ground truth and of
what was read in one shape (timestamp text, value JSON, flags)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pi_client import RetryPolicy, Tag, schemas
from pi_simulator import GroundTruth
from tests.oracle import truth_json, value_json
from tests.simulators import NOW

START, END = "2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"
QUICK = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)


def tags_of(points) -> list[Tag]:
    return [Tag(p.web_id, p.name, p.point_type) for p in points]


def expected_rows(truth: GroundTruth, point, start=START, end_ticks=NOW - 1) -> list[tuple]:
    """(timestamp text, value JSON, flags) for every recorded value in [start, end)."""
    return [(v["Timestamp"], truth_json(v["Value"]), v["Good"], v["Questionable"], v["Substituted"],
             v["Annotated"]) for v in truth.recorded(point.name, start, end_ticks)]


def pi_text(timestamp) -> str:
    """Arrow timestamp (ns) back to PI's text: 7 fractional digits, trailing zeros dropped."""
    ns = timestamp.value
    seconds = pa.scalar(ns - ns % 1_000_000_000, schemas.TIMESTAMP).as_py().strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{(ns % 1_000_000_000) // 100:07d}".rstrip("0")
    return f"{seconds}.{fraction}Z" if fraction else f"{seconds}Z"


def got_rows(table: pa.Table, point) -> list[tuple]:
    rows = table.filter(pc.equal(table["web_id"], point.web_id)).to_pylist()
    return [(pi_text(pa.scalar(r["timestamp"], schemas.TIMESTAMP)), value_json(r), r["good"],
             r["questionable"], r["substituted"], r["annotated"]) for r in rows]
