"""The embedded job handle: push API, time, side outputs, threads, failures, asyncio."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from flinkcore.common import Duration, WatermarkStrategy
from flinkcore.common.time import Time
from flinkcore.datastream import OutputTag, StreamExecutionEnvironment
from flinkcore.datastream.functions import KeyedCoProcessFunction, KeyedProcessFunction
from flinkcore.datastream.state import ValueStateDescriptor
from flinkcore.datastream.window import TumblingEventTimeWindows, TumblingProcessingTimeWindows
from flinkcore.runtime.embedded import ConcurrentPushError, EmbeddedJobError
from flinkcore.runtime.operators.base import AbstractStreamOperator, UserCodeError


class RunningSum(KeyedProcessFunction):
    """W4's shape: a running sum per key, emitted when it passes a multiple of 10."""

    def open(self, runtime_context: Any) -> None:
        self.total = runtime_context.get_state(ValueStateDescriptor("total"))

    def process_element(self, value: Any, ctx: Any) -> Any:
        t = (self.total.value() or 0) + value[1]
        self.total.update(t)
        if t // 10 != (t - value[1]) // 10:
            yield value[0], t


def fraud_job(**kwargs: Any) -> Any:
    env = StreamExecutionEnvironment.get_execution_environment()
    (
        env.from_push_source("tx")
        .uid("tx")
        .map(lambda e: (e[0], e[1]))
        .uid("parse")
        .key_by(lambda e: e[0])
        .process(RunningSum())
        .uid("sum")
        .map(lambda a: ("ALERT",) + a)
        .uid("alert")
    )
    return env.execute_embedded(**kwargs)


def test_push_returns_the_main_output_of_that_record_at_once() -> None:
    job = fraud_job()
    assert job.push(("a", 6)) == []
    assert job.push(("b", 6)) == []
    assert job.push(("a", 5)) == [("ALERT", "a", 11)]
    assert job.push(("a", 1)) == []
    assert job.push_many([("b", 4), ("a", 9), ("c", 30)]) == [
        ("ALERT", "b", 10),
        ("ALERT", "a", 21),
        ("ALERT", "c", 30),
    ]
    assert job.push_many([]) == []
    job.close()
    assert job.status == "CANCELED"


def test_sinks_still_run_and_only_unconsumed_outputs_come_back() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    sunk: list = []
    src = env.from_push_source("tx")
    doubled = src.map(lambda v: v * 2)
    doubled.add_sink(sunk.append)  # consumed by a sink: the sink emits nothing
    doubled.filter(lambda v: v > 4)  # unconsumed: comes back
    job = env.execute_embedded()
    assert job.push(1) == []
    assert job.push(3) == [6]
    assert sunk == [2, 6]
    job.close()


def test_side_outputs_come_back_through_outputs_and_are_drained() -> None:
    small = OutputTag("small")
    consumed = OutputTag("consumed")

    def route(v: int) -> Any:
        if v < 10:
            yield small, v
            yield consumed, v
        else:
            yield v

    env = StreamExecutionEnvironment.get_execution_environment()
    seen: list = []
    routed = env.from_push_source("n").flat_map(route)
    routed.get_side_output(consumed).add_sink(seen.append)
    job = env.execute_embedded()
    assert job.push(3) == []
    assert job.push(30) == [30]
    assert job.push(4) == []
    assert job.outputs(small) == [3, 4]
    assert job.outputs("small") == []
    assert job.outputs(OutputTag("never")) == []
    assert seen == [3, 4]
    with pytest.raises(EmbeddedJobError, match="get_side_output"):
        job.outputs(consumed)
    job.close()


def test_event_time_follows_the_watermark_strategy_with_periodic_emission() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.get_config().set_auto_watermark_interval(100)
    (
        env.from_push_source("tx")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(5)).with_timestamp_assigner(
                lambda e, _: e[2]
            )
        )
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(10)))
        .reduce(lambda a, b: (a[0], a[1] + b[1], max(a[2], b[2])))
    )
    job = env.execute_embedded(processing_time=0)
    assert job.push(("a", 1, 1)) == []
    assert job.push(("a", 2, 9)) == []
    assert job.push(("a", 4, 16)) == []  # watermark would be 10: but no emission is due yet
    with pytest.raises(EmbeddedJobError, match="assign_timestamps_and_watermarks"):
        job.advance_watermark(100)
    assert job.advance_time(99) == []
    assert job.advance_time(100) == [("a", 3, 9)]  # periodic emission: watermark 16 - 5 - 1 = 10
    assert job.push(("a", 8, 25)) == []
    assert job.finish() == [("a", 4, 16), ("a", 8, 25)]  # end of input: the maximum watermark
    assert job.status == "FINISHED"


