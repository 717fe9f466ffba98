"""The compiled per-record window loops (``flinkcore._core.window_udf``) give exactly what the
Python loops and Flink's general WindowOperator give.

Randomized micro-batches (int, string and mixed keys, out-of-order and late elements, allowed
lateness, the three kinds of window contents) run through each operator three ways: compiled,
its Python twin (the same operator with the compiled loop switched off), and the general
``WindowOperator``. Whole jobs run fused (timestamp assigner inside the window's loop) and
unfused. Snapshots taken from the compiled state restore, and closed sessions are freed.
"""

from __future__ import annotations

import random
import zlib

import pytest

from flinkcore._core.window_udf import KeyedPanes
from flinkcore.common.watermark import Watermark
from flinkcore.datastream.window import EventTimeSessionWindows, TimeWindow, TumblingEventTimeWindows
from flinkcore.runtime.operators.base import UserCodeError
from flinkcore.runtime.operators.window import (
    AlignedWindowOperator,
    InternalWindowFunction,
    SessionWindowOperator,
    WindowOperator,
    WindowStateSpec,
)
from flinkcore.runtime.testing import KeyedOneInputStreamOperatorTestHarness


def _seed(*parts: object) -> int:
    """A test case's random seed from its parameters, the same in every run (``hash()`` of a
    string changes with each process's hash seed, so a failing case could not be run again)."""
    return zlib.crc32(repr(parts).encode())


MAX = (1 << 63) - 1
LATE = "late"


class SumCount:
    """An AggregateFunction with tuple accumulators, as PyFlink's documentation writes them."""

    def create_accumulator(self):
        return 0.0, 0

    def add(self, value, acc):
        return acc[0] + value[1], acc[1] + 1

    def get_result(self, acc):
        return acc

    def merge(self, a, b):
        return a[0] + b[0], a[1] + b[1]


def specs():
    return {
        "aggregating": WindowStateSpec("aggregating", aggregate=SumCount()),
        "reducing": WindowStateSpec("reducing", reduce=lambda a, b: (a[0], a[1] + b[1], a[2])),
        "list": WindowStateSpec("list"),
    }


def emit(key, window, ctx, contents):
    if isinstance(contents, list):
        contents = tuple(sorted(contents))
    return [(key, window.start, window.end, contents)]


def window_function(passthrough):
    """A window function that sees key and window, or none (the aggregate itself is output)."""
    if passthrough:
        return InternalWindowFunction(lambda key, window, ctx, value: (value,), passthrough=True)
    return InternalWindowFunction(emit)


def tumbling(size, spec, lateness, passthrough=False):
    return AlignedWindowOperator(
        size,
        size,
        0,
        spec,
        window_function(passthrough),
        TimeWindow,
        allowed_lateness=lateness,
        late_data_tag=LATE,
    )


def sessions(gap, spec, lateness, passthrough=False):
    return SessionWindowOperator(gap, spec, window_function(passthrough), TimeWindow, late_data_tag=LATE)


def general(assigner, spec, lateness, passthrough=False):
    return WindowOperator(
        assigner,
        assigner.get_default_trigger(),
        spec,
        window_function(passthrough),
        allowed_lateness=lateness,
        late_data_tag=LATE,
    )


def python_twin(op):
    """The same operator on its Python loop (called after open)."""
    op._use_compiled = False
    if hasattr(op, "_new_panes"):
        op._new_panes = dict
    return op


def random_batches(rng, n, keys):
    """Batches of ``(key, value, ident)`` records with timestamps, and watermarks between them."""
    out, t, wm, ident = [], 0, -(1 << 62), 0
    while ident < n:
        if rng.random() < 0.25:
            wm = max(wm, t - rng.randint(0, 20))
            out.append(("w", wm))
            continue
        values, stamps = [], []
        for _ in range(rng.randint(1, 40)):
            t += rng.randint(0, 3)
            values.append((rng.choice(keys), float(rng.randint(0, 9)), ident))
            stamps.append(t - rng.randint(0, 30))
            ident += 1
        out.append(("b", values, stamps))
    out.append(("w", MAX))
    return out


def run(op, script, twin=False, key_selector=lambda v: v[0]):
    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=key_selector)
    h.open()
    if twin:
        python_twin(op)
    for step in script:
        if step[0] == "w":
            h.process_watermark(step[1])
        else:
            h.process_elements(step[1], step[2])
    out = [
        ("wm", item.timestamp) if isinstance(item, Watermark) else (item.value, item.timestamp)
        for item in h.get_output()
    ]
    return out, h.get_side_output_values(LATE)


