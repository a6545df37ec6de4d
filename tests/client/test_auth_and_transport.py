"""pi_client's authentication and transport against the simulator over HTTP(S)."""

from __future__ import annotations

import logging
import socket
import sys
import time

import pytest

from pi_client import (Anonymous, Basic, Bearer, Kerberos, OidcClientCredentials, PiAuthError, PiClient,
                       PiConfigError, PiConnectionError, PiHttpError, RetryPolicy, data_servers)
from pi_simulator import Clock, PiWebApi, ServerConfig, SimulatorServer
from pi_simulator.server import KERBEROS_TEST_TOKEN
from tests.simulators import NOW, SMALL_PLANT, make_server

pytestmark = pytest.mark.unit

QUICK = RetryPolicy(attempts=6, backoff=0.01, max_backoff=0.05)


def test_basic_auth_and_an_actionable_401(caplog):
    caplog.set_level(logging.DEBUG)
    with make_server(auth=("basic", "bearer")) as server:
        with PiClient(server.url, Basic("piuser", "pipassword")) as client:
            assert data_servers(client)["name"].to_pylist() == ["PISRV01"]
        with PiClient(server.url, Basic("piuser", "wrong-secret-123")) as client:
            with pytest.raises(PiAuthError) as refused:
                data_servers(client)
    message = str(refused.value)
    assert "user 'piuser'" in message and server.url in message and "Basic, Bearer" in message
    assert refused.value.status == 401
    everything = message + repr(client) + repr(client.transport.auth) + caplog.text
    assert "wrong-secret-123" not in everything and "pipassword" not in everything


def test_anonymous_and_bearer():
    with make_server(auth=("anonymous",)) as server, PiClient(server.url, Anonymous()) as client:
        assert data_servers(client).num_rows == 1
    with make_server(auth=("bearer",), bearer_tokens=("token-abc",)) as server:
        with PiClient(server.url, Bearer("token-abc")) as client:
            assert data_servers(client).num_rows == 1
            assert "token-abc" not in repr(client)
        with PiClient(server.url, Bearer("token-xyz")) as client, pytest.raises(PiAuthError, match="a bearer token"):
            data_servers(client)


def test_openid_connect_discovers_the_token_endpoint_and_renews_the_token():
    with make_server(auth=("bearer",), oidc_token_lifetime=2) as server:
        auth = OidcClientCredentials("pi-lakeflow", "client-secret", renew_margin=1.0)
        with PiClient(server.url, auth) as client:
            data_servers(client)
            assert auth.tokens_fetched == 1 and auth.token_url.endswith("/simulator/identity/connect/token")
            data_servers(client)
            assert auth.tokens_fetched == 1  # still valid
            time.sleep(1.9)  # within the renewal margin of the 2 s token
            data_servers(client)
            assert auth.tokens_fetched == 2
        assert "client-secret" not in repr(auth)
        bad = OidcClientCredentials("pi-lakeflow", "not-the-secret")
        with PiClient(server.url, bad) as client, pytest.raises(Exception, match="refused OpenID Connect client"):
            data_servers(client)


def test_kerberos_negotiation_with_gssapi_mocked_at_the_auth_handler_boundary(monkeypatch):
    """No KDC exists here: spnego.client (the GSSAPI context requests-kerberos drives) is replaced
    by a context that returns the simulator's test ticket. Everything else is real: the 401
    challenge, requests-kerberos answering it, the retried request."""
    import requests_kerberos.kerberos_ as kerberos_module

    steps = []

    class FakeContext:
        def step(self, in_token=None):
            steps.append(in_token)
            return b"simulated-kerberos-ticket"

    def fake_client(**options):
        assert options["service"] == "HTTP" and options["protocol"] == "kerberos"
        return FakeContext()

    monkeypatch.setattr(kerberos_module.spnego, "client", fake_client)
    assert KERBEROS_TEST_TOKEN
    with make_server(auth=("kerberos",)) as server:
        with PiClient(server.url, Kerberos()) as client:
            assert data_servers(client).num_rows == 1
        with PiClient(server.url, Anonymous()) as client, pytest.raises(PiAuthError, match="Negotiate"):
            data_servers(client)
    assert steps  # the handler answered the server's Negotiate challenge


