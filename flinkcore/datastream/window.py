"""Windows, window assigners, triggers and evictors: what a user writes to window a stream.

Everything here is plain logic that can be driven directly in a test, with no job around it:
an assigner maps ``(element, timestamp)`` to windows, a trigger answers :class:`TriggerResult`
for an element or a timer, an evictor removes elements from a list. How they run — state,
timers, lateness, merging — lives in :mod:`flinkcore.runtime.operators.window`.

Names and semantics are Flink's (``org.apache.flink.streaming.api.windowing``) as exposed by
PyFlink's ``pyflink.datastream.window``. Sizes, slides, gaps and offsets may be given as a
``Time``, a ``Duration`` or an ``int`` of milliseconds.

Example::

    >>> TumblingEventTimeWindows.of(Time.seconds(1)).assign_windows(None, 1500, None)
    [TimeWindow(start=1000, end=2000)]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable
from enum import Enum
from typing import Any, Generic, TypeVar

from flinkcore.runtime.operators.window import TimestampedValue
from flinkcore.state.descriptors import ReducingStateDescriptor, ValueStateDescriptor

__all__ = [
    "Window",
    "TimeWindow",
    "CountWindow",
    "GlobalWindow",
    "TimestampedValue",
    "WindowAssigner",
    "MergingWindowAssigner",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "EventTimeSessionWindows",
    "ProcessingTimeSessionWindows",
    "DynamicEventTimeSessionWindows",
    "DynamicProcessingTimeSessionWindows",
    "SessionWindowTimeGapExtractor",
    "GlobalWindows",
    "CountTumblingWindowAssigner",
    "CountSlidingWindowAssigner",
    "TriggerResult",
    "Trigger",
    "EventTimeTrigger",
    "ProcessingTimeTrigger",
    "ContinuousEventTimeTrigger",
    "ContinuousProcessingTimeTrigger",
    "CountTrigger",
    "PurgingTrigger",
    "NeverTrigger",
    "Evictor",
    "CountEvictor",
    "TimeEvictor",
    "DeltaEvictor",
]

#: Java's Long.MAX_VALUE / Long.MIN_VALUE: the end of time, and "no timestamp".
MAX_LONG_VALUE = (1 << 63) - 1
MIN_LONG_VALUE = -(1 << 63)

T = TypeVar("T")
W = TypeVar("W", bound="Window")


def to_millis(value: Any, what: str = "duration") -> int:
    """Milliseconds of a ``Time``, a ``Duration``, a ``datetime.timedelta`` or an ``int``."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a Time, a Duration or an int of milliseconds, not {value!r}")
    if isinstance(value, int):
        return value
    for attr in ("to_milliseconds", "to_millis"):
        fn = getattr(value, attr, None)
        if fn is not None:
            return int(fn())
    total_seconds = getattr(value, "total_seconds", None)
    if total_seconds is not None:
        return round(total_seconds() * 1000)
    try:
        import numpy as np

        if isinstance(value, np.integer):
            return int(value)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    raise TypeError(f"{what} must be a Time, a Duration or an int of milliseconds, not {value!r}")


# --------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------


class Window(ABC):
    """A finite bucket of elements. Its max timestamp is the last instant that belongs to it."""

    __slots__ = ()

    @abstractmethod
    def max_timestamp(self) -> int:
        """The largest timestamp that still belongs to this window."""


