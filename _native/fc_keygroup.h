/* Flink's key groups: which of max_parallelism key groups a key hash belongs to, and which
 * parallel operator instance owns a key group (contiguous ranges, KeyGroupRangeAssignment). */
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

/* Key groups of n int64 keys. */
void fc_key_groups_int64(const int64_t *keys, size_t n, int32_t max_parallelism, int32_t *out);

#endif
