"""The workloads written with flinkcore's DataStream API, as a PyFlink user would write them.

Two styles (WORKLOADS.md): ``udf`` is per-record Python (lambdas and Function classes over
tuples from ``from_collection``); ``columnar`` is the same job over typed columns
(``from_arrow``, field-name key selectors and timestamp assigners, built-in aggregates) that
the engine runs as native kernels. Each job returns ``(results, checksum)`` as its sink saw
them. flinkcore is imported inside the functions so the baselines run without the engine.
"""

from __future__ import annotations

from typing import Any

from .data import OUT_OF_ORDERNESS_MS, SESSION_GAP_MS, W4_THRESHOLD, WINDOW_MS, Events


class _Sink:
    """Counts what reaches the sink and adds up one field (None: the value itself): the
    cross-check of every workload.

    At parallelism 1 a job runs in the calling process, so the sink's counters are read
    directly after ``execute()``.
    """

    def __init__(self, field: int | str | None) -> None:
        self.field = field
        self.results = 0
        self.checksum = 0.0

    def invoke(self, value: Any, context: Any = None) -> None:
        self.results += 1
        f = self.field
        if f is None:  # the value itself is the number
            self.checksum += value
        else:
            self.checksum += value[f] if isinstance(f, int) else getattr(value, f)


def _sink_function(field: Any):
    from flinkcore.datastream.functions import SinkFunction

    class CountingSink(_Sink, SinkFunction):
        pass

    return CountingSink(field)


def _env():
    from flinkcore.datastream import StreamExecutionEnvironment

    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    return env


def _tuple_type():
    from flinkcore.common import Types

    return Types.TUPLE([Types.LONG(), Types.DOUBLE(), Types.LONG()])


def _watermarks(assigner: Any):
    from flinkcore.common import Duration, WatermarkStrategy

    return WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(OUT_OF_ORDERNESS_MS)
    ).with_timestamp_assigner(assigner)


def _udf_timestamps():
    from flinkcore.common.watermark_strategy import TimestampAssigner

    class EventTime(TimestampAssigner):
        def extract_timestamp(self, value, record_timestamp):
            return value[2]

    return _watermarks(EventTime())


def arrow_table(events: Events):
    """The events as an Arrow table with typed columns: the columnar style's input."""
    import pyarrow as pa

    return pa.table({"key": events.key, "value": events.value, "ts": events.ts})


# --- W1 -------------------------------------------------------------------------------------


def w1_udf(events: list[tuple[int, float, int]]) -> tuple[int, float]:
    env = _env()
    sink = _sink_function(1)
    (
        env.from_collection(events, type_info=_tuple_type())
        .map(lambda e: (e[0], e[1] * 2.0, e[2]), output_type=_tuple_type())
        .filter(lambda e: e[0] % 2 == 0)
        .add_sink(sink)
    )
    env.execute("W1 udf")
    return sink.results, sink.checksum


def w1_columnar(table: Any) -> tuple[int, float]:
    """W1 over Arrow batches: map and filter as Arrow compute kernels, and a columnar sink.

    The sink is the last ``map_batches``: it counts and sums each batch that reaches it (one
    call per batch, not per record) and passes nothing on.
    """
    import pyarrow.compute as pc

    env = _env()
    totals = [0, 0.0]

    def double_even(batch):
        doubled = batch.set_column(1, "value", pc.multiply(batch.column(1), 2.0))
        return doubled.filter(pc.equal(pc.bit_wise_and(batch.column(0), 1), 0))

    def count_sink(batch):
        totals[0] += batch.num_rows
        totals[1] += pc.sum(batch.column(1)).as_py() or 0.0
        return batch.slice(0, 0)

    env.from_arrow(table).map_batches(double_even).map_batches(count_sink)
    env.execute("W1 columnar")
    return totals[0], totals[1]


# --- W2 / W2-sparse -------------------------------------------------------------------------


