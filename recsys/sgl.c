/* sgl.c: SGL (self-supervised graph learning) as the Ducho-meets-Elliot
 * benchmark's Elliot fork trains it.
 *
 *   E0 = [U; I] (ego embeddings), F = (E0 + Â E0 + .. + Â^L E0) / (L + 1)
 * over the normalized training graph, score = <F_u, F_i>. Two views V1, V2
 * are the same layer mean over graphs of a sample of the training pairs,
 * drawn again before each epoch:
 *   nd: round(U ratio) users and round(I ratio) items dropped with their pairs;
 *   ed: round(E ratio) of the E pairs dropped;
 *   rw: as ed, with its own draw for every layer.
 * Each kept graph is normalized over its own degrees (D^-1/2 A D^-1/2).
 * With Z = V scaled to unit rows and temp the temperature:
 *   loss = -sum_b log sigmoid(<F_u, F_i> - <F_u, F_j>)
 *        + ssl_reg sum_b [ lse_c(<Z1_u, Z2_c> / temp) - <Z1_u, Z2_u> / temp ]   (c over all users)
 *        + ssl_reg sum_b [ the same for the positive item i against all items ]
 *        + l_w / 2 sum_b (|E0_u|^2 + |E0_i|^2 + |E0_j|^2)
 * Sums over the batch, not means, as the fork (and SGL's authors) write it;
 * the anchors are the batch's users and positives, repeats included, and
 * every user (item) of the second view is a candidate, as in the authors'
 * code. Backward: each layer mean is linear in E0 and the graphs are
 * symmetric, so dE0 = sum over the three graphs of (D + G (D + G (..))) / (L + 1).
 *
 * The views are drawn on the host by the model's own generator (exact
 * counts, as the reference samples), once per epoch.
 *
 * Two paths compute the step: the host loops (a CPU context), and the op
 * path (a GPU context always, a CPU one after mrec_sgl_use_ops). There the
 * embeddings, the views' rows and the graphs stay on the context's device
 * (each epoch's view graphs are copied there once, as FREEDOM's pruned
 * graph), the batch goes through the BPR step of bpr_ops.c, the unit rows
 * through mrec_l2_normalize_rows and its backward, and each block of anchors
 * through a GEMM and mrec_softmax_xent_rows; the batch's loss, the
 * contrast's included, stays on the device. Both paths share the arrays,
 * carved from one allocation on the device.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 16
#define CHUNK 256      /* anchors per similarity block: memory CHUNK x max(U, I) */
#define GPU_CHUNK 4096 /* the same on a GPU, where 256 anchors left the block's products small */

typedef struct {
    const mrec_graph *graph;
    mrec_csr adj;           /* the graph as the ops see it: itself, or its copy on the device */
    int n_users, n_items, n_nodes, dim, layers, augment;
    float l_w, ssl_reg, ssl_ratio, temp;
    int64_t n_pairs;
    int32_t *pair_user, *pair_item; /* (n_pairs) the training pairs, user-major */
    int32_t *perm;                  /* (max(U, I, n_pairs)) scratch of the draws */
    int32_t *kept_user, *kept_item; /* (n_pairs) */
    mrec_graph views[2][MAX_LAYERS]; /* a view's graph per layer (nd, ed: layer 0's for all) */
    mrec_csr dev_views[2][MAX_LAYERS]; /* on a GPU: their copies, each with room for the full graph */
    int views_fixed;
    mrec_arena mem;         /* on the context's device: everything below, and the graphs' copies on a GPU */
    float *ego, *ego_grad;  /* (N, d) parameters: users then items */
    float *final;           /* (N, d) F, then reused for dF (host) or dV (ops) */
    float *z[2];            /* (N, d) the views at unit length */
    float *v[2];            /* (N, d) the op path: the views before scaling */
    float *norm[2];         /* (N) the host path: their row norms */
    float *dz[2];           /* (N, d) gradients of z, then of the views */
    float *a, *b, *acc;     /* (N, d) scratch */
    float *sim;             /* (CHUNK, max(U, I)) */
    float *zb, *gb;         /* (CHUNK, d) anchors' rows and their gradient */
    double *h_loss;         /* (CHUNK) host */
    /* the op path's batch */
    int use_ops, on_gpu, ops_cap, chunk;
    mrec_arena batch;
    float *G;               /* (cap, d) the anchors' gradient rows */
    double *closs_all;      /* (cap) each anchor's loss, summed on the device */
    float *sim_ops, *zb_ops; /* (chunk, max(U, I)), (chunk, d): sim and zb on a CPU, larger blocks on a GPU */
    mrec_batch_rows anchors, anchors_i; /* the op path's contrast: the batch's users, its positives */
    mrec_bpr_ops ops;
    mrec_rng rng;
    mrec_context *ctx;
    mrec_status status;
    double host_loss;       /* the last batch's loss on the host path */
} sgl;