def test_kerberos_without_the_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "requests_kerberos", None)
    with pytest.raises(PiConfigError, match=r"pi-lakeflow\[kerberos\]"):
        Kerberos()


def test_posts_carry_x_requested_with_so_csrf_defence_lets_them_through(shared_server):
    with PiClient(shared_server.url) as client:
        replies = client.batch({"a": "system", "b": "dataservers"})
    assert {k: r.status for k, r in replies.items()} == {"a": 200, "b": 200}


def test_tls_is_verified_against_a_ca_bundle(tls_files, tmp_path):
    cert_file, key_file, ca_file = tls_files
    api = PiWebApi(SMALL_PLANT, ServerConfig(), Clock(NOW))
    with SimulatorServer(api, tls_cert=cert_file, tls_key=key_file) as server:
        with PiClient(server.url, retry=QUICK) as client, pytest.raises(PiConnectionError) as untrusted:
            data_servers(client)
        assert "TLS certificate verification failed" in str(untrusted.value) and server.url in str(untrusted.value)
        with PiClient(server.url, ca_bundle=ca_file) as client:
            assert data_servers(client).num_rows == 1
        with PiClient(server.url, insecure_skip_tls_verify=True) as client:
            assert data_servers(client).num_rows == 1
    with pytest.raises(PiConfigError, match="does not exist"):
        PiClient("https://pi.example.com/piwebapi", ca_bundle=str(tmp_path / "missing.pem"))
    with pytest.raises(PiConfigError, match="True or False"):
        PiClient("https://pi.example.com/piwebapi", insecure_skip_tls_verify="no")


@pytest.mark.parametrize("fault", ["502", "503", "504", "reset", "truncate"])
def test_transient_faults_are_retried(fault):
    with make_server(fault_rate=0.5, faults=(fault,)) as server, PiClient(server.url, retry=QUICK) as client:
        for _ in range(8):
            assert data_servers(client).num_rows == 1
        assert client.transport.stats.retries > 0


def test_a_stalled_reply_times_out_and_is_retried():
    with make_server(fault_rate=0.5, faults=("stall",)) as server:
        with PiClient(server.url, retry=QUICK, read_timeout=0.5) as client:
            for _ in range(4):
                assert data_servers(client).num_rows == 1


def test_rate_limit_429_is_honoured_and_the_client_ceiling_avoids_it():
    with make_server(rate_limit=5, rate_limit_retry_after=1) as server:
        with PiClient(server.url, retry=RetryPolicy(attempts=4, backoff=0.01)) as client:
            started = time.monotonic()
            for _ in range(8):
                data_servers(client)
            assert client.transport.stats.retries >= 1 and time.monotonic() - started >= 0.9  # waited Retry-After
        time.sleep(1.1)  # let the server's one-second window forget the requests above
        with PiClient(server.url, max_requests_per_second=4) as client:
            for _ in range(8):
                data_servers(client)
            assert client.transport.stats.retries == 0


def test_errors_name_the_url_and_the_cause():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/piwebapi"
    with PiClient(url, retry=RetryPolicy(attempts=2, backoff=0.01)) as client:
        with pytest.raises(PiConnectionError, match=r"Cannot reach PI Web API at .*:%d/piwebapi after 2 attempt\(s\): "
                                                    r"Connection refused" % port):
            data_servers(client)
    with make_server(fault_rate=1.0, faults=("500",)) as server, PiClient(server.url, retry=QUICK) as client:
        with pytest.raises(PiHttpError, match="HTTP 500 .*Injected fault"):
            data_servers(client)
    with pytest.raises(PiConfigError, match="not valid"):
        PiClient("pi.example.com")
    with pytest.raises(PiConfigError, match="attempts"):
        RetryPolicy(attempts=0)
