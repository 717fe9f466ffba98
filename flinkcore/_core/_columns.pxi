# Shared by rows.pyx and sink_loop.pyx (textual ``include``): the columns of a columnar batch as
# C reads them, and one record built from them. A column is a list of Python objects or a 1-d
# numpy array of int64 / float64 / bool (other numeric arrays are read through ``tolist()``).

import numpy as np

cimport cython
cimport numpy as cnp
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
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


@cython.final
cdef class _Columns:
    """Equally long columns, checked once; ``value``/``row`` read row ``i`` in C.

    An int64 column repeats its value across neighbouring rows often (window start and end of
    every result of one window): rows read in order share the one int object, as equal ints may.
    """

    cdef Py_ssize_t width
    cdef Py_ssize_t n
    cdef int kinds[MAX_COLUMNS]
    cdef const char *data[MAX_COLUMNS]
    cdef int64_t prev_int[MAX_COLUMNS]
    cdef Py_ssize_t prev_row[MAX_COLUMNS]
    cdef list columns  # the columns read (lists, and contiguous arrays kept alive)
    cdef PyObject *lists[MAX_COLUMNS]  # borrowed from ``columns``: the list columns
    cdef PyObject *prev_obj[MAX_COLUMNS]  # owned: the int last read from each int64 column

    def __cinit__(self, list columns):
        cdef Py_ssize_t width = len(columns)
        if width > MAX_COLUMNS:
            raise ValueError(f"rows_from_columns takes at most {MAX_COLUMNS} columns, got {width}")
        cdef Py_ssize_t j, length, n = 0
        cdef cnp.ndarray arr
        cdef object c
        self.width = width
        self.columns = list(columns)
        for j in range(width):
            c = self.columns[j]
            self.prev_row[j] = -2
            if type(c) is list:
                self.kinds[j] = K_LIST
                self.data[j] = NULL
                self.lists[j] = <PyObject *>c
                length = PyList_GET_SIZE(c)
            elif isinstance(c, np.ndarray) and c.ndim == 1 and c.dtype.kind in "iufb":
                if c.dtype == np.int64:
                    self.kinds[j] = K_INT64
                elif c.dtype == np.float64:
                    self.kinds[j] = K_FLOAT64
                elif c.dtype == np.bool_:
                    self.kinds[j] = K_BOOL
                else:
                    c = c.tolist()
                    self.kinds[j] = K_LIST
                    self.data[j] = NULL
                if self.kinds[j] != K_LIST:
                    arr = np.ascontiguousarray(c)
                    c = arr
                    self.data[j] = <const char *>cnp.PyArray_DATA(arr)
                else:
                    self.lists[j] = <PyObject *>c  # kept alive by self.columns
                self.columns[j] = c
                length = len(c)
            else:
                raise TypeError(f"column {j} is a {type(c).__name__}, not a list or a 1-d numeric array")
            if j == 0:
                n = length
            elif length != n:
                raise ValueError(f"columns differ in length: {n} and {length}")
        self.n = n

    def __dealloc__(self):
        cdef Py_ssize_t j
        for j in range(self.width):
            Py_XDECREF(self.prev_obj[j])
            self.prev_obj[j] = NULL

    cdef inline object value(self, Py_ssize_t j, Py_ssize_t i):
        """The value of column ``j`` in row ``i`` (a new reference)."""
        cdef int kind = self.kinds[j]
        cdef int64_t x
        cdef object v
        if kind == K_INT64:
            x = (<const int64_t *>self.data[j])[i]
            if self.prev_row[j] == i - 1 and x == self.prev_int[j]:
                v = <object>self.prev_obj[j]
            else:
                v = PyLong_FromLongLong(x)
                self.prev_int[j] = x
                Py_XDECREF(self.prev_obj[j])
                Py_INCREF(v)
                self.prev_obj[j] = <PyObject *>v
            self.prev_row[j] = i
            return v
        if kind == K_FLOAT64:
            return PyFloat_FromDouble((<const double *>self.data[j])[i])
        if kind == K_BOOL:
            return PyBool_FromLong((<const uint8_t *>self.data[j])[i])
        return <object>PyList_GET_ITEM(<object>self.lists[j], i)

    cdef inline object row(self, PyTypeObject *tp, Py_ssize_t i):
        """Row ``i`` as an instance of ``tp`` (a tuple subclass), off the cycle collector when all
        its fields are atomic (CPython's rule for tuples)."""
        cdef Py_ssize_t j, width = self.width
        cdef object row = fc_alloc_row(tp, width)
        cdef object v
        cdef bint atomic = True
        for j in range(width):
            v = self.value(j, i)
            if atomic and self.kinds[j] == K_LIST and not _atomic(v):
                atomic = False
            Py_INCREF(v)
            PyTuple_SET_ITEM(row, j, v)
        if atomic:
            PyObject_GC_UnTrack(<PyObject *>row)
        return row
