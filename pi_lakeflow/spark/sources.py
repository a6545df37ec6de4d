"""Spark glue: Python data sources over pi_client and the state store. No PI logic lives here.

* ``pi_timeseries`` (streaming): each micro-batch is one planned batch; its partitions are tag
  groups, read by Spark tasks on the executors, each calling :func:`runtime.partition.read_partition`.
  The offset is the batch number; the per-tag cursors are in the state store (see state.py).
* ``pi_updates`` (streaming, real time): each micro-batch is one poll of PI stream updates; its
  partitions are tag groups, each task calling :func:`realtime.read_poll`. The offset is the poll
  number; the markers are in the state store (see runtime/realtime.py). With ``pi.updates.transport``
  channels, the reader on the driver holds the channels (channels.py) and writes what they pushed
  as the next poll's files; the tasks read those files.
* ``pi_catalog`` and ``pi_windows``: the sources of the registry's tables named by the option
  ``table`` (table_sources.py).

Every source takes the pipeline settings as options (settings.configuration) and parses them
where it runs.

The stream readers speak both Python data source protocols that Databricks pipelines run today:
Spark 4.2 and later call ``latestOffset(start, limit)`` (admission control; Spark's read limit
is ignored: ``pi.step`` bounds a time-series batch), Spark 4.0 and 4.1 call ``latestOffset()``.
Without ``start`` a reader takes the end of the last batch Spark ran from the state store (Spark
plans a batch only after the one before it has run), and ``partitions(start, end)``, which every
version calls with both offsets, re-plans a batch planned from another start (a new checkpoint
over an older state folder). Each reader probes ``pi.state_path`` when it is made, on the
driver, and each task before it reads (state.probe: once per Python process).

Back-fills in steps (``pi_timeseries``, Spark 4.2 and later): the reader supports
Trigger.AvailableNow (a pipeline update's trigger), so one update runs as many batches as the
back-fill's steps take, each committed. ``prepareForTriggerAvailableNow`` fixes the update's end
(the server's now then) so that the update ends; the later batches of one update do not read a
tag whose read failed in it again. Spark 4.0 and 4.1 run one batch per update, to which this
source gives the whole window (no steps): an update still lands everything it can.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

from pi_lakeflow.config.connection import connect
from pi_lakeflow.config.settings import from_options
from pi_lakeflow.runtime.channels import ChannelListener
from pi_lakeflow.errors import StateLostError
from pi_lakeflow.runtime.partition import read_partition
from pi_lakeflow.runtime.plan import plan_next
from pi_lakeflow.runtime.realtime import MarkerStore, plan_layout, read_poll, write_pushed
from pi_lakeflow.state.files import probe
from pi_lakeflow.state.store import PlanInfo, StateStore
from pi_lakeflow.spark.table_sources import CatalogSource, WindowsSource
from pi_lakeflow.tables.schemas import TIMESERIES

try:
    from pyspark.sql.streaming.datasource import SupportsTriggerAvailableNow
    #: Whether Spark can run an update in several batches (admission control, Spark 4.2 and later).
    STEPS = True
except ImportError:  # Spark 4.0 and 4.1: one batch per AvailableNow update
    STEPS = False

    class SupportsTriggerAvailableNow:  # type: ignore[no-redef]
        """Spark 4.2's mixin, absent before it: here a plain base that Spark never calls."""


@dataclass
class BatchPartition(InputPartition):
    batch: int
    partition: int


class TimeSeriesReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options):
        self.settings = from_options(options)
        probe(self.settings.state_path)
        self.store = StateStore(self.settings.state_path)
        self.update_now: int | None = None  # the server's now when an AvailableNow update began
        # The newest batch whose tasks had all finished when that update began: a tag that failed
        # in a later batch failed in this update, and its later batches leave it aside.
        self.settled: int | None = None

    def initialOffset(self) -> dict:
        return {"batch": 0}

    def prepareForTriggerAvailableNow(self) -> None:
        """An update (Trigger.AvailableNow) reads up to the server's now as it begins, in steps."""
        with connect(self.settings) as client:
            self.update_now = client.server_time()
        self.settled = self.store.newest_finished()

    def latestOffset(self, start: dict | None = None, limit=None) -> dict:
        """The next batch, planned from the tag state after ``start``; ``start`` when nothing is
        due. Without ``start`` (Spark 4.0, 4.1) the newest batch whose tasks all finished."""
        after = self.store.newest_finished() if start is None else start["batch"]
        if self._update_done(after):
            return {"batch": after}
        info = self._plan(after, after + 1)
        return {"batch": after if info is None else info.batch}

    def _update_done(self, after: int) -> bool:
        """Whether batch ``after``, planned in this AvailableNow update, read every tag it had to
        the update's end (one step left when planned): the update then ends without selecting the
        tags again (at a million tags, a minute of paging the server's point list)."""
        if self.update_now is None or after <= (self.settled or 0):
            return False
        return self.store.plan_info(after).steps == 1

    def _plan(self, after: int, batch: int) -> PlanInfo | None:
        """Plan ``batch`` from the tag state after batch ``after`` and keep the plan; in steps
        of ``pi.step`` where Spark runs several batches per update (STEPS)."""
        if after and after not in self.store.batches():
            raise StateLostError(f"the stream's checkpoint continues from batch {after}, which pi.state_path "
                                 f"{self.settings.state_path} no longer holds (it holds {self.store.batches()}); "
                                 f"a full refresh reads every tag again from pi.start")
        with connect(self.settings) as client:
            now = self.update_now if self.update_now is not None else client.server_time()
            return plan_next(client, self.settings, self.store, after, batch, now,
                             step_ns=self.settings.step_ns if STEPS else 0,
                             retry_failed=self.settled is None or after <= self.settled)

    def partitions(self, start: dict, end: dict) -> list[BatchPartition]:
        if end["batch"] == start["batch"]:  # Spark asks for the first batch even when nothing is due
            return []
        info = self.store.plan_info(end["batch"]) if end["batch"] in self.store.batches() else None
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
        self.store.prune(end["batch"])


class TimeSeriesSource(DataSource):
    """``spark.readStream.format("pi_timeseries")``: PI recorded values, incrementally."""

    @classmethod
    def name(cls) -> str:
        return "pi_timeseries"

    def schema(self) -> StructType:
        return from_arrow_schema(TIMESERIES)

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return TimeSeriesReader(self.options)


@dataclass
class PollPartition(InputPartition):
    poll: int
    partition: int


class UpdatesReader(DataSourceStreamReader):
    def __init__(self, options):
        self.settings = from_options(options)
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
        self.store.prune(end["poll"])

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
        return from_arrow_schema(TIMESERIES)

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return UpdatesReader(self.options)


SOURCES = (TimeSeriesSource, UpdatesSource, CatalogSource, WindowsSource)
