"""What a local run did: the summary line, the failures and what ``--summary-json`` writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from pi_lakeflow import exits
from pi_lakeflow.state.catalog_log import CatalogLog, item_names
from pi_lakeflow.state.store import PartStats, StateStore


@dataclass
class RunSummary:
    """What a run did: the summary line, and what ``--summary-json`` writes (as JSON)."""

    status: int = exits.FAILED
    seconds: float = 0.0
    values_landed: int = 0
    tags_complete: int = 0
    tags_failed: int = 0
    names_missing: int = 0
    catalog_items_failed: int = 0
    failures: list[str] = field(default_factory=list)
    tables: dict[str, dict[str, int]] = field(default_factory=dict)  # rows now, rows added
    error: str | None = None

    def line(self) -> str:
        line = f"run completed in {self.seconds:.1f} s: {self.values_landed:,} values landed; " \
               f"{count(self.tags_complete, 'tag')} complete, {self.tags_failed:,} failed"
        if self.names_missing:
            line += f"; {count(self.names_missing, 'selected name')} not on the server"
        if self.catalog_items_failed:
            line += f"; {count(self.catalog_items_failed, 'catalog item')} failed"
        return line


def count(number: int, thing: str) -> str:
    return f"{number:,} {thing}{'' if number == 1 else 's'}"


def marker_note(outcome: pa.Table, stats: PartStats) -> str:
    """What a partition's markers did, when its tags have them: how many were read again around
    a change before their cursor, and how many the server had lost."""
    followed = pc.sum(pc.is_valid(outcome["marker"])).as_py() or 0
    if not followed and not stats.lost:
        return ""
    return (f"; {followed:,} tags follow markers ({stats.reread:,} read again around earlier changes"
            f"{f', {stats.lost:,} markers lost: their look-back read again' if stats.lost else ''})")


def summary(store: StateStore, started_ns: int) -> RunSummary:
    """What the batches planned or run again since ``started_ns`` did to their tags (a back-fill
    in steps reads a tag in several: its last read says whether it failed), the selected names the
    server does not have, the catalog items that failed in reads since then; one failure line each."""
    landed = 0
    last_error: dict[str, tuple[str, str | None]] = {}  # web_id -> (name, the error of its last read)
    missing: dict[str, str] = {}
    for batch in (b for b in store.batches() if store.written_since(b, started_ns)):
        info = store.plan_info(batch)
        missing.update(info.missing)
        for outcome, _ in store.outcomes(batch).values():
            landed += sum(outcome["values_landed"].to_pylist())
            last_error.update(zip(outcome["web_id"].to_pylist(),
                                  zip(item_names(outcome), outcome["last_error"].to_pylist())))
    failed = [f"{name}: {error}" for name, error in last_error.values() if error]
    log = CatalogLog(store.root).read()
    items = [f"{table} {item}: {error}" for table, item, error, read_at in
             zip(*(log[c].to_pylist() for c in ("table", "item", "error", "read_at")))
             if read_at.timestamp() * 1e9 >= started_ns - 1e9 and not (table == "pi_points" and item in missing)]
    failures = failed + [f"{name}: not on the server ({error})" for name, error in missing.items()] + items
    return RunSummary(status=exits.PARTIAL if failures else exits.OK, values_landed=landed,
                      tags_complete=len(last_error) - len(failed), tags_failed=len(failed),
                      names_missing=len(missing), catalog_items_failed=len(items), failures=failures)
