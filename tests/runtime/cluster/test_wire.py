"""Batches survive the trip between processes: records, their types and their timestamps."""

import pyarrow as pa

from flinkcore.common.types import Row, row_class
from flinkcore.runtime.cluster.wire import decode_batch, encode_batch


def _trip(values, timestamps):
    return decode_batch(memoryview(encode_batch(values, timestamps)))


def test_named_rows_travel_by_column_and_keep_types():
    R = row_class(("k", "v", "s", "big"))
    values = [tuple.__new__(R, (i, i * 0.5, f"s{i}", 2**70 + i)) for i in range(50)]
    got, ts = _trip(values, list(range(50)))
    assert got == values and ts == list(range(50))
    assert all(type(r).__name__ == "Row" and r._fields == R._fields for r in got)
    assert type(got[0][0]) is int and type(got[0][1]) is float


def test_mixed_columns_and_rows_fall_back_to_the_record_format():
    R = row_class(("a", "b"))
    values = [tuple.__new__(R, (1 if i % 2 else 1.5, None)) for i in range(20)]
    got, _ = _trip(values, None)
    assert got == values and [type(r[0]) for r in got] == [type(r[0]) for r in values]
    mixed = values[:10] + [Row(1, 2)] + [("t", 1)] * 10
    got, ts = _trip(mixed, [None] * 10 + list(range(11)))
    assert got == mixed and ts == [None] * 10 + list(range(11))


def test_arrow_batches_travel_as_ipc():
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2, 3]), pa.array(["a", "b", "c"])], names=["k", "s"])
    got, ts = _trip(batch, [10, 20, 30])
    assert got.equals(batch) and list(ts) == [10, 20, 30]


def test_frames_of_buffer_parts_cross_a_socket_whole_and_in_order():
    """Arrow batches go out as separate buffers (header, IPC, timestamps) and arrive as one
    frame each, also when a frame spans many reads or a read ends inside a frame."""
    import socket
    import time

    import numpy as np

    from flinkcore.runtime.cluster.wire import BATCH, WATERMARK, Peer, encode_batch_parts, encode_i64

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sender, receiver = Peer(1, a), Peer(0, b)
    n = 300_000  # ~7 MB: more than one receive and more than the socket buffer
    batch = pa.RecordBatch.from_arrays(
        [pa.array(np.arange(n, dtype=np.int64)), pa.array(np.arange(n) * 0.5)], names=["k", "v"]
    )
    ts = np.arange(n, dtype=np.int64) * 3
    sender.send(BATCH, 7, encode_batch_parts(batch, ts))
    sender.send(WATERMARK, 7, encode_i64(42))
    sender.send(BATCH, 8, encode_batch_parts(batch.slice(0, 5), None))
    ts[:] = -1  # the sender's array may change once sent: the queued frame holds its own copy
    frames = []
    deadline = time.monotonic() + 10
    while len(frames) < 3:
        assert time.monotonic() < deadline
        sender.flush()
        frames.extend(receiver.receive())
    kinds = [(k, c) for k, c, _ in frames]
    assert kinds == [(BATCH, 7), (WATERMARK, 7), (BATCH, 8)]
    got, got_ts = decode_batch(frames[0][2])
    assert got.equals(batch) and got_ts.tolist() == (np.arange(n) * 3).tolist()
    got, got_ts = decode_batch(frames[2][2])
    assert got.equals(batch.slice(0, 5)) and got_ts is None
    sender.close()
    receiver.close()


def _fixed_width_batch(rows, offset=0):
    import numpy as np

    rng = np.random.default_rng(rows)
    columns = {
        "i64": pa.array(rng.integers(-(2**63), 2**63 - 1, rows + offset, dtype=np.int64)),
        "f64": pa.array(rng.random(rows + offset)),
        "i32": pa.array(rng.integers(-(2**31), 2**31 - 1, rows + offset).astype(np.int32)),
        "u8": pa.array(rng.integers(0, 256, rows + offset).astype(np.uint8)),
        "i16": pa.array(rng.integers(-(2**15), 2**15, rows + offset).astype(np.int16)),
        "f32": pa.array(rng.random(rows + offset).astype(np.float32)),
        "when": pa.array(rng.integers(0, 2**40, rows + offset), type=pa.timestamp("us")),
        "day": pa.array(rng.integers(0, 20000, rows + offset).astype(np.int32), type=pa.date32()),
    }
    schema = pa.schema([pa.field(k, v.type) for k, v in columns.items()], metadata={b"kind": b"row"})
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=schema).slice(offset, rows)


