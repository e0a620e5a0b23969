/* vbpr.c: VBPR as MMRec defines it (src/models/vbpr.py).
 *
 *   item(i)  = [ I_i ; W f_i + b ]            (2d: latent, then content)
 *   score    = < U_u, item(i) >               (U: n_users x 2d)
 *   loss     = -mean log(1e-10 + sigmoid(score(u, i+) - score(u, i-)))
 *              + reg * (|U_b|_F + |item(I_b+)|_F + |item(I_b-)|_F) / n
 * f_i concatenates the item's modalities (MMRec: textual, then visual). U
 * and I start xavier-uniform, W xavier-normal, b zero. Unlike MMRec, which
 * projects every item's features at each batch, training projects only the
 * batch's distinct items, once each (the same numbers); scoring projects all.
 *
 * Two paths compute this: the host loops (a CPU context), and the op path
 * (a GPU context always, a CPU one after mrec_vbpr_use_ops) with every array
 * on the context's device. There the batch's rows sit in one table T (3n, 2d):
 * U_u for each triple, then [I_i ; z_i] for the positives and the negatives;
 * the BPR step shared with BPRMF (bpr_ops.c) scores T's rows and combines
 * their gradients, which are then scattered to U and I in batch order.
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
    mrec_batch_items drawn;        /* the host path: a batch's distinct items and their features */
    float *fb, *z, *dz;            /* the op path's (2n, n_feat) features; (2n, d) projections and their gradients */
    float *pos, *neg, *dx;         /* (n) */
    float *all;                    /* (n_items, 2d) for scoring */
    int cap;
    mrec_context *ctx;
    mrec_status status;            /* of the last loss_grad */
    double host_loss;              /* the last batch's loss on the host path */
    /* the op path */
    int use_ops, on_device;        /* on_device: the arrays above are carved from mem */
    int n_batch;                   /* the op path's staged batch */
    mrec_arena mem, batch;         /* on the context's device: the model's arrays; a batch's (sized for ops_cap) */
    const float *feat_ops;         /* feat where the ops read it */
    int ops_cap;
    float *T, *mixed;              /* (3 cap, 2d) the batch's rows and their gradients */
    float *rows;                   /* (2 cap, d) item rows gathered, then their gradients */
    mrec_batch_rows users, items;  /* u; i then j */
    mrec_bpr_ops bpr;
} vbpr;

