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
 *
 * Two paths compute this: the host loops (a CPU context), and the op path (a
 * GPU context always, a CPU one after mrec_lightgcnm_use_ops) where every
 * array, the features and a copy of the graph stay on the context's device
 * and a batch's loss stays there too. There the unit rows are
 * mrec_l2_normalize_rows and its backward, the batch's rows go through the
 * BPR step of bpr_ops.c (the regularizer's item rows with the BPR part, the
 * users' ego rows in a second scatter), and the bias gradient is ones^T dY.
 * Both paths share the arrays, carved from one allocation on the device.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODALITIES 8

typedef struct {
    const mrec_graph *graph;
    mrec_csr adj;            /* the graph as the ops see it: itself, or its copy on the device */
    int n_users, n_items, n_nodes, dim, layers, n_mod, sum;
    float l_w;
    int feat_dim[MAX_MODALITIES];
    float *user, *user_grad;                    /* (U, d) */
    float *feat[MAX_MODALITIES], *feat_grad[MAX_MODALITIES]; /* (I, f_m) trained copies */
    float *w[MAX_MODALITIES], *w_grad[MAX_MODALITIES];       /* (d, f_m) as nn.Linear's weight */
    float *bias[MAX_MODALITIES], *bias_grad[MAX_MODALITIES]; /* (d) */
    float *z[MAX_MODALITIES];                   /* (I, d) each modality's unit rows */
    float *y[MAX_MODALITIES];                   /* (I, d) the op path: the rows before scaling */
    float *norm[MAX_MODALITIES];                /* (I) the host path: their lengths */
    float *ego, *final, *dfinal, *dego, *a, *b; /* (N, d) */
    float *dy;                                  /* (I, d) */
    float *ones;                                /* (I) the op path: ones^T dY */
    mrec_arena mem;                             /* everything above, on the context's device */
    mrec_context *ctx;
    mrec_status status;
    double host_loss; /* the last batch's loss on the host path */
    int use_ops;
    mrec_bpr_ops ops;
} lightgcnm;

/* The op path's ego: the users' rows, then X = c sum_k z_k with z_k = normalize(feat_k W_k^T + b_k). */
static mrec_status ops_ego(lightgcnm *m) {
    mrec_context *ctx = m->ctx;
    int d = m->dim, U = m->n_users, I = m->n_items;
    float *x = m->ego + (size_t)U * d;
    float c = m->sum ? 1.0f : 1.0f / m->n_mod;
    mrec_status st = mrec_copy_rows(ctx, m->ego, d, m->user, d, U, d);
    for (int k = 0; k < m->n_mod && !st; k++) {
        int f = m->feat_dim[k];
        st = mrec_gemm(ctx, m->y[k], m->feat[k], m->w[k], m->bias[k], 1, 0, 0, 1, I, d, f, f, f, d);
        if (!st) st = mrec_l2_normalize_rows(ctx, m->z[k], m->y[k], 1e-12f, I, d); /* F.normalize's floor */
        /* the host's x = 0 + c z_0 + c z_1 ..., in that order */
        if (!st) st = mrec_scale(ctx, k ? m->dy : x, m->z[k], c, (int64_t)I * d);
        if (!st && k) st = mrec_add(ctx, x, x, m->dy, (int64_t)I * d);
    }
    return st;
}

/* ego = [U; X] from the current weights, then final = the layer mean. */
static mrec_status propagate(lightgcnm *m) {
    int d = m->dim, U = m->n_users, I = m->n_items;
    if (m->use_ops) {
        mrec_status st = ops_ego(m);
        return st ? st : mrec_csr_layer_mean(m->final, m->ego, &m->adj, m->layers, d, m->a, m->b, m->ctx);
    }
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

/* step through the op entries. */
/* The op path in the trainer's two halves (mrec_model.stage, .launch): the batch's ids checked and sent up, then the
 * launches. */
static mrec_status lightgcnm_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lightgcnm *m = self;
    return mrec_bpr_ops_stage(&m->ops, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->dim);
}

static mrec_status ops_launch(lightgcnm *m) {
    mrec_context *ctx = m->ctx;
    mrec_bpr_ops *o = &m->ops;
    int d = m->dim, U = m->n_users, I = m->n_items, n = o->n;
    /* the loss where the scores are: softplus, and l_w / 2 over n of the squared norms of the users' ego rows and the
     * items' final rows; each part's factor l_w / n */
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS, .weight = 1, .reg_form = MREC_BPR_REG_SQUARED_ALL, .reg = m->l_w, .reg_div = n};
    mrec_status st = propagate(m);
    /* pos, neg and |F_r|^2 of the batch's rows; then |U_u|^2 (the users' ego rows) over the first n norms */
    if (!st) st = mrec_bpr_ops_gather(o, m->final, m->final);
    if (!st) st = mrec_gather_dot(ctx, o->dots + 2 * n, m->ego, o->ids, m->ego, o->ids, n, d);
    if (!st) st = mrec_bpr_ops_loss(o, &spec);
    /* dF: BPR and the items' regularizer; back through the layers; the users' regularizer on their ego rows */
    if (!st) st = mrec_bpr_ops_scatter_at(o, m->dfinal, m->final, 1, 2 | 4);
    if (!st) st = mrec_csr_layer_mean_back(m->dego, m->dfinal, &m->adj, 1, m->layers, d, m->a, m->b, ctx);
    if (!st) st = mrec_bpr_ops_scatter_at(o, m->a, m->ego, 0, 1);
    if (!st) st = mrec_add(ctx, m->user_grad, m->dego, m->a, (int64_t)U * d);
    if (st) return st;
    /* each modality: dY = normalize's backward of c dX (c dX in b, free by now), then W, b and the features */
    const float *dx = m->dego + (size_t)U * d;
    float c = m->sum ? 1.0f : 1.0f / m->n_mod;
    for (int k = 0; k < m->n_mod && !st; k++) {
        int f = m->feat_dim[k];
        st = mrec_scale(ctx, m->b, dx, c, (int64_t)I * d);
        if (!st) st = mrec_l2_normalize_rows_back(ctx, m->dy, m->b, m->z[k], m->y[k], 1e-12f, 0, I, d);
        if (!st) st = mrec_gemm(ctx, m->bias_grad[k], m->ones, m->dy, NULL, 1, 0, 0, 0, 1, d, I, I, d, d);
        if (!st) st = mrec_gemm(ctx, m->w_grad[k], m->dy, m->feat[k], NULL, 1, 0, 1, 0, d, f, I, d, f, f);
        if (!st) st = mrec_gemm(ctx, m->feat_grad[k], m->dy, m->w[k], NULL, 1, 0, 0, 0, I, f, d, d, f, f);
    }
    return st;
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static mrec_status lightgcnm_launch(void *self, const double **loss) {
    lightgcnm *m = self;
    mrec_status st = ops_launch(m);
    *loss = st ? NULL : m->ops.loss;
    return st;
}

static mrec_status ops_step(lightgcnm *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mrec_status st = lightgcnm_stage(m, u, i, j, n);
    return st ? st : ops_launch(m);
}

static const double *lightgcnm_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lightgcnm *m = self;
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_step(m, u, i, j, n) : step(m, &m->host_loss, u, i, j, n);
    return m->status ? NULL : m->use_ops ? m->ops.loss : &m->host_loss;
}

