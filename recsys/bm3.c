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
 * value zeroed with probability p, the rest divided by 1 - p) by the model's
 * own generator. Scoring: <P(u), P(i)>. U, I start xavier-uniform; W_p and
 * W_m xavier-normal; biases as torch.nn.Linear.
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
    mrec_rng rng;
    float *ego, *ego_grad;                    /* (N, d) */
    float *wp, *bp, *wp_grad, *bp_grad;       /* predictor (d, d), (d) */
    float *x[MAX_MOD], *x_grad[MAX_MOD], *w[MAX_MOD], *w_grad[MAX_MOD], *b[MAX_MOD], *b_grad[MAX_MOD];
    int fdim[MAX_MOD], f_max;
    float *final, *t1, *t2, *dfinal, *ddirect; /* (N, d) x4, (I, d) */
    /* batch scratch: views, their targets, predictions and gradients (2n, d); a modality's (n, d) and (n, F) */
    float *src, *tgt, *on, *don, *dsrc, *z, *zt, *dz, *fb;
    int cap;
    int frozen;                               /* tests: targets fixed at their values when frozen */
    float *ft_user, *ft_item, *ft_z[MAX_MOD]; /* (U, d), (I, d), (I, d) */
    mrec_context *ctx;
    mrec_status status;                       /* of the last loss_grad */
} bm3;

static mrec_status propagate(bm3 *m) {
    return mrec_graph_layer_mean(m->final, m->ego, m->graph, m->layers, m->dim, m->t1, m->t2, m->ctx);
}

/* the item view of row it: F_i + I_i */
static void item_view(const bm3 *m, int it, float *out) {
    const float *f = m->final + (size_t)(m->n_users + it) * m->dim, *e = m->ego + (size_t)(m->n_users + it) * m->dim;
    for (int k = 0; k < m->dim; k++) out[k] = f[k] + e[k];
}

/* out = src dropped out: zero with probability p, else / (1 - p) */
static void drop(bm3 *m, float *out, const float *src, int d) {
    float keep = 1.0f - m->dropout;
    for (int k = 0; k < d; k++) out[k] = m->dropout > 0 && mrec_rng_uniform(&m->rng) < m->dropout ? 0.0f : src[k] / keep;
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
    if (m->frozen && !m->ft_user && (st = freeze_targets(m))) return st;
    memset(m->dfinal, 0, total * sizeof(float)), memset(m->ddirect, 0, sizeof(float) * (size_t)I * d);
    memset(m->wp_grad, 0, sizeof(float) * (size_t)d * d), memset(m->bp_grad, 0, sizeof(float) * (size_t)d);
    /* rows 0..n-1 the users' views, n..2n-1 the items'; each pulled towards the other's target */
    for (int r = 0; r < n; r++) {
        memcpy(m->src + (size_t)r * d, m->final + (size_t)u[r] * d, sizeof(float) * (size_t)d);
        item_view(m, i[r], m->src + nd + (size_t)r * d);
        drop(m, m->tgt + (size_t)r * d, m->frozen ? m->ft_user + (size_t)u[r] * d : m->src + (size_t)r * d, d);
        drop(m, m->tgt + nd + (size_t)r * d, m->frozen ? m->ft_item + (size_t)i[r] * d : m->src + nd + (size_t)r * d, d);
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
            drop(m, m->zt + (size_t)r * d, m->frozen ? m->ft_z[mo] + (size_t)i[r] * d : m->z + (size_t)r * d, d);
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
    if ((st = mrec_graph_layer_mean_back(m->ego_grad, m->dfinal, m->graph, 1, m->layers, d, m->t1, m->t2, ctx))) return st;
    if ((st = mrec_add(ctx, m->ego_grad + (size_t)U * d, m->ego_grad + (size_t)U * d, m->ddirect, (int64_t)I * d))) return st;
    *loss_out = loss;
    return MREC_OK;
}

static double bm3_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    (void)j; /* BM3 samples no negatives */
    bm3 *m = self;
    double loss = NAN;
    m->status = batch_loss_grad(m, &loss, u, i, n);
    return m->status ? NAN : loss;
}

/* P(u) for every user and P(i) for every item, in final's place */
static mrec_status bm3_prepare(void *self) {
    bm3 *m = self;
    int d = m->dim, U = m->n_users, I = m->n_items;
    mrec_status st = propagate(m);
    if (st) return st;
    for (int it = 0; it < I; it++) item_view(m, it, m->t1 + (size_t)(U + it) * d);
    memcpy(m->t1, m->final, sizeof(float) * (size_t)U * d);
    return predict(m, m->final, m->t1, m->n_nodes);
}

