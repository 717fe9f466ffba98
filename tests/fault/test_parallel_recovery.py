"""Exactly-once across worker processes: barrier checkpoints, a SIGKILLed worker, savepoints
restored at another parallelism — the checkpoint issue's job (exactly_once_job.py) at parallelism 2.
"""

import os
import signal
import sys
import time

import pytest

import flinkcore.runtime.execution as execution
from flinkcore.common import Configuration, Encoder, Types, WatermarkStrategy
from flinkcore.common.restart_strategy import RestartStrategies
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.connectors.datagen import DataGeneratorSource
from flinkcore.datastream.connectors.file_system import BucketAssigner, FileSink
from flinkcore.datastream.functions import KeyedBroadcastProcessFunction
from flinkcore.datastream.state import MapStateDescriptor
from flinkcore.datastream.state_backend import EmbeddedLmdbStateBackend
from flinkcore.runtime.cluster import ClusterJob, create_coordinator, create_job
from flinkcore.runtime.sources import IndexReader, Source
from flinkcore.state.checkpoint_storage import IncompatibleSnapshotError

sys.path.insert(0, os.path.dirname(__file__))
import exactly_once_job as job  # noqa: E402
from held_source import HeldGenerator, open_gate  # noqa: E402


@pytest.fixture
def processes(monkeypatch):
    """Parallel jobs run in worker processes (wired here until JobExecution picks the runtime)."""
    monkeypatch.setenv("FLINKCORE_RUNTIME", "processes")
    if getattr(execution, "create_job", None) is None:
        monkeypatch.setattr(
            execution,
            "Job",
            lambda graph, job_id=None, restore=None: create_job(graph, job_id=job_id, restore=restore),
        )
        monkeypatch.setattr(execution, "CheckpointCoordinator", create_coordinator)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _running_cluster_job(client, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attempt = client._job.job
        if isinstance(attempt, ClusterJob) and len(attempt.pids) == attempt.placement.num_workers:
            return attempt
        time.sleep(0.01)
    raise AssertionError("the job did not start its workers")


def _file_sink(out):
    """Every record as a line of part files under ``out`` (committed with checkpoints)."""
    return (
        FileSink.for_row_format(out, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    )


def _kill_a_worker_and_recover(client, attempt, gate=None):
    """SIGKILL the first worker of ``attempt``, let the source go on (``gate``), and wait for the
    job to end after one restart."""
    os.kill(attempt.pids[0], signal.SIGKILL)
    if gate is not None:
        open_gate(gate)
    client.get_job_execution_result().result(timeout=60)
    assert client._job.restarts == 1


def _wait_for_checkpoints(client, count, why):
    deadline = time.monotonic() + 20
    while client._job.coordinator is None or client._job.coordinator.latest_id < count:
        assert time.monotonic() < deadline, why
        time.sleep(0.01)


@pytest.mark.parametrize("backend", ["heap", "lmdb"])
def test_sigkill_of_a_worker_restarts_from_the_last_checkpoint_with_exact_output(
    tmp_path, backend, committed, processes
):
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    n = 4_000
    env = StreamExecutionEnvironment.get_execution_environment()
    gate = str(tmp_path / "gate")
    job.build(env, out, chk, n, rate=5_000, backend=backend, parallelism=2, gate=gate)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    client = env.execute_async("kill a worker")
    first = _running_cluster_job(client)
    _wait_for_checkpoints(client, 1, "no checkpoint completed")
    victim = first.pids[-1]
    os.kill(victim, signal.SIGKILL)
    open_gate(gate)
    client.get_job_execution_result().result(timeout=60)
    assert client._job.restarts == 1
    assert committed(out) == job.expected_lines(n)
    assert [p for p in first.pids if _alive(p)] == []


@pytest.mark.parametrize("new_parallelism", [1, 3])
def test_savepoint_at_parallelism_2_in_processes_restores_at_1_and_3(
    tmp_path, new_parallelism, committed, processes
):
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    n = 4_000
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, chk, n, rate=4_000, backend="heap", parallelism=2, gate=str(tmp_path / "gate"))
    client = env.execute_async("at parallelism 2")
    _running_cluster_job(client)
    time.sleep(0.4)
    savepoint = client.stop_with_savepoint(str(tmp_path / "sp")).result(timeout=20)
    client.get_job_execution_result().result(timeout=20)

    conf = Configuration()
    conf.set_string("execution.savepoint.path", savepoint)
    env2 = StreamExecutionEnvironment.get_execution_environment(conf)
    job.build(env2, out, chk, n, rate=1e9, backend="lmdb", parallelism=new_parallelism)
    env2.execute(f"at parallelism {new_parallelism}")
    assert committed(out) == job.expected_lines(n)


def test_at_least_once_barriers_lose_nothing_after_a_worker_dies(tmp_path, committed, processes):
    """Unaligned barriers (AT_LEAST_ONCE): records after a barrier may be in the snapshot and
    be replayed (a running sum may then count one twice), but no record is lost."""
    from flinkcore.datastream import CheckpointingMode

    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    n = 3_000
    env = StreamExecutionEnvironment.get_execution_environment()
    gate = str(tmp_path / "gate")
    job.build(env, out, chk, n, rate=5_000, backend="heap", parallelism=2, gate=gate)
    env.get_checkpoint_config().set_checkpointing_mode(CheckpointingMode.AT_LEAST_ONCE)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    client = env.execute_async("at least once")
    first = _running_cluster_job(client)
    _wait_for_checkpoints(client, 1, "no checkpoint completed")
    _kill_a_worker_and_recover(client, first, gate)
    seen = {int(line.split(",")[1]) for line in committed(out) if not line.startswith("w")}
    assert seen == set(range(n))


def _parallel_source_job(env, out, chk, n, rate, parallelism, gate=None, source=None, keyed=False):
    """The generator at the job's parallelism (each subtask reads its share of the indexes),
    every record to a file sink: what a restore must commit is each index exactly once. ``keyed``:
    a running count per key (keyed state) on the way."""
    env.set_parallelism(parallelism)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(chk)
    if gate is not None:
        source = HeldGenerator(lambda i: i, n, rate, gate)
    elif source is None:
        source = DataGeneratorSource(lambda i: i, count=n, records_per_second=rate)
    sink = _file_sink(out)
    records = env.from_source(source, WatermarkStrategy.no_watermarks(), "generator").uid("generator")
    if keyed:
        records = records.key_by(lambda i: i % 7).reduce(lambda a, b: b).uid("latest")
    records.map(str).uid("format").sink_to(sink).uid("file-sink")


@pytest.mark.parametrize("new_parallelism", [1, 3])
def test_a_parallel_sources_savepoint_restores_at_another_parallelism_exactly_once(
    tmp_path, new_parallelism, committed, processes
):
    """The source's subtasks' positions are split anew (Source.rescale_states): before, a p2
    savepoint restored at p1 read 543 of 4000 records twice, at p3 lost 667 and read 78 twice."""
    out, chk, n = str(tmp_path / "out"), str(tmp_path / "chk"), 4_000
    env = StreamExecutionEnvironment.get_execution_environment()
    _parallel_source_job(env, out, chk, n, 4_000, 2, gate=str(tmp_path / "gate"))
    client = env.execute_async("source at parallelism 2")
    _running_cluster_job(client)
    time.sleep(0.4)
    savepoint = client.stop_with_savepoint(str(tmp_path / "sp")).result(timeout=20)
    client.get_job_execution_result().result(timeout=20)
    assert 0 < len(committed(out)) < n

    conf = Configuration()
    conf.set_string("execution.savepoint.path", savepoint)
    env2 = StreamExecutionEnvironment.get_execution_environment(conf)
    _parallel_source_job(env2, out, chk, n, 1e9, new_parallelism)
    env2.execute(f"source at parallelism {new_parallelism}")
    assert sorted(map(int, committed(out))) == list(range(n))


class _Positions(DataGeneratorSource):
    """A generator whose readers keep positions but whose source does not say how they split."""

    def rescale_states(self, states, parallelism):
        return Source.rescale_states(self, states, parallelism)


@pytest.mark.parametrize("change", ["a source that cannot split its positions", "max parallelism (LMDB)"])
def test_a_snapshot_the_job_cannot_restore_fails_it_at_once_without_restarts(tmp_path, change, processes):
    """Restarting cannot make such a snapshot fit: the job fails with the reason on its first
    attempt, under a restart strategy too (before, it restarted with growing delays for ever)."""
    out, chk, n = str(tmp_path / "out"), str(tmp_path / "chk"), 4_000
    keyed = change.startswith("max")
    env = StreamExecutionEnvironment.get_execution_environment()
    _parallel_source_job(env, out, chk, n, 4_000, 2, gate=str(tmp_path / "gate"), keyed=keyed)
    env.set_state_backend(EmbeddedLmdbStateBackend())
    client = env.execute_async("at parallelism 2")
    _running_cluster_job(client)
    savepoint = client.stop_with_savepoint(str(tmp_path / "sp")).result(timeout=20)
    client.get_job_execution_result().result(timeout=20)

    conf = Configuration()
    conf.set_string("execution.savepoint.path", savepoint)
    env2 = StreamExecutionEnvironment.get_execution_environment(conf)
    if change.startswith("a source"):
        _parallel_source_job(env2, out, chk, n, 1e9, 3, source=_Positions(lambda i: i, count=n))
        expected = r"source _Positions cannot be restored at parallelism 3 from a snapshot of 2 subtasks"
    else:
        _parallel_source_job(env2, out, chk, n, 1e9, 2, keyed=True)
        env2.set_max_parallelism(64)
        expected = r"max parallelism 128, this job has 64"
    env2.set_state_backend(EmbeddedLmdbStateBackend())
    env2.set_restart_strategy(RestartStrategies.fixed_delay_restart(5, 100))
    client2 = env2.execute_async("restored")
    with pytest.raises(IncompatibleSnapshotError, match=expected):
        client2.get_job_execution_result().result(timeout=30)
    assert client2._job.restarts == 0


class _Scale(KeyedBroadcastProcessFunction):
    """Each record with the factor the broadcast side set (None before it came)."""

    def __init__(self, descriptor):
        self.descriptor = descriptor

    def process_element(self, value, ctx):
        factor = ctx.get_broadcast_state(self.descriptor).get("factor")
        yield f"{value},{None if factor is None else value * factor}"

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(self.descriptor).put(value[0], value[1])


def test_checkpoints_go_on_after_a_bounded_side_input_finished_and_a_killed_worker_recovers(
    tmp_path, committed, processes
):
    """A broadcast side input from a collection finishes at once; checkpoints of the slots still
    running go on (its barriers follow its end of input), so a SIGKILLed worker restarts from one
    with its broadcast state, exactly once. Before, every checkpoint after it finished was declined."""
    out, chk, n, gate = str(tmp_path / "out"), str(tmp_path / "chk"), 4_000, str(tmp_path / "gate")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(chk)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    descriptor = MapStateDescriptor("factors", Types.STRING(), Types.LONG())
    factors = env.from_collection([("factor", 3)]).uid("factors").broadcast(descriptor)
    sink = _file_sink(out)
    events = HeldGenerator(lambda i: i, n, 5_000, gate)
    (
        env.from_source(events, WatermarkStrategy.no_watermarks(), "events")
        .uid("events")
        .key_by(lambda i: i % 7)
        .connect(factors)
        .process(_Scale(descriptor))
        .uid("scale")
        .sink_to(sink)
        .uid("file-sink")
    )
    client = env.execute_async("a finished side input")
    first = _running_cluster_job(client)
    _wait_for_checkpoints(client, 2, "no checkpoint completed after the side input finished")
    _kill_a_worker_and_recover(client, first, gate)
    lines = committed(out)
    got = dict(line.split(",") for line in lines)
    assert len(lines) == len(got) == n  # every record once
    # records of the second half of each subtask's range came after checkpoints completed, so
    # after the factor: restored with the broadcast state where the worker was killed
    late = [*range(n // 4, n // 2), *range(3 * n // 4, n)]
    assert all(got[str(i)] == str(3 * i) for i in late)


class _OneSubtaskEmpty(DataGeneratorSource):
    """Subtask 1 has nothing to read: its slot finishes at once while subtask 0's goes on."""

    def create_reader(self, subtask_index, parallelism):
        return IndexReader([]) if subtask_index == 1 else super().create_reader(0, 1)


class _SkewedGenerator(DataGeneratorSource):
    """Subtask 0 reads indexes [0, count) at the source's rate, subtask 1 [count, count + 200) at
    once: subtask 1's part of the job ends long before the job does."""

    def create_reader(self, subtask_index, parallelism):
        if subtask_index == 0:
            return super().create_reader(0, 1)
        reader = DataGeneratorSource(self.fn, count=self.count + 200).create_reader(0, 1)
        reader.restore_state([[self.count, self.count + 200, 1]])
        return reader


def test_a_slot_whose_subtasks_all_finished_stays_in_the_checkpoints(tmp_path, committed, processes):
    """Subtask 1's slot finishes at once; it stays in the job until the job ends, so savepoints go
    on (its finished subtasks as they ended) and one restores at another parallelism exactly once
    (Flink's FLIP-147). Before, every checkpoint was declined from then on."""
    out, n = str(tmp_path / "out"), 2_000
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(60_000)
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "chk"))
    sink = _file_sink(out)
    source = _SkewedGenerator(lambda i: i, count=n, records_per_second=2_000)
    env.from_source(source, WatermarkStrategy.no_watermarks(), "events").uid("events").map(str).uid(
        "format"
    ).sink_to(sink).uid("file-sink")
    client = env.execute_async("one slot finishes")
    job = _running_cluster_job(client)
    deadline = time.monotonic() + 20
    while job._state.get(2) != "finished":  # subtask 1's worker
        assert time.monotonic() < deadline, "the slot of subtask 1 did not finish"
        time.sleep(0.01)
    savepoint = client.stop_with_savepoint(str(tmp_path / "sp")).result(timeout=10)
    client.get_job_execution_result().result(timeout=30)
    # stop-with-savepoint commits what the savepoint covers (as the in-process runtime does)
    assert 200 <= len(committed(out)) < n + 200

    conf = Configuration()
    conf.set_string("execution.savepoint.path", savepoint)
    env2 = StreamExecutionEnvironment.get_execution_environment(conf)
    env2.set_parallelism(3)
    source2 = DataGeneratorSource(lambda i: i, count=n + 200)
    env2.from_source(source2, WatermarkStrategy.no_watermarks(), "events").uid("events").map(str).uid(
        "format"
    ).sink_to(sink).uid("file-sink")
    env2.execute("restored")
    assert sorted(map(int, committed(out))) == list(range(n + 200))


@pytest.mark.parametrize("sinks_in_driver", ["true", "false"])
def test_a_sink_subtask_whose_input_ended_commits_only_when_the_job_does(
    tmp_path, sinks_in_driver, committed, processes
):
    """The sink subtask that received subtask 1's records sees its input end at once; a worker
    dies later, before any checkpoint, and the job restarts from its start. Before, that subtask
    committed at the end of its input, so subtask 1's records were committed twice (200 duplicates);
    now it holds them (pre-committed) until a checkpoint or the job's end."""
    out, n = str(tmp_path / "out"), 2_000
    conf = Configuration()
    conf.set_string("flinkcore.sinks-in-driver", sinks_in_driver)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(2)
    env.enable_checkpointing(60_000)  # none before the kill
    env.get_checkpoint_config().set_checkpoint_storage_dir(str(tmp_path / "chk"))
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    sink = _file_sink(out)
    source = _SkewedGenerator(lambda i: i, count=n, records_per_second=2_000)
    env.from_source(source, WatermarkStrategy.no_watermarks(), "events").map(str).sink_to(sink)
    client = env.execute_async("skewed")
    first = _running_cluster_job(client)
    deadline = time.monotonic() + 20
    while first._state.get(2) != "finished":  # subtask 1's slot is done, subtask 0 runs on
        assert time.monotonic() < deadline, "subtask 1's slot did not finish"
        time.sleep(0.01)
    time.sleep(0.2)
    assert client._job.coordinator.latest_id == 0
    _kill_a_worker_and_recover(client, first)
    assert sorted(map(int, committed(out))) == list(range(n + 200))