static const mrec_graph *layer_graph(const sgl *m, int view, int k) { return &m->views[view][m->augment == 2 ? k : 0]; }

/* Layer k's graph of a view (-1: Â) where the ops read it. */
static mrec_csr layer_csr(const sgl *m, int view, int k) {
    if (view < 0) return m->adj;
    return m->on_gpu ? m->dev_views[view][m->augment == 2 ? k : 0] : mrec_graph_csr(layer_graph(m, view, k));
}

/* out (N, d) = (x + G_1 x + G_2 G_1 x + ..) / (L + 1), G_k the view's graph
 * at layer k, or Â for view -1. Both paths. */
static mrec_status layer_mean(sgl *m, float *out, int view) {
    int d = m->dim, L = m->layers;
    int64_t n = (int64_t)m->n_nodes * d;
    mrec_status st = mrec_scale(m->ctx, out, m->ego, 1.0f, n); /* a copy on any device */
    const float *prev = m->ego;
    for (int k = 0; k < L && !st; k++) {
        float *next = k % 2 ? m->b : m->a;
        mrec_csr g = layer_csr(m, view, k);
        st = mrec_spmm(m->ctx, next, &g, prev, d, 0);
        if (!st) st = mrec_add(m->ctx, out, out, next, n);
        prev = next;
    }
    return st ? st : mrec_scale(m->ctx, out, out, 1.0f / (L + 1), n);
}

/* dego += (D + G_1 (D + G_2 (.. + G_L D))) / (L + 1): layer_mean's backward, the graphs symmetric. Both paths. */
static mrec_status layer_mean_back(sgl *m, float *dego, const float *D, int view) {
    int d = m->dim, L = m->layers;
    int64_t n = (int64_t)m->n_nodes * d;
    float *h = m->a, *t = m->b;
    mrec_status st = mrec_scale(m->ctx, h, D, 1.0f, n);
    for (int k = L - 1; k >= 0 && !st; k--) {
        mrec_csr g = layer_csr(m, view, k);
        st = mrec_spmm(m->ctx, t, &g, h, d, 0);
        if (!st) st = mrec_add(m->ctx, t, t, D, n);
        float *s = h;
        h = t, t = s;
    }
    /* dego += w h, as a product then a sum (t is free) */
    if (!st) st = mrec_scale(m->ctx, t, h, 1.0f / (L + 1), n);
    return st ? st : mrec_add(m->ctx, dego, dego, t, n);
}

/* Fills perm[0..n) with 0..n-1 and moves a uniform sample of `take` of them to the front. */
static void sample(mrec_rng *rng, int32_t *perm, int64_t n, int64_t take) {
    for (int64_t e = 0; e < n; e++) perm[e] = (int32_t)e;
    for (int64_t e = 0; e < take; e++) {
        int64_t r = e + (int64_t)mrec_rng_below(rng, (uint32_t)(n - e));
        int32_t s = perm[e];
        perm[e] = perm[r], perm[r] = s;
    }
}

/* A view's graph from keep (n_pairs): 1 for the pairs it keeps. */
static mrec_status view_graph(sgl *m, mrec_graph *out, const uint8_t *keep) {
    int64_t n = 0;
    for (int64_t e = 0; e < m->n_pairs; e++)
        if (keep[e]) m->kept_user[n] = m->pair_user[e], m->kept_item[n] = m->pair_item[e], n++;
    mrec_graph_free(out);
    return mrec_graph_from_pairs(out, m->n_users, m->n_items, m->kept_user, m->kept_item, n);
}

