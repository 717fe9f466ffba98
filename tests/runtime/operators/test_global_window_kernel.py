"""The global window of two-phase aggregation folds partials in its compiled loop
(``window_udf.KIND_FOLD_PARTIAL``): the results, late firings and late side output equal those
of the same operator on its Python loop (``MergePartials.add`` / ``ReducePartials.add`` per
partial), for int, str and mixed keys, with allowed lateness; a window's first partial is its
accumulator as it is (the user's merge is not called with a new accumulator); a failing merge
names the operator and the partial."""

from __future__ import annotations

import operator
import random

import pytest
from test_window_udf import KEYS, LATE, SumCount, _seed, python_twin, random_batches, run, window_function

from flinkcore._core import window_udf
from flinkcore.datastream.window import TimeWindow
from flinkcore.runtime.operators.base import UserCodeError
from flinkcore.runtime.operators.local_agg import GlobalWindowOperator, MergePartials, ReducePartials
from flinkcore.runtime.operators.window import WindowStateSpec, key_index_of

_partial_key = operator.itemgetter(0)


def _reduce(a, b):
    return (a[0], a[1] + b[1], a[2])


def _operator(derived, passthrough: bool = True, **kwargs) -> GlobalWindowOperator:
    """A global tumbling window of 10 over partials of ``derived`` (MergePartials/ReducePartials)."""
    return GlobalWindowOperator(
        10,
        10,
        0,
        WindowStateSpec("aggregating", aggregate=derived),
        window_function(passthrough),
        TimeWindow,
        **kwargs,
    )


def global_window(kind: str, lateness: int, passthrough: bool) -> GlobalWindowOperator:
    derived = MergePartials(SumCount()) if kind == "merge" else ReducePartials(_reduce)
    return _operator(derived, passthrough, allowed_lateness=lateness, late_data_tag=LATE)


def as_partials(script, kind: str, rng: random.Random):
    """Each record ``(key, value, ident)`` as a partial: ``(key, accumulator)`` (or, now and then,
    a late single ``(key, accumulator, record)``) for merge, ``(key, record)`` for reduce."""
    agg = SumCount()
    out = []
    for step in script:
        if step[0] != "b":
            out.append(step)
            continue
        partials = []
        for record in step[1]:
            part = agg.add(record, agg.create_accumulator()) if kind == "merge" else record
            partials.append((record[0], part, record) if rng.random() < 0.2 else (record[0], part))
        out.append(("b", partials, step[2]))
    return out


def test_the_global_window_uses_the_partial_kinds():
    for kind in ("merge", "reduce"):
        op = global_window(kind, 0, passthrough=True)
        run(op, [("w", 0)], key_selector=_partial_key)
        assert op._kernel_functions[0] == window_udf.KIND_FOLD_PARTIAL
    assert key_index_of(_partial_key) == 0
    assert key_index_of(operator.itemgetter(0, 1)) == -1
    assert key_index_of(operator.itemgetter("a")) == -1


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kind", ["merge", "reduce"])
@pytest.mark.parametrize("keys", ["int", "str", "mixed", "equal numbers"])
@pytest.mark.parametrize("passthrough", [True, False])
def test_compiled_partials_equal_the_python_loop(seed, kind, keys, passthrough):
    rng = random.Random(_seed(seed, kind, keys, passthrough))
    lateness = rng.choice([0, 0, 15])
    script = as_partials(random_batches(rng, 300, KEYS[keys]), kind, rng)
    compiled = run(global_window(kind, lateness, passthrough), script, key_selector=_partial_key)
    twin = run(global_window(kind, lateness, passthrough), script, twin=True, key_selector=_partial_key)
    assert compiled == twin
    assert any(item[0] != "wm" for item in compiled[0])


def test_python_twin_is_really_the_python_loop():
    op = global_window("merge", 0, passthrough=True)
    run(op, [("w", 0)], key_selector=_partial_key)
    assert python_twin(op)._use_compiled is False


def test_a_failing_merge_names_the_operator_and_the_partial():
    class Failing(SumCount):
        def merge(self, a, b):
            if b[0] == 7.0:
                raise ValueError("no sevens")
            return super().merge(a, b)

    op = _operator(MergePartials(Failing()), name="GlobalWindow")
    script = [("b", [(2, (7.0, 1)), (1, (1.0, 1)), (2, (7.0, 1))], [1, 2, 3])]
    with pytest.raises(UserCodeError) as info:
        run(op, script, key_selector=_partial_key)
    assert "GlobalWindow" in str(info.value)
    assert "(2, (7.0, 1))" in str(info.value)


def test_the_first_partial_is_the_accumulator_as_it_is():
    class Counting(SumCount):
        merges = 0

        def create_accumulator(self):
            raise AssertionError("the global window makes no new accumulator")

        def merge(self, a, b):
            Counting.merges += 1
            return super().merge(a, b)

    for twin in (False, True):
        Counting.merges = 0
        first = (1.5, 2)
        op = _operator(MergePartials(Counting()))
        script = [("b", [(1, first), (2, (2.0, 1)), (2, (3.0, 1))], [1, 2, 3]), ("w", 9)]
        out, _ = run(op, script, twin=twin, key_selector=_partial_key)
        results = [item[0] for item in out if item[0] != "wm"]
        assert results == [first, (5.0, 2)]
        assert results[0] is first
        assert Counting.merges == 1
