"""Two-input operators: connect() with CoMap / CoFlatMap / CoProcess / KeyedCoProcess, and the
broadcast-state operators (BroadcastProcessFunction / KeyedBroadcastProcessFunction).

Input 1 is the regular stream; for broadcast operators input 2 is the broadcast stream, whose
elements every parallel instance sees and may write into broadcast state (a dict per
MapStateDescriptor, identical on every instance, snapshotted as operator state).
"""

from __future__ import annotations

from typing import Any

from flinkcore.runtime.context import RuntimeContext
from flinkcore.runtime.operators.base import AbstractTwoInputStreamOperator, UserCodeError
from flinkcore.runtime.operators.udf import ProcessContext, _Emitter

__all__ = [
    "BroadcastProcessOperator",
    "BroadcastState",
    "CoFlatMapOperator",
    "CoMapOperator",
    "CoProcessOperator",
]


class _TwoInputUdf(AbstractTwoInputStreamOperator):
    def __init__(self, udf: Any, name: str) -> None:
        super().__init__(name)
        self.udf = udf
        self._emitter = _Emitter()

    def open(self) -> None:
        self.runtime_context = RuntimeContext(self.context)
        opener = getattr(self.udf, "open", None)
        if callable(opener):
            try:
                opener(self.runtime_context)
            except Exception as e:
                raise UserCodeError(self.name, None, e, where="open()") from e

    def close(self) -> None:
        closer = getattr(self.udf, "close", None)
        if callable(closer):
            closer()

    def _run(
        self, fn: Any, values: list, timestamps: list | None, key_selector: Any, ctx: Any, many: bool
    ) -> None:
        emitter = self._emitter
        backend = self.state_backend
        v = None
        try:
            if backend is not None:
                backend.start_batch()
            if timestamps is None:
                timestamps = [None] * len(values)
            for v, ts in zip(values, timestamps, strict=False):
                if ctx is not None:
                    ctx._ts = ts
                if key_selector is not None:
                    backend.current_key = key_selector(v)
                if many:
                    emitter.add_all(fn(v, ctx) if ctx is not None else fn(v), ts)
                else:
                    emitter.values.append(fn(v))
                    emitter.timestamps.append(ts)
                    if ts is not None:
                        emitter.has_ts = True
        except UserCodeError:
            raise
        except Exception as e:
            raise UserCodeError(self.name, v, e) from e
        finally:
            if backend is not None:
                backend.finish_batch()
        emitter.flush(self.output)


class CoMapOperator(_TwoInputUdf):
    """``CoMapFunction.map1`` / ``map2``: one output per record of either input."""

    def __init__(self, udf: Any, name: str = "CoMap") -> None:
        super().__init__(udf, name)

    def process_batch1(self, values: list, timestamps: list | None) -> None:
        self._run(self.udf.map1, values, timestamps, self.key_selector1, None, False)

    def process_batch2(self, values: list, timestamps: list | None) -> None:
        self._run(self.udf.map2, values, timestamps, self.key_selector2, None, False)


class CoFlatMapOperator(_TwoInputUdf):
    """``CoFlatMapFunction.flat_map1`` / ``flat_map2``: iterables (or generators) of outputs."""

    def __init__(self, udf: Any, name: str = "CoFlatMap") -> None:
        super().__init__(udf, name)

    def process_batch1(self, values: list, timestamps: list | None) -> None:
        self._run(lambda v, _c: self.udf.flat_map1(v), values, timestamps, self.key_selector1, _NoCtx, True)

    def process_batch2(self, values: list, timestamps: list | None) -> None:
        self._run(lambda v, _c: self.udf.flat_map2(v), values, timestamps, self.key_selector2, _NoCtx, True)


class _NoCtxType:
    _ts = None


_NoCtx = _NoCtxType()


