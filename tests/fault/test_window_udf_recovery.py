"""The compiled, fused per-record window path (tumbling and session windows with a
TimestampAssigner class and an AggregateFunction) recovers exactly from its checkpoints."""

import pytest

from flinkcore.common import Duration, Encoder, Time, WatermarkStrategy
from flinkcore.common.restart_strategy import RestartStrategies
from flinkcore.common.watermark_strategy import TimestampAssigner
from flinkcore.datastream import EmbeddedLmdbStateBackend, HashMapStateBackend, StreamExecutionEnvironment
from flinkcore.datastream.connectors.datagen import DataGeneratorSource
from flinkcore.datastream.connectors.file_system import BucketAssigner, FileSink
from flinkcore.datastream.functions import AggregateFunction
from flinkcore.datastream.window import EventTimeSessionWindows, TumblingEventTimeWindows

KEYS = 5


class EventTime(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[2]


class SumCount(AggregateFunction):
    """Fails once at record ``fail_at`` (the object survives the restart)."""

    def __init__(self, fail_at=None):
        self.fail_at = fail_at
        self.failed = False

    def create_accumulator(self):
        return 0, 0

    def add(self, value, acc):
        if value[1] == self.fail_at and not self.failed:
            self.failed = True
            raise RuntimeError(f"injected failure at record {self.fail_at}")
        return acc[0] + value[1], acc[1] + 1

    def get_result(self, acc):
        return acc

    def merge(self, a, b):
        return a[0] + b[0], a[1] + b[1]


def event(i):
    # each key goes quiet for 20 ms in turn, so sessions close; at most 2 ms out of order
    key = i % KEYS
    if key == (i // 200) % KEYS:
        key = (key + 1) % KEYS
    return key, i, i // 10 - i % 3


def build(env, out_dir, chk_dir, n, rate, backend, kind, fail_at=None):
    env.set_parallelism(1)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(chk_dir)
    env.set_state_backend(EmbeddedLmdbStateBackend() if backend == "lmdb" else HashMapStateBackend())
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    events = env.from_source(
        DataGeneratorSource(event, count=n, records_per_second=rate),
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(5)).with_timestamp_assigner(
            EventTime()
        ),
        "generator",
    ).uid("generator")
    if kind == "tumbling":
        window, tag = TumblingEventTimeWindows.of(Time.milliseconds(5)), "t"
    else:
        window, tag = EventTimeSessionWindows.with_gap(Time.milliseconds(8)), "s"
    sink = (
        FileSink.for_row_format(out_dir, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    )
    # the timestamps operator feeds the window alone: they run fused, as one compiled loop
    (
        events.key_by(lambda e: e[0])
        .window(window)
        .aggregate(SumCount(fail_at))
        .uid("window")
        .map(lambda r: f"{tag},{r[0]},{r[1]}")
        .sink_to(sink)
        .uid("file-sink")
    )
    return env


@pytest.mark.parametrize("kind", ["tumbling", "sessions"])
@pytest.mark.parametrize("backend", ["heap", "lmdb"])
def test_fused_window_path_recovers_exactly(tmp_path, backend, kind, committed):
    n = 3_000
    env = StreamExecutionEnvironment.get_execution_environment()
    build(env, str(tmp_path / "plain"), str(tmp_path / "chk0"), n, rate=1e9, backend=backend, kind=kind)
    env.execute("failure-free")
    expected = committed(str(tmp_path / "plain"))
    assert len(expected) > (250 if kind == "tumbling" else 15)

    env = StreamExecutionEnvironment.get_execution_environment()
    build(
        env,
        str(tmp_path / "out"),
        str(tmp_path / "chk"),
        n,
        rate=6_000,
        backend=backend,
        kind=kind,
        fail_at=2_000,
    )
    client = env.execute_async("recovering")
    client.get_job_execution_result().result(timeout=60)
    assert client._job.restarts == 1
    assert committed(str(tmp_path / "out")) == expected
