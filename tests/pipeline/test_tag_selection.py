"""Tag selection (name filter, list, AF root) against the simulator, without Spark."""

from __future__ import annotations

import pytest

from pi_lakeflow.config.connection import connect
from pi_lakeflow.runtime.discovery import select_tags
from pi_lakeflow.config.settings import parse
from pi_simulator.plant import ASSET_DATABASE_NAME

pytestmark = pytest.mark.unit


def settings_for(server, **keys):
    return parse({"pi.url": server.url, "pi.state_path": "/unused", **keys})


def test_name_filter_list_and_af_root_select_the_points_they_name(shared_server):
    plant = shared_server.api.plant
    with connect(settings_for(shared_server)) as client:
        assert select_tags(client, settings_for(shared_server)).table.num_rows == len(plant.points)
        suffix = plant.points[0].name.rsplit(".", 1)[-1]
        by_filter = select_tags(client, settings_for(shared_server, **{"pi.tags.name_filter": f"*.{suffix}"}))
        assert sorted(by_filter.table["name"].to_pylist()) == sorted(p.name for p in plant.points
                                                                      if p.name.endswith(f".{suffix}"))
        names = f"{plant.points[3].name}, {plant.points[7].name}, NOT-A-TAG"
        listed = select_tags(client, settings_for(shared_server, **{"pi.tags.names": names}))
        assert sorted(listed.table["name"].to_pylist()) == sorted([plant.points[3].name, plant.points[7].name])
        assert list(listed.errors) == ["NOT-A-TAG"]
        area = next(e for e in plant.elements if e.children and e.parent is not None)
        below = [e for e in plant.elements if e.path == area.path or e.path.startswith(area.path + "\\")]
        expected = {a.point.web_id for e in below for a in e.attributes if a.point}
        by_af = select_tags(client, settings_for(shared_server, **{"pi.tags.af_root": area.path,
                                                                   "pi.af.database": ASSET_DATABASE_NAME}))
        assert set(by_af.table["web_id"].to_pylist()) == expected and expected
