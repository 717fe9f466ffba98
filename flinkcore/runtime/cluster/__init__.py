"""Parallel task slots on one machine: a job coordinator in the driver and worker processes.

Python's GIL makes parallelism a matter of processes: :class:`ClusterJob` runs each slot of a
job (one parallel pipeline of subtasks, Flink's slot sharing) in its own worker process, and
exchanges records between processes as serialized batches over sockets, with credit-based flow
control and watermarks, status and end of input in-band per channel.
"""

from flinkcore.runtime.cluster.job import ClusterJob, WorkerFailure

__all__ = ["ClusterJob", "WorkerFailure"]
