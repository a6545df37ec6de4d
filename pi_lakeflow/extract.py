"""The time-series extraction, apart from Spark: plan a batch on the driver, read one tag partition.

Per tag, a batch reads ``[read_from, end)`` where ``read_from`` is the tag's cursor minus the
look-back (never before where the tag started), or ``pi.start`` for a tag seen the first time.
Values in the look-back range were landed before, unless they arrived late or were edited: a
value whose hash is in the tag's digest (the values landed in that range) is not landed again,
so a re-read value never lands twice, while a new or changed value does and two genuine values
at one timestamp both stay. After a complete read the cursor moves to ``end``; a tag that failed
keeps its cursor and digest, and the next batch reads its whole range again.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pi_client import PiClient, Tag, read_recorded

from .discovery import select_tags
from .settings import Settings
from .state import OUTCOME, PLAN, PartStats, PlanInfo, StateStore
from .tables import TIMESERIES, for_spark

#: The columns whose values make a PI value what it is (its identity and its content).
_HASHED = ("web_id", "timestamp_ns", "ordinal", "value_double", "value_string", "value_bool", "value_timestamp",
           "state_name", "state_code", "is_system", "error", "good", "questionable", "substituted", "annotated")


def plan_batch(client: PiClient, settings: Settings, previous: pa.Table, batch: int, now_ns: int
               ) -> tuple[PlanInfo, pa.Table] | None:
    """The plan of ``batch`` from the tag state after the batch before it; None when no tag has
    anything to read (``end`` has not moved)."""
    selected = select_tags(client, settings)
    end = settings.end_ns(now_ns)
    start = settings.start_ns(now_ns)
    known = {row["web_id"]: row for row in previous.to_pylist()}
    rows = []
    for web_id, name, point_type in zip(*(selected.table[c].to_pylist() for c in ("web_id", "name", "point_type"))):
        state = known.pop(web_id, None)
        if state is None:
            rows.append({"web_id": web_id, "name": name, "point_type": point_type, "origin_ns": start,
                         "cursor_ns": None, "read_from_ns": start, "digest": None, "last_error": None})
        else:
            cursor = state["cursor_ns"]
            read_from = state["origin_ns"] if cursor is None else max(state["origin_ns"], cursor - settings.lookback_ns)
            rows.append({**state, "name": name, "point_type": point_type, "read_from_ns": read_from})
    due, waiting = [], []
    for row in rows:
        moving = row["read_from_ns"] < end and (row["cursor_ns"] is None or row["cursor_ns"] < end)
        (due if moving else waiting).append(row)
    if not due:
        return None
    # Tags that start together share sub-requests, so a partition holds tags of one start where it can.
    due.sort(key=lambda r: (r["read_from_ns"], r["web_id"]))
    size = settings.partition_size
    for index, row in enumerate(due):
        row["partition"] = index // size
    for row in [*waiting, *known.values()]:
        row["partition"] = -1
    table = pa.Table.from_pylist([*due, *waiting, *known.values()], schema=PLAN)
    partitions = (len(due) + size - 1) // size
    return PlanInfo(batch, end, partitions, settings.lookback_ns, dict(selected.errors)), table


def read_partition(client: PiClient, store: StateStore, batch: int, partition: int) -> pa.Table:
    """Read one partition of a planned batch; write its outcome; return the values to land
    (tables.TIMESERIES). Called by the partition's Spark task."""
    started_ns, started = time.time_ns(), time.perf_counter()
    info, plan = store.plan(batch)
    rows = plan.filter(pc.equal(plan["partition"], partition)).to_pylist()
    tags = [Tag(r["web_id"], r["name"] or "", r["point_type"] or "") for r in rows]
    result = read_recorded(client, tags, start=0, end=info.end_ns,
                           cursors={r["web_id"]: r["read_from_ns"] for r in rows})
    values = _landing_columns(result.values, batch, started_ns)
    keep, digests, read, landed = _deduplicate(values, rows, info.end_ns - info.lookback_ns)
    errors = result.errors
    outcome = []
    for i, row in enumerate(rows):
        error = errors.get(row["web_id"])
        if error is None:
            outcome.append({**row, "cursor_ns": info.end_ns, "digest": digests[i], "last_error": None,
                            "values_read": int(read[i]), "values_landed": int(landed[i])})
        else:  # no values of it were kept by read_recorded: cursor and digest stay
            outcome.append({**row, "last_error": error, "values_read": 0, "values_landed": 0})
    stats = PartStats(started_ns, time.perf_counter() - started, result.requests, result.retries,
                      result.bytes_received)
    store.write_outcome(batch, partition, pa.Table.from_pylist(outcome, schema=OUTCOME), stats)
    return values.filter(pa.array(keep))


