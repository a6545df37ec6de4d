"""The driver's plan of a time-series batch: which tags, the window each reads, their partitions.

Per tag, a batch reads ``[read_from, end)`` where ``read_from`` is the tag's cursor minus the
look-back (never before where the tag started), or ``pi.start`` for a tag seen the first time.
Computed on columns, in three steps (no Python loop over the tags: a million tags plan in
seconds): :func:`selection` (the tags this shard reads), :func:`windows` (each tag's window from
its state) and :func:`ordered` (the tags due, in partitions; the others kept aside).
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pi_client import Lookup, PiClient

from pi_lakeflow.config.settings import Settings
from pi_lakeflow.runtime.discovery import select_tags
from pi_lakeflow.state.store import PLAN, PlanInfo, StateStore

#: Where tags that had no partition in the batch before sort among the due tags: last.
_LAST = np.iinfo(np.int32).max


def plan_next(client: PiClient, settings: Settings, store: StateStore, follows: int, batch: int, now_ns: int,
              step_ns: int = 0, retry_failed: bool = True) -> PlanInfo | None:
    """Plan ``batch`` from the tag state after batch ``follows`` in ``store`` and keep the plan
    there (the tasks read it); None when nothing is due (see :func:`plan_batch`)."""
    planned = plan_batch(client, settings, store.tag_state(follows), follows, batch, now_ns, step_ns, retry_failed)
    if planned is None:
        return None
    info, rows = planned
    # The tags kept aside take their digests along (they may stay aside past the batches kept);
    # the others' stay in the digest files of batch ``follows``, which their tasks read.
    aside = pc.equal(rows["partition"], -1)
    rows = pa.concat_tables([rows.filter(pc.invert(aside)), store.with_digests(rows.filter(aside), follows)])
    store.write_plan(info, rows)
    return info


def plan_batch(client: PiClient, settings: Settings, previous: pa.Table, follows: int, batch: int, now_ns: int,
               step_ns: int = 0, retry_failed: bool = True) -> tuple[PlanInfo, pa.Table] | None:
    """The plan of ``batch`` from ``previous``, the tag state after batch ``follows`` (usually
    the batch before it; 0: no state); None when no tag has anything to read (``end`` has not
    moved) and every selected name exists. ``now_ns`` is the server's clock
    (PiClient.server_time): relative pi.start and pi.end (``*``) mean what they mean to PI.

    A selected tag the state knows keeps its state, with the name and point type the server gives
    now; a new one starts at ``pi.start``; a tag the state knows but the selection no longer
    holds is kept aside (partition -1) so that its cursor survives.

    ``step_ns`` (0: none) bounds a back-fill: each tag is read to at most ``step_ns`` past its
    cursor (its origin while it has none), so a long window takes several batches, each one
    committed; the plan says how many (PlanInfo.steps). With ``retry_failed`` False, a tag whose
    last read failed is kept aside (the later batches of one run read it no more: the next run does).
    """
    selected = selection(client, settings)
    end = settings.end_ns(now_ns)
    tags, known, moving, polled = windows(selected.table, previous, settings, settings.start_ns(now_ns), end,
                                          step_ns, retry_failed)
    due = tags.filter(moving)
    if not len(due) and not selected.errors:  # a batch of selected names the server lacks logs them
        return None
    steps = 1
    reading = tags.filter(pc.and_(moving, pc.invert(polled)))  # a polled tag is never behind
    if step_ns and len(reading):
        steps = max(1, -(-(end - pc.min(pc.coalesce(reading["cursor_ns"], reading["origin_ns"])).as_py()) // step_ns))
    order = ordered(tags, known, moving, previous)
    size = settings.partition_size
    partition = np.full(len(order), -1, np.int32)
    partition[:len(due)] = np.arange(len(due)) // size
    carried = _rows_at(previous.select(["digest", "digest_partition", "last_error", "rate", "marker"]), order["state"])
    if not settings.markers:  # markers left by runs with pi.changes markers are not used
        carried = carried.set_column(carried.schema.get_field_index("marker"), "marker",
                                     pa.nulls(len(carried), pa.string()))
    plan = pa.table({**{name: order[name] for name in ("web_id", "name", "point_type")}, "partition": partition,
                     **{name: order[name] for name in ("origin_ns", "cursor_ns", "read_from_ns")},
                     **{name: carried[name] for name in carried.column_names}, "read_to_ns": order["read_to_ns"]},
                    schema=PLAN)
    partitions = (len(due) + size - 1) // size
    return PlanInfo(batch, end, partitions, settings.lookback_ns, dict(selected.errors), follows, steps,
                    settings.markers), plan


def selection(client: PiClient, settings: Settings) -> Lookup:
    """The tags the settings select on the server, those of this shard (pi.shard) only; the
    selected names the server lacks are the first shard's to report."""
    selected = select_tags(client, settings)
    index, count = settings.shard
    if count <= 1:
        return selected
    mine = pa.array([shard_of(w, count) == index for w in selected.table["web_id"].to_pylist()], pa.bool_())
    return Lookup(selected.table.filter(mine), selected.errors if index == 0 else {})


