"""In-band frames between worker processes through the shared-memory rings
(:mod:`flinkcore.runtime.cluster.rings`): every kind arrives in order with the socket's frames
beside it, a frame larger than the ring comes on the socket in its place, a full ring queues its
writer's frames instead of blocking it (two processes sending to each other never deadlock), and a
killed peer is noticed with the ring in use. Then whole jobs at parallelism 1, 2 and 4 with the
rings on (the default), a tiny ring, big records, and a worker killed mid-run."""

from __future__ import annotations

import functools
import os
import select
import signal
import socket
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from recovery_support import ListSink, alive, fork_child, join_child

from flinkcore.common import Duration, WatermarkStrategy
from flinkcore.common.time import Time
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.connectors import NumberSequenceSource
from flinkcore.datastream.functions import MapFunction
from flinkcore.datastream.window import TumblingEventTimeWindows
from flinkcore.runtime.cluster import ClusterJob, WorkerFailure, wire
from flinkcore.runtime.cluster.rings import accept_ring, connect_rings
from flinkcore.runtime.executor import Job

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="shared-memory rings need Linux")

SMALL = 4096  # the smallest ring: most batches do not fit, and it is full at once


# -- two processes with real Peers and rings --------------------------------------------------


def _connect(sock: socket.socket, index: int, driver_sock: socket.socket, capacity: int | None) -> wire.Peer:
    peer = wire.Peer(index, sock)
    driver = wire.Peer(0, driver_sock)
    connect_rings({0: driver, index: peer}, capacity, driver)
    while not accept_ring(peer):  # the other's ring, before its frames (which receive() would take)
        select.select([peer.sock], [], [], 5.0)
    return peer


_SAME = object()


def _pair(child, capacity: int | None = SMALL, child_capacity: object = _SAME):
    """Fork a child that runs ``child(peer)`` on its Peer to this process (rings exchanged as a
    worker does; the child's ring of ``child_capacity``, by default ``capacity``); returns (pid,
    this process's Peer to the child)."""
    if child_capacity is _SAME:
        child_capacity = capacity
    mine, theirs = socket.socketpair()
    d_mine, d_theirs = socket.socketpair()  # stand-ins for each one's driver connection

    def run_child():
        mine.close()
        child(_connect(theirs, 1, d_theirs, child_capacity))

    pid = fork_child(run_child)
    theirs.close()
    d_theirs.close()
    peer = _connect(mine, 2, d_mine, capacity)
    return pid, peer


def _frames(seed: int, n: int) -> list[tuple[int, int, object]]:
    """A deterministic mix of in-band frames: record batches (some far larger than SMALL), Arrow
    batches, watermarks, status, barriers, and an END per channel at the end."""
    rng = np.random.default_rng(seed)
    out: list = []
    for i in range(n):
        channel = int(rng.integers(0, 3))
        r = rng.random()
        if r < 0.45:
            size = int(rng.choice([1, 30, 120, 2000]))
            out.append((wire.BATCH, channel, ([(i, j, "x" * (j % 25)) for j in range(size)], None)))
        elif r < 0.55:
            rows = int(rng.choice([3, 1000]))  # 1000 rows of int64 + float64: 16 KB, too big
            batch = pa.RecordBatch.from_arrays(
                [pa.array(np.arange(rows) + i), pa.array(np.arange(rows) * 0.5)], names=["k", "v"]
            )
            out.append((wire.BATCH, channel, (batch, np.arange(rows, dtype=np.int64) * 3)))
        elif r < 0.75:
            out.append((wire.WATERMARK, channel, wire.encode_i64(i * 10)))
        elif r < 0.85:
            out.append((wire.STATUS, channel, b"\x01" if i % 2 else b"\x00"))
        else:
            out.append((wire.BARRIER, channel, wire.encode_i64(i)))
    out.extend((wire.END, c, b"") for c in range(3))
    return out


def _send_frame(peer: wire.Peer, frame) -> None:
    kind, channel, payload = frame
    if kind == wire.BATCH:
        payload = wire.encode_batch_parts(*payload)
    peer.send(kind, channel, payload)


