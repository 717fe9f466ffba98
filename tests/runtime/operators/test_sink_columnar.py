"""A sink takes columnar batches itself (one compiled loop builds, invokes and drops each record):
the records, timestamps, keys and errors are the ones the same batch gives as Rows through
RowsInput, the path every other per-record input takes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from flinkcore.runtime.columnar import RowsInput, columnar_input
from flinkcore.runtime.operators.arrow import with_record_kind
from flinkcore.runtime.operators.base import UserCodeError
from flinkcore.runtime.operators.two_phase_commit import TwoPhaseCommitSinkOperator
from flinkcore.runtime.operators.udf import SinkOperator
from flinkcore.runtime.testing import (
    KeyedOneInputStreamOperatorTestHarness,
    OneInputStreamOperatorTestHarness,
)

pytest.importorskip("flinkcore._core.sink_loop")


def batches():
    n = 7
    rows = pa.RecordBatch.from_arrays(
        [
            pa.array(np.arange(n) % 3, type=pa.int64()),
            pa.array(np.full(n, 1000, dtype=np.int64)),
            pa.array(np.linspace(-1.5, 2.5, n)),
            pa.array([True, False] * 3 + [True]),
            pa.array(["a", None, "c", "d", "e", "f", "g"]),
            pa.array([1, None, 3, 4, 5, 6, 7], type=pa.int64()),  # a null: read as a list
            pa.array([1, 2, 3, 4, 5, 6, 7], type=pa.int32()),
            pa.array([[1], [2], [], [4], [5], [6], [7]]),  # not atomic: the row stays tracked
        ],
        names=["key", "start", "x", "flag", "s", "nullable", "small", "lst"],
    )
    tuples = with_record_kind(rows.select([0, 2, 4]), b"tuple")
    scalars = with_record_kind(rows.select([2]), b"scalar")
    return {"rows": rows, "tuples": tuples, "scalars": scalars}


TIMESTAMPS = {
    "none": None,
    "array": np.array([5, 5, 5, 9, 9, 12, 12], dtype=np.int64),
    "list": [5, 5, 5, 9, 9, 12, 12],
}


def run_sink(batch, timestamps, columnar: bool, key_selector=None):
    seen = []

    def invoke(value, ctx):
        seen.append((value, type(value), ctx.timestamp(), ctx.current_watermark()))

    op = SinkOperator(invoke)
    harness = (
        KeyedOneInputStreamOperatorTestHarness(op, key_selector)
        if key_selector
        else OneInputStreamOperatorTestHarness(op)
    )
    harness.open()
    harness.process_watermark(3)
    target = columnar_input(op) if columnar else RowsInput(op)
    assert (target is op) == columnar
    target.process_batch(batch, timestamps)
    return seen


@pytest.mark.parametrize("kind", ["rows", "tuples", "scalars"])
@pytest.mark.parametrize("ts", list(TIMESTAMPS))
def test_records_and_timestamps_are_the_rows_path(kind, ts):
    batch = batches()[kind]
    new = run_sink(batch, TIMESTAMPS[ts], columnar=True)
    old = run_sink(batch, TIMESTAMPS[ts], columnar=False)
    assert len(new) == batch.num_rows
    assert new == old
    assert [[type(f) for f in v] for v, *_ in new if isinstance(v, tuple)] == [
        [type(f) for f in v] for v, *_ in old if isinstance(v, tuple)
    ]
    if kind == "rows":
        assert new[0][0].key == 0 and new[4][0].s == "e" and new[1][0].nullable is None
        assert new[0][0].lst == [1]


def test_keyed_sink_has_each_records_key_current():
    batch = batches()["rows"]

    def run(columnar):
        seen = []
        op = SinkOperator(lambda v, ctx: seen.append((v.key, op.state_backend.current_key, ctx.timestamp())))
        h = KeyedOneInputStreamOperatorTestHarness(op, lambda v: v.key * 10)
        h.open()
        (columnar_input(op) if columnar else RowsInput(op)).process_batch(batch, TIMESTAMPS["array"])
        return seen

    new = run(True)
    assert new == run(False)
    assert [k for _, k, _ in new] == [0, 10, 20, 0, 10, 20, 0]


@pytest.mark.parametrize("keyed", [False, True])
def test_an_error_names_the_failing_record(keyed):
    batch = batches()["rows"]
    calls = []

    def invoke(value, ctx):
        calls.append(value)
        if len(calls) == 4:
            raise KeyError("boom")

    op = SinkOperator(invoke, name="MySink")
    h = (
        KeyedOneInputStreamOperatorTestHarness(op, lambda v: v.key)
        if keyed
        else OneInputStreamOperatorTestHarness(op)
    )
    h.open()
    with pytest.raises(UserCodeError, match="operator 'MySink' failed on record") as info:
        op.process_batch(batch, TIMESTAMPS["array"])
    assert info.value.record is calls[3] and info.value.record.key == 0 and info.value.record.x == 0.5
    assert isinstance(info.value.__cause__, KeyError)
    assert op._position.record is None  # the record is not kept after the error


def test_a_failing_key_selector_names_the_record():
    op = SinkOperator(lambda v, ctx: None)
    h = KeyedOneInputStreamOperatorTestHarness(op, lambda v: 1 // (v.key - 1))
    h.open()
    with pytest.raises(UserCodeError) as info:
        op.process_batch(batches()["rows"], None)
    assert info.value.record.key == 1 and isinstance(info.value.__cause__, ZeroDivisionError)


def test_bad_batch_is_not_blamed_on_a_record():
    op = SinkOperator(lambda v, ctx: None)
    OneInputStreamOperatorTestHarness(op).open()
    with pytest.raises(ValueError, match="differ in length"):
        op.process_batch(batches()["rows"], np.arange(3, dtype=np.int64))


def test_lists_still_take_the_list_loops():
    seen = []
    op = SinkOperator(lambda v, ctx: seen.append((v, ctx.timestamp())))
    OneInputStreamOperatorTestHarness(op).open()
    op.process_batch(["a", "b"], [1, 2])
    op.process_batch(["c"], None)
    assert seen == [("a", 1), ("b", 2), ("c", None)]


def test_only_the_sink_operator_itself_takes_columnar_batches():
    class Txn:
        def begin_transaction(self):
            return []

        def invoke(self, txn, value, context):
            txn.append(value)

        def pre_commit(self, txn):
            pass

        def commit(self, txn):
            pass

        def abort(self, txn):
            pass

    op = TwoPhaseCommitSinkOperator(Txn())
    OneInputStreamOperatorTestHarness(op).open()
    assert not op.accepts_columnar
    assert isinstance(columnar_input(op), RowsInput)


def test_in_process_job_feeds_the_sink_columnar_batches(monkeypatch):
    """The in-process executor hands the Arrow source's batches to the sink itself."""
    from flinkcore.datastream import StreamExecutionEnvironment
    from flinkcore.datastream.functions import SinkFunction

    wrapped = []
    orig = RowsInput.__init__

    def spy(self, target):
        wrapped.append(type(target).__name__)
        orig(self, target)

    monkeypatch.setattr(RowsInput, "__init__", spy)
    columnar_calls = []
    process_columnar = SinkOperator._process_columnar

    def spy_columnar(self, batch, timestamps, keyed=False):
        columnar_calls.append(batch.num_rows)
        process_columnar(self, batch, timestamps, keyed)

    monkeypatch.setattr(SinkOperator, "_process_columnar", spy_columnar)

    class Collect(SinkFunction):
        def __init__(self):
            self.seen = []

        def invoke(self, value, context):
            self.seen.append((value.k, value.v))

    table = pa.table({"k": np.arange(5000) % 7, "v": np.arange(5000) * 0.5})
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    sink = Collect()
    env.from_arrow(table).add_sink(sink)
    env.execute("columnar sink")
    assert sink.seen == list(
        zip((np.arange(5000) % 7).tolist(), (np.arange(5000) * 0.5).tolist(), strict=True)
    )
    assert "SinkOperator" not in wrapped
    assert sum(columnar_calls) == 5000


