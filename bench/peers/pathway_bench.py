"""Pathway running WORKLOADS.md's W1, W2, W2-sparse, W3; run in bench/peers/.venvs/pathway.

Input: the events from a CSV file read in ``static`` mode (all rows in one commit, so this is
Pathway's batch path: no watermark); the result is a global reduce giving (results, checksum),
materialised with ``pw.debug.table_to_pandas``. The CSV is written before the clock starts.
Usage: python pathway_bench.py WORKLOAD N; prints one JSON record.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import pathway as pw
from common import Timer, emit, events_for, record


class Event(pw.Schema):
    key: int
    value: float
    ts: int


def build(workload: str, path: str):
    t = pw.io.csv.read(path, schema=Event, mode="static")
    if workload == "W1":
        out = t.select(key=pw.this.key, v=pw.this.value * 2.0).filter(pw.this.key % 2 == 0)
        return out.reduce(results=pw.reducers.count(), checksum=pw.reducers.sum(pw.this.v))
    if workload in ("W2", "W2-sparse"):
        # origin: elements before it are dropped; -1000 is a window boundary below every ts
        # (ts >= -50), so the windows are Flink's floor-aligned ones, window -1 included.
        w = t.windowby(t.ts, window=pw.temporal.tumbling(duration=1000, origin=-1000), instance=t.key).reduce(
            s=pw.reducers.sum(pw.this.value), c=pw.reducers.count()
        )
        return w.reduce(results=pw.reducers.count(), checksum=pw.reducers.sum(pw.this.s))
    if workload == "W3":
        # Pathway puts two events in one session when their distance is < max_gap; Flink merges
        # sessions whose gap-extended windows touch (distance <= 500): on integer ms that is 501.
        w = t.windowby(t.ts, window=pw.temporal.session(max_gap=501), instance=t.key).reduce(
            c=pw.reducers.count()
        )
        return w.reduce(results=pw.reducers.count(), checksum=pw.reducers.sum(pw.this.c))
    raise SystemExit(f"pathway: workload {workload} not written")


def main() -> None:
    workload, n = sys.argv[1], int(sys.argv[2])
    from importlib.metadata import version

    ev = events_for(workload, n)
    path = os.path.join(tempfile.mkdtemp(prefix="pathway-bench-"), "events.csv")
    with open(path, "w") as f:
        f.write("key,value,ts\n")
        np.savetxt(f, np.column_stack([ev.key, ev.value, ev.ts]), fmt=["%d", "%.17g", "%d"], delimiter=",")
    result = build(workload, path)
    with Timer() as t:
        df = pw.debug.table_to_pandas(result)
    emit(
        record(
            workload,
            f"pathway {version('pathway')}",
            "declarative (static CSV)",
            n,
            [t.wall],
            [t.cpu],
            int(df["results"].iloc[0]),
            float(df["checksum"].iloc[0]),
            t.rss,
            ev,
            input="CSV file, pw.io.csv.read(mode='static')",
        )
    )


if __name__ == "__main__":
    main()
