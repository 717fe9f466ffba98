"""Two-phase (local-global) window aggregation in worker processes gives the results of the plan
without it: randomized jobs with out-of-order and late records, allowed lateness, late side
output, AggregateFunction (with and without a window function), reduce, sliding windows and the
columnar built-in aggregates, at parallelism 2 (and 3), against the same job with pre-aggregation
switched off and against parallelism 1 in one process.

Lateness must be the same in every run, so the jobs whose late records matter read through one
source subtask with a punctuated watermark generator (watermarks at fixed records, not on a
processing-time timer); the jobs with parallel sources use bounded out-of-orderness watermarks
(periodic, on the fused path) and data whose lateness cannot depend on timing.
"""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from two_phase_support import (
    FieldTs,
    ListSink,
    NoMerge,
    SumCount,
    assert_same_everywhere,
    punctuated,
    run,
)

from flinkcore.common import Configuration, Types
from flinkcore.common.time import Time
from flinkcore.common.watermark import Watermark
from flinkcore.common.watermark_strategy import WatermarkGenerator, WatermarkStrategy
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.functions import ProcessWindowFunction
from flinkcore.datastream.output_tag import OutputTag
from flinkcore.datastream.window import SlidingEventTimeWindows, TumblingEventTimeWindows
from flinkcore.runtime.cluster import ClusterJob
from flinkcore.runtime.cluster.two_phase import CONFIG_KEY
from flinkcore.runtime.sources import END, Source, SourceReader


class WithWindow(ProcessWindowFunction):
    def process(self, key, context, elements):
        w = context.window()
        for total, n, lo in elements:
            yield (key, w.start, w.end, total, n, lo, context.current_watermark() >= w.max_timestamp())


def events(seed, n=2500, keys=9, late_every=37):
    """(key, value, ts, punctuate): increasing time with jitter up to 60 ms, every
    ``late_every``-th record 150-1200 ms behind (late or within allowed lateness)."""
    rnd = random.Random(seed)
    out = []
    t = 0
    for i in range(n):
        t += rnd.randint(0, 9)
        ts = t - rnd.randint(0, 60)
        if late_every and i % late_every == late_every - 1:
            ts = t - rnd.randint(150, 1200)
        out.append((rnd.randrange(keys), rnd.randint(-50, 100), max(ts, 0), i % 7 == 0))
    return out


LATE = OutputTag("late", Types.PICKLED_BYTE_ARRAY())


def _windowed(env, data, assigner, lateness=0, side=True):
    s = (
        env.from_collection(data)
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(punctuated())
        .set_parallelism(1)
        .key_by(lambda e: e[0])
        .window(assigner)
    )
    if lateness:
        s = s.allowed_lateness(lateness)
    if side:
        s = s.side_output_late_data(LATE)
    return s


@pytest.mark.parametrize("seed", [1, 2])
def test_aggregate_function_late_records_allowed_lateness_side_output(seed):
    data = events(seed)
    lateness = [0, 300][seed % 2]

    def build(env):
        windows = _windowed(env, data, TumblingEventTimeWindows.of(Time.milliseconds(100)), lateness)
        result = windows.aggregate(SumCount())
        return result, result.get_side_output(LATE)

    main, late, _ = assert_same_everywhere(build, parallelisms=(2, 3))
    assert late, "the data has late records"


def test_aggregate_with_process_window_function_sees_the_final_result():
    data = events(5)

    def build(env):
        result = _windowed(env, data, TumblingEventTimeWindows.of(Time.milliseconds(250)), 200).aggregate(
            SumCount(), WithWindow()
        )
        return result, result.get_side_output(LATE)

    main, _, _ = assert_same_everywhere(build)
    # late firings within allowed lateness happen (the watermark is past the window)
    assert any(r[-1] for r in main)


def test_reduce_sliding_windows_with_lateness():
    data = events(7, n=1500)

    def build(env):
        result = _windowed(
            env, data, SlidingEventTimeWindows.of(Time.milliseconds(300), Time.milliseconds(120)), 250
        ).reduce(lambda a, b: (a[0], a[1] + b[1], max(a[2], b[2]), False))
        return result, result.get_side_output(LATE)

    main, late, _ = assert_same_everywhere(build)
    assert late


