"""``NumberSequenceSource(start, end)``: the longs start..end inclusive, split over subtasks."""

from __future__ import annotations

from typing import Any

from flinkcore.common.typeinfo import Types
from flinkcore.runtime.sources import IndexReader, IndexSource, SourceReader

__all__ = ["NumberSequenceSource"]


class _RangeReader(IndexReader):
    """The longs of its ranges (``IndexReader``: the numbers are the indexes)."""

    def restore_state(self, state: Any) -> None:
        if isinstance(state, int):  # a snapshot from before the ranges: the next number of its range
            first, stop, step = self.sequences[0] if self.sequences else (state, state, 1)
            state = [[int(state), stop, step]]
        super().restore_state(state)


class NumberSequenceSource(IndexSource):
    bounded = True
    parallel = True

    def __init__(self, start: int, end: int) -> None:
        if end < start:
            raise ValueError(f"end ({end}) must be >= start ({start})")
        self.start = int(start)
        self.end = int(end)
        self.type_info = Types.LONG()

    def get_boundedness(self) -> str:
        return "BOUNDED"

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        n = self.end - self.start + 1
        lo = self.start + n * subtask_index // parallelism
        hi = self.start + n * (subtask_index + 1) // parallelism
        return _RangeReader([(lo, hi, 1)])
