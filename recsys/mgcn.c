/* mgcn.c: MGCN (Yu et al., "Multi-View Graph Convolutional Network for
 * Multimedia Recommendation", MM 2023) as MMRec defines it (src/models/mgcn.py).
 *
 * Nodes are users then items (N = U + I); E = [E_u ; E_i] the id embeddings.
 *   S_m      = per modality m, each item's k most cosine-similar items by the
 *              original features (itself included), weighted by the
 *              similarity, normalized v_ij / sqrt(r_i r_j) with r the row sums
 *              (MMRec's build_knn_normalized_graph, sparse, "sym"), built once
 *   f_m      = X_m T_m^T + t_m           (X_m trainable: from_pretrained(freeze=False))
 *   h_m      = S_m^{n_layers} (E_i * sigmoid(f_m G_m^T + g_m))  the purified item view
 *   M_m      = [R h_m ; h_m]             R: the user-item block of Â (users from items)
 *   C        = mean(E, Â E, .., Â^{n_ui_layers} E)              the id view (LightGCN)
 *   a_m      = tanh(M_m Q^T + q) w^T,  (b_1 .. b_M) = softmax(a_1 .. a_M) per node
 *   common   = sum_m b_m M_m,  s_m = sigmoid(C P_m^T + p_m) * (M_m - common)
 *   side     = (sum_m s_m + common) / (M + 1),  final = C + side
 * with Â = D^-1/2 A D^-1/2 over the training pairs (no self-loops, zero
 * degrees give 0). score(u, i) = <final_u, final_i>, and the batch loss is
 *   -mean log sigmoid(pos - neg)
 *   + reg / (2 B) (|final_u|^2 + |final_i|^2 + |final_j|^2)     B: the configured batch size
 *   + cl (InfoNCE(side_I, C_I) + InfoNCE(side_U, C_U))           the batch's positives, users
 * InfoNCE(a, b) = mean_r -log(exp(<â_r, b̂_r>/t) / sum_c exp(<â_r, b̂_c>/t)) over unit rows.
 * MMRec has two modalities (image, text); here any 1 to 4, the softmax over
 * them and side's divisor M + 1 (3 for two). E starts xavier-uniform, the
 * linear layers as nn.Linear (uniform in +-1/sqrt(fan_in)).
 *
 * Sigmoid is not an op: sigmoid(x) = (1 + tanh(x / 2)) / 2, kept as its tanh
 * t, so y * sigmoid(x) = (y + y t) / 2 and its derivative (1 - t^2) / 4.
 * A row scaling diag(b) X is a product with a diagonal sparse matrix whose
 * values are b. Â is symmetric: its transposed products are its own.
 *
 * One path, through the op entries only: every array (weights, gradients,
 * activations, the graphs) is carved from one allocation on the context's
 * device, so the same code trains on the CPU and a GPU; only the loss's
 * numbers come back to the host (the contrastive rows' buffers are a second
 * allocation, grown with the largest batch). The kNN graphs are built on the
 * host once (recsys/knn.c's rows) and not cached: their weights are the
 * similarities, which FREEDOM's cached graph does not keep.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MOD 4

typedef struct {
    int f;                                  /* feature size */
    float *feat, *feat_grad;                /* (I, f) trained */
    float *tw, *tw_grad, *tb, *tb_grad;     /* (d, f), (d): the *_trs layer */
    float *gw, *gw_grad, *gb, *gb_grad;     /* (d, d), (d): gate_v / gate_t */
    float *pw, *pw_grad, *pb, *pb_grad;     /* (d, d), (d): gate_*_prefer */
    mrec_csr s, s_t;                        /* (I, I) S_m and its transpose */
    float *fm;                              /* (I, d) f_m */
    float *gt;                              /* (I, d) tanh of half the gate's input */
    float *mv, *dmv;                        /* (N, d) M_m and its gradient */
    float *att;                             /* (N, d) tanh(M_m Q^T + q) */
    float *pt;                              /* (N, d) tanh of half the preference gate's input */
    float *sep;                             /* (N, d) M_m - common */
    float *w, *dw;                          /* (N) b_m, and d loss / d b_m, then / d a_m */
    mrec_csr diag;                          /* (N, N) diag(b_m) */
} modality;