static double lightgcnm_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lightgcnm *m = self;
    return mrec_step_loss(m->ctx, &m->status, lightgcnm_step(self, u, i, j, n));
}

static mrec_status lightgcnm_prepare(void *self) { return propagate(self); }

static mrec_status lightgcnm_score(void *self, int u0, int n, float *scores) {
    lightgcnm *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status lightgcnm_embeddings(void *self, float *users, float *items) {
    lightgcnm *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->dim);
}

static void lightgcnm_destroy(void *self) {
    lightgcnm *m = self;
    mrec_bpr_ops_free(&m->ops);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m);
}

/* Every array, and on a GPU the graph's copy, from one allocation (a measuring arena counts them). */
static void carve(lightgcnm *m, mrec_arena *a, int with_graph) {
    size_t d = (size_t)m->dim, nu = (size_t)m->n_users * d, ni = (size_t)m->n_items * d, total = (size_t)m->n_nodes * d;
    m->user = mrec_arena_alloc(a, nu * 4), m->user_grad = mrec_arena_alloc(a, nu * 4);
    float **big[6] = {&m->ego, &m->final, &m->dfinal, &m->dego, &m->a, &m->b};
    for (int k = 0; k < 6; k++) *big[k] = mrec_arena_alloc(a, total * 4);
    m->dy = mrec_arena_alloc(a, ni * 4), m->ones = mrec_arena_alloc(a, (size_t)m->n_items * 4);
    for (int k = 0; k < m->n_mod; k++) {
        size_t nf = (size_t)m->n_items * m->feat_dim[k], nw = (size_t)m->feat_dim[k] * d;
        m->feat[k] = mrec_arena_alloc(a, nf * 4), m->feat_grad[k] = mrec_arena_alloc(a, nf * 4);
        m->w[k] = mrec_arena_alloc(a, nw * 4), m->w_grad[k] = mrec_arena_alloc(a, nw * 4);
        m->bias[k] = mrec_arena_alloc(a, d * 4), m->bias_grad[k] = mrec_arena_alloc(a, d * 4);
        m->z[k] = mrec_arena_alloc(a, ni * 4), m->y[k] = mrec_arena_alloc(a, ni * 4);
        m->norm[k] = mrec_arena_alloc(a, (size_t)m->n_items * 4);
    }
    if (with_graph) m->adj = mrec_graph_carve(a, m->n_nodes, m->n_nodes, m->graph->row_ptr[m->n_nodes], m->ctx->device);
}

