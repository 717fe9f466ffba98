#include "fc_window.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------- shared bits */

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Java's Math.min / Math.max: NaN if either is NaN, and -0.0 < 0.0 */
static inline double jmin(double a, double b) {
    if (a != a) return a;
    if (b != b) return b;
    if (a == 0.0 && b == 0.0) return signbit(a) ? a : b;
    return a < b ? a : b;
}

static inline double jmax(double a, double b) {
    if (a != a) return a;
    if (b != b) return b;
    if (a == 0.0 && b == 0.0) return signbit(a) ? b : a;
    return a > b ? a : b;
}

static int check_aggs(const fc_agg *aggs, int32_t n) {
    if (n < 0 || n > FC_WIN_MAX_AGGS) return -1;
    for (int32_t a = 0; a < n; a++)
        if (aggs[a].kind < FC_AGG_SUM || aggs[a].kind > FC_AGG_LAST || aggs[a].column < 0) return -1;
    return 0;
}

/* first record of a window */
static inline void acc_init(const fc_agg *aggs, int32_t n, double *acc, const double *const *cols, size_t i) {
    for (int32_t a = 0; a < n; a++) acc[a] = aggs[a].kind == FC_AGG_COUNT ? 0.0 : cols[aggs[a].column][i];
}

/* one more record */
static inline void acc_add(const fc_agg *aggs, int32_t n, double *acc, const double *const *cols, size_t i) {
    for (int32_t a = 0; a < n; a++) {
        switch (aggs[a].kind) {
        case FC_AGG_SUM:
        case FC_AGG_MEAN:
            acc[a] += cols[aggs[a].column][i];
            break;
        case FC_AGG_MIN:
            acc[a] = jmin(acc[a], cols[aggs[a].column][i]);
            break;
        case FC_AGG_MAX:
            acc[a] = jmax(acc[a], cols[aggs[a].column][i]);
            break;
        case FC_AGG_LAST:
            acc[a] = cols[aggs[a].column][i];
            break;
        default: /* COUNT lives in the entry's count, FIRST never changes */
            break;
        }
    }
}

/* fold accumulators b into a; b_first/b_last say whether b's first/last values win */
static inline void acc_merge(const fc_agg *aggs, int32_t n, double *a, const double *b, int b_first, int b_last) {
    for (int32_t k = 0; k < n; k++) {
        switch (aggs[k].kind) {
        case FC_AGG_SUM:
        case FC_AGG_MEAN:
            a[k] += b[k];
            break;
        case FC_AGG_MIN:
            a[k] = jmin(a[k], b[k]);
            break;
        case FC_AGG_MAX:
            a[k] = jmax(a[k], b[k]);
            break;
        case FC_AGG_FIRST:
            if (b_first) a[k] = b[k];
            break;
        case FC_AGG_LAST:
            if (b_last) a[k] = b[k];
            break;
        default:
            break;
        }
    }
}

static inline int due_less(const fc_due *a, const fc_due *b) {
    return a->end < b->end || (a->end == b->end && a->key < b->key);
}

/* sort by (end, key): quicksort with median-of-three and insertion sort for short runs; the
 * comparison inlines, which qsort's callback cannot (fire sorts as many rows as it emits) */
static void sort_due(fc_due *d, size_t n) {
    while (n > 16) {
        size_t mid = n / 2, last = n - 1;
        if (due_less(&d[mid], &d[0])) { fc_due t = d[mid]; d[mid] = d[0]; d[0] = t; }
        if (due_less(&d[last], &d[0])) { fc_due t = d[last]; d[last] = d[0]; d[0] = t; }
        if (due_less(&d[last], &d[mid])) { fc_due t = d[last]; d[last] = d[mid]; d[mid] = t; }
        fc_due pivot = d[mid];
        size_t i = 0, j = last;
        for (;;) {
            while (due_less(&d[i], &pivot)) i++;
            while (due_less(&pivot, &d[j])) j--;
            if (i >= j) break;
            fc_due t = d[i];
            d[i] = d[j];
            d[j] = t;
            i++;
            j--;
        }
        /* recurse into the smaller half, loop on the larger: O(log n) stack */
        size_t left = j + 1;
        if (left < n - left) {
            sort_due(d, left);
            d += left;
            n -= left;
        } else {
            sort_due(d + left, n - left);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        fc_due t = d[i];
        size_t j = i;
        while (j > 0 && due_less(&t, &d[j - 1])) {
            d[j] = d[j - 1];
            j--;
        }
        d[j] = t;
    }
}

/* Sort by (end, key). Large fires (as many rows as records when windows are sparse) use an LSD
 * radix sort over only the bytes that vary, which for typical keys and a few window ends is a
 * handful of linear passes; small ones the comparison sort. Returns -1 when out of memory. */
static int sort_due_fast(fc_due **due, size_t *due_cap, fc_due **tmp, size_t *tmp_cap, size_t n) {
    if (n <= 512) {
        sort_due(*due, n);
        return 0;
    }
    if (*tmp_cap < n) {
        fc_due *t = (fc_due *)realloc(*tmp, n * sizeof *t);
        if (!t) return -1;
        *tmp = t;
        *tmp_cap = n;
    }
    fc_due *src = *due, *dst = *tmp;
    const uint64_t flip = UINT64_C(1) << 63; /* signed order as unsigned */
    uint64_t key0 = (uint64_t)src[0].key ^ flip, end0 = (uint64_t)src[0].end ^ flip;
    uint64_t key_diff = 0, end_diff = 0;
    for (size_t i = 1; i < n; i++) {
        key_diff |= ((uint64_t)src[i].key ^ flip) ^ key0;
        end_diff |= ((uint64_t)src[i].end ^ flip) ^ end0;
    }
    size_t count[256];
    for (int field = 0; field < 2; field++) { /* key first, then end: LSD order */
        uint64_t diff = field == 0 ? key_diff : end_diff;
        for (int shift = 0; shift < 64; shift += 8) {
            if (!((diff >> shift) & 0xff)) continue; /* this byte is the same everywhere */
            memset(count, 0, sizeof count);
            for (size_t i = 0; i < n; i++) {
                uint64_t v = (uint64_t)(field == 0 ? src[i].key : src[i].end) ^ flip;
                count[(v >> shift) & 0xff]++;
            }
            size_t sum = 0;
            for (int b = 0; b < 256; b++) {
                size_t c = count[b];
                count[b] = sum;
                sum += c;
            }
            for (size_t i = 0; i < n; i++) {
                uint64_t v = (uint64_t)(field == 0 ? src[i].key : src[i].end) ^ flip;
                dst[count[(v >> shift) & 0xff]++] = src[i];
            }
            fc_due *t = src;
            src = dst;
            dst = t;
        }
    }
    if (src != *due) { /* the result is in the scratch buffer: swap the buffers (and capacities) */
        fc_due *t = *due;
        size_t c = *due_cap;
        *due = src;
        *due_cap = *tmp_cap;
        *tmp = t;
        *tmp_cap = c;
    }
    return 0;
}

static int due_push(fc_due **due, size_t *len, size_t *cap, int64_t end, int64_t key, size_t idx) {
    if (*len == *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        fc_due *d = (fc_due *)realloc(*due, ncap * sizeof *d);
        if (!d) return -1;
        *due = d;
        *cap = ncap;
    }
    fc_due e = {end, key, idx};
    (*due)[(*len)++] = e;
    return 0;
}

/* little-endian byte io for snapshots */
static inline void put_u64(uint8_t **p, uint64_t v) {
    for (int i = 0; i < 8; i++) (*p)[i] = (uint8_t)(v >> (8 * i));
    *p += 8;
}
static inline void put_i64(uint8_t **p, int64_t v) { put_u64(p, (uint64_t)v); }
static inline void put_f64(uint8_t **p, double v) {
    uint64_t b;
    memcpy(&b, &v, 8);
    put_u64(p, b);
}
static inline uint64_t get_u64(const uint8_t **p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)(*p)[i] << (8 * i);
    *p += 8;
    return v;
}
static inline int64_t get_i64(const uint8_t **p) { return (int64_t)get_u64(p); }
static inline double get_f64(const uint8_t **p) {
    uint64_t b = get_u64(p);
    double v;
    memcpy(&v, &b, 8);
    return v;
}

#define SNAP_VERSION 1

static size_t header_size(int32_t n_aggs, int n_params) { return 8 + 8 * (size_t)n_params + 8 + 8 * (size_t)n_aggs; }

static void write_header(uint8_t **p, const char magic[4], const int64_t *params, int n_params, const fc_agg *aggs,
                         int32_t n_aggs) {
    memcpy(*p, magic, 4);
    (*p)[4] = SNAP_VERSION;
    (*p)[5] = (*p)[6] = (*p)[7] = 0;
    *p += 8;
    for (int i = 0; i < n_params; i++) put_i64(p, params[i]);
    put_u64(p, (uint64_t)n_aggs);
    for (int32_t a = 0; a < n_aggs; a++) put_u64(p, ((uint64_t)(uint32_t)aggs[a].kind << 32) | (uint32_t)aggs[a].column);
}