def test_named_agg_on_untyped_records_and_offsets():
    data = events(11, n=1500)

    def build(env):
        result = (
            env.from_collection(data)
            .set_parallelism(1)
            .assign_timestamps_and_watermarks(punctuated())
            .set_parallelism(1)
            .map(lambda e: {"k": e[0], "v": e[1]})
            .set_parallelism(1)
            .key_by(lambda e: e["k"])
            .window(TumblingEventTimeWindows.of(Time.milliseconds(200), Time.milliseconds(30)))
            .agg(total=("v", "sum"), n=("v", "count"), lo=("v", "min"), hi=("v", "max"))
        )
        return result, None

    assert_same_everywhere(build)


def test_aggregate_function_without_merge_keeps_the_one_phase_plan():
    """An AggregateFunction without merge cannot be split: the plan stays as it was."""
    data = events(3, n=600, late_every=0)

    def build(env):
        windows = _windowed(env, data, TumblingEventTimeWindows.of(Time.milliseconds(100)), side=False)
        result = windows.aggregate(NoMerge())
        return result, None

    assert_same_everywhere(build, expect_split=False)


# -- parallel sources: the fused path (bounded out-of-orderness, periodic watermarks) ----------


class _Strided(SourceReader):
    def __init__(self, rows):
        self.rows = rows
        self.pos = 0

    def poll(self, max_records):
        if self.pos >= len(self.rows):
            return END
        batch = self.rows[self.pos : self.pos + max_records]
        self.pos += len(batch)
        return batch, None

    def snapshot_state(self):
        return self.pos

    def restore_state(self, state):
        self.pos = state or 0


class Strided(Source):
    """Subtask ``i`` of ``p`` reads rows ``i, i+p, ...`` (all subtasks advance together)."""

    bounded = True
    parallel = True

    def __init__(self, rows):
        self.rows = rows

    def create_reader(self, subtask_index, parallelism):
        return _Strided(self.rows[subtask_index::parallelism])


def in_order_events(seed, n=6000, keys=40):
    """Timestamps that never run back more than the watermark bound: nothing is late, whatever
    the interleaving of the subtasks and the timing of periodic watermarks."""
    rnd = random.Random(seed)
    return [(rnd.randrange(keys), rnd.randint(0, 1000), i * 2 + rnd.randint(0, 20)) for i in range(n)]


@pytest.mark.parametrize("kind", ["aggregate", "reduce"])
def test_parallel_source_fused_timestamp_assigner_and_map(kind):
    data = in_order_events(21)
    wm = WatermarkStrategy.for_bounded_out_of_orderness(500).with_timestamp_assigner(FieldTs())

    def build(env):
        keyed = (
            env.from_source(Strided(data), WatermarkStrategy.no_watermarks(), "strided")
            .assign_timestamps_and_watermarks(wm)
            .map(lambda e: (e[0], e[1], e[2], 1))
            .key_by(lambda e: e[0])
            .window(TumblingEventTimeWindows.of(Time.milliseconds(400)))
        )
        if kind == "aggregate":
            return keyed.aggregate(SumCount()), None
        return keyed.reduce(lambda a, b: (a[0], a[1] + b[1], max(a[2], b[2]), a[3] + b[3])), None

    assert_same_everywhere(build)


# -- columnar: Arrow batches, built-in aggregates ----------------------------------------------


def _arrow(data):
    keys, values, ts = zip(*[(k, float(v), t) for k, v, t, _ in data], strict=True)
    return pa.table({"key": pa.array(keys, pa.int64()), "value": pa.array(values), "ts": pa.array(ts)})


class ArrowPunctuated(WatermarkGenerator):
    """Every 50 rows: the maximum timestamp so far minus 40."""

    def __init__(self):
        self.max_ts = -(2**62)
        self.seen = 0

    def on_event(self, event, event_timestamp, output):
        self.max_ts = max(self.max_ts, event_timestamp)
        self.seen += 1
        if self.seen % 50 == 0:
            output.emit_watermark(Watermark(self.max_ts - 40))

    def on_periodic_emit(self, output):
        pass


