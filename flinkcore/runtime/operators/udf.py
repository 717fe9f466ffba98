"""Operators that run user functions over micro-batches: map, filter, flat_map, process,
keyed process, rolling reduce and sinks.

Each takes plain callables (the datastream layer unwraps ``MapFunction.map`` etc.) plus the
function object itself (``udf``) for ``open(runtime_context)`` / ``close()``. Stateless
operators run a whole batch in one C-level loop (``list(map(f, it))``); when a user function
raises, the iterator's remaining length names the failing record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from itertools import compress, repeat
from typing import Any

from flinkcore.common.watermark import MAX_WATERMARK as MAX_TIMESTAMP
from flinkcore.common.watermark import MIN_WATERMARK as MIN_TIMESTAMP
from flinkcore.runtime.context import RuntimeContext
from flinkcore.runtime.operators.arrow import record_columns
from flinkcore.runtime.operators.base import AbstractStreamOperator, SideOutputTag, UserCodeError
from flinkcore.state.backend import VOID_NAMESPACE

__all__ = [
    "FilterOperator",
    "FlatMapOperator",
    "KeyedProcessOperator",
    "MapOperator",
    "ProcessOperator",
    "ReduceOperator",
    "SinkOperator",
    "UdfOperator",
]


try:  # the compiled sink loop; without it the Python loop below runs (same calls)
    from flinkcore._core import sink_loop as _sink_loop
except ImportError:  # pragma: no cover - a build without the native core
    _sink_loop = None

_consume = partial(deque, maxlen=0)


def _failed_index(values: list, it: Any) -> int:
    """Index of the record being processed when ``list(map(f, it))`` raised."""
    return len(values) - it.__length_hint__() - 1


class UdfOperator(AbstractStreamOperator):
    """An operator around one user function object: opens and closes it."""

    def __init__(self, udf: Any = None, name: str | None = None) -> None:
        super().__init__(name)
        self.udf = udf
        self.runtime_context: RuntimeContext | None = None

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

    def _fail(self, record: Any, e: BaseException) -> UserCodeError:
        return UserCodeError(self.name, record, e)

    def _keyed_apply(self, fn: Callable[[Any], Any], values: list) -> list:
        """``[fn(v) for v in values]`` with each record's key set first (keyed state in user code)."""
        backend = self.state_backend
        key_selector = self.key_selector
        out = []
        append = out.append
        v = None
        try:
            backend.start_batch()
            for v in values:
                backend.current_key = key_selector(v)
                append(fn(v))
        except UserCodeError:
            raise
        except Exception as e:
            raise self._fail(v, e) from e
        finally:
            backend.finish_batch()
        return out


class MapOperator(UdfOperator):
    """One output per record; timestamps pass through unchanged."""

    def __init__(self, fn: Callable[[Any], Any], udf: Any = None, name: str = "Map") -> None:
        super().__init__(udf, name)
        self.fn = fn

    def open(self) -> None:
        super().open()
        if self.key_selector is not None:
            self.process_batch = self._process_keyed  # type: ignore[method-assign]

    def process_batch(self, values: list, timestamps: list | None) -> None:
        it = iter(values)
        try:
            out = list(map(self.fn, it))
        except Exception as e:
            raise self._fail(values[_failed_index(values, it)], e) from e
        self.output.collect(out, timestamps)

    def _process_keyed(self, values: list, timestamps: list | None) -> None:
        self.output.collect(self._keyed_apply(self.fn, values), timestamps)


class FilterOperator(UdfOperator):
    """Keeps records for which the predicate is true."""

    def __init__(self, fn: Callable[[Any], bool], udf: Any = None, name: str = "Filter") -> None:
        super().__init__(udf, name)
        self.fn = fn

    def open(self) -> None:
        super().open()
        if self.key_selector is not None:
            self.process_batch = self._process_keyed  # type: ignore[method-assign]

    def _process_keyed(self, values: list, timestamps: list | None) -> None:
        keep = self._keyed_apply(self.fn, values)
        out = list(compress(values, keep))
        if out:
            self.output.collect(out, None if timestamps is None else list(compress(timestamps, keep)))

    def process_batch(self, values: list, timestamps: list | None) -> None:
        it = iter(values)
        try:
            if timestamps is None:
                out = list(filter(self.fn, it))
                if out:
                    self.output.collect(out, None)
                return
            keep = list(map(self.fn, it))
        except Exception as e:
            raise self._fail(values[_failed_index(values, it)], e) from e
        out = list(compress(values, keep))
        if out:
            self.output.collect(out, list(compress(timestamps, keep)))