class TimeWindow(Window):
    """The time interval ``[start, end)`` in milliseconds.

    Example::

        >>> w = TimeWindow(0, 5)
        >>> w.max_timestamp(), w.intersects(TimeWindow(5, 8)), w.cover(TimeWindow(3, 9))
        (4, True, TimeWindow(start=0, end=9))
    """

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int):
        self.start = start
        self.end = end

    def max_timestamp(self) -> int:
        return self.end - 1

    def intersects(self, other: TimeWindow) -> bool:
        """True if the windows overlap or touch (Flink merges touching session windows)."""
        return self.start <= other.end and self.end >= other.start

    def cover(self, other: TimeWindow) -> TimeWindow:
        """The smallest window that contains both."""
        return TimeWindow(min(self.start, other.start), max(self.end, other.end))

    @staticmethod
    def get_window_start_with_offset(timestamp: int, offset: int, window_size: int) -> int:
        """Start of the window of ``window_size`` (shifted by ``offset``) that holds ``timestamp``.

        The start is the largest ``offset + k * window_size`` that is <= ``timestamp`` (floor
        division, so a slightly negative timestamp falls in window ``[-size, 0)`` as in Flink).
        """
        remainder = (timestamp - offset) % window_size
        return timestamp - remainder

    @staticmethod
    def merge_windows(windows: Iterable[TimeWindow], callback: MergingWindowAssigner.MergeCallback) -> None:
        """Merge overlapping windows: calls ``callback.merge(to_be_merged, result)`` for each group
        of two or more windows that intersect (transitively, in start order)."""
        ordered = sorted(windows, key=lambda w: (w.start, w.end))
        groups: list[tuple[TimeWindow, list[TimeWindow]]] = []
        current: TimeWindow | None = None
        members: list[TimeWindow] = []
        for candidate in ordered:
            if current is None:
                current, members = candidate, [candidate]
            elif current.intersects(candidate):
                current = current.cover(candidate)
                members.append(candidate)
            else:
                groups.append((current, members))
                current, members = candidate, [candidate]
        if current is not None:
            groups.append((current, members))
        for result, group in groups:
            if len(group) > 1:
                callback.merge(group, result)

    def __eq__(self, other: object) -> bool:
        return (
            other.__class__ is TimeWindow and self.start == other.start and self.end == other.end  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((self.start, self.end))

    def __lt__(self, other: TimeWindow) -> bool:
        if not isinstance(other, TimeWindow):
            return NotImplemented
        return (self.start, self.end) < (other.start, other.end)

    def __le__(self, other: TimeWindow) -> bool:
        if not isinstance(other, TimeWindow):
            return NotImplemented
        return (self.start, self.end) <= (other.start, other.end)

    def __repr__(self) -> str:
        return f"TimeWindow(start={self.start}, end={self.end})"

    def __reduce__(self):
        return (TimeWindow, (self.start, self.end))


class CountWindow(Window):
    """A window identified by a number, used by the count window assigners."""

    __slots__ = ("id",)

    def __init__(self, id: int):  # noqa: A002 - PyFlink's name
        self.id = id

    def max_timestamp(self) -> int:
        return MAX_LONG_VALUE

    def __eq__(self, other: object) -> bool:
        return other.__class__ is CountWindow and self.id == other.id  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(("count", self.id))

    def __lt__(self, other: CountWindow) -> bool:
        return self.id < other.id

    def __repr__(self) -> str:
        return f"CountWindow(id={self.id})"

    def __reduce__(self):
        return (CountWindow, (self.id,))


class GlobalWindow(Window):
    """The single window that holds every element (the window of :class:`GlobalWindows`)."""

    __slots__ = ()
    _instance: GlobalWindow | None = None

    def __new__(cls) -> GlobalWindow:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    @staticmethod
    def get() -> GlobalWindow:
        return GlobalWindow()

    def max_timestamp(self) -> int:
        return MAX_LONG_VALUE

    def __eq__(self, other: object) -> bool:
        return other.__class__ is GlobalWindow

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "GlobalWindow"

    def __reduce__(self):
        return (GlobalWindow, ())


# --------------------------------------------------------------------------------------------
# Triggers
# --------------------------------------------------------------------------------------------


class TriggerResult(Enum):
    """What to do with a window after a trigger method: evaluate it (fire), clear it (purge)."""

    CONTINUE = (False, False)
    FIRE_AND_PURGE = (True, True)
    FIRE = (True, False)
    PURGE = (False, True)

    def is_fire(self) -> bool:
        return self.value[0]

    def is_purge(self) -> bool:
        return self.value[1]


class Trigger(ABC, Generic[T, W]):
    """Decides when a window (one key's pane) is evaluated.

    A trigger keeps no state in its own attributes: it is shared by every key and window. State
    lives in ``ctx.get_partitioned_state(descriptor)`` (scoped to key and window), timers are
    registered on ``ctx``. A trigger used with merging windows (sessions) must return True from
    :meth:`can_merge` and implement :meth:`on_merge`.
    """

    class TriggerContext(ABC):
        """Timers and window-scoped state for a trigger call."""

        @abstractmethod
        def get_current_processing_time(self) -> int: ...

        def get_metric_group(self) -> Any:
            raise NotImplementedError("metrics are not available to triggers yet")

        @abstractmethod
        def get_current_watermark(self) -> int: ...

        @abstractmethod
        def register_processing_time_timer(self, time: int) -> None: ...

        @abstractmethod
        def register_event_time_timer(self, time: int) -> None: ...

        @abstractmethod
        def delete_processing_time_timer(self, time: int) -> None: ...

        @abstractmethod
        def delete_event_time_timer(self, time: int) -> None: ...

        @abstractmethod
        def get_partitioned_state(self, state_descriptor: Any) -> Any: ...

    class OnMergeContext(TriggerContext):
        """The context of :meth:`Trigger.on_merge`: it can also merge the merged windows' state."""

        @abstractmethod
        def merge_partitioned_state(self, state_descriptor: Any) -> None: ...

    @abstractmethod
    def on_element(self, element: T, timestamp: int, window: W, ctx: Trigger.TriggerContext) -> TriggerResult:
        """Called for every element added to a window."""

    @abstractmethod
    def on_processing_time(self, time: int, window: W, ctx: Trigger.TriggerContext) -> TriggerResult:
        """Called when a processing-time timer registered through ``ctx`` fires."""

    @abstractmethod
    def on_event_time(self, time: int, window: W, ctx: Trigger.TriggerContext) -> TriggerResult:
        """Called when an event-time timer registered through ``ctx`` fires."""

    def can_merge(self) -> bool:
        """True if this trigger can be used with merging (session) windows."""
        return False

    def on_merge(self, window: W, ctx: Trigger.OnMergeContext) -> None:
        """Called when windows were merged into ``window``: re-register timers, merge state."""
        raise NotImplementedError(f"{type(self).__name__} does not support merging windows")

    @abstractmethod
    def clear(self, window: W, ctx: Trigger.TriggerContext) -> None:
        """Delete this trigger's timers and state for ``window`` (the window is being purged)."""


class EventTimeTrigger(Trigger[Any, TimeWindow]):
    """Fires once the watermark passes the window's max timestamp (the default for event time)."""

    def on_element(self, element, timestamp, window, ctx) -> TriggerResult:
        if window.max_timestamp() <= ctx.get_current_watermark():
            # A late element within allowed lateness: fire again right away.
            return TriggerResult.FIRE
        ctx.register_event_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx) -> TriggerResult:
        return TriggerResult.FIRE if time == window.max_timestamp() else TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window, ctx) -> None:
        # Only register if the watermark has not passed the merged window yet; otherwise the
        # cleanup timer or a later element takes care of it.
        if window.max_timestamp() > ctx.get_current_watermark():
            ctx.register_event_time_timer(window.max_timestamp())

    def clear(self, window, ctx) -> None:
        ctx.delete_event_time_timer(window.max_timestamp())

    @staticmethod
    def create() -> EventTimeTrigger:
        return EventTimeTrigger()

    def __repr__(self) -> str:
        return "EventTimeTrigger()"


