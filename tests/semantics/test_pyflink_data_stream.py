"""Scenarios of PyFlink's own DataStream test suite (flink-python/pyflink/datastream/tests/
test_data_stream.py), re-expressed through flinkcore's public API with the inputs and expected
outputs PyFlink asserts. PyFlink's streaming test cases run at parallelism 2; so do these where
PyFlink's expectations depend on it."""

from collections import defaultdict

import pytest

from flinkcore.common import Row, Types, WatermarkStrategy
from flinkcore.common.time import Time
from flinkcore.common.watermark_strategy import TimestampAssigner
from flinkcore.datastream import (
    BroadcastProcessFunction,
    CoFlatMapFunction,
    CoMapFunction,
    CoProcessFunction,
    FilterFunction,
    FlatMapFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    KeySelector,
    MapFunction,
    OutputTag,
    ProcessFunction,
    ReduceFunction,
    RuntimeExecutionMode,
    SinkFunction,
    StreamExecutionEnvironment,
)
from flinkcore.datastream.functions import AggregateFunction
from flinkcore.datastream.state import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)


class ListSink(SinkFunction):
    def __init__(self):
        self.results = []

    def invoke(self, value, context):
        self.results.append(value)


class SecondColumnTimestampAssigner(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return int(value[1])


class MyKeySelector(KeySelector):
    def get_key(self, value):
        return value[1]


@pytest.fixture(params=[1, 2], ids=["p1", "p2"])
def env(request):
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(request.param)
    return e


def _sorted(xs):
    return sorted(xs, key=lambda x: str(tuple(x)) if isinstance(x, tuple) else str(x))


def test_basic_operations(env):
    ds = env.from_collection(
        [("ab", Row("a", 1)), ("bdc", Row("b", 2)), ("cfgs", Row("c", 3)), ("deeefg", Row("d", 4))],
        type_info=Types.TUPLE([Types.STRING(), Types.ROW([Types.STRING(), Types.INT()])]),
    )

    class MyMapFunction(MapFunction):
        def map(self, value):
            return Row(value[0], value[1] + 1, value[2])

    class MyFlatMapFunction(FlatMapFunction):
        def flat_map(self, value):
            if value[1] % 2 == 0:
                yield value

    class MyFilterFunction(FilterFunction):
        def filter(self, value):
            return value[1] > 2

    sink = ListSink()
    (
        ds.map(lambda i: (i[0], len(i[0]), i[1][1]))
        .flat_map(MyFlatMapFunction())
        .filter(MyFilterFunction())
        .map(MyMapFunction())
        .add_sink(sink)
    )
    env.execute("test_basic_operations")
    assert _sorted(sink.results) == [Row("cfgs", 5, 3), Row("deeefg", 7, 4)]


def test_keyed_process_function_with_state():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.get_config().set_auto_watermark_interval(2000)
    ds = env.from_collection(
        [
            (1, "hi", "1603708211000"),
            (2, "hello", "1603708224000"),
            (3, "hi", "1603708226000"),
            (4, "hello", "1603708289000"),
            (5, "hi", "1603708291000"),
            (6, "hello", "1603708293000"),
        ],
        type_info=Types.ROW([Types.INT(), Types.STRING(), Types.STRING()]),
    )

    class MyTimestampAssigner(TimestampAssigner):
        def extract_timestamp(self, value, record_timestamp) -> int:
            return int(value[2])

    class MyProcessFunction(KeyedProcessFunction):
        def open(self, runtime_context):
            self.value_state = runtime_context.get_state(ValueStateDescriptor("value_state", Types.INT()))
            self.list_state = runtime_context.get_list_state(ListStateDescriptor("list_state", Types.INT()))
            desc = MapStateDescriptor("map_state", Types.INT(), Types.STRING())
            desc.enable_time_to_live(
                StateTtlConfig.new_builder(Time.seconds(1))
                .set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)
                .set_state_visibility(StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp)
                .disable_cleanup_in_background()
                .build()
            )
            self.map_state = runtime_context.get_map_state(desc)

        def process_element(self, value, ctx):
            current_value = self.value_state.value()
            self.value_state.update(value[0])
            current_list = list(self.list_state.get())
            self.list_state.add(value[0])
            entries = dict(self.map_state.items())
            entries_string = "{" + ", ".join(f"{k}: {entries[k]}" for k in sorted(entries)) + "}"
            self.map_state.put(value[0], value[1])
            yield (
                f"current key: {ctx.get_current_key()}, current value state: {current_value}, "
                f"current list state: {current_list}, current map state: {entries_string}, "
                f"current value: {value}"
            )

    sink = ListSink()
    (
        ds.assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(MyTimestampAssigner())
        )
        .key_by(lambda x: x[1], key_type=Types.STRING())
        .process(MyProcessFunction(), output_type=Types.STRING())
        .add_sink(sink)
    )
    env.execute("test time stamp assigner with keyed process function")
    expected = [
        "current key: hi, current value state: None, current list state: [], current map state: {}, "
        "current value: Row(f0=1, f1='hi', f2='1603708211000')",
        "current key: hello, current value state: None, current list state: [], current map state: {}, "
        "current value: Row(f0=2, f1='hello', f2='1603708224000')",
        "current key: hi, current value state: 1, current list state: [1], current map state: {1: hi}, "
        "current value: Row(f0=3, f1='hi', f2='1603708226000')",
        "current key: hello, current value state: 2, current list state: [2], current map state: "
        "{2: hello}, current value: Row(f0=4, f1='hello', f2='1603708289000')",
        "current key: hi, current value state: 3, current list state: [1, 3], current map state: "
        "{1: hi, 3: hi}, current value: Row(f0=5, f1='hi', f2='1603708291000')",
        "current key: hello, current value state: 4, current list state: [2, 4], current map state: "
        "{2: hello, 4: hello}, current value: Row(f0=6, f1='hello', f2='1603708293000')",
    ]
    assert sorted(sink.results) == sorted(expected)


