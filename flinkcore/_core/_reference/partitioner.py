"""Pure-Python reference of ``flinkcore._core.partitioner`` (Flink's MathUtils.murmurHash,
KeyGroupRangeAssignment and Java's hashCode conventions, transcribed for clarity)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np

M32 = 0xFFFFFFFF
_MAX_NESTING = 200


def _to_int32(x: int) -> int:
    x &= M32
    return x - (1 << 32) if x >= 1 << 31 else x


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & M32


def _check_max_parallelism(max_parallelism: int) -> int:
    if not 0 < max_parallelism <= 32768:
        raise ValueError(f"max_parallelism must be in [1, 32768], got {max_parallelism}")
    return max_parallelism


def murmur_hash(code: int) -> int:
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


def hash_int64(v: int) -> int:
    u = v & 0xFFFFFFFFFFFFFFFF
    return _to_int32(u ^ (u >> 32))


def _hash_bigint(v: int) -> int:
    mag = abs(v)
    h = 0
    words = []  # 32-bit words of the magnitude, least significant first
    while mag:
        words.append(mag & M32)
        mag >>= 32
    for w in reversed(words):
        h = (31 * h + w) & M32
    return _to_int32(-h if v < 0 else h)


def _hash_int(v: int) -> int:
    if -(2**63) <= v < 2**63:
        return hash_int64(v)
    return _hash_bigint(v)


def _hash_float(v: float) -> int:
    if math.isfinite(v) and v == math.floor(v):
        return _hash_int(int(v))
    if math.isnan(v):
        bits = 0x7FF8000000000000
    else:
        bits = struct.unpack("<Q", struct.pack("<d", v))[0]
    return _to_int32(bits ^ (bits >> 32))


def _hash_str(s: str) -> int:
    units = s.encode("utf-16-le", "surrogatepass")
    h = 0
    for unit in struct.unpack(f"<{len(units) // 2}H", units):
        h = (31 * h + unit) & M32
    return _to_int32(h)


def _hash_bytes(b: bytes) -> int:
    h = 1
    for byte in b:
        h = (31 * h + (byte - 256 if byte >= 128 else byte)) & M32
    return _to_int32(h)


def _hash_key(obj: object, depth: int) -> int:
    if obj is None:
        return 0
    if isinstance(obj, (bool, int, np.integer, np.bool_)):
        return _hash_int(int(obj))
    if isinstance(obj, (float, np.floating)):
        return _hash_float(float(obj))
    if isinstance(obj, str):
        return _hash_str(obj)
    if isinstance(obj, bytes):
        return _hash_bytes(obj)
    if isinstance(obj, (tuple, list)):
        if depth >= _MAX_NESTING:
            raise ValueError(f"key nested deeper than {_MAX_NESTING} levels cannot be hashed")
        h = 1
        for e in obj:
            h = (31 * h + _hash_key(e, depth + 1)) & M32
        return _to_int32(h)
    t = type(obj)
    raise TypeError(
        f"cannot hash a key of type {t.__module__}.{t.__qualname__}: key_by keys must be int, float, "
        "bool, str, bytes, None, or a tuple/list/Row of those"
    )


def hash_key(obj: object) -> int:
    return _hash_key(obj, 0)


def key_group_for_hash(key_hash: int, max_parallelism: int) -> int:
    return murmur_hash(key_hash) % _check_max_parallelism(max_parallelism)


def key_group(obj: object, max_parallelism: int) -> int:
    _check_max_parallelism(max_parallelism)
    return murmur_hash(hash_key(obj)) % max_parallelism


def operator_index(key_group: int, max_parallelism: int, parallelism: int) -> int:
    return key_group * parallelism // _check_max_parallelism(max_parallelism)


def key_groups_int64(keys: Sequence[int] | np.ndarray, max_parallelism: int) -> np.ndarray:
    _check_max_parallelism(max_parallelism)
    arr = np.asarray(keys, dtype=np.int64)
    return np.array([murmur_hash(hash_int64(int(k))) % max_parallelism for k in arr], dtype=np.int32)


def hash_keys(keys: Sequence[object] | np.ndarray) -> np.ndarray:
    if isinstance(keys, np.ndarray):
        keys = keys.tolist()
    return np.array([hash_key(k) for k in keys], dtype=np.int32)


def key_groups(keys: Sequence[object] | np.ndarray, max_parallelism: int) -> np.ndarray:
    _check_max_parallelism(max_parallelism)
    if isinstance(keys, np.ndarray) and keys.ndim != 1:
        raise ValueError(f"key_groups expects a 1-d array of keys, got shape {keys.shape}")
    return np.array([murmur_hash(h) % max_parallelism for h in hash_keys(keys).tolist()], dtype=np.int32)
