/* bm3.c: BM3 as MMRec defines it (src/models/bm3.py): no negative sampling;
 * each view is pulled towards a dropped-out copy of another.
 *
 *   F      = mean(E_0, Â E_0, .., Â^L E_0),  E_0 = [U; I]   (LightGCN)
 *   u      = F_u,  i = F_i + I_i,  z_m = X_m W_m^T + b_m     (X_m trainable)
 *   P(x)   = W_p x + b_p                                   (the predictor)
 *   targets (no gradient): dropout_p(u), dropout_p(i), dropout_p(z_m)
 *   loss   = [1 - cos(P(u), i~)] + [1 - cos(P(i), u~)]           (batch means)
 *            + reg (|u|_F + |i|_F) / n_items                   (MMRec's EmbLoss on
 *              every user and item row, divided by the item count)
 *            + cl sum_m [1 - cos(P(z_m), i~)] + [1 - cos(P(z_m), z~_m)]
 * over a batch of (user, item) training pairs; x~ is x dropped out (each
 * value zeroed with probability p, the rest divided by 1 - p), drawn from the
 * hash stream of mrec_hash_dropout under keys the model's own generator gives
 * each step. Scoring: <P(u), P(i)>. U, I start xavier-uniform; W_p and W_m
 * xavier-normal; biases as torch.nn.Linear.
 *
 * Two paths compute this: the host loops (a CPU context), and the op path (a
 * GPU context always, a CPU one after mrec_bm3_use_ops) where every array,
 * the features and a copy of the graph stay on the context's device: the
 * targets are mrec_hash_dropout under the host path's keys (the same masks),
 * a cosine's gradient is the backward of unit rows (mrec_l2_normalize_rows),
 * the batch's rows are gathered and their gradients scattered back in batch
 * order, and EmbLoss's norms are column sums by GEMM. The batch's loss stays
 * on the device, and the step's dropout keys go up with its rows, so its
 * launches replay as one CUDA graph on a GPU. Both paths share the model's
 * arrays.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MOD 4

typedef struct {
    int n_users, n_items, n_nodes, dim, layers, n_mod;
    float reg, cl, dropout;
    const mrec_graph *graph;
    mrec_csr adj;                             /* the graph as the ops see it: itself, or its copy on the device */
    mrec_rng rng;
    uint64_t key;                             /* this step's dropout key */
    mrec_arena mem;                           /* on the context's device: the arrays below, the graph's copy on a GPU */
    float *ego, *ego_grad;                    /* (N, d) */
    float *wp, *bp, *wp_grad, *bp_grad;       /* predictor (d, d), (d) */
    float *x[MAX_MOD], *x_grad[MAX_MOD], *w[MAX_MOD], *w_grad[MAX_MOD], *b[MAX_MOD], *b_grad[MAX_MOD];
    int fdim[MAX_MOD], f_max;
    float *final, *t1, *t2, *dfinal, *ddirect; /* (N, d) x4, (I, d) */
    float *ones;                              /* (N) the op path: EmbLoss's column sums as a GEMM */
    /* batch scratch: views, their targets, predictions and gradients (2n, d); a modality's (n, d) and (n, F) */
    float *src, *tgt, *on, *don, *dsrc, *z, *zt, *dz, *fb;
    int cap;
    int frozen;                               /* tests: targets fixed at their values when frozen */
    float *ft_user, *ft_item, *ft_z[MAX_MOD]; /* (U, d), (I, d), (I, d) */
    /* the op path: the batch's buffers above on the device, and */
    int use_ops, on_gpu, ops_cap;
    int n_batch;                              /* the op path's staged batch */
    mrec_arena batch;
    float *ah, *th, *cosv;                    /* (n, d) x2 unit rows of a cosine, (n) its values */
    float *coef;                              /* (2) EmbLoss's factors of the user and the item views */
    double *loss;                             /* (1) the batch's loss, left on the device */
    int32_t *iota;                            /* (2 cap) 0, 1, ... on the device */
    mrec_batch_rows nodes, items;             /* u, U + i; i */
    mrec_step_keys keys;                      /* the op path's step: target_key(0), target_key(1 + mo) */
    mrec_context *ctx;
    mrec_status status;                       /* of the last loss_grad */
    double host_loss;                         /* the last batch's loss on the host path */
} bm3;

static mrec_status propagate(bm3 *m) {
    return mrec_csr_layer_mean(m->final, m->ego, &m->adj, m->layers, m->dim, m->t1, m->t2, m->ctx);
}

/* The step's dropout keys: the views' targets (which 0), modality mo's (which 1 + mo). */
static uint64_t target_key(const bm3 *m, int which) { return mrec_mix64(m->key + (uint64_t)which + 1); }

/* the item view of row it: F_i + I_i */
static void item_view(const bm3 *m, int it, float *out) {
    const float *f = m->final + (size_t)(m->n_users + it) * m->dim, *e = m->ego + (size_t)(m->n_users + it) * m->dim;
    for (int k = 0; k < m->dim; k++) out[k] = f[k] + e[k];
}