def by_epoch(output):
    """Results between watermarks as sorted lists (the general operator fires in timer order)."""
    epochs: list = [[]]
    for item in output:
        if item[0] == "wm":
            epochs.append([])
        else:
            epochs[-1].append(item)
    return [sorted(e, key=repr) for e in epochs]


KEYS = {
    "int": list(range(7)),
    "str": list("abcde"),
    "mixed": [1, 2, "x", 2**70, -3],
    "equal numbers": [1, 1.0, True, 2, 2.0],
}


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("kind", ["aggregating", "reducing", "list"])
@pytest.mark.parametrize("keys", list(KEYS))
def test_random_tumbling_compiled_equals_python_and_general(seed, kind, keys):
    rng = random.Random(_seed(seed, kind, keys))
    size = rng.randint(1, 15)
    lateness = rng.choice([0, 0, 5, 20])
    script = random_batches(rng, 300, KEYS[keys])
    compiled = run(tumbling(size, specs()[kind], lateness), script)
    twin = run(tumbling(size, specs()[kind], lateness), script, twin=True)
    assert compiled == twin  # the same records in the same order, and the same late records
    reference = run(general(TumblingEventTimeWindows.of(size), specs()[kind], lateness), script)
    assert by_epoch(compiled[0]) == by_epoch(reference[0])
    assert sorted(compiled[1], key=repr) == sorted(reference[1], key=repr)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("kind", ["aggregating", "reducing", "list"])
@pytest.mark.parametrize("keys", ["int", "str", "mixed"])
def test_random_sessions_compiled_equals_python_and_general(seed, kind, keys):
    rng = random.Random(_seed(seed, kind, keys, "s"))
    gap = rng.randint(1, 12)
    script = random_batches(rng, 300, KEYS[keys])
    compiled = run(sessions(gap, specs()[kind], 0), script)
    twin = run(sessions(gap, specs()[kind], 0), script, twin=True)
    assert compiled == twin
    reference = run(general(EventTimeSessionWindows.with_gap(gap), specs()[kind], 0), script)
    assert by_epoch(compiled[0]) == by_epoch(reference[0])
    assert sorted(compiled[1], key=repr) == sorted(reference[1], key=repr)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", ["aggregating", "reducing"])
@pytest.mark.parametrize("make", ["tumbling", "sessions"])
def test_random_passthrough_firings_equal_python_and_general(seed, kind, make):
    """No window function (``aggregate(f)`` / ``reduce(f)`` alone): results are emitted by the
    compiled firing loops, in the same order as the Python path."""
    rng = random.Random(_seed(seed, kind, make, "p"))
    n = rng.randint(1, 12)
    script = random_batches(rng, 300, KEYS["int"] + ["s"])
    lateness = rng.choice([0, 7]) if make == "tumbling" else 0
    build = tumbling if make == "tumbling" else sessions
    compiled = run(build(n, specs()[kind], lateness, passthrough=True), script)
    assert compiled == run(build(n, specs()[kind], lateness, passthrough=True), script, twin=True)
    assigner = TumblingEventTimeWindows.of(n) if make == "tumbling" else EventTimeSessionWindows.with_gap(n)
    reference = run(general(assigner, specs()[kind], lateness, passthrough=True), script)
    assert by_epoch(compiled[0]) == by_epoch(reference[0]) and len(compiled[0]) > 10


@pytest.mark.parametrize("make", [tumbling, sessions], ids=["tumbling", "sessions"])
def test_float_timestamps_take_the_python_path_with_the_same_results(make):
    rng = random.Random(3)
    script = random_batches(rng, 300, KEYS["int"])
    for step in script:
        if step[0] == "b":
            step[2][:] = [t + 0.5 if rng.random() < 0.3 else t for t in step[2]]
    compiled = run(make(6, specs()["aggregating"], 0), script)
    assert compiled == run(make(6, specs()["aggregating"], 0), script, twin=True)
    assert len(compiled[0]) > 20