def test_fixed_width_batches_travel_as_their_columns_and_keep_types_and_metadata():
    import numpy as np

    from flinkcore.runtime.cluster import wire

    for rows, offset in ((0, 0), (1, 0), (7, 3), (1000, 0), (333, 17)):
        batch = _fixed_width_batch(rows, offset)
        ts = np.arange(rows, dtype=np.int64) * -3
        parts = wire.encode_batch_parts(batch, ts)
        assert wire._BATCH_HEAD.unpack_from(parts[0])[0] == wire._COLUMNS  # not Arrow IPC
        for stamps in (ts, None, list(ts)):
            got, got_ts = _trip(batch, stamps)
            assert got.equals(batch) and got.schema.equals(batch.schema, check_metadata=True)
            got.validate(full=True)
            if stamps is None or not rows:
                assert got_ts is None
            else:
                assert got_ts.dtype == np.int64 and got_ts.tolist() == ts.tolist()


def test_batches_with_nulls_or_other_types_still_travel_as_ipc():
    from flinkcore.runtime.cluster import wire

    for batch in (
        pa.RecordBatch.from_arrays([pa.array([1, None, 3]), pa.array([1.0, 2.0, 3.0])], names=["k", "v"]),
        pa.RecordBatch.from_arrays([pa.array([1, 2, 3]), pa.array([True, False, True])], names=["k", "b"]),
        pa.RecordBatch.from_arrays([pa.array([1, 2, 3]), pa.array(["a", "b", "c"])], names=["k", "s"]),
    ):
        assert wire._BATCH_HEAD.unpack_from(wire.encode_batch_parts(batch, None)[0])[0] == wire._ARROW
        got, ts = _trip(batch, [1, 2, 3])
        assert got.equals(batch) and list(ts) == [1, 2, 3]


def _pump(sender, receiver, want, timeout=10):
    import time

    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < want:
        assert time.monotonic() < deadline
        sender.flush()
        frames.extend(receiver.receive())
    return frames


def test_frames_of_every_size_around_the_staging_buffer_arrive_whole_and_aligned():
    """Small and large frames mixed (smaller than, exactly as large as, and larger than the
    receiver's staging buffer, headers split between reads): each arrives whole, in order; a
    large fixed-width batch decodes as aligned views of its own frame buffer, which later reads
    never overwrite."""
    import socket

    import numpy as np

    from flinkcore.runtime.cluster import wire

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sender, receiver = wire.Peer(1, a), wire.Peer(0, b)
    stage = wire._STAGE
    sizes = [0, 1, 8, stage - 9, stage - 8, stage, stage + 1, 3 * stage + 5, 5, stage - 1, 2 * stage]
    rng = np.random.default_rng(1)
    sent = []
    for i, size in enumerate(sizes * 3):
        payload = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        sender.send(wire.CONTROL, i, payload)
        sent.append((wire.CONTROL, i, payload))
    frames = _pump(sender, receiver, len(sent))
    assert [(k, c, bytes(p)) for k, c, p in frames] == sent

    batch = _fixed_width_batch(100_000)
    ts = np.arange(100_000, dtype=np.int64)
    sender.send(wire.BATCH, 1, wire.encode_batch_parts(batch, ts))
    sender.send(wire.WATERMARK, 1, wire.encode_i64(5))
    sender.send(wire.BATCH, 2, wire.encode_batch_parts(batch.slice(5, 10), ts[5:15]))
    (_, _, first), (_, _, wm), (_, _, second) = _pump(sender, receiver, 3)
    got, got_ts = wire.decode_batch(first)
    assert wire.decode_i64(wm) == 5
    for col in got.columns:
        assert col.buffers()[1].address % 8 == 0
    assert got_ts.ctypes.data % 8 == 0
    # more traffic after the decode: the decoded batch keeps its own memory
    for i in range(5):
        sender.send(wire.BATCH, 3, wire.encode_batch_parts(batch.slice(i * 1000, 90_000), None))
    _pump(sender, receiver, 5)
    assert got.equals(batch) and got_ts.tolist() == ts.tolist()
    got2, ts2 = wire.decode_batch(second)
    assert got2.equals(batch.slice(5, 10)) and ts2.tolist() == list(range(5, 15))
    sender.close()
    receiver.receive()
    assert receiver.eof
    receiver.close()


