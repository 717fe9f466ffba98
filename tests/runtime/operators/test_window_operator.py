"""The window operator driven through the operator test harness (no job around it).

Scenarios follow Flink's WindowOperatorTest; randomized tests compare both operator
implementations (generic WindowOperator and AlignedWindowOperator) with a small reference model
of Flink's window semantics written here.
"""

from __future__ import annotations

import random

import pytest

from flinkcore.common.watermark import Watermark
from flinkcore.datastream.window import (
    ContinuousEventTimeTrigger,
    CountEvictor,
    CountTrigger,
    CountTumblingWindowAssigner,
    EventTimeSessionWindows,
    EventTimeTrigger,
    GlobalWindows,
    ProcessingTimeSessionWindows,
    PurgingTrigger,
    SlidingEventTimeWindows,
    TimeEvictor,
    TimeWindow,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
)
from flinkcore.runtime.operators.window import (
    AlignedWindowOperator,
    InternalWindowFunction,
    SessionWindowOperator,
    WindowOperator,
    WindowStateSpec,
)
from flinkcore.runtime.testing import KeyedOneInputStreamOperatorTestHarness, StreamRecord
from flinkcore.state import ValueStateDescriptor

MAX = (1 << 63) - 1
LATE = "late"


class SumAgg:
    def create_accumulator(self):
        return 0

    def add(self, value, acc):
        return acc + value[1]

    def get_result(self, acc):
        return acc

    def merge(self, a, b):
        return a + b


def window_contents(key, window, ctx, contents):
    """A ProcessWindowFunction-like function: key, window bounds, sorted elements."""
    return [(key, window.start, window.end, tuple(sorted(contents)))]


def with_window(key, window, ctx, value):
    return [(key, window.start, window.end, value)]


LIST = WindowStateSpec("list")
SUM = WindowStateSpec("aggregating", aggregate=SumAgg())
REDUCE = WindowStateSpec("reducing", reduce=lambda a, b: (a[0], a[1] + b[1]))


def generic(
    assigner, spec=LIST, fn=window_contents, trigger=None, lateness=0, late_tag=LATE, evictor=None, clear=None
):
    return WindowOperator(
        assigner,
        trigger or assigner.get_default_trigger(),
        spec,
        InternalWindowFunction(fn, clear=clear),
        allowed_lateness=lateness,
        late_data_tag=late_tag,
        evictor=evictor,
    )


def aligned(assigner, spec=LIST, fn=window_contents, lateness=0, late_tag=LATE, clear=None):
    slide = getattr(assigner, "slide", assigner.size)
    return AlignedWindowOperator(
        assigner.size,
        slide,
        assigner.offset,
        spec,
        InternalWindowFunction(fn, clear=clear),
        TimeWindow,
        allowed_lateness=lateness,
        late_data_tag=late_tag,
    )


def session(assigner, spec=LIST, fn=window_contents, late_tag=LATE, clear=None):
    return SessionWindowOperator(
        assigner.session_gap,
        spec,
        InternalWindowFunction(fn, clear=clear),
        TimeWindow,
        late_data_tag=late_tag,
    )


SESSIONS = pytest.mark.parametrize("make", [generic, session], ids=["generic", "session"])


def harness(op):
    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda v: v[0])
    h.open()
    return h


def records(h):
    return [(r.value, r.timestamp) for r in h.extract_output_records()]


BOTH = pytest.mark.parametrize("make", [generic, aligned], ids=["generic", "aligned"])


# ---- tumbling / sliding ----------------------------------------------------------------------


@BOTH
def test_tumbling_fires_at_end_minus_one(make):
    h = harness(make(TumblingEventTimeWindows.of(3000), SUM, with_window))
    h.process_element(("k1", 1), 0)
    h.process_element(("k1", 2), 1000)
    h.process_element(("k2", 5), 2999)
    h.process_element(("k1", 7), 3000)
    h.process_watermark(2998)
    assert records(h) == []
    h.process_watermark(2999)
    assert sorted(records(h)) == [(("k1", 0, 3000, 3), 2999), (("k2", 0, 3000, 5), 2999)]
    h.clear_output()
    h.process_watermark(MAX)
    assert records(h) == [(("k1", 3000, 6000, 7), 5999)]


