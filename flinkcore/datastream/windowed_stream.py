"""``WindowedStream`` and ``AllWindowedStream``: a keyed (or whole) stream cut into windows.

Built by ``KeyedStream.window(assigner)`` / ``count_window(n)`` and ``DataStream.window_all`` /
``count_window_all``; configured with ``trigger``, ``evictor``, ``allowed_lateness`` and
``side_output_late_data``; finished by a window function (``reduce``, ``aggregate``, ``apply``,
``process``, ``sum``/``min``/``max`` or the **+** ``agg(**named)``), which returns a DataStream.

Every kind of user window function is adapted here to the runtime's single
:class:`~flinkcore.runtime.operators.window.InternalWindowFunction`, and the operator is chosen:
tumbling/sliding event-time windows with the default trigger and no evictor run on the
specialised :class:`~flinkcore.runtime.operators.window.AlignedWindowOperator`; everything else
on Flink's general :class:`~flinkcore.runtime.operators.window.WindowOperator`. Both have the
same observable semantics (the tests run them against one reference model).

Example::

    totals = (
        stream.key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(Time.seconds(1)))
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
    )
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from flinkcore.datastream.window import (
    EventTimeSessionWindows,
    EventTimeTrigger,
    SlidingEventTimeWindows,
    TimeWindow,
    TumblingEventTimeWindows,
    WindowAssigner,
    to_millis,
)
from flinkcore.runtime.operators.window import (
    AlignedWindowOperator,
    InternalWindowFunction,
    SessionWindowOperator,
    WindowOperator,
    WindowStateSpec,
)

__all__ = ["AllWindowedStream", "WindowedStream", "AGG_FUNCTIONS"]


# --------------------------------------------------------------------------------------------
# Adapting user functions
# --------------------------------------------------------------------------------------------


def _reduce_fn(fn: Any) -> Callable[[Any, Any], Any]:
    reduce = getattr(fn, "reduce", None)
    if callable(reduce):
        return reduce
    if callable(fn):
        return fn
    raise TypeError(f"reduce() takes a ReduceFunction or a callable (a, b) -> c, not {fn!r}")


def _check_aggregate(fn: Any) -> Any:
    for method in ("create_accumulator", "add", "get_result"):
        if not callable(getattr(fn, method, None)):
            raise TypeError(
                f"aggregate() takes an AggregateFunction (create_accumulator, add, get_result, merge); "
                f"{fn!r} has no {method}()"
            )
    return fn


def _lifecycle(fn: Any) -> dict:
    opener = getattr(fn, "open", None)
    closer = getattr(fn, "close", None)
    return {
        "open": opener if callable(opener) else None,
        "close": closer if callable(closer) else None,
    }


class _AllContext:
    """ProcessAllWindowFunction's context: the keyed context without a key."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def window(self) -> Any:
        return self._ctx.window()

    def current_watermark(self) -> int:
        return self._ctx.current_watermark()

    def current_processing_time(self) -> int:
        return self._ctx.current_processing_time()

    def window_state(self) -> Any:
        return self._ctx.window_state()

    def global_state(self) -> Any:
        return self._ctx.global_state()


def _window_function(fn: Any, style: str, keyed: bool, single: bool) -> InternalWindowFunction:
    """Adapt a user window function to ``process(key, window, ctx, contents)``.

    ``style`` is "process" (ProcessWindowFunction: ``process(key, context, elements)``) or "apply"
    (WindowFunction: ``apply(key, window, inputs)``); the All variants drop the key. ``single``:
    contents is one reduced/aggregated value, given to the user as a one-element list.
    """
    if fn is None:
        raise TypeError("a window function is required")
    if style == "process":
        call = getattr(fn, "process", None)
        if not callable(call):
            if not callable(fn):
                raise TypeError(f"process() takes a ProcessWindowFunction or a callable, not {fn!r}")
            call = fn
        clear_fn = getattr(fn, "clear", None)
        if _is_default_clear(fn):
            clear_fn = None  # the base class's no-op: skip calling it for every window
        if keyed:

            def process(key, window, ctx, contents):
                return call(key, ctx, [contents] if single else contents)

            clear = (lambda window, ctx: clear_fn(ctx)) if callable(clear_fn) else None
        else:

            def process(key, window, ctx, contents):
                return call(_AllContext(ctx), [contents] if single else contents)

            clear = (lambda window, ctx: clear_fn(_AllContext(ctx))) if callable(clear_fn) else None
        return InternalWindowFunction(process, clear=clear, **_lifecycle(fn))

    call = getattr(fn, "apply", None)
    if not callable(call):
        if not callable(fn):
            raise TypeError(f"apply() takes a WindowFunction or a callable, not {fn!r}")
        call = fn
    if keyed:

        def process(key, window, ctx, contents):
            return call(key, window, [contents] if single else contents)

    else:

        def process(key, window, ctx, contents):
            return call(window, [contents] if single else contents)

    return InternalWindowFunction(process, **_lifecycle(fn))


