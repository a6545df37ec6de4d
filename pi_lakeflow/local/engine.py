"""The driver program of a local run, started by Spark's pipelines launcher (see runner.py).

It does what ``spark-pipelines run`` does (load the spec, register the definitions, start the
run) with its own event loop, so that the terminal shows what matters (each phase, the tag
partitions read and how far a long read is, failed flows; every flow event with ``--output
verbose``), the run ends with one summary line (and, when asked, a JSON summary), and the exit
status (pi_lakeflow.exits) says whether the run completed and whether every tag and catalog item
was read. Only its tests import it.

The Spark Connect server is this process's own, on a free port of the loopback address: Spark's
default (port 15002 on every address) lets only one local run exist on a machine at a time, and
lets anyone who holds that port stop every run.

pyspark 4.3's Spark Connect client raises ``UNKNOWN_RESPONSE ... __python_accumulator__`` on the
event stream after a run that used Python data sources has completed; once the engine has
reported the run COMPLETED, that error is not a failure of the run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.errors import PySparkException
from pyspark.pipelines.cli import load_pipeline_spec, register_definitions
from pyspark.pipelines.spark_connect_graph_element_registry import SparkConnectGraphElementRegistry
from pyspark.pipelines.spark_connect_pipeline import create_dataflow_graph, start_run
from pyspark.sql import SparkSession

from pi_lakeflow import exits
from pi_lakeflow.local.runner import PROGRESS_MARK, spark_error
from pi_lakeflow.runtime.state import PartStats, PlanInfo, StateStore
from pi_lakeflow.config.settings import parse
from pi_lakeflow.tables.registry import layers

#: While a batch reads, the watcher says how far it is this often.
QUIET_SECONDS = 30.0


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def show_progress(text: str) -> None:
    """A progress bar's new state: runner.relay draws it over the last one on a terminal."""
    print(PROGRESS_MARK + text, flush=True)


