"""The PI Web API resources of the simulator, independent of HTTP transport.

:meth:`PiWebApi.handle` takes a method, a path below ``/piwebapi``, query parameters and a body,
and returns a :class:`Reply`. The HTTP server and the batch controller both call it, so a
sub-request inside a batch behaves exactly like the same request sent alone.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .clock import Clock
from .config import PlantConfig, ServerConfig
from .pitime import AF_MAX_TIME, TimeStringError, format_tick, parse_duration, parse_time
from .plant import (ASSET_DATABASE_NAME, ASSET_SERVER_NAME, DATA_SERVER_NAME, Attribute, Element, EventFrame,
                    Plant, Point, build_plant)
from .render import FieldSelection, value_objects
from . import signal
from .series import NUMBER, SeriesModel, Values

JSON = "application/json; charset=utf-8"


class ApiError(Exception):
    """A PI Web API error reply: a status and the messages of ``{"Errors": [...]}``."""

    def __init__(self, status: int, *messages: str):
        super().__init__(messages[0] if messages else str(status))
        self.status = status
        self.messages = list(messages)


@dataclass
class Reply:
    status: int
    chunks: list = field(default_factory=list)  # bytes-like pieces of the JSON body
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, document, status: int = 200) -> "Reply":
        return cls(status, [json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()])

    @classmethod
    def error(cls, status: int, *messages: str) -> "Reply":
        return cls.json({"Errors": list(messages)}, status)

    def body(self) -> bytes:
        return b"".join(bytes(c) if isinstance(c, memoryview) else c for c in self.chunks)

    @property
    def length(self) -> int:
        return sum(len(c) for c in self.chunks)


class Query:
    """Query parameters with case-insensitive names (as PI Web API treats them)."""

    def __init__(self, params: dict[str, list[str]]):
        self._params: dict[str, list[str]] = {}
        for name, values in params.items():
            self._params.setdefault(name.lower(), []).extend(values)

    @classmethod
    def from_url(cls, query: str) -> "Query":
        return cls(parse_qs(query, keep_blank_values=True))

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._params.get(name.lower())
        return values[-1] if values else default

    def all(self, name: str) -> list[str]:
        return self._params.get(name.lower(), [])

    def integer(self, name: str, default: int, minimum: int = 0) -> int:
        text = self.get(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise ApiError(400, f"The value '{text}' is not valid for parameter '{name}'.") from None
        if value < minimum:
            raise ApiError(400, f"Parameter '{name}' must be at least {minimum}.")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        text = self.get(name)
        if text is None or text == "":
            return default
        if text.lower() not in ("true", "false"):
            raise ApiError(400, f"The value '{text}' is not valid for parameter '{name}'; expected true or false.")
        return text.lower() == "true"


Handler = Callable[["PiWebApi", re.Match, Query, bytes], Reply]
_ROUTES: list[tuple[str, re.Pattern, Handler]] = []


def route(method: str, pattern: str):
    def register(function: Handler) -> Handler:
        _ROUTES.append((method, re.compile(pattern + r"/?$", re.IGNORECASE), function))
        return function
    return register


SEARCH_MODES = ("None", "Overlapped", "Inclusive", "StartInclusive", "EndInclusive", "InProgress",
                "BackwardFromStartTime", "ForwardFromStartTime", "BackwardFromEndTime", "ForwardFromEndTime",
                "BackwardInProgress", "ForwardInProgress")
SUMMARY_TYPES = ("Total", "Average", "Minimum", "Maximum", "Range", "StdDev", "PopulationStdDev", "Count",
                 "PercentGood")


class PiWebApi:
    """The simulated PI Web API: plant, clock, stream-update markers and the resource handlers."""

    def __init__(self, plant_config: PlantConfig | None = None, server_config: ServerConfig | None = None,
                 clock: Clock | None = None):
        self.plant_config = plant_config or PlantConfig()
        self.server_config = server_config or ServerConfig()
        self.plant: Plant = build_plant(self.plant_config)
        self.series = SeriesModel(self.plant_config)
        self.clock = clock or Clock()
        self.base_url = "https://localhost/piwebapi"
        self._markers: dict[str, tuple[str, int, float]] = {}  # marker -> (web id, since, created)
        self._marker_lock = threading.Lock()
        self._flaky_failures: dict[str, int] = {}
        #: Requests and batch sub-requests refused for a count above MaxReturnedItemsPerCall.
        self.refused_counts = 0
        self.started = time.monotonic()

    # ---- dispatch -------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: Query, body: bytes = b"") -> Reply:
        path = path.strip("/")
        for route_method, pattern, function in _ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                try:
                    return function(self, match, query, body)
                except ApiError as error:
                    return Reply.error(error.status, *error.messages)
                except TimeStringError as error:
                    return Reply.error(400, str(error))
        if any(p.match(path) for _, p, _ in _ROUTES):
            return Reply.error(405, f"The requested resource does not support http method '{method}'.")
        return Reply.error(404, f"No resource was found that matches the request URI '{path}'.")

    def now(self) -> int:
        return self.clock.now()

    # ---- lookups --------------------------------------------------------------------------
    def lookup(self, web_id: str, *kinds: type):
        found = self.plant.by_web_id.get(web_id)
        if found is None:
            if not re.fullmatch(r"[A-Za-z0-9_\-]{6,}", web_id):
                raise ApiError(400, f"Unknown or invalid WebID format: '{web_id}'.")
            raise ApiError(404, f"The specified object was not found. WebId: '{web_id}'.")
        if kinds and not isinstance(found, kinds):
            raise ApiError(400, f"The WebID '{web_id}' does not identify an object of the expected type.")
        return found

    def stream_point(self, web_id: str) -> tuple[Point | None, Attribute | None]:
        """A stream is a PI point, or an attribute (tag-backed or static)."""
        found = self.lookup(web_id, Point, Attribute)
        if isinstance(found, Point):
            return found, None
        return found.point, found

    def series_point(self, web_id: str) -> tuple[Point, Attribute | None]:
        """The PI point behind a stream that must have time series (409 for a static attribute)."""
        point, attribute = self.stream_point(web_id)
        if point is None:
            raise ApiError(409, f"The attribute '{attribute.path}' does not have a time series data reference.")
        self.check_failing(point)
        return point, attribute

    def check_failing(self, point: Point) -> None:
        if point.name in self.server_config.failing_tags:
            raise ApiError(500, f"[-11091] Failed to read PI Point '{point.name}': Event collection is corrupt.")
        if point.name in self.server_config.flaky_tags:
            with self._marker_lock:
                failures = self._flaky_failures[point.name] = self._flaky_failures.get(point.name, 0) + 1
            if failures <= self.server_config.flaky_failures:
                raise ApiError(503, f"The PI Data Archive is busy reading '{point.name}'; try again.")

    def times(self, query: Query, default_start: str, default_end: str) -> tuple[int, int]:
        now = self.now()
        return (parse_time(query.get("startTime", default_start) or default_start, now),
                parse_time(query.get("endTime", default_end) or default_end, now))

    def max_count(self, query: Query, streams: int = 1) -> int:
        limit = self.server_config.max_returned_items_per_call
        count = query.integer("maxCount", 1000, minimum=1)
        if count > limit or count * streams > limit:
            self.refuse_count(limit)
        return count

    def refuse_count(self, limit: int) -> None:
        """Raise the 400 of a count above MaxReturnedItemsPerCall (and count it)."""
        with self._marker_lock:
            self.refused_counts += 1
        raise ApiError(400, f"Parameter 'maxCount' is greater than the maximum allowed ({limit}).")

    def page(self, items: list, query: Query) -> list:
        start = query.integer("startIndex", 0)
        count = query.integer("maxCount", 1000, minimum=1)
        limit = self.server_config.max_returned_items_per_call
        if count > limit:
            self.refuse_count(limit)
        return items[start:start + count]

    def listing(self, items: list[dict], query: Query) -> Reply:
        select = FieldSelection.parse(query.get("selectedFields"))
        return Reply.json(select.filter({"Links": {}, "Items": items}))

    # ---- values ---------------------------------------------------------------------------
    def render_streams(self, entries: list[tuple[dict, Point | None, Values | None]], select: FieldSelection,
                       wrap_items: bool = True) -> list:
        """JSON chunks for stream items: each a header dict plus its values rendered in bulk."""
        item_select = select.scope("Items") if wrap_items else select
        value_select = item_select.scope("Items")
        rendered = value_objects([(p, v) for _, p, v in entries if p is not None and v is not None], value_select)
        chunks: list = [b'{"Links":{},"Items":[' if wrap_items else b""]
        r = iter(rendered)
        for i, (header, point, values) in enumerate(entries):
            header = item_select.filter(header)
            head = json.dumps(header, ensure_ascii=False, separators=(",", ":"))[:-1]
            keep_values = item_select.keeps("Items")
            chunks.append((b"," if i else b"") + head.encode()
                          + ((b',' if len(header) else b"") + b'"Items":[' if keep_values else b""))
            if values is not None and point is not None:
                body = next(r)
                if keep_values:
                    chunks.append(body)
            chunks.append(b"]}" if keep_values else b"}")
        chunks.append(b"]}" if wrap_items else b"")
        return chunks

    def stream_header(self, point: Point, attribute: Attribute | None) -> dict:
        source = attribute or point
        return {"WebId": source.web_id, "Name": source.name, "Path": source.path,
                "Links": {"Source": f"{self.base_url}/{'attributes' if attribute else 'points'}/{source.web_id}"},
                "UnitsAbbreviation": point.units}

    def single_value(self, point: Point | None, attribute: Attribute | None, values: Values | None,
                     select: FieldSelection) -> bytes:
        if point is None:  # a static attribute
            document = {"Timestamp": "1970-01-01T00:00:00Z", "Value": attribute.static_value,
                        "UnitsAbbreviation": attribute.units, "Good": True, "Questionable": False,
                        "Substituted": False, "Annotated": False}
            return json.dumps(select.filter(document), ensure_ascii=False, separators=(",", ":")).encode()
        if values is None or len(values) == 0:
            document = {"Timestamp": format_tick(self.now()), "Value": {"Name": "No Data", "Value": 248, "IsSystem": True},
                        "UnitsAbbreviation": point.units, "Good": False, "Questionable": False,
                        "Substituted": False, "Annotated": False}
            return json.dumps(select.filter(document), separators=(",", ":")).encode()
        return bytes(value_objects([(point, values)], select)[0])


# ---- root and system ----------------------------------------------------------------------
@route("GET", r"")
def _root(api: PiWebApi, m, q, b) -> Reply:
    base = api.base_url
    return Reply.json({"Links": {"Self": f"{base}/", "AssetServers": f"{base}/assetservers",
                                 "DataServers": f"{base}/dataservers", "System": f"{base}/system",
                                 "Search": f"{base}/search"}})


@route("GET", r"system")
def _system(api: PiWebApi, m, q, b) -> Reply:
    return Reply.json({"Links": {}, "ProductTitle": "PI Web API", "ProductVersion": "1.19.0.0 (simulated)",
                       "Simulator": True})


@route("GET", r"system/status")
def _system_status(api: PiWebApi, m, q, b) -> Reply:
    return Reply.json({"UpTimeInMinutes": round((time.monotonic() - api.started) / 60, 1), "State": "Running",
                       "CacheInstances": 0, "ServerTime": format_tick(api.now())})


@route("GET", r"\.well-known/openid-configuration")
def _openid(api: PiWebApi, m, q, b) -> Reply:
    issuer = api.base_url.rsplit("/piwebapi", 1)[0] + "/simulator/identity"
    return Reply.json({"issuer": issuer, "token_endpoint": f"{issuer}/connect/token",
                       "grant_types_supported": ["client_credentials"]})


# ---- data servers and points ----------------------------------------------------------------
def _data_server(api: PiWebApi) -> dict:
    web_id = Plant.data_server_web_id()
    base = api.base_url
    return {"WebId": web_id, "Id": str(Plant.data_server_id()), "Name": DATA_SERVER_NAME,
            "Path": f"\\\\PIServers[{DATA_SERVER_NAME}]", "IsConnected": True, "ServerVersion": "3.4.445.688",
            "Links": {"Self": f"{base}/dataservers/{web_id}", "Points": f"{base}/dataservers/{web_id}/points"}}


def _check_data_server(api: PiWebApi, web_id: str) -> None:
    if web_id != Plant.data_server_web_id():
        api.lookup(web_id)  # raises the right 400/404
        raise ApiError(400, f"The WebID '{web_id}' does not identify a data server.")


@route("GET", r"dataservers")
def _dataservers(api: PiWebApi, m, q, b) -> Reply:
    return api.listing([_data_server(api)], q)


@route("GET", r"dataservers/(?P<id>[^/]+)")
def _dataserver(api: PiWebApi, m, q, b) -> Reply:
    _check_data_server(api, m["id"])
    return Reply.json(FieldSelection.parse(q.get("selectedFields")).filter(_data_server(api)))


def wildcard(pattern: str) -> re.Pattern:
    """PI name filters: ``*`` any run, ``?`` one character, case-insensitive."""
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE)


@route("GET", r"dataservers/(?P<id>[^/]+)/points")
def _points(api: PiWebApi, m, q, b) -> Reply:
    _check_data_server(api, m["id"])
    name_filter = wildcard(q.get("nameFilter", "*") or "*")
    matches = [p for p in api.plant.points if name_filter.match(p.name)]
    return api.listing([p.to_json(api.base_url) for p in api.page(matches, q)], q)


@route("GET", r"points")
def _point_by_path(api: PiWebApi, m, q, b) -> Reply:
    path = q.get("path")
    if not path:
        raise ApiError(400, "The 'path' parameter is required.")
    point = api.plant.points_by_path.get(path.upper())
    if point is None:
        raise ApiError(404, f"PI Point not found '{path}'.")
    return Reply.json(FieldSelection.parse(q.get("selectedFields")).filter(point.to_json(api.base_url)))


@route("GET", r"points/(?P<id>[^/]+)")
def _point(api: PiWebApi, m, q, b) -> Reply:
    point = api.lookup(m["id"], Point)
    return Reply.json(FieldSelection.parse(q.get("selectedFields")).filter(point.to_json(api.base_url)))


# ---- streams --------------------------------------------------------------------------------
@route("GET", r"streams/(?P<id>[^/]+)/recorded")
def _recorded(api: PiWebApi, m, q, b) -> Reply:
    point, attribute = api.series_point(m["id"])
    start, end = api.times(q, "*-1d", "*")
    values, _ = api.series.recorded(point, start, end, api.now(), api.max_count(q))
    select = FieldSelection.parse(q.get("selectedFields"))
    body = value_objects([(point, values)], select.scope("Items"))[0]
    head = {"Links": {}} if select.keeps("Links") else {}
    prefix = json.dumps(head, separators=(",", ":"))[:-1]
    if select.keeps("Items"):
        prefix += ("," if head else "") + '"Items":['
        return Reply(200, [prefix.encode(), body, b'],"UnitsAbbreviation":'
                           + json.dumps(point.units).encode() + b"}"])
    return Reply(200, [prefix.encode() + b"}"])


def _snapshot(api: PiWebApi, web_id: str, q: Query, at: int | None = None) -> bytes:
    point, attribute = api.stream_point(web_id)
    select = FieldSelection.parse(q.get("selectedFields"))
    if point is None:
        return api.single_value(None, attribute, None, select)
    api.check_failing(point)
    return api.single_value(point, attribute, api.series.latest(point, api.now(), at), select)


@route("GET", r"streams/(?P<id>[^/]+)/value")
def _value(api: PiWebApi, m, q, b) -> Reply:
    time_text = q.get("time")
    at = parse_time(time_text, api.now()) if time_text else None
    return Reply(200, [_snapshot(api, m["id"], q, at)])


@route("GET", r"streams/(?P<id>[^/]+)/end")
def _end(api: PiWebApi, m, q, b) -> Reply:
    return Reply(200, [_snapshot(api, m["id"], q)])


def _all_recorded(api: PiWebApi, point: Point, start: int, end: int) -> Values:
    """Every recorded value in [start, end]: what interpolation and summaries are computed from,
    whatever MaxReturnedItemsPerCall (which bounds what a reply returns, not what PI reads)."""
    low, high = api.series.event_range(point, start, end)
    values, _ = api.series.recorded(point, start, end, api.now(), 4 * (high - low) + 16)
    return values


def _interpolate(api: PiWebApi, point: Point, start: int, end: int, interval: int) -> Values:
    """Values on a regular grid from start to end inclusive (signal.interpolate)."""
    if interval <= 0:
        raise ApiError(400, "The interval must be positive.")
    grid = np.arange(start, end + 1, interval, dtype=np.int64)
    if len(grid) > api.server_config.max_returned_items_per_call:
        raise ApiError(400, f"The number of intervals is greater than the maximum allowed "
                            f"({api.server_config.max_returned_items_per_call}).")
    reach = 400 * point.interval_ticks  # the value governing start, and the one after end
    values = _all_recorded(api, point, start - reach, end + reach)
    return signal.interpolate(values, grid, _is_step(point)) if len(values) else values


def _is_step(point: Point) -> bool:
    return not point.is_numeric or point.point_type == "Int32"


@route("GET", r"streams/(?P<id>[^/]+)/interpolated")
def _interpolated(api: PiWebApi, m, q, b) -> Reply:
    point, attribute = api.series_point(m["id"])
    start, end = api.times(q, "*-1d", "*")
    values = _interpolate(api, point, start, end, parse_duration(q.get("interval", "1h") or "1h"))
    select = FieldSelection.parse(q.get("selectedFields"))
    body = value_objects([(point, values)], select.scope("Items"))[0]
    return Reply(200, [b'{"Links":{},"Items":[', body, b'],"UnitsAbbreviation":' + json.dumps(point.units).encode() + b"}"])


def summarize(api: PiWebApi, point: Point, start: int, end: int, duration: int, types: list[str],
              basis: str) -> list[dict]:
    """Summary values per interval of [start, end). TimeWeighted: Average, Total and PercentGood
    over the signal between values (signal.time_weighted); EventWeighted: statistics of the
    recorded numbers. Minimum, Maximum, Range, the deviations and Count are always of the values
    recorded in the interval. An interval without a good number has Calc Failed where a number
    is needed."""
    if end <= start:
        raise ApiError(400, "The end time must be after the start time for summaries.")
    if duration <= 0:
        raise ApiError(400, "The summary duration must be positive.")
    edges = np.arange(start, end, duration, dtype=np.int64)
    if len(edges) > api.server_config.max_returned_items_per_call:
        raise ApiError(400, "The number of intervals is greater than the maximum allowed.")
    reach = 400 * point.interval_ticks
    values = _all_recorded(api, point, start - reach, end + reach)
    weighted = signal.time_weighted(values, edges, end, _is_step(point)) if basis == "TimeWeighted" else None
    out: dict[str, list[dict]] = {t: [] for t in types}
    for k, left in enumerate(edges.tolist()):
        right = min(left + duration, end)
        inside = (values.ticks >= left) & (values.ticks < right)
        good = inside & (values.kind == NUMBER)
        numbers = values.number[good]
        stats: dict[str, float | None] = {}
        count = int(inside.sum())
        if weighted is not None:
            area, good_ticks = weighted[0][k], weighted[1][k]
            if good_ticks:
                stats["Average"] = area / float(good_ticks)
                stats["Total"] = area / float(signal.TICKS_PER_DAY)
            stats["PercentGood"] = 100.0 * float(good_ticks) / float(right - left)
        else:
            if len(numbers):
                stats["Average"] = float(numbers.mean())
                stats["Total"] = float(numbers.sum())
            stats["PercentGood"] = 100.0 * int(good.sum()) / count if count else 0.0
        if len(numbers):
            stats.update(Minimum=float(numbers.min()), Maximum=float(numbers.max()),
                         Range=float(numbers.max() - numbers.min()),
                         StdDev=float(numbers.std(ddof=1)) if len(numbers) > 1 else 0.0,
                         PopulationStdDev=float(numbers.std(ddof=0)))
        stats["Count"] = float(count)
        for summary_type in types:
            number = stats.get(summary_type)
            value = number if number is not None else {"Name": "Calc Failed", "Value": 249, "IsSystem": True}
            out[summary_type].append({"Type": summary_type, "Value": {
                "Timestamp": format_tick(left), "Value": value, "UnitsAbbreviation": point.units,
                "Good": number is not None, "Questionable": False, "Substituted": False, "Annotated": False}})
    return [item for t in types for item in out[t]]


def _summary_args(q: Query) -> tuple[list[str], str, int | None]:
    requested = q.all("summaryType") or ["Total"]
    types: list[str] = []
    for text in requested:
        for name in text.split(","):
            name = name.strip()
            if name.lower() == "all":
                types.extend(SUMMARY_TYPES)
            elif name.lower() in (t.lower() for t in SUMMARY_TYPES):
                types.append(next(t for t in SUMMARY_TYPES if t.lower() == name.lower()))
            else:
                raise ApiError(400, f"The summary type '{name}' is not valid; expected one of {', '.join(SUMMARY_TYPES)}, All.")
    basis = q.get("calculationBasis", "TimeWeighted") or "TimeWeighted"
    if basis not in ("TimeWeighted", "EventWeighted"):
        raise ApiError(400, f"The calculation basis '{basis}' is not supported; expected TimeWeighted or EventWeighted.")
    duration = q.get("summaryDuration")
    return list(dict.fromkeys(types)), basis, parse_duration(duration) if duration else None


@route("GET", r"streams/(?P<id>[^/]+)/summary")
def _summary(api: PiWebApi, m, q, b) -> Reply:
    point, attribute = api.series_point(m["id"])
    start, end = api.times(q, "*-1d", "*")
    types, basis, duration = _summary_args(q)
    items = summarize(api, point, start, end, duration or (end - start), types, basis)
    return Reply.json({"Links": {}, "Items": items})


# ---- stream sets ------------------------------------------------------------------------------
def _web_ids(q: Query) -> list[str]:
    web_ids = q.all("webId")
    if not web_ids:
        raise ApiError(400, "At least one 'webId' parameter is required.")
    return web_ids


def _adhoc_streams(api: PiWebApi, q: Query) -> list[tuple[Point, Attribute | None]]:
    """The time series streams named by repeated ``webId`` parameters."""
    return [api.series_point(w) for w in _web_ids(q)]


@route("GET", r"streamsets/recorded")
def _streamset_recorded(api: PiWebApi, m, q, b) -> Reply:
    streams = _adhoc_streams(api, q)
    max_count = api.max_count(q, len(streams))
    start, end = api.times(q, "*-1d", "*")
    now = api.now()
    entries = []
    for point, attribute in streams:
        values, _ = api.series.recorded(point, start, end, now, max_count)
        entries.append((api.stream_header(point, attribute), point, values))
    return Reply(200, api.render_streams(entries, FieldSelection.parse(q.get("selectedFields"))))


@route("GET", r"streamsets/interpolated")
def _streamset_interpolated(api: PiWebApi, m, q, b) -> Reply:
    start, end = api.times(q, "*-1d", "*")
    interval = parse_duration(q.get("interval", "1h") or "1h")
    entries = []
    for point, attribute in _adhoc_streams(api, q):
        entries.append((api.stream_header(point, attribute), point, _interpolate(api, point, start, end, interval)))
    return Reply(200, api.render_streams(entries, FieldSelection.parse(q.get("selectedFields"))))


@route("GET", r"streamsets/summary")
def _streamset_summary(api: PiWebApi, m, q, b) -> Reply:
    start, end = api.times(q, "*-1d", "*")
    types, basis, duration = _summary_args(q)
    items = []
    for point, attribute in _adhoc_streams(api, q):
        header = api.stream_header(point, attribute)
        header["Items"] = summarize(api, point, start, end, duration or (end - start), types, basis)
        items.append(header)
    return Reply.json(FieldSelection.parse(q.get("selectedFields")).filter({"Links": {}, "Items": items}))


def _streamset_values(api: PiWebApi, streams: list[tuple[Point | None, Attribute | None]], q: Query) -> Reply:
    select = FieldSelection.parse(q.get("selectedFields")).scope("Items")
    value_select = select.scope("Value")
    chunks = [b'{"Links":{},"Items":[']
    now = api.now()
    for i, (point, attribute) in enumerate(streams):
        source = attribute or point
        header = select.filter({"WebId": source.web_id, "Name": source.name, "Path": source.path, "Links": {}})
        if point is not None:
            api.check_failing(point)
        value = api.single_value(point, attribute, api.series.latest(point, now) if point else None, value_select)
        head = json.dumps(header, ensure_ascii=False, separators=(",", ":"))[:-1]
        chunks.append((b"," if i else b"") + head.encode() + (b"," if header else b"") + b'"Value":' + value + b"}")
    chunks.append(b"]}")
    return Reply(200, chunks)


@route("GET", r"streamsets/value")
def _streamset_value(api: PiWebApi, m, q, b) -> Reply:
    return _streamset_values(api, [api.stream_point(w) for w in _web_ids(q)], q)


@route("GET", r"streamsets/(?P<id>[^/]+)/value")
def _owner_values(api: PiWebApi, m, q, b) -> Reply:
    owner = api.lookup(m["id"], Element, EventFrame)
    return _streamset_values(api, [(a.point, a) for a in owner.attributes], q)


# ---- stream updates -----------------------------------------------------------------------------
def _register(api: PiWebApi, web_id: str) -> dict:
    point, attribute = api.stream_point(web_id)
    source = attribute or point
    if point is None:
        raise ApiError(409, f"The WebID '{web_id}' represents a static attribute.")
    marker = f"{uuid.uuid4().hex}_0"
    with api._marker_lock:
        api._markers[marker] = (web_id, api.now(), time.monotonic())
    return {"Source": web_id, "SourceName": source.name, "SourcePath": source.path, "Status": "Succeeded",
            "Exception": None, "LatestMarker": marker}


@route("POST", r"streams/(?P<id>[^/]+)/updates")
def _register_stream(api: PiWebApi, m, q, b) -> Reply:
    return Reply.json(_register(api, m["id"]))


@route("POST", r"streamsets/updates")
def _register_streamset(api: PiWebApi, m, q, b) -> Reply:
    return Reply.json({"Items": [_register(api, w) for w in _web_ids(q)], "Links": {}})


def _take_marker(api: PiWebApi, marker: str) -> tuple[Point, Attribute | None, str, int, int]:
    if not re.fullmatch(r"[0-9a-f]{32}_\d+", marker):
        raise ApiError(409, f"Invalid marker supplied: '{marker}'.")
    with api._marker_lock:
        entry = api._markers.get(marker)
        if entry is None or time.monotonic() - entry[2] > api.server_config.marker_ttl:
            api._markers.pop(marker, None)
            raise ApiError(404, "Cache not found: the updates for this marker are no longer available.")
        web_id, since, _ = entry
        now = api.now()
        base, serial = marker.rsplit("_", 1)
        latest = f"{base}_{int(serial) + 1}"
        api._markers[latest] = (web_id, max(now, since), time.monotonic())
    point, attribute = api.stream_point(web_id)
    return point, attribute, latest, since, max(now, since)


def _updates_items(api: PiWebApi, markers: list[str], select: FieldSelection) -> list:
    """The JSON of each marker's ``Items`` entry, its events rendered in one pass for all markers."""
    found = []
    for marker in markers:
        point, attribute, latest, since, now = _take_marker(api, marker)
        api.check_failing(point)
        values, actions, _ = api.series.changes(point, since, now)
        source = attribute or point
        head = {"Source": source.web_id, "SourceName": source.name, "SourcePath": source.path,
                "RequestedMarker": marker, "LatestMarker": latest, "Status": "Succeeded", "Exception": None}
        found.append((head, point, values, actions))
    bodies = value_objects([(point, values) for _, point, values, _ in found], select.scope("Events"),
                           np.concatenate([actions for *_, actions in found]))
    chunks: list = []
    for (head, *_), body in zip(found, bodies):
        text = json.dumps(head, ensure_ascii=False, separators=(",", ":"))[:-1]
        chunks.append([text.encode() + b',"Events":[', body, b"]}"])
    return chunks


