"""Worker processes kept for the driver's next job (as Flink's TaskManagers outlive a job).

When a job FINISHED, its workers do not exit: they park, each with its connections and
shared-memory rings to the others and its imports, and the next job of this driver that needs
as many workers (with the same ring settings) runs in them. It skips the forks, the connections
and the library imports: a 1000-event job at p2 takes ~3-7 ms in kept workers (plus the user's
modules' import) against ~26-31 ms in forked ones; W2 columnar (batch sink, 100M events) at p2
took 10% less wall and 11% less CPU (bench/README.md, session 8).

A parked set is released (its workers exit) once it has been idle for the idle timeout, when the
driver exits (the workers see their connection close; the fork server kills what is left), or by
:func:`release_workers`. Workers of a job that failed or was cancelled never park: a restarted
job gets fresh processes; nor do those of a job that left a Python thread running in one (a
function's ``open`` started it and its ``close`` did not end it: it would run on beside the next
job; the worker logs a warning naming it). The job config key ``cluster_worker_idle_timeout``
(seconds; set from the configuration ``flinkcore.worker-idle-timeout``) or the environment
variable ``FLINKCORE_WORKER_IDLE_TIMEOUT`` (it wins) sets the timeout; 0 turns reuse off.

What a reused worker does differently (see :mod:`flinkcore.runtime.cluster.worker`): it starts
each job with a SYNC frame to every other worker (:meth:`~flinkcore.runtime.cluster.wire.Peer.begin_job`:
what the last job left on a socket or in a ring, late credits and a checkpoint's last barriers,
is dropped), and it drops the user's modules before each job, so that the job imports them
again: as Flink gives each job its own user-code class loader, no job sees module state another
left (while it waits for the next job, from the code compiled before).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flinkcore.runtime.cluster import rings, wire

__all__ = ["CONFIG_KEY", "ENV_VAR", "WorkerSet", "idle_timeout", "pool", "release_workers"]

log = logging.getLogger(__name__)

CONFIG_KEY = "cluster_worker_idle_timeout"
ENV_VAR = "FLINKCORE_WORKER_IDLE_TIMEOUT"
#: seconds a parked set of workers waits for the next job by default
DEFAULT_IDLE_TIMEOUT = 15.0
#: seconds workers told to stop get (to close their operators) before they are killed
SHUTDOWN_GRACE = 2.0


def idle_timeout(config: Mapping[str, Any]) -> float:
    """Seconds the workers of a finished job wait for the next one (0: they exit at once)."""
    raw = os.environ.get(ENV_VAR) or config.get(CONFIG_KEY)
    if raw is None or raw == "":
        return DEFAULT_IDLE_TIMEOUT
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not value >= 0:  # also NaN
        source = ENV_VAR if os.environ.get(ENV_VAR) else CONFIG_KEY
        raise ValueError(f"{source} must be a number of seconds >= 0 (0 turns worker reuse off), not {raw!r}")
    return value


def set_key(num_workers: int, config: Mapping[str, Any]) -> tuple:
    """What a job's workers must share with a parked set to run in it: their number, and the
    rings they made when they started (a worker cannot switch them)."""
    ring = (os.environ.get(rings.ENV_VAR), config.get(rings.CONFIG_KEY), config.get(rings.CAPACITY_KEY))
    return (num_workers, *ring)


@dataclasses.dataclass(eq=False)
class WorkerSet:
    """The worker processes of one job, and the driver's connections to them."""

    key: tuple
    pids: list[int]
    #: worker index (1-based) -> the driver's end of its connection
    peers: dict[int, wire.Peer]
    #: the number of the job running (or last run) in it; the first is 1
    job: int = 1
    #: joins the workers' exits once released
    reaper: threading.Thread | None = None
    #: the workers were stopped and joined (after a failure or a cancel)
    reaped: bool = False

    def alive(self) -> bool:
        """Whether every worker still holds its connection (one that died hung up)."""
        if any(p.closed or p.eof for p in self.peers.values()):
            return False
        readable, _, _ = select.select([p.sock for p in self.peers.values()], [], [], 0)
        for sock in readable:  # a parked worker sends nothing: readable means it hung up
            try:
                if not sock.recv(1, socket.MSG_PEEK):
                    return False
            except BlockingIOError:
                pass
            except OSError:
                return False
        return True

    def release(self) -> None:
        """Let the workers exit: tell them, close the connections, and join their exits in a
        daemon thread (killing those that do not exit in :data:`SHUTDOWN_GRACE` s)."""
        if self.reaper is not None or self.reaped:
            return
        deadline = tell(self.peers.values(), ("shutdown",))
        for peer in self.peers.values():
            peer.close()
        self.reaper = threading.Thread(
            target=_reap_quietly, args=(self.pids, deadline), name="flinkcore-reap", daemon=True
        )
        self.reaper.start()


