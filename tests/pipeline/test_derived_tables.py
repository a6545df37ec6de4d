"""pi_timeseries_interpolated and pi_timeseries_summaries end to end, against an oracle that is
not the simulator's code: interpolation and time-weighted summaries computed here, in plain
Python, from the recorded values of the ground truth (as of each run's server time).

The runs are shared_runs.derived_runs: run 1 reads to NOW; run 2 (the server's clock 4 h later)
to NOW+4h while one tag fails on the server: the others go on, that tag keeps its cursor and is
named in pi_catalog_log; run 3 (the tag healthy again, the same end) reads what it missed. Each
table lands the windows that ended pi.lookback before pi.end, each grid time and interval once.

The oracle's rules (those PI documents for interpolation and time-weighted summaries): a recorded
value governs the time until the next one; a bad value (a system state, an error) governs time
that is not good; a good number holds for a step point, when the next value is bad or there is
none, else it follows the straight line to the next value. Interpolation at t is the governing
value (on the line); a summary over [L, R) adds the areas of the good pieces cut at L, R and every
value's time, in 100 ns ticks, with math.fsum; average = area / good time, percent good = good
time / (R - L); minimum, maximum and count are of the values recorded in [L, R).
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import Counter

import numpy as np
import pytest

from pi_client.times import to_ns
from pi_lakeflow.tables import registry
from pi_simulator import GroundTruth
from tests.oracle import truth_json, value_json
from tests.pipeline.conformance import check_tables, needing_a_setting
from tests.pipeline.shared_runs import DERIVED, LATER_NS, LOOKBACK_NS, NOW_NS, START_NS, STEP_NS, SUMMARY_NS
from tests.simulators import NOW

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark, pytest.mark.timeout(1200)]

TABLES = DERIVED


def _windows(step: int) -> list[tuple[int, int, int]]:
    """(window start, window end, server time in ticks) of run 1 and run 2."""
    first = -(-START_NS // step) * step
    end_1 = (NOW_NS - LOOKBACK_NS) // step * step
    end_2 = (LATER_NS - LOOKBACK_NS) // step * step
    return [(first, end_1, NOW), (end_1, end_2, LATER_NS // 100)]


@functools.lru_cache(maxsize=None)
def _recorded(truth: GroundTruth, point, start_ns: int, end_ns: int, now_ticks: int) -> list[tuple[int, object, bool]]:
    """(tick, value, good number) of the values in [start, end) and 400 sampling intervals either
    side (where the value governing start, and the one after end, are), as of ``now_ticks``; a
    Float32 point's numbers as the float32 the server holds."""
    reach = 400 * point.interval_ticks
    rows = []
    for value in truth.recorded(point.name, start_ns // 100 - reach, end_ns // 100 + reach, now_ticks):
        number = value["Value"]
        good = value["Good"] and isinstance(number, (int, float)) and not isinstance(number, bool)
        if good and point.point_type == "Float32":
            number = float(np.float32(number))
        rows.append((to_ns(value["Timestamp"]) // 100, number, good))
    return rows


def _is_step(point) -> bool:
    return point.point_type in ("Digital", "String", "Timestamp", "Int32")  # PI's Step attribute of the point


def _signal(events, i: int, tick: int, step: bool) -> float:
    """The good number of event ``i`` carried to ``tick`` (held, or on the line to the next)."""
    t0, v0, _ = events[i]
    if step or i + 1 == len(events) or not events[i + 1][2]:
        return v0
    t1, v1, _ = events[i + 1]
    return v0 + (v1 - v0) * (float(tick - t0) / float(t1 - t0))


def oracle_interpolated(truth, points, step_ns: int) -> Counter:
    found = Counter()
    for start, end, now in _windows(step_ns):
        for point in points:
            events = _recorded(truth, point, start, end, now)
            ticks = [e[0] for e in events]
            for grid in range(start, end, step_ns):
                tick = grid // 100
                i = bisect.bisect_right(ticks, tick) - 1  # the last value at or before the grid time
                if i < 0:
                    continue
                value = events[i][1]
                if events[i][2]:
                    value = _signal(events, i, tick, _is_step(point))
                    if point.point_type == "Float32":
                        value = float(str(np.float32(value)))
                found[(point.name, grid, truth_json(value))] += 1
    return found


def oracle_summaries(truth, points, length_ns: int) -> Counter:
    found = Counter()
    numeric = [p for p in points if p.point_type in ("Float16", "Float32", "Float64", "Int16", "Int32")]
    for start, end, now in _windows(length_ns):
        for point in numeric:
            events = _recorded(truth, point, start, end, now)
            ticks = [e[0] for e in events]
            for left_ns in range(start, end, length_ns):
                left, right = left_ns // 100, (left_ns + length_ns) // 100
                areas, good_ticks = [], 0
                first = max(0, bisect.bisect_right(ticks, left) - 1)  # the value governing L, and on
                for i in range(first, len(events)):
                    tick, _, good = events[i]
                    if tick >= right:
                        break
                    following = events[i + 1][0] if i + 1 < len(events) else right
                    lo, hi = max(tick, left), min(following, right)
                    if hi <= lo or not good:
                        continue
                    step = _is_step(point)
                    areas.append((_signal(events, i, lo, step) + _signal(events, i, hi, step)) / 2 * float(hi - lo))
                    good_ticks += hi - lo
                inside = events[bisect.bisect_left(ticks, left):bisect.bisect_left(ticks, right)]
                numbers = [v for _, v, good in inside if good]
                found[(point.name, left_ns, math.fsum(areas) / float(good_ticks) if good_ticks else None,
                       min(numbers, default=None), max(numbers, default=None), len(inside),
                       100.0 * float(good_ticks) / float(right - left))] += 1
    return found


def test_interpolated_values_equal_the_oracle(derived_runs, spark):
    table = spark.read.parquet(str(derived_runs["config"].warehouse / "pi_timeseries_interpolated"))
    landed = Counter((r["name"], r["timestamp_ns"], value_json(r.asDict())) for r in table.collect())
    expected = oracle_interpolated(derived_runs["truth"], derived_runs["points"], STEP_NS)
    assert not landed - expected, f"landed, not in the oracle: {sorted(landed - expected)[:5]}"
    assert not expected - landed, f"in the oracle, not landed: {sorted(expected - landed)[:5]}"
    assert len(expected) > 5_000


def test_summaries_equal_the_oracle(derived_runs, spark):
    table = spark.read.parquet(str(derived_runs["config"].warehouse / "pi_timeseries_summaries"))
    landed = Counter((r["name"], r["interval_start_ns"], r["average"], r["minimum"], r["maximum"], r["count"],
                      r["percent_good"]) for r in
                     table.selectExpr("*", "unix_micros(interval_start) * 1000 AS interval_start_ns").collect())
    expected = oracle_summaries(derived_runs["truth"], derived_runs["points"], SUMMARY_NS)
    assert not landed - expected, f"landed, not in the oracle: {sorted(landed - expected, key=str)[:5]}"
    assert not expected - landed, f"in the oracle, not landed: {sorted(expected - landed, key=str)[:5]}"
    # The cases the rules are about are in the data: bad values inside intervals, and intervals
    # whose first value comes after their start (the value before it governs the start).
    assert any(pct < 100.0 for *_, pct in expected)
    assert len(expected) > 1_000


def test_a_failing_tag_is_named_and_read_later_while_the_others_go_on(derived_runs):
    failing = derived_runs["failing"]
    named = {(r["table"], r["item"]) for r in derived_runs["failed_items"]}
    assert {(t, failing.name) for t in TABLES} <= named, named
    # Run 2 landed nothing of the failing tag's window (only run 1's rows); run 3 read it.
    windows = {t: _windows(STEP_NS if t == TABLES[0] else SUMMARY_NS) for t in TABLES}
    for table, (first, _) in windows.items():
        assert derived_runs["missed"][table] == (first[1] - first[0]) // (STEP_NS if table == TABLES[0] else SUMMARY_NS)


def test_each_window_lands_once_and_the_tables_conform(derived_runs, spark):
    made = [t.name for t in registry.made_by(derived_runs["config"].settings) if t.needs is not None]
    assert sorted(made) == sorted(needing_a_setting()) == sorted(TABLES)  # every table that needs a setting
    check_tables(spark, derived_runs["config"].warehouse, derived_runs["first"], made)
