from flinkcore.common import Duration, Watermark, WatermarkStrategy
from flinkcore.common.watermark import MAX_WATERMARK
from flinkcore.common.watermark_strategy import WatermarkGenerator
from flinkcore.runtime.operators.watermarks import TimestampsAndWatermarksOperator
from flinkcore.runtime.testing import OneInputStreamOperatorTestHarness, StreamRecord


def harness(strategy, interval=200, mode="STREAMING"):
    h = OneInputStreamOperatorTestHarness(
        TimestampsAndWatermarksOperator(strategy),
        config={"auto_watermark_interval": interval},
        runtime_mode=mode,
    )
    h.open()
    return h


def test_bounded_out_of_orderness_emits_periodically_max_minus_bound_minus_one():
    h = harness(
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(100)).with_timestamp_assigner(
            lambda e, _: e
        )
    )
    h.process_elements([1000, 1500, 1200])
    assert h.extract_output_records() == [
        StreamRecord(1000, 1000),
        StreamRecord(1500, 1500),
        StreamRecord(1200, 1200),
    ]
    assert h.get_watermarks() == []  # nothing before the periodic emission
    h.set_processing_time(200)
    assert h.get_watermarks() == [1399]
    h.set_processing_time(400)  # no new events: the same watermark is not emitted again
    assert h.get_watermarks() == [1399]
    h.process_element(3000)
    h.set_processing_time(600)
    assert h.get_watermarks() == [1399, 2899]


def test_monotonous_and_field_assigner_and_final_max_watermark():
    h = harness(WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner("ts"))
    h.process_element({"ts": 10})
    h.set_processing_time(200)
    assert h.get_watermarks() == [9]
    h.process_watermark(5)  # upstream watermarks are dropped ...
    assert h.get_watermarks() == [9]
    h.process_watermark(MAX_WATERMARK)  # ... except the end of input
    assert h.get_watermarks() == [9, MAX_WATERMARK]


def test_no_watermarks_strategy_emits_none():
    h = harness(WatermarkStrategy.no_watermarks().with_timestamp_assigner(lambda e, _: e))
    h.process_elements([1, 2, 3])
    h.set_processing_time(1000)
    assert h.get_watermarks() == []


class Punctuated(WatermarkGenerator):
    """Emits a watermark right after every event whose value ends a 'segment' (negative)."""

    def on_event(self, event, event_timestamp, output):
        if event < 0:
            output.emit_watermark(Watermark(event_timestamp))

    def on_periodic_emit(self, output):
        pass


def test_punctuated_generator_watermark_goes_between_the_records():
    h = harness(
        WatermarkStrategy.for_generator(lambda ctx: Punctuated()).with_timestamp_assigner(lambda e, _: abs(e))
    )
    h.process_elements([1, 2, -3, 4])
    assert h.get_output() == [
        StreamRecord(1, 1),
        StreamRecord(2, 2),
        StreamRecord(-3, 3),
        Watermark(3),
        StreamRecord(4, 4),
    ]


def test_idleness_marks_idle_and_active_again():
    h = harness(
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(0))
        .with_timestamp_assigner(lambda e, _: e)
        .with_idleness(Duration.of_millis(500))
    )
    h.process_element(10)
    for t in range(200, 1600, 200):
        h.set_processing_time(t)
    assert h.get_watermark_statuses() == [True]
    h.process_element(20)
    assert h.get_watermark_statuses() == [True, False]
    h.set_processing_time(1800)
    assert h.get_watermarks()[-1] == 19


def test_batch_mode_generates_no_watermarks_but_forwards_the_final_one():
    h = harness(
        WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(lambda e, _: e), mode="BATCH"
    )
    h.process_elements([5, 6])
    h.set_processing_time(10_000)
    assert h.get_watermarks() == []
    h.process_watermark(MAX_WATERMARK)
    assert h.get_watermarks() == [MAX_WATERMARK]