typedef struct {
    int n_users, n_items, n_nodes, dim, ui_layers, item_layers, n_mod, batch_size;
    float reg, cl, temp;
    mrec_context *ctx;
    mrec_arena mem;                         /* everything below, on the context's device */
    mrec_csr adj;                           /* (N, N) Â */
    float *ego, *ego_grad;                  /* (N, d) E */
    modality mod[MAX_MOD];
    float *qw, *qw_grad, *qb, *qb_grad;     /* (d, d), (d): query_common's first layer */
    float *q2, *q2_grad;                    /* (1, d): its second, no bias */
    float *content, *common, *side, *final; /* (N, d) */
    float *z;                               /* (N, d) [0 ; h_m]: user rows stay 0 */
    float *scores, *soft;                   /* (N, M) a, b */
    float *dfinal, *dside, *dcontent, *dcommon; /* (N, d) */
    float *t1, *t2, *t3, *la, *lb;          /* (N, d) scratch */
    float *dei;                             /* (I, d) the items' id gradient from the modality views */
    float *dot;                             /* (N) */
    float *ones;                            /* (max(N, d)) */
    int64_t *diag_ptr;                      /* (N + 1) 0, 1, .., N */
    int32_t *diag_col;                      /* (N) 0, 1, .., N - 1 */
    /* a batch's contrastive rows: [users ; positives] of side and C, on the device; grown, not per batch */
    mrec_arena batch;
    int cap;
    float *v1, *v2, *d1, *d2;               /* (2 cap, d) side's and C's rows, their gradients */
    mrec_info_nce nce;
    mrec_batch_rows rows;
    mrec_bpr_ops bpr;
    mrec_status status;
} mgcn;

/* out (cols) = beta out + the column sums of g (rows, cols): ones^T g */
static mrec_status col_sums(mgcn *m, float *out, const float *g, int rows, int cols, float beta) {
    return mrec_gemm(m->ctx, out, m->ones, g, NULL, 1, beta, 0, 0, 1, cols, rows, rows, cols, cols);
}

/* out = y * sigmoid(x) = (y + y t) / 2 with t = tanh(x / 2); scratch (n) */
static mrec_status gated(mrec_context *ctx, float *out, const float *y, const float *t, float *scratch, int64_t n) {
    mrec_status st = mrec_mul(ctx, scratch, y, t, n);
    if (!st) st = mrec_add(ctx, out, y, scratch, n);
    return st ? st : mrec_scale(ctx, out, out, 0.5f, n);
}

/* dx = dy * sigmoid'(x) = (dy - dy t^2) / 4, in place allowed (dx may be dy); scratch (n) */
static mrec_status sigmoid_back(mrec_context *ctx, float *dx, const float *dy, const float *t, float *scratch, int64_t n) {
    mrec_status st = mrec_mul(ctx, scratch, dy, t, n);
    if (!st) st = mrec_mul(ctx, scratch, scratch, t, n);
    if (!st) st = mrec_scale(ctx, scratch, scratch, -1.0f, n);
    if (!st) st = mrec_add(ctx, dx, dy, scratch, n);
    return st ? st : mrec_scale(ctx, dx, dx, 0.25f, n);
}

/* t = tanh(x / 2), x (n) overwritten */
static mrec_status half_tanh(mrec_context *ctx, float *t, float *x, int64_t n) {
    mrec_status st = mrec_scale(ctx, x, x, 0.5f, n);
    return st ? st : mrec_activation(ctx, t, x, MREC_ACT_TANH, 0, n);
}

