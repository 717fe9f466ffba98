"""The window operator: how windows run (Flink's ``WindowOperator`` and ``EvictingWindowOperator``).

Per element: the assigner gives its windows; for merging assigners (sessions) a per-key
:class:`MergingWindowSet` merges the new window with existing ones, merging their contents and
their triggers (``on_merge``). Each window's contents live in keyed state with the window as
namespace (a list of elements, a reduced value, or an aggregate accumulator). The trigger
decides when a window fires (the window function is evaluated and its results are emitted with
timestamp ``window.max_timestamp()``) and when it is purged.

Lateness (event time): a window is late when ``max_timestamp + allowed_lateness <= watermark``;
an element none of whose windows is accepted, and whose own ``timestamp + allowed_lateness <=
watermark``, goes to the late-data side output or is dropped. A cleanup timer at
``max_timestamp + allowed_lateness`` clears the window's contents, trigger state and the window
function's per-window state. Within allowed lateness a late element re-fires its window with
all of its contents (EventTimeTrigger fires at once when the watermark is past the window).

:class:`AlignedWindowOperator` is the same semantics specialised for tumbling and sliding
event-time windows with the default trigger and no evictor — the common case — with windows
fired by a scan of pending window ends instead of per-key timers and trigger calls;
:class:`SessionWindowOperator` likewise for event-time sessions with a static gap and no allowed
lateness. Both are tested against the general operator and a reference model. Their per-record
loops are compiled (``flinkcore._core.window_udf``: the user's key selector and
AggregateFunction.add / reduce called from C, a tumbling window's accumulators in a
:class:`~flinkcore._core.window_udf.KeyedPanes`); the Python loops here are their twins, run
for what the compiled loops leave (late records, non-int timestamps, merges of several
sessions) and tested against them. ``runtime/fusion.py`` fuses a timestamp assigner into them. The columnar
variants (built-in aggregates over column batches) are in
:mod:`flinkcore.runtime.operators.window_columnar`.

The runtime knows nothing of the user API classes: assigners, triggers and evictors are used
through their methods, and the window function arrives as an internal adapter
(:class:`InternalWindowFunction`) built by ``flinkcore.datastream.windowed_stream``.
"""

from __future__ import annotations

import heapq
import operator
from collections.abc import Callable, Iterable
from typing import Any

from flinkcore._core.serde import dumps, loads
from flinkcore.common.watermark import MAX_WATERMARK
from flinkcore.runtime.key_selectors import fast_key_selector, subscript_constant
from flinkcore.runtime.operators.base import AbstractStreamOperator, SideOutputTag, UserCodeError
from flinkcore.state.backend import VOID_NAMESPACE
from flinkcore.state.descriptors import (
    AggregatingStateDescriptor,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateDescriptor,
    ValueStateDescriptor,
)
from flinkcore.state.key_groups import key_group_of

try:  # the compiled per-record loops; without them the Python loops below run (same results)
    from flinkcore._core import window_udf as _compiled
except ImportError:  # pragma: no cover - a build without the native core
    _compiled = None

__all__ = [
    "AlignedWindowOperator",
    "InternalWindowFunction",
    "MergingWindowSet",
    "SessionWindowOperator",
    "TimestampedValue",
    "WindowOperator",
    "WindowStateSpec",
]

MAX_LONG = MAX_WATERMARK
MIN_LONG = -(2**63)


class TimestampedValue:
    """An element with its timestamp, as evictors see window contents."""

    __slots__ = ("value", "timestamp")

    def __init__(self, value: Any, timestamp: int | None = None) -> None:
        self.value = value
        self.timestamp = timestamp

    def get_value(self) -> Any:
        return self.value

    def get_timestamp(self) -> int | None:
        return self.timestamp

    def has_timestamp(self) -> bool:
        return self.timestamp is not None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TimestampedValue)
            and self.value == other.value
            and self.timestamp == other.timestamp
        )

    def __repr__(self) -> str:
        return f"TimestampedValue({self.value!r}, {self.timestamp!r})"

    def __reduce__(self):
        return (TimestampedValue, (self.value, self.timestamp))


class WindowStateSpec:
    """How a window's contents are kept: ``kind`` is ``"list"``, ``"reducing"`` or ``"aggregating"``.

    ``reduce`` is the reduce function for ``"reducing"``; ``aggregate`` the AggregateFunction
    (create_accumulator/add/get_result/merge) for ``"aggregating"``.
    """

    def __init__(self, kind: str, reduce: Callable | None = None, aggregate: Any = None) -> None:
        if kind not in ("list", "reducing", "aggregating"):
            raise ValueError(f"unknown window state kind {kind!r}")
        self.kind = kind
        self.reduce = reduce
        self.aggregate = aggregate

    def descriptor(self, name: str = "window-contents") -> StateDescriptor:
        if self.kind == "list":
            return ListStateDescriptor(name)
        if self.kind == "reducing":
            return ReducingStateDescriptor(name, self.reduce)
        return AggregatingStateDescriptor(name, self.aggregate)

    def fold(self, values: list) -> Any:
        """The window result of ``values`` (for evicting windows, which keep all elements)."""
        if self.kind == "list":
            return values
        if self.kind == "reducing":
            acc = values[0]
            for v in values[1:]:
                acc = self.reduce(acc, v)
            return acc
        agg = self.aggregate
        acc = agg.create_accumulator()
        for v in values:
            acc = agg.add(v, acc)
        return agg.get_result(acc)


class InternalWindowFunction:
    """The one contract every kind of user window function is adapted to.

    ``process(key, window, ctx, contents)`` returns an iterable of outputs (or None);
    ``contents`` is the list of elements (list state) or the single reduced / aggregated value.
    An output ``(tag, value)`` whose ``tag`` is an ``OutputTag`` goes to that side output.
    """

    def __init__(
        self,
        process: Callable[[Any, Any, Any, Any], Iterable | None],
        clear: Callable[[Any, Any], None] | None = None,
        open: Callable[[Any], None] | None = None,  # noqa: A002
        close: Callable[[], None] | None = None,
        passthrough: bool = False,
    ) -> None:
        self.process = process
        self.clear = clear
        self.open = open
        self.close = close
        #: True when the output is the window's reduced/aggregated value itself (no user window
        #: function): operators may then emit it without calling ``process``
        self.passthrough = passthrough


# --------------------------------------------------------------------------------------------
# Contexts and state stores
# --------------------------------------------------------------------------------------------


class _KeyedStateStore:
    """``get_state``/``get_list_state``/... scoped to the current key and a namespace."""

    def __init__(self, backend: Any, namespace: Callable[[], Any]) -> None:
        self._backend = backend
        self._namespace = namespace

    def _get(self, descriptor: StateDescriptor) -> Any:
        state = self._backend.get_or_create_state(descriptor)
        state.set_current_namespace(self._namespace())
        return state

    def get_state(self, descriptor: ValueStateDescriptor) -> Any:
        return self._get(descriptor)

    def get_list_state(self, descriptor: ListStateDescriptor) -> Any:
        return self._get(descriptor)

    def get_map_state(self, descriptor: MapStateDescriptor) -> Any:
        return self._get(descriptor)

    def get_reducing_state(self, descriptor: ReducingStateDescriptor) -> Any:
        return self._get(descriptor)

    def get_aggregating_state(self, descriptor: AggregatingStateDescriptor) -> Any:
        return self._get(descriptor)