@BOTH
def test_watermarks_forwarded_after_window_results(make):
    h = harness(make(TumblingEventTimeWindows.of(10), SUM, with_window))
    h.process_element(("a", 1), 1)
    h.process_watermark(9)
    out = h.get_output()
    assert out == [StreamRecord(("a", 0, 10, 1), 9), Watermark(9)]


@BOTH
def test_sliding_windows(make):
    h = harness(make(SlidingEventTimeWindows.of(6, 3), SUM, with_window))
    h.process_element(("a", 1), 1)  # windows [-3,3), [0,6)
    h.process_element(("a", 10), 4)  # [0,6), [3,9)
    h.process_watermark(MAX)
    assert sorted(records(h)) == [
        (("a", -3, 3, 1), 2),
        (("a", 0, 6, 11), 5),
        (("a", 3, 9, 10), 8),
    ]


@BOTH
def test_late_elements_to_side_output_and_dropped(make):
    h = harness(make(TumblingEventTimeWindows.of(5)))
    h.process_element(("a", 0), 0)
    h.process_element(("a", 8), 8)
    h.process_watermark(8)
    h.process_element(("a", 4), 4)  # window [0,5) max_ts 4 <= 8: late
    h.process_element(("a", 6), 6)
    h.process_watermark(MAX)
    assert sorted(r[0] for r in records(h)) == [("a", 0, 5, (("a", 0),)), ("a", 5, 10, (("a", 6), ("a", 8)))]
    assert h.get_side_output_values(LATE) == [("a", 4)]
    assert [r.timestamp for r in h.get_side_output(LATE)] == [4]
    dropped = make(TumblingEventTimeWindows.of(5), late_tag=None)
    h2 = harness(dropped)
    h2.process_watermark(10)
    h2.process_element(("a", 1), 1)
    assert dropped.num_late_records_dropped == 1 and h2.get_side_output_values(LATE) == []


@BOTH
def test_allowed_lateness_refires_whole_window_then_cleans_up(make):
    cleared = []
    op = make(TumblingEventTimeWindows.of(10), lateness=5, clear=lambda w, ctx: cleared.append(w))
    h = harness(op)
    h.process_element(("a", 1), 1)
    h.process_element(("a", 2), 2)
    h.process_watermark(9)
    assert [r[0] for r in records(h)] == [("a", 0, 10, (("a", 1), ("a", 2)))]
    h.clear_output()
    h.process_element(("a", 3), 3)  # late but within lateness: fires again with everything
    assert [r[0] for r in records(h)] == [("a", 0, 10, (("a", 1), ("a", 2), ("a", 3)))]
    h.clear_output()
    h.process_watermark(13)
    h.process_element(("a", 4), 4)
    assert [r[0][3] for r in records(h)] == [(("a", 1), ("a", 2), ("a", 3), ("a", 4))]
    assert cleared == []
    h.clear_output()
    h.process_watermark(14)  # cleanup time 9 + 5
    assert cleared == [TimeWindow(0, 10)]
    h.process_element(("a", 5), 5)  # now too late
    assert records(h) == [] and h.get_side_output_values(LATE) == [("a", 5)]
    assert h.num_keyed_state_entries() == 0


@BOTH
def test_reduce_window(make):
    h = harness(make(TumblingEventTimeWindows.of(5), REDUCE, lambda k, w, c, v: [v]))
    for v in [("a", 1), ("a", 2), ("b", 3), ("a", 6)]:
        h.process_element(v, v[1])
    h.process_watermark(MAX)
    assert sorted(records(h)) == [(("a", 3), 4), (("a", 6), 9), (("b", 3), 4)]


@BOTH
def test_state_is_freed_after_cleanup(make):
    h = harness(make(TumblingEventTimeWindows.of(5), SUM, with_window))
    for i in range(100):
        h.process_element((i % 7, 1), i)
        h.process_watermark(i)
    h.process_watermark(200)
    assert h.num_keyed_state_entries() == 0
    assert h.operator.state_backend.snapshot()["states"] == {} or all(
        not s["tables"] for s in h.operator.state_backend.snapshot()["states"].values()
    )
    assert sum(r[0][3] for r in records(h)) == 100