def tell(peers: Iterable[wire.Peer], message: tuple) -> float:
    """Send control ``message`` to every peer and write it out, waiting at most
    :data:`SHUTDOWN_GRACE` s for slow sockets; returns that grace period's deadline (for
    :func:`reap`)."""
    data = wire.encode_control(message)
    peers = list(peers)
    for peer in peers:
        peer.send(wire.CONTROL, 0, data)
    deadline = time.monotonic() + SHUTDOWN_GRACE
    for peer in peers:
        while peer.pending_output and not peer.closed and time.monotonic() < deadline:
            peer.flush()
            time.sleep(0.001)
    return deadline


def reap(pids: list[int], deadline: float) -> None:
    """Wait until ``pids`` exited (the fork server reaps them), killing those still running at
    ``deadline``."""
    from flinkcore.runtime.cluster.forkserver import fork_server

    server = fork_server()
    codes = server.wait_exit(pids, max(0.0, deadline - time.monotonic()))
    left = [pid for pid in pids if codes.get(pid) is None]
    for pid in left:
        log.warning("worker process %d did not stop in time; killing it", pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if left:
        server.wait_exit(left, 10.0)


def _reap_quietly(pids: list[int], deadline: float) -> None:
    try:
        reap(pids, deadline)
    except Exception:  # the fork server went away (the interpreter exits): so did its workers
        log.debug("reaping workers %s", pids, exc_info=True)


class WorkerPool:
    """The parked worker sets of this driver, one per :func:`set_key` at most."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple, tuple[WorkerSet, float]] = {}
        #: wakes the expiry thread when the earliest expiry changed
        self._changed = threading.Condition(self._lock)
        #: releases sets whose idle timeout passed (started at the first park: one thread for the
        #: driver's life, not one per park, which cost a thread start on every job's way out)
        self._expiry: threading.Thread | None = None

    def take(self, key: tuple) -> WorkerSet | None:
        """A parked set for ``key`` whose workers are all alive (removed from the pool), or None."""
        with self._lock:
            entry = self._idle.pop(key, None)
        if entry is None:
            return None
        workers = entry[0]
        if not workers.alive():
            workers.release()
            return None
        workers.job += 1
        return workers

    def park(self, workers: WorkerSet, timeout: float) -> None:
        """Keep ``workers`` for the next job, for ``timeout`` seconds."""
        with self._lock:
            old = self._idle.pop(workers.key, None)
            self._idle[workers.key] = (workers, time.monotonic() + timeout)
            self._schedule()
        if old is not None:
            old[0].release()

    def _parked(self, workers: WorkerSet) -> bool:
        entry = self._idle.get(workers.key)
        return entry is not None and entry[0] is workers

    def release(self, workers: WorkerSet | None = None) -> None:
        """Release ``workers`` if parked (every parked set when None)."""
        with self._lock:
            if workers is None:
                gone = [w for w, _ in self._idle.values()]
                self._idle.clear()
            elif self._parked(workers):
                gone = [self._idle.pop(workers.key)[0]]
            else:
                gone = []
        for w in gone:
            w.release()

    def forget_in_child(self) -> None:
        """In a child forked from this driver: the parked workers are the parent's. Close the
        child's copies of their connections (nothing is sent: the parent's stay as they are, and
        the workers still see the parent's end close when it exits) and keep none."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._expiry = None
        for workers, _ in self._idle.values():
            for peer in workers.peers.values():
                try:
                    peer.sock.close()
                except OSError:
                    pass
        self._idle = {}

    def _schedule(self) -> None:
        """Let the expiry thread see the parked sets' expiries (with the lock held)."""
        if self._expiry is None:
            self._expiry = threading.Thread(target=self._expire, name="flinkcore-pool-expiry", daemon=True)
            self._expiry.start()
        self._changed.notify()

    def _expire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                gone = [key for key, (_, expiry) in self._idle.items() if expiry <= now]
                released = [self._idle.pop(key)[0] for key in gone]
                if not released:
                    due = min((expiry for _, expiry in self._idle.values()), default=None)
                    self._changed.wait(None if due is None else due - now)
                    continue
            for w in released:
                w.release()


_POOL = WorkerPool()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_POOL.forget_in_child)


def pool() -> WorkerPool:
    """The driver's pool of parked workers."""
    return _POOL


def release_workers() -> None:
    """Let every parked worker of this driver exit now (they otherwise wait for the next job
    until the idle timeout). Returns at once; the exits are joined in the background."""
    _POOL.release()
