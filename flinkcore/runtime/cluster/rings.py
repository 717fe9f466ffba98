"""Shared-memory rings between the worker processes of a job (the in-band frames' fast path).

Each worker makes its outgoing ring to every other worker (:class:`flinkcore._core.ring.Ring`,
a memfd and two eventfds) and passes it over the socket to that worker (SCM_RIGHTS) as the first
thing on that socket; it takes that worker's ring to it from the first byte it reads there, when
it comes (nobody waits for anybody). After it the socket carries credits, control messages and
frames too large for the ring, and its hang-up still tells that the other process died
(:mod:`flinkcore.runtime.cluster.wire`). The driver's sockets stay as they are.

On by default; the job config key ``cluster_ring`` (``False`` switches it off) or the environment
variable ``FLINKCORE_CLUSTER_RING`` (``0``/``1``; it overrides the config, and reaches the workers
from the environment the fork server started with) switch it, ``cluster_ring_capacity`` sets each
ring's size in bytes (a power of two; 4 MiB by default). A worker that does not use a ring says
so in the exchange, and that direction stays on the socket.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from flinkcore.common.configuration import parse_flag
from flinkcore.runtime.cluster import wire

__all__ = ["CAPACITY_KEY", "CONFIG_KEY", "ENV_VAR", "accept_ring", "connect_rings", "ring_capacity"]

CONFIG_KEY = "cluster_ring"
CAPACITY_KEY = "cluster_ring_capacity"
ENV_VAR = "FLINKCORE_CLUSTER_RING"

_NO_RING = b"N"


def ring_capacity(config: Mapping[str, Any]) -> int | None:
    """Bytes of each outgoing ring of a worker, or None when rings are off (or not supported here)."""
    env = os.environ.get(ENV_VAR)
    on = parse_flag(env, ENV_VAR) if env else parse_flag(config.get(CONFIG_KEY, True), CONFIG_KEY)
    if not on or not hasattr(os, "memfd_create"):
        return None
    from flinkcore._core.ring import DEFAULT_CAPACITY, MAX_CAPACITY, MIN_CAPACITY

    capacity = int(config.get(CAPACITY_KEY) or DEFAULT_CAPACITY)
    if capacity < MIN_CAPACITY or capacity > MAX_CAPACITY or capacity & (capacity - 1):
        raise ValueError(
            f"{CAPACITY_KEY} must be a power of two from {MIN_CAPACITY} to {MAX_CAPACITY} bytes, "
            f"not {capacity}"
        )
    return capacity


def connect_rings(peers: Mapping[int, wire.Peer], capacity: int | None, driver: wire.Peer) -> None:
    """Give every worker peer of ``peers`` (all but ``driver``) this process's ring to it
    (``capacity`` None: none, that direction stays on the socket), attached to its
    :class:`~flinkcore.runtime.cluster.wire.Peer` at once. Must run before anything else is sent
    to those peers. It does not wait for theirs: each Peer takes the other's ring (or its
    absence) from the first byte it reads (:meth:`~flinkcore.runtime.cluster.wire.Peer.receive`),
    so a worker starts its task while the workers forked after it are still starting (an
    exchange that waited for all of them held every worker ~6-12 ms at p2, more at p4). A peer
    that hung up raises :class:`~flinkcore.runtime.cluster.task.PeerLost`."""
    from flinkcore.runtime.cluster.task import PeerLost

    for p in peers.values():
        if p is driver:
            continue
        p.ring_pending = True
        try:
            if capacity is None:
                p.sock.send(_NO_RING)  # one byte: it never waits for buffer space
                continue
            from flinkcore._core.ring import Ring

            with Ring.create(capacity) as ring:
                ring.send(p.sock)
                p.attach_ring(ring.writer(peer=p.sock), None)
        except (BrokenPipeError, ConnectionResetError):
            raise PeerLost(p.index) from None


def accept_ring(p: wire.Peer) -> bool:
    """Take the ring ``p``'s process sent (the first byte on its socket) when it is there; True
    once taken (or when the socket closed: ``p.eof`` is set)."""
    try:
        msg, fds, _, _ = socket.recv_fds(p.sock, 1, 3)
    except BlockingIOError:
        return False
    except ConnectionResetError:
        msg, fds = b"", []
    p.ring_pending = False
    if not msg and not fds:
        p.eof = True
    else:
        p.ring_in = _ring_of(p, msg, fds)
    return True


def _ring_of(p: wire.Peer, msg: bytes, fds: list[int]) -> Any:
    """The reader of the ring ``p`` sent (``msg`` and ``fds`` as it came), or None when it sends on
    its socket only."""
    from flinkcore.runtime.cluster.task import PeerLost

    if msg == _NO_RING and not fds:
        return None
    if msg == b"R" and len(fds) == 3:
        from flinkcore._core.ring import Ring

        with Ring(fds) as ring:
            return ring.reader(peer=p.sock)
    for fd in fds:
        os.close(fd)
    if not msg:
        raise PeerLost(p.index)
    raise RuntimeError(f"process {p.index} began its connection with {msg!r}, not a ring or its absence")
