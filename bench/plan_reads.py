"""Planning a batch at estate scale, apart from the server: what the driver reads, plans and
writes, and what a task reads, with the digests where they are kept now and where they were.

Run by hand (not a test):
    .venv/bin/python bench/plan_reads.py [--tags 100000] [--partition-size 1000] [--digest-values 60]

A synthetic estate: ``--tags`` tags, all known to the state after batch 1 (a cursor an hour
back, a digest of ``--digest-values`` entries: 60 is an hour of look-back at 60 s sampling;
timestamps 60 s apart with a few ms of jitter, random hashes), all selected (handed to the planner
as select_tags would return them: no server). Batch 2 is planned two ways, each in a process of
its own (its peak memory is its own), one after the other:

- ``files`` (now): the digests stay in the digest files the tasks of batch 1 wrote; the driver
  reads the part files, plans and writes a plan without digests (``timeseries.plan_next``); a
  task reads its partition's plan file and its tags' digests (``StateStore.plan_part``).
- ``plan`` (before 2026-12): the driver reads the digests with the state, and the plan carries
  them to the tasks.

Per way: the bytes of the driver's read of the state, the seconds of reading, planning and
writing the plan, the plan's bytes, the planning process's peak resident memory (above that of
a process that only imported the modules), and a task's read of the plan and digests. Files
are in the page cache: on a Unity Catalog volume the bytes matter more than these times.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pi_client import Lookup
from pi_lakeflow.config.settings import parse
from pi_lakeflow.runtime import timeseries
from pi_lakeflow.state.files import read_arrow, write_arrow
from pi_lakeflow.state.store import OUTCOME, PLAN, PartStats, PlanInfo, StateStore
from pi_lakeflow.runtime.digests import DIGEST_ENTRY, digest_bytes

TASKS = 5
NOW_NS = 1_800_000_000 * 10**9
HOUR_NS = 3600 * 10**9


def synthetic_estate(store: StateStore, tags: int, digest_values: int, partition_size: int) -> pa.Table:
    """Write batch 1 of an estate where every tag was read (plan, digest and part files, as its
    tasks leave them); returns the selection (POINTS columns the planner reads)."""
    web_ids = [f"F1DPbench{i:016d}" for i in range(tags)]
    names = [f"BENCH.{i:07d}.PV" for i in range(tags)]
    rng = np.random.default_rng(1)
    steps = np.full(digest_values, 60 * 10**9, np.int64)
    digests = []
    for _ in range(tags):
        entries = np.zeros(digest_values, DIGEST_ENTRY)
        entries["timestamp_ns"] = NOW_NS - 2 * HOUR_NS + np.cumsum(steps + rng.integers(0, 5_000_000, digest_values))
        entries["hash"] = rng.integers(0, 2**63, digest_values, dtype=np.uint64)
        digests.append(digest_bytes(entries))
    partition = np.arange(tags, dtype=np.int32) // partition_size
    rows = pa.table({
        "web_id": web_ids, "name": names, "point_type": ["Float32"] * tags, "partition": partition,
        "origin_ns": pa.array(np.zeros(tags, np.int64)), "cursor_ns": pa.array(np.full(tags, NOW_NS - HOUR_NS)),
        "read_from_ns": pa.array(np.zeros(tags, np.int64)), "digest": pa.nulls(tags, pa.binary()),
        "digest_partition": pa.nulls(tags, pa.int32()), "last_error": pa.nulls(tags, pa.string()),
        "rate": pa.array(np.full(tags, 1 / 60)), "marker": pa.nulls(tags, pa.string()),
        "read_to_ns": pa.nulls(tags, pa.int64())}, schema=PLAN)
    partitions = int(partition[-1]) + 1
    store.write_plan(PlanInfo(1, NOW_NS - HOUR_NS, partitions, HOUR_NS, {}, 0), rows)
    counts = {"values_read": pa.array(np.zeros(tags, np.int64)), "values_landed": pa.array(np.zeros(tags, np.int64))}
    outcome = pa.table({**{n: rows[n] for n in PLAN.names if n in OUTCOME.names}, **counts}, schema=OUTCOME)
    outcome = outcome.set_column(OUTCOME.get_field_index("digest"), "digest", pa.array(digests, pa.binary()))
    for number in range(partitions):
        store.write_outcome(1, number, outcome.slice(number * partition_size, partition_size),
                            PartStats(NOW_NS, 1.0, 1, 0, 0))
    return pa.table({"web_id": web_ids, "name": names, "point_type": ["Float32"] * tags})


def in_process(target, *args):
    """Run ``target(*args, results)`` in a forked process of its own; what it put in results."""
    results = multiprocessing.Manager().dict()
    process = multiprocessing.get_context("fork").Process(target=target, args=(*args, results))
    process.start()
    process.join()
    return dict(results)


def build(way: str, folder: str, args: argparse.Namespace, results) -> None:
    """Batch 1, its digests where ``way`` keeps them: ``plan``, in the part files (and so, in the
    state the driver reads), as versions before 2026-12 wrote them; ``files``, in their own."""
    store = StateStore(folder)
    results["selection"] = synthetic_estate(store, args.tags, args.digest_values, args.partition_size)
    if way == "plan":
        for digests in sorted((Path(folder) / "batches" / "00000001").glob("digest-*.arrow")):
            part = digests.with_name(digests.name.replace("digest-", "part-"))
            table, meta = read_arrow(part)
            table = table.set_column(table.schema.get_field_index("digest"), "digest", read_arrow(digests)[0]["digest"])
            table = table.set_column(table.schema.get_field_index("digest_partition"), "digest_partition",
                                     pa.nulls(len(table), pa.int32()))
            write_arrow(part, table, meta)
            digests.unlink()


def plan(way: str, folder: str, selection: pa.Table, args: argparse.Namespace, results) -> None:
    """Batch 2 planned one way, then a task's read of it."""
    store = StateStore(folder)
    settings = parse({"pi.url": "http://127.0.0.1:1/piwebapi", "pi.state_path": folder, "pi.end": "*",
                      "pi.partition_size": str(args.partition_size)})
    timeseries.select_tags = lambda client, settings: Lookup(selection, {})
    first, second = Path(folder) / "batches" / "00000001", Path(folder) / "batches" / "00000002"
    state_bytes = sum(p.stat().st_size for p in [first / "plan.arrow", *first.glob("part-*.arrow")])
    started = time.perf_counter()
    timeseries.plan_next(None, settings, store, 1, 2, NOW_NS)  # reads the state, plans, writes the plan
    planned = time.perf_counter() - started
    plan_bytes = sum(p.stat().st_size for p in second.glob("*.arrow"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    for partition in range(TASKS):
        store.plan_part(2, partition)
    task = (time.perf_counter() - started) / TASKS
    task_bytes = (second / "plan-00000.arrow").stat().st_size + \
        ((first / "digest-00000.arrow").stat().st_size if way == "files" else 0)
    results["figures"] = (state_bytes, planned, plan_bytes, peak, task_bytes, task)


def idle(results) -> None:
    results["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=100_000)
    parser.add_argument("--partition-size", type=int, default=1_000)
    parser.add_argument("--digest-values", type=int, default=60)
    args = parser.parse_args()
    print(f"{args.tags:,} tags, {args.partition_size:,} per partition, {args.digest_values} digest entries each")
    print("| digests | driver reads (state) | read, plan, write | plan written | driver peak memory "
          "| a task reads | in |")
    print("|---|---|---|---|---|---|---|")
    baseline = in_process(idle)["peak"]
    for way in ("plan", "files"):
        with tempfile.TemporaryDirectory() as folder:
            selection = in_process(build, way, folder, args)["selection"]
            state_bytes, planned, plan_bytes, peak, task_bytes, task = in_process(plan, way, folder, selection,
                                                                                  args)["figures"]
        label = "in the plan (before)" if way == "plan" else "in the tasks' files (now)"
        print(f"| {label} | {state_bytes / 1e6:,.1f} MB | {planned:.2f} s | {plan_bytes / 1e6:,.1f} MB "
              f"| {(peak - baseline) / 1e9:.2f} GB | {task_bytes / 1e6:,.2f} MB | {task * 1000:,.1f} ms |", flush=True)
    print(f"(driver peak memory: above that of a process that only imported the modules, {baseline / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
