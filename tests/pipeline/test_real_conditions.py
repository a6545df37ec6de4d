"""``pi-lakeflow run`` and ``pi-lakeflow stream`` as a site runs them: credentials of every scheme
the simulator offers, a server item limit below the client's default, several pipelines on one
machine at once, and a server that fails.

Each command is a subprocess, as a user starts it. The oracle is the simulator's ground truth.
Kerberos: no KDC exists here, so only the GSSAPI context is replaced, in every Python process of
the run (tests/fixtures/fake_gssapi/sitecustomize.py); the Negotiate challenge, requests-kerberos
and the retried requests are real.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pi_lakeflow.runtime.realtime import MarkerStore
from pi_lakeflow.state.store import StateStore
from pi_simulator import GroundTruth, PlantConfig
from pi_simulator.plant import ASSET_DATABASE_NAME
from tests.oracle import event_row, truth_events, truth_rows, value_row
from tests.pipeline.harness import (NOW_NS, OIDC_SECRET, PASSWORD, START_NS, finish, last_poll, start,
                                    table_rows, wait_for_poll, write_config)
from tests.simulators import NOW, make_server

# Several local Spark runs share the 2 cores: minutes, not seconds.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark, pytest.mark.timeout(1500)]

MINUTE_TICKS = 600_000_000
#: More than 100 tags (a streamsets sub-request's 100) in a run, and AF to read.
PLANT = PlantConfig(tags=180, elements=220, event_frames=20, origin_ticks=NOW)
ITEM_LIMIT = 1_000

CREDENTIALS = {
    "basic": {"pi.auth": "basic", "pi.user": "svc-lakeflow", "pi.password": "env:PI_PASSWORD"},
    "oidc": {"pi.auth": "oidc", "pi.oidc.client_id": "lakeflow-ci", "pi.oidc.secret": "env:PI_OIDC_SECRET"},
    "kerberos": {"pi.auth": "kerberos"},
}


def descendants(pids: list[int]) -> set[int]:
    """The processes started by ``pids``, and they."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = set(), list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def listening(pids: set[int]) -> set[str]:
    """The addresses the processes listen on (TCP, from /proc)."""
    inodes: dict[str, str] = {}
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes[fields[9]] = fields[1]
    found = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    found.add(inodes[target[8:-1]])
        except OSError:
            continue
    return found


def loopback(address: str) -> bool:
    """Whether a /proc/net address (hex IP:port) is on the loopback interface."""
    ip = address.split(":")[0]
    if len(ip) == 8:  # IPv4, little-endian bytes
        return ip.endswith("7F")
    return ip in ("00000000000000000000000001000000", "0000000000000000FFFF00000100007F")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Three runs (basic, OIDC, Kerberos) and a stream (basic) at once on one machine, then two
    more streams (OIDC, Kerberos); a fourth run on the first run's state_dir while it works."""
    folder = tmp_path_factory.mktemp("site")
    with make_server(PLANT, auth=("basic", "bearer", "kerberos"), users={"svc-lakeflow": PASSWORD},
                     oidc_clients={"lakeflow-ci": OIDC_SECRET}, max_returned_items_per_call=ITEM_LIMIT,
                     denied_elements=("P-00001",)) as server:
        api = server.api
        truth = GroundTruth(api)
        configs = {
            # The README's pi.yml: Basic from env:, a name filter, AF.
            "basic": write_config(folder / "basic", server.url, **CREDENTIALS["basic"],
                                  **{"pi.tags.name_filter": "*.P-*", "pi.af.database": ASSET_DATABASE_NAME}),
            "oidc": write_config(folder / "oidc", server.url, **CREDENTIALS["oidc"]),
            "kerberos": write_config(folder / "kerberos", server.url, **CREDENTIALS["kerberos"]),
        }
        streams = {scheme: write_config(folder / f"stream-{scheme}", server.url, **CREDENTIALS[scheme],
                                        **{"pi.tables": "updates", "pi.tags.name_filter": "*.K-*"})
                   for scheme in CREDENTIALS}
        processes = {"stream-basic": start("stream", streams["basic"])}
        wait_for_poll(MarkerStore(streams["basic"].parent / "pi-state" / "source"), 1, processes["stream-basic"])
        for scheme, config in configs.items():
            processes[scheme] = start("run", config, scheme == "kerberos")
        addresses: set[str] = set()
        lock = folder / "basic" / "pi-state" / ".pi-lakeflow.lock"
        while "pi-lakeflow run" not in (lock.read_text() if lock.exists() else ""):
            assert processes["basic"].poll() is None, finish(processes["basic"])
            time.sleep(0.2)
        second = start("run", configs["basic"], False, "--full-refresh")  # the same state_dir, at once
        second_out = finish(second, 120)
        while any(processes[s].poll() is None for s in configs):
            addresses |= listening(descendants([p.pid for p in processes.values()]))
            time.sleep(2)
        outputs = {scheme: finish(processes[scheme]) for scheme in configs}
        truths = {scheme: set(truth_rows(truth, [p for p in api.plant.points
                                                 if scheme != "basic" or ".P-" in p.name],
                                         START_NS, NOW_NS)) for scheme in configs}
        refused_by_runs = server.counters()["refused:maxCount"]
        for scheme in ("oidc", "kerberos"):
            processes[f"stream-{scheme}"] = start("stream", streams[scheme], scheme == "kerberos")
        for scheme in CREDENTIALS:
            wait_for_poll(MarkerStore(streams[scheme].parent / "pi-state" / "source"), 1,
                          processes[f"stream-{scheme}"])
            addresses |= listening(descendants([processes[f"stream-{scheme}"].pid]))
        polled = {scheme: last_poll(MarkerStore(streams[scheme].parent / "pi-state" / "source"))
                  for scheme in CREDENTIALS}
        api.clock.advance(10 * MINUTE_TICKS)
        for scheme in CREDENTIALS:
            process = processes[f"stream-{scheme}"]
            wait_for_poll(MarkerStore(streams[scheme].parent / "pi-state" / "source"), polled[scheme] + 2, process)
            process.send_signal(signal.SIGINT)
            outputs[f"stream-{scheme}"] = finish(process, 120)
        stream_points = [p for p in api.plant.points if ".K-" in p.name]
        changes = truth_events(truth, stream_points, NOW, NOW + 10 * MINUTE_TICKS)
        yield {"folder": folder, "configs": configs, "streams": streams, "processes": processes,
               "outputs": outputs, "truths": truths, "changes": changes, "addresses": addresses,
               "second": (second.returncode, second_out), "refused": refused_by_runs, "api": api}


