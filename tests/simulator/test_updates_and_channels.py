"""Stream updates (markers) and WebSocket channels."""

from __future__ import annotations

import pytest

import base64
import json
import os
import socket
import struct
from urllib.parse import urlsplit

from pi_simulator import GroundTruth
from pi_simulator.pitime import TICKS_PER_SECOND

pytestmark = pytest.mark.unit

MINUTE = 60 * TICKS_PER_SECOND


def test_updates_report_adds_edits_and_deletes_exactly(fresh_server, http):
    api = fresh_server.api
    truth = GroundTruth(api)
    points = api.plant.points[:40]
    query = "&".join(f"webId={p.web_id}" for p in points)
    registered = http.post(f"{fresh_server.url}/streamsets/updates?{query}").json()["Items"]
    markers = {r["Source"]: r["LatestMarker"] for r in registered}
    since = api.now()
    api.clock.advance(90 * MINUTE)
    reply = http.get(f"{fresh_server.url}/streamsets/updates",
                     params={"marker": [markers[p.web_id] for p in points]}).json()
    actions = set()
    for item, point in zip(reply["Items"], points):
        expected = truth.changes(point.name, since, api.now())
        got = [(e.pop("Action"), e) for e in item["Events"]]
        assert got == expected
        actions |= {a for a, _ in got}
        assert item["LatestMarker"] != item["RequestedMarker"]
    assert actions == {"Add", "Update", "Delete"}


def test_single_stream_updates_and_marker_errors(fresh_server, http):
    point = fresh_server.api.plant.points[0]
    marker = http.post(f"{fresh_server.url}/streams/{point.web_id}/updates").json()["LatestMarker"]
    fresh_server.api.clock.advance(5 * MINUTE)
    first = http.get(f"{fresh_server.url}/streams/updates/{marker}").json()
    assert first["Events"] and all(e["Action"] == "Add" for e in first["Events"])
    assert http.get(f"{fresh_server.url}/streams/updates/not-a-marker").status_code == 409
    root = fresh_server.url.rsplit("/piwebapi", 1)[0]
    assert http.post(f"{root}/simulator/markers/expire").json()["Expired"] >= 1
    expired = http.get(f"{fresh_server.url}/streams/updates/{first['LatestMarker']}")
    assert expired.status_code == 404 and "Cache not found" in expired.json()["Errors"][0]


def _websocket(url: str, path: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _read_message(sock: socket.socket) -> dict:
    def exact(n):
        data = b""
        while len(data) < n:
            data += sock.recv(n - len(data))
        return data
    first, second = exact(2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", exact(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", exact(8))[0]
    return json.loads(exact(length))


def test_channel_pushes_initial_and_new_values(fresh_server):
    api = fresh_server.api
    api.server_config.__dict__["channel_interval"] = 0.2  # frozen dataclass: tests may speed it up
    point = next(p for p in api.plant.points if p.interval_ticks <= MINUTE)
    sock = _websocket(fresh_server.url, f"/piwebapi/streams/{point.web_id}/channel?includeInitialValues=true")
    initial = _read_message(sock)
    assert initial["Items"][0]["WebId"] == point.web_id and len(initial["Items"][0]["Items"]) == 1
    since = api.now()
    api.clock.advance(10 * MINUTE)
    pushed = _read_message(sock)
    expected = [r for a, r in GroundTruth(api).changes(point.name, since, api.now()) if a != "Delete"]
    assert pushed["Items"][0]["Items"] == expected
    sock.sendall(b"\x88\x80" + b"\0\0\0\0")  # masked close frame
    sock.close()
