"""The columnar window path against the per-record window operator on the same input."""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow as pa
import pytest

from flinkcore.common.types import Row
from flinkcore.common.watermark import Watermark
from flinkcore.datastream.window import TimeWindow
from flinkcore.datastream.windowed_stream import NamedAggregate
from flinkcore.runtime.operators.window import (
    AlignedWindowOperator,
    InternalWindowFunction,
    SessionWindowOperator,
    WindowStateSpec,
)
from flinkcore.runtime.operators.window_columnar import (
    ArrowWindowAggTable,
    ColumnarSessionOperator,
    ColumnarWindowOperator,
    NativeWindowTable,
    field_of_key_selector,
    native_available,
)
from flinkcore.runtime.testing import KeyedOneInputStreamOperatorTestHarness
from flinkcore.state.key_groups import key_group_of

MAX = (1 << 63) - 1
NAMED = {
    "total": ("value", "sum"),
    "n": ("value", "count"),
    "lo": ("value", "min"),
    "hi": ("value", "max"),
    "avg": ("value", "mean"),
    "first": ("value", "first"),
    "last": ("value", "last"),
    "w": ("weight", "sum"),
}
FIELDS = ["key", "window_start", "window_end", *NAMED]


def make_row(key, start, end, values):
    return Row._named(FIELDS, (key, start, end, *values))


def columnar_op(size, slide, offset, native=False):
    aggs = [(name, func, col) for name, (col, func) in NAMED.items()]
    factory = NativeWindowTable if native else None
    return ColumnarWindowOperator(
        size, slide, offset, "key", aggs, make_row, late_data_tag="late", table_factory=factory
    )


TABLES = pytest.mark.parametrize(
    "native",
    [
        False,
        pytest.param(True, marks=pytest.mark.skipif(not native_available(), reason="native core not built")),
    ],
    ids=["arrow", "native"],
)


def record_op(size, slide, offset):
    agg = NamedAggregate(NAMED)

    def fn(key, window, ctx, values):
        return (make_row(key, window.start, window.end, values),)

    spec = WindowStateSpec("aggregating", aggregate=agg)
    return AlignedWindowOperator(
        size, slide, offset, spec, InternalWindowFunction(fn), TimeWindow, late_data_tag="late"
    )


def run(op, batches, as_arrow):
    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda r: r["key"])
    h.open()
    for kind, payload in batches:
        if kind == "w":
            h.process_watermark(payload)
        else:
            rows, ts = payload
            if as_arrow:
                batch = pa.RecordBatch.from_pylist([r.as_dict() for r in rows])
                op.process_batch(batch, np.asarray(ts, dtype=np.int64))
            else:
                op.process_batch(rows, ts)
    epochs = [[]]
    for item in h.get_output():
        if isinstance(item, Watermark):
            epochs.append([])
        else:
            epochs[-1].append((tuple(item.value), item.timestamp))
    return [sorted(e) for e in epochs], sorted(tuple(r) for r in h.get_side_output_values("late"))


def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


KEYSETS = {
    "dense": [0, 1, 2, 3, 4],
    "sparse": [-3, 7, 1 << 40, -(1 << 33), 12],
    "mixed": [0, 1, 2, 1 << 41, -1],  # windows switch between dense and hashed accumulation
}


def random_batches(rng, n_batches, keys=KEYSETS["dense"], mixed=False):
    out, t = [], 0
    for _ in range(n_batches):
        rows, ts = [], []
        batch_keys = keys[:3] if mixed and rng.random() < 0.5 else keys
        for _ in range(rng.randint(1, 40)):
            t += rng.randint(0, 3)
            stamp = t - rng.randint(0, 20)
            rows.append(Row(key=rng.choice(batch_keys), value=float(rng.randint(-50, 50)) / 4, weight=1.0))
            ts.append(stamp)
        out.append(("b", (rows, ts)))
        if rng.random() < 0.5:
            out.append(("w", t - rng.randint(0, 15)))
    out.append(("w", MAX))
    return out


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("keyset", sorted(KEYSETS))
@pytest.mark.parametrize("as_arrow", [False, True], ids=["rows", "batches"])
@TABLES
def test_columnar_matches_per_record_path(seed, keyset, as_arrow, native):
    rng = random.Random(seed)
    size = rng.randint(1, 20)
    slide = rng.choice([size, rng.randint(1, size)])
    offset = rng.randint(-slide + 1, slide - 1)
    batches = random_batches(rng, 30, KEYSETS[keyset], mixed=keyset == "mixed")
    got_epochs, got_late = run(columnar_op(size, slide, offset, native), batches, as_arrow)
    want_epochs, want_late = run(record_op(size, slide, offset), batches, False)
    assert got_late == want_late
    assert len(got_epochs) == len(want_epochs)
    for g, w in zip(got_epochs, want_epochs, strict=True):
        assert len(g) == len(w)
        for (gv, gt), (wv, wt) in zip(g, w, strict=True):
            assert gt == wt
            assert all(close(x, y) for x, y in zip(gv, wv, strict=True)), (gv, wv)


