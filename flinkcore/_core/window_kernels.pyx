# cython: language_level=3
"""Window aggregation kernels: built-in aggregates per (int64 key, window) over column batches.

``WindowAggTable`` covers tumbling (``slide == size``) and sliding windows, ``SessionWindowTable``
session windows; both are C tables (``_native/fc_window``) with no allocation per record.
``WindowAggTable`` keeps each open window as an array indexed by the key while keys are small
non-negative ints (``layout == "dense"``) and moves to an open-addressing hash table on the first
key that is not (``"hash"``); results, their order and snapshots are the same in both. The
operator feeds whole batches (``update``) and asks for finished windows when the watermark moves
(``fire``); the semantics are Flink's WindowOperator with the default event-time trigger:

- window starts: ``TimeWindow.getWindowStartWithOffset`` with floor semantics for negative
  timestamps; a sliding-window record goes to every one of its ``ceil(size / slide)`` windows;
  a session record opens ``[ts, ts + gap)`` and joins every session it intersects (Flink's
  ``TimeWindow.intersects``: touching sessions merge).
- a window fires when ``watermark >= end - 1``; ``fire`` returns each window updated since its last
  firing, ordered by (window end, key). With ``allowed_lateness`` a fired window stays until
  ``end - 1 + allowed_lateness <= watermark`` and a later record re-fires it (Flink's late firing;
  here once per ``fire`` call for all the late records of the batches in between, where Flink emits
  once per late record).
- a record is late (dropped from the table; ``update(..., return_late=True)`` marks it so the
  operator can side-output it) when every one of its windows is past ``end - 1 + allowed_lateness``
  at the watermark passed to ``update``. For sessions that is checked after merging, as Flink does.
- aggregates: sum, count, min, max, mean, first, last of float64 columns. sum and mean propagate
  NaN; min/max follow Java's Math.min/Math.max (NaN wins, -0.0 < 0.0), not numpy's nanmin;
  first/last are by arrival order (across merged sessions too). count is int64, the rest float64.
- window ends saturate at INT64_MAX and starts at INT64_MIN, so windows at the edge of the int64
  range still fire at watermark INT64_MAX (Flink's long arithmetic would wrap there).
"""

import numpy as np

cimport numpy as cnp
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport INT64_MIN, int32_t, int64_t, uint8_t, uint64_t

cnp.import_array()


cdef extern from "fc_window.h":
    int FC_AGG_SUM, FC_AGG_COUNT, FC_AGG_MIN, FC_AGG_MAX, FC_AGG_MEAN, FC_AGG_FIRST, FC_AGG_LAST
    int FC_WIN_MAX_AGGS
    int FC_WIN_OK, FC_WIN_NOMEM, FC_WIN_CORRUPT, FC_WIN_MISMATCH
    ctypedef struct fc_agg:
        int32_t kind
        int32_t column
    ctypedef struct fc_wtable:
        pass
    ctypedef struct fc_stable:
        pass
    int64_t fc_window_start(int64_t ts, int64_t offset, int64_t slide)
    int fc_wtable_init(fc_wtable *t, int64_t size, int64_t slide, int64_t offset, int64_t lateness,
                       const fc_agg *aggs, int32_t n_aggs)
    void fc_wtable_free(fc_wtable *t)
    int64_t fc_wtable_update(fc_wtable *t, const int64_t *keys, const int64_t *ts, const double *const *cols,
                             size_t n, int64_t watermark, uint8_t *late, int64_t *max_ts) nogil
    int64_t fc_wtable_late_mask(const fc_wtable *t, const int64_t *ts, size_t n, int64_t watermark,
                                uint8_t *late) nogil
    int64_t fc_wtable_fire_prepare(fc_wtable *t, int64_t watermark) nogil
    void fc_wtable_fire_emit(fc_wtable *t, int64_t watermark, int64_t *out_keys, int64_t *out_starts,
                             int64_t *out_ends, int64_t *out_max_ts, void *const *out_aggs,
                             uint64_t int_sums) nogil
    size_t fc_wtable_len(const fc_wtable *t)
    int fc_wtable_is_dense(const fc_wtable *t)
    size_t fc_wtable_snapshot_size(const fc_wtable *t)
    void fc_wtable_snapshot(const fc_wtable *t, uint8_t *out)
    int64_t fc_wtable_snapshot_keys(const fc_wtable *t, const uint8_t *buf, size_t len, int64_t *keys)
    int fc_wtable_restore(fc_wtable *t, const uint8_t *buf, size_t len, const uint8_t *keep)
    void fc_wtable_clear(fc_wtable *t)
    int fc_stable_init(fc_stable *t, int64_t gap, int64_t lateness, const fc_agg *aggs, int32_t n_aggs)
    void fc_stable_free(fc_stable *t)
    int64_t fc_stable_update(fc_stable *t, const int64_t *keys, const int64_t *ts, const double *const *cols,
                             size_t n, int64_t watermark, uint8_t *late, int64_t *max_ts) nogil
    int64_t fc_stable_fire_prepare(fc_stable *t, int64_t watermark) nogil
    void fc_stable_fire_emit(fc_stable *t, int64_t watermark, int64_t *out_keys, int64_t *out_starts,
                             int64_t *out_ends, void *const *out_aggs) nogil
    size_t fc_stable_len(const fc_stable *t)
    size_t fc_stable_snapshot_size(const fc_stable *t)
    void fc_stable_snapshot(const fc_stable *t, uint8_t *out)
    int64_t fc_stable_snapshot_keys(const fc_stable *t, const uint8_t *buf, size_t len, int64_t *keys)
    int fc_stable_restore(fc_stable *t, const uint8_t *buf, size_t len, const uint8_t *keep)
    void fc_stable_clear(fc_stable *t)