class _RuntimeContext(_KeyedStateStore):
    """What a window assigner and the user's window function see as their runtime context."""

    def __init__(self, operator: AbstractStreamOperator) -> None:
        super().__init__(operator.state_backend, lambda: VOID_NAMESPACE)
        self._op = operator

    def get_index_of_this_subtask(self) -> int:
        return self._op.context.subtask_index

    def get_number_of_parallel_subtasks(self) -> int:
        return self._op.context.parallelism

    def get_max_number_of_parallel_subtasks(self) -> int:
        return self._op.context.max_parallelism

    def get_task_name(self) -> str:
        return self._op.name

    def get_job_parameter(self, key: str, default_value: str | None = None) -> str | None:
        return self._op.context.config.get(key, default_value)

    def get_metrics_group(self) -> Any:
        raise NotImplementedError("metrics are not available in window functions yet")


class _WindowContext:
    """One object serving as trigger context, merge context, assigner/evictor context and the
    ProcessWindowFunction context. ``window`` is set by the operator before each call."""

    def __init__(self, op: WindowOperator) -> None:
        self._op = op
        self.cur_window: Any = None
        self.merged_windows: list = []
        self._window_store = _KeyedStateStore(op.state_backend, self._per_window_namespace)
        self._global_store = _KeyedStateStore(op.state_backend, lambda: VOID_NAMESPACE)

    def window(self) -> Any:
        """The window being evaluated (ProcessWindowFunction.Context.window())."""
        return self.cur_window

    # -- time --------------------------------------------------------------------------------
    def get_current_watermark(self) -> int:
        return self._op.current_watermark

    def get_current_processing_time(self) -> int:
        return self._op.processing_time()

    current_watermark = get_current_watermark
    current_processing_time = get_current_processing_time

    # -- trigger timers (scoped to the current key and ``window``) ------------------------------
    def register_event_time_timer(self, time: int) -> None:
        self._op.timer_service.register_event_time_timer(self.cur_window, time)

    def delete_event_time_timer(self, time: int) -> None:
        self._op.timer_service.delete_event_time_timer(self.cur_window, time)

    def register_processing_time_timer(self, time: int) -> None:
        self._op.timer_service.register_processing_time_timer(self.cur_window, time)

    def delete_processing_time_timer(self, time: int) -> None:
        self._op.timer_service.delete_processing_time_timer(self.cur_window, time)

    def get_partitioned_state(self, state_descriptor: StateDescriptor) -> Any:
        state = self._op.state_backend.get_or_create_state(state_descriptor)
        state.set_current_namespace(self.cur_window)
        return state

    def merge_partitioned_state(self, state_descriptor: StateDescriptor) -> None:
        if self.merged_windows:
            state = self._op.state_backend.get_or_create_state(state_descriptor)
            state.merge_namespaces(self.cur_window, self.merged_windows)

    def get_metric_group(self) -> Any:
        raise NotImplementedError("metrics are not available to triggers yet")

    # -- assigner context -----------------------------------------------------------------------
    def get_runtime_context(self) -> Any:
        return self._op.runtime_context

    # -- ProcessWindowFunction context ------------------------------------------------------------
    def _per_window_namespace(self) -> Any:
        if self._op.merging:
            raise NotImplementedError(
                "Per-window state is not allowed when using merging windows (sessions), as in Flink"
            )
        return self.cur_window

    def window_state(self) -> _KeyedStateStore:
        return self._window_store

    def global_state(self) -> _KeyedStateStore:
        return self._global_store

    def get_current_key(self) -> Any:
        return self._op.state_backend.current_key


# --------------------------------------------------------------------------------------------
# Merging windows
# --------------------------------------------------------------------------------------------


class MergingWindowSet:
    """Which (merged) window keeps its contents in which state window, for one key.

    When windows merge, the contents of all of them end up in the namespace of one of the
    existing windows (the *state window*), so merging moves only the others' state. This is
    Flink's ``MergingWindowSet``: ``mapping[window] = state_window``.
    """

    def __init__(self, assigner: Any, mapping: dict | None = None) -> None:
        self.assigner = assigner
        self.mapping: dict = mapping if mapping is not None else {}
        self._initial = dict(self.mapping)

    def get_state_window(self, window: Any) -> Any:
        return self.mapping.get(window)

    def retire_window(self, window: Any) -> None:
        if self.mapping.pop(window, None) is None:
            raise RuntimeError(f"Window {window} is not in in-flight window set.")

    def changed(self) -> bool:
        return self.mapping != self._initial

    def add_window(self, new_window: Any, merge_function: Callable[[Any, list, Any, list], None]) -> Any:
        """Add ``new_window``, merging as the assigner says; returns the window it ended up in.

        ``merge_function(merge_result, merged_windows, state_window_result, merged_state_windows)``
        is called for every merge that involves existing windows (``merged_windows`` excludes
        ``new_window``, which has no state yet).
        """
        windows = list(self.mapping)
        windows.append(new_window)
        merge_results: list[tuple[Any, list]] = []

        class _Collect:
            @staticmethod
            def merge(to_be_merged: Iterable, merge_result: Any) -> None:
                merge_results.append((merge_result, list(to_be_merged)))

        self.assigner.merge_windows(windows, _Collect)

        result_window = new_window
        merged_new_window = False
        for merge_result, merged_windows in merge_results:
            if new_window in merged_windows:
                merged_windows.remove(new_window)
                merged_new_window = True
                result_window = merge_result
            # The contents of all merged windows go to the state window of one of them.
            merged_state_window = self.mapping[merged_windows[0]]
            merged_state_windows = []
            for w in merged_windows:
                sw = self.mapping.pop(w, None)
                if sw is not None:
                    merged_state_windows.append(sw)
            self.mapping[merge_result] = merged_state_window
            merged_state_windows.remove(merged_state_window)
            # Merging a window into itself alone (new window inside an existing one) is no merge.
            if not (len(merged_windows) == 1 and merged_windows[0] == merge_result):
                merge_function(merge_result, merged_windows, merged_state_window, merged_state_windows)

        if not merge_results or (result_window == new_window and not merged_new_window):
            self.mapping[result_window] = result_window
        return result_window


# --------------------------------------------------------------------------------------------
# The generic window operator
# --------------------------------------------------------------------------------------------


