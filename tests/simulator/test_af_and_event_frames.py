"""AF hierarchy, attributes, templates and event frames."""

from __future__ import annotations

import pytest

from pi_simulator.pitime import TICKS_PER_SECOND, parse_time

pytestmark = pytest.mark.unit


def _database(server, http):
    asset_server = http.get(f"{server.url}/assetservers").json()["Items"][0]
    return http.get(asset_server["Links"]["Databases"]).json()["Items"][0]


def test_element_hierarchy_paging_and_filters(shared_server, http):
    database = _database(shared_server, http)
    roots = http.get(database["Links"]["Elements"]).json()["Items"]
    assert [r["Name"] for r in roots] == ["Enterprise"]
    everything = http.get(database["Links"]["Elements"], params={"searchFullHierarchy": "true", "maxCount": 10000}).json()["Items"]
    assert len(everything) == len(shared_server.api.plant.elements) == 400
    depths = {e["Path"].count("\\") - 3 for e in everything}
    assert depths == {1, 2, 3, 4, 5}
    pages = [http.get(database["Links"]["Elements"], params={"searchFullHierarchy": "true", "startIndex": i,
                                                             "maxCount": 150}).json()["Items"] for i in (0, 150, 300)]
    assert [e["WebId"] for page in pages for e in page] == [e["WebId"] for e in everything]
    pumps = http.get(database["Links"]["Elements"], params={"searchFullHierarchy": "true", "templateName": "Pump",
                                                            "maxCount": 1000}).json()["Items"]
    assert pumps and all(p["TemplateName"] == "Pump" for p in pumps)
    assert all("Parent" not in e and "ParentWebId" not in e for e in everything)  # derive parents from Path


def test_children_attributes_and_pi_point_references(shared_server, http):
    plant = shared_server.api.plant
    unit = next(e for e in plant.elements if e.template == "Unit" and e.children)
    children = http.get(f"{shared_server.url}/elements/{unit.web_id}/elements").json()["Items"]
    assert [c["Name"] for c in children] == [c.name for c in unit.children]
    equipment = next(e for e in plant.elements if any(a.point for a in e.attributes))
    attributes = http.get(f"{shared_server.url}/elements/{equipment.web_id}/attributes").json()["Items"]
    tag_backed = [a for a in attributes if a["DataReferencePlugIn"] == "PI Point"]
    assert tag_backed
    for attribute in tag_backed:
        point = http.get(attribute["Links"]["Point"]).json()
        assert attribute["ConfigString"] == f"\\\\PISRV01\\{point['Name']}"
    single = http.get(f"{shared_server.url}/attributes/{tag_backed[0]['WebId']}").json()
    assert single["Path"] == tag_backed[0]["Path"] and single["Path"].startswith(equipment.path + "|")


def test_element_templates_include_event_frame_templates(shared_server, http):
    database = _database(shared_server, http)
    templates = http.get(database["Links"]["ElementTemplates"]).json()["Items"]
    kinds = {t["Name"]: t["InstanceType"] for t in templates}
    assert kinds["Pump"] == "Element" and kinds["Downtime"] == "EventFrame" and kinds["Alarm"] == "EventFrame"


def test_event_frame_fields_and_primary_element_only_through_links(shared_server, http):
    database = _database(shared_server, http)
    frames = http.get(database["Links"]["EventFrames"], params={"startTime": "*-40d", "maxCount": 1000}).json()["Items"]
    assert frames
    frame = frames[0]
    assert "PrimaryReferencedElementWebId" not in frame
    primary = http.get(frame["Links"]["PrimaryReferencedElement"]).json()
    assert primary["WebId"] in frame["RefElementWebIds"]
    for field in ("Severity", "IsAcknowledged", "CanBeAcknowledged", "IsAnnotated", "IsLocked", "TemplateName"):
        assert field in frame
    values = http.get(frame["Links"]["Value"]).json()["Items"]
    assert [v["Name"] for v in values] == [a["Name"] for a in http.get(frame["Links"]["Attributes"]).json()["Items"]]


def test_search_modes_select_the_right_frames(shared_server, http):
    database = _database(shared_server, http)
    api = shared_server.api
    now = api.now()
    start, end = parse_time("*-2d", now), parse_time("*-1d", now)

    def names(mode, **extra):
        params = {"startTime": "*-2d", "endTime": "*-1d", "searchMode": mode, "maxCount": 10000, **extra}
        return {f["Name"] for f in http.get(database["Links"]["EventFrames"], params=params).json()["Items"]}

    started = [f for f in api.plant.event_frames if f.start_ticks <= now]
    closed = lambda f: f.planned_end_ticks <= now  # noqa: E731
    assert names("Overlapped") == {f.name for f in started if f.start_ticks <= end and (f.planned_end_ticks if closed(f) else now) >= start}
    assert names("Inclusive") == {f.name for f in started if closed(f) and f.start_ticks >= start and f.planned_end_ticks <= end}
    assert names("StartInclusive") == {f.name for f in started if start <= f.start_ticks <= end}
    assert names("EndInclusive") == {f.name for f in started if closed(f) and start <= f.planned_end_ticks <= end}
    assert names("InProgress") == {f.name for f in started if not closed(f) and f.start_ticks <= end}
    assert names("ForwardFromStartTime") == {f.name for f in started if f.start_ticks >= start}
    assert names("BackwardFromStartTime") == {f.name for f in started if f.start_ticks <= start}
    assert names("Overlapped", templateName="Alarm") <= {f.name for f in started if f.template == "Alarm"}
    bad = http.get(database["Links"]["EventFrames"], params={"searchMode": "Sideways"})
    assert bad.status_code == 400 and "Overlapped" in bad.json()["Errors"][0]


def test_an_in_progress_frame_gets_its_end_time_when_it_closes(fresh_server, http):
    api = fresh_server.api
    now = api.now()
    frame = next(f for f in api.plant.event_frames if f.start_ticks <= now < f.planned_end_ticks)
    url = f"{fresh_server.url}/eventframes/{frame.web_id}"
    assert http.get(url).json()["EndTime"] == "9999-12-31T23:59:59Z"
    http.post(f"{fresh_server.url.rsplit('/piwebapi', 1)[0]}/simulator/clock",
              json={"Now": "2024-05-02T00:00:00Z"})
    api.clock.set(frame.planned_end_ticks + TICKS_PER_SECOND)
    closed = http.get(url).json()
    assert closed["EndTime"] != "9999-12-31T23:59:59Z"
    assert parse_time(closed["EndTime"], 0) == frame.planned_end_ticks - frame.planned_end_ticks % 1 and closed["IsLocked"]