def test_reducing_state(env):
    ds = env.from_collection([(1, "hi"), (2, "hello"), (3, "hi"), (4, "hello"), (5, "hi"), (6, "hello")])

    class MyProcessFunction(KeyedProcessFunction):
        def open(self, runtime_context):
            self.state = runtime_context.get_reducing_state(
                ReducingStateDescriptor("reducing_state", lambda i, i2: i + i2, Types.INT())
            )

        def process_element(self, value, ctx):
            self.state.add(value[0])
            yield self.state.get(), value[1]

    out = ds.key_by(lambda x: x[1]).process(MyProcessFunction()).execute_and_collect()
    assert _sorted(out) == _sorted(
        [(1, "hi"), (2, "hello"), (4, "hi"), (6, "hello"), (9, "hi"), (12, "hello")]
    )


def test_aggregating_state_with_ttl(env):
    class MyAggregateFunction(AggregateFunction):
        def create_accumulator(self):
            return 0

        def add(self, value, accumulator):
            return value + accumulator

        def get_result(self, accumulator):
            return accumulator

        def merge(self, acc_a, acc_b):
            return acc_a + acc_b

    class MyProcessFunction(KeyedProcessFunction):
        def open(self, runtime_context):
            desc = AggregatingStateDescriptor("aggregating_state", MyAggregateFunction(), Types.INT())
            desc.enable_time_to_live(
                StateTtlConfig.new_builder(Time.seconds(1))
                .set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)
                .disable_cleanup_in_background()
                .build()
            )
            self.state = runtime_context.get_aggregating_state(desc)

        def process_element(self, value, ctx):
            self.state.add(value[0])
            yield self.state.get(), value[1]

    ds = env.from_collection([(1, "hi"), (2, "hello"), (3, "hi"), (4, "hello"), (5, "hi"), (6, "hello")])
    out = ds.key_by(lambda x: x[1]).process(MyProcessFunction()).execute_and_collect()
    assert _sorted(out) == _sorted(
        [(1, "hi"), (2, "hello"), (4, "hi"), (6, "hello"), (9, "hi"), (12, "hello")]
    )