@pytest.mark.parametrize("make", [tumbling, sessions], ids=["tumbling", "sessions"])
@pytest.mark.parametrize("seed", range(6))
def test_snapshot_of_compiled_state_restores(make, seed):
    rng = random.Random(seed)
    script = random_batches(rng, 400, KEYS["int"])
    cut = rng.randint(1, len(script) - 2)

    def op():
        return make(7, specs()["aggregating"], 0)

    whole = run(op(), script)
    h = KeyedOneInputStreamOperatorTestHarness(op(), key_selector=lambda v: v[0])
    h.open()
    for step in script[:cut]:
        h.process_watermark(step[1]) if step[0] == "w" else h.process_elements(step[1], step[2])
    snap = h.snapshot()
    before = [(r.value, r.timestamp) for r in h.extract_output_records()]
    late = h.get_side_output_values(LATE)
    for twin in (False, True):  # restored into the compiled operator and into its Python twin
        h2 = KeyedOneInputStreamOperatorTestHarness(op(), key_selector=lambda v: v[0])
        h2.initialize_state(snap)
        h2.open()
        if twin:
            python_twin(h2.operator)
        # After a restore the watermark starts over; the upstream re-sends where it was.
        h2.process_watermark(max([-(1 << 62)] + [s[1] for s in script[:cut] if s[0] == "w"]))
        for step in script[cut:]:
            h2.process_watermark(step[1]) if step[0] == "w" else h2.process_elements(step[1], step[2])
        after = [(r.value, r.timestamp) for r in h2.extract_output_records()]
        expected = [item for item in whole[0] if item[0] != "wm"]
        assert sorted(before + after, key=repr) == sorted(expected, key=repr)
        assert sorted(late + h2.get_side_output_values(LATE), key=repr) == sorted(whole[1], key=repr)


def test_closed_sessions_are_freed_on_an_endless_stream():
    op = sessions(10, specs()["aggregating"], 0)
    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda v: v[0])
    h.open()
    held = []
    for b in range(400):
        base = b * 50
        h.process_elements([(i % 100, 1.0, i) for i in range(50)], [base + i for i in range(50)])
        h.process_watermark(base - 20)
        held.append(op.open_sessions())
    assert max(held) <= 100 and held[-1] == held[100]
    h.process_watermark(MAX)
    assert op.open_sessions() == 0 and not any(op._wheel.values())
    assert sum(r.value[3][1] for r in h.extract_output_records()) == 400 * 50


def test_keyed_panes_is_a_dict_in_insertion_order():
    rng = random.Random(7)
    for keys in KEYS.values():
        panes, ref = KeyedPanes(), {}
        for _ in range(2000):
            k = rng.choice(keys + [rng.randint(-(2**63), 2**63 - 1)])
            op = rng.random()
            if op < 0.6:
                v = rng.random()
                panes[k] = v
                ref[k] = v
            else:
                assert panes.get(k, "missing") == ref.get(k, "missing")
                assert (k in panes) == (k in ref)
        assert len(panes) == len(ref)
        assert list(panes) == list(ref) and panes.values() == list(ref.values())
        assert panes.items() == list(ref.items()) and panes.to_dict() == ref
    with pytest.raises(KeyError):
        KeyedPanes()[3]


def test_user_errors_name_the_operator_and_the_record():
    class Failing(SumCount):
        def add(self, value, acc):
            if value[2] == 5:
                raise ZeroDivisionError("boom")
            return super().add(value, acc)

    op = tumbling(10, WindowStateSpec("aggregating", aggregate=Failing()), 0)
    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda v: v[0])
    h.open()
    with pytest.raises(UserCodeError, match=r"failed on record \(1, 0.0, 5\): ZeroDivisionError: boom"):
        h.process_elements([(1, 0.0, i) for i in range(8)], list(range(8)))
    op = tumbling(10, specs()["aggregating"], 0)
    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda v: v[0])
    h.open()
    with pytest.raises(ValueError, match="no timestamp"):
        h.process_elements([(1, 0.0, 0), (1, 0.0, 1)], [3, None])


# ---- whole jobs: fused with the timestamp assigner, and not ----------------------------------


