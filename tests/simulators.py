"""Simulators for tests: a small plant on loopback with a frozen clock."""

from __future__ import annotations

from pi_simulator import Clock, PiWebApi, PlantConfig, ServerConfig, SimulatorServer
from pi_simulator.pitime import parse_time

#: The frozen server time of every test simulator.
NOW = parse_time("2024-05-02T00:00:00Z", 0)
SMALL_PLANT = PlantConfig(tags=300, elements=400, event_frames=120, origin_ticks=NOW)


def make_server(plant: PlantConfig = SMALL_PLANT, **server_options) -> SimulatorServer:
    api = PiWebApi(plant, ServerConfig(**server_options), Clock(NOW))
    return SimulatorServer(api, stall_seconds=3.0)
