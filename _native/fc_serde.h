/* Byte-level primitives of flinkcore's record format (flinkcore._core.serde): a growable output
 * buffer, LEB128 varints, zigzag, little-endian doubles and a bounds-checked reader. The object
 * walk lives in the Cython binding; everything that touches raw bytes is here, and every read
 * checks the remaining length first, so corrupt input can only produce an error code. */
#ifndef FC_SERDE_H
#define FC_SERDE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Version byte of a single value (dumps, encode_key): its layout is unchanged since version 1, so
 * key bytes stay stable. A batch (dumps_batch) starts with FC_SERDE_BATCH_VERSION: version 2 added a
 * layout byte after the record count (FC_BATCH_VALUES or FC_BATCH_ROWS); version-1 batches (count,
 * then values) are still read. */
#define FC_SERDE_VERSION 1
#define FC_SERDE_BATCH_VERSION 2

/* Layout byte of a version-2 batch. */
enum fc_batch_layout {
    FC_BATCH_VALUES = 0, /* n tagged values, as in version 1 */
    FC_BATCH_ROWS = 1    /* u8 k (1..FC_ROWS_MAX_ARITY), k column tags (INT, FLOAT, STR, BYTES), then
                            n records of k untagged payloads: INT zigzag varint, FLOAT 8 bytes,
                            STR/BYTES varint length + bytes (STR strict UTF-8) */
};
#define FC_ROWS_MAX_ARITY 64

/* One tag byte starts every value. Numbering is part of the on-disk format: append only. */
enum fc_serde_tag {
    FC_TAG_NONE = 0x00,
    FC_TAG_FALSE = 0x01,
    FC_TAG_TRUE = 0x02,
    FC_TAG_INT = 0x03,      /* zigzag varint, int64 range */
    FC_TAG_BIGINT = 0x04,   /* sign byte (0 +, 1 -), varint n, n magnitude bytes little-endian */
    FC_TAG_FLOAT = 0x05,    /* 8 bytes IEEE 754 little-endian */
    FC_TAG_STR = 0x06,      /* varint n, n bytes UTF-8 */
    FC_TAG_BYTES = 0x07,    /* varint n, n bytes */
    FC_TAG_TUPLE = 0x08,    /* varint n, n values */
    FC_TAG_LIST = 0x09,     /* varint n, n values */
    FC_TAG_DICT = 0x0A,     /* varint n, n (key, value) pairs */
    FC_TAG_ROW = 0x0B,      /* varint n, names flag byte, [n str names], n values */
    FC_TAG_DECIMAL = 0x0C,  /* varint n, n bytes ASCII str(decimal) */
    FC_TAG_DATETIME = 0x0D, /* date fields, time fields, tz */
    FC_TAG_DATE = 0x0E,     /* zigzag varint year, month byte, day byte */
    FC_TAG_TIME = 0x0F,     /* hour, minute, second bytes, varint microsecond, fold byte, tz */
    FC_TAG_PICKLE = 0x10,   /* varint n, n bytes of pickle protocol 5 */
    FC_TAG_STR_SURROGATES = 0x11, /* varint n, UTF-8 with lone surrogates (Python's surrogatepass) */
    FC_TAG_TIMEDELTA = 0x12 /* zigzag varint days, varint seconds, varint microseconds */
};

/* tz byte after a datetime/time: naive, or a fixed offset given as zigzag varint microseconds */
enum fc_serde_tz { FC_TZ_NONE = 0, FC_TZ_OFFSET = 1 };

/* reader status codes */
#define FC_OK 0
#define FC_TRUNCATED (-1)
#define FC_BAD_VARINT (-2)

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} fc_buf;

int fc_buf_init(fc_buf *b, size_t cap);
void fc_buf_free(fc_buf *b);
int fc_buf_grow(fc_buf *b, size_t extra); /* 0, or -1 when out of memory */

static inline int fc_buf_reserve(fc_buf *b, size_t extra) {
    return (b->cap - b->len >= extra) ? 0 : fc_buf_grow(b, extra);
}

static inline uint64_t fc_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t fc_unzigzag(uint64_t u) { return (int64_t)(u >> 1) ^ -(int64_t)(u & 1); }

/* Unchecked writes: the caller reserved the space. */
static inline void fc_put_u8_unchecked(fc_buf *b, uint8_t v) { b->data[b->len++] = v; }

static inline void fc_put_varint_unchecked(fc_buf *b, uint64_t v) {
    uint8_t *p = b->data + b->len;
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    b->len = (size_t)(p - b->data);
}

/* Cursor forms for loops that keep the write position in a register (a store through uint8_t *
 * may alias b->len, so the fc_put_* forms reload it after every byte). Unchecked. */
