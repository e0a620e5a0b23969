/* knn.c: item-item graphs from features, as FREEDOM builds its frozen one:
 * per modality, cosine similarities of every item with every other, the k
 * largest of each row kept with weight 1, normalized D^-1/2 A D^-1/2 (row
 * sums + 1e-7), then the modalities summed with their weights. Rows of the
 * similarity matrix are made a block at a time (one GEMM against all items)
 * and reduced to their top k at once, so memory stays O(items x k).
 */
#include "mrec_recsys.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 256

/* idx (n, k): each item's k most similar items, best first. */
static mrec_status knn(int32_t *idx, const float *x, int n, int dim, int k, mrec_pool *pool) {
    float *xn = malloc(sizeof(float) * (size_t)n * dim), *sim = malloc(sizeof(float) * (size_t)BLOCK * n);
    float *val = malloc(sizeof(float) * (size_t)BLOCK * k);
    if (!xn || !sim || !val) {
        free(xn), free(sim), free(val);
        return mrec_fail(MREC_ERR_NOMEM, "knn graph: %d items", n);
    }
    /* rows divided by their norms; a zero row stays zero (MMRec would divide by 0) */
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int d = 0; d < dim; d++) s += (double)x[(size_t)i * dim + d] * x[(size_t)i * dim + d];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int d = 0; d < dim; d++) xn[(size_t)i * dim + d] = x[(size_t)i * dim + d] * inv;
    }
    for (int r0 = 0; r0 < n; r0 += BLOCK) {
        int rows = n - r0 < BLOCK ? n - r0 : BLOCK;
        mrec_gemm_cpu(sim, xn + (size_t)r0 * dim, xn, NULL, 1, 0, 0, 1, rows, n, dim, dim, dim, n, pool);
        mrec_topk_rows_cpu(idx + (size_t)r0 * k, val, sim, rows, n, k, pool);
    }
    free(xn), free(sim), free(val);
    return MREC_OK;
}

static int by_col(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

mrec_status mrec_graph_knn(mrec_graph *g, const float *const *x, const int *dim, const float *weight, int M, int n, int k,
                           mrec_pool *pool) {
    memset(g, 0, sizeof *g);
    if (k < 1 || k > n) return mrec_fail(MREC_ERR_ARG, "knn graph: k = %d for %d items", k, n);
    int32_t *idx = malloc(sizeof *idx * (size_t)M * n * k);
    g->n_nodes = n;
    g->row_ptr = calloc((size_t)n + 1, sizeof *g->row_ptr);
    g->col = malloc(sizeof *g->col * (size_t)M * n * k);
    g->val = malloc(sizeof *g->val * (size_t)M * n * k);
    if (!idx || !g->row_ptr || !g->col || !g->val) {
        free(idx), mrec_graph_free(g);
        return mrec_fail(MREC_ERR_NOMEM, "knn graph: %d items x %d neighbours", n, k);
    }
    mrec_status st = MREC_OK;
    for (int m = 0; m < M && !st; m++) st = knn(idx + (size_t)m * n * k, x[m], n, dim[m], k, pool);
    /* every row has k ones, so each normalized entry is 1 / (k + 1e-7), computed as torch does in float */
    float inv = powf((float)k + 1e-7f, -0.5f), unit = inv * inv;
    int32_t *cols = malloc(sizeof *cols * (size_t)M * k);
    if (!st && !cols) st = mrec_fail(MREC_ERR_NOMEM, "knn graph");
    int64_t at = 0;
    for (int i = 0; !st && i < n; i++) {
        /* the union of the modalities' neighbours, each entry the weighted sum */
        int c = 0;
        for (int m = 0; m < M; m++) memcpy(cols + c, idx + ((size_t)m * n + i) * k, sizeof *cols * (size_t)k), c += k;
        qsort(cols, (size_t)c, sizeof *cols, by_col);
        for (int a = 0; a < c; a++) {
            if (a > 0 && cols[a] == cols[a - 1]) continue;
            float v = 0;
            for (int m = 0; m < M; m++)
                for (int t = 0; t < k; t++)
                    if (idx[((size_t)m * n + i) * k + t] == cols[a]) v += weight[m] * unit;
            g->col[at] = cols[a], g->val[at] = v, at++;
        }
        g->row_ptr[i + 1] = at;
    }
    free(cols), free(idx);
    if (st) mrec_graph_free(g);
    return st;
}
