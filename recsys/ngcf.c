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
 * transpose product is mrec_spmm's transposed one. Everything a layer needs for its
 * backward is kept from the forward (S, Z1, Z2, E_next, the mask).
 *
 * Two paths compute this: the host loops below (a CPU context), and the op
 * path (a GPU context always, a CPU one after mrec_ngcf_use_ops) where every
 * array lives on the context's device and each step is an op entry: the
 * dropout masks come from the same hash (mrec_hash_dropout), the loss's
 * scores and norms from the BPR step shared with BPRMF and LightGCN
 * (bpr_ops.c), and Â^T products from a transposed copy of Â whose entries
 * draw their dropout under their number in Â.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SLOPE 0.2f
#define MAX_LAYERS 8

/* Dropout draws from a counter-based generator: element e of stream s in
 * step t gets hash(seed, t, s, e), so rows can be processed in parallel and
 * the masks still do not depend on the thread count. */
static float drop_uniform(uint64_t key, uint64_t e) {
    return (float)((mrec_mix64(key ^ (e * 0x9E3779B97F4A7C15ull)) >> 40) * (1.0 / 16777216.0));
}

#define ROW_TASKS 16 /* fixed, so per-task partial sums are summed the same way on any pool */

typedef struct {
    const mrec_graph *adj;
    int n_users, n_items, n_nodes, dim, layers, width; /* width = d (L + 1) */
    float decay, node_p, mess_p;
    uint64_t drop_seed, step;
    mrec_context *ctx;
    mrec_status status;                                   /* of the last loss_grad */
    double host_loss;                                     /* the last batch's loss on the host path */
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
    /* the op path */
    int use_ops, on_device;       /* on_device: every array above is carved from mem */
    mrec_arena mem;               /* on the context's device: the arrays below (and, on_device, those above) */
    mrec_csr adj_ops, adj_t;      /* this step's Â there, and its transpose (the GPU's Â^T products) */
    int64_t *rp, *t_rp;           /* (N + 1) */
    int32_t *col, *t_col, *t_edge; /* (nnz); t_edge: each transposed entry's number in Â (its dropout draw) */
    float *g_val, *t_gval, *t_val; /* (nnz) Â's entries as built, the transpose's, this step's transposed ones */
    float *ones;                  /* (N) the bias gradients are ones^T dZ */
    float *tmp2, *nrm;            /* (N, d) */
    mrec_bpr_ops bpr;
    mrec_step_keys keys;          /* the op path's step: node dropout's key, then each layer's message dropout's */
} ngcf;

/* ---- row-parallel pieces ---- */

typedef enum { PH_NODE_DROP, PH_ACTIVATE, PH_FINAL, PH_NORM_BACK, PH_DZ, PH_DS, PH_EGO } phase;

typedef struct {
    ngcf *m;
    phase ph;
    int k, training;
    uint64_t key;
    float *partial1, *partial2; /* (ROW_TASKS, d) column sums, PH_DZ */
} row_job;

