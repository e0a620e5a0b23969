/* ngcfm.c: NGCF-M as the Ducho-meets-Elliot benchmark defines it
 * (external/models/ngcf_m: NGCFM.py, NGCFMModel.py, NGCFLayer.py).
 *
 *   Â       = D^-1 (A + I)                     (mrec_graph_mean_self)
 *   x_0     = [G_u; G_i]
 *   x_{l+1} = normalize(dropout(lrelu(Â x_l W1_l + b1_l + ((Â x_l) * x_l) W2_l + b2_l)))   (slope 0.2)
 *             where training uses Â with each entry dropped with probability node_dropout
 *             (the rest scaled by 1 / (1 - node_dropout)), drawn once per epoch
 *   g       = mean(x_0, .., x_L)                 (users' and items' rows)
 *   p_i     = normalize(f_i P^T + c)             (f_i: the modalities concatenated; fixed)
 *   score   = <g_u, g_i> + <T_u, p_i>
 *   loss    = mean softplus(-clamp(score(u, i+) - score(u, i-), -80, 1e8))
 *             + l_w / 2 (|g_u|^2 + |g_i+|^2 + |g_i-|^2 + |T_u|^2 + |p_i+|^2 + |p_i-|^2) / n
 * Each layer takes the previous layer's normalized output, as the fork's
 * propagate_embeddings does. G, T, W and b start xavier-uniform (b as a
 * (1, d) matrix), P as torch.nn.Linear. Both dropouts draw from the hash
 * stream of mrec_hash_dropout, keyed per step (message dropout, each layer)
 * and per epoch (node dropout) by the model's generator.
 *
 * Two paths compute this: the host loops (a CPU context), and the op path (a
 * GPU context always, a CPU one after mrec_ngcfm_use_ops) where every array,
 * the features and Â with its transpose live on the context's device and
 * each step is an op entry: the dropouts are mrec_hash_dropout with the host
 * path's keys (the same masks; Â^T's entries draw under their number in Â),
 * the batch's rows [g; T or p] are scored and combined by the BPR step of
 * bpr_ops.c and scattered back in batch order. Both paths share the arrays.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 8
#define SLOPE 0.2f

typedef struct {
    int n_users, n_items, n_nodes, dim, layers, n_feat;
    float l_w, dropout, node_dropout;
    const mrec_graph *graph;
    mrec_graph dropped;                       /* the host path: this epoch's Â after node dropout */
    const float *feat;                        /* (I, F), not trained: the caller's */
    const float *feat_ops;                    /* where the ops read it: feat, or its copy on a GPU */
    mrec_rng rng;
    uint64_t step_key, epoch_key;             /* the dropouts' keys: this step's messages, this epoch's entries */
    mrec_arena mem;                           /* on the context's device: every array below */
    float *ego, *ego_grad, *tu, *tu_grad, *pw, *pw_grad, *pb, *pb_grad;
    float *w1[MAX_LAYERS], *b1[MAX_LAYERS], *w2[MAX_LAYERS], *b2[MAX_LAYERS];
    float *gw1[MAX_LAYERS], *gb1[MAX_LAYERS], *gw2[MAX_LAYERS], *gb2[MAX_LAYERS];
    /* per layer (N, d): input x_l (x_0 = ego), Â x_l, the pre-activation, the dropped-out output */
    float *x[MAX_LAYERS + 1], *side[MAX_LAYERS], *pre[MAX_LAYERS], *drop[MAX_LAYERS];
    float *final, *dx, *dnext, *tmp, *tmp2, *tmp3; /* (N, d) */
    float *scoring;                               /* (N, 2d) [final ; T] per user, [final ; p] per item (prepare) */
    float *p, *z;                             /* (I, d) the projected features, after and before normalize (training: the
                                                 batch's distinct items' in the first rows) */
    mrec_batch_items drawn;                   /* the host path: a batch's distinct items and their features */
    float *ones;                              /* (max(N, I)) the op path: column sums as a GEMM */
    float *pos, *neg, *dxb;
    int cap;
    /* the op path */
    int use_ops, on_gpu, ops_cap;
    mrec_csr adj, adj_t;                      /* this epoch's Â there and its transpose */
    const float *g_val, *t_gval;              /* (nnz) Â's entries as built, and its transpose's */
    int32_t *t_edge;                          /* (nnz) each transposed entry's number in Â */
    mrec_arena graph_mem;                     /* the four above */
    mrec_arena batch;
    float *T, *mixed, *rows;                  /* (3 cap, 2d) [g; T or p] of the batch's rows, their gradients; (3 cap, d) */
    mrec_batch_rows nodes, users, items;      /* u, U + i, U + j; u; i, j */
    mrec_bpr_ops bpr;
    mrec_step_keys keys;                      /* the op path's step: each layer's message dropout key */
    mrec_context *ctx;
    mrec_status status;                       /* of the last loss_grad */
    double host_loss;                         /* the last batch's loss on the host path */
} ngcfm;

/* out rows = in rows / max(|row|, 1e-12) */
static void normalize_rows(float *out, const float *in, int rows, int d) {
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)in[(size_t)r * d + k] * in[(size_t)r * d + k];
        float inv = 1.0f / fmaxf((float)sqrt(s), 1e-12f);
        for (int k = 0; k < d; k++) out[(size_t)r * d + k] = in[(size_t)r * d + k] * inv;
    }
}

/* d in, given d out, through out = in / max(|in|, eps): (dout - out <out, dout>) / |in| */
static void normalize_back(float *din, const float *dout, const float *in, const float *out, int rows, int d) {
    for (int r = 0; r < rows; r++) {
        double s = 0, dot = 0;
        for (int k = 0; k < d; k++) s += (double)in[(size_t)r * d + k] * in[(size_t)r * d + k], dot += (double)out[(size_t)r * d + k] * dout[(size_t)r * d + k];
        float n = (float)sqrt(s);
        for (int k = 0; k < d; k++)
            din[(size_t)r * d + k] = n > 1e-12f ? (dout[(size_t)r * d + k] - out[(size_t)r * d + k] * (float)dot) / n
                                              : dout[(size_t)r * d + k] / 1e-12f;
    }
}

