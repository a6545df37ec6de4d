"""The pi-lakeflow command: simulate and demo, as a user runs them."""

from __future__ import annotations

import pytest

import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

pytestmark = pytest.mark.e2e


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pi_lakeflow.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_simulate_serves_until_stopped_with_a_password_from_the_environment():
    """``--user NAME:env:VAR``: the password comes from the environment, not the process list."""
    password = "Sim-8c2f-pw"
    process = subprocess.Popen([sys.executable, "-m", "pi_lakeflow.cli", "simulate", "--port", "0", "--tags", "50",
                                "--elements", "60", "--event-frames", "10", "--clock", "2024-05-02T00:00:00Z",
                                "--auth", "basic", "--user", "svc-lakeflow:env:SIMULATOR_PASSWORD"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "SIMULATOR_PASSWORD": password})
    try:
        banner = process.stdout.readline()
        assert banner.startswith("PI Web API simulator serving http://127.0.0.1:")
        url = banner.split()[-1]
        assert password.encode() not in Path(f"/proc/{process.pid}/cmdline").read_bytes()
        deadline = time.monotonic() + 10
        while True:
            try:
                servers = requests.get(f"{url}/dataservers", auth=("svc-lakeflow", password))
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert requests.get(f"{url}/dataservers", auth=("svc-lakeflow", "wrong")).status_code == 401
        points = servers.json()["Items"][0]["Links"]["Points"]
        assert len(requests.get(points, auth=("svc-lakeflow", password)).json()["Items"]) == 50
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_bad_options_say_what_is_wrong_and_exit_non_zero():
    for args, expected in [
        (["--tags", "many"], "'many' is not a whole number"),
        (["--auth", "kerberos"], "accepted: anonymous, basic, bearer"),
        (["--faults", "explode"], "is not a list of 500, 502"),
        (["--clock", "yesterday-ish"], "Cannot parse time"),
        (["--fault-rate", "2"], "must be between 0 and 1"),
        (["--user", "nocolon"], "expected NAME:PASSWORD"),
        (["--user", "svc:env:PI_LAKEFLOW_UNSET_VARIABLE"], "svc's secret is env:PI_LAKEFLOW_UNSET_VARIABLE, and "
                                                            "PI_LAKEFLOW_UNSET_VARIABLE is not set"),
        (["--sampling", "fast"], "--sampling"),
    ]:
        result = _run("simulate", "--port", "0", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_command_whose_local_extra_is_missing_says_how_to_install_it():
    """The deployable wheel leaves the simulator, Spark, the report and the workspace tools to the
    local extra: the console script still starts and names what to install."""
    hide = "import sys; sys.modules.update(pi_simulator=None, yaml=None); from pi_lakeflow.cli import main; sys.exit(main())"
    for args, missing in [(["simulate", "--port", "0"], "pi_simulator"), (["demo"], "yaml")]:
        result = subprocess.run([sys.executable, "-c", hide, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == (f"pi-lakeflow {args[0]}: needs {missing}, which the local extra installs: "
                                         f"pip install 'pi-lakeflow[local]' (the deployable wheel leaves it out)")


@pytest.mark.timeout(900)  # 220 to 280 s alone; beside another Spark (a run, CI of another clone) over 300
def test_demo_runs_the_pipeline_twice_and_says_how_to_query(tmp_path):
    """The demo as a new user runs it; as soon as it says pi_timeseries is queryable, a query in
    another process answers while the demo goes on (queries read the table folders)."""
    config = tmp_path / "demo" / "config.yml"
    errors = tmp_path / "demo-stderr.txt"
    with open(errors, "w") as stderr:  # a file: nothing blocks the demo while the query runs
        demo = subprocess.Popen([sys.executable, "-m", "pi_lakeflow.cli", "demo", "--tags", "100", "--hours", "1",
                                 "--state-dir", str(tmp_path / "demo")], stdout=subprocess.PIPE, stderr=stderr,
                                text=True)
    lines, beside = [], None
    for line in demo.stdout:
        lines.append(line)
        if line.startswith(">> pi_timeseries is queryable after") and beside is None:
            beside = _run("query", "--config", str(config), "--format", "csv", "SELECT count(*) AS n FROM pi_timeseries",
                          timeout=300)
            running = demo.poll() is None
    demo.wait(timeout=800)
    out, err = "".join(lines), errors.read_text()
    assert demo.returncode == 0, out[-2000:] + err[-2000:]
    assert beside is not None and running and beside.returncode == 0, beside.stderr if beside else out
    assert int(beside.stdout.splitlines()[-1]) > 10_000  # the back-fill's first committed batch
    assert out.index(">> pi_timeseries is queryable") < out.index("== run 2:")
    assert "== run 1: back-fill of the last 1 h ==" in out and "== run 2: incremental" in out
    first, second = (int(n.replace(",", "")) for n in re.findall(r"pi_timeseries\s+[\d,]+\s+\+([\d,]+)", out))
    assert first > 10_000 and 0 < second < first  # the second run lands what is new, not everything again
    assert re.search(r"pi_af_elements\s+100\s", out) and "Traceback" not in err
    # What a run shows by default: its phases and partitions, not Spark's start-up lines or flow events.
    assert re.search(r"^\d\d:\d\d:\d\d  phase 1 of 2: ", out, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d  batch 2: partition 0 read \(\d of 1\): 100 tags", out, re.M)
    assert " is RUNNING." not in out and "Importing" not in out
    assert "Using incubator modules" not in err + out  # not the runs' drivers', nor the report's own Spark
    assert "Using incubator modules" in (tmp_path / "demo" / "spark-output.log").read_text()  # the report's
    assert f"pi-lakeflow query --config {config}" in out
    report = tmp_path / "demo" / "quality-report.html"
    assert str(report) in out and 'data-panel="headline_values_landed"' in report.read_text()


def test_a_driver_that_hangs_after_the_run_ended_is_stopped_with_the_recorded_status(tmp_path, capsys):
    """runner.await_driver with real child processes: one that records a status and then never
    exits (as a JVM that ran out of memory hung in its shutdown), and one that exits itself."""
    from pi_lakeflow.local.runner import await_driver

    status = tmp_path / "exit-status"
    record = f"import pathlib, time; time.sleep(0.5); pathlib.Path({str(status)!r}).write_text('1'); time.sleep(600)"
    hanging = subprocess.Popen([sys.executable, "-c", record])
    started = time.monotonic()
    assert await_driver(hanging, status, grace=2.0) == 1
    assert time.monotonic() - started < 30 and hanging.poll() is not None
    assert "did not stop within 2 s after the run ended" in capsys.readouterr().err
    status.unlink()
    finishing = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert await_driver(finishing, status, grace=2.0) == 3


class Terminal(io.StringIO):
    """What the relay writes to, as a terminal sees it (isatty)."""

    def isatty(self) -> bool:
        return True


def test_the_relay_draws_the_progress_bar_in_place_on_a_terminal_and_drops_it_elsewhere(monkeypatch):
    """runner.relay over the lines a driver prints: the bar's lines are drawn over each other (cut
    to the terminal's width) and erased by the next line; into a file or pipe they are left out."""
    from pi_lakeflow.local.terminal import PROGRESS_MARK, DrawnBar, relay

    monkeypatch.setattr(shutil, "get_terminal_size", lambda *args: os.terminal_size((30, 24)))
    driver = ["07:00:01  phase 1 of 2\n", f"{PROGRESS_MARK}batch 1 [#.......]  10%  1,000 values\n",
              f"{PROGRESS_MARK}batch 1 [####....]  50%  5,000 values  2/4 tags  about 1 min left\n",
              "07:00:09  batch 1: partition 0 read (1 of 2)\n", "Setting default log level to \"WARN\".\n"]
    terminal = Terminal()
    relay(io.StringIO("".join(driver)), terminal, verbose=False)
    assert terminal.getvalue() == ("07:00:01  phase 1 of 2\n\r\x1b[Kbatch 1 [#.......]  10%  1,00"  # 29 columns
                                   "\r\x1b[Kbatch 1 [####....]  50%  5,00"
                                   "\r\x1b[K07:00:09  batch 1: partition 0 read (1 of 2)\n")
    drawn = DrawnBar()  # stdout and stderr on one terminal: a line on stderr erases the bar too
    out, err = Terminal(), Terminal()
    relay(io.StringIO(driver[1]), out, verbose=False, drawn=drawn)
    relay(io.StringIO("Exception in thread \"main\"\n"), err, verbose=False, drawn=drawn)
    assert out.getvalue() == "\r\x1b[Kbatch 1 [#.......]  10%  1,00"
    assert err.getvalue() == "\r\x1b[KException in thread \"main\"\n" and not drawn.shown
    piped = io.StringIO()
    relay(io.StringIO("".join(driver)), piped, verbose=True)
    assert piped.getvalue() == ("07:00:01  phase 1 of 2\n07:00:09  batch 1: partition 0 read (1 of 2)\n"
                                "Setting default log level to \"WARN\".\n")
