"""The columnar path in worker-process task slots: typed sources emit Arrow batches there, the
columnar window operators emit Arrow results, and both cross processes as Arrow IPC — with the
same results as the in-process job at parallelism 1 (order aside), at parallelism 1, 2 and 4 in
real worker processes."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pyarrow as pa
import pytest
from recovery_support import alive, committed_lines

from flinkcore.common import Duration, Encoder, Types, WatermarkStrategy
from flinkcore.common.restart_strategy import RestartStrategies
from flinkcore.common.time import Time
from flinkcore.datastream import HashMapStateBackend, StreamExecutionEnvironment
from flinkcore.datastream.connectors.file_system import BucketAssigner, FileSink
from flinkcore.datastream.functions import KeyedProcessFunction
from flinkcore.datastream.window import EventTimeSessionWindows, TumblingEventTimeWindows
from flinkcore.runtime.cluster import ClusterJob, wire
from flinkcore.runtime.sources import END, Source, SourceReader
from flinkcore.state.key_groups import operator_index_of

N = 6_000


def events(n: int = N, nkeys: int = 40, seed: int = 7, spread: int = 10) -> pa.Table:
    """W2-like events: int64 key, float64 value, int64 ts (ms) a little out of order (values
    in quarters: sums are exact whatever order the partials merge in)."""
    rng = np.random.default_rng(seed)
    key = rng.integers(0, nkeys, n, dtype=np.int64)
    value = rng.integers(0, 400, n).astype(np.float64) / 4  # sums are exact in any order
    ts = np.arange(n, dtype=np.int64) // spread - rng.integers(0, 5, n, dtype=np.int64)
    return pa.table({"key": key, "value": value, "ts": ts})


def _run(build, parallelism: int, monkeypatch, processes: bool) -> list:
    monkeypatch.setenv("FLINKCORE_RUNTIME", "processes" if processes else "in-process")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    out = build(env)
    return sorted(tuple(r) for r in out.execute_and_collect())


def _same_at_every_parallelism(build, monkeypatch) -> list:
    expected = _run(build, 1, monkeypatch, processes=False)
    assert expected
    for p in (1, 2, 4):
        got = _run(build, p, monkeypatch, processes=True)
        assert got == expected, f"parallelism {p} in worker processes differs from in-process p1"
    return expected


@pytest.fixture
def arrow_frames(monkeypatch):
    """What the driver receives from the workers: the types of decoded batches."""
    kinds: list[str] = []
    decode = wire.decode_batch

    def recording(payload):
        values, ts = decode(payload)
        kinds.append("arrow" if hasattr(values, "schema") else "rows")
        return values, ts

    monkeypatch.setattr(wire, "decode_batch", recording)
    return kinds


def _watermarks(ms: int = 20):
    return WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(ms)).with_timestamp_assigner(
        "ts"
    )


def _tumbling_columnar(env):
    return (
        env.from_arrow(events())
        .assign_timestamps_and_watermarks(_watermarks())
        .key_by("key")
        .window(TumblingEventTimeWindows.of(Time.milliseconds(50)))
        .agg(total=("value", "sum"), n=("value", "count"), top=("value", "max"))
    )


def test_tumbling_columnar_aggregates_same_at_p1_p2_p4(monkeypatch, arrow_frames):
    expected = _same_at_every_parallelism(_tumbling_columnar, monkeypatch)
    assert len(expected) > 100
    # the window results reached the driver's sink as Arrow IPC, not as Rows
    assert arrow_frames and set(arrow_frames) == {"arrow"}, arrow_frames


def test_session_window_columnar_same_at_p1_p2_p4(monkeypatch, arrow_frames):
    def build(env):
        return (
            env.from_arrow(events(n=4_000, nkeys=300, spread=4))
            .assign_timestamps_and_watermarks(_watermarks())
            .key_by("key")
            .window(EventTimeSessionWindows.with_gap(Time.milliseconds(15)))
            .agg(n=("value", "count"), total=("value", "sum"))
        )

    expected = _same_at_every_parallelism(build, monkeypatch)
    assert len(expected) > 300
    assert "arrow" in arrow_frames


def test_source_emits_columnar_batches_in_a_slot(monkeypatch):
    """The source's whole Arrow batch reaches a chained map_batches in the slot (the row path
    would have cut it into the job's 1024-record batches and rebuilt it from Rows)."""

    def build(env):
        return (
            env.from_arrow(events(n=5_000))
            .map_batches(lambda b: pa.RecordBatch.from_arrays([pa.array([b.num_rows])], names=["rows"]))
            .set_parallelism(1)
        )

    monkeypatch.setenv("FLINKCORE_RUNTIME", "processes")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    got = [r[0] for r in build(env).execute_and_collect()]
    assert got == [5_000]


