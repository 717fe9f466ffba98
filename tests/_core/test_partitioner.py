"""The key-group partitioner and stable key hash, native and pure-Python reference side by side.

The reference (flinkcore._core._reference.partitioner) is a direct transcription of Flink's
MathUtils.murmurHash / KeyGroupRangeAssignment and Java's hashCode rules; the tests pin known
Java values and check that both implementations agree on random keys of every supported type.
"""

import os
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flinkcore._core import partitioner as native
from flinkcore._core._reference import partitioner as ref

impls = pytest.mark.parametrize("p", [native, ref], ids=["native", "reference"])

int32s = st.integers(-(2**31), 2**31 - 1)
int64s = st.integers(-(2**63), 2**63 - 1)
scalar_keys = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text() | st.binary()
keys = st.recursive(
    scalar_keys, lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=4), max_leaves=10
)


@given(int32s)
def test_murmur_hash_matches_reference(code):
    assert native.murmur_hash(code) == ref.murmur_hash(code)


@given(int64s)
def test_hash_int64_is_java_long_hashcode(v):
    assert native.hash_int64(v) == ref.hash_int64(v)


@given(st.lists(int64s, max_size=200), st.integers(1, 32768))
def test_vectorised_key_groups_match_scalar(keys, max_parallelism):
    groups = native.key_groups_int64(np.array(keys, dtype=np.int64), max_parallelism)
    expected = [ref.murmur_hash(ref.hash_int64(k)) % max_parallelism for k in keys]
    assert groups.tolist() == expected
    assert all(0 <= g < max_parallelism for g in groups)


@given(keys)
def test_hash_key_native_equals_reference(key):
    assert native.hash_key(key) == ref.hash_key(key)
    assert -(2**31) <= native.hash_key(key) < 2**31