/* One draw of the augmentation into keep (n_pairs), with n_nodes more bytes
 * after it as scratch for node dropout. Python's round() halves to even, as
 * nearbyint does. */
static void draw_keep(sgl *m, uint8_t *keep) {
    memset(keep, 1, (size_t)m->n_pairs);
    if (!(m->ssl_ratio > 0)) return;
    if (m->augment == 0) {
        uint8_t *drop_user = keep + m->n_pairs, *drop_item = drop_user + m->n_users;
        memset(drop_user, 0, (size_t)m->n_users + (size_t)m->n_items);
        int64_t du = (int64_t)nearbyint(m->n_users * (double)m->ssl_ratio), di = (int64_t)nearbyint(m->n_items * (double)m->ssl_ratio);
        sample(&m->rng, m->perm, m->n_users, du);
        for (int64_t e = 0; e < du; e++) drop_user[m->perm[e]] = 1;
        sample(&m->rng, m->perm, m->n_items, di);
        for (int64_t e = 0; e < di; e++) drop_item[m->perm[e]] = 1;
        for (int64_t e = 0; e < m->n_pairs; e++) keep[e] = !drop_user[m->pair_user[e]] && !drop_item[m->pair_item[e]];
    } else {
        int64_t de = (int64_t)nearbyint(m->n_pairs * (double)m->ssl_ratio);
        sample(&m->rng, m->perm, m->n_pairs, de);
        for (int64_t e = 0; e < de; e++) keep[m->perm[e]] = 0;
    }
}

/* On a GPU: the views' graphs into their room on the device, once per draw. */
static mrec_status upload_views(sgl *m) {
    int per_layer = m->augment == 2 ? m->layers : 1;
    mrec_status st = MREC_OK;
    for (int v = 0; v < 2 && !st && m->on_gpu; v++)
        for (int k = 0; k < per_layer && !st; k++) {
            const mrec_graph *g = &m->views[v][k];
            if (g->row_ptr[g->n_nodes] > m->graph->row_ptr[m->n_nodes])
                return mrec_fail(MREC_ERR_ARG, "sgl: a view of %lld entries, more than the training graph's %lld",
                                 (long long)g->row_ptr[g->n_nodes], (long long)m->graph->row_ptr[m->n_nodes]);
            mrec_csr src = mrec_graph_csr(g);
            st = mrec_graph_upload(m->ctx, &m->dev_views[v][k], &src);
        }
    return st;
}

static mrec_status draw_views(sgl *m) {
    uint8_t *keep = malloc((size_t)m->n_pairs + (size_t)m->n_nodes);
    if (!keep) return mrec_fail(MREC_ERR_NOMEM, "sgl: views of %lld pairs", (long long)m->n_pairs);
    int per_layer = m->augment == 2 ? m->layers : 1;
    mrec_status st = MREC_OK;
    for (int v = 0; v < 2 && !st; v++)
        for (int k = 0; k < per_layer && !st; k++) {
            draw_keep(m, keep);
            st = view_graph(m, &m->views[v][k], keep);
        }
    free(keep);
    return st ? st : upload_views(m);
}

static mrec_status sgl_epoch_start(void *self) {
    sgl *m = self;
    return m->views_fixed ? MREC_OK : draw_views(m);
}

/* ssl_reg * sum_b [lse_c(<z1_a, z2_c>) - <z1_a, z2_a>] / temp over anchors a = ids[b] + offset
 * and candidates c in [offset, offset + count); gradients into dz. */
