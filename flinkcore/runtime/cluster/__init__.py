"""Parallel task slots on one machine: a job coordinator in the driver and worker processes.

Python's GIL makes parallelism a matter of processes: :class:`ClusterJob` runs each slot of a
job (one parallel pipeline of subtasks, Flink's slot sharing) in its own worker process, and
exchanges records between processes as serialized batches over sockets, with credit-based flow
control and watermarks, status and end of input in-band per channel.
"""

import os
from typing import Any

from flinkcore.runtime.cluster.job import ClusterJob, WorkerFailure
from flinkcore.runtime.cluster.pool import release_workers

__all__ = [
    "ClusterJob",
    "WorkerFailure",
    "create_coordinator",
    "create_job",
    "release_workers",
    "use_processes",
]


#: the runtime when neither the configuration nor FLINKCORE_RUNTIME chooses one: a job with some
#: operator at parallelism > 1 runs in worker processes (``set_parallelism(n)`` uses n cores), a
#: job at parallelism 1 in this process. ``execution.runtime: in-process`` keeps a parallel job
#: here (its functions then run in the caller's process, e.g. to share objects with it).
DEFAULT_RUNTIME = "auto"


def use_processes(graph: Any, checkpoints: Any = None) -> bool:
    """Whether ``graph`` runs in worker processes: configuration ``execution.runtime``
    (``processes`` | ``in-process`` | ``auto``; the environment variable ``FLINKCORE_RUNTIME``
    overrides). ``auto`` picks processes when some operator has parallelism > 1 (Python threads
    share one core, processes use one each) or the job names more than one slot sharing group
    (operators of different groups must not share a slot)."""
    choice = os.environ.get("FLINKCORE_RUNTIME") or graph.config.get("runtime") or DEFAULT_RUNTIME
    choice = str(choice).strip().lower()
    if choice in ("processes", "process", "cluster"):
        return True
    if choice in ("in-process", "inprocess", "local"):
        return False
    if choice != "auto":
        raise ValueError(f"execution.runtime must be 'processes', 'in-process' or 'auto', got {choice!r}")
    if any(node.parallelism > 1 for node in graph.nodes.values()):
        return True
    from flinkcore.runtime.cluster.task import slot_sharing_groups

    return len(set(slot_sharing_groups(graph).values())) > 1


def create_job(
    graph: Any, job_id: str | None = None, restore: dict | None = None, checkpoints: Any = None, **kwargs: Any
) -> Any:
    """One attempt of ``graph``: a :class:`ClusterJob` when it runs in worker processes, else the
    in-process :class:`~flinkcore.runtime.executor.Job` (``kwargs`` go to it)."""
    if use_processes(graph, checkpoints):
        return ClusterJob(graph, job_id=job_id, restore=restore)
    from flinkcore.runtime.executor import Job

    return Job(graph, job_id=job_id, restore=restore, **kwargs)


def create_coordinator(job: Any, settings: Any, first_checkpoint_id: int = 1) -> Any:
    """The checkpoint coordinator of one attempt: barrier checkpoints across processes for a
    :class:`ClusterJob`, in-process snapshots between batches for a ``Job``."""
    if isinstance(job, ClusterJob):
        from flinkcore.runtime.cluster.checkpoints import ClusterCheckpointCoordinator

        return ClusterCheckpointCoordinator(job, settings, first_checkpoint_id)
    from flinkcore.runtime.checkpointing import CheckpointCoordinator

    return CheckpointCoordinator(job, settings, first_checkpoint_id)
