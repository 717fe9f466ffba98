"""Checkpoints across worker processes: barriers coordinated by the driver (the JobManager role).

The coordinator triggers checkpoint ``n`` in every slot. A slot snapshots its sources' positions
and sends barrier ``n`` after what they emitted (a source that finished, such as a bounded side
input, at its end: its barriers follow its end of input); a subtask snapshots its state once
barrier ``n`` arrived on every input channel, then passes the barrier on (Flink's asynchronous
barrier snapshotting). A slot whose subtasks all finished stays in the job until it ends and
snapshots them as they ended (Flink's checkpoints after tasks finished, FLIP-147). Exactly-once
aligns: after a channel's barrier, its records wait until the slot took its snapshot, and the
slot's sources pause. At-least-once does not wait (records after a barrier may be in the snapshot
and replayed).
A slot acknowledges with its subtasks' state; the checkpoint is complete when every slot (and the
driver's own sinks) acknowledged. One not complete within the checkpoint timeout expires: every
slot aborts it, and it counts as a failed checkpoint (past the tolerable number the job fails).
A checkpoint is stored exactly as the in-process coordinator stores it
(:mod:`flinkcore.runtime.checkpointing`: ``chk-<n>/`` files, ``_metadata`` last), so either
runtime restores the other's checkpoints and savepoints, at any parallelism (operators filter
their key groups on restore, sources split their readers' positions). Then every subtask hears
``notify_checkpoint_complete(n)`` (transactional sinks commit).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flinkcore.runtime.checkpointing import (
    POLL_INTERVAL_MS,
    CheckpointSettings,
    CoordinatorBase,
    SavepointRequest,
    encode_snapshot,
    write_files,
)
from flinkcore.state.checkpoint_storage import begin_savepoint

__all__ = ["ClusterCheckpointCoordinator"]

log = logging.getLogger(__name__)


class _Pending:
    def __init__(self, checkpoint_id: int, savepoint: SavepointRequest | None) -> None:
        self.id = checkpoint_id
        self.savepoint = savepoint
        self.acks: dict[int, dict] = {}
        self.started = time.monotonic()


class ClusterCheckpointCoordinator(CoordinatorBase):
    """Checkpoints and savepoints of one :class:`~flinkcore.runtime.cluster.ClusterJob` attempt;
    the same interface as the in-process :class:`~flinkcore.runtime.checkpointing.CheckpointCoordinator`."""

    def __init__(self, job: Any, settings: CheckpointSettings, first_checkpoint_id: int = 1) -> None:
        super().__init__(job, settings, first_checkpoint_id)
        job.coordinator = self
        self._pending: _Pending | None = None

    def stop(self) -> None:
        self._stopped = True
        pending, self._pending = self._pending, None
        if pending is not None and pending.savepoint is not None:
            pending.savepoint.future.set_exception(
                RuntimeError(f"job {self.job.job_id} ended before the savepoint")
            )
        self._fail_queued_requests()

    def _busy(self) -> bool:
        return self._pending is not None

    def _poll(self, timestamp: int) -> None:
        if self._stopped:
            return
        self._expire_slow_checkpoint()
        if self._pending is None and not self._requests.empty():
            self.trigger_checkpoint(self._requests.get())
        self.job.pts.register_timer(self.job.pts.current_processing_time() + POLL_INTERVAL_MS, self._poll)

    def _expire_slow_checkpoint(self) -> None:
        """A checkpoint not acknowledged by every slot within the checkpoint timeout is aborted
        everywhere (its alignments end, its late barriers and acknowledgements are ignored) and
        counts as a failed checkpoint (a savepoint fails its request); the next one may start."""
        pending = self._pending
        if pending is None or (time.monotonic() - pending.started) * 1000 <= self.settings.timeout_ms:
            return
        self._pending = None
        checkpoint_id = pending.id
        self.job.send_control(("abort", checkpoint_id))
        self.job.task.abort_checkpoint(checkpoint_id)
        missing = sorted(set(range(self.job.placement.num_workers + 1)) - set(pending.acks))
        error = TimeoutError(
            f"not acknowledged within {self.settings.timeout_ms} ms by "
            + ", ".join("the driver" if k == 0 else f"slot {k - 1}" for k in missing)
        )
        if pending.savepoint is not None:
            log.warning("savepoint %d of job %s failed: %s", checkpoint_id, self.job.job_id, error)
            pending.savepoint.future.set_exception(error)
        else:
            self._count_failure(checkpoint_id, error)

    # -- the protocol ----------------------------------------------------------------------------
    def trigger_checkpoint(self, savepoint: SavepointRequest | None = None) -> int:
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
            files = encode_snapshot(snapshot)
            path = None
            if pending.savepoint is not None:
                target = begin_savepoint(pending.savepoint.path, self.job.job_id, checkpoint_id)
                path = str(write_files(target, files, self.job).path)
            elif self.storage is not None:
                write_files(self.storage.begin(checkpoint_id), files, self.job)
                self.storage.prune()
        except BaseException as exc:
            if pending.savepoint is not None:  # a failed savepoint fails its request, not the job
                log.warning("savepoint %d of job %s failed: %s", checkpoint_id, self.job.job_id, exc)
                pending.savepoint.future.set_exception(exc)
            else:
                self._count_failure(checkpoint_id, exc)
            return
        if pending.savepoint is None:
            self._completed(checkpoint_id, files)
        else:
            self._last_completed_ms = self.job.pts.current_processing_time()
        self.job.send_control(("complete", checkpoint_id))
        self.job.task.checkpoint_completed(checkpoint_id)
        if pending.savepoint is not None:
            if pending.savepoint.kind == "stop_with_savepoint":
                self.job.cancel()
            pending.savepoint.future.set_result(path)
