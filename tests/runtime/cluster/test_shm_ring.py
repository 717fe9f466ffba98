"""The shared-memory ring (flinkcore._core.ring) between real processes: frames arrive whole, in
order and in place, a full ring holds its writer and an empty one its reader asleep (not
spinning) until the other side moves, and a killed peer ends the wait instead of hanging it.

Each cross-process test forks a peer that gets the ring over a Unix socket (SCM_RIGHTS), as a
worker would, and keeps that socket as the peer whose hang-up means the other side is gone."""

from __future__ import annotations

import os
import random
import select
import signal
import socket
import time
import zlib

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recovery_support import fork_child, join_child

from flinkcore._core.ring import FRAME_HEADER, Ring
from flinkcore.runtime.cluster import wire

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="shared-memory rings need Linux")


def _payload(i: int, size: int) -> bytes:
    return (
        bytes((i * 7 + j) & 0xFF for j in range(size))
        if size < 64
        else (i.to_bytes(8, "little") * size)[:size]
    )


def _fork(fn, *args) -> tuple[int, socket.socket]:
    """A child running fn(sock, *args) on its end of a socketpair; exit status 0 when it returned."""
    mine, theirs = socket.socketpair()

    def child():
        mine.close()
        fn(theirs, *args)

    pid = fork_child(child)
    theirs.close()
    return pid, mine