@BOTH
def test_snapshot_and_restore(make):
    h = harness(make(TumblingEventTimeWindows.of(10), SUM, with_window, lateness=10))
    h.process_element(("a", 1), 1)
    h.process_element(("b", 2), 12)
    h.process_watermark(9)  # window [0,10) of a fired, kept for lateness
    snap = h.snapshot()
    h2 = KeyedOneInputStreamOperatorTestHarness(
        make(TumblingEventTimeWindows.of(10), SUM, with_window, lateness=10), key_selector=lambda v: v[0]
    )
    h2.initialize_state(snap)
    h2.open()
    h2.process_watermark(9)
    assert records(h2) == []  # [0,10) of a already fired before the snapshot: not again
    h2.process_element(("a", 4), 5)  # within lateness: late firing with the restored contents
    assert records(h2) == [(("a", 0, 10, 5), 9)]
    h2.clear_output()
    h2.process_element(("b", 3), 15)
    h2.process_watermark(19)
    assert records(h2) == [(("b", 10, 20, 5), 19)]


def test_snapshot_restore_at_other_parallelism_aligned():
    def op():
        return aligned(TumblingEventTimeWindows.of(10), SUM, with_window)

    h = harness(op())
    for k in range(20):
        h.process_element((k, k), 5)
    snap = h.snapshot()
    results = []
    for sub in range(2):
        hi = KeyedOneInputStreamOperatorTestHarness(
            op(), key_selector=lambda v: v[0], parallelism=2, subtask_index=sub
        )
        hi.initialize_state(snap)
        hi.open()
        hi.process_watermark(MAX)
        results.extend(r[0] for r in records(hi))
    assert sorted(results) == [(k, 0, 10, k) for k in range(20)]


# ---- sessions --------------------------------------------------------------------------------


@SESSIONS
def test_session_windows_merge_contents_and_triggers(make):
    h = harness(make(EventTimeSessionWindows.with_gap(5)))
    for v in [("a", 0), ("a", 8), ("b", 1)]:
        h.process_element(v, v[1])
    h.process_element(("a", 4), 4)  # bridges [0,5) and [8,13) -> [0,13)
    h.process_watermark(12)
    assert sorted(r[0] for r in records(h)) == [
        ("a", 0, 13, (("a", 0), ("a", 4), ("a", 8))),
        ("b", 1, 6, (("b", 1),)),
    ]
    assert h.num_keyed_state_entries() == 0


@SESSIONS
def test_session_window_late_merge_pyflink(make):
    # PyFlink test_session_window_late_merge: elements 0, 8, 4 with gap 5 -> one session (0, 13).
    h = harness(make(EventTimeSessionWindows.with_gap(5)))
    for v in [("hi", 0), ("hi", 8), ("hi", 4)]:
        h.process_element(v, v[1])
    h.process_watermark(MAX)
    assert [(r[0][1], r[0][2], len(r[0][3])) for r in records(h)] == [(0, 13, 3)]


@SESSIONS
def test_session_aggregate_merges_accumulators(make):
    h = harness(make(EventTimeSessionWindows.with_gap(3), SUM, with_window))
    for v in [("a", 1), ("a", 10), ("a", 5), ("a", 7), ("a", 3)]:
        h.process_element(v, v[1])
    h.process_watermark(MAX)
    assert records(h) == [(("a", 1, 13, 26), 12)]


def test_session_with_lateness_late_element_extends_fired_session():
    h = harness(generic(EventTimeSessionWindows.with_gap(3), lateness=10))
    h.process_element(("a", 1), 1)
    h.process_watermark(5)
    assert [r[0][1:3] for r in records(h)] == [(1, 4)]
    h.clear_output()
    h.process_element(("a", 3), 3)  # merges into [1,6): max_ts 5 <= wm -> fires at once
    assert [r[0] for r in records(h)] == [("a", 1, 6, (("a", 1), ("a", 3)))]
    h.clear_output()
    h.process_watermark(MAX)
    assert records(h) == []
    assert h.num_keyed_state_entries() == 0


def test_session_with_purging_trigger_pyflink():
    h = harness(
        generic(EventTimeSessionWindows.with_gap(3), trigger=PurgingTrigger.of(EventTimeTrigger.create()))
    )
    for t in [1, 2, 3, 4, 8, 9, 15]:
        h.process_element(("hi", t), t)
    h.process_watermark(MAX)
    assert sorted((r[0][1], r[0][2], len(r[0][3])) for r in records(h)) == [
        (1, 7, 4),
        (8, 12, 2),
        (15, 18, 1),
    ]


