/* gemm_avx2.c: the 6 x 16 AVX2 + FMA GEMM micro-kernel. Built with -mavx2
 * -mfma and only called when cpuid says the CPU has both. */
#include "gemm_internal.h"

#include <immintrin.h>

void mrec_ukernel_avx2(int kc, const float *a, const float *b, float *c, int ldc,
                       float alpha, int m, int n, int overwrite) {
    enum { MR = MREC_UK_AVX2_MR, NR = MREC_UK_AVX2_NR };
    __m256 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b + k * NR), b1 = _mm256_loadu_ps(b + k * NR + 8);
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + k * MR + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    __m256 va = _mm256_set1_ps(alpha);
    if (m == MR && n == NR) {
        for (int i = 0; i < MR; i++) {
            float *ci = c + (size_t)i * ldc;
            if (overwrite) {
                _mm256_storeu_ps(ci, _mm256_mul_ps(va, acc[i][0]));
                _mm256_storeu_ps(ci + 8, _mm256_mul_ps(va, acc[i][1]));
            } else {
                _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, acc[i][0], _mm256_loadu_ps(ci)));
                _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, acc[i][1], _mm256_loadu_ps(ci + 8)));
            }
        }
        return;
    }
    float tile[MR][NR];
    for (int i = 0; i < MR; i++) {
        _mm256_storeu_ps(tile[i], acc[i][0]);
        _mm256_storeu_ps(tile[i] + 8, acc[i][1]);
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            c[(size_t)i * ldc + j] = alpha * tile[i][j] + (overwrite ? 0.0f : c[(size_t)i * ldc + j]);
}
