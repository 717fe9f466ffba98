"""The heap state backend: keyed state in Python dicts, ``table[namespace][key] -> value``.

Namespace-major layout so a state object caches the dict of its current namespace and a read
is one dict lookup on ``backend.current_key``. With TTL, values are stored as
``(value, last_access_ms)`` and checked on access (and optionally on snapshot / incrementally).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flinkcore._core.serde import dumps, loads
from flinkcore.state.backend import (
    MISSING,
    VOID_NAMESPACE,
    AggregatingState,
    FoldedAggregatingState,
    FoldedReducingState,
    InternalKvState,
    KeyedStateBackend,
    ListState,
    MapState,
    ReducingState,
    ValueState,
)
from flinkcore.state.descriptors import StateDescriptor, StateTtlConfig
from flinkcore.state.key_groups import key_group_of
from flinkcore.state.snapshots import DeferredSnapshot, resolve_deferred, snapshots_may_be_deferred

__all__ = ["HeapKeyedStateBackend"]

_Table = dict  # namespace -> {key -> value}
_MISSING = MISSING


class _HeapState(InternalKvState):
    """Namespace handling shared by all heap states."""

    def __init__(self, backend: HeapKeyedStateBackend, descriptor: StateDescriptor, table: _Table) -> None:
        self._backend = backend
        self.descriptor = descriptor
        self._table = table
        self._ns: Any = VOID_NAMESPACE
        self._map: dict | None = table.get(VOID_NAMESPACE)
        ttl = descriptor.ttl_config
        self._ttl: StateTtlConfig | None = ttl
        if ttl is not None:
            self._ttl_ms = ttl.ttl_ms
            self._refresh_on_read = ttl.update_type == StateTtlConfig.UpdateType.OnReadAndWrite
            self._return_expired = (
                ttl.state_visibility == StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp
            )
            self._now = backend.ttl_time_provider
            self._cleanup_iter: Any = None

    def set_current_namespace(self, namespace: Any) -> None:
        if namespace is not self._ns:
            self._ns = namespace
            self._map = self._table.get(namespace)

    def _reset_cache(self) -> None:
        self._map = self._table.get(self._ns)

    def _write_map(self) -> dict:
        m = self._map
        if m is None:
            m = self._map = self._table.setdefault(self._ns, {})
        return m

    def _remove_current(self) -> None:
        m = self._map
        if m is not None:
            m.pop(self._backend.current_key, None)
            if not m and self._ns is not VOID_NAMESPACE:
                del self._table[self._ns]
                self._map = None

    def clear(self) -> None:
        self._remove_current()

    # -- TTL helpers -------------------------------------------------------------------------
    def _expired(self, stamped: tuple, now: int) -> bool:
        return stamped[1] + self._ttl_ms <= now

    def _incremental_cleanup(self) -> None:
        """Check a few entries of this state for expiry per access (cleanup_incrementally)."""
        size = self._ttl.incremental_cleanup_size
        if not size:
            return
        now = self._now()
        for _ in range(size):
            if self._cleanup_iter is None:
                self._cleanup_iter = iter([(ns, k) for ns, m in self._table.items() for k in m])
            item = next(self._cleanup_iter, None)
            if item is None:
                self._cleanup_iter = None
                return
            ns, k = item
            m = self._table.get(ns)
            if m is None or k not in m:
                continue
            if self._entry_expired(m[k], now):
                del m[k]
                if not m and ns is not VOID_NAMESPACE:
                    del self._table[ns]
                    if ns is self._ns:
                        self._map = None

    def _entry_expired(self, stored: Any, now: int) -> bool:
        return self._expired(stored, now)

    def _drop_expired_for_snapshot(self, stored: Any, now: int) -> Any:
        """The stored value without expired parts, or _MISSING when all of it expired."""
        return _MISSING if self._expired(stored, now) else stored


class HeapValueState(_HeapState, ValueState):
    def value(self) -> Any:
        m = self._map
        if m is None:
            return None
        return m.get(self._backend.current_key)

    def update(self, value: Any) -> None:
        if value is None:
            self._remove_current()
            return
        m = self._map
        if m is None:
            m = self._write_map()
        m[self._backend.current_key] = value


class TtlHeapValueState(_HeapState, ValueState):
    def value(self) -> Any:
        if self._ttl.run_cleanup_for_every_record:
            self._incremental_cleanup()
        m = self._map
        if m is None:
            return None
        key = self._backend.current_key
        stamped = m.get(key)
        if stamped is None:
            return None
        now = self._now()
        if stamped[1] + self._ttl_ms <= now:
            self._remove_current()
            return stamped[0] if self._return_expired else None
        if self._refresh_on_read:
            m[key] = (stamped[0], now)
        return stamped[0]

    def update(self, value: Any) -> None:
        self._incremental_cleanup()
        if value is None:
            self._remove_current()
            return
        self._write_map()[self._backend.current_key] = (value, self._now())


class HeapListState(_HeapState, ListState):
    """Elements of a list; with TTL each element carries its own timestamp (as in Flink)."""

    def get(self) -> list:
        m = self._map
        if m is None:
            return []
        lst = m.get(self._backend.current_key)
        if lst is None:
            return []
        if self._ttl is None:
            return lst
        now = self._now()
        live = [e for e in lst if not self._expired(e, now)]
        if len(live) != len(lst):
            if live:
                m[self._backend.current_key] = live
            else:
                self._remove_current()
            if self._return_expired:
                live_values = [e[0] for e in lst]
                return live_values
        if self._refresh_on_read and live:
            live = [(e[0], now) for e in live]
            m[self._backend.current_key] = live
        return [e[0] for e in live]

    def add(self, value: Any) -> None:
        if value is None:
            raise ValueError("ListState.add(None): null elements are not allowed (as in Flink)")
        if self._ttl is not None:
            self._incremental_cleanup()
            value = (value, self._now())
        m = self._write_map()
        key = self._backend.current_key
        lst = m.get(key)
        if lst is None:
            m[key] = [value]
        else:
            lst.append(value)

    def add_all(self, values: Iterable[Any]) -> None:
        for v in values:
            self.add(v)

    def update(self, values: Iterable[Any]) -> None:
        values = list(values) if values is not None else []
        if any(v is None for v in values):
            raise ValueError("ListState.update: null elements are not allowed (as in Flink)")
        if not values:
            self._remove_current()
            return
        if self._ttl is not None:
            now = self._now()
            values = [(v, now) for v in values]
        self._write_map()[self._backend.current_key] = values

    def merge_namespaces(self, target: Any, sources: Iterable[Any]) -> None:
        key = self._backend.current_key
        merged: list = []
        for ns in sources:
            m = self._table.get(ns)
            if m is not None and key in m:
                merged.extend(m.pop(key))
                if not m and ns is not VOID_NAMESPACE:
                    del self._table[ns]
        if merged:
            tm = self._table.setdefault(target, {})
            tm.setdefault(key, []).extend(merged)
        self._reset_cache()

    def _entry_expired(self, stored: Any, now: int) -> bool:
        return all(self._expired(e, now) for e in stored)

    def _drop_expired_for_snapshot(self, stored: Any, now: int) -> Any:
        live = [e for e in stored if not self._expired(e, now)]
        return live if live else _MISSING


class HeapMapState(_HeapState, MapState):
    """A dict per key; with TTL each entry carries its own timestamp (as in Flink)."""

    def _user_map(self, create: bool = False) -> dict | None:
        m = self._write_map() if create else self._map
        if m is None:
            return None
        key = self._backend.current_key
        um = m.get(key)
        if um is None and create:
            um = m[key] = {}
        return um

    def _live(self, um: dict, k: Any, now: int) -> Any:
        stamped = um.get(k, _MISSING)
        if stamped is _MISSING:
            return _MISSING
        if self._expired(stamped, now):
            del um[k]
            if not um:
                self._remove_current()
            return stamped[0] if self._return_expired else _MISSING
        if self._refresh_on_read:
            um[k] = (stamped[0], now)
        return stamped[0]

    def get(self, key: Any) -> Any:
        um = self._user_map()
        if um is None:
            return None
        if self._ttl is None:
            return um.get(key)
        v = self._live(um, key, self._now())
        return None if v is _MISSING else v

    def put(self, key: Any, value: Any) -> None:
        um = self._user_map(create=True)
        if self._ttl is not None:
            self._incremental_cleanup()
            um[key] = (value, self._now())
        else:
            um[key] = value

    def put_all(self, entries: dict) -> None:
        for k, v in dict(entries).items():
            self.put(k, v)

    def remove(self, key: Any) -> None:
        um = self._user_map()
        if um is not None:
            um.pop(key, None)
            if not um:
                self._remove_current()

    def contains(self, key: Any) -> bool:
        um = self._user_map()
        if um is None:
            return False
        if self._ttl is None:
            return key in um
        return self._live(um, key, self._now()) is not _MISSING

    def _snapshot_items(self) -> list:
        um = self._user_map()
        if um is None:
            return []
        if self._ttl is None:
            return list(um.items())
        now = self._now()
        out = []
        for k in list(um):
            v = self._live(um, k, now)
            if v is not _MISSING:
                out.append((k, v))
        return out

    def items(self):
        return iter(self._snapshot_items())

    def keys(self):
        return iter([k for k, _ in self._snapshot_items()])

    def values(self):
        return iter([v for _, v in self._snapshot_items()])

    def is_empty(self) -> bool:
        return not self._snapshot_items()

    def __iter__(self):
        return self.keys()

    def _entry_expired(self, stored: Any, now: int) -> bool:
        return all(self._expired(e, now) for e in stored.values())

    def _drop_expired_for_snapshot(self, stored: Any, now: int) -> Any:
        live = {k: e for k, e in stored.items() if not self._expired(e, now)}
        return live if live else _MISSING


class _HeapFoldingState(_HeapState):
    """Shared code of ReducingState and AggregatingState: one folded value per key."""

    def _get_value(self) -> Any:
        m = self._map
        if m is None:
            return _MISSING
        stored = m.get(self._backend.current_key, _MISSING)
        if stored is _MISSING or self._ttl is None:
            return stored
        now = self._now()
        if self._expired(stored, now):
            self._remove_current()
            return stored[0] if self._return_expired else _MISSING
        if self._refresh_on_read:
            m[self._backend.current_key] = (stored[0], now)
        return stored[0]

    def _put_value(self, value: Any) -> None:
        if self._ttl is not None:
            self._incremental_cleanup()
            value = (value, self._now())
        self._write_map()[self._backend.current_key] = value

    def _fold(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def merge_namespaces(self, target: Any, sources: Iterable[Any]) -> None:
        key = self._backend.current_key
        acc = _MISSING
        for ns in sources:
            m = self._table.get(ns)
            if m is None or key not in m:
                continue
            v = m.pop(key)
            if not m and ns is not VOID_NAMESPACE:
                del self._table[ns]
            if self._ttl is not None:
                v = v[0]
            acc = v if acc is _MISSING else self._fold(acc, v)
        if acc is not _MISSING:
            saved = self._ns
            self.set_current_namespace(target)
            existing = self._get_value()
            self._put_value(acc if existing is _MISSING else self._fold(existing, acc))
            self.set_current_namespace(saved)
        self._reset_cache()


class HeapReducingState(FoldedReducingState, _HeapFoldingState, ReducingState):
    pass


class HeapAggregatingState(FoldedAggregatingState, _HeapFoldingState, AggregatingState):
    pass


_STATE_CLASSES: dict[str, type] = {
    "value": HeapValueState,
    "list": HeapListState,
    "map": HeapMapState,
    "reducing": HeapReducingState,
    "aggregating": HeapAggregatingState,
}


class HeapKeyedStateBackend(KeyedStateBackend):
    """Keyed state in memory; snapshots copy the containers (values are shared, not copied)."""

    def __init__(
        self,
        max_parallelism: int = 128,
        key_group_range: tuple[int, int] | None = None,
        ttl_time_provider: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(max_parallelism, key_group_range, ttl_time_provider)
        self._tables: dict[str, _Table] = {}

    def _create_state(self, descriptor: StateDescriptor) -> Any:
        cls = _STATE_CLASSES.get(descriptor.kind)
        if cls is None:
            raise TypeError(f"unknown state descriptor {descriptor!r}")
        if cls is HeapValueState and descriptor.ttl_config is not None:
            cls = TtlHeapValueState
        return cls(self, descriptor, self._tables.setdefault(descriptor.name, {}))

    def keys(self, state_name: str, namespace: Any = VOID_NAMESPACE) -> list:
        return list(self._tables.get(state_name, {}).get(namespace, ()))

    def namespaces(self, state_name: str) -> list:
        """Namespaces that hold a value in ``state_name`` (for window clean-up and tests)."""
        return list(self._tables.get(state_name, ()))

    def snapshot(self) -> Any:
        """All state, per state and namespace as parallel key and value lists (which serialize
        in one C loop). Inside a checkpoint's synchronous phase only the tables are copied (C-level
        dict copies; containers that user calls mutate in place are copied too) and the rest
        is a DeferredSnapshot, so the task pauses for milliseconds, not for the whole state."""
        frozen = []
        for name, table in self._tables.items():
            state = self._states.get(name)
            kind = state.descriptor.kind if state is not None else None
            if kind in ("list", "map"):  # containers the heap state changes in place
                copies = [(ns, {k: _copy_container(v) for k, v in m.items()}) for ns, m in table.items()]
            elif kind == "aggregating":  # accumulators a user's AggregateFunction may change in place
                copies = [(ns, dumps(m)) for ns, m in table.items()]
            else:
                copies = [(ns, m.copy()) for ns, m in table.items()]
            frozen.append((name, state, copies))
        now = self.ttl_time_provider()

        def materialize() -> dict:
            states = {}
            for name, state, copies in frozen:
                ttl = state._ttl if state is not None else None
                drop = ttl is not None and ttl.cleanup_full_snapshot
                tables = []
                for ns, m in copies:
                    if type(m) is bytes:
                        m = loads(m)
                    if drop:
                        live = ((k, state._drop_expired_for_snapshot(v, now)) for k, v in m.items())
                        m = {k: v for k, v in live if v is not _MISSING}
                    if m:
                        void = ns is VOID_NAMESPACE
                        tables.append((void, None if void else ns, list(m.keys()), list(m.values())))
                states[name] = {
                    "kind": state.descriptor.kind if state is not None else None,
                    "ttl": ttl is not None,
                    "tables": tables,
                }
            return {"backend": "heap", "states": states}

        return DeferredSnapshot(materialize) if snapshots_may_be_deferred() else materialize()

    def restore(self, snapshots: list[dict]) -> None:
        kg_range = self.key_group_range
        for snap in snapshots:
            snap = resolve_deferred(snap)
            if snap.get("backend") == "lmdb":
                from flinkcore.state.lmdb_backend import heap_form

                snap = heap_form(snap)
            for name, data in snap["states"].items():
                table = self._tables.setdefault(name, {})
                mutable = data["kind"] in ("list", "map")
                for void, ns, keys, values in data["tables"]:
                    pairs = zip(keys, values, strict=True)
                    if kg_range is not None:
                        lo, hi = kg_range
                        mp = self.max_parallelism
                        pairs = ((k, v) for k, v in pairs if lo <= key_group_of(k, mp) <= hi)
                    if mutable:
                        pairs = ((k, _copy_container(v)) for k, v in pairs)
                    target = table.setdefault(VOID_NAMESPACE if void else ns, {})
                    target.update(pairs)
        for state in self._states.values():
            state._reset_cache()


def _copy_container(stored: Any) -> Any:
    if type(stored) is list:
        return list(stored)
    if type(stored) is dict:
        return dict(stored)
    return stored
