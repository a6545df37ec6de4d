"""Stream updates: register streams, then fetch every change (Add, Update, Delete) since a marker.

Markers live on the server for a limited time. When one has expired (404) or is refused (409),
the stream is registered again and its recorded values are re-read from its cursor, so there is
no gap; rows read that way have the action "Add" and may repeat the values at the cursor that
were already seen (pi_lakeflow.runtime.realtime skips those by counting them; other consumers
de-duplicate on web_id, timestamp and ordinal). A poll sends many markers per
``streamsets/updates`` sub-request, the sub-requests through the batch controller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping
from urllib.parse import quote

import msgspec
import pyarrow as pa

from . import schemas
from .batch import SubReply
from .client import PiClient
from .decode import Registrations, StreamData, UpdateStreams, decode, gc_paused, values_table
from .errors import PiError
from .timeseries import Tag, read_recorded
from .times import NS_PER_SECOND, to_ns


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
    found: dict[str, Subscription] = {}
    for group in client.url_groups(list(dict.fromkeys(web_ids))):
        query = "&".join(f"webId={quote(w, safe='')}" for w in group)
        for item in decode(client.transport.post(f"streamsets/updates?{query}"), Registrations).Items:
            if item.LatestMarker:
                found[item.Source] = Subscription(item.Source, item.LatestMarker, cursor, item.SourceName)
            else:
                raise PiError(f"Registering {item.Source} for updates failed: {item.Status} {item.Exception}")
    return found


def end_timestamps(client: PiClient, web_ids: Iterable[str]) -> tuple[dict[str, int], dict[str, str]]:
    """Each stream's newest recorded timestamp (``streams/{webId}/end``, through the batch
    controller): where a new subscription's cursor starts. Also the errors, per stream."""
    replies = client.batch({w: f"streams/{quote(w, safe='')}/end?selectedFields=Timestamp" for w in web_ids})
    found, errors = {}, {}
    for web_id, reply in replies.items():
        if reply.ok:
            found[web_id] = to_ns(msgspec.json.decode(bytes(reply.content))["Timestamp"])
        else:
            errors[web_id] = reply.error
    return found, errors


def poll(client: PiClient, subscriptions: Mapping[str, Subscription]) -> UpdatesResult:
    """Every change since each subscription's marker; lost markers are recovered (see module doc).

    Markers go many to a ``streamsets/updates`` sub-request (as many as its URL holds), the
    sub-requests through the batch controller. A sub-request that fails is asked again marker
    by marker, so that one lost marker or failing stream does not hold back the others."""
    subs = dict(subscriptions)
    web_id_of = {s.marker: w for w, s in subs.items()}
    groups = {f"group {i}": g for i, g in enumerate(client.url_groups([s.marker for s in subs.values()]))}
    replies = _updates_replies(client, groups)
    retry = {f"marker {m}": [m] for key, group in groups.items() if not replies[key].ok and len(group) > 1
             for m in group}
    replies.update(_updates_replies(client, retry))
    groups = {**{k: g for k, g in groups.items() if replies[k].ok or len(g) == 1}, **retry}
    streams, lost, errors = [], [], {}
    with gc_paused():
        for key, group in groups.items():
            reply = replies[key]
            if reply.status in (404, 409):
                lost.append(web_id_of[group[0]])
                continue
            if not reply.ok:
                errors[web_id_of[group[0]]] = reply.error
                continue
            items = decode(reply.content, UpdateStreams).Items
            if len(items) != len(group):
                raise PiError(f"streamsets/updates answered {len(items)} streams for {len(group)} markers")
            for marker, item in zip(group, items):
                web_id = web_id_of[marker]
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


def _updates_replies(client: PiClient, groups: Mapping[str, list[str]]) -> dict[str, SubReply]:
    return client.batch({key: "streamsets/updates?" + "&".join(f"marker={quote(m, safe='')}" for m in markers)
                         for key, markers in groups.items()})


def _latest_by_stream(events: pa.Table) -> dict[str, int]:
    grouped = events.group_by("web_id").aggregate([("timestamp", "max")])
    return dict(zip(grouped["web_id"].to_pylist(),
                    (t.value for t in grouped["timestamp_max"])))


def _recover(client: PiClient, subs: dict[str, Subscription], lost: list[str], errors: dict[str, str]) -> pa.Table:
    """Register lost streams again, then re-read their recorded values from each cursor."""
    fresh = register(client, lost, 0)
    values, failed = recorded_since(client, {w: subs[w].cursor for w in lost}, {w: subs[w].name for w in lost})
    errors.update(failed)
    latest = _latest_by_stream(values) if values.num_rows else {}
    for web_id in lost:
        subs[web_id] = replace(subs[web_id], marker=fresh[web_id].marker,
                               cursor=max(subs[web_id].cursor, latest.get(web_id, subs[web_id].cursor)))
    return values


def recorded_since(client: PiClient, cursors: Mapping[str, int], names: Mapping[str, str]
                   ) -> tuple[pa.Table, dict[str, str]]:
    """Every recorded value from each stream's cursor (included) to the server's now, as events
    with the action "Add" (schemas.UPDATES), and the errors per stream: how a stream whose updates
    were lost (an expired marker, a closed channel) catches up."""
    horizon = time.time_ns() + 86_400 * NS_PER_SECOND  # beyond the server's now: "everything so far"
    result = read_recorded(client, [Tag(w, names.get(w, "")) for w in cursors], 0, horizon, cursors=cursors)
    values = result.values
    events = values.append_column(pa.field("action", pa.string(), nullable=False),
                                  pa.array(["Add"] * values.num_rows, pa.string())).cast(schemas.UPDATES)
    return events, result.errors
