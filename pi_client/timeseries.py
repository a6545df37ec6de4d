"""Time series of many tags at once: recorded values (paged by time), interpolated values, summaries.

:func:`read_recorded` is the unit of work that the pipeline, the backfill and the benchmarks call
on each tag partition. Requests are ``streamsets/...`` sub-requests of ``batch`` POSTs: tags that
start at the same time share one sub-request (as many as the URL length and
MaxReturnedItemsPerCall allow), so 1,000 tags with a day of minute data take one HTTP request.

Paging: PI Web API has no continuation token for recorded values. A tag that fills its maxCount
is read again from its last timestamp, skipping exactly the values already read at that timestamp
(several values can share one timestamp, and they must all survive exactly once).

Windows are half-open, ``[start, end)``: the next window starts where this one ended, so a value
at the boundary is read once.
"""

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
from .decode import (PiValue, StreamData, Streams, SummaryStreams, decode, gc_paused, parse_timestamps,
                     values_table)
from .errors import PiAuthError, PiConfigError, PiConnectionError, PiDecodeError, PiHttpError
from .times import TICK_NS, parse_duration, to_ns, to_pi_time

_VALUE_FIELDS = ("Timestamp", "Value", "Good", "Questionable", "Substituted", "Annotated")
#: Only what the tables need: no Links, no per-value units (the stream carries them).
STREAMSET_FIELDS = ";".join(["Items.WebId", "Items.Name", "Items.UnitsAbbreviation",
                             *(f"Items.Items.{f}" for f in _VALUE_FIELDS)])
SUMMARY_FIELDS = ";".join(["Items.WebId", "Items.Name", "Items.UnitsAbbreviation", "Items.Items.Type",
                           *(f"Items.Items.Value.{f}" for f in _VALUE_FIELDS)])
SUMMARY_TYPES = ("Total", "Average", "Minimum", "Maximum", "Range", "StdDev", "PopulationStdDev", "Count",
                 "PercentGood")


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
class _TagRead:
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
class _Job:
    """One sub-request: tags that share a start time, and how many values each may return."""

    tags: list[_TagRead]
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


def _fan_out(client: PiClient, jobs: list[_Job], resource: Callable[[_Job], str],
             accept: Callable[[_Job, msgspec.Raw | bytes], list[_Job]],
             regroup: Callable[[list[_TagRead]], list[_Job]]) -> None:
    """Send jobs in batches until none is left.

    A batch request that fails after its retries (a fault, not a refused identity) fails the tags
    of its jobs with its message, and the other jobs go on. A job refused for its count (the
    server's MaxReturnedItemsPerCall) is regrouped under the limit the server named, and so is
    every job waiting with a count above it, so that each sub-request is refused at most once; a
    failed job of several tags becomes one job per tag, so that one bad tag cannot fail the
    others; a failed job of one tag records the server's message.
    """
    limits = client.limits

    def fit(job: _Job) -> list[_Job]:
        if not _too_large(job, limits):
            return [job]
        fitted = regroup(job.tags)
        if any(_too_large(j, limits) for j in fitted):  # one tag alone needs more than a call may return
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
            elif reply.status == 400 and limits.learn(reply.messages()) and _too_large(job, limits):
                jobs.extend(fit(job))
            elif len(job.tags) > 1:
                jobs.extend(_Job([progress], job.max_count) for progress in job.tags)
            else:
                job.tags[0].error = reply.error


def _too_large(job: _Job, limits: Limits) -> bool:
    """Whether a job asks for more items than the server allows in one call."""
    return job.max_count * len(job.tags) > limits.max_items_per_call


