"""The time-series extraction, apart from Spark: plan a batch on the driver, read one tag partition.

Per tag, a batch reads ``[read_from, end)`` where ``read_from`` is the tag's cursor minus the
look-back (never before where the tag started), or ``pi.start`` for a tag seen the first time.
What it lands is what changed in PI since the tag's last read, as a change log (landing.ADD,
UPDATE, DELETE): the tag's digest holds the key (timestamp, ordinal) and the hash of each value
landed in the look-back range before its cursor, so a re-read value that is unchanged is not
landed again, a value with a new key is an Add, one whose content changed is an Update, and a key
of the digest that the re-read no longer finds is a Delete. Two genuine values at one timestamp
both stay (their ordinals differ). After a complete read the cursor moves to ``end``; a tag that
failed keeps its cursor and digest (or, when it failed after complete time slices, moves to where
they end), and the next batch reads the rest. Changes older than the look-back are not seen.
"""

from __future__ import annotations

import time
import zlib
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pi_client import Lookup, PiClient, Tag, read_recorded
from pi_client.schemas import UPDATES

from pi_lakeflow.runtime.discovery import select_tags
from pi_lakeflow.config.settings import NS_PER_SECOND, Settings
from pi_lakeflow.runtime.state import OUTCOME, PLAN, PartProgress, PartStats, PlanInfo, StateStore
from pi_lakeflow.runtime.landing import ADD, DELETE, UPDATE, deleted_rows, landing_columns, value_hashes

#: The first time slice of a partition whose tags' rate is not known yet.
PROBE_SLICE_NS = 3600 * NS_PER_SECOND
MIN_SLICE_NS = 60 * NS_PER_SECOND
#: One entry of a tag's digest: a value's key and the hash of what it is (landing.value_hashes).
DIGEST_ENTRY = np.dtype([("timestamp_ns", "<i8"), ("ordinal", "<i4"), ("hash", "<u8")])

