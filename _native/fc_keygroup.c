#include "fc_keygroup.h"

#include <string.h>

static inline uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

static inline uint32_t murmur_u32(uint32_t h) {
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
    return h;
}

/* Math.abs with Flink's special case (Integer.MIN_VALUE maps to 0), without a branch: the key
 * hashes are random, so a branch here would be mispredicted half the time. */
static inline uint32_t non_negative(uint32_t h) {
    uint32_t sign = 0u - (h >> 31);
    return ((h ^ sign) - sign) & 0x7fffffffu;
}

int32_t fc_murmur_hash_int(int32_t code) { return (int32_t)non_negative(murmur_u32((uint32_t)code)); }

/* a % d for 0 <= a < 2^31, 1 <= d <= 2^15 without a hardware division: the double quotient is
 * exact to far better than one unit here, and the correction step absorbs the last rounding. */
typedef struct {
    uint32_t d, mask;
    double inv;
} fc_mod;

static inline fc_mod mod_init(int32_t d) {
    fc_mod m;
    m.d = (uint32_t)d;
    m.mask = ((m.d & (m.d - 1)) == 0) ? m.d - 1 : 0;
    m.inv = 1.0 / (double)d;
    return m;
}

static inline uint32_t mod_apply(const fc_mod *m, uint32_t a) {
    /* the computed quotient is exact or one too small (only when d divides a) */
    int32_t q = (int32_t)((double)(int32_t)a * m->inv);
    int32_t r = (int32_t)a - q * (int32_t)m->d;
    return (uint32_t)(r >= (int32_t)m->d ? r - (int32_t)m->d : r);
}

void fc_key_groups_int64(const int64_t *keys, size_t n, int32_t max_parallelism, int32_t *out) {
    fc_mod m = mod_init(max_parallelism);
    if (m.mask || m.d == 1) {
        uint32_t mask = m.d - 1;
        for (size_t i = 0; i < n; i++)
            out[i] = (int32_t)(non_negative(murmur_u32((uint32_t)fc_hash_int64(keys[i]))) & mask);
    } else {
        for (size_t i = 0; i < n; i++)
            out[i] = (int32_t)mod_apply(&m, non_negative(murmur_u32((uint32_t)fc_hash_int64(keys[i]))));
    }
}

void fc_key_groups_hashes(const int32_t *hashes, size_t n, int32_t max_parallelism, int32_t *out) {
    fc_mod m = mod_init(max_parallelism);
    for (size_t i = 0; i < n; i++)
        out[i] = (int32_t)mod_apply(&m, non_negative(murmur_u32((uint32_t)hashes[i])));
}

int32_t fc_hash_double(double v) {
    uint64_t bits;
    if (v != v) {
        bits = UINT64_C(0x7ff8000000000000);
    } else {
        memcpy(&bits, &v, sizeof bits);
    }
    return (int32_t)(uint32_t)(bits ^ (bits >> 32));
}

static inline uint32_t hash_code_point(uint32_t h, uint32_t c) {
    if (c > 0xFFFFu) {
        c -= 0x10000u;
        h = 31u * h + (0xD800u + (c >> 10));
        return 31u * h + (0xDC00u + (c & 0x3FFu));
    }
    return 31u * h + c;
}

int32_t fc_hash_ucs1(const uint8_t *s, size_t n) {
    uint32_t h = 0;
    for (size_t i = 0; i < n; i++) h = 31u * h + s[i];
    return (int32_t)h;
}

int32_t fc_hash_ucs2(const uint16_t *s, size_t n) {
    uint32_t h = 0;
    for (size_t i = 0; i < n; i++) h = 31u * h + s[i];
    return (int32_t)h;
}

int32_t fc_hash_ucs4(const uint32_t *s, size_t n) {
    uint32_t h = 0;
    for (size_t i = 0; i < n; i++) h = hash_code_point(h, s[i]);
    return (int32_t)h;
}

int32_t fc_hash_bytes(const uint8_t *s, size_t n) {
    uint32_t h = 1;
    for (size_t i = 0; i < n; i++) h = 31u * h + (uint32_t)(int32_t)(int8_t)s[i];
    return (int32_t)h;
}

int32_t fc_hash_bigint(const uint8_t *magnitude_be, size_t n, int sign) {
    /* Java folds the magnitude as big-endian 32-bit words, most significant first; the first
     * word holds the n % 4 leading bytes. Leading zero words do not change the result. */
    uint32_t h = 0;
    size_t i = 0, lead = n % 4;
    if (lead) {
        uint32_t word = 0;
        for (; i < lead; i++) word = (word << 8) | magnitude_be[i];
        h = word;
    }
    for (; i < n; i += 4) {
        uint32_t word = ((uint32_t)magnitude_be[i] << 24) | ((uint32_t)magnitude_be[i + 1] << 16) |
                        ((uint32_t)magnitude_be[i + 2] << 8) | (uint32_t)magnitude_be[i + 3];
        h = 31u * h + word;
    }
    if (sign == 0) return 0;
    return (int32_t)(sign < 0 ? 0u - h : h);
}

void fc_key_groups_ucs4_fixed(const uint32_t *data, size_t n, size_t width, int32_t max_parallelism,
                              int32_t *out) {
    fc_mod m = mod_init(max_parallelism);
    for (size_t i = 0; i < n; i++) {
        const uint32_t *s = data + i * width;
        size_t len = width;
        while (len > 0 && s[len - 1] == 0) len--;
        out[i] = (int32_t)mod_apply(&m, non_negative(murmur_u32((uint32_t)fc_hash_ucs4(s, len))));
    }
}

void fc_key_groups_bytes_fixed(const uint8_t *data, size_t n, size_t width, int32_t max_parallelism,
                               int32_t *out) {
    fc_mod m = mod_init(max_parallelism);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *s = data + i * width;
        size_t len = width;
        while (len > 0 && s[len - 1] == 0) len--;
        out[i] = (int32_t)mod_apply(&m, non_negative(murmur_u32((uint32_t)fc_hash_bytes(s, len))));
    }
}
