"""Watermarks across inputs: the minimum over inputs, and idle inputs left out of it."""

import threading
import time

from flinkcore.common import Duration, WatermarkStrategy
from flinkcore.datastream import KeyedProcessFunction, SinkFunction, StreamExecutionEnvironment
from flinkcore.datastream.connectors import DataGeneratorSource, FileSource, StreamFormat


def first_results(stream, n, timeout=60.0):
    """execute_and_collect(limit=n) that fails the test instead of hanging it."""
    box = {}
    t = threading.Thread(target=lambda: box.update(v=stream.execute_and_collect(limit=n)), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"no {n} results within {timeout} s"
    return box["v"]


class FireAt100(KeyedProcessFunction):
    def process_element(self, value, ctx):
        ctx.timer_service().register_event_time_timer(100)

    def on_timer(self, timestamp, ctx):
        yield "fired", timestamp


def _job(tmp_path, idle_input_declared_idle: bool):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.get_config().set_auto_watermark_interval(10)
    active = env.from_source(
        DataGeneratorSource(lambda i: i, records_per_second=2000),
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(0)).with_timestamp_assigner(
            lambda e, _: e
        ),
        "active",
    )
    silent_strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(lambda e, _: 0)
    if idle_input_declared_idle:
        silent_strategy = silent_strategy.with_idleness(Duration.of_millis(50))
    silent = env.from_source(
        FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(tmp_path))
        .monitor_continuously(Duration.of_millis(50))
        .build(),
        silent_strategy,
        "silent",
    )
    return env, active.union(silent).key_by(lambda _: 0).process(FireAt100())


def test_an_idle_input_does_not_hold_back_the_watermark(tmp_path):
    _, ds = _job(tmp_path, idle_input_declared_idle=True)
    assert first_results(ds, 1) == [("fired", 100)]


def test_a_silent_input_not_declared_idle_holds_the_watermark_back(tmp_path):
    class Collect(SinkFunction):
        def __init__(self):
            self.got = []

        def invoke(self, value, context):
            self.got.append(value)

    env, ds = _job(tmp_path, idle_input_declared_idle=False)
    sink = Collect()
    ds.add_sink(sink)
    client = env.execute_async("held back")
    time.sleep(0.4)  # the active input is far past 100 by now
    client.cancel().result(timeout=5)
    assert sink.got == []
