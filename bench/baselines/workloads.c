/* The single-core limit: WORKLOADS.md's W1-W4 as a hand-written streaming C program.
 *
 * Usage: workloads W1|W2|W3|W4 DATA_FILE N REPEATS
 * DATA_FILE holds N int64 keys, N float64 values, N int64 timestamps (native byte order),
 * written by the bench from the generator of WORKLOADS.md, and is read before the clock
 * starts. Each repeat prints one JSON line: wall and CPU seconds, results and checksum.
 * Streaming as a stream processor would: one event at a time in input order, a
 * bounded-out-of-orderness watermark (max_ts - 100 - 1), windows fired when the watermark
 * reaches end - 1, state in open-addressing hash tables that are reused, not reallocated.
 * Built by the bench with `cc -O3`.
 */
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BOUND 100
#define WINDOW 1000
#define GAP 500
#define THRESHOLD 10.0
#define EMPTY INT64_MIN

static double now(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t mix(uint64_t x) { /* murmur3 fmix64 */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* ---- a growable open-addressing table int64 key -> (double sum, int64 count) ---- */
typedef struct {
    int64_t *keys;
    double *sums;
    int64_t *counts;
    size_t cap, len;
} table_t;

static void table_init(table_t *t, size_t cap) {
    t->cap = cap;
    t->len = 0;
    t->keys = malloc(cap * sizeof(int64_t));
    t->sums = malloc(cap * sizeof(double));
    t->counts = malloc(cap * sizeof(int64_t));
    for (size_t i = 0; i < cap; i++) t->keys[i] = EMPTY;
}

static void table_free(table_t *t) {
    free(t->keys);
    free(t->sums);
    free(t->counts);
}

static size_t table_slot(table_t *t, int64_t key);

static void table_grow(table_t *t) {
    table_t bigger;
    table_init(&bigger, t->cap * 2);
    for (size_t i = 0; i < t->cap; i++) {
        if (t->keys[i] == EMPTY) continue;
        size_t s = table_slot(&bigger, t->keys[i]);
        bigger.keys[s] = t->keys[i];
        bigger.sums[s] = t->sums[i];
        bigger.counts[s] = t->counts[i];
        bigger.len++;
    }
    table_free(t);
    *t = bigger;
}

static size_t table_slot(table_t *t, int64_t key) {
    size_t mask = t->cap - 1, s = mix((uint64_t)key) & mask;
    while (t->keys[s] != EMPTY && t->keys[s] != key) s = (s + 1) & mask;
    return s;
}

/* The slot of key, inserted with (0, 0) if absent. */
static size_t table_upsert(table_t *t, int64_t key) {
    if (2 * (t->len + 1) > t->cap) table_grow(t);
    size_t s = table_slot(t, key);
    if (t->keys[s] == EMPTY) {
        t->keys[s] = key;
        t->sums[s] = 0.0;
        t->counts[s] = 0;
        t->len++;
    }
    return s;
}

static void table_clear(table_t *t) {
    for (size_t i = 0; i < t->cap; i++) t->keys[i] = EMPTY;
    t->len = 0;
}

/* VmHWM of this process: ru_maxrss would include the parent's RSS inherited across fork+exec. */
static long peak_rss_kb(void) {
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "VmHWM:", 6)) kb = atol(line + 6);
        fclose(f);
    }
    if (kb < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = ru.ru_maxrss;
    }
    return kb;
}

typedef struct {
    long results;
    double checksum;
} out_t;

/* ---- W1: map value*2, filter key % 2 == 0, count and sum at the sink ---- */
static out_t w1(const int64_t *key, const double *value, const int64_t *ts, size_t n) {
    (void)ts;
    out_t o = {0, 0.0};
    for (size_t i = 0; i < n; i++) {
        double v = value[i] * 2.0;
        if (key[i] % 2 == 0) {
            o.results++;
            o.checksum += v;
        }
    }
    return o;
}