/* sum (d) = the column sums of x (rows, d), each summed down the rows in order. */
static void column_sums(float *restrict sum, const float *restrict x, int rows, int d) {
    memset(sum, 0, sizeof(float) * (size_t)d);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < d; k++) sum[k] += x[(size_t)r * d + k];
}

/* Layer l's message dropout key this step. */
static uint64_t layer_key(const ngcfm *m, int l) { return mrec_mix64(m->step_key + (uint64_t)l + 1); }

/* The host path's element-wise stages, row blocks on the pool: each row's
 * values are computed as one loop over it would, so the bits do not depend
 * on the threads (the column sums stay serial). */
#define ROW_TASKS 16

typedef enum {
    F_SIDE_X,   /* tmp = side * x */
    F_ACT,      /* drop = lrelu(pre) (mrec_hash_dropout then drops it in place) */
    F_NORM,     /* x_{l+1} = normalize(drop) */
    F_NORM_P,   /* p = normalize(z) (the items' rows) */
    B_NORM_P,   /* tmp = d z, from dp (tmp2) through p = normalize(z) */
    B_NORM,     /* tmp = d drop, from dnext through x_{l+1} = normalize(drop) */
    B_ACT,      /* tmp = d pre, from the dropout's gradient in tmp; tmp2 = side * x */
    B_SIDE,     /* dside += tmp2 * x; tmp2 *= side */
    B_NEXT,     /* dnext = tmp + tmp2 + dx (dnext is dside here: read before written) */
} stage;

typedef struct {
    ngcfm *m;
    stage st;
    int l, rows;
    float *dside;
} stage_job;

static void stage_task(void *arg, int task, int thread) {
    (void)thread;
    const stage_job *j = arg;
    ngcfm *m = j->m;
    int d = m->dim, l = j->l;
    int lo = (int)((int64_t)j->rows * task / ROW_TASKS), hi = (int)((int64_t)j->rows * (task + 1) / ROW_TASKS);
    size_t e0 = (size_t)lo * d, e1 = (size_t)hi * d;
    /* Each stage reads its arrays through restrict locals: through m->, a
     * store might move m->tmp and no loop would run several lanes at a time. */
    float *restrict tmp = m->tmp, *restrict tmp2 = m->tmp2;
    const float *restrict x = m->x[l];
    switch (j->st) {
    case F_SIDE_X: {
        const float *restrict side = m->side[l];
        for (size_t e = e0; e < e1; e++) tmp[e] = side[e] * x[e];
        break;
    }
    case F_ACT: {
        const float *restrict pre = m->pre[l];
        float *restrict drop = m->drop[l];
        for (size_t e = e0; e < e1; e++) drop[e] = pre[e] > 0 ? pre[e] : SLOPE * pre[e];
        break;
    }
    case F_NORM:
        normalize_rows(m->x[l + 1] + e0, m->drop[l] + e0, hi - lo, d);
        break;
    case F_NORM_P:
        normalize_rows(m->p + e0, m->z + e0, hi - lo, d);
        break;
    case B_NORM_P:
        normalize_back(tmp + e0, tmp2 + e0, m->z + e0, m->p + e0, hi - lo, d);
        break;
    case B_NORM:
        normalize_back(tmp + e0, m->dnext + e0, m->drop[l] + e0, m->x[l + 1] + e0, hi - lo, d);
        break;
    case B_ACT: {
        const float *restrict pre = m->pre[l], *restrict side = m->side[l];
        for (size_t e = e0; e < e1; e++) {
            tmp[e] = pre[e] > 0 ? tmp[e] : SLOPE * tmp[e];
            tmp2[e] = side[e] * x[e];
        }
        break;
    }
    case B_SIDE: {
        const float *restrict side = m->side[l];
        float *restrict dside = j->dside;
        for (size_t e = e0; e < e1; e++) {
            dside[e] += tmp2[e] * x[e];
            tmp2[e] = tmp2[e] * side[e];
        }
        break;
    }
    case B_NEXT: {
        float *restrict dnext = m->dnext;
        const float *restrict dx = m->dx;
        for (size_t e = e0; e < e1; e++) dnext[e] = tmp[e] + tmp2[e] + dx[e];
        break;
    }
    }
}

static void run_stage(ngcfm *m, stage st, int l, int rows, float *dside) {
    stage_job j = {m, st, l, rows, dside};
    mrec_pool_run(m->ctx->pool, stage_task, &j, ROW_TASKS);
}

static const mrec_graph *train_graph(const ngcfm *m) { return m->node_dropout > 0 && m->dropped.row_ptr ? &m->dropped : m->graph; }

static mrec_status forward_ops(ngcfm *m, const uint64_t *keys);

static mrec_status forward(ngcfm *m, int train) {
    if (m->use_ops) return forward_ops(m, NULL); /* the op path trains through stage and launch */
    if (train) m->step_key = mrec_rng_next(&m->rng);
    int d = m->dim, N = m->n_nodes;
    size_t nd = (size_t)N * d;
    mrec_context *ctx = m->ctx;
    mrec_csr g = mrec_graph_csr(train ? train_graph(m) : m->graph);
    memcpy(m->x[0], m->ego, nd * sizeof(float));
    memcpy(m->final, m->ego, nd * sizeof(float));
    mrec_status st;
    for (int l = 0; l < m->layers; l++) {
        if ((st = mrec_spmm(ctx, m->side[l], &g, m->x[l], d, 0))) return st;
        run_stage(m, F_SIDE_X, l, N, NULL);
        if ((st = mrec_gemm(ctx, m->pre[l], m->side[l], m->w1[l], m->b1[l], 1, 0, 0, 0, N, d, d, d, d, d))) return st;
        if ((st = mrec_gemm(ctx, m->pre[l], m->tmp, m->w2[l], m->b2[l], 1, 1, 0, 0, N, d, d, d, d, d))) return st;
        run_stage(m, F_ACT, l, N, NULL);
        if (train && m->dropout > 0 && (st = mrec_hash_dropout(ctx, m->drop[l], m->drop[l], NULL, (int64_t)nd, m->dropout, layer_key(m, l))))
            return st;
        run_stage(m, F_NORM, l, N, NULL);
        if ((st = mrec_add(ctx, m->final, m->final, m->x[l + 1], (int64_t)nd))) return st;
    }
    if ((st = mrec_scale(ctx, m->final, m->final, 1.0f / (m->layers + 1), (int64_t)nd))) return st;
    if (train) return MREC_OK; /* a batch projects its own items' features */
    st = mrec_gemm(ctx, m->z, m->feat, m->pw, m->pb, 1, 0, 0, 1, m->n_items, d, m->n_feat, m->n_feat, m->n_feat, d);
    if (!st) run_stage(m, F_NORM_P, 0, m->n_items, NULL);
    return st;
}

