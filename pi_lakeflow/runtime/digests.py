"""A tag's digest: the key (timestamp, ordinal) and hash of each value PI held in the look-back
before the tag's cursor when it was last read (landing.value_hashes), as bytes in the state.

A re-read compares what it finds with the digest: an unchanged value is not landed again, a new
key is an Add, a changed one an Update, and a key the re-read no longer finds a Delete.
"""

from __future__ import annotations

import numpy as np

#: One entry of a tag's digest: a value's key and the hash of what it is (landing.value_hashes).
DIGEST_ENTRY = np.dtype([("timestamp_ns", "<i8"), ("ordinal", "<i4"), ("hash", "<u8")])
#: How a digest's bytes begin: then come its n entries column by column (n timestamps, each as
#: the step from the one before, the first from 0; n ordinals; n hashes), 20 bytes per entry
#: like entry by entry, but the state files' compression (zstd) takes them to about 10 bytes
#: instead of 13 (the steps and ordinals repeat; the hashes do not). A digest written entry by
#: entry (before this header existed) is 20·n bytes, never 8 more, and still reads.
_BY_COLUMN = b"\xff" * 8


def digest_bytes(entries: np.ndarray) -> bytes:
    """Entries as a digest: one per key (a later entry replaces an earlier one), sorted, laid out
    column by column after :data:`_BY_COLUMN` (see there)."""
    order = np.lexsort((np.arange(len(entries)), entries["ordinal"], entries["timestamp_ns"]))
    ordered = entries[order]
    last = np.ones(len(ordered), dtype=bool)
    last[:-1] = (ordered["timestamp_ns"][1:] != ordered["timestamp_ns"][:-1]) | \
        (ordered["ordinal"][1:] != ordered["ordinal"][:-1])
    ordered = ordered[last]
    if not len(ordered):
        return b""
    steps = np.diff(ordered["timestamp_ns"], prepend=np.int64(0))
    return b"".join([_BY_COLUMN, steps.astype("<i8").tobytes(), ordered["ordinal"].astype("<i4").tobytes(),
                     ordered["hash"].astype("<u8").tobytes()])


def digest_entries(digest: bytes | None) -> np.ndarray:
    """The entries of a digest, either layout."""
    if not digest:
        return np.empty(0, dtype=DIGEST_ENTRY)
    if len(digest) % DIGEST_ENTRY.itemsize != len(_BY_COLUMN) or not digest.startswith(_BY_COLUMN):
        return np.frombuffer(digest, dtype=DIGEST_ENTRY)  # entry by entry (written before 2026-12)
    count = len(digest) // DIGEST_ENTRY.itemsize
    entries = np.empty(count, dtype=DIGEST_ENTRY)
    at = len(_BY_COLUMN)
    entries["timestamp_ns"] = np.cumsum(np.frombuffer(digest, "<i8", count, at))
    entries["ordinal"] = np.frombuffer(digest, "<i4", count, at + 8 * count)
    entries["hash"] = np.frombuffer(digest, "<u8", count, at + 12 * count)
    return entries