static mrec_status forward(mgcn *m) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, M = m->n_mod;
    int64_t nd = (int64_t)N * d, id = (int64_t)I * d;
    mrec_context *ctx = m->ctx;
    const float *ei = m->ego + (size_t)U * d;
    float *zi = m->z + (size_t)U * d;
    mrec_status st = mrec_csr_layer_mean(m->content, m->ego, &m->adj, m->ui_layers, d, m->la, m->lb, ctx);
    for (int k = 0; k < M && !st; k++) {
        modality *q = &m->mod[k];
        /* the purified item view: E_i * sigmoid(f G^T + g), then n_layers products with S_m */
        if ((st = mrec_gemm(ctx, q->fm, q->feat, q->tw, q->tb, 1, 0, 0, 1, I, d, q->f, q->f, q->f, d))) break;
        if ((st = mrec_gemm(ctx, m->t1, q->fm, q->gw, q->gb, 1, 0, 0, 1, I, d, d, d, d, d))) break;
        if ((st = half_tanh(ctx, q->gt, m->t1, id))) break;
        if ((st = gated(ctx, zi, ei, q->gt, m->t1, id))) break;
        for (int l = 0; l < m->item_layers && !st; l++) {
            st = mrec_spmm(ctx, m->t1, &q->s, zi, d, 0);
            if (!st) st = mrec_copy_rows(ctx, zi, d, m->t1, d, I, d);
        }
        /* M_m = Â [0 ; h] + [0 ; h]: Â's item rows see only user rows (0), its user rows are R h */
        if (st || (st = mrec_spmm(ctx, q->mv, &m->adj, m->z, d, 0)) || (st = mrec_add(ctx, q->mv, q->mv, m->z, nd))) break;
        /* a_m = tanh(M_m Q^T + q) w^T into column k of the scores */
        if ((st = mrec_gemm(ctx, m->t1, q->mv, m->qw, m->qb, 1, 0, 0, 1, N, d, d, d, d, d))) break;
        if ((st = mrec_activation(ctx, q->att, m->t1, MREC_ACT_TANH, 0, nd))) break;
        if ((st = mrec_gemm(ctx, m->scores + k, q->att, m->q2, NULL, 1, 0, 0, 1, N, 1, d, d, d, M))) break;
        /* the preference gate's tanh */
        if ((st = mrec_gemm(ctx, m->t1, m->content, q->pw, q->pb, 1, 0, 0, 1, N, d, d, d, d, d))) break;
        st = half_tanh(ctx, q->pt, m->t1, nd);
    }
    if (st || (st = mrec_softmax_rows(ctx, m->soft, m->scores, NULL, N, M, 1))) return st;
    /* common = sum_m diag(b_m) M_m */
    for (int k = 0; k < M && !st; k++) {
        modality *q = &m->mod[k];
        st = mrec_copy_rows(ctx, q->w, 1, m->soft + k, M, N, 1);
        if (!st) st = mrec_spmm(ctx, k ? m->t1 : m->common, &q->diag, q->mv, d, 0);
        if (!st && k) st = mrec_add(ctx, m->common, m->common, m->t1, nd);
    }
    /* side = (sum_m sigmoid(..) * (M_m - common) + common) / (M + 1) */
    if (st || (st = mrec_scale(ctx, m->t3, m->common, -1.0f, nd)) || (st = mrec_copy_rows(ctx, m->side, d, m->common, d, N, d))) return st;
    for (int k = 0; k < M && !st; k++) {
        modality *q = &m->mod[k];
        st = mrec_add(ctx, q->sep, q->mv, m->t3, nd);
        if (!st) st = gated(ctx, m->t2, q->sep, q->pt, m->t1, nd);
        if (!st) st = mrec_add(ctx, m->side, m->side, m->t2, nd);
    }
    if (st || (st = mrec_scale(ctx, m->side, m->side, 1.0f / (M + 1), nd))) return st;
    return mrec_add(ctx, m->final, m->content, m->side, nd);
}

