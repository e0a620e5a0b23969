/* gemm_avx512.c: the 12 x 32 AVX-512F GEMM micro-kernel. Built with
 * -mavx512f -mfma and only called when cpuid says the CPU has AVX-512F. */
#include "gemm_internal.h"

#include <immintrin.h>

void mrec_ukernel_avx512(int kc, const float *a, const float *b, float *c, int ldc,
                         float alpha, int m, int n) {
    enum { MR = MREC_UK_AVX512_MR, NR = MREC_UK_AVX512_NR };
    __m512 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(b + k * NR), b1 = _mm512_loadu_ps(b + k * NR + 16);
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[k * MR + i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha);
    if (n == NR) {
        for (int i = 0; i < m; i++) {
            float *ci = c + (size_t)i * ldc;
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, acc[i][0], _mm512_loadu_ps(ci)));
            _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(va, acc[i][1], _mm512_loadu_ps(ci + 16)));
        }
        return;
    }
    /* Partial width: masked loads and stores touch only the n valid columns. */
    __mmask16 m0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
    __mmask16 m1 = n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
    if (n == 32) m1 = 0xFFFF;
    for (int i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        _mm512_mask_storeu_ps(ci, m0,
            _mm512_fmadd_ps(va, acc[i][0], _mm512_maskz_loadu_ps(m0, ci)));
        _mm512_mask_storeu_ps(ci + 16, m1,
            _mm512_fmadd_ps(va, acc[i][1], _mm512_maskz_loadu_ps(m1, ci + 16)));
    }
}
