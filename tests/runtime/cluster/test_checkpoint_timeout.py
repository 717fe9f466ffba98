"""The checkpoint timeout across worker processes: a checkpoint not acknowledged by every slot in
time is aborted everywhere and counts as a failed checkpoint (Flink's expired checkpoint): the job
goes on to its exact output while failures stay tolerable; past the tolerable number the job fails,
naming the slots the checkpoint waited for. Then a slot's alignment when checkpoints overlap (the
next one's barrier may come before the expired one's abort): the newer subsumes the older.

A slow keyed map (2 ms a record) behind a source that is not rate-limited: each barrier follows
the hundreds of records the channels hold, so it reaches the map's slots long after 150 ms."""

import logging
import time

import pytest
from recovery_support import ListSink

from flinkcore.common import Types, WatermarkStrategy
from flinkcore.common.restart_strategy import RestartStrategies
from flinkcore.datastream import StreamExecutionEnvironment
from flinkcore.datastream.connectors.datagen import DataGeneratorSource
from flinkcore.datastream.functions import MapFunction
from flinkcore.runtime.cluster.task import SlotTask

N = 600


class SlowMap(MapFunction):
    def map(self, value):
        time.sleep(0.002)
        return value


def _job(tmp_path, tolerable):
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(50)
    config = env.get_checkpoint_config()
    config.set_checkpoint_storage_dir(str(tmp_path / "chk"))
    config.set_checkpoint_timeout(150)
    config.set_tolerable_checkpoint_failure_number(tolerable)
    env.set_restart_strategy(RestartStrategies.no_restart())
    sink = ListSink()
    (
        env.from_source(
            DataGeneratorSource(lambda i: (i % 5, i), count=N), WatermarkStrategy.no_watermarks(), "gen"
        )
        .set_parallelism(1)
        .key_by(lambda e: e[0])
        .map(SlowMap(), Types.PICKLED_BYTE_ARRAY())
        .add_sink(sink)
    )
    return env, sink


def test_an_expired_checkpoint_is_aborted_and_the_job_goes_on(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FLINKCORE_RUNTIME", "processes")
    env, sink = _job(tmp_path, tolerable=1_000)
    with caplog.at_level(logging.WARNING, logger="flinkcore.runtime.checkpointing"):
        env.execute("expiring checkpoints")
    expired = [r.getMessage() for r in caplog.records if "not acknowledged within 150 ms" in r.getMessage()]
    assert expired, "no checkpoint expired"
    assert "slot" in expired[0]
    assert sorted(v for _, v in sink.results) == list(range(N))


def test_past_the_tolerable_failures_an_expired_checkpoint_fails_the_job(tmp_path, monkeypatch):
    monkeypatch.setenv("FLINKCORE_RUNTIME", "processes")
    env, _ = _job(tmp_path, tolerable=0)
    with pytest.raises(RuntimeError, match=r"tolerable checkpoint failure number \(0\) is exceeded") as info:
        env.execute("expiring checkpoints")
    assert "not acknowledged within 150 ms" in str(info.value.__cause__)


def _aligning(checkpoint_id, held):
    """A slot aligning checkpoint ``checkpoint_id``: the channels of ``held`` delivered its barrier."""
    task = SlotTask.__new__(SlotTask)
    task._checkpoint, task._aborted_up_to = None, 0
    task._held, task._sources_paused = set(), True
    task._begin(checkpoint_id, True)
    task._held.update(held)
    return task


def test_a_newer_checkpoints_barrier_subsumes_the_alignment_under_way():
    """A slot may see the next checkpoint's barriers before the abort of one that expired: the
    newer one takes over, releasing the channels the old one held (their newer barriers come after
    what they hold); the old one's late barriers are then ignored."""
    task = _aligning(3, held={1, 2})
    ck = task._begin(4, True)
    assert ck is not None and task._checkpoint is ck and ck["id"] == 4
    assert task._held == set() and not task._sources_paused
    assert task._begin(3, True) is None and task._checkpoint is ck


def test_an_older_checkpoints_barrier_does_not_end_the_alignment_under_way():
    task = _aligning(5, held={1})
    assert task._begin(4, True) is None
    assert task._checkpoint["id"] == 5 and task._held == {1}
