"""W2 and W3 (../../../shared/WORKLOADS.md) with a parallel source, for parallelism 1 vs 2.

The events are the workload's (``flinkcore.benchmarks.data.generate``); subtask ``i`` of ``p``
reads events ``i, i+p, i+2p, ...`` so every subtask advances through event time together (its
own out-of-orderness stays within the workload's 50 ms; no event becomes late). The pipelines
are the suite's own (flinkcore/benchmarks/jobs.py): ``udf`` over tuples with Python lambdas,
``columnar`` over Arrow record batches (a typed schema) with a field key and built-in
aggregates, which cross processes as Arrow IPC.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from typing import Any

import numpy as np

from flinkcore.benchmarks.data import OUT_OF_ORDERNESS_MS, SESSION_GAP_MS, WINDOW_MS, Events
from flinkcore.runtime.sources import END, Source, SourceReader

FIELDS = ("key", "value", "ts")


class _StridedReader(SourceReader):
    def __init__(self, key: np.ndarray, value: np.ndarray, ts: np.ndarray, rows: bool | str) -> None:
        self.key, self.value, self.ts = key, value, ts
        self.rows = rows
        self.pos = 0

    def poll(self, max_records: int) -> Any:
        a = self.pos
        if a >= len(self.key):
            return END
        b = min(a + max_records, len(self.key))
        self.pos = b
        records = zip(self.key[a:b].tolist(), self.value[a:b].tolist(), self.ts[a:b].tolist(), strict=True)
        if self.rows:  # named Rows (also the columnar reader's records)
            from flinkcore.common.types import row_class

            cls = row_class(FIELDS)
            new = tuple.__new__
            return [new(cls, r) for r in records], None
        return list(records), None

    def snapshot_state(self) -> Any:
        return self.pos

    @staticmethod
    def create(key: np.ndarray, value: np.ndarray, ts: np.ndarray, rows: bool | str) -> SourceReader:
        return (_ArrowStridedReader if rows == "arrow" else _StridedReader)(key, value, ts, rows)

    def restore_state(self, state: Any) -> None:
        self.pos = int(state or 0)


class _ArrowStridedReader(_StridedReader):
    """The columnar style's reader: Arrow record batches over the columns (no copy) where the
    runtime takes columnar batches (``poll_columnar``), named Rows where it asks for records."""

    def poll_columnar(self, max_records: int) -> Any:
        import pyarrow as pa

        a = self.pos
        if a >= len(self.key):
            return END
        b = min(a + max_records, len(self.key))
        self.pos = b
        cols = [self.key[a:b], self.value[a:b], self.ts[a:b]]
        return pa.RecordBatch.from_arrays([pa.array(c) for c in cols], names=list(FIELDS)), None


class StridedEvents(Source):
    """The workload's events, split over the parallel subtasks by stride."""

    bounded = True
    parallel = True

    def __init__(self, events: Events, rows: bool | str, parallelism: int = 1) -> None:
        self.events = events
        self.key, self.value, self.ts = events.key, events.value, events.ts
        self.rows = rows
        self.parallelism = parallelism
        self._split: dict[int, dict[str, str]] | None = None

    def __getstate__(self) -> dict:
        """What travels to a worker process: the paths of each subtask's columns in shared memory
        (written once per event set and parallelism, then reused by every run), not the columns:
        a worker maps its own share of the pages instead of receiving a copy through pickle, and
        reads it as contiguous columns, as the in-process run reads its arrays (no strided copy
        of the whole data set in every worker)."""
        return {"rows": self.rows, "split": _share(self.events, self.parallelism)}

    def __setstate__(self, state: dict) -> None:
        self.rows = state["rows"]
        self._split = state["split"]
        self.parallelism = len(self._split)

    def create_reader(self, subtask_index: int, parallelism: int) -> SourceReader:
        """Every run, at every parallelism and in either runtime, maps its share of the events
        from the files in shared memory afresh (so p1 in this process pays for reading its input
        as the p2 workers do: the page faults of a new mapping, ~0.25 CPU-s per 100M events)."""
        split = self._split
        if split is None:
            split = _share(self.events, parallelism)
        elif parallelism != self.parallelism:
            raise ValueError(f"events split for parallelism {self.parallelism}, not {parallelism}")
        cols = {name: np.load(path, mmap_mode="r") for name, path in split[subtask_index].items()}
        return _StridedReader.create(cols["key"], cols["value"], cols["ts"], self.rows)


