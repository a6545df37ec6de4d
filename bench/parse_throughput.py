"""Parse throughput of pi_client: a streamsets/batch payload of at least 100 MB to Arrow, one core.

Run by hand (not a test):  .venv/bin/python bench/parse_throughput.py [--tags 500]

The payload is what read_recorded asks for (streamsets/recorded sub-requests of 100 tags in one
batch, with its selectedFields), made by the simulator in-process. Timed side by side, best of
three, pinned to one core:
  * the naive reference: json.loads, then a dict per value with float() and datetime parsing;
  * the decode floors: the fastest JSON decoders on PyPI only decoding the payload to Python
    objects (orjson, msgspec; pysimdjson's lazy parse as the lower bound of any parser);
  * pi_client: msgspec Structs -> Arrow table with every typed column (decode.values_table).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import datetime
from urllib.parse import quote

import msgspec


def make_payload(tags: int) -> bytes:
    from pi_client.timeseries import STREAMSET_FIELDS
    from pi_simulator import Clock, PiWebApi, PlantConfig, ServerConfig
    from pi_simulator.api import Query
    from pi_simulator.pitime import parse_time

    api = PiWebApi(PlantConfig(tags=tags, elements=tags, event_frames=10, sampling_seconds=60),
                   ServerConfig(max_returned_items_per_call=150_000), Clock(parse_time("2024-05-02T00:00:00Z", 0)))
    ids = [p.web_id for p in api.plant.points]
    batch = {str(i): {"Method": "GET", "Resource": "https://pi/piwebapi/streamsets/recorded?"
                      + "&".join(f"webId={w}" for w in ids[i:i + 100])
                      + "&startTime=2024-05-01T00:00:00Z&endTime=2024-05-01T23:59:59.9999999Z&maxCount=1500"
                      + f"&selectedFields={quote(STREAMSET_FIELDS, safe=';')}"}
             for i in range(0, len(ids), 100)}
    return api.handle("POST", "batch", Query({}), json.dumps(batch).encode()).body()


def naive(payload: bytes) -> list[dict]:
    rows = []
    for sub in json.loads(payload).values():
        for stream in sub["Content"]["Items"]:
            for v in stream["Items"]:
                try:
                    number = float(v["Value"])
                except (TypeError, ValueError):
                    number = None
                text = v["Timestamp"].rstrip("Z")
                stamp = datetime.strptime(text[:26], "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S")
                rows.append({"web_id": stream["WebId"], "timestamp": stamp, "value": number, "good": v["Good"],
                             "questionable": v["Questionable"], "substituted": v["Substituted"],
                             "annotated": v["Annotated"]})
    return rows


def pi_client_arrow(payload: bytes):
    from pi_client.batch import _Reply
    from pi_client.decode import StreamData, Streams, decode, gc_paused, values_table

    with gc_paused():
        streams = [StreamData(s.WebId, s.Name, s.UnitsAbbreviation, s.Items)
                   for reply in decode(payload, dict[str, _Reply]).values()
                   for s in decode(reply.Content, Streams).Items]
        return values_table(streams)


def best_of(function, payload: bytes, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        function(payload)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=650, help="tags x 1 day of 1-minute values")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    payload = make_payload(args.tags)
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    values = pi_client_arrow(payload).num_rows
    print(f"payload: {len(payload) / 1e6:.0f} MB, {values:,} values, {args.tags} tags")
    candidates = [("naive reference (json + dict per value)", naive, 1)]
    try:
        import orjson
        candidates.append(("floor: orjson.loads only", orjson.loads, args.rounds))
    except ImportError:
        print("orjson not installed: pip install orjson to include it")
    candidates.append(("floor: msgspec.json.decode only", msgspec.json.decode, args.rounds))
    try:
        import simdjson
        parser_ = simdjson.Parser()
        candidates.append(("lower bound: simdjson lazy parse", lambda p: parser_.parse(p) and None, args.rounds))
    except ImportError:
        print("pysimdjson not installed: pip install pysimdjson to include it")
    candidates.append(("pi_client: JSON -> typed Arrow table", pi_client_arrow, args.rounds))
    reference = None
    for name, function, rounds in candidates:
        seconds = best_of(function, payload, rounds)
        rate = values / seconds
        reference = reference or rate
        print(f"{name:42s} {seconds:7.3f} s {rate / 1e6:6.2f} M values/s {len(payload) / 1e6 / seconds:6.0f} MB/s "
              f"{rate / reference:6.1f}x")


if __name__ == "__main__":
    main()
