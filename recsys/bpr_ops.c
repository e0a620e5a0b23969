/* bpr_ops.c: a BPR batch through the op entries, the step every model with
 * a GPU path takes where its context runs (see recsys_internal.h).
 *
 * Per batch: the ids go to the device once (u, then n_users + i, then
 * n_users + j: rows of one table of users then items), gathered dot products
 * give the scores and the squared norms, and the loss and its gradient are
 * computed beside them (mrec_bpr_batch_loss). The gradient rows are a
 * combination of each triple's three rows of T (mrec_bpr_rows_at), and the
 * batch's transposed index (mrec_index_csr) then adds each table row's
 * contributions in batch order, so repeated rows sum the same way on every
 * run and device. Nothing waits on the device: the ids are checked on the
 * host, and they go up through the context's pinned upload slots
 * (mrec_copy_to_device_staged), where a copy from pageable memory could
 * wait for the stream to drain. That host part (stage) comes apart from the
 * launches (gather, index), so that a model's launches can be one CUDA
 * graph replayed for every batch (mrec_model.stage and .launch).
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <stdlib.h>
#include <string.h>

/* Carves the device buffers from a (a measuring arena counts them). */
static void carve(mrec_bpr_ops *o, mrec_arena *a) {
    size_t c3 = 3 * (size_t)o->cap;
    o->ids = mrec_arena_alloc(a, sizeof(int32_t) * c3);
    o->dots = mrec_arena_alloc(a, sizeof(float) * 5 * (size_t)o->cap);
    o->mixed = mrec_arena_alloc(a, sizeof(float) * c3 * o->d);
    o->dxd = mrec_arena_alloc(a, sizeof(float) * (size_t)o->cap);
    o->coef = mrec_arena_alloc(a, sizeof(float) * 3);
    o->loss = mrec_arena_alloc(a, sizeof(double));
    o->idx_ptr = mrec_arena_alloc(a, sizeof(int64_t) * ((size_t)o->n_rows + 1));
    o->idx_pos = mrec_arena_alloc(a, sizeof(int32_t) * c3);
    o->work = o->work_bytes ? mrec_arena_alloc(a, o->work_bytes) : NULL;
}

/* Buffers for batches of up to cap triples on a table of n_rows x d. */
static mrec_status reserve(mrec_bpr_ops *o, mrec_context *ctx, int cap, int n_rows, int d) {
    if (o->h_ids && o->ctx == ctx && cap <= o->cap && n_rows == o->n_rows && d == o->d) return MREC_OK;
    mrec_bpr_ops_free(o);
    o->ctx = ctx, o->cap = cap, o->n_rows = n_rows, o->d = d;
    mrec_status st = mrec_index_csr_workspace_bytes(ctx, 3 * cap, n_rows, &o->work_bytes);
    mrec_arena measure = mrec_arena_measure();
    carve(o, &measure);
    if (!st) st = mrec_arena_reserve(&o->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        mrec_bpr_ops_free(o);
        return st;
    }
    carve(o, &o->mem);
    o->h_ids = malloc(sizeof(int32_t) * 3 * (size_t)cap);
    if (!o->h_ids) {
        mrec_bpr_ops_free(o);
        return mrec_fail(MREC_ERR_NOMEM, "bpr: host buffers for a batch of %d", cap);
    }
    return MREC_OK;
}

void mrec_bpr_ops_free(mrec_bpr_ops *o) {
    if (o->ctx) mrec_arena_release(&o->mem, o->ctx->cuda);
    free(o->h_ids);
    memset(o, 0, sizeof *o);
}

