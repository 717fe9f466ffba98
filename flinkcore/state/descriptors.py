"""State descriptors and TTL configuration (PyFlink's ``pyflink.datastream.state`` names).

A descriptor names a piece of keyed state and says its kind; the backend creates the state
object from it. Type information is optional (only used to choose a serializer).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from flinkcore.common.time import Time, to_millis

__all__ = [
    "AggregatingStateDescriptor",
    "ListStateDescriptor",
    "MapStateDescriptor",
    "ReducingStateDescriptor",
    "StateDescriptor",
    "StateTtlConfig",
    "ValueStateDescriptor",
]


class StateTtlConfig:
    """Time-to-live of keyed state entries, measured in processing time (as in Flink).

    Build with ``StateTtlConfig.new_builder(Time.seconds(1)).set_update_type(...).build()``.
    """

    class UpdateType(Enum):
        """When the last-access timestamp of an entry is refreshed."""

        Disabled = 0
        OnCreateAndWrite = 1
        OnReadAndWrite = 2

    class StateVisibility(Enum):
        """Whether a read may still see an expired entry that was not cleaned up yet."""

        ReturnExpiredIfNotCleanedUp = 0
        NeverReturnExpired = 1

    class TtlTimeCharacteristic(Enum):
        ProcessingTime = 0

    def __init__(
        self,
        ttl: Time | int,
        update_type: StateTtlConfig.UpdateType = UpdateType.OnCreateAndWrite,
        state_visibility: StateTtlConfig.StateVisibility = StateVisibility.NeverReturnExpired,
        cleanup_full_snapshot: bool = False,
        incremental_cleanup_size: int = 0,
        run_cleanup_for_every_record: bool = False,
        cleanup_in_background: bool = True,
    ) -> None:
        self.ttl_ms = to_millis(ttl, "ttl")
        if self.ttl_ms <= 0:
            raise ValueError(f"TTL must be positive, got {self.ttl_ms} ms")
        self.update_type = update_type
        self.state_visibility = state_visibility
        self.cleanup_full_snapshot = cleanup_full_snapshot
        self.incremental_cleanup_size = incremental_cleanup_size
        self.run_cleanup_for_every_record = run_cleanup_for_every_record
        self.cleanup_in_background = cleanup_in_background

    @staticmethod
    def new_builder(ttl: Time | int) -> StateTtlConfig.Builder:
        return StateTtlConfig.Builder(ttl)

    def get_ttl(self) -> Time:
        return Time(self.ttl_ms)

    def get_update_type(self) -> StateTtlConfig.UpdateType:
        return self.update_type

    def get_state_visibility(self) -> StateTtlConfig.StateVisibility:
        return self.state_visibility

    def is_enabled(self) -> bool:
        return self.update_type != StateTtlConfig.UpdateType.Disabled

    class Builder:
        """Fluent builder, as PyFlink's ``StateTtlConfig.Builder``."""

        def __init__(self, ttl: Time | int) -> None:
            self._ttl = ttl
            self._update = StateTtlConfig.UpdateType.OnCreateAndWrite
            self._visibility = StateTtlConfig.StateVisibility.NeverReturnExpired
            self._full_snapshot = False
            self._incremental = 0
            self._every_record = False
            self._background = True

        def set_update_type(self, update_type: StateTtlConfig.UpdateType) -> StateTtlConfig.Builder:
            self._update = update_type
            return self

        def update_ttl_on_create_and_write(self) -> StateTtlConfig.Builder:
            return self.set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)

        def update_ttl_on_read_and_write(self) -> StateTtlConfig.Builder:
            return self.set_update_type(StateTtlConfig.UpdateType.OnReadAndWrite)

        def set_state_visibility(self, visibility: StateTtlConfig.StateVisibility) -> StateTtlConfig.Builder:
            self._visibility = visibility
            return self

        def return_expired_if_not_cleaned_up(self) -> StateTtlConfig.Builder:
            return self.set_state_visibility(StateTtlConfig.StateVisibility.ReturnExpiredIfNotCleanedUp)

        def never_return_expired(self) -> StateTtlConfig.Builder:
            return self.set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)

        def set_ttl_time_characteristic(self, characteristic: Any) -> StateTtlConfig.Builder:
            if characteristic != StateTtlConfig.TtlTimeCharacteristic.ProcessingTime:
                raise ValueError("state TTL supports processing time only (as Flink)")
            return self

        def use_processing_time(self) -> StateTtlConfig.Builder:
            return self

        def set_ttl(self, ttl: Time | int) -> StateTtlConfig.Builder:
            self._ttl = ttl
            return self

        def cleanup_full_snapshot(self) -> StateTtlConfig.Builder:
            self._full_snapshot = True
            return self

        def cleanup_incrementally(
            self, cleanup_size: int, run_cleanup_for_every_record: bool
        ) -> StateTtlConfig.Builder:
            if cleanup_size <= 0:
                raise ValueError(f"cleanup_size must be positive, got {cleanup_size}")
            self._incremental = cleanup_size
            self._every_record = run_cleanup_for_every_record
            return self

        def cleanup_in_rocksdb_compact_filter(self, query_time_after_num_entries: int = 1000, *_: Any):
            """Accepted for PyFlink compatibility; expired entries are dropped on access and snapshot."""
            return self

        def disable_cleanup_in_background(self) -> StateTtlConfig.Builder:
            self._background = False
            return self

        def build(self) -> StateTtlConfig:
            return StateTtlConfig(
                self._ttl,
                self._update,
                self._visibility,
                self._full_snapshot,
                self._incremental,
                self._every_record,
                self._background,
            )


