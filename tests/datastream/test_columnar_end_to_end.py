"""Columnar batches end to end: a typed job (from_arrow, field timestamps, field keys, built-in
aggregates) carries Arrow batches from source to window and gives exactly what the same job
gives untyped (from_collection, lambdas) — W1/W2/W3 shapes, late data, UDFs and sinks that see
Rows, and checkpoints taken between columnar batches."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flinkcore.common import Duration, Row
from flinkcore.common.time import Time
from flinkcore.common.watermark_strategy import WatermarkStrategy
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.functions import SinkFunction
from flinkcore.datastream.output_tag import OutputTag
from flinkcore.datastream.window import EventTimeSessionWindows, TumblingEventTimeWindows
from flinkcore.runtime.executor import Job
from flinkcore.runtime.operators.window_columnar import ColumnarWindowOperator


def env() -> StreamExecutionEnvironment:
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(1)
    return e


def events(n=20_000, nkeys=40, div=20, seed=5):
    """WORKLOADS.md's shape, smaller: 10% out of order by up to 50 ms."""
    rng = np.random.default_rng(seed)
    key = rng.integers(0, nkeys, n, dtype=np.int64)
    value = np.round(rng.random(n) * 100, 3)
    late = rng.random(n) < 0.1
    jitter = rng.integers(0, 51, n, dtype=np.int64)
    ts = np.arange(n, dtype=np.int64) // div - np.where(late, jitter, 0)
    return key, value, ts


def table_of(key, value, ts, batch_rows=3_000):
    t = pa.table({"key": key, "value": value, "ts": ts})
    return pa.Table.from_batches(t.to_batches(max_chunksize=batch_rows))


def tuples_of(key, value, ts):
    return list(zip(key.tolist(), value.tolist(), ts.tolist(), strict=True))


def bounded(ms=100):
    return WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(ms))


class Collect(SinkFunction):
    def __init__(self):
        self.got = []

    def invoke(self, value, context=None):
        self.got.append(value)


@pytest.fixture
def batches_seen(monkeypatch):
    """The kinds of batch the columnar window operators received."""
    seen = []
    original = ColumnarWindowOperator._columns

    def spy(self, values):
        seen.append(type(values))
        return original(self, values)

    monkeypatch.setattr(ColumnarWindowOperator, "_columns", spy)
    return seen


def close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert len(x) == len(y)
        for u, v in zip(x, y, strict=True):
            if isinstance(u, float) or isinstance(v, float):
                assert math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9), (x, y)
            else:
                assert u == v, (x, y)


def test_w1_udfs_on_a_typed_stream_see_rows_and_match_untyped():
    key, value, ts = events(5_000)
    seen_types = set()

    def double(r):
        seen_types.add((isinstance(r, Row), r._fields if isinstance(r, Row) else None))
        return (r.key, r.value * 2.0, r.ts)

    sink = Collect()
    env_t = env()
    env_t.from_arrow(table_of(key, value, ts, 700)).map(double).filter(lambda e: e[0] % 2 == 0).add_sink(sink)
    env_t.execute("typed W1")
    assert seen_types == {(True, ("key", "value", "ts"))}
    want = sorted(
        env()
        .from_collection(tuples_of(key, value, ts))
        .map(lambda e: (e[0], e[1] * 2.0, e[2]))
        .filter(lambda e: e[0] % 2 == 0)
        .execute_and_collect()
    )
    assert sorted(sink.got) == want and len(want) > 1_000


def test_w1_map_batches_stays_columnar_and_a_python_sink_gets_rows():
    key, value, ts = events(5_000)
    calls = []

    def double_even(batch):
        calls.append(type(batch))
        doubled = batch.set_column(1, "value", pc.multiply(batch.column(1), 2.0))
        return doubled.filter(pc.equal(pc.bit_wise_and(batch.column(0), 1), 0))

    sink = Collect()
    e = env()
    e.from_arrow(table_of(key, value, ts, 1_000)).map_batches(double_even).add_sink(sink)
    e.execute("typed W1 batches")
    assert calls and set(calls) == {pa.RecordBatch}
    assert all(isinstance(r, Row) for r in sink.got)
    assert sink.got[0]._fields == ("key", "value", "ts")
    want = [(k, v * 2.0, t) for k, v, t in tuples_of(key, value, ts) if k % 2 == 0]
    assert [tuple(r) for r in sink.got] == want


