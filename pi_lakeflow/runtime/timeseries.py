"""The time-series extraction, apart from Spark: plan a batch on the driver, read one tag partition.

Per tag, a batch reads ``[read_from, end)`` where ``read_from`` is the tag's cursor minus the
look-back (never before where the tag started), or ``pi.start`` for a tag seen the first time.
Values in the look-back range were landed before, unless they arrived late or were edited: a
value whose hash is in the tag's digest (the values landed in that range) is not landed again,
so a re-read value never lands twice, while a new or changed value does and two genuine values
at one timestamp both stay. After a complete read the cursor moves to ``end``; a tag that failed
keeps its cursor and digest (or, when it failed after complete time slices, moves to where they
end), and the next batch reads the rest.
"""

from __future__ import annotations

import time
import zlib
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pi_client import Lookup, PiClient, Tag, read_recorded

from pi_lakeflow.runtime.discovery import select_tags
from pi_lakeflow.config.settings import NS_PER_SECOND, Settings
from pi_lakeflow.runtime.state import OUTCOME, PLAN, PartStats, PlanInfo, StateStore
from pi_lakeflow.runtime.landing import landing_columns, value_hashes

#: The first time slice of a partition whose tags' rate is not known yet.
PROBE_SLICE_NS = 3600 * NS_PER_SECOND
MIN_SLICE_NS = 60 * NS_PER_SECOND

def plan_batch(client: PiClient, settings: Settings, previous: pa.Table, follows: int, batch: int, now_ns: int
               ) -> tuple[PlanInfo, pa.Table] | None:
    """The plan of ``batch`` from ``previous``, the tag state after batch ``follows`` (usually
    the batch before it; 0: no state); None when no tag has anything to read (``end`` has not
    moved) and every selected name exists."""
    selected = select_tags(client, settings)
    index, count = settings.shard
    mine = pa.array([shard_of(w, count) == index for w in selected.table["web_id"].to_pylist()], pa.bool_())
    selected = Lookup(selected.table.filter(mine), selected.errors if index == 0 else {})
    end = settings.end_ns(now_ns)
    start = settings.start_ns(now_ns)
    known = {row["web_id"]: row for row in previous.to_pylist()}
    rows = []
    for web_id, name, point_type in zip(*(selected.table[c].to_pylist() for c in ("web_id", "name", "point_type"))):
        state = known.pop(web_id, None)
        if state is None:
            rows.append({"web_id": web_id, "name": name, "point_type": point_type, "origin_ns": start,
                         "cursor_ns": None, "read_from_ns": start, "digest": None, "last_error": None,
                         "rate": None})
        else:
            cursor = state["cursor_ns"]
            read_from = state["origin_ns"] if cursor is None else max(state["origin_ns"], cursor - settings.lookback_ns)
            rows.append({**state, "name": name, "point_type": point_type, "read_from_ns": read_from})
    due, waiting = [], []
    for row in rows:
        moving = row["read_from_ns"] < end and (row["cursor_ns"] is None or row["cursor_ns"] < end)
        (due if moving else waiting).append(row)
    if not due and not selected.errors:  # a batch of selected names the server lacks logs them
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
    return PlanInfo(batch, end, partitions, settings.lookback_ns, dict(selected.errors), follows), table


def plan_next(client: PiClient, settings: Settings, store: StateStore, follows: int, batch: int, now_ns: int
              ) -> PlanInfo | None:
    """Plan ``batch`` from the tag state after batch ``follows`` in ``store`` and keep the plan
    there (the tasks read it); None when nothing is due (see :func:`plan_batch`)."""
    planned = plan_batch(client, settings, store.tag_state(follows), follows, batch, now_ns)
    if planned is None:
        return None
    info, rows = planned
    store.write_plan(info, rows)
    return info


def shard_of(web_id: str, count: int) -> int:
    """The shard (0 to count-1) a tag belongs to: a stable hash of its WebId."""
    return zlib.crc32(web_id.encode()) % count


def read_partition(client: PiClient, store: StateStore, batch: int, partition: int) -> Iterator[pa.Table]:
    """Read one partition of a planned batch, slice by slice; yield the values to land
    (tables.TIMESERIES); write the partition's outcome when done. Called by the partition's task.

    The window is cut into time slices of about ``values_per_batch`` values (the first from the
    tags' rate in their last read, or a one-hour probe), so a task holds one slice at a time
    however long the window: a back-fill of months of 1-second tags included. A tag that fails
    in a slice is not read in later ones; what it landed before stays, and its cursor is where
    its complete slices end.
    """
    started_ns, started = time.time_ns(), time.perf_counter()
    before = client.transport.stats.snapshot()
    info, plan = store.plan(batch)
    progress = _PartitionRead(plan.filter(pc.equal(plan["partition"], partition)).to_pylist(), info.lookback_ns)
    target = client.limits.values_per_batch
    slice_start = int(progress.read_from.min())
    length = _first_slice(progress.rows, target)
    while slice_start < info.end_ns and progress.active():
        slice_end = min(info.end_ns, slice_start + length)
        tags, cursors = progress.due(slice_end)
        result = read_recorded(client, tags, start=0, end=slice_end, cursors=cursors)
        values = landing_columns(result.values, batch, started_ns)
        landed = progress.accept(values, result.errors, slice_end)
        if len(landed):
            yield landed
        rate = len(values) / max(slice_end - slice_start, 1)
        length = max(MIN_SLICE_NS, int(target / rate)) if rate else info.end_ns - slice_end
        slice_start = slice_end
    after = client.transport.stats.snapshot()
    stats = PartStats(started_ns, time.perf_counter() - started, after[0] - before[0], after[1] - before[1],
                      after[2] - before[2])
    store.write_outcome(batch, partition, progress.outcome(), stats)