def _state_and_cpu(pid: int) -> tuple[str, int]:
    """The process's state letter (R running, S sleeping ...) and its CPU clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[11]) + int(fields[12])


def _assert_asleep(pid: int, seconds: float = 0.5) -> None:
    """The process falls asleep and sleeps (not spins) for `seconds`: never seen running again,
    almost no CPU used."""
    end = time.monotonic() + 10
    while _state_and_cpu(pid)[0] != "S" and time.monotonic() < end:
        time.sleep(0.01)
    _, cpu0 = _state_and_cpu(pid)
    states = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        states.add(_state_and_cpu(pid)[0])
        time.sleep(0.02)
    _, cpu1 = _state_and_cpu(pid)
    ticks = os.sysconf("SC_CLK_TCK")
    assert states == {"S"}, states
    assert cpu1 - cpu0 < ticks * seconds * 0.2, (cpu1 - cpu0, ticks)


def _write_frames(sock: socket.socket, frames: list[tuple[int, int]]) -> None:
    ring = Ring.receive(sock)
    with ring.writer(peer=sock) as w:
        ring.close()
        for tag, size in frames:
            w.write(_payload(tag, size), tag=tag, timeout=30)


def _read_all(reader, hold: int = 0, rng: random.Random | None = None) -> list[tuple[int, bytes]]:
    """Every frame until the end, as (tag, bytes); holds up to `hold` frames, released in a random
    order but none held past 4 * hold later frames (space comes free only up to the oldest frame
    held: a reader that holds one while it waits for more can fill the ring)."""
    out, held = [], []
    for frame in reader:
        out.append((frame.tag, bytes(frame)))
        held.append((len(out), frame))
        if len(held) > hold:
            oldest = len(out) - held[0][0] > 4 * hold
            held.pop(0 if oldest or rng is None else rng.randrange(len(held)))[1].release()
    for _, frame in held:
        frame.release()
    return out


def test_frames_of_every_size_around_the_wrap_point():
    """On the smallest ring, frames of every size from empty to the largest, in an order that puts
    a frame's end on every 16-byte place before the end of the ring: the frames that do not fit
    wrap behind a skip marker, and each arrives whole."""
    ring = Ring.create(4096)
    reader = ring.reader()
    max_frame = reader.max_frame
    assert max_frame == 4096 - FRAME_HEADER
    sizes = list(range(0, 300)) + list(range(max_frame - 300, max_frame + 1)) + list(range(0, max_frame, 37))
    frames = list(enumerate(sizes))
    pid, sock = _fork(_write_frames, frames)
    reader = ring.reader(peer=sock)
    ring.send(sock)
    ring.close()
    got = _read_all(reader)
    assert join_child(pid) == 0
    assert [t for t, _ in got] == [t for t, _ in frames]
    for (tag, size), (_, data) in zip(frames, got, strict=True):
        assert data == _payload(tag, size), (tag, size)
    assert reader.eof and reader.held == 0


def test_many_frames_in_order_with_checksums_released_out_of_order():
    """100k frames of random sizes (empty ones among them), each carrying its crc32 as its tag; the
    reader holds up to 8 frames and releases them in a random order."""

    def write(sock):
        ring = Ring.receive(sock)
        rng = np.random.default_rng(7)
        sizes = rng.integers(0, 3000, 100_000)
        sizes[::97] = 0
        data = rng.integers(0, 256, 6000, dtype=np.uint8).tobytes()
        with ring.writer(peer=sock) as w:
            for i, size in enumerate(sizes.tolist()):
                head = i.to_bytes(8, "little") if size >= 8 else b""
                body = data[i % 3000 : i % 3000 + size - len(head)]
                w.write([head, body], tag=zlib.crc32(body, zlib.crc32(head)), timeout=30)

    pid, sock = _fork(write)
    ring = Ring.create(256 << 10)  # up to 33 frames of 3 KB between the oldest held and the newest
    reader = ring.reader(peer=sock)
    ring.send(sock)
    ring.close()
    got = _read_all(reader, hold=8, rng=random.Random(3))
    assert join_child(pid) == 0
    assert len(got) == 100_000
    sizes = np.random.default_rng(7).integers(0, 3000, 100_000)
    sizes[::97] = 0
    for i, (tag, data) in enumerate(got):
        assert len(data) == sizes[i] and zlib.crc32(data) == tag, i
        if len(data) >= 8:
            assert int.from_bytes(data[:8], "little") == i


def test_empty_frames_and_empty_parts():
    ring = Ring.create(4096)
    w, r = ring.writer(), ring.reader()
    for i in range(1000):  # 1000 empty frames pass through a ring of 256 frame headers
        w.write([], tag=i, timeout=5)
        w.write([b"", memoryview(b""), np.zeros(0, np.int64)], tag=i, timeout=5)
        assert [(f.tag, len(f)) for f in (r.try_read(), r.try_read())] == [(i, 0), (i, 0)]
    assert r.try_read() is None and not r.eof
    w.close()
    assert r.read() is None and r.eof


def test_frame_larger_than_the_ring_is_refused_with_its_limit():
    ring = Ring.create(4096)
    w, r = ring.writer(), ring.reader()
    with pytest.raises(
        ValueError, match=r"frame of 4081 bytes does not fit a ring of 4096 bytes \(at most 4080"
    ):
        w.write([bytes(4000), bytes(81)])
    w.write(bytes(range(256)) * 15 + bytes(range(240)), timeout=5)  # the largest frame, on a fresh ring
    frame = r.read(timeout=5)
    assert len(frame) == 4080 and bytes(frame)[-240:] == bytes(range(240))
    frame.release()
    w.write(b"x" * 100, timeout=5)  # a small frame: the next largest one wraps
    r.read(timeout=5).release()
    # the largest frame once more: it waits for the reader to pass the skip marker to the end
    assert not w.try_write(bytes(4080))
    assert r.try_read() is None
    assert w.try_write(bytes(4080))
    assert len(r.read(timeout=5)) == 4080


@pytest.mark.parametrize("size", [100, (128 << 10) - 1, 128 << 10, (3 << 20) + 37])
def test_large_frames_stream_in_and_out_byte_for_byte(size):
    """Parts of 128 KiB and more are written into the ring past the caches, and copy_to copies a
    frame of that size out the same way (non-temporal stores on x86-64): every byte arrives, from
    parts and into buffers at any alignment, and a copy needs a buffer of the frame's size."""
    rng = np.random.default_rng(size)
    data = rng.integers(0, 256, size + 64, dtype=np.uint8)
    ring = Ring.create(8 << 20)
    w, r = ring.writer(), ring.reader()
    for skew in (0, 1, 8, 13):  # the part starts `skew` bytes into an aligned array
        part = data[skew : skew + size]
        want = b"h" * skew + part.tobytes()
        w.write([b"h" * skew, part], tag=skew, timeout=5)
        frame = r.read(timeout=5)
        assert bytes(frame) == want
        into = np.empty(len(want) + 3, np.uint8)[3:]  # a destination off alignment
        frame.copy_to(into)
        assert into.tobytes() == want
        with pytest.raises(ValueError, match=f"a buffer of {len(want) + 1} bytes for a frame of {len(want)}"):
            frame.copy_to(np.empty(len(want) + 1, np.uint8))
        frame.release()
        with pytest.raises(BufferError):
            frame.copy_to(into)


