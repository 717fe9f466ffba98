"""Operators driven one at a time through the test harnesses."""

from flinkcore.common.watermark import Watermark
from flinkcore.runtime.operators.co import BroadcastProcessOperator, CoMapOperator, CoProcessOperator
from flinkcore.runtime.operators.udf import FlatMapOperator, ReduceOperator, SinkOperator
from flinkcore.runtime.testing import (
    KeyedOneInputStreamOperatorTestHarness,
    KeyedTwoInputStreamOperatorTestHarness,
    OneInputStreamOperatorTestHarness,
    StreamRecord,
    TwoInputStreamOperatorTestHarness,
)
from flinkcore.state import MapStateDescriptor, ValueStateDescriptor


def test_reduce_streaming_emits_running_values_and_batch_only_finals():
    h = KeyedOneInputStreamOperatorTestHarness(
        ReduceOperator(lambda a, b: a + b), key_selector=lambda v: v % 2
    )
    h.process_elements([1, 2, 3, 4], [10, 20, 30, 40])
    assert h.extract_output_records() == [
        StreamRecord(1, 10),
        StreamRecord(2, 20),
        StreamRecord(4, 30),
        StreamRecord(6, 40),
    ]
    b = KeyedOneInputStreamOperatorTestHarness(
        ReduceOperator(lambda a, b: a + b), key_selector=lambda v: v % 2, runtime_mode="BATCH"
    )
    b.process_elements([1, 2, 3, 4], [10, 20, 30, 40])
    assert b.extract_output_values() == []
    b.end_input()
    assert b.extract_output_records() == [StreamRecord(4, 30), StreamRecord(6, 40)]
    assert b.ended


def test_reduce_state_survives_snapshot_restore():
    h = KeyedOneInputStreamOperatorTestHarness(ReduceOperator(lambda a, b: a + b), key_selector=lambda v: "k")
    h.process_elements([1, 2])
    snap = h.snapshot()
    h2 = KeyedOneInputStreamOperatorTestHarness(
        ReduceOperator(lambda a, b: a + b), key_selector=lambda v: "k"
    )
    h2.initialize_state(snap)
    h2.process_element(10)
    assert h2.extract_output_values() == [13]


def test_flat_map_keeps_timestamps_per_output():
    h = OneInputStreamOperatorTestHarness(FlatMapOperator(lambda v: [v] * v))
    h.process_elements([1, 2], [5, 6])
    assert h.extract_output_records() == [StreamRecord(1, 5), StreamRecord(2, 6), StreamRecord(2, 6)]


def test_sink_sees_timestamps_and_watermark():
    seen = []

    def invoke(value, ctx):
        seen.append((value, ctx.timestamp(), ctx.current_watermark()))

    h = OneInputStreamOperatorTestHarness(SinkOperator(invoke))
    h.process_watermark(3)
    h.process_elements(["a", "b"], [4, 5])
    assert seen == [("a", 4, 3), ("b", 5, 3)]


class Maps:
    def map1(self, v):
        return ("1", v)

    def map2(self, v):
        return ("2", v)


def test_co_map_watermark_is_the_minimum_of_both_inputs():
    h = TwoInputStreamOperatorTestHarness(CoMapOperator(Maps()))
    h.process_element1(1, 100)
    h.process_element2(2, 200)
    h.process_watermark1(100)
    assert h.get_watermarks() == []
    h.process_watermark2(50)
    h.process_watermark2(300)
    assert h.get_watermarks() == [50, 100]
    h.process_watermark_status1(True)  # input 1 idle: input 2 alone decides
    assert h.get_watermarks() == [50, 100, 300]
    assert h.extract_output_records() == [StreamRecord(("1", 1), 100), StreamRecord(("2", 2), 200)]
    h.end_input1()
    assert not h.ended
    h.end_input2()
    assert h.ended


class JoinOnTimer:
    """Keyed co-process: remembers the last value of each side, emits both on an event-time timer."""

    def open(self, ctx):
        self.left = ctx.get_state(ValueStateDescriptor("left"))
        self.right = ctx.get_state(ValueStateDescriptor("right"))

    def process_element1(self, value, ctx):
        self.left.update(value[1])
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 5)

    def process_element2(self, value, ctx):
        self.right.update(value[1])

    def on_timer(self, ts, ctx):
        yield ctx.get_current_key(), self.left.value(), self.right.value(), ts


