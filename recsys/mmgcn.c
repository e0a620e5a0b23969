/* mmgcn.c: MMGCN (Wei et al., MM 2019) as the Ducho-meets-Elliot benchmark's
 * Elliot fork defines it (external/models/mmgcn: MMGCN.py, MMGCNModel.py,
 * MMGCNLayer.py).
 *
 * One graph network per modality m over the user-item graph, nodes users then
 * items. With f_m the items' features (fixed), P_m a projection to d_m units
 * (nn.Linear) where factors_multimod gives d_m, none where it says None
 * (d_m = the feature size), and G_u^m the users' preference vectors:
 *   x_0     = normalize([G_u^m ; f_m P_m^T + p_m])           (N, d_m), unit rows
 *   h       = lrelu(Â (x_l C_l))                              C_l (k_l, k_l)
 *   x̂       = lrelu(x_l L_l^T + l_l) + [G_u ; G_i]            (has_id; without it no id term)
 *   x_{l+1} = lrelu([h, x̂] W_l^T + w_l)                       concatenation
 *           = lrelu(h W_l^T + w_l + x̂)                        otherwise
 * with k_0 = d_m and k_l = d after, lrelu's slope 0.01 (torch's default), and
 * Â the adjacency A (no self-loops, weights 1) pooled by "aggregation": mean
 * divides each row by its degree (D^-1 A, torch_sparse's reduce="mean"), add
 * sums. The representation is the mean over the modalities of x_L (the fork
 * averages where the paper sums; the order of the scores differs by a factor
 * only), score(u, i) = <F_u, F_i>, and
 *   loss = mean softplus(s(u, j) - s(u, i))
 *        + l_w ( (2 sum_b |G_u[u_b]|^2 + sum_b |G_i[i_b]|^2 + |G_i[j_b]|^2) / (2 n d)
 *               + |G_u^{m_0}|^2 / (U d_{m_0}) )
 * the fork's -mean log sigmoid written stably (the same where both are
 * finite), and its regularizer: the id rows of the batch (each user twice)
 * as one mean, plus the mean square of the first modality's preference
 * vectors only.
 *
 * Where it differs from the fork: the fork ranks with the embeddings of its
 * last training step's forward pass (before that step's update); mrec
 * propagates again with the current weights before scoring. The fork's
 * aggregation may also be max or min (torch_sparse's reductions); mrec has
 * mean and add (sum). G_u, G_i, G_u^m, C_l, L_l, W_l start xavier-uniform,
 * P_m and the biases as nn.Linear (uniform in +-1/sqrt(fan_in)).
 *
 * Backward, layer by layer from dx_L = dF / M: dY = dx_{l+1} lrelu'(.), then
 * through the combination, x̂'s linear layer and the propagation (Â^T); x_0's
 * unit rows back to G_u^m and the projection. The features are not trained.
 * Host memory only; products through the op entries.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MOD 4
#define MAX_LAYERS 8
#define SLOPE 0.01f

typedef struct {
    int f, dm;                      /* feature size, x_0's width (d_m) */
    int project;                    /* P_m present */
    const float *feat;              /* (I, f) not trained */
    float *gum, *gum_grad;          /* (U, dm) */
    float *pw, *pw_grad, *pb, *pb_grad; /* (dm, f), (dm) */
    float *block, *block_grad;      /* the layers' weights below, one parameter */
    int64_t block_size;
    float *c[MAX_LAYERS], *c_grad[MAX_LAYERS];   /* (k, k) as x @ C */
    float *lw[MAX_LAYERS], *lw_grad[MAX_LAYERS]; /* (d, k) nn.Linear */
    float *lb[MAX_LAYERS], *lb_grad[MAX_LAYERS]; /* (d) */
    float *gw[MAX_LAYERS], *gw_grad[MAX_LAYERS]; /* (d, k + d) with concatenation, else (d, k) */
    float *gb[MAX_LAYERS], *gb_grad[MAX_LAYERS]; /* (d) */
    float *z, *norm;                /* (N, dm) before normalize, (N) its row lengths */
    float *x[MAX_LAYERS + 1];       /* (N, k_l) each layer's input; x[L] (N, d) the output */
    float *hx[MAX_LAYERS];          /* (N, k_l + d): h, then x̂ */
    float *lr[MAX_LAYERS];          /* (N, d) lrelu(x L^T + l), x̂ less the id rows */
} modality;