def _same(expected, got) -> bool:
    kind, channel, payload = expected
    if (got[0], got[1]) != (kind, channel):
        return False
    if kind != wire.BATCH:
        return bytes(got[2]) == payload
    values, ts = wire.decode_batch(got[2])
    want_values, want_ts = payload
    if hasattr(want_values, "schema"):
        return values.equals(want_values) and list(ts) == list(want_ts)
    return [tuple(v) for v in values] == want_values and ts is None


class _Endpoint:
    """One process's side of an exchange: sends its frames without ever waiting, reads the
    other's (optionally slowly), and counts what came and whether its ring ever was full."""

    def __init__(self, peer: wire.Peer, send: list, expect: list, slow: bool = False) -> None:
        self.peer, self.send, self.expect, self.slow = peer, send, expect, slow
        self.got: list = []
        self.credits = 0
        self.queued = False
        self.other_done = False

    def run(self, deadline: float = 60.0) -> None:
        peer = self.peer
        end = time.monotonic() + deadline
        sent = 0
        while (
            len(self.got) < len(self.expect)
            or sent < len(self.send)
            or peer.pending_ring
            or peer.pending_output
        ):
            if time.monotonic() > end:
                raise AssertionError(
                    f"stuck: {len(self.got)} of {len(self.expect)} frames in, {sent} of {len(self.send)} out"
                )
            for _ in range(10):  # several frames per round: the ring fills
                if sent < len(self.send):
                    _send_frame(peer, self.send[sent])
                    peer.send(wire.CREDIT, sent, wire.encode_i64(sent))  # socket frames beside them
                    sent += 1
                    self.queued |= peer.pending_ring
            events, _ = wire.poll([peer], 0.01)
            for _, frames in events:
                for f in frames:
                    if f[0] == wire.CREDIT:
                        self.credits += 1
                    elif f[0] == wire.CONTROL:
                        self.other_done = True
                    else:
                        assert _same(self.expect[len(self.got)], f), (len(self.got), f[:2])
                        self.got.append(f[:2])
                        if self.slow and len(self.got) % 20 == 0:
                            time.sleep(0.005)
            assert not peer.eof or len(self.got) == len(self.expect)
        # the other side's last frames may still be read: wait until it says it is done too
        peer.send(wire.CONTROL, 0, b"done")
        while not self.other_done:
            if time.monotonic() > end:
                raise AssertionError("the other side never finished")
            events, _ = wire.poll([peer], 0.05)
            for _, frames in events:  # its last credits may come with it
                for f in frames:
                    self.credits += f[0] == wire.CREDIT
                    self.other_done |= f[0] == wire.CONTROL
            self.other_done |= peer.eof


def test_every_kind_in_order_through_the_ring_with_big_frames_on_the_socket():
    frames = _frames(1, 600)

    def child(peer):
        assert peer.ring_out is not None and peer.ring_in is not None
        side = _Endpoint(peer, frames, [])
        side.run()
        assert peer.ring_frames > len(frames) // 2  # most went through the ring
        assert peer.ring_oversize > 0  # some were too big for it
        assert side.queued  # the 4 KiB ring was full at times: frames waited in the queue

    pid, peer = _pair(child)
    assert peer.ring_in is not None
    side = _Endpoint(peer, [], frames, slow=True)
    side.run()
    assert side.credits == len(frames)  # the socket's frames came too
    assert join_child(pid) == 0
    peer.close()


def test_both_directions_full_with_a_slow_receiver_do_not_deadlock():
    """Each side sends 1500 frames into a 4 KiB ring while the other reads slowly: a writer that
    waited for ring space would wait for a process that waits for it."""
    to_parent, to_child = _frames(2, 1500), _frames(3, 1500)

    def child(peer):
        side = _Endpoint(peer, to_parent, to_child, slow=True)
        side.run()
        assert side.queued

    pid, peer = _pair(child)
    side = _Endpoint(peer, to_child, to_parent, slow=True)
    side.run()
    assert side.queued
    assert join_child(pid) == 0
    peer.close()


