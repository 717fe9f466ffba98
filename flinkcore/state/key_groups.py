"""Stable key hashing and key groups (Flink's KeyGroupRangeAssignment).

``hash(str)`` is randomized per Python process, so routing and state placement use the native
stable hash instead (``flinkcore._core.partitioner``: Java hashCode rules, murmur3 key groups;
its pure-Python reference is ``flinkcore/_core/_reference/partitioner.py``).
"""

from __future__ import annotations

from typing import Any

from flinkcore._core import partitioner as _partitioner

__all__ = ["key_group_of", "key_group_range_for", "operator_index_of", "stable_hash"]

#: the stable 32-bit hash of a key, the same in every process and run
stable_hash = _partitioner.hash_key

#: ``key_group_of(key, max_parallelism)``: murmur(stable_hash(key)) % max_parallelism, in one C call
key_group_of = _partitioner.key_group


def operator_index_of(key: Any, max_parallelism: int, parallelism: int) -> int:
    """The parallel instance that owns ``key``."""
    return _partitioner.operator_index(key_group_of(key, max_parallelism), max_parallelism, parallelism)


def key_group_range_for(index: int, max_parallelism: int, parallelism: int) -> tuple[int, int]:
    """Inclusive key-group range of parallel instance ``index`` (contiguous, as in Flink)."""
    start = (index * max_parallelism + parallelism - 1) // parallelism
    end = ((index + 1) * max_parallelism - 1) // parallelism
    return start, end
