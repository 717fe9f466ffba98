"""Two-phase (local-global) window aggregation: partial aggregates cross the keyed exchange.

In worker processes a keyed exchange costs more per record than a W2 window spends on it, so the
cluster runtime (:mod:`flinkcore.runtime.cluster.two_phase`) splits an eligible window as Flink
SQL's local-global aggregation does: a LOCAL operator in the upstream task keeps one partial
accumulator per (key, pane) and sends it on when its own watermark passes the pane, and the
GLOBAL window (the user's window operator, given a derived function) merges the partials.

Panes: tumbling windows are their own panes; a sliding window of ``size``/``slide`` is a union
of panes of ``gcd(size, slide)`` aligned to its offset, and a partial stamped with its pane's
max timestamp falls, at the global side, into exactly the windows that contain the pane.

Why the results equal the plan without pre-aggregation:

* a pane's partials leave before the watermark that passes the pane is forwarded, so the global
  watermark (the minimum over channels) is still below the pane when they arrive: they are never
  late where their records would not have been, and no window they belong to has fired yet;
* a record whose pane the local watermark already passed goes on at once as a partial of its own,
  with its own timestamp and the record itself, so the global window decides lateness (allowed
  lateness, late firing, late side output with the user's record) as before;
* everything is sent before a checkpoint barrier, before an idle status and at end of input: the
  local operator holds no state in checkpoints, so recovery and rescaling are unchanged; once its
  input was idle it forwards every record as its own partial (a channel coming back from idle is
  not counted by the downstream watermark until it catches up, so holding records back could
  make them late where arrival order would not have);
* the global window keeps the user's accumulator (AggregateFunction: a window's first partial
  is its accumulator, later ones are merged in with the user's ``merge``), the reduced value
  (reduce: partials are reduced) or the built-in aggregates
  (sum of partial sums, sum of partial counts, min of minima, max of maxima); results, windows,
  keys, timestamps and the user's ``get_result`` / window function are the same.

Partials are compact: ``(key, accumulator)`` tuples on the per-record path (``(key,
accumulator, record)`` for a late single), one Arrow record batch ``[key, partials...]`` per
firing on the columnar path (late records go on as they came).
"""

from __future__ import annotations

import heapq
import math
import operator
from typing import Any

import numpy as np

from flinkcore.common.watermark import MAX_WATERMARK
from flinkcore.runtime.operators.base import AbstractStreamOperator, UserCodeError
from flinkcore.runtime.operators.window import (
    AlignedWindowOperator,
    WindowStateSpec,
    check_loop_timestamp,
    key_index_of,
    loop_failure,
)
from flinkcore.runtime.operators.window_columnar import (
    ColumnarWindowOperator,
    NativeWindowTable,
    to_numpy,
)

try:
    from flinkcore._core import window_udf as _compiled
except ImportError:  # pragma: no cover - a build without the native core
    _compiled = None

__all__ = [
    "COLUMNAR_TWO_PHASE_FUNCTIONS",
    "GlobalColumnarWindowOperator",
    "GlobalWindowOperator",
    "LocalColumnarAggregateOperator",
    "LocalWindowAggregateOperator",
    "two_phase_plan",
]

MIN_LONG = -(2**63)

#: built-in columnar aggregates whose partials merge with a built-in aggregate (mean, first and
#: last would need more than one partial or arrival order, and keep the one-phase plan)
COLUMNAR_TWO_PHASE_FUNCTIONS = {"sum": "sum", "count": "sum", "min": "min", "max": "max"}

#: prefix of the partial columns of a columnar partial batch (the key column keeps its name)
PARTIAL_PREFIX = "__partial"

_EMPTY = object()

#: partials a local operator sends per batch when a pane fires (see _send_until)
SEND_CHUNK = 1024


# --------------------------------------------------------------------------------------------
# Derived functions of the global window
# --------------------------------------------------------------------------------------------


