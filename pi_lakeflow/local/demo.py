"""``pi-lakeflow demo``: the embedded simulator, the pipeline run on it twice, what landed.

The first run back-fills the history of every tag and registers it for stream updates; the
second, a little later, lands what PI reports changed since (new, edited and deleted values), each
change once. The config file
written beside the tables lets ``pi-lakeflow query`` and ``pi-lakeflow run`` go on from there.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import yaml

from pi_simulator import PiWebApi, PlantConfig, SimulatorServer
from pi_simulator.plant import ASSET_DATABASE_NAME

from pi_lakeflow import exits
from pi_lakeflow.local.config import load_config, state_lock
from pi_lakeflow.local.runner import run_pipeline
from pi_lakeflow.local.report import write_report


def write_demo_config(state_dir: Path, url: str, hours: int) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "config.yml"
    config = {"state_dir": ".", "cores": 2, "configuration": {
        "pi.url": url, "pi.start": f"*-{hours}h", "pi.lookback": "1h", "pi.partition_size": 250,
        "pi.af.database": ASSET_DATABASE_NAME, "pi.event_frames.start": "*-7d",
        "pi.interpolated.interval": "10m", "pi.summaries.interval": "1h"}}
    path.write_text("# Written by pi-lakeflow demo: the embedded simulator's settings.\n"
                    + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def query_commands(config_path: Path) -> list[str]:
    """Commands to try on the demo's tables."""
    query = f".venv/bin/pi-lakeflow query --config {config_path}"
    return [f".venv/bin/pi-lakeflow tables --config {config_path}",
            f'{query} "SELECT name, count(*) AS n, max(timestamp) AS latest FROM pi_timeseries GROUP BY name '
            f'ORDER BY n DESC LIMIT 10"',
            f'{query} "SELECT * FROM pi_ingestion_log ORDER BY batch, partition"',
            f'{query} "SELECT name, interval_start, average, minimum, maximum, percent_good FROM '
            f'pi_timeseries_summaries ORDER BY name, interval_start LIMIT 10"',
            f'{query} "SELECT batch, rule, action, passed, failed FROM pi_quality_metrics ORDER BY batch, rule"']


def announce_when_queryable(config, config_path: Path, started: float, stop: threading.Event) -> None:
    """Print how to query once pi_timeseries has committed its first batch (queries read the
    table folders, so they work while the demo goes on)."""
    committed = config.warehouse / "pi_timeseries" / "_spark_metadata" / "0"
    while not stop.wait(1.0):
        if committed.is_file():
            lines = "\n".join(f"  {command}" for command in query_commands(config_path))
            print(f"\n>> pi_timeseries is queryable after {time.perf_counter() - started:.0f} s; in another "
                  f"terminal, while the demo goes on:\n{lines}\n", flush=True)
            return


def run_demo(tags: int, state_dir: Path, hours: int) -> int:
    started = time.perf_counter()
    plant = PlantConfig(tags=tags, elements=max(tags, 50), event_frames=max(tags // 10, 20))
    with SimulatorServer(PiWebApi(plant)) as server:
        print(f"PI Web API simulator: {server.url} ({tags:,} tags, {plant.elements:,} AF elements, "
              f"{plant.event_frames:,} event frames)", flush=True)
        config_path = write_demo_config(state_dir, server.url, hours)
        config = load_config(config_path)
        runs = ((1, f"back-fill of the last {hours} h"), (2, "incremental: what PI reports changed since"))
        stop = threading.Event()
        announcer = threading.Thread(target=announce_when_queryable, args=(config, config_path, started, stop),
                                     daemon=True)
        with state_lock(config, "demo"):
            announcer.start()
            try:
                for run, what in runs:
                    print(f"\n== run {run}: {what} ==", flush=True)
                    status = run_pipeline(config)
                    if status not in (exits.OK, exits.PARTIAL):
                        print(f"pi-lakeflow demo: run {run} failed (exit status {status}); the lines above say why.")
                        return status
            finally:
                stop.set()
            report = config.state_dir / "quality-report.html"
            write_report(config, report)
    print(f"\nThe quality dashboard's panels: {report.resolve()} (open it in a browser).")
    print(f"\nDone in {time.perf_counter() - started:.0f} s. The tables are in {config.state_dir}; query them with:")
    for command in query_commands(config_path):
        print(f"  {command}")
    return 0