class StateDescriptor:
    """Names a piece of keyed state. ``kind`` says which state object the backend creates."""

    kind = "abstract"

    def __init__(self, name: str, type_info: Any = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"state name must be a non-empty string, got {name!r}")
        self.name = name
        self.type_info = type_info
        self.ttl_config: StateTtlConfig | None = None

    def get_name(self) -> str:
        return self.name

    def enable_time_to_live(self, ttl_config: StateTtlConfig) -> None:
        """Expire entries ``ttl`` ms of processing time after their last update (or read)."""
        if not isinstance(ttl_config, StateTtlConfig):
            raise TypeError(f"enable_time_to_live takes a StateTtlConfig, got {ttl_config!r}")
        self.ttl_config = ttl_config if ttl_config.is_enabled() else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class ValueStateDescriptor(StateDescriptor):
    """One value per key and namespace."""

    kind = "value"

    def __init__(self, name: str, value_type_info: Any = None) -> None:
        super().__init__(name, value_type_info)


class ListStateDescriptor(StateDescriptor):
    """A list of elements per key and namespace."""

    kind = "list"

    def __init__(self, name: str, elem_type_info: Any = None) -> None:
        super().__init__(name, elem_type_info)


class MapStateDescriptor(StateDescriptor):
    """A map per key and namespace (also the descriptor of broadcast state)."""

    kind = "map"

    def __init__(self, name: str, key_type_info: Any = None, value_type_info: Any = None) -> None:
        super().__init__(name, value_type_info)
        self.key_type_info = key_type_info
        self.value_type_info = value_type_info


def _reduce_callable(fn: Any) -> Callable[[Any, Any], Any]:
    if hasattr(fn, "reduce"):
        return fn.reduce
    if callable(fn):
        return fn
    raise TypeError(f"expected a ReduceFunction or a callable (a, b) -> c, got {fn!r}")


class ReducingStateDescriptor(StateDescriptor):
    """A value per key that every ``add`` folds in with a reduce function."""

    kind = "reducing"

    def __init__(self, name: str, reduce_function: Any, type_info: Any = None) -> None:
        super().__init__(name, type_info)
        self.reduce_function = reduce_function
        self.reduce = _reduce_callable(reduce_function)


class AggregatingStateDescriptor(StateDescriptor):
    """An accumulator per key that ``add`` updates with an AggregateFunction."""

    kind = "aggregating"

    def __init__(self, name: str, agg_function: Any, state_type_info: Any = None) -> None:
        super().__init__(name, state_type_info)
        for method in ("create_accumulator", "add", "get_result"):
            if not callable(getattr(agg_function, method, None)):
                raise TypeError(f"AggregatingStateDescriptor needs an AggregateFunction with {method}()")
        self.agg_function = agg_function