/* FC_WIN_OK if buf starts with the header this spec would write */
static int check_header(const uint8_t **p, const uint8_t *end, const char magic[4], const int64_t *params,
                        int n_params, const fc_agg *aggs, int32_t n_aggs) {
    if ((size_t)(end - *p) < 8 || memcmp(*p, magic, 4) != 0) return FC_WIN_CORRUPT;
    if ((*p)[4] != SNAP_VERSION) return FC_WIN_CORRUPT;
    *p += 8;
    if ((size_t)(end - *p) < 8 * (size_t)n_params + 8) return FC_WIN_CORRUPT;
    for (int i = 0; i < n_params; i++)
        if (get_i64(p) != params[i]) return FC_WIN_MISMATCH;
    if (get_u64(p) != (uint64_t)n_aggs) return FC_WIN_MISMATCH;
    if ((size_t)(end - *p) < 8 * (size_t)n_aggs) return FC_WIN_CORRUPT;
    for (int32_t a = 0; a < n_aggs; a++)
        if (get_u64(p) != (((uint64_t)(uint32_t)aggs[a].kind << 32) | (uint32_t)aggs[a].column)) return FC_WIN_MISMATCH;
    return FC_WIN_OK;
}

/* ------------------------------------------------------------------- tumbling / sliding table */

enum { ST_EMPTY = 0, ST_DIRTY = 1, ST_FIRED = 2 };

typedef struct {
    int64_t key, start, count, state;
} wt_head;

#define WT_ENTRY(t, i) ((wt_head *)((t)->slots + (i) * (t)->stride))
#define WT_ACC(e) ((double *)((wt_head *)(e) + 1))

#if defined(__GNUC__) || defined(__clang__)
#define FC_PREFETCH(p) __builtin_prefetch(p, 1, 1)
#else
#define FC_PREFETCH(p) ((void)(p))
#endif

#define AHEAD 16 /* records looked ahead: enough to cover a cache miss to memory */

/* the dense layout's parameters (its code is below wt_lookup) */
#define DN_MAX_K 8                   /* at most this many windows per record (size / slide) */
#define DN_LIMIT (INT64_C(1) << 22)  /* keys at or above this go to the hash table */
#define DN_MIN_BYTES (1 << 19)       /* arrays this small (per window) are always fine */
#define DN_SPARSE 16                 /* arrays may be this many times the keys per window */
#define DN_DIRTY (INT64_C(1) << 62)  /* in an entry's count word: updated since the last fire */
#define DN_COUNT (DN_DIRTY - 1)

#define DN_ENT(t, w, key) ((int64_t *)((w)->ent + (size_t)(key) * (t)->dstride))

static size_t windows_per_record(int64_t size, int64_t slide) { return (size_t)((size - 1) / slide + 1); }

static void dn_free_all(fc_wtable *t);

static inline size_t wt_hash(int64_t key, int64_t start) {
    return (size_t)mix64((uint64_t)key * 0x9e3779b97f4a7c15ull ^ (uint64_t)start);
}

static int wt_alloc(fc_wtable *t, size_t cap) {
    uint8_t *slots = (uint8_t *)calloc(cap, t->stride);
    if (!slots) return -1;
    t->slots = slots;
    t->cap = cap;
    t->live = 0;
    return 0;
}

int fc_wtable_init(fc_wtable *t, int64_t size, int64_t slide, int64_t offset, int64_t lateness,
                   const fc_agg *aggs, int32_t n_aggs) {
    memset(t, 0, sizeof *t);
    if (size <= 0 || slide <= 0 || lateness < 0 || check_aggs(aggs, n_aggs)) return FC_WIN_CORRUPT;
    t->size = size;
    t->slide = slide;
    t->offset = offset;
    t->lateness = lateness;
    t->n_aggs = n_aggs;
    if (n_aggs) memcpy(t->aggs, aggs, (size_t)n_aggs * sizeof *aggs);
    t->stride = sizeof(wt_head) + (size_t)n_aggs * sizeof(double);
    t->dstride = sizeof(int64_t) + (size_t)n_aggs * sizeof(double);
    t->dense = windows_per_record(size, slide) <= DN_MAX_K;
    t->min_due = INT64_MAX;
    return wt_alloc(t, 1024) ? FC_WIN_NOMEM : FC_WIN_OK;
}

void fc_wtable_free(fc_wtable *t) {
    dn_free_all(t);
    free(t->slots);
    free(t->due);
    free(t->due_tmp);
    t->due_tmp = NULL;
    t->due_tmp_cap = 0;
    t->slots = NULL;
    t->due = NULL;
    t->cap = t->live = t->due_len = t->due_cap = 0;
}

void fc_wtable_clear(fc_wtable *t) {
    dn_free_all(t);
    t->dense = windows_per_record(t->size, t->slide) <= DN_MAX_K;
    memset(t->slots, 0, t->cap * t->stride);
    t->live = 0;
    t->min_due = INT64_MAX;
}

/* move every entry into a table of `cap` slots */
static int wt_rehash(fc_wtable *t, size_t cap) {
    uint8_t *old = t->slots;
    size_t old_cap = t->cap, live = t->live;
    if (wt_alloc(t, cap)) {
        t->slots = old;
        t->cap = old_cap;
        t->live = live;
        return -1;
    }
    size_t mask = cap - 1;
    for (size_t i = 0; i < old_cap; i++) {
        wt_head *e = (wt_head *)(old + i * t->stride);
        if (e->state == ST_EMPTY) continue;
        size_t j = wt_hash(e->key, e->start) & mask;
        while (WT_ENTRY(t, j)->state != ST_EMPTY) j = (j + 1) & mask;
        memcpy(WT_ENTRY(t, j), e, t->stride);
    }
    t->live = live;
    free(old);
    return 0;
}

/* Linear probing, at most half full, deletion by backward shift (no tombstones, so probe runs
 * stay short however many windows come and go). The entry of (key, start), created with count 0
 * if absent; NULL when out of memory. */
static inline wt_head *wt_lookup(fc_wtable *t, int64_t key, int64_t start, size_t h) {
    size_t mask = t->cap - 1;
    size_t i = h & mask;
    for (;;) {
        wt_head *e = WT_ENTRY(t, i);
        if (e->state == ST_EMPTY) break;
        if (e->key == key && e->start == start) return e;
        i = (i + 1) & mask;
    }
    if ((t->live + 1) * 2 > t->cap) {
        if (wt_rehash(t, t->cap * 2)) return NULL;
        mask = t->cap - 1;
        i = h & mask;
        while (WT_ENTRY(t, i)->state != ST_EMPTY) i = (i + 1) & mask;
    }
    wt_head *e = WT_ENTRY(t, i);
    t->live++;
    e->key = key;
    e->start = start;
    e->count = 0;
    e->state = ST_DIRTY;
    return e;
}

/* remove the entry at slot i, pulling later entries of its probe run back into the hole */
static void wt_delete(fc_wtable *t, size_t i) {
    size_t mask = t->cap - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        wt_head *e = WT_ENTRY(t, j);
        if (e->state == ST_EMPTY) break;
        size_t k = wt_hash(e->key, e->start) & mask;
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            memcpy(WT_ENTRY(t, i), e, t->stride);
            i = j;
        }
    }
    memset(WT_ENTRY(t, i), 0, t->stride);
    t->live--;
}

/* ------------------------------------------------------------------------- dense layout
 * While every key is a small non-negative int, each open window keeps its entries in an array
 * indexed by the key: an update is one load/store at a computed address (no hash, no probe, no
 * key compare), W2's 10k keys take 160 KB per window (cache-resident), and a window's keys come
 * out already in key order at fire time (no sort). */

static void dn_release(fc_wtable *t, fc_dwin *w) {
    if (!t->dspare) {
        t->dspare = w->ent; /* zeroed again when reused */
    } else {
        free(w->ent);
    }
    free(w);
}

static void dn_free_all(fc_wtable *t) {
    for (size_t j = 0; j < t->n_dwins; j++) {
        free(t->dwins[j]->ent);
        free(t->dwins[j]);
    }
    free(t->dwins);
    free(t->dn_due);
    free(t->dspare);
    t->dwins = t->dn_due = NULL;
    t->dspare = NULL;
    t->n_dwins = t->dwins_cap = t->dn_due_len = 0;
    t->dcap = t->dpeak = 0;
}

/* the dense window starting at `start`, created if absent; NULL when out of memory */
static fc_dwin *dn_window(fc_wtable *t, int64_t start) {
    for (size_t j = 0; j < t->n_dwins; j++)
        if (t->dwins[j]->start == start) return t->dwins[j];
    if (t->n_dwins == t->dwins_cap) {
        size_t cap = t->dwins_cap ? t->dwins_cap * 2 : 8;
        fc_dwin **a = (fc_dwin **)realloc(t->dwins, cap * sizeof *a);
        if (!a) return NULL;
        t->dwins = a;
        fc_dwin **d = (fc_dwin **)realloc(t->dn_due, cap * sizeof *d);
        if (!d) return NULL;
        t->dn_due = d;
        t->dwins_cap = cap;
    }
    fc_dwin *w = (fc_dwin *)calloc(1, sizeof *w);
    if (!w) return NULL;
    if (t->dspare) {
        w->ent = t->dspare;
        t->dspare = NULL;
        memset(w->ent, 0, t->dcap * t->dstride);
    } else {
        w->ent = (uint8_t *)calloc(t->dcap ? t->dcap : 1, t->dstride);
        if (!w->ent) {
            free(w);
            return NULL;
        }
    }
    w->start = start;
    w->max_ts = fc_window_end(start, t->size) - 1;
    w->cleanup = fc_cleanup_time(w->max_ts, t->lateness);
    t->dwins[t->n_dwins++] = w;
    return w;
}

