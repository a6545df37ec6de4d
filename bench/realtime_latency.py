"""Real-time latency of ``pi-lakeflow stream``: from a value's timestamp at the server to its row
being readable in pi_timeseries_updates.

Run by hand (not a test):  .venv/bin/python bench/realtime_latency.py [--tags 1000] [--minutes 5]
                            [--transport markers|channels]

The simulator follows the wall clock, every tag recording one value a second (``--sampling 1s``),
in its own process on the same 2 cores as Spark (the machine has no others). The stream runs for
a warm-up and then ``--minutes``, and is stopped with Ctrl-C (SIGINT) as a user would.

A row is readable when the micro-batch that wrote it commits: Spark's file-sink log entry for
that batch (``_spark_metadata/<batch id>``) is what a reader of the table lists, and its
modification time is the commit time. Latency = commit time - the value's timestamp, over the
values timestamped in the measured window. The server's clock and this script's are the same
clock here. Nothing lost, nothing twice: the values the server recorded in the window are read
back with pi_client.read_recorded and compared with the landed Add rows (channels: with the
landed rows of any action, since a value that arrives after a newer one lands as an Update).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from _simulator import simulator

from pi_client import PiClient
from pi_client.timeseries import read_recorded

WARM_UP_SECONDS = 30
POLL_LINE = re.compile(r"poll (\d+): ([\d,]+) events")
SETTLE_SECONDS = 5  # the window ends this long before the stop, so that its values have committed


def committed(table_dir: Path) -> tuple[pa.Table, dict[int, int]]:
    """The rows of the committed files of the sink, and each batch id's commit time (ns)."""
    files, commits = set(), {}
    for entry in (table_dir / "_spark_metadata").iterdir():
        if entry.name.startswith("."):
            continue
        commits[int(entry.name.removesuffix(".compact"))] = entry.stat().st_mtime_ns
        lines = entry.read_text().splitlines()[1:]  # "v1", then one JSON object per file
        files.update(json.loads(line)["path"].removeprefix("file:") for line in lines)
    columns = ["web_id", "timestamp_ns", "ordinal", "batch", "action"]
    return pa.concat_tables(pq.read_table(path, columns=columns) for path in sorted(files)), commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1_000)
    parser.add_argument("--minutes", type=float, default=5.0, help="measured window (after a 30 s warm-up)")
    parser.add_argument("--partition", type=int, default=1_000, help="pi.partition_size (tags per Spark task)")
    parser.add_argument("--transport", choices=("markers", "channels"), default="markers",
                        help="pi.updates.transport (channels: the simulator pushes every second)")
    args = parser.parse_args()
    with simulator(args.tags, "--sampling", "1s") as url:
        folder = Path(tempfile.mkdtemp(prefix="pi-bench-realtime-"))
        config = folder / "config.yml"
        config.write_text(yaml.safe_dump({"state_dir": "state", "cores": 2, "configuration": {
            "pi.url": url, "pi.tables": "updates", "pi.partition_size": str(args.partition),
            "pi.updates.transport": args.transport}}))
        stream = subprocess.Popen([sys.executable, "-m", "pi_lakeflow.cli", "stream", "--config", str(config)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first_poll = None
        for line in stream.stdout:  # wait for the first poll with events
            print(f"  {line.rstrip()}")
            found = POLL_LINE.search(line)
            if found and found.group(2) != "0":
                first_poll = time.time_ns()
                break
        if first_poll is None:
            sys.exit(f"pi-lakeflow stream ended before its first poll (exit status {stream.wait()})")
        window_start = first_poll + WARM_UP_SECONDS * 1_000_000_000
        stop_at = window_start + int(args.minutes * 60e9) + SETTLE_SECONDS * 1_000_000_000
        window_end = stop_at - SETTLE_SECONDS * 1_000_000_000
        for line in stream.stdout:
            found = POLL_LINE.search(line)
            if not found or int(found.group(1)) % 100 == 0 or ", 0 failing" not in line:
                print(f"  {line.rstrip()}")
            if time.time_ns() >= stop_at:
                break
        stream.send_signal(signal.SIGINT)
        tail, _ = stream.communicate(timeout=120)
        print("\n".join(f"  {line}" for line in tail.splitlines()[-2:]))
        if stream.returncode:
            sys.exit(f"pi-lakeflow stream failed (exit status {stream.returncode})")

        rows, commits = committed(folder / "state" / "warehouse" / "pi_timeseries_updates")
        stamps = rows["timestamp_ns"]
        in_window = rows.filter(pc.and_(pc.greater_equal(stamps, window_start), pc.less(stamps, window_end)))
        adds = in_window.filter(pc.equal(in_window["action"], "Add"))
        commit_ns = np.array([commits[b - 1] for b in adds["batch"].to_pylist()])  # poll n is batch id n-1
        latency = (commit_ns - adds["timestamp_ns"].to_numpy()) / 1e9

        web_ids = sorted(set(rows["web_id"].to_pylist()))
        with PiClient(url) as client:
            recorded = read_recorded(client, web_ids, window_start, window_end).values
        expected = Counter(zip(recorded["web_id"].to_pylist(), recorded["timestamp"].cast(pa.int64()).to_pylist(),
                               recorded["ordinal"].to_pylist()))
        counted = adds if args.transport == "markers" else in_window
        landed = Counter(zip(counted["web_id"].to_pylist(), counted["timestamp_ns"].to_pylist(),
                             counted["ordinal"].to_pylist()))
    seconds = (window_end - window_start) / 1e9
    print(f"{args.tags:,} tags at 1 Hz, {args.transport}, partitions of {args.partition}, 2 cores, "
          f"{seconds / 60:.1f} minutes measured")
    print(f"  values in the window        {len(adds):,} landed ({len(adds) / seconds:,.0f}/s), "
          f"{sum(expected.values()):,} recorded by the server")
    print(f"  missing / extra / twice     {sum((expected - landed).values())} / {sum((landed - expected).values())} / "
          f"{sum(n - 1 for n in landed.values() if n > 1)}  (web_id, timestamp, ordinal)")
    print(f"  other actions in window     {dict(Counter(in_window['action'].to_pylist()) - Counter({'Add': len(adds)}))}")
    polls = sum(window_start <= ns < window_end for ns in commits.values())
    print(f"  polls committed in window   {polls:,} ({polls / seconds:.2f}/s)")
    print(f"  latency to readable         p50 {np.percentile(latency, 50):.2f} s, p95 {np.percentile(latency, 95):.2f} s, "
          f"p99 {np.percentile(latency, 99):.2f} s, max {latency.max():.2f} s")


if __name__ == "__main__":
    main()