def test_snapshot_restore_and_rescale():
    rows = [Row(key=k, value=float(k), weight=1.0) for k in range(50)]
    h = KeyedOneInputStreamOperatorTestHarness(columnar_op(10, 10, 0), key_selector=lambda r: r["key"])
    h.open()
    h.operator.process_batch(rows, [5] * 50)
    snap = h.snapshot()
    got = []
    for sub in range(2):
        hi = KeyedOneInputStreamOperatorTestHarness(
            columnar_op(10, 10, 0), key_selector=lambda r: r["key"], parallelism=2, subtask_index=sub
        )
        hi.initialize_state(snap)
        hi.open()
        hi.process_watermark(MAX)
        got.extend((r["key"], r["total"], r["n"]) for r in hi.extract_output_values())
    assert sorted(got) == [(k, float(k), 1) for k in range(50)]


def test_table_fires_in_window_order_and_frees_windows():
    t = ArrowWindowAggTable(10, 10, 0, [("s", "sum", "v")])
    t.update(np.array([1, 2, 1]), np.array([3, 15, 25]), {"v": np.array([1.0, 2.0, 3.0])})
    fired = t.fire(19)
    assert [(s, e, k.tolist(), r["s"].tolist()) for s, e, k, r in fired] == [
        (0, 10, [1], [1.0]),
        (10, 20, [2], [2.0]),
    ]
    assert t.pending_starts() == [20]


def test_key_field_of_itemgetter():
    import operator

    assert field_of_key_selector(operator.itemgetter("key")) == "key"
    assert field_of_key_selector(operator.itemgetter(0)) == 0
    assert field_of_key_selector(lambda r: r[0]) is None
    assert field_of_key_selector(operator.itemgetter(0, 1)) is None


# ---- sessions --------------------------------------------------------------------------------

SESSION_NAMED = {
    "total": ("value", "sum"),
    "n": ("value", "count"),
    "lo": ("value", "min"),
    "hi": ("value", "max"),
    "avg": ("value", "mean"),
    "w": ("weight", "sum"),
}
SESSION_FIELDS = ["key", "window_start", "window_end", *SESSION_NAMED]


def make_session_row(key, start, end, values):
    return Row._named(SESSION_FIELDS, (key, start, end, *values))


def columnar_session(gap, native=False):
    aggs = [(name, func, col) for name, (col, func) in SESSION_NAMED.items()]
    if native:

        def table(size, slide, offset, aggs):
            return NativeWindowTable(size, slide, offset, aggs, gap=gap)

        return ColumnarWindowOperator(gap, gap, 0, "key", aggs, make_session_row, "late", table_factory=table)
    return ColumnarSessionOperator(gap, "key", aggs, make_session_row, late_data_tag="late")


def record_session(gap):
    agg = NamedAggregate(SESSION_NAMED)

    def fn(key, window, ctx, values):
        return (make_session_row(key, window.start, window.end, values),)

    spec = WindowStateSpec("aggregating", aggregate=agg)
    return SessionWindowOperator(gap, spec, InternalWindowFunction(fn), TimeWindow, late_data_tag="late")


def compare(got, want):
    got_epochs, got_late = got
    want_epochs, want_late = want
    assert got_late == want_late
    assert len(got_epochs) == len(want_epochs)
    for g, w in zip(got_epochs, want_epochs, strict=True):
        assert len(g) == len(w), (g, w)
        for (gv, gt), (wv, wt) in zip(g, w, strict=True):
            assert gt == wt
            assert all(close(x, y) for x, y in zip(gv, wv, strict=True)), (gv, wv)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("keyset", ["dense", "sparse"])
