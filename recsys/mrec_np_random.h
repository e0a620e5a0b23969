/* mrec_np_random.h: numpy's legacy random stream (np.random.seed / RandomState),
 * bit for bit, for the draws Elliot's splitter makes.
 *
 * np.random.seed(s) with an integer 0 <= s < 2^32 seeds MT19937 with the
 * reference init_genrand(s) (numpy's mt19937_seed; an array seed would go
 * through init_by_array, which mrec does not need). RandomState.shuffle of a
 * 1-d list or array swaps x[i] with x[j], j = random_interval(i), for i from
 * n-1 down to 1; random_interval(max) masks a 32-bit draw (64-bit past 2^32)
 * to the smallest all-ones mask covering max and redraws while it exceeds max.
 * tests/test_split.c checks the first outputs of several seeds and whole
 * shuffles against numpy (tools/golden/elliot_splits.py).
 */
#ifndef MREC_NP_RANDOM_H
#define MREC_NP_RANDOM_H

#include <stdint.h>

typedef struct {
    uint32_t key[624];
    int pos; /* next word of key to temper; 624: regenerate first */
} mrec_mt19937;

/* np.random.seed(seed), seed in [0, 2^32). */
void mrec_mt19937_seed(mrec_mt19937 *mt, uint32_t seed);
/* The next 32-bit output (genrand_int32). */
uint32_t mrec_mt19937_next32(mrec_mt19937 *mt);
/* numpy's random_interval: uniform in [0, max] by masked rejection. */
uint64_t mrec_np_random_interval(mrec_mt19937 *mt, uint64_t max);
/* RandomState.shuffle of the 1-d sequence x (n), in place. */
void mrec_np_shuffle_u8(mrec_mt19937 *mt, uint8_t *x, int64_t n);

#endif
