"""The batch hash writer sends every record to the same subtask as the per-record writer."""

import operator

import numpy as np
import pyarrow as pa
import pytest

from flinkcore.common.types import row_class
from flinkcore.runtime.cluster.task import _VectorHash
from flinkcore.runtime.exchange import make_writer
from flinkcore.runtime.graph import Partitioner
from flinkcore.runtime.operators.base import Input


class Collect(Input):
    def __init__(self):
        self.values, self.timestamps = [], []

    def process_batch(self, values, timestamps):
        if not isinstance(values, list):
            values = values.column("key").to_pylist()
        self.values.extend(values)
        self.timestamps.extend([] if timestamps is None else list(timestamps))

    def process_watermark(self, watermark):
        pass

    def end_input(self):
        pass


def _route(writer_factory, values, timestamps, n):
    chans = [Collect() for _ in range(n)]
    writer_factory(chans).process_batch(values, timestamps)
    return [(c.values, c.timestamps) for c in chans]


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("selector", ["lambda", "field"])
def test_same_subtask_as_the_per_record_writer(n, selector):
    rng = np.random.default_rng(n)
    keys = rng.integers(-(2**62), 2**62, 500).tolist() + list(range(-50, 50))
    Row3 = row_class(("key", "value", "ts"))
    values = [tuple.__new__(Row3, (k, float(i), i)) for i, k in enumerate(keys)]
    ts = list(range(len(values)))
    ks = (lambda r: r[0]) if selector == "lambda" else operator.itemgetter("key")
    part = Partitioner("hash", key_selector=ks)
    expected = _route(lambda ch: make_writer(part, ch, 0, 128, "w"), values, ts, n)
    got = _route(lambda ch: _VectorHash(make_writer(part, ch, 0, 128, "w"), ch, ks, 128), values, ts, n)
    assert got == expected


def test_arrow_batches_split_by_key_group():
    keys = list(range(-300, 300))
    batch = pa.RecordBatch.from_arrays([pa.array(keys), pa.array([1.0] * 600)], names=["key", "value"])
    ks = operator.itemgetter("key")
    part = Partitioner("hash", key_selector=ks)
    rows = [tuple.__new__(row_class(("key", "value")), (k, 1.0)) for k in keys]
    expected = _route(lambda ch: make_writer(part, ch, 0, 128, "w"), rows, list(range(600)), 3)
    got = _route(
        lambda ch: _VectorHash(make_writer(part, ch, 0, 128, "w"), ch, ks, 128), batch, range(600), 3
    )
    assert [sorted(v) for v, _ in got] == [sorted(k for k, _ in v) for v, _ in expected]
    assert [sorted(t) for _, t in got] == [sorted(t) for _, t in expected]
