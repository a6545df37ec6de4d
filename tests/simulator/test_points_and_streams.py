"""Data servers, points, streams and stream sets over HTTP, against the model's ground truth."""

from __future__ import annotations

import re

import pytest

from pi_simulator import PlantConfig
from pi_simulator.plant import build_plant
from tests.simulators import NOW

pytestmark = pytest.mark.unit


def _points(server, http, **params):
    data_server = http.get(f"{server.url}/dataservers").json()["Items"][0]
    return http.get(data_server["Links"]["Points"], params=params)


def test_root_system_and_data_server(shared_server, http):
    root = http.get(f"{shared_server.url}/").json()
    assert root["Links"]["DataServers"] == f"{shared_server.url}/dataservers"
    assert http.get(f"{shared_server.url}/system").json()["ProductTitle"] == "PI Web API"
    servers = http.get(f"{shared_server.url}/dataservers").json()["Items"]
    assert [s["Name"] for s in servers] == ["PISRV01"] and servers[0]["WebId"].startswith("F1DS")


def test_points_name_filter_paging_and_selected_fields(shared_server, http):
    everything = _points(shared_server, http, maxCount=1000).json()["Items"]
    assert len(everything) == 300
    temps = _points(shared_server, http, nameFilter="*.TEMP", maxCount=1000).json()["Items"]
    assert temps and all(p["Name"].endswith(".TEMP") for p in temps)
    assert len(temps) == sum(1 for p in everything if p["Name"].endswith(".TEMP"))
    one_char = _points(shared_server, http, nameFilter="010101.P-0000?.TEMP").json()["Items"]
    assert [p["Name"] for p in one_char] == ["010101.P-00001.TEMP"]
    pages = [_points(shared_server, http, startIndex=i, maxCount=70).json()["Items"] for i in range(0, 300, 70)]
    assert [p["WebId"] for page in pages for p in page] == [p["WebId"] for p in everything]
    slim = _points(shared_server, http, maxCount=2, selectedFields="Items.Name;Items.PointType").json()
    assert slim == {"Items": [{"Name": p["Name"], "PointType": p["PointType"]} for p in everything[:2]]}
    assert {p["PointType"] for p in everything} == {"Float32", "Float64", "Int32", "Digital", "String", "Timestamp"}


def test_point_by_path_and_web_id(shared_server, http):
    point = _points(shared_server, http, maxCount=1).json()["Items"][0]
    by_path = http.get(f"{shared_server.url}/points", params={"path": point["Path"]}).json()
    assert by_path == point == http.get(f"{shared_server.url}/points/{point['WebId']}").json()
    assert http.get(f"{shared_server.url}/points", params={"path": r"\\PISRV01\nope"}).status_code == 404
    assert http.get(f"{shared_server.url}/points/F1DPnotthere").status_code == 404
    assert http.get(f"{shared_server.url}/points/bad!id").status_code == 400


def test_recorded_equals_ground_truth_with_paging_and_order(shared_server, http, truth):
    point = truth.point(shared_server.api.plant.points[3].name)
    url = f"{shared_server.url}/streams/{point.web_id}/recorded"
    expected = truth.recorded(point.name, "*-2d", "*")
    got = http.get(url, params={"startTime": "*-2d", "endTime": "*", "maxCount": 150000}).json()
    assert got["Items"] == expected and got["UnitsAbbreviation"] == point.units
    first = http.get(url, params={"startTime": "*-2d", "endTime": "*", "maxCount": 5}).json()["Items"]
    assert first == expected[:5]
    backwards = http.get(url, params={"startTime": "*", "endTime": "*-2d", "maxCount": 5}).json()["Items"]
    assert backwards == expected[::-1][:5]
    # Boundaries are inclusive: asking exactly from a value's timestamp returns it first.
    again = http.get(url, params={"startTime": expected[10]["Timestamp"], "maxCount": 1}).json()["Items"]
    assert again == [expected[10]]
    assert http.get(url, params={"startTime": "*+1h", "endTime": "*+2h"}).json()["Items"] == []


def test_max_count_above_the_server_limit_is_a_400(shared_server, http):
    point = shared_server.api.plant.points[0]
    reply = http.get(f"{shared_server.url}/streams/{point.web_id}/recorded", params={"maxCount": 150001})
    assert reply.status_code == 400
    assert reply.json() == {"Errors": ["Parameter 'maxCount' is greater than the maximum allowed (150000)."]}
    query = "&".join(f"webId={p.web_id}" for p in shared_server.api.plant.points[:3])
    streamset = http.get(f"{shared_server.url}/streamsets/recorded?{query}&maxCount=60000")
    assert streamset.status_code == 400  # 3 x 60,000 values could exceed 150,000


def test_values_have_every_shape_pi_serves(shared_server, truth):
    """Across the plant: 7-digit fractions, digital and system states, errors, flags, duplicates."""
    records = [(p, r) for p in shared_server.api.plant.points[:120] for r in truth.recorded(p.name, "*-1d", "*")]
    stamps = [r["Timestamp"] for _, r in records]
    assert any(re.fullmatch(r".*\.\d{7}Z", s) for s in stamps)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z", s) for s in stamps)
    digital = [r["Value"] for p, r in records if p.point_type == "Digital"]
    assert digital and all(set(v) == {"Name", "Value", "IsSystem"} and v["IsSystem"] is False for v in digital)
    system = [r for p, r in records if p.is_numeric and isinstance(r["Value"], dict) and r["Value"].get("IsSystem")]
    assert system and all(r["Good"] is False for r in system)
    assert any(r["Value"] == {"Name": "I/O Timeout", "Value": 246, "IsSystem": True} for r in system)
    assert any(r["Questionable"] for _, r in records) and any(r["Annotated"] for _, r in records)
    assert any(r["Substituted"] for _, r in records)
    assert any(isinstance(r["Value"], str) for p, r in records if p.point_type == "String")
    assert any("\n" in r["Value"] or '"' in r["Value"] for p, r in records if p.point_type == "String")
    per_tag_duplicates = [
        sum(1 for a, b in zip(rs, rs[1:]) if a["Timestamp"] == b["Timestamp"])
        for rs in (truth.recorded(p.name, "*-1d", "*") for p in shared_server.api.plant.points[:120])
    ]
    assert sum(per_tag_duplicates) > 0, "several values at one timestamp must occur"


