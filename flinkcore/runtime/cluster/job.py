"""The job coordinator (Flink's JobManager role) in the driver process.

:class:`ClusterJob` runs a job graph over worker processes: it places subtasks into slots
(:class:`~flinkcore.runtime.cluster.task.Placement`), connects every pair of processes with a
socket, starts one worker per slot from a fork server (the graph travels cloudpickled), runs
the driver's own subtasks (the sinks) and watches the workers. The job ends when every process
finished its subtasks; a worker that fails reports its exception, a worker that dies (even by
SIGKILL) is noticed from its process sentinel, and either way the others are cancelled. No
worker of a failed or cancelled job outlives :meth:`ClusterJob.run`: those that do not exit in
time are killed. The workers of a finished job wait for the next job of this driver
(:mod:`flinkcore.runtime.cluster.pool`), which then runs in them instead of forking new ones.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Any

from flinkcore._core.serde import dumps, loads
from flinkcore.runtime.cluster import logs, pool, wire
from flinkcore.runtime.cluster.forkserver import fork_server
from flinkcore.runtime.cluster.task import PeerLost, Placement, SlotTask, node_keys
from flinkcore.runtime.cluster.two_phase import with_two_phase_aggregation
from flinkcore.runtime.graph import StreamGraph
from flinkcore.runtime.processing_time import ProcessingTimeService, SystemClock
from flinkcore.runtime.sources import Source

__all__ = ["ClusterJob", "WorkerFailure"]


#: how long a failure report waits for a dead worker's exit status (its connection closes first;
#: the fork server reaps it a moment later, longer on a loaded machine)
EXIT_STATUS_WAIT = 2.0


class WorkerFailure(RuntimeError):
    """A worker process failed or died; the message says which and why."""


def _driver_paths() -> tuple[str | None, list[str]]:
    """The driver's working directory now (None where it was removed) and ``sys.path`` with
    ``''`` (the working directory) spelled out: a job's workers run in that directory, so its
    relative paths (files, modules) mean there what they mean in the driver, as at parallelism 1
    in-process, whatever directory the fork server started in or a kept worker's last job left."""
    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        return None, list(sys.path)
    return cwd, [p or cwd for p in sys.path]


