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
 * Â joins users to items only, so each side's rows of Â (x C) read the other side's rows of x alone, and each
 * side may associate the product its own way. Both run theirs over the smaller side's rows (S; B the other):
 * a_B = Â_BS (x_S C) and a_S = (Â_SB x_B) C, two products of |S| rows where x C took N (on Baby 14,100 rows
 * for 26,495, the items being the fewer), and the same sparse entries. The backward likewise: dC = x_S^T
 * (Â_BS^T da_B) + (Â_SB x_B)^T da_S, dx_S gets (Â_BS^T da_B) C^T and dx_B gets Â_SB^T (da_S C^T). Where the
 * features enter unprojected (no P_m), x_0's items' rows are constant and their gradient is not formed.
 *
 * Backward, layer by layer from dx_L = dF / M: dY = dx_{l+1} lrelu'(.), then
 * through the combination, x̂'s linear layer and the propagation (Â^T); x_0's
 * unit rows back to G_u^m and the projection. The features are not trained.
 *
 * One path, through the op entries only: every array (weights, gradients,
 * activations, the features, Â and its transpose) is carved from one
 * allocation on the context's device, so the same code trains on the CPU and
 * on a GPU. Bias gradients are column sums as a GEMM with a row of ones; the
 * batch's scores, row norms and scatters are bpr_ops.c's; only the loss's few
 * numbers come back to the host. G_u and G_i are one parameter [G_u ; G_i]
 * and each modality's layer weights one more (Adam is elementwise: one tensor
 * or several step alike).
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MOD 4
#define MAX_LAYERS 8
#define SLOPE 0.01f   /* torch.nn.functional.leaky_relu's default */
#define NORM_EPS 1e-12f /* F.normalize's floor */

typedef struct {
    int f, dm, project;             /* feature size, x_0's width (d_m), P_m present */
    float *feat;                    /* (I, f) the features, not trained */
    float *gum, *gum_grad;          /* (U, dm) */
    float *pw, *pw_grad, *pb, *pb_grad; /* (dm, f), (dm) */
    float *block, *block_grad;      /* the layers' weights below, one parameter */
    int64_t block_size;
    float *c[MAX_LAYERS], *c_grad[MAX_LAYERS];   /* (k, k) as x @ C */
    float *lw[MAX_LAYERS], *lw_grad[MAX_LAYERS]; /* (d, k) nn.Linear */
    float *lb[MAX_LAYERS], *lb_grad[MAX_LAYERS]; /* (d) */
    float *gw[MAX_LAYERS], *gw_grad[MAX_LAYERS]; /* (d, k + d) with concatenation, else (d, k) */
    float *gb[MAX_LAYERS], *gb_grad[MAX_LAYERS]; /* (d) */
    float *z;                       /* (I, dm) the items' f P^T + p, before the unit rows (with P) */
    float *y[MAX_LAYERS];           /* (|S|, k_l) Â_SB x_B, the smaller side's rows of Â x (propagate) */
    float *x[MAX_LAYERS + 1];       /* (N, k_l) each layer's input; x[L] (N, d) the output */
    float *a[MAX_LAYERS];           /* (N, k_l) Â (x C), before h's lrelu; without concatenation h itself (below) */
    float *pl[MAX_LAYERS];          /* (N, d) x L^T + l, before x̂'s lrelu */
    float *hx[MAX_LAYERS];          /* (N, k_l + d): h, then x̂; without concatenation (N, k_l): h alone */
    float *pg[MAX_LAYERS];          /* (N, d) before x_{l+1}'s lrelu, which then takes its place (x[l + 1]) */
} modality;

/* One side of the graph, its nodes [first, first + n), and Â's rows there as a matrix of their own (n, the other
 * side's count), columns counted from the other side's first node, with its transpose (the GPU's A^T products). */
typedef struct {
    int first, n;
    mrec_csr rows, rows_t;
} side;

