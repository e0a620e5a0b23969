/* graph.c: the normalized bipartite adjacency of LightGCN / NGCF. */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

mrec_status mrec_graph_from_pairs(mrec_graph *g, int U, int I, const int32_t *pu, const int32_t *pi, int64_t nnz) {
    memset(g, 0, sizeof *g);
    int N = U + I;
    g->n_nodes = N;
    g->row_ptr = calloc((size_t)N + 1, sizeof *g->row_ptr);
    g->col = malloc(sizeof *g->col * (size_t)(2 * nnz + 1));
    g->val = malloc(sizeof *g->val * (size_t)(2 * nnz + 1));
    double *inv_sqrt = malloc(sizeof *inv_sqrt * (size_t)(N + 1));
    int64_t *fill = calloc((size_t)N + 1, sizeof *fill);
    if (!g->row_ptr || !g->col || !g->val || !inv_sqrt || !fill) {
        free(inv_sqrt), free(fill), mrec_graph_free(g);
        return mrec_fail(MREC_ERR_NOMEM, "graph of %d nodes and %lld edges", N, (long long)(2 * nnz));
    }
    /* degrees of users and items over the given pairs */
    for (int64_t e = 0; e < nnz; e++) g->row_ptr[pu[e] + 1]++, g->row_ptr[U + pi[e] + 1]++;
    for (int n = 0; n < N; n++) inv_sqrt[n] = pow((double)g->row_ptr[n + 1] + 1e-7, -0.5);
    for (int n = 0; n < N; n++) g->row_ptr[n + 1] += g->row_ptr[n];
    /* pairs in user order give sorted item rows; user rows keep the pairs' order */
    for (int64_t e = 0; e < nnz; e++) {
        int u = pu[e], i = U + pi[e];
        int64_t a = g->row_ptr[u] + fill[u]++, b = g->row_ptr[i] + fill[i]++;
        /* scipy computes D * A * D in double; torch then stores float */
        float w = (float)(inv_sqrt[u] * inv_sqrt[i]);
        g->col[a] = i, g->val[a] = w;
        g->col[b] = u, g->val[b] = w;
    }
    free(inv_sqrt), free(fill);
    return MREC_OK;
}

mrec_status mrec_graph_normalized(mrec_graph *g, const mrec_user_items *train) {
    int U = train->n_rows;
    int64_t nnz = train->row_ptr[U];
    int32_t *pu = malloc(sizeof *pu * (size_t)(nnz + 1));
    if (!pu) return mrec_fail(MREC_ERR_NOMEM, "graph of %lld edges", (long long)nnz);
    for (int u = 0; u < U; u++)
        for (int64_t e = train->row_ptr[u]; e < train->row_ptr[u + 1]; e++) pu[e] = u;
    mrec_status st = mrec_graph_from_pairs(g, U, train->n_cols, pu, train->col, nnz);
    free(pu);
    return st;
}

void mrec_graph_free(mrec_graph *g) {
    free(g->row_ptr), free(g->col), free(g->val);
    memset(g, 0, sizeof *g);
}

mrec_status mrec_graph_mean_self(mrec_graph *g, const mrec_user_items *train) {
    /* Start from the bipartite pattern, add the diagonal, divide rows by their sums. */
    mrec_graph a;
    mrec_status st = mrec_graph_normalized(&a, train);
    if (st) return st;
    int N = a.n_nodes;
    memset(g, 0, sizeof *g);
    g->n_nodes = N;
    g->row_ptr = calloc((size_t)N + 1, sizeof *g->row_ptr);
    g->col = malloc(sizeof *g->col * (size_t)(a.row_ptr[N] + N));
    g->val = malloc(sizeof *g->val * (size_t)(a.row_ptr[N] + N));
    if (!g->row_ptr || !g->col || !g->val) {
        mrec_graph_free(&a), mrec_graph_free(g);
        return mrec_fail(MREC_ERR_NOMEM, "graph with self-loops");
    }
    int64_t w = 0;
    for (int n = 0; n < N; n++) {
        int64_t lo = a.row_ptr[n], hi = a.row_ptr[n + 1];
        double inv = 1.0 / (double)(hi - lo + 1); /* neighbours plus the node itself */
        int self_done = 0;
        for (int64_t e = lo; e <= hi; e++) {
            /* the diagonal entry goes in column order */
            if (!self_done && (e == hi || a.col[e] > n)) {
                g->col[w] = n, g->val[w] = (float)inv, w++;
                self_done = 1;
            }
            if (e < hi) g->col[w] = a.col[e], g->val[w] = (float)inv, w++;
        }
        g->row_ptr[n + 1] = w;
    }
    mrec_graph_free(&a);
    return MREC_OK;
}

