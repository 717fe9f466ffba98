"""Two-phase aggregation of event-time session windows in worker processes gives the results of
the plan without it and of parallelism 1 in one process: randomized jobs with out-of-order and
late records, late side output, AggregateFunction and reduce, a ProcessWindowFunction on top,
parallel sources whose interleaving varies from run to run (checked against a model of
sessions), and the combinations that keep the one-phase plan (allowed lateness, no merge).

Lateness must be the same in every run, so the jobs with late records read through one source
subtask with a punctuated watermark generator; the jobs with parallel sources have no record
within two milliseconds of its subtask's watermark, so no session's contents can depend on the
interleaving of the subtasks (a record at ``watermark + 1`` may or may not touch a session
another subtask's watermark lets fire, with or without pre-aggregation).
"""

from __future__ import annotations

import random

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

from flinkcore.common import Types
from flinkcore.common.time import Time
from flinkcore.common.watermark_strategy import WatermarkStrategy
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.functions import ProcessWindowFunction
from flinkcore.datastream.output_tag import OutputTag
from flinkcore.datastream.window import EventTimeSessionWindows
from flinkcore.runtime.cluster import ClusterJob
from flinkcore.runtime.cluster.two_phase import (
    CONFIG_KEY,
    SESSIONS_CONFIG_KEY,
    SESSIONS_MAX_RATIO_KEY,
    SESSIONS_MIN_RECORDS_KEY,
)
from flinkcore.runtime.operators.local_sessions import LocalSessionOperator
from flinkcore.runtime.sources import END, Source, SourceReader
from flinkcore.runtime.testing import OneInputStreamOperatorTestHarness


class WithWindow(ProcessWindowFunction):
    def process(self, key, context, elements):
        w = context.window()
        for r in elements:
            yield (key, w.start, w.end, r, context.current_watermark() >= w.max_timestamp())


def _reduce(a, b):
    return (a[0], a[1] + b[1], max(a[2], b[2]), True)


def events(seed, n=2500, keys=9, late_every=37):
    """(key, value, ts, punctuate): increasing time with jitter up to 60 ms, every
    ``late_every``-th record 150-1200 ms behind (late, or merging into an open session)."""
    rnd = random.Random(seed)
    out = []
    t = 0
    for i in range(n):
        t += rnd.randint(0, 12)
        ts = t - rnd.randint(0, 60)
        if late_every and i % late_every == late_every - 1:
            ts = t - rnd.randint(150, 1200)
        out.append((rnd.randrange(keys), rnd.randint(-50, 100), max(ts, 0), i % 7 == 0))
    return out


LATE = OutputTag("late", Types.PICKLED_BYTE_ARRAY())


def _windowed(env, data, gap, bound=40, lateness=0, side=True, key=None, as_lists=False):
    s = (
        env.from_collection(data)
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(punctuated(bound))
        .set_parallelism(1)
    )
    if as_lists:  # (a map the local operator fuses; its records are lists, as messages are)
        s = s.map(list).set_parallelism(1)
    s = s.key_by(key or (lambda e: e[0])).window(EventTimeSessionWindows.with_gap(Time.milliseconds(gap)))
    if lateness:
        s = s.allowed_lateness(lateness)
    if side:
        s = s.side_output_late_data(LATE)
    return s


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_aggregate_function_late_records_and_late_side_output(seed):
    data = events(seed)
    gap = [30, 70, 200][seed - 1]

    def build(env):
        result = _windowed(env, data, gap).aggregate(SumCount())
        return result, result.get_side_output(LATE)

    main, late, _ = assert_same_everywhere(build, parallelisms=(2, 3))
    assert late, "the data has late records"
    assert len(main) > 50, "the data has many sessions"


def _scrambled_key(e):
    return e[0] * 7 % 9 - 4  # another key for every e[0] in 0..8; not a subscript


@pytest.mark.parametrize("seed", [1, 4])
def test_pass_through_mid_stream_gives_the_one_phase_results(seed):
    """The local operator measures 100-record periods and passes through after the first period
    that sent anything (ratio 0): with late records every 37 records (each goes on alone, a
    message), that is after about 100-200 of the 2500 records, mid-stream. Sessions then hold
    partials and extents sent before the switch and records sent after it; results and late
    side output are those of the one-phase plan and of parallelism 1."""
    data = events(seed)
    adapt = {SESSIONS_MIN_RECORDS_KEY: 100, SESSIONS_MAX_RATIO_KEY: 0.0}

    def build(env):
        result = _windowed(env, data, 70).aggregate(SumCount(), WithWindow())
        return result, result.get_side_output(LATE)

    main, late, _ = assert_same_everywhere(build, parallelisms=(2, 3), config=adapt)
    assert late and len(main) > 50
    # the local operator on the same records in the same order does switch, and early (its
    # watermarks here: one per batch, the maximum so far - 40, as the punctuation's)
    agg = SumCount()
    local = LocalSessionOperator(70, 0, agg.create_accumulator, agg.add, lambda e: e[0], "local", 100, 0.0)
    h = OneInputStreamOperatorTestHarness(local)
    h.open()
    max_ts = 0
    for i in range(0, len(data), 64):
        batch = data[i : i + 64]
        max_ts = max(max_ts, *(r[2] for r in batch))
        h.process_elements(batch, [r[2] for r in batch])
        h.process_watermark(max_ts - 40)
    assert local.pass_through_reason == "reduction"
    assert local.records_in < len(data) // 2


