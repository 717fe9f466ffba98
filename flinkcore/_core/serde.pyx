# cython: language_level=3
"""flinkcore's compact binary record format: what crosses process boundaries, state and checkpoints.

``dumps``/``loads`` encode one value, ``dumps_batch``/``loads_batch`` a list of values into one
buffer, and ``encode_key`` gives the deterministic bytes of a key (equal keys, equal bytes), which
state backends use as the lookup key. The byte layout is fixed by the tags in ``_native/fc_serde.h``
and starts with a version byte (currently 1); the pure-Python twin in
``flinkcore._core._reference.serde`` writes the same bytes.

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
from libc.stdint cimport int64_t, uint8_t, uint64_t


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


cdef extern from "fc_serde.h":
    int FC_SERDE_VERSION
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


def dumps_batch(records) -> bytes:
    """Serialize a list of values into one buffer: version, count, values."""
    cdef fc_buf b
    cdef Py_ssize_t i, n
    if type(records) is not list:
        records = list(records)
    n = PyList_GET_SIZE(records)
    if fc_buf_init(&b, 64 + 24 * n):
        _oom()
    try:
        b.data[0] = FC_SERDE_VERSION
        b.len = 1
        if fc_put_varint(&b, n):
            _oom()
        for i in range(n):
            _enc(&b, <object>PyList_GET_ITEM(records, i), 0, False)
    except BaseException:
        fc_buf_free(&b)
        raise
    return _finish(&b)


# --------------------------------------------------------------------------------------------- decode

cdef inline uint64_t _short_hash(const uint8_t *p, size_t n) noexcept nogil:
    """Hash of up to 32 bytes, a word at a time (a byte-at-a-time hash is a long dependency chain)."""
    cdef uint64_t h = 0x9e3779b97f4a7c15ULL * (n + 1)
    cdef uint64_t w
    cdef size_t i = 0
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        h = (h ^ w) * 0xff51afd7ed558ccdULL
        h ^= h >> 29
        i += 8
    if i < n:
        w = 0
        memcpy(&w, p + i, n - i)
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL
        h ^= h >> 29
    return h


ctypedef struct _StrSlot:
    PyObject *obj
    size_t n
    uint64_t h


DEF STR_CACHE_SLOTS = 1024
DEF STR_CACHE_MAX_LEN = 32


@cython.final
cdef class _Reader:
    cdef fc_reader r
    cdef const uint8_t *start
    cdef bint allow_pickle
    cdef object last_names
    # Batches repeat short strings (keys, categories, names): a direct-mapped cache of the ASCII ones
    # lets records share one str object instead of allocating and decoding each again.
    cdef _StrSlot *str_cache
    cdef bint cache_on
    cdef size_t lookups, hits

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.str_cache != NULL:
            for i in range(STR_CACHE_SLOTS):
                Py_XDECREF(self.str_cache[i].obj)
            free(self.str_cache)

    cdef int enable_str_cache(self) except -1:
        self.str_cache = <_StrSlot *>calloc(STR_CACHE_SLOTS, sizeof(_StrSlot))
        if self.str_cache == NULL:
            raise MemoryError()
        self.cache_on = True
        return 0

    cdef inline object str_value(self):
        cdef const uint8_t *p = NULL
        cdef size_t n = 0, i
        cdef uint64_t h
        cdef _StrSlot *slot
        if self.str_cache == NULL:
            return self.utf8("a str", "strict")
        cdef int rc = fc_get_span(&self.r, &p, &n)
        if rc:
            self.fail(rc, "a str")
        if n > STR_CACHE_MAX_LEN or not self.cache_on:
            return self.decode_utf8(p, n, "a str", "strict")
        h = _short_hash(p, n)
        slot = &self.str_cache[h & (STR_CACHE_SLOTS - 1)]
        self.lookups += 1
        if slot.obj != NULL and slot.h == h and slot.n == n and memcmp(PyUnicode_DATA(<object>slot.obj), p, n) == 0:
            self.hits += 1
            return <object>slot.obj
        if self.lookups == 512 and self.hits < 64:
            self.cache_on = False  # strings hardly repeat in this batch: stop paying for the cache
        s = self.decode_utf8(p, n, "a str", "strict")
        if PyUnicode_IS_ASCII(s):
            Py_XDECREF(slot.obj)
            Py_INCREF(s)
            slot.obj = <PyObject *>s
            slot.h = h
            slot.n = n
        return s

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
            if not (vt is int or vt is float or vt is str or v is None or vt is bool or vt is bytes):
                atomic = False
            Py_INCREF(v)
            PyTuple_SET_ITEM(t, i, v)
        if atomic:
            # a tuple of atomic values cannot be part of a cycle: spare the GC from scanning it
            # (CPython untracks such tuples itself, but only when a collection visits them)
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


cdef _Reader _reader(const uint8_t[::1] view, bint allow_pickle):
    cdef _Reader rd = _Reader.__new__(_Reader)
    cdef Py_ssize_t n = view.shape[0]
    if n == 0:
        raise SerdeError("empty input: not a serialized value")
    rd.start = &view[0]
    rd.r.p = rd.start
    rd.r.end = rd.start + n
    rd.allow_pickle = allow_pickle
    cdef uint8_t version = rd.u8("the version byte")
    if version != FC_SERDE_VERSION:
        raise SerdeError(
            f"unsupported serde format version {version} (this flinkcore reads version {FC_SERDE_VERSION})"
        )
    return rd


cdef const uint8_t[::1] _view(buf) except *:
    try:
        return buf
    except (TypeError, ValueError) as e:
        raise TypeError(f"expected bytes, bytearray or a contiguous buffer, got {type(buf).__qualname__}") from e


def loads(buf, *, bint allow_pickle=True):
    """Decode one value written by ``dumps`` or ``encode_key``; raises SerdeError on bad input."""
    cdef const uint8_t[::1] view = _view(buf)
    cdef _Reader rd = _reader(view, allow_pickle)
    out = _dec(rd, 0)
    if fc_remaining(&rd.r):
        raise SerdeError(f"corrupt input: {fc_remaining(&rd.r)} trailing bytes after the value at offset "
                         f"{rd.offset()}")
    return out


def loads_batch(buf, *, bint allow_pickle=True) -> list:
    """Decode a buffer written by ``dumps_batch``; raises SerdeError on bad input."""
    cdef const uint8_t[::1] view = _view(buf)
    cdef _Reader rd = _reader(view, allow_pickle)
    cdef Py_ssize_t i, n = rd.count("a batch", 1)
    if n >= 32:
        rd.enable_str_cache()
    out = PyList_New(n)
    for i in range(n):
        v = _dec(rd, 0)
        Py_INCREF(v)
        PyList_SET_ITEM(out, i, v)
    if fc_remaining(&rd.r):
        raise SerdeError(f"corrupt input: {fc_remaining(&rd.r)} trailing bytes after the batch at offset "
                         f"{rd.offset()}")
    return out
