"""Two builds of the native session table (``window_kernels`` .so files) on the same W3 inputs,
interleaved in one process: a p1 stream (every key, the source's 65,536-row batches) and one p2
worker's stream (its 50k keys, the local and the remote part of each source batch one after the
other, as ``bench_exchange_session.py`` makes it), a watermark every WM_EVERY ms of event time
(300 ms behind the records, as the job's periodic one); and a stream where every row opens a new
session (1000 keys, each about 1 s apart: the general merge rather than a session growing in
place), a quarter of ``--n`` rows. Prints CPU ms per run of each build and checks that both fire
the same sessions with the same counts::

    taskset -c 0 .venv/bin/python bench/kernels/bench_session_table_ab.py \\
        /tmp/base/flinkcore/_core/window_kernels.cpython-311-x86_64-linux-gnu.so \\
        flinkcore/_core/window_kernels.cpython-311-x86_64-linux-gnu.so --repeats 7
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_exchange_session import BATCH, WM_EVERY, run  # noqa: E402
from bench_w2_table_ab import load  # noqa: E402

from flinkcore.benchmarks.data import events_for  # noqa: E402


def feed(m, parts: list, per_fire: int) -> tuple[float, int, int]:
    """CPU seconds to feed ``parts`` (a watermark after every ``per_fire`` parts at most), and the
    sessions fired and their records."""
    table = m.SessionWindowTable(500, [("count", 0, "n")])
    wm, hi, next_wm = -(1 << 62), -(1 << 62), None
    fired = records = 0
    c = time.process_time()
    for i, (keys, ts, vals) in enumerate(parts):
        table.update(keys, ts, [vals], watermark=wm, return_late=True)
        hi = max(hi, table.last_max_ts)
        if (i + 1) % per_fire:
            continue
        if next_wm is None:
            next_wm = hi + WM_EVERY
        if hi >= next_wm:
            wm, next_wm = hi - 301, hi + WM_EVERY
            out = table.fire(wm)
            fired += len(out["key"])
            records += int(out["n"].sum())
    out = table.fire(1 << 62)
    elapsed = time.process_time() - c
    return elapsed, fired + len(out["key"]), records + int(out["n"].sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", help="window_kernels .so of build A")
    ap.add_argument("b", help="window_kernels .so of build B")
    ap.add_argument("--n", type=int, default=20_000_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    builds = {"A": load(args.a, "A"), "B": load(args.b, "B")}
    events = events_for("W3", args.n)
    p2: list = []
    run(events, -(-args.n // 2 // BATCH), p2)
    p1 = [
        (events.key[a : a + BATCH], events.ts[a : a + BATCH], events.value[a : a + BATCH])
        for a in range(0, args.n, BATCH)
    ]
    rng = np.random.default_rng(3)
    m = args.n // 4
    sparse_keys, sparse_ts = rng.integers(0, 1000, m, dtype=np.int64), np.arange(m, dtype=np.int64)
    sparse_vals = rng.random(m)
    sparse = [
        (sparse_keys[a : a + BATCH], sparse_ts[a : a + BATCH], sparse_vals[a : a + BATCH])
        for a in range(0, m, BATCH)
    ]
    streams = (("p1 stream", p1, 1), ("p2 worker 0", p2, 2), ("a new session per row", sparse, 1))
    for label, parts, per_fire in streams:
        times: dict[str, list[float]] = {"A": [], "B": []}
        results = {}
        for r in range(args.repeats):
            for tag in "AB" if r % 2 == 0 else "BA":
                gc.collect()
                t, fired, records = feed(builds[tag], parts, per_fire)
                times[tag].append(t * 1e3)
                results.setdefault(tag, (fired, records))
        same = results["A"] == results["B"]
        print(
            f"{label}: "
            + "  ".join(
                f"{tag} min {min(v):.0f} median {statistics.median(v):.0f} ms "
                f"({' '.join(f'{x:.0f}' for x in v)})"
                for tag, v in times.items()
            )
            + f"  sessions, records {results['A']} {'same' if same else 'DIFFER ' + str(results['B'])}",
            flush=True,
        )
        if not same:
            raise SystemExit("the builds fire different sessions")


if __name__ == "__main__":
    main()