class _Shared:
    """Each subtask's columns saved as .npy files in a temporary directory (in /dev/shm where
    there is one), removed when the process exits."""

    def __init__(self, events: Events, parallelism: int) -> None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.dir = tempfile.mkdtemp(prefix="flinkcore-bench-", dir=base)
        self.paths: dict[int, dict[str, str]] = {}
        for i in range(parallelism):
            self.paths[i] = {}
            for name in ("key", "value", "ts"):
                path = self.paths[i][name] = os.path.join(self.dir, f"{name}-{i}.npy")
                np.save(path, np.ascontiguousarray(getattr(events, name)[i::parallelism]))
        weakref.finalize(self, shutil.rmtree, self.dir, True)


#: (id of an event set, parallelism) -> (the event set, its files): written once per bench run
_SHARED: dict[tuple[int, int], tuple[Events, _Shared]] = {}


def _share(events: Events, parallelism: int) -> dict[int, dict[str, str]]:
    key = (id(events), parallelism)
    if key not in _SHARED:
        _SHARED[key] = (events, _Shared(events, parallelism))
    return _SHARED[key][1].paths


def prepare(events: Events, parallelism: int) -> None:
    """Write the per-subtask files of ``events`` now (so no timed run pays for it)."""
    _share(events, parallelism)


class CountingSink:
    """Counts results and adds up one field (runs in the driver, so its counters are read there)."""

    def __init__(self, field: int | str) -> None:
        self.field = field
        self.results = 0
        self.checksum = 0.0

    def invoke(self, value: Any, context: Any = None) -> None:
        self.results += 1
        f = self.field
        self.checksum += value[f] if isinstance(f, int) else getattr(value, f)


class BatchTotals:
    """The columnar style's sink, as a user writes one for columnar results: each results batch
    is reduced to (results, checksum) where it is produced, in the window's slot at the job's
    parallelism (``map_batches``, chained), and the sink adds up those rows. The same pipeline at
    p1 and p2; what the driver receives is one row per batch instead of one per result."""

    def __init__(self, field: str) -> None:
        self.field = field

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        total = pc.sum(batch.column(self.field)).as_py() if batch.num_rows else 0
        return pa.RecordBatch.from_arrays(
            [pa.array([batch.num_rows], pa.int64()), pa.array([float(total or 0)], pa.float64())],
            names=["results", "checksum"],
        )


class _AddingSink:
    """Adds up the (results, checksum) rows of :class:`BatchTotals` (in the driver)."""

    def __init__(self) -> None:
        self.results = 0
        self.checksum = 0.0

    def invoke(self, value: Any, context: Any = None) -> None:
        self.results += value[0]
        self.checksum += value[1]


def _batch_sink() -> Any:
    from flinkcore.datastream.functions import SinkFunction

    class Sink(_AddingSink, SinkFunction):
        pass

    return Sink()


def _sink(field: Any) -> Any:
    from flinkcore.datastream.functions import SinkFunction

    class Sink(CountingSink, SinkFunction):
        pass

    return Sink(field)


class SlotCountingSink(CountingSink):
    """:class:`CountingSink` for a sink that runs where Flink runs it: in the task slots, at the
    job's parallelism (``flinkcore.sinks-in-driver: false``), not in the driver. Each instance
    counts its own results and writes them to a file of ``directory`` when it closes (a sink
    writing to an external system); :func:`slot_sink_totals` adds them up afterwards. At
    parallelism 1 (in this process) the same sink writes one file."""

    def __init__(self, field: int | str, directory: str) -> None:
        super().__init__(field)
        self.directory = directory

    def open(self, runtime_context: Any = None) -> None:
        self.results = 0
        self.checksum = 0.0

    def close(self) -> None:
        path = os.path.join(self.directory, f"{os.getpid()}-{id(self)}.txt")
        with open(path, "w") as f:
            f.write(f"{self.results} {self.checksum!r}")


def _slot_sink(field: Any) -> Any:
    from flinkcore.datastream.functions import SinkFunction

    class Sink(SlotCountingSink, SinkFunction):
        pass

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return Sink(field, tempfile.mkdtemp(prefix="flinkcore-bench-sink-", dir=base))


def slot_sink_totals(sink: SlotCountingSink) -> tuple[int, float]:
    """(results, checksum) over every instance of ``sink`` (then its directory is removed)."""
    results, checksum = 0, 0.0
    try:
        for name in sorted(os.listdir(sink.directory)):
            with open(os.path.join(sink.directory, name)) as f:
                r, c = f.read().split()
            results += int(r)
            checksum += float(c)
    finally:
        shutil.rmtree(sink.directory, True)
    return results, checksum


