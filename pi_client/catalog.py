"""Discovery and the Asset Framework: data servers, PI points, AF servers, databases, the element
hierarchy, attributes (with the PI point each one reads) and element templates.

Lists are paged with ``startIndex``/``maxCount`` until a short page. Lookups of many objects by
path or WebId go through the batch controller; objects that are not found are reported in
``Lookup.errors`` with the server's message, not dropped.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote

import msgspec
import pyarrow as pa

from . import schemas
from .client import PiClient
from .decode import decode
from .errors import PiError, PiHttpError


class _Listing(msgspec.Struct):
    Items: list[dict[str, Any]] = []


@dataclass
class Lookup:
    """Objects found (an Arrow table) and, for the keys not found, the server's message."""

    table: pa.Table
    errors: dict[str, str] = field(default_factory=dict)


def pages(client: PiClient, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every item of a paged list resource. A page refused for its size (the server's
    MaxReturnedItemsPerCall) is asked again at the limit the server names."""
    start = 0
    while True:
        size = client.limits.list_page_size
        try:
            items = client.get(path, _Listing, params={**(params or {}), "startIndex": start, "maxCount": size}).Items
        except PiHttpError as error:
            if error.status == 400 and client.limits.learn(error.messages) and client.limits.list_page_size < size:
                continue
            raise
        yield from items
        if len(items) < size:
            return
        start += size


def _batch_items(client: PiClient, resource: Callable[[str, int, int], str], keys: Iterable[str],
                 listing: bool) -> tuple[list[tuple[str, dict]], dict[str, str]]:
    """(key, item) pairs for many single-object (or list) GETs, and the server's message by key
    for those that failed. ``resource(key, size, start)`` is the request of ``key``; for a list,
    ``size`` and ``start`` are its maxCount and startIndex: a full page is followed by the next,
    and a page refused for its size is asked again at the limit the server names."""
    found, errors = [], {}
    pending = {key: 0 for key in keys}  # key -> startIndex of its next page
    while pending:
        size = client.limits.list_page_size
        replies = client.batch({key: resource(key, size, start) for key, start in pending.items()})
        following = {}
        for key, reply in replies.items():
            if not reply.ok:
                refused = listing and reply.status == 400 and client.limits.learn(reply.messages())
                if refused and client.limits.list_page_size < size:
                    following[key] = pending[key]
                else:
                    errors[key] = reply.error
            elif listing:
                items = decode(reply.content, _Listing).Items
                found.extend((key, item) for item in items)
                if len(items) == size:
                    following[key] = pending[key] + size
            else:
                found.append((key, decode(reply.content, dict[str, Any])))
        pending = following
    return found, errors


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def _link_id(links: dict | None, name: str) -> str | None:
    """The WebId at the end of a ``Links`` URL (e.g. Links.Point -> the point's WebId)."""
    url = (links or {}).get(name)
    return url.rstrip("/").rsplit("/", 1)[-1] if url else None


# ---- data servers and points -------------------------------------------------------------------
def data_servers(client: PiClient) -> pa.Table:
    rows = [{"web_id": s["WebId"], "id": s.get("Id"), "name": s.get("Name"), "path": s.get("Path"),
             "is_connected": s.get("IsConnected"), "server_version": s.get("ServerVersion")}
            for s in client.get("dataservers", _Listing).Items]
    return _table(rows, schemas.DATA_SERVERS)


def find_data_server(client: PiClient, name: str | None = None) -> dict:
    """The data server named ``name`` (any letter case), else the first one listed: a row of
    schemas.DATA_SERVERS. PiError names the servers there are when none matches."""
    servers = data_servers(client).to_pylist()
    if not servers:
        raise PiError(f"PI Web API at {client.url} lists no data servers.")
    for server in servers:
        if not name or server["name"].lower() == name.lower():
            return server
    raise PiError(f"No data server named '{name}' at {client.url}; it has: "
                  f"{', '.join(s['name'] for s in servers)}.")


def point_row(point: dict) -> dict:
    return {"web_id": point["WebId"], "id": point.get("Id"), "name": point["Name"], "path": point.get("Path"),
            "descriptor": point.get("Descriptor"), "point_class": point.get("PointClass"),
            "point_type": point.get("PointType"), "digital_set_name": point.get("DigitalSetName") or None,
            "engineering_units": point.get("EngineeringUnits"), "span": point.get("Span"),
            "zero": point.get("Zero"), "step": point.get("Step"), "future": point.get("Future")}


def find_points(client: PiClient, name_filter: str = "*", data_server: str | None = None) -> pa.Table:
    """PI points whose name matches ``name_filter`` (PI wildcards ``*`` and ``?``), with metadata.
    ``data_server`` is a data server name; the first one by default."""
    server = find_data_server(client, data_server)["web_id"]
    rows = [point_row(p) for p in pages(client, f"dataservers/{server}/points", {"nameFilter": name_filter})]
    return _table(rows, schemas.POINTS)


def points_by_path(client: PiClient, paths: Iterable[str]) -> Lookup:
    """PI points by path (``\\\\server\\tag``); unknown paths are in ``errors``."""
    paths = list(dict.fromkeys(paths))
    found, errors = _batch_items(client, lambda p, *_: f"points?path={quote(p, safe='')}", paths, listing=False)
    return Lookup(_table([point_row(item) for _, item in found], schemas.POINTS), errors)


def points_by_web_id(client: PiClient, web_ids: Iterable[str]) -> Lookup:
    """PI points by WebId; unknown WebIds are in ``errors``."""
    web_ids = list(dict.fromkeys(web_ids))
    found, errors = _batch_items(client, lambda w, *_: f"points/{quote(w, safe='')}", web_ids, listing=False)
    return Lookup(_table([point_row(item) for _, item in found], schemas.POINTS), errors)


# ---- asset framework ------------------------------------------------------------------------------
def asset_servers(client: PiClient) -> pa.Table:
    rows = [{"web_id": s["WebId"], "id": s.get("Id"), "name": s.get("Name"), "path": s.get("Path"),
             "is_connected": s.get("IsConnected")} for s in client.get("assetservers", _Listing).Items]
    return _table(rows, schemas.ASSET_SERVERS)


def asset_databases(client: PiClient, asset_server_web_id: str | None = None) -> pa.Table:
    servers = [asset_server_web_id] if asset_server_web_id else asset_servers(client)["web_id"].to_pylist()
    rows = []
    for server in servers:
        rows.extend({"web_id": d["WebId"], "id": d.get("Id"), "name": d.get("Name"), "path": d.get("Path"),
                     "description": d.get("Description")}
                    for d in client.get(f"assetservers/{server}/assetdatabases", _Listing).Items)
    return _table(rows, schemas.ASSET_DATABASES)


def find_database(client: PiClient, name_or_path: str) -> str:
    """The WebId of the AF database with this name or path (``\\\\AFServer\\Database``)."""
    databases = asset_databases(client)
    for web_id, name, path in zip(*(databases[c].to_pylist() for c in ("web_id", "name", "path"))):
        if name_or_path.lower() in (name.lower(), (path or "").lower()):
            return web_id
    known = ", ".join(databases["path"].to_pylist()) or "none"
    raise PiError(f"No AF database named '{name_or_path}' at {client.url}; it has: {known}.")


def element_row(element: dict) -> dict:
    path = element["Path"]
    parts = path.lstrip("\\").split("\\")  # AFServer, Database, root element, ..., element
    depth = len(parts) - 2
    return {"web_id": element["WebId"], "id": element.get("Id"), "name": element["Name"], "path": path,
            "parent_path": path.rsplit("\\", 1)[0] if depth > 1 else None, "depth": depth,
            "template_name": element.get("TemplateName") or None, "category_names": element.get("CategoryNames"),
            "description": element.get("Description"), "has_children": element.get("HasChildren")}


def elements(client: PiClient, database_web_id: str, root_path: str | None = None, template: str | None = None,
             category: str | None = None, name_filter: str | None = None) -> pa.Table:
    """The whole element hierarchy of a database (or below the element at ``root_path``), paged,
    optionally only elements of a template, a category or a name filter."""
    params = {"searchFullHierarchy": "true"}
    for key, value in (("templateName", template), ("categoryName", category), ("nameFilter", name_filter)):
        if value:
            params[key] = value
    if root_path:
        root = client.get("elements", dict[str, Any], params={"path": root_path})
        rows = [element_row(root)] if _matches(root, template, category, name_filter) else []
        source = f"elements/{root['WebId']}/elements"
    else:
        rows, source = [], f"assetdatabases/{database_web_id}/elements"
    rows.extend(element_row(e) for e in pages(client, source, params))
    return _table(rows, schemas.ELEMENTS)


def _matches(element: dict, template: str | None, category: str | None, name_filter: str | None) -> bool:
    return ((not template or (element.get("TemplateName") or "").lower() == template.lower())
            and (not category or category.lower() in (c.lower() for c in element.get("CategoryNames") or []))
            and (not name_filter or fnmatch.fnmatch(element["Name"].lower(), name_filter.lower())))


def attribute_row(owner_web_id: str, attribute: dict) -> dict:
    point_web_id = _link_id(attribute.get("Links"), "Point")
    config = attribute.get("ConfigString") or ""
    is_point = (attribute.get("DataReferencePlugIn") or "") == "PI Point"
    return {"web_id": attribute["WebId"], "id": attribute.get("Id"), "element_web_id": owner_web_id,
            "element_path": attribute.get("Path", "").split("|", 1)[0] or None, "name": attribute["Name"],
            "path": attribute.get("Path"), "type": attribute.get("Type"), "units": attribute.get("DefaultUnitsName"),
            "data_reference": attribute.get("DataReferencePlugIn") or None, "config_string": config or None,
            "is_configuration_item": attribute.get("IsConfigurationItem"),
            "point_web_id": point_web_id if is_point else None,
            "point_path": config.split("?", 1)[0].split(";", 1)[0] if is_point and config else None}


def attributes(client: PiClient, element_web_ids: Iterable[str], kind: str = "elements") -> Lookup:
    """The attributes of many elements (or event frames with ``kind="eventframes"``), in batches;
    for "PI Point" references, the point's WebId (from Links.Point) and path (from ConfigString)."""
    owners = list(dict.fromkeys(element_web_ids))
    def resource(owner: str, size: int, start: int) -> str:
        return f"{kind}/{owner}/attributes?startIndex={start}&maxCount={size}"

    found, errors = _batch_items(client, resource, owners, listing=True)
    return Lookup(_table([attribute_row(owner, a) for owner, a in found], schemas.ATTRIBUTES), errors)


def element_templates(client: PiClient, database_web_id: str) -> pa.Table:
    """Element templates, event frame templates among them (``instance_type`` "EventFrame")."""
    rows = [{"web_id": t["WebId"], "id": t.get("Id"), "name": t["Name"], "path": t.get("Path"),
             "description": t.get("Description"), "instance_type": t.get("InstanceType"),
             "base_template": t.get("BaseTemplate") or None, "category_names": t.get("CategoryNames")}
            for t in pages(client, f"assetdatabases/{database_web_id}/elementtemplates")]
    return _table(rows, schemas.TEMPLATES)


def points_from_af(client: PiClient, database_web_id: str, root_path: str | None = None,
                   template: str | None = None, category: str | None = None) -> Lookup:
    """The PI points behind the "PI Point" attributes of the elements that match (see
    :func:`elements`), with their metadata. Elements whose attributes cannot be read are in errors."""
    element_ids = elements(client, database_web_id, root_path, template, category)["web_id"].to_pylist()
    found = attributes(client, element_ids)
    point_ids = [w for w in found.table["point_web_id"].to_pylist() if w]
    points = points_by_web_id(client, point_ids)
    return Lookup(points.table, {**found.errors, **points.errors})
