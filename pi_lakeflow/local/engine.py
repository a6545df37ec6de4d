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

The pyspark internals it runs are in pyspark_private.py. pyspark 4.3's Spark Connect client raises
``UNKNOWN_RESPONSE ... __python_accumulator__`` on the event stream after a run that used Python
data sources has completed; once the engine has reported the run COMPLETED, that error is not a
failure of the run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

from pyspark.errors import PySparkException
from pyspark.sql import SparkSession

from pi_lakeflow.config.settings import parse
from pi_lakeflow.local.pyspark_private import define_graph, load_spec, loopback_session, run_events
from pi_lakeflow.local.run_summary import RunSummary, count, summary
from pi_lakeflow.local.spark_env import spark_error
from pi_lakeflow.local.watcher import PartitionWatcher, say
from pi_lakeflow.state.store import StateStore
from pi_lakeflow.tables.registry import layers


def brief(message: str) -> str:
    """An event's first line and, for a failure with a traceback, the error it ends with."""
    lines = [line for line in message.splitlines() if line.strip()]
    errors = [line.strip() for line in lines[1:] if re.match(r"^\s*[\w.]+(Error|Exception): ", line)]
    return lines[0] + (f"\n          {errors[-1]}" if errors else "") if lines else message


def row_counts(spark: SparkSession, tables: list[str]) -> dict[str, int]:
    """Rows per table; -1 for a table that does not exist yet. One Spark job for them all (a
    job per table cost about 0.3 s each, twice a run)."""
    existing = {t.name for t in spark.catalog.listTables()}
    present = [t for t in tables if t in existing]
    counts = {t: -1 for t in tables}
    if present:
        query = " UNION ALL ".join(f"SELECT {i} AS at, count(*) AS n FROM `{t}`" for i, t in enumerate(present))
        try:
            counts.update({present[row.at]: row.n for row in spark.sql(query).collect()})
        except PySparkException:  # a table that cannot be read (a folder changed by hand): counted one by one
            counts.update({t: _count_one(spark, t) for t in present})
    return counts


def _count_one(spark: SparkSession, table: str) -> int:
    try:
        return spark.read.table(table).count()
    except PySparkException:
        return -1


#: Flow events a run does not print: the steps before a flow runs, and the run's own end.
_UNSHOWN = ("is QUEUED.", "is PLANNING.", "is STARTING.", "is EXCLUDED.", "Run is COMPLETED.")


def run_phase(spark: SparkSession, graph: str, storage: str, refresh: tuple[str, ...], verbose: bool,
              watcher: PartitionWatcher) -> bool:
    """Runs the flows of the datasets ``refresh``; whether the run completed. Prints the events
    that say something failed, and with ``verbose`` every flow's progress too (the partitions
    read so far are printed before a flow's COMPLETED, so that they come first)."""
    completed = False
    events = run_events(spark, graph, storage, list(refresh))
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


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    parser.add_argument("--state-path", required=True)
    parser.add_argument("--status-file", required=True, help="where the run's exit status is written, first")
    parser.add_argument("--output", choices=("quiet", "normal", "verbose"), default="normal",
                        help="quiet: the summary and failures; verbose: every flow event too")
    parser.add_argument("--summary-json", default=None, help="where to write the run's summary as JSON")
    parser.add_argument("--progress", choices=("lines", "bar"), default="lines",
                        help="bar: a long read's progress as a bar redrawn every second (the runner's terminal)")
    return parser.parse_args()


def run_phases(spark: SparkSession, spec_path: Path, spec, phases: list[tuple[str, ...]], output: str,
               watcher: PartitionWatcher) -> bool:
    """Bronze first, then silver, as two runs: spark-pipelines 4.3 does not hold back a flow
    until the flows it reads through a join have finished once their tables exist, so one run
    would let silver read the bronze of the run before. (A graph runs once: each phase defines
    its own.) Whether every phase completed."""
    for number, phase in enumerate(phases, 1):
        if output != "quiet":
            say(f"phase {number} of {len(phases)}: {count(len(phase), 'table')} ({', '.join(phase)})")
        graph = define_graph(spark, spec, spec_path)
        if not run_phase(spark, graph, spec.storage, phase, output == "verbose", watcher):
            return False
    return True


def show_result(result: RunSummary, output: str) -> None:
    """The tables' row counts (unless quiet), the first failures and the summary line."""
    if output != "quiet":
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


def record(result: RunSummary, args: argparse.Namespace) -> None:
    """The summary JSON, when asked, and the exit status: before Spark stops, so that the runner
    knows how the run ended if that hangs (runner.await_driver)."""
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(asdict(result), indent=2) + "\n", encoding="utf-8")
    Path(args.status_file).write_text(str(result.status), encoding="utf-8")


def main() -> int:
    args = arguments()
    started_ns, started = time.time_ns(), time.perf_counter()
    spec_path = Path(args.spec)
    spec = load_spec(spec_path)
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
        completed = run_phases(spark, spec_path, spec, phases, args.output, watcher)
        watcher.stopped.set()
        if args.output != "quiet":
            watcher.report()
        if not completed:
            result.error = "a flow failed"
            say("run failed: the flow events above say why")
            return result.status
        result = summary(store, started_ns)
        result.tables = {t: {"rows": rows, "added": rows - max(before.get(t, 0), 0)}
                         for t, rows in row_counts(spark, tables).items()}
        result.seconds = time.perf_counter() - started
        show_result(result, args.output)
        return result.status
    except PySparkException as error:
        result.error = spark_error(error)
        say(f"run failed: {result.error}")
        return result.status
    finally:
        watcher.stopped.set()
        result.seconds = time.perf_counter() - started
        record(result, args)
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
