/* itemknn.c: item-based k-nearest neighbours with cosine similarity.
 *
 * Similarities are built one item at a time (co-occurrence counts through
 * the item's users, into a per-thread dense row), so memory is items x k,
 * never items x items. Scoring needs, for each item j, the items that keep
 * j as a neighbour: the neighbour lists are transposed once.
 *
 * The similarities are built on the host in any case (once, from the
 * training lists). On a GPU context (or a CPU one after mrec_itemknn_use_ops)
 * scoring runs through mrec_knn_scores instead, with the neighbour lists and
 * the users' item lists on the device: each score gathers its item's
 * neighbours (in rank order) rather than scattering a user's items, so no
 * sum needs an atomic; the sums' order differs from the host loop's.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n_items, k;
    const mrec_user_items *train;
    int64_t *by_ptr;   /* (n_items + 1): for neighbour j, the items i that keep it */
    int32_t *by_item;
    float *by_sim;
    int32_t *nbr;      /* (n_items, k) each item's neighbours, best first, -1 for none */
    float *sim;        /* (n_items, k) */
    mrec_context *ctx; /* scoring runs on its pool */
    /* the op path: nbr, sim and the users' item lists where the ops read them (mem on a GPU) */
    int use_ops;
    mrec_arena mem;
    const int64_t *d_ptr;
    const int32_t *d_col, *d_nbr;
    const float *d_sim;
} itemknn;

typedef struct {
    const mrec_user_items *train;
    const int64_t *icol_ptr; /* item -> users (CSC of train) */
    const int32_t *icol;
    int32_t *nbr;            /* (n_items, k) */
    float *sim;
    float *rows;             /* per thread (n_items) */
    int32_t *touched;        /* per thread (n_items) */
    int n_items, k, threads;
} build_args;

static void build_task(void *arg, int task, int thread) {
    build_args *a = arg;
    float *row = a->rows + (size_t)thread * a->n_items;
    int32_t *touched = a->touched + (size_t)thread * a->n_items;
    const mrec_user_items *t = a->train;
    int per = (a->n_items + a->threads * 8 - 1) / (a->threads * 8);
    for (int i = task * per; i < (task + 1) * per && i < a->n_items; i++) {
        int n_touched = 0;
        for (int64_t p = a->icol_ptr[i]; p < a->icol_ptr[i + 1]; p++) {
            int u = a->icol[p];
            for (int64_t q = t->row_ptr[u]; q < t->row_ptr[u + 1]; q++) {
                int j = t->col[q];
                if (j == i) continue;
                if (row[j] == 0) touched[n_touched++] = j;
                row[j] += 1;
            }
        }
        int32_t *nb = a->nbr + (size_t)i * a->k;
        float *sv = a->sim + (size_t)i * a->k;
        int kept = 0;
        double di = (double)(a->icol_ptr[i + 1] - a->icol_ptr[i]);
        for (int s = 0; s < n_touched; s++) {
            int j = touched[s];
            float c = (float)(row[j] / sqrt(di * (double)(a->icol_ptr[j + 1] - a->icol_ptr[j])));
            row[j] = 0;
            /* insertion into the sorted top-k (descending, ties to the lower id) */
            int pos = kept;
            while (pos > 0 && (sv[pos - 1] < c || (sv[pos - 1] == c && nb[pos - 1] > j))) pos--;
            if (pos >= a->k) continue;
            int last = kept < a->k ? kept : a->k - 1;
            for (int m = last; m > pos; m--) sv[m] = sv[m - 1], nb[m] = nb[m - 1];
            sv[pos] = c, nb[pos] = j;
            if (kept < a->k) kept++;
        }
        for (int m = kept; m < a->k; m++) nb[m] = -1, sv[m] = 0;
    }
}

typedef struct {
    itemknn *m;
    int u0, n;
    float *scores;
} score_args;

static void score_task(void *arg, int task, int thread) {
    (void)thread;
    score_args *a = arg;
    itemknn *m = a->m;
    const mrec_user_items *t = m->train;
    int u = a->u0 + task;
    float *row = a->scores + (size_t)task * m->n_items;
    memset(row, 0, (size_t)m->n_items * sizeof *row);
    for (int64_t q = t->row_ptr[u]; q < t->row_ptr[u + 1]; q++) {
        int j = t->col[q];
        for (int64_t p = m->by_ptr[j]; p < m->by_ptr[j + 1]; p++) row[m->by_item[p]] += m->by_sim[p];
    }
}

static mrec_status itemknn_score(void *self, int u0, int n, float *scores) {
    itemknn *m = self;
    if (u0 < 0 || n < 0 || u0 + n > m->train->n_rows)
        return mrec_fail(MREC_ERR_ARG, "itemknn: users %d to %d of %d", u0, u0 + n, m->train->n_rows);
    if (m->use_ops) return mrec_knn_scores(m->ctx, scores, m->d_ptr, m->d_col, m->d_nbr, m->d_sim, u0, n, m->n_items, m->k);
    score_args a = {m, u0, n, scores};
    mrec_pool_run(m->ctx->pool, score_task, &a, n);
    return MREC_OK;
}

static mrec_status itemknn_neighbours(void *self, int32_t *nbr, float *sim) {
    itemknn *m = self;
    memcpy(nbr, m->nbr, sizeof *nbr * (size_t)m->n_items * m->k);
    memcpy(sim, m->sim, sizeof *sim * (size_t)m->n_items * m->k);
    return MREC_OK;
}

static void itemknn_destroy(void *self) {
    itemknn *m = self;
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m->by_ptr), free(m->by_item), free(m->by_sim), free(m->nbr), free(m->sim);
    free(m);
}