def test_basic_co_operations(env):
    class MyCoFlatMapFunction(CoFlatMapFunction):
        def flat_map1(self, value):
            yield value + 1

        def flat_map2(self, value):
            yield value - 1

    class MyCoMapFunction(CoMapFunction):
        def map1(self, value):
            return value + 2

        def map2(self, value):
            return value + 1

    sink = ListSink()
    ds_1 = env.from_collection([1, 2, 3, 4, 5])
    ds_2 = ds_1.map(lambda x: x * 2)
    ds_1.connect(ds_2).flat_map(MyCoFlatMapFunction()).connect(ds_2).map(MyCoMapFunction()).add_sink(sink)
    env.execute("test_basic_co_operations")
    assert sorted(sink.results) == sorted([4, 5, 6, 7, 8, 3, 5, 7, 9, 11, 3, 5, 7, 9, 11])


class MyKeyedCoProcessFunction(KeyedCoProcessFunction):
    def open(self, runtime_context):
        self.count_state = runtime_context.get_state(ValueStateDescriptor("count", Types.INT()))
        self.timer_registered = False

    def process_element1(self, value, ctx):
        if not self.timer_registered:
            ctx.timer_service().register_event_time_timer(3)
            self.timer_registered = True
        count = (self.count_state.value() or 0) + 1
        self.count_state.update(count)
        yield Row(value[0], count)

    def process_element2(self, value, ctx):
        count = (self.count_state.value() or 0) + 1
        self.count_state.update(count)
        yield Row(value[0], count)

    def on_timer(self, timestamp, ctx):
        yield Row("on_timer", timestamp)


def test_keyed_co_process():
    env = StreamExecutionEnvironment.get_execution_environment()
    ds1 = env.from_collection(
        [("a", 1), ("b", 2), ("c", 3)], type_info=Types.ROW([Types.STRING(), Types.INT()])
    )
    ds2 = env.from_collection(
        [("b", 2), ("c", 3), ("d", 4)], type_info=Types.ROW([Types.STRING(), Types.INT()])
    )
    wm = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        SecondColumnTimestampAssigner()
    )
    out = (
        ds1.assign_timestamps_and_watermarks(wm)
        .connect(ds2.assign_timestamps_and_watermarks(wm))
        .key_by(lambda x: x[0], lambda x: x[0])
        .process(MyKeyedCoProcessFunction())
        .map(lambda x: Row(x[0], x[1] + 1))
        .execute_and_collect()
    )
    expected = [
        Row("a", 2),
        Row("b", 2),
        Row("b", 3),
        Row("c", 2),
        Row("c", 3),
        Row("d", 2),
        Row("on_timer", 4),
    ]
    assert _sorted(out) == _sorted(expected)


def test_co_broadcast_process():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    ds = env.from_collection([1, 2, 3, 4, 5], type_info=Types.INT())
    ds_broadcast = env.from_collection(
        [(0, "a"), (1, "b")], type_info=Types.TUPLE([Types.INT(), Types.STRING()])
    )

    class MyBroadcastProcessFunction(BroadcastProcessFunction):
        def __init__(self, desc):
            self._desc = desc
            self._cache = defaultdict(list)

        def process_element(self, value, ctx):
            state = ctx.get_broadcast_state(self._desc)
            key = value % 2
            if state.contains(key):
                if self._cache.get(key) is not None:
                    for v in self._cache[key]:
                        yield state.get(key) + str(v)
                    self._cache[key].clear()
                yield state.get(key) + str(value)
            else:
                self._cache[key].append(value)

        def process_broadcast_element(self, value, ctx):
            key = value[0]
            yield str(key) + value[1]
            ctx.get_broadcast_state(self._desc).put(key, value[1])
            if self._cache.get(key) is not None:
                for v in self._cache[key]:
                    yield value[1] + str(v)
                self._cache[key].clear()

    desc = MapStateDescriptor("mapping", key_type_info=Types.INT(), value_type_info=Types.STRING())
    out = (
        ds.connect(ds_broadcast.broadcast(desc))
        .process(MyBroadcastProcessFunction(desc))
        .execute_and_collect()
    )
    assert sorted(out) == ["0a", "0a", "1b", "1b", "a2", "a4", "b1", "b3", "b5"]