AGGREGATES = ("sum", "count", "min", "max", "mean", "first", "last")
_KINDS = {
    "sum": FC_AGG_SUM, "count": FC_AGG_COUNT, "min": FC_AGG_MIN, "max": FC_AGG_MAX,
    "mean": FC_AGG_MEAN, "first": FC_AGG_FIRST, "last": FC_AGG_LAST,
}


def parse_aggs(aggs):
    """``[(func, column[, name]), ...]`` -> ``[(func, column, name)]`` with checks and default names."""
    out = []
    for spec in aggs:
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise ValueError(f"an aggregate is (function, column_index[, name]), got {spec!r}")
        func, column = spec[0], spec[1]
        if func not in _KINDS:
            raise ValueError(f"unknown aggregate function {func!r}; one of {', '.join(AGGREGATES)}")
        if column is None and func == "count":
            column = 0
        if not isinstance(column, (int, np.integer)) or column < 0:
            raise ValueError(f"aggregate column must be an index >= 0, got {column!r}")
        name = spec[2] if len(spec) == 3 else f"{func}_{column}"
        out.append((func, int(column), name))
    if len(out) > FC_WIN_MAX_AGGS:
        raise ValueError(f"at most {FC_WIN_MAX_AGGS} aggregates per window table, got {len(out)}")
    names = [n for _, _, n in out]
    if len(set(names)) != len(names) or {"key", "window_start", "window_end"} & set(names):
        raise ValueError(f"aggregate output names must be unique and not key/window_start/window_end: {names}")
    return out


cdef int _fill_aggs(list parsed, fc_agg *out) except -1:
    cdef int i
    for i, (func, column, _) in enumerate(parsed):
        out[i].kind = _KINDS[func]
        out[i].column = column
    return 0


cdef int64_t _wm(object watermark) except? -1:
    return INT64_MIN if watermark is None else <int64_t>watermark


cdef class _Batch:
    """The arrays of one update call, checked and made contiguous, plus C pointers to the columns."""
    cdef object keys_arr, ts_arr
    cdef list cols
    cdef const double **ptrs
    cdef Py_ssize_t n

    def __dealloc__(self):
        if self.ptrs != NULL:
            PyMem_Free(self.ptrs)