static double contrast(sgl *m, const int32_t *ids, int n, int offset, int count, mrec_status *st) {
    int d = m->dim;
    const float *z2 = m->z[1] + (size_t)offset * d;
    float *dz2 = m->dz[1] + (size_t)offset * d, inv = 1.0f / m->temp;
    double loss = 0;
    for (int b0 = 0; b0 < n; b0 += CHUNK) {
        int c = n - b0 < CHUNK ? n - b0 : CHUNK;
        for (int r = 0; r < c; r++) memcpy(m->zb + (size_t)r * d, m->z[0] + (size_t)(ids[b0 + r] + offset) * d, (size_t)d * 4);
        /* sim (c, count) = zb z2^T / temp */
        if ((*st = mrec_gemm(m->ctx, m->sim, m->zb, z2, NULL, inv, 0, 0, 1, c, count, d, d, d, count))) return NAN;
        /* each anchor's InfoNCE against its own column; d / d sim = ssl_reg (softmax - onehot) in place, with the
         * 1 / temp of the products below folded in (rows over the pool's threads) */
        if ((*st = mrec_softmax_xent_rows(m->ctx, m->sim, m->h_loss, m->sim, ids + b0, m->ssl_reg * inv, c, count))) return NAN;
        for (int r = 0; r < c; r++) loss += m->h_loss[r];
        /* gb = dS z2; dz2 += dS^T zb */
        if ((*st = mrec_gemm(m->ctx, m->gb, m->sim, z2, NULL, 1, 0, 0, 0, c, d, count, count, d, d))) return NAN;
        if ((*st = mrec_gemm(m->ctx, dz2, m->sim, m->zb, NULL, 1, 1, 1, 0, count, d, c, count, d, d))) return NAN;
        for (int r = 0; r < c; r++) {
            float *row = m->dz[0] + (size_t)(ids[b0 + r] + offset) * d;
            for (int q = 0; q < d; q++) row[q] += m->gb[(size_t)r * d + q];
        }
    }
    return m->ssl_reg * loss;
}

static mrec_status step(sgl *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, U = m->n_users, N = m->n_nodes;
    size_t total = (size_t)N * d;
    mrec_status st;
    if ((st = layer_mean(m, m->final, -1))) return st;
    /* ssl_reg 0 leaves LightGCN with SGL's BPR and regularizer: the views are not propagated */
    int views = m->ssl_reg != 0;
    for (int v = 0; v < 2 && views; v++) {
        if ((st = layer_mean(m, m->acc, v))) return st;
        for (int r = 0; r < N; r++) {
            const float *x = m->acc + (size_t)r * d;
            float *z = m->z[v] + (size_t)r * d;
            double s = 0;
            for (int q = 0; q < d; q++) s += (double)x[q] * x[q];
            float nr = (float)fmax(sqrt(s), 1e-12); /* F.normalize's floor */
            for (int q = 0; q < d; q++) z[q] = x[q] / nr;
            m->norm[v][r] = nr;
        }
        memset(m->dz[v], 0, total * sizeof(float));
    }
    /* BPR, summed; then dF (reusing acc) */
    double loss = 0;
    memset(m->acc, 0, total * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d;
        const float *fj = m->final + (size_t)(U + j[b]) * d;
        float sp = 0, sn = 0;
        for (int q = 0; q < d; q++) sp += fu[q] * fi[q], sn += fu[q] * fj[q];
        double x = (double)sp - sn;
        loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); /* -log sigmoid(x), stably */
        float g = (float)(-1.0 / (1.0 + exp(x)));
        float *gu = m->acc + (size_t)u[b] * d, *gi = m->acc + (size_t)(U + i[b]) * d, *gj = m->acc + (size_t)(U + j[b]) * d;
        for (int q = 0; q < d; q++) gu[q] += g * (fi[q] - fj[q]), gi[q] += g * fu[q], gj[q] -= g * fu[q];
    }
    if (views) {
        loss += contrast(m, u, n, 0, U, &st);
        if (!st) loss += contrast(m, i, n, U, m->n_items, &st);
        if (st) return st;
    }
    /* through the unit rows: dV = (dZ - Z <Z, dZ>) / |V|, in place */
    for (int v = 0; v < 2 && views; v++)
        for (int r = 0; r < N; r++) {
            float *g = m->dz[v] + (size_t)r * d;
            const float *z = m->z[v] + (size_t)r * d;
            double dot = 0;
            for (int q = 0; q < d; q++) dot += (double)z[q] * g[q];
            for (int q = 0; q < d; q++) g[q] = (float)((g[q] - z[q] * dot) / m->norm[v][r]);
        }
    memset(m->ego_grad, 0, total * sizeof(float));
    if ((st = layer_mean_back(m, m->ego_grad, m->acc, -1)) ||
        (views && ((st = layer_mean_back(m, m->ego_grad, m->dz[0], 0)) || (st = layer_mean_back(m, m->ego_grad, m->dz[1], 1)))))
        return st;
    /* l_w / 2 squared norms of the batch's ego rows, repeats counted */
    double reg = 0;
    for (int b = 0; b < n; b++) {
        size_t rows[3] = {(size_t)u[b] * d, (size_t)(U + i[b]) * d, (size_t)(U + j[b]) * d};
        for (int t = 0; t < 3; t++)
            for (int q = 0; q < d; q++) {
                float x = m->ego[rows[t] + q];
                reg += (double)x * x;
                m->ego_grad[rows[t] + q] += m->l_w * x;
            }
    }
    *loss_out = loss + m->l_w * reg / 2;
    return MREC_OK;
}

