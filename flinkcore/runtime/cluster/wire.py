"""Frames between the processes of a job: a length-prefixed header and a payload.

Every pair of processes (the driver and the workers) shares one Unix stream socket. Records,
watermarks, watermark status, end of input, credits and control messages all travel as frames
on it, in order per socket, so in-band events stay in order with the records of their channel.
Sockets are non-blocking: a frame that does not fit into the kernel buffer waits in the
:class:`Peer`'s outgoing queue and is written when the socket becomes writable, so a process
never blocks in ``send`` (two processes writing to each other can never deadlock there; flow is
bounded by credits, see :mod:`flinkcore.runtime.cluster.task`).

A batch is encoded with the native serde (``dumps_batch``); timestamps as one int64 array when
every one is an int in the int64 range (``pack_int64``, read back by ``unpack_int64``), else as
values (a record without one, a float timestamp: they arrive as they were). An Arrow record
batch of fixed-width columns without nulls travels as its column buffers as they are (sent
straight from Arrow's memory, received into one buffer that the decoded columns then share); any
other Arrow batch as an Arrow IPC stream.

Between two worker processes the in-band frames (batch, watermark, status, end of input, barrier)
may travel through a shared-memory ring instead (:meth:`Peer.attach_ring`, set up by
:mod:`flinkcore.runtime.cluster.rings`), one ring per direction, with credits and control messages
still on the socket: only the order of one direction's in-band frames matters (credits flow the
other way). A writer never waits for ring space: a frame that does not fit now waits in the
Peer's ring queue (and so does everything after it), written when the reader frees space. A frame
larger than the ring goes on the socket, announced by a marker frame in the ring at its place in
the order. The socket's hang-up still tells that the other process died.
"""

from __future__ import annotations

import errno
import pickle
import select
import socket
import struct
from collections import deque
from typing import Any

import numpy as np

from flinkcore._core.rows import rows_from_columns
from flinkcore._core.serde import dumps_batch, loads_batch, pack_int64, unpack_int64
from flinkcore.runtime.operators.arrow import SchemaMemo, fixed_width

__all__ = ["Peer", "Poller", "decode_batch", "encode_batch", "encode_batch_parts", "poll"]

# frame kinds
BATCH = 1
WATERMARK = 2
STATUS = 3
END = 4
CREDIT = 5
BARRIER = 6
CONTROL = 7
#: a ring frame that stands for the next in-band frame on the socket (one too large for the ring)
ON_SOCKET = 8
#: a worker's first frame of a job to another worker it ran the last job with (reused workers), on
#: the socket and through the ring: what came before it there belongs to the last job (late
#: credits, a checkpoint's last barriers), see Peer.begin_job
SYNC = 9
#: the kinds that travel in order with the records of their channel (through a ring if there is one)
IN_BAND = frozenset((BATCH, WATERMARK, STATUS, END, BARRIER))
_CHANNEL_MASK = 0xFFFFFFFF

_HEADER = struct.Struct("<IBI")  # payload length, kind, channel id
_I64 = struct.Struct("<q")
_BATCH_HEAD = struct.Struct("<BI")  # timestamp mode, length of the values part

_TS_NONE, _TS_INT64, _TS_LIST, _ARROW, _COLUMNS = 0, 1, 2, 3, 4
#: head of a _COLUMNS batch: rows, timestamps (_TS_NONE, _TS_INT64: an array after the columns,
#: _TS_COLUMN: the column numbered next), length of the serialized schema, the timestamps' column
_COLUMNS_HEAD = struct.Struct("<qBIi")
_TS_COLUMN = 5
#: values part of a batch of named Rows of one schema: column-wise (numpy for int/float columns)
_ROWS = 0x10
_COLUMN_DTYPES = {int: "<i8", float: "<f8"}
_row_classes: dict[tuple, type] = {}

#: socket buffer size asked of the kernel (it may grant less)
SOCKET_BUFFER = 4 << 20
#: bytes a Peer reads at once into its staging buffer; a frame larger than this is read straight
#: into a buffer of its own (one copy, by the kernel) instead of through the staging buffer
_STAGE = 64 << 10