@pytest.mark.parametrize("as_arrow", [False, True], ids=["rows", "batches"])
@TABLES
def test_columnar_sessions_match_per_record_sessions(seed, keyset, as_arrow, native):
    rng = random.Random(100 + seed)
    gap = rng.randint(1, 12)
    batches = random_batches(rng, 30, KEYSETS[keyset])
    compare(run(columnar_session(gap, native), batches, as_arrow), run(record_session(gap), batches, False))


def test_columnar_sessions_snapshot_restore_and_memory():
    rows = [Row(key=k % 10, value=1.0, weight=1.0) for k in range(100)]
    h = KeyedOneInputStreamOperatorTestHarness(columnar_session(15), key_selector=lambda r: r["key"])
    h.open()
    h.operator.process_batch(rows, list(range(100)))
    snap = h.snapshot()
    got = []
    for sub in range(2):
        hi = KeyedOneInputStreamOperatorTestHarness(
            columnar_session(15), key_selector=lambda r: r["key"], parallelism=2, subtask_index=sub
        )
        hi.initialize_state(snap)
        hi.open()
        kg_lo, kg_hi = hi.state_backend.key_group_range
        if kg_lo <= key_group_of(3, 128) <= kg_hi:  # the record goes to the instance owning key 3
            hi.operator.process_batch([Row(key=3, value=1.0, weight=1.0)], [101])
        hi.process_watermark(MAX)
        got.extend((r["key"], r["window_start"], r["window_end"], r["n"]) for r in hi.extract_output_values())
        assert hi.operator.open_sessions() == 0
    # key k has records at k, k + 10, ..., k + 90: one session [k, k + 105); key 3 gets one more
    assert sorted(got) == sorted([(k, k, k + 105, 10) for k in range(10) if k != 3] + [(3, 3, 116, 11)])


@pytest.mark.parametrize("hashed", [False, True], ids=["dense", "hash"])
def test_partials_table_fires_count_sums_as_int64_columns(hashed):
    """The global window's table of partials: a count's partial sums come out int64 (written so
    by the native fire), equal to the one-phase count, through fire and fire_columns alike; the
    columns a caller leaves out are not there and max_ts is each window's end - 1."""
    from flinkcore.runtime.operators.local_agg import _NativePartialsTable

    rng = np.random.default_rng(2)
    keys = rng.integers(0, 50, 400).astype(np.int64)
    ts = rng.integers(0, 3_000, 400).astype(np.int64)
    cols = {"p0": rng.random(400), "p1": rng.integers(1, 2**33, 400)}
    if hashed:
        keys[0] = -3  # a key the dense arrays cannot hold: the hash layout
    aggs = [("total", "sum", "p0"), ("n", "sum", "p1")]
    tables = [_NativePartialsTable(1000, 1000, 0, aggs, ["n"]) for _ in range(2)]
    for t in tables:
        t.update(keys, ts, cols)
    fired = tables[0].fire(3_000)
    out = tables[1].fire_columns(3_000, starts=False, ends=False, max_ts=True)
    assert sorted(out) == ["key", "max_ts", "n", "total"]
    assert out["n"].dtype == np.int64 and all(r["n"].dtype == np.int64 for *_, r in fired)
    np.testing.assert_array_equal(out["n"], np.concatenate([r["n"] for *_, r in fired]))
    np.testing.assert_array_equal(out["key"], np.concatenate([k for _, _, k, _ in fired]))
    np.testing.assert_array_equal(out["max_ts"], np.concatenate([[e - 1] * len(k) for _, e, k, _ in fired]))
    want = {}
    for k, s, n in zip(keys.tolist(), ts.tolist(), cols["p1"].tolist(), strict=True):
        want[(k, s // 1000)] = want.get((k, s // 1000), 0) + n
    rows = zip(out["key"].tolist(), out["max_ts"].tolist(), out["n"].tolist(), strict=True)
    got = {(k, m // 1000): n for k, m, n in rows}
    assert got == want
