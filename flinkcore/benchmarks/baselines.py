"""The baselines measured in the same run as flinkcore: a pure-Python loop, numpy, and C.

The C program (``bench/baselines/workloads.c`` in the source tree) is compiled by the bench
itself with ``cc -O3`` and run as a child process that times itself after loading the events
from a file, so its numbers are the single-core limit of the same streaming algorithm.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import reference
from .data import Events
from .harness import Measurement

#: Where the C source lives in a source checkout (it is not part of the installed package).
DEFAULT_C_SOURCE = Path(__file__).resolve().parents[2] / "bench" / "baselines" / "workloads.c"

#: Workload -> the C program's workload argument.
C_WORKLOADS = {"W1": "W1", "W2": "W2", "W2-sparse": "W2", "W3": "W3", "W4": "W4"}


def find_c_source(path: str | os.PathLike | None = None) -> Path | None:
    """The C baseline's source: the given path, $FLINKCORE_BENCH_C, or the source checkout's."""
    for candidate in (path, os.environ.get("FLINKCORE_BENCH_C"), DEFAULT_C_SOURCE):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def compile_c(source: Path, cache_dir: Path | None = None) -> Path:
    """Compile the C baseline with ``cc -O3`` once per source version; return the binary."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise RuntimeError("the C baseline needs a C compiler: set CC or install cc")
    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:12]
    cache = cache_dir or Path(tempfile.gettempdir()) / "flinkcore-bench"
    cache.mkdir(parents=True, exist_ok=True)
    binary = cache / f"workloads-{digest}"
    if not binary.exists():
        tmp = binary.with_suffix(".tmp")
        subprocess.run([cc, "-O3", "-std=c99", "-o", str(tmp), str(source), "-lm"], check=True)
        tmp.replace(binary)
    return binary


def run_c(workload: str, events: Events, repeats: int, source: Path) -> Measurement:
    """Run the C baseline: one warm-up repeat, then ``repeats`` timed ones, in a child process.

    The child inherits this process's CPU affinity, so it runs on the same pinned core.
    """
    binary = compile_c(source)
    n = len(events)
    with tempfile.NamedTemporaryFile(prefix="flinkcore-bench-", suffix=".bin") as f:
        f.write(events.key.tobytes())
        f.write(events.value.tobytes())
        f.write(events.ts.tobytes())
        f.flush()
        out = subprocess.run(
            [str(binary), C_WORKLOADS[workload], f.name, str(n), str(repeats + 1)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    runs = [json.loads(line) for line in out.splitlines() if line.strip()][1:]  # first = warm-up
    m = Measurement(workload, "c -O3", "baseline", n, "arrays in memory (read from a file first)")
    m.wall_s = [r["wall_s"] for r in runs]
    m.cpu_s = [r["cpu_s"] for r in runs]
    m.results, m.checksum = runs[0]["results"], float(runs[0]["checksum"])
    m.peak_rss_mb = max(r["peak_rss_kb"] for r in runs) / 1024.0
    return m


def python_case(workload: str):
    """(prepare, run, input description) of the pure-Python streaming loop."""
    fn = reference.PYTHON[workload]
    return (lambda ev: ev.tuples()), fn, "list of tuples"


def numpy_case(workload: str):
    """(prepare, run, input description) of the numpy batch version."""
    fn = reference.NUMPY[workload]
    return (lambda ev: (ev.key, ev.value, ev.ts)), (lambda a: fn(*a)), "numpy arrays (batch)"
