# cython: language_level=3
"""Compiled per-record loops of the window operators' ``udf`` path (Python functions per record).

The user's functions (timestamp assigner, key selector, AggregateFunction.add / reduce) are
still called once per record, through vectorcall; what these loops remove is everything around
those calls: the interpreter's loop, zip tuples, attribute look-ups and the Python-level int
arithmetic of window assignment. State stays in plain Python dicts and lists owned by the
operator (``panes[start][key] -> accumulator`` for tumbling windows; ``single[key] -> [start,
end, accumulator]`` and a bucket wheel for sessions), so snapshots, firing and the general
cases stay in Python.

Each loop handles the common case and *returns the index of the first record it leaves to the
caller* (a record with a non-int timestamp, a late record, a key with several open sessions):
the operator handles that record on its Python path (the twin these loops are tested against)
and calls the loop again from the next one. ``Cursor.position`` is the index of the record
being processed, so a failing user function is reported with its record.
"""

from cpython.object cimport PyObject
from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_Append
from libc.limits cimport LLONG_MIN


cdef extern from "Python.h":
    PyObject *PyDict_GetItemWithError(object d, object key) except? NULL
    PyObject *_list_get "PyList_GET_ITEM"(object lst, Py_ssize_t i)
    Py_ssize_t _list_size "PyList_GET_SIZE"(object lst)
    bint PyLong_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    Py_ssize_t PyTuple_GET_SIZE(object o)
    PyObject *_tuple_get "PyTuple_GET_ITEM"(object tup, Py_ssize_t i)


#: What a window keeps per key: AggregateFunction accumulator, reduced value, list of elements.
KIND_AGGREGATING = 0
KIND_REDUCING = 1
KIND_LIST = 2


cdef class Cursor:
    """Where a loop is in its batch (read by the operator when a user function raised)."""

    cdef public Py_ssize_t position
    #: the key and timestamp of the record a loop stopped at (its key selector and timestamp
    #: assigner already ran: they are not called twice)
    cdef public object key
    cdef public object ts
    #: 0 while the timestamp assigner runs, 1 after (which operator a failure belongs to)
    cdef public int stage
    #: the largest int timestamp the loops of this batch saw (for the watermark generator)
    cdef public long long max_ts

    def __cinit__(self):
        self.reset()

    def reset(self):
        """Forget the last batch (call before a batch's first loop)."""
        self.position = 0
        self.key = None
        self.ts = None
        self.stage = 1
        self.max_ts = LLONG_MIN


cdef inline long long _floor_mod(long long a, long long b):
    cdef long long r = a % b
    if r < 0:
        r += b
    return r


def extract_timestamps(Cursor cur, object extract, list values, object previous, object no_timestamp):
    """``[extract(v, t) for v, t in zip(values, previous)]`` and the largest int among them.

    ``previous`` is the batch's incoming timestamps (a list) or None, in which case every
    record gets ``no_timestamp`` as its previous timestamp. Returns ``(timestamps, max)``;
    ``max`` is None when the batch is empty or a result is not an exact int (the caller then
    computes it the general way).
    """
    cdef Py_ssize_t i, n = _list_size(values)
    cdef list out = [None] * n
    cdef long long m = LLONG_MIN, t
    cdef bint all_int = True
    cdef object r
    if previous is not None and (type(previous) is not list or _list_size(previous) != n):
        previous = list(previous)
        if len(previous) != n:
            raise ValueError("timestamps and values of a batch differ in length")
    for i in range(n):
        cur.position = i
        if previous is None:
            r = extract(<object>_list_get(values, i), no_timestamp)
        else:
            r = extract(<object>_list_get(values, i), <object>_list_get(previous, i))
        out[i] = r
        if all_int:
            if PyLong_CheckExact(r):
                t = r
                if t > m:
                    m = t
            else:
                all_int = False
    if not all_int or n == 0:
        return out, None
    return out, m


