"""The LMDB keyed state backend: the same behaviour as the heap backend, on disk, in batches."""

import threading

import pytest

from flinkcore.state import (
    AggregatingStateDescriptor,
    HeapKeyedStateBackend,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)
from flinkcore.state.key_groups import key_group_of
from flinkcore.state.lmdb_backend import LmdbKeyedStateBackend


class Clock:
    def __init__(self):
        self.now = 1_000

    def __call__(self):
        return self.now


class SumAgg:
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, acc):
        return (acc[0] + value, acc[1] + 1)

    def get_result(self, acc):
        return acc[0] / acc[1]

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


@pytest.fixture(params=["heap", "lmdb"])
def make_backend(request, tmp_path):
    made = []

    def make(**kwargs):
        if request.param == "heap":
            backend = HeapKeyedStateBackend(**kwargs)
        else:
            backend = LmdbKeyedStateBackend(path=str(tmp_path / f"db{len(made)}"), **kwargs)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.dispose()


def test_value_state_is_scoped_by_key(make_backend):
    backend = make_backend()
    state = backend.get_or_create_state(ValueStateDescriptor("count"))
    for key, n in [("a", 1), ("b", 2), ("a", 3), (7, 4), (("x", 1), 5)]:
        backend.set_current_key(key)
        state.update((state.value() or 0) + n)
    expected = {"a": 4, "b": 2, 7: 4, ("x", 1): 5}
    for key, total in expected.items():
        backend.set_current_key(key)
        assert state.value() == total
    backend.set_current_key("a")
    state.clear()
    assert state.value() is None
    assert sorted(map(str, backend.keys("count"))) == sorted(map(str, [7, "b", ("x", 1)]))


def test_list_map_reducing_aggregating(make_backend):
    backend = make_backend()
    lst = backend.get_or_create_state(ListStateDescriptor("l"))
    mp = backend.get_or_create_state(MapStateDescriptor("m"))
    red = backend.get_or_create_state(ReducingStateDescriptor("r", lambda a, b: a + b))
    agg = backend.get_or_create_state(AggregatingStateDescriptor("g", SumAgg()))
    backend.set_current_key("k")
    assert list(lst.get()) == [] and mp.is_empty() and red.get() is None and agg.get() is None
    lst.add(1)
    lst.add_all([2, 3])
    mp.put("x", 1)
    mp.put_all({"y": 2, "z": 3})
    mp.remove("z")
    for v in (1, 2, 3):
        red.add(v)
        agg.add(v)
    backend.set_current_key("other")
    lst.update([9])
    mp.put("x", 100)
    backend.set_current_key("k")
    assert list(lst.get()) == [1, 2, 3]
    assert dict(mp.items()) == {"x": 1, "y": 2}
    assert sorted(mp.keys()) == ["x", "y"] and sorted(mp.values()) == [1, 2]
    assert mp.get("x") == 1 and mp.get("nope") is None and mp.contains("y") and not mp.contains("z")
    assert red.get() == 6 and agg.get() == 2.0
    with pytest.raises(ValueError, match="null"):
        lst.add(None)
    mp.clear()
    assert mp.is_empty()
    backend.set_current_key("other")
    assert dict(mp.items()) == {"x": 100} and list(lst.get()) == [9]


def test_namespaces_and_merging(make_backend):
    backend = make_backend()
    lst = backend.get_or_create_state(ListStateDescriptor("contents"))
    red = backend.get_or_create_state(ReducingStateDescriptor("sum", lambda a, b: a + b))
    backend.set_current_key("k")
    for ns, values in [((0, 10), [1, 2]), ((5, 15), [3]), ((20, 30), [4])]:
        lst.set_current_namespace(ns)
        red.set_current_namespace(ns)
        lst.add_all(values)
        for v in values:
            red.add(v)
    lst.merge_namespaces((0, 15), [(0, 10), (5, 15)])
    red.merge_namespaces((0, 15), [(0, 10), (5, 15)])
    lst.set_current_namespace((0, 15))
    red.set_current_namespace((0, 15))
    assert sorted(lst.get()) == [1, 2, 3] and red.get() == 6
    lst.set_current_namespace((0, 10))
    assert list(lst.get()) == []
    assert backend.keys("contents", (20, 30)) == ["k"]
    assert sorted(backend.namespaces("sum")) == [(0, 15), (20, 30)]


