/* Window aggregation kernels: per (key, window) accumulators for built-in aggregates over column
 * batches, with Flink's window semantics.
 *
 * fc_wtable: tumbling (slide == size) and sliding windows. An open-addressing hash table keyed by
 * (int64 key, window start) holds each window's record count and one double accumulator per
 * aggregate, inline, so an update is one probe and no allocation. fc_stable: session windows, a
 * hash from key to a sorted list of non-overlapping sessions, merged as Flink merges them.
 *
 * Window starts follow TimeWindow.getWindowStartWithOffset with floor semantics (exact for any
 * int64 timestamp); a window's end saturates at INT64_MAX and its start at INT64_MIN, so windows
 * at the edges of the int64 range exist and fire (Flink's own arithmetic wraps there).
 * min/max follow Java's Math.min/Math.max: NaN wins, -0.0 < 0.0. sum and mean propagate NaN.
 */
#ifndef FC_WINDOW_H
#define FC_WINDOW_H

#include <stddef.h>
#include <stdint.h>

enum fc_agg_kind { FC_AGG_SUM = 0, FC_AGG_COUNT, FC_AGG_MIN, FC_AGG_MAX, FC_AGG_MEAN, FC_AGG_FIRST, FC_AGG_LAST };

typedef struct {
    int32_t kind;   /* enum fc_agg_kind */
    int32_t column; /* index into the value columns (ignored by COUNT) */
} fc_agg;

#define FC_WIN_MAX_AGGS 64

/* result codes */
#define FC_WIN_OK 0
#define FC_WIN_NOMEM (-1)
#define FC_WIN_CORRUPT (-2)  /* snapshot bytes malformed */
#define FC_WIN_MISMATCH (-3) /* snapshot of a table with another spec */

/* Flink's window start with floor semantics; saturates at INT64_MIN. */
static inline int64_t fc_window_start(int64_t ts, int64_t offset, int64_t slide) {
    /* (ts - offset) mod slide, floored, computed without overflow */
    int64_t rem = ((ts % slide) - (offset % slide)) % slide;
    if (rem < 0) rem += slide;
    if (ts < INT64_MIN + rem) return INT64_MIN; /* the true start is below the int64 range */
    return ts - rem;
}

/* start + size, saturated at INT64_MAX */
static inline int64_t fc_window_end(int64_t start, int64_t size) {
    return start > INT64_MAX - size ? INT64_MAX : start + size;
}

/* maxTimestamp + allowed lateness, saturated (Flink's WindowOperator.cleanupTime) */
static inline int64_t fc_cleanup_time(int64_t max_ts, int64_t lateness) {
    return max_ts > INT64_MAX - lateness ? INT64_MAX : max_ts + lateness;
}

/* ---------------------------------------------------------------------- tumbling / sliding */

typedef struct {
    int64_t end, key;
    size_t idx;
} fc_due;

/* One window of the dense layout: accumulators in an array indexed by the key itself (keys are
 * small non-negative ints), entry = int64 count (with the DIRTY bit) then n_aggs doubles. */
typedef struct {
    int64_t start, max_ts, cleanup;
    size_t live;  /* keys present */
    size_t ndirty; /* keys updated since the window last fired */
    uint8_t *ent; /* dcap entries of dstride bytes, zero = key absent */
} fc_dwin;

typedef struct {
    int64_t size, slide, offset, lateness;
    int32_t n_aggs;
    fc_agg aggs[FC_WIN_MAX_AGGS];
    /* Dense layout (while `dense`): each open window is an fc_dwin over keys [0, dcap). The first
     * key that is negative, too large or would make the arrays sparse moves every window into the
     * hash table below, which serves from then on (until clear). Emission order and snapshot bytes
     * are the same in both layouts. */
    int dense;
    size_t dstride, dcap, dpeak; /* dpeak: recent peak of keys per window (decays per fire) */
    fc_dwin **dwins, **dn_due;
    size_t n_dwins, dwins_cap, dn_due_len;
    uint8_t *dspare; /* one freed entry array (dcap entries) kept for the next window */
    size_t stride; /* bytes per table entry */
    uint8_t *slots;
    size_t cap, live;
    size_t high_water;      /* recent peak of live windows (decays per fire): when to shrink */
    int64_t min_due;        /* lower bound of the earliest time fire() has anything to do */
    /* fire scratch: entries due, sorted by (end, key), and the radix sort's second buffer */
    fc_due *due, *due_tmp;
    size_t due_len, due_cap, due_tmp_cap;
} fc_wtable;

int fc_wtable_init(fc_wtable *t, int64_t size, int64_t slide, int64_t offset, int64_t lateness,
                   const fc_agg *aggs, int32_t n_aggs);
void fc_wtable_free(fc_wtable *t);

/* Add n records: keys[i], ts[i] and cols[c][i] for each value column c used by an aggregate.
 * Windows whose cleanup time (max timestamp + lateness) is <= watermark are skipped; late[i]
 * (if late != NULL) is set to 1 when every window of record i was skipped, else 0 (every
 * entry is written). *max_ts (if max_ts != NULL) is set to the largest ts[i], late records
 * included (INT64_MIN when n == 0): what a bounded-out-of-orderness watermark generator takes
 * from the batch, found in the same pass. Returns the number of late records, or FC_WIN_NOMEM. */
int64_t fc_wtable_update(fc_wtable *t, const int64_t *keys, const int64_t *ts, const double *const *cols,
                         size_t n, int64_t watermark, uint8_t *late, int64_t *max_ts);