class _WindowOperatorBase(AbstractStreamOperator):
    """What the window operators share: the keyed-stream check, the window function's life
    cycle and the contexts it is given, and the results buffered per batch (``_flush``)."""

    def open(self) -> None:
        if self.state_backend is None:
            raise RuntimeError("the window operator needs a keyed stream: call key_by() before window()")
        self._open_state()
        self.runtime_context = _RuntimeContext(self)
        self._ctx = _WindowContext(self)
        self._out_values: list = []
        self._out_ts: list = []
        if self.function.open is not None:
            self.function.open(self.runtime_context)

    def _open_state(self) -> None:
        """The operator's own part of :meth:`open`, before the window function opens."""
        raise NotImplementedError

    def close(self) -> None:
        if self.function.close is not None:
            self.function.close()

    def processing_time(self) -> int:
        pts = self.context.processing_time_service
        if pts is None:
            import time

            return int(time.time() * 1000)
        return pts.current_processing_time()

    def _flush(self) -> None:
        if self._out_values:
            values, ts = self._out_values, self._out_ts
            self._out_values, self._out_ts = [], []
            self.output.collect(values, ts)

    def end_input(self) -> None:
        self._flush()
        super().end_input()


class WindowOperator(_WindowOperatorBase):
    """Flink's WindowOperator (and EvictingWindowOperator when ``evictor`` is given)."""

    def __init__(
        self,
        assigner: Any,
        trigger: Any,
        state_spec: WindowStateSpec,
        window_function: InternalWindowFunction,
        allowed_lateness: int = 0,
        late_data_tag: str | None = None,
        evictor: Any = None,
        name: str = "Window",
    ) -> None:
        super().__init__(name)
        if allowed_lateness < 0:
            raise ValueError(f"allowed lateness must be >= 0, got {allowed_lateness}")
        self.assigner = assigner
        self.trigger = trigger
        self.state_spec = state_spec
        self.function = window_function
        self.allowed_lateness = allowed_lateness
        self.late_data_tag = late_data_tag
        self.evictor = evictor
        self.merging = callable(getattr(assigner, "merge_windows", None))
        self.event_time = bool(assigner.is_event_time())
        if self.merging and not trigger.can_merge():
            raise ValueError(
                f"A merging window assigner cannot be used with a trigger that does not support "
                f"merging: {trigger!r} (implement can_merge() and on_merge())"
            )
        if not self.event_time and allowed_lateness:
            # Flink ignores lateness for processing time; say so instead of silently ignoring it.
            self.allowed_lateness = 0
        #: late elements dropped (Flink's numLateRecordsDropped)
        self.num_late_records_dropped = 0

    # -- life cycle ------------------------------------------------------------------------------
    def _open_state(self) -> None:
        backend = self.state_backend
        if self.evictor is not None:
            self._contents = backend.get_or_create_state(ListStateDescriptor("window-contents"))
        else:
            self._contents = backend.get_or_create_state(self.state_spec.descriptor())
        self._list_contents = self.evictor is not None or self.state_spec.kind == "list"
        self._merging_sets = backend.get_or_create_state(ValueStateDescriptor("merging-window-set"))
        self.timer_service = self.get_internal_timer_service("window-timers", self)

    # -- records --------------------------------------------------------------------------------
    def process_batch(self, values: list, timestamps: list | None) -> None:
        backend = self.state_backend
        key_selector = self.key_selector
        process = self._process_element
        try:
            backend.start_batch()
            for i, value in enumerate(values):
                ts = timestamps[i] if timestamps is not None else None
                key = key_selector(value)
                backend.current_key = key
                process(value, ts, key)
        finally:
            backend.finish_batch()
            self._flush()

    def _process_element(self, value: Any, ts: int | None, key: Any) -> None:
        ctx = self._ctx
        trigger = self.trigger
        contents = self._contents
        try:
            windows = self.assigner.assign_windows(value, ts, ctx)
        except Exception as e:
            raise UserCodeError(self.name, value, e) from e
        stored = value if self.evictor is None else TimestampedValue(value, ts)
        skipped = True
        if self.merging:
            mws = self._merging_window_set()
            for window in windows:
                actual = mws.add_window(window, self._merge)
                if self._is_window_late(actual):
                    mws.retire_window(actual)
                    continue
                skipped = False
                state_window = mws.get_state_window(actual)
                if state_window is None:
                    raise RuntimeError(f"Window {actual} is not in in-flight window set.")
                contents.set_current_namespace(state_window)
                contents.add(stored)
                ctx.cur_window = actual
                result = trigger.on_element(value, ts, actual, ctx)
                if result.is_fire():
                    self._fire(key, actual)
                if result.is_purge():
                    contents.clear()
                self._register_cleanup_timer(actual)
            self._persist(mws)
        else:
            for window in windows:
                if self._is_window_late(window):
                    continue
                skipped = False
                contents.set_current_namespace(window)
                contents.add(stored)
                ctx.cur_window = window
                result = trigger.on_element(value, ts, window, ctx)
                if result.is_fire():
                    self._fire(key, window)
                if result.is_purge():
                    contents.clear()
                self._register_cleanup_timer(window)
        if skipped and self._is_element_late(ts):
            if self.late_data_tag is not None:
                self.output.collect_side(self.late_data_tag, [value], [ts])
            else:
                self.num_late_records_dropped += 1

    # -- timers ---------------------------------------------------------------------------------
    def on_event_time(self, timer: Any) -> None:
        self._on_timer(timer, True)

    def on_processing_time(self, timer: Any) -> None:
        self._on_timer(timer, False)
        self._flush()

    def _on_timer(self, timer: Any, event_time: bool) -> None:
        window = timer.namespace
        key = timer.key
        contents = self._contents
        mws = None
        if self.merging:
            mws = self._merging_window_set()
            state_window = mws.get_state_window(window)
            if state_window is None:
                # A timer of a window that was merged away or already cleaned up: the trigger
                # did not delete it. Nothing to do (as in Flink).
                return
            contents.set_current_namespace(state_window)
        else:
            contents.set_current_namespace(window)
        ctx = self._ctx
        ctx.cur_window = window
        if event_time:
            result = self.trigger.on_event_time(timer.timestamp, window, ctx)
        else:
            result = self.trigger.on_processing_time(timer.timestamp, window, ctx)
        if result.is_fire():
            self._fire(key, window)
        if result.is_purge():
            contents.clear()
        if event_time == self.event_time and timer.timestamp == self._cleanup_time(window):
            self._clear_all_state(window, mws)
        if mws is not None:
            self._persist(mws)

    def process_watermark(self, watermark: int) -> None:
        if watermark <= self.current_watermark:
            return
        self.current_watermark = watermark
        for svc in self._timer_services.values():
            svc.advance_watermark(watermark)
        self._flush()
        self.output.emit_watermark(watermark)

    # -- helpers -------------------------------------------------------------------------------
    def _cleanup_time(self, window: Any) -> int:
        max_ts = window.max_timestamp()
        if self.event_time:
            t = max_ts + self.allowed_lateness
            return t if t < MAX_LONG else MAX_LONG
        return max_ts

    def _is_window_late(self, window: Any) -> bool:
        return self.event_time and self._cleanup_time(window) <= self.current_watermark

    def _is_element_late(self, ts: int | None) -> bool:
        return self.event_time and ts is not None and ts + self.allowed_lateness <= self.current_watermark

    def _register_cleanup_timer(self, window: Any) -> None:
        t = self._cleanup_time(window)
        if t == MAX_LONG:
            return  # the end of time never comes: nothing to clean up by a timer
        if self.event_time:
            self.timer_service.register_event_time_timer(window, t)
        else:
            self.timer_service.register_processing_time_timer(window, t)

    def _delete_cleanup_timer(self, window: Any) -> None:
        t = self._cleanup_time(window)
        if t == MAX_LONG:
            return
        if self.event_time:
            self.timer_service.delete_event_time_timer(window, t)
        else:
            self.timer_service.delete_processing_time_timer(window, t)

    def _merging_window_set(self) -> MergingWindowSet:
        return MergingWindowSet(self.assigner, self._merging_sets.value())

    def _persist(self, mws: MergingWindowSet) -> None:
        if mws.changed():
            self._merging_sets.update(mws.mapping if mws.mapping else None)

    def _merge(
        self, merge_result: Any, merged_windows: list, state_window: Any, merged_state_windows: list
    ) -> None:
        if self.event_time and merge_result.max_timestamp() + self.allowed_lateness <= self.current_watermark:
            raise NotImplementedError(
                "The end timestamp of an event-time window cannot become earlier than the current watermark "
                f"by merging. Current watermark: {self.current_watermark} window: {merge_result}"
            )
        if not self.event_time and merge_result.max_timestamp() <= self.processing_time():
            raise NotImplementedError(
                "The end timestamp of a processing-time window cannot become earlier than the current "
                f"processing time by merging. Current processing time: {self.processing_time()} "
                f"window: {merge_result}"
            )
        ctx = self._ctx
        ctx.cur_window = merge_result
        ctx.merged_windows = merged_windows
        self.trigger.on_merge(merge_result, ctx)
        ctx.merged_windows = []
        for m in merged_windows:
            ctx.cur_window = m
            self.trigger.clear(m, ctx)
            self._delete_cleanup_timer(m)
        self._contents.merge_namespaces(state_window, merged_state_windows)

    def _clear_all_state(self, window: Any, mws: MergingWindowSet | None) -> None:
        self._contents.clear()
        ctx = self._ctx
        ctx.cur_window = window
        self.trigger.clear(window, ctx)
        if self.function.clear is not None:
            self.function.clear(window, ctx)
        if mws is not None:
            mws.retire_window(window)

    def _fire(self, key: Any, window: Any) -> None:
        """Evaluate the window function on the current contents and buffer its outputs."""
        contents = self._contents.get()
        if contents is None or (self._list_contents and not contents):
            return
        ctx = self._ctx
        ctx.cur_window = window
        evictor = self.evictor
        if evictor is not None:
            elements = list(contents)
            evictor.evict_before(elements, len(elements), window, ctx)
            values = [e.value for e in elements]
            if values:
                self._emit(key, window, self.state_spec.fold(values))
            evictor.evict_after(elements, len(elements), window, ctx)
            self._contents.update(elements)
        else:
            self._emit(key, window, contents)

    def _emit(self, key: Any, window: Any, contents: Any) -> None:
        ctx = self._ctx
        ctx.cur_window = window
        try:
            results = self.function.process(key, window, ctx, contents)
        except Exception as e:
            raise UserCodeError(self.name, (key, window), e, where="window") from e
        if results is None:
            return
        ts = window.max_timestamp()
        out_v = self._out_values
        out_t = self._out_ts
        for item in results:
            if type(item) is tuple and len(item) == 2 and isinstance(item[0], SideOutputTag):
                self.output.collect_side(item[0].tag_id, [item[1]], [ts])
            else:
                out_v.append(item)
                out_t.append(ts)