static mrec_status batch_loss_grad(ngcfm *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, F = m->n_feat;
    size_t nd = (size_t)N * d;
    mrec_context *ctx = m->ctx;
    if (n > m->cap) {
        free(m->pos), free(m->neg), free(m->dxb);
        m->pos = malloc(sizeof(float) * (size_t)n), m->neg = malloc(sizeof(float) * (size_t)n), m->dxb = malloc(sizeof(float) * (size_t)n);
        m->cap = m->pos && m->neg && m->dxb ? n : 0;
        if (!m->cap) return mrec_fail(MREC_ERR_NOMEM, "ngcfm: a batch of %d", n);
    }
    mrec_status st = forward(m, 1);
    /* p of the batch's distinct items, once each, in z's and p's first rows: row[b] the positive b's, row[n + b] the
     * negative's (the fork projects every item at each step; the scores and gradients are the same) */
    if (!st) st = mrec_batch_items_set(&m->drawn, I, i, j, n);
    if (!st) st = mrec_gemm_rows(ctx, m->z, m->feat, m->drawn.uniq, m->pw, NULL, m->pb, 1, 0, 0, 1, m->drawn.n, d, F, F, F, d);
    if (st) return st;
    run_stage(m, F_NORM_P, 0, m->drawn.n, NULL);
    const int32_t *row = m->drawn.row;
    double reg = 0;
    for (int b = 0; b < n; b++) {
        const float *gu = m->final + (size_t)u[b] * d, *gi = m->final + (size_t)(U + i[b]) * d, *gj = m->final + (size_t)(U + j[b]) * d;
        const float *t = m->tu + (size_t)u[b] * d, *pi = m->p + (size_t)row[b] * d, *pj = m->p + (size_t)row[n + b] * d;
        float sp = 0, sn = 0;
        for (int k = 0; k < d; k++) {
            sp += gu[k] * gi[k] + t[k] * pi[k], sn += gu[k] * gj[k] + t[k] * pj[k];
            reg += (double)gu[k] * gu[k] + (double)gi[k] * gi[k] + (double)gj[k] * gj[k] + (double)t[k] * t[k] + (double)pi[k] * pi[k] +
                   (double)pj[k] * pj[k];
        }
        m->pos[b] = sp, m->neg[b] = sn;
    }
    double loss = mrec_bpr_clamped_loss(m->dxb, m->pos, m->neg, n) + m->l_w / 2 * reg / n;
    float c = m->l_w / n;
    memset(m->dx, 0, nd * sizeof(float));
    memset(m->tu_grad, 0, sizeof(float) * (size_t)U * d);
    float *dp = m->tmp2; /* (distinct items, d) */
    memset(dp, 0, sizeof(float) * (size_t)m->drawn.n * d);
    for (int b = 0; b < n; b++) {
        const float *gu = m->final + (size_t)u[b] * d, *gi = m->final + (size_t)(U + i[b]) * d, *gj = m->final + (size_t)(U + j[b]) * d;
        const float *t = m->tu + (size_t)u[b] * d, *pi = m->p + (size_t)row[b] * d, *pj = m->p + (size_t)row[n + b] * d;
        float *du = m->dx + (size_t)u[b] * d, *di = m->dx + (size_t)(U + i[b]) * d, *dj = m->dx + (size_t)(U + j[b]) * d;
        float *dt = m->tu_grad + (size_t)u[b] * d, *dpi = dp + (size_t)row[b] * d, *dpj = dp + (size_t)row[n + b] * d, g = m->dxb[b];
        for (int k = 0; k < d; k++) {
            du[k] += g * (gi[k] - gj[k]) + c * gu[k];
            di[k] += g * gu[k] + c * gi[k];
            dj[k] += -g * gu[k] + c * gj[k];
            dt[k] += g * (pi[k] - pj[k]) + c * t[k];
            dpi[k] += g * t[k] + c * pi[k];
            dpj[k] += -g * t[k] + c * pj[k];
        }
    }
    /* p = normalize(z), z = F P^T + c over the distinct items (a repeated item's gradient rows summed in dp) */
    run_stage(m, B_NORM_P, 0, m->drawn.n, NULL); /* dp is tmp2 */
    if ((st = mrec_gemm_rows(ctx, m->pw_grad, m->tmp, NULL, m->feat, m->drawn.uniq, NULL, 1, 0, 1, 0, d, F, m->drawn.n, d, F, F)))
        return st;
    column_sums(m->pb_grad, m->tmp, m->drawn.n, d);
    /* g = mean of the layers: each x_l gets dg / (L + 1); go down the layers */
    if ((st = mrec_scale(ctx, m->dx, m->dx, 1.0f / (m->layers + 1), (int64_t)nd))) return st;
    memcpy(m->dnext, m->dx, nd * sizeof(float)); /* d x_L */
    mrec_csr gr = mrec_graph_csr(train_graph(m));
    for (int l = m->layers - 1; l >= 0; l--) {
        /* x_{l+1} = normalize(drop): dnext is the total gradient of x_{l+1} */
        run_stage(m, B_NORM, l, N, NULL);
        /* dropout (its mask again from its key), then LeakyReLU: tmp becomes d pre; pre = side W1 + b1 + (side * x) W2 + b2,
         * so tmp2 = side * x */
        if (m->dropout > 0 && (st = mrec_hash_dropout(ctx, m->tmp, m->tmp, NULL, (int64_t)nd, m->dropout, layer_key(m, l)))) return st;
        run_stage(m, B_ACT, l, N, NULL);
        if ((st = mrec_gemm(ctx, m->gw1[l], m->side[l], m->tmp, NULL, 1, 0, 1, 0, d, d, N, d, d, d))) return st;
        if ((st = mrec_gemm(ctx, m->gw2[l], m->tmp2, m->tmp, NULL, 1, 0, 1, 0, d, d, N, d, d, d))) return st;
        column_sums(m->gb1[l], m->tmp, N, d);
        memcpy(m->gb2[l], m->gb1[l], sizeof(float) * (size_t)d);
        /* d(side * x) = dpre W2^T -> side gets it times x, x times side; side also gets dpre W1^T */
        if ((st = mrec_gemm(ctx, m->tmp2, m->tmp, m->w2[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d))) return st;
        float *dside = m->dnext; /* dnext is consumed: reuse it for d side */
        if ((st = mrec_gemm(ctx, dside, m->tmp, m->w1[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d))) return st;
        run_stage(m, B_SIDE, l, N, dside); /* tmp2 becomes the direct part of d x_l */
        /* side = Â x_l: d x_l = Â^T dside + direct + the mean's share */
        if ((st = mrec_spmm(ctx, m->tmp, &gr, dside, d, 1))) return st;
        run_stage(m, B_NEXT, l, N, NULL);
    }
    memcpy(m->ego_grad, m->dnext, nd * sizeof(float));
    *loss_out = loss;
    return MREC_OK;
}

/* ---- the op path ---- */

/* forward through the op entries: training with this epoch's Â and this step's message dropout, its layers' keys in
 * the context's memory (the stage drew them), or for scoring (keys NULL). */
static mrec_status forward_ops(ngcfm *m, const uint64_t *keys) {
    int train = keys != NULL;
    mrec_context *ctx = m->ctx;
    int d = m->dim, N = m->n_nodes, I = m->n_items;
    int64_t nd = (int64_t)N * d;
    /* the graph as built for scoring; this epoch's dropped entries for training */
    mrec_csr g = m->adj, gt = m->adj_t;
    if (!train || m->node_dropout <= 0) g.val = m->g_val, gt.val = m->t_gval;
    g.transposed = &gt;
    mrec_status st = mrec_scale(ctx, m->x[0], m->ego, 1.0f, nd); /* copies: x * 1 is exact */
    if (!st) st = mrec_scale(ctx, m->final, m->ego, 1.0f, nd);
    for (int l = 0; l < m->layers && !st; l++) {
        st = mrec_spmm(ctx, m->side[l], &g, m->x[l], d, 0);
        if (!st) st = mrec_mul(ctx, m->tmp, m->side[l], m->x[l], nd);
        if (!st) st = mrec_gemm(ctx, m->pre[l], m->side[l], m->w1[l], m->b1[l], 1, 0, 0, 0, N, d, d, d, d, d);
        if (!st) st = mrec_gemm(ctx, m->pre[l], m->tmp, m->w2[l], m->b2[l], 1, 1, 0, 0, N, d, d, d, d, d);
        if (!st) st = mrec_activation(ctx, m->drop[l], m->pre[l], MREC_ACT_LEAKY_RELU, SLOPE, nd);
        if (!st && train && m->dropout > 0) st = mrec_hash_dropout_at(ctx, m->drop[l], m->drop[l], NULL, nd, m->dropout, keys + l);
        if (!st) st = mrec_l2_normalize_rows(ctx, m->x[l + 1], m->drop[l], 1e-12f, N, d);
        if (!st) st = mrec_add(ctx, m->final, m->final, m->x[l + 1], nd);
    }
    if (!st) st = mrec_scale(ctx, m->final, m->final, 1.0f / (m->layers + 1), nd);
    if (!st) st = mrec_gemm(ctx, m->z, m->feat_ops, m->pw, m->pb, 1, 0, 0, 1, I, d, m->n_feat, m->n_feat, m->n_feat, d);
    return st ? st : mrec_l2_normalize_rows(ctx, m->p, m->z, 1e-12f, I, d);
}

static void carve_batch(ngcfm *m, mrec_arena *a) {
    size_t c = (size_t)m->ops_cap, d = (size_t)m->dim;
    m->T = mrec_arena_alloc(a, sizeof(float) * 3 * c * 2 * d), m->mixed = mrec_arena_alloc(a, sizeof(float) * 3 * c * 2 * d);
    m->rows = mrec_arena_alloc(a, sizeof(float) * 3 * c * d);
}

static mrec_status ensure_ops_batch(ngcfm *m, int n) {
    if (n <= m->ops_cap) return MREC_OK;
    mrec_arena_release(&m->batch, m->ctx->cuda);
    m->ops_cap = n;
    mrec_arena measure = mrec_arena_measure();
    carve_batch(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->batch, measure.peak, m->ctx->device, m->ctx->cuda);
    if (!st) carve_batch(m, &m->batch);
    else m->ops_cap = 0;
    return st;
}

/* batch_loss_grad through the op entries, in the trainer's two halves (mrec_model.stage, .launch): the host's part
 * (buffers grown, the step's dropout keys drawn, the batch's nodes, users, items and BPR rows checked, all sent up),
 * then the launches. */
static mrec_status ngcfm_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    ngcfm *m = self;
    mrec_context *ctx = m->ctx;
    const int32_t *uij[3] = {u, i, j};
    const int node_off[3] = {0, m->n_users, m->n_users}, zero[2] = {0, 0};
    uint64_t keys[MAX_LAYERS];
    m->step_key = mrec_rng_next(&m->rng);
    for (int l = 0; l < m->layers; l++) keys[l] = layer_key(m, l);
    mrec_status st = ensure_ops_batch(m, n);
    if (!st) st = mrec_step_keys_send(&m->keys, ctx, keys, m->layers);
    if (!st) st = mrec_batch_rows_stage(&m->nodes, ctx, m->n_nodes, 3, uij, node_off, n);
    if (!st) st = mrec_batch_rows_stage(&m->users, ctx, m->n_users, 1, uij, zero, n);
    if (!st) st = mrec_batch_rows_stage(&m->items, ctx, m->n_items, 2, uij + 1, zero, n);
    const int32_t *row = m->items.h_iota;
    return st ? st : mrec_bpr_ops_stage(&m->bpr, ctx, row, row, row + n, n, n, 3 * m->ops_cap, 2 * m->dim);
}

static mrec_status ops_launch(ngcfm *m) {
    mrec_context *ctx = m->ctx;
    int d = m->dim, D = 2 * d, U = m->n_users, I = m->n_items, N = m->n_nodes, n = m->bpr.n;
    int64_t nd = (int64_t)N * d;
    mrec_status st = forward_ops(m, m->keys.at);
    if (!st) st = mrec_batch_rows_index(&m->nodes);
    if (!st) st = mrec_batch_rows_index(&m->users);
    if (!st) st = mrec_batch_rows_index(&m->items);
    /* T (3n, 2d): [g_u ; T_u], [g_i ; p_i], [g_j ; p_j] */
    float *Tc = m->T + (size_t)n * D;
    if (!st) st = mrec_embedding_checked(ctx, m->rows, m->final, m->nodes.ids, 3 * n, N, d);
    if (!st) st = mrec_copy_rows(ctx, m->T, D, m->rows, d, 3 * n, d);
    if (!st) st = mrec_embedding_checked(ctx, m->rows, m->tu, m->users.ids, n, U, d);
    if (!st) st = mrec_copy_rows(ctx, m->T + d, D, m->rows, d, n, d);
    if (!st) st = mrec_embedding_checked(ctx, m->rows, m->p, m->items.ids, 2 * n, I, d);
    if (!st) st = mrec_copy_rows(ctx, Tc + d, D, m->rows, d, 2 * n, d);
    /* the fork's loss: l_w / 2 |T|^2 / n beside the clamped softplus (l_w / 2 * s = l_w * s / 2 exactly) */
    mrec_bpr_spec spec = {.form = MREC_BPR_CLAMPED, .weight = 1, .reg_form = MREC_BPR_REG_SQUARED_ALL, .reg = m->l_w, .reg_div = n};
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->T, m->T);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    /* each row's gradient; the g halves to dx's rows, T's to the users, p's to the items (dp in tmp2) */
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->mixed, m->T, 1, MREC_BPR_PARTS_ALL);
    if (!st) st = mrec_copy_rows(ctx, m->rows, d, m->mixed, D, 3 * n, d);
    if (!st) st = mrec_batch_rows_scatter(&m->nodes, m->dx, m->rows, d);
    if (!st) st = mrec_copy_rows(ctx, m->rows, d, m->mixed + d, D, n, d);
    if (!st) st = mrec_batch_rows_scatter(&m->users, m->tu_grad, m->rows, d);
    if (!st) st = mrec_copy_rows(ctx, m->rows, d, m->mixed + (size_t)n * D + d, D, 2 * n, d);
    if (!st) st = mrec_batch_rows_scatter(&m->items, m->tmp2, m->rows, d);
    /* p = normalize(z), z = F P^T + c */
    if (!st) st = mrec_l2_normalize_rows_back(ctx, m->tmp, m->tmp2, m->p, m->z, 1e-12f, 0, I, d);
    if (!st) st = mrec_gemm(ctx, m->pw_grad, m->tmp, m->feat_ops, NULL, 1, 0, 1, 0, d, m->n_feat, I, d, m->n_feat, m->n_feat);
    if (!st) st = mrec_gemm(ctx, m->pb_grad, m->ones, m->tmp, NULL, 1, 0, 0, 0, 1, d, I, I, d, d);
    /* g = mean of the layers: each x_l gets dg / (L + 1); go down the layers */
    if (!st) st = mrec_scale(ctx, m->dx, m->dx, 1.0f / (m->layers + 1), nd);
    if (!st) st = mrec_scale(ctx, m->dnext, m->dx, 1.0f, nd);
    mrec_csr g = m->adj, gt = m->adj_t;
    if (m->node_dropout <= 0) g.val = m->g_val, gt.val = m->t_gval;
    g.transposed = &gt;
    for (int l = m->layers - 1; l >= 0 && !st; l--) {
        /* x_{l+1} = normalize(drop); the dropout's mask again from its key; LeakyReLU: tmp becomes d pre */
        st = mrec_l2_normalize_rows_back(ctx, m->tmp, m->dnext, m->x[l + 1], m->drop[l], 1e-12f, 0, N, d);
        if (!st && m->dropout > 0) st = mrec_hash_dropout_at(ctx, m->tmp, m->tmp, NULL, nd, m->dropout, m->keys.at + l);
        if (!st) st = mrec_leaky_relu_back(ctx, m->tmp, m->tmp, m->pre[l], SLOPE, nd);
        /* pre = side W1 + b1 + (side * x) W2 + b2 */
        if (!st) st = mrec_mul(ctx, m->tmp2, m->side[l], m->x[l], nd);
        if (!st) st = mrec_gemm(ctx, m->gw1[l], m->side[l], m->tmp, NULL, 1, 0, 1, 0, d, d, N, d, d, d);
        if (!st) st = mrec_gemm(ctx, m->gw2[l], m->tmp2, m->tmp, NULL, 1, 0, 1, 0, d, d, N, d, d, d);
        if (!st) st = mrec_gemm(ctx, m->gb1[l], m->ones, m->tmp, NULL, 1, 0, 0, 0, 1, d, N, N, d, d);
        if (!st) st = mrec_scale(ctx, m->gb2[l], m->gb1[l], 1.0f, d);
        /* d(side * x) = dpre W2^T -> side gets it times x, x times side; side also gets dpre W1^T */
        float *dside = m->dnext;
        if (!st) st = mrec_gemm(ctx, m->tmp2, m->tmp, m->w2[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d);
        if (!st) st = mrec_gemm(ctx, dside, m->tmp, m->w1[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d);
        if (!st) st = mrec_mul(ctx, m->tmp3, m->tmp2, m->x[l], nd);
        if (!st) st = mrec_add(ctx, dside, dside, m->tmp3, nd);
        if (!st) st = mrec_mul(ctx, m->tmp2, m->tmp2, m->side[l], nd);
        /* side = Â x_l: d x_l = Â^T dside + direct + the mean's share */
        if (!st) st = mrec_spmm(ctx, m->tmp, &g, dside, d, 1);
        if (!st) st = mrec_add(ctx, m->dnext, m->tmp, m->tmp2, nd);
        if (!st) st = mrec_add(ctx, m->dnext, m->dnext, m->dx, nd);
    }
    return st ? st : mrec_scale(ctx, m->ego_grad, m->dnext, 1.0f, nd);
}

static mrec_status ngcfm_launch(void *self, const double **loss) {
    ngcfm *m = self;
    mrec_status st = ops_launch(m);
    *loss = st ? NULL : m->bpr.loss;
    return st;
}

static mrec_status ops_loss_grad(ngcfm *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mrec_status st = ngcfm_stage(m, u, i, j, n);
    return st ? st : ops_launch(m);
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static const double *ngcfm_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    ngcfm *m = self;
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_loss_grad(m, u, i, j, n) : batch_loss_grad(m, &m->host_loss, u, i, j, n);
    return m->status ? NULL : m->use_ops ? m->bpr.loss : &m->host_loss;
}

static double ngcfm_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    ngcfm *m = self;
    return mrec_step_loss(m->ctx, &m->status, ngcfm_step(self, u, i, j, n));
}

