/* freedom.c: FREEDOM as MMRec defines it (src/models/freedom.py).
 *
 *   S       = the frozen item-item kNN graph (mrec_graph_knn), built once
 *   Â_t     = the user-item graph of epoch t: a sample of int(E (1 - p))
 *             training edges, without replacement, with probability
 *             proportional to 1 / sqrt(d_u d_i) (degree-sensitive pruning),
 *             renormalized over what is kept; p = 0 keeps the full graph
 *   E_k     = Â_t E_{k-1}, F = mean(E_0 .. E_L)   (LightGCN, E_0 = [U; I])
 *   item(i) = F_i + (S I)_i,  user(u) = F_u
 *   z_m     = X_m W_m^T + b_m     for each modality m (X_m trainable, as
 *             MMRec's nn.Embedding.from_pretrained(freeze=False))
 *   loss    = bpr(user, item) + reg * sum_m bpr(user, z_m)
 *   bpr(a, b) = -mean log sigmoid(<a_u, b_i+> - <a_u, b_i->)
 * Scoring uses the full normalized graph. U and I start xavier-uniform;
 * W_m and b_m as torch.nn.Linear (uniform in +-1/sqrt(F_m)).
 *
 * Two paths compute this: the host loops (a CPU context), and the op path (a
 * GPU context always, a CPU one after mrec_freedom_use_ops) with every array
 * and the graphs on the context's device (each epoch's pruned graph is drawn
 * on the host, as before, and copied there). A batch's rows form tables the
 * BPR step of bpr_ops.c scores: [F_u ; F_i + h_i ; F_j + h_j] for the main
 * loss, [F_u ; z_i ; z_j] for each modality's; their gradient rows are then
 * scattered to the tables in batch order.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MOD 4

typedef struct {
    int n_users, n_items, n_nodes, dim, layers, n_mod;
    float reg, dropout;
    const mrec_graph *full, *item_graph;  /* the full Â and S */
    mrec_graph pruned;                    /* this epoch's Â */
    const mrec_user_items *train;
    int32_t *pair_user, *pair_item;       /* (E) the training edges */
    double *edge_weight;                  /* (E) 1 / sqrt(d_u d_i) */
    int64_t n_edges;
    mrec_rng rng;                         /* the pruning's own stream */
    float *ego, *ego_grad;                /* (N, d) */
    float *feat[MAX_MOD], *feat_grad[MAX_MOD]; /* (n_items, F_m) */
    float *w[MAX_MOD], *w_grad[MAX_MOD], *b[MAX_MOD], *b_grad[MAX_MOD];
    int fdim[MAX_MOD];
    float *final, *a, *c, *dfinal, *h;    /* (N, d) and (n_items, d) */
    float *fb, *z, *dz;                   /* batch: (2n, F_max), (2n, d) */
    float *pos, *neg, *dx;
    int cap, f_max;
    mrec_context *ctx;
    mrec_status status;                   /* of the last loss_grad */
    double host_loss;                     /* the last batch's loss on the host path */
    /* the op path */
    int use_ops, on_device;               /* on_device: the arrays above are carved from mem */
    mrec_arena mem, batch;                /* on the context's device: the model's arrays and graphs; a batch's */
    mrec_csr full_ops, pruned_ops, s_ops, s_t; /* Â, this epoch's Â, S and S^T there */
    int ops_cap;
    float *T, *T2, *mixed, *mixed2, *rows, *dfb; /* (3 cap, d) x 4, (2 cap, d), (2 cap, F_max) */
    mrec_batch_rows nodes, items;         /* u, U + i, U + j; i, j */
    mrec_bpr_ops bpr;
} freedom;

static const mrec_graph *train_graph(const freedom *m) { return m->dropout > 0 ? &m->pruned : m->full; }

/* final = mean of E0..EL over g; h = S I */
static mrec_status propagate(freedom *m, const mrec_graph *g) {
    if (m->use_ops) { /* the device's copy of g */
        const mrec_csr *adj = g == m->full ? &m->full_ops : &m->pruned_ops;
        mrec_status st = mrec_csr_layer_mean(m->final, m->ego, adj, m->layers, m->dim, m->a, m->c, m->ctx);
        return st ? st : mrec_spmm(m->ctx, m->h, &m->s_ops, m->ego + (size_t)m->n_users * m->dim, m->dim, 0);
    }
    mrec_status st = mrec_graph_layer_mean(m->final, m->ego, g, m->layers, m->dim, m->a, m->c, m->ctx);
    mrec_csr s = mrec_graph_csr(m->item_graph);
    return st ? st : mrec_spmm(m->ctx, m->h, &s, m->ego + (size_t)m->n_users * m->dim, m->dim, 0);
}

