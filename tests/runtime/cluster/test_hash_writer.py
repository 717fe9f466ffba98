"""The batch hash writer sends every record to the subtask the per-record rule of key groups
names (``operator_index_of``): the rule checkpoints and rescaling rely on."""

import operator

import numpy as np
import pyarrow as pa
import pytest

from flinkcore.common.types import row_class
from flinkcore.runtime.exchange import make_writer
from flinkcore.runtime.graph import Partitioner
from flinkcore.runtime.operators.base import Input, UserCodeError
from flinkcore.state.key_groups import operator_index_of


class Collect(Input):
    def __init__(self):
        self.values, self.timestamps, self.batches = [], [], 0

    def process_batch(self, values, timestamps):
        self.batches += 1
        if not isinstance(values, list):
            values = values.column("key").to_pylist()
        self.values.extend(values)
        self.timestamps.extend([] if timestamps is None else list(timestamps))

    def process_watermark(self, watermark):
        pass

    def end_input(self):
        pass


def _route(selector, values, timestamps, n):
    chans = [Collect() for _ in range(n)]
    make_writer(Partitioner("hash", key_selector=selector), chans, 0, 128, "w").process_batch(
        values, timestamps
    )
    return chans


def _expected(records, key, timestamps, n):
    out = [([], []) for _ in range(n)]
    for r, t in zip(records, timestamps, strict=True):
        vs, ts = out[operator_index_of(key(r), 128, n)]
        vs.append(r)
        ts.append(t)
    return out


@pytest.mark.parametrize("n", [2, 3, 4, 9])
@pytest.mark.parametrize("selector", ["lambda", "field", "closure"])
def test_same_subtask_as_the_per_record_rule_in_order(n, selector):
    rng = np.random.default_rng(n)
    keys = rng.integers(-(2**62), 2**62, 500).tolist() + list(range(-50, 50)) + ["a", "b", (1, "x"), 2.5]
    Row3 = row_class(("key", "value", "ts"))
    values = [tuple.__new__(Row3, (k, float(i), i)) for i, k in enumerate(keys)]
    ts = list(range(len(values)))
    offset = 0
    ks = {
        "lambda": lambda r: r[0],
        "field": operator.itemgetter("key"),
        "closure": lambda r: r[offset],
    }[selector]
    chans = _route(ks, values, ts, n)
    assert [(c.values, c.timestamps) for c in chans] == _expected(values, lambda r: r[0], ts, n)


def test_a_batch_of_one_channel_goes_on_as_it_is():
    values = [(7, i) for i in range(100)]
    chans = _route(lambda v: v[0], values, None, 3)
    assert sum(c.batches for c in chans) == 1
    assert [len(c.values) for c in chans].count(100) == 1


def test_a_failing_key_selector_names_the_record():
    with pytest.raises(UserCodeError) as info:
        _route(lambda v: v["missing"], [{"k": 1}, {"missing": 2}], None, 2)
    assert "'k': 1" in str(info.value)


def _message_key(index):
    from flinkcore._core.window_udf import MessageKey

    return MessageKey(lambda r: r[index] if isinstance(r, tuple) else r, index)


@pytest.mark.parametrize("n", [2, 3, 70])
@pytest.mark.parametrize(
    "make_selector",
    [
        lambda: operator.itemgetter(0),
        lambda: operator.itemgetter(1),
        lambda: _message_key(1),
        lambda: _message_key(-1),
    ],
    ids=["itemgetter0", "itemgetter1", "message_key1", "message_key_none"],
)
def test_keys_read_in_the_split_go_where_the_selector_sends_them(make_selector, n):
    """The split reads the key of a tuple or list itself (the item ``itemgetter(i)`` or the
    two-phase ``MessageKey`` returns) and calls the selector for any other record: every record
    goes where the selector's key sends it, in order, whatever its type."""
    selector = make_selector()
    Row2 = row_class(("a", "b"))
    rng = np.random.default_rng(n)
    values = []
    for i, k in enumerate(rng.integers(-(2**63), 2**63 - 1, 300, dtype=np.int64).tolist()):
        values += [
            (k, i),
            (i, f"user-{k % 50}"),
            [k % 1000, i],
            tuple.__new__(Row2, (i, k)),
            (2**70 + i, 1.5),
        ]
    values += [(0.5, 1), ("é", "ü"), [None, 1], ((1, "x"), (2, "y"))]
    ts = list(range(len(values)))
    chans = _route(selector, values, ts, n)
    assert [(c.values, c.timestamps) for c in chans] == _expected(values, selector, ts, n)


