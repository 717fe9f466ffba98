"""W3's per-record session update (``window_udf.session_batch`` with the job's map, key selector
and reduce) over the key -> open session map: ``SessionMap`` (int keys as array slots) vs the
plain dicts the session operator kept before, alternating in one process.

    taskset -c 0 .venv/bin/python bench/kernels/bench_session_keys.py [--n 2000000] [--keys 100000]
        [--rounds 5] [--owned 1.0] [--unfused] [--builds A.so B.so]

W3's data (``flinkcore.benchmarks.data.events_for``: key uniform in [0, keys), ts = i // 1000,
10% of them up to 50 ms behind), in batches of 1024, watermark ts - 100 every batch, firing the
closed sessions (``due_sessions``) as the operator does. ``--owned 0.5``: only the keys of half
the key space (a p2 worker's share: key group < max_parallelism / 2). ``--unfused``: records
``(key, 1)`` as they come from the exchange at p2 (no map fused, the key read in C), else the
map ``lambda e: (e[0], 1)`` is fused as at p1. ``--builds A B``: the map layout of two builds of
window_udf (extension files) instead of dict vs map of this one. Prints CPU ns per record, each
variant's best and the ratio.
"""

from __future__ import annotations

import argparse
import gc
import importlib.machinery
import importlib.util
import time

from flinkcore._core import window_udf
from flinkcore.benchmarks.data import events_for
from flinkcore.state.key_groups import key_group_of

MIN_LONG = -(2**63)
GAP = 500


def load(path: str):
    """A build of window_udf from its extension file (its own module object)."""
    loader = importlib.machinery.ExtensionFileLoader("flinkcore._core.window_udf", path)
    spec = importlib.util.spec_from_file_location("flinkcore._core.window_udf", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def run_once(records, stamps, w, layout, unfused):
    single = w.SessionMap() if layout == "map" else {}
    multi = w.SessionMap() if layout == "map" else {}
    wheel: dict = {}
    cur = w.Cursor()
    reduce = lambda a, b: (a[0], a[1] + b[1])  # noqa: E731
    key_of = lambda e: e[0]  # noqa: E731
    pre = None if unfused else lambda e: (e[0], 1)  # noqa: E731
    key_index = 0 if unfused else -1
    wm = MIN_LONG
    fired = 0
    t0 = time.thread_time()
    for lo in range(0, len(records), 1024):
        values, ts = records[lo : lo + 1024], stamps[lo : lo + 1024]
        cur.reset()
        i = 0
        while i < len(values):
            i = w.session_batch(
                cur,
                values,
                ts,
                None,
                MIN_LONG,
                pre,
                i,
                key_of,
                key_index,
                GAP,
                wm,
                1,
                None,
                reduce,
                single,
                multi,
                wheel,
            )
            if i < len(values):  # merges and late records: the operator's Python path (rare)
                i += 1
        new_wm = cur.max_ts - 100
        if new_wm > wm:
            wm = new_wm
            due = sorted(b for b in wheel if b <= wm // GAP)
            if due:
                closed, others, _ = w.due_sessions(wheel, due, wm, GAP, single)
                fired += len(closed)
    return time.thread_time() - t0, fired


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--owned", type=float, default=1.0)
    ap.add_argument("--unfused", action="store_true")
    ap.add_argument("--builds", nargs=2, default=None)
    args = ap.parse_args()
    if args.builds:
        variants = {"A": (load(args.builds[0]), "map"), "B": (load(args.builds[1]), "map")}
    else:
        variants = {"dict": (window_udf, "dict"), "map": (window_udf, "map")}
    ev = events_for("W3", args.n)
    keys, ts = ev.key.tolist(), ev.ts.tolist()
    if args.keys != 100_000:
        keys = [k % args.keys for k in keys]
    records = [(k, 1) for k in keys]
    if args.owned < 1.0:
        limit = int(128 * args.owned)
        kept = [i for i, k in enumerate(keys) if key_group_of(k, 128) < limit]
        records, ts = [records[i] for i in kept], [ts[i] for i in kept]
    gc.disable()
    names = list(variants)
    best = dict.fromkeys(names, 1e9)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            cpu, fired = run_once(records, ts, *variants[name], args.unfused)
            best[name] = min(best[name], cpu)
            print(f"round {r} {name:4s} {cpu * 1e9 / len(records):6.1f} ns/record  fired {fired}", flush=True)
    n = len(records)
    a, b = names
    print(
        f"best: {a} {best[a] * 1e9 / n:.1f} {b} {best[b] * 1e9 / n:.1f} ns/record, "
        f"{a}/{b} {best[a] / best[b]:.2f}x ({n} records, {'unfused' if args.unfused else 'map fused'})"
    )


if __name__ == "__main__":
    main()