def test_frames_are_in_place_and_their_space_waits_for_every_view():
    """A frame is read without a copy; its space stays the frame's while a buffer made from it
    lives, even after release(), and frames released out of order free nothing until the first
    is released too."""
    ring = Ring.create(4096)
    w, r = ring.writer(), ring.reader()
    w.write(np.arange(250, dtype=np.int64), timeout=5)
    frame = r.read(timeout=5)
    view = np.frombuffer(frame, dtype=np.int64)
    assert not view.flags.writeable
    frame.release()
    assert frame.released and r.held == 1
    with pytest.raises(BufferError):
        memoryview(frame)
    assert not w.try_write(bytes(3000))  # the frame's 2000 bytes are still taken
    assert view.sum() == sum(range(250))
    del view
    assert r.held == 0
    assert r.try_read() is None  # passes the skip marker the failed write left to the end
    assert w.try_write(bytes(3000))
    r.read(timeout=5).release()

    w.write(b"a" * 1000, tag=1, timeout=5)
    w.write(b"b" * 1000, tag=2, timeout=5)
    a, b = r.read(timeout=5), r.read(timeout=5)
    b.release()
    assert not w.try_write(bytes(2500))
    a.release()
    assert w.try_write(bytes(2500))
    with r.read(timeout=5) as c:
        assert len(c) == 2500
    assert r.held == 0


