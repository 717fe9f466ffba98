"""PyFlink's window scenarios (flink-python/pyflink/datastream/tests/test_window.py), run as jobs
through flinkcore's public API: same inputs, same expected outputs."""

from __future__ import annotations

import pytest

from flinkcore.common import Types
from flinkcore.common.time import Time
from flinkcore.common.watermark_strategy import TimestampAssigner, WatermarkStrategy
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.functions import (
    AggregateFunction,
    ProcessAllWindowFunction,
    ProcessWindowFunction,
    WindowFunction,
)
from flinkcore.datastream.output_tag import OutputTag
from flinkcore.datastream.window import (
    CountSlidingWindowAssigner,
    CountTrigger,
    EventTimeSessionWindows,
    EventTimeTrigger,
    GlobalWindows,
    PurgingTrigger,
    SessionWindowTimeGapExtractor,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
)

HI = [("hi", 1), ("hi", 2), ("hi", 3), ("hi", 4), ("hi", 5), ("hi", 8), ("hi", 9), ("hi", 15)]
AB = [("a", 1), ("a", 2), ("b", 3), ("a", 6), ("b", 8), ("b", 9), ("a", 15)]


class SecondColumnTimestampAssigner(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp) -> int:
        return int(value[1])


class CountWindowProcessFunction(ProcessWindowFunction):
    def process(self, key, context, elements):
        return [(key, context.window().start, context.window().end, len([e for e in elements]))]


class CountAllWindowProcessFunction(ProcessAllWindowFunction):
    def process(self, context, elements):
        return [(context.window().start, context.window().end, len([e for e in elements]))]


class SumWindowFunction(WindowFunction):
    def apply(self, key, window, inputs):
        result = 0
        for i in inputs:
            result += i[0]
        return [(key, result)]


class OddEvenAggregate(AggregateFunction):
    def create_accumulator(self):
        return "", {0: 0, 1: 0}

    def add(self, value, accumulator):
        number_map = accumulator[1]
        number_map[value[1] % 2] += 1
        return value[0], number_map

    def get_result(self, accumulator):
        number_map = accumulator[1]
        return accumulator[0], number_map[0] - number_map[1]

    def merge(self, acc_a, acc_b):
        return acc_a[0], {0: acc_a[1][0] + acc_b[1][0], 1: acc_a[1][1] + acc_b[1][1]}


class SumAggregate(AggregateFunction):
    def create_accumulator(self):
        return 0, ""

    def add(self, value, accumulator):
        return value[1] + accumulator[0], value[0]

    def get_result(self, accumulator):
        return accumulator[1], accumulator[0]

    def merge(self, acc_a, acc_b):
        return acc_a[0] + acc_b[0], acc_a[1]


def timed(env, data):
    ws = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        SecondColumnTimestampAssigner()
    )
    return env.from_collection(
        data, type_info=Types.TUPLE([Types.STRING(), Types.INT()])
    ).assign_timestamps_and_watermarks(ws)


@pytest.fixture
def env():
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(1)
    return e


def collect(stream):
    return sorted(stream.execute_and_collect())


def test_event_time_tumbling_window(env):
    out = (
        timed(env, HI)
        .key_by(lambda x: x[0], key_type=Types.STRING())
        .window(TumblingEventTimeWindows.of(Time.milliseconds(5)))
        .process(CountWindowProcessFunction())
    )
    assert collect(out) == sorted([("hi", 0, 5, 4), ("hi", 5, 10, 3), ("hi", 15, 20, 1)])


def test_count_tumbling_window(env):
    data = [(1, "hi"), (2, "hello"), (3, "hi"), (4, "hello"), (5, "hi"), (6, "hello"), (6, "hello")]
    out = env.from_collection(data).key_by(lambda x: x[1]).count_window(3).apply(SumWindowFunction())
    assert collect(out) == sorted([("hi", 9), ("hello", 12)])


def test_event_time_sliding_window(env):
    out = (
        timed(env, HI)
        .key_by(lambda x: x[0])
        .window(SlidingEventTimeWindows.of(Time.milliseconds(5), Time.milliseconds(2)))
        .process(CountWindowProcessFunction())
    )
    expected = [(-2, 3, 2), (0, 5, 4), (2, 7, 4), (4, 9, 3), (6, 11, 2), (8, 13, 2), (12, 17, 1), (14, 19, 1)]
    assert collect(out) == sorted(("hi", *e) for e in expected)


def test_count_sliding_window(env):
    data = [(1, "hi"), (2, "hello"), (3, "hi"), (4, "hello"), (5, "hi"), (6, "hello")]
    out = (
        env.from_collection(data)
        .key_by(lambda x: x[1])
        .window(CountSlidingWindowAssigner(2, 1))
        .apply(SumWindowFunction())
    )
    assert collect(out) == sorted([("hello", 6), ("hi", 8), ("hi", 4), ("hello", 10)])


