"""Tables of values PI computes on a fixed grid of time: interpolated values and summaries.

Both are incremental over *windows*: times aligned to the table's interval (counted from
1970-01-01T00:00:00Z). The offset Spark checkpoints is the end of the last window; a batch's
window ends no later than ``pi.end - pi.lookback`` (a value PI interpolates or summarizes
depends on the values around it, and late values arrive up to the look-back after their time).
The first window starts at ``pi.start`` rounded up to the grid; a tag selected later starts
with the window it was selected in.

Each tag has a cursor, where its rows are complete (:class:`WindowCursors`, files in
pi.state_path): a batch reads each tag from its cursor to the window's end, so a tag whose read
failed (after the client's retries and one more try) keeps its cursor, the others go on, and a
later batch reads what it missed (the next run's, even when the window has not moved); every
grid time and interval lands once. The failed tags of
a batch go to pi_catalog_log (table, tag, the server's message) and into the run's summary.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from pi_client import PiClient, ReadResult, Tag, read_interpolated, read_summaries
from pi_client.times import NS_PER_SECOND

from pi_lakeflow.config.settings import Settings
from pi_lakeflow.runtime.discovery import select_tags
from pi_lakeflow.runtime.landing import landing_columns
from pi_lakeflow.runtime.plan import shard_of
from pi_lakeflow.state.files import read_arrows, write_arrow
from pi_lakeflow.state.offsets import OffsetFolders
from pi_lakeflow.tables.schemas import INTERPOLATED, SPARK_TIMESTAMP, SUMMARIES

NUMERIC_POINT_TYPES = ("Float16", "Float32", "Float64", "Int16", "Int32")


#: One row per tag of a partition after a batch: where its rows are complete, its last error.
CURSORS = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("point_type", pa.string()),
    pa.field("cursor_ns", pa.int64(), nullable=False),
    pa.field("error", pa.string()),
])


class WindowCursors:
    """The cursor files of one window table, per offset: ``windows/<table>/<end>-<retry>/part-<p>.arrow``
    holds a partition's tags after the batch that ended at that offset (state.offsets.OffsetFolders).

    An offset is ``{"end_ns": end of the window, "retry": n}``: a batch that only reads again what
    tags behind their cursors missed keeps the window's end and counts ``retry`` up, so that Spark
    sees a new offset."""

    def __init__(self, state_path: str | os.PathLike, table: str):
        self.folders = OffsetFolders(Path(state_path) / "windows" / table, width=0)

    @staticmethod
    def _key(offset: dict) -> tuple[int, int]:
        return offset["end_ns"], offset["retry"]

    def offsets(self) -> list[dict]:
        """The offsets that have files, oldest first."""
        return [{"end_ns": end, "retry": retry} for end, retry in self.folders.offsets()]

    def write(self, offset: dict, partition: int, rows: pa.Table) -> None:
        write_arrow(self.folders.file(self._key(offset), "part", partition), rows.cast(CURSORS), {})

    def after(self, offset: dict) -> pa.Table:
        """Every tag's row after the batch that ended at ``offset`` (none: empty)."""
        return read_arrows(list(self.folders.files(self._key(offset), "part").values()), CURSORS)

    def behind(self, offset: dict) -> bool:
        """Whether a tag's rows end before ``offset``'s window end (its read failed)."""
        cursors = self.after(offset)["cursor_ns"].to_pylist()
        return any(cursor < offset["end_ns"] for cursor in cursors)

    def prune(self, committed: dict) -> None:
        """Drop the files of the offsets no replay needs (state.offsets.KEEP)."""
        self.folders.prune(self._key(committed))


