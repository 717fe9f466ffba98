/* A single-producer single-consumer ring of frames in memory shared by two processes.
 *
 * The memory is a memfd (so it can be inherited across fork or passed over a Unix socket with
 * SCM_RIGHTS): one page of header, then `capacity` bytes of data (a power of two). The header
 * holds the writer's `head` and the reader's `tail`, byte counters that only grow (a position in
 * the data is the counter modulo the capacity), each on a cache line of its own, published with
 * release stores and read with acquire loads, so a frame's bytes are visible before its head.
 *
 * A frame is a 16-byte header (payload size, mark, a 64-bit tag of the caller's) and its payload,
 * padded to 16 bytes: payloads start 16-byte aligned. A frame that does not fit before the end of
 * the data is preceded by a skip marker (a header whose mark says "skip to the start"), so every
 * frame is contiguous and the reader gets it in place. A frame is at most capacity - 16 bytes
 * (FC_RING_TOO_BIG otherwise: the caller splits its batch or makes the ring larger).
 *
 * The reader may hold several frames and release them in any order: a release marks the frame's
 * header, and the tail moves over the released frames (and skip markers) at the start of the
 * held region. Only the tail makes space reusable.
 *
 * Blocking: each side sleeps on an eventfd of its own (readable in poll/select, so a reader can
 * wait on its sockets and the ring at once). Before sleeping a side sets its `waiting` flag, and
 * the other side, after publishing a head (or tail), writes the eventfd only when it sees that
 * flag (a seq_cst fence on both sides orders the flag against the counter, as in Dekker's
 * algorithm): the steady state, where neither side sleeps, makes no system calls.
 *
 * A peer that exits cleanly sets its `closed` flag. A peer that dies (SIGKILL) cannot; the waits
 * take the fd of a socket (or pipe) the peer holds the other end of, and report FC_RING_PEER_GONE
 * when it hangs up, so no side waits forever for a dead one.
 *
 * Linux only (memfd_create, eventfd, poll with POLLRDHUP); elsewhere every call returns
 * FC_RING_UNSUPPORTED. */
#ifndef FC_RING_H
#define FC_RING_H

#include <stddef.h>
#include <stdint.h>

enum {
    FC_RING_OK = 0,
    FC_RING_AGAIN = 1,       /* no frame to read / no space to write now */
    FC_RING_EOF = 2,         /* reader: the writer closed the ring and every frame was read */
    FC_RING_CLOSED = 3,      /* writer: the reader closed the ring */
    FC_RING_TIMEOUT = 4,
    FC_RING_PEER_GONE = 5,   /* the peer's fd hung up (the peer died or closed its socket) */
    FC_RING_INTR = 6,        /* a signal interrupted a wait: check for it and call again */
    FC_RING_TOO_BIG = 7,     /* a frame larger than the ring's fc_ring_max_frame */
    FC_RING_CORRUPT = 8,     /* the shared memory holds something no writer wrote */
    FC_RING_ERRNO = -1,      /* a system call failed: see errno */
    FC_RING_UNSUPPORTED = -2 /* not Linux */
};

#define FC_RING_HEADER 16u       /* bytes of a frame's header, and the alignment of frames */
#define FC_RING_MIN_CAPACITY 4096u
#define FC_RING_MAX_CAPACITY (1u << 30)

typedef struct fc_ring_shared fc_ring_shared;

/* One process's end of a ring (the writer's or the reader's). */
typedef struct {
    fc_ring_shared *shm;
    uint8_t *data;
    size_t map_size;
    uint64_t capacity;
    uint64_t pos;  /* writer: head (where the next frame goes); reader: the next frame to read */
    uint64_t seen; /* writer: the tail last loaded; reader: the head last loaded */
    uint64_t tail; /* reader: start of the oldest frame not released (what shm's tail says) */
    int wait_fd;   /* the eventfd this end sleeps on */
    int wake_fd;   /* the other end's eventfd */
    int writer;
} fc_ring_end;

typedef struct {
    const uint8_t *data;
    uint64_t pos; /* what fc_ring_release takes */
    uint32_t size;
    uint64_t tag;
} fc_ring_frame;

typedef struct {
    const void *data;
    size_t size;
} fc_ring_part;

/* A new ring: fds[0] the memfd, fds[1] the reader's eventfd, fds[2] the writer's (all
 * close-on-exec; the caller owns them). capacity: a power of two in [MIN, MAX]. */
int fc_ring_create(uint64_t capacity, int fds[3]);
/* Map a ring (the fds stay the caller's: the end keeps its own duplicates of the eventfds). */
int fc_ring_open(fc_ring_end *e, const int fds[3], int writer);
/* Mark this end closed and wake the other end (it sees EOF / CLOSED). The mapping stays. */
void fc_ring_shutdown(fc_ring_end *e);
/* Unmap and close the end's fds (after shutdown; no frame may be used after it). */
void fc_ring_unmap(fc_ring_end *e);
uint64_t fc_ring_max_frame(const fc_ring_end *e);

/* Writer: room for a payload of `size` bytes at *dst (publishing a skip marker first when the
 * frame wraps): OK, AGAIN, TOO_BIG or CLOSED. Then fill *dst and commit. */
int fc_ring_reserve(fc_ring_end *w, uint64_t size, uint8_t **dst);
void fc_ring_commit(fc_ring_end *w, uint64_t size, uint64_t tag);
/* Copy `n` parts into the reserved space (no waiting) and commit them as one frame. */
void fc_ring_put(fc_ring_end *w, uint8_t *dst, const fc_ring_part *parts, size_t n, uint64_t tag);

/* memcpy, but a copy of at least FC_STREAM_MIN bytes writes past the caches (non-temporal stores,
 * on x86-64): a large frame is read once, later, by another core or into another buffer, and
 * cached on its way it would evict what this core's operators keep hot (a window table). Its
 * stores are fenced: they are visible before a release store that follows. Any platform. */
#define FC_STREAM_MIN (128u * 1024u)
void fc_copy_stream(void *dst, const void *src, size_t n);

/* Reader: the next frame in place: OK, AGAIN, EOF or CORRUPT. */
int fc_ring_next(fc_ring_end *r, fc_ring_frame *f);
/* The frame at `pos` (from fc_ring_next) is done with: its space is reusable once the frames
 * before it are released too. Releasing a frame twice is the caller's error. */
int fc_ring_release(fc_ring_end *r, uint64_t pos);

/* Whether the call this end waits for would go ahead now: reader, a frame or the end; writer,
 * `size` bytes of payload (or the reader closed). */
int fc_ring_ready(fc_ring_end *e, uint64_t size);
/* Before sleeping in select/poll on wait_fd: drains the eventfd, sets this end's waiting flag and
 * returns 1; or returns 0 (flag cleared) when the end is ready after all. After waking (or
 * deciding not to sleep), call fc_ring_disarm. */
int fc_ring_arm(fc_ring_end *e, uint64_t size);
void fc_ring_disarm(fc_ring_end *e);
/* Sleep until ready (OK), timeout_ms passed (TIMEOUT; < 0: no limit), peer_fd hung up (PEER_GONE;
 * < 0: none) or a signal came (INTR). Call without holding any lock the other end needs. */
int fc_ring_wait(fc_ring_end *e, uint64_t size, int timeout_ms, int peer_fd);

#endif
