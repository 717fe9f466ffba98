"""Run flinkcore's side of the benchmark (``make bench``): every workload, then a sweep over N.

Writes JSON lines to bench/results/ours.jsonl (the default N of each workload, flinkcore's
styles next to the Python/numpy/C baselines, all in one process pinned to core 0) and
bench/results/sweep.jsonl (W1 and W2 at growing N, for the throughput-vs-N plot). Each file
starts with a ``meta`` line: the machine, the date and the command. bench/report.py turns them
into bench/README.md's tables. Runs in a few minutes on one core.

Usage: python bench/run_workloads.py [--quick] [--workloads W1,W2] [--no-sweep]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SWEEP_N = [100_000, 300_000, 1_000_000, 3_000_000]


def run(cmd: list[str], out: Path) -> None:
    """Run ``flinkcore bench --json`` and write its records after a meta line."""
    from flinkcore.benchmarks.harness import machine

    shown = "python -m flinkcore " + " ".join(cmd)
    print(f"[bench] {shown}", file=sys.stderr, flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "flinkcore", *cmd], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    with out.open("a") as f:
        f.write(json.dumps({"meta": {**machine(), "command": shown}}) + "\n")
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                rec["command"] = shown
                f.write(json.dumps(rec) + "\n")
    if proc.returncode not in (0, 3, 4):  # 3: a checksum disagreed, 4: a case failed (both in the table)
        raise SystemExit(f"{shown} exited with {proc.returncode}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="W1,W2,W2-sparse,W3,W4,L1,nexmark")
    p.add_argument("--quick", action="store_true", help="N=100k, one repeat: a smoke run")
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--results", default=str(RESULTS), help="directory for the .jsonl files")
    args = p.parse_args()
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    ours, sweep = results / "ours.jsonl", results / "sweep.jsonl"
    ours.unlink(missing_ok=True)
    t0 = time.time()
    extra = ["--n", "100000", "--repeats", "1"] if args.quick else []
    for w in args.workloads.split(","):
        run(["bench", w, "--json", *extra], ours)
    if not args.no_sweep and not args.quick:
        sweep.unlink(missing_ok=True)
        for w in ("W1", "W2"):
            for n in SWEEP_N:
                # one repeat: the sweep only draws the plot; the table's medians come from above
                run(["bench", w, "--n", str(n), "--repeats", "1", "--json"], sweep)
    print(f"[bench] done in {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
