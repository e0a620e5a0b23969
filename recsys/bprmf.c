/* bprmf.c: matrix factorization trained with BPR, as MMRec's BPR model.
 *
 *   score(u, i) = <U_u, I_i>
 *   loss = -mean log(1e-10 + sigmoid(score(u, i+) - score(u, i-)))
 *          + reg * (|U_b|_F + |I_b+|_F + |I_b-|_F) / n
 * where U_b is the (n, d) matrix of the batch's user rows (repeats kept),
 * as MMRec's EmbLoss (norms, not squared norms). Embeddings start
 * xavier-normal: std sqrt(2 / (rows + d)) per table.
 *
 * U and I are one table, users then items. On a CPU context a batch runs as
 * the loops below; on a GPU context (or after mrec_bprmf_use_ops) the table
 * and its gradient live on the device and a batch runs through the op
 * entries (bpr_ops.c), its loss left on the device; that path comes in the
 * trainer's two halves (stage, launch), one CUDA graph a batch on a GPU.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n_users, n_items, dim;
    float reg;
    float *user, *item;           /* (n_users, d), (n_items, d): one table, items after users */
    float *user_grad, *item_grad; /* likewise */
    float *pos, *neg, *dx;        /* (batch) scratch */
    int cap;
    mrec_context *ctx;
    mrec_status status;           /* of the last loss_grad */
    double host_loss;             /* the last batch's loss on the host path */
    int use_ops;                  /* batches through the op entries */
    mrec_arena dev;               /* on a GPU: the table and its gradient */
    mrec_bpr_ops ops;
} bprmf;

static float dot(const float *a, const float *b, int d) {
    float s = 0;
    for (int k = 0; k < d; k++) s += a[k] * b[k];
    return s;
}

static double frob(const float *table, const int32_t *rows, int n, int d) {
    double s = 0;
    for (int b = 0; b < n; b++)
        for (int k = 0; k < d; k++) s += (double)table[(size_t)rows[b] * d + k] * table[(size_t)rows[b] * d + k];
    return sqrt(s);
}

/* The regularizer's loss from the batch's three norms, and d|X|_F / dX = X / |X|_F as a factor per table */
static double reg_loss(const bprmf *m, double nu, double ni, double nj, int n, float c[3]) {
    c[0] = nu > 0 ? (float)(m->reg / n / nu) : 0, c[1] = ni > 0 ? (float)(m->reg / n / ni) : 0;
    c[2] = nj > 0 ? (float)(m->reg / n / nj) : 0;
    return m->reg * (nu + ni + nj) / n;
}

static int ensure_batch(bprmf *m, int n) {
    if (n <= m->cap) return 1;
    free(m->pos), free(m->neg), free(m->dx);
    m->pos = malloc((size_t)n * sizeof(float)), m->neg = malloc((size_t)n * sizeof(float)), m->dx = malloc((size_t)n * sizeof(float));
    m->cap = m->pos && m->neg && m->dx ? n : 0;
    return m->cap > 0;
}

static mrec_status host_loss_grad(bprmf *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim;
    if (!ensure_batch(m, n)) return mrec_fail(MREC_ERR_NOMEM, "bprmf: a batch of %d", n);
    memset(m->user_grad, 0, (size_t)m->n_users * d * sizeof(float));
    memset(m->item_grad, 0, (size_t)m->n_items * d * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *eu = m->user + (size_t)u[b] * d;
        m->pos[b] = dot(eu, m->item + (size_t)i[b] * d, d);
        m->neg[b] = dot(eu, m->item + (size_t)j[b] * d, d);
    }
    double loss = mrec_bpr_loss(m->dx, m->pos, m->neg, n);
    float c[3];
    loss += reg_loss(m, frob(m->user, u, n, d), frob(m->item, i, n, d), frob(m->item, j, n, d), n, c);
    for (int b = 0; b < n; b++) {
        const float *eu = m->user + (size_t)u[b] * d, *ei = m->item + (size_t)i[b] * d, *ej = m->item + (size_t)j[b] * d;
        float *gu = m->user_grad + (size_t)u[b] * d, *gi = m->item_grad + (size_t)i[b] * d;
        float *gj = m->item_grad + (size_t)j[b] * d, g = m->dx[b];
        for (int k = 0; k < d; k++) {
            gu[k] += g * (ei[k] - ej[k]) + c[0] * eu[k];
            gi[k] += g * eu[k] + c[1] * ei[k];
            gj[k] += -g * eu[k] + c[2] * ej[k];
        }
    }
    *loss_out = loss;
    return MREC_OK;
}

/* The same batch through the op entries, its loss left on the device: the table is its own regularized table. In
 * the trainer's two halves (mrec_model.stage, .launch): the host's part, then the launches. */
static mrec_status bprmf_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    bprmf *m = self;
    return mrec_bpr_ops_stage(&m->ops, m->ctx, u, i, j, n, m->n_users, m->n_users + m->n_items, m->dim);
}

