"""The columnar fast path of windows: built-in aggregates over whole column batches.

When a stream's records are typed rows, the key is a field, timestamps come with the batch and
the aggregation is built in (``agg(...)``, ``sum/min/max``), a window needs no Python call per
record: :class:`ColumnarWindowOperator` turns each batch into columns (zero-copy for Arrow
batches) and hands them to a window aggregation table, which keeps one partial aggregate per
(window, key) and returns finished windows when the watermark passes them.

Two tables implement the same small interface (``update(keys, ts, columns)``,
``fire(watermark) -> [(start, end, keys, {name: array})]``, ``snapshot()``, ``restore()``):
the native ``flinkcore._core.window_kernels.WindowAggTable`` when it is built, and
:class:`ArrowWindowAggTable` (Arrow's C++ hash aggregation per batch, partials merged at fire
time) otherwise. Semantics are the window operator's with the default trigger and no allowed
lateness: a window fires when the watermark reaches ``end - 1``; a record whose windows have
all fired already is late (side output or dropped).

Results leave as one ``pyarrow.RecordBatch`` per firing when the in-process runtime sets
``emit_columnar`` (per-record consumers get them as Rows at their input), else as Rows built in C.
The key may be a ``flinkcore.jit`` function (a key column computed over the batch), and
:class:`ColumnarJitAggregateOperator` runs a ``@flinkcore.jit`` AggregateFunction's compiled
``add`` over the batches (:class:`JitAggregateTable`).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from itertools import repeat
from typing import Any

import numpy as np

from flinkcore.runtime.operators.arrow import rows_from_columns, with_record_kind
from flinkcore.runtime.operators.base import AbstractStreamOperator, UserCodeError

__all__ = [
    "COLUMNAR_FUNCTIONS",
    "ArrowWindowAggTable",
    "ColumnarJitAggregateOperator",
    "ColumnarJitSessionOperator",
    "ColumnarWindowOperator",
    "JitAggregateTable",
    "JitSessionTable",
    "field_of_key_selector",
]

MIN_LONG = -(2**63)

#: Aggregate functions the columnar path computes.
COLUMNAR_FUNCTIONS = ("sum", "count", "min", "max", "mean", "first", "last")

# How each output function is computed per batch (partials) and how partials merge.
_PARTIALS = {
    "sum": (("sum",), ("sum",)),
    "count": (("count",), ("sum",)),
    "min": (("min",), ("min",)),
    "max": (("max",), ("max",)),
    "first": (("first",), ("first",)),
    "last": (("last",), ("last",)),
    "mean": (("sum", "count"), ("sum", "sum")),
}


def field_of_key_selector(key_selector: Any) -> Any:
    """The field a key selector reads when it is ``operator.itemgetter(field)``, else None."""
    if type(key_selector) is operator.itemgetter:
        args = key_selector.__reduce__()[1]
        if len(args) == 1:
            return args[0]
    return None


def _agg_spec(func: str, column: str, out: str) -> list[tuple[str, str, str]]:
    """(column, pyarrow function, partial column name) for one output."""
    return [(column, f, f"{out}__{f}") for f in _PARTIALS[func][0]]


#: Keys in [0, _DENSE_LIMIT) are aggregated in arrays indexed by the key (no hashing at all).
_DENSE_LIMIT = 1 << 22


class _DenseWindow:
    """One window's accumulators as arrays indexed by key, for small non-negative int keys."""

    def __init__(self, aggs: list[tuple[str, str, str]]) -> None:
        self.aggs = aggs
        self.size = 0
        self.count = np.zeros(0, dtype=np.int64)
        self.arrays: dict[str, np.ndarray] = {}

    def _grow(self, needed: int, columns: dict[str, np.ndarray]) -> None:
        cap = max(1024, 1 << int(needed - 1).bit_length())
        old = self.size
        count = np.zeros(cap, dtype=np.int64)
        count[:old] = self.count[:old]
        self.count = count
        for out, func, col in self.aggs:
            for f in _PARTIALS[func][0]:
                name = f"{out}__{f}"
                dtype = np.int64 if f == "count" else columns[col].dtype
                arr = np.zeros(cap, dtype=dtype)
                if name in self.arrays:
                    arr[:old] = self.arrays[name][:old]
                self.arrays[name] = arr
        self.size = cap

    def update(self, keys: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        top = int(keys.max()) + 1
        if top > self.size:
            self._grow(top, columns)
        before = self.count
        counts = np.bincount(keys, minlength=top)
        # every key at most once (a batch of partials: one per key and window): plain indexed
        # updates are exact and ~10x faster than the unbuffered ufunc.at
        unique = len(keys) <= top and int(counts.max(initial=0)) <= 1
        fresh = None
        firsts = lasts = None
        for out, func, col in self.aggs:
            v = columns[col]
            for f in _PARTIALS[func][0]:
                arr = self.arrays[f"{out}__{f}"]
                if f == "count":
                    arr[:top] += counts
                elif f == "sum":
                    if unique:
                        arr[keys] += v
                    elif v.dtype.kind == "f":
                        arr[:top] += np.bincount(keys, weights=v, minlength=top)
                    else:
                        np.add.at(arr, keys, v)
                elif f in ("min", "max"):
                    if fresh is None:
                        uk, first_idx = np.unique(keys, return_index=True)
                        fresh = uk[before[uk] == 0]
                        fresh_first = first_idx[before[uk] == 0]
                    arr[fresh] = v[fresh_first]  # seed new keys so min/max need no sentinel
                    if unique:
                        arr[keys] = (np.minimum if f == "min" else np.maximum)(arr[keys], v)
                    else:
                        (np.minimum if f == "min" else np.maximum).at(arr, keys, v)
                elif f == "first":
                    if firsts is None:
                        uk, first_idx = np.unique(keys, return_index=True)
                        new = before[uk] == 0
                        firsts = (uk[new], first_idx[new])
                    arr[firsts[0]] = v[firsts[1]]
                elif f == "last":
                    if lasts is None:
                        rk, ridx = np.unique(keys[::-1], return_index=True)
                        lasts = (rk, len(keys) - 1 - ridx)
                    arr[lasts[0]] = v[lasts[1]]
        # count of elements per key (presence), kept apart from any user count
        self.count[:top] += counts

    def partial_columns(self, names: list[str]) -> dict[str, np.ndarray]:
        ks = np.nonzero(self.count)[0]
        cols = {"__k": ks.astype(np.int64)}
        for name in names:
            cols[name] = self.arrays[name][ks]
        return cols


class ArrowWindowAggTable:
    """Tumbling/sliding window aggregation over column batches with Arrow's hash aggregation.

    ``aggs`` is a list of ``(output name, function, input column)``. Each ``update`` groups the
    batch by (window start, key) in C++ and keeps the partial result per window; ``fire``
    merges a finished window's partials (again in C++) and returns its final columns. Partials
    of a window are compacted as they accumulate, so memory stays proportional to the keys
    seen per open window.
    """

    _COMPACT_AT = 16

    def __init__(self, size: int, slide: int, offset: int, aggs: list[tuple[str, str, str]]) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        self._pa, self._pc = pa, pc
        if size <= 0 or slide <= 0:
            raise ValueError(f"window size and slide must be > 0, got {size}, {slide}")
        self.size, self.slide, self.offset = size, slide, offset
        self.aggs = list(aggs)
        for _, func, _ in self.aggs:
            if func not in _PARTIALS:
                raise ValueError(f"unknown aggregate function {func!r}; one of {COLUMNAR_FUNCTIONS}")
        self.columns = sorted({col for _, _, col in self.aggs})
        count_all = pc.CountOptions(mode="all")
        self._partial_aggs = []
        self._merge_aggs = []
        for out, func, col in self.aggs:
            partial_fns, merge_fns = _PARTIALS[func]
            for pf, mf in zip(partial_fns, merge_fns, strict=True):
                name = f"{out}__{pf}"
                self._partial_aggs.append((col, pf, count_all) if pf == "count" else (col, pf))
                self._merge_aggs.append((name, mf))
        self._partial_names = [f"{out}__{pf}" for out, func, _ in self.aggs for pf in _PARTIALS[func][0]]
        self._windows: dict[int, list] = {}  # start -> [partial tables]
        #: start -> dense accumulators, used while keys are small non-negative integers
        self._dense: dict[int, _DenseWindow] = {}
        self._dense_ok = True

    def _starts(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row index, window start) for every window of every row."""
        last = ts - (ts - self.offset) % self.slide
        if self.slide == self.size:
            return np.arange(len(ts)), last
        idx, starts = [], []
        k = 0
        while True:
            s = last - k * self.slide
            m = s > ts - self.size
            if not m.any():
                break
            idx.append(np.nonzero(m)[0])
            starts.append(s[m])
            k += 1
        idx_all, starts_all = np.concatenate(idx), np.concatenate(starts)
        order = np.argsort(idx_all, kind="stable")  # keep arrival order within a window (first/last)
        return idx_all[order], starts_all[order]

    def update(
        self, keys: np.ndarray, ts: np.ndarray, columns: dict[str, np.ndarray], watermark: int | None = None
    ) -> None:
        """Add rows; windows whose max timestamp is <= ``watermark`` (already fired) are skipped."""
        if len(keys) == 0:
            return
        if self.slide == self.size:
            # Most batches lie in one tumbling window: then no per-row window start is needed.
            size, offset = self.size, self.offset
            t_lo, t_hi = int(ts.min()), int(ts.max())
            first = t_lo - (t_lo - offset) % size
            if first == t_hi - (t_hi - offset) % size:
                self._update_window(first, keys, columns)
                return
        idx, starts = self._starts(ts)
        if watermark is not None and self.slide != self.size:
            live = starts + (self.size - 1) > watermark
            if not live.all():
                idx, starts = idx[live], starts[live]
                if len(idx) == 0:
                    return
        if self.slide != self.size:
            keys = keys[idx]
            columns = {c: columns[c][idx] for c in self.columns}
        lo, hi = starts.min(), starts.max()
        if lo == hi:
            self._update_window(int(lo), keys, columns)
            return
        for start in np.unique(starts):
            m = starts == start
            self._update_window(int(start), keys[m], {c: v[m] for c, v in columns.items()})

    def _update_window(self, start: int, keys: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        if self._dense_ok and len(keys) and keys.min() >= 0 and keys.max() < _DENSE_LIMIT:
            dense = self._dense.get(start)
            if dense is None:
                dense = self._dense[start] = _DenseWindow(self.aggs)
            dense.update(keys, columns)
            return
        self._flush_dense(start)
        table = self._pa.table({"__k": keys, **{c: columns[c] for c in self.columns}})
        partial = table.group_by("__k", use_threads=False).aggregate(self._partial_aggs)
        self._add_partial(start, partial.rename_columns(["__k", *self._partial_names]))

    def _flush_dense(self, start: int) -> None:
        """Turn a window's dense accumulators into a partial table (kept in arrival order)."""
        dense = self._dense.pop(start, None)
        if dense is not None and dense.size:
            self._add_partial(start, self._pa.table(dense.partial_columns(self._partial_names)))

    def _add_partial(self, start: int, partial: Any) -> None:
        parts = self._windows.get(start)
        if parts is None:
            self._windows[start] = [partial]
            return
        parts.append(partial)
        if len(parts) >= self._COMPACT_AT:
            self._windows[start] = [self._merge(parts)]

    def _merge(self, parts: list) -> Any:
        if len(parts) == 1:
            return parts[0]
        merged = self._pa.concat_tables(parts).group_by("__k", use_threads=False).aggregate(self._merge_aggs)
        return merged.rename_columns(["__k", *self._partial_names])

    def pending_starts(self) -> list[int]:
        return sorted(set(self._windows) | set(self._dense))

    def fire(self, watermark: int) -> list[tuple[int, int, np.ndarray, dict[str, np.ndarray]]]:
        """Finished windows (max timestamp <= watermark) in start order, removed from the table."""
        out = []
        due = [s for s in set(self._windows) | set(self._dense) if s + self.size - 1 <= watermark]
        for start in sorted(due):
            self._flush_dense(start)
            table = self._merge(self._windows.pop(start))
            keys = table.column("__k").to_numpy()
            results: dict[str, np.ndarray] = {}
            for out_name, func, _ in self.aggs:
                if func == "mean":
                    total = table.column(f"{out_name}__sum").to_numpy()
                    n = table.column(f"{out_name}__count").to_numpy()
                    results[out_name] = total / n
                else:
                    results[out_name] = table.column(f"{out_name}__{_PARTIALS[func][0][0]}").to_numpy()
            out.append((start, start + self.size, keys, results))
        return out

    def snapshot(self) -> dict:
        for start in list(self._dense):
            self._flush_dense(start)
        return {
            start: {name: parts.column(name).to_pylist() for name in parts.column_names}
            for start, parts in ((s, self._merge(p)) for s, p in self._windows.items())
        }

    def restore(self, snapshots: list[dict], keep: Callable[[Any], bool] | None = None) -> None:
        pa = self._pa
        for snap in snapshots:
            for start, cols in snap.items():
                table = pa.table(cols)
                if keep is not None:
                    mask = [keep(k) for k in cols["__k"]]
                    table = table.filter(pa.array(mask, type=pa.bool_()))
                if table.num_rows:
                    self._windows.setdefault(int(start), []).append(table)


#: rows a window operator collects from small columnar batches before its table's update (see
#: NativeWindowTable.coalesce_rows)
COALESCE_ROWS = 1 << 16
#: rows a session window operator holds back at most, waiting for the other channels' records of
#: the same event time (see ColumnarWindowOperator._feed_pending); past it everything goes in.
#: ``FLINKCORE_SESSION_REORDER_MAX_ROWS=0`` turns the holding back off (arrival order).
MAX_HELD_ROWS = int(os.environ.get("FLINKCORE_SESSION_REORDER_MAX_ROWS", 1 << 21))
#: batches of at least this many rows (on average) go into the table one by one, not concatenated
SEPARATE_ROWS = 1 << 14


class NativeWindowTable:
    """The native kernels (``flinkcore._core.window_kernels``) behind the table interface above.

    ``WindowAggTable`` (tumbling/sliding) or ``SessionWindowTable`` (``gap`` given): C hash
    tables over float64 columns; they find late records themselves (after session merging), so
    the operator asks ``update`` for the late mask (``native_late``), and they find the batch's
    largest timestamp in the same pass (``last_max_ts``, for the watermark generator).
    """

    native_late = True

    def __init__(
        self, size: int, slide: int, offset: int, aggs: list[tuple[str, str, str]], gap: int | None = None
    ):
        from flinkcore._core import window_kernels

        #: rows worth collecting before an ``update``: the session table's update and fire cost
        #: grows with its open sessions per call (W3, 4M events: 163 ns/event in 65,536-row
        #: batches, 357 in 16,384, 738 in 4,096), so small batches (a keyed exchange splits the
        #: source's over the channels) are coalesced; the tumbling/sliding table costs per row
        self.coalesce_rows = COALESCE_ROWS if gap is not None else 0
        #: sessions whose aggregates do not depend on arrival order (no first/last): batches may
        #: go into the table in event-time order rather than arrival order, within this many ms
        #: of the earliest one held (see ColumnarWindowOperator._feed_pending)
        self.reorder_horizon = None
        if gap is not None and not any(func in ("first", "last") for _, func, _ in aggs):
            self.reorder_horizon = max(gap // 2, 1)

        self.columns = sorted({col for _, _, col in aggs})
        index = {col: i for i, col in enumerate(self.columns)}
        spec = [(func, index[col], out) for out, func, col in aggs]
        self.names = [out for out, _, _ in aggs]
        self._sessions = gap is not None
        #: sum aggregates whose results are int64 (sums of count partials, see local_agg)
        self.int_sums: tuple[str, ...] = ()
        if gap is None:
            self._t = window_kernels.WindowAggTable(size, slide, offset, spec)
        else:
            self._t = window_kernels.SessionWindowTable(gap, spec)

    def update(
        self, keys: np.ndarray, ts: np.ndarray, columns: dict, watermark: int | None = None
    ) -> np.ndarray | None:
        """Add a batch at ``watermark``; the bool mask of its late records, or None when none is
        late (the usual case: no mask is made then)."""
        values = [columns[c] for c in self.columns]
        t = self._t
        if self._sessions:  # late is decided after merging: the update marks each record
            late = t.update(keys, ts, values, watermark=watermark, return_late=True)
            return late if t.last_late else None
        if not t.update(keys, ts, values, watermark=watermark):
            return None
        # a tumbling/sliding record is late when its last window is past cleanup: a function of
        # its timestamp and the watermark alone, so the mask is found afresh for the rare batch
        return t.late_mask(ts, MIN_LONG if watermark is None else watermark)

    @property
    def last_max_ts(self) -> int:
        """The largest timestamp of the last ``update``'s batch, found by the update's own pass."""
        return self._t.last_max_ts

    def fire(self, watermark: int) -> list[tuple[int, int, np.ndarray, dict[str, np.ndarray]]]:
        out = self._t.fire(watermark) if self._sessions else self._t.fire(watermark, int_sums=self.int_sums)
        keys = out["key"]
        if not len(keys):
            return []
        starts, ends = out["window_start"], out["window_end"]
        # rows come ordered by (end, key): cut into runs of one window
        cuts = np.flatnonzero((starts[1:] != starts[:-1]) | (ends[1:] != ends[:-1])) + 1
        bounds = [0, *cuts.tolist(), len(keys)]
        return [
            (int(starts[a]), int(ends[a]), keys[a:b], {n: out[n][a:b] for n in self.names})
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    def fire_columns(
        self, watermark: int, *, starts: bool = True, ends: bool = True, max_ts: bool = False
    ) -> dict:
        """All finished windows as one set of columns (key, window_start, window_end, aggs...);
        columns the caller does not read are left out (``starts``/``ends`` False), ``max_ts``
        adds each window's end - 1 (its results' timestamp). The tumbling/sliding table writes
        just those, in its fire's pass."""
        if self._sessions:
            out = self._t.fire(watermark)
            if max_ts:
                out["max_ts"] = out["window_end"] - 1
            return out
        return self._t.fire(watermark, starts=starts, ends=ends, max_ts=max_ts, int_sums=self.int_sums)

    def pending_starts(self) -> list[int]:
        raise NotImplementedError("the native tables do not list their windows")

    def snapshot(self) -> bytes:
        return self._t.snapshot()

    def restore(self, snapshots: list, keep: Callable[[Any], bool] | None = None) -> None:
        keep_keys = None
        if keep is not None:
            keep_keys = lambda keys: np.fromiter(map(keep, keys.tolist()), bool, len(keys))  # noqa: E731
        for snap in snapshots:
            self._t.restore(snap, keep_keys=keep_keys, clear=False)


def native_available() -> bool:
    try:
        from flinkcore._core import window_kernels  # noqa: F401
    except ImportError:
        return False
    return True


def to_numpy(column: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(column, np.ndarray):
        return column if dtype is None else column.astype(dtype, copy=False)
    to_numpy = getattr(column, "to_numpy", None)
    if to_numpy is not None:
        try:
            arr = to_numpy(zero_copy_only=False)
        except TypeError:
            arr = to_numpy()
        return arr if dtype is None else arr.astype(dtype, copy=False)
    return np.asarray(column, dtype=dtype)


class ColumnarWindowOperator(AbstractStreamOperator):
    """Keyed tumbling/sliding event-time windows with built-in aggregates over column batches.

    It takes columnar batches (``accepts_columnar``) as the source emits them.

    ``key_field`` names the key column; ``aggs`` is ``[(output name, function, input column)]``;
    ``make_output(key, start, end, values)`` builds one output record (a Row) from a finished
    window's values (a tuple in ``aggs`` order) — if it has a ``row_class`` attribute the rows
    are built in C as ``row_class((key, start, end, *values))`` (``(*values)`` when its
    ``with_window`` is False); ``column_dtypes`` gives the numpy dtype of each
    input column when batches arrive as lists of rows (default float64). Batches may be Arrow
    record batches / tables (zero copy) or lists of rows (columns gathered by C-level loops).
    """

    accepts_columnar = True

    def __init__(
        self,
        size: int,
        slide: int,
        offset: int,
        key_field: Any,
        aggs: list[tuple[str, str, Any]],
        make_output: Callable[[Any, int, int, tuple], Any],
        late_data_tag: str | None = None,
        table_factory: Callable[..., Any] | None = None,
        column_dtypes: dict | None = None,
        name: str = "Window(Columnar)",
    ) -> None:
        super().__init__(name)
        self.size, self.slide, self.offset = size, slide, offset
        self.key_field = key_field
        self.aggs = list(aggs)
        self.make_output = make_output
        self.late_data_tag = late_data_tag
        self.table_factory = table_factory or ArrowWindowAggTable
        #: no table given: ``open`` may pick the native one instead (see ``_default_table_factory``)
        self._default_table = table_factory is None
        self.column_dtypes = column_dtypes or {}
        self.num_late_records_dropped = 0
        #: set by the in-process runtime: emit results as RecordBatches (see ``_emit``)
        self.emit_columnar = False
        self._restored: list[dict] = []
        #: columnar batches collected for one table update (tables with ``coalesce_rows``), each
        #: with its timestamps and their minimum
        self._pending: list[tuple[Any, np.ndarray, int]] = []
        self._pending_rows = 0
        #: rows of the batches the last ``_feed_pending`` held back
        self._held_rows = 0

    @staticmethod
    def _default_table_factory(aggs: list, dtypes: dict) -> Callable[..., Any]:
        """The native table (C; dense arrays per window for small non-negative int keys) when it is
        built and every aggregated column is floating point (it computes in float64, so integer sums,
        minima and maxima stay exact on ArrowWindowAggTable); ArrowWindowAggTable otherwise."""
        if native_available() and all(
            func == "count" or str(dtypes.get(col, "")).startswith("float") for _, func, col in aggs
        ):
            return NativeWindowTable
        return ArrowWindowAggTable

    def open(self) -> None:
        self._col_names = self._column_names(self.aggs)
        self._table = self._new_table()
        self._restore_table()

    @staticmethod
    def _column_names(aggs: list) -> dict:
        """Input column -> the table's column name (``c0``, ``c1``, ... in sorted order)."""
        return {col: f"c{i}" for i, col in enumerate(sorted({c for _, _, c in aggs}, key=str))}

    def _new_table(self, aggs: list | None = None, dtypes: dict | None = None, factory: Any = None) -> Any:
        """An empty table as ``open`` makes it (for ``aggs``/``dtypes`` other than this
        operator's when given: the two-phase global operator builds the one-phase table's)."""
        aggs = self.aggs if aggs is None else aggs
        dtypes = self.column_dtypes if dtypes is None else dtypes
        col_names = self._column_names(aggs)
        if factory is None:
            factory = self.table_factory
            if self._default_table:
                factory = self._default_table_factory(aggs, dtypes)
        return factory(
            self.size, self.slide, self.offset, [(out, func, col_names[col]) for out, func, col in aggs]
        )

    def _owned_keys(self) -> Any:
        """A predicate for the keys of this instance's key groups (state restored at another
        parallelism holds others), or None when it owns every key."""
        kgr = self.state_backend.key_group_range if self.state_backend is not None else None
        if kgr is None:
            return None
        from flinkcore.state.key_groups import key_group_of

        mp = self.context.max_parallelism

        def owned(key: Any) -> bool:
            return kgr[0] <= key_group_of(key, mp) <= kgr[1]

        return owned

    def _restore_table(self) -> None:
        if self._restored:
            self._table.restore(self._restored, self._owned_keys())
            self._restored = []

    # -- input ------------------------------------------------------------------------------------
    def _columns(self, values: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        column = getattr(values, "column", None)
        jit_key = self.key_field if callable(getattr(self.key_field, "columns_of", None)) else None
        if jit_key is not None:
            # (+) a flinkcore.jit key selector: the key column computed over the batch's columns
            if column is not None and not isinstance(values, list):
                keys = np.asarray(jit_key.apply(jit_key.columns_of(values, self.name), self.name))
            else:
                keys = np.fromiter(map(jit_key, values), dtype=np.int64, count=len(values))
            if keys.dtype.kind not in "iu":
                raise TypeError(
                    f"operator '{self.name}': the key selector {jit_key!r} returned {keys.dtype} keys; a "
                    "columnar window takes integer keys"
                )
            if column is not None and not isinstance(values, list):
                dts = self.column_dtypes
                return keys, {name: to_numpy(column(c), dts.get(c)) for c, name in self._col_names.items()}
            return keys, self._list_columns(values)
        if column is not None and not isinstance(values, list):
            keys = to_numpy(column(self.key_field))
            dtypes = self.column_dtypes
            # the dtype the row path would use, so both paths compute alike
            cols = {name: to_numpy(column(col), dtypes.get(col)) for col, name in self._col_names.items()}
            return keys, cols
        key_dtype = self.column_dtypes.get(self.key_field, "int64")
        keys = np.fromiter(self._getter(values, self.key_field), dtype=key_dtype, count=len(values))
        return keys, self._list_columns(values)

    def _list_columns(self, values: list) -> dict[str, np.ndarray]:
        cols = {}
        for col, name in self._col_names.items():
            dtype = self.column_dtypes.get(col, "float64")
            cols[name] = np.fromiter(self._getter(values, col), dtype=dtype, count=len(values))
        return cols

    @staticmethod
    def _getter(values: list, field: Any) -> Any:
        """An iterator over one field of a list of records, with no Python call per record."""
        first = values[0] if values else None
        if isinstance(first, tuple):
            index = field
            if not isinstance(field, int):
                names = getattr(first, "_fields", None)
                if not names or field not in names:
                    raise KeyError(f"record {first!r} has no field {field!r}")
                index = names.index(field)
            # tuple.__getitem__ skips a Row's Python-level __getitem__ (names resolved above)
            return map(tuple.__getitem__, values, repeat(index, len(values)))
        return map(operator.itemgetter(field), values)

    #: ``process_batch`` returns the batch's largest timestamp where the table found it in its
    #: update (else None): a timestamps-and-watermarks operator chained right before takes it for
    #: its generator instead of a pass of its own over the timestamps
    #: (:meth:`~flinkcore.runtime.operators.watermarks.TimestampsAndWatermarksOperator.process_batch`)
    reports_batch_max_ts = True

    def process_batch(self, values: Any, timestamps: Any) -> int | None:
        if timestamps is None:
            raise ValueError(
                "Record has no timestamp. Did you forget to call "
                "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
            )
        limit = getattr(self._table, "coalesce_rows", 0)
        reorder = getattr(self._table, "reorder_horizon", None) is not None
        if limit and type(values) is not list and (reorder or len(values) < limit):
            # columnar batches wait for more (until a watermark, a snapshot or the end of input:
            # each record still meets the watermark it would have met at once)
            pending = self._pending
            if pending and pending[0][0].schema != values.schema:
                self._flush_pending()
                pending = self._pending
            ts = to_numpy(timestamps, np.int64)
            if not len(ts):
                return
            pending.append((values, ts, int(ts.min())))
            self._pending_rows += len(values)
            if self._pending_rows >= limit + self._held_rows:
                self._feed_pending()
            return None
        if self._pending:
            self._flush_pending()
        return self._process(values, timestamps)

    def _feed_pending(self, watermark: int | None = None) -> None:
        """Update the table with the pending batches, in arrival order, except those that start
        more than the table's ``reorder_horizon`` after the earliest pending one: they wait for
        the records of their event time from the other input channels. A slot whose channels
        drift apart in event time (one source seconds ahead of another) would otherwise feed a
        key's records from two times at once: its sessions split into fragments that the later
        channel's records merge again, and a key holds several sessions (W3 at parallelism 2:
        about 2x the session table's work per record).

        Exact: only batches whose every record is after ``watermark + 1`` (the operator's
        watermark, or the one about to fire) wait. Such a record is never late and can meet no
        session that is fired, firing, or that a late record could meet (those end by
        ``watermark + 1``), so the sessions, what fires at each watermark and the late records
        are those of the arrival order; the aggregates are order-free (no first/last), up to
        float rounding of sums (as between parallelisms). Held rows are bounded
        (``MAX_HELD_ROWS``); snapshots and the end of input take everything."""
        pending = self._pending
        horizon = getattr(self._table, "reorder_horizon", None)
        if not pending or horizon is None or self._pending_rows > MAX_HELD_ROWS:
            self._flush_pending()
            return
        wm = self.current_watermark if watermark is None else watermark
        cut = max(min(lo for _, _, lo in pending) + horizon, wm + 1)
        ready = [p for p in pending if p[2] <= cut]
        if len(ready) == len(pending):
            self._flush_pending()
            return
        held = [p for p in pending if p[2] > cut]
        self._pending = held
        self._held_rows = self._pending_rows = sum(len(p[0]) for p in held)
        self._process_batches(ready)

    def _flush_pending(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending, self._pending_rows, self._held_rows = [], 0, 0
        self._process_batches(pending)

    def _process_batches(self, batches: list) -> None:
        """Update the table with ``batches`` in order: one by one where they are large enough for
        the per-call cost not to matter (no copy), else concatenated."""
        if len(batches) == 1 or sum(len(b[0]) for b in batches) >= len(batches) * SEPARATE_ROWS:
            for values, ts, _ in batches:
                self._process(values, ts)
            return
        import pyarrow as pa

        self._process(pa.concat_batches([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))

    def prepare_snapshot_pre_barrier(self, checkpoint_id: int) -> None:
        self._flush_pending()
        super().prepare_snapshot_pre_barrier(checkpoint_id)

    def end_input(self) -> None:
        self._flush_pending()
        super().end_input()

    def _process(self, values: Any, timestamps: Any) -> int | None:
        """Update the table with one batch; its largest timestamp where the table found it."""
        ts = to_numpy(timestamps, np.int64)
        keys, cols = self._columns(values)
        if keys.dtype != np.int64:
            keys = keys.astype(np.int64)
        wm = self.current_watermark
        table = self._table
        if getattr(table, "native_late", False):
            late = table.update(keys, ts, cols, wm)
            if late is not None:
                self._emit_late(values, ts, late)
            return getattr(table, "last_max_ts", None) if len(ts) else None
        # A record is late when its newest window has fired already (no allowed lateness); a
        # record newer than the watermark never is, so most batches skip the check.
        late = None
        if len(ts) and ts.min() <= wm:
            newest_max_ts = ts - (ts - self.offset) % self.slide + self.size - 1
            late = newest_max_ts <= wm
        if late is not None and late.any():
            self._emit_late(values, ts, late)
            keep = ~late
            keys, ts = keys[keep], ts[keep]
            cols = {k: v[keep] for k, v in cols.items()}
        self._table.update(keys, ts, cols, wm)
        return None

    def _emit_late(self, values: Any, ts: np.ndarray, late: np.ndarray) -> None:
        idx = np.nonzero(late)[0]
        if self.late_data_tag is None:
            self.num_late_records_dropped += len(idx)
            return
        if isinstance(values, list):
            records = [values[i] for i in idx]
        elif hasattr(values, "take"):
            from flinkcore.runtime.operators.arrow import record_batch_to_rows

            # the Rows the source would have emitted on the row path
            records = record_batch_to_rows(values.take(idx))
        else:
            records = [values[i] for i in idx]
        self.output.collect_side(self.late_data_tag, records, ts[idx].tolist())

    # -- firing -----------------------------------------------------------------------------------
    def process_watermark(self, watermark: int) -> None:
        if watermark <= self.current_watermark:
            return
        # what may fire at the new watermark goes in first, judged at the one it arrived at
        self._feed_pending(watermark)
        self.current_watermark = watermark
        fire_columns = getattr(self._table, "fire_columns", None)
        if fire_columns is not None:
            # One set of columns for every finished window, ordered by (end, key).
            out = fire_columns(watermark, max_ts=True)
            self._emit(out["key"], out["window_start"], out["window_end"], out, out["max_ts"])
        else:
            fired = self._table.fire(watermark)
            if fired:
                lengths = [len(keys) for _, _, keys, _ in fired]
                self._emit(
                    np.concatenate([keys for _, _, keys, _ in fired]),
                    np.repeat(np.array([f[0] for f in fired], dtype=np.int64), lengths),
                    np.repeat(np.array([f[1] for f in fired], dtype=np.int64), lengths),
                    {n: np.concatenate([r[n] for _, _, _, r in fired]) for n, _, _ in self.aggs},
                )
        self.output.emit_watermark(watermark)

    def _emit(
        self,
        keys: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        results: dict,
        ts: np.ndarray | None = None,
    ) -> None:
        """Send finished windows downstream, one output per (key, window) in the given order.

        With ``emit_columnar`` (set by the in-process runtime) and named outputs, the results go
        out as one ``pyarrow.RecordBatch``: a columnar consumer takes it as it is, and per-record
        consumers get it as Rows (or the tuples of a TUPLE-typed sum/min/max) at their input, built
        in C once. Otherwise they are built here, in C (``row_class``), or by ``make_output``."""
        n = len(keys)
        if not n:
            return
        make = self.make_output
        row_class = getattr(make, "row_class", None)
        with_window = getattr(make, "with_window", True)
        names = [out for out, _, _ in self.aggs]
        if ts is None:  # the results' timestamps: their windows' max timestamps
            ts = ends - 1
        if row_class is None:
            cols = [results[name].tolist() for name in names]
            rows = [
                make(k, s, e, vals)
                for k, s, e, *vals in zip(keys.tolist(), starts.tolist(), ends.tolist(), *cols, strict=True)
            ]
            self.output.collect(rows, ts.tolist())
            return
        arrays = [results[name] for name in names]
        if with_window:
            arrays = [keys, starts, ends, *arrays]
        if self.emit_columnar:
            import pyarrow as pa

            fields = getattr(row_class, "_fields", None)
            names = list(fields) if fields else [f"f{i}" for i in range(len(arrays))]
            batch = pa.RecordBatch.from_arrays([pa.array(a) for a in arrays], names=names)
            if not fields:  # plain tuples (a TUPLE-typed stream's sum/min/max)
                batch = with_record_kind(batch, b"tuple")
            self.output.collect(batch, ts)
            return
        self.output.collect(rows_from_columns(row_class, arrays), ts.tolist())

    # -- snapshots --------------------------------------------------------------------------------
    def snapshot_operator_state(self) -> Any:
        self._flush_pending()
        return {"windows": self._table.snapshot()}

    def restore_operator_state(self, states: list) -> None:
        self._restored = [s["windows"] for s in states if s]


#: Functions the columnar session path computes (order-insensitive: first/last depend on how
#: sessions merge, so they run on the per-record path).
SESSION_FUNCTIONS = ("sum", "count", "min", "max", "mean")

_COMBINE = {
    "sum": np.add,
    "count": np.add,
    "min": np.minimum,
    "max": np.maximum,
}
_REDUCEAT = {
    "sum": np.add.reduceat,
    "min": np.minimum.reduceat,
    "max": np.maximum.reduceat,
}
_PY_COMBINE = {"sum": operator.add, "count": operator.add, "min": min, "max": max}


class _KeySlots:
    """int64 key -> slot: an array indexed by the key while keys are small and non-negative,
    a dict otherwise (vectorized lookups either way)."""

    def __init__(self, dense_limit: int = _DENSE_LIMIT) -> None:
        self._dense: np.ndarray | None = np.full(0, -1, dtype=np.int64)
        self._dict: dict | None = None
        self._limit = dense_limit

    def _fits(self, keys: np.ndarray) -> bool:
        return not len(keys) or (int(keys.min()) >= 0 and int(keys.max()) < self._limit)

    def _to_dict(self) -> None:
        dense = self._dense
        present = np.flatnonzero(dense >= 0)
        self._dict = dict(zip(present.tolist(), dense[present].tolist(), strict=True))
        self._dense = None

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        dense = self._dense
        if dense is not None and self._fits(keys):
            out = np.full(len(keys), -1, dtype=np.int64)
            inside = keys < len(dense)
            out[inside] = dense[keys[inside]]
            return out
        if dense is not None:
            self._to_dict()
        get = self._dict.get
        key_list = keys.tolist()
        return np.fromiter(map(get, key_list, repeat(-1, len(key_list))), np.int64, len(key_list))

    def assign(self, keys: np.ndarray, slots: np.ndarray) -> None:
        if self._dense is not None and self._fits(keys):
            top = int(keys.max()) + 1 if len(keys) else 0
            if top > len(self._dense):
                grown = np.full(max(1024, 1 << int(top - 1).bit_length()), -1, dtype=np.int64)
                grown[: len(self._dense)] = self._dense
                self._dense = grown
            self._dense[keys] = slots
            return
        if self._dense is not None:
            self._to_dict()
        self._dict.update(zip(keys.tolist(), slots.tolist(), strict=True))

    def remove(self, keys: np.ndarray) -> None:
        if self._dense is not None:
            self._dense[keys] = -1
        else:
            pop = self._dict.pop
            for key in keys.tolist():
                pop(key, None)

    def pop(self, key: int, default: Any = None) -> Any:
        slot = int(self.lookup(np.array([key], dtype=np.int64))[0])
        if slot < 0:
            return default
        self.remove(np.array([key], dtype=np.int64))
        return slot

    def __setitem__(self, key: int, slot: int) -> None:
        self.assign(np.array([key], dtype=np.int64), np.array([slot], dtype=np.int64))


class ColumnarSessionOperator(ColumnarWindowOperator):
    """Keyed event-time session windows (static gap) with built-in aggregates over columns.

    Each batch is sorted by (key, timestamp) and cut into per-key runs whose gaps are <= the
    session gap; each run is aggregated with numpy ``reduceat`` and merged with the key's open
    session, kept in arrays indexed by a slot per key. Keys whose batch is not that simple
    (several runs, a run apart from the open session, records that would be late on their own)
    are handled record by record, in arrival order, exactly like the per-record session operator.
    Sessions are freed when they fire, so memory follows the open sessions.
    """

    def __init__(
        self,
        gap: int,
        key_field: Any,
        aggs: list[tuple[str, str, Any]],
        make_output: Callable[[Any, int, int, tuple], Any],
        late_data_tag: str | None = None,
        column_dtypes: dict | None = None,
        name: str = "SessionWindow(Columnar)",
    ) -> None:
        for _, func, _ in aggs:
            if func not in SESSION_FUNCTIONS:
                raise ValueError(f"columnar sessions compute {SESSION_FUNCTIONS}, not {func!r}")
        super().__init__(
            gap, gap, 0, key_field, aggs, make_output, late_data_tag, None, column_dtypes, name=name
        )
        self.gap = gap

    def open(self) -> None:
        self._col_names = {
            col: f"c{i}" for i, col in enumerate(sorted({c for _, _, c in self.aggs}, key=str))
        }
        # partial accumulators: (name, function, input column)
        self._parts = [
            (f"{out}__{f}", f, self._col_names[col])
            for out, func, col in self.aggs
            for f in _PARTIALS[func][0]
        ]
        self._slot_of = _KeySlots()
        self._cap = 0
        self._key = np.zeros(0, dtype=np.int64)
        self._start = np.zeros(0, dtype=np.int64)
        self._end = np.zeros(0, dtype=np.int64)
        self._live = np.zeros(0, dtype=bool)
        self._acc: dict[str, np.ndarray] = {}
        self._free: list[int] = []
        self._extra: dict = {}  # key -> [[start, end, {part: value}], ...] sorted by start
        restored, self._restored = self._restored, []
        for snap in restored:
            self._restore_snapshot(snap)

    # -- slots -------------------------------------------------------------------------------------
    def _alloc(self, m: int, dtypes: dict[str, Any]) -> np.ndarray:
        free = self._free
        take = min(m, len(free))
        reused = np.array(free[len(free) - take :], dtype=np.int64) if take else np.zeros(0, dtype=np.int64)
        del free[len(free) - take :]
        need = m - take
        if need:
            old = self._cap
            if old + need > len(self._key):
                cap = max(1024, 1 << int(old + need - 1).bit_length())
                self._key = np.resize(self._key, cap)
                self._start = np.resize(self._start, cap)
                self._end = np.resize(self._end, cap)
                live = np.zeros(cap, dtype=bool)
                live[:old] = self._live[:old]
                self._live = live
                for name, _, col in self._parts:
                    arr = self._acc.get(name)
                    dtype = np.int64 if name.endswith("__count") else dtypes[col]
                    grown = np.zeros(cap, dtype=dtype)
                    if arr is not None:
                        grown[:old] = arr[:old]
                    self._acc[name] = grown
            fresh = np.arange(old, old + need, dtype=np.int64)
            self._cap = old + need
            return np.concatenate([reused, fresh]) if take else fresh
        return reused

    # -- input -------------------------------------------------------------------------------------
    def process_batch(self, values: Any, timestamps: Any) -> None:
        if timestamps is None:
            raise ValueError(
                "Record has no timestamp. Did you forget to call "
                "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
            )
        ts = to_numpy(timestamps, np.int64)
        n = len(ts)
        if n == 0:
            return
        keys, cols = self._columns(values)
        keys = keys.astype(np.int64, copy=False)
        gap, wm = self.gap, self.current_watermark
        order = np.lexsort((ts, keys))
        k, t = keys[order], ts[order]
        cut = np.empty(n, dtype=bool)
        cut[0] = True
        np.logical_or(k[1:] != k[:-1], t[1:] - t[:-1] > gap, out=cut[1:])
        seg = np.flatnonzero(cut)
        seg_last = np.append(seg[1:], n) - 1
        seg_key = k[seg]
        lo, hi = t[seg], t[seg_last] + gap
        first_of_key = np.ones(len(seg), dtype=bool)
        first_of_key[1:] = seg_key[1:] != seg_key[:-1]
        group = np.cumsum(first_of_key) - 1
        several = np.bincount(group)[group] > 1
        slots = self._slot_of.lookup(seg_key)
        has = slots >= 0
        if has.any():
            safe = np.where(has, slots, 0)
            meets = has & (lo <= self._end[safe]) & (hi >= self._start[safe])
        else:
            meets = has
        slow = several | (has & ~meets)
        if self._extra:
            extra_keys = np.fromiter(self._extra, np.int64, len(self._extra))
            slow |= np.isin(seg_key, extra_keys)
        if int(ts.min()) + gap - 1 <= wm:  # records that would be late on their own
            slow |= np.isin(seg_key, keys[ts + gap - 1 <= wm])
        counts = seg_last - seg + 1
        parts = {}
        for name, f, col in self._parts:
            if f == "count":
                parts[name] = counts
            else:
                parts[name] = _REDUCEAT[f](cols[col][order], seg)
        merge = meets & ~slow
        if merge.any():
            sl = slots[merge]
            np.minimum.at(self._start, sl, lo[merge])
            np.maximum.at(self._end, sl, hi[merge])
            for name, f, _ in self._parts:
                arr = self._acc[name]
                arr[sl] = _COMBINE[f](arr[sl], parts[name][merge])
        new = ~has & ~slow
        if new.any():
            dtypes = {c: v.dtype for c, v in cols.items()}
            sl = self._alloc(int(new.sum()), dtypes)
            new_keys = seg_key[new]
            self._key[sl] = new_keys
            self._start[sl] = lo[new]
            self._end[sl] = hi[new]
            self._live[sl] = True
            for name, _, _ in self._parts:
                self._acc[name][sl] = parts[name][new]
            self._slot_of.assign(new_keys, sl)
        if slow.any():
            self._slow_keys(values, ts, cols, keys, order, seg, seg_last, slow, first_of_key, group)

    def _slow_keys(self, values, ts, cols, keys, order, seg, seg_last, slow, first_of_key, group) -> None:
        """Keys whose batch is not a single run meeting the open session: record by record."""
        starts_of_group = np.flatnonzero(first_of_key)
        ends_of_group = np.append(starts_of_group[1:], len(seg))
        slow_groups = np.unique(group[slow])
        # Take the open sessions of these keys out of the slot arrays, all at once.
        slow_keys = seg[starts_of_group[slow_groups]]
        slow_keys = np.asarray(keys)[order[slow_keys]] if len(slow_keys) else slow_keys
        slots = self._slot_of.lookup(slow_keys)
        in_slot = slots >= 0
        taken: dict[int, list] = {}
        if in_slot.any():
            sl = slots[in_slot]
            accs = {name: self._acc[name][sl].tolist() for name, _, _ in self._parts}
            for j, (key, start, end) in enumerate(
                zip(
                    slow_keys[in_slot].tolist(), self._start[sl].tolist(), self._end[sl].tolist(), strict=True
                )
            ):
                taken[key] = [start, end, {name: accs[name][j] for name in accs}]
            self._live[sl] = False
            self._free.extend(sl.tolist())
            self._slot_of.remove(slow_keys[in_slot])
        back: list[tuple[int, list]] = []
        ts_list = ts.tolist()
        for g, key in zip(slow_groups.tolist(), slow_keys.tolist(), strict=True):
            a, b = seg[starts_of_group[g]], seg_last[ends_of_group[g] - 1] + 1
            rows = np.sort(order[a:b])  # this key's records in arrival order
            sessions = self._extra.pop(key, None)
            if sessions is None:
                one = taken.get(key)
                sessions = [one] if one is not None else []
            for i in rows.tolist():
                self._add_record(key, sessions, values, i, ts_list[i], cols)
            if len(sessions) == 1:
                back.append((key, sessions[0]))
            elif sessions:
                self._extra[key] = sessions
        self._to_slots(back, {c: v.dtype for c, v in cols.items()})

    def _to_slots(self, back: list[tuple[int, list]], dtypes: dict | None = None) -> None:
        """Put keys that are down to one session back into the slot arrays, all at once."""
        if not back:
            return
        if dtypes is None:
            if not self._cap:
                self._extra.update((key, [s]) for key, s in back)
                return
            dtypes = {col: self._acc[name].dtype for name, _, col in self._parts}
        sl = self._alloc(len(back), dtypes)
        keys = np.fromiter((k for k, _ in back), np.int64, len(back))
        self._key[sl] = keys
        self._start[sl] = [s[0] for _, s in back]
        self._end[sl] = [s[1] for _, s in back]
        self._live[sl] = True
        for name, _, _ in self._parts:
            self._acc[name][sl] = [s[2][name] for _, s in back]
        self._slot_of.assign(keys, sl)

    def _add_record(self, key: Any, sessions: list, values: Any, i: int, ts: int, cols: dict) -> None:
        end = ts + self.gap
        accs = {}
        for name, f, col in self._parts:
            accs[name] = 1 if f == "count" else cols[col][i].item()
        lo, hi = ts, end
        group = []
        for s in sessions:
            if s[0] <= hi and s[1] >= lo:
                group.append(s)
                lo, hi = min(lo, s[0]), max(hi, s[1])
        if not group:
            if end - 1 <= self.current_watermark:
                self._late_rows(values, np.array([i]), np.array([ts], dtype=np.int64))
                return
            sessions.append([ts, end, accs])
            sessions.sort(key=lambda x: x[0])
            return
        target = group[0]
        for other in [*group[1:], [0, 0, accs]]:
            for name, f, _ in self._parts:
                target[2][name] = _PY_COMBINE[f](target[2][name], other[2][name])
        for other in group[1:]:
            sessions.remove(other)
        target[0], target[1] = lo, hi

    def _late_rows(self, values: Any, idx: np.ndarray, ts: np.ndarray) -> None:
        late = np.zeros(len(values), dtype=bool)
        late[idx] = True
        full_ts = np.zeros(len(values), dtype=np.int64)
        full_ts[idx] = ts
        self._emit_late(values, full_ts, late)

    # -- firing ------------------------------------------------------------------------------------
    def process_watermark(self, watermark: int) -> None:
        if watermark <= self.current_watermark:
            return
        self.current_watermark = watermark
        cap = self._cap
        due = np.flatnonzero(self._live[:cap] & (self._end[:cap] - 1 <= watermark))
        parts: list[tuple] = []  # (keys, starts, ends, {name: results}) in end order each
        extra_fired: list[tuple[int, int, int, list]] = []  # (key, start, end, values)
        if len(due):
            due = due[np.argsort(self._end[due], kind="stable")]
            acc = self._acc
            results = {
                name: self._final(name, func, lambda part: acc[part][due]) for name, func, _ in self.aggs
            }
            parts.append((self._key[due].copy(), self._start[due], self._end[due], results))
            self._live[due] = False
            self._free.extend(due.tolist())
            self._slot_of.remove(self._key[due])
        back = []
        for key in [k for k, ss in self._extra.items() if ss[0][1] - 1 <= watermark or len(ss) > 1]:
            sessions = self._extra.pop(key)
            keep = []
            for s in sessions:
                if s[1] - 1 <= watermark:
                    vals = [
                        self._final(name, func, lambda part, s=s: np.array([s[2][part]]))[0]
                        for name, func, _ in self.aggs
                    ]
                    extra_fired.append((key, s[0], s[1], vals))
                else:
                    keep.append(s)
            if len(keep) == 1:
                back.append((key, keep[0]))
            elif keep:
                self._extra[key] = keep
        self._to_slots(back)
        if extra_fired:
            # sessions fired from the per-key lists go first among equal ends, then the slots'
            order = sorted(range(len(extra_fired)), key=lambda i: extra_fired[i][2])
            ex = [extra_fired[i] for i in order]
            dtypes = {name: parts[0][3][name].dtype for name, _, _ in self.aggs} if parts else {}
            parts.insert(
                0,
                (
                    np.array([f[0] for f in ex], dtype=np.int64),
                    np.array([f[1] for f in ex], dtype=np.int64),
                    np.array([f[2] for f in ex], dtype=np.int64),
                    {
                        name: np.array([f[3][j] for f in ex], dtype=dtypes.get(name))
                        for j, (name, _, _) in enumerate(self.aggs)
                    },
                ),
            )
        if len(parts) == 1:
            self._emit(*parts[0])
        elif parts:
            ends = np.concatenate([p[2] for p in parts])
            order = np.argsort(ends, kind="stable")
            self._emit(
                np.concatenate([p[0] for p in parts])[order],
                np.concatenate([p[1] for p in parts])[order],
                ends[order],
                {name: np.concatenate([p[3][name] for p in parts])[order] for name, _, _ in self.aggs},
            )
        self.output.emit_watermark(watermark)

    @staticmethod
    def _final(name: str, func: str, part: Callable[[str], np.ndarray]) -> np.ndarray:
        if func == "mean":
            return part(f"{name}__sum") / part(f"{name}__count")
        return part(f"{name}__{_PARTIALS[func][0][0]}")

    def open_sessions(self) -> int:
        return int(self._live[: self._cap].sum()) + sum(len(s) for s in self._extra.values())

    # -- snapshots ---------------------------------------------------------------------------------
    def snapshot_operator_state(self) -> Any:
        live = np.flatnonzero(self._live[: self._cap])
        sessions = []
        for slot in live.tolist():
            accs = {name: self._acc[name][slot].item() for name, _, _ in self._parts}
            sessions.append((int(self._key[slot]), int(self._start[slot]), int(self._end[slot]), accs))
        for key, ss in self._extra.items():
            sessions.extend((key, s[0], s[1], dict(s[2])) for s in ss)
        return {"sessions": sessions}

    def restore_operator_state(self, states: list) -> None:
        self._restored = [s for s in states if s]

    def _restore_snapshot(self, snap: dict) -> None:
        owned = self._owned_keys()
        for key, start, end, accs in snap.get("sessions", ()):
            if owned is not None and not owned(key):
                continue
            self._extra.setdefault(key, []).append([start, end, dict(accs)])
        for sessions in self._extra.values():
            sessions.sort(key=lambda s: s[0])


#: per-window key -> slot arrays of the jit aggregate stay small (one per open window)
_WINDOW_DENSE_LIMIT = 1 << 16


class JitAggregateTable:
    """Tumbling/sliding windows of a ``flinkcore.jit`` AggregateFunction over column batches.

    One accumulator per (key, window) lives in arrays (one per accumulator field) at a slot; each
    batch is cut by window start, its keys are given slots (per window: an array indexed by the
    key while keys are small non-negative ints, a dict otherwise), and the compiled ``add`` folds
    the records into their slots in arrival order — the order the per-record operator adds them
    in, so the accumulators are the same. ``get_result`` runs once per fired window, as in Flink.
    """

    def __init__(
        self,
        size: int,
        slide: int,
        offset: int,
        jit_agg: Any,
        names: tuple,
        operator: str,
        dtypes: list | None = None,
    ) -> None:
        if size <= 0 or slide <= 0:
            raise ValueError(f"window size and slide must be > 0, got {size}, {slide}")
        self.size, self.slide, self.offset = size, slide, offset
        self.agg = jit_agg
        self.names = names  # the record's fields, in order: what ``add`` sees as ``value``
        self.operator = operator
        #: the columns' dtypes when the stream's type gives them: restored windows fire even
        #: when no record arrives after the restore
        self.dtypes = dtypes
        self._kernel: Any = None
        self._windows: dict[int, _KeySlots] = {}  # window start -> key -> slot
        self._key = np.zeros(0, dtype=np.int64)
        self._start = np.zeros(0, dtype=np.int64)
        self._live = np.zeros(0, dtype=bool)
        self._accs: list[np.ndarray] = []
        self._free: list[int] = []
        self._top = 0
        self._restored: list = []

    def _ready(self, dtypes: list) -> None:
        self._kernel = self.agg.add_kernel(self.names, dtypes, self.operator)
        if self._kernel is None:
            raise RuntimeError(f"operator '{self.operator}': numba is not installed")
        _, acc_dtypes, _, _ = self._kernel
        self._accs = [np.zeros(0, dtype=dt) for dt in acc_dtypes]
        restored, self._restored = self._restored, []
        for snap in restored:
            self._load(snap)

    def _alloc(self, m: int) -> np.ndarray:
        free = self._free
        take = min(m, len(free))
        reused = np.array(free[len(free) - take :], dtype=np.int64)
        del free[len(free) - take :]
        need = m - take
        if need:
            top = self._top
            if top + need > len(self._key):
                cap = max(1024, 1 << int(top + need - 1).bit_length())
                self._key = np.resize(self._key, cap)
                self._start = np.resize(self._start, cap)
                live = np.zeros(cap, dtype=bool)
                live[:top] = self._live[:top]
                self._live = live
                self._accs = [np.resize(a, cap) for a in self._accs]
            reused = np.concatenate([reused, np.arange(top, top + need, dtype=np.int64)])
            self._top = top + need
        self._live[reused] = True
        _, _, init, _ = self._kernel
        for arr, v in zip(self._accs, init, strict=True):
            arr[reused] = v
        return reused

    def _slots(self, start: int, keys: np.ndarray) -> np.ndarray:
        """The slot of every record of one window (new slots for keys first seen)."""
        window = self._windows.get(start)
        if window is None:
            window = self._windows[start] = _KeySlots(_WINDOW_DENSE_LIMIT)
        slots = window.lookup(keys)
        missing = slots < 0
        if missing.any():
            new_keys, inv = np.unique(keys[missing], return_inverse=True)
            fresh = self._alloc(len(new_keys))
            self._key[fresh] = new_keys
            self._start[fresh] = start
            window.assign(new_keys, fresh)
            slots[missing] = fresh[inv]
        return slots

    def update(self, keys: np.ndarray, ts: np.ndarray, cols: list[np.ndarray], watermark: int) -> None:
        if not len(keys):
            return
        if self._kernel is None:
            self._ready([c.dtype for c in cols])
        loop = self._kernel[0]
        last = ts - (ts - self.offset) % self.slide
        if self.slide == self.size:
            lo, hi = int(last.min()), int(last.max())
            if lo == hi:  # most batches lie in one tumbling window
                loop(self._slots(lo, keys), *cols, *self._accs)
                return
            idx, starts = None, last
        else:
            parts_i, parts_s = [], []
            k = 0
            while True:
                s = last - k * self.slide
                inside = s > ts - self.size
                if not inside.any():
                    break
                m = inside & (s + self.size - 1 > watermark)  # fired windows take no more adds
                parts_i.append(np.flatnonzero(m))
                parts_s.append(s[m])
                k += 1
            idx = np.concatenate(parts_i)
            order = np.argsort(idx, kind="stable")  # arrival order within each window
            idx, starts = idx[order], np.concatenate(parts_s)[order]
        for start in np.unique(starts).tolist():
            m = np.flatnonzero(starts == start)
            rows = m if idx is None else idx[m]
            loop(self._slots(start, keys[rows]), *[c[rows] for c in cols], *self._accs)

    def fire(self, watermark: int) -> tuple[np.ndarray, np.ndarray, list]:
        """(keys, starts, ``get_result`` of each) of the due windows, by (end, key); freed."""
        if self._kernel is None and self._restored and self.dtypes:
            self._ready(self.dtypes)
        due_starts = sorted(s for s in self._windows if s + self.size - 1 <= watermark)
        if not due_starts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), []
        for start in due_starts:
            del self._windows[start]
        top = self._top
        due = np.flatnonzero(self._live[:top] & (self._start[:top] + (self.size - 1) <= watermark))
        due = due[np.lexsort((self._key[due], self._start[due]))]
        keys, starts = self._key[due], self._start[due]
        _, acc_dtypes, _, is_tuple = self._kernel
        accs = [a[due] for a in self._accs]
        self._live[due] = False
        self._free.extend(due.tolist())
        return keys, starts, _jit_results(self.agg, acc_dtypes, is_tuple, accs, self.operator)

    def snapshot(self) -> dict:
        if self._kernel is None:
            return {"windows": [w for snap in self._restored for w in snap["windows"]]}
        _, _, _, is_tuple = self._kernel
        live = np.flatnonzero(self._live[: self._top])
        out = []
        for slot in live.tolist():
            acc = tuple(a[slot].item() for a in self._accs)
            out.append((int(self._key[slot]), int(self._start[slot]), acc if is_tuple else acc[0]))
        return {"windows": out}

    def _load(self, snap: dict) -> None:
        for k, s, acc in snap["windows"]:
            key = np.array([k], dtype=np.int64)
            slot = self._slots(s, key)
            vals = acc if isinstance(acc, tuple) else (acc,)
            for arr, v in zip(self._accs, vals, strict=True):
                arr[slot] = v

    def restore(self, snapshots: list, keep: Callable[[Any], bool] | None = None) -> None:
        for snap in snapshots:
            snap = {"windows": [w for w in snap["windows"] if keep is None or keep(w[0])]}
            if self._kernel is None:
                self._restored.append(snap)
            else:
                self._load(snap)


class ColumnarJitAggregateOperator(ColumnarWindowOperator):
    """``window(...).aggregate(jit_agg)`` on a typed stream: ``add`` compiled over column batches
    (see :class:`JitAggregateTable`); outputs are ``get_result(accumulator)`` per (key, window),
    at ``window.max_timestamp()``, ordered by (end, key)."""

    def __init__(
        self,
        size: int,
        slide: int,
        offset: int,
        key_field: Any,
        jit_agg: Any,
        fields: list,
        late_data_tag: str | None = None,
        column_dtypes: dict | None = None,
        name: str = "Window(Aggregate)",
    ) -> None:
        aggs = [(str(f), "first", f) for f in fields]  # every field is read; "first" is unused
        super().__init__(size, slide, offset, key_field, aggs, None, late_data_tag, None, column_dtypes, name)
        self.jit_agg = jit_agg
        self.fields = list(fields)

    def open(self) -> None:
        self._col_names = {f: f"c{i}" for i, f in enumerate(self.fields)}
        self._order = [self._col_names[f] for f in self.fields]
        self._table = self._make_table()
        self.jit_agg.open(None)
        self._restore_table()

    def _make_table(self) -> Any:
        return JitAggregateTable(
            self.size, self.slide, self.offset, self.jit_agg, tuple(self.fields), self.name, self._dtypes()
        )

    def _dtypes(self) -> list | None:
        """The numpy dtypes of the fields (what ``add`` compiles for), when the stream's type gives
        every one."""
        dts = [self.column_dtypes.get(f) for f in self.fields]
        return [np.dtype(d) for d in dts] if all(d is not None for d in dts) else None

    def close(self) -> None:
        self.jit_agg.close()

    def process_batch(self, values: Any, timestamps: Any) -> None:
        if timestamps is None:
            raise ValueError(
                "Record has no timestamp. Did you forget to call "
                "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
            )
        ts = to_numpy(timestamps, np.int64)
        keys, cols = self._columns(values)
        keys = keys.astype(np.int64, copy=False)
        wm = self.current_watermark
        if len(ts) and ts.min() <= wm:
            late = ts - (ts - self.offset) % self.slide + self.size - 1 <= wm
            if late.any():
                self._emit_late(values, ts, late)
                keep = ~late
                keys, ts = keys[keep], ts[keep]
                cols = {k: v[keep] for k, v in cols.items()}
        self._table.update(keys, ts, [cols[c] for c in self._order], wm)

    def process_watermark(self, watermark: int) -> None:
        if watermark <= self.current_watermark:
            return
        self.current_watermark = watermark
        keys, starts, results = self._table.fire(watermark)
        if len(keys):
            self.output.collect(results, (starts + (self.size - 1)).tolist())
        self.output.emit_watermark(watermark)


def _jit_results(agg: Any, acc_dtypes: list, is_tuple: bool, accs: list, operator: str) -> Any:
    """``get_result`` of each accumulator (given as one array per field): compiled when numba can
    (results built in C, as Python returns them), else the user's method once per window."""
    result = agg.result_kernel(acc_dtypes, is_tuple)
    if result is not None:
        loop, out_tuple = result
        outs = loop(*accs)
        if out_tuple:
            return rows_from_columns(tuple, list(outs))
        return outs[0].tolist()
    get_result = agg.get_result
    fields = [a.tolist() for a in accs]
    try:
        if is_tuple:
            return [get_result(a) for a in zip(*fields, strict=True)]
        return [get_result(a) for a in fields[0]]
    except Exception as e:
        raise UserCodeError(operator, None, e, where="get_result()") from e


_UNLINK: list = []


def _unlink_kernel() -> Any:
    """Compiled: drop fired slots from their keys' session lists (``head``/``nxt``)."""
    if not _UNLINK:
        import numba

        @numba.njit(cache=False)
        def unlink(due, ski, head, nxt, live):
            for s in due:
                live[s] = False
            for s in due:
                k = ski[s]
                p = -1
                c = head[k]
                head[k] = -1
                while c >= 0:
                    nx = nxt[c]
                    if live[c]:
                        if p < 0:
                            head[k] = c
                        else:
                            nxt[p] = c
                        p = c
                    c = nx
                if p >= 0:
                    nxt[p] = -1

        _UNLINK.append(unlink)
    return _UNLINK[0]


class JitSessionTable:
    """Event-time sessions (static gap) of a ``flinkcore.jit`` AggregateFunction over column batches.

    Every key has a list of open sessions sorted by start (``head`` per key index, ``nxt`` per
    slot; a key index per key that has open sessions); every session a slot in arrays: start,
    end, key and one array per accumulator field. The compiled session loop
    (``JitAggregate.session_kernel``) takes each batch's records in arrival order, merges and
    adds exactly as the per-record session operator does (``merge`` and ``add`` compiled), and
    marks the late records. Fired sessions free their slots, and keys without open sessions
    their key index, so memory follows the open sessions.
    """

    def __init__(
        self, gap: int, jit_agg: Any, names: tuple, operator: str, dtypes: list | None = None
    ) -> None:
        if gap <= 0:
            raise ValueError(f"session gap must be > 0, got {gap}")
        self.gap = gap
        self.agg = jit_agg
        self.names = names
        self.operator = operator
        #: the columns' dtypes when the stream's type gives them: restored sessions fire even
        #: when no record arrives after the restore
        self.dtypes = dtypes
        self._kernel: Any = None
        self._kmap = _KeySlots()  # key -> key index
        self._head = np.full(0, -1, dtype=np.int64)
        self._kfree: list[int] = []
        self._ktop = 0
        self._nxt = np.zeros(0, dtype=np.int64)
        self._start = np.zeros(0, dtype=np.int64)
        self._end = np.zeros(0, dtype=np.int64)
        self._ski = np.zeros(0, dtype=np.int64)
        self._skey = np.zeros(0, dtype=np.int64)
        self._live = np.zeros(0, dtype=bool)
        self._free = np.zeros(0, dtype=np.int64)
        self._meta = np.zeros(2, dtype=np.int64)  # [free slots on the stack, slots ever used]
        self._accs: list[np.ndarray] = []
        self._restored: list = []

    def _ready(self, dtypes: list) -> None:
        self._kernel = self.agg.session_kernel(self.names, dtypes, self.operator)
        if self._kernel is None:
            raise RuntimeError(f"operator '{self.operator}': numba is not installed")
        _, acc_dtypes, _, _ = self._kernel
        self._accs = [np.zeros(0, dtype=dt) for dt in acc_dtypes]
        self._unlink = _unlink_kernel()
        self._grow_slots(1024)
        restored, self._restored = self._restored, []
        for snap in restored:
            self._load(snap)

    def _grow_slots(self, needed: int) -> None:
        if needed <= len(self._start):
            return
        cap = max(1024, 1 << int(needed - 1).bit_length())
        old = len(self._start)

        def grow(a: np.ndarray, fill: Any = 0) -> np.ndarray:
            g = np.full(cap, fill, dtype=a.dtype)
            g[:old] = a
            return g

        self._nxt = grow(self._nxt, -1)
        self._start, self._end = grow(self._start), grow(self._end)
        self._ski, self._skey = grow(self._ski), grow(self._skey)
        self._live, self._free = grow(self._live, False), grow(self._free)
        self._accs = [grow(a) for a in self._accs]

    def _key_indices(self, keys: np.ndarray) -> np.ndarray:
        kidx = self._kmap.lookup(keys)
        missing = kidx < 0
        if missing.any():
            new_keys, inv = np.unique(keys[missing], return_inverse=True)
            m = len(new_keys)
            take = min(m, len(self._kfree))
            fresh = self._kfree[len(self._kfree) - take :]
            del self._kfree[len(self._kfree) - take :]
            fresh = np.array(fresh + list(range(self._ktop, self._ktop + m - take)), dtype=np.int64)
            self._ktop += m - take
            if self._ktop > len(self._head):
                head = np.full(max(1024, 1 << int(self._ktop - 1).bit_length()), -1, dtype=np.int64)
                head[: len(self._head)] = self._head
                self._head = head
            self._head[fresh] = -1
            self._kmap.assign(new_keys, fresh)
            kidx[missing] = fresh[inv]
        return kidx

    def update(self, keys: np.ndarray, ts: np.ndarray, cols: list[np.ndarray], watermark: int) -> np.ndarray:
        """Adds the records; returns the mask of the late ones (not added)."""
        late = np.zeros(len(keys), dtype=bool)
        if not len(keys):
            return late
        if self._kernel is None:
            self._ready([c.dtype for c in cols])
        self._grow_slots(int(self._meta[1]) + len(keys))
        kidx = self._key_indices(keys)
        loop, _, init, _ = self._kernel
        wm = max(int(watermark), -(1 << 63))
        loop(
            keys, kidx, ts, *cols, self.gap, wm, self._head, self._nxt, self._start, self._end,
            self._ski, self._skey, self._live, self._free, self._meta, late, init, *self._accs,
        )  # fmt: skip
        if late.any():  # a late record of a key without sessions leaves its key index unused
            self._drop_empty_keys(np.unique(keys[late]))
        return late

    def _drop_empty_keys(self, keys: np.ndarray) -> None:
        kidx = self._kmap.lookup(keys)
        empty = (kidx >= 0) & (self._head[np.maximum(kidx, 0)] < 0)
        if empty.any():
            self._kmap.remove(keys[empty])
            self._kfree.extend(kidx[empty].tolist())

    def fire(self, watermark: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
        """(keys, starts, ends, ``get_result`` of each) of the sessions whose end - 1 <= watermark,
        by (end, key); their slots are freed."""
        if self._kernel is None:
            if not (self._restored and self.dtypes):
                return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), []
            self._ready(self.dtypes)
        top = int(self._meta[1])
        due = np.flatnonzero(self._live[:top] & (self._end[:top] - 1 <= watermark))
        if not len(due):
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), []
        due = due[np.lexsort((self._skey[due], self._end[due]))]
        keys, starts, ends = self._skey[due], self._start[due], self._end[due]
        _, acc_dtypes, _, is_tuple = self._kernel
        accs = [a[due] for a in self._accs]
        self._unlink(due, self._ski, self._head, self._nxt, self._live)
        nfree = int(self._meta[0])
        self._free[nfree : nfree + len(due)] = due
        self._meta[0] = nfree + len(due)
        self._drop_empty_keys(np.unique(keys))
        return keys, starts, ends, _jit_results(self.agg, acc_dtypes, is_tuple, accs, self.operator)

    def open_sessions(self) -> int:
        return int(self._live[: int(self._meta[1])].sum()) + sum(len(s["sessions"]) for s in self._restored)

    def snapshot(self) -> dict:
        if self._kernel is None:
            return {"sessions": [x for snap in self._restored for x in snap["sessions"]]}
        _, _, _, is_tuple = self._kernel
        live = np.flatnonzero(self._live[: int(self._meta[1])])
        out = []
        for slot in live.tolist():
            acc = tuple(a[slot].item() for a in self._accs)
            out.append(
                (
                    int(self._skey[slot]),
                    int(self._start[slot]),
                    int(self._end[slot]),
                    acc if is_tuple else acc[0],
                )
            )
        return {"sessions": out}

    def _load(self, snap: dict) -> None:
        sessions = sorted(snap["sessions"], key=lambda x: (x[0], x[1]))
        if not sessions:
            return
        self._grow_slots(int(self._meta[1]) + len(sessions))
        keys = np.array([x[0] for x in sessions], dtype=np.int64)
        kidx = self._key_indices(keys)
        for (key, start, end, acc), k in zip(sessions, kidx.tolist(), strict=True):
            nfree = int(self._meta[0])
            if nfree:
                self._meta[0] = nfree - 1
                s = int(self._free[nfree - 1])
            else:
                s = int(self._meta[1])
                self._meta[1] = s + 1
            self._start[s], self._end[s], self._ski[s], self._skey[s] = start, end, k, key
            self._live[s] = True
            for arr, v in zip(self._accs, acc if isinstance(acc, tuple) else (acc,), strict=True):
                arr[s] = v
            # append at the end of the key's list (sessions come sorted by start)
            c, p = int(self._head[k]), -1
            while c >= 0:
                p, c = c, int(self._nxt[c])
            self._nxt[s] = -1
            if p < 0:
                self._head[k] = s
            else:
                self._nxt[p] = s

    def restore(self, snapshots: list, keep: Callable[[Any], bool] | None = None) -> None:
        for snap in snapshots:
            snap = {"sessions": [x for x in snap["sessions"] if keep is None or keep(x[0])]}
            if self._kernel is None:
                self._restored.append(snap)
            else:
                self._load(snap)


class ColumnarJitSessionOperator(ColumnarJitAggregateOperator):
    """``window(EventTimeSessionWindows.with_gap(...)).aggregate(jit_agg)`` on a typed stream:
    the sessions, ``merge`` and ``add`` compiled over column batches (see
    :class:`JitSessionTable`); outputs are ``get_result(accumulator)`` per session, at its
    ``max_timestamp()``, ordered by (end, key); late records go to the late side output (or are
    dropped) as on the per-record session operator."""

    def __init__(
        self,
        gap: int,
        key_field: Any,
        jit_agg: Any,
        fields: list,
        late_data_tag: str | None = None,
        column_dtypes: dict | None = None,
        name: str = "Window(Aggregate)",
    ) -> None:
        super().__init__(gap, gap, 0, key_field, jit_agg, fields, late_data_tag, column_dtypes, name)
        self.gap = gap

    def _make_table(self) -> Any:
        return JitSessionTable(self.gap, self.jit_agg, tuple(self.fields), self.name, self._dtypes())

    def process_batch(self, values: Any, timestamps: Any) -> None:
        if timestamps is None:
            raise ValueError(
                "Record has no timestamp. Did you forget to call "
                "'data_stream.assign_timestamps_and_watermarks(...)' before an event-time window?"
            )
        ts = to_numpy(timestamps, np.int64)
        keys, cols = self._columns(values)
        keys = keys.astype(np.int64, copy=False)
        late = self._table.update(keys, ts, [cols[c] for c in self._order], self.current_watermark)
        if late.any():
            self._emit_late(values, ts, late)

    def process_watermark(self, watermark: int) -> None:
        if watermark <= self.current_watermark:
            return
        self.current_watermark = watermark
        keys, starts, ends, results = self._table.fire(watermark)
        if len(keys):
            self.output.collect(results, (ends - 1).tolist())
        self.output.emit_watermark(watermark)

    def open_sessions(self) -> int:
        return self._table.open_sessions()