def test_rings_off_from_one_side_keeps_that_direction_on_the_socket():
    frames = _frames(4, 200)

    def child(peer):
        assert peer.ring_out is None and peer.ring_in is not None
        _Endpoint(peer, frames, frames).run()
        assert peer.ring_frames == 0

    pid, peer = _pair(child, SMALL, child_capacity=None)
    assert peer.ring_out is not None and peer.ring_in is None
    _Endpoint(peer, frames, frames).run()
    assert join_child(pid) == 0
    peer.close()


def _fill_then_sleep(peer):
    """Write until the ring is full and frames queue, tell the other side, then hang."""
    batch = wire.encode_batch_parts(list(range(100)), None)
    while not peer.pending_ring:
        peer.send(wire.BATCH, 0, batch)
    peer.send(wire.CONTROL, 0, b"full")
    while True:
        time.sleep(1)


def test_a_killed_peer_is_noticed_with_both_rings_full():
    pid, peer = _pair(_fill_then_sleep)
    try:
        end = time.monotonic() + 30
        told = False
        while not told:  # the child's ring to us filled (we read it meanwhile: that is fine)
            assert time.monotonic() < end, "the child never filled its ring"
            events, _ = wire.poll([peer], 0.05)
            told = any(f[0] == wire.CONTROL for _, frames in events for f in frames)
        batch = wire.encode_batch_parts(list(range(100)), None)
        while not peer.pending_ring:  # our ring to the sleeping child fills too
            peer.send(wire.BATCH, 0, batch)
    finally:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    end = time.monotonic() + 30
    while not peer.eof:
        assert time.monotonic() < end, "the killed peer's hang-up was not noticed"
        wire.poll([peer], 0.5)
    peer.send(wire.BATCH, 0, batch)  # a frame to a dead peer neither blocks nor raises
    peer.close()


# -- jobs ---------------------------------------------------------------------------------------


class RingsHere(MapFunction):
    """Tags each record with the number of ring mappings in the process that runs it, counted
    every 500 records (a worker maps another's ring when that one's first frames come)."""

    def open(self, runtime_context):
        self.seen = 0

    def map(self, value):
        if self.seen % 500 == 0:
            with open("/proc/self/maps") as f:
                self.rings = sum("flinkcore-ring" in line for line in f)
        self.seen += 1
        return (*value, self.rings)


def _graph(build, parallelism: int, **config):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    sink = ListSink()
    build(env).add_sink(sink)
    graph = env.get_stream_graph("test", clear_transformations=True)
    graph.config.update(config)
    return graph, sink


def _run(build, parallelism: int, **config) -> list:
    graph, sink = _graph(build, parallelism, **config)
    if parallelism == 1:
        Job(graph).run()
    else:
        job = ClusterJob(graph)
        job.run()
        assert job.join_workers(10.0)
        assert [p for p in job.pids if alive(p)] == []
    return sink.results


