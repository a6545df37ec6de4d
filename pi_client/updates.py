"""Stream updates: register streams, then fetch every change (Add, Update, Delete) since a marker.

Markers live on the server for a limited time. When one has expired (404) or is refused (409),
the stream is registered again and its recorded values are re-read from its cursor, so there is
no gap; rows read that way have the action "Add" and may repeat the values at the cursor that
were already seen (pi_lakeflow.runtime.realtime skips those by counting them; other consumers
de-duplicate on web_id, timestamp and ordinal). The new marker is then asked once at once: a
change made between the registration and the re-read comes both ways, so the events the re-read
already shows are dropped and the others kept, and nothing repeats. A poll sends many markers per
``streamsets/updates`` sub-request, the sub-requests through the batch controller.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping
from urllib.parse import quote

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from . import schemas
from .batch import SubReply
from .client import PiClient
from .decode import Registrations, StreamData, UpdateStreams, decode, gc_paused, values_table
from .errors import PiError
from .streamsets import Tag
from .timeseries import read_recorded
from .times import NS_PER_SECOND, to_ns


@dataclass(frozen=True)
class Subscription:
    """A registered stream: its current marker and its cursor (values before it are known);
    ``point_type`` "Timestamp" puts its values in ``value_timestamp`` (as read_recorded's Tag)."""

    web_id: str
    marker: str
    cursor: int
    name: str = ""
    point_type: str = ""


@dataclass
class UpdatesResult:
    """Events (schemas.UPDATES), the subscriptions to use next time, and per-stream problems."""

    events: pa.Table
    subscriptions: dict[str, Subscription]
    recovered: list[str] = field(default_factory=list)   # markers lost (poll: re-registered and re-read)
    errors: dict[str, str] = field(default_factory=dict)


def register(client: PiClient, web_ids: Iterable[str], cursor: int,
             errors: dict[str, str] | None = None) -> dict[str, Subscription]:
    """Register streams for updates (``POST streamsets/updates``, as many per request as the URL
    allows). A stream the server does not register raises PiError, or, with ``errors``, is left
    out and its message kept there."""
    found: dict[str, Subscription] = {}
    for group in client.url_groups(list(dict.fromkeys(web_ids))):
        query = "&".join(f"webId={quote(w, safe='')}" for w in group)
        for item in decode(client.transport.post(f"streamsets/updates?{query}"), Registrations).Items:
            if item.LatestMarker:
                found[item.Source] = Subscription(item.Source, item.LatestMarker, cursor, item.SourceName)
            elif errors is None:
                raise PiError(f"Registering {item.Source} for updates failed: {item.Status} {item.Exception}")
            else:
                errors[item.Source] = f"registering for updates failed: {item.Status} {item.Exception}"
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
    found = changes_since(client, subscriptions)
    subs, errors, lost = found.subscriptions, found.errors, found.recovered
    tables = [found.events] if found.events.num_rows else []
    if lost:
        tables.append(_recover(client, subs, lost, errors))
    events = pa.concat_tables(tables) if tables else schemas.UPDATES.empty_table()
    return UpdatesResult(events, subs, lost, errors)


def changes_since(client: PiClient, subscriptions: Mapping[str, Subscription]) -> UpdatesResult:
    """Every change since each subscription's marker, as :func:`poll` asks them, without
    recovering lost markers: ``recovered`` lists the streams whose marker the server no longer
    has (their subscriptions are unchanged), for a caller that catches up its own way."""
    subs = dict(subscriptions)
    errors: dict[str, str] = {}
    events, lost = _ask(client, subs, errors)
    return UpdatesResult(events, subs, lost, errors)


def _ask(client: PiClient, subs: dict[str, Subscription], errors: dict[str, str]) -> tuple[pa.Table, list[str]]:
    """Ask every marker of ``subs`` for its changes: the events, the streams whose marker the
    server no longer has; ``subs`` move to the new markers and cursors, ``errors`` gain the rest."""
    web_id_of = {s.marker: w for w, s in subs.items()}
    groups = {f"group {i}": g for i, g in enumerate(client.url_groups([s.marker for s in subs.values()]))}
    replies = _updates_replies(client, groups)
    retry = {f"marker {m}": [m] for key, group in groups.items() if not replies[key].ok and len(group) > 1
             for m in group}
    replies.update(_updates_replies(client, retry))
    groups = {**{k: g for k, g in groups.items() if replies[k].ok or len(g) == 1}, **retry}
    streams, lost = [], []
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
        stamped = frozenset(w for w, s in subs.items() if s.point_type == "Timestamp")
        events = values_table(streams, stamped, with_action=True) if streams else schemas.UPDATES.empty_table()
    if events.num_rows:
        for web_id, newest in _latest_by_stream(events).items():
            subs[web_id] = replace(subs[web_id], cursor=max(subs[web_id].cursor, newest))
    return events, lost


def _updates_replies(client: PiClient, groups: Mapping[str, list[str]]) -> dict[str, SubReply]:
    return client.batch({key: "streamsets/updates?" + "&".join(f"marker={quote(m, safe='')}" for m in markers)
                         for key, markers in groups.items()})


def _latest_by_stream(events: pa.Table) -> dict[str, int]:
    grouped = events.group_by("web_id").aggregate([("timestamp", "max")])
    return dict(zip(grouped["web_id"].to_pylist(),
                    (t.value for t in grouped["timestamp_max"])))


def _recover(client: PiClient, subs: dict[str, Subscription], lost: list[str], errors: dict[str, str]) -> pa.Table:
    """Register lost streams again, re-read their recorded values from each cursor, then take the
    changes the new markers saw meanwhile that the re-read does not show."""
    cursors = {w: subs[w].cursor for w in lost}
    fresh = register(client, lost, 0)
    values, failed = recorded_since(client, [Tag(w, subs[w].name, subs[w].point_type) for w in lost], cursors)
    errors.update(failed)
    latest = _latest_by_stream(values) if values.num_rows else {}
    for web_id in lost:
        subs[web_id] = replace(subs[web_id], marker=fresh[web_id].marker,
                               cursor=max(subs[web_id].cursor, latest.get(web_id, subs[web_id].cursor)))
    caught_up = {w: subs[w] for w in lost if w not in failed}
    if not caught_up:
        return values
    # A marker lost again at once (a server that keeps none) stays: the next poll recovers it.
    meanwhile, _ = _ask(client, caught_up, errors)
    subs.update(caught_up)
    return pa.concat_tables([values, _not_shown(meanwhile, values, cursors)])


#: What a value is, apart from its ordinal (which a re-read and an event may count differently).
_CONTENT = ("web_id", "timestamp", "value_double", "value_string", "value_bool", "value_timestamp", "state_name",
            "state_code", "is_system", "error", "good", "questionable", "substituted", "annotated")


def _not_shown(events: pa.Table, reread: pa.Table, cursors: Mapping[str, int]) -> pa.Table:
    """The ``events`` a re-read from ``cursors`` does not already show: an Add or Update whose
    value the re-read holds is dropped (once per value it holds), and so is a Delete, at or after
    the cursor, of a value the re-read does not hold (it went before the re-read; it never
    landed). Changes before a cursor are outside the re-read: kept."""
    if not events.num_rows:
        return events
    shown = Counter(_contents(reread.filter(pc.is_in(reread["web_id"], pc.unique(events["web_id"])))))
    stamps = events["timestamp"].cast(pa.int64()).to_pylist()
    keep = []
    for value, action, web_id, stamp in zip(_contents(events), events["action"].to_pylist(),
                                            events["web_id"].to_pylist(), stamps):
        inside = stamp >= cursors.get(web_id, 0)
        if action == "Delete":
            keep.append(not inside or shown[value] > 0)
        elif inside and shown[value] > 0:
            shown[value] -= 1
            keep.append(False)
        else:
            keep.append(True)
    return events.filter(pa.array(keep, pa.bool_()))


def _contents(values: pa.Table) -> list[tuple]:
    """Each value's _CONTENT as a tuple (the timestamp as exact nanoseconds)."""
    columns = [values[c].cast(pa.int64()) if c == "timestamp" else values[c] for c in _CONTENT]
    return list(zip(*(c.to_pylist() for c in columns)))


def horizon(server_reached_ns: int = 0) -> int:
    """An end beyond the server's now: a read up to it is "every value so far".

    Parameters
    ----------
    server_reached_ns : int
        A time the server's clock is known to have reached (a plan's end, a stream's newest
        value), in ns since the epoch. A server whose clock runs ahead of this machine's is
        covered by it.

    Returns
    -------
    int
        A day past the later of this machine's clock and ``server_reached_ns``.
    """
    return max(time.time_ns(), server_reached_ns) + 86_400 * NS_PER_SECOND


def recorded_since(client: PiClient, tags: Iterable[Tag], cursors: Mapping[str, int]
                   ) -> tuple[pa.Table, dict[str, str]]:
    """Every recorded value of ``tags`` from each one's cursor (included) to the server's now, as
    events with the action "Add" (schemas.UPDATES), and the errors per stream: how a stream whose
    updates were lost (an expired marker, a closed channel) catches up."""
    end = horizon(max(cursors.values(), default=0))
    result = read_recorded(client, list(tags), 0, end, cursors=cursors)
    values = result.values
    events = values.append_column(pa.field("action", pa.string(), nullable=False),
                                  pa.array(["Add"] * values.num_rows, pa.string())).cast(schemas.UPDATES)
    return events, result.errors
