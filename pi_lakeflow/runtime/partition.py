"""A time-series task: read one tag partition of a planned batch, and land what changed.

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
The per-tag bookkeeping across time slices is :class:`tag_reads.TagReads`; the driver's plan,
``plan.py``.
"""

from __future__ import annotations

import time
from typing import Iterator

import numpy as np
import pyarrow as pa

from pi_client import PiClient, PiError, read_recorded
from pi_client.schemas import UPDATES
from pi_client.times import NS_PER_SECOND
from pi_client.updates import Subscription, UpdatesResult, changes_since, horizon, register

from pi_lakeflow.runtime.landing import landing_columns
from pi_lakeflow.runtime.tag_reads import MIN_SLICE_NS, TagReads
from pi_lakeflow.state.store import PartProgress, PartStats, StateStore

#: The first time slice of a partition whose tags' rate is not known yet.
PROBE_SLICE_NS = 3600 * NS_PER_SECOND


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
    (:func:`follow_changes`): they are read only around a change before their cursor, or from
    the look-back when the server lost the marker; the tags this batch reads up to its end are
    registered before they are read, so that the next batch takes their changes from here on.
    """
    started_ns, started = time.time_ns(), time.perf_counter()
    before = client.transport.stats.snapshot()
    info, plan = store.plan_part(batch, partition)
    progress = TagReads(plan.to_pylist(), info.lookback_ns, info.end_ns)
    if info.markers:
        reported = follow_changes(client, progress)
        if len(reported):
            yield landing_columns(reported, batch, started_ns)
    target = client.limits.values_per_batch
    first, last = progress.window()
    length = first_slice(progress, target)
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


def follow_changes(client: PiClient, progress: TagReads) -> pa.Table:
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


def first_slice(progress: TagReads, target: int) -> int:
    """About ``target`` values' worth of time at the reading tags' known rates; a probe if one is unknown."""
    rates = [r["rate"] for r, reading in zip(progress.rows, progress.reading()) if reading]
    if any(r is None for r in rates):
        return PROBE_SLICE_NS
    total = sum(rates) / NS_PER_SECOND  # values per nanosecond
    return max(MIN_SLICE_NS, int(target / total)) if total else np.iinfo(np.int64).max // 2