static void row_task(void *arg, int task, int thread) {
    (void)thread;
    row_job *j = arg;
    ngcf *m = j->m;
    int d = m->dim, W = m->width, N = m->n_nodes, k = j->k;
    int per = (N + ROW_TASKS - 1) / ROW_TASKS, lo = task * per, hi = lo + per < N ? lo + per : N;
    if (j->ph == PH_DZ) /* its partial sums must exist even when the task has no rows */
        for (int c = 0; c < d; c++) j->partial1[(size_t)task * d + c] = j->partial2[(size_t)task * d + c] = 0;
    if (lo >= hi) return;
    switch (j->ph) {
    case PH_NODE_DROP: { /* Â entries of rows [lo, hi) */
        const mrec_graph *g = m->adj;
        for (int64_t e = g->row_ptr[lo]; e < g->row_ptr[hi]; e++)
            m->adj_val[e] = j->training && m->node_p > 0
                                ? (drop_uniform(j->key, (uint64_t)e) < m->node_p ? 0.0f : g->val[e] / (1.0f - m->node_p))
                                : g->val[e];
        break;
    }
    case PH_ACTIVATE: /* E_{k+1} = (lrelu(Z1) + lrelu(Z2)) * mask */
        for (size_t i = (size_t)lo * d; i < (size_t)hi * d; i++) {
            float a = m->Z1[k][i] > 0 ? m->Z1[k][i] : SLOPE * m->Z1[k][i];
            float b = m->Z2[k][i] > 0 ? m->Z2[k][i] : SLOPE * m->Z2[k][i];
            float mk = 1.0f;
            if (j->training && m->mess_p > 0) mk = drop_uniform(j->key, (uint64_t)i) < m->mess_p ? 0.0f : 1.0f / (1.0f - m->mess_p);
            m->mask[k][i] = mk;
            m->E[k + 1][i] = (a + b) * mk;
        }
        break;
    case PH_FINAL: /* final = [E0 | normalize(E1) | ...] */
        for (int r = lo; r < hi; r++) {
            float *f = m->final + (size_t)r * W;
            memcpy(f, m->E[0] + (size_t)r * d, (size_t)d * sizeof(float));
            for (int l = 1; l <= m->layers; l++) {
                const float *x = m->E[l] + (size_t)r * d;
                double ss = 0;
                for (int c = 0; c < d; c++) ss += (double)x[c] * x[c];
                float norm = (float)sqrt(ss);
                if (norm < 1e-12f) norm = 1e-12f;
                for (int c = 0; c < d; c++) f[l * d + c] = x[c] / norm;
            }
        }
        break;
    case PH_NORM_BACK: /* dE += (dy - y (y . dy)) / |x| for layer k's normalized copy */
        for (int r = lo; r < hi; r++) {
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
        break;
    case PH_DZ: { /* dZ1, dZ2 through the mask and LeakyReLU; per-task column sums for the biases */
        float *p1 = j->partial1 + (size_t)task * d, *p2 = j->partial2 + (size_t)task * d;
        for (int c = 0; c < d; c++) p1[c] = p2[c] = 0;
        for (int r = lo; r < hi; r++)
            for (int c = 0; c < d; c++) {
                size_t t = (size_t)r * d + c;
                float dh = m->dE[t] * m->mask[k][t];
                m->dZ1[t] = m->Z1[k][t] > 0 ? dh : SLOPE * dh;
                m->dZ2[t] = m->Z2[k][t] > 0 ? dh : SLOPE * dh;
                p1[c] += m->dZ1[t], p2[c] += m->dZ2[t];
            }
        break;
    }
    case PH_DS: /* dS += (dZ2 W2^T) * E;  tmp = (dZ2 W2^T) * S */
        for (size_t t = (size_t)lo * d; t < (size_t)hi * d; t++) {
            m->dS[t] += m->tmp[t] * m->E[k][t];
            m->tmp[t] *= m->S[k][t];
        }
        break;
    case PH_EGO: /* E0's gradient: what flowed back plus its own slice of final */
        for (int r = lo; r < hi; r++)
            for (int c = 0; c < d; c++) m->g_ego[(size_t)r * d + c] = m->dE[(size_t)r * d + c] + m->dfinal_rows[(size_t)r * W + c];
        break;
    }
}

/* The dropout draws of phase ph, layer k, this step. */
static uint64_t drop_key(const ngcf *m, phase ph, int k) {
    return m->drop_seed ^ (m->step * 0xD1B54A32D192ED03ull) ^ ((uint64_t)(k + 1) << 56) ^ ph;
}

static void rows(ngcf *m, phase ph, int k, int training, float *p1, float *p2) {
    row_job j = {m, ph, k, training, drop_key(m, ph, k), p1, p2};
    mrec_pool_run(m->ctx->pool, row_task, &j, ROW_TASKS);
}

/* This step's Â: the graph's pattern with the entries node dropout left. */
static mrec_csr step_adj(const ngcf *m) {
    mrec_csr a = mrec_graph_csr(m->adj);
    a.val = m->adj_val;
    return a;
}

static mrec_status forward_ops(ngcf *m, const uint64_t *keys);

/* One forward pass; with dropout when training. */
static mrec_status forward(ngcf *m, int training) {
    if (m->use_ops) return forward_ops(m, NULL); /* the op path trains through stage and launch */
    size_t n = (size_t)m->n_nodes * m->dim;
    int d = m->dim, N = m->n_nodes;
    mrec_context *ctx = m->ctx;
    if (training) m->step++;
    rows(m, PH_NODE_DROP, 0, training, NULL, NULL);
    mrec_csr adj = step_adj(m);
    memcpy(m->E[0], m->ego, n * sizeof(float));
    mrec_status st = MREC_OK;
    for (int k = 0; k < m->layers && !st; k++) {
        float *E = m->E[k], *S = m->S[k];
        st = mrec_spmm(ctx, S, &adj, E, d, 0);
        if (!st) st = mrec_gemm(ctx, m->Z1[k], S, m->w1[k], m->b1[k], 1, 0, 0, 0, N, d, d, d, d, d);
        if (!st) st = mrec_mul(ctx, m->tmp, E, S, (int64_t)n);
        if (!st) st = mrec_gemm(ctx, m->Z2[k], m->tmp, m->w2[k], m->b2[k], 1, 0, 0, 0, N, d, d, d, d, d);
        if (!st) rows(m, PH_ACTIVATE, k, training, NULL, NULL);
    }
    if (!st) rows(m, PH_FINAL, 0, training, NULL, NULL);
    return st;
}

static int ensure_batch(ngcf *m, int n) {
    if (n <= m->cap) return 1;
    free(m->pos), free(m->neg), free(m->dx);
    m->pos = malloc((size_t)n * 4), m->neg = malloc((size_t)n * 4), m->dx = malloc((size_t)n * 4);
    m->cap = m->pos && m->neg && m->dx ? n : 0;
    return m->cap > 0;
}

static mrec_status batch_loss_grad(ngcf *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, W = m->width, U = m->n_users, N = m->n_nodes;
    size_t nd = (size_t)N * d;
    mrec_context *ctx = m->ctx;
    if (!ensure_batch(m, n)) return mrec_fail(MREC_ERR_NOMEM, "ngcf: a batch of %d", n);
    mrec_status st = forward(m, 1);
    if (st) return st;
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
    float p1[ROW_TASKS * 1024], p2[ROW_TASKS * 1024]; /* d <= 1024, checked at creation */
    mrec_csr adj = step_adj(m);
    for (int k = m->layers; k >= 1; k--) {
        rows(m, PH_NORM_BACK, k, 1, NULL, NULL);
        int l = k - 1; /* the layer that made E_k */
        rows(m, PH_DZ, l, 1, p1, p2);
        /* weights: dW1 = S^T dZ1, dW2 = (E*S)^T dZ2, biases: column sums */
        if ((st = mrec_gemm(ctx, m->gw1[l], m->S[l], m->dZ1, NULL, 1, 0, 1, 0, d, d, N, d, d, d))) return st;
        if ((st = mrec_mul(ctx, m->tmp, m->E[l], m->S[l], (int64_t)nd))) return st;
        if ((st = mrec_gemm(ctx, m->gw2[l], m->tmp, m->dZ2, NULL, 1, 0, 1, 0, d, d, N, d, d, d))) return st;
        for (int c = 0; c < d; c++) {
            m->gb1[l][c] = m->gb2[l][c] = 0;
            for (int t = 0; t < ROW_TASKS; t++) m->gb1[l][c] += p1[t * d + c], m->gb2[l][c] += p2[t * d + c];
        }
        /* dS = dZ1 W1^T + (dZ2 W2^T) * E;  dE_prev = (dZ2 W2^T) * S + Â^T dS */
        if ((st = mrec_gemm(ctx, m->dS, m->dZ1, m->w1[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d))) return st;
        if ((st = mrec_gemm(ctx, m->tmp, m->dZ2, m->w2[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d))) return st;
        rows(m, PH_DS, l, 1, NULL, NULL);
        if ((st = mrec_spmm(ctx, m->dE, &adj, m->dS, d, 1))) return st;
        if ((st = mrec_add(ctx, m->dE, m->dE, m->tmp, (int64_t)nd))) return st;
    }
    rows(m, PH_EGO, 0, 1, NULL, NULL);
    *loss_out = loss;
    return MREC_OK;
}

/* ---- the op path ---- */

/* The forward of `forward` through the op entries, on the context's device: training with the step's keys in the
 * context's memory (keys: node dropout's, then each layer's message dropout's; the stage drew them), or without
 * dropout (keys NULL). */
static mrec_status forward_ops(ngcf *m, const uint64_t *keys) {
    int d = m->dim, N = m->n_nodes, W = m->width;
    int64_t nd = (int64_t)N * d, nnz = m->adj->row_ptr[N];
    mrec_context *ctx = m->ctx;
    mrec_status st;
    if (keys) {
        st = mrec_hash_dropout_at(ctx, m->adj_val, m->g_val, NULL, nnz, m->node_p, keys);
        if (!st) st = mrec_hash_dropout_at(ctx, m->t_val, m->t_gval, m->t_edge, nnz, m->node_p, keys);
    } else {
        st = mrec_hash_dropout(ctx, m->adj_val, m->g_val, NULL, nnz, 0.0f, 0);
        if (!st) st = mrec_hash_dropout(ctx, m->t_val, m->t_gval, m->t_edge, nnz, 0.0f, 0);
    }
    if (!st) st = mrec_copy_rows(ctx, m->E[0], d, m->ego, d, N, d);
    for (int k = 0; k < m->layers && !st; k++) {
        float *E = m->E[k], *S = m->S[k];
        st = mrec_spmm(ctx, S, &m->adj_ops, E, d, 0);
        if (!st) st = mrec_gemm(ctx, m->Z1[k], S, m->w1[k], m->b1[k], 1, 0, 0, 0, N, d, d, d, d, d);
        if (!st) st = mrec_mul(ctx, m->tmp, E, S, nd);
        if (!st) st = mrec_gemm(ctx, m->Z2[k], m->tmp, m->w2[k], m->b2[k], 1, 0, 0, 0, N, d, d, d, d, d);
        /* E_{k+1} = (lrelu(Z1) + lrelu(Z2)) * mask, the mask drawn on the way: one pass */
        if (!st && keys) st = mrec_ngcf_combine_at(ctx, m->E[k + 1], m->mask[k], m->Z1[k], m->Z2[k], SLOPE, m->mess_p, keys + 1 + k, nd);
        else if (!st) st = mrec_ngcf_combine(ctx, m->E[k + 1], m->mask[k], m->Z1[k], m->Z2[k], SLOPE, 0.0f, 0, nd);
    }
    /* final = [E0 | normalize(E1) | ...] */
    if (!st) st = mrec_copy_rows(ctx, m->final, W, m->E[0], d, N, d);
    for (int l = 1; l <= m->layers && !st; l++) {
        st = mrec_l2_normalize_rows(ctx, m->nrm, m->E[l], 1e-12f, N, d);
        if (!st) st = mrec_copy_rows(ctx, m->final + (size_t)l * d, W, m->nrm, d, N, d);
    }
    return st;
}

/* batch_loss_grad through the op entries: the batch's loss stays on the device (its gradient's dx -sigmoid(-x) / n
 * written as the softplus form writes it, its squared norms summed over the 3n rows in order: the host loops' values
 * to rounding), the gradient rows are scattered in a fixed order (bpr_ops.c), and the layers run backward as the host
 * loops do. In the trainer's two halves (mrec_model.stage, .launch): the step counted, its dropout keys drawn and the
 * batch's ids checked, all sent up; then the launches. */
static mrec_status ngcf_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    ngcf *m = self;
    uint64_t keys[1 + MAX_LAYERS];
    m->step++;
    keys[0] = drop_key(m, PH_NODE_DROP, 0);
    for (int k = 0; k < m->layers; k++) keys[1 + k] = drop_key(m, PH_ACTIVATE, k);
    mrec_status st = mrec_step_keys_send(&m->keys, m->ctx, keys, 1 + m->layers);
    return st ? st : mrec_bpr_ops_stage(&m->bpr, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->width);
}

static mrec_status ops_launch(ngcf *m) {
    int d = m->dim, W = m->width, N = m->n_nodes;
    int64_t nd = (int64_t)N * d;
    mrec_context *ctx = m->ctx;
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS, .weight = 1, .reg_form = MREC_BPR_REG_SQUARED_ALL, .reg = m->decay,
                          .reg_div = m->bpr.n};
    mrec_status st = forward_ops(m, m->keys.at);
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->final, m->final);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->dfinal_rows, m->final, 1, MREC_BPR_PARTS_ALL);
    if (st) return st;

    /* backward through the layers; dE holds d loss / d E_k (the unnormalized output) */
    for (int k = m->layers; k >= 1 && !st; k--) {
        /* dE (+)= the normalization's backward of final's slice k (nrm: its gradient, tmp2: its values) */
        st = mrec_copy_rows(ctx, m->nrm, d, m->dfinal_rows + (size_t)k * d, W, N, d);
        if (!st) st = mrec_copy_rows(ctx, m->tmp2, d, m->final + (size_t)k * d, W, N, d);
        if (!st) st = mrec_l2_normalize_rows_back(ctx, m->dE, m->nrm, m->tmp2, m->E[k], 1e-12f, k == m->layers ? 0.0f : 1.0f, N, d);
        int l = k - 1; /* the layer that made E_k */
        /* dZ1, dZ2 through the mask and LeakyReLU: one pass */
        if (!st) st = mrec_ngcf_combine_back(ctx, m->dZ1, m->dZ2, m->dE, m->mask[l], m->Z1[l], m->Z2[l], SLOPE, nd);
        /* weights: dW1 = S^T dZ1, dW2 = (E*S)^T dZ2, biases: ones^T dZ */
        if (!st) st = mrec_gemm(ctx, m->gw1[l], m->S[l], m->dZ1, NULL, 1, 0, 1, 0, d, d, N, d, d, d);
        if (!st) st = mrec_mul(ctx, m->tmp, m->E[l], m->S[l], nd);
        if (!st) st = mrec_gemm(ctx, m->gw2[l], m->tmp, m->dZ2, NULL, 1, 0, 1, 0, d, d, N, d, d, d);
        if (!st) st = mrec_gemm(ctx, m->gb1[l], m->ones, m->dZ1, NULL, 1, 0, 0, 0, 1, d, N, N, d, d);
        if (!st) st = mrec_gemm(ctx, m->gb2[l], m->ones, m->dZ2, NULL, 1, 0, 0, 0, 1, d, N, N, d, d);
        /* dS = dZ1 W1^T + (dZ2 W2^T) * E;  dE_prev = (dZ2 W2^T) * S + Â^T dS */
        if (!st) st = mrec_gemm(ctx, m->dS, m->dZ1, m->w1[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d);
        if (!st) st = mrec_gemm(ctx, m->tmp, m->dZ2, m->w2[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d);
        if (!st) st = mrec_mul(ctx, m->tmp2, m->tmp, m->E[l], nd);
        if (!st) st = mrec_add(ctx, m->dS, m->dS, m->tmp2, nd);
        if (!st) st = mrec_mul(ctx, m->tmp, m->tmp, m->S[l], nd);
        if (!st) st = mrec_spmm(ctx, m->dE, &m->adj_ops, m->dS, d, 1);
        if (!st) st = mrec_add(ctx, m->dE, m->dE, m->tmp, nd);
    }
    /* E0's gradient: what flowed back plus its own slice of final */
    if (!st) st = mrec_copy_rows(ctx, m->g_ego, d, m->dfinal_rows, W, N, d);
    if (!st) st = mrec_add(ctx, m->g_ego, m->dE, m->g_ego, nd);
    return st;
}

static mrec_status ngcf_launch(void *self, const double **loss) {
    ngcf *m = self;
    mrec_status st = ops_launch(m);
    *loss = st ? NULL : m->bpr.loss;
    return st;
}

static mrec_status ops_loss_grad(ngcf *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mrec_status st = ngcf_stage(m, u, i, j, n);
    return st ? st : ops_launch(m);
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static const double *ngcf_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    ngcf *m = self;
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_loss_grad(m, u, i, j, n) : batch_loss_grad(m, &m->host_loss, u, i, j, n);
    return m->status ? NULL : m->use_ops ? m->bpr.loss : &m->host_loss;
}

static double ngcf_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    ngcf *m = self;
    return mrec_step_loss(m->ctx, &m->status, ngcf_step(self, u, i, j, n));
}

