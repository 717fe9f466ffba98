"""The in-process executor, driven through the public API."""

import threading
import time

import pytest

from flinkcore.common import Duration, Types, Watermark, WatermarkStrategy
from flinkcore.common.watermark import MAX_WATERMARK
from flinkcore.common.watermark_strategy import WatermarkGenerator
from flinkcore.datastream import (
    KeyedProcessFunction,
    MapFunction,
    RuntimeExecutionMode,
    SinkFunction,
    StreamExecutionEnvironment,
    TimeDomain,
)
from flinkcore.datastream.connectors import DataGeneratorSource, NumberSequenceSource
from flinkcore.datastream.state import ValueStateDescriptor
from flinkcore.runtime.operators.base import AbstractStreamOperator, UserCodeError


def first_results(stream, n, timeout=60.0):
    """execute_and_collect(limit=n) that fails the test instead of hanging it."""
    box = {}
    t = threading.Thread(target=lambda: box.update(v=stream.execute_and_collect(limit=n)), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"no {n} results within {timeout} s"
    return box["v"]


class Recording(AbstractStreamOperator):
    """A custom operator added with DataStream.transform: records what reaches it."""

    log: list = []

    def process_batch(self, values, timestamps):
        Recording.log.extend(("rec", v) for v in values)

    def process_watermark(self, watermark):
        Recording.log.append(("wm", watermark))
        super().process_watermark(watermark)

    def end_input(self):
        Recording.log.append(("end",))
        super().end_input()


class EveryEvent(WatermarkGenerator):
    def on_event(self, event, event_timestamp, output):
        output.emit_watermark(Watermark(event_timestamp))

    def on_periodic_emit(self, output):
        pass


def punctuated():
    return WatermarkStrategy.for_generator(lambda ctx: EveryEvent()).with_timestamp_assigner(lambda e, _: e)


def test_union_forwards_the_minimum_watermark_and_ends_with_max():
    env = StreamExecutionEnvironment.get_execution_environment()
    a = env.from_collection([10, 20, 30]).assign_timestamps_and_watermarks(punctuated())
    b = env.from_collection([5]).assign_timestamps_and_watermarks(punctuated())
    Recording.log = []
    a.union(b).transform("recording", None, Recording)
    env.execute()
    wms = [e[1] for e in Recording.log if e[0] == "wm"]
    assert wms == [5, MAX_WATERMARK]
    assert sorted(e[1] for e in Recording.log if e[0] == "rec") == [5, 10, 20, 30]
    assert Recording.log[-1] == ("end",)


def test_user_error_fails_the_job_naming_operator_and_record():
    class Boom(MapFunction):
        def map(self, value):
            if value == 3:
                raise ValueError("bad value")
            return value

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2, 3, 4]).map(Boom()).name("checker").print()
    with pytest.raises(
        UserCodeError, match=r"operator 'checker' failed on record 3: ValueError: bad value"
    ) as e:
        env.execute()
    assert isinstance(e.value.__cause__, ValueError)


def test_execute_and_collect_reraises_in_caller():
    env = StreamExecutionEnvironment.get_execution_environment()
    it = env.from_collection([1, 0]).map(lambda x: 1 // x).execute_and_collect()
    with pytest.raises(UserCodeError, match="ZeroDivisionError") as e:
        list(it)
    assert isinstance(e.value.__cause__, ZeroDivisionError)


class CountPerKey(KeyedProcessFunction):
    def open(self, runtime_context):
        self.n = runtime_context.get_state(ValueStateDescriptor("n", Types.LONG()))
        self.subtask = runtime_context.get_index_of_this_subtask()

    def process_element(self, value, ctx):
        n = (self.n.value() or 0) + 1
        self.n.update(n)
        yield ctx.get_current_key(), n, self.subtask


@pytest.mark.parametrize("parallelism", [1, 3])
def test_keyed_state_is_partitioned_over_parallel_instances(parallelism):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    out = list(
        env.from_source(NumberSequenceSource(0, 2999), WatermarkStrategy.no_watermarks(), "numbers")
        .key_by(lambda x: x % 100)
        .process(CountPerKey())
        .execute_and_collect()
    )
    assert len(out) == 3000
    final = {}
    owners = {}
    for key, n, subtask in out:
        final[key] = max(final.get(key, 0), n)
        owners.setdefault(key, set()).add(subtask)
    assert final == {k: 30 for k in range(100)}
    assert all(len(s) == 1 for s in owners.values())  # every key lives in exactly one instance
    assert len({s for ss in owners.values() for s in ss}) == parallelism


class ProcessingTimeEcho(KeyedProcessFunction):
    def process_element(self, value, ctx):
        if value == 0:
            ctx.timer_service().register_processing_time_timer(
                ctx.timer_service().current_processing_time() + 30
            )

    def on_timer(self, timestamp, ctx):
        yield "timer", ctx.time_domain()


def test_processing_time_timers_fire_in_an_unbounded_job():
    env = StreamExecutionEnvironment.get_execution_environment()
    src = DataGeneratorSource(lambda i: i, count=None, records_per_second=2000)
    out = first_results(
        env.from_source(src, WatermarkStrategy.no_watermarks(), "gen")
        .key_by(lambda x: 0)
        .process(ProcessingTimeEcho()),
        1,
    )
    assert out == [("timer", TimeDomain.PROCESSING_TIME)]


class EventTimeEcho(KeyedProcessFunction):
    def process_element(self, value, ctx):
        if value == 0:
            ctx.timer_service().register_event_time_timer(50)

    def on_timer(self, timestamp, ctx):
        yield timestamp, ctx.timer_service().current_watermark() >= 50


def test_periodic_watermarks_fire_event_timers_while_the_source_runs():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.get_config().set_auto_watermark_interval(10)
    src = DataGeneratorSource(lambda i: i, count=None, records_per_second=5000)
    wm = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(0)).with_timestamp_assigner(
        lambda e, _: e
    )
    out = (
        env.from_source(src, wm, "gen")
        .key_by(lambda x: 0)
        .process(EventTimeEcho())
        .execute_and_collect(limit=1)
    )
    assert out == [(50, True)]