def test_merging_with_count_trigger_merges_trigger_state():
    h = harness(generic(EventTimeSessionWindows.with_gap(16), trigger=CountTrigger.of(3)))
    h.process_element(("a", 0), 0)
    h.process_element(("a", 30), 30)
    assert records(h) == []
    h.process_element(("a", 15), 15)  # merges both: count state 1 + 1 + 1 = 3 -> fire
    assert [r[0][1:3] for r in records(h)] == [(0, 46)]


def test_merging_requires_a_merging_trigger():
    class NoMerge(EventTimeTrigger):
        def can_merge(self):
            return False

    with pytest.raises(ValueError, match="merging"):
        generic(EventTimeSessionWindows.with_gap(5), trigger=NoMerge())


# ---- triggers, evictors, count and global windows ---------------------------------------------


def test_count_tumbling_window_pyflink():
    h = harness(generic(CountTumblingWindowAssigner.of(3), fn=lambda k, w, c, v: [(k, sum(e[1] for e in v))]))
    for n, word in [(1, "hi"), (2, "hello"), (3, "hi"), (4, "hello"), (5, "hi"), (6, "hello"), (6, "hello")]:
        h.process_element((word, n))
    assert sorted(r[0] for r in records(h)) == [("hello", 12), ("hi", 9)]
    # Full count windows are purged: only the per-key counters and the open window remain.
    assert h.num_keyed_state_entries() == 4


def test_global_window_with_purging_count_trigger():
    fn = lambda k, w, c, v: [(k, len(v))]  # noqa: E731
    h = harness(generic(GlobalWindows.create(), fn=fn, trigger=PurgingTrigger.of(CountTrigger.of(2))))
    for _ in range(7):
        h.process_element(("hi", 1), 1)
    assert [r[0] for r in records(h)] == [("hi", 2)] * 3


def test_continuous_event_time_trigger():
    h = harness(
        generic(TumblingEventTimeWindows.of(10), SUM, with_window, trigger=ContinuousEventTimeTrigger.of(3))
    )
    h.process_element(("a", 1), 1)
    h.process_watermark(3)
    h.process_element(("a", 2), 4)
    h.process_watermark(6)
    h.process_watermark(9)
    assert [r[0][3] for r in records(h)] == [1, 3, 3]


def test_count_evictor_keeps_last_elements():
    fn = lambda k, w, c, v: [tuple(e[1] for e in v)]  # noqa: E731
    op = generic(GlobalWindows.create(), fn=fn, trigger=CountTrigger.of(2), evictor=CountEvictor.of(3))
    h = harness(op)
    for i in range(6):
        h.process_element(("a", i), i)
    assert [r[0] for r in records(h)] == [(0, 1), (1, 2, 3), (3, 4, 5)]


def test_time_evictor_with_aggregate():
    op = generic(TumblingEventTimeWindows.of(100), SUM, with_window, evictor=TimeEvictor.of(10))
    h = harness(op)
    for t in [1, 5, 50, 55, 61]:
        h.process_element(("a", t), t)
    h.process_watermark(MAX)
    assert records(h) == [(("a", 0, 100, 55 + 61), 99)]


def test_processing_time_tumbling_windows():
    op = generic(TumblingProcessingTimeWindows.of(10))
    h = harness(op)
    h.set_processing_time(3)
    h.process_element(("a", 1))
    h.set_processing_time(7)
    h.process_element(("a", 2))
    h.set_processing_time(12)
    h.process_element(("a", 3))
    assert [r[0][1:] for r in records(h)] == [(0, 10, (("a", 1), ("a", 2)))]
    h.set_processing_time(19)
    assert [r[0][1:3] for r in records(h)] == [(0, 10), (10, 20)]
    assert h.num_keyed_state_entries() == 0


def test_processing_time_sessions():
    h = harness(generic(ProcessingTimeSessionWindows.with_gap(5)))
    h.set_processing_time(0)
    h.process_element(("a", 1))
    h.set_processing_time(3)
    h.process_element(("a", 2))
    h.set_processing_time(6)
    assert records(h) == []
    h.set_processing_time(7)  # session [0, 8) fires at its max timestamp 7
    assert [r[0][1:3] for r in records(h)] == [(0, 8)]


