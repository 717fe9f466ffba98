# cython: language_level=3
"""Key-group assignment (Flink's KeyGroupRangeAssignment) over the C kernel in _native/fc_keygroup.

A key's group is ``murmur(hash_key(key)) % max_parallelism``. ``hash_key`` is a stable 32-bit hash
that does not depend on PYTHONHASHSEED, so every process and every run agrees on which parallel
instance owns a key (and a savepoint restores at another parallelism). It follows Java's
``hashCode`` conventions where Python and Java agree on the value, and Python's equality where they
do not: ``True``, ``1`` and ``1.0`` are equal Python keys, so they hash alike (as the int64 ``1``).

=================  ==========================================================================
key type           hash
=================  ==========================================================================
int (int64 range)  Java ``Long.hashCode``; bool and numpy integers as the equal int
int (larger)       Java ``BigInteger.hashCode``
float              an integral float as the equal int; otherwise Java ``Double.hashCode``
                   (all NaNs alike, as ``Double.doubleToLongBits``)
str                Java ``String.hashCode`` over UTF-16 code units
bytes              Java ``Arrays.hashCode(byte[])`` (signed bytes, seed 1)
None               0
tuple/list/Row     Java ``List.hashCode``: ``h = 31 * h + hash(e)`` from 1 (any tuple subclass,
                   such as flinkcore's Row or a namedtuple, hashes as the plain tuple)
=================  ==========================================================================
"""

import numpy as np

cimport cython
cimport numpy as cnp
from libc.stdlib cimport free, malloc
from libc.math cimport floor, isfinite
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from cpython.list cimport PyList_New
from cpython.object cimport PyObject

cnp.import_array()


cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void *PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    int PyUnicode_1BYTE_KIND
    int PyUnicode_2BYTE_KIND
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    char *PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)


cdef extern from "fc_keygroup.h" nogil:
    int32_t fc_murmur_hash_int(int32_t code)
    int32_t fc_hash_int64(int64_t v)
    int32_t fc_key_group(int32_t key_hash, int32_t max_parallelism)
    int32_t fc_operator_index(int32_t key_group, int32_t max_parallelism, int32_t parallelism)
    int32_t fc_hash_double(double v)
    int32_t fc_hash_ucs1(const uint8_t *s, size_t n)
    int32_t fc_hash_ucs2(const uint16_t *s, size_t n)
    int32_t fc_hash_ucs4(const uint32_t *s, size_t n)
    int32_t fc_hash_bytes(const uint8_t *s, size_t n)
    int32_t fc_hash_bigint(const uint8_t *magnitude_be, size_t n, int sign)
    int32_t fc_hash_combine(int32_t h, int32_t element)
    void fc_key_groups_int64(const int64_t *keys, size_t n, int32_t max_parallelism, int32_t *out)
    void fc_key_groups_hashes(const int32_t *hashes, size_t n, int32_t max_parallelism, int32_t *out)
    void fc_key_groups_ucs4_fixed(const uint32_t *data, size_t n, size_t width, int32_t max_parallelism,
                                  int32_t *out)
    void fc_key_groups_bytes_fixed(const uint8_t *data, size_t n, size_t width, int32_t max_parallelism,
                                   int32_t *out)


DEF MAX_NESTING = 200


cdef int32_t _check_max_parallelism(long max_parallelism) except -1:
    if not 0 < max_parallelism <= 32768:
        raise ValueError(f"max_parallelism must be in [1, 32768], got {max_parallelism}")
    return <int32_t>max_parallelism


def murmur_hash(int code):
    """Flink's MathUtils.murmurHash of a 32-bit signed int."""
    return fc_murmur_hash_int(<int32_t>code)


def hash_int64(long long v):
    """The stable 32-bit hash of an int64 key (Java's Long.hashCode)."""
    return fc_hash_int64(v)


cdef int32_t _hash_str(str s):
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(s)
    cdef int kind = PyUnicode_KIND(s)
    if kind == PyUnicode_1BYTE_KIND:
        return fc_hash_ucs1(<const uint8_t *>PyUnicode_DATA(s), n)
    if kind == PyUnicode_2BYTE_KIND:
        return fc_hash_ucs2(<const uint16_t *>PyUnicode_DATA(s), n)
    return fc_hash_ucs4(<const uint32_t *>PyUnicode_DATA(s), n)