/* out (d) = src dropped out: zero with probability p, else / (1 - p); element k draws u(key, e0 + k) */
static void drop(bm3 *m, float *out, const float *src, int d, uint64_t key, size_t e0) {
    float keep = 1.0f - m->dropout;
    for (int k = 0; k < d; k++) out[k] = m->dropout > 0 && mrec_hash_uniform(key, e0 + (size_t)k) < m->dropout ? 0.0f : src[k] / keep;
}

/* 1 - mean cos(a_r, t_r) over n rows; da (n, d) receives the gradient (a's rows, t fixed) */
static double cos_loss(float *da, const float *a, const float *t, int n, int d) {
    double loss = 0;
    for (int r = 0; r < n; r++) {
        const float *x = a + (size_t)r * d, *y = t + (size_t)r * d;
        double xy = 0, xx = 0, yy = 0;
        for (int k = 0; k < d; k++) xy += (double)x[k] * y[k], xx += (double)x[k] * x[k], yy += (double)y[k] * y[k];
        double nx = fmax(sqrt(xx), 1e-8), ny = fmax(sqrt(yy), 1e-8), c = xy / (nx * ny);
        loss += c;
        for (int k = 0; k < d; k++) da[(size_t)r * d + k] = (float)(-(y[k] / ny - c * x[k] / nx) / nx / n);
    }
    return 1.0 - loss / n;
}

/* rows of P(src): out (n, d) = src W_p^T + b_p */
static mrec_status predict(bm3 *m, float *out, const float *src, int n) {
    int d = m->dim;
    return mrec_gemm(m->ctx, out, src, m->wp, m->bp, 1, 0, 0, 1, n, d, d, d, d, d);
}

/* the predictor's backward for rows src -> don: accumulates dW_p, db_p; dsrc = don W_p */
static mrec_status predict_back(bm3 *m, float *dsrc, const float *src, const float *don, int n) {
    int d = m->dim;
    mrec_status st = mrec_gemm(m->ctx, m->wp_grad, don, src, NULL, 1, 1, 1, 0, d, d, n, d, d, d);
    if (st) return st;
    for (int r = 0; r < n; r++)
        for (int k = 0; k < d; k++) m->bp_grad[k] += don[(size_t)r * d + k];
    return mrec_gemm(m->ctx, dsrc, don, m->wp, NULL, 1, 0, 0, 0, n, d, d, d, d, d);
}

static int ensure_batch(bm3 *m, int n) {
    if (n <= m->cap) return 1;
    float **bufs[] = {&m->src, &m->tgt, &m->on, &m->don, &m->dsrc, &m->z, &m->zt, &m->dz, &m->fb};
    size_t sizes[] = {2, 2, 2, 2, 2, 1, 1, 1, 0};
    int ok = 1;
    for (int k = 0; k < 9; k++) {
        free(*bufs[k]);
        size_t count = k == 8 ? (size_t)n * m->f_max : sizes[k] * (size_t)n * m->dim;
        *bufs[k] = malloc(sizeof(float) * (count ? count : 1));
        ok &= *bufs[k] != NULL;
    }
    m->cap = ok ? n : 0;
    return ok;
}

/* Frozen targets (tests): every view now, kept; the losses' targets then no longer move with the weights. */
static mrec_status freeze_targets(bm3 *m) {
    int d = m->dim, U = m->n_users, I = m->n_items;
    m->ft_user = malloc(sizeof(float) * (size_t)U * d), m->ft_item = malloc(sizeof(float) * (size_t)I * d);
    if (!m->ft_user || !m->ft_item) return mrec_fail(MREC_ERR_NOMEM, "bm3: frozen targets");
    memcpy(m->ft_user, m->final, sizeof(float) * (size_t)U * d);
    for (int it = 0; it < I; it++) item_view(m, it, m->ft_item + (size_t)it * d);
    mrec_status st = MREC_OK;
    for (int mo = 0; mo < m->n_mod && !st; mo++) {
        int F = m->fdim[mo];
        if (!(m->ft_z[mo] = malloc(sizeof(float) * (size_t)I * d))) return mrec_fail(MREC_ERR_NOMEM, "bm3: frozen targets");
        st = mrec_gemm(m->ctx, m->ft_z[mo], m->x[mo], m->w[mo], m->b[mo], 1, 0, 0, 1, I, d, F, F, F, d);
    }
    return st;
}