typedef struct {
    int n_users, n_items, n_nodes, dim, layers, n_mod, concat, has_id, kmax;
    float l_w;
    mrec_context *ctx;
    mrec_arena mem;                 /* everything below that points to memory, on the context's device */
    side small, big;                /* the side with fewer nodes (the items where they are as many), and the other */
    int items_small;                /* small is the items' side */
    float *ego, *ego_grad;          /* (N, d) [G_u ; G_i] */
    modality mod[MAX_MOD];
    float *final, *dfinal;          /* (N, d) */
    float *s, *t, *dx, *dx2, *dhx;  /* scratch: (N, k_max) x 4, (N, k_max + d) */
    float *dy, *td;                 /* scratch (N, d) */
    float *ones;                    /* (N) */
    mrec_bpr_ops bpr;
    mrec_status status;
} mmgcn;

static int width(const mmgcn *m, const modality *q, int l) { return l ? m->dim : q->dm; }

static side *users_side(mmgcn *m) { return m->items_small ? &m->big : &m->small; }
static side *items_side(mmgcn *m) { return m->items_small ? &m->small : &m->big; }

/* bias gradient (cols) = the column sums of g (rows, cols): ones^T g */
static mrec_status col_sums(mmgcn *m, float *out, const float *g, int rows, int cols) {
    return mrec_gemm(m->ctx, out, m->ones, g, NULL, 1, 0, 0, 0, 1, cols, rows, rows, cols, cols);
}

/* a (N, k) = Â (x C): a_B = Â_BS (x_S C) and a_S = y C with y = Â_SB x_B, both products over |S| rows */
static mrec_status propagate(mmgcn *m, float *a, float *y, const float *x, const float *c, int k) {
    const side *S = &m->small, *B = &m->big;
    mrec_context *ctx = m->ctx;
    mrec_status st;
    if ((st = mrec_gemm(ctx, m->s, x + (size_t)S->first * k, c, NULL, 1, 0, 0, 0, S->n, k, k, k, k, k)) ||
        (st = mrec_spmm(ctx, a + (size_t)B->first * k, &B->rows, m->s, k, 0)) ||
        (st = mrec_spmm(ctx, y, &S->rows, x + (size_t)B->first * k, k, 0)))
        return st;
    return mrec_gemm(ctx, a + (size_t)S->first * k, y, c, NULL, 1, 0, 0, 0, S->n, k, k, k, k, k);
}

/* propagate's backward from da (N, k): dC = x_S^T ds + y^T da_S with ds = Â_BS^T da_B; dx_S = ds C^T and
 * dx_B = Â_SB^T (da_S C^T), each side's rows written (not added to) unless its rows of x are constant. ds goes
 * in m->s, da_S C^T in m->dhx (read by then). */
static mrec_status propagate_back(mmgcn *m, float *dc, float *dx, const float *da, const float *x, const float *y,
                                  const float *c, int k, int small_fixed, int big_fixed) {
    const side *S = &m->small, *B = &m->big;
    size_t s0 = (size_t)S->first * k, b0 = (size_t)B->first * k;
    mrec_context *ctx = m->ctx;
    mrec_status st;
    if ((st = mrec_spmm(ctx, m->s, &B->rows, da + b0, k, 1)) ||
        (st = mrec_gemm(ctx, dc, x + s0, m->s, NULL, 1, 0, 1, 0, k, k, S->n, k, k, k)) ||
        (st = mrec_gemm(ctx, dc, y, da + s0, NULL, 1, 1, 1, 0, k, k, S->n, k, k, k)))
        return st;
    if (!small_fixed && (st = mrec_gemm(ctx, dx + s0, m->s, c, NULL, 1, 0, 0, 1, S->n, k, k, k, k, k))) return st;
    if (big_fixed) return MREC_OK;
    if ((st = mrec_gemm(ctx, m->dhx, da + s0, c, NULL, 1, 0, 0, 1, S->n, k, k, k, k, k))) return st;
    return mrec_spmm(ctx, dx + b0, &S->rows, m->dhx, k, 1);
}