class ProcessingTimeTrigger(Trigger[Any, TimeWindow]):
    """Fires once processing time passes the window's max timestamp."""

    def on_element(self, element, timestamp, window, ctx) -> TriggerResult:
        ctx.register_processing_time_timer(window.max_timestamp())
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx) -> TriggerResult:
        return TriggerResult.FIRE

    def on_event_time(self, time, window, ctx) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window, ctx) -> None:
        if window.max_timestamp() > ctx.get_current_processing_time():
            ctx.register_processing_time_timer(window.max_timestamp())

    def clear(self, window, ctx) -> None:
        ctx.delete_processing_time_timer(window.max_timestamp())

    @staticmethod
    def create() -> ProcessingTimeTrigger:
        return ProcessingTimeTrigger()

    def __repr__(self) -> str:
        return "ProcessingTimeTrigger()"


def _min(a: int, b: int) -> int:
    return a if a <= b else b


def _sum(a: int, b: int) -> int:
    return a + b


def _reducing_descriptor(name: str, fn: Callable[[Any, Any], Any]) -> ReducingStateDescriptor:
    return ReducingStateDescriptor(name, fn)


_Continuous = TypeVar("_Continuous", bound="_ContinuousTrigger")


class _ContinuousTrigger(Trigger[Any, TimeWindow]):
    """Fires every ``interval`` of its time domain: the shared state and timer bookkeeping of
    Flink's two continuous triggers (they differ in which timers they use and when they fire)."""

    def __init__(self, interval: int):
        if interval <= 0:
            raise ValueError(f"{type(self).__name__} interval must be > 0, got {interval}")
        self.interval = interval
        self.state_desc = _reducing_descriptor("fire-time", _min)

    @classmethod
    def of(cls: type[_Continuous], interval: Any) -> _Continuous:
        return cls(to_millis(interval, "interval"))

    def _register_timer(self, ctx, time: int) -> None:
        raise NotImplementedError

    def _delete_timer(self, ctx, time: int) -> None:
        raise NotImplementedError

    def _fire_if_due(self, time: int, window: TimeWindow, ctx) -> TriggerResult:
        fire_time = ctx.get_partitioned_state(self.state_desc)
        if fire_time.get() == time:
            fire_time.clear()
            self._register_next(time, window, ctx, fire_time)
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window, ctx) -> None:
        ctx.merge_partitioned_state(self.state_desc)
        next_fire = ctx.get_partitioned_state(self.state_desc).get()
        if next_fire is not None:
            self._register_timer(ctx, next_fire)

    def clear(self, window, ctx) -> None:
        fire_time = ctx.get_partitioned_state(self.state_desc)
        current = fire_time.get()
        if current is not None:
            self._delete_timer(ctx, current)
            fire_time.clear()

    def _register_next(self, time: int, window: TimeWindow, ctx, fire_time) -> None:
        next_fire = min(time + self.interval, window.max_timestamp())
        fire_time.add(next_fire)
        self._register_timer(ctx, next_fire)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.interval})"


