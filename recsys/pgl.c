/* pgl.c: PGL (Yu et al., "Mind Individual Information! Principal Graph
 * Learning for Multimedia Recommendation", AAAI 2025), its local variant, as
 * the authors' code defines it (demonph10/PGL, src/models/pgl.py, on MMRec,
 * with mode 'local'). Not the global variant (a truncated SVD of Â).
 *
 * Nodes are users then items (N = U + I); M modalities of d units each, side
 * by side in W = M d columns:
 *   z_m   = n(X_m T_m^T + t_m)          (I, d) X_m trainable (from_pretrained(freeze=False)), n: unit rows (F.normalize)
 *   E     = [P_1 .. P_M ; z_1 .. z_M]   (N, W) the users' own embedding per modality; no item id embedding
 *   S     = FREEDOM's frozen item graph (mrec_graph_knn: per modality each item's k nearest by cosine of
 *           the raw features, itself included, weight 1, D^-1/2 A D^-1/2 with D + 1e-7; visual weighted 0.1,
 *           the others sharing 0.9), built once
 *   h     = S^{item_layers} E_I
 *   C     = mean(E, Â_t E, .., Â_t^L E)   LightGCN over Â_t
 *   f     = [C_U ; C_I + h]               score(u, i) = <f_u, f_i>
 *   Â_t   = while training, the principal subgraph of the epoch: int(E_n (1 - edge_dropout)) of the E_n
 *           training edges, drawn without replacement with probability proportional to
 *           (d_u + 1e-7)^-1/2 (d_i + 1e-7)^-1/2 (torch.multinomial over the edges' normalized values:
 *           degree-sensitive), renormalized over what is kept (degrees counted there, + 1e-7);
 *           the full Â = D^-1/2 A D^-1/2 for ranking
 *   loss  = -mean log sigmoid(<f_u, f_i> - <f_u, f_j>)
 *         + cl / 2 (InfoNCE(δ1(f_U), δ2(f_U)) + InfoNCE(δ1(f_I), δ2(f_I)))
 * over the batch's users U and positives I (repeats kept, as the reference's rows are), δ1, δ2 two
 * independent dropouts (p, kept entries scaled 1 / (1 - p)), and
 *   InfoNCE(a, b) = mean_r -log(exp(<â_r, b̂_r>/t) / sum_c exp(<â_r, b̂_c>/t)) over unit rows (t = 0.2 there).
 * The reference's reg_weight is cl; it has no L2 regularizer. P_m start xavier-uniform (each (U, d) on
 * its own), T_m and t_m as nn.Linear (uniform in +-1/sqrt(f_m)).
 *
 * Where it differs from the reference: the reference has exactly an image and a text modality (in that
 * order); here any 1 to 4, in the order given (the order of columns changes no score). The edges are
 * drawn by mrec's generator with Efraimidis-Spirakis keys log(u) / w, the largest kept: the distribution
 * of torch.multinomial without replacement, not its draws. The dropout masks come from the hash stream of
 * mrec_hash_dropout keyed by a seed and the step, so a run is the same for a seed on every device.
 *
 * One path, through the op entries only: every array (weights, gradients, activations, the three graphs
 * and room for the epoch's subgraph) is carved from one allocation on the context's device, so the same
 * code trains on the CPU and a GPU; the subgraph is drawn on the host each epoch and copied there, and only
 * the batch's scores and the contrast's losses come back. The contrast's batch buffers are a second
 * allocation, grown with the largest batch. All graphs are sparse: nothing is N x N or I x I.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MOD 4
#define NORM_EPS 1e-12f /* F.normalize's floor */

typedef struct {
    int f;                              /* feature size */
    float *feat, *feat_grad;            /* (I, f) trained */
    float *tw, *tw_grad, *tb, *tb_grad; /* (d, f), (d): the *_trs layer */
    float *proj;                        /* (I, d) X T^T + t */
    float *unit;                        /* (I, d) its unit rows z */
} modality;

