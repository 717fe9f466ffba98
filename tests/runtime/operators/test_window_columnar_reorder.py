"""A columnar session window fed by channels that drift apart in event time (one source seconds
ahead of another, as in a task slot at parallelism 2) holds the ahead channel's batches until the
other channel's records of that time arrive. That must change nothing a user can see: the same
sessions fire at the same watermark with the same contents, the same records are late, and a
snapshot taken while batches wait restores to the same results."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from flinkcore.common.types import Row
from flinkcore.runtime.operators import window_columnar
from flinkcore.runtime.operators.window_columnar import ColumnarWindowOperator, NativeWindowTable
from flinkcore.runtime.testing import KeyedOneInputStreamOperatorTestHarness

MAX = (1 << 63) - 1
GAP = 20
FIELDS = ["key", "window_start", "window_end", "n", "total", "low"]


def _op(aggs=None, reorder=True, coalesce=None):
    aggs = aggs or [("n", "count", "value"), ("total", "sum", "value"), ("low", "min", "value")]

    def table(size, slide, offset, table_aggs):
        t = NativeWindowTable(size, slide, offset, table_aggs, gap=GAP)
        if coalesce is not None:
            t.coalesce_rows = coalesce
        if not reorder:  # the reference: every batch into the table as it arrives
            t.coalesce_rows = 0
            t.reorder_horizon = None
        return t

    def make(key, start, end, values):
        return Row._named(FIELDS[: 3 + len(values)], (key, start, end, *values))

    return ColumnarWindowOperator(GAP, GAP, 0, "key", aggs, make, "late", table_factory=table)


def _channel(rng, start, n_batches, rows, late_share):
    """One channel's batches: keys 0..29, time advancing ~rows/4 ms a batch, some records behind."""
    out, t = [], start
    for _ in range(n_batches):
        keys = rng.integers(0, 30, rows)
        ts = t + rng.integers(0, rows // 4 + 1, rows)
        late = rng.random(rows) < late_share
        ts = np.where(late, ts - rng.integers(50, 400, rows), ts)
        # integer-valued floats: sums are exact in any order
        values = rng.integers(0, 100, rows).astype(np.float64)
        out.append((pa.RecordBatch.from_arrays([pa.array(keys), pa.array(values)], ["key", "value"]), ts))
        t += rows // 4
    return out


def _stream(seed, drift):
    """Two channels, channel 0 ``drift`` ms ahead, interleaved in arrival order; a watermark (the
    minimum over the channels' maxima, minus a bound) after some batches."""
    rng = np.random.default_rng(seed)
    ahead = _channel(rng, drift, 60, 40, 0.0)
    behind = _channel(rng, 0, 60, 40, 0.05)
    events, high = [], [-(1 << 62), -(1 << 62)]
    for i in range(60):
        for c, (b, ts) in ((0, ahead[i]), (1, behind[i])):
            events.append(("batch", b, ts))
            high[c] = max(high[c], int(ts.max()))
        if i % 3 == 2:
            events.append(("watermark", min(high) - 30))
    return events


def _feed(h, op, events):
    """Run ``events``; per watermark the results fired so far (sorted)."""
    fired = []
    for ev in events:
        if ev[0] == "batch":
            op.process_batch(ev[1], ev[2])
        else:
            h.process_watermark(ev[1])
            fired.append((ev[1], sorted(tuple(r) for r in h.extract_output_values())))
    return fired


def _run(op, events):
    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda r: r["key"])
    h.open()
    fired = _feed(h, op, events)
    h.process_watermark(MAX)
    fired.append((MAX, sorted(tuple(r) for r in h.extract_output_values())))
    return fired, sorted(tuple(r) for r in h.get_side_output_values("late")), op


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("drift", [0, 150, 700])
@pytest.mark.parametrize("coalesce", [None, 100])
def test_drifting_channels_fire_the_same_sessions_at_the_same_watermarks(seed, drift, coalesce):
    events = _stream(seed, drift)
    got, got_late, op = _run(_op(coalesce=coalesce), events)
    want, want_late, _ = _run(_op(reorder=False), events)
    assert got == want
    assert got_late == want_late
    assert want[-1][1] and want_late, "the data has sessions and late records"


def test_the_ahead_channel_waits_and_the_table_holds_fewer_sessions():
    events = _stream(1, 700)
    held, sizes = 0, {True: 0, False: 0}
    for reorder in (True, False):
        op = _op(reorder=reorder, coalesce=100)
        h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda r: r["key"])
        h.open()
        for ev in events:
            if ev[0] == "batch":
                op.process_batch(ev[1], ev[2])
                if reorder:
                    held = max(held, op._held_rows)
            else:
                h.process_watermark(ev[1])
            sizes[reorder] = max(sizes[reorder], len(op._table._t))
    assert held > 0, "batches of the channel 700 ms ahead waited"
    assert sizes[True] < sizes[False]


@pytest.mark.parametrize("coalesce", [None, 100])
def test_a_snapshot_while_batches_wait_restores_to_the_same_results(coalesce):
    events = _stream(4, 700)
    at = len(events) // 2
    while events[at][0] != "batch" or events[at - 1][0] != "batch":
        at += 1
    op = _op(coalesce=coalesce)
    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda r: r["key"])
    h.open()
    _feed(h, op, events[:at])
    assert op._pending, "batches wait at the snapshot"
    snap = h.snapshot()
    wm = max(ev[1] for ev in events[:at] if ev[0] == "watermark")
    restored = _op(coalesce=coalesce)
    h2 = KeyedOneInputStreamOperatorTestHarness(restored, key_selector=lambda r: r["key"])
    h2.initialize_state(snap)
    h2.open()
    h2.process_watermark(wm)  # the restored operator's watermark (nothing of it may fire again)
    _feed(h2, restored, events[at:])
    h2.process_watermark(MAX)
    got = sorted(tuple(r) for r in h.extract_output_values() + h2.extract_output_values())
    got_late = sorted(tuple(r) for r in h.get_side_output_values("late") + h2.get_side_output_values("late"))
    want, want_late, _ = _run(_op(reorder=False), events)
    assert got == want[-1][1]
    assert got_late == want_late


def test_first_and_last_keep_arrival_order():
    table = NativeWindowTable(GAP, GAP, 0, [("f", "first", "c0")], gap=GAP)
    assert table.reorder_horizon is None
    assert NativeWindowTable(GAP, GAP, 0, [("n", "count", "c0")], gap=GAP).reorder_horizon == GAP // 2
    assert NativeWindowTable(1000, 1000, 0, [("n", "count", "c0")]).reorder_horizon is None


def test_held_rows_are_bounded(monkeypatch):
    monkeypatch.setattr(window_columnar, "MAX_HELD_ROWS", 100)
    events = _stream(2, 700)
    op = _op(coalesce=50)
    h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda r: r["key"])
    h.open()
    for ev in events:
        if ev[0] == "batch":
            op.process_batch(ev[1], ev[2])
            assert op._held_rows <= 100
            assert op._pending_rows <= 100 + 50 + len(ev[1])
        else:
            h.process_watermark(ev[1])
    got, got_late, _ = _run(_op(coalesce=50), events)
    want, want_late, _ = _run(_op(reorder=False), events)
    assert (got, got_late) == (want, want_late)
