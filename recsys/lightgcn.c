/* lightgcn.c: LightGCN as MMRec (and the authors' code) train it.
 *
 *   E0 = [U; I] (ego embeddings), E_k = Â E_{k-1} for k = 1..L,
 *   F = (E0 + E1 + ... + EL) / (L + 1),  score(u, i) = <F_u, F_i>
 *   loss = BPR on F + reg * (|E0_b(u)|_F + |E0_b(i+)|_F + |E0_b(i-)|_F) / n
 * Backward: Â is symmetric, so dE0 = (dF + Â dF + ... + Â^L dF) / (L + 1)
 * plus the regularizer's part on the batch's ego rows. Every step
 * propagates the whole graph, forward and back, as the reference does.
 *
 * The propagation runs through the op entries wherever the model runs. On
 * a CPU context the batch's scores and gradient rows are the loops below;
 * on a GPU context (or after mrec_lightgcn_use_ops) the embeddings, the
 * buffers and a copy of the graph live on the device and the batch runs
 * through the op entries too (bpr_ops.c), its loss left on the device. That
 * path comes in the trainer's two halves (stage, then launch), so that on a
 * GPU a batch's launches are one CUDA graph.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const mrec_graph *graph;
    mrec_csr adj;           /* the graph as the ops see it: itself, or its copy on the GPU */
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
    double host_loss;       /* the last batch's loss on the host path */
    int use_ops;            /* batches through the op entries */
    mrec_arena dev;         /* on a GPU: everything above of (N, d), and the graph */
    mrec_bpr_ops ops;
} lightgcn;

/* final = mean of E0..EL */
static mrec_status propagate(lightgcn *m) {
    return mrec_csr_layer_mean(m->final, m->ego, &m->adj, m->layers, m->dim, m->a, m->b, m->ctx);
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

/* The BPR part of the loss on the batch's scores; dx (n) = its derivative in pos - neg. */
static double bpr_part(const lightgcn *m, float *dx, const float *pos, const float *neg, int n) {
    /* the authors': softplus(neg - pos) = -log sigmoid(pos - neg) */
    return m->authors_loss ? mrec_bpr_softplus_loss(dx, pos, neg, n) : mrec_bpr_loss(dx, pos, neg, n);
}

/* The regularizer on the batch's ego rows from their three norms: MMRec's
 * norms, or the authors' squared norms / 2; c receives the factor of each
 * table's rows in the gradient. */
static double reg_part(const lightgcn *m, double nu, double ni, double nj, int n, float c[3]) {
    if (m->authors_loss) {
        c[0] = c[1] = c[2] = m->reg / n;
        return m->reg * (nu * nu + ni * ni + nj * nj) / 2 / n;
    }
    c[0] = nu > 0 ? (float)(m->reg / n / nu) : 0, c[1] = ni > 0 ? (float)(m->reg / n / ni) : 0;
    c[2] = nj > 0 ? (float)(m->reg / n / nj) : 0;
    return m->reg * (nu + ni + nj) / n;
}

static mrec_status host_loss_grad(lightgcn *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j,
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
    double loss = bpr_part(m, m->dx, m->pos, m->neg, n);
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
    if ((st = mrec_csr_layer_mean_back(m->ego_grad, m->dfinal, &m->adj, 1, m->layers, d, m->a, m->b, m->ctx))) return st;
    /* the regularizer on the batch's ego rows */
    float c[3];
    loss += reg_part(m, frob(m->ego, u, 0, n, d), frob(m->ego, i, U, n, d), frob(m->ego, j, U, n, d), n, c);
    for (int b = 0; b < n; b++) {
        size_t ru = (size_t)u[b] * d, ri = (size_t)(U + i[b]) * d, rj = (size_t)(U + j[b]) * d;
        for (int k = 0; k < d; k++) {
            m->ego_grad[ru + k] += c[0] * m->ego[ru + k];
            m->ego_grad[ri + k] += c[1] * m->ego[ri + k];
            m->ego_grad[rj + k] += c[2] * m->ego[rj + k];
        }
    }
    *loss_out = loss;
    return MREC_OK;
}

/* The same batch through the op entries, in the trainer's two halves (mrec_model.stage, .launch): the host's part,
 * then the launches, the loss left on the device. */
static mrec_status lightgcn_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lightgcn *m = self;
    return mrec_bpr_ops_stage(&m->ops, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->dim);
}

