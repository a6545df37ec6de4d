"""``pi-lakeflow simulate`` in its own process, for the benchmarks."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

SMALL_PLANT = ("--elements", "100", "--event-frames", "10")


@contextmanager
def simulator(tags: int, *options: str) -> Iterator[str]:
    """A simulator of ``tags`` tags (and a small AF model) with ``options`` of ``pi-lakeflow
    simulate``, on a free loopback port; yields its URL, and stops it at the end."""
    process = subprocess.Popen([sys.executable, "-m", "pi_lakeflow.cli", "simulate", "--port", "0",
                                "--tags", str(tags), *SMALL_PLANT, *options], stdout=subprocess.PIPE, text=True)
    try:
        yield process.stdout.readline().split()[-1]
    finally:
        process.terminate()
        process.wait()