@pytest.mark.parametrize("as_lists", [False, True])
def test_pass_through_with_another_key_selector_and_list_records(as_lists):
    """The exchange keys messages by their first item and records by the user's key selector
    (window_udf.MessageKey) when that is not ``lambda v: v[0]``; records that are lists cross
    wrapped (lists are the messages), before and after the switch."""
    data = events(2, n=1500)
    adapt = {SESSIONS_MIN_RECORDS_KEY: 100, SESSIONS_MAX_RATIO_KEY: 0.0}

    def build(env):
        result = _windowed(env, data, 70, key=_scrambled_key, as_lists=as_lists).aggregate(
            SumCount(), WithWindow()
        )
        return result, result.get_side_output(LATE)

    main, late, _ = assert_same_everywhere(build, config=adapt)
    assert late and len(main) > 30
    assert {r[0] for r in main} == {_scrambled_key((k,)) for k in range(9)}


@pytest.mark.parametrize("seed", [4, 5])
def test_reduce_and_aggregate_with_process_window_function(seed):
    data = events(seed, n=1500)

    def build_reduce(env):
        result = _windowed(env, data, 50).reduce(_reduce, WithWindow())
        return result, result.get_side_output(LATE)

    def build_aggregate(env):
        result = _windowed(env, data, 50, side=False).aggregate(SumCount(), WithWindow())
        return result, None

    main, late, _ = assert_same_everywhere(build_reduce)
    assert late
    assert assert_same_everywhere(build_aggregate)[0]


def test_allowed_lateness_keeps_the_one_phase_plan():
    """Sessions with allowed lateness run on the general window operator (late firings, cleanup
    timers): not split, and the results are those of parallelism 1."""
    data = events(6, n=1200)

    def build(env):
        result = _windowed(env, data, 50, lateness=300).aggregate(SumCount(), WithWindow())
        return result, result.get_side_output(LATE)

    main, late, _ = assert_same_everywhere(build, expect_split=False)
    assert late


def _plan(build, **config):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    result, _ = build(env)
    result.add_sink(ListSink())
    graph = env.get_stream_graph("plan", clear_transformations=True)
    graph.config.update(config)
    return ClusterJob(graph).graph


def test_aggregate_function_without_merge_keeps_the_one_phase_plan():
    data = events(7, n=50, late_every=0)
    graph = _plan(lambda env: (_windowed(env, data, 50, side=False).aggregate(NoMerge()), None))
    assert graph.config.get("two_phase_windows") is None
    assert not [n for n in graph.nodes.values() if n.name.startswith("LocalAggregate")]


def test_switch_off_keeps_the_one_phase_plan(monkeypatch):
    from flinkcore.runtime.cluster.two_phase import ENV_VAR, SESSIONS_ENV_VAR

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv(SESSIONS_ENV_VAR, raising=False)
    data = events(8, n=50, late_every=0)

    def build(env):
        return _windowed(env, data, 50, side=False).aggregate(SumCount()), None

    on = _plan(build, **{SESSIONS_CONFIG_KEY: "true"})
    assert on.config.get("two_phase_windows")
    assert [n.name for n in on.nodes.values() if n.name.startswith("LocalAggregate")]
    off = {CONFIG_KEY: "false", SESSIONS_CONFIG_KEY: "true"}
    assert _plan(build, **off).config.get("two_phase_windows") is None
    # sessions have their own switch, and the environment overrides both
    assert _plan(build, **{SESSIONS_CONFIG_KEY: "false"}).config.get("two_phase_windows") is None
    monkeypatch.setenv(SESSIONS_ENV_VAR, "0")
    assert _plan(build).config.get("two_phase_windows") is None
    monkeypatch.setenv(SESSIONS_ENV_VAR, "1")
    assert _plan(build, **{SESSIONS_CONFIG_KEY: "false"}).config.get("two_phase_windows")
    monkeypatch.setenv(ENV_VAR, "0")
    assert _plan(build).config.get("two_phase_windows") is None


