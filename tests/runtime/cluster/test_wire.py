"""Batches survive the trip between processes: records, their types and their timestamps."""

import pyarrow as pa

from flinkcore.common.types import Row, row_class
from flinkcore.runtime.cluster.wire import decode_batch, encode_batch


def _trip(values, timestamps):
    return decode_batch(memoryview(encode_batch(values, timestamps)))


def test_named_rows_travel_by_column_and_keep_types():
    R = row_class(("k", "v", "s", "big"))
    values = [tuple.__new__(R, (i, i * 0.5, f"s{i}", 2**70 + i)) for i in range(50)]
    got, ts = _trip(values, list(range(50)))
    assert got == values and ts == list(range(50))
    assert all(type(r).__name__ == "Row" and r._fields == R._fields for r in got)
    assert type(got[0][0]) is int and type(got[0][1]) is float


def test_mixed_columns_and_rows_fall_back_to_the_record_format():
    R = row_class(("a", "b"))
    values = [tuple.__new__(R, (1 if i % 2 else 1.5, None)) for i in range(20)]
    got, _ = _trip(values, None)
    assert got == values and [type(r[0]) for r in got] == [type(r[0]) for r in values]
    mixed = values[:10] + [Row(1, 2)] + [("t", 1)] * 10
    got, ts = _trip(mixed, [None] * 10 + list(range(11)))
    assert got == mixed and ts == [None] * 10 + list(range(11))


def test_arrow_batches_travel_as_ipc():
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2, 3]), pa.array(["a", "b", "c"])], names=["k", "s"])
    got, ts = _trip(batch, [10, 20, 30])
    assert got.equals(batch) and list(ts) == [10, 20, 30]
