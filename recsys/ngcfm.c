/* ngcfm.c: NGCF-M as the Ducho-meets-Elliot benchmark defines it
 * (external/models/ngcf_m: NGCFM.py, NGCFMModel.py, NGCFLayer.py).
 *
 *   Â       = D^-1 (A + I)                     (mrec_graph_mean_self)
 *   x_0     = [G_u; G_i]
 *   x_{l+1} = normalize(dropout(lrelu(Â x_l W1_l + b1_l + ((Â x_l) * x_l) W2_l + b2_l)))   (slope 0.2)
 *             where training uses Â with each entry dropped with probability node_dropout
 *             (the rest scaled by 1 / (1 - node_dropout)), drawn once per epoch
 *   g       = mean(x_0, .., x_L)                 (users' and items' rows)
 *   p_i     = normalize(f_i P^T + c)             (f_i: the modalities concatenated; fixed)
 *   score   = <g_u, g_i> + <T_u, p_i>
 *   loss    = mean softplus(-clamp(score(u, i+) - score(u, i-), -80, 1e8))
 *             + l_w / 2 (|g_u|^2 + |g_i+|^2 + |g_i-|^2 + |T_u|^2 + |p_i+|^2 + |p_i-|^2) / n
 * Each layer takes the previous layer's normalized output, as the fork's
 * propagate_embeddings does. G, T, W and b start xavier-uniform (b as a
 * (1, d) matrix), P as torch.nn.Linear. Dropout uses the model's generator.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 8

typedef struct {
    int n_users, n_items, n_nodes, dim, layers, n_feat;
    float l_w, dropout, node_dropout;
    const mrec_graph *graph;
    mrec_graph dropped;                       /* this epoch's Â after node dropout */
    const float *feat;                        /* (I, F), not trained */
    mrec_rng rng;
    float *ego, *ego_grad, *tu, *tu_grad, *pw, *pw_grad, *pb, *pb_grad;
    float *w1[MAX_LAYERS], *b1[MAX_LAYERS], *w2[MAX_LAYERS], *b2[MAX_LAYERS];
    float *gw1[MAX_LAYERS], *gb1[MAX_LAYERS], *gw2[MAX_LAYERS], *gb2[MAX_LAYERS];
    /* per layer (N, d): input x_l (x_0 = ego), Â x_l, the pre-activation, the dropped-out output, its mask */
    float *x[MAX_LAYERS + 1], *side[MAX_LAYERS], *pre[MAX_LAYERS], *drop[MAX_LAYERS];
    uint8_t *mask[MAX_LAYERS];
    float *final, *dx, *dnext, *tmp, *tmp2;   /* (N, d) */
    float *p, *z;                             /* (I, d) the projected features, before and after normalize */
    float *pos, *neg, *dxb;
    int cap;
    mrec_context *ctx;
    mrec_status status;                       /* of the last loss_grad */
} ngcfm;

/* out rows = in rows / max(|row|, 1e-12) */
static void normalize_rows(float *out, const float *in, int rows, int d) {
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)in[(size_t)r * d + k] * in[(size_t)r * d + k];
        float inv = 1.0f / fmaxf((float)sqrt(s), 1e-12f);
        for (int k = 0; k < d; k++) out[(size_t)r * d + k] = in[(size_t)r * d + k] * inv;
    }
}

/* d in, given d out, through out = in / max(|in|, eps): (dout - out <out, dout>) / |in| */
static void normalize_back(float *din, const float *dout, const float *in, const float *out, int rows, int d) {
    for (int r = 0; r < rows; r++) {
        double s = 0, dot = 0;
        for (int k = 0; k < d; k++) s += (double)in[(size_t)r * d + k] * in[(size_t)r * d + k], dot += (double)out[(size_t)r * d + k] * dout[(size_t)r * d + k];
        float n = (float)sqrt(s);
        for (int k = 0; k < d; k++)
            din[(size_t)r * d + k] = n > 1e-12f ? (dout[(size_t)r * d + k] - out[(size_t)r * d + k] * (float)dot) / n
                                              : dout[(size_t)r * d + k] / 1e-12f;
    }
}

static const mrec_graph *train_graph(const ngcfm *m) { return m->node_dropout > 0 && m->dropped.row_ptr ? &m->dropped : m->graph; }