/* final = the mean over the modalities of x_L */
static mrec_status forward(mmgcn *m) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes;
    int64_t nd = (int64_t)N * d;
    mrec_context *ctx = m->ctx;
    mrec_status st;
    for (int k = 0; k < m->n_mod; k++) {
        modality *q = &m->mod[k];
        int dm = q->dm;
        /* x_0 = the unit rows of [G_u^m ; f P^T + p], row by row; without P the items' rows are the features'
         * own, formed once (mrec_mmgcn_create) */
        if ((st = mrec_l2_normalize_rows(ctx, q->x[0], q->gum, NORM_EPS, U, dm))) return st;
        if (q->project && ((st = mrec_gemm(ctx, q->z, q->feat, q->pw, q->pb, 1, 0, 0, 1, I, dm, q->f, q->f, q->f, dm)) ||
                           (st = mrec_l2_normalize_rows(ctx, q->x[0] + (size_t)U * dm, q->z, NORM_EPS, I, dm))))
            return st;
        for (int l = 0; l < m->layers; l++) {
            int kw = width(m, q, l), ld = m->concat ? kw + d : kw;
            const float *x = q->x[l];
            /* h = lrelu(Â (x C)) into hx's first kw columns */
            if ((st = propagate(m, q->a[l], q->y[l], x, q->c[l], kw))) return st;
            if (!m->concat) st = mrec_activation(ctx, q->hx[l], q->a[l], MREC_ACT_LEAKY_RELU, SLOPE, (int64_t)N * kw);
            else if (!(st = mrec_activation(ctx, m->s, q->a[l], MREC_ACT_LEAKY_RELU, SLOPE, (int64_t)N * kw)))
                st = mrec_copy_rows(ctx, q->hx[l], ld, m->s, kw, N, kw);
            if (st) return st;
            /* x̂ = lrelu(x L^T + l) (+ [G_u ; G_i]): with concatenation into hx's last d columns, without it
             * where pg will be (the GEMM below adds into it) */
            float *xh = m->concat ? m->td : q->pg[l];
            if ((st = mrec_gemm(ctx, q->pl[l], x, q->lw[l], q->lb[l], 1, 0, 0, 1, N, d, kw, kw, kw, d))) return st;
            if ((st = mrec_activation(ctx, xh, q->pl[l], MREC_ACT_LEAKY_RELU, SLOPE, nd))) return st;
            if (m->has_id && (st = mrec_add(ctx, xh, xh, m->ego, nd))) return st;
            if (m->concat && (st = mrec_copy_rows(ctx, q->hx[l] + kw, ld, m->td, d, N, d))) return st;
            /* x_{l+1} = lrelu([h, x̂] W^T + w), or lrelu(h W^T + w + x̂) */
            if (m->concat) st = mrec_gemm(ctx, q->pg[l], q->hx[l], q->gw[l], q->gb[l], 1, 0, 0, 1, N, d, ld, ld, ld, d);
            else st = mrec_gemm(ctx, q->pg[l], q->hx[l], q->gw[l], q->gb[l], 1, 1, 0, 1, N, d, kw, ld, kw, d);
            if (st || (st = mrec_activation(ctx, q->x[l + 1], q->pg[l], MREC_ACT_LEAKY_RELU, SLOPE, nd))) return st;
        }
    }
    /* final = (x_L^0 + x_L^1 + ...) / M, summed in that order */
    const float *x0 = m->mod[0].x[m->layers];
    if (m->n_mod == 1) return mrec_copy_rows(ctx, m->final, d, x0, d, N, d);
    for (int k = 1; k < m->n_mod; k++)
        if ((st = mrec_add(ctx, m->final, k == 1 ? x0 : m->final, m->mod[k].x[m->layers], nd))) return st;
    return mrec_scale(ctx, m->final, m->final, 1.0f / m->n_mod, nd);
}

/* One modality's gradients from dx_L (m->dfinal, (N, d), read only); the id part adds into m->ego_grad, and
 * G_u^m's gradient adds to what is there (the regularizer's share) when add_gum. */
