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

Plain file I/O that a Unity Catalog volume's FUSE mount (``/Volumes/...`` on Databricks) allows:
each file is serialized in memory, written whole and sequentially under a temporary name and
renamed, so a reader sees whole files only; files are read whole into memory (no memory maps, no
appends, no writes in place). :func:`probe` checks those operations where a process starts using
the store, so a path a Spark task cannot write fails with one line naming ``pi.state_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pi_lakeflow.tables.schemas import CATALOG_LOG, INGESTION_LOG, SPARK_TIMESTAMP, TAG_CURSORS

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


#: The layout of the files (2: digests with keys, for the change log).
FORMAT = 2


class StateFormatError(RuntimeError):
    """A state file of another layout; the message says what to do."""


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
    """The files of one pipeline's time-series source."""

    def __init__(self, path: str | os.PathLike):
        self.root = Path(path)

    def _batch_dir(self, batch: int) -> Path:
        return self.root / "batches" / f"{batch:08d}"

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
                shutil.rmtree(self._batch_dir(batch))
        if new_history:
            shutil.rmtree(self.root / "log", ignore_errors=True)
        folder = self._batch_dir(info.batch)
        shutil.rmtree(folder, ignore_errors=True)  # an attempt that never wrote its plan.arrow
        rows = rows.cast(PLAN)
        partition = rows["partition"].to_numpy()
        order = np.argsort(partition, kind="stable")
        rows, partition = rows.take(order), partition[order]
        bounds = np.searchsorted(partition, np.arange(-1, info.partitions + 1))  # where -1, 0, 1, ... start
        for number in range(info.partitions):
            write_arrow(self._plan_part_path(info.batch, number),
                        rows.slice(bounds[number + 1], bounds[number + 2] - bounds[number + 1]), {})
        due = rows.slice(bounds[1])
        behind = pc.min(pc.coalesce(due["cursor_ns"], due["origin_ns"])).as_py() if len(due) else None
        meta = {"batch": info.batch, "end_ns": info.end_ns, "partitions": info.partitions,
                "lookback_ns": info.lookback_ns, "missing": info.missing, "follows": info.follows,
                "steps": info.steps, "markers": info.markers, "due": {"tags": len(due), "behind_ns": behind},
                "format": FORMAT}
        write_arrow(folder / "plan.arrow", rows.slice(0, bounds[1]), meta)

    def _plan_part_path(self, batch: int, partition: int) -> Path:
        return self._batch_dir(batch) / f"plan-{partition:05d}.arrow"

    def _plan_head(self, batch: int) -> tuple[PlanInfo, pa.Table]:
        """The plan's settings and the rows of its ``plan.arrow``: the tags of partition -1 (a plan
        written before the plan had a file per partition: every tag)."""
        path = self._batch_dir(batch) / "plan.arrow"
        table, meta = read_arrow(path)
        if meta.get("format") != FORMAT:
            raise StateFormatError(f"pi.state_path {self.root}: {path} was written by an earlier version of "
                                   f"pi-lakeflow (its digests hold no keys, so edits and deletes cannot be told "
                                   f"apart); a full refresh reads every tag again from pi.start "
                                   f"(pi-lakeflow run --full-refresh, or a full refresh on Databricks)")
        return PlanInfo(meta["batch"], meta["end_ns"], meta["partitions"], meta["lookback_ns"], meta["missing"],
                        meta["follows"], meta.get("steps", 1), meta.get("markers", False)), _as_plan(table)

    def due(self, batch: int) -> tuple[int, int | None]:
        """How many tags a batch reads, and where the one furthest behind starts (its cursor, or
        its origin while it has none; None: no tag), without reading the plan's tags."""
        path = self._batch_dir(batch) / "plan.arrow"
        meta = json.loads(pa.ipc.open_file(pa.py_buffer(path.read_bytes())).schema.metadata[b"pi_lakeflow"])
        if "due" in meta:
            return meta["due"]["tags"], meta["due"]["behind_ns"]
        rows = self.plan(batch)[1].filter(pc.field("partition") >= 0)  # a plan written before it was kept
        return len(rows), pc.min(pc.coalesce(rows["cursor_ns"], rows["origin_ns"])).as_py()

    def plan_info(self, batch: int) -> PlanInfo:
        """A batch's plan without its tags (but those kept aside, read with it)."""
        return self._plan_head(batch)[0]

    def plan(self, batch: int) -> tuple[PlanInfo, pa.Table]:
        """A batch's plan with every tag (the driver's view)."""
        info, head = self._plan_head(batch)
        parts = [_as_plan(read_arrow(path)[0]) for path in sorted(self._batch_dir(batch).glob("plan-*.arrow"))]
        return info, pa.concat_tables([head, *parts])

    def plan_part(self, batch: int, partition: int) -> tuple[PlanInfo, pa.Table]:
        """A batch's plan with the tags of one partition, each with its digest (a task's view):
        the digests the plan leaves in the files of the batch it follows are read from there."""
        info, head = self._plan_head(batch)
        path = self._plan_part_path(batch, partition)
        rows = _as_plan(read_arrow(path)[0]) if path.is_file() else head.filter(pc.equal(head["partition"], partition))
        return info, self.with_digests(rows, info.follows)

    def with_digests(self, rows: pa.Table, batch: int) -> pa.Table:
        """``rows`` (STATE or PLAN columns) with the digests their ``digest_partition`` leaves in
        the digest files of ``batch``, and ``digest_partition`` null. Each file is read once and
        searched for its own rows only.

        Raises
        ------
        RuntimeError
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
            path = self._digest_path(batch, partition)
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

    def _digests_lost(self, path: Path, what: str, batch: int) -> RuntimeError:
        return RuntimeError(f"pi.state_path {self.root}: {path} {what}, but the plan of the batch after {batch} "
                            f"reads its tags' digests from there; the state folder was changed by hand? A full "
                            f"refresh reads every tag again from pi.start")

    def batches(self) -> list[int]:
        """Batches that have a plan, oldest first."""
        folder = self.root / "batches"
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if (p / "plan.arrow").is_file())

    def written_since(self, batch: int, since_ns: int) -> bool:
        """Whether a file of the batch (its plan, a partition's progress or outcome) was written
        at or after ``since_ns``: the batch was planned, or run again, since then."""
        try:
            return any(path.stat().st_mtime_ns >= since_ns for path in self._batch_dir(batch).iterdir())
        except FileNotFoundError:  # pruned meanwhile
            return False

    def newest_finished(self) -> int:
        """The newest batch whose every partition has left its outcome; 0 when there is none."""
        return max((b for b in self.batches() if self.finished(b)), default=0)

    def finished(self, batch: int) -> bool:
        """Whether every partition of a planned batch has left its outcome (a batch of an earlier
        layout is not: without a start offset, Spark 4.0 and 4.1, the stream starts again from no
        state, a new history that removes it)."""
        try:
            info = self.plan_info(batch)
        except StateFormatError:
            return False
        return len(self.finished_partitions(batch)) == info.partitions

    # ---- progress ------------------------------------------------------------------------------
    def write_progress(self, batch: int, partition: int, progress: PartProgress) -> None:
        write_whole(self._batch_dir(batch) / f"progress-{partition:05d}.json",
                    json.dumps(progress.__dict__).encode())

    def progress(self, batch: int) -> dict[int, PartProgress]:
        """The partitions of a batch that have read a time slice, by partition number."""
        found = {}
        for path in self._batch_dir(batch).glob("progress-*.json"):
            try:
                found[int(path.stem.split("-")[1])] = PartProgress(**json.loads(path.read_bytes()))
            except FileNotFoundError:  # the batch was pruned meanwhile
                continue
        return found

    # ---- outcomes ------------------------------------------------------------------------------
    def write_outcome(self, batch: int, partition: int, rows: pa.Table, stats: PartStats) -> None:
        """Keep what a partition's task did: its tags' digests in their own file, then the rest
        (the digests left out, ``digest_partition`` pointing there), whose presence makes the
        partition finished."""
        write_arrow(self._digest_path(batch, partition), rows.select(["web_id", "digest"]), {})
        rows = _with_digest_columns(rows.select(OUTCOME.names).cast(OUTCOME), pa.nulls(len(rows), pa.binary()),
                                    pa.array(np.full(len(rows), partition, np.int32)))
        write_arrow(self._part_path(batch, partition), rows, stats.__dict__)

    def _part_path(self, batch: int, partition: int) -> Path:
        return self._batch_dir(batch) / f"part-{partition:05d}.arrow"

    def _digest_path(self, batch: int, partition: int) -> Path:
        return self._batch_dir(batch) / f"digest-{partition:05d}.arrow"

    def finished_partitions(self, batch: int) -> list[int]:
        """The partitions of a batch that have left their outcome (the files are not read)."""
        return sorted(int(p.stem.split("-")[1]) for p in self._batch_dir(batch).glob("part-*.arrow"))

    def outcome(self, batch: int, partition: int) -> tuple[pa.Table, PartStats]:
        table, meta = read_arrow(self._part_path(batch, partition))
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
            raise RuntimeError(f"batch {batch} is committed but partitions {missing} left no outcome under "
                               f"{self._batch_dir(batch)}; the state folder was changed by hand?")
        kept = head.filter(pc.equal(head["partition"], -1)).select(STATE_FIELDS)
        return pa.concat_tables([kept, *(t.select(STATE_FIELDS) for t, _ in outcomes.values())])

    def prune(self, keep_from: int) -> None:
        """Remove batches older than ``keep_from`` (no replay needs them), keeping their rows of
        the ingestion log in ``log/``."""
        for batch in self.batches():
            if batch < keep_from:
                write_arrow(self.root / "log" / f"{batch:08d}.arrow", log_rows(self, batch), {})
                shutil.rmtree(self._batch_dir(batch), ignore_errors=True)

    def archived_log(self, schema: pa.Schema) -> pa.Table:
        """The log rows of pruned batches, oldest first."""
        files = sorted((self.root / "log").glob("*.arrow"))
        return pa.concat_tables([read_arrow(f)[0] for f in files]) if files else schema.empty_table()

    # ---- catalog reads ---------------------------------------------------------------------------
    def write_catalog_errors(self, table: str, errors: dict[str, str], read_ns: int, part: str = "") -> None:
        """The items of a table's latest read that failed (none: an earlier read's are gone);
        ``part``: one of several files of the table (a partition of it, written by its task)."""
        rows = pa.table({"table": [table] * len(errors), "item": list(errors), "error": list(errors.values()),
                         "read_at": pa.array([read_ns // 1000] * len(errors), pa.int64()).cast(SPARK_TIMESTAMP)},
                        schema=CATALOG_LOG)
        write_arrow(self.root / "catalog" / f"{table}{'.' + part if part else ''}.arrow", rows, {})

    def clear_catalog_errors(self, table: str) -> None:
        """Forget every failed item of ``table`` (before a read that writes them by part)."""
        for path in (self.root / "catalog").glob(f"{table}.*arrow"):
            path.unlink(missing_ok=True)

    def catalog_log(self) -> pa.Table:
        """CATALOG_LOG: the failed items of each catalog table's latest read."""
        files = sorted((self.root / "catalog").glob("*.arrow"))
        return pa.concat_tables([read_arrow(f)[0] for f in files]) if files else CATALOG_LOG.empty_table()


