"""What slows W3's session table in a p2 worker: the order of its rows, or the other memory the
worker streams through the caches between two table updates.

The table is fed one p2 worker's keys (the key groups subtask 0 owns at parallelism 2) in
32,768-row batches, a watermark every WM_EVERY ms of event time, and timed alone (CPU ms per run,
the table's calls only), in these variants, interleaved over ``--repeats`` rounds:

- ``source order``: the worker's rows as the source has them (what a key-split half sees);
- ``arrival order``: the same rows as a p2 worker gets them (its local and remote part of each
  source batch one after the other, as ``bench_exchange_session.py`` makes them);
- ``sorted by key``: source order with each batch stably sorted by key (the sort not timed);
- ``+ N MiB copied``: source order with N MiB of memory copied between two updates (``--mib``),
  as a worker's split, ring copy and decode stream memory between its table's updates.

    taskset -c 0 .venv/bin/python bench/kernels/bench_session_pollution.py --n 20000000
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

from flinkcore._core import window_kernels as wk  # noqa: E402
from flinkcore._core.partitioner import key_groups_int64  # noqa: E402
from flinkcore.benchmarks.data import events_for  # noqa: E402


def feed(parts: list, copy_mib: int = 0) -> tuple[float, int]:
    """CPU seconds in the table's calls over ``parts``, and the sessions fired; ``copy_mib`` MiB
    of memory copied between two updates (not timed)."""
    junk_src = np.ones(copy_mib << 17) if copy_mib else None
    junk = [np.empty_like(junk_src) for _ in range(4)] if copy_mib else []
    table = wk.SessionWindowTable(500, [("count", 0, "n")])
    wm, hi, next_wm, fired, spent = -(1 << 62), -(1 << 62), None, 0, 0.0
    for i, (keys, ts, vals) in enumerate(parts):
        if copy_mib:
            np.copyto(junk[i % 4], junk_src)
        c = time.process_time()
        table.update(keys, ts, [vals], watermark=wm, return_late=True)
        hi = max(hi, table.last_max_ts)
        if next_wm is None:
            next_wm = hi + WM_EVERY
        if i % 2 and hi >= next_wm:
            wm, next_wm = hi - 301, hi + WM_EVERY
            fired += len(table.fire(wm)["key"])
        spent += time.process_time() - c
    c = time.process_time()
    fired += len(table.fire(1 << 62)["key"])
    return spent + time.process_time() - c, fired


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mib", default="3,12", help="MiB copied between updates, comma-separated")
    args = ap.parse_args()
    events = events_for("W3", args.n)
    arrival: list = []
    run(events, -(-args.n // 2 // BATCH), arrival)  # worker 0's parts, as they arrive
    mine = key_groups_int64(events.key, 128).astype(np.int64) * 2 // 128 == 0
    k, t, v = (np.ascontiguousarray(c[mine]) for c in (events.key, events.ts, events.value))
    if set(np.unique(arrival[0][0]).tolist()) - set(np.unique(k).tolist()):
        raise SystemExit("the arrival parts are not subtask 0's keys")
    half = BATCH // 2
    source = [(k[a : a + half], t[a : a + half], v[a : a + half]) for a in range(0, len(k), half)]
    order = [np.argsort(p[0], kind="stable") for p in source]
    by_key = [tuple(np.ascontiguousarray(c[o]) for c in p) for p, o in zip(source, order, strict=True)]
    variants = {"source order": (source, 0), "arrival order": (arrival, 0), "sorted by key": (by_key, 0)}
    for mib in (int(x) for x in args.mib.split(",") if x):
        variants[f"+ {mib} MiB copied"] = (source, mib)
    times: dict[str, list[float]] = {name: [] for name in variants}
    fired = {}
    for _ in range(args.repeats):
        for name, (parts, mib) in variants.items():
            gc.collect()
            spent, fired[name] = feed(parts, mib)
            times[name].append(spent * 1e3)
    if len(set(fired.values())) != 1:
        raise SystemExit(f"the variants fire different numbers of sessions: {fired}")
    print(f"{len(k):,} rows of subtask 0's keys, {len(source)} batches, {fired['source order']:,} sessions")
    for name, ms in times.items():
        print(f"{name:>20}: min {min(ms):.0f} median {statistics.median(ms):.0f} ms")


if __name__ == "__main__":
    main()