def job(events, fuse, window, lateness=0, assigner=None, batch_size=64, mapper=None, agg=None):
    from flinkcore.common import Duration, WatermarkStrategy
    from flinkcore.common.watermark_strategy import TimestampAssigner
    from flinkcore.datastream import OutputTag, SinkFunction, StreamExecutionEnvironment
    from flinkcore.runtime.executor import Job

    class EventTime(TimestampAssigner):
        def extract_timestamp(self, value, record_timestamp):
            return value[2]

    class Collect(SinkFunction):
        def __init__(self):
            self.got = []

        def invoke(self, value, context):
            self.got.append((value, context.timestamp()))

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    sink, late_sink = Collect(), Collect()
    tag = OutputTag("late")
    stamped = env.from_collection(events).assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(5)).with_timestamp_assigner(
            assigner or EventTime()
        )
    )
    if mapper is not None:
        stamped = stamped.map(mapper)
    windowed = (
        stamped.key_by(lambda e: e[0]).window(window).allowed_lateness(lateness).side_output_late_data(tag)
    )
    result = windowed.aggregate(agg or SumCount())
    result.add_sink(sink)
    result.get_side_output(tag).add_sink(late_sink)
    graph = env.get_stream_graph("t", clear_transformations=True)
    graph.config["fuse_operators"] = fuse
    graph.config["batch_size"] = batch_size
    graph.config["auto_watermark_interval"] = 20

    class StepClock:
        """Processing time moving 7 ms per reading: periodic watermarks land between the same
        batches in every run (fused or not), so late data is deterministic."""

        now = 0

        def __call__(self):
            self.now += 7
            return self.now

    j = Job(graph, clock=StepClock())
    j.run()
    fused = [
        op.name
        for insts in j.operators.values()
        for op in insts
        if getattr(getattr(op, "process_batch", None), "__name__", "") == "fused"
    ]
    return sink.got, late_sink.got, fused


def job_events(rng, n, keys):
    out, t = [], 0
    for i in range(n):
        t += rng.randint(0, 2)
        out.append((rng.choice(keys), float(i % 7), t - rng.randint(0, 40)))
    return out


def doubled(e):
    return (e[0], e[1] * 2, e[2]) if e[1] != 5 else ("five", e[1], e[2])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mapper", [None, doubled], ids=["no map", "map"])
@pytest.mark.parametrize(
    "window",
    [TumblingEventTimeWindows.of(20), EventTimeSessionWindows.with_gap(8)],
    ids=["tumbling", "sessions"],
)
def test_fused_job_equals_unfused_job(seed, mapper, window):
    rng = random.Random(seed)
    events = job_events(rng, 3000, KEYS["int"] + ["s"])
    lateness = 10 if isinstance(window, TumblingEventTimeWindows) else 0
    plain = job(events, False, window, lateness=lateness, mapper=mapper)
    fused = job(events, True, window, lateness=lateness, mapper=mapper)
    assert plain[2] == [] and fused[2] == ["Timestamps/Watermarks"]
    assert fused[:2] == plain[:2] and len(plain[0]) > 10 and len(plain[1]) > 10


def test_fused_timestamp_assigner_errors_name_the_assigner():
    from flinkcore.common.watermark_strategy import TimestampAssigner

    class Broken(TimestampAssigner):
        def extract_timestamp(self, value, record_timestamp):
            return 1 // (value[2] - 50)

    events = [(1, 0.0, t) for t in range(100)]
    with pytest.raises(Exception) as info:
        job(events, True, TumblingEventTimeWindows.of(20), assigner=Broken())
    cause = info.value
    while cause is not None and not isinstance(cause, UserCodeError):
        cause = cause.__cause__
    assert cause is not None and "timestamp assigner" in str(cause) and "(1, 0.0, 50)" in str(cause)
    assert "Timestamps/Watermarks" in str(cause)


def test_compiled_sink_loop_gives_each_record_its_timestamp_and_names_a_failing_record():
    from flinkcore.runtime.operators.udf import SinkOperator
    from flinkcore.runtime.testing import OneInputStreamOperatorTestHarness

    seen = []

    def invoke(value, ctx):
        if value == "bad":
            raise RuntimeError("no")
        seen.append((value, ctx.timestamp()))

    h = OneInputStreamOperatorTestHarness(SinkOperator(invoke, name="S"))
    h.open()
    same = 7
    values = ["a", "b", "c", "d", "e"]
    stamps = [same, same, 3, None, same]
    h.process_elements(values, stamps)
    assert seen == list(zip(values, stamps, strict=True))
    with pytest.raises(UserCodeError, match="operator 'S' failed on record 'bad'"):
        h.process_elements(["x", "bad", "y"], [1, 2, 3])
    assert seen[-1] == ("x", 1)


def test_keyed_panes_map_values_in_both_modes():
    panes = KeyedPanes()
    for k in (3, 1, 2):
        panes[k] = k * 10
    assert panes.map_values(lambda v: v + 1) == [31, 11, 21]
    panes["s"] = 5  # a dict from now on, in the same order
    assert panes.map_values(lambda v: v + 1) == [31, 11, 21, 6]
    assert list(panes) == [3, 1, 2, "s"]


