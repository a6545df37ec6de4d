"""The one place that knows the state's older layouts, and the policy for them: a file this
version can read exactly is read as it meant then (a column it lacks is null, a setting it lacks
has its old meaning), and one it cannot (a plan of format 1, whose digests hold no keys) is
refused with the full-refresh line. Besides the conversions here, two reads of the store take an
older plan's shape (``store.py``, marked "older layout": a plan in one file, a plan without its
count of due tags), the real-time layout without point types is conformed in
``runtime/realtime.py``, a digest's two byte layouts are read in ``runtime/digests.py``, and
uncompressed files read as they are."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pi_lakeflow.errors import StateFormatError

#: The layout of the files (2: digests with keys, for the change log).
FORMAT = 2


def conformed(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` with ``schema``'s columns, in its order: a nullable column that files written
    by an earlier version lack is null."""
    for name in schema.names:
        if name not in rows.column_names:
            rows = rows.append_column(schema.field(name), pa.nulls(rows.num_rows, schema.field(name).type))
    return rows.select(schema.names).cast(schema)


#: What a plan's settings meant before they were kept (older layouts of format 2).
_PLAN_DEFAULTS = {"steps": 1, "markers": False}


def upgraded_plan(path: Path, meta: dict, rows: pa.Table, schema: pa.Schema) -> tuple[dict, pa.Table]:
    """A plan file's meta and rows as this version reads them. A plan of format 2 written before
    back-fills had steps has no ``read_to_ns`` (each tag read to the plan's end) and no
    ``steps``; one written before markers no ``marker`` (none).

    Raises
    ------
    StateFormatError
        A plan of format 1, whose digests hold no keys (edits and deletes cannot be told apart)."""
    if meta.get("format") != FORMAT:
        raise StateFormatError(f"pi.state_path: {path} was written by an earlier version of pi-lakeflow (its "
                               f"digests hold no keys, so edits and deletes cannot be told apart); a full refresh "
                               f"reads every tag again from pi.start (pi-lakeflow run --full-refresh, or a full "
                               f"refresh on Databricks)")
    return {**_PLAN_DEFAULTS, **meta}, conformed(rows, schema)