static mrec_status ngcf_prepare(void *self) { return forward(self, 0); }

static mrec_status ngcf_score(void *self, int u0, int n, float *scores) {
    ngcf *m = self;
    return mrec_gemm(m->ctx, scores, m->final + (size_t)u0 * m->width, m->final + (size_t)m->n_users * m->width, NULL, 1,
                     0, 0, 1, n, m->n_items, m->width, m->width, m->width, m->n_items);
}

static mrec_status ngcf_embeddings(void *self, float *users, float *items) {
    ngcf *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->width);
}

static void ngcf_destroy(void *self) {
    ngcf *m = self;
    mrec_bpr_ops_free(&m->bpr);
    mrec_step_keys_free(&m->keys);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    if (m->on_device) { /* every array was carved from mem */
        free(m->pos), free(m->neg), free(m->dx);
        free(m);
        return;
    }
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

/* The op path's arrays from a (a measuring arena counts them): with `all`, every array of the model too (a GPU
 * context); else only what the op path adds to the host path's arrays (a CPU context after mrec_ngcf_use_ops). */
static void carve(ngcf *m, mrec_arena *a, int all) {
    int N = m->n_nodes, d = m->dim, L = m->layers;
    size_t nd = sizeof(float) * (size_t)N * d, nnz = (size_t)m->adj->row_ptr[N], dd = sizeof(float) * (size_t)d * d;
    if (all) {
        m->ego = mrec_arena_alloc(a, nd), m->g_ego = mrec_arena_alloc(a, nd);
        m->adj_val = mrec_arena_alloc(a, sizeof(float) * (nnz + 1));
        m->final = mrec_arena_alloc(a, sizeof(float) * (size_t)N * m->width);
        m->dfinal_rows = mrec_arena_alloc(a, sizeof(float) * (size_t)N * m->width);
        for (int k = 0; k <= L; k++) m->E[k] = mrec_arena_alloc(a, nd);
        for (int k = 0; k < L; k++) {
            m->S[k] = mrec_arena_alloc(a, nd), m->Z1[k] = mrec_arena_alloc(a, nd), m->Z2[k] = mrec_arena_alloc(a, nd);
            m->mask[k] = mrec_arena_alloc(a, nd);
            m->w1[k] = mrec_arena_alloc(a, dd), m->w2[k] = mrec_arena_alloc(a, dd);
            m->b1[k] = mrec_arena_alloc(a, sizeof(float) * d), m->b2[k] = mrec_arena_alloc(a, sizeof(float) * d);
            m->gw1[k] = mrec_arena_alloc(a, dd), m->gw2[k] = mrec_arena_alloc(a, dd);
            m->gb1[k] = mrec_arena_alloc(a, sizeof(float) * d), m->gb2[k] = mrec_arena_alloc(a, sizeof(float) * d);
        }
        m->dE = mrec_arena_alloc(a, nd), m->dZ1 = mrec_arena_alloc(a, nd), m->dZ2 = mrec_arena_alloc(a, nd);
        m->dS = mrec_arena_alloc(a, nd), m->tmp = mrec_arena_alloc(a, nd);
    }
    m->rp = mrec_arena_alloc(a, sizeof(int64_t) * ((size_t)N + 1)), m->t_rp = mrec_arena_alloc(a, sizeof(int64_t) * ((size_t)N + 1));
    m->col = mrec_arena_alloc(a, sizeof(int32_t) * (nnz + 1)), m->t_col = mrec_arena_alloc(a, sizeof(int32_t) * (nnz + 1));
    m->t_edge = mrec_arena_alloc(a, sizeof(int32_t) * (nnz + 1));
    m->g_val = mrec_arena_alloc(a, sizeof(float) * (nnz + 1)), m->t_gval = mrec_arena_alloc(a, sizeof(float) * (nnz + 1));
    m->t_val = mrec_arena_alloc(a, sizeof(float) * (nnz + 1));
    m->ones = mrec_arena_alloc(a, sizeof(float) * (size_t)N);
    m->tmp2 = mrec_arena_alloc(a, nd), m->nrm = mrec_arena_alloc(a, nd);
}

/* Reserves the op path's memory on the context's device and copies Â there with its transpose (built here:
 * entries by column, then row, each remembering its number in Â). */
static mrec_status ops_setup(ngcf *m, int all) {
    mrec_context *ctx = m->ctx;
    const mrec_graph *g = m->adj;
    int N = m->n_nodes;
    int64_t nnz = g->row_ptr[N];
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, all);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) return st;
    carve(m, &m->mem, all);
    if (all) m->on_device = 1;
    int64_t *t_rp = calloc((size_t)N + 1, sizeof *t_rp), *fill = malloc(sizeof *fill * ((size_t)N + 1));
    int32_t *t_col = malloc(sizeof *t_col * (size_t)(nnz + 1)), *t_edge = malloc(sizeof *t_edge * (size_t)(nnz + 1));
    float *t_val = malloc(sizeof *t_val * (size_t)(nnz + 1)), *ones = malloc(sizeof *ones * (size_t)N);
    if (!t_rp || !fill || !t_col || !t_edge || !t_val || !ones) st = mrec_fail(MREC_ERR_NOMEM, "ngcf: the transposed graph");
    if (!st) {
        for (int64_t e = 0; e < nnz; e++) t_rp[g->col[e] + 1]++;
        for (int c = 0; c < N; c++) t_rp[c + 1] += t_rp[c];
        memcpy(fill, t_rp, sizeof *fill * ((size_t)N + 1));
        for (int r = 0; r < N; r++)
            for (int64_t e = g->row_ptr[r]; e < g->row_ptr[r + 1]; e++) {
                int64_t at = fill[g->col[e]]++;
                t_col[at] = r, t_edge[at] = (int32_t)e, t_val[at] = g->val[e];
            }
        for (int r = 0; r < N; r++) ones[r] = 1.0f;
        st = mrec_copy_to_device(ctx, m->rp, g->row_ptr, sizeof(int64_t) * ((size_t)N + 1));
        if (!st) st = mrec_copy_to_device(ctx, m->col, g->col, sizeof(int32_t) * (size_t)nnz);
        if (!st) st = mrec_copy_to_device(ctx, m->g_val, g->val, sizeof(float) * (size_t)nnz);
        if (!st) st = mrec_copy_to_device(ctx, m->t_rp, t_rp, sizeof(int64_t) * ((size_t)N + 1));
        if (!st) st = mrec_copy_to_device(ctx, m->t_col, t_col, sizeof(int32_t) * (size_t)nnz);
        if (!st) st = mrec_copy_to_device(ctx, m->t_edge, t_edge, sizeof(int32_t) * (size_t)nnz);
        if (!st) st = mrec_copy_to_device(ctx, m->t_gval, t_val, sizeof(float) * (size_t)nnz);
        if (!st) st = mrec_copy_to_device(ctx, m->ones, ones, sizeof(float) * (size_t)N);
    }
    free(t_rp), free(fill), free(t_col), free(t_edge), free(t_val), free(ones);
    mrec_csr t = {.n_rows = N, .n_cols = N, .row_ptr = m->t_rp, .col = m->t_col, .val = m->t_val, .device = ctx->device};
    mrec_csr a = {.n_rows = N, .n_cols = N, .row_ptr = m->rp, .col = m->col, .val = m->adj_val, .device = ctx->device};
    m->adj_t = t, m->adj_ops = a;
    m->adj_ops.transposed = &m->adj_t;
    return st;
}