static int ensure_batch(freedom *m, int n) {
    if (n <= m->cap) return 1;
    free(m->fb), free(m->z), free(m->dz), free(m->pos), free(m->neg), free(m->dx);
    m->fb = malloc(sizeof(float) * 2 * (size_t)n * m->f_max);
    m->z = malloc(sizeof(float) * 2 * (size_t)n * m->dim), m->dz = malloc(sizeof(float) * 2 * (size_t)n * m->dim);
    m->pos = malloc(sizeof(float) * (size_t)n), m->neg = malloc(sizeof(float) * (size_t)n), m->dx = malloc(sizeof(float) * (size_t)n);
    m->cap = m->fb && m->z && m->dz && m->pos && m->neg && m->dx ? n : 0;
    return m->cap > 0;
}

static mrec_status batch_loss_grad(freedom *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j,
                                   int n) {
    int d = m->dim, U = m->n_users;
    size_t total = (size_t)m->n_nodes * d;
    mrec_context *ctx = m->ctx;
    if (!ensure_batch(m, n)) return mrec_fail(MREC_ERR_NOMEM, "freedom: a batch of %d", n);
    mrec_status st = propagate(m, train_graph(m));
    if (st) return st;
    /* item vectors of the batch: F_i + h_i */
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d, *fj = m->final + (size_t)(U + j[b]) * d;
        const float *hi = m->h + (size_t)i[b] * d, *hj = m->h + (size_t)j[b] * d;
        float sp = 0, sn = 0;
        for (int k = 0; k < d; k++) sp += fu[k] * (fi[k] + hi[k]), sn += fu[k] * (fj[k] + hj[k]);
        m->pos[b] = sp, m->neg[b] = sn;
    }
    double loss = mrec_bpr_softplus_loss(m->dx, m->pos, m->neg, n);
    memset(m->dfinal, 0, total * sizeof(float));
    float *dh = m->c; /* (n_items, d): d loss / d h, free until the backward propagation */
    memset(dh, 0, sizeof(float) * (size_t)m->n_items * d);
    for (int b = 0; b < n; b++) {
        const float *fu = m->final + (size_t)u[b] * d, *fi = m->final + (size_t)(U + i[b]) * d, *fj = m->final + (size_t)(U + j[b]) * d;
        const float *hi = m->h + (size_t)i[b] * d, *hj = m->h + (size_t)j[b] * d;
        float *gu = m->dfinal + (size_t)u[b] * d, *gi = m->dfinal + (size_t)(U + i[b]) * d, *gj = m->dfinal + (size_t)(U + j[b]) * d;
        float *dhi = dh + (size_t)i[b] * d, *dhj = dh + (size_t)j[b] * d, g = m->dx[b];
        for (int k = 0; k < d; k++) {
            gu[k] += g * (fi[k] + hi[k] - fj[k] - hj[k]);
            gi[k] += g * fu[k], dhi[k] += g * fu[k];
            gj[k] -= g * fu[k], dhj[k] -= g * fu[k];
        }
    }
    /* the modality losses: z_m rows for the positives (0..n-1) and negatives (n..2n-1) */
    for (int mo = 0; mo < m->n_mod; mo++) {
        int F = m->fdim[mo];
        for (int r = 0; r < 2 * n; r++)
            memcpy(m->fb + (size_t)r * F, m->feat[mo] + (size_t)(r < n ? i[r] : j[r - n]) * F, sizeof(float) * (size_t)F);
        if ((st = mrec_gemm(ctx, m->z, m->fb, m->w[mo], m->b[mo], 1, 0, 0, 1, 2 * n, d, F, F, F, d))) return st;
        for (int b = 0; b < n; b++) {
            const float *fu = m->final + (size_t)u[b] * d, *zi = m->z + (size_t)b * d, *zj = m->z + (size_t)(n + b) * d;
            float sp = 0, sn = 0;
            for (int k = 0; k < d; k++) sp += fu[k] * zi[k], sn += fu[k] * zj[k];
            m->pos[b] = sp, m->neg[b] = sn;
        }
        loss += m->reg * mrec_bpr_softplus_loss(m->dx, m->pos, m->neg, n);
        for (int b = 0; b < n; b++) {
            const float *fu = m->final + (size_t)u[b] * d, *zi = m->z + (size_t)b * d, *zj = m->z + (size_t)(n + b) * d;
            float *gu = m->dfinal + (size_t)u[b] * d, *dzi = m->dz + (size_t)b * d, *dzj = m->dz + (size_t)(n + b) * d;
            float g = m->reg * m->dx[b];
            for (int k = 0; k < d; k++) gu[k] += g * (zi[k] - zj[k]), dzi[k] = g * fu[k], dzj[k] = -g * fu[k];
        }
        /* dW = dz^T fb, db = column sums of dz, dX rows += dz W */
        if ((st = mrec_gemm(ctx, m->w_grad[mo], m->dz, m->fb, NULL, 1, 0, 1, 0, d, F, 2 * n, d, F, F))) return st;
        memset(m->b_grad[mo], 0, sizeof(float) * (size_t)d);
        for (int r = 0; r < 2 * n; r++)
            for (int k = 0; k < d; k++) m->b_grad[mo][k] += m->dz[(size_t)r * d + k];
        if ((st = mrec_gemm(ctx, m->fb, m->dz, m->w[mo], NULL, 1, 0, 0, 0, 2 * n, F, d, d, F, F))) return st;
        memset(m->feat_grad[mo], 0, sizeof(float) * (size_t)m->n_items * F);
        for (int r = 0; r < 2 * n; r++) {
            float *gx = m->feat_grad[mo] + (size_t)(r < n ? i[r] : j[r - n]) * F;
            for (int f = 0; f < F; f++) gx[f] += m->fb[(size_t)r * F + f];
        }
    }
    /* dE0 = sum_k Â^k dF / (L + 1), then the item rows get S^T dh */
    mrec_csr s = mrec_graph_csr(m->item_graph);
    if ((st = mrec_spmm(ctx, m->h, &s, dh, d, 1))) return st; /* h is free now */
    if ((st = mrec_graph_layer_mean_back(m->ego_grad, m->dfinal, train_graph(m), 1, m->layers, d, m->a, m->c, ctx))) return st;
    if ((st = mrec_add(ctx, m->ego_grad + (size_t)U * d, m->ego_grad + (size_t)U * d, m->h, (int64_t)m->n_items * d)))
        return st;
    *loss_out = loss;
    return MREC_OK;
}

