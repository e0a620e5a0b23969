/* mentor.c: MENTOR (Xu et al., "MENTOR: Multi-level Self-supervised Learning
 * for Multimodal Recommendation", AAAI 2025) as its authors' code defines it
 * (Jinfeng-Xu/MENTOR, src/models/mentor.py, on MMRec).
 *
 * Nodes are users then items (N = U + I), d units. Seven graph networks of
 * one shape, each with its own weights: the visual (v) and textual (t) ones,
 * the id one (features: a trained (I, d) id_feat), and two perturbed copies
 * of v and of t (v1, t1, v2, t2). One of them, over features X (I, f):
 *   z    = leaky(X W1^T + b1) W2^T + b2          (I, d) W1 (4d, f), W2 (d, 4d), leaky slope 0.01
 *   x    = n([P ; z])                             (N, d) P (U, d) its user preferences, n: unit rows (F.normalize)
 *   h    = Â x (+ noise),  h1 = Â h (+ noise),  out = x + h + h1
 * with Â = D^-1/2 A D^-1/2 of the training pairs (both directions, no self loops: the reference's
 * Base_gcn, a torch_geometric MessagePassing whose message is deg^-1/2[src] deg^-1/2[dst] x_src, summed
 * at dst, with the degrees of its edge list; mrec_graph_normalized) and, for the perturbed copies only,
 * noise += eps sign(h) n(u) per row, u uniform in [0, 1) (eps 0.1 in the reference).
 * Six (N, 2d) tables from them, T(a) = a + S^L a on the items' rows (S FREEDOM's frozen kNN item graph,
 * L = n_mm_layers; 2a for L = 0, as the reference's a + buildItemGraph(a)), w (U, 2) trained per-user modality weights:
 *   R  = [w0 v_U, w1 t_U ; T v_I, T t_I]     G  = [id_U, id_U ; T id_I, T id_I]
 *   V  = [v_U, v_U ; T v_I, T v_I]           Tt = [t_U, t_U ; T t_I, T t_I]
 *   R1, R2 as R from (v1, t1) and (v2, t2)
 * score(u, i) = <R_u, R_i>. Loss per batch (u, i, j):
 *   -mean log2 sigmoid(<R_u, R_i> - <R_u, R_j>)
 *   + reg (mean(P_v[u]^2) + mean(P_t[u]^2) + mean(w^2))       the batch's users with repeats; all of w
 *   + align sum over the 6 pairs (a, b) of {R, G, V, Tt}: |var a - var b| + |mean a - mean b|
 *         (over all N x 2d entries; var unbiased, as torch.var)
 *   + mask_g (InfoNCE(R1_U, R2_U) + InfoNCE(R1_I, R2_I))       over ALL users and ALL items
 *   InfoNCE(a, b) = mean_r -log(exp(<â_r, b̂_r>/t) / sum_c exp(<â_r, b̂_c>/t)), unit rows.
 * Initial values: P and id_feat xavier-normal, w xavier-normal then a softmax per user, W, b as nn.Linear.
 *
 * What the reference computes that changes nothing, left out: its feature-masking term
 * (mask_weight_f (1 - cos(dropout(R), mlp(R)))) is computed entirely under torch.no_grad, so it adds a
 * constant to the loss and no gradient (dropout and mask_weight_f move no weight); the user co-occurrence
 * graph (user_graph_dict.npy) is sampled each epoch (pre_epoch_processing's topk_sample) but that sample
 * is read by no line of forward or the loss; the edge lists with 10 % of the items' edges dropped are
 * passed to each network, whose forward ignores them; image_embedding, *_trs, weight_i, MLP_user and mlp
 * are never read by the loss. The reported loss here is the reference's minus the masking constant.
 *
 * Ranking, as the reference's full_sort_predict: R from the last training batch's forward (before that
 * batch's Adam step), not recomputed; before any batch, prepare computes it once.
 *
 * Where it differs: the noise's uniforms come from mrec_sign_noise's hash stream keyed by a seed, the
 * step, the network and the layer (the distribution of torch.rand_like, not its draws), the same on every
 * device. The reference needs exactly a visual and a textual modality; so does this.
 *
 * One path, through the op entries only: every array is carved from one allocation on the context's
 * device (the contrast's block of rows x all rows a second, grown with the batch), so the same code trains
 * on the CPU and a GPU. The InfoNCE over all users runs in blocks of rows: nothing is U x U or I x I, and
 * the graphs are sparse.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_GCN 7     /* v, t, id, v1, t1, v2, t2 */
#define N_TAB 6     /* R, G, V, Tt, R1, R2 */
#define NORM_EPS 1e-12f
#define SLOPE 0.01f /* F.leaky_relu's default */
#define LN2 0.69314718055994530942

