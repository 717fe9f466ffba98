"""W4 (udf, heap backend): the engine's per-record overhead around a KeyedProcessFunction.

Same data and function as WORKLOADS.md W4 (a running sum per key in ValueState, emit when it
passes a multiple of 10), timed two ways in one run, CPU time, median after a warm-up:

* ``engine`` — the flinkcore job: from_collection -> key_by -> process -> sink;
* ``loop``   — a pure-Python loop doing what the engine must do per record with the same
  function and the same heap state backend: set the key, call ``process_element``, hand every
  output to the sink.

Run pinned: ``taskset -c 0 .venv/bin/python bench/w4_overhead.py [N] [REPEATS]``.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from w1 import CountSink, events  # noqa: E402

from flinkcore.common import Types  # noqa: E402
from flinkcore.datastream import KeyedProcessFunction, StreamExecutionEnvironment  # noqa: E402
from flinkcore.datastream.state import ValueStateDescriptor  # noqa: E402
from flinkcore.state import HeapKeyedStateBackend  # noqa: E402

THRESHOLD = 10.0


class RunningSum(KeyedProcessFunction):
    def open(self, runtime_context):
        self.total = runtime_context.get_state(ValueStateDescriptor("total", Types.DOUBLE()))

    def process_element(self, value, ctx):
        old = self.total.value() or 0.0
        new = old + value[1]
        self.total.update(new)
        if math.floor(new / THRESHOLD) > math.floor(old / THRESHOLD):
            yield value[0], new


def key(e):
    return e[0]


def run_engine(data: list) -> tuple[float, int]:
    sink = CountSink()
    env = StreamExecutionEnvironment.get_execution_environment()
    env.from_collection(data).key_by(key).process(RunningSum()).add_sink(sink)
    t0 = time.process_time()
    env.execute("W4 udf heap")
    return time.process_time() - t0, sink.count


def run_loop(data: list) -> tuple[float, int]:
    backend = HeapKeyedStateBackend()
    fn = RunningSum()

    class Ctx:
        def get_state(self, descriptor):
            return backend.get_or_create_state(descriptor)

    fn.open(Ctx())
    sink = CountSink()
    process_element, invoke = fn.process_element, sink.invoke
    t0 = time.process_time()
    for e in data:
        backend.current_key = key(e)
        for out in process_element(e, None):
            invoke(out, None)
    return time.process_time() - t0, sink.count


def main(n: int = 1_000_000, repeats: int = 5) -> None:
    data = events(n)
    results: dict[str, list[float]] = {"engine": [], "loop": []}
    counts = set()
    for i in range(repeats + 1):
        for name, fn in (("engine", run_engine), ("loop", run_loop)):
            t, c = fn(data)
            counts.add(c)
            if i:
                results[name].append(t)
    assert len(counts) == 1, f"engine and loop disagree: {counts}"
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"W4 udf heap, N={n:,}, {repeats} repeats (median CPU time, min-max), results={counts.pop():,}")
    for name, ts in results.items():
        lo, hi = n / max(ts) / 1e6, n / min(ts) / 1e6
        print(f"  {name:<7} {n / med[name] / 1e6:6.2f}M events/CPU-s  ({lo:.2f}-{hi:.2f}M)")
    best = {k: min(v) for k, v in results.items()}
    for label, t in (("medians", med), ("best runs", best)):
        per_record = (t["engine"] - t["loop"]) / n * 1e9
        print(f"  engine minus the pure-Python loop: {per_record:6.1f} ns/record ({label})")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
