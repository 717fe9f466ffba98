"""A local pre-aggregation operator sends a fired pane in parts of at most SEND_CHUNK partials
(each part crosses the exchange while its accumulators are in the cache): together the parts are
exactly the pane's partials, each stamped with the pane's max timestamp, before the watermark."""

from __future__ import annotations

import pytest

from flinkcore.runtime.operators import local_agg
from flinkcore.runtime.operators.local_agg import LocalWindowAggregateOperator
from flinkcore.runtime.testing import OneInputStreamOperatorTestHarness


class _Out:
    def __init__(self) -> None:
        self.events: list = []

    def collect(self, values, timestamps):
        self.events.append(("batch", list(values), list(timestamps)))

    def emit_watermark(self, watermark):
        self.events.append(("wm", watermark))

    def collect_side(self, *args):
        raise AssertionError("no side output expected")


@pytest.mark.parametrize("keys", [list(range(2500)), [f"k{i}" for i in range(2500)]])
def test_a_fired_pane_goes_out_in_parts(keys):
    op = LocalWindowAggregateOperator(
        10, 0, 0, lambda: (0.0, 0), lambda v, a: (a[0] + v[1], a[1] + 1), lambda v: v[0]
    )
    h = OneInputStreamOperatorTestHarness(op)
    h.open()
    out = op.output = _Out()
    records = [(k, float(i % 7)) for i, k in enumerate(keys)] * 2
    op.process_batch(records, [3] * len(records))
    assert out.events == []
    op.process_watermark(9)
    batches = [e for e in out.events if e[0] == "batch"]
    assert out.events[-1] == ("wm", 9)
    assert len(batches) == -(-len(keys) // local_agg.SEND_CHUNK)
    assert all(len(b[1]) <= local_agg.SEND_CHUNK for b in batches)
    partials = [p for b in batches for p in b[1]]
    assert partials == [(k, (2 * float(i % 7), 2)) for i, k in enumerate(keys)]
    assert {t for b in batches for t in b[2]} == {9}
    assert op.partials_sent == len(keys)
