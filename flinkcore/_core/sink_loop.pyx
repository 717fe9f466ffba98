# cython: language_level=3
"""The per-record loop of a sink (``SinkFunction.invoke(value, context)`` for each record).

The user's ``invoke`` is called once per record, through vectorcall; the loop around it is C.
The context's timestamp is set only when it changes: the results of one window firing share
one timestamp object, so a firing of 10k results sets it once.
"""

from cpython.object cimport PyObject


cdef extern from "Python.h":
    PyObject *_list_get "PyList_GET_ITEM"(object lst, Py_ssize_t i)
    Py_ssize_t _list_size "PyList_GET_SIZE"(object lst)


cdef class Position:
    """The index of the record being invoked (read when ``invoke`` raised)."""

    cdef public Py_ssize_t index


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