static mrec_status forward(ngcfm *m, int train) {
    int d = m->dim, N = m->n_nodes;
    size_t nd = (size_t)N * d;
    mrec_context *ctx = m->ctx;
    mrec_csr g = mrec_graph_csr(train ? train_graph(m) : m->graph);
    memcpy(m->x[0], m->ego, nd * sizeof(float));
    memcpy(m->final, m->ego, nd * sizeof(float));
    float keep = 1.0f - m->dropout;
    mrec_status st;
    for (int l = 0; l < m->layers; l++) {
        if ((st = mrec_spmm(ctx, m->side[l], &g, m->x[l], d, 0))) return st;
        for (size_t e = 0; e < nd; e++) m->tmp[e] = m->side[l][e] * m->x[l][e];
        if ((st = mrec_gemm(ctx, m->pre[l], m->side[l], m->w1[l], m->b1[l], 1, 0, 0, 0, N, d, d, d, d, d))) return st;
        if ((st = mrec_gemm(ctx, m->pre[l], m->tmp, m->w2[l], m->b2[l], 1, 1, 0, 0, N, d, d, d, d, d))) return st;
        for (size_t e = 0; e < nd; e++) {
            float a = m->pre[l][e] > 0 ? m->pre[l][e] : 0.2f * m->pre[l][e];
            int kept = !train || m->dropout <= 0 || mrec_rng_uniform(&m->rng) >= m->dropout;
            m->mask[l][e] = (uint8_t)kept;
            m->drop[l][e] = !train || m->dropout <= 0 ? a : kept ? a / keep : 0.0f;
        }
        normalize_rows(m->x[l + 1], m->drop[l], N, d);
        if ((st = mrec_add(ctx, m->final, m->final, m->x[l + 1], (int64_t)nd))) return st;
    }
    if ((st = mrec_scale(ctx, m->final, m->final, 1.0f / (m->layers + 1), (int64_t)nd))) return st;
    /* the items' projected features */
    st = mrec_gemm(ctx, m->z, m->feat, m->pw, m->pb, 1, 0, 0, 1, m->n_items, d, m->n_feat, m->n_feat, m->n_feat, d);
    if (!st) normalize_rows(m->p, m->z, m->n_items, d);
    return st;
}

