"""Requests per 1,000 tags and peak memory of read_recorded, 10,000 tags x 1 day of 1-minute data.

Run by hand (not a test):  .venv/bin/python bench/extract_partitions.py [--tags 10000] [--partition 1000]

The simulator runs in its own process (core 0); this process reads the tags partition by
partition (core 1), the way the pipeline's executors do, keeping only per-partition counts.
Peak memory is this process's maximum resident set size; it is reported after the first partition
and at the end: bounded by the partition size, it does not grow with the number of partitions.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

from pi_client import PiClient, find_points, read_recorded
from pi_client.timeseries import Tag


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--partition", type=int, default=1_000, help="tags per unit of work")
    args = parser.parse_args()
    command = ["taskset", "-c", "0", sys.executable, "-m", "pi_lakeflow.cli", "simulate", "--port", "0",
               "--tags", str(args.tags), "--elements", "100", "--event-frames", "10", "--sampling", "60s",
               "--clock", "2024-05-02T00:00:00Z"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split()[-1]
        os.sched_setaffinity(0, {1})
        with PiClient(url) as client:
            for _ in range(50):
                try:
                    points = find_points(client)
                    break
                except Exception:
                    time.sleep(0.2)
            tags = [Tag(w, n, t) for w, n, t in zip(*(points[c].to_pylist() for c in ("web_id", "name", "point_type")))]
            print(f"{len(tags):,} tags; partitions of {args.partition}; baseline peak RSS {peak_mb():.0f} MB")
            started = time.perf_counter()
            totals = {"values": 0, "requests": 0, "bytes": 0, "errors": 0}
            for i in range(0, len(tags), args.partition):
                result = read_recorded(client, tags[i:i + args.partition], "2024-05-01T00:00:00Z",
                                       "2024-05-02T00:00:00Z")
                totals["values"] += result.values.num_rows
                totals["requests"] += result.requests
                totals["bytes"] += result.bytes_received
                totals["errors"] += len(result.errors)
                if i == 0:
                    print(f"partition 1: {result.values.num_rows:,} values, {result.requests} request(s), "
                          f"{result.bytes_received / 1e6:.0f} MB in {result.seconds:.1f} s; "
                          f"peak RSS so far {peak_mb():.0f} MB")
                del result
            seconds = time.perf_counter() - started
        partitions = -(-len(tags) // args.partition)
        print(f"all {partitions} partitions: {totals['values']:,} values, {totals['requests']} requests "
              f"({totals['requests'] / len(tags) * 1000:.2f} per 1,000 tags), {totals['bytes'] / 1e6:.0f} MB, "
              f"{totals['errors']} failed tags, {seconds:.1f} s ({totals['values'] / seconds:,.0f} values/s "
              f"end to end incl. the simulator); peak RSS {peak_mb():.0f} MB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
