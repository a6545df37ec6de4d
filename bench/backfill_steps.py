"""A back-fill in steps (pi.step) against one in a single batch: its time, its steps, its memory
peak, and the time a kill at half-way costs.

Run by hand (not a test):
    .venv/bin/python bench/backfill_steps.py [--tags 1000] [--days 30] [--steps 7d,none] [--kill-at 0.5]

For each ``pi.step`` (side by side, one simulator, in one sitting): run A reads the window on a
fresh state folder; run B does the same, is killed (SIGKILL, its whole process group) when its
time-series flow has run ``--kill-at`` of A's flow time, and is started again on its state
folder until its flow completes. Times are the time-series flow's (RUNNING to COMPLETED, stamped
as the engine prints them; Spark's start-up is reported apart): a run is stopped once that flow
has completed (silver is not part of the question). Time lost to the kill = B's flow time before
the kill + B's resumed flow time - A's flow time. Memory: the peak of the summed resident memory
of the run's processes (driver, JVM, Python workers), sampled every 0.5 s. Both runs of a step
must land the same number of values (the exactness itself is the tests' job:
tests/pipeline/test_backfill.py).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from _measure import PeakMemory
from _simulator import simulator

from pi_lakeflow.local.uncommitted import committed_files
from pi_lakeflow.state.log import ingestion_log
from pi_lakeflow.state.store import StateStore

END = "2024-06-01T00:00:00Z"


@dataclass
class Flow:
    """One ``pi-lakeflow run`` as this script saw it."""

    startup: float = 0.0  # launch to the time-series flow RUNNING
    flow: float = 0.0  # RUNNING to COMPLETED (or to the kill)
    steps: int = 0  # the most steps a step line announced
    peak_bytes: int = 0
    completed: bool = False
    lines: list[str] = field(default_factory=list)


def run(config: Path, kill_after: float | None = None) -> Flow:
    """Start ``pi-lakeflow run``; stop it (SIGKILL) once its time-series flow has completed, or
    ``kill_after`` seconds into that flow."""
    seen = Flow()
    launched = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "pi_lakeflow.cli", "run", "--verbose", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    memory, stop = PeakMemory(process.pid), threading.Event()

    def killer(at: float) -> None:
        if not stop.wait(at):
            os.killpg(process.pid, signal.SIGKILL)

    flow_started = None
    for line in process.stdout:
        now = time.perf_counter() - launched
        seen.lines.append(line.rstrip())
        if flow_started is None and "pi_timeseries is RUNNING" in line:
            flow_started, seen.startup = now, now
            if kill_after is not None:
                threading.Thread(target=killer, args=(kill_after,), daemon=True).start()
        if (found := re.search(r"step \d+ of (\d+) of a back-fill", line)):
            seen.steps = max(seen.steps, int(found.group(1)))
        if "pi_timeseries has COMPLETED" in line:
            seen.completed = True
            break
    seen.flow = time.perf_counter() - launched - (flow_started or 0)
    stop.set()
    seen.peak_bytes = memory.stop()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    return seen


def landed(folder: Path) -> int:
    """Values the finished batches landed (the ingestion log)."""
    return sum(r["values_landed"] for r in ingestion_log(StateStore(folder / "state" / "source")).to_pylist())


def committed(folder: Path) -> int:
    """Rows in the files pi_timeseries' sink log holds (what Spark committed)."""
    return sum(pq.ParquetFile(f).metadata.num_rows
               for f in committed_files(folder / "state" / "warehouse" / "pi_timeseries") or ())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--steps", default="7d,none", help="pi.step values, side by side")
    parser.add_argument("--kill-at", type=float, default=0.5, help="share of run A's flow time")
    args = parser.parse_args()
    start = f"*-{args.days}d"
    with simulator(args.tags, "--sampling", "60s", "--clock", END) as url:
        print(f"{args.tags:,} tags x {args.days} days at 60 s, 2 cores, simulator beside Spark; kill at "
              f"{args.kill_at:.0%} of the flow")
        for step in args.steps.split(","):
            folders = {}
            for name in ("A", "B"):
                folders[name] = Path(tempfile.mkdtemp(prefix=f"pi-backfill-{name}-"))
                (folders[name] / "config.yml").write_text(yaml.safe_dump({
                    "state_dir": "state", "cores": 2, "configuration": {
                        "pi.url": url, "pi.start": start, "pi.end": "*", "pi.step": step,
                        "pi.partition_size": "250"}}))
            whole = run(folders["A"] / "config.yml")
            killed = run(folders["B"] / "config.yml", kill_after=args.kill_at * whole.flow)
            committed_at_kill = committed(folders["B"])
            resumed = run(folders["B"] / "config.yml")
            values = landed(folders["A"])
            assert whole.completed and resumed.completed and not killed.completed
            assert landed(folders["B"]) == values == committed(folders["B"]), (landed(folders["B"]), values)
            lost = killed.flow + resumed.flow - whole.flow
            print(f"pi.step {step}: {values:,} values, {max(whole.steps, 1)} step(s)")
            print(f"  run A: flow {whole.flow:.1f} s ({values / whole.flow:,.0f} values/s), Spark start-up "
                  f"{whole.startup:.1f} s, memory peak {whole.peak_bytes / 2**30:.2f} GiB")
            print(f"  run B: killed after {killed.flow:.1f} s of flow with {committed_at_kill:,} values committed "
                  f"({committed_at_kill / values:.0%}); resumed flow {resumed.flow:.1f} s "
                  f"(start-up {resumed.startup:.1f} s), memory peak {max(killed.peak_bytes, resumed.peak_bytes) / 2**30:.2f} GiB")
            print(f"  time lost to the kill: {lost:.1f} s in the flow (+ {resumed.startup:.1f} s to start again); "
                  f"one step's worth: {whole.flow / max(whole.steps, 1):.1f} s")


if __name__ == "__main__":
    main()