typedef struct {
    int f;                               /* input width: the modality's, or d for the id network */
    float *x, *gx;                       /* (I, f) the features (the id network's: id_feat, trained, and its gradient) */
    float *w, *g;                        /* the packed parameters [P | W1 | b1 | W2 | b2] and their gradient */
    float *P, *W1, *b1, *W2, *b2;        /* (U, d), (4d, f), (4d), (d, 4d), (d): views into w */
    float *gP, *gW1, *gb1, *gW2, *gb2;   /* the same views into g */
    float *a1, *z1;                      /* (I, 4d) the first layer before and after leaky */
    float *x0, *xn;                      /* (N, d) [P ; z] and its unit rows */
    float *h, *out, *dout;               /* (N, d) Â x (+ noise); x + h + h1; d loss / d out */
    float *ti;                           /* (I, d) T(out_I) */
    int64_t size;                        /* floats in w */
} gcn;

/* table t: column block b from network SRC[t][b], the users' rows weighted by w_b where WEIGHTED[t] */
static const int SRC[N_TAB][2] = {{0, 1}, {2, 2}, {0, 0}, {1, 1}, {3, 4}, {5, 6}};
static const int WEIGHTED[N_TAB] = {1, 0, 0, 0, 1, 1};

typedef struct {
    int n_users, n_items, n_nodes, dim, item_layers;
    float reg, align, mask_g, temp, eps;
    uint64_t seed, step;
    int freeze, ran;                     /* freeze: every batch takes step 0's noise (tests); ran: a batch has run */
    int block_rows;                      /* the contrast's rows per block; 0: as many as 4M logits hold */
    mrec_context *ctx;
    mrec_arena mem;
    mrec_csr adj, s, s_t;                /* (N, N) Â, (I, I) S and S^T */
    gcn net[N_GCN];
    float *id_feat, *id_grad;            /* (I, d) */
    float *wu, *wu_grad;                 /* (U, 2) */
    float *wexp;                         /* (2, U, d) w_b spread over d columns */
    float *tab[N_TAB], *dtab[N_TAB];     /* (N, 2d) */
    float *ta, *tb, *tc, *td;            /* (N, 2d) each, (I, 4d) scratch */
    float *ones, *zeros;                 /* (max(N, 4d)), (N 2d) */
    float *bvec;                         /* (8, 2d) the align term's column sums, then its four offsets */
    float *alpha;                        /* (4) the align term's slopes */
    mrec_info_nce nce;                   /* the contrast's buffers, a block of rows at a time */
    int cap;                             /* batch rows gath holds */
    mrec_arena bat;
    float *gath;                         /* (cap, d) the batch users' rows of P */
    mrec_batch_rows rows;
    mrec_bpr_ops bpr;
    mrec_step_keys step_keys;            /* a training step's noise keys (network 3 + k / 2, layer k % 2), in the context's memory */
    mrec_status status;
} mentor;

static mrec_status zero(mentor *m, float *x, int64_t n) {
    mrec_status st = MREC_OK;
    int64_t most = (int64_t)m->n_nodes * 2 * m->dim;
    for (int64_t at = 0; at < n && !st; at += most) {
        int64_t k = n - at < most ? n - at : most;
        st = mrec_copy_rows(m->ctx, x + at, (int)k, m->zeros, (int)k, 1, (int)k);
    }
    return st;
}

/* out (cols) = column sums of g (rows, cols) */
static mrec_status col_sums(mentor *m, float *out, const float *g, int rows, int cols, float beta) {
    return mrec_gemm(m->ctx, out, m->ones, g, NULL, 1, beta, 0, 0, 1, cols, rows, rows, cols, cols);
}

static uint64_t noise_key(const mentor *m, int k, int layer) {
    uint64_t step = m->freeze ? 0 : m->step;
    return mrec_mix64(m->seed ^ mrec_mix64(step * 8 + (uint64_t)(k - 3) * 2 + (uint64_t)layer));
}

/* one network's forward: q->out, and what its backward reads; the perturbed copies' noise under a training step's
 * keys in the context's memory (keys, the stage drew them), or the current step's as values (keys NULL) */