class MergePartials:
    """The global window's AggregateFunction for a user AggregateFunction: a window's first
    partial ``(key, accumulator[, record])`` gives its accumulator as it is, ``add`` merges each
    later one in with the user's ``merge`` (as Flink merges the accumulators of merging
    windows: the first one is kept, not merged into a new accumulator); ``get_result`` is the
    user's. So a key with one partial per window ends with exactly the accumulator the local
    operator built, record by record, as the one-phase window would have."""

    def __init__(self, agg: Any) -> None:
        self.agg = agg
        self.get_result = agg.get_result
        self._merge = agg.merge

    def create_accumulator(self) -> Any:
        return _EMPTY

    def add(self, partial: tuple, acc: Any) -> Any:
        value = partial[1]
        return value if acc is _EMPTY else self._merge(acc, value)

    def merge(self, a: Any, b: Any) -> Any:
        return self._merge(a, b)


class ReducePartials:
    """The global window's function for a ReduceFunction: the stored value is the reduced value
    (as in the one-phase plan, so snapshots of either plan restore into the other)."""

    def __init__(self, reduce: Any) -> None:
        self.reduce = reduce

    def create_accumulator(self) -> Any:
        return _EMPTY

    def add(self, partial: tuple, acc: Any) -> Any:
        value = partial[1]
        return value if acc is _EMPTY else self.reduce(acc, value)

    def get_result(self, acc: Any) -> Any:
        return acc

    def merge(self, a: Any, b: Any) -> Any:
        return self.reduce(a, b)


class GlobalWindowOperator(AlignedWindowOperator):
    """The user's aligned window over partials: the same operator, fed ``(key, acc)`` tuples;
    a late single's side output is the user's record it carries."""

    def open(self) -> None:
        super().open()
        # The compiled loop folds partials in itself (the user's merge / reduce called directly:
        # the same calls in the same order as MergePartials.add / ReducePartials.add, which the
        # Python paths keep using), one Python frame less per partial.
        agg = self.state_spec.aggregate
        if type(agg) is MergePartials and _compiled is not None:
            self._kernel_functions = (_compiled.KIND_FOLD_PARTIAL, None, agg._merge)
        elif type(agg) is ReducePartials and _compiled is not None:
            self._kernel_functions = (_compiled.KIND_FOLD_PARTIAL, None, agg.reduce)

    def _late(self, value: Any, ts: int) -> None:
        if type(value) is tuple and len(value) == 3:
            value = value[2]
        super()._late(value, ts)


# --------------------------------------------------------------------------------------------
# Local operator, per-record path
# --------------------------------------------------------------------------------------------


class _SendsPartialsAhead:
    """What both local operators do around their partials: send every pane the watermark passes
    before forwarding it, and everything before an idle status, a barrier and end of input (see
    the module doc); ``_send_until`` is each operator's own."""

    def _send_until(self, watermark: int) -> None:
        raise NotImplementedError

    def process_watermark(self, watermark: int) -> None:
        if watermark <= self.current_watermark:
            return
        self._send_until(watermark)
        self.current_watermark = watermark
        self.output.emit_watermark(watermark)

    def process_watermark_status(self, idle: bool) -> None:
        if idle:
            self._send_until(MAX_WATERMARK)
            self.pass_through = True
        self.output.emit_watermark_status(idle)

    def prepare_snapshot_pre_barrier(self, checkpoint_id: int) -> None:
        self._send_until(MAX_WATERMARK)

    def end_input(self) -> None:
        self._send_until(MAX_WATERMARK)
        self.output.end_input()


