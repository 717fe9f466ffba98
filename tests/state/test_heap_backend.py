import pytest

from flinkcore.common.time import Time
from flinkcore.runtime.processing_time import ManualClock
from flinkcore.state import (
    AggregatingStateDescriptor,
    HeapKeyedStateBackend,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)


class SumAgg:
    def create_accumulator(self):
        return [0, 0]

    def add(self, value, acc):
        return [acc[0] + value, acc[1] + 1]

    def get_result(self, acc):
        return acc[0] / acc[1]

    def merge(self, a, b):
        return [a[0] + b[0], a[1] + b[1]]


def test_value_state_is_scoped_by_key():
    b = HeapKeyedStateBackend()
    s = b.get_or_create_state(ValueStateDescriptor("v"))
    b.set_current_key("a")
    assert s.value() is None
    s.update(1)
    b.set_current_key("b")
    assert s.value() is None
    s.update(2)
    b.set_current_key("a")
    assert s.value() == 1
    s.clear()
    assert s.value() is None
    assert b.keys("v") == ["b"]


def test_same_descriptor_name_returns_same_state_and_kind_conflict_is_an_error():
    b = HeapKeyedStateBackend()
    assert b.get_or_create_state(ValueStateDescriptor("x")) is b.get_or_create_state(
        ValueStateDescriptor("x")
    )
    with pytest.raises(ValueError, match="registered as value state"):
        b.get_or_create_state(ListStateDescriptor("x"))


def test_list_map_reducing_aggregating():
    b = HeapKeyedStateBackend()
    b.set_current_key(1)
    ls = b.get_or_create_state(ListStateDescriptor("l"))
    assert list(ls.get()) == []
    ls.add(1)
    ls.add_all([2, 3])
    assert list(ls.get()) == [1, 2, 3]
    ls.update([9])
    assert list(ls.get()) == [9]
    ms = b.get_or_create_state(MapStateDescriptor("m"))
    assert ms.is_empty()
    ms.put("x", 1)
    ms.put_all({"y": 2})
    assert ms.get("x") == 1 and ms.contains("y") and not ms.contains("z")
    assert sorted(ms.items()) == [("x", 1), ("y", 2)]
    ms.remove("x")
    assert list(ms.keys()) == ["y"] and list(ms.values()) == [2]
    rs = b.get_or_create_state(ReducingStateDescriptor("r", lambda a, c: a + c))
    assert rs.get() is None
    rs.add(3)
    rs.add(4)
    assert rs.get() == 7
    ag = b.get_or_create_state(AggregatingStateDescriptor("a", SumAgg()))
    ag.add(2)
    ag.add(4)
    assert ag.get() == 3.0


def test_namespaces_and_merge():
    b = HeapKeyedStateBackend()
    b.set_current_key("k")
    ls = b.get_or_create_state(ListStateDescriptor("l"))
    for ns, v in (("w1", 1), ("w2", 2), ("w3", 3)):
        ls.set_current_namespace(ns)
        ls.add(v)
    ls.merge_namespaces("w1", ["w2", "w3"])
    ls.set_current_namespace("w1")
    assert sorted(ls.get()) == [1, 2, 3]
    assert b.namespaces("l") == ["w1"]
    rs = b.get_or_create_state(ReducingStateDescriptor("r", lambda a, c: a + c))
    for ns, v in (("a", 1), ("b", 10)):
        rs.set_current_namespace(ns)
        rs.add(v)
    rs.merge_namespaces("c", ["a", "b"])
    rs.set_current_namespace("c")
    assert rs.get() == 11
    rs.clear()
    assert b.namespaces("r") == []


def test_snapshot_restore_and_key_group_filter():
    b = HeapKeyedStateBackend()
    s = b.get_or_create_state(ValueStateDescriptor("v"))
    for k in range(100):
        b.set_current_key(k)
        s.update(k * 10)
    snap = b.snapshot()
    b.set_current_key(0)
    s.update(-1)  # a later write does not change the snapshot
    restored = []
    for rng in ((0, 63), (64, 127)):
        r = HeapKeyedStateBackend(key_group_range=rng)
        rs = r.get_or_create_state(ValueStateDescriptor("v"))
        r.restore([snap])
        for k in r.keys("v"):
            r.set_current_key(k)
            restored.append((k, rs.value()))
    assert sorted(restored) == [(k, k * 10) for k in range(100)]


def _ttl(update=StateTtlConfig.UpdateType.OnCreateAndWrite, visible=False, **kw):
    builder = StateTtlConfig.new_builder(Time.milliseconds(100)).set_update_type(update)
    if visible:
        builder = builder.return_expired_if_not_cleaned_up()
    return builder.build()


def test_ttl_value_expires_and_read_refresh():
    clock = ManualClock(0)
    b = HeapKeyedStateBackend(ttl_time_provider=clock)
    d = ValueStateDescriptor("v")
    d.enable_time_to_live(_ttl())
    s = b.get_or_create_state(d)
    b.set_current_key("a")
    s.update(1)
    clock.now = 99
    assert s.value() == 1
    clock.now = 100
    assert s.value() is None
    d2 = ValueStateDescriptor("w")
    d2.enable_time_to_live(_ttl(StateTtlConfig.UpdateType.OnReadAndWrite))
    s2 = b.get_or_create_state(d2)
    clock.now = 0
    s2.update(5)
    clock.now = 90
    assert s2.value() == 5  # refreshes
    clock.now = 180
    assert s2.value() == 5
    clock.now = 280
    assert s2.value() is None


def test_ttl_return_expired_if_not_cleaned_up_and_list_elements_expire_individually():
    clock = ManualClock(0)
    b = HeapKeyedStateBackend(ttl_time_provider=clock)
    d = ValueStateDescriptor("v")
    d.enable_time_to_live(_ttl(visible=True))
    s = b.get_or_create_state(d)
    b.set_current_key("a")
    s.update(1)
    clock.now = 500
    assert s.value() == 1  # expired but still visible once, then cleaned up
    assert s.value() is None
    ld = ListStateDescriptor("l")
    ld.enable_time_to_live(_ttl())
    ls = b.get_or_create_state(ld)
    clock.now = 0
    ls.add("old")
    clock.now = 60
    ls.add("new")
    clock.now = 120
    assert list(ls.get()) == ["new"]


def test_ttl_full_snapshot_cleanup_drops_expired():
    clock = ManualClock(0)
    b = HeapKeyedStateBackend(ttl_time_provider=clock)
    d = MapStateDescriptor("m")
    d.enable_time_to_live(StateTtlConfig.new_builder(Time.milliseconds(10)).cleanup_full_snapshot().build())
    m = b.get_or_create_state(d)
    b.set_current_key(1)
    m.put("a", 1)
    clock.now = 5
    m.put("b", 2)
    clock.now = 12
    tables = b.snapshot()["states"]["m"]["tables"]
    assert [(keys, [sorted(v) for v in values]) for _, _, keys, values in tables] == [([1], [["b"]])]


def test_map_state_dict_protocol():
    b = HeapKeyedStateBackend()
    b.set_current_key("k")
    m = b.get_or_create_state(MapStateDescriptor("m"))
    assert "a" not in m
    m["a"] = True
    assert "a" in m and m["a"] is True and list(m) == ["a"]
    del m["a"]
    assert m.is_empty()