@given(st.lists(keys, max_size=60), st.integers(1, 32768), st.integers(1, 9), st.booleans())
def test_split_by_key_sends_each_record_where_its_key_group_belongs(ks, max_parallelism, n, stamped):
    """One pass over a batch: each record (with its timestamp) in its channel's list, in arrival
    order, as the per-record rule (key group, contiguous ranges) says; None for empty channels."""
    n = min(n, max_parallelism)
    values = [("record", i) for i in range(len(ks))]
    timestamps = list(range(100, 100 + len(ks))) if stamped else None
    parts = native.split_by_key(values, timestamps, ks, max_parallelism, n)
    expected = [[] for _ in range(n)]
    for i, k in enumerate(ks):
        expected[ref.key_group(k, max_parallelism) * n // max_parallelism].append(i)
    assert len(parts) == n
    for part, idx in zip(parts, expected, strict=True):
        if not idx:
            assert part is None
            continue
        assert part[0] == [values[i] for i in idx]
        assert part[1] == (None if timestamps is None else [timestamps[i] for i in idx])


def test_split_by_key_refuses_unhashable_keys_and_ragged_input():
    with pytest.raises(TypeError):
        native.split_by_key([1], None, [{"a": 1}], 128, 2)
    with pytest.raises(ValueError):
        native.split_by_key([1, 2], None, [1], 128, 2)
    with pytest.raises(ValueError):
        native.split_by_key([1], [5, 6], [1], 128, 2)


_Pair = namedtuple("_Pair", "k v")
# records as the keyed exchange sees them: tuples (the key at some position, or too short), lists,
# tuple subclasses (Rows), scalars; keys of every hashable type (int64 and str are hashed in C)
records = st.one_of(
    st.tuples(keys, st.integers()),
    st.tuples(st.integers(), keys, st.none()),
    st.tuples(),
    st.lists(keys, max_size=3),
    st.tuples(keys, st.integers()).map(lambda t: _Pair(*t)),
    keys,
)


def _selector(tuple_index, list_index):
    """What split_records' contract asks of key_of for those indexes (itemgetter's or
    MessageKey's rule), reading anything else as its first item, or as itself."""

    def key_of(v):
        if type(v) is tuple and 0 <= tuple_index < len(v):
            return v[tuple_index]
        if type(v) is list and 0 <= list_index < len(v):
            return v[list_index]
        if isinstance(v, (tuple, list)):
            return v[0] if len(v) else "empty"
        return v

    return key_of


@given(
    st.lists(records, max_size=60),
    st.integers(1, 32768),
    st.integers(1, 70),
    st.sampled_from([(0, 0), (1, 1), (-1, 0), (2, -1), (-1, -1)]),
    st.sampled_from(["none", "ints", "mixed"]),
)
def test_split_records_equals_split_by_key_of_the_selected_keys(values, max_parallelism, n, indexes, stamps):
    """Keys read in C (a tuple's or list's item) or by the selector, hashed in C (int64, str) or
    by the general rule: every record with its timestamp where split_by_key sends it, in order,
    in as many channels as asked (also beyond the 64 kept on the stack)."""
    n = min(n, max_parallelism)
    key_of = _selector(*indexes)
    timestamps = {
        "none": None,
        "ints": list(range(-5, len(values) - 5)),
        "mixed": [None if i % 3 == 0 else 2**70 if i % 3 == 1 else 1.5 for i in range(len(values))],
    }[stamps]
    expected = native.split_by_key(values, timestamps, [key_of(v) for v in values], max_parallelism, n)
    got = native.split_records(values, timestamps, key_of, *indexes, max_parallelism, n)
    assert got == expected
    for part, want in zip(got, expected, strict=True):
        if part is not None:  # the very record objects, not copies
            assert all(a is b for a, b in zip(part[0], want[0], strict=True))


@pytest.mark.parametrize("n", [1, 2, 3, 1000])
def test_split_records_of_large_batches_and_timestamps_that_are_not_a_list(n):
    """More records than the channel buffer on the stack holds; timestamps as a tuple or array."""
    rng = np.random.default_rng(n)
    ks = rng.integers(-(2**63), 2**63 - 1, 5000, dtype=np.int64).tolist()
    values = [(k, f"s{k % 100}", i) for i, k in enumerate(ks)]
    values[7] = (2**80, "big", 7)
    values[8] = ("user-1", "str", 8)
    values[9] = (1.0, "float", 9)
    ts = np.arange(len(values), dtype=np.int64)
    expected = native.split_by_key(values, ts.tolist(), [v[0] for v in values], 128, n)
    for timestamps in (ts, tuple(ts.tolist())):
        got = native.split_records(values, timestamps, lambda v: v[0], 0, 0, 128, n)
        assert [None if p is None else (p[0], [int(t) for t in p[1]]) for p in got] == expected
    assert sum(len(p[0]) for p in got if p is not None) == len(values)


def test_split_records_raises_what_the_key_selector_or_the_hash_raises():
    def failing(v):
        raise KeyError("no key")

    with pytest.raises(KeyError, match="no key"):
        native.split_records([(1, 2), "x"], None, failing, 0, 0, 128, 2)
    with pytest.raises(TypeError):
        native.split_records([({1: 2}, 0)], None, lambda v: v[0], 0, 0, 128, 2)
    with pytest.raises(ValueError):
        native.split_records([(1,), (2,)], [5], lambda v: v[0], 0, 0, 128, 2)
    with pytest.raises(ValueError):
        native.split_records([(1,)], None, lambda v: v[0], 0, 0, 128, 0)
    assert native.split_records([], [], lambda v: v[0], 0, 0, 128, 3) == [None, None, None]


def test_split_records_survives_a_key_selector_that_changes_the_batch():
    """Python code (the selector) runs between reads of the list: a batch that shrinks under it is
    an error, never a read past its end."""
    values = [(i, 0) for i in range(100)] + ["calls the selector"] + [(i, 0) for i in range(100)]

    def shrinking(v):
        del values[50:]
        return v

    with pytest.raises(RuntimeError, match="changed size"):
        native.split_records(values, None, shrinking, 0, 0, 128, 2)


@given(st.lists(keys, max_size=50), st.integers(1, 32768))
def test_key_groups_of_lists_match_scalar_key_group(ks, max_parallelism):
    expected = [ref.key_group(k, max_parallelism) for k in ks]
    assert native.key_groups(ks, max_parallelism).tolist() == expected
    assert [native.key_group(k, max_parallelism) for k in ks] == expected


@given(st.lists(st.text(), max_size=50), st.integers(1, 32768))
def test_key_groups_of_numpy_unicode_arrays(ks, max_parallelism):
    arr = np.array(ks, dtype=str) if ks else np.array([], dtype="U1")
    # numpy drops trailing NULs of fixed-width strings: compare with what the array holds
    expected = [ref.key_group(k, max_parallelism) for k in arr.tolist()]
    assert native.key_groups(arr, max_parallelism).tolist() == expected
    assert native.key_groups(arr.astype(object), max_parallelism).tolist() == expected


@given(st.lists(st.binary(), max_size=50), st.integers(1, 32768))
def test_key_groups_of_numpy_bytes_arrays(ks, max_parallelism):
    arr = np.array(ks, dtype=bytes) if ks else np.array([], dtype="S1")
    expected = [ref.key_group(k, max_parallelism) for k in arr.tolist()]
    assert native.key_groups(arr, max_parallelism).tolist() == expected


@impls
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint16, np.uint64, np.bool_, np.float64])
def test_key_groups_of_other_numpy_dtypes_equal_the_python_values(p, dtype):
    arr = np.arange(-3, 40).astype(dtype)
    expected = [ref.key_group(k, 128) for k in arr.tolist()]
    assert p.key_groups(arr, 128).tolist() == expected


