# cython: language_level=3
"""Compiled per-record loops of the window operators' ``udf`` path (Python functions per record).

The user's functions (timestamp assigner, key selector, AggregateFunction.add / reduce) are
still called once per record, through vectorcall; what these loops remove is everything around
those calls: the interpreter's loop, zip tuples, attribute look-ups and the Python-level int
arithmetic of window assignment. State is owned by the operator and stays readable from Python
(``panes[start]`` a :class:`KeyedPanes` of ``key -> accumulator`` for tumbling windows;
``single[key]`` a :class:`Session` and a bucket wheel of sessions by end), so snapshots, late
firings and the general cases stay in Python.

Each loop handles the common case and *returns the index of the first record it leaves to the
caller* (a record with a non-int timestamp, a late record, a key with several open sessions):
the operator handles that record on its Python path (the twin these loops are tested against)
and calls the loop again from the next one. ``Cursor.position`` is the index of the record
being processed, so a failing user function is reported with its record.
"""

cimport cython
from cpython.object cimport PyObject
from cpython.dict cimport PyDict_SetItem
from cpython.list cimport PyList_Append, PyList_New
from libc.limits cimport LLONG_MIN
from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport free, malloc, qsort, realloc
from libc.string cimport memset


cdef extern from *:
    """
    /* CPython's own rule for untracking a tuple (_PyTuple_MaybeUntrack, which the collector
     * applies when it first examines one): a tuple none of whose items may be tracked (an
     * object outside the collector, or a tuple that is itself untracked) cannot be part of a
     * reference cycle. Applied when a tuple is made, it spares the next young collections from
     * walking it. */
    static inline int fc_may_be_tracked(PyObject *o) {
        return PyObject_IS_GC(o) && (!PyTuple_CheckExact(o) || PyObject_GC_IsTracked(o));
    }
    static inline void fc_maybe_untrack(PyObject *t) {
        Py_ssize_t i, n;
        if (!PyTuple_CheckExact(t) || !PyObject_GC_IsTracked(t)) return;
        n = PyTuple_GET_SIZE(t);
        for (i = 0; i < n; i++)
            if (fc_may_be_tracked(PyTuple_GET_ITEM(t, i))) return;
        PyObject_GC_UnTrack(t);
    }
    /* A session's key and accumulator, and a tuple accumulator's first items, asked of memory
     * before the user's function reads them: each is far from anything touched last (one
     * session per key, 100k keys), so otherwise each read waits in turn. */
    static inline void fc_prefetch_two(PyObject *a, PyObject *b) {
        __builtin_prefetch(a);
        __builtin_prefetch(b);
    }
    static inline void fc_prefetch_items(PyObject *t) {
        Py_ssize_t i, n;
        if (!PyTuple_CheckExact(t)) return;
        n = PyTuple_GET_SIZE(t);
        if (n > 4) n = 4;
        for (i = 0; i < n; i++) __builtin_prefetch(PyTuple_GET_ITEM(t, i));
    }
    """
    void fc_maybe_untrack(object t)
    void fc_prefetch_two(PyObject *a, PyObject *b)
    void fc_prefetch_items(PyObject *t)
    int PyGC_Disable()
    int PyGC_Enable()


include "_small_long.pxi"

cdef extern from *:
    int fc_small_long(PyObject *v, long long *out) noexcept


cdef extern from "Python.h":
    PyObject *PyDict_GetItemWithError(object d, object key) except? NULL
    PyObject *_list_get "PyList_GET_ITEM"(object lst, Py_ssize_t i)
    Py_ssize_t _list_size "PyList_GET_SIZE"(object lst)
    bint PyLong_CheckExact(object o)
    bint PyList_CheckExact(object o)
    bint PyTuple_CheckExact(object o)
    Py_ssize_t PyTuple_GET_SIZE(object o)
    PyObject *_tuple_get "PyTuple_GET_ITEM"(object tup, Py_ssize_t i)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    void Py_INCREF_raw "Py_INCREF"(PyObject *o)
    void Py_XDECREF_raw "Py_XDECREF"(PyObject *o)
    void _list_set "PyList_SET_ITEM"(object lst, Py_ssize_t i, PyObject *o)


#: What a window keeps per key: AggregateFunction accumulator, reduced value, list of elements.
KIND_AGGREGATING = 0
KIND_REDUCING = 1
KIND_LIST = 2
#: The global window of two-phase aggregation (runtime/operators/local_agg.py): each value is a
#: partial ``(key, partial[, record])``; a window's first partial is its accumulator (reduced
#: value) as it is, each later one is folded in with ``fn(acc, partial)`` (the user's merge of
#: accumulators, or reduce).
KIND_FOLD_PARTIAL = 3


cdef inline object _partial_of(object value):
    """``value[1]`` of a partial (a tuple, read in C; anything else by subscript)."""
    if PyTuple_CheckExact(value) and PyTuple_GET_SIZE(value) >= 2:
        return <object>_tuple_get(value, 1)
    return value[1]


cdef class Cursor:
    """Where a loop is in its batch (read by the operator when a user function raised)."""

    cdef public Py_ssize_t position
    #: the key and timestamp of the record a loop stopped at (its key selector and timestamp
    #: assigner already ran: they are not called twice)
    cdef public object key
    cdef public object ts
    #: the record the window saw last (a fused map's output when there is one)
    cdef public object value
    #: 0 while the timestamp assigner runs, 2 while a fused map runs, else 1 (which operator
    #: a failure belongs to)
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
        self.value = None
        self.stage = 1
        self.max_ts = LLONG_MIN


cdef inline long long _floor_mod(long long a, long long b):
    cdef long long r = a % b
    if r < 0:
        r += b
    return r


cdef inline object _fused_head(
    Cursor cur,
    list values,
    object timestamps,
    Py_ssize_t i,
    object extract,
    object no_timestamp,
    object pre,
    object key_of,
    Py_ssize_t key_index,
):
    """Record ``i`` through what the loops fuse before the window: the timestamp assigner (its
    result, or the incoming timestamp, goes to ``cur.ts``), a map (the record the window sees goes
    to ``cur.value``), the key selector (returned). ``cur.stage`` names the function running."""
    cur.position = i
    cdef object value = <object>_list_get(values, i)
    if extract is None:
        cur.ts = <object>_list_get(timestamps, i)
    else:  # fused with the timestamp assigner: timestamps are the incoming ones, or None
        cur.stage = 0
        if timestamps is None:
            cur.ts = extract(value, no_timestamp)
        else:
            cur.ts = extract(value, <object>_list_get(timestamps, i))
        cur.stage = 1
    if pre is not None:  # fused with a map between the assigner and the window
        cur.stage = 2
        value = pre(value)
        cur.stage = 1
    cur.value = value
    if key_index >= 0 and PyTuple_CheckExact(value) and key_index < PyTuple_GET_SIZE(value):
        return <object>_tuple_get(value, key_index)  # key_of is exactly ``lambda v: v[key_index]``
    return key_of(value)