# --------------------------------------------------------------------------------------------
# Tumbling / sliding event-time windows with the default trigger
# --------------------------------------------------------------------------------------------

_MISSING = object()


def _batch_keys(op: AbstractStreamOperator, values: list) -> list:
    """The keys of a batch in one C-level loop; a failing record is named in the error."""
    key_of = getattr(op, "_fast_key", None)  # (reading op.__dict__ would make its dict real)
    if key_of is None:
        key_of = op._fast_key = fast_key_selector(op.key_selector)
    try:
        return list(map(key_of, values))
    except Exception:
        for value in values:
            try:
                op.key_selector(value)
            except Exception as cause:  # noqa: BLE001
                raise UserCodeError(op.name, value, cause) from cause
        raise


def loop_failure(op: Any, values: list, cause: Exception, pre: Any) -> UserCodeError:
    """The error of a compiled loop's user function, naming the operator it belongs to and the
    record that operator received: the fused timestamp assigner (``cursor.stage`` 0), the fused
    map (2), else the window operator (given the map's output when a map is fused)."""
    cur = op._cursor
    value = values[cur.position]
    if cur.stage == 0:
        return UserCodeError(op._fused_names[0], value, cause, where="record (timestamp assigner)")
    if cur.stage == 2:
        return UserCodeError(op._fused_names[1], value, cause)
    if pre is not None:
        value = cur.value
    return UserCodeError(op.name, value, cause)


def check_loop_timestamp(ts: Any, extract: Any) -> None:
    """Raise the error for a record a compiled loop stopped at because it has no timestamp."""
    if ts is None:
        if extract is not None:
            raise ValueError("the timestamp assigner returned None: a timestamp must be an int (ms)")
        raise ValueError(
            "Record has no timestamp. Did you forget to call "
            "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
        )


def key_index_of(key_selector: Any) -> int:
    """``c`` when the key selector is exactly ``lambda v: v[c]`` or ``operator.itemgetter(c)``
    with an int ``c`` >= 0, else -1 (the compiled loops then subscript a tuple record in C, as
    ``fast_key_selector`` does)."""
    if type(key_selector) is operator.itemgetter:
        args = key_selector.__reduce__()[1]
        const = args[0] if len(args) == 1 else None
        return const if type(const) is int and const >= 0 else -1
    ok, const = subscript_constant(key_selector)
    return const if ok and type(const) is int and const >= 0 else -1


def _kernel_functions(spec: WindowStateSpec) -> tuple[int, Any, Any]:
    """``(kind, create, fn)`` for the compiled loops (kind as ``window_udf.KIND_*``): the
    user's functions, called directly."""
    if spec.kind == "aggregating":
        return 0, spec.aggregate.create_accumulator, spec.aggregate.add
    if spec.kind == "reducing":
        return 1, None, spec.reduce
    return 2, None, None


_NO_TIMESTAMPS = (
    "Record has no timestamp. Did you forget to call "
    "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
)


