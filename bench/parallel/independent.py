"""The machine's own ceiling for a parallel job: one process running the p1 job on all N events,
against two processes started together, each running the p1 job on half of them (strided), with
no exchange and no coordination at all; and, in the same rounds, the job itself at parallelism 2
in worker processes (run.py's p2). What two processes that never talk reach on this machine
bounds what p2 can reach (bench/README.md, Parallel).

    .venv/bin/python bench/parallel/independent.py [--n 100000000] [--repeats 5] [--job JOB]
        [--split stride|key]

``--job``: a job of jobs.py (default w2-columnar-batch-sink). Each process is a fresh
interpreter: before the clock starts it loads its events from .npy files in /dev/shm, writes its
share as the bench's parallel source does (mapped afresh by the job, as in run.py), runs a
20k-event warm-up job and waits for a go; the wall time runs from the go to the last process done,
the CPU time is each process's own for its job.

``--split stride`` (the default): half ``i`` holds events ``i, i+2, ...``, as the p2 job's source
subtasks read them; each half sees every key, so its results are its own, not p1's, and where a
key's state depends on how close its events come (W3's sessions) a half does more than half the
work. ``--split key``: half ``i`` holds the events of the keys subtask ``i`` owns at parallelism 2
(key groups of the default max parallelism 128), i.e. what a p2 worker's keyed operator gets after
the exchange: the two halves together give p1's results, with no exchange at all.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = """
import sys, time
import numpy as np
sys.path.insert(0, {here!r})
import jobs
from flinkcore.benchmarks.data import Events, events_for
directory, part, p, name, workload = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
job = jobs.JOBS[name]
events = Events(*(np.load(f"{{directory}}/{{c}}-{{p}}-{{part}}.npy") for c in ("key", "value", "ts")))
jobs.prepare(events, 1)
job(events_for(workload, 20000), 1)
print("ready", flush=True)
sys.stdin.readline()
c0 = time.process_time()
out = job(events, 1)
print(time.perf_counter(), time.process_time() - c0, out[0], flush=True)
"""


def _run(directory: str, p: int, name: str, workload: str) -> tuple[float, float]:
    child = CHILD.format(here=HERE)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", child, directory, str(i), str(p), name, workload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(p)
    ]
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a process failed before its job")
    t0 = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    done = [proc.stdout.readline().split() for proc in procs]
    for proc in procs:
        if proc.wait():
            raise RuntimeError("a process failed in its job")
    return max(float(d[0]) for d in done) - t0, sum(float(d[1]) for d in done)


def _part(keys: np.ndarray, i: int, p: int, split: str) -> slice | np.ndarray:
    """Which events half ``i`` of ``p`` holds (see ``--split``)."""
    if split == "stride" or p == 1:
        return slice(i, None, p)
    from flinkcore._core.partitioner import key_groups_int64

    max_parallelism = 128
    return key_groups_int64(keys, max_parallelism).astype(np.int64) * p // max_parallelism == i


def main() -> None:
    sys.path.insert(0, HERE)
    import jobs
    import run

    from flinkcore.benchmarks.data import events_for

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--job", default="w2-columnar-batch-sink", choices=sorted(jobs.JOBS))
    ap.add_argument("--split", default="stride", choices=("stride", "key"))
    args = ap.parse_args()
    workload = "W3" if args.job.startswith("w3") else "W2"
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    directory = tempfile.mkdtemp(prefix="flinkcore-bench-independent-", dir=base)
    try:
        events = events_for(workload, args.n)
        for p in (1, 2):
            for i in range(p):
                part = _part(events.key, i, p, args.split)
                for c in ("key", "value", "ts"):
                    column = getattr(events, c)[part]
                    np.save(os.path.join(directory, f"{c}-{p}-{i}.npy"), np.ascontiguousarray(column))
        job = jobs.JOBS[args.job]
        jobs.prepare(events, 2)
        run._count_worker_cpu()
        job(events_for(workload, 20000), 2)  # starts the fork server
        print(f"cores available to this run (2 busy processes vs 1): {run.machine_parallelism():.2f}")
        rows = []
        for r in range(args.repeats):  # the three, in turn
            w1, c1 = _run(directory, 1, args.job, workload)
            w2, c2 = _run(directory, 2, args.job, workload)
            wp, cp, _ = run._measure(job, events, 2)
            rows.append((w1 / w2, 2 * c1 / c2, w1 / wp, 2 * c1 / cp))
            print(
                f"{args.job} n={args.n:,} split by {args.split}, round {r + 1}: "
                f"one process {w1:.3f} s (CPU {c1:.3f}); "
                f"two independent halves {w2:.3f} s (CPU {c2:.3f}): {w1 / w2:.2f}x wall, CPU ratio "
                f"{2 * c1 / c2:.2f}; the p2 job {wp:.3f} s (CPU {cp:.3f}): {w1 / wp:.2f}x, {2 * c1 / cp:.2f}",
                flush=True,
            )
        med = [statistics.median(row[i] for row in rows) for i in range(4)]
        print(
            f"medians of {args.repeats}: two independent halves {med[0]:.2f}x wall, CPU ratio {med[1]:.2f}; "
            f"the p2 job {med[2]:.2f}x wall, CPU ratio {med[3]:.2f} (against one process running p1)"
        )
    finally:
        shutil.rmtree(directory, True)


if __name__ == "__main__":
    main()
