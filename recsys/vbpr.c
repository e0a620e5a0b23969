/* vbpr.c: VBPR as MMRec defines it (src/models/vbpr.py).
 *
 *   item(i)  = [ I_i ; W f_i + b ]            (2d: latent, then content)
 *   score    = < U_u, item(i) >               (U: n_users x 2d)
 *   loss     = -mean log(1e-10 + sigmoid(score(u, i+) - score(u, i-)))
 *              + reg * (|U_b|_F + |item(I_b+)|_F + |item(I_b-)|_F) / n
 * f_i concatenates the item's modalities (MMRec: textual, then visual). U
 * and I start xavier-uniform, W xavier-normal, b zero. Unlike MMRec, which
 * projects every item's features at each batch, only the batch's items are
 * projected in training (the same numbers); scoring projects all once.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n_users, n_items, dim, n_feat;
    float reg;
    const float *feat;             /* (n_items, n_feat) */
    float *user, *item, *w, *b;    /* (n_users, 2d), (n_items, d), (d, n_feat), (d) */
    float *user_grad, *item_grad, *w_grad, *b_grad;
    float *fb, *z, *dz;            /* batch: (2n, n_feat) features, (2n, d) projections and their gradients */
    float *pos, *neg, *dx;         /* (n) */
    float *all;                    /* (n_items, 2d) for scoring */
    int cap;
    mrec_context *ctx;
    mrec_status status;            /* of the last loss_grad */
} vbpr;

static int ensure_batch(vbpr *m, int n) {
    if (n <= m->cap) return 1;
    free(m->fb), free(m->z), free(m->dz), free(m->pos), free(m->neg), free(m->dx);
    m->fb = malloc(sizeof(float) * 2 * (size_t)n * m->n_feat);
    m->z = malloc(sizeof(float) * 2 * (size_t)n * m->dim), m->dz = malloc(sizeof(float) * 2 * (size_t)n * m->dim);
    m->pos = malloc(sizeof(float) * (size_t)n), m->neg = malloc(sizeof(float) * (size_t)n), m->dx = malloc(sizeof(float) * (size_t)n);
    m->cap = m->fb && m->z && m->dz && m->pos && m->neg && m->dx ? n : 0;
    return m->cap > 0;
}

/* <a, [lat ; con]> over 2d values */
static float dot2(const float *a, const float *lat, const float *con, int d) {
    float s = 0;
    for (int k = 0; k < d; k++) s += a[k] * lat[k];
    for (int k = 0; k < d; k++) s += a[d + k] * con[k];
    return s;
}

static mrec_status batch_loss_grad(vbpr *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, F = m->n_feat;
    if (!ensure_batch(m, n)) return mrec_fail(MREC_ERR_NOMEM, "vbpr: a batch of %d", n);
    /* rows 0..n-1: positives, n..2n-1: negatives */
    for (int r = 0; r < 2 * n; r++) {
        int it = r < n ? i[r] : j[r - n];
        memcpy(m->fb + (size_t)r * F, m->feat + (size_t)it * F, sizeof(float) * (size_t)F);
    }
    mrec_status st = mrec_gemm(m->ctx, m->z, m->fb, m->w, m->b, 1, 0, 0, 1, 2 * n, d, F, F, F, d);
    if (st) return st;
    double sp = 0, sn = 0, su = 0;
    for (int r = 0; r < n; r++) {
        const float *eu = m->user + (size_t)u[r] * 2 * d, *zi = m->z + (size_t)r * d, *zj = m->z + (size_t)(n + r) * d;
        const float *li = m->item + (size_t)i[r] * d, *lj = m->item + (size_t)j[r] * d;
        m->pos[r] = dot2(eu, li, zi, d), m->neg[r] = dot2(eu, lj, zj, d);
        for (int k = 0; k < 2 * d; k++) su += (double)eu[k] * eu[k];
        for (int k = 0; k < d; k++) sp += (double)li[k] * li[k] + (double)zi[k] * zi[k], sn += (double)lj[k] * lj[k] + (double)zj[k] * zj[k];
    }
    double loss = mrec_bpr_loss(m->dx, m->pos, m->neg, n);
    double nu = sqrt(su), np_ = sqrt(sp), nn = sqrt(sn);
    loss += m->reg * (nu + np_ + nn) / n;
    /* d|X|_F / dX = X / |X|_F */
    float cu = nu > 0 ? (float)(m->reg / n / nu) : 0, ci = np_ > 0 ? (float)(m->reg / n / np_) : 0;
    float cj = nn > 0 ? (float)(m->reg / n / nn) : 0;
    memset(m->user_grad, 0, sizeof(float) * (size_t)m->n_users * 2 * d);
    memset(m->item_grad, 0, sizeof(float) * (size_t)m->n_items * d);
    for (int r = 0; r < n; r++) {
        const float *eu = m->user + (size_t)u[r] * 2 * d, *zi = m->z + (size_t)r * d, *zj = m->z + (size_t)(n + r) * d;
        const float *li = m->item + (size_t)i[r] * d, *lj = m->item + (size_t)j[r] * d;
        float *gu = m->user_grad + (size_t)u[r] * 2 * d, *gi = m->item_grad + (size_t)i[r] * d, *gj = m->item_grad + (size_t)j[r] * d;
        float *dzi = m->dz + (size_t)r * d, *dzj = m->dz + (size_t)(n + r) * d, g = m->dx[r];
        for (int k = 0; k < d; k++) {
            gu[k] += g * (li[k] - lj[k]) + cu * eu[k];
            gu[d + k] += g * (zi[k] - zj[k]) + cu * eu[d + k];
            gi[k] += g * eu[k] + ci * li[k];
            gj[k] += -g * eu[k] + cj * lj[k];
            dzi[k] = g * eu[d + k] + ci * zi[k];
            dzj[k] = -g * eu[d + k] + cj * zj[k];
        }
    }
    /* W's gradient (d, F) = dz^T fb; b's = the column sums of dz */
    if ((st = mrec_gemm(m->ctx, m->w_grad, m->dz, m->fb, NULL, 1, 0, 1, 0, d, F, 2 * n, d, F, F))) return st;
    memset(m->b_grad, 0, sizeof(float) * (size_t)d);
    for (int r = 0; r < 2 * n; r++)
        for (int k = 0; k < d; k++) m->b_grad[k] += m->dz[(size_t)r * d + k];
    *loss_out = loss;
    return MREC_OK;
}