def head_batch(Cursor cur, list values, object timestamps, object extract, object no_timestamp, object pre):
    """A batch through the fused head alone, when what follows it is not a compiled window (at
    parallelism > 1, the keyed exchange's writer): per record the timestamp assigner
    ``extract(value, timestamp)`` (``no_timestamp`` for a batch without timestamps), then the
    map ``pre`` unless it is None. The twin of ``[extract(v, t) for v, t in zip(values, old)]``
    followed by ``list(map(pre, values))``, in one loop without the interpreter's.

    Returns ``(records, timestamps, others)``: the map's outputs (``values`` itself when ``pre``
    is None), the assigner's timestamps, and those of them that are not ints in int64 range
    (``cur.max_ts`` is the largest int one; the watermark generator's batch is
    ``[cur.max_ts, *others]``, as the fused window loops give it). ``cur.position`` and
    ``cur.stage`` say which record and function a failure belongs to (as in the window loops)."""
    cdef Py_ssize_t i, n = _list_size(values)
    cdef object value, tso
    cdef long long ts
    cdef long long max_ts = cur.max_ts
    cdef int overflow
    if timestamps is not None:
        if type(timestamps) is not list:
            timestamps = list(timestamps)
        if _list_size(timestamps) != n:
            raise ValueError("timestamps and values of a batch differ in length")
    cdef list out_ts = PyList_New(n)
    cdef list out = PyList_New(n) if pre is not None else values
    cdef list others = []
    for i in range(n):
        if i >= _list_size(values) or (timestamps is not None and i >= _list_size(timestamps)):
            raise RuntimeError("the batch changed size while its records were processed")
        cur.position = i
        value = <object>_list_get(values, i)
        cur.stage = 0
        if timestamps is None:
            tso = extract(value, no_timestamp)
        else:
            tso = extract(value, <object>_list_get(timestamps, i))
        Py_INCREF_raw(<PyObject *>tso)
        _list_set(out_ts, i, <PyObject *>tso)
        if pre is not None:
            cur.stage = 2
            value = pre(value)
            Py_INCREF_raw(<PyObject *>value)
            _list_set(out, i, <PyObject *>value)
        cur.stage = 1
        if PyLong_CheckExact(tso):
            overflow = 0
            ts = PyLong_AsLongLongAndOverflow(tso, &overflow)
            if overflow == 0:
                if ts > max_ts:
                    max_ts = ts
                continue
        others.append(tso)
    cur.position = n
    cur.max_ts = max_ts
    return out, out_ts, others


# --------------------------------------------------------------------------------------------
# One window's accumulators by key
# --------------------------------------------------------------------------------------------


cdef struct _Entry:
    long long key
    PyObject *keyobj
    PyObject *value


cdef class KeyedPanes:
    """``key -> accumulator`` of one window: a dict for the operator, a C table for the loops.

    While every key is an exact int that fits in 64 bits, entries live in an insertion-ordered
    array with an open-addressing index (CPython's compact-dict layout) and keys are compared as
    C integers — a lookup does not read the stored key object, and the loops update a value in
    place instead of a second dict lookup. The first other key moves every entry into a plain
    dict (in order), which serves from then on, so the semantics are a dict's (``1 == 1.0 ==
    True`` are one key). Iteration is in insertion order, as a dict's.

    The table is not tracked by the cycle collector: a reference cycle through an accumulator
    that refers back to its own window is not collected until the window is cleared.
    """

    cdef _Entry *entries
    cdef int32_t *index
    cdef Py_ssize_t n, cap, mask
    cdef int shift
    cdef int32_t *direct
    cdef Py_ssize_t dsize
    cdef bint hashed
    cdef public dict fallback

    def __cinit__(self):
        self.n = 0
        self.cap = 8
        self.entries = <_Entry *>malloc(self.cap * sizeof(_Entry))
        if self.entries == NULL:
            raise MemoryError()
        self.index = NULL
        self.mask = 0
        self.shift = 64
        self.direct = NULL
        self.dsize = 0
        self.hashed = False
        self.fallback = None

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.entries != NULL:
            for i in range(self.n):
                Py_XDECREF_raw(self.entries[i].keyobj)
                Py_XDECREF_raw(self.entries[i].value)
            free(self.entries)
        if self.index != NULL:
            free(self.index)
        if self.direct != NULL:
            free(self.direct)

    # -- the C side
    # Keys are found through ``direct`` (entry index by key) while they are small non-negative
    # ints, dense enough to be worth it (W2's 10k keys: one array read, no hashing, no probe);
    # through the open-addressing ``index`` from the first key that is not. ------------------------------------------------------------------------
    cdef inline Py_ssize_t _slot(self, long long k):
        return <Py_ssize_t>((<uint64_t>k * <uint64_t>0x9E3779B97F4A7C15ULL) >> self.shift)

    cdef Py_ssize_t find(self, long long k):
        """The entry index of int key ``k``, or -1."""
        cdef Py_ssize_t s
        cdef int32_t e
        if not self.hashed:
            return self.direct[k] if 0 <= k < self.dsize else -1
        s = self._slot(k)
        while True:
            e = self.index[s]
            if e < 0:
                return -1
            if self.entries[e].key == k:
                return e
            s = (s + 1) & self.mask

    cdef int _build_index(self, Py_ssize_t size) except -1:
        """The hash index at ``size`` slots (a power of two) over every entry."""
        cdef Py_ssize_t i, s, bits = 0
        cdef int32_t *idx = <int32_t *>malloc(size * sizeof(int32_t))
        if idx == NULL:
            raise MemoryError()
        if self.index != NULL:
            free(self.index)
        self.index = idx
        self.mask = size - 1
        while (<Py_ssize_t>1 << bits) < size:
            bits += 1
        self.shift = 64 - bits
        for i in range(size):
            idx[i] = -1
        for i in range(self.n):
            s = self._slot(self.entries[i].key)
            while idx[s] >= 0:
                s = (s + 1) & self.mask
            idx[s] = <int32_t>i
        return 0

    cdef int insert(self, long long k, object keyobj, object value) except -1:
        """Add int key ``k`` (not present) with ``value``."""
        cdef Py_ssize_t s
        cdef _Entry *grown
        if self.n == self.cap:
            grown = <_Entry *>realloc(self.entries, self.cap * 2 * sizeof(_Entry))
            if grown == NULL:
                raise MemoryError()
            self.entries = grown
            self.cap *= 2
        if not self.hashed:
            if k < 0 or k >= (1 << 22) or k >= 16 * (self.n + 64):
                self._to_hashed()
            else:
                if k >= self.dsize:
                    self._grow_direct(k)
                self.direct[k] = <int32_t>self.n
        if self.hashed:
            if (self.n + 1) * 3 > (self.mask + 1) * 2:
                self._build_index((self.mask + 1) * 2)
            s = self._slot(k)
            while self.index[s] >= 0:
                s = (s + 1) & self.mask
            self.index[s] = <int32_t>self.n
        Py_INCREF_raw(<PyObject *>keyobj)
        Py_INCREF_raw(<PyObject *>value)
        self.entries[self.n].key = k
        self.entries[self.n].keyobj = <PyObject *>keyobj
        self.entries[self.n].value = <PyObject *>value
        self.n += 1
        return 0

    cdef int _grow_direct(self, long long k) except -1:
        cdef Py_ssize_t size = max(64, self.dsize * 2, <Py_ssize_t>k + 1), i
        cdef int32_t *grown = <int32_t *>realloc(self.direct, size * sizeof(int32_t))
        if grown == NULL:
            raise MemoryError()
        for i in range(self.dsize, size):
            grown[i] = -1
        self.direct = grown
        self.dsize = size
        return 0

    cdef int _to_hashed(self) except -1:
        cdef Py_ssize_t size = 16
        while size * 2 < (self.n + 1) * 3:
            size *= 2
        self._build_index(size * 2)
        free(self.direct)
        self.direct = NULL
        self.dsize = 0
        self.hashed = True
        return 0

    cdef inline void put_at(self, Py_ssize_t e, object value):
        cdef PyObject *old = self.entries[e].value
        Py_INCREF_raw(<PyObject *>value)
        self.entries[e].value = <PyObject *>value
        Py_XDECREF_raw(old)

    cdef int int_key(self, object key, long long *out) except -1:
        """1 and the key in ``out`` when the table can take ``key``; else 0 (after moving every
        entry into the fallback dict)."""
        cdef int overflow = 0
        if self.fallback is None and PyLong_CheckExact(key):
            out[0] = PyLong_AsLongLongAndOverflow(key, &overflow)
            if not overflow:
                return 1
        if self.fallback is None:
            self._to_dict()
        return 0

    cdef _to_dict(self):
        cdef dict d = {}
        cdef Py_ssize_t i
        for i in range(self.n):
            d[<object>self.entries[i].keyobj] = <object>self.entries[i].value
        for i in range(self.n):
            Py_XDECREF_raw(self.entries[i].keyobj)
            Py_XDECREF_raw(self.entries[i].value)
        self.n = 0
        self.fallback = d

    # -- the dict side -----------------------------------------------------------------------
    def get(self, key, default=None):
        cdef long long k
        cdef Py_ssize_t e
        if self.int_key(key, &k):
            e = self.find(k)
            return default if e < 0 else <object>self.entries[e].value
        return self.fallback.get(key, default)

    def __getitem__(self, key):
        missing = self
        value = self.get(key, missing)
        if value is missing:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        cdef long long k
        cdef Py_ssize_t e
        if self.int_key(key, &k):
            e = self.find(k)
            if e < 0:
                self.insert(k, key, value)
            else:
                self.put_at(e, value)
        else:
            self.fallback[key] = value

    def __contains__(self, key):
        return self.get(key, self) is not self

    def __len__(self):
        return self.n if self.fallback is None else len(self.fallback)

    def __bool__(self):
        return len(self) > 0

    def keys(self):
        if self.fallback is not None:
            return list(self.fallback.keys())
        return [<object>self.entries[i].keyobj for i in range(self.n)]

    def values(self):
        if self.fallback is not None:
            return list(self.fallback.values())
        return [<object>self.entries[i].value for i in range(self.n)]

    def items(self, Py_ssize_t start=0, stop=None):
        """``[(key, value), ...]`` in insertion order (``[start:stop]`` of it: a part of a large
        table at a time, while its entries are in the cache). The pairs, and values that are tuples of
        atomic values (the usual accumulator), are untracked by the cycle collector as CPython
        itself untracks such tuples in their first collection: a firing's 10,000s of pairs (the
        partials of two-phase aggregation) do not make each young collection walk them. The
        collector waits while the pairs are made (no Python code runs in this loop): one young
        collection afterwards instead of one per 700 pairs, each walking every accumulator the
        window made since the last one."""
        cdef Py_ssize_t i
        cdef list out
        cdef tuple pair
        cdef object value
        cdef int gc_was_on
        cdef Py_ssize_t end
        if self.fallback is not None:
            pairs = list(self.fallback.items())
            return pairs if start == 0 and stop is None else pairs[start:stop]
        end = self.n if stop is None else min(<Py_ssize_t>stop, self.n)
        if start < 0 or end < 0:
            raise ValueError("start and stop must be >= 0")
        if start >= end:
            return []
        out = [None] * (end - start)
        gc_was_on = PyGC_Disable()
        try:
            for i in range(start, end):
                value = <object>self.entries[i].value
                fc_maybe_untrack(value)
                pair = (<object>self.entries[i].keyobj, value)
                fc_maybe_untrack(pair)
                out[i - start] = pair
        finally:
            if gc_was_on:
                PyGC_Enable()
        return out

    def __iter__(self):
        return iter(self.keys())

    def map_values(self, fn):
        """``[fn(v) for v in self.values()]`` (a firing's ``get_result`` per key), in C."""
        cdef Py_ssize_t i
        cdef list out
        if self.fallback is not None:
            return [fn(v) for v in self.fallback.values()]
        out = [None] * self.n
        for i in range(self.n):
            out[i] = fn(<object>self.entries[i].value)
        return out

    def update(self, other):
        for key, value in (other.items() if hasattr(other, "items") else other):
            self[key] = value

    def to_dict(self) -> dict:
        """The entries as a plain dict (snapshots)."""
        return dict(self.items())

    def __repr__(self):
        return f"KeyedPanes({self.to_dict()!r})"