/* ---- the op path ---- */

static void carve_batch(freedom *m, mrec_arena *a) {
    size_t c = (size_t)m->ops_cap, d = (size_t)m->dim;
    m->T = mrec_arena_alloc(a, sizeof(float) * 3 * c * d), m->T2 = mrec_arena_alloc(a, sizeof(float) * 3 * c * d);
    m->mixed = mrec_arena_alloc(a, sizeof(float) * 3 * c * d), m->mixed2 = mrec_arena_alloc(a, sizeof(float) * 3 * c * d);
    m->rows = mrec_arena_alloc(a, sizeof(float) * 2 * c * d);
    m->fb = mrec_arena_alloc(a, sizeof(float) * 2 * c * (size_t)m->f_max), m->dfb = mrec_arena_alloc(a, sizeof(float) * 2 * c * (size_t)m->f_max);
}

/* Buffers for batches of up to n triples, grown (not per batch) when a batch is larger than any before. */
static mrec_status ensure_ops_batch(freedom *m, int n) {
    if (n <= m->ops_cap) return MREC_OK;
    mrec_context *ctx = m->ctx;
    mrec_arena_release(&m->batch, ctx->cuda);
    m->ops_cap = n;
    mrec_arena measure = mrec_arena_measure();
    carve_batch(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->batch, measure.peak, ctx->device, ctx->cuda);
    if (!st) carve_batch(m, &m->batch);
    else m->ops_cap = 0;
    return st;
}

/* batch_loss_grad through the op entries, in the trainer's two halves (mrec_model.stage, .launch): the host's part
 * (buffers grown; the batch's nodes, its items, and T's own rows b, n + b, 2n + b as the BPR step's ids, checked and
 * sent up), then the launches. */
static mrec_status freedom_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    freedom *m = self;
    mrec_context *ctx = m->ctx;
    const int32_t *uij[3] = {u, i, j};
    const int node_off[3] = {0, m->n_users, m->n_users}, item_off[2] = {0, 0};
    mrec_status st = ensure_ops_batch(m, n);
    if (!st) st = mrec_batch_rows_stage(&m->nodes, ctx, m->n_nodes, 3, uij, node_off, n);
    if (!st) st = mrec_batch_rows_stage(&m->items, ctx, m->n_items, 2, uij + 1, item_off, n);
    const int32_t *row = m->items.h_iota;
    return st ? st : mrec_bpr_ops_stage(&m->bpr, ctx, row, row, row + n, n, n, 3 * m->ops_cap, m->dim);
}

