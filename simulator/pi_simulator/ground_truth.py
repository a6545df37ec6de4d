"""The exact values the simulator serves, for tests: no HTTP, no client code involved."""

from __future__ import annotations

from .api import PiWebApi
from .pitime import parse_time
from .plant import Point
from .render import ground_truth_records


class GroundTruth:
    """What a :class:`PiWebApi` serves, read straight from its model."""

    def __init__(self, api: PiWebApi):
        self.api = api

    def point(self, name_or_web_id: str) -> Point:
        for point in self.api.plant.points:
            if name_or_web_id in (point.name, point.web_id):
                return point
        raise KeyError(f"No simulated tag named or identified '{name_or_web_id}'.")

    def recorded(self, tag: str, start: str | int, end: str | int, now: int | None = None) -> list[dict]:
        """Every value of ``tag`` with start <= timestamp <= end, as PI Web API JSON objects,
        as of server time ``now`` (the clock's time by default), in time order."""
        now = self.api.now() if now is None else now
        start_ticks = start if isinstance(start, int) else parse_time(start, now)
        end_ticks = end if isinstance(end, int) else parse_time(end, now)
        values, _ = self.api.series.recorded(self.point(tag), start_ticks, end_ticks, now, 1 << 62)
        return ground_truth_records(self.point(tag), values)

    def changes(self, tag: str, since: int, now: int) -> list[tuple[str, dict]]:
        """Stream-update events in (since, now]: (action, value object) pairs."""
        point = self.point(tag)
        values, actions, _ = self.api.series.changes(point, since, now)
        records = ground_truth_records(point, values)
        return [(("Add", "Update", "Delete")[a], r) for a, r in zip(actions.tolist(), records)]