typedef struct {
    double key;
    int64_t edge;
} edge_key;

typedef struct {
    int n_users, n_items, n_nodes, dim, width, layers, item_layers, n_mod;
    float cl, dropout, edge_dropout, temp;
    uint64_t seed, step;                /* the dropout's hash stream: key of (seed, step, view) */
    int freeze;                         /* every batch takes step 0's draws (tests) */
    mrec_context *ctx;
    mrec_arena mem;                     /* everything below that points to memory, on the context's device */
    mrec_csr full, sub, s, s_t;         /* (N, N) Â, (N, N) the epoch's Â_t (room for Â's entries), (I, I) S and S^T */
    float *ego, *ego_grad;              /* (N, W) E; its user rows are the parameter P */
    float *out, *dout;                  /* (N, W) f and d loss / d f */
    float *h;                           /* (I, W) S^L E_I; in the backward, (S^T)^L dh */
    float *la, *lb, *t;                 /* (N, W) scratch */
    float *ones;                        /* (I) */
    modality mod[MAX_MOD];
    /* the training edges, on the host: the pairs user by user, items in order */
    int64_t n_edges;
    int32_t *edge_user, *edge_item;     /* (n_edges) */
    double *edge_weight;                /* (n_edges) (d_u + 1e-7)^-1/2 (d_i + 1e-7)^-1/2 in float, as the reference */
    edge_key *keys;                     /* (n_edges) the draw's scratch */
    int32_t *kept_user, *kept_item;     /* (n_edges) the kept pairs */
    mrec_rng rng;                       /* the edge draws' own stream */
    /* a batch's contrastive rows [users ; positives] of f, on the device; grown, not per batch */
    mrec_arena batch;
    int cap;
    float *v, *v1, *v2, *d1, *d2;       /* (2 cap, W) the rows, their two dropouts, the gradients of those */
    mrec_info_nce nce;
    mrec_batch_rows rows;
    mrec_bpr_ops bpr;
    mrec_step_keys step_keys;           /* the step's two dropout keys, in the context's memory */
    mrec_status status;
} pgl;

/* The key of a step's dropout of one view (0, 1). */
static uint64_t dropout_key(const pgl *m, int view) {
    uint64_t step = m->freeze ? 0 : m->step;
    return mrec_mix64(m->seed ^ mrec_mix64(step * 2 + (uint64_t)view));
}

/* out (cols) = the column sums of g (rows, cols): ones^T g */
static mrec_status col_sums(pgl *m, float *out, const float *g, int rows, int cols) {
    return mrec_gemm(m->ctx, out, m->ones, g, NULL, 1, 0, 0, 0, 1, cols, rows, rows, cols, cols);
}

/* f (m->out) over adj, and what the backward reads: each modality's projection and unit rows. */
static mrec_status forward(pgl *m, const mrec_csr *adj) {
    int d = m->dim, W = m->width, U = m->n_users, I = m->n_items;
    int64_t iw = (int64_t)I * W;
    mrec_context *ctx = m->ctx;
    float *ei = m->ego + (size_t)U * W, *hi = m->out + (size_t)U * W;
    mrec_status st = MREC_OK;
    for (int k = 0; k < m->n_mod && !st; k++) {
        modality *q = &m->mod[k];
        st = mrec_gemm(ctx, q->proj, q->feat, q->tw, q->tb, 1, 0, 0, 1, I, d, q->f, q->f, q->f, d);
        if (!st) st = mrec_l2_normalize_rows(ctx, q->unit, q->proj, NORM_EPS, I, d);
        if (!st) st = mrec_copy_rows(ctx, ei + (size_t)k * d, W, q->unit, d, I, d);
    }
    if (!st) st = mrec_csr_layer_mean(m->out, m->ego, adj, m->layers, W, m->la, m->lb, ctx);
    /* h = S^L E_I (the items' own rows with no layer), added to the items' rows of C */
    if (!st) st = m->item_layers ? mrec_spmm(ctx, m->h, &m->s, ei, W, 0) : mrec_scale(ctx, m->h, ei, 1.0f, iw);
    for (int l = 1; l < m->item_layers && !st; l++) {
        st = mrec_spmm(ctx, m->la, &m->s, m->h, W, 0);
        if (!st) st = mrec_copy_rows(ctx, m->h, W, m->la, W, I, W);
    }
    return st ? st : mrec_add(ctx, hi, hi, m->h, iw);
}

