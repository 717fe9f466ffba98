"""``DataStream`` and friends: the user API that records transformations.

Nothing runs here: every call adds a :class:`~flinkcore.datastream.transformations.Transformation`
to the environment; ``env.execute()`` translates them into a job graph for the runtime.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from typing import Any

from flinkcore.common.types import Row
from flinkcore.datastream.functions import (
    BroadcastProcessFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    KeyedProcessFunction,
)
from flinkcore.datastream.output_tag import OutputTag
from flinkcore.datastream.time_domain import TimeDomain
from flinkcore.datastream.transformations import (
    OneInputTransformation,
    PartitionTransformation,
    SideOutputTransformation,
    Transformation,
    TwoInputTransformation,
    UnionTransformation,
)
from flinkcore.runtime.graph import Partitioner
from flinkcore.runtime.operators import co, udf

__all__ = [
    "BroadcastConnectedStream",
    "BroadcastStream",
    "ConnectedStreams",
    "DataStream",
    "DataStreamSink",
    "KeyedStream",
]

_TIME_DOMAINS = (TimeDomain.EVENT_TIME, TimeDomain.PROCESSING_TIME)


class _UdfFactory:
    """Operator factory: the first instance uses the user's function object itself (so a sink at
    parallelism 1 can write into the caller's objects); further parallel instances get copies,
    as each Flink subtask gets its own deserialized function."""

    def __init__(self, make: Callable[[Any], Any], udf_obj: Any) -> None:
        self.make = make
        self.udf = udf_obj
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        obj = self.udf
        if self.calls > 1 and obj is not None:
            try:
                obj = copy.deepcopy(obj)
            except Exception:
                pass
        return self.make(obj)


def _method(f: Any, name: str, what: str) -> tuple[Callable, Any]:
    """``(callable, function object)`` of a Function object's ``name`` method or a plain callable."""
    m = getattr(f, name, None)
    if callable(m):
        return m, f
    if callable(f):
        return f, f
    raise TypeError(f"{what} takes a {name}() function object or a callable, got {f!r}")


def key_selector_of(key: Any) -> Callable[[Any], Any]:
    """A key selector from a callable, a KeySelector, a field index or name, or a list of them."""
    get_key = getattr(key, "get_key", None)
    if callable(get_key):
        return get_key
    if callable(key):
        return key
    if isinstance(key, (int, str)) and not isinstance(key, bool):
        return operator.itemgetter(key)
    if isinstance(key, (list, tuple)) and key and all(isinstance(k, (int, str)) for k in key):
        return operator.itemgetter(*key) if len(key) > 1 else operator.itemgetter(key[0])
    raise TypeError(f"key_by takes a callable, a KeySelector, a field index or a field name, got {key!r}")


def _get_field(record: Any, field: int | str) -> Any:
    return record[field]


def _set_field(record: Any, field: int | str, value: Any) -> Any:
    if isinstance(record, Row):
        values = list(record)
        idx = field if isinstance(field, int) else record._fields.index(field)
        values[idx] = value
        return Row._named(record._fields, values) if record._fields else Row(*values)
    if isinstance(record, tuple):
        if not isinstance(field, int):
            raise TypeError(f"a tuple field is an index, got {field!r}")
        return record[:field] + (value,) + record[field + 1 :]
    if isinstance(record, (list, dict)):
        out = copy.copy(record)
        out[field] = value
        return out
    raise TypeError(f"cannot set field {field!r} of {type(record).__name__}")


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (int, float, complex)) and not isinstance(v, bool)


def _rolling(kind: str, field: int | str) -> Callable[[Any, Any], Any]:
    def sum_(a: Any, b: Any) -> Any:
        if _is_scalar(a):
            return a + b
        return _set_field(a, field, a[field] + b[field])

    def min_(a: Any, b: Any) -> Any:
        if _is_scalar(a):
            return min(a, b)
        return a if a[field] <= b[field] else _set_field(a, field, b[field])

    def max_(a: Any, b: Any) -> Any:
        if _is_scalar(a):
            return max(a, b)
        return a if a[field] >= b[field] else _set_field(a, field, b[field])

    def min_by(a: Any, b: Any) -> Any:
        if _is_scalar(a):
            return min(a, b)
        return b if b[field] < a[field] else a

    def max_by(a: Any, b: Any) -> Any:
        if _is_scalar(a):
            return max(a, b)
        return b if b[field] > a[field] else a

    return {"sum": sum_, "min": min_, "max": max_, "min_by": min_by, "max_by": max_by}[kind]


