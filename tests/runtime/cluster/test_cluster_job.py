"""Worker processes: results, failures, SIGKILL detection, cancel, and no orphan processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from recovery_support import alive, graph_with_sink

from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.connectors import NumberSequenceSource
from flinkcore.datastream.functions import SinkFunction
from flinkcore.runtime.cluster import ClusterJob, WorkerFailure
from flinkcore.runtime.cluster.pool import SHUTDOWN_GRACE
from flinkcore.runtime.executor import Job


def _graph(build, parallelism=2, batch_size=None):
    return graph_with_sink(build, parallelism, {"batch_size": batch_size} if batch_size else None)


def assert_no_workers(job: ClusterJob) -> None:
    """No worker of ``job`` is left (after success they exit while run() returns: joined here)."""
    assert job.pids, "the job started no worker"
    assert job.join_workers(10.0), "the workers' exits were not joined in 10 s"
    assert [p for p in job.pids if alive(p)] == []


def _keyed_sum(env):
    return (
        env.from_collection([(i % 13, i) for i in range(20_000)])
        .map(lambda x: (x[0], x[1] * 2))
        .key_by(lambda x: x[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )


def _final(results):
    out = {}
    for k, v in results:
        out[k] = max(out.get(k, v), v)
    return out


@pytest.mark.parametrize("parallelism", [2, 3])
def test_keyed_results_equal_in_process_and_no_orphans(parallelism):
    graph, expected = _graph(_keyed_sum, 1)
    Job(graph).run()
    graph, sink = _graph(_keyed_sum, parallelism)
    job = ClusterJob(graph)
    job.run()
    assert job.status == "FINISHED"
    # a rolling reduce emits every intermediate sum; the order in which two upstream subtasks'
    # records interleave is free, so compare the count and each key's final sum
    assert len(sink.results) == len(expected.results)
    assert _final(sink.results) == _final(expected.results)
    assert len(job.pids) == parallelism
    assert_no_workers(job)


def test_subtask_indices_and_parallel_source():
    def build(env):
        return (
            env.from_source(NumberSequenceSource(0, 999), None, "numbers")
            .map(lambda x: x)
            .rebalance()
            .map(lambda x: x * 10)
        )

    graph, sink = _graph(build, 4)
    job = ClusterJob(graph)
    job.run()
    assert sorted(sink.results) == [i * 10 for i in range(1000)]
    assert_no_workers(job)


def test_user_code_failure_in_a_worker_fails_the_job():
    def boom(x):
        if x == 777:
            raise ValueError("bad record 777")
        return x

    graph, _ = _graph(lambda env: env.from_source(NumberSequenceSource(0, 5000), None, "n").map(boom))
    job = ClusterJob(graph)
    with pytest.raises(Exception, match="bad record 777"):
        job.run()
    assert job.status == "FAILED"
    assert_no_workers(job)


def _slow(x):
    time.sleep(0.002)
    return x


def test_sigkill_of_a_worker_is_detected():
    graph, _ = _graph(
        lambda env: env.from_source(NumberSequenceSource(0, 10**9), None, "n").map(_slow), batch_size=8
    )
    job = ClusterJob(graph)
    errors = []
    t = threading.Thread(target=lambda: _run_catching(job, errors))
    t.start()
    deadline = time.monotonic() + 10
    while len(job.pids) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    os.kill(job.pids[1], signal.SIGKILL)
    t.join(15)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], WorkerFailure)
    assert "SIGKILL" in str(errors[0])
    assert_no_workers(job)


def _run_catching(job, errors):
    try:
        job.run()
    except BaseException as e:  # noqa: BLE001
        errors.append(e)


def test_cancel_stops_every_worker():
    graph, sink = _graph(
        lambda env: env.from_source(NumberSequenceSource(0, 10**9), None, "n").map(_slow), batch_size=8
    )
    job = ClusterJob(graph)
    errors = []
    t = threading.Thread(target=lambda: _run_catching(job, errors))
    t.start()
    deadline = time.monotonic() + 10
    while not sink.results and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.results, "no record reached the sink"
    job.cancel()
    t.join(10)
    assert not t.is_alive()
    assert errors == []
    assert job.status == "CANCELED"
    assert_no_workers(job)


def test_unpicklable_function_fails_with_advice():
    lock = threading.Lock()
    graph, _ = _graph(
        lambda env: env.from_source(NumberSequenceSource(0, 10), None, "n").map(lambda x: (lock, x)[1])
    )
    with pytest.raises(ValueError, match="execution.runtime: in-process"):
        ClusterJob(graph).run()


DRIVER = textwrap.dedent(
    """
    import sys, time
    sys.path[:0] = {path!r}
    from flinkcore.datastream import StreamExecutionEnvironment
    from flinkcore.datastream.connectors import NumberSequenceSource
    from flinkcore.runtime.cluster import ClusterJob

    def slow(x):
        time.sleep(0.002)
        return x

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.from_source(NumberSequenceSource(0, 10**9), None, "n").map(slow).print()
    job = ClusterJob(env.get_stream_graph("orphans", clear_transformations=True))
    import threading
    threading.Thread(target=job.run, daemon=True).start()
    while len(job.pids) < 2:
        time.sleep(0.01)
    from flinkcore.runtime.cluster.forkserver import fork_server
    print("PIDS", fork_server().process.pid, *job.pids, flush=True)
    time.sleep(60)
    """
)


def test_killing_the_driver_leaves_no_worker_behind():
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER.format(path=sys.path)], stdout=subprocess.PIPE, text=True
    )
    try:
        pids = []
        for line in proc.stdout:
            if line.startswith("PIDS"):
                pids = [int(p) for p in line.split()[1:]]
                break
        assert len(pids) == 3
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while any(alive(p) and not _zombie(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p for p in pids if alive(p) and not _zombie(p)] == []
    finally:
        proc.kill()
        proc.wait()


def test_a_finished_job_returns_without_waiting_for_its_workers_to_exit():
    # each worker is stopped (SIGSTOP) as its report that it closed its subtasks (the job's end)
    # arrives, before the workers are told to exit: run() returns at once all the same, and the
    # background join kills them after the grace period
    graph, sink = _graph(_keyed_sum, 2)
    job = ClusterJob(graph)
    on_control = job._on_control
    stopped_at = []

    def stop_finished_workers(source, message):
        if message[0] == "closed":
            os.kill(job.processes[source], signal.SIGSTOP)
            stopped_at.append(time.monotonic())
        on_control(source, message)

    job._on_control = stop_finished_workers
    job.run()
    returned_after = time.monotonic() - max(stopped_at)
    assert job.status == "FINISHED"
    assert len(stopped_at) == 2
    assert len(sink.results) == 20_000
    assert returned_after < SHUTDOWN_GRACE / 2
    assert [p for p in job.pids if alive(p)] == job.pids  # stopped: they cannot have exited
    assert job.join_workers(SHUTDOWN_GRACE + 15)
    assert [p for p in job.pids if alive(p)] == []


FINISHING_DRIVER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = {path!r}
    from flinkcore.datastream import StreamExecutionEnvironment
    from flinkcore.datastream.connectors import NumberSequenceSource
    from flinkcore.datastream.functions import SinkFunction
    from flinkcore.runtime.cluster import ClusterJob
    from flinkcore.runtime.cluster.forkserver import fork_server

    class Discard(SinkFunction):
        def invoke(self, value, context=None):
            pass

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    (
        env.from_source(NumberSequenceSource(0, 99_999), None, "n")
        .key_by(lambda x: x % 7)
        .reduce(lambda a, b: a + b)
        .add_sink(Discard())
    )
    job = ClusterJob(env.get_stream_graph("exits at once", clear_transformations=True))
    job.run()
    assert job.status == "FINISHED"
    print("PIDS", fork_server().process.pid, *job.pids, flush=True)
    """
)