def test_a_record_the_selector_cannot_key_is_named():
    """A tuple too short for ``itemgetter(2)`` goes to the selector, whose error names it."""
    with pytest.raises(UserCodeError) as info:
        _route(lambda v: v[2], [(1, 2, 3), (4, 5)], None, 2)
    assert "(4, 5)" in str(info.value)
    with pytest.raises(UserCodeError) as info:
        _route(lambda v: v[0], [(1, 2), ({"unhashable": 1}, 2)], [1, 2], 2)
    assert "unhashable" in str(info.value)


@pytest.mark.parametrize("key_type", ["int", "string", "uint64"])
def test_arrow_batches_split_by_key_group(key_type):
    keys = {
        "int": list(range(-300, 300)),
        "string": [f"k{i}" for i in range(600)],
        "uint64": [2**64 - 1 - i for i in range(300)] + list(range(300)),
    }[key_type]
    key_col = pa.array(keys, type=pa.uint64() if key_type == "uint64" else None)
    batch = pa.RecordBatch.from_arrays([key_col, pa.array([1.0] * 600)], names=["key", "value"])
    chans = _route(operator.itemgetter("key"), batch, range(600), 3)
    expected = _expected(keys, lambda k: k, list(range(600)), 3)
    assert [(c.values, c.timestamps) for c in chans] == expected


class Kinds(Collect):
    """Also notes whether each batch arrived as Arrow or as a list of records."""

    def __init__(self):
        super().__init__()
        self.kinds = set()

    def process_batch(self, values, timestamps):
        self.kinds.add("list" if isinstance(values, list) else "arrow")
        if isinstance(values, list):
            values = [v[0] for v in values]
        super().process_batch(values, timestamps)


@pytest.mark.parametrize(
    "selector, columnar",
    [
        (operator.itemgetter("key"), True),
        (operator.itemgetter(0), True),
        (operator.itemgetter(-2), True),
        (lambda r: r.key, False),
        (lambda r: r[0], False),
    ],
)
def test_arrow_batch_keyed_by_a_column_stays_arrow_others_see_rows(selector, columnar):
    """A field name or position is a column (split by Arrow take over native key groups); any
    other selector gets the records as Rows. Either way every record goes where the per-record
    rule sends its key."""
    keys = list(range(-200, 200)) + [2**40 + i for i in range(100)]
    batch = pa.RecordBatch.from_arrays([pa.array(keys), pa.array([0.5] * len(keys))], names=["key", "value"])
    chans = [Kinds() for _ in range(3)]
    make_writer(Partitioner("hash", key_selector=selector), chans, 0, 128, "w").process_batch(
        batch, np.arange(len(keys), dtype=np.int64)
    )
    assert [(c.values, c.timestamps) for c in chans] == _expected(
        keys, lambda k: k, list(range(len(keys))), 3
    )
    assert {k for c in chans for k in c.kinds} == ({"arrow"} if columnar else {"list"})


def test_scalar_batch_is_not_split_by_a_column():
    """A batch marked as carrying scalars: ``itemgetter(0)`` on a scalar is the user's error, as
    on the row path, not the batch's first column."""
    from flinkcore.runtime.operators.arrow import with_record_kind

    batch = with_record_kind(pa.RecordBatch.from_arrays([pa.array([1, 2, 3])], names=["f0"]), b"scalar")
    with pytest.raises(UserCodeError):
        _route(operator.itemgetter(0), batch, None, 2)


class Batches(Collect):
    """Keeps every batch it gets, as it came."""

    def __init__(self):
        super().__init__()
        self.got = []

    def process_batch(self, values, timestamps):
        self.got.append((values, None if timestamps is None else np.asarray(timestamps)))