class _CompiledWindowOperator(_WindowOperatorBase):
    """What the aligned and the session window operators share: records the compiled loop
    (``_compiled_batch``) takes, also fused after a timestamp assigner, and late records."""

    def _compiled_batch(self, values: list, timestamps: list | None, extract: Any, pre: Any) -> list:
        raise NotImplementedError

    _failure = loop_failure

    def fused_batch(
        self, values: list, timestamps: list | None, extract: Any, names: tuple, pre: Any = None
    ) -> list:
        """A batch from a fused timestamp assigner ``extract`` (the runtime's fusion of
        TimestampsAndWatermarks [-> Map] -> window, runtime/fusion.py), with ``pre`` the fused
        map's function or None; ``names`` are the assigner's and the map's operator names.
        Returns the batch's timestamps for the watermark generator: ``[max int timestamp,
        *non-int ones]``."""
        cur = self._cursor
        cur.reset()
        self._fused_names = names
        others = self._compiled_batch(values, timestamps, extract, pre)
        self._flush()
        return [cur.max_ts, *others] if values else []

    @property
    def fusable(self) -> bool:
        """True when :meth:`fused_batch` may take this operator's batches (the compiled loop)."""
        return self._use_compiled

    def _late(self, value: Any, ts: int) -> None:
        if ts + self.allowed_lateness <= self.current_watermark:
            if self.late_data_tag is not None:
                self.output.collect_side(self.late_data_tag, [value], [ts])
            else:
                self.num_late_records_dropped += 1