def test_process_window_function_context():
    seen = []
    desc = ValueStateDescriptor("fires")

    def fn(key, window, ctx, contents):
        n = (ctx.window_state().get_state(desc).value() or 0) + 1
        ctx.window_state().get_state(desc).update(n)
        total = ctx.global_state().get_state(ValueStateDescriptor("total"))
        total.update((total.value() or 0) + len(contents))
        seen.append((ctx.window(), ctx.current_watermark(), n, total.value()))
        return []

    def clear(window, ctx):
        ctx.window_state().get_state(desc).clear()

    h = harness(generic(TumblingEventTimeWindows.of(10), fn=fn, lateness=5, clear=clear))
    h.process_element(("a", 1), 1)
    h.process_watermark(9)
    h.process_element(("a", 2), 2)
    h.process_watermark(20)
    assert seen == [(TimeWindow(0, 10), 9, 1, 1), (TimeWindow(0, 10), 9, 2, 3)]
    # clear() removed the per-window state; only the global "total" is left.
    assert h.num_keyed_state_entries() == 1


def test_side_output_from_window_function():
    from flinkcore.runtime.operators.base import SideOutputTag

    tag = SideOutputTag("odd")

    def fn(key, window, ctx, value):
        yield (tag, value) if value % 2 else value

    h = harness(generic(TumblingEventTimeWindows.of(5), SUM, fn))
    h.process_element(("a", 1), 1)
    h.process_element(("b", 2), 2)
    h.process_watermark(MAX)
    assert records(h) == [(2, 4)]
    assert h.get_side_output_values("odd") == [1]


# ---- randomized comparison with a reference model ---------------------------------------------


def model_run(events, assign, merging, lateness):
    """Flink's event-time window semantics, written as plainly as possible.

    ``events`` is a list of ("e", key, ts, id) and ("w", watermark). Returns the output split in
    epochs (between watermarks), each a sorted list of (key, start, end, ids), plus late ids.
    """
    wm = -(1 << 63)
    windows: dict = {}  # key -> {(start, end): [ids]}
    epochs: list = [[]]
    late: list = []

    def fire(key, w):
        epochs[-1].append((key, w[0], w[1], tuple(sorted(windows[key][w]))))

    for ev in events:
        if ev[0] == "w":
            new = ev[1]
            if new <= wm:
                continue
            for key, ws in windows.items():
                for w in sorted(ws):
                    if wm < w[1] - 1 <= new:
                        fire(key, w)
            for ws in windows.values():
                for w in [w for w in ws if w[1] - 1 + lateness <= new]:
                    del ws[w]
            wm = new
            epochs[-1].sort()
            epochs.append([])
            continue
        _, key, ts, ident = ev
        ws = windows.setdefault(key, {})
        accepted = False
        for w in assign(ts):
            if merging:
                group = [x for x in ws if x[0] <= w[1] and x[1] >= w[0]]
                while True:  # transitive closure of overlaps
                    lo = min([w[0]] + [x[0] for x in group])
                    hi = max([w[1]] + [x[1] for x in group])
                    more = [x for x in ws if x not in group and x[0] <= hi and x[1] >= lo]
                    if not more:
                        break
                    group += more
                merged = (lo, hi)
                if merged[1] - 1 + lateness <= wm:
                    continue
                ids = [i for x in group for i in ws.pop(x)]
                ws[merged] = ids
                w = merged
            elif w[1] - 1 + lateness <= wm:
                continue
            accepted = True
            ws.setdefault(w, []).append(ident)
            if w[1] - 1 <= wm:
                fire(key, w)
        if not accepted and ts + lateness <= wm:
            late.append(ident)
    epochs[-1].sort()
    return epochs, sorted(late)


def operator_run(op, events):
    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda v: v[0])
    h.open()
    for ev in events:
        if ev[0] == "w":
            h.process_watermark(ev[1])
        else:
            _, key, ts, ident = ev
            h.process_element((key, ident), ts)
    epochs: list = [[]]
    for item in h.get_output():
        if isinstance(item, Watermark):
            epochs[-1].sort()
            epochs.append([])
        else:
            key, start, end, contents = item.value
            epochs[-1].append((key, start, end, tuple(sorted(i for _, i in contents))))
    epochs[-1].sort()
    return epochs, sorted(v[1] for v in h.get_side_output_values(LATE))


def random_events(rng, n):
    events, wm, ident = [], 0, 0
    t = 0
    for _ in range(n):
        if rng.random() < 0.2:
            wm = max(wm, t - rng.randint(0, 15))
            events.append(("w", wm))
        else:
            t += rng.randint(0, 4)
            ts = t - rng.randint(0, 25)  # some out of order, some late
            events.append(("e", rng.choice("abc"), ts, ident))
            ident += 1
    events.append(("w", MAX))
    return events


