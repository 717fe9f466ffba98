"""Measuring one benchmark case: pinning, warm-up, repeats, CPU vs wall time, peak RSS.

A case is measured as WORKLOADS.md asks: pinned to one core, after a warm-up, at least three
times; the record carries the median and the spread (min..max) of throughput, the CPU time
next to the wall time (on a shared machine CPU time is the steadier figure), the peak RSS
during the timed runs, and the results count and checksum that cross-check systems.
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: (results, checksum) as every workload returns it.
Outcome = tuple[int, float]


def pin_to_core(core: int = 0) -> bool:
    """Pin this process to one core, as WORKLOADS.md requires; False where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(0, {core})
    except OSError:
        return False
    return True


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process, so a peak is per run.

    Linux supports this by writing 5 to /proc/self/clear_refs; elsewhere the peak is the
    process's lifetime peak (``ru_maxrss``) and the record says so.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB since the last reset."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if platform.system() == "Darwin" else rss / 1024.0


def latency_percentiles(latencies_ns: np.ndarray) -> dict[str, float]:
    """p50, p99 and p99.9 of latencies given in nanoseconds, in microseconds."""
    if len(latencies_ns) == 0:
        return {}
    p = np.percentile(np.asarray(latencies_ns, dtype=np.float64), [50, 99, 99.9]) / 1000.0
    return {"p50_us": float(p[0]), "p99_us": float(p[1]), "p999_us": float(p[2])}


@dataclass
class Measurement:
    """Timed repeats of one case plus what they produced."""

    workload: str
    system: str
    style: str
    n: int
    input: str
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    results: int = 0
    checksum: float = 0.0
    peak_rss_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """One flat JSON-able dict: the row of the table and of ``--json``."""
        wall = statistics.median(self.wall_s)
        cpu = statistics.median(self.cpu_s) if self.cpu_s else None
        rec: dict[str, Any] = {
            "workload": self.workload,
            "system": self.system,
            "style": self.style,
            "n": self.n,
            "events_per_s": self.n / wall if wall > 0 else None,
            "events_per_s_min": self.n / max(self.wall_s) if max(self.wall_s) > 0 else None,
            "events_per_s_max": self.n / min(self.wall_s) if min(self.wall_s) > 0 else None,
            "events_per_cpu_s": self.n / cpu if cpu else None,
            "wall_s": wall,
            "cpu_s": cpu,
            "repeats": len(self.wall_s),
            "results": self.results,
            "checksum": self.checksum,
            "peak_rss_mb": round(self.peak_rss_mb, 1) if self.peak_rss_mb is not None else None,
            "input": self.input,
        }
        rec.update(self.extra)
        return rec


class ChecksumMismatch(RuntimeError):
    """Repeats of one case (or two systems) disagreed on results or checksum."""


def checksums_agree(a: Outcome, b: Outcome, rel: float = 1e-9) -> bool:
    """Same result count, and checksums equal to float rounding (addition order differs)."""
    return a[0] == b[0] and abs(a[1] - b[1]) <= rel * max(1.0, abs(a[1]), abs(b[1]))


def measure(
    run: Callable[[Any], Outcome],
    prepared: Any,
    m: Measurement,
    repeats: int = 3,
    warmup: Any = None,
) -> Measurement:
    """Time ``run(prepared)`` ``repeats`` times after one untimed ``run(warmup)``.

    ``prepared`` is built before the clock starts (the input in the system's natural form).
    Wall time is ``perf_counter``; CPU time is ``process_time`` (all threads of this process).
    """
    if warmup is not None:
        run(warmup)
    first: Outcome | None = None
    peak = 0.0
    for _ in range(repeats):
        gc.collect()
        reset_peak_rss()
        w0, c0 = time.perf_counter(), time.process_time()
        outcome = run(prepared)
        w1, c1 = time.perf_counter(), time.process_time()
        peak = max(peak, peak_rss_mb())
        m.wall_s.append(w1 - w0)
        m.cpu_s.append(c1 - c0)
        if first is None:
            first = outcome
        elif not checksums_agree(first, outcome):
            raise ChecksumMismatch(f"{m.system}/{m.style} {m.workload}: repeat gave {outcome}, first {first}")
    assert first is not None
    m.results, m.checksum = int(first[0]), float(first[1])
    m.peak_rss_mb = peak
    return m


def machine() -> dict[str, Any]:
    """What the numbers were measured on: cores, CPU model, Python."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def format_rate(x: float | None) -> str:
    if x is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:.3g}"


COLUMNS = [
    ("workload", "workload"),
    ("system", "system"),
    ("style", "style"),
    ("n", "N"),
    ("events_per_s", "events/s"),
    ("spread", "spread (min-max)"),
    ("events_per_cpu_s", "events/CPU-s"),
    ("wall_s", "wall s"),
    ("cpu_s", "CPU s"),
    ("latency", "p50/p99 us"),
    ("peak_rss_mb", "peak RSS MiB"),
    ("results", "results"),
    ("checksum", "checksum"),
    ("agrees", "agrees"),
]


def _cell(rec: dict[str, Any], key: str) -> str:
    if key == "spread":
        return f"{format_rate(rec.get('events_per_s_min'))}-{format_rate(rec.get('events_per_s_max'))}"
    if key == "latency":
        if "p50_us" not in rec:
            return "-"
        return f"{rec['p50_us']:.3g}/{rec['p99_us']:.3g}"
    v = rec.get(key)
    if key == "agrees":
        return "-" if v is None else "yes" if v else "NO"
    if v is None:
        return "-"
    if key in ("events_per_s", "events_per_cpu_s"):
        return format_rate(v)
    if key in ("wall_s", "cpu_s"):
        return f"{v:.3f}"
    if key == "checksum":
        return f"{v:.6f}"
    return str(v)


def format_table(records: list[dict[str, Any]], markdown: bool = False) -> str:
    """A plain-text (or Markdown) table of records, one row per case."""
    heads = [h for _, h in COLUMNS]
    rows = [[_cell(r, k) for k, _ in COLUMNS] for r in records]
    if markdown:
        lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(heads)]
    out = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=False))]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join(out)