/* Move every dense window into the hash table; the hash layout serves from then on. */
static int dn_to_hash(fc_wtable *t) {
    size_t live = t->live, cap = t->cap;
    while ((live + 1) * 2 > cap) cap *= 2;
    uint8_t *slots = (uint8_t *)calloc(cap, t->stride); /* big enough: no rehash while moving */
    if (!slots) return -1;
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    t->live = 0;
    for (size_t j = 0; j < t->n_dwins; j++) {
        fc_dwin *w = t->dwins[j];
        for (size_t key = 0; key < t->dcap; key++) {
            int64_t *c = DN_ENT(t, w, key);
            if (!*c) continue;
            wt_head *e = wt_lookup(t, (int64_t)key, w->start, wt_hash((int64_t)key, w->start));
            e->count = *c & DN_COUNT;
            e->state = (*c & DN_DIRTY) ? ST_DIRTY : ST_FIRED;
            memcpy(WT_ACC(e), c + 1, (size_t)t->n_aggs * sizeof(double));
        }
    }
    dn_free_all(t);
    t->dense = 0;
    return 0;
}

/* Keys in [kmin, kmax] over n records are about to arrive: make the arrays cover them, or move
 * to the hash layout when they cannot (negative, too large, or arrays mostly empty).
 * Returns 1 (stay dense), 0 (moved to hash), -1 (out of memory). */
static int dn_admit(fc_wtable *t, int64_t kmin, int64_t kmax, size_t n) {
    if (kmin < 0 || kmax >= DN_LIMIT) return dn_to_hash(t) ? -1 : 0;
    size_t need = (size_t)kmax + 1;
    if (need <= t->dcap) return 1;
    size_t cap = t->dcap + t->dcap / 2;
    if (cap < need) cap = need;
    cap = (cap + 63) & ~(size_t)63;
    if (cap * t->dstride > DN_MIN_BYTES && cap > DN_SPARSE * (t->dpeak + n)) return dn_to_hash(t) ? -1 : 0;
    for (size_t j = 0; j < t->n_dwins; j++) {
        fc_dwin *w = t->dwins[j];
        uint8_t *ent = (uint8_t *)realloc(w->ent, cap * t->dstride);
        if (!ent) return -1;
        memset(ent + t->dcap * t->dstride, 0, (cap - t->dcap) * t->dstride);
        w->ent = ent;
    }
    free(t->dspare);
    t->dspare = NULL;
    t->dcap = cap;
    return 1;
}

/* Rows [from, n) into the dense windows, up to the first row whose key is outside [0, dcap)
 * (checked here, in the one pass over the rows, rather than in a pass of its own before: the
 * columns are read from memory once): *stop is that row, or n. *tmax is raised to the largest
 * timestamp of the rows taken (the watermark generator's maximum, so no pass of its own either). */
static int64_t dn_update(fc_wtable *t, const int64_t *keys, const int64_t *ts, const double *const *cols,
                         size_t from, size_t n, int64_t watermark, uint8_t *late, int64_t *tmax, size_t *stop) {
    const int64_t size = t->size, slide = t->slide, offset = t->offset, lateness = t->lateness;
    const int32_t na = t->n_aggs;
    const fc_agg *aggs = t->aggs;
    const size_t ds = t->dstride, dcap = t->dcap;
    fc_dwin *wk[DN_MAX_K];
    int nk = 0, have = 0;
    int64_t last = 0, min_due = t->min_due, n_late = 0, hi = *tmax;
    /* sums only (sum/mean/count: the usual case): add the value columns with no per-kind switch */
    int simple = 1, n_sums = 0;
    int32_t sum_slot[FC_WIN_MAX_AGGS];
    const double *sum_col[FC_WIN_MAX_AGGS];
    for (int32_t a = 0; a < na; a++) {
        if (aggs[a].kind == FC_AGG_SUM || aggs[a].kind == FC_AGG_MEAN) {
            sum_slot[n_sums] = a;
            sum_col[n_sums++] = cols[aggs[a].column];
        } else if (aggs[a].kind != FC_AGG_COUNT) {
            simple = 0;
        }
    }
    if (simple && size == slide) {
        /* tumbling windows, sums and counts: runs of records in one window, a tight loop each
         * (one sum: the loop below adds it inline; several, e.g. the merged partials of a
         * two-phase window, a sum and a count partial: an inner loop over them) */
        const double *col = n_sums == 1 ? sum_col[0] : NULL;
        const int32_t slot = n_sums == 1 ? sum_slot[0] : 0;
        size_t i = from;
        while (i < n) {
            const int64_t start = fc_window_start(ts[i], offset, slide);
            const int64_t max_ts = fc_window_end(start, size) - 1;
            fc_dwin *w = NULL;
            if (fc_cleanup_time(max_ts, lateness) > watermark) {
                if ((uint64_t)keys[i] >= dcap) break; /* not in the arrays: the caller admits it */
                if (!(w = dn_window(t, start))) {
                    t->min_due = min_due;
                    *tmax = hi;
                    *stop = i;
                    return FC_WIN_NOMEM;
                }
                if (max_ts < min_due) min_due = max_ts;
            }
            /* the run: records whose timestamp is in [start, start + slide) (compared unsigned: the
             * end may lie past INT64_MAX); for a saturated start, those with record i's timestamp */
            const uint64_t ulo = start == INT64_MIN ? (uint64_t)ts[i] : (uint64_t)start;
            const uint64_t ulen = start == INT64_MIN ? 1 : (uint64_t)slide;
            size_t j = i;
            if (!w) {
                while (j < n && (uint64_t)ts[j] - ulo < ulen) j++;
                /* the run's largest timestamp: its last record's or a later one's, all in the run */
                for (size_t r = i; r < j; r++) hi = ts[r] > hi ? ts[r] : hi;
                if (late) memset(late + i, 1, j - i);
                n_late += (int64_t)(j - i);
                i = j;
                continue;
            }
            uint8_t *ent = w->ent;
            size_t live = 0, ndirty = 0;
            for (; j < n; j++) {
                const int64_t tj = ts[j];
                const uint64_t kj = (uint64_t)keys[j];
                if ((uint64_t)tj - ulo >= ulen || kj >= dcap) break;
                hi = tj > hi ? tj : hi;
                int64_t *c = (int64_t *)(ent + kj * ds);
                const int64_t cv = *c;
                double *acc = (double *)(c + 1);
                if (cv == 0) {
                    for (int32_t a = 0; a < na; a++) acc[a] = -0.0; /* -0.0 + x == x, also for x = -0.0 */
                    live++;
                }
                if (col) {
                    acc[slot] += col[j];
                } else {
                    for (int m = 0; m < n_sums; m++) acc[sum_slot[m]] += sum_col[m][j];
                }
                if (!(cv & DN_DIRTY)) ndirty++;
                *c = (cv + 1) | DN_DIRTY;
            }
            w->live += live;
            t->live += live;
            w->ndirty += ndirty;
            if (late) memset(late + i, 0, j - i);
            i = j;
            if (j < n && (uint64_t)ts[j] - ulo < ulen) break; /* stopped at a key not in the arrays */
        }
        t->min_due = min_due;
        *tmax = hi;
        *stop = i;
        return n_late;
    }
    const uint8_t *pf = NULL; /* the entries of the current last window, prefetched AHEAD records on */
    size_t i = from;
    for (; i < n; i++) {
        if (pf && i + AHEAD < n) FC_PREFETCH(pf + (size_t)keys[i + AHEAD] * ds);
        const int64_t tsi = ts[i];
        const size_t key = (size_t)keys[i];
        if (key >= dcap) break; /* not in the arrays: the caller admits it */
        hi = tsi > hi ? tsi : hi;
        if (!(have && tsi >= last && (uint64_t)tsi - (uint64_t)last < (uint64_t)slide)) {
            /* a new last window: look up (or open) every window a timestamp in it can fall in */
            last = fc_window_start(tsi, offset, slide);
            have = last != INT64_MIN; /* saturated starts are never cached */
            nk = 0;
            for (int64_t k = 0; k * slide < size; k++) {
                if (last < INT64_MIN + k * slide) break;
                const int64_t start = last - k * slide;
                const int64_t max_ts = fc_window_end(start, size) - 1;
                wk[k] = NULL;
                if (fc_cleanup_time(max_ts, lateness) > watermark) {
                    if (!(wk[k] = dn_window(t, start))) {
                        t->min_due = min_due;
                        *tmax = hi;
                        *stop = i;
                        return FC_WIN_NOMEM;
                    }
                    if (max_ts < min_due) min_due = max_ts;
                }
                nk = (int)k + 1;
            }
            pf = nk && wk[0] ? wk[0]->ent : NULL;
        }
        const int64_t span = size - (tsi - last);
        int assigned = 0;
        for (int k = 0; k < nk && (int64_t)k * slide < span; k++) {
            fc_dwin *w = wk[k];
            if (!w) continue;
            assigned = 1;
            int64_t *c = (int64_t *)(w->ent + key * ds);
            const int64_t cv = *c;
            double *acc = (double *)(c + 1);
            if (simple) {
                if (cv == 0) {
                    for (int32_t a = 0; a < na; a++) acc[a] = -0.0; /* -0.0 + x == x, also for x = -0.0 */
                    w->live++;
                    t->live++;
                }
                for (int j = 0; j < n_sums; j++) acc[sum_slot[j]] += sum_col[j][i];
            } else if (cv == 0) {
                acc_init(aggs, na, acc, cols, i);
                w->live++;
                t->live++;
            } else {
                acc_add(aggs, na, acc, cols, i);
            }
            if (!(cv & DN_DIRTY)) w->ndirty++; /* a branch, not a store per record into *w */
            *c = (cv + 1) | DN_DIRTY;
        }
        if (late) late[i] = (uint8_t)!assigned;
        n_late += !assigned;
    }
    t->min_due = min_due;
    *tmax = hi;
    *stop = i;
    return n_late;
}