static mrec_status modality_back(mmgcn *m, modality *q, int add_gum) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes;
    int64_t nd = (int64_t)N * d;
    mrec_context *ctx = m->ctx;
    mrec_status st;
    const float *dx = m->dfinal; /* the gradient of x_{l+1}; that of x_l into dnext, m->dx and m->dx2 by turns */
    float *dnext = m->dx;
    for (int l = m->layers - 1; l >= 0; l--) {
        int kw = width(m, q, l), ld = m->concat ? kw + d : kw, wk = ld;
        /* without P, x_0's items' rows are constant: d x_0 is wanted at the users' rows alone */
        int items_fixed = l == 0 && !q->project, rows = items_fixed ? U : N;
        /* dY = dx_{l+1} lrelu'(pg) */
        if ((st = mrec_leaky_relu_back(ctx, m->dy, dx, q->pg[l], SLOPE, nd))) return st;
        if ((st = col_sums(m, q->gb_grad[l], m->dy, N, d))) return st;
        /* dW = dY^T [h, x̂] (or dY^T h); d[h, x̂] = dY W (x̂ gets dY itself without concatenation) */
        if ((st = mrec_gemm(ctx, q->gw_grad[l], m->dy, q->hx[l], NULL, 1, 0, 1, 0, d, wk, N, d, ld, wk))) return st;
        if ((st = mrec_gemm(ctx, m->dhx, m->dy, q->gw[l], NULL, 1, 0, 0, 0, N, wk, d, d, wk, ld))) return st;
        /* x̂ = lrelu(pl) + ego: the ids get dx̂ (dY itself without concatenation); dpl = dx̂ lrelu'(pl) */
        const float *dxh = m->dy;
        if (m->concat) {
            if ((st = mrec_copy_rows(ctx, m->td, d, m->dhx + kw, ld, N, d))) return st;
            dxh = m->td;
        }
        if (m->has_id && (st = mrec_add(ctx, m->ego_grad, m->ego_grad, dxh, nd))) return st;
        if ((st = mrec_leaky_relu_back(ctx, m->dy, dxh, q->pl[l], SLOPE, nd))) return st;
        if ((st = col_sums(m, q->lb_grad[l], m->dy, N, d))) return st;
        if ((st = mrec_gemm(ctx, q->lw_grad[l], m->dy, q->x[l], NULL, 1, 0, 1, 0, d, kw, N, d, kw, kw))) return st;
        /* h = lrelu(a), a = Â (x C): da = dh lrelu'(a), then propagate_back; d x_l += dpl L */
        const float *dh = m->dhx; /* dh is dhx's first kw columns: apart with concatenation */
        if (m->concat) {
            if ((st = mrec_copy_rows(ctx, m->t, kw, m->dhx, ld, N, kw))) return st;
            dh = m->t;
        }
        if ((st = mrec_leaky_relu_back(ctx, m->t, dh, q->a[l], SLOPE, (int64_t)N * kw))) return st;
        if ((st = propagate_back(m, q->c_grad[l], dnext, m->t, q->x[l], q->y[l], q->c[l], kw, items_fixed && m->items_small,
                                 items_fixed && !m->items_small)) ||
            (st = mrec_gemm(ctx, dnext, m->dy, q->lw[l], NULL, 1, 1, 0, 0, rows, kw, d, d, kw, kw)))
            return st;
        dx = dnext, dnext = dnext == m->dx ? m->dx2 : m->dx;
    }
    /* x_0 = the unit rows of [G_u^m ; z]: the users' rows back into G_u^m's gradient, the items' back through
     * z = f P^T + p where there is a P (the features are not trained) */
    int dm = q->dm;
    if ((st = mrec_l2_normalize_rows_back(ctx, q->gum_grad, dx, q->x[0], q->gum, NORM_EPS, add_gum ? 1.0f : 0.0f, U, dm)))
        return st;
    if (q->project) {
        size_t skip = (size_t)U * dm;
        if ((st = mrec_l2_normalize_rows_back(ctx, dnext, dx + skip, q->x[0] + skip, q->z, NORM_EPS, 0, I, dm))) return st;
        if ((st = mrec_gemm(ctx, q->pw_grad, dnext, q->feat, NULL, 1, 0, 1, 0, dm, q->f, I, dm, q->f, q->f))) return st;
        if ((st = col_sums(m, q->pb_grad, dnext, I, dm))) return st;
    }
    return MREC_OK;
}