/* Gradients of every parameter from dfinal, dside (the contrastive part) and dcontent (its other part). */
static mrec_status backward(mgcn *m) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, M = m->n_mod;
    int64_t nd = (int64_t)N * d, id = (int64_t)I * d;
    mrec_context *ctx = m->ctx;
    const float *ei = m->ego + (size_t)U * d;
    float *ds = m->t3;
    mrec_status st;
    /* side and C both reach final; ds = d side / (M + 1) reaches each s_m and common */
    if ((st = mrec_add(ctx, m->dside, m->dside, m->dfinal, nd)) || (st = mrec_add(ctx, m->dcontent, m->dcontent, m->dfinal, nd))) return st;
    if ((st = mrec_scale(ctx, ds, m->dside, 1.0f / (M + 1), nd)) || (st = mrec_copy_rows(ctx, m->dcommon, d, ds, d, N, d))) return st;
    for (int k = 0; k < M; k++) {
        modality *q = &m->mod[k];
        /* s = P * sep: d sep = ds P, then M_m gets it and common loses it; dP = ds sep */
        if ((st = gated(ctx, q->dmv, ds, q->pt, m->t1, nd))) return st;
        if ((st = mrec_scale(ctx, m->t1, q->dmv, -1.0f, nd)) || (st = mrec_add(ctx, m->dcommon, m->dcommon, m->t1, nd))) return st;
        if ((st = mrec_mul(ctx, m->t2, ds, q->sep, nd)) || (st = sigmoid_back(ctx, m->t2, m->t2, q->pt, m->t1, nd))) return st;
        if ((st = mrec_gemm(ctx, q->pw_grad, m->t2, m->content, NULL, 1, 0, 1, 0, d, d, N, d, d, d))) return st;
        if ((st = col_sums(m, q->pb_grad, m->t2, N, d, 0))) return st;
        if ((st = mrec_gemm(ctx, m->dcontent, m->t2, q->pw, NULL, 1, 1, 0, 0, N, d, d, d, d, d))) return st;
    }
    /* common = sum_m diag(b_m) M_m: M_m gets diag(b_m) dcommon, b_m the rows' dot products <dcommon, M_m> */
    for (int k = 0; k < M; k++) {
        modality *q = &m->mod[k];
        if ((st = mrec_spmm(ctx, m->t1, &q->diag, m->dcommon, d, 0)) || (st = mrec_add(ctx, q->dmv, q->dmv, m->t1, nd))) return st;
        if ((st = mrec_mul(ctx, m->t1, m->dcommon, q->mv, nd))) return st;
        if ((st = mrec_gemm(ctx, q->dw, m->t1, m->ones, NULL, 1, 0, 0, 0, N, 1, d, d, 1, 1))) return st;
    }
    /* the softmax: da_m = b_m (db_m - sum_k b_k db_k) */
    for (int k = 0; k < M; k++) {
        if ((st = mrec_mul(ctx, k ? m->t1 : m->dot, m->mod[k].w, m->mod[k].dw, N))) return st;
        if (k && (st = mrec_add(ctx, m->dot, m->dot, m->t1, N))) return st;
    }
    if ((st = mrec_scale(ctx, m->dot, m->dot, -1.0f, N))) return st;
    for (int k = 0; k < M; k++) {
        modality *q = &m->mod[k];
        if ((st = mrec_add(ctx, q->dw, q->dw, m->dot, N)) || (st = mrec_mul(ctx, q->dw, q->dw, q->w, N))) return st;
        /* a = tanh(M_m Q^T + q) w^T: dw += da^T att; d att = da w; dT = d att (1 - att^2) */
        if ((st = mrec_gemm(ctx, m->q2_grad, q->dw, q->att, NULL, 1, k ? 1 : 0, 1, 0, 1, d, N, 1, d, d))) return st;
        if ((st = mrec_gemm(ctx, m->t2, q->dw, m->q2, NULL, 1, 0, 0, 0, N, d, 1, 1, d, d))) return st;
        if ((st = mrec_mul(ctx, m->t1, m->t2, q->att, nd)) || (st = mrec_mul(ctx, m->t1, m->t1, q->att, nd))) return st;
        if ((st = mrec_scale(ctx, m->t1, m->t1, -1.0f, nd)) || (st = mrec_add(ctx, m->t2, m->t2, m->t1, nd))) return st;
        if ((st = mrec_gemm(ctx, m->qw_grad, m->t2, q->mv, NULL, 1, k ? 1 : 0, 1, 0, d, d, N, d, d, d))) return st;
        if ((st = col_sums(m, m->qb_grad, m->t2, N, d, k ? 1 : 0))) return st;
        if ((st = mrec_gemm(ctx, q->dmv, m->t2, m->qw, NULL, 1, 1, 0, 0, N, d, d, d, d, d))) return st;
    }
    for (int k = 0; k < M; k++) {
        modality *q = &m->mod[k];
        /* M_m = Â z + z: dz = Â dM + dM (Â symmetric), its item rows dh */
        float *dh = m->t2 + (size_t)U * d;
        if ((st = mrec_spmm(ctx, m->t2, &m->adj, q->dmv, d, 0)) || (st = mrec_add(ctx, m->t2, m->t2, q->dmv, nd))) return st;
        for (int l = 0; l < m->item_layers; l++) {
            if ((st = mrec_spmm(ctx, m->t1, &q->s, dh, d, 1)) || (st = mrec_copy_rows(ctx, dh, d, m->t1, d, I, d))) return st;
        }
        /* h0 = E_i * sigmoid(gz): E_i gets dh sigmoid, the gate dh E_i */
        if ((st = gated(ctx, k ? m->t3 : m->dei, dh, q->gt, m->t1, id))) return st;
        if (k && (st = mrec_add(ctx, m->dei, m->dei, m->t3, id))) return st;
        if ((st = mrec_mul(ctx, m->t3, dh, ei, id)) || (st = sigmoid_back(ctx, m->t3, m->t3, q->gt, m->t1, id))) return st;
        if ((st = mrec_gemm(ctx, q->gw_grad, m->t3, q->fm, NULL, 1, 0, 1, 0, d, d, I, d, d, d))) return st;
        if ((st = col_sums(m, q->gb_grad, m->t3, I, d, 0))) return st;
        /* f = X T^T + t: dT = df^T X, dX = df T */
        if ((st = mrec_gemm(ctx, m->t1, m->t3, q->gw, NULL, 1, 0, 0, 0, I, d, d, d, d, d))) return st;
        if ((st = mrec_gemm(ctx, q->tw_grad, m->t1, q->feat, NULL, 1, 0, 1, 0, d, q->f, I, d, q->f, q->f))) return st;
        if ((st = col_sums(m, q->tb_grad, m->t1, I, d, 0))) return st;
        if ((st = mrec_gemm(ctx, q->feat_grad, m->t1, q->tw, NULL, 1, 0, 0, 0, I, q->f, d, d, q->f, q->f))) return st;
    }
    /* C = LightGCN's mean over E: dE = its backward; the items' rows add the views' share */
    if ((st = mrec_csr_layer_mean_back(m->ego_grad, m->dcontent, &m->adj, 1, m->ui_layers, d, m->la, m->lb, ctx))) return st;
    return mrec_add(ctx, m->ego_grad + (size_t)U * d, m->ego_grad + (size_t)U * d, m->dei, id);
}

