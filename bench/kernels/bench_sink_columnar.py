"""A columnar batch into a per-record sink: SinkOperator's own loop over the columns
(``sink_loop.invoke_columns``: build a record, set the timestamp, invoke, free it) against the
path it replaces (``RowsInput``: the batch as a list of Rows and a list of timestamps, then the
list loop ``invoke_all``, then both lists freed), measured in one run.

The batch is shaped as W2's window results (``key, window_start, window_end, total, n``: 10,000
keys per window, the timestamp ``window_end - 1``) and the sink is the parallel bench's
``CountingSink`` (a Python ``invoke`` reading one field by name). "floor" is ``invoke_all`` over
Rows and timestamps built beforehand (what the user's function and the call loop cost alone:
neither building nor freeing the records is in it). Rates are ns per record of process time,
best of 7 alternating repeats; the 1M-row batch is what the p1 W2 job at 100M events hands its
sink (all results of a bounded run fire at its end), 10k is one window's firing.

Run: taskset -c 0 .venv/bin/python bench/kernels/bench_sink_columnar.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import pyarrow as pa

from flinkcore._core import sink_loop
from flinkcore.runtime.columnar import RowsInput, timestamps_list
from flinkcore.runtime.operators.arrow import record_batch_to_rows
from flinkcore.runtime.operators.udf import SinkOperator
from flinkcore.runtime.testing import OneInputStreamOperatorTestHarness

KEYS = 10_000


class CountingSink:
    """As bench/parallel/jobs.py's: counts results and adds up one field."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.results = 0
        self.checksum = 0.0

    def invoke(self, value, context=None) -> None:
        self.results += 1
        f = self.field
        self.checksum += value[f] if isinstance(f, int) else getattr(value, f)


def w2_results(n: int) -> tuple[pa.RecordBatch, np.ndarray]:
    rng = np.random.default_rng(7)
    window = np.arange(n, dtype=np.int64) // KEYS
    start = window * 1000
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(np.arange(n, dtype=np.int64) % KEYS),
            pa.array(start),
            pa.array(start + 1000),
            pa.array(rng.random(n) * 100),
            pa.array(rng.integers(1, 200, n)),
        ],
        names=["key", "window_start", "window_end", "total", "n"],
    )
    return batch, start + 999


def sink() -> tuple[SinkOperator, CountingSink]:
    s = CountingSink("total")
    op = SinkOperator(s.invoke, s)
    OneInputStreamOperatorTestHarness(op).open()
    return op, s


def run_new(batch, ts):
    op, s = sink()
    assert op.accepts_columnar
    return s, op.process_batch, (batch, ts)


def run_old(batch, ts):
    op, s = sink()
    return s, RowsInput(op).process_batch, (batch, ts)


def run_floor(batch, ts, prepared):
    op, s = sink()
    rows, tss = prepared
    return s, sink_loop.invoke_all, (op._position, s.invoke, op.sink_context, rows, tss)


def timed(fn, *args) -> tuple[float, float, object]:
    """Process and wall time of one batch through the sink (the sink's set-up not included)."""
    s, call, call_args = fn(*args)
    gc.collect()
    c0, w0 = time.process_time(), time.perf_counter()
    call(*call_args)
    return time.process_time() - c0, time.perf_counter() - w0, s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--sizes", default="10000,1000000")
    args = ap.parse_args()
    for n in [int(x) for x in args.sizes.split(",")]:
        batch, ts = w2_results(n)
        prepared = (record_batch_to_rows(batch), timestamps_list(ts))
        best: dict[str, list[float]] = {
            "old (RowsInput + invoke_all)": [],
            "new (invoke_columns)": [],
            "floor": [],
        }
        rounds = max(1, 2_000_000 // n)  # ~2M records per measurement
        checks = set()
        for _ in range(args.repeats):
            for name, fn, extra in (
                ("old (RowsInput + invoke_all)", run_old, ()),
                ("new (invoke_columns)", run_new, ()),
                ("floor", run_floor, (prepared,)),
            ):
                cpu = wall = 0.0
                for _ in range(rounds):
                    c, w, s = timed(fn, batch, ts, *extra)
                    cpu += c
                    wall += w
                    checks.add((name != "floor", s.results, round(s.checksum, 6)))
                best[name].append((cpu / (rounds * n) * 1e9, wall / (rounds * n) * 1e9))
        assert len({c[1:] for c in checks}) == 1, checks  # every path saw the same records
        print(f"batch of {n} rows ({rounds} batches per measurement, best of {args.repeats}):")
        old = min(c for c, _ in best["old (RowsInput + invoke_all)"])
        for name, vals in best.items():
            cpu = min(c for c, _ in vals)
            wall = min(w for _, w in vals)
            med = sorted(c for c, _ in vals)[len(vals) // 2]
            print(
                f"  {name:30s} {cpu:7.1f} ns/record CPU (median {med:6.1f}), wall {wall:7.1f}"
                f"   old/this {old / cpu:4.2f}x"
            )


if __name__ == "__main__":
    main()