def _is_default_clear(fn: Any) -> bool:
    from flinkcore.datastream import functions

    cls_clear = getattr(type(fn), "clear", None)
    return any(
        cls_clear is getattr(getattr(functions, base, None), "clear", object())
        for base in ("ProcessWindowFunction", "ProcessAllWindowFunction")
    )


def _style_of(fn: Any) -> str:
    """A window function passed to reduce/aggregate: ProcessWindowFunction or WindowFunction."""
    if callable(getattr(fn, "process", None)):
        return "process"
    return "apply"


def _passthrough(user_fn: Any) -> InternalWindowFunction:
    """No window function: the reduced/aggregated value itself is the output."""
    return InternalWindowFunction(
        lambda key, window, ctx, value: (value,), passthrough=True, **_lifecycle(user_fn)
    )


# --------------------------------------------------------------------------------------------
# Built-in aggregations
# --------------------------------------------------------------------------------------------


def _field_getter(field: Any) -> Callable[[Any], Any]:
    def get(record: Any) -> Any:
        if isinstance(record, dict):
            return record[field]
        return record[field]

    return get


def _replace_field(record: Any, field: Any, value: Any) -> Any:
    """``record`` with ``field`` set to ``value`` (a new tuple/Row/list/dict; others by setattr)."""
    if isinstance(record, dict):
        out = dict(record)
        out[field] = value
        return out
    if isinstance(record, tuple):
        if isinstance(field, str):
            names = getattr(record, "_fields", None)
            if not names or field not in names:
                raise KeyError(f"record {record!r} has no field {field!r}")
            index = names.index(field)
        else:
            index = field
        items = list(record)
        items[index] = value
        if hasattr(record, "_fields") and type(record).__name__ == "Row":
            from flinkcore.common.types import Row

            fields = record._fields
            return Row._named(fields, items) if fields else Row(*items)
        if hasattr(type(record), "_make"):  # namedtuple
            return type(record)._make(items)
        return tuple(items)
    if isinstance(record, list):
        out = list(record)
        out[field] = value
        return out
    if isinstance(field, int) and not isinstance(record, (list, tuple)):
        if field == 0:
            return value  # a scalar stream: position 0 is the value itself (as Flink)
    raise TypeError(f"cannot aggregate field {field!r} of a {type(record).__name__} record")


def _field_reducer(field: Any, how: str) -> Callable[[Any, Any], Any]:
    """Flink's sum/min/max on a window: the first record with ``field`` aggregated."""

    def get(record: Any) -> Any:
        if isinstance(field, int) and not isinstance(record, (tuple, list, dict)):
            return record
        return record[field]

    if how == "sum":

        def reduce(a: Any, b: Any) -> Any:
            return _replace_field(a, field, get(a) + get(b))

    elif how == "min":

        def reduce(a: Any, b: Any) -> Any:
            vb = get(b)
            return _replace_field(a, field, vb) if vb < get(a) else a

    else:

        def reduce(a: Any, b: Any) -> Any:
            vb = get(b)
            return _replace_field(a, field, vb) if vb > get(a) else a

    return reduce


#: The functions of ``agg(**named)``.
AGG_FUNCTIONS = ("sum", "count", "min", "max", "mean", "first", "last")