static mrec_status ops_launch(freedom *m) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, n = m->bpr.n;
    size_t nd = (size_t)n * d;
    mrec_context *ctx = m->ctx;
    mrec_status st = propagate(m, train_graph(m));
    if (!st) st = mrec_batch_rows_index(&m->nodes);
    if (!st) st = mrec_batch_rows_index(&m->items);
    /* T = [F_u ; F_i + h_i ; F_j + h_j] */
    if (!st) st = mrec_embedding_checked(ctx, m->T, m->final, m->nodes.ids, 3 * n, N, d);
    if (!st) st = mrec_embedding_checked(ctx, m->rows, m->h, m->items.ids, 2 * n, I, d);
    if (!st) st = mrec_add(ctx, m->T + nd, m->T + nd, m->rows, 2 * (int64_t)nd);
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS, .weight = 1};
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->T, m->T);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->mixed, m->T, 1, 0);
    if (st) return st;
    spec.weight = m->reg, spec.accumulate = 1; /* the modality terms add reg times theirs */
    /* the modality losses: T2 = [F_u ; z_i ; z_j] */
    for (int mo = 0; mo < m->n_mod && !st; mo++) {
        int F = m->fdim[mo];
        float *dz = m->mixed2 + nd; /* the z rows' gradients, (2n, d) */
        st = mrec_embedding_checked(ctx, m->fb, m->feat[mo], m->items.ids, 2 * n, I, F);
        if (!st) st = mrec_copy_rows(ctx, m->T2, d, m->T, d, n, d);
        if (!st) st = mrec_gemm(ctx, m->T2 + nd, m->fb, m->w[mo], m->b[mo], 1, 0, 0, 1, 2 * n, d, F, F, F, d);
        if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->T2, m->T2);
        if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
        if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->mixed2, m->T2, 1, 0);
        /* the users' rows join the main loss's; dW = dz^T fb, db = ones^T dz, dX rows = dz W scattered */
        if (!st) st = mrec_add(ctx, m->mixed, m->mixed, m->mixed2, (int64_t)nd);
        if (!st) st = mrec_gemm(ctx, m->w_grad[mo], dz, m->fb, NULL, 1, 0, 1, 0, d, F, 2 * n, d, F, F);
        if (!st) st = mrec_gemm(ctx, m->b_grad[mo], m->items.ones, dz, NULL, 1, 0, 0, 0, 1, d, 2 * n, 2 * n, d, d);
        if (!st) st = mrec_gemm(ctx, m->dfb, dz, m->w[mo], NULL, 1, 0, 0, 0, 2 * n, F, d, d, F, F);
        if (!st) st = mrec_batch_rows_scatter(&m->items, m->feat_grad[mo], m->dfb, F);
    }
    /* dF = the batch's rows scattered; dh = the item rows'; dE0 = sum_k Â^k dF / (L + 1), item rows + S^T dh */
    float *dh = m->c; /* free until the backward propagation */
    if (!st) st = mrec_batch_rows_scatter(&m->nodes, m->dfinal, m->mixed, d);
    if (!st) st = mrec_batch_rows_scatter(&m->items, dh, m->mixed + nd, d);
    if (!st) st = mrec_spmm(ctx, m->h, &m->s_ops, dh, d, 1);
    const mrec_csr *adj = m->dropout > 0 ? &m->pruned_ops : &m->full_ops;
    if (!st) st = mrec_csr_layer_mean_back(m->ego_grad, m->dfinal, adj, 1, m->layers, d, m->a, m->c, ctx);
    if (!st) st = mrec_add(ctx, m->ego_grad + (size_t)U * d, m->ego_grad + (size_t)U * d, m->h, (int64_t)I * d);
    return st;
}

static mrec_status freedom_launch(void *self, const double **loss) {
    freedom *m = self;
    mrec_status st = ops_launch(m);
    *loss = st ? NULL : m->bpr.loss;
    return st;
}

static mrec_status ops_loss_grad(freedom *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mrec_status st = freedom_stage(m, u, i, j, n);
    return st ? st : ops_launch(m);
}