def _mixed_batch(rng, rows, key_kind):
    keys = {
        "dense": rng.integers(0, 3000, rows),
        "wide": rng.integers(-(2**62), 2**62, rows),
        "int32": rng.integers(-(2**31), 2**31 - 1, rows).astype(np.int32),
        "string": np.array([f"k{v}" for v in rng.integers(0, 500, rows)], dtype=object),
    }[key_kind]
    nulls = rng.random(rows) < 0.2
    columns = {
        "i64": pa.array(rng.integers(-(2**63), 2**63 - 1, rows, dtype=np.int64)),
        "key": pa.array(keys),
        "f64": pa.array(rng.random(rows)),
        "i32": pa.array(rng.integers(-(2**31), 2**31 - 1, rows).astype(np.int32)),
        "u8": pa.array(rng.integers(0, 256, rows).astype(np.uint8)),
        "f32": pa.array(rng.random(rows).astype(np.float32)),
        "flag": pa.array(rng.random(rows) < 0.5),
        "when": pa.array(rng.integers(0, 2**40, rows), type=pa.timestamp("ms")),
        "name": pa.array([f"n{i}" for i in range(rows)]),
        "maybe": pa.array(rng.random(rows), mask=nulls),
    }
    schema = pa.schema([pa.field(k, v.type) for k, v in columns.items()], metadata={b"kind": b"test"})
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=schema)


@pytest.mark.parametrize("key_kind", ["dense", "wide", "int32", "string"])
@pytest.mark.parametrize("n", [2, 3, 5, 9])
def test_arrow_split_keeps_every_column_row_order_and_timestamps(key_kind, n):
    """Each row (all its columns, of their types, and its timestamp) reaches the channel the
    per-record rule names, in arrival order: fixed-width columns, booleans, strings, a column
    with nulls, timestamps; whole batches and slices of one (a column offset)."""
    rng = np.random.default_rng(n)
    writer_chans = [Batches() for _ in range(n)]
    writer = make_writer(
        Partitioner("hash", key_selector=operator.itemgetter("key")), writer_chans, 0, 128, "w"
    )
    sent = []
    for rows in (1000, 0, 1, 517):
        batch = _mixed_batch(rng, rows, key_kind)
        ts = rng.integers(0, 2**50, rows)
        for part, part_ts in ((batch, ts), (batch.slice(3, max(rows - 10, 0)), ts[3 : max(rows - 7, 3)])):
            sent.append((part, part_ts))
            writer.process_batch(part, part_ts)
    all_rows = [r for b, _ in sent for r in b.to_pylist()]
    all_ts = [int(t) for _, ts in sent for t in ts]
    expected = _expected(all_rows, lambda r: r["key"], all_ts, n)
    for chan, (rows, ts) in zip(writer_chans, expected, strict=True):
        assert [r for b, _ in chan.got for r in b.to_pylist()] == rows
        assert [int(t) for _, t in chan.got for t in t] == ts
        for b, t in chan.got:
            assert b.schema.equals(sent[0][0].schema, check_metadata=True)
            assert len(t) == b.num_rows and t.dtype == np.int64
            b.validate(full=True)


@pytest.mark.parametrize("n", [2, 4])
def test_arrow_split_without_timestamps_and_one_channel_batches(n):
    keys = np.arange(200)
    owner = np.array([operator_index_of(int(k), 128, n) for k in keys])
    mine = keys[owner == 1]  # every key of channel 1
    batch = pa.RecordBatch.from_arrays([pa.array(mine), pa.array(mine * 0.5)], names=["key", "v"])
    chans = [Batches() for _ in range(n)]
    writer = make_writer(Partitioner("hash", key_selector=operator.itemgetter(0)), chans, 0, 128, "w")
    writer.process_batch(batch, None)
    assert [len(c.got) for c in chans] == [1 if i == 1 else 0 for i in range(n)]
    assert chans[1].got[0][0] is batch and chans[1].got[0][1] is None  # passed on as it is
    mixed = pa.RecordBatch.from_arrays([pa.array(keys), pa.array(keys * 0.5)], names=["key", "v"])
    writer.process_batch(mixed, None)
    for c in range(n):
        got = chans[c].got[-1]
        assert got[1] is None
        assert got[0].column(0).to_pylist() == keys[owner == c].tolist()
        assert got[0].column(1).to_pylist() == (keys[owner == c] * 0.5).tolist()