class NamedAggregate:
    """The AggregateFunction behind ``agg(total=("value", "sum"), ...)`` on the per-record path.

    The accumulator is a list with one slot per output (mean keeps [sum, count]). The result is a
    tuple of the aggregated values in the order given; the window function adds key and window.
    """

    def __init__(self, named: dict[str, tuple[Any, str]]) -> None:
        if not named:
            raise ValueError('agg() needs at least one named aggregation, e.g. total=("value", "sum")')
        self.names: list[str] = []
        self.fields: list[Any] = []
        self.funcs: list[str] = []
        for name, spec in named.items():
            if not (isinstance(spec, tuple) and len(spec) == 2):
                raise TypeError(
                    f'agg({name}=...) takes a (field, function) pair such as ("value", "sum"), not {spec!r}'
                )
            field, func = spec
            if func not in AGG_FUNCTIONS:
                raise ValueError(f"agg({name}=...): unknown function {func!r}; one of {AGG_FUNCTIONS}")
            self.names.append(name)
            self.fields.append(field)
            self.funcs.append(func)
        self._n = len(self.names)

    def create_accumulator(self) -> list:
        return [None] * self._n + [0]  # the last slot counts elements

    def add(self, value: Any, acc: list) -> list:
        for i in range(self._n):
            func = self.funcs[i]
            if func == "count":
                continue
            x = value[self.fields[i]]
            cur = acc[i]
            if cur is None:
                acc[i] = x
            elif func == "sum" or func == "mean":
                acc[i] = cur + x
            elif func == "min":
                if x < cur:
                    acc[i] = x
            elif func == "max":
                if x > cur:
                    acc[i] = x
            elif func == "last":
                acc[i] = x
        acc[-1] += 1
        return acc

    def merge(self, a: list, b: list) -> list:
        out = list(a)
        for i in range(self._n):
            func, x, y = self.funcs[i], a[i], b[i]
            if x is None:
                out[i] = y
            elif y is None:
                out[i] = x
            elif func in ("sum", "mean"):
                out[i] = x + y
            elif func == "min":
                out[i] = min(x, y)
            elif func == "max":
                out[i] = max(x, y)
            elif func == "last":
                out[i] = y
        out[-1] = a[-1] + b[-1]
        return out

    def get_result(self, acc: list) -> tuple:
        n = acc[-1]
        out = []
        for i in range(self._n):
            func = self.funcs[i]
            if func == "count":
                out.append(n)
            elif func == "mean":
                out.append(acc[i] / n if n else math.nan)
            else:
                out.append(acc[i])
        return tuple(out)


def _agg_row_function(names: list[str], keyed: bool) -> InternalWindowFunction:
    from flinkcore.common.types import Row

    if keyed:
        fields = ["key", "window_start", "window_end", *names]

        def process(key, window, ctx, values):
            return (Row._named(fields, (key, window.start, window.end, *values)),)

    else:
        fields = ["window_start", "window_end", *names]

        def process(key, window, ctx, values):
            return (Row._named(fields, (window.start, window.end, *values)),)

    return InternalWindowFunction(process)


def _is_named(type_info: Any) -> bool:
    return hasattr(type_info, "field_names")


def _field_names(type_info: Any) -> list | None:
    """Field names of a ROW / ROW_NAMED type, positions of a TUPLE type; None if untyped."""
    types = getattr(type_info, "field_types", None)
    if types is None:
        return None
    names = getattr(type_info, "field_names", None)
    return list(names) if names is not None else list(range(len(types)))


def _field_dtypes(type_info: Any) -> list:
    return [getattr(t, "dtype", None) for t in type_info.field_types]


def _dtype_of(names: list, dtypes: list, field: Any, named: bool) -> str | None:
    if field is None or isinstance(field, bool):
        return None
    if isinstance(field, int):
        return dtypes[field] if 0 <= field < len(dtypes) else None
    if named and field in names:
        return dtypes[names.index(field)]
    return None


def _jit_key_dtype(jf: Any, names: list, dtypes: list) -> str | None:
    """ "int64" when numba compiles the jit key selector to an integer over these fields; None
    (the per-record path) without numba or for other keys."""
    if not jf.compiled():
        return None
    arg_dtypes = []
    for p in jf.params:
        dt = dtypes[names.index(p)] if p in names else None
        if dt is None or not dt.startswith(("int", "float", "bool")):
            return None
        arg_dtypes.append(dt)
    import numba

    rt = jf.result_type(arg_dtypes, "KeyBy")
    return "int64" if isinstance(rt, numba.types.Integer) else None


