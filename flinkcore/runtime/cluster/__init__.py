"""Parallel task slots on one machine: a job coordinator in the driver and worker processes.

Python's GIL makes parallelism a matter of processes: :class:`ClusterJob` runs each slot of a
job (one parallel pipeline of subtasks, Flink's slot sharing) in its own worker process, and
exchanges records between processes as serialized batches over sockets, with credit-based flow
control and watermarks, status and end of input in-band per channel.
"""

import os
from typing import Any

from flinkcore.runtime.cluster.job import ClusterJob, WorkerFailure

__all__ = ["ClusterJob", "WorkerFailure", "create_job", "use_processes"]


def use_processes(graph: Any) -> bool:
    """Whether ``graph`` runs in worker processes: configuration ``execution.runtime``
    (``processes`` | ``in-process``; the environment variable ``FLINKCORE_RUNTIME`` overrides),
    by default whenever some operator has parallelism > 1 (Python threads share one core)."""
    choice = os.environ.get("FLINKCORE_RUNTIME") or graph.config.get("runtime") or "auto"
    choice = str(choice).strip().lower()
    if choice in ("processes", "process", "cluster"):
        return True
    if choice in ("in-process", "inprocess", "local"):
        return False
    if choice != "auto":
        raise ValueError(f"execution.runtime must be 'processes', 'in-process' or 'auto', got {choice!r}")
    return any(node.parallelism > 1 for node in graph.nodes.values())


def create_job(graph: Any, job_id: str | None = None, restore: dict | None = None, **kwargs: Any) -> Any:
    """One attempt of ``graph``: a :class:`ClusterJob` when it runs in worker processes, else the
    in-process :class:`~flinkcore.runtime.executor.Job` (``kwargs`` go to it)."""
    if use_processes(graph):
        return ClusterJob(graph, job_id=job_id, restore=restore)
    from flinkcore.runtime.executor import Job

    return Job(graph, job_id=job_id, restore=restore, **kwargs)