def plan_batch(client: PiClient, settings: Settings, previous: pa.Table, follows: int, batch: int, now_ns: int,
               step_ns: int = 0, retry_failed: bool = True) -> tuple[PlanInfo, pa.Table] | None:
    """The plan of ``batch`` from ``previous``, the tag state after batch ``follows`` (usually
    the batch before it; 0: no state); None when no tag has anything to read (``end`` has not
    moved) and every selected name exists. ``now_ns`` is the server's clock
    (PiClient.server_time): relative pi.start and pi.end (``*``) mean what they mean to PI.

    Computed on columns (no Python loop over the tags: a million tags plan in seconds). A
    selected tag the state knows keeps its state, with the name and point type the server gives
    now; a new one starts at ``pi.start``; a tag the state knows but the selection no longer
    holds is kept aside (partition -1) so that its cursor survives.

    ``step_ns`` (0: none) bounds a back-fill: each tag is read to at most ``step_ns`` past its
    cursor (its origin while it has none), so a long window takes several batches, each one
    committed; the plan says how many (PlanInfo.steps). With ``retry_failed`` False, a tag whose
    last read failed is kept aside (the later batches of one run read it no more: the next run does).
    """
    selected = select_tags(client, settings)
    index, count = settings.shard
    if count > 1:
        mine = pa.array([shard_of(w, count) == index for w in selected.table["web_id"].to_pylist()], pa.bool_())
        selected = Lookup(selected.table.filter(mine), selected.errors if index == 0 else {})
    end = settings.end_ns(now_ns)
    start = settings.start_ns(now_ns)
    chosen = selected.table
    # Each selected tag's row in the state (null: a new tag). The digests, the big column, are
    # taken once, in the plan's final order, through this index.
    if previous.num_rows:
        at = pc.index_in(chosen["web_id"], value_set=previous["web_id"])
        # The state's tags the selection no longer holds.
        gone = pc.indices_nonzero(pc.invert(pc.is_in(previous["web_id"], value_set=chosen["web_id"])))
    else:  # no state yet (pyarrow 15, the Databricks runtimes', crashes computing over a table of no rows)
        at, gone = pa.nulls(len(chosen), pa.int32()), pa.array([], pa.uint64())
    known = _rows_at(previous.select(["origin_ns", "cursor_ns", "last_error"]), at)
    origin = pc.if_else(pc.is_null(at), start, known["origin_ns"])
    cursor = known["cursor_ns"]
    # A known tag reads from its cursor minus the look-back (never before its origin), or from its
    # origin while it has no cursor (max_element_wise skips the null); a new tag from pi.start.
    read_from = pc.max_element_wise(origin, pc.subtract(cursor, settings.lookback_ns))
    # Where the tag's new time begins: its cursor, or its origin while it has none.
    behind = pc.coalesce(cursor, origin)
    read_to = pc.min_element_wise(pc.add(behind, step_ns), end) if step_ns else pa.nulls(len(chosen), pa.int64())
    rows = pa.table({"web_id": chosen["web_id"], "name": chosen["name"], "point_type": chosen["point_type"],
                     "origin_ns": origin, "cursor_ns": cursor, "read_from_ns": read_from, "read_to_ns": read_to,
                     "state": at.cast(pa.int64())})
    moving = pc.and_(pc.less(read_from, end), pc.fill_null(pc.less(cursor, end), True))
    if not retry_failed:
        moving = pc.and_(moving, pc.is_null(known["last_error"]))
    due = rows.filter(moving)
    if not len(due) and not selected.errors:  # a batch of selected names the server lacks logs them
        return None
    steps = 1
    if step_ns and len(due):
        steps = max(1, -(-(end - pc.min(pc.coalesce(due["cursor_ns"], due["origin_ns"])).as_py()) // step_ns))
    # Tags that start together share sub-requests, so a partition holds tags of one start where it can.
    due = due.sort_by([("read_from_ns", "ascending"), ("web_id", "ascending")])
    # Kept aside (partition -1): selected tags with nothing to read yet, and the tags gone from the
    # selection (so that their cursors survive).
    waiting = rows.filter(pc.invert(moving))
    waiting = waiting.set_column(waiting.schema.get_field_index("read_to_ns"), "read_to_ns",
                                 pa.nulls(len(waiting), pa.int64()))
    left = previous.select(["web_id", "name", "point_type", "origin_ns", "cursor_ns", "read_from_ns"]).take(gone)
    left = left.append_column("read_to_ns", pa.nulls(len(left), pa.int64()))
    order = pa.concat_tables([due, waiting, left.append_column("state", gone).cast(rows.schema)])
    size = settings.partition_size
    partition = np.full(len(order), -1, np.int32)
    partition[:len(due)] = np.arange(len(due)) // size
    carried = _rows_at(previous.select(["digest", "last_error", "rate"]), order["state"])
    plan = pa.table({**{name: order[name] for name in ("web_id", "name", "point_type")}, "partition": partition,
                     **{name: order[name] for name in ("origin_ns", "cursor_ns", "read_from_ns")},
                     **{name: carried[name] for name in carried.column_names}, "read_to_ns": order["read_to_ns"]},
                    schema=PLAN)
    partitions = (len(due) + size - 1) // size
    return PlanInfo(batch, end, partitions, settings.lookback_ns, dict(selected.errors), follows, steps), plan


def _rows_at(table: pa.Table, indices: pa.Array) -> pa.Table:
    """``table.take(indices)``: a row of nulls where an index is null. From a table of no rows
    (every index null), those rows are made here: pyarrow 15 crashes taking from one."""
    if table.num_rows == 0:
        return pa.table({field.name: pa.nulls(len(indices), field.type) for field in table.schema})
    return table.take(indices)


def plan_next(client: PiClient, settings: Settings, store: StateStore, follows: int, batch: int, now_ns: int,
              step_ns: int = 0, retry_failed: bool = True) -> PlanInfo | None:
    """Plan ``batch`` from the tag state after batch ``follows`` in ``store`` and keep the plan
    there (the tasks read it); None when nothing is due (see :func:`plan_batch`)."""
    planned = plan_batch(client, settings, store.tag_state(follows), follows, batch, now_ns, step_ns, retry_failed)
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

    Each tag is read from its ``read_from_ns`` to its ``read_to_ns`` (the plan's end when null).
    The window is cut into time slices of about ``values_per_batch`` values (the first from the
    tags' rate in their last read, or a one-hour probe), and at every tag's end, so a task holds
    one slice at a time however long the window: a back-fill of months of 1-second tags included.
    A tag that fails in a slice is not read in later ones; what it landed before stays, and its
    cursor is where its complete slices end. After each slice the task leaves its progress
    (values so far, the share of its window read) in the store, for the terminal.
    """
    started_ns, started = time.time_ns(), time.perf_counter()
    before = client.transport.stats.snapshot()
    info, plan = store.plan_part(batch, partition)
    progress = _PartitionRead(plan.to_pylist(), info.lookback_ns, info.end_ns)
    target = client.limits.values_per_batch
    first, last = int(progress.read_from.min()), int(progress.read_to.max())
    length = _first_slice(progress.rows, target)
    while progress.active():
        slice_start = progress.next_start()
        slice_end = progress.slice_end(slice_start + length)
        tags, cursors = progress.due(slice_end)
        result = read_recorded(client, tags, start=0, end=slice_end, cursors=cursors)
        landed = progress.accept(result.values, result.errors, slice_end)
        if len(landed):
            yield landing_columns(landed, batch, started_ns)
        share = (slice_end - first) / max(last - first, 1)
        store.write_progress(batch, partition,
                             PartProgress(int(progress.read.sum()), int(progress.landed.sum()), share))
        rate = len(result.values) / max(slice_end - slice_start, 1)
        length = max(MIN_SLICE_NS, int(target / rate)) if rate else last - slice_end
    after = client.transport.stats.snapshot()
    stats = PartStats(started_ns, time.perf_counter() - started, after[0] - before[0], after[1] - before[1],
                      after[2] - before[2], last)
    store.write_outcome(batch, partition, progress.outcome(), stats)


def _first_slice(rows: list[dict], target: int) -> int:
    """About ``target`` values' worth of time at the tags' known rates; a probe if one is unknown."""
    if any(r["rate"] is None for r in rows):
        return PROBE_SLICE_NS
    total = sum(r["rate"] for r in rows) / NS_PER_SECOND  # values per nanosecond
    return max(MIN_SLICE_NS, int(target / total)) if total else np.iinfo(np.int64).max // 2


class _PartitionRead:
    """Per tag of a partition, across slices: where it has been read to, its error, its counts,
    its digest (which entries the re-read found again), and the entries its next digest is made of."""

    def __init__(self, rows: list[dict], lookback_ns: int, end_ns: int):
        self.rows, self.lookback = rows, lookback_ns
        self.web_ids = pa.array([r["web_id"] for r in rows], pa.string())
        self.names = [r["name"] for r in rows]
        self.read_from = np.array([r["read_from_ns"] for r in rows], dtype=np.int64)
        self.read_to = np.array([end_ns if r["read_to_ns"] is None else r["read_to_ns"] for r in rows], dtype=np.int64)
        self.position = self.read_from.copy()
        no_cursor = np.iinfo(np.int64).min
        self.cursor = np.array([no_cursor if r["cursor_ns"] is None else r["cursor_ns"] for r in rows], dtype=np.int64)
        digests = [_digest_values(r["digest"]) for r in rows]
        self.digest = np.concatenate([np.empty(0, DIGEST_ENTRY), *digests])
        self.digest_tag = np.repeat(np.arange(len(rows)), [len(d) for d in digests])
        self.digest_index = pd.MultiIndex.from_arrays([self.digest_tag, self.digest["timestamp_ns"],
                                                       self.digest["ordinal"]])
        self.found = np.zeros(len(self.digest), dtype=bool)  # entries the re-read found again
        self.errors: dict[int, str] = {}
        self.read = np.zeros(len(rows), dtype=np.int64)
        self.landed = np.zeros(len(rows), dtype=np.int64)
        # (tag index, entries) a digest may need: the values before the tag's old cursor, and
        # those within the look-back before the end of the slice they came in.
        self.kept: list[tuple[np.ndarray, np.ndarray]] = []

    def reading(self) -> np.ndarray:
        """Which tags have not failed and not been read to their end."""
        failed = np.zeros(len(self.rows), dtype=bool)
        failed[list(self.errors)] = True
        return ~failed & (self.position < self.read_to)

    def active(self) -> bool:
        return bool(self.reading().any())

    def next_start(self) -> int:
        """Where the next slice starts: the first point a tag still reading has not been read to."""
        return int(self.position[self.reading()].min())

    def slice_end(self, wanted: int) -> int:
        """``wanted``, or the end of a tag still reading if that comes first: one slice, one end
        for every tag it reads."""
        return int(min(wanted, self.read_to[self.reading()].min()))

    def due(self, slice_end: int) -> tuple[list[Tag], dict[str, int]]:
        """The tags to read up to ``slice_end`` (a slice never passes a tag's end), each from
        where it has been read to."""
        tags, cursors = [], {}
        for i, row in enumerate(self.rows):
            if i not in self.errors and self.position[i] < slice_end <= self.read_to[i]:
                tags.append(Tag(row["web_id"], row["name"] or "", row["point_type"] or ""))
                cursors[row["web_id"]] = int(self.position[i])
        return tags, cursors

    def accept(self, values: pa.Table, errors: dict[str, str], slice_end: int) -> pa.Table:
        """Take one slice of pi_client values: classify them against the digest (unchanged ones
        are dropped), keep the entries a digest may need, move the tags that did not fail to the
        slice's end, and add a Delete for each digest entry of a tag that has now been read past
        its old cursor without finding it again. Returns the changes (UPDATES columns)."""
        tag = pc.index_in(values["web_id"], value_set=self.web_ids).to_numpy()
        stamps = values["timestamp"].cast(pa.int64()).to_numpy()
        ordinals = values["ordinal"].to_numpy()
        before_cursor = stamps < self.cursor[tag]
        needed = before_cursor | (stamps >= slice_end - self.lookback)
        hashes = np.zeros(len(values), dtype=np.uint64)
        hashes[needed] = value_hashes(values.filter(pa.array(needed)))
        action = np.full(len(values), ADD, dtype=object)
        keep = np.ones(len(values), dtype=bool)
        if len(self.digest) and before_cursor.any():
            at = self.digest_index.get_indexer(pd.MultiIndex.from_arrays(
                [tag[before_cursor], stamps[before_cursor], ordinals[before_cursor]]))
            known = at >= 0
            same = np.zeros(len(at), dtype=bool)
            same[known] = self.digest["hash"][at[known]] == hashes[before_cursor][known]
            self.found[at[known]] = True
            keep[before_cursor] = ~same
            action[np.flatnonzero(before_cursor)[known & ~same]] = UPDATE
        entries = np.empty(int(needed.sum()), DIGEST_ENTRY)
        entries["timestamp_ns"], entries["ordinal"], entries["hash"] = stamps[needed], ordinals[needed], hashes[needed]
        self.kept.append((tag[needed], entries))
        self.read += np.bincount(tag, minlength=len(self.rows))
        self.landed += np.bincount(tag[keep], minlength=len(self.rows))
        crossed = []
        for i, row in enumerate(self.rows):
            if row["web_id"] in errors:
                self.errors[i] = errors[row["web_id"]]
            elif i not in self.errors and self.position[i] < slice_end <= self.read_to[i]:
                if self.position[i] < self.cursor[i] <= slice_end:
                    crossed.append(i)
                self.position[i] = slice_end
        changes = values.filter(pa.array(keep))
        changes = changes.append_column("action", pa.array(action[keep], pa.string()))
        return pa.concat_tables([changes.cast(UPDATES), self._deletes(crossed)])

    def _deletes(self, tags: list[int]) -> pa.Table:
        """Deletes of the digest entries of ``tags`` in their re-read range that it did not find."""
        gone = np.isin(self.digest_tag, tags) & ~self.found & \
            (self.digest["timestamp_ns"] >= self.read_from[self.digest_tag])
        index = np.flatnonzero(gone)
        self.landed += np.bincount(self.digest_tag[index], minlength=len(self.rows))
        return deleted_rows(self.web_ids.take(self.digest_tag[index]),
                            pa.array([self.names[t] for t in self.digest_tag[index]], pa.string()),
                            self.digest["timestamp_ns"][index], self.digest["ordinal"][index])

    def outcome(self) -> pa.Table:
        """Each tag's state after the read (state.OUTCOME). A tag that got past its old cursor
        moves there, with the entries of the look-back before it; one that did not keeps its
        cursor, its digest updated with what the re-read found before that cursor."""
        parts = list(zip(*self.kept)) or [[np.empty(0, np.int64)], [np.empty(0, DIGEST_ENTRY)]]
        tags, entries = (np.concatenate(p) for p in parts)
        rows = []
        for i, row in enumerate(self.rows):
            old, position = row["cursor_ns"], int(self.position[i])
            mine = entries[tags == i]
            if position > (old if old is not None else row["read_from_ns"]):
                cursor = position
                digest = _digest_bytes(mine[(mine["timestamp_ns"] >= cursor - self.lookback)
                                            & (mine["timestamp_ns"] < cursor)])
            elif old is not None:
                cursor = old
                digest = _digest_bytes(np.concatenate([self.digest[self.digest_tag == i],
                                                       mine[mine["timestamp_ns"] < old]]))
            else:
                cursor, digest = None, None
            seconds = (position - row["read_from_ns"]) / NS_PER_SECOND
            rate = self.read[i] / seconds if seconds > 0 and i not in self.errors else row["rate"]
            rows.append({**row, "cursor_ns": cursor, "digest": digest, "last_error": self.errors.get(i),
                         "values_read": int(self.read[i]), "values_landed": int(self.landed[i]), "rate": rate})
        return pa.Table.from_pylist(rows, schema=OUTCOME)


def _digest_bytes(entries: np.ndarray) -> bytes:
    """Entries as a digest: one per key (a later entry replaces an earlier one), sorted."""
    order = np.lexsort((np.arange(len(entries)), entries["ordinal"], entries["timestamp_ns"]))
    ordered = entries[order]
    last = np.ones(len(ordered), dtype=bool)
    last[:-1] = (ordered["timestamp_ns"][1:] != ordered["timestamp_ns"][:-1]) | \
        (ordered["ordinal"][1:] != ordered["ordinal"][:-1])
    return ordered[last].tobytes()


def _digest_values(digest: bytes | None) -> np.ndarray:
    return np.frombuffer(digest, dtype=DIGEST_ENTRY) if digest else np.empty(0, dtype=DIGEST_ENTRY)