class LocalWindowAggregateOperator(_SendsPartialsAhead, AbstractStreamOperator):
    """Partial accumulators per (key, pane) before the keyed exchange (see the module doc).

    ``kind`` 0: ``fn`` is the user's ``add(value, acc)`` and ``create`` its
    ``create_accumulator``; kind 1: ``fn`` is the user's ``reduce(a, b)``. The key is the
    exchange's key selector, computed here (this operator is not keyed).
    """

    holds_no_state = True

    def __init__(
        self,
        pane: int,
        offset: int,
        kind: int,
        create: Any,
        fn: Any,
        key_of: Any,
        name: str = "LocalAggregate",
    ) -> None:
        super().__init__(name)
        if pane <= 0:
            raise ValueError(f"pane size must be > 0, got {pane}")
        self.pane = pane
        self.offset = offset % pane
        self.kind = kind
        self.create = create
        self.fn = fn
        self.key_of = key_of
        #: True once the input was idle: from then on every record goes on as its own partial
        self.pass_through = False
        self.partials_sent = 0
        self.singles_sent = 0

    def open(self) -> None:
        self._panes: dict[int, Any] = {}
        self._starts: list[int] = []
        self._key_index = key_index_of(self.key_of)
        self._use_compiled = _compiled is not None
        self._cursor = _compiled.Cursor() if _compiled is not None else None
        self._new_panes = _compiled.KeyedPanes if _compiled is not None else dict
        self._out_values: list = []
        self._out_ts: list = []

    def _open_window(self, start: int) -> Any:
        panes = self._panes.get(start)
        if panes is None:
            panes = self._panes[start] = self._new_panes()
            heapq.heappush(self._starts, start)
        return panes

    def _single(self, value: Any, key: Any, ts: Any) -> None:
        acc = self.fn(value, self.create()) if self.kind == 0 else value
        self._out_values.append((key, acc, value))
        self._out_ts.append(ts)
        self.singles_sent += 1

    def process_batch(self, values: list, timestamps: list | None) -> None:
        if timestamps is None:
            raise ValueError(
                "Record has no timestamp. Did you forget to call "
                "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
            )
        if type(values) is not list:
            values = list(values)
        if type(timestamps) is not list:
            timestamps = list(timestamps)
        if self._use_compiled and not self.pass_through:
            self._cursor.reset()
            self._compiled_batch(values, timestamps)
        else:
            self._python_batch(values, timestamps)
        self._flush_out()

    def _compiled_batch(
        self, values: list, timestamps: list | None, extract: Any = None, pre: Any = None
    ) -> list:
        """The records into their panes in one compiled loop (``window_udf.tumbling_batch``, as
        the aligned window's); a record it leaves (its pane was sent, or its timestamp is not an
        int) goes on as its own partial. With ``extract``/``pre`` (a fused timestamp assigner and
        map, see :meth:`fused_batch`) returns the timestamps that were not ints."""
        cur = self._cursor
        pane, offset = self.pane, self.offset
        fired_until = max(self.current_watermark - pane + 1, MIN_LONG)
        n = len(values)
        i = 0
        others: list = []
        while True:
            try:
                i = _compiled.tumbling_batch(
                    cur,
                    values,
                    timestamps,
                    extract,
                    MIN_LONG,
                    pre,
                    i,
                    self.key_of,
                    self._key_index,
                    pane,
                    offset,
                    fired_until,
                    self.kind,
                    self.create,
                    self.fn,
                    self._panes,
                    self._open_window,
                )
            except Exception as e:
                raise loop_failure(self, values, e, pre) from e
            if i >= n:
                return others
            value = values[i] if pre is None else cur.value
            ts = cur.ts
            check_loop_timestamp(ts, extract)
            if type(ts) is not int:
                others.append(ts)
            try:
                self._single(value, cur.key, ts)
            except Exception as e:
                raise UserCodeError(self.name, value, e) from e
            i += 1

    def fused_batch(
        self, values: list, timestamps: list | None, extract: Any, names: tuple, pre: Any = None
    ) -> list:
        """A batch from a fused timestamp assigner [-> map] (runtime/fusion.py, as the aligned
        window's): returns ``[max int timestamp, *non-int ones]`` for the watermark generator."""
        self._fused_names = names
        if type(values) is not list:
            values = list(values)
        if timestamps is not None and type(timestamps) is not list:
            timestamps = list(timestamps)
        cur = self._cursor
        cur.reset()
        if self.pass_through:
            seen = self._pass_through_fused(values, timestamps, extract, names, pre)
        else:
            others = self._compiled_batch(values, timestamps, extract, pre)
            seen = [cur.max_ts, *others] if values else []
        self._flush_out()
        return seen

    def _pass_through_fused(
        self, values: list, timestamps: list | None, extract: Any, names: tuple, pre: Any
    ) -> list:
        seen = []
        for i, value in enumerate(values):
            try:
                ts = extract(value, MIN_LONG if timestamps is None else timestamps[i])
            except Exception as e:
                raise UserCodeError(names[0], value, e, where="record (timestamp assigner)") from e
            check_loop_timestamp(ts, extract)
            seen.append(ts)
            if pre is not None:
                try:
                    value = pre(value)
                except Exception as e:
                    raise UserCodeError(names[1], value, e) from e
            try:
                self._single(value, self.key_of(value), ts)
            except Exception as e:
                raise UserCodeError(self.name, value, e) from e
        return seen

    @property
    def fusable(self) -> bool:
        """True when :meth:`fused_batch` may take this operator's batches (the compiled loop)."""
        return self._use_compiled

    def _python_batch(self, values: list, timestamps: list) -> None:
        """The loop without the native core (and after an idle input: every record alone)."""
        pane, offset = self.pane, self.offset
        fired_until = self.current_watermark - pane + 1
        create, fn, kind = self.create, self.fn, self.kind
        alone = self.pass_through
        for value, ts in zip(values, timestamps, strict=True):
            check_loop_timestamp(ts, None)
            try:
                key = self.key_of(value)
                if alone or type(ts) is not int or ts - (ts - offset) % pane <= fired_until:
                    self._single(value, key, ts)
                    continue
                panes = self._open_window(ts - (ts - offset) % pane)
                acc = panes.get(key, _EMPTY)
                if kind == 0:
                    panes[key] = fn(value, create() if acc is _EMPTY else acc)
                else:
                    panes[key] = value if acc is _EMPTY else fn(acc, value)
            except Exception as e:
                raise UserCodeError(self.name, value, e) from e

    def _send_until(self, watermark: int) -> None:
        """Send the partials of every pane whose max timestamp is <= ``watermark``.

        A pane goes out SEND_CHUNK partials at a time: each part runs through the exchange, the
        serializer and the global window while its accumulators are still in the cache (a W2
        pane of 10,000 keys in one batch made every pass over it miss the cache)."""
        starts, pane = self._starts, self.pane
        chunk = SEND_CHUNK
        self._flush_out()
        while starts and starts[0] + pane - 1 <= watermark:
            start = heapq.heappop(starts)
            panes = self._panes.pop(start, None)
            if not panes:
                continue
            n = len(panes)
            ts = start + pane - 1
            self.partials_sent += n
            if type(panes) is dict or panes.fallback is not None:
                items = list(panes.items())
                parts = [items[a : a + chunk] for a in range(0, n, chunk)]
            else:
                parts = None
            for i, a in enumerate(range(0, n, chunk)):
                part = panes.items(a, a + chunk) if parts is None else parts[i]
                self.output.collect(part, [ts] * len(part))

    def _flush_out(self) -> None:
        if self._out_values:
            values, ts = self._out_values, self._out_ts
            self._out_values, self._out_ts = [], []
            self.output.collect(values, ts)

    def snapshot_operator_state(self) -> Any:
        if self._panes:  # never: every pane is sent before the barrier
            raise RuntimeError(f"operator '{self.name}' holds partials at a checkpoint")
        return None