/* due windows by start (= by end, unless two ends saturate at INT64_MAX: then 1 is returned and
 * the caller moves to the hash layout, whose fire interleaves such windows by key) */
static int64_t dn_fire_prepare(fc_wtable *t, int64_t watermark, int *tie) {
    t->dn_due_len = 0;
    *tie = 0;
    size_t total = 0;
    for (size_t j = 0; j < t->n_dwins; j++) {
        fc_dwin *w = t->dwins[j];
        if (!w->ndirty || w->max_ts > watermark) continue;
        size_t p = t->dn_due_len++;
        while (p > 0 && t->dn_due[p - 1]->start > w->start) {
            t->dn_due[p] = t->dn_due[p - 1];
            p--;
        }
        t->dn_due[p] = w;
        total += w->ndirty;
    }
    for (size_t d = 1; d < t->dn_due_len; d++)
        if (t->dn_due[d]->max_ts == t->dn_due[d - 1]->max_ts) *tie = 1;
    return (int64_t)total;
}

/* what a fire writes per aggregate, decided once per fire rather than per row */
enum { EM_COPY = 0, EM_COUNT, EM_MEAN, EM_ISUM };

static void emit_plan(const fc_agg *aggs, int32_t n, uint64_t int_sums, uint8_t *op) {
    for (int32_t a = 0; a < n; a++) {
        const int32_t k = aggs[a].kind;
        op[a] = k == FC_AGG_COUNT ? EM_COUNT
                : k == FC_AGG_MEAN ? EM_MEAN
                : (k == FC_AGG_SUM && (int_sums >> a & 1)) ? EM_ISUM
                : EM_COPY;
    }
}

static inline void emit_row(const uint8_t *op, int32_t n, const double *acc, int64_t count, void *const *out,
                            size_t row) {
    for (int32_t a = 0; a < n; a++) {
        switch (op[a]) {
        case EM_COUNT:
            ((int64_t *)out[a])[row] = count;
            break;
        case EM_MEAN:
            ((double *)out[a])[row] = acc[a] / (double)count;
            break;
        case EM_ISUM: /* as numpy's astype(int64) of the float64 sum: truncated toward zero */
            ((int64_t *)out[a])[row] = (int64_t)acc[a];
            break;
        default:
            ((double *)out[a])[row] = acc[a];
        }
    }
}

/* The dense fire: every due window's dirty keys in key order. The common specs (a sum and a
 * count, or two sums of partials) get loops of their own, and outputs the caller does not take
 * (NULL) are not written. */
static void dn_fire_emit(fc_wtable *t, int64_t watermark, int64_t *out_keys, int64_t *out_starts, int64_t *out_ends,
                         int64_t *out_max_ts, void *const *out_aggs, uint64_t int_sums) {
    size_t row = 0;
    const size_t ds = t->dstride, cap = t->dcap;
    const int32_t na = t->n_aggs;
    uint8_t op[FC_WIN_MAX_AGGS];
    emit_plan(t->aggs, t->n_aggs, int_sums, op);
    /* 1: copy + count (sum, count); 2: copy + isum (merged partials of sum, count) */
    const int spec = na == 2 && op[0] == EM_COPY ? (op[1] == EM_COUNT ? 1 : op[1] == EM_ISUM ? 2 : 0) : 0;
    for (size_t d = 0; d < t->dn_due_len; d++) {
        fc_dwin *w = t->dn_due[d];
        const int64_t start = w->start, end = w->max_ts + 1, max_ts = w->max_ts;
        const size_t first = row;
        uint8_t *p = w->ent;
        if (spec) {
            double *o0 = (double *)out_aggs[0];
            int64_t *o1 = (int64_t *)out_aggs[1];
            for (size_t key = 0; key < cap; key++, p += ds) {
                const int64_t cv = *(int64_t *)p;
                if (!(cv & DN_DIRTY)) continue;
                const double *acc = (const double *)(p + 8);
                if (out_keys) out_keys[row] = (int64_t)key;
                o0[row] = acc[0];
                o1[row] = spec == 1 ? (cv & DN_COUNT) : (int64_t)acc[1];
                *(int64_t *)p = cv & DN_COUNT;
                row++;
            }
        } else {
            for (size_t key = 0; key < cap; key++, p += ds) {
                const int64_t cv = *(int64_t *)p;
                if (!(cv & DN_DIRTY)) continue;
                if (out_keys) out_keys[row] = (int64_t)key;
                emit_row(op, na, (const double *)(p + 8), cv & DN_COUNT, out_aggs, row);
                *(int64_t *)p = cv & DN_COUNT;
                row++;
            }
        }
        /* the window's constant columns, one fill each */
        for (size_t r = first; r < row; r++) {
            if (out_starts) out_starts[r] = start;
            if (out_ends) out_ends[r] = end;
            if (out_max_ts) out_max_ts[r] = max_ts;
        }
        w->ndirty = 0;
    }
    t->dn_due_len = 0;
    if (t->min_due > watermark) return;
    size_t peak = 0;
    int64_t min_due = INT64_MAX;
    for (size_t j = 0; j < t->n_dwins;) {
        fc_dwin *w = t->dwins[j];
        if (w->live > peak) peak = w->live;
        if (w->cleanup <= watermark) {
            t->live -= w->live;
            dn_release(t, w);
            t->dwins[j] = t->dwins[--t->n_dwins];
            continue;
        }
        int64_t due = w->ndirty ? w->max_ts : w->cleanup;
        if (due < min_due) min_due = due;
        j++;
    }
    t->min_due = min_due;
    t->dpeak = peak > t->dpeak - t->dpeak / 8 ? peak : t->dpeak - t->dpeak / 8;
}

static void dn_snapshot(const fc_wtable *t, uint8_t **out) {
    for (size_t j = 0; j < t->n_dwins; j++) {
        const fc_dwin *w = t->dwins[j];
        for (size_t key = 0; key < t->dcap; key++) {
            const int64_t *c = DN_ENT(t, w, key);
            if (!*c) continue;
            put_i64(out, (int64_t)key);
            put_i64(out, w->start);
            put_i64(out, *c & DN_COUNT);
            put_i64(out, (*c & DN_DIRTY) ? ST_DIRTY : ST_FIRED);
            /* a count lives in the count word: its accumulator is written as 0.0, as the hash
             * layout keeps it (the update's fast path leaves -0.0 there), so a snapshot's bytes do
             * not depend on the layout */
            for (int32_t a = 0; a < t->n_aggs; a++)
                put_f64(out, t->aggs[a].kind == FC_AGG_COUNT ? 0.0 : ((const double *)(c + 1))[a]);
        }
    }
}

/* one snapshot record into a dense window (merged into what is there, as wt restore does) */
static int dn_restore_one(fc_wtable *t, int64_t key, int64_t start, int64_t count, int64_t state, const double *acc) {
    fc_dwin *w = dn_window(t, start);
    if (!w) return FC_WIN_NOMEM;
    int64_t *c = DN_ENT(t, w, key);
    int64_t cv = *c;
    int dirty = state == ST_DIRTY;
    if (!cv) {
        memcpy(c + 1, acc, (size_t)t->n_aggs * sizeof(double));
        w->live++;
        t->live++;
    } else {
        acc_merge(t->aggs, t->n_aggs, (double *)(c + 1), acc, 0, 1);
        dirty |= (cv & DN_DIRTY) != 0;
    }
    if (dirty && !(cv & DN_DIRTY)) w->ndirty++;
    *c = ((cv & DN_COUNT) + count) | (dirty ? DN_DIRTY : 0);
    int64_t due = dirty ? w->max_ts : w->cleanup;
    if (due < t->min_due) t->min_due = due;
    return FC_WIN_OK;
}

/* Window starts of mostly ordered timestamps: remember the last window [lo, lo + slide) and only
 * divide when a timestamp falls outside it (a 64-bit division costs more than the rest of an
 * update). Saturated starts are never cached. */
typedef struct {
    int64_t lo;
    int valid;
} start_cache;

static inline int64_t cached_start(start_cache *c, int64_t ts, int64_t offset, int64_t slide) {
    if (c->valid && ts >= c->lo && (uint64_t)ts - (uint64_t)c->lo < (uint64_t)slide) return c->lo;
    int64_t s = fc_window_start(ts, offset, slide);
    c->lo = s;
    c->valid = s != INT64_MIN;
    return s;
}