@route("GET", r"streams/updates/(?P<marker>[^/]+)")
def _updates(api: PiWebApi, m, q, b) -> Reply:
    return Reply(200, _updates_items(api, [m["marker"]], FieldSelection.parse(q.get("selectedFields")))[0])


@route("GET", r"streamsets/updates")
def _streamset_updates(api: PiWebApi, m, q, b) -> Reply:
    markers = q.all("marker")
    if not markers:
        raise ApiError(400, "At least one 'marker' parameter is required.")
    select = FieldSelection.parse(q.get("selectedFields")).scope("Items")
    chunks: list = [b'{"Links":{},"Items":[']
    for i, item in enumerate(_updates_items(api, markers, select)):
        if i:
            chunks.append(b",")
        chunks.extend(item)
    chunks.append(b"]}")
    return Reply(200, chunks)


# ---- asset framework ------------------------------------------------------------------------------
def _asset_server(api: PiWebApi) -> dict:
    web_id = Plant.asset_server_web_id()
    return {"WebId": web_id, "Id": str(Plant.asset_server_id()), "Name": ASSET_SERVER_NAME,
            "Path": f"\\\\{ASSET_SERVER_NAME}", "IsConnected": True,
            "Links": {"Self": f"{api.base_url}/assetservers/{web_id}",
                      "Databases": f"{api.base_url}/assetservers/{web_id}/assetdatabases"}}