/* the fork's sparse_dropout: entries kept with probability 1 - p, scaled by 1 / (1 - p), drawn under a new key */
static mrec_status ngcfm_epoch_start(void *self) {
    ngcfm *m = self;
    if (m->node_dropout <= 0) return MREC_OK;
    const mrec_graph *g = m->graph;
    int64_t nnz = g->row_ptr[g->n_nodes];
    m->epoch_key = mrec_rng_next(&m->rng);
    if (m->use_ops) { /* Â's entries and the transpose's, each under its number in Â */
        mrec_status st = mrec_hash_dropout(m->ctx, (float *)m->adj.val, m->g_val, NULL, nnz, m->node_dropout, m->epoch_key);
        return st ? st : mrec_hash_dropout(m->ctx, (float *)m->adj_t.val, m->t_gval, m->t_edge, nnz, m->node_dropout, m->epoch_key);
    }
    if (!m->dropped.row_ptr) {
        m->dropped.n_nodes = g->n_nodes;
        m->dropped.row_ptr = malloc(sizeof(int64_t) * ((size_t)g->n_nodes + 1));
        m->dropped.col = malloc(sizeof(int32_t) * (size_t)(nnz + 1)), m->dropped.val = malloc(sizeof(float) * (size_t)(nnz + 1));
        if (!m->dropped.row_ptr || !m->dropped.col || !m->dropped.val) {
            mrec_graph_free(&m->dropped);
            return mrec_fail(MREC_ERR_NOMEM, "ngcfm: node dropout over %lld entries", (long long)nnz);
        }
        memcpy(m->dropped.row_ptr, g->row_ptr, sizeof(int64_t) * ((size_t)g->n_nodes + 1));
        memcpy(m->dropped.col, g->col, sizeof(int32_t) * (size_t)nnz);
    }
    for (int64_t e = 0; e < nnz; e++)
        m->dropped.val[e] = mrec_hash_uniform(m->epoch_key, (uint64_t)e) < m->node_dropout ? 0.0f : g->val[e] / (1.0f - m->node_dropout);
    return MREC_OK;
}

