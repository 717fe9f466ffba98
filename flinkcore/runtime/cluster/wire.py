"""Frames between the processes of a job: a length-prefixed header and a payload.

Every pair of processes (the driver and the workers) shares one Unix stream socket. Records,
watermarks, watermark status, end of input, credits and control messages all travel as frames
on it, in order per socket, so in-band events stay in order with the records of their channel.
Sockets are non-blocking: a frame that does not fit into the kernel buffer waits in the
:class:`Peer`'s outgoing queue and is written when the socket becomes writable, so a process
never blocks in ``send`` (two processes writing to each other can never deadlock there; flow is
bounded by credits, see :mod:`flinkcore.runtime.cluster.task`).

A batch is encoded with the native serde (``dumps_batch``); timestamps as one int64 array when
every record has one. Arrow record batches travel as Arrow IPC streams.
"""

from __future__ import annotations

import errno
import pickle
import socket
import struct
from collections import deque
from typing import Any

import numpy as np

from flinkcore._core.rows import rows_from_columns
from flinkcore._core.serde import dumps_batch, loads_batch

__all__ = ["Peer", "decode_batch", "encode_batch", "encode_batch_parts"]

# frame kinds
BATCH = 1
WATERMARK = 2
STATUS = 3
END = 4
CREDIT = 5
BARRIER = 6
CONTROL = 7

_HEADER = struct.Struct("<IBI")  # payload length, kind, channel id
_I64 = struct.Struct("<q")
_BATCH_HEAD = struct.Struct("<BI")  # timestamp mode, length of the values part

_TS_NONE, _TS_INT64, _TS_LIST, _ARROW = 0, 1, 2, 3
#: values part of a batch of named Rows of one schema: column-wise (numpy for int/float columns)
_ROWS = 0x10
_COLUMN_DTYPES = {int: "<i8", float: "<f8"}
_row_classes: dict[tuple, type] = {}

#: socket buffer size asked of the kernel (it may grant less)
SOCKET_BUFFER = 4 << 20
_RECV_CHUNK = 1 << 20


def encode_batch(values: Any, timestamps: Any) -> bytes:
    """One batch as bytes: native serde for records, an int64 array for timestamps."""
    parts = encode_batch_parts(values, timestamps)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def encode_batch_parts(values: Any, timestamps: Any) -> list:
    """One batch as the buffers :meth:`Peer.send` writes one after another (what
    :func:`encode_batch` joins): an Arrow record batch is written once, into a buffer of its
    exact IPC size, and goes out with its timestamps array without further copies."""
    if not isinstance(values, list) and hasattr(values, "schema"):
        import pyarrow as pa

        schema = values.schema
        mock = pa.MockOutputStream()
        with pa.ipc.new_stream(mock, schema) as writer:
            writer.write_batch(values)
        data = pa.allocate_buffer(mock.size())
        with pa.ipc.new_stream(pa.FixedSizeBufferWriter(data), schema) as writer:
            writer.write_batch(values)
        parts = [_BATCH_HEAD.pack(_ARROW, data.size), memoryview(data)]
        if timestamps is not None:
            ts = np.array(timestamps, dtype=np.int64)  # a copy: the caller may reuse its array
            if len(ts):
                parts.append(memoryview(ts).cast("B"))
        return parts
    return [_encode_record_batch(values, timestamps)]


def _encode_record_batch(values: list, timestamps: Any) -> bytes:
    data = _encode_rows(values)
    rows = 0
    if data is None:
        data = dumps_batch(values)
    else:
        rows = _ROWS
    if timestamps is None:
        return _BATCH_HEAD.pack(_TS_NONE | rows, len(data)) + data
    try:
        ts = np.asarray(timestamps, dtype=np.int64).tobytes()
        mode = _TS_INT64
    except (TypeError, ValueError, OverflowError):  # some records without a timestamp
        ts = dumps_batch(list(timestamps))
        mode = _TS_LIST
    return _BATCH_HEAD.pack(mode | rows, len(data)) + data + ts


def _encode_rows(values: list) -> bytes | None:
    """Rows of one named schema (``row_class``), column by column; None when they are not."""
    if len(values) < 8:
        return None
    cls = type(values[0])
    names = getattr(cls, "_fields", None)
    if names is None or "_fields" not in cls.__dict__ or not isinstance(values[0], tuple):
        return None
    if set(map(type, values)) != {cls} or any(map(vars, values)):  # one class, no per-row kind
        return None
    columns = []
    for col in zip(*values, strict=True):
        types = set(map(type, col))
        dtype = _COLUMN_DTYPES.get(types.pop()) if len(types) == 1 else None
        if dtype is not None:
            try:
                columns.append((dtype, np.array(col, dtype=dtype).tobytes()))
                continue
            except OverflowError:  # an int beyond int64
                pass
        columns.append(("", dumps_batch(list(col))))
    return dumps_batch([list(names), columns])