def test_keyed_co_broadcast_process():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    ds = env.from_collection(
        [(1, "1603708211000"), (2, "1603708212000"), (3, "1603708213000"), (4, "1603708214000")],
        type_info=Types.ROW([Types.INT(), Types.STRING()]),
    )
    ds_broadcast = env.from_collection(
        [(0, "1603708215000", "a"), (1, "1603708215000", "b")],
        type_info=Types.ROW([Types.INT(), Types.STRING(), Types.STRING()]),
    )
    wm = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        SecondColumnTimestampAssigner()
    )
    ds = ds.assign_timestamps_and_watermarks(wm)
    ds_broadcast = ds_broadcast.assign_timestamps_and_watermarks(wm)

    def s(v, t):
        return f"value: {v}, ts: {t}"

    class MyKeyedBroadcastProcessFunction(KeyedBroadcastProcessFunction):
        def __init__(self, desc):
            self._desc = desc

        def open(self, runtime_context):
            self._cache = defaultdict(list)

        def process_element(self, value, ctx):
            state = ctx.get_broadcast_state(self._desc)
            key = value[0] % 2
            if state.contains(key):
                if self._cache.get(key) is not None:
                    for v in self._cache[key]:
                        yield s(state.get(key) + str(v[0]), v[1])
                    self._cache[key].clear()
                yield s(state.get(key) + str(value[0]), value[1])
            else:
                self._cache[key].append(value)
            ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10000)

        def process_broadcast_element(self, value, ctx):
            key = value[0]
            yield s(str(key) + value[2], ctx.timestamp())
            ctx.get_broadcast_state(self._desc).put(key, value[2])
            if self._cache.get(key) is not None:
                for v in self._cache[key]:
                    yield s(value[2] + str(v[0]), v[1])
                self._cache[key].clear()

        def on_timer(self, timestamp, ctx):
            yield s(ctx.get_current_key(), timestamp)

    desc = MapStateDescriptor("mapping", key_type_info=Types.INT(), value_type_info=Types.STRING())
    out = (
        ds.key_by(lambda t: t[0])
        .connect(ds_broadcast.broadcast(desc))
        .process(MyKeyedBroadcastProcessFunction(desc))
        .execute_and_collect()
    )
    expected = [
        "value: 0a, ts: 1603708215000",
        "value: 0a, ts: 1603708215000",
        "value: 1, ts: 1603708221000",
        "value: 1b, ts: 1603708215000",
        "value: 1b, ts: 1603708215000",
        "value: 2, ts: 1603708222000",
        "value: 3, ts: 1603708223000",
        "value: 4, ts: 1603708224000",
        "value: a2, ts: 1603708212000",
        "value: a4, ts: 1603708214000",
        "value: b1, ts: 1603708211000",
        "value: b3, ts: 1603708213000",
    ]
    assert sorted(out) == sorted(expected)


def test_process_side_outputs(env):
    tag1 = OutputTag("side1", Types.INT())
    tag2 = OutputTag("side2", Types.STRING())
    ds = env.from_collection(
        [("a", 0), ("b", 1), ("c", 2)], type_info=Types.ROW([Types.STRING(), Types.INT()])
    )

    class MyProcessFunction(ProcessFunction):
        def process_element(self, value, ctx):
            yield value[0]
            yield tag1, value[1]
            yield tag2, value[0] + str(value[1])

    ds2 = ds.map(lambda e: (e[0], e[1] + 1)).process(MyProcessFunction(), output_type=Types.STRING())
    main, side1, side2 = ListSink(), ListSink(), ListSink()
    ds2.add_sink(main)
    ds2.get_side_output(tag1).add_sink(side1)
    ds2.get_side_output(tag2).add_sink(side2)
    env.execute("test_process_multiple_side_output")
    assert sorted(main.results) == ["a", "b", "c"]
    assert sorted(side1.results) == [1, 2, 3]
    assert sorted(side2.results) == ["a1", "b2", "c3"]


