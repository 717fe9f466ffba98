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
field stay tracked. The pure-Python twin is ``flinkcore._core._reference.rows``; the column reading
is shared with the sink's loop (``_columns.pxi``), which builds the same records one at a time.
"""

include "_columns.pxi"


def rows_from_columns(type cls, list columns):
    """``[cls(row) for row in zip(*columns)]`` in C; ``cls`` must be tuple or a subclass of it."""
    if not issubclass(cls, tuple):
        raise TypeError(f"rows_from_columns builds tuple subclasses, not {cls!r}")
    cdef _Columns cols = _Columns(columns)
    cdef Py_ssize_t i, n = cols.n
    cdef list out = [None] * n
    cdef PyTypeObject *tp = <PyTypeObject *>cls  # borrowed: cls outlives the loop
    for i in range(n):
        out[i] = cols.row(tp, i)
    return out