cdef inline bint _int64(object o, long long *out) except -1:
    """``o`` is an exact int in the int64 range (its value to ``out``)."""
    cdef int overflow = 0
    cdef long long v
    if not PyLong_CheckExact(o):
        return False
    v = PyLong_AsLongLongAndOverflow(o, &overflow)
    if overflow:
        return False
    out[0] = v
    return True


@cython.no_gc
@cython.freelist(64)
cdef class Session:
    """One open event-time session of a key: ``[start, end)`` and its accumulator.

    Not tracked by the cycle collector (a window operator holds one per open session, often
    hundreds of thousands, and would otherwise make every young collection walk them): an
    accumulator that refers back to its own session is freed when the session closes, not by
    the collector. ``end`` is None once the session was merged into another.

    Bounds that are both ints in the int64 range are kept as C integers (``_ints``), any other
    as the objects given: the compiled loops read and grow a session without touching an int
    object per record (the session's bound objects are far from anything the loop touched last,
    so each read waited for memory, and each growth made a new int and freed the old one).
    ``start`` and ``end`` read as ints equal to those set.
    """

    # (what the compiled loops read per record first: one cache line from the object's start
    # more often than not)
    cdef public object key
    cdef public object acc
    cdef long long _s, _e
    cdef bint _ints
    cdef object _so, _eo

    def __init__(self, key, start, end, acc):
        self.key = key
        _set_bounds(self, start, end)
        self.acc = acc

    @property
    def start(self):
        return self._s if self._ints else self._so

    @start.setter
    def start(self, value):
        _set_bounds(self, value, self.end)

    @property
    def end(self):
        return self._e if self._ints else self._eo

    @end.setter
    def end(self, value):
        _set_bounds(self, self.start, value)

    def __reduce__(self):
        return Session, (self.key, self.start, self.end, self.acc)

    def __repr__(self):
        return f"Session({self.key!r}, {self.start!r}, {self.end!r}, {self.acc!r})"


cdef inline int _set_bounds(Session s, object so, object eo) except -1:
    """Both bounds as C integers when both are exact int64 ints, else both as the objects."""
    cdef long long a, b
    if _int64(so, &a) and _int64(eo, &b):
        s._s = a
        s._e = b
        s._ints = True
        s._so = None
        s._eo = None
    else:
        s._so = so
        s._eo = eo
        s._ints = False
    return 0


# --------------------------------------------------------------------------------------------
# Open sessions by key
# --------------------------------------------------------------------------------------------


#: SessionMap's slots never cover keys at or above this (32 MB of pointers at most) ...
cdef Py_ssize_t _SM_LIMIT = 1 << 22
#: ... nor more than this many slots per key held, beyond the first _SM_FLOOR (8 kB)
cdef Py_ssize_t _SM_SPARSE = 16
cdef Py_ssize_t _SM_FLOOR = 1024
#: the default of SessionMap.pop (no default given: KeyError)
cdef object _SM_MISSING = object()