def test_a_peer_that_closes_inside_a_large_frame_is_seen_as_gone():
    import socket

    from flinkcore.runtime.cluster import wire

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    receiver = wire.Peer(0, b)
    a.sendall(wire._HEADER.pack(4 * wire._STAGE, wire.CONTROL, 0) + bytes(wire._STAGE))
    a.close()
    frames = []
    for _ in range(100):
        frames += receiver.receive()
        if receiver.eof:
            break
    assert receiver.eof and frames == []
    receiver.close()


def test_timestamps_that_are_a_column_travel_once():
    """Timestamps read zero-copy from an int64 column go as that column's index (the frame is no
    larger than without them) and arrive as its values; timestamps of their own still travel."""
    import numpy as np

    from flinkcore.runtime.cluster import wire

    base = pa.RecordBatch.from_arrays(
        [pa.array(np.arange(100) % 7), pa.array(np.arange(100) * 0.5), pa.array(np.arange(100) * 1000)],
        names=["key", "value", "ts"],
    )
    for batch in (base, base.slice(9, 50)):
        col_ts = batch.column("ts").to_numpy()
        size = len(wire.encode_batch(batch, col_ts))
        assert size == len(wire.encode_batch(batch, None))
        got, ts = _trip(batch, col_ts)
        assert got.equals(batch) and ts.tolist() == col_ts.tolist()
        own = col_ts + 1
        assert len(wire.encode_batch(batch, own)) == size + 8 * batch.num_rows
        got, ts = _trip(batch, own)
        assert got.equals(batch) and ts.tolist() == own.tolist()


def test_schemas_that_differ_only_in_metadata_keep_their_own():
    """pyarrow's schema equality ignores metadata (the record kind lives there): each batch
    arrives with its own schema's metadata, also where the sender's cache of serialized schemas
    holds an equal schema of other metadata under it (a pyarrow whose schema hash ignores
    metadata)."""
    from flinkcore.runtime.cluster import wire

    row, tup = (pa.schema([("f0", pa.int64())], metadata={b"kind": k}) for k in (b"row", b"tuple"))
    assert row == tup
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2])], schema=tup)
    wire._schema_info.clear()
    wire._schema_info.known[tup] = (row, (row.serialize().to_pybytes(), [8]))
    try:
        got, _ = _trip(batch, None)
    finally:
        wire._schema_info.clear()
    assert got.schema.metadata == {b"kind": b"tuple"}
    for schema in (row, tup, row):
        got, _ = _trip(pa.RecordBatch.from_arrays([pa.array([3])], schema=schema), None)
        assert got.schema.metadata == schema.metadata


def test_record_timestamps_arrive_as_they_were_sent():
    """Int timestamps travel as one int64 array (from a list of ints, numpy integers or an int64
    array: they arrive as ints); anything else (None for a record without one, a float, an int
    beyond int64, a bool) travels as values and arrives with its type."""
    import numpy as np

    from flinkcore.runtime.cluster import wire

    values = [(i % 3, f"v{i}") for i in range(20)]
    ints = [1_700_000_000_000 + i // 4 for i in range(20)]
    for sent in (ints, tuple(ints), np.array(ints, dtype=np.int64), [np.int64(t) for t in ints]):
        got, ts = _trip(values, sent)
        assert got == values and ts == ints and all(type(t) is int for t in ts)
        head = wire.encode_batch(values, sent)
        assert wire._BATCH_HEAD.unpack_from(head)[0] == wire._TS_INT64
    for sent in (
        [None] * 10 + ints[10:],
        ints[:19] + [1.5],
        ints[:19] + [2**63],
        ints[:19] + [-(2**63) - 1],
        ints[:19] + [True],
        [np.int64(5)] * 19 + [2.5],
    ):
        got, ts = _trip(values, sent)
        assert got == values and ts == sent and [type(t) for t in ts] == [type(t) for t in sent]
    assert _trip([], []) == ([], []) and _trip([], None) == ([], None)
    assert _trip(values, None) == (values, None)
