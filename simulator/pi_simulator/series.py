"""Recorded values of a simulated PI point: generated on demand, as of a server time.

Event ``k`` of a point has its timestamp at ``phase + k * interval`` (plus a jitter below one
interval for exception-based points), so any time range maps to a range of ``k`` and is generated
without stored state. Some events carry a second value at the same timestamp (or 300 ns later),
some are system states, errors, flagged values, or spikes outside the point's span. What a reader sees also depends on the server's
clock ``now``:

* a value exists once ``now`` passes its timestamp, except values inside an outage of a "late"
  point, which appear together when the outage is back-filled;
* an edited value shows its original number until its edit time, then the new one (Substituted);
* a deleted value disappears at its delete time.

:func:`changes` replays those transitions as the Add/Update/Delete events of stream updates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import PlantConfig
from .hashing import uniform, uniforms
from .pitime import TICKS_PER_SECOND, parse_duration
from .plant import DIGITAL_SETS, ERROR_TEXTS, STRING_VALUES, SYSTEM_STATES, Point

NEVER = np.iinfo(np.int64).max

# Value kinds.
NUMBER, DIGITAL, STRING, TIMESTAMP, SYSTEM, ERROR = range(6)
# Flag bits.
GOOD, QUESTIONABLE, SUBSTITUTED, ANNOTATED = 1, 2, 4, 8

_SYSTEM_NAMES = list(SYSTEM_STATES)
# Purposes for the hash streams (any distinct numbers).
_JITTER, _EVENT, _VALUE_A, _VALUE_B, _STATE, _OUTAGE, _TEXT = range(1, 8)


@dataclass
class Values:
    """Columnar values of one point, in time order (or reversed, when asked)."""

    ticks: np.ndarray  # int64, 100 ns since epoch
    kind: np.ndarray  # int8, NUMBER..ERROR
    number: np.ndarray  # float64: the number, or the state code for DIGITAL and SYSTEM
    text: np.ndarray  # int32: index into the point's text table (states, strings, errors)
    stamp: np.ndarray  # int64: the value of a TIMESTAMP point
    flags: np.ndarray  # uint8: GOOD | QUESTIONABLE | SUBSTITUTED | ANNOTATED
    visible_at: np.ndarray  # int64: when the value appears
    edited_at: np.ndarray  # int64: when the value changes (NEVER if it does not)
    deleted_at: np.ndarray  # int64: when the value disappears (NEVER if it does not)
    edited_number: np.ndarray  # float64: the number after the edit

    def __len__(self) -> int:
        return len(self.ticks)

    def take(self, index: np.ndarray | slice) -> "Values":
        return Values(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})

    @staticmethod
    def concat(parts: list["Values"]) -> "Values":
        return Values(**{name: np.concatenate([getattr(p, name) for p in parts])
                         for name in Values.__dataclass_fields__})

    def as_of(self, now: int) -> "Values":
        """The values that a reader sees at server time ``now``, with edits applied."""
        seen = self.take((self.visible_at <= now) & (self.deleted_at > now))
        return seen._with_edits(seen.edited_at <= now)

    def as_of_add(self) -> "Values":
        """These values as they were when they appeared (edits made later not yet applied)."""
        return self._with_edits(self.edited_at <= self.visible_at)

    def _with_edits(self, edited: np.ndarray) -> "Values":
        result = self.take(slice(None))
        result.number = np.where(edited, self.edited_number, self.number)
        result.flags = np.where(edited, self.flags | SUBSTITUTED, self.flags).astype(np.uint8)
        return result


def text_table(point: Point) -> list[str]:
    """The point's non-numeric values, as JSON text; ``Values.text`` indexes into this list."""
    import json

    digital = DIGITAL_SETS.get(point.measurement.digital_set or "", [])
    table = [json.dumps({"Name": n, "Value": c, "IsSystem": False}, ensure_ascii=False) for c, n in enumerate(digital)]
    table += [json.dumps({"Name": n, "Value": c, "IsSystem": True}) for n, c in SYSTEM_STATES.items()]
    table += [json.dumps({"Errors": [e]}) for e in ERROR_TEXTS]
    table += [json.dumps(s, ensure_ascii=False) for s in STRING_VALUES]
    return table


def _text_offsets(point: Point) -> tuple[int, int, int]:
    """Where system states, errors and strings start in :func:`text_table` (digital states at 0)."""
    system = len(DIGITAL_SETS.get(point.measurement.digital_set or "", []))
    return system, system + len(SYSTEM_STATES), system + len(SYSTEM_STATES) + len(ERROR_TEXTS)


