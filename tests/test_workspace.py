"""``pi-lakeflow workspace`` against a loopback HTTP server that answers like the Databricks REST
API. No workspace is reachable here: the responses are written in the documented shapes of the
Secrets, Pipelines and Statement Execution APIs (tests/fixtures/databricks/), not recorded from
a workspace. What this proves: the requests databricks-sdk sends for these commands, and what
the commands make of the answers; not that a real workspace answers the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pi_lakeflow import cli
from tests.workspace_stub import JsonHandler, serving

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent / "fixtures" / "databricks"
PIPELINE_ID = "4b1d7a52-0e8a-4c65-9d3c-2f6f0a1e9b11"


class FakeWorkspace(JsonHandler):
    requests: list[tuple[str, str, dict]] = []
    scopes: list[str] = []

    def do_GET(self) -> None:
        self.requests.append(("GET", self.path, {}))
        path = self.path.split("?")[0]
        if path == "/api/2.0/secrets/scopes/list":
            return self._reply(200, {"scopes": [{"name": s, "backend_type": "DATABRICKS"} for s in self.scopes]})
        if path == "/api/2.0/pipelines":
            return self._reply(200, json.loads((FIXTURES / "pipelines_list.json").read_text()))
        if path == f"/api/2.0/pipelines/{PIPELINE_ID}":
            return self._reply(200, json.loads((FIXTURES / "pipeline_get.json").read_text()))
        return self._not_found(path)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.requests.append(("POST", self.path, body))
        if self.path == "/api/2.0/secrets/scopes/create":
            self.scopes.append(body["scope"])
            return self._reply(200, {})
        if self.path == "/api/2.0/secrets/put":
            return self._reply(200, {})
        if self.path.rstrip("/") == "/api/2.0/sql/statements":
            return self._reply(200, json.loads((FIXTURES / "statement_expectations.json").read_text()))
        return self._not_found(self.path)


@pytest.fixture
def workspace(monkeypatch):
    FakeWorkspace.requests, FakeWorkspace.scopes = [], []
    with serving(FakeWorkspace) as url:
        monkeypatch.setenv("DATABRICKS_HOST", url)
        monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-test-token")
        monkeypatch.delenv("DATABRICKS_CONFIG_PROFILE", raising=False)
        yield FakeWorkspace


def test_secrets_creates_the_scope_and_stores_the_password_without_showing_it(workspace, monkeypatch, capsys):
    monkeypatch.setenv("PI_PASSWORD", "s3cret-pi-password")
    assert cli.main(["workspace", "secrets", "--scope", "pi-lakeflow"]) == 0
    out = capsys.readouterr()
    assert "created secret scope pi-lakeflow" in out.out and "stored pi-password" in out.out
    assert "s3cret" not in out.out + out.err
    puts = [body for method, path, body in workspace.requests if path == "/api/2.0/secrets/put"]
    assert puts == [{"scope": "pi-lakeflow", "key": "pi-password", "string_value": "s3cret-pi-password"}]

    assert cli.main(["workspace", "secrets", "--scope", "pi-lakeflow"]) == 0  # the scope exists now
    creates = [p for _, p, _ in workspace.requests if p == "/api/2.0/secrets/scopes/create"]
    assert len(creates) == 1


def test_secrets_are_never_taken_from_arguments():
    with pytest.raises(SystemExit):
        cli.main(["workspace", "secrets", "--password", "x"])


def test_status_prints_the_latest_update_and_the_expectation_counts(workspace, capsys):
    assert cli.main(["workspace", "status", "--warehouse", "abc123"]) == 0
    out = capsys.readouterr().out
    assert f"pipeline pi_lakeflow_timeseries ({PIPELINE_ID}): IDLE" in out
    assert "latest update 7f3e: COMPLETED" in out
    assert "pi_timeseries_silver" in out and "good_quality" in out and "passed      990,000" in out
    (statement,) = [body for _, path, body in workspace.requests if path.rstrip("/") == "/api/2.0/sql/statements"]
    # the event log table the bundle's event_log setting publishes (readable without owning the pipeline)
    assert "FROM `main`.`pi_lakeflow`.`pi_lakeflow_timeseries_event_log`" in statement["statement"]
    assert statement["warehouse_id"] == "abc123"
    assert statement["parameters"] == [{"name": "update_id", "value": "7f3e"}]


def test_status_of_a_pipeline_that_is_not_deployed_says_so(workspace, capsys):
    assert cli.main(["workspace", "status", "--pipeline", "nope"]) == 1
    assert "no pipeline named nope" in capsys.readouterr().err