def test_a_driver_that_exits_right_after_a_finished_job_leaves_no_process_behind():
    # the workers may still be exiting when the driver's interpreter ends: the fork server reaps
    # them before it exits, and the driver reaps the fork server, so once the driver has ended not
    # even a zombie is left for init to reap (which it may do late, or never: as pid 1 of a container)
    out = subprocess.run(
        [sys.executable, "-c", FINISHING_DRIVER.format(path=sys.path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    pids = [int(p) for p in out.stdout.split("PIDS")[1].split()]
    assert len(pids) == 3
    assert [p for p in pids if alive(p)] == [], "left behind (zombies count)"


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return False


class _Counting:
    """A map that writes how many records passed it to a file (the test reads it)."""

    def __init__(self, path):
        self.path = path
        self.n = 0

    def __call__(self, x):
        self.n += 1
        if self.n % 16 == 0:  # written aside and renamed: the reader never sees a half-written file
            tmp = f"{self.path}.{os.getpid()}"
            with open(tmp, "w") as f:
                f.write(str(self.n))
            os.replace(tmp, self.path)
        return x


def test_a_slow_sink_slows_the_source_instead_of_buffering(tmp_path):
    """Credit-based flow control: what the source produced minus what the sink took stays
    within the channel's credits (8 batches of 16 records) plus one buffer on each side."""
    counter = str(tmp_path / "produced")

    class SlowSink(SinkFunction):
        def __init__(self):
            self.n = 0

        def invoke(self, value, context):
            self.n += 1
            time.sleep(0.002)

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    sink = SlowSink()
    env.from_source(NumberSequenceSource(0, 10**9), None, "n").map(_Counting(counter)).add_sink(sink)
    graph = env.get_stream_graph("backpressure", clear_transformations=True)
    graph.config["batch_size"] = 16
    job = ClusterJob(graph)
    t = threading.Thread(target=job.run)
    t.start()
    try:
        time.sleep(1.5)
        consumed = sink.n
        with open(counter) as f:
            produced = 2 * int(f.read())  # two source subtasks, about the same pace
        assert consumed > 50
        assert produced - consumed < 2 * (8 * 16 + 3 * 16) + 64
    finally:
        job.cancel()
        t.join(10)
    assert_no_workers(job)


def test_the_buffer_timeout_bounds_latency_of_a_trickle():
    from flinkcore.common import WatermarkStrategy
    from flinkcore.datastream.connectors.datagen import DataGeneratorSource

    arrivals = []

    class Stamp(SinkFunction):
        def invoke(self, value, context):
            arrivals.append(time.time() - value)

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.set_buffer_timeout(20)
    source = DataGeneratorSource(lambda i: i, count=30, records_per_second=60)
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "trickle")
        .map(lambda i: time.time())
        .rebalance()
        .map(lambda t: t)
        .add_sink(Stamp())
    )
    job = ClusterJob(env.get_stream_graph("latency", clear_transformations=True))
    job.run()
    assert len(arrivals) == 30
    # two exchanges (rebalance, to the driver's sink), each flushed within 20 ms; generous slack
    # for a loaded machine, far below what a batch of 1024 at 60 records/s would wait (17 s)
    assert sorted(arrivals)[len(arrivals) // 2] < 0.25
    assert max(arrivals) < 1.0
    assert_no_workers(job)


def test_workers_run_the_drivers_flinkcore_whatever_the_current_directory(tmp_path):
    """A driver started from a directory that holds another ``flinkcore`` (a checkout of another
    version) imported its own; the fork server and the workers import that one too."""
    shadow = tmp_path / "cwd" / "flinkcore"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('the flinkcore of the current directory')\n")
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            from flinkcore.datastream import StreamExecutionEnvironment
            from flinkcore.datastream.connectors.number_seq import NumberSequenceSource

            env = StreamExecutionEnvironment.get_execution_environment()
            env.set_parallelism(2)
            ds = env.from_source(NumberSequenceSource(0, 99), None, "n").key_by(lambda v: v % 3)
            with ds.map(lambda v: v * 2).execute_and_collect() as results:
                print(sum(results))
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=shadow.parent, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(2 * sum(range(100)))]
