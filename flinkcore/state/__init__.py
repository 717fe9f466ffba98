"""Keyed state: descriptors, the state-backend interface and its heap implementation.

A keyed operator owns one :class:`KeyedStateBackend`. The operator sets the current key (and a
state object's namespace; windows use the window as namespace) and the user reads and writes
through ``ValueState``/``ListState``/... objects bound to that backend. The heap backend keeps
dicts in memory; the LMDB backend (checkpoint issue) fills the same interface.
"""

from flinkcore.state.backend import (
    VOID_NAMESPACE,
    AggregatingState,
    InternalKvState,
    KeyedStateBackend,
    ListState,
    MapState,
    ReducingState,
    State,
    ValueState,
)
from flinkcore.state.descriptors import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)
from flinkcore.state.heap import HeapKeyedStateBackend

__all__ = [
    "VOID_NAMESPACE",
    "AggregatingState",
    "AggregatingStateDescriptor",
    "HeapKeyedStateBackend",
    "InternalKvState",
    "KeyedStateBackend",
    "ListState",
    "ListStateDescriptor",
    "MapState",
    "MapStateDescriptor",
    "ReducingState",
    "ReducingStateDescriptor",
    "State",
    "StateDescriptor",
    "StateTtlConfig",
    "ValueState",
    "ValueStateDescriptor",
]
