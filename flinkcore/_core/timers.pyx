# cython: language_level=3
"""Timer queues for the timer service: one ``TimerQueue`` per time domain (event time, processing time).

A timer is ``(timestamp, key, namespace)``, as in Flink's InternalTimerService: registering the same
triple twice keeps one timer, and ``advance(watermark)`` pops every timer with ``timestamp <=
watermark`` in timestamp order; timers with equal timestamps pop in registration order (Flink leaves
that order unspecified). The heap and a hash index of ``(timestamp, hash(key, namespace)) -> slot``
live in C (``_native/fc_timer``); keys and namespaces are any hashable Python objects, kept per slot
here and compared with ``==`` (as a dict would) to confirm a hash match.
"""

import numpy as np

cimport cython
from libc.stdint cimport int64_t, uint32_t, uint64_t


from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_New


cdef extern from "Python.h":
    Py_ssize_t PyObject_Hash(object o) except -1
    void PyObject_GC_UnTrack(object o)
    void PyObject_GC_Track(object o)
    object PyLong_FromLongLong(long long v)
    # raw forms, to move the references of a fired timer from the slot lists into its tuple
    PyObject *_list_get "PyList_GET_ITEM"(object lst, Py_ssize_t i)
    void _list_set "PyList_SET_ITEM"(object lst, Py_ssize_t i, PyObject *o)
    void _tuple_set "PyTuple_SET_ITEM"(object tup, Py_ssize_t i, PyObject *o)


cdef extern from "fc_timer.h":
    ctypedef struct fc_timer_heap:
        size_t size
        size_t cap
        uint64_t seq_limit
        int64_t *slot_ts
    uint32_t FC_TIMER_FREE
    int fc_timer_heap_init(fc_timer_heap *h)
    void fc_timer_heap_free(fc_timer_heap *h)
    int64_t fc_timer_push(fc_timer_heap *h, int64_t ts, uint64_t key_hash)
    uint32_t fc_timer_find(const fc_timer_heap *h, int64_t ts, uint64_t key_hash, size_t *cursor)
    void fc_timer_remove(fc_timer_heap *h, uint32_t slot)
    int fc_timer_peek(fc_timer_heap *h, int64_t *ts, uint32_t *slot)
    int fc_timer_pop_until(fc_timer_heap *h, int64_t bound, int64_t *ts, uint32_t *slot)
    int fc_timer_ordered_slots(const fc_timer_heap *h, uint32_t *out)
    void fc_timer_clear(fc_timer_heap *h)


cdef inline uint64_t _pair_hash(object key, object namespace) except? 0:
    cdef uint64_t hk = <uint64_t>PyObject_Hash(key)
    # the usual namespace of a keyed timer is None (VoidNamespace): skip its hash call
    cdef uint64_t hn = 0x5bd1e995 if namespace is None else <uint64_t>PyObject_Hash(namespace)
    return hk * 0x9e3779b97f4a7c15ULL + hn


cdef inline bint _atomic(object o):
    cdef type t = type(o)
    return o is None or t is int or t is str or t is float or t is bytes or t is bool


cdef inline bint _same(object a, object b) except -1:
    return a is b or a == b


@cython.final
@cython.freelist(64)
@cython.no_gc  # see the docstring
cdef class FiredTimer:
    """A timer popped by ``TimerQueue.pop_timers``: what the runtime's timer service hands to
    ``on_event_time``/``on_processing_time`` (as flinkcore.runtime.timers.InternalTimer). Made in C
    with no Python-level constructor call; read-only.

    Not tracked by the cyclic GC: a batch of thousands of them (every key's timer at one window end)
    would otherwise set off collections that walk them all while they are alive, and a cycle through
    one would need a key or namespace (hashable values) to refer back to the timer."""

    cdef readonly object timestamp
    cdef readonly object key
    cdef readonly object namespace

    def __init__(self, timestamp, key, namespace):
        self.timestamp = timestamp
        self.key = key
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"InternalTimer({self.timestamp}, {self.key!r}, {self.namespace!r})"