def test_count_window_with_slide(env):
    data = [(1, "hi"), (2, "hello"), (3, "hi"), (4, "hello"), (5, "hi"), (6, "hello")]
    out = env.from_collection(data).key_by(lambda x: x[1]).count_window(2, 1).apply(SumWindowFunction())
    assert collect(out) == sorted([("hello", 6), ("hi", 8), ("hi", 4), ("hello", 10)])


def test_event_time_session_window(env):
    data = [("hi", 1), ("hi", 2), ("hi", 3), ("hi", 4), ("hi", 8), ("hi", 9), ("hi", 15)]
    out = (
        timed(env, data)
        .key_by(lambda x: x[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(5)))
        .process(CountWindowProcessFunction())
    )
    assert collect(out) == [("hi", 1, 14, 6), ("hi", 15, 20, 1)]


def test_event_time_dynamic_gap_session_window(env):
    class Gap(SessionWindowTimeGapExtractor):
        def extract(self, element):
            return element[1]

    data = [("hi", 1), ("hi", 2), ("hi", 3), ("hi", 4), ("hi", 9), ("hi", 9), ("hi", 15)]
    out = (
        timed(env, data)
        .key_by(lambda x: x[0])
        .window(EventTimeSessionWindows.with_dynamic_gap(Gap()))
        .process(CountWindowProcessFunction())
    )
    assert collect(out) == [("hi", 1, 8, 4), ("hi", 9, 30, 3)]


def test_window_reduce_passthrough(env):
    out = (
        timed(env, AB)
        .key_by(lambda x: x[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(2)))
        .reduce(lambda a, b: (b[0], a[1] + b[1]))
    )
    assert collect(out) == sorted([("a", 3), ("a", 6), ("a", 15), ("b", 3), ("b", 17)])


def test_window_reduce_process(env):
    class MyProcessFunction(ProcessWindowFunction):
        def process(self, key, context, elements):
            yield f"current window start at {context.window().start}, reduce result {next(iter(elements))}"

    out = (
        timed(env, AB)
        .key_by(lambda x: x[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(2)))
        .reduce(
            lambda a, b: (b[0], a[1] + b[1]), window_function=MyProcessFunction(), output_type=Types.STRING()
        )
    )
    assert collect(out) == sorted(
        [
            "current window start at 1, reduce result ('a', 3)",
            "current window start at 15, reduce result ('a', 15)",
            "current window start at 3, reduce result ('b', 3)",
            "current window start at 6, reduce result ('a', 6)",
            "current window start at 8, reduce result ('b', 17)",
        ]
    )


def test_window_aggregate_passthrough(env):
    out = (
        timed(env, AB)
        .key_by(lambda x: x[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(2)))
        .aggregate(OddEvenAggregate())
    )
    assert collect(out) == sorted([("a", -1), ("a", 0), ("a", 1), ("b", -1), ("b", 0)])


def test_window_aggregate_process(env):
    class MyProcessWindowFunction(ProcessWindowFunction):
        def process(self, key, context, elements):
            agg_result = next(iter(elements))
            yield f"key {agg_result[0]} timestamp sum {agg_result[1]}"

    out = (
        timed(env, AB)
        .key_by(lambda x: x[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(2)))
        .aggregate(SumAggregate(), window_function=MyProcessWindowFunction(), accumulator_type=None)
    )
    assert collect(out) == sorted(
        [
            "key a timestamp sum 15",
            "key a timestamp sum 3",
            "key a timestamp sum 6",
            "key b timestamp sum 17",
            "key b timestamp sum 3",
        ]
    )


def test_session_window_late_merge(env):
    out = (
        timed(env, [("hi", 0), ("hi", 8), ("hi", 4)])
        .key_by(lambda x: x[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(5)))
        .process(CountWindowProcessFunction())
    )
    assert collect(out) == [("hi", 0, 13, 3)]


def test_event_time_session_window_with_purging_trigger(env):
    data = [("hi", 1), ("hi", 2), ("hi", 3), ("hi", 4), ("hi", 8), ("hi", 9), ("hi", 15)]
    out = (
        timed(env, data)
        .key_by(lambda x: x[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(3)))
        .trigger(PurgingTrigger.of(EventTimeTrigger.create()))
        .process(CountWindowProcessFunction())
    )
    assert collect(out) == [("hi", 1, 7, 4), ("hi", 8, 12, 2), ("hi", 15, 18, 1)]


def test_global_window_with_purging_trigger(env):
    class MyProcessFunction(ProcessWindowFunction):
        def process(self, key, context, elements):
            return [(key, len([e for e in elements]))]

    out = (
        timed(env, [("hi", 1)] * 7)
        .key_by(lambda x: x[0])
        .window(GlobalWindows.create())
        .trigger(PurgingTrigger.of(CountTrigger.of(2)))
        .process(MyProcessFunction())
    )
    assert collect(out) == [("hi", 2)] * 3