class PartitionWatcher(threading.Thread):
    """Prints each finished tag partition of the batches being read, from the state store, and how
    far the batch has read: the values its tasks have landed, the tags of the partitions done, the
    share of its window read and an estimate of the time left. With ``bar`` (a terminal), that is a
    progress bar redrawn every second (runner.relay draws it in place); without, a line every
    QUIET_SECONDS without a finished partition. Either way, when no task has finished a time slice
    for QUIET_SECONDS, a line says so."""

    def __init__(self, store: StateStore, started_ns: int, bar: bool = False):
        super().__init__(daemon=True)
        self.store, self.started_ns, self.bar = store, started_ns, bar
        # The batch the run follows: the newest one kept (Spark runs it again when it was not
        # committed, so a batch counts as the run's once a file of it is written in the run).
        self.after_batch = max(store.batches(), default=1) - 1
        self.first_batch: int | None = None
        self.stopped = threading.Event()
        self.seen: set[tuple[int, int]] = set()
        self.planned: dict[int, float] = {}  # batch -> when the watcher first saw its plan
        self.sizes: dict[int, tuple[int, int]] = {}  # batch -> (partitions, tags) of its plan
        self.tags_done: dict[int, int] = {}  # batch -> tags of its partitions done
        self.progress: dict[int, dict] = {}  # batch -> the tasks' progress files, as last read
        self.steps: dict[int, int] = {}  # batch -> the steps of this run, as its plan counts them
        self.moved = time.monotonic()  # when a plan, a partition or a time slice last came
        self.news = time.monotonic()  # when the last line was printed
        self.lock = threading.Lock()  # report() runs in this thread and, before some events, in the main one

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            self.report()

    def report(self) -> None:
        with self.lock:
            self._report()

    def _report(self) -> None:
        for batch in [b for b in self.store.batches() if b > self.after_batch]:
            if batch not in self.planned:
                if not self.store.written_since(batch, self.started_ns):
                    continue
                self.first_batch = batch if self.first_batch is None else self.first_batch
                info, (tags, behind) = self.store.plan_info(batch), self.store.due(batch)
                self.planned[batch] = self.moved = self.news = time.monotonic()
                self.sizes[batch], self.tags_done[batch] = (info.partitions, tags), 0
                self.steps[batch] = batch - self.first_batch + info.steps
                if info.steps > 1 or batch > self.first_batch:
                    say(self.step_line(batch, info, tags, behind))
            partitions = self.sizes[batch][0]
            finished = self.store.finished_partitions(batch)
            for partition in finished:
                if (batch, partition) in self.seen:
                    continue
                outcome, stats = self.store.outcome(batch, partition)
                self.seen.add((batch, partition))
                self.moved = self.news = time.monotonic()
                self.tags_done[batch] += len(outcome)
                done = sum(1 for b, _ in self.seen if b == batch)
                failed = sum(1 for e in outcome["last_error"].to_pylist() if e)
                say(f"batch {batch}: partition {partition} read ({done} of {partitions}): {len(outcome):,} tags"
                    f"{f' ({failed} failed)' if failed else ''}, "
                    f"{sum(outcome['values_landed'].to_pylist()):,} values landed in {stats.seconds:.1f} s, "
                    f"{stats.requests} requests{marker_note(outcome, stats)}")
            if len(finished) >= partitions or self.stopped.is_set():
                continue
            now = time.monotonic()
            progress = self.store.progress(batch)
            if progress != self.progress.get(batch, {}):
                self.progress[batch], self.moved = progress, now
            head = f"batch {batch}: reading, {len(finished)}/{partitions} partitions done; "
            if now - self.moved >= QUIET_SECONDS and now - self.news >= QUIET_SECONDS:
                say(f"{head}no time slice finished for {now - self.moved:.0f} s (a large slice, or a slow or silent "
                    f"server, which is retried: each try waits up to pi.read_timeout)")
                self.news = now
            elif self.bar:
                show_progress(self.progress_bar(batch, finished))
            elif now - self.news >= QUIET_SECONDS:
                say(head + self.reading(batch, finished))
                self.news = now

    def step_of(self, batch: int) -> tuple[int, int]:
        """Which step of this run a batch is, and of how many its plan counts."""
        return batch - self.first_batch + 1, self.steps[batch]

    def step_line(self, batch: int, info: PlanInfo, tags: int, behind: int | None) -> str:
        """A batch of a back-fill in steps (pi.step): which step of how many, what it reads (its
        tags, from where the one furthest behind is), and, after the first, about how long the
        steps left take at the pace so far."""
        step, steps = self.step_of(batch)
        line = f"batch {batch}: step {step} of {steps} of a back-fill (pi.step), {tags:,} tags"
        if behind is not None:
            line += f", from {time.strftime('%Y-%m-%d %H:%M', time.gmtime(behind / 1e9))} UTC to " \
                    f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(info.end_ns / 1e9))} UTC; each step commits"
        if step > 1:
            pace = (time.monotonic() - self.planned[self.first_batch]) / (step - 1)
            line += f"; about {duration(pace * (steps - step + 1))} left"
        elif steps > 1:
            line += " (the time left is estimated after this step)"
        return line

    def reading(self, batch: int, finished: list[int]) -> str:
        """How far the batch has read: values landed, share of the window, time left."""
        values, share, left = self.estimate(batch, finished)
        return f"{values:,} values landed so far, {share:.0%} of the window read" + (f", about {left} left" if left else "")

    def progress_bar(self, batch: int, finished: list[int], width: int = 20) -> str:
        """The batch's progress as one bar: share read, values landed, tags of the partitions done,
        time left."""
        values, share, left = self.estimate(batch, finished)
        filled = round(share * width)
        step, steps = self.step_of(batch)
        label = f"batch {batch}" + (f" (step {step}/{steps})" if steps > 1 else "")
        return (f"{label} [{'#' * filled}{'.' * (width - filled)}] {share:4.0%}  {values:,} values  "
                f"{self.tags_done[batch]:,}/{self.sizes[batch][1]:,} tags  "
                + (f"{left} left" if left else "estimating"))

    def estimate(self, batch: int, finished: list[int]) -> tuple[int, float, str]:
        """Values landed so far, the share of the window read, and the time left ('' before 1 %)."""
        partitions, progress = self.sizes[batch][0], self.progress.get(batch, {})
        share = (len(finished) + sum(p.share for n, p in progress.items() if n not in finished)) / partitions
        elapsed = time.monotonic() - self.planned[batch]
        left = duration(elapsed * (1 - share) / share) if share >= 0.01 else ""
        return sum(p.values_landed for p in progress.values()), share, left


def duration(seconds: float) -> str:
    """A duration in the unit a person reads best."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def brief(message: str) -> str:
    """An event's first line and, for a failure with a traceback, the error it ends with."""
    lines = [line for line in message.splitlines() if line.strip()]
    errors = [line.strip() for line in lines[1:] if re.match(r"^\s*[\w.]+(Error|Exception): ", line)]
    return lines[0] + (f"\n          {errors[-1]}" if errors else "") if lines else message