def test_ttl_expires_and_refreshes(make_backend):
    clock = Clock()
    backend = make_backend(ttl_time_provider=clock)
    ttl = StateTtlConfig.new_builder(100).update_ttl_on_read_and_write().build()
    desc = ValueStateDescriptor("v")
    desc.enable_time_to_live(ttl)
    mdesc = MapStateDescriptor("m")
    mdesc.enable_time_to_live(StateTtlConfig.new_builder(100).build())
    value = backend.get_or_create_state(desc)
    mp = backend.get_or_create_state(mdesc)
    backend.set_current_key("k")
    value.update("v")
    mp.put("a", 1)
    clock.now += 60
    assert value.value() == "v"  # read refreshes (OnReadAndWrite)
    mp.put("b", 2)
    clock.now += 60
    assert value.value() == "v"
    assert dict(mp.items()) == {"b": 2}  # "a" was written 120 ms ago, never refreshed
    clock.now += 101
    assert value.value() is None and mp.is_empty()


def test_snapshot_restore_round_trip_and_key_group_ranges(make_backend):
    backend = make_backend(max_parallelism=8)
    value = backend.get_or_create_state(ValueStateDescriptor("v"))
    mp = backend.get_or_create_state(MapStateDescriptor("m"))
    keys = list(range(40))
    for k in keys:
        backend.set_current_key(k)
        value.update(k * 10)
        mp.put("sq", k * k)
    snap = backend.snapshot()
    backend.set_current_key(0)
    value.update(-1)  # after the snapshot: not in it

    low = make_backend(max_parallelism=8, key_group_range=(0, 3))
    high = make_backend(max_parallelism=8, key_group_range=(4, 7))
    for part in (low, high):
        part.restore([snap])
    for k in keys:
        owner, other = (low, high) if key_group_of(k, 8) <= 3 else (high, low)
        for b in (owner, other):
            b.set_current_key(k)
        assert owner.get_or_create_state(ValueStateDescriptor("v")).value() == k * 10
        assert owner.get_or_create_state(MapStateDescriptor("m")).get("sq") == k * k
        assert other.get_or_create_state(ValueStateDescriptor("v")).value() is None


def test_lmdb_restores_a_heap_snapshot(tmp_path):
    heap = HeapKeyedStateBackend()
    v = heap.get_or_create_state(ValueStateDescriptor("v"))
    m = heap.get_or_create_state(MapStateDescriptor("m"))
    lst = heap.get_or_create_state(ListStateDescriptor("l"))
    for k in ("a", "b"):
        heap.set_current_key(k)
        v.update(k.upper())
        m.put(1, k)
        lst.add_all([k, k])
    lmdb_backend = LmdbKeyedStateBackend(path=str(tmp_path / "db"))
    lmdb_backend.restore([heap.snapshot()])
    v2 = lmdb_backend.get_or_create_state(ValueStateDescriptor("v"))
    m2 = lmdb_backend.get_or_create_state(MapStateDescriptor("m"))
    l2 = lmdb_backend.get_or_create_state(ListStateDescriptor("l"))
    lmdb_backend.set_current_key("b")
    assert v2.value() == "B" and m2.get(1) == "b" and list(l2.get()) == ["b", "b"]
    lmdb_backend.dispose()


def test_at_most_one_write_transaction_per_batch(tmp_path):
    backend = LmdbKeyedStateBackend(path=str(tmp_path / "db"), flush_threshold=1_000)
    state = backend.get_or_create_state(ValueStateDescriptor("sum"))
    env = backend._store.env
    before = env.info()["last_txnid"]

    def batch(start, end):
        backend.start_batch()
        for i in range(start, end):
            backend.set_current_key(i % 2_000)
            state.update((state.value() or 0) + i)
        backend.finish_batch()

    batch(0, 500)  # 500 changed keys: below the threshold, kept in the cache
    assert env.info()["last_txnid"] == before
    batch(500, 5_000)  # now past it: everything written in one transaction
    assert env.info()["last_txnid"] == before + 1
    backend.set_current_key(7)
    assert state.value() == sum(range(7, 5_000, 2_000))
    backend.dispose()
    reopened = LmdbKeyedStateBackend(path=str(tmp_path / "db"))
    rstate = reopened.get_or_create_state(ValueStateDescriptor("sum"))
    reopened.set_current_key(7)
    assert rstate.value() == sum(range(7, 5_000, 2_000))  # committed, not only cached
    reopened.dispose()


def test_map_full_never_reaches_the_user(tmp_path):
    backend = LmdbKeyedStateBackend(path=str(tmp_path / "db"), map_size=64 * 1024, flush_threshold=1)
    state = backend.get_or_create_state(ValueStateDescriptor("blob"))
    backend.start_batch()
    for i in range(2_000):
        backend.set_current_key(i)
        state.update("x" * 500)
    backend.finish_batch()
    assert backend._store.env.info()["map_size"] > 64 * 1024
    backend.set_current_key(1_999)
    assert state.value() == "x" * 500
    backend.dispose()