/* ---- the op path ---- */

/* The op path's buffers for batches of up to n triples (grown, not per batch): the anchors' gradient rows and
 * losses, and on a GPU blocks of up to GPU_CHUNK anchors (on a CPU the model's own CHUNK ones, so its bits stay
 * those of the host loops' blocks). */
static void carve_batch(sgl *m, mrec_arena *a, int n) {
    size_t d = (size_t)m->dim, wide = (size_t)(m->n_users > m->n_items ? m->n_users : m->n_items);
    m->chunk = m->on_gpu ? (n < GPU_CHUNK ? n : GPU_CHUNK) : CHUNK;
    m->G = mrec_arena_alloc(a, (size_t)n * d * 4);
    m->closs_all = mrec_arena_alloc(a, (size_t)n * sizeof(double));
    m->sim_ops = m->on_gpu ? mrec_arena_alloc(a, (size_t)m->chunk * wide * 4) : m->sim;
    m->zb_ops = m->on_gpu ? mrec_arena_alloc(a, (size_t)m->chunk * d * 4) : m->zb;
}

static mrec_status ensure_ops_batch(sgl *m, int n) {
    if (n <= m->ops_cap) return MREC_OK;
    mrec_arena_release(&m->batch, m->ctx->cuda);
    m->ops_cap = 0;
    mrec_arena measure = mrec_arena_measure();
    carve_batch(m, &measure, n);
    mrec_status st = mrec_arena_reserve(&m->batch, measure.peak, m->ctx->device, m->ctx->cuda);
    if (!st) carve_batch(m, &m->batch, n), m->ops_cap = n;
    return st;
}

/* contrast through the op entries: ssl_reg times the anchors' losses added to the batch's loss on the device. The
 * anchors are r's rows (staged: the batch's users, or its positives). */
static void ops_contrast(sgl *m, mrec_batch_rows *r, int n, int offset, int count, mrec_status *st) {
    mrec_context *ctx = m->ctx;
    int d = m->dim;
    const float *z1 = m->z[0] + (size_t)offset * d, *z2 = m->z[1] + (size_t)offset * d;
    float *dz1 = m->dz[0] + (size_t)offset * d, *dz2 = m->dz[1] + (size_t)offset * d, inv = 1.0f / m->temp;
    *st = mrec_batch_rows_index(r);
    float *sim = m->sim_ops, *zb = m->zb_ops;
    for (int b0 = 0; b0 < n && !*st; b0 += m->chunk) {
        int c = n - b0 < m->chunk ? n - b0 : m->chunk;
        const int32_t *anchor = r->ids + b0;
        float *g = m->G + (size_t)b0 * d;
        /* sim (c, count) = zb z2^T / temp; InfoNCE against each anchor's own column, ssl_reg / temp (softmax - onehot) in place */
        *st = mrec_embedding_checked(ctx, zb, z1, anchor, c, count, d);
        if (!*st) *st = mrec_gemm(ctx, sim, zb, z2, NULL, inv, 0, 0, 1, c, count, d, d, d, count);
        if (!*st) *st = mrec_softmax_xent_rows(ctx, sim, m->closs_all + b0, sim, anchor, m->ssl_reg * inv, c, count);
        /* the anchors' rows dS z2 (scattered below); dz2 += dS^T zb */
        if (!*st) *st = mrec_gemm(ctx, g, sim, z2, NULL, 1, 0, 0, 0, c, d, count, count, d, d);
        if (!*st) *st = mrec_gemm(ctx, dz2, sim, zb, NULL, 1, 1, 1, 0, count, d, c, count, d, d);
    }
    /* the anchors' losses, summed where they are */
    if (!*st) *st = mrec_loss_term(ctx, m->ops.loss, m->closs_all, n, m->ssl_reg, 1.0);
    if (!*st) *st = mrec_batch_rows_scatter(r, m->acc, m->G, d); /* acc: rows [0, count) are free here */
    if (!*st) *st = mrec_add(ctx, dz1, dz1, m->acc, (int64_t)count * d);
}

