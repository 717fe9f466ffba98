"""DataStream API behaviour beyond PyFlink's scenarios: key selectors, errors, extension."""

import pytest

from flinkcore.common import Row, Types
from flinkcore.datastream import (
    KeyedProcessFunction,
    KeySelector,
    MapFunction,
    ProcessFunction,
    StreamExecutionEnvironment,
)
from flinkcore.datastream.output_tag import OutputTag
from flinkcore.runtime.operators.base import AbstractStreamOperator


def env(p=1):
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(p)
    return e


@pytest.mark.parametrize(
    "key", [0, lambda t: t[0], ["k"], "k"], ids=["index", "lambda", "list-of-names", "name"]
)
def test_key_by_field_index_name_or_callable(key):
    rows = [Row(k="a", v=1), Row(k="b", v=2), Row(k="a", v=3)]
    out = (
        env()
        .from_collection(rows)
        .key_by(key)
        .reduce(lambda a, b: Row(k=a.k, v=a.v + b.v))
        .execute_and_collect()
    )
    assert [(r.k, r.v) for r in out] == [("a", 1), ("b", 2), ("a", 4)]


def test_composite_key_from_several_fields():
    data = [(1, "x", 1), (1, "y", 1), (1, "x", 1)]
    out = env().from_collection(data).key_by([0, 1]).sum(2).execute_and_collect()
    assert list(out) == [(1, "x", 1), (1, "y", 1), (1, "x", 2)]


def test_key_selector_class():
    class ByParity(KeySelector):
        def get_key(self, value):
            return value % 2

    assert list(env().from_collection([1, 2, 3, 4]).key_by(ByParity()).sum().execute_and_collect()) == [
        1,
        2,
        4,
        6,
    ]


def test_function_objects_open_and_close_once_per_instance():
    events = []

    class Tracked(MapFunction):
        def open(self, runtime_context):
            events.append(
                (
                    "open",
                    runtime_context.get_index_of_this_subtask(),
                    runtime_context.get_number_of_parallel_subtasks(),
                )
            )

        def map(self, value):
            return value

        def close(self):
            events.append(("close",))

    # the functions append to this test's list: they must run in this process, not in workers
    from flinkcore.common.configuration import Configuration

    conf = Configuration()
    conf.set_string("execution.runtime", "in-process")
    e = StreamExecutionEnvironment.get_execution_environment(conf)
    e.set_parallelism(2)
    e.from_collection([1, 2, 3]).map(Tracked()).print()
    e.execute()
    assert sorted(x for x in events if x[0] == "open") == [("open", 0, 2), ("open", 1, 2)]
    assert events.count(("close",)) == 2


def test_wrong_function_types_are_clear_errors():
    ds = env().from_collection([1])
    with pytest.raises(TypeError, match="KeyedProcessFunction needs a keyed stream"):

        class K(KeyedProcessFunction):
            def process_element(self, value, ctx):
                yield value

        ds.process(K())
    with pytest.raises(TypeError, match="key_by takes"):
        ds.key_by(3.5)
    with pytest.raises(TypeError, match="get_side_output takes an OutputTag"):
        ds.get_side_output("side")
    with pytest.raises(ValueError, match="parallelism must be a positive int"):
        ds.map(lambda x: x).set_parallelism(0)
    with pytest.raises(ValueError, match="not parallel"):
        ds.set_parallelism(2)  # a collection source


def test_timers_on_a_non_keyed_stream_are_a_clear_error():
    class Timed(ProcessFunction):
        def process_element(self, value, ctx):
            ctx.timer_service().register_event_time_timer(10)
            yield value

    e = env()
    e.from_collection([1]).process(Timed()).print()
    with pytest.raises(Exception, match="timers can only be used on keyed streams"):
        e.execute()


def test_keyed_state_on_a_non_keyed_stream_is_a_clear_error():
    from flinkcore.datastream.state import ValueStateDescriptor

    class Stateful(MapFunction):
        def open(self, runtime_context):
            runtime_context.get_state(ValueStateDescriptor("s"))

        def map(self, value):
            return value

    e = env()
    e.from_collection([1]).map(Stateful()).print()
    with pytest.raises(Exception, match="keyed state can only be used on a keyed stream"):
        e.execute()


def test_transform_adds_a_custom_operator_without_runtime_changes():
    class Doubler(AbstractStreamOperator):
        def process_batch(self, values, timestamps):
            self.output.collect([v * 2 for v in values], timestamps)

    out = env().from_collection([1, 2, 3]).transform("doubler", Types.INT(), Doubler).execute_and_collect()
    assert list(out) == [2, 4, 6]


def test_broadcast_partitioning_sends_every_record_to_every_instance():
    out = env(3).from_collection([1, 2]).broadcast().map(lambda x: x).execute_and_collect()
    assert sorted(out) == [1, 1, 1, 2, 2, 2]


def test_flat_map_side_outputs_and_plain_iterables():
    tag = OutputTag("neg")

    def split(x):
        if x < 0:
            yield tag, x
        else:
            yield from [x, x]

    ds = env().from_collection([1, -2, 3]).flat_map(split)
    assert list(ds.execute_and_collect()) == [1, 1, 3, 3]


def test_process_context_output_java_spelling():
    tag = OutputTag("odd")

    class Split(ProcessFunction):
        def process_element(self, value, ctx):
            if value % 2:
                ctx.output(tag, value)
            else:
                yield value

    ds = env().from_collection([1, 2, 3]).process(Split())
    assert list(ds.get_side_output(tag).execute_and_collect()) == [1, 3]


def test_union_of_keyed_streams_and_execute_plan_nodes():
    e = env(2)
    a = e.from_collection([1, 2, 3]).key_by(lambda x: x)
    b = e.from_collection([4, 5, 6]).key_by(lambda x: x)
    assert sorted(a.union(b).map(lambda x: x * 10).execute_and_collect()) == [10, 20, 30, 40, 50, 60]


