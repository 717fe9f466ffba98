"""A worker process: one task slot of a job (Flink's TaskManager slot, as a process).

Workers are forked from a fork server that has flinkcore imported already, so one starts in
milliseconds. The job graph arrives cloudpickled; the worker builds the subtasks its slot runs
(:class:`~flinkcore.runtime.cluster.task.SlotTask`), runs them until they finish, tells the
driver, and then waits: for the driver's next job (a finished job's workers are kept for the
next one, see :mod:`flinkcore.runtime.cluster.pool`), or to be told to exit. A worker never
outlives its driver: it exits when the driver's connection closes, and the kernel kills it if its
parent (the fork server) dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from typing import Any

from flinkcore._core.serde import dumps, loads
from flinkcore.runtime.cluster import forkserver, logs, rings, wire
from flinkcore.runtime.cluster.task import PeerLost, Placement, SlotTask, TaskCancelled
from flinkcore.runtime.processing_time import ProcessingTimeService, SystemClock

log = logging.getLogger(__name__)

__all__ = ["die_with_parent", "run_worker", "run_worker_from_fds"]

_PR_SET_PDEATHSIG = 1
#: a directory: each worker writes a cProfile of each job there
PROFILE_ENV = "FLINKCORE_PROFILE_WORKERS"
#: seconds a kept worker waits for the next job before it does its idle work (gc, imports)
IDLE_WORK_AFTER = 0.05


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


class _UserModules:
    """The user's modules in this worker, imported afresh for each job it runs after its first.

    Flink gives each job its own user-code class loader, so a job never sees the static state
    another job left in the user's classes; a newly forked worker likewise starts from the
    modules as the fork server imported them (which runs no job). A kept worker drops every
    module of the user's it has (inherited from the server, or imported itself: Python sources
    outside the standard library, site-packages and flinkcore) once a job finished, and imports
    them again while it waits (:meth:`import_ahead`; an unchanged source runs from the code
    compiled before, see ``forkserver._UserCode``): the next job finds them as no job has used
    them, without paying for the import at its start. Where the files or ``sys.path`` changed by
    then, or an import failed, the next job starts without them and its graph imports them
    itself."""

    def __init__(self) -> None:
        server = forkserver.SERVER_JOB_MODULES
        #: names of the user's modules in sys.modules
        self.names: set[str] = set(server.files) if server is not None else set()
        #: names of the modules looked at already (the user's or not)
        self.known = set(sys.modules)
        #: what :meth:`import_ahead` imported: (sys.path then, {name: file stamp}), or None
        self.ahead: tuple[list[str], dict[str, Any]] | None = None

    def note_imports(self) -> None:
        """Note the user's modules among those imported since the last call."""
        for name in [n for n in sys.modules if n not in self.known]:
            self.known.add(name)
            stamp = forkserver.file_stamp(sys.modules.get(name))
            if stamp is not None and forkserver.is_user_source(stamp[0]):
                self.names.add(name)

    def import_ahead(self, graph_bytes: bytes) -> None:
        """While idle after a job: forget the user's modules, and import afresh those the job's
        graph (``graph_bytes``, its pickle) refers to, for the next job (at most
        :data:`forkserver.IMPORT_TIMEOUT` seconds; one that fails is left to the next job)."""
        self.note_imports()
        named = forkserver.pickled_modules(graph_bytes, forkserver.SCAN_LIMIT)
        order = [n for n in sys.modules if n in self.names and n in named]
        self._forget()
        if not order or not forkserver.preloading():
            return
        try:
            with forkserver.import_deadline():
                for name in order:
                    if name not in sys.modules:
                        try:
                            importlib.import_module(name)
                        except Exception:  # noqa: BLE001 - the next job imports it itself (and reports)
                            pass
        except forkserver.ImportTimeout:
            self.note_imports()
            self._forget()
            return
        self.note_imports()
        self.ahead = (sys.path[:], {n: forkserver.file_stamp(sys.modules.get(n)) for n in self.names})

    def drop(self, sys_path: list[str]) -> None:
        """Before a job: keep the modules imported ahead if nothing changed since (files,
        ``sys.path``, imports), else forget the user's modules; take the driver's ``sys.path``."""
        self.note_imports()
        ahead, self.ahead = self.ahead, None
        fresh = (
            ahead is not None
            and ahead[0] == sys_path
            and ahead[1].keys() == self.names
            and all(forkserver.file_stamp(sys.modules.get(n)) == s for n, s in ahead[1].items())
        )
        if not fresh:
            self._forget()
        sys.path[:] = sys_path

    def _forget(self) -> None:
        for name in self.names:
            sys.modules.pop(name, None)
            self.known.discard(name)
        self.names.clear()
        importlib.invalidate_caches()