mrec_status mrec_ngcf_use_ops(mrec_model *model) {
    ngcf *m = model->self;
    if (m->use_ops) return MREC_OK;
    mrec_status st = ops_setup(m, 0);
    if (!st) m->use_ops = 1, st = forward(m, 0);
    if (!st) model->stage = ngcf_stage, model->launch = ngcf_launch;
    return st;
}

static void xavier_uniform(float *w, size_t rows, size_t cols, mrec_rng *rng) {
    /* torch: fan_in = cols, fan_out = rows for a 2-D tensor */
    double bound = sqrt(6.0 / (double)(rows + cols));
    for (size_t i = 0; i < rows * cols; i++) w[i] = (float)(bound * (2.0 * mrec_rng_uniform(rng) - 1.0));
}

/* The parameters in the trainer's order (E0, then W1, b1, W2, b2 per layer), the first forward, the model. */
static mrec_status finish(mrec_model *out, ngcf *m) {
    int d = m->dim;
    out->n_params = 1;
    out->param[0] = m->ego, out->grad[0] = m->g_ego, out->size[0] = (int64_t)m->n_nodes * d;
    for (int k = 0; k < m->layers; k++) {
        float *p[4] = {m->w1[k], m->b1[k], m->w2[k], m->b2[k]}, *g[4] = {m->gw1[k], m->gb1[k], m->gw2[k], m->gb2[k]};
        for (int t = 0; t < 4; t++) {
            out->param[out->n_params] = p[t], out->grad[out->n_params] = g[t];
            out->size[out->n_params] = t % 2 ? d : (int64_t)d * d;
            out->n_params++;
        }
    }
    mrec_status st = forward(m, 0);
    if (st) {
        ngcf_destroy(m);
        memset(out, 0, sizeof *out);
        return st;
    }
    out->name = "NGCF", out->self = m, out->status = &m->status, out->loss_grad = ngcf_loss_grad, out->step = ngcf_step, out->prepare = ngcf_prepare;
    out->state[0] = &m->step, out->n_state = 1; /* for a checkpoint */
    out->score = ngcf_score, out->destroy = ngcf_destroy;
    out->embed_dim = m->width, out->embeddings = ngcf_embeddings;
    if (m->use_ops) out->stage = ngcf_stage, out->launch = ngcf_launch;
    return MREC_OK;
}