def tumbling_batch(
    Cursor cur,
    list values,
    object timestamps,
    object extract,
    object no_timestamp,
    Py_ssize_t first,
    object key_of,
    Py_ssize_t key_index,
    long long size,
    long long offset,
    long long fired_until,
    int kind,
    object create,
    object fn,
    dict windows,
    object open_window,
):
    """Add ``values[first:]`` to their tumbling windows; returns where it stopped (``n`` = all).

    A window ``start`` holds ``windows[start][key]``; a window not there yet is made by
    ``open_window(start)``. It stops at a record whose timestamp is not an int or whose window
    already fired (``start <= fired_until``): late, or a late firing, for the caller to handle
(with the record's key in ``cur.key``).
    ``fn`` is ``add(value, acc)`` (aggregating, ``create()`` makes a new accumulator) or
    ``reduce(acc, value)`` (reducing); for lists it is unused. ``key_index`` >= 0 says the key
    selector is exactly ``lambda v: v[key_index]``: on a tuple that is one C subscript (the same
    result, and a tuple subscript runs no user code); -1 calls ``key_of``.

    With ``extract`` (a TimestampAssigner's ``extract_timestamp``) the loop is fused with the
    timestamp assigner: each record's timestamp is ``extract(value, previous)`` where previous
    is ``timestamps[i]``, or ``no_timestamp`` when ``timestamps`` is None.
    """
    cdef Py_ssize_t i, n = _list_size(values)
    cdef long long ts, start, lo = 1, hi = 0  # [lo, hi): the current window (empty at first)
    cdef object value, key, tso, acc, panes = None
    cdef PyObject *found
    cdef long long max_ts = cur.max_ts
    if timestamps is not None and _list_size(timestamps) != n:
        raise ValueError("timestamps and values of a batch differ in length")
    for i in range(first, n):
        cur.position = i
        value = <object>_list_get(values, i)
        if extract is None:
            tso = <object>_list_get(timestamps, i)
        else:  # fused with the timestamp assigner: timestamps are the incoming ones, or None
            cur.stage = 0
            if timestamps is None:
                tso = extract(value, no_timestamp)
            else:
                tso = extract(value, <object>_list_get(timestamps, i))
            cur.stage = 1
        if key_index >= 0 and PyTuple_CheckExact(value) and key_index < PyTuple_GET_SIZE(value):
            key = <object>_tuple_get(value, key_index)  # key_of is exactly ``lambda v: v[key_index]``
        else:
            key = key_of(value)
        if not PyLong_CheckExact(tso):
            cur.key = key
            cur.ts = tso
            cur.max_ts = max_ts
            return i
        ts = tso
        if ts > max_ts:
            max_ts = ts
        if not (lo <= ts < hi):
            start = ts - _floor_mod(ts - offset, size)
            if start <= fired_until:
                cur.key = key
                cur.ts = tso
                cur.max_ts = max_ts
                return i
            found = PyDict_GetItemWithError(windows, start)
            if found == NULL:
                panes = open_window(start)
            else:
                panes = <object>found
            lo = start
            hi = start + size
        found = PyDict_GetItemWithError(panes, key)
        if kind == 0:
            if found == NULL:
                acc = create()
            else:
                acc = <object>found
            PyDict_SetItem(panes, key, fn(value, acc))
        elif kind == 1:
            if found == NULL:
                PyDict_SetItem(panes, key, value)
            else:
                acc = <object>found
                PyDict_SetItem(panes, key, fn(acc, value))
        elif found == NULL:
            PyDict_SetItem(panes, key, [value])
        else:
            PyList_Append(<object>found, value)
    cur.position = n
    cur.max_ts = max_ts
    return n


def session_batch(
    Cursor cur,
    list values,
    object timestamps,
    object extract,
    object no_timestamp,
    Py_ssize_t first,
    object key_of,
    Py_ssize_t key_index,
    long long gap,
    long long watermark,
    int kind,
    object create,
    object fn,
    dict single,
    dict multi,
    dict wheel,
):
    """Add ``values[first:]`` to event-time sessions; returns where it stopped (``n`` = all).

    Handles a record whose key has at most one open session (``single[key] = [start, end,
    acc]``) that the record's window ``[ts, ts + gap)`` overlaps or touches (the session grows),
    or a key with no session and a window not late (a new session, entered in the bucket
    ``(end - 1) // gap`` of ``wheel``). It stops at anything else — a key with several sessions
    (in ``multi``), a window that would not merge with the key's session, a late window, a
    non-int timestamp — and leaves that record's key and timestamp in ``cur`` for the caller.
    ``extract``, ``no_timestamp`` and ``key_index`` as for :func:`tumbling_batch`.
    """
    cdef Py_ssize_t i, n = _list_size(values)
    cdef long long ts, end, lo, hi, bucket
    cdef object value, key, tso, s, acc, entries
    cdef PyObject *found
    cdef long long max_ts = cur.max_ts
    if timestamps is not None and _list_size(timestamps) != n:
        raise ValueError("timestamps and values of a batch differ in length")
    for i in range(first, n):
        cur.position = i
        value = <object>_list_get(values, i)
        if extract is None:
            tso = <object>_list_get(timestamps, i)
        else:  # fused with the timestamp assigner: timestamps are the incoming ones, or None
            cur.stage = 0
            if timestamps is None:
                tso = extract(value, no_timestamp)
            else:
                tso = extract(value, <object>_list_get(timestamps, i))
            cur.stage = 1
        if key_index >= 0 and PyTuple_CheckExact(value) and key_index < PyTuple_GET_SIZE(value):
            key = <object>_tuple_get(value, key_index)  # key_of is exactly ``lambda v: v[key_index]``
        else:
            key = key_of(value)
        if not PyLong_CheckExact(tso):
            cur.key = key
            cur.ts = tso
            cur.max_ts = max_ts
            return i
        ts = tso
        if ts > max_ts:
            max_ts = ts
        end = ts + gap
        found = PyDict_GetItemWithError(single, key)
        if found != NULL:
            s = <object>found
            lo = (<list>s)[0]
            hi = (<list>s)[1]
            if lo <= end and hi >= ts:  # overlaps or touches: the session grows
                if ts < lo:
                    (<list>s)[0] = tso
                if end > hi:
                    (<list>s)[1] = end
                acc = (<list>s)[2]
                if kind == 0:
                    (<list>s)[2] = fn(value, acc)
                elif kind == 1:
                    (<list>s)[2] = fn(acc, value)
                else:
                    PyList_Append(acc, value)
                continue
            cur.key = key
            cur.ts = tso
            cur.max_ts = max_ts
            return i
        if PyDict_GetItemWithError(multi, key) != NULL or end - 1 <= watermark:
            cur.key = key
            cur.ts = tso
            cur.max_ts = max_ts
            return i
        if kind == 0:
            acc = fn(value, create())
        elif kind == 1:
            acc = value
        else:
            acc = [value]
        s = [tso, end, acc]
        PyDict_SetItem(single, key, s)
        bucket = (end - 1) // gap if end - 1 >= 0 else -((-(end - 1) + gap - 1) // gap)
        found = PyDict_GetItemWithError(wheel, bucket)
        if found == NULL:
            PyDict_SetItem(wheel, bucket, [(key, s)])
        else:
            PyList_Append(<object>found, (key, s))
    cur.position = n
    cur.max_ts = max_ts
    return n
