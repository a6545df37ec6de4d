"""Time series of many tags at once: recorded values (paged by time), interpolated values, summaries.
The machinery of reading many streams at once is streamsets.py.

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
from typing import Iterable, Mapping, Sequence
from urllib.parse import quote

import pyarrow as pa

from . import schemas
from .client import PiClient
from .decode import (PiValue, StreamData, Streams, SummaryStreams, decode, gc_paused, parse_timestamps,
                     values_table)
from .errors import PiConfigError
from .streamsets import (Job, ReadResult, Tag, TagRead, fan_out, fixed_size_jobs, present_streams, read_result,
                         group_jobs, tag_windows, web_id_query)
from .times import TICK_NS, parse_duration, to_pi_time

_VALUE_FIELDS = ("Timestamp", "Value", "Good", "Questionable", "Substituted", "Annotated")
#: Only what the tables need: no Links, no per-value units (the stream carries them).
STREAMSET_FIELDS = ";".join(["Items.WebId", "Items.Name", "Items.UnitsAbbreviation",
                             *(f"Items.Items.{f}" for f in _VALUE_FIELDS)])
SUMMARY_FIELDS = ";".join(["Items.WebId", "Items.Name", "Items.UnitsAbbreviation", "Items.Items.Type",
                           *(f"Items.Items.Value.{f}" for f in _VALUE_FIELDS)])
SUMMARY_TYPES = ("Total", "Average", "Minimum", "Maximum", "Range", "StdDev", "PopulationStdDev", "Count",
                 "PercentGood")


def read_recorded(client: PiClient, tags: Iterable[Tag | str], start, end,
                  cursors: Mapping[str, object] | None = None) -> ReadResult:
    """Every recorded value of each tag in ``[cursor, end)``; a tag without a cursor starts at ``start``.

    Times are ISO 8601 text with a zone, aware datetimes or nanoseconds. A tag that fails (after
    the retries) has its server message in ``outcomes.error``, contributes no values, and keeps
    its cursor; the others are complete. Values of a tag are in time order.
    """
    started = time.perf_counter()
    counters = client.transport.stats.snapshot()
    progress, end_ns = tag_windows(tags, start, end, cursors)
    pending = [p for p in progress if p.start < end_ns]
    end_text = to_pi_time(end_ns - TICK_NS)  # PI's endTime is inclusive: stop one tick before end
    point_types = frozenset(p.tag.web_id for p in progress if p.tag.point_type.lower() == "timestamp")
    tables: list[pa.Table] = []
    limits = client.limits

    def resource(job: Job) -> str:
        return (f"streamsets/recorded?{web_id_query(job.tags)}&startTime={quote(job.tags[0].page_start)}"
                f"&endTime={quote(end_text)}&boundaryType=Inside&maxCount={job.max_count}"
                f"&selectedFields={quote(STREAMSET_FIELDS, safe=';')}")

    def accept(job: Job, content) -> list[Job]:
        with gc_paused():
            streams = {s.WebId: s for s in decode(content, Streams).Items}
            chunk: list[StreamData] = []
            follow: list[Job] = []
            for progress, stream in present_streams(job, streams):
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
                    follow.append(Job([progress], limits.max_items_per_call))
            if chunk:
                tables.append(values_table(chunk, point_types))
        return follow

    def regroup(tags: list[TagRead]) -> list[Job]:
        return group_jobs(client, tags, fixed=STREAMSET_FIELDS)

    fan_out(client, regroup(pending), resource, accept, regroup)
    return read_result(client, progress, end_ns, tables, schemas.VALUES, counters, started)


def _skip_read(items: list[PiValue], progress: TagRead) -> tuple[list[PiValue], int]:
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
    progress, end_ns = tag_windows(tags, start, end, None)
    step_ns = _positive_duration(interval)
    per_tag = (end_ns - progress[0].start) // step_ns + 1 if progress else 0
    tables: list[pa.Table] = []
    point_types = frozenset(p.tag.web_id for p in progress if p.tag.point_type.lower() == "timestamp")
    fixed = f"&endTime={quote(to_pi_time(end_ns))}&interval={quote(interval)}"

    def resource(job: Job) -> str:
        return (f"streamsets/interpolated?{web_id_query(job.tags)}&startTime={quote(job.tags[0].page_start)}"
                f"{fixed}&selectedFields={quote(STREAMSET_FIELDS, safe=';')}")

    def accept(job: Job, content) -> list[Job]:
        with gc_paused():
            streams = {s.WebId: s for s in decode(content, Streams).Items}
            chunk = []
            for progress, stream in present_streams(job, streams):
                progress.pages, progress.values = 1, len(stream.Items)
                chunk.append(StreamData(progress.tag.web_id, progress.name or stream.Name, stream.UnitsAbbreviation,
                                        stream.Items))
            if chunk:
                tables.append(values_table(chunk, point_types))
        return []

    def regroup(tags: list[TagRead]) -> list[Job]:
        return fixed_size_jobs(client, tags, fixed + STREAMSET_FIELDS, per_tag)

    fan_out(client, regroup(progress), resource, accept, regroup)
    return read_result(client, progress, end_ns, tables, schemas.VALUES, counters, started)


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
    progress, end_ns = tag_windows(tags, start, end, None)
    intervals = -(-(end_ns - progress[0].start) // _positive_duration(duration)) if progress else 0
    per_tag = max(1, intervals * len(summary_types))
    rows: dict[str, list] = {f.name: [] for f in schemas.SUMMARIES}
    fixed = (f"&endTime={quote(to_pi_time(end_ns))}&summaryDuration={quote(duration)}&calculationBasis="
             f"{calculation_basis}" + "".join(f"&summaryType={t}" for t in summary_types))

    def resource(job: Job) -> str:
        return (f"streamsets/summary?{web_id_query(job.tags)}&startTime={quote(job.tags[0].page_start)}"
                f"{fixed}&selectedFields={quote(SUMMARY_FIELDS, safe=';')}")

    def accept(job: Job, content) -> list[Job]:
        streams = {s.WebId: s for s in decode(content, SummaryStreams).Items}
        for progress, stream in present_streams(job, streams):
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

    def regroup(tags: list[TagRead]) -> list[Job]:
        return fixed_size_jobs(client, tags, fixed + SUMMARY_FIELDS, per_tag)

    fan_out(client, regroup(progress), resource, accept, regroup)
    rows["timestamp"] = parse_timestamps(pa.array(rows["timestamp"], pa.string()))
    table = pa.Table.from_pydict(rows, schema=schemas.SUMMARIES)
    return read_result(client, progress, end_ns, [table], schemas.SUMMARIES, counters, started)


def _positive_duration(text: str) -> int:
    """A PI duration in ns (times.parse_duration) that must be longer than zero."""
    ns = parse_duration(text)
    if ns <= 0:
        raise PiConfigError(f"The duration '{text}' must be positive.")
    return ns