static mrec_status batch_loss_grad(bm3 *m, double *loss_out, const int32_t *u, const int32_t *i, int n) {
    int d = m->dim, U = m->n_users, I = m->n_items;
    size_t total = (size_t)m->n_nodes * d, nd = (size_t)n * d;
    mrec_context *ctx = m->ctx;
    if (!ensure_batch(m, n)) return mrec_fail(MREC_ERR_NOMEM, "bm3: a batch of %d", n);
    mrec_status st = propagate(m);
    if (st) return st;
    m->key = mrec_rng_next(&m->rng);
    if (m->frozen && !m->ft_user && (st = freeze_targets(m))) return st;
    memset(m->dfinal, 0, total * sizeof(float)), memset(m->ddirect, 0, sizeof(float) * (size_t)I * d);
    memset(m->wp_grad, 0, sizeof(float) * (size_t)d * d), memset(m->bp_grad, 0, sizeof(float) * (size_t)d);
    /* rows 0..n-1 the users' views, n..2n-1 the items'; each pulled towards the other's target */
    for (int r = 0; r < n; r++) {
        memcpy(m->src + (size_t)r * d, m->final + (size_t)u[r] * d, sizeof(float) * (size_t)d);
        item_view(m, i[r], m->src + nd + (size_t)r * d);
        drop(m, m->tgt + (size_t)r * d, m->frozen ? m->ft_user + (size_t)u[r] * d : m->src + (size_t)r * d, d, target_key(m, 0),
             (size_t)r * d);
        drop(m, m->tgt + nd + (size_t)r * d, m->frozen ? m->ft_item + (size_t)i[r] * d : m->src + nd + (size_t)r * d, d,
             target_key(m, 0), nd + (size_t)r * d);
    }
    const float *tu = m->tgt, *ti = m->tgt + nd;
    if ((st = predict(m, m->on, m->src, 2 * n))) return st;
    double loss = cos_loss(m->don, m->on, ti, n, d) + cos_loss(m->don + nd, m->on + nd, tu, n, d);
    if ((st = predict_back(m, m->dsrc, m->src, m->don, 2 * n))) return st;
    for (int r = 0; r < n; r++) {
        float *gu = m->dfinal + (size_t)u[r] * d, *gi = m->dfinal + (size_t)(U + i[r]) * d, *ge = m->ddirect + (size_t)i[r] * d;
        const float *du = m->dsrc + (size_t)r * d, *di = m->dsrc + nd + (size_t)r * d;
        for (int k = 0; k < d; k++) gu[k] += du[k], gi[k] += di[k], ge[k] += di[k];
    }
    /* each modality: P(z) towards the item target and towards z's own target */
    for (int mo = 0; mo < m->n_mod; mo++) {
        int F = m->fdim[mo];
        for (int r = 0; r < n; r++) memcpy(m->fb + (size_t)r * F, m->x[mo] + (size_t)i[r] * F, sizeof(float) * (size_t)F);
        if ((st = mrec_gemm(ctx, m->z, m->fb, m->w[mo], m->b[mo], 1, 0, 0, 1, n, d, F, F, F, d))) return st;
        for (int r = 0; r < n; r++)
            drop(m, m->zt + (size_t)r * d, m->frozen ? m->ft_z[mo] + (size_t)i[r] * d : m->z + (size_t)r * d, d, target_key(m, 1 + mo),
                 (size_t)r * d);
        if ((st = predict(m, m->on, m->z, n))) return st;
        loss += m->cl * (cos_loss(m->don, m->on, ti, n, d) + cos_loss(m->don + nd, m->on, m->zt, n, d));
        for (size_t e = 0; e < nd; e++) m->don[e] = m->cl * (m->don[e] + m->don[nd + e]);
        if ((st = predict_back(m, m->dz, m->z, m->don, n))) return st;
        if ((st = mrec_gemm(ctx, m->w_grad[mo], m->dz, m->fb, NULL, 1, 0, 1, 0, d, F, n, d, F, F))) return st;
        memset(m->b_grad[mo], 0, sizeof(float) * (size_t)d);
        for (int r = 0; r < n; r++)
            for (int k = 0; k < d; k++) m->b_grad[mo][k] += m->dz[(size_t)r * d + k];
        if ((st = mrec_gemm(ctx, m->fb, m->dz, m->w[mo], NULL, 1, 0, 0, 0, n, F, d, d, F, F))) return st;
        memset(m->x_grad[mo], 0, sizeof(float) * (size_t)I * F);
        for (int r = 0; r < n; r++)
            for (int f = 0; f < F; f++) m->x_grad[mo][(size_t)i[r] * F + f] += m->fb[(size_t)r * F + f];
    }
    /* EmbLoss over every user row and every item view: reg (|u|_F + |i|_F) / n_items */
    double su = 0, si = 0;
    float *iv = m->z;
    for (size_t e = 0; e < (size_t)U * d; e++) su += (double)m->final[e] * m->final[e];
    for (int it = 0; it < I; it++) {
        item_view(m, it, iv);
        for (int k = 0; k < d; k++) si += (double)iv[k] * iv[k];
    }
    su = sqrt(su), si = sqrt(si);
    loss += m->reg * (su + si) / I;
    float cu = su > 0 ? (float)(m->reg / I / su) : 0, ci = si > 0 ? (float)(m->reg / I / si) : 0;
    for (size_t e = 0; e < (size_t)U * d; e++) m->dfinal[e] += cu * m->final[e];
    for (int it = 0; it < I; it++) {
        item_view(m, it, iv);
        float *gi = m->dfinal + (size_t)(U + it) * d, *ge = m->ddirect + (size_t)it * d;
        for (int k = 0; k < d; k++) gi[k] += ci * iv[k], ge[k] += ci * iv[k];
    }
    /* dE0 = (dF + Â dF + .. + Â^L dF) / (L + 1), plus the items' direct part */
    if ((st = mrec_csr_layer_mean_back(m->ego_grad, m->dfinal, &m->adj, 1, m->layers, d, m->t1, m->t2, ctx))) return st;
    if ((st = mrec_add(ctx, m->ego_grad + (size_t)U * d, m->ego_grad + (size_t)U * d, m->ddirect, (int64_t)I * d))) return st;
    *loss_out = loss;
    return MREC_OK;
}

