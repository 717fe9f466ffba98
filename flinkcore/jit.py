"""(+) ``flinkcore.jit``: numeric user functions compiled over whole columns (numba, optional).

A function marked ``@flinkcore.jit`` (or given as a numba dispatcher, ``numba.njit(f)``) names
the fields it reads by its parameters::

    @flinkcore.jit
    def even(key):
        return key % 2 == 0

    @flinkcore.jit
    def scaled(key, value):
        return key, value * 2.0  # a jit map returns a number or a tuple of numbers

    env.from_arrow(table).filter(even).map(scaled)

Where it may stand, and what it may return:

- ``filter``: a bool; ``key_by``: an integer (or any number; integers let windows stay native);
  ``with_timestamp_assigner``: integer milliseconds; ``map``: a number or a tuple of numbers,
  and the output records are exactly that (as the plain function's would be), typed
  ``Types.TUPLE`` of the fields' types (or the number's type) — or Rows with the names of a
  ``Types.ROW_NAMED`` ``output_type``. Over columns they travel as typed columns ``f0, f1, ...``
  (or the given names) and become those tuples, numbers or Rows where per-record code reads
  them. A function of tuple records reads their fields by position (its first parameter is
  field 0), one of named records by name.
- ``WindowedStream.aggregate``: an AggregateFunction class marked ``@flinkcore.jit`` whose
  ``create_accumulator`` returns a number or a tuple of numbers and whose ``add(value,
  accumulator)`` reads the record's fields as attributes or indexes (``value.value``,
  ``value[1]``) and returns the new accumulator. ``get_result`` and ``merge`` are called as Flink
  calls them (once per firing, and when sessions merge) and may return anything; a
  ``get_result`` from numbers to numbers is compiled too. ``add`` runs compiled over columns on
  tumbling and sliding event-time windows with the default trigger, no allowed lateness and no
  window function; other windows (sessions: they merge) call the same methods per record.

A function numba cannot compile, or a map that returns something other than numbers, raises
:class:`JitCompileError` naming the operator when the job is built (or, for an aggregate, on its
first batch); without ``@flinkcore.jit`` the function runs per record.

On a typed stream (``from_arrow``, ``Types.ROW_NAMED`` / ``TUPLE`` of numeric types) each such
function is compiled once per set of column types and runs over whole column batches: no Python
call per record. numba is the optional extra ``flinkcore[jit]``, imported only when a function is
first compiled; without it (or on an untyped stream) the same function runs per record with the
record's fields as arguments, with the same results. Compiled code computes in fixed-width
numbers (int64 / float64): an int64 overflow wraps where Python's ints would grow.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from flinkcore.common.pickling import CompactAttributes

__all__ = ["JitAggregate", "JitCompileError", "JitFunction", "as_jit", "jit", "numba_available"]


def numba_available() -> bool:
    """True when numba can be imported (the ``flinkcore[jit]`` extra is installed)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


class JitCompileError(TypeError):
    """numba cannot compile a ``flinkcore.jit`` function for the columns it is given."""


_tuple_item = tuple.__getitem__  # a Row's field by position without Row.__getitem__


def _is_numba_dispatcher(obj: Any) -> bool:
    return type(obj).__module__.startswith("numba") and callable(getattr(obj, "py_func", None))


def _numba_type(dtype: Any) -> Any:
    import numba
    import numpy as np

    return numba.from_dtype(np.dtype(dtype))


def _numpy_dtype(numba_type: Any) -> Any:
    from numba.np.numpy_support import as_dtype

    return as_dtype(numba_type)