static mrec_status lightgcn_launch(void *self, const double **loss) {
    lightgcn *m = self;
    mrec_context *ctx = m->ctx;
    mrec_bpr_ops *o = &m->ops;
    int d = m->dim;
    mrec_bpr_spec spec = {.form = m->authors_loss ? MREC_BPR_SOFTPLUS : MREC_BPR_LOG_SIGMOID, .weight = 1,
                          .reg_form = m->authors_loss ? MREC_BPR_REG_SQUARED : MREC_BPR_REG_NORMS, .reg = m->reg};
    mrec_status st = propagate(m);
    if (!st) st = mrec_bpr_ops_gather(o, m->final, m->ego);
    if (!st) st = mrec_bpr_ops_loss(o, &spec);
    /* dF of the batch's rows, back through the layers, then the regularizer's rows (a is free by then) */
    if (!st) st = mrec_bpr_ops_scatter_at(o, m->dfinal, m->final, 1, 0);
    if (!st) st = mrec_csr_layer_mean_back(m->ego_grad, m->dfinal, &m->adj, 1, m->layers, d, m->a, m->b, ctx);
    if (!st) st = mrec_bpr_ops_scatter_at(o, m->a, m->ego, 0, MREC_BPR_PARTS_ALL);
    if (!st) st = mrec_add(ctx, m->ego_grad, m->ego_grad, m->a, (int64_t)m->n_nodes * d);
    *loss = st ? NULL : o->loss;
    return st;
}

static mrec_status ops_loss_grad(lightgcn *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    const double *loss;
    mrec_status st = lightgcn_stage(m, u, i, j, n);
    return st ? st : lightgcn_launch(m, &loss);
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static const double *lightgcn_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lightgcn *m = self;
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_loss_grad(m, u, i, j, n) : host_loss_grad(m, &m->host_loss, u, i, j, n);
    return m->status ? NULL : m->use_ops ? m->ops.loss : &m->host_loss;
}

static double lightgcn_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lightgcn *m = self;
    return mrec_step_loss(m->ctx, &m->status, lightgcn_step(self, u, i, j, n));
}

void mrec_lightgcn_use_authors_loss(mrec_model *m) { ((lightgcn *)m->self)->authors_loss = 1; }

void mrec_lightgcn_use_ops(mrec_model *m) {
    ((lightgcn *)m->self)->use_ops = 1;
    m->stage = lightgcn_stage, m->launch = lightgcn_launch;
}

static mrec_status lightgcn_prepare(void *self) { return propagate(self); }

static mrec_status lightgcn_score(void *self, int u0, int n, float *scores) {
    lightgcn *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status lightgcn_embeddings(void *self, float *users, float *items) {
    lightgcn *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->dim);
}

static void lightgcn_destroy(void *self) {
    lightgcn *m = self;
    if (m->dev.base) mrec_arena_release(&m->dev, m->ctx->cuda);
    else free(m->ego), free(m->ego_grad), free(m->final), free(m->a), free(m->b), free(m->dfinal);
    free(m->pos), free(m->neg), free(m->dx);
    mrec_bpr_ops_free(&m->ops);
    free(m);
}

/* On a GPU: the six (N, d) arrays and the graph's copy, carved from one allocation. */
static void carve(lightgcn *m, mrec_arena *a, int64_t *rp[1], int32_t *col[1], float *val[1]) {
    size_t total = (size_t)m->n_nodes * m->dim;
    int64_t nnz = m->graph->row_ptr[m->n_nodes];
    float **big[6] = {&m->ego, &m->ego_grad, &m->final, &m->a, &m->b, &m->dfinal};
    for (int k = 0; k < 6; k++) *big[k] = mrec_arena_alloc(a, total * sizeof(float));
    rp[0] = mrec_arena_alloc(a, sizeof(int64_t) * ((size_t)m->n_nodes + 1));
    col[0] = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)(nnz + 1));
    val[0] = mrec_arena_alloc(a, sizeof(float) * (size_t)(nnz + 1));
}

