"""W2's window-table work per batch as the columnar operators do it, for two builds of
``window_kernels`` side by side in ONE process (before/after of a kernel change).

Per 65,536-row batch of the workload's events (../../../shared/WORKLOADS.md): the watermark
generator's batch maximum, the table update at the current watermark with the late records found,
and a fire whenever the watermark passed another ``FIRE_MS`` of event time (the periodic watermark
of a running job fires a few windows at a time). A build whose table reports the batch's largest
timestamp and its late count (``last_max_ts``, ``last_late``) is fed as the operators feed it then
(no ``ts.max()`` pass, the late mask only when there are late records); an older build as before
(``ts.max()``, the mask of every batch and ``mask.any()``).

Streams: ``p1`` the whole input into one table (sum + count: W2's window at parallelism 1),
``local`` every other event (one worker's share at parallelism 2: its local pre-aggregation),
``global`` the partial sums and counts of both workers' local tables for the keys of one worker
(sum + sum: the merging window at parallelism 2).

    git archive <base> | tar -x -C /tmp/base && (cd /tmp/base && <venv>/bin/python setup.py -q \
        build_clib build_ext --inplace)
    taskset -c 0 .venv/bin/python bench/kernels/bench_w2_table_ab.py \
        /tmp/base/flinkcore/_core/window_kernels.*.so flinkcore/_core/window_kernels.*.so [N] [REPEATS]

Reports the best CPU time of interleaved repeats per stream and build, in ns per input row, and
checks that both builds give the same results.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import time

import numpy as np

from flinkcore.benchmarks.data import OUT_OF_ORDERNESS_MS, generate

BATCH = 1 << 16
FIRE_MS = 200  # event time between fires (~ a 200 ms periodic watermark at ~1M events/s)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def load(path: str, tag: str):
    name = "flinkcore._core.window_kernels"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    module.TAG = tag
    return module


def run(m, keys, ts, cols, aggs) -> tuple[int, float, int]:
    """Feed one stream in batches; returns (results, checksum of the first aggregate, late)."""
    t = m.WindowAggTable(1000, 1000, 0, aggs)
    reports = hasattr(t, "last_max_ts")
    name = aggs[0][2]
    hi, wm, fired_at, late_total, results, checksum = INT64_MIN, INT64_MIN, INT64_MIN, 0, 0, 0.0
    for i in range(0, len(keys), BATCH):
        k, s = keys[i : i + BATCH], ts[i : i + BATCH]
        v = [c[i : i + BATCH] for c in cols]
        if reports:
            n_late = t.update(k, s, v, watermark=wm)
            if n_late:
                late_total += int(t.late_mask(s, wm).sum())
            m_ts = t.last_max_ts
        else:
            m_ts = int(s.max())
            late = t.update(k, s, v, watermark=wm, return_late=True)
            if late.any():
                late_total += int(late.sum())
        hi = max(hi, m_ts)
        wm = max(wm, hi - OUT_OF_ORDERNESS_MS - 1)
        if wm - fired_at >= FIRE_MS:
            fired_at = wm
            out = t.fire(wm)
            results += len(out["key"])
            checksum += float(out[name].sum())
    out = t.fire(INT64_MAX)
    return results + len(out["key"]), checksum + float(out[name].sum()), late_total


def partials(m, keys, value, ts, owner: np.ndarray):
    """The global stream of worker 0: both workers' local partials (in the order a fire emits
    them: by window end, then key), the keys worker 0 owns, interleaved fire by fire."""
    streams = []
    for w in (0, 1):
        t = m.WindowAggTable(1000, 1000, 0, [("sum", 0, "p0"), ("count", 0, "p1")])
        k, v, s = keys[w::2], value[w::2], ts[w::2]
        fires = []
        hi, fired_at = INT64_MIN, INT64_MIN
        for i in range(0, len(k), BATCH):
            t.update(k[i : i + BATCH], s[i : i + BATCH], [v[i : i + BATCH]])
            hi = max(hi, int(s[i : i + BATCH].max()))
            wm = hi - OUT_OF_ORDERNESS_MS - 1
            if wm - fired_at >= FIRE_MS:
                fired_at = wm
                fires.append(t.fire(wm))
        fires.append(t.fire(INT64_MAX))
        streams.append(fires)
    parts = []
    for a, b in zip(*streams, strict=False):
        for out in (a, b):
            mine = owner[out["key"]]
            counts = out["p1"][mine].astype(np.float64)
            parts.append((out["key"][mine], out["window_end"][mine] - 1, out["p0"][mine], counts))
    keys_g = np.concatenate([p[0] for p in parts])
    ts_g = np.concatenate([p[1] for p in parts])
    return keys_g, ts_g, [np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts])]


def main() -> None:
    a_path, b_path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000_000
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    builds = [load(a_path, "A"), load(b_path, "B")]
    ev = generate(n)
    owner = np.zeros(10_000, dtype=bool)
    owner[np.random.default_rng(1).permutation(10_000)[:5_000]] = True  # half the keys, scattered
    kg, tg, cg = partials(builds[0], ev.key, ev.value, ev.ts, owner)
    streams = {
        "p1": (ev.key, ev.ts, [ev.value], [("sum", 0, "total"), ("count", 0, "n")], n),
        "local": (
            np.ascontiguousarray(ev.key[::2]),
            np.ascontiguousarray(ev.ts[::2]),
            [np.ascontiguousarray(ev.value[::2])],
            [("sum", 0, "p0"), ("count", 0, "p1")],
            (n + 1) // 2,
        ),
        "global": (kg, tg, cg, [("sum", 0, "total"), ("sum", 1, "n")], len(kg)),
    }
    print(
        f"N={n:,} ({len(kg):,} partials in worker 0's global stream), batches of {BATCH}, "
        f"fire every {FIRE_MS} ms"
    )
    print(f"A = {a_path}\nB = {b_path}")
    for name, (k, s, c, aggs, rows) in streams.items():
        best = {m.TAG: float("inf") for m in builds}
        results = {}
        for _ in range(repeats):
            for m in builds:
                c0 = time.process_time()
                out = run(m, k, s, c, aggs)
                best[m.TAG] = min(best[m.TAG], time.process_time() - c0)
                results.setdefault(m.TAG, out)
        ra, rb = results["A"], results["B"]
        same = ra[0] == rb[0] and ra[2] == rb[2] and abs(ra[1] - rb[1]) <= 1e-9 * max(1.0, abs(ra[1]))
        a_ns, b_ns = best["A"] / rows * 1e9, best["B"] / rows * 1e9
        print(
            f"  {name:7s} rows {rows:>11,}  A {a_ns:6.2f}  B {b_ns:6.2f} ns/row"
            f"  B/A {best['B'] / best['A']:.3f}  results {rb[0]:,} late {rb[2]:,}"
            f" {'same' if same else 'DIFFER'}"
        )
        if not same:
            raise SystemExit(f"{name}: the builds' results differ: {ra} vs {rb}")


if __name__ == "__main__":
    main()