def _database(api: PiWebApi) -> dict:
    web_id = Plant.database_web_id()
    base = api.base_url
    return {"WebId": web_id, "Id": str(Plant.database_id()), "Name": ASSET_DATABASE_NAME,
            "Description": "Simulated plant", "Path": f"\\\\{ASSET_SERVER_NAME}\\{ASSET_DATABASE_NAME}",
            "Links": {"Self": f"{base}/assetdatabases/{web_id}", "Elements": f"{base}/assetdatabases/{web_id}/elements",
                      "ElementTemplates": f"{base}/assetdatabases/{web_id}/elementtemplates",
                      "EventFrames": f"{base}/assetdatabases/{web_id}/eventframes"}}


def _check_id(api: PiWebApi, web_id: str, expected: str, what: str) -> None:
    if web_id != expected:
        api.lookup(web_id)
        raise ApiError(400, f"The WebID '{web_id}' does not identify {what}.")


@route("GET", r"assetservers")
def _assetservers(api: PiWebApi, m, q, b) -> Reply:
    return api.listing([_asset_server(api)], q)


@route("GET", r"assetservers/(?P<id>[^/]+)")
def _assetserver(api: PiWebApi, m, q, b) -> Reply:
    _check_id(api, m["id"], Plant.asset_server_web_id(), "an asset server")
    return Reply.json(_asset_server(api))