class WhereKeyRuns(KeyedProcessFunction):
    """Emits (key, subtask, running count of the key): state and subtask must agree on keys."""

    def open(self, runtime_context):
        from flinkcore.datastream.state import ValueStateDescriptor

        self.count = runtime_context.get_state(ValueStateDescriptor("n", Types.LONG()))
        self.subtask = runtime_context.get_index_of_this_subtask()
        self.parallelism = runtime_context.get_number_of_parallel_subtasks()

    def process_element(self, value, ctx):
        n = (self.count.value() or 0) + 1
        self.count.update(n)
        key = ctx.get_current_key()
        yield (key, self.subtask, self.parallelism, n)


def test_lambda_key_on_arrow_input_partitions_by_the_records_key(monkeypatch):
    """A lambda key selector cannot read a column: the hash writer gives it the batch's Rows, and
    every key lands on the subtask its key group names (never where a column would send it)."""

    def build(env):
        return (
            env.from_arrow(events(n=3_000, nkeys=97))
            .key_by(lambda r: (r.key * 7) % 31)
            .process(WhereKeyRuns())
        )

    monkeypatch.setenv("FLINKCORE_RUNTIME", "in-process")
    env = StreamExecutionEnvironment.get_execution_environment()
    expected = sorted((k, n) for k, _, _, n in build(env).execute_and_collect())
    for p in (2, 4):
        monkeypatch.setenv("FLINKCORE_RUNTIME", "processes")
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(p)
        rows = list(build(env).execute_and_collect())
        assert sorted((k, n) for k, _, _, n in rows) == expected
        for key, subtask, parallelism, _ in rows:
            assert parallelism == p
            assert subtask == operator_index_of(key, 128, p), (key, subtask)


def test_columnar_source_with_per_record_functions_downstream(monkeypatch):
    """A columnar source, a per-record filter and map, a columnar window, then a per-record map
    of the window's Rows: the per-record functions see Rows in the slots too."""

    def build(env):
        return (
            env.from_arrow(events(n=5_000, nkeys=20))
            .filter(lambda r: r.value > 10.0)
            .map(
                lambda r: r,
                output_type=Types.ROW_NAMED(
                    ["key", "value", "ts"], [Types.LONG(), Types.DOUBLE(), Types.LONG()]
                ),
            )
            .assign_timestamps_and_watermarks(_watermarks())
            .key_by("key")
            .window(TumblingEventTimeWindows.of(Time.milliseconds(40)))
            .agg(total=("value", "sum"), n=("value", "count"))
            .map(lambda r: (r.key, r.window_start, r.total, r.n))
        )

    expected = _same_at_every_parallelism(build, monkeypatch)
    assert len(expected) > 50


# -- checkpoint and SIGKILL recovery ----------------------------------------------------------


