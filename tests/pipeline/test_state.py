"""The state store of the time-series source: plans, outcomes, tag state, pruning and the log."""

from __future__ import annotations

import json
import shutil
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pi_lakeflow.errors import StateLostError, StatePathError
from pi_lakeflow.state.files import probe
from pi_lakeflow.state.layouts import conformed
from pi_lakeflow.state.log import ingestion_log, tag_cursors
from pi_lakeflow.state.store import OUTCOME, PLAN, PartProgress, PartStats, PlanInfo, StateStore

pytestmark = pytest.mark.unit

END = 1_714_608_000_000_000_000


def plan_rows(batch: int) -> pa.Table:
    return pa.Table.from_pylist([
        {"web_id": "A", "name": "a", "partition": 0, "origin_ns": 0, "cursor_ns": None, "read_from_ns": 0},
        {"web_id": "B", "name": "b", "partition": 0, "origin_ns": 0, "cursor_ns": 5, "read_from_ns": 1},
        {"web_id": "C", "name": "c", "partition": -1, "origin_ns": 0, "cursor_ns": 7, "read_from_ns": 7},
    ], schema=PLAN)


def finish(store: StateStore, batch: int, fail_b: bool = False) -> None:
    store.write_plan(PlanInfo(batch, END + batch, 1, 10, {"GONE": "not found"}, batch - 1), plan_rows(batch))
    outcome = [{"web_id": "A", "name": "a", "partition": 0, "origin_ns": 0, "cursor_ns": END + batch,
                "read_from_ns": 0, "digest": b"\x01" * 8, "values_read": 3, "values_landed": 2},
               {"web_id": "B", "name": "b", "partition": 0, "origin_ns": 0, "cursor_ns": 5, "read_from_ns": 1,
                "last_error": "HTTP 500: down", "values_read": 0, "values_landed": 0} if fail_b else
               {"web_id": "B", "name": "b", "partition": 0, "origin_ns": 0, "cursor_ns": END + batch,
                "read_from_ns": 1, "values_read": 1, "values_landed": 1}]
    store.write_outcome(batch, 0, pa.Table.from_pylist(outcome, schema=OUTCOME), PartStats(END, 1.5, 2, 1, 100))


def test_tag_state_merges_outcomes_with_the_tags_kept_aside(tmp_path):
    store = StateStore(tmp_path)
    finish(store, 1, fail_b=True)
    state = {r["web_id"]: r for r in store.tag_state(1).to_pylist()}
    assert state["A"]["cursor_ns"] == END + 1
    # The digests stay in the partition's digest file (the driver plans without them); read, they are back.
    assert state["A"]["digest"] is None and state["A"]["digest_partition"] == 0
    read = store.with_digests(store.tag_state(1), 1).to_pylist()
    assert {r["web_id"]: r["digest"] for r in read} == {"A": b"\x01" * 8, "B": None, "C": None}
    assert state["B"]["cursor_ns"] == 5 and state["B"]["last_error"] == "HTTP 500: down"
    assert state["C"]["cursor_ns"] == 7  # not selected in this batch: its cursor survives
    log = ingestion_log(store).to_pylist()
    assert [(r["partition"], r["tags"], r["tags_failed"]) for r in log] == [(-1, 1, 1), (0, 2, 1)]
    assert dict(log[0]["failed_tags"]) == {"GONE": "not found"} and dict(log[1]["failed_tags"]) == {"b": "HTTP 500: down"}
    assert sorted(r["web_id"] for r in tag_cursors(store).to_pylist()) == ["A", "B", "C"]


def test_a_task_reads_its_tags_digests_where_the_batch_before_left_them(tmp_path):
    store = StateStore(tmp_path)
    finish(store, 1)
    store.write_plan(PlanInfo(2, END + 2, 1, 10, {}, 1), conformed(store.tag_state(1), PLAN))
    _, head = store.plan(2)
    assert head["digest"].null_count == 3  # the driver's plan holds no digest
    _, rows = store.plan_part(2, 0)
    assert {r["web_id"]: r["digest"] for r in rows.to_pylist()} == {"A": b"\x01" * 8, "B": None}
    (tmp_path / "batches" / "00000001" / "digest-00000.arrow").unlink()
    with pytest.raises(StateLostError, match=r"digest-00000.arrow is gone, but the plan of the batch after 1 "
                                           r"reads its tags' digests from there.*full refresh"):
        store.plan_part(2, 0)