cdef int32_t _hash_bigint(object v) except? -1:
    cdef int sign = 1 if v > 0 else -1
    mag = abs(v)
    cdef bytes raw = mag.to_bytes((mag.bit_length() + 7) // 8, "big")
    return fc_hash_bigint(<const uint8_t *>PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), sign)


cdef int32_t _hash_int(object v) except? -1:
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow == 0:
        return fc_hash_int64(x)
    return _hash_bigint(v)


cdef int32_t _hash_float(double v) except? -1:
    if isfinite(v) and v == floor(v):
        if -9223372036854775808.0 <= v < 9223372036854775808.0:
            return fc_hash_int64(<int64_t>v)
        return _hash_bigint(int(v))
    return fc_hash_double(v)


cdef int32_t _hash_key(object obj, int depth) except? -1:
    cdef type t = type(obj)
    cdef int32_t h
    if t is int or t is bool:
        return _hash_int(obj)
    if t is str:
        return _hash_str(<str>obj)
    if t is float:
        return _hash_float(<double>obj)
    if t is tuple or t is list or isinstance(obj, (tuple, list)):
        if depth >= MAX_NESTING:
            raise ValueError(f"key nested deeper than {MAX_NESTING} levels cannot be hashed")
        h = 1
        for e in obj:
            h = fc_hash_combine(h, _hash_key(e, depth + 1))
        return h
    if t is bytes or isinstance(obj, bytes):
        return fc_hash_bytes(<const uint8_t *>PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj))
    if obj is None:
        return 0
    if isinstance(obj, int):
        return _hash_int(obj)
    if isinstance(obj, str):
        return _hash_str(<str>obj)
    if isinstance(obj, float):
        return _hash_float(<double>obj)
    if isinstance(obj, (np.integer, np.bool_)):
        return _hash_int(int(obj))
    if isinstance(obj, np.floating):
        return _hash_float(float(obj))
    raise TypeError(
        f"cannot hash a key of type {t.__module__}.{t.__qualname__}: key_by keys must be int, float, "
        "bool, str, bytes, None, or a tuple/list/Row of those"
    )


def hash_key(obj) -> int:
    """The stable 32-bit hash of a key (see the module docstring for each type's rule)."""
    return _hash_key(obj, 0)


def key_group_for_hash(int key_hash, long max_parallelism):
    """Key group of a 32-bit key hash."""
    return fc_key_group(<int32_t>key_hash, _check_max_parallelism(max_parallelism))


def key_group(obj, long max_parallelism) -> int:
    """Key group of one key: ``murmur(hash_key(obj)) % max_parallelism``."""
    cdef int32_t mp = _check_max_parallelism(max_parallelism)
    return fc_key_group(_hash_key(obj, 0), mp)


def operator_index(int key_group, long max_parallelism, int parallelism):
    """The parallel instance that owns a key group (contiguous ranges)."""
    return fc_operator_index(key_group, _check_max_parallelism(max_parallelism), parallelism)


def key_groups_int64(keys, long max_parallelism):
    """Key groups of an int64 array, as an int32 array."""
    cdef int32_t mp = _check_max_parallelism(max_parallelism)
    cdef const int64_t[::1] k = np.ascontiguousarray(keys, dtype=np.int64)
    out = np.empty(k.shape[0], dtype=np.int32)
    cdef int32_t[::1] o = out
    if k.shape[0]:
        with nogil:
            fc_key_groups_int64(&k[0], k.shape[0], mp, &o[0])
    return out


def hash_keys(keys) -> np.ndarray:
    """``hash_key`` of every key of a sequence, as an int32 array."""
    cdef Py_ssize_t i, n = len(keys)
    out = np.empty(n, dtype=np.int32)
    cdef int32_t[::1] o = out
    if isinstance(keys, np.ndarray) and keys.dtype.kind != "O":
        keys = keys.tolist()
    for i in range(n):
        o[i] = _hash_key(keys[i], 0)
    return out


