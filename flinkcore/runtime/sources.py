"""The source contract and the in-memory collection source.

A :class:`Source` is a picklable description; the runtime asks it for one
:class:`SourceReader` per parallel instance. The executor polls readers for micro-batches, so
a reader never blocks: it returns what it has now (``None`` when nothing is available yet, for
unbounded sources) or :data:`END` once it is exhausted. ``snapshot_state`` / ``restore_state``
carry the reader's position (offsets) for checkpoints; :meth:`Source.rescale_states` turns the
positions of a snapshot's subtasks into those of another number of subtasks (a restore at another
parallelism), as Flink redistributes a source's splits.

:class:`IndexReader` is the reader of sources whose records are a function of an index
(``NumberSequenceSource``, a bounded or unbounded ``DataGeneratorSource``): its position is the
index sequences it has left, which :func:`rescale_index_states` splits over any parallelism.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from flinkcore.state.checkpoint_storage import IncompatibleSnapshotError

__all__ = [
    "END",
    "CollectionSource",
    "IndexReader",
    "IndexSource",
    "Source",
    "SourceReader",
    "reader_states",
    "rescale_index_states",
]


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

    def rescale_states(self, states: list, parallelism: int) -> list:
        """The states of ``parallelism`` readers that together read what the readers of ``states``
        (a snapshot's, one per subtask it had) had still to read: a restore at another parallelism.
        By default only readers without state (all None) can be rescaled; a source whose readers
        keep positions must say how they split, else the restore fails here rather than read
        some records twice and others never (a position means nothing in another subtask's share)."""
        if all(state is None for state in states):
            return [None] * parallelism
        raise IncompatibleSnapshotError(
            f"source {type(self).__name__} cannot be restored at parallelism {parallelism} from a snapshot "
            f"of {len(states)} subtasks: it does not say how its readers' positions split "
            "(Source.rescale_states); restore it at its old parallelism"
        )


def reader_states(source: Source, states: list, parallelism: int) -> list:
    """Each of ``parallelism`` subtasks' reader state from a snapshot's ``states`` (one per subtask
    the snapshot had): as they are at the same parallelism, else :meth:`Source.rescale_states`."""
    if len(states) == parallelism:
        return list(states)
    new = source.rescale_states(list(states), parallelism)
    if len(new) != parallelism:
        raise IncompatibleSnapshotError(
            f"source {type(source).__name__}: rescale_states gave {len(new)} reader states for parallelism "
            f"{parallelism}"
        )
    return new


# -- readers of index sequences -----------------------------------------------------------------
#: an index sequence: (first index, stop (exclusive; None: unbounded), step)
IndexSequence = tuple[int, int | None, int]


def _size(seq: IndexSequence) -> int:
    first, stop, step = seq
    return len(range(first, stop, step)) if stop is not None else -1


class IndexReader(SourceReader):
    """Reads the indexes of its sequences in order (each one's to its end before the next): the
    indexes are its records (a subclass makes records of them). Its state is the sequences it has
    left (:func:`rescale_index_states` splits them over another parallelism)."""

    def __init__(self, sequences: list[IndexSequence]) -> None:
        self.sequences = [tuple(s) for s in sequences if _size(tuple(s)) != 0]  # type: ignore[misc]

    def remaining(self) -> int | None:
        """How many indexes are left (None: unbounded)."""
        sizes = [_size(s) for s in self.sequences]
        return None if -1 in sizes else sum(sizes)

    def take(self, max_records: int) -> range | None:
        """The next up to ``max_records`` indexes (of one sequence), None when there are none."""
        if not self.sequences:
            return None
        first, stop, step = self.sequences[0]
        end = first + max_records * step
        if stop is not None and end >= stop:
            end = stop
        taken = range(first, end, step)
        if stop is not None and end == stop:
            self.sequences.pop(0)
        else:
            self.sequences[0] = (end, stop, step)
        return taken

    def poll(self, max_records: int):
        indexes = self.take(max_records)
        if indexes is None:
            return END
        return list(indexes), None

    def snapshot_state(self) -> Any:
        return [list(s) for s in self.sequences]

    def restore_state(self, state: Any) -> None:
        self.sequences = [tuple(s) for s in state if _size(tuple(s)) != 0]  # type: ignore[misc]


class IndexSource(Source):
    """A source whose readers are :class:`IndexReader` s: rescaled by :func:`rescale_index_states`."""

    def rescale_states(self, states: list, parallelism: int) -> list:
        n = len(states)
        sequences = []
        for i, state in enumerate(states):
            if not isinstance(state, list):  # a snapshot from before the sequences: its reader reads it
                reader = self.create_reader(i, n)
                reader.restore_state(state)
                state = reader.snapshot_state()
            sequences.append(state)
        return rescale_index_states(sequences, parallelism)


def rescale_index_states(states: list, parallelism: int) -> list:
    """:meth:`Source.rescale_states` for :class:`IndexReader` states (lists of sequences).

    What is left in bounded sequences is cut into ``parallelism`` parts of (nearly) equal size,
    in order (so each part is a few contiguous pieces). Unbounded sequences (each reader of an
    unbounded source has one: indexes ``a, a + p, a + 2p, ...`` of old step ``p``, together all
    indexes from their smallest start on, in every residue) are split anew: from ``A``, the largest
    start, new subtask ``j`` takes ``A + j, A + j + parallelism, ...``; the indexes below ``A``
    that some reader had still to read are finite sequences, and split as the bounded ones."""
    finite: list[IndexSequence] = []
    unbounded: list[IndexSequence] = []
    for state in states:
        for seq in state or []:
            seq = tuple(seq)
            (unbounded if seq[1] is None else finite).append(seq)  # type: ignore[arg-type]
    tails: list[IndexSequence] = []
    if unbounded:
        step = unbounded[0][2]
        residues = {first % step for first, _, _ in unbounded}
        if any(s[2] != step for s in unbounded) or len(unbounded) != step or len(residues) != step:
            raise ValueError(f"cannot rescale the unbounded index sequences {unbounded}: not one per residue")
        top = max(first for first, _, _ in unbounded)
        finite += [(first, top, step) for first, _, _ in unbounded if first < top]
        tails = [(top + j, None, parallelism) for j in range(parallelism)]
    sizes = [_size(s) for s in finite]
    total = sum(sizes)
    parts: list[list[IndexSequence]] = [[] for _ in range(parallelism)]
    bounds = [total * (j + 1) // parallelism for j in range(parallelism)]  # cumulative end of part j
    done, j = 0, 0
    for seq, size in zip(finite, sizes, strict=True):
        first, stop, step = seq
        while size:
            while bounds[j] <= done:
                j += 1
            n = min(size, bounds[j] - done)
            parts[j].append((first, first + n * step if n < size else stop, step))
            first += n * step
            size -= n
            done += n
    for j, tail in enumerate(tails):
        parts[j].append(tail)
    return [[list(s) for s in part] for part in parts]


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
