"""A folder per stream offset, with a file per partition, pruned behind the committed offset.

The three stores under ``pi.state_path`` keep what a micro-batch planned and did this way: the
time-series source's batches (``batches/00000007/``), the real-time source's polls
(``updates/polls/00000007/``) and each window table's cursors (``windows/<table>/<end>-<retry>/``).
An offset is a tuple of whole numbers; its folder's name is those numbers joined by ``-``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

#: Offsets kept before the committed one: a replay of the batch after it reads the files of the
#: batch it follows, and the local engine and the logs read the newest few.
KEEP = 3

Offset = tuple[int, ...]


class OffsetFolders:
    """The offset folders under ``root``. ``width``: the digits of each number in a folder's name
    (0: as many as it has); ``marker``: a file whose presence makes a folder an offset's (a
    folder without it is an attempt that never got that far; None: every folder counts)."""

    def __init__(self, root: Path, width: int = 8, marker: str | None = None):
        self.root, self.width, self.marker = Path(root), width, marker

    def folder(self, offset: Offset) -> Path:
        return self.root / "-".join(f"{n:0{self.width}d}" if self.width else str(n) for n in offset)

    def file(self, offset: Offset, kind: str, part: int, suffix: str = "arrow") -> Path:
        """The file of ``kind`` (plan, part, digest, events, ...) that partition ``part`` keeps."""
        return self.folder(offset) / f"{kind}-{part:05d}.{suffix}"

    def files(self, offset: Offset, kind: str, suffix: str = "arrow") -> dict[int, Path]:
        """The files of ``kind`` an offset holds, by partition, in partition order."""
        found = {int(p.name[len(kind) + 1:-len(suffix) - 1]): p for p in self.folder(offset).glob(f"{kind}-*.{suffix}")}
        return dict(sorted(found.items()))

    def offsets(self) -> list[Offset]:
        """The offsets that have a folder (with its marker file), oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            numbers = path.name.split("-")
            if all(n.isdigit() for n in numbers) and (self.marker is None or (path / self.marker).is_file()):
                found.append(tuple(int(n) for n in numbers))
        return sorted(found)

    def stale(self, committed: Offset) -> list[Offset]:
        """The offsets no replay needs: all up to ``committed`` but the KEEP before it and itself."""
        done = [o for o in self.offsets() if o <= committed]
        return done[:-(KEEP + 1)]

    def remove(self, offset: Offset) -> None:
        shutil.rmtree(self.folder(offset), ignore_errors=True)

    def prune(self, committed: Offset) -> None:
        """Remove the :meth:`stale` offsets' folders."""
        for offset in self.stale(committed):
            self.remove(offset)