/* ---- the op path ---- */

static void carve_batch(bm3 *m, mrec_arena *a) {
    size_t c = (size_t)m->ops_cap, d = (size_t)m->dim;
    float **two[5] = {&m->src, &m->tgt, &m->on, &m->don, &m->dsrc};
    for (int k = 0; k < 5; k++) *two[k] = mrec_arena_alloc(a, sizeof(float) * 2 * c * d);
    float **one[5] = {&m->z, &m->zt, &m->dz, &m->ah, &m->th};
    for (int k = 0; k < 5; k++) *one[k] = mrec_arena_alloc(a, sizeof(float) * c * d);
    m->fb = mrec_arena_alloc(a, sizeof(float) * c * (size_t)m->f_max);
    m->cosv = mrec_arena_alloc(a, sizeof(float) * c), m->iota = mrec_arena_alloc(a, sizeof(int32_t) * c);
    m->coef = mrec_arena_alloc(a, sizeof(float) * 2), m->loss = mrec_arena_alloc(a, sizeof(double));
}

/* The batch's device buffers, grown (not per batch) when a batch is larger than any before. */
static mrec_status ensure_ops_batch(bm3 *m, int n) {
    if (n <= m->ops_cap) return MREC_OK;
    mrec_arena_release(&m->batch, m->ctx->cuda);
    m->ops_cap = n;
    mrec_arena measure = mrec_arena_measure();
    carve_batch(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->batch, measure.peak, m->ctx->device, m->ctx->cuda);
    int32_t *iota = malloc(sizeof(int32_t) * (size_t)n);
    if (!st && !iota) st = mrec_fail(MREC_ERR_NOMEM, "bm3: a batch of %d", n);
    if (!st) {
        carve_batch(m, &m->batch);
        for (int r = 0; r < n; r++) iota[r] = r;
        st = mrec_copy_to_device(m->ctx, m->iota, iota, sizeof(int32_t) * (size_t)n);
    }
    free(iota);
    if (st) m->ops_cap = 0;
    return st;
}

/* cos_loss through the op entries: weight (1 - mean cos(a_r, t_r)) over n rows added to the batch's loss on the device,
 * da (n, d) the gradient of 1 - mean cos in a. The cosine's gradient is the unit rows' backward: d cos / d a = (t^ - a^
 * cos) / |a| with dy = t^, scaled by -1 / n first. */
static mrec_status ops_cos_loss(bm3 *m, float weight, float *da, const float *a, const float *t, int n) {
    mrec_context *ctx = m->ctx;
    int d = m->dim;
    mrec_status st = mrec_l2_normalize_rows(ctx, m->ah, a, 1e-8f, n, d); /* the norms floored at 1e-8, as the host's */
    if (!st) st = mrec_l2_normalize_rows(ctx, m->th, t, 1e-8f, n, d);
    if (!st) st = mrec_gather_dot(ctx, m->cosv, m->ah, m->iota, m->th, m->iota, n, d);
    if (!st) st = mrec_loss_cos(ctx, m->loss, m->cosv, n, weight);
    if (!st) st = mrec_scale(ctx, m->th, m->th, -1.0f / n, (int64_t)n * d);
    if (!st) st = mrec_l2_normalize_rows_back(ctx, da, m->th, m->ah, a, 1e-8f, 0, n, d);
    return st;
}

/* EmbLoss's term of x (R, d) on the device: squares into sq (R, d), a GEMM of ones into d column sums (in dz, free
 * after the modalities), then reg |x| / I added to the batch's loss and the factor reg / I / |x| into *coef. */
