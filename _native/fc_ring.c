/* See fc_ring.h. */
#if defined(__linux__)
#define _GNU_SOURCE
#endif
#include "fc_ring.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

void fc_copy_stream(void *dst, const void *src, size_t n) {
#if defined(__SSE2__)
    if (n >= FC_STREAM_MIN) {
        uint8_t *d = (uint8_t *)dst;
        const uint8_t *s = (const uint8_t *)src;
        size_t head = (16 - ((uintptr_t)d & 15)) & 15; /* the streaming stores want 16-byte aligned */
        memcpy(d, s, head);
        size_t i = head;
        for (; i + 64 <= n; i += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
            __m128i e = _mm_loadu_si128((const __m128i *)(s + i + 48));
            _mm_stream_si128((__m128i *)(d + i), a);
            _mm_stream_si128((__m128i *)(d + i + 16), b);
            _mm_stream_si128((__m128i *)(d + i + 32), c);
            _mm_stream_si128((__m128i *)(d + i + 48), e);
        }
        memcpy(d + i, s + i, n - i);
        _mm_sfence();
        return;
    }
#endif
    memcpy(dst, src, n);
}

#if defined(__linux__)

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x676e6952636b6c46ull /* "FlkcRing" */
#define VERSION 1u
#define PAGE 4096u
#define LINE 128 /* two cache lines: the adjacent-line prefetcher pairs them */

enum { MARK_FRAME = 0xF4A3E001u, MARK_SKIP = 0xF4A3E002u, MARK_RELEASED = 0xF4A3E003u };

struct fc_ring_shared {
    uint64_t magic;
    uint64_t capacity;
    uint32_t version;
    char pad0[LINE - 20];
    uint64_t head; /* written by the writer only */
    char pad1[LINE - 8];
    uint64_t tail; /* written by the reader only */
    char pad2[LINE - 8];
    uint32_t reader_waiting; /* set by the reader before it sleeps, cleared by either side */
    char pad3[LINE - 4];
    uint32_t writer_waiting;
    char pad4[LINE - 4];
    uint32_t writer_closed;
    uint32_t reader_closed;
};

typedef struct {
    uint32_t size;
    uint32_t mark;
    uint64_t tag;
} frame_head;

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD_RLX(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)

static inline uint64_t span_of(uint64_t size) {
    return FC_RING_HEADER + ((size + FC_RING_HEADER - 1) & ~(uint64_t)(FC_RING_HEADER - 1));
}

static inline frame_head *at(const fc_ring_end *e, uint64_t pos) {
    return (frame_head *)(e->data + (pos & (e->capacity - 1)));
}