@pytest.mark.parametrize("sliding", [False, True])
def test_columnar_sum_count_min_max_with_late_side_output(sliding):
    table = _arrow(events(31, n=3000))
    assigner = (
        SlidingEventTimeWindows.of(Time.milliseconds(300), Time.milliseconds(100))
        if sliding
        else TumblingEventTimeWindows.of(Time.milliseconds(100))
    )

    def build(env):
        strategy = WatermarkStrategy.for_generator(lambda ctx: ArrowPunctuated())
        strategy = strategy.with_timestamp_assigner("ts")
        result = (
            env.from_arrow(table)
            .assign_timestamps_and_watermarks(strategy)
            .set_parallelism(1)
            .key_by("key")
            .window(assigner)
            .side_output_late_data(LATE)
            .agg(total=("value", "sum"), n=("value", "count"), lo=("value", "min"), hi=("value", "max"))
        )
        late = result.get_side_output(LATE).map(lambda r: (r["key"], r["value"], r["ts"]))
        return result.map(lambda r: tuple(r)), late

    main, late, _ = assert_same_everywhere(build)
    assert late


def test_columnar_mean_keeps_the_one_phase_plan():
    table = _arrow(events(33, n=800, late_every=0))

    def build(env):
        strategy = WatermarkStrategy.for_bounded_out_of_orderness(100).with_timestamp_assigner("ts")
        result = (
            env.from_arrow(table)
            .assign_timestamps_and_watermarks(strategy)
            .set_parallelism(1)
            .key_by("key")
            .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
            .agg(avg=("value", "mean"))
        )
        return result.map(lambda r: tuple(r)), None

    assert_same_everywhere(build, expect_split=False)


# -- idle inputs: a local operator whose input went idle sends everything and then passes records on --


class _PausingReader(SourceReader):
    """Subtask 0: ``busy`` rows in small batches, a little at a time; subtask 1: ``early`` rows, then
    nothing for ``pause`` seconds (its watermark generator marks it idle), then ``late`` rows
    whose timestamps are far ahead of everything else (so no record is late in any run)."""

    def __init__(self, index, busy, early, tail, pause):
        self.index = index
        self.busy, self.early, self.tail = busy, early, tail
        self.pause = pause
        self.pos = 0
        self.quiet_since = None

    def poll(self, max_records):
        import time

        if self.index == 0:
            if self.pos >= len(self.busy):
                return END
            time.sleep(0.002)
            batch = self.busy[self.pos : self.pos + 20]
            self.pos += len(batch)
            return batch, None
        if self.pos < len(self.early):
            self.pos = len(self.early)
            return list(self.early), None
        if self.quiet_since is None:
            self.quiet_since = time.monotonic()
        if time.monotonic() - self.quiet_since < self.pause:
            time.sleep(0.002)
            return None
        if self.tail:
            batch, self.tail = self.tail, []
            return batch, None
        return END


class Pausing(Source):
    bounded = True
    parallel = True

    def __init__(self, busy, early, tail, pause):
        self.busy, self.early, self.tail, self.pause = busy, early, tail, pause

    def create_reader(self, subtask_index, parallelism):
        return _PausingReader(subtask_index, self.busy, self.early, list(self.tail), self.pause)


def test_idle_input_sends_its_partials_and_then_passes_records_on():
    rnd = random.Random(41)
    busy = [(rnd.randrange(6), rnd.randint(0, 50), i * 5) for i in range(5000)]  # >= 0.5 s
    early = [(rnd.randrange(6), rnd.randint(0, 50), i) for i in range(40)]
    tail = [(rnd.randrange(6), rnd.randint(0, 50), 100_000 + i) for i in range(300)]
    wm = (
        WatermarkStrategy.for_bounded_out_of_orderness(20)
        .with_timestamp_assigner(FieldTs())
        .with_idleness(Time.milliseconds(30))
    )

    def build(env):
        env.get_config().set_auto_watermark_interval(10)
        result = (
            env.from_source(Pausing(busy, early, tail, 0.08), WatermarkStrategy.no_watermarks(), "pausing")
            .assign_timestamps_and_watermarks(wm)
            .key_by(lambda e: e[0])
            .window(TumblingEventTimeWindows.of(Time.milliseconds(100)))
            .aggregate(SumCount())
        )
        return result, None

    reference = run(build, 2, False, in_process=True)
    off = run(build, 2, False)
    on = run(build, 2, True)
    assert on[2]
    assert on[:2] == off[:2] == reference[:2]
    assert sum(r[1] for r in on[0]) == len(busy) + len(early) + len(tail)


