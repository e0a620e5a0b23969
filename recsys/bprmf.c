/* bprmf.c: matrix factorization trained with BPR, as MMRec's BPR model.
 *
 *   score(u, i) = <U_u, I_i>
 *   loss = -mean log(1e-10 + sigmoid(score(u, i+) - score(u, i-)))
 *          + reg * (|U_b|_F + |I_b+|_F + |I_b-|_F) / n
 * where U_b is the (n, d) matrix of the batch's user rows (repeats kept),
 * as MMRec's EmbLoss (norms, not squared norms). Embeddings start
 * xavier-normal: std sqrt(2 / (rows + d)) per table.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n_users, n_items, dim;
    float reg;
    float *user, *item;           /* (n_users, d), (n_items, d) */
    float *user_grad, *item_grad;
    float *pos, *neg, *dx;        /* (batch) scratch */
    int cap;
    mrec_context *ctx;
    mrec_status status;           /* of the last loss_grad */
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

static int ensure_batch(bprmf *m, int n) {
    if (n <= m->cap) return 1;
    free(m->pos), free(m->neg), free(m->dx);
    m->pos = malloc((size_t)n * sizeof(float)), m->neg = malloc((size_t)n * sizeof(float)), m->dx = malloc((size_t)n * sizeof(float));
    m->cap = m->pos && m->neg && m->dx ? n : 0;
    return m->cap > 0;
}

static double bprmf_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    bprmf *m = self;
    int d = m->dim;
    if (!ensure_batch(m, n)) {
        m->status = mrec_fail(MREC_ERR_NOMEM, "bprmf: a batch of %d", n);
        return NAN;
    }
    m->status = MREC_OK;
    memset(m->user_grad, 0, (size_t)m->n_users * d * sizeof(float));
    memset(m->item_grad, 0, (size_t)m->n_items * d * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *eu = m->user + (size_t)u[b] * d;
        m->pos[b] = dot(eu, m->item + (size_t)i[b] * d, d);
        m->neg[b] = dot(eu, m->item + (size_t)j[b] * d, d);
    }
    double loss = mrec_bpr_loss(m->dx, m->pos, m->neg, n);
    double nu = frob(m->user, u, n, d), ni = frob(m->item, i, n, d), nj = frob(m->item, j, n, d);
    loss += m->reg * (nu + ni + nj) / n;
    /* d|X|_F / dX = X / |X|_F, for each row of the batch matrix */
    float cu = nu > 0 ? (float)(m->reg / n / nu) : 0, ci = ni > 0 ? (float)(m->reg / n / ni) : 0;
    float cj = nj > 0 ? (float)(m->reg / n / nj) : 0;
    for (int b = 0; b < n; b++) {
        const float *eu = m->user + (size_t)u[b] * d, *ei = m->item + (size_t)i[b] * d, *ej = m->item + (size_t)j[b] * d;
        float *gu = m->user_grad + (size_t)u[b] * d, *gi = m->item_grad + (size_t)i[b] * d;
        float *gj = m->item_grad + (size_t)j[b] * d, g = m->dx[b];
        for (int k = 0; k < d; k++) {
            gu[k] += g * (ei[k] - ej[k]) + cu * eu[k];
            gi[k] += g * eu[k] + ci * ei[k];
            gj[k] += -g * eu[k] + cj * ej[k];
        }
    }
    return loss;
}

static mrec_status bprmf_score(void *self, int u0, int n, float *scores) {
    bprmf *m = self;
    return mrec_gemm(m->ctx, scores, m->user + (size_t)u0 * m->dim, m->item, NULL, 1, 0, 0, 1, n, m->n_items, m->dim,
                     m->dim, m->dim, m->n_items);
}

static void bprmf_destroy(void *self) {
    bprmf *m = self;
    free(m->user), free(m->item), free(m->user_grad), free(m->item_grad), free(m->pos), free(m->neg), free(m->dx);
    free(m);
}

mrec_status mrec_bprmf_create(mrec_model *out, int n_users, int n_items, int dim, float reg, mrec_rng *rng,
                              mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "bprmf");
    if (st) return st;
    bprmf *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "bprmf");
    m->n_users = n_users, m->n_items = n_items, m->dim = dim, m->reg = reg, m->ctx = ctx;
    size_t nu = (size_t)n_users * dim, ni = (size_t)n_items * dim;
    m->user = malloc(nu * sizeof(float)), m->item = malloc(ni * sizeof(float));
    m->user_grad = calloc(nu, sizeof(float)), m->item_grad = calloc(ni, sizeof(float));
    if (!m->user || !m->item || !m->user_grad || !m->item_grad) {
        bprmf_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "bprmf: %d x %d and %d x %d embeddings", n_users, dim, n_items, dim);
    }
    double su = sqrt(2.0 / (n_users + dim)), si = sqrt(2.0 / (n_items + dim));
    for (size_t k = 0; k < nu; k++) m->user[k] = (float)(su * mrec_rng_normal(rng));
    for (size_t k = 0; k < ni; k++) m->item[k] = (float)(si * mrec_rng_normal(rng));
    out->name = "BPRMF", out->self = m, out->n_params = 2;
    out->param[0] = m->user, out->grad[0] = m->user_grad, out->size[0] = (int64_t)nu;
    out->param[1] = m->item, out->grad[1] = m->item_grad, out->size[1] = (int64_t)ni;
    out->status = &m->status;
    out->loss_grad = bprmf_loss_grad, out->score = bprmf_score, out->destroy = bprmf_destroy;
    return MREC_OK;
}
