"""One job of jobs.py run R times at one parallelism, as run.py runs it (warmed up, settled before
each run), for a profiler to watch: the driver and, at p2, the kept workers (children of the fork
server, which this process starts, so ``perf record`` follows them without ``-a``).

    perf record -k mono -F 999 -g -o p2.data -- \
        .venv/bin/python bench/parallel/repeat.py w2-columnar-batch-sink 100000000 2 4
    perf report -i p2.data --time START,END --no-children --sort sym

START and END are the times (CLOCK_MONOTONIC, as ``-k mono`` records) printed on the lines
``timed runs start`` and ``timed runs end``: between them run only the timed runs, each of which
prints its wall and CPU time (driver + workers) and when it ran (``perf report --time`` of one run;
``perf script -F pid,time`` between those marks shows when each process was busy).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402


def main() -> None:
    name, n, p, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    run._count_worker_cpu()
    job, events = run.warmed_up(name, n)
    print(f"timed runs start {time.clock_gettime(time.CLOCK_MONOTONIC):.6f}", flush=True)
    for _ in range(repeats):
        wall, cpu, out = run._measure(job, events, p)
        end = time.clock_gettime(time.CLOCK_MONOTONIC)
        print(
            f"{name} p{p} n={n:,}: wall {wall:.3f} s CPU {cpu:.3f} s results {out[0]} "
            f"(run {end - wall:.6f} to {end:.6f})",
            flush=True,
        )
    print(f"timed runs end {time.clock_gettime(time.CLOCK_MONOTONIC):.6f}", flush=True)


if __name__ == "__main__":
    main()
