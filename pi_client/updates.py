"""Stream updates: register streams, then fetch every change (Add, Update, Delete) since a marker.

Markers live on the server for a limited time. When one has expired (404) or is refused (409),
the stream is registered again and its recorded values are re-read from its cursor, so there is
no gap; rows read that way have the action "Add" and may repeat values already seen (consumers
de-duplicate on web_id, timestamp and ordinal).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping
from urllib.parse import quote

import pyarrow as pa

from . import schemas
from .client import PiClient
from .decode import Registrations, StreamData, UpdateStreams, decode, gc_paused, values_table
from .errors import PiError
from .timeseries import Tag, read_recorded
from .times import NS_PER_SECOND


@dataclass(frozen=True)
class Subscription:
    """A registered stream: its current marker and its cursor (values before it are known)."""

    web_id: str
    marker: str
    cursor: int
    name: str = ""


@dataclass
class UpdatesResult:
    """Events (schemas.UPDATES), the subscriptions to use next time, and per-stream problems."""

    events: pa.Table
    subscriptions: dict[str, Subscription]
    recovered: list[str] = field(default_factory=list)   # re-registered and re-read from their cursor
    errors: dict[str, str] = field(default_factory=dict)


def register(client: PiClient, web_ids: Iterable[str], cursor: int) -> dict[str, Subscription]:
    """Register streams for updates (``POST streamsets/updates``, as many per request as the URL allows)."""
    web_ids = list(dict.fromkeys(web_ids))
    found: dict[str, Subscription] = {}
    room = client.limits.max_url_length - len(client.url) - 100
    start = 0
    while start < len(web_ids):
        group, length = [], 0
        while start + len(group) < len(web_ids) and len(group) < client.limits.tags_per_request:
            cost = len(quote(web_ids[start + len(group)], safe="")) + 7
            if group and length + cost > room:
                break
            group.append(web_ids[start + len(group)])
            length += cost
        start += len(group)
        query = "&".join(f"webId={quote(w, safe='')}" for w in group)
        for item in decode(client.transport.post(f"streamsets/updates?{query}"), Registrations).Items:
            if item.LatestMarker:
                found[item.Source] = Subscription(item.Source, item.LatestMarker, cursor, item.SourceName)
            else:
                raise PiError(f"Registering {item.Source} for updates failed: {item.Status} {item.Exception}")
    return found


def poll(client: PiClient, subscriptions: Mapping[str, Subscription]) -> UpdatesResult:
    """Every change since each subscription's marker; lost markers are recovered (see module doc)."""
    subs = dict(subscriptions)
    keys = list(subs)
    replies = client.batch({w: f"streamsets/updates?marker={quote(subs[w].marker, safe='')}" for w in keys})
    streams, lost, errors = [], [], {}
    with gc_paused():
        for web_id in keys:
            reply = replies[web_id]
            if reply.status in (404, 409):
                lost.append(web_id)
                continue
            if not reply.ok:
                errors[web_id] = f"HTTP {reply.status}: {'; '.join(reply.messages())}"
                continue
            for item in decode(reply.content, UpdateStreams).Items:
                streams.append(StreamData(web_id, subs[web_id].name or item.SourceName, None, item.Events))
                subs[web_id] = replace(subs[web_id], marker=item.LatestMarker)
        tables = [values_table(streams, with_action=True)] if streams else []
    if tables and tables[0].num_rows:
        for web_id, newest in _latest_by_stream(tables[0]).items():
            subs[web_id] = replace(subs[web_id], cursor=max(subs[web_id].cursor, newest))
    if lost:
        tables.append(_recover(client, subs, lost, errors))
    events = pa.concat_tables(tables) if tables else schemas.UPDATES.empty_table()
    return UpdatesResult(events, subs, lost, errors)


def _latest_by_stream(events: pa.Table) -> dict[str, int]:
    grouped = events.group_by("web_id").aggregate([("timestamp", "max")])
    return dict(zip(grouped["web_id"].to_pylist(),
                    (t.value for t in grouped["timestamp_max"])))


def _recover(client: PiClient, subs: dict[str, Subscription], lost: list[str], errors: dict[str, str]) -> pa.Table:
    """Register lost streams again, then re-read their recorded values from each cursor."""
    fresh = register(client, lost, 0)
    horizon = time.time_ns() + 86_400 * NS_PER_SECOND  # beyond the server's now: "everything so far"
    result = read_recorded(client, [Tag(w, subs[w].name) for w in lost], 0, horizon,
                           cursors={w: subs[w].cursor for w in lost})
    errors.update(result.errors)
    values = result.values
    latest = _latest_by_stream(values) if values.num_rows else {}
    for web_id in lost:
        subs[web_id] = replace(subs[web_id], marker=fresh[web_id].marker,
                               cursor=max(subs[web_id].cursor, latest.get(web_id, subs[web_id].cursor)))
    return values.append_column(pa.field("action", pa.string(), nullable=False),
                                pa.array(["Add"] * values.num_rows, pa.string())).cast(schemas.UPDATES)
