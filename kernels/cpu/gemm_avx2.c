/* gemm_avx2.c: the 6 x 16 AVX2 + FMA GEMM micro-kernel (12 ymm accumulators,
 * two B vectors and one broadcast: 15 of the 16 registers). Built with
 * -mavx2 -mfma and only called when cpuid says the CPU has both. */
#include "gemm_internal.h"

#include <immintrin.h>
#include <stdint.h>

/* Row i's start (mrec_uk_start) at column col from c (8 floats, or those
 * under mask), as mrec_gemm_prologue forms it: beta * C, then + bias. */
static inline __attribute__((always_inline)) __m256 start_at(const mrec_uk_start *s, const float *c, int i, int col,
                                                          __m256i mask, int whole) {
    if (s->row_bias && s->beta == 0.0f) return _mm256_set1_ps(s->row_bias[i]);
    __m256 v = _mm256_setzero_ps();
    if (s->beta != 0.0f) v = _mm256_mul_ps(_mm256_set1_ps(s->beta), whole ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, mask));
    if (s->row_bias) return _mm256_add_ps(v, _mm256_set1_ps(s->row_bias[i]));
    if (!s->bias) return v;
    return _mm256_add_ps(v, whole ? _mm256_loadu_ps(s->bias + col) : _mm256_maskload_ps(s->bias + col, mask));
}

/* C's (m, n) corner = alpha * acc + start, = alpha * acc (MREC_UK_OVERWRITE), or += alpha * acc; then the ReLU
 * (MREC_UK_RELU): max(x, 0) takes its second operand where one is NaN. */
static inline __attribute__((always_inline)) void store_tile(__m256 acc[MREC_UK_AVX2_MR][2], float *c, int ldc, float alpha,
                                                             int m, int n, int flags, const mrec_uk_start *start) {
    enum { MR = MREC_UK_AVX2_MR, NR = MREC_UK_AVX2_NR };
    __m256 va = _mm256_set1_ps(alpha), zero = _mm256_setzero_ps();
    int overwrite = flags & MREC_UK_OVERWRITE, relu = flags & MREC_UK_RELU;
    if (n == NR) { /* a whole tile: plain stores (AMD runs a masked store as a slow microcode sequence) */
        for (int i = 0; i < MR && i < m; i++) {
            float *ci = c + (size_t)i * ldc;
            const __m256i all = _mm256_set1_epi32(-1);
            __m256 c0 = start ? start_at(start, ci, i, 0, all, 1) : overwrite ? _mm256_setzero_ps() : _mm256_loadu_ps(ci);
            __m256 c1 = start ? start_at(start, ci + 8, i, 8, all, 1) : overwrite ? _mm256_setzero_ps() : _mm256_loadu_ps(ci + 8);
            __m256 o0 = _mm256_fmadd_ps(va, acc[i][0], c0), o1 = _mm256_fmadd_ps(va, acc[i][1], c1);
            _mm256_storeu_ps(ci, relu ? _mm256_max_ps(o0, zero) : o0);
            _mm256_storeu_ps(ci + 8, relu ? _mm256_max_ps(o1, zero) : o1);
        }
        return;
    }
    /* Partial width: masked loads and stores touch only the n valid columns. */
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i mask0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
    __m256i mask1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane);
    for (int i = 0; i < MR; i++) {
        if (i >= m) break;
        float *ci = c + (size_t)i * ldc;
        __m256 c0 = start ? start_at(start, ci, i, 0, mask0, 0) : overwrite ? zero : _mm256_maskload_ps(ci, mask0);
        __m256 c1 = start ? start_at(start, ci + 8, i, 8, mask1, 0) : overwrite ? zero : _mm256_maskload_ps(ci + 8, mask1);
        __m256 o0 = _mm256_fmadd_ps(va, acc[i][0], c0), o1 = _mm256_fmadd_ps(va, acc[i][1], c1);
        _mm256_maskstore_ps(ci, mask0, relu ? _mm256_max_ps(o0, zero) : o0);
        _mm256_maskstore_ps(ci + 8, mask1, relu ? _mm256_max_ps(o1, zero) : o1);
    }
}

void mrec_ukernel_avx2(int kc, const float *a, const float *b, float *c, int ldc,
                       float alpha, int m, int n, int flags, const mrec_uk_start *start) {
    enum { MR = MREC_UK_AVX2_MR, NR = MREC_UK_AVX2_NR };
    /* Named accumulators: with an indexed array GCC spills them to the
     * stack on every iteration. */
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), ai;
        ai = _mm256_broadcast_ss(a + 0), c00 = _mm256_fmadd_ps(ai, b0, c00), c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a + 1), c10 = _mm256_fmadd_ps(ai, b0, c10), c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a + 2), c20 = _mm256_fmadd_ps(ai, b0, c20), c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a + 3), c30 = _mm256_fmadd_ps(ai, b0, c30), c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a + 4), c40 = _mm256_fmadd_ps(ai, b0, c40), c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a + 5), c50 = _mm256_fmadd_ps(ai, b0, c50), c51 = _mm256_fmadd_ps(ai, b1, c51);
    }
    __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    store_tile(acc, c, ldc, alpha, m, n, flags, start);
}