static mrec_status ops_norm_reg(bm3 *m, float *coef, const float *x, float *sq, int R) {
    mrec_context *ctx = m->ctx;
    int d = m->dim;
    mrec_status st = mrec_mul(ctx, sq, x, x, (int64_t)R * d);
    if (!st) st = mrec_gemm(ctx, m->dz, m->ones, sq, NULL, 1, 0, 0, 0, 1, d, R, R, d, d);
    return st ? st : mrec_loss_norm(ctx, coef, m->loss, m->dz, d, m->reg, m->n_items);
}

/* batch_loss_grad through the op entries, the batch's loss left on the device (m->loss; its terms added in another
 * order than the host loops', so the loss's last digits may differ from theirs). In the trainer's two halves
 * (mrec_model.stage, .launch): the host's part (buffers grown, the step's dropout keys drawn, the batch's rows
 * checked, the loss's start of 0, all sent up), then the launches. */
static mrec_status bm3_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    (void)j; /* BM3 samples no negatives */
    static const double nothing = 0.0; /* the loss's start */
    bm3 *m = self;
    mrec_context *ctx = m->ctx;
    const int32_t *ui[2] = {u, i};
    const int node_off[2] = {0, m->n_users}, zero = 0;
    if (m->frozen) return mrec_fail(MREC_ERR_UNSUPPORTED, "bm3: frozen targets are the host path's (a test's)");
    mrec_status st = ensure_ops_batch(m, n);
    m->key = mrec_rng_next(&m->rng);
    uint64_t keys[1 + MAX_MOD];
    for (int w = 0; w <= m->n_mod; w++) keys[w] = target_key(m, w);
    if (!st) st = mrec_step_keys_send(&m->keys, ctx, keys, 1 + m->n_mod);
    if (!st) st = mrec_batch_rows_stage(&m->nodes, ctx, m->n_nodes, 2, ui, node_off, n);
    if (!st) st = mrec_batch_rows_stage(&m->items, ctx, m->n_items, 1, ui + 1, &zero, n);
    if (!st) st = mrec_copy_to_device_staged(ctx, m->loss, &nothing, sizeof nothing);
    if (!st) m->n_batch = n;
    return st;
}

