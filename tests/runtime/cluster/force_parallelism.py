"""A pytest plugin (``-p force_parallelism``) that runs every job of a test session through the
runtime choice of :func:`flinkcore.runtime.cluster.create_job` (worker processes for parallel
jobs), and at the parallelism in ``FLINKCORE_FORCE_PARALLELISM`` when that is set.

The parallel runner (test_semantics_parallel.py) loads it to run the existing scenario suites
unchanged at parallelism 1, 2 and 4."""

from __future__ import annotations

import os

import flinkcore.runtime.execution as _execution
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.runtime.cluster import create_coordinator, create_job

os.environ.setdefault("FLINKCORE_RUNTIME", "auto")  # parallel jobs in worker processes

if os.environ.get("FLINKCORE_FORCE_PARALLELISM"):
    PARALLELISM = int(os.environ["FLINKCORE_FORCE_PARALLELISM"])
    _set_parallelism = StreamExecutionEnvironment.set_parallelism
    _init = StreamExecutionEnvironment.__init__

    def _forced_set_parallelism(self, parallelism):
        return _set_parallelism(self, PARALLELISM)

    def _forced_init(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        _set_parallelism(self, PARALLELISM)

    StreamExecutionEnvironment.set_parallelism = _forced_set_parallelism
    StreamExecutionEnvironment.__init__ = _forced_init


def _job(graph, job_id=None, restore=None, **kwargs):
    return create_job(graph, job_id=job_id, restore=restore)


# until JobExecution picks the runtime itself (flinkcore.runtime.cluster.create_job)
if getattr(_execution, "create_job", None) is None:
    _execution.Job = _job
    _execution.CheckpointCoordinator = create_coordinator
