"""The wheel the bundle deploys: what pip installs from it on a Databricks cluster or serverless
environment. Databricks brings its own PySpark (Databricks Connect on serverless), so the wheel
must not ask for one, nor pin anything an environment ships; the simulator stays out of it."""

from __future__ import annotations

import zipfile

import pytest

from tests.deploy.tools import build_wheel, installed_by_default, requirements

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_carries_the_client_the_sources_and_the_definitions_but_not_the_simulator(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("pi_client/timeseries.py", "pi_lakeflow/spark/sources.py", "pi_lakeflow/tables/registry.py",
                   "pi_lakeflow/runtime/derived.py", "pi_lakeflow/pipelines/bronze.py",
                   "pi_lakeflow/pipelines/silver.py", "pi_lakeflow/local/log4j2.properties",
                   "pi_lakeflow/dashboards/pi_quality.lvdash.json"):
        assert module in names
    assert not [n for n in names if n.startswith("pi_simulator/")]


def test_what_pip_installs_from_the_wheel_has_no_pyspark_and_no_exact_pin(wheel):
    installed = installed_by_default(wheel)
    assert {r.name for r in installed} == {"pyarrow", "numpy", "pandas", "requests", "msgspec", "websockets"}
    # lower bounds: an environment's versions stay
    assert all(">=" in {s.operator for s in r.specifier} for r in installed), installed
    assert not [r for r in requirements(wheel) if {s.operator for s in r.specifier} & {"==", "===", "~="}], "a pin"
    # PySpark, the simulator and the local tools only with the local extra
    local = {r.name for r in requirements(wheel) if r.marker is not None and r.marker.evaluate({"extra": "local"})
             and not r.marker.evaluate({"extra": ""})}
    assert {"pyspark", "pi-lakeflow-simulator"} <= local
