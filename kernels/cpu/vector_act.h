/* vector_act.h: the activations' vector loops of ops.c that other kernels
 * take on their own outputs while those are in cache, with the bits of
 * mrec_activation_cpu at the same SIMD level. */
#ifndef MREC_VECTOR_ACT_H
#define MREC_VECTOR_ACT_H

#include <stdint.h>

/* y (n) = x / (1 + exp(-x)): swish at the AVX-512 level (in place allowed); only where the CPU has AVX-512 */
void mrec_silu_avx512(float *y, const float *x, int64_t n);

#endif