class DataStream:
    """A stream of records (``pyflink.datastream.DataStream``)."""

    def __init__(self, env: Any, transformation: Transformation) -> None:
        self._env = env
        self._transformation = transformation

    # -- properties ---------------------------------------------------------------------------
    def get_execution_environment(self) -> Any:
        return self._env

    def get_name(self) -> str:
        return self._transformation.name

    def name(self, name: str) -> DataStream:
        self._transformation.name = name
        return self

    def uid(self, uid: str) -> DataStream:
        self._transformation.uid = uid
        return self

    def set_uid_hash(self, uid_hash: str) -> DataStream:
        self._transformation.uid = uid_hash
        return self

    def set_description(self, description: str) -> DataStream:
        self._transformation.description = description
        return self

    def get_type(self) -> Any:
        return self._transformation.output_type

    def _physical(self, what: str) -> Transformation:
        t = self._transformation
        if not t.physical:
            raise ValueError(f"{what} cannot be set on a union, partitioning or side-output stream")
        return t

    def set_parallelism(self, parallelism: int) -> DataStream:
        t = self._physical("parallelism")
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ValueError(f"parallelism must be a positive int, got {parallelism!r}")
        if not t.parallel and parallelism != 1:
            raise ValueError(f"'{t.name}' is not parallel: its parallelism must be 1")
        t.parallelism = parallelism
        return self

    def get_parallelism(self) -> int:
        p = self._transformation.parallelism
        return p if p is not None else self._env.get_parallelism()

    def set_max_parallelism(self, max_parallelism: int) -> DataStream:
        if not 0 < max_parallelism <= 32768:
            raise ValueError(f"max parallelism must be in [1, 32768], got {max_parallelism}")
        self._physical("max parallelism").max_parallelism = max_parallelism
        return self

    def force_non_parallel(self) -> DataStream:
        t = self._physical("non-parallel")
        t.parallelism = 1
        t.max_parallelism = 1
        t.parallel = False
        return self

    def set_buffer_timeout(self, timeout_millis: int) -> DataStream:
        return self

    def start_new_chain(self) -> DataStream:
        self._physical("chaining").chaining = "head"
        return self

    def disable_chaining(self) -> DataStream:
        self._physical("chaining").chaining = "never"
        return self

    def slot_sharing_group(self, slot_sharing_group: Any) -> DataStream:
        self._physical("slot sharing group").slot_sharing_group = getattr(
            slot_sharing_group, "name", slot_sharing_group
        )
        return self

    # -- building -----------------------------------------------------------------------------
    def _add(self, t: Transformation, cls: type | None = None) -> Any:
        self._env._add_transformation(t)
        return (cls or DataStream)(self._env, t)

    def _one_input(
        self, name: str, factory: Callable[[], Any], output_type: Any = None, key_selector: Any = None
    ) -> DataStream:
        return self._add(
            OneInputTransformation(self._transformation, name, factory, output_type, key_selector)
        )

    def _key_selector(self) -> Any:
        return None

    def transform(
        self, operator_name: str, output_type: Any, operator_factory: Callable[[], Any]
    ) -> DataStream:
        """Add a custom runtime operator: ``operator_factory()`` returns a fresh
        :class:`~flinkcore.runtime.operators.base.StreamOperator` per parallel instance."""
        return self._one_input(operator_name, operator_factory, output_type, self._key_selector())

    def map(self, func: Any, output_type: Any = None) -> DataStream:
        from flinkcore.jit import JitFunction, as_jit

        jf = as_jit(func)
        if isinstance(jf, JitFunction):
            # (+) flinkcore.jit: a compiled loop over each columnar batch, new typed columns out
            names = list(output_type.field_names) if hasattr(output_type, "field_names") else None
            out_type = output_type if output_type is not None else self._jit_map_type(jf)
            from flinkcore.runtime.operators.jit import JitMapOperator

            return self._one_input(
                "Map", _UdfFactory(lambda o: JitMapOperator(o, names), jf), out_type, self._key_selector()
            )
        fn, obj = _method(func, "map", "map")
        return self._one_input(
            "Map",
            _UdfFactory(lambda o: udf.MapOperator(_method(o, "map", "map")[0], o), obj),
            output_type,
            self._key_selector(),
        )

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream:
        fn, obj = _method(func, "flat_map", "flat_map")
        return self._one_input(
            "FlatMap",
            _UdfFactory(lambda o: udf.FlatMapOperator(_method(o, "flat_map", "flat_map")[0], o), obj),
            output_type,
            self._key_selector(),
        )

    def filter(self, func: Any) -> DataStream:
        from flinkcore.jit import JitFunction, as_jit

        jf = as_jit(func)
        if isinstance(jf, JitFunction):
            from flinkcore.runtime.operators.jit import JitFilterOperator

            self._check_jit_fields(jf, "Filter")
            # (+) flinkcore.jit: one compiled ufunc over each columnar batch
            return self._one_input(
                "Filter",
                _UdfFactory(lambda o: JitFilterOperator(o, o), jf),
                self.get_type(),
                self._key_selector(),
            )
        fn, obj = _method(func, "filter", "filter")
        return self._one_input(
            "Filter",
            _UdfFactory(lambda o: udf.FilterOperator(_method(o, "filter", "filter")[0], o), obj),
            self.get_type(),
            self._key_selector(),
        )

    def _typed_fields(self) -> dict | None:
        """{field name: numpy dtype} of a typed stream with named fields, else None."""
        t = self.get_type()
        names = getattr(t, "field_names", None)
        types = getattr(t, "field_types", None)
        if names is None or types is None:
            return None
        return {n: getattr(ft, "dtype", None) for n, ft in zip(names, types, strict=True)}

    def _check_jit_fields(self, jf: Any, operator: str) -> None:
        """A jit function on a typed stream must read fields the stream has (checked here, when
        the job is built, rather than on the first batch)."""
        fields = self._typed_fields()
        if fields is not None:
            missing = [p for p in jf.params if p not in fields]
            if missing:
                raise KeyError(
                    f"operator '{operator}': {jf!r} reads field(s) {missing} the stream does not have; "
                    f"it has {list(fields)}"
                )

    def _jit_map_type(self, jf: Any) -> Any:
        """The output type of a jit map on a typed stream: its result fields as typed columns
        (inferred by numba; None when the stream is untyped or numba is not installed)."""
        self._check_jit_fields(jf, "Map")
        fields = self._typed_fields()
        if fields is None or not jf.compiled():
            return None
        dtypes = [fields[p] for p in jf.params]
        if any(d is None or not (d.startswith(("int", "float", "bool"))) for d in dtypes):
            return None
        out = jf.output_dtypes(dtypes, "Map")
        from flinkcore.common.typeinfo import Types

        by_dtype = {
            "int64": Types.LONG,
            "int32": Types.INT,
            "int16": Types.SHORT,
            "int8": Types.BYTE,
            "float64": Types.DOUBLE,
            "float32": Types.FLOAT,
            "bool": Types.BOOLEAN,
        }
        types = [by_dtype.get(str(d)) for d in out[0]]
        if any(t is None for t in types):
            return None
        return Types.TUPLE([t() for t in types]) if out[1] else types[0]()

    def map_batches(self, func: Callable[[Any], Any], output_type: Any = None) -> DataStream:
        """(+) ``func`` takes a ``pyarrow.RecordBatch`` of the micro-batch's Rows and returns one."""
        from flinkcore.runtime.operators.arrow import ArrowBatchMapOperator

        return self._one_input("MapBatches", lambda: ArrowBatchMapOperator(func), output_type)

    def project(self, *field_indexes: int) -> DataStream:
        """Keep the given fields of tuple records, as a tuple (Flink's Projection)."""
        if not field_indexes:
            raise ValueError("project() needs at least one field index")
        getter = operator.itemgetter(*field_indexes)
        fn = (lambda v: (getter(v),)) if len(field_indexes) == 1 else (lambda v: tuple(getter(v)))
        return self._one_input(
            "Projection", lambda: udf.MapOperator(fn, None, "Projection"), None, self._key_selector()
        )

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        if not callable(getattr(func, "process_element", None)):
            raise TypeError(f"process() takes a ProcessFunction or KeyedProcessFunction, got {func!r}")
        if isinstance(func, KeyedProcessFunction) and self._key_selector() is None:
            raise TypeError("a KeyedProcessFunction needs a keyed stream: call key_by() first")
        cls = udf.KeyedProcessOperator if isinstance(func, KeyedProcessFunction) else udf.ProcessOperator
        return self._one_input(
            "KeyedProcess" if cls is udf.KeyedProcessOperator else "Process",
            _UdfFactory(lambda o: cls(o, time_domains=_TIME_DOMAINS), func),
            output_type,
            self._key_selector(),
        )

    def key_by(self, key_selector: Any, key_type: Any = None) -> KeyedStream:
        from flinkcore.jit import JitFunction, as_jit

        jf = as_jit(key_selector)
        if isinstance(jf, JitFunction):  # (+) a key column computed over columnar batches
            self._check_jit_fields(jf, "KeyBy")
            key_selector = jf
        ks = key_selector_of(key_selector)
        part = PartitionTransformation(self._transformation, Partitioner("hash", key_selector=ks))
        return KeyedStream(self._env, part, ks, self)

    def union(self, *streams: DataStream) -> DataStream:
        if not streams:
            return self
        ts = [self._transformation] + [s._transformation for s in streams]
        return DataStream(self._env, UnionTransformation(ts))

    def connect(self, ds: Any) -> Any:
        if isinstance(ds, BroadcastStream):
            return BroadcastConnectedStream(self, ds)
        if not isinstance(ds, DataStream):
            raise TypeError(f"connect() takes a DataStream or BroadcastStream, got {ds!r}")
        return ConnectedStreams(self, ds)

    def assign_timestamps_and_watermarks(self, watermark_strategy: Any) -> DataStream:
        from flinkcore.runtime.operators.watermarks import TimestampsAndWatermarksOperator

        if not callable(getattr(watermark_strategy, "create_watermark_generator", None)):
            raise TypeError(f"expected a WatermarkStrategy, got {watermark_strategy!r}")
        from flinkcore.jit import JitFunction, as_jit

        assigner = getattr(watermark_strategy, "timestamp_assigner", None)
        wrapped = getattr(assigner, "fn", None) if type(assigner).__name__ == "_CallableAssigner" else None
        jf = as_jit(wrapped) if wrapped is not None else None
        if isinstance(jf, JitFunction):  # (+) a numba dispatcher as timestamp assigner: a jit function
            watermark_strategy = watermark_strategy.with_timestamp_assigner(jf)
        if isinstance(getattr(watermark_strategy, "timestamp_assigner", None), JitFunction):
            self._check_jit_fields(watermark_strategy.timestamp_assigner, "Timestamps/Watermarks")
        return self._one_input(
            "Timestamps/Watermarks",
            lambda: TimestampsAndWatermarksOperator(watermark_strategy),
            self.get_type(),
        )

    # -- windows (the windowed streams are built by flinkcore.datastream.windowed_stream) --------
    def window_all(self, window_assigner: Any) -> Any:
        from flinkcore.datastream.windowed_stream import AllWindowedStream

        return AllWindowedStream(self, window_assigner)

    def count_window_all(self, size: int, slide: int = 0) -> Any:
        from flinkcore.datastream.window import CountSlidingWindowAssigner, CountTumblingWindowAssigner

        assigner = (
            CountTumblingWindowAssigner.of(size) if slide == 0 else CountSlidingWindowAssigner.of(size, slide)
        )
        return self.window_all(assigner)

    # -- partitioning -------------------------------------------------------------------------
    def _partition(self, partitioner: Partitioner) -> DataStream:
        return DataStream(self._env, PartitionTransformation(self._transformation, partitioner))

    def shuffle(self) -> DataStream:
        return self._partition(Partitioner("shuffle"))

    def rebalance(self) -> DataStream:
        return self._partition(Partitioner("rebalance"))

    def rescale(self) -> DataStream:
        return self._partition(Partitioner("rescale"))

    def forward(self) -> DataStream:
        return self._partition(Partitioner("forward"))

    def global_(self) -> DataStream:
        return self._partition(Partitioner("global"))

    def partition_custom(self, partitioner: Any, key_selector: Any) -> DataStream:
        fn, _ = _method(partitioner, "partition", "partition_custom")
        return self._partition(Partitioner("custom", key_selector=key_selector_of(key_selector), fn=fn))

    def broadcast(self, broadcast_state_descriptor: Any = None, *more: Any) -> Any:
        """Without descriptors: send every record to every parallel instance. With
        MapStateDescriptors: a BroadcastStream for ``connect`` (broadcast state)."""
        part = self._partition(Partitioner("broadcast"))
        if broadcast_state_descriptor is None:
            return part
        return BroadcastStream(part, [broadcast_state_descriptor, *more])

    def get_side_output(self, output_tag: OutputTag) -> DataStream:
        if not isinstance(output_tag, OutputTag):
            raise TypeError(f"get_side_output takes an OutputTag, got {output_tag!r}")
        return DataStream(
            self._env, SideOutputTransformation(self._transformation, output_tag.tag_id, output_tag.type_info)
        )

    # -- sinks --------------------------------------------------------------------------------
    def add_sink(self, sink_func: Any) -> DataStreamSink:
        invoke = getattr(sink_func, "invoke", None)
        if callable(getattr(sink_func, "create_operator", None)):
            factory = sink_func.create_operator  # transactional sinks bring their own operator
        elif callable(invoke):
            # one sink object shared by all parallel instances: in one process, results collected
            # by the sink stay visible to the caller at any parallelism
            factory = lambda: udf.SinkOperator(sink_func.invoke, sink_func, "Sink")  # noqa: E731
        elif callable(sink_func):
            factory = lambda: udf.SinkOperator(lambda v, c: sink_func(v), None, "Sink")  # noqa: E731
        else:
            raise TypeError(
                f"add_sink takes a SinkFunction (invoke(value, context)) or a callable, got {sink_func!r}"
            )
        t = OneInputTransformation(self._transformation, "Sink", factory, None, self._key_selector())
        t.is_sink = True
        self._env._add_transformation(t)
        return DataStreamSink(self._env, t)

    def sink_to(self, sink: Any) -> DataStreamSink:
        """A Sink (FileSink ...) that creates its own runtime operator."""
        if not callable(getattr(sink, "create_operator", None)):
            return self.add_sink(sink)
        t = OneInputTransformation(self._transformation, getattr(sink, "name", "Sink"), sink.create_operator)
        t.is_sink = True
        self._env._add_transformation(t)
        return DataStreamSink(self._env, t)

    def print(self, sink_identifier: str | None = None) -> DataStreamSink:
        """Print every record to stdout (prefixed ``i> `` with the subtask when parallel)."""
        from flinkcore.runtime.operators.sinks import PrintSinkOperator

        t = OneInputTransformation(
            self._transformation, "Print to Std. Out", lambda: PrintSinkOperator(sink_identifier)
        )
        t.is_sink = True
        self._env._add_transformation(t)
        return DataStreamSink(self._env, t)

    def execute_and_collect(self, job_execution_name: str | None = None, limit: int | None = None) -> Any:
        """Run the job and return its results: an iterator (a list when ``limit`` is given).
        A failure of the job is raised here, in the caller."""
        return self._env._execute_and_collect(self, job_execution_name, limit)


