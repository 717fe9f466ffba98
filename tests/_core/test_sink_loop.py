"""invoke_columns (the sink's loop over a columnar batch's columns): no references leaked or lost,
on success and when the user's function or key selector raises mid-batch."""

from __future__ import annotations

import gc
import pathlib
import sys

import numpy as np
import pytest

from flinkcore.common.types import row_class

sink_loop = pytest.importorskip("flinkcore._core.sink_loop")

STATM = pathlib.Path("/proc/self/statm")


class Ctx:
    __slots__ = ("_ts",)


class Backend:
    current_key = None


def columns(n=2000):
    return [
        np.arange(n, dtype=np.int64) % 97,
        np.full(n, 10**12, dtype=np.int64),  # shared int objects of neighbouring rows
        np.arange(n) * 0.25,
        np.arange(n) % 2 == 0,
        [f"s{i % 5}" for i in range(n)],
        [[i] for i in range(n)],
    ]


CLS = row_class(("a", "b", "c", "d", "e", "f"))


def run_once(cols, ts, fail_at=None, keyed=False):
    count = [0]

    def invoke(v, ctx):
        count[0] += 1
        if count[0] == fail_at:
            raise RuntimeError("x")

    pos = sink_loop.Position()
    args = (lambda v: v.a, Backend()) if keyed else ()
    try:
        sink_loop.invoke_columns(pos, invoke, Ctx(), CLS, cols, ts, *args)
    except RuntimeError:
        assert pos.record is not None and pos.index == fail_at - 1
    return count[0]


@pytest.mark.parametrize("keyed", [False, True])
def test_references_of_the_inputs_are_unchanged(keyed):
    cols = columns()
    ts = np.repeat(np.arange(20, dtype=np.int64), 100)
    kept = [*cols, ts, CLS]
    before = [sys.getrefcount(o) for o in kept]
    assert run_once(cols, ts, keyed=keyed) == 2000
    assert run_once(cols, ts, fail_at=777, keyed=keyed) == 777
    assert run_once(cols, ts.tolist(), keyed=keyed) == 2000
    gc.collect()
    assert [sys.getrefcount(o) for o in kept] == before
    # the values the rows held are not freed twice (the lists of the last column are intact)
    assert cols[5][1999] == [1999]


def test_records_are_freed_as_the_loop_goes():
    cols = columns()
    alive = []

    def invoke(v, ctx):
        alive.append(sys.getrefcount(v))

    sink_loop.invoke_columns(sink_loop.Position(), invoke, Ctx(), CLS, cols, None)
    # inside invoke: the loop's own reference, the argument, getrefcount's argument: none else
    assert set(alive) == {alive[0]} and alive[0] <= 4


@pytest.mark.skipif(not STATM.exists(), reason="needs /proc/self/statm (Linux)")
def test_rss_stays_flat():
    import os

    page = os.sysconf("SC_PAGE_SIZE")
    cols = columns()
    ts = np.repeat(np.arange(20, dtype=np.int64), 100)

    def run():
        run_once(cols, ts)
        run_once(cols, ts, fail_at=1500, keyed=True)
        sink_loop.invoke_columns(sink_loop.Position(), lambda v, c: None, Ctx(), None, [cols[2]], ts)

    for _ in range(30):
        run()
    gc.collect()
    before = int(STATM.read_text().split()[1]) * page
    for _ in range(300):
        run()
    gc.collect()
    grown = int(STATM.read_text().split()[1]) * page - before
    assert grown < 3 << 20, f"RSS grew by {grown / 1e6:.1f} MB"


def test_rows_nobody_kept_are_refilled_exactly():
    """The loop reuses a row the user's function dropped: each call still sees the row
    rows_from_columns builds (values, types, cycle-collector tracking)."""
    from flinkcore._core.rows import rows_from_columns

    cls = row_class(("k", "x", "o"))
    holder = [1]
    cols = [np.array([1, 1, 2, 3, 3], dtype=np.int64), np.arange(5) * 0.5, ["s", holder, "t", None, [2]]]
    seen = []

    def invoke(v, ctx):  # keeps what it saw, not the row itself
        seen.append((type(v), tuple(v), gc.is_tracked(v), ctx._ts))

    sink_loop.invoke_columns(sink_loop.Position(), invoke, Ctx(), cls, cols, np.array([4, 4, 5, 5, 6]))
    expected = rows_from_columns(cls, cols)
    assert seen == [
        (cls, tuple(r), gc.is_tracked(r), t) for r, t in zip(expected, [4, 4, 5, 5, 6], strict=True)
    ]
    assert [s[2] for s in seen] == [False, True, False, False, True]
    expected.clear()
    seen.clear()
    assert sys.getrefcount(holder) == 3  # cols, the local name, the argument: the loop let go of it