class _Emitter:
    """Buffers a batch's main and side outputs; items ``(OutputTag, value)`` go to the side."""

    __slots__ = ("values", "timestamps", "side", "has_ts")

    def __init__(self) -> None:
        self.values: list = []
        self.timestamps: list = []
        self.side: dict[str, tuple[list, list]] = {}
        self.has_ts = False

    def add_all(self, result: Any, ts: int | None) -> None:
        if result is None:
            return
        values, timestamps = self.values, self.timestamps
        for item in result:
            if type(item) is tuple and len(item) == 2 and isinstance(item[0], SideOutputTag):
                side = self.side.get(item[0].tag_id)
                if side is None:
                    side = self.side[item[0].tag_id] = ([], [])
                side[0].append(item[1])
                side[1].append(ts)
            else:
                values.append(item)
                timestamps.append(ts)
        if ts is not None:
            self.has_ts = True

    def add_side(self, tag: Any, value: Any, ts: int | None) -> None:
        if not isinstance(tag, SideOutputTag):
            raise TypeError(f"output() takes an OutputTag, got {tag!r}")
        side = self.side.setdefault(tag.tag_id, ([], []))
        side[0].append(value)
        side[1].append(ts)
        if ts is not None:
            self.has_ts = True

    def flush(self, output: Any) -> None:
        if self.values:
            output.collect(self.values, self.timestamps if self.has_ts else None)
            self.values = []
            self.timestamps = []
        if self.side:
            for tag_id, (vals, tss) in self.side.items():
                output.collect_side(tag_id, vals, tss if self.has_ts else None)
            self.side = {}
        self.has_ts = False


class FlatMapOperator(UdfOperator):
    """Zero or more outputs per record (returned iterable or generator); side outputs via
    ``yield tag, value``."""

    def __init__(self, fn: Callable[[Any], Any], udf: Any = None, name: str = "FlatMap") -> None:
        super().__init__(udf, name)
        self.fn = fn

    def process_batch(self, values: list, timestamps: list | None) -> None:
        fn = self.fn
        emitter = _Emitter()
        add_all = emitter.add_all
        ts = None
        v = None
        backend = self.state_backend
        key_selector = self.key_selector
        if key_selector is not None:
            try:
                backend.start_batch()
                for v, ts in zip(values, timestamps or [None] * len(values), strict=False):
                    backend.current_key = key_selector(v)
                    add_all(fn(v), ts)
            except Exception as e:
                raise self._fail(v, e) from e
            finally:
                backend.finish_batch()
            emitter.flush(self.output)
            return
        try:
            if timestamps is None:
                for v in values:
                    add_all(fn(v), None)
            else:
                for v, ts in zip(values, timestamps, strict=False):
                    add_all(fn(v), ts)
        except Exception as e:
            raise self._fail(v, e) from e
        emitter.flush(self.output)


class _TimerServiceView:
    """``ctx.timer_service()`` of process functions (Flink's TimerService)."""

    def __init__(self, op: AbstractStreamOperator) -> None:
        self._op = op
        self._svc: Any = None

    def _keyed(self, what: str) -> Any:
        if self._svc is None:
            raise RuntimeError(
                f"{what}: timers can only be used on keyed streams, i.e. after key_by() "
                f"(operator '{self._op.name}')"
            )
        return self._svc

    def current_processing_time(self) -> int:
        return self._op.context.processing_time_service.current_processing_time()

    def current_watermark(self) -> int:
        # the timer service's watermark: the operator's, or the maximum while a key's timers fire
        # at the end of the key in BATCH execution
        return self._op.current_watermark if self._svc is None else self._svc.current_watermark

    def register_processing_time_timer(self, timestamp: int) -> None:
        self._keyed("register_processing_time_timer").register_processing_time_timer(
            VOID_NAMESPACE, timestamp
        )

    def register_event_time_timer(self, timestamp: int) -> None:
        self._keyed("register_event_time_timer").register_event_time_timer(VOID_NAMESPACE, timestamp)

    def delete_processing_time_timer(self, timestamp: int) -> None:
        self._keyed("delete_processing_time_timer").delete_processing_time_timer(VOID_NAMESPACE, timestamp)

    def delete_event_time_timer(self, timestamp: int) -> None:
        self._keyed("delete_event_time_timer").delete_event_time_timer(VOID_NAMESPACE, timestamp)