static inline uint8_t *fc_write_varint(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint8_t *fc_write_f64(uint8_t *p, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(bits >> (8 * i));
    return p + 8;
}

static inline void fc_put_f64_unchecked(fc_buf *b, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint8_t *p = b->data + b->len;
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(bits >> (8 * i));
    b->len += 8;
}

static inline int fc_put_u8(fc_buf *b, uint8_t v) {
    if (fc_buf_reserve(b, 1)) return -1;
    fc_put_u8_unchecked(b, v);
    return 0;
}

/* tag + varint: the most common value header */
static inline int fc_put_tag_varint(fc_buf *b, uint8_t tag, uint64_t v) {
    if (fc_buf_reserve(b, 11)) return -1;
    fc_put_u8_unchecked(b, tag);
    fc_put_varint_unchecked(b, v);
    return 0;
}

static inline int fc_put_varint(fc_buf *b, uint64_t v) {
    if (fc_buf_reserve(b, 10)) return -1;
    fc_put_varint_unchecked(b, v);
    return 0;
}

static inline int fc_put_tag_f64(fc_buf *b, uint8_t tag, double v) {
    if (fc_buf_reserve(b, 9)) return -1;
    fc_put_u8_unchecked(b, tag);
    fc_put_f64_unchecked(b, v);
    return 0;
}

static inline int fc_put_bytes(fc_buf *b, const void *src, size_t n) {
    if (fc_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static inline int fc_put_f64(fc_buf *b, double v) {
    if (fc_buf_reserve(b, 8)) return -1;
    fc_put_f64_unchecked(b, v);
    return 0;
}

/* Copy n bytes; up to 16 with two overlapping loads and stores instead of a memcpy call (the usual
 * key or name), reading and writing only [0, n). */
static inline void fc_copy_short(uint8_t *dst, const void *src, size_t n) {
    const uint8_t *s = (const uint8_t *)src;
    if (n >= 8 && n <= 16) {
        uint64_t a, z;
        memcpy(&a, s, 8);
        memcpy(&z, s + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &z, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, z;
        memcpy(&a, s, 4);
        memcpy(&z, s + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &z, 4);
    } else if (n > 0 && n < 4) {
        dst[0] = s[0];
        dst[n >> 1] = s[n >> 1];
        dst[n - 1] = s[n - 1];
    } else if (n > 16) {
        memcpy(dst, s, n);
    }
}

/* varint length, payload (a row-batch str/bytes column) */
static inline int fc_put_span(fc_buf *b, const void *src, size_t n) {
    if (fc_buf_reserve(b, 10 + n)) return -1;
    fc_put_varint_unchecked(b, n);
    if (n) memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

/* tag, varint length, payload */
static inline int fc_put_tagged_span(fc_buf *b, uint8_t tag, const void *src, size_t n) {
    if (fc_buf_reserve(b, 11 + n)) return -1;
    fc_put_u8_unchecked(b, tag);
    fc_put_varint_unchecked(b, n);
    if (n) memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} fc_reader;

static inline size_t fc_remaining(const fc_reader *r) { return (size_t)(r->end - r->p); }

static inline int fc_get_u8(fc_reader *r, uint8_t *out) {
    if (r->p >= r->end) return FC_TRUNCATED;
    *out = *r->p++;
    return FC_OK;
}

/* LEB128, at most 10 bytes, no bits beyond 64 */
static inline int fc_get_varint(fc_reader *r, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return FC_TRUNCATED;
        uint8_t byte = *r->p++;
        if (shift == 63 && byte > 1) return FC_BAD_VARINT;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return FC_OK;
        }
    }
    return FC_BAD_VARINT;
}

static inline uint64_t fc_load_le64(const uint8_t *p) {
    uint64_t bits;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&bits, p, 8);
#else
    bits = 0;
    for (int i = 0; i < 8; i++) bits |= (uint64_t)p[i] << (8 * i);
#endif
    return bits;
}

static inline int fc_get_f64(fc_reader *r, double *out) {
    if (fc_remaining(r) < 8) return FC_TRUNCATED;
    uint64_t bits = fc_load_le64(r->p);
    memcpy(out, &bits, sizeof bits);
    r->p += 8;
    return FC_OK;
}

/* A varint length followed by that many bytes, which must all be present. */
static inline int fc_get_span(fc_reader *r, const uint8_t **start, size_t *n) {
    uint64_t len;
    int rc = fc_get_varint(r, &len);
    if (rc) return rc;
    if (len > fc_remaining(r)) return FC_TRUNCATED;
    *start = r->p;
    *n = (size_t)len;
    r->p += len;
    return FC_OK;
}

#endif