class ContinuousEventTimeTrigger(_ContinuousTrigger):
    """Fires repeatedly every ``interval`` of event time, and at the end of the window."""

    def _register_timer(self, ctx, time: int) -> None:
        ctx.register_event_time_timer(time)

    def _delete_timer(self, ctx, time: int) -> None:
        ctx.delete_event_time_timer(time)

    def on_element(self, element, timestamp, window, ctx) -> TriggerResult:
        if window.max_timestamp() <= ctx.get_current_watermark():
            return TriggerResult.FIRE
        ctx.register_event_time_timer(window.max_timestamp())
        fire_time = ctx.get_partitioned_state(self.state_desc)
        if fire_time.get() is None:
            self._register_next(timestamp - (timestamp % self.interval), window, ctx, fire_time)
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx) -> TriggerResult:
        if time == window.max_timestamp():
            return TriggerResult.FIRE
        return self._fire_if_due(time, window, ctx)


class ContinuousProcessingTimeTrigger(_ContinuousTrigger):
    """Fires repeatedly every ``interval`` of processing time."""

    def _register_timer(self, ctx, time: int) -> None:
        ctx.register_processing_time_timer(time)

    def _delete_timer(self, ctx, time: int) -> None:
        ctx.delete_processing_time_timer(time)

    def on_element(self, element, timestamp, window, ctx) -> TriggerResult:
        fire_time = ctx.get_partitioned_state(self.state_desc)
        if fire_time.get() is None:
            now = ctx.get_current_processing_time()
            self._register_next(now - (now % self.interval), window, ctx, fire_time)
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx) -> TriggerResult:
        return self._fire_if_due(time, window, ctx)

    def on_event_time(self, time, window, ctx) -> TriggerResult:
        return TriggerResult.CONTINUE


class CountTrigger(Trigger[Any, Window]):
    """Fires each time the window has received ``count`` more elements."""

    def __init__(self, count: int):
        if count <= 0:
            raise ValueError(f"CountTrigger count must be > 0, got {count}")
        self.count = count
        self.state_desc = _reducing_descriptor("count", _sum)

    @staticmethod
    def of(count: int) -> CountTrigger:
        return CountTrigger(count)

    def on_element(self, element, timestamp, window, ctx) -> TriggerResult:
        count = ctx.get_partitioned_state(self.state_desc)
        count.add(1)
        if count.get() >= self.count:
            count.clear()
            return TriggerResult.FIRE
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window, ctx) -> None:
        ctx.merge_partitioned_state(self.state_desc)

    def clear(self, window, ctx) -> None:
        ctx.get_partitioned_state(self.state_desc).clear()

    def __repr__(self) -> str:
        return f"CountTrigger({self.count})"


class PurgingTrigger(Trigger[Any, Window]):
    """Turns a trigger's FIRE into FIRE_AND_PURGE: the window is emptied each time it fires."""

    def __init__(self, nested_trigger: Trigger):
        self.nested_trigger = nested_trigger

    @staticmethod
    def of(nested_trigger: Trigger) -> PurgingTrigger:
        return PurgingTrigger(nested_trigger)

    @staticmethod
    def _purging(result: TriggerResult) -> TriggerResult:
        return TriggerResult.FIRE_AND_PURGE if result.is_fire() else result

    def on_element(self, element, timestamp, window, ctx) -> TriggerResult:
        return self._purging(self.nested_trigger.on_element(element, timestamp, window, ctx))

    def on_event_time(self, time, window, ctx) -> TriggerResult:
        return self._purging(self.nested_trigger.on_event_time(time, window, ctx))

    def on_processing_time(self, time, window, ctx) -> TriggerResult:
        return self._purging(self.nested_trigger.on_processing_time(time, window, ctx))

    def can_merge(self) -> bool:
        return self.nested_trigger.can_merge()

    def on_merge(self, window, ctx) -> None:
        self.nested_trigger.on_merge(window, ctx)

    def clear(self, window, ctx) -> None:
        self.nested_trigger.clear(window, ctx)

    def __repr__(self) -> str:
        return f"PurgingTrigger({self.nested_trigger!r})"