class CoProcessOperator(_TwoInputUdf):
    """``CoProcessFunction`` / ``KeyedCoProcessFunction``: process_element1/2(value, ctx),
    ``on_timer`` when keyed."""

    EVENT_TIME: Any = "EVENT_TIME"
    PROCESSING_TIME: Any = "PROCESSING_TIME"

    def __init__(self, udf: Any, name: str = "CoProcess", time_domains: tuple | None = None) -> None:
        super().__init__(udf, name)
        if time_domains is not None:
            self.EVENT_TIME, self.PROCESSING_TIME = time_domains

    def open(self) -> None:
        self.ctx = ProcessContext(self)  # type: ignore[arg-type]
        if self.state_backend is not None:
            self.ctx._timer_service._svc = self.get_internal_timer_service("user-timers", self)
        super().open()

    def process_batch1(self, values: list, timestamps: list | None) -> None:
        self._run(self.udf.process_element1, values, timestamps, self.key_selector1, self.ctx, True)

    def process_batch2(self, values: list, timestamps: list | None) -> None:
        self._run(self.udf.process_element2, values, timestamps, self.key_selector2, self.ctx, True)

    def _fire(self, timer: Any, domain: Any, ts_out: int | None) -> None:
        on_timer = getattr(self.udf, "on_timer", None)
        if on_timer is None:
            return
        ctx = self.ctx
        ctx._ts = timer.timestamp
        ctx._time_domain = domain
        try:
            self._emitter.add_all(on_timer(timer.timestamp, ctx), ts_out)
        except Exception as e:
            raise UserCodeError(self.name, timer.key, e, where=f"timer {timer.timestamp} of key") from e
        finally:
            ctx._time_domain = None
        self._emitter.flush(self.output)

    def on_event_time(self, timer: Any) -> None:
        self._fire(timer, self.EVENT_TIME, timer.timestamp)

    def on_processing_time(self, timer: Any) -> None:
        self._fire(timer, self.PROCESSING_TIME, None)


class BroadcastState:
    """Broadcast state of one MapStateDescriptor: a dict; read-only on the non-broadcast side."""

    def __init__(self, data: dict, writable: bool) -> None:
        self._data = data
        self._writable = writable

    def _check(self) -> None:
        if not self._writable:
            raise RuntimeError(
                "broadcast state is read-only in process_element; update it in process_broadcast_element"
            )

    def get(self, key: Any) -> Any:
        return self._data.get(key)

    def contains(self, key: Any) -> bool:
        return key in self._data

    def items(self):
        return iter(list(self._data.items()))

    def keys(self):
        return iter(list(self._data))

    def values(self):
        return iter(list(self._data.values()))

    def is_empty(self) -> bool:
        return not self._data

    def __iter__(self):
        return self.keys()

    def put(self, key: Any, value: Any) -> None:
        self._check()
        self._data[key] = value

    def put_all(self, entries: dict) -> None:
        self._check()
        self._data.update(entries)

    def remove(self, key: Any) -> None:
        self._check()
        self._data.pop(key, None)

    def clear(self) -> None:
        self._check()
        self._data.clear()


class _BroadcastContext(ProcessContext):
    __slots__ = ("_writable",)

    def __init__(self, op: BroadcastProcessOperator, writable: bool) -> None:
        super().__init__(op)  # type: ignore[arg-type]
        self._writable = writable

    def get_broadcast_state(self, state_descriptor: Any) -> BroadcastState:
        op = self._op
        data = op.broadcast_states.setdefault(state_descriptor.name, {})
        return BroadcastState(data, self._writable)

    def current_processing_time(self) -> int:
        return self._op.context.processing_time_service.current_processing_time()

    def current_watermark(self) -> int:
        return self._op.current_watermark

    def apply_to_keyed_state(self, state_descriptor: Any, function: Any) -> None:
        """Keyed broadcast only: call ``function(key, state)`` for every key with state."""
        backend = self._op.state_backend
        if backend is None:
            raise RuntimeError("apply_to_keyed_state needs a keyed stream (KeyedBroadcastProcessFunction)")
        state = backend.get_or_create_state(state_descriptor)
        saved = backend.current_key
        for key in backend.keys(state_descriptor.name):
            backend.current_key = key
            function(key, state)
        backend.current_key = saved


class BroadcastProcessOperator(CoProcessOperator):
    """Input 1: the (possibly keyed) stream; input 2: the broadcast stream."""

    def __init__(self, udf: Any, name: str = "BroadcastProcess", time_domains: tuple | None = None) -> None:
        super().__init__(udf, name, time_domains)
        self.broadcast_states: dict[str, dict] = {}

    def open(self) -> None:
        super().open()
        self.read_ctx = _BroadcastContext(self, writable=False)
        self.read_ctx._timer_service = self.ctx._timer_service
        self.write_ctx = _BroadcastContext(self, writable=True)
        self.write_ctx._timer_service = self.ctx._timer_service
        self.ctx = self.read_ctx  # on_timer sees the read-only context, as in Flink

    def process_batch1(self, values: list, timestamps: list | None) -> None:
        self._run(self.udf.process_element, values, timestamps, self.key_selector1, self.read_ctx, True)

    def process_batch2(self, values: list, timestamps: list | None) -> None:
        self._run(self.udf.process_broadcast_element, values, timestamps, None, self.write_ctx, True)

    def snapshot_operator_state(self) -> Any:
        return {"broadcast": {name: dict(d) for name, d in self.broadcast_states.items()}}

    def restore_operator_state(self, states: list) -> None:
        for s in states:
            if s:
                for name, d in s["broadcast"].items():
                    self.broadcast_states[name] = dict(d)
                return  # every instance holds the same broadcast state: one copy is enough
