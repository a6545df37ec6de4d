"""The failed items of each catalog table's latest read (``pi_catalog_log``), under
``pi.state_path/catalog/``: one file per table, or per partition of a table that tasks read."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pi_lakeflow.state.files import read_arrows, write_arrow
from pi_lakeflow.tables.schemas import CATALOG_LOG, SPARK_TIMESTAMP


def item_names(rows: pa.Table) -> list[str]:
    """How a failure names each of ``rows`` (with ``name`` and ``web_id``): its name, or the WebId
    of a tag without one."""
    return [name or web_id for name, web_id in zip(rows["name"].to_pylist(), rows["web_id"].to_pylist())]


def failed_items(rows: pa.Table, error: str) -> list[tuple[str, str]]:
    """The rows of ``rows`` (with ``name`` and ``web_id``) whose column ``error`` is set, as
    (:func:`item_names`, error), in their order."""
    failed = rows.filter(pc.is_valid(rows[error]))
    return list(zip(item_names(failed), failed[error].to_pylist()))


class CatalogLog:
    """The catalog error files of one pipeline."""

    def __init__(self, state_path: str | os.PathLike):
        self.root = Path(state_path) / "catalog"

    def write(self, table: str, errors: dict[str, str], read_ns: int, part: str = "") -> None:
        """The items of a table's latest read that failed (none: an earlier read's are gone);
        ``part``: one of several files of the table (a partition of it, written by its task)."""
        rows = pa.table({"table": [table] * len(errors), "item": list(errors), "error": list(errors.values()),
                         "read_at": pa.array([read_ns // 1000] * len(errors), pa.int64()).cast(SPARK_TIMESTAMP)},
                        schema=CATALOG_LOG)
        write_arrow(self.root / f"{table}{'.' + part if part else ''}.arrow", rows, {})

    def clear(self, table: str) -> None:
        """Forget every failed item of ``table`` (before a read that writes them by part)."""
        for path in self.root.glob(f"{table}.*arrow"):
            path.unlink(missing_ok=True)

    def read(self) -> pa.Table:
        """CATALOG_LOG: the failed items of each catalog table's latest read."""
        return read_arrows(sorted(self.root.glob("*.arrow")), CATALOG_LOG)