static void carve_batch(mgcn *m, mrec_arena *a) {
    size_t c = (size_t)m->cap, d = (size_t)m->dim;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
    m->v1 = F(2 * c * d), m->v2 = F(2 * c * d), m->d1 = F(2 * c * d), m->d2 = F(2 * c * d);
#undef F
}

/* Buffers for batches of up to n triples, grown when a batch is larger than any before. */
static mrec_status ensure_batch(mgcn *m, int n) {
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

/* cl InfoNCE(a, b) over n rows into *loss; da, db (n, d) its gradients. a, b (n, d). */
static mrec_status info_nce(mgcn *m, double *loss_at, float *da, float *db, const float *a, const float *b, int n) {
    return mrec_info_nce_run(&m->nce, m->ctx, loss_at, da, db, a, b, n, m->dim, m->temp, m->cl, 0);
}

/* The batch's loss stays on the context's device (m->bpr.loss): BPR and its regularizer, then the contrast's two terms
 * added there. In the trainer's two halves (mrec_model.stage, .launch): the host's part (buffers grown, the batch's
 * ids checked and sent up: the BPR triples, and [users ; U + positives] for the contrast), then the launches. */
static mrec_status mgcn_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mgcn *m = self;
    const int32_t *parts[2] = {u, i};
    const int offset[2] = {0, m->n_users};
    mrec_status st = ensure_batch(m, n);
    if (!st) st = mrec_info_nce_reserve(&m->nce, m->ctx, n, m->dim, 0);
    if (!st) st = mrec_bpr_ops_stage(&m->bpr, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->dim);
    return st ? st : mrec_batch_rows_stage(&m->rows, m->ctx, m->n_nodes, 2, parts, offset, n);
}

static mrec_status mgcn_launch(void *self, const double **loss) {
    mgcn *m = self;
    int d = m->dim, N = m->n_nodes, n = m->bpr.n;
    mrec_context *ctx = m->ctx;
    *loss = NULL;
    mrec_status st = forward(m);
    /* BPR on final's rows, and their squared norms over the configured batch size (MMRec's self.batch_size) */
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS, .weight = 1, .reg_form = MREC_BPR_REG_SQUARED_ALL, .reg = m->reg,
                          .reg_div = m->batch_size};
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->final, m->final);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->dfinal, m->final, 1, MREC_BPR_PARTS_ALL);
    if (st) return st;
    /* the contrastive terms: rows [users ; U + positives] of side against the same rows of C */
    size_t half = (size_t)n * d;
    if ((st = mrec_batch_rows_index(&m->rows))) return st;
    if ((st = mrec_embedding_checked(ctx, m->v1, m->side, m->rows.ids, 2 * n, N, d))) return st;
    if ((st = mrec_embedding_checked(ctx, m->v2, m->content, m->rows.ids, 2 * n, N, d))) return st;
    if ((st = info_nce(m, m->bpr.loss, m->d1, m->d2, m->v1, m->v2, n))) return st;
    if ((st = info_nce(m, m->bpr.loss, m->d1 + half, m->d2 + half, m->v1 + half, m->v2 + half, n))) return st;
    if ((st = mrec_batch_rows_scatter(&m->rows, m->dside, m->d1, d))) return st;
    if ((st = mrec_batch_rows_scatter(&m->rows, m->dcontent, m->d2, d))) return st;
    if ((st = backward(m))) return st;
    *loss = m->bpr.loss;
    return MREC_OK;
}

static const double *mgcn_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mgcn *m = self;
    const double *loss = NULL;
    m->status = mgcn_stage(m, u, i, j, n);
    if (!m->status) m->status = mgcn_launch(m, &loss);
    return m->status ? NULL : loss;
}

static double mgcn_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mgcn *m = self;
    return mrec_step_loss(m->ctx, &m->status, mgcn_step(self, u, i, j, n));
}

static mrec_status mgcn_prepare(void *self) { return forward(self); }

static mrec_status mgcn_score(void *self, int u0, int n, float *scores) {
    mgcn *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status mgcn_embeddings(void *self, float *users, float *items) {
    mgcn *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->dim);
}

static void mgcn_destroy(void *self) {
    mgcn *m = self;
    mrec_bpr_ops_free(&m->bpr);
    mrec_batch_rows_free(&m->rows);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    mrec_info_nce_free(&m->nce);
    free(m);
}