#: ``flinkcore.batch-size`` of every job (None: the default); the same at every parallelism
BATCH_SIZE: int | None = None


def _env(parallelism: int, sinks_in_slots: bool = False) -> Any:
    from flinkcore.common.configuration import Configuration
    from flinkcore.datastream import StreamExecutionEnvironment

    conf = Configuration()
    if BATCH_SIZE:
        conf.set_string("flinkcore.batch-size", str(BATCH_SIZE))
    if sinks_in_slots:  # Flink's placement: the sink's subtasks run in the slots
        conf.set_string("flinkcore.sinks-in-driver", "false")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(parallelism)
    return env


def _watermarks(assigner: Any) -> Any:
    from flinkcore.common import Duration, WatermarkStrategy

    return WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(OUT_OF_ORDERNESS_MS)
    ).with_timestamp_assigner(assigner)


class _EventTime:
    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return value[2]


def _source(env: Any, events: Events, rows: bool | str) -> Any:
    from flinkcore.common import Types, WatermarkStrategy

    if rows:
        info = Types.ROW_NAMED(list(FIELDS), [Types.LONG(), Types.DOUBLE(), Types.LONG()])
    else:
        info = Types.TUPLE([Types.LONG(), Types.DOUBLE(), Types.LONG()])
    source = StridedEvents(events, rows, env.get_parallelism())
    return env.from_source(source, WatermarkStrategy.no_watermarks(), "events", info)


def w2_udf(events: Events, parallelism: int) -> tuple[int, float]:
    from flinkcore.common.time import Time
    from flinkcore.common.watermark_strategy import TimestampAssigner
    from flinkcore.datastream.window import TumblingEventTimeWindows

    class EventTime(_EventTime, TimestampAssigner):
        pass

    env = _env(parallelism)
    sink = _sink(1)
    (
        _source(env, events, rows=False)
        .assign_timestamps_and_watermarks(_watermarks(EventTime()))
        .map(lambda e: (e[0], e[1], 1))
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .reduce(lambda a, b: (a[0], a[1] + b[1], a[2] + b[2]))
        .add_sink(sink)
    )
    env.execute("W2 udf")
    return sink.results, sink.checksum


def w2_udf_aggregate(events: Events, parallelism: int) -> tuple[int, float]:
    """W2 in the issue's udf shape (the suite's ``w2_udf``): a TimestampAssigner class, a key_by
    lambda and an AggregateFunction (SUM and COUNT as PyFlink's documentation writes one)."""
    from flinkcore.benchmarks.jobs import _sum_count
    from flinkcore.common.time import Time
    from flinkcore.common.watermark_strategy import TimestampAssigner
    from flinkcore.datastream.window import TumblingEventTimeWindows

    class EventTime(_EventTime, TimestampAssigner):
        pass

    env = _env(parallelism)
    sink = _sink(0)
    (
        _source(env, events, rows=False)
        .assign_timestamps_and_watermarks(_watermarks(EventTime()))
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .aggregate(_sum_count())
        .add_sink(sink)
    )
    env.execute("W2 udf aggregate")
    return sink.results, sink.checksum


def w3_udf(events: Events, parallelism: int) -> tuple[int, float]:
    from flinkcore.common.time import Time
    from flinkcore.common.watermark_strategy import TimestampAssigner
    from flinkcore.datastream.window import EventTimeSessionWindows

    class EventTime(_EventTime, TimestampAssigner):
        pass

    env = _env(parallelism)
    sink = _sink(1)
    (
        _source(env, events, rows=False)
        .assign_timestamps_and_watermarks(_watermarks(EventTime()))
        .map(lambda e: (e[0], 1))
        .key_by(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(SESSION_GAP_MS)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .add_sink(sink)
    )
    env.execute("W3 udf")
    return sink.results, sink.checksum


def _w2_columnar_results(env: Any, events: Events) -> Any:
    """W2 columnar up to its window results (each variant below adds its own sink)."""
    from flinkcore.common.time import Time
    from flinkcore.datastream.window import TumblingEventTimeWindows

    return (
        _source(env, events, rows="arrow")
        .assign_timestamps_and_watermarks(_watermarks("ts"))
        .key_by("key")
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .agg(total=("value", "sum"), n=("value", "count"))
    )


def _w3_columnar_results(env: Any, events: Events) -> Any:
    """W3 columnar up to its session results."""
    from flinkcore.common.time import Time
    from flinkcore.datastream.window import EventTimeSessionWindows

    return (
        _source(env, events, rows="arrow")
        .assign_timestamps_and_watermarks(_watermarks("ts"))
        .key_by("key")
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(SESSION_GAP_MS)))
        .agg(n=("value", "count"))
    )