def key_groups(keys, long max_parallelism) -> np.ndarray:
    """Key groups of many keys at once, as an int32 array.

    ``keys`` is a numpy array (integer and bool dtypes and fixed-width ``U``/``S`` strings take a C
    loop; float and object arrays are hashed key by key) or any sequence of keys. The result equals
    ``[key_group(k, max_parallelism) for k in keys]``.
    """
    cdef int32_t mp = _check_max_parallelism(max_parallelism)
    cdef Py_ssize_t n
    cdef const uint32_t[:, ::1] u
    cdef const uint8_t[:, ::1] b
    cdef int32_t[::1] o
    cdef const int32_t[::1] hashes
    if isinstance(keys, np.ndarray):
        if keys.ndim != 1:
            raise ValueError(f"key_groups expects a 1-d array of keys, got shape {keys.shape}")
        kind = keys.dtype.kind
        if kind in "ib" or (kind == "u" and (keys.size == 0 or keys.dtype.itemsize < 8
                                              or keys.max() <= np.iinfo(np.int64).max)):
            return key_groups_int64(keys.astype(np.int64, copy=False), mp)
        n = keys.shape[0]
        if kind in "US" and n and keys.dtype.itemsize:
            out = np.empty(n, dtype=np.int32)
            o = out
            if kind == "U":
                u = np.ascontiguousarray(keys).view(np.uint32).reshape(n, -1)
                with nogil:
                    fc_key_groups_ucs4_fixed(&u[0, 0], n, u.shape[1], mp, &o[0])
            else:
                b = np.ascontiguousarray(keys).view(np.uint8).reshape(n, -1)
                with nogil:
                    fc_key_groups_bytes_fixed(&b[0, 0], n, b.shape[1], mp, &o[0])
            return out
    hashes = hash_keys(keys)
    n = hashes.shape[0]
    out = np.empty(n, dtype=np.int32)
    o = out
    if n:
        with nogil:
            fc_key_groups_hashes(&hashes[0], n, mp, &o[0])
    return out


def split_by_key(list values, timestamps, list keys, long max_parallelism, int parallelism):
    """A batch's records split over ``parallelism`` channels by the key group of their keys
    (``keys[i]`` is the key of ``values[i]``; contiguous key-group ranges, as ``operator_index``),
    in one pass: a list with, per channel, ``(records, timestamps)`` in arrival order (timestamps
    None when ``timestamps`` is None), or None for a channel that gets no record."""
    cdef int32_t mp = _check_max_parallelism(max_parallelism)
    if parallelism < 1:
        raise ValueError(f"parallelism must be >= 1, got {parallelism}")
    cdef Py_ssize_t i, n = len(values)
    if len(keys) != n or (timestamps is not None and len(timestamps) != n):
        raise ValueError("values, keys and timestamps must have the same length")
    cdef list ts = None if timestamps is None else list(timestamps) if type(timestamps) is not list else timestamps
    cdef list vs = [[] for _ in range(parallelism)]
    cdef list tss = [[] for _ in range(parallelism)] if ts is not None else None
    cdef int32_t c
    for i in range(n):
        c = fc_operator_index(fc_key_group(_hash_key(keys[i], 0), mp), mp, parallelism)
        (<list>vs[c]).append(values[i])
        if ts is not None:
            (<list>tss[c]).append(ts[i])
    return [
        ((<list>vs[c]), None if ts is None else tss[c]) if len(<list>vs[c]) else None
        for c in range(parallelism)
    ]


include "_small_long.pxi"