def test_digests_are_found_in_the_files_of_several_partitions_whatever_the_rows_order(tmp_path):
    """What the driver does for tags it keeps aside and a task for its tags: each row gets the
    digest its digest_partition names, rows that carry their own keep it."""
    store = StateStore(tmp_path)
    rows = [{"web_id": f"T{i}", "partition": i % 3, "origin_ns": 0, "cursor_ns": END, "read_from_ns": 0,
             "digest": bytes([i]) * 8, "values_read": 0, "values_landed": 0} for i in range(12)]
    table = pa.Table.from_pylist(rows, schema=OUTCOME)
    for partition in range(3):
        store.write_outcome(1, partition, table.filter(pc.equal(table["partition"], partition)),
                            PartStats(END, 1.0, 1, 0, 0))
    wanted = [{"web_id": f"T{i}", "partition": -1, "origin_ns": 0, "read_from_ns": 0,
               "digest": b"own" if i == 4 else None, "digest_partition": None if i in (4, 7) else i % 3}
              for i in (11, 4, 0, 7, 5, 3, 10, 1)]
    found = store.with_digests(pa.Table.from_pylist(wanted, schema=PLAN), 1).to_pylist()
    assert [(r["web_id"], r["digest"]) for r in found] == \
        [(f"T{i}", b"own" if i == 4 else None if i == 7 else bytes([i]) * 8) for i in (11, 4, 0, 7, 5, 3, 10, 1)]
    assert all(r["digest_partition"] is None for r in found)


def test_pruning_keeps_the_log_and_a_new_history_clears_it(tmp_path):
    store = StateStore(tmp_path)
    for batch in range(1, 6):
        finish(store, batch)
    store.prune(5)  # the committed batch and the three before it stay (state.offsets.KEEP)
    assert store.batches() == [2, 3, 4, 5]
    assert [r["batch"] for r in ingestion_log(store).to_pylist() if r["partition"] == 0] == [1, 2, 3, 4, 5]
    finish(store, 5)  # a replanned batch replaces the attempt before it
    assert store.batches() == [2, 3, 4, 5] and len(store.outcomes(5)) == 1
    store.write_plan(PlanInfo(1, END, 1, 10, {}, 0), plan_rows(1))  # a full refresh starts at batch 1 again
    assert store.batches() == [1] and ingestion_log(store).num_rows == 0 and not store.finished(1)


def test_a_state_path_that_cannot_be_written_fails_in_one_line_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder cannot be made under a file (root may write anywhere else)
    with pytest.raises(StatePathError) as failed:
        probe(blocker / "state")
    message = str(failed.value)
    assert message.startswith(f"pi.state_path {blocker / 'state'}: cannot make a folder there from ")
    assert "\n" not in message and "Unity Catalog volume" in message
    probe(tmp_path / "state")  # a writable folder passes and keeps nothing
    assert not list((tmp_path / "state" / ".probe").iterdir())


def test_files_are_read_whole_without_a_memory_map(tmp_path, monkeypatch):
    """FUSE mounts (Unity Catalog volumes) commonly refuse memory maps: the store never asks for one."""
    monkeypatch.setattr(pa, "memory_map", None)
    store = StateStore(tmp_path)
    finish(store, 1)
    assert store.tag_state(1).num_rows == 3 and store.newest_finished() == 1
    assert not list(tmp_path.rglob("*.tmp"))  # written under a temporary name, then renamed


def test_a_long_read_reports_how_far_its_tasks_are_and_says_when_no_slice_finished(tmp_path, capsys, monkeypatch):
    """The run's watcher (local engine) over a real store: a batch of 4 partitions, 2 reading."""
    from pi_lakeflow.local import watcher as engine_watcher

    store = StateStore(tmp_path)
    store.write_plan(PlanInfo(1, END, 4, 10, {}, 0), plan_rows(1))
    watcher = engine_watcher.PartitionWatcher(store, 0)
    watcher.report()  # sees the plan
    watcher.planned[1] -= 120  # planned two minutes ago
    watcher.news -= engine_watcher.QUIET_SECONDS
    store.write_progress(1, 0, PartProgress(1_000, 900, 0.5))
    store.write_progress(1, 1, PartProgress(300, 300, 0.3))
    watcher.report()
    line = capsys.readouterr().out
    assert "reading, 0/4 partitions done; 1,200 values landed so far, 20% of the window read, about 8 min left" in line
    watcher.moved -= engine_watcher.QUIET_SECONDS  # no task read a slice since
    watcher.news -= engine_watcher.QUIET_SECONDS
    watcher.report()
    assert "no time slice finished for 30 s" in capsys.readouterr().out