@route("GET", r"assetservers/(?P<id>[^/]+)/assetdatabases")
def _databases(api: PiWebApi, m, q, b) -> Reply:
    _check_id(api, m["id"], Plant.asset_server_web_id(), "an asset server")
    return api.listing([_database(api)], q)


@route("GET", r"assetdatabases/(?P<id>[^/]+)")
def _database_route(api: PiWebApi, m, q, b) -> Reply:
    _check_id(api, m["id"], Plant.database_web_id(), "an asset database")
    return Reply.json(_database(api))


def _element_filter(elements: list[Element], q: Query) -> list[Element]:
    template = q.get("templateName")
    category = q.get("categoryName")
    name = wildcard(q.get("nameFilter", "*") or "*")
    return [e for e in elements
            if (not template or e.template.lower() == template.lower())
            and (not category or category.lower() in (c.lower() for c in e.categories))
            and name.match(e.name)]


def _descendants(element: Element) -> list[Element]:
    found, stack = [], list(reversed(element.children))
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(reversed(current.children))
    return found


@route("GET", r"assetdatabases/(?P<id>[^/]+)/elements")
def _database_elements(api: PiWebApi, m, q, b) -> Reply:
    _check_id(api, m["id"], Plant.database_web_id(), "an asset database")
    roots = [api.plant.root]
    candidates = [api.plant.root, *_descendants(api.plant.root)] if q.boolean("searchFullHierarchy", False) else roots
    return api.listing([e.to_json(api.base_url) for e in api.page(_element_filter(candidates, q), q)], q)