/* The batch's step, its loss left in m->bpr.loss on the context's device, in the trainer's two halves
 * (mrec_model.stage, .launch): the batch's ids checked and sent up, then the launches. */
static mrec_status mmgcn_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mmgcn *m = self;
    return mrec_bpr_ops_stage(&m->bpr, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->dim);
}

static mrec_status batch_launch(mmgcn *m) {
    int d = m->dim, U = m->n_users, n = m->bpr.n;
    int64_t nd = (int64_t)m->n_nodes * d;
    mrec_context *ctx = m->ctx;
    mrec_status st = forward(m);
    /* the batch's scores from F and the squared norms of its id rows from [G_u ; G_i]: the softplus BPR loss and
     * l_w times the mean square of [u, u] and [i, j]; ego_grad starts as that regularizer's rows (every row
     * written), the graph's share is added */
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS, .weight = 1, .reg_form = MREC_BPR_REG_PAIRS, .reg = m->l_w, .reg_div = n * d};
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->final, m->ego);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->ego_grad, m->ego, 0, MREC_BPR_PARTS_ALL);
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->dfinal, m->final, 1, 0);
    if (st) return st;
    /* + l_w |G_u^{m_0}|^2 / (U d_m) */
    const modality *q0 = &m->mod[0];
    int64_t k0 = (int64_t)U * q0->dm;
    if ((st = mrec_loss_dot(ctx, m->bpr.loss, q0->gum, q0->gum, k0, m->l_w, (double)k0))) return st;
    /* dx_L = dF / M, the same for every modality */
    if (m->n_mod > 1 && (st = mrec_scale(ctx, m->dfinal, m->dfinal, 1.0f / m->n_mod, nd))) return st;
    /* the first modality's preference vectors start from the regularizer's 2 l_w G / (U d_m) */
    if ((st = mrec_scale(ctx, m->mod[0].gum_grad, q0->gum, (float)(2.0 * m->l_w / (double)k0), k0))) return st;
    for (int k = 0; k < m->n_mod; k++)
        if ((st = modality_back(m, &m->mod[k], k == 0))) return st;
    return MREC_OK;
}

static mrec_status mmgcn_launch(void *self, const double **loss) {
    mmgcn *m = self;
    mrec_status st = batch_launch(m);
    *loss = st ? NULL : m->bpr.loss;
    return st;
}

static const double *mmgcn_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mmgcn *m = self;
    m->status = mmgcn_stage(m, u, i, j, n);
    if (!m->status) m->status = batch_launch(m);
    return m->status ? NULL : m->bpr.loss;
}

static double mmgcn_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mmgcn *m = self;
    return mrec_step_loss(m->ctx, &m->status, mmgcn_step(self, u, i, j, n));
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
    mrec_bpr_ops_free(&m->bpr);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m);
}

static size_t layer_floats(const mmgcn *m, const modality *q, int l) {
    size_t kw = (size_t)width(m, q, l), wk = m->concat ? kw + m->dim : kw, d = (size_t)m->dim;
    return kw * kw + d * kw + d + d * wk + d;
}

/* Every array from a (a measuring arena counts them), the graph's too: Â's users' rows hold nnz_u entries, its
 * items' rows the rest. */