def test_co_process_side_output(env):
    tag = OutputTag("side", Types.INT())

    class MyCoProcessFunction(CoProcessFunction):
        def process_element1(self, value, ctx):
            yield value[0]
            yield tag, value[1]

        def process_element2(self, value, ctx):
            yield value[1]
            yield tag, value[0]

    ds1 = env.from_collection([("a", 0), ("b", 1), ("c", 2)])
    ds2 = env.from_collection([(3, "c"), (1, "a"), (0, "d")])
    ds3 = ds1.connect(ds2).process(MyCoProcessFunction(), output_type=Types.STRING())
    main, side = ListSink(), ListSink()
    ds3.add_sink(main)
    ds3.get_side_output(tag).add_sink(side)
    env.execute("test_co_process_side_output")
    assert sorted(main.results) == ["a", "a", "b", "c", "c", "d"]
    assert sorted(side.results) == [0, 0, 1, 1, 2, 3]


def test_keyed_co_broadcast_side_output():
    tag = OutputTag("side", Types.INT())

    class MyKeyedBroadcastProcessFunction(KeyedBroadcastProcessFunction):
        def open(self, context):
            self.state = context.get_reducing_state(ReducingStateDescriptor("reduce", lambda i, j: i + j))

        def process_element(self, value, ctx):
            self.state.add(value[1])
            yield value[0]
            yield tag, self.state.get()

        def process_broadcast_element(self, value, ctx):
            yield value[1]
            yield tag, value[0]

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    ds = env.from_collection([("a", 0), ("b", 1), ("a", 2), ("b", 3)])
    ds_broadcast = env.from_collection([(5, "c"), (6, "d")])
    desc = MapStateDescriptor("dummy", key_type_info=Types.INT(), value_type_info=Types.STRING())
    ds = (
        ds.key_by(lambda e: e[0])
        .connect(ds_broadcast.broadcast(desc))
        .process(MyKeyedBroadcastProcessFunction())
    )
    main, side = ListSink(), ListSink()
    ds.get_side_output(tag).add_sink(side)
    ds.add_sink(main)
    env.execute("test_keyed_co_broadcast_process_side_output")
    assert sorted(main.results) == ["a", "a", "b", "b", "c", "c", "d", "d"]
    assert sorted(side.results) == [0, 1, 2, 4, 5, 5, 6, 6]


def test_keyed_co_process_side_output(env):
    tag = OutputTag("side", Types.INT())

    class F(KeyedCoProcessFunction):
        def open(self, context):
            self.state = context.get_reducing_state(ReducingStateDescriptor("reduce", lambda i, j: i + j))

        def process_element1(self, value, ctx):
            yield ctx.get_current_key(), value[1]
            self.state.add(1)
            yield tag, self.state.get()

        def process_element2(self, value, ctx):
            yield ctx.get_current_key(), value[0]
            self.state.add(1)
            yield tag, self.state.get()

    ds1 = env.from_collection([("a", 1), ("b", 2), ("a", 3), ("b", 4)])
    ds2 = env.from_collection([(8, "a"), (7, "b"), (6, "a"), (5, "b")])
    ds3 = ds1.key_by(lambda e: e[0]).connect(ds2.key_by(lambda e: e[1])).process(F())
    main, side = ListSink(), ListSink()
    ds3.add_sink(main)
    ds3.get_side_output(tag).add_sink(side)
    env.execute("test_keyed_co_process_side_output")
    assert _sorted(main.results) == _sorted(
        [("a", 1), ("b", 2), ("a", 3), ("b", 4), ("b", 5), ("a", 6), ("b", 7), ("a", 8)]
    )
    assert sorted(side.results) == [1, 1, 2, 2, 3, 3, 4, 4]


