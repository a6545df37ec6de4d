"""The deployable wheel on the Sparks that Databricks pipelines run today: Databricks Runtime
17.3 LTS (the CURRENT channel) runs Spark 4.0 and 18.x (PREVIEW) Spark 4.1, whose Python data
source runners call ``latestOffset()`` without arguments (4.2 and later pass ``start`` and a
limit, the protocol of the rest of the suite, on pyspark 4.3).

Per Spark, an environment like that runtime's (its pyspark; pyarrow, numpy and pandas at exactly
the wheel's lower bounds) gets the wheel with its own requirements only; run_sources.py then
drives the catalog source and the time-series stream there with plain Structured Streaming
against the simulator on loopback, and what landed is compared with the simulator's ground
truth. The whole declarative pipeline on the newest pyspark is tests/pipeline/test_pipeline_runs.py.
What this cannot show: Databricks' own Spark build and its serverless workers (DEPLOY.md).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pi_client.times import to_pi_time
from pi_simulator import GroundTruth, PlantConfig
from tests.oracle import current_rows, event_row, landed_changes, truth_changes, truth_events, truth_rows, value_row
from tests.simulators import NOW, make_server
from tests.deploy.tools import RUNTIME_SPARKS, build_wheel, installed, lower_bounds, runtime_environment

# The first run on a machine downloads each pyspark into the cache (tools.py); each stream run
# starts a JVM of its own.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark, pytest.mark.timeout(1800)]

TICK, HOUR, MINUTE_TICKS = 100, 3_600_000_000_000, 600_000_000
NOW_NS = NOW * TICK
PLANT = PlantConfig(tags=60, elements=50, event_frames=10, origin_ticks=NOW)
RUNNER = Path(__file__).with_name("run_sources.py")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module", params=sorted(RUNTIME_SPARKS.values()), ids=lambda v: f"spark-{v}")
def runtime(request, wheel) -> tuple[Path, str]:
    """The python of the environment of one Spark, and that Spark's version."""
    return runtime_environment(wheel, request.param), request.param


def run(python: Path, work: Path, options: dict, name: str, catalog: bool = False, source: str = "pi_timeseries"
        ) -> dict:
    """One run of run_sources.py; its checkpoint and output are ``work/<name>``."""
    (work / "options.json").write_text(json.dumps(options))
    command = [str(python), str(RUNNER), source, str(work / "options.json"), str(work / name / "checkpoint"),
               str(work / name / "out")] + ([str(work / "points")] if catalog else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=work,
                          env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONPATH": "",
                               "PYSPARK_PYTHON": str(python), "PYSPARK_DRIVER_PYTHON": str(python)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def landed(folder: Path) -> Counter:
    return Counter(value_row(row) for row in pq.read_table(folder).to_pylist())


def test_the_wheel_installs_with_its_own_requirements_only(runtime, wheel):
    python, spark = runtime
    found = installed(python)
    assert found["pyspark"] == spark  # the environment's own, not replaced
    for name, floor in lower_bounds(wheel).items():
        if name in ("pyarrow", "numpy", "pandas"):
            assert found[name] == floor, name  # satisfied by what is there: nothing upgraded
        else:
            assert name in found, name  # added by pip from the wheel's requirements
    assert "pi-lakeflow-simulator" not in found


def test_sources_land_the_ground_truth(runtime, tmp_path):
    python, spark = runtime
    with make_server(PLANT) as server:
        truth = GroundTruth(server.api)
        points = server.api.plant.points
        start = NOW_NS - 6 * HOUR
        # pi.end "*" is the server's now: the simulator's frozen clock, years behind this machine's.
        options = {"pi.url": server.url, "pi.state_path": str(tmp_path / "state"), "pi.start": to_pi_time(start),
                   "pi.end": "*", "pi.partition_size": "25", "pi.lookback": "1h"}

        first = run(python, tmp_path, options, "first", catalog=True)
        assert first["spark"] == spark and first["batches"] == [0]
        assert sorted(pq.read_table(tmp_path / "points")["name"].to_pylist()) == sorted(p.name for p in points)
        truth_first = truth_rows(truth, points, start, NOW_NS)
        assert landed(tmp_path / "first" / "out") == Counter(truth_first)

        # The next update, an hour later: what changed (Add, Update, Delete), each once (same checkpoint).
        server.api.clock.advance(HOUR // TICK)
        second = run(python, tmp_path, options, "first")
        assert second["batches"] == [1]
        rows = pq.read_table(tmp_path / "first" / "out").to_pylist()
        truth_later = truth_rows(truth, points, start, NOW_NS + HOUR)
        assert landed_changes(r for r in rows if r["batch"] == 2) == truth_changes(truth_first, truth_later)
        assert current_rows(rows) == Counter(truth_later)

        # Nothing new: no batch.
        assert run(python, tmp_path, options, "first")["batches"] == []

        # A new checkpoint over the same state folder (a full refresh): every value again, from pi.start.
        again = run(python, tmp_path, options, "refreshed")
        assert again["batches"] == [0]
        assert landed(tmp_path / "refreshed" / "out") == Counter(truth_rows(truth, points, start, NOW_NS + HOUR))


def test_the_updates_source_polls_every_change_once(runtime, tmp_path):
    """Each run is one poll (availableNow): the first registers the markers, the next lands every
    change since, from the markers the first left (Spark passes no start: the newest poll)."""
    python, _ = runtime
    with make_server(PLANT) as server:
        points = server.api.plant.points
        options = {"pi.url": server.url, "pi.state_path": str(tmp_path / "state"), "pi.partition_size": "25"}
        assert run(python, tmp_path, options, "updates", source="pi_updates")["batches"] == []  # registration
        server.api.clock.advance(20 * MINUTE_TICKS)
        assert run(python, tmp_path, options, "updates", source="pi_updates")["batches"] == [1]
        landed = Counter(event_row(row) for row in pq.read_table(tmp_path / "updates" / "out").to_pylist())
        assert landed == truth_events(GroundTruth(server.api), points, NOW, NOW + 20 * MINUTE_TICKS)