/* step through the op entries, in the trainer's two halves (mrec_model.stage, .launch): the host's part (buffers
 * grown; the batch's triples and the contrast's anchors checked and sent up), then the launches. */
static mrec_status sgl_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    sgl *m = self;
    static const int zero = 0;
    mrec_status st = ensure_ops_batch(m, n);
    if (!st) st = mrec_bpr_ops_stage(&m->ops, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->dim);
    if (!st && m->ssl_reg != 0) st = mrec_batch_rows_stage(&m->anchors, m->ctx, m->n_users, 1, &u, &zero, n);
    if (!st && m->ssl_reg != 0) st = mrec_batch_rows_stage(&m->anchors_i, m->ctx, m->n_items, 1, &i, &zero, n);
    return st;
}

static mrec_status ops_launch(sgl *m) {
    mrec_context *ctx = m->ctx;
    mrec_bpr_ops *o = &m->ops;
    int d = m->dim, U = m->n_users, N = m->n_nodes, n = o->n;
    int64_t total = (int64_t)N * d;
    mrec_status st = layer_mean(m, m->final, -1);
    int views = m->ssl_reg != 0;
    for (int v = 0; v < 2 && views && !st; v++) {
        st = layer_mean(m, m->v[v], v);
        if (!st) st = mrec_l2_normalize_rows(ctx, m->z[v], m->v[v], 1e-12f, N, d); /* F.normalize's floor */
        if (!st) st = mrec_scale(ctx, m->dz[v], m->z[v], 0.0f, total); /* zeros (z is finite) */
    }
    /* pos, neg from F, the squared norms of the batch's ego rows; the loss where they are: BPR summed over the batch,
     * l_w / 2 the squared norms (repeats counted), each row's factor l_w */
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS_SUM, .weight = 1, .reg_form = MREC_BPR_REG_SQUARED_ALL, .reg = m->l_w, .reg_div = 1};
    if (!st) st = mrec_bpr_ops_gather(o, m->final, m->ego);
    if (!st) st = mrec_bpr_ops_loss(o, &spec);
    /* dF into acc after the contrasts (which use acc as scratch) */
    if (views && !st) ops_contrast(m, &m->anchors, n, 0, U, &st);
    if (views && !st) ops_contrast(m, &m->anchors_i, n, U, m->n_items, &st);
    if (!st) st = mrec_bpr_ops_scatter_at(o, m->acc, m->final, 1, 0);
    if (st) return st;
    if ((st = mrec_scale(ctx, m->ego_grad, m->ego, 0.0f, total))) return st;
    if ((st = layer_mean_back(m, m->ego_grad, m->acc, -1))) return st;
    /* through the unit rows into final (free now), then back through each view's graphs */
    for (int v = 0; v < 2 && views && !st; v++) {
        st = mrec_l2_normalize_rows_back(ctx, m->final, m->dz[v], m->z[v], m->v[v], 1e-12f, 0, N, d);
        if (!st) st = layer_mean_back(m, m->ego_grad, m->final, v);
    }
    /* l_w / 2 squared norms of the batch's ego rows, repeats counted: l_w E0 on those rows */
    if (!st) st = mrec_bpr_ops_scatter_at(o, m->acc, m->ego, 0, MREC_BPR_PARTS_ALL);
    return st ? st : mrec_add(ctx, m->ego_grad, m->ego_grad, m->acc, total);
}