static mrec_status bm3_score(void *self, int u0, int n, float *scores) {
    bm3 *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static void bm3_destroy(void *self) {
    bm3 *m = self;
    free(m->ego), free(m->ego_grad), free(m->wp), free(m->bp), free(m->wp_grad), free(m->bp_grad);
    for (int k = 0; k < MAX_MOD; k++) free(m->x[k]), free(m->x_grad[k]), free(m->w[k]), free(m->w_grad[k]), free(m->b[k]), free(m->b_grad[k]);
    free(m->final), free(m->t1), free(m->t2), free(m->dfinal), free(m->ddirect);
    free(m->src), free(m->tgt), free(m->on), free(m->don), free(m->dsrc), free(m->z), free(m->zt), free(m->dz), free(m->fb);
    free(m->ft_user), free(m->ft_item);
    for (int k = 0; k < MAX_MOD; k++) free(m->ft_z[k]);
    free(m);
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
    mrec_status st = mrec_recsys_host_only(ctx, "bm3");
    if (st) return st;
    int I = n_mod > 0 ? feat[0].n_items : 0;
    if (n_mod < 1 || n_mod > MAX_MOD || graph->n_nodes != n_users + I || layers < 0 || layers > 16 || !(dropout >= 0 && dropout < 1))
        return mrec_fail(MREC_ERR_ARG, "bm3: %d modalities (1..%d), %d layers, dropout %g (0 <= p < 1)", n_mod, MAX_MOD, layers, dropout);
    bm3 *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "bm3");
    m->n_users = n_users, m->n_items = I, m->n_nodes = n_users + I, m->dim = dim, m->layers = layers, m->n_mod = n_mod;
    m->reg = reg, m->cl = cl, m->dropout = dropout, m->graph = graph, m->ctx = ctx;
    m->rng.state = mrec_rng_next(rng);
    size_t total = (size_t)m->n_nodes * dim;
    float **big[] = {&m->ego, &m->ego_grad, &m->final, &m->t1, &m->t2, &m->dfinal};
    int ok = 1;
    for (int k = 0; k < 6; k++) ok &= (*big[k] = calloc(total, sizeof(float))) != NULL;
    m->ddirect = calloc((size_t)I * dim, sizeof(float));
    m->wp = malloc(sizeof(float) * (size_t)dim * dim), m->wp_grad = calloc((size_t)dim * dim, sizeof(float));
    m->bp = malloc(sizeof(float) * (size_t)dim), m->bp_grad = calloc((size_t)dim, sizeof(float));
    ok = ok && m->ddirect && m->wp && m->wp_grad && m->bp && m->bp_grad;
    for (int k = 0; ok && k < n_mod; k++) {
        int F = m->fdim[k] = feat[k].dim;
        m->f_max = F > m->f_max ? F : m->f_max;
        m->x[k] = malloc(sizeof(float) * (size_t)I * F), m->x_grad[k] = calloc((size_t)I * F, sizeof(float));
        m->w[k] = malloc(sizeof(float) * (size_t)dim * F), m->w_grad[k] = calloc((size_t)dim * F, sizeof(float));
        m->b[k] = malloc(sizeof(float) * (size_t)dim), m->b_grad[k] = calloc((size_t)dim, sizeof(float));
        ok = m->x[k] && m->x_grad[k] && m->w[k] && m->w_grad[k] && m->b[k] && m->b_grad[k];
        if (ok) memcpy(m->x[k], feat[k].x, sizeof(float) * (size_t)I * F);
    }
    if (!ok) {
        bm3_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "bm3: %d users, %d items", n_users, I);
    }
    double bu = sqrt(6.0 / (n_users + dim)), bi = sqrt(6.0 / (I + dim));
    for (size_t e = 0; e < total; e++) m->ego[e] = (float)((e < (size_t)n_users * dim ? bu : bi) * (2 * mrec_rng_uniform(rng) - 1));
    xavier_normal(m->wp, dim, dim, rng), linear_bias(m->bp, dim, dim, rng);
    for (int k = 0; k < n_mod; k++) xavier_normal(m->w[k], dim, m->fdim[k], rng), linear_bias(m->b[k], dim, m->fdim[k], rng);
    out->name = "BM3", out->self = m;
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
    out->loss_grad = bm3_loss_grad, out->prepare = bm3_prepare, out->score = bm3_score, out->destroy = bm3_destroy;
    return MREC_OK;
}
