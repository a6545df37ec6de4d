"""WebSocket channels: ``streams/{webId}/channel`` and ``streamsets/channel?webId=...``.

A minimal RFC 6455 server side (text frames out, close/ping in). Every ``channel_interval``
seconds the server pushes the values that appeared or changed since its last push, as
``{"Links": {}, "Items": [{"WebId", "Name", "Path", "Items": [values]}]}``; with
``includeInitialValues=true`` the first message carries each stream's current value.
"""

from __future__ import annotations

import base64
import hashlib
import select
import struct
import time

from .api import ApiError, PiWebApi, Query, Reply
from .render import FieldSelection

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def serve_channel(handler, api: PiWebApi, path: str, query: Query) -> None:
    try:
        streams = _streams(api, path, query)
    except ApiError as error:
        return handler._send(Reply.error(error.status, *error.messages))
    accept = base64.b64encode(hashlib.sha1((handler.headers["Sec-WebSocket-Key"] + _GUID).encode()).digest())
    last = api.now()  # subscribed before the client hears it is: nothing after its 101 is missed
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept.decode())
    handler.end_headers()
    handler.close_connection = True
    sock = handler.connection
    select_all = FieldSelection(None)
    if query.boolean("includeInitialValues", False):
        entries = [(api.stream_header(p, a), p, api.series.latest(p, last)) for p, a in streams]
        _send_text(sock, b"".join(bytes(c) for c in api.render_streams(entries, select_all)))
    interval = api.server_config.channel_interval
    while True:
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
            if readable and not _read_control(sock):
                return
        now = api.now()
        entries = []
        for point, attribute in streams:
            values, actions, _ = api.series.changes(point, last, now)
            values = values.take(actions != 2)  # deletes are not pushed on channels
            if len(values):
                entries.append((api.stream_header(point, attribute), point, values))
        last = now
        if entries:
            try:
                _send_text(sock, b"".join(bytes(c) for c in api.render_streams(entries, select_all)))
            except OSError:
                return


def _streams(api: PiWebApi, path: str, query: Query):
    parts = path.strip("/").split("/")
    if parts[0].lower() == "streams" and len(parts) == 3:
        web_ids = [parts[1]]
    else:
        web_ids = query.all("webId")
        if not web_ids:
            raise ApiError(400, "At least one 'webId' parameter is required.")
    streams = [api.stream_point(w) for w in web_ids]
    for point, attribute in streams:
        if point is None:
            raise ApiError(409, f"The attribute '{attribute.path}' has no time series to push.")
    return streams


def _send_text(sock, payload: bytes) -> None:
    header = bytearray([0x81])
    if len(payload) < 126:
        header.append(len(payload))
    elif len(payload) < 1 << 16:
        header.append(126)
        header += struct.pack("!H", len(payload))
    else:
        header.append(127)
        header += struct.pack("!Q", len(payload))
    sock.sendall(bytes(header) + payload)


def _read_control(sock) -> bool:
    """Read one client frame; False when the client closed (or the connection dropped)."""
    try:
        head = _recv_exact(sock, 2)
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", _recv_exact(sock, 2))[0]
        elif length == 127:
            length = struct.unpack("!Q", _recv_exact(sock, 8))[0]
        mask = _recv_exact(sock, 4) if head[1] & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(_recv_exact(sock, length)))
    except (OSError, ConnectionError):
        return False
    if opcode == 0x8:  # close: answer and stop
        try:
            sock.sendall(b"\x88\x00")
        except OSError:
            pass
        return False
    if opcode == 0x9:  # ping
        sock.sendall(bytes([0x8A, len(payload)]) + payload)
    return True


def _recv_exact(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