def encode_batch(values: Any, timestamps: Any) -> bytes:
    """One batch as bytes: native serde for records, an int64 array for timestamps."""
    parts = encode_batch_parts(values, timestamps)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def encode_batch_parts(values: Any, timestamps: Any) -> list:
    """One batch as the buffers :meth:`Peer.send` writes one after another (what
    :func:`encode_batch` joins). An Arrow record batch of fixed-width columns without nulls goes out
    as its column buffers themselves (Arrow data does not change once made), others are written
    once, into a buffer of their exact IPC size; the timestamps are copied (the caller may reuse
    its array)."""
    if not isinstance(values, list) and hasattr(values, "schema"):
        parts = _encode_columns(values, timestamps)
        if parts is not None:
            return parts
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
            ts = _copy_timestamps(timestamps)
            if len(ts):
                parts.append(memoryview(ts).cast("B"))
        return parts
    return [_encode_record_batch(values, timestamps)]


def _copy_timestamps(timestamps: Any) -> np.ndarray:
    """The timestamps as a new int64 array, in a buffer of Arrow's pool (which keeps freed pages:
    a fresh numpy array of a large batch is faulted in page by page)."""
    import pyarrow as pa

    ts = np.asarray(timestamps, dtype=np.int64)
    out = np.frombuffer(pa.allocate_buffer(ts.nbytes), dtype=np.int64)
    out[:] = ts
    return out


#: a schema serialized, and the item width of each column (None when one is not fixed-width); the
#: serialized schema must be this very one: equal schemas may differ in metadata (the record kind)
_schema_info = SchemaMemo(lambda s: (s.serialize().to_pybytes(), _column_widths(s)), check_metadata=True)
#: serialized schema -> (schema, [(type, item width) of each column]), on the receiving side
_read_schemas: dict[bytes, tuple[Any, list[tuple[Any, int]]]] = {}


def _column_widths(schema: Any) -> list[int] | None:
    """Bytes per value of each column, or None when one is not fixed-width."""
    widths = [fixed_width(f.type) for f in schema]
    return widths if all(widths) else None


def _pad8(n: int) -> int:
    return -n & 7


_ZEROS = bytes(8)


def _encode_columns(values: Any, timestamps: Any) -> list | None:
    """A batch of fixed-width columns without nulls as [head, schema, padding, column buffers
    (each padded to 8 bytes), timestamps]: every column starts 8-byte aligned in the payload, so
    the receiver's columns are aligned views of the frame. Timestamps that are the memory of an
    8-byte column (read zero-copy from it) are sent as that column's index, not again. None for
    other batches."""
    import pyarrow as pa

    schema = values.schema
    schema_bytes, widths = _schema_info(schema)
    if widths is None:
        return None
    rows = values.num_rows
    columns = values.columns
    if any(c.null_count for c in columns):
        return None
    head = _BATCH_HEAD.size + _COLUMNS_HEAD.size + len(schema_bytes)
    buffers = []
    for c, w in zip(columns, widths, strict=True):
        buffers.append(c.buffers()[1].slice(c.offset * w, rows * w))
    ts_mode, ts_column = _TS_NONE, 0
    if timestamps is not None and rows:
        ts_mode = _TS_INT64
        if type(timestamps) is np.ndarray and timestamps.dtype == np.int64 and timestamps.flags.c_contiguous:
            if len(timestamps) != rows:
                raise ValueError(f"{len(timestamps)} timestamps for {rows} rows")
            address = pa.py_buffer(timestamps).address  # (ndarray.ctypes costs ~5x more)
            for i, (b, w) in enumerate(zip(buffers, widths, strict=True)):
                if w == 8 and b.address == address:
                    ts_mode, ts_column = _TS_COLUMN, i
                    break
    parts: list = [
        _BATCH_HEAD.pack(_COLUMNS, 0)
        + _COLUMNS_HEAD.pack(rows, ts_mode, len(schema_bytes), ts_column)
        + schema_bytes
    ]
    if head & 7:
        parts.append(_ZEROS[: _pad8(head)])
    for b in buffers:
        size = b.size
        if size:
            parts.append(memoryview(b))
            if size & 7:
                parts.append(_ZEROS[: _pad8(size)])
    if ts_mode == _TS_INT64:
        ts = _copy_timestamps(timestamps)
        if len(ts) != rows:
            raise ValueError(f"{len(ts)} timestamps for {rows} rows")
        parts.append(memoryview(ts).cast("B"))
    return parts


