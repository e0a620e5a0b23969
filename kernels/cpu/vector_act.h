/* vector_act.h: the activations' vector loops of ops.c that other kernels
 * take on their own outputs while those are in cache, with the bits of
 * mrec_activation_cpu at the same SIMD level; and swish to bf16's
 * precision, which bf16 contexts take instead. */
#ifndef MREC_VECTOR_ACT_H
#define MREC_VECTOR_ACT_H

#include <stdint.h>

/* y (n) = x / (1 + exp(-x)): swish at the AVX-512 level (in place allowed); only where the CPU has AVX-512 */
void mrec_silu_avx512(float *y, const float *x, int64_t n);
/* Swish for a bf16 context, within 2^-13.5 relative, where the next step rounds its output to bf16 (2^-9) */
void mrec_silu_bf16_avx512(float *y, const float *x, int64_t n);
/* Either (bf16: the second), returning the sum of y: element i into partial sum i % 16, the partials added by
 * mrec_sum16_tree (a squeeze-excite's mean of the swish it stores, the bits of mrec_row_mean_cpu's sums) */
float mrec_silu_sum_avx512(float *y, const float *x, int64_t n, int bf16);

/* Sixteen partial sums added as the halves of a vector are: p[j] + p[j + 8], then + 4, + 2, + 1. */
static inline float mrec_sum16_tree(const float p[16]) {
    float q[8], s[4];
    for (int j = 0; j < 8; j++) q[j] = p[j] + p[j + 8];
    for (int j = 0; j < 4; j++) s[j] = q[j] + q[j + 4];
    return (s[0] + s[2]) + (s[1] + s[3]);
}

#endif