/* Every array from a (a measuring arena counts them), the graphs' too: Â of adj_nnz entries, S_m of s_nnz[k]. */
static void carve(mgcn *m, mrec_arena *a, int64_t adj_nnz, const int64_t *s_nnz) {
    size_t N = (size_t)m->n_nodes, d = (size_t)m->dim, I = (size_t)m->n_items;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
    m->ego = F(N * d), m->ego_grad = F(N * d);
    m->qw = F(d * d), m->qw_grad = F(d * d), m->qb = F(d), m->qb_grad = F(d), m->q2 = F(d), m->q2_grad = F(d);
    m->content = F(N * d), m->common = F(N * d), m->side = F(N * d), m->final = F(N * d), m->z = F(N * d);
    m->scores = F(N * (size_t)m->n_mod), m->soft = F(N * (size_t)m->n_mod);
    m->dfinal = F(N * d), m->dside = F(N * d), m->dcontent = F(N * d), m->dcommon = F(N * d);
    m->t1 = F(N * d), m->t2 = F(N * d), m->t3 = F(N * d), m->la = F(N * d), m->lb = F(N * d), m->dei = F(I * d);
    m->dot = F(N), m->ones = F(N > d ? N : d);
    for (int k = 0; k < m->n_mod; k++) {
        modality *q = &m->mod[k];
        size_t f = (size_t)q->f;
        q->feat = F(I * f), q->feat_grad = F(I * f), q->tw = F(d * f), q->tw_grad = F(d * f), q->tb = F(d), q->tb_grad = F(d);
        q->gw = F(d * d), q->gw_grad = F(d * d), q->gb = F(d), q->gb_grad = F(d), q->pw = F(d * d), q->pw_grad = F(d * d);
        q->pb = F(d), q->pb_grad = F(d);
        q->fm = F(I * d), q->gt = F(I * d), q->mv = F(N * d), q->dmv = F(N * d), q->att = F(N * d), q->pt = F(N * d), q->sep = F(N * d);
        q->w = F(N), q->dw = F(N);
        q->s = mrec_graph_carve(a, (int)I, (int)I, s_nnz[k], m->ctx->device);
        q->s_t = mrec_graph_carve(a, (int)I, (int)I, s_nnz[k], m->ctx->device);
    }
#undef F
    m->adj = mrec_graph_carve(a, (int)N, (int)N, adj_nnz, m->ctx->device);
    m->diag_ptr = mrec_arena_alloc(a, sizeof(int64_t) * (N + 1)), m->diag_col = mrec_arena_alloc(a, sizeof(int32_t) * N);
}

mrec_status mrec_mgcn_graph(mrec_graph *out, const mrec_user_items *train) {
    mrec_status st = mrec_graph_normalized(out, train);
    if (st) return st;
    /* MMRec's get_adj_mat: rowsum^-1/2 on both sides, no 1e-7, in float */
    float *inv = malloc(sizeof(float) * ((size_t)out->n_nodes + 1));
    if (!inv) {
        mrec_graph_free(out);
        return mrec_fail(MREC_ERR_NOMEM, "mgcn graph: %d nodes", out->n_nodes);
    }
    for (int r = 0; r < out->n_nodes; r++) {
        int64_t deg = out->row_ptr[r + 1] - out->row_ptr[r];
        inv[r] = deg ? powf((float)deg, -0.5f) : 0.0f;
    }
    for (int r = 0; r < out->n_nodes; r++)
        for (int64_t e = out->row_ptr[r]; e < out->row_ptr[r + 1]; e++) out->val[e] = inv[r] * inv[out->col[e]];
    free(inv);
    return MREC_OK;
}

mrec_status mrec_mgcn_item_graph(mrec_graph *out, const float *x, int n_items, int dim, int k, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    if (k < 1 || k > n_items) return mrec_fail(MREC_ERR_ARG, "mgcn item graph: k = %d for %d items", k, n_items);
    size_t nk = (size_t)n_items * k;
    out->n_nodes = n_items;
    out->row_ptr = malloc(sizeof *out->row_ptr * ((size_t)n_items + 1));
    out->col = malloc(sizeof *out->col * nk), out->val = malloc(sizeof *out->val * nk);
    float *deg = malloc(sizeof *deg * (size_t)n_items);
    if (!out->row_ptr || !out->col || !out->val || !deg) {
        free(deg), mrec_graph_free(out);
        return mrec_fail(MREC_ERR_NOMEM, "mgcn item graph: %d items x %d neighbours", n_items, k);
    }
    /* host features in, a host graph out, whatever device trains (as FREEDOM's graph); a GPU makes the products */
    mrec_status st = mrec_knn_rows(out->col, out->val, x, n_items, dim, k, ctx);
    for (int i = 0; !st && i < n_items; i++) {
        float s = 0; /* scatter_add of a row's k similarities, in order */
        for (int t = 0; t < k; t++) s += out->val[(size_t)i * k + t];
        if (!(s >= 0))
            st = mrec_fail(MREC_ERR_ARG, "mgcn item graph: item %d's %d nearest similarities sum to %g (MMRec's normalization needs >= 0)", i, k, s);
        deg[i] = s > 0 ? powf(s, -0.5f) : 0.0f;
        out->row_ptr[i] = (int64_t)i * k;
    }
    out->row_ptr[n_items] = (int64_t)nk;
    for (size_t e = 0; !st && e < nk; e++) out->val[e] = deg[e / (size_t)k] * out->val[e] * deg[out->col[e]];
    free(deg);
    if (st) mrec_graph_free(out);
    return st;
}

