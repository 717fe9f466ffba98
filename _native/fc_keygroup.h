/* Flink's key groups: which of max_parallelism key groups a key hash belongs to, and which
 * parallel operator instance owns a key group (contiguous ranges, KeyGroupRangeAssignment).
 * Also the stable, process-independent 32-bit key hashes (Java's hashCode conventions) that
 * feed it, so a key lands in the same key group in every process and every run. */
#ifndef FC_KEYGROUP_H
#define FC_KEYGROUP_H

#include <stddef.h>
#include <stdint.h>

/* Flink's MathUtils.murmurHash(int): murmur3 of one 32-bit word, made non-negative. */
int32_t fc_murmur_hash_int(int32_t code);

/* Java's Long.hashCode: the stable 32-bit hash of an int64 key. */
static inline int32_t fc_hash_int64(int64_t v) {
    return (int32_t)(uint32_t)((uint64_t)v ^ ((uint64_t)v >> 32));
}

static inline int32_t fc_key_group(int32_t key_hash, int32_t max_parallelism) {
    return fc_murmur_hash_int(key_hash) % max_parallelism;
}

static inline int32_t fc_operator_index(int32_t key_group, int32_t max_parallelism, int32_t parallelism) {
    return (int32_t)(((int64_t)key_group * parallelism) / max_parallelism);
}

/* Java's Double.hashCode (NaN canonicalised as Double.doubleToLongBits does). Callers hash an
 * integral double as the equal int64 first, so that 1.0 and 1 (equal in Python) share a hash. */
int32_t fc_hash_double(double v);

/* Java's String.hashCode (31*h + c over UTF-16 code units) of a string given as code points of
 * 1, 2 or 4 bytes each (Python's compact unicode kinds); code points above U+FFFF count as
 * their surrogate pair, as in Java. */
int32_t fc_hash_ucs1(const uint8_t *s, size_t n);
int32_t fc_hash_ucs2(const uint16_t *s, size_t n);
int32_t fc_hash_ucs4(const uint32_t *s, size_t n);

/* Java's Arrays.hashCode(byte[]): 1, then 31*h + (signed byte). */
int32_t fc_hash_bytes(const uint8_t *s, size_t n);

/* Java's BigInteger.hashCode from the big-endian magnitude (n bytes, any length) and sign. */
int32_t fc_hash_bigint(const uint8_t *magnitude_be, size_t n, int sign);

/* Java's List.hashCode step: fold one element hash into a running hash that starts at 1. */
static inline int32_t fc_hash_combine(int32_t h, int32_t element) {
    return (int32_t)(31u * (uint32_t)h + (uint32_t)element);
}

/* Key groups of n int64 keys. */
void fc_key_groups_int64(const int64_t *keys, size_t n, int32_t max_parallelism, int32_t *out);

/* Key groups of n precomputed 32-bit key hashes. */
void fc_key_groups_hashes(const int32_t *hashes, size_t n, int32_t max_parallelism, int32_t *out);

/* Key groups of n fixed-width strings as numpy stores them: `width` UCS4 code points (dtype U)
 * or bytes (dtype S) per item, trailing NULs being padding. */
void fc_key_groups_ucs4_fixed(const uint32_t *data, size_t n, size_t width, int32_t max_parallelism,
                              int32_t *out);
void fc_key_groups_bytes_fixed(const uint8_t *data, size_t n, size_t width, int32_t max_parallelism,
                               int32_t *out);

#endif