@impls
def test_huge_uint64_keys_hash_as_big_ints(p):
    arr = np.array([2**64 - 1, 5], dtype=np.uint64)
    assert p.key_groups(arr, 100).tolist() == [ref.key_group(2**64 - 1, 100), ref.key_group(5, 100)]


@impls
def test_known_java_hash_codes(p):
    assert p.hash_key("hello") == 99162322  # "hello".hashCode()
    assert p.hash_key("") == 0
    assert p.hash_key("\U0001f600") == 31 * 0xD83D + 0xDE00  # surrogate pair, as Java's UTF-16
    assert p.hash_key(-1) == 0  # Long.hashCode(-1L)
    assert p.hash_key(2**32) == 1  # Long.hashCode(1L << 32)
    assert p.hash_key(2**64) == 961  # new BigInteger("18446744073709551616").hashCode()
    assert p.hash_key(-(2**64)) == -961
    assert p.hash_key(0.5) == 1071644672  # Double.hashCode(0.5)
    assert p.hash_key(b"\xff") == 30  # Arrays.hashCode(new byte[]{-1})
    assert p.hash_key(b"") == 1
    assert p.hash_key((1, 2)) == 994  # Arrays.asList(1L, 2L).hashCode()
    assert p.hash_key(None) == 0


@impls
def test_equal_python_keys_hash_alike(p):
    assert p.hash_key(True) == p.hash_key(1) == p.hash_key(1.0) == p.hash_key(np.int64(1))
    assert p.hash_key(False) == p.hash_key(0) == p.hash_key(-0.0) == p.hash_key(0.0)
    assert p.hash_key(1e300) == p.hash_key(int(1e300))
    assert p.hash_key(float("nan")) == p.hash_key(-float("nan"))
    assert p.hash_key((1, "a")) == p.hash_key([1, "a"]) == p.hash_key((True, np.str_("a")))


@impls
def test_tuple_subclasses_hash_like_tuples(p):
    Point = namedtuple("Point", "x y")
    assert p.hash_key(Point(1, "b")) == p.hash_key((1, "b"))


@impls
@pytest.mark.parametrize("bad", [{1: 2}, {1}, object(), 1j])
def test_unhashable_key_types_raise_type_error_naming_the_type(p, bad):
    with pytest.raises(TypeError, match=type(bad).__qualname__):
        p.hash_key(bad)
    with pytest.raises(TypeError):
        p.key_groups([1, bad], 128)


@impls
def test_deeply_nested_keys_raise_instead_of_overflowing_the_stack(p):
    key = ()
    for _ in range(10_000):
        key = (key,)
    with pytest.raises(ValueError, match="nested"):
        p.hash_key(key)


@impls
def test_empty_inputs(p):
    assert p.key_groups([], 128).tolist() == []
    assert p.key_groups(np.array([], dtype=np.int64), 128).tolist() == []
    assert p.key_groups(np.array([], dtype=object), 128).tolist() == []


