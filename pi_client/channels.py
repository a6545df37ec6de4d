"""Channels: the server pushes the streams' new and changed values over a WebSocket.

``streamsets/channel?webId=...`` (RFC 6455; ``wss://`` for an ``https://`` server, with the
transport's TLS verification). Each message is what ``streamsets/end`` would answer: per stream,
the values that appeared or changed since the previous message, in no guaranteed order and with
no action, so a channel does not say whether a value is new or an edit, and it pushes no deletes.
Channels accept basic, Kerberos and anonymous access, not bearer tokens. Nothing is replayed after
a disconnect: what arrived meanwhile must be read as recorded values (updates.recorded_since).

    async with open_channel(client, tags) as channel:   # Tags or WebIds
        while True:
            values = await channel.receive()   # schemas.VALUES, sorted by stream and time
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Iterable, Mapping
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .client import PiClient
from .decode import StreamData, Streams, decode, gc_paused, ordinals, values_table
from .errors import PiAuthError, PiConfigError, PiConnectionError, PiHttpError
from .streamsets import Tag, as_tags
from .transport import REQUESTED_WITH, describe_failure, error_messages, offered_schemes


def channel_url(client: PiClient, web_ids: list[str]) -> str:
    """The ``ws://`` or ``wss://`` URL of one channel over ``web_ids`` (one group of
    ``client.url_groups``: the URL must fit)."""
    if not web_ids:
        raise PiConfigError("A channel needs at least one WebId.")
    query = "&".join(f"webId={quote(w, safe='')}" for w in web_ids)
    return client.url.replace("http", "ws", 1) + f"/streamsets/channel?{query}&includeInitialValues=false"


class Channel:
    """An open channel (see the module docstring); close it by leaving ``open_channel``."""

    def __init__(self, socket: ClientConnection, url: str, tags: Mapping[str, Tag]):
        self._socket, self.url = socket, url
        self._names = {w: t.name for w, t in tags.items()}
        self._stamped = frozenset(w for w, t in tags.items() if t.point_type == "Timestamp")

    async def receive(self) -> pa.Table:
        """The values of the next message (schemas.VALUES, by stream then time; ordinals count the
        values of a stream at one timestamp in this message). Raises PiConnectionError when the
        channel closes."""
        try:
            message = await self._socket.recv(decode=False)
        except ConnectionClosed as closed:
            reason = f"code {closed.rcvd.code} {closed.rcvd.reason}".strip() if closed.rcvd else "no close frame"
            raise PiConnectionError(self.url, f"the channel closed ({reason})", 1) from None
        with gc_paused():
            streams = [StreamData(s.WebId, self._names.get(s.WebId) or s.Name, s.UnitsAbbreviation, s.Items)
                       for s in decode(message, Streams).Items]
            return _in_time_order(values_table(streams, self._stamped))


@asynccontextmanager
async def open_channel(client: PiClient, tags: Iterable[Tag | str]) -> AsyncIterator[Channel]:
    """Open a channel over ``tags`` (Tags, or WebIds): a Tag's name names its rows, its point type
    "Timestamp" fills ``value_timestamp``. Raises
    PiAuthError (401, 403), PiHttpError (another refusal), PiConnectionError (unreachable, TLS),
    PiConfigError (bearer authentication)."""
    streams = {t.web_id: t for t in as_tags(tags)}
    url = channel_url(client, list(streams))
    transport = client.transport
    headers = {"X-Requested-With": REQUESTED_WITH,
               **transport.auth.handshake_headers(transport.url_for("streamsets/channel"))}
    try:
        socket = await connect(url, additional_headers=headers, ssl=transport.ssl_context(),
                               open_timeout=transport.timeout[0], max_size=None)
    except InvalidStatus as refused:
        reply = refused.response
        messages = error_messages(reply.body or b"")
        if reply.status_code in (401, 403):
            raise PiAuthError(reply.status_code, "GET", url, messages, transport.auth.identity,
                              offered_schemes(reply.headers.get("WWW-Authenticate", ""))) from None
        raise PiHttpError(reply.status_code, "GET", url, messages) from None
    except (OSError, TimeoutError, InvalidHandshake) as error:
        raise PiConnectionError(url, describe_failure(error), 1) from None
    try:
        yield Channel(socket, url, streams)
    finally:
        await socket.close()


def _in_time_order(values: pa.Table) -> pa.Table:
    """Sort by stream and time (a message's order is not chronological), keeping the server's
    order among values at one timestamp, and number those again."""
    if values.num_rows < 2:
        return values
    ordered = values.take(pc.sort_indices(values, [("web_id", "ascending"), ("timestamp", "ascending")]))
    streams = pc.dictionary_encode(ordered["web_id"]).combine_chunks().indices.to_numpy()
    ticks = ordered["timestamp"].cast(pa.int64()).to_numpy()
    return ordered.set_column(ordered.schema.get_field_index("ordinal"), values.schema.field("ordinal"),
                              pa.array(ordinals(np.asarray(streams), ticks)))
