"""Function objects restored by pickle or copy keep their attributes compact (no real __dict__).

Whether an object's attributes live in a real dict is read off ``gc.get_referents``: an object with
compact attributes refers to its attribute values directly, one with a real ``__dict__`` refers to
that dict (the classes here hold no dict-valued attributes, which would read as one)."""

from __future__ import annotations

import copy
import gc
import pickle
import sys

import cloudpickle
import pytest

from flinkcore.common.pickling import CompactAttributes, restore_attributes
from flinkcore.common.watermark_strategy import TimestampAssigner
from flinkcore.datastream.functions import KeyedProcessFunction, SinkFunction

compact_storage = pytest.mark.skipif(
    sys.implementation.name != "cpython" or sys.version_info < (3, 11),
    reason="compact attribute storage is CPython 3.11+",
)


def has_real_dict(obj: object) -> bool:
    return any(type(r) is dict for r in gc.get_referents(obj))


class CountingSink(SinkFunction):
    def __init__(self) -> None:
        self.results = 0
        self.total = 0.0
        self.seen = ["a"]

    def invoke(self, value, context=None):
        self.results += 1
        self.total += value


class EventTime(TimestampAssigner):
    def __init__(self, field: int) -> None:
        self.field = field

    def extract_timestamp(self, value, record_timestamp):
        return value[self.field]


class WithProperty(KeyedProcessFunction):
    """An instance attribute named like a read-only property (set through ``__dict__``)."""

    def __init__(self) -> None:
        self.__dict__["label"] = "from-dict"
        self.n = 1

    @property
    def label(self) -> str:
        return "property"

    def process_element(self, value, ctx):
        yield value


class Plain:
    def __init__(self) -> None:
        self.results = 0


class WithSlots(CompactAttributes):
    __slots__ = ("a", "__dict__")

    def __init__(self) -> None:
        self.a = 1
        self.b = 2


@compact_storage
@pytest.mark.parametrize(
    "roundtrip",
    [
        lambda o: pickle.loads(pickle.dumps(o)),
        lambda o: cloudpickle.loads(cloudpickle.dumps(o)),
        copy.deepcopy,
        copy.copy,
    ],
    ids=["pickle", "cloudpickle", "deepcopy", "copy"],
)
def test_restored_functions_keep_compact_attributes(roundtrip) -> None:
    sink = CountingSink()
    sink.invoke(2.5)
    restored = roundtrip(sink)
    assert not has_real_dict(restored)
    assert (restored.results, restored.total, restored.seen) == (1, 2.5, ["a"])
    restored.invoke(1.0)
    assert (restored.results, restored.total) == (2, 3.5)
    assigner = roundtrip(EventTime(2))
    assert not has_real_dict(assigner)
    assert assigner.extract_timestamp((0, 0, 7), 0) == 7


@compact_storage
def test_a_class_without_it_gets_a_real_dict() -> None:
    """The control: pickle's default restore makes the dict real (what the mixin avoids)."""
    assert not has_real_dict(Plain())
    assert has_real_dict(pickle.loads(pickle.dumps(Plain())))


def test_restore_keeps_pickles_semantics() -> None:
    """Names a data descriptor would take go into __dict__ as pickle puts them; slots are set."""
    f = pickle.loads(pickle.dumps(WithProperty()))
    assert f.__dict__["label"] == "from-dict" and f.label == "property" and f.n == 1
    s = copy.deepcopy(WithSlots())
    assert (s.a, s.b) == (1, 2)
    target = CountingSink.__new__(CountingSink)
    with pytest.raises(TypeError):  # a state pickle could not restore either
        restore_attributes(target, 42)
