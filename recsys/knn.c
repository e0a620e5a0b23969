/* knn.c: item-item graphs from features, as FREEDOM builds its frozen one:
 * per modality, cosine similarities of every item with every other, the k
 * largest of each row kept with weight 1, normalized D^-1/2 A D^-1/2 (row
 * sums + 1e-7), then the modalities summed with their weights. The
 * similarity matrix is made a block at a time, each block once for its rows
 * and its columns (it is symmetric), and reduced to the rows' top k as it
 * goes (mrec_gram_topk), so memory stays O(items x k). On a GPU context the
 * products run on the device, a block of rows at a time; the features and the
 * graph stay host memory either way.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include "../nn/mrec_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mrec_status mrec_knn_rows(int32_t *idx, float *out_val, const float *x, int n, int dim, int k, mrec_context *ctx) {
    /* x and the results are host memory on any context; the rows are made unit (a zero row stays zero, where
     * MMRec would divide by 0) and multiplied by the op, on a GPU context on the device, a block of the rows'
     * products made once for its rows and its columns */
    return mrec_gram_topk(ctx, idx, out_val, x, n, dim, k, 1);
}

static int by_col(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

mrec_status mrec_graph_knn(mrec_graph *g, const float *const *x, const int *dim, const float *weight, int M, int n, int k,
                           mrec_context *ctx) {
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
    /* the features and the graph are host memory, built once before training; a GPU context makes the
     * similarities on its device */
    mrec_status st = MREC_OK;
    for (int m = 0; m < M && !st; m++) st = mrec_knn_rows(idx + (size_t)m * n * k, NULL, x[m], n, dim[m], k, ctx);
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

/* ---- the cache ----------------------------------------------------------------
 * A graph depends on every feature value, k and the weights, so the file name
 * is a hash of all of them (MMRec names its cache by k alone, and reuses a
 * stale graph after the features change). File: magic, the 64-bit key, n,
 * nnz, a hash of the arrays, then row_ptr, col, val. */

#define CACHE_MAGIC 0x326e6e6b6365726dull /* "mreckn2" */

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = mrec_mix64(h ^ w);
    }
    uint64_t tail = 0;
    memcpy(&tail, b + i, n - i);
    return mrec_mix64(h ^ tail ^ ((uint64_t)(n - i) << 56));
}

/* The features, k, the weights and the device that builds the graph: a GPU's may keep another neighbour where two
 * similarities tie to rounding, so a run on one device never reads the other's graph. */
static uint64_t cache_key(const float *const *x, const int *dim, const float *weight, int M, int n, int k, mrec_device device) {
    int64_t head[4] = {M, n, k, device};
    uint64_t h = hash_bytes(0x6d726563ull, head, sizeof head);
    for (int m = 0; m < M; m++) {
        h = hash_bytes(h, &dim[m], sizeof dim[m]);
        h = hash_bytes(h, &weight[m], sizeof weight[m]);
        h = hash_bytes(h, x[m], sizeof(float) * (size_t)n * dim[m]);
    }
    return h;
}

static uint64_t payload_hash(const mrec_graph *g) {
    int n = g->n_nodes;
    int64_t nnz = g->row_ptr[n];
    uint64_t h = hash_bytes(1, g->row_ptr, sizeof *g->row_ptr * ((size_t)n + 1));
    h = hash_bytes(h, g->col, sizeof *g->col * (size_t)nnz);
    return hash_bytes(h, g->val, sizeof *g->val * (size_t)nnz);
}

static int cache_read(mrec_graph *g, const char *path, uint64_t key, int n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint64_t head[5];
    int ok = fread(head, sizeof head, 1, f) == 1 && head[0] == CACHE_MAGIC && head[1] == key && head[2] == (uint64_t)n &&
             head[3] <= (uint64_t)n * n;
    if (ok) {
        memset(g, 0, sizeof *g);
        g->n_nodes = n;
        g->row_ptr = malloc(sizeof *g->row_ptr * ((size_t)n + 1));
        g->col = malloc(sizeof *g->col * (size_t)(head[3] + 1)), g->val = malloc(sizeof *g->val * (size_t)(head[3] + 1));
        ok = g->row_ptr && g->col && g->val && fread(g->row_ptr, sizeof *g->row_ptr, (size_t)n + 1, f) == (size_t)n + 1 &&
             fread(g->col, sizeof *g->col, head[3], f) == head[3] && fread(g->val, sizeof *g->val, head[3], f) == head[3] &&
             g->row_ptr[0] == 0 && g->row_ptr[n] == (int64_t)head[3];
        for (int i = 0; ok && i < n; i++) ok = g->row_ptr[i] <= g->row_ptr[i + 1];
        for (uint64_t e = 0; ok && e < head[3]; e++) ok = g->col[e] >= 0 && g->col[e] < n;
        ok = ok && payload_hash(g) == head[4];
        if (!ok) mrec_graph_free(g);
    }
    fclose(f);
    return ok;
}

mrec_status mrec_graph_knn_cached(mrec_graph *g, const float *const *x, const int *dim, const float *weight, int M, int n, int k,
                                  const char *cache_dir, int *from_cache, mrec_context *ctx) {
    *from_cache = 0;
    if (!cache_dir) return mrec_graph_knn(g, x, dim, weight, M, n, k, ctx);
    uint64_t key = cache_key(x, dim, weight, M, n, k, ctx->device);
    char path[4096];
    snprintf(path, sizeof path, "%s/knn-%016llx.bin", cache_dir, (unsigned long long)key);
    if (cache_read(g, path, key, n)) return *from_cache = 1, MREC_OK;
    mrec_status st = mrec_graph_knn(g, x, dim, weight, M, n, k, ctx);
    if (st) return st;
    /* written through a temporary name, so a crash never leaves half a graph; a failure only costs the reuse */
    mrec_atomic_file af;
    uint64_t head[5] = {CACHE_MAGIC, key, (uint64_t)n, (uint64_t)g->row_ptr[n], payload_hash(g)};
    if (mrec_atomic_begin(&af, path) == MREC_OK) {
        mrec_status w = mrec_atomic_write(&af, head, sizeof head);
        if (!w) w = mrec_atomic_write(&af, g->row_ptr, sizeof *g->row_ptr * ((size_t)n + 1));
        if (!w) w = mrec_atomic_write(&af, g->col, sizeof *g->col * (size_t)head[3]);
        if (!w) w = mrec_atomic_write(&af, g->val, sizeof *g->val * (size_t)head[3]);
        if (!w) mrec_atomic_commit(&af);
        else mrec_atomic_abort(&af);
    }
    return MREC_OK;
}