class NeverTrigger(Trigger[Any, GlobalWindow]):
    """Never fires: the default trigger of :class:`GlobalWindows` (set your own with ``.trigger``)."""

    def on_element(self, element, timestamp, window, ctx) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_processing_time(self, time, window, ctx) -> TriggerResult:
        return TriggerResult.CONTINUE

    def on_event_time(self, time, window, ctx) -> TriggerResult:
        return TriggerResult.CONTINUE

    def can_merge(self) -> bool:
        return True

    def on_merge(self, window, ctx) -> None:
        pass

    def clear(self, window, ctx) -> None:
        pass

    def __repr__(self) -> str:
        return "NeverTrigger()"


# --------------------------------------------------------------------------------------------
# Assigners
# --------------------------------------------------------------------------------------------


class WindowAssigner(ABC, Generic[T, W]):
    """Assigns zero or more windows to each element. Subclass it for a custom windowing."""

    class WindowAssignerContext(ABC):
        """What an assigner may ask the operator: processing time and the runtime context."""

        @abstractmethod
        def get_current_processing_time(self) -> int: ...

        @abstractmethod
        def get_runtime_context(self) -> Any: ...

    @abstractmethod
    def assign_windows(
        self, element: T, timestamp: int, context: WindowAssigner.WindowAssignerContext
    ) -> Collection[W]:
        """The windows ``element`` (with ``timestamp``) belongs to."""

    @abstractmethod
    def get_default_trigger(self, env: Any = None) -> Trigger[T, W]:
        """The trigger used when the user sets none."""

    def get_window_serializer(self) -> Any:
        """Windows are serialized by flinkcore's own serializer; kept for PyFlink compatibility."""
        return None

    @abstractmethod
    def is_event_time(self) -> bool:
        """True if windows are based on event time (this enables lateness handling)."""


class MergingWindowAssigner(WindowAssigner[T, W]):
    """An assigner whose windows can merge (sessions). The operator merges state and triggers."""

    class MergeCallback(ABC, Generic[W]):
        @abstractmethod
        def merge(self, to_be_merged: Iterable[W], merge_result: W) -> None:
            """Merge ``to_be_merged`` into ``merge_result``."""

    @abstractmethod
    def merge_windows(self, windows: Iterable[W], callback: MergingWindowAssigner.MergeCallback) -> None:
        """Call ``callback.merge`` for each group of ``windows`` that should become one."""


_NO_TIMESTAMP_MESSAGE = (
    "Record has no timestamp (Long.MIN_VALUE). Did you forget to call "
    "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
)


def _check_timestamp(timestamp: int | None) -> int:
    if timestamp is None or timestamp <= MIN_LONG_VALUE:
        raise ValueError(_NO_TIMESTAMP_MESSAGE)
    return timestamp


class _EventTime:
    """Time domain of an assigner: the element's timestamp, fired by the watermark."""

    @staticmethod
    def _time(timestamp: int | None, context: Any) -> int:
        return _check_timestamp(timestamp)

    def get_default_trigger(self, env=None) -> Trigger:
        return EventTimeTrigger()

    def is_event_time(self) -> bool:
        return True


class _ProcessingTime:
    """Time domain of an assigner: the machine's clock when the element arrives."""

    @staticmethod
    def _time(timestamp: int | None, context: Any) -> int:
        return context.get_current_processing_time()

    def get_default_trigger(self, env=None) -> Trigger:
        return ProcessingTimeTrigger()

    def is_event_time(self) -> bool:
        return False


_Tumbling = TypeVar("_Tumbling", bound="_TumblingWindows")
_Sliding = TypeVar("_Sliding", bound="_SlidingWindows")
_Sessions = TypeVar("_Sessions", bound="_StaticGapSessions")
_DynamicSessions = TypeVar("_DynamicSessions", bound="_DynamicGapSessions")


