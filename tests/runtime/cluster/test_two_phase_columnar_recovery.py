"""Savepoints of columnar windows across plans: a savepoint taken from a two-phase columnar window
job (real worker processes, parallelism 2) restores into the same job at parallelism 1 in one
process (one phase) and at parallelism 3 (two phase), and a one-phase savepoint restores into the
two-phase plan: the global operator's snapshot is the one-phase operator's format (count partials
become the window's record count, and back). Savepoints are taken mid-stream (windows open), also
while the only window of the job is still open; the committed output is exact."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest
from recovery_support import committed_lines, running_cluster_job

from flinkcore.common import Configuration, Duration, Encoder, Types, WatermarkStrategy
from flinkcore.common.restart_strategy import RestartStrategies
from flinkcore.common.time import Time
from flinkcore.datastream import HashMapStateBackend, StreamExecutionEnvironment
from flinkcore.datastream.connectors.file_system import BucketAssigner, FileSink
from flinkcore.datastream.window import TumblingEventTimeWindows
from flinkcore.runtime.checkpointing import load_snapshot
from flinkcore.runtime.cluster.two_phase import ENV_VAR
from flinkcore.runtime.sources import END, Source, SourceReader

N = 4_000


def info(table: pa.Table):
    value = Types.LONG() if pa.types.is_integer(table.schema.field("value").type) else Types.DOUBLE()
    return Types.ROW_NAMED(["key", "value", "ts"], [Types.LONG(), value, Types.LONG()])


def events(n: int = N, nkeys: int = 7, seed: int = 11, ints: bool = False) -> pa.Table:
    """int64 key, float64 value in quarters (sums exact in any order; int64 values with ``ints``:
    the windows then run on the Arrow tables, not the native ones), int64 ts a little out of
    order (never late: the watermark trails by 20 ms)."""
    rng = np.random.default_rng(seed)
    key = rng.integers(0, nkeys, n, dtype=np.int64)
    value = rng.integers(-200, 400, n) if ints else rng.integers(-200, 400, n).astype(np.float64) / 4
    ts = np.arange(n, dtype=np.int64) // 10 + 1_000 - rng.integers(0, 5, n, dtype=np.int64)
    return pa.table({"key": key, "value": value, "ts": ts})


class _PacedReader(SourceReader):
    """A subtask's rows at ``rate`` rows per second as Arrow slices; its position is its state."""

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
    """One subtask (the source keeps parallelism 1, so its state restores at any parallelism)."""

    bounded = True
    parallel = False

    def __init__(self, table: pa.Table, rate: float) -> None:
        self.table = table
        self.rate = rate

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        return _PacedReader(self.table, self.rate)


def expected_lines(table: pa.Table, window: int) -> list[str]:
    d = table.to_pydict()
    acc: dict = {}
    for k, v, t in zip(d["key"], d["value"], d["ts"], strict=True):
        w = t - t % window
        total, c, hi = acc.get((k, w), (type(v)(0), 0, v))
        acc[(k, w)] = (total + v, c + 1, max(hi, v))
    return sorted(f"{k},{w},{t},{c},{hi}" for (k, w), (t, c, hi) in acc.items())


def build(env, table, out_dir, chk_dir, rate, parallelism, window):
    env.set_parallelism(parallelism)
    env.enable_checkpointing(50)
    env.get_checkpoint_config().set_checkpoint_storage_dir(chk_dir)
    env.set_state_backend(HashMapStateBackend())
    env.set_restart_strategy(RestartStrategies.no_restart())  # a failed restore fails the test
    sink = (
        FileSink.for_row_format(out_dir, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .build()
    )
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(20)).with_timestamp_assigner(
        "ts"
    )
    (
        env.from_source(
            PacedArrowSource(table, rate), WatermarkStrategy.no_watermarks(), "paced", info(table)
        )
        .uid("paced")
        .set_parallelism(1)
        .assign_timestamps_and_watermarks(strategy)
        .uid("timestamps")
        .set_parallelism(1)
        .key_by("key")
        .window(TumblingEventTimeWindows.of(Time.milliseconds(window)))
        .agg(total=("value", "sum"), n=("value", "count"), hi=("value", "max"))
        .uid("window")
        .map(lambda r: f"{r.key},{r.window_start},{r.total},{r.n},{r.hi}", output_type=Types.STRING())
        .uid("format")
        .sink_to(sink)
        .uid("file-sink")
    )
    return env


def _mode(monkeypatch, runtime: str, two_phase: bool) -> None:
    monkeypatch.setenv("FLINKCORE_RUNTIME", runtime)
    monkeypatch.setenv(ENV_VAR, "true" if two_phase else "false")


