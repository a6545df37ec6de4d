"""Where the time-series source keeps its per-tag cursors: Arrow files under ``pi.state_path``.

Spark checkpoints the stream's offset (``{"batch": n}``); what a batch means per tag lives here::

    batches/00000007/plan.arrow          the plan, written on the driver before the batch runs: its
                                         settings and the tags kept aside (not read in this batch)
    batches/00000007/plan-00003.arrow    the plan's tags of partition 3 (its task reads only these)
    batches/00000007/part-00003.arrow    what partition 3 did, written by its task before its rows
    batches/00000007/digest-00003.arrow  the digests of partition 3's tags after it, written just before
    batches/00000007/progress-00003.json how far partition 3's task has read (after each time slice)

The digests (a key and hash per value in each tag's look-back: most of the state) go from task to
task: the driver plans from the part files alone, and the plan says in which partition's digest
file of the batch it follows each tag's digest is (``digest_partition``), so the task reads its
tags' digests from there (:meth:`StateStore.plan_part`). Only the tags it keeps aside carry
their digest in the plan.

A batch is planned from the state after the batch it follows (the plan records which), and
only once that batch has run (Spark 4.2 and later hand the source its end offset; on 4.0 and 4.1
the source takes the newest finished batch: sources.py), so a replayed batch reads the same plan
and rewrites the same part files.

Older layouts (``layouts.py``, the one place that knows them): a file this version can read
exactly is read, its missing columns and settings as they meant then; a plan of format 1 (its
digests hold no keys) is refused with the full-refresh line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pi_lakeflow.errors import StateFormatError, StateLostError
from pi_lakeflow.state.files import read_arrow, read_arrow_meta, read_arrows, write_arrow, write_whole
from pi_lakeflow.state.layouts import FORMAT, conformed, upgraded_plan
from pi_lakeflow.state.offsets import OffsetFolders
from pi_lakeflow.tables.schemas import INGESTION_LOG

#: One row per tag of the state after a batch. ``partition`` -1: known from an earlier batch,
#: not selected now (kept so that its cursor survives). ``cursor_ns`` null: a new tag. ``digest``:
#: the key (timestamp, ordinal) and hash of each value PI held in the look-back range before the
#: cursor when it was read (timeseries.DIGEST_ENTRY, about 10 bytes each in a file; see
#: landing.value_hashes); null where ``digest_partition`` says which partition's digest file
#: holds it (that of the batch the row belongs to; in a plan, of the batch it follows).
#: ``rate``: values per second in the tag's last read (sizes the first time slice of a read).
#: ``marker``: the tag's stream-updates marker (pi.changes markers; null: its next batch reads
#: the look-back): every change PI reports after it is new to the table.
STATE = pa.schema([
    pa.field("web_id", pa.string(), nullable=False),
    pa.field("name", pa.string()),
    pa.field("point_type", pa.string()),
    pa.field("partition", pa.int32(), nullable=False),
    pa.field("origin_ns", pa.int64(), nullable=False),
    pa.field("cursor_ns", pa.int64()),
    pa.field("read_from_ns", pa.int64(), nullable=False),
    pa.field("digest", pa.binary()),
    pa.field("digest_partition", pa.int32()),
    pa.field("last_error", pa.string()),
    pa.field("rate", pa.float64()),
    pa.field("marker", pa.string()),
])
STATE_FIELDS = STATE.names

#: One row per tag the plan knows: its state, and where this batch's read of it ends
#: (``read_to_ns``: ``pi.step`` past its cursor in a back-fill; null: the plan's ``end_ns``).
PLAN = pa.schema([*STATE, pa.field("read_to_ns", pa.int64())])

#: What a partition's task did, one row per tag: the tag's state after the batch, and its counts.
OUTCOME = pa.schema([
    *STATE,
    pa.field("values_read", pa.int64(), nullable=False),
    pa.field("values_landed", pa.int64(), nullable=False),
])


@dataclass(frozen=True)
class PlanInfo:
    """What a plan says beside its rows."""

    batch: int
    end_ns: int
    partitions: int
    lookback_ns: int
    missing: dict[str, str]  # selected tag name -> why the server does not have it
    follows: int  # the batch whose tag state it was planned from (0: none, a new history)
    steps: int = 1  # batches of at most pi.step that the tags' reads up to end_ns take, this one included
    markers: bool = False  # tags are read through stream-update markers (pi.changes markers)


@dataclass(frozen=True)
class PartStats:
    """Counters of one partition's task."""

    started_ns: int
    seconds: float
    requests: int
    retries: int
    bytes_received: int
    read_to_ns: int | None = None  # where its tags' reads were to end (the furthest; None: the plan's end)
    reread: int = 0  # tags with markers read again around changes before their cursor
    lost: int = 0  # tags whose marker the server had lost (read again from the look-back)