class ProcessContext:
    """``ctx`` of ``process_element``: timestamp, timer service, current key, side output."""

    __slots__ = ("_op", "_timer_service", "_ts", "_time_domain")

    def __init__(self, op: ProcessOperator) -> None:
        self._op = op
        self._timer_service = _TimerServiceView(op)
        self._ts: int | None = None
        self._time_domain: Any = None

    def timestamp(self) -> int | None:
        return self._ts

    def timer_service(self) -> _TimerServiceView:
        return self._timer_service

    def get_current_key(self) -> Any:
        backend = self._op.state_backend
        return None if backend is None else backend.current_key

    def output(self, output_tag: Any, value: Any) -> None:
        """Emit ``value`` to a side output (the Java spelling; ``yield tag, value`` also works)."""
        self._op._emitter.add_side(output_tag, value, self._ts)

    def time_domain(self) -> Any:
        """On-timer only: ``TimeDomain.EVENT_TIME`` or ``TimeDomain.PROCESSING_TIME``."""
        return self._time_domain


class ProcessOperator(UdfOperator):
    """``ProcessFunction.process_element(value, ctx)`` (and ``on_timer`` when keyed)."""

    #: set by the datastream layer: the TimeDomain enum values for on-timer contexts
    EVENT_TIME: Any = "EVENT_TIME"
    PROCESSING_TIME: Any = "PROCESSING_TIME"

    def __init__(self, udf: Any, name: str = "Process", time_domains: tuple | None = None) -> None:
        super().__init__(udf, name)
        self.process_element = udf.process_element
        self.on_timer = getattr(udf, "on_timer", None)
        if time_domains is not None:
            self.EVENT_TIME, self.PROCESSING_TIME = time_domains
        self._emitter = _Emitter()

    def open(self) -> None:
        self.ctx = ProcessContext(self)
        if self.state_backend is not None:
            self.ctx._timer_service._svc = self.get_internal_timer_service("user-timers", self)
        super().open()
        self._sorted_batch = self.state_backend is not None and self.context.runtime_mode == "BATCH"
        if self._sorted_batch:
            # BATCH execution as Flink's: keyed input is processed key by key, each key's
            # records in timestamp order, and a key's timers fire when its records are done
            self._by_key: dict = {}
            self._streaming_batch = self.process_batch
            self.process_batch = self._buffer_batch  # type: ignore[method-assign]

    def _buffer_batch(self, values: list, timestamps: list | None) -> None:
        key_selector = self.key_selector
        by_key = self._by_key
        v = None
        try:
            tss = repeat(None, len(values)) if timestamps is None else timestamps
            for v, ts in zip(values, tss):  # noqa: B905 - same length by construction
                k = key_selector(v)
                entry = by_key.get(k)
                if entry is None:
                    by_key[k] = [(ts, v)]
                else:
                    entry.append((ts, v))
        except Exception as e:
            raise self._fail(v, e) from e

    def _run_sorted_keys(self) -> None:
        svc = self.ctx._timer_service._svc
        process = self._streaming_batch
        by_key, self._by_key = self._by_key, {}
        for records in by_key.values():
            if any(ts is not None for ts, _ in records):
                records.sort(key=lambda r: MIN_TIMESTAMP if r[0] is None else r[0])  # stable
                process([v for _, v in records], [ts for ts, _ in records])
            else:
                process([v for _, v in records], None)
            svc.fire_all_for_key_end()

    def process_watermark(self, watermark: int) -> None:
        if self._sorted_batch and watermark == MAX_TIMESTAMP:
            self._run_sorted_keys()
        super().process_watermark(watermark)

    def end_input(self) -> None:
        if self._sorted_batch and self._by_key:
            self._run_sorted_keys()
        super().end_input()

    def process_batch(self, values: list, timestamps: list | None) -> None:
        # the per-record loop is written out (no helper call per record): it is the hot path of
        # every keyed Python job
        ctx = self.ctx
        process_element = self.process_element
        emitter = self._emitter
        out_values = emitter.values
        out_ts = emitter.timestamps
        add_side = emitter.add_side
        key_selector = self.key_selector
        backend = self.state_backend
        tss = repeat(None, len(values)) if timestamps is None else timestamps
        v = None
        try:
            if backend is not None:
                backend.start_batch()
            if key_selector is None:
                for v, ts in zip(values, tss):  # noqa: B905 - same length by construction
                    ctx._ts = ts
                    res = process_element(v, ctx)
                    if res is not None:
                        for item in res:
                            if type(item) is tuple and len(item) == 2 and isinstance(item[0], SideOutputTag):
                                add_side(item[0], item[1], ts)
                            else:
                                out_values.append(item)
                                out_ts.append(ts)
            else:
                for v, ts in zip(values, tss):  # noqa: B905
                    ctx._ts = ts
                    backend.current_key = key_selector(v)
                    res = process_element(v, ctx)
                    if res is not None:
                        for item in res:
                            if type(item) is tuple and len(item) == 2 and isinstance(item[0], SideOutputTag):
                                add_side(item[0], item[1], ts)
                            else:
                                out_values.append(item)
                                out_ts.append(ts)
        except UserCodeError:
            raise
        except Exception as e:
            raise self._fail(v, e) from e
        finally:
            if backend is not None:
                backend.finish_batch()
        if timestamps is not None:
            emitter.has_ts = True
        emitter.flush(self.output)

    def _fire(self, timer: Any, domain: Any, ts_out: int | None) -> None:
        if self.on_timer is None:
            return
        ctx = self.ctx
        ctx._ts = timer.timestamp
        ctx._time_domain = domain
        try:
            self._emitter.add_all(self.on_timer(timer.timestamp, ctx), ts_out)
        except Exception as e:
            raise UserCodeError(self.name, timer.key, e, where=f"timer {timer.timestamp} of key") from e
        finally:
            ctx._time_domain = None
        self._emitter.flush(self.output)

    def on_event_time(self, timer: Any) -> None:
        self._fire(timer, self.EVENT_TIME, timer.timestamp)

    def on_processing_time(self, timer: Any) -> None:
        self._fire(timer, self.PROCESSING_TIME, None)


