"""``NumberSequenceSource(start, end)``: the longs start..end inclusive, split over subtasks."""

from __future__ import annotations

from typing import Any

from flinkcore.common.typeinfo import Types
from flinkcore.runtime.sources import END, Source, SourceReader

__all__ = ["NumberSequenceSource"]


class _RangeReader(SourceReader):
    def __init__(self, start: int, end: int) -> None:
        self.next = start
        self.end = end  # exclusive

    def poll(self, max_records: int):
        if self.next >= self.end:
            return END
        stop = min(self.next + max_records, self.end)
        out = list(range(self.next, stop))
        self.next = stop
        return out, None

    def snapshot_state(self) -> Any:
        return self.next

    def restore_state(self, state: Any) -> None:
        self.next = int(state)


class NumberSequenceSource(Source):
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
        return _RangeReader(lo, hi)