def _first_run(tmp_path, monkeypatch, table, window, two_phase, runtime="processes", parallelism=2):
    """Run until ~``wait`` s in, stop with a savepoint; returns the savepoint path."""
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk")
    _mode(monkeypatch, runtime, two_phase)
    env = build(
        StreamExecutionEnvironment.get_execution_environment(), table, out, chk, 2_500, parallelism, window
    )
    client = env.execute_async("first run")
    if runtime == "processes":
        first = running_cluster_job(client)
        assert bool(first.graph.config.get("two_phase_windows")) == two_phase
    time.sleep(0.5)
    savepoint = client.stop_with_savepoint(str(tmp_path / "sp")).result(timeout=20)
    client.get_job_execution_result().result(timeout=20)
    snapshot, _ = load_snapshot(savepoint)
    assert not [k for k in snapshot if "local-aggregate" in k], sorted(snapshot)
    assert "window" in snapshot
    assert open_windows(snapshot["window"]) > 0, "no window state in the savepoint"
    return savepoint


def open_windows(state) -> int:
    """(key, window) entries in the window operator's snapshots (all subtasks), native ones read
    in the one-phase table's format: header (magic, version, 4 params, aggregate count, aggregates),
    then the entry count."""
    total = 0
    for sub in state["operator"]:
        data = sub["operator"]["windows"]
        if isinstance(data, dict):  # an Arrow table's: {start: {column: values}}
            total += sum(len(cols["__k"]) for cols in data.values())
            continue
        assert data[:4] == b"FCWT"
        n_aggs = int.from_bytes(data[40:48], "little")
        total += int.from_bytes(data[48 + 8 * n_aggs : 56 + 8 * n_aggs], "little")
    return total


def _second_run(tmp_path, monkeypatch, table, window, savepoint, runtime, parallelism, two_phase):
    out, chk = str(tmp_path / "out"), str(tmp_path / "chk2")
    _mode(monkeypatch, runtime, two_phase)
    conf = Configuration()
    conf.set_string("execution.savepoint.path", savepoint)
    env = build(
        StreamExecutionEnvironment.get_execution_environment(conf), table, out, chk, 1e9, parallelism, window
    )
    env.execute(f"restored at parallelism {parallelism}")
    return committed_lines(out)


@pytest.mark.parametrize(
    ("runtime", "parallelism", "two_phase"), [("in-process", 1, False), ("processes", 3, True)]
)
def test_two_phase_columnar_savepoint_restores_one_phase_at_p1_and_two_phase_at_p3(
    tmp_path, monkeypatch, runtime, parallelism, two_phase
):
    table = events()
    savepoint = _first_run(tmp_path, monkeypatch, table, 50, two_phase=True)
    done = committed_lines(str(tmp_path / "out"))
    assert 0 < len(done) < len(expected_lines(table, 50)), "the savepoint was not taken mid-stream"
    got = _second_run(tmp_path, monkeypatch, table, 50, savepoint, runtime, parallelism, two_phase)
    assert got == expected_lines(table, 50)


@pytest.mark.parametrize("first_runtime", ["in-process", "processes"])
def test_one_phase_columnar_savepoint_restores_into_two_phase_at_p3(tmp_path, monkeypatch, first_runtime):
    table = events()
    parallelism = 1 if first_runtime == "in-process" else 2
    savepoint = _first_run(tmp_path, monkeypatch, table, 50, False, first_runtime, parallelism)
    got = _second_run(tmp_path, monkeypatch, table, 50, savepoint, "processes", 3, True)
    assert got == expected_lines(table, 50)


@pytest.mark.parametrize("two_phase_first", [True, False])
def test_int_columns_on_arrow_tables_restore_across_plans(tmp_path, monkeypatch, two_phase_first):
    """int64 values: both plans keep windows in Arrow tables; the count's partial column is renamed."""
    table = events(ints=True)
    savepoint = _first_run(tmp_path, monkeypatch, table, 50, two_phase_first, "processes", 2)
    runtime, parallelism = ("in-process", 1) if two_phase_first else ("processes", 3)
    got = _second_run(tmp_path, monkeypatch, table, 50, savepoint, runtime, parallelism, not two_phase_first)
    assert got == expected_lines(table, 50)


@pytest.mark.parametrize(
    ("runtime", "parallelism", "two_phase"), [("in-process", 1, False), ("processes", 3, True)]
)
def test_savepoint_while_the_only_window_is_open(tmp_path, monkeypatch, runtime, parallelism, two_phase):
    """Every record in one window: at the savepoint nothing has fired, everything is in the
    global operator's open window (converted to the one-phase format and back)."""
    table = events(n=3_000)
    window = 10_000
    savepoint = _first_run(tmp_path, monkeypatch, table, window, two_phase=True)
    assert committed_lines(str(tmp_path / "out")) == []
    got = _second_run(tmp_path, monkeypatch, table, window, savepoint, runtime, parallelism, two_phase)
    assert got == expected_lines(table, window)