typedef struct {
    int n_users, n_items, n_nodes, dim, layers, n_mod, concat, has_id;
    float l_w;
    mrec_csr adj;                   /* Â (N, N), not symmetric under mean */
    float *gu, *gu_grad;            /* (U, d) */
    float *gi, *gi_grad;            /* (I, d) */
    modality mod[MAX_MOD];
    float *ego;                     /* (N, d) [G_u ; G_i] */
    float *final, *dfinal, *dego;   /* (N, d) */
    float *s, *ds, *dx, *dx2, *dhx; /* scratch: (N, k_max), (N, k_max), (N, k_max), (N, k_max), (N, k_max + d) */
    float *dx_batch;                /* (cap) */
    int cap, kmax;
    mrec_context *ctx;
    mrec_status status;
} mmgcn;

static int width(const mmgcn *m, const modality *q, int l) { return l ? m->dim : q->dm; }
static float lrelu(float v) { return v > 0 ? v : SLOPE * v; }
/* lrelu' from its output: the same sign as its input (the slope at 0, as torch) */
static float lrelu_back(float out, float g) { return out > 0 ? g : SLOPE * g; }

/* final = the mean over the modalities of x_L */
static mrec_status forward(mmgcn *m) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes;
    size_t nd = (size_t)N * d;
    mrec_context *ctx = m->ctx;
    mrec_status st;
    memcpy(m->ego, m->gu, sizeof(float) * (size_t)U * d);
    memcpy(m->ego + (size_t)U * d, m->gi, sizeof(float) * (size_t)I * d);
    memset(m->final, 0, nd * sizeof(float));
    for (int k = 0; k < m->n_mod; k++) {
        modality *q = &m->mod[k];
        int dm = q->dm;
        /* z = [G_u^m ; f P^T + p], x_0 = its unit rows */
        memcpy(q->z, q->gum, sizeof(float) * (size_t)U * dm);
        if (q->project) {
            if ((st = mrec_gemm(ctx, q->z + (size_t)U * dm, q->feat, q->pw, q->pb, 1, 0, 0, 1, I, dm, q->f, q->f, q->f, dm))) return st;
        } else {
            memcpy(q->z + (size_t)U * dm, q->feat, sizeof(float) * (size_t)I * dm);
        }
        for (int r = 0; r < N; r++) {
            const float *zr = q->z + (size_t)r * dm;
            double s = 0;
            for (int e = 0; e < dm; e++) s += (double)zr[e] * zr[e];
            float n = fmaxf((float)sqrt(s), 1e-12f); /* F.normalize's floor */
            q->norm[r] = n;
            for (int e = 0; e < dm; e++) q->x[0][(size_t)r * dm + e] = zr[e] / n;
        }
        for (int l = 0; l < m->layers; l++) {
            int kw = width(m, q, l), ld = kw + d;
            float *x = q->x[l], *hx = q->hx[l];
            /* h = lrelu(Â (x C)) into hx's first kw columns */
            if ((st = mrec_gemm(ctx, m->s, x, q->c[l], NULL, 1, 0, 0, 0, N, kw, kw, kw, kw, kw))) return st;
            if ((st = mrec_spmm(ctx, m->ds, &m->adj, m->s, kw, 0))) return st;
            for (int r = 0; r < N; r++)
                for (int e = 0; e < kw; e++) hx[(size_t)r * ld + e] = lrelu(m->ds[(size_t)r * kw + e]);
            /* x̂ = lrelu(x L^T + l) (+ ego) into the last d columns */
            if ((st = mrec_gemm(ctx, q->lr[l], x, q->lw[l], q->lb[l], 1, 0, 0, 1, N, d, kw, kw, kw, d))) return st;
            for (int r = 0; r < N; r++)
                for (int e = 0; e < d; e++) {
                    float v = lrelu(q->lr[l][(size_t)r * d + e]);
                    q->lr[l][(size_t)r * d + e] = v;
                    hx[(size_t)r * ld + kw + e] = m->has_id ? v + m->ego[(size_t)r * d + e] : v;
                }
            float *out = q->x[l + 1];
            if (m->concat) {
                if ((st = mrec_gemm(ctx, out, hx, q->gw[l], q->gb[l], 1, 0, 0, 1, N, d, ld, ld, ld, d))) return st;
            } else {
                if ((st = mrec_gemm(ctx, out, hx, q->gw[l], q->gb[l], 1, 0, 0, 1, N, d, kw, ld, kw, d))) return st;
                for (int r = 0; r < N; r++)
                    for (int e = 0; e < d; e++) out[(size_t)r * d + e] += hx[(size_t)r * ld + kw + e];
            }
            for (size_t e = 0; e < nd; e++) out[e] = lrelu(out[e]);
        }
        if ((st = mrec_add(ctx, m->final, m->final, q->x[m->layers], (int64_t)nd))) return st;
    }
    return mrec_scale(ctx, m->final, m->final, 1.0f / m->n_mod, (int64_t)nd);
}

