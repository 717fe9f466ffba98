"""Window aggregation kernels, native and pure-Python reference side by side, plus Flink scenarios."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flinkcore._core import window_kernels as native
from flinkcore._core._reference import window_kernels as ref

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
ALL_AGGS = [("sum", 0), ("count", 0), ("min", 0), ("max", 0), ("mean", 0), ("first", 0), ("last", 0)]
wk = pytest.mark.parametrize("m", [native, ref], ids=["native", "reference"])


def as_rows(out: dict) -> list:
    """Fired columns as a list of tuples, NaN made comparable."""
    names = list(out)
    cols = [out[n].tolist() for n in names]
    return [
        tuple("nan" if isinstance(v, float) and v != v else v for v in row) for row in zip(*cols, strict=True)
    ]


def assert_same_fire(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        if a[name].dtype.kind == "f":
            np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@wk
def test_tumbling_sum_count_and_fire_order(m):
    t = m.WindowAggTable(1000, 1000, 0, [("sum", 0), ("count", None, "n")])
    keys = np.array([2, 1, 2, 1, 3], dtype=np.int64)
    ts = np.array([10, 999, 1000, -1, 1500], dtype=np.int64)
    vals = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert t.update(keys, ts, [vals]) == 0
    assert len(t) == 5  # (2,0) (1,0) (2,1000) (1,-1000) (3,1000)
    out = t.fire(998)
    assert as_rows(out) == [(1, -1000, 0, 4.0, 1)]  # window [-1000, 0): floor for negative ts
    out = t.fire(999)
    assert list(out) == ["key", "window_start", "window_end", "sum_0", "n"]
    assert as_rows(out) == [(1, 0, 1000, 2.0, 1), (2, 0, 1000, 1.0, 1)]
    assert len(t) == 2
    assert as_rows(t.fire(INT64_MAX)) == [(2, 1000, 2000, 3.0, 1), (3, 1000, 2000, 5.0, 1)]
    assert len(t) == 0 and len(t.fire(INT64_MAX)["key"]) == 0


@wk
def test_offset_and_sliding_assignment(m):
    # SlidingEventTimeWindows.of(size=10, slide=5, offset=2): starts are 2 mod 5;
    # ts 13 is in [7, 17) and [12, 22)
    t = m.WindowAggTable(10, 5, 2, [("count", None, "n")])
    t.update(np.array([7]), np.array([13]), [])
    out = t.fire(INT64_MAX)
    assert out["window_start"].tolist() == [7, 12] and out["window_end"].tolist() == [17, 22]
    assert m.window_start(13, 2, 5) == 12 and m.window_start(11, 2, 5) == 7 and m.window_start(-1, 0, 5) == -5
    assert m.window_start(-3, 2, 5) == -3 and m.window_start(-4, 2, 5) == -8


@wk
def test_sliding_size_not_multiple_of_slide(m):
    t = m.WindowAggTable(10, 4, 0, [("count", None, "n")])
    t.update(np.array([1]), np.array([9]), [])
    # starts 8, 4, 0 (start > 9 - 10): three windows
    assert t.fire(INT64_MAX)["window_start"].tolist() == [0, 4, 8]


@wk
def test_java_min_max_and_nan(m):
    t = m.WindowAggTable(
        10, 10, 0, [("min", 0), ("max", 0), ("sum", 0), ("mean", 0), ("first", 0), ("last", 0)]
    )
    vals = np.array([1.0, np.nan, -3.0, 0.0, -0.0])
    t.update(np.zeros(5, dtype=np.int64), np.arange(5), [vals])
    t.update(np.ones(2, dtype=np.int64), np.arange(2), [np.array([0.0, -0.0])])
    out = t.fire(100)
    assert np.isnan(out["min_0"][0]) and np.isnan(out["max_0"][0]) and np.isnan(out["sum_0"][0])
    assert np.isnan(out["mean_0"][0])
    assert out["first_0"][0] == 1.0 and out["last_0"][0] == 0.0 and np.signbit(out["last_0"][0])
    assert np.signbit(out["min_0"][1]) and not np.signbit(out["max_0"][1])  # Math.min(0.0, -0.0) == -0.0


@wk
def test_int64_extreme_timestamps(m):
    t = m.WindowAggTable(1000, 1000, 0, [("count", None, "n")])
    t.update(np.array([1, 2]), np.array([INT64_MIN, INT64_MAX]), [])
    lo = t.fire(INT64_MIN + 1000)
    assert lo["window_start"].tolist() == [INT64_MIN] and lo["key"].tolist() == [1]
    hi = t.fire(INT64_MAX)
    assert hi["key"].tolist() == [2] and hi["window_end"].tolist() == [INT64_MAX]  # saturated end
    assert len(t) == 0


@wk
def test_lateness_drop_side_output_and_late_firing(m):
    t = m.WindowAggTable(10, 10, 0, [("sum", 0)], allowed_lateness=5)
    t.update(np.array([1]), np.array([3]), [np.array([1.0])])
    assert as_rows(t.fire(9)) == [(1, 0, 10, 1.0)]
    assert len(t) == 1  # kept for allowed lateness
    # watermark 12: window [0,10) max ts 9, cleanup 14 > 12: not late, re-fires with all contents
    late = t.update(np.array([1]), np.array([4]), [np.array([2.0])], watermark=12, return_late=True)
    assert late.tolist() == [False]
    assert as_rows(t.fire(12)) == [(1, 0, 10, 3.0)]
    assert as_rows(t.fire(13)) == []  # nothing new: no re-firing
    assert t.late_mask(np.array([4, 10]), 14).tolist() == [True, False]
    assert t.update(np.array([1, 1]), np.array([5, 11]), [np.array([9.0, 9.0])], watermark=14) == 1
    t.fire(14)
    assert len(t) == 1  # [0,10) cleaned up at 14; [10,20) holds the on-time record


@wk
def test_sliding_element_partly_late_goes_to_its_live_windows(m):
    t = m.WindowAggTable(10, 5, 0, [("count", None, "n")])
    # ts 7 belongs to [0,10) (late at wm 9) and [5,15) (live): not a late record
    assert t.update(np.array([1]), np.array([7]), [], watermark=9, return_late=True).tolist() == [False]
    assert t.fire(INT64_MAX)["window_start"].tolist() == [5]


@wk
def test_empty_inputs(m):
    t = m.WindowAggTable(10, 10, 0, ALL_AGGS[:2])
    assert t.update(np.array([], dtype=np.int64), np.array([], dtype=np.int64), [np.array([])]) == 0
    out = t.fire(INT64_MAX)
    assert all(len(v) == 0 for v in out.values()) and out["count_0"].dtype == np.int64
    s = m.SessionWindowTable(10, ALL_AGGS[:2])
    assert s.update([], [], [np.array([])]) == 0 and len(s.fire(INT64_MAX)["key"]) == 0


@wk
def test_bad_specs_raise(m):
    with pytest.raises(ValueError, match="size"):
        m.WindowAggTable(0, 10, 0, [])
    with pytest.raises(ValueError, match="unknown aggregate"):
        m.WindowAggTable(10, 10, 0, [("median", 0)])
    t = m.WindowAggTable(10, 10, 0, [("sum", 1)])
    with pytest.raises(ValueError, match="column"):
        t.update(np.array([1]), np.array([1]), [np.array([1.0])])
    with pytest.raises(ValueError, match="gap"):
        m.SessionWindowTable(0, [])


@wk
def test_snapshot_restore_and_rescale_filter(m):
    t = m.WindowAggTable(10, 10, 0, ALL_AGGS, allowed_lateness=3)
    keys = np.arange(100, dtype=np.int64) % 7
    ts = np.arange(100, dtype=np.int64)
    vals = np.sin(np.arange(100.0))
    t.update(keys, ts, [vals])
    t.fire(29)  # some windows fired and kept for lateness
    data = t.snapshot()
    r = m.WindowAggTable(10, 10, 0, ALL_AGGS, allowed_lateness=3)
    r.restore(data)
    assert len(r) == len(t)
    assert_same_fire(r.fire(INT64_MAX), t.fire(INT64_MAX))
    even = m.WindowAggTable(10, 10, 0, ALL_AGGS, allowed_lateness=3)
    even.restore(data, keep_keys=lambda k: k % 2 == 0)
    assert set(even.fire(INT64_MAX)["key"].tolist()) == {0, 2, 4, 6}
    other = m.WindowAggTable(20, 10, 0, ALL_AGGS, allowed_lateness=3)
    with pytest.raises(ValueError):
        other.restore(data)


def test_native_snapshot_rejects_corrupt_bytes():
    t = native.WindowAggTable(10, 10, 0, [("sum", 0)])
    t.update(np.array([1, 2]), np.array([1, 2]), [np.array([1.0, 2.0])])
    data = t.snapshot()
    for bad in (b"", data[:-1], data + b"\x00", b"XXXX" + data[4:], data[:-40] + b"\xff" * 40):
        with pytest.raises(ValueError):
            native.WindowAggTable(10, 10, 0, [("sum", 0)]).restore(bad)
    s = native.SessionWindowTable(10, [("sum", 0)])
    s.update(np.array([1]), np.array([1]), [np.array([1.0])])
    with pytest.raises(ValueError):
        native.SessionWindowTable(10, [("sum", 0)]).restore(s.snapshot()[:-3])
    with pytest.raises(ValueError):
        native.SessionWindowTable(10, [("sum", 0)]).restore(t.snapshot())


@wk
def test_sessions_merge_like_flink(m):
    s = m.SessionWindowTable(10, [("count", None, "n"), ("first", 0), ("last", 0), ("sum", 0)])
    s.update(np.array([1, 1, 1]), np.array([0, 30, 20]), [np.array([1.0, 2.0, 3.0])])
    # [0,10) alone; [30,40) and [20,30) touch: intersects() is inclusive, so they merge into [20,40)
    assert len(s) == 2
    s.update(np.array([1]), np.array([10]), [np.array([4.0])])  # [10,20) bridges all: one session
    assert len(s) == 1
    out = s.fire(INT64_MAX)
    assert as_rows(out) == [(1, 0, 40, 4, 1.0, 4.0, 10.0)]
    assert len(s) == 0


@wk
def test_sessions_fire_and_lateness(m):
    s = m.SessionWindowTable(5, [("count", None, "n")])
    s.update(np.array([1, 2]), np.array([0, 100]), [])
    assert as_rows(s.fire(4)) == [(1, 0, 5, 1)]
    assert len(s) == 1
    # key 1 at ts -1: [-1, 4) alone and late at wm 4 -> dropped; key 2 at ts 98 merges with [100,105)
    late = s.update(np.array([1, 2]), np.array([-1, 98]), [], watermark=4, return_late=True)
    assert late.tolist() == [True, False]
    assert as_rows(s.fire(INT64_MAX)) == [(2, 98, 105, 2)]


window_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("update"),
            st.lists(
                st.tuples(st.integers(0, 4), st.integers(-60, 60), st.floats(-100, 100, allow_nan=False)),
                max_size=30,
            ),
        ),
        st.tuples(st.just("fire"), st.integers(-70, 70)),
        st.tuples(st.just("snapshot")),
    ),
    max_size=12,
)


def _drive(make, script):
    a, b = make(native), make(ref)
    wm = INT64_MIN
    for op in script:
        if op[0] == "update":
            k = np.array([r[0] for r in op[1]], dtype=np.int64)
            t = np.array([r[1] for r in op[1]], dtype=np.int64)
            v = np.array([r[2] for r in op[1]], dtype=np.float64)
            la = a.update(k, t, [v], watermark=wm, return_late=True)
            lb = b.update(k, t, [v], watermark=wm, return_late=True)
            assert la.tolist() == lb.tolist()
            # the update's own pass finds the batch's largest timestamp (late records too)
            assert a.last_max_ts == (int(t.max()) if len(t) else INT64_MIN)
            assert a.last_late == int(lb.sum())
        elif op[0] == "fire":
            wm = max(wm, op[1])
            assert_same_fire(a.fire(wm), b.fire(wm))
        else:
            restored = make(native)
            restored.restore(a.snapshot())
            a = restored
        assert len(a) == len(b)
    assert_same_fire(a.fire(INT64_MAX), b.fire(INT64_MAX))


@given(
    window_ops,
    st.sampled_from([(10, 10, 0), (10, 5, 0), (7, 3, 2), (1, 1, 0), (20, 10, -3)]),
    st.integers(0, 15),
)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_native_window_table_matches_reference(script, spec, lateness):
    size, slide, offset = spec
    _drive(lambda m: m.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=lateness), script)


@given(window_ops, st.integers(1, 15), st.integers(0, 10))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_native_session_table_matches_reference(script, gap, lateness):
    _drive(lambda m: m.SessionWindowTable(gap, ALL_AGGS, allowed_lateness=lateness), script)


def test_huge_batch_matches_numpy():
    n = 2_000_000
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 10_000, n, dtype=np.int64)
    ts = np.arange(n, dtype=np.int64) // 1000
    vals = rng.random(n)
    t = native.WindowAggTable(1000, 1000, 0, [("sum", 0), ("count", None, "n")])
    for i in range(0, n, 65536):
        t.update(keys[i : i + 65536], ts[i : i + 65536], [vals[i : i + 65536]])
    out = t.fire(INT64_MAX)
    win = ts // 1000
    order = np.lexsort((keys, win))
    pairs = np.stack([win[order], keys[order]])
    uniq, idx = np.unique(pairs, axis=1, return_index=True)
    assert out["n"].sum() == n and len(out["key"]) == uniq.shape[1]
    np.testing.assert_array_equal(out["key"], uniq[1])
    sums = np.add.reduceat(vals[order], idx)
    np.testing.assert_allclose(out["sum_0"], sums, rtol=1e-9)


@pytest.mark.parametrize("m", [native], ids=["native"])
def test_many_large_fires_match_numpy(m):
    """Sparse windows: every fire emits thousands of rows (the radix-sorted path), many times over."""
    n = 300_000
    rng = np.random.default_rng(11)
    keys = rng.integers(-5_000, 5_000, n, dtype=np.int64)
    ts = np.arange(n, dtype=np.int64) // 10 - rng.integers(0, 30, n)
    vals = rng.random(n)
    t = m.WindowAggTable(100, 100, 0, [("sum", 0), ("count", None, "n")])
    got = []
    for i in range(0, n, 20_000):
        t.update(keys[i : i + 20_000], ts[i : i + 20_000], [vals[i : i + 20_000]])
        wm = int(ts[: i + 20_000].max()) - 40
        got.append(t.fire(wm))
    got.append(t.fire(INT64_MAX))
    out = {k: np.concatenate([g[k] for g in got]) for k in got[0]}
    assert len(out["key"]) > 10 * 512
    starts = ts - ts % 100
    order = np.lexsort((keys, starts))
    pairs = np.stack([starts[order], keys[order]])
    uniq, idx = np.unique(pairs, axis=1, return_index=True)
    np.testing.assert_array_equal(out["window_start"], uniq[0])
    np.testing.assert_array_equal(out["key"], uniq[1])
    np.testing.assert_allclose(out["sum_0"], np.add.reduceat(vals[order], idx), rtol=1e-9)


def test_a_second_thread_is_refused_while_the_table_runs_without_the_gil():
    import threading

    n = 4_000_000
    t = native.WindowAggTable(1000, 500, 0, [("sum", 0)])
    keys = np.arange(n, dtype=np.int64) % 100_000
    ts = np.arange(n, dtype=np.int64)
    vals = np.ones(n)
    worker = threading.Thread(target=t.update, args=(keys, ts, [vals]))
    worker.start()
    refused = False
    while worker.is_alive() and not refused:
        try:
            t.fire(-1)
            t.snapshot()
        except RuntimeError as e:
            refused = "another thread" in str(e)
    worker.join()
    if not refused:
        pytest.skip("the update finished before the main thread got to run")
    assert len(t.fire(2**63 - 1)["key"]) > 0  # the table is intact after the refusal


# -- the native table's two layouts: dense arrays per window while keys are small non-negative ints,
# the hash table from the first key that is not. Same results, order and snapshots either way.

DENSE_SPECS = [(10, 10, 0), (10, 5, 0), (7, 3, 2), (1, 1, 0)]


def _batches(rng, n_batches, key_lo, key_hi, size=200):
    out = []
    t0 = 0
    for _ in range(n_batches):
        k = rng.integers(key_lo, key_hi, size, dtype=np.int64)
        t = t0 + rng.integers(-15, 40, size, dtype=np.int64)
        t0 += 30
        out.append((k, t, rng.normal(size=size)))
    return out


def _run_both(spec, batches, lateness=2, snapshot_at=None):
    """Feed native and reference alike; fire after each batch; returns the native table."""
    size, slide, offset = spec
    a = native.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=lateness)
    b = ref.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=lateness)
    layouts = []
    for i, (k, t, v) in enumerate(batches):
        wm = int(t.max()) - 20
        la = a.update(k, t, [v], watermark=wm - 10, return_late=True)
        lb = b.update(k, t, [v], watermark=wm - 10, return_late=True)
        assert la.tolist() == lb.tolist()
        layouts.append(a.layout)
        if snapshot_at is not None and i == snapshot_at:
            restored = native.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=lateness)
            restored.restore(a.snapshot())
            assert len(restored) == len(a) and sorted(_records(restored.snapshot())) == sorted(
                _records(a.snapshot())
            )
            a = restored
        assert_same_fire(a.fire(wm), b.fire(wm))
        assert len(a) == len(b)
    assert_same_fire(a.fire(INT64_MAX), b.fire(INT64_MAX))
    return a, layouts


@pytest.mark.parametrize("spec", DENSE_SPECS)
def test_dense_layout_matches_reference(spec):
    rng = np.random.default_rng(3)
    t, layouts = _run_both(spec, _batches(rng, 12, 0, 3000), snapshot_at=5)
    assert set(layouts) == {"dense"}


@pytest.mark.parametrize("spec", DENSE_SPECS)
@pytest.mark.parametrize(
    "late_keys",
    [(-5, 5), (2**40, 2**40 + 3), (2**62, 2**62 + 1), (INT64_MIN, INT64_MIN + 2)],
    ids=["negative", "huge", "very-huge", "int64-min"],
)
def test_switch_to_hash_mid_stream_matches_reference(spec, late_keys):
    """Dense first, then a batch with a negative / huge key: every open window (some fired and kept
    for lateness) moves to the hash table, and keys after the switch (small ones too) land there."""
    rng = np.random.default_rng(5)
    batches = _batches(rng, 5, 0, 500)
    k, t, v = _batches(rng, 1, 0, 500)[0]
    k[::7] = rng.integers(*late_keys, len(k[::7]), dtype=np.int64)
    batches.append((k, t + 150, v))
    batches += [(kk, tt + 180, vv) for kk, tt, vv in _batches(rng, 4, 0, 500)]
    _, layouts = _run_both(spec, batches, snapshot_at=7)
    # the restore at batch 7 picks its layout from the keys it holds then
    assert layouts[:5] == ["dense"] * 5 and layouts[5:7] == ["hash"] * 2


def test_sparse_keys_go_to_hash_and_dense_ones_stay():
    t = native.WindowAggTable(10, 10, 0, [("count", None, "n")])
    t.update(np.array([0, 5_000_000]), np.array([1, 2]), [])  # beyond the dense key bound
    assert t.layout == "hash"
    t = native.WindowAggTable(10, 10, 0, [("count", None, "n")])
    t.update(np.array([3, 1_000_000]), np.array([1, 2]), [])  # in bound, but 2 keys in a million slots
    assert t.layout == "hash"
    assert as_rows(t.fire(INT64_MAX)) == [(3, 0, 10, 1), (1_000_000, 0, 10, 1)]
    t = native.WindowAggTable(10, 10, 0, [("count", None, "n")])
    t.update(np.arange(20_000, dtype=np.int64), np.zeros(20_000, dtype=np.int64), [])
    assert t.layout == "dense"
    wide = native.WindowAggTable(100, 1, 0, [("count", None, "n")])  # 100 windows per record
    wide.update(np.array([1]), np.array([5]), [])
    assert wide.layout == "hash"


@pytest.mark.parametrize("spec", DENSE_SPECS)
def test_snapshot_restore_across_layouts(spec):
    """A dense table's snapshot restores into a hash table and back (the bytes do not depend on the
    layout), merging into what is there; the kept keys of a restore decide its layout."""
    size, slide, offset = spec
    rng = np.random.default_rng(9)
    k, t, v = _batches(rng, 1, 0, 300)[0]
    dense = native.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=5)
    dense.update(k, t, [v])
    dense.fire(int(t.min()) + 10)
    hashed = native.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=5)
    hashed.update(np.array([-1]), np.array([0]), [np.array([1.0])])
    assert dense.layout == "dense" and hashed.layout == "hash"
    expect = ref.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=5)
    expect.update(k, t, [v])
    expect.fire(int(t.min()) + 10)

    into_hash = native.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=5)
    into_hash.update(np.array([-1]), np.array([0]), [np.array([1.0])])
    into_hash.restore(dense.snapshot(), clear=False)  # merged into a hash table
    assert into_hash.layout == "hash" and len(into_hash) == len(dense) + len(hashed)
    back = native.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=5)
    back.restore(into_hash.snapshot(), keep_keys=lambda keys: keys >= 0)  # hash snapshot -> dense
    assert back.layout == "dense"
    assert sorted(_records(back.snapshot())) == sorted(_records(dense.snapshot()))
    assert_same_fire(back.fire(INT64_MAX), expect.fire(INT64_MAX))

    # restoring a snapshot with a negative key into a dense table moves it to hash, merged
    both = native.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=5)
    both.restore(dense.snapshot())
    both.restore(hashed.snapshot(), clear=False)
    assert both.layout == "hash"
    assert len(both) == len(dense) + len(hashed)
    only_small = native.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=5)
    only_small.restore(hashed.snapshot(), keep_keys=lambda keys: keys >= 0)
    assert only_small.layout == "dense" and len(only_small) == 0


def _records(snapshot: bytes) -> list:
    """The window records of a WindowAggTable snapshot (past its header) as byte strings."""
    n = len(ALL_AGGS)
    rec = 32 + 8 * n  # key, start, count, state, one float64 per aggregate
    body = snapshot[8 + 4 * 8 + 8 + 8 * n + 8 :]  # magic+version, 4 params, the aggregates, the count
    assert len(body) % rec == 0
    return [body[i : i + rec] for i in range(0, len(body), rec)]


@given(window_ops, st.sampled_from([(10, 10, 0), (1, 1, 0), (7, 7, 3)]), st.integers(0, 15))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_tumbling_several_sums_fast_path_matches_reference(script, spec, lateness):
    """Tumbling windows whose aggregates are all sums, means and counts, several of them (the
    global table of two-phase windows: sum and count partials), take the run-per-window loop."""
    size, slide, offset = spec
    aggs = [("sum", 0, "s"), ("mean", 0, "m"), ("count", 0, "c"), ("sum", 0, "s2")]
    _drive(lambda m: m.WindowAggTable(size, slide, offset, aggs, allowed_lateness=lateness), script)


@pytest.mark.parametrize("spec", DENSE_SPECS)
def test_keys_outside_the_arrays_mid_batch(spec):
    """The dense layout checks each key in the update's pass: a batch whose later rows have keys
    past the arrays (they grow from that row on) or a negative key (every window moves to the
    hash table from that row on), with late rows between, matches the reference; the late mask,
    the late count and the batch's largest timestamp too."""
    size, slide, offset = spec
    rng = np.random.default_rng(11)
    a = native.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=2)
    b = ref.WindowAggTable(size, slide, offset, ALL_AGGS, allowed_lateness=2)
    wm = INT64_MIN
    for i, hi_key in enumerate([50, 400, 5000, 70_000, -3]):
        n = 300
        k = rng.integers(0, 40, n, dtype=np.int64)
        k[n // 3 :: 5] = rng.integers(min(hi_key, 0), max(hi_key, 1), len(k[n // 3 :: 5]), dtype=np.int64)
        t = 100 * i + rng.integers(-60, 40, n, dtype=np.int64)  # some rows late at wm
        v = rng.normal(size=n)
        for return_late in (True, False):
            if not return_late:
                k, t = k[::-1].copy(), t[::-1].copy()  # the next batch: the same rows reversed
                v = v[::-1].copy()
            got = a.update(k, t, [v], watermark=wm, return_late=return_late)
            want = b.update(k, t, [v], watermark=wm, return_late=True)
            if return_late:
                assert got.tolist() == want.tolist()
            else:
                assert got == int(want.sum())
            assert a.last_late == int(want.sum()) and a.last_max_ts == int(t.max())
            assert a.late_mask(t, wm).tolist() == want.tolist()
        wm = 100 * i
        assert_same_fire(a.fire(wm), b.fire(wm))
        assert len(a) == len(b)
    assert a.layout == "hash"
    assert_same_fire(a.fire(INT64_MAX), b.fire(INT64_MAX))


def test_session_table_reports_batch_max_and_late_count():
    s = native.SessionWindowTable(5, [("count", None, "n")])
    assert s.update(np.array([1, 2]), np.array([0, 100]), []) == 0
    assert s.last_max_ts == 100 and s.last_late == 0
    s.fire(50)
    late = s.update(np.array([1, 2, 3]), np.array([-1, 98, 7]), [], watermark=50, return_late=True)
    assert late.tolist() == [True, False, True] and s.last_late == 2 and s.last_max_ts == 98
    s.update(np.array([], dtype=np.int64), np.array([], dtype=np.int64), [])
    assert s.last_max_ts == INT64_MIN and s.last_late == 0


@pytest.mark.parametrize(
    "aggs", [[("sum", 0), ("count", 0)], [("count", 0), ("mean", 0)], [("count", None, "n")]]
)
def test_sum_and_count_snapshots_do_not_depend_on_the_layout(aggs):
    """The dense layout's fast path (sums and counts only) keeps a count's unused accumulator as
    the hash layout does, so the same windows give the same snapshot records in either layout."""
    rng = np.random.default_rng(4)
    k, t, v = _batches(rng, 1, 0, 50)[0]
    dense = native.WindowAggTable(10, 10, 0, aggs)
    hashed = native.WindowAggTable(10, 10, 0, aggs)
    dense.update(k, t, [v])
    hashed.update(np.array([-1]), np.array([0]), [np.array([1.0])])  # the hash layout from here on
    hashed.update(k, t, [v])
    assert dense.layout == "dense" and hashed.layout == "hash"
    n = len(aggs)
    rec = 32 + 8 * n
    body = lambda s: s[8 + 4 * 8 + 8 + 8 * n + 8 :]  # noqa: E731
    records = lambda s: sorted(body(s)[i : i + rec] for i in range(0, len(body(s)), rec))  # noqa: E731
    minus_one = [r for r in records(hashed.snapshot()) if int.from_bytes(r[:8], "little", signed=True) == -1]
    assert records(dense.snapshot()) == sorted(set(records(hashed.snapshot())) - set(minus_one))


@pytest.mark.parametrize("layout", ["dense", "hash"])
@pytest.mark.parametrize(
    "aggs",
    [
        [("sum", 0, "s"), ("count", None, "n")],  # the dense fire's own loop for sum + count
        [("sum", 0, "s"), ("sum", 1, "c")],  # ... and for sum + a sum of count partials
        [("count", None, "n"), ("mean", 0, "m"), ("sum", 1, "c"), ("max", 0, "x")],
    ],
    ids=["sum-count", "sum-sum", "mixed"],
)
def test_fire_column_options_match_the_full_fire(layout, aggs):
    """A fire that leaves out key/start/end, adds max_ts or writes sums as int64 gives the full
    fire's columns otherwise: the same rows in the same order, the int64 sums as astype gives them,
    and the table's state afterwards (its snapshot, its next fires) is the same."""
    rng = np.random.default_rng(11)
    k, t, v = _batches(rng, 1, 0, 300, size=2000)[0]
    counts = rng.integers(1, 2**40, len(k)).astype(np.float64)
    counts[::5] = -counts[::5] - 0.75  # truncated toward zero, as astype does
    tables = []
    for _ in range(2):
        tab = native.WindowAggTable(10, 5, 0, aggs, allowed_lateness=20)
        if layout == "hash":
            tab.update(np.array([-1]), np.array([0]), [np.array([1.0]), np.array([1.0])])
        tab.update(k, t, [v, counts])
        assert tab.layout == layout
        tables.append(tab)
    full, part = tables
    int_sums = tuple(name for func, col, name in full.aggs if func == "sum" and col == 1)
    for wm in (100, 400, INT64_MAX):
        a = full.fire(wm)
        b = part.fire(wm, keys=wm != 100, starts=False, ends=wm == 400, max_ts=True, int_sums=int_sums)
        assert list(b) == [
            *(["key"] if wm != 100 else []),
            *(["window_end"] if wm == 400 else []),
            "max_ts",
            *(name for _, _, name in full.aggs),
        ]
        np.testing.assert_array_equal(b["max_ts"], a["window_end"] - 1)
        for name, col in b.items():
            if name == "max_ts":
                continue
            want = a[name].astype(np.int64) if name in int_sums else a[name]
            assert col.dtype == want.dtype, name
            np.testing.assert_array_equal(col, want, err_msg=name)
        assert full.snapshot() == part.snapshot()
        full.update(k, t + 300, [v, counts], watermark=wm)
        part.update(k, t + 300, [v, counts], watermark=wm)


def test_fire_int_sums_must_name_sums():
    t = native.WindowAggTable(10, 10, 0, [("count", None, "n"), ("sum", 0, "s")])
    with pytest.raises(ValueError, match="only sums"):
        t.fire(INT64_MAX, int_sums=("n",))
    assert t.fire(INT64_MAX, int_sums=("s", "unknown"))["s"].dtype == np.int64
