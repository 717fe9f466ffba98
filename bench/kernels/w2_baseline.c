/* The hand-written C baseline for bench_window.py: the obvious streaming W2 implementation (open
 * addressing of (key, window) -> sum, count; fire = scan, emit unsorted, rebuild). Compiled by the
 * bench with cc -O3 and called through ctypes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
typedef struct { int64_t key, start, count, used; double sum; } slot;
typedef struct { slot *s; size_t cap, live; } table;
static uint64_t mix(uint64_t x) { x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; return x; }
void *tb_new(void) { table *t = calloc(1, sizeof *t); t->cap = 1 << 15; t->s = calloc(t->cap, sizeof(slot)); return t; }
void tb_free(void *p) { table *t = p; free(t->s); free(t); }
static slot *find(table *t, int64_t key, int64_t start) {
    size_t m = t->cap - 1, i = mix((uint64_t)key * 0x9e3779b97f4a7c15ull ^ (uint64_t)start) & m;
    while (t->s[i].used && (t->s[i].key != key || t->s[i].start != start)) i = (i + 1) & m;
    if (!t->s[i].used) { t->s[i].used = 1; t->s[i].key = key; t->s[i].start = start; t->s[i].count = 0; t->s[i].sum = 0; t->live++; }
    return &t->s[i];
}
static void grow(table *t) {
    slot *old = t->s; size_t oc = t->cap; t->cap *= 2; t->s = calloc(t->cap, sizeof(slot)); t->live = 0;
    for (size_t i = 0; i < oc; i++) if (old[i].used) { slot *d = find(t, old[i].key, old[i].start); *d = old[i]; }
    free(old);
}
void tb_update(void *p, const int64_t *k, const int64_t *ts, const double *v, size_t n) {
    table *t = p;
    for (size_t i = 0; i < n; i++) {
        if (t->live * 2 > t->cap) grow(t);
        int64_t r = ts[i] % 1000; if (r < 0) r += 1000;
        slot *s = find(t, k[i], ts[i] - r);
        s->sum += v[i]; s->count++;
    }
}
/* emit windows with end - 1 <= wm (unsorted) and rebuild the table without them */
size_t tb_fire(void *p, int64_t wm, int64_t *ok, int64_t *os, double *osum, int64_t *ocnt) {
    table *t = p; size_t n = 0; int any = 0;
    for (size_t i = 0; i < t->cap; i++) if (t->s[i].used && t->s[i].start + 999 <= wm) { any = 1; break; }
    if (!any) return 0;
    slot *old = t->s; t->s = calloc(t->cap, sizeof(slot)); t->live = 0;
    for (size_t i = 0; i < t->cap; i++) {
        if (!old[i].used) continue;
        if (old[i].start + 999 <= wm) { ok[n] = old[i].key; os[n] = old[i].start; osum[n] = old[i].sum; ocnt[n] = old[i].count; n++; }
        else { slot *d = find(t, old[i].key, old[i].start); *d = old[i]; }
    }
    free(old);
    return n;
}