def _with_digest_columns(rows: pa.Table, digests: pa.Array, partitions: pa.Array) -> pa.Table:
    """``rows`` with new ``digest`` and ``digest_partition`` columns (where the digests are)."""
    for name, values in (("digest", digests), ("digest_partition", partitions)):
        rows = rows.set_column(rows.schema.get_field_index(name), rows.schema.field(name), values)
    return rows


def _as_plan(rows: pa.Table) -> pa.Table:
    """Plan rows as PLAN: a plan written before back-fills had steps has no ``read_to_ns`` (each
    tag read to the plan's end), one written before markers no ``marker`` (none)."""
    return conformed(rows, PLAN)


def conformed(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` with ``schema``'s columns, in its order: a nullable column that files written
    by an earlier version lack is null."""
    for name in schema.names:
        if name not in rows.column_names:
            rows = rows.append_column(schema.field(name), pa.nulls(rows.num_rows, schema.field(name).type))
    return rows.select(schema.names).cast(schema)


class StatePathError(RuntimeError):
    """``pi.state_path`` cannot be used from this process; the message names the path and the step."""


#: The state paths this process has probed (Spark reuses its Python workers: once each is enough).
_PROBED: set[str] = set()


def probe(root: str | os.PathLike) -> None:
    """Do once per process what the store does all the time under ``root``: make a folder,
    write a whole file under a temporary name, rename it, read it back, remove the folder.

    Raises
    ------
    StatePathError
        One line naming ``pi.state_path``, the step that failed, the host and the OS error.
    """
    if str(root) in _PROBED:
        return
    folder = Path(root) / ".probe" / f"{socket.gethostname()}-{os.getpid()}"
    step = "make a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        step = "write and rename a file"
        write_arrow(folder / "probe.arrow", pa.table({"probe": [1]}), {"host": socket.gethostname()})
        step = "read a file"
        read_arrow(folder / "probe.arrow")
        step = "remove a folder"
        shutil.rmtree(folder)
        _PROBED.add(str(root))
    except OSError as error:
        raise StatePathError(
            f"pi.state_path {root}: cannot {step} there from {socket.gethostname()} ({error.strerror or error}); "
            f"it must be a folder that the driver and every Spark task can write (on Databricks a Unity "
            f"Catalog volume, /Volumes/<catalog>/<schema>/<volume>)") from None


#: How the Arrow files are compressed: zstd takes a digest to about half (bench/README.md) at
#: about 0.1 s per 28 MB written; reading decompresses whatever a file was written with.
_COMPRESSION = pa.ipc.IpcWriteOptions(compression="zstd")


def write_arrow(path: Path, table: pa.Table, meta: dict) -> None:
    """Write ``table`` with ``meta`` to ``path`` whole: serialized (zstd-compressed) in memory,
    written in one sequential pass under a temporary name, then renamed over ``path``."""
    schema = table.schema.with_metadata({"pi_lakeflow": json.dumps(meta)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema, options=_COMPRESSION) as writer:
        writer.write_table(table.replace_schema_metadata(schema.metadata))
    write_whole(path, sink.getvalue())


def write_whole(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` in one sequential pass under a temporary name, then rename
    it over ``path``: a reader sees the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def read_arrow(path: Path) -> tuple[pa.Table, dict]:
    """The table and meta of a file written by :func:`write_arrow`, read whole (no memory map)."""
    table = pa.ipc.open_file(pa.py_buffer(path.read_bytes())).read_all()
    return table.replace_schema_metadata(None), json.loads(table.schema.metadata[b"pi_lakeflow"])


# ---- the tables made from the state ---------------------------------------------------------

def ingestion_log(store: StateStore) -> pa.Table:
    """INGESTION_LOG: the log of pruned batches, then that of the finished batches kept."""
    live = [log_rows(store, b) for b in store.batches() if store.finished(b)]
    return pa.concat_tables([store.archived_log(INGESTION_LOG), *live])


def log_rows(store: StateStore, batch: int) -> pa.Table:
    """INGESTION_LOG rows of one finished batch."""
    info = store.plan_info(batch)
    rows = []
    if info.missing:
        rows.append({"batch": batch, "partition": -1, "tags": len(info.missing), "tags_failed": len(info.missing),
                     "values_read": 0, "values_landed": 0, "requests": 0, "retries": 0, "bytes_received": 0,
                     "read_to": info.end_ns // 1000, "failed_tags": list(info.missing.items())})
    for partition, (outcome, stats) in sorted(store.outcomes(batch).items()):
        failed = outcome.filter(pc.is_valid(outcome["last_error"]))
        rows.append({
            "batch": batch, "partition": partition, "started_at": stats.started_ns // 1000, "seconds": stats.seconds,
            "tags": len(outcome), "tags_failed": len(failed),
            "values_read": pc.sum(outcome["values_read"]).as_py() or 0,
            "values_landed": pc.sum(outcome["values_landed"]).as_py() or 0,
            "requests": stats.requests, "retries": stats.retries, "bytes_received": stats.bytes_received,
            "read_from_min": pc.min(outcome["read_from_ns"]).as_py() // 1000,
            "read_from_max": pc.max(outcome["read_from_ns"]).as_py() // 1000,
            "read_to": (stats.read_to_ns if stats.read_to_ns is not None else info.end_ns) // 1000,
            "failed_tags": [(name or web_id, error) for name, web_id, error
                            in zip(*(failed[c].to_pylist() for c in ("name", "web_id", "last_error")))],
            "tags_reread": stats.reread, "markers_lost": stats.lost,
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
