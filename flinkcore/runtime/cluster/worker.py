"""A worker process: one task slot of a job (Flink's TaskManager slot, as a process).

Workers are forked from a fork server that has flinkcore imported already, so one starts in
milliseconds. The job graph arrives cloudpickled; the worker builds the subtasks its slot runs
(:class:`~flinkcore.runtime.cluster.task.SlotTask`), runs them until they finish, tells the
driver, and exits when the driver says so. A worker never outlives its job: it exits when the
driver's connection closes, and the kernel kills it if its parent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import time
import traceback
from typing import Any

from flinkcore._core.serde import dumps, loads
from flinkcore.runtime.cluster import rings, wire
from flinkcore.runtime.cluster.task import PeerLost, Placement, SlotTask, TaskCancelled
from flinkcore.runtime.processing_time import ProcessingTimeService, SystemClock

__all__ = ["die_with_parent", "run_worker", "run_worker_from_fds"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the closed driver connection still ends us
        pass


def failure_message(exc: BaseException) -> tuple[bytes | None, str]:
    """The exception pickled (when it survives a round trip) and its formatted traceback."""
    text = "".join(traceback.format_exception(exc))
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
    except Exception:
        data = None
    return data, text


class _Worker:
    def __init__(self, index: int, peers: dict[int, wire.Peer]) -> None:
        self.index = index
        self.peers = peers
        self.driver = peers[0]
        self.shutdown = False
        self.task: SlotTask | None = None

    def on_control(self, source: int, message: Any) -> None:
        kind = message[0]
        task = self.task
        if kind in ("cancel", "shutdown"):
            self.shutdown = True
            if task is not None:
                task.cancelled = True
        elif task is None:
            return
        elif kind == "trigger":
            _, checkpoint_id, exactly_once = message
            task.deferred.append(lambda: self._trigger(checkpoint_id, exactly_once))
        elif kind == "abort":
            task.abort_checkpoint(message[1])
        elif kind == "complete":
            checkpoint_id = message[1]
            task.deferred.append(lambda: task.notify_checkpoint_complete(checkpoint_id))

    def _trigger(self, checkpoint_id: int, exactly_once: bool) -> None:
        reason = self.task.trigger_checkpoint(checkpoint_id, exactly_once)
        if reason is not None:
            self.task.abort_checkpoint(checkpoint_id)
            self.report("decline", checkpoint_id, reason)

    def _checkpoint_done(self, checkpoint_id: int, parts: dict) -> None:
        self.report("ack", checkpoint_id, dumps(parts))

    def report(self, *message: Any) -> None:
        self.driver.send(wire.CONTROL, 0, wire.encode_control(message))

    def run(self, graph_bytes: bytes, sinks_in_driver: bool, restore_bytes: bytes | None) -> None:
        import cloudpickle

        opened: list[Any] = []
        try:
            graph = cloudpickle.loads(graph_bytes)
            rings.connect_rings(self.peers, rings.ring_capacity(graph.config), self.driver)
            placement = Placement(graph, sinks_in_driver)
            pts = ProcessingTimeService(SystemClock())
            task = self.task = SlotTask(graph, placement, self.index, self.peers, pts, self.on_control)
            task.on_checkpoint_done = self._checkpoint_done
            restore = loads(restore_bytes) if restore_bytes else None
            opened = task.open(restore, lambda node: task.node_key[node.id])
            while not task.finished:
                if task.cancelled:
                    raise TaskCancelled("cancelled")
                task.step()
            task.flush_all()
            self._close(opened, quietly=False)
            opened = []
            self.report("finished", task.records_sent, time.process_time())
        except TaskCancelled:
            self._close(opened)
            self.report("cancelled")
        except PeerLost as lost:
            self._close(opened)
            if lost.process == 0:  # the driver is gone: nobody to report to
                return
            # The driver attributes the failure to the lost process's death (with its exit status),
            # not to this worker, which ends because of it.
            self.report("failed", *failure_message(lost))
        except BaseException as exc:  # noqa: BLE001 - reported to the driver
            self._close(opened)
            self.report("failed", *failure_message(exc))
        self._wait_for_shutdown()

    def _close(self, opened: list[Any], quietly: bool = True) -> None:
        error = None
        for obj in opened:
            try:
                obj.close()
            except Exception as exc:
                error = error or exc
        if error is not None and not quietly:
            raise error

    def _wait_for_shutdown(self) -> None:
        """Keep writing what is queued (and reading, so nobody blocks on us) until the driver
        says to exit or goes away."""
        while not self.shutdown and not self.driver.eof:
            events, _ = wire.poll([p for p in self.peers.values() if not p.eof], 0.5)
            for p, frames in events:
                for kind, _, payload in frames:
                    if kind == wire.CONTROL:
                        self.on_control(p.index, wire.decode_control(payload))


def run_worker_from_fds(
    fds: list[int],
    index: int,
    graph_bytes: bytes,
    peer_indexes: list[int],
    sys_path: list[str],
    sinks_in_driver: bool,
    restore_bytes: bytes | None = None,
) -> None:
    """Entry point in a child of the fork server: ``fds[i]`` is the socket to process ``peer_indexes[i]``."""
    import socket

    sockets = {k: socket.socket(fileno=fd) for k, fd in zip(peer_indexes, fds, strict=True)}
    run_worker(index, graph_bytes, sockets, sys_path, sinks_in_driver, restore_bytes)


def run_worker(
    index: int,
    graph_bytes: bytes,
    sockets: dict,
    sys_path: list[str],
    sinks_in_driver: bool,
    restore_bytes: bytes | None = None,
) -> None:
    """Run worker ``index`` (1-based; 0 is the driver) until the driver lets it exit."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which cancels us
    sys.path[:] = sys_path
    peers = {k: wire.Peer(k, s) for k, s in sockets.items()}
    profile_dir = os.environ.get("FLINKCORE_PROFILE_WORKERS")
    try:
        if profile_dir:  # a developer's tool: one cProfile file per worker
            import cProfile

            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            try:
                _Worker(index, peers).run(graph_bytes, sinks_in_driver, restore_bytes)
            finally:
                profiler.disable()
                profiler.dump_stats(os.path.join(profile_dir, f"worker-{index}.prof"))
        else:
            _Worker(index, peers).run(graph_bytes, sinks_in_driver, restore_bytes)
    finally:
        for p in peers.values():
            p.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
