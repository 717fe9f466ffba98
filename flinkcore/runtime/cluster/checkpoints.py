"""Checkpoints across worker processes: barriers coordinated by the driver (the JobManager role).

The coordinator triggers checkpoint ``n`` in every slot. A slot snapshots its sources' positions
and sends barrier ``n`` after what they emitted; a subtask snapshots its state once barrier ``n``
arrived on every input channel, then passes the barrier on (Flink's asynchronous barrier
snapshotting). Exactly-once aligns: after a channel's barrier, its records wait until the slot
took its snapshot, and the slot's sources pause. At-least-once does not wait (records after a
barrier may be in the snapshot and replayed). A slot acknowledges with its subtasks' state; the
checkpoint is complete when every slot (and the driver's own sinks) acknowledged. It is stored
exactly as the in-process coordinator stores it (:mod:`flinkcore.runtime.checkpointing`:
``chk-<n>/`` files, ``_metadata`` last), so either runtime restores the other's checkpoints and
savepoints, at any parallelism (operators filter their key groups on restore). Then every
subtask hears ``notify_checkpoint_complete(n)`` (transactional sinks commit).
"""

from __future__ import annotations

import logging
import queue
import time
from concurrent.futures import Future
from typing import Any

from flinkcore._core.serde import loads
from flinkcore.runtime.checkpointing import CheckpointSettings, _encode, _file_name
from flinkcore.state.checkpoint_storage import CheckpointStorage, begin_savepoint

__all__ = ["ClusterCheckpointCoordinator"]

log = logging.getLogger(__name__)

POLL_INTERVAL_MS = 10


class _Pending:
    def __init__(self, checkpoint_id: int, savepoint: tuple[str, str, Future] | None) -> None:
        self.id = checkpoint_id
        self.savepoint = savepoint
        self.acks: dict[int, dict] = {}
        self.started = time.monotonic()