/* Every parameter's gradient from dout (d loss / d f) over adj. */
static mrec_status backward(pgl *m, const mrec_csr *adj) {
    int d = m->dim, W = m->width, U = m->n_users, I = m->n_items;
    int64_t iw = (int64_t)I * W;
    mrec_context *ctx = m->ctx;
    const float *dhi = m->dout + (size_t)U * W;
    float *gi = m->ego_grad + (size_t)U * W;
    /* dh = the items' rows of dout, back through S^L: (S^T)^L dh, into h (free once f is made) */
    mrec_status st = m->item_layers ? mrec_spmm(ctx, m->h, &m->s, dhi, W, 1) : mrec_scale(ctx, m->h, dhi, 1.0f, iw);
    for (int l = 1; l < m->item_layers && !st; l++) {
        st = mrec_spmm(ctx, m->la, &m->s, m->h, W, 1);
        if (!st) st = mrec_copy_rows(ctx, m->h, W, m->la, W, I, W);
    }
    /* dE = the layer mean's backward (Â_t symmetric), the items' rows plus the item graph's share */
    if (!st) st = mrec_csr_layer_mean_back(m->ego_grad, m->dout, adj, 1, m->layers, W, m->la, m->lb, ctx);
    if (!st) st = mrec_add(ctx, gi, gi, m->h, iw);
    /* per modality: dz (column block k of dE_I), back through the unit rows to the projection */
    float *dz = m->la, *dp = m->lb;
    for (int k = 0; k < m->n_mod && !st; k++) {
        modality *q = &m->mod[k];
        st = mrec_copy_rows(ctx, dz, d, gi + (size_t)k * d, W, I, d);
        if (!st) st = mrec_l2_normalize_rows_back(ctx, dp, dz, q->unit, q->proj, NORM_EPS, 0, I, d);
        /* proj = X T^T + t: dT = dp^T X, dt = ones^T dp, dX = dp T */
        if (!st) st = mrec_gemm(ctx, q->tw_grad, dp, q->feat, NULL, 1, 0, 1, 0, d, q->f, I, d, q->f, q->f);
        if (!st) st = col_sums(m, q->tb_grad, dp, I, d);
        if (!st) st = mrec_gemm(ctx, q->feat_grad, dp, q->tw, NULL, 1, 0, 0, 0, I, q->f, d, d, q->f, q->f);
    }
    return st;
}

static void carve_batch(pgl *m, mrec_arena *a) {
    size_t c = (size_t)m->cap, w = (size_t)m->width;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
    m->v = F(2 * c * w), m->v1 = F(2 * c * w), m->v2 = F(2 * c * w), m->d1 = F(2 * c * w), m->d2 = F(2 * c * w);
#undef F
}

/* Buffers for batches of up to n triples, grown when a batch is larger than any before. */
static mrec_status ensure_batch(pgl *m, int n) {
    if (n <= m->cap) return MREC_OK;
    mrec_context *ctx = m->ctx;
    mrec_arena_release(&m->batch, ctx->cuda);
    m->cap = n;
    mrec_arena measure = mrec_arena_measure();
    carve_batch(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->batch, measure.peak, ctx->device, ctx->cuda);
    if (!st) carve_batch(m, &m->batch);
    else m->cap = 0;
    return st;
}

/* alpha / n times InfoNCE(a, b) over n rows added to *loss_at (on the context's device); da, db (n, W) its gradients.
 * a, b (n, W). */
