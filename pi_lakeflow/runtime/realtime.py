"""Real-time reads: PI stream updates for tag partitions, polled again and again. No Spark here.

Each *poll* is one micro-batch of the ``pi_updates`` source. Its partitions are the tag groups of
a layout fixed when the stream starts (``pi.partition_size`` tags each); the task of partition p
at poll n takes each tag's marker from poll n-1, asks the server for everything since (Add,
Update and Delete events, pi_client.updates.poll), and leaves the new markers for poll n::

    updates/layout.arrow                    the tags and their partitions
    updates/polls/00000042/part-00003.arrow markers, cursors and errors after poll 42, partition 3

The offset Spark checkpoints is the poll number; the markers a poll starts from are the files of
the poll before it, which exist once that poll's micro-batch has run, so a restart resumes
exactly where the last committed poll ended, and a replayed poll starts again from the same
markers (the server keeps a marker until it expires). A marker the server no longer has
(expired, refused, or the stream was down longer than the server keeps updates) is replaced: the
tag is registered again and its recorded values are re-read from its cursor (the newest
timestamp landed); the values at the cursor that already landed are skipped (``at_cursor``
counts them), so nothing repeats and nothing after the cursor is missed. Changes made while the
marker was lost to values *before* the cursor (late back-fills, edits, deletes) are not seen
here; the scheduled time-series pipeline's look-back catches those.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pi_client import PiClient, PiError
from pi_client.updates import Subscription, end_timestamps, poll, register

from pi_lakeflow.runtime.discovery import select_tags
from pi_lakeflow.runtime.landing import landing_columns
from pi_lakeflow.config.settings import Settings
from pi_lakeflow.state.files import read_arrow, write_arrow
from pi_lakeflow.state.layouts import conformed
from pi_lakeflow.state.offsets import OffsetFolders
from pi_lakeflow.tables.schemas import TIMESERIES

LAYOUT = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("partition", pa.int32(), nullable=False),
    pa.field("point_type", pa.string()),  # "Timestamp" fills value_timestamp; null in older layouts
])

#: One row per tag of a partition after a poll. ``marker`` null: not registered yet (or its
#: registration failed). ``cursor_ns``: newest timestamp landed (at registration: the newest
#: recorded); ``at_cursor``: how many values at that timestamp are known.
MARKERS = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("marker", pa.string()),
    pa.field("cursor_ns", pa.int64()),
    pa.field("at_cursor", pa.int32(), nullable=False),
    pa.field("events", pa.int64(), nullable=False),
    pa.field("recovered", pa.bool_(), nullable=False),
    pa.field("error", pa.string()),
])


class MarkerStore:
    """The files of one pipeline's stream-updates source (see the module docstring): a folder per
    poll (state.offsets.OffsetFolders)."""

    def __init__(self, path: str | os.PathLike):
        self.root = Path(path) / "updates"
        self.folders = OffsetFolders(self.root / "polls")

    def layout(self) -> pa.Table | None:
        path = self.root / "layout.arrow"
        return conformed(read_arrow(path)[0], LAYOUT) if path.is_file() else None

    def write_layout(self, layout: pa.Table) -> None:
        write_arrow(self.root / "layout.arrow", layout.cast(LAYOUT), {})

    def partitions(self) -> list[int]:
        layout = self.layout()
        return [] if layout is None else sorted(set(layout["partition"].to_pylist()))

    def write(self, poll_number: int, partition: int, rows: pa.Table, stats: dict) -> None:
        write_arrow(self.folders.file((poll_number,), "part", partition), rows.cast(MARKERS), stats)

    def read(self, poll_number: int, partition: int) -> tuple[pa.Table, dict] | None:
        path = self.folders.file((poll_number,), "part", partition)
        return read_arrow(path) if path.is_file() else None

    def write_events(self, poll_number: int, partition: int, events: pa.Table) -> None:
        write_arrow(self.folders.file((poll_number,), "events", partition), events.cast(TIMESERIES), {})

    def events(self, poll_number: int, partition: int) -> pa.Table | None:
        """The rows a channel poll landed for a partition (channels only: a marker poll reads its
        events from the server in its task)."""
        path = self.folders.file((poll_number,), "events", partition)
        return read_arrow(path)[0] if path.is_file() else None

    def latest(self) -> dict[str, dict]:
        """Every tag's row (MARKERS) after the newest poll that has its partition."""
        newest = (self.before(1 << 62, p) for p in self.partitions())
        return {r["web_id"]: r for table in newest if table is not None for r in table.to_pylist()}

    def polls(self) -> list[int]:
        return [number for number, in self.folders.offsets()]

    def before(self, poll_number: int, partition: int) -> pa.Table | None:
        """The partition's markers after the newest poll before ``poll_number`` that has them."""
        for earlier in reversed([p for p in self.polls() if p < poll_number]):
            found = self.read(earlier, partition)
            if found is not None:
                return found[0]
        return None

    def prune(self, committed: int) -> None:
        """Remove the polls no replay needs (state.offsets.KEEP)."""
        self.folders.prune((committed,))

    def drain(self, on: bool = True) -> None:
        """Ask the source to start no more polls (``pi-lakeflow stream`` stopping), or not."""
        flag = self.root / "draining"
        if on:
            flag.parent.mkdir(parents=True, exist_ok=True)
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def draining(self) -> bool:
        return (self.root / "draining").exists()


