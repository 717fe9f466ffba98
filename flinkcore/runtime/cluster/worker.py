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
import select
import signal
import sys
import traceback
from typing import Any

from flinkcore.runtime.cluster import wire
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
        if message[0] in ("cancel", "shutdown"):
            self.shutdown = True
            if self.task is not None:
                self.task.cancelled = True

    def report(self, *message: Any) -> None:
        self.driver.send(wire.CONTROL, 0, wire.encode_control(message))

    def run(self, graph_bytes: bytes, sinks_in_driver: bool) -> None:
        import cloudpickle

        opened: list[Any] = []
        try:
            graph = cloudpickle.loads(graph_bytes)
            placement = Placement(graph, sinks_in_driver)
            pts = ProcessingTimeService(SystemClock())
            task = self.task = SlotTask(graph, placement, self.index, self.peers, pts, self.on_control)
            opened = task.open()
            while not task.finished:
                if task.cancelled:
                    raise TaskCancelled("cancelled")
                task.step()
            task.flush_all()
            self._close(opened, quietly=False)
            opened = []
            self.report("finished", task.records_sent)
        except TaskCancelled:
            self._close(opened)
            self.report("cancelled")
        except PeerLost:
            self._close(opened)
            return
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
            peers = [p for p in self.peers.values() if not p.eof]
            writable = [p for p in peers if p.pending_output]
            r, w, _ = select.select(peers, writable, [], 0.5)
            for p in w:
                p.flush()
            for p in r:
                for kind, _, payload in p.receive():
                    if kind == wire.CONTROL:
                        self.on_control(p.index, wire.decode_control(payload))


def run_worker_from_fds(
    fds: list[int],
    index: int,
    graph_bytes: bytes,
    peer_indexes: list[int],
    sys_path: list[str],
    sinks_in_driver: bool,
) -> None:
    """Entry point in a child of the fork server: ``fds[i]`` is the socket to process ``peer_indexes[i]``."""
    import socket

    sockets = {k: socket.socket(fileno=fd) for k, fd in zip(peer_indexes, fds, strict=True)}
    run_worker(index, graph_bytes, sockets, sys_path, sinks_in_driver)


def run_worker(
    index: int, graph_bytes: bytes, sockets: dict, sys_path: list[str], sinks_in_driver: bool
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

            cProfile.runctx(
                "_Worker(index, peers).run(graph_bytes, sinks_in_driver)",
                globals(),
                {
                    "index": index,
                    "peers": peers,
                    "graph_bytes": graph_bytes,
                    "sinks_in_driver": sinks_in_driver,
                },
                os.path.join(profile_dir, f"worker-{index}.prof"),
            )
        else:
            _Worker(index, peers).run(graph_bytes, sinks_in_driver)
    finally:
        for p in peers.values():
            p.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