def _first_slice(rows: list[dict], target: int) -> int:
    """About ``target`` values' worth of time at the tags' known rates; a probe if one is unknown."""
    if any(r["rate"] is None for r in rows):
        return PROBE_SLICE_NS
    total = sum(r["rate"] for r in rows) / NS_PER_SECOND  # values per nanosecond
    return max(MIN_SLICE_NS, int(target / total)) if total else np.iinfo(np.int64).max // 2


class _PartitionRead:
    """Per tag of a partition, across slices: where it has been read to, its error, its counts,
    and the hashes its next digest is made of."""

    def __init__(self, rows: list[dict], lookback_ns: int):
        self.rows, self.lookback = rows, lookback_ns
        self.web_ids = pa.array([r["web_id"] for r in rows], pa.string())
        self.read_from = np.array([r["read_from_ns"] for r in rows], dtype=np.int64)
        self.position = self.read_from.copy()
        no_cursor = np.iinfo(np.int64).min
        self.cursor = np.array([no_cursor if r["cursor_ns"] is None else r["cursor_ns"] for r in rows], dtype=np.int64)
        self.seen = np.concatenate([np.empty(0, np.uint64), *(_digest_values(r["digest"]) for r in rows)])
        self.errors: dict[int, str] = {}
        self.read = np.zeros(len(rows), dtype=np.int64)
        self.landed = np.zeros(len(rows), dtype=np.int64)
        # (tag index, timestamp, hash) of the values a digest may need: those before the tag's
        # old cursor, and those within the look-back before the end of the slice they came in.
        self.kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def active(self) -> bool:
        return len(self.errors) < len(self.rows)

    def due(self, slice_end: int) -> tuple[list[Tag], dict[str, int]]:
        tags, cursors = [], {}
        for i, row in enumerate(self.rows):
            if i not in self.errors and self.position[i] < slice_end:
                tags.append(Tag(row["web_id"], row["name"] or "", row["point_type"] or ""))
                cursors[row["web_id"]] = int(self.position[i])
        return tags, cursors

    def accept(self, values: pa.Table, errors: dict[str, str], slice_end: int) -> pa.Table:
        """Take one slice: drop the values in their tag's digest, keep the hashes a digest may
        need, move the tags that did not fail to the slice's end. Returns the values to land."""
        tag = pc.index_in(values["web_id"], value_set=self.web_ids).to_numpy()
        stamps = values["timestamp_ns"].to_numpy()
        before_cursor = stamps < self.cursor[tag]
        needed = before_cursor | (stamps >= slice_end - self.lookback)
        hashes = np.zeros(len(values), dtype=np.uint64)
        hashes[needed] = value_hashes(values.filter(pa.array(needed)))
        keep = np.ones(len(values), dtype=bool)
        if len(self.seen):
            keep[before_cursor] = ~np.isin(hashes[before_cursor], self.seen)
        self.kept.append((tag[needed], stamps[needed], hashes[needed]))
        self.read += np.bincount(tag, minlength=len(self.rows))
        self.landed += np.bincount(tag[keep], minlength=len(self.rows))
        for i, row in enumerate(self.rows):
            if row["web_id"] in errors:
                self.errors[i] = errors[row["web_id"]]
            elif i not in self.errors and self.position[i] < slice_end:
                self.position[i] = slice_end
        return values.filter(pa.array(keep))

    def outcome(self) -> pa.Table:
        """Each tag's state after the read (state.OUTCOME). A tag that got past its old cursor
        moves there, with the hashes of the look-back before it; one that did not keeps its
        cursor, its digest gaining what landed before that cursor."""
        parts = list(zip(*self.kept)) or [[np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.uint64)]]
        tags, stamps, hashes = (np.concatenate(p) for p in parts)
        rows = []
        for i, row in enumerate(self.rows):
            old, position = row["cursor_ns"], int(self.position[i])
            mine = tags == i
            if position > (old if old is not None else row["read_from_ns"]):
                cursor = position
                digest = np.unique(hashes[mine & (stamps >= cursor - self.lookback) & (stamps < cursor)]).tobytes()
            elif old is not None:
                cursor = old
                digest = np.unique(np.concatenate([_digest_values(row["digest"]), hashes[mine & (stamps < old)]])).tobytes()
            else:
                cursor, digest = None, None
            seconds = (position - row["read_from_ns"]) / NS_PER_SECOND
            rate = self.read[i] / seconds if seconds > 0 and i not in self.errors else row["rate"]
            rows.append({**row, "cursor_ns": cursor, "digest": digest, "last_error": self.errors.get(i),
                         "values_read": int(self.read[i]), "values_landed": int(self.landed[i]), "rate": rate})
        return pa.Table.from_pylist(rows, schema=OUTCOME)


def _digest_values(digest: bytes | None) -> np.ndarray:
    return np.frombuffer(digest, dtype=np.uint64) if digest else np.empty(0, dtype=np.uint64)
