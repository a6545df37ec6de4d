"""The bundle as the Databricks CLI renders it, for dev and prod side by side.

The CLI (tools.databricks_cli: built from its Go module, 0.298.0) runs ``bundle validate -o
json`` and ``bundle summary -o json`` for each target, with the Python resources and mutators
(resources/*.py) loaded by the CLI itself from .venv. They ask the workspace who the user is,
whether the bundle's folders exist and what an earlier deployment left (nothing here); a stub
workspace on loopback answers those calls (StubWorkspace), the boundary that cannot exist here. ``${resources.<kind>.<key>.name}`` references are resolved
at deploy time, so the test resolves them from the rendered resources as deploy would.

What it shows: variables resolved, development mode's documented prefixes applied (``[dev
<user>]`` names, ``dev_<user>_`` schemas), no path of dev inside prod's schemas or volumes, and
the mutators matching in both modes. What only a workspace can show is in DEPLOY.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.deploy.tools import ROOT, databricks_cli
from tests.workspace_stub import JsonHandler, serving

# The first run on a machine builds the CLI from its Go module (about 3 minutes on 2 cores).
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2400)]

USER = "ada.lovelace@example.com"
REFERENCE = re.compile(r"\$\{resources\.(\w+)\.(\w+)\.name\}")


class StubWorkspace(JsonHandler):
    """What validate and summary ask: the current user, a folder's status (the deployment state
    files do not exist: a first deployment) and, in production mode, its permissions, mkdirs."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/api/2.0/preview/scim/v2/Me":
            return self._reply(200, {"id": "1", "userName": USER, "displayName": "Ada", "groups": []})
        if path == "/api/2.0/workspace/get-status" and "%2Fstate%2F" in self.path:
            return self._reply(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not deployed yet"})
        if path == "/api/2.0/workspace/get-status":
            return self._reply(200, {"object_type": "DIRECTORY", "path": "/", "object_id": 1})
        if path == "/api/2.0/permissions/directories/1":  # production mode checks the root folder's ACL
            return self._reply(200, {"object_id": "/directories/1", "object_type": "directory", "access_control_list": [
                {"user_name": USER, "all_permissions": [{"permission_level": "CAN_MANAGE", "inherited": False}]}]})
        return self._not_found(path)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/api/2.0/workspace/mkdirs":
            return self._reply(200, {})
        return self._not_found(self.path)


VARIABLES = ["--var", "pi_url=https://pi.example.com/piwebapi", "--var", "warehouse_id=abc123", "--var", "shards=2",
             "--var", "realtime=true"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, dict]:
    """Per target: validate's rendering (references resolved as deploy does), and summary's."""
    cli = databricks_cli()
    if cli is None:
        pytest.skip("no Go toolchain to build the Databricks CLI from its module")
    home = tmp_path_factory.mktemp("home")
    out = {}
    with serving(StubWorkspace) as url:
        environment = {**os.environ, "DATABRICKS_HOST": url, "DATABRICKS_TOKEN": "dapi-stub",
                       "DATABRICKS_CONFIG_FILE": str(home / ".databrickscfg"), "HOME": str(home),
                       "DATABRICKS_CACHE_DIR": str(home / "cache")}
        environment.pop("DATABRICKS_CONFIG_PROFILE", None)
        for target in ("dev", "prod"):
            for command in ("validate", "summary"):
                done = subprocess.run([str(cli), "bundle", command, "-t", target, "-o", "json", *VARIABLES],
                                      cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
                assert done.returncode == 0, done.stderr[-3000:]
                said = [line for line in done.stderr.splitlines() if line.strip()
                        and not line.startswith("Warn: [hostmetadata]")]  # the stub has no host metadata
                assert not said, "\n".join(said)  # no error, warning or recommendation
                out[target if command == "validate" else f"{target} summary"] = json.loads(done.stdout)
            out[target] = resolve(out[target])
    return out


def resolve(bundle: dict) -> dict:
    """``${resources.<kind>.<key>.name}`` replaced by that resource's rendered name, as deploy does."""
    resources = bundle["resources"]

    def walk(value):
        if isinstance(value, str):
            return REFERENCE.sub(lambda m: resources[m.group(1)][m.group(2)]["name"], value)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(bundle)


def places(bundle: dict) -> set[str]:
    """Every schema (catalog.schema) and volume path the target's resources read or write."""
    resources = bundle["resources"]
    found = {f"{s['catalog_name']}.{s['name']}" for s in resources["schemas"].values()}
    found |= {f"/Volumes/{v['catalog_name']}/{v['schema_name']}/{v['name']}" for v in resources["volumes"].values()}
    for pipeline in resources["pipelines"].values():
        configuration = pipeline["configuration"]
        found |= {f"{pipeline['catalog']}.{pipeline['schema']}", configuration["pi.state_path"],
                  f"{pipeline['event_log']['catalog']}.{pipeline['event_log']['schema']}"}
        found |= {configuration["pi.catalog_schema"]} - {""}
    for dashboard in resources["dashboards"].values():
        found.add(f"{dashboard['dataset_catalog']}.{dashboard['dataset_schema']}")
    return found


def test_summary_lists_every_resource_validate_renders_as_new(rendered):
    for target in ("dev", "prod"):
        summary = rendered[f"{target} summary"]["resources"]
        for kind, items in rendered[target]["resources"].items():
            assert sorted(summary[kind]) == sorted(items), (target, kind)
            assert {item.get("modified_status") for item in summary[kind].values()} == {"created"}, (target, kind)


def test_no_reference_is_left_but_the_ids_deploy_assigns(rendered):
    for target in ("dev", "prod"):
        bundle = rendered[target]
        left = set(re.findall(r"\$\{[^}]+\}", json.dumps(bundle["resources"])))
        pipelines = bundle["resources"]["pipelines"]
        assert left == {f"${{resources.pipelines.{key}.id}}" for key in pipelines}, target  # each job's pipeline


def test_dev_applies_the_development_prefixes_and_prod_does_not(rendered):
    dev, prod = rendered["dev"]["resources"], rendered["prod"]["resources"]
    assert dev["schemas"]["pi_lakeflow"]["name"] == "dev_ada_lovelace_pi_lakeflow"
    assert prod["schemas"]["pi_lakeflow"]["name"] == "pi_lakeflow"
    assert all(p["name"].startswith("[dev ada_lovelace] ") and p["development"] for p in dev["pipelines"].values())
    assert not [p for p in prod["pipelines"].values() if p["name"].startswith("[dev") or p.get("development")]
    assert rendered["dev"]["workspace"]["root_path"].startswith(f"/Workspace/Users/{USER}/")
    assert rendered["prod"]["workspace"]["root_path"] == f"/Workspace/Users/{USER}/.bundle/pi_lakeflow/prod"


def test_no_dev_path_points_into_prod(rendered):
    dev, prod = places(rendered["dev"]), places(rendered["prod"])
    assert len(dev) == len(prod) and not dev & prod, sorted(dev & prod)
    for pipeline in rendered["dev"]["resources"]["pipelines"].values():
        state = pipeline["configuration"]["pi.state_path"]
        assert state.startswith(f"/Volumes/main/{pipeline['schema']}/"), state  # its own schema's volume


def test_every_pipeline_publishes_its_own_event_log_table(rendered):
    for target in ("dev", "prod"):
        bundle = rendered[target]
        logs = [f"{p['event_log']['schema']}.{p['event_log']['name']}" for p in bundle["resources"]["pipelines"].values()]
        assert len(set(logs)) == len(logs) == 4, (target, logs)


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_the_mutators_match_in_both_modes(rendered, target):
    resources = rendered[target]["resources"]
    shards = {p["configuration"]["pi.shard"] for p in resources["pipelines"].values()
              if p["configuration"]["pi.tables"] == "timeseries"}
    assert shards == {"0/2", "1/2"}  # first_shard moved the YAML pipeline to shard 0 of 2
    tasks = [t["task_key"] for t in resources["jobs"]["pi_lakeflow_timeseries_refresh"]["tasks"]]
    assert tasks == ["refresh_timeseries", "refresh_timeseries_shard1"]  # refresh_every_shard
    shard = resources["pipelines"]["pi_lakeflow_timeseries_shard1"]
    assert shard["configuration"]["pi.catalog_schema"] == f"main.{resources['schemas']['pi_lakeflow']['name']}"


def test_the_wheel_gets_a_new_version_on_every_deploy(rendered):
    for bundle in (rendered["dev"], rendered["prod"]):
        assert bundle["artifacts"]["pi_lakeflow_wheel"]["dynamic_version"] is True
