"""(+) ``DataGeneratorSource``: records made by a function of their index, optionally rate-limited.

``DataGeneratorSource(lambda i: (i % 10, float(i)), count=1_000_000, records_per_second=None)``:
index ``i`` runs over ``0..count-1`` (forever when ``count`` is None), split over subtasks in
contiguous ranges as Flink's DataGeneratorSource does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flinkcore.runtime.operators.base import UserCodeError
from flinkcore.runtime.sources import END, Source, SourceReader

__all__ = ["DataGeneratorSource"]


class _GeneratorReader(SourceReader):
    def __init__(self, fn: Callable[[int], Any], start: int, end: int | None, rate: float | None) -> None:
        self.fn = fn
        self.next = start
        self.first = start
        self.end = end
        self.rate = rate
        self.t0: float | None = None

    def poll(self, max_records: int):
        if self.end is not None and self.next >= self.end:
            return END
        n = max_records
        if self.rate is not None:
            now = time.monotonic()
            if self.t0 is None:
                self.t0 = now
            allowed = int((now - self.t0) * self.rate) - (self.next - self.first) + 1
            if allowed <= 0:
                return None
            n = min(n, allowed)
        stop = self.next + n if self.end is None else min(self.next + n, self.end)
        it = iter(range(self.next, stop))
        try:
            out = list(map(self.fn, it))
        except Exception as e:
            failed = stop - it.__length_hint__() - 1
            raise UserCodeError("DataGeneratorSource", failed, e, where="index") from e
        self.next = stop
        return out, None

    def snapshot_state(self) -> Any:
        return self.next

    def restore_state(self, state: Any) -> None:
        # the rate limit counts from the restored position, not from the original start
        self.next = self.first = int(state)
        self.t0 = None


class DataGeneratorSource(Source):
    parallel = True

    def __init__(
        self,
        generator_function: Callable[[int], Any],
        count: int | None = None,
        records_per_second: float | None = None,
        type_info: Any = None,
    ) -> None:
        fn = getattr(generator_function, "map", None)
        self.fn = fn if callable(fn) else generator_function
        if not callable(self.fn):
            raise TypeError(f"DataGeneratorSource takes a function of the index, got {generator_function!r}")
        if count is not None and count < 0:
            raise ValueError(f"count must be >= 0 or None (unbounded), got {count}")
        if records_per_second is not None and records_per_second <= 0:
            raise ValueError(f"records_per_second must be positive, got {records_per_second}")
        self.count = count
        self.rate = records_per_second
        self.type_info = type_info
        self.bounded = count is not None

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        rate = None if self.rate is None else self.rate / parallelism
        if self.count is None:
            # unbounded: subtask i generates indexes i, i + p, ... mapped onto its own counter
            fn, p, i = self.fn, parallelism, subtask_index
            return _GeneratorReader(lambda k: fn(k * p + i), 0, None, rate)
        lo = self.count * subtask_index // parallelism
        hi = self.count * (subtask_index + 1) // parallelism
        return _GeneratorReader(self.fn, lo, hi, rate)