mrec_status mrec_bpr_ops_stage(mrec_bpr_ops *o, mrec_context *ctx, const int32_t *u, const int32_t *i, const int32_t *j, int n,
                               int n_users, int n_rows, int d) {
    if (n < 1) return mrec_fail(MREC_ERR_ARG, "bpr: an empty batch");
    mrec_status st = reserve(o, ctx, n, n_rows, d);
    if (st) return st;
    o->n = n;
    for (int b = 0; b < n; b++) o->h_ids[b] = u[b], o->h_ids[n + b] = n_users + i[b], o->h_ids[2 * n + b] = n_users + j[b];
    /* every id checked against the table here, before anything on the device reads a row */
    if ((st = mrec_ids_check(o->h_ids, 3 * n, n_rows))) return st;
    return mrec_copy_to_device_staged(ctx, o->ids, o->h_ids, sizeof(int32_t) * 3 * (size_t)n);
}

mrec_status mrec_bpr_ops_gather(mrec_bpr_ops *o, const float *F, const float *E) {
    mrec_context *ctx = o->ctx;
    int n = o->n, d = o->d;
    mrec_status st = mrec_index_csr_prechecked(ctx, o->idx_ptr, o->idx_pos, o->ids, 3 * n, o->n_rows, o->work, o->work_bytes);
    if (!st) st = mrec_gather_dot(ctx, o->dots, F, o->ids, F, o->ids + n, n, d);
    if (!st) st = mrec_gather_dot(ctx, o->dots + n, F, o->ids, F, o->ids + 2 * n, n, d);
    return st ? st : mrec_gather_dot(ctx, o->dots + 2 * n, E, o->ids, E, o->ids, 3 * n, d);
}

mrec_status mrec_bpr_ops_dots(mrec_bpr_ops *o, mrec_context *ctx, const float *F, const float *E, const int32_t *u,
                              const int32_t *i, const int32_t *j, int n, int n_users, int n_rows, int d) {
    mrec_status st = mrec_bpr_ops_stage(o, ctx, u, i, j, n, n_users, n_rows, d);
    return st ? st : mrec_bpr_ops_gather(o, F, E);
}

mrec_status mrec_bpr_ops_loss(mrec_bpr_ops *o, const mrec_bpr_spec *spec) {
    return mrec_bpr_batch_loss(o->ctx, o->dxd, o->coef, o->loss, o->dots, o->n, spec);
}

mrec_status mrec_bpr_ops_scatter_at(mrec_bpr_ops *o, float *out, const float *T, int with_dx, int coef_parts) {
    mrec_context *ctx = o->ctx;
    const float *coef = coef_parts ? o->coef : NULL;
    mrec_status st = mrec_bpr_rows_at(ctx, o->mixed, T, o->ids, with_dx ? o->dxd : NULL, coef, coef_parts, o->n, o->d);
    mrec_csr idx = {.n_rows = o->n_rows, .n_cols = 3 * o->n, .row_ptr = o->idx_ptr, .col = o->idx_pos, .device = ctx->device};
    return st ? st : mrec_spmm(ctx, out, &idx, o->mixed, o->d, 0);
}

/* ---- a batch's rows of one table ---- */

static void carve_rows(mrec_batch_rows *r, mrec_arena *a) {
    r->ids = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)r->cap);
    r->ptr = mrec_arena_alloc(a, sizeof(int64_t) * ((size_t)r->n_rows + 1));
    r->pos = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)r->cap);
    r->ones = mrec_arena_alloc(a, sizeof(float) * (size_t)r->cap);
    r->work = r->work_bytes ? mrec_arena_alloc(a, r->work_bytes) : NULL;
}