cdef _Batch _batch(keys, ts, values, list parsed):
    cdef _Batch b = _Batch.__new__(_Batch)
    b.keys_arr = np.ascontiguousarray(keys, dtype=np.int64)
    b.ts_arr = np.ascontiguousarray(ts, dtype=np.int64)
    b.n = b.keys_arr.shape[0]
    if b.keys_arr.ndim != 1 or b.ts_arr.shape != b.keys_arr.shape:
        raise ValueError(f"keys and ts must be 1-d arrays of one length, got {np.shape(keys)} and {np.shape(ts)}")
    if values is None:
        values = []
    elif isinstance(values, np.ndarray) and values.ndim == 1:
        values = [values]
    needed = max([c for f, c, _ in parsed if f != "count"], default=-1) + 1
    if len(values) < needed:
        raise ValueError(f"aggregates read value column {needed - 1} but update got {len(values)} columns")
    b.cols = []
    cdef Py_ssize_t i
    for i in range(len(values)):
        col = np.ascontiguousarray(values[i], dtype=np.float64)
        if col.shape != (b.n,):
            raise ValueError(f"value column {i} has shape {col.shape}, expected ({b.n},)")
        b.cols.append(col)
    b.ptrs = <const double **>PyMem_Malloc((len(b.cols) + 1) * sizeof(double *))
    if b.ptrs == NULL:
        raise MemoryError()
    cdef cnp.ndarray arr
    for i in range(len(b.cols)):
        arr = b.cols[i]
        b.ptrs[i] = <const double *>cnp.PyArray_DATA(arr)
    return b


cdef object _pool_empty(Py_ssize_t n, object dtype):
    """An uninitialized 8-byte array in a buffer of Arrow's memory pool, which keeps freed pages
    for the next fire; numpy's own allocation (glibc) hands them back to the kernel when they
    top the heap, and every fire then faults in zeroed pages anew (W2 columnar at p2, 100M events:
    ~9k page faults per worker and job in the fire)."""
    import pyarrow as pa

    return np.frombuffer(pa.allocate_buffer(n * 8), dtype=dtype)


cdef int64_t *_int64_column(dict out, str name, Py_ssize_t n) except? NULL:
    """A new int64 column ``out[name]`` of ``n`` values (see :func:`_pool_empty`): where to write them."""
    cdef cnp.ndarray arr = _pool_empty(n, np.int64)
    out[name] = arr
    return <int64_t *>cnp.PyArray_DATA(arr)


cdef dict _empty_result(list parsed, Py_ssize_t n):
    out = {
        "key": _pool_empty(n, np.int64),
        "window_start": _pool_empty(n, np.int64),
        "window_end": _pool_empty(n, np.int64),
    }
    for func, _, name in parsed:
        out[name] = _pool_empty(n, np.int64 if func == "count" else np.float64)
    return out


cdef void **_out_ptrs(dict out, list parsed, void **ptrs):
    cdef cnp.ndarray arr
    cdef int i
    for i, (_, _, name) in enumerate(parsed):
        arr = out[name]
        ptrs[i] = cnp.PyArray_DATA(arr)
    return ptrs


cdef int _enter(bint *busy) except -1:
    if busy[0]:
        raise RuntimeError("a window table is being used by another thread: use one table per thread")
    busy[0] = True
    return 0


cdef int _check_rc(int rc) except -1:
    if rc == FC_WIN_NOMEM:
        raise MemoryError("out of memory in the window table")
    if rc == FC_WIN_CORRUPT:
        raise ValueError("corrupt window table snapshot")
    if rc == FC_WIN_MISMATCH:
        raise ValueError("the snapshot is of a window table with another size/slide/offset/gap, lateness or aggregates")
    return 0


cdef const uint8_t[::1] _bytes_view(data):
    return memoryview(data).cast("B")