static mrec_status gcn_forward(mentor *m, int k, const uint64_t *keys) {
    gcn *q = &m->net[k];
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, h4 = 4 * d;
    int64_t nd = (int64_t)N * d;
    mrec_context *ctx = m->ctx;
    mrec_status st = mrec_gemm(ctx, q->a1, q->x, q->W1, q->b1, 1, 0, 0, 1, I, h4, q->f, q->f, q->f, h4);
    if (!st) st = mrec_activation(ctx, q->z1, q->a1, MREC_ACT_LEAKY_RELU, SLOPE, (int64_t)I * h4);
    if (!st) st = mrec_gemm(ctx, q->x0 + (size_t)U * d, q->z1, q->W2, q->b2, 1, 0, 0, 1, I, d, h4, h4, h4, d);
    if (!st) st = mrec_copy_rows(ctx, q->x0, d, q->P, d, U, d);
    if (!st) st = mrec_l2_normalize_rows(ctx, q->xn, q->x0, NORM_EPS, N, d);
    /* h = Â x, h1 = Â h, each perturbed in the noisy copies; out = x + h + h1 (h1 in m->ta) */
    if (!st) st = mrec_spmm(ctx, q->h, &m->adj, q->xn, d, 0);
    if (!st && k >= 3 && m->eps > 0)
        st = keys ? mrec_sign_noise_at(ctx, q->h, NULL, m->eps, keys + (k - 3) * 2, 0, N, d)
                  : mrec_sign_noise(ctx, q->h, NULL, m->eps, noise_key(m, k, 0), 0, N, d);
    if (!st) st = mrec_spmm(ctx, m->ta, &m->adj, q->h, d, 0);
    if (!st && k >= 3 && m->eps > 0)
        st = keys ? mrec_sign_noise_at(ctx, m->ta, NULL, m->eps, keys + (k - 3) * 2 + 1, 0, N, d)
                  : mrec_sign_noise(ctx, m->ta, NULL, m->eps, noise_key(m, k, 1), 0, N, d);
    if (!st) st = mrec_add(ctx, q->out, q->xn, q->h, nd);
    if (!st) st = mrec_add(ctx, q->out, q->out, m->ta, nd);
    /* T(out_I) = out_I + S^L out_I */
    const float *oi = q->out + (size_t)U * d;
    if (!st) st = mrec_copy_rows(ctx, q->ti, d, oi, d, I, d);
    for (int l = 0; l < m->item_layers && !st; l++) {
        st = mrec_spmm(ctx, m->tb, &m->s, l ? m->ta : oi, d, 0);
        if (!st) st = mrec_copy_rows(ctx, m->ta, d, m->tb, d, I, d);
    }
    /* S^0 is the identity: with no item-graph layer the items' rows are doubled, as the reference's a + buildItemGraph(a) */
    if (!st) st = mrec_add(ctx, q->ti, q->ti, m->item_layers ? m->ta : oi, (int64_t)I * d);
    return st;
}

/* one network's gradients from q->dout (the items' rows already through T^T) */
static mrec_status gcn_backward(mentor *m, int k) {
    gcn *q = &m->net[k];
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, h4 = 4 * d;
    int64_t nd = (int64_t)N * d;
    mrec_context *ctx = m->ctx;
    /* the noise is sign(h) times a draw: no gradient of its own. dh = dout + Â dout; dx = dout + Â dh (Â symmetric) */
    float *dh = m->ta, *dx = m->tb, *dx0 = m->tc;
    mrec_status st = mrec_spmm(ctx, dh, &m->adj, q->dout, d, 0);
    if (!st) st = mrec_add(ctx, dh, dh, q->dout, nd);
    if (!st) st = mrec_spmm(ctx, dx, &m->adj, dh, d, 0);
    if (!st) st = mrec_add(ctx, dx, dx, q->dout, nd);
    if (!st) st = mrec_l2_normalize_rows_back(ctx, dx0, dx, q->xn, q->x0, NORM_EPS, 0, N, d);
    if (!st) st = mrec_copy_rows(ctx, q->gP, d, dx0, d, U, d);
    /* z = z1 W2^T + b2: dW2 = dz^T z1, db2 = column sums, dz1 = dz W2; then leaky, then W1 */
    const float *dz = dx0 + (size_t)U * d;
    float *dz1 = m->td;
    if (!st) st = mrec_gemm(ctx, q->gW2, dz, q->z1, NULL, 1, 0, 1, 0, d, h4, I, d, h4, h4);
    if (!st) st = col_sums(m, q->gb2, dz, I, d, 0);
    if (!st) st = mrec_gemm(ctx, dz1, dz, q->W2, NULL, 1, 0, 0, 0, I, h4, d, d, h4, h4);
    if (!st) st = mrec_leaky_relu_back(ctx, dz1, dz1, q->a1, SLOPE, (int64_t)I * h4);
    if (!st) st = mrec_gemm(ctx, q->gW1, dz1, q->x, NULL, 1, 0, 1, 0, h4, q->f, I, h4, q->f, q->f);
    if (!st) st = col_sums(m, q->gb1, dz1, I, h4, 0);
    if (!st && q->gx) st = mrec_gemm(ctx, q->gx, dz1, q->W1, NULL, 1, 0, 0, 0, I, q->f, h4, h4, q->f, q->f);
    return st;
}