def row_counts(spark: SparkSession, tables: list[str]) -> dict[str, int]:
    """Rows per table; -1 for a table that does not exist yet."""
    counts = {}
    for table in tables:
        try:
            counts[table] = spark.read.table(table).count()
        except PySparkException:
            counts[table] = -1
    return counts


#: Flow events a run does not print: the steps before a flow runs, and the run's own end.
_UNSHOWN = ("is QUEUED.", "is PLANNING.", "is STARTING.", "is EXCLUDED.", "Run is COMPLETED.")


def run_phase(spark: SparkSession, graph: str, storage: str, refresh: tuple[str, ...], verbose: bool,
              watcher: PartitionWatcher) -> bool:
    """Runs the flows of the datasets ``refresh``; whether the run completed. Prints the events
    that say something failed, and with ``verbose`` every flow's progress too (the partitions
    read so far are printed before a flow's COMPLETED, so that they come first)."""
    completed = False
    events = start_run(spark, graph, full_refresh=[], full_refresh_all=False, refresh=list(refresh), dry=False,
                       storage=storage)
    try:
        for result in events:
            if "pipeline_event_result" in result:
                message = result["pipeline_event_result"].event.message
                completed = completed or message.startswith("Run is COMPLETED")
                failed = "FAILED" in message.splitlines()[0] if message else False
                if failed or (verbose and not message.endswith(_UNSHOWN)):
                    if "COMPLETED" in message:
                        watcher.report()
                    say(brief(message))
    except PySparkException as error:
        if not (completed and "UNKNOWN_RESPONSE" in str(error)):
            raise
    return completed