def test_runtime_frames_decode_in_place_from_the_ring():
    """A columnar batch written as wire.encode_batch_parts' parts decodes from the frame itself:
    the columns are views of the ring, and the frame's space is held as long as
    the batch lives."""
    n = 16384
    key = np.arange(n, dtype=np.int64)
    batch = pa.RecordBatch.from_arrays(
        [pa.array(key), pa.array(key * 0.5), pa.array(key // 1000)], ["k", "v", "ts"]
    )
    ring = Ring.create(1 << 20)
    w, r = ring.writer(), ring.reader()
    w.write(wire.encode_batch_parts(batch, batch.column(2).to_numpy()), tag=wire.BATCH, timeout=5)
    frame = r.read(timeout=5)
    start = np.frombuffer(frame, np.uint8).ctypes.data
    values, ts = wire.decode_batch(memoryview(frame))
    frame.release()
    assert values.equals(batch) and (ts == key // 1000).all()
    assert start % FRAME_HEADER == 0
    for column in values.columns:  # in the frame, 8-byte aligned (as wire lays them out)
        address = column.buffers()[1].address
        assert start <= address < start + len(frame) and address % 8 == 0
    assert r.held == 1
    del values, ts, column
    assert r.held == 0


def test_full_ring_holds_the_writer_asleep_until_the_reader_releases():
    """Four frames fill the ring; the fifth write sleeps (no CPU, no spinning) while the reader
    holds the first frame, and goes through once it is released."""
    ring = Ring.create(4096)
    size = 1024 - FRAME_HEADER

    def write(sock):
        ring = Ring.receive(sock)
        w = ring.writer(peer=sock)
        for i in range(5):
            w.write(bytes([i]) * size, tag=i, timeout=30)
            sock.sendall(bytes([i]))
        w.close()

    pid, sock = _fork(write)
    reader = ring.reader(peer=sock)
    ring.send(sock)
    ring.close()
    got = b""
    while len(got) < 4:
        got += sock.recv(10)
    assert got == bytes([0, 1, 2, 3])
    first = reader.read(timeout=5)
    _assert_asleep(pid)
    assert select.select([sock], [], [], 0)[0] == []  # the fifth write did not go through
    first.release()
    assert sock.recv(10) == bytes([4])
    assert [f.tag for f in [first, *reader]] == [0, 1, 2, 3, 4]
    assert join_child(pid) == 0


def test_reader_waits_in_select_until_the_writer_writes():
    """The reader's eventfd is readable in select only once the writer wrote; until then the
    reader's process sleeps in select. A writer waits on its own eventfd for space the same way."""

    def write(sock):
        ring = Ring.receive(sock)
        w = ring.writer(peer=sock)
        assert sock.recv(1) == b"g"
        w.write(b"hello", tag=1)
        assert sock.recv(1) == b"g"
        w.write(bytes(3000), tag=2)
        # the ring (4096) has no room for another 3000 bytes until the reader releases
        assert not w.try_write(bytes(3000))
        assert w.arm(3000)
        sock.sendall(b"w")
        assert select.select([w], [], [], 30)[0] == [w]
        w.disarm()
        assert w.try_write(bytes(3000), tag=3)
        w.close()

    pid, sock = _fork(write)
    ring = Ring.create(4096)
    reader = ring.reader(peer=sock)
    ring.send(sock)
    ring.close()
    assert reader.try_read() is None
    assert reader.arm()
    assert select.select([reader], [], [], 0.2)[0] == []  # nothing written: not readable
    sock.sendall(b"g")
    assert select.select([reader], [], [], 30)[0] == [reader]
    reader.disarm()
    frame = reader.try_read()
    assert bytes(frame) == b"hello" and frame.tag == 1
    frame.release()
    assert reader.arm()
    sock.sendall(b"g")
    assert select.select([reader], [], [], 30)[0] == [reader]
    reader.disarm()
    big = reader.try_read()
    assert big.tag == 2
    assert reader.try_read() is None  # no frame yet (perhaps the skip marker before the next)
    assert sock.recv(1) == b"w"  # the writer sleeps in select for space
    _assert_asleep(pid, 0.3)
    big.release()
    assert reader.read(timeout=30).tag == 3
    assert reader.read(timeout=30) is None
    assert join_child(pid) == 0


def test_reader_sleeps_in_read_until_a_frame_comes():
    """A blocking read sleeps (the writer watches its reader's process) and wakes on the frame."""

    def write(sock):
        ring = Ring.receive(sock)
        w = ring.writer(peer=sock)
        assert sock.recv(1) == b"r"  # the reader is about to read
        time.sleep(0.05)
        _assert_asleep(os.getppid(), 0.3)
        w.write(b"late", tag=9)
        w.close()

    pid, sock = _fork(write)
    ring = Ring.create(4096)
    reader = ring.reader(peer=sock)
    ring.send(sock)
    ring.close()
    sock.sendall(b"r")
    frame = reader.read(timeout=30)
    assert bytes(frame) == b"late" and frame.tag == 9
    assert reader.read(timeout=30) is None
    assert join_child(pid) == 0


def test_a_killed_writer_ends_the_readers_wait_after_its_frames():
    def write(sock):
        ring = Ring.receive(sock)
        w = ring.writer(peer=sock)
        for i in range(3):
            w.write(b"frame %d" % i, tag=i)
        sock.sendall(b"3")
        time.sleep(60)  # never closes the ring: killed here

    pid, sock = _fork(write)
    ring = Ring.create(4096)
    reader = ring.reader(peer=sock)
    ring.send(sock)
    ring.close()
    assert sock.recv(1) == b"3"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert [bytes(f) for f in (reader.read(timeout=30) for _ in range(3))] == [
        b"frame 0",
        b"frame 1",
        b"frame 2",
    ]
    with pytest.raises(ConnectionResetError, match="writer is gone"):
        reader.read(timeout=30)


def test_a_killed_reader_ends_the_writers_wait():
    def read(sock):
        ring = Ring.receive(sock)
        ring.reader(peer=sock)
        sock.sendall(b"r")
        time.sleep(60)  # reads nothing: the ring fills

    pid, sock = _fork(read)
    ring = Ring.create(4096)
    writer = ring.writer(peer=sock)
    ring.send(sock)
    ring.close()
    assert sock.recv(1) == b"r"
    for _ in range(4):
        writer.write(bytes(1000), timeout=30)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    with pytest.raises(ConnectionResetError, match="reader is gone"):
        writer.write(bytes(1000), timeout=30)


def test_a_closed_reader_fails_the_writer_and_without_a_peer_a_timeout_bounds_the_wait():
    ring = Ring.create(4096)
    w, r = ring.writer(), ring.reader()
    with pytest.raises(TimeoutError):
        r.read(timeout=0.05)
    for _ in range(4):
        w.write(bytes(1000), timeout=5)
    with pytest.raises(TimeoutError):
        w.write(bytes(1000), timeout=0.05)
    r.close()
    with pytest.raises(BrokenPipeError, match="reader closed"):
        w.write(b"x", timeout=5)
    with pytest.raises(ValueError, match="reader is closed"):
        r.read()


def test_ring_fds_are_checked():
    with pytest.raises(ValueError, match="power of two"):
        Ring.create(5000)
    fd = os.memfd_create("not-a-ring")
    os.ftruncate(fd, 4096 + 8192)
    with pytest.raises(ValueError, match="not a ring"):
        Ring((fd, os.eventfd(0), os.eventfd(0))).reader()


def test_a_frame_dropped_in_a_forked_copy_stays_held_by_its_reader():
    """A process forked while a frame was held has a copy of the frame object; dropping that copy
    must not release the frame under the process that read it."""
    ring = Ring.create(4096)
    w, r = ring.writer(), ring.reader()
    w.write(b"x" * 100, timeout=5)
    frames = [r.read(timeout=5)]
    pid = os.fork()
    if pid == 0:
        try:
            frames.clear()
        finally:
            os._exit(0)
    assert join_child(pid) == 0
    frames[0].release()  # RuntimeError if the child had released it
    assert r.held == 0


class _RingModel:
    """The ring's space accounting in plain Python (the reference for fc_ring): byte counters that
    only grow, 16-byte headers, frames padded to 16 bytes, a skip marker where a frame would
    wrap (published on its own once its space is free), the tail moved over released frames and
    skip markers up to the read position."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.head = self.tail = self.read = 0
        self.entries: dict[int, list] = {}  # position -> [span, is frame, released, size, tag]

    @staticmethod
    def span(size: int) -> int:
        return FRAME_HEADER + -(-size // FRAME_HEADER) * FRAME_HEADER

    def try_write(self, size: int, tag: int) -> bool:
        need = self.span(size)
        contig = self.capacity - self.head % self.capacity
        if contig < need:
            if self.head + contig - self.tail > self.capacity:
                return False
            self.entries[self.head] = [contig, False, False, 0, 0]
            self.head += contig
        if self.head + need - self.tail > self.capacity:
            return False
        self.entries[self.head] = [need, True, False, size, tag]
        self.head += need
        return True

    def try_read(self) -> tuple[int, int, int] | None:
        while self.read < self.head:
            pos = self.read
            span, is_frame, _, size, tag = self.entries[pos]
            self.read += span
            if is_frame:
                return pos, size, tag
            self._advance()
        return None

    def release(self, pos: int) -> None:
        self.entries[pos][2] = True
        if pos == self.tail:
            self._advance()

    def _advance(self) -> None:
        while self.tail != self.read and (not self.entries[self.tail][1] or self.entries[self.tail][2]):
            self.tail += self.entries.pop(self.tail)[0]


_SIZES = st.one_of(
    st.integers(0, 64),
    st.integers(0, 4096 - FRAME_HEADER),
    st.sampled_from([1024 - FRAME_HEADER, 2048 - FRAME_HEADER, 4096 - FRAME_HEADER, 2000, 2032, 2048]),
)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("write"), _SIZES),
        st.tuples(st.just("read"), st.just(0)),
        st.tuples(st.just("release"), st.integers(0, 7)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_ring_space_follows_the_reference_model(ops):
    """Any sequence of writes, reads and releases (in any order) on the smallest ring: a write
    goes through exactly when the model has room for it, reads return the model's frames, and
    no frame held is ever overwritten."""
    ring = Ring.create(4096)
    w, r = ring.writer(), ring.reader()
    model = _RingModel(4096)
    held: list[tuple[object, int, bytes]] = []  # (frame, model position, its bytes)
    for tag, (op, arg) in enumerate(ops):
        if op == "write":
            data = _payload(tag, arg)
            assert w.try_write(data, tag=tag) == model.try_write(arg, tag)
        elif op == "read":
            frame, expected = r.try_read(), model.try_read()
            if expected is None:
                assert frame is None
            else:
                pos, size, want = expected
                assert (len(frame), frame.tag) == (size, want)
                held.append((frame, pos, _payload(want, size)))
        elif held:
            frame, pos, _ = held.pop(arg % len(held))
            frame.release()
            model.release(pos)
        for frame, _, data in held:
            assert bytes(frame) == data
    assert r.held == len(held)
