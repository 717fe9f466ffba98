"""The record format: round trips, byte-identical native and reference encoders, deterministic keys,
and rejection of truncated/corrupt input (hypothesis fuzzing plus a corpus of tricky inputs)."""

import datetime as dt
import itertools
import math
import pathlib
import pickle
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flinkcore._core import serde as native
from flinkcore._core._reference import serde as ref

impls = pytest.mark.parametrize("s", [native, ref], ids=["native", "reference"])
CORPUS = pathlib.Path(__file__).parent / "corpus"


class Row(tuple):
    """A stand-in for flinkcore.common.Row: a tuple subclass with optional field names."""

    _row_kind = 0

    def __new__(cls, *values, names=None, kind=0):
        row = super().__new__(cls, values)
        row._fields = tuple(names) if names is not None else None
        row._row_kind = kind
        return row

    def __eq__(self, other):
        return (
            tuple(self) == tuple(other)
            and getattr(other, "_fields", None) == self._fields
            and getattr(other, "_row_kind", 0) == self._row_kind
        )

    __hash__ = tuple.__hash__


class SchemaRow(Row):
    """A per-schema subclass, as flinkcore.common builds: encoded as the registered Row."""


def _make_row(names, values, kind):
    return Row(*values, names=names, kind=kind)


@pytest.fixture(autouse=True)
def row_type():
    native.register_row_type(Row, _make_row)
    ref.register_row_type(Row, _make_row)
    yield
    ref.register_row_type(None, None)
    # the process-wide registration flinkcore.common makes at import, for the tests after these
    from flinkcore.common.types import _register_with_serde

    _register_with_serde()


