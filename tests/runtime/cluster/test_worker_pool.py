"""Workers kept for the next job: reuse, the SYNC frame that drops the last job's late credits,
no reuse after a failure, a cancel, a dead worker or with reuse off, the idle timeout, and user
modules imported again for every job (their changed files, none of another job's state)."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import socket
import sys
import textwrap
import threading
import time
import uuid

import pytest
from recovery_support import ListSink, alive, fork_child, graph_with_sink, join_child, running_cluster_job

from flinkcore.common import Types, WatermarkStrategy
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.connectors import NumberSequenceSource
from flinkcore.datastream.connectors.datagen import DataGeneratorSource
from flinkcore.datastream.functions import KeyedProcessFunction
from flinkcore.datastream.state import ValueStateDescriptor
from flinkcore.runtime.cluster import ClusterJob, pool, release_workers, wire
from flinkcore.runtime.cluster.rings import accept_ring, connect_rings


@pytest.fixture(autouse=True)
def own_pool(monkeypatch):
    """Each test starts without parked workers, and leaves none."""
    monkeypatch.delenv(pool.ENV_VAR, raising=False)
    release_workers()
    yield
    release_workers()


def _run(build, parallelism=2, config=None):
    graph, sink = graph_with_sink(build, parallelism, config)
    job = ClusterJob(graph)
    job.run()
    return job, sink.results


def _keyed_sums(n, keys):
    def build(env):
        return (
            env.from_source(NumberSequenceSource(0, n - 1), None, "n")
            .map(lambda x: (x % keys, x))
            .key_by(lambda r: r[0])
            .reduce(lambda a, b: (a[0], a[1] + b[1]))
        )

    expected = {}
    for x in range(n):
        expected[x % keys] = expected.get(x % keys, 0) + x
    return build, expected


@contextlib.contextmanager
def _user_module(tmp_path, monkeypatch, source, mtime_ns=None):
    """A module of the user's (``source``, under a new name in a directory on sys.path), imported
    in the driver; forgotten after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"fc_pool_{uuid.uuid4().hex}"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    try:
        yield importlib.import_module(name), path
    finally:
        sys.modules.pop(name, None)


def _finals(results):
    out = {}
    for k, v in results:
        out[k] = max(out.get(k, v), v)
    return out


def _wait_dead(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [p for p in pids if alive(p)]


@pytest.mark.parametrize("parallelism", [2, 3])
def test_jobs_of_other_shapes_run_in_the_workers_of_the_last_one(parallelism):
    # keyed exchanges in every direction, small frames (many credits in flight when a job ends),
    # a job of another graph between: every result exact, every job in the same processes
    first = None
    for i, (n, keys) in enumerate([(20_000, 13), (5_000, 101), (30_000, 7), (1, 1), (20_000, 13)]):
        build, expected = _keyed_sums(n, keys)
        config = {"batch_size": 16, "cluster_frame_records": 16, "cluster_credits": 2} if i % 2 else {}
        job, results = _run(build, parallelism, config)
        assert job.status == "FINISHED"
        assert _finals(results) == expected, f"job {i}"
        first = first or job.pids
        assert job.pids == first, f"job {i} did not run in the first job's workers"
    assert all(alive(p) for p in first)  # parked
    assert job.join_workers(10.0)
    assert _wait_dead(first) == []


class _Count(KeyedProcessFunction):
    def open(self, ctx):
        self.count = ctx.get_state(ValueStateDescriptor("count", Types.INT()))

    def process_element(self, value, ctx):
        c = (self.count.value() or 0) + 1
        self.count.update(c)
        yield (value[0], c)


def _checkpointed_job(chk_dir):
    """A keyed count with checkpoints every 20 ms, its source paced to last about 0.4 s."""
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(20)
    env.get_checkpoint_config().set_checkpoint_storage_dir(chk_dir)
    sink = ListSink()
    source = DataGeneratorSource(lambda i: (i % 5, i), count=2_000, records_per_second=5_000)
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "gen", Types.PICKLED_BYTE_ARRAY())
        .key_by(lambda e: e[0])
        .process(_Count())
        .add_sink(sink)
    )
    client = env.execute_async("checkpointed")
    job = running_cluster_job(client)
    client.get_job_execution_result().result(60)
    return job, sink.results


