# cython: language_level=3
"""A shared-memory ring of frames between two processes (one writer, one reader).

The ring's core is C (``_native/fc_ring``: the layout, the counters and their atomics, the
wake-ups); this module holds its file descriptors and hands out its frames:

- :class:`Ring` is the ring's three fds (the memfd and two eventfds). It is made by one process
  and reaches the other by inheritance across ``fork`` or over a Unix socket
  (:meth:`Ring.send` / :meth:`Ring.receive`, SCM_RIGHTS).
- :class:`RingWriter` copies a list of buffers (e.g. ``wire.encode_batch_parts``' parts) into the
  ring as one frame, in one call.
- :class:`RingReader` gives each frame in place (:class:`Frame`, a read-only buffer: no copy);
  its space is reusable once the frame is released (:meth:`Frame.release`, or dropped) and no
  buffer made from it is alive: an Arrow batch decoded from a frame keeps the frame's space until
  the batch is gone. Frames may be released in any order, but space comes free only up to the
  oldest frame still held: a reader that keeps one frame while it waits for more holds the ring's
  space written after it, and with it, once the ring is full, its writer.

Both ends block without busy loops (the reader when the ring is empty, the writer when it is
full) and sleep on an eventfd that is readable in ``select``/``poll`` (:meth:`~RingReader.fileno`,
:meth:`~RingReader.arm`), which the other end writes only when this one is (about to be) asleep.

A peer that exits cleanly closes its end (the reader then sees the end of the frames, the writer a
``BrokenPipeError``). A peer killed before it could is noticed through ``peer``: the fd of a
socket (or pipe) whose other end only the peer holds, e.g. the socket the ring was passed over.
When it hangs up, a waiting end raises ``ConnectionResetError`` (a reader first reads every frame
the writer published). Without ``peer``, only ``timeout`` bounds a wait.

An end is used by one thread at a time. Linux only (``NotImplementedError`` elsewhere; the module
builds everywhere, with no POSIX header, for the wheels of other systems).
"""

import os
import socket
import time

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_FillInfo, PyBuffer_Release, PyObject_GetBuffer
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport errno
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc


cdef extern from "fc_ring.h" nogil:
    enum:
        FC_RING_OK
        FC_RING_AGAIN
        FC_RING_EOF
        FC_RING_CLOSED
        FC_RING_TIMEOUT
        FC_RING_PEER_GONE
        FC_RING_INTR
        FC_RING_TOO_BIG
        FC_RING_CORRUPT
        FC_RING_ERRNO
        FC_RING_UNSUPPORTED
        FC_RING_HEADER
        FC_RING_MIN_CAPACITY
        FC_RING_MAX_CAPACITY
    ctypedef struct fc_ring_end:
        void *shm
        uint64_t capacity
        int wait_fd
    ctypedef struct fc_ring_frame:
        const uint8_t *data
        uint64_t pos
        uint32_t size
        uint64_t tag
    ctypedef struct fc_ring_part:
        const void *data
        size_t size
    int fc_ring_create(uint64_t capacity, int fds[3])
    int fc_ring_open(fc_ring_end *e, const int fds[3], int writer)
    void fc_ring_shutdown(fc_ring_end *e)
    void fc_ring_unmap(fc_ring_end *e)
    uint64_t fc_ring_max_frame(const fc_ring_end *e)
    int fc_ring_reserve(fc_ring_end *w, uint64_t size, uint8_t **dst)
    void fc_ring_put(fc_ring_end *w, uint8_t *dst, const fc_ring_part *parts, size_t n, uint64_t tag)
    void fc_copy_stream(void *dst, const void *src, size_t n)
    int fc_ring_next(fc_ring_end *r, fc_ring_frame *f)
    int fc_ring_release(fc_ring_end *r, uint64_t pos)
    int fc_ring_ready(fc_ring_end *e, uint64_t size)
    int fc_ring_arm(fc_ring_end *e, uint64_t size)
    void fc_ring_disarm(fc_ring_end *e)
    int fc_ring_wait(fc_ring_end *e, uint64_t size, int timeout_ms, int peer_fd)


#: bytes of data of a ring made without a capacity (as the runtime's socket buffers, 4 MiB)
DEFAULT_CAPACITY = 4 << 20
#: bytes of a frame's header in the ring; payloads start aligned to it
FRAME_HEADER = FC_RING_HEADER
MIN_CAPACITY = FC_RING_MIN_CAPACITY
MAX_CAPACITY = FC_RING_MAX_CAPACITY
#: frames copied with the GIL released from this many bytes on
cdef uint64_t _NOGIL_COPY = 64 << 10
cdef enum:
    _STACK_PARTS = 16  # parts of a frame that fit on the stack (more take one malloc)