static double vbpr_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    vbpr *m = self;
    double loss = NAN;
    m->status = batch_loss_grad(m, &loss, u, i, j, n);
    return m->status ? NAN : loss;
}

/* Every item's [I_i ; W f_i + b], for scoring. */
static mrec_status vbpr_prepare(void *self) {
    vbpr *m = self;
    int d = m->dim;
    if (!m->all && !(m->all = malloc(sizeof(float) * (size_t)m->n_items * 2 * d)))
        return mrec_fail(MREC_ERR_NOMEM, "vbpr: %d item vectors", m->n_items);
    mrec_status st = mrec_gemm(m->ctx, m->all + d, m->feat, m->w, m->b, 1, 0, 0, 1, m->n_items, d, m->n_feat, m->n_feat,
                               m->n_feat, 2 * d);
    if (st) return st;
    for (int it = 0; it < m->n_items; it++) memcpy(m->all + (size_t)it * 2 * d, m->item + (size_t)it * d, sizeof(float) * (size_t)d);
    return MREC_OK;
}

static mrec_status vbpr_score(void *self, int u0, int n, float *scores) {
    vbpr *m = self;
    int D = 2 * m->dim;
    return mrec_gemm(m->ctx, scores, m->user + (size_t)u0 * D, m->all, NULL, 1, 0, 0, 1, n, m->n_items, D, D, D, m->n_items);
}

static void vbpr_destroy(void *self) {
    vbpr *m = self;
    free(m->user), free(m->item), free(m->w), free(m->b), free(m->user_grad), free(m->item_grad), free(m->w_grad), free(m->b_grad);
    free(m->fb), free(m->z), free(m->dz), free(m->pos), free(m->neg), free(m->dx), free(m->all);
    free(m);
}

mrec_status mrec_vbpr_create(mrec_model *out, int n_users, int n_items, int dim, float reg, const float *feat, int n_feat,
                             mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "vbpr");
    if (st) return st;
    vbpr *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "vbpr");
    m->n_users = n_users, m->n_items = n_items, m->dim = dim, m->n_feat = n_feat, m->reg = reg, m->feat = feat, m->ctx = ctx;
    size_t nu = (size_t)n_users * 2 * dim, ni = (size_t)n_items * dim, nw = (size_t)dim * n_feat;
    m->user = malloc(sizeof(float) * nu), m->item = malloc(sizeof(float) * ni), m->w = malloc(sizeof(float) * nw);
    m->b = calloc((size_t)dim, sizeof(float));
    m->user_grad = calloc(nu, sizeof(float)), m->item_grad = calloc(ni, sizeof(float)), m->w_grad = calloc(nw, sizeof(float));
    m->b_grad = calloc((size_t)dim, sizeof(float));
    if (!m->user || !m->item || !m->w || !m->b || !m->user_grad || !m->item_grad || !m->w_grad || !m->b_grad) {
        vbpr_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "vbpr: embeddings of %d users and %d items, a %d x %d projection", n_users, n_items, dim,
                         n_feat);
    }
    double bu = sqrt(6.0 / (n_users + 2 * dim)), bi = sqrt(6.0 / (n_items + dim)), sw = sqrt(2.0 / (n_feat + dim));
    for (size_t k = 0; k < nu; k++) m->user[k] = (float)(bu * (2 * mrec_rng_uniform(rng) - 1));
    for (size_t k = 0; k < ni; k++) m->item[k] = (float)(bi * (2 * mrec_rng_uniform(rng) - 1));
    for (size_t k = 0; k < nw; k++) m->w[k] = (float)(sw * mrec_rng_normal(rng));
    out->name = "VBPR", out->self = m, out->n_params = 4;
    out->param[0] = m->user, out->grad[0] = m->user_grad, out->size[0] = (int64_t)nu;
    out->param[1] = m->item, out->grad[1] = m->item_grad, out->size[1] = (int64_t)ni;
    out->param[2] = m->w, out->grad[2] = m->w_grad, out->size[2] = (int64_t)nw;
    out->param[3] = m->b, out->grad[3] = m->b_grad, out->size[3] = dim;
    out->status = &m->status;
    out->loss_grad = vbpr_loss_grad, out->prepare = vbpr_prepare, out->score = vbpr_score, out->destroy = vbpr_destroy;
    return MREC_OK;
}
