"""Timer queue: N registrations then popping them all, native TimerQueue vs heapq + a set in Python
(the obvious pure-Python implementation, as in the reference).

Run: taskset -c 0 .venv/bin/python -m pytest bench/kernels/bench_timers.py --benchmark-only
     taskset -c 0 .venv/bin/python bench/kernels/bench_timers.py   # prints ops/s and the ratio
"""

import heapq
import sys
import time

import numpy as np
from flinkcore._core.timers import TimerQueue

N = 100_000
TS = np.random.default_rng(42).integers(0, 1_000_000, N).tolist()
KEYS = [i % 10_000 for i in range(N)]


def native_register_pop():
    q = TimerQueue()
    reg = q.register
    for ts, key in zip(TS, KEYS, strict=False):
        reg(ts, key, None)
    return q.advance(2**63 - 1)


def heapq_register_pop():
    heap: list = []
    live: set = set()
    for ts, key in zip(TS, KEYS, strict=False):
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


def test_native_timer_queue(benchmark):
    benchmark.extra_info["timers"] = N
    benchmark(native_register_pop)


def test_heapq_and_set(benchmark):
    benchmark.extra_info["timers"] = N
    benchmark(heapq_register_pop)


def main() -> None:
    assert sorted(native_register_pop()) == sorted(heapq_register_pop())
    best = {}
    for _ in range(9):
        for name, fn in (("native", native_register_pop), ("heapq", heapq_register_pop)):
            t0 = time.perf_counter()
            fn()
            best[name] = min(best.get(name, 1e9), time.perf_counter() - t0)
    for name, t in best.items():
        print(f"{name:7s} {N / t / 1e6:6.2f} M register+pop/s")
    print(f"ratio native/heapq: {best['heapq'] / best['native']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
