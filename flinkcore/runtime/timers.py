"""The timer service of keyed operators (Flink's InternalTimerService).

Timers are ``(timestamp, key, namespace)``, per time domain, de-duplicated (registering the
same timer twice keeps one), deletable, and fired in timestamp order (ties in registration
order). Event-time timers fire when a watermark ``>= timestamp`` arrives
(:meth:`InternalTimerService.advance_watermark`); processing-time timers fire when the task's
:class:`~flinkcore.runtime.processing_time.ProcessingTimeService` reaches them. Before calling
the ``triggerable`` (``on_event_time(timer)`` / ``on_processing_time(timer)``) the service sets
the timer's key as the backend's current key. KeyedProcessFunction and the window operator
both build on this.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

from flinkcore.common.watermark import MAX_WATERMARK, MIN_WATERMARK

__all__ = ["InternalTimer", "InternalTimerService", "TimerHeap", "new_timer_queue"]


class InternalTimer:
    """A fired timer as the triggerable sees it."""

    __slots__ = ("timestamp", "key", "namespace")

    def __init__(self, timestamp: int, key: Any, namespace: Any) -> None:
        self.timestamp = timestamp
        self.key = key
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"InternalTimer({self.timestamp}, {self.key!r}, {self.namespace!r})"


class TimerHeap:
    """De-duplicated timers in timestamp order, with lazy deletion."""

    def __init__(self) -> None:
        self._heap: list = []
        self._live: set = set()
        self._seq = itertools.count()

    def add(self, timestamp: int, key: Any, namespace: Any) -> bool:
        t = (timestamp, key, namespace)
        if t in self._live:
            return False
        self._live.add(t)
        heapq.heappush(self._heap, (timestamp, next(self._seq), key, namespace))
        return True

    def remove(self, timestamp: int, key: Any, namespace: Any) -> None:
        self._live.discard((timestamp, key, namespace))

    def peek_timestamp(self) -> int | None:
        heap = self._heap
        while heap:
            ts, _, key, ns = heap[0]
            if (ts, key, ns) in self._live:
                return ts
            heapq.heappop(heap)
        return None

    def pop_due(self, time: int) -> tuple | None:
        """Remove and return the earliest live timer with timestamp <= ``time``."""
        heap = self._heap
        live = self._live
        while heap and heap[0][0] <= time:
            ts, _, key, ns = heapq.heappop(heap)
            t = (ts, key, ns)
            if t in live:
                live.discard(t)
                return t
        return None

    def __len__(self) -> int:
        return len(self._live)

    def entries(self) -> list[tuple]:
        """Live timers in firing order (for snapshots and tests)."""
        out, seen = [], set()
        for ts, _, key, ns in sorted(self._heap, key=lambda e: (e[0], e[1])):
            t = (ts, key, ns)
            if t in self._live and t not in seen:
                seen.add(t)
                out.append(t)
        return out


class _NativeTimerQueue:
    """The native ``TimerQueue`` (C heap + hash index) behind TimerHeap's interface."""

    __slots__ = ("_q", "add", "remove", "peek_timestamp", "pop_due", "entries")

    def __init__(self) -> None:
        from flinkcore._core.timers import TimerQueue

        q = self._q = TimerQueue()
        self.add = q.register
        self.remove = q.delete
        self.peek_timestamp = q.peek
        self.pop_due = q.pop_until
        self.entries = q.snapshot

    def __len__(self) -> int:
        return len(self._q)


def new_timer_queue() -> Any:
    """A timer queue: the native one when the compiled core has it, else :class:`TimerHeap`."""
    try:
        return _NativeTimerQueue()
    except ImportError:  # pragma: no cover - the compiled core always ships TimerQueue
        return TimerHeap()