class DataStreamSink:
    """What ``add_sink`` / ``sink_to`` / ``print`` return."""

    def __init__(self, env: Any, transformation: Transformation) -> None:
        self._env = env
        self._transformation = transformation

    def name(self, name: str) -> DataStreamSink:
        self._transformation.name = name
        return self

    def uid(self, uid: str) -> DataStreamSink:
        self._transformation.uid = uid
        return self

    def set_uid_hash(self, uid_hash: str) -> DataStreamSink:
        self._transformation.uid = uid_hash
        return self

    def set_description(self, description: str) -> DataStreamSink:
        self._transformation.description = description
        return self

    def set_parallelism(self, parallelism: int) -> DataStreamSink:
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ValueError(f"parallelism must be a positive int, got {parallelism!r}")
        self._transformation.parallelism = parallelism
        return self

    def disable_chaining(self) -> DataStreamSink:
        self._transformation.chaining = "never"
        return self

    def slot_sharing_group(self, slot_sharing_group: Any) -> DataStreamSink:
        self._transformation.slot_sharing_group = getattr(slot_sharing_group, "name", slot_sharing_group)
        return self


class KeyedStream(DataStream):
    """A stream partitioned by key: operators on it have keyed state and timers."""

    def __init__(
        self, env: Any, transformation: Transformation, key_selector: Callable, origin: DataStream
    ) -> None:
        super().__init__(env, transformation)
        self._ks = key_selector
        self._origin = origin

    def _key_selector(self) -> Any:
        return self._ks

    def get_key_selector(self) -> Callable:
        return self._ks

    def _window_transform(
        self, name: str, operator_factory: Callable[[], Any], output_type: Any = None
    ) -> DataStream:
        """Used by the windowed streams: a keyed operator on this stream."""
        return self._one_input(name, operator_factory, output_type, self._ks)

    def _unsupported(self, what: str) -> None:
        raise ValueError(
            f"{what} is not supported on a KeyedStream (key_by is a partitioning, not an operator)"
        )

    def set_parallelism(self, parallelism: int) -> DataStream:
        self._unsupported("set_parallelism")

    def name(self, name: str) -> DataStream:
        self._unsupported("name")

    def uid(self, uid: str) -> DataStream:
        self._unsupported("uid")

    def set_max_parallelism(self, max_parallelism: int) -> DataStream:
        self._unsupported("set_max_parallelism")

    def force_non_parallel(self) -> DataStream:
        self._unsupported("force_non_parallel")

    def start_new_chain(self) -> DataStream:
        self._unsupported("start_new_chain")

    def disable_chaining(self) -> DataStream:
        self._unsupported("disable_chaining")

    def slot_sharing_group(self, slot_sharing_group: Any) -> DataStream:
        self._unsupported("slot_sharing_group")

    def reduce(self, func: Any, output_type: Any = None) -> DataStream:
        fn, obj = _method(func, "reduce", "reduce")
        return self._one_input(
            "Reduce",
            _UdfFactory(lambda o: udf.ReduceOperator(_method(o, "reduce", "reduce")[0], o), obj),
            output_type or self.get_type(),
            self._ks,
        )

    def _aggregate(self, kind: str, field: int | str) -> DataStream:
        return self._one_input(
            kind.capitalize(),
            lambda: udf.ReduceOperator(_rolling(kind, field), None, kind),
            self.get_type(),
            self._ks,
        )

    def sum(self, position_to_sum: int | str = 0) -> DataStream:
        return self._aggregate("sum", position_to_sum)

    def min(self, position_to_min: int | str = 0) -> DataStream:
        return self._aggregate("min", position_to_min)

    def max(self, position_to_max: int | str = 0) -> DataStream:
        return self._aggregate("max", position_to_max)

    def min_by(self, position_to_min_by: int | str = 0) -> DataStream:
        return self._aggregate("min_by", position_to_min_by)

    def max_by(self, position_to_max_by: int | str = 0) -> DataStream:
        return self._aggregate("max_by", position_to_max_by)

    def window(self, window_assigner: Any) -> Any:
        from flinkcore.datastream.windowed_stream import WindowedStream

        return WindowedStream(self, window_assigner)

    def count_window(self, size: int, slide: int = 0) -> Any:
        from flinkcore.datastream.window import CountSlidingWindowAssigner, CountTumblingWindowAssigner

        assigner = (
            CountTumblingWindowAssigner.of(size) if slide == 0 else CountSlidingWindowAssigner.of(size, slide)
        )
        return self.window(assigner)

    def connect(self, ds: Any) -> Any:
        if isinstance(ds, BroadcastStream):
            return BroadcastConnectedStream(self, ds)
        return ConnectedStreams(self, ds)

    def _partition(self, partitioner: Partitioner) -> DataStream:
        raise ValueError(
            f"cannot re-partition a keyed stream with {partitioner.kind}(); key_by already partitions it"
        )

    def union(self, *streams: DataStream) -> DataStream:
        return DataStream.union(self, *streams)


