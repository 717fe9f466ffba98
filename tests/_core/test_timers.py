"""TimerQueue (native and heapq reference): de-duplication, deletion, ordered firing, snapshots."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flinkcore._core import timers as native
from flinkcore._core._reference import timers as ref

impls = pytest.mark.parametrize("T", [native.TimerQueue, ref.TimerQueue], ids=["native", "reference"])
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@impls
def test_register_is_deduplicated_and_advance_pops_in_order(T):
    q = T()
    assert q.register(10, "a", "w1")
    assert not q.register(10, "a", "w1")
    assert q.register(10, "a", "w2")
    assert q.register(5, "b", None)
    assert q.register(20, ("k", 1), 3)
    assert len(q) == 4 and q.peek() == 5
    assert q.advance(9) == [(5, "b", None)]
    assert q.advance(10) == [(10, "a", "w1"), (10, "a", "w2")]  # ties: registration order
    assert q.advance(10) == []
    assert q.peek() == 20 and len(q) == 1


@impls
def test_delete(T):
    q = T()
    q.register(1, "a")
    q.register(2, "a")
    assert q.delete(1, "a")
    assert not q.delete(1, "a")
    assert not q.delete(3, "zz")
    assert q.peek() == 2
    assert q.register(1, "a")  # can be registered again after deletion
    assert q.advance(INT64_MAX) == [(1, "a", None), (2, "a", None)]
    assert q.peek() is None and len(q) == 0


@impls
def test_int64_extremes(T):
    q = T()
    q.register(INT64_MAX, "end")
    q.register(INT64_MIN, "start")
    assert q.advance(INT64_MIN) == [(INT64_MIN, "start", None)]
    assert q.advance(INT64_MAX - 1) == []
    assert q.advance(INT64_MAX) == [(INT64_MAX, "end", None)]
    with pytest.raises(OverflowError):
        q.register(2**63, "x")


@impls
def test_unhashable_keys_raise_and_leave_the_queue_intact(T):
    q = T()
    q.register(1, "a")
    with pytest.raises(TypeError):
        q.register(2, ["unhashable"])
    assert len(q) == 1 and q.advance(10) == [(1, "a", None)]


@impls
def test_snapshot_restore_round_trip_keeps_order(T):
    q = T()
    for i, ts in enumerate([5, 3, 5, 1, 3]):
        q.register(ts, f"k{i}", "ns")
    q.delete(3, "k1", "ns")
    snap = q.snapshot()
    assert snap == [(1, "k3", "ns"), (3, "k4", "ns"), (5, "k0", "ns"), (5, "k2", "ns")]
    assert all(type(t) is tuple for t in snap)
    r = T()
    r.register(99, "old")
    r.restore(snap)
    assert r.snapshot() == snap
    assert r.advance(INT64_MAX) == snap


@impls
def test_pop_until_sees_timers_registered_while_firing(T):
    q = T()
    q.register(10, "a")
    fired = []
    while (t := q.pop_until(100)) is not None:
        fired.append(t)
        if t[1] == "a":
            q.register(5, "b")  # earlier than the current time: fires in the same advance
    assert fired == [(10, "a", None), (5, "b", None)]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.integers(-50, 50), st.integers(0, 5), st.sampled_from([None, "w"])),
        st.tuples(st.just("delete"), st.integers(-50, 50), st.integers(0, 5), st.sampled_from([None, "w"])),
        st.tuples(st.just("advance"), st.integers(-60, 60)),
        st.tuples(st.just("pop_batch"), st.integers(-60, 60)),
        st.tuples(st.just("pop_timers"), st.integers(-60, 60)),
        st.tuples(st.just("peek")),
        st.tuples(st.just("snapshot")),
    ),
    max_size=200,
)


@given(ops)
@settings(max_examples=300)
def test_native_matches_heapq_and_set_model(script):
    q = native.TimerQueue()
    r = ref.TimerQueue()
    registered: set = set()  # the model: a set, and sorting for order
    order: dict = {}
    for n, op in enumerate(script):
        if op[0] == "register":
            entry = op[1:]
            expect = entry not in registered
            registered.add(entry)
            order.setdefault(entry, n)
            assert q.register(*entry) == r.register(*entry) == expect
        elif op[0] == "delete":
            entry = op[1:]
            expect = entry in registered
            registered.discard(entry)
            order.pop(entry, None)
            assert q.delete(*entry) == r.delete(*entry) == expect
        elif op[0] == "advance":
            due = sorted((e for e in registered if e[0] <= op[1]), key=lambda e: (e[0], order[e]))
            registered -= set(due)
            for e in due:
                del order[e]
            assert q.advance(op[1]) == r.advance(op[1]) == due
        elif op[0] in ("pop_batch", "pop_timers"):  # the due timers of the earliest timestamp only
            first = min((e[0] for e in registered), default=None)
            due = [] if first is None or first > op[1] else [e for e in registered if e[0] == first]
            due.sort(key=lambda e: order[e])
            registered -= set(due)
            for e in due:
                del order[e]
            if op[0] == "pop_batch":
                assert q.pop_batch(op[1]) == r.pop_batch(op[1]) == due
            else:  # the same timers as FiredTimer objects (the reference pops tuples)
                fired = [(t.timestamp, t.key, t.namespace) for t in q.pop_timers(op[1])]
                assert fired == r.pop_batch(op[1]) == due
        elif op[0] == "peek":
            expect = min((e[0] for e in registered), default=None)
            assert q.peek() == r.peek() == expect
        else:
            q2 = native.TimerQueue()
            q2.restore(q.snapshot())
            assert q2.snapshot() == q.snapshot() == r.snapshot()
        assert len(q) == len(r) == len(registered)


def test_large_queue():
    q = native.TimerQueue()
    n = 200_000
    for i in range(n):
        q.register((i * 7919) % n, i % 1000, None)
    assert len(q) == n
    fired = q.advance(2**63 - 1)
    assert [t[0] for t in fired] == sorted(t[0] for t in fired)
    assert len(fired) == n and len(q) == 0


@impls
def test_register_many_equals_one_by_one(T):
    import numpy as np

    ts = np.array([5, 3, 5, 5, 1], dtype=np.int64)
    keys = ["a", "b", "a", "c", "a"]
    q = T()
    assert q.register_many(ts, keys, "ns") == 4
    r = ref.TimerQueue()
    for t, k in zip(ts.tolist(), keys, strict=False):
        r.register(t, k, "ns")
    assert q.snapshot() == r.snapshot()
    assert q.register_many(ts, keys, ["x"] * 5) == 4
    with pytest.raises(ValueError, match="keys"):
        q.register_many(ts, keys[:2])


def test_many_deletions_keep_order_and_drop_dead_entries():
    """Deletion is lazy in the native heap (dead entries are dropped at the top or by a rebuild once
    they outnumber the live ones): a long register/delete churn must keep the model's answers."""
    q = native.TimerQueue()
    r = ref.TimerQueue()
    for i in range(3000):
        for t in (q, r):
            t.register(i % 97, i % 13, "ns")
        if i % 3:
            entry = ((i * 7) % 97, (i * 5) % 13, "ns")
            assert q.delete(*entry) == r.delete(*entry)
    assert len(q) == len(r)
    assert q.snapshot() == r.snapshot()
    assert q.peek() == r.peek()
    for wm in (10, 50, 96):
        assert q.advance(wm) == r.advance(wm)
    assert len(q) == len(r) == 0