def same(a, b) -> bool:
    """Equality that also requires identical types and treats NaN as equal to itself."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (tuple, list)):
        return (
            len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b, strict=False))
            and (getattr(a, "_fields", None) == getattr(b, "_fields", None))
        )
    if isinstance(a, dict):
        return len(a) == len(b) and all(k in b and same(v, b[k]) for k, v in a.items())
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, (dt.datetime, dt.time)):
        return a == b and a.fold == b.fold and a.tzinfo == b.tzinfo
    return a == b


fixed_tz = st.builds(
    dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23))
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True)
    | st.text()
    | st.text(st.characters(codec="utf-8") | st.characters(categories=["Cs"]))
    | st.binary()
    | st.decimals(allow_nan=True)
    | st.datetimes(timezones=st.none() | fixed_tz, allow_imaginary=True)
    | st.dates()
    | st.times(timezones=st.none() | fixed_tz)
    | st.timedeltas()
    | st.frozensets(st.integers(), max_size=3)  # pickled
)
hashable = st.none() | st.booleans() | st.integers() | st.text() | st.binary() | st.floats(allow_nan=False)
values = st.recursive(
    scalars,
    lambda inner: (
        st.tuples(inner, inner)
        | st.lists(inner, max_size=5)
        | st.dictionaries(hashable, inner, max_size=4)
        | st.lists(inner, max_size=4).map(lambda vs: Row(*vs))
        | st.lists(inner, max_size=4).map(lambda vs: Row(*vs, names=[f"f{i}" for i in range(len(vs))]))
    ),
    max_leaves=20,
)


@given(values)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_and_byte_identical_to_reference(v):
    data = native.dumps(v)
    assert data == ref.dumps(v)
    assert same(native.loads(data), v)
    assert same(ref.loads(data), v)


@given(st.lists(values, max_size=10))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_batch_round_trip(vs):
    data = native.dumps_batch(vs)
    assert data == ref.dumps_batch(vs)
    out = native.loads_batch(data)
    assert len(out) == len(vs) and all(same(a, b) for a, b in zip(out, vs, strict=False))
    assert all(same(a, b) for a, b in zip(ref.loads_batch(data), vs, strict=False))


def test_batch_with_repeated_strings_shares_nothing_observable():
    recs = [(i, i * 0.5, f"user-{i % 7}") for i in range(1000)]
    assert native.loads_batch(native.dumps_batch(recs)) == recs


# A row block holds plain tuples of one column layout; these draw such batches, edge values included.
column_values = {
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=True) | st.sampled_from([-0.0, math.inf, -math.inf, 5e-324]),
    "str": st.text(max_size=40) | st.text(st.sampled_from("ab\x00\x7f\u00e9"), max_size=20),
    "bytes": st.binary(max_size=40),
}
row_batches = st.lists(st.sampled_from(sorted(column_values)), min_size=1, max_size=6).flatmap(
    lambda cols: st.lists(st.tuples(*(column_values[c] for c in cols)), max_size=60)
)


def _layout(data: bytes) -> int:
    """The layout byte of a version-2 batch (after the version byte and the count varint)."""
    i = 1
    while data[i] & 0x80:
        i += 1
    return data[i + 1]


@given(row_batches)
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_row_batches_round_trip_byte_identical_to_reference(recs):
    data = native.dumps_batch(recs)
    assert data == ref.dumps_batch(recs)
    assert data[0] == native.BATCH_VERSION == 2
    if recs:
        assert _layout(data) == 1  # rows
    for s in (native, ref):
        out = s.loads_batch(data)
        assert len(out) == len(recs) and all(same(a, b) for a, b in zip(out, recs, strict=True))


@impls
@pytest.mark.parametrize(
    "recs",
    [
        [(1, "a"), (2, "b", 3)],  # arity changes
        [(1, "a"), (2, None)],  # a column type changes
        [(1, "a"), (True, "b")],  # bool is not an int column
        [(1, "a"), (2**63, "b")],  # beyond int64
        [(1, "a"), (2, "\ud800")],  # a lone surrogate needs the tagged form
        [(1, "a"), [2, "b"]],  # not a tuple
        [Row(1, "a"), Row(2, "b")],  # tuple subclasses keep their type
        [()],  # no columns
        [tuple(range(65))],  # more columns than a row block holds
        [(1,), (np.int64(2),)],  # numpy scalars are pickled
    ],
)
def test_batches_that_are_not_row_blocks_use_the_value_layout(s, recs):
    data = s.dumps_batch(recs)
    assert _layout(data) == 0
    assert all(same(a, b) for a, b in zip(s.loads_batch(data), recs, strict=True))


@pytest.mark.parametrize(
    "cols",
    [c for k in (1, 2, 3) for c in itertools.product(("int", "float", "str"), repeat=k)]
    + [("int", "bytes"), ("str", "int", "float", "str"), ("bytes", "str", "int", "float", "int")],
)
def test_row_block_layouts_decode_each_value_in_every_position(cols):
    """Every 1-3 column int/float/str layout has its own compiled loop, wider ones a generic one; ints of
    every varint length, strs of every cache class (empty, short, > 16 bytes, non-ASCII) in any column,
    and the last records (decoded with every read checked, near the end of the buffer) come back exact;
    every truncation of the batch is a SerdeError in both decoders."""
    ints = [0, 1, -1, 63, -64, 2**20 - 1, 2**20, -(2**20), 2**31, -(2**40), 2**63 - 1, -(2**63)]
    strs = ["", "a", "user-7", "user-123", "p" * 16, "q" * 17, "\u00e9t\u00e9", "x" * 300]
    gen = {
        "int": lambda i: ints[i % len(ints)],
        "float": lambda i: i * 0.25 - 3,
        "str": lambda i: strs[(i * 5) % len(strs)],
        "bytes": lambda i: bytes(range(i % 7)),
    }
    recs = [tuple(gen[c](i + j) for j, c in enumerate(cols)) for i in range(96)]
    data = native.dumps_batch(recs)
    assert data == ref.dumps_batch(recs) and _layout(data) == 1
    for _ in range(2):  # the second time the strs come from the cache
        assert native.loads_batch(data) == recs
    for cut in range(len(data) - 40, len(data)):
        for s in (native, ref):
            with pytest.raises(s.SerdeError):
                s.loads_batch(data[:cut])


def test_row_block_tuples_leave_the_cyclic_gc_intact():
    """Decoded row tuples are untracked as they are made (inline on CPython 3.11-3.12): the collector's
    lists stay whole, so cycles made before, between and after decodes are still found and freed."""
    import gc
    import weakref

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return weakref.ref(a)

    refs, kept = [], []
    for i in range(50):
        refs.append(cycle())
        out = native.loads_batch(native.dumps_batch([(j, j * 0.5, f"k{j % 9}") for j in range(300 + i)]))
        assert not any(gc.is_tracked(t) for t in out)
        kept.append(out)
        refs.append(cycle())
        if i % 10 == 0:
            gc.collect(0)
    gc.collect()
    assert all(r() is None for r in refs)
    assert kept[-1][-1] == (349 - 1, (349 - 1) * 0.5, f"k{(349 - 1) % 9}")


@pytest.mark.parametrize(
    "recs",
    [
        [(0, "")] + [(i, "x" * (i * 37 % 5000)) for i in range(300)],  # later records far longer
        [(0, "y" * 10_000)] + [(i, "") for i in range(3_000)],  # the first one far longer
        [(i, b"\x00" * (i % 70), i / 3) for i in range(2_000)],
        [(0, 0.0, "a")] * 1_000 + [(2**64, 0.0, "a")],  # abandoned after the buffer grew: value layout
    ],
)
def test_row_blocks_written_in_place_grow_and_fall_back(recs):
    """A row block is written straight into the bytes returned, sized from the first record: it grows,
    and a record that does not fit the layout switches the whole batch to the value layout."""
    data = native.dumps_batch(recs)
    assert data == ref.dumps_batch(recs)
    assert _layout(data) == (0 if recs[-1][0] == 2**64 else 1)
    assert native.loads_batch(data) == recs


def test_row_block_columns_limit():
    recs = [tuple(range(64)), tuple(range(1, 65))]
    data = native.dumps_batch(recs)
    assert _layout(data) == 1 and native.loads_batch(data) == recs


@impls
def test_version_1_batches_still_load(s):
    # what flinkcore wrote before the row block: version 1, the count, then tagged values
    v1 = b"\x01\x02" + b"\x08\x02\x03\x02\x06\x01a" + b"\x08\x02\x03\x04\x06\x01b"
    assert s.loads_batch(v1) == [(1, "a"), (2, "b")]
    assert s.loads_batch(b"\x01\x00") == []
    with pytest.raises(s.SerdeError, match="batch format version 3"):
        s.loads_batch(b"\x03\x00\x00")
    with pytest.raises(s.SerdeError, match="version 2"):
        s.loads(s.dumps_batch([1]))  # a batch is not a single value


def test_string_cache_distinguishes_near_identical_strings():
    """The decoder shares repeated short strs across batches; strs that differ in one byte stay apart."""
    alphabet = "ab\u00e9"
    words = [""] + [w + c for n in range(1, 17) for w in ("a" * (n - 1), "b" * (n - 1)) for c in alphabet]
    for w in ("abcdefghijklmnop", "abcdefghijklmnopq"):
        words += [w[:i] + "x" + w[i + 1 :] for i in range(len(w))]
    for rnd in range(3):
        recs = [(i, words[(i * 7 + rnd) % len(words)]) for i in range(2000)]
        out = native.loads_batch(native.dumps_batch(recs))
        assert out == recs
        assert all(type(r[1]) is str for r in out)
    many = [(f"k{i}",) for i in range(20_000)]  # far more distinct strs than cache slots
    assert native.loads_batch(native.dumps_batch(many)) == many
    assert native.loads_batch(native.dumps_batch(many[:100])) == many[:100]


@impls
@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x02\x01", "exceeds"),  # no layout byte, nor a record
        (b"\x02\x01\x07", "unknown batch layout"),
        (b"\x02\x01\x01\x00", "0 columns"),
        (b"\x02\x01\x01\x41" + b"\x03" * 65, "65 columns"),
        (b"\x02\x01\x01\x02\x03", "truncated"),  # tags cut off
        (b"\x02\x01\x01\x01\x08\x00", "column type 0x08"),
        (b"\x02\x7f\x01\x01\x05" + b"\x00" * 16, "exceeds"),  # 127 floats need 1016 bytes
        (b"\x02\x01\x01\x01\x05\x00\x00", "exceeds"),
        (b"\x02\x02\x01\x01\x03\x02\x80", "truncated"),  # varint runs past the end
        (b"\x02\x01\x01\x01\x06\x05ab", "truncated"),
        (b"\x02\x01\x01\x01\x06\x02\xff\xfe", "UTF-8"),
        (b"\x02\x01\x01\x01\x03\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", "varint"),
        (b"\x02\x01\x01\x01\x03\x02\x00", "trailing"),
    ],
)
def test_corrupt_row_batches_raise_serde_error(s, data, message):
    with pytest.raises(s.SerdeError, match=message):
        s.loads_batch(data)


@given(row_batches.filter(bool), st.data())
@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
def test_fuzz_mutated_row_batches_native_agrees_with_reference(recs, data):
    buf = bytearray(native.dumps_batch(recs))
    for _ in range(data.draw(st.integers(1, 3))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    for candidate in (bytes(buf), bytes(buf[:cut])):
        outcomes = []
        for s in (native, ref):
            try:
                outcomes.append(("ok", s.loads_batch(candidate, allow_pickle=False)))
            except s.SerdeError:
                outcomes.append(("error", None))
        assert outcomes[0][0] == outcomes[1][0], candidate
        if outcomes[0][0] == "ok":
            assert all(same(a, b) for a, b in zip(outcomes[0][1], outcomes[1][1], strict=True))


key_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text()
    | st.binary()
    | st.decimals(allow_nan=False)
    | st.datetimes(timezones=st.none() | fixed_tz)
    | st.dates(),
    lambda inner: st.tuples(inner, inner) | st.lists(inner, max_size=4),
    max_leaves=8,
)


@given(key_values)
def test_encode_key_native_equals_reference_and_decodes(k):
    data = native.encode_key(k)
    assert data == ref.encode_key(k)
    decoded = native.loads(data)
    assert native.encode_key(decoded) == data  # the decoded canonical form is a fixed point
    assert eq_nan(decoded, k)


def eq_nan(a, b) -> bool:
    """Python equality, except that NaN equals NaN (the canonical key form keeps values equal)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        same_shape = type(a) is type(b) and len(a) == len(b)
        return same_shape and all(eq_nan(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@given(key_values, key_values)
def test_equal_keys_encode_to_equal_bytes(a, b):
    if a == b:
        assert native.encode_key(a) == native.encode_key(b)


@impls
def test_numeric_keys_canonicalise_like_python_equality(s):
    one = s.encode_key(1)
    for v in (True, 1.0, np.int64(1), np.float32(1.0), np.bool_(True), Decimal(1), Decimal("1.000")):
        assert s.encode_key(v) == one, v
    assert s.encode_key(-0.0) == s.encode_key(0) == s.encode_key(False)
    assert s.encode_key(Decimal("0.5")) == s.encode_key(0.5)
    assert s.encode_key(float("nan")) == s.encode_key(-float("nan")) == s.encode_key(Decimal("NaN"))
    assert s.encode_key(1e300) == s.encode_key(int(1e300))
    assert s.encode_key(Decimal("0.1")) != s.encode_key(0.1)  # not equal in Python either
    assert s.encode_key(Decimal("0.10")) == s.encode_key(Decimal("0.1"))


@impls
def test_key_forms_of_rows_datetimes_and_subclasses(s):
    assert s.encode_key(Row(1, "a", names=["x", "y"])) == s.encode_key((1, "a"))
    assert s.encode_key(np.str_("ab")) == s.encode_key("ab")
    utc_noon = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)
    paris = dt.datetime(2024, 5, 1, 14, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert utc_noon == paris and s.encode_key(utc_noon) == s.encode_key(paris)
    assert s.encode_key(dt.datetime(2024, 5, 1, 12)) != s.encode_key(utc_noon)
    assert s.encode_key((1, 2)) != s.encode_key([1, 2])


@impls
@pytest.mark.parametrize("bad", [{1: 2}, {1, 2}, object(), dt.time(1, tzinfo=dt.timezone.utc)])
def test_encode_key_rejects_non_key_types(s, bad):
    with pytest.raises(TypeError):
        s.encode_key(bad)


@impls
def test_rows_keep_field_names(s):
    r = Row(1, 2.5, "x", names=["id", "score", "name"])
    out = s.loads(s.dumps(r))
    assert type(out) is Row and out == r and out._fields == ("id", "score", "name")
    batch = s.loads_batch(s.dumps_batch([r, r]))
    assert batch == [r, r]


@impls
def test_row_kind_and_subclasses(s):
    r = Row(1, names=["a"], kind=3)
    out = s.loads(s.dumps(r))
    assert out._row_kind == 3 and out == r
    sub = SchemaRow(1, 2, names=["a", "b"])
    data = s.dumps(sub)
    assert data[1] == 0x0B  # the Row tag, not pickle
    assert s.loads(data) == Row(1, 2, names=["a", "b"])


@impls
def test_rows_need_a_registered_type_to_load(s):
    data = s.dumps(Row(1, names=["a"]))
    s.register_row_type(None, None)
    with pytest.raises(s.SerdeError, match="register"):
        s.loads(data)


class Custom:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return type(other) is Custom and other.x == self.x


@impls
def test_unknown_types_are_pickled_under_their_own_tag(s):
    data = s.dumps(Custom(3))
    assert data[1] == 0x10
    assert s.loads(data) == Custom(3)
    with pytest.raises(s.SerdeError, match="allow_pickle"):
        s.loads(data, allow_pickle=False)
    with pytest.raises(TypeError, match="pickle failed"):
        s.dumps(lambda: 1)


@impls
def test_compact_and_versioned(s):
    assert s.dumps(None) == b"\x01\x00"
    assert s.dumps(-1) == b"\x01\x03\x01"
    assert s.dumps("hi") == b"\x01\x06\x02hi"
    records = [(i * 1000, i / 3, f"user-{i}") for i in range(100)]
    assert len(s.dumps_batch(records)) < len(pickle.dumps(records, protocol=5))
    with pytest.raises(s.SerdeError, match="version 2"):
        s.loads(b"\x02\x00")


@impls
def test_recursive_and_too_deep_values_raise(s):
    lst = []
    lst.append(lst)
    with pytest.raises(ValueError, match="nested"):
        s.dumps(lst)
    deep = b"\x01" + b"\x08\x01" * 10_000 + b"\x00"
    with pytest.raises(s.SerdeError, match="nesting"):
        s.loads(deep)


@impls
@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"\x01", "truncated"),
        (b"\x01\x06\x05ab", "truncated"),
        (b"\x01\x05\x00\x00", "truncated"),
        (b"\x01\x09\xff\xff\xff\xff\x0f", "exceeds"),  # a list claiming 4G items
        (b"\x01\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02", "varint"),
        (b"\x01\x06\x02\xff\xfe", "UTF-8"),
        (b"\x01\x7f", "unknown tag"),
        (b"\x01\x00\x00", "trailing"),
        (b"\x01\x0a\x01\x09\x00\x00", "unhashable"),
        (b"\x01\x0e\x00\x0d\x01", "date"),
        (b"\x01\x0c\x03abc", "Decimal"),
        (b"\x01\x04\x07\x01\x01", "sign"),
        (b"\x01\x10\x03abc", "pickled"),
    ],
)
def test_corrupt_inputs_raise_serde_error(s, data, message):
    with pytest.raises(s.SerdeError, match=message):
        s.loads(data)