class InternalTimerService:
    """Event- and processing-time timers of one keyed operator, per key and namespace."""

    def __init__(self, name: str, backend: Any, triggerable: Any, processing_time_service: Any) -> None:
        self.name = name
        self._backend = backend
        self._triggerable = triggerable
        self._pts = processing_time_service
        self.event_timers = new_timer_queue()
        self.processing_timers = new_timer_queue()
        self.current_watermark = MIN_WATERMARK
        self._scheduled: int | None = None
        self._registration: Any = None

    # -- registration (for the backend's current key) -------------------------------------------
    def register_event_time_timer(self, namespace: Any, timestamp: int) -> None:
        self.event_timers.add(timestamp, self._backend.current_key, namespace)

    def delete_event_time_timer(self, namespace: Any, timestamp: int) -> None:
        self.event_timers.remove(timestamp, self._backend.current_key, namespace)

    def register_processing_time_timer(self, namespace: Any, timestamp: int) -> None:
        if self.processing_timers.add(timestamp, self._backend.current_key, namespace):
            self._schedule()

    def delete_processing_time_timer(self, namespace: Any, timestamp: int) -> None:
        self.processing_timers.remove(timestamp, self._backend.current_key, namespace)

    def current_processing_time(self) -> int:
        return self._pts.current_processing_time()

    # -- firing -----------------------------------------------------------------------------
    def advance_watermark(self, watermark: int) -> None:
        """Fire every event-time timer with timestamp <= ``watermark``, in order."""
        self.current_watermark = watermark
        heap = self.event_timers
        t = heap.pop_due(watermark)
        if t is None:
            return
        backend = self._backend
        on_event_time = self._triggerable.on_event_time
        backend.start_batch()  # state written by the timers is one batch (one LMDB transaction)
        try:
            while t is not None:
                backend.current_key = t[1]
                on_event_time(InternalTimer(t[0], t[1], t[2]))
                t = heap.pop_due(watermark)
        finally:
            backend.finish_batch()

    def _schedule(self) -> None:
        head = self.processing_timers.peek_timestamp()
        if head is None or (self._scheduled is not None and self._scheduled <= head):
            return
        if self._registration is not None:
            self._registration.cancel()
        self._scheduled = head
        self._registration = self._pts.register_timer(head, self._on_processing_time)

    def _on_processing_time(self, now: int) -> None:
        self._scheduled = None
        self._registration = None
        now = max(now, self._pts.current_processing_time())
        heap = self.processing_timers
        backend = self._backend
        on_processing_time = self._triggerable.on_processing_time
        t = heap.pop_due(now)
        if t is not None:
            backend.start_batch()
            try:
                while t is not None:
                    backend.current_key = t[1]
                    on_processing_time(InternalTimer(t[0], t[1], t[2]))
                    t = heap.pop_due(now)
            finally:
                backend.finish_batch()
        self._schedule()

    def fire_all_for_key_end(self) -> None:
        """BATCH execution: the current key's input is complete, so every timer registered so far
        fires now — event-time ones as under the maximum watermark, then processing-time ones
        (Flink's BatchExecutionInternalTimeService on a key change). Does not move
        ``current_watermark``: later keys are not late."""
        saved = self.current_watermark
        self.advance_watermark(MAX_WATERMARK)
        self.current_watermark = saved
        heap = self.processing_timers
        backend = self._backend
        t = heap.pop_due(MAX_WATERMARK)
        while t is not None:
            backend.current_key = t[1]
            self._triggerable.on_processing_time(InternalTimer(t[0], t[1], t[2]))
            t = heap.pop_due(MAX_WATERMARK)

    # -- snapshots --------------------------------------------------------------------------
    def snapshot(self) -> dict:
        return {"event": self.event_timers.entries(), "processing": self.processing_timers.entries()}

    def restore(self, snapshot: dict, max_parallelism: int, key_group_range: tuple | None) -> None:
        from flinkcore.state.key_groups import key_group_of

        def mine(key: Any) -> bool:
            if key_group_range is None:
                return True
            kg = key_group_of(key, max_parallelism)
            return key_group_range[0] <= kg <= key_group_range[1]

        for ts, key, ns in snapshot.get("event", []):
            if mine(key):
                self.event_timers.add(ts, key, ns)
        for ts, key, ns in snapshot.get("processing", []):
            if mine(key):
                self.processing_timers.add(ts, key, ns)
        self._schedule()

    def num_event_time_timers(self) -> int:
        return len(self.event_timers)

    def num_processing_time_timers(self) -> int:
        return len(self.processing_timers)
