"""The source contract and the in-memory collection source.

A :class:`Source` is a picklable description; the runtime asks it for one
:class:`SourceReader` per parallel instance. The executor polls readers for micro-batches, so
a reader never blocks: it returns what it has now (``None`` when nothing is available yet, for
unbounded sources) or :data:`END` once it is exhausted. ``snapshot_state`` / ``restore_state``
carry the reader's position (offsets) for checkpoints.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["END", "CollectionSource", "Source", "SourceReader"]


class _End:
    def __repr__(self) -> str:
        return "END"


#: returned by :meth:`SourceReader.poll` when the reader is exhausted
END = _End()


class SourceReader(ABC):
    def open(self, context: Any) -> None:  # noqa: B027
        """``context``: the OperatorContext of the source (processing time, subtask index ...)."""

    @abstractmethod
    def poll(self, max_records: int) -> tuple[list, list | None] | None | _End:
        """Up to ``max_records`` records as ``(values, timestamps_or_None)``; None: nothing now."""

    def snapshot_state(self) -> Any:
        return None

    def restore_state(self, state: Any) -> None:  # noqa: B027
        pass

    def close(self) -> None:  # noqa: B027
        pass


class Source(ABC):
    """A source description; ``bounded`` sources end (then a maximum watermark follows)."""

    bounded: bool = True
    #: False for sources that only run with parallelism 1 (from_collection)
    parallel: bool = True

    @abstractmethod
    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader: ...


class _CollectionReader(SourceReader):
    def __init__(self, items: list) -> None:
        self.items = items
        self.pos = 0

    def poll(self, max_records: int):
        pos = self.pos
        if pos >= len(self.items):
            return END
        end = pos + max_records
        self.pos = min(end, len(self.items))
        return self.items[pos:end], None

    def snapshot_state(self) -> Any:
        return self.pos

    def restore_state(self, state: Any) -> None:
        self.pos = int(state or 0)


class CollectionSource(Source):
    """The records of an in-memory list, in order (non-parallel, as Flink's from_collection)."""

    bounded = True
    parallel = False

    def __init__(self, items: list) -> None:
        self.items = list(items)

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        if parallelism != 1:
            raise ValueError("a collection source is not parallel: its parallelism must be 1")
        return _CollectionReader(self.items)