/* ---- W2: keyed tumbling windows, SUM + COUNT; one table per open window, pooled ---- */
#define MAX_OPEN 64
static out_t w2(const int64_t *key, const double *value, const int64_t *ts, size_t n) {
    out_t o = {0, 0.0};
    table_t pool[MAX_OPEN];
    int64_t start_of[MAX_OPEN]; /* window start per open slot, EMPTY if free */
    for (int i = 0; i < MAX_OPEN; i++) {
        table_init(&pool[i], 1024);
        start_of[i] = EMPTY;
    }
    int nopen = 0, last = -1;
    int64_t max_ts = INT64_MIN, wm = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        int64_t t = ts[i];
        if (t > max_ts) {
            max_ts = t;
            wm = max_ts - BOUND - 1;
            for (;;) { /* fire every open window whose end - 1 <= watermark, oldest first */
                int min = -1;
                for (int j = 0; j < MAX_OPEN; j++)
                    if (start_of[j] != EMPTY && start_of[j] + WINDOW - 1 <= wm &&
                        (min < 0 || start_of[j] < start_of[min]))
                        min = j;
                if (min < 0) break;
                table_t *tb = &pool[min];
                for (size_t s = 0; s < tb->cap; s++)
                    if (tb->keys[s] != EMPTY) {
                        o.results++;
                        o.checksum += tb->sums[s];
                    }
                table_clear(tb);
                start_of[min] = EMPTY;
                nopen--;
            }
        }
        int64_t r = t % WINDOW;
        int64_t start = t - (r < 0 ? r + WINDOW : r);
        if (start + WINDOW - 1 <= wm) continue; /* late */
        int slot = -1;
        if (last >= 0 && start_of[last] == start) {
            slot = last;
        } else {
            for (int j = 0; j < MAX_OPEN; j++)
                if (start_of[j] == start) slot = j;
            if (slot < 0) {
                for (int j = 0; j < MAX_OPEN && slot < 0; j++)
                    if (start_of[j] == EMPTY) slot = j;
                if (slot < 0) {
                    fprintf(stderr, "more than %d open windows\n", MAX_OPEN);
                    exit(2);
                }
                start_of[slot] = start;
                nopen++;
            }
            last = slot;
        }
        size_t s = table_upsert(&pool[slot], key[i]);
        pool[slot].sums[s] += value[i];
        pool[slot].counts[s] += 1;
    }
    for (int j = 0; j < MAX_OPEN; j++) { /* end of input: watermark +inf */
        if (start_of[j] != EMPTY)
            for (size_t s = 0; s < pool[j].cap; s++)
                if (pool[j].keys[s] != EMPTY) {
                    o.results++;
                    o.checksum += pool[j].sums[s];
                }
        table_free(&pool[j]);
    }
    (void)nopen;
    return o;
}

/* ---- W3: keyed session windows (gap 500 ms), COUNT per session ---- */
#define MAX_SESS 8
typedef struct {
    int64_t start[MAX_SESS], end[MAX_SESS], count[MAX_SESS];
    int n;
} sessions_t;

typedef struct {
    int64_t end;
    int64_t key;
} timer_t_;