static void uniform(float *w, size_t count, double bound, mrec_rng *rng) {
    for (size_t e = 0; e < count; e++) w[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
}

static mrec_status upload_graph(mrec_context *ctx, const mrec_csr *dst, const mrec_graph *g) {
    mrec_csr src = mrec_graph_csr(g);
    src.n_rows = dst->n_rows, src.n_cols = dst->n_cols;
    return mrec_graph_upload(ctx, dst, &src);
}

/* Initial values drawn on the host in a fixed order (the same on every device): E (xavier), then per modality T, t,
 * G, g, P, p, then Q, q, w (nn.Linear's bounds); the features, graphs and constants with them. */
static mrec_status upload(mgcn *m, const mrec_graph *adj, const mrec_graph *item_graph, const float *const *feat, mrec_rng *rng) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes;
    mrec_context *ctx = m->ctx;
    size_t most = (size_t)N * d + 1;
    for (int k = 0; k < m->n_mod; k++)
        if ((size_t)d * m->mod[k].f > most) most = (size_t)d * m->mod[k].f;
    if ((size_t)N + 1 > most / 2) most = 2 * ((size_t)N + 1);
    float *h = malloc(sizeof(float) * most);
    if (!h) return mrec_fail(MREC_ERR_NOMEM, "mgcn: %zu initial values", most);
    mrec_status st = MREC_OK;
    uniform(h, (size_t)U * d, sqrt(6.0 / (U + d)), rng), uniform(h + (size_t)U * d, (size_t)I * d, sqrt(6.0 / (I + d)), rng);
    st = mrec_copy_to_device(ctx, m->ego, h, sizeof(float) * (size_t)N * d);
    double bd = 1.0 / sqrt((double)d);
    for (int k = 0; k < m->n_mod && !st; k++) {
        modality *q = &m->mod[k];
        double bf = 1.0 / sqrt((double)q->f);
        float *dst[6] = {q->tw, q->tb, q->gw, q->gb, q->pw, q->pb};
        size_t cnt[6] = {(size_t)d * q->f, (size_t)d, (size_t)d * d, (size_t)d, (size_t)d * d, (size_t)d};
        for (int t = 0; t < 6 && !st; t++) {
            uniform(h, cnt[t], t < 2 ? bf : bd, rng);
            st = mrec_copy_to_device(ctx, dst[t], h, sizeof(float) * cnt[t]);
        }
        if (!st) st = mrec_copy_to_device(ctx, q->feat, feat[k], sizeof(float) * (size_t)I * q->f);
        if (!st) st = upload_graph(ctx, &q->s, &item_graph[k]);
        mrec_graph t = {0};
        if (!st) st = mrec_graph_transpose(&t, &item_graph[k]);
        if (!st) st = upload_graph(ctx, &q->s_t, &t);
        mrec_graph_free(&t);
        q->s.transposed = &q->s_t;
    }
    float *dst[3] = {m->qw, m->qb, m->q2};
    size_t cnt[3] = {(size_t)d * d, (size_t)d, (size_t)d};
    for (int t = 0; t < 3 && !st; t++) {
        uniform(h, cnt[t], bd, rng);
        st = mrec_copy_to_device(ctx, dst[t], h, sizeof(float) * cnt[t]);
    }
    if (!st) st = upload_graph(ctx, &m->adj, adj);
    m->adj.transposed = &m->adj; /* symmetric */
    /* z's user rows stay 0; the ones; the diagonal's pattern */
    memset(h, 0, sizeof(float) * (size_t)U * d);
    if (!st) st = mrec_copy_to_device(ctx, m->z, h, sizeof(float) * (size_t)U * d);
    size_t n_ones = (size_t)(N > d ? N : d);
    for (size_t e = 0; e < n_ones; e++) h[e] = 1.0f;
    if (!st) st = mrec_copy_to_device(ctx, m->ones, h, sizeof(float) * n_ones);
    int64_t *ptr = (int64_t *)h;
    for (int r = 0; r <= N; r++) ptr[r] = r;
    if (!st) st = mrec_copy_to_device(ctx, m->diag_ptr, ptr, sizeof(int64_t) * ((size_t)N + 1));
    int32_t *col = (int32_t *)h;
    for (int r = 0; r < N; r++) col[r] = r;
    if (!st) st = mrec_copy_to_device(ctx, m->diag_col, col, sizeof(int32_t) * (size_t)N);
    for (int k = 0; k < m->n_mod; k++) {
        modality *q = &m->mod[k];
        q->diag = (mrec_csr){.n_rows = N, .n_cols = N, .row_ptr = m->diag_ptr, .col = m->diag_col, .val = q->w, .device = ctx->device};
        q->diag.transposed = &q->diag;
    }
    free(h);
    return st;
}