class AlignedWindowOperator(_CompiledWindowOperator):
    """Tumbling and sliding event-time windows with EventTimeTrigger and no evictor.

    The same observable behaviour as :class:`WindowOperator` with those settings (fire at
    ``end - 1``, late firings within allowed lateness, cleanup at ``max_timestamp + lateness``,
    late elements to the side output), but windows are kept as ``panes[start][key] -> value``
    and fired by walking the pending window starts in order when the watermark passes them:
    no per-key timers, no trigger calls, no state-object indirection per record.

    Snapshots put each key's panes into keyed state (``aligned-window-panes``), so they are
    redistributed by key group like any keyed state when restoring at another parallelism.
    """

    def __init__(
        self,
        size: int,
        slide: int,
        offset: int,
        state_spec: WindowStateSpec,
        window_function: InternalWindowFunction,
        window_factory: Callable[[int, int], Any],
        allowed_lateness: int = 0,
        late_data_tag: str | None = None,
        name: str = "Window",
    ) -> None:
        super().__init__(name)
        if size <= 0 or slide <= 0 or abs(offset) >= slide:
            raise ValueError(f"invalid window size/slide/offset: {size}/{slide}/{offset}")
        if allowed_lateness < 0:
            raise ValueError(f"allowed lateness must be >= 0, got {allowed_lateness}")
        self.size = size
        self.slide = slide
        self.offset = offset
        self.state_spec = state_spec
        self.function = window_function
        self.window_factory = window_factory
        self.allowed_lateness = allowed_lateness
        self.late_data_tag = late_data_tag
        self.merging = False
        self.event_time = True
        self.num_late_records_dropped = 0
        self._panes: dict[int, dict] = {}
        self._pending: list[int] = []  # starts of windows not fired yet (heap)
        self._retained: list[tuple[int, int]] = []  # (cleanup time, start) of fired windows (heap)
        self._restored_fired: set[int] = set()

    # -- life cycle ------------------------------------------------------------------------------
    def _open_state(self) -> None:
        spec = self.state_spec
        if spec.kind == "aggregating":
            self._create = spec.aggregate.create_accumulator
            self._add = spec.aggregate.add
            self._result = spec.aggregate.get_result
        else:
            self._result = None
        self._kernel_functions = _kernel_functions(spec)
        self._key_index = key_index_of(self.key_selector)
        self._use_compiled = _compiled is not None and self.slide == self.size
        self._cursor = _compiled.Cursor() if _compiled is not None else None
        # A window's accumulators by key: a dict, or the compiled loops' KeyedPanes (a dict to
        # this class, a C table with int keys to the loops); restored windows are converted.
        self._new_panes = _compiled.KeyedPanes if self._use_compiled else dict
        for start, panes in self._panes.items():
            if type(panes) is not self._new_panes:
                converted = self._panes[start] = self._new_panes()
                converted.update(panes)

    # -- records --------------------------------------------------------------------------------
    def process_batch(self, values: list, timestamps: list | None) -> None:
        if timestamps is None:
            raise ValueError(_NO_TIMESTAMPS)
        if self.slide == self.size:
            self._tumbling(values, timestamps)
        else:
            key_of = self.key_selector
            add = self._add_to_window
            size, slide, offset = self.size, self.slide, self.offset
            for value, ts in zip(values, timestamps, strict=False):
                if ts is None:
                    raise ValueError("Record has no timestamp: assign timestamps before an event-time window")
                key = key_of(value)
                last_start = ts - (ts - offset) % slide
                accepted = False
                for start in range(last_start, ts - size, -slide):
                    accepted = add(value, key, start) or accepted
                if not accepted:
                    self._late(value, ts)
        self._flush()

    def _keys(self, values: list) -> list:
        return _batch_keys(self, values)

    def _open_window(self, start: int) -> dict:
        panes = self._panes.get(start)
        if panes is None:
            panes = self._panes[start] = self._new_panes()
            heapq.heappush(self._pending, start)
        return panes

    def _tumbling(self, values: list, timestamps: list) -> None:
        """The hot loops of tumbling windows: one dict per window start, one lookup per record.

        Records of a batch mostly fall into the current window, so the window is only looked up
        again when a timestamp leaves ``[lo, hi)``; keys are computed for the whole batch first.
        """
        if self._use_compiled:
            self._cursor.reset()
            self._tumbling_compiled(values, timestamps)
            return
        keys = self._keys(values)
        kind = self.state_spec.kind
        size, offset = self.size, self.offset
        # A window whose start is <= fired_until has already fired (max_ts <= watermark).
        fired_until = self.current_watermark - size + 1
        missing = _MISSING
        lo = hi = 0
        panes: dict = {}
        get = panes.get
        value = None
        try:
            if kind == "reducing":
                reduce = self.state_spec.reduce
                for value, key, ts in zip(values, keys, timestamps, strict=False):
                    if not lo <= ts < hi:
                        start = ts - (ts - offset) % size
                        if start <= fired_until:
                            self._late_record(value, key, ts, start)
                            lo = hi = 0
                            continue
                        panes = self._open_window(start)
                        get = panes.get
                        lo, hi = start, start + size
                    acc = get(key, missing)
                    panes[key] = value if acc is missing else reduce(acc, value)
            elif kind == "aggregating":
                create, add = self._create, self._add
                for value, key, ts in zip(values, keys, timestamps, strict=False):
                    if not lo <= ts < hi:
                        start = ts - (ts - offset) % size
                        if start <= fired_until:
                            self._late_record(value, key, ts, start)
                            lo = hi = 0
                            continue
                        panes = self._open_window(start)
                        get = panes.get
                        lo, hi = start, start + size
                    acc = get(key, missing)
                    panes[key] = add(value, create() if acc is missing else acc)
            else:
                for value, key, ts in zip(values, keys, timestamps, strict=False):
                    if not lo <= ts < hi:
                        start = ts - (ts - offset) % size
                        if start <= fired_until:
                            self._late_record(value, key, ts, start)
                            lo = hi = 0
                            continue
                        panes = self._open_window(start)
                        get = panes.get
                        lo, hi = start, start + size
                    acc = get(key, missing)
                    if acc is missing:
                        panes[key] = [value]
                    else:
                        acc.append(value)
        except TypeError as e:
            if any(t is None for t in timestamps):
                raise ValueError(
                    "Record has no timestamp. Did you forget to call "
                    "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
                ) from e
            raise UserCodeError(self.name, value, e) from e
        except UserCodeError:
            raise
        except Exception as e:
            raise UserCodeError(self.name, value, e) from e

    def _tumbling_compiled(
        self, values: list, timestamps: list | None, extract: Any = None, pre: Any = None
    ) -> list:
        """``_tumbling`` as one compiled loop (``flinkcore._core.window_udf``), the user's key
        selector and AggregateFunction.add / reduce called per record as there; a record it
        leaves (late, or a timestamp that is not an int) is handled here and the loop resumes.

        With ``extract`` (a timestamp assigner fused into this loop, see :meth:`fused_batch`)
        timestamps are extracted here. Returns the timestamps that were not ints (for the
        watermark generator; ``self._cursor.max_ts`` is the largest int one).
        """
        if type(values) is not list:
            values = list(values)
        if timestamps is not None and type(timestamps) is not list:
            timestamps = list(timestamps)
        kind, create, fn = self._kernel_functions
        key_of = self.key_selector
        size, offset = self.size, self.offset
        fired_until = max(self.current_watermark - size + 1, MIN_LONG)
        cur = self._cursor
        loop = _compiled.tumbling_batch
        panes, open_window = self._panes, self._open_window
        n = len(values)
        i = 0
        others: list = []
        while True:
            try:
                i = loop(
                    cur,
                    values,
                    timestamps,
                    extract,
                    MIN_LONG,
                    pre,
                    i,
                    key_of,
                    self._key_index,
                    size,
                    offset,
                    fired_until,
                    kind,
                    create,
                    fn,
                    panes,
                    open_window,
                )
            except Exception as e:
                raise self._failure(values, e, pre) from e
            if i >= n:
                return others
            value, ts, key = values[i] if pre is None else cur.value, cur.ts, cur.key
            check_loop_timestamp(ts, extract)
            others.append(ts)
            try:
                self._late_record(value, key, ts, ts - (ts - offset) % size)
            except UserCodeError:
                raise
            except Exception as e:
                raise UserCodeError(self.name, value, e) from e
            i += 1

    _compiled_batch = _tumbling_compiled

    def _late_record(self, value: Any, key: Any, ts: int, start: int) -> None:
        """A record for an already fired window: late firing within lateness, else late."""
        if not self._add_to_window(value, key, start):
            self._late(value, ts)

    def _add_to_window(self, value: Any, key: Any, start: int) -> bool:
        """Add one element to window ``start``; False if the window is late (past lateness)."""
        max_ts = start + self.size - 1
        wm = self.current_watermark
        if max_ts + self.allowed_lateness <= wm:
            return False
        panes = self._panes.get(start)
        if panes is None:
            panes = self._panes[start] = self._new_panes()
            if max_ts <= wm:
                heapq.heappush(self._retained, (max_ts + self.allowed_lateness, start))
            else:
                heapq.heappush(self._pending, start)
        spec = self.state_spec
        current = panes.get(key, _MISSING)
        if spec.kind == "aggregating":
            agg = spec.aggregate
            panes[key] = agg.add(value, agg.create_accumulator() if current is _MISSING else current)
        elif spec.kind == "reducing":
            panes[key] = value if current is _MISSING else spec.reduce(current, value)
        elif current is _MISSING:
            panes[key] = [value]
        else:
            current.append(value)
        if max_ts <= wm:
            # EventTimeTrigger: the watermark is past the window, fire it again at once.
            self._fire_key(self.window_factory(start, start + self.size), key, panes[key])
        return True

    # -- firing ---------------------------------------------------------------------------------
    def _contents(self, stored: Any) -> Any:
        result = self._result
        return stored if result is None else result(stored)

    def _fire_key(self, window: Any, key: Any, stored: Any) -> None:
        contents = self._contents(stored)
        fn = self.function
        ts = window.max_timestamp()
        if fn.passthrough:
            self._out_values.append(contents)
            self._out_ts.append(ts)
            return
        self.state_backend.current_key = key
        self._ctx.cur_window = window
        try:
            results = fn.process(key, window, self._ctx, contents)
        except Exception as e:
            raise UserCodeError(self.name, (key, window), e, where="window") from e
        if results is None:
            return
        for item in results:
            if type(item) is tuple and len(item) == 2 and isinstance(item[0], SideOutputTag):
                self.output.collect_side(item[0].tag_id, [item[1]], [ts])
            else:
                self._out_values.append(item)
                self._out_ts.append(ts)

    def _fire_window(self, start: int, panes: dict) -> None:
        window = self.window_factory(start, start + self.size)
        if self.function.passthrough:
            ts = window.max_timestamp()
            result = self._result
            out = self._out_values
            if result is None:
                out.extend(panes.values())
            elif type(panes) is dict:
                out.extend([result(acc) for acc in panes.values()])
            else:
                out.extend(panes.map_values(result))
            self._out_ts.extend([ts] * len(panes))
            return
        for key, stored in panes.items():
            self._fire_key(window, key, stored)

    def _clear_window(self, start: int) -> None:
        panes = self._panes.pop(start, None)
        clear = self.function.clear
        if panes and clear is not None:
            window = self.window_factory(start, start + self.size)
            ctx = self._ctx
            ctx.cur_window = window
            for key in panes:
                self.state_backend.current_key = key
                clear(window, ctx)

    def process_watermark(self, watermark: int) -> None:
        if watermark <= self.current_watermark:
            return
        self.current_watermark = watermark
        size, lateness = self.size, self.allowed_lateness
        pending, retained = self._pending, self._retained
        fire_until = watermark - size + 1
        while pending and pending[0] <= fire_until:
            start = heapq.heappop(pending)
            panes = self._panes.get(start)
            if panes is None:
                continue
            if start in self._restored_fired:
                self._restored_fired.discard(start)
            else:
                self._fire_window(start, panes)
            cleanup = start + size - 1 + lateness
            if cleanup <= watermark:
                self._clear_window(start)
            else:
                heapq.heappush(retained, (cleanup, start))
        while retained and retained[0][0] <= watermark:
            _, start = heapq.heappop(retained)
            self._clear_window(start)
        self._flush()
        self.output.emit_watermark(watermark)

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot_operator_state(self) -> Any:
        """The panes, serialized now in one C pass (later in-place changes to accumulators cannot
        leak in, and the task pauses for a serialization, not a state write per key)."""
        fired = sorted(start for _, start in self._retained)
        panes = {start: p if type(p) is dict else p.to_dict() for start, p in self._panes.items()}
        return {"fired": fired, "panes": dumps(panes)}

    def restore_operator_state(self, states: list) -> None:
        """Every former instance's panes, keeping the keys of this instance's key groups."""
        keep = _owned_keys_filter(self)
        for s in states:
            if not s:
                continue
            self._restored_fired.update(s.get("fired", ()))
            for start, panes in loads(s["panes"]).items():
                panes = keep(panes)
                if not panes:
                    continue
                target = self._panes.get(start)
                if target is None:
                    target = self._panes[start] = {}  # made a KeyedPanes in open() when compiled
                    heapq.heappush(self._pending, start)
                target.update(panes)
        # Fired windows whose contents moved elsewhere on rescaling need no marker here.
        self._restored_fired &= set(self._panes)


