"""The native key-group partitioner against a pure-Python transcription of Flink's
MathUtils.murmurHash and KeyGroupRangeAssignment."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flinkcore._core import partitioner

M32 = 0xFFFFFFFF


def _to_int32(x: int) -> int:
    x &= M32
    return x - (1 << 32) if x >= 1 << 31 else x


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & M32


def ref_murmur_hash(code: int) -> int:
    h = (code * 0xCC9E2D51) & M32
    h = _rotl(h, 15)
    h = (h * 0x1B873593) & M32
    h = _rotl(h, 13)
    h = (h * 5 + 0xE6546B64) & M32
    h ^= 4
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    s = _to_int32(h)
    if s >= 0:
        return s
    return -s if s != -(1 << 31) else 0


def ref_hash_int64(v: int) -> int:
    u = v & 0xFFFFFFFFFFFFFFFF
    return _to_int32(u ^ (u >> 32))


int32s = st.integers(-(2**31), 2**31 - 1)
int64s = st.integers(-(2**63), 2**63 - 1)


@given(int32s)
def test_murmur_hash_matches_reference(code):
    assert partitioner.murmur_hash(code) == ref_murmur_hash(code)


@given(int64s)
def test_hash_int64_is_java_long_hashcode(v):
    assert partitioner.hash_int64(v) == ref_hash_int64(v)


@given(st.lists(int64s, max_size=200), st.integers(1, 32768))
def test_vectorised_key_groups_match_scalar(keys, max_parallelism):
    groups = partitioner.key_groups_int64(np.array(keys, dtype=np.int64), max_parallelism)
    expected = [ref_murmur_hash(ref_hash_int64(k)) % max_parallelism for k in keys]
    assert groups.tolist() == expected
    assert all(0 <= g < max_parallelism for g in groups)


def test_operator_index_splits_key_groups_into_contiguous_ranges():
    owners = [partitioner.operator_index(g, 128, 3) for g in range(128)]
    assert owners == sorted(owners)
    assert set(owners) == {0, 1, 2}
    assert owners[0] == 0 and owners[-1] == 2


def test_known_values_from_flink():
    # MathUtils.murmurHash(0) and the key group of Integer 42 (hashCode 42) at max parallelism 128,
    # as Flink computes them.
    assert partitioner.murmur_hash(0) == ref_murmur_hash(0)
    assert partitioner.key_group_for_hash(42, 128) == ref_murmur_hash(42) % 128


def test_rejects_bad_max_parallelism():
    with pytest.raises(ValueError, match="max_parallelism"):
        partitioner.key_groups_int64(np.zeros(3, dtype=np.int64), 0)