class _TumblingWindows(WindowAssigner[Any, TimeWindow]):
    def __init__(self, size: int, offset: int = 0):
        if size <= 0 or abs(offset) >= size:
            raise ValueError(
                f"{type(self).__name__} parameters must satisfy abs(offset) < size and size > 0 "
                f"(size={size}, offset={offset})"
            )
        self.size = size
        self.offset = offset

    @classmethod
    def of(cls: type[_Tumbling], size: Any, offset: Any = None) -> _Tumbling:
        return cls(to_millis(size, "size"), 0 if offset is None else to_millis(offset, "offset"))

    def assign_windows(self, element, timestamp, context) -> list[TimeWindow]:
        time = self._time(timestamp, context)
        start = time - (time - self.offset) % self.size
        return [TimeWindow(start, start + self.size)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size}, {self.offset})"


class TumblingEventTimeWindows(_EventTime, _TumblingWindows):
    """Non-overlapping windows of ``size``, aligned to the epoch plus ``offset``, by event time."""


class TumblingProcessingTimeWindows(_ProcessingTime, _TumblingWindows):
    """Non-overlapping windows of ``size`` by the machine's clock at the time an element arrives."""


class _SlidingWindows(WindowAssigner[Any, TimeWindow]):
    def __init__(self, size: int, slide: int, offset: int = 0):
        if size <= 0 or slide <= 0 or abs(offset) >= slide:
            raise ValueError(
                f"{type(self).__name__} parameters must satisfy abs(offset) < slide, slide > 0 and "
                f"size > 0 (size={size}, slide={slide}, offset={offset})"
            )
        self.size = size
        self.slide = slide
        self.offset = offset

    @classmethod
    def of(cls: type[_Sliding], size: Any, slide: Any, offset: Any = None) -> _Sliding:
        return cls(
            to_millis(size, "size"),
            to_millis(slide, "slide"),
            0 if offset is None else to_millis(offset, "offset"),
        )

    def assign_windows(self, element, timestamp, context) -> list[TimeWindow]:
        time = self._time(timestamp, context)
        size, slide = self.size, self.slide
        last_start = time - (time - self.offset) % slide
        return [TimeWindow(start, start + size) for start in range(last_start, time - size, -slide)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.size}, {self.slide}, {self.offset})"


class SlidingEventTimeWindows(_EventTime, _SlidingWindows):
    """Windows of ``size`` every ``slide`` (they overlap when slide < size), by event time."""


class SlidingProcessingTimeWindows(_ProcessingTime, _SlidingWindows):
    """Windows of ``size`` every ``slide`` by the machine's clock."""


class SessionWindowTimeGapExtractor(ABC):
    """Extracts the session gap (milliseconds) from an element, for dynamic-gap sessions."""

    @abstractmethod
    def extract(self, element: Any) -> int:
        """The session gap for ``element``, in milliseconds (> 0)."""


def _gap_function(extractor: SessionWindowTimeGapExtractor | Callable[[Any], Any]) -> Callable[[Any], Any]:
    if isinstance(extractor, SessionWindowTimeGapExtractor):
        return extractor.extract
    if callable(extractor):
        return extractor
    raise TypeError(f"a SessionWindowTimeGapExtractor or a callable is required, not {extractor!r}")


def _checked_gap(gap: Any) -> int:
    gap = to_millis(gap, "dynamic session gap")
    if gap <= 0:
        raise ValueError(f"Dynamic session time gap must satisfy 0 < gap, got {gap}")
    return gap


class _SessionWindows(MergingWindowAssigner[Any, TimeWindow]):
    """Sessions: an element opens ``[time, time + gap)``; windows that overlap merge."""

    def merge_windows(self, windows, callback) -> None:
        TimeWindow.merge_windows(windows, callback)


class _StaticGapSessions(_SessionWindows):
    def __init__(self, session_gap: int):
        if session_gap <= 0:
            raise ValueError(f"{type(self).__name__} gap must be > 0, got {session_gap}")
        self.session_gap = session_gap

    @classmethod
    def with_gap(cls: type[_Sessions], size: Any) -> _Sessions:
        return cls(to_millis(size, "gap"))

    def assign_windows(self, element, timestamp, context) -> list[TimeWindow]:
        time = self._time(timestamp, context)
        return [TimeWindow(time, time + self.session_gap)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.session_gap})"


class _DynamicGapSessions(_SessionWindows):
    def __init__(self, extractor: SessionWindowTimeGapExtractor | Callable[[Any], int]):
        self.extractor = extractor
        self._gap = _gap_function(extractor)

    @classmethod
    def with_dynamic_gap(
        cls: type[_DynamicSessions], extractor: SessionWindowTimeGapExtractor | Callable[[Any], int]
    ) -> _DynamicSessions:
        return cls(extractor)

    def assign_windows(self, element, timestamp, context) -> list[TimeWindow]:
        time = self._time(timestamp, context)
        return [TimeWindow(time, time + _checked_gap(self._gap(element)))]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extractor!r})"


