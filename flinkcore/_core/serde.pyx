# cython: language_level=3
"""flinkcore's compact binary record format: what crosses process boundaries, state and checkpoints.

``dumps``/``loads`` encode one value, ``dumps_batch``/``loads_batch`` a list of values into one
buffer, and ``encode_key`` gives the deterministic bytes of a key (equal keys, equal bytes), which
state backends use as the lookup key. The byte layout is fixed by the tags in ``_native/fc_serde.h``
and starts with a version byte: ``VERSION`` (1) for a single value or key, ``BATCH_VERSION`` (2) for a
batch; the pure-Python twin in ``flinkcore._core._reference.serde`` writes the same bytes.

A batch of plain tuples that share one column layout (each position always an int64, a float, a str
or a bytes: the usual stream record) is written as a row block: the column tags once, then only the
payloads, so decoding runs one tight loop with no per-value dispatch. Any other batch is written
value by value. Batches from before the row block (version 1) are still read. Batch decoding shares
repeated short ASCII strs through a process-wide cache (see ``_str_cache``): records get equal, not
necessarily distinct, str objects, as with any immutable value.

Natively encoded (exact types only, so a value decodes to the same type): None, bool, int (int64 as a
zigzag varint, larger ints as magnitude bytes), float (IEEE bits, NaN payload kept), str, bytes, tuple,
list, dict, the registered Row type (field names kept), Decimal, datetime/date/time with no tzinfo or a
fixed-offset ``datetime.timezone``, and timedelta. Anything else (subclasses included, such as numpy
scalars or pandas Timestamps) is pickled (protocol 5) under its own tag; ``loads(..., allow_pickle=False)``
refuses such values, for input that is not trusted.

Decoding never trusts a length: every count and size is checked against the bytes that remain, nesting
is limited to ``MAX_DEPTH``, and any malformed input raises ``SerdeError`` (a ValueError) naming the
offset and the problem.

``encode_key`` canonicalises numbers the way Python equality does, so ``1``, ``True``, ``1.0``,
``numpy.int64(1)`` and ``Decimal(1)`` give the same bytes (those of the int 1); ``-0.0`` encodes as
``0``; every NaN encodes alike (NaN keys group together, although ``nan != nan``); aware datetimes are
converted to UTC (equal instants, equal bytes); any tuple subclass (a Row, a namedtuple) encodes as the
plain tuple of its values (a Row equals that tuple); int/str/bytes subclasses (enums, numpy strings) as
their base value. Types that are not valid keys (dict, set, arbitrary objects) raise TypeError: pickle is
not deterministic, so it is never used for keys. ``loads(encode_key(k))`` returns the canonical form.
"""

import datetime as _dt
import math
import pickle
from decimal import Decimal, InvalidOperation

import numpy as np

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from libc.math cimport floor, isfinite, isnan
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    object PyLong_FromLongLong(long long v)
    object PyFloat_FromDouble(double v)
    double PyFloat_AS_DOUBLE(object o)
    Py_ssize_t PyTuple_GET_SIZE(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    void *PyTuple_GET_ITEM(object o, Py_ssize_t i)
    void *PyList_GET_ITEM(object o, Py_ssize_t i)
    void *PyUnicode_DATA(object o)
    bint PyUnicode_IS_ASCII(object o)
    void PyObject_GC_UnTrack(object o)
    bint PyObject_GC_IsTracked(object o)
    char *PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)


cdef extern from "fc_serde.h":
    int FC_SERDE_VERSION
    int FC_SERDE_BATCH_VERSION
    enum:
        FC_ROWS_MAX_ARITY
        FC_BATCH_VALUES
        FC_BATCH_ROWS
    int FC_OK, FC_TRUNCATED, FC_BAD_VARINT
    enum:
        FC_TAG_NONE
        FC_TAG_FALSE
        FC_TAG_TRUE
        FC_TAG_INT
        FC_TAG_BIGINT
        FC_TAG_FLOAT
        FC_TAG_STR
        FC_TAG_BYTES
        FC_TAG_TUPLE
        FC_TAG_LIST
        FC_TAG_DICT
        FC_TAG_ROW
        FC_TAG_DECIMAL
        FC_TAG_DATETIME
        FC_TAG_DATE
        FC_TAG_TIME
        FC_TAG_PICKLE
        FC_TAG_STR_SURROGATES
        FC_TAG_TIMEDELTA
    enum:
        FC_TZ_NONE
        FC_TZ_OFFSET
    ctypedef struct fc_buf:
        uint8_t *data
        size_t len
        size_t cap
    int fc_buf_init(fc_buf *b, size_t cap)
    void fc_buf_free(fc_buf *b)
    uint64_t fc_zigzag(int64_t v)
    int64_t fc_unzigzag(uint64_t u)
    int fc_put_u8(fc_buf *b, uint8_t v)
    int fc_put_varint(fc_buf *b, uint64_t v)
    int fc_put_tag_varint(fc_buf *b, uint8_t tag, uint64_t v)
    int fc_put_tag_f64(fc_buf *b, uint8_t tag, double v)
    int fc_put_f64(fc_buf *b, double v)
    int fc_put_span(fc_buf *b, const void *src, size_t n)
    int fc_put_bytes(fc_buf *b, const void *src, size_t n)
    int fc_put_tagged_span(fc_buf *b, uint8_t tag, const void *src, size_t n)
    ctypedef struct fc_reader:
        const uint8_t *p
        const uint8_t *end
    size_t fc_remaining(const fc_reader *r)
    int fc_get_u8(fc_reader *r, uint8_t *out)
    int fc_get_varint(fc_reader *r, uint64_t *out)
    int fc_get_f64(fc_reader *r, double *out)
    int fc_get_span(fc_reader *r, const uint8_t **start, size_t *n)


VERSION = FC_SERDE_VERSION
BATCH_VERSION = FC_SERDE_BATCH_VERSION
MAX_DEPTH = 256
DEF C_MAX_DEPTH = 256


class SerdeError(ValueError):
    """Bytes that are not a valid flinkcore-serialized value (truncated, corrupt or a newer version)."""


cdef object _row_cls = None
cdef object _row_make = None
cdef object _row_fields = None
cdef object _row_values = None
cdef object _row_kind = None

_Decimal = Decimal
_datetime = _dt.datetime
_date = _dt.date
_time = _dt.time
_timedelta = _dt.timedelta
_timezone = _dt.timezone
_UTC = _dt.timezone.utc


def _default_fields(row):
    return getattr(row, "_fields", None)


def _default_kind(row):
    kind = getattr(row, "_row_kind", None)
    return 0 if kind is None else int(getattr(kind, "value", kind))


def register_row_type(cls, make, fields=None, values=None, kind=None) -> None:
    """Make ``cls`` (flinkcore.common's Row) and its subclasses natively encoded, with field names.

    Args:
        cls: the row class; instances of it and of its subclasses are encoded as rows.
        make: ``make(names, values, kind)`` builds a row from a tuple of field names (or None), a
            tuple of values and the row kind (an int, 0 = INSERT); called by ``loads``.
        fields: ``fields(row)`` returns the row's field names or None; default ``row._fields``.
        values: ``values(row)`` returns the row's values as a sequence; default ``tuple(row)``.
        kind: ``kind(row)`` returns the row kind as an int in [0, 15]; default
            ``row._row_kind.value`` (0 when absent).

    _core cannot import flinkcore.common (layers point down), so the Row type registers itself here.
    Only one row type exists per process; registering again replaces it. ``cls=None`` unregisters.
    """
    global _row_cls, _row_make, _row_fields, _row_values, _row_kind
    if cls is not None and not callable(make):
        raise TypeError("register_row_type needs make(names, values, kind) -> row")
    _row_cls = cls
    _row_make = make
    _row_fields = fields if fields is not None else _default_fields
    _row_values = values if values is not None else tuple
    _row_kind = kind if kind is not None else _default_kind


cdef inline int _oom() except -1:
    raise MemoryError("out of memory while serializing")


# --------------------------------------------------------------------------------------------- encode

