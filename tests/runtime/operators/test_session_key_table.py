"""The session operators' key -> open session(s) map (``window_udf.SessionMap``): small
non-negative int keys are slots of a C array, every other key is in a dict, and nothing a user
sees differs from the dicts the operators kept before.

The map against a dict under random operations (keys equal across types — ``1``, ``1.0``,
``True`` — are one key, with the key object a dict keeps); its slots growing over keys that
waited in the dict and going when the sessions close. The one-phase and two-phase (GLOBAL)
session operators with the map against the same operators on plain dicts (the layout before):
the same results in the same order, the same late records, snapshots with the same content that
restore into either layout, also at another parallelism.
"""

from __future__ import annotations

import operator
import pickle
import random

import numpy as np
import pytest

from flinkcore._core.serde import loads
from flinkcore._core.window_udf import SessionMap
from flinkcore.common.watermark import Watermark
from flinkcore.datastream.window import TimeWindow
from flinkcore.runtime.operators.local_sessions import GlobalSessionOperator, LocalSessionOperator
from flinkcore.runtime.operators.window import InternalWindowFunction, SessionWindowOperator, WindowStateSpec
from flinkcore.runtime.testing import (
    KeyedOneInputStreamOperatorTestHarness,
    OneInputStreamOperatorTestHarness,
)
from flinkcore.state.key_groups import key_group_of

MAX = (1 << 63) - 1
LATE = "late"

#: keys by kind: slots (small ints, also as bool / float / numpy), the dict (negative, huge,
#: past the slots' limit, strings, tuples), and both at once
KEYS = {
    "small": list(range(9)),
    "sparse": [0, 3, 5000, 70_000, 1 << 21],
    "dict": [-1, -7, 1 << 40, 1 << 22, "a", ("t", 1)],
    "equal": [1, 1.0, True, False, 0, np.int64(2), 2, 2.0],
    "mixed": [0, 1, 1 << 40, -3, "x", 3.0, True, 5000, (1 << 22) - 1],
    "distinct": [0, 1, 1 << 40, -3, "x", 3.0, np.int64(7), 5000, (1 << 22) - 1],
}


def typed(mapping):
    """``{(type, key): value}``: equal keys of different types told apart."""
    return {(type(k).__name__, k): v for k, v in mapping}


# -- the map on its own ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_map_behaves_as_a_dict(seed):
    rng = random.Random(seed)
    pool = [k for ks in KEYS.values() for k in ks] + [rng.randrange(3000) for _ in range(60)]
    m, d = SessionMap(), {}
    for step in range(rng.randint(50, 600)):
        key = rng.choice(pool)
        op = rng.random()
        if op < 0.5:
            m[key] = d[key] = step
        elif op < 0.7:
            assert m.pop(key, None) == d.pop(key, None)
        elif op < 0.8:
            if key in d:
                del d[key]
                del m[key]
            else:
                with pytest.raises(KeyError):
                    del m[key]
                with pytest.raises(KeyError):
                    m.pop(key)
        else:
            assert m.get(key) == d.get(key)
            assert (key in m) == (key in d)
            if key not in d:
                with pytest.raises(KeyError):
                    m[key]
        assert len(m) == len(d) and bool(m) == bool(d)
    assert typed(m.items()) == typed(d.items())
    assert sorted(map(repr, m.keys())) == sorted(map(repr, d.keys()))
    assert sorted(map(repr, m)) == sorted(map(repr, d))
    assert sorted(m.values()) == sorted(d.values())
    copy = pickle.loads(pickle.dumps(m))
    assert typed(copy.items()) == typed(d.items())
    m.clear()
    assert len(m) == 0 and m.capacity == 0 and m.items() == []


def test_equal_keys_share_an_entry_and_keep_the_first_key_object():
    m = SessionMap()
    m[True] = "a"
    m[1] = "b"
    m[1.0] = "c"
    assert len(m) == 1 and m[1] == m[True] == m[np.int64(1)] == "c"
    assert [type(k) for k in m.keys()] == [bool]  # a dict keeps the key it was first set with
    del m[1]
    m[1] = "d"
    assert [type(k) for k in m.keys()] == [int] and m.get(True) == "d"
    m[-1] = m[1 << 40] = m["s"] = "x"
    assert m.in_slots == 1 and len(m) == 4


def test_int_keys_move_into_the_slots_as_the_keys_make_them_dense():
    m = SessionMap()
    m[100_000] = "far"  # alone, 100k slots would be sparse: kept in the dict
    assert m.capacity < 100_000 and m.in_slots == 0
    keys = random.Random(1).sample(range(100_000), 20_000)
    for k in keys:
        m[k] = k
    assert m.capacity > 100_000 and m.in_slots == len(m) == 20_001 and m[100_000] == "far"
    m[(1 << 22) + 5] = "past the limit"
    m[-5] = "negative"
    assert m.in_slots == len(m) - 2
    low = [k for k in keys if k < 500]
    del m[100_000]
    for k in keys:
        if k >= 500:
            del m[k]
    assert 500 <= m.capacity <= 2048  # shrunk to the highest key held
    assert sorted(k for k in m.keys() if type(k) is int and 0 <= k < 1 << 22) == sorted(low)
    for k in low:
        del m[k]
    assert m.capacity == 0 and m.in_slots == 0  # the slots go with the last key they held
    assert m.get((1 << 22) + 5) == "past the limit" and m[-5] == "negative" and len(m) == 2