def test_periodic_emission_happens_on_the_next_push_when_due() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    (
        env.from_push_source("tx")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(lambda e, _: e[1])
        )
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(10)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    job = env.execute_embedded(processing_time=0)
    job.push(("a", 3))
    job._manual_clock.now = 500  # time passes without a call into the job
    # the push first runs what fell due (emission of watermark 2), then its record (ts 12)
    assert job.push(("a", 12)) == []
    job._manual_clock.now = 1_000
    assert job.fire_timers() == [("a", 3)]
    job.close()


def test_advance_watermark_is_the_source_emitting_watermarks() -> None:
    class Deadline(KeyedProcessFunction):
        def process_element(self, value: Any, ctx: Any) -> Any:
            ctx.timer_service().register_event_time_timer(ctx.timestamp() + 10)
            return []

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            yield ctx.get_current_key(), timestamp

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_push_source("tx").key_by(lambda e: e).process(Deadline())
    job = env.execute_embedded()
    job.push("a", timestamp=100)
    job.push("b", timestamp=105)
    assert job.advance_watermark(109) == []
    assert job.advance_watermark(112) == [("a", 110)]
    assert job.advance_watermark(112) == []
    assert job.finish() == [("b", 115)]


def test_processing_time_timers_fire_on_the_next_push_and_on_fire_timers() -> None:
    class Later(KeyedProcessFunction):
        def process_element(self, value: Any, ctx: Any) -> Any:
            now = ctx.timer_service().current_processing_time()
            ctx.timer_service().register_processing_time_timer(now + 2)
            yield "pushed", value

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            yield "timer", ctx.get_current_key()

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_push_source("tx").key_by(lambda e: e).process(Later())
    job = env.execute_embedded()  # the wall clock
    assert job.push("a") == [("pushed", "a")]
    time.sleep(0.01)
    assert job.push("b") == [("timer", "a"), ("pushed", "b")]  # due timers first, then the record
    time.sleep(0.01)
    assert job.fire_timers() == [("timer", "b")]
    assert job.fire_timers() == []
    job.close()
    with pytest.raises(EmbeddedJobError, match="manual processing-time"):
        fraud_job().advance_time(5)