@pytest.mark.parametrize("scheme", list(CREDENTIALS))
def test_runs_with_every_scheme_land_exactly_the_ground_truth(site, scheme, spark):
    process, out = site["processes"][scheme], site["outputs"][scheme]
    # The basic run reads AF, where one element's attributes are denied: completed, with failures.
    assert process.returncode == (3 if scheme == "basic" else 0), out[-3000:]
    assert "Traceback" not in out
    rows = table_rows(spark, site["configs"][scheme].parent / "pi-state", "pi_timeseries")
    landed = Counter(value_row(r) for r in rows)
    assert not [r for r, n in landed.items() if n > 1], "a value landed twice"
    assert set(landed) == site["truths"][scheme] and len(landed) > 5_000
    summary = [line for line in out.splitlines() if "run completed in" in line]
    assert len(summary) == 1 and re.search(rf"{len(landed):,} values landed; \d+ tags complete, 0 failed", summary[0])


@pytest.mark.parametrize("scheme", list(CREDENTIALS))
def test_streams_with_every_scheme_land_every_change_once(site, scheme, spark):
    process, out = site["processes"][f"stream-{scheme}"], site["outputs"][f"stream-{scheme}"]
    assert process.returncode == 0 and "Traceback" not in out, out[-3000:]
    rows = table_rows(spark, site["streams"][scheme].parent / "pi-state", "pi_timeseries_updates")
    assert Counter(event_row(r) for r in rows) == site["changes"] and site["changes"]


def test_no_secret_in_output_state_tables_or_process_lists(site):
    texts = list(site["outputs"].values()) + [site["second"][1]]
    files = [f for f in site["folder"].rglob("*") if f.is_file()]
    assert len(files) > 100
    for secret in (PASSWORD, OIDC_SECRET):
        assert not [t for t in texts if secret in t]
        assert not [f for f in files if secret.encode() in f.read_bytes()], secret
    # While a run lasts its command lines carry references (env:NAME), never values: checked on
    # this test's own processes after the fact through what they printed, and here on a live one.
    probe = start("run", site["configs"]["oidc"])
    try:
        time.sleep(3)
        for pid in descendants([probe.pid]):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert PASSWORD.encode() not in command and OIDC_SECRET.encode() not in command
    finally:
        os.killpg(probe.pid, signal.SIGKILL)
        probe.wait()


def test_nothing_listens_beyond_loopback(site):
    assert site["addresses"], "no listening socket was seen"
    assert all(loopback(a) for a in site["addresses"]), site["addresses"]


