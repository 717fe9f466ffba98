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


class _PyInternalTimer:
    """A fired timer as the triggerable sees it (when the compiled core is missing; see below)."""

    __slots__ = ("timestamp", "key", "namespace")

    def __init__(self, timestamp: int, key: Any, namespace: Any) -> None:
        self.timestamp = timestamp
        self.key = key
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"InternalTimer({self.timestamp}, {self.key!r}, {self.namespace!r})"


try:  # made in C by the native queue's pop_timers: no Python constructor call per fired timer
    from flinkcore._core.timers import FiredTimer as InternalTimer
except ImportError:  # pragma: no cover - the compiled core always ships it
    InternalTimer = _PyInternalTimer  # type: ignore[misc,assignment]


class TimerHeap:
    """De-duplicated timers in timestamp order (ties in registration order), with lazy deletion.

    A timer deleted and registered again counts from its new registration: the live map holds each
    timer's sequence number, so the heap entry of the deleted registration is stale and skipped."""

    def __init__(self) -> None:
        self._heap: list = []
        self._live: dict = {}  # (timestamp, key, namespace) -> sequence number of its registration
        self._seq = itertools.count()

    def add(self, timestamp: int, key: Any, namespace: Any) -> bool:
        t = (timestamp, key, namespace)
        if t in self._live:
            return False
        seq = self._live[t] = next(self._seq)
        heapq.heappush(self._heap, (timestamp, seq, key, namespace))
        return True

    def remove(self, timestamp: int, key: Any, namespace: Any) -> None:
        self._live.pop((timestamp, key, namespace), None)

    def peek_timestamp(self) -> int | None:
        heap = self._heap
        while heap:
            ts, seq, key, ns = heap[0]
            if self._live.get((ts, key, ns)) == seq:
                return ts
            heapq.heappop(heap)
        return None

    def pop_due(self, time: int) -> tuple | None:
        """Remove and return the earliest live timer with timestamp <= ``time``."""
        heap = self._heap
        live = self._live
        while heap and heap[0][0] <= time:
            ts, seq, key, ns = heapq.heappop(heap)
            t = (ts, key, ns)
            if live.get(t) == seq:
                del live[t]
                return t
        return None

    def pop_batch(self, time: int) -> list:
        """Remove and return every live timer at the earliest timestamp, when that is <= ``time``, in
        registration order, as InternalTimer objects (empty when none is due)."""
        first = self.peek_timestamp()
        if first is None or first > time:
            return []
        out = []
        while (t := self.pop_due(first)) is not None:
            out.append(InternalTimer(t[0], t[1], t[2]))
        return out

    def __len__(self) -> int:
        return len(self._live)

    def entries(self) -> list[tuple]:
        """Live timers in firing order (for snapshots and tests)."""
        live = self._live
        return [
            (ts, key, ns)
            for ts, seq, key, ns in sorted(self._heap, key=lambda e: (e[0], e[1]))
            if live.get((ts, key, ns)) == seq
        ]


class _NativeTimerQueue:
    """The native ``TimerQueue`` (C heap + hash index) behind TimerHeap's interface."""

    __slots__ = ("_q", "add", "remove", "peek_timestamp", "pop_due", "pop_batch", "entries")

    def __init__(self) -> None:
        from flinkcore._core.timers import TimerQueue

        q = self._q = TimerQueue()
        self.add = q.register
        self.remove = q.delete
        self.peek_timestamp = q.peek
        self.pop_due = q.pop_until
        self.pop_batch = q.pop_timers
        self.entries = q.snapshot

    def __len__(self) -> int:
        return len(self._q)


def new_timer_queue() -> Any:
    """A timer queue: the native one when the compiled core has it, else :class:`TimerHeap`."""
    try:
        return _NativeTimerQueue()
    except ImportError:  # pragma: no cover - the compiled core always ships TimerQueue
        return TimerHeap()


class _Firing:
    """What one time domain is firing: the timer being fired and an iterator over the rest of its
    batch (popped from the queue, not yet fired), which the firing loop shares."""

    __slots__ = ("timer", "rest")

    def __init__(self) -> None:
        self.timer: InternalTimer | None = None
        self.rest: Any = None

    def before_register(self, queue: Any, timestamp: int) -> None:
        """A callback registers a timer at ``timestamp`` in ``queue``: unless it is later than the batch,
        put the rest of the batch back first. An earlier timer must fire before the rest; one at the
        batch's timestamp may be a pending timer (registering it again keeps one), or a new one that
        fires after the rest, as its later registration says."""
        if timestamp > self.timer.timestamp:
            return
        self._put_back(queue)

    def before_delete(self, queue: Any, timestamp: int, key: Any, namespace: Any) -> None:
        """A callback deletes a timer: when it may be a pending one of the batch (same timestamp, not
        the timer firing now, which is no longer queued), put the rest of the batch back first, so it
        does not fire."""
        timer = self.timer
        if timestamp != timer.timestamp or (key == timer.key and namespace == timer.namespace):
            return
        self._put_back(queue)

    def _put_back(self, queue: Any) -> None:
        """Register the rest of the batch again, in order. That ends the firing loop's pass over the
        batch (it shares the iterator); it pops again and sees the queue as Flink's peek-and-poll loop
        would."""
        rest, self.rest = self.rest, None
        add = queue.add
        for t in rest:
            add(t.timestamp, t.key, t.namespace)