cdef extern from *:
    """
    /* The key of a record read without Python code: item tuple_index of an exact tuple, item
     * list_index of an exact list (what ``itemgetter(i)`` or the two-phase MessageKey returns for
     * them); NULL when the key selector must be called. Borrowed. */
    static inline PyObject *fc_part_record_key(PyObject *v, Py_ssize_t tuple_index, Py_ssize_t list_index) {
        if (PyTuple_CheckExact(v)) {
            if (tuple_index >= 0 && tuple_index < PyTuple_GET_SIZE(v)) return PyTuple_GET_ITEM(v, tuple_index);
            return NULL;
        }
        if (PyList_CheckExact(v) && list_index >= 0 && list_index < PyList_GET_SIZE(v))
            return PyList_GET_ITEM(v, list_index);
        return NULL;
    }

    /* The stable hash of an exact int (int64 range) or exact str key without Python code: 1 with
     * *h set, 0 for any other key (a big int, a float, a tuple ...: the caller's general rule). */
    static inline int fc_part_simple_hash(PyObject *key, int32_t *h) {
        long long x;
        if (PyLong_CheckExact(key)) {
            if (!fc_small_long(key, &x)) {
                int overflow = 0;
                x = PyLong_AsLongLongAndOverflow(key, &overflow);
                if (overflow) return 0;
            }
            *h = fc_hash_int64((int64_t)x);
            return 1;
        }
        if (PyUnicode_CheckExact(key)) {
            Py_ssize_t n = PyUnicode_GET_LENGTH(key);
            int kind = PyUnicode_KIND(key);
            if (kind == PyUnicode_1BYTE_KIND)
                *h = fc_hash_ucs1((const uint8_t *)PyUnicode_DATA(key), (size_t)n);
            else if (kind == PyUnicode_2BYTE_KIND)
                *h = fc_hash_ucs2((const uint16_t *)PyUnicode_DATA(key), (size_t)n);
            else
                *h = fc_hash_ucs4((const uint32_t *)PyUnicode_DATA(key), (size_t)n);
            return 1;
        }
        return 0;
    }

    /* The channel of records i, i+1, ... of the list values (n items) while their keys are read
     * and hashed without Python code (fc_part_record_key, fc_part_simple_hash): ch[i] set and
     * counts[ch[i]] incremented. Returns the first record it could not take (n: all). */
    static Py_ssize_t fc_part_channels(PyObject *values, Py_ssize_t i, Py_ssize_t n, Py_ssize_t tuple_index,
                                       Py_ssize_t list_index, int32_t mp, const uint16_t *group_channel,
                                       uint16_t *ch, Py_ssize_t *counts) {
        /* a power-of-two max parallelism (the default 128): the key group by a mask, no division */
        uint32_t mask = (mp & (mp - 1)) == 0 ? (uint32_t)mp - 1 : 0;
        for (; i < n; i++) {
            PyObject *key = fc_part_record_key(PyList_GET_ITEM(values, i), tuple_index, list_index);
            int32_t h;
            if (key == NULL || !fc_part_simple_hash(key, &h)) return i;
            uint32_t m = (uint32_t)fc_murmur_hash_int(h); /* non-negative */
            uint16_t c = group_channel[mask ? (m & mask) : (m % (uint32_t)mp)];
            ch[i] = c;
            counts[c]++;
        }
        return n;
    }

    /* Record i of values (and of ts, unless NULL) into the list of its channel ch[i], at that
     * channel's next place pos[c], for every i < n: the lists were made with counts[c] slots. */
    static void fc_part_fill(PyObject *values, PyObject *ts, Py_ssize_t n, const uint16_t *ch,
                             PyObject **vlists, PyObject **tlists, Py_ssize_t *pos) {
        for (Py_ssize_t i = 0; i < n; i++) {
            uint16_t c = ch[i];
            Py_ssize_t at = pos[c]++;
            PyObject *v = PyList_GET_ITEM(values, i);
            Py_INCREF(v);
            PyList_SET_ITEM(vlists[c], at, v);
            if (ts != NULL) {
                PyObject *t = PyList_GET_ITEM(ts, i);
                Py_INCREF(t);
                PyList_SET_ITEM(tlists[c], at, t);
            }
        }
    }
    """
    Py_ssize_t fc_part_channels(list values, Py_ssize_t i, Py_ssize_t n, Py_ssize_t tuple_index,
                                Py_ssize_t list_index, int32_t mp, const uint16_t *group_channel,
                                uint16_t *ch, Py_ssize_t *counts)
    PyObject *fc_part_record_key(object v, Py_ssize_t tuple_index, Py_ssize_t list_index)
    void fc_part_fill(list values, PyObject *ts, Py_ssize_t n, const uint16_t *ch, PyObject **vlists,
                      PyObject **tlists, Py_ssize_t *pos)


DEF STACK_RECORDS = 2048
DEF STACK_CHANNELS = 64

#: the channel of each key group (``operator_index``) for the last (max_parallelism,
#: parallelism) that split_records saw: a lookup instead of a division per record
cdef tuple _group_channels_of = None
cdef object _group_channels = None


cdef const uint16_t[::1] _channel_of_group(int32_t mp, int parallelism):
    global _group_channels_of, _group_channels
    if _group_channels_of != (mp, parallelism):
        table = np.empty(mp, dtype=np.uint16)
        for g in range(mp):
            table[g] = fc_operator_index(g, mp, parallelism)
        _group_channels, _group_channels_of = table, (mp, parallelism)
    return _group_channels


