"""The driver program of a local run, started by Spark's pipelines launcher (see local.py).

It does what ``spark-pipelines run`` does (load the spec, register the definitions, start the
run) with its own event loop, so that the terminal shows progress (flows, tag partitions, values)
and the exit status says whether the run completed. Not imported by anything else.

pyspark 4.3's Spark Connect client raises ``UNKNOWN_RESPONSE ... __python_accumulator__`` on the
event stream after a run that used Python data sources has completed; once the engine has
reported the run COMPLETED, that error is not a failure of the run.
"""

from __future__ import annotations

import argparse
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

from pi_lakeflow.state import StateStore
from pi_lakeflow.settings import parse
from pi_lakeflow.tables import datasets


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


class PartitionWatcher(threading.Thread):
    """Prints each finished tag partition of the batch being read, from the state store."""

    def __init__(self, store: StateStore, after_batch: int):
        super().__init__(daemon=True)
        self.store, self.after_batch = store, after_batch
        self.stopped = threading.Event()
        self.seen: set[tuple[int, int]] = set()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            self.report()

    def report(self) -> None:
        for batch in [b for b in self.store.batches() if b > self.after_batch]:
            info, _ = self.store.plan(batch)
            for partition in self.store.finished_partitions(batch):
                if (batch, partition) in self.seen:
                    continue
                outcome, stats = self.store.outcome(batch, partition)
                self.seen.add((batch, partition))
                done = sum(1 for b, _ in self.seen if b == batch)
                failed = sum(1 for e in outcome["last_error"].to_pylist() if e)
                say(f"batch {batch}: partition {done}/{info.partitions} read: {len(outcome):,} tags"
                    f"{f' ({failed} failed)' if failed else ''}, "
                    f"{sum(outcome['values_landed'].to_pylist()):,} values landed in {stats.seconds:.1f} s, "
                    f"{stats.requests} requests")


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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--state-path", required=True)
    args = parser.parse_args()
    spec_path = Path(args.spec)
    spec = load_pipeline_spec(spec_path)
    store = StateStore(args.state_path)
    spark = SparkSession.builder.config("spark.sql.connect.serverStacktrace.enabled", "false").getOrCreate()
    for key, value in spec.configuration.items():  # the pipeline configuration, as spark.conf
        spark.conf.set(key, value)
    watcher = PartitionWatcher(store, max(store.batches(), default=0))
    phases = datasets(parse(spec.configuration).tables)
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
        if completed:
            say("run completed")
        watcher.stopped.set()
        watcher.report()
        if completed:
            after = row_counts(spark, tables)
            say("tables (rows now, added by this run):")
            for table, rows in after.items():
                change = rows - max(before.get(table, 0), 0)
                print(f"    {table:28} {rows:>12,}  {'+' if change >= 0 else ''}{change:,}", flush=True)
    except PySparkException as error:
        say(f"run failed: {str(error).splitlines()[0]}")
        return 1
    finally:
        watcher.stopped.set()
        spark.stop()
    return 0 if completed else 1


if __name__ == "__main__":
    sys.exit(main())
