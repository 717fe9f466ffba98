"""Where a per-record sink's CPU goes at parallelism 1 and 2: the sink's own loop over its columnar
batches (``SinkOperator._process_columnar``: build each record, call ``invoke``), the rest of the
driver, and the workers, per job, p1 and p2 alternately in one process.

    .venv/bin/python bench/parallel/sink_cost.py [--n 100000000] [--repeats 5]
        [--jobs w2-columnar,w2-columnar-batch-sink]

At p1 the sink runs in this process after the window; at p2 it runs in the driver (this process,
``flinkcore.sinks-in-driver`` default true) on the batches the workers send. "sink loop" is the
thread CPU time spent in that loop, also per record; "driver" is this process's CPU time of the
whole ``execute()`` (the sink loop included), "workers" what the workers report. Medians of
``--repeats`` after a warm-up; results must be identical at p1 and p2. Not pinned (p2 is about two
cores); compare the columns of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402

from flinkcore.runtime.operators import udf  # noqa: E402

_sink = [0.0, 0]  # CPU seconds in the sink's columnar loop, records it took


def _instrument() -> None:
    loop = udf.SinkOperator._process_columnar

    def timed(self, batch, timestamps, keyed=False):  # type: ignore[no-untyped-def]
        c0 = time.thread_time()
        try:
            return loop(self, batch, timestamps, keyed)
        finally:
            _sink[0] += time.thread_time() - c0
            _sink[1] += batch.num_rows

    udf.SinkOperator._process_columnar = timed
    run._count_worker_cpu()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--jobs", default="w2-columnar,w2-columnar-batch-sink")
    args = ap.parse_args()
    os.environ.setdefault("FLINKCORE_TWO_PHASE_AGGREGATION", "true")
    _instrument()
    for name in args.jobs.split(","):
        job, events = run.warmed_up(name, args.n)
        runs: dict[int, list[tuple]] = {1: [], 2: []}
        results: dict[int, tuple] = {}
        for _ in range(args.repeats):
            for p in (1, 2):
                _sink[:] = [0.0, 0]
                run._worker_cpu[0] = 0.0
                c0, t0 = time.process_time(), time.perf_counter()
                out = job(events, p)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                results.setdefault(p, out)
                if not run._same(results[p], out) or not run._same(results[1], out):
                    raise SystemExit(f"{name} p{p}: results differ: {results[1]} vs {out}")
                per = _sink[0] / _sink[1] * 1e9 if _sink[1] >= 1000 else float("nan")
                runs[p].append((wall, _sink[0], per, cpu, run._worker_cpu[0]))
        print(f"{name} n={args.n:,} results {results[1][0]} (medians of {args.repeats}):", flush=True)
        for p in (1, 2):
            m = [statistics.median(r[k] for r in runs[p]) for k in range(5)]
            print(
                f"  p{p}: wall {m[0]:.3f} s | sink loop {m[1]:.3f} CPU-s ({m[2]:.0f} ns/record) | "
                f"driver {m[3]:.3f} CPU-s | workers {m[4]:.3f} CPU-s | total {m[3] + m[4]:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
