"""Windows, assigners, triggers and evictors as pure logic, driven directly (no job around them)."""

from __future__ import annotations

import random

import pytest

from flinkcore.datastream.window import (
    MAX_LONG_VALUE,
    CountEvictor,
    CountWindow,
    DeltaEvictor,
    EventTimeSessionWindows,
    EventTimeTrigger,
    GlobalWindow,
    GlobalWindows,
    MergingWindowAssigner,
    NeverTrigger,
    ProcessingTimeSessionWindows,
    ProcessingTimeTrigger,
    PurgingTrigger,
    SessionWindowTimeGapExtractor,
    SlidingEventTimeWindows,
    SlidingProcessingTimeWindows,
    TimeEvictor,
    TimestampedValue,
    TimeWindow,
    TriggerResult,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
)

MIN_WM = -(1 << 63)


class Timers:
    """A trigger context that only records timers and reports a watermark / processing time."""

    def __init__(self, watermark: int = MIN_WM, processing_time: int = 0):
        self.watermark = watermark
        self.processing_time = processing_time
        self.event_timers: set[int] = set()
        self.processing_timers: set[int] = set()

    def get_current_watermark(self) -> int:
        return self.watermark

    def get_current_processing_time(self) -> int:
        return self.processing_time

    def register_event_time_timer(self, t: int) -> None:
        self.event_timers.add(t)

    def delete_event_time_timer(self, t: int) -> None:
        self.event_timers.discard(t)

    def register_processing_time_timer(self, t: int) -> None:
        self.processing_timers.add(t)

    def delete_processing_time_timer(self, t: int) -> None:
        self.processing_timers.discard(t)


class Recorder(MergingWindowAssigner.MergeCallback):
    def __init__(self):
        self.merges: list[tuple[set, TimeWindow]] = []

    def merge(self, to_be_merged, merge_result):
        self.merges.append((set(to_be_merged), merge_result))


# ---- TimeWindow -------------------------------------------------------------------------------


def test_time_window_basics():
    w = TimeWindow(0, 5)
    assert w.max_timestamp() == 4
    assert w == TimeWindow(0, 5) and hash(w) == hash(TimeWindow(0, 5))
    assert w != TimeWindow(0, 6)
    assert w.intersects(TimeWindow(5, 9))  # touching windows intersect (sessions merge)
    assert not w.intersects(TimeWindow(6, 9))
    assert w.cover(TimeWindow(3, 9)) == TimeWindow(0, 9)
    assert sorted([TimeWindow(3, 4), TimeWindow(0, 9), TimeWindow(0, 2)]) == [
        TimeWindow(0, 2),
        TimeWindow(0, 9),
        TimeWindow(3, 4),
    ]


@pytest.mark.parametrize(
    "ts, offset, size, start",
    [(0, 0, 5, 0), (4, 0, 5, 0), (5, 0, 5, 5), (-1, 0, 5, -5), (-5, 0, 5, -5), (-6, 0, 5, -10),
     (7, 2, 5, 7), (6, 2, 5, 2), (1, 2, 5, -3), (1500, 0, 1000, 1000), (-50, 0, 1000, -1000)],
)  # fmt: skip
def test_window_start_with_offset(ts, offset, size, start):
    assert TimeWindow.get_window_start_with_offset(ts, offset, size) == start


def test_window_start_is_floor_for_random_timestamps():
    rng = random.Random(1)
    for _ in range(2000):
        size = rng.randint(1, 100)
        offset = rng.randint(-size + 1, size - 1)
        ts = rng.randint(-10_000, 10_000)
        start = TimeWindow.get_window_start_with_offset(ts, offset, size)
        assert start <= ts < start + size
        assert (start - offset) % size == 0


def test_merge_windows_groups_overlapping_and_touching():
    rec = Recorder()
    windows = [TimeWindow(0, 5), TimeWindow(10, 15), TimeWindow(3, 8), TimeWindow(8, 9), TimeWindow(20, 25)]
    TimeWindow.merge_windows(windows, rec)
    assert rec.merges == [({TimeWindow(0, 5), TimeWindow(3, 8), TimeWindow(8, 9)}, TimeWindow(0, 9))]


def test_merge_windows_no_callback_for_singletons():
    rec = Recorder()
    TimeWindow.merge_windows([TimeWindow(0, 1), TimeWindow(5, 6)], rec)
    assert rec.merges == []