def test_loops_refuse_other_maps():
    from flinkcore._core.window_udf import Cursor, session_batch

    with pytest.raises(TypeError, match="SessionMap or a dict"):
        session_batch(Cursor(), [], [], None, None, None, 0, None, 0, 10, 0, 1, None, max, [], {}, {})


# -- the operators: the map against the dicts it replaces ----------------------------------------


def reduce_spec():
    return WindowStateSpec("reducing", reduce=lambda a, b: (a[0], a[1] + b[1], min(a[2], b[2])))


def with_window(key, window, ctx, value):
    return [(repr(key), window.start, window.end, value)]


def make_op(gap, passthrough):
    fn = (
        InternalWindowFunction(lambda key, window, ctx, value: (value,), passthrough=True)
        if passthrough
        else InternalWindowFunction(with_window)
    )
    return SessionWindowOperator(gap, reduce_spec(), fn, TimeWindow, late_data_tag=LATE)


def dict_layout(op):
    """The operator on plain dicts, as before the map (the loops take both)."""
    op._single, op._multi = {}, {}
    return op


def script_of(rng, keys, n):
    """Batches of ``(key, 1, ident)`` with timestamps (out of order, some late) and watermarks."""
    out, t, wm, ident = [], 0, -(1 << 62), 0
    while ident < n:
        if rng.random() < 0.2:
            wm = max(wm, t - rng.randint(0, 30))
            out.append(("w", wm))
            continue
        values, stamps = [], []
        for _ in range(rng.randint(1, 30)):
            t += rng.randint(0, 4)
            values.append((rng.choice(keys), 1, ident))
            stamps.append(t - rng.randint(0, 40) if rng.random() < 0.3 else t)
            ident += 1
        out.append(("b", values, stamps))
    return out


def feed(h, steps):
    for step in steps:
        if step[0] == "w":
            h.process_watermark(step[1])
        else:
            h.process_elements(step[1], step[2])


def records(h):
    return [
        ("wm", r.timestamp) if isinstance(r, Watermark) else (r.value, r.timestamp) for r in h.get_output()
    ]


def owns(h, key):
    """Whether the harness's instance owns ``key``'s key group (the keyed exchange's routing)."""
    kg_range = h.state_backend.key_group_range
    if kg_range is None:
        return True
    return kg_range[0] <= key_group_of(key, h.context.max_parallelism) <= kg_range[1]


def harness(op, **kw):
    return KeyedOneInputStreamOperatorTestHarness(op, key_selector=operator.itemgetter(0), **kw)


def sessions_content(snap):
    single, multi = loads(snap["operator"]["sessions"]) if "operator" in snap else loads(snap["sessions"])
    return typed(single.items()), typed(multi.items())


def operator_state(h):
    return h.operator.snapshot_operator_state()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("keys", list(KEYS))
