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
