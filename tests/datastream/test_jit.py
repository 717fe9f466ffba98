"""flinkcore.jit: a numeric filter compiled over columns on a typed stream gives what the same
function gives per record (untyped stream, and without numba)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import flinkcore
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.jit import JitFunction, numba_available


def env():
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(1)
    return e


@flinkcore.jit
def even_and_big(key, value):
    return key % 2 == 0 and value > 0.25


def data(n=20_000):
    rng = np.random.default_rng(7)
    key = rng.integers(-50, 50, n, dtype=np.int64)
    value = rng.random(n)
    ts = np.arange(n, dtype=np.int64)
    return key, value, ts


def run_typed(fn, key, value, ts):
    table = pa.Table.from_batches(
        pa.table({"key": key, "value": value, "ts": ts}).to_batches(max_chunksize=3000)
    )
    return [tuple(r) for r in env().from_arrow(table).filter(fn).execute_and_collect()]


def expected(key, value, ts):
    return [
        (k, v, t)
        for k, v, t in zip(key.tolist(), value.tolist(), ts.tolist(), strict=True)
        if k % 2 == 0 and v > 0.25
    ]


def test_jit_filter_per_record_on_an_untyped_stream():
    key, value, ts = data(3_000)
    rows = list(zip(key.tolist(), value.tolist(), ts.tolist(), strict=True))
    got = list(env().from_collection(rows).filter(even_and_big).execute_and_collect())
    assert got == expected(key, value, ts)
    assert isinstance(even_and_big, JitFunction) and even_and_big.params == ("key", "value")


def test_jit_filter_without_numba_gives_the_same_result(monkeypatch):
    import sys

    # flinkcore.jit (the attribute) is the decorator; the module is in sys.modules
    monkeypatch.setattr(sys.modules["flinkcore.jit"], "numba_available", lambda: False)
    key, value, ts = data()
    fn = flinkcore.jit(lambda key, value: key % 2 == 0 and value > 0.25)
    assert fn.columns_kernel() is None
    assert run_typed(fn, key, value, ts) == expected(key, value, ts)


@pytest.mark.skipif(not numba_available(), reason="numba (flinkcore[jit]) is not installed")
def test_jit_filter_compiled_over_columns():
    key, value, ts = data()
    fn = flinkcore.jit(lambda key, value: key % 2 == 0 and value > 0.25)
    assert fn.columns_kernel() is not None
    got = run_typed(fn, key, value, ts)
    assert got == expected(key, value, ts) and len(got) > 5_000
    assert fn.columns_kernel().types, "the ufunc was compiled for the batch's column types"


def test_jit_rejects_functions_it_cannot_map_to_fields():
    with pytest.raises(TypeError, match="one plain parameter per field"):
        flinkcore.jit(lambda *fields: True)
    with pytest.raises(TypeError, match="at least one field"):
        flinkcore.jit(lambda: True)


# -- map, key selector, timestamp assigner, AggregateFunction ------------------------------------

from flinkcore.common import Duration, Row  # noqa: E402
from flinkcore.common.time import Time  # noqa: E402
from flinkcore.common.watermark_strategy import WatermarkStrategy  # noqa: E402
from flinkcore.datastream.functions import AggregateFunction  # noqa: E402
from flinkcore.datastream.output_tag import OutputTag  # noqa: E402
from flinkcore.datastream.window import (  # noqa: E402
    EventTimeSessionWindows,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
)
from flinkcore.jit import JitCompileError  # noqa: E402
from flinkcore.runtime.operators import jit as jit_ops  # noqa: E402
from flinkcore.runtime.operators import window_columnar  # noqa: E402

needs_numba = pytest.mark.skipif(not numba_available(), reason="numba (flinkcore[jit]) is not installed")


def events(n=12_000, nkeys=60, seed=3):
    """Keys, values and timestamps with 10% of the records out of order by up to 30 ms."""
    rng = np.random.default_rng(seed)
    key = rng.integers(0, nkeys, n, dtype=np.int64)
    value = np.round(rng.random(n) * 10, 3)
    ts = np.arange(n, dtype=np.int64) // 10 - rng.integers(0, 30, n) * (rng.random(n) < 0.1)
    return key, value, ts


def typed(e, key, value, ts, rows=2_000):
    t = pa.table({"key": key, "value": value, "ts": ts})
    return e.from_arrow(pa.Table.from_batches(t.to_batches(max_chunksize=rows)))


def untyped(e, key, value, ts):
    """The same records as named Rows from a collection: the per-record path."""
    return e.from_collection(
        [Row(key=k, value=v, ts=t) for k, v, t in zip(key.tolist(), value.tolist(), ts.tolist(), strict=True)]
    )


@flinkcore.jit
def half_key(key):
    return key // 2


@flinkcore.jit
def double_ts(ts):
    return ts * 2


@flinkcore.jit
def rescale(key, value, ts):
    return key // 2, value * 2.0, ts * 2


@flinkcore.jit
class MeanAndCount(AggregateFunction):
    """An order-sensitive accumulator too (the last value seen), to check arrival order."""

    def create_accumulator(self):
        return (0.0, 0, -1.0)

    def add(self, value, accumulator):
        return (accumulator[0] + value.value, accumulator[1] + 1, value[1])

    def get_result(self, accumulator):
        return (accumulator[0] / accumulator[1], accumulator[1], accumulator[2])

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1], b[2])


class PlainMeanAndCount(AggregateFunction):
    """The same AggregateFunction without flinkcore.jit."""

    create_accumulator = MeanAndCount.create_accumulator
    add = MeanAndCount.add
    get_result = MeanAndCount.get_result
    merge = MeanAndCount.merge


@pytest.fixture
def spy(monkeypatch):
    """What the jit operators receive: record lists or column batches."""
    seen = []

    def wrap(cls, method):
        original = getattr(cls, method)

        def spying(self, values, *args):
            seen.append((cls.__name__, type(values).__name__))
            return original(self, values, *args)

        monkeypatch.setattr(cls, method, spying)

    wrap(jit_ops.JitMapOperator, "process_batch")
    wrap(window_columnar.ColumnarJitAggregateOperator, "process_batch")
    wrap(window_columnar.ColumnarJitSessionOperator, "process_batch")
    wrap(window_columnar.ColumnarWindowOperator, "_columns")
    return seen


def bounded(assigner):
    return WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(100)).with_timestamp_assigner(
        assigner
    )


def test_jit_map_returns_typed_columns_and_per_record_the_same_records(spy):
    """A jit map's records are what the function returns (tuples here), on every path; on a
    typed stream they travel as typed columns to the next jit function and the sink."""
    key, value, ts = events()
    keep = flinkcore.jit(lambda f0, f1: f0 % 3 == 0 and f1 > 2.0)
    got = list(typed(env(), key, value, ts).map(rescale).filter(keep).execute_and_collect())
    want = list(untyped(env(), key, value, ts).map(rescale).filter(keep).execute_and_collect())
    plain = list(
        untyped(env(), key, value, ts)
        .map(lambda r: rescale.fn(r.key, r.value, r.ts))
        .filter(lambda r: keep.fn(*r[:2]))
        .execute_and_collect()
    )
    assert got == want == plain and len(got) > 1_000
    assert type(got[0]) is tuple and [type(v) for v in got[0]] == [int, float, int]
    assert got[0] == next(
        (k // 2, v * 2.0, t * 2)
        for k, v, t in zip(key.tolist(), value.tolist(), ts.tolist(), strict=True)
        if k // 2 % 3 == 0 and v * 2.0 > 2.0
    )
    if numba_available():
        assert ("JitMapOperator", "RecordBatch") in spy
        t = typed(env(), key, value, ts).map(rescale).get_type()
        assert [x.dtype for x in t.field_types] == ["int64", "float64", "int64"]
        assert getattr(t, "field_names", None) is None  # a TUPLE type: fields by position


def test_jit_map_output_names_and_a_single_number():
    from flinkcore.common.typeinfo import Types

    key, value, ts = events(3_000)
    out_type = Types.ROW_NAMED(["k", "v"], [Types.LONG(), Types.DOUBLE()])
    pair = flinkcore.jit(lambda key, value: (key + 1, value - 1.0))
    triple = flinkcore.jit(lambda value: value * 3.0)
    window_sums = []
    for src in (typed, untyped):
        got = list(src(env(), key, value, ts).map(pair, output_type=out_type).execute_and_collect())
        assert got[0]._fields == ("k", "v") and tuple(got[0]) == (key[0] + 1, value[0] - 1.0)
        one = list(src(env(), key, value, ts).map(triple).execute_and_collect())
        assert one == [v * 3.0 for v in value.tolist()]
        # a window after a jit map keys and sums its output fields by position
        from flinkcore.datastream.window import TumblingEventTimeWindows as Tumbling

        wm = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(lambda r, t: r[2])
        sums = (
            src(env(), key, value, np.sort(ts))
            .map(flinkcore.jit(lambda key, value, ts: (key % 4, value, ts)))
            .assign_timestamps_and_watermarks(wm)
            .key_by(0)
            .window(Tumbling.of(Time.milliseconds(100)))
            .sum(1)
            .execute_and_collect()
        )
        sums = sorted(sums, key=lambda r: (r[0], r[2]))
        assert len(sums) > 10 and type(sums[0]) is tuple
        window_sums.append(sums)
    # columnar sums add per-batch partials: equal up to float rounding
    assert [(k, t) for k, _, t in window_sums[0]] == [(k, t) for k, _, t in window_sums[1]]
    np.testing.assert_allclose(
        [v for _, v, _ in window_sums[0]], [v for _, v, _ in window_sums[1]], rtol=1e-12
    )


@needs_numba
def test_jit_map_that_numba_cannot_compile_is_an_error_naming_the_operator():
    key, value, ts = events(100)
    with pytest.raises(JitCompileError, match="operator 'Map'.*a number or a tuple of numbers"):
        typed(env(), key, value, ts).map(flinkcore.jit(lambda key: str(key)))
    with pytest.raises(JitCompileError, match="operator 'Map': numba cannot compile.*per record"):
        typed(env(), key, value, ts).map(flinkcore.jit(lambda key: object()))
    with pytest.raises(KeyError, match="operator 'Filter'.*'nope'"):
        typed(env(), key, value, ts).filter(flinkcore.jit(lambda nope: nope > 0))


@pytest.mark.parametrize("window", ["tumbling", "sliding", "session"])
def test_jit_key_selector_and_timestamp_assigner_feed_the_columnar_window(window, spy):
    key, value, ts = events()
    assigner = {
        "tumbling": TumblingEventTimeWindows.of(Time.milliseconds(100)),
        "sliding": SlidingEventTimeWindows.of(Time.milliseconds(100), Time.milliseconds(40)),
        "session": EventTimeSessionWindows.with_gap(Time.milliseconds(15)),
    }[window]
    results = []
    for src in (typed, untyped):
        s = src(env(), key, value, ts).assign_timestamps_and_watermarks(bounded(double_ts)).key_by(half_key)
        results.append(
            sorted(s.window(assigner).agg(total=("value", "sum"), n=("value", "count")).execute_and_collect())
        )
    got, want = results
    assert len(want) > 100 and [tuple(r)[:3] + (r.n,) for r in got] == [tuple(r)[:3] + (r.n,) for r in want]
    np.testing.assert_allclose([r.total for r in got], [r.total for r in want], rtol=1e-12)
    assert max(r.key for r in got) == (key.max()) // 2 and got[0].window_end - got[0].window_start > 0
    if numba_available():
        assert ("ColumnarWindowOperator", "RecordBatch") in spy or (
            "ColumnarSessionOperator",
            "RecordBatch",
        ) in spy


class PerElementWatermarks:
    """Each element's timestamp minus 5 ms becomes the watermark: lateness is deterministic."""

    def on_event(self, event, event_timestamp, output):
        from flinkcore.common.watermark import Watermark

        output.emit_watermark(Watermark(event_timestamp - 5))

    def on_periodic_emit(self, output):
        pass


