"""Timer queue: register + pop throughput, native TimerQueue vs heapq + a set in Python (the obvious
pure-Python implementation), measured in one run.

Two shapes: "bulk" registers N timers with random timestamps and pops them all (a 100k-deep heap);
"streaming" registers 10k timers (one per key, as a keyed window operator does) per round and
advances the watermark past them after each round (a 10k-deep heap, as in W2). "floor" is the same
Python loop calling the builtin max() instead of register: what the interpreter alone costs. Rates
are register+pop pairs per CPU second (process time, best of 9 interleaved repeats).

Run: taskset -c 0 .venv/bin/python bench/kernels/bench_timers.py   # prints ops/s and the ratios

The "service" rows run flinkcore.runtime.timers.InternalTimerService end to end (registration through
the service, an empty on_event_time) with its firing loop, which pops a timestamp at a time as timer
objects made in C, beside the loop it had before (one pop_until per timer, a Python object per timer);
"windows" puts every key's timer at one window end.
     taskset -c 0 .venv/bin/python -m pytest bench/kernels/bench_timers.py --benchmark-only
"""

import heapq
import sys
import time

import numpy as np

from flinkcore._core.timers import TimerQueue

N = 100_000
TS = np.random.default_rng(42).integers(0, 1_000_000, N).tolist()
KEYS = [i % 10_000 for i in range(N)]
ROUNDS, PER_ROUND = 20, 10_000
STREAM = [[(r * 1000 + (k * 7919) % 1000, k) for k in range(PER_ROUND)] for r in range(ROUNDS)]
STREAM_ARRAYS = [(np.array([t for t, _ in b], dtype=np.int64), [k for _, k in b]) for b in STREAM]
# a tumbling window's shape: every key's timer at the window end, fired by one watermark
WINDOWS = [[(r * 1000 + 999, k) for k in range(PER_ROUND)] for r in range(ROUNDS)]


def native_bulk():
    q = TimerQueue()
    reg = q.register
    for ts, key in zip(TS, KEYS, strict=True):
        reg(ts, key, None)
    return q.advance(2**63 - 1)


def heapq_bulk():
    heap: list = []
    live: set = set()
    for ts, key in zip(TS, KEYS, strict=True):
        entry = (ts, key, None)
        if entry not in live:
            live.add(entry)
            heapq.heappush(heap, entry)
    out = []
    while heap:
        entry = heapq.heappop(heap)
        live.discard(entry)
        out.append(entry)
    return out


def native_stream():
    q = TimerQueue()
    reg, adv = q.register, q.advance
    for r, batch in enumerate(STREAM):
        for ts, k in batch:
            reg(ts, k, None)
        adv(r * 1000 + 999)


def native_stream_many():
    q = TimerQueue()
    for r, (ts, keys) in enumerate(STREAM_ARRAYS):
        q.register_many(ts, keys, None)
        q.advance(r * 1000 + 999)


def native_stream_pop_until():
    """The runtime's firing loop (InternalTimerService.advance_watermark): one pop_until per timer."""
    q = TimerQueue()
    reg, pop = q.register, q.pop_until
    for r, batch in enumerate(STREAM):
        for ts, k in batch:
            reg(ts, k, None)
        wm = r * 1000 + 999
        while pop(wm) is not None:
            pass


def native_stream_pop_batch():
    """The runtime's firing loop since it pops a timestamp at a time: one pop_batch per timestamp."""
    q = TimerQueue()
    reg, pop = q.register, q.pop_batch
    for r, batch in enumerate(STREAM):
        for ts, k in batch:
            reg(ts, k, None)
        wm = r * 1000 + 999
        while pop(wm):
            pass


class _Backend:
    current_key = None

    def start_batch(self):
        pass

    def finish_batch(self):
        pass


class _Triggerable:
    def on_event_time(self, timer):
        pass


def _service():
    from flinkcore.runtime.timers import InternalTimerService

    return InternalTimerService("bench", _Backend(), _Triggerable(), None)