/* One modality's gradients from dx_L (in m->dx, (N, d)); the id part adds into m->dego. */
static mrec_status modality_back(mmgcn *m, modality *q) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes;
    mrec_context *ctx = m->ctx;
    mrec_status st;
    float *dx = m->dx; /* the gradient of x_{l+1}, then of x_l */
    for (int l = m->layers - 1; l >= 0; l--) {
        int kw = width(m, q, l), ld = kw + d;
        const float *x = q->x[l], *hx = q->hx[l], *out = q->x[l + 1];
        /* dY = dx_{l+1} lrelu'(.), in place */
        for (size_t e = 0; e < (size_t)N * d; e++) dx[e] = lrelu_back(out[e], dx[e]);
        memset(q->gb_grad[l], 0, sizeof(float) * (size_t)d);
        for (int r = 0; r < N; r++)
            for (int e = 0; e < d; e++) q->gb_grad[l][e] += dx[(size_t)r * d + e];
        /* dW = dY^T [h, x̂] (or dY^T h); d[h, x̂] = dY W (x̂ gets dY itself without concatenation) */
        int wk = m->concat ? ld : kw;
        if ((st = mrec_gemm(ctx, q->gw_grad[l], dx, hx, NULL, 1, 0, 1, 0, d, wk, N, d, ld, wk))) return st;
        if ((st = mrec_gemm(ctx, m->dhx, dx, q->gw[l], NULL, 1, 0, 0, 0, N, wk, d, d, wk, ld))) return st;
        if (!m->concat)
            for (int r = 0; r < N; r++) memcpy(m->dhx + (size_t)r * ld + kw, dx + (size_t)r * d, sizeof(float) * (size_t)d);
        /* x̂ = lrelu(x L^T + l) + ego: dego += dx̂; dpre into dx (free now) */
        for (int r = 0; r < N; r++)
            for (int e = 0; e < d; e++) {
                float g = m->dhx[(size_t)r * ld + kw + e];
                if (m->has_id) m->dego[(size_t)r * d + e] += g;
                dx[(size_t)r * d + e] = lrelu_back(q->lr[l][(size_t)r * d + e], g);
            }
        memset(q->lb_grad[l], 0, sizeof(float) * (size_t)d);
        for (int r = 0; r < N; r++)
            for (int e = 0; e < d; e++) q->lb_grad[l][e] += dx[(size_t)r * d + e];
        if ((st = mrec_gemm(ctx, q->lw_grad[l], dx, x, NULL, 1, 0, 1, 0, d, kw, N, d, kw, kw))) return st;
        /* d x_l, first from x̂'s branch: dpre L, into dx2 */
        if ((st = mrec_gemm(ctx, m->dx2, dx, q->lw[l], NULL, 1, 0, 0, 0, N, kw, d, d, kw, kw))) return st;
        /* h = lrelu(Â s): da = dh lrelu'(.) into s; ds = Â^T da; dC = x^T ds; d x_l += ds C^T */
        for (int r = 0; r < N; r++)
            for (int e = 0; e < kw; e++) m->s[(size_t)r * kw + e] = lrelu_back(hx[(size_t)r * ld + e], m->dhx[(size_t)r * ld + e]);
        if ((st = mrec_spmm(ctx, m->ds, &m->adj, m->s, kw, 1))) return st;
        if ((st = mrec_gemm(ctx, q->c_grad[l], x, m->ds, NULL, 1, 0, 1, 0, kw, kw, N, kw, kw, kw))) return st;
        if ((st = mrec_gemm(ctx, m->dx2, m->ds, q->c[l], NULL, 1, 1, 0, 1, N, kw, kw, kw, kw, kw))) return st;
        memcpy(dx, m->dx2, sizeof(float) * (size_t)N * kw);
    }
    /* x_0 = z / |z|: dz = (dx - x <x, dx>) / |z| */
    int dm = q->dm;
    for (int r = 0; r < N; r++) {
        const float *xr = q->x[0] + (size_t)r * dm;
        float *g = dx + (size_t)r * dm;
        double dot = 0;
        for (int e = 0; e < dm; e++) dot += (double)xr[e] * g[e];
        for (int e = 0; e < dm; e++) g[e] = (float)((g[e] - xr[e] * dot) / q->norm[r]);
    }
    memcpy(q->gum_grad, dx, sizeof(float) * (size_t)U * dm);
    if (q->project) {
        const float *dzi = dx + (size_t)U * dm;
        if ((st = mrec_gemm(ctx, q->pw_grad, dzi, q->feat, NULL, 1, 0, 1, 0, dm, q->f, I, dm, q->f, q->f))) return st;
        memset(q->pb_grad, 0, sizeof(float) * (size_t)dm);
        for (int r = 0; r < I; r++)
            for (int e = 0; e < dm; e++) q->pb_grad[e] += dzi[(size_t)r * dm + e];
    }
    return MREC_OK;
}