@route("GET", r"elements")
def _element_by_path(api: PiWebApi, m, q, b) -> Reply:
    path = q.get("path")
    if not path:
        raise ApiError(400, "The 'path' parameter is required.")
    element = next((e for e in api.plant.elements if e.path.lower() == path.lower()), None)
    if element is None:
        raise ApiError(404, f"Element not found '{path}'.")
    return Reply.json(FieldSelection.parse(q.get("selectedFields")).filter(element.to_json(api.base_url)))


@route("GET", r"elements/(?P<id>[^/]+)")
def _element(api: PiWebApi, m, q, b) -> Reply:
    element = api.lookup(m["id"], Element)
    return Reply.json(FieldSelection.parse(q.get("selectedFields")).filter(element.to_json(api.base_url)))


@route("GET", r"elements/(?P<id>[^/]+)/elements")
def _child_elements(api: PiWebApi, m, q, b) -> Reply:
    element = api.lookup(m["id"], Element)
    candidates = _descendants(element) if q.boolean("searchFullHierarchy", False) else element.children
    return api.listing([e.to_json(api.base_url) for e in api.page(_element_filter(candidates, q), q)], q)


@route("GET", r"elements/(?P<id>[^/]+)/attributes")
def _element_attributes(api: PiWebApi, m, q, b) -> Reply:
    element = api.lookup(m["id"], Element)
    if element.name in api.server_config.denied_elements:
        raise ApiError(403, f"Access to the attributes of '{element.path}' is denied by AF security for this identity.")
    return api.listing([a.to_json(api.base_url) for a in api.page(element.attributes, q)], q)


