"""read_recorded / read_interpolated / read_summaries against the simulator's ground truth."""

from __future__ import annotations

import collections
import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pi_client import Limits, PiClient, Tag, read_interpolated, read_recorded, read_summaries, schemas
from pi_client.times import to_ns
from pi_simulator import GroundTruth
from pi_simulator.api import Query
from tests.client.reads import END, QUICK, START, expected_rows, got_rows, tags_of
from tests.simulators import NOW, make_server

pytestmark = pytest.mark.unit


def test_recorded_values_equal_the_ground_truth_for_every_point_type(shared_server, truth):
    points = shared_server.api.plant.points[:120]
    assert {p.point_type for p in points} >= {"Float32", "Float64", "Int32", "Digital", "String", "Timestamp"}
    with PiClient(shared_server.url) as client:
        result = read_recorded(client, tags_of(points), START, END)
    assert result.values.schema == schemas.VALUES and not result.errors
    assert result.requests < len(points) / 10  # batched; tags sampled every second need later pages
    for point in points:
        assert got_rows(result.values, point) == expected_rows(truth, point), point.name
    outcomes = result.outcomes.to_pylist()
    assert all(o["cursor"].value == to_ns(END) and o["error"] is None for o in outcomes)
    assert sum(o["values"] for o in outcomes) == result.values.num_rows


def test_typed_values_keep_states_errors_flags_units_and_100ns_timestamps(shared_server):
    points = shared_server.api.plant.points
    with PiClient(shared_server.url) as client:
        values = read_recorded(client, tags_of(points), START, END).values
    system = values.filter(values["is_system"])
    assert system.num_rows > 0
    assert pc.all(pc.is_null(system["value_double"])).as_py() and not pc.any(system["good"]).as_py()
    assert set(system["state_name"].to_pylist()) <= {"I/O Timeout", "Shutdown", "Pt Created", "No Data", "Calc Failed",
                                                     "Bad Input", "Comm Fail"}
    digital = values.filter(pc.and_(pc.is_valid(values["state_name"]), pc.invert(values["is_system"])))
    assert {"Running", "Stopped"} <= set(digital["state_name"].to_pylist())
    assert pc.min(digital["state_code"]).as_py() >= 0
    errors = values.filter(pc.is_valid(values["error"]))
    assert errors.num_rows > 0 and all(e for e in errors["error"].to_pylist())
    stamps = values.filter(pc.is_valid(values["value_timestamp"]))
    assert stamps.num_rows > 0
    for flag in ("questionable", "substituted", "annotated"):
        assert pc.sum(values[flag]).as_py() > 0
    assert "degC" in set(values["units"].to_pylist())
    ticks = values["timestamp"].to_numpy(zero_copy_only=False).view("int64")
    assert (ticks % 100 == 0).all() and (ticks % 1000 != 0).any()  # 100 ns kept, not cut to microseconds
    keys = collections.Counter(zip(values["web_id"].to_pylist(), ticks.tolist(), values["ordinal"].to_pylist()))
    assert max(keys.values()) == 1  # (tag, timestamp, ordinal) is a key
    assert pc.max(values["ordinal"]).as_py() >= 1  # genuine duplicate timestamps survive


def test_paging_by_time_reads_each_value_once_even_across_duplicate_timestamps(shared_server, truth):
    points = shared_server.api.plant.points[:40]
    with PiClient(shared_server.url, limits=Limits(max_items_per_call=97)) as client:
        result = read_recorded(client, tags_of(points), START, END)
    assert max(result.outcomes["pages"].to_pylist()) > 50
    duplicates_across_pages = 0
    for point in points:
        expected = expected_rows(truth, point)
        assert got_rows(result.values, point) == expected, point.name
        duplicates_across_pages += len(expected) - len({row[0] for row in expected})
    assert duplicates_across_pages > 0


