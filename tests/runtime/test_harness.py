import pytest

from flinkcore.common.watermark import Watermark
from flinkcore.runtime.operators.base import SideOutputTag, UserCodeError
from flinkcore.runtime.operators.udf import FilterOperator, KeyedProcessOperator, MapOperator
from flinkcore.runtime.testing import (
    KeyedOneInputStreamOperatorTestHarness,
    OneInputStreamOperatorTestHarness,
    StreamRecord,
)
from flinkcore.state import ValueStateDescriptor

LATE = SideOutputTag("late")


class CountWithTimeout:
    """Counts per key; emits (key, count) one event-time ms after the last element (+ side output)."""

    def open(self, ctx):
        self.count = ctx.get_state(ValueStateDescriptor("count"))

    def process_element(self, value, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        ctx.timer_service().register_event_time_timer(ctx.timestamp() + 1)
        if value[1] < 0:
            yield LATE, value

    def on_timer(self, ts, ctx):
        yield ctx.get_current_key(), self.count.value()


def keyed_harness():
    return KeyedOneInputStreamOperatorTestHarness(
        KeyedProcessOperator(CountWithTimeout()), key_selector=lambda v: v[0]
    )


def test_keyed_process_timers_watermarks_and_side_output():
    h = keyed_harness()
    h.process_element(("a", 1), 10)
    h.process_element(("a", -1), 11)
    h.process_element(("b", 1), 10)
    h.process_watermark(11)
    # timers fire in timestamp order, ties in registration order, before the watermark is forwarded
    assert h.get_output() == [StreamRecord(("a", 2), 11), StreamRecord(("b", 1), 11), Watermark(11)]
    h.process_watermark(12)
    assert h.extract_output_values() == [("a", 2), ("b", 1), ("a", 2)]
    assert h.get_side_output(LATE) == [StreamRecord(("a", -1), 11)]


def test_snapshot_and_restore_keeps_state_and_timers():
    h = keyed_harness()
    h.process_element(("a", 1), 10)
    snap = h.snapshot()
    h2 = keyed_harness()
    h2.initialize_state(snap)
    h2.process_element(("a", 1), 5)
    h2.process_watermark(100)
    # the restored timer (11) and the new one (6) both fire, both see the restored count
    assert h2.extract_output_values() == [("a", 2), ("a", 2)]


def test_map_filter_batches_keep_timestamps():
    m = OneInputStreamOperatorTestHarness(MapOperator(lambda v: v * 2))
    m.process_elements([1, 2, 3], [7, 8, 9])
    assert m.extract_output_records() == [StreamRecord(2, 7), StreamRecord(4, 8), StreamRecord(6, 9)]
    f = OneInputStreamOperatorTestHarness(FilterOperator(lambda v: v % 2))
    f.process_elements([1, 2, 3], [7, 8, 9])
    assert f.extract_output_records() == [StreamRecord(1, 7), StreamRecord(3, 9)]
    f.end_input()
    assert f.ended


def test_user_error_names_operator_and_record_and_chains_cause():
    m = OneInputStreamOperatorTestHarness(MapOperator(lambda v: 10 // v, name="divide"))
    with pytest.raises(UserCodeError, match=r"operator 'divide' failed on record 0") as info:
        m.process_elements([5, 2, 0, 1])
    assert isinstance(info.value.__cause__, ZeroDivisionError)