def w2_columnar(events: Events, parallelism: int) -> tuple[int, float]:
    env = _env(parallelism)
    sink = _sink("total")
    _w2_columnar_results(env, events).add_sink(sink)
    env.execute("W2 columnar")
    return sink.results, sink.checksum


def w3_columnar(events: Events, parallelism: int) -> tuple[int, float]:
    env = _env(parallelism)
    sink = _sink("n")
    _w3_columnar_results(env, events).add_sink(sink)
    env.execute("W3 columnar")
    return sink.results, sink.checksum


def w2_columnar_batch_sink(events: Events, parallelism: int) -> tuple[int, float]:
    """W2 columnar with :class:`BatchTotals` as its sink (results reduced per batch in the slot)."""
    env = _env(parallelism)
    sink = _batch_sink()
    _w2_columnar_results(env, events).map_batches(BatchTotals("total")).add_sink(sink)
    env.execute("W2 columnar, batch sink")
    return sink.results, sink.checksum


def w3_columnar_batch_sink(events: Events, parallelism: int) -> tuple[int, float]:
    """W3 columnar with :class:`BatchTotals` as its sink."""
    env = _env(parallelism)
    sink = _batch_sink()
    _w3_columnar_results(env, events).map_batches(BatchTotals("n")).add_sink(sink)
    env.execute("W3 columnar, batch sink")
    return sink.results, sink.checksum


def w2_columnar_slot_sink(events: Events, parallelism: int) -> tuple[int, float]:
    """W2 columnar with its per-record sink in the task slots (as Flink places a sink of the job's
    parallelism), not in the driver: see :class:`SlotCountingSink`."""
    env = _env(parallelism, sinks_in_slots=True)
    sink = _slot_sink("total")
    _w2_columnar_results(env, events).add_sink(sink)
    env.execute("W2 columnar, sink in the slots")
    return slot_sink_totals(sink)


def w3_columnar_slot_sink(events: Events, parallelism: int) -> tuple[int, float]:
    """W3 columnar with its per-record sink in the task slots (see :class:`SlotCountingSink`)."""
    env = _env(parallelism, sinks_in_slots=True)
    sink = _slot_sink("n")
    _w3_columnar_results(env, events).add_sink(sink)
    env.execute("W3 columnar, sink in the slots")
    return slot_sink_totals(sink)


def _busy(x: float) -> float:
    """About 5 microseconds of per-record Python (a UDF that does real work: parsing, scoring ...)."""
    acc = x
    for i in range(60):
        acc = acc * 0.999 + i
    return acc


def w2_udf_heavy(events: Events, parallelism: int) -> tuple[int, float]:
    """Not a WORKLOADS.md workload: W2 (udf) with a map that costs ~5 us per record, to show how
    the slots scale when per-record work, not the exchange, dominates."""
    from flinkcore.common.time import Time
    from flinkcore.common.watermark_strategy import TimestampAssigner
    from flinkcore.datastream.window import TumblingEventTimeWindows

    class EventTime(_EventTime, TimestampAssigner):
        pass

    env = _env(parallelism)
    sink = _sink(1)
    (
        _source(env, events, rows=False)
        .assign_timestamps_and_watermarks(_watermarks(EventTime()))
        .map(lambda e: (e[0], e[1], 1 if _busy(e[1]) else 0))
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .reduce(lambda a, b: (a[0], a[1] + b[1], a[2] + b[2]))
        .add_sink(sink)
    )
    env.execute("W2 udf heavy")
    return sink.results, sink.checksum


JOBS = {
    "w2-udf": w2_udf,
    "w2-udf-aggregate": w2_udf_aggregate,
    "w2-columnar": w2_columnar,
    "w3-udf": w3_udf,
    "w3-columnar": w3_columnar,
    "w2-columnar-batch-sink": w2_columnar_batch_sink,
    "w3-columnar-batch-sink": w3_columnar_batch_sink,
    "w2-columnar-slot-sink": w2_columnar_slot_sink,
    "w3-columnar-slot-sink": w3_columnar_slot_sink,
    "w2-udf-heavy": w2_udf_heavy,
}
