/* np_random.c: MT19937 and the two numpy routines on top of it that Elliot's
 * random splits consume (mrec_np_random.h). The generator is Matsumoto and
 * Nishimura's reference algorithm; the constants are theirs. */
#include "mrec_np_random.h"

#define MT_N 624
#define MT_M 397

void mrec_mt19937_seed(mrec_mt19937 *mt, uint32_t seed) {
    mt->key[0] = seed;
    for (int i = 1; i < MT_N; i++) mt->key[i] = 1812433253u * (mt->key[i - 1] ^ (mt->key[i - 1] >> 30)) + (uint32_t)i;
    mt->pos = MT_N;
}

/* The next 624 words at once, as the reference does. */
static void regenerate(mrec_mt19937 *mt) {
    uint32_t *k = mt->key;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (k[i] & 0x80000000u) | (k[(i + 1) % MT_N] & 0x7fffffffu);
        k[i] = k[(i + MT_M) % MT_N] ^ (y >> 1) ^ (y & 1u ? 0x9908b0dfu : 0u);
    }
    mt->pos = 0;
}

uint32_t mrec_mt19937_next32(mrec_mt19937 *mt) {
    if (mt->pos >= MT_N) regenerate(mt);
    uint32_t y = mt->key[mt->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t mrec_np_random_interval(mrec_mt19937 *mt, uint64_t max) {
    if (max == 0) return 0;
    uint64_t mask = max, value;
    mask |= mask >> 1, mask |= mask >> 2, mask |= mask >> 4, mask |= mask >> 8, mask |= mask >> 16, mask |= mask >> 32;
    if (max <= 0xffffffffu) {
        while ((value = (mrec_mt19937_next32(mt) & mask)) > max) {}
    } else { /* numpy's next_uint64 for MT19937: two words, the first high */
        do {
            uint64_t hi = mrec_mt19937_next32(mt);
            value = ((hi << 32) | mrec_mt19937_next32(mt)) & mask;
        } while (value > max);
    }
    return value;
}

void mrec_np_shuffle_u8(mrec_mt19937 *mt, uint8_t *x, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)mrec_np_random_interval(mt, (uint64_t)i);
        uint8_t t = x[i];
        x[i] = x[j], x[j] = t;
    }
}