static mrec_status batch_loss_grad(ngcfm *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes;
    size_t nd = (size_t)N * d;
    mrec_context *ctx = m->ctx;
    if (n > m->cap) {
        free(m->pos), free(m->neg), free(m->dxb);
        m->pos = malloc(sizeof(float) * (size_t)n), m->neg = malloc(sizeof(float) * (size_t)n), m->dxb = malloc(sizeof(float) * (size_t)n);
        m->cap = m->pos && m->neg && m->dxb ? n : 0;
        if (!m->cap) return mrec_fail(MREC_ERR_NOMEM, "ngcfm: a batch of %d", n);
    }
    mrec_status st = forward(m, 1);
    if (st) return st;
    double loss = 0, reg = 0;
    for (int b = 0; b < n; b++) {
        const float *gu = m->final + (size_t)u[b] * d, *gi = m->final + (size_t)(U + i[b]) * d, *gj = m->final + (size_t)(U + j[b]) * d;
        const float *t = m->tu + (size_t)u[b] * d, *pi = m->p + (size_t)i[b] * d, *pj = m->p + (size_t)j[b] * d;
        float sp = 0, sn = 0;
        for (int k = 0; k < d; k++) {
            sp += gu[k] * gi[k] + t[k] * pi[k], sn += gu[k] * gj[k] + t[k] * pj[k];
            reg += (double)gu[k] * gu[k] + (double)gi[k] * gi[k] + (double)gj[k] * gj[k] + (double)t[k] * t[k] + (double)pi[k] * pi[k] +
                   (double)pj[k] * pj[k];
        }
        double x = fmin(fmax((double)sp - sn, -80.0), 1e8);
        loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
        /* softplus(-x)' = -sigmoid(-x); nothing flows back through the clamp's flat part */
        m->dxb[b] = (double)sp - sn < -80.0 ? 0.0f : (float)(-1.0 / (1.0 + exp(x)) / n);
    }
    loss = loss / n + m->l_w / 2 * reg / n;
    float c = m->l_w / n;
    memset(m->dx, 0, nd * sizeof(float));
    memset(m->tu_grad, 0, sizeof(float) * (size_t)U * d);
    float *dp = m->tmp2; /* (I, d) */
    memset(dp, 0, sizeof(float) * (size_t)I * d);
    for (int b = 0; b < n; b++) {
        const float *gu = m->final + (size_t)u[b] * d, *gi = m->final + (size_t)(U + i[b]) * d, *gj = m->final + (size_t)(U + j[b]) * d;
        const float *t = m->tu + (size_t)u[b] * d, *pi = m->p + (size_t)i[b] * d, *pj = m->p + (size_t)j[b] * d;
        float *du = m->dx + (size_t)u[b] * d, *di = m->dx + (size_t)(U + i[b]) * d, *dj = m->dx + (size_t)(U + j[b]) * d;
        float *dt = m->tu_grad + (size_t)u[b] * d, *dpi = dp + (size_t)i[b] * d, *dpj = dp + (size_t)j[b] * d, g = m->dxb[b];
        for (int k = 0; k < d; k++) {
            du[k] += g * (gi[k] - gj[k]) + c * gu[k];
            di[k] += g * gu[k] + c * gi[k];
            dj[k] += -g * gu[k] + c * gj[k];
            dt[k] += g * (pi[k] - pj[k]) + c * t[k];
            dpi[k] += g * t[k] + c * pi[k];
            dpj[k] += -g * t[k] + c * pj[k];
        }
    }
    /* p = normalize(z), z = F P^T + c */
    normalize_back(m->tmp, dp, m->z, m->p, I, d);
    if ((st = mrec_gemm(ctx, m->pw_grad, m->tmp, m->feat, NULL, 1, 0, 1, 0, d, m->n_feat, I, d, m->n_feat, m->n_feat)))
        return st;
    memset(m->pb_grad, 0, sizeof(float) * (size_t)d);
    for (int r = 0; r < I; r++)
        for (int k = 0; k < d; k++) m->pb_grad[k] += m->tmp[(size_t)r * d + k];
    /* g = mean of the layers: each x_l gets dg / (L + 1); go down the layers */
    if ((st = mrec_scale(ctx, m->dx, m->dx, 1.0f / (m->layers + 1), (int64_t)nd))) return st;
    memcpy(m->dnext, m->dx, nd * sizeof(float)); /* d x_L */
    mrec_csr gr = mrec_graph_csr(train_graph(m));
    float keep = 1.0f - m->dropout;
    for (int l = m->layers - 1; l >= 0; l--) {
        /* x_{l+1} = normalize(drop): dnext is the total gradient of x_{l+1} */
        normalize_back(m->tmp, m->dnext, m->drop[l], m->x[l + 1], N, d);
        for (size_t e = 0; e < nd; e++) { /* dropout, then LeakyReLU: tmp becomes d pre */
            float dv = m->dropout <= 0 ? m->tmp[e] : m->mask[l][e] ? m->tmp[e] / keep : 0.0f;
            m->tmp[e] = m->pre[l][e] > 0 ? dv : 0.2f * dv;
        }
        /* pre = side W1 + b1 + (side * x) W2 + b2 */
        for (size_t e = 0; e < nd; e++) m->tmp2[e] = m->side[l][e] * m->x[l][e];
        if ((st = mrec_gemm(ctx, m->gw1[l], m->side[l], m->tmp, NULL, 1, 0, 1, 0, d, d, N, d, d, d))) return st;
        if ((st = mrec_gemm(ctx, m->gw2[l], m->tmp2, m->tmp, NULL, 1, 0, 1, 0, d, d, N, d, d, d))) return st;
        memset(m->gb1[l], 0, sizeof(float) * (size_t)d);
        for (int r = 0; r < N; r++)
            for (int k = 0; k < d; k++) m->gb1[l][k] += m->tmp[(size_t)r * d + k];
        memcpy(m->gb2[l], m->gb1[l], sizeof(float) * (size_t)d);
        /* d(side * x) = dpre W2^T -> side gets it times x, x times side; side also gets dpre W1^T */
        if ((st = mrec_gemm(ctx, m->tmp2, m->tmp, m->w2[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d))) return st;
        float *dside = m->dnext; /* dnext is consumed: reuse it for d side */
        if ((st = mrec_gemm(ctx, dside, m->tmp, m->w1[l], NULL, 1, 0, 0, 1, N, d, d, d, d, d))) return st;
        for (size_t e = 0; e < nd; e++) {
            dside[e] += m->tmp2[e] * m->x[l][e];
            m->tmp2[e] = m->tmp2[e] * m->side[l][e]; /* the direct part of d x_l */
        }
        /* side = Â x_l: d x_l = Â^T dside + direct + the mean's share */
        if ((st = mrec_spmm(ctx, m->tmp, &gr, dside, d, 1))) return st;
        for (size_t e = 0; e < nd; e++) m->dnext[e] = m->tmp[e] + m->tmp2[e] + m->dx[e];
    }
    memcpy(m->ego_grad, m->dnext, nd * sizeof(float));
    *loss_out = loss;
    return MREC_OK;
}

static double ngcfm_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    ngcfm *m = self;
    double loss = NAN;
    m->status = batch_loss_grad(m, &loss, u, i, j, n);
    return m->status ? NAN : loss;
}