static mrec_status place_on_device(lightgcn *m, const float *ego) {
    mrec_context *ctx = m->ctx;
    const mrec_graph *g = m->graph;
    int64_t *rp;
    int32_t *col;
    float *val;
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, &rp, &col, &val);
    mrec_status st = mrec_arena_reserve(&m->dev, measure.peak, ctx->device, ctx->cuda);
    if (st) return st;
    carve(m, &m->dev, &rp, &col, &val);
    int64_t nnz = g->row_ptr[g->n_nodes];
    st = mrec_copy_to_device(ctx, m->ego, ego, sizeof(float) * (size_t)m->n_nodes * m->dim);
    if (!st) st = mrec_copy_to_device(ctx, rp, g->row_ptr, sizeof(int64_t) * ((size_t)g->n_nodes + 1));
    if (!st) st = mrec_copy_to_device(ctx, col, g->col, sizeof(int32_t) * (size_t)nnz);
    if (!st) st = mrec_copy_to_device(ctx, val, g->val, sizeof(float) * (size_t)nnz);
    /* Â is symmetric: its transpose product is a plain one, so no transposed copy is kept */
    mrec_csr adj = {.n_rows = g->n_nodes, .n_cols = g->n_nodes, .row_ptr = rp, .col = col, .val = val, .device = ctx->device};
    m->adj = adj;
    return st;
}

mrec_status mrec_lightgcn_create(mrec_model *out, const mrec_graph *graph, int n_users, int n_items, int dim, int layers,
                                 float reg, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    if (graph->n_nodes != n_users + n_items || layers < 0 || layers > 16)
        return mrec_fail(MREC_ERR_ARG, "lightgcn: graph of %d nodes for %d users + %d items, %d layers", graph->n_nodes,
                         n_users, n_items, layers);
    lightgcn *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "lightgcn");
    m->graph = graph, m->adj = mrec_graph_csr(graph), m->n_users = n_users, m->n_items = n_items;
    m->n_nodes = n_users + n_items, m->dim = dim, m->layers = layers, m->reg = reg, m->ctx = ctx;
    size_t total = (size_t)m->n_nodes * dim;
    /* the values are drawn on the host in any case, so a seed gives the same start on every device */
    float *ego = malloc(total * 4);
    int on_cpu = ctx->device == MREC_DEVICE_CPU;
    if (on_cpu) {
        m->ego = ego, m->ego_grad = calloc(total, 4), m->final = malloc(total * 4);
        m->a = malloc(total * 4), m->b = malloc(total * 4), m->dfinal = malloc(total * 4);
    }
    if (!ego || (on_cpu && (!m->ego_grad || !m->final || !m->a || !m->b || !m->dfinal))) {
        if (!on_cpu) free(ego);
        lightgcn_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "lightgcn: %d nodes x %d", m->n_nodes, dim);
    }
    /* xavier-uniform per table, bound sqrt(6 / (rows + d)) */
    double bu = sqrt(6.0 / (n_users + dim)), bi = sqrt(6.0 / (n_items + dim));
    for (size_t k = 0; k < total; k++) {
        double bound = k < (size_t)n_users * dim ? bu : bi;
        ego[k] = (float)(bound * (2.0 * mrec_rng_uniform(rng) - 1.0));
    }
    mrec_status st = MREC_OK;
    if (!on_cpu) {
        st = place_on_device(m, ego);
        free(ego);
        m->use_ops = 1;
    }
    if (!st) st = propagate(m);
    if (st) {
        lightgcn_destroy(m);
        return st;
    }
    out->name = "LightGCN", out->self = m, out->n_params = 1;
    out->param[0] = m->ego, out->grad[0] = m->ego_grad, out->size[0] = (int64_t)total;
    out->status = &m->status;
    out->loss_grad = lightgcn_loss_grad, out->step = lightgcn_step, out->prepare = lightgcn_prepare, out->score = lightgcn_score;
    out->destroy = lightgcn_destroy;
    out->embed_dim = dim, out->embeddings = lightgcn_embeddings;
    if (m->use_ops) mrec_lightgcn_use_ops(out);
    return MREC_OK;
}