static mrec_status ops_launch(bm3 *m) {
    mrec_context *ctx = m->ctx;
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, n = m->n_batch;
    size_t nd = (size_t)n * d;
    mrec_status st = propagate(m);
    if (!st) st = mrec_batch_rows_index(&m->nodes);
    if (!st) st = mrec_batch_rows_index(&m->items);
    /* src: F_u, then F_i + I_i; tgt: their dropped-out copies, element e of the (2n, d) block under the views' key */
    if (!st) st = mrec_embedding_checked(ctx, m->src, m->final, m->nodes.ids, 2 * n, N, d);
    if (!st) st = mrec_embedding_checked(ctx, m->dsrc, m->ego, m->nodes.ids + n, n, N, d);
    if (!st) st = mrec_add(ctx, m->src + nd, m->src + nd, m->dsrc, (int64_t)nd);
    if (!st) st = mrec_hash_dropout_at(ctx, m->tgt, m->src, NULL, 2 * (int64_t)nd, m->dropout, m->keys.at);
    if (!st) st = mrec_gemm(ctx, m->on, m->src, m->wp, m->bp, 1, 0, 0, 1, 2 * n, d, d, d, d, d);
    if (!st) st = ops_cos_loss(m, 1.0f, m->don, m->on, m->tgt + nd, n);
    if (!st) st = ops_cos_loss(m, 1.0f, m->don + nd, m->on + nd, m->tgt, n);
    /* the predictor's backward: dW_p = don^T src, db_p = ones^T don, dsrc = don W_p */
    if (!st) st = mrec_gemm(ctx, m->wp_grad, m->don, m->src, NULL, 1, 0, 1, 0, d, d, 2 * n, d, d, d);
    if (!st) st = mrec_gemm(ctx, m->bp_grad, m->nodes.ones, m->don, NULL, 1, 0, 0, 0, 1, d, 2 * n, 2 * n, d, d); /* 2n ones */
    if (!st) st = mrec_gemm(ctx, m->dsrc, m->don, m->wp, NULL, 1, 0, 0, 0, 2 * n, d, d, d, d, d);
    /* the views' rows to dF (users' and items'), the items' also to their ego rows directly */
    if (!st) st = mrec_batch_rows_scatter(&m->nodes, m->dfinal, m->dsrc, d);
    if (!st) st = mrec_batch_rows_scatter(&m->items, m->ddirect, m->dsrc + nd, d);
    const float *ti = m->tgt + nd;
    for (int mo = 0; mo < m->n_mod && !st; mo++) {
        int F = m->fdim[mo];
        st = mrec_embedding_checked(ctx, m->fb, m->x[mo], m->items.ids, n, I, F);
        if (!st) st = mrec_gemm(ctx, m->z, m->fb, m->w[mo], m->b[mo], 1, 0, 0, 1, n, d, F, F, F, d);
        if (!st) st = mrec_hash_dropout_at(ctx, m->zt, m->z, NULL, (int64_t)nd, m->dropout, m->keys.at + 1 + mo);
        if (!st) st = mrec_gemm(ctx, m->on, m->z, m->wp, m->bp, 1, 0, 0, 1, n, d, d, d, d, d);
        if (!st) st = ops_cos_loss(m, m->cl, m->don, m->on, ti, n);
        if (!st) st = ops_cos_loss(m, m->cl, m->don + nd, m->on, m->zt, n);
        /* don = cl (don_a + don_b); the predictor's backward (accumulating), then W_m, b_m and the features */
        if (!st) st = mrec_add(ctx, m->don, m->don, m->don + nd, (int64_t)nd);
        if (!st) st = mrec_scale(ctx, m->don, m->don, m->cl, (int64_t)nd);
        if (!st) st = mrec_gemm(ctx, m->wp_grad, m->don, m->z, NULL, 1, 1, 1, 0, d, d, n, d, d, d);
        if (!st) st = mrec_gemm(ctx, m->bp_grad, m->nodes.ones, m->don, NULL, 1, 1, 0, 0, 1, d, n, n, d, d);
        if (!st) st = mrec_gemm(ctx, m->dz, m->don, m->wp, NULL, 1, 0, 0, 0, n, d, d, d, d, d);
        if (!st) st = mrec_gemm(ctx, m->w_grad[mo], m->dz, m->fb, NULL, 1, 0, 1, 0, d, F, n, d, F, F);
        if (!st) st = mrec_gemm(ctx, m->b_grad[mo], m->nodes.ones, m->dz, NULL, 1, 0, 0, 0, 1, d, n, n, d, d);
        if (!st) st = mrec_gemm(ctx, m->fb, m->dz, m->w[mo], NULL, 1, 0, 0, 0, n, F, d, d, F, F);
        if (!st) st = mrec_batch_rows_scatter(&m->items, m->x_grad[mo], m->fb, F);
    }
    /* EmbLoss over every user row and item view: t1 = [F_u ; F_i + I_i], its two norms' terms (t2 as scratch) */
    size_t ud = (size_t)U * d;
    if (!st) st = mrec_scale(ctx, m->t1, m->final, 1.0f, (int64_t)ud);
    if (!st) st = mrec_add(ctx, m->t1 + ud, m->final + ud, m->ego + ud, (int64_t)I * d);
    if (!st) st = ops_norm_reg(m, m->coef, m->t1, m->t2, U);
    if (!st) st = ops_norm_reg(m, m->coef + 1, m->t1 + ud, m->t2 + ud, I);
    if (!st) st = mrec_scale_at(ctx, m->t2, m->t1, m->coef, (int64_t)ud);
    if (!st) st = mrec_scale_at(ctx, m->t2 + ud, m->t1 + ud, m->coef + 1, (int64_t)I * d);
    if (!st) st = mrec_add(ctx, m->dfinal, m->dfinal, m->t2, (int64_t)N * d);
    if (!st) st = mrec_add(ctx, m->ddirect, m->ddirect, m->t2 + ud, (int64_t)I * d);
    /* dE0 = (dF + Â dF + .. + Â^L dF) / (L + 1), plus the items' direct part */
    if (!st) st = mrec_csr_layer_mean_back(m->ego_grad, m->dfinal, &m->adj, 1, m->layers, d, m->t1, m->t2, ctx);
    if (!st) st = mrec_add(ctx, m->ego_grad + ud, m->ego_grad + ud, m->ddirect, (int64_t)I * d);
    return st;
}

static mrec_status bm3_launch(void *self, const double **loss) {
    bm3 *m = self;
    mrec_status st = ops_launch(m);
    *loss = st ? NULL : m->loss;
    return st;
}

static mrec_status ops_loss_grad(bm3 *m, const int32_t *u, const int32_t *i, int n) {
    mrec_status st = bm3_stage(m, u, i, NULL, n);
    return st ? st : ops_launch(m);
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static const double *bm3_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    (void)j; /* BM3 samples no negatives */
    bm3 *m = self;
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_loss_grad(m, u, i, n) : batch_loss_grad(m, &m->host_loss, u, i, n);
    return m->status ? NULL : m->use_ops ? m->loss : &m->host_loss;
}

static double bm3_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    bm3 *m = self;
    return mrec_step_loss(m->ctx, &m->status, bm3_step(self, u, i, j, n));
}

/* P(u) for every user and P(i) for every item, in final's place (both paths: the item view F_i + I_i is one sum) */
static mrec_status bm3_prepare(void *self) {
    bm3 *m = self;
    int d = m->dim, U = m->n_users, I = m->n_items;
    size_t ud = (size_t)U * d;
    mrec_status st = propagate(m);
    if (!st) st = mrec_scale(m->ctx, m->t1, m->final, 1.0f, (int64_t)ud);
    if (!st) st = mrec_add(m->ctx, m->t1 + ud, m->final + ud, m->ego + ud, (int64_t)I * d);
    return st ? st : predict(m, m->final, m->t1, m->n_nodes);
}

