"""One job across its attempts: restore, checkpoints, restarts, savepoints and remote control.

:class:`JobExecution` is what ``env.execute()`` runs. Each attempt is a fresh
:class:`~flinkcore.runtime.executor.Job` built from the same graph, restored from the newest
completed checkpoint (or the savepoint the job was started from), with a
:class:`~flinkcore.runtime.checkpointing.CheckpointCoordinator` taking checkpoints while it runs.
A failure is retried as the restart policy says; what a restarted attempt replays from its
sources' positions, transactional sinks have not committed, so output stays exactly-once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any

from flinkcore.runtime.checkpointing import (
    CheckpointCoordinator,
    CheckpointSettings,
    check_mapping,
    load_snapshot,
)
from flinkcore.runtime.cluster import create_coordinator, create_job
from flinkcore.runtime.executor import Job
from flinkcore.runtime.graph import StreamGraph
from flinkcore.runtime.registry import JobRegistration
from flinkcore.runtime.restart import NoRestart, RestartPolicy
from flinkcore.state.checkpoint_storage import IncompatibleSnapshotError

__all__ = ["JobExecution"]

log = logging.getLogger(__name__)


#: attempts that ended, dropped by a background thread (:func:`_retire`)
_retired: queue.SimpleQueue = queue.SimpleQueue()
_reaper: threading.Thread | None = None
_reaper_lock = threading.Lock()


def _retire(attempt: Any) -> None:
    """Drop an ended attempt on a background thread: freeing its operators, state and source
    readers takes a large job a while (unmapping W2's 2.4 GB of input read from files: ~0.1 s, in
    the kernel, without the GIL), which the caller's ``execute()`` then does not wait for, as it
    does not wait for worker processes to tear down theirs."""
    global _reaper
    with _reaper_lock:
        if _reaper is None or not _reaper.is_alive():  # none yet, or this is a forked child
            _reaper = threading.Thread(target=_drop_retired, name="flinkcore-retired-jobs", daemon=True)
            _reaper.start()
    _retired.put(attempt)


def wait_for_retired(timeout: float = 10.0) -> bool:
    """Wait until the attempts retired so far are freed (benchmarks: one run's teardown off the
    next one's clock). True when they are."""
    done = threading.Event()
    _retire(done)
    return done.wait(timeout)


def _drop_retired() -> None:
    while True:
        attempt = _retired.get()
        if isinstance(attempt, threading.Event):  # wait_for_retired's: everything before it is gone
            attempt.set()
        del attempt


class JobExecution:
    """Runs a job graph to its end, restarting it from checkpoints after failures."""

    def __init__(
        self,
        graph: StreamGraph,
        checkpoints: CheckpointSettings | None = None,
        restart_policy: RestartPolicy | None = None,
        restore_path: str | None = None,
        allow_non_restored_state: bool = False,
        register: bool = False,
        job_id: str | None = None,
    ) -> None:
        self.graph = graph
        self.job_id = job_id or uuid.uuid4().hex
        self.settings = checkpoints or CheckpointSettings()
        self.restart_policy = restart_policy or NoRestart()
        self.allow_non_restored_state = allow_non_restored_state
        self.register = register
        self.status = "CREATED"
        self.restarts = 0
        #: set by cancel(); shared with every attempt's Job (and with a collect sink)
        self._cancel = threading.Event()
        self.job: Job | None = None
        self.coordinator: CheckpointCoordinator | None = None
        self._restore: dict | None = None
        self._storage = None
        self._next_checkpoint_id = 1
        if restore_path:
            self._restore, completed = load_snapshot(restore_path)
            self._next_checkpoint_id = completed.checkpoint_id + 1
            log.info("job %s restores from %s", self.job_id, completed.path)
        self._attempt_ready = threading.Condition()

    # -- control from other threads -------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()
        if self.job is not None:
            self.job.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _coordinator(self) -> CheckpointCoordinator:
        with self._attempt_ready:
            while self.coordinator is None and self.status in ("CREATED", "RUNNING"):
                self._attempt_ready.wait(0.05)
            if self.coordinator is None:
                raise RuntimeError(f"job {self.job_id} is {self.status}, it takes no savepoints")
            return self.coordinator

    def trigger_savepoint(self, path: str) -> Future:
        """A savepoint of the running job in a new directory under ``path``; the future's
        result is that directory."""
        return self._coordinator().request("savepoint", path)

    def stop_with_savepoint(self, path: str) -> Future:
        """Take a savepoint, commit it, then stop the job."""
        return self._coordinator().request("stop_with_savepoint", path)

    # -- running --------------------------------------------------------------------------------
    def run(self) -> None:
        """Run on this thread until the job finishes, is cancelled, or fails for good."""
        try:
            if not self.register:
                self._run_attempts()
                return
            handlers = {
                "cancel": self.cancel,
                "trigger_savepoint": lambda path: self.trigger_savepoint(path).result(),
                "stop_with_savepoint": lambda path: self.stop_with_savepoint(path).result(),
            }
            with JobRegistration(self.job_id, self.graph.job_name, handlers, lambda: self.status):
                self._run_attempts()
        finally:
            with self._attempt_ready:
                last, self.job, self.coordinator = self.job, None, None
            if last is not None:
                _retire(last)

    def _run_attempts(self) -> None:
        self.status = "RUNNING"
        try:
            while True:
                # worker processes per execution.runtime (flinkcore.runtime.cluster), else this thread
                job = create_job(self.graph, job_id=self.job_id, restore=self._restore)
                job._cancel = self._cancel
                if self._restore is not None:
                    check_mapping(self._restore, job, self.allow_non_restored_state)
                coordinator = create_coordinator(job, self.settings, self._next_checkpoint_id)
                self._storage = coordinator.storage
                coordinator.start()
                with self._attempt_ready:
                    self.job, self.coordinator = job, coordinator
                    self._attempt_ready.notify_all()
                try:
                    job.run()
                    coordinator.stop()
                    break
                except Exception as failure:
                    self._stop_quietly(coordinator)
                    if self.cancelled or isinstance(failure, IncompatibleSnapshotError):
                        raise
                    delay_ms = self.restart_policy.on_failure(int(time.time() * 1000))
                    if delay_ms is None:
                        raise
                    self.restarts += 1
                    latest = coordinator.latest_snapshot()
                    if latest is not None:
                        self._restore = latest
                    self._next_checkpoint_id = coordinator.next_id
                    log.warning(
                        "job %s failed (%s: %s); restart %d in %d ms from %s",
                        self.job_id,
                        type(failure).__name__,
                        failure,
                        self.restarts,
                        delay_ms,
                        "its last completed checkpoint" if self._restore is not None else "its start",
                    )
                    with self._attempt_ready:
                        self.coordinator = None
                    if self._cancel.wait(delay_ms / 1000):
                        raise
        except BaseException:
            self.status = "CANCELED" if self.cancelled else "FAILED"
            self._clean_up_checkpoints()
            raise
        finally:
            with self._attempt_ready:
                self._attempt_ready.notify_all()
        self.status = "CANCELED" if self.cancelled else "FINISHED"
        self._clean_up_checkpoints()

    def _stop_quietly(self, coordinator: CheckpointCoordinator) -> None:
        try:
            coordinator.stop()
        except Exception as exc:  # the job's own failure is the one to report
            log.warning("while stopping checkpoints of failed job %s: %s", self.job_id, exc)

    def _clean_up_checkpoints(self) -> None:
        """Flink's retention: keep checkpoints after cancellation only when asked to, and after a
        failure unless checkpoints are not externalized; never after finishing."""
        storage = self._storage
        if storage is None:
            return
        keep = {
            "CANCELED": self.settings.retain_on_cancellation,
            "FAILED": self.settings.externalized,
            "FINISHED": False,
        }[self.status]
        if not keep:
            storage.discard_all()
