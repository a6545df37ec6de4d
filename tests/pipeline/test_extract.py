"""The extraction without Spark: plan a batch, read its partitions slice by slice, land what
changed (Add, Update, Delete), and keep per-tag cursors, against the simulator's ground truth
over HTTP."""

from __future__ import annotations

import dataclasses
import math
import time
from collections import Counter

import pyarrow as pa
import pytest

import pi_lakeflow.runtime.partition as partition_module
from pi_client import Limits, PiClient, RetryPolicy
from pi_client.times import to_pi_time
from pi_lakeflow.runtime.partition import read_partition
from pi_lakeflow.runtime.plan import plan_batch, plan_next
from pi_lakeflow.config.settings import parse
from pi_lakeflow.state.store import StateStore
from pi_simulator import Clock, GroundTruth, PiWebApi, PlantConfig, ServerConfig, SimulatorServer
from tests.oracle import current_rows, landed_changes, truth_changes, truth_rows, value_row
from tests.simulators import NOW, make_server

pytestmark = pytest.mark.unit

TICK, HOUR = 100, 3_600_000_000_000
NOW_NS = NOW * TICK
PLANT = PlantConfig(tags=40, elements=50, event_frames=10, origin_ticks=NOW)


def landed_rows(tables: list[pa.Table]) -> list[tuple]:
    return [value_row(r) for table in tables for r in table.to_pylist()]


def run_batch(client, store, settings, batch, now_ns) -> tuple[list[pa.Table], pa.Table]:
    info = plan_next(client, settings, store, batch - 1, batch, now_ns)
    landed = [t for p in range(info.partitions) for t in read_partition(client, store, batch, p)]
    return landed, store.tag_state(batch)


@pytest.fixture
def setup(tmp_path):
    with make_server(PLANT) as server:
        settings = parse({"pi.url": server.url, "pi.state_path": str(tmp_path), "pi.start": to_pi_time(NOW_NS - 6 * HOUR),
                          "pi.end": "*", "pi.partition_size": "15", "pi.lookback": "1h", "pi.changes": "lookback"})
        client = PiClient(server.url, limits=Limits(values_per_batch=20_000),
                          retry=RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02))
        yield server, client, StateStore(tmp_path), settings
        client.close()