def test_event_time_tumbling_window_all(env):
    data = [("hi", 1), ("hello", 2), ("hi", 3), ("hello", 4), ("hello", 5), ("hi", 8), ("hi", 9), ("hi", 15)]
    out = (
        timed(env, data)
        .window_all(TumblingEventTimeWindows.of(Time.milliseconds(5)))
        .process(CountAllWindowProcessFunction())
    )
    assert collect(out) == [(0, 5, 4), (5, 10, 3), (15, 20, 1)]


def test_window_all_reduce(env):
    out = (
        timed(env, AB)
        .window_all(EventTimeSessionWindows.with_gap(Time.milliseconds(2)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    assert collect(out) == sorted([("a", 15), ("a", 6), ("a", 23)])


def test_window_all_reduce_process(env):
    class MyProcessFunction(ProcessAllWindowFunction):
        def process(self, context, elements):
            yield f"current window start at {context.window().start}, reduce result {next(iter(elements))}"

    out = (
        timed(env, AB)
        .window_all(EventTimeSessionWindows.with_gap(Time.milliseconds(2)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]), window_function=MyProcessFunction())
    )
    assert collect(out) == sorted(
        [
            "current window start at 1, reduce result ('a', 6)",
            "current window start at 6, reduce result ('a', 23)",
            "current window start at 15, reduce result ('a', 15)",
        ]
    )


def test_window_all_aggregate(env):
    out = (
        timed(env, AB)
        .window_all(EventTimeSessionWindows.with_gap(Time.milliseconds(2)))
        .aggregate(OddEvenAggregate())
    )
    assert collect(out) == sorted([("a", -1), ("b", -1), ("b", 1)])


def test_window_all_aggregate_process(env):
    class MyProcessWindowFunction(ProcessAllWindowFunction):
        def process(self, context, elements):
            agg_result = next(iter(elements))
            yield f"key {agg_result[0]} timestamp sum {agg_result[1]}"

    out = (
        timed(env, AB)
        .window_all(EventTimeSessionWindows.with_gap(Time.milliseconds(2)))
        .aggregate(SumAggregate(), window_function=MyProcessWindowFunction())
    )
    assert collect(out) == sorted(
        ["key b timestamp sum 6", "key b timestamp sum 23", "key a timestamp sum 15"]
    )


def test_side_output_late_data(env):
    from flinkcore.common.watermark import Watermark

    class PerElement:
        def on_event(self, event, event_timestamp, output):
            output.emit_watermark(Watermark(event_timestamp))

        def on_periodic_emit(self, output):
            pass

    ws = WatermarkStrategy.for_generator(lambda ctx: PerElement()).with_timestamp_assigner(
        SecondColumnTimestampAssigner()
    )
    tag = OutputTag("late-data", type_info=Types.ROW([Types.STRING(), Types.INT()]))
    ds = (
        env.from_collection([("a", 0), ("a", 8), ("a", 4), ("a", 6)])
        .assign_timestamps_and_watermarks(ws)
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(5)))
        .allowed_lateness(0)
        .side_output_late_data(tag)
        .process(CountWindowProcessFunction())
    )
    main, side = [], []
    ds.add_sink(lambda v, ctx=None: main.append(v))
    ds.get_side_output(tag).add_sink(lambda v, ctx=None: side.append(v))
    env.execute("test_side_output_late_data")
    assert sorted(main) == [("a", 0, 5, 1), ("a", 5, 10, 2)]
    assert side == [("a", 4)]


def test_chained_window(env):
    class MyTimestampAssigner(TimestampAssigner):
        def extract_timestamp(self, value, record_timestamp):
            return value[0]

    ds = env.from_collection(
        [
            (1676461680000, "a1", "b1", 1),
            (1676461680000, "a1", "b1", 1),
            (1676461680000, "a2", "b2", 1),
            (1676461680000, "a1", "b2", 1),
            (1676461740000, "a1", "b1", 1),
            (1676461740000, "a2", "b2", 1),
        ]
    ).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(MyTimestampAssigner())
    )
    out = (
        ds.key_by(lambda x: (x[0], x[1], x[2]))
        .window(TumblingEventTimeWindows.of(Time.minutes(1)))
        .reduce(lambda x, y: (x[0], x[1], x[2], x[3] + y[3]))
        .map(lambda x: (x[0], x[1], x[3]))
    )
    assert collect(out) == sorted(
        [
            (1676461680000, "a1", 1),
            (1676461680000, "a1", 2),
            (1676461680000, "a2", 1),
            (1676461740000, "a1", 1),
            (1676461740000, "a2", 1),
        ]
    )