def test_count_and_global_windows():
    assert CountWindow(3) == CountWindow(3) and CountWindow(3) != CountWindow(4)
    assert CountWindow(3).max_timestamp() == MAX_LONG_VALUE
    assert GlobalWindow.get() == GlobalWindow() and GlobalWindow().max_timestamp() == MAX_LONG_VALUE


# ---- assigners --------------------------------------------------------------------------------


def test_tumbling_event_time():
    a = TumblingEventTimeWindows.of(5)
    assert a.is_event_time()
    assert a.assign_windows("x", 7, None) == [TimeWindow(5, 10)]
    assert a.assign_windows("x", -1, None) == [TimeWindow(-5, 0)]
    assert isinstance(a.get_default_trigger(), EventTimeTrigger)
    with_offset = TumblingEventTimeWindows.of(5, 2)
    assert with_offset.assign_windows("x", 1, None) == [TimeWindow(-3, 2)]


def test_time_and_duration_arguments():
    from flinkcore.common.time import Duration, Time

    assert TumblingEventTimeWindows.of(Time.seconds(1)).size == 1000
    assert SlidingEventTimeWindows.of(Duration.of_seconds(2), Time.milliseconds(500)).slide == 500
    with pytest.raises(TypeError):
        TumblingEventTimeWindows.of("1s")


def test_assigner_parameter_checks():
    with pytest.raises(ValueError, match="abs\\(offset\\) < size"):
        TumblingEventTimeWindows.of(5, 5)
    with pytest.raises(ValueError):
        SlidingEventTimeWindows.of(5, 0)
    with pytest.raises(ValueError):
        EventTimeSessionWindows.with_gap(0)


def test_event_time_assigner_requires_timestamp():
    with pytest.raises(ValueError, match="assign_timestamps_and_watermarks"):
        TumblingEventTimeWindows.of(5).assign_windows("x", None, None)


def test_sliding_event_time_matches_pyflink_scenario():
    # PyFlink test_event_time_sliding_window: size 5, slide 2.
    a = SlidingEventTimeWindows.of(5, 2)
    assert a.assign_windows("x", 1, None) == [TimeWindow(0, 5), TimeWindow(-2, 3)]
    assert a.assign_windows("x", 15, None) == [TimeWindow(14, 19), TimeWindow(12, 17)]


def test_sliding_every_window_contains_the_timestamp():
    rng = random.Random(2)
    for _ in range(500):
        size, slide = rng.randint(1, 50), rng.randint(1, 50)
        offset = rng.randint(-slide + 1, slide - 1)
        ts = rng.randint(-1000, 1000)
        windows = SlidingEventTimeWindows(size, slide, offset).assign_windows(None, ts, None)
        brute = [
            TimeWindow(s, s + size)
            for s in range(ts - size - 2 * slide, ts + 1)
            if (s - offset) % slide == 0 and s <= ts < s + size
        ]
        assert sorted(windows) == sorted(brute)


class Clock:
    def __init__(self, now):
        self.now = now

    def get_current_processing_time(self):
        return self.now

    def get_runtime_context(self):
        return None


def test_processing_time_assigners_use_the_clock():
    ctx = Clock(12)
    assert TumblingProcessingTimeWindows.of(5).assign_windows("x", 999, ctx) == [TimeWindow(10, 15)]
    assert SlidingProcessingTimeWindows.of(10, 5).assign_windows("x", 999, ctx) == [
        TimeWindow(10, 20),
        TimeWindow(5, 15),
    ]
    assert ProcessingTimeSessionWindows.with_gap(3).assign_windows("x", 999, ctx) == [TimeWindow(12, 15)]
    assert not TumblingProcessingTimeWindows.of(5).is_event_time()
    assert isinstance(TumblingProcessingTimeWindows.of(5).get_default_trigger(), ProcessingTimeTrigger)


def test_sessions_and_dynamic_gap():
    a = EventTimeSessionWindows.with_gap(5)
    assert a.assign_windows("x", 3, None) == [TimeWindow(3, 8)]

    class Gap(SessionWindowTimeGapExtractor):
        def extract(self, element):
            return element[1]

    d = EventTimeSessionWindows.with_dynamic_gap(Gap())
    assert d.assign_windows(("hi", 9), 9, None) == [TimeWindow(9, 18)]
    assert EventTimeSessionWindows.with_dynamic_gap(lambda e: 2).assign_windows("x", 1, None) == [
        TimeWindow(1, 3)
    ]
    with pytest.raises(ValueError, match="0 < gap"):
        d.assign_windows(("hi", 0), 1, None)
    rec = Recorder()
    a.merge_windows([TimeWindow(1, 6), TimeWindow(4, 9)], rec)
    assert rec.merges == [({TimeWindow(1, 6), TimeWindow(4, 9)}, TimeWindow(1, 9))]