@pytest.mark.parametrize("window", ["tumbling", "sliding"])
def test_jit_aggregate_function_over_columns_equals_per_record(window, spy):
    key, value, ts = events()
    assigner = (
        TumblingEventTimeWindows.of(Time.milliseconds(100))
        if window == "tumbling"
        else SlidingEventTimeWindows.of(Time.milliseconds(100), Time.milliseconds(30))
    )
    tag = OutputTag("late")

    def run(src, agg):
        e = env()
        wm = WatermarkStrategy.for_generator(lambda ctx: PerElementWatermarks()).with_timestamp_assigner("ts")
        out = (
            src(e, key, value, ts)
            .assign_timestamps_and_watermarks(wm)
            .key_by("key")
            .window(assigner)
            .side_output_late_data(tag)
            .aggregate(agg)
        )
        main, late = [], []
        from flinkcore.datastream.functions import SinkFunction

        class Into(SinkFunction):
            def __init__(self, into):
                self.into = into

            def invoke(self, v, context=None):
                self.into.append(v)

        out.add_sink(Into(main))
        out.get_side_output(tag).add_sink(Into(late))
        e.execute("agg")
        return main, sorted(tuple(r) for r in late)

    got = run(typed, MeanAndCount())
    per_record = run(untyped, MeanAndCount())
    plain = run(typed, PlainMeanAndCount())
    assert sorted(per_record[0]) == sorted(plain[0]), "typed/untyped per record"
    assert sorted(got[0]) == sorted(plain[0])
    assert got[1] == per_record[1] == plain[1]
    if window == "tumbling":
        assert len(got[1]) > 50, "the test data has late records"
        assert sum(n for _, n, _ in got[0]) + len(got[1]) == len(key)
    if numba_available():
        assert ("ColumnarJitAggregateOperator", "RecordBatch") in spy


