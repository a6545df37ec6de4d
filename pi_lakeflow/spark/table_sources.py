"""Spark glue: the Python data sources of the registry's tables named by the option ``table``.

* ``pi_catalog`` (batch): a table the registry reads whole on each run (points, AF, event
  frames, the state's log and cursors, pi_catalog_log), by the registry's reader
  (pi_lakeflow.runtime.views); one task.
* ``pi_windows`` (streaming): interpolated values or summaries over aligned time windows
  (pi_lakeflow.runtime.derived); the offset is the end of the last window, the partitions are
  tag groups selected on the driver.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceReader, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

from pi_lakeflow.config.connection import connect
from pi_lakeflow.config.settings import from_options
from pi_lakeflow.errors import UsageError
from pi_lakeflow.runtime.derived import WindowCursors
from pi_lakeflow.runtime.views import ReadContext
from pi_lakeflow.state.catalog_log import CatalogLog, failed_items
from pi_lakeflow.state.files import probe
from pi_lakeflow.state.store import StateStore
from pi_lakeflow.tables import registry


@dataclass
class ViewPartition(InputPartition):
    table: str


class ViewReader(DataSourceReader):
    def __init__(self, options):
        self.settings = from_options(options)
        self.table = registry.table(options["table"])

    def partitions(self) -> list[ViewPartition]:
        return [ViewPartition(self.table.name)]

    def read(self, partition: ViewPartition) -> Iterator[pa.RecordBatch]:
        probe(self.settings.state_path)
        context = ReadContext(self.table.name, self.settings, StateStore(self.settings.state_path), time.time_ns())
        yield from self.table.load_reader()(context).to_batches()


def _declared(options, source: str):
    """The registry's table named by the option ``table``, which ``source`` must read."""
    name = options.get("table", "")
    found = [t.name for t in registry.TABLES if t.source == source]
    if name not in found:
        raise UsageError(f"{source} has no table '{name}'; it has: {', '.join(found)}")
    return registry.table(name)


class CatalogSource(DataSource):
    """``spark.read.format("pi_catalog").option("table", name)``: a table made whole on each run
    (points, AF, event frames, the time-series state's log and cursors): the registry's reader."""

    @classmethod
    def name(cls) -> str:
        return "pi_catalog"

    def schema(self) -> StructType:
        return from_arrow_schema(_declared(self.options, "pi_catalog").schema)

    def reader(self, schema: StructType) -> DataSourceReader:
        return ViewReader(self.options)


@dataclass
class WindowPartition(InputPartition):
    end: dict  # the batch's offset
    partition: int
    tags: list  # (pi_client.Tag, where its read starts)


class WindowsReader(DataSourceStreamReader):
    """The stream of a registry table over aligned time windows (pi_lakeflow.runtime.derived):
    the offset is the end of the last window (and a retry count, runtime.derived.WindowCursors);
    tags are selected on the driver per batch, each read from its cursor."""

    def __init__(self, options):
        self.settings = from_options(options)
        probe(self.settings.state_path)
        self.windows = _declared(options, "pi_windows").load_reader()(self.settings)
        self.cursors = WindowCursors(self.settings.state_path, self.windows.table)

    def initialOffset(self) -> dict:
        return {"end_ns": self.windows.first(self._server_now()), "retry": 0}

    def _server_now(self) -> int:
        """The server's clock: windows end at PI's ``*``, not this machine's."""
        with connect(self.settings) as client:
            return client.server_time()

    def latestOffset(self, start: dict | None = None, limit=None) -> dict:
        """The end of the window ready now; when it has not moved but tags are behind their
        cursors, the same end again (retry + 1). Without ``start`` (Spark 4.0, 4.1): from the
        newest offset with files."""
        if start is None:
            start = (self.cursors.offsets() or [self.initialOffset()])[-1]
        ready = self.windows.ready(self._server_now())
        if ready > start["end_ns"]:
            return {"end_ns": ready, "retry": 0}
        if self.cursors.behind(start):
            return {"end_ns": start["end_ns"], "retry": start["retry"] + 1}
        return start

    def partitions(self, start: dict, end: dict) -> list[WindowPartition]:
        if end == start:
            return []
        with connect(self.settings) as client:
            tags = self.windows.plan(client, self.cursors.after(start), start["end_ns"])
        CatalogLog(self.settings.state_path).clear(self.windows.table)  # each task writes its own
        size = self.settings.partition_size
        return [WindowPartition(end, i // size, tags[i:i + size]) for i in range(0, len(tags), size)]

    def read(self, partition: WindowPartition) -> Iterator[pa.RecordBatch]:
        """The partition's rows; its tags' cursors, and the failed ones in pi_catalog_log."""
        probe(self.settings.state_path)
        with connect(self.settings) as client:
            landed, cursors = self.windows.read(client, partition.tags, partition.end["end_ns"], time.time_ns())
        self.cursors.write(partition.end, partition.partition, cursors)
        errors = dict(failed_items(cursors, "error"))
        CatalogLog(self.settings.state_path).write(self.windows.table, errors, time.time_ns(),
                                                   part=str(partition.partition))
        for rows in landed:
            yield from rows.to_batches(max_chunksize=100_000)

    def commit(self, end: dict) -> None:
        self.cursors.prune(end)


class WindowsSource(DataSource):
    """``spark.readStream.format("pi_windows").option("table", name)``: interpolated values or
    summaries, window by window."""

    @classmethod
    def name(cls) -> str:
        return "pi_windows"

    def schema(self) -> StructType:
        return from_arrow_schema(_declared(self.options, "pi_windows").schema)

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return WindowsReader(self.options)
