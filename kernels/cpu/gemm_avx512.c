/* gemm_avx512.c: AVX-512F GEMM micro-kernels, built with -mavx512f -mfma and
 * only called when cpuid says the CPU has AVX-512F.
 *
 * Two shapes from one body: 12 x 32 (24 zmm accumulators) for general M,
 * and 8 x 48 for M a multiple of 8 but not of 12 (every conv layer of
 * ResNet has 64k output channels), where 12-row panels would waste rows.
 */
#include "gemm_internal.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) void ukernel(const int MR, const int NV, int kc, const float *a,
                                                         const float *b, float *c, int ldc, float alpha,
                                                         int m, int n, int overwrite) {
    const int NR = 16 * NV;
    __m512 acc[12][3];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    /* Touch C now so its lines arrive while the loop runs. */
    for (int i = 0; i < m; i++) _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
    for (int k = 0; k < kc; k++) {
        __m512 bv[3];
        for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + k * NR + 16 * v);
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[k * MR + i]);
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha);
    for (int v = 0; v < NV; v++) {
        /* Partial width: masked loads and stores touch only the valid columns. */
        int cols = n - 16 * v;
        __mmask16 mask = cols >= 16 ? (__mmask16)0xFFFF : cols <= 0 ? 0 : (__mmask16)((1u << cols) - 1);
        if (!mask) break;
        for (int i = 0; i < m; i++) {
            float *ci = c + (size_t)i * ldc + 16 * v;
            __m512 out = overwrite ? _mm512_mul_ps(va, acc[i][v])
                                   : _mm512_fmadd_ps(va, acc[i][v], _mm512_maskz_loadu_ps(mask, ci));
            _mm512_mask_storeu_ps(ci, mask, out);
        }
    }
}

void mrec_ukernel_avx512(int kc, const float *a, const float *b, float *c, int ldc, float alpha, int m, int n,
                         int overwrite) {
    ukernel(MREC_UK_AVX512_MR, MREC_UK_AVX512_NR / 16, kc, a, b, c, ldc, alpha, m, n, overwrite);
}

void mrec_ukernel_avx512_8x48(int kc, const float *a, const float *b, float *c, int ldc, float alpha, int m, int n,
                              int overwrite) {
    ukernel(MREC_UK_AVX512_8_MR, MREC_UK_AVX512_8_NR / 16, kc, a, b, c, ldc, alpha, m, n, overwrite);
}
