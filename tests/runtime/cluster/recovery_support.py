"""What the worker-process tests share: a sink that lists what it gets, a job's graph ending in
one, the committed output of a FileSink, whether a process lives, a forked child and its exit
status, and the attempt of a running job once all its workers started.
(Imported by name: pytest puts this directory on sys.path for the test files in it.)"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from typing import Any

import pytest

from flinkcore.datastream.functions import SinkFunction
from flinkcore.runtime.cluster import ClusterJob

# the fault tests' held generator (tests/fault/held_source.py), for the jobs built here
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "fault"))
from held_source import HeldGenerator, open_gate  # noqa: E402,F401


class ListSink(SinkFunction):
    def __init__(self):
        self.results = []

    def invoke(self, value, context):
        self.results.append(value)


def graph_with_sink(build: Any, parallelism: int = 2, config: dict | None = None) -> tuple:
    """(graph, sink): the job ``build(env)`` makes at ``parallelism``, ending in a ListSink, with
    ``config`` added to the graph's config."""
    from flinkcore.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    sink = ListSink()
    build(env).add_sink(sink)
    graph = env.get_stream_graph("test", clear_transformations=True)
    graph.config.update(config or {})
    return graph, sink


def committed_lines(out_dir: str) -> list[str]:
    """Lines of the visible (committed) part files; hidden in-progress/pending files excluded."""
    lines = []
    for root, _, files in os.walk(out_dir):
        for name in files:
            if not name.startswith("."):
                with open(os.path.join(root, name)) as f:
                    lines.extend(f.read().splitlines())
    return sorted(lines)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def fork_child(fn: Any) -> int:
    """Fork a child that runs ``fn()`` and exits 0 when it returned (1, with the traceback printed,
    when it raised); returns its pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def join_child(pid: int, timeout: float = 60.0) -> int:
    """The exit status of child ``pid``; the test fails (the child killed) if it runs past ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"child {pid} did not finish within {timeout} s")


def running_cluster_job(client: Any, timeout: float = 20) -> ClusterJob:
    """The current attempt of ``client``'s job once every one of its workers started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attempt = client._job.job
        if isinstance(attempt, ClusterJob) and len(attempt.pids) == attempt.placement.num_workers:
            return attempt
        time.sleep(0.01)
    raise AssertionError("the job did not start its workers")
