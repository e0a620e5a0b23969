/* ngcf.c: Neural Graph Collaborative Filtering (Wang et al., SIGIR 2019), as
 * the authors' code computes it (see mrec_ngcf_create in mrec_recsys.h).
 *
 * Forward, per layer k (E0 the ego embeddings, d the width):
 *   S = Â E                      (N, d)  Â = D^-1 (A + I), node dropout on its entries
 *   Z1 = S W1 + b1, Z2 = (E*S) W2 + b2
 *   H = lrelu(Z1) + lrelu(Z2)   message dropout: E_next = H * mask
 *   N_k = E_next / |E_next|      (row-wise L2)
 * final = [E0 | N_1 | ... | N_L]  (N, d (L + 1))
 * Backward runs the same steps in reverse; Â is not symmetric, so its
 * transpose product is mrec_spmm_t_cpu. Everything a layer needs for its
 * backward is kept from the forward (S, Z1, Z2, E_next, the mask).
 */
#include "mrec_recsys.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SLOPE 0.2f
#define MAX_LAYERS 8

typedef struct {
    const mrec_graph *adj;
    int n_users, n_items, n_nodes, dim, layers, width; /* width = d (L + 1) */
    float decay, node_p, mess_p;
    mrec_rng drop_rng;
    mrec_pool *pool;
    /* parameters and gradients */
    float *ego, *g_ego;                                   /* (N, d) */
    float *w1[MAX_LAYERS], *b1[MAX_LAYERS], *w2[MAX_LAYERS], *b2[MAX_LAYERS]; /* (d, d), (d) */
    float *gw1[MAX_LAYERS], *gb1[MAX_LAYERS], *gw2[MAX_LAYERS], *gb2[MAX_LAYERS];
    /* forward state */
    float *adj_val;                                       /* (nnz) this step's Â entries */
    float *E[MAX_LAYERS + 1], *S[MAX_LAYERS], *Z1[MAX_LAYERS], *Z2[MAX_LAYERS], *mask[MAX_LAYERS]; /* (N, d) */
    float *final;                                         /* (N, width) */
    /* backward scratch, (N, d) each */
    float *dE, *dZ1, *dZ2, *dS, *tmp, *dfinal_rows;
    float *pos, *neg, *dx;
    int cap;
} ngcf;

/* One forward pass; with dropout when training. */
static void forward(ngcf *m, int training) {
    size_t n = (size_t)m->n_nodes * m->dim;
    int d = m->dim, N = m->n_nodes;
    const mrec_graph *g = m->adj;
    int64_t nnz = g->row_ptr[N];
    for (int64_t e = 0; e < nnz; e++) {
        float v = g->val[e];
        if (training && m->node_p > 0) v = mrec_rng_uniform(&m->drop_rng) < m->node_p ? 0.0f : v / (1.0f - m->node_p);
        m->adj_val[e] = v;
    }
    memcpy(m->E[0], m->ego, n * sizeof(float));
    for (int k = 0; k < m->layers; k++) {
        float *E = m->E[k], *S = m->S[k];
        mrec_spmm_cpu(S, g->row_ptr, g->col, m->adj_val, E, N, N, d, m->pool);
        mrec_gemm_cpu(m->Z1[k], S, m->w1[k], m->b1[k], 1, 0, 0, 0, N, d, d, d, d, d, m->pool);
        mrec_mul_cpu(m->tmp, E, S, (int64_t)n, m->pool);
        mrec_gemm_cpu(m->Z2[k], m->tmp, m->w2[k], m->b2[k], 1, 0, 0, 0, N, d, d, d, d, d, m->pool);
        float *H = m->E[k + 1];
        for (size_t i = 0; i < n; i++) {
            float a = m->Z1[k][i] > 0 ? m->Z1[k][i] : SLOPE * m->Z1[k][i];
            float b = m->Z2[k][i] > 0 ? m->Z2[k][i] : SLOPE * m->Z2[k][i];
            H[i] = a + b;
        }
        if (training && m->mess_p > 0) {
            for (size_t i = 0; i < n; i++) {
                m->mask[k][i] = mrec_rng_uniform(&m->drop_rng) < m->mess_p ? 0.0f : 1.0f / (1.0f - m->mess_p);
                H[i] *= m->mask[k][i];
            }
        } else {
            for (size_t i = 0; i < n; i++) m->mask[k][i] = 1.0f;
        }
    }
    /* final = [E0 | normalize(E1) | ...] */
    for (int r = 0; r < N; r++) {
        float *f = m->final + (size_t)r * m->width;
        memcpy(f, m->E[0] + (size_t)r * d, (size_t)d * sizeof(float));
        for (int k = 1; k <= m->layers; k++) {
            const float *x = m->E[k] + (size_t)r * d;
            double ss = 0;
            for (int c = 0; c < d; c++) ss += (double)x[c] * x[c];
            float norm = (float)sqrt(ss);
            if (norm < 1e-12f) norm = 1e-12f;
            for (int c = 0; c < d; c++) f[k * d + c] = x[c] / norm;
        }
    }
}

