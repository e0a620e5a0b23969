/* gemm_avx512.c: AVX-512F GEMM micro-kernels, built with -mavx512f -mfma and
 * only called when cpuid says the CPU has AVX-512F.
 *
 * Two shapes from one body: 12 x 32 (24 zmm accumulators) for general M,
 * and 8 x 48 for M a multiple of 8 but not of 12 (every conv layer of
 * ResNet has 64k output channels), where 12-row panels would waste rows.
 * A tile's last 1 to 4 columns (a 7 x 7 or 9 x 9 plane's 49 or 81) are
 * summed a column at a time, a vector over the rows, not as a whole vector.
 * Also the packings that transpose (A row-major into k-major panels, B
 * given transposed as nn.Linear weights are), 16 x 16 blocks in registers.
 */
#include "gemm_internal.h"
#include "transpose16.h"

#include <immintrin.h>
#include <math.h>

/* Row i's start (mrec_uk_start) at column col, as mrec_gemm_prologue forms it: beta * C, then + bias. */
static inline __attribute__((always_inline)) __m512 start_at(const mrec_uk_start *s, const float *ci, int i, int col,
                                                          __mmask16 mask) {
    if (s->row_bias && s->beta == 0.0f) return _mm512_set1_ps(s->row_bias[i]);
    __m512 v = s->beta == 0.0f ? _mm512_setzero_ps() : _mm512_mul_ps(_mm512_set1_ps(s->beta), _mm512_maskz_loadu_ps(mask, ci));
    if (s->row_bias) return _mm512_add_ps(v, _mm512_set1_ps(s->row_bias[i]));
    return s->bias ? _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, s->bias + col)) : v;
}

/* Row i's start at column col, one value: start_at's arithmetic (a product and a sum, each rounded) */
static inline float start_one(const mrec_uk_start *s, const float *cij, int i, int col) {
    if (s->row_bias && s->beta == 0.0f) return s->row_bias[i];
    float v = s->beta == 0.0f ? 0.0f : s->beta * *cij;
    if (s->row_bias) return v + s->row_bias[i];
    return s->bias ? v + s->bias[col] : v;
}

/* Column j of C's corner from its sums over the rows (sum[i], i < m), with the arithmetic of the vector
 * store below, a value at a time; out of line, as the tiles that have single columns are a row's last */
static __attribute__((noinline)) void store_column(float *c, int ldc, const float *sum, float alpha, int m, int j, int flags,
                                                   const mrec_uk_start *start) {
    for (int i = 0; i < m; i++) {
        float *cij = c + (size_t)i * ldc + j;
        float out = start ? fmaf(alpha, sum[i], start_one(start, cij, i, j))
                    : flags & MREC_UK_OVERWRITE ? alpha * sum[i] : fmaf(alpha, sum[i], *cij);
        *cij = flags & MREC_UK_RELU ? (out > 0.0f ? out : 0.0f) : out; /* NaN as 0, as the vectors' max */
    }
}

/* A packed (a[k * AS + i], panels AS rows wide), or, with rows, read in place (rows[i][k]). MR rows are
 * summed (at least m): a short last panel runs fewer rows, not the whole width over padding. NV vectors of
 * B's columns, then, with TC (packed A only), the next TC columns one at a time: a column's sums are a vector
 * over the rows, A's panel row times one of B's values. A tile 81 columns wide (a 9 x 9 plane) ran its last
 * 17 as a second whole vector; now one vector and a column. Each sum adds the same products in the same
 * order either way (a product commutes, and each is one rounding in an FMA): the same bits. */