@route("GET", r"attributes/(?P<id>[^/]+)")
def _attribute(api: PiWebApi, m, q, b) -> Reply:
    attribute = api.lookup(m["id"], Attribute)
    return Reply.json(FieldSelection.parse(q.get("selectedFields")).filter(attribute.to_json(api.base_url)))


@route("GET", r"assetdatabases/(?P<id>[^/]+)/elementtemplates")
def _templates(api: PiWebApi, m, q, b) -> Reply:
    _check_id(api, m["id"], Plant.database_web_id(), "an asset database")
    items = []
    for template in api.plant.element_templates:
        web_id = Plant.template_web_id(template["Name"])
        items.append({"WebId": web_id, "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, template["Name"])),
                      "Name": template["Name"], "Description": f"{template['Name']} template",
                      "Path": f"\\\\{ASSET_SERVER_NAME}\\{ASSET_DATABASE_NAME}\\ElementTemplates[{template['Name']}]",
                      "AllowElementToExtend": True, "BaseTemplate": "", "InstanceType": template["InstanceType"],
                      "NamingPattern": "", "CategoryNames": template["Categories"],
                      "AttributeNames": template["Attributes"], "Links": {}})
    return api.listing(api.page(items, q), q)


# ---- event frames -------------------------------------------------------------------------------------
def frame_end(frame: EventFrame, now: int) -> int | None:
    """The frame's end as of ``now``: None while it is in progress."""
    return frame.planned_end_ticks if frame.planned_end_ticks <= now else None


