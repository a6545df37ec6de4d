"""Bad settings and unreachable or refusing servers stop ``pi-lakeflow run`` before Spark starts,
with one message naming what was wrong and what is accepted."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from pathlib import Path

import pytest
import yaml

from pi_lakeflow import cli
from pi_lakeflow.config.settings import KEY_NAMES, SettingsError, parse, resolve_time
from tests.simulators import make_server

pytestmark = pytest.mark.unit

GOOD = {"pi.url": "https://pi.example.com/piwebapi", "pi.state_path": "/tmp/state"}


def run_cli(tmp_path, capsys, document, command: str = "run") -> tuple[int, str]:
    path = tmp_path / "config.yml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    started = time.perf_counter()
    status = cli.main([command, "--config", str(path)])
    assert time.perf_counter() - started < 15, "a refused config or server took too long to report"
    return status, capsys.readouterr().err


def unused_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("change, named, accepted", [
    ({"pi.url": None}, "pi.url is missing", "PI Web API base URL"),
    ({"pi.tags.name": "*"}, "unknown setting pi.tags.name", "pi.tags.name_filter"),
    ({"pi.start": "yesterday"}, "pi.start: 'yesterday' is not a time", "ISO 8601"),
    ({"pi.end": "2024-13-45"}, "pi.end", "ISO 8601"),
    ({"pi.lookback": "an hour"}, "pi.lookback: 'an hour' is not a duration", "s, m, h, d or w"),
    ({"pi.partition_size": "0"}, "pi.partition_size: '0' must be 1 or more", "1 or more"),
    ({"pi.partition_size": "lots"}, "pi.partition_size: 'lots' is not a whole number", "whole number"),
    ({"pi.auth": "ntlm"}, "pi.auth: 'ntlm' is not one of", "kerberos"),
    ({"pi.auth": "basic", "pi.user": "svc"}, "pi.password is needed with pi.auth basic", "pi.password"),
    ({"pi.event_frames.search_mode": "Sideways"}, "pi.event_frames.search_mode", "Overlapped"),
    ({"pi.url": "pi.example.com"}, "pi.url: 'pi.example.com' is not an http(s) URL", "https://"),
    ({"pi.quality.future_tolerance": "soon"}, "pi.quality.future_tolerance: 'soon' is not a duration", "unit s, m"),
    ({"pi.catalog_schema": "main.pi; DROP"}, "pi.catalog_schema: 'main.pi; DROP' is not a schema name",
     "catalog.schema"),
    ({"pi.updates.transport": "websocket"}, "pi.updates.transport: 'websocket' is not one of", "markers, channels"),
    ({"pi.max_items_per_call": "0"}, "pi.max_items_per_call: '0' must be 1 or more", "1 or more"),
    ({"pi.read_timeout": "0s"}, "pi.read_timeout: '0s' must be longer than zero", "longer than zero"),
    ({"pi.read_timeout": "soon"}, "pi.read_timeout: 'soon' is not a duration", "unit s, m"),
    ({"pi.updates.transport": "channels", "pi.auth": "bearer", "pi.token": "env:T"},
     "pi.updates.transport channels does not work with pi.auth bearer", "basic, kerberos or anonymous"),
])
def test_bad_settings_name_the_key_and_what_is_accepted(tmp_path, capsys, change, named, accepted):
    configuration = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration})
    assert status == 2 and named in err and accepted in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_start_after_the_end_is_refused(tmp_path, capsys):
    configuration = {**GOOD, "pi.start": "2024-05-02T00:00:00Z", "pi.end": "2024-05-01T00:00:00Z"}
    status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration})
    assert status == 2 and "pi.start (2024-05-02T00:00:00Z) is not before pi.end" in err


def test_a_secret_written_in_the_file_is_refused_without_showing_it(tmp_path, capsys):
    configuration = {**GOOD, "pi.auth": "basic", "pi.user": "svc", "pi.password": "hunter2-secret"}
    status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration})
    assert status == 2 and "pi.password" in err and "env:NAME" in err and "hunter2" not in err


@pytest.mark.parametrize("document, named", [
    ("state_dir: [unclosed", "is not valid YAML"),
    ({"configuration": GOOD}, "state_dir is missing"),
    ({"state_dir": "s", "workers": 4, "configuration": GOOD}, "unknown key workers; accepted: state_dir, cores"),
    ({"state_dir": "s", "cores": 0, "configuration": GOOD}, "cores must be a whole number of 1 or more"),
    ({"state_dir": "s", "configuration": ["pi.url"]}, "configuration must be a mapping"),
])
def test_bad_config_files_name_what_is_wrong(tmp_path, capsys, document, named):
    status, err = run_cli(tmp_path, capsys, document)
    assert status == 2 and named in err


@pytest.mark.parametrize("command, tables, named", [
    ("run", "updates", "pi.tables updates is the real-time table: run it with pi-lakeflow stream"),
    ("stream", "all", "pi.tables is all; pi-lakeflow stream runs the real-time table: set pi.tables: updates"),
])
def test_the_real_time_table_and_the_others_are_not_mixed_up(tmp_path, capsys, command, tables, named):
    configuration = {**GOOD, "pi.tables": tables}
    status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration}, command)
    assert status == 2 and named in err and len(err.strip().splitlines()) == 1


def test_an_unreachable_server_ends_the_stream_before_spark_starts(tmp_path, capsys):
    port = unused_port()
    configuration = {"pi.url": f"http://127.0.0.1:{port}/piwebapi", "pi.tables": "updates"}
    status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration}, "stream")
    assert status == 1 and err.startswith("pi-lakeflow stream: ") and "Cannot reach" in err
    assert not (tmp_path / "state" / "metastore").exists()


def test_a_missing_config_file_is_named(tmp_path, capsys):
    assert cli.main(["run", "--config", str(tmp_path / "nope.yml")]) == 2
    assert "cannot read the config file" in capsys.readouterr().err


def test_bad_credentials_end_the_run_with_one_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PI_TEST_PASSWORD", "wrong-password")
    with make_server(auth=("basic",)) as server:
        configuration = {"pi.url": server.url, "pi.auth": "basic", "pi.user": "piuser",
                         "pi.password": "env:PI_TEST_PASSWORD"}
        status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration})
    assert status == 1 and "piuser" in err and "wrong-password" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "state" / "metastore").exists()


def test_an_unset_secret_variable_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PI_TEST_PASSWORD", raising=False)
    configuration = {**GOOD, "pi.auth": "basic", "pi.user": "svc", "pi.password": "env:PI_TEST_PASSWORD"}
    status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration})
    assert status == 2 and "PI_TEST_PASSWORD" in err and "not set" in err


def test_an_unreachable_server_ends_the_run_with_one_message(tmp_path, capsys):
    port = unused_port()
    configuration = {"pi.url": f"http://127.0.0.1:{port}/piwebapi"}
    status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration})
    assert status == 1 and f"127.0.0.1:{port}" in err and "Cannot reach" in err


def test_the_settings_list_is_the_one_the_parser_reads():
    assert len(set(KEY_NAMES)) == len(KEY_NAMES)
    with pytest.raises(SettingsError, match="pi.state_path is missing"):
        parse({"pi.url": "http://x/piwebapi"})
    settings = parse(GOOD)
    assert settings.partition_size == 1000 and settings.lookback_ns == 3_600_000_000_000


def test_each_key_is_bound_to_its_field_by_name():
    """Every key sets the field it is declared on, whatever the order of the declarations."""
    values = {**GOOD, "pi.partition_size": "7", "pi.max_items_per_call": "9", "pi.summaries.interval": "15m",
              "pi.interpolated.interval": "", "pi.tags.names": "B, A", "pi.requests_per_second": "2.5"}
    settings = parse(values)
    assert (settings.partition_size, settings.max_items_per_call, settings.requests_per_second) == (7, 9, 2.5)
    assert (settings.summaries_interval_ns, settings.interpolated_interval_ns) == (900 * 10**9, 0)
    assert settings.tag_names == ("B", "A")
    with pytest.raises(SettingsError, match="pi.summaries.interval: '90ms' is not a duration"):
        parse({**GOOD, "pi.summaries.interval": "90ms"})
    with pytest.raises(SettingsError, match="whole seconds"):
        parse({**GOOD, "pi.interpolated.interval": "1.5s"})


def test_relative_and_absolute_times():
    now = 1_714_608_000_000_000_000  # 2024-05-02T00:00:00Z
    assert resolve_time("*", now) == now
    assert resolve_time("*-1d", now) == now - 86_400_000_000_000
    assert resolve_time("2024-05-01T00:00:00Z", now) == now - 86_400_000_000_000


def test_the_readme_documents_every_setting():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert [k for k in KEY_NAMES if f"| `{k}` |" not in readme] == []


def _serve(reply: bytes) -> tuple[socketserver.TCPServer, str]:
    """A loopback HTTP server that answers every request with ``reply`` (raw HTTP)."""
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(65536)
            if reply:
                self.request.sendall(reply)
            else:  # accepts the connection and never answers
                time.sleep(30)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


def test_https_against_a_plain_http_server_says_so(tmp_path, capsys):
    with make_server() as server:
        configuration = {"pi.url": server.url.replace("http://", "https://")}
        status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration})
    assert status == 1 and "does not speak TLS" in err and "http://" in err and "certificate" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_server_that_answers_html_is_named_with_its_url(tmp_path, capsys):
    page = b"<html><body>Sign in to continue</body></html>"
    server, address = _serve(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                             + str(len(page)).encode() + b"\r\nConnection: close\r\n\r\n" + page)
    with server:
        configuration = {"pi.url": f"http://{address}/piwebapi"}
        status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration})
    assert status == 1 and f"http://{address}/piwebapi/dataservers" in err and "text/html, not JSON" in err
    assert "Sign in" in err and len(err.strip().splitlines()) == 1


def test_a_server_that_never_answers_is_reported_within_seconds(tmp_path, capsys):
    server, address = _serve(b"")
    with server:
        configuration = {"pi.url": f"http://{address}/piwebapi"}
        status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration})  # < 15 s
    assert status == 1 and f"Cannot reach PI Web API at http://{address}/piwebapi after 3 attempt(s)" in err
    assert "did not answer within 3 s" in err and len(err.strip().splitlines()) == 1


def test_the_time_series_alone_needs_the_catalog_tables_first(tmp_path, capsys):
    with make_server() as server:
        configuration = {"pi.url": server.url, "pi.tables": "timeseries"}
        status, err = run_cli(tmp_path, capsys, {"state_dir": "state", "configuration": configuration})
    assert status == 2 and "pi.tables timeseries makes the silver tables from pi_points" in err
    assert "pi.tables all" in err and len(err.strip().splitlines()) == 1