class SeriesModel:
    """Generates the values of the plant's points (see the module docstring)."""

    def __init__(self, config: PlantConfig):
        self.config = config
        self.edit_delay = parse_duration(config.edit_delay)
        self.delete_delay = parse_duration(config.delete_delay)
        self.outage_period = parse_duration(config.outage_period)
        self.outage_length = parse_duration(config.outage_length)
        self.backfill_delay = parse_duration(config.backfill_delay)
        #: No value changes later than this after its timestamp (bounds change scans).
        self.max_change_delay = max(self.edit_delay, self.delete_delay,
                                    self.outage_length + self.backfill_delay) + TICKS_PER_SECOND

    # ---- events ---------------------------------------------------------------------------
    def event_range(self, point: Point, start: int, end: int) -> tuple[int, int]:
        """Event indices [lo, hi) that can have a timestamp within [start, end]."""
        lo = (start - point.phase_ticks) // point.interval_ticks - 1
        hi = (end - point.phase_ticks) // point.interval_ticks + 2
        return lo, hi

    def events(self, point: Point, k_lo: int, k_hi: int) -> Values:
        """Every value of events [k_lo, k_hi), whatever the clock, in time order."""
        cfg = self.config
        k = np.arange(k_lo, k_hi, dtype=np.int64)
        ticks = point.phase_ticks + k * point.interval_ticks
        if point.irregular:
            room = max(point.interval_ticks - 1000, 1)
            ticks = ticks + (uniform(point.key, k, _JITTER) * room).astype(np.int64)
        dup_draw, shift_draw, spike_draw, spike_side = uniforms(point.key, k, _EVENT)
        dup = dup_draw < cfg.duplicate_rate
        # Expand: events with a duplicate contribute two values (position 0 and 1).
        repeat = 1 + dup.astype(np.int64)
        k2 = np.repeat(k, repeat)
        position = np.arange(len(k2)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        ticks = np.repeat(ticks, repeat)
        shift = (np.repeat(shift_draw, repeat) < 0.5) * 3  # 0 or 300 ns
        ticks = ticks + np.where(position == 1, shift, 0)
        key_v = k2 * 2 + position  # one hash key per value
        n = len(k2)
        u_noise, u_system, u_which, u_error = uniforms(point.key, key_v, _VALUE_A)
        u_questionable, u_substituted, u_annotated, u_change = uniforms(point.key, key_v, _VALUE_B)

        kind = np.full(n, NUMBER, np.int8)
        text = np.zeros(n, np.int32)
        stamp = np.zeros(n, np.int64)
        number = np.zeros(n, np.float64)
        flags = np.full(n, GOOD, np.uint8)
        system_base, error_base, string_base = _text_offsets(point)
        m = point.measurement
        ptype = m.point_type
        if point.is_numeric:
            seconds = ticks / TICKS_PER_SECOND
            number = (m.level + m.amplitude * np.sin(2 * np.pi * seconds / point.period_seconds)
                      + point.noise * (2 * u_noise - 1))
            # A spike: good quality, but outside the point's span (zero to zero + span = level -+ 2 amplitudes).
            spike = np.repeat(spike_draw < cfg.out_of_span_rate, repeat)
            side = np.where(np.repeat(spike_side, repeat) < 0.5, -3.0, 3.0)
            number = np.where(spike, m.level + side * m.amplitude, number)
            number = _to_point_precision(number, ptype)
        elif ptype == "Digital":
            states = len(DIGITAL_SETS[m.digital_set])
            runs = k2 // 30  # a state holds for about 30 events
            code = (uniform(point.key, runs, _STATE) * states).astype(np.int64)
            kind[:] = DIGITAL
            number = code.astype(np.float64)
            text = code.astype(np.int32)
        elif ptype == "String":
            kind[:] = STRING
            text = (string_base + (uniform(point.key, k2 // 10, _TEXT) * len(STRING_VALUES))).astype(np.int32)
        else:  # Timestamp
            kind[:] = TIMESTAMP
            stamp = ticks - (uniform(point.key, k2 // 60, _TEXT) * 30 * 86_400 * TICKS_PER_SECOND).astype(np.int64)
            stamp -= stamp % TICKS_PER_SECOND

        if point.is_numeric:
            system = u_system < cfg.system_state_rate
            which = (u_which * len(SYSTEM_STATES)).astype(np.int32)
            kind[system] = SYSTEM
            text[system] = system_base + which[system]
            number[system] = np.array([SYSTEM_STATES[n] for n in _SYSTEM_NAMES], np.float64)[which[system]]
            error = ~system & (u_error < cfg.error_value_rate)
            kind[error] = ERROR
            text[error] = error_base + (k2[error] % len(ERROR_TEXTS)).astype(np.int32)
            flags[system | error] = 0
        flags |= np.where(u_questionable < cfg.questionable_rate, QUESTIONABLE, 0).astype(np.uint8)
        flags |= np.where(u_substituted < cfg.substituted_rate, SUBSTITUTED, 0).astype(np.uint8)
        flags |= np.where(u_annotated < cfg.annotated_rate, ANNOTATED, 0).astype(np.uint8)

        visible_at = ticks.copy()
        if point.late:
            window = (ticks - point.phase_ticks) // self.outage_period
            outage_start = (point.phase_ticks + window * self.outage_period
                            + (uniform(point.key, window, _OUTAGE) * (self.outage_period - self.outage_length)).astype(np.int64))
            in_outage = (ticks >= outage_start) & (ticks < outage_start + self.outage_length)
            visible_at = np.where(in_outage, outage_start + self.outage_length + self.backfill_delay, ticks)
        editable = kind == NUMBER
        # One draw decides edits and deletes: [0, edit_rate) edits, the next delete_rate deletes.
        edited = editable & (u_change < cfg.edit_rate)
        edited_at = np.where(edited, np.maximum(visible_at, ticks + self.edit_delay), NEVER)
        edited_number = _to_point_precision(number + m.amplitude * 0.1, ptype) if point.is_numeric else number
        deleted = (u_change >= cfg.edit_rate) & (u_change < cfg.edit_rate + cfg.delete_rate)
        deleted_at = np.where(deleted, np.maximum(visible_at, ticks + self.delete_delay) + 1, NEVER)
        return Values(ticks, kind, number, text, stamp, flags, visible_at, edited_at, deleted_at, edited_number)

    # ---- reads ----------------------------------------------------------------------------
    def recorded(self, point: Point, start: int, end: int, now: int, max_count: int,
                 boundary_inside: bool = True) -> tuple[Values, bool]:
        """Recorded values in [start, end] as of ``now`` (reversed when end < start).

        Returns at most ``max_count`` values and whether more values exist beyond them.
        """
        descending = end < start
        low, high = (end, start) if descending else (start, end)
        high = min(high, now)  # nothing is recorded after the server's now
        if high < low:
            return self.events(point, 0, 0), False
        k_lo, k_hi = self.event_range(point, low, high)
        chunk = max(4096, int(max_count * 1.05) + 16)
        parts: list[Values] = []
        found = 0
        more = False
        # Walk event chunks from the side we read from until max_count values are found.
        bounds = range(k_lo, k_hi, chunk) if not descending else range(k_hi, k_lo, -chunk)
        for b in bounds:
            lo, hi = (b, min(b + chunk, k_hi)) if not descending else (max(b - chunk, k_lo), b)
            values = self.events(point, lo, hi).as_of(now)
            values = values.take((values.ticks >= low) & (values.ticks <= high))
            if descending:
                values = values.take(slice(None, None, -1))
            parts.append(values)
            found += len(values)
            if found > max_count:
                more = True
                break
        result = Values.concat(parts) if parts else self.events(point, 0, 0)
        if len(result) > max_count:
            result = result.take(slice(0, max_count))
            more = True
        return result, more

    def latest(self, point: Point, now: int, at_or_before: int | None = None) -> Values:
        """The last value at or before a time (the snapshot ``value``/``end`` calls return)."""
        until = now if at_or_before is None else min(at_or_before, now)
        lookback = point.interval_ticks * 4 + self.max_change_delay
        values, _ = self.recorded(point, until, until - lookback, now, 1)
        if len(values) == 0:  # nothing recent: look further back, then give up
            values, _ = self.recorded(point, until, until - 400 * point.interval_ticks, now, 1)
        return values

    def changes(self, point: Point, since: int, now: int) -> tuple[Values, np.ndarray, np.ndarray]:
        """What changed in (since, now]: values, action codes (0 Add, 1 Update, 2 Delete), times.

        The values carry their state after the change; they are ordered by change time.
        """
        k_lo, k_hi = self.event_range(point, since - self.max_change_delay, now)
        values = self.events(point, k_lo, k_hi)
        added = (values.visible_at > since) & (values.visible_at <= now)
        updated = (values.edited_at > since) & (values.edited_at <= now) & (values.visible_at <= now)
        deleted = (values.deleted_at > since) & (values.deleted_at <= now) & (values.visible_at <= now)
        parts, actions, times = [], [], []
        for code, mask, when in ((0, added, values.visible_at), (1, updated, values.edited_at),
                                 (2, deleted, values.deleted_at)):
            if mask.any():
                chosen = values.take(mask)
                stamp = when[mask]
                if code == 0:  # an Add shows the value as it was when it appeared
                    chosen = chosen.as_of_add()
                elif code == 1:
                    chosen = chosen._with_edits(np.ones(len(chosen), bool))
                parts.append(chosen)
                actions.append(np.full(len(chosen), code, np.int8))
                times.append(stamp)
        if not parts:
            empty = values.take(slice(0, 0))
            return empty, np.zeros(0, np.int8), np.zeros(0, np.int64)
        merged = Values.concat(parts)
        action = np.concatenate(actions)
        when = np.concatenate(times)
        order = np.lexsort((merged.ticks, action, when))
        return merged.take(order), action[order], when[order]


def _to_point_precision(number: np.ndarray, point_type: str) -> np.ndarray:
    if point_type == "Float32":
        return number.astype(np.float32).astype(np.float64)
    if point_type == "Int32":
        return np.round(number)
    return number
