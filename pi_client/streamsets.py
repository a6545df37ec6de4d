"""Reading many streams at once: each tag's read (:class:`TagRead`), sub-requests of tags that
start together under the server's URL and item limits (:class:`Job`), sent through the batch
controller with per-sub-request retries and regrouping (:func:`fan_out`), and what a read
returns (:class:`ReadResult`). The read modes (timeseries.py) say what one sub-request asks and
how its reply is taken."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence
from urllib.parse import quote

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from . import schemas
from .client import Limits, PiClient
from .errors import PiAuthError, PiConfigError, PiConnectionError, PiDecodeError, PiHttpError
from .times import to_ns, to_pi_time


@dataclass(frozen=True)
class Tag:
    """A stream to read: a PI point or attribute WebId; ``name`` and ``point_type`` are optional
    (``point_type="Timestamp"`` fills ``value_timestamp``)."""

    web_id: str
    name: str = ""
    point_type: str = ""


def as_tags(tags: Iterable[Tag | str]) -> list[Tag]:
    found = [t if isinstance(t, Tag) else Tag(t) for t in tags]
    for tag in found:
        if not isinstance(tag.web_id, str) or not tag.web_id:
            raise PiConfigError(f"{tag!r} has no WebId; give WebId strings or Tag objects.")
    if len({t.web_id for t in found}) != len(found):
        raise PiConfigError("The same WebId is given twice; give each tag once.")
    return found


@dataclass
class TagRead:
    """Where one tag's read stands: the page it starts next, what it read, its error."""

    tag: Tag
    start: int
    page_start: str            # PI time text the next page starts at
    skip: int = 0              # values at page_start already read
    pages: int = 0
    values: int = 0
    name: str = ""
    error: str | None = None


@dataclass
class Job:
    """One sub-request: tags that share a start time, and how many values each may return."""

    tags: list[TagRead]
    max_count: int = 0


@dataclass
class ReadResult:
    """Values (schemas.VALUES) and one outcome per tag (schemas.OUTCOMES), with request counters."""

    values: pa.Table
    outcomes: pa.Table
    requests: int = 0
    retries: int = 0
    bytes_received: int = 0
    seconds: float = 0.0

    @property
    def errors(self) -> dict[str, str]:
        """WebId -> the server's message, for the tags that failed."""
        rows = self.outcomes.filter(pc.is_valid(self.outcomes["error"]))
        return dict(zip(rows["web_id"].to_pylist(), rows["error"].to_pylist()))


def fan_out(client: PiClient, jobs: list[Job], resource: Callable[[Job], str],
            accept: Callable[[Job, msgspec.Raw | bytes], list[Job]],
            regroup: Callable[[list[TagRead]], list[Job]]) -> None:
    """Send jobs in batches until none is left.

    A batch request that fails after its retries (a fault, not a refused identity) fails the tags
    of its jobs with its message, and the other jobs go on. A job refused for its count (the
    server's MaxReturnedItemsPerCall) is regrouped under the limit the server named, and so is
    every job waiting with a count above it, so that each sub-request is refused at most once; a
    failed job of several tags becomes one job per tag, so that one bad tag cannot fail the
    others; a failed job of one tag records the server's message.
    """
    limits = client.limits

    def fit(job: Job) -> list[Job]:
        if not too_large(job, limits):
            return [job]
        fitted = regroup(job.tags)
        if any(too_large(j, limits) for j in fitted):  # one tag alone needs more than a call may return
            for progress in job.tags:
                progress.error = (f"HTTP 400: this read returns {job.max_count:,} items per tag and the server "
                                  f"allows {limits.max_items_per_call:,} per call (MaxReturnedItemsPerCall); "
                                  f"read a shorter window or at a longer interval")
            return []
        return fitted

    while jobs:
        jobs = [fitted for job in jobs for fitted in fit(job)]
        sent, values = [], 0
        for job in jobs:  # a batch holds at most values_per_batch values
            if sent and (len(sent) >= limits.requests_per_batch
                         or values + job.max_count * len(job.tags) > limits.values_per_batch):
                break
            sent.append(job)
            values += job.max_count * len(job.tags)
        jobs = jobs[len(sent):]
        try:
            replies = client.batch({str(i): resource(job) for i, job in enumerate(sent)})
        except PiAuthError:
            raise  # the identity is refused: every tag would fail alike
        except (PiConnectionError, PiDecodeError, PiHttpError) as error:
            for job in sent:  # the request failed after its retries: its tags fail, the others go on
                for progress in job.tags:
                    progress.error = str(error)
            continue
        for i, job in enumerate(sent):
            reply = replies[str(i)]
            if reply.ok:
                jobs.extend(accept(job, reply.content))
            elif reply.status == 400 and limits.learn(reply.messages()) and too_large(job, limits):
                jobs.extend(fit(job))
            elif len(job.tags) > 1:
                jobs.extend(Job([progress], job.max_count) for progress in job.tags)
            else:
                job.tags[0].error = reply.error