static mrec_status reserve_rows(mrec_batch_rows *r, mrec_context *ctx, int cap, int n_rows) {
    if (r->h_ids && r->ctx == ctx && cap <= r->cap && n_rows == r->n_rows) return MREC_OK;
    mrec_batch_rows_free(r);
    r->ctx = ctx, r->cap = cap, r->n_rows = n_rows;
    mrec_status st = mrec_index_csr_workspace_bytes(ctx, cap, n_rows, &r->work_bytes);
    mrec_arena measure = mrec_arena_measure();
    carve_rows(r, &measure);
    if (!st) st = mrec_arena_reserve(&r->mem, measure.peak, ctx->device, ctx->cuda);
    float *ones = malloc(sizeof(float) * (size_t)cap);
    r->h_ids = malloc(sizeof(int32_t) * (size_t)cap), r->h_iota = malloc(sizeof(int32_t) * (size_t)cap);
    if (!st && (!ones || !r->h_ids || !r->h_iota)) st = mrec_fail(MREC_ERR_NOMEM, "batch: host buffers for %d rows", cap);
    if (!st) {
        carve_rows(r, &r->mem);
        for (int p = 0; p < cap; p++) ones[p] = 1.0f, r->h_iota[p] = p;
        st = mrec_copy_to_device(ctx, r->ones, ones, sizeof(float) * (size_t)cap);
    }
    free(ones);
    if (st) mrec_batch_rows_free(r);
    return st;
}

mrec_status mrec_batch_rows_stage(mrec_batch_rows *r, mrec_context *ctx, int n_rows, int n_parts, const int32_t *const *part,
                                  const int *offset, int n) {
    if (n < 1 || n_parts < 1) return mrec_fail(MREC_ERR_ARG, "batch: an empty batch");
    mrec_status st = reserve_rows(r, ctx, n_parts * n, n_rows);
    if (st) return st;
    r->n = n_parts * n;
    for (int k = 0; k < n_parts; k++)
        for (int b = 0; b < n; b++) r->h_ids[k * n + b] = part[k][b] + offset[k];
    if ((st = mrec_ids_check(r->h_ids, r->n, n_rows))) return st;
    return mrec_copy_to_device_staged(ctx, r->ids, r->h_ids, sizeof(int32_t) * (size_t)r->n);
}

mrec_status mrec_batch_rows_index(mrec_batch_rows *r) {
    return mrec_index_csr_prechecked(r->ctx, r->ptr, r->pos, r->ids, r->n, r->n_rows, r->work, r->work_bytes);
}

mrec_status mrec_batch_rows_set(mrec_batch_rows *r, mrec_context *ctx, int n_rows, int n_parts, const int32_t *const *part,
                                const int *offset, int n) {
    mrec_status st = mrec_batch_rows_stage(r, ctx, n_rows, n_parts, part, offset, n);
    return st ? st : mrec_batch_rows_index(r);
}

mrec_status mrec_batch_rows_scatter(const mrec_batch_rows *r, float *out, const float *G, int D) {
    mrec_csr t = {.n_rows = r->n_rows, .n_cols = r->n, .row_ptr = r->ptr, .col = r->pos, .device = r->ctx->device};
    return mrec_spmm(r->ctx, out, &t, G, D, 0);
}

void mrec_batch_rows_free(mrec_batch_rows *r) {
    if (r->ctx) mrec_arena_release(&r->mem, r->ctx->cuda);
    free(r->h_ids), free(r->h_iota);
    memset(r, 0, sizeof *r);
}

/* ---- a step's random keys ---- */

mrec_status mrec_step_keys_send(mrec_step_keys *k, mrec_context *ctx, const uint64_t *keys, int n) {
    if (n < 0 || n > MREC_STEP_KEYS) return mrec_fail(MREC_ERR_ARG, "step keys: %d of at most %d", n, MREC_STEP_KEYS);
    if (!k->at || k->ctx != ctx) {
        mrec_step_keys_free(k);
        mrec_status st = mrec_arena_reserve(&k->mem, sizeof(uint64_t) * MREC_STEP_KEYS, ctx->device, ctx->cuda);
        if (st) return st;
        k->ctx = ctx, k->at = (uint64_t *)k->mem.base;
    }
    return mrec_copy_to_device_staged(ctx, k->at, keys, sizeof(uint64_t) * (size_t)n);
}

void mrec_step_keys_free(mrec_step_keys *k) {
    if (k->ctx) mrec_arena_release(&k->mem, k->ctx->cuda);
    memset(k, 0, sizeof *k);
}

/* ---- a graph's copy on the device ---- */

