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
