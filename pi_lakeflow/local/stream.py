"""``pi-lakeflow stream``: the real-time table, poll after poll, until Ctrl-C.

Open-source Spark Declarative Pipelines runs flows as triggered runs only (each run starts,
processes what is there, and stops: about 4 s per poll here), so the local continuous mode runs
the definition's source itself: ``spark.readStream.format("pi_updates")`` with the pipeline
configuration, as pipelines/bronze.py defines ``pi_timeseries_updates``, in one Structured
Streaming query with a processing-time trigger, into that table of the local catalog. On
Databricks the bundle's continuous pipeline runs the definitions themselves.

The query's checkpoint holds the poll number; the markers are in the state store
(pi_lakeflow.realtime): a stop (Ctrl-C) lets the poll under way commit and starts no other
(the source sees the store draining), then ends the query; the next start resumes after the last
committed poll. A poll cut short (the process killed) is read again from the same markers.
"""

from __future__ import annotations

import signal
import threading
import time

from pi_lakeflow.local.config import LocalConfig

from pi_lakeflow.local.runner import say_removed

from pi_lakeflow.local.spark_env import local_session, spark_error
from pi_lakeflow.local.uncommitted import remove_uncommitted
from pi_lakeflow.runtime.realtime import MarkerStore, poll_summary
from pi_lakeflow.config.settings import configuration
from pi_lakeflow.spark.sources import SOURCES
from pi_lakeflow.tables.registry import table

#: The real-time table (the registry's declaration: its source, name and partitions).
UPDATES = table("pi_timeseries_updates")


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def run_stream(config: LocalConfig, interval: str = "0 seconds", output: str = "normal") -> int:
    """Runs until SIGINT or SIGTERM; returns the exit status. The caller holds ``state_dir``
    (local.state_lock). ``output``: quiet (the polls with failing tags, and the stop), normal (the
    polls with news, else one every 30 s) or verbose (every poll, and Spark's own lines)."""
    stop = threading.Event()
    say_removed(remove_uncommitted(config.warehouse), output)
    spark = local_session(config, verbose=output == "verbose")
    # After the session: pyspark's own SIGINT handler would cancel the poll under way.
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for source in SOURCES:
            spark.dataSource.register(source)
        store = MarkerStore(config.settings.state_path)
        store.drain(False)
        options = configuration(lambda key: config.configuration.get(key))
        query = (spark.readStream.format(UPDATES.source).options(**options).load()
                 .writeStream.format("parquet").partitionBy(*UPDATES.partition_cols).trigger(processingTime=interval)
                 .option("checkpointLocation", str(config.state_dir / "checkpoints" / UPDATES.name))
                 .toTable(UPDATES.name))
        if output != "quiet":
            say(f"streaming PI updates into {UPDATES.name}; Ctrl-C stops")
        progress = _PollReporter(store, output)
        while query.isActive and not stop.wait(1.0):
            progress.show(query.recentProgress)
        if query.exception() is not None:
            say(f"stream failed: {spark_error(query.exception())}")
            return 1
        _stop_between_polls(query, store)
        progress.show(query.recentProgress)
        if output != "quiet":
            say("stopped; the next start resumes after the last committed poll")
        return 0
    finally:
        spark.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stop_between_polls(query, store: MarkerStore, timeout: float = 120.0) -> None:
    """Start no more polls, let the poll under way commit, then stop the query (a poll cut short
    would be read again from the same markers at the next start, but with errors in the log)."""
    store.drain()
    deadline = time.monotonic() + timeout
    try:
        while query.status["isTriggerActive"] or query.status["isDataAvailable"]:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        query.stop()
    finally:
        store.drain(False)


class _PollReporter:
    """Prints the polls as they commit: with ``output`` normal, those with news (events or
    problems) and, without news, one every 30 s; verbose, every poll; quiet, those with failing tags."""

    def __init__(self, store: MarkerStore, output: str = "normal"):
        self.store, self.output, self.shown, self.quiet_since = store, output, -1, time.monotonic()

    def show(self, recent: list[dict]) -> None:
        for progress in recent:
            if progress["batchId"] <= self.shown:
                continue
            self.shown = progress["batchId"]
            line, news, failing = self._line(progress)
            if self.output == "quiet":
                shown = failing
            else:
                shown = self.output == "verbose" or news or time.monotonic() - self.quiet_since > 30
            if shown:
                say(line)
                self.quiet_since = time.monotonic()

    def _line(self, progress: dict) -> tuple[str, bool, bool]:
        """A poll's line (events, rate, tags recovered or failing, read latency), whether it has
        news, and whether a tag failed."""
        poll = int(progress["batchId"]) + 1  # batch 0 is poll 1 (the offsets start at poll 0)
        found = poll_summary(self.store, poll)
        seconds = progress["durationMs"].get("triggerExecution", 0) / 1000
        latency = (f", latency at read p50 {found['latency_p50']:.2f} s p95 {found['latency_p95']:.2f} s"
                   if found["latency_p50"] is not None else "")
        rate = progress.get("processedRowsPerSecond") or 0
        line = (f"poll {poll}: {progress['numInputRows']:,} events in {seconds:.2f} s ({rate:,.0f}/s), "
                f"{found['recovered']} tags recovered, {found['failed']} failing{latency}")
        return line, bool(progress["numInputRows"] or found["recovered"] or found["failed"]), bool(found["failed"])
