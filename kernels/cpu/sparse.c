/* sparse.c: fast CPU sparse (CSR) x dense products for graph recommenders.
 *
 * spmm parallelizes over rows of A: each output row is a weighted sum of X
 * rows, accumulated in edge order. spmm_t (A^T X) builds A^T as CSR first
 * (a stable counting sort by column, O(nnz) and a few MB) and runs the same
 * row loop over it: each output row then sums its entries in A's edge order,
 * the order a scatter would add them in, so the bits are a scatter's, but
 * the sums stay in registers and the rows split over threads. Where memory
 * for A^T runs out, threads scatter their own columns of the feature
 * dimension instead (race-free, same order, slower).
 */
#include "../mrec_kernels.h"
#include "parallel.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    float *out;
    const int64_t *row_ptr;
    const int32_t *col;
    const float *val, *X;
    int R, Cc, D, avx512;
    float *sum; /* mrec_spmm_sum_cpu: sum = (sum_in + out) * scale after each range of rows, or NULL */
    const float *sum_in;
    float scale;
} spmm_args;

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* Columns [d0, d0 + 16 NV) of rows [lo, hi) (fewer at the row's end) summed in registers, edge by edge:
 * the loop below loads and stores its row for every edge. The same products and adds, so the same bits. */
static inline __attribute__((always_inline, target("avx512f"))) void spmm_rows_regs(const spmm_args *a, int64_t lo, int64_t hi,
                                                                                    int d0, const int NV) {
    int D = a->D, w = D - d0 < 16 * NV ? D - d0 : 16 * NV;
    __mmask16 last = (__mmask16)((1u << (w - 16 * (NV - 1))) - 1);
    for (int64_t r = lo; r < hi; r++) {
        __m512 acc[8];
        for (int i = 0; i < NV; i++) acc[i] = _mm512_setzero_ps();
        for (int64_t e = a->row_ptr[r]; e < a->row_ptr[r + 1]; e++) {
            __m512 v = _mm512_set1_ps(a->val ? a->val[e] : 1.0f);
            const float *x = a->X + (int64_t)a->col[e] * D + d0;
            /* the rows are scattered over X: fetch the one 8 edges ahead (past the row's end, the next row's) */
            if (e + 8 < a->row_ptr[hi]) {
                const char *ahead = (const char *)(a->X + (int64_t)a->col[e + 8] * D + d0);
                for (int i = 0; i < NV; i++) _mm_prefetch(ahead + 64 * i, _MM_HINT_T0);
            }
            for (int i = 0; i < NV; i++)
                acc[i] = _mm512_add_ps(acc[i], _mm512_mul_ps(v, _mm512_maskz_loadu_ps(i < NV - 1 ? (__mmask16)0xFFFF : last, x + 16 * i)));
        }
        float *y = a->out + r * D + d0;
        for (int i = 0; i < NV; i++) _mm512_mask_storeu_ps(y + 16 * i, i < NV - 1 ? (__mmask16)0xFFFF : last, acc[i]);
    }
}

/* Rows [lo, hi), columns from d0, in registers of nv vectors (1 to 8; more take 8). */
__attribute__((target("avx512f"))) static void spmm_strip(const spmm_args *a, int64_t lo, int64_t hi, int d0, int nv) {
    switch (nv) {
    case 1: spmm_rows_regs(a, lo, hi, d0, 1); break;
    case 2: spmm_rows_regs(a, lo, hi, d0, 2); break;
    case 3: spmm_rows_regs(a, lo, hi, d0, 3); break;
    case 4: spmm_rows_regs(a, lo, hi, d0, 4); break;
    case 5: spmm_rows_regs(a, lo, hi, d0, 5); break;
    case 6: spmm_rows_regs(a, lo, hi, d0, 6); break;
    case 7: spmm_rows_regs(a, lo, hi, d0, 7); break;
    default: spmm_rows_regs(a, lo, hi, d0, 8); break;
    }
}

/* Up to 128 columns a row at once; wider rows a strip of 128 at a time, each strip through the row's edges
 * (Baby's 384-wide text rows: 14 -> 9 ms a product on two threads), the row's X rows still in cache for
 * the next strip. */
__attribute__((target("avx512f"))) static void spmm_range_avx512(const spmm_args *a, int64_t lo, int64_t hi) {
    if (a->D <= 128) {
        spmm_strip(a, lo, hi, 0, (a->D + 15) / 16);
        return;
    }
    for (int64_t r = lo; r < hi; r++)
        for (int d0 = 0; d0 < a->D; d0 += 128) spmm_strip(a, r, r + 1, d0, (a->D - d0 + 15) / 16); /* 8 and more: 8 */
}
#endif

MREC_VECTOR_CLONES static void spmm_rows(const spmm_args *a, int64_t lo, int64_t hi) {
    int D = a->D;
    for (int64_t r = lo; r < hi; r++) {
        /* out and X never overlap: restrict lets the row update vectorize */
        float *restrict y = a->out + r * D;
        for (int d = 0; d < D; d++) y[d] = 0.0f;
        for (int64_t e = a->row_ptr[r]; e < a->row_ptr[r + 1]; e++) {
            float v = a->val ? a->val[e] : 1.0f;
            const float *restrict x = a->X + (int64_t)a->col[e] * D;
            for (int d = 0; d < D; d++) y[d] += v * x[d];
        }
    }
}

/* The layer sum of rows [lo, hi): their out rows are still in cache. (s + o) * scale, two roundings, as an add
 * and then a scaling. */
MREC_VECTOR_CLONES static void sum_rows(const spmm_args *a, int64_t lo, int64_t hi) {
    const float *restrict o = a->out + lo * a->D, *s_in = a->sum_in + lo * a->D;
    float *s = a->sum + lo * a->D, scale = a->scale;
    for (int64_t i = 0; i < (hi - lo) * a->D; i++) s[i] = (s_in[i] + o[i]) * scale;
}

static void spmm_range(void *arg, int64_t lo, int64_t hi) {
    const spmm_args *a = arg;
#if defined(__x86_64__) && defined(__GNUC__)
    if (a->avx512) spmm_range_avx512(a, lo, hi);
    else
#endif
        spmm_rows(a, lo, hi);
    if (a->sum) sum_rows(a, lo, hi);
}

void mrec_spmm_sum_cpu(float *out, float *sum, const float *sum_in, float scale, const int64_t *row_ptr, const int32_t *col,
                       const float *val, const float *X, int R, int Cc, int D, mrec_pool *pool) {
    spmm_args a = {.out = out, .row_ptr = row_ptr, .col = col, .val = val, .X = X, .R = R, .Cc = Cc, .D = D,
                   .sum = sum, .sum_in = sum_in, .scale = scale};
    int64_t nnz = row_ptr[R];
    a.avx512 = D > 0 && mrec_pool_simd(pool) >= MREC_SIMD_AVX512;
    mrec_parallel_range(pool, R, R > 0 && nnz > 0 ? 1 + (int64_t)R * 4096 / (nnz * (D > 0 ? D : 1)) : 1, spmm_range, &a);
}

void mrec_spmm_cpu(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                   const float *X, int R, int Cc, int D, mrec_pool *pool) {
    mrec_spmm_sum_cpu(out, NULL, NULL, 1.0f, row_ptr, col, val, X, R, Cc, D, pool);
}

/* Columns [lo, hi) of the feature dimension. */
MREC_VECTOR_CLONES static void spmm_t_cols(void *arg, int64_t lo, int64_t hi) {
    spmm_args *a = arg;
    int D = a->D;
    for (int c = 0; c < a->Cc; c++)
        for (int64_t d = lo; d < hi; d++) a->out[(int64_t)c * D + d] = 0.0f;
    for (int r = 0; r < a->R; r++) {
        const float *restrict x = a->X + (int64_t)r * D;
        for (int64_t e = a->row_ptr[r]; e < a->row_ptr[r + 1]; e++) {
            float v = a->val ? a->val[e] : 1.0f;
            float *restrict y = a->out + (int64_t)a->col[e] * D;
            for (int64_t d = lo; d < hi; d++) y[d] += v * x[d];
        }
    }
}

void mrec_spmm_t_cpu(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                     const float *X, int R, int Cc, int D, mrec_pool *pool) {
    int64_t nnz = row_ptr[R];
    int64_t *t_ptr = calloc((size_t)Cc + 1, sizeof *t_ptr), *at = malloc(sizeof *at * ((size_t)Cc + 1));
    int32_t *t_col = malloc(sizeof *t_col * (size_t)(nnz + 1));
    float *t_val = val ? malloc(sizeof *t_val * (size_t)(nnz + 1)) : NULL;
    if (t_ptr && at && t_col && (!val || t_val)) {
        for (int64_t e = 0; e < nnz; e++) t_ptr[col[e] + 1]++;
        for (int c = 0; c < Cc; c++) t_ptr[c + 1] += t_ptr[c];
        memcpy(at, t_ptr, sizeof *at * ((size_t)Cc + 1));
        for (int r = 0; r < R; r++)
            for (int64_t e = row_ptr[r]; e < row_ptr[r + 1]; e++) {
                int64_t p = at[col[e]]++;
                t_col[p] = r;
                if (val) t_val[p] = val[e];
            }
        mrec_spmm_cpu(out, t_ptr, t_col, t_val, X, Cc, R, D, pool);
    } else {
        spmm_args a = {.out = out, .row_ptr = row_ptr, .col = col, .val = val, .X = X, .R = R, .Cc = Cc, .D = D};
        /* At least 16 columns a task, so each scatter touches whole cache lines. */
        mrec_parallel_range(pool, D, 16, spmm_t_cols, &a);
    }
    free(t_ptr), free(at), free(t_col), free(t_val);
}

mrec_status mrec_csr_validate(const mrec_csr *a) {
    if (a->n_rows < 0 || a->n_cols < 0 || !a->row_ptr)
        return mrec_fail(MREC_ERR_ARG, "csr: negative shape or no row pointers");
    if (a->row_ptr[0] != 0) return mrec_fail(MREC_ERR_FORMAT, "csr: row_ptr[0] is %lld, not 0", (long long)a->row_ptr[0]);
    for (int r = 0; r < a->n_rows; r++) {
        if (a->row_ptr[r + 1] < a->row_ptr[r])
            return mrec_fail(MREC_ERR_FORMAT, "csr: row_ptr decreases at row %d", r);
        for (int64_t e = a->row_ptr[r]; e < a->row_ptr[r + 1]; e++)
            if (a->col[e] < 0 || a->col[e] >= a->n_cols)
                return mrec_fail(MREC_ERR_FORMAT, "csr: row %d has column %d outside [0, %d)", r, a->col[e], a->n_cols);
    }
    return MREC_OK;
}
