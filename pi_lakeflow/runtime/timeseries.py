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

from pi_client import Lookup, PiClient, PiError, Tag, read_recorded
from pi_client.schemas import UPDATES
from pi_client.times import TICK_NS
from pi_client.updates import Subscription, UpdatesResult, changes_since, horizon, register

from pi_lakeflow.runtime.discovery import select_tags
from pi_lakeflow.config.settings import NS_PER_SECOND, Settings
from pi_lakeflow.runtime.state import OUTCOME, PLAN, PartProgress, PartStats, PlanInfo, StateStore
from pi_lakeflow.runtime.landing import ADD, UPDATE, deleted_rows, landing_columns, value_hashes

#: The first time slice of a partition whose tags' rate is not known yet.
PROBE_SLICE_NS = 3600 * NS_PER_SECOND
MIN_SLICE_NS = 60 * NS_PER_SECOND
#: One entry of a tag's digest: a value's key and the hash of what it is (landing.value_hashes).
DIGEST_ENTRY = np.dtype([("timestamp_ns", "<i8"), ("ordinal", "<i4"), ("hash", "<u8")])
#: How a digest's bytes begin: then come its n entries column by column (n timestamps, each as
#: the step from the one before, the first from 0; n ordinals; n hashes), 20 bytes per entry
#: like entry by entry, but the state files' compression (zstd) takes them to about 10 bytes
#: instead of 13 (the steps and ordinals repeat; the hashes do not). A digest written entry by
#: entry (before this header existed) is 20·n bytes, never 8 more, and still reads.
_BY_COLUMN = b"\xff" * 8
#: Where tags that had no partition in the batch before sort among the due tags: last.
_LAST = np.iinfo(np.int32).max


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
    known = _rows_at(previous.select(["partition", "origin_ns", "cursor_ns", "last_error", "marker"]), at)
    origin = pc.if_else(pc.is_null(at), start, known["origin_ns"])
    cursor = known["cursor_ns"]
    # A known tag reads from its cursor minus the look-back (never before its origin), or from its
    # origin while it has no cursor (max_element_wise skips the null); a new tag from pi.start. A
    # tag with a marker (a cursor past the plan's end: values PI dates ahead) is asked for its
    # changes; read_from is where its digest begins, what a re-read may reach back to.
    read_from = pc.max_element_wise(origin, pc.subtract(pc.min_element_wise(cursor, end, skip_nulls=False), settings.lookback_ns))
    polled = pc.is_valid(known["marker"]) if settings.markers else pa.repeat(False, len(chosen))
    # Where the tag's new time begins: its cursor, or its origin while it has none.
    behind = pc.coalesce(cursor, origin)
    read_to = pc.min_element_wise(pc.add(behind, step_ns), end) if step_ns else pa.nulls(len(chosen), pa.int64())
    read_to = pc.if_else(polled, pa.scalar(None, pa.int64()), read_to)
    rows = pa.table({"web_id": chosen["web_id"], "name": chosen["name"], "point_type": chosen["point_type"],
                     "origin_ns": origin, "cursor_ns": cursor, "read_from_ns": read_from, "read_to_ns": read_to,
                     "state": at.cast(pa.int64())})
    moving = pc.or_(polled, pc.and_(pc.less(read_from, end), pc.fill_null(pc.less(cursor, end), True)))
    if not retry_failed:
        moving = pc.and_(moving, pc.is_null(known["last_error"]))
    due = rows.filter(moving)
    if not len(due) and not selected.errors:  # a batch of selected names the server lacks logs them
        return None
    steps = 1
    reading = rows.filter(pc.and_(moving, pc.invert(polled)))  # a polled tag is never behind
    if step_ns and len(reading):
        steps = max(1, -(-(end - pc.min(pc.coalesce(reading["cursor_ns"], reading["origin_ns"])).as_py()) // step_ns))
    # A tag stays with the tags of its partition in the batch before, so that a task reads its
    # digests from one or two of that batch's files (StateStore.plan_part). The others (new tags,
    # tags kept aside before) come after them; tags that start together share sub-requests, so a
    # partition holds tags of one start where it can.
    last = pa.scalar(_LAST, pa.int32())
    before = pc.fill_null(pc.if_else(pc.greater_equal(known["partition"], 0), known["partition"], last), last)
    due = due.take(pc.sort_indices(pa.table({"before": before.filter(moving), "read_from_ns": due["read_from_ns"],
                                             "web_id": due["web_id"]}),
                                   [("before", "ascending"), ("read_from_ns", "ascending"), ("web_id", "ascending")]))
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
    carried = _rows_at(previous.select(["digest", "digest_partition", "last_error", "rate", "marker"]), order["state"])
    if not settings.markers:  # markers left by runs with pi.changes markers are not used
        carried = carried.set_column(carried.schema.get_field_index("marker"), "marker",
                                     pa.nulls(len(carried), pa.string()))
    plan = pa.table({**{name: order[name] for name in ("web_id", "name", "point_type")}, "partition": partition,
                     **{name: order[name] for name in ("origin_ns", "cursor_ns", "read_from_ns")},
                     **{name: carried[name] for name in carried.column_names}, "read_to_ns": order["read_to_ns"]},
                    schema=PLAN)
    partitions = (len(due) + size - 1) // size
    return PlanInfo(batch, end, partitions, settings.lookback_ns, dict(selected.errors), follows, steps,
                    settings.markers), plan


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
    # The tags kept aside take their digests along (they may stay aside past the batches kept);
    # the others' stay in the digest files of batch ``follows``, which their tasks read.
    aside = pc.equal(rows["partition"], -1)
    rows = pa.concat_tables([rows.filter(pc.invert(aside)), store.with_digests(rows.filter(aside), follows)])
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

    With markers (PlanInfo.markers), the tags that have one are first asked for their changes
    (:func:`_follow_changes`): they are read only around a change before their cursor, or from
    the look-back when the server lost the marker; the tags this batch reads up to its end are
    registered before they are read, so that the next batch takes their changes from here on.
    """
    started_ns, started = time.time_ns(), time.perf_counter()
    before = client.transport.stats.snapshot()
    info, plan = store.plan_part(batch, partition)
    progress = _PartitionRead(plan.to_pylist(), info.lookback_ns, info.end_ns)
    if info.markers:
        reported = _follow_changes(client, progress)
        if len(reported):
            yield landing_columns(reported, batch, started_ns)
    target = client.limits.values_per_batch
    first, last = progress.window()
    length = _first_slice(progress, target)
    while progress.active():
        slice_start = progress.next_start()
        slice_end = progress.slice_end(slice_start + length)
        tags, cursors = progress.due(slice_end)
        result = read_recorded(client, tags, start=0, end=slice_end, cursors=cursors)
        landed = progress.accept(result.values, result.errors, slice_end)
        if len(landed):
            yield landing_columns(landed, batch, started_ns)
        share = min(1.0, (slice_end - first) / max(last - first, 1))
        store.write_progress(batch, partition,
                             PartProgress(int(progress.read.sum()), int(progress.landed.sum()), share))
        rate = len(result.values) / max(slice_end - slice_start, 1)
        length = max(MIN_SLICE_NS, int(target / rate)) if rate else progress.furthest() - slice_end
    after = client.transport.stats.snapshot()
    stats = PartStats(started_ns, time.perf_counter() - started, after[0] - before[0], after[1] - before[1],
                      after[2] - before[2], min(last, info.end_ns),
                      progress.reread, progress.lost)
    store.write_outcome(batch, partition, progress.outcome(), stats)


def _follow_changes(client: PiClient, progress: _PartitionRead) -> pa.Table:
    """Ask the partition's markers for what changed since (one ``streamsets/updates`` request per
    URL's worth of markers, through the batch controller) and register the tags that have none
    and that this batch reads to its end, or whose marker the server lost; returns the changes
    to land as PI reported them (UPDATES columns), and leaves in ``progress`` what is still to
    be read: around changes before a tag's cursor, the look-back of a lost marker."""
    rows = progress.rows
    index = {r["web_id"]: i for i, r in enumerate(rows)}
    subscriptions = {r["web_id"]: Subscription(r["web_id"], r["marker"], 0, r["name"] or "", r["point_type"] or "")
                     for r in rows if r["marker"] is not None}
    try:
        found = changes_since(client, subscriptions) if subscriptions else None
    except PiError as error:  # the server unreachable after the retries: these tags fail, the others read
        found = UpdatesResult(UPDATES.empty_table(), subscriptions, [], {w: str(error) for w in subscriptions})
    lost, asked = [], []
    if found is not None:
        progress.lost = len(found.recovered)
        for web_id, error in found.errors.items():
            progress.fail(index[web_id], error)
        lost = [index[w] for w in found.recovered]
        asked = [index[w] for w in subscriptions if w not in found.errors and w not in found.recovered]
        for i in asked:
            progress.marker[i] = found.subscriptions[rows[i]["web_id"]].marker
    caught_up = [i for i, r in enumerate(rows) if r["marker"] is None and progress.read_to[i] >= progress.end]
    fresh: dict[str, str] = {}
    if lost or caught_up:  # a tag the server does not register is read by look-back; the next batch tries again
        try:
            fresh = {w: s.marker for w, s in register(client, [rows[i]["web_id"] for i in lost + caught_up], 0,
                                                      errors={}).items()}
        except PiError:
            pass
    end = horizon(progress.end)
    for i in lost + caught_up:
        progress.register(i, fresh.get(rows[i]["web_id"]), end)
    return progress.take_changes(found.events if found is not None else UPDATES.empty_table(), asked)


def _first_slice(progress: _PartitionRead, target: int) -> int:
    """About ``target`` values' worth of time at the reading tags' known rates; a probe if one is unknown."""
    rates = [r["rate"] for r, reading in zip(progress.rows, progress.reading()) if reading]
    if any(r is None for r in rates):
        return PROBE_SLICE_NS
    total = sum(rates) / NS_PER_SECOND  # values per nanosecond
    return max(MIN_SLICE_NS, int(target / total)) if total else np.iinfo(np.int64).max // 2


_NO_TIME = np.iinfo(np.int64).min


class _PartitionRead:
    """Per tag of a partition, across slices: where it has been read to, its error, its counts,
    its digest (which entries the re-read found again), the entries its next digest is made of,
    and with markers its marker and the newest value it has."""

    def __init__(self, rows: list[dict], lookback_ns: int, end_ns: int):
        self.rows, self.lookback, self.end = rows, lookback_ns, end_ns
        self.web_ids = pa.array([r["web_id"] for r in rows], pa.string())
        self.names = [r["name"] for r in rows]
        self.origin = np.array([r["origin_ns"] for r in rows], dtype=np.int64)
        self.read_from = np.array([r["read_from_ns"] for r in rows], dtype=np.int64)
        self.read_to = np.array([end_ns if r["read_to_ns"] is None else r["read_to_ns"] for r in rows], dtype=np.int64)
        self.position = self.read_from.copy()
        self.cursor = np.array([_NO_TIME if r["cursor_ns"] is None else r["cursor_ns"] for r in rows], dtype=np.int64)
        self.newest = np.full(len(rows), _NO_TIME, dtype=np.int64)  # the newest value read or reported
        self.marker: list[str | None] = [None] * len(rows)  # the marker the tag's changes follow after this batch
        self.polled = np.array([r["marker"] is not None for r in rows], dtype=bool)
        digests = [digest_entries(r["digest"]) for r in rows]
        self.digest = np.concatenate([np.empty(0, DIGEST_ENTRY), *digests])
        self.digest_tag = np.repeat(np.arange(len(rows)), [len(d) for d in digests])
        self.digest_index = pd.MultiIndex.from_arrays([self.digest_tag, self.digest["timestamp_ns"],
                                                       self.digest["ordinal"]])
        self.found = np.zeros(len(self.digest), dtype=bool)  # entries the re-read found again
        self.errors: dict[int, str] = {}
        self.reread = self.lost = 0  # tags with markers read again around changes; whose marker was lost
        self.read = np.zeros(len(rows), dtype=np.int64)
        self.landed = np.zeros(len(rows), dtype=np.int64)
        # (tag index, entries) a digest may need: the values in the digest's range, and those
        # within the look-back before the newest value of their tag.
        self.kept: list[tuple[np.ndarray, np.ndarray]] = []

    # ---- what is read -------------------------------------------------------------------------
    def fail(self, i: int, error: str) -> None:
        self.errors[i] = error

    def register(self, i: int, marker: str | None, end: int) -> None:
        """Tag ``i`` was registered for updates (``marker``; None: registering failed) before it
        is read: it reads every value so far (up to ``end``, beyond the server's now), so that
        the marker's changes start where it ends. A tag whose marker was lost reads from where
        its digest begins."""
        if marker is not None:
            self.marker[i] = marker
            self.read_to[i] = end
        elif self.polled[i]:  # lost, and not registered again: the look-back, as without markers
            self.read_to[i] = self.end

    def take_changes(self, events: pa.Table, asked: list[int]) -> pa.Table:
        """The changes the markers of tags ``asked`` reported (UPDATES columns) to land as they
        are: the values after a tag's cursor (Adds, each new). A change before the cursor (a
        late value, an edit, a delete) or of a value after it that is not new is read again
        instead, from the tag's first such change to about its last, and compared with its digest like
        any re-read, so a change made twice or already landed lands once. Changes older than the
        digest (the look-back before the tag's cursor) are landed as they are; before the tag's
        origin, not at all. The tags asked that are not read again, and those whose asking
        failed, are done."""
        done = np.zeros(len(self.rows), dtype=bool)
        done[asked] = True
        done[[i for i in self.errors if self.polled[i]]] = True
        if not events.num_rows:
            self._finish(done)
            return events
        tag = pc.index_in(events["web_id"], value_set=self.web_ids).to_numpy()
        stamps = events["timestamp"].cast(pa.int64()).to_numpy()
        added = pc.equal(events["action"], ADD).to_numpy(zero_copy_only=False)
        in_digest = stamps >= self.read_from[tag]
        touched = in_digest & (~added | (stamps < np.maximum(self.cursor, self.origin)[tag]))
        # Each tag read again from its first such change to just past its last, that end rounded
        # up to a grid of a thirtieth of the look-back: a slice never passes a tag's end, and ends
        # of their own would cost a request per tag. What the read covers is not landed as reported.
        low = np.full(len(self.rows), np.iinfo(np.int64).max)
        high = np.full(len(self.rows), _NO_TIME)
        np.minimum.at(low, tag[touched], stamps[touched])
        np.maximum.at(high, tag[touched], stamps[touched] + TICK_NS)
        again = np.zeros(len(self.rows), dtype=bool)
        again[tag[touched]] = True
        grid = max(MIN_SLICE_NS, self.lookback // 30)
        high[again] = -(-high[again] // grid) * grid
        for i in np.flatnonzero(again):
            self.read_from[i], self.position[i], self.read_to[i] = low[i], low[i], high[i]
        done[again] = False
        self.reread = int(again.sum())
        self._finish(done)
        direct = (stamps >= self.origin[tag]) & ((stamps < low[tag]) | (stamps >= high[tag]))
        self.read += np.bincount(tag, minlength=len(self.rows))
        self.landed += np.bincount(tag[direct], minlength=len(self.rows))
        value = direct & added
        np.maximum.at(self.newest, tag[value], stamps[value])
        kept = value & in_digest
        entries = np.empty(int(kept.sum()), DIGEST_ENTRY)
        entries["timestamp_ns"], entries["ordinal"] = stamps[kept], events["ordinal"].to_numpy()[kept]
        entries["hash"] = value_hashes(events.filter(pa.array(kept)))
        self.kept.append((tag[kept], entries))
        return events.filter(pa.array(direct))

    def _finish(self, done: np.ndarray) -> None:
        """Tags ``done`` read nothing more in this batch."""
        self.read_from[done] = self.position[done]
        self.read_to[done] = self.position[done]

    def reading(self) -> np.ndarray:
        """Which tags have not failed and not been read to their end."""
        failed = np.zeros(len(self.rows), dtype=bool)
        failed[list(self.errors)] = True
        return ~failed & (self.position < self.read_to)

    def active(self) -> bool:
        return bool(self.reading().any())

    def window(self) -> tuple[int, int]:
        """Where the partition's reads begin and end, for its progress (the plan's end when none
        is left): a read past the plan's end (after registering, to a day past the server's now)
        finds no values after it, so the window ends there."""
        reading = self.reading()
        if not reading.any():
            return self.end, self.end
        first = int(self.read_from[reading].min())
        return first, max(min(int(self.read_to[reading].max()), self.end), first + 1)

    def furthest(self) -> int:
        """Where the last read of a tag still reading ends (the plan's end when none is)."""
        reading = self.reading()
        return int(self.read_to[reading].max()) if reading.any() else self.end

    def next_start(self) -> int:
        """Where the next slice starts: the first point a tag still reading has not been read to."""
        return int(self.position[self.reading()].min())

    def slice_end(self, wanted: int) -> int:
        """``wanted``, or the end of a tag still reading if that comes first: one slice, one end
        for every tag it reads. A slice that would pass the plan's end goes on to the first of
        those ends (a registering read's is a day past the server's now): nothing is recorded
        after the server's now, so that time is asked once, not slice by slice."""
        ends = self.read_to[self.reading()]
        return int(ends.min() if wanted >= self.end else min(wanted, ends.min()))

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
        slice's end, and add a Delete for each digest entry in the time the slice read of a tag
        that it did not find again. Returns the changes (UPDATES columns)."""
        tag = pc.index_in(values["web_id"], value_set=self.web_ids).to_numpy()
        stamps = values["timestamp"].cast(pa.int64()).to_numpy()
        ordinals = values["ordinal"].to_numpy()
        np.maximum.at(self.newest, tag, stamps)
        known = (stamps < self.cursor[tag]) | self.polled[tag]  # where the digest may hold the key
        needed = known | (stamps >= self.newest[tag] - self.lookback)
        hashes = np.zeros(len(values), dtype=np.uint64)
        hashes[needed] = value_hashes(values.filter(pa.array(needed)))
        action = np.full(len(values), ADD, dtype=object)
        keep = np.ones(len(values), dtype=bool)
        if len(self.digest) and known.any():
            at = self.digest_index.get_indexer(pd.MultiIndex.from_arrays(
                [tag[known], stamps[known], ordinals[known]]))
            found = at >= 0
            same = np.zeros(len(at), dtype=bool)
            same[found] = self.digest["hash"][at[found]] == hashes[known][found]
            self.found[at[found]] = True
            keep[known] = ~same
            action[np.flatnonzero(known)[found & ~same]] = UPDATE
        entries = np.empty(int(needed.sum()), DIGEST_ENTRY)
        entries["timestamp_ns"], entries["ordinal"], entries["hash"] = stamps[needed], ordinals[needed], hashes[needed]
        self.kept.append((tag[needed], entries))
        self.read += np.bincount(tag, minlength=len(self.rows))
        self.landed += np.bincount(tag[keep], minlength=len(self.rows))
        read_from = np.full(len(self.rows), np.iinfo(np.int64).max)  # per tag, what this slice read
        for i, row in enumerate(self.rows):
            if row["web_id"] in errors:
                self.errors[i] = errors[row["web_id"]]
            elif i not in self.errors and self.position[i] < slice_end <= self.read_to[i]:
                read_from[i] = self.position[i]
                self.position[i] = slice_end
        changes = values.filter(pa.array(keep))
        changes = changes.append_column("action", pa.array(action[keep], pa.string()))
        return pa.concat_tables([changes.cast(UPDATES), self._deletes(read_from, slice_end)])

    def _deletes(self, read_from: np.ndarray, slice_end: int) -> pa.Table:
        """Deletes of the digest entries in ``[read_from, slice_end)`` of each tag (what a slice
        read of it) that the slice did not find."""
        stamps = self.digest["timestamp_ns"]
        gone = (stamps >= read_from[self.digest_tag]) & (stamps < slice_end) & ~self.found
        index = np.flatnonzero(gone)
        self.landed += np.bincount(self.digest_tag[index], minlength=len(self.rows))
        return deleted_rows(self.web_ids.take(self.digest_tag[index]),
                            pa.array([self.names[t] for t in self.digest_tag[index]], pa.string()),
                            stamps[index], self.digest["ordinal"][index])

    def outcome(self) -> pa.Table:
        """Each tag's state after the read (state.OUTCOME). Its digest: the entries of the old one
        outside what was read, and those of what was read or reported, from the look-back
        before its cursor (or the plan's end, if that comes first) on.

        Without a marker a tag that got past its old cursor moves there; one that did not keeps
        it. With a marker (a tag that did not fail) the cursor is one tick (100 ns, PI's resolution) past its newest value: a
        change reported later at or after it is new. A tag that failed keeps no marker: its
        next batch reads its look-back (a marker that moved past changes not landed, or a read
        after registering that did not finish, would lose them)."""
        parts = list(zip(*self.kept)) or [[np.empty(0, np.int64)], [np.empty(0, DIGEST_ENTRY)]]
        tags, entries = (np.concatenate(p) for p in parts)
        rows = []
        for i, row in enumerate(self.rows):
            old, position = row["cursor_ns"], int(self.position[i])
            marker = None if i in self.errors else self.marker[i]
            if marker is not None:
                newest = int(self.newest[i]) + TICK_NS if self.newest[i] != _NO_TIME else None
                cursor = max((c for c in (old, newest) if c is not None), default=None)
            elif position > (old if old is not None else row["read_from_ns"]):
                cursor = position
            else:
                cursor = old
            olds = self.digest[self.digest_tag == i]
            olds = olds[(olds["timestamp_ns"] < self.read_from[i]) | (olds["timestamp_ns"] >= position)]
            mine = np.concatenate([olds, entries[tags == i]])
            digest = None
            if cursor is not None:
                floor = min(cursor, self.end) - self.lookback
                digest = digest_bytes(mine[(mine["timestamp_ns"] >= floor)
                                           & ((mine["timestamp_ns"] < cursor) | (marker is not None))])
            seconds = (min(position, self.end) - self.read_from[i]) / NS_PER_SECOND
            rate = row["rate"]
            if seconds > 0 and i not in self.errors and not self.polled[i]:
                rate = self.read[i] / seconds
            rows.append({**row, "cursor_ns": cursor, "digest": digest, "last_error": self.errors.get(i),
                         "marker": marker, "values_read": int(self.read[i]), "values_landed": int(self.landed[i]),
                         "rate": rate})
        return pa.Table.from_pylist(rows, schema=OUTCOME)


def digest_bytes(entries: np.ndarray) -> bytes:
    """Entries as a digest: one per key (a later entry replaces an earlier one), sorted, laid out
    column by column after :data:`_BY_COLUMN` (see there)."""
    order = np.lexsort((np.arange(len(entries)), entries["ordinal"], entries["timestamp_ns"]))
    ordered = entries[order]
    last = np.ones(len(ordered), dtype=bool)
    last[:-1] = (ordered["timestamp_ns"][1:] != ordered["timestamp_ns"][:-1]) | \
        (ordered["ordinal"][1:] != ordered["ordinal"][:-1])
    ordered = ordered[last]
    if not len(ordered):
        return b""
    steps = np.diff(ordered["timestamp_ns"], prepend=np.int64(0))
    return b"".join([_BY_COLUMN, steps.astype("<i8").tobytes(), ordered["ordinal"].astype("<i4").tobytes(),
                     ordered["hash"].astype("<u8").tobytes()])


def digest_entries(digest: bytes | None) -> np.ndarray:
    """The entries of a digest, either layout."""
    if not digest:
        return np.empty(0, dtype=DIGEST_ENTRY)
    if len(digest) % DIGEST_ENTRY.itemsize != len(_BY_COLUMN) or not digest.startswith(_BY_COLUMN):
        return np.frombuffer(digest, dtype=DIGEST_ENTRY)  # entry by entry (written before 2026-12)
    count = len(digest) // DIGEST_ENTRY.itemsize
    entries = np.empty(count, dtype=DIGEST_ENTRY)
    at = len(_BY_COLUMN)
    entries["timestamp_ns"] = np.cumsum(np.frombuffer(digest, "<i8", count, at))
    entries["ordinal"] = np.frombuffer(digest, "<i4", count, at + 8 * count)
    entries["hash"] = np.frombuffer(digest, "<u8", count, at + 12 * count)
    return entries
