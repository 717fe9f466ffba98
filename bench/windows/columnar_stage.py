"""W2 / W3 on the columnar window path, fed Arrow batches as a columnar source would.

Measures the window stage alone (ColumnarWindowOperator / ColumnarSessionOperator) on
WORKLOADS.md data cut into Arrow record batches, with the bounded-out-of-orderness watermark
computed per batch from the timestamp column: what the columnar path costs once batches stay
columnar from the source to the window (the in-process runtime currently turns Arrow batches
into Rows at the source). Results and checksum must equal the numpy reference.

    taskset -c 0 .venv/bin/python bench/windows/columnar_stage.py W2|W3 [N] [batch_rows] [native|numpy]

``native`` (the default when the native core is built) runs the C window kernels; ``numpy`` the
numpy/Arrow tables that stand in when they are not built (and for integer aggregates).
"""

from __future__ import annotations

import math
import sys
import time
from itertools import repeat

import pyarrow as pa

from flinkcore.benchmarks.data import OUT_OF_ORDERNESS_MS, SESSION_GAP_MS, WINDOW_MS, events_for
from flinkcore.benchmarks.reference import w2_numpy, w3_numpy
from flinkcore.common.types import row_class
from flinkcore.runtime.operators.base import OperatorContext, Output
from flinkcore.runtime.operators.window_columnar import (
    ColumnarSessionOperator,
    ColumnarWindowOperator,
    NativeWindowTable,
    native_available,
)

MAX = (1 << 63) - 1


class CountingOutput(Output):
    def __init__(self) -> None:
        self.results = 0
        self.checksum = 0.0

    def collect(self, values, timestamps):
        self.results += len(values)
        # tuple.__getitem__: the Row's Python-level __getitem__ would dominate a sink this thin
        self.checksum += math.fsum(map(tuple.__getitem__, values, repeat(3))) if values else 0.0

    def collect_side(self, tag_id, values, timestamps):
        pass

    def emit_watermark(self, watermark):
        pass

    def emit_watermark_status(self, idle):
        pass

    def end_input(self):
        pass


def run(workload: str, table: pa.Table, batch_rows: int, native: bool) -> tuple[float, int, float]:
    new = tuple.__new__
    if workload == "W2":
        cls = row_class(("key", "window_start", "window_end", "total", "n"))
        aggs = [("total", "sum", "value"), ("n", "count", "value")]
    else:
        cls = row_class(("key", "window_start", "window_end", "n"))
        aggs = [("n", "count", "value")]

    def make(k, s, e, v):
        return new(cls, (k, s, e, *v))

    make.row_class, make.with_window = cls, True
    gap = None if workload == "W2" else SESSION_GAP_MS

    def native_table(size, slide, offset, table_aggs):
        return NativeWindowTable(size, slide, offset, table_aggs, gap=gap)

    if native:
        size = WINDOW_MS if gap is None else gap
        op = ColumnarWindowOperator(size, size, 0, "key", aggs, make, table_factory=native_table)
    elif workload == "W2":
        op = ColumnarWindowOperator(WINDOW_MS, WINDOW_MS, 0, "key", aggs, make)
    else:
        op = ColumnarSessionOperator(SESSION_GAP_MS, "key", aggs, make)
    out = CountingOutput()
    op.setup(OperatorContext("window"), out)
    op.open()
    batches = table.to_batches(max_chunksize=batch_rows)
    start = time.process_time()
    max_ts = -(1 << 63)
    for b in batches:
        ts = b.column("ts").to_numpy()
        op.process_batch(b, ts)
        max_ts = max(max_ts, int(ts.max()))
        op.process_watermark(max_ts - OUT_OF_ORDERNESS_MS - 1)
    op.process_watermark(MAX)
    return time.process_time() - start, out.results, out.checksum


def main() -> None:
    workload = sys.argv[1] if len(sys.argv) > 1 else "W2"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
    batch_rows = int(sys.argv[3]) if len(sys.argv) > 3 else 65_536
    native = (sys.argv[4] if len(sys.argv) > 4 else ("native" if native_available() else "numpy")) == "native"
    reference = {"W2": w2_numpy, "W3": w3_numpy}[workload]
    ev = events_for(workload, n)
    table = pa.table({"key": ev.key, "value": ev.value, "ts": ev.ts})
    want = reference(ev.key, ev.value, ev.ts)
    run(workload, table.slice(0, min(n, 200_000)), batch_rows, native)  # warm-up
    times = []
    for _ in range(3):
        t, results, checksum = run(workload, table, batch_rows, native)
        assert results == want[0] and abs(checksum - want[1]) < 1e-6 * max(1.0, abs(want[1])), (
            results,
            checksum,
            want,
        )
        times.append(t)
    times.sort()
    print(
        f"{workload} columnar window stage ({'native' if native else 'numpy'}): N={n} batch={batch_rows} "
        f"median {n / times[1] / 1e6:.1f}M events/CPU-s "
        f"(min-max {n / times[2] / 1e6:.1f}-{n / times[0] / 1e6:.1f}M) "
        f"results={results} checksum={checksum:.6f}"
    )
    start = time.process_time()
    for _ in range(3):
        reference(ev.key, ev.value, ev.ts)
    t_np = (time.process_time() - start) / 3
    print(
        f"numpy batch reference ({reference.__name__}) on the same arrays: {n / t_np / 1e6:.1f}M events/CPU-s"
    )


if __name__ == "__main__":
    main()