mrec_status mrec_csr_layer_mean(float *final, const float *ego, const mrec_csr *adj, int layers, int d, float *a, float *b,
                                mrec_context *ctx) {
    if (adj->device != ctx->device)
        return mrec_fail(MREC_ERR_DEVICE, "layer mean: the graph is in %s memory, the context runs on %s",
                         mrec_device_name(adj->device), mrec_device_name(ctx->device));
    int64_t n = (int64_t)adj->n_rows * d;
    /* final = ego + layer 1 (+ layer 2 ...): without layers a copy (x * 1 is exact on any device) */
    mrec_status st = layers < 1 ? mrec_scale(ctx, final, ego, 1.0f, n) : MREC_OK;
    /* each layer added to the sum as the product makes it, the last one scaled too: the bits of a product, an add
     * and, at the end, a scaling, without their passes over the whole table */
    const float *prev = ego;
    for (int k = 1; k <= layers && !st; k++) {
        float *next = (k % 2) ? a : b;
        st = mrec_spmm_sum(ctx, next, final, k == 1 ? ego : final, k == layers ? 1.0f / (layers + 1) : 1.0f, adj, prev, d, 0);
        prev = next;
    }
    return st;
}

mrec_status mrec_csr_layer_mean_back(float *dego, const float *dfinal, const mrec_csr *adj, int symmetric, int layers, int d,
                                     float *a, float *b, mrec_context *ctx) {
    if (adj->device != ctx->device)
        return mrec_fail(MREC_ERR_DEVICE, "layer mean: the graph is in %s memory, the context runs on %s",
                         mrec_device_name(adj->device), mrec_device_name(ctx->device));
    int64_t n = (int64_t)adj->n_rows * d;
    mrec_status st = layers < 1 ? mrec_scale(ctx, dego, dfinal, 1.0f, n) : MREC_OK;
    const float *prev = dfinal;
    for (int k = 1; k <= layers && !st; k++) {
        float *next = (k % 2) ? a : b;
        st = mrec_spmm_sum(ctx, next, dego, k == 1 ? dfinal : dego, k == layers ? 1.0f / (layers + 1) : 1.0f, adj, prev, d,
                           !symmetric);
        prev = next;
    }
    return st;
}

mrec_status mrec_graph_layer_mean(float *final, const float *ego, const mrec_graph *g, int layers, int d, float *a, float *b,
                                  mrec_context *ctx) {
    mrec_csr adj = mrec_graph_csr(g);
    return mrec_csr_layer_mean(final, ego, &adj, layers, d, a, b, ctx);
}

mrec_status mrec_graph_layer_mean_back(float *dego, const float *dfinal, const mrec_graph *g, int symmetric, int layers,
                                       int d, float *a, float *b, mrec_context *ctx) {
    mrec_csr adj = mrec_graph_csr(g);
    return mrec_csr_layer_mean_back(dego, dfinal, &adj, symmetric, layers, d, a, b, ctx);
}

mrec_status mrec_graph_transpose(mrec_graph *out, const mrec_graph *g) {
    int N = g->n_nodes;
    int64_t nnz = g->row_ptr[N];
    memset(out, 0, sizeof *out);
    out->n_nodes = N;
    out->row_ptr = calloc((size_t)N + 1, sizeof *out->row_ptr);
    out->col = malloc(sizeof *out->col * (size_t)(nnz + 1)), out->val = malloc(sizeof *out->val * (size_t)(nnz + 1));
    int64_t *fill = malloc(sizeof *fill * ((size_t)N + 1));
    if (!out->row_ptr || !out->col || !out->val || !fill) {
        free(fill), mrec_graph_free(out);
        return mrec_fail(MREC_ERR_NOMEM, "graph: transposing %lld entries", (long long)nnz);
    }
    /* a counting sort by column; rows are visited in order, so each new row's columns come out sorted */
    for (int64_t e = 0; e < nnz; e++) out->row_ptr[g->col[e] + 1]++;
    for (int c = 0; c < N; c++) out->row_ptr[c + 1] += out->row_ptr[c];
    memcpy(fill, out->row_ptr, sizeof *fill * ((size_t)N + 1));
    for (int r = 0; r < N; r++)
        for (int64_t e = g->row_ptr[r]; e < g->row_ptr[r + 1]; e++) {
            int64_t at = fill[g->col[e]]++;
            out->col[at] = r, out->val[at] = g->val[e];
        }
    free(fill);
    return MREC_OK;
}