NUMERIC = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"]


@pytest.mark.parametrize("type_name", [*NUMERIC, "bool_"])
def test_column_values_are_what_to_pylist_gives(type_name):
    from flinkcore.runtime.operators.arrow import column_values, record_batch_to_rows

    t = getattr(pa, type_name)()
    values = [True, False, True, True, False] if type_name == "bool_" else [0, 1, 7, 100, 3]
    arr = pa.array(values, type=t)
    with_null = pa.array([*values[:2], None, *values[3:]], type=t)
    batch = pa.RecordBatch.from_arrays([arr, with_null], names=["a", "b"])
    for b in (batch, batch.slice(1, 3), batch.slice(5, 0), pa.Table.from_batches([batch, batch])):
        for col in b.columns:
            got = column_values(col)
            got = got.tolist() if isinstance(got, np.ndarray) else got
            assert got == col.to_pylist()
            assert [type(v) for v in got] == [type(v) for v in col.to_pylist()]
        assert [tuple(r) for r in record_batch_to_rows(b)] == [tuple(r.values()) for r in b.to_pylist()]


def test_reading_columns_does_not_import_pandas(tmp_path):
    """Array.to_numpy imports pandas on its first call (0.2-0.4 s); the columns are read without."""
    import subprocess
    import sys

    batch = pa.RecordBatch.from_pydict({"k": pa.array([1, 2], pa.int64()), "v": pa.array([0.5, 1.5])})
    path = tmp_path / "batch.arrow"
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, batch.schema) as w:
        w.write_batch(batch)
    code = (  # the batch as a slot receives one (Arrow IPC): building arrays may import pandas
        "import sys, pyarrow as pa\n"
        "from flinkcore.runtime.operators.arrow import record_columns\n"
        f"b = pa.ipc.open_stream(pa.memory_map({str(path)!r})).read_next_batch()\n"
        "assert 'pandas' not in sys.modules\n"
        "cls, cols = record_columns(b)\n"
        "assert [c.tolist() for c in cols] == [[1, 2], [0.5, 1.5]], cols\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
