"""What a time-series task reads of a batch's plan: its own partition's file (StateStore.plan_part)
side by side with the whole plan filtered to its partition (what every task did before the plan
had a file per partition).

Run by hand (not a test):
    .venv/bin/python bench/plan_reads.py [--tags 100000] [--partition-size 1000] [--digest-values 60]

A synthetic plan: ``--tags`` tags in partitions of ``--partition-size``, each with a digest of
``--digest-values`` entries (20 bytes each: 60 is an hour of look-back at 60 s sampling), written
with StateStore.write_plan into a temporary folder. Prints the plan's size, the time to write it,
and the mean time of five tasks' reads each way (files in the page cache: on a network file
system or a Unity Catalog volume, the difference is the bytes, which are printed too).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pi_lakeflow.runtime.state import PLAN, PlanInfo, StateStore
from pi_lakeflow.runtime.timeseries import DIGEST_ENTRY

TASKS = 5


def synthetic_plan(tags: int, partition_size: int, digest_values: int) -> pa.Table:
    digest = os.urandom(digest_values * DIGEST_ENTRY.itemsize)
    return pa.table({
        "web_id": [f"F1DPbench{i:016d}" for i in range(tags)], "name": [f"BENCH.{i:07d}.PV" for i in range(tags)],
        "point_type": ["Float32"] * tags, "partition": pa.array(np.arange(tags) // partition_size, pa.int32()),
        "origin_ns": pa.array(np.zeros(tags, np.int64)), "cursor_ns": pa.array(np.ones(tags, np.int64)),
        "read_from_ns": pa.array(np.zeros(tags, np.int64)), "digest": pa.array([digest] * tags, pa.binary()),
        "last_error": pa.array([None] * tags, pa.string()), "rate": pa.array(np.full(tags, 1 / 60))}, schema=PLAN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=100_000)
    parser.add_argument("--partition-size", type=int, default=1_000)
    parser.add_argument("--digest-values", type=int, default=60)
    args = parser.parse_args()
    rows = synthetic_plan(args.tags, args.partition_size, args.digest_values)
    partitions = (args.tags + args.partition_size - 1) // args.partition_size
    with tempfile.TemporaryDirectory() as folder:
        store = StateStore(folder)
        started = time.perf_counter()
        store.write_plan(PlanInfo(1, 10, partitions, 10, {}, 0), rows)
        written = time.perf_counter() - started
        files = list((Path(folder) / "batches" / "00000001").iterdir())
        size = sum(f.stat().st_size for f in files)
        own = (Path(folder) / "batches" / "00000001" / "plan-00000.arrow").stat().st_size
        started = time.perf_counter()
        for partition in range(TASKS):
            store.plan_part(1, partition)
        part = (time.perf_counter() - started) / TASKS
        started = time.perf_counter()
        for partition in range(TASKS):
            _, whole = store.plan(1)
            whole.filter(pc.equal(whole["partition"], partition))
        everything = (time.perf_counter() - started) / TASKS
    print(f"{args.tags:,} tags in {partitions:,} partitions, {args.digest_values} digest entries each: "
          f"plan {size / 1e6:,.1f} MB in {len(files):,} files, written in {written:.2f} s")
    print(f"a task's read: its partition's file {own / 1e6:,.2f} MB "
          f"in {part * 1000:,.1f} ms; the whole plan, filtered, {size / 1e6:,.1f} MB in {everything * 1000:,.1f} ms "
          f"({everything / part:,.0f}x)")


if __name__ == "__main__":
    main()
