# cython: language_level=3
"""Records from columns, built in C: the boundary where a columnar batch meets per-record code.

``rows_from_columns(cls, columns)`` makes one ``cls`` instance (a tuple subclass such as a
``row_class`` Row) per row of equally long columns, with no Python-level call per row. A column is
a list of Python objects or a 1-d numpy array of int64 / float64 / bool, read straight from its
buffer (the ints, floats and bools ``tolist()`` would give, without the intermediate list; equal
neighbouring ints of a column share one object).

A row whose fields are all atomic values (int, float, str, bytes, bool, None) cannot be part of a
reference cycle through its fields, so it is taken off the cycle collector's lists, as CPython does
for exact tuples of atomics on their first collection: building half a million window results then
triggers no repeated full collections over them (measured 4x on 632k rows). Rows with any other
field stay tracked. The pure-Python twin is ``flinkcore._core._reference.rows``.
"""

import numpy as np

cimport numpy as cnp
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_SET_ITEM
from libc.stdint cimport int64_t, uint8_t

cnp.import_array()

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(void *op)
    bint PyLong_CheckExact(object o)
    bint PyFloat_CheckExact(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyBytes_CheckExact(object o)
    bint PyBool_Check(object o)
    object PyLong_FromLongLong(long long v)
    object PyFloat_FromDouble(double v)
    object PyBool_FromLong(long v)

cdef extern from *:
    """
    static PyObject *fc_alloc_row(PyTypeObject *tp, Py_ssize_t n) { return tp->tp_alloc(tp, n); }
    """
    object fc_alloc_row(PyTypeObject *tp, Py_ssize_t n)

DEF MAX_COLUMNS = 256

cdef enum:
    K_LIST = 0
    K_INT64 = 1
    K_FLOAT64 = 2
    K_BOOL = 3


cdef inline bint _atomic(object v):
    return (
        PyLong_CheckExact(v)
        or PyFloat_CheckExact(v)
        or PyUnicode_CheckExact(v)
        or PyBytes_CheckExact(v)
        or PyBool_Check(v)
        or v is None
    )


def rows_from_columns(type cls, list columns):
    """``[cls(row) for row in zip(*columns)]`` in C; ``cls`` must be tuple or a subclass of it."""
    if not issubclass(cls, tuple):
        raise TypeError(f"rows_from_columns builds tuple subclasses, not {cls!r}")
    cdef Py_ssize_t width = len(columns)
    if width > MAX_COLUMNS:
        raise ValueError(f"rows_from_columns takes at most {MAX_COLUMNS} columns, got {width}")
    cdef Py_ssize_t n = 0
    cdef Py_ssize_t i, j, length
    cdef int kinds[MAX_COLUMNS]
    cdef const char *data[MAX_COLUMNS]
    cdef list keep = []  # the (contiguous) arrays read, alive until the end
    cdef cnp.ndarray arr
    cdef object c
    for j in range(width):
        c = columns[j]
        if type(c) is list:
            kinds[j] = K_LIST
            data[j] = NULL
            length = PyList_GET_SIZE(c)
        elif isinstance(c, np.ndarray) and c.ndim == 1 and c.dtype.kind in "ifb":
            if c.dtype == np.int64:
                kinds[j] = K_INT64
            elif c.dtype == np.float64:
                kinds[j] = K_FLOAT64
            elif c.dtype == np.bool_:
                kinds[j] = K_BOOL
            else:
                c = c.tolist()
                columns = list(columns)
                columns[j] = c
                kinds[j] = K_LIST
            if kinds[j] != K_LIST:
                arr = np.ascontiguousarray(c)
                keep.append(arr)
                data[j] = <const char *>cnp.PyArray_DATA(arr)
            length = len(c)
        else:
            raise TypeError(f"column {j} is a {type(c).__name__}, not a list or a 1-d numeric array")
        if j == 0:
            n = length
        elif length != n:
            raise ValueError(f"columns differ in length: {n} and {length}")
    cdef list out = [None] * n
    cdef object row, v
    cdef bint atomic
    cdef int64_t x
    # an int64 column repeats its value across neighbouring rows often (window start and end of
    # every result of one window): such rows share the one int object, as equal ints may
    cdef int64_t prev_int[MAX_COLUMNS]
    cdef list prev_obj = [None] * width
    cdef PyTypeObject *tp = <PyTypeObject *>cls  # borrowed: cls outlives the loop
    for i in range(n):
        row = fc_alloc_row(tp, width)
        atomic = True
        for j in range(width):
            if kinds[j] == K_INT64:
                x = (<const int64_t *>data[j])[i]
                if i and x == prev_int[j]:
                    v = prev_obj[j]
                else:
                    v = PyLong_FromLongLong(x)
                    prev_int[j] = x
                    prev_obj[j] = v
            elif kinds[j] == K_FLOAT64:
                v = PyFloat_FromDouble((<const double *>data[j])[i])
            elif kinds[j] == K_BOOL:
                v = PyBool_FromLong((<const uint8_t *>data[j])[i])
            else:
                v = <object>PyList_GET_ITEM(columns[j], i)
                if atomic and not _atomic(v):
                    atomic = False
            Py_INCREF(v)
            PyTuple_SET_ITEM(row, j, v)
        if atomic:
            PyObject_GC_UnTrack(<PyObject *>row)
        out[i] = row
    return out