static int ensure_batch(vbpr *m, int n) {
    if (n <= m->cap) return 1;
    free(m->z), free(m->dz), free(m->pos), free(m->neg), free(m->dx);
    m->z = malloc(sizeof(float) * 2 * (size_t)n * m->dim), m->dz = malloc(sizeof(float) * 2 * (size_t)n * m->dim);
    m->pos = malloc(sizeof(float) * (size_t)n), m->neg = malloc(sizeof(float) * (size_t)n), m->dx = malloc(sizeof(float) * (size_t)n);
    m->cap = m->z && m->dz && m->pos && m->neg && m->dx ? n : 0;
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
    /* z: W f + b of the batch's distinct items, once each; row[r] and row[n + r] the positive's and the negative's */
    mrec_status st = mrec_batch_items_set(&m->drawn, m->n_items, i, j, n);
    if (st) return st;
    const int32_t *row = m->drawn.row, *uniq = m->drawn.uniq;
    int n_uniq = m->drawn.n;
    if ((st = mrec_gemm_rows(m->ctx, m->z, m->feat, uniq, m->w, NULL, m->b, 1, 0, 0, 1, n_uniq, d, F, F, F, d))) return st;
    double sp = 0, sn = 0, su = 0;
    for (int r = 0; r < n; r++) {
        const float *eu = m->user + (size_t)u[r] * 2 * d, *zi = m->z + (size_t)row[r] * d, *zj = m->z + (size_t)row[n + r] * d;
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
    memset(m->dz, 0, sizeof(float) * (size_t)n_uniq * d);
    for (int r = 0; r < n; r++) {
        const float *eu = m->user + (size_t)u[r] * 2 * d, *zi = m->z + (size_t)row[r] * d, *zj = m->z + (size_t)row[n + r] * d;
        const float *li = m->item + (size_t)i[r] * d, *lj = m->item + (size_t)j[r] * d;
        float *gu = m->user_grad + (size_t)u[r] * 2 * d, *gi = m->item_grad + (size_t)i[r] * d, *gj = m->item_grad + (size_t)j[r] * d;
        float *dzi = m->dz + (size_t)row[r] * d, *dzj = m->dz + (size_t)row[n + r] * d, g = m->dx[r];
        for (int k = 0; k < d; k++) {
            gu[k] += g * (li[k] - lj[k]) + cu * eu[k];
            gu[d + k] += g * (zi[k] - zj[k]) + cu * eu[d + k];
            gi[k] += g * eu[k] + ci * li[k];
            gj[k] += -g * eu[k] + cj * lj[k];
            dzi[k] += g * eu[d + k] + ci * zi[k];
            dzj[k] += -g * eu[d + k] + cj * zj[k];
        }
    }
    /* W's gradient (d, F) = dz^T f (a repeated item's rows summed in dz); b's = the column sums of dz */
    if ((st = mrec_gemm_rows(m->ctx, m->w_grad, m->dz, NULL, m->feat, uniq, NULL, 1, 0, 1, 0, d, F, n_uniq, d, F, F))) return st;
    memset(m->b_grad, 0, sizeof(float) * (size_t)d);
    for (int r = 0; r < n_uniq; r++)
        for (int k = 0; k < d; k++) m->b_grad[k] += m->dz[(size_t)r * d + k];
    *loss_out = loss;
    return MREC_OK;
}

/* ---- the op path ---- */

/* A batch's device buffers from a (a measuring arena counts them). */
static void carve_batch(vbpr *m, mrec_arena *a) {
    size_t c = (size_t)m->ops_cap, d = (size_t)m->dim;
    m->T = mrec_arena_alloc(a, sizeof(float) * 3 * c * 2 * d), m->mixed = mrec_arena_alloc(a, sizeof(float) * 3 * c * 2 * d);
    m->fb = mrec_arena_alloc(a, sizeof(float) * 2 * c * (size_t)m->n_feat);
    m->rows = mrec_arena_alloc(a, sizeof(float) * 2 * c * d), m->dz = mrec_arena_alloc(a, sizeof(float) * 2 * c * d);
}

/* Buffers for batches of up to n triples, grown (not per batch) when a batch is larger than any before. */
static mrec_status ensure_ops_batch(vbpr *m, int n) {
    if (n <= m->ops_cap) return MREC_OK;
    mrec_context *ctx = m->ctx;
    mrec_arena_release(&m->batch, ctx->cuda);
    m->ops_cap = n;
    mrec_arena measure = mrec_arena_measure();
    carve_batch(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->batch, measure.peak, ctx->device, ctx->cuda);
    if (!st) carve_batch(m, &m->batch);
    else m->ops_cap = 0;
    return st;
}

/* batch_loss_grad through the op entries, in the trainer's two halves (mrec_model.stage, .launch): the host's part
 * (buffers grown, the batch's ids checked and sent up), then the launches. */
static mrec_status vbpr_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    vbpr *m = self;
    mrec_context *ctx = m->ctx;
    const int32_t *ij[2] = {i, j};
    static const int zero[2] = {0, 0};
    mrec_status st = ensure_ops_batch(m, n);
    if (!st) st = mrec_batch_rows_stage(&m->users, ctx, m->n_users, 1, &u, zero, n);
    if (!st) st = mrec_batch_rows_stage(&m->items, ctx, m->n_items, 2, ij, zero, n);
    /* the BPR step's ids are T's own rows b, n + b and 2n + b (T one table) */
    const int32_t *row = m->items.h_iota;
    if (!st) st = mrec_bpr_ops_stage(&m->bpr, ctx, row, row, row + n, n, n, 3 * m->ops_cap, 2 * m->dim);
    if (!st) m->n_batch = n;
    return st;
}