@needs_numba
def test_a_numba_dispatcher_as_timestamp_assigner_and_key_selector():
    import numba

    key, value, ts = events(4_000)
    results = []
    for ts_fn, key_fn in (
        (numba.njit(lambda ts: ts * 2), numba.njit(lambda key: key // 2)),
        (double_ts, half_key),
    ):
        s = typed(env(), key, value, ts).assign_timestamps_and_watermarks(bounded(ts_fn)).key_by(key_fn)
        out = s.window(TumblingEventTimeWindows.of(Time.milliseconds(100))).agg(n=("value", "count"))
        results.append(sorted(out.execute_and_collect()))
    assert results[0] == results[1] and len(results[0]) > 50


@needs_numba
def test_numba_dispatchers_are_taken_as_jit_functions():
    import numba

    key, value, ts = events(2_000)
    even = numba.njit(lambda key: key % 2 == 0)
    got = list(
        typed(env(), key, value, ts)
        .filter(even)
        .map(numba.njit(lambda key, value: (key, value)))
        .execute_and_collect()
    )
    assert [tuple(r) for r in got] == [
        (k, v) for k, v in zip(key.tolist(), value.tolist(), strict=True) if k % 2 == 0
    ]


@needs_numba
def test_jit_aggregate_table_snapshot_and_restore():
    table = window_columnar.JitAggregateTable(
        10, 10, 0, flinkcore.jit(MeanAndCount()), ("key", "value", "ts"), "W"
    )
    key, value, ts = events(500, nkeys=7)
    ts = np.sort(ts)
    table.update(key[:300], ts[:300], [key[:300], value[:300], ts[:300]], -(2**63))
    snap = table.snapshot()
    copy = window_columnar.JitAggregateTable(
        10, 10, 0, flinkcore.jit(MeanAndCount()), ("key", "value", "ts"), "W"
    )
    copy.restore([snap], keep=lambda k: k % 2 == 0)
    for t in (table, copy):
        t.update(key[300:], ts[300:], [key[300:], value[300:], ts[300:]], -(2**63))
    k1, s1, a1 = table.fire(2**62)
    k2, s2, a2 = copy.fire(2**62)
    whole = {(k, s): a for k, s, a in zip(k1.tolist(), s1.tolist(), a1, strict=True)}
    restored = {(k, s): a for k, s, a in zip(k2.tolist(), s2.tolist(), a2, strict=True)}
    early = {(k, s) for k, s, _ in snap["windows"]}
    assert all(whole[ks] == a for ks, a in restored.items() if ks[0] % 2 == 0)
    dropped = [ks for ks in restored if ks[0] % 2 == 1 and ks in early]
    assert dropped and all(restored[ks][1] < whole[ks][1] for ks in dropped)  # not restored: fewer adds
    assert set(restored) <= set(whole) and {ks for ks in whole if ks[0] % 2 == 0} <= set(restored)
    # restored and fired before any record arrives: the snapshot's windows
    idle = window_columnar.JitAggregateTable(
        10,
        10,
        0,
        flinkcore.jit(MeanAndCount()),
        ("key", "value", "ts"),
        "W",
        [key.dtype, value.dtype, ts.dtype],
    )
    idle.restore([snap])
    k0, s0, r0 = idle.fire(2**62)
    assert sorted(zip(k0.tolist(), s0.tolist(), [r[1] for r in r0], strict=True)) == sorted(
        (k, s, acc[1]) for k, s, acc in snap["windows"]
    )


_WITHOUT_NUMBA = r"""
import sys
sys.modules["numba"] = None  # import numba now raises ImportError: flinkcore[jit] is not installed
sys.path.insert(0, {testdir!r})
import json
import test_jit as t
from flinkcore.jit import numba_available
from flinkcore.common.time import Time
from flinkcore.common.watermark_strategy import WatermarkStrategy
from flinkcore.datastream.window import EventTimeSessionWindows, TumblingEventTimeWindows

assert not numba_available()
key, value, ts = t.events(4_000)
out = {{}}
for name, src in (("typed", t.typed), ("untyped", t.untyped)):
    mapped = src(t.env(), key, value, ts).map(t.rescale).filter(t.flinkcore.jit(lambda f0: f0 % 3 == 0))
    out[name + "_map"] = [list(r) for r in mapped.execute_and_collect()]
    wm = WatermarkStrategy.for_generator(lambda ctx: t.PerElementWatermarks())
    windows = (
        src(t.env(), key, value, ts)
        .assign_timestamps_and_watermarks(wm.with_timestamp_assigner(t.double_ts))
        .key_by(t.half_key)
        .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
    )
    out[name + "_agg"] = sorted(list(r) for r in windows.aggregate(t.MeanAndCount()).execute_and_collect())
    sessions = (
        src(t.env(), key, value, ts)
        .assign_timestamps_and_watermarks(wm.with_timestamp_assigner("ts"))
        .key_by("key")
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(7)))
        .aggregate(t.Trace())
    )
    out[name + "_sessions"] = [[s, list(r)] for s, r in t.Stamped.of(sessions).execute_and_collect()]
out["numba_loaded"] = sys.modules.get("numba") is not None
print(json.dumps(out))
"""


def test_without_numba_the_same_functions_run_per_record_with_the_same_results():
    """A fresh interpreter where ``import numba`` fails: every jit function runs per record, on
    typed and untyped streams alike, and gives what the compiled run in this process gives."""
    import json
    import os
    import subprocess
    import sys

    script = _WITHOUT_NUMBA.format(testdir=os.path.dirname(__file__))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["numba_loaded"] is False
    assert out["typed_map"] == out["untyped_map"] and len(out["typed_map"]) > 500
    assert out["typed_agg"] == out["untyped_agg"] and len(out["typed_agg"]) > 100
    # the same jobs here, compiled when numba is installed
    key, value, ts = events(4_000)
    mapped = typed(env(), key, value, ts).map(rescale).filter(flinkcore.jit(lambda f0: f0 % 3 == 0))
    assert [list(r) for r in mapped.execute_and_collect()] == out["typed_map"]
    wm = WatermarkStrategy.for_generator(lambda ctx: PerElementWatermarks())
    windows = (
        typed(env(), key, value, ts)
        .assign_timestamps_and_watermarks(wm.with_timestamp_assigner(double_ts))
        .key_by(half_key)
        .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
    )
    assert (
        sorted(list(r) for r in windows.aggregate(MeanAndCount()).execute_and_collect()) == out["typed_agg"]
    )
    # sessions (merges included): the same results at the same timestamps
    assert by_timestamp(out["typed_sessions"]) == by_timestamp(out["untyped_sessions"])
    assert len(out["typed_sessions"]) > 100
    sessions = (
        typed(env(), key, value, ts)
        .assign_timestamps_and_watermarks(wm.with_timestamp_assigner("ts"))
        .key_by("key")
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(7)))
        .aggregate(Trace())
    )
    compiled = [[s, list(r)] for s, r in Stamped.of(sessions).execute_and_collect()]
    assert by_timestamp(compiled) == by_timestamp(out["typed_sessions"])