static mrec_status bm3_score(void *self, int u0, int n, float *scores) {
    bm3 *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status bm3_embeddings(void *self, float *users, float *items) {
    bm3 *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->dim);
}

static void bm3_destroy(void *self) {
    bm3 *m = self;
    if (m->use_ops) m->src = m->tgt = m->on = m->don = m->dsrc = m->z = m->zt = m->dz = m->fb = NULL; /* carved from batch */
    free(m->src), free(m->tgt), free(m->on), free(m->don), free(m->dsrc), free(m->z), free(m->zt), free(m->dz), free(m->fb);
    mrec_batch_rows_free(&m->nodes), mrec_batch_rows_free(&m->items);
    mrec_step_keys_free(&m->keys);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m->ft_user), free(m->ft_item);
    for (int k = 0; k < MAX_MOD; k++) free(m->ft_z[k]);
    free(m);
}

mrec_status mrec_bm3_use_ops(mrec_model *model) {
    bm3 *m = model->self;
    if (m->use_ops) return MREC_OK;
    /* the host path's batch buffers give way to the op path's; the graph is the host's */
    free(m->src), free(m->tgt), free(m->on), free(m->don), free(m->dsrc), free(m->z), free(m->zt), free(m->dz), free(m->fb);
    m->src = m->tgt = m->on = m->don = m->dsrc = m->z = m->zt = m->dz = m->fb = NULL, m->cap = 0;
    m->use_ops = 1;
    model->stage = bm3_stage, model->launch = bm3_launch;
    return MREC_OK;
}

/* The model's arrays, and on a GPU the graph's copy, from one allocation (a measuring arena counts them). */
static void carve(bm3 *m, mrec_arena *a) {
    size_t d = (size_t)m->dim, total = (size_t)m->n_nodes * d * 4, I = (size_t)m->n_items;
    float **big[6] = {&m->ego, &m->ego_grad, &m->final, &m->t1, &m->t2, &m->dfinal};
    for (int k = 0; k < 6; k++) *big[k] = mrec_arena_alloc(a, total);
    m->ddirect = mrec_arena_alloc(a, I * d * 4), m->ones = mrec_arena_alloc(a, (size_t)m->n_nodes * 4);
    m->wp = mrec_arena_alloc(a, d * d * 4), m->wp_grad = mrec_arena_alloc(a, d * d * 4);
    m->bp = mrec_arena_alloc(a, d * 4), m->bp_grad = mrec_arena_alloc(a, d * 4);
    for (int k = 0; k < m->n_mod; k++) {
        size_t F = (size_t)m->fdim[k];
        m->x[k] = mrec_arena_alloc(a, I * F * 4), m->x_grad[k] = mrec_arena_alloc(a, I * F * 4);
        m->w[k] = mrec_arena_alloc(a, d * F * 4), m->w_grad[k] = mrec_arena_alloc(a, d * F * 4);
        m->b[k] = mrec_arena_alloc(a, d * 4), m->b_grad[k] = mrec_arena_alloc(a, d * 4);
    }
    if (m->on_gpu) m->adj = mrec_graph_carve(a, m->n_nodes, m->n_nodes, m->graph->row_ptr[m->n_nodes], m->ctx->device);
}

void mrec_bm3_freeze_targets(mrec_model *model) { ((bm3 *)model->self)->frozen = 1;
}

static void xavier_normal(float *w, int rows, int cols, mrec_rng *rng) {
    double sd = sqrt(2.0 / (rows + cols));
    for (size_t e = 0; e < (size_t)rows * cols; e++) w[e] = (float)(sd * mrec_rng_normal(rng));
}