def loopback_session() -> SparkSession:
    """A Spark Connect session on a server of this process's own, on a free loopback port, with the
    per-run token pyspark makes (pyspark's local mode would take port 15002)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession
    from pyspark.sql.session import SparkSession as ClassicSession

    ConnectSession._start_connect_server(os.environ["SPARK_REMOTE"], {  # local[N], from the launcher's --remote
        "spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": "0"})
    jvm = ClassicSession._instantiatedSession._jvm
    port = getattr(getattr(jvm, "org.apache.spark.sql.connect.service.SparkConnectService$"), "MODULE$").localPort()
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    os.environ.pop("PYSPARK_REMOTE_INIT_CONF_LEN", None)  # the server has them; static ones cannot be set again
    return ConnectSession.builder.remote(f"sc://localhost:{port}") \
        .config("spark.sql.connect.serverStacktrace.enabled", "false").getOrCreate()


@dataclass
class RunSummary:
    """What a run did: the summary line, and what ``--summary-json`` writes (as JSON)."""

    status: int = exits.FAILED
    seconds: float = 0.0
    values_landed: int = 0
    tags_complete: int = 0
    tags_failed: int = 0
    names_missing: int = 0
    catalog_items_failed: int = 0
    failures: list[str] = field(default_factory=list)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # rows now, rows added
    error: str | None = None

    def line(self) -> str:
        line = f"run completed in {self.seconds:.1f} s: {self.values_landed:,} values landed; " \
               f"{_count(self.tags_complete, 'tag')} complete, {self.tags_failed:,} failed"
        if self.names_missing:
            line += f"; {_count(self.names_missing, 'selected name')} not on the server"
        if self.catalog_items_failed:
            line += f"; {_count(self.catalog_items_failed, 'catalog item')} failed"
        return line


def _count(number: int, thing: str) -> str:
    return f"{number:,} {thing}{'' if number == 1 else 's'}"


def marker_note(outcome: pa.Table, stats: PartStats) -> str:
    """What a partition's markers did, when its tags have them: how many were read again around
    a change before their cursor, and how many the server had lost."""
    followed = pc.sum(pc.is_valid(outcome["marker"])).as_py() or 0
    if not followed and not stats.lost:
        return ""
    return (f"; {followed:,} tags follow markers ({stats.reread:,} read again around earlier changes"
            f"{f', {stats.lost:,} markers lost: their look-back read again' if stats.lost else ''})")


def summary(store: StateStore, started_ns: int) -> RunSummary:
    """What the batches planned or run again since ``started_ns`` did to their tags (a back-fill
    in steps reads a tag in several: its last read says whether it failed), the selected names the
    server does not have, the catalog items that failed in reads since then; one failure line each."""
    landed = 0
    last_error: dict[str, tuple[str, str | None]] = {}  # web_id -> (name, the error of its last read)
    missing: dict[str, str] = {}
    for batch in (b for b in store.batches() if store.written_since(b, started_ns)):
        info = store.plan_info(batch)
        missing.update(info.missing)
        for outcome, _ in store.outcomes(batch).values():
            landed += sum(outcome["values_landed"].to_pylist())
            last_error.update((web_id, (name or web_id, error)) for web_id, name, error in
                              zip(*(outcome[c].to_pylist() for c in ("web_id", "name", "last_error"))))
    failed = [f"{name}: {error}" for name, error in last_error.values() if error]
    log = store.catalog_log()
    items = [f"{table} {item}: {error}" for table, item, error, read_at in
             zip(*(log[c].to_pylist() for c in ("table", "item", "error", "read_at")))
             if read_at.timestamp() * 1e9 >= started_ns - 1e9 and not (table == "pi_points" and item in missing)]
    failures = failed + [f"{name}: not on the server ({error})" for name, error in missing.items()] + items
    return RunSummary(values_landed=landed, tags_complete=len(last_error) - len(failed), tags_failed=len(failed),
                      names_missing=len(missing), catalog_items_failed=len(items), failures=failures)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--state-path", required=True)
    parser.add_argument("--status-file", required=True, help="where the run's exit status is written, first")
    parser.add_argument("--output", choices=("quiet", "normal", "verbose"), default="normal",
                        help="quiet: the summary and failures; verbose: every flow event too")
    parser.add_argument("--summary-json", default=None, help="where to write the run's summary as JSON")
    parser.add_argument("--progress", choices=("lines", "bar"), default="lines",
                        help="bar: a long read's progress as a bar redrawn every second (the runner's terminal)")
    args = parser.parse_args()
    started_ns, started = time.time_ns(), time.perf_counter()
    spec_path = Path(args.spec)
    spec = load_pipeline_spec(spec_path)
    store = StateStore(args.state_path)
    spark = loopback_session()
    for key, value in spec.configuration.items():  # the pipeline configuration, as spark.conf
        spark.conf.set(key, value)
    watcher = PartitionWatcher(store, started_ns, bar=args.progress == "bar")
    phases = layers(parse(spec.configuration))
    tables = [table for phase in phases for table in phase]
    result = RunSummary()
    try:
        before = row_counts(spark, tables)
        if args.output != "quiet":
            watcher.start()
        # Bronze first, then silver, as two runs: spark-pipelines 4.3 does not hold back a flow
        # until the flows it reads through a join have finished once their tables exist, so one
        # run would let silver read the bronze of the run before. (A graph runs once: each phase
        # defines its own.)
        completed = False
        for number, phase in enumerate(phases, 1):
            if args.output != "quiet":
                say(f"phase {number} of {len(phases)}: {_count(len(phase), 'table')} ({', '.join(phase)})")
            graph = create_dataflow_graph(spark, default_catalog=spec.catalog, default_database=spec.database,
                                          sql_conf=spec.configuration)
            register_definitions(spec_path, SparkConnectGraphElementRegistry(spark, graph), spec, spark, graph)
            completed = run_phase(spark, graph, spec.storage, phase, args.output == "verbose", watcher)
            if not completed:
                break
        watcher.stopped.set()
        if args.output != "quiet":
            watcher.report()
        if not completed:
            result.error = "a flow failed"
            say("run failed: the flow events above say why")
            return result.status
        after = row_counts(spark, tables)
        result = summary(store, started_ns)
        result.tables = {t: {"rows": rows, "added": rows - max(before.get(t, 0), 0)} for t, rows in after.items()}
        result.seconds = time.perf_counter() - started
        if args.output != "quiet":
            say("tables (rows now, added by this run):")
            for table, counts in result.tables.items():
                print(f"    {table:28} {counts['rows']:>12,}  {'+' if counts['added'] >= 0 else ''}"
                      f"{counts['added']:,}", flush=True)
        for failure in result.failures[:10]:
            print(f"    failed: {failure}", flush=True)
        if len(result.failures) > 10:
            print(f"    ... and {len(result.failures) - 10:,} more", flush=True)
        say(result.line() + (" (in pi_ingestion_log and pi_catalog_log; the next run reads them again)"
                             if result.failures else ""))
        result.status = exits.PARTIAL if result.failures else exits.OK
        return result.status
    except PySparkException as error:
        result.error = spark_error(error)
        say(f"run failed: {result.error}")
        return result.status
    finally:
        watcher.stopped.set()
        result.seconds = time.perf_counter() - started
        if args.summary_json:
            Path(args.summary_json).write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
        # Before stopping Spark, so that the runner knows how the run ended if that hangs (runner.await_driver).
        Path(args.status_file).write_text(str(result.status), encoding="utf-8")
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