def test_numba_is_imported_only_when_a_jit_function_is_compiled():
    import subprocess
    import sys

    script = (
        "import sys, flinkcore, numpy as np, pyarrow as pa\n"
        "from flinkcore.datastream import StreamExecutionEnvironment\n"
        "e = StreamExecutionEnvironment.get_execution_environment()\n"
        "f = flinkcore.jit(lambda key: key > 1)\n"
        "got = list(e.from_collection([(1,), (2,)]).filter(lambda r: r[0] > 1).execute_and_collect())\n"
        "assert 'numba' not in sys.modules, 'numba was imported by a job without jit'\n"
        "got = list(e.from_arrow(pa.table({'key': np.arange(4)})).filter(f).execute_and_collect())\n"
        "print(len(got), 'numba' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["2", str(numba_available())]


class SumAsRow(AggregateFunction):
    """get_result builds a Row: numba cannot compile it, so it runs in Python once per window."""

    def create_accumulator(self):
        return 0.0

    def add(self, value, accumulator):
        return accumulator + value.value

    def get_result(self, accumulator):
        return Row(total=accumulator)

    def merge(self, a, b):
        return a + b


def test_jit_aggregate_with_a_python_get_result_and_a_scalar_accumulator():
    key, value, ts = events(6_000)
    jitted = flinkcore.jit(type("JitSumAsRow", (SumAsRow,), {}))
    results = []
    for src, agg in ((typed, jitted()), (untyped, jitted()), (typed, SumAsRow())):
        s = src(env(), key, value, ts).assign_timestamps_and_watermarks(bounded("ts")).key_by("key")
        out = (
            s.window(TumblingEventTimeWindows.of(Time.milliseconds(50))).aggregate(agg).execute_and_collect()
        )
        results.append(sorted(out, key=lambda r: r.total))
    assert results[0] == results[1] == results[2] and len(results[0]) > 500
    assert isinstance(results[0][0], Row) and results[0][0]._fields == ("total",)


def test_jit_functions_pickle_without_their_compiled_code():
    """Worker processes get the function and compile it themselves."""
    pickle = pytest.importorskip("cloudpickle")  # how jobs reach worker processes

    key, value, ts = events(100)
    cols = [key, value, ts]
    before = rescale.apply_tuple(cols, "Map") if numba_available() else None
    copy = pickle.loads(pickle.dumps(rescale))
    assert copy._tuple_kernels == {} and copy._njit is None and copy.params == rescale.params
    assert copy(Row(key=3, value=1.5, ts=7)) == (1, 3.0, 14)
    if before is not None:
        after = copy.apply_tuple(cols, "Map")
        assert after[1] and all((a == b).all() for a, b in zip(after[0], before[0], strict=True))


class ReadsAMissingField(AggregateFunction):
    def create_accumulator(self):
        return 0.0

    def add(self, value, accumulator):
        return accumulator + value.nope

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return a + b


@needs_numba
def test_a_jit_aggregate_numba_cannot_compile_fails_the_job_naming_the_operator():
    key, value, ts = events(2_000)
    agg = flinkcore.jit(type("JitReadsAMissingField", (ReadsAMissingField,), {}))()
    s = typed(env(), key, value, ts).assign_timestamps_and_watermarks(bounded("ts")).key_by("key")
    out = s.window(TumblingEventTimeWindows.of(Time.milliseconds(50))).aggregate(agg)
    with pytest.raises(Exception, match=r"operator 'Window\(Aggregate\)': numba cannot compile .*add"):
        list(out.execute_and_collect())


def _jit_agg_graph(key, value, ts, sink, assigner=None):
    e = env()
    (
        typed(e, key, value, ts, rows=10_000)
        .assign_timestamps_and_watermarks(bounded("ts"))
        .key_by(half_key)
        .window(assigner or SlidingEventTimeWindows.of(Time.milliseconds(60), Time.milliseconds(20)))
        .aggregate(MeanAndCount())
        .add_sink(sink)
    )
    graph = e.get_stream_graph("jit agg", clear_transformations=True)
    graph.config["columnar_batch_size"] = 1_000
    graph.config["auto_watermark_interval"] = 1
    return graph


@needs_numba
def test_jit_aggregate_checkpoint_between_batches_restores_exactly(spy):
    """A snapshot taken mid-input and restored into a new job continues with the same
    accumulators: the resumed output equals one uninterrupted run."""
    from flinkcore.datastream.functions import SinkFunction
    from flinkcore.runtime.executor import Job

    class Into(SinkFunction):
        def __init__(self):
            self.got = []

        def invoke(self, v, context=None):
            self.got.append(v)

    key, value, ts = events(12_000)
    ts = np.sort(ts)  # in order: what is emitted before the snapshot does not depend on timing
    first = Into()
    job = Job(_jit_agg_graph(key, value, ts, first))
    taken = {}
    rounds = [0]

    def between_batches(now):
        rounds[0] += 1
        if rounds[0] == 5:
            taken["snap"] = job.snapshot()
            taken["emitted"] = len(first.got)
        else:
            job.pts.register_timer(0, between_batches)

    job.pts.register_timer(0, between_batches)
    job.run()
    source_state = next(v["source"] for v in taken["snap"].values() if "source" in v)
    assert source_state[0] != (0, 0), "the snapshot was taken mid-input"
    windows = [
        op["operator"]["windows"]["windows"]
        for v in taken["snap"].values()
        for op in v.get("operator", [])
        if isinstance(op.get("operator"), dict) and "windows" in op["operator"]
    ]
    assert windows and windows[0], "open windows were in the snapshot"
    second = Into()
    Job(_jit_agg_graph(key, value, ts, second), restore=taken["snap"]).run()
    whole = Into()
    Job(_jit_agg_graph(key, value, ts, whole)).run()
    assert sorted(first.got[: taken["emitted"]] + second.got) == sorted(whole.got)
    assert ("ColumnarJitAggregateOperator", "RecordBatch") in spy


@flinkcore.jit
class CountAndKeySum(AggregateFunction):
    """Order-insensitive and exact (integers): the same however records are spread."""

    def create_accumulator(self):
        return (0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + 1, accumulator[1] + value[0])

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


@flinkcore.jit
def third(a, b, c):
    return c


@pytest.mark.parametrize("window", ["tumbling", "session"])
def test_jit_functions_in_worker_processes_give_the_single_process_results(window):
    """At parallelism 2 the job runs in worker processes: the jit functions travel there
    (cloudpickled, compiled in each worker) and give what parallelism 1 gives."""
    assigner = (
        TumblingEventTimeWindows.of(Time.milliseconds(200))
        if window == "tumbling"
        else EventTimeSessionWindows.with_gap(Time.milliseconds(4))
    )
    key, value, ts = events(8_000)
    results = {}
    for src in (typed, untyped):
        for parallelism in (1, 2):
            e = env()
            e.set_parallelism(parallelism)
            wm = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(300))
            out = (
                src(e, key, value, ts)
                .map(rescale)
                .filter(flinkcore.jit(lambda f0: f0 % 5 != 0))
                # tuple records: a jit function's parameters take their fields by position
                .assign_timestamps_and_watermarks(wm.with_timestamp_assigner(third))
                .key_by(0)
                .window(assigner)
                .aggregate(CountAndKeySum())
            )
            results[(src.__name__, parallelism)] = sorted(out.execute_and_collect())
    first = results[("untyped", 1)]
    assert len(first) > 100 and all(r == first for r in results.values())