static void linear_bias(float *b, int n, int fan_in, mrec_rng *rng) {
    double bound = 1.0 / sqrt((double)fan_in);
    for (int e = 0; e < n; e++) b[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
}

mrec_status mrec_bm3_create(mrec_model *out, const mrec_graph *graph, const mrec_features *feat, int n_mod, int n_users, int dim,
                            int layers, float reg, float cl, float dropout, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st;
    int I = n_mod > 0 ? feat[0].n_items : 0;
    if (n_mod < 1 || n_mod > MAX_MOD || graph->n_nodes != n_users + I || layers < 0 || layers > 16 || !(dropout >= 0 && dropout < 1))
        return mrec_fail(MREC_ERR_ARG, "bm3: %d modalities (1..%d), %d layers, dropout %g (0 <= p < 1)", n_mod, MAX_MOD, layers, dropout);
    bm3 *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "bm3");
    m->n_users = n_users, m->n_items = I, m->n_nodes = n_users + I, m->dim = dim, m->layers = layers, m->n_mod = n_mod;
    m->reg = reg, m->cl = cl, m->dropout = dropout, m->graph = graph, m->adj = mrec_graph_csr(graph), m->ctx = ctx;
    m->on_gpu = ctx->device != MREC_DEVICE_CPU;
    m->rng.state = mrec_rng_next(rng);
    for (int k = 0; k < n_mod; k++) m->fdim[k] = feat[k].dim, m->f_max = feat[k].dim > m->f_max ? feat[k].dim : m->f_max;
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure);
    if ((st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda))) {
        free(m);
        return st;
    }
    carve(m, &m->mem);
    /* the values are drawn on the host in any case, so a seed gives the same start on every device; gradients start at 0 */
    size_t total = (size_t)m->n_nodes * dim, most = total;
    for (int k = 0; k < n_mod; k++) most = (size_t)dim * m->fdim[k] > most ? (size_t)dim * m->fdim[k] : most;
    float *h = calloc(most > (size_t)dim * dim ? most : (size_t)dim * dim, sizeof(float));
    if (!h) st = mrec_fail(MREC_ERR_NOMEM, "bm3: %d users, %d items", n_users, I);
    float *zeros[] = {m->ego_grad, m->dfinal, m->wp_grad, m->bp_grad};
    size_t nzero[] = {total, total, (size_t)dim * dim, (size_t)dim};
    for (int k = 0; k < 4 && !st; k++) st = mrec_copy_to_device(ctx, zeros[k], h, nzero[k] * 4);
    for (int k = 0; k < n_mod && !st; k++) {
        st = mrec_copy_to_device(ctx, m->w_grad[k], h, (size_t)dim * m->fdim[k] * 4); /* x_grad is written whole by a step */
        if (!st) st = mrec_copy_to_device(ctx, m->b_grad[k], h, (size_t)dim * 4);
    }
    for (size_t e = 0; e < (size_t)m->n_nodes; e++) h[e] = 1.0f;
    if (!st) st = mrec_copy_to_device(ctx, m->ones, h, (size_t)m->n_nodes * 4);
    double bu = sqrt(6.0 / (n_users + dim)), bi = sqrt(6.0 / (I + dim));
    for (size_t e = 0; e < total; e++) h[e] = (float)((e < (size_t)n_users * dim ? bu : bi) * (2 * mrec_rng_uniform(rng) - 1));
    if (!st) st = mrec_copy_to_device(ctx, m->ego, h, total * 4);
    xavier_normal(h, dim, dim, rng);
    if (!st) st = mrec_copy_to_device(ctx, m->wp, h, (size_t)dim * dim * 4);
    linear_bias(h, dim, dim, rng);
    if (!st) st = mrec_copy_to_device(ctx, m->bp, h, (size_t)dim * 4);
    for (int k = 0; k < n_mod; k++) {
        xavier_normal(h, dim, m->fdim[k], rng);
        if (!st) st = mrec_copy_to_device(ctx, m->w[k], h, (size_t)dim * m->fdim[k] * 4);
        linear_bias(h, dim, m->fdim[k], rng);
        if (!st) st = mrec_copy_to_device(ctx, m->b[k], h, (size_t)dim * 4);
        if (!st) st = mrec_copy_to_device(ctx, m->x[k], feat[k].x, sizeof(float) * (size_t)I * m->fdim[k]);
    }
    free(h);
    if (!st && m->on_gpu) {
        mrec_csr src = mrec_graph_csr(graph);
        st = mrec_graph_upload(ctx, &m->adj, &src); /* Â is symmetric: no transposed copy */
        m->use_ops = 1;
    }
    if (st) {
        bm3_destroy(m);
        return st;
    }
    out->name = "BM3", out->self = m;
    out->state[0] = &m->rng.state, out->state[1] = &m->key, out->n_state = 2; /* for a checkpoint */
    int p = 0;
    out->param[p] = m->ego, out->grad[p] = m->ego_grad, out->size[p++] = (int64_t)total;
    out->param[p] = m->wp, out->grad[p] = m->wp_grad, out->size[p++] = (int64_t)dim * dim;
    out->param[p] = m->bp, out->grad[p] = m->bp_grad, out->size[p++] = dim;
    for (int k = 0; k < n_mod; k++) {
        out->param[p] = m->x[k], out->grad[p] = m->x_grad[k], out->size[p++] = (int64_t)I * m->fdim[k];
        out->param[p] = m->w[k], out->grad[p] = m->w_grad[k], out->size[p++] = (int64_t)dim * m->fdim[k];
        out->param[p] = m->b[k], out->grad[p] = m->b_grad[k], out->size[p++] = dim;
    }
    out->n_params = p;
    out->status = &m->status;
    out->loss_grad = bm3_loss_grad, out->step = bm3_step, out->prepare = bm3_prepare, out->score = bm3_score, out->destroy = bm3_destroy;
    out->embed_dim = m->dim, out->embeddings = bm3_embeddings;
    if (m->use_ops) out->stage = bm3_stage, out->launch = bm3_launch;
    return MREC_OK;
}
