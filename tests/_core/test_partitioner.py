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


def _grouped(channels, n_channels, column):
    """The reference of split_columns: each channel's items in arrival order, channel by channel."""
    return np.concatenate([column[channels == c] for c in range(n_channels)] + [column[:0]])


@given(st.integers(0, 3000), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_split_columns_groups_rows_by_channel_in_arrival_order(rows, n_channels, seed):
    rng = np.random.default_rng(seed)
    channels = rng.integers(0, n_channels, rows).astype(np.uint16)
    if rows and seed % 3 == 0:  # some batches go to one channel only
        channels[:] = seed % n_channels
    counts = np.bincount(channels, minlength=n_channels)
    columns = [
        rng.integers(-(2**63), 2**63 - 1, rows, dtype=np.int64),
        rng.integers(-(2**31), 2**31 - 1, rows, dtype=np.int32),
        rng.integers(0, 2**16, rows).astype(np.uint16),
        rng.integers(-128, 128, rows).astype(np.int8),
        rng.random(rows),
        rng.random(rows).astype(np.float32),
        rng.random(rows) < 0.5,
        np.arange(rows, dtype=np.int64),
    ]
    moved = native.split_columns(channels, counts, columns)
    for got, col in zip(moved, columns, strict=True):
        assert got.dtype == col.dtype
        assert got.tobytes() == _grouped(channels, n_channels, col).tobytes()
    # the permutation column: the rows of each channel, in order
    assert moved[-1].tolist() == [i for c in range(n_channels) for i in np.flatnonzero(channels == c)]


def test_split_columns_keeps_nan_payloads_and_fills_given_arrays():
    channels = np.array([1, 0, 1, 0, 2], dtype=np.uint16)
    bits = np.array([0x7FF8000000000001, 1, 2, 0xFFF0000000000ABC, 3], dtype=np.uint64)
    values = bits.view(np.float64)
    out = [np.zeros(5, dtype=np.float64)]
    moved = native.split_columns(channels, [2, 2, 1], [values], out)
    assert moved[0] is out[0]
    assert out[0].view(np.uint64).tolist() == [1, 0xFFF0000000000ABC, 0x7FF8000000000001, 2, 3]


def test_split_columns_refuses_what_would_write_out_of_place():
    ch = np.array([0, 1, 1], dtype=np.uint16)
    col = np.arange(3)
    with pytest.raises(ValueError, match="add up"):
        native.split_columns(ch, [1, 1], [col])
    with pytest.raises(ValueError, match="disagree"):
        native.split_columns(ch, [2, 1], [col])  # channel 1 gets more rows than counted
    with pytest.raises(ValueError, match="disagree"):
        native.split_columns(np.array([0, 3, 1], dtype=np.uint16), [1, 1, 1], [col])
    with pytest.raises(ValueError, match="disagree"):
        native.split_columns(np.array([0, 2, 1], dtype=np.uint16), [1, 2], [col])
    with pytest.raises(ValueError, match="negative"):
        native.split_columns(ch, [4, -1], [col])
    with pytest.raises(ValueError, match="1-d"):
        native.split_columns(ch, [1, 2], [np.arange(4)])
    with pytest.raises(ValueError, match="dtype"):
        native.split_columns(ch, [1, 2], [np.array(["a", "b", "c"], dtype=object)])
    with pytest.raises(ValueError, match="dtype"):
        native.split_columns(ch, [1, 2], [np.zeros(3, dtype=np.complex128)])
    with pytest.raises(ValueError, match="out"):
        native.split_columns(ch, [1, 2], [col], [np.zeros(3, dtype=np.int32)])
    with pytest.raises(ValueError, match="out"):
        native.split_columns(ch, [1, 2], [col], [np.zeros(6, dtype=np.int64)[::2]])  # not contiguous
    with pytest.raises(ValueError, match="out"):
        native.split_columns(ch, [1, 2], [col], [np.zeros(2, dtype=np.int64)])
    assert native.split_columns(np.zeros(0, dtype=np.uint16), [0, 0], [np.zeros(0)])[0].tolist() == []


@given(st.lists(st.integers(0, 5000), max_size=300), st.integers(1, 9))
def test_table_channels_reads_the_table_and_counts(keys, n_channels):
    table = (np.arange(4096) * 7 % n_channels).astype(np.uint16)
    arr = np.array(keys, dtype=np.int64)
    got = native.table_channels(arr, table, n_channels)
    if any(k >= len(table) for k in keys):
        assert got is None
        return
    channels, counts = got
    assert channels.dtype == np.uint16 and channels.tolist() == [int(table[k]) for k in keys]
    assert counts.tolist() == np.bincount(table[arr], minlength=n_channels).tolist()
    out = np.empty(len(keys), dtype=np.uint16)
    assert native.table_channels(arr, table, n_channels, out)[0] is out


def test_table_channels_refuses_negative_keys_and_bad_tables():
    table = np.array([0, 1, 0], dtype=np.uint16)
    assert native.table_channels(np.array([0, -1]), table, 2) is None
    with pytest.raises(ValueError, match="channel"):
        native.table_channels(np.array([1]), table, 1)
    with pytest.raises(ValueError, match="out"):
        native.table_channels(np.array([1]), table, 2, np.empty(2, dtype=np.uint16))


@pytest.mark.parametrize("n_channels", [1, 2, 7, 300])
def test_split_columns_with_many_columns_of_one_size_and_many_channels(n_channels):
    rng = np.random.default_rng(n_channels)
    rows = 5000
    channels = rng.integers(0, n_channels, rows).astype(np.uint16)
    counts = np.bincount(channels, minlength=n_channels)
    columns = [rng.integers(-(2**63), 2**63 - 1, rows, dtype=np.int64) for _ in range(9)]
    columns += [rng.integers(0, 2**32, rows).astype(np.uint32) for _ in range(5)]
    moved = native.split_columns(channels, counts, columns)
    for got, col in zip(moved, columns, strict=True):
        assert got.dtype == col.dtype and got.tolist() == _grouped(channels, n_channels, col).tolist()
    if n_channels > 1:
        channels[-1] = n_channels  # beyond the counts
        with pytest.raises(ValueError, match="disagree"):
            native.split_columns(channels, counts, columns)