def _columnar_row_maker(fields: tuple) -> Callable[[Any, int, int, tuple], Any]:
    from flinkcore.common.types import row_class

    cls = row_class(tuple(fields))
    new = tuple.__new__

    def make(key: Any, start: int, end: int, values: Any) -> Any:
        return new(cls, (key, start, end, *values))

    make.row_class = cls  # type: ignore[attr-defined]
    make.with_window = True  # type: ignore[attr-defined]
    return make


def _columnar_record_maker(names: list | None) -> Callable[[Any, int, int, tuple], Any]:
    """The output of columnar sum/min/max: the record itself (a Row for named types, else a tuple)."""
    if names is None:

        def make_tuple(key: Any, start: int, end: int, values: Any) -> Any:
            return tuple(values)

        make_tuple.row_class = tuple  # type: ignore[attr-defined]  # built in C
        make_tuple.with_window = False  # type: ignore[attr-defined]
        return make_tuple
    from flinkcore.common.types import row_class

    cls = row_class(tuple(names))
    new = tuple.__new__

    def make(key: Any, start: int, end: int, values: Any) -> Any:
        return new(cls, tuple(values))

    make.row_class = cls  # type: ignore[attr-defined]
    make.with_window = False  # type: ignore[attr-defined]
    return make


# --------------------------------------------------------------------------------------------
# The streams
# --------------------------------------------------------------------------------------------


