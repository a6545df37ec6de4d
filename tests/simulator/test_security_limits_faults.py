"""Authentication, CSRF, limits and injected faults: each switch on its own."""

from __future__ import annotations

import time

import pytest
import requests

from pi_simulator import Clock, PiWebApi, ServerConfig, SimulatorServer
from tests.simulators import NOW, SMALL_PLANT, make_server

pytestmark = pytest.mark.unit


def test_basic_auth_and_the_401_challenge():
    with make_server(auth=("basic",), users={"alice": "s3cret"}) as server:
        denied = requests.get(f"{server.url}/dataservers")
        assert denied.status_code == 401 and denied.headers["WWW-Authenticate"] == 'Basic realm="PI Web API"'
        assert requests.get(f"{server.url}/dataservers", auth=("alice", "wrong")).status_code == 401
        assert requests.get(f"{server.url}/dataservers", auth=("alice", "s3cret")).status_code == 200


def test_bearer_tokens_from_the_openid_connect_client_credentials_flow():
    with make_server(auth=("bearer",), oidc_clients={"etl": "client-secret"}, oidc_token_lifetime=1) as server:
        discovery = requests.get(f"{server.url}/.well-known/openid-configuration").json()
        assert requests.post(discovery["token_endpoint"], data={"grant_type": "client_credentials",
                             "client_id": "etl", "client_secret": "nope"}).status_code == 401
        token = requests.post(discovery["token_endpoint"], data={"grant_type": "client_credentials",
                              "client_id": "etl", "client_secret": "client-secret"}).json()
        assert token["token_type"] == "Bearer" and token["expires_in"] == 1
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        assert requests.get(f"{server.url}/system", headers=headers).status_code == 200
        time.sleep(1.1)
        expired = requests.get(f"{server.url}/system", headers=headers)
        assert expired.status_code == 401 and expired.headers["WWW-Authenticate"] == "Bearer"


def test_csrf_defence_refuses_posts_without_x_requested_with():
    with make_server() as server:
        refused = requests.post(f"{server.url}/batch", json={})
        assert refused.status_code == 400 and "X-Requested-With" in refused.json()["Errors"][0]
        assert requests.post(f"{server.url}/batch", json={}, headers={"X-Requested-With": "x"}).status_code == 207
        assert requests.get(f"{server.url}/system").status_code == 200  # GET needs no header
    with make_server(csrf_defense=False) as server:
        assert requests.post(f"{server.url}/batch", json={}).status_code == 207


def test_rate_limit_answers_429_with_retry_after():
    with make_server(rate_limit=5, rate_limit_retry_after=2) as server, requests.Session() as http:
        statuses = [http.get(f"{server.url}/system").status_code for _ in range(8)]
        assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
        limited = http.get(f"{server.url}/system")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
        assert limited.json() == {"Errors": ["Rate limit was reached."]}


def test_url_and_body_size_limits():
    with make_server(max_url_length=200, max_request_content_length=1000) as server:
        assert requests.get(f"{server.url}/system?x={'a' * 300}").status_code == 414
        big = requests.post(f"{server.url}/batch", data=b"{" + b" " * 2000 + b"}", headers={"X-Requested-With": "x"})
        assert big.status_code == 413


def test_added_latency():
    with make_server(latency=0.3) as server:
        started = time.perf_counter()
        requests.get(f"{server.url}/system")
        assert time.perf_counter() - started >= 0.3


@pytest.mark.parametrize("status", ["500", "502", "503", "504"])
def test_injected_status_faults(status):
    with make_server(fault_rate=1.0, faults=(status,)) as server:
        reply = requests.get(f"{server.url}/system")
        assert reply.status_code == int(status) and "Injected fault" in reply.json()["Errors"][0]


def test_injected_reset_truncation_and_stall():
    with make_server(fault_rate=1.0, faults=("reset",)) as server:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{server.url}/system")
    with make_server(fault_rate=1.0, faults=("truncate",)) as server:
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
            requests.get(f"{server.url}/dataservers").json()
    with make_server(fault_rate=1.0, faults=("stall",)) as server:
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(f"{server.url}/system", timeout=(2, 0.5))


def test_fault_rate_is_a_share_of_requests():
    with make_server(fault_rate=0.25, faults=("503",)) as server, requests.Session() as http:
        failures = sum(http.get(f"{server.url}/system").status_code == 503 for _ in range(400))
        assert 60 <= failures <= 140


def test_https_with_a_certificate(tls_files):
    cert_file, key_file, ca_file = tls_files
    api = PiWebApi(SMALL_PLANT, ServerConfig(), Clock(NOW))
    with SimulatorServer(api, tls_cert=cert_file, tls_key=key_file) as server:
        assert server.url.startswith("https://")
        assert requests.get(f"{server.url}/system", verify=ca_file).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{server.url}/system")  # not trusted by default
