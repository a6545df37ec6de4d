"""Servers configured below PI's defaults, and servers that fail: item limits learned once for
every request kind, whole requests that fail after their retries failing only their tags.

The oracle is the simulator's ground truth (or, for interpolated values and summaries, the same
read at PI's default limit), and its counter of requests refused for their count."""

from __future__ import annotations

import pytest

from pi_client import (Limits, PiClient, RetryPolicy, attributes, elements, find_database, find_points,
                       read_interpolated, read_recorded, read_summaries)
from pi_simulator import GroundTruth, PlantConfig
from pi_simulator.plant import ASSET_DATABASE_NAME
from tests.client.reads import END, START, expected_rows, got_rows, tags_of
from tests.simulators import NOW, make_server

pytestmark = pytest.mark.unit

QUICK = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)
#: More tags than one streamsets sub-request takes (100), so a batch carries several.
PLANT = PlantConfig(tags=150, elements=60, event_frames=10, origin_ticks=NOW)


def refused(server) -> int:
    return server.counters()["refused:maxCount"]


@pytest.mark.parametrize("limit", [50, 1_000, 150_000])
def test_recorded_values_are_exact_at_any_server_item_limit_and_each_refusal_happens_once(limit):
    with make_server(PLANT, max_returned_items_per_call=limit) as server:
        truth = GroundTruth(server.api)
        points = server.api.plant.points
        with PiClient(server.url) as client:  # starts at PI's default, 150,000
            result = read_recorded(client, tags_of(points), "2024-05-01T18:00:00Z", END)
            assert client.limits.max_items_per_call == limit
        assert not result.errors
        for point in points:
            assert got_rows(result.values, point) == expected_rows(truth, point, "2024-05-01T18:00:00Z")
        # Only the sub-requests of the first batch (two groups of at most 100 tags) are refused:
        # every later one is sized by the learned limit.
        assert refused(server) == (0 if limit == 150_000 else 2)


def test_lists_page_at_the_learned_limit_and_attributes_page_too():
    with make_server(PLANT, max_returned_items_per_call=3) as server:
        with PiClient(server.url) as reference:
            expected_points = find_points(reference, "*")
        with PiClient(server.url) as client:
            points = find_points(client, "*")
            assert refused(server) >= 1 and client.limits.max_items_per_call == 3
            database = find_database(client, ASSET_DATABASE_NAME)
            element_ids = elements(client, database)["web_id"].to_pylist()
            found = attributes(client, element_ids)
        assert sorted(points["web_id"].to_pylist()) == sorted(expected_points["web_id"].to_pylist())
        assert len(element_ids) == len(server.api.plant.elements)  # the whole hierarchy, 3 per page
        assert not found.errors
        expected = {a.web_id for e in server.api.plant.elements for a in e.attributes}
        assert set(found.table["web_id"].to_pylist()) == expected
        assert max(len(e.attributes) for e in server.api.plant.elements) > 3  # attributes were paged


def test_interpolated_values_and_summaries_regroup_by_their_own_rule_after_learning():
    with make_server(PLANT) as server:
        points = [p for p in server.api.plant.points if p.point_type in ("Float64", "Float32")][:40]
        with PiClient(server.url) as client:
            interpolated = read_interpolated(client, tags_of(points), START, END, "1h")
            summaries = read_summaries(client, tags_of(points), START, END, "6h")
    with make_server(PLANT, max_returned_items_per_call=50) as server:
        with PiClient(server.url) as client:
            find_points(client, "*")  # learns the limit from a refused page
            low_interpolated = read_interpolated(client, tags_of(points), START, END, "1h")
            low_summaries = read_summaries(client, tags_of(points), START, END, "6h")
            assert client.limits.max_items_per_call == 50
        # 25 values per tag (a day, hourly, both ends): two tags per sub-request; 16 summary
        # items per tag: three tags per sub-request; none of them refused.
        assert refused(server) == 1
    assert not low_interpolated.errors and not low_summaries.errors
    order = [("web_id", "ascending"), ("timestamp", "ascending")]
    assert low_interpolated.values.sort_by(order).to_pylist() == interpolated.values.sort_by(order).to_pylist()
    order = [("web_id", "ascending"), ("summary_type", "ascending"), ("timestamp", "ascending")]
    assert low_summaries.values.sort_by(order).to_pylist() == summaries.values.sort_by(order).to_pylist()


def test_a_read_that_needs_more_per_tag_than_the_server_allows_fails_its_tags_with_a_message():
    with make_server(PLANT, max_returned_items_per_call=10) as server:
        points = server.api.plant.points[:3]
        with PiClient(server.url, limits=Limits(max_items_per_call=10)) as client:
            result = read_interpolated(client, tags_of(points), START, END, "1h")  # 25 per tag
    assert set(result.errors) == {p.web_id for p in points}
    assert all("MaxReturnedItemsPerCall" in e and "25" in e for e in result.errors.values())


def test_a_whole_request_that_keeps_failing_fails_only_its_tags_and_does_not_raise():
    with make_server(PLANT, fault_rate=1.0, faults=("500",)) as server:
        points = server.api.plant.points[:5]
        with PiClient(server.url, retry=QUICK) as client:
            result = read_recorded(client, tags_of(points), START, END)
    assert set(result.errors) == {p.web_id for p in points} and result.values.num_rows == 0
    assert all("HTTP 500" in e and "Injected fault" in e for e in result.errors.values())


def test_every_fault_kind_at_a_rate_of_thirty_percent_is_retried_to_the_exact_values():
    faults = ("500", "502", "503", "504", "reset", "stall", "truncate")
    with make_server(PLANT, fault_rate=0.3, faults=faults) as server:
        truth = GroundTruth(server.api)
        points = server.api.plant.points[:60]
        with PiClient(server.url, retry=RetryPolicy(attempts=8, backoff=0.01, max_backoff=0.05),
                      read_timeout=1.0, limits=Limits(requests_per_batch=4, tags_per_request=5)) as client:
            result = read_recorded(client, tags_of(points), "2024-05-01T20:00:00Z", END)
    assert not result.errors and result.retries > 0
    for point in points:
        assert got_rows(result.values, point) == expected_rows(truth, point, "2024-05-01T20:00:00Z")
