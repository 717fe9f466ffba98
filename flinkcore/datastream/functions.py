"""User function base classes (``pyflink.datastream.functions`` names).

Subclass these, or pass plain callables where PyFlink takes a Function object. Every function
may define ``open(runtime_context)`` and ``close()``. Process-style functions return or yield
their outputs; ``yield output_tag, value`` emits to a side output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from flinkcore.common.pickling import CompactAttributes
from flinkcore.runtime.context import RuntimeContext

__all__ = [
    "AggregateFunction",
    "AllWindowFunction",
    "BroadcastProcessFunction",
    "CoFlatMapFunction",
    "CoMapFunction",
    "CoProcessFunction",
    "FilterFunction",
    "FlatMapFunction",
    "Function",
    "KeySelector",
    "KeyedBroadcastProcessFunction",
    "KeyedCoProcessFunction",
    "KeyedProcessFunction",
    "MapFunction",
    "NullByteKeySelector",
    "Partitioner",
    "ProcessAllWindowFunction",
    "ProcessFunction",
    "ProcessWindowFunction",
    "ReduceFunction",
    "RichFunction",
    "RuntimeContext",
    "SinkFunction",
    "TwoPhaseCommitSinkFunction",
    "WindowFunction",
]


class Function(CompactAttributes, ABC):  # noqa: B024
    """Base of every user function: optional ``open`` / ``close`` hooks. Unpickled in a worker
    process, an instance keeps CPython's compact attribute storage (:mod:`flinkcore.common.pickling`)."""

    def open(self, runtime_context: RuntimeContext) -> None:  # noqa: B027
        pass

    def close(self) -> None:  # noqa: B027
        pass


RichFunction = Function


class _ContextType:
    """Names PyFlink's context classes (``KeyedProcessFunction.Context`` ...) so type annotations
    of PyFlink jobs resolve; the runtime passes its own context objects."""


class MapFunction(Function):
    @abstractmethod
    def map(self, value: Any) -> Any: ...


class FlatMapFunction(Function):
    @abstractmethod
    def flat_map(self, value: Any) -> Iterable[Any]: ...


class FilterFunction(Function):
    @abstractmethod
    def filter(self, value: Any) -> bool: ...


class KeySelector(Function):
    @abstractmethod
    def get_key(self, value: Any) -> Any: ...


class NullByteKeySelector(KeySelector):
    """Puts every record under one key (used by non-keyed windows)."""

    def get_key(self, value: Any) -> Any:
        return 0


class ReduceFunction(Function):
    @abstractmethod
    def reduce(self, value1: Any, value2: Any) -> Any: ...


class AggregateFunction(Function):
    @abstractmethod
    def create_accumulator(self) -> Any: ...

    @abstractmethod
    def add(self, value: Any, accumulator: Any) -> Any: ...

    @abstractmethod
    def get_result(self, accumulator: Any) -> Any: ...

    def merge(self, acc_a: Any, acc_b: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.merge() is needed to merge windows")


class Partitioner(Function):
    @abstractmethod
    def partition(self, key: Any, num_partitions: int) -> int: ...


class ProcessFunction(Function):
    """``process_element(value, ctx)``: ctx has ``timestamp()``, ``timer_service()`` (timers need a
    keyed stream) and ``output(tag, value)``."""

    class Context(_ContextType):
        pass

    @abstractmethod
    def process_element(self, value: Any, ctx: Any) -> Iterable[Any] | None: ...


class KeyedProcessFunction(Function):
    """Per-key processing with keyed state and timers; ``on_timer(timestamp, ctx)`` fires timers
    (ctx also has ``time_domain()`` and ``get_current_key()``)."""

    class Context(_ContextType):
        pass

    class OnTimerContext(_ContextType):
        pass

    @abstractmethod
    def process_element(self, value: Any, ctx: Any) -> Iterable[Any] | None: ...

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Any] | None:
        pass


class CoMapFunction(Function):
    @abstractmethod
    def map1(self, value: Any) -> Any: ...

    @abstractmethod
    def map2(self, value: Any) -> Any: ...


class CoFlatMapFunction(Function):
    @abstractmethod
    def flat_map1(self, value: Any) -> Iterable[Any]: ...

    @abstractmethod
    def flat_map2(self, value: Any) -> Iterable[Any]: ...


class CoProcessFunction(Function):
    class Context(_ContextType):
        pass

    @abstractmethod
    def process_element1(self, value: Any, ctx: Any) -> Iterable[Any] | None: ...

    @abstractmethod
    def process_element2(self, value: Any, ctx: Any) -> Iterable[Any] | None: ...


