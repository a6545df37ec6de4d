"""How many recorded values per second the simulator serves from streamsets/recorded in a batch.

Run by hand (not a test):  .venv/bin/python bench/simulator_throughput.py [--tags 1000] [--group 100]

The server runs in its own process pinned to one core (taskset), the client on the other. Each
round posts the same batch twice: once read with ``requests`` (what a Python client pays on top)
and once with a raw socket that receives the body into one preallocated buffer (``recv_into``:
next to no client work), so the second figure is the server's own rate over HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import requests


def post_raw(url: str, document: dict) -> bytearray:
    """POST JSON over a fresh socket and return the body, received into one buffer."""
    parts = urlsplit(url)
    payload = json.dumps(document).encode()
    request = (f"POST {parts.path}/batch HTTP/1.1\r\nHost: {parts.netloc}\r\nX-Requested-With: bench\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
               f"Connection: close\r\n\r\n").encode() + payload
    with socket.create_connection((parts.hostname, parts.port)) as connection:
        connection.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += connection.recv(65536)
        head, _, start = head.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        body = bytearray(length)
        body[:len(start)] = start
        view, received = memoryview(body), len(start)
        while received < length:
            received += connection.recv_into(view[received:], length - received)
        return body


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
            body = http.post(f"{url}/batch", json=batch).content
            with_requests = time.perf_counter() - started
            started = time.perf_counter()
            raw = post_raw(url, batch)
            raw_seconds = time.perf_counter() - started
            values = body.count(b'"Timestamp"')
            assert raw.count(b'"Timestamp"') == values
            if round_ == 0:
                continue  # warm-up
            print(f"round {round_}: {values:,} values, {len(body) / 1e6:.1f} MB: "
                  f"raw socket {raw_seconds:.2f} s -> {values / raw_seconds:,.0f} values/s "
                  f"({len(body) / 1e6 / raw_seconds:.0f} MB/s); with requests {with_requests:.2f} s -> "
                  f"{values / with_requests:,.0f} values/s")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
