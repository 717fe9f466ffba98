"""Per timed run of ``repeat.py``: each process's CPU time on each CPU, and when it was busy, from
a ``perf record --sample-cpu`` of it. Shows whether a p2 job's workers did equal work at equal
speed, or one waited for the other (a worker on a slower vCPU needs more CPU time for its half).

    perf record --sample-cpu -k mono -F 1999 -o p2.data -- \\
        .venv/bin/python bench/parallel/repeat.py w3-columnar-batch-sink 20000000 2 8 > p2.log
    .venv/bin/python bench/parallel/cpus.py p2.data p2.log

Per run: its wall time, then per process (those with > 10 ms in the run) the ms sampled on each
CPU and the first and last sample (ms from the run's start).
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys

HZ_DEFAULT = 1999


def main() -> None:
    data, log = sys.argv[1], sys.argv[2]
    hz = float(sys.argv[3]) if len(sys.argv) > 3 else HZ_DEFAULT
    with open(log) as f:
        runs = [(float(a), float(b)) for a, b in re.findall(r"\(run ([\d.]+) to ([\d.]+)\)", f.read())]
    if not runs:
        raise SystemExit(f"{log}: no '(run START to END)' marks (repeat.py prints them)")
    command = ["perf", "script", "-i", data, "-F", "pid,cpu,time", "--ns"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    samples: dict = collections.Counter()  # (run, pid, cpu) -> samples
    span: dict = {}  # (run, pid) -> [first, last] seconds from the run's start
    for line in out.splitlines():
        pid, cpu, t = line.split()
        at = float(t.rstrip(":"))
        for i, (a, b) in enumerate(runs):
            if a <= at <= b:
                samples[(i, int(pid), int(cpu.strip("[]")))] += 1
                s = span.setdefault((i, int(pid)), [at - a, at - a])
                s[1] = at - a
                break
    for i, (a, b) in enumerate(runs):
        per_pid: dict = collections.defaultdict(dict)
        for (r, pid, cpu), n in samples.items():
            if r == i:
                per_pid[pid][cpu] = n * 1e3 / hz
        parts = []
        for pid, cpus in sorted(per_pid.items(), key=lambda kv: -sum(kv[1].values())):
            if sum(cpus.values()) < 10:
                continue
            first, last = span[(i, pid)]
            on = " ".join(f"cpu{c} {ms:.0f}" for c, ms in sorted(cpus.items()))
            parts.append(f"pid {pid}: {on} ms (+{first * 1e3:.0f}..+{last * 1e3:.0f})")
        print(f"run {i}: {(b - a) * 1e3:.0f} ms | " + " | ".join(parts))


if __name__ == "__main__":
    main()