class KeyedCoProcessFunction(Function):
    class Context(_ContextType):
        pass

    class OnTimerContext(_ContextType):
        pass

    @abstractmethod
    def process_element1(self, value: Any, ctx: Any) -> Iterable[Any] | None: ...

    @abstractmethod
    def process_element2(self, value: Any, ctx: Any) -> Iterable[Any] | None: ...

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Any] | None:
        pass


class BroadcastProcessFunction(Function):
    """``process_element(value, ctx)`` reads broadcast state (``ctx.get_broadcast_state(desc)``);
    ``process_broadcast_element(value, ctx)`` may write it."""

    class ReadOnlyContext(_ContextType):
        pass

    class Context(_ContextType):
        pass

    @abstractmethod
    def process_element(self, value: Any, ctx: Any) -> Iterable[Any] | None: ...

    @abstractmethod
    def process_broadcast_element(self, value: Any, ctx: Any) -> Iterable[Any] | None: ...


class KeyedBroadcastProcessFunction(BroadcastProcessFunction):
    """Keyed variant: keyed state and timers in ``process_element``; ``ctx.apply_to_keyed_state``
    in ``process_broadcast_element``."""

    class ReadOnlyContext(_ContextType):
        pass

    class Context(_ContextType):
        pass

    class OnTimerContext(_ContextType):
        pass

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Any] | None:
        pass


class WindowFunction(Function):
    @abstractmethod
    def apply(self, key: Any, window: Any, inputs: Iterable[Any]) -> Iterable[Any]: ...


class AllWindowFunction(Function):
    @abstractmethod
    def apply(self, window: Any, inputs: Iterable[Any]) -> Iterable[Any]: ...


class ProcessWindowFunction(Function):
    """``process(key, context, elements)``; context: ``window()``, ``current_watermark()``,
    ``current_processing_time()``, ``window_state()``, ``global_state()``."""

    class Context(_ContextType):
        pass

    @abstractmethod
    def process(self, key: Any, context: Any, elements: Iterable[Any]) -> Iterable[Any]: ...

    def clear(self, context: Any) -> None:
        pass


class ProcessAllWindowFunction(Function):
    class Context(_ContextType):
        pass

    @abstractmethod
    def process(self, context: Any, elements: Iterable[Any]) -> Iterable[Any]: ...

    def clear(self, context: Any) -> None:
        pass


class SinkFunction(Function):
    """A Python sink: ``invoke(value, context)`` per record (context: ``timestamp()``,
    ``current_watermark()``, ``current_processing_time()``). A job run by ``execute()`` runs in
    the calling process, so a sink may append to the caller's own objects; every parallel
    instance of the sink calls this same object (other functions get one copy per instance)."""

    def invoke(self, value: Any, context: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement invoke(value, context)")

    def finish(self) -> None:
        """Called once when the input ended (flush buffered output here)."""


class TwoPhaseCommitSinkFunction(Function):
    """An exactly-once sink (Flink's TwoPhaseCommitSinkFunction): records of one checkpoint
    interval go into one transaction, which is pre-committed at the checkpoint and committed
    only when the checkpoint completes. After a failure, transactions a completed checkpoint
    had pre-committed are committed again (so ``commit`` must be idempotent) and the one that
    was open is aborted. A bounded job commits everything when it ends.

    Transactions are values the subclass chooses (a path, an id, a dict); they are stored in
    checkpoints, so they must be serializable.
    """

    def begin_transaction(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement begin_transaction()")

    def invoke(self, transaction: Any, value: Any, context: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement invoke(transaction, value, context)")

    def pre_commit(self, transaction: Any) -> None:
        """Make the transaction durable, still invisible (flush, fsync)."""
        raise NotImplementedError(f"{type(self).__name__} must implement pre_commit(transaction)")

    def commit(self, transaction: Any) -> None:
        """Make a pre-committed transaction visible. Must be idempotent."""
        raise NotImplementedError(f"{type(self).__name__} must implement commit(transaction)")

    def abort(self, transaction: Any) -> None:
        """Discard a transaction (open or pre-committed)."""
        raise NotImplementedError(f"{type(self).__name__} must implement abort(transaction)")

    def recover_and_commit(self, transaction: Any) -> None:
        """After a restore: commit a transaction of a completed checkpoint (maybe committed already)."""
        self.commit(transaction)

    def recover_and_abort(self, transaction: Any) -> None:
        """After a restore: abort the transaction that was open at the checkpoint."""
        self.abort(transaction)

    def create_operator(self) -> Any:
        from flinkcore.runtime.operators.two_phase_commit import TwoPhaseCommitSinkOperator

        return TwoPhaseCommitSinkOperator(self, type(self).__name__)