def shard_of(web_id: str, count: int) -> int:
    """The shard (0 to count-1) a tag belongs to: a stable hash of its WebId."""
    return zlib.crc32(web_id.encode()) % count


def windows(chosen: pa.Table, previous: pa.Table, settings: Settings, start: int, end: int, step_ns: int,
            retry_failed: bool) -> tuple[pa.Table, pa.Table, pa.Array, pa.Array]:
    """Each selected tag's window from its state in ``previous``: the tags (web_id, name,
    point_type, origin_ns, cursor_ns, read_from_ns, read_to_ns, and ``state``: the index of its
    row in ``previous``, null for a new tag), their rows of ``previous`` (partition, origin_ns,
    cursor_ns, last_error, marker), which of them are due, and which of those follow a marker."""
    if previous.num_rows:
        at = pc.index_in(chosen["web_id"], value_set=previous["web_id"])
    else:  # no state yet (pyarrow 15, the Databricks runtimes', crashes computing over a table of no rows)
        at = pa.nulls(len(chosen), pa.int32())
    known = _rows_at(previous.select(["partition", "origin_ns", "cursor_ns", "last_error", "marker"]), at)
    origin = pc.if_else(pc.is_null(at), start, known["origin_ns"])
    cursor = known["cursor_ns"]
    # A known tag reads from its cursor minus the look-back (never before its origin), or from its
    # origin while it has no cursor (max_element_wise skips the null); a new tag from pi.start. A
    # tag with a marker (a cursor past the plan's end: values PI dates ahead) is asked for its
    # changes; read_from is where its digest begins, what a re-read may reach back to.
    read_from = pc.max_element_wise(origin, pc.subtract(pc.min_element_wise(cursor, end, skip_nulls=False),
                                                        settings.lookback_ns))
    polled = pc.is_valid(known["marker"]) if settings.markers else pa.repeat(False, len(chosen))
    # Where the tag's new time begins: its cursor, or its origin while it has none.
    behind = pc.coalesce(cursor, origin)
    read_to = pc.min_element_wise(pc.add(behind, step_ns), end) if step_ns else pa.nulls(len(chosen), pa.int64())
    read_to = pc.if_else(polled, pa.scalar(None, pa.int64()), read_to)
    tags = pa.table({"web_id": chosen["web_id"], "name": chosen["name"], "point_type": chosen["point_type"],
                     "origin_ns": origin, "cursor_ns": cursor, "read_from_ns": read_from, "read_to_ns": read_to,
                     "state": at.cast(pa.int64())})
    moving = pc.or_(polled, pc.and_(pc.less(read_from, end), pc.fill_null(pc.less(cursor, end), True)))
    if not retry_failed:
        moving = pc.and_(moving, pc.is_null(known["last_error"]))
    return tags, known, moving, polled


def ordered(tags: pa.Table, known: pa.Table, moving: pa.Array, previous: pa.Table) -> pa.Table:
    """The tags due first, in the order their partitions take them; then those kept aside
    (partition -1): selected tags with nothing to read yet, and the tags of ``previous`` gone
    from the selection (so that their cursors survive)."""
    # A tag stays with the tags of its partition in the batch before, so that a task reads its
    # digests from one or two of that batch's files (StateStore.plan_part). The others (new tags,
    # tags kept aside before) come after them; tags that start together share sub-requests, so a
    # partition holds tags of one start where it can.
    due = tags.filter(moving)
    last = pa.scalar(_LAST, pa.int32())
    before = pc.fill_null(pc.if_else(pc.greater_equal(known["partition"], 0), known["partition"], last), last)
    due = due.take(pc.sort_indices(pa.table({"before": before.filter(moving), "read_from_ns": due["read_from_ns"],
                                             "web_id": due["web_id"]}),
                                   [("before", "ascending"), ("read_from_ns", "ascending"), ("web_id", "ascending")]))
    waiting = tags.filter(pc.invert(moving))
    waiting = waiting.set_column(waiting.schema.get_field_index("read_to_ns"), "read_to_ns",
                                 pa.nulls(len(waiting), pa.int64()))
    if previous.num_rows:
        gone = pc.indices_nonzero(pc.invert(pc.is_in(previous["web_id"], value_set=tags["web_id"])))
    else:
        gone = pa.array([], pa.uint64())
    left = previous.select(["web_id", "name", "point_type", "origin_ns", "cursor_ns", "read_from_ns"]).take(gone)
    left = left.append_column("read_to_ns", pa.nulls(len(left), pa.int64()))
    return pa.concat_tables([due, waiting, left.append_column("state", gone).cast(tags.schema)])


def _rows_at(table: pa.Table, indices: pa.Array) -> pa.Table:
    """``table.take(indices)``: a row of nulls where an index is null. From a table of no rows
    (every index null), those rows are made here: pyarrow 15 crashes taking from one."""
    if table.num_rows == 0:
        return pa.table({field.name: pa.nulls(len(indices), field.type) for field in table.schema})
    return table.take(indices)