static mrec_status batch_loss_grad(mmgcn *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, U = m->n_users;
    size_t nd = (size_t)m->n_nodes * d;
    if (n > m->cap) {
        free(m->dx_batch);
        m->dx_batch = malloc(sizeof(float) * (size_t)n);
        m->cap = m->dx_batch ? n : 0;
        if (!m->cap) return mrec_fail(MREC_ERR_NOMEM, "mmgcn: a batch of %d", n);
    }
    mrec_status st = forward(m);
    if (st) return st;
    double loss = 0, reg_id = 0;
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d, *fj = m->final + (size_t)(U + j[b]) * d;
        const float *gu = m->gu + (size_t)u[b] * d, *gi = m->gi + (size_t)i[b] * d, *gj = m->gi + (size_t)j[b] * d;
        float sp = 0, sn = 0;
        for (int e = 0; e < d; e++) {
            sp += fu[e] * fi[e], sn += fu[e] * fj[e];
            reg_id += 2.0 * gu[e] * gu[e] + (double)gi[e] * gi[e] + (double)gj[e] * gj[e];
        }
        double x = (double)sp - sn;
        loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); /* softplus(-x) */
        m->dx_batch[b] = (float)(-1.0 / (1.0 + exp(x)) / n);
    }
    const modality *q0 = &m->mod[0];
    double reg_m = 0;
    for (size_t e = 0; e < (size_t)U * q0->dm; e++) reg_m += (double)q0->gum[e] * q0->gum[e];
    loss = loss / n + m->l_w * (reg_id / (2.0 * n * d) + reg_m / ((double)U * q0->dm));
    /* dF over the batch; each modality's x_L gets dF / M */
    memset(m->dfinal, 0, nd * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d, *fj = m->final + (size_t)(U + j[b]) * d;
        float *du = m->dfinal + (size_t)u[b] * d, *di = m->dfinal + (size_t)(U + i[b]) * d, *dj = m->dfinal + (size_t)(U + j[b]) * d;
        float g = m->dx_batch[b];
        for (int e = 0; e < d; e++) du[e] += g * (fi[e] - fj[e]), di[e] += g * fu[e], dj[e] -= g * fu[e];
    }
    memset(m->dego, 0, nd * sizeof(float));
    for (int k = 0; k < m->n_mod; k++) {
        memcpy(m->dx, m->dfinal, nd * sizeof(float));
        if ((st = mrec_scale(m->ctx, m->dx, m->dx, 1.0f / m->n_mod, (int64_t)nd))) return st;
        if ((st = modality_back(m, &m->mod[k]))) return st;
    }
    /* the id rows: the graph's share, then the regularizer's */
    memcpy(m->gu_grad, m->dego, sizeof(float) * (size_t)U * d);
    memcpy(m->gi_grad, m->dego + (size_t)U * d, sizeof(float) * (size_t)m->n_items * d);
    float cu = (float)(4.0 * m->l_w / (2.0 * n * d)), ci = (float)(2.0 * m->l_w / (2.0 * n * d));
    for (int b = 0; b < n; b++)
        for (int e = 0; e < d; e++) {
            m->gu_grad[(size_t)u[b] * d + e] += cu * m->gu[(size_t)u[b] * d + e];
            m->gi_grad[(size_t)i[b] * d + e] += ci * m->gi[(size_t)i[b] * d + e];
            m->gi_grad[(size_t)j[b] * d + e] += ci * m->gi[(size_t)j[b] * d + e];
        }
    float cm = (float)(2.0 * m->l_w / ((double)U * q0->dm));
    for (size_t e = 0; e < (size_t)U * q0->dm; e++) m->mod[0].gum_grad[e] += cm * q0->gum[e];
    *loss_out = loss;
    return MREC_OK;
}

