"""Before/after of the sink's columnar loop (``sink_loop.invoke_columns``) in ONE process: two builds
of the extension loaded side by side, over results shaped as W2's and W3's window results, with
the parallel bench's ``CountingSink`` (``invoke`` reads one field by name) and with an ``invoke``
that does nothing (what the loop itself costs: building each record, the call).

    git worktree add --detach /tmp/base <base> && cp flinkcore/_core/*.so /tmp/base/flinkcore/_core/ \
        && (cd /tmp/base && <this tree>/.venv/bin/python setup.py -q build_ext --inplace)
    taskset -c 0 .venv/bin/python bench/kernels/ab_sink_loop.py /tmp/base/flinkcore/_core/sink_loop.*.so \
        flinkcore/_core/sink_loop.*.so [--repeats 15]

W2: 1M results of tumbling windows (10,000 keys per window; window start and end shared by a
window's results; ``total`` a float; small counts), in batches of 100k (as the p2 driver receives
them). W3: 230k session results (keys up to 100,000; start and end differ per session; the
timestamp changes every ~6 results), batches of 10k. Best and median CPU ns per record of
interleaved repeats; both builds must see the same records.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import time

import numpy as np
import pyarrow as pa
from bench_sink_columnar import CountingSink  # this script's directory is on sys.path

from flinkcore.runtime.operators.arrow import record_columns


class Ctx:
    __slots__ = ("_ts",)


def noop(value, context=None) -> None:
    pass


def load(path: str):
    name = "flinkcore._core.sink_loop"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def w2_results(n: int = 1_000_000, per_batch: int = 100_000) -> list:
    rng = np.random.default_rng(7)
    window = np.arange(n, dtype=np.int64) // 10_000
    start = window * 1000 - 1000
    cols = [
        np.arange(n, dtype=np.int64) % 10_000,
        start,
        start + 1000,
        rng.random(n) * 50,
        rng.integers(1, 150, n),
    ]
    names = ["key", "window_start", "window_end", "total", "n"]
    return _batches(cols, names, start + 999, per_batch)


def w3_results(n: int = 230_000, per_batch: int = 10_000) -> list:
    rng = np.random.default_rng(7)
    start = np.sort(rng.integers(-50, 2200, n))
    end = start + rng.integers(400, 500, n)
    ts = np.repeat(np.arange(n // 6 + 1, dtype=np.int64), 6)[:n] + 400
    cols = [rng.integers(10, 100_000, n), start, end, rng.integers(1, 38, n)]
    return _batches(cols, ["key", "window_start", "window_end", "n"], ts, per_batch)


def _batches(cols: list, names: list, ts: np.ndarray, per_batch: int) -> list:
    out = []
    for a in range(0, len(ts), per_batch):
        b = pa.RecordBatch.from_arrays([pa.array(c[a : a + per_batch]) for c in cols], names=names)
        out.append((b, np.ascontiguousarray(ts[a : a + per_batch])))
    return out


def run(module, batches: list, invoke) -> float:
    pos = module.Position()
    ctx = Ctx()
    t0 = time.process_time()
    for batch, ts in batches:
        cls, columns = record_columns(batch)
        module.invoke_columns(pos, invoke, ctx, cls, columns, ts)
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    builds = {"before": load(args.before), "after": load(args.after)}
    for workload, batches, field in (("W2", w2_results(), "total"), ("W3", w3_results(), "n")):
        n = sum(b.num_rows for b, _ in batches)
        times: dict[tuple[str, str], list[float]] = {}
        checks = {}
        for _ in range(args.repeats):
            for label, module in builds.items():
                sink = CountingSink(field)
                times.setdefault((label, "CountingSink"), []).append(
                    run(module, batches, sink.invoke) / n * 1e9
                )
                checks.setdefault(label, set()).add((sink.results, sink.checksum))
                times.setdefault((label, "no-op invoke"), []).append(run(module, batches, noop) / n * 1e9)
        assert checks["before"] == checks["after"] and len(checks["after"]) == 1, checks
        print(f"{workload}: {n} results in {len(batches)} batches, best of {args.repeats} (median)")
        for sink in ("CountingSink", "no-op invoke"):
            b, a = (sorted(times[(label, sink)]) for label in builds)
            print(
                f"  {sink:13s} before {b[0]:6.1f} ({b[len(b) // 2]:6.1f})  after {a[0]:6.1f} "
                f"({a[len(a) // 2]:6.1f}) ns/record   before/after {b[0] / a[0]:.2f}x"
            )


if __name__ == "__main__":
    main()