static inline __attribute__((always_inline)) void ukernel(const int MR, const int AS, const int NV, const int TC, int kc,
                                                         const float *a, const float *const *rows, const float *b, float *c,
                                                         int ldc, float alpha, int m, int n, int flags,
                                                         const mrec_uk_start *start) {
    const int NR = AS == MREC_UK_AVX512_MR ? MREC_UK_AVX512_NR : MREC_UK_AVX512_8_NR;
    __m512 acc[12][3], col[4];
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    for (int t = 0; t < TC; t++) col[t] = _mm512_setzero_ps();
    /* Touch all of C's corner now so its lines arrive while the loop runs. */
    for (int i = 0; i < m; i++) {
        const float *ci = c + (size_t)i * ldc;
        for (int v = 0; v < NV; v++) _mm_prefetch((const char *)(ci + 16 * v), _MM_HINT_T0);
        _mm_prefetch((const char *)(ci + n - 1), _MM_HINT_T0);
    }
    for (int k = 0; k < kc; k++) {
        __m512 bv[3];
        for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + k * NR + 16 * v);
        /* B's panel 16 rows ahead: a weight packed at load streams from L3, and the hardware prefetcher
         * stops at each 4 KB page (3-5 % at ViT-B/16's shapes) */
        for (int v = 0; v < NV + (TC > 0); v++) _mm_prefetch((const char *)(b + (k + 16) * NR + 16 * v), _MM_HINT_T0);
        if (TC) {
            /* the panel row's AS values (8 or 12) by plain loads: with a masked load the compiler kept the
             * sums above in memory, stored on every step */
            __m512 av = _mm512_zextps256_ps512(_mm256_loadu_ps(a + k * AS));
            if (AS > 8) av = _mm512_insertf32x4(av, _mm_loadu_ps(a + k * AS + 8), 2);
            for (int t = 0; t < TC; t++) col[t] = _mm512_fmadd_ps(av, _mm512_set1_ps(b[k * NR + 16 * NV + t]), col[t]);
        }
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(rows ? rows[i][k] : a[k * AS + i]);
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
    }
    __m512 va = _mm512_set1_ps(alpha);
    for (int v = 0; v < NV; v++) {
        /* Partial width: masked loads and stores touch only the valid columns. */
        int cols = n - 16 * v;
        __mmask16 mask = cols >= 16 ? (__mmask16)0xFFFF : cols <= 0 ? 0 : (__mmask16)((1u << cols) - 1);
        if (!mask) break;
        for (int i = 0; i < (m < MR ? m : MR); i++) { /* m <= MR: said so, the compiler sees no sum unset */
            float *ci = c + (size_t)i * ldc + 16 * v;
            __m512 out = start                      ? _mm512_fmadd_ps(va, acc[i][v], start_at(start, ci, i, 16 * v, mask))
                         : flags & MREC_UK_OVERWRITE ? _mm512_mul_ps(va, acc[i][v])
                                                     : _mm512_fmadd_ps(va, acc[i][v], _mm512_maskz_loadu_ps(mask, ci));
            if (flags & MREC_UK_RELU) out = _mm512_max_ps(out, _mm512_setzero_ps()); /* the second operand where one is NaN */
            if (mask == 0xFFFF) _mm512_storeu_ps(ci, out);
            else _mm512_mask_storeu_ps(ci, mask, out);
        }
    }
    _Alignas(64) float sum[4][16];
#pragma GCC unroll 4
    for (int t = 0; t < TC; t++) _mm512_store_ps(sum[t], col[t]); /* unrolled: col indexed by a variable lives in memory */
    for (int t = 0; t < TC && 16 * NV + t < n; t++) store_column(c, ldc, sum[t], alpha, m, 16 * NV + t, flags, start);
}

/* The row count of the sweep, from m: a compile-time constant in each branch. Each row of C sums
 * its products in the same order whatever MR is, so the bits do not depend on the branch taken. */
#define BY_ROWS(FULL, m, call)                                                                                           \
    do {                                                                                                               \
        if ((m) <= 2) call(2);                                                                                         \
        else if ((m) <= 4) call(4);                                                                                    \
        else if ((m) <= 6 && (FULL) > 6) call(6);                                                                      \
        else if ((m) <= 8 && (FULL) > 8) call(8);                                                                      \
        else if ((m) <= 10 && (FULL) > 10) call(10);                                                                   \
        else call(FULL);                                                                                               \
    } while (0)

/* A tile n wide as NV vectors of B's columns and TC single ones: n % 16 of 1 to 4 as columns (TC 1, or 4 for
 * 2 to 4: the panel's columns past n are zeros, their sums never stored), more as a masked last vector. */