mrec_csr mrec_graph_carve(mrec_arena *a, int n_rows, int n_cols, int64_t nnz, mrec_device device) {
    mrec_csr c = {.n_rows = n_rows, .n_cols = n_cols, .device = device};
    c.row_ptr = mrec_arena_alloc(a, sizeof(int64_t) * ((size_t)n_rows + 1));
    c.col = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)(nnz + 1)); /* + 1: an empty graph still gets a pointer */
    c.val = mrec_arena_alloc(a, sizeof(float) * (size_t)(nnz + 1));
    return c;
}

mrec_status mrec_graph_upload(mrec_context *ctx, const mrec_csr *dst, const mrec_csr *src) {
    if (dst->n_rows != src->n_rows || dst->n_cols != src->n_cols)
        return mrec_fail(MREC_ERR_ARG, "graph copy: (%d, %d) into room for (%d, %d)", src->n_rows, src->n_cols, dst->n_rows,
                         dst->n_cols);
    int64_t nnz = src->row_ptr[src->n_rows];
    mrec_status st = mrec_copy_to_device(ctx, (int64_t *)dst->row_ptr, src->row_ptr, sizeof(int64_t) * ((size_t)src->n_rows + 1));
    if (!st && nnz) st = mrec_copy_to_device(ctx, (int32_t *)dst->col, src->col, sizeof(int32_t) * (size_t)nnz);
    if (!st && nnz) st = mrec_copy_to_device(ctx, (float *)dst->val, src->val, sizeof(float) * (size_t)nnz);
    return st;
}

void mrec_graph_transpose_edges(int64_t *t_ptr, int32_t *t_col, int32_t *t_edge, float *t_val, const mrec_graph *g) {
    int n = g->n_nodes;
    memset(t_ptr, 0, sizeof *t_ptr * ((size_t)n + 1));
    for (int64_t e = 0; e < g->row_ptr[n]; e++) t_ptr[g->col[e] + 1]++;
    for (int c = 0; c < n; c++) t_ptr[c + 1] += t_ptr[c];
    /* rows in increasing order fill each column's entries in increasing row order; t_ptr runs ahead, then is restored */
    for (int r = 0; r < n; r++)
        for (int64_t e = g->row_ptr[r]; e < g->row_ptr[r + 1]; e++) {
            int64_t at = t_ptr[g->col[e]]++;
            t_col[at] = r, t_edge[at] = (int32_t)e, t_val[at] = g->val[e];
        }
    for (int c = n; c > 0; c--) t_ptr[c] = t_ptr[c - 1];
    t_ptr[0] = 0;
}

/* ---- a batch's distinct items, on the host ---- */

mrec_status mrec_batch_items_set(mrec_batch_items *b, int n_items, const int32_t *i, const int32_t *j, int n) {
    if (n > b->cap || n_items != b->n_items) {
        mrec_batch_items_free(b);
        b->slot = malloc(sizeof(int32_t) * (size_t)n_items);
        b->uniq = malloc(sizeof(int32_t) * 2 * (size_t)n), b->row = malloc(sizeof(int32_t) * 2 * (size_t)n);
        if (!b->slot || !b->uniq || !b->row) {
            mrec_batch_items_free(b);
            return mrec_fail(MREC_ERR_NOMEM, "a batch's distinct items: %d draws of %d items", 2 * n, n_items);
        }
        for (int it = 0; it < n_items; it++) b->slot[it] = -1;
        b->cap = n, b->n_items = n_items;
    }
    int k = 0;
    for (int r = 0; r < 2 * n; r++) {
        int it = r < n ? i[r] : j[r - n];
        if (b->slot[it] < 0) b->slot[it] = k, b->uniq[k++] = it;
        b->row[r] = b->slot[it];
    }
    for (int r = 0; r < k; r++) b->slot[b->uniq[r]] = -1;
    b->n = k;
    return MREC_OK;
}

void mrec_batch_items_free(mrec_batch_items *b) {
    free(b->slot), free(b->uniq), free(b->row);
    memset(b, 0, sizeof *b);
}