# --------------------------------------------------------------------------------------------
# Columnar path
# --------------------------------------------------------------------------------------------


class LocalColumnarAggregateOperator(_SendsPartialsAhead, ColumnarWindowOperator):
    """The columnar local operator: an Arrow window table of panes, fired as partial batches."""

    holds_no_state = True
    #: the partial batches' column names (the key's, then the aggregates'), made at the first fire
    _partial_columns: list[str] | None = None

    def __init__(
        self,
        pane: int,
        offset: int,
        key_field: str,
        aggs: list[tuple[str, str, Any]],
        column_dtypes: dict | None = None,
        name: str = "LocalAggregate",
    ) -> None:
        super().__init__(
            pane,
            pane,
            offset % pane,
            key_field,
            aggs,
            make_output=None,  # type: ignore[arg-type]
            table_factory=None,  # the window's own choice: the native table for float columns
            column_dtypes=column_dtypes,
            name=name,
        )
        self.pass_through = False
        self.partials_sent = 0
        self.singles_sent = 0

    def process_batch(self, values: Any, timestamps: Any) -> int | None:
        """Add a batch to the panes; records whose pane was sent already go on as they are.
        Returns the batch's largest timestamp where the native table found it (see
        :attr:`ColumnarWindowOperator.reports_batch_max_ts`)."""
        if timestamps is None:
            raise ValueError(
                "Record has no timestamp. Did you forget to call "
                "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
            )
        if len(values) == 0:
            return None
        ts = to_numpy(timestamps, np.int64)
        if self.pass_through:
            self._forward(values, ts, None)
            return None
        keys, cols = self._columns(values)
        if keys.dtype != np.int64:
            keys = keys.astype(np.int64)
        wm = self.current_watermark
        table = self._table
        if getattr(table, "native_late", False):
            # The pane table has no allowed lateness: it skips exactly the records whose pane the
            # watermark passed (its max timestamp <= wm), found in the update's own pass (no
            # ts.min() per batch); they go on as they came.
            late = table.update(keys, ts, cols, wm)
            if late is not None:
                self._forward(values, ts, late)
            return getattr(table, "last_max_ts", None)
        if ts.min() <= wm:
            pane, offset = self.size, self.offset
            late = ts - (ts - offset) % pane + (pane - 1) <= wm
            if late.any():
                self._forward(values, ts, late)
                keep = ~late
                keys, ts = keys[keep], ts[keep]
                cols = {k: v[keep] for k, v in cols.items()}
                if not len(keys):
                    return None
        table.update(keys, ts, cols)
        return None

    def _forward(self, values: Any, ts: np.ndarray, mask: np.ndarray | None) -> None:
        """Records whose pane was sent already go on as they are (the global window treats a
        record as its own partial, and its late side output gets the record)."""
        if mask is not None:
            idx = np.flatnonzero(mask)
            if isinstance(values, list):
                values = [values[i] for i in idx.tolist()]
            else:
                values = values.take(idx)
            ts = ts[idx]
        self.singles_sent += len(values)
        self.output.collect(values, ts if not isinstance(values, list) else ts.tolist())

    def _send_until(self, watermark: int) -> None:
        import pyarrow as pa

        fire_columns = getattr(self._table, "fire_columns", None)
        if fire_columns is not None:  # the native table: every finished pane as one set of columns
            # the partials' keys and values, and as their timestamps their panes' max
            # timestamps, written by the fire itself (no window start or end columns)
            out = fire_columns(watermark, starts=False, ends=False, max_ts=True)
            keys = out["key"]
            if not len(keys):
                return
            names = self._partial_columns
            if names is None:
                names = self._partial_columns = [self.key_field, *(name for name, _, _ in self.aggs)]
            arrays = [pa.array(keys), *(pa.array(out[name]) for name, _, _ in self.aggs)]
            self.partials_sent += len(keys)
            self.output.collect(pa.RecordBatch.from_arrays(arrays, names=names), out["max_ts"])
            return
        fired = self._table.fire(watermark)
        if not fired:
            return
        lengths = [len(keys) for _, _, keys, _ in fired]
        keys = np.concatenate([keys for _, _, keys, _ in fired]).astype(np.int64, copy=False)
        ends = np.repeat(np.array([f[1] for f in fired], dtype=np.int64), lengths)
        arrays = [pa.array(keys)]
        names = [self.key_field]
        for out, _, _ in self.aggs:
            arrays.append(pa.array(np.concatenate([r[out] for _, _, _, r in fired])))
            names.append(out)
        self.partials_sent += len(keys)
        self.output.collect(pa.RecordBatch.from_arrays(arrays, names=names), ends - 1)

    def snapshot_operator_state(self) -> Any:
        return None


