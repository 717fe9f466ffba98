"""Page faults and pages allocated per job (system-wide, from /proc/vmstat: the workers' count),
next to wall and CPU time, for one job of jobs.py at p1 and p2 alternately, as run.py runs it.

    .venv/bin/python bench/parallel/faults.py w2-columnar-batch-sink 100000000 5

Prints, per parallelism, the medians over the runs (and the smallest CPU time). For an A/B of
two builds, run it alternately with ``PYTHONPATH`` set to each checkout.
"""

from __future__ import annotations

import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402

_COUNTERS = ("pgfault", "pgalloc_normal")


def _vmstat() -> dict[str, int]:
    with open("/proc/vmstat") as f:
        return {k: int(v) for k, v in (line.split() for line in f) if k in _COUNTERS}


def main() -> None:
    name, n, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    run._count_worker_cpu()
    job, events = run.warmed_up(name, n)
    runs: dict[int, list[tuple[float, float, int, int]]] = {1: [], 2: []}
    for _ in range(repeats):
        for p in (1, 2):
            before = _vmstat()
            wall, cpu, _ = run._measure(job, events, p)
            after = _vmstat()
            runs[p].append((wall, cpu, *(after[k] - before[k] for k in _COUNTERS)))
    for p, rs in runs.items():
        wall, cpu, faults, pages = (statistics.median(r[i] for r in rs) for i in range(4))
        print(
            f"{name} n={n:,} p{p}: wall {wall:.3f} s, CPU {cpu:.3f} s (min {min(r[1] for r in rs):.3f}), "
            f"page faults {faults:,.0f}, pages allocated {pages:,.0f} per job (medians of {repeats})"
        )


if __name__ == "__main__":
    main()
