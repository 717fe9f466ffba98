"""W1 (udf style) and the engine's per-record overhead, measured in one run.

W1: map ``value * 2``, filter ``key % 2 == 0``, count at the sink (WORKLOADS.md), fed from
``from_collection`` (a list of tuples). Three timings of the SAME user functions, CPU time,
median of repeats after a warm-up:

* ``engine``     — the flinkcore job (``env.execute()``);
* ``loop``       — a pure-Python loop calling the three functions per event;
* ``functions``  — only the user functions' own cost: each applied in a C-level loop
  (``map`` / ``filter`` / ``deque(map(...))``) over cache-sized chunks of 1024 events, with no
  engine around them: the floor any engine that calls them per record must pay.

Engine overhead per record = (engine - functions) / N; also reported against the loop.
Run pinned: ``taskset -c 0 .venv/bin/python bench/w1.py [N] [REPEATS]``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import deque
from itertools import repeat

import numpy as np

from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.functions import SinkFunction


def events(n: int) -> list[tuple[int, float, int]]:
    rng = np.random.default_rng(42)
    key = rng.integers(0, 10_000, n, dtype=np.int64)
    value = rng.random(n)
    late = rng.random(n) < 0.1
    jitter = rng.integers(0, 51, n, dtype=np.int64)
    ts = np.arange(n, dtype=np.int64) // 1000 - np.where(late, jitter, 0)
    return list(zip(key.tolist(), value.tolist(), ts.tolist(), strict=True))


class CountSink(SinkFunction):
    def __init__(self) -> None:
        self.count = 0

    def invoke(self, value, context) -> None:
        self.count += 1


def double(e):
    return (e[0], e[1] * 2.0, e[2])


def even(e):
    return e[0] % 2 == 0


def run_engine(data: list) -> tuple[float, int]:
    sink = CountSink()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection(data).map(double).filter(even).add_sink(sink)
    t0 = time.process_time()
    env.execute("W1 udf")
    return time.process_time() - t0, sink.count


def run_loop(data: list) -> tuple[float, int]:
    sink = CountSink()
    invoke = sink.invoke
    t0 = time.process_time()
    for e in data:
        x = double(e)
        if even(x):
            invoke(x, None)
    return time.process_time() - t0, sink.count


def run_functions(data: list) -> tuple[float, int]:
    sink = CountSink()
    invoke = sink.invoke
    t0 = time.process_time()
    for i in range(0, len(data), 1024):
        kept = list(filter(even, list(map(double, data[i : i + 1024]))))
        deque(map(invoke, kept, repeat(None)), maxlen=0)
    return time.process_time() - t0, sink.count


def main(n: int = 2_000_000, repeats: int = 5) -> None:
    data = events(n)
    results: dict[str, list[float]] = {"engine": [], "loop": [], "functions": []}
    counts = set()
    for i in range(repeats + 1):
        for name, fn in (("engine", run_engine), ("loop", run_loop), ("functions", run_functions)):
            t, c = fn(data)
            counts.add(c)
            if i:  # the first round is the warm-up
                results[name].append(t)
    assert len(counts) == 1, f"the three runs disagree on the result: {counts}"
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"W1 udf, N={n:,}, {repeats} repeats (median CPU time, min-max), results={counts.pop():,}")
    for name, ts in results.items():
        lo, hi = n / max(ts) / 1e6, n / min(ts) / 1e6
        print(f"  {name:<10} {n / med[name] / 1e6:6.2f}M events/CPU-s  ({lo:.2f}-{hi:.2f}M)")
    beyond_functions = (med["engine"] - med["functions"]) / n * 1e9
    beyond_loop = (med["engine"] - med["loop"]) / n * 1e9
    print(f"  engine overhead beyond the user's functions: {beyond_functions:6.1f} ns/record")
    print(f"  engine minus the pure-Python loop:           {beyond_loop:6.1f} ns/record")
    best = {k: min(v) for k, v in results.items()}
    print(
        f"  best runs: engine minus functions {(best['engine'] - best['functions']) / n * 1e9:6.1f}, "
        f"engine minus loop {(best['engine'] - best['loop']) / n * 1e9:6.1f} ns/record"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
