"""Fixtures only: simulators on loopback with a frozen clock, a Spark session per module, HTTP
sessions, TLS files. Helpers are plain modules: tests/simulators.py, tests/oracle.py,
tests/pipeline/harness.py, tests/client/reads.py.

Beside the fixtures, two hooks: each test module declares its own markers (``pytestmark``): one
of ``unit``, ``spark`` or ``e2e`` at least (pyproject.toml describes them), and a test without one
fails at collection; the end of a run prints each module's time against its budget
(tests/budget.py)."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from pi_simulator import GroundTruth
from tests import budget
from tests.simulators import make_server


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


#: The markers that say what a test needs (pyproject.toml); every test has one at least.
KINDS = ("unit", "spark", "e2e")


def pytest_collection_modifyitems(config, items):
    unmarked = sorted({item.nodeid.split("::")[0] for item in items
                       if not any(item.get_closest_marker(kind) for kind in KINDS)})
    if unmarked:
        raise pytest.UsageError(f"test modules without a unit, spark or e2e marker (pytestmark): {', '.join(unmarked)}")


#: Seconds each module took in this run (setup, call and teardown of its tests).
_SPENT: Counter = Counter()


def pytest_runtest_logreport(report):
    _SPENT[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    """Each module's time against its budget (tests/budget.py)."""
    if _SPENT:
        terminalreporter.section("time per module, against its budget (tests/budget.py)")
        for line in budget.lines(_SPENT):
            terminalreporter.write_line(line)