@dataclass(frozen=True)
class PartProgress:
    """How far a partition's task has read: values so far, and the share of its window read."""

    values_read: int
    values_landed: int
    share: float


class StateStore:
    """The files of one pipeline's time-series source: a folder per batch (offsets.OffsetFolders)."""

    def __init__(self, path: str | os.PathLike):
        self.root = Path(path)
        self.folders = OffsetFolders(self.root / "batches", marker="plan.arrow")

    # ---- plans -------------------------------------------------------------------------------
    def write_plan(self, info: PlanInfo, rows: pa.Table) -> None:
        """Keeps a batch's plan: ``plan.arrow`` (the settings, and the tags of partition -1) and
        one file per partition, so that a task reads its own tags only; ``plan.arrow`` last, since
        its presence makes the batch planned (:meth:`batches`)."""
        # Batches from this one on are from an earlier attempt that never committed: history no
        # longer. A plan from no state (a new stream, a full refresh) starts a new history: every
        # other batch and the log go.
        new_history = info.follows == 0
        for batch in self.batches():
            if batch >= info.batch or new_history:
                self.folders.remove((batch,))
        if new_history:
            for path in self._archived():
                path.unlink()
        self.folders.remove((info.batch,))  # an attempt that never wrote its plan.arrow
        rows = rows.cast(PLAN)
        partition = rows["partition"].to_numpy()
        order = np.argsort(partition, kind="stable")
        rows, partition = rows.take(order), partition[order]
        bounds = np.searchsorted(partition, np.arange(-1, info.partitions + 1))  # where -1, 0, 1, ... start
        for number in range(info.partitions):
            write_arrow(self.folders.file((info.batch,), "plan", number),
                        rows.slice(bounds[number + 1], bounds[number + 2] - bounds[number + 1]), {})
        due = rows.slice(bounds[1])
        behind = pc.min(pc.coalesce(due["cursor_ns"], due["origin_ns"])).as_py() if len(due) else None
        meta = {**info.__dict__, "due": {"tags": len(due), "behind_ns": behind}, "format": FORMAT}
        write_arrow(self._plan_path(info.batch), rows.slice(0, bounds[1]), meta)

    def _plan_path(self, batch: int) -> Path:
        return self.folders.folder((batch,)) / "plan.arrow"

    def _plan_head(self, batch: int) -> tuple[PlanInfo, pa.Table]:
        """The plan's settings and the rows of its ``plan.arrow``: the tags of partition -1."""
        path = self._plan_path(batch)
        table, meta = read_arrow(path)
        meta, table = upgraded_plan(path, meta, table, PLAN)
        return PlanInfo(**{k: meta[k] for k in PlanInfo.__dataclass_fields__}), table

    def due(self, batch: int) -> tuple[int, int | None]:
        """How many tags a batch reads, and where the one furthest behind starts (its cursor, or
        its origin while it has none; None: no tag), without reading the plan's tags."""
        due = read_arrow_meta(self._plan_path(batch)).get("due")
        if due is None:  # older layout: no count of the due tags kept
            rows = self.plan(batch)[1].filter(pc.field("partition") >= 0)
            return len(rows), pc.min(pc.coalesce(rows["cursor_ns"], rows["origin_ns"])).as_py()
        return due["tags"], due["behind_ns"]

    def plan_info(self, batch: int) -> PlanInfo:
        """A batch's plan without its tags (but those kept aside, read with it)."""
        return self._plan_head(batch)[0]

    def plan(self, batch: int) -> tuple[PlanInfo, pa.Table]:
        """A batch's plan with every tag (the driver's view)."""
        info, head = self._plan_head(batch)
        parts = [conformed(read_arrow(path)[0], PLAN) for path in self.folders.files((batch,), "plan").values()]
        return info, pa.concat_tables([head, *parts])

    def plan_part(self, batch: int, partition: int) -> tuple[PlanInfo, pa.Table]:
        """A batch's plan with the tags of one partition, each with its digest (a task's view):
        the digests the plan leaves in the files of the batch it follows are read from there."""
        info, head = self._plan_head(batch)
        path = self.folders.file((batch,), "plan", partition)
        rows = conformed(read_arrow(path)[0], PLAN) if path.is_file() \
            else head.filter(pc.equal(head["partition"], partition))  # older layout: every tag in plan.arrow
        return info, self.with_digests(rows, info.follows)

    def with_digests(self, rows: pa.Table, batch: int) -> pa.Table:
        """``rows`` (STATE or PLAN columns) with the digests their ``digest_partition`` leaves in
        the digest files of ``batch``, and ``digest_partition`` null. Each file is read once and
        searched for its own rows only.

        Raises
        ------
        StateLostError
            A digest file it needs is gone or lacks a tag: the state folder was changed by hand
            (the batches a plan follows are kept while it may run)."""
        if not len(rows) or rows["digest_partition"].null_count == len(rows):  # pyarrow 15 crashes on no rows
            return rows
        where = pc.fill_null(rows["digest_partition"], -1).to_numpy()
        referenced = np.flatnonzero(where >= 0)
        order = referenced[np.argsort(where[referenced], kind="stable")]
        partitions, starts = np.unique(where[order], return_index=True)
        # Each row's digest: its own (rows["digest"]) or, for a referenced row, one gathered from a file.
        pick = np.arange(len(rows))
        gathered: list[pa.Array] = []
        next_at = len(rows)  # where the next gathered digest lands in rows["digest"] + gathered
        for partition, members in zip(partitions.tolist(), np.split(order, starts[1:])):
            path = self.folders.file((batch,), "digest", partition)
            try:
                table, _ = read_arrow(path)
            except FileNotFoundError:
                raise self._digests_lost(path, "is gone", batch) from None
            found = pc.index_in(rows["web_id"].take(pa.array(members)), value_set=table["web_id"])
            if found.null_count:
                raise self._digests_lost(path, "lacks some of the tags", batch)
            pick[members] = next_at + np.arange(len(members))
            next_at += len(members)
            gathered += table["digest"].take(found).chunks
        digests = pa.concat_arrays([*rows["digest"].chunks, *gathered]).take(pa.array(pick))
        return _with_digest_columns(rows, digests, pa.nulls(len(rows), pa.int32()))

    def _digests_lost(self, path: Path, what: str, batch: int) -> StateLostError:
        return StateLostError(f"pi.state_path {self.root}: {path} {what}, but the plan of the batch after {batch} "
                              f"reads its tags' digests from there; the state folder was changed by hand? A full "
                              f"refresh reads every tag again from pi.start")

    def batches(self) -> list[int]:
        """Batches that have a plan, oldest first."""
        return [batch for batch, in self.folders.offsets()]

    def written_since(self, batch: int, since_ns: int) -> bool:
        """Whether a file of the batch (its plan, a partition's progress or outcome) was written
        at or after ``since_ns``: the batch was planned, or run again, since then."""
        try:
            return any(path.stat().st_mtime_ns >= since_ns for path in self.folders.folder((batch,)).iterdir())
        except FileNotFoundError:  # pruned meanwhile
            return False

    def newest_finished(self) -> int:
        """The newest batch whose every partition has left its outcome; 0 when there is none."""
        return max((b for b in self.batches() if self.finished(b)), default=0)

    def finished(self, batch: int) -> bool:
        """Whether every partition of a planned batch has left its outcome (a batch of a layout
        this version refuses is not: without a start offset, Spark 4.0 and 4.1, the stream starts
        again from no state, a new history that removes it)."""
        try:
            info = self.plan_info(batch)
        except StateFormatError:
            return False
        return len(self.finished_partitions(batch)) == info.partitions

    # ---- progress ------------------------------------------------------------------------------
    def write_progress(self, batch: int, partition: int, progress: PartProgress) -> None:
        write_whole(self.folders.file((batch,), "progress", partition, "json"), json.dumps(progress.__dict__).encode())

    def progress(self, batch: int) -> dict[int, PartProgress]:
        """The partitions of a batch that have read a time slice, by partition number."""
        found = {}
        for partition, path in self.folders.files((batch,), "progress", "json").items():
            try:
                found[partition] = PartProgress(**json.loads(path.read_bytes()))
            except FileNotFoundError:  # the batch was pruned meanwhile
                continue
        return found

    # ---- outcomes ------------------------------------------------------------------------------
    def write_outcome(self, batch: int, partition: int, rows: pa.Table, stats: PartStats) -> None:
        """Keep what a partition's task did: its tags' digests in their own file, then the rest
        (the digests left out, ``digest_partition`` pointing there), whose presence makes the
        partition finished."""
        write_arrow(self.folders.file((batch,), "digest", partition), rows.select(["web_id", "digest"]), {})
        rows = _with_digest_columns(rows.select(OUTCOME.names).cast(OUTCOME), pa.nulls(len(rows), pa.binary()),
                                    pa.array(np.full(len(rows), partition, np.int32)))
        write_arrow(self.folders.file((batch,), "part", partition), rows, stats.__dict__)

    def finished_partitions(self, batch: int) -> list[int]:
        """The partitions of a batch that have left their outcome (the files are not read)."""
        return list(self.folders.files((batch,), "part"))

    def outcome(self, batch: int, partition: int) -> tuple[pa.Table, PartStats]:
        table, meta = read_arrow(self.folders.file((batch,), "part", partition))
        return conformed(table, OUTCOME), PartStats(**meta)

    def outcomes(self, batch: int) -> dict[int, tuple[pa.Table, PartStats]]:
        """The partitions of a batch that have finished, by partition number."""
        return {p: self.outcome(batch, p) for p in self.finished_partitions(batch)}

    def tag_state(self, batch: int) -> pa.Table:
        """Every tag's state after a finished batch (STATE columns; ``partition`` as in that plan),
        the digests left in their files (:meth:`with_digests` reads them). Batch 0 is the empty
        state before the first batch."""
        if batch == 0:
            return STATE.empty_table()
        info, head = self._plan_head(batch)
        outcomes = self.outcomes(batch)
        missing = [p for p in range(info.partitions) if p not in outcomes]
        if missing:
            raise StateLostError(f"pi.state_path {self.root}: batch {batch} is committed but partitions {missing} "
                                 f"left no outcome under {self.folders.folder((batch,))}; the state folder was "
                                 f"changed by hand? A full refresh reads every tag again from pi.start")
        kept = head.filter(pc.equal(head["partition"], -1)).select(STATE_FIELDS)
        return pa.concat_tables([kept, *(t.select(STATE_FIELDS) for t, _ in outcomes.values())])

    def prune(self, committed: int) -> None:
        """Remove the batches no replay needs (offsets.KEEP), keeping their rows of the ingestion
        log in ``log/``."""
        from pi_lakeflow.state.log import log_rows

        for batch, in self.folders.stale((committed,)):
            write_arrow(self.root / "log" / f"{batch:08d}.arrow", log_rows(self, batch), {})
            self.folders.remove((batch,))

    def _archived(self) -> list[Path]:
        return sorted((self.root / "log").glob("*.arrow"))

    def archived_log(self) -> pa.Table:
        """The ingestion-log rows of pruned batches, oldest first."""
        return read_arrows(self._archived(), INGESTION_LOG)


def _with_digest_columns(rows: pa.Table, digests: pa.Array, partitions: pa.Array) -> pa.Table:
    """``rows`` with new ``digest`` and ``digest_partition`` columns (where the digests are)."""
    for name, values in (("digest", digests), ("digest_partition", partitions)):
        rows = rows.set_column(rows.schema.get_field_index(name), rows.schema.field(name), values)
    return rows