static double mmgcn_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mmgcn *m = self;
    double loss = NAN;
    m->status = batch_loss_grad(m, &loss, u, i, j, n);
    return m->status ? NAN : loss;
}

static mrec_status mmgcn_prepare(void *self) { return forward(self); }

static mrec_status mmgcn_score(void *self, int u0, int n, float *scores) {
    mmgcn *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status mmgcn_embeddings(void *self, float *users, float *items) {
    mmgcn *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->dim);
}

static void mmgcn_destroy(void *self) {
    mmgcn *m = self;
    free(m->gu), free(m->gu_grad), free(m->gi), free(m->gi_grad), free(m->ego), free(m->final), free(m->dfinal), free(m->dego);
    free(m->s), free(m->ds), free(m->dx), free(m->dx2), free(m->dhx), free(m->dx_batch);
    for (int k = 0; k < MAX_MOD; k++) {
        modality *q = &m->mod[k];
        free(q->block), free(q->block_grad), free(q->gum), free(q->gum_grad), free(q->pw), free(q->pw_grad), free(q->pb), free(q->pb_grad), free(q->z), free(q->norm);
        for (int l = 0; l < MAX_LAYERS; l++) {
            free(q->hx[l]), free(q->lr[l]);
        }
        for (int l = 0; l <= MAX_LAYERS; l++) free(q->x[l]);
    }
    free(m);
}