static mrec_status sgl_launch(void *self, const double **loss) {
    sgl *m = self;
    mrec_status st = ops_launch(m);
    *loss = st ? NULL : m->ops.loss;
    return st;
}

static mrec_status ops_step(sgl *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mrec_status st = sgl_stage(m, u, i, j, n);
    return st ? st : ops_launch(m);
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static const double *sgl_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    sgl *m = self;
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_step(m, u, i, j, n) : step(m, &m->host_loss, u, i, j, n);
    return m->status ? NULL : m->use_ops ? m->ops.loss : &m->host_loss;
}

static double sgl_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    sgl *m = self;
    return mrec_step_loss(m->ctx, &m->status, sgl_step(self, u, i, j, n));
}

static mrec_status sgl_prepare(void *self) { return layer_mean(self, ((sgl *)self)->final, -1); }

static mrec_status sgl_score(void *self, int u0, int n, float *scores) {
    sgl *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status sgl_embeddings(void *self, float *users, float *items) {
    sgl *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->dim);
}

static void sgl_destroy(void *self) {
    sgl *m = self;
    for (int v = 0; v < 2; v++)
        for (int k = 0; k < MAX_LAYERS; k++) mrec_graph_free(&m->views[v][k]);
    mrec_bpr_ops_free(&m->ops), mrec_batch_rows_free(&m->anchors), mrec_batch_rows_free(&m->anchors_i);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m->pair_user), free(m->pair_item), free(m->perm), free(m->kept_user), free(m->kept_item);
    free(m->h_loss);
    free(m);
}

/* Every array, and on a GPU the graphs' copies, from one allocation (a measuring arena counts them). */
static void carve(sgl *m, mrec_arena *a) {
    size_t d = (size_t)m->dim, total = (size_t)m->n_nodes * d * 4, wide = (size_t)(m->n_users > m->n_items ? m->n_users : m->n_items);
    float **big[12] = {&m->ego, &m->ego_grad, &m->final, &m->z[0], &m->z[1], &m->v[0], &m->v[1], &m->dz[0], &m->dz[1],
                       &m->a, &m->b, &m->acc};
    for (int k = 0; k < 12; k++) *big[k] = mrec_arena_alloc(a, total);
    for (int v = 0; v < 2; v++) m->norm[v] = mrec_arena_alloc(a, (size_t)m->n_nodes * 4);
    if (!m->on_gpu) { /* the host loops' blocks (the op path's too on a CPU); a GPU carves its own larger ones */
        m->sim = mrec_arena_alloc(a, (size_t)CHUNK * wide * 4);
        m->zb = mrec_arena_alloc(a, (size_t)CHUNK * d * 4), m->gb = mrec_arena_alloc(a, (size_t)CHUNK * d * 4);
        return;
    }
    int64_t nnz = m->graph->row_ptr[m->n_nodes];
    int per_layer = m->augment == 2 ? m->layers : 1;
    m->adj = mrec_graph_carve(a, m->n_nodes, m->n_nodes, nnz, m->ctx->device);
    for (int v = 0; v < 2; v++)
        for (int k = 0; k < per_layer; k++) m->dev_views[v][k] = mrec_graph_carve(a, m->n_nodes, m->n_nodes, nnz, m->ctx->device);
}

mrec_status mrec_sgl_use_ops(mrec_model *model) {
    ((sgl *)model->self)->use_ops = 1; /* the arrays are shared with the host path; the graphs are the host's */
    model->stage = sgl_stage, model->launch = sgl_launch;
    return MREC_OK;
}