static void signal_fd(int fd) {
    uint64_t one = 1;
    ssize_t n;
    do { /* an eventfd write fails only when the counter would overflow (never: we drain it) */
        n = write(fd, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
}

/* After publishing: wake the other end if it is (about to be) asleep. */
static inline void wake(uint32_t *flag, int fd) {
    FENCE(); /* the published counter before the load of the flag (pairs with fc_ring_arm's) */
    if (LOAD_RLX(flag) && __atomic_exchange_n(flag, 0, __ATOMIC_RELAXED))
        signal_fd(fd);
}

static void drain(int fd) {
    uint64_t count;
    while (read(fd, &count, sizeof count) < 0 && errno == EINTR) {
    }
}

int fc_ring_create(uint64_t capacity, int fds[3]) {
    if (capacity < FC_RING_MIN_CAPACITY || capacity > FC_RING_MAX_CAPACITY || (capacity & (capacity - 1))) {
        errno = EINVAL;
        return FC_RING_ERRNO;
    }
    fds[0] = fds[1] = fds[2] = -1;
    int mfd = memfd_create("flinkcore-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0)
        return FC_RING_ERRNO;
    size_t size = PAGE + capacity;
    if (ftruncate(mfd, (off_t)size) < 0)
        goto fail;
    /* neither end can shrink it under the other's mapping (a SIGBUS there) */
    if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        goto fail;
    fc_ring_shared *shm = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (shm == MAP_FAILED)
        goto fail;
    shm->capacity = capacity;
    shm->version = VERSION;
    STORE_REL(&shm->magic, MAGIC);
    munmap(shm, PAGE);
    fds[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fds[1] < 0)
        goto fail;
    fds[2] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fds[2] < 0)
        goto fail;
    fds[0] = mfd;
    return FC_RING_OK;
fail: {
    int saved = errno;
    close(mfd);
    if (fds[1] >= 0)
        close(fds[1]);
    fds[1] = fds[2] = -1;
    errno = saved;
    return FC_RING_ERRNO;
}
}

int fc_ring_open(fc_ring_end *e, const int fds[3], int writer) {
    memset(e, 0, sizeof *e);
    e->wait_fd = e->wake_fd = -1;
    struct stat st;
    if (fstat(fds[0], &st) < 0)
        return FC_RING_ERRNO;
    if ((uint64_t)st.st_size < PAGE + FC_RING_MIN_CAPACITY) {
        errno = EINVAL;
        return FC_RING_CORRUPT;
    }
    size_t size = (size_t)st.st_size;
    /* not populated: a ring's pages come as frames first reach them (a small job touches a few,
     * a long one faults each page once); populating 4 MiB per ring per end cost every job the
     * pages whether used or not, 12 rings at p4 */
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    if (map == MAP_FAILED)
        return FC_RING_ERRNO;
    fc_ring_shared *shm = map;
    uint64_t cap = shm->capacity;
    if (LOAD_ACQ(&shm->magic) != MAGIC || shm->version != VERSION || cap < FC_RING_MIN_CAPACITY ||
        (cap & (cap - 1)) || PAGE + cap != size) {
        munmap(map, size);
        return FC_RING_CORRUPT;
    }
    int wait_fd = fcntl(fds[writer ? 2 : 1], F_DUPFD_CLOEXEC, 0);
    int wake_fd = wait_fd < 0 ? -1 : fcntl(fds[writer ? 1 : 2], F_DUPFD_CLOEXEC, 0);
    if (wake_fd < 0) {
        int saved = errno;
        if (wait_fd >= 0)
            close(wait_fd);
        munmap(map, size);
        errno = saved;
        return FC_RING_ERRNO;
    }
    e->shm = shm;
    e->data = (uint8_t *)map + PAGE;
    e->map_size = size;
    e->capacity = cap;
    e->writer = writer;
    e->wait_fd = wait_fd;
    e->wake_fd = wake_fd;
    if (writer) {
        e->pos = LOAD_ACQ(&shm->head);
        e->seen = LOAD_ACQ(&shm->tail);
    } else {
        e->pos = e->tail = LOAD_ACQ(&shm->tail);
        e->seen = LOAD_ACQ(&shm->head);
    }
    return FC_RING_OK;
}

void fc_ring_shutdown(fc_ring_end *e) {
    if (!e->shm)
        return;
    if (e->writer) {
        STORE_REL(&e->shm->writer_closed, 1);
        FENCE();
        __atomic_store_n(&e->shm->reader_waiting, 0, __ATOMIC_RELAXED);
    } else {
        STORE_REL(&e->shm->reader_closed, 1);
        FENCE();
        __atomic_store_n(&e->shm->writer_waiting, 0, __ATOMIC_RELAXED);
    }
    signal_fd(e->wake_fd); /* unconditionally: once, and the other end may be in select */
}

void fc_ring_unmap(fc_ring_end *e) {
    if (e->shm)
        munmap(e->shm, e->map_size);
    if (e->wait_fd >= 0)
        close(e->wait_fd);
    if (e->wake_fd >= 0)
        close(e->wake_fd);
    e->shm = NULL;
    e->data = NULL;
    e->wait_fd = e->wake_fd = -1;
}

uint64_t fc_ring_max_frame(const fc_ring_end *e) {
    return e->capacity - FC_RING_HEADER;
}

/* ---- writer ---- */

/* Whether [pos, pos + n) is free: the tail is loaded again only when the cached one says no. */
static inline int has_space(fc_ring_end *w, uint64_t n) {
    if (w->pos + n - w->seen <= w->capacity)
        return 1;
    w->seen = LOAD_ACQ(&w->shm->tail);
    return w->pos + n - w->seen <= w->capacity;
}

int fc_ring_reserve(fc_ring_end *w, uint64_t size, uint8_t **dst) {
    if (size > w->capacity - FC_RING_HEADER)
        return FC_RING_TOO_BIG;
    if (LOAD_RLX(&w->shm->reader_closed))
        return FC_RING_CLOSED;
    uint64_t need = span_of(size);
    uint64_t contig = w->capacity - (w->pos & (w->capacity - 1));
    if (contig < need) { /* the frame wraps: a skip marker to the end, published on its own */
        if (!has_space(w, contig))
            return FC_RING_AGAIN;
        frame_head *h = at(w, w->pos);
        h->size = (uint32_t)(contig - FC_RING_HEADER);
        h->tag = 0;
        h->mark = MARK_SKIP;
        w->pos += contig;
        STORE_REL(&w->shm->head, w->pos);
        /* the reader must pass the marker for the space after it to come free: wake it */
        wake(&w->shm->reader_waiting, w->wake_fd);
    }
    if (!has_space(w, need))
        return FC_RING_AGAIN;
    *dst = (uint8_t *)(at(w, w->pos) + 1);
    return FC_RING_OK;
}

void fc_ring_commit(fc_ring_end *w, uint64_t size, uint64_t tag) {
    frame_head *h = at(w, w->pos);
    h->size = (uint32_t)size;
    h->tag = tag;
    h->mark = MARK_FRAME;
    w->pos += span_of(size);
    STORE_REL(&w->shm->head, w->pos);
    wake(&w->shm->reader_waiting, w->wake_fd);
}

void fc_ring_put(fc_ring_end *w, uint8_t *dst, const fc_ring_part *parts, size_t n, uint64_t tag) {
    uint64_t size = 0;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].size)
            fc_copy_stream(dst + size, parts[i].data, parts[i].size);
        size += parts[i].size;
    }
    fc_ring_commit(w, size, tag);
}