# -- event-time session windows ----------------------------------------------------------------


class Stamped:
    """(timestamp, result) of every window result, in emission order."""

    @staticmethod
    def of(stream):
        from flinkcore.datastream.functions import ProcessFunction

        class Stamp(ProcessFunction):
            def process_element(self, value, ctx):
                yield (ctx.timestamp(), value)

        return stream.process(Stamp())


def session_events(n, nkeys, seed):
    """Keys, values and timestamps with 20% of the records out of order by up to 40 ms: many
    records bridge two or more open sessions of their key, many are late."""
    rng = np.random.default_rng(seed)
    key = rng.integers(0, nkeys, n, dtype=np.int64)
    value = np.round(rng.random(n) * 10, 3)
    ts = np.arange(n, dtype=np.int64) // 4 - rng.integers(0, 40, n) * (rng.random(n) < 0.2)
    return key, value, ts


def session_merges(key, ts, gap, wm_lag=5):
    """A small reference model of the per-record session rule: how many records merged two or
    more open sessions (with each element's timestamp minus ``wm_lag`` as the watermark)."""
    sessions: dict = {}
    wm, bridging = -(2**63), 0
    for k, t in zip(key.tolist(), ts.tolist(), strict=True):
        own = sessions.setdefault(k, [])
        lo, hi = t, t + gap
        group = [s for s in own if s[0] <= hi and s[1] >= lo]
        if not group and hi - 1 <= wm:
            continue
        for s in group:
            own.remove(s)
        bridging += len(group) > 1
        own.append((min([lo] + [s[0] for s in group]), max([hi] + [s[1] for s in group])))
        wm = max(wm, t - wm_lag)
        own[:] = [s for s in own if s[1] - 1 > wm]
    return bridging


