/* philox.h: the Philox4x32-10 counter-based generator (Salmon et al.,
 * "Parallel random numbers: as easy as 1, 2, 3", SC'11), for the CPU and the
 * GPU alike.
 *
 * A counter-based generator gives the n-th random number of a stream without
 * producing the n - 1 before it, so every GPU thread draws its own element's
 * numbers and the result does not depend on how the work is split: the CPU
 * and the GPU see the same bits for the same (seed, offset, index). Dropout
 * masks use it (mrec_dropout_*): element i of a call with (seed, offset)
 * takes word i mod 4 of the block at counter (i / 4, offset).
 */
#ifndef MREC_PHILOX_H
#define MREC_PHILOX_H

#include <stdint.h>

#ifdef __CUDACC__
#define MREC_HD __host__ __device__ __forceinline__
#else
#define MREC_HD static inline
#endif

typedef struct { uint32_t v[4]; } mrec_philox_block;

MREC_HD mrec_philox_block mrec_philox4x32(uint64_t counter, uint64_t offset, uint64_t seed) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = (uint32_t)offset, c3 = (uint32_t)(offset >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c0 = n0, c1 = (uint32_t)p1, c2 = n2, c3 = (uint32_t)p0;
        k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
    }
    mrec_philox_block b = {{c0, c1, c2, c3}};
    return b;
}

/* Element i's uniform number in [0, 1), with 24 random bits (exact in float). */
MREC_HD float mrec_philox_uniform(uint64_t i, uint64_t offset, uint64_t seed) {
    mrec_philox_block b = mrec_philox4x32(i >> 2, offset, seed);
    return (float)(b.v[i & 3] >> 8) * (1.0f / 16777216.0f);
}

#endif