class InternalTimerService:
    """Event- and processing-time timers of one keyed operator, per key and namespace.

    Due timers are popped a timestamp at a time (every timer at the earliest timestamp in one call,
    not one call per timer) and fired in order. Callbacks may register and delete timers while a batch
    fires, with the outcome of Flink's peek-and-poll loop (InternalTimerServiceImpl.advanceWatermark):
    a timer registered for a time <= the watermark fires in the same advance, in timestamp order; a
    timer deleted before its turn does not fire; registering a pending timer again keeps one (see
    _Firing.before_register/before_delete).
    """

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
        self._event_firing = _Firing()
        self._processing_firing = _Firing()

    # -- registration (for the backend's current key) -------------------------------------------
    def register_event_time_timer(self, namespace: Any, timestamp: int) -> None:
        key = self._backend.current_key
        if self._event_firing.rest is not None:
            self._event_firing.before_register(self.event_timers, timestamp)
        self.event_timers.add(timestamp, key, namespace)

    def delete_event_time_timer(self, namespace: Any, timestamp: int) -> None:
        key = self._backend.current_key
        if self._event_firing.rest is not None:
            self._event_firing.before_delete(self.event_timers, timestamp, key, namespace)
        self.event_timers.remove(timestamp, key, namespace)

    def register_processing_time_timer(self, namespace: Any, timestamp: int) -> None:
        key = self._backend.current_key
        if self._processing_firing.rest is not None:
            self._processing_firing.before_register(self.processing_timers, timestamp)
        if self.processing_timers.add(timestamp, key, namespace):
            self._schedule()

    def delete_processing_time_timer(self, namespace: Any, timestamp: int) -> None:
        key = self._backend.current_key
        if self._processing_firing.rest is not None:
            self._processing_firing.before_delete(self.processing_timers, timestamp, key, namespace)
        self.processing_timers.remove(timestamp, key, namespace)

    def current_processing_time(self) -> int:
        return self._pts.current_processing_time()

    # -- firing -----------------------------------------------------------------------------
    def advance_watermark(self, watermark: int) -> None:
        """Fire every event-time timer with timestamp <= ``watermark``, in order."""
        self.current_watermark = watermark
        self._fire(self.event_timers, watermark, self._triggerable.on_event_time, self._event_firing, True)

    def _fire(self, queue: Any, bound: int, callback: Any, firing: _Firing, as_batch: bool) -> None:
        """Fire the timers of ``queue`` with timestamp <= ``bound``: every timer of the earliest due
        timestamp is popped in one call, then fired one by one with its key set as the backend's
        current key. A callback that registers or deletes a timer the batch could be affected by puts
        the rest of the batch back (see ``_Firing``), and the loop pops again."""
        batch = queue.pop_batch(bound)
        if not batch:
            return
        backend = self._backend
        if as_batch:
            backend.start_batch()  # state written by the timers is one batch (one LMDB transaction)
        try:
            while batch:
                firing.rest = rest = iter(batch)
                for timer in rest:
                    backend.current_key = timer.key
                    firing.timer = timer
                    callback(timer)
                batch = queue.pop_batch(bound)
        finally:
            rest, firing.rest, firing.timer = firing.rest, None, None
            if rest is not None:  # a callback raised: the timers not fired stay registered
                add = queue.add
                for t in rest:
                    add(t.timestamp, t.key, t.namespace)
            if as_batch:
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
        on_processing_time = self._triggerable.on_processing_time
        self._fire(self.processing_timers, now, on_processing_time, self._processing_firing, True)
        self._schedule()

    def fire_all_for_key_end(self) -> None:
        """BATCH execution: the current key's input is complete, so every timer registered so far
        fires now — event-time ones as under the maximum watermark, then processing-time ones
        (Flink's BatchExecutionInternalTimeService on a key change). Does not move
        ``current_watermark``: later keys are not late."""
        saved = self.current_watermark
        self.advance_watermark(MAX_WATERMARK)
        self.current_watermark = saved
        on_processing_time = self._triggerable.on_processing_time
        self._fire(self.processing_timers, MAX_WATERMARK, on_processing_time, self._processing_firing, False)

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