class _PacedReader(SourceReader):
    """Subtask ``i`` of ``p`` reads rows ``i, i+p, ...`` of the table, at most ``rate`` rows per
    second, as Arrow slices (``poll_columnar``) or Rows; its position is its state."""

    def __init__(self, table: pa.Table, rate: float) -> None:
        self.batch = table.combine_chunks().to_batches()[0]
        self.rate = rate
        self.pos = 0
        self.start = None

    def poll_columnar(self, max_records: int):
        if self.pos >= self.batch.num_rows:
            return END
        now = time.monotonic()
        if self.start is None:
            self.start = now - self.pos / self.rate
        allowed = int((now - self.start) * self.rate) - self.pos
        if allowed <= 0:
            return None
        part = self.batch.slice(self.pos, min(allowed, max_records, 64))
        self.pos += part.num_rows
        return part, None

    def poll(self, max_records: int):
        part = self.poll_columnar(max_records)
        if part is None or part is END:
            return part
        from flinkcore.runtime.operators.arrow import record_batch_to_rows

        return record_batch_to_rows(part[0]), None

    def snapshot_state(self):
        return self.pos

    def restore_state(self, state):
        self.pos = int(state or 0)


class PacedArrowSource(Source):
    bounded = True
    parallel = True

    def __init__(self, table: pa.Table, rate: float) -> None:
        self.table = table
        self.rate = rate

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        idx = np.arange(subtask_index, self.table.num_rows, parallelism)
        return _PacedReader(self.table.take(pa.array(idx)), self.rate)


def test_sigkill_of_a_worker_in_a_columnar_job_gives_exact_output(tmp_path, monkeypatch):
    """A columnar W2-like job at parallelism 2 (Arrow source, two-phase columnar window, Arrow
    results to the driver's file sink), checkpointed; a worker is SIGKILLed after a checkpoint
    completed, the job restarts from it, and the committed output equals the expected windows."""
    monkeypatch.setenv("FLINKCORE_RUNTIME", "processes")
    n = 4_000
    table = events(n=n, nkeys=7, spread=10)
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(chk)
    env.set_state_backend(HashMapStateBackend())
    env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 0))
    sink = (
        FileSink.for_row_format(out, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    )
    info = Types.ROW_NAMED(["key", "value", "ts"], [Types.LONG(), Types.DOUBLE(), Types.LONG()])
    (
        env.from_source(PacedArrowSource(table, rate=2_500), WatermarkStrategy.no_watermarks(), "paced", info)
        .uid("paced")
        .assign_timestamps_and_watermarks(_watermarks())
        .uid("timestamps")
        .key_by("key")
        .window(TumblingEventTimeWindows.of(Time.milliseconds(50)))
        .agg(total=("value", "sum"), n=("value", "count"))
        .uid("window")
        .map(lambda r: f"{r.key},{r.window_start},{r.total},{r.n}", output_type=Types.STRING())
        .uid("format")
        .sink_to(sink)
        .uid("file-sink")
    )
    client = env.execute_async("kill a worker of a columnar job")
    deadline = time.monotonic() + 20
    while True:
        first = client._job.job
        if isinstance(first, ClusterJob) and len(first.pids) == first.placement.num_workers:
            break
        assert time.monotonic() < deadline, "the job did not start its workers"
        time.sleep(0.01)
    assert first.graph.config.get("two_phase_windows"), "the columnar window was not split"
    while client._job.coordinator is None or client._job.coordinator.latest_id == 0:
        assert time.monotonic() < deadline, "no checkpoint completed"
        time.sleep(0.01)
    os.kill(first.pids[0], signal.SIGKILL)
    client.get_job_execution_result().result(timeout=60)
    assert client._job.restarts == 1

    d = table.to_pydict()
    sums: dict = {}
    for k, v, t in zip(d["key"], d["value"], d["ts"], strict=True):
        w = t - t % 50
        total, c = sums.get((k, w), (0.0, 0))
        sums[(k, w)] = (total + v, c + 1)
    expected = sorted(f"{k},{w},{t},{c}" for (k, w), (t, c) in sums.items())
    assert committed_lines(out) == expected
    assert [p for p in first.pids if alive(p)] == []
