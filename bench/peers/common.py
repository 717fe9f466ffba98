"""Shared by the peer scripts, which run inside each peer's own virtualenv.

It loads flinkcore's benchmark data generator and numpy reference *by path* (they need only
numpy), so every peer sees identical events and is checked against the same expected
results, without flinkcore installed in the peer's venv. Timing counts the CPU of the whole
process tree (PyFlink's JVM and its Python workers are child processes).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

BENCH_PKG = Path(__file__).resolve().parents[2] / "flinkcore" / "benchmarks"
sys.path.insert(0, str(BENCH_PKG))  # `import data`, `import reference` below

import data  # noqa: E402
import reference  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def events_for(workload: str, n: int):
    return data.events_for(workload, n)


def expected(workload: str, ev) -> tuple[int, float]:
    return reference.NUMPY[workload](ev.key, ev.value, ev.ts)


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_s(root: int | None = None) -> float:
    """utime+stime (+ reaped children's) of a process and all its live descendants, seconds."""
    total = 0
    for pid in _tree(root or os.getpid()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / CLK


def tree_peak_rss_mb(root: int | None = None) -> float:
    """Sum of VmHWM (peak RSS) over the process tree, in MiB."""
    kb = 0
    for pid in _tree(root or os.getpid()):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        kb += int(line.split()[1])
        except OSError:
            continue
    return kb / 1024.0


def reset_peak_rss() -> None:
    for pid in _tree(os.getpid()):
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


class Timer:
    """Wall and whole-tree CPU time of a block."""

    def __enter__(self):
        reset_peak_rss()
        self.w0, self.c0 = time.perf_counter(), tree_cpu_s()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = tree_cpu_s() - self.c0
        self.rss = tree_peak_rss_mb()
        return False


def net_of_startup(t: Timer, startup: Timer) -> tuple[float, float, str | None]:
    """(wall, cpu, note) of a JVM job with its start-up (a run on a small input) taken out.

    Start-up varies by seconds from job to job; when the difference would be under a quarter of
    the whole run it is noise, not processing time, so the whole run is reported instead
    (conservative: it understates the peer) and the note says so.
    """
    wall, cpu = t.wall - startup.wall, t.cpu - startup.cpu
    if wall < 0.25 * t.wall or cpu <= 0:
        return t.wall, t.cpu, "processing time within start-up noise: rate includes start-up"
    return wall, cpu, None


def record(workload, system, style, n, walls, cpus, results, checksum, rss, ev, **extra) -> dict:
    """The same record shape as flinkcore's bench, with the cross-check against numpy."""
    exp = expected(workload, ev)
    walls_s = sorted(walls)
    wall = walls_s[len(walls_s) // 2]
    cpu = sorted(cpus)[len(cpus) // 2]
    agrees = results == exp[0] and abs(checksum - exp[1]) <= 1e-9 * max(1.0, abs(exp[1]))
    rec = {
        "workload": workload,
        "system": system,
        "style": style,
        "n": n,
        "events_per_s": n / wall,
        "events_per_s_min": n / max(walls),
        "events_per_s_max": n / min(walls),
        "events_per_cpu_s": n / cpu if cpu else None,
        "wall_s": wall,
        "cpu_s": cpu,
        "repeats": len(walls),
        "results": int(results),
        "checksum": float(checksum),
        "peak_rss_mb": round(rss, 1),
        "agrees": agrees,
        "expected_results": exp[0],
        "expected_checksum": exp[1],
        "status": "ok",
    }
    rec.update(extra)
    return rec


def emit(rec: dict) -> None:
    print(json.dumps(rec), flush=True)


def load_module(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod
