"""A PI Web API simulator: a deterministic plant served over HTTP(S) with PI Web API's shapes.

>>> from pi_simulator import PiWebApi, SimulatorServer
>>> with SimulatorServer(PiWebApi()) as server:
...     print(server.url)  # doctest: +SKIP

``PiWebApi`` is also the ground truth for tests: :meth:`GroundTruth.recorded` returns exactly
the values that the server would serve for a tag and a time range at the current clock.
"""

from .api import PiWebApi
from .clock import Clock
from .config import PlantConfig, ServerConfig
from .ground_truth import GroundTruth
from .server import FAULTS, SimulatorServer

__all__ = ["PiWebApi", "Clock", "PlantConfig", "ServerConfig", "GroundTruth", "SimulatorServer", "FAULTS"]
