"""Run the peers (Bytewax, PyFlink DataStream + SQL, Pathway) on WORKLOADS.md's workloads.

Opt-in (``make bench-peers``), never part of ``make test``. Each peer gets its own virtualenv
(created on first use, see envs.py) and every run is a fresh process pinned with
``taskset -c 0``, run once (PyFlink's JVM start alone takes seconds). N is kept small
enough per (peer, workload) that the whole sweep finishes in minutes on a shared 2-core
machine: the slow cases (PyFlink's Python windows) get fewer events. Each run appends one
JSON record, with the command that produced it, to bench/results/peers.jsonl; a peer that
does not install or fails is recorded with its reason.

Usage: python bench/peers/run.py [--peers bytewax,pyflink,pathway] [--workloads W1,W2] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from envs import ensure_venv, peer_env  # noqa: E402

RESULTS = HERE.parent / "results" / "peers.jsonl"

#: (peer venv, script, mode args, workload -> N). The N are chosen from measured rates so each
#: run takes well under a minute on one core.
PLAN = [
    # Nexmark q0-q8 in Flink SQL on the same generated events (N: events of the whole stream)
    ("pyflink", "pyflink_nexmark.py", ["sql"], {"nexmark": 3_000_000}),
    (
        "bytewax",
        "bytewax_bench.py",
        [],
        {"W1": 1_000_000, "W2": 200_000, "W2-sparse": 200_000, "W3": 100_000, "W4": 1_000_000},
    ),
    (
        "pyflink",
        "pyflink_bench.py",
        ["sql"],
        {"W1": 1_000_000, "W2": 1_000_000, "W2-sparse": 1_000_000, "W3": 200_000},
    ),
    (
        "pyflink",
        "pyflink_bench.py",
        ["thread"],
        {"W1": 200_000, "W2": 200_000, "W2-sparse": 50_000, "W3": 50_000, "W4": 200_000},
    ),
    (
        "pyflink",
        "pyflink_bench.py",
        ["process"],
        # Python windows in process mode ran at ~1k events/s here: a small N keeps a run near a minute
        {"W1": 200_000, "W2": 50_000, "W2-sparse": 10_000, "W4": 50_000},
    ),
    (
        "pathway",
        "pathway_bench.py",
        [],
        {"W1": 1_000_000, "W2": 1_000_000, "W2-sparse": 1_000_000, "W3": 200_000},
    ),
]


def machine() -> dict:
    """Cores, CPU model, date: written as the first (meta) line of the results file."""
    import os
    import platform

    cpu = platform.machine()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(sys.argv),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peers", default="bytewax,pyflink,pathway")
    p.add_argument("--workloads", default="W1,W2,W2-sparse,W3,W4,nexmark")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every N (e.g. 0.1 for a smoke run)")
    p.add_argument("--timeout", type=int, default=600)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    peers, workloads = args.peers.split(","), args.workloads.split(",")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    taskset = shutil.which("taskset")
    ready: dict[str, str | None] = {}
    with out.open("a") as sink:
        sink.write(json.dumps({"meta": machine()}) + "\n")
        for peer, script, mode, sizes in PLAN:
            if peer not in peers:
                continue
            if peer not in ready:
                try:
                    print(f"[peers] setting up {peer} venv ...", file=sys.stderr, flush=True)
                    ensure_venv(peer)
                    ready[peer] = None
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    ready[peer] = str(exc)[-2000:]
            for workload, n in sizes.items():
                if workload not in workloads:
                    continue
                n = max(1000, int(n * args.scale))
                py = HERE / ".venvs" / peer / "bin" / "python"
                cmd = [*([taskset, "-c", "0"] if taskset else []), str(py), script, *mode, workload, str(n)]
                shown = (
                    " ".join(["taskset -c 0"] if taskset else [])
                    + " "
                    + " ".join(
                        [
                            f"bench/peers/.venvs/{peer}/bin/python",
                            f"bench/peers/{script}",
                            *mode,
                            workload,
                            str(n),
                        ]
                    )
                )
                label = f"{peer} {' '.join(mode)} {workload} N={n}"
                recs: list[dict] = []
                if ready[peer] is not None:
                    rec = {
                        "workload": workload,
                        "system": peer,
                        "style": " ".join(mode),
                        "n": n,
                        "status": "skipped",
                        "reason": f"does not install: {ready[peer]}",
                    }
                else:
                    print(f"[peers] {label} ...", file=sys.stderr, flush=True)
                    t0 = time.time()
                    try:
                        proc = subprocess.run(
                            cmd,
                            cwd=HERE,
                            env=peer_env(peer),
                            capture_output=True,
                            text=True,
                            timeout=args.timeout,
                        )
                        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                        if proc.returncode == 0 and lines:
                            recs = [json.loads(ln) for ln in lines]  # one per query for Nexmark
                            rec = recs[-1]
                        else:
                            rec = {
                                "workload": workload,
                                "system": peer,
                                "style": " ".join(mode),
                                "n": n,
                                "status": "failed",
                                "reason": proc.stderr[-1500:],
                            }
                    except subprocess.TimeoutExpired:
                        rec = {
                            "workload": workload,
                            "system": peer,
                            "style": " ".join(mode),
                            "n": n,
                            "status": "failed",
                            "reason": f"timed out after {args.timeout} s",
                        }
                    print(
                        f"[peers] {label}: {rec.get('status')} in {time.time() - t0:.0f} s "
                        f"{rec.get('events_per_s', 0):.0f} ev/s agrees={rec.get('agrees')}",
                        file=sys.stderr,
                        flush=True,
                    )
                for r in recs or [rec]:
                    r["command"] = shown.strip()
                    r["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
                    sink.write(json.dumps(r) + "\n")
                sink.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
