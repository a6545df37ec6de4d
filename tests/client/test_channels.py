"""pi_client.channels against the simulator's WebSocket channels on loopback (ws:// and wss://)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from pi_client import Basic, Bearer, Kerberos, OidcClientCredentials, PiAuthError, PiClient, PiConfigError, \
    PiConnectionError
from pi_client.channels import open_channel
from pi_client.times import to_ns
from pi_simulator import Clock, GroundTruth, PiWebApi, ServerConfig, SimulatorServer
from tests.oracle import truth_json, value_json
from tests.simulators import NOW, SMALL_PLANT, make_server

pytestmark = pytest.mark.unit

MINUTE_TICKS = 600_000_000


def receive_after_advance(client: PiClient, api, points, minutes: int = 10):
    """Open a channel over ``points``, move the server clock, return the first message's values."""
    async def run():
        async with open_channel(client, [p.web_id for p in points]) as channel:
            api.clock.advance(minutes * MINUTE_TICKS)
            return await asyncio.wait_for(channel.receive(), 30)
    return asyncio.run(run())


def test_a_channel_pushes_every_new_and_changed_value_in_time_order():
    with make_server(channel_interval=0.05) as server, PiClient(server.url) as client:
        points = server.api.plant.points[:5]
        values = receive_after_advance(client, server.api, points)
        truth = GroundTruth(server.api)
    landed = Counter((r["name"], r["timestamp"].value, value_json(r), r["good"]) for r in values.to_pylist())
    expected = Counter()
    for point in points:
        for action, value in truth.changes(point.name, NOW, NOW + 10 * MINUTE_TICKS):
            if action != "Delete":  # channels push no deletes
                expected[(point.name, to_ns(value["Timestamp"]), truth_json(value["Value"]), value["Good"])] += 1
    assert landed == expected and len(landed) > 20
    stamps = values["timestamp"].cast("int64").to_pylist()
    names = values["name"].to_pylist()
    assert all(names[i] != names[i + 1] or stamps[i] <= stamps[i + 1] for i in range(len(names) - 1))


def test_channels_authenticate_like_requests_and_refuse_bearer_tokens(monkeypatch):
    import requests_kerberos.kerberos_ as kerberos_module

    class FakeContext:  # no KDC here: the GSSAPI context is mocked, the handshake header is real
        def step(self, in_token=None):
            return b"simulated-kerberos-ticket"

    monkeypatch.setattr(kerberos_module.spnego, "client", lambda **options: FakeContext())
    with make_server(auth=("basic", "kerberos"), channel_interval=0.05) as server:
        points = server.api.plant.points[:2]
        for auth in (Basic("piuser", "pipassword"), Kerberos()):
            with PiClient(server.url, auth) as client:
                assert receive_after_advance(client, server.api, points, 1).num_rows
        with PiClient(server.url, Basic("piuser", "wrong-secret-123")) as client, \
                pytest.raises(PiAuthError) as refused:
            receive_after_advance(client, server.api, points)
        assert "user 'piuser'" in str(refused.value) and "wrong-secret-123" not in str(refused.value)
        for auth in (Bearer("token-abc"), OidcClientCredentials("pi-lakeflow", "client-secret")):
            with PiClient(server.url, auth) as client, pytest.raises(PiConfigError, match="channels do not accept"):
                receive_after_advance(client, server.api, points)


def test_a_wss_channel_verifies_the_server_certificate(tls_files):
    cert_file, key_file, ca_file = tls_files
    api = PiWebApi(SMALL_PLANT, ServerConfig(channel_interval=0.05), Clock(NOW))
    with SimulatorServer(api, tls_cert=cert_file, tls_key=key_file) as server:
        points = api.plant.points[:2]
        with PiClient(server.url) as client, pytest.raises(PiConnectionError, match="TLS certificate verification"):
            receive_after_advance(client, api, points)
        with PiClient(server.url, ca_bundle=ca_file) as client:
            assert receive_after_advance(client, api, points, 1).num_rows