def plan_layout(client: PiClient, settings: Settings, previous: pa.Table | None) -> pa.Table:
    """The selected tags in partitions of ``pi.partition_size`` (LAYOUT). Tags of ``previous``
    that are still selected keep their partition (their markers are in its files); new tags
    fill partitions after the last one."""
    points = select_tags(client, settings).table
    known = dict(zip(previous["web_id"].to_pylist(), previous["partition"].to_pylist())) if previous else {}
    selected = points.select(["web_id", "name", "point_type"]).to_pylist()
    first_new = max(known.values(), default=-1) + 1
    new = [r for r in selected if r["web_id"] not in known]
    rows = [{**r, "partition": known[r["web_id"]]} for r in selected if r["web_id"] in known]
    rows += [{**r, "partition": first_new + i // settings.partition_size} for i, r in enumerate(new)]
    return pa.Table.from_pylist(rows, schema=LAYOUT)


def read_poll(client: PiClient, store: MarkerStore, poll_number: int, partition: int) -> Iterator[pa.Table]:
    """One partition's poll: its events as rows of pi_timeseries_updates, then its markers saved.

    A server that cannot be reached fails no task: every tag keeps its marker and carries the
    error, and the next poll tries again (recovering the markers that expired meanwhile)."""
    started_ns = time.time_ns()
    layout = store.layout()
    tags = layout.filter(pc.equal(layout["partition"], partition))
    previous = {r["web_id"]: r for r in (store.before(poll_number, partition) or MARKERS.empty_table()).to_pylist()}
    rows = {w: previous.get(w) or {"web_id": w, "name": n, "marker": None, "cursor_ns": None, "at_cursor": 0}
            for w, n in zip(tags["web_id"].to_pylist(), tags["name"].to_pylist())}
    point_types = dict(zip(tags["web_id"].to_pylist(), tags["point_type"].to_pylist()))
    events, errors, recovered = TIMESERIES.empty_table(), {}, []
    try:
        unregistered = [w for w, r in rows.items() if r["marker"] is None]
        if unregistered:
            rows.update(_register(client, {w: rows[w] for w in unregistered}, errors))
        subscriptions = {w: Subscription(w, r["marker"], r["cursor_ns"], r["name"] or "", point_types[w] or "")
                         for w, r in rows.items() if r["marker"] is not None}
        if subscriptions:
            result = poll(client, subscriptions)
            errors.update(result.errors)
            recovered = result.recovered
            values = skip_landed_at_cursor(result.events, {w: rows[w] for w in recovered})
            events = landing_columns(values, poll_number, started_ns)
            adds = _adds_per_timestamp(values)
            subscribed = result.subscriptions  # a tag the poll failed for keeps its marker and cursor
            rows = {w: after_landing({**r, "marker": subscribed[w].marker}, subscribed[w].cursor, adds)
                    if w in subscribed else r for w, r in rows.items()}
    except PiError as error:
        errors = {w: str(error) for w in rows}
    if len(events):
        yield events
    counts = pc.value_counts(events["web_id"]).to_pylist() if len(events) else []
    per_tag = {c["values"]: c["counts"] for c in counts}
    table = pa.Table.from_pylist([{**r, "events": per_tag.get(w, 0), "recovered": w in recovered,
                                   "error": errors.get(w)} for w, r in rows.items()], schema=MARKERS)
    store.write(poll_number, partition, table, {"started_ns": started_ns, "seconds": (time.time_ns() - started_ns) / 1e9,
                                                **_read_latency(events)})


def write_pushed(store: MarkerStore, poll_number: int, events: pa.Table, rows: pa.Table) -> None:
    """A channel poll (pi_lakeflow.channels): for each partition of the layout, its events as rows
    of pi_timeseries_updates, then its tags' rows (MARKERS), in the files a marker poll writes."""
    started_ns = time.time_ns()
    layout = store.layout()
    for partition in pc.unique(layout["partition"]).to_pylist():
        tags = layout.filter(pc.equal(layout["partition"], partition))["web_id"]
        landed = landing_columns(events.filter(pc.is_in(events["web_id"], tags)), poll_number, started_ns)
        store.write_events(poll_number, partition, landed)
        store.write(poll_number, partition, rows.filter(pc.is_in(rows["web_id"], tags)),
                    {"started_ns": started_ns, "seconds": 0.0, **_read_latency(landed)})


def _read_latency(events: pa.Table) -> dict:
    """Seconds from each Add's timestamp to now (the server's clock and ours agree, with NTP)."""
    adds = events.filter(pc.equal(events["action"], "Add")) if len(events) else events
    if not len(adds):
        return {}
    seconds = (time.time_ns() - adds["timestamp_ns"].to_numpy()) / 1e9
    return {"latency_p50": float(np.percentile(seconds, 50)), "latency_p95": float(np.percentile(seconds, 95))}


def poll_summary(store: MarkerStore, poll_number: int) -> dict:
    """What one poll did, over its partitions: events, tags recovered and failed, read latency."""
    parts = [found for p in store.partitions() if (found := store.read(poll_number, p)) is not None]
    tables = [t for t, _ in parts]
    events = [pc.sum(t["events"]).as_py() or 0 for t in tables]
    timed = [(m["latency_p50"], m["latency_p95"], n) for (_, m), n in zip(parts, events) if "latency_p50" in m]
    weight = sum(n for *_, n in timed)
    return {"events": sum(events),
            "recovered": sum(pc.sum(t["recovered"]).as_py() or 0 for t in tables),
            "failed": sum(len(t) - t["error"].null_count for t in tables),
            "latency_p50": sum(p50 * n for p50, _, n in timed) / weight if weight else None,
            "latency_p95": max((p95 for _, p95, _ in timed), default=None)}


def _register(client: PiClient, rows: dict[str, dict], errors: dict[str, str]) -> dict[str, dict]:
    """Subscribe tags: a marker each, then a cursor at the newest value recorded (history is the
    time-series pipeline's; this table starts after it). Registering first means a value that
    appears in between comes as an update, and is also at or before the cursor: no gap."""
    fresh = register(client, list(rows), 0)
    ends, failed = end_timestamps(client, list(fresh))
    errors.update(failed)
    return {w: {**rows[w], "marker": fresh[w].marker, "cursor_ns": ends[w], "at_cursor": 1} for w in ends}


def skip_landed_at_cursor(events: pa.Table, lost: dict[str, dict]) -> pa.Table:
    """Drop, of the tags whose marker was lost, the re-read values at their cursor that had landed
    (the re-read starts at the cursor; the first ``at_cursor`` values there are repeats)."""
    if not lost or not len(events):
        return events
    web_ids = events["web_id"].to_pylist()
    stamps = events["timestamp"].cast(pa.int64()).to_numpy()
    ordinals = events["ordinal"].to_numpy()
    keep = np.ones(len(events), dtype=bool)
    for i, web_id in enumerate(web_ids):
        row = lost.get(web_id)
        if row is not None and stamps[i] == row["cursor_ns"] and ordinals[i] < row["at_cursor"]:
            keep[i] = False
    return events.filter(pa.array(keep))


def _adds_per_timestamp(events: pa.Table) -> dict[tuple[str, int], int]:
    """How many Add events each (web_id, timestamp) has."""
    adds = events.filter(pc.equal(events["action"], "Add"))
    if not len(adds):
        return {}
    keys = pa.table({"web_id": adds["web_id"], "ns": adds["timestamp"].cast(pa.int64())})
    counted = keys.group_by(["web_id", "ns"]).aggregate([([], "count_all")])
    return dict(zip(zip(counted["web_id"].to_pylist(), counted["ns"].to_pylist()), counted["count_all"].to_pylist()))


def land(rows: dict[str, dict], events: pa.Table) -> None:
    """Move the cursors of ``rows`` (MARKERS rows by WebId) past the Adds of ``events``."""
    if not len(events):
        return
    adds = _adds_per_timestamp(events)
    newest: dict[str, int] = {}
    for web_id, stamp in adds:
        newest[web_id] = max(stamp, newest.get(web_id, stamp))
    for web_id, stamp in newest.items():
        row = rows[web_id]
        rows[web_id] = after_landing(row, max(stamp, row["cursor_ns"] if row["cursor_ns"] is not None else stamp), adds)


def after_landing(row: dict, cursor: int | None, adds: dict[tuple[str, int], int]) -> dict:
    """A tag's row with its new cursor (``None``: unchanged, the read failed for it);
    ``at_cursor`` counts the Adds at the new cursor."""
    if cursor is None:
        return row
    at_new = adds.get((row["web_id"], cursor), 0)
    at_cursor = row["at_cursor"] + at_new if cursor == row["cursor_ns"] else at_new
    return {**row, "cursor_ns": cursor, "at_cursor": at_cursor}
