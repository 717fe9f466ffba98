"""A/B of the shared-memory rings between worker processes (``cluster_ring``): the p2 job with the
rings on and off, alternately in one process, next to p1, on the W2/W3 jobs of run.py.

    .venv/bin/python bench/parallel/ring_ab.py [--n 20000000] [--repeats 3] [--jobs w3-columnar]
        [--two-phase on|off]

Per job and variant: the wall-clock time of ``env.execute()`` (median of ``--repeats`` rounds,
each round runs p1, p2 ring on and p2 ring off in turn, rotating which comes first) and the CPU
seconds of driver + workers; results must be identical across the three (the script fails
otherwise). The ring's switch is the job config key ``cluster_ring`` (set here on each graph a
ClusterJob gets), so both variants share one fork server. Not pinned: p2 is about two cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402

_ring = [True]


def _switch_rings() -> None:
    from flinkcore.runtime.cluster import job as cluster_job

    init = cluster_job.ClusterJob.__init__

    def init_with_ring(self, graph, *args, **kwargs):  # type: ignore[no-untyped-def]
        graph.config["cluster_ring"] = _ring[0]
        init(self, graph, *args, **kwargs)

    cluster_job.ClusterJob.__init__ = init_with_ring


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", default="w3-columnar")
    ap.add_argument("--two-phase", default="on", choices=("on", "off"))
    args = ap.parse_args()
    if os.environ.get("FLINKCORE_CLUSTER_RING"):
        raise SystemExit("FLINKCORE_CLUSTER_RING overrides the config this script switches: unset it")
    cores = run.machine_parallelism()
    print(f"cores available to this run (2 busy processes vs 1): {cores:.2f}", flush=True)
    run._count_worker_cpu()
    _switch_rings()
    variants = [(1, None), (2, True), (2, False)]
    for name in args.jobs.split(","):
        job, events = run.warmed_up(name, args.n)
        wall: dict = {v: [] for v in variants}
        cpu: dict = {v: [] for v in variants}
        results: dict = {}
        for i in range(args.repeats):
            order = variants[i % 3 :] + variants[: i % 3]
            for v in order:
                p, ring = v
                _ring[0] = bool(ring)
                w, c, out = run._measure(job, events, p, args.two_phase)
                wall[v].append(w)
                cpu[v].append(c)
                if not run._same(results.setdefault(v, out), out):
                    raise SystemExit(f"{name} {v}: results differ between runs: {results[v]} vs {out}")
                print(f"  {name} p{p} ring {ring}: wall {w:.2f} s CPU {c:.2f} s", flush=True)
        base = results[variants[0]]
        for v in variants[1:]:
            if not run._same(base, results[v]):
                raise SystemExit(f"{name}: p1 {base} and p2 ring {v[1]} {results[v]} differ")
        m = {v: (statistics.median(wall[v]), statistics.median(cpu[v])) for v in variants}
        on, off = m[(2, True)], m[(2, False)]
        print(
            f"{name} n={args.n:,} two-phase {args.two_phase}: p1 wall {m[(1, None)][0]:.2f}s CPU "
            f"{m[(1, None)][1]:.2f}s | p2 ring on wall {on[0]:.2f}s "
            f"[{min(wall[(2, True)]):.2f}-{max(wall[(2, True)]):.2f}] CPU {on[1]:.2f}s "
            f"[min {min(cpu[(2, True)]):.2f}] | p2 ring off wall {off[0]:.2f}s "
            f"[{min(wall[(2, False)]):.2f}-{max(wall[(2, False)]):.2f}] CPU {off[1]:.2f}s "
            f"[min {min(cpu[(2, False)]):.2f}] | on/off wall {on[0] / off[0]:.3f} CPU {on[1] / off[1]:.3f} | "
            f"results {base[0]} identical",
            flush=True,
        )


if __name__ == "__main__":
    main()