/* every network, then the six tables */
static mrec_status forward(mentor *m, const uint64_t *keys) {
    int d = m->dim, U = m->n_users, I = m->n_items, W = 2 * d;
    mrec_context *ctx = m->ctx;
    mrec_status st = MREC_OK;
    for (int k = 0; k < N_GCN && !st; k++) st = gcn_forward(m, k, keys);
    /* w_b spread over d columns: w[:, b] (U x 1) times ones (1 x d) */
    for (int b = 0; b < 2 && !st; b++)
        st = mrec_gemm(ctx, m->wexp + (size_t)b * U * d, m->wu + b, m->ones, NULL, 1, 0, 0, 0, U, d, 1, 2, d, d);
    for (int t = 0; t < N_TAB && !st; t++)
        for (int b = 0; b < 2 && !st; b++) {
            const gcn *q = &m->net[SRC[t][b]];
            const float *users = q->out;
            if (WEIGHTED[t]) {
                st = mrec_mul(ctx, m->tc, q->out, m->wexp + (size_t)b * U * d, (int64_t)U * d);
                users = m->tc;
            }
            if (!st) st = mrec_copy_rows(ctx, m->tab[t] + (size_t)b * d, W, users, d, U, d);
            if (!st) st = mrec_copy_rows(ctx, m->tab[t] + (size_t)U * W + (size_t)b * d, W, q->ti, d, I, d);
        }
    return st;
}

/* ---- the losses ---- */

/* var and mean of each of R, G, V, Tt (all N x 2d entries): the align term added to *loss (in the context's memory),
 * its gradient added to dtab */
static mrec_status align_term(mentor *m, double *loss) {
    int W = 2 * m->dim, N = m->n_nodes;
    int64_t n = (int64_t)N * W;
    mrec_context *ctx = m->ctx;
    mrec_status st = MREC_OK;
    if (m->align == 0) return MREC_OK; /* no term, no gradient: the passes below would add zeros */
    /* each table's column sums and sums of squares, rows 2a and 2a + 1 of bvec; then the loss, each table's slope
     * and (into row a) its offset: d/dx = alpha_a x + beta_a */
    for (int a = 0; a < 4 && !st; a++) {
        st = mrec_mul(ctx, m->ta, m->tab[a], m->tab[a], n);
        if (!st) st = col_sums(m, m->bvec + (size_t)2 * a * W, m->tab[a], N, W, 0);
        if (!st) st = col_sums(m, m->bvec + (size_t)(2 * a + 1) * W, m->ta, N, W, 0);
    }
    if (!st) st = mrec_moment_align(ctx, m->alpha, m->bvec, loss, W, n, m->align);
    for (int a = 0; a < 4 && !st; a++) {
        st = mrec_scale_at(ctx, m->ta, m->tab[a], m->alpha + a, n);
        if (!st) st = mrec_add(ctx, m->dtab[a], m->dtab[a], m->ta, n);
        if (!st) st = mrec_gemm(ctx, m->dtab[a], m->ones, m->bvec + (size_t)a * W, NULL, 1, 1, 0, 0, N, W, 1, 1, W, W);
    }
    return st;
}

/* alpha times InfoNCE(a, b) over n rows (W wide) added to *loss (in the context's memory); da, db (n, W) its
 * gradients (written). Blocks of rows. */
static mrec_status info_nce(mentor *m, double *loss, float *da, float *db, const float *a, const float *b, int n, float alpha) {
    return mrec_info_nce_run(&m->nce, m->ctx, loss, da, db, a, b, n, 2 * m->dim, m->temp, alpha, m->block_rows);
}

/* reg mean(P[u]^2) over the batch's users (repeats kept) for the visual and textual networks, and reg mean(w^2),
 * added to *loss (in the context's memory) */
static mrec_status reg_term(mentor *m, double *loss, int n) {
    int d = m->dim, U = m->n_users;
    int64_t nd = (int64_t)n * d;
    mrec_context *ctx = m->ctx;
    mrec_status st = mrec_batch_rows_index(&m->rows); /* the batch's users, staged */
    for (int k = 0; k < 2 && !st; k++) {
        gcn *q = &m->net[k];
        st = mrec_embedding_checked(ctx, m->gath, q->P, m->rows.ids, n, U, d);
        if (!st) st = mrec_loss_dot(ctx, loss, m->gath, m->gath, nd, m->reg, (double)nd);
        if (!st) st = mrec_scale(ctx, m->gath, m->gath, 2.0f * m->reg / ((float)n * d), nd);
        if (!st) st = mrec_batch_rows_scatter(&m->rows, m->tb, m->gath, d);
        if (!st) st = mrec_add(ctx, q->gP, q->gP, m->tb, (int64_t)U * d);
    }
    if (!st) st = mrec_loss_dot(ctx, loss, m->wu, m->wu, 2 * (int64_t)U, m->reg, 2.0 * U);
    if (!st) st = mrec_scale(ctx, m->ta, m->wu, m->reg / (float)U, 2 * (int64_t)U);
    return st ? st : mrec_add(ctx, m->wu_grad, m->wu_grad, m->ta, 2 * (int64_t)U);
}