static void carve(mmgcn *m, mrec_arena *a, int64_t nnz_u, int64_t nnz_i) {
    size_t N = (size_t)m->n_nodes, d = (size_t)m->dim, U = (size_t)m->n_users, I = (size_t)m->n_items, k = (size_t)m->kmax;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
    m->ego = F(N * d), m->ego_grad = F(N * d), m->final = F(N * d), m->dfinal = F(N * d);
    m->s = F(N * k), m->t = F(N * k), m->dx = F(N * k), m->dx2 = F(N * k), m->dhx = F(N * (k + d));
    m->dy = F(N * d), m->td = F(N * d), m->ones = F(N);
    for (int c = 0; c < m->n_mod; c++) {
        modality *q = &m->mod[c];
        size_t dm = (size_t)q->dm, f = (size_t)q->f;
        q->feat = F(I * f), q->gum = F(U * dm), q->gum_grad = F(U * dm), q->z = F(I * dm), q->x[0] = F(N * dm);
        if (q->project) q->pw = F(dm * f), q->pw_grad = F(dm * f), q->pb = F(dm), q->pb_grad = F(dm);
        size_t block = 0;
        for (int l = 0; l < m->layers; l++) block += layer_floats(m, q, l);
        q->block_size = (int64_t)block, q->block = F(block), q->block_grad = F(block);
        size_t at = 0;
        for (int l = 0; l < m->layers; l++) {
            size_t kw = (size_t)width(m, q, l), wk = m->concat ? kw + d : kw;
            float *w = q->block ? q->block + at : NULL, *g = q->block_grad ? q->block_grad + at : NULL;
            size_t o[5] = {0, kw * kw, kw * kw + d * kw, kw * kw + d * kw + d, kw * kw + d * kw + d + d * wk};
            q->c[l] = w ? w + o[0] : NULL, q->lw[l] = w ? w + o[1] : NULL, q->lb[l] = w ? w + o[2] : NULL;
            q->gw[l] = w ? w + o[3] : NULL, q->gb[l] = w ? w + o[4] : NULL;
            q->c_grad[l] = g ? g + o[0] : NULL, q->lw_grad[l] = g ? g + o[1] : NULL, q->lb_grad[l] = g ? g + o[2] : NULL;
            q->gw_grad[l] = g ? g + o[3] : NULL, q->gb_grad[l] = g ? g + o[4] : NULL;
            at += layer_floats(m, q, l);
            /* lrelu keeps the sign (lrelu(z) > 0 exactly where z > 0), so the backward's masks read h and x_{l+1} in
             * place of their inputs: each activation runs in place, one array fewer to stream each */
            q->hx[l] = F(N * wk), q->a[l] = m->concat ? F(N * kw) : q->hx[l];
            q->pl[l] = F(N * d), q->x[l + 1] = q->pg[l] = F(N * d), q->y[l] = F((size_t)m->small.n * kw);
        }
    }
#undef F
    side *users = users_side(m), *items = items_side(m);
    mrec_device dev = m->ctx->device;
    users->rows = mrec_graph_carve(a, m->n_users, m->n_items, nnz_u, dev), users->rows_t = mrec_graph_carve(a, m->n_items, m->n_users, nnz_u, dev);
    items->rows = mrec_graph_carve(a, m->n_items, m->n_users, nnz_i, dev), items->rows_t = mrec_graph_carve(a, m->n_users, m->n_items, nnz_i, dev);
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

/* g's rows [r0, r0 + n) as a matrix of their own on the host, their columns counted from c0 (each side's rows of
 * Â and of Â^T: the other side's nodes), then copied into dst. row_ptr holds n + 1, col the rows' entries. */
static mrec_status upload_rows(mmgcn *m, const mrec_csr *dst, const mrec_graph *g, int r0, int n, int c0, int64_t *row_ptr,
                               int32_t *col) {
    int64_t base = g->row_ptr[r0];
    for (int r = 0; r <= n; r++) row_ptr[r] = g->row_ptr[r0 + r] - base;
    for (int64_t e = 0; e < row_ptr[n]; e++) col[e] = g->col[base + e] - c0;
    mrec_csr host = {.n_rows = dst->n_rows, .n_cols = dst->n_cols, .row_ptr = row_ptr, .col = col, .val = g->val + base};
    return mrec_graph_upload(m->ctx, dst, &host);
}

/* Both sides' rows of Â (adj) and of Â^T (t), the one side's rows of Â^T the transpose of the other's of Â */
static mrec_status upload_sides(mmgcn *m, const mrec_graph *adj, const mrec_graph *t) {
    int U = m->n_users, I = m->n_items, most = U > I ? U : I;
    int64_t nnz = adj->row_ptr[U + I];
    int64_t *row_ptr = malloc(sizeof(int64_t) * ((size_t)most + 1));
    int32_t *col = malloc(sizeof(int32_t) * (size_t)(nnz + 1));
    mrec_status st = row_ptr && col ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "mmgcn: the graph's %lld entries", (long long)nnz);
    side *users = users_side(m), *items = items_side(m);
    if (!st) st = upload_rows(m, &users->rows, adj, 0, U, U, row_ptr, col);
    if (!st) st = upload_rows(m, &users->rows_t, t, U, I, 0, row_ptr, col);
    if (!st) st = upload_rows(m, &items->rows, adj, U, I, 0, row_ptr, col);
    if (!st) st = upload_rows(m, &items->rows_t, t, 0, U, U, row_ptr, col);
    users->rows.transposed = &users->rows_t, items->rows.transposed = &items->rows_t;
    free(row_ptr), free(col);
    return st;
}