def frame_json(api: PiWebApi, frame: EventFrame, now: int) -> dict:
    end = frame_end(frame, now)
    base = api.base_url
    acknowledged = frame.acknowledged_after_ticks is not None and frame.acknowledged_after_ticks <= now
    return {
        "WebId": frame.web_id, "Id": str(frame.id), "Name": frame.name, "Description": "",
        "Path": frame.path, "TemplateName": frame.template, "HasChildren": False,
        "CategoryNames": [], "ExtendedProperties": {},
        "StartTime": format_tick(frame.start_ticks), "EndTime": format_tick(end) if end is not None else AF_MAX_TIME,
        "Severity": frame.severity, "AcknowledgedBy": "operator" if acknowledged else "",
        "AcknowledgedDate": format_tick(frame.acknowledged_after_ticks) if acknowledged else "1970-01-01T00:00:00Z",
        "CanBeAcknowledged": frame.template == "Alarm", "IsAcknowledged": acknowledged,
        "IsAnnotated": frame.annotated, "IsLocked": end is not None, "AreValuesCaptured": end is not None,
        "RefElementWebIds": [e.web_id for e in frame.referenced_elements],
        "Links": {
            "Self": f"{base}/eventframes/{frame.web_id}",
            "Attributes": f"{base}/eventframes/{frame.web_id}/attributes",
            "EventFrames": f"{base}/eventframes/{frame.web_id}/eventframes",
            "Database": f"{base}/assetdatabases/{Plant.database_web_id()}",
            "ReferencedElements": f"{base}/eventframes/{frame.web_id}/referencedelements",
            "PrimaryReferencedElement": f"{base}/elements/{frame.primary_element.web_id}",
            "Template": f"{base}/elementtemplates/{Plant.template_web_id(frame.template)}",
            "Value": f"{base}/streamsets/{frame.web_id}/value",
        },
    }