/* the fork's sparse_dropout: entries kept with probability 1 - p, scaled by 1 / (1 - p) */
static mrec_status ngcfm_epoch_start(void *self) {
    ngcfm *m = self;
    if (m->node_dropout <= 0) return MREC_OK;
    const mrec_graph *g = m->graph;
    int64_t nnz = g->row_ptr[g->n_nodes];
    if (!m->dropped.row_ptr) {
        m->dropped.n_nodes = g->n_nodes;
        m->dropped.row_ptr = malloc(sizeof(int64_t) * ((size_t)g->n_nodes + 1));
        m->dropped.col = malloc(sizeof(int32_t) * (size_t)(nnz + 1)), m->dropped.val = malloc(sizeof(float) * (size_t)(nnz + 1));
        if (!m->dropped.row_ptr || !m->dropped.col || !m->dropped.val) {
            mrec_graph_free(&m->dropped);
            return mrec_fail(MREC_ERR_NOMEM, "ngcfm: node dropout over %lld entries", (long long)nnz);
        }
        memcpy(m->dropped.row_ptr, g->row_ptr, sizeof(int64_t) * ((size_t)g->n_nodes + 1));
        memcpy(m->dropped.col, g->col, sizeof(int32_t) * (size_t)nnz);
    }
    float scale = 1.0f / (1.0f - m->node_dropout);
    for (int64_t e = 0; e < nnz; e++) m->dropped.val[e] = mrec_rng_uniform(&m->rng) < m->node_dropout ? 0.0f : g->val[e] * scale;
    return MREC_OK;
}

static mrec_status ngcfm_prepare(void *self) { return forward(self, 0); }

/* <g_u, g_i> + <T_u, p_i> as one GEMM per part */
static mrec_status ngcfm_score(void *self, int u0, int n, float *scores) {
    ngcfm *m = self;
    int d = m->dim;
    mrec_status st = mrec_gemm(m->ctx, scores, m->final + (size_t)u0 * d, m->final + (size_t)m->n_users * d, NULL, 1, 0, 0, 1,
                               n, m->n_items, d, d, d, m->n_items);
    if (!st) st = mrec_gemm(m->ctx, scores, m->tu + (size_t)u0 * d, m->p, NULL, 1, 1, 0, 1, n, m->n_items, d, d, d, m->n_items);
    return st;
}

static void ngcfm_destroy(void *self) {
    ngcfm *m = self;
    free(m->ego), free(m->ego_grad), free(m->tu), free(m->tu_grad), free(m->pw), free(m->pw_grad), free(m->pb), free(m->pb_grad);
    for (int l = 0; l < MAX_LAYERS; l++) {
        free(m->w1[l]), free(m->b1[l]), free(m->w2[l]), free(m->b2[l]), free(m->gw1[l]), free(m->gb1[l]), free(m->gw2[l]), free(m->gb2[l]);
        free(m->x[l + 1]), free(m->side[l]), free(m->pre[l]), free(m->drop[l]), free(m->mask[l]);
    }
    free(m->x[0]), free(m->final), free(m->dx), free(m->dnext), free(m->tmp), free(m->tmp2), free(m->p), free(m->z);
    free(m->pos), free(m->neg), free(m->dxb);
    mrec_graph_free(&m->dropped);
    free(m);
}

static void xavier_uniform(float *w, int rows, int cols, mrec_rng *rng) {
    double bound = sqrt(6.0 / (rows + cols));
    for (size_t e = 0; e < (size_t)rows * cols; e++) w[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
}

mrec_status mrec_ngcfm_create(mrec_model *out, const mrec_graph *mean_self_adj, int n_users, int n_items, const float *feat,
                              int n_feat, int dim, int layers, float l_w, float dropout, float node_dropout, mrec_rng *rng,
                              mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "ngcfm");
    if (st) return st;
    if (mean_self_adj->n_nodes != n_users + n_items || layers < 1 || layers > MAX_LAYERS || !(dropout >= 0 && dropout < 1) ||
        !(node_dropout >= 0 && node_dropout < 1))
        return mrec_fail(MREC_ERR_ARG, "ngcfm: %d layers (1..%d), dropouts %g and %g (0 <= p < 1), graph of %d nodes", layers,
                         MAX_LAYERS, dropout, node_dropout, mean_self_adj->n_nodes);
    ngcfm *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "ngcfm");
    m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items, m->dim = dim, m->layers = layers;
    m->n_feat = n_feat, m->l_w = l_w, m->dropout = dropout, m->node_dropout = node_dropout, m->graph = mean_self_adj;
    m->feat = feat, m->ctx = ctx;
    m->rng.state = mrec_rng_next(rng);
    size_t nd = (size_t)m->n_nodes * dim, id = (size_t)n_items * dim;
    int ok = 1;