cdef int _check_open(int rc) except -1:
    if rc == FC_RING_OK:
        return 0
    if rc == FC_RING_UNSUPPORTED:
        raise NotImplementedError("shared-memory rings need Linux (memfd_create, eventfd)")
    if rc == FC_RING_CORRUPT:
        raise ValueError("the fds are not a ring's: its memory is of another size, layout or version")
    raise OSError(errno, os.strerror(errno))


cdef int _peer_fd(object peer) except -2:
    if peer is None:
        return -1
    return peer if isinstance(peer, int) else peer.fileno()


cdef int _timeout_ms(object deadline) except -2:
    if deadline is None:
        return -1
    left = deadline - time.monotonic()
    return 0 if left <= 0 else min(int(left * 1000) + 1, 1 << 30)


cdef class Ring:
    """The fds of one ring: the shared memory (a memfd) and the reader's and the writer's
    eventfds. The ends made from it keep their own copies: close these once the ends are made
    (or passed on)."""

    cdef int _fds[3]
    cdef readonly uint64_t capacity

    def __cinit__(self):
        self._fds[0] = self._fds[1] = self._fds[2] = -1

    def __init__(self, fds):
        """Take ownership of ``fds`` (memfd, reader's eventfd, writer's eventfd), e.g. as
        :meth:`receive` got them."""
        fds = tuple(fds)
        if len(fds) != 3:
            raise ValueError(f"a ring is 3 fds (memfd, reader's eventfd, writer's eventfd), not {len(fds)}")
        for i in range(3):
            self._fds[i] = fds[i]
        self.capacity = os.fstat(fds[0]).st_size - 4096

    @classmethod
    def create(cls, capacity: int = DEFAULT_CAPACITY):
        """A new ring with ``capacity`` bytes of frames (a power of two, 4 KiB to 1 GiB)."""
        cdef int fds[3]
        if capacity < MIN_CAPACITY or capacity > MAX_CAPACITY or capacity & (capacity - 1):
            raise ValueError(
                f"a ring's capacity is a power of two from {MIN_CAPACITY} to {MAX_CAPACITY} bytes, not {capacity}"
            )
        _check_open(fc_ring_create(capacity, fds))
        return cls((fds[0], fds[1], fds[2]))

    @property
    def fds(self) -> tuple:
        """(memfd, reader's eventfd, writer's eventfd), for inheriting or passing on."""
        return (self._fds[0], self._fds[1], self._fds[2])

    def send(self, sock: socket.socket) -> None:
        """Pass the ring over a connected Unix socket (one byte with the fds, SCM_RIGHTS); the other
        process takes it with :meth:`receive` at the same point of the stream."""
        if self._fds[0] < 0:
            raise ValueError("the ring's fds are closed")
        socket.send_fds(sock, [b"R"], list(self.fds))

    @classmethod
    def receive(cls, sock: socket.socket):
        """The ring the other process passed with :meth:`send` (blocks until it comes)."""
        msg, fds, _, _ = socket.recv_fds(sock, 1, 3)
        if msg != b"R" or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            raise ValueError(f"expected a ring's 3 fds on the socket, got {msg!r} with {len(fds)} fds")
        return cls(fds)

    def writer(self, peer=None):
        return RingWriter(self, peer)

    def reader(self, peer=None):
        return RingReader(self, peer)

    def close(self) -> None:
        for i in range(3):
            if self._fds[i] >= 0:
                os.close(self._fds[i])
                self._fds[i] = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __dealloc__(self):
        self.close()


cdef class _End:
    cdef fc_ring_end end
    cdef int peer
    cdef bint closed
    cdef str role
    cdef long owner  # the process that opened the end (a forked copy must not move its tail)

    def __init__(self, Ring ring not None, peer=None):
        if ring._fds[0] < 0:
            raise ValueError("the ring's fds are closed")
        _check_open(fc_ring_open(&self.end, ring._fds, self.role == "writer"))
        self.peer = _peer_fd(peer)
        self.owner = os.getpid()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()  # the writer's or the reader's

    @property
    def capacity(self) -> int:
        return self.end.capacity

    @property
    def max_frame(self) -> int:
        """The largest payload of one frame (the capacity less a frame header)."""
        return fc_ring_max_frame(&self.end)

    def fileno(self) -> int:
        """The eventfd this end sleeps on: readable once the other end woke it (see :meth:`arm`)."""
        self._check()
        return self.end.wait_fd

    cdef int _check(self) except -1:
        if self.closed:
            raise ValueError(f"the ring's {self.role} is closed")
        return 0

    cdef int _arm(self, uint64_t size) except -1:
        self._check()
        return fc_ring_arm(&self.end, size)

    def disarm(self) -> None:
        """After a select/poll that :meth:`arm` prepared, whatever woke it."""
        if not self.closed:
            fc_ring_disarm(&self.end)

    cdef int _wait(self, uint64_t size, object deadline) except -1:
        """Sleep until the end is ready; raises when the peer is gone or the deadline passed."""
        cdef int rc, ms
        while True:
            ms = _timeout_ms(deadline)
            with nogil:
                rc = fc_ring_wait(&self.end, size, ms, self.peer)
            if rc == FC_RING_OK:
                return 0
            if rc == FC_RING_INTR:
                PyErr_CheckSignals()  # raises what a signal handler raised (KeyboardInterrupt ...)
                continue
            if rc == FC_RING_TIMEOUT:
                raise TimeoutError(f"the ring's {self.role} waited longer than its timeout")
            if rc == FC_RING_PEER_GONE:
                other = "reader" if self.role == "writer" else "writer"
                raise ConnectionResetError(
                    f"the ring's {other} is gone: its socket (fd {self.peer}) hung up "
                    f"without the {other} closing the ring (the process died?)"
                )
            raise OSError(errno, os.strerror(errno))