/* From dtab to each network's dout (through T^T on the items' rows) and w's gradient */
static mrec_status tables_back(mentor *m) {
    int d = m->dim, U = m->n_users, I = m->n_items, W = 2 * d;
    mrec_context *ctx = m->ctx;
    mrec_status st = MREC_OK;
    for (int k = 0; k < N_GCN && !st; k++) st = zero(m, m->net[k].dout, (int64_t)m->n_nodes * d);
    if (!st) st = zero(m, m->wu_grad, 2 * (int64_t)U);
    for (int t = 0; t < N_TAB && !st; t++)
        for (int b = 0; b < 2 && !st; b++) {
            gcn *q = &m->net[SRC[t][b]];
            float *du = m->ta;
            st = mrec_copy_rows(ctx, du, d, m->dtab[t] + (size_t)b * d, W, U, d);
            if (!st && WEIGHTED[t]) {
                /* dw_b += rows of du . out_U; du *= w_b */
                st = mrec_mul(ctx, m->tb, du, q->out, (int64_t)U * d);
                if (!st) st = mrec_gemm(ctx, m->wu_grad + b, m->tb, m->ones, NULL, 1, 1, 0, 0, U, 1, d, d, 1, 2);
                if (!st) st = mrec_mul(ctx, du, du, m->wexp + (size_t)b * U * d, (int64_t)U * d);
            }
            if (!st) st = mrec_add(ctx, q->dout, q->dout, du, (int64_t)U * d);
            if (!st) st = mrec_copy_rows(ctx, m->tb, d, m->dtab[t] + (size_t)U * W + (size_t)b * d, W, I, d);
            if (!st) st = mrec_add(ctx, q->dout + (size_t)U * d, q->dout + (size_t)U * d, m->tb, (int64_t)I * d);
        }
    /* T^T y = y + (S^T)^L y on each network's items' rows (2 y with no layer) */
    for (int k = 0; k < N_GCN && !st; k++) {
        float *y = m->net[k].dout + (size_t)U * d;
        for (int l = 0; l < m->item_layers && !st; l++) {
            st = mrec_spmm(ctx, m->tb, &m->s, l ? m->ta : y, d, 1);
            if (!st) st = mrec_copy_rows(ctx, m->ta, d, m->tb, d, I, d);
        }
        if (!st) st = mrec_add(ctx, y, y, m->item_layers ? m->ta : y, (int64_t)I * d);
    }
    return st;
}

/* Room for a batch of n users' rows of P (gath), grown, not per batch. */
static mrec_status ensure_batch(mentor *m, int n) {
    if (n <= m->cap) return MREC_OK;
    m->cap = 0;
    if (m->bat.base) mrec_arena_release(&m->bat, m->ctx->cuda);
    mrec_status st = mrec_arena_reserve(&m->bat, sizeof(float) * (size_t)n * m->dim + 256, m->ctx->device, m->ctx->cuda);
    if (st) return st;
    m->gath = mrec_arena_alloc(&m->bat, sizeof(float) * (size_t)n * m->dim);
    m->cap = n;
    return MREC_OK;
}

/* The batch's step, its loss left in m->bpr.loss on the context's device, in the trainer's two halves
 * (mrec_model.stage, .launch): the host's part (buffers grown, the step's noise keys drawn and the step counted, the
 * batch's triples and users checked, all sent up), then the launches. */
static mrec_status mentor_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mentor *m = self;
    const int32_t *parts[1] = {u};
    const int offset[1] = {0};
    uint64_t keys[8];
    for (int k = 3; k < N_GCN; k++) keys[(k - 3) * 2] = noise_key(m, k, 0), keys[(k - 3) * 2 + 1] = noise_key(m, k, 1);
    mrec_status st = ensure_batch(m, n);
    /* the contrast over all users, then all items */
    if (!st && m->mask_g > 0) st = mrec_info_nce_reserve(&m->nce, m->ctx, m->n_users, 2 * m->dim, m->block_rows);
    if (!st && m->mask_g > 0) st = mrec_info_nce_reserve(&m->nce, m->ctx, m->n_items, 2 * m->dim, m->block_rows);
    if (!st) st = mrec_step_keys_send(&m->step_keys, m->ctx, keys, 8);
    if (!st) st = mrec_bpr_ops_stage(&m->bpr, m->ctx, u, i, j, n, m->n_users, m->n_nodes, 2 * m->dim);
    if (!st) st = mrec_batch_rows_stage(&m->rows, m->ctx, m->n_users, 1, parts, offset, n);
    if (st) return st;
    m->ran = 1, m->step++;
    return MREC_OK;
}