class _Worker:
    def __init__(self, index: int, peers: dict[int, wire.Peer]) -> None:
        self.index = index
        self.peers = peers
        self.driver = peers[0]
        self.shutdown = False
        self.task: SlotTask | None = None
        #: whether the last job finished (only then may another one run here)
        self.reusable = False
        #: the driver said the running job ended (its subtasks here may commit and close)
        self._job_ended = False
        #: control messages from the driver that came with the next job's message, for its task
        self._early: list = []
        self._modules = _UserModules()
        #: the driver's working directory for the job (None: it had none), where :meth:`run`
        #: runs it, also when the last job here moved elsewhere
        self.cwd: str | None = None
        #: the root handler: every record goes to the driver (see :mod:`~flinkcore.runtime.cluster.logs`)
        self._logs = logs.Forwarder()
        self._logs.install(None)

    def on_control(self, source: int, message: Any) -> None:
        kind = message[0]
        task = self.task
        if kind in ("cancel", "shutdown"):
            self.shutdown = True
            if task is not None:
                task.cancelled = True
        elif kind == "end":
            self._job_ended = True
        elif task is None:
            return
        elif kind == "trigger":
            _, checkpoint_id, exactly_once = message
            task.deferred.append(lambda: task.trigger_checkpoint(checkpoint_id, exactly_once))
        elif kind == "abort":
            task.abort_checkpoint(message[1])
        elif kind == "complete":
            task.checkpoint_completed(message[1])

    def _checkpoint_done(self, checkpoint_id: int, parts: dict) -> None:
        self.report("ack", checkpoint_id, dumps(parts))

    def report(self, *message: Any) -> None:
        """Tell the driver ``message`` (after the log records kept so far)."""
        self.send_logs()
        self.driver.send(wire.CONTROL, 0, wire.encode_control(message))

    def send_logs(self) -> None:
        if self._logs.pending:
            self.driver.send(wire.CONTROL, 0, wire.encode_control(("log", self._logs.take())))

    def serve(
        self, graph_bytes: bytes, sinks_in_driver: bool, restore_bytes: bytes | None, cwd: str | None
    ) -> None:
        """Run the first job, then every next one the driver sends, until it lets us exit."""
        job: tuple | None = (1, graph_bytes, sinks_in_driver, restore_bytes, None, cwd)
        while job is not None:
            number, graph_bytes, sinks_in_driver, restore_bytes, sys_path, self.cwd = job
            if sys_path is not None:
                self._modules.drop(sys_path)
            if PROFILE_ENV in os.environ:
                self._profiled(number, graph_bytes, sinks_in_driver, restore_bytes)
            else:
                self.run(number, graph_bytes, sinks_in_driver, restore_bytes)
            job = self._wait(graph_bytes)

    def _profiled(self, job: int, *args: Any) -> None:
        """A developer's tool: one cProfile file per worker and job, in $FLINKCORE_PROFILE_WORKERS."""
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        try:
            self.run(job, *args)
        finally:
            profiler.disable()
            name = f"worker-{self.index}.prof" if job == 1 else f"worker-{self.index}-job-{job}.prof"
            profiler.dump_stats(os.path.join(os.environ[PROFILE_ENV], name))

    def run(self, job: int, graph_bytes: bytes, sinks_in_driver: bool, restore_bytes: bytes | None) -> None:
        import cloudpickle

        opened: list[Any] = []
        cpu = time.process_time() if job > 1 else 0.0  # the first job's CPU includes the start-up
        self.reusable = False
        self._job_ended = False
        threads = set(threading.enumerate())
        try:
            if self.cwd is not None:
                os.chdir(self.cwd)
            if job > 1:  # the same workers as the last job: the rings are there
                for p in self.peers.values():
                    if p is not self.driver:
                        p.begin_job(job)
            graph = cloudpickle.loads(graph_bytes)
            self._logs.install(graph.config.get(logs.CONFIG_KEY))
            if job == 1:
                rings.connect_rings(self.peers, rings.ring_capacity(graph.config), self.driver)
            placement = Placement(graph, sinks_in_driver)
            pts = ProcessingTimeService(SystemClock())
            task = self.task = SlotTask(graph, placement, self.index, self.peers, pts, self.on_control)
            task.on_checkpoint_done = self._checkpoint_done
            early, self._early = self._early, []
            for message in early:  # controls that came with the job's message (a cancel, a trigger)
                self.on_control(0, message)
            if self.shutdown:
                raise TaskCancelled("cancelled")
            restore = loads(restore_bytes) if restore_bytes else None
            opened = task.open(restore, lambda node: task.node_key[node.id])
            self._run_until(task, lambda: task.finished)
            task.flush_all()
            self.report("finished", task.records_sent, time.process_time() - cpu)
            # The job may still run in other slots: this one stays in it until the driver says it
            # ended, so checkpoints snapshot its finished subtasks, and its sinks commit only then
            # (a restore never replays what they made visible: Flink's FLIP-147).
            self._run_until(task, lambda: self._job_ended)
            for op in task.operators():
                op.finish()
            self._close(opened, quietly=False)
            opened = []
            self.reusable = self._left_no_threads(job, threads)
            self.report("closed", self.reusable)
        except TaskCancelled:
            if self.task is not None:
                self.task.deliver_completions()
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
        finally:
            self.task = None

    def _run_until(self, task: SlotTask, done: Any) -> None:
        """Run ``task``'s rounds until ``done()`` (forwarding log records as they come)."""
        forwarded = self._logs
        while not done():
            if task.cancelled:
                raise TaskCancelled("cancelled")
            task.step()
            if forwarded.pending:
                self.send_logs()

    def _left_no_threads(self, job: int, before: set[threading.Thread]) -> bool:
        """Whether the job stopped every Python thread it started. One left running (a function's
        ``open`` started it, its ``close`` did not end it) would run on beside the next job, so
        this worker then runs no other job (a fresh one does)."""
        left = sorted(t.name for t in threading.enumerate() if t not in before)
        if left:
            log.warning(
                "job %d left %d thread(s) running in worker %d (%s): the worker is not kept for another job",
                job,
                len(left),
                self.index,
                ", ".join(left),
            )
        return not left

    def _close(self, opened: list[Any], quietly: bool = True) -> None:
        error = None
        for obj in opened:
            try:
                obj.close()
            except Exception as exc:
                error = error or exc
        if error is not None and not quietly:
            raise error

    def _wait(self, graph_bytes: bytes) -> tuple | None:
        """After the job of ``graph_bytes``: write what is still queued for the other workers
        (they may still read this job's last frames), and wait for the driver's next job —
        returned as (number, graph, sinks in driver, restore, sys.path, working directory) — or
        for it to say exit or go away (None).

        The other workers' connections are not read here: a worker that started the next job
        already may be sending its frames, which its next task reads (credits of the last job
        before them are dropped there, see :meth:`wire.Peer.begin_job`)."""
        driver = self.driver
        others = [p for p in self.peers.values() if p is not driver]
        idle = False
        idle_at = time.monotonic() + IDLE_WORK_AFTER
        while not self.shutdown and not driver.eof:
            writing = frozenset(p for p in others if not p.closed and (p.pending_output or p.pending_ring))
            timeout = 0.5 if idle else max(0.0, idle_at - time.monotonic())
            events, _ = wire.poll([driver, *writing], timeout, write_only=writing)
            self.send_logs()  # a record of a user's thread while we wait
            for _, frames in events:  # the driver's: controls (and credits of the last job)
                for i, (kind, _, payload) in enumerate(frames):
                    if kind != wire.CONTROL:
                        continue
                    message = wire.decode_control(payload)
                    if message[0] == "job" and self.reusable:
                        later = frames[i + 1 :]
                        self._early = [wire.decode_control(f[2]) for f in later if f[0] == wire.CONTROL]
                        return message[1:]
                    self.on_control(0, message)
            if not idle and not events and not writing and time.monotonic() >= idle_at:
                # no next job came at once: free the last job's cycles and import the user's
                # modules for the next job (off its start; not when jobs come back to back, which
                # this would delay). Not gc.freeze(): the modules dropped before the next job
                # would then never be collected.
                idle = True
                gc.collect()
                self._modules.import_ahead(graph_bytes)
        return None