int64_t fc_wtable_update(fc_wtable *t, const int64_t *keys, const int64_t *ts, const double *const *cols,
                         size_t n, int64_t watermark, uint8_t *late, int64_t *max_ts) {
    int64_t n_late = 0, hi = INT64_MIN;
    size_t from = 0;
    while (t->dense && from < n) {
        size_t stop;
        int64_t r = dn_update(t, keys, ts, cols, from, n, watermark, late, &hi, &stop);
        if (r < 0) return FC_WIN_NOMEM;
        n_late += r;
        from = stop;
        if (from == n) break;
        /* keys[from] is not in the arrays: grow them for the rest of the batch, or move to hash */
        int64_t kmin = keys[from], kmax = keys[from];
        for (size_t i = from + 1; i < n; i++) {
            kmin = keys[i] < kmin ? keys[i] : kmin;
            kmax = keys[i] > kmax ? keys[i] : kmax;
        }
        int rc = dn_admit(t, kmin, kmax, n - from);
        if (rc < 0) return FC_WIN_NOMEM;
    }
    if (from == n) {
        if (max_ts) *max_ts = hi;
        return n_late;
    }
    const int64_t size = t->size, slide = t->slide, offset = t->offset, lateness = t->lateness;
    const int32_t n_aggs = t->n_aggs;
    int64_t min_due = t->min_due;
    /* ring of the last window start of records i .. i + AHEAD - 1, computed once, and used both to
     * prefetch their table slots (the table outgrows the cache) and to update them */
    int64_t ring[AHEAD];
    start_cache ahead = {0, 0};
    size_t pre = n - from < AHEAD ? n - from : AHEAD;
    for (size_t p = from; p < from + pre; p++) ring[p % AHEAD] = cached_start(&ahead, ts[p], offset, slide);
    for (size_t i = from; i < n; i++) {
        const int64_t last = ring[i % AHEAD];
        if (i + AHEAD < n) {
            size_t p = i + AHEAD;
            int64_t s = cached_start(&ahead, ts[p], offset, slide);
            ring[p % AHEAD] = s;
            FC_PREFETCH(t->slots + (wt_hash(keys[p], s) & (t->cap - 1)) * t->stride);
        }
        const int64_t tsi = ts[i];
        hi = tsi > hi ? tsi : hi;
        const int64_t span = size - (tsi - last); /* windows start at last - k*slide for k*slide < span */
        int assigned = 0;
        for (int64_t k = 0; k * slide < span; k++) {
            if (last < INT64_MIN + k * slide) break;
            const int64_t start = last - k * slide;
            const int64_t max_ts_k = fc_window_end(start, size) - 1;
            const int64_t cleanup = fc_cleanup_time(max_ts_k, lateness);
            if (cleanup <= watermark) continue; /* late for this window */
            assigned = 1;
            wt_head *e = wt_lookup(t, keys[i], start, wt_hash(keys[i], start));
            if (!e) {
                t->min_due = min_due;
                return FC_WIN_NOMEM;
            }
            double *acc = WT_ACC(e);
            if (e->count == 0) {
                acc_init(t->aggs, n_aggs, acc, cols, i);
                if (cleanup < min_due) min_due = cleanup;
            } else {
                acc_add(t->aggs, n_aggs, acc, cols, i);
            }
            e->count++;
            e->state = ST_DIRTY;
            if (max_ts_k < min_due) min_due = max_ts_k;
        }
        if (late) late[i] = (uint8_t)!assigned;
        n_late += !assigned;
    }
    t->min_due = min_due;
    if (max_ts) *max_ts = hi;
    return n_late;
}

int64_t fc_wtable_late_mask(const fc_wtable *t, const int64_t *ts, size_t n, int64_t watermark, uint8_t *late) {
    int64_t n_late = 0;
    for (size_t i = 0; i < n; i++) {
        /* the last window (largest start) of a record is its latest to clean up */
        int64_t last = fc_window_start(ts[i], t->offset, t->slide);
        int64_t cleanup = fc_cleanup_time(fc_window_end(last, t->size) - 1, t->lateness);
        late[i] = (uint8_t)(cleanup <= watermark);
        n_late += late[i];
    }
    return n_late;
}

int64_t fc_wtable_fire_prepare(fc_wtable *t, int64_t watermark) {
    t->due_len = 0;
    t->dn_due_len = 0;
    if (!t->live || t->min_due > watermark) return 0;
    if (t->dense) {
        int tie;
        int64_t n = dn_fire_prepare(t, watermark, &tie);
        if (!tie) return n;
        t->dn_due_len = 0;
        if (dn_to_hash(t)) return FC_WIN_NOMEM;
    }
    for (size_t i = 0; i < t->cap; i++) {
        wt_head *e = WT_ENTRY(t, i);
        if (e->state != ST_DIRTY) continue;
        int64_t end = fc_window_end(e->start, t->size);
        if (end - 1 <= watermark && due_push(&t->due, &t->due_len, &t->due_cap, end, e->key, i)) return FC_WIN_NOMEM;
    }
    if (sort_due_fast(&t->due, &t->due_cap, &t->due_tmp, &t->due_tmp_cap, t->due_len)) return FC_WIN_NOMEM;
    return (int64_t)t->due_len;
}

void fc_wtable_fire_emit(fc_wtable *t, int64_t watermark, int64_t *out_keys, int64_t *out_starts,
                         int64_t *out_ends, int64_t *out_max_ts, void *const *out_aggs, uint64_t int_sums) {
    if (t->dense) {
        dn_fire_emit(t, watermark, out_keys, out_starts, out_ends, out_max_ts, out_aggs, int_sums);
        return;
    }
    uint8_t op[FC_WIN_MAX_AGGS];
    emit_plan(t->aggs, t->n_aggs, int_sums, op);
    for (size_t r = 0; r < t->due_len; r++) {
        wt_head *e = WT_ENTRY(t, t->due[r].idx);
        if (out_keys) out_keys[r] = e->key;
        if (out_starts) out_starts[r] = e->start;
        if (out_ends) out_ends[r] = t->due[r].end;
        if (out_max_ts) out_max_ts[r] = fc_window_end(e->start, t->size) - 1;
        emit_row(op, t->n_aggs, WT_ACC(e), e->count, out_aggs, r);
        e->state = ST_FIRED;
    }
    t->due_len = 0;
    if (t->min_due > watermark) return;
    t->high_water = t->live > t->high_water - t->high_water / 8 ? t->live : t->high_water - t->high_water / 8;
    /* drop what is past its cleanup time; recompute the next due time. A deletion shifts later
     * entries back into slot i, so slot i is looked at again (an entry that wraps around may be
     * seen twice, which is harmless: it is kept the first time, so it is kept again). */
    int64_t min_due = INT64_MAX;
    for (size_t i = 0; i < t->cap;) {
        wt_head *e = WT_ENTRY(t, i);
        if (e->state == ST_EMPTY) {
            i++;
            continue;
        }
        int64_t max_ts = fc_window_end(e->start, t->size) - 1;
        int64_t cleanup = fc_cleanup_time(max_ts, t->lateness);
        if (cleanup <= watermark) {
            wt_delete(t, i);
            continue;
        }
        int64_t due = e->state == ST_DIRTY ? max_ts : cleanup;
        if (due < min_due) min_due = due;
        i++;
    }
    t->min_due = min_due;
    /* give memory back once a burst of keys is gone (not merely between two batches) */
    if (t->cap > 65536 && t->live * 32 < t->cap && t->high_water * 8 < t->cap) {
        size_t cap = 1024;
        while (t->live * 4 > cap) cap *= 2;
        wt_rehash(t, cap); /* on failure the old table stays, which is fine */
    }
}

size_t fc_wtable_snapshot_size(const fc_wtable *t) {
    return header_size(t->n_aggs, 4) + 8 + t->live * t->stride;
}

void fc_wtable_snapshot(const fc_wtable *t, uint8_t *out) {
    int64_t params[4] = {t->size, t->slide, t->offset, t->lateness};
    write_header(&out, "FCWT", params, 4, t->aggs, t->n_aggs);
    put_u64(&out, t->live);
    if (t->dense) {
        dn_snapshot(t, &out);
        return;
    }
    for (size_t i = 0; i < t->cap; i++) {
        const wt_head *e = WT_ENTRY(t, i);
        if (e->state == ST_EMPTY) continue;
        put_i64(&out, e->key);
        put_i64(&out, e->start);
        put_i64(&out, e->count);
        put_i64(&out, e->state);
        for (int32_t a = 0; a < t->n_aggs; a++) /* a count's as the dense layout's: 0.0 */
            put_f64(&out, t->aggs[a].kind == FC_AGG_COUNT ? 0.0 : WT_ACC(e)[a]);
    }
}

static int64_t wt_check_snapshot(const fc_wtable *t, const uint8_t *buf, size_t len, const uint8_t **body) {
    const uint8_t *p = buf, *end = buf + len;
    int64_t params[4] = {t->size, t->slide, t->offset, t->lateness};
    int rc = check_header(&p, end, "FCWT", params, 4, t->aggs, t->n_aggs);
    if (rc) return rc;
    if ((size_t)(end - p) < 8) return FC_WIN_CORRUPT;
    uint64_t n = get_u64(&p);
    if (n > (size_t)(end - p) / t->stride || n * t->stride != (size_t)(end - p)) return FC_WIN_CORRUPT;
    /* validate entries */
    const uint8_t *q = p;
    for (uint64_t i = 0; i < n; i++) {
        q += 16;
        int64_t count = get_i64(&q);
        int64_t state = get_i64(&q);
        if (count <= 0 || (state != ST_DIRTY && state != ST_FIRED)) return FC_WIN_CORRUPT;
        q += 8 * (size_t)t->n_aggs;
    }
    *body = p;
    return (int64_t)n;
}

int64_t fc_wtable_snapshot_keys(const fc_wtable *t, const uint8_t *buf, size_t len, int64_t *keys) {
    const uint8_t *p;
    int64_t n = wt_check_snapshot(t, buf, len, &p);
    if (n < 0 || !keys) return n;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *q = p + (size_t)i * t->stride;
        keys[i] = get_i64(&q);
    }
    return n;
}