static mrec_status batch_launch(mentor *m) {
    int U = m->n_users, N = m->n_nodes, W = 2 * m->dim;
    int64_t nw = (int64_t)N * W;
    mrec_status st = forward(m, m->step_keys.at);
    /* log2: MMRec's softplus loss over ln 2 */
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS, .weight = (float)(1.0 / LN2)};
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->tab[0], m->tab[0]);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->dtab[0], m->tab[0], 1, 0);
    for (int t = 1; t < N_TAB && !st; t++) st = zero(m, m->dtab[t], nw);
    double *loss = m->bpr.loss;
    if (!st) st = align_term(m, loss);
    /* the contrast of the perturbed tables over all users, then all items */
    if (!st && m->mask_g > 0) {
        size_t iu = (size_t)U * W;
        st = info_nce(m, loss, m->dtab[4], m->dtab[5], m->tab[4], m->tab[5], U, m->mask_g);
        if (!st) st = info_nce(m, loss, m->dtab[4] + iu, m->dtab[5] + iu, m->tab[4] + iu, m->tab[5] + iu, m->n_items, m->mask_g);
    }
    if (!st) st = tables_back(m);
    for (int k = 0; k < N_GCN && !st; k++) st = gcn_backward(m, k);
    return st ? st : reg_term(m, loss, m->bpr.n);
}

static mrec_status mentor_launch(void *self, const double **loss) {
    mentor *m = self;
    mrec_status st = batch_launch(m);
    *loss = st ? NULL : m->bpr.loss;
    return st;
}

static const double *mentor_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mentor *m = self;
    m->status = mentor_stage(m, u, i, j, n);
    if (!m->status) m->status = batch_launch(m);
    return m->status ? NULL : m->bpr.loss;
}

static double mentor_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mentor *m = self;
    return mrec_step_loss(m->ctx, &m->status, mentor_step(self, u, i, j, n));
}

mrec_status mrec_mentor_set_noise_seed(mrec_model *model, uint64_t seed, int freeze) {
    if (!model->name || strcmp(model->name, "MENTOR"))
        return mrec_fail(MREC_ERR_ARG, "mentor noise: the model is %s, not MENTOR", model->name ? model->name : "unnamed");
    mentor *m = model->self;
    m->seed = seed, m->step = 0, m->freeze = freeze;
    return MREC_OK;
}

mrec_status mrec_mentor_set_block_rows(mrec_model *model, int rows) {
    if (!model->name || strcmp(model->name, "MENTOR"))
        return mrec_fail(MREC_ERR_ARG, "mentor blocks: the model is %s, not MENTOR", model->name ? model->name : "unnamed");
    if (rows < 0) return mrec_fail(MREC_ERR_ARG, "mentor blocks: %d rows", rows);
    ((mentor *)model->self)->block_rows = rows;
    return MREC_OK;
}

/* ---- ranking, lifetime ---- */

/* R as the last training batch's forward left it (the reference's full_sort_predict); before any batch, computed */
static mrec_status mentor_prepare(void *self) {
    mentor *m = self;
    if (m->ran) return MREC_OK;
    mrec_status st = forward(m, NULL);
    m->ran = !st;
    return st;
}

static mrec_status mentor_score(void *self, int u0, int n, float *scores) {
    mentor *m = self;
    return mrec_score_final(m->ctx, scores, m->tab[0], m->n_users, m->n_items, 2 * m->dim, u0, n);
}

static mrec_status mentor_embeddings(void *self, float *users, float *items) {
    mentor *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->tab[0], m->n_users, m->n_items, 2 * m->dim);
}

static void mentor_destroy(void *self) {
    mentor *m = self;
    mrec_bpr_ops_free(&m->bpr);
    mrec_batch_rows_free(&m->rows);
    mrec_step_keys_free(&m->step_keys);
    mrec_info_nce_free(&m->nce);
    if (m->bat.base) mrec_arena_release(&m->bat, m->ctx->cuda);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m);
}