def test_async_snapshot_is_consistent_while_writes_go_on(tmp_path):
    backend = LmdbKeyedStateBackend(path=str(tmp_path / "db"))
    state = backend.get_or_create_state(ValueStateDescriptor("v"))
    for k in range(1_000):
        backend.set_current_key(k)
        state.update(1)
    materialize = backend.snapshot_async()
    backend.start_batch()
    for k in range(1_000):
        backend.set_current_key(k)
        state.update(2)
    backend.finish_batch()
    result = {}
    thread = threading.Thread(target=lambda: result.update(snap=materialize()))
    thread.start()
    thread.join()
    restored = LmdbKeyedStateBackend(path=str(tmp_path / "db2"))
    restored.restore([result["snap"]])
    rstate = restored.get_or_create_state(ValueStateDescriptor("v"))
    assert len(backend.keys("v")) == 1_000
    for k in (0, 500, 999):
        restored.set_current_key(k)
        backend.set_current_key(k)
        assert rstate.value() == 1 and state.value() == 2
    backend.dispose()
    restored.dispose()


def test_state_survives_reopening_the_directory(tmp_path):
    backend = LmdbKeyedStateBackend(path=str(tmp_path / "db"))
    state = backend.get_or_create_state(ValueStateDescriptor("v"))
    backend.set_current_key("persist")
    state.update({"n": 1})
    backend.flush()
    backend.dispose()
    reopened = LmdbKeyedStateBackend(path=str(tmp_path / "db"))
    state = reopened.get_or_create_state(ValueStateDescriptor("v"))
    reopened.set_current_key("persist")
    assert state.value() == {"n": 1}
    reopened.dispose()


class MutatingAgg:
    """An AggregateFunction that changes its accumulator in place, as users write them."""

    def create_accumulator(self):
        return [0]

    def add(self, value, acc):
        acc[0] += value
        return acc

    def get_result(self, acc):
        return acc[0]

    def merge(self, a, b):
        a[0] += b[0]
        return a


def test_a_deferred_snapshot_is_the_state_at_snapshot_time(make_backend):
    from flinkcore.state.snapshots import deferred_snapshots, resolve_deferred

    backend = make_backend()
    value = backend.get_or_create_state(ValueStateDescriptor("v"))
    acc = backend.get_or_create_state(AggregatingStateDescriptor("a", MutatingAgg()))
    for k in range(100):
        backend.set_current_key(k)
        value.update(k)
        acc.add(k)
    with deferred_snapshots():
        deferred = backend.snapshot()
    for k in range(100):  # changes after the snapshot, cached and written, must not leak in
        backend.set_current_key(k)
        value.update(-1)
        acc.add(1000)
    if hasattr(backend, "flush"):
        backend.flush()
    restored = make_backend()
    restored.restore([resolve_deferred(deferred)])
    rvalue = restored.get_or_create_state(ValueStateDescriptor("v"))
    racc = restored.get_or_create_state(AggregatingStateDescriptor("a", MutatingAgg()))
    for k in (0, 42, 99):
        restored.set_current_key(k)
        assert rvalue.value() == k and racc.get() == k


def test_ttl_of_list_reducing_and_aggregating_state(make_backend):
    clock = Clock()
    backend = make_backend(ttl_time_provider=clock)
    ttl = StateTtlConfig.new_builder(100).build()
    descriptors = [
        ListStateDescriptor("l"),
        ReducingStateDescriptor("r", lambda a, b: a + b),
        AggregatingStateDescriptor("g", SumAgg()),
    ]
    for d in descriptors:
        d.enable_time_to_live(ttl)
    lst, red, agg = (backend.get_or_create_state(d) for d in descriptors)
    backend.set_current_key("k")
    lst.add(1)
    red.add(1)
    agg.add(1)
    clock.now += 60
    lst.add(2)  # each list element has its own timestamp
    red.add(2)  # a write refreshes the folded value
    agg.add(3)
    clock.now += 60
    assert list(lst.get()) == [2] and red.get() == 3 and agg.get() == 2.0
    clock.now += 100
    assert list(lst.get()) == [] and red.get() is None and agg.get() is None


def test_heap_restores_an_lmdb_snapshot(tmp_path):
    source = LmdbKeyedStateBackend(path=str(tmp_path / "db"))
    v = source.get_or_create_state(ValueStateDescriptor("v"))
    m = source.get_or_create_state(MapStateDescriptor("m"))
    lst = source.get_or_create_state(ListStateDescriptor("l"))
    for k in ("a", "b"):
        source.set_current_key(k)
        v.update(k.upper())
        m.put_all({1: k, (2, "x"): k * 2})
        lst.add_all([k, k])
    heap = HeapKeyedStateBackend()
    heap.restore([source.snapshot()])
    source.dispose()
    heap.set_current_key("b")
    assert heap.get_or_create_state(ValueStateDescriptor("v")).value() == "B"
    assert dict(heap.get_or_create_state(MapStateDescriptor("m")).items()) == {1: "b", (2, "x"): "bb"}
    assert list(heap.get_or_create_state(ListStateDescriptor("l")).get()) == ["b", "b"]
