"""What the pipeline reads besides values: the selected tags, the AF model and event frames."""

from __future__ import annotations

import pyarrow as pa

from pi_client import (Lookup, PiClient, PiError, attributes, data_servers, element_templates, elements,
                       find_database, find_event_frames, find_points, owner_values, points_by_path, points_from_af,
                       schemas)

from .settings import Settings
from .tables import CATALOG


def select_tags(client: PiClient, settings: Settings) -> Lookup:
    """The PI points the settings select (schemas.POINTS); names the server does not have are in
    ``errors`` with its message."""
    if settings.tag_names:
        server = _data_server_name(client, settings.data_server)
        by_path = points_by_path(client, [f"\\\\{server}\\{name}" for name in settings.tag_names])
        errors = {path.rsplit("\\", 1)[-1]: message for path, message in by_path.errors.items()}
        return Lookup(by_path.table, errors)
    if settings.af_root:
        return points_from_af(client, find_database(client, settings.af_database), root_path=settings.af_root)
    return Lookup(find_points(client, settings.name_filter, settings.data_server or None))


def _data_server_name(client: PiClient, wanted: str) -> str:
    names = data_servers(client)["name"].to_pylist()
    if not names:
        raise PiError(f"PI Web API at {client.url} lists no data servers.")
    for name in names:
        if not wanted or name.lower() == wanted.lower():
            return name
    raise PiError(f"No data server named '{wanted}' at {client.url}; it has: {', '.join(names)}.")


def catalog_table(client: PiClient, settings: Settings, table: str, now_ns: int) -> Lookup:
    """One of tables.CATALOG, read whole, and the items that could not be read (key -> the
    server's message): selected names the server does not have, elements or event frames whose
    attributes or values it refused. AF tables are empty when no AF database is set."""
    if table == "pi_points":
        return select_tags(client, settings)
    if not settings.af_database:
        return Lookup(CATALOG[table].empty_table())
    database = find_database(client, settings.af_database)
    if table == "pi_af_elements":
        return Lookup(elements(client, database))
    if table == "pi_af_attributes":
        return attributes(client, elements(client, database)["web_id"].to_pylist())
    if table == "pi_af_templates":
        return Lookup(element_templates(client, database))
    frames = _event_frames(client, settings, database, now_ns)
    if table == "pi_event_frames":
        return Lookup(frames)
    if table == "pi_event_frame_attributes":
        return owner_values(client, frames["web_id"].to_pylist())
    raise ValueError(f"unknown catalog table {table}")


def _event_frames(client: PiClient, settings: Settings, database: str, now_ns: int) -> pa.Table:
    start = settings.event_frames_start_ns(now_ns)
    end = settings.end_ns(now_ns)
    templates = settings.event_frame_templates or (None,)
    found = [find_event_frames(client, database, start, end, settings.search_mode, template=t) for t in templates]
    return pa.concat_tables(found) if found else schemas.EVENT_FRAMES.empty_table()