static void carve(mentor *m, mrec_arena *a, int64_t adj_nnz, int64_t s_nnz) {
    size_t N = (size_t)m->n_nodes, U = (size_t)m->n_users, I = (size_t)m->n_items, d = (size_t)m->dim, W = 2 * d;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
    for (int k = 0; k < N_GCN; k++) {
        gcn *q = &m->net[k];
        size_t f = (size_t)q->f;
        q->size = (int64_t)(U * d + 4 * d * f + 4 * d + d * 4 * d + d);
        q->w = F((size_t)q->size), q->g = F((size_t)q->size);
        q->P = q->w, q->W1 = q->P + U * d, q->b1 = q->W1 + 4 * d * f, q->W2 = q->b1 + 4 * d, q->b2 = q->W2 + d * 4 * d;
        q->gP = q->g, q->gW1 = q->gP + U * d, q->gb1 = q->gW1 + 4 * d * f, q->gW2 = q->gb1 + 4 * d, q->gb2 = q->gW2 + d * 4 * d;
        if (k != 2) q->x = F(I * f);
        q->a1 = F(I * 4 * d), q->z1 = F(I * 4 * d), q->x0 = F(N * d), q->xn = F(N * d);
        q->h = F(N * d), q->out = F(N * d), q->dout = F(N * d), q->ti = F(I * d);
    }
    m->id_feat = F(I * d), m->id_grad = F(I * d), m->wu = F(U * 2), m->wu_grad = F(U * 2), m->wexp = F(2 * U * d);
    m->net[2].x = m->id_feat, m->net[2].gx = m->id_grad;
    for (int t = 0; t < N_TAB; t++) m->tab[t] = F(N * W), m->dtab[t] = F(N * W);
    m->ta = F(N * W), m->tb = F(N * W), m->tc = F(N * W), m->td = F(I * 4 * d), m->ones = F(N > 4 * d ? N : 4 * d);
    m->zeros = F(N * W), m->bvec = F(8 * W), m->alpha = F(4);
#undef F
    mrec_device dev = m->ctx->device;
    m->adj = mrec_graph_carve(a, (int)N, (int)N, adj_nnz, dev);
    m->s = mrec_graph_carve(a, (int)I, (int)I, s_nnz, dev), m->s_t = mrec_graph_carve(a, (int)I, (int)I, s_nnz, dev);
}

static void uniform(float *w, size_t count, double bound, mrec_rng *rng) {
    for (size_t e = 0; e < count; e++) w[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
}
static void normal(float *w, size_t count, double std, mrec_rng *rng) {
    for (size_t e = 0; e < count; e++) w[e] = (float)(std * mrec_rng_normal(rng));
}

/* Initial values on the host in a fixed order: per network P (xavier normal), W1, b1, W2, b2 (nn.Linear's bounds);
 * id_feat (xavier normal); w (xavier normal of (U, 2, 1), then a softmax per user). Features, graphs, constants. */
static mrec_status upload(mentor *m, const mrec_graph *adj, const mrec_graph *item_graph, const float *const *feat, mrec_rng *rng) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes;
    mrec_context *ctx = m->ctx;
    size_t most = (size_t)N * 2 * d + 4 * (size_t)d;
    for (int k = 0; k < N_GCN; k++)
        if ((size_t)m->net[k].size > most) most = (size_t)m->net[k].size;
    float *h = calloc(most, sizeof(float));
    if (!h) return mrec_fail(MREC_ERR_NOMEM, "mentor: %zu initial values", most);
    mrec_status st = mrec_copy_to_device(ctx, m->zeros, h, sizeof(float) * (size_t)N * 2 * d);
    for (int k = 0; k < N_GCN && !st; k++) {
        gcn *q = &m->net[k];
        size_t f = (size_t)q->f, at = 0;
        normal(h, (size_t)U * d, sqrt(2.0 / (U + d)), rng), at += (size_t)U * d;
        uniform(h + at, 4 * (size_t)d * f, 1.0 / sqrt((double)f), rng), at += 4 * (size_t)d * f;
        uniform(h + at, 4 * (size_t)d, 1.0 / sqrt((double)f), rng), at += 4 * (size_t)d;
        uniform(h + at, 4 * (size_t)d * d, 1.0 / sqrt(4.0 * d), rng), at += 4 * (size_t)d * d;
        uniform(h + at, (size_t)d, 1.0 / sqrt(4.0 * d), rng);
        st = mrec_copy_to_device(ctx, q->w, h, sizeof(float) * (size_t)q->size);
        int src = k == 2 ? -1 : (k == 0 || k == 3 || k == 5) ? 0 : 1;
        if (!st && src >= 0) st = mrec_copy_to_device(ctx, q->x, feat[src], sizeof(float) * (size_t)I * f);
    }
    normal(h, (size_t)I * d, sqrt(2.0 / (I + d)), rng);
    if (!st) st = mrec_copy_to_device(ctx, m->id_feat, h, sizeof(float) * (size_t)I * d);
    normal(h, 2 * (size_t)U, sqrt(2.0 / (U + 2)), rng);
    for (int u = 0; u < U; u++) {
        double a = h[2 * u], b = h[2 * u + 1], top = a > b ? a : b, ea = exp(a - top), eb = exp(b - top);
        h[2 * u] = (float)(ea / (ea + eb)), h[2 * u + 1] = (float)(eb / (ea + eb));
    }
    if (!st) st = mrec_copy_to_device(ctx, m->wu, h, sizeof(float) * 2 * (size_t)U);
    int n_ones = N > 4 * d ? N : 4 * d;
    for (int r = 0; r < n_ones; r++) h[r] = 1.0f;
    if (!st) st = mrec_copy_to_device(ctx, m->ones, h, sizeof(float) * (size_t)n_ones);
    free(h);
    mrec_csr src = mrec_graph_csr(adj);
    if (!st) st = mrec_graph_upload(ctx, &m->adj, &src);
    src = mrec_graph_csr(item_graph);
    if (!st) st = mrec_graph_upload(ctx, &m->s, &src);
    mrec_graph t = {0};
    if (!st) st = mrec_graph_transpose(&t, item_graph);
    src = mrec_graph_csr(&t);
    if (!st) st = mrec_graph_upload(ctx, &m->s_t, &src);
    mrec_graph_free(&t);
    m->adj.transposed = &m->adj, m->s.transposed = &m->s_t;
    return st;
}

