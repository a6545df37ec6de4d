"""The signal between recorded values, as PI's interpolation and time-weighted summaries see it.

A recorded value governs the time from its timestamp to the next value's (the last one: onwards).
Over that segment the signal is

* nothing usable, when the value is bad (a system state or an error): the time is not good;
* the value itself, for a step point (Int32, digital, string, timestamp), when the next value is
  bad, or when there is no next value;
* otherwise the straight line to the next value:
  ``v0 + (v1 - v0) * ((t - t0) / (t1 - t0))``.

Interpolation at ``t`` takes the value governing ``t`` (the last one at or before it) by that
rule; no value at or before ``t``: no interpolated value. A time-weighted summary of ``[L, R)``
cuts the segments at ``L`` and ``R`` (and at every value's timestamp) and adds, for each good
piece ``[lo, hi)``, the area ``(f(lo) + f(hi)) / 2 * (hi - lo)`` (``f(lo) * (hi - lo)`` where the
value holds), with ``math.fsum``; the average is that sum over the good time, PercentGood the
good time's share of ``R - L``. Count, Minimum and Maximum are the values recorded in ``[L, R)``.
Times are 100 ns ticks. Tests compute the same from the recorded values with their own code.
"""

from __future__ import annotations

import math

import numpy as np

from .series import NUMBER, Values

#: 100 ns ticks per day: the unit of a time-weighted Total (PI: per-day rates).
TICKS_PER_DAY = 86_400 * 10_000_000


def _lines(values: Values, step: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per value: whether it is good, and whether it holds (no line to the next value)."""
    good = values.kind == NUMBER
    holds = np.full(len(values), True) if step else ~np.append(good[1:], False)
    return good, holds


def _at(values: Values, governing: np.ndarray, holds: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The signal at ``times``, each governed by value ``governing`` (which is good)."""
    v0 = values.number[governing]
    flat = holds[governing]
    line = ~flat
    result = v0.copy()
    if line.any():
        i = governing[line]
        t0, t1 = values.ticks[i], values.ticks[i + 1]
        fraction = (times[line] - t0).astype(np.float64) / (t1 - t0).astype(np.float64)
        result[line] = v0[line] + (values.number[i + 1] - v0[line]) * fraction
    return result


def interpolate(values: Values, grid: np.ndarray, step: bool) -> Values:
    """The values at ``grid`` (ticks, ascending): each the value governing its time, its number
    on the line to the next value where the rule draws one; grid times before the first value
    have none."""
    governing = np.searchsorted(values.ticks, grid, side="right") - 1
    valid = governing >= 0
    grid, governing = grid[valid], governing[valid]
    result = values.take(governing)
    result.ticks = grid
    good, holds = _lines(values, step)
    usable = good[governing]
    if usable.any():
        result.number[usable] = _at(values, governing[usable], holds, grid[usable])
    return result


def time_weighted(values: Values, edges: np.ndarray, end: int, step: bool) -> tuple[list[float], list[int]]:
    """Per interval ``[edges[k], edges[k+1])`` (the last ends at ``end``): the fsum of the good
    pieces' areas and the good time in ticks."""
    bounds = np.append(edges, end)
    areas: list[float] = []
    good_ticks: list[int] = []
    good, holds = _lines(values, step)
    for left, right in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        inside = values.ticks[(values.ticks > left) & (values.ticks < right)]
        cuts = np.unique(np.concatenate([[left], inside, [right]]))
        lo, hi = cuts[:-1], cuts[1:]
        governing = np.searchsorted(values.ticks, lo, side="right") - 1
        keep = governing >= 0
        lo, hi, governing = lo[keep], hi[keep], governing[keep]
        keep = good[governing] & (hi > lo)
        lo, hi, governing = lo[keep], hi[keep], governing[keep]
        width = (hi - lo).astype(np.float64)
        piece = (_at(values, governing, holds, lo) + _at(values, governing, holds, hi)) / 2 * width
        areas.append(math.fsum(piece.tolist()))
        good_ticks.append(int((hi - lo).sum()))
    return areas, good_ticks


__all__ = ["TICKS_PER_DAY", "interpolate", "time_weighted"]