def by_timestamp(stamped):
    """The timestamps in emission order, and the results of each timestamp (equal ends: Flink
    gives no order among timers of one timestamp)."""
    groups: dict = {}
    for t, r in stamped:
        groups.setdefault(t, []).append(r)
    return [t for t, _ in stamped], {t: sorted(rs) for t, rs in groups.items()}


@flinkcore.jit
class Trace(AggregateFunction):
    """Sum, count and a trace that depends on the order of adds and on which accumulator is
    ``merge``'s first argument."""

    def create_accumulator(self):
        return (0.0, 0, 0.0)

    def add(self, value, accumulator):
        return (accumulator[0] + value.value, accumulator[1] + 1, accumulator[2] * 0.5 + value.value)

    def get_result(self, accumulator):
        return (accumulator[0] / accumulator[1], accumulator[1], accumulator[2])

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1], a[2] + 3.0 * b[2])


class PlainTrace(AggregateFunction):
    create_accumulator = Trace.create_accumulator
    add = Trace.add
    get_result = Trace.get_result
    merge = Trace.merge


@pytest.mark.parametrize("seed,gap", [(1, 3), (2, 7), (3, 20)])
def test_jit_aggregate_on_sessions_equals_per_record(seed, gap, spy):
    """Sessions of a jit AggregateFunction (order-sensitive add and merge) over columns equal the
    same job per record (the plain AggregateFunction, and the untyped stream): results, their
    timestamps in emission order, and the late records."""
    key, value, ts = session_events(6_000, 40, seed)
    assert session_merges(key, ts, gap) > 5, "records bridge open sessions"
    tag = OutputTag("late")

    def run(src, agg):
        e = env()
        wm = WatermarkStrategy.for_generator(lambda ctx: PerElementWatermarks()).with_timestamp_assigner("ts")
        windowed = (
            src(e, key, value, ts, rows=700) if src is typed else src(e, key, value, ts)
        ).assign_timestamps_and_watermarks(wm)
        out = (
            windowed.key_by("key")
            .window(EventTimeSessionWindows.with_gap(Time.milliseconds(gap)))
            .side_output_late_data(tag)
            .aggregate(agg)
        )
        stamped = Stamped.of(out)
        from flinkcore.datastream.functions import SinkFunction

        class Into(SinkFunction):
            def __init__(self, into):
                self.into = into

            def invoke(self, v, context=None):
                self.into.append(v)

        main, late = [], []
        stamped.add_sink(Into(main))
        out.get_side_output(tag).add_sink(Into(late))
        e.execute("sessions")
        return main, [tuple(r) for r in late]

    got = run(typed, Trace())
    plain = run(typed, PlainTrace())
    per_record = run(untyped, Trace())
    assert by_timestamp(got[0]) == by_timestamp(plain[0]) == by_timestamp(per_record[0])
    assert got[1] == plain[1] == per_record[1]
    assert len(got[1]) > 100, "the test data has late records"
    assert sum(r[1] for _, r in got[0]) + len(got[1]) == len(key)
    if numba_available():
        assert ("ColumnarJitSessionOperator", "RecordBatch") in spy


