/* train.c: the CPU side of what the recommenders' training and evaluation
 * need beside the dense ops (kernels/cuda/train.cu is the GPU side): BPR's
 * gathered dot products, the transposed index of a batch's ids, and the
 * evaluation mask. References and fast variants sit together here because
 * they are short; the fast ones split rows over the pool and compute each
 * row as the reference orders it, so the thread count changes no bit.
 */
#include "../mrec_kernels.h"
#include "parallel.h"

#include <math.h>
#include <string.h>

/* ---- gathered dot products ---- */

void mrec_gather_dot_ref(float *out, const float *A, const int32_t *ia, const float *B, const int32_t *ib, int n, int d) {
    for (int b = 0; b < n; b++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)A[(size_t)ia[b] * d + k] * B[(size_t)ib[b] * d + k];
        out[b] = (float)s;
    }
}

typedef struct {
    float *out;
    const float *A, *B;
    const int32_t *ia, *ib;
    int d;
} gather_dot_args;

static void gather_dot_range(void *arg, int64_t lo, int64_t hi) {
    const gather_dot_args *a = arg;
    for (int64_t b = lo; b < hi; b++) {
        const float *x = a->A + (size_t)a->ia[b] * a->d, *y = a->B + (size_t)a->ib[b] * a->d;
        float s = 0; /* in float, k in order: the sum the models' host loops make */
        for (int k = 0; k < a->d; k++) s += x[k] * y[k];
        a->out[b] = s;
    }
}

void mrec_gather_dot_cpu(float *out, const float *A, const int32_t *ia, const float *B, const int32_t *ib, int n, int d,
                         mrec_pool *pool) {
    gather_dot_args a = {out, A, B, ia, ib, d};
    mrec_parallel_range(pool, n, 1 + 4096 / (d > 0 ? d : 1), gather_dot_range, &a);
}

/* ---- the transposed index of a batch ---- */

mrec_status mrec_index_csr_cpu(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, mrec_pool *pool) {
    (void)pool; /* one pass over N and one over V: nothing worth a thread */
    for (int p = 0; p < N; p++)
        if (ids[p] < 0 || ids[p] >= V)
            return mrec_fail(MREC_ERR_ARG, "index: id %d at position %d is outside [0, %d)", ids[p], p, V);
    memset(row_ptr, 0, sizeof *row_ptr * ((size_t)V + 1));
    for (int p = 0; p < N; p++) row_ptr[ids[p] + 1]++;
    for (int v = 0; v < V; v++) row_ptr[v + 1] += row_ptr[v];
    /* positions in increasing order within each id: row_ptr[v] runs ahead as a fill pointer, then is restored */
    for (int p = 0; p < N; p++) pos[row_ptr[ids[p]]++] = p;
    for (int v = V; v > 0; v--) row_ptr[v] = row_ptr[v - 1];
    row_ptr[0] = 0;
    return MREC_OK;
}

/* ---- the evaluation mask ---- */

void mrec_mask_rows_ref(float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R, int C) {
    for (int r = 0; r < R; r++)
        for (int64_t p = row_ptr[u0 + r]; p < row_ptr[u0 + r + 1]; p++)
            if (col[p] >= 0 && col[p] < C) scores[(size_t)r * C + col[p]] = -INFINITY;
}

typedef struct {
    float *scores;
    const int64_t *row_ptr;
    const int32_t *col;
    int u0, C;
} mask_args;

static void mask_range(void *arg, int64_t lo, int64_t hi) {
    const mask_args *a = arg;
    mrec_mask_rows_ref(a->scores + (size_t)lo * a->C, a->row_ptr, a->col, a->u0 + (int)lo, (int)(hi - lo), a->C);
}

void mrec_mask_rows_cpu(float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R, int C,
                        mrec_pool *pool) {
    mask_args a = {scores, row_ptr, col, u0, C};
    mrec_parallel_range(pool, R, 64, mask_range, &a);
}