@pytest.mark.parametrize("n", [2, 3])
def test_arrow_split_of_timestamps_read_from_a_column(n):
    """Timestamps that are a column's memory (read zero-copy, as the timestamp assigner reads
    ``ts``) come out as that column's rows, also for a slice of the batch; a copy of the column
    changed afterwards is no such column."""
    rng = np.random.default_rng(n)
    rows = 3000
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(rng.integers(0, 500, rows)),
            pa.array(rng.random(rows)),
            pa.array(rng.integers(0, 2**40, rows)),
        ],
        names=["key", "value", "ts"],
    ).slice(11, 2000)
    keys = batch.column("key").to_pylist()
    for ts in (batch.column("ts").to_numpy(), batch.column("ts").to_numpy().copy() + 1):
        chans = [Batches() for _ in range(n)]
        make_writer(
            Partitioner("hash", key_selector=operator.itemgetter("key")), chans, 0, 128, "w"
        ).process_batch(batch, ts)
        expected = _expected(list(range(2000)), keys.__getitem__, ts.tolist(), n)
        for chan, (idx, stamps) in zip(chans, expected, strict=True):
            ((got, got_ts),) = chan.got
            assert got.column("ts").to_pylist() == [batch.column("ts")[i].as_py() for i in idx]
            assert got_ts.tolist() == stamps
            # the column's own memory comes out read-only, as it went in
            assert got_ts.flags.writeable == ts.flags.writeable


@pytest.mark.parametrize("n", [2, 3])
def test_arrow_split_of_keys_in_and_beyond_the_key_table_batch_after_batch(n):
    """One writer, batch after batch: small keys (the table indexed by the key), keys the table
    grows for, keys beyond it (negative, >= 2**22: by key group), small keys again — every row
    where the per-record rule sends its key, each channel's rows in arrival order."""
    rng = np.random.default_rng(n)
    chans = [Batches() for _ in range(n)]
    writer = make_writer(Partitioner("hash", key_selector=operator.itemgetter("key")), chans, 0, 128, "w")
    sent = []
    for lo, hi in [(0, 500), (0, 50_000), (-5, 100), (0, 2**22 + 3), (0, 2**22), (2**40, 2**41), (0, 900)]:
        keys = rng.integers(lo, hi, 700)
        ts = rng.integers(0, 2**40, 700)
        batch = pa.RecordBatch.from_arrays([pa.array(keys), pa.array(keys * 0.25)], names=["key", "v"])
        writer.process_batch(batch, ts)
        sent.append((keys, ts))
    all_keys = [int(k) for keys, _ in sent for k in keys]
    all_ts = [int(t) for _, ts in sent for t in ts]
    expected = _expected(all_keys, lambda k: k, all_ts, n)
    for chan, (keys, ts) in zip(chans, expected, strict=True):
        assert [k for b, _ in chan.got for k in b.column("key").to_pylist()] == keys
        assert [v for b, _ in chan.got for v in b.column("v").to_pylist()] == [k * 0.25 for k in keys]
        assert [int(t) for _, t in chan.got for t in t] == ts


def test_arrow_split_gives_each_channel_columns_of_its_own_rows():
    """Each channel's batch holds its columns from their first value (offset 0, data buffers of
    exactly its rows: what the ring encoder sends is the channel's rows, not a slice of a shared
    batch)."""
    rng = np.random.default_rng(5)
    keys = rng.integers(0, 1000, 4000)
    batch = pa.RecordBatch.from_arrays(
        [pa.array(keys), pa.array(rng.random(4000).astype(np.float32)), pa.array(keys.astype(np.int16))],
        names=["key", "f", "s"],
    )
    chans = [Batches() for _ in range(3)]
    make_writer(
        Partitioner("hash", key_selector=operator.itemgetter("key")), chans, 0, 128, "w"
    ).process_batch(batch, None)
    for chan in chans:
        ((got, _),) = chan.got
        for column, width in zip(got.columns, (8, 4, 2), strict=True):
            assert column.offset == 0
            assert column.buffers()[1].size == got.num_rows * width


def test_arrow_split_refuses_timestamps_of_another_length():
    batch = pa.RecordBatch.from_arrays([pa.array(np.arange(10))], names=["key"])
    with pytest.raises(ValueError, match="timestamps"):
        _route(operator.itemgetter("key"), batch, np.arange(9), 2)
