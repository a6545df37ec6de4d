"""The driver program of a local run, started by Spark's pipelines launcher (see local.py).

It does what ``spark-pipelines run`` does (load the spec, register the definitions, start the
run) with its own event loop, so that the terminal shows progress (flows, tag partitions, values),
the run ends with one summary line, and the exit status (pi_lakeflow.exits) says whether the run
completed and whether every tag and catalog item was read. Not imported by anything else.

The Spark Connect server is this process's own, on a free port of the loopback address: Spark's
default (port 15002 on every address) lets only one local run exist on a machine at a time, and
lets anyone who holds that port stop every run.

pyspark 4.3's Spark Connect client raises ``UNKNOWN_RESPONSE ... __python_accumulator__`` on the
event stream after a run that used Python data sources has completed; once the engine has
reported the run COMPLETED, that error is not a failure of the run.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from pathlib import Path

from pyspark.errors import PySparkException
from pyspark.pipelines.cli import load_pipeline_spec, register_definitions
from pyspark.pipelines.spark_connect_graph_element_registry import SparkConnectGraphElementRegistry
from pyspark.pipelines.spark_connect_pipeline import create_dataflow_graph, start_run
from pyspark.sql import SparkSession

from pi_lakeflow import exits
from pi_lakeflow.local.runner import spark_error
from pi_lakeflow.runtime.state import StateStore
from pi_lakeflow.config.settings import parse
from pi_lakeflow.tables.registry import layers

#: Without news of the batch for this long, the watcher says it is still reading.
QUIET_SECONDS = 30.0


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


class PartitionWatcher(threading.Thread):
    """Prints each finished tag partition of the batches being read, from the state store, and
    a line every QUIET_SECONDS while a batch reads without news."""

    def __init__(self, store: StateStore, after_batch: int):
        super().__init__(daemon=True)
        self.store, self.after_batch = store, after_batch
        self.stopped = threading.Event()
        self.seen: set[tuple[int, int]] = set()
        self.planned: set[int] = set()
        self.news = time.monotonic()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            self.report()

    def report(self) -> None:
        for batch in [b for b in self.store.batches() if b > self.after_batch]:
            info, _ = self.store.plan(batch)
            if batch not in self.planned:  # a batch's quiet time counts from its plan
                self.planned.add(batch)
                self.news = time.monotonic()
            finished = self.store.finished_partitions(batch)
            for partition in finished:
                if (batch, partition) in self.seen:
                    continue
                outcome, stats = self.store.outcome(batch, partition)
                self.seen.add((batch, partition))
                self.news = time.monotonic()
                done = sum(1 for b, _ in self.seen if b == batch)
                failed = sum(1 for e in outcome["last_error"].to_pylist() if e)
                say(f"batch {batch}: partition {done}/{info.partitions} read: {len(outcome):,} tags"
                    f"{f' ({failed} failed)' if failed else ''}, "
                    f"{sum(outcome['values_landed'].to_pylist()):,} values landed in {stats.seconds:.1f} s, "
                    f"{stats.requests} requests")
            quiet = time.monotonic() - self.news
            if len(finished) < info.partitions and quiet >= QUIET_SECONDS and not self.stopped.is_set():
                say(f"batch {batch}: still reading, {len(finished)}/{info.partitions} partitions done; no news for "
                    f"{quiet:.0f} s (a slow or silent server is retried; each try waits up to pi.read_timeout)")
                self.news = time.monotonic()


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


def run_phase(spark: SparkSession, graph: str, storage: str, refresh: tuple[str, ...]) -> bool:
    """Runs the flows of the datasets ``refresh``, printing their events; whether the run completed."""
    completed = False
    events = start_run(spark, graph, full_refresh=[], full_refresh_all=False, refresh=list(refresh), dry=False,
                       storage=storage)
    try:
        for result in events:
            if "pipeline_event_result" in result:
                message = result["pipeline_event_result"].event.message
                completed = completed or message.startswith("Run is COMPLETED")
                if not message.endswith(("is QUEUED.", "is PLANNING.", "is STARTING.", "is EXCLUDED.", "Run is COMPLETED.")):
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


def summary(store: StateStore, after_batch: int, started_ns: int, seconds: float) -> tuple[str, list[str]]:
    """The run's summary line and one line per failure: tags of the batches planned after
    ``after_batch``, selected names the server does not have, catalog items read since ``started_ns``."""
    landed = tags = 0
    failed: list[str] = []
    missing: dict[str, str] = {}
    for batch in (b for b in store.batches() if b > after_batch):
        info, _ = store.plan(batch)
        missing.update(info.missing)
        for outcome, _ in store.outcomes(batch).values():
            tags += len(outcome)
            landed += sum(outcome["values_landed"].to_pylist())
            failed.extend(f"{name or web_id}: {error}" for name, web_id, error in
                          zip(*(outcome[c].to_pylist() for c in ("name", "web_id", "last_error"))) if error)
    log = store.catalog_log()
    items = [f"{table} {item}: {error}" for table, item, error, read_at in
             zip(*(log[c].to_pylist() for c in ("table", "item", "error", "read_at")))
             if read_at.timestamp() * 1e9 >= started_ns - 1e9 and not (table == "pi_points" and item in missing)]
    line = f"run completed in {seconds:.1f} s: {landed:,} values landed; {tags - len(failed):,} tags complete, " \
           f"{len(failed):,} failed"
    if missing:
        line += f"; {len(missing):,} selected names not on the server"
    if items:
        line += f"; {len(items):,} catalog items failed"
    return line, failed + [f"{name}: not on the server ({error})" for name, error in missing.items()] + items


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--state-path", required=True)
    args = parser.parse_args()
    started_ns, started = time.time_ns(), time.perf_counter()
    spec_path = Path(args.spec)
    spec = load_pipeline_spec(spec_path)
    store = StateStore(args.state_path)
    spark = loopback_session()
    for key, value in spec.configuration.items():  # the pipeline configuration, as spark.conf
        spark.conf.set(key, value)
    last_batch = max(store.batches(), default=0)
    watcher = PartitionWatcher(store, last_batch)
    phases = layers(parse(spec.configuration))
    tables = [table for phase in phases for table in phase]
    completed = False
    try:
        before = row_counts(spark, tables)
        watcher.start()
        # Bronze first, then silver, as two runs: spark-pipelines 4.3 does not hold back a flow
        # until the flows it reads through a join have finished once their tables exist, so one
        # run would let silver read the bronze of the run before. (A graph runs once: each phase
        # defines its own.)
        for phase in phases:
            graph = create_dataflow_graph(spark, default_catalog=spec.catalog, default_database=spec.database,
                                          sql_conf=spec.configuration)
            register_definitions(spec_path, SparkConnectGraphElementRegistry(spark, graph), spec, spark, graph)
            completed = run_phase(spark, graph, spec.storage, phase)
            if not completed:
                break
        watcher.stopped.set()
        watcher.report()
        if not completed:
            say("run failed: the flow events above say why")
            return exits.FAILED
        after = row_counts(spark, tables)
        say("tables (rows now, added by this run):")
        for table, rows in after.items():
            change = rows - max(before.get(table, 0), 0)
            print(f"    {table:28} {rows:>12,}  {'+' if change >= 0 else ''}{change:,}", flush=True)
        line, failures = summary(store, last_batch, started_ns, time.perf_counter() - started)
        for failure in failures[:10]:
            print(f"    failed: {failure}", flush=True)
        if len(failures) > 10:
            print(f"    ... and {len(failures) - 10:,} more", flush=True)
        say(line + (" (in pi_ingestion_log and pi_catalog_log; the next run reads them again)" if failures else ""))
        return exits.PARTIAL if failures else exits.OK
    except PySparkException as error:
        say(f"run failed: {spark_error(error)}")
        return exits.FAILED
    finally:
        watcher.stopped.set()
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
