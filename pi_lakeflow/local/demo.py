"""``pi-lakeflow demo``: the embedded simulator, the pipeline run on it twice, what landed.

The first run back-fills the history of every tag; the second, a little later, reads only what
is new plus the look-back range, and lands only values that were not there yet. The config file
written beside the tables lets ``pi-lakeflow query`` and ``pi-lakeflow run`` go on from there.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from pi_simulator import PiWebApi, PlantConfig, SimulatorServer
from pi_simulator.plant import ASSET_DATABASE_NAME

from pi_lakeflow import exits
from pi_lakeflow.local.runner import load_config, run_pipeline, state_lock
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


def run_demo(tags: int, state_dir: Path, hours: int) -> int:
    started = time.perf_counter()
    plant = PlantConfig(tags=tags, elements=max(tags, 50), event_frames=max(tags // 10, 20))
    with SimulatorServer(PiWebApi(plant)) as server:
        print(f"PI Web API simulator: {server.url} ({tags:,} tags, {plant.elements:,} AF elements, "
              f"{plant.event_frames:,} event frames)", flush=True)
        config_path = write_demo_config(state_dir, server.url, hours)
        config = load_config(config_path)
        runs = ((1, f"back-fill of the last {hours} h"), (2, "incremental: new values and the look-back"))
        with state_lock(config, "demo"):
            for run, what in runs:
                print(f"\n== run {run}: {what} ==", flush=True)
                status = run_pipeline(config)
                if status not in (exits.OK, exits.PARTIAL):
                    print(f"pi-lakeflow demo: run {run} failed (exit status {status}); the lines above say why.")
                    return status
            report = config.state_dir / "quality-report.html"
            write_report(config, report)
    print(f"\nThe quality dashboard's panels: {report.resolve()} (open it in a browser).")
    print(f"\nDone in {time.perf_counter() - started:.0f} s. The tables are in {config.state_dir}; query them with:")
    print(f'  .venv/bin/pi-lakeflow query --config {config_path} '
          f'"SELECT name, count(*) AS n, max(timestamp) AS latest FROM pi_timeseries GROUP BY name ORDER BY n DESC LIMIT 10"')
    print(f'  .venv/bin/pi-lakeflow query --config {config_path} "SELECT * FROM pi_ingestion_log ORDER BY batch, partition"')
    print(f'  .venv/bin/pi-lakeflow query --config {config_path} '
          f'"SELECT name, interval_start, average, minimum, maximum, percent_good FROM pi_timeseries_summaries '
          f'ORDER BY name, interval_start LIMIT 10"')
    print(f'  .venv/bin/pi-lakeflow query --config {config_path} '
          f'"SELECT batch, rule, action, passed, failed FROM pi_quality_metrics ORDER BY batch, rule"')
    return 0