class _Elsewhere(Source):
    """Stands for a source that runs in another slot (its data need not travel here)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def create_reader(self, subtask_index: int, parallelism: int) -> Any:
        raise RuntimeError(f"source '{self.name}' subtask {subtask_index} does not run in this slot")


class _DriverTask(SlotTask):
    def __init__(self, job: ClusterJob, *args: Any, **kwargs: Any) -> None:
        self.job = job
        super().__init__(*args, **kwargs)

    def on_peer_closed(self, peer: wire.Peer) -> None:
        self.job._worker_gone(peer.index)


class ClusterJob:
    """One run of a job graph over worker processes (parallel task slots)."""

    def __init__(self, graph: StreamGraph, job_id: str | None = None, restore: dict | None = None) -> None:
        self.graph = graph
        self.job_id = job_id or uuid.uuid4().hex
        self.config = graph.config
        self.sinks_in_driver = bool(self.config.get("cluster_sinks_in_driver", True))
        self.runtime_mode = self.config.get("runtime_mode", "STREAMING")
        from flinkcore.runtime.executor import Job

        Job._validate(self)  # the same checks and messages as in one process
        # local pre-aggregation before keyed windows (snapshot keys stay the user's graph's)
        self.graph = graph = with_two_phase_aggregation(graph, node_keys(graph))
        self.placement = Placement(graph, self.sinks_in_driver)
        self.pts = ProcessingTimeService(SystemClock())
        self.status = "CREATED"
        self._cancel = threading.Event()
        self._restore = restore
        self.processes: dict[int, Any] = {}
        self._pids: list[int] = []
        self.peers: dict[int, wire.Peer] = {}
        self._state: dict[int, str] = {}  # worker -> running | finished | cancelled | failed | dead
        self._failure: BaseException | None = None
        self.records_sent = 0
        #: CPU time the workers used (user + system), reported when they finish
        self.worker_cpu_seconds = 0.0
        #: whether the workers may wait for the next job once this one finished (not when it left
        #: threads running in one)
        self._keep_workers = True
        self._node_keys = node_keys(graph)
        #: worker graphs pickled, by what of each node they hold (see _worker_graph)
        self._graph_bytes: dict[tuple, bytes] = {}
        #: the checkpoint coordinator of this attempt (it sets itself here)
        self.coordinator: Any = None
        self.task: SlotTask | None = None
        self.start_ms = 0
        self.end_ms = 0
        #: the worker processes (newly forked, or kept from an earlier job)
        self._workers: pool.WorkerSet | None = None
        #: seconds the workers wait for the next job after this one finished (0: they exit)
        self._idle_timeout = pool.idle_timeout(self.config)
        #: the levels of this process's loggers, for the workers (their records come back here)
        self._log_levels = logs.driver_levels()

    # -- control -------------------------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (for tests and monitoring)."""
        return list(self._pids)

    def _node_key(self, node: Any) -> str:
        """The key of ``node``'s state in a snapshot (the in-process executor's rule)."""
        return self._node_keys[node.id]

    def send_control(self, message: Any) -> None:
        """Send a control message to every worker."""
        data = wire.encode_control(message)
        for peer in self.peers.values():
            peer.send(wire.CONTROL, 0, data)

    # -- start ---------------------------------------------------------------------------------
    def _worker_graph(self, k: int) -> bytes:
        """The graph worker ``k`` gets: without what runs elsewhere — the driver's own nodes (a
        sink may hold objects of the caller, such as a queue, that cannot travel) and sources that
        run in other slots (a collection source carries its data)."""
        import cloudpickle

        pl = self.placement
        # what of each node worker k gets: 0 nothing (runs elsewhere), 1 a stand-in source, 2 all
        shape = []
        for nid, node in self.graph.nodes.items():
            here = any(pl.process_of(nid, i) == k for i in range(node.parallelism))
            shape.append(0 if nid in pl.in_driver or (not here and not node.is_source) else 2 if here else 1)
        key = tuple(shape)
        if key in self._graph_bytes:  # workers of one shape get one graph: pickled once
            return self._graph_bytes[key]
        graph = copy.copy(self.graph)
        nodes = {}
        for (nid, node), what in zip(self.graph.nodes.items(), shape, strict=True):
            if what == 0:
                node = dataclasses.replace(node, operator_factory=None)
            elif what == 1:
                node = dataclasses.replace(node, source=_Elsewhere(node.name))
            nodes[nid] = node
        graph.nodes = nodes
        graph.config = {**graph.config, logs.CONFIG_KEY: self._log_levels}
        try:
            data = self._graph_bytes[key] = cloudpickle.dumps(graph, protocol=pickle.HIGHEST_PROTOCOL)
            return data
        except Exception as exc:
            raise ValueError(
                f"the job's functions cannot be sent to worker processes ({type(exc).__name__}: {exc}). At "
                "parallelism > 1 every function, source and key selector must be picklable by cloudpickle "
                "(no open files, locks, sockets or threads in closures); or run the job in this process "
                "with configuration 'execution.runtime: in-process'."
            ) from exc

    def _start(self) -> None:
        restore_bytes = dumps(self._restore) if self._restore else None
        n = self.placement.num_workers
        key = pool.set_key(n, self.config)
        workers = pool.pool().take(key) if self._idle_timeout > 0 else None
        if workers is not None:
            self._run_in(workers, restore_bytes)
            return
        server = fork_server()
        ends: dict[int, dict[int, socket.socket]] = {k: {} for k in range(n + 1)}
        for a in range(n + 1):
            for b in range(a + 1, n + 1):
                sa, sb = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                ends[a][b], ends[b][a] = sa, sb
        cwd, sys_path = _driver_paths()

        def requests():  # each graph is pickled while the server forks the worker before
            for k in range(1, n + 1):
                peer_indexes = sorted(ends[k])
                graph = self._worker_graph(k)
                args = (k, graph, peer_indexes, sys_path, cwd, self.sinks_in_driver, restore_bytes)
                yield [ends[k][i] for i in peer_indexes], args, graph, sys_path

        pids: list[int] = []
        try:
            server.fork_many(requests(), pids)
        except BaseException:
            for s in ends[0].values():  # the workers started see the driver gone, and exit
                s.close()
            raise
        finally:
            self._graph_bytes.clear()
            for k, pid in enumerate(pids, 1):
                self.processes[k] = pid
                self._pids.append(pid)
                self._state[k] = "running"
            for k in range(1, n + 1):
                for s in ends[k].values():
                    s.close()
        self.peers = {k: wire.Peer(k, s) for k, s in ends[0].items()}
        self._workers = pool.WorkerSet(key, pids, self.peers)

    def _run_in(self, workers: pool.WorkerSet, restore_bytes: bytes | None) -> None:
        """Start the job in the workers of an earlier one (see :mod:`~flinkcore.runtime.cluster.pool`)."""
        self._workers = workers
        self.peers = workers.peers
        for k, pid in enumerate(workers.pids, 1):
            self.processes[k] = pid
            self._pids.append(pid)
            self._state[k] = "running"
        cwd, sys_path = _driver_paths()
        try:
            for k in self.processes:
                graph = self._worker_graph(k)
                job = ("job", workers.job, graph, self.sinks_in_driver, restore_bytes, sys_path, cwd)
                workers.peers[k].send(wire.CONTROL, 0, wire.encode_control(job))
        finally:
            self._graph_bytes.clear()

    # -- events from workers -------------------------------------------------------------------
    def _on_control(self, source: int, message: Any) -> None:
        kind = message[0]
        if kind == "finished":  # its subtasks finished; it stays in the job until "end"
            self._state[source] = "finished"
            self.records_sent += int(message[1])
            self.worker_cpu_seconds += float(message[2])
        elif kind == "closed":  # it committed and closed its subtasks after "end"
            self._state[source] = "closed"
            if not message[1]:  # the job left threads running there (logged by the worker)
                self._keep_workers = False
            if all(s == "closed" for s in self._state.values()) and not self._idle_timeout:
                self.send_control(("shutdown",))
        elif kind == "log":
            for record in message[1]:
                logs.handle(record)
        elif kind == "cancelled":
            self._state[source] = "cancelled"
        elif kind == "ack":
            if self.coordinator is not None:
                self.coordinator.acknowledge(source, message[1], loads(message[2]))
        elif kind == "failed":
            self._state[source] = "failed"
            data, text = message[1], message[2]
            exc: BaseException | None = None
            if data is not None:
                try:
                    exc = pickle.loads(data)
                except Exception:
                    exc = None
            if isinstance(exc, PeerLost) and exc.process in self.processes:
                # A worker lost its connection to another one: the root cause is that one's death
                # (reported with its exit status), whichever of the two reports reached us first.
                self._worker_gone(exc.process)
            if exc is None:
                exc = WorkerFailure(
                    f"slot {source - 1} (worker process {self.processes[source]}) failed:\n{text}"
                )
            elif hasattr(exc, "add_note"):  # Python 3.11+; on 3.10 the exception goes as it is
                exc.add_note(
                    f"raised in slot {source - 1} (worker process {self.processes[source]}):\n{text}"
                )
            if self._failure is None:
                self._failure = exc

    def _driver_checkpoint_done(self, checkpoint_id: int, parts: dict) -> None:
        if self.coordinator is not None:
            self.coordinator.acknowledge(0, checkpoint_id, parts)

    def _worker_gone(self, k: int) -> None:
        if self._state.get(k) in ("running", "finished", None):
            pid = self.processes[k]
            self._state[k] = "dead"
            if self._failure is None:
                code = self._wait_exit([pid], EXIT_STATUS_WAIT).get(pid)
                if code is None:
                    how = "it closed its connection"
                elif isinstance(code, int) and code < 0:
                    how = f"killed by {signal.Signals(-code).name}"
                else:
                    how = f"exit code {code}"
                self._failure = WorkerFailure(
                    f"slot {k - 1} (worker process {pid}) died ({how}) while job {self.job_id} was running"
                )

    # -- running -------------------------------------------------------------------------------
    def run(self) -> None:
        """Run until every subtask finished (raises the first failure)."""
        self.status = "RUNNING"
        self.start_ms = int(time.time() * 1000)
        opened: list[Any] = []
        task = None
        try:
            self._start()
            task = _DriverTask(self, self.graph, self.placement, 0, self.peers, self.pts, self._on_control)
            self.task = task
            task.on_checkpoint_done = self._driver_checkpoint_done
            opened = task.open(self._restore, self._node_key)
            while True:
                if self._failure is not None:
                    raise self._failure
                if self.cancelled:
                    break
                if task.finished and all(s == "finished" for s in self._state.values()):
                    break
                task.step()
            if self.cancelled:
                task.deliver_completions()  # (a stop-with-savepoint's: its sinks commit it)
            else:
                self._end(task)
            self.status = "CANCELED" if self.cancelled else "FINISHED"
        except BaseException:
            self.status = "FAILED"
            raise
        finally:
            self.end_ms = int(time.time() * 1000)
            self._stop_workers()
            for obj in opened:
                try:
                    obj.close()
                except Exception:
                    if self.status != "FAILED":
                        raise

    def _end(self, task: SlotTask) -> None:
        """Every subtask finished: the job succeeded. Its sinks commit (here and, on "end", in
        every worker), and the workers close their subtasks; returns once they all did, so what
        the job wrote is visible when ``execute()`` returns."""
        for op in task.operators():
            op.finish()
        self.send_control(("end",))
        while not all(s == "closed" for s in self._state.values()):
            if self._failure is not None:
                raise self._failure
            task.step()

    def _stop_workers(self) -> None:
        """After success every worker has closed its subtasks (its output delivered, its sinks
        committed): the workers wait for the driver's next job (:meth:`pool.WorkerPool.park`), or,
        with reuse off, exit while the caller goes on (tearing down a worker's address space
        takes the kernel tens of milliseconds: W2 at 100M events, ~37 ms; a daemon thread joins
        them, see :meth:`join_workers`). After a failure or a cancel the workers are told to
        stop, and those that do not in a moment are killed; all are joined before returning (a
        restarted attempt must not meet them)."""
        workers = self._workers
        if self.status == "FINISHED" and workers is not None:
            if self._idle_timeout > 0 and self._keep_workers:
                pool.pool().park(workers, self._idle_timeout)
            else:
                workers.release()
            return
        deadline = pool.tell(self.peers.values(), ("cancel",))
        pool.reap(list(self.processes.values()), deadline)
        for peer in self.peers.values():
            peer.close()
        if workers is not None:
            workers.reaped = True

    def join_workers(self, timeout: float | None = None) -> bool:
        """Let this job's worker processes exit (if they wait for a next job) and wait until they
        have. True when they have."""
        workers = self._workers
        if workers is None or workers.reaped:
            return True
        pool.pool().release(workers)
        if workers.reaper is None:  # running a later job
            return False
        workers.reaper.join(timeout)
        return not workers.reaper.is_alive()

    def _wait_exit(self, pids: list[int], timeout: float) -> dict[int, int | str]:
        """Exit codes of ``pids`` once all ended (reaped by the fork server), or at the timeout."""
        return fork_server().wait_exit(pids, timeout)