def too_large(job: Job, limits: Limits) -> bool:
    """Whether a job asks for more items than the server allows in one call."""
    return job.max_count * len(job.tags) > limits.max_items_per_call


def group_jobs(client: PiClient, tags: list[TagRead], fixed: str = "", max_tags: int | None = None) -> list[Job]:
    """Jobs of tags that start together, each under the tag count (``max_tags`` or the limits'),
    URL length (client.url_groups) and item limits."""
    limits = client.limits
    most = min(max_tags or limits.tags_per_request, limits.max_items_per_call)
    by_start: dict[str, dict[str, TagRead]] = {}
    for progress in tags:
        by_start.setdefault(progress.page_start, {})[progress.tag.web_id] = progress
    jobs = [Job([group[w] for w in web_ids]) for group in by_start.values()
            for web_ids in client.url_groups(list(group), most, len(fixed))]
    for job in jobs:
        job.max_count = max(1, limits.max_items_per_call // len(job.tags))
    return jobs


def fixed_size_jobs(client: PiClient, tags: list[TagRead], fixed: str, per_tag: int) -> list[Job]:
    """Jobs for reads that return ``per_tag`` items per tag (interpolated values, summaries)."""
    jobs = group_jobs(client, tags, fixed, max_tags=max(1, client.limits.max_items_per_call // max(1, per_tag)))
    for job in jobs:
        job.max_count = per_tag
    return jobs


def present_streams(job: Job, streams: dict):
    """(progress, stream) for each tag of the job; a tag missing from the reply gets an error."""
    for progress in job.tags:
        stream = streams.get(progress.tag.web_id)
        if stream is None:
            progress.error = "The reply did not contain this stream."
        else:
            yield progress, stream


def web_id_query(tags: list[TagRead]) -> str:
    return "&".join(f"webId={quote(p.tag.web_id, safe='')}" for p in tags)


def tag_windows(tags: Iterable[Tag | str], start, end, cursors: Mapping[str, object] | None) -> tuple[list[TagRead], int]:
    end_ns = to_ns(end)
    progress = []
    for tag in as_tags(tags):
        tag_start = to_ns((cursors or {}).get(tag.web_id, start))
        progress.append(TagRead(tag, tag_start, to_pi_time(tag_start), name=tag.name))
    return progress, end_ns


def tag_outcomes(progress: Sequence[TagRead], end_ns: int) -> pa.Table:
    return pa.Table.from_pydict({
        "web_id": [p.tag.web_id for p in progress],
        "start": [p.start for p in progress],
        "cursor": [p.start if p.error or p.start >= end_ns else end_ns for p in progress],
        "values": [0 if p.error else p.values for p in progress],
        "pages": [p.pages for p in progress],
        "error": [p.error for p in progress],
    }, schema=schemas.OUTCOMES)


def read_result(client: PiClient, progress: list[TagRead], end_ns: int, tables: list[pa.Table], schema: pa.Schema,
                counters: tuple[int, int, int], started: float) -> ReadResult:
    values = pa.concat_tables(tables) if tables else schema.empty_table()
    failed = [p.tag.web_id for p in progress if p.error]
    if failed and values.num_rows:  # a failed tag lands nothing: its cursor stays, the next read has it all
        values = values.filter(pc.invert(pc.is_in(values["web_id"], pa.array(failed))))
    requests, retries, received = client.transport.stats.snapshot()
    return ReadResult(values, tag_outcomes(progress, end_ns), requests - counters[0], retries - counters[1],
                      received - counters[2], time.perf_counter() - started)