@pytest.mark.parametrize("passthrough", [False, True])
def test_results_and_snapshots_equal_the_dict_layout(seed, keys, passthrough):
    rng = random.Random(f"{seed} {keys} {passthrough}")
    gap = rng.randint(2, 25)
    script = script_of(rng, KEYS[keys], 500)
    new, old = harness(make_op(gap, passthrough)), harness(dict_layout(make_op(gap, passthrough)))
    assert type(new.operator._single) is SessionMap
    for h in (new, old):
        h.open()
    for i, step in enumerate(script):
        feed(new, [step])
        feed(old, [step])
        if i % 25 == 0:
            assert sessions_content(operator_state(new)) == sessions_content(operator_state(old))
            assert new.operator.open_sessions() == old.operator.open_sessions()
    assert records(new) == records(old)  # the same results in the same order
    assert new.get_side_output_values(LATE) == old.get_side_output_values(LATE)
    for h in (new, old):
        h.process_watermark(MAX)
    assert records(new) == records(old)
    assert new.operator.open_sessions() == 0 and len(new.operator._single) == 0


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("keys", ["small", "sparse", "distinct"])
def test_snapshots_restore_across_layouts_and_parallelisms(seed, keys):
    """A snapshot of either layout, restored into either layout at parallelism 1, 2 and 3 (each
    instance keeps its key groups' sessions), gives the results of the uninterrupted run. (Not
    with keys equal across types, ``1`` and ``True``: a snapshot keeps the map's key object,
    which may not be the session's, in both layouts alike.)"""
    rng = random.Random(f"{seed} {keys} r")
    gap = rng.randint(2, 25)
    script = script_of(rng, KEYS[keys], 400)
    cut = rng.randint(1, len(script) - 2)
    last_wm = max([-(1 << 62)] + [s[1] for s in script[:cut] if s[0] == "w"])
    whole = harness(make_op(gap, False))
    whole.open()
    feed(whole, script + [("w", MAX)])
    expected = sorted((r for r in records(whole) if r[0] != "wm"), key=repr)
    for layout_before in (False, True):
        before = [harness(make_op(gap, False), parallelism=2, subtask_index=i) for i in range(2)]
        for h in before:
            if layout_before:
                dict_layout(h.operator)
            h.open()
        for step in script[:cut]:  # each instance gets its key groups' records
            for h in before:
                owned = [] if step[0] == "w" else [j for j, v in enumerate(step[1]) if owns(h, v[0])]
                if step[0] == "w":
                    feed(h, [step])
                elif owned:
                    feed(h, [("b", [step[1][j] for j in owned], [step[2][j] for j in owned])])
        snaps = [h.snapshot() for h in before]
        out_before = [r for h in before for r in records(h) if r[0] != "wm"]
        late_before = [v for h in before for v in h.get_side_output_values(LATE)]
        for layout_after in (False, True):
            for p in (1, 2, 3):
                after = [harness(make_op(gap, False), parallelism=p, subtask_index=i) for i in range(p)]
                out, late = list(out_before), list(late_before)
                for h in after:
                    if layout_after:
                        dict_layout(h.operator)
                    h.initialize_state(*snaps)
                    h.open()
                    h.process_watermark(last_wm)
                    for step in script[cut:] + [("w", MAX)]:
                        if step[0] == "w":
                            feed(h, [step])
                            continue
                        owned = [j for j, v in enumerate(step[1]) if owns(h, v[0])]
                        if owned:
                            feed(h, [("b", [step[1][j] for j in owned], [step[2][j] for j in owned])])
                    out += [r for r in records(h) if r[0] != "wm"]
                    late += h.get_side_output_values(LATE)
                assert sorted(out, key=repr) == expected, (layout_before, layout_after, p)
                assert sorted(late, key=repr) == sorted(whole.get_side_output_values(LATE), key=repr)


def test_closed_sessions_free_their_slots():
    """Memory follows the open sessions: 60k keys' sessions, then all closed."""
    op = make_op(10, True)
    h = harness(op)
    h.open()
    keys = list(range(60_000))
    random.Random(5).shuffle(keys)
    h.process_elements([(k, 1, k) for k in keys], [100] * len(keys))
    assert op.open_sessions() == 60_000 and op._single.in_slots == 60_000
    assert op._single.capacity >= 60_000
    h.process_watermark(200)
    assert op.open_sessions() == 0 and op._single.capacity == 0
    assert len(h.extract_output_values()) == 60_000


# -- the two-phase GLOBAL operator ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("keys", ["small", "mixed", "equal"])
def test_global_operator_equals_the_dict_layout(seed, keys):
    """Partials, extents and records from two local operators into the GLOBAL operator: with the
    map and with dicts, the same results in order, the same late records and snapshots."""
    rng = random.Random(f"{seed} {keys} g")
    gap = rng.choice([3, 10, 40])
    spec = reduce_spec()
    key_of = operator.itemgetter(0)

    def global_op():
        return GlobalSessionOperator(
            gap, spec, InternalWindowFunction(with_window), TimeWindow, late_data_tag=LATE
        )

    new, old = harness(global_op()), harness(dict_layout(global_op()))
    locals_ = [
        OneInputStreamOperatorTestHarness(LocalSessionOperator(gap, 1, None, spec.reduce, key_of, "local"))
        for _ in range(2)
    ]
    for h in (new, old, *locals_):
        h.open()
    scripts = [script_of(rng, KEYS[keys], 300) for _ in locals_]
    marks, current, pos = [-(1 << 62)] * 2, -(1 << 62), [0, 0]
    while pos[0] < len(scripts[0]) or pos[1] < len(scripts[1]):
        c = rng.choice([i for i in range(2) if pos[i] < len(scripts[i])])
        step = scripts[c][pos[c]]
        pos[c] += 1
        feed(locals_[c], [step])
        out = locals_[c].get_output()
        locals_[c].clear_output()
        values = [r.value for r in out if not isinstance(r, Watermark)]
        if values:
            ts = [r.timestamp for r in out if not isinstance(r, Watermark)]
            new.process_elements(values, ts)
            old.process_elements(list(values), list(ts))
        if step[0] == "w":
            marks[c] = max(marks[c], step[1])
            if min(marks) > current:
                current = min(marks)
                new.process_watermark(current)
                old.process_watermark(current)
                assert sessions_content(operator_state(new)) == sessions_content(operator_state(old))
    assert records(new) == records(old)
    assert new.get_side_output_values(LATE) == old.get_side_output_values(LATE)