cdef class WindowAggTable:
    """Tumbling (slide == size) or sliding windows over int64 keys with built-in aggregates.

    Args:
        size, slide, offset: the window spec in ms (Flink's TumblingEventTimeWindows.of(size, offset),
            SlidingEventTimeWindows.of(size, slide, offset)).
        aggs: ``[(function, column_index[, output_name]), ...]``, function one of AGGREGATES;
            column_index picks the value column of ``update``; default name ``f"{function}_{column}"``.
        allowed_lateness: ms a fired window stays open for late records.
    """

    cdef fc_wtable t
    cdef bint ready
    cdef bint busy  # the C table runs without the GIL: refuse a second thread meanwhile
    cdef readonly list aggs
    cdef readonly int64_t size, slide, offset, allowed_lateness
    #: the largest timestamp of the last ``update``'s batch, late records included (INT64_MIN
    #: for an empty batch): found in the update's own pass, so a bounded-out-of-orderness
    #: watermark generator fed from it needs no pass of its own over the timestamps
    cdef readonly int64_t last_max_ts
    #: how many records of the last ``update``'s batch were late
    cdef readonly int64_t last_late

    def __cinit__(self, int64_t size, int64_t slide, int64_t offset=0, aggs=(), int64_t allowed_lateness=0):
        if size <= 0 or slide <= 0:
            raise ValueError(f"window size and slide must be > 0, got size={size}, slide={slide}")
        if allowed_lateness < 0:
            raise ValueError(f"allowed_lateness must be >= 0, got {allowed_lateness}")
        self.aggs = parse_aggs(aggs)
        self.size, self.slide, self.offset, self.allowed_lateness = size, slide, offset, allowed_lateness
        cdef fc_agg specs[64]
        _fill_aggs(self.aggs, specs)
        _check_rc(fc_wtable_init(&self.t, size, slide, offset, allowed_lateness, specs, len(self.aggs)))
        self.ready = True

    def __dealloc__(self):
        if self.ready:
            fc_wtable_free(&self.t)

    def update(self, keys, ts, values=None, watermark=None, bint return_late=False):
        """Aggregate a batch: ``keys``/``ts`` int64 arrays, ``values`` a list of float64 columns.

        Windows already past cleanup at ``watermark`` are skipped; returns the number of records
        dropped as late, or with ``return_late`` a bool mask of them. Sets ``last_max_ts`` (the
        batch's largest timestamp) and ``last_late`` (its late records).
        """
        cdef _Batch b = _batch(keys, ts, values, self.aggs)
        cdef const int64_t[::1] k = b.keys_arr
        cdef const int64_t[::1] t = b.ts_arr
        cdef int64_t wm = _wm(watermark)
        # every entry of the mask is written by the update
        late = np.empty(b.n, dtype=np.bool_) if return_late else None
        cdef uint8_t[::1] lv
        cdef uint8_t *lp = NULL
        if return_late and b.n:
            lv = late.view(np.uint8)
            lp = &lv[0]
        cdef int64_t n_late = 0
        cdef int64_t hi = INT64_MIN
        self.last_max_ts = INT64_MIN
        self.last_late = 0
        if b.n:
            _enter(&self.busy)
            try:
                with nogil:
                    n_late = fc_wtable_update(&self.t, &k[0], &t[0], b.ptrs, b.n, wm, lp, &hi)
            finally:
                self.busy = False
        if n_late < 0:
            _check_rc(<int>n_late)
        self.last_max_ts = hi
        self.last_late = n_late
        return late if return_late else n_late

    def late_mask(self, ts, int64_t watermark):
        """Bool mask of the records whose every window is past cleanup at ``watermark``."""
        cdef const int64_t[::1] t = np.ascontiguousarray(ts, dtype=np.int64)
        late = np.zeros(t.shape[0], dtype=np.bool_)
        cdef uint8_t[::1] lv = late.view(np.uint8)
        if t.shape[0]:
            with nogil:
                fc_wtable_late_mask(&self.t, &t[0], t.shape[0], watermark, &lv[0])
        return late

    def fire(self, int64_t watermark, *, bint keys=True, bint starts=True, bint ends=True, bint max_ts=False,
             int_sums=()) -> dict:
        """Windows with ``end - 1 <= watermark`` updated since they last fired, by (end, key), as columns.

        ``key``, ``window_start``, ``window_end`` and one column per aggregate (int64 for count,
        float64 otherwise); a caller that does not read some of them leaves them out (``keys``,
        ``starts``, ``ends`` False: not in the dict, not written), ``max_ts`` adds ``max_ts`` (each
        window's end - 1: the timestamp its result carries), and the sum aggregates named in
        ``int_sums`` come out as int64 (the float64 sum truncated, as ``astype(np.int64)``: sums of
        count partials), in the same pass.
        """
        cdef int64_t n
        cdef void *ptrs[64]
        cdef int64_t *kp = NULL
        cdef int64_t *sp = NULL
        cdef int64_t *ep = NULL
        cdef int64_t *mp = NULL
        cdef uint64_t mask = 0
        cdef int i
        cdef cnp.ndarray arr
        if int_sums:
            for i, (func, _, name) in enumerate(self.aggs):
                if name in int_sums:
                    if func != "sum":
                        raise ValueError(f"int_sums names {name!r}, a {func} aggregate: only sums can be")
                    mask |= (<uint64_t>1) << i
        _enter(&self.busy)
        try:
            with nogil:
                n = fc_wtable_fire_prepare(&self.t, watermark)
            if n < 0:
                _check_rc(<int>n)
            out = {}
            if keys:
                kp = _int64_column(out, "key", n)
            if starts:
                sp = _int64_column(out, "window_start", n)
            if ends:
                ep = _int64_column(out, "window_end", n)
            if max_ts:
                mp = _int64_column(out, "max_ts", n)
            for i, (func, _, name) in enumerate(self.aggs):
                arr = out[name] = _pool_empty(
                    n, np.int64 if func == "count" or (mask >> i) & 1 else np.float64
                )
                ptrs[i] = cnp.PyArray_DATA(arr)
            with nogil:
                fc_wtable_fire_emit(&self.t, watermark, kp, sp, ep, mp, ptrs, mask)
        finally:
            self.busy = False
        return out

    def __len__(self) -> int:
        """Windows held (open, or fired and kept for allowed lateness)."""
        return fc_wtable_len(&self.t)

    @property
    def layout(self) -> str:
        """``"dense"`` while every key seen is a small non-negative int (accumulators in arrays
        indexed by key, per open window), ``"hash"`` from the first key that is not (or when a record
        has more than 8 sliding windows). Results, order and snapshot bytes do not depend on it."""
        return "dense" if fc_wtable_is_dense(&self.t) else "hash"

    def snapshot(self) -> bytes:
        """The table's contents as bytes (versioned, little-endian; restored by ``restore``)."""
        cdef uint8_t[::1] v
        _enter(&self.busy)
        try:
            out = bytearray(fc_wtable_snapshot_size(&self.t))
            v = out
            fc_wtable_snapshot(&self.t, &v[0])
        finally:
            self.busy = False
        return bytes(out)

    def restore(self, data, keep_keys=None, bint clear=True) -> None:
        """Load a snapshot; ``keep_keys(keys: int64 array) -> bool mask`` filters windows by key
        (rescaling: keep the key groups this instance owns); ``clear=False`` adds to the contents
        (restoring several snapshots into one table)."""
        cdef const uint8_t[::1] v = _bytes_view(data)
        cdef int64_t n = fc_wtable_snapshot_keys(&self.t, &v[0], v.shape[0], NULL) if v.shape[0] else -2
        _check_rc(<int>min(n, 0))
        keys = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] kv = keys
        cdef const uint8_t *keep = NULL
        cdef const uint8_t[::1] mask
        if keep_keys is not None and n:
            fc_wtable_snapshot_keys(&self.t, &v[0], v.shape[0], &kv[0])
            mask = np.ascontiguousarray(keep_keys(keys), dtype=np.bool_).view(np.uint8)
            if mask.shape[0] != n:
                raise ValueError(f"keep_keys returned {mask.shape[0]} flags for {n} windows")
            keep = &mask[0]
        _enter(&self.busy)
        try:
            if clear:
                fc_wtable_clear(&self.t)
            _check_rc(fc_wtable_restore(&self.t, &v[0], v.shape[0], keep))
        finally:
            self.busy = False


