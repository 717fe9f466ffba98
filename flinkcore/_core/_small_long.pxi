# Shared by serde.pyx and partitioner.pyx (textual ``include``, before the C code that calls it):
# the value of a small int read from the object itself, by whichever CPython layout is compiled.

cdef extern from *:
    """
    #if PY_VERSION_HEX < 0x030B0000
    #include "longintrepr.h"
    #endif

    /* The value of an int that fits one digit (|v| < 2**30), without a call; 0 when it does not. */
    static inline int fc_small_long(PyObject *v, long long *out) {
    #if PY_VERSION_HEX >= 0x030C0000
        if (!PyUnstable_Long_IsCompact((PyLongObject *)v)) return 0;
        *out = (long long)PyUnstable_Long_CompactValue((PyLongObject *)v);
        return 1;
    #else
        Py_ssize_t size = Py_SIZE(v);
        if (size < -1 || size > 1) return 0;
        *out = size * (long long)((PyLongObject *)v)->ob_digit[0];
        return 1;
    #endif
    }
    """