@flinkcore.jit
class Count(AggregateFunction):
    """A scalar accumulator."""

    def create_accumulator(self):
        return 0

    def add(self, value, accumulator):
        return accumulator + 1

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return a + b


@flinkcore.jit
class CountNoMerge(AggregateFunction):
    def create_accumulator(self):
        return 0

    def add(self, value, accumulator):
        return accumulator + 1

    def get_result(self, accumulator):
        return accumulator


def test_jit_sessions_scalar_accumulator_and_no_merge(spy):
    """A scalar accumulator runs compiled; without ``merge`` the job runs per record (which fails
    as Flink does only when two sessions have to merge)."""
    key, value, ts = (
        np.array([1, 1, 2, 1], dtype=np.int64),
        np.ones(4),
        np.array([0, 2, 5, 30], dtype=np.int64),
    )

    def job(agg):
        e = env()
        wm = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner("ts")
        out = (
            typed(e, key, value, ts)
            .assign_timestamps_and_watermarks(wm)
            .key_by("key")
            .window(EventTimeSessionWindows.with_gap(Time.milliseconds(5)))
            .aggregate(agg)
        )
        return [tuple(r) for r in Stamped.of(out).execute_and_collect()]

    assert job(Count()) == [(6, 2), (9, 1), (34, 1)]
    if numba_available():
        assert ("ColumnarJitSessionOperator", "RecordBatch") in spy
    spy.clear()
    assert job(CountNoMerge()) == [(6, 2), (9, 1), (34, 1)]
    assert not any(name == "ColumnarJitSessionOperator" for name, _ in spy)


