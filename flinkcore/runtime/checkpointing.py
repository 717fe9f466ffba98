"""Checkpoints and savepoints of a job running in this process, and restoring from them.

The executor runs every operator to quiescence between two polls of its sources, on one thread
(Flink's mailbox model). A snapshot taken there, from a processing-time callback, has no record
in flight: the sources' positions and every operator's state form a consistent cut without
barriers. (Across processes, the parallel runtime adds aligned barriers.)

A checkpoint goes in two phases, as in Flink:

1. synchronous, on the task thread: ``prepare_snapshot_pre_barrier(id)`` on every operator (a
   transactional sink pre-commits there), then ``Job.snapshot()``. State backends only take what
   must be taken now (heap: copies of the tables; LMDB: its cache written back and a read view
   pinned) and return a :class:`~flinkcore.state.snapshots.DeferredSnapshot`.
2. asynchronous, on a writer thread: deferred parts are copied out, every operator's state is
   serialized into its own file of a ``chk-<n>`` directory, ``_metadata`` is written last.

When the checkpoint is complete, ``notify_checkpoint_complete(id)`` reaches every operator on the
task thread again (sinks commit there). Savepoints and stop-with-savepoint requests from other
threads (a JobClient, the control socket) are queued and served on the task thread the same way.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from flinkcore._core.serde import dumps, loads
from flinkcore.state.checkpoint_storage import (
    CheckpointStorage,
    CompletedCheckpoint,
    begin_savepoint,
    load_checkpoint,
)
from flinkcore.state.snapshots import deferred_snapshots, resolve_deferred

__all__ = [
    "CheckpointCoordinator",
    "CheckpointSettings",
    "CheckpointStats",
    "StateMappingError",
    "load_snapshot",
]

log = logging.getLogger(__name__)

#: how often the task thread looks for finished asynchronous checkpoints and queued requests
POLL_INTERVAL_MS = 10


class StateMappingError(Exception):
    """A snapshot holds state for operators this job does not have (it changed too much)."""


@dataclass
class CheckpointSettings:
    """What the job's CheckpointConfig says, in the runtime's terms."""

    interval_ms: int = -1
    storage_dir: str | None = None
    exactly_once: bool = True
    min_pause_ms: int = 0
    timeout_ms: int = 600_000
    tolerable_failures: int = 0
    retained: int = 1
    retain_on_cancellation: bool = False
    #: checkpoints outlive a failed job (RETAIN_ON_CANCELLATION or DELETE_ON_CANCELLATION)
    externalized: bool = False

    @property
    def periodic(self) -> bool:
        return self.interval_ms > 0


@dataclass(frozen=True)
class CheckpointStats:
    """One completed checkpoint: how long the task paused, how long writing took, how big."""

    checkpoint_id: int
    sync_ms: float
    async_ms: float
    size_bytes: int


@dataclass
class SavepointRequest:
    """A savepoint asked for from another thread, served on the task thread."""

    kind: str  # "savepoint" | "stop_with_savepoint"
    path: str
    future: Future = field(default_factory=Future)


def _file_name(node_key: str) -> str:
    return "op-" + re.sub(r"[^A-Za-z0-9_.-]", "_", node_key)


def _operators(job: Any) -> list:
    return [
        op
        for node_id, insts in job.operators.items()
        if not job.graph.nodes[node_id].is_source
        for op in insts
    ]


def encode_snapshot(snapshot: dict) -> dict[str, bytes]:
    """One state file per operator (node key -> bytes), after deferred parts were copied out."""
    files = {}
    for node_key, entry in snapshot.items():
        files[node_key] = dumps(resolve_deferred(entry))
    return files


def load_snapshot(path: str) -> tuple[dict, CompletedCheckpoint]:
    """The job snapshot (node key -> state) stored in a checkpoint or savepoint directory."""
    completed = load_checkpoint(path)
    operators = completed.metadata.get("operators", {})
    return {key: loads(completed.read(name)) for key, name in operators.items()}, completed


def check_mapping(snapshot: dict, job: Any, allow_non_restored_state: bool = False) -> None:
    """Fail clearly when the snapshot has state no operator of the job will take."""
    keys = {job._node_key(node) for node in job.graph.nodes.values()}
    missing = sorted(k for k in snapshot if k not in keys)
    if missing and not allow_non_restored_state:
        raise StateMappingError(
            f"the snapshot has state for operators that are not in this job: {missing}. Give operators "
            "stable ids with .uid('...') so state maps across job changes, or set "
            "execution.savepoint.ignore-unclaimed-state: true to drop that state."
        )


def write_files(target: Any, files: dict[str, bytes], job: Any, **metadata: Any) -> CompletedCheckpoint:
    """Write a job's state files into a pending checkpoint or savepoint directory, ``_metadata``
    last (what makes it complete); a failed write leaves no half directory behind."""
    names = {key: _file_name(key) for key in files}
    try:
        for key, data in files.items():
            target.write(names[key], data)
        return target.complete({"operators": names, "job_name": job.graph.job_name, **metadata})
    except BaseException:
        target.abort()
        raise


class CoordinatorBase:
    """What both runtimes' checkpoint coordinators share: storage, ids, the periodic trigger on
    the job's processing-time service, failure counting, savepoint requests from other threads,
    and the newest completed checkpoint kept for restarts."""

    def __init__(self, job: Any, settings: CheckpointSettings, first_checkpoint_id: int = 1) -> None:
        self.job = job
        self.settings = settings
        self.storage = (
            CheckpointStorage(settings.storage_dir, job.job_id, settings.retained)
            if settings.storage_dir
            else None
        )
        self.next_id = first_checkpoint_id
        #: the newest completed checkpoint's state files, kept in memory for restarts
        self._latest_files: dict[str, bytes] | None = None
        self.latest_id = 0
        self.failures = 0
        self._requests: queue.Queue[SavepointRequest] = queue.Queue()
        self._last_completed_ms = 0
        self._stopped = False

    def start(self) -> None:
        pts = self.job.pts
        now = pts.current_processing_time()
        pts.register_timer(now + POLL_INTERVAL_MS, self._poll)
        if self.settings.periodic:
            pts.register_timer(now + self.settings.interval_ms, self._on_checkpoint_timer)

    def _busy(self) -> bool:
        """A checkpoint is in flight (or none can be taken any more): skip this trigger."""
        raise NotImplementedError

    def _poll(self, timestamp: int) -> None:
        raise NotImplementedError

    def trigger_checkpoint(self) -> int:
        raise NotImplementedError

    def _on_checkpoint_timer(self, timestamp: int) -> None:
        if self._stopped:
            return
        now = self.job.pts.current_processing_time()
        if not self._busy() and now - self._last_completed_ms >= self.settings.min_pause_ms:
            self.trigger_checkpoint()
        self.job.pts.register_timer(
            max(now + 1, timestamp + self.settings.interval_ms), self._on_checkpoint_timer
        )

    def _count_failure(self, checkpoint_id: int, error: BaseException) -> None:
        self.failures += 1
        log.warning("checkpoint %d of job %s failed: %s", checkpoint_id, self.job.job_id, error)
        if self.failures > self.settings.tolerable_failures:
            raise RuntimeError(
                f"checkpoint {checkpoint_id} failed and the tolerable checkpoint failure number "
                f"({self.settings.tolerable_failures}) is exceeded"
            ) from error

    def _completed(self, checkpoint_id: int, files: dict[str, bytes]) -> None:
        self.failures = 0
        self._latest_files, self.latest_id = files, checkpoint_id
        self._last_completed_ms = self.job.pts.current_processing_time()

    def latest_snapshot(self) -> dict | None:
        """The newest completed checkpoint as a job snapshot (decoded now: shares no live state)."""
        if self._latest_files is None:
            return None
        return {key: loads(data) for key, data in self._latest_files.items()}

    def request(self, kind: str, path: str) -> Future:
        """Queue a savepoint (``kind`` "savepoint" or "stop_with_savepoint") from any thread."""
        if self._stopped:
            raise RuntimeError(f"job {self.job.job_id} is no longer running")
        req = SavepointRequest(kind, path)
        self._requests.put(req)
        return req.future

    def _fail_queued_requests(self) -> None:
        while not self._requests.empty():
            self._requests.get().future.set_exception(
                RuntimeError(f"job {self.job.job_id} is no longer running")
            )


class CheckpointCoordinator(CoordinatorBase):
    """Takes the checkpoints and savepoints of one in-process :class:`~flinkcore.runtime.executor.Job`."""

    def __init__(self, job: Any, settings: CheckpointSettings, first_checkpoint_id: int = 1) -> None:
        super().__init__(job, settings, first_checkpoint_id)
        #: timings and sizes of the completed checkpoints, oldest first
        self.history: list[CheckpointStats] = []
        self._done: queue.Queue[tuple[CheckpointStats, BaseException | None, dict | None]] = queue.Queue()
        self._in_flight: threading.Thread | None = None
        self._in_flight_id = 0
        self._in_flight_since_ms = 0
        #: checkpoints that timed out: their late completion is ignored
        self._expired: set[int] = set()

    def stop(self) -> None:
        """The job ended: wait for the checkpoint in flight, fail requests nobody will serve."""
        self._stopped = True
        if self._in_flight is not None:
            self._in_flight.join()
        self._deliver_completions()
        self._fail_queued_requests()

    def _busy(self) -> bool:
        return self._in_flight is not None

    def _poll(self, timestamp: int) -> None:
        if self._stopped:
            return
        self._deliver_completions()
        self._expire_slow_checkpoint()
        while not self._requests.empty():
            self._serve(self._requests.get())
        self.job.pts.register_timer(self.job.pts.current_processing_time() + POLL_INTERVAL_MS, self._poll)

    # -- checkpoints --------------------------------------------------------------------------
    def _take(self, checkpoint_id: int) -> dict:
        for op in _operators(self.job):
            op.prepare_snapshot_pre_barrier(checkpoint_id)
        with deferred_snapshots():
            return self.job.snapshot()

    def trigger_checkpoint(self) -> int:
        """Take the synchronous part now and write the rest on a writer thread."""
        checkpoint_id = self.next_id
        self.next_id += 1
        started = time.perf_counter()
        snapshot = self._take(checkpoint_id)
        sync_ms = (time.perf_counter() - started) * 1000

        def write() -> None:
            error: BaseException | None = None
            files: dict[str, bytes] | None = None
            began = time.perf_counter()
            try:
                files = encode_snapshot(snapshot)
                if self.storage is not None:
                    write_files(self.storage.begin(checkpoint_id), files, self.job)
                    self.storage.prune()
            except BaseException as exc:  # reported on the task thread
                error = exc
            stats = CheckpointStats(
                checkpoint_id,
                sync_ms,
                (time.perf_counter() - began) * 1000,
                sum(map(len, (files or {}).values())),
            )
            self._done.put((stats, error, files))

        self._in_flight = threading.Thread(
            target=write, name=f"flinkcore-checkpoint-{checkpoint_id}", daemon=True
        )
        self._in_flight_id = checkpoint_id
        self._in_flight_since_ms = self.job.pts.current_processing_time()
        self._in_flight.start()
        return checkpoint_id

    def _expire_slow_checkpoint(self) -> None:
        """A checkpoint still being written after the checkpoint timeout counts as failed."""
        if self._in_flight is None:
            return
        if self.job.pts.current_processing_time() - self._in_flight_since_ms <= self.settings.timeout_ms:
            return
        self._expired.add(self._in_flight_id)
        self._in_flight = None
        self._count_failure(
            self._in_flight_id, TimeoutError(f"not written within {self.settings.timeout_ms} ms")
        )

    def _deliver_completions(self) -> None:
        while not self._done.empty():
            stats, error, files = self._done.get()
            checkpoint_id = stats.checkpoint_id
            if checkpoint_id in self._expired:
                self._expired.discard(checkpoint_id)
                continue
            self._in_flight = None
            if error is not None:
                self._count_failure(checkpoint_id, error)
                continue
            self._completed(checkpoint_id, files)
            self.history.append(stats)
            self._notify_complete(checkpoint_id)

    def _notify_complete(self, checkpoint_id: int) -> None:
        for op in _operators(self.job):
            op.notify_checkpoint_complete(checkpoint_id)

    # -- savepoints ---------------------------------------------------------------------------
    def _serve(self, req: SavepointRequest) -> None:
        try:
            path = self.take_savepoint(req.path)
        except BaseException as exc:
            req.future.set_exception(exc)
            return
        if req.kind == "stop_with_savepoint":
            self.job.cancel()
        req.future.set_result(path)

    def take_savepoint(self, target_dir: str) -> str:
        """A savepoint, written synchronously on the task thread (a savepoint is rare)."""
        if self._in_flight is not None:
            self._in_flight.join()
            self._deliver_completions()
        checkpoint_id = self.next_id
        self.next_id += 1
        files = encode_snapshot(self._take(checkpoint_id))
        completed = write_files(begin_savepoint(target_dir, self.job.job_id, checkpoint_id), files, self.job)
        self._notify_complete(checkpoint_id)
        return str(completed.path)