class ConnectedStreams:
    """Two streams processed together (``connect``); keyed when both inputs are keyed."""

    def __init__(self, stream1: DataStream, stream2: DataStream) -> None:
        self.stream1 = stream1
        self.stream2 = stream2
        self._env = stream1._env

    def key_by(self, key_selector1: Any, key_selector2: Any, key_type: Any = None) -> ConnectedStreams:
        return ConnectedStreams(self.stream1.key_by(key_selector1), self.stream2.key_by(key_selector2))

    def _keys(self) -> tuple[Any, Any]:
        k1, k2 = self.stream1._key_selector(), self.stream2._key_selector()
        if (k1 is None) != (k2 is None):
            raise TypeError("connect a keyed stream only with another keyed stream (or use key_by on both)")
        return k1, k2

    def _two_input(self, name: str, factory: Callable[[], Any], output_type: Any) -> DataStream:
        k1, k2 = self._keys()
        t = TwoInputTransformation(
            self.stream1._transformation, self.stream2._transformation, name, factory, output_type, k1, k2
        )
        self._env._add_transformation(t)
        return DataStream(self._env, t)

    def map(self, func: Any, output_type: Any = None) -> DataStream:
        if not (callable(getattr(func, "map1", None)) and callable(getattr(func, "map2", None))):
            raise TypeError(f"ConnectedStreams.map takes a CoMapFunction (map1, map2), got {func!r}")
        return self._two_input("Co-Map", _UdfFactory(lambda o: co.CoMapOperator(o), func), output_type)

    def flat_map(self, func: Any, output_type: Any = None) -> DataStream:
        if not (callable(getattr(func, "flat_map1", None)) and callable(getattr(func, "flat_map2", None))):
            raise TypeError(f"ConnectedStreams.flat_map takes a CoFlatMapFunction, got {func!r}")
        return self._two_input(
            "Co-Flat Map", _UdfFactory(lambda o: co.CoFlatMapOperator(o), func), output_type
        )

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        if not (
            callable(getattr(func, "process_element1", None))
            and callable(getattr(func, "process_element2", None))
        ):
            raise TypeError(
                f"ConnectedStreams.process takes a CoProcessFunction or KeyedCoProcessFunction, got {func!r}"
            )
        if isinstance(func, KeyedCoProcessFunction) and self._keys()[0] is None:
            raise TypeError("a KeyedCoProcessFunction needs keyed inputs: key_by both streams first")
        name = "Keyed Co-Process" if self._keys()[0] is not None else "Co-Process"
        return self._two_input(
            name, _UdfFactory(lambda o: co.CoProcessOperator(o, name, _TIME_DOMAINS), func), output_type
        )


