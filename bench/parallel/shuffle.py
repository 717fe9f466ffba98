"""Shuffle throughput between two processes: records/s and MB/s through the exchange's wire
format (native serde batches of 1024 ``(int, float, int)`` records) over the transports.

    .venv/bin/python bench/parallel/shuffle.py [--records 2000000] [--arrow] [--repeat 5]

``socketpair`` is what the runtime uses (one Unix stream socket per pair of processes, frames
with credits): the sender's and the receiver's :class:`~flinkcore.runtime.cluster.wire.Peer`
(non-blocking sends of the encoded parts, receives into the peer's buffers) and the decode of
every batch. ``pipe`` is the same frames over an ``os.pipe`` with plain reads and writes.
``shm`` is a shared-memory ring (:mod:`flinkcore._core.ring`, ``--ring`` bytes, passed to the
sender over a socketpair as a worker would get it): the sender copies the encoded parts into the
ring in one call per frame, the receiver decodes each frame in place (no copy) and releases it.
``peer-ring`` is what the runtime does between two workers since the rings were integrated: the
Peers' rings exchanged as workers do, ``Peer.send`` into the ring (a full one queues the frame),
``wire.poll`` taking each frame out (copied into an Arrow-pool buffer and released at once, so a
batch never pins ring space) and the decode of that copy.
``raw`` numbers move the encoded bytes only (no encode/decode) to show the transport's ceiling
(the shm receiver does not touch the bytes: it gets each frame in place and releases it).
Each measurement is the receiver's wall-clock from the first to the last byte and the CPU time of
both processes (sender: all of it; receiver: from the first byte), with the receiver's page
faults and voluntary context switches (its sleeps) over the same span; the transports take turns
within each of ``--repeat`` rounds, and each figure is the median over the rounds.

``--touch``: the receiver also reads every column of each decoded Arrow batch (a sum), as the
operator after the exchange would: the shm receiver's decode makes views without reading them,
where the other receivers' data was just written by the kernel's copy.

The peer-ring receiver has no credits here: it copies out every frame the ring holds before it
decodes any, so a fast sender makes it hold (and fault in) most of the stream; the runtime's
credits bound that to ~2 MB per channel.

``--arrow``: the columnar path's frames instead, Arrow record batches of the same columns
(``key`` int64, ``value`` float64, ``ts`` int64) of ``FRAME_ROWS`` rows (the slots' frame size)
with their int64 timestamps, as ``encode_batch_parts`` writes them.
"""

from __future__ import annotations

import argparse
import os
import resource
import select
import socket
import statistics
import time

import numpy as np

from flinkcore._core.ring import DEFAULT_CAPACITY, Ring
from flinkcore.runtime.cluster import wire

BATCH = 1024
#: rows per Arrow frame (flinkcore.runtime.cluster.task.DEFAULT_FRAME_ROWS)
FRAME_ROWS = 16384


