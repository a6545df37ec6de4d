"""The wheel the bundle deploys: what pip installs from it on a Databricks cluster or serverless
environment. Databricks brings its own PySpark (Databricks Connect on serverless), so the wheel
must not ask for one, nor pin anything an environment ships; the simulator stays out of it."""

from __future__ import annotations

import zipfile

import pytest

from tests.deploy.tools import build_wheel, requirements


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_carries_the_client_the_sources_and_the_definitions_but_not_the_simulator(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("pi_client/timeseries.py", "pi_lakeflow/sources.py", "pi_lakeflow/pipelines/bronze.py",
                   "pi_lakeflow/pipelines/silver.py", "pi_lakeflow/log4j2.properties",
                   "pi_lakeflow/dashboards/pi_quality.lvdash.json"):
        assert module in names
    assert not [n for n in names if n.startswith("pi_simulator/")]


def test_what_pip_installs_from_the_wheel_has_no_pyspark_and_no_exact_pin(wheel):
    found = requirements(wheel)
    installed = [r for r in found if "extra ==" not in r]
    names = {r.split(">")[0].split("<")[0].split("=")[0].split("[")[0].split(";")[0].strip().lower() for r in installed}
    assert names == {"pyarrow", "numpy", "pandas", "requests", "msgspec", "websockets"}
    assert all(">=" in r for r in installed), installed  # lower bounds: an environment's versions stay
    assert not [r for r in found if "==" in r.split(";")[0] or "~=" in r.split(";")[0]], "an exact pin"
    # PySpark, the simulator and the local tools only with the local extra
    local = [r for r in found if r.replace('"', "'").endswith("extra == 'local'")]
    assert any(r.startswith("pyspark") for r in local) and any(r.startswith("pi-lakeflow-simulator") for r in local)
