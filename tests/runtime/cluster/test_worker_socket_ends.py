"""A worker's socket ends are held by that worker alone: not by the fork server it came from, not
by the driver, not by a worker forked after it. A worker killed with SIGKILL is noticed by its
peers only through the hang-up of its sockets (the worker-to-worker rings rely on it too: a ring
has no other sign of a dead writer or reader), and a copy of an end kept anywhere else would keep
that socket open after the death."""

from __future__ import annotations

import os
import threading
import time

from recovery_support import ListSink

from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.connectors import NumberSequenceSource
from flinkcore.runtime.cluster import ClusterJob
from flinkcore.runtime.cluster.forkserver import fork_server


def _sockets(pid: int) -> set[str]:
    """The socket inodes among the open fds of ``pid`` ('socket:[123]')."""
    out = set()
    base = f"/proc/{pid}/fd"
    for fd in os.listdir(base):
        try:
            target = os.readlink(os.path.join(base, fd))
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:"):
            out.add(target)
    return out


def _slow(x):
    time.sleep(0.001)
    return x


def test_each_worker_holds_its_socket_ends_alone():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(3)
    (
        env.from_source(NumberSequenceSource(0, 10**9), None, "n")
        .map(lambda x: (x % 5, x))
        .key_by(lambda x: x[0])
        .map(_slow)
        .add_sink(ListSink())
    )
    job = ClusterJob(env.get_stream_graph("ends", clear_transformations=True))
    t = threading.Thread(target=lambda: _run_quietly(job))
    t.start()
    try:
        deadline = time.monotonic() + 20
        while len(job.pids) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(job.pids) == 3, "the job did not start its workers"
        time.sleep(0.3)  # every worker past its start (rings exchanged, task running)
        held = {pid: _sockets(pid) for pid in job.pids}
        others = {
            "the fork server": _sockets(fork_server().process.pid),
            "the driver": _sockets(os.getpid()),
        }
        for pid, mine in held.items():
            assert len(mine) >= 3, (pid, mine)  # the driver's and the two other workers'
            for name, theirs in others.items():
                assert not mine & theirs, f"{name} holds socket ends of worker {pid}: {mine & theirs}"
            for other, theirs in held.items():
                if other != pid:
                    assert not mine & theirs, f"worker {other} holds socket ends of worker {pid}"
    finally:
        job.cancel()
        t.join(20)
    assert not t.is_alive()
    assert job.join_workers(10.0)


def _run_quietly(job: ClusterJob) -> None:
    try:
        job.run()
    except BaseException:  # noqa: BLE001 - cancelled: the test checks the workers, not the run
        pass
