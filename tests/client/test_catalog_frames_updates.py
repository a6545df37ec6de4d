"""Discovery, AF, event frames and stream updates through pi_client, against the simulator's model."""

from __future__ import annotations

import pytest

import dataclasses
import fnmatch
from collections import Counter

import pyarrow.compute as pc
import requests

from pi_client import (Limits, PiClient, asset_databases, attributes, data_servers, element_templates, elements,
                       find_database, find_event_frames, find_points, owner_values, points_by_path, points_by_web_id,
                       points_from_af, updates, SEARCH_MODES)
from pi_simulator import GroundTruth
from pi_simulator.api import frame_end, frame_matches
from pi_simulator.pitime import TICKS_PER_SECOND, parse_time

pytestmark = pytest.mark.unit

MINUTE = 60 * TICKS_PER_SECOND


def test_points_by_name_filter_paged_path_and_web_id(shared_server):
    plant = shared_server.api.plant
    with PiClient(shared_server.url, limits=Limits(page_size=7)) as client:
        assert data_servers(client)["name"].to_pylist() == ["PISRV01"]
        found = find_points(client, "*TEMP*")
        expected = [p for p in plant.points if fnmatch.fnmatch(p.name.upper(), "*TEMP*")]
        assert found["name"].to_pylist() == [p.name for p in expected] and len(expected) > 7
        row = found.to_pylist()[0]
        assert row["point_type"] == expected[0].point_type and row["engineering_units"] == expected[0].units
        assert row["span"] == expected[0].span and row["descriptor"] == expected[0].descriptor
        by_path = points_by_path(client, [plant.points[3].path, "\\\\PISRV01\\NO.SUCH.TAG"])
        assert by_path.table["web_id"].to_pylist() == [plant.points[3].web_id]
        assert "404" in by_path.errors["\\\\PISRV01\\NO.SUCH.TAG"]
        by_id = points_by_web_id(client, [p.web_id for p in plant.points[:5]])
        assert by_id.table["name"].to_pylist() == [p.name for p in plant.points[:5]] and not by_id.errors


def test_af_hierarchy_attributes_templates_and_points_from_af(shared_server):
    plant = shared_server.api.plant
    with PiClient(shared_server.url, limits=Limits(page_size=50)) as client:
        database = find_database(client, "PlantDB") if "PlantDB" in asset_databases(client)["name"].to_pylist() \
            else asset_databases(client)["web_id"][0].as_py()
        tree = elements(client, database)
        assert sorted(tree["web_id"].to_pylist()) == sorted(e.web_id for e in plant.elements)
        by_id = {e.web_id: e for e in plant.elements}
        for row in tree.to_pylist():
            element = by_id[row["web_id"]]
            assert row["parent_path"] == (element.parent.path if element.parent else None)
            assert row["depth"] == (by_id[row["web_id"]].path.count("\\") - 3)
            assert row["template_name"] == (element.template or None)
        assert min(tree["depth"].to_pylist()) == 1 and max(tree["depth"].to_pylist()) >= 4
        sample = [e for e in plant.elements if e.attributes][:20]
        found = attributes(client, [e.web_id for e in sample])
        expected = {a.web_id: a for e in sample for a in e.attributes}
        assert sorted(found.table["web_id"].to_pylist()) == sorted(expected)
        for row in found.table.to_pylist():
            attribute = expected[row["web_id"]]
            assert row["point_web_id"] == (attribute.point.web_id if attribute.point else None)
            assert row["point_path"] == (attribute.point.path if attribute.point else None)
        templates = element_templates(client, database)
        assert set(templates["name"].to_pylist()) == {t["Name"] for t in plant.element_templates}
        assert "EventFrame" in templates["instance_type"].to_pylist()
        template = next(e.template for e in plant.elements if e.template and any(a.point for a in e.attributes))
        from_af = points_from_af(client, database, template=template)
        wanted = {a.point.web_id for e in plant.elements if e.template == template for a in e.attributes if a.point}
        assert set(from_af.table["web_id"].to_pylist()) == wanted and not from_af.errors
        unit = next(e for e in plant.elements if e.children and e.parent)
        below = elements(client, database, root_path=unit.path)
        assert below["path"].to_pylist()[0] == unit.path and all(p.startswith(unit.path) for p in below["path"].to_pylist())


def test_event_frames_every_search_mode_and_attribute_values(fresh_server):
    api = fresh_server.api
    now = api.now()
    start, end = now - 2 * 86_400 * TICKS_PER_SECOND, now
    with PiClient(fresh_server.url, limits=Limits(page_size=25)) as client:
        database = asset_databases(client)["web_id"][0].as_py()
        for mode in SEARCH_MODES:
            found = find_event_frames(client, database, to_ns_ticks(start), to_ns_ticks(end), mode)
            expected = {f.web_id for f in api.plant.event_frames if f.start_ticks <= now
                        and frame_matches(mode, start, end, f.start_ticks, frame_end(f, now), now)}
            assert set(found["web_id"].to_pylist()) == expected, mode
        frames = find_event_frames(client, database, to_ns_ticks(start), to_ns_ticks(end), "InProgress")
        assert frames.num_rows > 0 and pc.all(pc.is_null(frames["end_time"])).as_py()
        assert pc.all(frames["in_progress"]).as_py()
        frame = next(f for f in api.plant.event_frames if f.web_id == frames["web_id"][0].as_py())
        row = frames.to_pylist()[0]
        assert row["primary_element_web_id"] == frame.primary_element.web_id
        assert row["ref_element_web_ids"] == [e.web_id for e in frame.referenced_elements]
        api.clock.set(frame.planned_end_ticks + MINUTE)
        closed = find_event_frames(client, database, to_ns_ticks(start), to_ns_ticks(api.now()), "Overlapped",
                                   name_filter=frame.name)
        assert closed["end_time"][0].value == frame.planned_end_ticks * 100 and not closed["in_progress"][0].as_py()
        values = owner_values(client, frames["web_id"].to_pylist()[:5])
        assert not values.errors
        assert set(values.table["attribute_web_id"].to_pylist()) == \
               {a.web_id for f in api.plant.event_frames if f.web_id in frames["web_id"].to_pylist()[:5]
                for a in f.attributes}


