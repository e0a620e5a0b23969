/* lightgcnm.c: LightGCN-M, the multimodal LightGCN of the Ducho-meets-Elliot
 * benchmark's Elliot fork.
 *
 * Items have no id embeddings: an item's ego row is its features, projected
 * per modality and scaled to unit length, then averaged (or summed) over the
 * modalities; "concat" projects the modalities side by side with one linear
 * layer (the caller passes them as one matrix). Users have ego embeddings.
 *   X_i = agg_m normalize(W_m f_{m,i} + b_m),  E0 = [U; X]
 *   F = (E0 + Â E0 + .. + Â^L E0) / (L + 1),  score = <F_u, F_i>
 *   loss = mean_b softplus(<F_u, F_j> - <F_u, F_i>)
 *        + l_w / 2 (|U_b|^2 + |F_pos(b)|^2 + |F_neg(b)|^2) / n
 * the regularizer on the users' ego rows but the items' propagated rows, as
 * the fork writes it. The features are trained too (the fork loads them with
 * freeze=False), so the model keeps its own copy. The fork ranks by
 * sigmoid(score), the same order as the score.
 *
 * Backward: dE0 = layer_mean_back(dF); the users' part is their gradient;
 * the items' part goes back through the unit rows and the projections:
 *   dY = (dZ - Z <Z, dZ>) / |Y|,  dW = dY^T f,  db = sum_i dY_i,  df = dY W.
 * Host memory only.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODALITIES 8

typedef struct {
    mrec_csr adj;
    int n_users, n_items, n_nodes, dim, layers, n_mod, sum;
    float l_w;
    int feat_dim[MAX_MODALITIES];
    float *user, *user_grad;                    /* (U, d) */
    float *feat[MAX_MODALITIES], *feat_grad[MAX_MODALITIES]; /* (I, f_m) trained copies */
    float *w[MAX_MODALITIES], *w_grad[MAX_MODALITIES];       /* (d, f_m) as nn.Linear's weight */
    float *bias[MAX_MODALITIES], *bias_grad[MAX_MODALITIES]; /* (d) */
    float *z[MAX_MODALITIES];                   /* (I, d) each modality's unit rows */
    float *norm[MAX_MODALITIES];                /* (I) their lengths before scaling */
    float *ego, *final, *dfinal, *dego, *a, *b; /* (N, d) */
    float *dy;                                  /* (I, d) */
    mrec_context *ctx;
    mrec_status status;
} lightgcnm;

/* ego = [U; X] from the current weights, then final = the layer mean. */
static mrec_status propagate(lightgcnm *m) {
    int d = m->dim, U = m->n_users, I = m->n_items;
    float *x = m->ego + (size_t)U * d;
    memcpy(m->ego, m->user, (size_t)U * d * sizeof(float));
    memset(x, 0, (size_t)I * d * sizeof(float));
    float c = m->sum ? 1.0f : 1.0f / m->n_mod;
    for (int k = 0; k < m->n_mod; k++) {
        int f = m->feat_dim[k];
        /* Y (I, d) = feat W^T, then + b and unit rows, in place */
        mrec_status st = mrec_gemm(m->ctx, m->z[k], m->feat[k], m->w[k], NULL, 1, 0, 0, 1, I, d, f, f, f, d);
        if (st) return st;
        for (int i = 0; i < I; i++) {
            float *y = m->z[k] + (size_t)i * d;
            double s = 0;
            for (int q = 0; q < d; q++) y[q] += m->bias[k][q], s += (double)y[q] * y[q];
            float r = (float)fmax(sqrt(s), 1e-12); /* F.normalize's floor */
            m->norm[k][i] = r;
            for (int q = 0; q < d; q++) y[q] /= r, x[(size_t)i * d + q] += c * y[q];
        }
    }
    return mrec_csr_layer_mean(m->final, m->ego, &m->adj, m->layers, d, m->a, m->b, m->ctx);
}