class BroadcastStream:
    """A broadcast stream with broadcast-state descriptors (``ds.broadcast(desc)``)."""

    def __init__(self, stream: DataStream, descriptors: list) -> None:
        self.stream = stream
        self.broadcast_state_descriptors = descriptors


class BroadcastConnectedStream:
    """A (keyed or not) stream connected with a broadcast stream."""

    def __init__(self, stream: DataStream, broadcast: BroadcastStream) -> None:
        self.non_broadcast_stream = stream
        self.broadcast_stream = broadcast
        self._env = stream._env

    def process(self, func: Any, output_type: Any = None) -> DataStream:
        keyed = self.non_broadcast_stream._key_selector()
        if isinstance(func, KeyedBroadcastProcessFunction) and keyed is None:
            raise TypeError("a KeyedBroadcastProcessFunction needs a keyed stream: key_by() before connect()")
        if (
            not isinstance(func, KeyedBroadcastProcessFunction)
            and keyed is not None
            and isinstance(func, BroadcastProcessFunction)
        ):
            raise TypeError(
                "a keyed stream connected to a broadcast stream needs a KeyedBroadcastProcessFunction"
            )
        if not (
            callable(getattr(func, "process_element", None))
            and callable(getattr(func, "process_broadcast_element", None))
        ):
            raise TypeError(f"process() takes a (Keyed)BroadcastProcessFunction, got {func!r}")
        name = "Keyed-Broadcast-Process" if keyed is not None else "Broadcast-Process"
        t = TwoInputTransformation(
            self.non_broadcast_stream._transformation,
            self.broadcast_stream.stream._transformation,
            name,
            _UdfFactory(lambda o: co.BroadcastProcessOperator(o, name, _TIME_DOMAINS), func),
            output_type,
            keyed,
            None,
        )
        self._env._add_transformation(t)
        return DataStream(self._env, t)