static int ensure_batch(ngcf *m, int n) {
    if (n <= m->cap) return 1;
    free(m->pos), free(m->neg), free(m->dx);
    m->pos = malloc((size_t)n * 4), m->neg = malloc((size_t)n * 4), m->dx = malloc((size_t)n * 4);
    m->cap = m->pos && m->neg && m->dx ? n : 0;
    return m->cap > 0;
}

static double ngcf_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    ngcf *m = self;
    int d = m->dim, W = m->width, U = m->n_users, N = m->n_nodes;
    size_t nd = (size_t)N * d;
    if (!ensure_batch(m, n)) return NAN;
    forward(m, 1);
    /* loss on final rows: -mean log sigmoid(x) + decay * sum of squares / 2 / n */
    double loss = 0, reg = 0;
    memset(m->dfinal_rows, 0, (size_t)N * W * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * W, *fi = m->final + (size_t)(U + i[b]) * W;
        const float *fj = m->final + (size_t)(U + j[b]) * W;
        double sp = 0, sn = 0;
        for (int c = 0; c < W; c++) {
            sp += (double)fu[c] * fi[c], sn += (double)fu[c] * fj[c];
            reg += (double)fu[c] * fu[c] + (double)fi[c] * fi[c] + (double)fj[c] * fj[c];
        }
        double x = sp - sn, sig = 1.0 / (1.0 + exp(-x));
        loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); /* -log sigmoid(x), stably */
        float g = (float)(-(1.0 - sig) / n), r = m->decay / n;
        float *gu = m->dfinal_rows + (size_t)u[b] * W, *gi = m->dfinal_rows + (size_t)(U + i[b]) * W;
        float *gj = m->dfinal_rows + (size_t)(U + j[b]) * W;
        for (int c = 0; c < W; c++) {
            gu[c] += g * (fi[c] - fj[c]) + r * fu[c];
            gi[c] += g * fu[c] + r * fi[c];
            gj[c] += -g * fu[c] + r * fj[c];
        }
    }
    loss = loss / n + m->decay * reg / 2 / n;

    /* backward through the layers; dE holds d loss / d E_k (the unnormalized output) */
    memset(m->dE, 0, nd * sizeof(float));
    for (int k = m->layers; k >= 1; k--) {
        /* add the normalized copy's gradient: dx = (dy - y (y . dy)) / |x| */
        for (int r = 0; r < N; r++) {
            const float *x = m->E[k] + (size_t)r * d, *y = m->final + (size_t)r * W + (size_t)k * d;
            const float *dy = m->dfinal_rows + (size_t)r * W + (size_t)k * d;
            float *dx = m->dE + (size_t)r * d;
            double ss = 0, ydy = 0;
            for (int c = 0; c < d; c++) ss += (double)x[c] * x[c], ydy += (double)y[c] * dy[c];
            double norm = sqrt(ss);
            if (norm > 1e-12)
                for (int c = 0; c < d; c++) dx[c] += (float)((dy[c] - y[c] * ydy) / norm);
            else
                for (int c = 0; c < d; c++) dx[c] += (float)(dy[c] / 1e-12);
        }
        int l = k - 1; /* the layer that made E_k */
        for (size_t t = 0; t < nd; t++) {
            float dh = m->dE[t] * m->mask[l][t];
            m->dZ1[t] = m->Z1[l][t] > 0 ? dh : SLOPE * dh;
            m->dZ2[t] = m->Z2[l][t] > 0 ? dh : SLOPE * dh;
        }
        /* weights: dW1 = S^T dZ1, dW2 = (E*S)^T dZ2, biases: column sums */
        mrec_gemm_cpu(m->gw1[l], m->S[l], m->dZ1, NULL, 1, 0, 1, 0, d, d, N, d, d, d, m->pool);
        mrec_mul_cpu(m->tmp, m->E[l], m->S[l], (int64_t)nd, m->pool);
        mrec_gemm_cpu(m->gw2[l], m->tmp, m->dZ2, NULL, 1, 0, 1, 0, d, d, N, d, d, d, m->pool);
        for (int c = 0; c < d; c++) m->gb1[l][c] = m->gb2[l][c] = 0;
        for (int r = 0; r < N; r++)
            for (int c = 0; c < d; c++) m->gb1[l][c] += m->dZ1[(size_t)r * d + c], m->gb2[l][c] += m->dZ2[(size_t)r * d + c];
        /* dS = dZ1 W1^T + (dZ2 W2^T) * E;  dE_prev = (dZ2 W2^T) * S + Â^T dS */
        mrec_gemm_cpu(m->dS, m->dZ1, m->w1[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d, m->pool);
        mrec_gemm_cpu(m->tmp, m->dZ2, m->w2[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d, m->pool);
        for (size_t t = 0; t < nd; t++) {
            m->dS[t] += m->tmp[t] * m->E[l][t];
            m->tmp[t] *= m->S[l][t];
        }
        mrec_spmm_t_cpu(m->dE, m->adj->row_ptr, m->adj->col, m->adj_val, m->dS, N, N, d, m->pool);
        mrec_add_cpu(m->dE, m->dE, m->tmp, (int64_t)nd, m->pool);
    }
    /* E0: its own slice of final, plus what flowed back */
    for (int r = 0; r < N; r++)
        for (int c = 0; c < d; c++)
            m->g_ego[(size_t)r * d + c] = m->dE[(size_t)r * d + c] + m->dfinal_rows[(size_t)r * W + c];
    return loss;
}

static mrec_status ngcf_prepare(void *self) {
    forward(self, 0);
    return MREC_OK;
}

static mrec_status ngcf_score(void *self, int u0, int n, float *scores) {
    ngcf *m = self;
    mrec_gemm_cpu(scores, m->final + (size_t)u0 * m->width, m->final + (size_t)m->n_users * m->width, NULL, 1, 0, 0, 1,
                  n, m->n_items, m->width, m->width, m->width, m->n_items, m->pool);
    return MREC_OK;
}

static void ngcf_destroy(void *self) {
    ngcf *m = self;
    free(m->ego), free(m->g_ego), free(m->adj_val), free(m->final);
    for (int k = 0; k < MAX_LAYERS; k++) {
        free(m->w1[k]), free(m->b1[k]), free(m->w2[k]), free(m->b2[k]);
        free(m->gw1[k]), free(m->gb1[k]), free(m->gw2[k]), free(m->gb2[k]);
        free(m->S[k]), free(m->Z1[k]), free(m->Z2[k]), free(m->mask[k]);
    }
    for (int k = 0; k <= MAX_LAYERS; k++) free(m->E[k]);
    free(m->dE), free(m->dZ1), free(m->dZ2), free(m->dS), free(m->tmp), free(m->dfinal_rows);
    free(m->pos), free(m->neg), free(m->dx);
    free(m);
}

static void xavier_uniform(float *w, size_t rows, size_t cols, mrec_rng *rng) {
    /* torch: fan_in = cols, fan_out = rows for a 2-D tensor */
    double bound = sqrt(6.0 / (double)(rows + cols));
    for (size_t i = 0; i < rows * cols; i++) w[i] = (float)(bound * (2.0 * mrec_rng_uniform(rng) - 1.0));
}

mrec_status mrec_ngcf_create(mrec_model *out, const mrec_graph *adj, int n_users, int n_items, int dim, int layers,
                             float decay, float node_dropout, float mess_dropout, mrec_rng *rng, mrec_pool *pool) {
    memset(out, 0, sizeof *out);
    if (adj->n_nodes != n_users + n_items || layers < 1 || layers > MAX_LAYERS || !(node_dropout >= 0 && node_dropout < 1) ||
        !(mess_dropout >= 0 && mess_dropout < 1))
        return mrec_fail(MREC_ERR_ARG, "ngcf: %d layers (1..%d), dropouts %g, %g (in [0, 1)), graph of %d nodes", layers,
                         MAX_LAYERS, node_dropout, mess_dropout, adj->n_nodes);
    ngcf *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "ngcf");
    int N = n_users + n_items;
    size_t nd = (size_t)N * dim;
    m->adj = adj, m->n_users = n_users, m->n_items = n_items, m->n_nodes = N, m->dim = dim, m->layers = layers;
    m->width = dim * (layers + 1), m->decay = decay, m->node_p = node_dropout, m->mess_p = mess_dropout, m->pool = pool;
    m->drop_rng.state = mrec_rng_next(rng);
    int ok = (m->ego = malloc(nd * 4)) && (m->g_ego = calloc(nd, 4)) && (m->adj_val = malloc(sizeof(float) * (size_t)(adj->row_ptr[N] + 1))) &&
             (m->final = malloc(sizeof(float) * (size_t)N * m->width)) && (m->dfinal_rows = malloc(sizeof(float) * (size_t)N * m->width));
    for (int k = 0; ok && k <= layers; k++) ok = (m->E[k] = malloc(nd * 4)) != NULL;
    for (int k = 0; ok && k < layers; k++)
        ok = (m->S[k] = malloc(nd * 4)) && (m->Z1[k] = malloc(nd * 4)) && (m->Z2[k] = malloc(nd * 4)) && (m->mask[k] = malloc(nd * 4)) &&
             (m->w1[k] = malloc((size_t)dim * dim * 4)) && (m->w2[k] = malloc((size_t)dim * dim * 4)) &&
             (m->b1[k] = malloc((size_t)dim * 4)) && (m->b2[k] = malloc((size_t)dim * 4)) &&
             (m->gw1[k] = calloc((size_t)dim * dim, 4)) && (m->gw2[k] = calloc((size_t)dim * dim, 4)) &&
             (m->gb1[k] = calloc((size_t)dim, 4)) && (m->gb2[k] = calloc((size_t)dim, 4));
    ok = ok && (m->dE = malloc(nd * 4)) && (m->dZ1 = malloc(nd * 4)) && (m->dZ2 = malloc(nd * 4)) && (m->dS = malloc(nd * 4)) &&
         (m->tmp = malloc(nd * 4));
    if (!ok) {
        ngcf_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "ngcf: %d nodes x %d, %d layers", N, dim, layers);
    }
    xavier_uniform(m->ego, (size_t)n_users, (size_t)dim, rng);
    xavier_uniform(m->ego + (size_t)n_users * dim, (size_t)n_items, (size_t)dim, rng);
    out->n_params = 1;
    out->param[0] = m->ego, out->grad[0] = m->g_ego, out->size[0] = (int64_t)nd;
    for (int k = 0; k < layers; k++) {
        /* the authors initialize weights and biases (as (1, d) matrices) xavier-uniform */
        xavier_uniform(m->w1[k], (size_t)dim, (size_t)dim, rng), xavier_uniform(m->b1[k], 1, (size_t)dim, rng);
        xavier_uniform(m->w2[k], (size_t)dim, (size_t)dim, rng), xavier_uniform(m->b2[k], 1, (size_t)dim, rng);
        float *p[4] = {m->w1[k], m->b1[k], m->w2[k], m->b2[k]}, *g[4] = {m->gw1[k], m->gb1[k], m->gw2[k], m->gb2[k]};
        for (int t = 0; t < 4; t++) {
            out->param[out->n_params] = p[t], out->grad[out->n_params] = g[t];
            out->size[out->n_params] = t % 2 ? dim : (int64_t)dim * dim;
            out->n_params++;
        }
    }
    forward(m, 0);
    out->name = "NGCF", out->self = m, out->loss_grad = ngcf_loss_grad, out->prepare = ngcf_prepare;
    out->score = ngcf_score, out->destroy = ngcf_destroy;
    return MREC_OK;
}
