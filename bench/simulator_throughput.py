"""How many recorded values per second the simulator serves from streamsets/recorded in a batch.

Run by hand (not a test):  .venv/bin/python bench/simulator_throughput.py [--tags 1000] [--group 100]

The server runs in its own process pinned to one core (taskset), the client on the other; the
client reads each response fully but does not parse it, so the figure is the server's rate.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--group", type=int, default=100, help="tags per streamsets/recorded sub-request")
    parser.add_argument("--window", default="1d", help="time window per read, e.g. 1d")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    command = ["taskset", "-c", "0", sys.executable, "-m", "pi_lakeflow.cli", "simulate", "--port", "0",
               "--tags", str(args.tags), "--elements", str(args.tags), "--event-frames", "10",
               "--sampling", "60s", "--clock", "2024-05-02T00:00:00Z", "--max-items", "1000000"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split()[-1]
        os.sched_setaffinity(0, {1})
        http = requests.Session()
        http.headers["X-Requested-With"] = "bench"
        for _ in range(50):
            try:
                points_url = http.get(f"{url}/dataservers").json()["Items"][0]["Links"]["Points"]
                break
            except requests.ConnectionError:
                time.sleep(0.2)
        web_ids = [p["WebId"] for p in http.get(points_url, params={"maxCount": args.tags,
                                                                    "selectedFields": "Items.WebId"}).json()["Items"]]
        groups = [web_ids[i:i + args.group] for i in range(0, len(web_ids), args.group)]
        batch = {str(i): {"Method": "GET", "Resource": f"{url}/streamsets/recorded?"
                          + "&".join(f"webId={w}" for w in group)
                          + f"&startTime=*-{args.window}&endTime=*&maxCount=10000"}
                 for i, group in enumerate(groups)}
        for round_ in range(args.rounds + 1):
            started = time.perf_counter()
            reply = http.post(f"{url}/batch", json=batch)
            seconds = time.perf_counter() - started
            body = reply.content
            values = body.count(b'"Timestamp"')
            if round_ == 0:
                continue  # warm-up
            print(f"round {round_}: {values:,} values, {len(body) / 1e6:.1f} MB in {seconds:.2f} s "
                  f"-> {values / seconds:,.0f} values/s ({len(body) / 1e6 / seconds:.0f} MB/s)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