static inline int tile_vectors(int n, int *tc) {
    *tc = n % 16 == 1 ? 1 : n % 16 >= 2 && n % 16 <= 4 ? 4 : 0;
    return n / 16 + (n % 16 > 4);
}

/* The sweeps: over a packed A, NV vectors and TC columns; over A in place (rows), whole tiles */
#define PACKED(R, AS, NV, TC) ukernel(R, AS, NV, TC, kc, a, NULL, b, c, ldc, alpha, m, n, flags, start)
#define PACKED_12(R) PACKED(R, MREC_UK_AVX512_MR, MREC_UK_AVX512_NR / 16, 0)
#define PACKED_8(R) PACKED(R, MREC_UK_AVX512_8_MR, MREC_UK_AVX512_8_NR / 16, 0)
#define IN_PLACE_12(R) ukernel(R, MREC_UK_AVX512_MR, MREC_UK_AVX512_NR / 16, 0, kc, NULL, a, b, c, ldc, alpha, m, n, flags, start)
#define IN_PLACE_8(R) ukernel(R, MREC_UK_AVX512_8_MR, MREC_UK_AVX512_8_NR / 16, 0, kc, NULL, a, b, c, ldc, alpha, m, n, flags, start)

/* One function per (panel, NV, TC) (all of them in one function, the compiler kept some sweeps' sums in
 * memory, stored on every step of the loop over k). A tile of the full width has its row counts (BY_ROWS); a
 * narrower one, the last of a row of tiles, sums all the panel's rows (those past m are not stored). */
#define SWEEPS(NAME, AS, NV, TC)                                                                                       \
    static __attribute__((noinline)) void NAME(int kc, const float *a, const float *b, float *c, int ldc, float alpha,  \
                                               int m, int n, int flags, const mrec_uk_start *start) {                  \
        PACKED(AS, AS, NV, TC);                                                                                        \
    }
SWEEPS(k12_0_1, MREC_UK_AVX512_MR, 0, 1)
SWEEPS(k12_1_1, MREC_UK_AVX512_MR, 1, 1)
SWEEPS(k12_0_4, MREC_UK_AVX512_MR, 0, 4)
SWEEPS(k12_1_4, MREC_UK_AVX512_MR, 1, 4)
SWEEPS(k12_1_0, MREC_UK_AVX512_MR, 1, 0)
SWEEPS(k8_0_1, MREC_UK_AVX512_8_MR, 0, 1)
SWEEPS(k8_1_1, MREC_UK_AVX512_8_MR, 1, 1)
SWEEPS(k8_2_1, MREC_UK_AVX512_8_MR, 2, 1)
SWEEPS(k8_0_4, MREC_UK_AVX512_8_MR, 0, 4)
SWEEPS(k8_1_4, MREC_UK_AVX512_8_MR, 1, 4)
SWEEPS(k8_2_4, MREC_UK_AVX512_8_MR, 2, 4)
SWEEPS(k8_1_0, MREC_UK_AVX512_8_MR, 1, 0)
SWEEPS(k8_2_0, MREC_UK_AVX512_8_MR, 2, 0)
#undef SWEEPS

static __attribute__((noinline)) void k12_2_0(int kc, const float *a, const float *b, float *c, int ldc, float alpha, int m,
                                              int n, int flags, const mrec_uk_start *start) {
    BY_ROWS(MREC_UK_AVX512_MR, m, PACKED_12);
}

static __attribute__((noinline)) void k8_3_0(int kc, const float *a, const float *b, float *c, int ldc, float alpha, int m,
                                             int n, int flags, const mrec_uk_start *start) {
    BY_ROWS(MREC_UK_AVX512_8_MR, m, PACKED_8);
}

void mrec_ukernel_avx512(int kc, const float *a, const float *b, float *c, int ldc, float alpha, int m, int n,
                         int flags, const mrec_uk_start *start) {
    int tc, nv = tile_vectors(n, &tc);
    mrec_ukernel_fn k = tc == 1 ? (nv ? k12_1_1 : k12_0_1) : tc ? (nv ? k12_1_4 : k12_0_4) : nv <= 1 ? k12_1_0 : k12_2_0;
    k(kc, a, b, c, ldc, alpha, m, n, flags, start);
}

