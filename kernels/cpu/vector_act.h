/* vector_act.h: the activations' vector loops of ops.c that other kernels
 * take on their own outputs while those are in cache, with the bits of
 * mrec_activation_cpu at the same SIMD level; and swish to bf16's
 * precision, which bf16 contexts take instead. */
#ifndef MREC_VECTOR_ACT_H
#define MREC_VECTOR_ACT_H

#include <stdint.h>

/* y (n) = x / (1 + exp(-x)): swish at the AVX-512 level (in place allowed); only where the CPU has AVX-512 */
void mrec_silu_avx512(float *y, const float *x, int64_t n);
/* Swish for a bf16 context, within 2^-14.1 relative, where the next step rounds its output to bf16 (2^-9) */
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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Swish for a bf16 context, where what reads swish's output next rounds it to bf16 (2^-9): within 2^-14.1 of
 * x / (1 + e^-x) (a sweep of [-110, 110]). e^-x = 2^t, t = -x log2(e): VREDUCEPS gives f = t - floor(t) in
 * [0, 1), a degree-4 polynomial 2^f (within 2^-18.5), and scalef multiplies by 2^floor(t) (it takes the floor
 * itself); the reciprocal by VRCP14PS (2^-14). 11 operations a vector, where exp16 and a division take 17 and
 * the divider. t is kept above -150 (2^t is 0 there, and -inf would reduce to NaN); NaN passes. AVX-512 DQ for
 * VREDUCEPS: every CPU with AVX-512 BF16 has it (mrec_cpu_has_bf16 asks), and only bf16 contexts call this. */
__attribute__((target("avx512f,avx512dq"))) static inline __m512 mrec_silu16_bf16(__m512 v) {
    __m512 t = _mm512_max_ps(_mm512_set1_ps(-150.0f), _mm512_mul_ps(v, _mm512_set1_ps(-1.44269504088896341f)));
    __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0.013534125f), f, _mm512_set1_ps(0.052011427f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.24144287f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.69300377f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0000026f));
    return _mm512_mul_ps(v, _mm512_rcp14_ps(_mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_scalef_ps(p, t))));
}
#endif

#endif