/* On a GPU: the values are drawn on the host in the host path's order (a seed starts alike on every device), then
 * every array is carved from one allocation on the device and the op path takes every batch. */
static mrec_status create_on_device(mrec_model *out, ngcf *m, mrec_rng *rng) {
    int d = m->dim, L = m->layers, U = m->n_users, I = m->n_items;
    size_t nd = (size_t)m->n_nodes * d, dd = (size_t)d * d;
    float *host = malloc(sizeof(float) * (nd + (size_t)L * 2 * (dd + d)));
    if (!host) {
        int n_nodes = m->n_nodes;
        free(m);
        return mrec_fail(MREC_ERR_NOMEM, "ngcf: %d nodes x %d, %d layers", n_nodes, d, L);
    }
    float *ego = host, *w = host + nd; /* per layer: W1, b1, W2, b2 */
    xavier_uniform(ego, (size_t)U, (size_t)d, rng);
    xavier_uniform(ego + (size_t)U * d, (size_t)I, (size_t)d, rng);
    for (int k = 0; k < L; k++) {
        float *l = w + (size_t)k * 2 * (dd + d);
        xavier_uniform(l, (size_t)d, (size_t)d, rng), xavier_uniform(l + dd, 1, (size_t)d, rng);
        xavier_uniform(l + dd + d, (size_t)d, (size_t)d, rng), xavier_uniform(l + 2 * dd + d, 1, (size_t)d, rng);
    }
    mrec_status st = ops_setup(m, 1);
    if (!st) st = mrec_copy_to_device(m->ctx, m->ego, ego, sizeof(float) * nd);
    for (int k = 0; k < L && !st; k++) {
        const float *l = w + (size_t)k * 2 * (dd + d);
        st = mrec_copy_to_device(m->ctx, m->w1[k], l, sizeof(float) * dd);
        if (!st) st = mrec_copy_to_device(m->ctx, m->b1[k], l + dd, sizeof(float) * d);
        if (!st) st = mrec_copy_to_device(m->ctx, m->w2[k], l + dd + d, sizeof(float) * dd);
        if (!st) st = mrec_copy_to_device(m->ctx, m->b2[k], l + 2 * dd + d, sizeof(float) * d);
    }
    free(host);
    m->use_ops = 1;
    if (st) {
        ngcf_destroy(m);
        memset(out, 0, sizeof *out);
        return st;
    }
    return finish(out, m);
}