int fc_wtable_restore(fc_wtable *t, const uint8_t *buf, size_t len, const uint8_t *keep) {
    const uint8_t *p;
    int64_t n = wt_check_snapshot(t, buf, len, &p);
    if (n < 0) return (int)n;
    if (t->dense) { /* the kept keys decide the layout, as a batch's keys do */
        int64_t kmin = INT64_MAX, kmax = INT64_MIN;
        size_t kept = 0;
        for (int64_t i = 0; i < n; i++) {
            if (keep && !keep[i]) continue;
            const uint8_t *q = p + (size_t)i * t->stride;
            int64_t key = get_i64(&q);
            kmin = key < kmin ? key : kmin;
            kmax = key > kmax ? key : kmax;
            kept++;
        }
        if (kept && dn_admit(t, kmin, kmax, kept) < 0) return FC_WIN_NOMEM;
    }
    double acc[FC_WIN_MAX_AGGS];
    for (int64_t i = 0; i < n; i++) {
        int64_t key = get_i64(&p), start = get_i64(&p), count = get_i64(&p), state = get_i64(&p);
        for (int32_t a = 0; a < t->n_aggs; a++) acc[a] = get_f64(&p);
        if (keep && !keep[i]) continue;
        if (t->dense) {
            int rc = dn_restore_one(t, key, start, count, state, acc);
            if (rc) return rc;
            continue;
        }
        wt_head *e = wt_lookup(t, key, start, wt_hash(key, start));
        if (!e) return FC_WIN_NOMEM;
        if (e->count == 0) {
            memcpy(WT_ACC(e), acc, (size_t)t->n_aggs * sizeof(double));
            e->state = state;
        } else {
            acc_merge(t->aggs, t->n_aggs, WT_ACC(e), acc, 0, 1);
            if (state == ST_DIRTY) e->state = ST_DIRTY;
        }
        e->count += count;
        int64_t max_ts = fc_window_end(start, t->size) - 1;
        int64_t due = e->state == ST_DIRTY ? max_ts : fc_cleanup_time(max_ts, t->lateness);
        if (due < t->min_due) t->min_due = due;
    }
    return FC_WIN_OK;
}

/* ----------------------------------------------------------------------------- session table */

typedef struct {
    int64_t key, start, end, count;
    int32_t state;
    uint32_t gen; /* bumped whenever the record gets a new due-queue entry (or a new session) */
    int64_t next;
    uint64_t first_seq, last_seq;
} ss_head;

static void sq_clear(fc_stable *t);

#define SS_REC(t, i) ((ss_head *)((t)->pool + (size_t)(i) * (t)->stride))
#define SS_ACC(r) ((double *)((ss_head *)(r) + 1))
#define IDX_EMPTY (-1)
#define IDX_TOMB (-2)

int fc_stable_init(fc_stable *t, int64_t gap, int64_t lateness, const fc_agg *aggs, int32_t n_aggs) {
    memset(t, 0, sizeof *t);
    if (gap <= 0 || lateness < 0 || check_aggs(aggs, n_aggs)) return FC_WIN_CORRUPT;
    t->gap = gap;
    t->lateness = lateness;
    t->n_aggs = n_aggs;
    if (n_aggs) memcpy(t->aggs, aggs, (size_t)n_aggs * sizeof *aggs);
    t->stride = sizeof(ss_head) + (size_t)n_aggs * sizeof(double);
    t->free_head = -1;
    /* buckets ~1/128 of the time a session stays due or kept: the ring reaches 4x that ahead */
    int64_t span = gap > INT64_MAX - lateness ? INT64_MAX : gap + lateness;
    t->q_width = span / 128 + 1;
    t->q_far_min = INT64_MAX;
    t->q_ring = (fc_sbucket *)calloc(FC_SQ_RING, sizeof(fc_sbucket));
    if (!t->q_ring) return FC_WIN_NOMEM;
    t->idx_cap = 1024;
    t->idx = (fc_sslot *)malloc(t->idx_cap * sizeof(fc_sslot));
    if (!t->idx) return FC_WIN_NOMEM;
    for (size_t i = 0; i < t->idx_cap; i++) t->idx[i].head = IDX_EMPTY;
    return FC_WIN_OK;
}

void fc_stable_free(fc_stable *t) {
    if (t->q_ring)
        for (size_t i = 0; i < FC_SQ_RING; i++) free(t->q_ring[i].e);
    free(t->q_ring);
    free(t->q_far.e);
    t->q_ring = NULL;
    memset(&t->q_far, 0, sizeof t->q_far);
    free(t->pool);
    free(t->idx);
    free(t->due);
    free(t->due_tmp);
    t->due_tmp = NULL;
    t->due_tmp_cap = 0;
    t->pool = NULL;
    t->idx = NULL;
    t->due = NULL;
    t->pool_cap = t->pool_used = t->live = t->idx_cap = t->idx_used = t->idx_live = 0;
}

void fc_stable_clear(fc_stable *t) {
    t->pool_used = 0;
    t->free_head = -1;
    t->live = 0;
    for (size_t i = 0; i < t->idx_cap; i++) t->idx[i].head = IDX_EMPTY;
    t->idx_used = t->idx_live = 0;
    sq_clear(t);
}

static int ss_idx_rehash(fc_stable *t, size_t cap) {
    fc_sslot *idx = (fc_sslot *)malloc(cap * sizeof(fc_sslot));
    if (!idx) return -1;
    for (size_t i = 0; i < cap; i++) idx[i].head = IDX_EMPTY;
    size_t mask = cap - 1;
    for (size_t i = 0; i < t->idx_cap; i++) {
        if (t->idx[i].head < 0) continue;
        size_t j = (size_t)mix64((uint64_t)t->idx[i].key) & mask;
        while (idx[j].head != IDX_EMPTY) j = (j + 1) & mask;
        idx[j] = t->idx[i];
    }
    free(t->idx);
    t->idx = idx;
    t->idx_cap = cap;
    t->idx_used = t->idx_live;
    return 0;
}

/* The index slot of key (h = mix64(key)), whose list may be empty; -1 when the key has none. */
static inline int64_t ss_idx_find(const fc_stable *t, uint64_t h, int64_t key) {
    size_t mask = t->idx_cap - 1;
    for (size_t j = (size_t)h & mask;; j = (j + 1) & mask) {
        int64_t head = t->idx[j].head;
        if (head == IDX_EMPTY) return -1;
        if (head != IDX_TOMB && t->idx[j].key == key) return (int64_t)j;
    }
}

/* the index slot of key, created (with an empty list) if absent; -1 when out of memory */
static int64_t ss_idx_slot(fc_stable *t, int64_t key) {
    if ((t->idx_used + 1) * 10 > t->idx_cap * 7) {
        size_t cap = t->idx_cap;
        while ((t->idx_live + 1) * 10 > cap * 4) cap *= 2;
        if (ss_idx_rehash(t, cap)) return -1;
    }
    size_t mask = t->idx_cap - 1;
    size_t i = (size_t)mix64((uint64_t)key) & mask;
    int64_t tomb = -1;
    for (;;) {
        int64_t h = t->idx[i].head;
        if (h == IDX_EMPTY) break;
        if (h == IDX_TOMB) {
            if (tomb < 0) tomb = (int64_t)i;
        } else if (t->idx[i].key == key) {
            return (int64_t)i;
        }
        i = (i + 1) & mask;
    }
    if (tomb < 0) {
        tomb = (int64_t)i;
        t->idx_used++;
    }
    t->idx_live++;
    t->idx[tomb].key = key;
    t->idx[tomb].head = -3; /* live key, no session yet: list end marker is -3 */
    return tomb;
}

#define LIST_END (-3)

static int64_t ss_alloc(fc_stable *t) {
    if (t->free_head >= 0) {
        int64_t r = t->free_head;
        t->free_head = SS_REC(t, r)->next;
        return r;
    }
    if (t->pool_used == t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap * 2 : 1024;
        uint8_t *pool = (uint8_t *)realloc(t->pool, cap * t->stride);
        if (!pool) return -1;
        t->pool = pool;
        t->pool_cap = cap;
    }
    SS_REC(t, t->pool_used)->gen = 0;
    return (int64_t)t->pool_used++;
}

static void ss_release(fc_stable *t, int64_t r) {
    ss_head *h = SS_REC(t, r);
    h->state = ST_EMPTY;
    h->next = t->free_head;
    t->free_head = r;
}

static inline int64_t ss_due(const fc_stable *t, const ss_head *h) {
    return h->state == ST_DIRTY ? h->end - 1 : fc_cleanup_time(h->end - 1, t->lateness);
}

static int sq_append(fc_sbucket *b, fc_sdue e) {
    if (b->len == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        fc_sdue *p = (fc_sdue *)realloc(b->e, cap * sizeof *p);
        if (!p) return -1;
        b->e = p;
        b->cap = cap;
    }
    b->e[b->len++] = e;
    return 0;
}

static inline int64_t sq_bucket(const fc_stable *t, int64_t due) {
    int64_t q = due / t->q_width;
    return (due % t->q_width != 0 && due < 0) ? q - 1 : q;
}

static inline size_t sq_slot(int64_t b) { return (size_t)(((b % FC_SQ_RING) + FC_SQ_RING) % FC_SQ_RING); }

/* File entry e: in the ring when its bucket is within reach (an overdue one in the current
 * bucket), else with the far entries. */
