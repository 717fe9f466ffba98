"""W1 / W2 / W2-sparse with ``flinkcore.jit`` user functions, next to the udf and columnar styles.

Each job reads the workload's events (WORKLOADS.md) and ends in the same Python SinkFunction as
``python -m flinkcore bench`` (it counts results and adds up one field), so results and checksum
must agree across styles:

- ``udf``: the bench's udf job (from_collection of tuples, lambdas, a TimestampAssigner class);
- ``jit``: from_arrow, and the same logic as ``@flinkcore.jit`` functions — W1 a jit map and a
  jit filter; W2 a jit timestamp assigner, a jit key selector and a jit AggregateFunction
  (sum and count; ``get_result`` returns ``(total, n)``);
- ``columnar``: the bench's columnar job (field names and built-in ``agg``), W2 only.

    taskset -c 0 .venv/bin/python bench/windows/jit_windows.py [W1|W2|W2-sparse] [N] [repeats] [--no-numba]

``--no-numba`` makes ``import numba`` fail first (as without the ``flinkcore[jit]`` extra): the jit
style then runs its functions per record.

Prints one line per style: median CPU seconds and wall seconds of ``repeats`` runs after a warm-up
(the warm-up compiles the jit functions: numba's compile time is reported apart).
"""

from __future__ import annotations

import statistics
import sys
import time

if "--no-numba" in sys.argv:
    sys.argv.remove("--no-numba")
    sys.modules["numba"] = None  # type: ignore[assignment]  # import numba raises ImportError

import flinkcore
from flinkcore.benchmarks import jobs
from flinkcore.benchmarks.data import WINDOW_MS, events_for
from flinkcore.datastream.functions import AggregateFunction
from flinkcore.jit import numba_available


@flinkcore.jit
def event_time(ts):
    return ts


@flinkcore.jit
def key_of(key):
    return key


@flinkcore.jit
def doubled(key, value, ts):
    return key, value * 2.0, ts


@flinkcore.jit
def even(f0):
    return f0 % 2 == 0


@flinkcore.jit
class SumCount(AggregateFunction):
    def create_accumulator(self):
        return (0.0, 0)

    def add(self, value, accumulator):
        return (accumulator[0] + value.value, accumulator[1] + 1)

    def get_result(self, accumulator):
        return accumulator

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


def w1_jit(table):
    env = jobs._env()
    sink = jobs._sink_function(1)
    env.from_arrow(table).map(doubled).filter(even).add_sink(sink)
    env.execute("W1 jit")
    return sink.results, sink.checksum


def w2_jit(table):
    from flinkcore.common.time import Time
    from flinkcore.datastream.window import TumblingEventTimeWindows

    env = jobs._env()
    sink = jobs._sink_function(0)
    (
        env.from_arrow(table)
        .assign_timestamps_and_watermarks(jobs._watermarks(event_time))
        .key_by(key_of)
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .aggregate(SumCount())
        .add_sink(sink)
    )
    env.execute("W2 jit")
    return sink.results, sink.checksum


def main() -> None:
    workload = sys.argv[1] if len(sys.argv) > 1 else "W2"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    events = events_for(workload, n)
    table = jobs.arrow_table(events)
    tuples = events.tuples()
    styles = [("udf", jobs.JOBS[(workload, "udf")][1], tuples)]
    if workload == "W1":
        styles.append(("jit", w1_jit, table))
    else:
        styles.append(("jit", w2_jit, table))
        styles.append(("columnar", jobs.JOBS[(workload, "columnar")][1], table))
    print(f"{workload} N={n} numba installed: {numba_available()}")
    for name, job, data in styles:
        t0 = time.process_time()
        first = job(data)  # warm-up (jit: compiles)
        warm = time.process_time() - t0
        cpu, wall = [], []
        for _ in range(repeats):
            c, w = time.process_time(), time.perf_counter()
            out = job(data)
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - w)
            assert out[0] == first[0]
        c, w = statistics.median(cpu), statistics.median(wall)
        print(
            f"  {name:9s} cpu {c:.3f} s ({n / c / 1e6:.2f}M ev/CPU-s)  wall {w:.3f} s  "
            f"results {out[0]} checksum {out[1]:.6f}  first run {warm:.2f} CPU-s"
        )


if __name__ == "__main__":
    main()