cdef class SessionWindowTable:
    """Session windows (Flink's EventTimeSessionWindows.with_gap) over int64 keys with built-in aggregates.

    Same ``update`` / ``fire`` / ``snapshot`` / ``restore`` / ``len`` contract as WindowAggTable; closed
    sessions are freed when fired (or when their allowed lateness has passed).
    """

    cdef fc_stable t
    cdef bint ready
    cdef bint busy
    cdef readonly list aggs
    cdef readonly int64_t gap, allowed_lateness
    #: as WindowAggTable's
    cdef readonly int64_t last_max_ts, last_late

    def __cinit__(self, int64_t gap, aggs=(), int64_t allowed_lateness=0):
        if gap <= 0:
            raise ValueError(f"session gap must be > 0, got {gap}")
        if allowed_lateness < 0:
            raise ValueError(f"allowed_lateness must be >= 0, got {allowed_lateness}")
        self.aggs = parse_aggs(aggs)
        self.gap, self.allowed_lateness = gap, allowed_lateness
        cdef fc_agg specs[64]
        _fill_aggs(self.aggs, specs)
        _check_rc(fc_stable_init(&self.t, gap, allowed_lateness, specs, len(self.aggs)))
        self.ready = True

    def __dealloc__(self):
        if self.ready:
            fc_stable_free(&self.t)

    def update(self, keys, ts, values=None, watermark=None, bint return_late=False):
        """Aggregate a batch; see WindowAggTable.update."""
        cdef _Batch b = _batch(keys, ts, values, self.aggs)
        cdef const int64_t[::1] k = b.keys_arr
        cdef const int64_t[::1] t = b.ts_arr
        cdef int64_t wm = _wm(watermark)
        # every entry of the mask is written by the update
        late = np.empty(b.n, dtype=np.bool_) if return_late else None
        cdef uint8_t[::1] lv
        cdef uint8_t *lp = NULL
        if return_late and b.n:
            lv = late.view(np.uint8)
            lp = &lv[0]
        cdef int64_t n_late = 0
        cdef int64_t hi = INT64_MIN
        self.last_max_ts = INT64_MIN
        self.last_late = 0
        if b.n:
            _enter(&self.busy)
            try:
                with nogil:
                    n_late = fc_stable_update(&self.t, &k[0], &t[0], b.ptrs, b.n, wm, lp, &hi)
            finally:
                self.busy = False
        if n_late < 0:
            _check_rc(<int>n_late)
        self.last_max_ts = hi
        self.last_late = n_late
        return late if return_late else n_late

    def fire(self, int64_t watermark) -> dict:
        """Sessions with ``end - 1 <= watermark`` updated since they last fired, by (end, key)."""
        cdef int64_t n
        cdef void *ptrs[64]
        cdef cnp.ndarray ka, sa, ea
        _enter(&self.busy)
        try:
            with nogil:
                n = fc_stable_fire_prepare(&self.t, watermark)
            if n < 0:
                _check_rc(<int>n)
            out = _empty_result(self.aggs, n)
            _out_ptrs(out, self.aggs, ptrs)
            ka, sa, ea = out["key"], out["window_start"], out["window_end"]
            with nogil:
                fc_stable_fire_emit(&self.t, watermark, <int64_t *>cnp.PyArray_DATA(ka), <int64_t *>cnp.PyArray_DATA(sa),
                       <int64_t *>cnp.PyArray_DATA(ea), ptrs)
        finally:
            self.busy = False
        return out

    def __len__(self) -> int:
        """Sessions held."""
        return fc_stable_len(&self.t)

    def snapshot(self) -> bytes:
        cdef uint8_t[::1] v
        _enter(&self.busy)
        try:
            out = bytearray(fc_stable_snapshot_size(&self.t))
            v = out
            fc_stable_snapshot(&self.t, &v[0])
        finally:
            self.busy = False
        return bytes(out)

    def restore(self, data, keep_keys=None, bint clear=True) -> None:
        """See WindowAggTable.restore; sessions of one key from several snapshots merge."""
        cdef const uint8_t[::1] v = _bytes_view(data)
        cdef int64_t n = fc_stable_snapshot_keys(&self.t, &v[0], v.shape[0], NULL) if v.shape[0] else -2
        _check_rc(<int>min(n, 0))
        keys = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] kv = keys
        cdef const uint8_t *keep = NULL
        cdef const uint8_t[::1] mask
        if keep_keys is not None and n:
            fc_stable_snapshot_keys(&self.t, &v[0], v.shape[0], &kv[0])
            mask = np.ascontiguousarray(keep_keys(keys), dtype=np.bool_).view(np.uint8)
            if mask.shape[0] != n:
                raise ValueError(f"keep_keys returned {mask.shape[0]} flags for {n} sessions")
            keep = &mask[0]
        _enter(&self.busy)
        try:
            if clear:
                fc_stable_clear(&self.t)
            _check_rc(fc_stable_restore(&self.t, &v[0], v.shape[0], keep))
        finally:
            self.busy = False


def window_start(int64_t ts, int64_t offset, int64_t slide) -> int:
    """Flink's TimeWindow.getWindowStartWithOffset with floor semantics (saturating at INT64_MIN)."""
    if slide <= 0:
        raise ValueError(f"slide must be > 0, got {slide}")
    return fc_window_start(ts, offset, slide)