def test_checkpoints_complete_in_kept_workers(tmp_path):
    job1, results1 = _checkpointed_job(str(tmp_path / "one"))
    job2, results2 = _checkpointed_job(str(tmp_path / "two"))
    assert job2.pids == job1.pids
    for results in (results1, results2):
        assert _finals(results) == {k: 400 for k in range(5)}
    for job in (job1, job2):
        assert job.coordinator.latest_id, "no checkpoint completed"


def test_late_credits_of_the_last_job_are_dropped_up_to_the_sync_frame():
    a_sock, b_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a, b = wire.Peer(1, a_sock), wire.Peer(2, b_sock)
    try:
        b.send(wire.CREDIT, 3, wire.encode_i64(5))  # the last job's, still on the way
        a.begin_job(7)
        assert _receive(a) == []  # a late credit alone: dropped
        b.send(wire.CREDIT, 4, wire.encode_i64(1))
        b.begin_job(7)
        b.send(wire.CREDIT, 0, wire.encode_i64(2))
        b.send(wire.CONTROL, 0, wire.encode_control(("hello",)))
        frames = _receive(a)
        assert [(k, c) for k, c, _ in frames] == [(wire.CREDIT, 0), (wire.CONTROL, 0)]
        b.send(wire.CREDIT, 1, wire.encode_i64(1))  # after the SYNC: kept
        assert [(k, c) for k, c, _ in _receive(a)] == [(wire.CREDIT, 1)]
        assert [k for k, _, _ in _receive(b)] == []  # a's SYNC, consumed by b's own begin_job
    finally:
        a.close()
        b.close()


def _ringed_pair():
    """Two Peers of this process joined as two workers are: a socket and a ring each way."""
    a_sock, b_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a, b = wire.Peer(1, a_sock), wire.Peer(2, b_sock)
    for me in (a, b):
        ends = socket.socketpair()  # a stand-in for the worker's driver connection, never used
        driver = wire.Peer(0, ends[0])
        connect_rings({me.index: me, 0: driver}, 1 << 16, driver)
        for end in ends:
            end.close()
    for p in (a, b):
        while not accept_ring(p):
            time.sleep(0.001)
    return a, b


def test_barriers_the_last_job_left_in_a_ring_are_dropped_up_to_its_sync_frame():
    """A slot whose source finished sends a checkpoint's barriers after its end of input; the
    job may end before the other slot read them. The next job in the same workers must not take
    them (a barrier of checkpoint 5 read as the new job's starts an alignment that never ends)."""
    a, b = _ringed_pair()
    try:
        assert a.ring_out is not None and b.ring_in is not None
        a.send(wire.BARRIER, 3, wire.encode_i64(5))  # the last job's, never read there
        a.send(wire.BATCH, 3, b"x" * (1 << 17))  # too large for the ring: on the socket, a marker in the ring
        b.begin_job(2)
        assert _receive(b) == []  # a is still in the last job: nothing of the new one
        a.begin_job(2)
        a.send(wire.BARRIER, 4, wire.encode_i64(1))
        frames = _receive(b)
        assert [(k, c, bytes(p)) for k, c, p in frames] == [(wire.BARRIER, 4, wire.encode_i64(1))]
        assert not b._await_socket
        assert [k for k, _, _ in _receive(a)] == []  # b's SYNC frames, consumed by a's own begin_job
    finally:
        a.close()
        b.close()


def _receive(peer):
    deadline = time.monotonic() + 5
    frames = []
    while time.monotonic() < deadline:
        events, _ = wire.poll([peer], 0.05)
        for _, got in events:
            frames.extend(got)
        if not events:
            return frames
    return frames


def _failing(x):
    if x == 500:
        raise ValueError("record 500 is bad")
    return x


def test_the_workers_of_a_failed_job_exit_and_the_next_job_forks_new_ones():
    good, expected = _keyed_sums(1_000, 3)
    job1, _ = _run(good)
    with pytest.raises(Exception, match="record 500 is bad"):
        _run(lambda env: env.from_source(NumberSequenceSource(0, 999), None, "n").map(_failing))
    assert _wait_dead(job1.pids) == []  # the failed job ran in them; they were stopped
    job3, results = _run(good)
    assert _finals(results) == expected
    assert set(job3.pids).isdisjoint(job1.pids)