def _regroup(client: PiClient, tags: list[_TagRead], fixed: str = "", max_tags: int | None = None) -> list[_Job]:
    """Jobs of tags that start together, each under the tag count (``max_tags`` or the limits'),
    URL length (client.url_groups) and item limits."""
    limits = client.limits
    most = min(max_tags or limits.tags_per_request, limits.max_items_per_call)
    by_start: dict[str, dict[str, _TagRead]] = {}
    for progress in tags:
        by_start.setdefault(progress.page_start, {})[progress.tag.web_id] = progress
    jobs = [_Job([group[w] for w in web_ids]) for group in by_start.values()
            for web_ids in client.url_groups(list(group), most, len(fixed))]
    for job in jobs:
        job.max_count = max(1, limits.max_items_per_call // len(job.tags))
    return jobs


def _fixed_size_jobs(client: PiClient, tags: list[_TagRead], fixed: str, per_tag: int) -> list[_Job]:
    """Jobs for reads that return ``per_tag`` items per tag (interpolated values, summaries)."""
    jobs = _regroup(client, tags, fixed, max_tags=max(1, client.limits.max_items_per_call // max(1, per_tag)))
    for job in jobs:
        job.max_count = per_tag
    return jobs


def _present_streams(job: _Job, streams: dict):
    """(progress, stream) for each tag of the job; a tag missing from the reply gets an error."""
    for progress in job.tags:
        stream = streams.get(progress.tag.web_id)
        if stream is None:
            progress.error = "The reply did not contain this stream."
        else:
            yield progress, stream


def _web_id_query(tags: list[_TagRead]) -> str:
    return "&".join(f"webId={quote(p.tag.web_id, safe='')}" for p in tags)


def _window(tags: Iterable[Tag | str], start, end, cursors: Mapping[str, object] | None) -> tuple[list[_TagRead], int]:
    end_ns = to_ns(end)
    progress = []
    for tag in as_tags(tags):
        tag_start = to_ns((cursors or {}).get(tag.web_id, start))
        progress.append(_TagRead(tag, tag_start, to_pi_time(tag_start), name=tag.name))
    return progress, end_ns


def _outcomes(progress: Sequence[_TagRead], end_ns: int) -> pa.Table:
    return pa.Table.from_pydict({
        "web_id": [p.tag.web_id for p in progress],
        "start": [p.start for p in progress],
        "cursor": [p.start if p.error or p.start >= end_ns else end_ns for p in progress],
        "values": [0 if p.error else p.values for p in progress],
        "pages": [p.pages for p in progress],
        "error": [p.error for p in progress],
    }, schema=schemas.OUTCOMES)


def _result(client: PiClient, progress: list[_TagRead], end_ns: int, tables: list[pa.Table], schema: pa.Schema,
            counters: tuple[int, int, int], started: float) -> ReadResult:
    values = pa.concat_tables(tables) if tables else schema.empty_table()
    failed = [p.tag.web_id for p in progress if p.error]
    if failed and values.num_rows:  # a failed tag lands nothing: its cursor stays, the next read has it all
        values = values.filter(pc.invert(pc.is_in(values["web_id"], pa.array(failed))))
    requests, retries, received = client.transport.stats.snapshot()
    return ReadResult(values, _outcomes(progress, end_ns), requests - counters[0], retries - counters[1],
                      received - counters[2], time.perf_counter() - started)


def read_recorded(client: PiClient, tags: Iterable[Tag | str], start, end,
                  cursors: Mapping[str, object] | None = None) -> ReadResult:
    """Every recorded value of each tag in ``[cursor, end)``; a tag without a cursor starts at ``start``.

    Times are ISO 8601 text with a zone, aware datetimes or nanoseconds. A tag that fails (after
    the retries) has its server message in ``outcomes.error``, contributes no values, and keeps
    its cursor; the others are complete. Values of a tag are in time order.
    """
    started = time.perf_counter()
    counters = client.transport.stats.snapshot()
    progress, end_ns = _window(tags, start, end, cursors)
    pending = [p for p in progress if p.start < end_ns]
    end_text = to_pi_time(end_ns - TICK_NS)  # PI's endTime is inclusive: stop one tick before end
    point_types = frozenset(p.tag.web_id for p in progress if p.tag.point_type.lower() == "timestamp")
    tables: list[pa.Table] = []
    limits = client.limits

    def resource(job: _Job) -> str:
        return (f"streamsets/recorded?{_web_id_query(job.tags)}&startTime={quote(job.tags[0].page_start)}"
                f"&endTime={quote(end_text)}&boundaryType=Inside&maxCount={job.max_count}"
                f"&selectedFields={quote(STREAMSET_FIELDS, safe=';')}")

    def accept(job: _Job, content) -> list[_Job]:
        with gc_paused():
            streams = {s.WebId: s for s in decode(content, Streams).Items}
            chunk: list[StreamData] = []
            follow: list[_Job] = []
            for progress, stream in _present_streams(job, streams):
                items = stream.Items
                full = len(items) >= job.max_count
                kept, first_ordinal = _skip_read(items, progress)
                progress.pages += 1
                progress.values += len(kept)
                progress.name = progress.name or stream.Name
                if kept:
                    chunk.append(StreamData(progress.tag.web_id, progress.name, stream.UnitsAbbreviation, kept,
                                            first_ordinal))
                if full:
                    last = items[-1].Timestamp
                    at_last = _count_at_end(items, last)
                    progress.skip = at_last  # the page starts at page_start, so this counts all read there
                    progress.page_start = last
                    if progress.skip >= limits.max_items_per_call:
                        progress.error = (f"More than {limits.max_items_per_call} values share the timestamp "
                                          f"{last}; raise the server's MaxReturnedItemsPerCall to read them.")
                        continue
                    follow.append(_Job([progress], limits.max_items_per_call))
            if chunk:
                tables.append(values_table(chunk, point_types))
        return follow

    def regroup(tags: list[_TagRead]) -> list[_Job]:
        return _regroup(client, tags, fixed=STREAMSET_FIELDS)

    _fan_out(client, regroup(pending), resource, accept, regroup)
    return _result(client, progress, end_ns, tables, schemas.VALUES, counters, started)


def _skip_read(items: list[PiValue], progress: _TagRead) -> tuple[list[PiValue], int]:
    """Drop the values at ``page_start`` that an earlier page returned; return the rest and the
    ordinal of the first kept value within its timestamp."""
    skip = progress.skip
    if not skip:
        return items, 0
    dropped = 0
    while dropped < skip and dropped < len(items) and items[dropped].Timestamp == progress.page_start:
        dropped += 1
    kept = items[dropped:]
    continues = bool(kept) and kept[0].Timestamp == progress.page_start
    return kept, (skip if continues else 0)


def _count_at_end(items: list[PiValue], last: str) -> int:
    count = 0
    for value in reversed(items):
        if value.Timestamp != last:
            break
        count += 1
    return count


def read_interpolated(client: PiClient, tags: Iterable[Tag | str], start, end, interval: str) -> ReadResult:
    """Values every ``interval`` (a PI duration such as ``10m`` or ``1h``) from start to end
    inclusive, for many tags; failures per tag as in :func:`read_recorded`."""
    started = time.perf_counter()
    counters = client.transport.stats.snapshot()
    progress, end_ns = _window(tags, start, end, None)
    step_ns = _positive_duration(interval)
    per_tag = (end_ns - progress[0].start) // step_ns + 1 if progress else 0
    tables: list[pa.Table] = []
    point_types = frozenset(p.tag.web_id for p in progress if p.tag.point_type.lower() == "timestamp")
    fixed = f"&endTime={quote(to_pi_time(end_ns))}&interval={quote(interval)}"

    def resource(job: _Job) -> str:
        return (f"streamsets/interpolated?{_web_id_query(job.tags)}&startTime={quote(job.tags[0].page_start)}"
                f"{fixed}&selectedFields={quote(STREAMSET_FIELDS, safe=';')}")

    def accept(job: _Job, content) -> list[_Job]:
        with gc_paused():
            streams = {s.WebId: s for s in decode(content, Streams).Items}
            chunk = []
            for progress, stream in _present_streams(job, streams):
                progress.pages, progress.values = 1, len(stream.Items)
                chunk.append(StreamData(progress.tag.web_id, progress.name or stream.Name, stream.UnitsAbbreviation,
                                        stream.Items))
            if chunk:
                tables.append(values_table(chunk, point_types))
        return []

    def regroup(tags: list[_TagRead]) -> list[_Job]:
        return _fixed_size_jobs(client, tags, fixed + STREAMSET_FIELDS, per_tag)

    _fan_out(client, regroup(progress), resource, accept, regroup)
    return _result(client, progress, end_ns, tables, schemas.VALUES, counters, started)


def read_summaries(client: PiClient, tags: Iterable[Tag | str], start, end, duration: str,
                   summary_types: Sequence[str] = ("Average", "Minimum", "Maximum", "Count"),
                   calculation_basis: str = "TimeWeighted") -> ReadResult:
    """Summaries per ``duration`` interval of ``[start, end)`` (schemas.SUMMARIES), for many tags."""
    unknown = [t for t in summary_types if t not in SUMMARY_TYPES]
    if unknown or not summary_types:
        raise PiConfigError(f"Summary types {unknown or '(none)'} are not valid; choose from {', '.join(SUMMARY_TYPES)}.")
    if calculation_basis not in ("TimeWeighted", "EventWeighted"):
        raise PiConfigError(f"calculation_basis '{calculation_basis}' is not TimeWeighted or EventWeighted.")
    started = time.perf_counter()
    counters = client.transport.stats.snapshot()
    progress, end_ns = _window(tags, start, end, None)
    intervals = -(-(end_ns - progress[0].start) // _positive_duration(duration)) if progress else 0
    per_tag = max(1, intervals * len(summary_types))
    rows: dict[str, list] = {f.name: [] for f in schemas.SUMMARIES}
    fixed = (f"&endTime={quote(to_pi_time(end_ns))}&summaryDuration={quote(duration)}&calculationBasis="
             f"{calculation_basis}" + "".join(f"&summaryType={t}" for t in summary_types))

    def resource(job: _Job) -> str:
        return (f"streamsets/summary?{_web_id_query(job.tags)}&startTime={quote(job.tags[0].page_start)}"
                f"{fixed}&selectedFields={quote(SUMMARY_FIELDS, safe=';')}")

    def accept(job: _Job, content) -> list[_Job]:
        streams = {s.WebId: s for s in decode(content, SummaryStreams).Items}
        for progress, stream in _present_streams(job, streams):
            progress.pages, progress.values = 1, len(stream.Items)
            for item in stream.Items:
                value = item.Value.Value
                rows["web_id"].append(progress.tag.web_id)
                rows["name"].append(progress.name or stream.Name or None)
                rows["summary_type"].append(item.Type)
                rows["timestamp"].append(item.Value.Timestamp)
                rows["value_double"].append(value if isinstance(value, float) else None)
                rows["state_name"].append(getattr(value, "Name", None))
                rows["good"].append(item.Value.Good)
                rows["units"].append(stream.UnitsAbbreviation)
        return []

    def regroup(tags: list[_TagRead]) -> list[_Job]:
        return _fixed_size_jobs(client, tags, fixed + SUMMARY_FIELDS, per_tag)

    _fan_out(client, regroup(progress), resource, accept, regroup)
    rows["timestamp"] = parse_timestamps(pa.array(rows["timestamp"], pa.string()))
    table = pa.Table.from_pydict(rows, schema=schemas.SUMMARIES)
    return _result(client, progress, end_ns, [table], schemas.SUMMARIES, counters, started)


def _positive_duration(text: str) -> int:
    """A PI duration in ns (times.parse_duration) that must be longer than zero."""
    ns = parse_duration(text)
    if ns <= 0:
        raise PiConfigError(f"The duration '{text}' must be positive.")
    return ns
