"""Which tags and event frames the settings select."""

from __future__ import annotations

import pyarrow as pa

from pi_client import (Lookup, PiClient, find_data_server, find_database, find_event_frames, find_points,
                       points_by_path, points_from_af, schemas)

from pi_lakeflow.config.settings import Settings


def select_tags(client: PiClient, settings: Settings) -> Lookup:
    """The PI points the settings select (schemas.POINTS); names the server does not have are in
    ``errors`` with its message."""
    if settings.tag_names:
        server = find_data_server(client, settings.data_server)["name"]
        by_path = points_by_path(client, [f"\\\\{server}\\{name}" for name in settings.tag_names])
        errors = {path.rsplit("\\", 1)[-1]: message for path, message in by_path.errors.items()}
        return Lookup(by_path.table, errors)
    if settings.af_root:
        return points_from_af(client, find_database(client, settings.af_database), root_path=settings.af_root)
    return Lookup(find_points(client, settings.name_filter, settings.data_server or None))


def event_frames(client: PiClient, settings: Settings, database: str, now_ns: int) -> pa.Table:
    start = settings.event_frames_start_ns(now_ns)
    end = settings.end_ns(now_ns)
    templates = settings.event_frame_templates or (None,)
    found = [find_event_frames(client, database, start, end, settings.search_mode, template=t) for t in templates]
    return pa.concat_tables(found) if found else schemas.EVENT_FRAMES.empty_table()