static mrec_status step(lightgcnm *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, U = m->n_users, I = m->n_items;
    size_t total = (size_t)m->n_nodes * d;
    mrec_status st = propagate(m);
    if (st) return st;
    double loss = 0, reg = 0;
    float cr = m->l_w / n;
    memset(m->dfinal, 0, total * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d;
        const float *fj = m->final + (size_t)(U + j[b]) * d;
        float sp = 0, sn = 0;
        for (int q = 0; q < d; q++) sp += fu[q] * fi[q], sn += fu[q] * fj[q];
        double x = (double)sp - sn;
        loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); /* softplus(-x), stably */
        float g = (float)(-1.0 / (1.0 + exp(x)) / n);
        float *gu = m->dfinal + (size_t)u[b] * d, *gi = m->dfinal + (size_t)(U + i[b]) * d;
        float *gj = m->dfinal + (size_t)(U + j[b]) * d;
        for (int q = 0; q < d; q++) {
            gu[q] += g * (fi[q] - fj[q]), gi[q] += g * fu[q] + cr * fi[q], gj[q] += -g * fu[q] + cr * fj[q];
            reg += (double)fi[q] * fi[q] + (double)fj[q] * fj[q] + (double)m->user[(size_t)u[b] * d + q] * m->user[(size_t)u[b] * d + q];
        }
    }
    loss = loss / n + m->l_w * reg / 2 / n;
    if ((st = mrec_csr_layer_mean_back(m->dego, m->dfinal, &m->adj, 1, m->layers, d, m->a, m->b, m->ctx))) return st;
    memcpy(m->user_grad, m->dego, (size_t)U * d * sizeof(float));
    for (int b = 0; b < n; b++)
        for (int q = 0; q < d; q++) m->user_grad[(size_t)u[b] * d + q] += cr * m->user[(size_t)u[b] * d + q];
    const float *dx = m->dego + (size_t)U * d;
    float c = m->sum ? 1.0f : 1.0f / m->n_mod;
    for (int k = 0; k < m->n_mod; k++) {
        int f = m->feat_dim[k];
        memset(m->bias_grad[k], 0, (size_t)d * sizeof(float));
        for (int r = 0; r < I; r++) {
            const float *z = m->z[k] + (size_t)r * d, *g = dx + (size_t)r * d;
            float *dy = m->dy + (size_t)r * d;
            double dot = 0;
            for (int q = 0; q < d; q++) dot += (double)z[q] * g[q];
            for (int q = 0; q < d; q++) {
                dy[q] = (float)(c * (g[q] - z[q] * dot) / m->norm[k][r]);
                m->bias_grad[k][q] += dy[q];
            }
        }
        /* dW (d, f) = dY^T feat; dfeat (I, f) = dY W */
        if ((st = mrec_gemm(m->ctx, m->w_grad[k], m->dy, m->feat[k], NULL, 1, 0, 1, 0, d, f, I, d, f, f))) return st;
        if ((st = mrec_gemm(m->ctx, m->feat_grad[k], m->dy, m->w[k], NULL, 1, 0, 0, 0, I, f, d, d, f, f))) return st;
    }
    *loss_out = loss;
    return MREC_OK;
}

static double lightgcnm_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lightgcnm *m = self;
    double loss = NAN;
    m->status = step(m, &loss, u, i, j, n);
    return m->status ? NAN : loss;
}

static mrec_status lightgcnm_prepare(void *self) { return propagate(self); }

