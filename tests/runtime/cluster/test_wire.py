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