mrec_status mrec_mentor_create(mrec_model *out, const mrec_graph *adj, const mrec_graph *item_graph, int n_users, int n_items,
                               const float *const *feat, const int *feat_dim, int dim, int item_layers, float reg, float align,
                               float mask_g, float temp, float eps, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    int U = n_users, I = n_items;
    if (U < 1 || I < 1 || adj->n_nodes != U + I || item_graph->n_nodes != I || dim < 1 || dim > 4096 || item_layers < 0 ||
        item_layers > 16 || !(reg >= 0) || !(align >= 0) || !(mask_g >= 0) || !(temp > 0) || !(eps >= 0) || feat_dim[0] < 1 ||
        feat_dim[1] < 1)
        return mrec_fail(MREC_ERR_ARG,
                         "mentor: graphs of %d and %d nodes for %d users + %d items, dim %d, %d item-graph layers (0 to 16), reg %g, "
                         "align %g, mask_g %g, temperature %g, eps %g, features of %d and %d",
                         adj->n_nodes, item_graph->n_nodes, U, I, dim, item_layers, reg, align, mask_g, temp, eps, feat_dim[0],
                         feat_dim[1]);
    mentor *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "mentor");
    m->n_users = U, m->n_items = I, m->n_nodes = U + I, m->dim = dim, m->item_layers = item_layers, m->reg = reg, m->align = align;
    m->mask_g = mask_g, m->temp = temp, m->eps = eps, m->ctx = ctx;
    m->seed = mrec_rng_next(rng);
    for (int k = 0; k < N_GCN; k++) m->net[k].f = k == 2 ? dim : (k == 0 || k == 3 || k == 5) ? feat_dim[0] : feat_dim[1];
    int64_t adj_nnz = adj->row_ptr[adj->n_nodes], s_nnz = item_graph->row_ptr[I];
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, adj_nnz, s_nnz);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        free(m);
        return st;
    }
    carve(m, &m->mem, adj_nnz, s_nnz);
    if ((st = upload(m, adj, item_graph, feat, rng)) || (st = ensure_batch(m, 1))) {
        mentor_destroy(m);
        return st;
    }
    int p = 0;
#define PARAM(w, g, count) out->param[p] = (w), out->grad[p] = (g), out->size[p++] = (int64_t)(count)
    for (int k = 0; k < N_GCN; k++) PARAM(m->net[k].w, m->net[k].g, m->net[k].size);
    PARAM(m->id_feat, m->id_grad, (size_t)I * dim);
    PARAM(m->wu, m->wu_grad, 2 * (size_t)U);
#undef PARAM
    out->n_params = p;
    out->name = "MENTOR", out->self = m;
    out->state[0] = &m->step, out->n_state = 1; /* for a checkpoint */
    out->status = &m->status;
    out->loss_grad = mentor_loss_grad, out->step = mentor_step, out->prepare = mentor_prepare, out->score = mentor_score;
    out->stage = mentor_stage, out->launch = mentor_launch;
    out->embed_dim = 2 * dim, out->embeddings = mentor_embeddings;
    out->destroy = mentor_destroy;
    return MREC_OK;
}
