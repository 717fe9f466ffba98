"""Stable key hashing and key groups (Flink's KeyGroupRangeAssignment).

``hash(str)`` is randomized per Python process, so routing and state placement use a stable
hash instead: the native ``partitioner.hash_key`` when it is built, else the pure-Python
reference below (same results for ints; strings hashed with CRC32 of UTF-8).
"""

from __future__ import annotations

import pickle
import struct
import zlib
from typing import Any

from flinkcore._core import partitioner as _partitioner

__all__ = ["key_group_of", "key_group_range_for", "operator_index_of", "stable_hash"]

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def _to_int32(h: int) -> int:
    h &= 0xFFFFFFFF
    return h - (1 << 32) if h >= (1 << 31) else h


def stable_hash_py(key: Any) -> int:
    """Pure-Python stable 32-bit hash of a key (the reference of the native hash)."""
    if isinstance(key, bool):
        return 1231 if key else 1237
    if isinstance(key, int):
        if _INT64_MIN <= key <= _INT64_MAX:
            return _partitioner.hash_int64(key)
        return _to_int32(zlib.crc32(str(key).encode()))
    if isinstance(key, str):
        return _to_int32(zlib.crc32(key.encode("utf-8", "surrogatepass")))
    if isinstance(key, bytes):
        return _to_int32(zlib.crc32(key))
    if isinstance(key, float):
        return _to_int32(zlib.crc32(struct.pack("<d", key)))
    if isinstance(key, tuple):
        h = 1
        for item in key:
            h = _to_int32(31 * h + stable_hash_py(item))
        return h
    if key is None:
        return 0
    return _to_int32(zlib.crc32(pickle.dumps(key, protocol=4)))


stable_hash = getattr(_partitioner, "hash_key", None) or stable_hash_py


def key_group_of(key: Any, max_parallelism: int) -> int:
    """The key group of ``key``: murmur(stable_hash(key)) % max_parallelism."""
    return _partitioner.key_group_for_hash(stable_hash(key), max_parallelism)


def operator_index_of(key: Any, max_parallelism: int, parallelism: int) -> int:
    """The parallel instance that owns ``key``."""
    return _partitioner.operator_index(key_group_of(key, max_parallelism), max_parallelism, parallelism)


def key_group_range_for(index: int, max_parallelism: int, parallelism: int) -> tuple[int, int]:
    """Inclusive key-group range of parallel instance ``index`` (contiguous, as in Flink)."""
    start = (index * max_parallelism + parallelism - 1) // parallelism
    end = ((index + 1) * max_parallelism - 1) // parallelism
    return start, end
