"""The keyed exchange of columnar partials: Arrow batches keyed by small non-negative int keys
take each key's channel from a table built once per key (and grown as larger keys arrive) and
split with one stable sort; every row still goes where the per-record rule of key groups
(``operator_index_of``) sends it, in arrival order, with its timestamp and the batch's schema."""

from __future__ import annotations

import operator

import numpy as np
import pyarrow as pa
import pytest

from flinkcore.runtime.exchange import make_writer
from flinkcore.runtime.graph import Partitioner
from flinkcore.runtime.operators.base import Input
from flinkcore.state.key_groups import operator_index_of


class Collect(Input):
    def __init__(self):
        self.batches = []

    def process_batch(self, values, timestamps):
        self.batches.append((values, None if timestamps is None else np.asarray(timestamps)))

    def process_watermark(self, watermark):
        pass

    def end_input(self):
        pass


@pytest.mark.parametrize("n", [2, 3, 7])
@pytest.mark.parametrize("max_parallelism", [128, 4096])
def test_dense_int_keys_split_as_the_per_record_rule_in_order(n, max_parallelism):
    rng = np.random.default_rng(n)
    chans = [Collect() for _ in range(n)]
    writer = make_writer(
        Partitioner("hash", key_selector=operator.itemgetter("key")), chans, 0, max_parallelism, "w"
    )
    sent = []
    # key ranges that grow (the table grows), shrink, and a batch with a negative key (the
    # murmur path) in between
    for top, extra in [(50, None), (5_000, None), (300, None), (2_000, -3), (100_000, None)]:
        keys = rng.integers(0, top, 3_000, dtype=np.int64)
        if extra is not None:
            keys[17] = extra
        ts = rng.integers(0, 10**6, len(keys), dtype=np.int64)
        batch = pa.RecordBatch.from_arrays(
            [pa.array(keys), pa.array(np.arange(len(keys), dtype=np.float64) + len(sent))],
            names=["key", "value"],
        ).replace_schema_metadata({b"kind": b"row"})
        writer.process_batch(batch, ts)
        sent.extend(zip(keys.tolist(), batch.column("value").to_pylist(), ts.tolist(), strict=True))
    expected = [[] for _ in range(n)]
    for k, v, t in sent:
        expected[operator_index_of(k, max_parallelism, n)].append((k, v, t))
    for c, chan in enumerate(chans):
        got = []
        for values, ts in chan.batches:
            assert values.schema.metadata == {b"kind": b"row"}
            got.extend(
                zip(
                    values.column("key").to_pylist(),
                    values.column("value").to_pylist(),
                    ts.tolist(),
                    strict=True,
                )
            )
        assert got == expected[c]