static void heap_push(timer_t_ *h, size_t *len, timer_t_ v) {
    size_t i = (*len)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].end <= v.end) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static timer_t_ heap_pop(timer_t_ *h, size_t *len) {
    timer_t_ top = h[0], last = h[--(*len)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *len) break;
        if (c + 1 < *len && h[c + 1].end < h[c].end) c++;
        if (last.end <= h[c].end) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

static out_t w3(const int64_t *key, const double *value, const int64_t *ts, size_t n) {
    (void)value;
    out_t o = {0, 0.0};
    table_t index; /* key -> slot in the sessions array (stored in counts) */
    table_init(&index, 1024);
    size_t cap = 1024, used = 0;
    sessions_t *sess = malloc(cap * sizeof(sessions_t));
    timer_t_ *heap = malloc((n + 1) * sizeof(timer_t_));
    size_t hlen = 0;
    int64_t max_ts = INT64_MIN, wm = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        int64_t t = ts[i];
        if (t > max_ts) {
            max_ts = t;
            wm = max_ts - BOUND - 1;
            while (hlen > 0 && heap[0].end - 1 <= wm) {
                timer_t_ tm = heap_pop(heap, &hlen);
                sessions_t *ks = &sess[index.counts[table_slot(&index, tm.key)]];
                for (int j = 0; j < ks->n; j++)
                    if (ks->end[j] == tm.end) {
                        o.results++;
                        o.checksum += (double)ks->count[j];
                        ks->n--;
                        ks->start[j] = ks->start[ks->n];
                        ks->end[j] = ks->end[ks->n];
                        ks->count[j] = ks->count[ks->n];
                        break;
                    }
            }
        }
        int64_t start = t, end = t + GAP, count = 1;
        if (end - 1 <= wm) continue; /* late */
        size_t s = table_upsert(&index, key[i]);
        if (index.sums[s] == 0.0) { /* new key: give it a sessions slot */
            index.sums[s] = 1.0;
            if (used == cap) {
                cap *= 2;
                sess = realloc(sess, cap * sizeof(sessions_t));
            }
            sess[used].n = 0;
            index.counts[s] = (int64_t)used++;
        }
        sessions_t *ks = &sess[index.counts[s]];
        int j = 0;
        while (j < ks->n) { /* merge every open session the new one intersects */
            if (ks->start[j] <= end && ks->end[j] >= start) {
                if (ks->start[j] < start) start = ks->start[j];
                if (ks->end[j] > end) end = ks->end[j];
                count += ks->count[j];
                ks->n--;
                ks->start[j] = ks->start[ks->n];
                ks->end[j] = ks->end[ks->n];
                ks->count[j] = ks->count[ks->n];
            } else {
                j++;
            }
        }
        if (ks->n == MAX_SESS) {
            fprintf(stderr, "more than %d open sessions for one key\n", MAX_SESS);
            exit(2);
        }
        ks->start[ks->n] = start;
        ks->end[ks->n] = end;
        ks->count[ks->n] = count;
        ks->n++;
        heap_push(heap, &hlen, (timer_t_){end, key[i]});
    }
    for (size_t k = 0; k < used; k++)
        for (int j = 0; j < sess[k].n; j++) {
            o.results++;
            o.checksum += (double)sess[k].count[j];
        }
    free(heap);
    free(sess);
    table_free(&index);
    return o;
}

/* ---- W4: running sum per key in keyed state; emit when it passes a multiple of 10 ---- */
static out_t w4(const int64_t *key, const double *value, const int64_t *ts, size_t n) {
    (void)ts;
    out_t o = {0, 0.0};
    table_t state;
    table_init(&state, 1024);
    for (size_t i = 0; i < n; i++) {
        size_t s = table_upsert(&state, key[i]);
        double old = state.sums[s], now_ = old + value[i];
        state.sums[s] = now_;
        if (floor(now_ / THRESHOLD) > floor(old / THRESHOLD)) {
            o.results++;
            o.checksum += now_;
        }
    }
    table_free(&state);
    return o;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s W1|W2|W3|W4 DATA_FILE N REPEATS\n", argv[0]);
        return 2;
    }
    out_t (*run)(const int64_t *, const double *, const int64_t *, size_t) = NULL;
    if (!strcmp(argv[1], "W1")) run = w1;
    else if (!strcmp(argv[1], "W2")) run = w2;
    else if (!strcmp(argv[1], "W3")) run = w3;
    else if (!strcmp(argv[1], "W4")) run = w4;
    if (!run) {
        fprintf(stderr, "unknown workload %s\n", argv[1]);
        return 2;
    }
    size_t n = (size_t)strtoull(argv[3], NULL, 10);
    int repeats = atoi(argv[4]);
    int64_t *key = malloc(n * sizeof(int64_t)), *ts = malloc(n * sizeof(int64_t));
    double *value = malloc(n * sizeof(double));
    FILE *f = fopen(argv[2], "rb");
    if (!f || fread(key, sizeof(int64_t), n, f) != n || fread(value, sizeof(double), n, f) != n ||
        fread(ts, sizeof(int64_t), n, f) != n) {
        fprintf(stderr, "cannot read %zu events from %s\n", n, argv[2]);
        return 2;
    }
    fclose(f);
    for (int r = 0; r < repeats; r++) {
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        out_t o = run(key, value, ts, n);
        double w1_ = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);
        printf("{\"wall_s\": %.9f, \"cpu_s\": %.9f, \"results\": %ld, \"checksum\": %.17g, "
               "\"peak_rss_kb\": %ld}\n",
               w1_ - w0, c1 - c0, o.results, o.checksum, peak_rss_kb());
        fflush(stdout);
    }
    free(key);
    free(value);
    free(ts);
    return 0;
}
