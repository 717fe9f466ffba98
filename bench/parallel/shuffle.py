"""Shuffle throughput between two processes: records/s and MB/s through the exchange's wire
format (native serde batches of 1024 ``(int, float, int)`` records) over the transports.

    .venv/bin/python bench/parallel/shuffle.py [--records 2000000]

``socketpair`` is what the runtime uses (one Unix stream socket per pair of processes, frames
with credits). ``pipe`` is the same frames over an ``os.pipe``. ``raw`` numbers move the
encoded bytes only (no encode/decode) to show the transport's ceiling. Each measurement is the
receiver's wall-clock from the first to the last byte; median of 3.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

import numpy as np

from flinkcore.runtime.cluster import wire

BATCH = 1024


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


def _send_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def run(transport: str, batches: list, encoded: list[bytes], decode: bool) -> tuple[float, int]:
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
    total = sum(len(e) + 9 for e in encoded)
    pid = os.fork()
    if pid == 0:  # the sender
        os.close(r)
        for (values, ts), data in zip(batches, encoded, strict=True):
            payload = wire.encode_batch(values, ts) if decode else data
            _send_all(w, wire._HEADER.pack(len(payload), wire.BATCH, 0) + payload)
        os.close(w)
        os._exit(0)
    os.close(w)
    buf = bytearray()
    records = 0
    t0 = None
    while True:
        chunk = os.read(r, 1 << 20)
        if t0 is None:
            t0 = time.perf_counter()
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
    elapsed = time.perf_counter() - t0
    os.close(r)
    os.waitpid(pid, 0)
    if not decode:
        records = sum(len(v) for v, _ in batches)
    return elapsed, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2_000_000)
    args = ap.parse_args()
    batches = _batches(args.records)
    encoded = [wire.encode_batch(v, t) for v, t in batches]
    for transport in ("socketpair", "pipe"):
        for decode in (True, False):
            times = []
            for _ in range(3):
                elapsed, total = run(transport, batches, encoded, decode)
                times.append(elapsed)
            t = statistics.median(times)
            label = "serde+transport" if decode else "raw bytes"
            spread = f"[{min(times):.3f}-{max(times):.3f}]"
            print(
                f"{transport:10s} {label:16s} {args.records / t / 1e6:6.2f} M records/s  "
                f"{total / t / 1e6:7.1f} MB/s ({total / args.records:.1f} B/record, "
                f"median of 3: {t:.3f}s {spread})",
                flush=True,
            )


if __name__ == "__main__":
    main()
