import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


class FlinkLoop:
    """Flink's InternalTimerServiceImpl, one timer at a time: peek the head, poll it, fire it. The model
    the batched service must match, whatever its callbacks register or delete."""

    def __init__(self, backend, callback):
        self.backend, self.callback = backend, callback
        self.queues = {"event": TimerHeap(), "proc": TimerHeap()}

    def register(self, domain, namespace, ts):
        self.queues[domain].add(ts, self.backend.current_key, namespace)

    def delete(self, domain, namespace, ts):
        self.queues[domain].remove(ts, self.backend.current_key, namespace)

    def advance(self, domain, bound):
        from flinkcore.runtime.timers import InternalTimer

        while (t := self.queues[domain].pop_due(bound)) is not None:
            self.backend.current_key = t[1]
            self.callback(domain, InternalTimer(*t))


class Service:
    """The service under test behind FlinkLoop's interface (native or pure-Python queues)."""

    def __init__(self, backend, callback, python_queues):
        self.backend, self.clock = backend, ManualClock(0)
        rec = type("T", (), {})()
        rec.on_event_time = lambda timer: callback("event", timer)
        rec.on_processing_time = lambda timer: callback("proc", timer)
        self.svc = InternalTimerService("t", backend, rec, ProcessingTimeService(self.clock))
        if python_queues:
            self.svc.event_timers, self.svc.processing_timers = TimerHeap(), TimerHeap()
        self.queues = {"event": self.svc.event_timers, "proc": self.svc.processing_timers}

    def register(self, domain, namespace, ts):
        s = self.svc
        (s.register_event_time_timer if domain == "event" else s.register_processing_time_timer)(
            namespace, ts
        )

    def delete(self, domain, namespace, ts):
        s = self.svc
        (s.delete_event_time_timer if domain == "event" else s.delete_processing_time_timer)(namespace, ts)

    def advance(self, domain, bound):
        if domain == "event":
            self.svc.advance_watermark(bound)
        else:
            self.clock.now = max(self.clock.now, bound)
            self.svc._on_processing_time(bound)


timer_ids = st.tuples(st.integers(0, 2), st.sampled_from([None, "w"]), st.integers(0, 6))  # key, ns, ts
reactions = st.lists(
    st.tuples(
        st.sampled_from(["register", "delete"]),
        st.integers(0, 2),
        st.sampled_from([None, "w"]),
        st.sampled_from([0, 0, 0, -1, 1, -2, 2]),  # mostly the timestamp being fired
    ),
    max_size=3,
)


@given(
    domain=st.sampled_from(["event", "proc"]),
    initial=st.lists(timer_ids, max_size=25),
    react=st.dictionaries(st.tuples(st.integers(0, 6), st.integers(0, 2)), reactions, max_size=12),
    bounds=st.lists(st.integers(0, 8), min_size=1, max_size=4),
    python_queues=st.booleans(),
)
@settings(max_examples=500, deadline=None)
def test_batched_firing_matches_flinks_one_at_a_time_loop(domain, initial, react, bounds, python_queues):
    """Timers pop a timestamp at a time; callbacks register and delete timers of the batch being
    fired (the one firing, pending ones, new ones at the same, earlier or later times, other keys):
    the firing order and the timers left are those of Flink's peek-and-poll loop."""

    def run(make_impl):
        fired, box = [], []
        budget = [40]  # reactions stop after 40 firings (a timer re-registering itself loops)

        def callback(dom, timer):
            impl = box[0]
            assert impl.backend.current_key == timer.key
            fired.append((dom, timer.timestamp, timer.key, timer.namespace))
            budget[0] -= 1
            if budget[0] < 0:
                return
            for op, key, ns, dts in react.get((timer.timestamp, timer.key), []):
                impl.backend.current_key = key
                getattr(impl, op)(dom, ns, max(0, timer.timestamp + dts))
            impl.backend.current_key = timer.key

        impl = make_impl(callback)
        box.append(impl)
        for key, ns, ts in initial:
            impl.backend.current_key = key
            impl.register(domain, ns, ts)
        for bound in sorted(bounds):
            impl.advance(domain, bound)
        return fired, impl.queues[domain].entries()

    flink = run(lambda cb: FlinkLoop(HeapKeyedStateBackend(), cb))
    assert run(lambda cb: Service(HeapKeyedStateBackend(), cb, python_queues)) == flink


@pytest.mark.parametrize("python_queues", [False, True])
def test_callbacks_that_touch_the_batch_being_fired(python_queues):
    """Three timers at 5 fire as one batch; the first one's callback changes what remains of it."""
    cases = {
        "delete a pending timer": (("delete", 1, 5),),
        "register a pending timer again": (("register", 2, 5),),
        "register an earlier timer": (("register", 1, 3),),
        "re-register the firing timer, then a new one": (("register", 0, 5), ("register", 3, 5)),
        "delete the firing timer": (("delete", 0, 5),),
    }
    for name, actions in cases.items():
        runs = []
        for make_impl in (
            lambda cb: FlinkLoop(HeapKeyedStateBackend(), cb),
            lambda cb: Service(HeapKeyedStateBackend(), cb, python_queues),
        ):
            fired, box = [], []

            def callback(dom, timer, fired=fired, box=box, actions=actions):
                fired.append((timer.timestamp, timer.key))
                if len(fired) == 1:
                    for op, key, ts in actions:
                        box[0].backend.current_key = key
                        getattr(box[0], op)(dom, None, ts)
                    box[0].backend.current_key = timer.key

            box.append(make_impl(callback))
            for key in (0, 1, 2):
                box[0].backend.current_key = key
                box[0].register("event", None, 5)
            box[0].advance("event", 10)
            runs.append(fired)
        assert runs[0] == runs[1], name