static mrec_status lightgcnm_score(void *self, int u0, int n, float *scores) {
    lightgcnm *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static void lightgcnm_destroy(void *self) {
    lightgcnm *m = self;
    free(m->user), free(m->user_grad), free(m->ego), free(m->final), free(m->dfinal), free(m->dego), free(m->a), free(m->b);
    free(m->dy);
    for (int k = 0; k < MAX_MODALITIES; k++) {
        free(m->feat[k]), free(m->feat_grad[k]), free(m->w[k]), free(m->w_grad[k]), free(m->bias[k]), free(m->bias_grad[k]);
        free(m->z[k]), free(m->norm[k]);
    }
    free(m);
}

mrec_status mrec_lightgcnm_create(mrec_model *out, const mrec_graph *graph, int n_users, int n_items, const float *const *feat,
                                  const int *feat_dim, int n_modalities, int sum, int dim, int layers, float l_w, mrec_rng *rng,
                                  mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "lightgcnm");
    if (st) return st;
    if (graph->n_nodes != n_users + n_items || layers < 0 || layers > 16 || dim < 1 || n_modalities < 1 ||
        n_modalities > MAX_MODALITIES)
        return mrec_fail(MREC_ERR_ARG, "lightgcnm: graph of %d nodes for %d users + %d items, %d layers, %d modalities (1 to %d)",
                         graph->n_nodes, n_users, n_items, layers, n_modalities, MAX_MODALITIES);
    lightgcnm *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "lightgcnm");
    m->adj = mrec_graph_csr(graph), m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items;
    m->dim = dim, m->layers = layers, m->n_mod = n_modalities, m->sum = sum, m->l_w = l_w, m->ctx = ctx;
    size_t total = (size_t)m->n_nodes * dim, nu = (size_t)n_users * dim, ni = (size_t)n_items * dim;
    m->user = malloc(nu * 4), m->user_grad = malloc(nu * 4), m->ego = malloc(total * 4), m->final = malloc(total * 4);
    m->dfinal = malloc(total * 4), m->dego = malloc(total * 4), m->a = malloc(total * 4), m->b = malloc(total * 4);
    m->dy = malloc(ni * 4);
    int ok = m->user && m->user_grad && m->ego && m->final && m->dfinal && m->dego && m->a && m->b && m->dy;
    for (int k = 0; k < n_modalities && ok; k++) {
        size_t f = (size_t)feat_dim[k], nf = (size_t)n_items * f;
        m->feat_dim[k] = feat_dim[k];
        m->feat[k] = malloc(nf * 4), m->feat_grad[k] = malloc(nf * 4), m->w[k] = malloc(f * dim * 4);
        m->w_grad[k] = malloc(f * dim * 4), m->bias[k] = malloc((size_t)dim * 4), m->bias_grad[k] = malloc((size_t)dim * 4);
        m->z[k] = malloc(ni * 4), m->norm[k] = malloc((size_t)n_items * 4);
        ok = m->feat[k] && m->feat_grad[k] && m->w[k] && m->w_grad[k] && m->bias[k] && m->bias_grad[k] && m->z[k] && m->norm[k];
        if (ok) memcpy(m->feat[k], feat[k], nf * 4);
    }
    if (!ok) {
        lightgcnm_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "lightgcnm: %d nodes x %d and the features", m->n_nodes, dim);
    }
    /* users xavier-uniform; projections as nn.Linear's default, U(-1/sqrt(f), 1/sqrt(f)) for weight and bias */
    double bu = sqrt(6.0 / (n_users + dim));
    for (size_t k = 0; k < nu; k++) m->user[k] = (float)(bu * (2.0 * mrec_rng_uniform(rng) - 1.0));
    for (int k = 0; k < n_modalities; k++) {
        double bw = 1.0 / sqrt((double)feat_dim[k]);
        for (size_t e = 0; e < (size_t)feat_dim[k] * dim; e++) m->w[k][e] = (float)(bw * (2.0 * mrec_rng_uniform(rng) - 1.0));
        for (int e = 0; e < dim; e++) m->bias[k][e] = (float)(bw * (2.0 * mrec_rng_uniform(rng) - 1.0));
    }
    if ((st = propagate(m))) {
        lightgcnm_destroy(m);
        return st;
    }
    out->name = "LightGCN-M", out->self = m;
    out->param[0] = m->user, out->grad[0] = m->user_grad, out->size[0] = (int64_t)nu;
    int p = 1;
    for (int k = 0; k < n_modalities; k++) {
        out->param[p] = m->feat[k], out->grad[p] = m->feat_grad[k], out->size[p++] = (int64_t)n_items * feat_dim[k];
        out->param[p] = m->w[k], out->grad[p] = m->w_grad[k], out->size[p++] = (int64_t)feat_dim[k] * dim;
        out->param[p] = m->bias[k], out->grad[p] = m->bias_grad[k], out->size[p++] = dim;
    }
    out->n_params = p;
    out->status = &m->status;
    out->loss_grad = lightgcnm_loss_grad, out->prepare = lightgcnm_prepare, out->score = lightgcnm_score;
    out->destroy = lightgcnm_destroy;
    return MREC_OK;
}
