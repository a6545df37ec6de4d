"""The terminal of a local run: the driver's lines relayed without Spark's noise, and a progress
bar drawn in place."""

from __future__ import annotations

import re
import shutil
import threading
from dataclasses import dataclass, field
from typing import IO, TextIO

#: Lines of the JVM, Spark and its pipelines launcher that a run shows only when verbose.
SPARK_NOISE = re.compile(r"^(WARNING: Using incubator modules|Using Spark's default log4j profile|Setting default "
                         r"log level|To adjust logging level|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d: (Loading definitions|"
                         r"Found \d+ files? matching|Importing ))")


#: The start of the engine's progress-bar lines (engine.show_progress).
PROGRESS_MARK = "::pi-lakeflow-progress:: "
#: Back to the start of the terminal's line, and erase it.
_ERASE_LINE = "\r\x1b[K"


@dataclass
class DrawnBar:
    """Whether a progress bar is drawn on the terminal: the stdout and stderr relays share it, so
    that a line on either erases the bar first."""

    shown: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def relay(source: IO[str], target: TextIO, verbose: bool, drawn: DrawnBar | None = None) -> None:
    """Copy the driver's lines to ``target`` as they come, without SPARK_NOISE unless ``verbose``.
    A progress-bar line is drawn over the previous one (no newline) when ``target`` is a terminal,
    cut to its width, and dropped otherwise; the next line, on this relay or another sharing
    ``drawn``, replaces the bar."""
    drawn = drawn or DrawnBar()
    for line in source:
        with drawn.lock:
            if line.startswith(PROGRESS_MARK):
                if target.isatty():
                    width = shutil.get_terminal_size().columns - 1
                    target.write(_ERASE_LINE + line[len(PROGRESS_MARK):].rstrip("\n")[:width])
                    target.flush()
                    drawn.shown = True
            elif verbose or not SPARK_NOISE.match(line):
                erase = drawn.shown and target.isatty()
                target.write((_ERASE_LINE if erase else "") + line)
                target.flush()
                drawn.shown = drawn.shown and not erase