def _deduplicate(values: pa.Table, rows: list[dict], recent_from: int
                 ) -> tuple[np.ndarray, list[bytes], np.ndarray, np.ndarray]:
    """Which values to land (those not in their tag's digest), each tag's new digest (the values
    at or after ``recent_from``), and per tag the values read and landed. Vectorized over the
    partition: only values before their tag's cursor or at/after ``recent_from`` are hashed."""
    count = len(rows)
    tag = pc.index_in(values["web_id"], value_set=pa.array([r["web_id"] for r in rows])).to_numpy()
    stamps = values["timestamp_ns"].to_numpy()
    no_cursor = np.iinfo(np.int64).min
    cursor = np.array([no_cursor if r["cursor_ns"] is None else r["cursor_ns"] for r in rows], dtype=np.int64)
    before_cursor = stamps < cursor[tag] if count else np.zeros(0, dtype=bool)
    recent = stamps >= recent_from
    hashed = before_cursor | recent
    hashes = np.zeros(len(values), dtype=np.uint64)
    hashes[hashed] = value_hashes(values.filter(pa.array(hashed)))
    seen = [_digest_values(r["digest"]) for r in rows]
    keep = np.ones(len(values), dtype=bool)
    if any(len(d) for d in seen):
        keep[before_cursor] = ~np.isin(hashes[before_cursor], np.concatenate(seen))
    order = np.lexsort((hashes[recent], tag[recent]))
    recent_tags, recent_hashes = tag[recent][order], hashes[recent][order]
    bounds = np.searchsorted(recent_tags, np.arange(count + 1))
    digests = [np.unique(recent_hashes[bounds[i]:bounds[i + 1]]).tobytes() for i in range(count)]
    return keep, digests, np.bincount(tag, minlength=count), np.bincount(tag[keep], minlength=count)


def _landing_columns(values: pa.Table, batch: int, ingested_ns: int) -> pa.Table:
    """pi_client's values with the columns of pi_timeseries: exact ns, batch, ingestion time, date."""
    exact = values["timestamp"].cast(pa.int64())
    rows = len(values)
    extended = values.append_column("timestamp_ns", exact) \
        .append_column("batch", pa.array(np.full(rows, batch, dtype=np.int64))) \
        .append_column("ingested_at", pa.array(np.full(rows, ingested_ns // 1000, dtype=np.int64)).cast(
            TIMESERIES.field("ingested_at").type)) \
        .append_column("date", pc.cast(pc.cast(values["timestamp"], pa.timestamp("s", tz="UTC"), safe=False),
                                       pa.date32()))
    return for_spark(extended, TIMESERIES)


def value_hashes(values: pa.Table) -> np.ndarray:
    """A 64-bit hash per value of what it is (tag, time, ordinal, value, state, flags): equal
    values hash equal in any process."""
    if not len(values):
        return np.empty(0, dtype=np.uint64)
    frame = values.select(list(_HASHED)).to_pandas(timestamp_as_object=False)
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


def _digest_values(digest: bytes | None) -> np.ndarray:
    return np.frombuffer(digest, dtype=np.uint64) if digest else np.empty(0, dtype=np.uint64)