@cython.final
cdef class RingWriter(_End):
    """The writing end: each :meth:`write` puts one frame into the ring."""

    def __cinit__(self, *args, **kwargs):
        self.role = "writer"

    def write(self, parts, uint64_t tag=0, timeout=None) -> None:
        """Copy ``parts`` (a buffer, or a list or tuple of buffers, written one after another)
        into the ring as one frame with ``tag``; waits while the ring is full (``timeout``
        seconds at most: TimeoutError). ValueError for a frame larger than :attr:`max_frame`,
        BrokenPipeError once the reader closed the ring."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._write(parts, tag, True, deadline)

    def try_write(self, parts, uint64_t tag=0) -> bool:
        """As :meth:`write` without waiting: False (and nothing written) when the ring has no
        room for the frame now."""
        return self._write(parts, tag, False, None)

    def arm(self, size: int) -> bool:
        """Before sleeping in select/poll on :meth:`fileno` for room for a frame of ``size``
        bytes: True when the reader will wake it; False when there is room now (do not sleep)."""
        return self._arm(size)

    cdef bint _write(self, object parts, uint64_t tag, bint block, object deadline) except -1:
        cdef Py_buffer stack_bufs[_STACK_PARTS]
        cdef fc_ring_part stack_parts[_STACK_PARTS]
        cdef Py_buffer *bufs = stack_bufs
        cdef fc_ring_part *cparts = stack_parts
        cdef Py_ssize_t n, i, got = 0
        cdef uint64_t total = 0
        cdef uint8_t *dst
        cdef int rc
        self._check()
        seq = parts if type(parts) is list or type(parts) is tuple else (parts,)
        n = len(seq)
        if n > _STACK_PARTS:
            bufs = <Py_buffer *>malloc(n * sizeof(Py_buffer))
            cparts = <fc_ring_part *>malloc(n * sizeof(fc_ring_part))
            if bufs == NULL or cparts == NULL:
                free(bufs)
                free(cparts)
                raise MemoryError()
        try:
            for i in range(n):
                PyObject_GetBuffer(seq[i], &bufs[i], PyBUF_SIMPLE)
                got += 1
                cparts[i].data = bufs[i].buf
                cparts[i].size = bufs[i].len
                total += bufs[i].len
            while True:
                rc = fc_ring_reserve(&self.end, total, &dst)
                if rc == FC_RING_OK:
                    if total >= _NOGIL_COPY:
                        with nogil:
                            fc_ring_put(&self.end, dst, cparts, n, tag)
                    else:
                        fc_ring_put(&self.end, dst, cparts, n, tag)
                    return True
                if rc == FC_RING_AGAIN:
                    if not block:
                        return False
                    self._wait(total, deadline)
                elif rc == FC_RING_TOO_BIG:
                    raise ValueError(
                        f"a frame of {total} bytes does not fit a ring of {self.end.capacity} bytes "
                        f"(at most {fc_ring_max_frame(&self.end)} bytes a frame): make the ring larger "
                        f"or send the batch in smaller frames"
                    )
                elif rc == FC_RING_CLOSED:
                    raise BrokenPipeError("the ring's reader closed it")
                else:
                    _check_open(rc)
        finally:
            for i in range(got):
                PyBuffer_Release(&bufs[i])
            if bufs != stack_bufs:
                free(bufs)
                free(cparts)

    def close(self) -> None:
        """No more frames: the reader reads the ones written, then sees the end."""
        if not self.closed:
            self.closed = True
            fc_ring_shutdown(&self.end)
            fc_ring_unmap(&self.end)

    def __dealloc__(self):
        fc_ring_unmap(&self.end)  # without shutdown: a writer dropped unclosed is as one that died


@cython.final
cdef class RingReader(_End):
    """The reading end: frames in the order they were written, each in place."""

    cdef bint _eof
    #: frames handed out and not yet given back (their space is not reusable)
    cdef readonly Py_ssize_t held

    def __cinit__(self, *args, **kwargs):
        self.role = "reader"

    @property
    def eof(self) -> bool:
        """True once the writer closed the ring and every frame was read."""
        return self._eof

    cdef Frame _next(self, bint block, object deadline):
        cdef fc_ring_frame f
        cdef int rc
        cdef Frame frame
        self._check()
        while True:
            rc = fc_ring_next(&self.end, &f)
            if rc == FC_RING_OK:
                frame = <Frame>Frame.__new__(Frame)
                frame.reader = self
                frame.data = f.data
                frame.pos = f.pos
                frame.size = f.size
                frame.tag = f.tag
                self.held += 1
                return frame
            if rc == FC_RING_EOF:
                self._eof = True
                return None
            if rc != FC_RING_AGAIN:
                if rc == FC_RING_CORRUPT:
                    raise RuntimeError("the ring's memory holds no valid frame here: it was overwritten")
                _check_open(rc)
            if not block:
                return None
            self._wait(0, deadline)

    def read(self, timeout=None):
        """The next frame, waiting for it (``timeout`` seconds at most: TimeoutError); None when
        the writer closed the ring and every frame was read."""
        return self._next(True, None if timeout is None else time.monotonic() + timeout)

    def try_read(self):
        """The next frame if one is there now, else None (see :attr:`eof`)."""
        return self._next(False, None)

    def arm(self) -> bool:
        """Before sleeping in select/poll on :meth:`fileno`: True when the writer will wake it
        (its next frame or close); False when a frame (or the end) is there now (do not sleep)."""
        return self._arm(0)

    def __iter__(self):
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    cdef int _release(self, uint64_t pos) except -1:
        self.held -= 1
        if self.closed:
            return 0
        if fc_ring_release(&self.end, pos) != FC_RING_OK:
            raise RuntimeError("released a frame that the ring does not hold")
        return 0

    def close(self) -> None:
        """No more reading: the writer's next write raises BrokenPipeError. Frames handed out
        stay readable until they are dropped."""
        if not self.closed:
            self.closed = True
            fc_ring_shutdown(&self.end)

    def __dealloc__(self):
        fc_ring_unmap(&self.end)  # every frame is gone (each holds its reader)


@cython.final
@cython.freelist(32)
cdef class Frame:
    """One frame of a :class:`RingReader`, in the ring's memory: a read-only buffer
    (``memoryview(frame)``, ``np.frombuffer(frame)``, ``pa.py_buffer(frame)``) and its ``tag``.

    :meth:`release` gives its space back; the space is reused only once no buffer made from the
    frame is alive either (so a batch decoded from it in place stays valid as long as it lives).
    A frame that is dropped is released."""

    cdef RingReader reader
    cdef const uint8_t *data
    cdef uint64_t pos
    cdef readonly uint32_t size
    cdef readonly uint64_t tag
    cdef Py_ssize_t exports
    cdef bint release_asked
    cdef bint freed

    def __len__(self) -> int:
        return self.size

    def __getbuffer__(self, Py_buffer *buf, int flags):
        if self.release_asked:
            raise BufferError("the frame was released")
        PyBuffer_FillInfo(buf, self, <void *>self.data, self.size, 1, flags)
        self.exports += 1

    def __releasebuffer__(self, Py_buffer *buf):
        self.exports -= 1
        if self.exports == 0 and self.release_asked and not self.freed:
            self._free()

    cdef int _free(self) except -1:
        self.freed = True
        self.reader._release(self.pos)
        return 0

    def copy_to(self, dst) -> None:
        """Copy the frame into ``dst``, a writable buffer of its size; a large frame's copy writes
        past the caches (see ``fc_copy_stream``): the batch it holds is read once, and this
        core's operators keep their state in the caches."""
        cdef Py_buffer view
        if self.release_asked:
            raise BufferError("the frame was released")
        PyObject_GetBuffer(dst, &view, PyBUF_WRITABLE)
        try:
            if view.len != self.size:
                raise ValueError(f"a buffer of {view.len} bytes for a frame of {self.size}")
            with nogil:
                fc_copy_stream(view.buf, self.data, self.size)
        finally:
            PyBuffer_Release(&view)

    def release(self) -> None:
        """Done with the frame: its space is reusable once the buffers made from it are gone."""
        if self.release_asked:
            return
        self.release_asked = True
        if self.exports == 0:
            self._free()

    @property
    def released(self) -> bool:
        return self.release_asked

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __dealloc__(self):
        # not in a process forked with the frame: its reader's tail is the parent's
        if self.reader is not None and not self.freed and os.getpid() == self.reader.owner:
            try:
                self._free()
            except RuntimeError:
                pass