class DynamicEventTimeSessionWindows(_EventTime, _DynamicGapSessions):
    """Event-time sessions whose gap comes from each element."""


class DynamicProcessingTimeSessionWindows(_ProcessingTime, _DynamicGapSessions):
    """Processing-time sessions whose gap comes from each element."""


class EventTimeSessionWindows(_EventTime, _StaticGapSessions):
    """Sessions by event time: an element opens ``[ts, ts + gap)``; overlapping windows merge."""

    @staticmethod
    def with_dynamic_gap(
        extractor: SessionWindowTimeGapExtractor | Callable[[Any], int],
    ) -> DynamicEventTimeSessionWindows:
        return DynamicEventTimeSessionWindows(extractor)


class ProcessingTimeSessionWindows(_ProcessingTime, _StaticGapSessions):
    """Sessions by the machine's clock."""

    @staticmethod
    def with_dynamic_gap(
        extractor: SessionWindowTimeGapExtractor | Callable[[Any], int],
    ) -> DynamicProcessingTimeSessionWindows:
        return DynamicProcessingTimeSessionWindows(extractor)


class GlobalWindows(WindowAssigner[Any, GlobalWindow]):
    """Every element in one window per key. Its default trigger never fires: set one."""

    @staticmethod
    def create() -> GlobalWindows:
        return GlobalWindows()

    def assign_windows(self, element, timestamp, context) -> list[GlobalWindow]:
        return [GlobalWindow()]

    def get_default_trigger(self, env=None) -> Trigger:
        return NeverTrigger()

    def is_event_time(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "GlobalWindows()"


def _next_count(context: WindowAssigner.WindowAssignerContext, descriptor: Any) -> int:
    """The per-key element number (0, 1, 2 ...) kept in keyed state, and advance it."""
    state = context.get_runtime_context().get_state(descriptor)
    current = state.value()
    current = 0 if current is None else current
    state.update(current + 1)
    return current


def _value_descriptor(name: str) -> ValueStateDescriptor:
    return ValueStateDescriptor(name)


class CountTumblingWindowAssigner(WindowAssigner[Any, CountWindow]):
    """Windows of ``window_size`` consecutive elements per key: element n goes to window n // size.

    The default trigger fires each window when it is full and then purges it (a full tumbling count
    window never receives another element, so its state is freed rather than kept forever).
    """

    def __init__(self, window_size: int):
        if window_size <= 0:
            raise ValueError(f"count window size must be > 0, got {window_size}")
        self.window_size = window_size
        self._count_descriptor = _value_descriptor("tumble-count-assigner")

    @staticmethod
    def of(window_size: int) -> CountTumblingWindowAssigner:
        return CountTumblingWindowAssigner(window_size)

    def assign_windows(self, element, timestamp, context) -> list[CountWindow]:
        return [CountWindow(_next_count(context, self._count_descriptor) // self.window_size)]

    def get_default_trigger(self, env=None) -> Trigger:
        return PurgingTrigger(CountTrigger(self.window_size))

    def is_event_time(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"CountTumblingWindowAssigner({self.window_size})"


class CountSlidingWindowAssigner(WindowAssigner[Any, CountWindow]):
    """Windows of ``window_size`` elements starting every ``window_slide`` elements, per key.

    Window ``i`` holds elements ``i * slide .. i * slide + size - 1``; it fires when full and is
    then purged (nothing else can arrive in it).
    """

    def __init__(self, window_size: int, window_slide: int):
        if window_size <= 0 or window_slide <= 0:
            raise ValueError(f"count window size and slide must be > 0, got {window_size}, {window_slide}")
        self.window_size = window_size
        self.window_slide = window_slide
        self._count_descriptor = _value_descriptor("slide-count-assigner")

    @staticmethod
    def of(window_size: int, window_slide: int) -> CountSlidingWindowAssigner:
        return CountSlidingWindowAssigner(window_size, window_slide)

    def assign_windows(self, element, timestamp, context) -> list[CountWindow]:
        n = _next_count(context, self._count_descriptor)
        size, slide = self.window_size, self.window_slide
        windows = []
        window_id = n // slide
        while window_id >= 0 and window_id * slide + size - 1 >= n:
            windows.append(CountWindow(window_id))
            window_id -= 1
        return windows

    def get_default_trigger(self, env=None) -> Trigger:
        return PurgingTrigger(CountTrigger(self.window_size))

    def is_event_time(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"CountSlidingWindowAssigner({self.window_size}, {self.window_slide})"


# --------------------------------------------------------------------------------------------
# Evictors
# --------------------------------------------------------------------------------------------


class Evictor(ABC, Generic[T, W]):
    """Removes elements from a window before and/or after the window function sees it.

    ``elements`` is a ``list`` of :class:`TimestampedValue`; remove from it in place (``del``,
    ``remove``, slice assignment). What is left is what stays in the window.
    """

    class EvictorContext(ABC):
        @abstractmethod
        def get_current_processing_time(self) -> int: ...

        @abstractmethod
        def get_current_watermark(self) -> int: ...

        def get_metric_group(self) -> Any:
            raise NotImplementedError("metrics are not available to evictors yet")

    @abstractmethod
    def evict_before(
        self, elements: list[TimestampedValue], size: int, window: W, evictor_context: Any
    ) -> None:
        """Evict before the window function is called."""

    @abstractmethod
    def evict_after(
        self, elements: list[TimestampedValue], size: int, window: W, evictor_context: Any
    ) -> None:
        """Evict after the window function was called."""


class CountEvictor(Evictor[Any, Window]):
    """Keeps at most ``max_count`` elements: the oldest (first added) are evicted."""

    def __init__(self, max_count: int, do_evict_after: bool = False):
        if max_count < 0:
            raise ValueError(f"CountEvictor max_count must be >= 0, got {max_count}")
        self.max_count = max_count
        self.do_evict_after = do_evict_after

    @staticmethod
    def of(max_count: int, do_evict_after: bool = False) -> CountEvictor:
        return CountEvictor(max_count, do_evict_after)

    def evict_before(self, elements, size, window, evictor_context) -> None:
        if not self.do_evict_after:
            self._evict(elements, size)

    def evict_after(self, elements, size, window, evictor_context) -> None:
        if self.do_evict_after:
            self._evict(elements, size)

    def _evict(self, elements: list, size: int) -> None:
        if size > self.max_count:
            del elements[: size - self.max_count]

    def __repr__(self) -> str:
        return f"CountEvictor({self.max_count}, do_evict_after={self.do_evict_after})"


class TimeEvictor(Evictor[Any, Window]):
    """Keeps the elements within ``window_size`` of the newest element's timestamp."""

    def __init__(self, window_size: int, do_evict_after: bool = False):
        self.window_size = window_size
        self.do_evict_after = do_evict_after

    @staticmethod
    def of(window_size: Any, do_evict_after: bool = False) -> TimeEvictor:
        return TimeEvictor(to_millis(window_size, "window_size"), do_evict_after)

    def evict_before(self, elements, size, window, evictor_context) -> None:
        if not self.do_evict_after:
            self._evict(elements)

    def evict_after(self, elements, size, window, evictor_context) -> None:
        if self.do_evict_after:
            self._evict(elements)

    def _evict(self, elements: list) -> None:
        stamped = [e.timestamp for e in elements if e.timestamp is not None]
        if not stamped:
            return
        cutoff = max(stamped) - self.window_size
        elements[:] = [e for e in elements if e.timestamp is None or e.timestamp > cutoff]

    def __repr__(self) -> str:
        return f"TimeEvictor({self.window_size}, do_evict_after={self.do_evict_after})"


class DeltaEvictor(Evictor[Any, Window]):
    """Evicts elements whose ``delta_function(element, last_element)`` is >= ``threshold``."""

    def __init__(
        self, threshold: float, delta_function: Callable[[Any, Any], float], do_evict_after: bool = False
    ):
        self.threshold = threshold
        self.delta_function = delta_function
        self.do_evict_after = do_evict_after

    @staticmethod
    def of(
        threshold: float, delta_function: Callable[[Any, Any], float], do_evict_after: bool = False
    ) -> DeltaEvictor:
        return DeltaEvictor(threshold, delta_function, do_evict_after)

    def evict_before(self, elements, size, window, evictor_context) -> None:
        if not self.do_evict_after:
            self._evict(elements)

    def evict_after(self, elements, size, window, evictor_context) -> None:
        if self.do_evict_after:
            self._evict(elements)

    def _evict(self, elements: list) -> None:
        if not elements:
            return
        last = elements[-1].value
        elements[:] = [e for e in elements if self.delta_function(last, e.value) < self.threshold]