def to_ns_ticks(ticks: int) -> int:
    return ticks * 100


def test_stream_updates_with_marker_recovery_have_no_gap(fresh_server):
    api = fresh_server.api
    truth = GroundTruth(api)
    points = api.plant.points[:15]
    with PiClient(fresh_server.url) as client:
        subscriptions = updates.register(client, [p.web_id for p in points], cursor=api.now() * 100)
        since = api.now()
        api.clock.advance(90 * MINUTE)
        result = updates.poll(client, subscriptions)
        assert not result.errors and not result.recovered
        actions = set(result.events["action"].to_pylist())
        assert actions == {"Add", "Update", "Delete"}
        for point in points:
            expected = truth.changes(point.name, since, api.now())
            got = result.events.filter(pc.equal(result.events["web_id"], point.web_id))
            assert got["action"].to_pylist() == [a for a, _ in expected]
        # The server forgets the markers; the next poll re-registers and re-reads from the cursors.
        api.clock.advance(30 * MINUTE)
        fresh_server_root = fresh_server.url.rsplit("/piwebapi", 1)[0]
        requests.post(f"{fresh_server_root}/simulator/markers/expire")
        recovered = updates.poll(client, result.subscriptions)
        assert sorted(recovered.recovered) == sorted(p.web_id for p in points) and not recovered.errors
        for point in points:
            cursor = result.subscriptions[point.web_id].cursor
            expected = truth.recorded(point.name, cursor // 100, api.now())
            got = recovered.events.filter(pc.equal(recovered.events["web_id"], point.web_id))
            assert got.num_rows == len(expected)
            assert [t.value // 100 for t in got["timestamp"]] == [parse_time(v["Timestamp"], 0) for v in expected]
        after = updates.poll(client, recovered.subscriptions)
        assert not after.recovered and after.events.num_rows == 0
        # Markers share sub-requests: a failing stream fails alone, and keeps its marker.
        failing = points[3]
        api.server_config = dataclasses.replace(api.server_config, failing_tags=(failing.name,))
        since = api.now()
        api.clock.advance(60 * MINUTE)
        mixed = updates.poll(client, after.subscriptions)
        assert list(mixed.errors) == [failing.web_id] and not mixed.recovered
        assert mixed.subscriptions[failing.web_id] == after.subscriptions[failing.web_id]
        for point in points:
            got = mixed.events.filter(pc.equal(mixed.events["web_id"], point.web_id))
            expected = [] if point is failing else truth.changes(point.name, since, api.now())
            assert got["action"].to_pylist() == [a for a, _ in expected]


def test_changes_made_while_a_lost_marker_is_recovered_arrive_once(fresh_server, monkeypatch):
    """Recovery registers, then re-reads: a change made in between comes both in the re-read and
    from the new marker. The marker's first answer is taken at once and what the re-read shows is
    dropped, so the next poll brings nothing twice."""
    api = fresh_server.api
    truth = GroundTruth(api)
    points = api.plant.points[:15]
    with PiClient(fresh_server.url) as client:
        first = updates.poll(client, updates.register(client, [p.web_id for p in points], cursor=api.now() * 100))
        api.clock.advance(30 * MINUTE)
        first = updates.poll(client, first.subscriptions)
        requests.post(f"{fresh_server.url.rsplit('/piwebapi', 1)[0]}/simulator/markers/expire")
        registered_at = api.now()
        real_register = updates.register

        def register_then_time_passes(*args, **kwargs):
            found = real_register(*args, **kwargs)
            api.clock.advance(10 * MINUTE)  # values are added, edited and deleted before the re-read
            return found

        monkeypatch.setattr(updates, "register", register_then_time_passes)
        recovered = updates.poll(client, first.subscriptions)
        monkeypatch.undo()
        assert sorted(recovered.recovered) == sorted(p.web_id for p in points) and not recovered.errors
        assert updates.poll(client, recovered.subscriptions).events.num_rows == 0  # nothing comes again
        for point in points:
            cursor = first.subscriptions[point.web_id].cursor // 100
            reread = [("Add", parse_time(v["Timestamp"], 0)) for v in truth.recorded(point.name, cursor, api.now())]
            before_cursor = [(a, parse_time(v["Timestamp"], 0)) for a, v in truth.changes(point.name, registered_at, api.now())
                             if parse_time(v["Timestamp"], 0) < cursor]
            got = recovered.events.filter(pc.equal(recovered.events["web_id"], point.web_id))
            assert Counter(zip(got["action"].to_pylist(), (t.value // 100 for t in got["timestamp"]))) == \
                Counter(reread + before_cursor), point.name
