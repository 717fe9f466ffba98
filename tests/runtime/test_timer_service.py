from flinkcore.runtime.processing_time import ManualClock, ProcessingTimeService
from flinkcore.runtime.timers import InternalTimerService, TimerHeap
from flinkcore.state import HeapKeyedStateBackend


class Recorder:
    def __init__(self, backend):
        self.backend = backend
        self.fired = []

    def on_event_time(self, timer):
        assert self.backend.current_key == timer.key
        self.fired.append(("event", timer.timestamp, timer.key, timer.namespace))

    def on_processing_time(self, timer):
        self.fired.append(("proc", timer.timestamp, timer.key, timer.namespace))


def make():
    backend = HeapKeyedStateBackend()
    clock = ManualClock(0)
    pts = ProcessingTimeService(clock)
    rec = Recorder(backend)
    return backend, pts, clock, rec, InternalTimerService("t", backend, rec, pts)


def test_event_timers_fire_in_order_deduplicated_and_deletable():
    backend, _, _, rec, svc = make()
    for key, ts in (("a", 30), ("b", 10), ("a", 10), ("a", 10), ("c", 20)):
        backend.set_current_key(key)
        svc.register_event_time_timer("ns", ts)
    backend.set_current_key("c")
    svc.delete_event_time_timer("ns", 20)
    assert svc.num_event_time_timers() == 3
    svc.advance_watermark(15)
    assert rec.fired == [("event", 10, "b", "ns"), ("event", 10, "a", "ns")]
    svc.advance_watermark(100)
    assert rec.fired[-1] == ("event", 30, "a", "ns")
    assert svc.num_event_time_timers() == 0


def test_timer_registered_while_firing_fires_in_same_advance():
    backend, _, _, rec, svc = make()

    def on_event_time(timer):
        rec.fired.append(timer.timestamp)
        if timer.timestamp == 5:
            svc.register_event_time_timer(None, 7)

    rec.on_event_time = on_event_time
    backend.set_current_key(1)
    svc.register_event_time_timer(None, 5)
    svc.advance_watermark(10)
    assert rec.fired == [5, 7]


def test_processing_time_timers_follow_the_clock():
    backend, pts, clock, rec, svc = make()
    backend.set_current_key("k")
    svc.register_processing_time_timer("n", 100)
    svc.register_processing_time_timer("n", 50)
    pts.advance(49)
    assert rec.fired == []
    clock.now = 120
    pts.advance(120)
    assert [f[1] for f in rec.fired] == [50, 100]


def test_snapshot_restore_keeps_timers():
    backend, _, _, rec, svc = make()
    backend.set_current_key("k")
    svc.register_event_time_timer("n", 5)
    snap = svc.snapshot()
    backend2, _, _, rec2, svc2 = make()
    svc2.restore(snap, 128, None)
    svc2.advance_watermark(5)
    assert rec2.fired == [("event", 5, "k", "n")]


def test_timer_heap_reregister_after_delete():
    h = TimerHeap()
    h.add(1, "k", None)
    h.remove(1, "k", None)
    h.add(1, "k", None)
    assert h.pop_due(1) == (1, "k", None)
    assert h.pop_due(1) is None


def test_native_and_python_timer_queues_agree():
    import random

    from flinkcore.runtime.timers import _NativeTimerQueue

    rng = random.Random(7)
    py, native = TimerHeap(), _NativeTimerQueue()
    for _ in range(2000):
        ts, key, ns = rng.randrange(100), rng.randrange(20), rng.choice([None, "w"])
        op = rng.random()
        if op < 0.7:
            assert py.add(ts, key, ns) == native.add(ts, key, ns)
        elif op < 0.85:
            py.remove(ts, key, ns)
            native.remove(ts, key, ns)
        else:
            bound = rng.randrange(100)
            while True:
                a, b = py.pop_due(bound), native.pop_due(bound)
                assert a == b
                if a is None:
                    break
        assert len(py) == len(native)
        assert py.peek_timestamp() == native.peek_timestamp()
    assert py.entries() == native.entries()
