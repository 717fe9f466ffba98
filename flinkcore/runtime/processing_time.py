"""Processing time: a clock and a service that calls back at given wall-clock times.

Every task has one :class:`ProcessingTimeService`; operators register callbacks (periodic
watermark emission, processing-time timers, idleness checks). The executor calls
:meth:`ProcessingTimeService.advance` between batches on the task's thread, so callbacks never
race with record processing (Flink's mailbox model). Tests use :class:`ManualClock`.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable

__all__ = ["ManualClock", "ProcessingTimeService", "SystemClock"]


class SystemClock:
    """Wall-clock milliseconds since the epoch."""

    def __call__(self) -> int:
        return int(time.time() * 1000)


class ManualClock:
    """A clock a test moves by hand."""

    def __init__(self, now: int = 0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class _Registration:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ProcessingTimeService:
    """Callbacks ordered by due time; :meth:`advance` fires those due by ``now``."""

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self.clock = clock or SystemClock()
        self._heap: list = []
        self._seq = itertools.count()

    def current_processing_time(self) -> int:
        return self.clock()

    def register_timer(self, timestamp: int, callback: Callable[[int], None]) -> _Registration:
        """Call ``callback(timestamp)`` once processing time reaches ``timestamp``."""
        reg = _Registration()
        heapq.heappush(self._heap, (timestamp, next(self._seq), callback, reg))
        return reg

    def next_deadline(self) -> int | None:
        heap = self._heap
        while heap and heap[0][3].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def advance(self, now: int | None = None) -> None:
        """Fire every callback due at ``now`` (default: the clock), in due-time order."""
        if now is None:
            now = self.clock()
        heap = self._heap
        while heap and heap[0][0] <= now:
            ts, _, callback, reg = heapq.heappop(heap)
            if not reg.cancelled:
                callback(ts)

    def clear(self) -> None:
        self._heap.clear()
