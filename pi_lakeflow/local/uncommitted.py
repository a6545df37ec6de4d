"""Files a killed run left in the folders of its streaming tables: written, never committed.

A streaming table's batch writes its parquet files first and commits them by adding them to the
table's file-sink log (``_spark_metadata``); Spark reads the table through that log, so files a
killed run wrote but never committed are invisible to Spark, and a plain parquet reader (pandas,
DuckDB, pyarrow) reads them as rows: duplicates, or files without a footer that fail the read.
Before a run or a stream starts (under the ``state_dir`` lock: nothing else writes the tables),
:func:`remove_uncommitted` deletes them.

The log's files are ``N`` (the files a batch added) and, every few batches, ``N.compact`` (every
file up to batch N); each holds a version line and then one JSON object per file, with its
``path`` (a URI) and ``action`` (``add`` or ``delete``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

SINK_LOG = "_spark_metadata"
_LOG_FILE = re.compile(r"(\d+)(\.compact)?")


@dataclass(frozen=True)
class Removed:
    """What was removed from one table's folder."""

    table: str
    files: int
    bytes: int


def committed_files(folder: Path) -> set[Path] | None:
    """The data files the table's file-sink log holds; None when the folder has no log (not a
    streaming table's folder)."""
    log = folder / SINK_LOG
    if not log.is_dir():
        return None
    entries = sorted((int(m.group(1)), bool(m.group(2)), f) for f in log.iterdir()
                     if (m := _LOG_FILE.fullmatch(f.name)))
    newest_compact = max((n for n, compact, _ in entries if compact), default=-1)
    files: set[Path] = set()
    for number, compact, path in entries:
        if number < newest_compact or (number == newest_compact and not compact):
            continue  # in the compact file already
        for line in path.read_text(encoding="utf-8").splitlines()[1:]:
            entry = json.loads(line)
            file = Path(unquote(urlparse(entry["path"]).path))
            if entry.get("action", "add") == "delete":
                files.discard(file)
            else:
                files.add(file)
    return files


def uncommitted_files(folder: Path) -> list[Path]:
    """The parquet files in a streaming table's folder that its log does not hold; none when the
    folder has no log, or when the log names files elsewhere (the folder was moved: the log's
    paths are absolute), so that no committed file is ever taken for uncommitted."""
    committed = {file.resolve() for file in committed_files(folder) or ()}
    here = folder.resolve()
    if not committed or not all(file.is_relative_to(here) for file in committed):
        return []
    return sorted(file for file in here.rglob("part-*.parquet")
                  if SINK_LOG not in file.parts and file not in committed)


def remove_uncommitted(warehouse: Path) -> list[Removed]:
    """Deletes, in every streaming table's folder under ``warehouse``, the parquet files its log
    does not hold (and their checksum files); what was removed, per table."""
    removed = []
    for folder in sorted(f for f in warehouse.iterdir() if f.is_dir()) if warehouse.is_dir() else []:
        stray = uncommitted_files(folder)
        if not stray:
            continue
        size = 0
        for file in stray:
            size += file.stat().st_size
            file.unlink()
            file.with_name(f".{file.name}.crc").unlink(missing_ok=True)
        removed.append(Removed(folder.name, len(stray), size))
    return removed
