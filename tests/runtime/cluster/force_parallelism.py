"""A pytest plugin (``-p force_parallelism``) that runs every job of a test session at the
parallelism in ``FLINKCORE_FORCE_PARALLELISM``, in worker processes when it is above 1.

The parallel runner (test_semantics_parallel.py) loads it to run the existing scenario suites
unchanged at parallelism 1, 2 and 4."""

from __future__ import annotations

import os

from flinkcore.datastream import StreamExecutionEnvironment

PARALLELISM = int(os.environ.get("FLINKCORE_FORCE_PARALLELISM", "1"))

_set_parallelism = StreamExecutionEnvironment.set_parallelism
_init = StreamExecutionEnvironment.__init__


def _forced_set_parallelism(self, parallelism):
    return _set_parallelism(self, PARALLELISM)


def _forced_init(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    _set_parallelism(self, PARALLELISM)


StreamExecutionEnvironment.set_parallelism = _forced_set_parallelism
StreamExecutionEnvironment.__init__ = _forced_init

if PARALLELISM > 1 and os.environ.setdefault("FLINKCORE_RUNTIME", "processes") == "processes":
    import flinkcore.runtime.execution as _execution
    from flinkcore.runtime.cluster import create_job

    if getattr(_execution, "Job", None) is not None and _execution.Job is not create_job:
        _execution.Job = create_job  # until the environment picks the runtime itself