def _decode_columns(payload: memoryview) -> tuple[Any, Any]:
    import pyarrow as pa

    at = _BATCH_HEAD.size
    rows, ts_mode, schema_size, ts_column = _COLUMNS_HEAD.unpack_from(payload, at)
    at += _COLUMNS_HEAD.size
    raw = bytes(payload[at : at + schema_size])
    at += schema_size
    known = _read_schemas.get(raw)
    if known is None:
        if len(_read_schemas) > 64:
            _read_schemas.clear()
        schema = pa.ipc.read_schema(pa.py_buffer(raw))
        widths = _column_widths(schema)
        if widths is None:
            raise ValueError("a columns frame of a schema with columns that are not fixed-width")
        known = _read_schemas[raw] = (schema, [(f.type, w) for f, w in zip(schema, widths, strict=True)])
    schema, columns = known
    at += _pad8(at)
    buf = pa.py_buffer(payload)
    from_buffers = pa.Array.from_buffers
    arrays = []
    starts = []
    for t, w in columns:
        size = rows * w
        starts.append(at)
        arrays.append(from_buffers(t, rows, [None, buf.slice(at, size)]))
        at += size + _pad8(size)
    values = pa.RecordBatch.from_arrays(arrays, schema=schema)
    ts = None
    if ts_mode != _TS_NONE:
        ts = np.frombuffer(
            payload, dtype=np.int64, count=rows, offset=at if ts_mode == _TS_INT64 else starts[ts_column]
        )
        ts.flags.writeable = False  # a view of the frame, as the batch's columns
    return values, ts


def _encode_record_batch(values: list, timestamps: Any) -> bytes:
    data = _encode_rows(values)
    rows = 0
    if data is None:
        data = dumps_batch(values)
    else:
        rows = _ROWS
    if timestamps is None:
        return _BATCH_HEAD.pack(_TS_NONE | rows, len(data)) + data
    ts = _int64_timestamps(timestamps)
    mode = _TS_INT64
    if ts is None:  # some records without a timestamp, or timestamps that are not ints
        ts = dumps_batch(list(timestamps))
        mode = _TS_LIST
    return _BATCH_HEAD.pack(mode | rows, len(data)) + data + ts


def _int64_timestamps(timestamps: Any) -> bytes | None:
    """The timestamps as int64 bytes when every one is an int in the int64 range (a C loop over a
    list of ints; numpy integers too, they arrive as ints), else None: they travel as values then,
    so a timestamp that is not an int (None, a float) arrives as it was."""
    if type(timestamps) is np.ndarray and timestamps.dtype == np.int64:
        return timestamps.tobytes()
    ts = pack_int64(timestamps)
    if ts is not None:
        return ts
    if all(isinstance(t, (int, np.integer)) and type(t) is not bool for t in timestamps):
        return pack_int64([int(t) for t in timestamps])  # None for an int beyond int64
    return None


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
    if mode == _COLUMNS:
        return _decode_columns(payload)
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
        return values, unpack_int64(rest)
    return values, loads_batch(bytes(rest))


def encode_i64(v: int) -> bytes:
    return _I64.pack(v)


def decode_i64(payload: memoryview) -> int:
    return _I64.unpack_from(payload, 0)[0]


def encode_control(message: Any) -> bytes:
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def decode_control(payload: memoryview) -> Any:
    return pickle.loads(payload)


def _frame_buffer(size: int) -> tuple[Any, memoryview]:
    """A writable buffer of ``size`` bytes for one frame, from Arrow's pool (64-byte aligned, so
    the columns of a _COLUMNS batch decoded from it are aligned; the pool keeps freed pages, where a
    fresh bytearray of this size is faulted in page by page)."""
    import pyarrow as pa

    data = pa.allocate_buffer(size)
    return data, memoryview(data).cast("B")


