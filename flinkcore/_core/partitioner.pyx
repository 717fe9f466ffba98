# cython: language_level=3
"""Key-group assignment (Flink's KeyGroupRangeAssignment) over the C kernel in _native/fc_keygroup."""

import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t

cnp.import_array()


cdef extern from "fc_keygroup.h":
    int32_t fc_murmur_hash_int(int32_t code)
    int32_t fc_hash_int64(int64_t v)
    int32_t fc_key_group(int32_t key_hash, int32_t max_parallelism)
    int32_t fc_operator_index(int32_t key_group, int32_t max_parallelism, int32_t parallelism)
    void fc_key_groups_int64(const int64_t *keys, size_t n, int32_t max_parallelism, int32_t *out)


cdef int32_t _check_max_parallelism(long max_parallelism) except -1:
    if not 0 < max_parallelism <= 32768:
        raise ValueError(f"max_parallelism must be in [1, 32768], got {max_parallelism}")
    return <int32_t>max_parallelism


def murmur_hash(int code):
    """Flink's MathUtils.murmurHash of a 32-bit signed int."""
    return fc_murmur_hash_int(<int32_t>code)


def hash_int64(long long v):
    """The stable 32-bit hash of an int64 key (Java's Long.hashCode)."""
    return fc_hash_int64(v)


def key_group_for_hash(int key_hash, long max_parallelism):
    """Key group of a 32-bit key hash."""
    return fc_key_group(<int32_t>key_hash, _check_max_parallelism(max_parallelism))


def operator_index(int key_group, long max_parallelism, int parallelism):
    """The parallel instance that owns a key group (contiguous ranges)."""
    return fc_operator_index(key_group, _check_max_parallelism(max_parallelism), parallelism)


def key_groups_int64(keys, long max_parallelism):
    """Key groups of an int64 array, as an int32 array."""
    cdef int32_t mp = _check_max_parallelism(max_parallelism)
    cdef const int64_t[::1] k = np.ascontiguousarray(keys, dtype=np.int64)
    out = np.empty(k.shape[0], dtype=np.int32)
    cdef int32_t[::1] o = out
    if k.shape[0]:
        fc_key_groups_int64(&k[0], k.shape[0], mp, &o[0])
    return out