static void uniform(float *w, size_t count, double bound, mrec_rng *rng) {
    for (size_t e = 0; e < count; e++) w[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
}

/* xavier-uniform of a (rows, cols) matrix: bound sqrt(6 / (rows + cols)) */
static void xavier(float *w, int rows, int cols, mrec_rng *rng) { uniform(w, (size_t)rows * cols, sqrt(6.0 / (rows + cols)), rng); }

mrec_status mrec_graph_mmgcn(mrec_graph *out, const mrec_user_items *train, int mean) {
    mrec_status st = mrec_graph_normalized(out, train);
    if (st) return st;
    for (int r = 0; r < out->n_nodes; r++) {
        int64_t lo = out->row_ptr[r], hi = out->row_ptr[r + 1];
        for (int64_t e = lo; e < hi; e++) out->val[e] = mean ? 1.0f / (float)(hi - lo) : 1.0f;
    }
    return MREC_OK;
}

mrec_status mrec_mmgcn_create(mrec_model *out, const mrec_graph *adj, int n_users, int n_items, const float *const *feat,
                              const int *feat_dim, const int *proj_dim, int n_modalities, int dim, int layers, int concat,
                              int has_id, float l_w, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "mmgcn");
    if (st) return st;
    if (adj->n_nodes != n_users + n_items || layers < 1 || layers > MAX_LAYERS || dim < 1 || n_modalities < 1 ||
        n_modalities > MAX_MOD)
        return mrec_fail(MREC_ERR_ARG, "mmgcn: graph of %d nodes for %d users + %d items, %d layers (1 to %d), %d modalities (1 to %d)",
                         adj->n_nodes, n_users, n_items, layers, MAX_LAYERS, n_modalities, MAX_MOD);
    int n_tensors = 2;
    for (int k = 0; k < n_modalities; k++) {
        if (feat_dim[k] < 1 || proj_dim[k] < 0)
            return mrec_fail(MREC_ERR_ARG, "mmgcn: modality %d has %d features and a projection to %d", k, feat_dim[k], proj_dim[k]);
        n_tensors += 2 + 2 * (proj_dim[k] > 0);
    }
    if (n_tensors > MREC_MAX_PARAMS)
        return mrec_fail(MREC_ERR_ARG, "mmgcn: %d modalities of %d layers make %d parameter tensors, more than %d", n_modalities, layers,
                         n_tensors, MREC_MAX_PARAMS);
    mmgcn *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "mmgcn");
    int N = n_users + n_items, d = dim;
    m->n_users = n_users, m->n_items = n_items, m->n_nodes = N, m->dim = d, m->layers = layers, m->n_mod = n_modalities;
    m->concat = concat, m->has_id = has_id, m->l_w = l_w, m->ctx = ctx;
    m->adj = mrec_graph_csr(adj);
    m->kmax = d;
    for (int k = 0; k < n_modalities; k++) {
        modality *q = &m->mod[k];
        q->f = feat_dim[k], q->project = proj_dim[k] > 0, q->dm = q->project ? proj_dim[k] : feat_dim[k], q->feat = feat[k];
        if (q->dm > m->kmax) m->kmax = q->dm;
    }
    size_t nd = (size_t)N * d, nk = (size_t)N * m->kmax;
    int ok = 1;
