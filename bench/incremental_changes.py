"""What an incremental run costs: values read from PI per value landed, state bytes per tag, and
the time of the time-series flow and of the current-value tables, on a schedule.

Run by hand (not a test):
    .venv/bin/python bench/incremental_changes.py [--tags 10000] [--every 15m,15m,15m] [--changes lookback,markers]

The simulator (its own process, same 2 cores) serves N tags sampled every 60 s with its
default late and changed data (pi_simulator.config: 10% of tags buffer 30-minute outages every
6 h, 0.2% of values edited 20 minutes after, 0.1% deleted 25 minutes after), on a frozen clock. One back-fill run reads ``--backfill`` of history; then the clock moves
by each of ``--every`` before an incremental run. Each pi.changes of ``--changes`` (the look-back
re-read, stream-update markers) runs the same sequence against its own simulator of the same seed,
one after the other in one invocation. Per run: the values read (the ingestion
log) and the changes landed in pi_timeseries by action, their ratio (read amplification), the
bytes of per-tag state the run left (plan and outcome files of its batch, per tag), and the
seconds of the time-series flow and of pi_timeseries_silver (a materialized view over the
whole change log on open-source Spark).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import yaml
from _simulator import simulator

from pi_lakeflow.state.store import StateStore

CLOCK = "2024-05-02T00:00:00Z"


def run_once(config: Path) -> dict[str, float]:
    """One ``pi-lakeflow run``; seconds of the time-series flow and of silver."""
    launched = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "pi_lakeflow.cli", "run", "--verbose", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stamps = {}
    for line in process.stdout:
        now = time.perf_counter() - launched
        for event, pattern in (("flow started", r"pi_timeseries is RUNNING"),
                               ("flow completed", r"pi_timeseries has COMPLETED"),
                               ("silver started", r"pi_timeseries_silver is RUNNING"),
                               ("silver completed", r"pi_timeseries_silver has COMPLETED")):
            if re.search(pattern, line) and event not in stamps:
                stamps[event] = now
    if process.wait() not in (0, 3):
        sys.exit(f"the run failed (exit status {process.returncode})")
    return {"flow": stamps["flow completed"] - stamps["flow started"],
            "silver": stamps["silver completed"] - stamps["silver started"], "run": time.perf_counter() - launched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--every", default="15m,15m,15m",
                        help="the schedule: the clock moves this much before each incremental run (comma-separated)")
    parser.add_argument("--backfill", default="6h", help="history the first run reads")
    parser.add_argument("--lookback", default="1h")
    parser.add_argument("--changes", default="lookback,markers", help="pi.changes values to run, one after the other")
    args = parser.parse_args()
    print(f"{args.tags:,} tags at 60 s, look-back {args.lookback}, runs after {args.every} of server time "
          f"(back-fill {args.backfill} first)")
    print("| pi.changes | run | values read | changes landed (Add / Update / Delete) | read / landed "
          "| state bytes per tag | time-series flow | silver (materialized view) |")
    print("|---|---|---|---|---|---|---|---|")
    for changes in args.changes.split(","):
        runs(args, changes)


def runs(args: argparse.Namespace, changes: str) -> None:
    """The back-fill and the incremental runs with one pi.changes, against a simulator of its own
    (the same seed and clock: the same values and changes)."""
    with simulator(args.tags, "--sampling", "60s", "--clock", CLOCK) as url:
        folder = Path(tempfile.mkdtemp(prefix="pi-bench-"))
        config = folder / "config.yml"
        config.write_text(yaml.safe_dump({"state_dir": "state", "cores": 2, "configuration": {
            "pi.url": url, "pi.start": f"*-{args.backfill}", "pi.end": "*", "pi.lookback": args.lookback,
            "pi.partition_size": "2500", "pi.changes": changes}}))
        store = StateStore(folder / "state" / "source")
        table = folder / "state" / "warehouse" / "pi_timeseries"
        admin = url.rsplit("/piwebapi", 1)[0] + "/simulator/clock"
        last = None
        for number, every in enumerate(["", *args.every.split(",")]):
            if every:
                request = urllib.request.Request(admin, data=json.dumps({"Advance": every}).encode(), method="POST")
                urllib.request.urlopen(request).read()
            seconds = run_once(config)
            batch = max(store.batches())
            run = 'back-fill' if number == 0 else f'{number} (+{every})'
            if batch == last:  # nothing was due: the run planned no batch
                print(f"| {changes} | {run} | no batch | | | | {seconds['flow']:.1f} s | {seconds['silver']:.1f} s |")
                continue
            last = batch
            outcomes = store.outcomes(batch)
            read = sum(pc.sum(t["values_read"]).as_py() or 0 for t, _ in outcomes.values())
            rows = ds.dataset(table, format="parquet", partitioning="hive").to_table(
                columns=["action"], filter=ds.field("batch") == batch)
            actions = {a: int(pc.sum(pc.equal(rows["action"], a)).as_py() or 0) for a in ("Add", "Update", "Delete")}
            landed = sum(actions.values())
            folder_bytes = sum(p.stat().st_size for p in (store.root / "batches" / f"{batch:08d}").iterdir())
            tags = sum(len(t) for t, _ in outcomes.values())
            print(f"| {changes} | {run} | {read:,} | "
                  f"{landed:,} ({actions['Add']:,} / {actions['Update']:,} / {actions['Delete']:,}) | "
                  f"{read / max(landed, 1):.2f} | {folder_bytes / max(tags, 1):,.0f} | {seconds['flow']:.1f} s | "
                  f"{seconds['silver']:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
