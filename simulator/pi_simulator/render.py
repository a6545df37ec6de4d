"""Value objects as PI Web API JSON, rendered column-wise with Arrow (no Python object per value).

A value object looks like::

    {"Timestamp":"2024-05-01T10:00:00.1234567Z","Value":12.5,"UnitsAbbreviation":"degC",
     "Good":true,"Questionable":false,"Substituted":false,"Annotated":false}

``selectedFields`` may drop any of these keys; stream updates add ``Action``.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .pitime import format_ticks
from .plant import Point
from .series import ANNOTATED, GOOD, NUMBER, QUESTIONABLE, SUBSTITUTED, Values, text_table

VALUE_FIELDS = ("Timestamp", "Value", "UnitsAbbreviation", "Good", "Questionable", "Substituted", "Annotated")
ACTIONS = ("Add", "Update", "Delete")


class FieldSelection:
    """The ``selectedFields`` parameter: semicolon-separated dotted paths, or everything.

    ``scope("Items")`` narrows to the paths under ``Items`` (so ``Items.Items.Value`` becomes
    ``Items.Value``); a field is kept when a path names it or one of its parents.
    """

    def __init__(self, paths: list[tuple[str, ...]] | None):
        self.paths = paths

    @classmethod
    def parse(cls, text: str | None) -> "FieldSelection":
        if not text:
            return cls(None)
        return cls([tuple(part.lower() for part in p.strip().split(".")) for p in text.split(";") if p.strip()])

    @property
    def everything(self) -> bool:
        return self.paths is None or any(len(p) == 0 for p in self.paths)

    def keeps(self, name: str) -> bool:
        return self.everything or any(p[0] == name.lower() for p in self.paths)

    def scope(self, name: str) -> "FieldSelection":
        if self.everything:
            return FieldSelection(None)
        inner = [p[1:] for p in self.paths if p[0] == name.lower()]
        return FieldSelection(inner if inner else [("\0",)])

    def filter(self, document):
        """Apply the selection to a JSON-like document (dicts and lists)."""
        if self.everything:
            return document
        if isinstance(document, list):
            return [self.filter(item) for item in document]
        if isinstance(document, dict):
            return {k: self.scope(k).filter(v) for k, v in document.items() if self.keeps(k)}
        return document


def _flag_text(flags: int, units: str, select: FieldSelection, lead_comma: bool) -> str:
    parts = []
    if select.keeps("UnitsAbbreviation"):
        parts.append(f'"UnitsAbbreviation":{json.dumps(units, ensure_ascii=False)}')
    for name, bit in (("Good", GOOD), ("Questionable", QUESTIONABLE), ("Substituted", SUBSTITUTED),
                      ("Annotated", ANNOTATED)):
        if select.keeps(name):
            parts.append(f'"{name}":{"true" if flags & bit else "false"}')
    body = ",".join(parts)
    return ("," if lead_comma and body else "") + body + "},"


@lru_cache(maxsize=4096)
def _flag_table(units: str, paths: tuple | None, lead_comma: bool) -> pa.Array:
    select = FieldSelection(list(paths) if paths is not None else None)
    return pa.array([_flag_text(f, units, select, lead_comma) for f in range(16)])


@lru_cache(maxsize=65536)
def _text_table(point: Point) -> pa.Array:
    return pa.array(text_table(point))


def value_text(point: Point, values: Values) -> pa.Array:
    """The JSON text of each ``Value`` of one point."""
    if point.point_type == "Timestamp":
        return format_ticks(values.stamp, '"', 'Z"')
    table = _text_table(point)
    if not point.is_numeric:
        return table.take(pa.array(values.text))
    if point.point_type == "Float32":
        numbers = pc.cast(pa.array(values.number.astype(np.float32)), pa.string())
    elif point.point_type == "Int32":
        numbers = pc.cast(pa.array(values.number.astype(np.int64)), pa.string())
    else:
        numbers = pc.cast(pa.array(values.number), pa.string())
    special = values.kind != NUMBER
    if not special.any():
        return numbers
    return pc.if_else(pa.array(special), table.take(pa.array(values.text)), numbers)


def value_objects(streams: list[tuple[Point, Values]], select: FieldSelection,
                  actions: np.ndarray | None = None) -> list[memoryview]:
    """Each stream's values as comma-separated JSON objects (the inside of its ``Items`` array).

    All streams are rendered in one columnar pass, then cut apart: Arrow's per-call overhead
    would otherwise dominate for the short streams of a large streamset.
    ``actions`` (codes into ACTIONS, one per value of all streams) adds the ``Action`` key.
    """
    lengths = np.array([len(values) for _, values in streams], np.int64)
    if lengths.sum() == 0:
        return [memoryview(b"") for _ in streams]
    present = [(p, v) for p, v in streams if len(v)]
    pieces: list = []
    text = "{"
    emitted = False

    def key(name: str) -> str:
        nonlocal emitted
        out = ("," if emitted else "") + f'"{name}":'
        emitted = True
        return out

    if actions is not None and select.keeps("Action"):
        opening = text + key("Action")
        table = pa.array([opening + f'"{a}"' for a in ACTIONS])
        pieces.append(table.take(pa.array(actions)))
        text = ""
    if select.keeps("Timestamp"):
        ticks = np.concatenate([v.ticks for _, v in present])
        pieces.append(format_ticks(ticks, text + key("Timestamp") + '"', 'Z"'))
        text = ""
    if select.keeps("Value"):
        text += key("Value")
        texts = [value_text(p, v) for p, v in present]
        pieces.extend([text, pa.concat_arrays(texts) if len(texts) > 1 else texts[0]])
        text = ""
    paths = None if select.everything else tuple(select.paths)
    units = sorted({p.units for p, _ in present})
    flag_table = pa.concat_arrays([_flag_table(u, paths, emitted) for u in units])
    unit_index = {u: i for i, u in enumerate(units)}
    flag_index = np.concatenate([v.flags.astype(np.int64) + 16 * unit_index[p.units] for p, v in present])
    if text:
        pieces.append(text)
    pieces.append(flag_table.take(pa.array(flag_index)))
    joined = pieces[0] if len(pieces) == 1 else pc.binary_join_element_wise(*pieces, "")
    _, offsets, data = joined.buffers()
    row_offsets = np.frombuffer(offsets, np.int32)[joined.offset: joined.offset + len(joined) + 1]
    body = memoryview(data)  # zero-copy: the socket writes straight from Arrow's buffer
    bounds = row_offsets[np.concatenate([[0], np.cumsum(lengths)])]
    # Each stream's slice ends with the comma after its last object: drop it.
    return [body[a:b - 1] if b > a else body[0:0] for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist())]


def ground_truth_records(point: Point, values: Values) -> list[dict]:
    """The values as the JSON objects a client receives (for tests: slow, exact)."""
    body = bytes(value_objects([(point, values)], FieldSelection(None))[0])
    return json.loads(b"[" + body + b"]") if body else []
