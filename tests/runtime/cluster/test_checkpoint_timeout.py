"""The checkpoint timeout across worker processes: a checkpoint not acknowledged by every slot in
time is aborted everywhere and counts as a failed checkpoint (Flink's expired checkpoint): the job
goes on and later checkpoints complete while failures stay tolerable; past the tolerable number the
job fails, naming the checkpoint and the slots it waited for.

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