def _slow(x):
    time.sleep(0.002)
    return x


def test_the_workers_of_a_cancelled_job_exit():
    job1, _ = _run(lambda env: env.from_collection([1, 2, 3]).map(lambda x: x))
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    sink = ListSink()
    env.from_source(NumberSequenceSource(0, 10**9), None, "n").map(_slow).add_sink(sink)
    job2 = ClusterJob(env.get_stream_graph("cancelled", clear_transformations=True))
    t = threading.Thread(target=job2.run)
    t.start()
    deadline = time.monotonic() + 10
    while not sink.results and time.monotonic() < deadline:
        time.sleep(0.01)
    job2.cancel()
    t.join(10)
    assert job2.status == "CANCELED"
    assert job2.pids == job1.pids
    assert _wait_dead(job1.pids) == []
    job3, results = _run(lambda env: env.from_collection([1, 2, 3]).map(lambda x: x))
    assert sorted(results) == [1, 2, 3] and set(job3.pids).isdisjoint(job1.pids)


def test_a_kept_worker_that_died_is_not_used():
    job1, _ = _run(lambda env: env.from_collection([1, 2, 3]).map(lambda x: x))
    os.kill(job1.pids[0], signal.SIGKILL)
    assert _wait_dead(job1.pids[:1]) == []
    build, expected = _keyed_sums(2_000, 5)
    job2, results = _run(build)
    assert _finals(results) == expected
    assert set(job2.pids).isdisjoint(job1.pids)
    assert _wait_dead(job1.pids) == []  # the other one was let go


def test_kept_workers_exit_after_the_idle_timeout(monkeypatch):
    monkeypatch.setenv(pool.ENV_VAR, "0.3")
    job1, _ = _run(lambda env: env.from_collection([1, 2, 3]).map(lambda x: x))
    assert all(alive(p) for p in job1.pids)
    assert _wait_dead(job1.pids) == []
    job2, results = _run(lambda env: env.from_collection([1, 2, 3]).map(lambda x: x))
    assert sorted(results) == [1, 2, 3] and set(job2.pids).isdisjoint(job1.pids)


def test_reuse_off_the_workers_exit_after_each_job():
    config = {pool.CONFIG_KEY: 0}
    job1, _ = _run(lambda env: env.from_collection([1, 2, 3]).map(lambda x: x), config=config)
    assert _wait_dead(job1.pids) == []
    job2, _ = _run(lambda env: env.from_collection([1, 2, 3]).map(lambda x: x), config=config)
    assert set(job2.pids).isdisjoint(job1.pids)


def test_the_configuration_sets_the_idle_timeout():
    from flinkcore.common import Configuration

    def run():
        conf = Configuration().set_string("flinkcore.worker-idle-timeout", "0")
        env = StreamExecutionEnvironment.get_execution_environment(conf)
        env.set_parallelism(2)
        sink = ListSink()
        env.from_collection([1, 2, 3]).map(lambda x: (x, os.getpid())).add_sink(sink)
        env.execute("configured")
        return {pid for _, pid in sink.results}

    first, second = run(), run()
    assert len(first) == 2 and first.isdisjoint(second)
    assert _wait_dead(first | second) == []


def test_a_bad_idle_timeout_is_refused():
    with pytest.raises(ValueError, match="cluster_worker_idle_timeout must be a number of seconds"):
        _run(lambda env: env.from_collection([1]).map(lambda x: x), config={pool.CONFIG_KEY: "soon"})


MODULE = """
import os
VERSION = {version}

def tag(x):
    return (x, os.getpid(), VERSION)
"""