def _sum_count():
    from flinkcore.datastream.functions import AggregateFunction

    class SumCount(AggregateFunction):
        """SUM(value) and COUNT(*) of a window, written as PyFlink's documentation writes one."""

        def create_accumulator(self):
            return 0.0, 0

        def add(self, value, accumulator):
            return accumulator[0] + value[1], accumulator[1] + 1

        def get_result(self, accumulator):
            return accumulator

        def merge(self, a, b):
            return a[0] + b[0], a[1] + b[1]

    return SumCount()


def w2_udf(events: list[tuple[int, float, int]]) -> tuple[int, float]:
    """The issue's shape: a TimestampAssigner class, a key_by lambda and an AggregateFunction."""
    from flinkcore.common.time import Time
    from flinkcore.datastream.window import TumblingEventTimeWindows

    env = _env()
    sink = _sink_function(0)
    (
        env.from_collection(events, type_info=_tuple_type())
        .assign_timestamps_and_watermarks(_udf_timestamps())
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .aggregate(_sum_count())
        .add_sink(sink)
    )
    env.execute("W2 udf")
    return sink.results, sink.checksum


def w2_udf_reduce(events: list[tuple[int, float, int]]) -> tuple[int, float]:
    """The same window with a map to ``(key, value, 1)`` and a reduce lambda instead."""
    from flinkcore.common.time import Time
    from flinkcore.datastream.window import TumblingEventTimeWindows

    env = _env()
    sink = _sink_function(1)
    (
        env.from_collection(events, type_info=_tuple_type())
        .assign_timestamps_and_watermarks(_udf_timestamps())
        .map(lambda e: (e[0], e[1], 1))
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .reduce(lambda a, b: (a[0], a[1] + b[1], a[2] + b[2]))
        .add_sink(sink)
    )
    env.execute("W2 udf+reduce")
    return sink.results, sink.checksum


def w2_columnar(table: Any) -> tuple[int, float]:
    from flinkcore.common.time import Time
    from flinkcore.datastream.window import TumblingEventTimeWindows

    env = _env()
    sink = _sink_function("total")
    (
        env.from_arrow(table)
        .assign_timestamps_and_watermarks(_watermarks("ts"))
        .key_by("key")
        .window(TumblingEventTimeWindows.of(Time.milliseconds(WINDOW_MS)))
        .agg(total=("value", "sum"), n=("value", "count"))
        .add_sink(sink)
    )
    env.execute("W2 columnar")
    return sink.results, sink.checksum


# --- W3 -------------------------------------------------------------------------------------


def _count():
    from flinkcore.datastream.functions import AggregateFunction

    class Count(AggregateFunction):
        """COUNT(*) of a window (sessions merge, so ``merge`` is needed)."""

        def create_accumulator(self):
            return 0

        def add(self, value, accumulator):
            return accumulator + 1

        def get_result(self, accumulator):
            return accumulator

        def merge(self, a, b):
            return a + b

    return Count()


def w3_udf(events: list[tuple[int, float, int]]) -> tuple[int, float]:
    """W2's shape (TimestampAssigner class, key_by lambda, AggregateFunction) over sessions."""
    from flinkcore.common.time import Time
    from flinkcore.datastream.window import EventTimeSessionWindows

    env = _env()
    sink = _sink_function(None)
    (
        env.from_collection(events, type_info=_tuple_type())
        .assign_timestamps_and_watermarks(_udf_timestamps())
        .key_by(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(SESSION_GAP_MS)))
        .aggregate(_count())
        .add_sink(sink)
    )
    env.execute("W3 udf")
    return sink.results, sink.checksum