static int sq_push(fc_stable *t, fc_sdue e) {
    if (t->q_started) {
        int64_t b = sq_bucket(t, e.due);
        if (b < t->q_cur) b = t->q_cur;
        if ((uint64_t)b - (uint64_t)t->q_cur < FC_SQ_RING) return sq_append(&t->q_ring[sq_slot(b)], e);
    }
    if (e.due < t->q_far_min) t->q_far_min = e.due;
    return sq_append(&t->q_far, e);
}

/* Give record r a due-queue entry at its current due (its earlier entries become stale). */
static int ss_schedule(fc_stable *t, int64_t r) {
    ss_head *h = SS_REC(t, r);
    fc_sdue e = {ss_due(t, h), r, ++h->gen};
    return sq_push(t, e);
}

static void sq_clear(fc_stable *t) {
    for (size_t i = 0; i < FC_SQ_RING; i++) t->q_ring[i].len = 0;
    t->q_far.len = 0;
    t->q_far_min = INT64_MAX;
    t->q_started = 0;
}

/* fold record src (not in any list) into dst */
static void ss_fold(fc_stable *t, ss_head *dst, const ss_head *src) {
    acc_merge(t->aggs, t->n_aggs, SS_ACC(dst), SS_ACC(src), src->first_seq < dst->first_seq,
              src->last_seq > dst->last_seq);
    if (src->start < dst->start) dst->start = src->start;
    if (src->end > dst->end) dst->end = src->end;
    dst->count += src->count;
    if (src->first_seq < dst->first_seq) dst->first_seq = src->first_seq;
    if (src->last_seq > dst->last_seq) dst->last_seq = src->last_seq;
    if (src->state == ST_DIRTY) dst->state = ST_DIRTY;
}

/* Where a session starting at `start` goes in key's list: the key's index slot (-1: the key has
 * none yet), the first session that does not end before `start` (cur; LIST_END: none) and the one
 * before it (prev). */
typedef struct {
    int64_t slot, prev, cur;
} ss_pos;

static inline ss_pos ss_locate(const fc_stable *t, uint64_t h, int64_t key, int64_t start) {
    ss_pos p = {ss_idx_find(t, h, key), LIST_END, LIST_END};
    if (p.slot < 0) return p;
    p.cur = t->idx[p.slot].head;
    while (p.cur != LIST_END && SS_REC(t, p.cur)->end < start) {
        p.prev = p.cur;
        p.cur = SS_REC(t, p.cur)->next;
    }
    return p;
}

/* Merge the session `rec` (a scratch record, not in the pool) into key's sessions at `at` (its
 * ss_locate): it joins every session it intersects (Flink's TimeWindow.intersects: start <=
 * other.end && end >= other.start), and those chain-merge. If it intersects none and
 * `late_if_alone`, nothing happens and 1 is returned. Returns 0 when merged/added, -1 when out of
 * memory. */
static int ss_merge_at(fc_stable *t, const ss_head *rec, ss_pos at, int late_if_alone) {
    int64_t slot = at.slot, prev = at.prev, cur = at.cur;
    if (slot < 0 && (slot = ss_idx_slot(t, rec->key)) < 0) return -1; /* a new key, its list empty */
    if (cur != LIST_END && SS_REC(t, cur)->start <= rec->end) {
        ss_head *dst = SS_REC(t, cur);
        int32_t was = dst->state;
        ss_fold(t, dst, rec);
        int64_t nxt = dst->next;
        while (nxt != LIST_END && SS_REC(t, nxt)->start <= dst->end) {
            ss_head *n = SS_REC(t, nxt);
            int64_t after = n->next;
            ss_fold(t, dst, n);
            ss_release(t, nxt);
            t->live--;
            nxt = after;
        }
        dst->next = nxt;
        /* growing only delays a session's due; a fired one that takes new records is due
         * sooner (its end - 1 instead of its cleanup time): it needs an earlier entry */
        if (was != ST_DIRTY && dst->state == ST_DIRTY && ss_schedule(t, cur)) return -1;
        return 0;
    }
    if (late_if_alone) {
        if (t->idx[slot].head == LIST_END) { /* do not keep an empty key around */
            t->idx[slot].head = IDX_TOMB;
            t->idx_live--;
        }
        return 1;
    }
    int64_t r = ss_alloc(t); /* may move the pool: no ss_head pointers held across this */
    if (r < 0) return -1;
    ss_head *h = SS_REC(t, r);
    uint32_t gen = h->gen;
    memcpy(h, rec, t->stride);
    h->gen = gen; /* the slot's entries from an earlier session stay stale */
    h->next = cur;
    if (prev == LIST_END)
        t->idx[slot].head = r;
    else
        SS_REC(t, prev)->next = r;
    t->live++;
    return ss_schedule(t, r) ? -1 : 0;
}

/* ss_merge_at where `rec` goes (a restored session) */
static int ss_merge_in(fc_stable *t, const ss_head *rec, int late_if_alone) {
    ss_pos at = ss_locate(t, mix64((uint64_t)rec->key), rec->key, rec->start);
    return ss_merge_at(t, rec, at, late_if_alone);
}

/* The common row in place: at `at` (its ss_locate) its key has a session still open (not fired)
 * that the row's window [ts, end) intersects and that does not then reach the key's next session.
 * Returns 1 when the row was added (as ss_merge_at would add it: a new row's first never wins, its
 * last always does), 0 when the row needs ss_merge_at (a new key or session, a merge, a fired
 * session). */
static inline int ss_extend(fc_stable *t, ss_pos at, int64_t ts, int64_t end, const double *const *cols,
                            size_t i) {
    if (at.cur == LIST_END) return 0;
    ss_head *dst = SS_REC(t, at.cur);
    if (dst->start > end || dst->state != ST_DIRTY) return 0;
    int64_t grown = end > dst->end ? end : dst->end;
    if (dst->next != LIST_END && SS_REC(t, dst->next)->start <= grown) return 0;
    if (ts < dst->start) dst->start = ts;
    dst->end = grown;
    dst->count++;
    dst->last_seq = t->seq++;
    acc_add(t->aggs, t->n_aggs, SS_ACC(dst), cols, i);
    return 1;
}

int64_t fc_stable_update(fc_stable *t, const int64_t *keys, const int64_t *ts, const double *const *cols,
                         size_t n, int64_t watermark, uint8_t *late, int64_t *max_ts) {
    union {
        ss_head h;
        uint8_t bytes[sizeof(ss_head) + FC_WIN_MAX_AGGS * sizeof(double)];
    } scratch;
    ss_head *rec = &scratch.h;
    int64_t n_late = 0, hi = INT64_MIN;
    /* each key's hash, computed once, 2 * AHEAD rows ahead (for the prefetches and the lookup) */
    uint64_t hashes[4 * AHEAD];
    for (size_t i = 0; i < n && i < 2 * AHEAD; i++) hashes[i] = mix64((uint64_t)keys[i]);
    for (size_t i = 0; i < n; i++) {
        /* two-stage prefetch: the key's index slot well ahead, then (once that is in cache) the
         * head session it points to (both its cache lines); both tables outgrow the cache with
         * many keys */
        if (i + 2 * AHEAD < n) {
            uint64_t h = mix64((uint64_t)keys[i + 2 * AHEAD]);
            hashes[(i + 2 * AHEAD) % (4 * AHEAD)] = h;
            FC_PREFETCH(&t->idx[(size_t)h & (t->idx_cap - 1)]);
        }
        if (i + AHEAD < n && t->pool) {
            size_t j = (size_t)hashes[(i + AHEAD) % (4 * AHEAD)] & (t->idx_cap - 1);
            int64_t head = t->idx[j].head;
            if (head >= 0 && t->idx[j].key == keys[i + AHEAD]) {
                FC_PREFETCH(SS_REC(t, head));
                FC_PREFETCH((const uint8_t *)SS_REC(t, head) + t->stride - 1); /* its accumulators */
            }
        }
        int64_t end = fc_window_end(ts[i], t->gap);
        hi = ts[i] > hi ? ts[i] : hi;
        ss_pos at = ss_locate(t, hashes[i % (4 * AHEAD)], keys[i], ts[i]);
        if (ss_extend(t, at, ts[i], end, cols, i)) {
            if (late) late[i] = 0;
            continue;
        }
        rec->key = keys[i];
        rec->start = ts[i];
        rec->end = end;
        rec->count = 1;
        rec->state = ST_DIRTY;
        rec->next = LIST_END;
        rec->first_seq = rec->last_seq = t->seq++;
        acc_init(t->aggs, t->n_aggs, SS_ACC(rec), cols, i);
        int alone_is_late = fc_cleanup_time(rec->end - 1, t->lateness) <= watermark;
        int rc = ss_merge_at(t, rec, at, alone_is_late);
        if (rc < 0) return FC_WIN_NOMEM;
        if (late) late[i] = (uint8_t)rc;
        n_late += rc;
    }
    if (max_ts) *max_ts = hi;
    return n_late;
}

/* Take session r out of its key's list and free it. */
static void ss_remove(fc_stable *t, int64_t r) {
    int64_t key = SS_REC(t, r)->key;
    size_t i = (size_t)ss_idx_find(t, mix64((uint64_t)key), key); /* r is in the key's list */
    int64_t prev = LIST_END, cur = t->idx[i].head;
    while (cur != r) {
        prev = cur;
        cur = SS_REC(t, cur)->next;
    }
    int64_t next = SS_REC(t, r)->next;
    if (prev == LIST_END)
        t->idx[i].head = next;
    else
        SS_REC(t, prev)->next = next;
    if (t->idx[i].head == LIST_END) {
        t->idx[i].head = IDX_TOMB;
        t->idx_live--;
    }
    ss_release(t, r);
    t->live--;
}