def test_a_kept_worker_imports_a_changed_user_module_afresh(tmp_path, monkeypatch):
    with _user_module(tmp_path, monkeypatch, MODULE.format(version=1), mtime_ns=10**18) as (module, path):

        def build(env):
            return env.from_source(NumberSequenceSource(0, 99), None, "n").map(module.tag)

        job1, results = _run(build)
        assert {r[2] for r in results} == {1} and {r[1] for r in results} == set(job1.pids)
        path.write_text(textwrap.dedent(MODULE.format(version=2)))  # the driver keeps version 1
        os.utime(path, ns=(10**18 + 10**9, 10**18 + 10**9))
        job2, results = _run(build)
        assert job2.pids == job1.pids
        assert {r[2] for r in results} == {2}
        job3, results = _run(build)  # unchanged since: still version 2
        assert job3.pids == job1.pids and {r[2] for r in results} == {2}


def test_a_child_forked_from_the_driver_does_not_use_the_drivers_kept_workers(tmp_path):
    build, expected = _keyed_sums(3_000, 7)
    job1, _ = _run(build)
    out = tmp_path / "child-pids"

    def child():
        job, results = _run(build)
        assert _finals(results) == expected
        out.write_text(" ".join(map(str, job.pids)))

    assert join_child(fork_child(child)) == 0
    child_pids = [int(p) for p in out.read_text().split()]
    assert set(child_pids).isdisjoint(job1.pids)
    job2, results = _run(build)  # the driver's own workers are still there, untouched
    assert _finals(results) == expected
    assert job2.pids == job1.pids


def test_jobs_running_at_once_never_share_workers():
    build, expected = _keyed_sums(20_000, 11)
    job0, _ = _run(build)  # parks one set: only one of the next two jobs can take it
    outcomes = []

    def one():
        try:
            outcomes.append(_run(build))
        except BaseException as e:  # noqa: BLE001 - reported below
            outcomes.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 2 and all(isinstance(o, tuple) for o in outcomes), outcomes
    (a, ra), (b, rb) = outcomes
    assert _finals(ra) == expected and _finals(rb) == expected
    assert set(a.pids).isdisjoint(b.pids)
    assert job0.pids in (a.pids, b.pids)


STATEFUL = """
import os
SEEN = []

def count(x):
    SEEN.append(x)
    return (os.getpid(), len(SEEN))
"""


def test_a_kept_worker_starts_each_job_with_the_user_modules_as_imported(tmp_path, monkeypatch):
    # as Flink gives each job its own user-code class loader: module state a job changed is not
    # what the next job sees
    with _user_module(tmp_path, monkeypatch, STATEFUL) as (module, _):

        def build(env):
            return env.from_source(NumberSequenceSource(0, 199), None, "n").map(module.count)

        job1, first = _run(build)
        job2, second = _run(build)
        assert job2.pids == job1.pids
        per_worker = {}
        for pid, n in first:
            per_worker[pid] = max(per_worker.get(pid, 0), n)
        assert sum(per_worker.values()) == 200
        again = {}
        for pid, n in second:
            again[pid] = max(again.get(pid, 0), n)
        assert again == per_worker  # counted from an empty SEEN again


IMPORT_TIME = """
import time
IMPORTED_AT = time.time()

def when(x):
    return (x, IMPORTED_AT)
"""


def test_a_kept_worker_imports_the_user_modules_for_the_next_job_while_it_waits(tmp_path, monkeypatch):
    # afresh (no job's state), but before the next job comes: not at its start
    with _user_module(tmp_path, monkeypatch, IMPORT_TIME) as (module, _):

        def build(env):
            return env.from_source(NumberSequenceSource(0, 99), None, "n").map(module.when)

        job1, first = _run(build)
        time.sleep(0.5)  # the workers wait for the next job
        submitted = time.time()
        job2, second = _run(build)
        assert job2.pids == job1.pids
        imported = {t for _, t in second}
        assert max(imported) < submitted
        assert imported.isdisjoint(t for _, t in first)


CODE_ID = """
import os
import sys

def tag(x):
    return (x, os.getpid(), id(tag.__code__))

# every import's code stays referenced (so no id is reused)
sys.__dict__.setdefault("fc_test_user_code", []).append(tag.__code__)
"""