class KeyedProcessOperator(ProcessOperator):
    """``KeyedProcessFunction``: a ProcessOperator on a keyed stream (key selector required)."""

    def open(self) -> None:
        if self.state_backend is None:
            raise RuntimeError(f"'{self.name}': a KeyedProcessFunction needs a keyed stream (key_by first)")
        super().open()


class ReduceOperator(UdfOperator):
    """Rolling reduce per key. STREAMING emits every updated value; BATCH emits each key's
    final value at end of input (Flink's semantics for bounded, batch execution)."""

    def __init__(self, reduce_fn: Callable[[Any, Any], Any], udf: Any = None, name: str = "Reduce") -> None:
        super().__init__(udf, name)
        self.reduce_fn = reduce_fn

    def open(self) -> None:
        from flinkcore.state.descriptors import ValueStateDescriptor

        self._state = self.state_backend.get_or_create_state(ValueStateDescriptor("_reduce_value"))
        self._batch_mode = self.context.runtime_mode == "BATCH"
        self._last_ts: dict = {}
        super().open()

    def process_batch(self, values: list, timestamps: list | None) -> None:
        backend = self.state_backend
        key_selector = self.key_selector
        reduce_fn = self.reduce_fn
        state = self._state
        out = []
        v = None
        try:
            backend.start_batch()
            for v in values:
                backend.current_key = key_selector(v)
                current = state.value()
                new = v if current is None else reduce_fn(current, v)
                state.update(new)
                out.append(new)
                if self._batch_mode and timestamps is not None:
                    self._last_ts[backend.current_key] = timestamps[len(out) - 1]
        except Exception as e:
            raise self._fail(v, e) from e
        finally:
            backend.finish_batch()
        if not self._batch_mode:
            self.output.collect(out, timestamps)

    def end_input(self) -> None:
        if self._batch_mode:
            backend = self.state_backend
            keys = backend.keys("_reduce_value")
            out = []
            for k in keys:
                backend.current_key = k
                out.append(self._state.value())
            if out:
                ts = [self._last_ts.get(k) for k in keys] if self._last_ts else None
                self.output.collect(out, ts)
        super().end_input()