@cython.boundscheck(False)
@cython.wraparound(False)
def split_records(list values, timestamps, key_of, Py_ssize_t tuple_index, Py_ssize_t list_index,
                  long max_parallelism, int parallelism):
    """:func:`split_by_key` with the keys read here: the key of a record is item ``tuple_index``
    of an exact tuple (when it has that many items; -1: never), item ``list_index`` of an exact
    list (likewise), else ``key_of(record)`` — so ``key_of`` must return exactly those items for
    them (``itemgetter(i)``: both indexes ``i``). Int (int64) and str keys read that way are
    hashed in C with no Python call and no list of keys; the records go into lists of their
    exact size. Same result as ``split_by_key(values, timestamps, [key_of(v) for v in values],
    ...)``; an exception of ``key_of`` or of hashing a key propagates as it is."""
    cdef int32_t mp = _check_max_parallelism(max_parallelism)
    if not 1 <= parallelism <= 65535:
        raise ValueError(f"parallelism must be in [1, 65535], got {parallelism}")
    cdef Py_ssize_t i, c, n = len(values)
    if timestamps is not None and len(timestamps) != n:
        raise ValueError("values and timestamps must have the same length")
    cdef list ts = None if timestamps is None else list(timestamps) if type(timestamps) is not list else timestamps
    cdef uint16_t ch_stack[STACK_RECORDS]
    cdef Py_ssize_t counts_stack[STACK_CHANNELS]
    cdef Py_ssize_t pos_stack[STACK_CHANNELS]
    cdef PyObject *vl_stack[STACK_CHANNELS]
    cdef PyObject *tl_stack[STACK_CHANNELS]
    cdef uint16_t *ch = ch_stack
    cdef Py_ssize_t *counts = counts_stack
    cdef Py_ssize_t *pos = pos_stack
    cdef PyObject **vl = vl_stack
    cdef PyObject **tl = tl_stack
    cdef PyObject *kp
    cdef int32_t h
    cdef const uint16_t[::1] group_channel
    cdef bint big = n > STACK_RECORDS, many = parallelism > STACK_CHANNELS
    if big:
        ch = <uint16_t *>malloc(n * sizeof(uint16_t))
    if many:
        counts = <Py_ssize_t *>malloc(3 * parallelism * sizeof(Py_ssize_t))
        vl = <PyObject **>malloc(2 * parallelism * sizeof(PyObject *))
        if counts != NULL:
            pos = counts + parallelism
        if vl != NULL:
            tl = vl + parallelism
    vlists = [None] * parallelism
    tlists = [None] * parallelism if ts is not None else None
    try:
        if ch == NULL or counts == NULL or vl == NULL:
            raise MemoryError()
        for c in range(parallelism):
            counts[c] = 0
        group_channel = _channel_of_group(mp, parallelism)
        i = 0
        while True:
            i = fc_part_channels(values, i, n, tuple_index, list_index, mp, &group_channel[0], ch, counts)
            if i >= n:
                break
            # a key read in Python (the selector called) or of another type (the general hash)
            v = values[i]
            kp = fc_part_record_key(v, tuple_index, list_index)
            key = <object>kp if kp != NULL else key_of(v)
            h = _hash_key(key, 0)
            if len(values) != n:
                raise RuntimeError("the batch changed size while its keys were computed")
            c = fc_operator_index(fc_key_group(h, mp), mp, parallelism)
            ch[i] = <uint16_t>c
            counts[c] += 1
            i += 1
        for c in range(parallelism):
            pos[c] = 0
            if counts[c]:
                vlists[c] = PyList_New(counts[c])
                vl[c] = <PyObject *>vlists[c]
                if ts is not None:
                    tlists[c] = PyList_New(counts[c])
                    tl[c] = <PyObject *>tlists[c]
        # the last Python code (a key selector, a finalizer run by a collection) ran before this
        if len(values) != n or (ts is not None and len(ts) != n):
            raise RuntimeError("the batch or its timestamps changed size while the keys were computed")
        fc_part_fill(values, <PyObject *>ts if ts is not None else NULL, n, ch, vl, tl, pos)
    finally:
        if big:
            free(ch)
        if many:
            free(counts)
            free(vl)
    return [
        None if vlists[c] is None else (vlists[c], None if ts is None else tlists[c])
        for c in range(parallelism)
    ]


# --- the keyed split of columnar batches: one pass over the rows, the channel looked up on the way -----

