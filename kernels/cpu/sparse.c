/* sparse.c: fast CPU sparse (CSR) x dense products for graph recommenders.
 *
 * spmm parallelizes over rows of A: each output row is a weighted sum of X
 * rows, accumulated in edge order. spmm_t (A^T X) would need a scatter; to
 * stay race-free and deterministic without a transposed copy of A, threads
 * split the feature dimension instead, each scattering its own columns in
 * edge order. Callers that apply A^T often should build A^T once as CSR and
 * call spmm: that is faster still.
 */
#include "../mrec_kernels.h"
#include "parallel.h"

#include <string.h>

typedef struct {
    float *out;
    const int64_t *row_ptr;
    const int32_t *col;
    const float *val, *X;
    int R, Cc, D;
} spmm_args;

MREC_VECTOR_CLONES static void spmm_range(void *arg, int64_t lo, int64_t hi) {
    spmm_args *a = arg;
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

void mrec_spmm_cpu(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                   const float *X, int R, int Cc, int D, mrec_pool *pool) {
    spmm_args a = {out, row_ptr, col, val, X, R, Cc, D};
    int64_t nnz = row_ptr[R];
    int64_t rows_per_chunk = R > 0 && nnz > 0 ? 1 + (int64_t)R * 4096 / (nnz * (D > 0 ? D : 1)) : 1;
    mrec_parallel_range(pool, R, rows_per_chunk, spmm_range, &a);
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
    spmm_args a = {out, row_ptr, col, val, X, R, Cc, D};
    /* At least 16 columns a task, so each scatter touches whole cache lines. */
    mrec_parallel_range(pool, D, 16, spmm_t_cols, &a);
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