class ClusterCheckpointCoordinator:
    """Checkpoints and savepoints of one :class:`~flinkcore.runtime.cluster.ClusterJob` attempt;
    the same interface as the in-process :class:`~flinkcore.runtime.checkpointing.CheckpointCoordinator`."""

    def __init__(self, job: Any, settings: CheckpointSettings, first_checkpoint_id: int = 1) -> None:
        self.job = job
        job.coordinator = self
        self.settings = settings
        self.storage = (
            CheckpointStorage(settings.storage_dir, job.job_id, settings.retained)
            if settings.storage_dir
            else None
        )
        self.next_id = first_checkpoint_id
        self._latest_files: dict[str, bytes] | None = None
        self.latest_id = 0
        self.failures = 0
        self._requests: queue.Queue = queue.Queue()
        self._pending: _Pending | None = None
        self._declined_for_good = False
        self._last_completed_ms = 0
        self._stopped = False

    # -- wiring into the driver's loop ---------------------------------------------------------
    def start(self) -> None:
        pts = self.job.pts
        now = pts.current_processing_time()
        pts.register_timer(now + POLL_INTERVAL_MS, self._poll)
        if self.settings.periodic:
            pts.register_timer(now + self.settings.interval_ms, self._on_checkpoint_timer)

    def stop(self) -> None:
        self._stopped = True
        pending, self._pending = self._pending, None
        if pending is not None and pending.savepoint is not None:
            pending.savepoint[2].set_exception(
                RuntimeError(f"job {self.job.job_id} ended before the savepoint")
            )
        while not self._requests.empty():
            self._requests.get()[2].set_exception(RuntimeError(f"job {self.job.job_id} is no longer running"))

    def _on_checkpoint_timer(self, timestamp: int) -> None:
        if self._stopped:
            return
        now = self.job.pts.current_processing_time()
        if (
            self._pending is None
            and not self._declined_for_good
            and now - self._last_completed_ms >= self.settings.min_pause_ms
        ):
            self.trigger_checkpoint()
        self.job.pts.register_timer(
            max(now + 1, timestamp + self.settings.interval_ms), self._on_checkpoint_timer
        )

    def _poll(self, timestamp: int) -> None:
        if self._stopped:
            return
        if self._pending is None and not self._requests.empty():
            self.trigger_checkpoint(self._requests.get())
        self.job.pts.register_timer(self.job.pts.current_processing_time() + POLL_INTERVAL_MS, self._poll)

    # -- the protocol ----------------------------------------------------------------------------
    def trigger_checkpoint(self, savepoint: tuple[str, str, Future] | None = None) -> int:
        """Start checkpoint ``next_id`` in every slot (a savepoint when ``savepoint`` is given)."""
        checkpoint_id = self.next_id
        self.next_id += 1
        self._pending = _Pending(checkpoint_id, savepoint)
        exactly_once = self.settings.exactly_once or savepoint is not None
        self.job.send_control(("trigger", checkpoint_id, exactly_once))
        task = self.job.task
        task.deferred.append(lambda: task.trigger_checkpoint(checkpoint_id, exactly_once))
        return checkpoint_id

    def acknowledge(self, process: int, checkpoint_id: int, parts: dict) -> None:
        pending = self._pending
        if pending is None or pending.id != checkpoint_id:
            return
        pending.acks[process] = parts
        if len(pending.acks) == self.job.placement.num_workers + 1:
            self._pending = None
            self._complete(pending)

    def decline(self, process: int, checkpoint_id: int, reason: str) -> None:
        pending = self._pending
        if pending is None or pending.id != checkpoint_id:
            return
        self._pending = None
        self.job.send_control(("abort", checkpoint_id))
        self.job.task.abort_checkpoint(checkpoint_id)
        # Sources only finish once: no later checkpoint can succeed either (Flink before FLIP-147).
        self._declined_for_good = True
        log.info(
            "checkpoint %d of job %s declined by slot %d: %s",
            checkpoint_id,
            self.job.job_id,
            process - 1,
            reason,
        )
        if pending.savepoint is not None:
            pending.savepoint[2].set_exception(
                RuntimeError(f"savepoint {checkpoint_id} could not be taken: {reason}")
            )

    def _merge(self, pending: _Pending) -> dict:
        """One job snapshot from every slot's part: node key -> {"operator"|"source": [by subtask]}."""
        merged: dict[str, dict[str, dict[int, Any]]] = {}
        for parts in pending.acks.values():
            for node_key, entry in parts.items():
                target = merged.setdefault(node_key, {})
                for kind, states in entry.items():
                    target.setdefault(kind, {}).update({int(i): s for i, s in states.items()})
        return {
            key: {kind: [states[i] for i in sorted(states)] for kind, states in entry.items()}
            for key, entry in merged.items()
        }

    def _complete(self, pending: _Pending) -> None:
        checkpoint_id = pending.id
        snapshot = self._merge(pending)
        try:
            files = _encode(snapshot)
            names = {key: _file_name(key) for key in files}
            metadata = {"operators": names, "job_name": self.job.graph.job_name}
            path = None
            if pending.savepoint is not None:
                target = begin_savepoint(pending.savepoint[1], self.job.job_id, checkpoint_id)
                for key, data in files.items():
                    target.write(names[key], data)
                path = str(target.complete(metadata).path)
            elif self.storage is not None:
                target = self.storage.begin(checkpoint_id)
                for key, data in files.items():
                    target.write(names[key], data)
                target.complete(metadata)
                self.storage.prune()
        except BaseException as exc:
            self.failures += 1
            log.warning("checkpoint %d of job %s failed: %s", checkpoint_id, self.job.job_id, exc)
            if pending.savepoint is not None:
                pending.savepoint[2].set_exception(exc)
                return
            if self.failures > self.settings.tolerable_failures:
                raise RuntimeError(
                    f"checkpoint {checkpoint_id} failed and the tolerable checkpoint failure number "
                    f"({self.settings.tolerable_failures}) is exceeded"
                ) from exc
            return
        self.failures = 0
        if pending.savepoint is None:
            self._latest_files = files
            self.latest_id = checkpoint_id
        self._last_completed_ms = self.job.pts.current_processing_time()
        self.job.send_control(("complete", checkpoint_id))
        task = self.job.task
        task.deferred.append(lambda: task.notify_checkpoint_complete(checkpoint_id))
        if pending.savepoint is not None:
            kind, _, future = pending.savepoint
            if kind == "stop_with_savepoint":
                self.job.cancel()
            future.set_result(path)

    @property
    def latest(self) -> dict | None:
        """The newest completed checkpoint as a job snapshot."""
        return self.latest_snapshot()

    def latest_snapshot(self) -> dict | None:
        """The newest completed checkpoint as a job snapshot (decoded now: shares no live state)."""
        if self._latest_files is None:
            return None
        return {key: loads(data) for key, data in self._latest_files.items()}

    # -- savepoints ------------------------------------------------------------------------------
    def request(self, kind: str, path: str) -> Future:
        """Queue a savepoint (``kind`` "savepoint" or "stop_with_savepoint") from any thread."""
        if self._stopped:
            raise RuntimeError(f"job {self.job.job_id} is no longer running")
        future: Future = Future()
        self._requests.put((kind, path, future))
        return future