#define ALLOC(p, count) ok &= ((p) = calloc((count), sizeof *(p))) != NULL
    ALLOC(m->gu, (size_t)n_users * d), ALLOC(m->gu_grad, (size_t)n_users * d), ALLOC(m->gi, (size_t)n_items * d);
    ALLOC(m->gi_grad, (size_t)n_items * d), ALLOC(m->ego, nd), ALLOC(m->final, nd), ALLOC(m->dfinal, nd), ALLOC(m->dego, nd);
    ALLOC(m->s, nk), ALLOC(m->ds, nk), ALLOC(m->dx, nk), ALLOC(m->dx2, nk), ALLOC(m->dhx, (size_t)N * (m->kmax + d));
    for (int k = 0; k < n_modalities && ok; k++) {
        modality *q = &m->mod[k];
        size_t dm = (size_t)q->dm;
        ALLOC(q->gum, (size_t)n_users * dm), ALLOC(q->gum_grad, (size_t)n_users * dm), ALLOC(q->z, N * dm), ALLOC(q->norm, N);
        if (q->project) ALLOC(q->pw, dm * q->f), ALLOC(q->pw_grad, dm * q->f), ALLOC(q->pb, dm), ALLOC(q->pb_grad, dm);
        ALLOC(q->x[0], N * dm);
        /* the layers' weights in one block, carved in order: C, L, l, W, w per layer */
        size_t block = 0;
        for (int l = 0; l < layers; l++) {
            size_t kw = (size_t)width(m, q, l), wk = concat ? kw + d : kw;
            block += kw * kw + d * kw + d + d * wk + d;
        }
        ALLOC(q->block, block), ALLOC(q->block_grad, block);
        q->block_size = (int64_t)block;
        for (int l = 0; l < layers && ok; l++) {
            size_t kw = (size_t)width(m, q, l), wk = concat ? kw + d : kw, at = 0;
            for (int b = 0; b < l; b++) {
                size_t kb = (size_t)width(m, q, b), wb = concat ? kb + d : kb;
                at += kb * kb + d * kb + d + d * wb + d;
            }
            q->c[l] = q->block + at, q->c_grad[l] = q->block_grad + at, at += kw * kw;
            q->lw[l] = q->block + at, q->lw_grad[l] = q->block_grad + at, at += d * kw;
            q->lb[l] = q->block + at, q->lb_grad[l] = q->block_grad + at, at += d;
            q->gw[l] = q->block + at, q->gw_grad[l] = q->block_grad + at, at += d * wk;
            q->gb[l] = q->block + at, q->gb_grad[l] = q->block_grad + at;
            ALLOC(q->hx[l], N * (kw + d)), ALLOC(q->lr[l], nd), ALLOC(q->x[l + 1], nd);
        }
    }
#undef ALLOC
    if (!ok) {
        mmgcn_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "mmgcn: %d nodes, %d modalities of up to %d units, %d layers", N, n_modalities, m->kmax, layers);
    }
    xavier(m->gu, n_users, d, rng), xavier(m->gi, n_items, d, rng);
    for (int k = 0; k < n_modalities; k++) {
        modality *q = &m->mod[k];
        xavier(q->gum, n_users, q->dm, rng);
        if (q->project) {
            double b = 1.0 / sqrt((double)q->f);
            uniform(q->pw, (size_t)q->dm * q->f, b, rng), uniform(q->pb, (size_t)q->dm, b, rng);
        }
        for (int l = 0; l < layers; l++) {
            int kw = width(m, q, l), wk = concat ? kw + d : kw;
            xavier(q->c[l], kw, kw, rng);
            xavier(q->lw[l], d, kw, rng), uniform(q->lb[l], (size_t)d, 1.0 / sqrt((double)kw), rng);
            xavier(q->gw[l], d, wk, rng), uniform(q->gb[l], (size_t)d, 1.0 / sqrt((double)wk), rng);
        }
    }
    /* parameters: G_u, G_i, then per modality G_u^m, [P_m, p_m], and the layers' block (Adam is elementwise: one
     * tensor or five per layer step alike) */
    int p = 0;
#define PARAM(w, g, count) out->param[p] = (w), out->grad[p] = (g), out->size[p++] = (int64_t)(count)
    PARAM(m->gu, m->gu_grad, (size_t)n_users * d);
    PARAM(m->gi, m->gi_grad, (size_t)n_items * d);
    for (int k = 0; k < n_modalities; k++) {
        modality *q = &m->mod[k];
        PARAM(q->gum, q->gum_grad, (size_t)n_users * q->dm);
        if (q->project) PARAM(q->pw, q->pw_grad, (size_t)q->dm * q->f), PARAM(q->pb, q->pb_grad, q->dm);
        PARAM(q->block, q->block_grad, q->block_size);
    }
#undef PARAM
    out->n_params = p;
    out->name = "MMGCN", out->self = m;
    out->status = &m->status;
    out->loss_grad = mmgcn_loss_grad, out->prepare = mmgcn_prepare, out->score = mmgcn_score;
    out->embed_dim = d, out->embeddings = mmgcn_embeddings;
    out->destroy = mmgcn_destroy;
    return MREC_OK;
}