void mrec_ukernel_avx2_rows(int kc, const float *const *a, const float *b, float *c, int ldc,
                            float alpha, int m, int n, int flags, const mrec_uk_start *start) {
    enum { MR = MREC_UK_AVX2_MR, NR = MREC_UK_AVX2_NR };
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < kc; k++, b += NR) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), ai;
        ai = _mm256_broadcast_ss(a0 + k), c00 = _mm256_fmadd_ps(ai, b0, c00), c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a1 + k), c10 = _mm256_fmadd_ps(ai, b0, c10), c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a2 + k), c20 = _mm256_fmadd_ps(ai, b0, c20), c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a3 + k), c30 = _mm256_fmadd_ps(ai, b0, c30), c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a4 + k), c40 = _mm256_fmadd_ps(ai, b0, c40), c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a5 + k), c50 = _mm256_fmadd_ps(ai, b0, c50), c51 = _mm256_fmadd_ps(ai, b1, c51);
    }
    __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    store_tile(acc, c, ldc, alpha, m, n, flags, start);
}

/* r[0..7] (8 rows of 8) -> r[c] = column c: pairs interleave, then quads
 * within each 128-bit lane, then the two lanes swap halves. */
static inline __attribute__((always_inline)) void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]), t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    for (int g = 0; g < 8; g += 4) {
        u[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xEE);
        u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    /* u[4g + c], lane L: rows 4g..4g+3 at column 4L + c */
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

void mrec_pack_bt_avx2(float *dst, const float *src, int ldb, int kc, int cols, int NR) {
    int j = 0;
    for (; j + 8 <= cols; j += 8) {
        int k = 0;
        for (; k + 8 <= kc; k += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (size_t)(j + i) * ldb + k);
            transpose8(r);
            for (int c = 0; c < 8; c++) _mm256_storeu_ps(dst + (size_t)(k + c) * NR + j, r[c]);
        }
        for (; k < kc; k++)
            for (int i = 0; i < 8; i++) dst[(size_t)k * NR + j + i] = src[(size_t)(j + i) * ldb + k];
    }
    for (int k = 0; j < NR && k < kc; k++)
        for (int i = j; i < NR; i++) dst[(size_t)k * NR + i] = i < cols ? src[(size_t)i * ldb + k] : 0.0f;
}

void mrec_pack_a_avx2(float *dst, const float *src, int lda, const int32_t *idx, int kc, int rows) {
    enum { MR = MREC_UK_AVX2_MR };
    const float *row[MR];
    for (int i = 0; i < rows && i < MR; i++) row[i] = src + (size_t)(idx ? idx[i] : i) * lda;
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
        /* six rows of eight, two zero rows, transposed: r[c] holds column k + c of the six rows */
        __m256 r[8];
        for (int i = 0; i < 8; i++) r[i] = i < rows && i < MR ? _mm256_loadu_ps(row[i] + k) : _mm256_setzero_ps();
        transpose8(r);
        for (int c = 0; c < 8; c++) { /* six floats: four, then two, so nothing is written past them */
            float *d = dst + (size_t)(k + c) * MR;
            _mm_storeu_ps(d, _mm256_castps256_ps128(r[c]));
            _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(r[c], 1));
        }
    }
    for (; k < kc; k++)
        for (int i = 0; i < MR; i++) dst[(size_t)k * MR + i] = i < rows ? row[i][k] : 0.0f;
}

void mrec_pack_b_avx2(float *dst, const float *src, int ldb, const int32_t *idx, int kc, int cols, int NR, int panels,
                      size_t panel_stride) {
    /* Row k of B is a run of panels * NR floats: read it in order and deal
     * it out to the panels. Rows lie ldb apart (or anywhere, through idx),
     * too far for the hardware prefetcher to guess, so each step asks for
     * the row PF ahead. */
    enum { PF = 20 };
    for (int k = 0; k < kc; k++, dst += NR) {
        const float *r = src + (size_t)(idx ? idx[k] : k) * ldb;
        /* an address, not a pointer into B: the row ahead may lie past B's end (a prefetch never faults) */
        uintptr_t ahead = idx ? (k + PF < kc ? (uintptr_t)(src + (size_t)idx[k + PF] * ldb) : 0)
                              : (uintptr_t)r + sizeof(float) * PF * (size_t)ldb;
        int p = 0;
        for (; p < panels && (p + 1) * NR <= cols; p++) {
            const float *s = r + (size_t)p * NR;
            float *d = dst + p * panel_stride;
            if (ahead)
                for (int j = 0; j < NR; j += 16) _mm_prefetch((const char *)(ahead + sizeof(float) * ((size_t)p * NR + j)), _MM_HINT_T0);
            for (int j = 0; j < NR; j += 8) _mm256_storeu_ps(d + j, _mm256_loadu_ps(s + j));
        }
        for (; p < panels; p++)
            for (int j = 0; j < NR; j++) dst[p * panel_stride + j] = p * NR + j < cols ? r[p * NR + j] : 0.0f;
    }
}

void mrec_pack_at_avx2(float *dst, const float *src, int lda, int kc, int rows) {
    enum { MR = MREC_UK_AVX2_MR };
    if (rows == MR) { /* four floats, then two, so nothing is read or written past the six */
        for (int k = 0; k < kc; k++, src += lda, dst += MR) {
            _mm_storeu_ps(dst, _mm_loadu_ps(src));
            _mm_storel_pi((__m64 *)(dst + 4), _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(src + 4)));
        }
        return;
    }
    for (int k = 0; k < kc; k++, src += lda, dst += MR)
        for (int i = 0; i < MR; i++) dst[i] = i < rows ? src[i] : 0.0f;
}