def _decode_rows(data: bytes) -> list:
    names, columns = loads_batch(data)
    key = tuple(names)
    cls = _row_classes.get(key)
    if cls is None:
        from flinkcore.common.types import row_class

        cls = _row_classes[key] = row_class(key)
    cols = [np.frombuffer(raw, dtype=dtype) if dtype else loads_batch(raw) for dtype, raw in columns]
    return rows_from_columns(cls, cols)


def decode_batch(payload: memoryview) -> tuple[Any, list | None]:
    mode, n = _BATCH_HEAD.unpack_from(payload, 0)
    start = _BATCH_HEAD.size
    data = payload[start : start + n]
    rest = payload[start + n :]
    if mode == _ARROW:
        import pyarrow as pa

        values = pa.ipc.open_stream(pa.py_buffer(data)).read_next_batch()
        return values, (np.frombuffer(bytes(rest), dtype=np.int64) if len(rest) else None)
    if mode & _ROWS:
        values = _decode_rows(bytes(data))
        mode &= ~_ROWS
    else:
        values = loads_batch(data)
    if mode == _TS_NONE:
        return values, None
    if mode == _TS_INT64:
        return values, np.frombuffer(rest, dtype=np.int64).tolist()
    return values, loads_batch(bytes(rest))


def encode_i64(v: int) -> bytes:
    return _I64.pack(v)


def decode_i64(payload: memoryview) -> int:
    return _I64.unpack_from(payload, 0)[0]


def encode_control(message: Any) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def decode_control(payload: memoryview) -> Any:
    return pickle.loads(payload)


class Peer:
    """One end of the socket to another process, with an outgoing queue."""

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        sock.setblocking(False)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            except OSError:
                pass
        self._out: deque[bytes | memoryview] = deque()
        self._in = bytearray()
        self.closed = False
        #: the other process closed its end (exited or died); set by receive()
        self.eof = False
        self.bytes_sent = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def pending_output(self) -> bool:
        return bool(self._out)

    def send(self, kind: int, channel: int, payload: Any = b"") -> None:
        """Queue one frame and write as much as the socket takes now. ``payload`` is bytes, or a
        list of byte buffers (e.g. from :func:`encode_batch_parts`) sent as one payload."""
        if self.closed:
            return
        if type(payload) is list:
            size = sum(map(len, payload))
            self._out.append(_HEADER.pack(size, kind, channel))
            self._out.extend(p for p in payload if len(p))
        else:
            size = len(payload)
            self._out.append(_HEADER.pack(size, kind, channel))
            if payload:
                self._out.append(payload)
        self.bytes_sent += _HEADER.size + size
        self.flush()

    def flush(self) -> None:
        """Write queued frames until the socket would block."""
        out = self._out
        while out:
            try:
                if len(out) > 1:
                    n = self.sock.sendmsg(list(out)[:64])
                else:
                    n = self.sock.send(out[0])
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.EBADF):
                    self.closed = True
                    out.clear()
                    return
                raise
            while n:
                head = out[0]
                if n >= len(head):
                    n -= len(head)
                    out.popleft()
                else:
                    out[0] = memoryview(head)[n:]
                    n = 0

    def receive(self) -> list[tuple[int, int, memoryview]]:
        """Every complete frame readable now; sets :attr:`eof` when the other end closed."""
        buf = self._in
        eof = False
        while True:
            try:
                chunk = self.sock.recv(_RECV_CHUNK)
            except BlockingIOError:
                break
            except ConnectionResetError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            buf += chunk
            if len(chunk) < _RECV_CHUNK:
                break
        frames = []
        pos, end = 0, len(buf)
        hsize = _HEADER.size
        bounds = []
        while end - pos >= hsize:  # the complete frames, found from the headers alone
            length, kind, channel = _HEADER.unpack_from(buf, pos)
            if end - pos - hsize < length:
                break
            bounds.append((kind, channel, pos + hsize, pos + hsize + length))
            pos += hsize + length
        if pos:
            # the frames keep the received buffer (no copy of it); an incomplete frame's bytes
            # after them start the next one
            self._in = bytearray(memoryview(buf)[pos:]) if pos < end else bytearray()
            view = memoryview(buf)
            frames = [(kind, channel, view[a:b]) for kind, channel, a, b in bounds]
        if eof:
            self.eof = True
        return frames

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
