"""A source's reader positions restored at another parallelism (Source.rescale_states): the new
readers read exactly what the old ones had left — nothing twice, nothing lost."""

import itertools

import pytest

from flinkcore.datastream.connectors.datagen import DataGeneratorSource
from flinkcore.datastream.connectors.file_system import FileSource, StreamFormat
from flinkcore.datastream.connectors.number_seq import NumberSequenceSource
from flinkcore.runtime.sources import END, Source, reader_states, rescale_index_states
from flinkcore.state.checkpoint_storage import IncompatibleSnapshotError


def _drain(reader, max_records=7):
    out = []
    while True:
        got = reader.poll(max_records)
        if got is END:
            return out
        if got is not None:
            out.extend(got[0])


def _partly_read(source, parallelism, reads):
    """Readers of ``source`` at ``parallelism``, reader i having polled ``reads[i]`` batches of 5:
    (what they read, their states)."""
    read, states = [], []
    for i in range(parallelism):
        reader = source.create_reader(i, parallelism)
        reader.open(None)
        for _ in range(reads[i]):
            got = reader.poll(5)
            if got is not END and got is not None:
                read.extend(got[0])
        states.append(reader.snapshot_state())
    return read, states


def _restored(source, states, parallelism):
    """Everything readers restored at ``parallelism`` from ``states`` read, per reader."""
    out = []
    for i, state in enumerate(reader_states(source, states, parallelism)):
        reader = source.create_reader(i, parallelism)
        reader.restore_state(state)
        reader.open(None)
        out.append(_drain(reader))
    return out


@pytest.mark.parametrize("new", [1, 2, 3, 5])
def test_number_sequence_restored_at_another_parallelism_reads_the_rest_once(new):
    source = NumberSequenceSource(0, 99)
    read, states = _partly_read(source, 2, [3, 7])
    rest = _restored(source, states, new)
    got = read + list(itertools.chain(*rest))
    assert sorted(got) == list(range(100))
    sizes = [len(r) for r in rest]
    if new != 2:  # (at the same parallelism each reader goes on from its own position)
        assert max(sizes) - min(sizes) <= 1  # the rest split evenly
    assert all(r == sorted(r) for r in rest)  # each reader still reads in order


def test_bounded_generator_rescaled_twice_and_from_states_without_sequences():
    source = DataGeneratorSource(lambda i: i * 10, count=200)
    read, states = _partly_read(source, 3, [1, 4, 9])
    # p3 -> p2, part of it read, -> p4
    mid = []
    mid_states = []
    for i, state in enumerate(reader_states(source, states, 2)):
        reader = source.create_reader(i, 2)
        reader.restore_state(state)
        got = reader.poll(3)
        mid.extend(got[0])
        mid_states.append(reader.snapshot_state())
    rest = _restored(source, mid_states, 4)
    assert sorted(read + mid + list(itertools.chain(*rest))) == [i * 10 for i in range(200)]
    # a snapshot of the readers before they kept sequences: the next index of each range
    legacy = [0 + 5, 100 + 20]  # p2 over 200: [0, 100) and [100, 200)
    rest = _restored(source, legacy, 3)
    assert sorted(itertools.chain(*rest)) == [i * 10 for i in [*range(5, 100), *range(120, 200)]]


@pytest.mark.parametrize("new", [1, 3, 4])
def test_unbounded_generator_rescaled_covers_every_index_left_once(new):
    source = DataGeneratorSource(lambda i: i)
    read, states = _partly_read(source, 2, [2, 5])  # subtask 0 read 0,2,..,18; 1 read 1,3,..,49
    readers = []
    for i, state in enumerate(reader_states(source, states, new)):
        reader = source.create_reader(i, new)
        reader.restore_state(state)
        readers.append(reader)
    later = []
    for _ in range(60):
        for reader in readers:
            later.extend(reader.poll(5)[0])
    assert not set(read) & set(later)
    horizon = 250  # below it, every index is read by now (each reader's share advanced past it)
    assert sorted(x for x in read + later if x < horizon) == list(range(horizon))
    # unbounded readers made before the sequences snapshot how many of their indexes they made
    legacy = _restored_first(source, [10, 25], 3, 60)
    assert sorted(x for x in legacy if x < 100) == sorted({*range(20, 100, 2), *range(51, 100, 2)})


def _restored_first(source, states, parallelism, n):
    out = []
    for i, state in enumerate(reader_states(source, states, parallelism)):
        reader = source.create_reader(i, parallelism)
        reader.restore_state(state)
        for _ in range(n // 5):
            out.extend(reader.poll(5)[0])
    return out


def test_index_states_split_evenly_in_order():
    states = [[[30, 50, 1]], [[80, 100, 1]], [], [[0, 10, 3]]]
    left = [*range(30, 50), *range(80, 100), *range(0, 10, 3)]
    for parallelism in (1, 2, 3, 7, 50, 60):
        parts = rescale_index_states(states, parallelism)
        assert len(parts) == parallelism
        got = [list(itertools.chain(*(range(*s) for s in part))) for part in parts]
        assert list(itertools.chain(*got)) == left
        assert max(map(len, got)) - min(map(len, got)) <= 1


def test_file_source_rescaled_reads_every_unfinished_line_once(tmp_path):
    files = []
    for f in range(6):
        path = tmp_path / f"f{f}.txt"
        path.write_text("".join(f"{f}-{i}\n" for i in range(20)))
        files.append(str(path))
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(tmp_path)).build()
    read, states = _partly_read(source, 2, [3, 9])
    for new in (1, 3, 4):
        rest = list(itertools.chain(*_restored(source, states, new)))
        assert sorted(read + rest) == sorted(f"{f}-{i}" for f in range(6) for i in range(20))


class _Positions(Source):
    """A parallel source that does not say how its readers' positions split."""

    def create_reader(self, subtask_index, parallelism):
        raise AssertionError("the rescaling needs no reader")


def test_a_source_that_does_not_say_how_its_positions_split_is_refused_not_misread():
    assert reader_states(_Positions(), [7, 7], 2) == [7, 7]
    refused = r"_Positions cannot be restored at parallelism 3 .* 2 subtasks"
    with pytest.raises(IncompatibleSnapshotError, match=refused):
        reader_states(_Positions(), [7, 7], 3)
    assert reader_states(_Positions(), [None, None], 3) == [None, None, None]  # stateless readers


def test_file_source_reader_skips_the_lines_a_restored_snapshot_read(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("".join(f"{i}\n" for i in range(10)))
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(path)).build()
    reader = source.create_reader(0, 1)
    reader.restore_state({"seen": [str(path)], "pending": [], "current": str(path), "offset": 4})
    assert _drain(reader) == [str(i) for i in range(4, 10)]