@pytest.mark.parametrize("deleted", [0, 1, 500, 900])  # 900: dead entries outnumber live ones (a rebuild)
def test_delete_then_register_again_fires_once_in_registration_order(deleted):
    q = native.TimerQueue()
    for k in range(1000):
        q.register(7, k)
    for k in range(deleted):
        assert q.delete(7, k)
    for k in range(deleted):
        assert q.register(7, k)  # again: now after every timer that stayed
    fired = q.advance(7)
    assert [t[1] for t in fired] == list(range(deleted, 1000)) + list(range(deleted))


def test_sequence_renumbering_keeps_ties_in_registration_order():
    """The 32-bit registration sequence is renumbered when it runs out; forced here after 50."""
    q = native.TimerQueue()
    q._renumber_after(50)
    model = ref.TimerQueue()
    for i in range(400):
        for t in (q, model):
            t.register(i % 5, i, None)
        if i % 4 == 0:
            for t in (q, model):
                t.delete((i // 2) % 5, i // 2, None)
        if i % 60 == 59:
            assert q.advance(i % 5) == model.advance(i % 5)
    assert q.snapshot() == model.snapshot()
    assert q.advance(INT64_MAX) == model.advance(INT64_MAX)


def test_fired_timers_are_read_only_and_repr_like_internal_timer():
    q = native.TimerQueue()
    q.register(3, ("k", 1), "w")
    (t,) = q.pop_timers(3)
    assert (t.timestamp, t.key, t.namespace) == (3, ("k", 1), "w")
    assert repr(t) == "InternalTimer(3, ('k', 1), 'w')"
    with pytest.raises(AttributeError):
        t.timestamp = 4
    assert native.FiredTimer(1, "a", None).key == "a"