def test_a_kept_worker_runs_an_unchanged_user_module_from_the_code_it_compiled(tmp_path, monkeypatch):
    # imported afresh for every job, but neither compiled nor read from bytecode again
    with _user_module(tmp_path, monkeypatch, CODE_ID) as (module, _):

        def build(env):
            return env.from_source(NumberSequenceSource(0, 99), None, "n").map(module.tag)

        codes = []
        for _ in range(3):
            job, results = _run(build)
            codes.append({pid: code for _, pid, code in results})
        assert set(codes[0]) == set(job.pids)
        assert codes[0] == codes[1] == codes[2]


class _LeavesAThread:
    """A map function whose open starts a thread that its close does not end."""

    def open(self, runtime_context):
        import threading

        self.stop = threading.Event()
        threading.Thread(target=self.stop.wait, name="left-by-the-job", daemon=True).start()

    def close(self):
        pass

    def map(self, x):
        return x


def test_a_worker_the_job_left_a_thread_in_is_not_kept(caplog):
    from flinkcore.datastream.functions import MapFunction

    class Leaves(_LeavesAThread, MapFunction):
        pass

    build, expected = _keyed_sums(2_000, 5)
    job1, _ = _run(build)
    with caplog.at_level("WARNING", logger="flinkcore.runtime.cluster.worker"):
        job2, _ = _run(lambda env: build(env).map(Leaves()))
    assert job2.pids == job1.pids
    assert "left 1 thread(s) running" in caplog.text and "left-by-the-job" in caplog.text
    assert _wait_dead(job2.pids) == []
    job3, results = _run(build)  # fresh workers
    assert _finals(results) == expected
    assert set(job3.pids).isdisjoint(job2.pids)


def _cwds(env):
    return env.from_source(NumberSequenceSource(0, 99), None, "n").map(lambda x: os.getcwd())


class _ChangesDirectory:
    def __init__(self, to):
        self.to = to

    def open(self, runtime_context):
        os.chdir(self.to)

    def map(self, value):
        return os.getcwd()


@pytest.mark.parametrize("kept", [True, False])
def test_workers_run_each_job_in_the_drivers_working_directory(tmp_path, monkeypatch, kept):
    """Relative paths mean in the workers what they mean in the driver when it runs the job (as
    at parallelism 1 in-process), whether the workers are kept from a job started elsewhere or
    forked anew by a fork server started there."""
    _run(_cwds)
    if not kept:
        release_workers()
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    _, results = _run(_cwds)
    assert set(results) == {str(first)}
    monkeypatch.chdir(second)
    _, results = _run(_cwds)
    assert set(results) == {str(second)}


def test_a_job_that_changed_directory_leaves_the_next_job_in_the_drivers(tmp_path, monkeypatch):
    from flinkcore.datastream.functions import MapFunction

    class Changes(_ChangesDirectory, MapFunction):
        pass

    monkeypatch.chdir(tmp_path)
    job1, results = _run(lambda env: _cwds(env).map(Changes("/")))
    assert set(results) == {"/"}
    job2, results = _run(_cwds)
    assert job2.pids == job1.pids
    assert set(results) == {str(tmp_path)}


def _pool_option(env):
    return (
        env.from_collection([0, 1], type_info=Types.INT())
        .rebalance()
        .map(lambda _: os.environ.get("MIMALLOC_PURGE_DELAY", "unset"))
    )


def test_the_allocator_option_of_the_workers_is_not_in_their_environment():
    """The fork server sets Arrow's pool option in its environment only while its imports start
    the pool: a worker's os.environ stays the driver's."""
    assert "MIMALLOC_PURGE_DELAY" not in os.environ
    release_workers()
    _, results = _run(_pool_option)
    assert results == ["unset", "unset"]


def test_keeping_freed_memory_leaves_an_option_the_user_set(monkeypatch):
    from flinkcore.runtime.cluster import forkserver

    with forkserver.keeping_freed_memory():
        assert os.environ["MIMALLOC_PURGE_DELAY"] == "-1"
    assert "MIMALLOC_PURGE_DELAY" not in os.environ
    monkeypatch.setenv("MIMALLOC_PURGE_DELAY", "100")
    with forkserver.keeping_freed_memory():
        assert os.environ["MIMALLOC_PURGE_DELAY"] == "100"
    assert os.environ["MIMALLOC_PURGE_DELAY"] == "100"