/* The batch's step; its loss where it was left (the host's own loss on the host path). */
static const double *freedom_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    freedom *m = self;
    m->host_loss = NAN;
    m->status = m->use_ops ? ops_loss_grad(m, u, i, j, n) : batch_loss_grad(m, &m->host_loss, u, i, j, n);
    return m->status ? NULL : m->use_ops ? m->bpr.loss : &m->host_loss;
}

static double freedom_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    freedom *m = self;
    return mrec_step_loss(m->ctx, &m->status, freedom_step(self, u, i, j, n));
}

/* Degree-sensitive pruning: keys log(u) / w, the largest int(E (1 - p)) kept
 * (Efraimidis-Spirakis: a weighted sample without replacement). */
typedef struct {
    double key;
    int64_t edge;
} edge_key;

/* largest key first; ties (all but impossible for random keys) by edge */
static int by_key_desc(const void *a, const void *b) {
    const edge_key *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? 1 : -1;
    return (x->edge > y->edge) - (x->edge < y->edge);
}
static int by_edge(const void *a, const void *b) {
    const edge_key *x = a, *y = b;
    return (x->edge > y->edge) - (x->edge < y->edge);
}

static mrec_status freedom_epoch_start(void *self) {
    freedom *m = self;
    if (m->dropout <= 0) return MREC_OK;
    int64_t E = m->n_edges, keep = (int64_t)(E * (1.0 - m->dropout));
    edge_key *order = malloc(sizeof *order * (size_t)(E + 1));
    int32_t *ku = malloc(sizeof *ku * (size_t)(keep + 1)), *ki = malloc(sizeof *ki * (size_t)(keep + 1));
    mrec_status st = order && ku && ki ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "freedom: pruning %lld edges", (long long)E);
    for (int64_t e = 0; !st && e < E; e++) {
        double r = mrec_rng_uniform(&m->rng);
        order[e] = (edge_key){log(r > 0 ? r : 1e-300) / m->edge_weight[e], e};
    }
    if (!st) {
        qsort(order, (size_t)E, sizeof *order, by_key_desc);
        qsort(order, (size_t)keep, sizeof *order, by_edge); /* edge order keeps the user rows sorted */
        for (int64_t e = 0; e < keep; e++) ku[e] = m->pair_user[order[e].edge], ki[e] = m->pair_item[order[e].edge];
        mrec_graph_free(&m->pruned);
        st = mrec_graph_from_pairs(&m->pruned, m->n_users, m->n_items, ku, ki, keep);
    }
    free(order), free(ku), free(ki);
    if (!st && m->use_ops) { /* into the device's copy, sized for the full graph (the pruned one is a part of it) */
        const mrec_graph *g = &m->pruned;
        int64_t nnz = g->row_ptr[g->n_nodes];
        if (nnz > m->full->row_ptr[m->n_nodes]) return mrec_fail(MREC_ERR_ARG, "freedom: a pruned graph larger than the full one");
        mrec_csr src = mrec_graph_csr(g);
        st = mrec_graph_upload(m->ctx, &m->pruned_ops, &src);
    }
    return st;
}

static mrec_status freedom_prepare(void *self) {
    freedom *m = self;
    mrec_status st = propagate(m, m->full);
    if (st) return st;
    /* the item vectors F_i + h_i, in place in final */
    return mrec_add(m->ctx, m->final + (size_t)m->n_users * m->dim, m->final + (size_t)m->n_users * m->dim, m->h,
                    (int64_t)m->n_items * m->dim);
}

static mrec_status freedom_score(void *self, int u0, int n, float *scores) {
    freedom *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status freedom_embeddings(void *self, float *users, float *items) {
    freedom *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->dim);
}

static void freedom_destroy(void *self) {
    freedom *m = self;
    mrec_graph_free(&m->pruned);
    free(m->pair_user), free(m->pair_item), free(m->edge_weight);
    mrec_bpr_ops_free(&m->bpr);
    mrec_batch_rows_free(&m->nodes), mrec_batch_rows_free(&m->items);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->use_ops) m->fb = NULL; /* carved from batch */
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    if (m->on_device) {
        free(m->pos), free(m->neg), free(m->dx);
        free(m);
        return;
    }
    free(m->ego), free(m->ego_grad), free(m->final), free(m->a), free(m->c), free(m->dfinal), free(m->h);
    for (int k = 0; k < m->n_mod; k++) free(m->feat[k]), free(m->feat_grad[k]), free(m->w[k]), free(m->w_grad[k]), free(m->b[k]), free(m->b_grad[k]);
    free(m->fb), free(m->z), free(m->dz), free(m->pos), free(m->neg), free(m->dx);
    free(m);
}

