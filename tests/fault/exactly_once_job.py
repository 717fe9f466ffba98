"""The job the fault-tolerance tests run: keyed running sums into an exactly-once FileSink.

Records ``(key, i)`` for ``i < N`` come from a rate-limited generator; a KeyedProcessFunction
keeps a running sum per key in ValueState and emits ``key,i,sum``; a keyed tumbling count
window of 50 adds ``key,window,total`` lines. Every committed line is deterministic, so the
committed output of any run that recovers correctly equals that of a failure-free run.

Run as a script (``flinkcore run exactly_once_job.py OUT CHK N RATE BACKEND [FAIL_AT]``) or
build it in-process with :func:`build`.
"""

import os
import sys

from flinkcore.common import Encoder, WatermarkStrategy
from flinkcore.common.restart_strategy import RestartStrategies
from flinkcore.datastream import (
    EmbeddedLmdbStateBackend,
    HashMapStateBackend,
    StreamExecutionEnvironment,
)
from flinkcore.datastream.connectors.datagen import DataGeneratorSource
from flinkcore.datastream.connectors.file_system import BucketAssigner, FileSink
from flinkcore.datastream.functions import KeyedProcessFunction, MapFunction
from flinkcore.datastream.state import ValueStateDescriptor
from flinkcore.state.checkpoint_storage import CorruptCheckpointError, load_checkpoint

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from held_source import HeldGenerator  # noqa: E402

KEYS = 7


class RunningSum(KeyedProcessFunction):
    def open(self, runtime_context):
        self.total = runtime_context.get_state(ValueStateDescriptor("total"))

    def process_element(self, value, ctx):
        total = (self.total.value() or 0) + value[1]
        self.total.update(total)
        yield f"{value[0]},{value[1]},{total}"


class FailOnce(MapFunction):
    """Raises at record ``fail_at`` on the first attempt only (the object survives restarts)."""

    def __init__(self, fail_at):
        self.fail_at = fail_at
        self.failed = False

    def map(self, value):
        if value[1] == self.fail_at and not self.failed:
            self.failed = True
            raise RuntimeError(f"injected failure at record {self.fail_at}")
        return value


def build(
    env, out_dir, chk_dir, n, rate, backend="heap", fail_at=None, interval_ms=50, parallelism=1, gate=None
):
    """The job on ``env``; with ``gate`` (a path), its source waits halfway until that file exists
    (:class:`held_source.HeldGenerator`)."""
    env.set_parallelism(parallelism)
    env.enable_checkpointing(interval_ms)
    env.get_checkpoint_config().set_checkpoint_storage_dir(chk_dir)
    env.set_state_backend(EmbeddedLmdbStateBackend() if backend == "lmdb" else HashMapStateBackend())
    if fail_at is not None:
        env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    if gate is None:
        source = DataGeneratorSource(lambda i: (i % KEYS, i), count=n, records_per_second=rate)
    else:
        source = HeldGenerator(lambda i: (i % KEYS, i), n, rate, gate)
    events = (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "generator")
        .uid("generator")
        .set_parallelism(1)
    )
    if fail_at is not None:
        events = events.map(FailOnce(fail_at)).uid("fail-once")
    sums = events.key_by(lambda e: e[0]).process(RunningSum()).uid("running-sum")
    windows = (
        events.key_by(lambda e: e[0])
        .count_window(50)
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .uid("count-window")
        .map(lambda e: f"w{e[0]},{e[1]}")
    )
    sink = (
        FileSink.for_row_format(out_dir, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    )
    sums.union(windows).sink_to(sink).uid("file-sink")
    return env


def expected_lines(n):
    """What a failure-free run commits."""
    totals = [0] * KEYS
    window = [[] for _ in range(KEYS)]
    lines = []
    for i in range(n):
        key = i % KEYS
        totals[key] += i
        lines.append(f"{key},{i},{totals[key]}")
        window[key].append(i)
        if len(window[key]) == 50:
            lines.append(f"w{key},{sum(window[key])}")
            window[key] = []
    return sorted(lines)


def latest_checkpoint(chk_dir):
    """The newest complete checkpoint of any run under ``chk_dir`` (each run, a job id dir)."""
    best = None
    for job_id in os.listdir(chk_dir) if os.path.isdir(chk_dir) else []:
        try:
            found = load_checkpoint(os.path.join(chk_dir, job_id))
        except CorruptCheckpointError:
            continue
        if best is None or found.timestamp_ms > best.timestamp_ms:
            best = found
    return best


if __name__ == "__main__":
    out, chk, n, rate, backend = sys.argv[1:6]
    fail_at = int(sys.argv[6]) if len(sys.argv) > 6 else None
    env = StreamExecutionEnvironment.get_execution_environment()
    build(env, out, chk, int(n), float(rate), backend, fail_at).execute("exactly-once")
