#include "fc_keygroup.h"

static inline uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

int32_t fc_murmur_hash_int(int32_t code) {
    uint32_t h = (uint32_t)code;
    h *= 0xcc9e2d51u;
    h = rotl32(h, 15);
    h *= 0x1b873593u;
    h = rotl32(h, 13);
    h = h * 5u + 0xe6546b64u;
    h ^= 4u;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    int32_t s = (int32_t)h;
    if (s >= 0) return s;
    if (s != INT32_MIN) return -s;
    return 0;
}

void fc_key_groups_int64(const int64_t *keys, size_t n, int32_t max_parallelism, int32_t *out) {
    for (size_t i = 0; i < n; i++) out[i] = fc_key_group(fc_hash_int64(keys[i]), max_parallelism);
}
