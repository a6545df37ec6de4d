"""The pipeline harness: ``pi-lakeflow`` commands as a site starts them (subprocesses, every
credential handed over as an environment variable), their config files, and the tables and
polls they leave."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pi_client.times import to_pi_time
from pi_lakeflow.runtime.realtime import MarkerStore
from tests.simulators import NOW

NOW_NS = NOW * 100
START_NS = NOW_NS - 2 * 3_600_000_000_000
PASSWORD = "Pw-7f3c9-basic!"        # the Basic user's password: must appear nowhere
OIDC_SECRET = "Oidc-2b8e1-secret!"  # the OpenID Connect client's secret: must appear nowhere
FAKE_GSSAPI = str(Path(__file__).parent.parent / "fixtures" / "fake_gssapi")


def write_config(folder: Path, url: str, **settings: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pi.yml"
    path.write_text(yaml.safe_dump({"state_dir": "./pi-state", "cores": 2, "configuration": {
        "pi.url": url, "pi.start": to_pi_time(START_NS), "pi.end": to_pi_time(NOW_NS),
        "pi.partition_size": "60", **settings}}))
    return path


def start(command: str, config: Path, kerberos: bool = False, *more: str) -> subprocess.Popen:
    environment = {**os.environ, "PI_PASSWORD": PASSWORD, "PI_OIDC_SECRET": OIDC_SECRET}
    if kerberos:
        environment["PI_LAKEFLOW_TEST_FAKE_GSSAPI"] = "1"
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [FAKE_GSSAPI, os.environ.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", "pi_lakeflow.cli", command, "--config", str(config), *more],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
                            start_new_session=True)


def table_rows(spark, state: Path, table: str) -> list[dict]:
    """A table's rows, read from its parquet folder with the module's Spark session (one session
    for the module: starting and stopping one per read can hang in pyspark's stop)."""
    return [r.asDict() for r in spark.read.parquet(str(state / "warehouse" / table)).collect()]


def finish(process: subprocess.Popen, timeout: float = 900) -> str:
    out, _ = process.communicate(timeout=timeout)
    return out


def last_poll(store: MarkerStore) -> int:
    polls = store.polls()
    return polls[-1] if polls else 0


def wait_for_poll(store: MarkerStore, number: int, process: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until poll ``number`` (or a later one) has written the markers of every partition; the
    store prunes old polls, so this waits on poll numbers, not on how many polls are kept."""
    deadline = time.monotonic() + timeout
    while last_poll(store) < number or not all(store.read(last_poll(store), p) for p in store.partitions()):
        assert process.poll() is None, "pi-lakeflow stream ended on its own"
        assert time.monotonic() < deadline, f"no poll {number} in {timeout} s"
        time.sleep(0.2)