/* <g_u, g_i> + <T_u, p_i> = <[g_u ; T_u], [g_i ; p_i]>: the two parts side by side, so that the scores are one
 * GEMM and a saved model (which keeps these vectors) scores with the same bits */
static mrec_status ngcfm_prepare(void *self) {
    ngcfm *m = self;
    int d = m->dim, U = m->n_users, I = m->n_items;
    mrec_status st = forward(m, 0);
    if (!st) st = mrec_copy_rows(m->ctx, m->scoring, 2 * d, m->final, d, U + I, d);
    if (!st) st = mrec_copy_rows(m->ctx, m->scoring + d, 2 * d, m->tu, d, U, d);
    if (!st) st = mrec_copy_rows(m->ctx, m->scoring + (size_t)U * 2 * d + d, 2 * d, m->p, d, I, d);
    return st;
}

static mrec_status ngcfm_score(void *self, int u0, int n, float *scores) {
    ngcfm *m = self;
    return mrec_score_final(m->ctx, scores, m->scoring, m->n_users, m->n_items, 2 * m->dim, u0, n);
}

static mrec_status ngcfm_embeddings(void *self, float *users, float *items) {
    ngcfm *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->scoring, m->n_users, m->n_items, 2 * m->dim);
}

static void ngcfm_destroy(void *self) {
    ngcfm *m = self;
    mrec_bpr_ops_free(&m->bpr);
    mrec_step_keys_free(&m->keys);
    mrec_batch_rows_free(&m->nodes), mrec_batch_rows_free(&m->users), mrec_batch_rows_free(&m->items);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->graph_mem.base) mrec_arena_release(&m->graph_mem, m->ctx->cuda);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m->pos), free(m->neg), free(m->dxb);
    mrec_batch_items_free(&m->drawn);
    mrec_graph_free(&m->dropped);
    free(m);
}