# -- the switch ---------------------------------------------------------------------------------


def test_switch_from_the_configuration_and_the_environment(monkeypatch):
    from flinkcore.runtime.cluster.two_phase import ENV_VAR, enabled
    from flinkcore.runtime.graph import StreamGraph

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert enabled(StreamGraph("j"))
    assert not enabled(StreamGraph("j", config={CONFIG_KEY: "false"}))
    with pytest.raises(ValueError, match=CONFIG_KEY):
        enabled(StreamGraph("j", config={CONFIG_KEY: "maybe"}))
    monkeypatch.setenv(ENV_VAR, "0")
    assert not enabled(StreamGraph("j", config={CONFIG_KEY: "true"}))

    monkeypatch.setenv(ENV_VAR, "")
    env = StreamExecutionEnvironment.get_execution_environment(
        Configuration().set_string(CONFIG_KEY, "false")
    )
    env.set_parallelism(2)
    (
        env.from_collection([(1, 2, 3, True)])
        .assign_timestamps_and_watermarks(punctuated())
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(10)))
        .aggregate(SumCount())
        .add_sink(ListSink())
    )
    graph = env.get_stream_graph("switch", clear_transformations=True)
    assert ClusterJob(graph).graph.config.get("two_phase_windows") is None
    del graph.config[CONFIG_KEY]
    assert ClusterJob(graph).graph.config.get("two_phase_windows")


def test_union_of_two_inputs_pre_aggregates_in_each_upstream_task():
    """key_by on a union: one keyed exchange per input, each with its own local operator."""
    a = in_order_events(51, n=2000)
    b = [(k, v, t + 1) for k, v, t in in_order_events(52, n=2000)]
    wm = WatermarkStrategy.for_bounded_out_of_orderness(500).with_timestamp_assigner(FieldTs())

    def build(env):
        left = env.from_source(Strided(a), WatermarkStrategy.no_watermarks(), "a")
        right = env.from_source(Strided(b), WatermarkStrategy.no_watermarks(), "b")
        left = left.assign_timestamps_and_watermarks(wm)
        right = right.assign_timestamps_and_watermarks(wm).map(lambda e: (e[0], e[1] * 10, e[2]))
        result = (
            left.union(right)
            .key_by(lambda e: e[0])
            .window(TumblingEventTimeWindows.of(Time.milliseconds(300)))
            .aggregate(SumCount())
        )
        return result, None

    assert_same_everywhere(build)


def test_union_fed_window_gets_a_local_operator_per_input():
    a = in_order_events(53, n=50)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    wm = WatermarkStrategy.for_bounded_out_of_orderness(500).with_timestamp_assigner(FieldTs())
    left = env.from_source(
        Strided(a), WatermarkStrategy.no_watermarks(), "a"
    ).assign_timestamps_and_watermarks(wm)
    right = env.from_source(
        Strided(a), WatermarkStrategy.no_watermarks(), "b"
    ).assign_timestamps_and_watermarks(wm)
    (
        left.union(right)
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(300)))
        .reduce(lambda x, y: (x[0], x[1] + y[1], max(x[2], y[2])))
        .add_sink(ListSink())
    )
    graph = env.get_stream_graph("union", clear_transformations=True)
    graph.config[CONFIG_KEY] = True
    split = ClusterJob(graph).graph
    locals_ = [n for n in split.nodes.values() if n.name.startswith("LocalAggregate")]
    assert len(locals_) == 2
    assert len({n.uid for n in locals_}) == 2
    window = [n for n in split.nodes.values() if n.name.startswith("Window")][0]
    assert {e.source_id for e in split.in_edges(window.id)} == {n.id for n in locals_}