def test_sessions_stay_one_phase_by_default(monkeypatch):
    from flinkcore.runtime.cluster.two_phase import ENV_VAR, SESSIONS_ENV_VAR

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv(SESSIONS_ENV_VAR, raising=False)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    _windowed(env, events(9, n=50, late_every=0), 50, side=False).aggregate(SumCount()).add_sink(ListSink())
    graph = env.get_stream_graph("default", clear_transformations=True)
    plan = ClusterJob(graph).graph
    assert not [n.name for n in plan.nodes.values() if n.name.startswith("LocalAggregate")]
    graph.config[SESSIONS_CONFIG_KEY] = "true"
    plan = ClusterJob(graph).graph
    assert plan.config.get("two_phase_windows")
    assert [n.name for n in plan.nodes.values() if n.name.startswith("LocalAggregate")]


# -- parallel sources: partials of one key from several upstream tasks --------------------------


class _Rows(SourceReader):
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


class Split(Source):
    """Subtask ``i`` of ``p`` reads ``parts[i]`` (one list of rows per subtask)."""

    bounded = True
    parallel = True

    def __init__(self, parts):
        self.parts = parts

    def create_reader(self, subtask_index, parallelism):
        assert parallelism == len(self.parts)
        return _Rows(self.parts[subtask_index])


def split_events(seed, parts=2, n=3000, keys=25, jitter=15):
    """Per subtask: increasing time with jitter up to ``jitter`` ms, a punctuation every few
    records. Keys are shared by the subtasks, so sessions hold records of both."""
    rnd = random.Random(seed)
    out = []
    for _ in range(parts):
        t = 0
        rows = []
        for i in range(n // parts):
            t += rnd.randint(0, 6)
            rows.append(
                (rnd.randrange(keys), rnd.randint(0, 100), max(t - rnd.randint(0, jitter), 0), i % 5 == 0)
            )
        out.append(rows)
    return out


def model_sessions(rows, gap):
    """Every key's sessions as connected runs of ``[ts, ts + gap)`` (nothing is late)."""
    by_key: dict = {}
    for r in rows:
        by_key.setdefault(r[0], []).append(r)
    out = []
    for key, rs in by_key.items():
        rs.sort(key=lambda r: r[2])
        cur = None
        for r in rs:
            if cur is not None and r[2] <= cur[1]:
                cur[1] = max(cur[1], r[2] + gap)
                cur[2].append(r)
            else:
                if cur is not None:
                    out.append((key, cur[0], cur[1], cur[2]))
                cur = [r[2], r[2] + gap, [r]]
        out.append((key, cur[0], cur[1], cur[2]))
    return out


@pytest.mark.parametrize("seed", [11, 12])
def test_parallel_sources_sessions_equal_the_model(seed):
    gap, jitter = 40, 15
    parts = split_events(seed, jitter=jitter)
    rows = [r for part in parts for r in part]
    # the watermark trails the subtask's maximum by jitter + 2: no record within 2 ms of it
    strategy = punctuated(jitter + 2)

    def build(env):
        keyed = (
            env.from_source(Split(parts), WatermarkStrategy.no_watermarks(), "split")
            .set_parallelism(2)
            .assign_timestamps_and_watermarks(strategy)
            .set_parallelism(2)
            .key_by(lambda e: e[0])
            .window(EventTimeSessionWindows.with_gap(Time.milliseconds(gap)))
        )
        return keyed.aggregate(SumCount(), WithWindow()).set_parallelism(2), None

    on = run(build, 2, True)
    off = run(build, 2, False)
    assert on[2], "the window was not split"
    expected = sorted(
        (
            (key, start, end, (sum(r[1] for r in rs), len(rs), min(r[1] for r in rs)), True)
            for key, start, end, rs in model_sessions(rows, gap)
        ),
        key=repr,
    )
    assert off[0] == expected
    assert on[0] == expected


def test_fused_timestamp_assigner_and_map_on_parallel_sources():
    """The local operator's compiled loop with the timestamp assigner and a map fused into it
    (bounded out-of-orderness watermarks, periodic), W3's shape: COUNT per session."""
    gap = 25
    parts = split_events(13, n=6000, keys=60, jitter=10)
    rows = [r for part in parts for r in part]
    wm = WatermarkStrategy.for_bounded_out_of_orderness(100).with_timestamp_assigner(FieldTs())

    def build(env):
        return (
            env.from_source(Split(parts), WatermarkStrategy.no_watermarks(), "split")
            .set_parallelism(2)
            .assign_timestamps_and_watermarks(wm)
            .map(lambda e: (e[0], 1, e[2], e[3]))
            .key_by(lambda e: e[0])
            .window(EventTimeSessionWindows.with_gap(Time.milliseconds(gap)))
            .reduce(lambda a, b: (a[0], a[1] + b[1], max(a[2], b[2]), True)),
            None,
        )

    on = run(build, 2, True)
    assert on[2]
    # (a one-record session's result is the record itself: its fourth field is the record's)
    expected = sorted((key, len(rs), max(r[2] for r in rs)) for key, _, _, rs in model_sessions(rows, gap))
    assert sorted(r[:3] for r in on[0]) == expected
    assert on[:2] == run(build, 2, False)[:2]