class JitFunction(CompactAttributes):
    """A numeric function of named fields, callable per record and compilable over columns."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        if _is_numba_dispatcher(fn):
            fn = fn.py_func
        if not callable(fn):
            raise TypeError(f"flinkcore.jit takes a function, got {fn!r}")
        params = inspect.signature(fn).parameters.values()
        if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            raise TypeError(
                f"a flinkcore.jit function takes one plain parameter per field it reads; {fn.__name__} has "
                f"{inspect.signature(fn)}"
            )
        self.fn = fn
        self.params: tuple[str, ...] = tuple(p.name for p in params)
        if not self.params:
            raise TypeError(f"a flinkcore.jit function reads at least one field; {fn.__name__} takes none")
        self.__name__ = getattr(fn, "__name__", "jit_function")
        self.__doc__ = fn.__doc__
        self._ufunc: Any = None
        self._njit: Any = None
        self._index: dict[tuple, tuple] = {}  # Row field names -> positions of the parameters
        self._tuple_kernels: dict[tuple, Any] = {}

    def __getstate__(self) -> dict:
        """Pickled (to worker processes) without its compiled code: each process compiles once."""
        state = dict(self.__dict__)
        state.update(_ufunc=None, _njit=None, _tuple_kernels={}, _index={})
        return state

    # -- per record ------------------------------------------------------------------------------
    def __call__(self, record: Any) -> Any:
        """The function on one record: its fields named by the parameters (positional for tuples,
        the record itself for a one-parameter function of a scalar record)."""
        fields = getattr(record, "_fields", None)
        if fields:
            idx = self._index.get(fields)
            if idx is None:
                idx = self._index[fields] = tuple(fields.index(p) if p in fields else p for p in self.params)
            if all(type(i) is int for i in idx):
                return self.fn(*[_tuple_item(record, i) for i in idx])
            return self.fn(*[record[name] for name in self.params])
        if not isinstance(record, (tuple, list)):
            return self.fn(record)
        return self.fn(*record[: len(self.params)])

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        """As a TimestampAssigner: the function's result is the record's timestamp (ms)."""
        return int(self(value))

    def fields_of(self, record: Any) -> list:
        if getattr(record, "_fields", None):
            return [record[name] for name in self.params]
        return list(record[: len(self.params)])

    # -- over columns ----------------------------------------------------------------------------
    def columns_of(self, batch: Any, operator: str) -> list:
        """The batch's columns this function reads, as numpy arrays (KeyError naming the operator
        for a field the stream does not have)."""
        from flinkcore.runtime.operators.arrow import record_kind

        try:
            if record_kind(batch) is not None:  # tuples / scalars: fields by position, as per record
                return [batch.column(i).to_numpy(zero_copy_only=False) for i in range(len(self.params))]
            return [batch.column(name).to_numpy(zero_copy_only=False) for name in self.params]
        except (KeyError, IndexError) as e:
            raise KeyError(
                f"operator '{operator}': {self!r} reads a field the stream does not have: {e}"
            ) from e

    def columns_kernel(self) -> Callable[..., Any] | None:
        """A ufunc over whole columns (compiled by numba on first use per dtype), or None
        without numba."""
        if self._ufunc is None:
            if not numba_available():
                return None
            import numba

            self._ufunc = numba.vectorize(cache=False)(self.fn)
        return self._ufunc

    def compiled(self) -> bool:
        """True when this function runs compiled over columns (numba is installed)."""
        return numba_available()

    def njit(self) -> Any:
        """The function as a numba dispatcher (None without numba)."""
        if self._njit is None:
            if not numba_available():
                return None
            import numba

            self._njit = numba.njit(cache=False)(self.fn)
        return self._njit

    def result_type(self, dtypes: list, operator: str = "") -> Any:
        """The numba type of the result for arguments of these numpy dtypes (None without numba).

        Raises JitCompileError naming ``operator`` when numba cannot compile the function."""
        disp = self.njit()
        if disp is None:
            return None
        sig = tuple(_numba_type(d) for d in dtypes)
        try:
            disp.compile(sig)
        except Exception as e:  # numba's TypingError and friends
            where = f"operator '{operator}': " if operator else ""
            raise JitCompileError(
                f"{where}numba cannot compile {self!r} for columns of {[str(d) for d in dtypes]}: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. Without @flinkcore.jit the "
                "function runs per record."
            ) from e
        return disp.overloads[sig].signature.return_type

    def output_dtypes(self, dtypes: list, operator: str = "") -> tuple[list, bool] | None:
        """(numpy dtypes of a map's output fields, whether it returns a tuple); None without numba."""
        import numba

        rt = self.result_type(dtypes, operator)
        if rt is None:
            return None
        is_tuple = isinstance(rt, numba.types.BaseTuple)
        try:
            return [_numpy_dtype(t) for t in (list(rt) if is_tuple else [rt])], is_tuple
        except Exception as e:
            raise JitCompileError(
                f"operator '{operator}': {self!r} returns {rt}; a jit map returns a number or a tuple of "
                "numbers (one per output field)"
            ) from e

    def apply(self, cols: list, operator: str) -> Any:
        """The function over whole columns: one array (scalar results) — compiled with numba,
        else per record over the column values with the same results."""
        kernel = self.columns_kernel()
        if kernel is not None:
            return kernel(*cols)
        import numpy as np

        return np.array(list(map(self.fn, *[c.tolist() for c in cols])))

    def apply_tuple(self, cols: list, operator: str) -> tuple[list, bool]:
        """A map over whole columns with numba: (one array per output field, whether the function
        returns a tuple)."""
        key = tuple(str(c.dtype) for c in cols)
        kernel = self._tuple_kernels.get(key)
        if kernel is None:
            out = self.output_dtypes([c.dtype for c in cols], operator)
            if out is None:
                raise RuntimeError(f"operator '{operator}': numba is not installed")
            kernel = self._tuple_kernels[key] = (_tuple_loop(self.njit(), len(cols), *out), out[1])
        return list(kernel[0](*cols)), kernel[1]

    def __repr__(self) -> str:
        return f"flinkcore.jit({self.__name__}{self.params})"


def _tuple_loop(fn: Any, n_in: int, out_dtypes: list, is_tuple: bool) -> Any:
    """A numba loop calling ``fn`` per row of ``n_in`` columns and writing each field of its
    result into its own output array."""
    import numba
    import numpy as np

    args = ", ".join(f"a{i}" for i in range(n_in))
    lines = [f"def loop({args}):", "    n = len(a0)"]
    for j in range(len(out_dtypes)):
        lines.append(f"    o{j} = np.empty(n, d{j})")
    lines.append("    for i in range(n):")
    lines.append(f"        r = fn({', '.join(f'a{i}[i]' for i in range(n_in))})")
    for j in range(len(out_dtypes)):
        lines.append(f"        o{j}[i] = r[{j}]" if is_tuple else f"        o{j}[i] = r")
    lines.append(f"    return ({', '.join(f'o{j}' for j in range(len(out_dtypes)))},)")
    scope: dict[str, Any] = {"np": np, "fn": fn}
    scope.update({f"d{j}": np.dtype(dt).type for j, dt in enumerate(out_dtypes)})
    exec("\n".join(lines), scope)  # noqa: S102 - generated from counts only, no user text
    return numba.njit(cache=False)(scope["loop"])


class JitAggregate(CompactAttributes):
    """An AggregateFunction whose ``add`` runs compiled over column batches (see the module doc).

    Per record it is the user's AggregateFunction itself (``create_accumulator``, ``add``,
    ``get_result``, ``merge``); over columns, ``add_columns`` folds whole batches into
    accumulator arrays indexed by a slot per (key, window), in arrival order."""

    def __init__(self, agg: Any) -> None:
        cls = agg if isinstance(agg, type) else type(agg)
        for name in ("create_accumulator", "add", "get_result"):
            if not callable(getattr(cls, name, None)):
                raise TypeError(
                    f"flinkcore.jit on an AggregateFunction needs {name}(); {cls.__name__} has none"
                )
        self.agg = agg() if isinstance(agg, type) else agg
        self.__name__ = cls.__name__
        self._add = cls.add
        self._get_result = cls.get_result

    # the per-record AggregateFunction contract: the user's own methods
    def create_accumulator(self) -> Any:
        return self.agg.create_accumulator()

    def add(self, value: Any, accumulator: Any) -> Any:
        return self.agg.add(value, accumulator)

    def get_result(self, accumulator: Any) -> Any:
        return self.agg.get_result(accumulator)

    def merge(self, a: Any, b: Any) -> Any:
        return self.agg.merge(a, b)

    def open(self, runtime_context: Any) -> None:
        opener = getattr(self.agg, "open", None)
        if callable(opener):
            opener(runtime_context)

    def close(self) -> None:
        closer = getattr(self.agg, "close", None)
        if callable(closer):
            closer()

    def compiled(self) -> bool:
        """True when ``add`` runs compiled over columns (numba is installed)."""
        return numba_available()

    def accumulator_width(self) -> tuple[int, bool]:
        """(number of accumulator fields, whether the accumulator is a tuple)."""
        acc = self.create_accumulator()
        if isinstance(acc, tuple):
            return len(acc), True
        return 1, False

    def add_kernel(self, names: tuple, dtypes: list, operator: str) -> Any:
        """The compiled ``add`` loop for records of these fields (None without numba)."""
        key = (self._add, names, tuple(str(d) for d in dtypes), repr(self.create_accumulator()))
        if key in _ADD_KERNELS:  # compiled once per AggregateFunction class and record type
            return _ADD_KERNELS[key]
        if not numba_available():
            return None
        import numba
        import numpy as np

        acc0 = self.create_accumulator()
        width, is_tuple = self.accumulator_width()
        acc_values = list(acc0) if is_tuple else [acc0]
        for v in acc_values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise JitCompileError(
                    f"operator '{operator}': {self.__name__}.create_accumulator() returns {acc0!r}; a jit "
                    "AggregateFunction keeps a number or a tuple of numbers"
                )
        add = numba.njit(cache=False)(self._add)
        record = _record_type(names)
        n_in = len(names)
        cols = ", ".join(f"c{i}" for i in range(n_in))
        accs = ", ".join(f"acc{j}" for j in range(width))
        lines = [
            f"def loop(slots, {cols}, {accs}):",
            "    for i in range(len(slots)):",
            "        s = slots[i]",
        ]
        cur = ", ".join(f"acc{j}[s]" for j in range(width))
        lines.append(f"        a = ({cur},)" if is_tuple else "        a = acc0[s]")
        lines.append(f"        r = add(None, Rec({', '.join(f'c{i}[i]' for i in range(n_in))}), a)")
        if is_tuple:
            lines += [f"        acc{j}[s] = r[{j}]" for j in range(width)]
        else:
            lines.append("        acc0[s] = r")
        scope: dict[str, Any] = {"add": add, "Rec": record}
        exec("\n".join(lines), scope)  # noqa: S102 - generated from counts only, no user text
        loop = numba.njit(cache=False)(scope["loop"])
        # the accumulator's dtypes: what add returns for a record of these columns
        try:
            rec_t = numba.typeof(record(*[np.zeros(1, d)[0] for d in dtypes]))
            acc_t = numba.typeof(tuple(acc_values)) if is_tuple else numba.typeof(acc0)
            add.compile((numba.types.none, rec_t, acc_t))
            rt = add.overloads[(numba.types.none, rec_t, acc_t)].signature.return_type
        except Exception as e:
            raise JitCompileError(
                f"operator '{operator}': numba cannot compile {self.__name__}.add(value, accumulator) for "
                f"records of {dict(zip(names, map(str, dtypes), strict=True))}: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from e
        items = list(rt) if isinstance(rt, numba.types.BaseTuple) else [rt]
        if len(items) != width or (is_tuple != isinstance(rt, numba.types.BaseTuple)):
            raise JitCompileError(
                f"operator '{operator}': {self.__name__}.add returns {rt}, not an accumulator like "
                f"create_accumulator()'s {acc0!r}"
            )
        acc_dtypes = []
        for v, t in zip(acc_values, items, strict=True):
            dt = _numpy_dtype(t)
            if isinstance(v, float) and dt.kind != "f":
                dt = np.dtype(np.float64)
            acc_dtypes.append(dt)
        _ADD_KERNELS[key] = (loop, acc_dtypes, acc_values, is_tuple)
        return _ADD_KERNELS[key]

    def session_kernel(self, names: tuple, dtypes: list, operator: str) -> Any:
        """The compiled session loop for records of these fields (None without numba).

        ``loop(keys, kidx, ts, cols..., gap, wm, head, nxt, start, end, ski, skey, live, free,
        meta, late, init, accs...)`` takes the records in arrival order, each into its key's
        sessions exactly as the per-record session operator does: a record opens ``[ts, ts+gap)``,
        every open session of its key that this window (growing as it merges) intersects merges
        into the first of them (``merge(first, merge(merge(second, third), ...))``), then ``add``;
        a record that merges with nothing and whose window already ended is marked ``late``.
        Sessions of a key are a list by start (``head`` per key index, ``nxt`` per slot); slots
        come from the ``free`` stack (``meta[0]`` entries) or past ``meta[1]``."""
        base = self.add_kernel(names, dtypes, operator)
        if base is None:
            return None
        _, acc_dtypes, acc_values, is_tuple = base
        key = (
            self._add,
            self._merge_fn(),
            names,
            tuple(str(d) for d in dtypes),
            repr(self.create_accumulator()),
        )
        if key in _SESSION_KERNELS:
            return _SESSION_KERNELS[key]
        import numba

        add = numba.njit(cache=False)(self._add)
        merge = numba.njit(cache=False)(self._merge_fn())
        acc_types = [_numba_type(d) for d in acc_dtypes]
        acc_t = numba.types.Tuple(acc_types) if is_tuple else acc_types[0]
        try:
            merge.compile((numba.types.none, acc_t, acc_t))
            rt = merge.overloads[(numba.types.none, acc_t, acc_t)].signature.return_type
            items = list(rt) if isinstance(rt, numba.types.BaseTuple) else [rt]
            if (
                len(items) != len(acc_dtypes)
                or is_tuple != isinstance(rt, numba.types.BaseTuple)
                or not all(isinstance(t, (numba.types.Number, numba.types.Boolean)) for t in items)
            ):
                raise TypeError(f"it returns {rt}, not an accumulator like create_accumulator()'s")
        except Exception as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise JitCompileError(
                f"operator '{operator}': numba cannot compile {self.__name__}.merge(a, b) for accumulators "
                f"like {self.create_accumulator()!r}: {why}"
            ) from e
        width, n_in = len(acc_dtypes), len(names)
        cols = ", ".join(f"c{i}" for i in range(n_in))
        accs = ", ".join(f"acc{j}" for j in range(width))

        def read(s: str) -> str:
            return f"({', '.join(f'acc{j}[{s}]' for j in range(width))},)" if is_tuple else f"acc0[{s}]"

        def cast(r: str) -> str:  # the merged accumulator keeps the accumulator arrays' types
            if is_tuple:
                return f"({', '.join(f'd{j}({r}[{j}])' for j in range(width))},)"
            return f"d0({r})"

        def write(s: str, r: str) -> list[str]:
            if is_tuple:
                return [f"acc{j}[{s}] = {r}[{j}]" for j in range(width)]
            return [f"acc0[{s}] = {r}"]

        body = [
            f"def loop(keys, kidx, ts, {cols}, gap, wm, head, nxt, start, end, ski, skey, live, free, meta,"
            f" late, init, {accs}):",
            "    nfree = meta[0]",
            "    top = meta[1]",
            "    for i in range(len(kidx)):",
            "        k = kidx[i]",
            "        t = ts[i]",
            "        lo = t",
            "        hi = t + gap",
            "        target = -1",
            "        second = -1",
            f"        macc = {read('0')}",
            "        s = head[k]",
            "        while s >= 0:",
            "            nx = nxt[s]",
            "            if start[s] <= hi and end[s] >= lo:",
            "                if start[s] < lo:",
            "                    lo = start[s]",
            "                if end[s] > hi:",
            "                    hi = end[s]",
            "                if target < 0:",
            "                    target = s",
            "                else:",
            "                    if second < 0:",
            "                        second = s",
            f"                        macc = {read('s')}",
            "                    else:",
            f"                        m = merge(None, macc, {read('s')})",
            f"                        macc = {cast('m')}",
            "                    nxt[target] = nx",
            "                    live[s] = False",
            "                    free[nfree] = s",
            "                    nfree += 1",
            "            s = nx",
            "        if target < 0:",
            "            if t + gap - 1 <= wm:",
            "                late[i] = True",
            "                continue",
            "            if nfree > 0:",
            "                nfree -= 1",
            "                target = free[nfree]",
            "            else:",
            "                target = top",
            "                top += 1",
            *[f"            acc{j}[target] = init[{j}]" for j in range(width)],
            "            start[target] = t",
            "            end[target] = t + gap",
            "            ski[target] = k",
            "            skey[target] = keys[i]",
            "            live[target] = True",
            "            p = -1",
            "            c = head[k]",
            "            while c >= 0 and start[c] < t:",
            "                p = c",
            "                c = nxt[c]",
            "            nxt[target] = c",
            "            if p < 0:",
            "                head[k] = target",
            "            else:",
            "                nxt[p] = target",
            "        else:",
            "            if second >= 0:",
            f"                r = merge(None, {read('target')}, macc)",
            *[f"                {line}" for line in write("target", "r")],
            "            start[target] = lo",
            "            end[target] = hi",
            f"        r = add(None, Rec({', '.join(f'c{i}[i]' for i in range(n_in))}), {read('target')})",
            *[f"        {line}" for line in write("target", "r")],
            "    meta[0] = nfree",
            "    meta[1] = top",
        ]
        scope: dict[str, Any] = {"add": add, "merge": merge, "Rec": _record_type(names)}
        scope.update({f"d{j}": dt.type for j, dt in enumerate(acc_dtypes)})
        exec("\n".join(body), scope)  # noqa: S102 - generated from counts only, no user text
        loop = numba.njit(cache=False)(scope["loop"])
        _SESSION_KERNELS[key] = (loop, acc_dtypes, tuple(acc_values), is_tuple)
        return _SESSION_KERNELS[key]

    def _merge_fn(self) -> Any:
        if not self.has_merge():
            raise NotImplementedError(f"{self.__name__}.merge() is needed to merge session windows")
        return type(self.agg).merge

    def has_merge(self) -> bool:
        """True when the AggregateFunction defines its own ``merge`` (session windows need it; the
        base class's raises, as Flink's does, only when two sessions merge: that runs per record)."""
        from flinkcore.datastream.functions import AggregateFunction

        merge = getattr(type(self.agg), "merge", None)
        return callable(merge) and merge is not AggregateFunction.merge

    def result_kernel(self, acc_dtypes: list, is_tuple: bool) -> Any:
        """``get_result`` compiled over the accumulator arrays: ``(loop, returns a tuple)``, or None
        when numba cannot compile it to numbers (then it runs once per window in Python: the same
        calls Flink makes, so the same results)."""
        key = (self._get_result, tuple(str(d) for d in acc_dtypes), is_tuple)
        if key in _RESULT_KERNELS:
            return _RESULT_KERNELS[key]
        import numba

        get_result = numba.njit(cache=False)(self._get_result)
        acc_types = [_numba_type(d) for d in acc_dtypes]
        acc_t = numba.types.Tuple(acc_types) if is_tuple else acc_types[0]
        kernel = None
        try:
            get_result.compile((numba.types.none, acc_t))
            rt = get_result.overloads[(numba.types.none, acc_t)].signature.return_type
            out_tuple = isinstance(rt, numba.types.BaseTuple)
            out_dtypes = [_numpy_dtype(t) for t in (list(rt) if out_tuple else [rt])]
        except Exception:  # not numbers in, numbers out: get_result runs in Python, per window
            out_dtypes = None
        if out_dtypes is not None:
            width = len(acc_dtypes)
            accs = ", ".join(f"acc{j}" for j in range(width))
            lines = [f"def loop({accs}):", "    n = len(acc0)"]
            lines += [f"    o{j} = np.empty(n, d{j})" for j in range(len(out_dtypes))]
            lines.append("    for i in range(n):")
            cur = ", ".join(f"acc{j}[i]" for j in range(width))
            lines.append(
                f"        r = get_result(None, ({cur},))"
                if is_tuple
                else "        r = get_result(None, acc0[i])"
            )
            for j in range(len(out_dtypes)):
                lines.append(f"        o{j}[i] = r[{j}]" if out_tuple else f"        o{j}[i] = r")
            lines.append(f"    return ({', '.join(f'o{j}' for j in range(len(out_dtypes)))},)")
            scope: dict[str, Any] = {"np": np_module(), "get_result": get_result}
            scope.update({f"d{j}": dt.type for j, dt in enumerate(out_dtypes)})
            exec("\n".join(lines), scope)  # noqa: S102 - generated from counts only, no user text
            kernel = (numba.njit(cache=False)(scope["loop"]), out_tuple)
        _RESULT_KERNELS[key] = kernel
        return kernel

    def __repr__(self) -> str:
        return f"flinkcore.jit({self.__name__})"


_RECORD_TYPES: dict[tuple, Any] = {}
#: (add function, field names, dtypes, initial accumulator) -> compiled add loop and its accumulator
_ADD_KERNELS: dict[tuple, Any] = {}
#: (get_result function, accumulator dtypes, tuple?) -> compiled get_result loop, or None
_RESULT_KERNELS: dict[tuple, Any] = {}
#: (add, merge, field names, dtypes, initial accumulator) -> compiled session loop
_SESSION_KERNELS: dict[tuple, Any] = {}


def np_module() -> Any:
    import numpy as np

    return np


def _record_type(names: tuple) -> Any:
    """A namedtuple of the record's fields: what a compiled ``add`` sees as ``value``."""
    from collections import namedtuple

    t = _RECORD_TYPES.get(names)
    if t is None:
        t = _RECORD_TYPES[names] = namedtuple("Record", [str(n) for n in names], rename=True)
    return t


def as_jit(func: Any) -> Any:
    """``func`` as a JitFunction / JitAggregate when it is marked ``@flinkcore.jit`` (an
    AggregateFunction: its class is) or is a numba dispatcher; else None."""
    if isinstance(func, (JitFunction, JitAggregate)):
        return func
    if getattr(type(func), "__flinkcore_jit__", False) and callable(
        getattr(func, "create_accumulator", None)
    ):
        return JitAggregate(func)
    if _is_numba_dispatcher(func):
        return JitFunction(func)
    return None


def jit(fn: Any) -> Any:
    """Mark a numeric function of record fields for compilation over column batches.

    On an AggregateFunction class it marks the class (it stays a class: ``aggregate(MyAgg())``);
    on an AggregateFunction instance it returns a JitAggregate of it."""
    if isinstance(fn, type):
        if not callable(getattr(fn, "add", None)) or not callable(getattr(fn, "create_accumulator", None)):
            raise TypeError(f"flinkcore.jit marks functions and AggregateFunction classes, not {fn!r}")
        fn.__flinkcore_jit__ = True
        return fn
    if callable(getattr(fn, "create_accumulator", None)):
        return JitAggregate(fn)
    return JitFunction(fn)
