"""Spark glue: Python data sources over pi_client and the state store. No PI logic lives here.

* ``pi_timeseries`` (streaming): each micro-batch is one planned batch; its partitions are tag
  groups, read by Spark tasks on the executors, each calling :func:`extract.read_partition`.
  The offset is the batch number; the per-tag cursors are in the state store (see state.py).
* ``pi_updates`` (streaming, real time): each micro-batch is one poll of PI stream updates; its
  partitions are tag groups, each task calling :func:`realtime.read_poll`. The offset is the poll
  number; the markers are in the state store (see realtime.py). With ``pi.updates.transport``
  channels, the reader on the driver holds the channels (channels.py) and writes what they pushed
  as the next poll's files; the tasks read those files.
* ``pi_catalog`` (batch, option ``table``): a table of tables.CATALOG, read from the server (its
  failed items go to the state store), or of tables.STATE (``pi_ingestion_log``,
  ``pi_tag_cursors``) or ``pi_catalog_log``, read from the state store; one task.

Every source takes the pipeline settings as options (settings.configuration) and parses them
where it runs.

The stream readers speak both Python data source protocols that Databricks pipelines run today:
Spark 4.2 and later call ``latestOffset(start, limit)`` (admission control; every batch reads
all that is due, so the limit is ignored), Spark 4.0 and 4.1 call ``latestOffset()``. Without
``start`` a reader takes the end of the last batch Spark ran from the state store (Spark plans a
batch only after the one before it has run), and ``partitions(start, end)``, which every
version calls with both offsets, re-plans a batch planned from another start (a new checkpoint
over an older state folder). Each reader probes ``pi.state_path`` when it is made, on the
driver, and each task before it reads (state.probe: once per Python process).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceReader, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

from . import tables
from .connection import connect
from .discovery import catalog_table
from .extract import plan_batch, read_partition
from .channels import ChannelListener
from .realtime import KEEP_POLLS, MarkerStore, plan_layout, read_poll, write_pushed
from .settings import Settings, parse
from .state import PlanInfo, StateStore, ingestion_log, probe, tag_cursors

#: Batches kept in the state store behind the last committed one (for replays and the log).
KEEP_BATCHES = 3


def _settings(options) -> Settings:
    return parse({k: v for k, v in options.items() if k.startswith("pi.")})


@dataclass
class BatchPartition(InputPartition):
    batch: int
    partition: int


class TimeSeriesReader(DataSourceStreamReader):
    def __init__(self, options):
        self.settings = _settings(options)
        probe(self.settings.state_path)
        self.store = StateStore(self.settings.state_path)

    def initialOffset(self) -> dict:
        return {"batch": 0}

    def latestOffset(self, start: dict | None = None, limit=None) -> dict:
        """The next batch, planned from the tag state after ``start``; ``start`` when nothing is
        due. Without ``start`` (Spark 4.0, 4.1) the newest batch whose tasks all finished."""
        after = self.store.newest_finished() if start is None else start["batch"]
        info = self._plan(after, after + 1)
        return {"batch": after if info is None else info.batch}

    def _plan(self, after: int, batch: int) -> PlanInfo | None:
        """Plan ``batch`` from the tag state after batch ``after`` and keep the plan."""
        if after and after not in self.store.batches():
            raise RuntimeError(f"the stream's checkpoint continues from batch {after}, which pi.state_path "
                               f"{self.settings.state_path} no longer holds (it holds {self.store.batches()}); "
                               f"a full refresh reads every tag again from pi.start")
        with connect(self.settings) as client:
            planned = plan_batch(client, self.settings, self.store.tag_state(after), after, batch, time.time_ns())
        if planned is None:
            return None
        info, rows = planned
        self.store.write_plan(info, rows)
        return info

    def partitions(self, start: dict, end: dict) -> list[BatchPartition]:
        if end["batch"] == start["batch"]:  # Spark asks for the first batch even when nothing is due
            return []
        info = self.store.plan(end["batch"])[0] if end["batch"] in self.store.batches() else None
        # Planned without start (Spark 4.0, 4.1) over another history, or its plan is gone: plan it again.
        if info is None or info.follows != start["batch"]:
            info = self._plan(start["batch"], end["batch"])
            if info is None:
                return []
        return [BatchPartition(info.batch, p) for p in range(info.partitions)]

    def read(self, partition: BatchPartition) -> Iterator[pa.RecordBatch]:
        probe(self.settings.state_path)
        with connect(self.settings) as client:
            for landed in read_partition(client, self.store, partition.batch, partition.partition):
                yield from landed.to_batches(max_chunksize=100_000)

    def commit(self, end: dict) -> None:
        self.store.prune(end["batch"] - KEEP_BATCHES)


class TimeSeriesSource(DataSource):
    """``spark.readStream.format("pi_timeseries")``: PI recorded values, incrementally."""

    @classmethod
    def name(cls) -> str:
        return "pi_timeseries"

    def schema(self) -> StructType:
        return from_arrow_schema(tables.TIMESERIES)

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return TimeSeriesReader(self.options)


@dataclass
class PollPartition(InputPartition):
    poll: int
    partition: int


class UpdatesReader(DataSourceStreamReader):
    def __init__(self, options):
        self.settings = _settings(options)
        probe(self.settings.state_path)
        self.store = MarkerStore(self.settings.state_path)
        self.selected = False
        self.offered: dict | None = None  # the last offset given, for Spark 4.0 and 4.1 (no start)
        self.pushed = self.settings.updates_transport == "channels"
        self.listener: ChannelListener | None = None

    def initialOffset(self) -> dict:
        return {"poll": 0}

    def latestOffset(self, start: dict | None = None, limit=None) -> dict:
        """Markers: one poll after the last, every trigger (a poll with no news lands no rows).
        Channels: a poll when the channels pushed something (or a tag's state changed). Neither
        once the store is draining (a local stop). The tags are selected when the stream starts.
        Without ``start`` (Spark 4.0, 4.1): the last offset given, else the newest poll kept."""
        if start is None:
            start = self.offered or {"poll": max(self.store.polls(), default=0)}
        self.offered = self._next(start)
        return self.offered

    def _next(self, start: dict) -> dict:
        if self.store.draining():
            self.stop()
            return start
        if not self.selected:
            with connect(self.settings) as client:
                self.store.write_layout(plan_layout(client, self.settings, self.store.layout()))
            self.selected = True
        if not self.pushed:
            return {"poll": start["poll"] + 1}
        if self.listener is None:
            self.listener = ChannelListener(self.settings, self.store.layout(), self.store.latest()).start()
        taken = self.listener.take()
        if taken is None:
            return start
        poll = max([start["poll"], *self.store.polls()]) + 1  # after a poll written but never offered
        write_pushed(self.store, poll, *taken)
        return {"poll": poll}

    def partitions(self, start: dict, end: dict) -> list[PollPartition]:
        polls = [n for n in self.store.polls() if start["poll"] < n <= end["poll"]] if self.pushed else [end["poll"]]
        partitions = self.store.partitions()
        return [PollPartition(n, p) for n in polls for p in partitions]

    def read(self, partition: PollPartition) -> Iterator[pa.RecordBatch]:
        probe(self.settings.state_path)
        if self.pushed:
            events = self.store.events(partition.poll, partition.partition)
            yield from events.to_batches(max_chunksize=100_000) if events is not None else ()
            return
        with connect(self.settings) as client:
            for events in read_poll(client, self.store, partition.poll, partition.partition):
                yield from events.to_batches(max_chunksize=100_000)

    def commit(self, end: dict) -> None:
        self.store.prune(end["poll"] - KEEP_POLLS)

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None


class UpdatesSource(DataSource):
    """``spark.readStream.format("pi_updates")``: PI stream updates (Add, Update, Delete), polled."""

    @classmethod
    def name(cls) -> str:
        return "pi_updates"

    def schema(self) -> StructType:
        return from_arrow_schema(tables.UPDATES)

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return UpdatesReader(self.options)


@dataclass
class CatalogPartition(InputPartition):
    table: str


class CatalogReader(DataSourceReader):
    def __init__(self, options):
        self.settings = _settings(options)
        self.table = options["table"]

    def partitions(self) -> list[CatalogPartition]:
        return [CatalogPartition(self.table)]

    def read(self, partition: CatalogPartition) -> Iterator[pa.RecordBatch]:
        probe(self.settings.state_path)
        store = StateStore(self.settings.state_path)
        if partition.table == "pi_tag_cursors":
            found = tag_cursors(store)
        elif partition.table == "pi_ingestion_log":
            found = ingestion_log(store)
        elif partition.table == tables.CATALOG_LOG_NAME:
            found = store.catalog_log()
        else:
            now = time.time_ns()
            with connect(self.settings) as client:
                read = catalog_table(client, self.settings, partition.table, now)
            store.write_catalog_errors(partition.table, read.errors, now)
            found = tables.for_spark(read.table)
        yield from found.to_batches()


class CatalogSource(DataSource):
    """``spark.read.format("pi_catalog").option("table", name)``: points, AF, event frames, cursors."""

    @classmethod
    def name(cls) -> str:
        return "pi_catalog"

    def schema(self) -> StructType:
        table = self.options["table"]
        known = tables.CATALOG_SOURCE_TABLES
        if table not in known:
            raise ValueError(f"pi_catalog has no table '{table}'; it has: {', '.join(known)}")
        return from_arrow_schema(tables.spark_schema(known[table]))

    def reader(self, schema: StructType) -> DataSourceReader:
        return CatalogReader(self.options)


SOURCES = (TimeSeriesSource, UpdatesSource, CatalogSource)
