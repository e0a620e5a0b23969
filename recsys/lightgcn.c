/* lightgcn.c: LightGCN as MMRec (and the authors' code) train it.
 *
 *   E0 = [U; I] (ego embeddings), E_k = Â E_{k-1} for k = 1..L,
 *   F = (E0 + E1 + ... + EL) / (L + 1),  score(u, i) = <F_u, F_i>
 *   loss = BPR on F + reg * (|E0_b(u)|_F + |E0_b(i+)|_F + |E0_b(i-)|_F) / n
 * Backward: Â is symmetric, so dE0 = (dF + Â dF + ... + Â^L dF) / (L + 1)
 * plus the regularizer's part on the batch's ego rows. Every step
 * propagates the whole graph, forward and back, as the reference does.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const mrec_graph *graph;
    int n_users, n_items, n_nodes, dim, layers;
    float reg;
    float *ego, *ego_grad;  /* (N, d) parameters: users then items */
    float *final;           /* (N, d) mean of the layers */
    float *a, *b;           /* (N, d) propagation buffers */
    float *dfinal;          /* (N, d) */
    float *pos, *neg, *dx;
    int cap;
    int authors_loss;       /* LightGCN-PyTorch's loss instead of MMRec's */
    mrec_context *ctx;
    mrec_status status;     /* of the last loss_grad */
} lightgcn;

/* final = mean of E0..EL */
static mrec_status propagate(lightgcn *m) {
    return mrec_graph_layer_mean(m->final, m->ego, m->graph, m->layers, m->dim, m->a, m->b, m->ctx);
}

static double frob(const float *table, const int32_t *rows, int offset, int n, int d) {
    double s = 0;
    for (int b = 0; b < n; b++)
        for (int k = 0; k < d; k++) {
            double v = table[(size_t)(rows[b] + offset) * d + k];
            s += v * v;
        }
    return sqrt(s);
}

static mrec_status batch_loss_grad(lightgcn *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j,
                                   int n) {
    int d = m->dim, U = m->n_users;
    size_t total = (size_t)m->n_nodes * d;
    mrec_status st;
    if (n > m->cap) {
        free(m->pos), free(m->neg), free(m->dx);
        m->pos = malloc((size_t)n * 4), m->neg = malloc((size_t)n * 4), m->dx = malloc((size_t)n * 4);
        m->cap = m->pos && m->neg && m->dx ? n : 0;
        if (!m->cap) return mrec_fail(MREC_ERR_NOMEM, "lightgcn: a batch of %d", n);
    }
    if ((st = propagate(m))) return st;
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d;
        const float *fj = m->final + (size_t)(U + j[b]) * d;
        float sp = 0, sn = 0;
        for (int k = 0; k < d; k++) sp += fu[k] * fi[k], sn += fu[k] * fj[k];
        m->pos[b] = sp, m->neg[b] = sn;
    }
    double loss = 0;
    if (m->authors_loss) {
        /* softplus(neg - pos) = -log sigmoid(x), computed stably */
        for (int b = 0; b < n; b++) {
            double x = (double)m->pos[b] - m->neg[b];
            loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
            m->dx[b] = (float)(-1.0 / (1.0 + exp(x)) / n);
        }
        loss /= n;
    } else {
        loss = mrec_bpr_loss(m->dx, m->pos, m->neg, n);
    }
    /* dF, on the batch's rows only */
    memset(m->dfinal, 0, total * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d;
        const float *fj = m->final + (size_t)(U + j[b]) * d;
        float *gu = m->dfinal + (size_t)u[b] * d, *gi = m->dfinal + (size_t)(U + i[b]) * d;
        float *gj = m->dfinal + (size_t)(U + j[b]) * d, g = m->dx[b];
        for (int k = 0; k < d; k++) gu[k] += g * (fi[k] - fj[k]), gi[k] += g * fu[k], gj[k] -= g * fu[k];
    }
    /* dE0 = sum_k Â^k dF / (L + 1) (Â is symmetric) */
    if ((st = mrec_graph_layer_mean_back(m->ego_grad, m->dfinal, m->graph, 1, m->layers, d, m->a, m->b, m->ctx))) return st;
    /* the regularizer on the batch's ego rows: MMRec's norms, or the authors' squared norms / 2 */
    double nu = frob(m->ego, u, 0, n, d), ni = frob(m->ego, i, U, n, d), nj = frob(m->ego, j, U, n, d);
    float cu, ci, cj;
    if (m->authors_loss) {
        loss += m->reg * (nu * nu + ni * ni + nj * nj) / 2 / n;
        cu = ci = cj = m->reg / n;
    } else {
        loss += m->reg * (nu + ni + nj) / n;
        cu = nu > 0 ? (float)(m->reg / n / nu) : 0, ci = ni > 0 ? (float)(m->reg / n / ni) : 0;
        cj = nj > 0 ? (float)(m->reg / n / nj) : 0;
    }
    for (int b = 0; b < n; b++) {
        size_t ru = (size_t)u[b] * d, ri = (size_t)(U + i[b]) * d, rj = (size_t)(U + j[b]) * d;
        for (int k = 0; k < d; k++) {
            m->ego_grad[ru + k] += cu * m->ego[ru + k];
            m->ego_grad[ri + k] += ci * m->ego[ri + k];
            m->ego_grad[rj + k] += cj * m->ego[rj + k];
        }
    }
    *loss_out = loss;
    return MREC_OK;
}