#define ALLOC(p, count) ok &= ((p) = calloc((count), sizeof *(p))) != NULL
    ALLOC(m->ego, nd), ALLOC(m->ego_grad, nd), ALLOC(m->tu, (size_t)n_users * dim), ALLOC(m->tu_grad, (size_t)n_users * dim);
    ALLOC(m->pw, (size_t)dim * n_feat), ALLOC(m->pw_grad, (size_t)dim * n_feat), ALLOC(m->pb, dim), ALLOC(m->pb_grad, dim);
    ALLOC(m->x[0], nd), ALLOC(m->final, nd), ALLOC(m->dx, nd), ALLOC(m->dnext, nd), ALLOC(m->tmp, nd), ALLOC(m->tmp2, nd);
    ALLOC(m->p, id), ALLOC(m->z, id);
    for (int l = 0; l < layers; l++) {
        ALLOC(m->w1[l], (size_t)dim * dim), ALLOC(m->b1[l], dim), ALLOC(m->w2[l], (size_t)dim * dim), ALLOC(m->b2[l], dim);
        ALLOC(m->gw1[l], (size_t)dim * dim), ALLOC(m->gb1[l], dim), ALLOC(m->gw2[l], (size_t)dim * dim), ALLOC(m->gb2[l], dim);
        ALLOC(m->x[l + 1], nd), ALLOC(m->side[l], nd), ALLOC(m->pre[l], nd), ALLOC(m->drop[l], nd), ALLOC(m->mask[l], nd);
    }
#undef ALLOC
    if (!ok) {
        ngcfm_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "ngcfm: %d users, %d items, %d layers", n_users, n_items, layers);
    }
    xavier_uniform(m->ego, n_users, dim, rng), xavier_uniform(m->ego + (size_t)n_users * dim, n_items, dim, rng);
    for (int l = 0; l < layers; l++) {
        xavier_uniform(m->w1[l], dim, dim, rng), xavier_uniform(m->b1[l], 1, dim, rng);
        xavier_uniform(m->w2[l], dim, dim, rng), xavier_uniform(m->b2[l], 1, dim, rng);
    }
    xavier_uniform(m->tu, n_users, dim, rng);
    double bound = 1.0 / sqrt((double)n_feat);
    for (size_t e = 0; e < (size_t)dim * n_feat; e++) m->pw[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
    for (int e = 0; e < dim; e++) m->pb[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
    out->name = "NGCF-M", out->self = m;
    int p = 0;
    out->param[p] = m->ego, out->grad[p] = m->ego_grad, out->size[p++] = (int64_t)nd;
    for (int l = 0; l < layers; l++) {
        out->param[p] = m->w1[l], out->grad[p] = m->gw1[l], out->size[p++] = (int64_t)dim * dim;
        out->param[p] = m->b1[l], out->grad[p] = m->gb1[l], out->size[p++] = dim;
        out->param[p] = m->w2[l], out->grad[p] = m->gw2[l], out->size[p++] = (int64_t)dim * dim;
        out->param[p] = m->b2[l], out->grad[p] = m->gb2[l], out->size[p++] = dim;
    }
    out->param[p] = m->tu, out->grad[p] = m->tu_grad, out->size[p++] = (int64_t)n_users * dim;
    out->param[p] = m->pw, out->grad[p] = m->pw_grad, out->size[p++] = (int64_t)dim * n_feat;
    out->param[p] = m->pb, out->grad[p] = m->pb_grad, out->size[p++] = dim;
    out->n_params = p;
    out->status = &m->status;
    out->loss_grad = ngcfm_loss_grad, out->epoch_start = ngcfm_epoch_start, out->prepare = ngcfm_prepare, out->score = ngcfm_score;
    out->destroy = ngcfm_destroy;
    return MREC_OK;
}