/* The op path's memory on the context's device: with `all`, the model's arrays too (a GPU context); always the
 * graphs: Â, room for each epoch's pruned Â, S and its transpose (the GPU's S^T products). */
static void carve(freedom *m, mrec_arena *a, int all, int64_t **ptr, int32_t **col, float **val) {
    size_t nd = sizeof(float) * (size_t)m->n_nodes * m->dim, id = sizeof(float) * (size_t)m->n_items * m->dim;
    if (all) {
        m->ego = mrec_arena_alloc(a, nd), m->ego_grad = mrec_arena_alloc(a, nd), m->final = mrec_arena_alloc(a, nd);
        m->a = mrec_arena_alloc(a, nd), m->c = mrec_arena_alloc(a, nd), m->dfinal = mrec_arena_alloc(a, nd), m->h = mrec_arena_alloc(a, id);
        for (int k = 0; k < m->n_mod; k++) {
            size_t f = sizeof(float) * (size_t)m->n_items * m->fdim[k], w = sizeof(float) * (size_t)m->dim * m->fdim[k];
            m->feat[k] = mrec_arena_alloc(a, f), m->feat_grad[k] = mrec_arena_alloc(a, f);
            m->w[k] = mrec_arena_alloc(a, w), m->w_grad[k] = mrec_arena_alloc(a, w);
            m->b[k] = mrec_arena_alloc(a, sizeof(float) * m->dim), m->b_grad[k] = mrec_arena_alloc(a, sizeof(float) * m->dim);
        }
    }
    /* 0: Â, 1: the pruned Â (Â's size), 2: S, 3: S^T */
    const mrec_graph *g[4] = {m->full, m->full, m->item_graph, m->item_graph};
    for (int k = 0; k < 4; k++) {
        size_t rows = (size_t)g[k]->n_nodes + 1, nnz = (size_t)g[k]->row_ptr[g[k]->n_nodes] + 1;
        ptr[k] = mrec_arena_alloc(a, sizeof(int64_t) * rows), col[k] = mrec_arena_alloc(a, sizeof(int32_t) * nnz);
        val[k] = mrec_arena_alloc(a, sizeof(float) * nnz);
    }
}

/* Reserves the op path's memory and copies the graphs there (S^T built here). With `all`, the host arrays' values
 * (ego, features, W, b) move there and the host arrays are freed. */
static mrec_status ops_setup(freedom *m, int all) {
    mrec_context *ctx = m->ctx;
    int64_t *ptr[4];
    int32_t *col[4];
    float *val[4];
    float *host[1 + 3 * MAX_MOD] = {0};
    size_t bytes[1 + 3 * MAX_MOD] = {0};
    int n_host = 0;
    if (all) { /* what keeps its values; the rest is scratch or written before it is read */
        host[n_host] = m->ego, bytes[n_host++] = sizeof(float) * (size_t)m->n_nodes * m->dim;
        for (int k = 0; k < m->n_mod; k++) {
            host[n_host] = m->feat[k], bytes[n_host++] = sizeof(float) * (size_t)m->n_items * m->fdim[k];
            host[n_host] = m->w[k], bytes[n_host++] = sizeof(float) * (size_t)m->dim * m->fdim[k];
            host[n_host] = m->b[k], bytes[n_host++] = sizeof(float) * (size_t)m->dim;
        }
        free(m->ego_grad), free(m->final), free(m->a), free(m->c), free(m->dfinal), free(m->h);
        for (int k = 0; k < m->n_mod; k++) free(m->feat_grad[k]), free(m->w_grad[k]), free(m->b_grad[k]);
    }
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, all, ptr, col, val);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (!st) {
        carve(m, &m->mem, all, ptr, col, val);
        if (all) m->on_device = 1;
    } else if (all) { /* nothing is left for destroy to free twice */
        m->ego = m->ego_grad = m->final = m->a = m->c = m->dfinal = m->h = NULL;
        for (int k = 0; k < m->n_mod; k++) m->feat[k] = m->feat_grad[k] = m->w[k] = m->w_grad[k] = m->b[k] = m->b_grad[k] = NULL;
    }
    const float *dev[1 + 3 * MAX_MOD];
    if (!st && all) {
        int at = 0;
        dev[at++] = m->ego;
        for (int k = 0; k < m->n_mod; k++) dev[at++] = m->feat[k], dev[at++] = m->w[k], dev[at++] = m->b[k];
        for (int k = 0; k < n_host && !st; k++) st = mrec_copy_to_device(ctx, (float *)dev[k], host[k], bytes[k]);
    }
    for (int k = 0; k < n_host; k++) free(host[k]);
    /* S^T on the host, then the three graphs */
    mrec_graph st_host = {0};
    if (!st) st = mrec_graph_transpose(&st_host, m->item_graph);
    /* the pruned graph's room starts as the full graph: a step before the first epoch_start reads a graph */
    const mrec_graph *g[4] = {m->full, m->full, m->item_graph, &st_host};
    for (int k = 0; k < 4 && !st; k++) {
        int64_t nnz = g[k]->row_ptr[g[k]->n_nodes];
        st = mrec_copy_to_device(ctx, ptr[k], g[k]->row_ptr, sizeof(int64_t) * ((size_t)g[k]->n_nodes + 1));
        if (!st) st = mrec_copy_to_device(ctx, col[k], g[k]->col, sizeof(int32_t) * (size_t)nnz);
        if (!st) st = mrec_copy_to_device(ctx, val[k], g[k]->val, sizeof(float) * (size_t)nnz);
    }
    mrec_graph_free(&st_host);
    if (st) return st;
    int N = m->n_nodes, I = m->n_items;
    m->full_ops = (mrec_csr){.n_rows = N, .n_cols = N, .row_ptr = ptr[0], .col = col[0], .val = val[0], .device = ctx->device};
    m->pruned_ops = (mrec_csr){.n_rows = N, .n_cols = N, .row_ptr = ptr[1], .col = col[1], .val = val[1], .device = ctx->device};
    m->s_ops = (mrec_csr){.n_rows = I, .n_cols = I, .row_ptr = ptr[2], .col = col[2], .val = val[2], .device = ctx->device};
    m->s_t = (mrec_csr){.n_rows = I, .n_cols = I, .row_ptr = ptr[3], .col = col[3], .val = val[3], .device = ctx->device};
    m->s_ops.transposed = &m->s_t;
    return MREC_OK;
}