cdef extern from *:
    """
    /* Rows i, i+1, ... of K columns of items of type T moved to their channels: the channel of row i
     * is table[keys[i]] (uint16), or bit keys[i] of the uint8 table when bits (two channels: a table
     * of 100k keys in 12.5 kB stays in the L1 cache, where the uint16 one is evicted by the next
     * operator's state and its random lookups stall the loop); at[c] is the address of channel c's
     * next place (its buffer plus T's size times its rows so far), column j's place at at[c] +
     * off[j]. Two channels: both addresses in registers, picked without a branch (the channels are
     * random), a table entry beyond 1 noted in *seen (the row went to channel entry & 1: within its
     * room, as every channel has room for all rows). More channels: an entry beyond nch stops the
     * loop with *seen set to it. The loop stops at the first key that is negative or not below
     * size (in keys). Returns the rows done. */
    #define FC_SCATTER_STORES(T, K)                                                              \\
        *(T *)(a + o0) = s0[i];                                                                 \\
        if (K > 1) *(T *)(a + o1) = s1[i];                                                      \\
        if (K > 2) *(T *)(a + o2) = s2[i];                                                      \\
        if (K > 3) *(T *)(a + o3) = s3[i];

    #define FC_SCATTER_TWO(T, K, LOOKUP)                                                         \\
        for (; i < n; i++) {                                                                    \\
            uint64_t key = (uint64_t)keys[i];                                                   \\
            if (key >= size) break;                                                             \\
            uint32_t c = (LOOKUP);                                                              \\
            any |= c;                                                                           \\
            uintptr_t m = (uintptr_t)0 - (uintptr_t)(c & 1);                                    \\
            uintptr_t a = a0 ^ ((a0 ^ a1) & m);                                                 \\
            a1 += (uintptr_t)sizeof(T) & m;                                                     \\
            a0 += (uintptr_t)sizeof(T) & ~m;                                                    \\
            FC_SCATTER_STORES(T, K)                                                             \\
        }

    #define FC_SCATTER_FN(T, K)                                                                  \\
    static Py_ssize_t fc_scatter_##T##_##K(const int64_t *keys, Py_ssize_t n, const void *tab, int bits, \\
                                          uint64_t size, Py_ssize_t nch, size_t *at,            \\
                                          const void **src, const Py_ssize_t *off, uint32_t *seen) { \\
        const T *s0 = (const T *)src[0], *s1 = (const T *)src[1];                               \\
        const T *s2 = (const T *)src[2], *s3 = (const T *)src[3];                               \\
        uintptr_t o0 = (uintptr_t)off[0], o1 = (uintptr_t)off[1];                               \\
        uintptr_t o2 = (uintptr_t)off[2], o3 = (uintptr_t)off[3];                               \\
        const uint16_t *table = (const uint16_t *)tab;                                          \\
        const uint8_t *bitmap = (const uint8_t *)tab;                                           \\
        Py_ssize_t i = 0;                                                                       \\
        if (nch == 2) {                                                                         \\
            uintptr_t a0 = at[0], a1 = at[1];                                                   \\
            uint32_t any = 0;                                                                   \\
            if (bits) {                                                                         \\
                FC_SCATTER_TWO(T, K, (bitmap[key >> 3] >> (key & 7)) & 1)                       \\
            } else {                                                                            \\
                FC_SCATTER_TWO(T, K, table[key])                                                \\
            }                                                                                   \\
            at[0] = a0;                                                                         \\
            at[1] = a1;                                                                         \\
            *seen = any;                                                                        \\
            return i;                                                                           \\
        }                                                                                       \\
        for (; i < n; i++) {                                                                    \\
            uint64_t key = (uint64_t)keys[i];                                                   \\
            if (key >= size) break;                                                             \\
            uint16_t c = table[key];                                                            \\
            if (c >= nch) {                                                                     \\
                *seen = c;                                                                      \\
                break;                                                                          \\
            }                                                                                   \\
            uintptr_t a = at[c];                                                                \\
            at[c] = a + sizeof(T);                                                              \\
            FC_SCATTER_STORES(T, K)                                                             \\
        }                                                                                       \\
        return i;                                                                               \\
    }

    #define FC_SCATTER_WIDTH(T)                                                                  \\
        FC_SCATTER_FN(T, 1) FC_SCATTER_FN(T, 2) FC_SCATTER_FN(T, 3) FC_SCATTER_FN(T, 4)

    FC_SCATTER_WIDTH(uint8_t)
    FC_SCATTER_WIDTH(uint16_t)
    FC_SCATTER_WIDTH(uint32_t)
    FC_SCATTER_WIDTH(uint64_t)

    typedef Py_ssize_t (*fc_scatter_fn)(const int64_t *, Py_ssize_t, const void *, int, uint64_t, Py_ssize_t,
                                        size_t *, const void **, const Py_ssize_t *, uint32_t *);

    /* The loop for items of width bytes (1, 2, 4, 8) and k columns (1 to 4). */
    static fc_scatter_fn fc_scatter_pick(int width, int k) {
        static const fc_scatter_fn fns[4][4] = {
            {fc_scatter_uint8_t_1, fc_scatter_uint8_t_2, fc_scatter_uint8_t_3, fc_scatter_uint8_t_4},
            {fc_scatter_uint16_t_1, fc_scatter_uint16_t_2, fc_scatter_uint16_t_3, fc_scatter_uint16_t_4},
            {fc_scatter_uint32_t_1, fc_scatter_uint32_t_2, fc_scatter_uint32_t_3, fc_scatter_uint32_t_4},
            {fc_scatter_uint64_t_1, fc_scatter_uint64_t_2, fc_scatter_uint64_t_3, fc_scatter_uint64_t_4},
        };
        int w = width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 2 : 3;
        return fns[w][k - 1];
    }
    """
    ctypedef Py_ssize_t (*fc_scatter_fn)(const int64_t *, Py_ssize_t, const void *, int, uint64_t, Py_ssize_t,
                                        size_t *, const void **, const Py_ssize_t *,
                                        uint32_t *) noexcept nogil
    fc_scatter_fn fc_scatter_pick(int width, int k) noexcept nogil


