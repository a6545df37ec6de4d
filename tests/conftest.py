"""Shared fixtures: simulators on loopback with a frozen clock, and HTTP sessions."""

from __future__ import annotations

import json
from collections import Counter
from typing import Iterable

import pytest
import requests

from pi_client.times import to_ns
from pi_simulator import Clock, GroundTruth, PiWebApi, PlantConfig, ServerConfig, SimulatorServer
from pi_simulator.pitime import parse_time

#: The frozen server time of every test simulator.
NOW = parse_time("2024-05-02T00:00:00Z", 0)
SMALL_PLANT = PlantConfig(tags=300, elements=400, event_frames=120, origin_ticks=NOW)


def make_server(plant: PlantConfig = SMALL_PLANT, **server_options) -> SimulatorServer:
    api = PiWebApi(plant, ServerConfig(**server_options), Clock(NOW))
    return SimulatorServer(api, stall_seconds=3.0)


@pytest.fixture(scope="session")
def shared_server():
    """A read-only simulator shared by the tests that do not move its clock."""
    with make_server() as server:
        yield server


@pytest.fixture
def fresh_server():
    """A simulator of one's own, whose clock a test may move."""
    with make_server() as server:
        yield server


@pytest.fixture(scope="module")
def spark():
    """A local Spark session (one core, UTC) for a module's assertions over the tables."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.master("local[1]").appName("tests").config("spark.ui.enabled", "false") \
        .config("spark.sql.session.timeZone", "UTC").getOrCreate()
    yield session
    session.stop()


@pytest.fixture
def http():
    with requests.Session() as session:
        session.headers["X-Requested-With"] = "tests"
        yield session


@pytest.fixture
def tls_files(tmp_path) -> tuple[str, str, str]:
    """A certificate for 127.0.0.1, its key and the CA that signed it (PEM files)."""
    import trustme

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert_file))
    certificate.private_key_pem.write_to_path(str(key_file))
    authority.cert_pem.write_to_path(str(ca_file))
    return str(cert_file), str(key_file), str(ca_file)


@pytest.fixture(scope="session")
def truth(shared_server) -> GroundTruth:
    return GroundTruth(shared_server.api)


def value_json(row: dict) -> str:
    """A typed value row (pi_client.schemas.VALUES) back as the JSON of PI Web API's ``Value``."""
    if row["error"] is not None:
        return json.dumps({"Errors": row["error"].split("; ")}, sort_keys=True)
    if row["state_name"] is not None:
        return json.dumps({"IsSystem": row["is_system"], "Name": row["state_name"], "Value": row["state_code"]},
                          sort_keys=True)
    if row["value_string"] is not None:
        return json.dumps(row["value_string"])
    return json.dumps(row["value_double"])


def truth_json(value) -> str:
    """A ground-truth ``Value`` as value_json writes it (JSON numbers compared as doubles)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return json.dumps(float(value) if number else value, sort_keys=True)


def value_row(row: dict) -> tuple:
    """A landed value (a row of pi_timeseries, as a dict) as the tuple truth_rows makes."""
    return (row["name"], row["timestamp_ns"], row["ordinal"], value_json(row), row["good"], row["questionable"],
            row["substituted"], row["annotated"])


def current_rows(rows: Iterable[dict]) -> Counter:
    """The values a change log (rows of pi_timeseries, as dicts) leaves: per key (tag, time,
    ordinal) its row of the latest batch, unless a Delete; as value_row tuples."""
    latest = {}
    for row in sorted(rows, key=lambda r: r["batch"]):
        latest[(row["name"], row["timestamp_ns"], row["ordinal"])] = row
    return Counter(value_row(r) for r in latest.values() if r["action"] != "Delete")


def landed_changes(rows: Iterable[dict]) -> Counter:
    """Rows of a change log as (action, value_row), a Delete as (action, key)."""
    return Counter((r["action"], (r["name"], r["timestamp_ns"], r["ordinal"]) if r["action"] == "Delete"
                    else value_row(r)) for r in rows)


def truth_changes(before: Iterable[tuple], after: Iterable[tuple]) -> Counter:
    """What changed from one set of truth_rows to another, as landed_changes counts it: a new
    key is an Add, a key whose value differs an Update, a key gone a Delete."""
    old, new = {r[:3]: r for r in before}, {r[:3]: r for r in after}
    found = Counter(("Add", row) if key not in old else ("Update", row)
                    for key, row in new.items() if old.get(key) != row)
    found.update(("Delete", key) for key in old.keys() - new.keys())
    return found


def truth_rows(truth: GroundTruth, points, start_ns: int, end_ns: int) -> list[tuple]:
    """(name, timestamp_ns, ordinal, value JSON, good, questionable, substituted, annotated) of
    every value of ``points`` in [start, end), as the server serves them now."""
    rows = []
    for point in points:
        seen = Counter()
        for value in truth.recorded(point.name, start_ns // 100, end_ns // 100 - 1):
            stamp = to_ns(value["Timestamp"])
            rows.append((point.name, stamp, seen[stamp], truth_json(value["Value"]), value["Good"],
                         value["Questionable"], value["Substituted"], value["Annotated"]))
            seen[stamp] += 1
    return rows


def event_row(row: dict) -> tuple:
    """A landed event: (name, action, timestamp_ns, value JSON, flags)."""
    return (row["name"], row["action"], row["timestamp_ns"], value_json(row), row["good"], row["questionable"],
            row["substituted"], row["annotated"])


def truth_events(truth: GroundTruth, points, since_ticks: int, now_ticks: int) -> Counter:
    """Every change of ``points`` in (since, now], as event_row makes them."""
    found = Counter()
    for point in points:
        for action, value in truth.changes(point.name, since_ticks, now_ticks):
            found[(point.name, action, to_ns(value["Timestamp"]), truth_json(value["Value"]), value["Good"],
                   value["Questionable"], value["Substituted"], value["Annotated"])] += 1
    return found


#: Markers by module (pyproject.toml describes them); every other test is a unit test.
_MARKS = {
    "tests/pipeline/test_pipeline_runs.py": ("e2e", "slow", "spark"),
    "tests/pipeline/test_derived_tables.py": ("e2e", "slow", "spark"),
    "tests/pipeline/test_real_conditions.py": ("e2e", "slow", "spark"),
    "tests/pipeline/test_realtime.py": ("e2e", "slow", "spark"),
    "tests/pipeline/test_backfill.py": ("e2e", "slow", "spark"),
    "tests/pipeline/test_cluster.py": ("e2e", "slow", "spark"),
    "tests/deploy/test_runtime_sparks.py": ("e2e", "slow", "spark"),
    "tests/deploy/test_wheel.py": ("e2e", "slow"),
    "tests/deploy/test_bundle_cli.py": ("e2e", "slow"),
    "tests/pipeline/test_quality.py": ("spark",),
    "tests/test_cli.py": ("e2e",),
    "tests/test_check.py": ("e2e",),
    "tests/test_query.py": ("e2e", "spark"),
    "tests/test_workspace.py": ("e2e",),
}


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        marks = _MARKS.get(item.path.relative_to(root).as_posix(), ("unit",))
        for mark in marks:
            item.add_marker(getattr(pytest.mark, mark))
