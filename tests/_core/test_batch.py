"""Batch: the micro-batch between operators, in record and columnar form."""

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flinkcore._core.batch import Batch


class Row(tuple):
    _fields = None


def named_row(names, values):
    r = Row(values)
    r._fields = names
    return r


def test_records_round_trip_and_columns():
    recs = [(1, 0.5, "é"), (2, 1.5, "😀"), (3, -2.0, "")]
    b = Batch.from_records(recs, timestamps=[10, 20, 30], names=["k", "v", "s"])
    assert len(b) == 3 and not b.is_columnar and b.to_records() is recs
    cols = b.columns
    assert cols["k"].dtype == np.int64 and cols["v"].dtype == np.float64 and cols["s"].dtype == object
    assert b.timestamps.dtype == np.int64 and b.timestamps.tolist() == [10, 20, 30]
    assert b.to_arrow().to_pylist() == [
        {"k": 1, "v": 0.5, "s": "é"},
        {"k": 2, "v": 1.5, "s": "😀"},
        {"k": 3, "v": -2.0, "s": ""},
    ]


def test_columns_to_records_and_rows():
    b = Batch.from_columns({"key": np.array([1, 2], dtype=np.int64), "value": np.array([0.5, 1.0])})
    assert b.is_columnar and b.names == ("key", "value")
    assert b.to_records() == [(1, 0.5), (2, 1.0)]
    rows = b.to_records(row_factory=named_row)
    assert rows[0]._fields == ("key", "value") and rows == [(1, 0.5), (2, 1.0)]
    assert type(b.to_records()[0][0]) is int  # Python values, not numpy scalars


def test_arrow_round_trip_with_nulls_and_zero_copy():
    rb = pa.record_batch(
        {"k": pa.array([1, 2, 3], pa.int64()), "x": pa.array([1.0, None, 3.0]), "s": ["a", None, "c"]}
    )
    b = Batch.from_arrow(rb, timestamps="k")
    assert b.timestamps.tolist() == [1, 2, 3]
    assert b.columns["k"].dtype == np.int64
    assert b.columns["x"].tolist() == [1.0, None, 3.0]  # null kept, not NaN
    assert b.to_arrow().equals(rb)
    assert b.to_records() == [(1, 1.0, "a"), (2, None, None), (3, 3.0, "c")]
    with pytest.raises(ValueError, match="no column"):
        Batch.from_arrow(rb, timestamps="nope")


@pytest.mark.parametrize("columnar", [False, True])
def test_slice_filter_concat(columnar):
    recs = [(i, float(i), f"k{i}") for i in range(10)]
    b = Batch.from_records(recs, timestamps=np.arange(10) * 100, names=["a", "b", "c"])
    if columnar:
        b = Batch.from_columns(b.columns, timestamps=b.timestamps)
    s = b.slice(2, 5)
    assert s.to_records() == recs[2:5] and s.timestamps.tolist() == [200, 300, 400]
    f = b.filter(np.arange(10) % 3 == 0)
    assert f.to_records() == recs[::3] and f.timestamps.tolist() == [0, 300, 600, 900]
    c = Batch.concat([s, f])
    assert c.is_columnar == columnar
    assert c.to_records() == recs[2:5] + recs[::3] and len(c.timestamps) == 7
    with pytest.raises(ValueError, match="mask"):
        b.filter([True])


def test_concat_mixed_forms_and_timestamps():
    a = Batch.from_records([(1, "x")])
    b = Batch.from_columns({"f0": [2], "f1": ["y"]})
    assert Batch.concat([a, b]).to_records() == [(1, "x"), (2, "y")]
    with pytest.raises(ValueError, match="timestamps"):
        Batch.concat([a, Batch.from_records([(3, "z")], timestamps=[1])])
    assert len(Batch.concat([])) == 0


def test_empty_and_errors():
    e = Batch.from_columns({"k": np.array([], dtype=np.int64)})
    assert len(e) == 0 and e.to_records() == [] and e.to_arrow().num_rows == 0
    assert len(Batch.from_records([])) == 0
    with pytest.raises(ValueError, match="has 1 values"):
        Batch.from_columns({"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="timestamps"):
        Batch.from_records([(1,)], timestamps=[1, 2])
    with pytest.raises(TypeError, match="tuples"):
        _ = Batch.from_records([1, 2]).columns
    with pytest.raises(TypeError):
        Batch()


def test_huge_batch_columns_are_views():
    n = 1_000_000
    k = np.arange(n, dtype=np.int64)
    b = Batch.from_columns({"k": k, "v": k * 0.5})
    assert b.columns["k"] is k
    s = b.slice(10, n)
    assert np.shares_memory(s.columns["k"], k)
    assert len(Batch.concat([s, s])) == 2 * (n - 10)


@given(
    st.lists(st.tuples(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False), st.text()), max_size=30)
)
def test_records_columns_arrow_round_trip(recs):
    b = Batch.from_records(recs, names=["i", "f", "s"])
    via_cols = Batch.from_columns(b.columns)
    assert via_cols.to_records() == recs
    assert Batch.from_arrow(via_cols.to_arrow()).to_records() == recs
