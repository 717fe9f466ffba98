"""Shuffle throughput between two processes: records/s and MB/s through the exchange's wire
format (native serde batches of 1024 ``(int, float, int)`` records) over the transports.

    .venv/bin/python bench/parallel/shuffle.py [--records 2000000] [--arrow]

``socketpair`` is what the runtime uses (one Unix stream socket per pair of processes, frames
with credits): the sender's and the receiver's :class:`~flinkcore.runtime.cluster.wire.Peer`
(non-blocking sends of the encoded parts, receives into the peer's buffers) and the decode of
every batch. ``pipe`` is the same frames over an ``os.pipe`` with plain reads and writes.
``raw`` numbers move the encoded bytes only (no encode/decode) to show the transport's ceiling.
Each measurement is the receiver's wall-clock from the first to the last byte and the CPU time of
both processes (sender: all of it; receiver: from the first byte); median of 3.

``--arrow``: the columnar path's frames instead, Arrow record batches of the same columns
(``key`` int64, ``value`` float64, ``ts`` int64) of ``FRAME_ROWS`` rows (the slots' frame size)
with their int64 timestamps, as ``encode_batch_parts`` writes them.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import time

import numpy as np

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


def _run_peers(batches: list) -> tuple[float, float, float]:
    """The runtime's frames between two Peers over a socketpair: (receiver wall, sender CPU,
    receiver CPU) in seconds."""
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
    t0 = c0 = None
    while not peer.eof:
        select.select([peer], [], [])
        if t0 is None:
            t0, c0 = time.perf_counter(), time.process_time()
        for _, _, payload in peer.receive():
            values, _ = wire.decode_batch(payload)
            records += len(values)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    peer.close()
    _, _, usage = os.wait4(pid, 0)
    assert records == sum(len(v) for v, _ in batches)
    return elapsed, usage.ru_utime + usage.ru_stime, cpu


def run(transport: str, batches: list, encoded: list[bytes], decode: bool) -> tuple[float, float, float]:
    """(receiver wall, sender CPU, receiver CPU) in seconds."""
    if transport == "socketpair" and decode:
        return _run_peers(batches)
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
    t0 = c0 = None
    while True:
        chunk = os.read(r, 1 << 20)
        if t0 is None:
            t0, c0 = time.perf_counter(), time.process_time()
        if not chunk:
            break
        buf += chunk
        pos = 0
        while len(buf) - pos >= 9:
            length, _, _ = wire._HEADER.unpack_from(buf, pos)
            if len(buf) - pos - 9 < length:
                break
            if decode:
                values, _ = wire.decode_batch(memoryview(bytes(buf[pos + 9 : pos + 9 + length])))
                records += len(values)
            pos += 9 + length
        del buf[:pos]
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    os.close(r)
    _, _, usage = os.wait4(pid, 0)
    return elapsed, usage.ru_utime + usage.ru_stime, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--arrow", action="store_true", help="Arrow IPC frames of the columnar path")
    args = ap.parse_args()
    batches = _arrow_batches(args.records) if args.arrow else _batches(args.records)
    encoded = [wire.encode_batch(v, t) for v, t in batches]
    total = sum(len(e) + 9 for e in encoded)
    n = args.records
    for transport in ("socketpair", "pipe"):
        for decode in (True, False):
            runs = [run(transport, batches, encoded, decode) for _ in range(3)]
            times = [r[0] for r in runs]
            t = statistics.median(times)
            send_cpu = statistics.median(r[1] for r in runs)
            recv_cpu = statistics.median(r[2] for r in runs)
            label = ("arrow+transport" if args.arrow else "serde+transport") if decode else "raw bytes"
            spread = f"[{min(times):.3f}-{max(times):.3f}]"
            print(
                f"{transport:10s} {label:16s} {n / t / 1e6:6.2f} M records/s  "
                f"{total / t / 1e6:7.1f} MB/s ({total / n:.1f} B/record, median of 3: {t:.3f}s {spread}; "
                f"CPU ns/record: sender {send_cpu / n * 1e9:.1f}, receiver {recv_cpu / n * 1e9:.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
