"""Parallelism 2 (worker processes) vs 1 (in-process) on W2/W3, and shuffle throughput.

    .venv/bin/python bench/parallel/run.py [--n 1000000] [--repeats 3] [--jobs w2-udf,...]

Wall-clock time of ``env.execute()`` (the job's whole life: worker start, run, shutdown), the
median of ``--repeats`` runs after a warm-up, p1 and p2 measured alternately in one process so a
ratio holds on a shared machine; and the CPU seconds spent (driver + workers). Results and
checksums must be identical between p1 and p2. Not pinned: this workload is about using 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jobs  # noqa: E402

from flinkcore.benchmarks.data import events_for  # noqa: E402

_cpu = [0.0]


def _use_cluster_runtime() -> None:
    """Parallel jobs in worker processes (execution.runtime: auto); record the workers' CPU time."""
    os.environ["FLINKCORE_RUNTIME"] = "auto"
    from flinkcore.runtime.cluster import job as cluster_job

    run = cluster_job.ClusterJob.run

    def run_and_count(self):  # type: ignore[no-untyped-def]
        try:
            run(self)
        finally:
            _cpu[0] += self.worker_cpu_seconds

    cluster_job.ClusterJob.run = run_and_count


def _busy(_: int) -> float:
    x = 0
    for i in range(10_000_000):
        x += i
    return float(x)


def machine_parallelism() -> float:
    """How many cores this run really gets: wall time of one busy process vs two at once (2.0 on
    an idle 2-core machine; about 1.0 when other work holds the second core)."""
    import multiprocessing

    t0 = time.perf_counter()
    _busy(0)
    one = time.perf_counter() - t0
    with multiprocessing.get_context("fork").Pool(2) as pool:
        t0 = time.perf_counter()
        pool.map(_busy, [0, 1])
        two = time.perf_counter() - t0
    return 2 * one / two


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", default=",".join(jobs.JOBS))
    args = ap.parse_args()
    print(f"cores available to this run (2 busy processes vs 1): {machine_parallelism():.2f}", flush=True)
    _use_cluster_runtime()
    for name in args.jobs.split(","):
        events = events_for("W3" if name.startswith("w3") else "W2", args.n)
        job = jobs.JOBS[name]
        job(events_for("W3" if name.startswith("w3") else "W2", 20_000), 2)  # warm-up (fork server)
        times: dict[int, list[float]] = {1: [], 2: []}
        cpu: dict[int, list[float]] = {1: [], 2: []}
        results: dict[int, tuple] = {}
        for _ in range(args.repeats):
            for p in (1, 2):
                _cpu[0] = 0.0
                c0 = time.process_time()
                t0 = time.perf_counter()
                out = job(events, p)
                times[p].append(time.perf_counter() - t0)
                cpu[p].append(time.process_time() - c0 + _cpu[0])
                results.setdefault(p, out)
                assert out[0] == results[p][0] and abs(out[1] - results[p][1]) < 1e-6 * max(1, abs(out[1]))
        same = results[1][0] == results[2][0] and abs(results[1][1] - results[2][1]) <= 1e-9 * abs(
            results[1][1]
        )
        m1, m2 = statistics.median(times[1]), statistics.median(times[2])
        print(
            f"{name:12s} n={args.n:,} p1 {m1:.2f}s [{min(times[1]):.2f}-{max(times[1]):.2f}] "
            f"({args.n / m1 / 1e3:.0f}k ev/s)  p2 {m2:.2f}s [{min(times[2]):.2f}-{max(times[2]):.2f}] "
            f"({args.n / m2 / 1e3:.0f}k ev/s)  speedup {m1 / m2:.2f}x  results {results[1][0]} "
            f"checksum {results[1][1]:.6f}  identical={same}  CPU-s p1 {statistics.median(cpu[1]):.2f} "
            f"p2 {statistics.median(cpu[2]):.2f} (driver+workers)",
            flush=True,
        )


if __name__ == "__main__":
    main()