/* The initial values, drawn on the host in a fixed order (the same on every device), then copied to the device:
 * G_u, G_i, then per modality G_u^m, P_m and p_m, and per layer C, L, l, W, w; Â and Â^T with them. */
static mrec_status upload(mmgcn *m, const mrec_graph *adj, const float *const *feat, mrec_rng *rng) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes;
    mrec_context *ctx = m->ctx;
    size_t most = (size_t)N * d + (size_t)N;
    for (int k = 0; k < m->n_mod; k++) {
        const modality *q = &m->mod[k];
        size_t one = (size_t)U * q->dm + (q->project ? (size_t)q->dm * (q->f + 1) : 0) + (size_t)q->block_size;
        if (one > most) most = one;
    }
    mrec_graph t;
    mrec_status st = mrec_graph_transpose(&t, adj);
    if (st) return st;
    float *h = malloc(sizeof(float) * most);
    if (!h) {
        mrec_graph_free(&t);
        return mrec_fail(MREC_ERR_NOMEM, "mmgcn: %zu initial values", most);
    }
    xavier(h, U, d, rng), xavier(h + (size_t)U * d, I, d, rng);
    st = mrec_copy_to_device(ctx, m->ego, h, sizeof(float) * (size_t)N * d);
    for (int r = 0; r < N; r++) h[r] = 1.0f;
    if (!st) st = mrec_copy_to_device(ctx, m->ones, h, sizeof(float) * (size_t)N);
    for (int k = 0; k < m->n_mod && !st; k++) {
        modality *q = &m->mod[k];
        size_t at = 0, gum = (size_t)U * q->dm;
        xavier(h, U, q->dm, rng), at = gum;
        if (q->project) {
            double b = 1.0 / sqrt((double)q->f);
            uniform(h + at, (size_t)q->dm * q->f, b, rng), uniform(h + at + (size_t)q->dm * q->f, (size_t)q->dm, b, rng);
        }
        float *w = h + at + (q->project ? (size_t)q->dm * (q->f + 1) : 0);
        for (int l = 0, o = 0; l < m->layers; l++) {
            int kw = width(m, q, l), wk = m->concat ? kw + d : kw;
            xavier(w + o, kw, kw, rng), o += kw * kw;
            xavier(w + o, d, kw, rng), o += d * kw;
            uniform(w + o, (size_t)d, 1.0 / sqrt((double)kw), rng), o += d;
            xavier(w + o, d, wk, rng), o += d * wk;
            uniform(w + o, (size_t)d, 1.0 / sqrt((double)wk), rng), o += d;
        }
        st = mrec_copy_to_device(ctx, q->gum, h, sizeof(float) * gum);
        if (!st && q->project) st = mrec_copy_to_device(ctx, q->pw, h + gum, sizeof(float) * (size_t)q->dm * q->f);
        if (!st && q->project) st = mrec_copy_to_device(ctx, q->pb, h + gum + (size_t)q->dm * q->f, sizeof(float) * (size_t)q->dm);
        if (!st) st = mrec_copy_to_device(ctx, q->block, w, sizeof(float) * (size_t)q->block_size);
        if (!st) st = mrec_copy_to_device(ctx, q->feat, feat[k], sizeof(float) * (size_t)I * q->f);
        /* without P the items' rows of x_0 are the features' unit rows, for good */
        if (!st && !q->project) st = mrec_l2_normalize_rows(ctx, q->x[0] + (size_t)U * q->dm, q->feat, NORM_EPS, I, q->dm);
    }
    free(h);
    if (!st) st = upload_sides(m, adj, &t);
    mrec_graph_free(&t);
    return st;
}

