"""Real-time reads over channels (``pi.updates.transport: channels``). No Spark here.

A channel is a WebSocket that must stay open, and Spark tasks end with their micro-batch, so the
channels live in the process of the streaming source's reader (the driver): a thread runs an
asyncio loop with one channel per group of tags (as many WebIds as a URL holds, never across
partitions of the layout). What they push waits in memory until the source takes it as the next
poll (:meth:`ChannelListener.take`) and writes it to the store (realtime.write_pushed): the events
and, per tag, the cursor after them, in the files of that poll. The tasks on the executors read
those files, so a replayed poll lands the same rows.

Rows (pi_client.channels): a channel says neither Add nor Update and pushes no deletes. A pushed
value newer than everything landed for its tag is an ``Add`` and moves the tag's cursor; a value
at or before the cursor (an edit, or a value that arrived late) is an ``Update``: apply it as an
upsert on web_id and timestamp. Deletes reach this table only with the marker transport.

Recovery is the marker transport's: whenever a channel opens (first start, restart, after a
dropped connection), each tag's recorded values from its cursor on are read (less the
``at_cursor`` values there that landed), once before connecting (the outage) and once after
(what arrived while connecting; those values the channel then pushes again are dropped), so
nothing after the cursor is lost or repeated. A tag new to the stream starts at its newest
recorded value, read once its channel is open. A group whose catch-up fails for any tag lands
nothing and tries again (1 s, doubling to 30 s); its tags carry the error meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pi_client import PiClient, PiError, Tag, schemas
from pi_client.channels import open_channel
from pi_client.updates import end_timestamps, recorded_since

from pi_lakeflow.config.connection import connect
from pi_lakeflow.runtime.landing import value_hashes
from pi_lakeflow.runtime.realtime import MARKERS, land, skip_landed_at_cursor
from pi_lakeflow.config.settings import Settings

#: Seconds before a failed channel is opened again, doubled per failure up to the ceiling.
RETRY_FIRST, RETRY_CEILING = 1.0, 30.0


class ChannelListener:
    """Channels over the tags of a layout, from the cursors in ``rows`` (MARKERS rows by WebId,
    the last poll's), until :meth:`stop`. Thread-safe: the loop lands, the source takes."""

    def __init__(self, settings: Settings, layout: pa.Table, rows: dict[str, dict]):
        self._settings = settings
        self._partitions: dict[int, list[str]] = {}
        for web_id, partition in zip(layout["web_id"].to_pylist(), layout["partition"].to_pylist()):
            self._partitions.setdefault(partition, []).append(web_id)
        empty = {"marker": None, "cursor_ns": None, "at_cursor": 0}
        self._tags = {r["web_id"]: {**empty, **{k: rows[r["web_id"]][k] for k in empty if r["web_id"] in rows}, **r}
                      for r in layout.select(["web_id", "name", "point_type"]).to_pylist()}
        self._lock = threading.Lock()
        self._events: list[pa.Table] = []
        self._counts: Counter = Counter()
        self._recovered: set[str] = set()
        self._errors: dict[str, str] = {}
        self._changed = False
        self._opening = 0  # groups not yet open (or failed) once: no take before they all are
        self._loop = asyncio.new_event_loop()
        self._main = self._loop.create_task(self._follow_all())
        self._thread = threading.Thread(target=self._run, name="pi-channels", daemon=True)

    def start(self) -> "ChannelListener":
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Close the channels; what was not taken is dropped (the cursors of the last poll are
        where the next listener catches up from)."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._main.cancel)
        self._thread.join(timeout)

    def take(self) -> tuple[pa.Table, pa.Table] | None:
        """What landed since the last take: events (pi_client schemas.UPDATES) and every tag's
        row (MARKERS: cursor, events, recovered, error); ``None`` when nothing changed."""
        with self._lock:
            if self._opening or not (self._events or self._changed):
                return None
            events = pa.concat_tables(self._events) if self._events else schemas.UPDATES.empty_table()
            rows = [{**row, "events": self._counts[w], "recovered": w in self._recovered,
                     "error": self._errors.get(w)} for w, row in self._tags.items()]
            self._events, self._counts, self._recovered, self._changed = [], Counter(), set(), False
        return events, pa.Table.from_pylist(rows, schema=MARKERS)

    # ---- the loop's side -------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main)
        except asyncio.CancelledError:
            pass
        finally:  # let the connections close (their keepalive tasks end) before the loop does
            left = asyncio.all_tasks(self._loop)
            for task in left:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()

    async def _follow_all(self) -> None:
        with connect(self._settings) as client:
            groups = [g for tags in self._partitions.values() for g in client.url_groups(tags)]
        with self._lock:
            self._opening = len(groups)
        await asyncio.gather(*(self._follow(g) for g in groups))

    async def _follow(self, group: list[str]) -> None:
        """One channel, opened again whenever it fails, caught up each time (module docstring)."""
        tags = [Tag(w, self._tags[w]["name"] or "", self._tags[w]["point_type"] or "") for w in group]
        wait, first = RETRY_FIRST, True
        while True:
            try:
                with connect(self._settings) as client:
                    await asyncio.to_thread(self._catch_up, client, tags, True)
                    async with open_channel(client, tags) as channel:
                        overlap = await asyncio.to_thread(self._catch_up, client, tags, False)
                        self._failed(dict.fromkeys(group), first)
                        wait, first = RETRY_FIRST, False
                        while True:
                            self._land_pushed(await channel.receive(), overlap)
            except Exception as error:  # noqa: BLE001 - shown per tag and retried, never a dead thread
                self._failed(dict.fromkeys(group, str(error) if isinstance(error, PiError)
                                           else f"{type(error).__name__}: {error}"), first)
                first = False
            await asyncio.sleep(wait)
            wait = min(wait * 2, RETRY_CEILING)

    def _catch_up(self, client: PiClient, tags: list[Tag], outage: bool) -> set[int]:
        """Land the recorded values after the cursors of ``tags`` (a new tag: set its cursor);
        returns their hashes (what the channel may push again). Raises PiError when any tag
        fails. ``outage``: the read before connecting, whose tags count as recovered."""
        group = [t.web_id for t in tags]
        with self._lock:
            rows = {w: dict(self._tags[w]) for w in group}
        known = {w: r["cursor_ns"] for w, r in rows.items() if r["cursor_ns"] is not None}
        fresh = [w for w in group if w not in known]
        events, errors = (recorded_since(client, [t for t in tags if t.web_id in known], known) if known
                          else (schemas.UPDATES.empty_table(), {}))
        events = skip_landed_at_cursor(events, rows)
        ends, failed = end_timestamps(client, fresh) if fresh else ({}, {})
        errors.update(failed)
        if errors:  # _follow shows the message on the group's tags and tries again
            raise PiError(f"{len(errors)} of {len(group)} tags could not catch up, e.g. {next(iter(errors.values()))}")
        with self._lock:
            for web_id, end in ends.items():
                self._tags[web_id].update(cursor_ns=end, at_cursor=1)
            if outage:
                self._recovered.update(known)
            self._land(events)
        return set(value_hashes(events).tolist())

    def _land_pushed(self, values: pa.Table, overlap: set[int]) -> None:
        """Land a message: values already landed by the catch-up dropped, then Add or Update."""
        if not len(values):
            return
        if overlap:
            hashes = value_hashes(values)
            again = np.isin(hashes, np.fromiter(overlap, np.uint64, len(overlap)))
            overlap.difference_update(hashes[again].tolist())
            values = values.filter(pa.array(~again))
        with self._lock:  # every tag of an open channel has a cursor (the catch-up set the new ones)
            cursors = np.array([self._tags[w]["cursor_ns"] for w in values["web_id"].to_pylist()], dtype=np.int64)
            newer = values["timestamp"].cast(pa.int64()).to_numpy() > cursors
            actions = pa.array(np.where(newer, "Add", "Update"), pa.string())
            self._land(values.append_column(schemas.UPDATES.field("action"), actions))

    def _land(self, events: pa.Table) -> None:
        """With the lock held: keep ``events`` for the next take, move the cursors."""
        if not len(events):
            return
        self._events.append(events)
        self._counts.update({c["values"]: c["counts"] for c in pc.value_counts(events["web_id"]).to_pylist()})
        touched = {w: self._tags[w] for w in set(events["web_id"].to_pylist())}
        land(touched, events)
        self._tags.update(touched)

    def _failed(self, errors: dict[str, str | None], first: bool = False) -> None:
        """Record (or clear, with ``None``) the error of each tag; ``first``: its group's first
        try at opening is over."""
        with self._lock:
            if first:
                self._opening -= 1
                self._changed = True
            for web_id, error in errors.items():
                if self._errors.get(web_id) != error:
                    self._changed = True
                    if error is None:
                        self._errors.pop(web_id, None)
                    else:
                        self._errors[web_id] = error

