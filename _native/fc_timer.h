/* The timer queue's core: a min-heap of timers ordered by (timestamp, registration sequence) plus a
 * hash index from (timestamp, key hash) to timers, for de-duplication and deletion.
 *
 * Each timer occupies a slot (a small integer the caller maps to its key and namespace objects).
 * The heap tracks every slot's position, so deletion is O(log n) without tombstones; the index is
 * linear probing with backward-shift deletion; freed slots are reused. Ties on the timestamp pop
 * in registration order. The key hash is the caller's (e.g. Python's hash of key and namespace):
 * the index only narrows the candidates, the caller confirms equality of the objects. */
#ifndef FC_TIMER_H
#define FC_TIMER_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t ts;
    uint64_t seq;
    uint32_t slot;
} fc_timer;

typedef struct {
    fc_timer *heap;     /* heap[0..size) */
    uint32_t *pos;      /* pos[slot]: index in heap, or FC_TIMER_FREE */
    int64_t *slot_ts;   /* slot_ts[slot], slot_hash[slot]: what the index is keyed by */
    uint64_t *slot_hash;
    uint32_t *free;     /* stack of free slots */
    uint64_t *index;    /* open addressing table: (hash bits << 32 | slot), all ones = empty */
    size_t size, cap;   /* live timers; slots allocated */
    size_t nfree;
    size_t index_mask;  /* index has index_mask + 1 entries (a power of two) */
    uint64_t next_seq;
} fc_timer_heap;

#define FC_TIMER_FREE UINT32_MAX

int fc_timer_heap_init(fc_timer_heap *h); /* 0, or -1 when out of memory */
void fc_timer_heap_free(fc_timer_heap *h);

/* Add a timer (the caller has checked it is not there); returns its slot, or -1 when out of memory. */
int64_t fc_timer_push(fc_timer_heap *h, int64_t ts, uint64_t key_hash);

/* Candidates for (ts, key_hash): start with *cursor = 0 and call until it returns FC_TIMER_FREE. */
uint32_t fc_timer_find(const fc_timer_heap *h, int64_t ts, uint64_t key_hash, size_t *cursor);

/* Remove the timer in `slot` (ignored unless live) and free the slot. */
void fc_timer_remove(fc_timer_heap *h, uint32_t slot);

/* The earliest timer: 1 and fills ts/slot if any, else 0. */
static inline int fc_timer_peek(const fc_timer_heap *h, int64_t *ts, uint32_t *slot) {
    if (!h->size) return 0;
    *ts = h->heap[0].ts;
    *slot = h->heap[0].slot;
    return 1;
}

/* Pop the earliest timer if its ts <= bound: 1 and fills ts/slot (the slot is freed), else 0. */
int fc_timer_pop_until(fc_timer_heap *h, int64_t bound, int64_t *ts, uint32_t *slot);

/* The live slots in pop order (timestamp, then registration); out holds h->size entries.
 * Returns 0, or -1 when out of memory. */
int fc_timer_ordered_slots(const fc_timer_heap *h, uint32_t *out);

/* Remove every timer. */
void fc_timer_clear(fc_timer_heap *h);

#endif