def test_execute_async_and_cancel_an_unbounded_job():
    class Counter(SinkFunction):
        n = 0

        def invoke(self, value, context):
            Counter.n += 1

    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_source(
        DataGeneratorSource(lambda i: i, records_per_second=10_000), WatermarkStrategy.no_watermarks(), "gen"
    ).add_sink(Counter())
    client = env.execute_async("forever")
    assert len(client.get_job_id()) == 32
    deadline = time.time() + 5
    while Counter.n == 0 and time.time() < deadline:
        time.sleep(0.01)
    client.cancel().result(timeout=5)
    assert Counter.n > 0
    assert client.get_job_status().result() == "CANCELED"


def test_batch_mode_rejects_unbounded_sources():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.from_source(DataGeneratorSource(lambda i: i), WatermarkStrategy.no_watermarks(), "gen").print()
    with pytest.raises(ValueError, match="BATCH execution needs bounded sources"):
        env.execute()


def test_forward_between_different_parallelism_is_a_clear_error():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([1, 2]).forward().map(lambda x: x).set_parallelism(2).print()
    with pytest.raises(ValueError, match="forward partitioning does not allow a change of parallelism"):
        env.execute()


def test_print_prefixes_subtask_when_parallel(capsys):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.from_collection([1, 2, 3, 4]).print("out")
    env.execute()
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == ["out:1> 1", "out:1> 3", "out:2> 2", "out:2> 4"]


def test_partitioning_calls_keep_every_record():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(3)
    ds = env.from_source(NumberSequenceSource(1, 100), WatermarkStrategy.no_watermarks(), "n")
    parts = [
        ds.shuffle(),
        ds.rebalance(),
        ds.rescale(),
        ds.forward(),
        ds.partition_custom(lambda key, n: key % n, lambda x: x),
    ]
    for p in parts:
        assert sorted(p.map(lambda x: x).execute_and_collect()) == list(range(1, 101))


def test_no_operators_is_a_clear_error():
    env = StreamExecutionEnvironment.get_execution_environment()
    with pytest.raises(RuntimeError, match="no operators defined"):
        env.execute()


def test_a_finished_job_is_freed_with_its_last_reference(monkeypatch):
    # its operators, state and source readers go once execute() is done with them (on a
    # background thread), not at the next full collection (the checkpoint coordinator's timer
    # referred back to the job)
    import gc
    import weakref

    from flinkcore.runtime import executor
    from flinkcore.runtime.execution import wait_for_retired

    jobs = []
    run = executor.Job.run

    def run_and_note(self):
        jobs.append(weakref.ref(self))
        return run(self)

    monkeypatch.setattr(executor.Job, "run", run_and_note)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection([(i % 3, i) for i in range(100)]).key_by(lambda r: r[0]).reduce(
        lambda a, b: (a[0], a[1] + b[1])
    ).print()
    gc.collect()
    gc.disable()
    try:
        env.execute("freed")
        assert wait_for_retired(10)
        assert len(jobs) == 1 and jobs[0]() is None
    finally:
        gc.enable()
