/* The timer queue's core: a min-heap of timers ordered by (timestamp, registration sequence) plus a
 * hash index from (timestamp, key hash) to timers, for de-duplication and deletion.
 *
 * Each timer occupies a slot (a small integer the caller maps to its key and namespace objects).
 * Deletion is lazy: the slot is marked dead and leaves the index at once, and its heap entry is
 * dropped when it reaches the top (or when dead entries outnumber live ones, by a rebuild). So the
 * heap never tracks positions, and a pop moves only heap entries. A slot is reused only once its
 * heap entry is gone. The index is linear probing with backward-shift deletion. Ties on the
 * timestamp pop in registration order. The key hash is the caller's (e.g. Python's hash of key and
 * namespace): the index only narrows the candidates, the caller confirms equality of the objects. */
#ifndef FC_TIMER_H
#define FC_TIMER_H

#include <stddef.h>
#include <stdint.h>

/* 16 bytes, so a pop moves less: the sequence is 32 bits, and when it would pass seq_limit the
 * live timers are renumbered 0.. in their order (once per ~4 billion registrations). */
typedef struct {
    uint32_t slot; /* this order makes the entry, read as a little-endian signed 128-bit integer, */
    uint32_t seq;  /* ts * 2**64 + seq * 2**32 + slot: one compare orders by (ts, seq) */
    int64_t ts;
} fc_timer;

typedef struct {
    fc_timer *heap;     /* heap[0..n): live and dead timers */
    uint8_t *state;     /* state[slot]: FC_SLOT_FREE, _LIVE or _DEAD (deleted, still in the heap) */
    int64_t *slot_ts;   /* slot_ts[slot], slot_hash[slot]: what the index is keyed by */
    uint64_t *slot_hash;
    uint32_t *slot_hv;  /* the index hash of the slot's (ts, key hash): its home in the index */
    uint32_t *free;     /* stack of free slots */
    uint64_t *index;    /* open addressing table: (hash bits << 32 | slot), all ones = empty */
    size_t size;        /* live timers */
    size_t n;           /* heap entries: live + dead */
    size_t cap;         /* slots allocated */
    size_t nfree;
    size_t index_mask;  /* index has index_mask + 1 entries (a power of two) */
    uint64_t next_seq;
    uint64_t seq_limit; /* UINT32_MAX; lower only to test the renumbering */
} fc_timer_heap;

enum { FC_SLOT_FREE = 0, FC_SLOT_LIVE = 1, FC_SLOT_DEAD = 2 };

#define FC_TIMER_FREE UINT32_MAX

int fc_timer_heap_init(fc_timer_heap *h); /* 0, or -1 when out of memory */
void fc_timer_heap_free(fc_timer_heap *h);

/* Add a timer (the caller has checked it is not there); returns its slot, or -1 when out of memory. */
int64_t fc_timer_push(fc_timer_heap *h, int64_t ts, uint64_t key_hash);

/* Candidates for (ts, key_hash): start with *cursor = 0 and call until it returns FC_TIMER_FREE. */
uint32_t fc_timer_find(const fc_timer_heap *h, int64_t ts, uint64_t key_hash, size_t *cursor);

/* Remove the timer in `slot` (ignored unless live) and free the slot. */
void fc_timer_remove(fc_timer_heap *h, uint32_t slot);

/* The earliest live timer: 1 and fills ts/slot if any, else 0 (drops dead entries on top). */
int fc_timer_peek(fc_timer_heap *h, int64_t *ts, uint32_t *slot);

/* Pop the earliest timer if its ts <= bound: 1 and fills ts/slot (the slot is freed), else 0. */
int fc_timer_pop_until(fc_timer_heap *h, int64_t bound, int64_t *ts, uint32_t *slot);

/* The live slots in pop order (timestamp, then registration); out holds h->size entries.
 * Returns 0, or -1 when out of memory. */
int fc_timer_ordered_slots(const fc_timer_heap *h, uint32_t *out);

/* Remove every timer. */
void fc_timer_clear(fc_timer_heap *h);

#endif