def _read_into(sock: socket.socket, view: memoryview) -> int | None:
    """Bytes read from ``sock`` into ``view``: None when none are readable now, 0 when the other
    end closed (or reset) the connection."""
    try:
        return sock.recv_into(view)
    except BlockingIOError:
        return None
    except ConnectionResetError:
        return 0


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
        #: reads of small frames land here (bytes [0, _fill) are the start of the next frame)
        self._stage = bytearray(_STAGE)
        self._stage_view = memoryview(self._stage)
        self._fill = 0
        #: a large frame being read into its own buffer: (kind, channel, buffer, view, bytes read)
        self._big: tuple | None = None
        self.closed = False
        #: the other process closed its end (exited or died); set by receive()
        self.eof = False
        self.bytes_sent = 0
        #: the shared-memory rings to the other process (None: every frame on the socket)
        self.ring_out: Any = None
        self.ring_in: Any = None
        #: the other process's ring (or its absence) is still to be read: the first byte it sends
        #: (see :func:`flinkcore.runtime.cluster.rings.connect_rings`)
        self.ring_pending = False
        #: in-band frames waiting for ring space, in order: (parts, tag)
        self._ring_queue: deque[tuple[Any, int]] = deque()
        self._ring_max = 0
        #: in-band frames that came on the socket (too large for the ring), waiting for their marker
        self._from_socket: deque[tuple[int, int, Any]] = deque()
        #: a marker was read whose frame has not come on the socket yet: the ring waits for it
        self._await_socket = False
        #: in-band frames sent through the ring, and those too large for it (sent on the socket)
        self.ring_frames = 0
        self.ring_oversize = 0
        #: the job whose SYNC frame the socket's frames are dropped until (see begin_job)
        self._sync: int | None = None
        #: the same for the ring's frames
        self._ring_sync: int | None = None

    def attach_ring(self, writer: Any, reader: Any) -> None:
        """Send in-band frames through ``writer`` (a :class:`~flinkcore._core.ring.RingWriter`)
        and take the other process's from ``reader``; either may be None (that direction stays on
        the socket)."""
        self.ring_out = writer
        self.ring_in = reader
        if writer is not None:
            self._ring_max = writer.max_frame

    def begin_job(self, job: int) -> None:
        """Start job number ``job`` with the other process, both having run the one before over
        this connection: send it our SYNC frame on the socket and through the ring, and drop what
        each delivers until its own. What comes before belongs to the last job and to no channel
        of this one: the credits for a worker's last frames, which may still be on the way when it
        finished, and, in the ring, the barriers of a checkpoint triggered as that job ended (a
        slot whose source finished sends them after its end of input; the job may end before the
        slot they go to read them). Read as the new job's, such a barrier would start a checkpoint
        alignment that never completes."""
        self._sync = job
        self._send_socket(SYNC, 0, encode_i64(job))
        if self.ring_out is not None:
            self._send_ring(SYNC, 0, encode_i64(job))
        if self.ring_in is not None:
            self._ring_sync = job
            self._await_socket = False  # a marker of the last job's: its frame is before the SYNC
            self._from_socket.clear()

    def _after_sync(self, frames: list) -> list:
        for i, (kind, _, payload) in enumerate(frames):
            if kind == SYNC and decode_i64(payload) == self._sync:
                self._sync = None
                return frames[i + 1 :]
        return []

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def pending_output(self) -> bool:
        """Bytes queued for the socket (it must be selected for writing)."""
        return bool(self._out)

    @property
    def ring_frame_bytes(self) -> int:
        """The largest frame the ring to the other process takes (0 without one)."""
        return self._ring_max if self.ring_out is not None else 0

    @property
    def pending_ring(self) -> bool:
        """Frames queued for the ring (they go out once its reader frees space)."""
        return bool(self._ring_queue)

    def send(self, kind: int, channel: int, payload: Any = b"") -> None:
        """Queue one frame and write as much as the socket (or the ring) takes now. ``payload`` is
        bytes, or a list of byte buffers (e.g. from :func:`encode_batch_parts`) sent as one
        payload."""
        if self.closed:
            return
        if self.ring_out is not None and kind in IN_BAND:
            self._send_ring(kind, channel, payload)
            return
        self._send_socket(kind, channel, payload)

    def _send_ring(self, kind: int, channel: int, payload: Any) -> None:
        size = sum(map(len, payload)) if type(payload) is list else len(payload)
        if size > self._ring_max:  # on the socket, its place in the ring's order held by a marker
            self.ring_oversize += 1
            self._send_socket(kind, channel, payload)
            payload, kind = b"", ON_SOCKET
        else:
            self.ring_frames += 1
            self.bytes_sent += size
        tag = kind << 32 | channel
        queue = self._ring_queue
        if queue or not self._try_ring(payload, tag):
            queue.append((payload, tag))

    def _try_ring(self, payload: Any, tag: int) -> bool:
        try:
            return self.ring_out.try_write(payload, tag)
        except BrokenPipeError:  # the reader closed the ring (its process exits)
            self.closed = True
            self._ring_queue.clear()
            return True

    def flush_ring(self) -> bool:
        """Write queued ring frames while the ring has room; True when none is left."""
        queue = self._ring_queue
        while queue:
            payload, tag = queue[0]
            if not self._try_ring(payload, tag):
                return False
            if queue:
                queue.popleft()
        return True

    def _send_socket(self, kind: int, channel: int, payload: Any) -> None:
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
        """Every complete frame readable now; sets :attr:`eof` when the other end closed.

        Reads go into a staging buffer that is reused (the frames found there are copied out:
        they are at most its size); a frame larger than it gets a buffer of its own, of its
        exact size, which the rest of it is read straight into. The frames a call returns never
        share memory with later reads (a decoded batch may keep its frame's buffer)."""
        if self.ring_pending:
            from flinkcore.runtime.cluster.rings import accept_ring

            if not accept_ring(self) or self.eof:
                return []
        frames: list = []
        sock = self.sock
        eof = False
        stage = self._stage
        hsize = _HEADER.size
        while True:
            big = self._big
            if big is not None:  # the rest of one large frame, straight into its own buffer
                kind, channel, data, view, got = big
                n = _read_into(sock, view[got:])
                if n is None:
                    break
                if not n:
                    eof = True
                    break
                got += n
                if got < len(view):
                    self._big = (kind, channel, data, view, got)
                    continue
                self._big = None
                frames.append((kind, channel, view))
                continue
            fill = self._fill
            n = _read_into(sock, self._stage_view[fill:])
            if n is None:
                break
            if not n:
                eof = True
                break
            end = fill + n
            pos = 0
            while end - pos >= hsize:  # the complete frames, found from the headers alone
                length, kind, channel = _HEADER.unpack_from(stage, pos)
                if end - pos - hsize < length:
                    break
                a = pos + hsize
                frames.append((kind, channel, memoryview(stage[a : a + length])))
                pos = a + length
            rest = end - pos
            if rest >= hsize:
                length, kind, channel = _HEADER.unpack_from(stage, pos)
                if hsize + length > len(stage):  # a large frame: the rest of it into its own buffer
                    data, view = _frame_buffer(length)
                    got = rest - hsize
                    view[:got] = self._stage_view[pos + hsize : end]
                    self._big = (kind, channel, data, view, got)
                    self._fill = 0
                    continue
            if rest and pos:
                stage[:rest] = stage[pos:end]
            self._fill = rest
            if n < len(stage) - fill:  # the socket had no more for now
                break
        if eof:
            self.eof = True
        if self._sync is not None and frames:
            frames = self._after_sync(frames)
        if self.ring_in is not None:
            if frames:  # in-band frames on the socket take their place in the ring's order
                other = []
                for f in frames:
                    (self._from_socket if f[0] in IN_BAND else other).append(f)
                frames = other
            self._receive_ring(frames)
        return frames

    def receive_ring(self) -> list[tuple[int, int, Any]]:
        """The in-band frames the ring holds now (when the socket has nothing to read)."""
        frames: list = []
        if self.ring_in is not None:
            self._receive_ring(frames)
        return frames

    def _receive_ring(self, frames: list) -> None:
        """Append the ring's frames (and the socket's in-band frames their markers stand for).
        Each frame is copied out and released at once: a frame held (a batch waiting for a barrier
        or its turn, an operator keeping an array) would keep the ring's space after it, and with
        it the writer, which may be waiting for this process's own progress."""
        reader = self.ring_in
        while self._ring_sync is not None:  # the last job's frames, up to our SYNC (see begin_job)
            f = reader.try_read()
            if f is None:
                return
            if f.tag >> 32 == SYNC and decode_i64(bytes(f)) == self._ring_sync:
                self._ring_sync = None
            f.release()
        from_socket = self._from_socket
        if self._await_socket:
            if not from_socket:
                return
            frames.append(from_socket.popleft())
            self._await_socket = False
        while True:
            f = reader.try_read()
            if f is None:
                return
            tag = f.tag
            kind = tag >> 32
            if kind == BATCH:  # into a buffer of Arrow's pool, as the socket's frames (past the caches)
                _, payload = _frame_buffer(f.size)
                f.copy_to(payload)
            elif kind == ON_SOCKET:
                f.release()
                if not from_socket:
                    self._await_socket = True
                    return
                frames.append(from_socket.popleft())
                continue
            else:
                payload = bytes(f)
            f.release()
            frames.append((kind, tag & _CHANNEL_MASK, payload))

    def close(self) -> None:
        self.closed = True
        self._ring_queue.clear()
        for end in (self.ring_out, self.ring_in):
            if end is not None:
                end.close()  # the reader sees the end of the frames, the writer a closed ring
        try:
            self.sock.close()
        except OSError:
            pass


