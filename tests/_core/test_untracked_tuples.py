"""Tuples that cannot be part of a reference cycle leave the cycle collector at once (CPython's own
rule, which its collector applies on a tuple's first collection): batches decoded by the serde and
the pairs of a window's ``KeyedPanes.items()`` (the partials of two-phase aggregation); tuples that
hold a container stay tracked, and values are unchanged."""

from __future__ import annotations

import gc

from flinkcore._core.serde import dumps_batch, loads_batch
from flinkcore._core.window_udf import KeyedPanes


def test_decoded_nested_tuples_of_atomic_values_are_untracked():
    records = [(1, (2.0, 3)), (2, (1.0, [1])), ("k", ("a", None, (1, 2))), (3, [{"a": 1}])]
    out = loads_batch(dumps_batch(records))
    assert out == records
    assert [gc.is_tracked(r) for r in out] == [False, True, False, True]
    assert [gc.is_tracked(r[1]) for r in out] == [False, True, False, True]


def test_keyed_panes_items_untrack_pairs_of_atomic_values():
    panes = KeyedPanes()
    acc = tuple([1.5, 2])  # built at run time: tracked until a collection (or items()) looks at it
    panes[1] = acc
    panes[2] = (1.0, [2])
    panes[3] = [1]
    panes["x"] = acc  # a str key: the dict fallback, pairs as dict.items() gives them
    items = panes.items()
    assert items == [(1, acc), (2, (1.0, [2])), (3, [1]), ("x", acc)]
    assert items[0][1] is acc


def test_keyed_panes_items_of_int_keys():
    panes = KeyedPanes()
    acc = tuple([1.5, 2])
    assert gc.is_tracked(acc)
    panes[1] = acc
    panes[2] = (1.0, [2])
    panes[3] = [1]
    items = panes.items()
    assert items == [(1, acc), (2, (1.0, [2])), (3, [1])]
    assert [gc.is_tracked(p) for p in items] == [False, True, True]
    assert not gc.is_tracked(acc)
    assert gc.is_tracked(items[1][1])


def test_items_leave_the_collector_as_they_found_it():
    panes = KeyedPanes()
    panes[1] = (1.0, 2)
    assert gc.isenabled()
    panes.items()
    assert gc.isenabled()
    gc.disable()
    try:
        panes.items()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_window_accumulators_of_atomic_values_are_untracked_as_they_are_made():
    from flinkcore.datastream.window import TimeWindow
    from flinkcore.runtime.operators.window import (
        AlignedWindowOperator,
        InternalWindowFunction,
        WindowStateSpec,
    )
    from flinkcore.runtime.testing import KeyedOneInputStreamOperatorTestHarness

    class SumCountList:
        def create_accumulator(self):
            return 0.0, 0, []

        def add(self, value, acc):
            return acc[0] + value[1], acc[1] + 1, acc[2]

        def get_result(self, acc):
            return acc

        def merge(self, a, b):
            return a[0] + b[0], a[1] + b[1], a[2] + b[2]

    class SumCount(SumCountList):
        def create_accumulator(self):
            return 0.0, 0

        def add(self, value, acc):
            return acc[0] + value[1], acc[1] + 1

    for agg, tracked in ((SumCount(), False), (SumCountList(), True)):
        op = AlignedWindowOperator(
            10,
            10,
            0,
            WindowStateSpec("aggregating", aggregate=agg),
            InternalWindowFunction(lambda key, window, ctx, value: (value,), passthrough=True),
            TimeWindow,
        )
        h = KeyedOneInputStreamOperatorTestHarness(op, key_selector=lambda v: v[0])
        h.open()
        assert op._use_compiled
        h.process_elements([(1, 1.0), (2, 2.0), (1, 3.0)], [1, 2, 3])
        accs = list(op._panes[0].values())
        assert [a[:2] for a in accs] == [(4.0, 2), (2.0, 1)]
        assert [gc.is_tracked(a) for a in accs] == [tracked, tracked]


def test_keyed_panes_items_in_parts():
    panes = KeyedPanes()
    for k in range(10):
        panes[k] = (float(k), k)
    whole = panes.items()
    assert [p for a in range(0, 10, 3) for p in panes.items(a, a + 3)] == whole
    assert panes.items(8) == whole[8:]
    assert panes.items(4, 100) == whole[4:]
    assert panes.items(5, 5) == []
    panes["x"] = (0.0, 0)  # the dict fallback
    assert panes.items(9, 11) == [(9, (9.0, 9)), ("x", (0.0, 0))]