def test_execute_returns_a_job_execution_result():
    e = env()
    e.from_collection([1]).print()
    result = e.execute("named")
    assert len(result.get_job_id()) == 32 and result.get_net_runtime() >= 0


def test_metrics_of_a_user_function():
    """PyFlink's test_metrics: counter, meter, gauge and distribution from the runtime context."""

    class MyMapFunction(MapFunction):
        def open(self, runtime_context):
            group = runtime_context.get_metrics_group()
            self.counter = group.counter("my_counter")
            self.meter = group.meter("my_meter", 1)
            self.exposed = 0
            group.gauge("my_gauge", lambda: self.exposed)
            self.distribution = group.distribution("my_distribution")
            self.n = 0

        def map(self, value):
            self.counter.inc()
            self.n += 1
            assert self.counter.get_count() == self.n
            self.meter.mark_event(1)
            assert self.meter.get_count() == self.n
            self.exposed += 1
            self.distribution.update(int(value[2]))
            return Row(value[0], len(value[0]), value[2])

    data = [("ab", "a", 1), ("bdc", "a", 2), ("cfgs", "a", 3), ("deeefg", "a", 4)]
    out = env().from_collection(data).key_by(lambda v: v[1]).map(MyMapFunction()).execute_and_collect()
    assert list(out) == [Row("ab", 2, 1), Row("bdc", 3, 2), Row("cfgs", 4, 3), Row("deeefg", 6, 4)]


def test_keyed_sink_sees_keyed_state():
    from flinkcore.datastream import SinkFunction
    from flinkcore.datastream.state import ValueStateDescriptor

    class LastPerKey(SinkFunction):
        def __init__(self):
            self.changes = []

        def open(self, runtime_context):
            self.last = runtime_context.get_state(ValueStateDescriptor("last"))

        def invoke(self, value, context):
            if self.last.value() != value[1]:
                self.changes.append(value)
            self.last.update(value[1])

    sink = LastPerKey()
    e = env()
    e.from_collection([("a", 1), ("b", 1), ("a", 1), ("a", 2), ("b", 1)]).key_by(lambda v: v[0]).add_sink(
        sink
    )
    e.execute()
    assert sink.changes == [("a", 1), ("b", 1), ("a", 2)]


def test_project_and_plan_ship_strategies():
    e = env()
    assert list(e.from_collection([[1, 2, 3, 4], [5, 6, 7, 8]]).project(1, 3).execute_and_collect()) == [
        (2, 4),
        (6, 8),
    ]
    e = env()
    ds = e.from_collection([1, 2, 3])
    ds.project(0).add_sink(lambda v: None)
    for call in (ds.broadcast, ds.rebalance, ds.rescale, ds.shuffle):
        call().map(lambda x: x + 1).set_parallelism(3).add_sink(lambda v: None)
    plan = eval(e.get_execution_plan())  # noqa: S307 - our own JSON, as PyFlink's tests read it
    assert plan["nodes"][1]["type"] == "Projection"
    ships = sorted(
        p["ship_strategy"] for n in plan["nodes"] if n["contents"] == "Map" for p in n["predecessors"]
    )
    assert ships == ["BROADCAST", "REBALANCE", "RESCALE", "SHUFFLE"]


def test_time_characteristic_is_accepted():
    from flinkcore.datastream import TimeCharacteristic

    e = env()
    e.set_stream_time_characteristic(TimeCharacteristic.EventTime)
    assert e.get_stream_time_characteristic() == TimeCharacteristic.EventTime


def test_from_collection_applies_row_and_tuple_types():
    e = env()
    rows = list(
        e.from_collection(
            [("a", 1), Row("b", 2)], type_info=Types.ROW_NAMED(["k", "v"], [Types.STRING(), Types.INT()])
        ).execute_and_collect()
    )
    assert [(r.k, r.v) for r in rows] == [("a", 1), ("b", 2)]
    tuples = list(
        e.from_collection(
            [[1, 2], [3, 4]], type_info=Types.TUPLE([Types.INT(), Types.INT()])
        ).execute_and_collect()
    )
    assert tuples == [(1, 2), (3, 4)]


def test_pyflink_context_annotations_resolve():
    from flinkcore.datastream import BroadcastProcessFunction, KeyedBroadcastProcessFunction

    class F(KeyedProcessFunction):
        def process_element(self, value, ctx: KeyedProcessFunction.Context):
            yield value

        def on_timer(self, timestamp, ctx: KeyedProcessFunction.OnTimerContext):
            pass

    assert ProcessFunction.Context and BroadcastProcessFunction.ReadOnlyContext
    assert KeyedBroadcastProcessFunction.OnTimerContext
    assert list(env().from_collection([1]).key_by(lambda x: x).process(F()).execute_and_collect()) == [1]


def test_plan_marks_sources_and_sinks():
    e = env(2)
    a = e.from_collection([1, 2, 3]).key_by(lambda x: x)
    b = e.from_collection([4, 5, 6]).key_by(lambda x: x)
    a.union(b).add_sink(lambda v: None)
    plan = eval(e.get_execution_plan())  # noqa: S307 - our own JSON, as PyFlink's tests read it
    sources = sorted(n["id"] for n in plan["nodes"] if n["pact"] == "Data Source")
    sink_preds = sorted(p["id"] for n in plan["nodes"] if n["pact"] == "Data Sink" for p in n["predecessors"])
    assert sink_preds == sources
    assert all(
        p["ship_strategy"] == "HASH"
        for n in plan["nodes"]
        if n["pact"] == "Data Sink"
        for p in n["predecessors"]
    )
