"""The tables made from the time-series state: ``pi_ingestion_log`` and ``pi_tag_cursors``."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pi_lakeflow.state.catalog_log import failed_items
from pi_lakeflow.state.store import StateStore
from pi_lakeflow.tables.schemas import INGESTION_LOG, SPARK_TIMESTAMP, TAG_CURSORS


def ingestion_log(store: StateStore) -> pa.Table:
    """INGESTION_LOG: the log of pruned batches, then that of the finished batches kept."""
    live = [log_rows(store, b) for b in store.batches() if store.finished(b)]
    return pa.concat_tables([store.archived_log(), *live])


def log_rows(store: StateStore, batch: int) -> pa.Table:
    """INGESTION_LOG rows of one finished batch."""
    info = store.plan_info(batch)
    rows = []
    if info.missing:
        rows.append({"batch": batch, "partition": -1, "tags": len(info.missing), "tags_failed": len(info.missing),
                     "values_read": 0, "values_landed": 0, "requests": 0, "retries": 0, "bytes_received": 0,
                     "read_to": info.end_ns // 1000, "failed_tags": list(info.missing.items())})
    for partition, (outcome, stats) in sorted(store.outcomes(batch).items()):
        failed = failed_items(outcome, "last_error")
        rows.append({
            "batch": batch, "partition": partition, "started_at": stats.started_ns // 1000, "seconds": stats.seconds,
            "tags": len(outcome), "tags_failed": len(failed),
            "values_read": pc.sum(outcome["values_read"]).as_py() or 0,
            "values_landed": pc.sum(outcome["values_landed"]).as_py() or 0,
            "requests": stats.requests, "retries": stats.retries, "bytes_received": stats.bytes_received,
            "read_from_min": pc.min(outcome["read_from_ns"]).as_py() // 1000,
            "read_from_max": pc.max(outcome["read_from_ns"]).as_py() // 1000,
            "read_to": (stats.read_to_ns if stats.read_to_ns is not None else info.end_ns) // 1000,
            "failed_tags": failed, "tags_reread": stats.reread, "markers_lost": stats.lost,
        })
    return pa.Table.from_pylist(rows, schema=INGESTION_LOG)


def tag_cursors(store: StateStore) -> pa.Table:
    """TAG_CURSORS after the newest finished batch."""
    finished = [b for b in store.batches() if store.finished(b)]
    if not finished:
        return TAG_CURSORS.empty_table()
    state = store.tag_state(finished[-1])
    micros = {c: pc.divide(state[c], 1000) for c in ("cursor_ns", "origin_ns")}
    return pa.table({"web_id": state["web_id"], "name": state["name"],
                     "cursor": micros["cursor_ns"].cast(SPARK_TIMESTAMP),
                     "origin": micros["origin_ns"].cast(SPARK_TIMESTAMP),
                     "batch": pa.array([finished[-1]] * len(state), pa.int64()),
                     "last_error": state["last_error"]}, schema=TAG_CURSORS)