/* ---- reader ---- */

/* Move the tail over released frames and skip markers up to the read position; publish it. */
static void advance_tail(fc_ring_end *r) {
    uint64_t t = r->tail;
    while (t != r->pos) {
        frame_head *h = at(r, t);
        if (h->mark == MARK_FRAME)
            break;
        t += span_of(h->size);
    }
    if (t != r->tail) {
        r->tail = t;
        STORE_REL(&r->shm->tail, t);
        wake(&r->shm->writer_waiting, r->wake_fd);
    }
}

int fc_ring_next(fc_ring_end *r, fc_ring_frame *f) {
    for (;;) {
        if (r->pos == r->seen) {
            r->seen = LOAD_ACQ(&r->shm->head);
            if (r->pos == r->seen) {
                if (!LOAD_ACQ(&r->shm->writer_closed))
                    return FC_RING_AGAIN;
                r->seen = LOAD_ACQ(&r->shm->head); /* what it wrote before it closed */
                if (r->pos == r->seen)
                    return FC_RING_EOF;
            }
        }
        if (r->seen - r->pos > r->capacity)
            return FC_RING_CORRUPT;
        frame_head *h = at(r, r->pos);
        uint32_t mark = h->mark, size = h->size;
        uint64_t span = span_of(size);
        if ((r->pos & (r->capacity - 1)) + span > r->capacity || r->pos + span > r->seen)
            return FC_RING_CORRUPT;
        if (mark == MARK_SKIP) {
            r->pos += span;
            advance_tail(r);
            continue;
        }
        if (mark != MARK_FRAME)
            return FC_RING_CORRUPT;
        f->data = (const uint8_t *)(h + 1);
        f->size = size;
        f->tag = h->tag;
        f->pos = r->pos;
        r->pos += span;
        return FC_RING_OK;
    }
}

int fc_ring_release(fc_ring_end *r, uint64_t pos) {
    frame_head *h = at(r, pos);
    if (pos - r->tail >= r->pos - r->tail || h->mark != MARK_FRAME)
        return FC_RING_CORRUPT; /* not a frame read and held */
    h->mark = MARK_RELEASED;
    if (pos == r->tail)
        advance_tail(r);
    return FC_RING_OK;
}

/* ---- waiting ---- */