/* Every array from one allocation on the context's device (a measuring arena counts them): the host path's masks
 * on a CPU context only, the features' copy on a GPU only. */
static void carve(ngcfm *m, mrec_arena *a) {
    size_t d = (size_t)m->dim, nd = (size_t)m->n_nodes * d * 4, id = (size_t)m->n_items * d * 4, dd = d * d * 4;
    size_t F = (size_t)m->n_feat;
    m->ego = mrec_arena_alloc(a, nd), m->ego_grad = mrec_arena_alloc(a, nd);
    m->tu = mrec_arena_alloc(a, (size_t)m->n_users * d * 4), m->tu_grad = mrec_arena_alloc(a, (size_t)m->n_users * d * 4);
    m->pw = mrec_arena_alloc(a, d * F * 4), m->pw_grad = mrec_arena_alloc(a, d * F * 4);
    m->pb = mrec_arena_alloc(a, d * 4), m->pb_grad = mrec_arena_alloc(a, d * 4);
    for (int l = 0; l < m->layers; l++) {
        m->w1[l] = mrec_arena_alloc(a, dd), m->b1[l] = mrec_arena_alloc(a, d * 4);
        m->w2[l] = mrec_arena_alloc(a, dd), m->b2[l] = mrec_arena_alloc(a, d * 4);
        m->gw1[l] = mrec_arena_alloc(a, dd), m->gb1[l] = mrec_arena_alloc(a, d * 4);
        m->gw2[l] = mrec_arena_alloc(a, dd), m->gb2[l] = mrec_arena_alloc(a, d * 4);
        m->x[l + 1] = mrec_arena_alloc(a, nd), m->side[l] = mrec_arena_alloc(a, nd);
        m->pre[l] = mrec_arena_alloc(a, nd), m->drop[l] = mrec_arena_alloc(a, nd);
    }
    float **big[7] = {&m->x[0], &m->final, &m->dx, &m->dnext, &m->tmp, &m->tmp2, &m->tmp3};
    for (int k = 0; k < 7; k++) *big[k] = mrec_arena_alloc(a, nd);
    m->p = mrec_arena_alloc(a, id), m->z = mrec_arena_alloc(a, id);
    m->scoring = mrec_arena_alloc(a, 2 * nd);
    m->ones = mrec_arena_alloc(a, (size_t)(m->n_nodes > m->n_items ? m->n_nodes : m->n_items) * 4);
    m->feat_ops = m->on_gpu ? mrec_arena_alloc(a, sizeof(float) * (size_t)m->n_items * F) : m->feat;
}