mrec_status mrec_itemknn_use_ops(mrec_model *model) {
    itemknn *m = model->self;
    /* a CPU context: the ops read the host's arrays */
    m->d_ptr = m->train->row_ptr, m->d_col = m->train->col, m->d_nbr = m->nbr, m->d_sim = m->sim, m->use_ops = 1;
    return MREC_OK;
}

/* On a GPU: the users' item lists and the neighbour lists copied to the device once. */
static mrec_status place_on_device(itemknn *m) {
    mrec_context *ctx = m->ctx;
    const mrec_user_items *t = m->train;
    int64_t nnz = t->row_ptr[t->n_rows];
    size_t ik = (size_t)m->n_items * m->k;
    size_t bytes[4] = {sizeof(int64_t) * ((size_t)t->n_rows + 1), sizeof(int32_t) * (size_t)(nnz + 1), sizeof(int32_t) * ik,
                       sizeof(float) * ik};
    size_t total = 0;
    for (int q = 0; q < 4; q++) total += (bytes[q] + MREC_ARENA_ALIGN - 1) / MREC_ARENA_ALIGN * MREC_ARENA_ALIGN;
    mrec_status st = mrec_arena_reserve(&m->mem, total, ctx->device, ctx->cuda);
    if (st) return st;
    void *dev[4];
    for (int q = 0; q < 4; q++) dev[q] = mrec_arena_alloc(&m->mem, bytes[q]);
    const void *host[4] = {t->row_ptr, t->col, m->nbr, m->sim};
    size_t used[4] = {bytes[0], sizeof(int32_t) * (size_t)nnz, bytes[2], bytes[3]};
    for (int q = 0; q < 4 && !st; q++) st = mrec_copy_to_device(ctx, dev[q], host[q], used[q]);
    m->d_ptr = dev[0], m->d_col = dev[1], m->d_nbr = dev[2], m->d_sim = dev[3];
    if (!st) m->use_ops = 1;
    return st;
}

mrec_status mrec_itemknn_create(mrec_model *out, const mrec_user_items *train, int k, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    int I = train->n_cols, U = train->n_rows, threads = mrec_pool_threads(ctx->pool);
    int64_t nnz = train->row_ptr[U];
    if (k < 1 || k > I) return mrec_fail(MREC_ERR_ARG, "itemknn: k = %d with %d items", k, I);
    mrec_status st = MREC_OK;
    itemknn *m = calloc(1, sizeof *m);
    int64_t *icol_ptr = calloc((size_t)I + 1, sizeof *icol_ptr), *fill = calloc((size_t)I + 1, sizeof *fill);
    int32_t *icol = malloc(sizeof *icol * (size_t)(nnz + 1)), *nbr = malloc(sizeof *nbr * (size_t)I * k);
    float *sim = malloc(sizeof *sim * (size_t)I * k), *rows = calloc((size_t)threads * I, sizeof *rows);
    int32_t *touched = malloc(sizeof *touched * (size_t)threads * I);
    if (!m || !icol_ptr || !fill || !icol || !nbr || !sim || !rows || !touched) {
        st = mrec_fail(MREC_ERR_NOMEM, "itemknn: %d items x %d neighbours", I, k);
        goto done;
    }
    for (int64_t e = 0; e < nnz; e++) icol_ptr[train->col[e] + 1]++;
    for (int i = 0; i < I; i++) icol_ptr[i + 1] += icol_ptr[i];
    for (int u = 0; u < U; u++)
        for (int64_t e = train->row_ptr[u]; e < train->row_ptr[u + 1]; e++) icol[icol_ptr[train->col[e]] + fill[train->col[e]]++] = u;
    build_args a = {train, icol_ptr, icol, nbr, sim, rows, touched, I, k, threads};
    mrec_pool_run(ctx->pool, build_task, &a, threads * 8);
    /* transpose: for each neighbour j, the (i, sim) that keep it */
    m->n_items = I, m->k = k, m->train = train, m->ctx = ctx;
    m->by_ptr = calloc((size_t)I + 1, sizeof *m->by_ptr);
    m->by_item = malloc(sizeof *m->by_item * ((size_t)I * k + 1));
    m->by_sim = malloc(sizeof *m->by_sim * ((size_t)I * k + 1));
    if (!m->by_ptr || !m->by_item || !m->by_sim) {
        st = mrec_fail(MREC_ERR_NOMEM, "itemknn: neighbour lists");
        goto done;
    }
    for (size_t e = 0; e < (size_t)I * k; e++)
        if (nbr[e] >= 0) m->by_ptr[nbr[e] + 1]++;
    for (int j = 0; j < I; j++) m->by_ptr[j + 1] += m->by_ptr[j];
    memset(fill, 0, sizeof *fill * ((size_t)I + 1));
    for (int i = 0; i < I; i++)
        for (int s = 0; s < k; s++) {
            int j = nbr[(size_t)i * k + s];
            if (j < 0) continue;
            int64_t at = m->by_ptr[j] + fill[j]++;
            m->by_item[at] = i, m->by_sim[at] = sim[(size_t)i * k + s];
        }
    m->nbr = nbr, m->sim = sim, nbr = NULL, sim = NULL; /* kept for the op path */
    if (ctx->device != MREC_DEVICE_CPU && (st = place_on_device(m))) goto done;
    out->name = "ItemKNN", out->self = m, out->score = itemknn_score, out->destroy = itemknn_destroy;
    out->knn_k = k, out->neighbours = itemknn_neighbours;
done:
    free(icol_ptr), free(fill), free(icol), free(nbr), free(sim), free(rows), free(touched);
    if (st && m) itemknn_destroy(m);
    return st;
}
