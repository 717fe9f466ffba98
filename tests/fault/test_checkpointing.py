"""Checkpoints, savepoints, restore and in-process recovery, through the public API."""

import os
import sys
import time

import pytest

from flinkcore.common import Configuration
from flinkcore.common.restart_strategy import RestartStrategies
from flinkcore.datastream import ExternalizedCheckpointRetention, StreamExecutionEnvironment
from flinkcore.runtime.checkpointing import StateMappingError
from flinkcore.state.checkpoint_storage import load_checkpoint

sys.path.insert(0, os.path.dirname(__file__))
import exactly_once_job as job  # noqa: E402


def _dirs(tmp_path):
    return str(tmp_path / "out"), str(tmp_path / "chk")


@pytest.mark.parametrize("backend", ["heap", "lmdb"])
def test_udf_failure_recovers_in_process_with_exact_output(tmp_path, backend, committed):
    out, chk = _dirs(tmp_path)
    n = 3_000
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, chk, n, rate=6_000, backend=backend, fail_at=2_000)
    client = env.execute_async("recovering")
    client.get_job_execution_result().result(timeout=60)
    assert client._job.restarts == 1
    assert committed(out) == job.expected_lines(n)
    assert not [f for f in os.listdir(out) if f.startswith(".")], "no in-progress or pending file is left"


def test_without_restarts_a_failure_fails_the_job_and_commits_nothing_of_the_open_interval(
    tmp_path, committed
):
    out, chk = _dirs(tmp_path)
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, chk, 3_000, rate=6_000, fail_at=2_000)
    env.set_restart_strategy(RestartStrategies.no_restart())
    with pytest.raises(Exception, match="injected failure at record 2000"):
        env.execute("failing")
    lines = committed(out)
    # only whole checkpoint intervals are visible, each line once, none past the failure
    assert len(lines) == len(set(lines))
    assert set(lines) <= set(job.expected_lines(3_000))
    assert all(int(line.split(",")[1]) < 2_000 for line in lines if not line.startswith("w"))


def test_checkpoints_are_retained_on_cancellation_when_asked(tmp_path):
    out, chk = _dirs(tmp_path)
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, chk, 100_000, rate=5_000)
    env.get_checkpoint_config().set_externalized_checkpoint_retention(
        ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION
    )
    client = env.execute_async("cancelled")
    time.sleep(0.5)
    client.cancel().result(timeout=10)
    job_dir = os.path.join(chk, client.get_job_id())
    latest = load_checkpoint(job_dir)
    assert latest.checkpoint_id >= 2
    assert set(latest.metadata["operators"]) >= {"generator", "running-sum", "file-sink"}


def test_finished_job_discards_its_checkpoints(tmp_path):
    out, chk = _dirs(tmp_path)
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, chk, 1_000, rate=5_000)
    result = env.execute("finishing")
    assert not os.path.exists(os.path.join(chk, result.get_job_id()))


@pytest.mark.parametrize("backend", ["heap", "lmdb"])
def test_stop_with_savepoint_then_restore_continues_exactly(tmp_path, backend, committed):
    out, chk = _dirs(tmp_path)
    n = 4_000
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, chk, n, rate=4_000, backend=backend)
    client = env.execute_async("first half")
    time.sleep(0.4)
    savepoint = client.stop_with_savepoint(str(tmp_path / "savepoints")).result(timeout=20)
    client.get_job_execution_result().result(timeout=20)
    assert os.path.basename(savepoint).startswith("savepoint-")
    first_half = committed(out)
    assert 0 < len(first_half) < len(job.expected_lines(n))

    conf = Configuration()
    conf.set_string("execution.savepoint.path", savepoint)
    env2 = StreamExecutionEnvironment.get_execution_environment(conf)
    job.build(env2, out, chk, n, rate=1e9, backend=backend)
    env2.execute("second half")
    assert committed(out) == job.expected_lines(n)


def test_trigger_savepoint_of_a_running_job(tmp_path):
    out, chk = _dirs(tmp_path)
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, chk, 100_000, rate=5_000)
    client = env.execute_async("savepointed")
    time.sleep(0.2)
    path = client.trigger_savepoint(str(tmp_path / "sp")).result(timeout=20)
    client.cancel().result(timeout=10)
    savepoint = load_checkpoint(path)
    assert savepoint.kind == "savepoint" and savepoint.job_id == client.get_job_id()


