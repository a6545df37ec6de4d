"""The readers of the tables made whole on each run (materialized views), one function per table.

Each takes a :class:`ReadContext` and returns the table's rows (Spark's microsecond timestamps).
The catalog readers ask the server and keep the items it could not read in the state store
(pi_catalog_log); the others read the time-series source's state. The registry
(pi_lakeflow.tables.registry) names which reader makes which table.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from pi_client import Lookup, attributes, element_templates, elements, find_database, owner_values, schemas

from pi_lakeflow.config.connection import connect
from pi_lakeflow.config.settings import Settings
from pi_lakeflow.runtime.discovery import event_frames, select_tags
from pi_lakeflow.state.catalog_log import CatalogLog
from pi_lakeflow.state import log as state_log
from pi_lakeflow.state.store import StateStore
from pi_lakeflow.tables.schemas import for_spark


@dataclass(frozen=True)
class ReadContext:
    """What a view's reader may use: the settings, the state store and the time of the read."""

    table: str
    settings: Settings
    store: StateStore
    now_ns: int


def _catalog(context: ReadContext, read) -> pa.Table:
    """``read(client)``'s table, its failed items kept for pi_catalog_log."""
    with connect(context.settings) as client:
        found: Lookup = read(client)
    CatalogLog(context.settings.state_path).write(context.table, found.errors, context.now_ns)
    return for_spark(found.table)


def _af(read, empty: pa.Schema):
    """A reader of an AF table: ``read(client, database)``; empty when no AF database is set
    (the database is looked up only then)."""
    def reader(context: ReadContext) -> pa.Table:
        name = context.settings.af_database
        return _catalog(context, lambda client: read(client, find_database(client, name)) if name
                        else Lookup(empty.empty_table()))
    return reader


def read_points(context: ReadContext) -> pa.Table:
    """The selected PI points; selected names the server does not have are failed items."""
    return _catalog(context, lambda client: select_tags(client, context.settings))


read_elements = _af(lambda client, database: Lookup(elements(client, database)), schemas.ELEMENTS)
read_attributes = _af(lambda client, database: attributes(client, elements(client, database)["web_id"].to_pylist()),
                      schemas.ATTRIBUTES)
read_templates = _af(lambda client, database: Lookup(element_templates(client, database)), schemas.TEMPLATES)


def read_event_frames(context: ReadContext) -> pa.Table:
    return _af(lambda client, database: Lookup(event_frames(client, context.settings, database, context.now_ns)),
               schemas.EVENT_FRAMES)(context)


def read_event_frame_attributes(context: ReadContext) -> pa.Table:
    def read(client, database):
        frames = event_frames(client, context.settings, database, context.now_ns)
        return owner_values(client, frames["web_id"].to_pylist())
    return _af(read, schemas.OWNER_VALUES)(context)


def ingestion_log(context: ReadContext) -> pa.Table:
    return state_log.ingestion_log(context.store)


def tag_cursors(context: ReadContext) -> pa.Table:
    return state_log.tag_cursors(context.store)


def catalog_log(context: ReadContext) -> pa.Table:
    return CatalogLog(context.settings.state_path).read()