static mrec_status vbpr_launch(void *self, const double **loss) {
    vbpr *m = self;
    int n = m->n_batch, d = m->dim, D = 2 * d, F = m->n_feat, U = m->n_users, I = m->n_items;
    mrec_context *ctx = m->ctx;
    /* T: the users' rows, then [I ; W f + b] for the positives and the negatives */
    float *Tc = m->T + (size_t)n * D;
    mrec_status st = mrec_batch_rows_index(&m->users);
    if (!st) st = mrec_batch_rows_index(&m->items);
    if (!st) st = mrec_embedding_checked(ctx, m->T, m->user, m->users.ids, n, U, D);
    if (!st) st = mrec_embedding_checked(ctx, m->rows, m->item, m->items.ids, 2 * n, I, d);
    if (!st) st = mrec_copy_rows(ctx, Tc, D, m->rows, d, 2 * n, d);
    if (!st) st = mrec_embedding_checked(ctx, m->fb, m->feat_ops, m->items.ids, 2 * n, I, F);
    if (!st) st = mrec_gemm(ctx, Tc + d, m->fb, m->w, m->b, 1, 0, 0, 1, 2 * n, d, F, F, F, D);
    /* pos, neg and the rows' squared norms */
    mrec_bpr_spec spec = {.form = MREC_BPR_LOG_SIGMOID, .weight = 1, .reg_form = MREC_BPR_REG_NORMS, .reg = m->reg};
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->T, m->T);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    /* mixed: each of T's rows' gradient; the users' to U, the items' halves to I and to z */
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->mixed, m->T, 1, MREC_BPR_PARTS_ALL);
    const float *mc = m->mixed + (size_t)n * D;
    if (!st) st = mrec_batch_rows_scatter(&m->users, m->user_grad, m->mixed, D);
    if (!st) st = mrec_copy_rows(ctx, m->rows, d, mc, D, 2 * n, d);
    if (!st) st = mrec_batch_rows_scatter(&m->items, m->item_grad, m->rows, d);
    if (!st) st = mrec_copy_rows(ctx, m->dz, d, mc + d, D, 2 * n, d);
    /* W's gradient (d, F) = dz^T fb; b's = ones^T dz */
    if (!st) st = mrec_gemm(ctx, m->w_grad, m->dz, m->fb, NULL, 1, 0, 1, 0, d, F, 2 * n, d, F, F);
    if (!st) st = mrec_gemm(ctx, m->b_grad, m->items.ones, m->dz, NULL, 1, 0, 0, 0, 1, d, 2 * n, 2 * n, d, d);
    *loss = st ? NULL : m->bpr.loss;
    return st;
}

static mrec_status ops_loss_grad(vbpr *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    const double *loss;
    mrec_status st = vbpr_stage(m, u, i, j, n);
    return st ? st : vbpr_launch(m, &loss);
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static const double *vbpr_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    vbpr *m = self;
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_loss_grad(m, u, i, j, n) : batch_loss_grad(m, &m->host_loss, u, i, j, n);
    return m->status ? NULL : m->use_ops ? m->bpr.loss : &m->host_loss;
}

static double vbpr_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    vbpr *m = self;
    return mrec_step_loss(m->ctx, &m->status, vbpr_step(self, u, i, j, n));
}

/* Every item's [I_i ; W f_i + b], for scoring. */
static mrec_status vbpr_prepare(void *self) {
    vbpr *m = self;
    int d = m->dim;
    if (m->use_ops) { /* on a GPU `all` is carved with the model; on a CPU context it is allocated here */
        if (!m->all && !(m->all = malloc(sizeof(float) * (size_t)m->n_items * 2 * d)))
            return mrec_fail(MREC_ERR_NOMEM, "vbpr: %d item vectors", m->n_items);
        mrec_status st = mrec_copy_rows(m->ctx, m->all, 2 * d, m->item, d, m->n_items, d);
        return st ? st
                  : mrec_gemm(m->ctx, m->all + d, m->feat_ops, m->w, m->b, 1, 0, 0, 1, m->n_items, d, m->n_feat, m->n_feat,
                              m->n_feat, 2 * d);
    }
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

/* score(u, i) = <user_u, [item_i ; W f_i + b]>: the user table (2d wide) and the scoring table */
static mrec_status vbpr_embeddings(void *self, float *users, float *items) {
    vbpr *m = self;
    size_t D = 2 * (size_t)m->dim;
    mrec_status st = mrec_copy_to_host(m->ctx, users, m->user, sizeof(float) * D * (size_t)m->n_users);
    return st ? st : mrec_copy_to_host(m->ctx, items, m->all, sizeof(float) * D * (size_t)m->n_items);
}

static void vbpr_destroy(void *self) {
    vbpr *m = self;
    mrec_bpr_ops_free(&m->bpr);
    mrec_batch_rows_free(&m->users), mrec_batch_rows_free(&m->items);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->use_ops) m->fb = m->dz = NULL; /* carved from batch */
    if (m->on_device) {
        mrec_arena_release(&m->mem, m->ctx->cuda);
        free(m->pos), free(m->neg), free(m->dx);
        free(m);
        return;
    }
    free(m->user), free(m->item), free(m->w), free(m->b), free(m->user_grad), free(m->item_grad), free(m->w_grad), free(m->b_grad);
    free(m->fb), free(m->z), free(m->dz), free(m->pos), free(m->neg), free(m->dx), free(m->all);
    mrec_batch_items_free(&m->drawn);
    free(m);
}