static mrec_status info_nce(pgl *m, double *loss_at, float *da, float *db, const float *a, const float *b, int n, float alpha) {
    return mrec_info_nce_run(&m->nce, m->ctx, loss_at, da, db, a, b, n, m->width, m->temp, alpha, 0);
}

/* The contrast of the batch's rows [users ; U + positives] of f (staged in m->rows), under the step's two dropout
 * keys (in the context's memory): its loss added to *loss_at (on the context's device), its gradient added to dout. */
static mrec_status contrast(pgl *m, double *loss_at, int n) {
    int W = m->width, N = m->n_nodes;
    int64_t nw = 2 * (int64_t)n * W;
    size_t half = (size_t)n * W;
    mrec_context *ctx = m->ctx;
    const uint64_t *key1 = m->step_keys.at, *key2 = m->step_keys.at + 1;
    mrec_status st = mrec_batch_rows_index(&m->rows);
    if (!st) st = mrec_embedding_checked(ctx, m->v, m->out, m->rows.ids, 2 * n, N, W);
    if (!st) st = mrec_hash_dropout_at(ctx, m->v1, m->v, NULL, nw, m->dropout, key1);
    if (!st) st = mrec_hash_dropout_at(ctx, m->v2, m->v, NULL, nw, m->dropout, key2);
    if (!st) st = info_nce(m, loss_at, m->d1, m->d2, m->v1, m->v2, n, m->cl / 2);
    if (!st) st = info_nce(m, loss_at, m->d1 + half, m->d2 + half, m->v1 + half, m->v2 + half, n, m->cl / 2);
    /* back through each dropout (its own mask, the same scale), both views to the same rows */
    if (!st) st = mrec_hash_dropout_at(ctx, m->d1, m->d1, NULL, nw, m->dropout, key1);
    if (!st) st = mrec_hash_dropout_at(ctx, m->d2, m->d2, NULL, nw, m->dropout, key2);
    if (!st) st = mrec_add(ctx, m->d1, m->d1, m->d2, nw);
    if (!st) st = mrec_batch_rows_scatter(&m->rows, m->t, m->d1, W);
    return st ? st : mrec_add(ctx, m->dout, m->dout, m->t, (int64_t)N * W);
}

static const mrec_csr *train_graph(const pgl *m) { return m->edge_dropout > 0 ? &m->sub : &m->full; }

/* The batch's loss stays on the context's device (m->bpr.loss): BPR, then the contrast's two terms added there. In
 * the trainer's two halves (mrec_model.stage, .launch): the host's part (buffers grown, the step's two dropout keys
 * drawn and the step counted, the batch's triples and contrast rows checked, all sent up), then the launches. */
static mrec_status pgl_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    pgl *m = self;
    const int32_t *parts[2] = {u, i};
    const int offset[2] = {0, m->n_users};
    uint64_t keys[2] = {dropout_key(m, 0), dropout_key(m, 1)};
    mrec_status st = ensure_batch(m, n);
    if (!st && m->cl > 0) st = mrec_info_nce_reserve(&m->nce, m->ctx, n, m->width, 0);
    if (!st) st = mrec_step_keys_send(&m->step_keys, m->ctx, keys, 2);
    if (!st) st = mrec_bpr_ops_stage(&m->bpr, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->width);
    if (!st && m->cl > 0) st = mrec_batch_rows_stage(&m->rows, m->ctx, m->n_nodes, 2, parts, offset, n);
    if (!st) m->step++;
    return st;
}

static mrec_status pgl_launch(void *self, const double **loss) {
    pgl *m = self;
    const mrec_csr *adj = train_graph(m);
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS, .weight = 1};
    *loss = NULL;
    mrec_status st = forward(m, adj);
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->out, m->out);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->dout, m->out, 1, 0);
    /* cl 0 adds nothing to the loss or the gradients: the contrast is skipped */
    if (!st && m->cl > 0) st = contrast(m, m->bpr.loss, m->bpr.n);
    if (!st) st = backward(m, adj);
    if (!st) *loss = m->bpr.loss;
    return st;
}