mrec_status mrec_lightgcnm_use_ops(mrec_model *model) {
    lightgcnm *m = model->self;
    m->use_ops = 1; /* the arrays are shared with the host path; the graph is the host's */
    model->stage = lightgcnm_stage, model->launch = lightgcnm_launch;
    return MREC_OK;
}

mrec_status mrec_lightgcnm_create(mrec_model *out, const mrec_graph *graph, int n_users, int n_items, const float *const *feat,
                                  const int *feat_dim, int n_modalities, int sum, int dim, int layers, float l_w, mrec_rng *rng,
                                  mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    if (graph->n_nodes != n_users + n_items || layers < 0 || layers > 16 || dim < 1 || n_modalities < 1 ||
        n_modalities > MAX_MODALITIES)
        return mrec_fail(MREC_ERR_ARG, "lightgcnm: graph of %d nodes for %d users + %d items, %d layers, %d modalities (1 to %d)",
                         graph->n_nodes, n_users, n_items, layers, n_modalities, MAX_MODALITIES);
    lightgcnm *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "lightgcnm");
    m->graph = graph, m->adj = mrec_graph_csr(graph), m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items;
    m->dim = dim, m->layers = layers, m->n_mod = n_modalities, m->sum = sum, m->l_w = l_w, m->ctx = ctx;
    for (int k = 0; k < n_modalities; k++) m->feat_dim[k] = feat_dim[k];
    int on_gpu = ctx->device != MREC_DEVICE_CPU;
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, on_gpu);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        free(m);
        return st;
    }
    carve(m, &m->mem, on_gpu);
    /* the values are drawn on the host in any case, so a seed gives the same start on every device:
     * users xavier-uniform; projections as nn.Linear's default, U(-1/sqrt(f), 1/sqrt(f)) for weight and bias */
    size_t nu = (size_t)n_users * dim, most = nu > (size_t)n_items ? nu : (size_t)n_items;
    for (int k = 0; k < n_modalities; k++) most = (size_t)feat_dim[k] * dim > most ? (size_t)feat_dim[k] * dim : most;
    float *h = malloc(most * 4);
    if (!h) st = mrec_fail(MREC_ERR_NOMEM, "lightgcnm: %zu initial values", most);
    double bu = sqrt(6.0 / (n_users + dim));
    for (size_t k = 0; !st && k < nu; k++) h[k] = (float)(bu * (2.0 * mrec_rng_uniform(rng) - 1.0));
    if (!st) st = mrec_copy_to_device(ctx, m->user, h, nu * 4);
    for (int k = 0; k < n_modalities && !st; k++) {
        double bw = 1.0 / sqrt((double)feat_dim[k]);
        size_t nw = (size_t)feat_dim[k] * dim;
        for (size_t e = 0; e < nw; e++) h[e] = (float)(bw * (2.0 * mrec_rng_uniform(rng) - 1.0));
        st = mrec_copy_to_device(ctx, m->w[k], h, nw * 4);
        for (int e = 0; e < dim; e++) h[e] = (float)(bw * (2.0 * mrec_rng_uniform(rng) - 1.0));
        if (!st) st = mrec_copy_to_device(ctx, m->bias[k], h, (size_t)dim * 4);
        if (!st) st = mrec_copy_to_device(ctx, m->feat[k], feat[k], (size_t)n_items * feat_dim[k] * 4);
    }
    for (int e = 0; !st && e < n_items; e++) h[e] = 1.0f;
    if (!st) st = mrec_copy_to_device(ctx, m->ones, h, (size_t)n_items * 4);
    free(h);
    if (!st && on_gpu) {
        mrec_csr src = mrec_graph_csr(graph);
        st = mrec_graph_upload(ctx, &m->adj, &src); /* Â is symmetric: no transposed copy */
        m->use_ops = 1;
    }
    if (!st) st = propagate(m);
    if (st) {
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
    out->loss_grad = lightgcnm_loss_grad, out->step = lightgcnm_step, out->prepare = lightgcnm_prepare, out->score = lightgcnm_score;
    out->destroy = lightgcnm_destroy;
    out->embed_dim = m->dim, out->embeddings = lightgcnm_embeddings;
    if (m->use_ops) out->stage = lightgcnm_stage, out->launch = lightgcnm_launch;
    return MREC_OK;
}
