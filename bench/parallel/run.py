"""Parallelism 2 (worker processes) vs 1 (in-process) on W2/W3: wall time, CPU time, start-up.

    .venv/bin/python bench/parallel/run.py [--n 5000000] [--repeats 3] [--jobs w2-udf,...]
        [--batch-size 16384] [--two-phase on|off|both]

Both runs use the runtime a user gets by default: parallelism 1 in this process, parallelism 2
in two worker processes. Per job: the wall-clock time of ``env.execute()`` (the job's whole
life: worker start, run, shutdown), median of ``--repeats`` runs after a warm-up (which ends
with one run at full size at each parallelism: see :func:`warmed_up`; the table leaves those out,
the per-job line prints them), p1 and p2 measured alternately in one process so a ratio holds on
a shared machine; the CPU seconds spent
(driver + workers); and ``2 x CPU p1 / CPU p2``, the speedup p2 reaches when both cores are free
for it (wall ~ CPU / 2 with both slots busy and the driver nearly idle). Results and checksums
must be identical between p1 and p2 (the script fails otherwise). p2 runs in the workers of the
last p2 job (kept for the next one, as by default; the warm-up forks them). Worker start-up is
measured on its own: a job of 1000 events at p1, at p2 in the last job's workers, and at p2 in
newly forked ones, alternately (p2 - p1: the fixed cost of a job in worker processes). The
first line says how many cores this run really had (two busy processes vs one): wall-clock
speedups mean something only when it says ~2.0. Before each timed run the last one's teardown is
let finish (:data:`SETTLE`: a p2 job's workers free its memory after they report finished, a p1
job's is freed on a background thread), so it is on neither run's clock. The start-up jobs wait
too: their kept workers have imported the user's modules ahead, as between a user's jobs that
do not come back to back.

p2 runs with two-phase (local-global) window aggregation on (the default), off, or ``both``
(the default of this script): then p1, p2 on and p2 off are measured alternately and the table
has a row per p2 variant (``execution.window.two-phase-aggregation``, set here through the
``FLINKCORE_TWO_PHASE_AGGREGATION`` environment variable the driver reads).

Not pinned: the workload is about using 2 cores.
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
from flinkcore.runtime.cluster.pool import ENV_VAR as IDLE_TIMEOUT_ENV  # noqa: E402
from flinkcore.runtime.execution import wait_for_retired  # noqa: E402

_worker_cpu = [0.0]


def _count_worker_cpu() -> None:
    """Add the CPU time workers report at their end to ``_worker_cpu``."""
    from flinkcore.runtime.cluster import job as cluster_job

    run = cluster_job.ClusterJob.run

    def run_and_count(self):  # type: ignore[no-untyped-def]
        try:
            run(self)
        finally:
            _worker_cpu[0] += self.worker_cpu_seconds

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


#: seconds given to the last run's teardown before the next run starts (a p2 job's workers free
#: its memory after they report finished; a p1 job's is freed on a background thread)
SETTLE = 0.15


def _measure(job, events, p: int, two_phase: str = "on") -> tuple[float, float, tuple]:
    os.environ["FLINKCORE_TWO_PHASE_AGGREGATION"] = "true" if two_phase == "on" else "false"
    wait_for_retired()
    time.sleep(SETTLE)
    _worker_cpu[0] = 0.0
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = job(events, p)
    wall = time.perf_counter() - t0
    return wall, time.process_time() - c0 + _worker_cpu[0], out


#: wall seconds of the first run of each job at full size, per parallelism (see warmed_up)
FIRST_RUNS: dict[str, dict[int, float]] = {}


def warmed_up(name: str, n: int) -> tuple:
    """Job ``name`` of ``jobs.JOBS`` and its workload's ``n`` events, ready for timed runs at p1
    and p2 in their steady state: both runtimes warmed up on 20,000 events (imports a first run
    would pay; the p2 run also starts the workers the timed runs reuse), each subtask's share of
    the events written to /dev/shm once, then the job run once at full size at p1 and at p2 (its
    wall time kept in :data:`FIRST_RUNS`): a process's first run at a size grows its heap, page
    by page (W2 columnar 100M: the p2 workers allocated ~50k pages, 0.1-0.3 CPU-s, p1's
    process, which made the events, ~9k; the next runs 2-9k). The timed runs compare the two
    steady states."""
    workload = "W3" if name.startswith("w3") else "W2"
    events = events_for(workload, n)
    job = jobs.JOBS[name]
    for p in (1, 2):
        job(events_for(workload, 20_000), p)
        jobs.prepare(events, p)
    FIRST_RUNS[name] = {p: _measure(job, events, p)[0] for p in (1, 2)}
    return job, events


def _same(a: tuple, b: tuple) -> bool:
    return a[0] == b[0] and abs(a[1] - b[1]) <= 1e-9 * max(1.0, abs(a[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", default="w2-udf-aggregate,w2-udf,w2-columnar,w3-udf,w3-columnar")
    ap.add_argument("--batch-size", type=int, default=None, help="flinkcore.batch-size at p1 and p2")
    ap.add_argument("--two-phase", default="both", choices=("on", "off", "both"))
    args = ap.parse_args()
    variants = ["on", "off"] if args.two_phase == "both" else [args.two_phase]
    jobs.BATCH_SIZE = args.batch_size
    cores = machine_parallelism()
    print(f"cores available to this run (2 busy processes vs 1): {cores:.2f}", flush=True)
    _count_worker_cpu()

    small = events_for("W2", 1000)
    t0 = time.perf_counter()
    jobs.w2_udf(small, 2)  # the first parallel job starts the fork server
    first = time.perf_counter() - t0
    jobs.w2_udf(small, 1)
    # alternately, so the differences hold on a shared machine; "fresh": p2 in newly forked
    # workers (reuse off for that job: the kept ones stay parked for the next p2 job)
    startup: dict = {1: [], 2: [], "fresh": []}
    for _ in range(7):
        for p in startup:
            if p == "fresh":
                os.environ[IDLE_TIMEOUT_ENV] = "0"
            try:
                startup[p].append(_measure(jobs.w2_udf, small, 2 if p == "fresh" else p))
            finally:
                os.environ.pop(IDLE_TIMEOUT_ENV, None)
    (w1, c1), (w2, c2), (wf, cf) = (
        (statistics.median(s[0] for s in runs), statistics.median(s[1] for s in runs))
        for runs in startup.values()
    )
    print(
        f"start-up: first parallel job (fork server start, imports) {first:.2f} s; then a 1000-event "
        f"W2 udf job (medians of 7): p1 wall {w1 * 1e3:.1f} ms CPU {c1 * 1e3:.1f} ms; p2 in the workers "
        f"of the last job wall {w2 * 1e3:.1f} ms CPU {c2 * 1e3:.1f} ms (driver + 2 workers), in newly "
        f"forked workers wall {wf * 1e3:.1f} ms CPU {cf * 1e3:.1f} ms: the fixed cost of a job in worker "
        f"processes ~{(w2 - w1) * 1e3:.0f} ms wall (~{(wf - w1) * 1e3:.0f} ms forking them)",
        flush=True,
    )

    rows = []
    for name in args.jobs.split(","):
        job, events = warmed_up(name, args.n)
        runs = [(1, "-")] + [(2, v) for v in variants]
        wall: dict[tuple, list[float]] = {r: [] for r in runs}
        cpu: dict[tuple, list[float]] = {r: [] for r in runs}
        results: dict[tuple, tuple] = {}
        for _ in range(args.repeats):
            for r in runs:
                w, c, out = _measure(job, events, *r)
                wall[r].append(w)
                cpu[r].append(c)
                if results.setdefault(r, out) != out and not _same(results[r], out):
                    raise SystemExit(f"{name} {r}: results differ between runs: {results[r]} vs {out}")
        p1 = runs[0]
        for r in runs[1:]:
            if not _same(results[p1], results[r]):
                raise SystemExit(f"{name}: p1 {results[p1]} and p2 (two-phase {r[1]}) {results[r]} differ")
        m1, c1 = statistics.median(wall[p1]), statistics.median(cpu[p1])
        for r in runs[1:]:
            m2, c2 = statistics.median(wall[r]), statistics.median(cpu[r])
            minima = (min(cpu[p1]), min(cpu[r]))
            rows.append((name, r[1], wall[p1], wall[r], m1, m2, c1, c2, results[p1], *minima))
            print(
                f"{name:12s} n={args.n:,} p1 {m1:.2f}s [{min(wall[p1]):.2f}-{max(wall[p1]):.2f}] "
                f"p2 (two-phase {r[1]}) {m2:.2f}s [{min(wall[r]):.2f}-{max(wall[r]):.2f}] "
                f"wall speedup {m1 / m2:.2f}x | CPU-s p1 {c1:.2f} p2 {c2:.2f} (x{c2 / c1:.2f}) -> 2-core "
                f"speedup {2 * c1 / c2:.2f}x | results {results[p1][0]} "
                f"checksum {results[p1][1]:.6f} identical | first run at this size (warm-up, not in "
                f"the medians) p1 {FIRST_RUNS[name][1]:.2f}s p2 {FIRST_RUNS[name][2]:.2f}s",
                flush=True,
            )

    from flinkcore.runtime.executor import DEFAULT_BATCH_SIZE, DEFAULT_COLUMNAR_BATCH_SIZE

    batch = args.batch_size or (
        f"default ({DEFAULT_BATCH_SIZE:,} records; columnar sources {DEFAULT_COLUMNAR_BATCH_SIZE:,} rows)"
    )
    print()
    print(f"n = {args.n:,}, batch size {batch}, {args.repeats} repeats, cores available {cores:.2f}")
    print()
    print(
        "| job | two-phase | p1 wall | p2 wall | wall speedup | CPU-s p1 [min] | CPU-s p2 [min] "
        "| 2 x CPU p1 / CPU p2 (of minima) | results | checksum |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, variant, w1, w2, m1, m2, c1, c2, res, n1, n2 in rows:
        print(
            f"| {name} | {variant} | {m1:.2f} s [{min(w1):.2f}-{max(w1):.2f}] | {m2:.2f} s "
            f"[{min(w2):.2f}-{max(w2):.2f}] | {m1 / m2:.2f}x | {c1:.2f} [{n1:.2f}] | {c2:.2f} [{n2:.2f}] | "
            f"{2 * c1 / c2:.2f}x ({2 * n1 / n2:.2f}x) | {res[0]} | {res[1]:.6f} |"
        )


if __name__ == "__main__":
    main()