@cython.final
@cython.no_gc
cdef class SessionMap:
    """``key -> value`` (a key's open :class:`Session`, or its list of sessions): a dict to
    Python, an array indexed by the key to the compiled loops.

    A key equal to an int ``k`` with ``0 <= k < capacity`` lives in slot ``k`` of a C array of
    owned references: finding an exact int key is a range check and one array read — no
    hashing, no probing, no comparison with a stored key object (a W3 ``udf`` job spent a third
    of its time in the dict look-up of a fresh int against its stored key, which each missed the
    cache). Every other key (negative, too large, not equal to an int) lives in the dict
    ``rest``. The slots grow (geometrically, never past 2**22) when an exact int key at or past
    the end is added and stay dense enough (at most 16 slots per key held beyond the first
    1024); the keys of ``rest`` the new range covers move into it. They shrink to the highest
    key held when that is below a quarter of them, and go with the last key: memory follows the
    keys held.

    Keys compare as in a dict: ``True``, ``1.0`` and ``numpy.int64(1)`` are the key ``1`` (an
    object equal to an int has that int's hash) and share its slot. The key object a slot was
    first set with is kept when it is not an exact int, so iteration gives the key objects a
    dict would. Iteration: the slots by key, then ``rest`` in insertion order.

    Not tracked by the cycle collector (as :class:`Session`, which it mostly holds).
    """

    cdef PyObject **slots
    #: slots allocated, slots set, the highest slot set (-1: none)
    cdef Py_ssize_t cap, count, top
    cdef dict rest
    #: slot -> its key object, for the slots set with a key that is not an exact int
    cdef dict odd

    def __cinit__(self):
        self.slots = NULL
        self.cap = 0
        self.count = 0
        self.top = -1
        self.rest = {}
        self.odd = {}

    def __dealloc__(self):
        cdef PyObject **slots = self.slots
        cdef Py_ssize_t i, cap = self.cap
        self.slots = NULL
        self.cap = 0
        self.count = 0
        if slots != NULL:
            for i in range(cap):
                Py_XDECREF_raw(slots[i])
            free(slots)

    # -- the C side --------------------------------------------------------------------------
    cdef inline Py_ssize_t slot(self, object key) except -2:
        """The slot of ``key``, or -1 when it belongs in ``rest``."""
        cdef long long v
        if PyLong_CheckExact(key):
            if fc_small_long(<PyObject *>key, &v) and 0 <= v < self.cap:
                return <Py_ssize_t>v
            return -1
        if self.cap == 0:
            return -1
        return _int_slot(key, 0, self.cap)

    cdef inline PyObject *find(self, object key) except? NULL:
        """The value of ``key`` (borrowed), or NULL."""
        cdef Py_ssize_t s = self.slot(key)
        if s >= 0:
            return self.slots[s]
        return PyDict_GetItemWithError(self.rest, key)

    cdef int put(self, object key, object value) except -1:
        """``self[key] = value``."""
        cdef Py_ssize_t s = self.slot(key)
        cdef long long v
        cdef PyObject *old
        if s < 0 and PyLong_CheckExact(key) and fc_small_long(<PyObject *>key, &v) and v >= 0:
            if self._grow(v):
                s = <Py_ssize_t>v
        if s < 0:
            self.rest[key] = value
            return 0
        old = self.slots[s]
        Py_INCREF_raw(<PyObject *>value)
        self.slots[s] = <PyObject *>value
        if old == NULL:
            self.count += 1
            if s > self.top:
                self.top = s
            if not PyLong_CheckExact(key):
                self.odd[s] = key
        else:
            Py_XDECREF_raw(old)  # last: the map is whole if freeing it runs code
        return 0

    cdef object take(self, object key, object default):
        """Remove ``key`` and return its value; ``default`` when it is not there."""
        cdef Py_ssize_t s = self.slot(key)
        cdef PyObject *old
        if s < 0:
            return self.rest.pop(key, default)
        old = self.slots[s]
        if old == NULL:
            return default
        value = <object>old
        self.slots[s] = NULL
        Py_XDECREF_raw(old)  # ``value`` holds it
        self.count -= 1
        if self.odd:
            self.odd.pop(s, None)
        if s == self.top:
            s -= 1
            while s >= 0 and self.slots[s] == NULL:
                s -= 1
            self.top = s
            if s < 0 or (self.cap > _SM_FLOOR and s < self.cap // 4):
                self._shrink()
        return value

    cdef bint _grow(self, long long v) except -1:
        """Make the slots cover exact int key ``v`` (at or past their end) when they stay dense
        enough, moving the keys of ``rest`` they then cover; False: ``v`` stays in ``rest``."""
        cdef Py_ssize_t old = self.cap, size, held
        cdef PyObject **grown
        if v >= _SM_LIMIT:
            return False
        held = self.count + len(self.rest) + 1
        size = max(<Py_ssize_t>v + 1, old + old // 2, 64)
        size = min((size + 63) & ~(<Py_ssize_t>63), _SM_LIMIT)
        if size > _SM_FLOOR and size > _SM_SPARSE * held:
            size = (<Py_ssize_t>v + 64) & ~(<Py_ssize_t>63)  # only as far as v
            if size > _SM_FLOOR and size > _SM_SPARSE * held:
                return False
        grown = <PyObject **>realloc(self.slots, size * sizeof(PyObject *))
        if grown == NULL:
            raise MemoryError()
        memset(grown + old, 0, (size - old) * sizeof(PyObject *))
        self.slots = grown
        self.cap = size
        if self.rest:
            self._take_from_rest(old, size)
        return True

    cdef int _take_from_rest(self, Py_ssize_t lo, Py_ssize_t hi) except -1:
        """Move the keys of ``rest`` equal to an int in ``[lo, hi)`` into their slots."""
        cdef Py_ssize_t s
        cdef long long v
        moved = []
        for key in list(self.rest):
            if PyLong_CheckExact(key):
                if not (fc_small_long(<PyObject *>key, &v) and lo <= v < hi):
                    continue
                s = <Py_ssize_t>v
            else:
                s = _int_slot(key, lo, hi)
                if s < 0:
                    continue
            moved.append((key, s))
        for key, s in moved:
            if self.slots[s] != NULL:
                continue  # a second key equal to the same int (an odd __eq__): stays in rest
            value = self.rest.pop(key)
            Py_INCREF_raw(<PyObject *>value)
            self.slots[s] = <PyObject *>value
            self.count += 1
            if s > self.top:
                self.top = s
            if not PyLong_CheckExact(key):
                self.odd[s] = key
        return 0

    cdef int _shrink(self) except -1:
        """Only the slots up to the highest one set (none when it is -1)."""
        cdef Py_ssize_t size = (self.top + 64) & ~(<Py_ssize_t>63)
        cdef PyObject **smaller
        if size == 0:
            free(self.slots)
            self.slots = NULL
            self.cap = 0
        elif size < self.cap:
            smaller = <PyObject **>realloc(self.slots, size * sizeof(PyObject *))
            if smaller != NULL:
                self.slots = smaller
                self.cap = size
        return 0

    cdef inline object _key_at(self, Py_ssize_t s):
        if self.odd:
            key = self.odd.get(s, _SM_MISSING)
            if key is not _SM_MISSING:
                return key
        return s

    # -- the dict side -----------------------------------------------------------------------
    def get(self, key, default=None):
        cdef PyObject *found = self.find(key)
        return default if found == NULL else <object>found

    def __getitem__(self, key):
        cdef PyObject *found = self.find(key)
        if found == NULL:
            raise KeyError(key)
        return <object>found

    def __setitem__(self, key, value):
        self.put(key, value)

    def __delitem__(self, key):
        if self.take(key, _SM_MISSING) is _SM_MISSING:
            raise KeyError(key)

    def pop(self, key, default=_SM_MISSING):
        value = self.take(key, default)
        if value is _SM_MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key):
        return self.find(key) != NULL

    def __len__(self):
        return self.count + len(self.rest)

    def __bool__(self):
        return self.count > 0 or len(self.rest) > 0

    def keys(self):
        cdef Py_ssize_t s
        out = [self._key_at(s) for s in range(self.cap) if self.slots[s] != NULL]
        out.extend(self.rest)
        return out

    def values(self):
        cdef Py_ssize_t s
        out = [<object>self.slots[s] for s in range(self.cap) if self.slots[s] != NULL]
        out.extend(self.rest.values())
        return out

    def items(self):
        cdef Py_ssize_t s
        out = [(self._key_at(s), <object>self.slots[s]) for s in range(self.cap) if self.slots[s] != NULL]
        out.extend(self.rest.items())
        return out

    def __iter__(self):
        return iter(self.keys())

    def clear(self):
        while self.count or self.rest:
            for key in self.keys():
                self.take(key, None)

    @property
    def capacity(self):
        """Slots allocated (keys ``0 <= k < capacity`` are in the array): for memory checks."""
        return self.cap

    @property
    def in_slots(self):
        """Keys held in the array (the others are in a dict)."""
        return self.count

    def __reduce__(self):
        return SessionMap, (), None, None, iter(self.items())

    def __repr__(self):
        return f"SessionMap({dict(self.items())!r})"


cdef Py_ssize_t _int_slot(object key, Py_ssize_t lo, Py_ssize_t hi) except -2:
    """``h`` when ``key`` equals the int ``h = hash(key)`` with ``lo <= h < hi``, else -1 (an
    object equal to an int has that int's hash)."""
    cdef Py_hash_t h = hash(key)
    if h < lo or h >= hi:
        return -1
    return <Py_ssize_t>h if key == h else -1


cdef inline int _check_map(object m, str name) except -1:
    if type(m) is not SessionMap and type(m) is not dict:
        raise TypeError(f"{name} must be a SessionMap or a dict, not {type(m).__name__}")
    return 0


cdef inline PyObject *_map_get(object m, object key) except? NULL:
    """``m.get(key)`` borrowed (NULL: absent) of a SessionMap or a dict (checked before)."""
    if type(m) is SessionMap:
        return (<SessionMap>m).find(key)
    return PyDict_GetItemWithError(m, key)


cdef inline int _map_set(object m, object key, object value) except -1:
    if type(m) is SessionMap:
        return (<SessionMap>m).put(key, value)
    return PyDict_SetItem(m, key, value)


cdef inline int _map_del(object m, object key) except -1:
    if type(m) is SessionMap:
        (<SessionMap>m).take(key, None)
    else:
        del (<dict>m)[key]
    return 0


# --------------------------------------------------------------------------------------------
# The loops
# --------------------------------------------------------------------------------------------


def tumbling_batch(
    Cursor cur,
    list values,
    object timestamps,
    object extract,
    object no_timestamp,
    object pre,
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

    A new accumulator (reduced value) that is a tuple of atomic values is untracked by the cycle
    collector at once, as CPython's collector would untrack it when it first looks at it: the
    young collections do not walk every accumulator made since the last one.

    A window ``start`` holds ``windows[start][key]`` (a dict or a :class:`KeyedPanes`); a window
    not there yet is made by ``open_window(start)``. It stops at a record whose timestamp is not an int or whose window
    already fired (``start <= fired_until``): late, or a late firing, for the caller to handle
(with the record's key in ``cur.key``).
    ``fn`` is ``add(value, acc)`` (aggregating, ``create()`` makes a new accumulator) or
    ``reduce(acc, value)`` (reducing); for lists it is unused. Kind 3 takes partials of
    two-phase aggregation: the first ``value[1]`` of a key and window is stored, later ones are
    folded in with ``fn(acc, value[1])`` (see KIND_FOLD_PARTIAL); ``cur.value`` stays the partial. ``key_index`` >= 0 says the key
    selector is exactly ``lambda v: v[key_index]``: on a tuple that is one C subscript (the same
    result, and a tuple subscript runs no user code); -1 calls ``key_of``.

    With ``extract`` (a TimestampAssigner's ``extract_timestamp``) the loop is fused with the
    timestamp assigner: each record's timestamp is ``extract(value, previous)`` where previous
    is ``timestamps[i]``, or ``no_timestamp`` when ``timestamps`` is None. With ``pre`` (a map
    function between the assigner and the window) each record is ``pre(value)`` from then on,
    and the mapped record the loop stopped at is ``cur.value``.
    """
    cdef Py_ssize_t i, n = _list_size(values)
    cdef long long ts, start, lo = 1, hi = 0  # [lo, hi): the current window (empty at first)
    cdef object value, key, tso, acc, panes = None
    cdef PyObject *found
    cdef KeyedPanes kp = None
    cdef long long k
    cdef Py_ssize_t e
    cdef long long max_ts = cur.max_ts
    if timestamps is not None and _list_size(timestamps) != n:
        raise ValueError("timestamps and values of a batch differ in length")
    for i in range(first, n):
        key = _fused_head(cur, values, timestamps, i, extract, no_timestamp, pre, key_of, key_index)
        value = cur.value
        tso = cur.ts
        if not PyLong_CheckExact(tso):
            cur.key = key
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
            if type(panes) is KeyedPanes:
                kp = <KeyedPanes>panes
                if kp.fallback is not None:
                    panes = kp.fallback
                    kp = None
            else:
                kp = None
            lo = start
            hi = start + size
        if kind == 3:  # a partial: fold in its accumulator / reduced value (see KIND_FOLD_PARTIAL)
            value = _partial_of(value)
        if kp is not None:
            if kp.int_key(key, &k):
                e = kp.find(k)
                if kind == 0:
                    if e < 0:
                        acc = fn(value, create())
                        fc_maybe_untrack(acc)
                        kp.insert(k, key, acc)
                    else:
                        acc = fn(value, <object>kp.entries[e].value)
                        fc_maybe_untrack(acc)
                        kp.put_at(e, acc)
                elif kind == 1 or kind == 3:
                    if e < 0:
                        kp.insert(k, key, value)
                    else:
                        acc = fn(<object>kp.entries[e].value, value)
                        fc_maybe_untrack(acc)
                        kp.put_at(e, acc)
                elif e < 0:
                    kp.insert(k, key, [value])
                else:
                    PyList_Append(<object>kp.entries[e].value, value)
                continue
            panes = kp.fallback  # a key the table cannot take: a dict from now on
            kp = None
        found = PyDict_GetItemWithError(panes, key)
        if kind == 0:
            if found == NULL:
                acc = create()
            else:
                acc = <object>found
            PyDict_SetItem(panes, key, fn(value, acc))
        elif kind == 1 or kind == 3:
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


#: EMPTY_ACC (defined below) for the loops above it
cdef object _empty = None


def session_batch(
    Cursor cur,
    list values,
    object timestamps,
    object extract,
    object no_timestamp,
    object pre,
    Py_ssize_t first,
    object key_of,
    Py_ssize_t key_index,
    long long gap,
    long long watermark,
    int kind,
    object create,
    object fn,
    object single,
    object multi,
    dict wheel,
):
    """Add ``values[first:]`` to event-time sessions; returns where it stopped (``n`` = all).

    Handles a record whose key has one open session (``single[key]``, a :class:`Session`)
    that the record's window ``[ts, ts + gap)`` overlaps or touches (the session grows), or a
    key with no session and a window not late (a new session, entered in the bucket
    ``(end - 1) // gap`` of ``wheel``). It stops at anything else — a key with several sessions
    (in ``multi``), a window that would not merge with the key's session, a late window, a
    non-int timestamp — and leaves that record's key and timestamp in ``cur`` for the caller.
    ``extract``, ``no_timestamp``, ``pre`` and ``key_index`` as for :func:`tumbling_batch`.
    ``single`` and ``multi`` are :class:`SessionMap` objects (or dicts).
    """
    cdef Py_ssize_t i, n = _list_size(values)
    cdef long long ts, end, lo, hi, bucket
    cdef object value, key, tso, acc, entries
    cdef Session s
    cdef PyObject *found
    cdef long long max_ts = cur.max_ts
    if timestamps is not None and _list_size(timestamps) != n:
        raise ValueError("timestamps and values of a batch differ in length")
    _check_map(single, "single")
    _check_map(multi, "multi")
    for i in range(first, n):
        key = _fused_head(cur, values, timestamps, i, extract, no_timestamp, pre, key_of, key_index)
        value = cur.value
        tso = cur.ts
        if not PyLong_CheckExact(tso):
            cur.key = key
            cur.max_ts = max_ts
            return i
        ts = tso
        if ts > max_ts:
            max_ts = ts
        end = ts + gap
        found = _map_get(single, key)
        if found != NULL:
            s = <Session?>found
            fc_prefetch_two(<PyObject *>s.key, <PyObject *>s.acc)
            if not s._ints:
                cur.key = key
                cur.ts = tso
                cur.max_ts = max_ts
                return i  # a session of non-int timestamps: the caller's Python path
            lo = s._s
            hi = s._e
            if lo <= end and hi >= ts:  # overlaps or touches: the session grows
                if ts < lo:
                    s._s = ts
                if end > hi:
                    s._e = end
                acc = s.acc
                fc_prefetch_items(<PyObject *>acc)
                if acc is _empty:  # a global session with only extents so far (local_sessions)
                    if kind == 0:
                        s.acc = fn(value, create())
                    elif kind == 1:
                        s.acc = value
                    else:
                        s.acc = [value]
                elif kind == 0:
                    acc = fn(value, acc)
                    fc_maybe_untrack(acc)
                    s.acc = acc
                elif kind == 1:
                    acc = fn(acc, value)
                    fc_maybe_untrack(acc)
                    s.acc = acc
                else:
                    PyList_Append(acc, value)
                continue
            cur.key = key
            cur.ts = tso
            cur.max_ts = max_ts
            return i
        if _map_get(multi, key) != NULL or end - 1 <= watermark:
            cur.key = key
            cur.ts = tso
            cur.max_ts = max_ts
            return i
        if kind == 0:
            acc = fn(value, create())
            fc_maybe_untrack(acc)
        elif kind == 1:
            acc = value
            fc_maybe_untrack(acc)
        else:
            acc = [value]
        s = Session.__new__(Session)
        s.key = key
        s._s = ts
        s._e = end
        s._ints = True
        s.acc = acc
        _map_set(single, key, s)
        bucket = (end - 1) // gap if end - 1 >= 0 else -((-(end - 1) + gap - 1) // gap)
        found = PyDict_GetItemWithError(wheel, bucket)
        if found == NULL:
            PyDict_SetItem(wheel, bucket, [s])
        else:
            PyList_Append(<object>found, s)
    cur.position = n
    cur.max_ts = max_ts
    return n


cdef struct _Due:
    long long end
    Py_ssize_t index


cdef int _due_order(const void *a, const void *b) noexcept nogil:
    cdef const _Due *x = <const _Due *>a
    cdef const _Due *y = <const _Due *>b
    if x.end != y.end:
        return -1 if x.end < y.end else 1
    return -1 if x.index < y.index else (1 if x.index > y.index else 0)


def due_sessions(dict wheel, list buckets, long long watermark, long long gap, object single):
    """The sessions of ``wheel``'s ``buckets`` (ascending) that the watermark closes.

    Each bucket is taken out of ``wheel``; a merged-away session (``end`` None) is skipped, one
    that grew past the watermark moves to the bucket of its end, and a closed one is returned
    after leaving ``single`` when it is its key's only session. Returns ``(closed, others,
    ordered)``: ``closed`` in order of end (ties in bucket order, as a stable sort gives) when
    ``ordered``, else in bucket order (some end is not an int: the caller sorts); ``others``
    are the closed sessions of keys with several sessions, for the caller to take out of its
    ``multi`` map.
    """
    cdef list closed = [], others = []
    cdef Session s
    cdef object entries, end
    cdef long long e, b
    cdef PyObject *found
    cdef bint ordered = True
    cdef Py_ssize_t i, n
    cdef _Due *due
    _check_map(single, "single")
    for bucket in buckets:
        entries = wheel.pop(bucket)
        for s in entries:
            if not s._ints:
                end = s._eo
                if end is None:
                    continue  # merged into another session
                ordered = False  # a bound that is not an int64: Python arithmetic, the caller sorts
                if end - 1 > watermark:
                    wheel.setdefault((end - 1) // gap, []).append(s)
                    continue
            else:
                e = s._e
                if e - 1 > watermark:  # the session grew: its entry moves to the bucket of its end
                    b = (e - 1) // gap if e - 1 >= 0 else -((-(e - 1) + gap - 1) // gap)
                    found = PyDict_GetItemWithError(wheel, b)
                    if found == NULL:
                        PyDict_SetItem(wheel, b, [s])
                    else:
                        PyList_Append(<object>found, s)
                    continue
            found = _map_get(single, s.key)
            if found == <PyObject *>s:
                _map_del(single, s.key)
            else:
                PyList_Append(others, s)
            PyList_Append(closed, s)
    n = len(closed)
    if not ordered or n < 2:
        return closed, others, ordered
    due = <_Due *>malloc(n * sizeof(_Due))
    if due == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            due[i].end = (<Session>_list_get(closed, i))._e
            due[i].index = i
        qsort(due, n, sizeof(_Due), _due_order)
        by_end = [None] * n
        for i in range(n):
            by_end[i] = <object>_list_get(closed, due[i].index)
    finally:
        free(due)
    return by_end, others, True


def emit_sessions(list closed, object result, list values, list timestamps):
    """Append each closed session's result (``result(acc)``, or the accumulator itself when
    ``result`` is None) to ``values`` and its ``end - 1`` to ``timestamps``: the firing of
    sessions whose window function passes the aggregate through."""
    cdef Session s
    for s in closed:
        PyList_Append(values, s.acc if result is None else result(s.acc))
        PyList_Append(timestamps, s._e - 1 if s._ints else s._eo - 1)


# --------------------------------------------------------------------------------------------
# Two-phase sessions (flinkcore.runtime.operators.local_sessions)
# --------------------------------------------------------------------------------------------


cdef inline long long _floor_div(long long a, long long b):
    return a // b if a >= 0 else -((-a + b - 1) // b)


cdef class _EmptyAcc:
    """The accumulator of a global session that has only extents so far."""

    def __repr__(self):
        return "EMPTY_ACC"

    def __reduce__(self):
        return (_empty_acc, ())


def _empty_acc():
    return EMPTY_ACC


@cython.no_gc
@cython.freelist(64)
cdef class LocalSession:
    """One key in the local session operator: its pending partial session ``[start, end)``
    with accumulator ``acc`` (while ``pending``) and the extent it already sent
    ``[sent_start, sent_end)`` (``sent_end`` is LLONG_MIN until it sent one). The object stays
    while the key has either, so a key's next partial reuses it. ``deadline`` is the watermark
    at which the pending partial must go (see :func:`local_deadline`). Untracked by the cycle
    collector, as :class:`Session`."""

    cdef public object key
    cdef public object acc
    cdef public long long start
    cdef public long long end
    cdef public bint pending
    cdef public long long sent_start
    cdef public long long sent_end
    cdef public long long deadline

    def __init__(self, key):
        self.key = key
        self.acc = None
        self.pending = False
        self.sent_end = LLONG_MIN

    def __repr__(self):
        return (
            f"LocalSession({self.key!r}, pending={self.pending}, [{self.start}, {self.end}), "
            f"sent=[{self.sent_start}, {self.sent_end}), deadline={self.deadline})"
        )


cdef inline long long _deadline(LocalSession s):
    """``start - 1``, or the end - 1 of the extent the key already sent when that extent starts
    at or before ``start`` (the global session holding it stays open until the watermark
    reaches its end - 1; see local_sessions' module doc)."""
    cdef long long d = s.start - 1
    if s.sent_end != LLONG_MIN and s.sent_start <= s.start and s.sent_end - 1 > d:
        d = s.sent_end - 1
    return d


@cython.no_gc
@cython.freelist(256)
cdef class _WheelEntry:
    """One entry of the local operator's deadline wheel: a bucket is a chain of these (not a
    list: lists are tracked by the cycle collector, and a young-generation collection walked
    every entry of the young buckets, about 1 ms per collection on W3)."""

    cdef LocalSession s
    cdef _WheelEntry next


cdef inline int _schedule(
    LocalSession s, dict wheel, list overdue, long long watermark, long long width
) except -1:
    """Enter ``s`` under its deadline: in ``overdue`` when the watermark is already there (the
    caller sends those at the end of the batch), else in the bucket ``deadline // width``."""
    cdef long long b
    cdef PyObject *found
    cdef _WheelEntry e
    if s.deadline <= watermark:
        PyList_Append(overdue, s)
        return 0
    b = _floor_div(s.deadline, width)
    e = _WheelEntry.__new__(_WheelEntry)
    e.s = s
    found = PyDict_GetItemWithError(wheel, b)
    if found != NULL:
        e.next = <_WheelEntry>found
    PyDict_SetItem(wheel, b, e)
    return 0


def local_deadline(LocalSession s):
    """The send deadline of ``s``'s pending partial (for the operator's Python path)."""
    return _deadline(s)


def local_schedule(LocalSession s, dict wheel, list overdue, long long watermark, long long width):
    """Set ``s.deadline`` and enter ``s`` under it (for the operator's Python path)."""
    s.deadline = _deadline(s)
    _schedule(s, wheel, overdue, watermark, width)


def local_session_batch(
    Cursor cur,
    list values,
    object timestamps,
    object extract,
    object no_timestamp,
    object pre,
    Py_ssize_t first,
    object key_of,
    Py_ssize_t key_index,
    long long gap,
    long long watermark,
    int kind,
    object create,
    object fn,
    dict state,
    dict wheel,
    list overdue,
    long long width,
):
    """Add ``values[first:]`` to the local operator's pending partial sessions (``state[key]``
    a :class:`LocalSession`); returns where it stopped (``n`` = all).

    Handles a record whose window ``[ts, ts + gap)`` intersects its key's pending partial (the
    partial grows; when it grows backwards and its deadline moves earlier, it is entered again
    under the new deadline), or a key without one and a window not late at ``watermark`` (a
    new partial, entered under its deadline in ``wheel`` or ``overdue``). It stops at anything
    else (a non-int timestamp, a window that misses the pending partial, a late window) and
    leaves that record's key and timestamp in ``cur``.
    """
    cdef Py_ssize_t i, n = _list_size(values)
    cdef long long ts, end, d
    cdef object value, key, tso
    cdef LocalSession s
    cdef PyObject *found
    cdef long long max_ts = cur.max_ts
    if timestamps is not None and _list_size(timestamps) != n:
        raise ValueError("timestamps and values of a batch differ in length")
    for i in range(first, n):
        key = _fused_head(cur, values, timestamps, i, extract, no_timestamp, pre, key_of, key_index)
        value = cur.value
        tso = cur.ts
        if not PyLong_CheckExact(tso):
            cur.key = key
            cur.max_ts = max_ts
            return i
        ts = tso
        if ts > max_ts:
            max_ts = ts
        end = ts + gap
        found = PyDict_GetItemWithError(state, key)
        if found != NULL:
            s = <LocalSession>found
            if s.pending:
                if not (s.start <= end and s.end >= ts):
                    break
                if ts < s.start:
                    s.start = ts
                    d = _deadline(s)
                    if d < s.deadline:
                        if d <= watermark or _floor_div(d, width) != _floor_div(s.deadline, width):
                            s.deadline = d
                            _schedule(s, wheel, overdue, watermark, width)
                        else:
                            s.deadline = d
                if end > s.end:
                    s.end = end
                if kind == 0:
                    s.acc = fn(value, s.acc)
                else:
                    s.acc = fn(s.acc, value)
                continue
        elif end - 1 > watermark:
            s = LocalSession.__new__(LocalSession)
            s.key = key
            s.sent_end = LLONG_MIN
            PyDict_SetItem(state, key, s)
        if end - 1 <= watermark:
            break
        s.acc = fn(value, create()) if kind == 0 else value
        s.start = ts
        s.end = end
        s.pending = True
        s.deadline = _deadline(s)
        _schedule(s, wheel, overdue, watermark, width)
    else:
        cur.position = n
        cur.max_ts = max_ts
        return n
    cur.key = key
    cur.ts = tso
    cur.max_ts = max_ts
    return i


#: the accumulator of a global session that so far only has extents (see local_sessions)
EMPTY_ACC = _EmptyAcc()
_empty = EMPTY_ACC


cdef inline int _report(LocalSession s, long long forwarded) except -1:
    """``s``'s pending partial was just sent (with or without its accumulator): the sent
    extent grows by it when the two intersect and the global session holding the sent extent
    is certainly still open (its end - 1 above the ``forwarded`` watermark), else it becomes
    the partial's own extent."""
    cdef long long lo = s.start, hi = s.end
    if s.sent_end != LLONG_MIN and s.sent_end - 1 > forwarded and s.sent_start <= hi and s.sent_end >= lo:
        if lo < s.sent_start:
            s.sent_start = lo
        if hi > s.sent_end:
            s.sent_end = hi
    else:
        s.sent_start = lo
        s.sent_end = hi
    return 0


cdef inline int _send(
    LocalSession s, long long forwarded, list out_values, list out_ts
) except -1:
    """Send ``s``'s pending partial with its accumulator, ``[key, start, acc]`` at timestamp
    ``end - 1``; the key has nothing pending afterwards."""
    PyList_Append(out_values, [s.key, s.start, s.acc])
    PyList_Append(out_ts, s.end - 1)
    s.acc = None
    s.pending = False
    _report(s, forwarded)
    return 0


cdef inline int _send_extent(
    LocalSession s, long long forwarded, list out_values, list out_ts
) except -1:
    """Send only the extent of ``s``'s pending partial, ``[key, start]`` at timestamp
    ``end - 1``: the global session it meets stays open until the watermark reaches its end - 1,
    and the accumulator stays here (it goes when the partial stops growing)."""
    PyList_Append(out_values, [s.key, s.start])
    PyList_Append(out_ts, s.end - 1)
    _report(s, forwarded)
    return 0


cdef inline int _due(
    LocalSession s,
    long long watermark,
    long long forwarded,
    long long width,
    dict wheel,
    list out_values,
    list out_ts,
) except -1:
    """``s``'s deadline is reached by ``watermark``: while its partial still ends after the
    watermark, its extent goes (and it is entered under its new deadline, the extent's end -
    1); else its accumulator goes. Returns 1 when the accumulator went."""
    if s.end - 1 > watermark:
        _send_extent(s, forwarded, out_values, out_ts)
        s.deadline = _deadline(s)
        _schedule(s, wheel, None, watermark, width)
        return 0
    _send(s, forwarded, out_values, out_ts)
    return 1


def local_send(list sessions, long long forwarded, list out_values, list out_ts):
    """Send the pending partial of each of ``sessions`` that has one, with its accumulator;
    returns how many."""
    cdef LocalSession s
    cdef Py_ssize_t sent = 0
    for s in sessions:
        if s.pending:
            _send(s, forwarded, out_values, out_ts)
            sent += 1
    return sent


def local_send_overdue(
    list sessions,
    long long watermark,
    long long forwarded,
    long long width,
    dict wheel,
    list out_values,
    list out_ts,
):
    """Each of ``sessions`` with a pending partial whose deadline ``watermark`` reached (see
    :func:`_due`); returns ``(accumulators sent, extents sent)``."""
    cdef LocalSession s
    cdef Py_ssize_t accs = 0, extents = 0
    for s in sessions:
        if s.pending and s.deadline <= watermark:
            if _due(s, watermark, forwarded, width, wheel, out_values, out_ts):
                accs += 1
            else:
                extents += 1
    return accs, extents


def local_send_due(
    dict wheel,
    list buckets,
    long long watermark,
    long long forwarded,
    long long width,
    list out_values,
    list out_ts,
):
    """The pending partials of ``wheel``'s ``buckets`` whose deadline ``watermark`` reached
    (see :func:`_due`); an entry of a partial sent already, or entered again under another
    deadline, is dropped, and one whose deadline is still ahead stays. Returns
    ``(accumulators sent, extents sent)``."""
    cdef LocalSession s
    cdef _WheelEntry e, nxt, keep
    cdef long long b
    cdef Py_ssize_t accs = 0, extents = 0
    for bucket in buckets:
        b = bucket
        e = wheel.pop(bucket)
        keep = None
        while e is not None:
            nxt = e.next
            s = e.s
            if s.pending and _floor_div(s.deadline, width) == b:
                if s.deadline > watermark:
                    e.next = keep
                    keep = e
                elif _due(s, watermark, forwarded, width, wheel, out_values, out_ts):
                    accs += 1
                else:
                    extents += 1
            e = nxt
        if keep is not None:
            if bucket in wheel:  # (an extent's new deadline fell in this bucket)
                e = wheel[bucket]
                while e.next is not None:
                    e = e.next
                e.next = keep
            else:
                wheel[bucket] = keep
    return accs, extents


cdef inline int _wheel_add(dict wheel, Session s, long long end, long long gap) except -1:
    cdef long long b = _floor_div(end - 1, gap)
    cdef PyObject *found = PyDict_GetItemWithError(wheel, b)
    if found == NULL:
        PyDict_SetItem(wheel, b, [s])
    else:
        PyList_Append(<object>found, s)
    return 0


cdef inline Session _new_session(object key, object so, object eo, object acc):
    cdef Session s = Session.__new__(Session)
    s.key = key
    _set_bounds(s, so, eo)
    s.acc = acc
    return s


cdef inline object _merge_acc(object merge, object a, object b):
    if b is EMPTY_ACC:
        return a
    if a is EMPTY_ACC:
        return b
    return merge(a, b)


def merge_partial_sessions(
    list values,
    list timestamps,
    Py_ssize_t first,
    long long gap,
    object merge,
    object single,
    object multi,
    dict wheel,
):
    """The global session operator's loop over partial sessions with timestamp ``end - 1``:
    ``[key, start, acc]``, or ``[key, start]`` for an extent without accumulator
    (:data:`EMPTY_ACC`). A partial that intersects exactly one of its key's open sessions grows
    it and merges its accumulator in (``merge(session.acc, acc)``); one that intersects none
    opens a session (in ``wheel`` under the bucket ``(end - 1) // gap``; a key with two or more
    sessions keeps them in ``multi[key]``, a list by start). Returns the index of the first
    item it leaves to the caller (anything else: records on their own, partials with bounds
    that are not ints, a partial that joins several sessions), ``n`` when none."""
    cdef Py_ssize_t i, j, m, hit, size, n = _list_size(values)
    cdef object item, key, so, eo, acc, tso
    cdef long long start, end, lo, hi
    cdef Session s, t
    cdef PyObject *found
    cdef list lst
    if _list_size(timestamps) != n:
        raise ValueError("timestamps and values of a batch differ in length")
    _check_map(single, "single")
    _check_map(multi, "multi")
    for i in range(first, n):
        item = <object>_list_get(values, i)
        if not PyList_CheckExact(item):
            return i
        size = _list_size(item)
        if size == 2:
            acc = EMPTY_ACC
        elif size == 3:
            acc = <object>_list_get(item, 2)
        else:
            return i
        so = <object>_list_get(item, 1)
        tso = <object>_list_get(timestamps, i)
        if not (PyLong_CheckExact(so) and PyLong_CheckExact(tso)):
            return i
        key = <object>_list_get(item, 0)
        start = so
        end = <long long>tso + 1
        found = _map_get(single, key)
        if found != NULL:
            s = <Session>found
            if not s._ints:
                return i
            lo = s._s
            hi = s._e
            if lo <= end and hi >= start:
                if start < lo:
                    s._s = start
                if end > hi:
                    s._e = end
                s.acc = _merge_acc(merge, s.acc, acc)
                continue
            # a second session of the key
            eo = end
            t = _new_session(key, so, eo, acc)
            _map_del(single, key)
            _map_set(multi, key, [s, t] if lo < start else [t, s])
            _wheel_add(wheel, t, end, gap)
            continue
        found = _map_get(multi, key)
        if found == NULL:
            eo = end
            t = _new_session(key, so, eo, acc)
            _map_set(single, key, t)
            _wheel_add(wheel, t, end, gap)
            continue
        lst = <list>found
        m = _list_size(lst)
        hit = -1
        j = 0
        while j < m:
            s = <Session>_list_get(lst, j)
            if not s._ints:
                return i
            if s._s <= end and s._e >= start:
                if hit >= 0:
                    return i  # joins several sessions: the caller's Python path
                hit = j
            j += 1
        if hit >= 0:  # grows the one it meets (still apart from the others)
            s = <Session>_list_get(lst, hit)
            if start < s._s:
                s._s = start
            if end > s._e:
                s._e = end
            s.acc = _merge_acc(merge, s.acc, acc)
            continue
        eo = end
        t = _new_session(key, so, eo, acc)
        j = 0
        while j < m and (<Session>_list_get(lst, j))._s < start:
            j += 1
        lst.insert(j, t)
        _wheel_add(wheel, t, end, gap)
    return n


cdef class MessageKey:
    """The key selector of the exchange after a local session operator: the key of a message
    (a list ``[key, ...]``: partial, extent or wrapped record) is its first item, a record's is
    the user's key selector's (``key_index`` >= 0: ``lambda v: v[key_index]``, read in C from a
    tuple). Records cross unchanged, so a message must never look like one: a record that is a
    list crosses wrapped (see :func:`local_pass_through`)."""

    cdef readonly object key_of
    cdef readonly Py_ssize_t key_index

    def __init__(self, key_of, Py_ssize_t key_index=-1):
        self.key_of = key_of
        self.key_index = key_index

    def __call__(self, value):
        if PyList_CheckExact(value) and _list_size(value) > 0:
            return <object>_list_get(value, 0)
        if self.key_index >= 0 and PyTuple_CheckExact(value) and self.key_index < PyTuple_GET_SIZE(value):
            return <object>_tuple_get(value, self.key_index)
        return self.key_of(value)

    def __reduce__(self):
        return (MessageKey, (self.key_of, self.key_index))


def local_pass_through(
    Cursor cur,
    list values,
    object timestamps,
    object extract,
    object no_timestamp,
    object pre,
    Py_ssize_t first,
    object key_of,
    list out_values,
    list out_ts,
):
    """The local session operator after it switched to pass-through: every record of
    ``values[first:]`` goes on alone and unchanged with its timestamp to ``out_values`` /
    ``out_ts`` (a record that is a list as ``[key, record, None, None]``: lists are the
    messages, see :class:`MessageKey`). Returns where it stopped (``n`` = all): at a timestamp
    that is not an int (left in ``cur.ts``, the record in ``cur.value``). ``extract``,
    ``no_timestamp`` and ``pre`` as for :func:`tumbling_batch`; ``cur.max_ts`` tracks the
    largest timestamp."""
    cdef Py_ssize_t i, n = _list_size(values)
    cdef object value, tso
    cdef long long ts
    cdef long long max_ts = cur.max_ts
    if timestamps is not None and _list_size(timestamps) != n:
        raise ValueError("timestamps and values of a batch differ in length")
    for i in range(first, n):
        cur.position = i
        value = <object>_list_get(values, i)
        if extract is None:
            tso = <object>_list_get(timestamps, i)
        else:
            cur.stage = 0
            if timestamps is None:
                tso = extract(value, no_timestamp)
            else:
                tso = extract(value, <object>_list_get(timestamps, i))
            cur.stage = 1
        if pre is not None:
            cur.stage = 2
            value = pre(value)
            cur.stage = 1
        cur.value = value
        cur.ts = tso
        if not PyLong_CheckExact(tso):
            cur.max_ts = max_ts
            return i
        ts = tso
        if ts > max_ts:
            max_ts = ts
        if PyList_CheckExact(value):
            value = [key_of(value), value, None, None]
        PyList_Append(out_values, value)
        PyList_Append(out_ts, tso)
    cur.position = n
    cur.max_ts = max_ts
    return n


def records_end(list values, Py_ssize_t first):
    """The end of the run of records (anything but a list: lists are messages, see
    :class:`MessageKey`) that starts at ``values[first]``: the first index from ``first``
    holding a list, or ``len(values)``."""
    cdef Py_ssize_t i, n = _list_size(values)
    for i in range(first, n):
        if PyList_CheckExact(<object>_list_get(values, i)):
            return i
    return n


def has_lists(list values):
    """Whether any item of ``values`` is a list."""
    cdef Py_ssize_t i, n = _list_size(values)
    for i in range(n):
        if PyList_CheckExact(<object>_list_get(values, i)):
            return True
    return False