@impls
def test_corpus_of_tricky_inputs(s):
    """Every file in corpus/ either decodes or raises SerdeError, the same way in both implementations:
    ``ok-*``/``bad-*`` through ``loads``, ``batch-ok-*``/``batch-bad-*`` through ``loads_batch``."""
    files = sorted(CORPUS.glob("*.bin"))
    assert files and any(p.name.startswith("batch-") for p in files), "corpus is empty"
    for path in files:
        data = path.read_bytes()
        batch = path.name.startswith("batch-")
        expect_ok = path.name.removeprefix("batch-").startswith("ok-")
        try:
            (s.loads_batch if batch else s.loads)(data, allow_pickle=False)
            outcome = True
        except s.SerdeError:
            outcome = False
        assert outcome == expect_ok, path.name


@given(st.binary(max_size=200))
@settings(max_examples=2000)
def test_fuzz_random_bytes_never_crash(data):
    for s in (native, ref):
        for load in (s.loads, s.loads_batch):
            try:
                load(data, allow_pickle=False)
            except s.SerdeError:
                pass


@given(values, st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_valid_encodings(v, data):
    buf = bytearray(native.dumps(v))
    i = data.draw(st.integers(0, len(buf) - 1))
    buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    for candidate in (bytes(buf), bytes(buf[:cut])):
        try:
            native.loads(candidate, allow_pickle=False)
        except native.SerdeError:
            pass


def test_accepts_any_contiguous_buffer():
    data = native.dumps((1, "a"))
    assert native.loads(bytearray(data)) == (1, "a")
    assert native.loads(memoryview(data)) == (1, "a")
    assert native.loads(np.frombuffer(data, dtype=np.uint8)) == (1, "a")
    with pytest.raises(TypeError):
        native.loads("not bytes")
    batch = native.dumps_batch([(1, "a"), (2, "b")])  # bytes are read in place, other buffers through a view
    for buf in (batch, bytearray(batch), memoryview(batch), memoryview(b"xx" + batch)[2:]):
        assert native.loads_batch(buf) == [(1, "a"), (2, "b")]
    for empty in (b"", bytearray(), memoryview(b"")):
        with pytest.raises(native.SerdeError, match="empty input"):
            native.loads_batch(empty)
    with pytest.raises(TypeError):
        native.loads_batch("not bytes")


@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=300))
def test_int64_arrays_of_ints_round_trip_as_numpy_writes_them(ints):
    data = native.pack_int64(ints)
    assert data == np.array(ints, dtype=np.int64).tobytes()
    assert native.unpack_int64(data) == ints
    assert native.unpack_int64(memoryview(b"x" + data)[1:]) == ints
    assert native.pack_int64(tuple(ints)) == data


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, True, 1.0, None, np.int64(3), "1"])
def test_pack_int64_refuses_what_is_not_an_int64_int(bad):
    """Only exact ints in range: anything else (a bool, a float, a numpy integer, a big int) is
    left to the caller's general path, so it can travel as it is."""
    assert native.pack_int64([1, 2, bad, 4]) is None
    assert native.pack_int64([bad]) is None


def test_unpack_int64_shares_one_int_per_run_of_equal_values():
    ints = [5000] * 4 + [5001] * 3 + [5000] + [-(2**63)] * 2
    out = native.unpack_int64(native.pack_int64(ints))
    assert out == ints
    assert out[0] is out[3] and out[4] is out[6] and out[7] is not out[0] and out[8] is out[9]
    assert native.unpack_int64(b"") == [] and native.pack_int64([]) == b""
    with pytest.raises(ValueError, match="multiple of 8"):
        native.unpack_int64(b"\x00" * 12)
    with pytest.raises(TypeError):
        native.unpack_int64("not bytes")
