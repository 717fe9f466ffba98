"""A columnar session window collects small Arrow batches (a keyed exchange splits the source's
batches over its channels) into one native table update: nothing it holds may be lost or moved
past a watermark, a snapshot or the end of input."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from flinkcore.common.types import Row
from flinkcore.runtime.operators.window_columnar import ColumnarWindowOperator, NativeWindowTable
from flinkcore.runtime.testing import KeyedOneInputStreamOperatorTestHarness

MAX = (1 << 63) - 1
GAP = 5
FIELDS = ["key", "window_start", "window_end", "n", "total"]


def _op():
    def table(size, slide, offset, aggs):
        return NativeWindowTable(size, slide, offset, aggs, gap=GAP)

    aggs = [("n", "count", "value"), ("total", "sum", "value")]

    def make(key, start, end, values):
        return Row._named(FIELDS, (key, start, end, *values))

    return ColumnarWindowOperator(GAP, GAP, 0, "key", aggs, make, "late", table_factory=table)


def _batches(n_batches=40, rows=7, seed=3):
    rng = np.random.default_rng(seed)
    out = []
    t = 0
    for _ in range(n_batches):
        keys = rng.integers(0, 6, rows)
        ts = t + rng.integers(-4, 8, rows)  # some late once the watermark passed them
        t += 3
        out.append((pa.RecordBatch.from_arrays([pa.array(keys), pa.array(ts * 0.5)], ["key", "value"]), ts))
    return out


def _harness(op):
    return KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda r: r["key"])


def _results(h):
    return sorted(tuple(r) for r in h.extract_output_values()), sorted(
        tuple(r) for r in h.get_side_output_values("late")
    )


def test_small_batches_are_coalesced_and_flushed_before_each_watermark():
    op = _op()
    h = _harness(op)
    h.open()
    batches = _batches()
    for i, (b, ts) in enumerate(batches):
        op.process_batch(b, ts)
        if i % 5 == 4:
            assert op._pending, "small batches wait for more rows"
            h.process_watermark(int(ts.max()) + 2)
            assert not op._pending, "a watermark first processes what waits"
    h.process_watermark(MAX)
    got = _results(h)
    # the same batches one by one, each on its own table update (no coalescing)
    ref = _op()
    hr = _harness(ref)
    hr.open()
    ref._table.coalesce_rows = 0
    for i, (b, ts) in enumerate(batches):
        ref.process_batch(b, ts)
        if i % 5 == 4:
            hr.process_watermark(int(ts.max()) + 2)
    hr.process_watermark(MAX)
    assert got == _results(hr)
    assert got[0] and got[1], "the data has sessions and late records"


def test_a_snapshot_holds_what_waits():
    batches = _batches(seed=9)
    op = _op()
    h = _harness(op)
    h.open()
    for b, ts in batches[:20]:
        op.process_batch(b, ts)
    h.process_watermark(int(batches[19][1].max()) + 2)
    for b, ts in batches[20:25]:
        op.process_batch(b, ts)
    assert op._pending
    snap = h.snapshot()
    early = _results(h)
    restored = _op()
    h2 = _harness(restored)
    h2.initialize_state(snap)
    h2.open()
    for b, ts in batches[25:]:
        restored.process_batch(b, ts)
    h2.process_watermark(MAX)
    got = sorted(early[0] + _results(h2)[0]), sorted(early[1] + _results(h2)[1])

    whole = _op()
    hw = _harness(whole)
    hw.open()
    for b, ts in batches[:20]:
        whole.process_batch(b, ts)
    hw.process_watermark(int(batches[19][1].max()) + 2)
    for b, ts in batches[20:]:
        whole.process_batch(b, ts)
    hw.process_watermark(MAX)
    assert got == _results(hw)