def poll(
    peers: list[Peer], timeout: float, extra: list | None = None, write_only: frozenset[Peer] = frozenset()
) -> tuple[list, list]:
    """Wait up to ``timeout`` s until a peer has input (on its socket or ring), a queued write can
    go ahead, or one of ``extra`` (objects with ``fileno``) is readable; then write what is queued
    and read what is there. Returns ``[(peer, frames)]`` for the peers read (a peer whose
    :attr:`Peer.eof` is set has hung up) and the ready ``extra`` objects. The peers of
    ``write_only`` (also in ``peers``) are written to, never read.

    The rings' ends are in the select only when it may sleep: each is armed first (its eventfd
    is written by the other side only then), and one that is ready already makes it not sleep."""
    readable: list = [p for p in peers if p not in write_only] if write_only else list(peers)
    if extra:
        readable += extra
    writable = [p for p in peers if p.pending_output]
    armed: list = []
    ringed = False
    for p in peers:
        if p.ring_out is not None or p.ring_in is not None:
            ringed = True
            queue = p._ring_queue
            if queue:
                queued = len(queue)
                p.flush_ring()
                if len(queue) < queued:
                    timeout = 0  # a queued write went ahead (what the caller may be waiting for): no sleep
                elif timeout > 0:
                    if p.ring_out.arm(_queued_size(queue[0][0])):
                        armed.append(p.ring_out)
                    else:
                        timeout = 0
            if timeout > 0 and p.ring_in is not None and p not in write_only:
                if p._await_socket or p.ring_in.eof:
                    pass  # the frame it waits for comes on the socket; or the writer is gone
                elif p.ring_in.arm():
                    armed.append(p.ring_in)
                else:
                    timeout = 0
    if timeout > 0 or writable:
        r, w, _ = select.select(readable + armed, writable, [], timeout)
    else:
        r, w, _ = select.select(readable, [], [], 0)
    for end in armed:
        end.disarm()
    for p in w:
        p.flush()
    events = []
    ready_extra = []
    for obj in r:
        if isinstance(obj, Peer):
            events.append((obj, obj.receive()))
        elif extra and obj in extra:
            ready_extra.append(obj)
    if ringed:
        done = {id(p) for p, _ in events}
        for p in peers:
            if p._ring_queue:
                p.flush_ring()
            if p.ring_in is not None and id(p) not in done and p not in write_only:
                frames = p.receive_ring()
                if frames:
                    events.append((p, frames))
    return events, ready_extra