def _batches(n: int) -> list[tuple[list, list]]:
    rng = np.random.default_rng(42)
    key = rng.integers(0, 10_000, n).tolist()
    value = rng.random(n).tolist()
    ts = (np.arange(n) // 1000).tolist()
    return [
        (
            list(zip(key[i : i + BATCH], value[i : i + BATCH], ts[i : i + BATCH], strict=True)),
            ts[i : i + BATCH],
        )
        for i in range(0, n, BATCH)
    ]


def _arrow_batches(n: int) -> list[tuple]:
    import pyarrow as pa

    rng = np.random.default_rng(42)
    key = rng.integers(0, 10_000, n, dtype=np.int64)
    value = rng.random(n)
    ts = np.arange(n, dtype=np.int64) // 1000
    out = []
    for i in range(0, n, FRAME_ROWS):
        cols = [key[i : i + FRAME_ROWS], value[i : i + FRAME_ROWS], ts[i : i + FRAME_ROWS]]
        batch = pa.RecordBatch.from_arrays([pa.array(c) for c in cols], names=["key", "value", "ts"])
        out.append((batch, ts[i : i + FRAME_ROWS]))
    return out


def _send_parts(fd: int, parts: list) -> None:
    size = sum(len(p) for p in parts)
    views = [memoryview(wire._HEADER.pack(size, wire.BATCH, 0))] + [memoryview(p).cast("B") for p in parts]
    while views:
        n = os.writev(fd, views[:64])
        while n:
            if n >= len(views[0]):
                n -= len(views.pop(0))
            else:
                views[0] = views[0][n:]
                n = 0


def _send_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


#: --touch: the receiver reads every column of each decoded Arrow batch (as an operator would)
TOUCH = False


def _decode(payload) -> int:
    """Rows of one decoded batch (read through once with --touch)."""
    values, _ = wire.decode_batch(payload)
    if TOUCH and not isinstance(values, list):
        for column in values.columns:
            column.to_numpy().sum()
    return len(values)


def _usage() -> tuple[float, int, int]:
    """This process's CPU seconds, minor page faults and voluntary context switches so far."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime, u.ru_minflt, u.ru_nvcsw


def _result(t0: float, u0: tuple, pid: int) -> tuple[float, float, float, int, int]:
    """(receiver wall, sender CPU, receiver CPU, receiver faults, receiver context switches)
    once the receiver saw the last byte; reaps the sender."""
    elapsed = time.perf_counter() - t0
    u1 = _usage()
    _, _, usage = os.wait4(pid, 0)
    return elapsed, usage.ru_utime + usage.ru_stime, u1[0] - u0[0], u1[1] - u0[1], u1[2] - u0[2]


def _run_shm(batches: list, encoded: list[bytes], decode: bool, capacity: int) -> tuple:
    """Frames through a shared-memory ring; the sender gets the ring over a socketpair, whose
    hang-up would tell either side that the other died."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the sender
        b.close()
        ring = Ring.receive(a)
        writer = ring.writer(peer=a)
        ring.close()
        for (values, ts), data in zip(batches, encoded, strict=True):
            writer.write(wire.encode_batch_parts(values, ts) if decode else data, wire.BATCH)
        writer.close()
        os._exit(0)
    a.close()
    ring = Ring.create(capacity)
    reader = ring.reader(peer=b)
    ring.send(b)
    ring.close()
    records = 0
    t0 = u0 = None
    while True:
        frame = reader.read()
        if t0 is None:
            t0, u0 = time.perf_counter(), _usage()
        if frame is None:
            break
        if decode:  # the batch is a view of the frame: its space comes free when the batch goes
            records += _decode(memoryview(frame))
        frame.release()
    result = _result(t0, u0, pid)
    b.close()
    assert not decode or records == sum(len(v) for v, _ in batches)
    return result


def _run_peers(batches: list) -> tuple:
    """The runtime's frames between two Peers over a socketpair: (receiver wall, sender CPU,
    receiver CPU, receiver faults, receiver context switches)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the sender
        b.close()
        peer = wire.Peer(1, a)
        for values, ts in batches:
            peer.send(wire.BATCH, 0, wire.encode_batch_parts(values, ts))
            while peer.pending_output:
                select.select([], [peer], [])
                peer.flush()
        peer.close()
        os._exit(0)
    a.close()
    peer = wire.Peer(0, b)
    records = 0
    t0 = u0 = None
    while not peer.eof:
        select.select([peer], [], [])
        if t0 is None:
            t0, u0 = time.perf_counter(), _usage()
        for _, _, payload in peer.receive():
            records += _decode(payload)
    result = _result(t0, u0, pid)
    peer.close()
    assert records == sum(len(v) for v, _ in batches)
    return result


def _run_peer_ring(batches: list, encoded: list[bytes], decode: bool, capacity: int) -> tuple:
    """The runtime's worker-to-worker path: two Peers with a ring each way (made, passed over
    their socket and attached as workers do), frames sent with ``Peer.send`` (a full ring queues
    them) and taken with ``wire.poll`` (copied out of the ring and released)."""

    def connect(sock: socket.socket, index: int) -> wire.Peer:
        peer = wire.Peer(index, sock)
        sock.setblocking(True)
        with Ring.create(capacity) as ring:
            ring.send(sock)
            writer = ring.writer(peer=sock)
        with Ring.receive(sock) as ring:
            reader = ring.reader(peer=sock)
        sock.setblocking(False)
        peer.attach_ring(writer, reader)
        return peer

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the sender
        b.close()
        peer = connect(a, 1)
        for (values, ts), data in zip(batches, encoded, strict=True):
            peer.send(wire.BATCH, 0, wire.encode_batch_parts(values, ts) if decode else data)
            while peer.pending_ring:  # as the socketpair's sender: sleep until there is room
                wire.poll([peer], 1.0)
        peer.send(wire.END, 0)
        while peer.pending_ring or peer.pending_output:
            wire.poll([peer], 1.0)
        while not peer.eof:  # until the receiver is done (a closed ring would drop nothing, but
            wire.poll([peer], 1.0)  # the receiver's clock stops at the END)
        peer.close()
        os._exit(0)
    a.close()
    peer = connect(b, 0)
    records = 0
    t0 = u0 = None
    done = False
    while not done:
        events, _ = wire.poll([peer], 1.0)
        for _, frames in events:
            if t0 is None:
                t0, u0 = time.perf_counter(), _usage()
            for kind, _, payload in frames:
                if kind == wire.END:
                    done = True
                elif decode:
                    records += _decode(payload)
    peer.close()
    result = _result(t0, u0, pid)
    assert not decode or records == sum(len(v) for v, _ in batches)
    return result


def run(transport: str, batches: list, encoded: list[bytes], decode: bool, ring: int) -> tuple:
    """(receiver wall, sender CPU, receiver CPU) in seconds, receiver faults, context switches."""
    if transport == "socketpair" and decode:
        return _run_peers(batches)
    if transport == "peer-ring":
        return _run_peer_ring(batches, encoded, decode, ring)
    if transport == "shm":
        return _run_shm(batches, encoded, decode, ring)
    if transport == "pipe":
        r, w = os.pipe()
        try:
            import fcntl

            fcntl.fcntl(w, 1031, 1 << 20)  # F_SETPIPE_SZ: 1 MiB, as large as unprivileged allows
        except OSError:
            pass
    else:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        for s in (a, b):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, wire.SOCKET_BUFFER)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wire.SOCKET_BUFFER)
        r, w = b.detach(), a.detach()
    pid = os.fork()
    if pid == 0:  # the sender
        os.close(r)
        for (values, ts), data in zip(batches, encoded, strict=True):
            if decode and not isinstance(values, list):  # Arrow: written as separate buffers
                _send_parts(w, wire.encode_batch_parts(values, ts))
                continue
            payload = wire.encode_batch(values, ts) if decode else data
            _send_all(w, wire._HEADER.pack(len(payload), wire.BATCH, 0) + payload)
        os.close(w)
        os._exit(0)
    os.close(w)
    buf = bytearray()
    records = 0
    t0 = u0 = None
    while True:
        chunk = os.read(r, 1 << 20)
        if t0 is None:
            t0, u0 = time.perf_counter(), _usage()
        if not chunk:
            break
        buf += chunk
        pos = 0
        while len(buf) - pos >= 9:
            length, _, _ = wire._HEADER.unpack_from(buf, pos)
            if len(buf) - pos - 9 < length:
                break
            if decode:
                records += _decode(memoryview(bytes(buf[pos + 9 : pos + 9 + length])))
            pos += 9 + length
        del buf[:pos]
    result = _result(t0, u0, pid)
    os.close(r)
    return result


TRANSPORTS = ("socketpair", "pipe", "shm", "peer-ring")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--arrow", action="store_true", help="Arrow IPC frames of the columnar path")
    ap.add_argument("--repeat", type=int, default=5, help="rounds (each runs every transport once)")
    ap.add_argument("--ring", type=int, default=DEFAULT_CAPACITY, help="bytes of the shm ring")
    ap.add_argument("--transports", default=",".join(TRANSPORTS))
    ap.add_argument("--touch", action="store_true", help="the receiver reads each decoded Arrow batch")
    args = ap.parse_args()
    global TOUCH
    TOUCH = args.touch
    batches = _arrow_batches(args.records) if args.arrow else _batches(args.records)
    encoded = [wire.encode_batch(v, t) for v, t in batches]
    total = sum(len(e) + 9 for e in encoded)
    n = args.records
    cases = [(t, d) for d in (True, False) for t in args.transports.split(",")]
    runs: dict[tuple, list] = {case: [] for case in cases}
    for _ in range(args.repeat):  # the transports take turns: a slower moment hits them all
        for case in cases:
            runs[case].append(run(case[0], batches, encoded, case[1], args.ring))
    for (transport, decode), rs in runs.items():
        times = [r[0] for r in rs]
        t = statistics.median(times)
        send_cpu, recv_cpu, faults, switches = (statistics.median(r[i] for r in rs) for i in (1, 2, 3, 4))
        label = ("arrow+transport" if args.arrow else "serde+transport") if decode else "raw bytes"
        spread = f"[{min(times):.3f}-{max(times):.3f}]"
        print(
            f"{transport:10s} {label:16s} {n / t / 1e6:6.2f} M records/s  "
            f"{total / t / 1e6:7.1f} MB/s ({total / n:.1f} B/record, median of {len(rs)}: {t:.3f}s {spread}; "
            f"CPU ns/record: sender {send_cpu / n * 1e9:.1f}, receiver {recv_cpu / n * 1e9:.1f}; "
            f"receiver: {faults:.0f} page faults, {switches:.0f} sleeps)",
            flush=True,
        )


if __name__ == "__main__":
    main()