class WindowReader:
    """One incremental table over aligned windows: which tags, which window is ready, how to read
    one. Subclasses say what one interval's read is (:meth:`read_window`)."""

    #: The registry table it reads, and that table's schema.
    table: ClassVar[str]
    schema: ClassVar[pa.Schema]
    #: Items the server returns per tag and interval (bounds a request).
    items_per_interval: ClassVar[int] = 1

    def __init__(self, settings: Settings, interval_ns: int, name_filter: str):
        self.settings, self.interval_ns = settings, interval_ns
        self.name_filter = re.compile("^" + re.escape(name_filter).replace(r"\*", ".*").replace(r"\?", ".") + "$",
                                      re.IGNORECASE)

    def first(self, now_ns: int) -> int:
        """Where the first window starts: pi.start rounded up to the grid."""
        return -(-self.settings.start_ns(now_ns) // self.interval_ns) * self.interval_ns

    def ready(self, now_ns: int) -> int:
        """Where the window that can be read now ends: pi.end minus pi.lookback, down to the grid."""
        return (self.settings.end_ns(now_ns) - self.settings.lookback_ns) // self.interval_ns * self.interval_ns

    def select(self, client: PiClient) -> list[Tag]:
        """The tags of this pipeline's shard that the settings and the table's filter select."""
        points = select_tags(client, self.settings).table
        index, count = self.settings.shard
        return [Tag(w, n, t) for w, n, t in zip(*(points[c].to_pylist() for c in ("web_id", "name", "point_type")))
                if shard_of(w, count) == index and self.name_filter.match(n or "") and self.wants(t or "")]

    def wants(self, point_type: str) -> bool:
        """Whether a point of this type belongs in the table."""
        return True

    def plan(self, client: PiClient, previous: pa.Table, start_ns: int) -> list[tuple[Tag, int]]:
        """Each selected tag with where its read starts: its cursor after the last batch (a tag
        that failed is behind), else ``start_ns`` (a tag new to the selection)."""
        cursors = dict(zip(previous["web_id"].to_pylist(), previous["cursor_ns"].to_pylist()))
        return [(tag, min(cursors.get(tag.web_id, start_ns), start_ns)) for tag in self.select(client)]

    def read(self, client: PiClient, tags: list[tuple[Tag, int]], end_ns: int, ingested_ns: int
             ) -> tuple[list[pa.Table], pa.Table]:
        """The rows of ``tags`` (each from its cursor) up to ``end_ns``, and each tag's cursor
        after the read (CURSORS). Tags that start together are read together, in chunks of at
        most the server's item limit per tag and about ``values_per_batch`` values per chunk; a
        tag that fails is read once more, then keeps its cursor where its complete chunks end."""
        by_start: dict[int, list[Tag]] = {}
        for tag, start in tags:
            by_start.setdefault(start, []).append(tag)
        landed: list[pa.Table] = []
        cursor: dict[str, int] = {}
        errors: dict[str, str] = {}
        for start, group in sorted(by_start.items()):
            limits = client.limits
            per_chunk = max(1, min(limits.max_items_per_call // self.items_per_interval,
                                   limits.values_per_batch // max(1, len(group) * self.items_per_interval)))
            chunk_start = start
            while chunk_start < end_ns and group:
                chunk_end = min(end_ns, chunk_start + per_chunk * self.interval_ns)
                result = self.read_window(client, group, chunk_start, chunk_end)
                values, failed = result.values, result.errors
                if failed:
                    again = self.read_window(client, [t for t in group if t.web_id in failed], chunk_start, chunk_end)
                    values, failed = pa.concat_tables([values, again.values]), again.errors
                landed.append(self.land(values, end_ns, ingested_ns))
                errors.update(failed)
                group = [t for t in group if t.web_id not in failed]
                for tag in group:
                    cursor[tag.web_id] = chunk_end
                chunk_start = chunk_end
        rows = [{"web_id": tag.web_id, "name": tag.name, "point_type": tag.point_type,
                 "cursor_ns": cursor.get(tag.web_id, start), "error": errors.get(tag.web_id)} for tag, start in tags]
        return landed, pa.Table.from_pylist(rows, schema=CURSORS)

    def read_window(self, client: PiClient, tags: list[Tag], start_ns: int, end_ns: int) -> ReadResult:
        """PI's values of ``tags`` for the grid times or intervals of ``[start_ns, end_ns)``."""
        raise NotImplementedError

    def land(self, values: pa.Table, end_ns: int, ingested_ns: int) -> pa.Table:
        """``values`` (from :meth:`read_window`) as rows of the table; ``end_ns``: the batch's end."""
        raise NotImplementedError


class Interpolated(WindowReader):
    """pi_timeseries_interpolated: every selected tag's value at each grid time."""

    table = "pi_timeseries_interpolated"
    schema = INTERPOLATED

    def __init__(self, settings: Settings):
        super().__init__(settings, settings.interpolated_interval_ns, settings.interpolated_name_filter)

    def read_window(self, client: PiClient, tags: list[Tag], start_ns: int, end_ns: int) -> ReadResult:
        # PI's interpolated end time is inclusive: the last grid time of [start, end) is end - interval.
        return read_interpolated(client, tags, start_ns, end_ns - self.interval_ns, _pi_interval(self.interval_ns))

    def land(self, values: pa.Table, end_ns: int, ingested_ns: int) -> pa.Table:
        return landing_columns(values, end_ns // NS_PER_SECOND, ingested_ns, INTERPOLATED)


class Summaries(WindowReader):
    """pi_timeseries_summaries: per numeric tag and interval, PI's time-weighted summaries."""

    table = "pi_timeseries_summaries"
    schema = SUMMARIES
    #: PI summary type -> column.
    TYPES = {"Average": "average", "Minimum": "minimum", "Maximum": "maximum", "Count": "count",
             "PercentGood": "percent_good"}
    items_per_interval = len(TYPES)

    def __init__(self, settings: Settings):
        super().__init__(settings, settings.summaries_interval_ns, settings.summaries_name_filter)

    def wants(self, point_type: str) -> bool:
        return point_type in NUMERIC_POINT_TYPES

    def read_window(self, client: PiClient, tags: list[Tag], start_ns: int, end_ns: int) -> ReadResult:
        return read_summaries(client, tags, start_ns, end_ns, _pi_interval(self.interval_ns), tuple(self.TYPES),
                              "TimeWeighted")

    def land(self, values: pa.Table, end_ns: int, ingested_ns: int) -> pa.Table:
        """PI's one row per summary type as one row per tag and interval; a statistic PI could
        not compute (a bad value) is null."""
        by_interval: dict[tuple[str, int], dict] = {}
        starts = values["timestamp"].cast(pa.int64()).to_pylist()
        for row, start in zip(values.select(["web_id", "name", "summary_type", "value_double", "good", "units"])
                              .to_pylist(), starts):
            found = by_interval.setdefault((row["web_id"], start), {
                "web_id": row["web_id"], "name": row["name"], "start": start, "units": row["units"]})
            found[self.TYPES[row["summary_type"]]] = row["value_double"] if row["good"] else None
        rows = list(by_interval.values())

        def column(name: str, kind: pa.DataType) -> pa.Array:
            return pa.array([r.get(name) for r in rows], kind)

        def micros(ns: list[int]) -> pa.Array:
            return pa.array([n // 1000 for n in ns], pa.int64()).cast(SPARK_TIMESTAMP)

        start = micros([r["start"] for r in rows])
        return pa.table({
            "web_id": column("web_id", pa.string()), "name": column("name", pa.string()),
            "interval_start": start, "interval_end": micros([r["start"] + self.interval_ns for r in rows]),
            **{c: column(c, pa.float64()) for c in ("average", "minimum", "maximum")},
            "count": pa.array([None if r.get("count") is None else int(r["count"]) for r in rows], pa.int64()),
            "percent_good": column("percent_good", pa.float64()), "units": column("units", pa.string()),
            "batch": pa.array([end_ns // NS_PER_SECOND] * len(rows), pa.int64()),
            "ingested_at": micros([ingested_ns] * len(rows)),
            "date": pc.cast(pc.cast(start, pa.timestamp("s", tz="UTC"), safe=False), pa.date32()),
        }, schema=SUMMARIES)


def _pi_interval(interval_ns: int) -> str:
    """An interval as PI Web API writes one: whole seconds."""
    return f"{interval_ns // NS_PER_SECOND}s"