cdef int _enc_int(fc_buf *b, object v) except -1:
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow == 0:
        if fc_put_tag_varint(b, FC_TAG_INT, fc_zigzag(x)):
            _oom()
        return 0
    mag = -v if v < 0 else v
    cdef bytes raw = (<object>mag).to_bytes(((<object>mag).bit_length() + 7) // 8, "little")
    if fc_put_u8(b, FC_TAG_BIGINT) or fc_put_u8(b, 1 if v < 0 else 0):
        _oom()
    if fc_put_varint(b, len(raw)) or fc_put_bytes(b, <const char *>raw, len(raw)):
        _oom()
    return 0


cdef int _enc_str(fc_buf *b, object s) except -1:
    cdef Py_ssize_t n
    cdef const char *p
    try:
        p = PyUnicode_AsUTF8AndSize(s, &n)
    except UnicodeEncodeError:
        raw = (<str>s).encode("utf-8", "surrogatepass")
        if fc_put_tagged_span(b, FC_TAG_STR_SURROGATES, <const char *>raw, len(raw)):
            _oom()
        return 0
    if fc_put_tagged_span(b, FC_TAG_STR, p, n):
        _oom()
    return 0


cdef int _enc_tz(fc_buf *b, object tz) except -1:
    if tz is None:
        if fc_put_u8(b, FC_TZ_NONE):
            _oom()
        return 0
    off = tz.utcoffset(None)
    cdef int64_t micros = (off.days * 86400 + off.seconds) * 1000000 + off.microseconds
    if fc_put_u8(b, FC_TZ_OFFSET) or fc_put_varint(b, fc_zigzag(micros)):
        _oom()
    return 0


cdef bint _is_plain_offset(object tz):
    """A tzinfo that encodes exactly as its offset: None or an unnamed datetime.timezone."""
    if tz is None:
        return True
    if type(tz) is not _timezone:
        return False
    off = tz.utcoffset(None)
    return tz.tzname(None) == _timezone(off).tzname(None)


cdef int _enc_datetime_fields(fc_buf *b, object d, bint with_date, bint with_time, int fold) except -1:
    if with_date:
        if fc_put_varint(b, fc_zigzag(d.year)) or fc_put_u8(b, d.month) or fc_put_u8(b, d.day):
            _oom()
    if with_time:
        if fc_put_u8(b, d.hour) or fc_put_u8(b, d.minute) or fc_put_u8(b, d.second):
            _oom()
        if fc_put_varint(b, d.microsecond) or fc_put_u8(b, fold):
            _oom()
    return 0


cdef int _enc_seq(fc_buf *b, uint8_t tag, object seq, Py_ssize_t n, bint is_tuple, int depth,
                  bint key) except -1:
    cdef Py_ssize_t i
    if fc_put_tag_varint(b, tag, n):
        _oom()
    if is_tuple:
        for i in range(n):
            _enc(b, <object>PyTuple_GET_ITEM(seq, i), depth + 1, key)
    else:
        for i in range(n):
            if i >= PyList_GET_SIZE(seq):
                raise RuntimeError("list changed size during serialization")
            _enc(b, <object>PyList_GET_ITEM(seq, i), depth + 1, key)
    return 0


cdef int _enc_pickle(fc_buf *b, object obj) except -1:
    try:
        raw = pickle.dumps(obj, protocol=5)
    except Exception as e:
        t = type(obj)
        raise TypeError(
            f"cannot serialize a value of type {t.__module__}.{t.__qualname__}: it has no native encoding "
            f"and pickle failed ({e})"
        ) from e
    if fc_put_tagged_span(b, FC_TAG_PICKLE, <const char *>raw, len(raw)):
        _oom()
    return 0


cdef int _enc_float_key(fc_buf *b, double v) except -1:
    if isfinite(v) and v == floor(v):
        return _enc_int(b, int(v))
    if isnan(v):
        v = math.nan  # one canonical NaN for every NaN payload
    if fc_put_tag_f64(b, FC_TAG_FLOAT, v):
        _oom()
    return 0


cdef int _enc_key_other(fc_buf *b, object obj, int depth) except -1:
    """encode_key for what is not an exact native type: canonicalise to the equal native value."""
    if isinstance(obj, tuple):
        return _enc(b, tuple(obj), depth, True)
    if isinstance(obj, (int, np.integer, np.bool_)):
        return _enc_int(b, int(obj))
    if isinstance(obj, (float, np.floating)):
        return _enc_float_key(b, float(obj))
    if isinstance(obj, str):
        return _enc_str(b, str(obj))
    if isinstance(obj, bytes):
        return _enc(b, bytes(obj), depth, True)
    if isinstance(obj, list):
        return _enc(b, list(obj), depth, True)
    t = type(obj)
    raise TypeError(
        f"cannot use a value of type {t.__module__}.{t.__qualname__} as a key: keys must be None, bool, int, "
        "float, str, bytes, Decimal, date/time/datetime/timedelta or a tuple/list/Row of those"
    )


def _strip_trailing_zeros(d):
    """Decimal('1.50') -> Decimal('1.5') exactly (Decimal.normalize would round to the context precision)."""
    sign, digits, exp = d.as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[len(digits) - 1] == 0:
        digits.pop()
        exp += 1
    return Decimal((sign, tuple(digits), exp))


cdef int _enc_decimal(fc_buf *b, object d, bint key) except -1:
    if key and d.is_finite():
        if d == d.to_integral_value():
            return _enc_int(b, int(d))
        f = float(d)
        if Decimal(f) == d:
            return _enc_float_key(b, f)
        d = _strip_trailing_zeros(d)
    if key and d.is_nan():
        return _enc_float_key(b, math.nan)
    if key and d.is_infinite():
        return _enc_float_key(b, float(d))
    raw = str(d).encode("ascii")
    if fc_put_tagged_span(b, FC_TAG_DECIMAL, <const char *>raw, len(raw)):
        _oom()
    return 0


cdef int _enc(fc_buf *b, object obj, int depth, bint key) except -1:
    cdef type t = type(obj)
    cdef Py_ssize_t n
    if depth > C_MAX_DEPTH:
        raise ValueError(f"value nested deeper than {C_MAX_DEPTH} levels (or recursive) cannot be serialized")
    if t is int:
        return _enc_int(b, obj)
    if t is float:
        if key:
            return _enc_float_key(b, PyFloat_AS_DOUBLE(obj))
        if fc_put_tag_f64(b, FC_TAG_FLOAT, PyFloat_AS_DOUBLE(obj)):
            _oom()
        return 0
    if t is str:
        return _enc_str(b, obj)
    if t is tuple:
        return _enc_seq(b, FC_TAG_TUPLE, obj, PyTuple_GET_SIZE(obj), True, depth, key)
    if obj is None:
        if fc_put_u8(b, FC_TAG_NONE):
            _oom()
        return 0
    if t is bool:
        if key:
            return _enc_int(b, 1 if obj else 0)
        if fc_put_u8(b, FC_TAG_TRUE if obj else FC_TAG_FALSE):
            _oom()
        return 0
    if t is bytes:
        if fc_put_tagged_span(b, FC_TAG_BYTES, <const char *>(<bytes>obj), len(<bytes>obj)):
            _oom()
        return 0
    if t is list:
        return _enc_seq(b, FC_TAG_LIST, obj, PyList_GET_SIZE(obj), False, depth, key)
    if t is dict and not key:
        if fc_put_tag_varint(b, FC_TAG_DICT, len(<dict>obj)):
            _oom()
        for k, v in (<dict>obj).items():
            _enc(b, k, depth + 1, False)
            _enc(b, v, depth + 1, False)
        return 0
    if _row_cls is not None and not key and (t is _row_cls or isinstance(obj, _row_cls)):
        return _enc_row(b, obj, depth)
    if t is _Decimal:
        return _enc_decimal(b, obj, key)
    if t is _datetime:
        return _enc_datetime(b, obj, key)
    if t is _date:
        if fc_put_u8(b, FC_TAG_DATE):
            _oom()
        return _enc_datetime_fields(b, obj, True, False, 0)
    if t is _time:
        if obj.tzinfo is not None and key:
            raise TypeError("a time with a tzinfo cannot be a key (its equality depends on a date); "
                            "use a datetime")
        if not _is_plain_offset(obj.tzinfo):
            return _enc_pickle(b, obj)
        if fc_put_u8(b, FC_TAG_TIME):
            _oom()
        _enc_datetime_fields(b, obj, False, True, 0 if key else obj.fold)
        return _enc_tz(b, obj.tzinfo)
    if t is _timedelta:
        if fc_put_tag_varint(b, FC_TAG_TIMEDELTA, fc_zigzag(obj.days)):
            _oom()
        if fc_put_varint(b, obj.seconds) or fc_put_varint(b, obj.microseconds):
            _oom()
        return 0
    if key:
        return _enc_key_other(b, obj, depth)
    return _enc_pickle(b, obj)


cdef int _enc_datetime(fc_buf *b, object d, bint key) except -1:
    tz = d.tzinfo
    if key:
        if tz is not None and d.utcoffset() is not None:
            d = (d - d.utcoffset()).replace(tzinfo=_UTC)
        elif tz is not None:
            d = d.replace(tzinfo=None)
        tz = d.tzinfo
    elif not _is_plain_offset(tz):
        return _enc_pickle(b, d)
    if fc_put_u8(b, FC_TAG_DATETIME):
        _oom()
    _enc_datetime_fields(b, d, True, True, 0 if key else d.fold)
    return _enc_tz(b, tz)


cdef int _enc_row(fc_buf *b, object row, int depth) except -1:
    names = _row_fields(row)
    values = _row_values(row)
    cdef long kind = _row_kind(row)
    if not 0 <= kind <= 15:
        raise ValueError(f"Row kind must be in [0, 15], got {kind}")
    if type(values) is not tuple:
        values = tuple(values)
    cdef Py_ssize_t i, n = PyTuple_GET_SIZE(values)
    if fc_put_tag_varint(b, FC_TAG_ROW, n):
        _oom()
    # flags byte: bit 0 = field names follow, bits 4-7 = row kind
    if names is None:
        if fc_put_u8(b, <uint8_t>(kind << 4)):
            _oom()
    else:
        if len(names) != n:
            raise ValueError(f"Row has {n} values but {len(names)} field names")
        if fc_put_u8(b, <uint8_t>((kind << 4) | 1)):
            _oom()
        for name in names:
            if type(name) is not str:
                raise TypeError(f"Row field names must be str, got {type(name).__qualname__}")
            raw = (<str>name).encode("utf-8", "surrogatepass")
            if fc_put_varint(b, len(raw)) or fc_put_bytes(b, <const char *>raw, len(raw)):
                _oom()
    for i in range(n):
        _enc(b, <object>PyTuple_GET_ITEM(values, i), depth + 1, False)
    return 0


cdef bytes _finish(fc_buf *b):
    try:
        return PyBytes_FromStringAndSize(<const char *>b.data, b.len)
    finally:
        fc_buf_free(b)


cdef bytes _dumps(object obj, bint key):
    cdef fc_buf b
    if fc_buf_init(&b, 128):
        _oom()
    try:
        b.data[0] = FC_SERDE_VERSION
        b.len = 1
        _enc(&b, obj, 0, key)
    except BaseException:
        fc_buf_free(&b)
        raise
    return _finish(&b)


def dumps(obj) -> bytes:
    """Serialize one value (see the module docstring for what is native and what is pickled)."""
    return _dumps(obj, False)


def encode_key(obj) -> bytes:
    """Deterministic bytes of a key: equal keys (by Python equality) give equal bytes."""
    return _dumps(obj, True)


cdef inline uint8_t _column_tag(object v):
    """The row-batch column tag of a value, or 0 when it has none (any other type)."""
    cdef type t = type(v)
    if t is int:
        return FC_TAG_INT
    if t is float:
        return FC_TAG_FLOAT
    if t is str:
        return FC_TAG_STR
    if t is bytes:
        return FC_TAG_BYTES
    return 0


include "_small_long.pxi"


cdef extern from *:
    """
    #if defined(__GNUC__)
    #define FC_HOT static inline __attribute__((always_inline))
    #define FC_COLD static __attribute__((noinline))
    #define FC_LIKELY(x) __builtin_expect(!!(x), 1)
    #else
    #define FC_HOT static inline
    #define FC_COLD static
    #define FC_LIKELY(x) (x)
    #endif

    /* Grows an fc_buf by at least extra bytes: 0, or -1 when out of memory. */
    typedef int (*fc_grow_fn)(fc_buf *b, size_t extra);

    /* An fc_buf over the payload of a bytes object, so a batch is written where it is returned (no
     * copy into a new bytes at the end); grown and finally shrunk with _PyBytes_Resize. */
    typedef struct { fc_buf b; PyObject *bytes; } fc_bytes_buf;

    static int fc_bytes_grow(fc_buf *b, size_t extra) {
        fc_bytes_buf *bb = (fc_bytes_buf *)b;
        if (extra > (size_t)PY_SSIZE_T_MAX / 2 - b->len) return -1;
        size_t need = b->len + extra, cap = b->cap ? b->cap : 64;
        while (cap < need) cap *= 2;
        if (_PyBytes_Resize(&bb->bytes, (Py_ssize_t)cap) < 0) { /* frees the bytes, sets it NULL */
            PyErr_Clear();
            b->data = NULL;
            b->cap = b->len = 0;
            return -1;
        }
        b->data = (uint8_t *)PyBytes_AS_STRING(bb->bytes);
        b->cap = cap;
        return 0;
    }

    /* The records of a row block, after its header: 1 when written, 0 when a record does not fit the
     * column tags (buffer back to where it was), -1 when out of memory. Exact types only, so no
     * Python code runs and the borrowed references stay valid. */
    static int fc_enc_rows(fc_buf *b, fc_grow_fn grow, PyObject *records, Py_ssize_t n,
                           const uint8_t *tags, Py_ssize_t k) {
        size_t start = b->len;
        uint8_t *w = b->data + b->len, *end = b->data + b->cap; /* the write cursor, kept local */
    #define FC_ROOM(need)                                                                        \
        if ((size_t)(end - w) < (size_t)(need)) {                                                \
            b->len = (size_t)(w - b->data);                                                      \
            if (grow(b, (size_t)(need))) return -1;                                       \
            w = b->data + b->len;                                                                \
            end = b->data + b->cap;                                                              \
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *rec = PyList_GET_ITEM(records, i);
            if (!PyTuple_CheckExact(rec) || PyTuple_GET_SIZE(rec) != k) goto not_rows;
            FC_ROOM((size_t)k * 10)
            for (Py_ssize_t j = 0; j < k; j++) {
                PyObject *v = PyTuple_GET_ITEM(rec, j);
                const char *p;
                Py_ssize_t len;
                switch (tags[j]) {
                case FC_TAG_INT: {
                    long long x;
                    if (!PyLong_CheckExact(v)) goto not_rows;
                    if (!fc_small_long(v, &x)) {
                        int overflow = 0;
                        x = PyLong_AsLongLongAndOverflow(v, &overflow);
                        if (overflow) goto not_rows;
                    }
                    w = fc_write_varint(w, fc_zigzag(x));
                    continue;
                }
                case FC_TAG_FLOAT:
                    if (!PyFloat_CheckExact(v)) goto not_rows;
                    w = fc_write_f64(w, PyFloat_AS_DOUBLE(v));
                    continue;
                case FC_TAG_STR:
                    if (!PyUnicode_CheckExact(v)) goto not_rows;
                    if (PyUnicode_IS_COMPACT_ASCII(v)) {
                        p = (const char *)PyUnicode_DATA(v);
                        len = PyUnicode_GET_LENGTH(v);
                    } else {
                        p = PyUnicode_AsUTF8AndSize(v, &len);
                        if (!p) { /* lone surrogates: only the tagged form holds them */
                            PyErr_Clear();
                            goto not_rows;
                        }
                    }
                    break;
                default: /* FC_TAG_BYTES */
                    if (!PyBytes_CheckExact(v)) goto not_rows;
                    p = PyBytes_AS_STRING(v);
                    len = PyBytes_GET_SIZE(v);
                }
                FC_ROOM((size_t)len + (size_t)(k - j) * 10)
                w = fc_write_varint(w, (uint64_t)len);
                fc_copy_short(w, p, (size_t)len);
                w += len;
            }
        }
    #undef FC_ROOM
        b->len = (size_t)(w - b->data);
        return 1;
    not_rows:
        b->len = start;
        return 0;
    }

    /* A whole batch as one row block, written into a bytes object of cap bytes (at least 13 + k)
     * that grows as needed and is shrunk to fit: the new bytes, None when a record does not fit the
     * layout tags[0..k), or NULL with MemoryError set. */
    static PyObject *fc_dumps_rows(PyObject *records, Py_ssize_t n, const uint8_t *tags, Py_ssize_t k,
                                   size_t cap) {
        fc_bytes_buf bb;
        bb.bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap);
        if (!bb.bytes) return NULL;
        uint8_t *w = (uint8_t *)PyBytes_AS_STRING(bb.bytes);
        bb.b.data = w;
        bb.b.cap = cap;
        *w++ = FC_SERDE_BATCH_VERSION;
        w = fc_write_varint(w, (uint64_t)n);
        *w++ = FC_BATCH_ROWS;
        *w++ = (uint8_t)k;
        memcpy(w, tags, (size_t)k);
        bb.b.len = (size_t)(w + k - bb.b.data);
        int rc = fc_enc_rows(&bb.b, fc_bytes_grow, records, n, tags, k);
        if (rc == 1) {
            if (_PyBytes_Resize(&bb.bytes, (Py_ssize_t)bb.b.len) < 0) return NULL; /* bytes freed */
            return bb.bytes;
        }
        Py_XDECREF(bb.bytes);
        if (rc < 0) return PyErr_NoMemory();
        Py_RETURN_NONE;
    }
    """
    ctypedef int (*fc_grow_fn)(fc_buf *b, size_t extra)
    int fc_enc_rows(fc_buf *b, fc_grow_fn grow, object records, Py_ssize_t n, const uint8_t *tags,
                    Py_ssize_t k)
    object fc_dumps_rows(object records, Py_ssize_t n, const uint8_t *tags, Py_ssize_t k, size_t cap)


cdef object _dumps_rows(object records, Py_ssize_t n):
    """The batch as one row block when every record is a plain tuple of the same column types (int64,
    float, str, bytes), written straight into the bytes returned; None when it is not. Writes the tags
    once and then bare payloads: no per-value tag, and a decoder with no per-value dispatch."""
    cdef uint8_t tags[FC_ROWS_MAX_ARITY]
    cdef Py_ssize_t j, k
    cdef size_t per_record = 0
    first = <object>PyList_GET_ITEM(records, 0)
    if type(first) is not tuple:
        return None
    k = PyTuple_GET_SIZE(first)
    if k == 0 or k > FC_ROWS_MAX_ARITY:
        return None
    for j in range(k):
        v = <object>PyTuple_GET_ITEM(first, j)
        tags[j] = _column_tag(v)
        if tags[j] == 0:
            return None
        # room for records like the first (an int as 3 varint bytes), and a quarter more
        if tags[j] == FC_TAG_INT:
            per_record += 3
        elif tags[j] == FC_TAG_FLOAT:
            per_record += 8
        else:
            per_record += 2 + <size_t>len(v)
    per_record += per_record // 4
    if per_record > 64:
        per_record = 64  # a long str in the first record need not be in every one: grow when they are
    return fc_dumps_rows(records, n, tags, k, 16 + k + <size_t>n * per_record)


def dumps_batch(records) -> bytes:
    """Serialize a list of values into one buffer: version, count, layout, values.

    A batch of plain tuples that share their column types (int64, float, str, bytes) is written as
    one row block (the tags once, then bare values), anything else value by value."""
    cdef fc_buf b
    cdef Py_ssize_t i, n
    if type(records) is not list:
        records = list(records)
    n = PyList_GET_SIZE(records)
    if n:
        out = _dumps_rows(records, n)
        if out is not None:
            return out
    if fc_buf_init(&b, 64 + 24 * n):
        _oom()
    try:
        b.data[0] = FC_SERDE_BATCH_VERSION
        b.len = 1
        if fc_put_varint(&b, n) or fc_put_u8(&b, FC_BATCH_VALUES):
            _oom()
        for i in range(n):
            if i >= PyList_GET_SIZE(records):
                raise RuntimeError("list changed size during serialization")
            _enc(&b, <object>PyList_GET_ITEM(records, i), 0, False)
    except BaseException:
        fc_buf_free(&b)
        raise
    return _finish(&b)


# --------------------------------------------------------------------------------------------- decode

cdef extern from *:
    """
    /* Streams repeat short strings (keys, categories, names) within a batch and from one batch to the
     * next: a 2-way set-associative cache of the ASCII ones, kept for the life of the process (at most
     * 8192 strs of <= 16 bytes, ~750 KB with the strs), lets records share one str object instead of
     * allocating one per record. Only batch decoding uses it. A slot holds the string's bytes as two
     * overlapping words, so a hit is an exact comparison of the bytes without touching the str; no
     * lookup-and-replace calls Python code, so the table is consistent whenever another thread or a
     * finalizer could run. 4096 sets: a stream of 1,000 keys spread over 2048 sets put three or more
     * keys in ~9% of their sets, and those evicted each other (9% misses; 2% at 4096 sets). */
    #define FC_STR_CACHE_SETS 4096 /* two 32-byte slots per set: one cache line */
    #define FC_STR_CACHE_SET_BITS 12
    #define FC_STR_CACHE_MAX_LEN 16
    #define FC_STR_SLOT_EMPTY UINT64_MAX /* the n of an empty slot: never a real length */
    #define FC_PYERR (-10)


    /* Untrack a tuple PyTuple_New just made (tracked, so linked in the youngest generation). CPython
     * 3.11-3.12 keep the two-word PyGC_Head in front of the object; unlinking it inline is
     * PyObject_GC_UnTrack less its call and tracked check (~15 instructions of ~580 per record).
     * Any other version (or a free-threaded build) calls the API. Nothing runs between the
     * PyTuple_New and this call, so no collection sees the tuple half-unlinked. */
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000 && !defined(Py_GIL_DISABLED)
    typedef struct { uintptr_t next, prev; } fc_gc_head; /* CPython's PyGC_Head (pycore_gc.h) */
    #define FC_GC_PREV_MASK (((uintptr_t)-1) << 2)    /* the low 2 bits of prev are flags */
    #define FC_GC_FINALIZED ((uintptr_t)1)
    static inline void fc_untrack_new(PyObject *op) {
        fc_gc_head *gc = (fc_gc_head *)op - 1;
        fc_gc_head *prev = (fc_gc_head *)(gc->prev & FC_GC_PREV_MASK);
        fc_gc_head *next = (fc_gc_head *)gc->next;
        prev->next = gc->next;
        next->prev = (next->prev & ~FC_GC_PREV_MASK) | (uintptr_t)prev;
        gc->next = 0;
        gc->prev &= FC_GC_FINALIZED;
    }
    #else
    #define fc_untrack_new(op) PyObject_GC_UnTrack(op)
    #endif

    typedef struct { PyObject *obj; uint64_t n, w0, w1; } fc_str_slot;
    typedef struct { size_t lookups, misses; int on; } fc_str_stats;
    static fc_str_slot *fc_str_cache = NULL;

    static int fc_str_cache_enable(fc_str_stats *st) {
        if (!fc_str_cache) {
            fc_str_cache = (fc_str_slot *)calloc(2 * FC_STR_CACHE_SETS, sizeof(fc_str_slot));
            if (!fc_str_cache) {
                PyErr_NoMemory();
                return -1;
            }
            for (size_t i = 0; i < 2 * FC_STR_CACHE_SETS; i++) fc_str_cache[i].n = FC_STR_SLOT_EMPTY;
        }
        st->on = 1;
        return 0;
    }

    static inline int fc_is_ascii(const uint8_t *p, size_t n) {
        uint64_t acc = 0, w;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            memcpy(&w, p + i, 8);
            acc |= w;
        }
        for (; i < n; i++) acc |= p[i];
        return (acc & 0x8080808080808080ULL) == 0;
    }

    /* A new str of n strict UTF-8 bytes (ASCII copied, not decoded); NULL with an error set. */
    static PyObject *fc_str_new(const uint8_t *p, size_t n) {
        if (fc_is_ascii(p, n)) {
            PyObject *s = PyUnicode_New((Py_ssize_t)n, 127);
            if (s && n) memcpy(PyUnicode_DATA(s), p, n);
            return s;
        }
        return PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)n, "strict");
    }

    /* The cache set of a str of n <= 16 bytes, and its bytes as two overlapping words w0, w1:
     * (n, w0, w1) determine the bytes exactly. */
    FC_HOT fc_str_slot *fc_str_way(const uint8_t *p, size_t n, uint64_t *w0, uint64_t *w1) {
        *w0 = *w1 = 0;
        if (n >= 8) {
            memcpy(w0, p, 8);
            memcpy(w1, p + n - 8, 8);
        } else if (n >= 4) {
            uint32_t a, z;
            memcpy(&a, p, 4);
            memcpy(&z, p + n - 4, 4);
            *w0 = a;
            *w1 = z;
        } else if (n > 0) {
            *w0 = p[0] | ((uint64_t)p[n >> 1] << 8) | ((uint64_t)p[n - 1] << 16);
        }
        /* two multiply-xorshift rounds: keys that differ in a few digits ("user-17", "user-71") spread
         * over the sets as random ones would (one round left 3-6 keys in some sets) */
        uint64_t h = ((*w0 ^ n) * 0x9e3779b97f4a7c15ULL) ^ *w1;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        h *= 0xc4ceb9fe1a85ec53ULL;
        return fc_str_cache + 2 * (h >> (64 - FC_STR_CACHE_SET_BITS));
    }

    /* A lookup that missed both ways: a new str, put in the set (the newest in way 0, the one it
     * displaces in way 1). */
    FC_COLD PyObject *fc_str_miss(fc_str_stats *st, fc_str_slot *way, const uint8_t *p, size_t n,
                                  uint64_t w0, uint64_t w1) {
        st->misses++;
        if (st->lookups == 512 && st->misses > 512 - 64)
            st->on = 0; /* strings hardly repeat in this batch: stop paying for the cache */
        PyObject *s = fc_str_new(p, n);
        if (s && PyUnicode_IS_ASCII(s)) {
            PyObject *old = way[1].obj;
            way[1] = way[0];
            Py_INCREF(s);
            way[0].obj = s;
            way[0].n = n;
            way[0].w0 = w0;
            way[0].w1 = w1;
            Py_XDECREF(old); /* last: the table is consistent if freeing it runs anything */
        }
        return s;
    }

    /* The str of n UTF-8 bytes at p, from the cache when it holds it: a new reference, or NULL with
     * an error set (UnicodeDecodeError on invalid UTF-8). The hit path is inlined into the loops. */
    FC_HOT PyObject *fc_str_get_inline(fc_str_stats *st, const uint8_t *p, size_t n) {
        uint64_t w0, w1;
        if (n > FC_STR_CACHE_MAX_LEN || !st->on) return fc_str_new(p, n);
        fc_str_slot *way = fc_str_way(p, n, &w0, &w1);
        st->lookups++;
        /* empty slots have n == FC_STR_SLOT_EMPTY, so they never match */
        if (way[0].w0 == w0 && way[0].w1 == w1 && way[0].n == n) {
            Py_INCREF(way[0].obj);
            return way[0].obj;
        }
        if (way[1].w0 == w0 && way[1].w1 == w1 && way[1].n == n) {
            Py_INCREF(way[1].obj);
            return way[1].obj;
        }
        return fc_str_miss(st, way, p, n, w0, w1);
    }

    static PyObject *fc_str_get(fc_str_stats *st, const uint8_t *p, size_t n) {
        return fc_str_get_inline(st, p, n);
    }

    /* A varint of up to 3 bytes (ints below 2**20 after zigzag, lengths below 2**21) read with no
     * bounds check: the caller made sure 10 bytes remain. NULL for a longer one, which the checked
     * reader then takes. */
    FC_HOT const uint8_t *fc_varint_short(const uint8_t *p, uint64_t *out) {
        uint64_t b0 = p[0], b1, b2;
        if (b0 < 0x80) {
            *out = b0;
            return p + 1;
        }
        b1 = p[1];
        if (b1 < 0x80) {
            *out = (b0 & 0x7f) | (b1 << 7);
            return p + 2;
        }
        b2 = p[2];
        if (b2 < 0x80) {
            *out = (b0 & 0x7f) | ((b1 & 0x7f) << 7) | (b2 << 14);
            return p + 3;
        }
        return NULL;
    }

    /* Values j0..k-1 of one record into the tuple t, every read bounds-checked (the end of the
     * buffer, and anything the unchecked forms below do not take). */
    FC_COLD int fc_dec_values(fc_reader *r, PyObject *t, const uint8_t *tags, Py_ssize_t j0,
                              Py_ssize_t k, fc_str_stats *st, uint8_t *bad_tag) {
        for (Py_ssize_t j = j0; j < k; j++) {
            PyObject *v;
            const uint8_t *p;
            uint64_t u;
            size_t len;
            double d;
            int rc;
            switch (tags[j]) {
            case FC_TAG_INT:
                if ((rc = fc_get_varint(r, &u))) goto bad;
                v = PyLong_FromLongLong(fc_unzigzag(u));
                break;
            case FC_TAG_FLOAT:
                if ((rc = fc_get_f64(r, &d))) goto bad;
                v = PyFloat_FromDouble(d);
                break;
            case FC_TAG_STR:
                if ((rc = fc_get_span(r, &p, &len))) goto bad;
                v = fc_str_get(st, p, len);
                break;
            default: /* FC_TAG_BYTES */
                if ((rc = fc_get_span(r, &p, &len))) goto bad;
                v = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)len);
            }
            if (!v) return FC_PYERR;
            PyTuple_SET_ITEM(t, j, v);
            continue;
        bad:
            *bad_tag = tags[j];
            return rc;
        }
        return FC_OK;
    }

    /* One value of column type tag with no bounds check but on a str's payload: the caller made sure
     * the record's varints and floats fit. 1 with *v set (NULL with an error set when allocation or
     * UTF-8 decoding failed); 0, with the cursor unmoved, for what only the checked reader takes (a
     * varint longer than 3 bytes, a str running past the end, a bytes column). */
    FC_HOT int fc_dec_fast(fc_reader *r, uint8_t tag, fc_str_stats *st, PyObject **v) {
        const uint8_t *q;
        uint64_t u;
        if (tag == FC_TAG_INT) {
            if (!(q = fc_varint_short(r->p, &u))) return 0;
            r->p = q;
            *v = PyLong_FromLongLong(fc_unzigzag(u));
            return 1;
        }
        if (tag == FC_TAG_FLOAT) {
            uint64_t bits = fc_load_le64(r->p);
            double d;
            memcpy(&d, &bits, sizeof d);
            r->p += 8;
            *v = PyFloat_FromDouble(d);
            return 1;
        }
        if (tag == FC_TAG_STR) {
            if (!(q = fc_varint_short(r->p, &u)) || u > (uint64_t)(r->end - q)) return 0;
            r->p = q + u;
            *v = fc_str_get_inline(st, q, (size_t)u);
            return 1;
        }
        return 0;
    }

    /* Column j of type tag into t: the fast form, else the checked reader for the rest of the
     * record. Leaves the do { } while (0) around the record on an error or after the checked rest. */
    #define FC_DEC_COL(j, tag)                                                                   \
        if (!fc_dec_fast(&cur, (tag), st, &v)) {                                                 \
            rc = fc_dec_values(&cur, t, tags, (j), k, st, bad_tag);                              \
            break;                                                                               \
        }                                                                                        \
        if (!v) {                                                                                \
            rc = FC_PYERR;                                                                       \
            break;                                                                               \
        }                                                                                        \
        PyTuple_SET_ITEM(t, (j), v);

    /* The record loop. Inlined with nk = k in 1..3 and t0..t2 the column tags as constants (one
     * straight-line copy per layout: no per-value dispatch), or nk = 0 for any layout. */
    FC_HOT int fc_dec_rows_spec(fc_reader *r, PyObject *out, Py_ssize_t n, const uint8_t *tags,
                                Py_ssize_t k, fc_str_stats *st, uint8_t *bad_tag, size_t most, int nk,
                                uint8_t t0, uint8_t t1, uint8_t t2) {
        fc_reader cur = *r; /* a local cursor: the calls below cannot touch it, so it stays in registers */
        int rc = FC_OK;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *t = PyTuple_New(nk ? nk : k);
            if (!t) {
                rc = FC_PYERR;
                break;
            }
            PyList_SET_ITEM(out, i, t); /* the list owns it from here, so an error below frees it */
            if (FC_LIKELY((size_t)(cur.end - cur.p) >= most)) {
                PyObject *v;
                do {
                    if (nk == 0) {
                        Py_ssize_t j;
                        for (j = 0; j < k; j++) {
                            FC_DEC_COL(j, tags[j])
                        }
                        break;
                    }
                    FC_DEC_COL(0, t0)
                    if (nk >= 2) {
                        FC_DEC_COL(1, t1)
                    }
                    if (nk >= 3) {
                        FC_DEC_COL(2, t2)
                    }
                } while (0);
            } else {
                rc = fc_dec_values(&cur, t, tags, 0, k, st, bad_tag);
            }
            if (rc) break;
            /* ints, floats, strs and bytes only: the tuple cannot be part of a cycle, so spare the
             * cyclic GC from scanning it (CPython untracks such tuples too, but only in a collection) */
            fc_untrack_new(t);
        }
        r->p = cur.p;
        return rc;
    }

    /* The records of a row block, after its header, into the n slots of the list out. FC_OK;
     * FC_TRUNCATED or FC_BAD_VARINT with *bad_tag set to the column type being read; FC_PYERR with an
     * error set (out of memory, or UnicodeDecodeError). Records written so far stay in out. Layouts
     * of 1 to 3 int/float/str columns run a loop compiled for them. */
    static int fc_dec_rows(fc_reader *r, PyObject *out, Py_ssize_t n, const uint8_t *tags,
                           Py_ssize_t k, fc_str_stats *st, uint8_t *bad_tag) {
        size_t most = 0; /* the bytes a record can take before its str/bytes payloads */
        int code = (int)k, specialized = k <= 3;
        for (Py_ssize_t j = 0; j < k; j++) {
            most += tags[j] == FC_TAG_FLOAT ? 8 : 10;
            int c = tags[j] == FC_TAG_INT ? 0 : tags[j] == FC_TAG_FLOAT ? 1 : tags[j] == FC_TAG_STR ? 2 : 3;
            specialized &= c < 3;
            code = code * 4 + c;
        }
        for (Py_ssize_t j = k; j < 3; j++) code *= 4;
        if (specialized) {
            switch (code) {
        case 64: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 1, FC_TAG_INT, 0, 0);
        case 80: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 1, FC_TAG_FLOAT, 0, 0);
        case 96: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 1, FC_TAG_STR, 0, 0);
        case 128: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 2, FC_TAG_INT, FC_TAG_INT, 0);
        case 132: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 2, FC_TAG_INT, FC_TAG_FLOAT, 0);
        case 136: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 2, FC_TAG_INT, FC_TAG_STR, 0);
        case 144: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 2, FC_TAG_FLOAT, FC_TAG_INT, 0);
        case 148: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 2, FC_TAG_FLOAT, FC_TAG_FLOAT, 0);
        case 152: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 2, FC_TAG_FLOAT, FC_TAG_STR, 0);
        case 160: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 2, FC_TAG_STR, FC_TAG_INT, 0);
        case 164: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 2, FC_TAG_STR, FC_TAG_FLOAT, 0);
        case 168: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 2, FC_TAG_STR, FC_TAG_STR, 0);
        case 192: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_INT, FC_TAG_INT, FC_TAG_INT);
        case 193: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_INT, FC_TAG_INT, FC_TAG_FLOAT);
        case 194: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_INT, FC_TAG_INT, FC_TAG_STR);
        case 196: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_INT, FC_TAG_FLOAT, FC_TAG_INT);
        case 197: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_INT, FC_TAG_FLOAT, FC_TAG_FLOAT);
        case 198: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_INT, FC_TAG_FLOAT, FC_TAG_STR);
        case 200: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_INT, FC_TAG_STR, FC_TAG_INT);
        case 201: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_INT, FC_TAG_STR, FC_TAG_FLOAT);
        case 202: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_INT, FC_TAG_STR, FC_TAG_STR);
        case 208: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_FLOAT, FC_TAG_INT, FC_TAG_INT);
        case 209: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_FLOAT, FC_TAG_INT, FC_TAG_FLOAT);
        case 210: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_FLOAT, FC_TAG_INT, FC_TAG_STR);
        case 212: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_FLOAT, FC_TAG_FLOAT, FC_TAG_INT);
        case 213: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_FLOAT, FC_TAG_FLOAT, FC_TAG_FLOAT);
        case 214: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_FLOAT, FC_TAG_FLOAT, FC_TAG_STR);
        case 216: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_FLOAT, FC_TAG_STR, FC_TAG_INT);
        case 217: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_FLOAT, FC_TAG_STR, FC_TAG_FLOAT);
        case 218: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_FLOAT, FC_TAG_STR, FC_TAG_STR);
        case 224: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_STR, FC_TAG_INT, FC_TAG_INT);
        case 225: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_STR, FC_TAG_INT, FC_TAG_FLOAT);
        case 226: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_STR, FC_TAG_INT, FC_TAG_STR);
        case 228: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_STR, FC_TAG_FLOAT, FC_TAG_INT);
        case 229: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_STR, FC_TAG_FLOAT, FC_TAG_FLOAT);
        case 230: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_STR, FC_TAG_FLOAT, FC_TAG_STR);
        case 232: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_STR, FC_TAG_STR, FC_TAG_INT);
        case 233: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_STR, FC_TAG_STR, FC_TAG_FLOAT);
        case 234: return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 3, FC_TAG_STR, FC_TAG_STR, FC_TAG_STR);
            }
        }
        return fc_dec_rows_spec(r, out, n, tags, k, st, bad_tag, most, 0, 0, 0, 0);
    }
    """
    int FC_PYERR
    ctypedef struct fc_str_stats:
        size_t lookups, misses
        int on
    int fc_str_cache_enable(fc_str_stats *st) except -1
    object fc_str_get(fc_str_stats *st, const uint8_t *p, size_t n)
    int fc_dec_rows(fc_reader *r, object out, Py_ssize_t n, const uint8_t *tags, Py_ssize_t k,
                    fc_str_stats *st, uint8_t *bad_tag)


@cython.final
cdef class _Reader:
    cdef fc_reader r
    cdef const uint8_t *start
    cdef bint allow_pickle
    cdef uint8_t version
    cdef object last_names
    cdef fc_str_stats strs

    cdef int enable_str_cache(self) except -1:
        return fc_str_cache_enable(&self.strs)

    cdef inline object str_value(self):
        cdef const uint8_t *p = NULL
        cdef size_t n = 0
        cdef int rc = fc_get_span(&self.r, &p, &n)
        if rc:
            self.fail(rc, "a str")
        try:
            return fc_str_get(&self.strs, p, n)
        except UnicodeDecodeError as e:
            raise SerdeError(f"corrupt input: invalid UTF-8 in a str at offset {self.offset()}: {e}") from None

    cdef object decode_utf8(self, const uint8_t *p, size_t n, str what, const char *errors):
        try:
            return PyUnicode_DecodeUTF8(<const char *>p, n, errors)
        except UnicodeDecodeError as e:
            raise SerdeError(f"corrupt input: invalid UTF-8 in {what} at offset {self.offset()}: {e}") from None

    cdef Py_ssize_t offset(self):
        return self.r.p - self.start

    cdef int fail(self, int rc, str what) except -1:
        if rc == FC_TRUNCATED:
            raise SerdeError(f"truncated input: {what} at offset {self.offset()} runs past the end")
        raise SerdeError(f"corrupt input: bad varint in {what} at offset {self.offset()}")

    cdef inline uint64_t varint(self, str what) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t v = 0
        cdef int rc = fc_get_varint(&self.r, &v)
        if rc:
            self.fail(rc, what)
        return v

    cdef inline uint8_t u8(self, str what) except? 255:
        cdef uint8_t v = 0
        cdef int rc = fc_get_u8(&self.r, &v)
        if rc:
            self.fail(rc, what)
        return v

    cdef inline Py_ssize_t count(self, str what, Py_ssize_t per_item) except -1:
        """A count of items, each taking at least per_item bytes, so it must fit in what remains."""
        cdef uint64_t n = self.varint(what)
        if n > fc_remaining(&self.r) // per_item:
            raise SerdeError(
                f"corrupt input: {what} of {n} items at offset {self.offset()} exceeds the "
                f"{fc_remaining(&self.r)} bytes that remain"
            )
        return <Py_ssize_t>n

    cdef object utf8(self, str what, const char *errors):
        cdef const uint8_t *p = NULL
        cdef size_t n = 0
        cdef int rc = fc_get_span(&self.r, &p, &n)
        if rc:
            self.fail(rc, what)
        return self.decode_utf8(p, n, what, errors)

    cdef bytes span(self, str what):
        cdef const uint8_t *p = NULL
        cdef size_t n = 0
        cdef int rc = fc_get_span(&self.r, &p, &n)
        if rc:
            self.fail(rc, what)
        return PyBytes_FromStringAndSize(<const char *>p, n)


cdef inline object _dec_item(_Reader rd, int depth):
    """One element of a container: the common scalars inline, anything else through _dec."""
    cdef uint8_t tag
    cdef double d = 0.0
    if rd.r.p < rd.r.end:
        tag = rd.r.p[0]
        if tag == FC_TAG_INT:
            rd.r.p += 1
            return PyLong_FromLongLong(fc_unzigzag(rd.varint("an int")))
        if tag == FC_TAG_STR:
            rd.r.p += 1
            return rd.str_value()
        if tag == FC_TAG_FLOAT:
            rd.r.p += 1
            if fc_get_f64(&rd.r, &d):
                rd.fail(FC_TRUNCATED, "a float")
            return PyFloat_FromDouble(d)
    return _dec(rd, depth)


cdef object _dec(_Reader rd, int depth):
    cdef uint8_t tag = 0
    cdef double d = 0.0
    cdef bint atomic
    cdef Py_ssize_t i, n
    cdef int rc
    if depth > C_MAX_DEPTH:
        raise SerdeError(f"corrupt input: nesting deeper than {C_MAX_DEPTH} at offset {rd.offset()}")
    rc = fc_get_u8(&rd.r, &tag)
    if rc:
        rd.fail(rc, "a value")
    if tag == FC_TAG_INT:
        return PyLong_FromLongLong(fc_unzigzag(rd.varint("an int")))
    if tag == FC_TAG_FLOAT:
        rc = fc_get_f64(&rd.r, &d)
        if rc:
            rd.fail(rc, "a float")
        return PyFloat_FromDouble(d)
    if tag == FC_TAG_STR:
        return rd.str_value()
    if tag == FC_TAG_TUPLE:
        n = rd.count("a tuple", 1)
        t = PyTuple_New(n)
        atomic = True
        for i in range(n):
            v = _dec_item(rd, depth + 1)
            vt = type(v)
            if not (vt is int or vt is float or vt is str or v is None or vt is bool or vt is bytes
                    or (vt is tuple and not PyObject_GC_IsTracked(v))):
                atomic = False
            Py_INCREF(v)
            PyTuple_SET_ITEM(t, i, v)
        if atomic:
            # a tuple of atomic values (and untracked tuples, e.g. (key, (sum, count))) cannot be
            # part of a cycle: spare the GC from scanning it (CPython untracks such tuples
            # itself, by the same rule, but only when a collection visits them)
            PyObject_GC_UnTrack(t)
        return t
    if tag == FC_TAG_LIST:
        n = rd.count("a list", 1)
        lst = PyList_New(n)
        for i in range(n):
            v = _dec_item(rd, depth + 1)
            Py_INCREF(v)
            PyList_SET_ITEM(lst, i, v)
        return lst
    if tag == FC_TAG_NONE:
        return None
    if tag == FC_TAG_TRUE:
        return True
    if tag == FC_TAG_FALSE:
        return False
    if tag == FC_TAG_BYTES:
        return rd.span("a bytes value")
    if tag == FC_TAG_DICT:
        n = rd.count("a dict", 2)
        out = {}
        for i in range(n):
            k = _dec(rd, depth + 1)
            v = _dec(rd, depth + 1)
            try:
                out[k] = v
            except TypeError as e:
                raise SerdeError(f"corrupt input: unhashable dict key at offset {rd.offset()}: {e}") from None
        return out
    if tag == FC_TAG_ROW:
        return _dec_row(rd, depth)
    if tag == FC_TAG_BIGINT:
        sign = rd.u8("a big int sign")
        if sign > 1:
            raise SerdeError(f"corrupt input: big int sign byte {sign} at offset {rd.offset()}")
        mag = int.from_bytes(rd.span("a big int"), "little")
        return -mag if sign else mag
    if tag == FC_TAG_STR_SURROGATES:
        return rd.utf8("a str", "surrogatepass")
    if tag == FC_TAG_DECIMAL:
        raw = rd.span("a Decimal")
        try:
            return Decimal(raw.decode("ascii"))
        except (UnicodeDecodeError, InvalidOperation, ValueError):
            raise SerdeError(f"corrupt input: invalid Decimal {raw[:40]!r} at offset {rd.offset()}") from None
    if tag in (FC_TAG_DATETIME, FC_TAG_DATE, FC_TAG_TIME, FC_TAG_TIMEDELTA):
        return _dec_temporal(rd, tag)
    if tag == FC_TAG_PICKLE:
        raw = rd.span("a pickled value")
        if not rd.allow_pickle:
            raise SerdeError(f"pickled value at offset {rd.offset()} refused: loads(..., allow_pickle=False)")
        try:
            return pickle.loads(raw)
        except Exception as e:
            raise SerdeError(f"corrupt input: pickled value at offset {rd.offset()} failed to load: {e!r}") from e
    raise SerdeError(f"corrupt input: unknown tag 0x{tag:02x} at offset {rd.offset() - 1}")


cdef object _dec_tz(_Reader rd):
    cdef uint8_t kind = rd.u8("a tz marker")
    if kind == FC_TZ_NONE:
        return None
    if kind == FC_TZ_OFFSET:
        micros = fc_unzigzag(rd.varint("a tz offset"))
        return _timezone(_timedelta(microseconds=micros))
    raise SerdeError(f"corrupt input: unknown tz marker {kind} at offset {rd.offset()}")


cdef object _dec_temporal(_Reader rd, uint8_t tag):
    year = month = day = 0
    try:
        if tag == FC_TAG_TIMEDELTA:
            days = fc_unzigzag(rd.varint("a timedelta"))
            seconds = rd.varint("a timedelta")
            micros = rd.varint("a timedelta")
            if seconds >= 86400 or micros >= 1000000:
                raise ValueError(f"timedelta fields out of range: {seconds} s, {micros} us")
            return _timedelta(days, seconds, micros)
        if tag == FC_TAG_DATE or tag == FC_TAG_DATETIME:
            year = fc_unzigzag(rd.varint("a date"))
            month = rd.u8("a date")
            day = rd.u8("a date")
            if tag == FC_TAG_DATE:
                return _date(year, month, day)
        hour = rd.u8("a time")
        minute = rd.u8("a time")
        second = rd.u8("a time")
        micro = rd.varint("a time")
        fold = rd.u8("a time")
        tz = _dec_tz(rd)
        if tag == FC_TAG_TIME:
            return _time(hour, minute, second, micro, tz, fold=fold)
        return _datetime(year, month, day, hour, minute, second, micro, tz, fold=fold)
    except (ValueError, OverflowError, TypeError) as e:
        if isinstance(e, SerdeError):
            raise
        raise SerdeError(f"corrupt input: invalid date/time at offset {rd.offset()}: {e}") from None


cdef object _dec_row(_Reader rd, int depth):
    cdef Py_ssize_t i, n = rd.count("a Row", 1)
    cdef uint8_t flags = rd.u8("a Row")
    cdef bint has_names = flags & 1
    if flags & 0x0E:
        raise SerdeError(f"corrupt input: Row flags 0x{flags:02x} at offset {rd.offset()}")
    names = None
    if has_names:
        name_list = [rd.utf8("a Row field name", "surrogatepass") for i in range(n)]
        last = rd.last_names
        if last is not None and len(last) == n and all(a == b for a, b in zip(last, name_list)):
            names = last
        else:
            names = tuple(name_list)
            rd.last_names = names
    values = PyTuple_New(n)
    for i in range(n):
        v = _dec(rd, depth + 1)
        Py_INCREF(v)
        PyTuple_SET_ITEM(values, i, v)
    if _row_make is None:
        raise SerdeError(
            "input holds a Row but no Row type is registered in this process: import flinkcore.common "
            "(or call flinkcore._core.serde.register_row_type) before loading"
        )
    return _row_make(names, values, flags >> 4)


cdef _Reader _reader(const uint8_t *start, Py_ssize_t n, bint allow_pickle, bint batch):
    cdef _Reader rd = _Reader.__new__(_Reader)
    if n == 0:
        raise SerdeError("empty input: not a serialized value")
    rd.start = start
    rd.r.p = rd.start
    rd.r.end = rd.start + n
    rd.allow_pickle = allow_pickle
    cdef uint8_t version = rd.u8("the version byte")
    if version == FC_SERDE_VERSION or (batch and version == FC_SERDE_BATCH_VERSION):
        rd.version = version
        return rd
    if batch:
        raise SerdeError(
            f"unsupported serde batch format version {version} (this flinkcore reads batch versions "
            f"{FC_SERDE_VERSION} and {FC_SERDE_BATCH_VERSION})"
        )
    raise SerdeError(
        f"unsupported serde format version {version} (this flinkcore reads version {FC_SERDE_VERSION})"
    )


cdef int _propagate() except -1:
    """Hand an error already set by a C API call (NULL result) on to Cython's error path."""
    return -1


cdef list _dec_rows(_Reader rd, Py_ssize_t n):
    """A row block (FC_BATCH_ROWS): column tags once, then n records of bare payloads."""
    cdef uint8_t tags[FC_ROWS_MAX_ARITY]
    cdef uint8_t tag, bad_tag = 0
    cdef Py_ssize_t j, k, min_size = 0
    cdef int rc
    k = rd.u8("a row batch")
    if k == 0 or k > FC_ROWS_MAX_ARITY:
        raise SerdeError(f"corrupt input: row batch of {k} columns at offset {rd.offset() - 1} "
                         f"(1 to {FC_ROWS_MAX_ARITY})")
    if fc_remaining(&rd.r) < <size_t>k:
        rd.fail(FC_TRUNCATED, "a row batch's column types")
    for j in range(k):
        tag = rd.r.p[j]
        if tag == FC_TAG_FLOAT:
            min_size += 8
        elif tag == FC_TAG_INT or tag == FC_TAG_STR or tag == FC_TAG_BYTES:
            min_size += 1
        else:
            raise SerdeError(f"corrupt input: row batch column type 0x{tag:02x} at offset {rd.offset() + j}")
        tags[j] = tag
    rd.r.p += k
    if <size_t>n > fc_remaining(&rd.r) // <size_t>min_size:
        raise SerdeError(
            f"corrupt input: row batch of {n} records at offset {rd.offset()} exceeds the "
            f"{fc_remaining(&rd.r)} bytes that remain"
        )
    out = PyList_New(n)
    rc = fc_dec_rows(&rd.r, out, n, tags, k, &rd.strs, &bad_tag)
    if rc == FC_PYERR:
        try:
            _propagate()  # the error fc_dec_rows left set
        except UnicodeDecodeError as e:
            raise SerdeError(f"corrupt input: invalid UTF-8 in a str at offset {rd.offset()}: {e}") from None
    if rc:
        rd.fail(rc, "an int" if bad_tag == FC_TAG_INT else "a float" if bad_tag == FC_TAG_FLOAT
                else "a str" if bad_tag == FC_TAG_STR else "a bytes value")
    return out


cdef const uint8_t[::1] _view(buf) except *:
    try:
        return buf
    except (TypeError, ValueError) as e:
        raise TypeError(f"expected bytes, bytearray or a contiguous buffer, got {type(buf).__qualname__}") from e


def loads(buf, *, bint allow_pickle=True):
    """Decode one value written by ``dumps`` or ``encode_key``; raises SerdeError on bad input."""
    cdef const uint8_t[::1] view = _view(buf)
    cdef _Reader rd = _reader(&view[0] if view.shape[0] else NULL, view.shape[0], allow_pickle, False)
    out = _dec(rd, 0)
    if fc_remaining(&rd.r):
        raise SerdeError(f"corrupt input: {fc_remaining(&rd.r)} trailing bytes after the value at offset "
                         f"{rd.offset()}")
    return out


def loads_batch(buf, *, bint allow_pickle=True) -> list:
    """Decode a buffer written by ``dumps_batch`` (batch version 2, or 1 from earlier flinkcore);
    raises SerdeError on bad input."""
    cdef const uint8_t[::1] view
    cdef _Reader rd
    if type(buf) is bytes:  # the usual input: read it in place (immutable, and held by buf)
        rd = _reader(<const uint8_t *>PyBytes_AS_STRING(buf), PyBytes_GET_SIZE(buf), allow_pickle, True)
    else:
        view = _view(buf)
        rd = _reader(&view[0] if view.shape[0] else NULL, view.shape[0], allow_pickle, True)
    cdef Py_ssize_t i, n = rd.count("a batch", 1)
    cdef uint8_t layout = FC_BATCH_VALUES
    if rd.version == FC_SERDE_BATCH_VERSION:
        layout = rd.u8("a batch layout")
    if n >= 32:
        rd.enable_str_cache()
    if layout == FC_BATCH_ROWS:
        out = _dec_rows(rd, n)
    elif layout == FC_BATCH_VALUES:
        out = PyList_New(n)
        for i in range(n):
            v = _dec(rd, 0)
            Py_INCREF(v)
            PyList_SET_ITEM(out, i, v)
    else:
        raise SerdeError(f"corrupt input: unknown batch layout {layout} at offset {rd.offset() - 1}")
    if fc_remaining(&rd.r):
        raise SerdeError(f"corrupt input: {fc_remaining(&rd.r)} trailing bytes after the batch at offset "
                         f"{rd.offset()}")
    return out



# ----------------------------------------------------------------------------- int64 arrays of ints

cdef extern from *:
    """
    /* The items of the list ints (n of them) as little-endian int64 at out: 1, or 0 when an item is
     * not an exact int in the int64 range (out partly written). No Python code runs. */
    static int fc_pack_int64(PyObject *ints, Py_ssize_t n, uint8_t *out) {
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *v = PyList_GET_ITEM(ints, i);
            long long x;
            if (!PyLong_CheckExact(v)) return 0;
            if (!fc_small_long(v, &x)) {
                int overflow = 0;
                x = PyLong_AsLongLongAndOverflow(v, &overflow);
                if (overflow) return 0;
            }
            uint64_t u = (uint64_t)x;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            memcpy(out + 8 * i, &u, 8);
    #else
            for (int b = 0; b < 8; b++) out[8 * i + b] = (uint8_t)(u >> (8 * b));
    #endif
        }
        return 1;
    }

    /* n little-endian int64 at p as the n slots of the new list out: a run of equal values (the
     * timestamps of a fast stream: many records per millisecond) shares one int object. 0, or -1
     * with an error set (out of memory; the slots written so far stay in out). */
    static int fc_unpack_int64(const uint8_t *p, Py_ssize_t n, PyObject *out) {
        PyObject *last = NULL;
        uint64_t prev = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t u = fc_load_le64(p + 8 * i);
            if (last == NULL || u != prev) {
                last = PyLong_FromLongLong((long long)u);
                if (last == NULL) return -1;
                prev = u;
            } else {
                Py_INCREF(last);
            }
            PyList_SET_ITEM(out, i, last);
        }
        return 0;
    }
    """
    int fc_pack_int64(list ints, Py_ssize_t n, uint8_t *out)
    int fc_unpack_int64(const uint8_t *p, Py_ssize_t n, object out) except -1


def pack_int64(ints) -> bytes | None:
    """The ints of a list as little-endian int64 bytes (8 per item); None when one is not an int
    (exact type: no bool, no numpy integer) in the int64 range, for the caller's general path."""
    cdef list items = ints if type(ints) is list else list(ints)
    cdef Py_ssize_t n = PyList_GET_SIZE(items)
    out = PyBytes_FromStringAndSize(NULL, 8 * n)
    if not fc_pack_int64(items, n, <uint8_t *>PyBytes_AS_STRING(out)):
        return None
    return out


def unpack_int64(buf) -> list:
    """The little-endian int64 values of a buffer (what ``pack_int64`` wrote) as a list of ints;
    consecutive equal values share one int object (ints are immutable: only identity tells)."""
    cdef const uint8_t[::1] view = _view(buf)
    cdef Py_ssize_t size = view.shape[0]
    if size % 8:
        raise ValueError(f"an int64 array of {size} bytes (not a multiple of 8)")
    out = PyList_New(size // 8)
    if size:
        fc_unpack_int64(&view[0], size // 8, out)
    return out
