"""(+) ``DataGeneratorSource``: records made by a function of their index, optionally rate-limited.

``DataGeneratorSource(lambda i: (i % 10, float(i)), count=1_000_000, records_per_second=None)``:
index ``i`` runs over ``0..count-1`` (forever when ``count`` is None), split over subtasks in
contiguous ranges as Flink's DataGeneratorSource does (unbounded: subtask ``i`` of ``p`` takes
``i, i + p, ...``). Restored at another parallelism, the new subtasks split what the old ones had
left (``Source.rescale_states``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flinkcore.runtime.operators.base import UserCodeError
from flinkcore.runtime.sources import END, IndexReader, IndexSource, SourceReader

__all__ = ["DataGeneratorSource"]


class _GeneratorReader(IndexReader):
    """``fn`` of the indexes of its sequences, at most ``rate`` records per second (counted from
    when it first polls, or from its restore)."""

    def __init__(self, fn: Callable[[int], Any], sequences: list, rate: float | None) -> None:
        super().__init__(sequences)
        self.fn = fn
        self.rate = rate
        self.emitted = 0
        self.t0: float | None = None

    def poll(self, max_records: int):
        if not self.sequences:
            return END
        n = max_records
        if self.rate is not None:
            now = time.monotonic()
            if self.t0 is None:
                self.t0 = now
            allowed = int((now - self.t0) * self.rate) - self.emitted + 1
            if allowed <= 0:
                return None
            n = min(n, allowed)
        indexes = self.take(n)
        it = iter(indexes)
        try:
            out = list(map(self.fn, it))
        except Exception as e:
            failed = indexes[len(indexes) - it.__length_hint__() - 1]
            raise UserCodeError("DataGeneratorSource", failed, e, where="index") from e
        self.emitted += len(out)
        return out, None

    def restore_state(self, state: Any) -> None:
        if isinstance(state, int):  # a snapshot from before the sequences: the next index (bounded), or
            # how many of its indexes i, i + p, ... it had generated (unbounded)
            first, stop, step = self.sequences[0] if self.sequences else (state, state, 1)
            state = [[first + int(state) * step if stop is None else int(state), stop, step]]
        super().restore_state(state)
        self.emitted = 0  # the rate limit counts from the restored position
        self.t0 = None


class DataGeneratorSource(IndexSource):
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
        if self.count is None:  # unbounded: subtask i generates indexes i, i + p, i + 2p, ...
            return _GeneratorReader(self.fn, [(subtask_index, None, parallelism)], rate)
        lo = self.count * subtask_index // parallelism
        hi = self.count * (subtask_index + 1) // parallelism
        return _GeneratorReader(self.fn, [(lo, hi, 1)], rate)