@pytest.mark.parametrize("seed", range(25))
def test_random_tumbling_and_sliding_match_reference(seed):
    rng = random.Random(seed)
    size = rng.randint(1, 12)
    slide = rng.choice([size, rng.randint(1, size)])
    offset = rng.randint(-slide + 1, slide - 1)
    lateness = rng.choice([0, 0, 3, 10])
    events = random_events(rng, 150)
    assigner = SlidingEventTimeWindows(size, slide, offset)

    def assign(ts):
        return [(w.start, w.end) for w in assigner.assign_windows(None, ts, None)]

    expected = model_run(events, assign, False, lateness)
    assert operator_run(generic(assigner, lateness=lateness), events) == expected
    assert operator_run(aligned(assigner, lateness=lateness), events) == expected


@pytest.mark.parametrize("seed", range(25))
def test_random_sessions_match_reference(seed):
    rng = random.Random(1000 + seed)
    gap = rng.randint(1, 10)
    lateness = rng.choice([0, 0, 4, 12])
    events = random_events(rng, 150)

    def assign(ts):
        return [(ts, ts + gap)]

    expected = model_run(events, assign, True, lateness)
    got = operator_run(generic(EventTimeSessionWindows.with_gap(gap), lateness=lateness), events)
    assert got == expected
    if lateness == 0:
        assert operator_run(session(EventTimeSessionWindows.with_gap(gap)), events) == expected


@pytest.mark.parametrize("seed", range(10))
def test_random_session_reduce_and_snapshot_match_generic(seed):
    rng = random.Random(5000 + seed)
    events = random_events(rng, 200)
    cut = rng.randint(0, len(events) - 1)
    outputs = []
    for make in (generic, session):

        def op(make=make):
            return make(EventTimeSessionWindows.with_gap(4), SUM, with_window)

        h = harness(op())
        for ev in events[:cut]:
            h.process_watermark(ev[1]) if ev[0] == "w" else h.process_element((ev[1], ev[3]), ev[2])
        snap = h.snapshot()
        first = records(h)
        h2 = KeyedOneInputStreamOperatorTestHarness(op(), key_selector=lambda v: v[0])
        h2.initialize_state(snap)
        h2.open()
        h2.process_watermark(max([-1 << 62] + [e[1] for e in events[:cut] if e[0] == "w"]))
        for ev in events[cut:]:
            h2.process_watermark(ev[1]) if ev[0] == "w" else h2.process_element((ev[1], ev[3]), ev[2])
        outputs.append(
            (
                sorted(first),
                sorted(records(h2)),
                sorted(h.get_side_output_values(LATE) + h2.get_side_output_values(LATE)),
            )
        )
    assert outputs[0] == outputs[1]


def test_session_operator_frees_closed_sessions():
    op = session(EventTimeSessionWindows.with_gap(10), SUM, with_window)
    h = harness(op)
    for i in range(10_000):
        h.process_element((i % 100, 1), i * 3)
        if i % 50 == 0:
            h.process_watermark(i * 3 - 20)
    assert op.open_sessions() <= 100
    h.process_watermark(MAX)
    assert op.open_sessions() == 0 and not any(op._wheel.values())
    assert sum(r[0][3] for r in records(h)) == 10_000


def test_constant_subscript_key_selectors_run_as_itemgetter():
    import operator

    from flinkcore.runtime.key_selectors import fast_key_selector

    assert isinstance(fast_key_selector(lambda e: e[0]), operator.itemgetter)
    assert fast_key_selector(lambda e: e[0])((3, 4)) == 3
    assert fast_key_selector(lambda e: e["key"])({"key": 7}) == 7
    for fn in (lambda e: e[0] + 1, lambda e, i=1: e[i], lambda e: e[OFFSET], len):
        assert fast_key_selector(fn) is fn


OFFSET = 1


def test_key_selector_errors_name_the_record():
    from flinkcore.runtime.operators.base import UserCodeError

    h = KeyedOneInputStreamOperatorTestHarness(
        aligned(TumblingEventTimeWindows.of(5), SUM, with_window), key_selector=lambda v: v[0]
    )
    h.open()
    with pytest.raises(UserCodeError, match="bad"):
        h.process_elements([("a", 1), "bad"], [1, 2])