/* The op path's graphs (a measuring arena counts them): Â and its transpose, each with this epoch's entries, and
 * their entries as built. */
static void carve_graphs(ngcfm *m, mrec_arena *a) {
    int N = m->n_nodes;
    int64_t nnz = m->graph->row_ptr[N];
    m->adj = mrec_graph_carve(a, N, N, nnz, m->ctx->device), m->adj_t = mrec_graph_carve(a, N, N, nnz, m->ctx->device);
    m->g_val = mrec_arena_alloc(a, sizeof(float) * (size_t)(nnz + 1)), m->t_gval = mrec_arena_alloc(a, sizeof(float) * (size_t)(nnz + 1));
    m->t_edge = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)(nnz + 1));
}

/* Reserves the op path's graphs and fills them: Â and its transpose (built here, each entry with its number in Â),
 * this epoch's entries starting as built. */
static mrec_status ops_setup(ngcfm *m) {
    const mrec_graph *g = m->graph;
    int N = m->n_nodes;
    int64_t nnz = g->row_ptr[N];
    mrec_arena measure = mrec_arena_measure();
    carve_graphs(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->graph_mem, measure.peak, m->ctx->device, m->ctx->cuda);
    if (st) return st;
    carve_graphs(m, &m->graph_mem);
    int64_t *t_ptr = malloc(sizeof *t_ptr * ((size_t)N + 1));
    int32_t *t_col = malloc(sizeof *t_col * (size_t)(nnz + 1)), *t_edge = malloc(sizeof *t_edge * (size_t)(nnz + 1));
    float *t_val = malloc(sizeof *t_val * (size_t)(nnz + 1));
    st = t_ptr && t_col && t_edge && t_val ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "ngcfm: the transposed graph");
    if (!st) {
        mrec_graph_transpose_edges(t_ptr, t_col, t_edge, t_val, g);
        mrec_csr src = mrec_graph_csr(g), src_t = {.n_rows = N, .n_cols = N, .row_ptr = t_ptr, .col = t_col, .val = t_val};
        st = mrec_graph_upload(m->ctx, &m->adj, &src);
        if (!st) st = mrec_graph_upload(m->ctx, &m->adj_t, &src_t);
        if (!st) st = mrec_copy_to_device(m->ctx, (float *)m->g_val, g->val, sizeof(float) * (size_t)nnz);
        if (!st) st = mrec_copy_to_device(m->ctx, (float *)m->t_gval, t_val, sizeof(float) * (size_t)nnz);
        if (!st) st = mrec_copy_to_device(m->ctx, m->t_edge, t_edge, sizeof(int32_t) * (size_t)nnz);
    }
    free(t_ptr), free(t_col), free(t_edge), free(t_val);
    return st;
}

mrec_status mrec_ngcfm_use_ops(mrec_model *model) {
    ngcfm *m = model->self;
    if (m->use_ops) return MREC_OK;
    mrec_status st = ops_setup(m);
    if (st) return st;
    m->use_ops = 1;
    model->stage = ngcfm_stage, model->launch = ngcfm_launch;
    /* an epoch already under way keeps its dropped entries: the host's dropped graph is this epoch's Â */
    if (m->dropped.row_ptr) {
        int64_t nnz = m->graph->row_ptr[m->n_nodes];
        st = mrec_hash_dropout(m->ctx, (float *)m->adj.val, m->g_val, NULL, nnz, m->node_dropout, m->epoch_key);
        if (!st) st = mrec_hash_dropout(m->ctx, (float *)m->adj_t.val, m->t_gval, m->t_edge, nnz, m->node_dropout, m->epoch_key);
    }
    return st;
}