def service(stream):
    """InternalTimerService end to end: register_event_time_timer per timer (the backend's current key
    set first), advance_watermark per round, an empty on_event_time."""

    def run():
        svc = _service()
        backend, register = svc._backend, svc.register_event_time_timer
        for r, batch in enumerate(stream):
            for ts, k in batch:
                backend.current_key = k
                register(None, ts)
            svc.advance_watermark(r * 1000 + 999)

    return run


def service_one_at_a_time(stream):
    """The same with the firing loop the runtime had before (one pop_until per timer, a Python
    InternalTimer object made per timer), as the baseline."""
    from flinkcore.runtime.timers import _PyInternalTimer as InternalTimer

    def run():
        svc = _service()
        backend, register = svc._backend, svc.register_event_time_timer
        on_event_time = svc._triggerable.on_event_time
        pop = svc.event_timers.pop_due
        for r, batch in enumerate(stream):
            for ts, k in batch:
                backend.current_key = k
                register(None, ts)
            wm = r * 1000 + 999
            backend.start_batch()
            while (t := pop(wm)) is not None:
                backend.current_key = t[1]
                on_event_time(InternalTimer(t[0], t[1], t[2]))
            backend.finish_batch()

    return run


def heapq_stream():
    heap: list = []
    live: set = set()
    for r, batch in enumerate(STREAM):
        for ts, k in batch:
            e = (ts, k, None)
            if e not in live:
                live.add(e)
                heapq.heappush(heap, e)
        wm = r * 1000 + 999
        while heap and heap[0][0] <= wm:
            live.discard(heapq.heappop(heap))


def floor_stream():
    f = max
    for batch in STREAM:
        for ts, k in batch:
            f(ts, k, 0)


def test_native_timer_queue(benchmark):
    benchmark.extra_info["timers"] = N
    benchmark(native_bulk)


def test_heapq_and_set(benchmark):
    benchmark.extra_info["timers"] = N
    benchmark(heapq_bulk)


def main() -> None:
    assert sorted(native_bulk()) == sorted(heapq_bulk())
    cases = {
        "bulk: native register": (native_bulk, N),
        "bulk: heapq + set": (heapq_bulk, N),
        "streaming: native register": (native_stream, ROUNDS * PER_ROUND),
        "streaming: native register_many": (native_stream_many, ROUNDS * PER_ROUND),
        "streaming: register + pop_until": (native_stream_pop_until, ROUNDS * PER_ROUND),
        "streaming: register + pop_batch": (native_stream_pop_batch, ROUNDS * PER_ROUND),
        "service, streaming: pop_batch": (service(STREAM), ROUNDS * PER_ROUND),
        "service, streaming: pop_until": (service_one_at_a_time(STREAM), ROUNDS * PER_ROUND),
        "service, windows: pop_batch": (service(WINDOWS), ROUNDS * PER_ROUND),
        "service, windows: pop_until": (service_one_at_a_time(WINDOWS), ROUNDS * PER_ROUND),
        "streaming: heapq + set": (heapq_stream, ROUNDS * PER_ROUND),
        "streaming: floor (loop + max())": (floor_stream, ROUNDS * PER_ROUND),
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(9):  # interleaved: every repeat runs every case; best CPU time of this process
        for name, (fn, _) in cases.items():
            t0 = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t0)
    for name, (_, n) in cases.items():
        print(f"{name:34s} {n / best[name] / 1e6:6.2f} M register+pop/s")
    bulk = best["bulk: heapq + set"] / best["bulk: native register"]
    stream = best["streaming: heapq + set"] / best["streaming: native register"]
    print(f"ratio native/heapq: bulk {bulk:.2f}x, streaming {stream:.2f}x")
    for shape in ("streaming", "windows"):
        gain = best[f"service, {shape}: pop_until"] / best[f"service, {shape}: pop_batch"]
        print(f"runtime service, {shape}: pop_batch / pop_until firing loop {gain:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