def test_the_same_state_dir_twice_is_refused_in_one_line_and_changes_nothing(site):
    status, out = site["second"]
    lines = [line for line in out.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1, out
    assert "is in use by pi-lakeflow run (pid" in lines[0] and "state_dir of its own" in lines[0]
    # The refused run had --full-refresh: had it gone on, the first run's tables would be gone
    # or incomplete, and test_runs_with_every_scheme... would fail.


def test_the_item_limit_is_learned_once_per_process_and_kept(site):
    # Each run's preflight learns it from one refused page and keeps it in pi.state_path; its
    # Spark tasks and catalog reads start from it.
    assert 1 <= site["refused"] <= 2 * len(site["configs"])
    for config in site["configs"].values():
        assert '"max_items_per_call": 1000' in (config.parent / "pi-state" / "source" / "server-limits.json").read_text()


def test_a_denied_af_element_is_reported_with_the_servers_message(site, spark):
    out = site["outputs"]["basic"]
    assert re.search(r"failed: pi_af_attributes \S+: HTTP 403: Access to the attributes of '[^']*P-00001' is "
                     r"denied by AF security", out), out[-3000:]
    assert "1 catalog item failed" in out
    log = table_rows(spark, site["configs"]["basic"].parent / "pi-state", "pi_catalog_log")
    assert [(r["table"], "denied by AF security" in r["error"]) for r in log] == [("pi_af_attributes", True)]


def test_a_query_spark_refuses_is_one_line_and_exit_2(site):
    for sql, expected in (("SELEC name FROM pi_timeseries", "PARSE_SYNTAX_ERROR"),
                          ("SELECT * FROM no_such_table", "TABLE_OR_VIEW_NOT_FOUND")):
        result = subprocess.run([sys.executable, "-m", "pi_lakeflow.cli", "query", "--config",
                                 str(site["configs"]["oidc"]), sql], capture_output=True, text=True, timeout=300)
        # Before it, only the JVM's and Spark's own start-up lines (its log level notice).
        ours = [line for line in result.stderr.splitlines() if line.startswith("pi-lakeflow")]
        assert result.returncode == 2 and len(ours) == 1 and expected in ours[0], result.stderr
        assert result.stderr.rstrip().endswith(ours[0]) and "Traceback" not in result.stderr


# ---- a server that fails -------------------------------------------------------------------

FAULTS = ("500", "502", "503", "504", "reset", "stall", "truncate")


def run_under_faults(api, config: Path) -> tuple[int, str]:
    """One ``pi-lakeflow run`` with every fault kind at 30% once it is past its preflight (the
    check before Spark starts tries 3 times on purpose, to name a silent server within seconds)."""
    api.server_config = dataclasses.replace(api.server_config, fault_rate=0.0)
    spec = config.parent / "pi-state" / "pipeline" / "spark-pipeline.yml"
    spec.unlink(missing_ok=True)  # run_pipeline writes it after the preflight
    process = start("run", config)
    while not spec.exists() and process.poll() is None:
        time.sleep(0.05)
    api.server_config = dataclasses.replace(api.server_config, fault_rate=0.3, faults=FAULTS)
    out = finish(process)
    assert "Traceback" not in out, out[-3000:]
    return process.returncode, out


def test_under_every_fault_at_thirty_percent_a_run_lands_what_succeeded_and_the_next_completes(tmp_path, spark):
    """Each request is retried (6 tries), so at 30% nearly every tag lands in the first run; the
    tag the server fails for good is reported with its message, and so would be any other whose
    request failed every try. Later runs read what failed; the table ends exactly the truth."""
    plant = PlantConfig(tags=60, elements=80, event_frames=10, origin_ticks=NOW)
    with make_server(plant) as server:
        api = server.api
        truth = GroundTruth(api)
        failing = api.plant.points[5]
        api.server_config = dataclasses.replace(api.server_config, failing_tags=(failing.name,))
        config = write_config(tmp_path, server.url, **{"pi.read_timeout": "2s", "pi.partition_size": "20"})
        status, out = run_under_faults(api, config)
        assert status == 3 and re.search(rf"failed: {re.escape(failing.name)}: HTTP 500", out), out[-3000:]
        state = tmp_path / "pi-state"
        failed = {r["web_id"] for r in StateStore(state / "source").tag_state(1).to_pylist() if r["last_error"]}
        complete = re.search(r"run completed in .*: [\d,]+ values landed; (\d+) tags complete, (\d+) failed", out)
        assert complete and (int(complete[1]), int(complete[2])) == (60 - len(failed), len(failed)), out[-3000:]
        landed = Counter(value_row(r) for r in table_rows(spark, state, "pi_timeseries"))
        assert landed == Counter(truth_rows(truth, [p for p in api.plant.points if p.web_id not in failed],
                                            START_NS, NOW_NS))
        api.server_config = dataclasses.replace(api.server_config, failing_tags=())
        for _ in range(3):  # the tag healed; a tag whose request failed every try again is read again
            status, out = run_under_faults(api, config)
            if status == 0:
                break
            assert status == 3, out[-3000:]
        assert status == 0, out[-3000:]
        assert Counter(value_row(r) for r in table_rows(spark, state, "pi_timeseries")) == \
            Counter(truth_rows(truth, api.plant.points, START_NS, NOW_NS))
