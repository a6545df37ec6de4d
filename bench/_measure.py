"""Measuring a process tree for the benchmarks: its resident memory, sampled."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every process under it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(stat[1]), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            continue
    return total


class PeakMemory(threading.Thread):
    """The peak of :func:`tree_rss` of ``root``, sampled every ``every`` seconds until stopped."""

    def __init__(self, root: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.root, self.every, self.peak = root, every, 0
        self.stopped = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.peak = max(self.peak, tree_rss(self.root))

    def stop(self) -> int:
        self.stopped.set()
        return self.peak