def test_hash_is_independent_of_pythonhashseed():
    code = (
        "from flinkcore._core import partitioner as p;"
        "print(p.hash_key(('user-42', 7, b'x', 2.5)), p.key_group('café', 128))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(outs) == 1


def test_operator_index_splits_key_groups_into_contiguous_ranges():
    owners = [native.operator_index(g, 128, 3) for g in range(128)]
    assert owners == sorted(owners)
    assert set(owners) == {0, 1, 2}
    assert owners[0] == 0 and owners[-1] == 2
    assert owners == [ref.operator_index(g, 128, 3) for g in range(128)]


def test_known_values_from_flink():
    # MathUtils.murmurHash(0) and the key group of Integer 42 (hashCode 42) at max parallelism 128,
    # as Flink computes them.
    assert native.murmur_hash(0) == ref.murmur_hash(0)
    assert native.key_group_for_hash(42, 128) == ref.murmur_hash(42) % 128


@impls
def test_rejects_bad_max_parallelism(p):
    with pytest.raises(ValueError, match="max_parallelism"):
        p.key_groups_int64(np.zeros(3, dtype=np.int64), 0)
    with pytest.raises(ValueError, match="max_parallelism"):
        p.key_group("a", 40000)


def _layout(columns, rows, gap=0):
    """Byte offsets of each column's room for ``rows`` items (64-byte aligned, ``gap`` bytes apart)
    and the size of one channel's array."""
    offsets, size = [], 0
    for col in columns:
        offsets.append(size)
        size += -(-(rows * col.itemsize + gap) // 64) * 64
    return offsets, size


SENTINEL = 0xA5


def _scatter(keys, table, n_channels, columns, gap=0):
    offsets, size = _layout(columns, len(keys), gap)
    out = [np.full(size, SENTINEL, dtype=np.uint8) for _ in range(n_channels)]
    counts = native.scatter_columns(keys, table, n_channels, columns, out, offsets)
    return counts, out, offsets


def _channel_column(out, offsets, counts, c, j, col):
    return out[c][offsets[j] : offsets[j] + counts[c] * col.itemsize].view(col.dtype)


@given(st.integers(0, 3000), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_scatter_columns_moves_each_row_to_its_channel_in_arrival_order(rows, n_channels, seed):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, n_channels, 4000).astype(np.uint16)
    keys = rng.integers(0, 4000, rows)
    if rows and seed % 3 == 0:  # some batches go to one channel only
        keys[:] = keys[0]
    channels = table[keys]
    columns = [
        keys,
        rng.integers(-(2**31), 2**31 - 1, rows, dtype=np.int32),
        rng.integers(0, 2**16, rows).astype(np.uint16),
        rng.integers(-128, 128, rows).astype(np.int8),
        rng.random(rows),
        rng.random(rows).astype(np.float32),
        rng.random(rows) < 0.5,
        np.arange(rows, dtype=np.int64),
    ]
    counts, out, offsets = _scatter(keys, table, n_channels, columns, gap=seed % 3 * 8)
    assert counts.dtype == np.int64
    assert counts.tolist() == np.bincount(channels, minlength=n_channels).tolist()
    for c in range(n_channels):
        for j, col in enumerate(columns):
            got = _channel_column(out, offsets, counts, c, j, col)
            assert got.tobytes() == col[channels == c].tobytes()
            # nothing is written beyond the channel's rows
            room = out[c][offsets[j] + counts[c] * col.itemsize : offsets[j] + rows * col.itemsize]
            assert (room == SENTINEL).all()
        # the row numbers column: the channel's rows, in order
        assert (
            _channel_column(out, offsets, counts, c, 7, columns[7]).tolist()
            == np.flatnonzero(channels == c).tolist()
        )


@pytest.mark.parametrize("n_channels", [1, 2, 7, 300])
def test_scatter_columns_with_many_columns_of_one_size_and_many_channels(n_channels):
    rng = np.random.default_rng(n_channels)
    rows = 5000
    table = rng.integers(0, n_channels, 10_000).astype(np.uint16)
    keys = rng.integers(0, 10_000, rows)
    channels = table[keys]
    columns = [rng.integers(-(2**63), 2**63 - 1, rows, dtype=np.int64) for _ in range(9)]
    columns += [rng.integers(0, 2**32, rows).astype(np.uint32) for _ in range(5)]
    columns.append(rng.integers(0, 2**32, 3 * rows).astype(np.uint32)[::3])  # not contiguous
    counts, out, offsets = _scatter(keys, table, n_channels, columns)
    for c in range(n_channels):
        for j, col in enumerate(columns):
            assert _channel_column(out, offsets, counts, c, j, col).tolist() == col[channels == c].tolist()


@given(st.integers(0, 3000), st.integers(1, 200), st.integers(0, 2**32 - 1))
def test_scatter_columns_with_a_table_of_bits_as_with_the_channels(rows, size8, seed):
    """A 2-channel table as one bit per key (``np.packbits``, little bit order) moves every row
    where the uint16 table does; a key beyond its 8 * len(table) keys gives None."""
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 2, 8 * size8).astype(np.uint16)
    bits = np.packbits(table.astype(np.uint8), bitorder="little")
    keys = rng.integers(0, len(table), rows)
    columns = [keys, rng.random(rows), rng.integers(0, 2**16, rows).astype(np.uint16)]
    offsets, size = _layout(columns, rows)
    want = _scatter(keys, table, 2, columns)
    out = [np.full(size, SENTINEL, dtype=np.uint8) for _ in range(2)]
    counts = native.scatter_columns(keys, bits, 2, columns, out, offsets, bits=True)
    assert counts.tolist() == want[0].tolist()
    assert [o.tobytes() for o in out] == [o.tobytes() for o in want[1]]
    if rows:
        keys[rng.integers(0, rows)] = rng.choice([len(table), -1, 2**40])
        assert native.scatter_columns(keys, bits, 2, columns, out, offsets, bits=True) is None


def test_scatter_columns_refuses_a_table_of_bits_for_other_than_two_channels():
    with pytest.raises(ValueError, match="2 channels"):
        native.scatter_columns(
            np.array([0]),
            np.array([1], dtype=np.uint8),
            3,
            [np.arange(1)],
            [np.zeros(8, np.uint8)] * 3,
            [0],
            True,
        )


def test_scatter_columns_keeps_nan_payloads():
    table = np.array([1, 0, 2], dtype=np.uint16)
    bits = np.array([0x7FF8000000000001, 1, 2, 0xFFF0000000000ABC, 3], dtype=np.uint64)
    values = bits.view(np.float64)
    keys = np.array([0, 1, 0, 1, 2])
    counts, out, offsets = _scatter(keys, table, 3, [values])
    assert counts.tolist() == [2, 2, 1]
    got = [_channel_column(out, offsets, counts, c, 0, values).view(np.uint64).tolist() for c in range(3)]
    assert got == [[1, 0xFFF0000000000ABC], [0x7FF8000000000001, 2], [3]]


@pytest.mark.parametrize("n_channels", [2, 3])
def test_scatter_columns_gives_none_for_a_key_outside_the_table(n_channels):
    table = np.array([0, 1, 1, 0], dtype=np.uint16)
    col = np.arange(5)
    for keys in ([0, 1, -1, 2, 3], [0, 1, 2, 3, 4], [2**62, 0, 0, 0, 0], [-(2**63), 0, 1, 2, 3]):
        assert _scatter(np.array(keys), table, n_channels, [col])[0] is None
    assert _scatter(np.array([0, 1]), np.zeros(0, dtype=np.uint16), n_channels, [col[:2]])[0] is None
    # no row: nothing to look up
    assert _scatter(np.zeros(0, dtype=np.int64), table, n_channels, [col[:0]])[0].tolist() == [0] * n_channels


@pytest.mark.parametrize("n_channels", [1, 2, 3])
def test_scatter_columns_refuses_a_table_naming_a_channel_beyond_parallelism(n_channels):
    table = np.array([0, n_channels, 0], dtype=np.uint16)
    with pytest.raises(ValueError, match="beyond"):
        _scatter(np.array([0, 1, 2]), table, n_channels, [np.arange(3)])


def test_scatter_columns_refuses_what_would_write_out_of_place():
    keys = np.array([0, 1, 1])
    table = np.array([0, 1], dtype=np.uint16)
    col = np.arange(3)
    room = [np.zeros(64, dtype=np.uint8) for _ in range(2)]

    def scatter(columns=(col,), out=room, offsets=(0,), n=2):
        return native.scatter_columns(keys, table, n, list(columns), list(out), list(offsets))

    assert scatter().tolist() == [1, 2]
    with pytest.raises(ValueError, match="parallelism"):
        scatter(n=0)
    with pytest.raises(ValueError, match="out has"):
        scatter(out=room[:1])
    with pytest.raises(ValueError, match="offsets"):
        scatter(offsets=(0, 32))
    with pytest.raises(ValueError, match="offsets"):
        scatter(columns=(), offsets=())
    with pytest.raises(ValueError, match="1-d"):
        scatter(columns=(np.arange(4),))
    with pytest.raises(ValueError, match="dtype"):
        scatter(columns=(np.array(["a", "b", "c"], dtype=object),))
    with pytest.raises(ValueError, match="dtype"):
        scatter(columns=(np.zeros(3, dtype=np.complex128),))
    with pytest.raises(ValueError, match="overlap"):
        scatter(columns=(col, col), offsets=(0, 16))  # the first column needs 24 bytes
    with pytest.raises(ValueError, match="multiple"):
        scatter(offsets=(4,))
    with pytest.raises(ValueError, match="multiple"):
        scatter(offsets=(-8,))
    with pytest.raises(ValueError, match="at least 72 bytes"):
        scatter(offsets=(48,))
    read_only = np.zeros(64, dtype=np.uint8)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        scatter(out=(room[0], read_only))
    with pytest.raises(ValueError, match="writable"):
        scatter(out=(room[0], np.zeros(128, dtype=np.uint8)[::2]))
    with pytest.raises(ValueError, match="aligned"):
        scatter(out=(room[0], np.zeros(72, dtype=np.uint8)[1:65]))