mrec_status mrec_ngcf_create(mrec_model *out, const mrec_graph *adj, int n_users, int n_items, int dim, int layers,
                             float decay, float node_dropout, float mess_dropout, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    if (adj->n_nodes != n_users + n_items || layers < 1 || layers > MAX_LAYERS || dim < 1 || dim > 1024 ||
        !(node_dropout >= 0 && node_dropout < 1) ||
        !(mess_dropout >= 0 && mess_dropout < 1))
        return mrec_fail(MREC_ERR_ARG, "ngcf: %d layers (1..%d), dropouts %g, %g (in [0, 1)), graph of %d nodes", layers,
                         MAX_LAYERS, node_dropout, mess_dropout, adj->n_nodes);
    ngcf *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "ngcf");
    int N = n_users + n_items;
    size_t nd = (size_t)N * dim;
    m->adj = adj, m->n_users = n_users, m->n_items = n_items, m->n_nodes = N, m->dim = dim, m->layers = layers;
    m->width = dim * (layers + 1), m->decay = decay, m->node_p = node_dropout, m->mess_p = mess_dropout, m->ctx = ctx;
    m->drop_seed = mrec_rng_next(rng);
    if (ctx->device != MREC_DEVICE_CPU) return create_on_device(out, m, rng);
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
    for (int k = 0; k < layers; k++) {
        /* the authors initialize weights and biases (as (1, d) matrices) xavier-uniform */
        xavier_uniform(m->w1[k], (size_t)dim, (size_t)dim, rng), xavier_uniform(m->b1[k], 1, (size_t)dim, rng);
        xavier_uniform(m->w2[k], (size_t)dim, (size_t)dim, rng), xavier_uniform(m->b2[k], 1, (size_t)dim, rng);
    }
    return finish(out, m);
}