def frame_matches(mode: str, start: int, end: int, frame_start: int, frame_end_: int | None, now: int) -> bool:
    """Whether a frame matches a search; ``frame_end_`` None means in progress (ends at now)."""
    fe = frame_end_ if frame_end_ is not None else now
    if mode == "None":
        return False
    if mode == "Overlapped":
        return frame_start <= end and fe >= start
    if mode == "Inclusive":
        return frame_start >= start and fe <= end and frame_end_ is not None
    if mode == "StartInclusive":
        return start <= frame_start <= end
    if mode == "EndInclusive":
        return frame_end_ is not None and start <= frame_end_ <= end
    if mode == "InProgress":
        return frame_end_ is None and frame_start <= end
    if mode == "BackwardFromStartTime":
        return frame_start <= start
    if mode == "ForwardFromStartTime":
        return frame_start >= start
    if mode == "BackwardFromEndTime":
        return frame_end_ is not None and frame_end_ <= start
    if mode == "ForwardFromEndTime":
        return frame_end_ is not None and frame_end_ >= start
    if mode == "BackwardInProgress":
        return frame_end_ is None and frame_start <= start
    if mode == "ForwardInProgress":
        return frame_end_ is None and frame_start >= start
    raise ApiError(400, f"The search mode '{mode}' is not valid; expected one of {', '.join(SEARCH_MODES)}.")


@route("GET", r"assetdatabases/(?P<id>[^/]+)/eventframes")
def _event_frames(api: PiWebApi, m, q, b) -> Reply:
    _check_id(api, m["id"], Plant.database_web_id(), "an asset database")
    now = api.now()
    mode_text = q.get("searchMode", "Overlapped") or "Overlapped"
    mode = next((s for s in SEARCH_MODES if s.lower() == mode_text.lower()), None)
    if mode is None:
        raise ApiError(400, f"The search mode '{mode_text}' is not valid; expected one of {', '.join(SEARCH_MODES)}.")
    start, end = api.times(q, "*-8h", "*")
    template = q.get("templateName")
    category = q.get("categoryName")
    name = wildcard(q.get("nameFilter", "*") or "*")
    severity = q.all("severity")
    referenced = wildcard(q.get("referencedElementNameFilter", "*") or "*")
    backward = mode.startswith("Backward")
    frames = [f for f in api.plant.event_frames
              if f.start_ticks <= now
              and frame_matches(mode, start, end, f.start_ticks, frame_end(f, now), now)
              and (not template or f.template.lower() == template.lower())
              and not category  # simulated frames carry no categories
              and (not severity or f.severity.lower() in (s.lower() for s in severity))
              and name.match(f.name)
              and any(referenced.match(e.name) for e in f.referenced_elements)]
    frames.sort(key=lambda f: (f.start_ticks, f.name), reverse=backward)
    return api.listing([frame_json(api, f, now) for f in api.page(frames, q)], q)


def _frame(api: PiWebApi, web_id: str) -> EventFrame:
    frame = api.lookup(web_id, EventFrame)
    if frame.start_ticks > api.now():
        raise ApiError(404, f"The specified object was not found. WebId: '{web_id}'.")
    return frame


@route("GET", r"eventframes/(?P<id>[^/]+)")
def _event_frame(api: PiWebApi, m, q, b) -> Reply:
    return Reply.json(FieldSelection.parse(q.get("selectedFields")).filter(frame_json(api, _frame(api, m["id"]), api.now())))


@route("GET", r"eventframes/(?P<id>[^/]+)/attributes")
def _frame_attributes(api: PiWebApi, m, q, b) -> Reply:
    frame = _frame(api, m["id"])
    return api.listing([a.to_json(api.base_url) for a in api.page(frame.attributes, q)], q)


@route("GET", r"eventframes/(?P<id>[^/]+)/referencedelements")
def _frame_elements(api: PiWebApi, m, q, b) -> Reply:
    frame = _frame(api, m["id"])
    return api.listing([e.to_json(api.base_url) for e in frame.referenced_elements], q)


# ---- batch -----------------------------------------------------------------------------------------------
@route("POST", r"batch")
def _batch(api: PiWebApi, m, q, body: bytes) -> Reply:
    from .batch import execute_batch

    return execute_batch(api, body)
