"""Values per second landed by ``pi-lakeflow run``: N tags x a window of 1-minute data, one run.

Run by hand (not a test):
    .venv/bin/python bench/pipeline_end_to_end.py [--tags 1000] [--partition 1000] [--window 1d]

The simulator runs in its own process on the same 2 cores as Spark (the machine has no others).
This script starts ``pi-lakeflow run`` on a fresh state folder and stamps each line the engine
prints as it arrives, so that Spark's start-up (launch until the time-series flow starts) is
reported apart from the time-series flow itself (RUNNING until COMPLETED), and the silver flow
(quality rules and enrichment of the same values) apart from both. The values counted are
the rows the run landed in pi_timeseries (the engine's table summary), checked against the
ingestion log of the state store. Planning is the time from the flow's RUNNING to the first
batch's plan written (its ``plan.arrow``): the tag selection (the catalog read), the plan,
its files. Memory is the peak resident memory of the run's processes (driver, JVM, Python workers).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _measure import PeakMemory
from _simulator import simulator

from pi_client.times import parse_duration, to_pi_time
from pi_lakeflow.state.log import ingestion_log
from pi_lakeflow.state.store import StateStore

END = "2024-05-02T00:00:00Z"
END_NS = 1_714_608_000 * 1_000_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1_000)
    parser.add_argument("--partition", type=int, default=1_000, help="pi.partition_size")
    parser.add_argument("--cores", type=int, default=2, help="Spark's local cores")
    parser.add_argument("--window", default="1d", help="how much time of each tag, before the end")
    args = parser.parse_args()
    with simulator(args.tags, "--sampling", "60s", "--clock", END) as url:
        folder = Path(tempfile.mkdtemp(prefix="pi-bench-"))
        config = folder / "config.yml"
        config.write_text(yaml.safe_dump({"state_dir": "state", "cores": args.cores, "configuration": {
            "pi.url": url, "pi.start": to_pi_time(END_NS - parse_duration(args.window)), "pi.end": END, "pi.step": "none",
            "pi.partition_size": str(args.partition)}}))
        launched, wall = time.perf_counter(), time.time()
        run = subprocess.Popen([sys.executable, "-m", "pi_lakeflow.cli", "run", "--verbose", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        memory = PeakMemory(run.pid)
        stamps, landed = {}, None
        for line in run.stdout:
            now = time.perf_counter() - launched
            for event, pattern in (("flow started", r"pi_timeseries is RUNNING"),
                                   ("flow completed", r"pi_timeseries has COMPLETED"),
                                   ("silver started", r"pi_timeseries_silver is RUNNING"),
                                   ("silver completed", r"pi_timeseries_silver has COMPLETED"),
                                   ("silver phase completed", r"pi_quality_metrics has COMPLETED"),
                                   ("run completed", r"run completed")):
                if re.search(pattern, line) and event not in stamps:
                    stamps[event] = now
            found = re.match(r"\s+pi_timeseries\s+([\d,]+)", line)
            if found:
                landed = int(found.group(1).replace(",", ""))
            if re.search(r"partition|failed|pi_timeseries|pi_quality|defined|pi-lakeflow", line):
                print(f"  {now:6.1f} s  {line.rstrip()}")
        status = run.wait()
        total, peak = time.perf_counter() - launched, memory.stop()
    if status or landed is None:
        sys.exit(f"the run failed (exit status {status})")
    plan = folder / "state" / "source" / "batches" / f"{1:08d}" / "plan.arrow"
    planned = plan.stat().st_mtime - wall - stamps["flow started"]
    log = ingestion_log(StateStore(folder / "state" / "source")).to_pylist()
    assert landed == sum(r["values_landed"] for r in log), "the table and the ingestion log disagree"
    flow = stamps["flow completed"] - stamps["flow started"]
    requests = sum(r["requests"] for r in log)
    print(f"{args.tags:,} tags x {args.window} of 1-minute data, partitions of {args.partition}, {args.cores} cores")
    print(f"  values landed                     {landed:,}")
    print(f"  Spark start-up (launch to flow)   {stamps['flow started']:.1f} s")
    print(f"  time-series flow                  {flow:.1f} s  ->  {landed / flow:,.0f} values/s")
    print(f"  of which planning (flow to plan)  {planned:.1f} s ({len(log)} partitions)")
    print(f"  memory peak (all processes)       {peak / 2**30:.2f} GiB")
    silver = stamps["silver completed"] - stamps["silver started"]
    phase = stamps["silver phase completed"] - stamps["flow completed"]
    print(f"  silver flow (rules, enrichment)   {silver:.1f} s  ->  {landed / silver:,.0f} values/s")
    print(f"  bronze flow end to silver end     {phase:.1f} s (catalog views, graph again, silver, quarantine, counts)")
    print(f"  whole run (launch to exit)        {total:.1f} s  ->  {landed / total:,.0f} values/s")
    print(f"  requests                          {requests} ({requests / args.tags * 1000:.2f} per 1,000 tags)")


if __name__ == "__main__":
    main()
