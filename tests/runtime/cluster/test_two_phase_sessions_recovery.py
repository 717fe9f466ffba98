"""Two-phase session windows and checkpoints: a worker SIGKILLed mid-run (the one with the
local session operator, or the other) and the job's exactly-once output equals a failure-free
run; a savepoint taken with two-phase sessions restores without them, at parallelism 1 and 3
(the local operator sends every partial session before a barrier, so only the global session
operator's state, the one-phase operator's own format, is in a snapshot)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from recovery_support import HeldGenerator, alive, committed_lines, open_gate, running_cluster_job

from flinkcore.common import Configuration, Encoder, Types, WatermarkStrategy
from flinkcore.common.restart_strategy import RestartStrategies
from flinkcore.common.time import Time
from flinkcore.common.watermark_strategy import TimestampAssigner
from flinkcore.datastream import HashMapStateBackend, StreamExecutionEnvironment
from flinkcore.datastream.connectors.datagen import DataGeneratorSource
from flinkcore.datastream.connectors.file_system import BucketAssigner, FileSink
from flinkcore.datastream.functions import AggregateFunction, ProcessWindowFunction
from flinkcore.datastream.window import EventTimeSessionWindows
from flinkcore.runtime.checkpointing import load_snapshot
from flinkcore.runtime.cluster.two_phase import ENV_VAR, SESSIONS_ADAPT_ENV_VAR, SESSIONS_ENV_VAR

KEYS = 5
GAP = 40


def event(i):
    """(key, value, ts): every 150 records time jumps ahead by 100 ms (more than the gap), so
    every key's sessions close over and over; within a run a key's records are 5 ms apart."""
    return (i % KEYS, i, i + (i // 150) * 100)


class EventTs(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[2]


class SumCount(AggregateFunction):
    def create_accumulator(self):
        return (0, 0)

    def add(self, value, acc):
        return (acc[0] + value[1], acc[1] + 1)

    def get_result(self, acc):
        return acc

    def merge(self, a, b):
        return (a[0] + b[0], a[1] + b[1])


class Line(ProcessWindowFunction):
    def process(self, key, context, elements):
        total, n = elements[0]
        w = context.window()
        yield f"{key},{w.start},{w.end},{total},{n}"


def build(env, out_dir, chk_dir, n, rate, parallelism, two_phase, gate=None):
    """With ``gate`` (a path) the source waits halfway until that file exists (HeldGenerator)."""
    env.set_parallelism(parallelism)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(chk_dir)
    env.set_state_backend(HashMapStateBackend())
    if gate is None:
        source = DataGeneratorSource(event, count=n, records_per_second=rate)
    else:
        source = HeldGenerator(event, n, rate, gate)
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(EventTs())
    sink = (
        FileSink.for_row_format(out_dir, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    )
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "generator", Types.PICKLED_BYTE_ARRAY())
        .uid("generator")
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(strategy)
        .uid("timestamps")
        .set_parallelism(1)
        .key_by(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(GAP)))
        .aggregate(SumCount(), Line())
        .uid("window")
        .sink_to(sink)
        .uid("file-sink")
    )
    os.environ[ENV_VAR] = "true" if two_phase else "false"
    return env


def expected_lines(n):
    sessions: dict = {}
    out = []
    for i in range(n):
        key, value, ts = event(i)
        s = sessions.get(key)
        if s is not None and ts <= s[1]:
            s[1], s[2], s[3] = ts + GAP, s[2] + value, s[3] + 1
            continue
        if s is not None:
            out.append(f"{key},{s[0]},{s[1]},{s[2]},{s[3]}")
        sessions[key] = [ts, ts + GAP, value, 1]
    out.extend(f"{key},{s[0]},{s[1]},{s[2]},{s[3]}" for key, s in sessions.items())
    return sorted(out)


@pytest.fixture
def processes(monkeypatch):
    monkeypatch.setenv("FLINKCORE_RUNTIME", "processes")
    monkeypatch.setenv(ENV_VAR, "true")  # build() sets it; monkeypatch restores it afterwards
    monkeypatch.setenv(SESSIONS_ENV_VAR, "true")
    monkeypatch.delenv(SESSIONS_ADAPT_ENV_VAR, raising=False)


def _session_split(job):
    names = [n.name for n in job.graph.nodes.values()]
    return bool(job.graph.config.get("two_phase_windows")) and any(
        n.startswith("LocalAggregate") for n in names
    )


@pytest.mark.parametrize("victim", [0, -1])
def test_sigkill_of_a_worker_with_two_phase_sessions_gives_exact_output(tmp_path, processes, victim):
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    n = 3_000
    env = StreamExecutionEnvironment.get_execution_environment()
    gate = str(tmp_path / "gate")
    build(env, out, chk, n, rate=5_000, parallelism=2, two_phase=True, gate=gate)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    client = env.execute_async("kill a worker")
    first = running_cluster_job(client)
    assert _session_split(first), "the session window was not split"
    deadline = time.monotonic() + 20
    while client._job.coordinator is None or client._job.coordinator.latest_id == 0:
        assert time.monotonic() < deadline, "no checkpoint completed"
        time.sleep(0.01)
    os.kill(first.pids[victim], signal.SIGKILL)
    open_gate(gate)
    client.get_job_execution_result().result(timeout=60)
    assert client._job.restarts == 1
    assert committed_lines(out) == expected_lines(n)
    assert [p for p in first.pids if alive(p)] == []


def test_sigkill_after_the_switch_to_pass_through_gives_exact_output(tmp_path, processes, monkeypatch):
    """The local operator passes through after its first 200-record period (ratio 0: any
    message switches); watermarks every 20 ms (~100 records) make that ~200 records (~40 ms)
    in. The worker dies after the fourth completed checkpoint (>= 200 ms, ~1000 records in):
    the job restarts from a checkpoint taken after the switch (the restarted local operator
    starts pre-aggregating again and switches again), and the output is exact."""
    monkeypatch.setenv(SESSIONS_ADAPT_ENV_VAR, "200,0")
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    n = 4_000
    env = StreamExecutionEnvironment.get_execution_environment()
    gate = str(tmp_path / "gate")
    build(env, out, chk, n, rate=5_000, parallelism=2, two_phase=True, gate=gate)
    env.get_config().set_auto_watermark_interval(20)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    client = env.execute_async("kill a worker after the switch")
    first = running_cluster_job(client)
    assert _session_split(first)
    deadline = time.monotonic() + 20
    while client._job.coordinator is None or client._job.coordinator.latest_id < 4:
        assert time.monotonic() < deadline, "no checkpoint completed"
        time.sleep(0.01)
    os.kill(first.pids[0], signal.SIGKILL)
    open_gate(gate)
    client.get_job_execution_result().result(timeout=60)
    assert client._job.restarts == 1
    assert committed_lines(out) == expected_lines(n)
    assert [p for p in first.pids if alive(p)] == []


@pytest.mark.parametrize("new_parallelism", [1, 3])
def test_savepoint_with_two_phase_sessions_restores_at_another_parallelism(
    tmp_path, processes, new_parallelism
):
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    n = 3_000
    env = StreamExecutionEnvironment.get_execution_environment()
    build(env, out, chk, n, rate=4_000, parallelism=2, two_phase=True, gate=str(tmp_path / "gate"))
    client = env.execute_async("at parallelism 2")
    first = running_cluster_job(client)
    assert _session_split(first)
    time.sleep(0.3)
    savepoint = client.stop_with_savepoint(str(tmp_path / "sp")).result(timeout=20)
    client.get_job_execution_result().result(timeout=20)
    snapshot, _ = load_snapshot(savepoint)
    assert not [k for k in snapshot if "local-aggregate" in k], sorted(snapshot)
    assert "window" in snapshot

    conf = Configuration()
    conf.set_string("execution.savepoint.path", savepoint)
    env2 = StreamExecutionEnvironment.get_execution_environment(conf)
    build(env2, out, chk, n, rate=1e9, parallelism=new_parallelism, two_phase=False)
    env2.execute(f"at parallelism {new_parallelism}")
    assert committed_lines(out) == expected_lines(n)


def test_savepoint_without_two_phase_restores_into_two_phase_sessions(tmp_path, processes):
    """The other way: the one-phase operator's sessions restore into the global operator."""
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    n = 3_000
    env = StreamExecutionEnvironment.get_execution_environment()
    build(env, out, chk, n, rate=4_000, parallelism=2, two_phase=False, gate=str(tmp_path / "gate"))
    client = env.execute_async("one phase at parallelism 2")
    running_cluster_job(client)
    time.sleep(0.3)
    savepoint = client.stop_with_savepoint(str(tmp_path / "sp")).result(timeout=20)
    client.get_job_execution_result().result(timeout=20)

    conf = Configuration()
    conf.set_string("execution.savepoint.path", savepoint)
    env2 = StreamExecutionEnvironment.get_execution_environment(conf)
    build(env2, out, chk, n, rate=1e9, parallelism=3, two_phase=True)
    env2.execute("two phase at parallelism 3")
    assert committed_lines(out) == expected_lines(n)