@cython.boundscheck(False)
@cython.wraparound(False)
def scatter_columns(keys, table, Py_ssize_t parallelism, list columns, list out, offsets, bint bits=False):
    """A batch's rows moved to their channels in one pass over the rows per up to 4 columns of one
    item size: the channel of row i is ``table[keys[i]]`` (uint16, as the hash writer keeps it for
    small non-negative int keys), looked up on the way (no array of channels is written and read
    back); with ``bits`` (2 channels), bit ``keys[i]`` of ``table`` (uint8, little bit order:
    ``np.packbits(channels, bitorder="little")``, 8 keys per byte, a table the cache keeps). Row i of column j goes to the next place of its channel's column j: ``out[c]`` (a
    writable contiguous array, e.g. over a buffer of Arrow's memory pool) from byte ``offsets[j]``
    on, channel c's rows in arrival order. Every channel has room for all the rows (``len(keys)``
    items of each column from its offset), so no counting pass is needed; pages beyond the rows
    written are never touched.

    ``columns``: at least one 1-d numpy array of ``len(keys)`` items of 1, 2, 4 or 8 bytes (any
    dtype without objects). ``np.arange(len(keys))`` as a column gives each channel's rows (for
    columns this cannot move). Returns the rows of each channel (int64 array), or None when a key
    is negative or not below the keys the table covers (``len(table)``, ``8 * len(table)`` with
    ``bits``: the caller grows the table or takes another path; what was written is then no
    result)."""
    cdef const int64_t[::1] k = np.ascontiguousarray(keys, dtype=np.int64)
    cdef const uint16_t[::1] t
    cdef const uint8_t[::1] tb
    cdef const void *tp = NULL
    cdef uint64_t size
    if parallelism < 1 or parallelism > 65536:
        raise ValueError(f"parallelism must be in [1, 65536], got {parallelism}")
    if bits:
        if parallelism != 2:
            raise ValueError(f"a table of bits names one of 2 channels, not of {parallelism}")
        tb = np.ascontiguousarray(table, dtype=np.uint8)
        size = 8 * <uint64_t>tb.shape[0]
        if size:
            tp = &tb[0]
    else:
        t = np.ascontiguousarray(table, dtype=np.uint16)
        size = t.shape[0]
        if size:
            tp = &t[0]
    cdef Py_ssize_t n = k.shape[0], ncol = len(columns), j, c, g, width, need = 0
    if len(out) != parallelism:
        raise ValueError(f"out has {len(out)} arrays for {parallelism} channels")
    if not ncol or len(offsets) != ncol:
        raise ValueError(f"{len(offsets)} offsets for {ncol} columns (at least one)")
    cdef list srcs = []
    cdef cnp.ndarray arr
    for col in columns:
        if not isinstance(col, np.ndarray) or (<cnp.ndarray>col).ndim != 1 or len(col) != n:
            raise ValueError(f"every column must be a 1-d numpy array of {n} items")
        arr = <cnp.ndarray>col
        if arr.itemsize not in (1, 2, 4, 8) or arr.dtype.hasobject:
            raise ValueError(f"cannot move items of dtype {arr.dtype} (1, 2, 4 or 8 bytes, no objects)")
        srcs.append(arr if cnp.PyArray_IS_C_CONTIGUOUS(arr) else np.ascontiguousarray(arr))
    # per column: its item size and offset; per channel: where its array starts, where the next row
    # goes (one allocation)
    cdef Py_ssize_t *mem = <Py_ssize_t *>malloc((2 * ncol + 2 * parallelism) * sizeof(Py_ssize_t))
    if mem == NULL:
        raise MemoryError()
    cdef Py_ssize_t *widths = mem
    cdef Py_ssize_t *offs = mem + ncol
    cdef size_t *bases = <size_t *>(mem + 2 * ncol)
    cdef size_t *at = bases + parallelism
    cdef const void *sp[4]
    cdef Py_ssize_t op[4]
    cdef int kk
    cdef uint32_t seen = 0
    cdef Py_ssize_t done
    cdef fc_scatter_fn fn
    cdef bint first = True
    cdef int64_t[::1] cnt
    try:
        for j in range(ncol):
            width = widths[j] = (<cnp.ndarray>srcs[j]).itemsize
            offs[j] = offsets[j]
            if offs[j] < 0 or offs[j] % width:
                raise ValueError(f"offset {offs[j]} of a column of {width}-byte items is not a non-negative "
                                 f"multiple of {width}")
            need = max(need, offs[j] + n * width)
        # each column's room (n items from its offset) apart from the others'
        for j in range(ncol):
            for g in range(j):
                if offs[j] < offs[g] + n * widths[g] and offs[g] < offs[j] + n * widths[j]:
                    raise ValueError("the columns' places overlap: offsets must leave each column room "
                                     "for all rows")
        for c in range(parallelism):
            o = out[c]
            if (not isinstance(o, np.ndarray) or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>o)
                    or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>o) or (<cnp.ndarray>o).nbytes < need):
                raise ValueError(f"every out array must be a writable contiguous array of at least {need} "
                                 "bytes")
            bases[c] = <size_t>cnp.PyArray_DATA(<cnp.ndarray>o)
            for j in range(ncol):
                if (bases[c] + <size_t>offs[j]) % <size_t>widths[j]:
                    raise ValueError(f"out array {c} is not aligned to {widths[j]} bytes")
        counts = np.zeros(parallelism, dtype=np.int64)
        cnt = counts
        if not n:
            return counts
        if not size:
            return None
        # columns by item size, up to 4 per pass over the rows
        for width in (8, 4, 2, 1):
            idx = [j for j in range(ncol) if widths[j] == width]
            for g in range(0, len(idx), 4):
                part = idx[g : g + 4]
                kk = len(part)
                for j in range(4):
                    if j < kk:
                        sp[j] = cnp.PyArray_DATA(<cnp.ndarray>srcs[<Py_ssize_t>part[j]])
                        op[j] = offs[<Py_ssize_t>part[j]]
                    else:
                        sp[j], op[j] = NULL, 0
                for c in range(parallelism):
                    at[c] = bases[c]
                fn = fc_scatter_pick(<int>width, kk)
                with nogil:
                    done = fn(&k[0], n, tp, bits, size, parallelism, at, sp, op, &seen)
                if seen >= <uint32_t>parallelism:
                    raise ValueError(f"the channel table names a channel beyond {parallelism}")
                if done < n:
                    return None
                for c in range(parallelism):
                    if first:
                        cnt[c] = <int64_t>((at[c] - bases[c]) // <size_t>width)
                    elif cnt[c] != <int64_t>((at[c] - bases[c]) // <size_t>width):
                        raise RuntimeError("the keys or the table changed while the columns were moved")
                first = False
        return counts
    finally:
        free(mem)