def run_worker_from_fds(
    fds: list[int],
    index: int,
    graph_bytes: bytes,
    peer_indexes: list[int],
    sys_path: list[str],
    cwd: str | None,
    sinks_in_driver: bool,
    restore_bytes: bytes | None = None,
) -> None:
    """Entry point in a child of the fork server: ``fds[i]`` is the socket to process ``peer_indexes[i]``."""
    import socket

    sockets = {k: socket.socket(fileno=fd) for k, fd in zip(peer_indexes, fds, strict=True)}
    run_worker(index, graph_bytes, sockets, sys_path, cwd, sinks_in_driver, restore_bytes)


def run_worker(
    index: int,
    graph_bytes: bytes,
    sockets: dict,
    sys_path: list[str],
    cwd: str | None,
    sinks_in_driver: bool,
    restore_bytes: bytes | None = None,
) -> None:
    """Run worker ``index`` (1-based; 0 is the driver) until the driver lets it exit: its first
    job, and the next ones the driver sends. Each job runs in the driver's working directory
    (``cwd``, as the driver sends it with the job; the fork server's may be another)."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the driver, which cancels us
    sys.path[:] = sys_path
    peers = {k: wire.Peer(k, s) for k, s in sockets.items()}
    try:
        _Worker(index, peers).serve(graph_bytes, sinks_in_driver, restore_bytes, cwd)
    finally:
        for p in peers.values():
            p.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
