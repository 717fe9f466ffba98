# cython: language_level=3
"""The floor of decoding a batch of (int, float, str) records: build the same Python objects with no
parsing at all (one new int and float per record, a shared str), as any decoder must. Compiled on the
fly by bench_serde.py with pyximport."""

from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM


cdef extern from "Python.h":
    object PyLong_FromLongLong(long long v)
    object PyFloat_FromDouble(double v)
    void PyObject_GC_UnTrack(object o)


def build(Py_ssize_t n, s):
    out = PyList_New(n)
    cdef Py_ssize_t i
    for i in range(n):
        t = PyTuple_New(3)
        a = PyLong_FromLongLong(i * 7 + 1000)
        Py_INCREF(a)
        PyTuple_SET_ITEM(t, 0, a)
        b = PyFloat_FromDouble(i * 0.5)
        Py_INCREF(b)
        PyTuple_SET_ITEM(t, 1, b)
        Py_INCREF(s)
        PyTuple_SET_ITEM(t, 2, s)
        PyObject_GC_UnTrack(t)
        Py_INCREF(t)
        PyList_SET_ITEM(out, i, t)
    return out
