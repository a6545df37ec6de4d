"""Deterministic pseudo-randomness: the same seed and key always give the same numbers.

The simulator derives every value from a hash of (seed, tag, event index, purpose), so any time
range can be generated on demand, in any order, without storing arrays.
"""

from __future__ import annotations

import numpy as np

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def mix(value: int) -> int:
    """splitmix64 finalizer on one Python int."""
    value &= _MASK
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK
    return value ^ (value >> 31)


def key(*parts: int) -> int:
    """Combine integers into one well-mixed 64-bit key."""
    acc = 0
    for part in parts:
        acc = mix(acc ^ ((part * _GOLDEN) & _MASK))
    return acc


def mix_array(values: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer, vectorized over uint64 (wrap-around multiplication is intended)."""
    x = values.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def uniform(base_key: int, index: np.ndarray, purpose: int) -> np.ndarray:
    """Uniform floats in [0, 1), one per index, independent for each ``purpose``."""
    salted = np.uint64(key(base_key, purpose))
    hashed = mix_array(index.astype(np.int64).view(np.uint64) * np.uint64(_GOLDEN) ^ salted)
    return (hashed >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def uniforms(base_key: int, index: np.ndarray, purpose: int) -> np.ndarray:
    """Four independent uniform floats in [0, 1) per index, at 1/65536 resolution (shape 4 x n).

    Cheaper than four :func:`uniform` calls; fine for rates and noise, not for fine positions.
    """
    salted = np.uint64(key(base_key, purpose))
    hashed = mix_array(index.astype(np.int64).view(np.uint64) * np.uint64(_GOLDEN) ^ salted)
    parts = np.stack([(hashed >> np.uint64(shift)) & np.uint64(0xFFFF) for shift in (0, 16, 32, 48)])
    return parts.astype(np.float64) * (1.0 / 65536)