@cython.final  # no subclasses: cdef methods are direct (inlinable) calls, not vtable lookups
cdef class TimerQueue:
    """De-duplicated timers of one time domain, popped in timestamp order.

    ``snapshot()`` returns the timers as a plain list of ``(timestamp, key, namespace)`` in pop order;
    ``restore(list)`` replaces the contents with such a list (the state layer serializes it).
    """

    cdef fc_timer_heap heap
    cdef list keys        # slot -> key (None when free)
    cdef list namespaces  # slot -> namespace
    # The int of the last fired timestamp: timers fire in runs of one timestamp (every key's window
    # ends at the same time), and the run shares one int object instead of allocating one per timer.
    cdef object last_ts_obj
    cdef int64_t last_ts

    def __cinit__(self):
        if fc_timer_heap_init(&self.heap):
            raise MemoryError("out of memory creating a TimerQueue")
        self.keys = []
        self.namespaces = []

    def __dealloc__(self):
        fc_timer_heap_free(&self.heap)

    cdef int64_t _find(self, int64_t ts, object key, object namespace, uint64_t h) except -2:
        cdef size_t cursor = 0
        cdef uint32_t slot
        while True:
            slot = fc_timer_find(&self.heap, ts, h, &cursor)
            if slot == FC_TIMER_FREE:
                return -1
            # slot < cap <= len(self.keys); __eq__ may run Python code, so hold references
            k = <object>_list_get(self.keys, slot)
            ns = <object>_list_get(self.namespaces, slot)
            if _same(k, key) and _same(ns, namespace):
                return slot

    cpdef bint register(self, int64_t ts, object key, object namespace=None) except -1:
        """Add the timer; False when the same (ts, key, namespace) is already registered."""
        cdef uint64_t h = _pair_hash(key, namespace)
        if self._find(ts, key, namespace, h) >= 0:
            return False
        cdef int64_t slot = fc_timer_push(&self.heap, ts, h)
        if slot < 0:
            raise MemoryError("out of memory registering a timer")
        cdef Py_ssize_t have = len(self.keys)
        if slot >= have:
            grow = <Py_ssize_t>self.heap.cap - have
            self.keys.extend([None] * grow)
            self.namespaces.extend([None] * grow)
        # a free slot holds None in both lists: put the references in its place
        Py_INCREF(key)
        Py_XDECREF(_list_get(self.keys, slot))
        _list_set(self.keys, slot, <PyObject *>key)
        Py_INCREF(namespace)
        Py_XDECREF(_list_get(self.namespaces, slot))
        _list_set(self.namespaces, slot, <PyObject *>namespace)
        return True

    def register_many(self, timestamps, keys, namespaces=None) -> int:
        """Register ``(timestamps[i], keys[i], namespaces[i])`` for every i; returns how many were new.

        ``timestamps`` is an int64 array (or sequence); ``namespaces`` a sequence of the same length or
        one namespace for all. The batch form of ``register`` for operators that hold a whole batch.
        """
        cdef const int64_t[::1] ts = np.ascontiguousarray(timestamps, dtype=np.int64)
        cdef Py_ssize_t i, n = ts.shape[0], added = 0
        if len(keys) != n:
            raise ValueError(f"register_many got {n} timestamps but {len(keys)} keys")
        cdef bint per_record = isinstance(namespaces, (list, tuple, np.ndarray))
        if per_record and len(namespaces) != n:
            raise ValueError(f"register_many got {n} timestamps but {len(namespaces)} namespaces")
        keys = keys if isinstance(keys, (list, tuple)) else list(keys)
        if per_record and not isinstance(namespaces, (list, tuple)):
            namespaces = namespaces.tolist()
        for i in range(n):
            added += self.register(ts[i], keys[i], namespaces[i] if per_record else namespaces)
        return added

    cpdef bint delete(self, int64_t ts, object key, object namespace=None) except -1:
        """Remove the timer if registered; returns whether it was."""
        cdef int64_t slot = self._find(ts, key, namespace, _pair_hash(key, namespace))
        if slot < 0:
            return False
        fc_timer_remove(&self.heap, <uint32_t>slot)
        self.keys[slot] = None
        self.namespaces[slot] = None
        return True

    cdef inline tuple _take(self, int64_t ts, uint32_t slot):
        # slot < cap <= len(self.keys): the lists always cover every slot. The key and namespace
        # references move from the lists into the tuple; the lists get None in their place.
        cdef PyObject *key = _list_get(self.keys, slot)
        cdef PyObject *namespace = _list_get(self.namespaces, slot)
        cdef tuple entry = PyTuple_New(3)
        if self.last_ts_obj is None or ts != self.last_ts:
            self.last_ts_obj = PyLong_FromLongLong(ts)
            self.last_ts = ts
        t = self.last_ts_obj
        Py_INCREF(t)
        _tuple_set(entry, 0, <PyObject *>t)
        _tuple_set(entry, 1, key)
        _tuple_set(entry, 2, namespace)
        Py_INCREF(None)
        _list_set(self.keys, slot, <PyObject *>None)
        Py_INCREF(None)
        _list_set(self.namespaces, slot, <PyObject *>None)
        if _atomic(<object>key) and _atomic(<object>namespace):
            # cannot be part of a cycle: keep the fired timers out of the GC's young generation
            PyObject_GC_UnTrack(entry)
        return entry

    def advance(self, int64_t watermark) -> list:
        """Pop every timer with ts <= watermark, earliest first: a list of (ts, key, namespace)."""
        cdef int64_t ts
        cdef uint32_t slot
        cdef list out = []
        # Out of the GC while it fills: every young-generation collection the new tuples trigger
        # would otherwise walk the whole list (it references them, so they stay reachable anyway).
        PyObject_GC_UnTrack(out)
        try:
            while fc_timer_pop_until(&self.heap, watermark, &ts, &slot):
                out.append(self._take(ts, slot))
        finally:
            PyObject_GC_Track(out)
        return out

    def pop_batch(self, int64_t watermark) -> list:
        """Pop every timer at the earliest timestamp when that is <= watermark, in registration order:
        a list of (ts, key, namespace), empty when no timer is due.

        One timestamp at a time, so a firing loop can still honour timers that its callbacks register
        or delete for the timestamp being fired or an earlier one (see flinkcore.runtime.timers).
        """
        cdef int64_t first
        cdef uint32_t slot
        if not fc_timer_peek(&self.heap, &first, &slot) or first > watermark:
            return []
        return self.advance(first)

    def pop_timers(self, int64_t watermark) -> list:
        """``pop_batch`` with each timer as a FiredTimer (timestamp, key, namespace attributes) instead of
        a tuple: the objects the runtime's timer service passes to its callbacks, made here."""
        cdef int64_t ts, first
        cdef uint32_t slot
        cdef FiredTimer timer
        cdef list out = []
        if not fc_timer_peek(&self.heap, &first, &slot) or first > watermark:
            return out
        t = PyLong_FromLongLong(first)
        PyObject_GC_UnTrack(out)  # as in advance: no collection walks the list while it fills
        try:
            while fc_timer_pop_until(&self.heap, first, &ts, &slot):
                timer = FiredTimer.__new__(FiredTimer)
                timer.timestamp = t
                # move the key and namespace references from the slot lists into the timer
                timer.key = <object>_list_get(self.keys, slot)
                timer.namespace = <object>_list_get(self.namespaces, slot)
                self.keys[slot] = None
                self.namespaces[slot] = None
                out.append(timer)
        finally:
            PyObject_GC_Track(out)
        return out

    def _renumber_after(self, uint64_t limit) -> None:
        """Tests only: renumber the registration sequence once it passes ``limit`` (not 2**32)."""
        self.heap.seq_limit = limit

    def pop_until(self, int64_t watermark):
        """Pop the earliest timer with ts <= watermark, or return None.

        For firing one timer at a time, when a firing may register new, earlier timers (as Flink's
        onTimer can) that must fire within the same advance.
        """
        cdef int64_t ts
        cdef uint32_t slot
        if not fc_timer_pop_until(&self.heap, watermark, &ts, &slot):
            return None
        return self._take(ts, slot)

    def peek(self):
        """The earliest timestamp, or None when empty."""
        cdef int64_t ts
        cdef uint32_t slot
        if fc_timer_peek(&self.heap, &ts, &slot):
            return ts
        return None

    def __len__(self) -> int:
        return self.heap.size

    def __contains__(self, entry) -> bool:
        ts, key, namespace = entry
        return self._find(ts, key, namespace, _pair_hash(key, namespace)) >= 0

    def snapshot(self) -> list:
        """All timers as [(ts, key, namespace), ...] in the order they would pop."""
        cdef size_t i, n = self.heap.size
        order = np.empty(n, dtype=np.uint32)
        cdef uint32_t[::1] o = order
        if n and fc_timer_ordered_slots(&self.heap, &o[0]):
            raise MemoryError("out of memory snapshotting timers")
        return [(self.heap.slot_ts[o[i]], self.keys[o[i]], self.namespaces[o[i]]) for i in range(n)]

    def restore(self, timers) -> None:
        """Replace all timers with ``timers`` (as returned by ``snapshot``), keeping their order."""
        self.clear()
        for ts, key, namespace in timers:
            self.register(ts, key, namespace)

    def clear(self) -> None:
        """Remove every timer."""
        fc_timer_clear(&self.heap)
        self.keys = [None] * len(self.keys)
        self.namespaces = [None] * len(self.namespaces)