def _owned_keys_filter(op: AbstractStreamOperator) -> Callable[[dict], dict]:
    """``{key: value}`` -> the entries whose keys belong to ``op``'s key-group range."""
    kg_range = op.state_backend.key_group_range if op.state_backend is not None else None
    if kg_range is None:
        return lambda entries: entries
    lo, hi = kg_range
    mp = op.context.max_parallelism
    return lambda entries: {k: v for k, v in entries.items() if lo <= key_group_of(k, mp) <= hi}


# --------------------------------------------------------------------------------------------
# Event-time session windows with the default trigger
# --------------------------------------------------------------------------------------------


class _Session:
    """The Python twin of ``window_udf.Session``: one open session of a key."""

    __slots__ = ("key", "start", "end", "acc")

    def __init__(self, key: Any, start: int, end: int | None, acc: Any) -> None:
        self.key = key
        self.start = start
        self.end = end
        self.acc = acc


#: the compiled loops' session objects (untracked by the cycle collector) when built
Session = _compiled.Session if _compiled is not None else _Session
#: key -> open session(s): a dict whose small non-negative int keys index a C array when built
SessionMap = _compiled.SessionMap if _compiled is not None else dict
_session_start = operator.attrgetter("start")
_session_end = operator.attrgetter("end")


def _append(acc: list, value: Any) -> list:
    acc.append(value)
    return acc


def _concat(a: list, b: list) -> list:
    a.extend(b)
    return a