def test_many_values_at_one_timestamp_page_through():
    """Pages that end inside a run of equal timestamps, or hold nothing else: the next page
    must skip exactly the values of that timestamp already read."""
    from pi_simulator import PlantConfig
    plant = PlantConfig(tags=20, elements=20, event_frames=5, origin_ticks=NOW, duplicate_rate=0.6,
                        sampling_seconds=600)
    with make_server(plant) as server:
        truth = GroundTruth(server.api)
        points = [p for p in server.api.plant.points if p.point_type == "Float64"][:2]
        end = "2024-05-01T06:00:00Z"
        with PiClient(server.url, limits=Limits(max_items_per_call=3)) as client:
            result = read_recorded(client, tags_of(points), START, end)
        for point in points:
            expected = expected_rows(truth, point, START, to_ns(end) // 100 - 1)
            assert max(collections.Counter(r[0] for r in expected).values()) == 2
            assert got_rows(result.values, point) == expected
        with PiClient(server.url, limits=Limits(max_items_per_call=2)) as client:
            stuck = read_recorded(client, tags_of(points), START, end)
        assert all("share the timestamp" in e for e in stuck.errors.values()) and stuck.errors


def test_windows_are_half_open_so_consecutive_reads_neither_overlap_nor_miss(shared_server, truth):
    points = shared_server.api.plant.points[:30]
    middle = "2024-05-01T13:00:00.0222907Z"  # a sampling instant of 1-minute tags: a value sits on it
    with PiClient(shared_server.url) as client:
        first = read_recorded(client, tags_of(points), START, middle)
        cursors = {o["web_id"]: o["cursor"] for o in first.outcomes.to_pylist()}
        second = read_recorded(client, tags_of(points), START, END, cursors=cursors)
        whole = read_recorded(client, tags_of(points), START, END)
    both = pa.concat_tables([first.values, second.values])
    for point in points:
        assert got_rows(both, point) == got_rows(whole.values, point) == expected_rows(truth, point)


def test_a_failing_tag_is_reported_and_the_others_are_complete():
    with make_server(failing_tags=("010102.K-00002.TEMP",)) as server:
        truth = GroundTruth(server.api)
        points = server.api.plant.points[:60]
        bad = truth.point("010102.K-00002.TEMP")
        with PiClient(server.url, retry=QUICK) as client:
            result = read_recorded(client, tags_of(points), START, END, cursors={bad.web_id: to_ns(START)})
    assert list(result.errors) == [bad.web_id]
    assert "HTTP 500" in result.errors[bad.web_id] and "Event collection is corrupt" in result.errors[bad.web_id]
    outcome = result.outcomes.filter(pc.equal(result.outcomes["web_id"], bad.web_id)).to_pylist()[0]
    assert outcome["cursor"].value == to_ns(START) and outcome["values"] == 0
    assert got_rows(result.values, bad) == []
    for point in points:
        if point is not bad:
            assert got_rows(result.values, point) == expected_rows(truth, point)


def test_an_unknown_web_id_fails_alone():
    with make_server() as server:
        points = server.api.plant.points[:10]
        ghost = points[0].web_id[:-4] + "AAAA"
        with PiClient(server.url, retry=QUICK) as client:
            result = read_recorded(client, [*tags_of(points), Tag(ghost)], START, END)
    assert list(result.errors) == [ghost] and "404" in result.errors[ghost]
    assert set(result.values["web_id"].to_pylist()) == {p.web_id for p in points}


def test_a_transient_sub_request_failure_is_retried_on_its_own():
    with make_server(flaky_tags=("010101.P-00001.TEMP",), flaky_failures=2) as server:
        truth = GroundTruth(server.api)
        points = server.api.plant.points[:20]
        with PiClient(server.url, retry=QUICK) as client:
            result = read_recorded(client, tags_of(points), START, END)
    assert not result.errors and result.retries == 2  # the failed sub-request alone, twice
    for point in points:
        assert got_rows(result.values, point) == expected_rows(truth, point)


def test_the_item_limit_is_learned_from_the_servers_400():
    with make_server(max_returned_items_per_call=3000) as server:
        truth = GroundTruth(server.api)
        points = server.api.plant.points[:25]
        with PiClient(server.url, limits=Limits(max_items_per_call=150_000)) as client:
            result = read_recorded(client, tags_of(points), START, END)
            assert client.limits.max_items_per_call == 3000
    assert not result.errors
    for point in points:
        assert got_rows(result.values, point) == expected_rows(truth, point)


def test_groups_respect_the_url_length_limit():
    with make_server(max_url_length=2000) as server:
        points = server.api.plant.points[:100]
        with PiClient(server.url, limits=Limits(max_url_length=2000)) as client:
            result = read_recorded(client, tags_of(points), START, END)
    assert not result.errors and set(result.values["web_id"].to_pylist()) == {p.web_id for p in points}


def _server_json(server, path: str, **params) -> dict:
    reply = server.api.handle("GET", path, Query({k: v if isinstance(v, list) else [v] for k, v in params.items()}))
    return json.loads(reply.body())


def test_interpolated_values_match_the_server(shared_server):
    points = [p for p in shared_server.api.plant.points[:30] if p.point_type in ("Float64", "Float32")]
    with PiClient(shared_server.url) as client:
        result = read_interpolated(client, tags_of(points), START, END, "1h")
    assert not result.errors
    for point in points:
        expected = _server_json(shared_server, f"streams/{point.web_id}/interpolated", startTime=START, endTime=END,
                                interval="1h")["Items"]
        got = result.values.filter(pc.equal(result.values["web_id"], point.web_id))
        assert got.num_rows == len(expected) == 25
        numbers = [v["Value"] if isinstance(v["Value"], (int, float)) else None for v in expected]
        assert got["value_double"].to_pylist() == pytest.approx(numbers, nan_ok=True)


def test_summaries_match_the_server(shared_server):
    points = [p for p in shared_server.api.plant.points[:30] if p.point_type == "Float64"]
    types = ("Average", "Minimum", "Maximum", "Count")
    with PiClient(shared_server.url) as client:
        result = read_summaries(client, tags_of(points), START, END, "6h", types)
    assert result.values.schema == schemas.SUMMARIES and not result.errors
    for point in points:
        expected = _server_json(shared_server, f"streams/{point.web_id}/summary", startTime=START, endTime=END,
                                summaryDuration="6h", summaryType=list(types))["Items"]
        got = result.values.filter(pc.equal(result.values["web_id"], point.web_id)).to_pylist()
        assert [(g["summary_type"], g["value_double"]) for g in got] == \
               [(e["Type"], e["Value"]["Value"]) for e in expected]
        assert len(got) == 16
