"""The first commands of a new user: ``init`` (a config to start from), ``check`` (the config and
the server, without Spark), ``--version``, and a run whose selection finds no tag. Each runs as
the console script does, against the simulator over HTTP on loopback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pi_lakeflow.config.settings import KEYS
from pi_lakeflow.local.config import load_config
from pi_simulator.plant import ASSET_DATABASE_NAME
from tests.simulators import make_server

pytestmark = pytest.mark.e2e

PASSWORD = "Check-4e1a-pw!"
ITEM_LIMIT = 50  # below what the read check asks for (pi.max_items_per_call), so it is learned


def cli(*args: str, password: str | None = PASSWORD, timeout: float = 300) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "PI_PASSWORD"}
    if password is not None:
        environment["PI_PASSWORD"] = password
    return subprocess.run([sys.executable, "-m", "pi_lakeflow.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=environment)


@pytest.fixture(scope="module")
def server():
    with make_server(auth=("basic",), users={"svc-lakeflow": PASSWORD},
                     max_returned_items_per_call=ITEM_LIMIT) as running:
        yield running


def config(folder: Path, url: str, **settings: str) -> Path:
    path = folder / "pi.yml"
    path.write_text(yaml.safe_dump({"state_dir": "./pi-state", "configuration": {
        "pi.url": url, "pi.auth": "basic", "pi.user": "svc-lakeflow", "pi.password": "env:PI_PASSWORD",
        "pi.af.database": ASSET_DATABASE_NAME, **settings}}))
    return path


def checks(result: subprocess.CompletedProcess) -> list[tuple[str, str, str]]:
    """(ok or FAIL, check, detail) per line of ``check``'s output."""
    return [tuple(re.match(r"^(ok|FAIL)\s+(\S+(?: \S+)?)\s{2,}(.*)$", line).groups())
            for line in result.stdout.splitlines()]


def test_version_names_the_installed_release():
    from importlib.metadata import version

    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"pi-lakeflow {version('pi-lakeflow')}"


def test_init_writes_a_config_with_every_setting_that_a_run_accepts(tmp_path):
    out = tmp_path / "pi.yml"
    result = cli("init", "--out", str(out), "--url", "https://pi.plant.example/piwebapi")
    assert result.returncode == 0 and f"pi-lakeflow check --config {out}" in result.stdout
    text = out.read_text()
    for key in KEYS:
        if key.name != "pi.state_path":  # a local run keeps it under state_dir
            assert re.search(rf"^  (# )?{re.escape(key.name)}: ", text, re.M), key.name
    loaded = load_config(out)  # every commented default and every set value parses
    assert loaded.settings.url == "https://pi.plant.example/piwebapi" and loaded.settings.auth == "basic"
    assert loaded.configuration["pi.password"] == "env:PI_PASSWORD"
    again = cli("init", "--out", str(out))
    assert again.returncode == 2 and "exists; give another --out" in again.stderr and out.read_text() == text
    bad = cli("init", "--out", str(tmp_path / "other.yml"), "--url", "pi.example")
    assert bad.returncode == 2 and bad.stderr.startswith("pi-lakeflow init: --url: pi.url:")


def test_check_passes_every_check_and_learns_the_item_limit(tmp_path, server):
    result = cli("check", "--config", str(config(tmp_path, server.url)))
    assert result.returncode == 0, result.stdout + result.stderr
    found = checks(result)
    assert [c[1] for c in found] == ["settings", "credential", "reach", "authentication", "data server", "clock",
                                     "tags", "AF database", "read"]
    assert all(c[0] == "ok" for c in found)
    detail = dict((c[1], c[2]) for c in found)
    points = server.api.plant.points
    assert detail["tags"].startswith(f"{len(points):,} selected by pi.tags.name_filter *: {points[0].name}, ")
    assert "agrees within a minute" not in detail["clock"]  # the simulator's clock is years behind
    assert f"the server allows {ITEM_LIMIT} items per call" in detail["read"]
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize("case, settings, password, status, failed, says", [
    ("unset secret", {}, None, 2, "credential", "environment variable PI_PASSWORD, which is not set"),
    ("wrong password", {}, "wrong", 1, "authentication", "refused the credentials of user 'svc-lakeflow'"),
    ("no tag", {"pi.tags.name_filter": "*.PV"}, PASSWORD, 2, "tags", "select no tag (pi.tags.name_filter *.PV)"),
    ("missing name", {"pi.tags.names": "NOT.A.TAG"}, PASSWORD, 2, "tags", "no tag named NOT.A.TAG"),
    ("no AF database", {"pi.af.database": "Nowhere"}, PASSWORD, 1, "AF database", "No AF database named 'Nowhere'"),
])
def test_check_stops_at_the_first_failure_with_its_status(tmp_path, server, case, settings, password, status,
                                                          failed, says):
    result = cli("check", "--config", str(config(tmp_path, server.url, **settings)), password=password)
    assert result.returncode == status, result.stdout + result.stderr
    last = checks(result)[-1]
    assert last[:2] == ("FAIL", failed) and says in last[2], last
    assert all(c[0] == "ok" for c in checks(result)[:-1]) and "Traceback" not in result.stderr


@pytest.mark.parametrize("top, settings, says", [
    ({"master": "local[4]"}, {}, "master must be a Spark cluster's master URL (spark://HOST:PORT, yarn or "
                                 "k8s://https://HOST:PORT), not 'local[4]'; leave it out for a local run on cores"),
    ({}, {"pi.step": "30s"}, "pi.step: '30s' must be at least 1m (or none: a back-fill in one batch)"),
])
def test_a_wrong_master_or_step_is_one_line_and_exit_2(tmp_path, top, settings, says):
    path = config(tmp_path, "http://127.0.0.1:9/piwebapi", **settings)
    path.write_text(path.read_text() + "".join(f"{key}: {value}\n" for key, value in top.items()))
    for command in ("check", "run"):
        result = cli(command, "--config", str(path))
        assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
        assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr


def test_check_names_a_server_it_cannot_reach(tmp_path):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = cli("check", "--config", str(config(tmp_path, f"http://127.0.0.1:{port}/piwebapi")))
    assert result.returncode == 1
    assert checks(result)[-1][:2] == ("FAIL", "reach") and "Cannot reach PI Web API" in checks(result)[-1][2]


def test_a_run_whose_selection_finds_no_tag_is_bad_input(tmp_path, server):
    path = config(tmp_path, server.url, **{"pi.tags.name_filter": "*.PV"})
    result = cli("run", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"pi-lakeflow run: {path}: the settings select no tag on the server")
    assert "--allow-no-tags" in result.stderr and not (tmp_path / "pi-state" / "warehouse").exists()
    streams = tmp_path / "stream"
    streams.mkdir()
    refused = cli("stream", "--config", str(config(streams, server.url, **{"pi.tags.name_filter": "*.PV",
                                                                            "pi.tables": "updates"})))
    assert refused.returncode == 2 and "the settings select no tag" in refused.stderr, refused.stderr
    assert "--allow-no-tags" in refused.stderr and len(refused.stderr.splitlines()) == 1
    allowed = cli("run", "--config", str(path), "--allow-no-tags", "--quiet")  # asked for: it runs, lands nothing
    assert allowed.returncode == 0, allowed.stdout[-3000:] + allowed.stderr[-3000:]
    assert re.search(r"run completed in [\d.]+ s: 0 values landed; 0 tags complete, 0 failed$", allowed.stdout)