class _NativePartialsTable(NativeWindowTable):
    """The native table merging partials: ``int_outputs`` (the sums of count partials, computed
    in float64) are emitted as the int64 counts the one-phase window gives."""

    def __init__(
        self, size: int, slide: int, offset: int, aggs: list[tuple[str, str, str]], int_outputs: list[str]
    ) -> None:
        super().__init__(size, slide, offset, aggs)
        self._int_outputs = int_outputs
        if not self._sessions:  # the C fire writes them as int64 in its pass
            self.int_sums = tuple(int_outputs)

    @classmethod
    def factory(cls, int_outputs: list[str]) -> Any:
        def make(size: int, slide: int, offset: int, aggs: list) -> _NativePartialsTable:
            return cls(size, slide, offset, aggs, int_outputs)

        return make

    def fire(self, watermark: int) -> list:
        fired = super().fire(watermark)
        if not self.int_sums:
            for _, _, _, results in fired:
                for name in self._int_outputs:
                    results[name] = results[name].astype(np.int64)
        return fired

    def fire_columns(self, watermark: int, **columns: bool) -> dict:
        out = super().fire_columns(watermark, **columns)
        if not self.int_sums:
            for name in self._int_outputs:
                out[name] = out[name].astype(np.int64)
        return out


class GlobalColumnarWindowOperator(ColumnarWindowOperator):
    """The user's columnar window over partial batches (built-in merges of the partials); a batch
    of records (late at the local side) is taken as one partial per record."""

    #: it is fed by a keyed exchange, never right after the timestamps operator
    reports_batch_max_ts = False

    def __init__(self, original: ColumnarWindowOperator, partial_names: list[str]) -> None:
        dtypes = dict(original.column_dtypes)
        partial_dtypes = {}
        aggs = []
        for (out, func, col), pname in zip(original.aggs, partial_names, strict=True):
            aggs.append((out, COLUMNAR_TWO_PHASE_FUNCTIONS[func], pname))
            if func == "count":
                partial_dtypes[pname] = "int64"
            elif col in dtypes:
                partial_dtypes[pname] = dtypes[col]
        table_factory = None if original._default_table else original.table_factory
        if original._default_table and (
            original._default_table_factory(original.aggs, dtypes) is NativeWindowTable
        ):
            # the window's own choice is the native table: merge the partials there too (partial
            # counts add up as float64 sums, exact below 2**53, and go out as int64 again), not
            # on the Arrow table a count's int64 partial column would otherwise pick
            counts = [out for out, func, _ in original.aggs if func == "count"]
            table_factory = _NativePartialsTable.factory(counts)
        super().__init__(
            original.size,
            original.slide,
            original.offset,
            original.key_field,
            aggs,
            original.make_output,
            late_data_tag=original.late_data_tag,
            table_factory=table_factory,
            column_dtypes=partial_dtypes,
            name=original.name,
        )
        self.emit_columnar = original.emit_columnar
        self._raw_aggs = list(original.aggs)
        self._raw_dtypes = dtypes
        self._partial_names = list(partial_names)

    # -- snapshots: the one-phase window's format -------------------------------------------------
    # A savepoint of either plan restores into the other, at any parallelism: the global table
    # holds the one-phase table's windows with other aggregate kinds (a count is the sum of count
    # partials), so its snapshot is converted, entry by entry, to the one-phase window's (and a
    # restored one back). Native tables: the same entries (key, start, record count, fired state,
    # one float64 accumulator per aggregate); the record count is the summed count partial when
    # the window has a count, else the number of partials merged (then nothing reads it: it only
    # feeds count and mean). Arrow tables: the count's partial column is renamed.

    def _one_phase_table(self) -> Any:
        factory = ColumnarWindowOperator._default_table_factory(self._raw_aggs, self._raw_dtypes)
        return self._new_table(self._raw_aggs, self._raw_dtypes, factory)

    def _snapshot_formats(self) -> tuple[Any, Any, list[int]]:
        """(global format, one-phase format, indexes of the count aggregates): headers of the
        native tables' snapshots, or None for Arrow tables."""
        formats = getattr(self, "_formats", None)
        if formats is None:
            counts = [i for i, (_, func, _) in enumerate(self._raw_aggs) if func == "count"]
            mine, theirs = self._new_table(), self._one_phase_table()
            if isinstance(mine, NativeWindowTable) != isinstance(theirs, NativeWindowTable):
                raise RuntimeError(
                    f"operator '{self.name}': the two-phase window's table ({type(mine).__name__}) and the "
                    f"one-phase window's ({type(theirs).__name__}) differ; their snapshots cannot convert"
                )
            if isinstance(mine, NativeWindowTable):
                # an empty table's snapshot is its header and a zero window count
                formats = (mine.snapshot()[:-8], theirs.snapshot()[:-8], counts)
            else:
                formats = (None, None, counts)
            self._formats = formats
        return formats

    def _convert(self, windows: Any, to_one_phase: bool) -> Any:
        mine, theirs, counts = self._snapshot_formats()
        if mine is None:  # Arrow tables: {start: {column: values}}
            names = [
                (f"{out}__sum", f"{out}__count")
                for i, (out, _, _) in enumerate(self._raw_aggs)
                if i in counts
            ]
            if not to_one_phase:
                names = [(b, a) for a, b in names]
            renames = dict(names)
            return {start: {renames.get(c, c): v for c, v in cols.items()} for start, cols in windows.items()}
        src, dst = (mine, theirs) if to_one_phase else (theirs, mine)
        data = bytes(windows)
        if not data.startswith(src):
            if data.startswith(dst):  # already in the target format (a snapshot of an earlier version)
                return data
            raise ValueError(
                f"operator '{self.name}': the snapshot is of a window with another size/slide/offset or "
                "other aggregates than this job's"
            )
        n = int.from_bytes(data[len(src) : len(src) + 8], "little")
        if n == 0:
            return dst + data[len(src) :]
        width = 4 + len(self._raw_aggs)
        entries = np.frombuffer(data, dtype="<i8", offset=len(src) + 8).reshape(n, width).copy()
        accs = entries[:, 4:].view("<f8")
        if to_one_phase:
            if counts:
                entries[:, 2] = np.rint(accs[:, counts[0]]).astype(np.int64)
            for c in counts:
                accs[:, c] = 0.0
        else:
            for c in counts:
                accs[:, c] = entries[:, 2].astype(np.float64)
        return dst + data[len(src) : len(src) + 8] + entries.tobytes()

    def snapshot_operator_state(self) -> Any:
        state = super().snapshot_operator_state()
        state["windows"] = self._convert(state["windows"], to_one_phase=True)
        return state

    def _restore_table(self) -> None:
        self._restored = [self._convert(w, to_one_phase=False) for w in self._restored]
        super()._restore_table()

    def process_batch(self, values: Any, timestamps: Any) -> None:
        schema = getattr(values, "schema", None)
        if schema is not None and self._partial_names[0] in schema.names:
            super().process_batch(values, timestamps)
            return
        self._records(values, timestamps)

    def _raw_column(self, values: Any, field: Any, dtype: Any) -> np.ndarray:
        if isinstance(values, list):
            return np.fromiter(self._getter(values, field), dtype=dtype or "float64", count=len(values))
        return to_numpy(values.column(field), dtype)

    def _records(self, values: Any, timestamps: Any) -> None:
        if timestamps is None:
            raise ValueError(
                "Record has no timestamp. Did you forget to call "
                "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
            )
        if len(values) == 0:
            return
        ts = to_numpy(timestamps, np.int64)
        keys = self._raw_column(values, self.key_field, self._raw_dtypes.get(self.key_field, "int64"))
        keys = keys.astype(np.int64, copy=False)
        cols = {}
        for (_, func, col), pname in zip(self._raw_aggs, self._partial_names, strict=True):
            if func == "count":
                arr = np.ones(len(ts), dtype=np.int64)
            else:
                arr = self._raw_column(values, col, self._raw_dtypes.get(col))
            cols[self._col_names[pname]] = arr
        wm = self.current_watermark
        newest_max_ts = ts - (ts - self.offset) % self.slide + self.size - 1
        late = newest_max_ts <= wm
        if late.any():
            self._emit_late(values, ts, late)
            keep = ~late
            keys, ts = keys[keep], ts[keep]
            cols = {k: v[keep] for k, v in cols.items()}
            if not len(keys):
                return
        self._table.update(keys, ts, cols, wm)


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