static double lightgcn_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lightgcn *m = self;
    double loss = NAN;
    m->status = batch_loss_grad(m, &loss, u, i, j, n);
    return m->status ? NAN : loss;
}

void mrec_lightgcn_use_authors_loss(mrec_model *model) { ((lightgcn *)model->self)->authors_loss = 1; }

static mrec_status lightgcn_prepare(void *self) { return propagate(self); }

static mrec_status lightgcn_score(void *self, int u0, int n, float *scores) {
    lightgcn *m = self;
    int d = m->dim;
    return mrec_gemm(m->ctx, scores, m->final + (size_t)u0 * d, m->final + (size_t)m->n_users * d, NULL, 1, 0, 0, 1, n,
                     m->n_items, d, d, d, m->n_items);
}

static void lightgcn_destroy(void *self) {
    lightgcn *m = self;
    free(m->ego), free(m->ego_grad), free(m->final), free(m->a), free(m->b), free(m->dfinal);
    free(m->pos), free(m->neg), free(m->dx);
    free(m);
}

mrec_status mrec_lightgcn_create(mrec_model *out, const mrec_graph *graph, int n_users, int n_items, int dim, int layers,
                                 float reg, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "lightgcn");
    if (st) return st;
    if (graph->n_nodes != n_users + n_items || layers < 0 || layers > 16)
        return mrec_fail(MREC_ERR_ARG, "lightgcn: graph of %d nodes for %d users + %d items, %d layers", graph->n_nodes,
                         n_users, n_items, layers);
    lightgcn *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "lightgcn");
    m->graph = graph, m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items;
    m->dim = dim, m->layers = layers, m->reg = reg, m->ctx = ctx;
    size_t total = (size_t)m->n_nodes * dim;
    m->ego = malloc(total * 4), m->ego_grad = calloc(total, 4), m->final = malloc(total * 4);
    m->a = malloc(total * 4), m->b = malloc(total * 4), m->dfinal = malloc(total * 4);
    if (!m->ego || !m->ego_grad || !m->final || !m->a || !m->b || !m->dfinal) {
        lightgcn_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "lightgcn: %d nodes x %d", m->n_nodes, dim);
    }
    /* xavier-uniform per table, bound sqrt(6 / (rows + d)) */
    double bu = sqrt(6.0 / (n_users + dim)), bi = sqrt(6.0 / (n_items + dim));
    for (size_t k = 0; k < total; k++) {
        double bound = k < (size_t)n_users * dim ? bu : bi;
        m->ego[k] = (float)(bound * (2.0 * mrec_rng_uniform(rng) - 1.0));
    }
    if ((st = propagate(m))) {
        lightgcn_destroy(m);
        return st;
    }
    out->name = "LightGCN", out->self = m, out->n_params = 1;
    out->param[0] = m->ego, out->grad[0] = m->ego_grad, out->size[0] = (int64_t)total;
    out->status = &m->status;
    out->loss_grad = lightgcn_loss_grad, out->prepare = lightgcn_prepare, out->score = lightgcn_score;
    out->destroy = lightgcn_destroy;
    return MREC_OK;
}