mrec_status mrec_mgcn_create(mrec_model *out, const mrec_graph *adj, const mrec_graph *item_graph, int n_users, int n_items,
                             const float *const *feat, const int *feat_dim, int n_modalities, int dim, int ui_layers, int item_layers,
                             float reg, float cl, float temp, int batch_size, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    if (adj->n_nodes != n_users + n_items || n_modalities < 1 || n_modalities > MAX_MOD || dim < 1 || ui_layers < 0 || ui_layers > 16 ||
        item_layers < 0 || item_layers > 16 || batch_size < 1 || !(temp > 0))
        return mrec_fail(MREC_ERR_ARG,
                         "mgcn: graph of %d nodes for %d users + %d items, %d modalities (1 to %d), %d and %d layers (0 to 16), "
                         "batch size %d, temperature %g",
                         adj->n_nodes, n_users, n_items, n_modalities, MAX_MOD, ui_layers, item_layers, batch_size, temp);
    for (int k = 0; k < n_modalities; k++)
        if (feat_dim[k] < 1 || item_graph[k].n_nodes != n_items)
            return mrec_fail(MREC_ERR_ARG, "mgcn: modality %d has %d features and an item graph of %d nodes for %d items", k, feat_dim[k],
                             item_graph[k].n_nodes, n_items);
    mgcn *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "mgcn");
    m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items, m->dim = dim, m->ui_layers = ui_layers;
    m->item_layers = item_layers, m->n_mod = n_modalities, m->batch_size = batch_size, m->reg = reg, m->cl = cl, m->temp = temp;
    m->ctx = ctx;
    int64_t s_nnz[MAX_MOD];
    for (int k = 0; k < n_modalities; k++) m->mod[k].f = feat_dim[k], s_nnz[k] = item_graph[k].row_ptr[n_items];
    int64_t adj_nnz = adj->row_ptr[adj->n_nodes];
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, adj_nnz, s_nnz);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        free(m);
        return st;
    }
    carve(m, &m->mem, adj_nnz, s_nnz);
    if ((st = upload(m, adj, item_graph, feat, rng)) || (st = forward(m))) {
        mgcn_destroy(m);
        return st;
    }
    int p = 0;
#define PARAM(w, g, count) out->param[p] = (w), out->grad[p] = (g), out->size[p++] = (int64_t)(count)
    PARAM(m->ego, m->ego_grad, (size_t)m->n_nodes * dim);
    for (int k = 0; k < n_modalities; k++) {
        modality *q = &m->mod[k];
        PARAM(q->feat, q->feat_grad, (size_t)n_items * q->f);
        PARAM(q->tw, q->tw_grad, (size_t)dim * q->f), PARAM(q->tb, q->tb_grad, dim);
        PARAM(q->gw, q->gw_grad, (size_t)dim * dim), PARAM(q->gb, q->gb_grad, dim);
        PARAM(q->pw, q->pw_grad, (size_t)dim * dim), PARAM(q->pb, q->pb_grad, dim);
    }
    PARAM(m->qw, m->qw_grad, (size_t)dim * dim), PARAM(m->qb, m->qb_grad, dim), PARAM(m->q2, m->q2_grad, dim);
#undef PARAM
    out->n_params = p;
    out->name = "MGCN", out->self = m;
    out->status = &m->status;
    out->loss_grad = mgcn_loss_grad, out->step = mgcn_step, out->prepare = mgcn_prepare, out->score = mgcn_score;
    out->stage = mgcn_stage, out->launch = mgcn_launch;
    out->embed_dim = dim, out->embeddings = mgcn_embeddings;
    out->destroy = mgcn_destroy;
    return MREC_OK;
}
