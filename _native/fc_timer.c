#include "fc_timer.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_INDEX 64
#define REBUILD_MIN_DEAD 64 /* rebuild the heap when dead entries exceed this and the live ones */

int fc_timer_heap_init(fc_timer_heap *h) {
    memset(h, 0, sizeof *h);
    h->index = (uint64_t *)malloc(INITIAL_INDEX * sizeof *h->index);
    if (!h->index) return -1;
    memset(h->index, 0xff, INITIAL_INDEX * sizeof *h->index);
    h->index_mask = INITIAL_INDEX - 1;
    h->seq_limit = UINT32_MAX;
    return 0;
}

void fc_timer_heap_free(fc_timer_heap *h) {
    free(h->heap);
    free(h->state);
    free(h->slot_ts);
    free(h->slot_hash);
    free(h->slot_hv);
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
    size_t i = h->slot_hv[slot] & mask;
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
#if defined(__SIZEOF_INT128__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    __int128 x, y; /* see fc_timer: (ts, seq, slot) as one number, compared in two instructions */
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x < y;
#else
    return (a->ts < b->ts) | ((a->ts == b->ts) & (a->seq < b->seq));
#endif
}

static void sift_up(fc_timer *heap, size_t i) {
    fc_timer t = heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&t, &heap[parent])) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = t;
}

/* Remove heap[0]: Floyd's pop walks the hole down to a leaf along the smaller children (one
 * comparison per level instead of two), then sifts the former last entry up from there. */
static void pop_top(fc_timer *heap, size_t n_after) {
    if (!n_after) return;
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n_after) break;
        if (child + 1 < n_after) child += (size_t)before(&heap[child + 1], &heap[child]);
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = heap[n_after];
    sift_up(heap, i);
}

static void sift_down(fc_timer *heap, size_t n, size_t i) {
    fc_timer t = heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && before(&heap[child + 1], &heap[child])) child++;
        if (!before(&heap[child], &t)) break;
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = t;
}

static inline void free_slot(fc_timer_heap *h, uint32_t slot) {
    h->state[slot] = FC_SLOT_FREE;
    h->free[h->nfree++] = slot;
}

/* Drop every dead entry and re-heapify the live ones (their (ts, seq) keys, so their order, are
 * unchanged): bounds the heap at about twice the live timers whatever the deletions. */
static void rebuild(fc_timer_heap *h) {
    size_t m = 0;
    for (size_t i = 0; i < h->n; i++) {
        uint32_t s = h->heap[i].slot;
        if (h->state[s] == FC_SLOT_DEAD)
            free_slot(h, s);
        else
            h->heap[m++] = h->heap[i];
    }
    h->n = m;
    for (size_t i = m / 2; i > 0; i--) sift_down(h->heap, m, i - 1);
}

static int cmp_timer(const void *a, const void *b);

/* The sequence numbers ran out: number the live timers 0.. in pop order (a sorted array is a heap). */
static void renumber(fc_timer_heap *h) {
    rebuild(h);
    qsort(h->heap, h->n, sizeof *h->heap, cmp_timer);
    for (size_t i = 0; i < h->n; i++) h->heap[i].seq = (uint32_t)i;
    h->next_seq = h->n;
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
    GROW(h->state, cap);
    GROW(h->slot_ts, cap);
    GROW(h->slot_hash, cap);
    GROW(h->slot_hv, cap);
    GROW(h->free, cap);
    /* new slots are free; push the highest first so the lowest is handed out next */
    for (size_t s = cap; s > h->cap; s--) {
        h->state[s - 1] = FC_SLOT_FREE;
        h->free[h->nfree++] = (uint32_t)(s - 1);
    }
    h->cap = cap;
    return 0;
}

int64_t fc_timer_push(fc_timer_heap *h, int64_t ts, uint64_t key_hash) {
    if (!h->nfree && grow_slots(h)) return -1;
    if ((h->size + 1) * 2 > h->index_mask + 1 && index_grow(h)) return -1;
    if (h->next_seq > h->seq_limit) renumber(h);
    uint32_t slot = h->free[--h->nfree];
    uint32_t hv = hash32(ts, key_hash);
    h->state[slot] = FC_SLOT_LIVE;
    h->slot_ts[slot] = ts;
    h->slot_hash[slot] = key_hash;
    h->slot_hv[slot] = hv;
    index_put(h, slot, hv);
    fc_timer t = {slot, (uint32_t)h->next_seq++, ts};
    h->heap[h->n] = t; /* n < cap: every heap entry holds a slot */
    sift_up(h->heap, h->n++);
    h->size++;
    return slot;
}

void fc_timer_remove(fc_timer_heap *h, uint32_t slot) {
    if (slot >= h->cap || h->state[slot] != FC_SLOT_LIVE) return;
    index_delete(h, slot);
    h->state[slot] = FC_SLOT_DEAD;
    h->size--;
    size_t dead = h->n - h->size;
    if (dead > REBUILD_MIN_DEAD && dead > h->size) rebuild(h);
}

/* Drop dead entries from the top; whether a live one is there. */
static inline int live_top(fc_timer_heap *h) {
    while (h->n) {
        uint32_t s = h->heap[0].slot;
        if (h->state[s] == FC_SLOT_LIVE) return 1;
        free_slot(h, s);
        pop_top(h->heap, --h->n);
    }
    return 0;
}

int fc_timer_peek(fc_timer_heap *h, int64_t *ts, uint32_t *slot) {
    if (!live_top(h)) return 0;
    *ts = h->heap[0].ts;
    *slot = h->heap[0].slot;
    return 1;
}

int fc_timer_pop_until(fc_timer_heap *h, int64_t bound, int64_t *ts, uint32_t *slot) {
    if (!h->n || h->heap[0].ts > bound || !live_top(h) || h->heap[0].ts > bound) return 0;
    uint32_t top = h->heap[0].slot;
    *ts = h->heap[0].ts;
    *slot = top;
    index_delete(h, top);
    free_slot(h, top);
    h->size--;
    pop_top(h->heap, --h->n);
    return 1;
}

void fc_timer_clear(fc_timer_heap *h) {
    h->size = h->n = 0;
    h->next_seq = 0;
    h->nfree = 0;
    for (size_t s = h->cap; s > 0; s--) {
        h->state[s - 1] = FC_SLOT_FREE;
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
    size_t m = 0;
    for (size_t i = 0; i < h->n; i++)
        if (h->state[h->heap[i].slot] == FC_SLOT_LIVE) copy[m++] = h->heap[i];
    qsort(copy, m, sizeof *copy, cmp_timer);
    for (size_t i = 0; i < m; i++) out[i] = copy[i].slot;
    free(copy);
    return 0;
}
