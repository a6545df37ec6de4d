"""The simulator's clock: real time by default, or frozen and moved by hand (tests)."""

from __future__ import annotations

import threading
import time

from .pitime import TICKS_PER_SECOND


class Clock:
    """Server time in ticks (100 ns since the Unix epoch, UTC).

    ``Clock()`` follows the wall clock; ``Clock(frozen_at=t)`` stays at ``t`` until
    :meth:`set` or :meth:`advance` moves it, so that tests see exactly the data they expect.
    """

    def __init__(self, frozen_at: int | None = None):
        self._frozen = frozen_at
        self._offset = 0
        self._lock = threading.Lock()

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def now(self) -> int:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time_ns() // 100 + self._offset

    def set(self, ticks: int) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen = ticks
            else:
                self._offset = ticks - time.time_ns() // 100

    def advance(self, ticks: int) -> None:
        self.set(self.now() + ticks)

    def sleep_until_next(self, seconds: float) -> None:
        """Wait ``seconds`` of server time (real time for a running clock)."""
        if self._frozen is None:
            time.sleep(seconds)
        else:
            self.advance(round(seconds * TICKS_PER_SECOND))
