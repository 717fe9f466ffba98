"""The keyed writer tells a timestamps-and-watermarks operator right before it each Arrow batch's
largest timestamp (``reports_batch_max_ts``): the operator then makes no pass of its own over the
timestamps, and emits the watermarks it would have emitted from every timestamp."""

import operator

import pyarrow as pa

from flinkcore.common import Duration, WatermarkStrategy
from flinkcore.runtime.exchange import make_writer
from flinkcore.runtime.executor import Router
from flinkcore.runtime.graph import Partitioner
from flinkcore.runtime.operators.base import Input
from flinkcore.runtime.operators.watermarks import TimestampsAndWatermarksOperator
from flinkcore.runtime.testing import OneInputStreamOperatorTestHarness


class Channel(Input):
    accepts_columnar = True

    def __init__(self):
        self.rows, self.watermarks = [], []

    def process_batch(self, values, timestamps):
        keys = values.column("key").to_pylist() if not isinstance(values, list) else [v[0] for v in values]
        ts = [None] * len(keys) if timestamps is None else [int(t) for t in timestamps]
        self.rows.extend(zip(keys, ts, strict=True))

    def process_watermark(self, watermark):
        self.watermarks.append(watermark)

    def process_watermark_status(self, idle):
        pass

    def end_input(self):
        pass


def _batch(keys, ts):
    return pa.RecordBatch.from_arrays([pa.array(keys), pa.array(ts)], names=["key", "ts"])


def _hash(selector, n=2):
    chans = [Channel() for _ in range(n)]
    return make_writer(Partitioner("hash", key_selector=selector), chans, 0, 128, "w"), chans


def test_split_returns_the_batch_maximum():
    writer, chans = _hash(operator.itemgetter("key"))
    assert type(writer).reports_batch_max_ts
    keys, ts = list(range(40)), [(k * 37) % 101 - 20 for k in range(40)]
    assert writer.process_batch(_batch(keys, ts), pa.array(ts).to_numpy()) == max(ts)
    assert sorted(r for c in chans for r in c.rows) == sorted(zip(keys, ts, strict=True))
    assert all(c.rows for c in chans)  # both channels got rows: a real split
    # one key: every row to one channel (the batch goes on as it is)
    one = [9, -4, 12, 0, 1]
    assert writer.process_batch(_batch([3] * 5, one), pa.array(one).to_numpy()) == 12
    # no timestamps, no rows: nothing to report
    assert writer.process_batch(_batch([1, 2], [5, 6]), None) is None
    assert writer.process_batch(_batch([], []), pa.array([], pa.int64()).to_numpy()) is None


def test_batches_it_does_not_split_by_a_column_report_nothing():
    """A lambda key selector sees the batch's records as Rows (no native split): None, and the
    watermark operator then reads the timestamps itself."""
    writer, chans = _hash(lambda r: r[0])
    assert writer.process_batch(_batch([1, 2, 3], [7, 8, 9]), pa.array([7, 8, 9]).to_numpy()) is None
    assert sorted(r for c in chans for r in c.rows) == [(1, 7), (2, 8), (3, 9)]
    assert writer.process_batch([(1, 0)], [4]) is None


def _chain(selector):
    h = OneInputStreamOperatorTestHarness(
        TimestampsAndWatermarksOperator(
            WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(100)).with_timestamp_assigner(
                "ts"
            )
        ),
        config={"auto_watermark_interval": 200},
    )
    h.open()
    writer, chans = _hash(selector)
    router = Router([writer], {})
    router.bind()
    h.operator.output = router
    return h, writer, chans


def test_watermark_operator_takes_the_maximum_from_the_writer_with_the_same_watermarks():
    batches = [([1, 2, 3, 4], [5, 1000, 7, 3]), ([5, 6], [1500, 900]), ([7], [1200]), ([8, 9], [1300, 2000])]
    results = []
    for selector in (operator.itemgetter("key"), lambda r: r.key):
        h, writer, chans = _chain(selector)
        h.operator.process_batch(_batch(*batches[0]), None)
        # resolved to the writer either way; only the column split reports a maximum
        assert h.operator._batch_max_ts == writer.process_batch
        h.set_processing_time(200)
        h.operator.process_batch(_batch(*batches[1]), None)
        h.operator.process_batch(_batch(*batches[2]), None)
        h.set_processing_time(400)
        h.operator.process_batch(_batch(*batches[3]), None)
        h.set_processing_time(600)
        results.append(([sorted(c.rows) for c in chans], [c.watermarks for c in chans]))
    assert results[0] == results[1]
    rows, watermarks = results[0]
    assert sorted(r for c in rows for r in c) == sorted(
        (k, t) for keys, ts in batches for k, t in zip(keys, ts, strict=True)
    )
    assert watermarks == [[899, 1399, 1899]] * 2