class SinkContext:
    """``context`` of ``SinkFunction.invoke(value, context)``."""

    __slots__ = ("_op", "_ts")

    def __init__(self, op: SinkOperator) -> None:
        self._op = op
        self._ts: int | None = None

    def timestamp(self) -> int | None:
        return self._ts

    def current_watermark(self) -> int:
        return self._op.current_watermark

    def current_processing_time(self) -> int:
        return self._op.context.processing_time_service.current_processing_time()


class SinkOperator(UdfOperator):
    """Calls ``invoke(value, context)`` per record; a sink emits nothing downstream."""

    def __init__(self, invoke: Callable[[Any, Any], Any], udf: Any = None, name: str = "Sink") -> None:
        super().__init__(udf, name)
        self.invoke = invoke

    def open(self) -> None:
        self.sink_context = SinkContext(self)
        self._position = _sink_loop.Position() if _sink_loop is not None else None
        super().open()
        if self.key_selector is not None:
            self.process_batch = self._process_keyed  # type: ignore[method-assign]
        # columnar batches come in as they are: one compiled loop builds each record from the
        # columns, invokes and drops it (no list of Rows per batch). Only this class's loops take
        # them; a subclass may replace process_batch with one that takes lists.
        self.accepts_columnar = _sink_loop is not None and type(self) is SinkOperator

    def _process_columnar(self, batch: Any, timestamps: Any, keyed: bool = False) -> None:
        """A columnar batch, record by record: each record the Row (tuple, scalar) the batch's Rows
        would hold, with its timestamp, its key current when keyed, in a compiled loop."""
        cls, columns = record_columns(batch)
        pos = self._position
        backend = self.state_backend if keyed else None
        try:
            if backend is not None:
                backend.start_batch()
            key_selector = self.key_selector if keyed else None
            _sink_loop.invoke_columns(
                pos, self.invoke, self.sink_context, cls, columns, timestamps, key_selector, backend
            )
        except Exception as e:
            if pos.index < 0:
                raise
            record, pos.record = pos.record, None
            raise self._fail(record, e) from e
        finally:
            if backend is not None:
                backend.finish_batch()

    def _process_keyed(self, values: list, timestamps: list | None) -> None:
        """A sink after key_by: the record's key is current while ``invoke`` runs (keyed state)."""
        if type(values) is not list:
            self._process_columnar(values, timestamps, keyed=True)
            return
        ctx = self.sink_context
        invoke = self.invoke
        backend = self.state_backend
        key_selector = self.key_selector
        tss = repeat(None, len(values)) if timestamps is None else timestamps
        v = None
        try:
            backend.start_batch()
            for v, ts in zip(values, tss):  # noqa: B905 - same length by construction
                ctx._ts = ts
                backend.current_key = key_selector(v)
                invoke(v, ctx)
        except Exception as e:
            raise self._fail(v, e) from e
        finally:
            backend.finish_batch()

    def process_batch(self, values: list, timestamps: list | None) -> None:
        if type(values) is not list:
            self._process_columnar(values, timestamps)
            return
        invoke = self.invoke
        ctx = self.sink_context
        if timestamps is None:
            ctx._ts = None
            it = iter(values)
            try:
                _consume(map(invoke, it, repeat(ctx)))  # one C-level loop over the batch
            except Exception as e:
                raise self._fail(values[_failed_index(values, it)], e) from e
            return
        if _sink_loop is not None and type(values) is list and type(timestamps) is list:
            pos = self._position
            try:
                _sink_loop.invoke_all(pos, invoke, ctx, values, timestamps)
            except Exception as e:
                raise self._fail(values[pos.index], e) from e
            return
        v = None
        try:
            for v, ts in zip(values, timestamps, strict=False):
                ctx._ts = ts
                invoke(v, ctx)
        except Exception as e:
            raise self._fail(v, e) from e

    def process_watermark(self, watermark: int) -> None:
        if watermark > self.current_watermark:
            self.current_watermark = watermark

    def process_watermark_status(self, idle: bool) -> None:
        pass

    def end_input(self) -> None:
        finish = getattr(self.udf, "finish", None)
        if callable(finish):
            finish()
