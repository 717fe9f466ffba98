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


class _ReportingWindow:
    """A stand-in for a columnar window with a native table: records the batches it takes and
    returns each one's largest timestamp (or None, as a window that held the batch back does)."""

    reports_batch_max_ts = True

    def __init__(self, report: bool = True) -> None:
        self.report = report
        self.batches: list = []
        self.watermarks: list = []

    def process_batch(self, values, timestamps):
        self.batches.append((values.column("v").to_pylist(), list(timestamps)))
        return int(max(timestamps)) if self.report else None

    def process_watermark(self, watermark):
        self.watermarks.append(watermark)

    def process_watermark_status(self, idle):
        pass

    def end_input(self):
        pass


def _columnar_chain(strategy, target):
    from flinkcore.runtime.executor import Router

    h = harness(strategy)
    router = Router([target], {})
    router.bind()
    h.operator.output = router
    return h


def _batch(ts):
    import pyarrow as pa

    return pa.RecordBatch.from_arrays([pa.array(ts), pa.array([t * 10 for t in ts])], names=["ts", "v"])


def test_columnar_batch_maximum_comes_from_the_window_that_takes_the_batch():
    """A columnar batch going to one window that finds its largest timestamp itself: the generator
    takes that maximum (no pass of its own), the window gets each batch once, and the watermarks
    are those of the generator fed every timestamp, also when the window held a batch back."""
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(100)
    ).with_timestamp_assigner("ts")
    for report in (True, False):
        window = _ReportingWindow(report)
        h = _columnar_chain(strategy, window)
        h.operator.process_batch(_batch([5, 1000, 7]), None)
        assert h.operator._batch_max_ts == window.process_batch  # resolved to the window
        h.set_processing_time(200)
        h.operator.process_batch(_batch([1500, 900]), None)
        h.operator.process_batch(_batch([1200]), None)
        h.set_processing_time(400)
        assert window.batches == [
            ([50, 10000, 70], [5, 1000, 7]),
            ([15000, 9000], [1500, 900]),
            ([12000], [1200]),
        ]
        assert window.watermarks == [899, 1399]


def test_columnar_batch_maximum_not_taken_from_a_window_for_a_per_event_generator():
    """A user generator sees every event (and may emit per event): the window's maximum is not used."""
    seen = []

    class Recording(WatermarkGenerator):
        def on_event(self, event, event_timestamp, output):
            seen.append(event_timestamp)

        def on_periodic_emit(self, output):
            output.emit_watermark(Watermark(max(seen) - 1))

    window = _ReportingWindow()
    h = _columnar_chain(
        WatermarkStrategy.for_generator(lambda ctx: Recording()).with_timestamp_assigner("ts"), window
    )
    h.operator.process_batch(_batch([5, 1000, 7]), None)
    assert seen == [5, 1000, 7] and window.batches == [([50, 10000, 70], [5, 1000, 7])]
    h.set_processing_time(200)
    assert window.watermarks == [999]
