"""W2 through the window kernel alone vs a hand-written C loop over the same arrays, in one run.

W2 (../shared/WORKLOADS.md): keys uniform in [0, 10_000), 1 s tumbling event-time windows, SUM(value)
and COUNT(*), watermark = max timestamp - 100 ms (bounded out-of-orderness), fed in batches of BATCH
events; after each batch the finished windows are fired. The C baseline is the obvious streaming
implementation (open-addressing table of (key, window) -> sum, count; fire = scan and emit, unsorted),
compiled here with ``cc -O3`` and called through ctypes, once per batch like the kernel.

Run: taskset -c 0 .venv/bin/python bench/kernels/bench_window.py [N]
     taskset -c 0 .venv/bin/python -m pytest bench/kernels/bench_window.py --benchmark-only
"""

from __future__ import annotations

import ctypes
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

from flinkcore._core.window_kernels import SessionWindowTable, WindowAggTable

BATCH = 65_536
BASELINE_C = pathlib.Path(__file__).with_name("w2_baseline.c")


def w2_data(n: int, nkeys: int = 10_000, divisor: int = 1000):
    """The WORKLOADS.md generator, verbatim in its draw order."""
    rng = np.random.default_rng(42)
    key = rng.integers(0, nkeys, n, dtype=np.int64)
    value = rng.random(n)
    late = rng.random(n) < 0.1
    jitter = rng.integers(0, 51, n, dtype=np.int64)
    ts = np.arange(n, dtype=np.int64) // divisor - np.where(late, jitter, 0)
    return key, value, ts


def build_baseline():
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="fc_w2_baseline_"))
    lib = tmp / "w2_baseline.so"
    subprocess.run(["cc", "-O3", "-shared", "-fPIC", "-std=c99", str(BASELINE_C), "-o", str(lib)], check=True)
    c = ctypes.CDLL(str(lib))
    c.tb_new.restype = ctypes.c_void_p
    c.tb_free.argtypes = [ctypes.c_void_p]
    c.tb_update.argtypes = [ctypes.c_void_p] + [ctypes.c_void_p] * 3 + [ctypes.c_size_t]
    c.tb_fire.restype = ctypes.c_size_t
    c.tb_fire.argtypes = [ctypes.c_void_p, ctypes.c_int64] + [ctypes.c_void_p] * 4
    return c


def watermarks(ts: np.ndarray) -> np.ndarray:
    """The bounded-out-of-orderness watermark after each batch: max ts so far - 100 - 1."""
    maxes = np.maximum.reduceat(ts, np.arange(0, len(ts), BATCH))
    return np.maximum.accumulate(maxes) - 100 - 1


def run_kernel(key, value, ts, wms):
    t = WindowAggTable(1000, 1000, 0, [("sum", 0), ("count", None, "n")])
    windows, checksum = 0, 0.0
    for b, i in enumerate(range(0, len(key), BATCH)):
        t.update(key[i : i + BATCH], ts[i : i + BATCH], [value[i : i + BATCH]])
        out = t.fire(int(wms[b]))
        windows += len(out["key"])
        checksum += float(out["sum_0"].sum())
    out = t.fire(2**63 - 1)
    return windows + len(out["key"]), checksum + float(out["sum_0"].sum())


def run_baseline(c, key, value, ts, wms):
    p = c.tb_new()
    cap = len(key) + 1
    ok, os_, ocnt = (np.empty(cap, dtype=np.int64) for _ in range(3))
    osum = np.empty(cap, dtype=np.float64)
    ptrs = [a.ctypes.data for a in (ok, os_, osum, ocnt)]
    kp, vp, tp = key.ctypes.data, value.ctypes.data, ts.ctypes.data
    windows, checksum = 0, 0.0
    for b, i in enumerate(range(0, len(key), BATCH)):
        m = min(BATCH, len(key) - i)
        c.tb_update(p, kp + 8 * i, tp + 8 * i, vp + 8 * i, m)
        n = c.tb_fire(p, int(wms[b]), *ptrs)
        windows += n
        checksum += float(osum[:n].sum())
    n = c.tb_fire(p, 2**63 - 1 - 1000, *ptrs)
    c.tb_free(p)
    return windows + n, checksum + float(osum[:n].sum())


def run_sessions(key, ts, gap=500):
    t = SessionWindowTable(gap, [("count", None, "n")])
    wms = watermarks(ts)
    windows = 0
    for b, i in enumerate(range(0, len(key), BATCH)):
        t.update(key[i : i + BATCH], ts[i : i + BATCH])
        windows += len(t.fire(int(wms[b]))["key"])
    return windows + len(t.fire(2**63 - 1)["key"])


def test_w2_kernel(benchmark):
    key, value, ts = w2_data(2_000_000)
    wms = watermarks(ts)
    benchmark.extra_info["events"] = len(key)
    benchmark(run_kernel, key, value, ts, wms)


def test_w2_c_baseline(benchmark):
    key, value, ts = w2_data(2_000_000)
    wms = watermarks(ts)
    c = build_baseline()
    benchmark.extra_info["events"] = len(key)
    benchmark(run_baseline, c, key, value, ts, wms)


def main(n: int = 10_000_000) -> None:
    c = build_baseline()
    print(f"W2 kernel-only, N={n:,}, batches of {BATCH}")
    for label, divisor in (("W2", 1000), ("W2-sparse", 10)):
        key, value, ts = w2_data(n, divisor=divisor)
        wms = watermarks(ts)
        rk = run_kernel(key, value, ts, wms)
        rb = run_baseline(c, key, value, ts, wms)
        assert rk[0] == rb[0] and abs(rk[1] - rb[1]) <= 1e-6 * abs(rb[1]), (rk, rb)
        best = {"kernel": 1e9, "c-loop": 1e9}
        for _ in range(5):
            for name, fn, args in (
                ("kernel", run_kernel, (key, value, ts, wms)),
                ("c-loop", run_baseline, (c, key, value, ts, wms)),
            ):
                t0 = time.perf_counter()
                fn(*args)
                best[name] = min(best[name], time.perf_counter() - t0)
        kernel, cloop = n / best["kernel"] / 1e6, n / best["c-loop"] / 1e6
        print(
            f"  {label:9s} windows={rk[0]:,} checksum={rk[1]:.3f}  kernel {kernel:6.1f}M ev/s  "
            f"C loop {cloop:6.1f}M ev/s  kernel/C time ratio {best['kernel'] / best['c-loop']:.2f}"
        )
    key3, _, ts3 = w2_data(n, nkeys=100_000)
    t0 = time.perf_counter()
    sessions = run_sessions(key3, ts3)
    dt = time.perf_counter() - t0
    print(f"  W3 sessions (gap 500 ms, 100k keys) {n / dt / 1e6:6.1f}M ev/s, {sessions:,} sessions")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