@needs_numba
def test_jit_session_table_snapshot_restore_and_freeing():
    def table():
        return window_columnar.JitSessionTable(5, flinkcore.jit(MeanAndCount()), ("key", "value", "ts"), "S")

    key, value, ts = session_events(2_000, 9, 4)
    first = table()
    late1 = first.update(key[:1200], ts[:1200], [key[:1200], value[:1200], ts[:1200]], 100)
    assert late1.any() and first.open_sessions() > 9
    snap = first.snapshot()
    copy = table()
    copy.restore([snap], keep=lambda k: k % 2 == 0)
    assert copy.open_sessions() == sum(1 for s in snap["sessions"] if s[0] % 2 == 0)
    # restored and fired before any record arrives: the snapshot's sessions, by (end, key)
    idle = window_columnar.JitSessionTable(
        5, flinkcore.jit(MeanAndCount()), ("key", "value", "ts"), "S", [key.dtype, value.dtype, ts.dtype]
    )
    idle.restore([snap])
    k0, s0, e0, r0 = idle.fire(2**62)
    by_end = list(zip(e0.tolist(), k0.tolist(), strict=True))
    assert by_end == sorted(by_end)
    fired_sessions = sorted(zip(k0.tolist(), s0.tolist(), e0.tolist(), strict=True))
    assert fired_sessions == sorted(tuple(x[:3]) for x in snap["sessions"])
    assert sorted(r[1] for r in r0) == sorted(x[3][1] for x in snap["sessions"])
    assert idle.open_sessions() == 0
    rest = [key[1200:], ts[1200:], [key[1200:], value[1200:], ts[1200:]], 150]
    late = [t.update(*rest) for t in (first, copy)]
    fired = [t.fire(2**62) for t in (first, copy)]
    whole = {
        (k, s, e): a for k, s, e, a in zip(*(c.tolist() for c in fired[0][:3]), fired[0][3], strict=True)
    }
    restored = {
        (k, s, e): a for k, s, e, a in zip(*(c.tolist() for c in fired[1][:3]), fired[1][3], strict=True)
    }
    # the restored keys continue exactly; the others start over from the rest of the input
    assert {ks: a for ks, a in whole.items() if ks[0] % 2 == 0} == {
        ks: a for ks, a in restored.items() if ks[0] % 2 == 0
    }
    odd = {ks: a for ks, a in restored.items() if ks[0] % 2 == 1}
    assert odd and sum(a[1] for a in odd.values()) < sum(a[1] for ks, a in whole.items() if ks[0] % 2 == 1)
    assert np.array_equal(late[0] & (key[1200:] % 2 == 0), late[1] & (key[1200:] % 2 == 0))
    ends = fired[0][2].tolist()
    assert ends == sorted(ends)
    for t in (first, copy):  # every session fired: slots and key indices freed
        assert t.open_sessions() == 0
        assert len(t._kfree) == t._ktop and int(t._meta[0]) == int(t._meta[1])


@needs_numba
def test_jit_sessions_checkpoint_between_batches_restores_exactly(spy):
    """A snapshot taken mid-input and restored into a new job continues with the same open
    sessions: the resumed output equals one uninterrupted run."""
    from flinkcore.datastream.functions import SinkFunction
    from flinkcore.runtime.executor import Job

    class Into(SinkFunction):
        def __init__(self):
            self.got = []

        def invoke(self, v, context=None):
            self.got.append(v)

    key, value, ts = events(12_000)
    ts = np.sort(ts)
    sessions = EventTimeSessionWindows.with_gap(Time.milliseconds(3))
    first = Into()
    job = Job(_jit_agg_graph(key, value, ts, first, sessions))
    taken = {}
    rounds = [0]

    def between_batches(now):
        rounds[0] += 1
        if rounds[0] == 5:
            taken["snap"] = job.snapshot()
            taken["emitted"] = len(first.got)
        else:
            job.pts.register_timer(0, between_batches)

    job.pts.register_timer(0, between_batches)
    job.run()
    source_state = next(v["source"] for v in taken["snap"].values() if "source" in v)
    assert source_state[0] != (0, 0), "the snapshot was taken mid-input"
    open_sessions = [
        op["operator"]["windows"]["sessions"]
        for v in taken["snap"].values()
        for op in v.get("operator", [])
        if isinstance(op.get("operator"), dict) and "windows" in op["operator"]
    ]
    assert open_sessions and open_sessions[0], "open sessions were in the snapshot"
    second = Into()
    Job(_jit_agg_graph(key, value, ts, second, sessions), restore=taken["snap"]).run()
    whole = Into()
    Job(_jit_agg_graph(key, value, ts, whole, sessions)).run()
    assert first.got[: taken["emitted"]] + second.got == whole.got
    assert ("ColumnarJitSessionOperator", "RecordBatch") in spy


@flinkcore.jit
class MergesIntoADict(AggregateFunction):
    def create_accumulator(self):
        return 0

    def add(self, value, accumulator):
        return accumulator + 1

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return {"a": a, "b": b}


@needs_numba
def test_a_jit_session_merge_numba_cannot_compile_fails_the_job_naming_the_operator():
    key, value, ts = events(2_000)
    s = typed(env(), key, value, ts).assign_timestamps_and_watermarks(bounded("ts")).key_by("key")
    out = s.window(EventTimeSessionWindows.with_gap(Time.milliseconds(5))).aggregate(MergesIntoADict())
    with pytest.raises(Exception, match=r"operator 'Window\(Aggregate\)': numba cannot compile .*merge"):
        list(out.execute_and_collect())