def test_keyed_co_process_timers_and_state():
    h = KeyedTwoInputStreamOperatorTestHarness(
        CoProcessOperator(JoinOnTimer()), lambda v: v[0], lambda v: v[0]
    )
    h.process_element1(("a", 1), 10)
    h.process_element2(("a", "x"), 11)
    h.process_element2(("b", "y"), 11)
    h.process_watermark1(20)
    h.process_watermark2(14)
    assert h.get_output() == [Watermark(14)]
    h.process_watermark2(15)
    assert h.get_output()[1:] == [StreamRecord(("a", 1, "x", 15), 15), Watermark(15)]


DESC = MapStateDescriptor("rules")


class Rules:
    def process_element(self, value, ctx):
        rule = ctx.get_broadcast_state(DESC).get(value % 3)
        yield value, rule

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(DESC).put(value[0], value[1])


def test_broadcast_state_is_written_by_the_broadcast_side_and_snapshotted():
    h = TwoInputStreamOperatorTestHarness(BroadcastProcessOperator(Rules()))
    h.process_element1(4)
    h.process_element2((1, "one"))
    h.process_element1(7)
    assert h.extract_output_values() == [(4, None), (7, "one")]
    snap = h.snapshot()
    h2 = TwoInputStreamOperatorTestHarness(BroadcastProcessOperator(Rules()))
    h2.initialize_state(snap)
    h2.process_element1(10)
    assert h2.extract_output_values() == [(10, "one")]


def test_broadcast_state_is_read_only_on_the_element_side():
    class Bad:
        def process_element(self, value, ctx):
            ctx.get_broadcast_state(DESC).put(1, 2)

        def process_broadcast_element(self, value, ctx):
            pass

    h = TwoInputStreamOperatorTestHarness(BroadcastProcessOperator(Bad()))
    try:
        h.process_element1(1)
    except Exception as e:
        assert "read-only" in str(e)
    else:
        raise AssertionError("writing broadcast state from process_element must fail")


class ResetCounts:
    """Keyed broadcast: counts per key; a broadcast 'reset' clears every key's count."""

    def open(self, ctx):
        self.desc = ValueStateDescriptor("count")
        self.count = ctx.get_state(self.desc)

    def process_element(self, value, ctx):
        self.count.update((self.count.value() or 0) + 1)
        yield ctx.get_current_key(), self.count.value()

    def process_broadcast_element(self, value, ctx):
        seen = []
        ctx.apply_to_keyed_state(self.desc, lambda key, state: (seen.append(key), state.clear()))
        yield "reset", sorted(seen)


def test_keyed_broadcast_apply_to_keyed_state():
    h = TwoInputStreamOperatorTestHarness(
        BroadcastProcessOperator(ResetCounts()), key_selector1=lambda v: v, key_selector2=None
    )
    for v in ("a", "b", "a"):
        h.process_element1(v)
    h.process_element2("reset")
    h.process_element1("a")
    assert h.extract_output_values() == [("a", 1), ("b", 1), ("a", 2), ("reset", ["a", "b"]), ("a", 1)]


class OrderRecorder:
    """Records the timestamps a key sees; on its timer emits them with the watermark it saw."""

    def open(self, ctx):
        from flinkcore.state import ListStateDescriptor

        self.seen = ctx.get_list_state(ListStateDescriptor("seen"))

    def process_element(self, value, ctx):
        self.seen.add(ctx.timestamp())
        ctx.timer_service().register_event_time_timer(1_000)
        return None

    def on_timer(self, ts, ctx):
        yield ctx.get_current_key(), list(self.seen.get()), ctx.timer_service().current_watermark()


def test_batch_execution_processes_key_by_key_in_timestamp_order():
    from flinkcore.common.watermark import MAX_WATERMARK
    from flinkcore.runtime.operators.udf import KeyedProcessOperator

    h = KeyedOneInputStreamOperatorTestHarness(
        KeyedProcessOperator(OrderRecorder()), key_selector=lambda v: v[0], runtime_mode="BATCH"
    )
    h.process_elements([("a", 3), ("b", 9), ("a", 1), ("b", 2), ("a", 2)], [3, 9, 1, 2, 2])
    assert h.extract_output_values() == []  # nothing before the input is complete
    h.process_watermark(MAX_WATERMARK)
    assert h.extract_output_values() == [("a", [1, 2, 3], MAX_WATERMARK), ("b", [2, 9], MAX_WATERMARK)]
    assert h.get_watermarks() == [MAX_WATERMARK]