def test_streamsets_recorded_value_and_owner_values(shared_server, http, truth):
    points = shared_server.api.plant.points[:4]
    query = "&".join(f"webId={p.web_id}" for p in points)
    reply = http.get(f"{shared_server.url}/streamsets/recorded?{query}&startTime=*-3h&maxCount=10000").json()
    assert [i["WebId"] for i in reply["Items"]] == [p.web_id for p in points]
    for item, point in zip(reply["Items"], points):
        assert item["Name"] == point.name and item["Items"] == truth.recorded(point.name, "*-3h", "*")
    values = http.get(f"{shared_server.url}/streamsets/value?{query}").json()["Items"]
    assert [v["Value"] for v in values] == [truth.recorded(p.name, "*-1d", "*")[-1] for p in points]
    element = points[0]
    owner = next(e for e in shared_server.api.plant.elements if any(a.point is element for a in e.attributes))
    attributes = http.get(f"{shared_server.url}/streamsets/{owner.web_id}/value").json()["Items"]
    assert [a["Name"] for a in attributes] == [a.name for a in owner.attributes]
    manufacturer = next(a for a in attributes if a["Name"] == "Manufacturer")
    assert manufacturer["Value"]["Value"] in ("Sulzer", "KSB", "Atlas", "Alfa")


def test_value_end_interpolated_and_summary(shared_server, http, truth):
    point = next(p for p in shared_server.api.plant.points if p.point_type == "Float64")
    url = f"{shared_server.url}/streams/{point.web_id}"
    recorded = truth.recorded(point.name, "*-1d", "*")
    assert http.get(f"{url}/end").json() == recorded[-1] == http.get(f"{url}/value").json()
    interpolated = http.get(f"{url}/interpolated", params={"startTime": "*-6h", "endTime": "*", "interval": "1h"}).json()
    assert [i["Timestamp"] for i in interpolated["Items"]] == [f"2024-05-01T{h}:00:00Z" for h in range(18, 24)] + ["2024-05-02T00:00:00Z"]
    numbers = [r["Value"] for r in truth.recorded(point.name, "*-6h", "*") if not isinstance(r["Value"], dict)]
    summary = http.get(f"{url}/summary", params={"startTime": "*-6h", "endTime": "*", "summaryType": ["Minimum", "Maximum", "Count"],
                                                 "calculationBasis": "EventWeighted"}).json()["Items"]
    by_type = {s["Type"]: s["Value"]["Value"] for s in summary}
    assert by_type["Minimum"] == min(numbers) and by_type["Maximum"] == max(numbers)
    assert by_type["Count"] == len(truth.recorded(point.name, "*-6h", "*"))
    bad = http.get(f"{url}/summary", params={"summaryType": "Median"})
    assert bad.status_code == 400 and "Median" in bad.json()["Errors"][0]


def test_failing_tag_is_a_server_error_for_that_stream_only():
    from tests.simulators import make_server
    import requests

    with make_server(failing_tags=("010101.P-00001.TEMP",)) as server:
        broken, fine = server.api.plant.points[0], server.api.plant.points[1]
        assert broken.name == "010101.P-00001.TEMP"
        reply = requests.get(f"{server.url}/streams/{broken.web_id}/recorded")
        assert reply.status_code == 500 and "010101.P-00001.TEMP" in reply.json()["Errors"][0]
        assert requests.get(f"{server.url}/streams/{fine.web_id}/recorded").status_code == 200


def test_late_values_appear_when_back_filled():
    """A late tag's outage stays empty until the back-fill, then its values appear in the past."""
    from pi_simulator import Clock, GroundTruth, PiWebApi, PlantConfig

    api = PiWebApi(PlantConfig(tags=5, elements=20, event_frames=0, late_tag_share=1.0,
                               sampling_seconds=60, origin_ticks=NOW), clock=Clock(NOW))
    truth = GroundTruth(api)
    point = api.plant.points[0]
    series = api.series
    values = series.events(point, *series.event_range(point, NOW - 6 * 3600 * 10**7, NOW))
    pending = values.visible_at > NOW
    assert pending.any(), "a late tag has values waiting to be back-filled"
    waiting = int(values.ticks[pending][0])
    before = truth.recorded(point.name, waiting, waiting + 10**7 * 60, now=NOW)
    after = truth.recorded(point.name, waiting, waiting + 10**7 * 60, now=int(values.visible_at[pending][0]))
    assert before == [] and len(after) >= 1


@pytest.mark.parametrize("tags, elements", [(2_000, 100), (5_000, 10), (300, 400), (100, 1), (50, 0), (20_000, 3)])
def test_point_names_are_unique_for_every_plant_size(tags, elements):
    """PI point names are unique within a Data Archive; GroundTruth(name) relies on it."""
    names = [p.name for p in build_plant(PlantConfig(tags=tags, elements=elements, event_frames=10)).points]
    assert len(names) == tags and len(set(names)) == tags