static const double *pgl_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    pgl *m = self;
    const double *loss = NULL;
    m->status = pgl_stage(m, u, i, j, n);
    if (!m->status) m->status = pgl_launch(m, &loss);
    return m->status ? NULL : loss;
}

static double pgl_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    pgl *m = self;
    return mrec_step_loss(m->ctx, &m->status, pgl_step(self, u, i, j, n));
}

/* ---- the principal subgraph ---- */

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

static int64_t n_kept(const pgl *m) { return (int64_t)((double)m->n_edges * (1.0 - (double)m->edge_dropout)); }

/* The epoch's sample: the numbers of the kept edges, increasing, in m->keys[0 .. keep). A weighted sample without
 * replacement by Efraimidis-Spirakis keys log(u) / w, the largest kept. */
static void pick_edges(pgl *m) {
    int64_t E = m->n_edges, keep = n_kept(m);
    for (int64_t e = 0; e < E; e++) {
        double r = mrec_rng_uniform(&m->rng);
        m->keys[e] = (edge_key){log(r > 0 ? r : 1e-300) / m->edge_weight[e], e};
    }
    qsort(m->keys, (size_t)E, sizeof *m->keys, by_key_desc);
    qsort(m->keys, (size_t)keep, sizeof *m->keys, by_edge); /* edge order keeps the user rows sorted */
}

/* Â_t over the edges m->keys[0 .. keep), normalized over them, into the device's room for it. */
static mrec_status set_subgraph(pgl *m, int64_t keep) {
    for (int64_t e = 0; e < keep; e++) m->kept_user[e] = m->edge_user[m->keys[e].edge], m->kept_item[e] = m->edge_item[m->keys[e].edge];
    mrec_graph g;
    mrec_status st = mrec_graph_from_pairs(&g, m->n_users, m->n_items, m->kept_user, m->kept_item, keep);
    if (st) return st;
    mrec_csr src = mrec_graph_csr(&g);
    st = mrec_graph_upload(m->ctx, &m->sub, &src);
    mrec_graph_free(&g);
    return st;
}

static mrec_status pgl_epoch_start(void *self) {
    pgl *m = self;
    if (m->edge_dropout <= 0) return MREC_OK;
    pick_edges(m);
    return set_subgraph(m, n_kept(m));
}

mrec_status mrec_pgl_draw_edges(mrec_model *model, int64_t *kept, int64_t *n) {
    if (!model->name || strcmp(model->name, "PGL")) return mrec_fail(MREC_ERR_ARG, "pgl edges: the model is %s, not PGL", model->name ? model->name : "unnamed");
    pgl *m = model->self;
    pick_edges(m);
    *n = n_kept(m);
    for (int64_t e = 0; e < *n; e++) kept[e] = m->keys[e].edge;
    return MREC_OK;
}

mrec_status mrec_pgl_set_edges(mrec_model *model, const int64_t *kept, int64_t n) {
    if (!model->name || strcmp(model->name, "PGL")) return mrec_fail(MREC_ERR_ARG, "pgl edges: the model is %s, not PGL", model->name ? model->name : "unnamed");
    pgl *m = model->self;
    if (m->edge_dropout <= 0) return mrec_fail(MREC_ERR_ARG, "pgl edges: edge_dropout 0 trains on the full graph");
    if (n < 0 || n > m->n_edges) return mrec_fail(MREC_ERR_ARG, "pgl edges: %lld of %lld training edges", (long long)n, (long long)m->n_edges);
    for (int64_t e = 0; e < n; e++) {
        if (kept[e] < 0 || kept[e] >= m->n_edges || (e && kept[e] <= kept[e - 1]))
            return mrec_fail(MREC_ERR_ARG, "pgl edges: entry %lld (%lld) is not an edge number above the one before it, below %lld",
                             (long long)e, (long long)kept[e], (long long)m->n_edges);
        m->keys[e] = (edge_key){0, kept[e]};
    }
    return set_subgraph(m, n);
}