static void xavier_uniform(float *w, int rows, int cols, mrec_rng *rng) {
    double bound = sqrt(6.0 / (rows + cols));
    for (size_t e = 0; e < (size_t)rows * cols; e++) w[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
}

mrec_status mrec_ngcfm_create(mrec_model *out, const mrec_graph *mean_self_adj, int n_users, int n_items, const float *feat,
                              int n_feat, int dim, int layers, float l_w, float dropout, float node_dropout, mrec_rng *rng,
                              mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    if (mean_self_adj->n_nodes != n_users + n_items || layers < 1 || layers > MAX_LAYERS || !(dropout >= 0 && dropout < 1) ||
        !(node_dropout >= 0 && node_dropout < 1))
        return mrec_fail(MREC_ERR_ARG, "ngcfm: %d layers (1..%d), dropouts %g and %g (0 <= p < 1), graph of %d nodes", layers,
                         MAX_LAYERS, dropout, node_dropout, mean_self_adj->n_nodes);
    ngcfm *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "ngcfm");
    m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items, m->dim = dim, m->layers = layers;
    m->n_feat = n_feat, m->l_w = l_w, m->dropout = dropout, m->node_dropout = node_dropout, m->graph = mean_self_adj;
    m->feat = feat, m->ctx = ctx, m->on_gpu = ctx->device != MREC_DEVICE_CPU;
    m->rng.state = mrec_rng_next(rng);
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        free(m);
        return st;
    }
    carve(m, &m->mem);
    /* the values are drawn on the host in any case, so a seed gives the same start on every device */
    size_t nd = (size_t)m->n_nodes * dim, nu = (size_t)n_users * dim, big = nd > (size_t)dim * n_feat ? nd : (size_t)dim * n_feat;
    big = big > (size_t)dim * dim ? big : (size_t)dim * dim;
    size_t nones = (size_t)(m->n_nodes > n_items ? m->n_nodes : n_items);
    float *h = malloc(sizeof(float) * (big > nones ? big : nones));
    if (!h) st = mrec_fail(MREC_ERR_NOMEM, "ngcfm: %d users, %d items, %d layers", n_users, n_items, layers);
    if (!st) {
        xavier_uniform(h, n_users, dim, rng), xavier_uniform(h + nu, n_items, dim, rng);
        st = mrec_copy_to_device(ctx, m->ego, h, nd * 4);
    }
    for (int l = 0; l < layers && !st; l++) {
        float *dst[4] = {m->w1[l], m->b1[l], m->w2[l], m->b2[l]};
        for (int k = 0; k < 4 && !st; k++) {
            int rows = k % 2 ? 1 : dim;
            xavier_uniform(h, rows, dim, rng);
            st = mrec_copy_to_device(ctx, dst[k], h, (size_t)rows * dim * 4);
        }
    }
    if (!st) xavier_uniform(h, n_users, dim, rng), st = mrec_copy_to_device(ctx, m->tu, h, nu * 4);
    double bound = 1.0 / sqrt((double)n_feat);
    if (!st) {
        for (size_t e = 0; e < (size_t)dim * n_feat; e++) h[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
        st = mrec_copy_to_device(ctx, m->pw, h, (size_t)dim * n_feat * 4);
    }
    if (!st) {
        for (int e = 0; e < dim; e++) h[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
        st = mrec_copy_to_device(ctx, m->pb, h, (size_t)dim * 4);
    }
    if (!st) {
        for (size_t e = 0; e < nones; e++) h[e] = 1.0f;
        st = mrec_copy_to_device(ctx, m->ones, h, nones * 4);
    }
    free(h);
    if (!st && m->on_gpu) st = mrec_copy_to_device(ctx, (float *)m->feat_ops, feat, sizeof(float) * (size_t)n_items * n_feat);
    if (!st && m->on_gpu && !(st = ops_setup(m))) m->use_ops = 1;
    if (st) {
        ngcfm_destroy(m);
        return st;
    }
    out->name = "NGCF-M", out->self = m;
    out->state[0] = &m->rng.state, out->state[1] = &m->step_key, out->state[2] = &m->epoch_key, out->n_state = 3; /* for a checkpoint */
    int p = 0;
    out->param[p] = m->ego, out->grad[p] = m->ego_grad, out->size[p++] = (int64_t)nd;
    for (int l = 0; l < layers; l++) {
        out->param[p] = m->w1[l], out->grad[p] = m->gw1[l], out->size[p++] = (int64_t)dim * dim;
        out->param[p] = m->b1[l], out->grad[p] = m->gb1[l], out->size[p++] = dim;
        out->param[p] = m->w2[l], out->grad[p] = m->gw2[l], out->size[p++] = (int64_t)dim * dim;
        out->param[p] = m->b2[l], out->grad[p] = m->gb2[l], out->size[p++] = dim;
    }
    out->param[p] = m->tu, out->grad[p] = m->tu_grad, out->size[p++] = (int64_t)n_users * dim;
    out->param[p] = m->pw, out->grad[p] = m->pw_grad, out->size[p++] = (int64_t)dim * n_feat;
    out->param[p] = m->pb, out->grad[p] = m->pb_grad, out->size[p++] = dim;
    out->n_params = p;
    out->status = &m->status;
    out->loss_grad = ngcfm_loss_grad, out->step = ngcfm_step, out->epoch_start = ngcfm_epoch_start, out->prepare = ngcfm_prepare, out->score = ngcfm_score;
    out->destroy = ngcfm_destroy;
    out->embed_dim = 2 * m->dim, out->embeddings = ngcfm_embeddings;
    if (m->use_ops) out->stage = ngcfm_stage, out->launch = ngcfm_launch;
    return MREC_OK;
}
