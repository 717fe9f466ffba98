"""The keyed state-backend interface every backend (heap, LMDB) fills.

Contract (what operators and the checkpoint code may rely on):

* One backend per keyed operator instance. The operator calls :meth:`set_current_key` before it
  runs user code for a record or a timer; state objects read ``backend.current_key``.
* State is scoped by ``(key, namespace)``. Per-key user state lives in :data:`VOID_NAMESPACE`;
  the window operator sets a state object's namespace to the window
  (:meth:`InternalKvState.set_current_namespace`).
* :meth:`get_or_create_state` returns the same object for the same descriptor name, so an
  operator can fetch it once in ``open`` and use it for every record.
* Batching: the runtime calls :meth:`start_batch` / :meth:`finish_batch` around every
  micro-batch an operator processes (the heap backend ignores them; LMDB opens one write
  transaction per batch there).
* :meth:`snapshot` returns plain Python data (dicts/lists of the user's values) that a
  checkpoint serializes; :meth:`restore` takes a list of such snapshots (several when
  parallelism changed) and keeps only keys in this backend's key-group range.
* TTL: entries expire ``ttl`` ms of processing time after their last write (or read) as the
  descriptor's ``StateTtlConfig`` says; ``ttl_time_provider`` gives that time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flinkcore.state.descriptors import StateDescriptor

__all__ = [
    "VOID_NAMESPACE",
    "AggregatingState",
    "InternalKvState",
    "KeyedStateBackend",
    "ListState",
    "MapState",
    "ReducingState",
    "State",
    "ValueState",
]


class _VoidNamespace:
    """The namespace of plain per-key state (Flink's VoidNamespace): a singleton."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "VOID_NAMESPACE"

    def __reduce__(self):
        return (_VoidNamespace, ())


VOID_NAMESPACE = _VoidNamespace()

#: what a backend's internal read returns when nothing is stored (a stored value is never this)
MISSING: Any = object()


class State(ABC):
    """Base of every user-facing state object."""

    @abstractmethod
    def clear(self) -> None:
        """Remove the value of the current key (and namespace)."""


class ValueState(State):
    @abstractmethod
    def value(self) -> Any:
        """The value of the current key, or None."""

    @abstractmethod
    def update(self, value: Any) -> None: ...


class ListState(State):
    @abstractmethod
    def get(self) -> Iterable[Any]:
        """The elements of the current key ([] when none)."""

    @abstractmethod
    def add(self, value: Any) -> None: ...

    @abstractmethod
    def add_all(self, values: Iterable[Any]) -> None: ...

    @abstractmethod
    def update(self, values: Iterable[Any]) -> None: ...


class MapState(State):
    @abstractmethod
    def get(self, key: Any) -> Any: ...

    @abstractmethod
    def put(self, key: Any, value: Any) -> None: ...

    @abstractmethod
    def put_all(self, entries: dict) -> None: ...

    @abstractmethod
    def remove(self, key: Any) -> None: ...

    @abstractmethod
    def contains(self, key: Any) -> bool: ...

    @abstractmethod
    def items(self) -> Iterator[tuple[Any, Any]]: ...

    @abstractmethod
    def keys(self) -> Iterator[Any]: ...

    @abstractmethod
    def values(self) -> Iterator[Any]: ...

    @abstractmethod
    def is_empty(self) -> bool: ...

    # PyFlink's MapState is also used like a dict
    def __getitem__(self, key: Any) -> Any:
        return self.get(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        self.remove(key)

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.keys())


class ReducingState(State):
    @abstractmethod
    def get(self) -> Any: ...

    @abstractmethod
    def add(self, value: Any) -> None: ...


class AggregatingState(State):
    @abstractmethod
    def get(self) -> Any: ...

    @abstractmethod
    def add(self, value: Any) -> None: ...


class FoldedReducingState:
    """ReducingState logic over a backend's ``_get_value()`` / ``_put_value(v)`` (MISSING when
    empty), one implementation for every backend: mix it in before the backend's state class."""

    def __init__(self, backend: Any, descriptor: Any, *args: Any) -> None:
        super().__init__(backend, descriptor, *args)
        self._reduce = descriptor.reduce

    def _fold(self, a: Any, b: Any) -> Any:
        return self._reduce(a, b)

    def get(self) -> Any:
        value = self._get_value()
        return None if value is MISSING else value

    def add(self, value: Any) -> None:
        current = self._get_value()
        self._put_value(value if current is MISSING else self._reduce(current, value))


class FoldedAggregatingState:
    """AggregatingState logic over ``_get_value()`` / ``_put_value(v)``: stores the accumulator,
    ``get`` returns ``get_result(accumulator)``."""

    def __init__(self, backend: Any, descriptor: Any, *args: Any) -> None:
        super().__init__(backend, descriptor, *args)
        self._agg = descriptor.agg_function

    def _fold(self, a: Any, b: Any) -> Any:
        if not callable(getattr(self._agg, "merge", None)):
            raise NotImplementedError("merging AggregatingState needs AggregateFunction.merge()")
        return self._agg.merge(a, b)

    def get(self) -> Any:
        acc = self._get_value()
        return None if acc is MISSING else self._agg.get_result(acc)

    def add(self, value: Any) -> None:
        acc = self._get_value()
        if acc is MISSING:
            acc = self._agg.create_accumulator()
        self._put_value(self._agg.add(value, acc))


class InternalKvState(ABC):
    """What the runtime (not the user) needs of a state object: namespaces and merging."""

    descriptor: StateDescriptor

    @abstractmethod
    def set_current_namespace(self, namespace: Any) -> None:
        """Scope following calls to ``namespace`` (a window for window state)."""

    def merge_namespaces(self, target: Any, sources: Iterable[Any]) -> None:
        """Merge the current key's state in ``sources`` into ``target`` (session windows)."""
        raise NotImplementedError(f"{type(self).__name__} cannot merge namespaces")


class KeyedStateBackend(ABC):
    """Keyed state of one operator instance; see the module docstring for the contract."""

    #: the key set by the last :meth:`set_current_key` (read directly on the hot path)
    current_key: Any = None

    def __init__(
        self,
        max_parallelism: int = 128,
        key_group_range: tuple[int, int] | None = None,
        ttl_time_provider: Callable[[], int] | None = None,
    ) -> None:
        import time

        self.max_parallelism = max_parallelism
        #: inclusive range of key groups this instance owns; None = all
        self.key_group_range = key_group_range
        self.ttl_time_provider = ttl_time_provider or (lambda: int(time.time() * 1000))
        #: state objects by descriptor name, created on first use
        self._states: dict[str, Any] = {}

    def set_current_key(self, key: Any) -> None:
        self.current_key = key

    def get_current_key(self) -> Any:
        return self.current_key

    def get_or_create_state(self, descriptor: StateDescriptor) -> Any:
        """The state object of ``descriptor`` (created on first use, then cached by name)."""
        state = self._states.get(descriptor.name)
        if state is None:
            state = self._states[descriptor.name] = self._create_state(descriptor)
        elif state.descriptor.kind != descriptor.kind:
            raise ValueError(
                f"state {descriptor.name!r} was registered as {state.descriptor.kind} state, "
                f"cannot use it as {descriptor.kind} state"
            )
        return state

    @abstractmethod
    def _create_state(self, descriptor: StateDescriptor) -> Any:
        """A new state object for ``descriptor``; TypeError for a kind this backend lacks."""

    @abstractmethod
    def keys(self, state_name: str, namespace: Any = VOID_NAMESPACE) -> list:
        """Keys that have a value in ``state_name`` under ``namespace``."""

    def start_batch(self) -> None:  # noqa: B027
        """Called before an operator processes a micro-batch."""

    def finish_batch(self) -> None:  # noqa: B027
        """Called after an operator processed a micro-batch."""

    @abstractmethod
    def snapshot(self) -> dict:
        """A consistent copy of all state as plain Python data."""

    @abstractmethod
    def restore(self, snapshots: list[dict]) -> None:
        """Load state from snapshots (of one or several former instances)."""

    def dispose(self) -> None:  # noqa: B027
        """Release resources (files, transactions)."""