def test_a_row_given_an_attribute_is_not_refilled():
    from flinkcore.common.types import RowKind

    cls = row_class(("k",))
    kinds = []

    def invoke(v, ctx):
        kinds.append(v._row_kind)
        v._row_kind = RowKind.DELETE  # an instance dict: the row is no longer a plain tuple

    sink_loop.invoke_columns(sink_loop.Position(), invoke, Ctx(), cls, [np.arange(3)], None)
    assert kinds == [RowKind.INSERT] * 3


def test_shared_ints_are_released_with_the_batch():
    """Neighbouring rows share the int of an int64 column; the reader lets go of it at the end."""
    from flinkcore._core.rows import rows_from_columns

    cls = row_class(("a", "b"))
    cols = [np.arange(50, dtype=np.int64), np.full(50, 10**12, dtype=np.int64)]
    kept = []
    sink_loop.invoke_columns(sink_loop.Position(), lambda v, c: kept.append(v), Ctx(), cls, cols, None)
    built = rows_from_columns(cls, cols)
    counts = [sys.getrefcount(rows[0].b) for rows in (kept, built)]  # before pytest's asserts hold any
    assert counts == [len(kept) + 1, len(built) + 1]  # the rows and the argument only
    assert all(r.b is kept[0].b for r in kept) and all(r.b is built[0].b for r in built)


# int64 values around every boundary the refill cares about: small ints (-5..256, shared
# singletons), one CPython digit (|v| < 2**30), the sign, and the int64 range
EDGE_INTS = [0, 1, 255, 256, 257, -5, -6, 300, 300, -300, 2**30 - 1, 2**30, -(2**30) + 1, -(2**30)]
EDGE_INTS += [2**62, -(2**63), 2**63 - 1, 7, 7, 7, 1000, 1001, 1001, -1, 12345, 5, 400, 200, -400, -3]


def test_refilled_numbers_are_exactly_the_columns_values():
    """A refilled row keeps an equal int or takes a new value into a number only it holds: each
    call still sees exactly the ints and floats rows_from_columns builds, small ints are the
    shared ones, and a value the user's function kept is never changed afterwards."""
    from flinkcore._core.rows import rows_from_columns

    n = len(EDGE_INTS)
    cls = row_class(("a", "b", "c"))
    floats = np.array([0.5, -0.0, float("inf"), 1e300, 2.5, 2.5] * 5)[:n]
    cols = [np.array(EDGE_INTS, dtype=np.int64), floats, np.array(EDGE_INTS[::-1], dtype=np.int64)]
    seen = []
    kept = []

    def invoke(v, ctx):
        # what the row holds, as text (holding its numbers would keep the loop from reusing them)
        seen.append(tuple(repr(x) for x in v) + tuple(type(x).__name__ for x in v))
        small.append(all(x is int(str(x)) for x in (v.a, v.c) if -5 <= x <= 256))
        if len(seen) % 3 == 0:
            kept.append((v.a, v.b))  # these objects must never change

    small = []
    sink_loop.invoke_columns(sink_loop.Position(), invoke, Ctx(), cls, cols, None)
    expected = rows_from_columns(cls, cols)
    assert seen == [tuple(repr(x) for x in r) + ("int", "float", "int") for r in expected]
    assert small == [True] * n  # small ints are the interpreter's own
    assert [(r[0], r[1]) for r in expected[2::3]] == kept


def test_numbers_the_user_keeps_are_not_reused():
    """A field value the user's function holds on to (a counter of distinct keys, a last total)
    keeps its value after the loop refills the row."""
    cls = row_class(("k", "x"))
    keys = np.arange(1000, 3000, dtype=np.int64)
    xs = np.arange(2000) * 0.5
    last = {}

    def invoke(v, ctx):
        last[v.k % 7] = (v.k, v.x)

    sink_loop.invoke_columns(sink_loop.Position(), invoke, Ctx(), cls, [keys, xs], None)
    assert last == {int(k) % 7: (int(k), float(x)) for k, x in zip(keys[-7:], xs[-7:], strict=True)}