/* Stage a fire: the number of windows to emit (updated since their last firing and max timestamp
 * <= watermark), sorted by (window end, key). Then fc_wtable_fire_emit writes them: keys, starts,
 * ends, max timestamps (window end - 1) and one output per aggregate (int64 for COUNT, double
 * otherwise), and drops every window whose cleanup time is <= watermark. Any of out_keys,
 * out_starts, out_ends and out_max_ts may be NULL and is then not written; bit a of int_sums set
 * makes SUM aggregate a's output int64 (its float64 sum truncated toward zero, as numpy's astype:
 * sums of count partials). */
int64_t fc_wtable_fire_prepare(fc_wtable *t, int64_t watermark);
void fc_wtable_fire_emit(fc_wtable *t, int64_t watermark, int64_t *out_keys, int64_t *out_starts,
                         int64_t *out_ends, int64_t *out_max_ts, void *const *out_aggs, uint64_t int_sums);

static inline size_t fc_wtable_len(const fc_wtable *t) { return t->live; }
static inline int fc_wtable_is_dense(const fc_wtable *t) { return t->dense; }

/* late[i] = 1 when every window of ts[i] is past its cleanup time at `watermark` (the record
 * would be dropped, or go to the late side output). Returns how many are late. */
int64_t fc_wtable_late_mask(const fc_wtable *t, const int64_t *ts, size_t n, int64_t watermark, uint8_t *late);

/* Snapshot: fc_wtable_snapshot_size bytes written by fc_wtable_snapshot. */
size_t fc_wtable_snapshot_size(const fc_wtable *t);
void fc_wtable_snapshot(const fc_wtable *t, uint8_t *out);
/* Number of windows in a snapshot (validating it against t's spec) and, if keys != NULL, their
 * keys in snapshot order. Returns a count >= 0 or FC_WIN_CORRUPT / FC_WIN_MISMATCH. */
int64_t fc_wtable_snapshot_keys(const fc_wtable *t, const uint8_t *buf, size_t len, int64_t *keys);
/* Add the windows of a snapshot (those with keep[i] != 0 when keep != NULL) to t; a window
 * already in t is merged into. Returns FC_WIN_OK or an error code. */
int fc_wtable_restore(fc_wtable *t, const uint8_t *buf, size_t len, const uint8_t *keep);
void fc_wtable_clear(fc_wtable *t);

/* ---------------------------------------------------------------------------- sessions */

/* a session's entry in the due queue: valid while the record's gen is still gen */
typedef struct {
    int64_t due, idx;
    uint32_t gen;
} fc_sdue;

typedef struct {
    fc_sdue *e;
    size_t len, cap;
} fc_sbucket;

#define FC_SQ_RING 512

typedef struct {
    int64_t key, head;
} fc_sslot;

typedef struct {
    int64_t gap, lateness;
    int32_t n_aggs;
    fc_agg aggs[FC_WIN_MAX_AGGS];
    size_t stride;   /* bytes per session record */
    uint8_t *pool;   /* session records */
    size_t pool_cap, pool_used;
    int64_t free_head; /* free list through the records' next field, -1 = none */
    size_t live;       /* sessions */
    /* key index: open addressing of (key, head session), both in one slot (one cache line
     * per probe: the index outgrows the caches with many keys) */
    fc_sslot *idx; /* head = -1 empty, -2 tombstone */
    size_t idx_cap, idx_used, idx_live;
    /* When each session is next due (fire: end - 1; cleanup: end - 1 + lateness): one valid
     * entry per session, at or before its current due (a session that grows keeps its entry and
     * gets a new one when that comes up too early). A calendar queue: a ring of FC_SQ_RING
     * buckets of q_width ms from bucket q_cur (the last watermark's) on; later dues wait in
     * q_far, entries made before the first watermark too. */
    fc_sbucket *q_ring;
    fc_sbucket q_far;
    int64_t q_width, q_cur, q_far_min;
    int q_started;
    uint64_t seq; /* arrival counter, orders first/last across merges */
    fc_due *due, *due_tmp;
    size_t due_len, due_cap, due_tmp_cap;
} fc_stable;

int fc_stable_init(fc_stable *t, int64_t gap, int64_t lateness, const fc_agg *aggs, int32_t n_aggs);
void fc_stable_free(fc_stable *t);
/* As fc_wtable_update (late: after merging, as Flink decides it; *max_ts: the largest ts[i]). */
int64_t fc_stable_update(fc_stable *t, const int64_t *keys, const int64_t *ts, const double *const *cols,
                         size_t n, int64_t watermark, uint8_t *late, int64_t *max_ts);
int64_t fc_stable_fire_prepare(fc_stable *t, int64_t watermark);
void fc_stable_fire_emit(fc_stable *t, int64_t watermark, int64_t *out_keys, int64_t *out_starts,
                         int64_t *out_ends, void *const *out_aggs);
static inline size_t fc_stable_len(const fc_stable *t) { return t->live; }
size_t fc_stable_snapshot_size(const fc_stable *t);
void fc_stable_snapshot(const fc_stable *t, uint8_t *out);
int64_t fc_stable_snapshot_keys(const fc_stable *t, const uint8_t *buf, size_t len, int64_t *keys);
int fc_stable_restore(fc_stable *t, const uint8_t *buf, size_t len, const uint8_t *keep);
void fc_stable_clear(fc_stable *t);

#endif
