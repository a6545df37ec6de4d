"""What the terminal of a local run shows while a batch reads: each finished tag partition, how
far the batch has read, the steps of a back-fill. Read from the state store by a thread of the
engine (engine.py)."""

from __future__ import annotations

import threading
import time

from pi_lakeflow.local.run_summary import marker_note
from pi_lakeflow.local.terminal import PROGRESS_MARK
from pi_lakeflow.state.store import PlanInfo, StateStore

#: While a batch reads, the watcher says how far it is this often.
QUIET_SECONDS = 30.0


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {text}", flush=True)


def show_progress(text: str) -> None:
    """A progress bar's new state: runner.relay draws it over the last one on a terminal."""
    print(PROGRESS_MARK + text, flush=True)


class PartitionWatcher(threading.Thread):
    """Prints each finished tag partition of the batches being read, from the state store, and how
    far the batch has read: the values its tasks have landed, the tags of the partitions done, the
    share of its window read and an estimate of the time left. With ``bar`` (a terminal), that is a
    progress bar redrawn every second (runner.relay draws it in place); without, a line every
    QUIET_SECONDS without a finished partition. Either way, when no task has finished a time slice
    for QUIET_SECONDS, a line says so."""

    def __init__(self, store: StateStore, started_ns: int, bar: bool = False):
        super().__init__(daemon=True)
        self.store, self.started_ns, self.bar = store, started_ns, bar
        # The batch the run follows: the newest one kept (Spark runs it again when it was not
        # committed, so a batch counts as the run's once a file of it is written in the run).
        self.after_batch = max(store.batches(), default=1) - 1
        self.first_batch: int | None = None
        self.stopped = threading.Event()
        self.seen: set[tuple[int, int]] = set()
        self.planned: dict[int, float] = {}  # batch -> when the watcher first saw its plan
        self.sizes: dict[int, tuple[int, int]] = {}  # batch -> (partitions, tags) of its plan
        self.tags_done: dict[int, int] = {}  # batch -> tags of its partitions done
        self.progress: dict[int, dict] = {}  # batch -> the tasks' progress files, as last read
        self.steps: dict[int, int] = {}  # batch -> the steps of this run, as its plan counts them
        self.moved = time.monotonic()  # when a plan, a partition or a time slice last came
        self.news = time.monotonic()  # when the last line was printed
        self.lock = threading.Lock()  # report() runs in this thread and, before some events, in the main one

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            self.report()

    def report(self) -> None:
        with self.lock:
            self._report()

    def _report(self) -> None:
        for batch in [b for b in self.store.batches() if b > self.after_batch]:
            if batch not in self.planned:
                if not self.store.written_since(batch, self.started_ns):
                    continue
                self.first_batch = batch if self.first_batch is None else self.first_batch
                info, (tags, behind) = self.store.plan_info(batch), self.store.due(batch)
                self.planned[batch] = self.moved = self.news = time.monotonic()
                self.sizes[batch], self.tags_done[batch] = (info.partitions, tags), 0
                self.steps[batch] = batch - self.first_batch + info.steps
                if info.steps > 1 or batch > self.first_batch:
                    say(self.step_line(batch, info, tags, behind))
            partitions = self.sizes[batch][0]
            finished = self.store.finished_partitions(batch)
            for partition in finished:
                if (batch, partition) in self.seen:
                    continue
                outcome, stats = self.store.outcome(batch, partition)
                self.seen.add((batch, partition))
                self.moved = self.news = time.monotonic()
                self.tags_done[batch] += len(outcome)
                done = sum(1 for b, _ in self.seen if b == batch)
                failed = sum(1 for e in outcome["last_error"].to_pylist() if e)
                say(f"batch {batch}: partition {partition} read ({done} of {partitions}): {len(outcome):,} tags"
                    f"{f' ({failed} failed)' if failed else ''}, "
                    f"{sum(outcome['values_landed'].to_pylist()):,} values landed in {stats.seconds:.1f} s, "
                    f"{stats.requests} requests{marker_note(outcome, stats)}")
            if len(finished) >= partitions or self.stopped.is_set():
                continue
            now = time.monotonic()
            progress = self.store.progress(batch)
            if progress != self.progress.get(batch, {}):
                self.progress[batch], self.moved = progress, now
            head = f"batch {batch}: reading, {len(finished)}/{partitions} partitions done; "
            if now - self.moved >= QUIET_SECONDS and now - self.news >= QUIET_SECONDS:
                say(f"{head}no time slice finished for {now - self.moved:.0f} s (a large slice, or a slow or silent "
                    f"server, which is retried: each try waits up to pi.read_timeout)")
                self.news = now
            elif self.bar:
                show_progress(self.progress_bar(batch, finished))
            elif now - self.news >= QUIET_SECONDS:
                say(head + self.reading(batch, finished))
                self.news = now

    def step_of(self, batch: int) -> tuple[int, int]:
        """Which step of this run a batch is, and of how many its plan counts."""
        return batch - self.first_batch + 1, self.steps[batch]

    def step_line(self, batch: int, info: PlanInfo, tags: int, behind: int | None) -> str:
        """A batch of a back-fill in steps (pi.step): which step of how many, what it reads (its
        tags, from where the one furthest behind is), and, after the first, about how long the
        steps left take at the pace so far."""
        step, steps = self.step_of(batch)
        line = f"batch {batch}: step {step} of {steps} of a back-fill (pi.step), {tags:,} tags"
        if behind is not None:
            line += f", from {time.strftime('%Y-%m-%d %H:%M', time.gmtime(behind / 1e9))} UTC to " \
                    f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(info.end_ns / 1e9))} UTC; each step commits"
        if step > 1:
            pace = (time.monotonic() - self.planned[self.first_batch]) / (step - 1)
            line += f"; about {duration(pace * (steps - step + 1))} left"
        elif steps > 1:
            line += " (the time left is estimated after this step)"
        return line

    def reading(self, batch: int, finished: list[int]) -> str:
        """How far the batch has read: values landed, share of the window, time left."""
        values, share, left = self.estimate(batch, finished)
        return f"{values:,} values landed so far, {share:.0%} of the window read" + (f", about {left} left" if left else "")

    def progress_bar(self, batch: int, finished: list[int], width: int = 20) -> str:
        """The batch's progress as one bar: share read, values landed, tags of the partitions done,
        time left."""
        values, share, left = self.estimate(batch, finished)
        filled = round(share * width)
        step, steps = self.step_of(batch)
        label = f"batch {batch}" + (f" (step {step}/{steps})" if steps > 1 else "")
        return (f"{label} [{'#' * filled}{'.' * (width - filled)}] {share:4.0%}  {values:,} values  "
                f"{self.tags_done[batch]:,}/{self.sizes[batch][1]:,} tags  "
                + (f"{left} left" if left else "estimating"))

    def estimate(self, batch: int, finished: list[int]) -> tuple[int, float, str]:
        """Values landed so far, the share of the window read, and the time left ('' before 1 %)."""
        partitions, progress = self.sizes[batch][0], self.progress.get(batch, {})
        share = (len(finished) + sum(p.share for n, p in progress.items() if n not in finished)) / partitions
        elapsed = time.monotonic() - self.planned[batch]
        left = duration(elapsed * (1 - share) / share) if share >= 0.01 else ""
        return sum(p.values_landed for p in progress.values()), share, left


def duration(seconds: float) -> str:
    """A duration in the unit a person reads best."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