mrec_status mrec_vbpr_use_ops(mrec_model *model) {
    vbpr *m = model->self;
    if (m->use_ops) return MREC_OK;
    /* the host path's batch buffers give way to the op path's */
    free(m->z), free(m->dz);
    mrec_batch_items_free(&m->drawn);
    m->z = m->dz = NULL, m->cap = 0;
    m->feat_ops = m->feat, m->use_ops = 1;
    model->stage = vbpr_stage, model->launch = vbpr_launch;
    return MREC_OK;
}

/* On a GPU: the model's arrays and the features in one device allocation. */
static void carve(vbpr *m, mrec_arena *a) {
    size_t nu = (size_t)m->n_users * 2 * m->dim, ni = (size_t)m->n_items * m->dim, nw = (size_t)m->dim * m->n_feat;
    m->user = mrec_arena_alloc(a, sizeof(float) * nu), m->user_grad = mrec_arena_alloc(a, sizeof(float) * nu);
    m->item = mrec_arena_alloc(a, sizeof(float) * ni), m->item_grad = mrec_arena_alloc(a, sizeof(float) * ni);
    m->w = mrec_arena_alloc(a, sizeof(float) * nw), m->w_grad = mrec_arena_alloc(a, sizeof(float) * nw);
    m->b = mrec_arena_alloc(a, sizeof(float) * m->dim), m->b_grad = mrec_arena_alloc(a, sizeof(float) * m->dim);
    m->all = mrec_arena_alloc(a, sizeof(float) * (size_t)m->n_items * 2 * m->dim);
    m->feat_ops = mrec_arena_alloc(a, sizeof(float) * (size_t)m->n_items * m->n_feat);
}

/* Moves the host-drawn values to the device and frees them. */
static mrec_status place_on_device(vbpr *m) {
    mrec_context *ctx = m->ctx;
    float *host[4] = {m->user, m->item, m->w, m->b};
    size_t bytes[4] = {sizeof(float) * (size_t)m->n_users * 2 * m->dim, sizeof(float) * (size_t)m->n_items * m->dim,
                       sizeof(float) * (size_t)m->dim * m->n_feat, sizeof(float) * (size_t)m->dim};
    free(m->user_grad), free(m->item_grad), free(m->w_grad), free(m->b_grad);
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        for (int k = 0; k < 4; k++) free(host[k]);
        m->user = m->item = m->w = m->b = m->user_grad = m->item_grad = m->w_grad = m->b_grad = NULL;
        return st;
    }
    carve(m, &m->mem);
    m->on_device = 1, m->use_ops = 1;
    float *dev[4] = {m->user, m->item, m->w, m->b};
    for (int k = 0; k < 4 && !st; k++) st = mrec_copy_to_device(ctx, dev[k], host[k], bytes[k]);
    if (!st) st = mrec_copy_to_device(ctx, (float *)m->feat_ops, m->feat, sizeof(float) * (size_t)m->n_items * m->n_feat);
    for (int k = 0; k < 4; k++) free(host[k]);
    return st;
}

mrec_status mrec_vbpr_create(mrec_model *out, int n_users, int n_items, int dim, float reg, const float *feat, int n_feat,
                             mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = MREC_OK;
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
    if (ctx->device != MREC_DEVICE_CPU && (st = place_on_device(m))) {
        vbpr_destroy(m);
        return st;
    }
    out->name = "VBPR", out->self = m, out->n_params = 4;
    out->param[0] = m->user, out->grad[0] = m->user_grad, out->size[0] = (int64_t)nu;
    out->param[1] = m->item, out->grad[1] = m->item_grad, out->size[1] = (int64_t)ni;
    out->param[2] = m->w, out->grad[2] = m->w_grad, out->size[2] = (int64_t)nw;
    out->param[3] = m->b, out->grad[3] = m->b_grad, out->size[3] = dim;
    out->status = &m->status;
    out->loss_grad = vbpr_loss_grad, out->step = vbpr_step, out->prepare = vbpr_prepare, out->score = vbpr_score, out->destroy = vbpr_destroy;
    out->embed_dim = 2 * dim, out->embeddings = vbpr_embeddings;
    if (m->use_ops) out->stage = vbpr_stage, out->launch = vbpr_launch;
    return MREC_OK;
}