class SessionWindowOperator(_CompiledWindowOperator):
    """Event-time sessions with a static gap, EventTimeTrigger, no evictor, no allowed lateness.

    The same observable behaviour as :class:`WindowOperator` with ``EventTimeSessionWindows``
    (an element opens ``[ts, ts + gap)``, overlapping or touching sessions merge — contents
    included —, a session fires when the watermark reaches its max timestamp and is then freed),
    with each key's open sessions kept as :class:`Session` objects (key, start, end,
    accumulator) sorted by start and one set of session-end buckets instead of a merging-window
    set, per-key timers and trigger calls. Closed sessions are freed at once, so memory follows
    the number of open sessions.
    """

    def __init__(
        self,
        gap: int,
        state_spec: WindowStateSpec,
        window_function: InternalWindowFunction,
        window_factory: Callable[[int, int], Any],
        late_data_tag: str | None = None,
        name: str = "Window",
    ) -> None:
        super().__init__(name)
        if gap <= 0:
            raise ValueError(f"session gap must be > 0, got {gap}")
        self.gap = gap
        self.state_spec = state_spec
        self.function = window_function
        self.window_factory = window_factory
        self.late_data_tag = late_data_tag
        self.merging = True
        self.event_time = True
        self.allowed_lateness = 0
        self.num_late_records_dropped = 0
        # dict-like (SessionMap: keys 0 <= k < its capacity are slots of an array, found by the
        # compiled loops without hashing or comparing key objects)
        self._single: Any = SessionMap()  # key -> its one open Session
        self._multi: Any = SessionMap()  # key -> [Session, ...] by start (2 or more)
        # Session ends in buckets of one gap: bucket (max_ts // gap) -> [Session, ...].
        # A session has one entry; when the watermark passes its bucket and the session grew
        # meanwhile, the entry moves to the bucket of its current end (a list append, where a
        # heap would pay log(n) tuple comparisons per move).
        self._wheel: dict[int, list] = {}

    def _open_state(self) -> None:
        spec = self.state_spec
        kind = spec.kind
        if kind == "aggregating":
            agg = spec.aggregate
            create, add = agg.create_accumulator, agg.add
            self._first = lambda v: add(v, create())
            self._add = lambda acc, v: add(v, acc)
            self._merge = agg.merge if callable(getattr(agg, "merge", None)) else None
            self._result = agg.get_result
        elif kind == "reducing":
            reduce = spec.reduce
            self._first = lambda v: v
            self._add = reduce
            self._merge = reduce
            self._result = None
        else:
            self._first = lambda v: [v]
            self._add = _append
            self._merge = _concat
            self._result = None
        self._kernel_functions = _kernel_functions(spec)
        self._key_index = key_index_of(self.key_selector)
        self._use_compiled = _compiled is not None
        self._cursor = _compiled.Cursor() if _compiled is not None else None

    def process_batch(self, values: list, timestamps: list | None) -> None:
        if timestamps is None:
            raise ValueError(_NO_TIMESTAMPS)
        if self._use_compiled:
            self._cursor.reset()
            self._sessions_compiled(values, timestamps)
            self._flush()
            return
        keys = _batch_keys(self, values)
        value = None
        try:
            for value, key, ts in zip(values, keys, timestamps, strict=False):
                self._add_one(value, key, ts)
        except Exception as e:
            if any(t is None for t in timestamps):
                raise ValueError(
                    "Record has no timestamp: assign timestamps before an event-time session window"
                ) from e
            raise UserCodeError(self.name, value, e) from e
        self._flush()

    def _add_one(self, value: Any, key: Any, ts: int) -> None:
        """One element into its key's sessions (the Python twin of ``window_udf.session_batch``)."""
        end = ts + self.gap
        s = self._single.get(key)
        if s is not None:
            lo, hi = s.start, s.end
            if lo <= end and hi >= ts:  # overlaps or touches: extend the session
                if ts < lo:
                    s.start = ts
                if end > hi:
                    s.end = end
                s.acc = self._add(s.acc, value)
                return
        elif key not in self._multi:
            if end - 1 <= self.current_watermark:
                self._late(value, ts)
                return
            s = Session(key, ts, end, self._first(value))
            self._single[key] = s
            self._schedule(s)
            return
        self._add_slow(key, value, ts, end)

    def _sessions_compiled(
        self,
        values: list,
        timestamps: list | None,
        extract: Any = None,
        pre: Any = None,
        key_of: Any = None,
        key_index: int = -1,
    ) -> list:
        """The batch through ``window_udf.session_batch`` (the user's key selector and
        AggregateFunction.add / reduce called per record); the records it leaves (merges of
        several sessions, late ones, non-int timestamps) go through :meth:`_add_one`. Returns
        the non-int timestamps, as ``AlignedWindowOperator._tumbling_compiled``. ``key_of``
        (with its ``key_index``) replaces the operator's key selector (two-phase sessions: the
        records the local operator sent alone)."""
        if type(values) is not list:
            values = list(values)
        if timestamps is not None and type(timestamps) is not list:
            timestamps = list(timestamps)
        kind, create, fn = self._kernel_functions
        if key_of is None:
            key_of, key_index = self.key_selector, self._key_index
        cur = self._cursor
        loop = _compiled.session_batch
        gap = self.gap
        single, multi, wheel = self._single, self._multi, self._wheel
        n = len(values)
        i = 0
        others: list = []
        while True:
            try:
                i = loop(
                    cur,
                    values,
                    timestamps,
                    extract,
                    MIN_LONG,
                    pre,
                    i,
                    key_of,
                    key_index,
                    gap,
                    self.current_watermark,
                    kind,
                    create,
                    fn,
                    single,
                    multi,
                    wheel,
                )
            except Exception as e:
                raise self._failure(values, e, pre) from e
            if i >= n:
                return others
            value, ts, key = values[i] if pre is None else cur.value, cur.ts, cur.key
            check_loop_timestamp(ts, extract)
            if type(ts) is not int:
                others.append(ts)
            try:
                self._add_one(value, key, ts)
            except UserCodeError:
                raise
            except Exception as e:
                raise UserCodeError(self.name, value, e) from e
            i += 1

    _compiled_batch = _sessions_compiled

    def _add_slow(self, key: Any, value: Any, ts: int, end: int) -> None:
        """Merge the new window ``[ts, end)`` with every session of ``key`` it overlaps."""
        one = self._single.pop(key, None)
        sessions = [one] if one is not None else self._multi.pop(key)
        lo, hi = ts, end
        group = []
        for s in sessions:  # sorted by start and pairwise apart: overlaps form one run
            if s.start <= hi and s.end >= lo:
                group.append(s)
                lo, hi = min(lo, s.start), max(hi, s.end)
        if not group:
            if end - 1 <= self.current_watermark:
                self._late(value, ts)
            else:
                s = Session(key, ts, end, self._first(value))
                sessions.append(s)
                sessions.sort(key=_session_start)
                self._schedule(s)
        else:
            target = group[0]
            if len(group) > 1:
                merge = self._merge
                if merge is None:
                    raise NotImplementedError("merging session windows needs AggregateFunction.merge()")
                acc = group[1].acc
                for other in group[2:]:
                    acc = merge(acc, other.acc)
                target.acc = merge(target.acc, acc)
                for other in group[1:]:
                    other.end = None  # dead: its bucket entry is skipped
                    sessions.remove(other)
            target.start, target.end = lo, hi
            target.acc = self._add(target.acc, value)
        self._put(key, sessions)

    def _put(self, key: Any, sessions: list) -> None:
        if len(sessions) == 1:
            self._single[key] = sessions[0]
        elif sessions:
            self._multi[key] = sessions

    def _schedule(self, s: Any) -> None:
        bucket = (s.end - 1) // self.gap
        entries = self._wheel.get(bucket)
        if entries is None:
            self._wheel[bucket] = [s]
        else:
            entries.append(s)

    def _due_sessions(self, due_buckets: list, watermark: int) -> list:
        """The Python twin of ``window_udf.due_sessions`` (the multi-session keys handled too)."""
        wheel, gap, single = self._wheel, self.gap, self._single
        get = wheel.get
        fired = []
        for bucket in due_buckets:
            for s in wheel.pop(bucket):
                end = s.end
                if end is None:
                    continue  # merged into another session
                if end > watermark + 1:
                    # The session grew: move the entry to the bucket of its current end.
                    b = (end - 1) // gap
                    entries = get(b)
                    if entries is None:
                        wheel[b] = [s]
                    else:
                        entries.append(s)
                    continue
                key = s.key
                if single.get(key) is s:
                    del single[key]
                else:
                    sessions = self._multi.pop(key)
                    sessions.remove(s)
                    self._put(key, sessions)
                fired.append(s)
        return fired

    def process_watermark(self, watermark: int) -> None:
        if watermark <= self.current_watermark:
            return
        self.current_watermark = watermark
        wheel = self._wheel
        gap = self.gap
        due_buckets = sorted(b for b in wheel if b <= watermark // gap)
        single = self._single
        ordered = False
        if self._use_compiled:
            fired, others, ordered = _compiled.due_sessions(wheel, due_buckets, watermark, gap, single)
            for s in others:
                key = s.key
                if single.get(key) is s:  # its key's other session closed just before it
                    del single[key]
                else:
                    sessions = self._multi.pop(key)
                    sessions.remove(s)
                    self._put(key, sessions)
        else:
            fired = self._due_sessions(due_buckets, watermark)
        if not ordered:
            fired.sort(key=_session_end)  # in timestamp order, as Flink's timers fire
        if self.function.passthrough and self._use_compiled:
            _compiled.emit_sessions(fired, self._result, self._out_values, self._out_ts)
        else:
            fire = self._fire
            for s in fired:
                fire(s.key, s.start, s.end, s.acc)
        self._flush()
        self.output.emit_watermark(watermark)

    def _fire(self, key: Any, start: int, end: int, stored: Any) -> None:
        result = self._result
        contents = stored if result is None else result(stored)
        fn = self.function
        ts = end - 1
        if fn.passthrough:
            self._out_values.append(contents)
            self._out_ts.append(ts)
            return
        window = self.window_factory(start, end)
        self.state_backend.current_key = key
        self._ctx.cur_window = window
        try:
            results = fn.process(key, window, self._ctx, contents)
        except Exception as e:
            raise UserCodeError(self.name, (key, window), e, where="window") from e
        if results is not None:
            for item in results:
                if type(item) is tuple and len(item) == 2 and isinstance(item[0], SideOutputTag):
                    self.output.collect_side(item[0].tag_id, [item[1]], [ts])
                else:
                    self._out_values.append(item)
                    self._out_ts.append(ts)
        if fn.clear is not None:
            fn.clear(window, self._ctx)

    def open_sessions(self) -> int:
        """Number of sessions currently held (for tests and memory checks)."""
        return len(self._single) + sum(len(s) for s in self._multi.values())

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot_operator_state(self) -> Any:
        """Every key's open sessions as ``[start, end, accumulator]`` lists, serialized now in
        one C pass."""
        single = {k: [s.start, s.end, s.acc] for k, s in self._single.items()}
        multi = {k: [[s.start, s.end, s.acc] for s in ss] for k, ss in self._multi.items()}
        return {"sessions": dumps((single, multi))}

    def restore_operator_state(self, states: list) -> None:
        """Every former instance's sessions, keeping the keys of this instance's key groups."""
        keep = _owned_keys_filter(self)
        for s in states:
            if not s:
                continue
            single, multi = loads(s["sessions"])
            per_key = {k: [v] for k, v in keep(single).items()}
            per_key.update(keep(multi))
            for key, sessions in per_key.items():
                sessions = [Session(key, x[0], x[1], x[2]) for x in sessions]
                sessions.sort(key=_session_start)
                self._put(key, sessions)
                for x in sessions:
                    self._schedule(x)