def test_on_a_terminal_a_long_read_is_a_bar_with_values_tags_and_time_left(tmp_path, capsys):
    """The watcher with ``bar``: a progress line every report, marked for terminal.relay to draw in
    place; finished partitions still print their line, and a stalled read still says so."""
    from pi_lakeflow.local import terminal, watcher as engine_watcher

    store = StateStore(tmp_path)
    store.write_plan(PlanInfo(1, END, 2, 10, {}, 0), plan_rows(1))  # a and b in partition 0; c kept aside
    watcher = engine_watcher.PartitionWatcher(store, 0, bar=True)
    watcher.report()
    assert capsys.readouterr().out.endswith("0%  0 values  0/2 tags  estimating\n")  # no slice read yet
    watcher.planned[1] -= 60
    store.write_progress(1, 0, PartProgress(1_000, 900, 0.5))
    watcher.report()
    bar = capsys.readouterr().out
    assert bar == terminal.PROGRESS_MARK + "batch 1 [#####...............]  25%  900 values  0/2 tags  3 min left\n"
    store.write_outcome(1, 0, pa.Table.from_pylist([
        {"web_id": "A", "name": "a", "partition": 0, "origin_ns": 0, "cursor_ns": END, "read_from_ns": 0,
         "values_read": 1_000, "values_landed": 900},
        {"web_id": "B", "name": "b", "partition": 0, "origin_ns": 0, "cursor_ns": END, "read_from_ns": 1,
         "values_read": 0, "values_landed": 0}], schema=OUTCOME), PartStats(END, 1.5, 2, 1, 100))
    store.write_progress(1, 0, PartProgress(1_000, 900, 1.0))
    watcher.report()
    lines = capsys.readouterr().out.splitlines()
    assert "batch 1: partition 0 read (1 of 2): 2 tags, 900 values landed" in lines[0]
    assert lines[1].startswith(terminal.PROGRESS_MARK + "batch 1 [##########..........]  50%  900 values  2/2 tags")
    watcher.moved -= engine_watcher.QUIET_SECONDS
    watcher.news -= engine_watcher.QUIET_SECONDS
    watcher.report()
    assert "no time slice finished for 30 s" in capsys.readouterr().out


def test_the_files_a_killed_run_left_uncommitted_are_found_through_the_sink_log(tmp_path):
    """local.uncommitted over a file-sink log as Spark writes it: batches 0-9 compacted into
    ``9.compact`` (older batch files may remain), batch 10 adds a file and deletes one; the files
    in the folder that the log does not hold are the uncommitted ones. A folder whose log names
    files elsewhere (moved) yields none."""
    from pi_lakeflow.local.uncommitted import committed_files, remove_uncommitted, uncommitted_files

    table = tmp_path / "warehouse" / "pi_timeseries"
    log = table / "_spark_metadata"
    (table / "date=2024-05-01").mkdir(parents=True)
    log.mkdir()

    def entries(*pairs: tuple[str, str]) -> str:
        return "v1\n" + "\n".join(json.dumps({"path": (table / name).as_uri(), "size": 1, "action": action})
                                  for name, action in pairs) + "\n"

    (log / "3").write_text(entries(("part-00000-a.parquet", "add")))  # compacted since
    (log / "9.compact").write_text(entries(("part-00000-a.parquet", "add"),
                                           ("date=2024-05-01/part-00000-b.parquet", "add"),
                                           ("part-00000-c.parquet", "add")))
    (log / "10").write_text(entries(("part-00000-d.parquet", "add"), ("part-00000-c.parquet", "delete")))
    for name in ("part-00000-a.parquet", "date=2024-05-01/part-00000-b.parquet", "part-00000-d.parquet",
                 "part-00000-killed.parquet", "date=2024-05-01/part-00001-killed.parquet"):
        (table / name).write_bytes(b"PAR1")
    (table / ".part-00000-killed.parquet.crc").write_bytes(b"crc")
    assert committed_files(table) == {table / "part-00000-a.parquet", table / "date=2024-05-01/part-00000-b.parquet",
                                      table / "part-00000-d.parquet"}
    assert uncommitted_files(table) == [table / "date=2024-05-01/part-00001-killed.parquet",
                                        table / "part-00000-killed.parquet"]
    assert committed_files(tmp_path) is None  # no log: not a streaming table's folder
    moved = tmp_path / "moved"
    shutil.copytree(table, moved / "pi_timeseries")
    assert uncommitted_files(moved / "pi_timeseries") == []  # its log names the old place: nothing is touched
    removed = remove_uncommitted(tmp_path / "warehouse")
    assert [(r.table, r.files, r.bytes) for r in removed] == [("pi_timeseries", 2, 8)]
    left = sorted(p.relative_to(table).as_posix() for p in table.rglob("*") if p.is_file() and "_spark" not in str(p))
    assert left == ["date=2024-05-01/part-00000-b.parquet", "part-00000-a.parquet", "part-00000-d.parquet"]