void mrec_ukernel_avx512_rows(int kc, const float *const *a, const float *b, float *c, int ldc, float alpha, int m, int n,
                              int flags, const mrec_uk_start *start) {
    BY_ROWS(MREC_UK_AVX512_MR, m, IN_PLACE_12);
}

void mrec_ukernel_avx512_8x48(int kc, const float *a, const float *b, float *c, int ldc, float alpha, int m, int n,
                              int flags, const mrec_uk_start *start) {
    int tc, nv = tile_vectors(n, &tc);
    static const mrec_ukernel_fn one_col[3] = {k8_0_1, k8_1_1, k8_2_1}, with_cols[3] = {k8_0_4, k8_1_4, k8_2_4},
                                 vectors[4] = {k8_1_0, k8_1_0, k8_2_0, k8_3_0};
    (tc == 1 ? one_col : tc ? with_cols : vectors)[nv](kc, a, b, c, ldc, alpha, m, n, flags, start);
}

void mrec_ukernel_avx512_8x48_rows(int kc, const float *const *a, const float *b, float *c, int ldc, float alpha, int m, int n,
                                   int flags, const mrec_uk_start *start) {
    BY_ROWS(MREC_UK_AVX512_8_MR, m, IN_PLACE_8);
}
#undef PACKED
#undef PACKED_12
#undef PACKED_8
#undef IN_PLACE_12
#undef IN_PLACE_8

void mrec_pack_bt_avx512(float *dst, const float *src, int ldb, int kc, int cols, int NR) {
    int j = 0;
    for (; j + 16 <= cols; j += 16) {
        int k = 0;
        for (; k + 16 <= kc; k += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (size_t)(j + i) * ldb + k);
            transpose16(r);
            for (int c = 0; c < 16; c++) _mm512_storeu_ps(dst + (size_t)(k + c) * NR + j, r[c]);
        }
        for (; k < kc; k++)
            for (int i = 0; i < 16; i++) dst[(size_t)k * NR + j + i] = src[(size_t)(j + i) * ldb + k];
    }
    for (int k = 0; j < NR && k < kc; k++)
        for (int i = j; i < NR; i++) dst[(size_t)k * NR + i] = i < cols ? src[(size_t)i * ldb + k] : 0.0f;
}

void mrec_pack_a_avx512(float *dst, const float *src, int lda, const int32_t *idx, int kc, int rows, int MR) {
    __mmask16 keep = (__mmask16)((1u << MR) - 1);
    const float *row[16];
    for (int i = 0; i < rows; i++) row[i] = src + (size_t)(idx ? idx[i] : i) * lda;
    int k = 0;
    for (; k + 16 <= kc; k += 16) {
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_loadu_ps(row[i] + k) : _mm512_setzero_ps();
        transpose16(r);
        for (int c = 0; c < 16; c++) _mm512_mask_storeu_ps(dst + (size_t)(k + c) * MR, keep, r[c]);
    }
    for (; k < kc; k++)
        for (int i = 0; i < MR; i++) dst[(size_t)k * MR + i] = i < rows ? row[i][k] : 0.0f;
}

/* The same panel of op(A) = A^T: row k of the panel is `rows` consecutive
 * values of A's row k (src steps lda per k), zero-padded to MR (<= 16). One
 * masked load and store per k, where a loop of `rows` copies cost most of
 * the time of a trans_a GEMM with a large K (InfoNCE's scores^T x rows). */
void mrec_pack_at_avx512(float *dst, const float *src, int lda, int kc, int rows, int MR) {
    __mmask16 load = (__mmask16)((1u << rows) - 1), keep = (__mmask16)((1u << MR) - 1);
    for (int k = 0; k < kc; k++)
        _mm512_mask_storeu_ps(dst + (size_t)k * MR, keep, _mm512_maskz_loadu_ps(load, src + (size_t)k * lda));
}