def _pane(size: int, slide: int) -> int:
    return math.gcd(size, slide)


def _itemgetter_field(key_selector: Any) -> Any:
    if type(key_selector) is operator.itemgetter:
        args = key_selector.__reduce__()[1]
        if len(args) == 1:
            return args[0]
    return None


class TwoPhasePlan:
    """How one window node splits: factories of the local and the global operator, and the key
    selector of the exchange between them (None: the original one)."""

    def __init__(self, local_factory: Any, global_factory: Any, key_selector: Any, kind: str) -> None:
        self.local_factory = local_factory
        self.global_factory = global_factory
        self.key_selector = key_selector
        self.kind = kind


_partial_key = operator.itemgetter(0)


def _local_udf(factory: Any, key_selector: Any, name: str) -> Any:
    probe = factory()
    spec = probe.state_spec
    pane = _pane(probe.size, probe.slide)
    offset = probe.offset
    if spec.kind == "aggregating":
        agg = spec.aggregate
        create, add = agg.create_accumulator, agg.add
        return LocalWindowAggregateOperator(pane, offset, 0, create, add, key_selector, name)
    return LocalWindowAggregateOperator(pane, offset, 1, None, spec.reduce, key_selector, name)


def _global_udf(factory: Any) -> Any:
    orig = factory()
    spec = orig.state_spec
    if spec.kind == "aggregating":
        derived: Any = MergePartials(spec.aggregate)
    else:
        derived = ReducePartials(spec.reduce)
    return GlobalWindowOperator(
        orig.size,
        orig.slide,
        orig.offset,
        WindowStateSpec("aggregating", aggregate=derived),
        orig.function,
        orig.window_factory,
        allowed_lateness=orig.allowed_lateness,
        late_data_tag=orig.late_data_tag,
        name=orig.name,
    )