def test_side_output_tag_reusing_and_collect(env):
    tag = OutputTag("side", Types.INT())

    class MyProcessFunction(ProcessFunction):
        def process_element(self, value, ctx):
            yield value
            yield tag, value * 2

    ds = env.from_collection([1, 2, 3], Types.INT()).process(MyProcessFunction())
    side2 = ListSink()
    ds.map(lambda i: i * 2).process(MyProcessFunction()).get_side_output(tag).add_sink(side2)
    assert sorted(ds.get_side_output(tag).execute_and_collect()) == [2, 4, 6]
    assert sorted(side2.results) == [4, 8, 12]


class MyReduceFunction(ReduceFunction):
    def reduce(self, value1, value2):
        return Row(value1[0] + value2[0], value1[1])


@pytest.mark.parametrize(
    "mode,expected",
    [
        (
            RuntimeExecutionMode.STREAMING,
            [Row("a", 0), Row("ab", 0), Row("c", 1), Row("cd", 1), Row("cde", 1)],
        ),
        (RuntimeExecutionMode.BATCH, [Row("ab", 0), Row("cde", 1)]),
    ],
)
def test_reduce_with_state(mode, expected):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(mode)
    ds = env.from_collection(
        [("a", 0), ("c", 1), ("d", 1), ("b", 0), ("e", 1)], type_info=Types.ROW([Types.STRING(), Types.INT()])
    )
    keyed = ds.key_by(MyKeySelector(), key_type=Types.INT())
    with pytest.raises(ValueError):
        keyed.name("keyed stream")
    assert _sorted(keyed.reduce(MyReduceFunction()).execute_and_collect()) == _sorted(expected)


def test_keyed_map_flat_map_filter_see_keyed_state(env):
    ds = env.from_collection(
        [("a", 0), ("b", 1), ("c", 0), ("d", 1), ("e", 2)], type_info=Types.ROW([Types.STRING(), Types.INT()])
    )

    class CountingMap(MapFunction):
        def open(self, runtime_context):
            self.state = runtime_context.get_state(ValueStateDescriptor("n", Types.INT()))

        def map(self, value):
            n = (self.state.value() or 0) + 1
            self.state.update(n)
            return value[0], n

    class CountingFlatMap(FlatMapFunction):
        def open(self, runtime_context):
            self.state = runtime_context.get_state(ValueStateDescriptor("n", Types.INT()))

        def flat_map(self, value):
            n = (self.state.value() or 0) + 1
            self.state.update(n)
            yield value[0], n

    class FirstOfKey(FilterFunction):
        def open(self, runtime_context):
            self.state = runtime_context.get_state(ValueStateDescriptor("seen", Types.BOOLEAN()))

        def filter(self, value):
            seen = self.state.value()
            self.state.update(True)
            return not seen

    keyed = ds.key_by(MyKeySelector(), key_type=Types.INT())
    assert _sorted(keyed.map(CountingMap()).execute_and_collect()) == _sorted(
        [("a", 1), ("b", 1), ("c", 2), ("d", 2), ("e", 1)]
    )
    keyed = env.from_collection([("a", 0), ("b", 1), ("c", 0), ("d", 1), ("e", 2)]).key_by(lambda x: x[1])
    assert _sorted(keyed.flat_map(CountingFlatMap()).execute_and_collect()) == _sorted(
        [("a", 1), ("b", 1), ("c", 2), ("d", 2), ("e", 1)]
    )
    keyed = env.from_collection([("a", 0), ("b", 1), ("c", 0), ("d", 1), ("e", 2)]).key_by(lambda x: x[1])
    assert sorted(keyed.filter(FirstOfKey()).execute_and_collect()) == [("a", 0), ("b", 1), ("e", 2)]


def test_multi_key_by(env):
    ds = env.from_collection([("a", 0), ("b", 0), ("c", 1), ("d", 1), ("e", 2)])
    sink = ListSink()
    ds.key_by(MyKeySelector()).key_by(lambda x: x[0]).add_sink(sink)
    env.execute("test multi key by")
    assert sorted(sink.results) == [("a", 0), ("b", 0), ("c", 1), ("d", 1), ("e", 2)]