mrec_status mrec_freedom_use_ops(mrec_model *model) {
    freedom *m = model->self;
    if (m->use_ops) return MREC_OK;
    mrec_status st = ops_setup(m, 0);
    if (st) return st;
    /* the host path's batch buffers give way to the op path's; this epoch's pruned graph, if any, joins the device */
    free(m->fb), free(m->z), free(m->dz);
    m->fb = m->z = m->dz = NULL, m->cap = 0;
    m->use_ops = 1;
    model->stage = freedom_stage, model->launch = freedom_launch;
    if (m->dropout > 0 && m->pruned.row_ptr) {
        mrec_csr src = mrec_graph_csr(&m->pruned);
        st = mrec_graph_upload(m->ctx, &m->pruned_ops, &src);
    }
    return st;
}

mrec_status mrec_freedom_create(mrec_model *out, const mrec_graph *full, const mrec_graph *item_graph,
                                const mrec_user_items *train, const mrec_features *feat, int n_mod, int dim, int layers,
                                float reg, float dropout, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = MREC_OK;
    int U = train->n_rows, I = train->n_cols;
    if (full->n_nodes != U + I || item_graph->n_nodes != I || n_mod < 1 || n_mod > MAX_MOD || layers < 0 || layers > 16 ||
        !(dropout >= 0 && dropout < 1))
        return mrec_fail(MREC_ERR_ARG, "freedom: %d modalities (1..%d), %d layers, dropout %g (0 <= p < 1)", n_mod, MAX_MOD, layers,
                         dropout);
    freedom *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "freedom");
    m->n_users = U, m->n_items = I, m->n_nodes = U + I, m->dim = dim, m->layers = layers, m->n_mod = n_mod;
    m->reg = reg, m->dropout = dropout, m->full = full, m->item_graph = item_graph, m->train = train, m->ctx = ctx;
    m->rng.state = mrec_rng_next(rng);
    size_t total = (size_t)m->n_nodes * dim;
    m->ego = malloc(total * 4), m->ego_grad = calloc(total, 4), m->final = malloc(total * 4), m->a = malloc(total * 4);
    m->c = malloc(total * 4), m->dfinal = malloc(total * 4), m->h = malloc(sizeof(float) * (size_t)I * dim);
    int ok = m->ego && m->ego_grad && m->final && m->a && m->c && m->dfinal && m->h;
    for (int k = 0; ok && k < n_mod; k++) {
        int F = m->fdim[k] = feat[k].dim;
        m->f_max = F > m->f_max ? F : m->f_max;
        m->feat[k] = malloc(sizeof(float) * (size_t)I * F), m->feat_grad[k] = calloc((size_t)I * F, 4);
        m->w[k] = malloc(sizeof(float) * (size_t)dim * F), m->w_grad[k] = calloc((size_t)dim * F, 4);
        m->b[k] = malloc(sizeof(float) * (size_t)dim), m->b_grad[k] = calloc((size_t)dim, 4);
        ok = m->feat[k] && m->feat_grad[k] && m->w[k] && m->w_grad[k] && m->b[k] && m->b_grad[k];
        if (ok) memcpy(m->feat[k], feat[k].x, sizeof(float) * (size_t)I * F);
    }
    /* the training edges and their pruning weights 1 / sqrt(d_u d_i) */
    int64_t E = train->row_ptr[U];
    m->n_edges = E;
    m->pair_user = malloc(sizeof(int32_t) * (size_t)(E + 1)), m->pair_item = malloc(sizeof(int32_t) * (size_t)(E + 1));
    m->edge_weight = malloc(sizeof(double) * (size_t)(E + 1));
    int64_t *item_deg = calloc((size_t)I + 1, sizeof *item_deg);
    ok = ok && m->pair_user && m->pair_item && m->edge_weight && item_deg;
    if (!ok) {
        free(item_deg);
        freedom_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "freedom: %d users, %d items, %d modalities", U, I, n_mod);
    }
    for (int64_t e = 0; e < E; e++) item_deg[train->col[e]]++;
    for (int u = 0; u < U; u++)
        for (int64_t e = train->row_ptr[u]; e < train->row_ptr[u + 1]; e++) {
            int64_t du = train->row_ptr[u + 1] - train->row_ptr[u];
            m->pair_user[e] = u, m->pair_item[e] = train->col[e];
            /* as MMRec's _normalize_adj_m, in float */
            m->edge_weight[e] = powf((float)du + 1e-7f, -0.5f) * powf((float)item_deg[train->col[e]] + 1e-7f, -0.5f);
        }
    free(item_deg);
    double bu = sqrt(6.0 / (U + dim)), bi = sqrt(6.0 / (I + dim));
    for (size_t k = 0; k < total; k++) m->ego[k] = (float)((k < (size_t)U * dim ? bu : bi) * (2.0 * mrec_rng_uniform(rng) - 1.0));
    for (int k = 0; k < n_mod; k++) {
        double bound = 1.0 / sqrt((double)m->fdim[k]);
        for (size_t e = 0; e < (size_t)dim * m->fdim[k]; e++) m->w[k][e] = (float)(bound * (2.0 * mrec_rng_uniform(rng) - 1.0));
        for (int e = 0; e < dim; e++) m->b[k][e] = (float)(bound * (2.0 * mrec_rng_uniform(rng) - 1.0));
    }
    /* on a GPU: the values drawn here (a seed starts alike on every device) move there with the graphs */
    if (ctx->device != MREC_DEVICE_CPU) {
        free(m->fb), free(m->z), free(m->dz);
        m->fb = m->z = m->dz = NULL;
        if (!(st = ops_setup(m, 1))) m->use_ops = 1;
        if (st) {
            freedom_destroy(m);
            return st;
        }
    }
    out->name = "FREEDOM", out->self = m;
    out->state[0] = &m->rng.state, out->n_state = 1; /* for a checkpoint */
    int p = 0;
    out->param[p] = m->ego, out->grad[p] = m->ego_grad, out->size[p++] = (int64_t)total;
    for (int k = 0; k < n_mod; k++) {
        out->param[p] = m->w[k], out->grad[p] = m->w_grad[k], out->size[p++] = (int64_t)dim * m->fdim[k];
        out->param[p] = m->b[k], out->grad[p] = m->b_grad[k], out->size[p++] = dim;
        out->param[p] = m->feat[k], out->grad[p] = m->feat_grad[k], out->size[p++] = (int64_t)I * m->fdim[k];
    }
    out->n_params = p;
    out->status = &m->status;
    out->loss_grad = freedom_loss_grad, out->step = freedom_step, out->epoch_start = freedom_epoch_start, out->prepare = freedom_prepare;
    out->score = freedom_score, out->destroy = freedom_destroy;
    out->embed_dim = m->dim, out->embeddings = freedom_embeddings;
    if (m->use_ops) out->stage = freedom_stage, out->launch = freedom_launch;
    return MREC_OK;
}