def test_processing_time_windows_fire_with_manual_time() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    (
        env.from_push_source("tx")
        .key_by(lambda e: e[0])
        .window(TumblingProcessingTimeWindows.of(Time.milliseconds(100)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    job = env.execute_embedded(processing_time=1_000)
    job.push(("a", 1))
    job.push(("a", 2))
    assert job.advance_time(1_098) == []
    assert job.advance_time(1_099) == [("a", 3)]
    with pytest.raises(ValueError, match="forward"):
        job.advance_time(10)
    job.close()


def test_two_push_sources_are_named() -> None:
    class Enrich(KeyedCoProcessFunction):
        def open(self, runtime_context: Any) -> None:
            self.limit = runtime_context.get_state(ValueStateDescriptor("limit"))

        def process_element1(self, value: Any, ctx: Any) -> Any:
            if value[1] > (self.limit.value() or 100):
                yield "over", value

        def process_element2(self, value: Any, ctx: Any) -> Any:
            self.limit.update(value[1])
            return []

    env = StreamExecutionEnvironment.get_execution_environment()
    tx = env.from_push_source("tx")
    limits = env.from_push_source("limits")
    tx.connect(limits).key_by(lambda t: t[0], lambda r: r[0]).process(Enrich())
    job = env.execute_embedded()
    assert sorted(job.source_names) == ["limits", "tx"]
    with pytest.raises(EmbeddedJobError, match="several push sources"):
        job.push(("a", 50))
    assert job.push(("a", 50), source="tx") == []
    assert job.push(("a", 20), source="limits") == []
    assert job.push(("a", 50), source="tx") == [("over", ("a", 50))]
    with pytest.raises(EmbeddedJobError, match="no push source named 'nope'"):
        job.push(1, source="nope")
    job.close()


def test_a_second_pusher_gets_an_error_not_a_wait() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow(v: Any) -> Any:
        if v == "slow":
            entered.set()
            release.wait(5)
        return v

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_push_source("tx").map(slow)
    job = env.execute_embedded()
    result: list = []
    t = threading.Thread(target=lambda: result.append(job.push("slow")))
    t.start()
    assert entered.wait(5)
    t0 = time.perf_counter()
    with pytest.raises(ConcurrentPushError, match="one pusher at a time"):
        job.push("other")
    with pytest.raises(ConcurrentPushError):
        job.snapshot("/nonexistent")
    assert time.perf_counter() - t0 < 1.0
    release.set()
    t.join(5)
    assert result == [["slow"]]
    assert job.push("other") == ["other"]  # the job is fine afterwards
    job.close()


def test_pushing_from_inside_the_job_is_an_error() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    holder: dict = {}
    env.from_push_source("tx").map(lambda v: holder["job"].push(v) if v == "again" else v)
    job = holder["job"] = env.execute_embedded()
    with pytest.raises(UserCodeError, match="ConcurrentPushError"):
        job.push("again")
    assert job.status == "FAILED"


def test_a_timer_failing_while_time_advances_fails_the_job_but_a_backwards_clock_does_not() -> None:
    """A backwards ``advance_time`` is the caller's mistake: the job goes on. A ValueError from
    the job's own timer is the job's failure, whatever its type."""

    class FailingTimer(KeyedProcessFunction):
        def process_element(self, value: Any, ctx: Any) -> Any:
            ctx.timer_service().register_processing_time_timer(value)
            yield value

        def on_timer(self, timestamp: int, ctx: Any) -> Any:
            raise ValueError(f"bad timer {timestamp}")

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_push_source("tx").key_by(lambda e: e).process(FailingTimer())
    job = env.execute_embedded(processing_time=0)
    assert job.push(50) == [50]
    assert job.advance_time(10) == []
    with pytest.raises(ValueError, match="forward"):
        job.advance_time(5)
    assert job.status == "RUNNING"
    with pytest.raises(Exception, match="bad timer 50"):
        job.advance_time(60)
    assert job.status == "FAILED"


def test_a_failure_fails_the_job_with_its_cause() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_push_source("tx").key_by(lambda e: e).map(lambda v: 1 // v)
    job = env.execute_embedded()
    assert job.push(1) == [1]
    with pytest.raises(UserCodeError, match="ZeroDivisionError"):
        job.push(0)
    assert job.status == "FAILED"
    with pytest.raises(EmbeddedJobError, match="restore_from") as info:
        job.push(1)
    assert isinstance(info.value.__cause__, UserCodeError)
    job.close()  # closing a failed job is a no-op


def test_closed_job_refuses_calls_and_close_is_idempotent() -> None:
    with fraud_job() as job:
        job.push(("a", 1))
    assert job.status == "CANCELED"
    job.close()
    for call in (lambda: job.push(("a", 1)), lambda: job.push_many([]), job.fire_timers, job.finish):
        with pytest.raises(EmbeddedJobError, match="closed"):
            call()


def test_execute_on_a_push_source_points_to_execute_embedded() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_push_source("tx").map(lambda v: v)
    with pytest.raises(EmbeddedJobError, match="execute_embedded"):
        env.execute()


def test_an_embedded_job_needs_push_sources_only() -> None:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2]).map(lambda v: v)
    with pytest.raises(EmbeddedJobError, match="from_push_source"):
        env.execute_embedded()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_push_source("tx").union(env.from_collection([1])).map(lambda v: v)
    with pytest.raises(EmbeddedJobError, match="only by push sources"):
        env.execute_embedded()


def test_apush_runs_inline_and_in_turn() -> None:
    async def main() -> list:
        job = fraud_job()
        results = await asyncio.gather(*(job.apush(("a", 4)) for _ in range(5)))
        results.append(await job.apush_many([("b", 10)]))
        job.close()
        return results

    assert asyncio.run(main()) == [
        [],
        [],
        [("ALERT", "a", 12)],
        [],
        [("ALERT", "a", 20)],
        [("ALERT", "b", 10)],
    ]


def test_snapshot_and_restore_keyed_state(tmp_path: Any) -> None:
    job = fraud_job()
    job.push(("a", 8))
    path = job.snapshot(tmp_path / "sp")
    job.push(("a", 8))  # after the snapshot: lost with the job
    job.close()
    restored = fraud_job(restore_from=path)
    assert restored.push(("a", 3)) == [("ALERT", "a", 11)]
    restored.close()


def test_late_records_of_a_window_come_back_as_a_side_output() -> None:
    late = OutputTag("late")
    env = StreamExecutionEnvironment.get_execution_environment()
    (
        env.from_push_source("tx")
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(10)))
        .allowed_lateness(5)
        .side_output_late_data(late)
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    job = env.execute_embedded()
    job.push(("a", 1), timestamp=3)
    job.push(("a", 2), timestamp=8)
    assert job.advance_watermark(9) == [("a", 3)]
    assert job.push(("a", 4), timestamp=5) == [("a", 7)]  # within allowed lateness: a late firing
    assert job.advance_watermark(14) == []  # window [0, 10) is now past its lateness
    assert job.push(("a", 8), timestamp=6) == []
    assert job.outputs(late) == [("a", 8)]
    assert job.finish() == []


def test_a_generator_that_emits_on_events_moves_event_time_on_every_push() -> None:
    from flinkcore.common import Watermark
    from flinkcore.common.watermark_strategy import WatermarkGenerator

    class EveryEvent(WatermarkGenerator):
        """Punctuated: the watermark follows each event (no out-of-orderness allowed)."""

        def on_event(self, event: Any, event_timestamp: int, output: Any) -> None:
            output.emit_watermark(Watermark(event_timestamp - 1))

        def on_periodic_emit(self, output: Any) -> None:
            pass

    env = StreamExecutionEnvironment.get_execution_environment()
    (
        env.from_push_source("tx")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy.for_generator(lambda ctx: EveryEvent()).with_timestamp_assigner(
                lambda e, _: e[1]
            )
        )
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(10)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
    job = env.execute_embedded(processing_time=0)  # processing time never moves: no periodic emission
    assert job.push(("a", 3)) == []
    assert job.push(("a", 7)) == []
    assert job.push(("a", 10)) == [("a", 10)]  # then watermark 9: the window [0, 10) fires at once
    assert job.push(("a", 11)) == []
    job.close()


class _Recorder(AbstractStreamOperator):
    """Passes records on and records the checkpoint calls it gets, with the calling thread."""

    calls: list = []

    def process_batch(self, values: list, timestamps: list | None) -> None:
        self.output.collect(values, timestamps)

    def prepare_snapshot_pre_barrier(self, checkpoint_id: int) -> None:
        self.calls.append(("prepare", checkpoint_id, threading.current_thread().name))

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        self.calls.append(("complete", checkpoint_id, threading.current_thread().name))


def test_snapshot_async_writes_on_a_thread_and_completes_on_the_callers(tmp_path: Any) -> None:
    _Recorder.calls = []
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_push_source("tx").uid("tx").transform("recorder", None, _Recorder).uid("recorder")
    job = env.execute_embedded(processing_time=0)
    me = threading.current_thread().name
    assert job.push(1) == [1]
    future = job.snapshot_async(tmp_path)
    assert job.push(2) == [2]  # pushes go on while it is written
    path = future.result(timeout=30)
    assert _Recorder.calls == [("prepare", 1, me)]
    job.advance_time(5)
    assert _Recorder.calls == [("prepare", 1, me)]  # delivered by a later call, once due
    job.advance_time(10)
    assert _Recorder.calls == [("prepare", 1, me), ("complete", 1, me)]
    # a synchronous one completes at once; a second async one waits for the first
    assert job.snapshot(tmp_path) != path
    second, third = job.snapshot_async(tmp_path), job.snapshot_async(tmp_path)
    assert {second.result(30), third.result(30)}.isdisjoint({path})
    job.close()  # joins the writer and delivers what finished
    assert [c[:2] for c in _Recorder.calls] == [
        ("prepare", 1),
        ("complete", 1),
        ("prepare", 2),
        ("complete", 2),
        ("prepare", 3),
        ("complete", 3),
        ("prepare", 4),
        ("complete", 4),
    ]
    assert {c[2] for c in _Recorder.calls} == {me}


def test_a_failed_async_snapshot_reports_through_its_future_and_the_job_goes_on(tmp_path: Any) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    job = fraud_job()
    future = job.snapshot_async(blocker / "sp")
    with pytest.raises(OSError):
        future.result(timeout=30)
    assert job.push(("a", 10)) == [("ALERT", "a", 10)]
    job.close()