int fc_ring_ready(fc_ring_end *e, uint64_t size) {
    fc_ring_shared *s = e->shm;
    if (e->writer) {
        if (LOAD_ACQ(&s->reader_closed))
            return 1;
        uint64_t need = span_of(size);
        uint64_t contig = e->capacity - (e->pos & (e->capacity - 1));
        return has_space(e, contig < need ? contig : need);
    }
    if (e->pos != e->seen)
        return 1;
    e->seen = LOAD_ACQ(&s->head);
    return e->pos != e->seen || LOAD_ACQ(&s->writer_closed);
}

int fc_ring_arm(fc_ring_end *e, uint64_t size) {
    uint32_t *flag = e->writer ? &e->shm->writer_waiting : &e->shm->reader_waiting;
    drain(e->wait_fd); /* a wake-up left from an earlier round must not end this sleep at once */
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
    FENCE(); /* the flag before the load of the counter (pairs with wake's) */
    if (fc_ring_ready(e, size)) {
        __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
        return 0;
    }
    return 1;
}

void fc_ring_disarm(fc_ring_end *e) {
    uint32_t *flag = e->writer ? &e->shm->writer_waiting : &e->shm->reader_waiting;
    __atomic_store_n(flag, 0, __ATOMIC_RELAXED);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fc_ring_wait(fc_ring_end *e, uint64_t size, int timeout_ms, int peer_fd) {
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        if (!fc_ring_arm(e, size))
            return FC_RING_OK;
        struct pollfd p[2] = {{e->wait_fd, POLLIN, 0}, {peer_fd, POLLRDHUP, 0}};
        int left = -1;
        if (deadline >= 0) {
            int64_t d = deadline - now_ms();
            left = d < 0 ? 0 : (int)d;
        }
        int n = poll(p, peer_fd >= 0 ? 2 : 1, left);
        fc_ring_disarm(e);
        if (n < 0)
            return errno == EINTR ? FC_RING_INTR : FC_RING_ERRNO;
        if (fc_ring_ready(e, size))
            return FC_RING_OK;
        if (peer_fd >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
            return FC_RING_PEER_GONE;
        if (n == 0 && deadline >= 0 && now_ms() >= deadline)
            return FC_RING_TIMEOUT;
    }
}

#else /* not Linux */

int fc_ring_create(uint64_t capacity, int fds[3]) {
    (void)capacity;
    fds[0] = fds[1] = fds[2] = -1;
    return FC_RING_UNSUPPORTED;
}
int fc_ring_open(fc_ring_end *e, const int fds[3], int writer) {
    (void)fds;
    (void)writer;
    e->shm = NULL;
    e->wait_fd = e->wake_fd = -1;
    return FC_RING_UNSUPPORTED;
}
void fc_ring_shutdown(fc_ring_end *e) { (void)e; }
void fc_ring_unmap(fc_ring_end *e) { (void)e; }
uint64_t fc_ring_max_frame(const fc_ring_end *e) { (void)e; return 0; }
int fc_ring_reserve(fc_ring_end *w, uint64_t size, uint8_t **dst) {
    (void)w;
    (void)size;
    (void)dst;
    return FC_RING_UNSUPPORTED;
}
void fc_ring_commit(fc_ring_end *w, uint64_t size, uint64_t tag) {
    (void)w;
    (void)size;
    (void)tag;
}
void fc_ring_put(fc_ring_end *w, uint8_t *dst, const fc_ring_part *parts, size_t n, uint64_t tag) {
    (void)w;
    (void)dst;
    (void)parts;
    (void)n;
    (void)tag;
}
int fc_ring_next(fc_ring_end *r, fc_ring_frame *f) {
    (void)r;
    (void)f;
    return FC_RING_UNSUPPORTED;
}
int fc_ring_release(fc_ring_end *r, uint64_t pos) {
    (void)r;
    (void)pos;
    return FC_RING_UNSUPPORTED;
}
int fc_ring_ready(fc_ring_end *e, uint64_t size) {
    (void)e;
    (void)size;
    return 0;
}
int fc_ring_arm(fc_ring_end *e, uint64_t size) {
    (void)e;
    (void)size;
    return 0;
}
void fc_ring_disarm(fc_ring_end *e) { (void)e; }
int fc_ring_wait(fc_ring_end *e, uint64_t size, int timeout_ms, int peer_fd) {
    (void)e;
    (void)size;
    (void)timeout_ms;
    (void)peer_fd;
    return FC_RING_UNSUPPORTED;
}

#endif
