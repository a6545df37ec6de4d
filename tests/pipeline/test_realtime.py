"""Real-time reads (pi_lakeflow.realtime): polls of PI stream updates against the simulator on
loopback, with its clock frozen and moved by the test, compared with the simulator's own
account of what changed when."""

from __future__ import annotations

import dataclasses
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pyarrow as pa
import pytest
import yaml
from pyspark.sql import SparkSession

from pi_client import PiClient
from pi_client.times import to_ns
from pi_lakeflow.config.settings import parse
from pi_lakeflow.runtime.channels import ChannelListener
from pi_lakeflow.runtime.realtime import MarkerStore, plan_layout, read_poll, write_pushed
from pi_simulator import GroundTruth
from tests.oracle import event_row, truth_events, truth_json
from tests.pipeline.conformance import check_tables, realtime_tables
from tests.pipeline.harness import last_poll, wait_for_poll
from tests.simulators import NOW, make_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark]

MINUTE_TICKS = 600_000_000
TAGS = 40


def truth_since_cursor(truth: GroundTruth, points, state: dict) -> Counter:
    """Every recorded value from each tag's cursor on, less the ones already known at the
    cursor, as Adds: what a recovery must land."""
    found = Counter()
    for point in points:
        row = state[point.web_id]
        at_cursor = 0
        for value in truth.recorded(point.name, row["cursor_ns"] // 100, truth.api.now()):
            stamp = to_ns(value["Timestamp"])
            if stamp == row["cursor_ns"] and at_cursor < row["at_cursor"]:
                at_cursor += 1
                continue
            found[(point.name, "Add", stamp, truth_json(value["Value"]), value["Good"], value["Questionable"],
                   value["Substituted"], value["Annotated"])] += 1
    return found


def assert_timestamps_typed(events: pa.Table, points) -> None:
    """Every value of a Timestamp point carries value_timestamp, its text read as a time (as in
    pi_timeseries)."""
    stamped = {p.web_id for p in points if p.measurement.point_type == "Timestamp"}
    micros = events["value_timestamp"].cast(pa.int64()).to_pylist()
    for web_id, text, typed in zip(events["web_id"].to_pylist(), events["value_string"].to_pylist(), micros):
        if web_id in stamped and text is not None:
            assert typed is not None and typed * 1000 == to_ns(text), (web_id, text, typed)


def timestamp_points_landed(landed: Counter, points) -> bool:
    names = {p.name for p in points if p.measurement.point_type == "Timestamp"}
    return any(name in names for name, *_ in landed)


@pytest.fixture
def polling(fresh_server, tmp_path):
    api = fresh_server.api
    settings = parse({"pi.url": fresh_server.url, "pi.state_path": str(tmp_path), "pi.partition_size": "15",
                      "pi.tags.names": ",".join(p.name for p in api.plant.points[:TAGS])})
    store = MarkerStore(tmp_path)
    with PiClient(fresh_server.url) as client:
        store.write_layout(plan_layout(client, settings, None))

        def run(poll_number: int) -> Counter:
            landed = Counter()
            for partition in store.partitions():
                for events in read_poll(client, store, poll_number, partition):
                    assert_timestamps_typed(events, api.plant.points[:TAGS])
                    landed.update(event_row(r) for r in events.to_pylist())
            return landed
        yield api, store, run


def state_after(store: MarkerStore, poll_number: int) -> dict:
    return {r["web_id"]: r for p in store.partitions() for r in store.read(poll_number, p)[0].to_pylist()}


def test_polls_land_every_change_once_and_recover_a_lost_marker_without_gap_or_repeat(polling):
    api, store, run = polling
    truth, points = GroundTruth(api), api.plant.points[:TAGS]
    assert store.partitions() == [0, 1, 2]

    assert run(1) == Counter()  # registration: a marker and a cursor per tag, no events yet
    registered = state_after(store, 1)
    assert all(r["marker"] and r["cursor_ns"] <= NOW * 100 for r in registered.values())

    api.clock.advance(30 * MINUTE_TICKS)
    second = run(2)
    assert second == truth_events(truth, points, NOW, NOW + 30 * MINUTE_TICKS)
    actions = Counter(action for _, action, *_ in second.elements())
    assert actions["Add"] > 1000 and actions["Update"] and actions["Delete"], actions
    assert timestamp_points_landed(second, points)  # and typed, as every poll's (run)
    assert run(2) == second  # a replayed poll starts from the same markers

    # The server forgets every marker; the next poll registers again and re-reads from the cursors.
    cursors = state_after(store, 2)
    api.clock.advance(10 * MINUTE_TICKS)
    with api._marker_lock:
        api._markers.clear()
    third = run(3)
    assert all(r["recovered"] for r in state_after(store, 3).values())
    assert third == truth_since_cursor(truth, points, cursors) and timestamp_points_landed(third, points)
    assert not set(third) & set(second), "a value landed again after the recovery"

    api.clock.advance(10 * MINUTE_TICKS)
    assert run(4) == truth_events(truth, points, NOW + 40 * MINUTE_TICKS, NOW + 50 * MINUTE_TICKS)


def test_an_unreachable_server_fails_no_poll_and_the_markers_wait(polling):
    api, store, run = polling
    run(1)
    before = state_after(store, 1)
    api.server_config = dataclasses.replace(api.server_config, fault_rate=1.0, faults=("503",))
    assert run(2) == Counter()
    after = state_after(store, 2)
    assert all(after[w]["marker"] == before[w]["marker"] and after[w]["error"] for w in before)
    api.server_config = dataclasses.replace(api.server_config, fault_rate=0.0)
    api.clock.advance(5 * MINUTE_TICKS)
    assert run(3) == truth_events(GroundTruth(api), api.plant.points[:TAGS], NOW, NOW + 5 * MINUTE_TICKS)


def without_action(events: Counter) -> Counter:
    found = Counter()
    for (name, action, *rest), count in events.items():
        found[(name, *rest)] += count
    return found


@pytest.mark.parametrize("transport", ["markers", "channels"])
def test_stream_stops_on_ctrl_c_and_resumes_losing_and_repeating_nothing(fresh_server, tmp_path, transport):
    api = fresh_server.api
    points = api.plant.points[:TAGS]
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"state_dir": "state", "cores": 2, "configuration": {
        "pi.url": fresh_server.url, "pi.tables": "updates", "pi.partition_size": "15",
        "pi.updates.transport": transport, "pi.tags.names": ",".join(p.name for p in points)}}))
    store = MarkerStore(tmp_path / "state" / "source")
    warehouse = tmp_path / "state" / "warehouse"
    second_leg = "--quiet" if transport == "markers" else "--verbose"
    for leg in range(2):
        process = subprocess.Popen([sys.executable, "-m", "pi_lakeflow.cli", "stream", "--config", str(config),
                                    *([second_leg] if leg else [])],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for_poll(store, last_poll(store) + 1, process)  # registered (first leg) or resumed
        api.clock.advance(20 * MINUTE_TICKS)
        # A marker poll may have started before the clock moved; channels write a poll per news.
        wait_for_poll(store, last_poll(store) + (2 if transport == "markers" else 1), process)
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0, out[-3000:]
        assert "Traceback" not in out and "ERROR" not in out, out[-3000:]
        if leg == 0 or second_leg == "--verbose":
            assert "stopped; the next start resumes" in out and re.search(r"poll \d+: [\d,]+ events", out), out
        # Spark's own lines only with --verbose (else in state_dir/spark-output.log); --quiet: failures only
        assert ("Using incubator modules" in out) == (leg == 1 and second_leg == "--verbose"), out[-3000:]
        if leg == 1 and second_leg == "--quiet":
            assert out.strip() == "", out
        if leg == 0:
            shutil.copytree(warehouse, tmp_path / "after-leg-1")
    spark = SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false") \
        .config("spark.sql.session.timeZone", "UTC").getOrCreate()
    try:
        rows = spark.read.parquet(str(warehouse / "pi_timeseries_updates")).collect()
        assert realtime_tables() == ["pi_timeseries_updates"]  # the table this stream makes
        check_tables(spark, warehouse, tmp_path / "after-leg-1", realtime_tables())
    finally:
        spark.stop()
    landed = Counter(event_row(r.asDict()) for r in rows)
    changes = truth_events(GroundTruth(api), points, NOW, NOW + 40 * MINUTE_TICKS)
    if transport == "markers":
        assert landed == changes
    else:  # no deletes; Add or Update as the cursors were at each push (the test above checks those)
        assert without_action(landed) == without_action(+Counter({k: v for k, v in changes.items() if k[1] != "Delete"}))
    assert "Using incubator modules" in (tmp_path / "state" / "spark-output.log").read_text()


# ---- channels (pi.updates.transport: channels) ----------------------------------------------

def pushed_truth(truth: GroundTruth, points, since_ticks: int, now_ticks: int, cursors: dict) -> Counter:
    """What channels land for the changes in (since, now]: no deletes; a value newer than its
    tag's cursor (``cursors``: WebId to cursor_ns before the push) is an Add, another an Update."""
    found = Counter()
    for (name, action, stamp, *rest), count in truth_events(truth, points, since_ticks, now_ticks).items():
        if action != "Delete":
            web_id = next(p.web_id for p in points if p.name == name)
            found[(name, "Add" if stamp > cursors[web_id] else "Update", stamp, *rest)] += count
    return found


@pytest.fixture
def pushing(tmp_path):
    """A channel listener's polls, taken and written as the source does, against a simulator that
    pushes every 50 ms."""
    with make_server(channel_interval=0.05) as server:
        api = server.api
        settings = parse({"pi.url": server.url, "pi.state_path": str(tmp_path), "pi.partition_size": "15",
                          "pi.updates.transport": "channels",
                          "pi.tags.names": ",".join(p.name for p in api.plant.points[:TAGS])})
        store = MarkerStore(tmp_path)
        with PiClient(server.url) as client:
            store.write_layout(plan_layout(client, settings, None))
        listeners = []

        def start() -> ChannelListener:
            listeners.append(ChannelListener(settings, store.layout(), store.latest()).start())
            return listeners[-1]

        def take(listener: ChannelListener, poll_number: int, settle: float = 0.5, healthy: bool = False) -> Counter:
            """Wait for news (``healthy``: until no tag has an error), let the pushes settle, write
            what came as poll ``poll_number``; its rows."""
            deadline, events, rows = time.monotonic() + 60, [], None
            while rows is None or (healthy and rows["error"].null_count < len(rows)):
                assert time.monotonic() < deadline, "the channels brought nothing in 60 s"
                time.sleep(0.05)
                if (taken := listener.take()) is not None:
                    events.append(taken[0])
                    rows = taken[1]
            time.sleep(settle)
            if (more := listener.take()) is not None:
                events.append(more[0])
                rows = more[1]
            write_pushed(store, poll_number, pa.concat_tables(events), rows)
            landed = [store.events(poll_number, p) for p in store.partitions()]
            for table in landed:
                assert_timestamps_typed(table, api.plant.points[:TAGS])
            return Counter(event_row(r) for table in landed for r in table.to_pylist())
        try:
            yield api, store, start, take
        finally:
            for listener in listeners:
                listener.stop()


def cursors_after(store: MarkerStore, poll_number: int) -> dict:
    return {w: r["cursor_ns"] for w, r in state_after(store, poll_number).items()}


def test_channels_land_every_pushed_value_once_and_catch_up_after_a_stop(pushing):
    api, store, start, take = pushing
    truth, points = GroundTruth(api), api.plant.points[:TAGS]
    listener = start()
    assert take(listener, 1) == Counter()  # open: each new tag starts at its newest recorded value
    assert all(r["cursor_ns"] and not r["error"] for r in state_after(store, 1).values())

    for poll_number, since in ((2, NOW), (3, NOW + 30 * MINUTE_TICKS)):
        cursors = cursors_after(store, poll_number - 1)
        api.clock.advance((30 if poll_number == 2 else 10) * MINUTE_TICKS)
        landed = take(listener, poll_number)
        assert landed == pushed_truth(truth, points, since, api.now(), cursors)
        assert timestamp_points_landed(landed, points)  # and typed, as every take's
    assert Counter(action for _, action, *_ in landed.elements())["Update"], "no edit of an earlier value"

    # Stopped for 10 minutes: the next listener reads the recorded values after each cursor.
    listener.stop()
    cursors = state_after(store, 3)
    api.clock.advance(10 * MINUTE_TICKS)
    listener = start()
    caught_up = take(listener, 4)
    assert caught_up == truth_since_cursor(truth, points, cursors) and timestamp_points_landed(caught_up, points)
    assert all(r["recovered"] for r in state_after(store, 4).values())

    api.clock.advance(10 * MINUTE_TICKS)
    assert take(listener, 5) == pushed_truth(truth, points, NOW + 50 * MINUTE_TICKS, api.now(), cursors_after(store, 4))


def test_channels_that_cannot_open_land_nothing_and_catch_up_once_they_do(pushing):
    api, store, start, take = pushing
    first = start()
    take(first, 1)
    first.stop()
    cursors = state_after(store, 1)
    api.server_config = dataclasses.replace(api.server_config, fault_rate=1.0, faults=("503",))
    listener = start()
    assert take(listener, 2, settle=0) == Counter()
    assert all(r["error"] and r["cursor_ns"] == cursors[w]["cursor_ns"] for w, r in state_after(store, 2).items())
    api.clock.advance(5 * MINUTE_TICKS)
    api.server_config = dataclasses.replace(api.server_config, fault_rate=0.0)
    assert take(listener, 3, healthy=True) == truth_since_cursor(GroundTruth(api), api.plant.points[:TAGS], cursors)
    assert not any(r["error"] for r in state_after(store, 3).values())