/* Pops the due queue up to the watermark: sessions to fire are listed (by end, key) for
 * fc_stable_fire_emit; fired sessions past their cleanup time are freed; sessions that grew
 * since their entry was made get a later one. Work is proportional to what is due, not to the
 * sessions held. */
/* One popped entry at watermark w: a session due is listed to fire, a fired one past its cleanup
 * time is freed, one that grew since the entry was made gets a later entry, a stale entry is
 * dropped. */
static int sq_take(fc_stable *t, fc_sdue e, int64_t watermark) {
    ss_head *h = SS_REC(t, e.idx);
    if (h->state == ST_EMPTY || h->gen != e.gen) return 0; /* merged away or re-entered */
    if (ss_due(t, h) > watermark) return ss_schedule(t, e.idx);
    if (h->state == ST_DIRTY) return due_push(&t->due, &t->due_len, &t->due_cap, h->end, h->key, (size_t)e.idx);
    ss_remove(t, e.idx);
    return 0;
}

/* Take the due entries of one ring bucket, keeping the rest (and entries filed meanwhile). */
static int sq_drain(fc_stable *t, fc_sbucket *b, int64_t watermark) {
    size_t n = b->len, keep = 0;
    for (size_t i = 0; i < n; i++) {
        fc_sdue e = b->e[i]; /* b->e may move: entries can be filed into b itself */
        if (e.due > watermark) {
            b->e[keep++] = e;
        } else if (sq_take(t, e, watermark)) {
            return -1;
        }
    }
    size_t added = b->len - n;
    memmove(b->e + keep, b->e + n, added * sizeof *b->e);
    b->len = keep + added;
    return 0;
}

/* Lists the sessions to fire at the watermark (by end, key) for fc_stable_fire_emit and frees
 * fired sessions past their cleanup time. The work is the buckets the watermark passed, not the
 * sessions held. */
int64_t fc_stable_fire_prepare(fc_stable *t, int64_t watermark) {
    t->due_len = 0;
    int64_t bw = sq_bucket(t, watermark);
    if (!t->q_started) {
        t->q_started = 1;
        t->q_cur = bw;
    } else if (bw > t->q_cur) {
        uint64_t span = (uint64_t)bw - (uint64_t)t->q_cur;
        int64_t from = t->q_cur;
        t->q_cur = bw; /* before draining: entries filed meanwhile go to their bucket from bw on */
        size_t n = span >= FC_SQ_RING ? FC_SQ_RING : (size_t)span + 1;
        for (size_t k = 0; k < n; k++)
            if (sq_drain(t, &t->q_ring[sq_slot(from + (int64_t)k)], watermark)) return FC_WIN_NOMEM;
    } else if (sq_drain(t, &t->q_ring[sq_slot(t->q_cur)], watermark)) {
        return FC_WIN_NOMEM;
    }
    int64_t far_bucket = sq_bucket(t, t->q_far_min);
    if (t->q_far.len && (far_bucket < t->q_cur || (uint64_t)far_bucket - (uint64_t)t->q_cur < FC_SQ_RING)) {
        fc_sbucket far = t->q_far; /* refile them all: within reach now, or far again */
        memset(&t->q_far, 0, sizeof t->q_far);
        t->q_far_min = INT64_MAX;
        int rc = 0;
        for (size_t i = 0; i < far.len && !rc; i++) {
            if (far.e[i].due <= watermark)
                rc = sq_take(t, far.e[i], watermark);
            else
                rc = sq_push(t, far.e[i]);
        }
        free(far.e);
        if (rc) return FC_WIN_NOMEM;
    }
    if (sort_due_fast(&t->due, &t->due_cap, &t->due_tmp, &t->due_tmp_cap, t->due_len)) return FC_WIN_NOMEM;
    return (int64_t)t->due_len;
}

void fc_stable_fire_emit(fc_stable *t, int64_t watermark, int64_t *out_keys, int64_t *out_starts,
                         int64_t *out_ends, void *const *out_aggs) {
    uint8_t op[FC_WIN_MAX_AGGS];
    emit_plan(t->aggs, t->n_aggs, 0, op);
    for (size_t r = 0; r < t->due_len; r++) {
        int64_t idx = (int64_t)t->due[r].idx;
        ss_head *h = SS_REC(t, idx);
        out_keys[r] = h->key;
        out_starts[r] = h->start;
        out_ends[r] = h->end;
        emit_row(op, t->n_aggs, SS_ACC(h), h->count, out_aggs, r);
        h->state = ST_FIRED;
        /* kept for allowed lateness (a late record may still merge into it), else freed now; an
         * entry that cannot be made leaves it to the next full clear */
        if (fc_cleanup_time(h->end - 1, t->lateness) <= watermark)
            ss_remove(t, idx);
        else
            ss_schedule(t, idx);
    }
    t->due_len = 0;
    if (t->idx_cap > 1024 && t->idx_live * 16 < t->idx_cap) {
        size_t cap = 1024;
        while (t->idx_live * 10 > cap * 4) cap *= 2;
        ss_idx_rehash(t, cap);
    }
    if (!t->live) { /* everything closed: give the pool back (every queue entry is stale) */
        free(t->pool);
        t->pool = NULL;
        t->pool_cap = t->pool_used = 0;
        t->free_head = -1;
        sq_clear(t);
    }
}

#define SS_REC_BYTES(t) (56 + 8 * (size_t)(t)->n_aggs)

size_t fc_stable_snapshot_size(const fc_stable *t) {
    return header_size(t->n_aggs, 2) + 16 + t->live * SS_REC_BYTES(t);
}

void fc_stable_snapshot(const fc_stable *t, uint8_t *out) {
    int64_t params[2] = {t->gap, t->lateness};
    write_header(&out, "FCWS", params, 2, t->aggs, t->n_aggs);
    put_u64(&out, t->seq);
    put_u64(&out, t->live);
    for (size_t i = 0; i < t->idx_cap; i++) {
        if (t->idx[i].head < 0) continue;
        for (int64_t cur = t->idx[i].head; cur != LIST_END; cur = SS_REC(t, cur)->next) {
            const ss_head *h = SS_REC(t, cur);
            put_i64(&out, h->key);
            put_i64(&out, h->start);
            put_i64(&out, h->end);
            put_i64(&out, h->count);
            put_i64(&out, h->state);
            put_u64(&out, h->first_seq);
            put_u64(&out, h->last_seq);
            for (int32_t a = 0; a < t->n_aggs; a++) put_f64(&out, SS_ACC(h)[a]);
        }
    }
}

static int64_t ss_check_snapshot(const fc_stable *t, const uint8_t *buf, size_t len, const uint8_t **body,
                                 uint64_t *seq) {
    const uint8_t *p = buf, *end = buf + len;
    int64_t params[2] = {t->gap, t->lateness};
    int rc = check_header(&p, end, "FCWS", params, 2, t->aggs, t->n_aggs);
    if (rc) return rc;
    if ((size_t)(end - p) < 16) return FC_WIN_CORRUPT;
    *seq = get_u64(&p);
    uint64_t n = get_u64(&p);
    size_t rec = SS_REC_BYTES(t);
    if (n > (size_t)(end - p) / rec || n * rec != (size_t)(end - p)) return FC_WIN_CORRUPT;
    const uint8_t *q = p;
    for (uint64_t i = 0; i < n; i++) {
        q += 8;
        int64_t start = get_i64(&q), stop = get_i64(&q), count = get_i64(&q), state = get_i64(&q);
        if (stop <= start || count <= 0 || (state != ST_DIRTY && state != ST_FIRED)) return FC_WIN_CORRUPT;
        q += 16 + 8 * (size_t)t->n_aggs;
    }
    *body = p;
    return (int64_t)n;
}

int64_t fc_stable_snapshot_keys(const fc_stable *t, const uint8_t *buf, size_t len, int64_t *keys) {
    const uint8_t *p;
    uint64_t seq;
    int64_t n = ss_check_snapshot(t, buf, len, &p, &seq);
    if (n < 0 || !keys) return n;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *q = p + (size_t)i * SS_REC_BYTES(t);
        keys[i] = get_i64(&q);
    }
    return n;
}

int fc_stable_restore(fc_stable *t, const uint8_t *buf, size_t len, const uint8_t *keep) {
    const uint8_t *p;
    uint64_t seq;
    int64_t n = ss_check_snapshot(t, buf, len, &p, &seq);
    if (n < 0) return (int)n;
    union {
        ss_head h;
        uint8_t bytes[sizeof(ss_head) + FC_WIN_MAX_AGGS * sizeof(double)];
    } scratch;
    ss_head *rec = &scratch.h;
    for (int64_t i = 0; i < n; i++) {
        rec->key = get_i64(&p);
        rec->start = get_i64(&p);
        rec->end = get_i64(&p);
        rec->count = get_i64(&p);
        rec->state = get_i64(&p);
        rec->first_seq = get_u64(&p);
        rec->last_seq = get_u64(&p);
        rec->next = LIST_END;
        for (int32_t a = 0; a < t->n_aggs; a++) SS_ACC(rec)[a] = get_f64(&p);
        if (keep && !keep[i]) continue;
        if (ss_merge_in(t, rec, 0) < 0) return FC_WIN_NOMEM;
    }
    if (seq > t->seq) t->seq = seq;
    return FC_WIN_OK;
}
