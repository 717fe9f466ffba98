#include "fc_timer.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_INDEX 64

int fc_timer_heap_init(fc_timer_heap *h) {
    memset(h, 0, sizeof *h);
    h->index = (uint64_t *)malloc(INITIAL_INDEX * sizeof *h->index);
    if (!h->index) return -1;
    memset(h->index, 0xff, INITIAL_INDEX * sizeof *h->index);
    h->index_mask = INITIAL_INDEX - 1;
    return 0;
}

void fc_timer_heap_free(fc_timer_heap *h) {
    free(h->heap);
    free(h->pos);
    free(h->slot_ts);
    free(h->slot_hash);
    free(h->free);
    free(h->index);
    memset(h, 0, sizeof *h);
}

static inline uint64_t mix(int64_t ts, uint64_t key_hash) {
    uint64_t x = (uint64_t)ts * 0x9e3779b97f4a7c15ull ^ key_hash;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* ---------------------------------------------------------------------------------------- index */

/* An index entry packs the upper 32 bits of the mixed hash (which also give the home position)
 * with the slot, so probing and backward shifts never touch the per-slot arrays. */
#define EMPTY UINT64_MAX
#define ENTRY_SLOT(e) ((uint32_t)(e))
#define ENTRY_HASH(e) ((uint32_t)((e) >> 32))

static inline uint32_t hash32(int64_t ts, uint64_t key_hash) { return (uint32_t)(mix(ts, key_hash) >> 32); }

static void index_put(fc_timer_heap *h, uint32_t slot, uint32_t hv) {
    size_t i = hv & h->index_mask;
    while (h->index[i] != EMPTY) i = (i + 1) & h->index_mask;
    h->index[i] = ((uint64_t)hv << 32) | slot;
}

static int index_grow(fc_timer_heap *h) {
    size_t n = (h->index_mask + 1) * 2;
    if (n > (size_t)UINT32_MAX) return -1;
    uint64_t *fresh = (uint64_t *)malloc(n * sizeof *fresh);
    if (!fresh) return -1;
    memset(fresh, 0xff, n * sizeof *fresh);
    uint64_t *old = h->index;
    size_t old_n = h->index_mask + 1;
    h->index = fresh;
    h->index_mask = n - 1;
    for (size_t i = 0; i < old_n; i++)
        if (old[i] != EMPTY) index_put(h, ENTRY_SLOT(old[i]), ENTRY_HASH(old[i]));
    free(old);
    return 0;
}

static void index_delete(fc_timer_heap *h, uint32_t slot) {
    size_t mask = h->index_mask;
    size_t i = hash32(h->slot_ts[slot], h->slot_hash[slot]) & mask;
    while (ENTRY_SLOT(h->index[i]) != slot) i = (i + 1) & mask;
    /* backward-shift: pull later entries of the probe run into the hole */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint64_t s = h->index[j];
        if (s == EMPTY) break;
        size_t k = ENTRY_HASH(s) & mask;
        /* move s into the hole at i unless its home lies cyclically in (i, j] */
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            h->index[i] = s;
            i = j;
        }
    }
    h->index[i] = EMPTY;
}

uint32_t fc_timer_find(const fc_timer_heap *h, int64_t ts, uint64_t key_hash, size_t *cursor) {
    size_t mask = h->index_mask;
    uint32_t hv = hash32(ts, key_hash);
    size_t i = *cursor == 0 ? hv & mask : (*cursor - 1);
    for (;;) {
        uint64_t e = h->index[i];
        if (e == EMPTY) return FC_TIMER_FREE;
        i = (i + 1) & mask;
        uint32_t s = ENTRY_SLOT(e);
        if (ENTRY_HASH(e) == hv && h->slot_ts[s] == ts && h->slot_hash[s] == key_hash) {
            *cursor = i + 1;
            return s;
        }
    }
}

/* ----------------------------------------------------------------------------------------- heap */

/* (ts, seq) order without branches: which child is smaller is a coin flip, so a branch here
 * would be mispredicted at every level of a pop */
static inline int before(const fc_timer *a, const fc_timer *b) {
    return (a->ts < b->ts) | ((a->ts == b->ts) & (a->seq < b->seq));
}

static inline void place(fc_timer_heap *h, size_t i, fc_timer t) {
    h->heap[i] = t;
    h->pos[t.slot] = (uint32_t)i;
}

static void sift_up(fc_timer_heap *h, size_t i) {
    fc_timer t = h->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&t, &h->heap[parent])) break;
        place(h, i, h->heap[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(fc_timer_heap *h, size_t i) {
    fc_timer t = h->heap[i];
    size_t n = h->size;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && before(&h->heap[child + 1], &h->heap[child])) child++;
        if (!before(&h->heap[child], &t)) break;
        place(h, i, h->heap[child]);
        i = child;
    }
    place(h, i, t);
}