def test_global_windows():
    a = GlobalWindows.create()
    assert a.assign_windows("x", 1, None) == [GlobalWindow()]
    assert isinstance(a.get_default_trigger(), NeverTrigger)


# ---- triggers ---------------------------------------------------------------------------------


def test_event_time_trigger():
    t, w = EventTimeTrigger.create(), TimeWindow(0, 5)
    ctx = Timers(watermark=2)
    assert t.on_element("x", 1, w, ctx) is TriggerResult.CONTINUE
    assert ctx.event_timers == {4}
    assert t.on_event_time(3, w, ctx) is TriggerResult.CONTINUE
    assert t.on_event_time(4, w, ctx) is TriggerResult.FIRE
    late = Timers(watermark=4)  # window already complete: a late element fires right away
    assert t.on_element("x", 1, w, late) is TriggerResult.FIRE and late.event_timers == set()
    t.clear(w, ctx)
    assert ctx.event_timers == set()
    merged = Timers(watermark=10)
    t.on_merge(TimeWindow(0, 12), merged)
    assert merged.event_timers == {11}
    t.on_merge(TimeWindow(0, 11), merged)  # max timestamp 10 is not > watermark: no timer
    assert merged.event_timers == {11}


def test_processing_time_trigger():
    t, w = ProcessingTimeTrigger.create(), TimeWindow(0, 5)
    ctx = Timers(processing_time=1)
    assert t.on_element("x", 0, w, ctx) is TriggerResult.CONTINUE
    assert ctx.processing_timers == {4}
    assert t.on_processing_time(4, w, ctx) is TriggerResult.FIRE
    assert t.on_event_time(4, w, ctx) is TriggerResult.CONTINUE
    t.clear(w, ctx)
    assert ctx.processing_timers == set()


def test_purging_trigger_turns_fire_into_fire_and_purge():
    t = PurgingTrigger.of(EventTimeTrigger.create())
    w = TimeWindow(0, 5)
    ctx = Timers(watermark=0)
    assert t.on_element("x", 1, w, ctx) is TriggerResult.CONTINUE
    assert t.on_event_time(4, w, ctx) is TriggerResult.FIRE_AND_PURGE
    assert t.can_merge()


def test_trigger_result_flags():
    assert TriggerResult.FIRE.is_fire() and not TriggerResult.FIRE.is_purge()
    assert TriggerResult.FIRE_AND_PURGE.is_fire() and TriggerResult.FIRE_AND_PURGE.is_purge()
    assert TriggerResult.PURGE.is_purge() and not TriggerResult.PURGE.is_fire()
    assert not TriggerResult.CONTINUE.is_fire() and not TriggerResult.CONTINUE.is_purge()


# ---- evictors ---------------------------------------------------------------------------------


def tv(*pairs):
    return [TimestampedValue(v, t) for v, t in pairs]


def test_count_evictor_keeps_the_newest():
    elements = tv(("a", 1), ("b", 2), ("c", 3), ("d", 4))
    CountEvictor.of(2).evict_before(elements, len(elements), None, None)
    assert [e.value for e in elements] == ["c", "d"]
    after = tv(("a", 1), ("b", 2), ("c", 3))
    ev = CountEvictor.of(1, do_evict_after=True)
    ev.evict_before(after, 3, None, None)
    assert len(after) == 3
    ev.evict_after(after, 3, None, None)
    assert [e.value for e in after] == ["c"]


def test_time_evictor_keeps_elements_within_the_size_of_the_newest():
    elements = tv(("a", 1), ("b", 5), ("c", 9), ("d", 3))
    TimeEvictor.of(4).evict_before(elements, 4, None, None)
    assert [e.value for e in elements] == ["c"]  # cutoff 9 - 4 = 5: <= 5 evicted
    elements = tv(("a", 6), ("b", 9))
    TimeEvictor.of(4).evict_before(elements, 2, None, None)
    assert [e.value for e in elements] == ["a", "b"]
    no_ts = tv(("a", None), ("b", None))
    TimeEvictor.of(1).evict_before(no_ts, 2, None, None)
    assert len(no_ts) == 2


def test_delta_evictor():
    elements = tv((1, 0), (5, 0), (9, 0), (10, 0))
    DeltaEvictor.of(3, lambda last, e: abs(last - e)).evict_before(elements, 4, None, None)
    assert [e.value for e in elements] == [9, 10]