def test_process_function_sees_timestamps():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.get_config().set_auto_watermark_interval(2000)
    ds = env.from_collection(
        [(1, "1603708211000"), (2, "1603708224000"), (3, "1603708226000"), (4, "1603708289000")],
        type_info=Types.ROW([Types.INT(), Types.STRING()]),
    )

    class MyProcessFunction(ProcessFunction):
        def process_element(self, value, ctx):
            yield f"current timestamp: {ctx.timestamp()}, current_value: {value}"

    out = (
        ds.assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
                SecondColumnTimestampAssigner()
            )
        )
        .process(MyProcessFunction())
        .execute_and_collect()
    )
    assert sorted(out) == [
        "current timestamp: 1603708211000, current_value: Row(f0=1, f1='1603708211000')",
        "current timestamp: 1603708224000, current_value: Row(f0=2, f1='1603708224000')",
        "current timestamp: 1603708226000, current_value: Row(f0=3, f1='1603708226000')",
        "current timestamp: 1603708289000, current_value: Row(f0=4, f1='1603708289000')",
    ]


def test_keyed_sum_streaming_and_batch():
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection(
        [(1, 1), (1, 2), (1, 3), (2, 5), (2, 1)],
        type_info=Types.ROW_NAMED(["v1", "v2"], [Types.INT(), Types.INT()]),
    )
    out = ds.key_by(lambda x: x[0]).sum("v2").map(lambda r: (r.v1, r.v2)).execute_and_collect()
    assert list(out) == [(1, 1), (1, 3), (1, 6), (2, 5), (2, 6)]

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    ds = env.from_collection(
        [(1, 1), (1, 2), (1, 3), (5, 1), (5, 5)],
        type_info=Types.ROW_NAMED(["v1", "v2"], [Types.INT(), Types.INT()]),
    )

    def flat_map_func1(data):
        for i in data:
            yield 12, i

    def flat_map_func2(data):
        yield from data

    out = (
        ds.key_by(lambda x: x[0])
        .sum("v2")
        .key_by(lambda x: x[1])
        .sum()
        .flat_map(flat_map_func1)
        .key_by(lambda x: x[0])
        .sum(1)
        .flat_map(flat_map_func2)
        .key_by(lambda x: x)
        .sum()
        .execute_and_collect()
    )
    assert list(out) == [24]


def test_keyed_min_by_max_by_min_max():
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection(
        [("a", 3, 0), ("a", 1, 1), ("b", 5, 0), ("b", 3, 1)],
        type_info=Types.ROW_NAMED(["v1", "v2", "v3"], [Types.STRING(), Types.INT(), Types.INT()]),
    )
    out = (
        ds.key_by(lambda x: x[0])
        .min_by("v2")
        .map(lambda x: (x[0], x[1], x[2]))
        .key_by(lambda x: x[2])
        .max(1)
        .key_by(lambda x: x[2])
        .min()
        .map(lambda x: x[0])
        .key_by(lambda x: x)
        .max_by()
        .execute_and_collect()
    )
    assert list(out) == ["a", "a", "a", "a"]


def test_execution_plan_shape():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    ds_1, ds_2, ds_3 = (env.from_collection(x) for x in ([1, 2, 3], [4, 5, 6], [7, 8, 9]))
    ds_3.union(ds_1, ds_2).map(lambda x: x + 1).set_parallelism(3).add_sink(ListSink())
    plan = eval(env.get_execution_plan())  # noqa: S307 - our own JSON, as PyFlink's test does
    sources = sorted(n["id"] for n in plan["nodes"] if n["pact"] == "Data Source")
    mapper = [n for n in plan["nodes"] if n["contents"] == "Map"][0]
    assert sorted(p["id"] for p in mapper["predecessors"]) == sources
    assert mapper["parallelism"] == 3
    assert all(n["parallelism"] == 1 for n in plan["nodes"] if n["pact"] == "Data Source")


