"""``pi-lakeflow demo``: the embedded simulator, read over HTTP, summarised on the terminal.

Until the pipeline exists this shows what the simulator serves; it reads through plain HTTP
calls in PI Web API's batch format, the same requests a connector sends.
"""

from __future__ import annotations

import argparse
import time

import requests

from pi_simulator import PiWebApi, PlantConfig, SimulatorServer


def run_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    plant = PlantConfig(tags=args.tags, elements=max(args.tags, 50), event_frames=max(args.tags // 10, 20))
    with SimulatorServer(PiWebApi(plant)) as server, requests.Session() as http:
        http.headers["X-Requested-With"] = "pi-lakeflow-demo"
        print(f"Simulator: {server.url}  (plant built in {time.perf_counter() - started:.1f} s)")
        data_server = http.get(f"{server.url}/dataservers").json()["Items"][0]
        points, start = [], 0
        while True:
            page = http.get(data_server["Links"]["Points"], params={"startIndex": start, "maxCount": 1000,
                            "selectedFields": "Items.WebId;Items.Name;Items.PointType;Items.EngineeringUnits"}).json()
            points += page["Items"]
            if len(page["Items"]) < 1000:
                break
            start += 1000
        print(f"Data server {data_server['Name']}: {len(points):,} PI points")
        sample = points[:8]
        query = "&".join(f"webId={p['WebId']}" for p in sample)
        batch = {"1": {"Method": "GET", "Resource": f"{server.url}/streamsets/recorded?{query}"
                                                    f"&startTime=*-1h&endTime=*&maxCount=1000"}}
        reply = http.post(f"{server.url}/batch", json=batch)
        streams = reply.json()["1"]["Content"]["Items"]
        print(f"\nRecorded values of the last hour (one batch request, HTTP {reply.status_code}):")
        print(f"  {'tag':34} {'type':9} {'values':>6}  latest")
        for point, stream in zip(sample, streams):
            last = stream["Items"][-1] if stream["Items"] else None
            shown = "" if last is None else f"{last['Timestamp']}  {last['Value']!s:.40} {stream['UnitsAbbreviation']}"
            print(f"  {point['Name']:34} {point['PointType']:9} {len(stream['Items']):>6}  {shown}")
        asset_server = http.get(f"{server.url}/assetservers").json()["Items"][0]
        database = http.get(asset_server["Links"]["Databases"]).json()["Items"][0]
        elements = http.get(database["Links"]["Elements"], params={"searchFullHierarchy": "true",
                            "maxCount": 150000, "selectedFields": "Items.Path"}).json()["Items"]
        frames = http.get(database["Links"]["EventFrames"], params={"startTime": "*-1d", "endTime": "*",
                          "maxCount": 150000}).json()["Items"]
        open_frames = sum(1 for f in frames if f["EndTime"].startswith("9999"))
        print(f"\nAF database {database['Path']}: {len(elements):,} elements, "
              f"{max(len(e['Path'].split(chr(92))) for e in elements) - 4} levels deep")
        print(f"Event frames overlapping the last day: {len(frames)} ({open_frames} in progress)")
        print(f"\nDone in {time.perf_counter() - started:.1f} s. Serve it yourself with: "
              f"pi-lakeflow simulate --port 5443")
    return 0
