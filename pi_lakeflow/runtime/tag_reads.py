"""Per tag of a partition, across the time slices of its task: what has been read, classified
against the tag's digest (Add, Update, unchanged, Delete), and the state it leaves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pi_client import Tag
from pi_client.schemas import UPDATES
from pi_client.times import NS_PER_SECOND, TICK_NS

from pi_lakeflow.runtime.digests import DIGEST_ENTRY, digest_bytes, digest_entries
from pi_lakeflow.runtime.landing import ADD, UPDATE, deleted_rows, value_hashes
from pi_lakeflow.state.store import OUTCOME

#: The shortest time slice (and the grid a re-read around changes ends on, at the least).
MIN_SLICE_NS = 60 * NS_PER_SECOND
_NO_TIME = np.iinfo(np.int64).min


class TagReads:
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