class _WindowedBase:
    _keyed: bool = True

    def __init__(self, input_stream: Any, window_assigner: WindowAssigner) -> None:
        if not callable(getattr(window_assigner, "assign_windows", None)):
            raise TypeError(f"window() takes a WindowAssigner, not {window_assigner!r}")
        self._input = input_stream
        self._assigner = window_assigner
        self._trigger: Any = None
        self._evictor: Any = None
        self._allowed_lateness = 0
        self._late_tag: Any = None

    # -- configuration ---------------------------------------------------------------------------
    def get_execution_environment(self) -> Any:
        return self._input.get_execution_environment()

    def get_input_type(self) -> Any:
        return self._input.get_type()

    def trigger(self, trigger: Any):
        """Set the trigger that decides when a window is evaluated (and purged)."""
        merging = callable(getattr(self._assigner, "merge_windows", None))
        if merging and not trigger.can_merge():
            raise ValueError(
                "A merging window assigner cannot be used with a trigger that does not support "
                f"merging: {trigger!r}"
            )
        self._trigger = trigger
        return self

    def evictor(self, evictor: Any):
        """Set an evictor: the window then keeps all its elements (no incremental aggregation)."""
        if callable(getattr(self._assigner, "merge_windows", None)):
            raise NotImplementedError("Cannot use an evictor with a merging window assigner (as in Flink)")
        self._evictor = evictor
        return self

    def allowed_lateness(self, time_ms: Any):
        """Keep windows ``time_ms`` after their end so late elements re-fire them (event time)."""
        lateness = to_millis(time_ms, "allowed lateness")
        if lateness < 0:
            raise ValueError(f"The allowed lateness cannot be negative, got {lateness}")
        self._allowed_lateness = lateness
        return self

    def side_output_late_data(self, output_tag: Any):
        """Send elements that arrive after their windows' allowed lateness to ``output_tag``."""
        if not hasattr(output_tag, "tag_id"):
            raise TypeError(f"side_output_late_data() takes an OutputTag, not {output_tag!r}")
        self._late_tag = output_tag
        return self

    # -- window functions ------------------------------------------------------------------------
    def reduce(self, reduce_function: Any, window_function: Any = None, output_type: Any = None):
        """Incremental reduce: only the reduced value is kept per window."""
        _reduce_fn(reduce_function)
        keyed = self._keyed

        def make(reduce_function: Any, window_function: Any) -> tuple:
            spec = WindowStateSpec("reducing", reduce=_reduce_fn(reduce_function))
            if window_function is None:
                return spec, _passthrough(reduce_function)
            return spec, _window_function(window_function, _style_of(window_function), keyed, single=True)

        return self._build("Window(Reduce)", make, (reduce_function, window_function), output_type)

    def aggregate(
        self,
        aggregate_function: Any,
        window_function: Any = None,
        accumulator_type: Any = None,
        output_type: Any = None,
    ):
        """Incremental aggregate: only the accumulator is kept per window.

        (+) An AggregateFunction marked ``@flinkcore.jit`` on a typed stream (tumbling or sliding
        event-time windows, or event-time sessions when it has ``merge``; default trigger, no
        window function, no allowed lateness) runs ``add`` (and ``merge``) compiled over column
        batches when numba is installed; otherwise it runs per record, the same."""
        _check_aggregate(aggregate_function)
        keyed = self._keyed
        from flinkcore.jit import JitAggregate, as_jit

        jagg = as_jit(aggregate_function)
        if isinstance(jagg, JitAggregate) and window_function is None and jagg.compiled():
            fields = _field_names(self.get_input_type())  # names, or positions of a TUPLE
            # sessions merge accumulators: compiled only when the function has merge()
            sessions = jagg.has_merge()
            plan = self._columnar_plan(fields, any_session=sessions) if fields else None
            if plan is not None:
                return self._build_jit_aggregate(plan[0], jagg, fields, plan[1])

        def make(agg: Any, window_function: Any) -> tuple:
            spec = WindowStateSpec("aggregating", aggregate=agg)
            if window_function is None:
                return spec, _passthrough(agg)
            return spec, _window_function(window_function, _style_of(window_function), keyed, single=True)

        return self._build("Window(Aggregate)", make, (aggregate_function, window_function), output_type)

    def apply(self, window_function: Any, output_type: Any = None):
        """A WindowFunction over all elements of the window (``apply(key, window, inputs)``)."""
        keyed = self._keyed
        _window_function(window_function, "apply", keyed, single=False)

        def make(window_function: Any) -> tuple:
            return WindowStateSpec("list"), _window_function(window_function, "apply", keyed, single=False)

        return self._build("Window(Apply)", make, (window_function,), output_type)

    def process(self, process_window_function: Any, output_type: Any = None):
        """A ProcessWindowFunction over all elements (``process(key, context, elements)``)."""
        keyed = self._keyed
        _window_function(process_window_function, "process", keyed, single=False)

        def make(window_function: Any) -> tuple:
            return WindowStateSpec("list"), _window_function(window_function, "process", keyed, single=False)

        return self._build("Window(Process)", make, (process_window_function,), output_type)

    def sum(self, position_to_sum: int | str):
        """Per window: the first element with field ``position_to_sum`` summed over the window."""
        return self._field_aggregate(position_to_sum, "sum")

    def min(self, position_to_min: int | str):
        """Per window: the first element with field ``position_to_min`` the window's minimum."""
        return self._field_aggregate(position_to_min, "min")

    def max(self, position_to_max: int | str):
        """Per window: the first element with field ``position_to_max`` the window's maximum."""
        return self._field_aggregate(position_to_max, "max")

    def agg(self, **named: tuple[Any, str]):
        """**+** Named aggregations (pandas style), one Row per key and window.

        ``agg(total=("value", "sum"), n=("value", "count"))`` emits
        ``Row(key=..., window_start=..., window_end=..., total=..., n=...)`` (no ``key`` on an
        AllWindowedStream). Functions: sum, count, min, max, mean, first, last.
        """
        agg = NamedAggregate(named)
        keyed = self._keyed
        plan = self._columnar_plan(agg.fields, agg.funcs)
        if plan is not None:
            key_field, dtypes = plan
            fields = ("key", "window_start", "window_end", *agg.names)
            aggs = [(n, f, c) for n, f, c in zip(agg.names, agg.funcs, agg.fields, strict=True)]
            return self._build_columnar("Window(Agg)", key_field, aggs, dtypes, _columnar_row_maker(fields))

        def make(agg: NamedAggregate) -> tuple:
            return WindowStateSpec("aggregating", aggregate=agg), _agg_row_function(agg.names, keyed)

        return self._build("Window(Agg)", make, (agg,), None)

    def _field_aggregate(self, field: int | str, how: str):
        """Flink's window sum/min/max: columnar when the stream is typed, else a reduce."""
        input_type = self.get_input_type()
        names = _field_names(input_type)
        if names is not None:
            index = field if isinstance(field, int) else (names.index(field) if field in names else None)
            plan = self._columnar_plan(list(names)) if index is not None and 0 <= index < len(names) else None
            if plan is not None:
                key_field, dtypes = plan
                out_names = [f"__{i}" for i in range(len(names))]
                aggs = [
                    (out_names[i], how if i == index else "first", names[i] if _is_named(input_type) else i)
                    for i in range(len(names))
                ]
                maker = _columnar_record_maker(names if _is_named(input_type) else None)
                return self._build_columnar(
                    f"Window({how.capitalize()})", key_field, aggs, dtypes, maker, input_type
                )
        return self.reduce(_field_reducer(field, how), output_type=input_type)

    def _columnar_plan(
        self, fields: list, funcs: list | None = None, any_session: bool = False
    ) -> tuple[Any, dict] | None:
        """(key field, {column: dtype}) when this window can run on the columnar path, else None.

        It can when the stream is typed (a ROW_NAMED / TUPLE of numeric fields, as from_arrow
        gives), the key is a field of integer type, the window is a tumbling or sliding event-time
        window with the default trigger, no evictor and no allowed lateness; or an event-time
        session window when ``funcs`` are all session functions (or ``any_session``: a jit
        AggregateFunction with ``merge``).
        """
        from flinkcore.runtime.operators.window_columnar import field_of_key_selector

        if not self._keyed or self._evictor is not None or self._allowed_lateness:
            return None
        if self._trigger is not None and type(self._trigger) is not EventTimeTrigger:
            return None
        if type(self._assigner) is EventTimeSessionWindows:
            from flinkcore.runtime.operators.window_columnar import SESSION_FUNCTIONS

            if not any_session and (funcs is None or any(f not in SESSION_FUNCTIONS for f in funcs)):
                return None
        elif type(self._assigner) not in (TumblingEventTimeWindows, SlidingEventTimeWindows):
            return None
        input_type = self.get_input_type()
        names = _field_names(input_type)
        if names is None:
            return None
        key_selector = self._input.get_key_selector()
        key_field = field_of_key_selector(key_selector)
        dtypes = _field_dtypes(input_type)
        if key_field is None and callable(getattr(key_selector, "columns_of", None)):
            # (+) a flinkcore.jit key selector: compiled over the columns when it gives integers
            key_field = key_selector
            key_dtype = _jit_key_dtype(key_selector, names, dtypes) if _is_named(input_type) else None
        else:
            key_dtype = _dtype_of(names, dtypes, key_field, _is_named(input_type))
        if key_dtype is None or not key_dtype.startswith("int"):
            return None
        columns = {}
        for f in fields:
            dt = _dtype_of(names, dtypes, f, _is_named(input_type))
            if dt is None or not (dt.startswith("int") or dt.startswith("float")):
                return None
            columns[f] = dt
        return key_field, columns

    def _build_columnar(
        self, name: str, key_field: Any, aggs: list, dtypes: dict, make_output: Any, output_type: Any = None
    ):
        """The columnar window operator.

        Tumbling/sliding windows let the operator pick its table when it opens (the native table
        for floating-point columns, :class:`ArrowWindowAggTable` otherwise: see
        ``ColumnarWindowOperator._default_table_factory``). Sessions run on the native
        ``SessionWindowTable`` when the native core is built and every aggregated column is
        floating point (it computes in float64; integer sums, minima and maxima stay exact on the
        numpy session operator)."""
        from flinkcore.runtime.operators.window_columnar import (
            ColumnarSessionOperator,
            ColumnarWindowOperator,
            NativeWindowTable,
            native_available,
        )

        assigner = self._assigner
        late_tag = self._late_tag.tag_id if self._late_tag is not None else None
        session = type(assigner) is EventTimeSessionWindows
        native = (
            session
            and native_available()
            and all(func == "count" or str(dtypes.get(col, "")).startswith("float") for _, func, col in aggs)
        )
        if session:
            size = slide = gap = assigner.session_gap
            offset = 0
        else:
            size = assigner.size
            slide = getattr(assigner, "slide", size)
            offset = assigner.offset
            gap = None

        def table(size: int, slide: int, offset: int, table_aggs: list) -> Any:
            return NativeWindowTable(size, slide, offset, table_aggs, gap=gap)

        def factory():
            if session and not native:
                return ColumnarSessionOperator(
                    gap, key_field, aggs, make_output, late_data_tag=late_tag, column_dtypes=dtypes
                )
            return ColumnarWindowOperator(
                size,
                slide,
                offset,
                key_field,
                aggs,
                make_output,
                late_data_tag=late_tag,
                table_factory=table if native else None,
                column_dtypes=dtypes,
            )

        return self._input._window_transform(name, factory, output_type)

    def _build_jit_aggregate(self, key_field: Any, jagg: Any, fields: list, dtypes: dict):
        from flinkcore.runtime.operators.window_columnar import (
            ColumnarJitAggregateOperator,
            ColumnarJitSessionOperator,
        )

        assigner = self._assigner
        late_tag = self._late_tag.tag_id if self._late_tag is not None else None
        calls = [0]
        if type(assigner) is EventTimeSessionWindows:
            gap = assigner.session_gap

            def session_factory():
                calls[0] += 1
                agg = jagg if calls[0] == 1 else copy.deepcopy(jagg)
                return ColumnarJitSessionOperator(
                    gap, key_field, agg, fields, late_data_tag=late_tag, column_dtypes=dtypes
                )

            return self._input._window_transform("Window(Aggregate)", session_factory, None)
        size = assigner.size
        slide = getattr(assigner, "slide", size)
        offset = assigner.offset

        def factory():
            calls[0] += 1
            agg = jagg if calls[0] == 1 else copy.deepcopy(jagg)
            return ColumnarJitAggregateOperator(
                size, slide, offset, key_field, agg, fields, late_data_tag=late_tag, column_dtypes=dtypes
            )

        return self._input._window_transform("Window(Aggregate)", factory, None)

    # -- building --------------------------------------------------------------------------------
    def _operator_factory(self, make: Callable[..., tuple], objs: tuple) -> Callable[[], Any]:
        assigner = self._assigner
        trigger = self._trigger if self._trigger is not None else assigner.get_default_trigger(None)
        evictor = self._evictor
        lateness = self._allowed_lateness
        late_tag = self._late_tag.tag_id if self._late_tag is not None else None
        default = type(trigger) is EventTimeTrigger and evictor is None
        calls = [0]

        def functions() -> tuple:
            # The first instance uses the user's objects; further parallel instances get copies,
            # as each Flink subtask gets its own deserialized function.
            calls[0] += 1
            own = objs
            if calls[0] > 1:
                try:
                    own = copy.deepcopy(objs)
                except Exception:  # noqa: BLE001 - an uncopyable function is shared, as PyFlink's threads do
                    own = objs
            return make(*own)

        if default and type(assigner) is EventTimeSessionWindows and lateness == 0:
            gap = assigner.session_gap

            def factory():
                spec, fn = functions()
                return SessionWindowOperator(gap, spec, fn, TimeWindow, late_data_tag=late_tag)

        elif default and type(assigner) in (TumblingEventTimeWindows, SlidingEventTimeWindows):
            slide = getattr(assigner, "slide", assigner.size)
            size, offset = assigner.size, assigner.offset

            def factory():
                spec, fn = functions()
                return AlignedWindowOperator(
                    size,
                    slide,
                    offset,
                    spec,
                    fn,
                    TimeWindow,
                    allowed_lateness=lateness,
                    late_data_tag=late_tag,
                )

        else:

            def factory():
                spec, fn = functions()
                return WindowOperator(
                    assigner,
                    trigger,
                    spec,
                    fn,
                    allowed_lateness=lateness,
                    late_data_tag=late_tag,
                    evictor=evictor,
                )

        return factory

    def _build(self, name: str, make: Callable[..., tuple], objs: tuple, output_type: Any):
        factory = self._operator_factory(make, objs)
        return self._input._window_transform(name, factory, output_type)


class WindowedStream(_WindowedBase):
    """A KeyedStream cut into windows (``KeyedStream.window(assigner)``)."""

    _keyed = True


def _null_key(value: Any) -> int:
    return 0


class AllWindowedStream(_WindowedBase):
    """The whole stream cut into windows (``DataStream.window_all(assigner)``); parallelism 1."""

    _keyed = False

    def __init__(self, data_stream: Any, window_assigner: WindowAssigner) -> None:
        super().__init__(data_stream, window_assigner)

    def _build(
        self,
        name: str,
        spec: WindowStateSpec,
        fn: InternalWindowFunction,
        output_type: Any,
        named: Any = None,
    ):
        factory = self._operator_factory(spec, fn)
        keyed = self._input.key_by(_null_key)
        result = keyed._window_transform(name.replace("Window", "AllWindow", 1), factory, output_type)
        result.set_parallelism(1)
        return result