def test_w2_typed_window_equals_untyped(batches_seen):
    key, value, ts = events()
    sink = Collect()
    e = env()
    (
        e.from_arrow(table_of(key, value, ts))
        .assign_timestamps_and_watermarks(bounded().with_timestamp_assigner("ts"))
        .key_by("key")
        .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
        .agg(total=("value", "sum"), n=("value", "count"), hi=("value", "max"))
        .add_sink(sink)
    )
    e.execute("typed W2")
    assert batches_seen and set(batches_seen) == {pa.RecordBatch}
    want = (
        env()
        .from_collection(tuples_of(key, value, ts))
        .assign_timestamps_and_watermarks(bounded().with_timestamp_assigner(lambda v, t: v[2]))
        .key_by(lambda v: v[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
        .agg(total=(1, "sum"), n=(1, "count"), hi=(1, "max"))
        .execute_and_collect()
    )
    want = list(want)
    assert len(want) > 100
    close(sorted(sink.got), sorted(want))
    assert sum(r.n for r in sink.got) == len(key)  # with a 100 ms bound nothing is late


def test_w3_typed_sessions_equal_untyped():
    key, value, ts = events(20_000, nkeys=300)
    sessions = EventTimeSessionWindows.with_gap(Time.milliseconds(30))
    got = (
        env()
        .from_arrow(table_of(key, value, ts))
        .assign_timestamps_and_watermarks(bounded().with_timestamp_assigner("ts"))
        .key_by("key")
        .window(sessions)
        .agg(n=("value", "count"), total=("value", "sum"))
        .execute_and_collect()
    )
    got = list(got)
    want = (
        env()
        .from_collection(tuples_of(key, value, ts))
        .assign_timestamps_and_watermarks(bounded().with_timestamp_assigner(lambda v, t: v[2]))
        .key_by(lambda v: v[0])
        .window(sessions)
        .agg(n=(1, "count"), total=(1, "sum"))
        .execute_and_collect()
    )
    want = list(want)
    assert len(want) > 300
    close(sorted(got), sorted(want))


class PerElementWatermarks:
    """Each element's timestamp minus 5 ms becomes the watermark: lateness is deterministic."""

    def on_event(self, event, event_timestamp, output):
        from flinkcore.common.watermark import Watermark

        output.emit_watermark(Watermark(event_timestamp - 5))

    def on_periodic_emit(self, output):
        pass


@pytest.mark.parametrize("assigner", ["tumbling", "session"])
def test_late_data_side_output_typed_equals_untyped(assigner, batches_seen):
    key, value, ts = events(4_000, nkeys=10, div=4)
    window = (
        TumblingEventTimeWindows.of(Time.milliseconds(10))
        if assigner == "tumbling"
        else EventTimeSessionWindows.with_gap(Time.milliseconds(3))
    )
    tag = OutputTag("late")
    ws = WatermarkStrategy.for_generator(lambda ctx: PerElementWatermarks())
    results = {}
    for typed in (True, False):
        e = env()
        if typed:
            ks = (
                e.from_arrow(table_of(key, value, ts, 500))
                .assign_timestamps_and_watermarks(ws.with_timestamp_assigner("ts"))
                .key_by("key")
            )
            field = "value"
        else:
            ks = (
                e.from_collection(tuples_of(key, value, ts))
                .assign_timestamps_and_watermarks(ws.with_timestamp_assigner(lambda v, t: v[2]))
                .key_by(lambda v: v[0])
            )
            field = 1
        out = ks.window(window).side_output_late_data(tag).agg(total=(field, "sum"), n=(field, "count"))
        late, main = Collect(), Collect()
        out.get_side_output(tag).add_sink(late)
        out.add_sink(main)
        e.execute("late")
        results[typed] = (sorted(main.got), sorted(tuple(r) for r in late.got))
        if typed:
            assert all(isinstance(r, Row) and r._fields == ("key", "value", "ts") for r in late.got)
    assert batches_seen and pa.RecordBatch in set(batches_seen)
    assert len(results[True][1]) > 50, "the test data has late records"
    close(results[True][0], results[False][0])
    assert results[True][1] == results[False][1]
    assert sum(r.n for r in results[True][0]) + len(results[True][1]) == len(key)


def _w2_job(key, value, ts, sink):
    e = env()
    (
        e.from_arrow(table_of(key, value, ts, 10_000))
        .assign_timestamps_and_watermarks(bounded(20).with_timestamp_assigner("ts"))
        .key_by("key")
        .window(TumblingEventTimeWindows.of(Time.milliseconds(50)))
        .agg(total=("value", "sum"), n=("value", "count"))
        .add_sink(sink)
    )
    graph = e.get_stream_graph("w2", clear_transformations=True)
    graph.config["columnar_batch_size"] = 1_000
    graph.config["auto_watermark_interval"] = 1
    return graph


def test_checkpoint_between_columnar_batches_restores_exactly():
    key, value, ts = events(12_000)
    first = Collect()
    job = Job(_w2_job(key, value, ts, first))
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
    second = Collect()
    Job(_w2_job(key, value, ts, second), restore=taken["snap"]).run()
    resumed = first.got[: taken["emitted"]] + second.got
    whole = Collect()
    Job(_w2_job(key, value, ts, whole)).run()
    close(sorted(resumed), sorted(whole.got))
    assert sum(r.n for r in whole.got) == len(key)


@pytest.mark.parametrize("assigner", ["tumbling", "session"])
def test_window_results_flow_on_as_columns_and_reach_python_code_as_the_same_rows(assigner):
    """A columnar window hands map_batches its results as one RecordBatch per firing; a Python
    sink after it, or straight after the window, sees the Rows of the untyped job, in order."""
    key, value, ts = events(8_000, nkeys=50)
    window = (
        TumblingEventTimeWindows.of(Time.milliseconds(20))
        if assigner == "tumbling"
        else EventTimeSessionWindows.with_gap(Time.milliseconds(5))
    )
    seen = []

    def through(batch):
        seen.append((type(batch), tuple(batch.schema.names)))
        return batch

    got = {}
    for kind in ("typed+batches", "typed", "untyped"):
        sink = Collect()
        e = env()
        if kind == "untyped":
            ks = (
                e.from_collection(tuples_of(key, value, ts))
                .assign_timestamps_and_watermarks(bounded().with_timestamp_assigner(lambda v, t: v[2]))
                .key_by(lambda v: v[0])
            )
            out = ks.window(window).agg(total=(1, "sum"), n=(1, "count"))
        else:
            ks = (
                e.from_arrow(table_of(key, value, ts, 1_000))
                .assign_timestamps_and_watermarks(bounded().with_timestamp_assigner("ts"))
                .key_by("key")
            )
            out = ks.window(window).agg(total=("value", "sum"), n=("value", "count"))
            if kind == "typed+batches":
                out = out.map_batches(through)
        out.add_sink(sink)
        e.execute(kind)
        got[kind] = sink.got
    assert seen and set(seen) == {(pa.RecordBatch, ("key", "window_start", "window_end", "total", "n"))}
    for kind in ("typed+batches", "typed"):
        assert all(type(r).__mro__[1] is Row for r in got[kind])
        assert got[kind][0]._fields == ("key", "window_start", "window_end", "total", "n")
        # same records; equal window ends in the same order (the untyped order among equal ends
        # is by key for tumbling windows, by timer order for sessions)
        assert [r.window_end for r in got[kind]] == [r.window_end for r in got["untyped"]]
        close(sorted(got[kind]), sorted(got["untyped"]))


def test_tuple_typed_window_sum_emits_the_tuples_of_the_untyped_job(batches_seen):
    """A TUPLE-typed stream's window sum runs on the columnar path; its results reach Python code
    as the plain tuples the untyped job emits (not Rows)."""
    from flinkcore.common.typeinfo import Types

    key, value, ts = events(6_000)
    out = {}
    for type_info in (Types.TUPLE([Types.LONG(), Types.DOUBLE(), Types.LONG()]), None):
        sink = Collect()
        e = env()
        (
            e.from_collection(tuples_of(key, value, ts), type_info=type_info)
            .assign_timestamps_and_watermarks(bounded().with_timestamp_assigner(lambda v, t: v[2]))
            .key_by(0)
            .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
            .sum(1)
            .add_sink(sink)
        )
        e.execute("tuple sum")
        out[type_info is None] = sink.got
    assert batches_seen, "the typed job ran on the columnar window"
    assert all(type(r) is tuple for r in out[False]) and len(out[False]) > 100
    close(sorted(out[False], key=lambda r: (r[0], r[2])), sorted(out[True], key=lambda r: (r[0], r[2])))
