"""rows_from_columns: the native builder gives what the pure-Python twin gives (same values, same
Python types), and leaves only rows of atomic fields off the cycle collector."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from flinkcore._core._reference import rows as reference
from flinkcore.common.types import Row, row_class

native = pytest.importorskip("flinkcore._core.rows")
BUILDERS = [native.rows_from_columns, reference.rows_from_columns]


def columns():
    return [
        np.array([1, -(2**63), 2**63 - 1], dtype=np.int64),
        np.array([1.5, np.nan, -0.0]),
        np.array([True, False, True]),
        np.array([3, 2, 1], dtype=np.int32)[::-1],  # not int64, not contiguous
        ["x", None, b"y"],
    ]


@pytest.mark.parametrize("build", BUILDERS)
def test_rows_have_the_values_and_types_tolist_gives(build):
    cls = row_class(("a", "b", "c", "d", "e"))
    rows = build(cls, columns())
    expected = list(zip(*[c.tolist() if isinstance(c, np.ndarray) else c for c in columns()], strict=True))
    assert len(rows) == 3 and all(type(r) is cls for r in rows)
    for row, exp in zip(rows, expected, strict=True):
        assert [type(v) for v in row] == [type(v) for v in exp]
        assert repr(tuple(row)) == repr(exp)  # nan and -0.0 compare by repr
    assert rows[0].a == 1 and rows[2].d == 3 and rows[1].e is None
    assert isinstance(rows[0], Row) and rows[0].as_dict()["e"] == "x"


def test_rows_of_atomic_fields_are_untracked_others_stay_tracked():
    cls = row_class(("a", "b"))
    holder = [1]
    rows = native.rows_from_columns(cls, [np.arange(3), ["s", holder, None]])
    assert [gc.is_tracked(r) for r in rows] == [False, True, False]
    assert rows[1].b is holder
    del rows
    gc.collect()  # still consistent after a collection


@pytest.mark.parametrize("build", BUILDERS)
def test_plain_tuples_and_empty_columns(build):
    assert build(tuple, [[1, 2], np.array([0.5, 1.5])]) == [(1, 0.5), (2, 1.5)]
    assert build(tuple, [np.zeros(0)]) == []
    assert build(tuple, []) == []


@pytest.mark.parametrize("build", BUILDERS)
def test_bad_input_is_refused(build):
    with pytest.raises(TypeError, match="tuple subclasses"):
        build(dict, [[1]])
    with pytest.raises(TypeError, match="column 0"):
        build(tuple, [(1, 2)])
    with pytest.raises(ValueError, match="differ in length"):
        build(tuple, [[1, 2], np.arange(3)])


def test_no_references_leak():
    """Every field holds one reference per row, released with the row; arrays are not kept."""
    import sys
    import tracemalloc

    value = object()
    col = [value] * 1000
    before = sys.getrefcount(value)
    rows = native.rows_from_columns(tuple, [col, np.arange(1000)])
    assert sys.getrefcount(value) == before + 1000
    del rows
    assert sys.getrefcount(value) == before
    arr = np.arange(50_000, dtype=np.int64)
    cls = row_class(("a", "b"))
    native.rows_from_columns(cls, [arr, arr.astype(np.float64)])  # warm up
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(5):
        native.rows_from_columns(cls, [arr, arr.astype(np.float64)])
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes still allocated"
