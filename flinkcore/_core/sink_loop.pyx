# cython: language_level=3
"""The per-record loop of a sink (``SinkFunction.invoke(value, context)`` for each record).

The user's ``invoke`` is called once per record, through vectorcall; the loop around it is C.
The context's timestamp is set only when it changes: the results of one window firing share
one timestamp, so a firing of 10k results sets it once.

``invoke_columns`` takes a columnar batch's columns as they are: it builds each record (the Row,
tuple or scalar ``record_batch_to_rows`` would give), calls ``invoke`` and drops the record before
building the next, so a batch never becomes a list of records: nothing of the batch is left to
free after the loop. A Row nobody kept (its reference count back to the loop's own, no instance
dict) is refilled with the next row's values instead of being freed and allocated again, as
``zip()`` reuses its result tuple: not observable, the user's function held no reference to it.
"""

include "_columns.pxi"
include "_small_long.pxi"

cdef extern from *:
    """
    /* Store ``v`` in a float only the caller's row holds (refcount 1): no other code can see it. */
    static inline int fc_float_reuse(PyObject *old, double v) {
        if (Py_REFCNT(old) != 1 || !PyFloat_CheckExact(old)) return 0;
        ((PyFloatObject *)old)->ob_fval = v;
        return 1;
    }
    /* Store ``v`` in a one-digit int only the caller's row holds (refcount 1) whose sign and digit
       count ``v`` shares; never a small int (those are shared singletons, and ``v`` must become one
       when it is small). CPython < 3.12 layout only; elsewhere 0 (the caller makes a new int). */
    static inline int fc_long_reuse(PyObject *old, long long v) {
    #if PY_VERSION_HEX < 0x030C0000
        Py_ssize_t size;
        if (Py_REFCNT(old) != 1 || !PyLong_CheckExact(old)) return 0;
        if (v >= -5 && v <= 256) return 0;
        size = Py_SIZE(old);
        if (size == 1 && v > 0 && v < ((long long)1 << PyLong_SHIFT)) {
            ((PyLongObject *)old)->ob_digit[0] = (digit)v;
            return 1;
        }
        if (size == -1 && v < 0 && v > -((long long)1 << PyLong_SHIFT)) {
            ((PyLongObject *)old)->ob_digit[0] = (digit)(-v);
            return 1;
        }
    #else
        (void)old; (void)v;
    #endif
        return 0;
    }
    """
    int fc_small_long(PyObject *v, long long *out) noexcept
    bint fc_float_reuse(PyObject *old, double v) noexcept
    bint fc_long_reuse(PyObject *old, long long v) noexcept

cdef extern from "Python.h":
    Py_ssize_t PY_SSIZE_T_MIN
    PyObject *_list_get "PyList_GET_ITEM"(object lst, Py_ssize_t i)
    Py_ssize_t _list_size "PyList_GET_SIZE"(object lst)
    PyObject *PyObject_Vectorcall(PyObject *callable, PyObject **args, size_t nargsf, PyObject *kwnames)
    int PyObject_SetAttr(PyObject *o, PyObject *name, PyObject *v)
    void Py_DECREF(PyObject *o)
    size_t PY_VECTORCALL_ARGUMENTS_OFFSET
    Py_ssize_t Py_REFCNT(object o)
    PyObject **_PyObject_GetDictPtr(PyObject *o)
    PyObject *PyTuple_GET_ITEM(object t, Py_ssize_t i)
    int PyObject_GC_IsTracked(object o)
    void PyObject_GC_Track(void *o)
    void Py_XDECREF(PyObject *o)

cdef object _CURRENT_KEY = "current_key"
cdef object _TS = "_ts"


cdef class Position:
    """The index of the record being invoked (read when ``invoke`` raised); ``invoke_columns``
    also leaves the failing record in ``record`` (index -1: nothing was invoked yet)."""

    cdef public Py_ssize_t index
    cdef public object record


def invoke_all(Position pos, object invoke, object ctx, list values, list timestamps):
    """``for v, t in zip(values, timestamps): ctx._ts = t; invoke(v, ctx)``."""
    cdef Py_ssize_t i, n = _list_size(values)
    cdef object ts, last = pos  # no timestamp is this object: the first record sets it
    if _list_size(timestamps) != n:
        raise ValueError("timestamps and values of a batch differ in length")
    for i in range(n):
        pos.index = i
        ts = <object>_list_get(timestamps, i)
        if ts is not last:
            ctx._ts = ts
            last = ts
        invoke(<object>_list_get(values, i), ctx)


cdef Py_ssize_t _NO_DICT = PY_SSIZE_T_MIN


cdef inline Py_ssize_t _dict_offset(object row):
    """Where a row's instance dict pointer is, in bytes from the row (the same for every row of
    one type and width; below the row for a managed dict), or _NO_DICT when its type has none."""
    cdef PyObject **dictptr = _PyObject_GetDictPtr(<PyObject *>row)
    if dictptr == NULL:
        return _NO_DICT
    return <char *>dictptr - <char *><PyObject *>row


cdef inline bint _unshared(object row, Py_ssize_t dict_offset):
    """Only the loop holds ``row`` (the user's function kept no reference) and it has no instance
    dict (tuple subclasses take no weak references): refilling it is not observable.
    ``dict_offset``: :func:`_dict_offset` of a row of this type and width."""
    if Py_REFCNT(row) != 1:
        return False
    return dict_offset == _NO_DICT or (<PyObject **>(<char *><PyObject *>row + dict_offset))[0] == NULL


