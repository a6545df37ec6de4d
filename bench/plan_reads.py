"""Planning a batch at estate scale, apart from the server: the driver's plan (timeseries.plan_batch
over the tag state), writing it (StateStore.write_plan), and what a task reads of it (its
partition's file, side by side with the whole plan filtered to its partition, what every task
read before the plan had a file per partition).

Run by hand (not a test):
    .venv/bin/python bench/plan_reads.py [--tags 100000] [--partition-size 1000] [--digest-values 60]
                                         [--compare-with GIT_REV]

A synthetic estate: ``--tags`` tags, all known to the state (a cursor an hour back, a digest of
``--digest-values`` entries of 20 bytes: 60 is an hour of look-back at 60 s sampling), all
selected (the selection is handed to the planner as select_tags would return it: no server).
``--compare-with REV`` also times plan_batch as it was at that git revision (loaded from
``git show REV:pi_lakeflow/runtime/timeseries.py``), in the same process, after the current one.
Files are in the page cache: on a network file system or a Unity Catalog volume the difference
between the reads is the bytes, which are printed too.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pi_client import Lookup
from pi_lakeflow.config.settings import parse
from pi_lakeflow.runtime import timeseries
from pi_lakeflow.runtime.state import PLAN, StateStore
from pi_lakeflow.runtime.timeseries import DIGEST_ENTRY

TASKS = 5
NOW_NS = 1_800_000_000 * 10**9
HOUR_NS = 3600 * 10**9


def synthetic_estate(tags: int, digest_values: int) -> tuple[pa.Table, pa.Table]:
    """The selection (POINTS columns the planner reads) and the tag state after a batch."""
    web_ids = [f"F1DPbench{i:016d}" for i in range(tags)]
    names = [f"BENCH.{i:07d}.PV" for i in range(tags)]
    selection = pa.table({"web_id": web_ids, "name": names, "point_type": ["Float32"] * tags})
    digest = os.urandom(digest_values * DIGEST_ENTRY.itemsize)
    state = pa.table({
        "web_id": web_ids, "name": names, "point_type": ["Float32"] * tags,
        "partition": pa.array(np.zeros(tags, np.int32)), "origin_ns": pa.array(np.zeros(tags, np.int64)),
        "cursor_ns": pa.array(np.full(tags, NOW_NS - HOUR_NS, np.int64)),
        "read_from_ns": pa.array(np.zeros(tags, np.int64)), "digest": pa.array([digest] * tags, pa.binary()),
        "last_error": pa.array([None] * tags, pa.string()), "rate": pa.array(np.full(tags, 1 / 60))}, schema=PLAN)
    return selection, state


def planner_at(revision: str):
    """timeseries.py as it was at a git revision, as a module."""
    source = subprocess.run(["git", "show", f"{revision}:pi_lakeflow/runtime/timeseries.py"], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).parent).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as file:
        file.write(source)
    spec = importlib.util.spec_from_file_location(f"timeseries_at_{revision}", file.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    os.unlink(file.name)
    return module


def timed_plan(module, settings, selection: pa.Table, state: pa.Table):
    module.select_tags = lambda client, settings: Lookup(selection, {})
    started = time.perf_counter()
    info, rows = module.plan_batch(None, settings, state, 1, 2, NOW_NS)
    return info, rows, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=100_000)
    parser.add_argument("--partition-size", type=int, default=1_000)
    parser.add_argument("--digest-values", type=int, default=60)
    parser.add_argument("--compare-with", default=None, metavar="GIT_REV")
    args = parser.parse_args()
    selection, state = synthetic_estate(args.tags, args.digest_values)
    with tempfile.TemporaryDirectory() as folder:
        settings = parse({"pi.url": "http://127.0.0.1:1/piwebapi", "pi.state_path": folder,
                          "pi.partition_size": str(args.partition_size)})
        info, rows, planned = timed_plan(timeseries, settings, selection, state)
        store = StateStore(folder)
        started = time.perf_counter()
        store.write_plan(info, rows)
        written = time.perf_counter() - started
        files = list((Path(folder) / "batches" / "00000002").iterdir())
        size = sum(f.stat().st_size for f in files)
        own = (Path(folder) / "batches" / "00000002" / "plan-00000.arrow").stat().st_size
        started = time.perf_counter()
        for partition in range(TASKS):
            store.plan_part(2, partition)
        part = (time.perf_counter() - started) / TASKS
        started = time.perf_counter()
        for partition in range(TASKS):
            _, whole = store.plan(2)
            whole.filter(pc.equal(whole["partition"], partition))
        everything = (time.perf_counter() - started) / TASKS
        earlier = timed_plan(planner_at(args.compare_with), settings, selection, state)[2] \
            if args.compare_with else None
    print(f"{args.tags:,} tags in {info.partitions:,} partitions, {args.digest_values} digest entries each")
    print(f"plan_batch: {planned:.2f} s" + (f" (at {args.compare_with}: {earlier:.2f} s, {earlier / planned:.1f}x)"
                                             if earlier is not None else ""))
    print(f"write_plan: {size / 1e6:,.1f} MB in {len(files):,} files in {written:.2f} s")
    print(f"a task's read: its partition's file {own / 1e6:,.2f} MB in {part * 1000:,.1f} ms; the whole plan, "
          f"filtered, {size / 1e6:,.1f} MB in {everything * 1000:,.1f} ms ({everything / part:,.0f}x)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