def test_fused_map_and_window_errors_name_their_operator_and_record():
    def bad_map(e):
        if e[2] == 30:
            raise KeyError("m")
        return (e[0], e[1], e[2], "mapped")

    class BadAdd(SumCount):
        def add(self, value, acc):
            if value[2] == 40:
                raise KeyError("a")
            return super().add(value, acc)

    events = [(1, 0.0, t) for t in range(100)]
    for mapper, agg, operator_name, record in (
        (bad_map, None, "Map", "(1, 0.0, 30)"),
        (lambda e: (*e, "mapped"), BadAdd(), "Window(Aggregate)", "(1, 0.0, 40, 'mapped')"),
    ):
        with pytest.raises(Exception) as info:
            job(events, True, TumblingEventTimeWindows.of(20), mapper=mapper, agg=agg)
        cause = info.value
        while cause is not None and not isinstance(cause, UserCodeError):
            cause = cause.__cause__
        assert cause is not None and f"operator '{operator_name}' failed on record {record}" in str(cause)


@pytest.mark.parametrize("mode", ["dense", "dense then sparse", "negative", "mixed sizes"])
def test_keyed_panes_direct_and_hashed_layouts_are_a_dict(mode):
    """Small non-negative keys are looked up by position, others through a hash index; the
    switch between the two keeps every entry and the insertion order."""
    rng = random.Random(mode)
    for _ in range(40):
        panes, ref = KeyedPanes(), {}
        for _ in range(rng.randint(0, 3000)):
            if mode == "dense":
                k = rng.randint(0, 5000)
            elif mode == "dense then sparse":
                k = rng.randint(0, 5000) if rng.random() < 0.99 else rng.randint(-(10**6), 10**7)
            elif mode == "negative":
                k = rng.randint(-100, 100)
            else:
                k = rng.choice([rng.randint(0, 100), 2**40 + rng.randint(0, 5), rng.randint(0, 10**6)])
            if rng.random() < 0.7:
                v = rng.random()
                panes[k] = v
                ref[k] = v
            else:
                assert panes.get(k) == ref.get(k)
        assert panes.items() == list(ref.items())


def test_session_bounds_read_as_set_in_every_representation():
    import pickle

    from flinkcore._core.window_udf import Session

    s = Session("k", 3, 9, "acc")
    assert (s.start, s.end) == (3, 9) and type(s.start) is int and type(s.end) is int
    s.end = None  # merged away
    assert s.start == 3 and s.end is None
    s.end = 12
    assert (s.start, s.end) == (3, 12)
    s.start = 2.5
    assert (s.start, s.end) == (2.5, 12)
    s.start = True  # a bool is not an int timestamp: kept as it is
    assert s.start is True
    big = Session("b", 1 << 63, (1 << 63) + 4, [1])
    assert (big.start, big.end) == (1 << 63, (1 << 63) + 4)
    back = pickle.loads(pickle.dumps(big))
    assert (back.key, back.start, back.end, back.acc) == ("b", 1 << 63, (1 << 63) + 4, [1])


def test_compiled_session_loops_leave_bounds_beyond_int64_to_the_caller():
    """A session whose bounds do not fit int64 (ints of any size are valid Python timestamps) is
    left to the caller's Python path, as one of float bounds is, instead of failing in the loop."""
    from flinkcore._core.window_udf import Cursor, Session, due_sessions, session_batch

    s = Session("k", 1 << 63, (1 << 63) + 10, 1)
    single = {"k": s}
    cur = Cursor()
    cur.reset()
    stopped = session_batch(
        cur, [("k", 1)], [5], None, None, None, 0, None, 0, 10, -(1 << 62), 1, None, max, single, {}, {}
    )
    assert stopped == 0 and cur.key == "k" and cur.ts == 5
    assert (s.start, s.end, s.acc) == (1 << 63, (1 << 63) + 10, 1)
    wheel = {0: [s]}  # the largest watermark does not close it: it moves to the bucket of its end
    closed, others, ordered = due_sessions(wheel, [0], MAX, 10, single)
    assert closed == [] and others == [] and wheel == {((1 << 63) + 9) // 10: [s]} and single == {"k": s}
    s.end = 20  # an end the watermark passed: closed (by Python arithmetic, as start is still big)
    closed, others, ordered = due_sessions(wheel, list(wheel), 100, 10, single)
    assert closed == [s] and single == {}