cdef inline void _refill(_Columns cols, object row, Py_ssize_t i):
    """Row ``i`` into an unshared row of the same width: as ``cols.row`` would build it. A number
    the row already holds is kept when it equals the new value, or (only the row holds it) takes
    the new value in place, instead of a new object made and the old one freed."""
    cdef Py_ssize_t j
    cdef object v
    cdef PyObject *old
    cdef int kind
    cdef int64_t x
    cdef long long have
    cdef bint atomic = True
    for j in range(cols.width):
        old = PyTuple_GET_ITEM(row, j)
        kind = cols.kinds[j]
        if kind == K_INT64 and PyLong_CheckExact(<object>old):
            x = (<const int64_t *>cols.data[j])[i]
            if fc_small_long(old, &have) and have == x:
                continue  # the same value: the row keeps its int
            if old == cols.prev_obj[j] and Py_REFCNT(<object>old) == 2:
                # held by the row and the column's last-int cache only: the row takes it over
                cols.prev_obj[j] = NULL
                cols.prev_row[j] = -2
                Py_DECREF(old)
            if fc_long_reuse(old, x):
                continue
        elif kind == K_FLOAT64:
            if fc_float_reuse(old, (<const double *>cols.data[j])[i]):
                continue
        v = cols.value(j, i)
        if atomic and kind == K_LIST and not _atomic(v):
            atomic = False
        Py_INCREF(v)
        PyTuple_SET_ITEM(row, j, v)
        Py_XDECREF(old)
    if atomic:
        if PyObject_GC_IsTracked(row):
            PyObject_GC_UnTrack(<PyObject *>row)
    elif not PyObject_GC_IsTracked(row):
        PyObject_GC_Track(<PyObject *>row)


cdef int _failed(Position pos, object record) except -1:
    """An exception is set (by the user's function): keep the record for the error, re-raise."""
    pos.record = record
    return -1


def invoke_columns(
    Position pos,
    object invoke,
    object ctx,
    object cls,
    list columns,
    object timestamps,
    object key_selector=None,
    object backend=None,
):
    """For each row ``i``: ``ctx._ts = timestamps[i]`` (None for all when ``timestamps`` is None;
    set when it changes), ``backend.current_key = key_selector(record)`` when keyed, then
    ``invoke(record, ctx)``. ``record`` is ``cls(row)`` (``cls`` a tuple subclass) or, with ``cls``
    None, the one column's value. ``timestamps``: None, an int64 numpy array or a list."""
    pos.index = -1
    pos.record = None
    cdef _Columns cols = _Columns(columns)
    cdef Py_ssize_t i, n = cols.n
    cdef bint scalar = cls is None
    if scalar and cols.width != 1:
        raise ValueError(f"scalar records come from one column, not {cols.width}")
    if not scalar and not issubclass(cls, tuple):
        raise TypeError(f"records are tuple subclasses, not {cls!r}")
    cdef PyTypeObject *tp = NULL if scalar else <PyTypeObject *>cls
    cdef bint keyed = key_selector is not None
    if keyed and backend is None:
        raise ValueError("a keyed sink loop needs the state backend")
    # timestamps: from an int64 array (an int object made when the value changes), or objects
    cdef int ts_kind = 0  # 0: None, 1: int64 array, 2: list
    cdef const int64_t *ts_data = NULL
    cdef cnp.ndarray ts_arr
    if timestamps is not None:
        if isinstance(timestamps, np.ndarray) and timestamps.ndim == 1 and timestamps.dtype == np.int64:
            ts_arr = np.ascontiguousarray(timestamps)
            ts_data = <const int64_t *>cnp.PyArray_DATA(ts_arr)
            ts_kind = 1
        else:
            if type(timestamps) is not list:
                timestamps = timestamps.tolist()
            ts_kind = 2
        if len(timestamps) != n:
            raise ValueError("timestamps and values of a batch differ in length")
    else:
        ctx._ts = None
    cdef object ts, last = pos  # no timestamp is this object: the first record sets it
    cdef int64_t ts_prev = 0
    cdef object record = None
    cdef Py_ssize_t dict_offset = _NO_DICT  # set from the first row
    cdef PyObject *res
    cdef PyObject *args[3]
    args[0] = NULL
    args[2] = <PyObject *>ctx
    for i in range(n):
        pos.index = i
        if ts_kind == 1:
            if i == 0 or ts_data[i] != ts_prev:
                ts_prev = ts_data[i]
                ctx._ts = PyLong_FromLongLong(ts_prev)
        elif ts_kind == 2:
            ts = <object>_list_get(timestamps, i)
            if ts is not last:
                ctx._ts = ts
                last = ts
        if scalar:
            record = cols.value(0, i)
        elif record is not None and _unshared(record, dict_offset):
            # the last record is garbage: it becomes this one (as zip() reuses its result tuple)
            _refill(cols, record, i)
        else:
            record = cols.row(tp, i)
            if i == 0:
                dict_offset = _dict_offset(record)
        args[1] = <PyObject *>record
        if keyed:
            res = PyObject_Vectorcall(<PyObject *>key_selector, &args[1], 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
            if res == NULL:
                _failed(pos, record)
            if PyObject_SetAttr(<PyObject *>backend, <PyObject *>_CURRENT_KEY, res) < 0:
                Py_DECREF(res)
                _failed(pos, record)
            Py_DECREF(res)
        res = PyObject_Vectorcall(<PyObject *>invoke, &args[1], 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL)
        if res == NULL:
            _failed(pos, record)
        Py_DECREF(res)