def w3_udf_reduce(events: list[tuple[int, float, int]]) -> tuple[int, float]:
    """The same sessions with a map to ``(key, 1)`` and a reduce lambda instead."""
    from flinkcore.common.time import Time
    from flinkcore.datastream.window import EventTimeSessionWindows

    env = _env()
    sink = _sink_function(1)
    (
        env.from_collection(events, type_info=_tuple_type())
        .assign_timestamps_and_watermarks(_udf_timestamps())
        .map(lambda e: (e[0], 1))
        .key_by(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(SESSION_GAP_MS)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .add_sink(sink)
    )
    env.execute("W3 udf+reduce")
    return sink.results, sink.checksum


def w3_columnar(table: Any) -> tuple[int, float]:
    from flinkcore.common.time import Time
    from flinkcore.datastream.window import EventTimeSessionWindows

    env = _env()
    sink = _sink_function("n")
    (
        env.from_arrow(table)
        .assign_timestamps_and_watermarks(_watermarks("ts"))
        .key_by("key")
        .window(EventTimeSessionWindows.with_gap(Time.milliseconds(SESSION_GAP_MS)))
        .agg(n=("value", "count"))
        .add_sink(sink)
    )
    env.execute("W3 columnar")
    return sink.results, sink.checksum


# --- W4 -------------------------------------------------------------------------------------


def _w4(events: list[tuple[int, float, int]], backend: str) -> tuple[int, float]:
    import math
    import tempfile

    from flinkcore.common import Types
    from flinkcore.datastream.functions import KeyedProcessFunction
    from flinkcore.datastream.state import ValueStateDescriptor

    class RunningSum(KeyedProcessFunction):
        """The fraud-detection shape: a running sum per key, an alert each time it passes 10k."""

        def open(self, runtime_context):
            self.total = runtime_context.get_state(ValueStateDescriptor("total", Types.DOUBLE()))

        def process_element(self, value, ctx):
            old = self.total.value() or 0.0
            new = old + value[1]
            self.total.update(new)
            if math.floor(new / W4_THRESHOLD) > math.floor(old / W4_THRESHOLD):
                yield value[0], new

    env = _env()
    tmp = None
    if backend == "lmdb":
        from flinkcore.datastream.state_backend import EmbeddedLmdbStateBackend

        tmp = tempfile.TemporaryDirectory(prefix="flinkcore-bench-lmdb-")
        env.set_state_backend(EmbeddedLmdbStateBackend(tmp.name))
    else:
        from flinkcore.datastream.state_backend import HashMapStateBackend

        env.set_state_backend(HashMapStateBackend())
    sink = _sink_function(1)
    try:
        (
            env.from_collection(events, type_info=_tuple_type())
            .key_by(lambda e: e[0])
            .process(RunningSum())
            .add_sink(sink)
        )
        env.execute(f"W4 {backend}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return sink.results, sink.checksum


def w4_heap(events: list[tuple[int, float, int]]) -> tuple[int, float]:
    return _w4(events, "heap")


def w4_lmdb(events: list[tuple[int, float, int]]) -> tuple[int, float]:
    return _w4(events, "lmdb")


def _tuples(ev: Events) -> list[tuple[int, float, int]]:
    return ev.tuples()


#: (workload, style) -> (prepare events, run job, description of the input).
JOBS: dict[tuple[str, str], tuple[Any, Any, str]] = {
    ("W1", "udf"): (_tuples, w1_udf, "from_collection(list of tuples)"),
    ("W1", "columnar"): (arrow_table, w1_columnar, "from_arrow(pyarrow.Table)"),
    ("W2", "udf"): (_tuples, w2_udf, "from_collection(list of tuples), AggregateFunction"),
    ("W2", "udf+reduce"): (_tuples, w2_udf_reduce, "from_collection(list of tuples), map + reduce"),
    ("W2", "columnar"): (arrow_table, w2_columnar, "from_arrow(pyarrow.Table)"),
    ("W2-sparse", "udf"): (_tuples, w2_udf, "from_collection(list of tuples), AggregateFunction"),
    ("W2-sparse", "columnar"): (arrow_table, w2_columnar, "from_arrow(pyarrow.Table)"),
    ("W3", "udf"): (_tuples, w3_udf, "from_collection(list of tuples), AggregateFunction"),
    ("W3", "udf+reduce"): (_tuples, w3_udf_reduce, "from_collection(list of tuples), map + reduce"),
    ("W3", "columnar"): (arrow_table, w3_columnar, "from_arrow(pyarrow.Table)"),
    ("W4", "udf+heap"): (_tuples, w4_heap, "from_collection(list of tuples), heap backend"),
    ("W4", "udf+lmdb"): (_tuples, w4_lmdb, "from_collection(list of tuples), LMDB backend"),
}