def _partial_names(aggs: list) -> list[str]:
    return [f"{PARTIAL_PREFIX}{i}" for i in range(len(aggs))]


def _local_columnar(factory: Any, name: str) -> Any:
    probe = factory()
    names = _partial_names(probe.aggs)
    aggs = [(pname, func, col) for (_, func, col), pname in zip(probe.aggs, names, strict=True)]
    pane = _pane(probe.size, probe.slide)
    dtypes = probe.column_dtypes
    return LocalColumnarAggregateOperator(pane, probe.offset, probe.key_field, aggs, dtypes, name)


def _global_columnar(factory: Any) -> Any:
    orig = factory()
    return GlobalColumnarWindowOperator(orig, _partial_names(orig.aggs))


class _Bound:
    """A picklable ``fn(*args)`` (the factories travel to the workers with the graph)."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn = fn
        self.args = args

    def __call__(self) -> Any:
        return self.fn(*self.args)


def two_phase_plan(operator_factory: Any, key_selector: Any, local_name: str) -> TwoPhasePlan | None:
    """The split of a window node built by ``operator_factory`` and fed by a keyed exchange with
    ``key_selector``, or None when the window keeps the one-phase plan: only tumbling/sliding
    event-time windows with the default trigger and no evictor (the aligned operators) whose
    function is an AggregateFunction with ``merge``, a ReduceFunction, or built-in columnar
    sum/count/min/max."""
    probe = operator_factory()
    if type(probe) is AlignedWindowOperator:
        spec = probe.state_spec
        if spec.kind == "aggregating":
            if not callable(getattr(spec.aggregate, "merge", None)):
                return None
        elif spec.kind != "reducing":
            return None
        return TwoPhasePlan(
            _Bound(_local_udf, operator_factory, key_selector, local_name),
            _Bound(_global_udf, operator_factory),
            _partial_key,
            "udf",
        )
    if type(probe) is ColumnarWindowOperator:
        if not probe._default_table or not isinstance(probe.key_field, str):
            return None
        if _itemgetter_field(key_selector) != probe.key_field:
            return None
        if any(func not in COLUMNAR_TWO_PHASE_FUNCTIONS for _, func, _ in probe.aggs):
            return None
        if not probe.aggs:
            return None
        return TwoPhasePlan(
            _Bound(_local_columnar, operator_factory, local_name),
            _Bound(_global_columnar, operator_factory),
            None,
            "columnar",
        )
    return None