static mrec_status bprmf_launch(void *self, const double **loss) {
    bprmf *m = self;
    mrec_bpr_ops *o = &m->ops;
    mrec_bpr_spec spec = {.form = MREC_BPR_LOG_SIGMOID, .weight = 1, .reg_form = MREC_BPR_REG_NORMS, .reg = m->reg};
    mrec_status st = mrec_bpr_ops_gather(o, m->user, m->user);
    if (!st) st = mrec_bpr_ops_loss(o, &spec);
    if (!st) st = mrec_bpr_ops_scatter_at(o, m->user_grad, m->user, 1, MREC_BPR_PARTS_ALL);
    *loss = st ? NULL : o->loss;
    return st;
}

static mrec_status ops_loss_grad(bprmf *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    const double *loss;
    mrec_status st = bprmf_stage(m, u, i, j, n);
    return st ? st : bprmf_launch(m, &loss);
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static const double *bprmf_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    bprmf *m = self;
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_loss_grad(m, u, i, j, n) : host_loss_grad(m, &m->host_loss, u, i, j, n);
    return m->status ? NULL : m->use_ops ? m->ops.loss : &m->host_loss;
}

static double bprmf_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    bprmf *m = self;
    return mrec_step_loss(m->ctx, &m->status, bprmf_step(self, u, i, j, n));
}

static mrec_status bprmf_score(void *self, int u0, int n, float *scores) {
    bprmf *m = self;
    return mrec_gemm(m->ctx, scores, m->user + (size_t)u0 * m->dim, m->item, NULL, 1, 0, 0, 1, n, m->n_items, m->dim,
                     m->dim, m->dim, m->n_items);
}

static mrec_status bprmf_embeddings(void *self, float *users, float *items) {
    bprmf *m = self; /* the item table follows the user table */
    return mrec_final_to_host(m->ctx, users, items, m->user, m->n_users, m->n_items, m->dim);
}

static void bprmf_destroy(void *self) {
    bprmf *m = self;
    if (m->dev.base) mrec_arena_release(&m->dev, m->ctx->cuda);
    else free(m->user), free(m->user_grad);
    free(m->pos), free(m->neg), free(m->dx);
    mrec_bpr_ops_free(&m->ops);
    free(m);
}

void mrec_bprmf_use_ops(mrec_model *model) {
    ((bprmf *)model->self)->use_ops = 1;
    model->stage = bprmf_stage, model->launch = bprmf_launch;
}

mrec_status mrec_bprmf_create(mrec_model *out, int n_users, int n_items, int dim, float reg, mrec_rng *rng,
                              mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    bprmf *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "bprmf");
    m->n_users = n_users, m->n_items = n_items, m->dim = dim, m->reg = reg, m->ctx = ctx;
    size_t nu = (size_t)n_users * dim, ni = (size_t)n_items * dim;
    /* the values are drawn on the host in any case, so a seed gives the same start on every device */
    float *table = malloc((nu + ni) * sizeof(float));
    m->user_grad = ctx->device == MREC_DEVICE_CPU ? calloc(nu + ni, sizeof(float)) : NULL;
    if (!table || (ctx->device == MREC_DEVICE_CPU && !m->user_grad)) {
        free(table), bprmf_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "bprmf: %d x %d and %d x %d embeddings", n_users, dim, n_items, dim);
    }
    double su = sqrt(2.0 / (n_users + dim)), si = sqrt(2.0 / (n_items + dim));
    for (size_t k = 0; k < nu; k++) table[k] = (float)(su * mrec_rng_normal(rng));
    for (size_t k = 0; k < ni; k++) table[nu + k] = (float)(si * mrec_rng_normal(rng));
    if (ctx->device == MREC_DEVICE_CPU) {
        m->user = table;
    } else { /* the table, then its gradient (every row written by each batch) */
        mrec_status st = mrec_arena_reserve(&m->dev, 2 * (nu + ni) * sizeof(float), ctx->device, ctx->cuda);
        if (!st) m->user = (float *)m->dev.base, m->user_grad = m->user + nu + ni;
        if (!st) st = mrec_copy_to_device(ctx, m->user, table, (nu + ni) * sizeof(float));
        free(table);
        if (st) {
            bprmf_destroy(m);
            return st;
        }
        m->use_ops = 1;
    }
    m->item = m->user + nu, m->item_grad = m->user_grad + nu;
    out->name = "BPRMF", out->self = m, out->n_params = 2;
    out->param[0] = m->user, out->grad[0] = m->user_grad, out->size[0] = (int64_t)nu;
    out->param[1] = m->item, out->grad[1] = m->item_grad, out->size[1] = (int64_t)ni;
    out->status = &m->status;
    out->loss_grad = bprmf_loss_grad, out->step = bprmf_step, out->score = bprmf_score, out->destroy = bprmf_destroy;
    out->embed_dim = dim, out->embeddings = bprmf_embeddings;
    if (m->use_ops) mrec_bprmf_use_ops(out);
    return MREC_OK;
}
