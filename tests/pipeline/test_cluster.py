"""``pi-lakeflow run`` on a real Spark cluster on this machine: Spark's standalone master and two
workers (one core each) started from the pyspark distribution, each worker its own JVM with its
own executor and Python workers; the run's driver (``master: spark://...`` in the config file)
plans on its side, the sources' partitions are read by tasks on the two executors, and the state
folder and the tables' folder are shared the way a cluster shares them (one file system that
every process reaches: here the machine's, on a cluster NFS, HDFS or a volume).

The oracle is the simulator's ground truth (its clock stands still)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from pi_client.times import to_pi_time
from pi_lakeflow.local.spark_env import spark_home
from pi_simulator import GroundTruth, PlantConfig
from tests.oracle import truth_rows, value_row
from tests.simulators import NOW, make_server
from tests.pipeline.harness import finish, start, table_rows, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark, pytest.mark.timeout(1200)]

HOUR = 3_600_000_000_000
NOW_NS = NOW * 100
START_NS = NOW_NS - 4 * HOUR
PLANT = PlantConfig(tags=90, elements=5, event_frames=2, origin_ticks=NOW)


def daemon(log: Path, *arguments: str) -> subprocess.Popen:
    """A Spark daemon (master or worker) in its own process group, bound to the loopback address."""
    environment = {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1",
                   "SPARK_LOG_DIR": str(log.parent)}
    return subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *arguments], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=environment, start_new_session=True)


def wait_for(log: Path, pattern: str, count: int, process: subprocess.Popen, seconds: float = 120) -> list[str]:
    """The first ``count`` matches of ``pattern`` in a daemon's log, waiting for them."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = re.findall(pattern, log.read_text(errors="replace"))
        if len(found) >= count:
            return found
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        time.sleep(0.3)
    raise AssertionError(f"no {pattern!r} x{count} in {log} after {seconds} s")


@pytest.fixture
def cluster(tmp_path):
    """A standalone master on a free port and two workers of one core each; yields the master's
    URL and the workers' work folders."""
    folder = tmp_path / "cluster"
    folder.mkdir()
    processes = []
    try:
        processes.append(daemon(folder / "master.log", "org.apache.spark.deploy.master.Master",
                                "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"))
        url = wait_for(folder / "master.log", r"Starting Spark master at (spark://\S+)", 1, processes[0])[0]
        works = [folder / f"work{n}" for n in (1, 2)]
        for n, work in enumerate(works, 1):
            processes.append(daemon(folder / f"worker{n}.log", "org.apache.spark.deploy.worker.Worker",
                                    "--host", "127.0.0.1", "--cores", "1", "--memory", "2g", "--webui-port", "0",
                                    "--work-dir", str(work), url))
        wait_for(folder / "master.log", r"Registering worker", 2, processes[0])
        yield url, works
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            process.wait(timeout=60)


def test_a_run_on_a_standalone_cluster_of_two_workers_lands_exactly_the_ground_truth(tmp_path, cluster, spark):
    url, works = cluster
    with make_server(PLANT) as server:
        truth = GroundTruth(server.api)
        config = write_config(tmp_path / "run", server.url, **{"pi.start": to_pi_time(START_NS), "pi.step": "2h",
                                                               "pi.partition_size": "30"})
        config.write_text(config.read_text() + f"master: {url}\n")
        run = start("run", config)
        out = finish(run)
        assert run.returncode == 0 and "Traceback" not in out, out[-3000:]
        assert "step 2 of 2" in out, out[-3000:]  # two batches, each one committed
        rows = table_rows(spark, config.parent / "pi-state", "pi_timeseries")
        landed = Counter(value_row(r) for r in rows)
        assert not [r for r, n in landed.items() if n > 1], "a value landed twice"
        assert set(landed) == set(truth_rows(truth, server.api.plant.points, START_NS, NOW_NS))
        assert {r["batch"] for r in rows} == {1, 2}
    # Every task ran on the workers' executors (the driver has none): each worker's executor
    # ran tasks, among them the time-series partitions (3 per batch, on 2 executors of 1 core).
    for work in works:
        logs = list(work.glob("app-*/*/stderr"))
        assert logs and sum(log.read_text(errors="replace").count("Running task") for log in logs) >= 2, work