def test_a_task_reads_only_its_partition_of_the_plan_and_a_one_file_plan_still_reads(tmp_path):
    """write_plan keeps one file per partition (at 100,000 tags the digests make the plan tens of
    megabytes, and every task read all of it); plan() is still every tag, plan_part() one
    partition's; a plan written as one file (before this layout) reads the same."""
    from pi_lakeflow.state.files import write_arrow
    from pi_lakeflow.state.layouts import FORMAT

    rows = pa.Table.from_pylist([
        {"web_id": "D", "name": "d", "partition": 1, "origin_ns": 0, "cursor_ns": 9, "read_from_ns": 2},
        *plan_rows(1).to_pylist()], schema=PLAN)  # partitions 1, 0, 0, -1: not in order
    info = PlanInfo(1, END, 2, 10, {}, 0)
    store = StateStore(tmp_path / "parts")
    store.write_plan(info, rows)
    folder = tmp_path / "parts" / "batches" / "00000001"
    assert sorted(p.name for p in folder.iterdir()) == ["plan-00000.arrow", "plan-00001.arrow", "plan.arrow"]
    assert store.plan_info(1) == info
    assert [r["web_id"] for r in store.plan_part(1, 0)[1].to_pylist()] == ["A", "B"]
    assert [r["web_id"] for r in store.plan_part(1, 1)[1].to_pylist()] == ["D"]
    assert sorted(store.plan(1)[1]["web_id"].to_pylist()) == ["A", "B", "C", "D"]
    one_file = StateStore(tmp_path / "one")
    meta = {"batch": 1, "end_ns": END, "partitions": 2, "lookback_ns": 10, "missing": {}, "follows": 0,
            "format": FORMAT}
    # As written then: no read_to_ns (each tag read to the plan's end), no count of the due tags.
    write_arrow(tmp_path / "one" / "batches" / "00000001" / "plan.arrow", rows.drop_columns(["read_to_ns"]), meta)
    assert one_file.plan_info(1) == info and one_file.plan(1)[1].num_rows == 4
    assert [r["web_id"] for r in one_file.plan_part(1, 0)[1].to_pylist()] == ["A", "B"]
    assert one_file.plan_part(1, 0)[1]["read_to_ns"].null_count == 2
    # The tags a batch reads and where the one furthest behind starts (A: no cursor, origin 0).
    assert store.due(1) == one_file.due(1) == (3, 0)
    assert store.written_since(1, 0) and not store.written_since(1, time.time_ns() + 10**9)
    assert not store.written_since(2, 0)
    for each in (store, one_file):  # the tags kept aside survive into the state after the batch
        for partition, tags in ((0, ["A", "B"]), (1, ["D"])):
            outcome = each.plan_part(1, partition)[1].append_column("values_read", pa.array([0] * len(tags), pa.int64()))
            outcome = outcome.append_column("values_landed", pa.array([0] * len(tags), pa.int64()))
            each.write_outcome(1, partition, outcome, PartStats(END, 1.0, 1, 0, 10))
        assert sorted(each.tag_state(1)["web_id"].to_pylist()) == ["A", "B", "C", "D"]
