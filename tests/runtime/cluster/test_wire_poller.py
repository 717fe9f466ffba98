"""wire.Poller: a task loop's poll over a fixed set of peers reads what wire.poll reads.

Real peers on socketpairs, one pair with shared-memory rings (in-band frames through the ring,
credits on the socket), as between two workers."""

import os
import socket
import time

import pytest

from flinkcore.runtime.cluster import wire

ring = pytest.importorskip("flinkcore._core.ring")
pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="rings need memfd_create")


@pytest.fixture
def pairs():
    """(ours, theirs) for a driver-like peer (socket only) and a worker-like peer (rings); closed
    after the test."""
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    ours = [wire.Peer(0, a), wire.Peer(2, c)]
    theirs = [wire.Peer(1, b), wire.Peer(1, d)]
    with ring.Ring.create(1 << 16) as r1, ring.Ring.create(1 << 16) as r2:
        ours[1].attach_ring(r1.writer(peer=c), r2.reader(peer=c))
        theirs[1].attach_ring(r2.writer(peer=d), r1.reader(peer=d))
    yield ours, theirs
    for p in ours + theirs:
        p.close()


def _kinds(events):
    return {p.index: [(k, ch, bytes(pl)) for k, ch, pl in frames] for p, frames in events}


def test_a_poll_that_must_not_wait_reads_sockets_and_rings_in_order(pairs):
    ours, theirs = pairs
    poller = wire.Poller(ours)
    assert poller.poll(0) == ([], [])
    theirs[0].send(wire.CREDIT, 3, wire.encode_i64(2))
    theirs[1].send(wire.WATERMARK, 5, wire.encode_i64(7))  # ring
    theirs[1].send(wire.CREDIT, 6, wire.encode_i64(1))  # socket
    theirs[1].send(wire.END, 5)  # ring, after the watermark
    got = _kinds(poller.poll(0)[0])
    assert got[0] == [(wire.CREDIT, 3, wire.encode_i64(2))]
    assert got[2] == [
        (wire.CREDIT, 6, wire.encode_i64(1)),
        (wire.WATERMARK, 5, wire.encode_i64(7)),
        (wire.END, 5, b""),
    ]
    # only the ring has something: no socket is read
    theirs[1].send(wire.STATUS, 5, b"\x01")
    assert _kinds(poller.poll(0)[0]) == {2: [(wire.STATUS, 5, b"\x01")]}
    assert poller.poll(0) == ([], [])


def test_queued_output_is_written_and_waiting_polls_still_wait_for_input(pairs):
    ours, theirs = pairs
    poller = wire.Poller(ours)
    big = b"x" * (8 << 20)  # more than the socket buffers take at once
    ours[0].send(wire.CONTROL, 0, big)
    assert ours[0].pending_output
    received = b""
    while ours[0].pending_output or len(received) < len(big):
        poller.poll(0)  # writes what is queued (the fallback to wire.poll)
        for _, frames in wire.poll([theirs[0]], 0.01)[0]:
            received += b"".join(bytes(f[2]) for f in frames)
    assert received == big
    # a poll with a timeout returns when input comes
    theirs[1].send(wire.BATCH, 9, wire.encode_batch([1, 2], None))
    events, _ = poller.poll(5.0)
    assert [(k, ch) for p, fs in events for k, ch, _ in fs] == [(wire.BATCH, 9)]


def test_a_peer_that_hung_up_is_reported_once_then_left_out(pairs):
    ours, theirs = pairs
    poller = wire.Poller(ours)
    theirs[0].close()
    events, _ = poller.poll(0)
    assert [p.index for p, _ in events] == [0] and ours[0].eof
    assert poller.peers == [ours[1]]
    theirs[1].send(wire.WATERMARK, 1, wire.encode_i64(1))
    assert _kinds(poller.poll(0)[0]) == {2: [(wire.WATERMARK, 1, wire.encode_i64(1))]}


def test_a_waiting_poll_whose_queued_ring_frames_go_ahead_does_not_sleep(pairs):
    """The ring was full and frames were queued; the reader then took everything without this
    side being woken. A poll with a long timeout writes the queue first: that is what the caller
    may be waiting for (a sender waiting until its queue is out), so it must not go on to sleep
    (it slept its whole timeout: a sender and a drained reader both waiting ~1 s per frame burst)."""
    ours, theirs = pairs
    while not ours[1].pending_ring:  # fill the 64 KiB ring until frames queue
        ours[1].send(wire.WATERMARK, 4, wire.encode_i64(1))
    theirs[1].receive_ring()  # the reader drains the ring (and frees all of it)
    assert ours[1].pending_ring
    poller = wire.Poller(ours)
    start = time.monotonic()
    poller.poll(30.0)
    assert time.monotonic() - start < 10.0
    assert not ours[1].pending_ring
    got = theirs[1].receive_ring()
    assert got and all(k == wire.WATERMARK for k, _, _ in got)