#define GROW(ptr, n)                                                   \
    do {                                                               \
        void *p_ = realloc((ptr), (n) * sizeof *(ptr));                \
        if (!p_) return -1;                                            \
        (ptr) = p_;                                                    \
    } while (0)

static int grow_slots(fc_timer_heap *h) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    if (cap >= (size_t)UINT32_MAX) return -1;
    GROW(h->heap, cap);
    GROW(h->pos, cap);
    GROW(h->slot_ts, cap);
    GROW(h->slot_hash, cap);
    GROW(h->free, cap);
    /* new slots are free; push the highest first so the lowest is handed out next */
    for (size_t s = cap; s > h->cap; s--) {
        h->pos[s - 1] = FC_TIMER_FREE;
        h->free[h->nfree++] = (uint32_t)(s - 1);
    }
    h->cap = cap;
    return 0;
}

int64_t fc_timer_push(fc_timer_heap *h, int64_t ts, uint64_t key_hash) {
    if (!h->nfree && grow_slots(h)) return -1;
    if ((h->size + 1) * 2 > h->index_mask + 1 && index_grow(h)) return -1;
    uint32_t slot = h->free[--h->nfree];
    h->slot_ts[slot] = ts;
    h->slot_hash[slot] = key_hash;
    index_put(h, slot, hash32(ts, key_hash));
    fc_timer t = {ts, h->next_seq++, slot};
    h->heap[h->size] = t;
    h->pos[slot] = (uint32_t)h->size;
    h->size++;
    sift_up(h, h->size - 1);
    return slot;
}

static void remove_at(fc_timer_heap *h, size_t i) {
    uint32_t slot = h->heap[i].slot;
    index_delete(h, slot);
    h->size--;
    if (i != h->size) {
        fc_timer last = h->heap[h->size];
        place(h, i, last);
        if (i > 0 && before(&last, &h->heap[(i - 1) / 2]))
            sift_up(h, i);
        else
            sift_down(h, i);
    }
    h->pos[slot] = FC_TIMER_FREE;
    h->free[h->nfree++] = slot;
}

void fc_timer_remove(fc_timer_heap *h, uint32_t slot) {
    if (slot < h->cap && h->pos[slot] != FC_TIMER_FREE) remove_at(h, h->pos[slot]);
}

int fc_timer_pop_until(fc_timer_heap *h, int64_t bound, int64_t *ts, uint32_t *slot) {
    if (!h->size || h->heap[0].ts > bound) return 0;
    uint32_t top = h->heap[0].slot;
    *ts = h->heap[0].ts;
    *slot = top;
    index_delete(h, top);
    h->pos[top] = FC_TIMER_FREE;
    h->free[h->nfree++] = top;
    size_t n = --h->size;
    if (n) {
        /* Floyd's pop: walk the hole down to a leaf along the smaller children (one comparison
         * per level instead of two), then sift the former last element up from there. */
        size_t i = 0;
        for (;;) {
            size_t child = 2 * i + 1;
            if (child >= n) break;
            if (child + 1 < n) child += (size_t)before(&h->heap[child + 1], &h->heap[child]);
            place(h, i, h->heap[child]);
            i = child;
        }
        place(h, i, h->heap[n]);
        sift_up(h, i);
    }
    return 1;
}

void fc_timer_clear(fc_timer_heap *h) {
    h->size = 0;
    h->nfree = 0;
    for (size_t s = h->cap; s > 0; s--) {
        h->pos[s - 1] = FC_TIMER_FREE;
        h->free[h->nfree++] = (uint32_t)(s - 1);
    }
    memset(h->index, 0xff, (h->index_mask + 1) * sizeof *h->index);
}

static int cmp_timer(const void *a, const void *b) {
    const fc_timer *x = (const fc_timer *)a, *y = (const fc_timer *)b;
    if (before(x, y)) return -1;
    return before(y, x) ? 1 : 0;
}

int fc_timer_ordered_slots(const fc_timer_heap *h, uint32_t *out) {
    if (!h->size) return 0;
    fc_timer *copy = (fc_timer *)malloc(h->size * sizeof *copy);
    if (!copy) return -1;
    memcpy(copy, h->heap, h->size * sizeof *copy);
    qsort(copy, h->size, sizeof *copy, cmp_timer);
    for (size_t i = 0; i < h->size; i++) out[i] = copy[i].slot;
    free(copy);
    return 0;
}
