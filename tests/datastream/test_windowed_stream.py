"""WindowedStream through the public API: built-in aggregations on the columnar and the
per-record path give the same results; configuration errors a user can act on."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from flinkcore.common.time import Time
from flinkcore.common.watermark_strategy import WatermarkStrategy
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.output_tag import OutputTag
from flinkcore.datastream.window import (
    CountEvictor,
    CountTrigger,
    EventTimeSessionWindows,
    GlobalWindows,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
)
from flinkcore.runtime.operators.window import AlignedWindowOperator, SessionWindowOperator, WindowOperator
from flinkcore.runtime.operators.window_columnar import ColumnarWindowOperator


def env():
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(1)
    return e


def events(n=3000, nkeys=7, seed=3):
    rng = np.random.default_rng(seed)
    key = rng.integers(0, nkeys, n, dtype=np.int64)
    value = np.round(rng.random(n) * 100, 2)
    ts = np.arange(n, dtype=np.int64) // 3 - rng.integers(0, 20, n)
    return key, value, ts


def typed_stream(e, key, value, ts):
    from flinkcore.common import Duration

    table = pa.table({"key": key, "value": value, "ts": ts})
    ws = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(30)).with_timestamp_assigner("ts")
    return e.from_arrow(table).assign_timestamps_and_watermarks(ws)


def untyped_stream(e, key, value, ts):
    from flinkcore.common import Duration

    rows = list(zip(key.tolist(), value.tolist(), ts.tolist(), strict=True))
    ws = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(30)).with_timestamp_assigner(
        lambda v, t: v[2]
    )
    return e.from_collection(rows).assign_timestamps_and_watermarks(ws)


def window_operator(stream):
    return stream._transformation.operator_factory()


def rows_close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert len(x) == len(y)
        for u, v in zip(x, y, strict=True):
            if isinstance(u, float) or isinstance(v, float):
                assert math.isclose(u, v, rel_tol=1e-9), (x, y)
            else:
                assert u == v, (x, y)


@pytest.mark.parametrize(
    "assigner", [TumblingEventTimeWindows.of(Time.milliseconds(100)), SlidingEventTimeWindows.of(100, 40)]
)
def test_agg_columnar_equals_per_record(assigner):
    key, value, ts = events()
    named = dict(
        total=("value", "sum"), n=("value", "count"), lo=("value", "min"), hi=("value", "max"),
        avg=("value", "mean"), first=("value", "first"), last=("value", "last"),
    )  # fmt: skip
    typed = typed_stream(env(), key, value, ts).key_by("key").window(assigner).agg(**named)
    assert isinstance(window_operator(typed), ColumnarWindowOperator)
    got = sorted(typed.execute_and_collect())
    untyped = untyped_stream(env(), key, value, ts).key_by(lambda r: r[0]).window(assigner)
    plain = untyped.agg(**{k: (1, f) for k, (_, f) in named.items()})
    assert not isinstance(window_operator(plain), ColumnarWindowOperator)
    want = sorted(plain.execute_and_collect())
    assert len(got) > 10
    rows_close(got, want)
    first = got[0]
    assert first.key == first[0] and first.window_end - first.window_start == assigner.size
    assert first.n == sum(
        1
        for k, t in zip(key, ts, strict=True)
        if k == first.key and first.window_start <= t < first.window_end
    )


def test_session_agg_columnar_equals_per_record():
    from flinkcore.runtime.operators.window_columnar import ColumnarSessionOperator

    key, value, ts = events(4000, nkeys=50)
    named = dict(total=("value", "sum"), n=("value", "count"), lo=("value", "min"), avg=("value", "mean"))
    sessions = EventTimeSessionWindows.with_gap(Time.milliseconds(4))
    typed = typed_stream(env(), key, value, ts).key_by("key").window(sessions).agg(**named)
    assert isinstance(window_operator(typed), (ColumnarSessionOperator, ColumnarWindowOperator))
    got = sorted(typed.execute_and_collect())
    plain = untyped_stream(env(), key, value, ts).key_by(lambda r: r[0]).window(sessions)
    plain = plain.agg(**{k: (1, f) for k, (_, f) in named.items()})
    assert isinstance(window_operator(plain), SessionWindowOperator)
    want = sorted(plain.execute_and_collect())
    assert len(want) > 50
    rows_close(got, want)
    # first/last depend on merge order: they stay on the per-record path
    firsts = typed_stream(env(), key, value, ts).key_by("key").window(sessions).agg(f=("value", "first"))
    assert isinstance(window_operator(firsts), SessionWindowOperator)


@pytest.mark.parametrize("how", ["sum", "min", "max"])
def test_field_aggregations_columnar_equal_per_record(how):
    key, value, ts = events(1200)
    typed = getattr(
        typed_stream(env(), key, value, ts).key_by("key").window(TumblingEventTimeWindows.of(50)), how
    )("value")
    assert isinstance(window_operator(typed), ColumnarWindowOperator)
    got = sorted(typed.execute_and_collect())
    plain = getattr(
        untyped_stream(env(), key, value, ts).key_by(lambda r: r[0]).window(TumblingEventTimeWindows.of(50)),
        how,
    )(1)
    want = sorted(plain.execute_and_collect())
    rows_close(got, want)
    assert got[0]._fields == ("key", "value", "ts")


def test_operator_choice():
    key, value, ts = events(10)
    ks = untyped_stream(env(), key, value, ts).key_by(lambda r: r[0])
    red = lambda a, b: a  # noqa: E731
    assert isinstance(
        window_operator(ks.window(TumblingEventTimeWindows.of(5)).reduce(red)), AlignedWindowOperator
    )
    assert isinstance(
        window_operator(ks.window(EventTimeSessionWindows.with_gap(5)).reduce(red)), SessionWindowOperator
    )
    lateness = ks.window(EventTimeSessionWindows.with_gap(5)).allowed_lateness(10).reduce(red)
    assert isinstance(window_operator(lateness), WindowOperator)
    evicting = ks.window(TumblingEventTimeWindows.of(5)).evictor(CountEvictor.of(2)).reduce(red)
    assert isinstance(window_operator(evicting), WindowOperator)


def test_configuration_errors():
    key, value, ts = events(10)
    ks = untyped_stream(env(), key, value, ts).key_by(lambda r: r[0])
    with pytest.raises(ValueError, match="negative"):
        ks.window(TumblingEventTimeWindows.of(5)).allowed_lateness(-1)
    with pytest.raises(NotImplementedError, match="evictor"):
        ks.window(EventTimeSessionWindows.with_gap(5)).evictor(CountEvictor.of(2))
    with pytest.raises(TypeError, match="OutputTag"):
        ks.window(TumblingEventTimeWindows.of(5)).side_output_late_data("late")
    with pytest.raises(ValueError, match="agg"):
        ks.window(TumblingEventTimeWindows.of(5)).agg()
    with pytest.raises(ValueError, match="unknown function"):
        ks.window(TumblingEventTimeWindows.of(5)).agg(x=(1, "median"))
    with pytest.raises(TypeError, match="WindowAssigner"):
        ks.window("tumbling")


class PerElementWatermarks:
    """Emits each element's timestamp as the watermark: makes lateness deterministic."""

    def on_event(self, event, event_timestamp, output):
        from flinkcore.common.watermark import Watermark

        output.emit_watermark(Watermark(event_timestamp))

    def on_periodic_emit(self, output):
        pass