def test_restoring_into_a_changed_job_names_the_unmapped_state(tmp_path):
    out, chk = _dirs(tmp_path)
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, chk, 100_000, rate=5_000)
    client = env.execute_async("v1")
    time.sleep(0.2)
    savepoint = client.stop_with_savepoint(str(tmp_path / "sp")).result(timeout=20)

    conf = Configuration()
    conf.set_string("execution.savepoint.path", savepoint)
    env2 = StreamExecutionEnvironment.get_execution_environment(conf)
    env2.from_collection([1, 2, 3]).uid("generator").map(lambda x: x).uid("something-else").print()
    with pytest.raises(StateMappingError, match="running-sum"):
        env2.execute("v2")

    conf.set_string("execution.savepoint.ignore-unclaimed-state", "true")
    env3 = StreamExecutionEnvironment.get_execution_environment(conf)
    env3.from_collection([1, 2, 3]).map(lambda x: x * 2).uid("something-else").print()
    env3.execute("v3")


@pytest.mark.parametrize("backend", ["heap", "lmdb"])
@pytest.mark.parametrize("new_parallelism", [1, 3])
def test_savepoint_at_parallelism_2_restores_at_another_parallelism(
    tmp_path, backend, new_parallelism, committed
):
    out, chk = _dirs(tmp_path)
    n = 4_000
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, chk, n, rate=4_000, backend=backend, parallelism=2)
    client = env.execute_async("at parallelism 2")
    time.sleep(0.4)
    savepoint = client.stop_with_savepoint(str(tmp_path / "sp")).result(timeout=20)
    client.get_job_execution_result().result(timeout=20)

    conf = Configuration()
    conf.set_string("execution.savepoint.path", savepoint)
    env2 = StreamExecutionEnvironment.get_execution_environment(conf)
    job.build(env2, out, chk, n, rate=1e9, backend=backend, parallelism=new_parallelism)
    env2.execute(f"at parallelism {new_parallelism}")
    assert committed(out) == job.expected_lines(n)


def test_failing_checkpoints_fail_the_job_past_the_tolerable_number(tmp_path):
    out = str(tmp_path / "out")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("checkpoints cannot be stored under a file")
    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, out, str(blocker), 2_000, rate=4_000)
    env.set_restart_strategy(RestartStrategies.no_restart())
    with pytest.raises(RuntimeError, match="tolerable checkpoint failure number"):
        env.execute("cannot checkpoint")

    env = StreamExecutionEnvironment.get_execution_environment()
    job.build(env, str(tmp_path / "out2"), str(blocker), 2_000, rate=4_000)
    env.get_checkpoint_config().set_tolerable_checkpoint_failure_number(1_000)
    env.execute("tolerates failing checkpoints")


def test_file_source_resumes_from_its_checkpointed_offset(tmp_path, committed):
    from flinkcore.common import Encoder, WatermarkStrategy
    from flinkcore.datastream.connectors.file_system import BucketAssigner, FileSink, FileSource, StreamFormat

    lines = [f"line-{i}" for i in range(3_000)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.txt").write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "out")

    class SlowFailOnce(job.MapFunction):
        failed = False

        def map(self, value):
            time.sleep(0.0002)  # ~0.6 s of input, so checkpoints complete before the failure
            if value == "line-2000" and not SlowFailOnce.failed:
                SlowFailOnce.failed = True
                raise RuntimeError("injected")
            return value

    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(50)
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(2, 0))
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(tmp_path / "in")
    ).build()
    sink = (
        FileSink.for_row_format(out, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    )
    env.from_source(source, WatermarkStrategy.no_watermarks(), "lines").uid("lines").map(
        SlowFailOnce()
    ).sink_to(sink)
    client = env.execute_async("file source")
    client.get_job_execution_result().result(timeout=60)
    execution = client._job
    assert execution.restarts == 1
    restored_source = execution._restore["lines"]["source"][0]
    assert restored_source["offset"] > 0, "the restart resumed mid-file, from a checkpoint"
    assert committed(out) == sorted(lines)