mrec_status mrec_sgl_create(mrec_model *out, const mrec_graph *graph, const mrec_user_items *train, int dim, int layers,
                            float l_w, float ssl_reg, float ssl_ratio, float temp, int augment, mrec_rng *rng,
                            mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st;
    int U = train->n_rows, I = train->n_cols;
    if (graph->n_nodes != U + I || layers < 0 || layers > MAX_LAYERS || dim < 1 || !(temp > 0) || augment < 0 || augment > 2 ||
        !(ssl_ratio >= 0 && ssl_ratio < 1))
        return mrec_fail(MREC_ERR_ARG, "sgl: graph of %d nodes for %d users + %d items, %d layers (0 to %d), temperature %g, ratio %g",
                         graph->n_nodes, U, I, layers, MAX_LAYERS, (double)temp, (double)ssl_ratio);
    sgl *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "sgl");
    m->graph = graph, m->adj = mrec_graph_csr(graph), m->n_users = U, m->n_items = I, m->n_nodes = U + I, m->dim = dim;
    m->layers = layers, m->augment = augment, m->l_w = l_w, m->ssl_reg = ssl_reg, m->ssl_ratio = ssl_ratio, m->temp = temp;
    m->ctx = ctx, m->on_gpu = ctx->device != MREC_DEVICE_CPU;
    m->n_pairs = train->row_ptr[U];
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure);
    if ((st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda))) {
        free(m);
        return st;
    }
    carve(m, &m->mem);
    size_t total = (size_t)m->n_nodes * dim, np = (size_t)m->n_pairs + 1, wide = (size_t)(U > I ? U : I);
    size_t nperm = wide > np ? wide : np;
    m->pair_user = malloc(np * 4), m->pair_item = malloc(np * 4), m->perm = malloc(nperm * 4);
    m->kept_user = malloc(np * 4), m->kept_item = malloc(np * 4), m->h_loss = malloc(CHUNK * sizeof(double));
    float *h = calloc(total, 4);
    if (!m->pair_user || !m->pair_item || !m->perm || !m->kept_user || !m->kept_item || !m->h_loss || !h) {
        free(h);
        sgl_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "sgl: %d nodes x %d", m->n_nodes, dim);
    }
    for (int u = 0; u < U; u++)
        for (int64_t e = train->row_ptr[u]; e < train->row_ptr[u + 1]; e++) m->pair_user[e] = u, m->pair_item[e] = train->col[e];
    /* zero gradients; xavier-uniform per table, bound sqrt(6 / (rows + d)), drawn on the host on every device */
    st = mrec_copy_to_device(ctx, m->ego_grad, h, total * 4);
    double bu = sqrt(6.0 / (U + dim)), bi = sqrt(6.0 / (I + dim));
    for (size_t k = 0; k < total; k++) {
        double bound = k < (size_t)U * dim ? bu : bi;
        h[k] = (float)(bound * (2.0 * mrec_rng_uniform(rng) - 1.0));
    }
    if (!st) st = mrec_copy_to_device(ctx, m->ego, h, total * 4);
    free(h);
    if (!st && m->on_gpu) {
        mrec_csr src = mrec_graph_csr(graph);
        st = mrec_graph_upload(ctx, &m->adj, &src); /* Â is symmetric: no transposed copy */
        m->use_ops = 1;
    }
    /* the views' own stream; a first draw, so a batch before any epoch has views */
    m->rng.state = mrec_rng_next(rng);
    if (st || (st = draw_views(m)) || (st = layer_mean(m, m->final, -1))) {
        sgl_destroy(m);
        return st;
    }
    out->name = "SGL", out->self = m, out->n_params = 1;
    out->state[0] = &m->rng.state, out->n_state = 1; /* for a checkpoint */
    out->param[0] = m->ego, out->grad[0] = m->ego_grad, out->size[0] = (int64_t)total;
    out->status = &m->status;
    out->loss_grad = sgl_loss_grad, out->step = sgl_step, out->prepare = sgl_prepare, out->score = sgl_score, out->epoch_start = sgl_epoch_start;
    out->destroy = sgl_destroy;
    out->embed_dim = m->dim, out->embeddings = sgl_embeddings;
    if (m->use_ops) out->stage = sgl_stage, out->launch = sgl_launch;
    return MREC_OK;
}

mrec_status mrec_sgl_set_views(mrec_model *model, const uint8_t *keep) {
    sgl *m = model->self;
    int per_layer = m->augment == 2 ? m->layers : 1;
    mrec_status st = MREC_OK;
    for (int v = 0; v < 2 && !st; v++)
        for (int k = 0; k < per_layer && !st; k++) st = view_graph(m, &m->views[v][k], keep + (size_t)v * m->n_pairs);
    m->views_fixed = 1;
    return st ? st : upload_views(m);
}