def test_slices_land_the_window_exactly_and_the_next_batch_only_what_is_new(setup):
    server, client, store, settings = setup
    truth = GroundTruth(server.api)
    points = server.api.plant.points
    before = client.transport.stats.snapshot()[0]
    first, state = run_batch(client, store, settings, 1, NOW_NS)
    assert client.transport.stats.snapshot()[0] - before > 2 * 3  # several slices per partition
    expected_first = truth_rows(truth, points, NOW_NS - 6 * HOUR, NOW_NS)
    assert sorted(landed_rows(first)) == sorted(expected_first)
    assert set(state["cursor_ns"].to_pylist()) == {NOW_NS}

    assert {r["action"] for t in first for r in t.to_pylist()} == {"Add"}

    server.api.clock.advance(HOUR // TICK)
    second, state = run_batch(client, store, settings, 2, NOW_NS + HOUR)
    expected_all = truth_rows(truth, points, NOW_NS - 6 * HOUR, NOW_NS + HOUR)
    changes = landed_changes(r for t in second for r in t.to_pylist())
    assert changes == truth_changes(expected_first, expected_all)
    assert {action for action, _ in changes} == {"Add", "Update", "Delete"}  # the plant edits and deletes
    assert current_rows(r for t in first + second for r in t.to_pylist()) == Counter(expected_all)
    assert set(state["cursor_ns"].to_pylist()) == {NOW_NS + HOUR}


def test_a_tag_failing_mid_window_keeps_what_it_landed_and_its_cursor_where_that_ends(setup, monkeypatch):
    server, client, store, settings = setup
    truth = GroundTruth(server.api)
    points = server.api.plant.points
    victim = points[0]
    calls = []
    real = partition_module.read_recorded

    def fail_after_first_slice(*args, **kwargs):  # the server starts refusing the tag after one slice
        calls.append(kwargs["end"])
        if len(calls) == 2:
            server.api.server_config = dataclasses.replace(server.api.server_config, failing_tags=(victim.name,))
        return real(*args, **kwargs)

    monkeypatch.setattr(partition_module, "read_recorded", fail_after_first_slice)
    first, state = run_batch(client, store, settings, 1, NOW_NS)
    row = next(r for r in state.to_pylist() if r["web_id"] == victim.web_id)
    first_slice_end = calls[0]
    assert row["cursor_ns"] == first_slice_end and "HTTP 500" in row["last_error"]
    mine = [r for r in landed_rows(first) if r[0] == victim.name]
    assert sorted(mine) == sorted(truth_rows(truth, [victim], NOW_NS - 6 * HOUR, first_slice_end))

    server.api.server_config = dataclasses.replace(server.api.server_config, failing_tags=())
    second, state = run_batch(client, store, settings, 2, NOW_NS)  # same end: only the victim is due
    landed = [r for r in landed_rows(first) + landed_rows(second) if r[0] == victim.name]
    assert not [r for r, n in Counter(landed).items() if n > 1]
    assert sorted(landed) == sorted(truth_rows(truth, [victim], NOW_NS - 6 * HOUR, NOW_NS))
    assert {r["action"] for t in second for r in t.to_pylist()} == {"Add"}
    assert set(state["cursor_ns"].to_pylist()) == {NOW_NS}


def test_a_back_fill_in_steps_lands_the_window_exactly_and_tags_joining_midway_hold_back_no_one(setup):
    """pi.step 2h over a 6-hour window: each batch reads each tag at most 2 hours past its cursor
    (a tag's first read from pi.start), so the first batch says 3 steps; tags that join the
    selection after the first step start at pi.start beside the others, one partition holding
    tags of two ends (a slice never passes a tag's end), and the others go on to the end. The
    batches together land the window exactly, nothing twice."""
    server, client, store, settings = setup
    truth, points = GroundTruth(server.api), server.api.plant.points
    start = NOW_NS - 6 * HOUR
    early = dataclasses.replace(settings, tag_names=tuple(p.name for p in points[:20]))
    cursors_after, landed, steps = [], [], []
    for batch, chosen in enumerate([early, settings, settings, settings], 1):
        info = plan_next(client, chosen, store, batch - 1, batch, NOW_NS, step_ns=2 * HOUR)
        plan = store.plan(batch)[1].filter(pa.compute.field("partition") >= 0).to_pylist()
        assert all(r["read_to_ns"] - (r["cursor_ns"] or r["origin_ns"]) <= 2 * HOUR for r in plan)
        steps.append(info.steps)
        landed += [t for p in range(info.partitions) for t in read_partition(client, store, batch, p)]
        state = store.tag_state(batch)
        cursors_after.append(Counter((r["web_id"] in {p.web_id for p in points[:20]}, r["cursor_ns"] - start)
                                     for r in state.to_pylist()))
    assert plan_next(client, settings, store, 4, 5, NOW_NS, step_ns=2 * HOUR) is None
    assert steps == [3, 3, 2, 1]
    assert cursors_after == [Counter({(True, 2 * HOUR): 20}),
                             Counter({(True, 4 * HOUR): 20, (False, 2 * HOUR): 20}),
                             Counter({(True, 6 * HOUR): 20, (False, 4 * HOUR): 20}),
                             Counter({(True, 6 * HOUR): 20, (False, 6 * HOUR): 20})]
    assert current_rows(r for t in landed for r in t.to_pylist()) == Counter(truth_rows(truth, points, start, NOW_NS))
    assert {r["action"] for t in landed for r in t.to_pylist()} == {"Add"}


def test_shards_split_the_tags_without_overlap(setup):
    server, client, store, settings = setup
    planned = []
    for index in range(3):
        sharded = dataclasses.replace(settings, shard=(index, 3))
        info, plan = plan_batch(client, sharded, store.tag_state(0), 0, 1, NOW_NS)
        planned.append(set(plan["web_id"].to_pylist()))
    assert sum(len(p) for p in planned) == len(server.api.plant.points) and all(planned)
    assert set().union(*planned) == {p.web_id for p in server.api.plant.points}


@pytest.mark.parametrize("changes", ["lookback", "markers"])
@pytest.mark.parametrize("days", [-900, 3], ids=["server behind", "server ahead"])
def test_windows_end_at_the_servers_now_whatever_this_machines_clock_says(tmp_path, days, changes):
    """pi.end ``*`` is the server's now (system/status ServerTime), as the time-series source plans
    it: a server whose clock is years behind this machine's (or days ahead) loses nothing, read
    by look-back or through markers (a tag registered reads to a day past the server's now)."""
    server_now = time.time_ns() // TICK + days * 864_000_000_000
    plant = PlantConfig(tags=10, elements=10, event_frames=2, origin_ticks=server_now)
    with SimulatorServer(PiWebApi(plant, ServerConfig(), Clock(server_now))) as server, \
            PiClient(server.url, retry=RetryPolicy(attempts=2, backoff=0.01, max_backoff=0.02)) as client:
        settings = parse({"pi.url": server.url, "pi.state_path": str(tmp_path), "pi.start": "*-3h", "pi.end": "*",
                          "pi.lookback": "1h", "pi.changes": changes})
        store, truth, points, now_ns = StateStore(tmp_path), GroundTruth(server.api), server.api.plant.points, server_now * TICK
        assert client.server_time() == now_ns
        first, _ = run_batch(client, store, settings, 1, client.server_time())
        server.api.clock.advance(HOUR // TICK)
        second, state = run_batch(client, store, settings, 2, client.server_time())
        if changes == "lookback":
            assert set(state["cursor_ns"].to_pylist()) == {now_ns + HOUR}
        assert current_rows(r for t in first + second for r in t.to_pylist()) == \
            Counter(truth_rows(truth, points, now_ns - 3 * HOUR, now_ns + HOUR + TICK))
        assert any(t.num_rows for t in second)


def planned_by_hand(selected: list[dict], state: list[dict], settings, start: int, end: int, step: int = 0,
                    retry_failed: bool = True) -> tuple[list, list, int]:
    """The planning rules, tag by tag (the oracle of the column planner): a known tag reads from
    its cursor minus the look-back, never before its origin, or from its origin without a cursor;
    a new tag from pi.start; with a step, to at most a step past its cursor (its origin without
    one), else to the end; a tag is due when it starts before the end and its cursor is not at
    the end yet (and, without retry_failed, its last read did not fail); due tags sorted by
    (their partition in the batch before, those without one last; read_from; web_id) fill
    partitions of pi.partition_size; the others, and the state's tags the selection no longer
    holds, are kept aside. Every tag keeps its digest as the state has it (in the row, or where
    digest_partition says). Also the steps: the due tag furthest behind, in steps."""
    known = {row["web_id"]: row for row in state}
    due, aside = [], []
    for tag in selected:
        row = known.pop(tag["web_id"], None)
        if row is None:
            row = {"web_id": tag["web_id"], "partition": -1, "origin_ns": start, "cursor_ns": None, "digest": None,
                   "digest_partition": None, "last_error": None, "rate": None, "marker": None}
        cursor = row["cursor_ns"]
        marker = row["marker"] if settings.markers else None
        read_from = row["origin_ns"] if cursor is None else \
            max(row["origin_ns"], min(cursor, end) - settings.lookback_ns)
        behind = row["origin_ns"] if cursor is None else cursor
        reads = (marker is not None or read_from < end and (cursor is None or cursor < end)) and \
            (retry_failed or row["last_error"] is None)
        row = {**row, "name": tag["name"], "point_type": tag["point_type"], "read_from_ns": read_from,
               "marker": marker, "read_to_ns": min(behind + step, end) if step and reads and marker is None else None}
        (due if reads else aside).append(row)
    due.sort(key=lambda r: (r["partition"] if r["partition"] >= 0 else math.inf, r["read_from_ns"], r["web_id"]))
    planned = [{**r, "partition": i // settings.partition_size} for i, r in enumerate(due)]
    aside = [{**r, "marker": r["marker"] if settings.markers else None} for r in aside + list(known.values())]
    furthest = min((r["origin_ns"] if r["cursor_ns"] is None else r["cursor_ns"] for r in due if r["marker"] is None),
                   default=end)
    steps = max(1, math.ceil((end - furthest) / step)) if step else 1
    return planned, [{**r, "partition": -1, "read_to_ns": None} for r in aside], steps


def test_the_plan_follows_the_planning_rules_for_any_state(tmp_path):
    """plan_batch (Arrow compute over the tag state) against planned_by_hand, over a real
    selection from the simulator and 40 random states: new tags, tags without a cursor, cursors
    at or past the end, tags the selection no longer holds, several look-backs, partition sizes and
    steps, failed tags retried or not."""
    import random

    from pi_lakeflow.runtime.discovery import select_tags
    from pi_lakeflow.state.store import PLAN, STATE

    rng = random.Random(19)
    with make_server(PLANT) as server, PiClient(server.url) as client:
        for trial in range(40):
            settings = parse({"pi.url": server.url, "pi.state_path": str(tmp_path), "pi.start": "*-6h",
                              "pi.partition_size": str(rng.randint(1, 9)), "pi.changes": rng.choice(["markers", "lookback"]),
                              "pi.lookback": rng.choice(["0s", "1h", "2d"]), "pi.tags.name_filter": "*"})
            end, start = settings.end_ns(NOW_NS), settings.start_ns(NOW_NS)
            selected = select_tags(client, settings).table.to_pylist()
            gone = [{"web_id": f"GONE{i}", "name": f"gone-{i}", "point_type": "Int32"} for i in range(rng.randint(0, 3))]
            state = [{"web_id": tag["web_id"], "name": "an older name", "point_type": tag["point_type"],
                      "partition": rng.randint(-1, 2), "origin_ns": start - rng.randint(0, 10 * HOUR),
                      "cursor_ns": rng.choice([None, end, end + HOUR, end - rng.randint(1, 20 * HOUR)]),
                      "read_from_ns": 0, "digest": rng.randbytes(rng.randint(0, 40)),
                      "digest_partition": rng.choice([None, rng.randint(0, 2)]),
                      "last_error": rng.choice([None, "HTTP 500"]), "rate": rng.choice([None, 1 / 60]),
                      "marker": rng.choice([None, f"{trial:032x}_1"])}
                     for tag in rng.sample(selected + gone, rng.randint(0, len(selected)))]
            step, retry_failed = rng.choice([0, HOUR, 24 * HOUR]), rng.random() < 0.5
            planned = plan_batch(client, settings, pa.Table.from_pylist(state, schema=STATE), 1, 2, NOW_NS,
                                 step, retry_failed)
            due, aside, steps = planned_by_hand(selected, state, settings, start, end, step, retry_failed)
            if not due:
                assert planned is None, trial
                continue
            info, plan = planned
            assert plan.schema == PLAN and info.partitions == due[-1]["partition"] + 1 and info.end_ns == end
            assert info.steps == steps, trial
            rows = plan.to_pylist()
            assert rows[:len(due)] == [{f: r[f] for f in PLAN.names} for r in due], trial  # order: the partitions
            assert sorted(rows[len(due):], key=lambda r: r["web_id"]) == \
                sorted(({f: r[f] for f in PLAN.names} for r in aside), key=lambda r: r["web_id"]), trial


def test_a_values_hash_does_not_depend_on_the_rows_beside_it():
    """landing.value_hashes of a digital state alone, or of a boolean alone, equals its hash
    among numbers (pandas types a column by whether it holds nulls): a value reported alone by a
    marker and read again among others is the same value, not an Update."""
    from pi_client import schemas
    from pi_lakeflow.runtime.landing import value_hashes

    flags = {"good": True, "questionable": False, "substituted": False, "annotated": False}
    rows = pa.Table.from_pylist([
        {"web_id": "W1", "timestamp": 1, "ordinal": 0, "state_name": "Bad Input", "state_code": 307, "is_system": True,
         **flags, "good": False},
        {"web_id": "W2", "timestamp": 2, "ordinal": 0, "value_bool": True, "is_system": False, **flags},
        {"web_id": "W3", "timestamp": 3, "ordinal": 0, "value_double": 1.5, "is_system": False, **flags},
    ], schema=schemas.VALUES)
    together = value_hashes(rows)
    assert [value_hashes(rows.slice(i, 1))[0] for i in range(3)] == list(together)
    assert len(set(together)) == 3