mrec_status mrec_pgl_set_dropout_seed(mrec_model *model, uint64_t seed, int freeze) {
    if (!model->name || strcmp(model->name, "PGL")) return mrec_fail(MREC_ERR_ARG, "pgl dropout: the model is %s, not PGL", model->name ? model->name : "unnamed");
    pgl *m = model->self;
    m->seed = seed, m->step = 0, m->freeze = freeze;
    return MREC_OK;
}

/* ---- ranking, saving, lifetime ---- */

static mrec_status pgl_prepare(void *self) {
    pgl *m = self;
    return forward(m, &m->full);
}

static mrec_status pgl_score(void *self, int u0, int n, float *scores) {
    pgl *m = self;
    return mrec_score_final(m->ctx, scores, m->out, m->n_users, m->n_items, m->width, u0, n);
}

static mrec_status pgl_embeddings(void *self, float *users, float *items) {
    pgl *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->out, m->n_users, m->n_items, m->width);
}

static void pgl_destroy(void *self) {
    pgl *m = self;
    mrec_bpr_ops_free(&m->bpr);
    mrec_batch_rows_free(&m->rows);
    mrec_step_keys_free(&m->step_keys);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    mrec_info_nce_free(&m->nce);
    free(m->edge_user), free(m->edge_item), free(m->edge_weight), free(m->keys), free(m->kept_user), free(m->kept_item);
    free(m);
}

/* Every array from a (a measuring arena counts them), the graphs' too: Â (and Â_t's room) of adj_nnz entries, S of s_nnz. */
static void carve(pgl *m, mrec_arena *a, int64_t adj_nnz, int64_t s_nnz) {
    size_t N = (size_t)m->n_nodes, W = (size_t)m->width, I = (size_t)m->n_items, d = (size_t)m->dim;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
    m->ego = F(N * W), m->ego_grad = F(N * W), m->out = F(N * W), m->dout = F(N * W);
    m->la = F(N * W), m->lb = F(N * W), m->t = F(N * W), m->h = F(I * W), m->ones = F(I);
    for (int k = 0; k < m->n_mod; k++) {
        modality *q = &m->mod[k];
        size_t f = (size_t)q->f;
        q->feat = F(I * f), q->feat_grad = F(I * f), q->tw = F(d * f), q->tw_grad = F(d * f), q->tb = F(d), q->tb_grad = F(d);
        q->proj = F(I * d), q->unit = F(I * d);
    }
#undef F
    mrec_device dev = m->ctx->device;
    m->full = mrec_graph_carve(a, (int)N, (int)N, adj_nnz, dev), m->sub = mrec_graph_carve(a, (int)N, (int)N, adj_nnz, dev);
    m->s = mrec_graph_carve(a, (int)I, (int)I, s_nnz, dev), m->s_t = mrec_graph_carve(a, (int)I, (int)I, s_nnz, dev);
}

