"""The window table's fire, as W2's columnar operators call it, for two builds of
``window_kernels`` side by side in ONE process (before/after of a fire change).

A table of 1 s tumbling windows over 10,000 keys, every key in each of ``WINDOWS`` windows, is
fired at once; only the fire and the Python steps its caller takes on the columns are timed:

- ``p1``: the one-phase window (sum + count): key, start, end, aggregates, and the results'
  timestamps (end - 1).
- ``local``: the local pre-aggregation at parallelism 2 (sum + count of panes): keys, aggregates
  and the partials' timestamps (end - 1); start and end are not read.
- ``global``: the merging window (sum of value partials + sum of count partials): as ``p1``, the
  count out as int64.

A build whose ``fire`` takes the column options (keys/starts/ends/max_ts/int_sums) is called with
them; an older build is called as the operators called it (``fire(wm)``, ``ends - 1``,
``astype(np.int64)``).

    git worktree add --detach /tmp/base <rev> && cp flinkcore/_core/*.so /tmp/base/flinkcore/_core/ \\
        && (cd /tmp/base && <venv>/bin/python setup.py -q build_clib build_ext --inplace)
    taskset -c 0 .venv/bin/python bench/kernels/bench_fire_emit.py \\
        /tmp/base/flinkcore/_core/window_kernels.*.so flinkcore/_core/window_kernels.*.so [WINDOWS] [REPEATS]

Reports the best CPU time per fired row of interleaved repeats, and checks the builds agree.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from bench_w2_table_ab import load  # loads a build of window_kernels under its own tag

KEYS = 10_000


def new_api(m) -> bool:
    t = m.WindowAggTable(1000, 1000, 0, [("sum", 0, "s")])
    try:
        t.fire(0, max_ts=True)
    except TypeError:
        return False
    return True


def fire(m, stream: str, t, wm: int) -> tuple:
    """The fire and its caller's column steps; returns what the caller would send on."""
    if m.NEW:
        if stream == "local":
            out = t.fire(wm, starts=False, ends=False, max_ts=True)
            return out["key"], out["p0"], out["p1"], out["max_ts"]
        if stream == "global":
            out = t.fire(wm, max_ts=True, int_sums=("n",))
            return out["key"], out["window_start"], out["window_end"], out["total"], out["n"], out["max_ts"]
        out = t.fire(wm, max_ts=True)
        return out["key"], out["window_start"], out["window_end"], out["total"], out["n"], out["max_ts"]
    out = t.fire(wm)
    if stream == "local":
        ts = out["window_end"]
        np.subtract(ts, 1, out=ts)
        return out["key"], out["p0"], out["p1"], ts
    if stream == "global":
        out["n"] = out["n"].astype(np.int64)
    return out["key"], out["window_start"], out["window_end"], out["total"], out["n"], out["window_end"] - 1


def main() -> None:
    a_path, b_path = sys.argv[1], sys.argv[2]
    windows = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 30
    builds = [load(a_path, "A"), load(b_path, "B")]
    for m in builds:
        m.NEW = new_api(m)
    rng = np.random.default_rng(7)
    rows = KEYS * windows
    keys = np.tile(rng.permutation(KEYS).astype(np.int64), windows)
    ts = np.repeat(np.arange(windows, dtype=np.int64) * 1000, KEYS) + rng.integers(0, 1000, rows)
    value = rng.random(rows)
    counts = rng.integers(1, 1000, rows).astype(np.float64)
    specs = {
        "p1": ([("sum", 0, "total"), ("count", 0, "n")], [value]),
        "local": ([("sum", 0, "p0"), ("count", 0, "p1")], [value]),
        "global": ([("sum", 0, "total"), ("sum", 1, "n")], [value, counts]),
    }
    wm = windows * 1000
    print(f"{KEYS:,} keys x {windows} windows = {rows:,} rows per fire, {repeats} repeats")
    print(f"A = {a_path} (column options: {builds[0].NEW})\nB = {b_path} (column options: {builds[1].NEW})")
    for stream, (aggs, cols) in specs.items():
        best = {m.TAG: float("inf") for m in builds}
        results = {}
        for _ in range(repeats):
            for m in builds:
                t = m.WindowAggTable(1000, 1000, 0, aggs)
                t.update(keys, ts, cols)
                c0 = time.process_time()
                got = fire(m, stream, t, wm)
                best[m.TAG] = min(best[m.TAG], time.process_time() - c0)
                results.setdefault(m.TAG, got)
        pairs = zip(results["A"], results["B"], strict=True)
        same = all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in pairs)
        a_ns, b_ns = best["A"] / rows * 1e9, best["B"] / rows * 1e9
        print(
            f"  {stream:7s} A {a_ns:6.2f}  B {b_ns:6.2f} ns/row  B/A {best['B'] / best['A']:.3f}"
            f"  {'same' if same else 'DIFFER'}"
        )
        if not same:
            raise SystemExit(f"{stream}: the builds' outputs differ")


if __name__ == "__main__":
    main()
