"""flinkcore.jit: a numeric filter compiled over columns on a typed stream gives what the same
function gives per record (untyped stream, and without numba)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import flinkcore
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.jit import JitFunction, numba_available


def env():
    e = StreamExecutionEnvironment.get_execution_environment()
    e.set_parallelism(1)
    return e


@flinkcore.jit
def even_and_big(key, value):
    return key % 2 == 0 and value > 0.25


def data(n=20_000):
    rng = np.random.default_rng(7)
    key = rng.integers(-50, 50, n, dtype=np.int64)
    value = rng.random(n)
    ts = np.arange(n, dtype=np.int64)
    return key, value, ts


def run_typed(fn, key, value, ts):
    table = pa.Table.from_batches(
        pa.table({"key": key, "value": value, "ts": ts}).to_batches(max_chunksize=3000)
    )
    return [tuple(r) for r in env().from_arrow(table).filter(fn).execute_and_collect()]


def expected(key, value, ts):
    return [
        (k, v, t)
        for k, v, t in zip(key.tolist(), value.tolist(), ts.tolist(), strict=True)
        if k % 2 == 0 and v > 0.25
    ]


def test_jit_filter_per_record_on_an_untyped_stream():
    key, value, ts = data(3_000)
    rows = list(zip(key.tolist(), value.tolist(), ts.tolist(), strict=True))
    got = list(env().from_collection(rows).filter(even_and_big).execute_and_collect())
    assert got == expected(key, value, ts)
    assert isinstance(even_and_big, JitFunction) and even_and_big.params == ("key", "value")


def test_jit_filter_without_numba_gives_the_same_result(monkeypatch):
    import sys

    # flinkcore.jit (the attribute) is the decorator; the module is in sys.modules
    monkeypatch.setattr(sys.modules["flinkcore.jit"], "numba_available", lambda: False)
    key, value, ts = data()
    fn = flinkcore.jit(lambda key, value: key % 2 == 0 and value > 0.25)
    assert fn.columns_kernel() is None
    assert run_typed(fn, key, value, ts) == expected(key, value, ts)


@pytest.mark.skipif(not numba_available(), reason="numba (flinkcore[jit]) is not installed")
def test_jit_filter_compiled_over_columns():
    key, value, ts = data()
    fn = flinkcore.jit(lambda key, value: key % 2 == 0 and value > 0.25)
    assert fn.columns_kernel() is not None
    got = run_typed(fn, key, value, ts)
    assert got == expected(key, value, ts) and len(got) > 5_000
    assert fn.columns_kernel().types, "the ufunc was compiled for the batch's column types"


def test_jit_rejects_functions_it_cannot_map_to_fields():
    with pytest.raises(TypeError, match="one plain parameter per field"):
        flinkcore.jit(lambda *fields: True)
    with pytest.raises(TypeError, match="at least one field"):
        flinkcore.jit(lambda: True)
