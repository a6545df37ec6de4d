"""Event frames: search with every searchMode, and the attribute values of many frames.

An in-progress frame has AF's maximum time (year 9999) as its end: it is returned with a null
``end_time`` and ``in_progress`` true, and changes when it closes, so tables of frames must be
updated, not only appended.
"""

from __future__ import annotations

from typing import Iterable

import pyarrow as pa

from . import schemas
from .catalog import Lookup, _link_id, pages
from .client import PiClient
from .decode import OwnerValues, StreamData, decode, values_table
from .errors import PiConfigError
from .times import to_ns, to_pi_time

SEARCH_MODES = ("None", "Overlapped", "Inclusive", "StartInclusive", "EndInclusive", "InProgress",
                "BackwardFromStartTime", "ForwardFromStartTime", "BackwardFromEndTime", "ForwardFromEndTime",
                "BackwardInProgress", "ForwardInProgress")
#: Ends at or after this are AF's "no end yet".
_OPEN_END_YEAR = "9999"


def find_event_frames(client: PiClient, database_web_id: str, start, end, search_mode: str = "Overlapped",
                      template: str | None = None, category: str | None = None, name_filter: str | None = None,
                      referenced_element_name_filter: str | None = None,
                      severities: Iterable[str] = ()) -> pa.Table:
    """Event frames of a database in a time range (schemas.EVENT_FRAMES), all pages."""
    if search_mode not in SEARCH_MODES:
        raise PiConfigError(f"search_mode '{search_mode}' is not valid; expected one of {', '.join(SEARCH_MODES)}.")
    params: dict = {"startTime": to_pi_time(to_ns(start)), "endTime": to_pi_time(to_ns(end)),
                    "searchMode": search_mode, "searchFullHierarchy": "true"}
    for key, value in (("templateName", template), ("categoryName", category), ("nameFilter", name_filter),
                       ("referencedElementNameFilter", referenced_element_name_filter)):
        if value:
            params[key] = value
    if severities:
        params["severity"] = list(severities)
    rows = [frame_row(f) for f in pages(client, f"assetdatabases/{database_web_id}/eventframes", params)]
    return pa.Table.from_pylist(rows, schema=schemas.EVENT_FRAMES)


def frame_row(frame: dict) -> dict:
    end = frame.get("EndTime") or ""
    open_ended = not end or end.startswith(_OPEN_END_YEAR)
    return {"web_id": frame["WebId"], "id": frame.get("Id"), "name": frame["Name"], "path": frame.get("Path"),
            "description": frame.get("Description") or None, "template_name": frame.get("TemplateName") or None,
            "start_time": to_ns(frame["StartTime"]), "end_time": None if open_ended else to_ns(end),
            "in_progress": open_ended,
            "severity": frame.get("Severity"), "category_names": frame.get("CategoryNames"),
            "ref_element_web_ids": frame.get("RefElementWebIds"),
            "primary_element_web_id": _link_id(frame.get("Links"), "PrimaryReferencedElement"),
            "is_acknowledged": frame.get("IsAcknowledged"), "acknowledged_by": frame.get("AcknowledgedBy") or None,
            "can_be_acknowledged": frame.get("CanBeAcknowledged"), "is_annotated": frame.get("IsAnnotated"),
            "is_locked": frame.get("IsLocked"), "are_values_captured": frame.get("AreValuesCaptured")}


def owner_values(client: PiClient, owner_web_ids: Iterable[str]) -> Lookup:
    """The current value of every attribute of many event frames (or elements), with
    ``streamsets/{webId}/value`` sub-requests in batches (schemas.OWNER_VALUES)."""
    owners = list(dict.fromkeys(owner_web_ids))
    tables, errors = [], {}
    for owner, reply in client.batch({w: f"streamsets/{w}/value" for w in owners}).items():
        if not reply.ok:
            errors[owner] = reply.error
            continue
        items = [i for i in decode(reply.content, OwnerValues).Items if i.Value is not None]
        if not items:
            continue
        streams = [StreamData(i.WebId, i.Name, i.Value.UnitsAbbreviation, [i.Value]) for i in items]
        values = values_table(streams)
        tables.append(pa.table({
            "owner_web_id": pa.array([owner] * len(items)),
            "attribute_web_id": values["web_id"], "attribute_name": values["name"],
            **{f.name: values[f.name] for f in schemas.OWNER_VALUES if f.name in values.schema.names
               and f.name not in ("web_id", "name")}}, schema=schemas.OWNER_VALUES))
    return Lookup(pa.concat_tables(tables) if tables else schemas.OWNER_VALUES.empty_table(), errors)