def test_late_data_side_output_on_columnar_and_per_record():
    table = pa.table({"key": [1, 1, 1, 1], "value": [1.0, 2.0, 3.0, 4.0], "ts": [0, 30, 5, 12]})
    tag = OutputTag("late")
    ws = WatermarkStrategy.for_generator(lambda ctx: PerElementWatermarks())
    for typed in (True, False):
        e = env()
        if typed:
            ks = (
                e.from_arrow(table)
                .assign_timestamps_and_watermarks(ws.with_timestamp_assigner("ts"))
                .key_by("key")
            )
        else:
            rows = [tuple(r.values()) for r in table.to_pylist()]
            src = e.from_collection(rows).assign_timestamps_and_watermarks(
                ws.with_timestamp_assigner(lambda v, t: v[2])
            )
            ks = src.key_by(lambda r: r[0])
        field = "value" if typed else 1
        out = ks.window(TumblingEventTimeWindows.of(10)).side_output_late_data(tag).agg(total=(field, "sum"))
        assert isinstance(window_operator(out), ColumnarWindowOperator) == typed
        main_results, late_results = [], []
        out.add_sink(main_results.append)
        out.get_side_output(tag).add_sink(late_results.append)
        e.execute("late")
        assert sorted(map(tuple, main_results)) == [(1, 0, 10, 1.0), (1, 30, 40, 2.0)]
        assert sorted(map(tuple, late_results)) == [(1, 3.0, 5), (1, 4.0, 12)]


