"""The batch controller in PI Web API's real format."""

from __future__ import annotations

import pytest

from tests.simulators import make_server

pytestmark = pytest.mark.unit


def test_object_keyed_batch_returns_207_with_each_status(shared_server, http, truth):
    point = shared_server.api.plant.points[5]
    body = {
        "a": {"Method": "GET", "Resource": f"{shared_server.url}/streams/{point.web_id}/recorded?startTime=*-1h&maxCount=1000"},
        "b": {"Method": "GET", "Resource": f"{shared_server.url}/points/F1DPmissing"},
    }
    reply = http.post(f"{shared_server.url}/batch", json=body)
    assert reply.status_code == 207
    result = reply.json()
    assert result["a"]["Status"] == 200 and result["a"]["Content"]["Items"] == truth.recorded(point.name, "*-1h", "*")
    assert result["b"]["Status"] == 404 and result["b"]["Content"]["Errors"]


def test_list_shaped_or_wrapped_bodies_are_rejected(shared_server, http):
    request = {"Method": "GET", "Resource": f"{shared_server.url}/system"}
    assert http.post(f"{shared_server.url}/batch", json=[request]).status_code == 400
    wrapped = http.post(f"{shared_server.url}/batch", json={"Requests": [request]})
    assert wrapped.status_code == 400 and "'Requests' must be an object" in wrapped.json()["Errors"][0]
    assert http.post(f"{shared_server.url}/batch", data=b"{not json").status_code == 400


def test_parameters_go_in_the_resource_url_and_parent_ids_resolve_jsonpath(shared_server, http):
    body = {
        "1": {"Method": "GET", "Resource": f"{shared_server.url}/dataservers"},
        "2": {"Method": "GET", "Resource": "{0}?nameFilter=*.SPEED&maxCount=3", "ParentIds": ["1"],
              "Parameters": ["$.1.Content.Items[0].Links.Points"]},
        "3": {"Method": "GET", "Resource": "$.2.Content.Items[0].Links.Self", "ParentIds": ["2"]},
    }
    result = http.post(f"{shared_server.url}/batch", json=body).json()
    names = [p["Name"] for p in result["2"]["Content"]["Items"]]
    assert len(names) == 3 and all(n.endswith(".SPEED") for n in names)
    assert result["3"]["Status"] == 200 and result["3"]["Content"]["Name"] == names[0]


def test_request_template_fans_out_over_every_token(shared_server, http):
    body = {
        "1": {"Method": "GET", "Resource": f"{shared_server.url}/dataservers/{shared_server.api.plant.data_server_web_id()}/points?maxCount=4"},
        "2": {"Method": "GET", "RequestTemplate": {"Resource": f"{shared_server.url}/streams/{{0}}/end"},
              "Parameters": ["$.1.Content.Items[*].WebId"], "ParentIds": ["1"]},
    }
    result = http.post(f"{shared_server.url}/batch", json=body).json()
    items = result["2"]["Content"]["Items"]
    assert len(items) == 4 and all(i["Status"] == 200 and "Timestamp" in i["Content"] for i in items)


def test_children_of_a_failed_parent_get_409_and_cycles_are_refused(shared_server, http):
    body = {
        "1": {"Method": "GET", "Resource": f"{shared_server.url}/points/F1DPmissing"},
        "2": {"Method": "GET", "Resource": "$.1.Content.Links.Self", "ParentIds": ["1"]},
    }
    result = http.post(f"{shared_server.url}/batch", json=body).json()
    assert result["1"]["Status"] == 404 and result["2"]["Status"] == 409
    cycle = {"1": {"Resource": "x", "ParentIds": ["2"]}, "2": {"Resource": "y", "ParentIds": ["1"]}}
    assert http.post(f"{shared_server.url}/batch", json=cycle).status_code == 400


def test_a_failing_sub_request_keeps_the_rest_of_the_batch(http):
    with make_server(failing_tags=("010101.P-00001.TEMP",)) as server:
        broken, fine = server.api.plant.points[:2]
        body = {str(i): {"Method": "GET", "Resource": f"{server.url}/streams/{p.web_id}/recorded"}
                for i, p in enumerate((broken, fine))}
        result = http.post(f"{server.url}/batch", json=body).json()
        assert result["0"]["Status"] == 500 and "010101.P-00001.TEMP" in result["0"]["Content"]["Errors"][0]
        assert result["1"]["Status"] == 200 and result["1"]["Content"]["Items"]


def test_sub_request_urls_over_the_length_limit_get_414(shared_server, http):
    long_query = "&".join(["webId=" + "A" * 80] * 300)
    result = http.post(f"{shared_server.url}/batch", json={"1": {"Method": "GET", "Resource": f"{shared_server.url}/streamsets/recorded?{long_query}"}}).json()
    assert result["1"]["Status"] == 414