class MyRichCoFlatMapFunction(CoFlatMapFunction):
    def open(self, runtime_context):
        self.map_state = runtime_context.get_map_state(
            MapStateDescriptor("map", Types.STRING(), Types.BOOLEAN())
        )

    def flat_map1(self, value):
        yield str(value[0] + 1)
        yield str(value[0] + 1)

    def flat_map2(self, value):
        if value[0] not in self.map_state:
            self.map_state[value[0]] = True
            yield value[0]


def test_keyed_co_flat_map_with_map_state_as_dict(env):
    ds1 = env.from_collection([(1, 1), (2, 2), (3, 3)], type_info=Types.ROW([Types.INT(), Types.INT()]))
    ds2 = env.from_collection(
        [("a", "a"), ("b", "b"), ("c", "c"), ("a", "a")],
        type_info=Types.ROW([Types.STRING(), Types.STRING()]),
    )
    out = (
        ds1.connect(ds2)
        .key_by(lambda x: 1, lambda x: 1)
        .flat_map(MyRichCoFlatMapFunction())
        .filter(lambda x: x != "4")
        .execute_and_collect()
    )
    assert sorted(out) == ["2", "2", "3", "3", "a", "b", "c"]


class StatefulReduce(ReduceFunction):
    def open(self, runtime_context):
        self.state = runtime_context.get_state(ValueStateDescriptor("test_state", Types.INT()))

    def reduce(self, value1, value2):
        state_value = self.state.value()
        state_value = 2 if state_value is None else state_value + 1
        result = Row(value1[0] + value2[0], value1[1])
        if result[0] == "ab":
            assert state_value == 2
        if result[0] == "cde":
            assert state_value == 3
        self.state.update(state_value)
        return result


def test_reduce_function_with_keyed_state():
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection(
        [("a", 0), ("c", 1), ("d", 1), ("b", 0), ("e", 1)], type_info=Types.ROW([Types.STRING(), Types.INT()])
    )
    out = ds.key_by(MyKeySelector()).reduce(StatefulReduce()).execute_and_collect()
    assert _sorted(out) == _sorted([Row("a", 0), Row("ab", 0), Row("c", 1), Row("cd", 1), Row("cde", 1)])


def test_keyed_stream_cannot_be_repartitioned():
    env = StreamExecutionEnvironment.get_execution_environment()
    keyed = env.from_collection([("ab", 1), ("bdc", 2)]).key_by(lambda x: x[1])
    for call in (keyed.shuffle, keyed.rebalance, keyed.rescale, keyed.broadcast, keyed.forward):
        with pytest.raises(ValueError):
            call()


def test_function_with_error_names_the_cause():
    env = StreamExecutionEnvironment.get_execution_environment()
    ds = env.from_collection(
        [("a", 0), ("b", 0), ("c", 1)], type_info=Types.ROW([Types.STRING(), Types.INT()])
    )

    def flat_map_func(x):
        raise ValueError("flat_map_func error")
        yield x

    ds.key_by(MyKeySelector()).flat_map(flat_map_func).print()
    with pytest.raises(Exception, match="flat_map_func error"):
        env.execute("test_process_function_with_error")


def test_data_with_custom_class(env):
    class Data:
        def __init__(self, name, num):
            self.name = name
            self.num = num

    ds = env.from_collection(
        [("a", 0), ("b", 1), ("c", 2)], type_info=Types.ROW([Types.STRING(), Types.INT()])
    )
    out = (
        ds.map(lambda a: Data(a[0], a[1]))
        .flat_map(lambda d: [d.name for _ in range(d.num)])
        .execute_and_collect()
    )
    assert sorted(out) == ["b", "c", "c"]


def test_execute_and_collect_limit_and_context_manager():
    env = StreamExecutionEnvironment.get_execution_environment()
    data = ["pyflink", "datastream", "execute", "collect"]
    assert env.from_collection(data).execute_and_collect(limit=3) == data[:3]
    with env.from_collection(data).execute_and_collect() as results:
        assert list(results) == data