def test_count_window_and_global_window_through_api():
    e = env()
    data = [("a", i) for i in range(7)]
    out = (
        e.from_collection(data)
        .key_by(lambda r: r[0])
        .count_window(3)
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    assert sorted(out.execute_and_collect()) == [("a", 3), ("a", 12)]
    e = env()
    out = (
        e.from_collection(data)
        .key_by(lambda r: r[0])
        .window(GlobalWindows.create())
        .trigger(CountTrigger.of(2))
        .evictor(CountEvictor.of(2))
        .apply(lambda key, window, inputs: [sum(v for _, v in inputs)])
    )
    assert list(out.execute_and_collect()) == [1, 5, 9]


def test_count_window_all():
    e = env()
    out = e.from_collection(list(range(10))).count_window_all(4).reduce(lambda a, b: a + b)
    assert sorted(out.execute_and_collect()) == [6, 22]


def test_window_all_agg_and_sum():
    key, value, ts = events(600)
    stream = untyped_stream(env(), key, value, ts)
    out = stream.window_all(TumblingEventTimeWindows.of(50)).agg(
        n=(1, "count"), total=(1, "sum"), avg=(1, "mean")
    )
    got = sorted(out.execute_and_collect())
    want = {}
    for v, t in zip(value.tolist(), ts.tolist(), strict=True):
        start = t - t % 50
        n, total = want.get(start, (0, 0.0))
        want[start] = (n + 1, total + v)
    assert [(r.window_start, r.window_end, r.n) for r in got] == [
        (s, s + 50, n) for s, (n, _) in sorted(want.items())
    ]
    for r in got:
        assert math.isclose(r.total, want[r.window_start][1]) and math.isclose(r.avg, r.total / r.n)
    assert got[0]._fields == ("window_start", "window_end", "n", "total", "avg")
    summed = untyped_stream(env(), key, value, ts).window_all(TumblingEventTimeWindows.of(50)).sum(1)
    totals = sorted(r[1] for r in summed.execute_and_collect())
    assert all(math.isclose(a, b) for a, b in zip(totals, sorted(t for _, t in want.values()), strict=True))


def test_user_defined_assigners_and_trigger():
    from flinkcore.datastream.window import (
        EventTimeTrigger,
        MergingWindowAssigner,
        TimeWindow,
        Trigger,
        TriggerResult,
        WindowAssigner,
    )

    class EvenOddWindows(WindowAssigner):
        """Two windows per element: its 10 ms bucket and, for even values, the bucket after."""

        def assign_windows(self, element, timestamp, context):
            start = timestamp - timestamp % 10
            windows = [TimeWindow(start, start + 10)]
            if element[1] % 2 == 0:
                windows.append(TimeWindow(start + 10, start + 20))
            return windows

        def get_default_trigger(self, env=None):
            return EventTimeTrigger()

        def is_event_time(self):
            return True

    class Everything(MergingWindowAssigner):
        """Merges every window of a key into one (a session with an infinite gap)."""

        def assign_windows(self, element, timestamp, context):
            return [TimeWindow(timestamp, timestamp + 1)]

        def merge_windows(self, windows, callback):
            windows = sorted(windows)
            if len(windows) > 1:
                callback.merge(windows, TimeWindow(windows[0].start, max(w.end for w in windows)))

        def get_default_trigger(self, env=None):
            return EventTimeTrigger()

        def is_event_time(self):
            return True

    class EveryTwo(Trigger):
        """Fires and purges every second element (counting in window-scoped state)."""

        def __init__(self):
            from flinkcore.datastream.state import ValueStateDescriptor

            self.desc = ValueStateDescriptor("n")

        def on_element(self, element, timestamp, window, ctx):
            n = ctx.get_partitioned_state(self.desc)
            count = (n.value() or 0) + 1
            n.update(count)
            return TriggerResult.FIRE_AND_PURGE if count % 2 == 0 else TriggerResult.CONTINUE

        def on_processing_time(self, time, window, ctx):
            return TriggerResult.CONTINUE

        def on_event_time(self, time, window, ctx):
            return TriggerResult.CONTINUE

        def clear(self, window, ctx):
            ctx.get_partitioned_state(self.desc).clear()

    data = [("a", 1, 1), ("a", 2, 3), ("a", 3, 12), ("a", 4, 25)]

    def stream():
        from flinkcore.common import Duration

        ws = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(0)).with_timestamp_assigner(
            lambda v, t: v[2]
        )
        return env().from_collection(data).assign_timestamps_and_watermarks(ws).key_by(lambda r: r[0])

    def fn(key, window, inputs):
        return [(window.start, window.end, sorted(v for _, v, _ in inputs))]

    got = sorted(stream().window(EvenOddWindows()).apply(fn).execute_and_collect())
    assert got == [(0, 10, [1, 2]), (10, 20, [2, 3]), (20, 30, [4]), (30, 40, [4])]
    merged = list(stream().window(Everything()).apply(fn).execute_and_collect())
    assert merged == [(1, 26, [1, 2, 3, 4])]
    pairs = list(stream().window(EvenOddWindows()).trigger(EveryTwo()).apply(fn).execute_and_collect())
    # every second element of a window fires it; [20, 30) and [30, 40) get one element each
    assert sorted(pairs) == [(0, 10, [1, 2]), (10, 20, [2, 3])]