mrec_status mrec_mmgcn_create(mrec_model *out, const mrec_graph *adj, int n_users, int n_items, const float *const *feat,
                              const int *feat_dim, const int *proj_dim, int n_modalities, int dim, int layers, int concat,
                              int has_id, float l_w, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    if (adj->n_nodes != n_users + n_items || layers < 1 || layers > MAX_LAYERS || dim < 1 || n_modalities < 1 ||
        n_modalities > MAX_MOD)
        return mrec_fail(MREC_ERR_ARG, "mmgcn: graph of %d nodes for %d users + %d items, %d layers (1 to %d), %d modalities (1 to %d)",
                         adj->n_nodes, n_users, n_items, layers, MAX_LAYERS, n_modalities, MAX_MOD);
    for (int k = 0; k < n_modalities; k++)
        if (feat_dim[k] < 1 || proj_dim[k] < 0)
            return mrec_fail(MREC_ERR_ARG, "mmgcn: modality %d has %d features and a projection to %d", k, feat_dim[k], proj_dim[k]);
    /* the products run side by side (propagate): every entry must join a user to an item */
    for (int r = 0; r < adj->n_nodes; r++)
        for (int64_t e = adj->row_ptr[r]; e < adj->row_ptr[r + 1]; e++)
            if ((r < n_users) == (adj->col[e] < n_users))
                return mrec_fail(MREC_ERR_ARG, "mmgcn: the graph joins node %d to node %d, both %s (users 0 to %d, then items)", r,
                                 adj->col[e], r < n_users ? "users" : "items", n_users - 1);
    mmgcn *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "mmgcn");
    m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items, m->dim = dim, m->layers = layers;
    m->n_mod = n_modalities, m->concat = concat, m->has_id = has_id, m->l_w = l_w, m->ctx = ctx, m->kmax = dim;
    for (int k = 0; k < n_modalities; k++) {
        modality *q = &m->mod[k];
        q->f = feat_dim[k], q->project = proj_dim[k] > 0, q->dm = q->project ? proj_dim[k] : feat_dim[k];
        if (q->dm > m->kmax) m->kmax = q->dm;
    }
    m->items_small = n_items <= n_users;
    side *users = users_side(m), *items = items_side(m);
    users->first = 0, users->n = n_users, items->first = n_users, items->n = n_items;
    int64_t nnz_u = adj->row_ptr[n_users], nnz_i = adj->row_ptr[adj->n_nodes] - nnz_u;
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, nnz_u, nnz_i);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        free(m);
        return st;
    }
    carve(m, &m->mem, nnz_u, nnz_i);
    if ((st = upload(m, adj, feat, rng)) || (st = forward(m))) {
        mmgcn_destroy(m);
        return st;
    }
    int p = 0;
#define PARAM(w, g, count) out->param[p] = (w), out->grad[p] = (g), out->size[p++] = (int64_t)(count)
    PARAM(m->ego, m->ego_grad, (size_t)m->n_nodes * dim);
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
    out->loss_grad = mmgcn_loss_grad, out->step = mmgcn_step, out->prepare = mmgcn_prepare, out->score = mmgcn_score;
    out->stage = mmgcn_stage, out->launch = mmgcn_launch;
    out->embed_dim = dim, out->embeddings = mmgcn_embeddings;
    out->destroy = mmgcn_destroy;
    return MREC_OK;
}