def _keyed_records(env):
    return (
        env.from_collection([(i % 17, i) for i in range(30_000)])
        .rebalance()
        .map(lambda x: (x[0], x[1] * 3))
        .key_by(lambda x: x[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .map(RingsHere())
    )


def _final(results):
    out = {}
    for k, v, _ in results:
        out[k] = max(out.get(k, v), v)
    return out


def test_record_job_same_at_p1_p2_p4_with_rings():
    expected = _run(_keyed_records, 1)
    for p in (2, 4):
        got = _run(_keyed_records, p)
        assert len(got) == len(expected) and _final(got) == _final(expected)
        # each worker mapped one ring to and one from every other worker
        assert max(r[2] for r in got) == 2 * (p - 1)
    off = _run(_keyed_records, 2, cluster_ring=False)
    assert _final(off) == _final(expected) and {r[2] for r in off} == {0}


def _columnar(env, n=20_000):
    rng = np.random.default_rng(5)
    table = pa.table(
        {
            "key": rng.integers(0, 50, n, dtype=np.int64),
            "value": rng.integers(0, 400, n).astype(np.float64) / 4,  # exact sums in any order
            "ts": np.arange(n, dtype=np.int64) // 10,
        }
    )
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(20)).with_timestamp_assigner(
        "ts"
    )
    return (
        env.from_arrow(table)
        .assign_timestamps_and_watermarks(strategy)
        .key_by("key")
        .window(TumblingEventTimeWindows.of(Time.milliseconds(50)))
        .agg(total=("value", "sum"), n=("value", "count"))
    )


def test_columnar_job_same_at_p1_p2_p4_with_rings_and_with_a_tiny_ring():
    expected = sorted(tuple(r) for r in _run(_columnar, 1))
    assert len(expected) > 100
    for p, config in ((2, {}), (4, {}), (2, {"cluster_ring_capacity": SMALL})):
        got = sorted(tuple(r) for r in _run(_columnar, p, **config))
        assert got == expected, (p, config)


def test_columnar_batches_too_large_for_the_ring_cross_in_slices_with_their_timestamps():
    """Each channel's share of a source batch (~10,000 rows at p2, 240 KB) does not fit a 4 KiB
    ring: it goes as slices of 700 rows (with the ring, and on the socket without one), which keep
    their rows' timestamps (the windows would differ otherwise) and their order."""
    expected = sorted(tuple(r) for r in _run(_columnar, 1))
    for config in ({"cluster_ring_capacity": SMALL}, {"cluster_ring": False}):
        config["cluster_frame_rows"] = 700
        got = sorted(tuple(r) for r in _run(_columnar, 2, **config))
        assert got == expected, config


def test_large_columnar_frames_take_credits_by_their_size():
    """Unaggregated, a 200k-row batch's channel parts are frames of ~780 KB: each takes 3 of a
    channel's 8 credits (one per started 256 KiB), with 3 credits all of them, and the receiver
    gives back what each took (a frame that gave back less would leave the sender waiting for
    ever); the results are p1's."""
    from flinkcore.runtime.cluster.two_phase import CONFIG_KEY

    build = functools.partial(_columnar, n=200_000)
    expected = sorted(tuple(r) for r in _run(build, 1))
    for config in ({}, {"cluster_credits": 3}, {"cluster_credits": 1}):
        got = sorted(tuple(r) for r in _run(build, 2, **config, **{CONFIG_KEY: False}))
        assert got == expected, config


def _slow_big(x):
    time.sleep(0.0002)
    return x


def test_big_records_through_a_tiny_ring_with_a_slow_receiver():
    """Records of 20 KB and a 4 KiB ring: every batch goes on the socket behind a ring marker, the
    small frames (watermarks, ends) through the ring, and the order holds."""

    def build(env):
        return (
            env.from_collection([(i % 5, str(i) * (20_000 // len(str(i)))) for i in range(1, 1500)])
            .key_by(lambda x: x[0])
            .map(_slow_big)
            .key_by(lambda x: x[1][:3])
            .map(lambda x: (x[0], len(x[1]), x[1][:8]))
        )

    expected = sorted(_run(build, 1))
    got = sorted(_run(build, 2, cluster_ring_capacity=SMALL, cluster_frame_records=64))
    assert got == expected


def test_sigkill_of_a_worker_with_the_ring_in_use():
    def build(env):
        return (
            env.from_source(NumberSequenceSource(0, 10**9), None, "n")
            .map(lambda x: (x % 7, "y" * 300))
            .key_by(lambda x: x[0])
            .map(_slow_big)
        )

    graph, _ = _graph(build, 2, cluster_ring_capacity=SMALL, batch_size=64)
    job = ClusterJob(graph)
    errors: list = []

    def run():
        try:
            job.run()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 10
    while len(job.pids) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    os.kill(job.pids[0], signal.SIGKILL)
    t.join(20)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], WorkerFailure), errors
    assert "SIGKILL" in str(errors[0])
    assert job.join_workers(10.0)
    assert [p for p in job.pids if alive(p)] == []