class Poller:
    """:func:`poll` over one set of peers, for a loop that polls once per round (a task's step).

    A poll that must not wait, with no ``extra`` object and nothing queued for a socket or a ring
    (every round while sources run) asks the kernel once about the sockets, registered once in a
    ``select.poll`` (not a ``select`` over objects whose ``fileno`` is a Python call), and reads
    the rings in user space; it does what :func:`poll` does then (read the sockets that have
    input, then the rings of the peers not read). Every other poll is :func:`poll`'s. Peers that
    hung up (:attr:`Peer.eof`) are left out from then on."""

    def __init__(self, peers: Any) -> None:
        self._peers = list(peers)
        self._live: list[Peer] = []
        self._fds: dict[int, Peer] = {}
        self._poll = select.poll() if hasattr(select, "poll") else None
        self._refresh()

    def _refresh(self) -> None:
        self._live = [p for p in self._peers if not p.eof]
        if self._poll is None:
            return
        for fd in self._fds:
            self._poll.unregister(fd)
        self._fds = {}
        for p in self._live:
            fd = p.sock.fileno()
            if fd >= 0:
                self._fds[fd] = p
                self._poll.register(fd, select.POLLIN)

    @property
    def peers(self) -> list[Peer]:
        """The peers that have not hung up."""
        return self._live

    def poll(self, timeout: float, extra: list | None = None) -> tuple[list, list]:
        """As :func:`poll` over the peers that have not hung up."""
        live = self._live
        if timeout > 0 or extra or self._poll is None or len(self._fds) != len(live):
            return self._done(poll(live, timeout, extra))
        for p in live:
            if p._out or p._ring_queue:
                return self._done(poll(live, timeout, extra))
        fds = self._fds
        read = [fds[fd] for fd, _ in self._poll.poll(0)]
        events: list = [(p, p.receive()) for p in read]  # (a socket read reads its ring too)
        for p in live:
            if p.ring_in is not None and p not in read:
                frames = p.receive_ring()
                if frames:
                    events.append((p, frames))
        return self._done((events, [])) if read else (events, [])

    def _done(self, result: tuple[list, list]) -> tuple[list, list]:
        for p, _ in result[0]:
            if p.eof:
                self._refresh()
                break
        return result


def _queued_size(payload: Any) -> int:
    return sum(map(len, payload)) if type(payload) is list else len(payload)