static void uniform(float *w, size_t count, double bound, mrec_rng *rng) {
    for (size_t e = 0; e < count; e++) w[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
}

/* Initial values drawn on the host in a fixed order (the same on every device): P_1 .. P_M (xavier, each (U, d)
 * block on its own), then per modality T, t (nn.Linear's bounds); the features, graphs and ones with them. */
static mrec_status upload(pgl *m, const mrec_graph *adj, const mrec_graph *item_graph, const float *const *feat, mrec_rng *rng) {
    int d = m->dim, W = m->width, U = m->n_users, I = m->n_items;
    mrec_context *ctx = m->ctx;
    size_t most = (size_t)U * W + (size_t)I + 1;
    for (int k = 0; k < m->n_mod; k++)
        if ((size_t)d * m->mod[k].f > most) most = (size_t)d * m->mod[k].f;
    float *h = malloc(sizeof(float) * most);
    if (!h) return mrec_fail(MREC_ERR_NOMEM, "pgl: %zu initial values", most);
    double bu = sqrt(6.0 / (U + d));
    for (int k = 0; k < m->n_mod; k++)
        for (int u = 0; u < U; u++) uniform(h + (size_t)u * W + (size_t)k * d, (size_t)d, bu, rng);
    mrec_status st = mrec_copy_to_device(ctx, m->ego, h, sizeof(float) * (size_t)U * W);
    for (int k = 0; k < m->n_mod && !st; k++) {
        modality *q = &m->mod[k];
        double bf = 1.0 / sqrt((double)q->f);
        uniform(h, (size_t)d * q->f, bf, rng);
        st = mrec_copy_to_device(ctx, q->tw, h, sizeof(float) * (size_t)d * q->f);
        uniform(h, (size_t)d, bf, rng);
        if (!st) st = mrec_copy_to_device(ctx, q->tb, h, sizeof(float) * (size_t)d);
        if (!st) st = mrec_copy_to_device(ctx, q->feat, feat[k], sizeof(float) * (size_t)I * q->f);
    }
    for (int i = 0; i < I; i++) h[i] = 1.0f;
    if (!st) st = mrec_copy_to_device(ctx, m->ones, h, sizeof(float) * (size_t)I);
    free(h);
    mrec_csr src = mrec_graph_csr(adj);
    if (!st) st = mrec_graph_upload(ctx, &m->full, &src);
    src = mrec_graph_csr(item_graph);
    if (!st) st = mrec_graph_upload(ctx, &m->s, &src);
    mrec_graph t = {0};
    if (!st) st = mrec_graph_transpose(&t, item_graph);
    src = mrec_graph_csr(&t);
    if (!st) st = mrec_graph_upload(ctx, &m->s_t, &src);
    mrec_graph_free(&t);
    /* Â and each Â_t are symmetric: their transposed products are their own */
    m->full.transposed = &m->full, m->sub.transposed = &m->sub, m->s.transposed = &m->s_t;
    return st;
}

/* The training edges and their draw weights, as the reference's get_edge_info: (d_u + 1e-7)^-1/2 (d_i + 1e-7)^-1/2 in float. */
static mrec_status edges_setup(pgl *m, const mrec_user_items *train) {
    int U = train->n_rows, I = train->n_cols;
    int64_t E = train->row_ptr[U];
    m->n_edges = E;
    m->edge_user = malloc(sizeof(int32_t) * (size_t)(E + 1)), m->edge_item = malloc(sizeof(int32_t) * (size_t)(E + 1));
    m->kept_user = malloc(sizeof(int32_t) * (size_t)(E + 1)), m->kept_item = malloc(sizeof(int32_t) * (size_t)(E + 1));
    m->edge_weight = malloc(sizeof(double) * (size_t)(E + 1)), m->keys = malloc(sizeof(edge_key) * (size_t)(E + 1));
    int64_t *item_deg = calloc((size_t)I + 1, sizeof *item_deg);
    if (!m->edge_user || !m->edge_item || !m->kept_user || !m->kept_item || !m->edge_weight || !m->keys || !item_deg) {
        free(item_deg);
        return mrec_fail(MREC_ERR_NOMEM, "pgl: %lld training edges", (long long)E);
    }
    for (int64_t e = 0; e < E; e++) item_deg[train->col[e]]++;
    for (int u = 0; u < U; u++)
        for (int64_t e = train->row_ptr[u]; e < train->row_ptr[u + 1]; e++) {
            int64_t du = train->row_ptr[u + 1] - train->row_ptr[u];
            m->edge_user[e] = u, m->edge_item[e] = train->col[e];
            m->edge_weight[e] = powf((float)du + 1e-7f, -0.5f) * powf((float)item_deg[train->col[e]] + 1e-7f, -0.5f);
        }
    free(item_deg);
    return MREC_OK;
}

mrec_status mrec_pgl_create(mrec_model *out, const mrec_graph *adj, const mrec_graph *item_graph, const mrec_user_items *train,
                            const float *const *feat, const int *feat_dim, int n_modalities, int dim, int ui_layers, int item_layers,
                            float cl, float dropout, float edge_dropout, float temp, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    int U = train->n_rows, I = train->n_cols;
    if (adj->n_nodes != U + I || item_graph->n_nodes != I || n_modalities < 1 || n_modalities > MAX_MOD || dim < 1 || ui_layers < 0 ||
        ui_layers > 16 || item_layers < 0 || item_layers > 16 || !(cl >= 0) || !(dropout >= 0 && dropout < 1) ||
        !(edge_dropout >= 0 && edge_dropout < 1) || !(temp > 0))
        return mrec_fail(MREC_ERR_ARG,
                         "pgl: graphs of %d and %d nodes for %d users + %d items, %d modalities (1 to %d), dim %d, %d and %d layers "
                         "(0 to 16), cl %g, dropout %g and edge dropout %g (0 <= p < 1), temperature %g",
                         adj->n_nodes, item_graph->n_nodes, U, I, n_modalities, MAX_MOD, dim, ui_layers, item_layers, cl, dropout,
                         edge_dropout, temp);
    for (int k = 0; k < n_modalities; k++)
        if (feat_dim[k] < 1) return mrec_fail(MREC_ERR_ARG, "pgl: modality %d has %d features", k, feat_dim[k]);
    if ((int64_t)n_modalities * dim > 1 << 16)
        return mrec_fail(MREC_ERR_ARG, "pgl: %d modalities of %d units side by side", n_modalities, dim);
    pgl *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "pgl");
    m->n_users = U, m->n_items = I, m->n_nodes = U + I, m->dim = dim, m->width = n_modalities * dim, m->layers = ui_layers;
    m->item_layers = item_layers, m->n_mod = n_modalities, m->cl = cl, m->dropout = dropout, m->edge_dropout = edge_dropout;
    m->temp = temp, m->ctx = ctx;
    m->seed = mrec_rng_next(rng), m->rng.state = mrec_rng_next(rng);
    for (int k = 0; k < n_modalities; k++) m->mod[k].f = feat_dim[k];
    int64_t adj_nnz = adj->row_ptr[adj->n_nodes], s_nnz = item_graph->row_ptr[I];
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, adj_nnz, s_nnz);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        free(m);
        return st;
    }
    carve(m, &m->mem, adj_nnz, s_nnz);
    /* the first subgraph is drawn here, so a batch before any epoch_start trains on one too */
    if ((st = edges_setup(m, train)) || (st = upload(m, adj, item_graph, feat, rng)) || (st = pgl_epoch_start(m)) ||
        (st = forward(m, &m->full))) {
        pgl_destroy(m);
        return st;
    }
    int p = 0;
#define PARAM(w, g, count) out->param[p] = (w), out->grad[p] = (g), out->size[p++] = (int64_t)(count)
    PARAM(m->ego, m->ego_grad, (size_t)U * m->width);
    for (int k = 0; k < n_modalities; k++) {
        modality *q = &m->mod[k];
        PARAM(q->feat, q->feat_grad, (size_t)I * q->f);
        PARAM(q->tw, q->tw_grad, (size_t)dim * q->f), PARAM(q->tb, q->tb_grad, dim);
    }
#undef PARAM
    out->n_params = p;
    out->name = "PGL", out->self = m;
    out->state[0] = &m->step, out->state[1] = &m->rng.state, out->n_state = 2; /* for a checkpoint */
    out->status = &m->status;
    out->loss_grad = pgl_loss_grad, out->step = pgl_step, out->epoch_start = pgl_epoch_start, out->prepare = pgl_prepare, out->score = pgl_score;
    out->stage = pgl_stage, out->launch = pgl_launch;
    out->embed_dim = m->width, out->embeddings = pgl_embeddings;
    out->destroy = pgl_destroy;
    return MREC_OK;
}
