/* grcn.c: GRCN (Wei et al., MM 2020) as the Ducho-meets-Elliot benchmark's
 * Elliot fork defines it (external/models/grcn: GRCN.py, GRCNModel.py,
 * GraphRefiningLayer.py, GraphConvolutionalLayer.py).
 *
 * Nodes are users then items (N = U + I); the E training pairs (u_e, i_e) in
 * user-major order (items increasing within a user) are the user rows of the
 * bipartite adjacency A, whose entries are stored sorted by row then column
 * (torch_sparse's order): entry p < E is pair p, entries E .. 2E - 1 the item
 * rows. Per modality m, with f_m its features (fixed), P_m, p_m an nn.Linear
 * to k units (factors_multimod) and G_u^m the users' preferences:
 *   i_m     = normalize(lrelu(f_m P_m^T + p_m))                   (I, k)
 *   u_0     = normalize(G_u^m)                                     (U, k)
 *   routing t < R (num_routings), over the user rows only:
 *     a_e     = softmax over u_e's pairs of <u_t[u_e], i_m[i_e]>
 *     u_{t+1} = normalize(u_t + act(sum_e a_e i_m[i_e]))
 *   x_m     = [u_R ; i_m]                                          (N, k)
 *   s_p     = <u_R[u_e], i_m[i_e]> with e = p mod E                (2E)
 *   α_m     = softmax of s over each row's entries of A
 *   x'_m    = x_m + act(A(α_m) x_m)      entry p of A weighted by α_m[p]
 * act is lrelu (slope 0.01) with has_act, else nothing. The edge weights:
 *   w = relu( max_m α_m c_m )    weight_mode confid, c_m[p] = C[a_p, m],
 *                                 a_p = u_e for p < E, U + i_e for p >= E
 *       max_m α_m (max), or sum_m α_m / M (mean); relu only with pruning.
 * The id network over those weights, and the fusion:
 *   e_0 = normalize([G_u ; G_i]),  e_{l+1} = normalize(act(A(w) e_l)),  e = sum_{l <= L} e_l
 *   F = [e, x'_1, .., x'_M] (concat), e (id), or (x'_1 + .. + x'_M + e) / (M + 1) (mean; k = d)
 * score(u, i) = <F_u, F_i> and
 *   loss = mean softplus(s(u, j) - s(u, i))
 *        + l_w (2 sum_b |G_u[u_b]|^2 + sum_b |G_i[i_b]|^2 + |G_i[j_b]|^2) / (2 n d)
 *        + sum_m sum_b |G_u^m[u_b]|^2 / (n k)
 * the fork's -mean log sigmoid written stably, its id regularizer, and its
 * preference regularizer, which it adds without l_w.
 *
 * The fork's item rows. The fork builds its weights over a list of 2E edges:
 * the pairs in user-major order, then the same pairs reversed (item to user),
 * again in user-major order; it softmaxes that list in segments of the node
 * degrees (ptr_full: the users' degrees, then the items') and puts the list's
 * p-th weight on A's p-th stored entry (torch_sparse's mul_nnz). The user rows
 * line up; the item rows do not: item i's stored entries get the weights of
 * the list positions that fall in its row range, which belong to other
 * pairs, softmaxed together, with those pairs' items' confidences. mrec
 * computes exactly that (s_p and a_p above), so its item rows carry the
 * fork's weights, not the paper's; they agree with the fork whenever the
 * numbering is Elliot's (numeric ids in increasing order, as mrec's loader
 * numbers them). A segment is a row of A, so a node without training pairs
 * has an empty one (the fork's np.unique would shift the segments instead;
 * Elliot's training data has no such node).
 *
 * Where it differs from the fork: the fork ranks with the embeddings of its
 * last training step's forward pass (before that step's update); mrec
 * propagates again with the current weights before scoring. C is a parameter
 * only with confid (the fork registers it always, and no gradient reaches it
 * otherwise). G_u, G_i, G_u^m and C start xavier-uniform, P_m and p_m as
 * nn.Linear (uniform in +-1/sqrt(fan_in)); the fork's aggregation key is read
 * by nothing, its graph layers always sum.
 *
 * MMRec's GRCN (src/models/grcn.py) is another model: its routing sends the
 * messages to the items (edge_index user -> item), so the users' preferences
 * are only normalized; its last layer weighs each pair where it belongs
 * (softmax over a node's own edges); its id network has two layers whose
 * outputs are summed without normalizing; it starts from xavier-normal, and
 * its regularizer (reg_weight times the batch's id rows, the preferences' and
 * the batch's preference rows' mean squares) has another form.
 *
 * Backward, from dF: the id network layer by layer (A(w)^T, and dw[p] =
 * <dz[row p], e_l[col p]>), w back through relu and the maxima (relu chains:
 * max(a, b) = a + relu(b - a), ties to the first modality as torch.max), each
 * modality's last layer and softmax; the scores s_p are symmetric in x's
 * user and item rows, so d x = C x with C the symmetric matrix of the
 * pairs' summed score gradients; then the routings in reverse, the unit rows
 * back to G_u^m and through the items' lrelu to P_m. The features are not
 * trained.
 *
 * One path, through the op entries only: every array (weights, gradients,
 * activations, the features, A's index and the mirror map that gives a
 * transposed product its values) is carved from one allocation on the
 * context's device, so the same code trains on the CPU and on a GPU. A^T X is
 * a product with A's own pattern and the values gathered through the mirror
 * (the pattern is symmetric; the gather is a product with the permutation),
 * so no product uses atomics. Only the loss's few
 * numbers come back to the host.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MOD 4
#define MAX_LAYERS 8
#define MAX_ROUTINGS 16
#define SLOPE 0.01f     /* torch.nn.LeakyReLU's default */
#define NORM_EPS 1e-12f /* F.normalize's floor */

enum { WEIGHT_MEAN, WEIGHT_MAX, WEIGHT_CONFID };
enum { FUSION_CONCAT, FUSION_ID, FUSION_MEAN };

typedef struct {
    int f;                              /* feature size */
    float *feat;                        /* (I, f) the features, not trained */
    float *gum, *gum_grad;              /* (U, k) G_u^m */
    float *pw, *pw_grad, *pb, *pb_grad; /* (k, f), (k) */
    float *z, *h;                       /* (I, k) f P^T + p, and its lrelu */
    float *u[MAX_ROUTINGS];             /* (U, k) u_t for t < R; u_R is x's first U rows */
    float *y[MAX_ROUTINGS];             /* (U, k) u_t + act(aggregate), before the unit rows */
    float *agg[MAX_ROUTINGS];           /* (U, k) the aggregate before act (has_act only) */
    float *a[MAX_ROUTINGS];             /* (E) the routings' weights */
    float *x;                           /* (N, k) [u_R ; i_m] */
    float *alpha, *dalpha;              /* (2E) the last layer's weights, their gradient */
    float *xa;                          /* (N, k) A(α) x before act (has_act only) */
    float *conf_col;                    /* (2E) c_m (confid only) */
    float *v, *t;                       /* (2E) α c (or α), and v - the running maximum before it (m > 0) */
} modality;

typedef struct {
    int n_users, n_items, n_nodes, n_pairs, dim, k, width, layers, routings, n_mod;
    int weight_mode, pruning, has_act, fusion;
    float l_w;
    mrec_context *ctx;
    mrec_arena mem;                 /* everything below that points to memory, on the context's device */
    int64_t *row_ptr;               /* (N + 1) A's rows; the first U + 1 are the routing's */
    int64_t *item_ptr;              /* (I + 1) A's item rows from 0: the routing's transpose */
    int32_t *col;                   /* (2E) A's columns */
    int32_t *row;                   /* (2E) each entry's row (u_e for e < E) */
    int32_t *pair_item;             /* (E) i_e */
    int32_t *mirror;                /* (2E) the entry of the same pair in the other half of A */
    int32_t *conf_pos;              /* (2E) the list positions whose confidence is node v's, by A's rows */
    int64_t *diag_ptr;              /* (U + 1) 0, 1, .., U: a diagonal (U, U) */
    int64_t *iota;                  /* (2E + 1) 0, 1, .., 2E: the mirror as a permutation matrix */
    int32_t *diag_col;              /* (U) */
    float *ego, *ego_grad;          /* (N, d) [G_u ; G_i] */
    float *conf, *conf_grad;        /* (N, M) C (confid only) */
    float *conf_e, *dconf_e;        /* (2E, M) C gathered by list position, and its gradient */
    modality mod[MAX_MOD];
    float *w_pre, *w, *dw;          /* (2E) the combined weights, after pruning, the gradient */
    float *e[MAX_LAYERS + 1];       /* (N, d) e_l */
    float *ez[MAX_LAYERS];          /* (N, d) act(A(w) e_l), before the unit rows */
    float *ea[MAX_LAYERS];          /* (N, d) A(w) e_l before act (has_act only) */
    float *final, *dfinal;          /* (N, width) */
    float *dx, *tmp, *t2;           /* scratch (N, max(k, d)) x 3 */
    float *dy, *dagg;               /* scratch (U, k) x 2 */
    float *g, *dz;                  /* scratch (N, d) x 2 */
    float *ev, *ev2, *edot;         /* scratch (2E) x 3 */
    float *ones;                    /* (N) */
    float *cnt;                     /* (U) how often each user is in the batch */
    mrec_bpr_ops bpr, bpr_id;       /* the batch's scores on F; its id rows on [G_u ; G_i] */
    mrec_batch_rows rows;           /* the batch's users, for the preference regularizer */
    mrec_status status;
} grcn;

static size_t n2(const grcn *m) { return 2 * (size_t)m->n_pairs; }

/* A (N, N) with entry values val */
static mrec_csr adj(const grcn *m, const float *val) {
    return (mrec_csr){.n_rows = m->n_nodes, .n_cols = m->n_nodes, .row_ptr = m->row_ptr, .col = m->col, .val = val, .device = m->ctx->device};
}

/* The user rows (U, I), columns the items: the routing's matrix */
static mrec_csr user_rows(const grcn *m, const float *val) {
    return (mrec_csr){.n_rows = m->n_users, .n_cols = m->n_items, .row_ptr = m->row_ptr, .col = m->pair_item, .val = val, .device = m->ctx->device};
}

/* The item rows (I, U), columns the users: the routing's matrix transposed, given values in its order */
static mrec_csr item_rows(const grcn *m, const float *val) {
    return (mrec_csr){.n_rows = m->n_items, .n_cols = m->n_users, .row_ptr = m->item_ptr, .col = m->col + m->n_pairs, .val = val,
                      .device = m->ctx->device};
}

/* out (n) = val[mirror[..]]: values in the order of the transposed product's entries, as a product with the
 * permutation (one entry a row, at the mirror's column): one launch, nothing read back */
static mrec_status mirrored(grcn *m, float *out, const float *val, const int32_t *mirror, int n, int n_val) {
    mrec_csr perm = {.n_rows = n, .n_cols = n_val, .row_ptr = m->iota, .col = mirror, .device = m->ctx->device};
    return mrec_spmm(m->ctx, out, &perm, val, 1, 0);
}

/* bias gradient (cols) = the column sums of g (rows, cols): ones^T g */
static mrec_status col_sums(grcn *m, float *out, const float *g, int rows, int cols) {
    return mrec_gemm(m->ctx, out, m->ones, g, NULL, 1, 0, 0, 0, 1, cols, rows, rows, cols, cols);
}

static mrec_status act_forward(grcn *m, float *out, float *pre, int64_t n) {
    return m->has_act ? mrec_activation(m->ctx, out, pre, MREC_ACT_LEAKY_RELU, SLOPE, n) : MREC_OK;
}

/* One modality up to x'_m, placed into F as the fusion says. */
static mrec_status modality_forward(grcn *m, modality *q, int index) {
    int U = m->n_users, I = m->n_items, N = m->n_nodes, E = m->n_pairs, k = m->k, R = m->routings;
    mrec_context *ctx = m->ctx;
    float *gim = q->x + (size_t)U * k;
    mrec_status st;
    /* i_m = normalize(lrelu(f P^T + p)), u_0 = normalize(G_u^m) */
    if ((st = mrec_gemm(ctx, q->z, q->feat, q->pw, q->pb, 1, 0, 0, 1, I, k, q->f, q->f, q->f, k))) return st;
    if ((st = mrec_activation(ctx, q->h, q->z, MREC_ACT_LEAKY_RELU, SLOPE, (int64_t)I * k))) return st;
    if ((st = mrec_l2_normalize_rows(ctx, gim, q->h, NORM_EPS, I, k))) return st;
    if ((st = mrec_l2_normalize_rows(ctx, R ? q->u[0] : q->x, q->gum, NORM_EPS, U, k))) return st;
    for (int t = 0; t < R; t++) {
        float *next = t + 1 < R ? q->u[t + 1] : q->x, *agg = m->has_act ? q->agg[t] : m->tmp;
        mrec_csr r = user_rows(m, q->a[t]);
        if ((st = mrec_gather_dot(ctx, q->a[t], q->u[t], m->row, gim, m->pair_item, E, k))) return st;
        if ((st = mrec_segment_softmax(ctx, q->a[t], q->a[t], m->row_ptr, U))) return st;
        if ((st = mrec_spmm(ctx, agg, &r, gim, k, 0))) return st;
        if ((st = act_forward(m, m->tmp, agg, (int64_t)U * k))) return st;
        if ((st = mrec_add(ctx, q->y[t], q->u[t], m->tmp, (int64_t)U * k))) return st;
        if ((st = mrec_l2_normalize_rows(ctx, next, q->y[t], NORM_EPS, U, k))) return st;
    }
    /* the last layer: the pairs' scores twice (the fork's list), softmaxed by A's rows */
    if ((st = mrec_gather_dot(ctx, q->alpha, q->x, m->row, gim, m->pair_item, E, k))) return st;
    if ((st = mrec_copy_rows(ctx, q->alpha + E, E, q->alpha, E, 1, E))) return st;
    if ((st = mrec_segment_softmax(ctx, q->alpha, q->alpha, m->row_ptr, N))) return st;
    mrec_csr a = adj(m, q->alpha);
    float *xa = m->has_act ? q->xa : m->tmp;
    int64_t nk = (int64_t)N * k;
    if ((st = mrec_spmm(ctx, xa, &a, q->x, k, 0)) || (st = act_forward(m, m->tmp, xa, nk))) return st;
    if ((st = mrec_add(ctx, m->tmp, m->tmp, q->x, nk))) return st;
    if (m->fusion == FUSION_CONCAT) return mrec_copy_rows(ctx, m->final + m->dim + (size_t)index * k, m->width, m->tmp, k, N, k);
    if (m->fusion == FUSION_MEAN)
        return index ? mrec_add(ctx, m->final, m->final, m->tmp, nk) : mrec_copy_rows(ctx, m->final, k, m->tmp, k, N, k);
    return MREC_OK;
}

/* w from the modalities' α: their mean, or the maximum of α (or α c) as a running r_m = r_{m-1} + relu(v_m - r_{m-1}) */
static mrec_status combine(grcn *m) {
    mrec_context *ctx = m->ctx;
    int M = m->n_mod;
    int64_t n = (int64_t)n2(m);
    mrec_status st;
    if (m->weight_mode == WEIGHT_CONFID) {
        int E = m->n_pairs, N = m->n_nodes;
        /* the fork's cat(C[rows], C[cols]): list position p < E reads row u_e, p >= E row U + i_e (A's column of entry e);
         * the graph's own ids, in range by construction: no check read back (a batch's graph may not wait) */
        if ((st = mrec_embedding_checked(ctx, m->conf_e, m->conf, m->row, E, N, M))) return st;
        if ((st = mrec_embedding_checked(ctx, m->conf_e + (size_t)E * M, m->conf, m->col, E, N, M))) return st;
    }
    for (int q = 0; q < M; q++) {
        modality *o = &m->mod[q];
        if (m->weight_mode == WEIGHT_CONFID) {
            if ((st = mrec_copy_rows(ctx, o->conf_col, 1, m->conf_e + q, M, (int)n, 1))) return st;
            if ((st = mrec_mul(ctx, o->v, o->alpha, o->conf_col, n))) return st;
        } else if ((st = mrec_copy_rows(ctx, o->v, (int)n, o->alpha, (int)n, 1, (int)n))) {
            return st;
        }
        if (q == 0) st = mrec_copy_rows(ctx, m->w_pre, (int)n, o->v, (int)n, 1, (int)n);
        else if (m->weight_mode == WEIGHT_MEAN) st = mrec_add(ctx, m->w_pre, m->w_pre, o->v, n);
        else if (!(st = mrec_scale(ctx, o->t, m->w_pre, -1.0f, n)) && !(st = mrec_add(ctx, o->t, o->t, o->v, n)) &&
                 !(st = mrec_activation(ctx, m->ev, o->t, MREC_ACT_RELU, 0, n)))
            st = mrec_add(ctx, m->w_pre, m->w_pre, m->ev, n);
        if (st) return st;
    }
    if (m->weight_mode == WEIGHT_MEAN && (st = mrec_scale(ctx, m->w_pre, m->w_pre, 1.0f / M, n))) return st;
    return m->pruning ? mrec_activation(ctx, m->w, m->w_pre, MREC_ACT_RELU, 0, n) : mrec_copy_rows(ctx, m->w, (int)n, m->w_pre, (int)n, 1, (int)n);
}

/* F from the current weights */
static mrec_status forward(grcn *m) {
    int N = m->n_nodes, d = m->dim, M = m->n_mod;
    int64_t nd = (int64_t)N * d;
    mrec_context *ctx = m->ctx;
    mrec_status st;
    for (int q = 0; q < M; q++)
        if ((st = modality_forward(m, &m->mod[q], q))) return st;
    if ((st = combine(m))) return st;
    /* the id network over w, its layers summed into the scratch, then placed */
    mrec_csr a = adj(m, m->w);
    if ((st = mrec_l2_normalize_rows(ctx, m->e[0], m->ego, NORM_EPS, N, d))) return st;
    if ((st = mrec_copy_rows(ctx, m->g, d, m->e[0], d, N, d))) return st;
    for (int l = 0; l < m->layers; l++) {
        float *pre = m->has_act ? m->ea[l] : m->ez[l];
        if ((st = mrec_spmm(ctx, pre, &a, m->e[l], d, 0)) || (st = act_forward(m, m->ez[l], pre, nd))) return st;
        if ((st = mrec_l2_normalize_rows(ctx, m->e[l + 1], m->ez[l], NORM_EPS, N, d))) return st;
        if ((st = mrec_add(ctx, m->g, m->g, m->e[l + 1], nd))) return st;
    }
    if (m->fusion == FUSION_CONCAT) return mrec_copy_rows(ctx, m->final, m->width, m->g, d, N, d);
    if (m->fusion == FUSION_ID) return mrec_copy_rows(ctx, m->final, d, m->g, d, N, d);
    if ((st = mrec_add(ctx, m->final, m->final, m->g, nd))) return st;
    return mrec_scale(ctx, m->final, m->final, 1.0f / (M + 1), nd);
}

/* The id network's gradient from dF: into ego_grad (added to what is there) and dw (written). */
static mrec_status id_back(grcn *m) {
    int N = m->n_nodes, d = m->dim, M = m->n_mod;
    int64_t nd = (int64_t)N * d, n = (int64_t)n2(m);
    mrec_context *ctx = m->ctx;
    mrec_status st;
    /* de: every e_l's share of dF; g runs as the gradient of e_l */
    float *de = m->dx;
    if (m->fusion == FUSION_CONCAT) st = mrec_copy_rows(ctx, de, d, m->dfinal, m->width, N, d);
    else st = mrec_scale(ctx, de, m->dfinal, m->fusion == FUSION_MEAN ? 1.0f / (M + 1) : 1.0f, nd);
    if (st || (st = mrec_copy_rows(ctx, m->g, d, de, d, N, d))) return st;
    if ((st = mirrored(m, m->ev2, m->w, m->mirror, (int)n, (int)n))) return st;
    mrec_csr at = adj(m, m->ev2);
    for (int l = m->layers - 1; l >= 0; l--) {
        if ((st = mrec_l2_normalize_rows_back(ctx, m->dz, m->g, m->e[l + 1], m->ez[l], NORM_EPS, 0, N, d))) return st;
        if (m->has_act && (st = mrec_leaky_relu_back(ctx, m->dz, m->dz, m->ea[l], SLOPE, nd))) return st;
        /* dw[p] += <dz[row p], e_l[col p]> */
        float *into = l == m->layers - 1 ? m->dw : m->edot;
        if ((st = mrec_gather_dot(ctx, into, m->dz, m->row, m->e[l], m->col, (int)n, d))) return st;
        if (into != m->dw && (st = mrec_add(ctx, m->dw, m->dw, m->edot, n))) return st;
        /* g = de + A(w)^T dz */
        if ((st = mrec_spmm(ctx, m->tmp, &at, m->dz, d, 0)) || (st = mrec_add(ctx, m->g, de, m->tmp, nd))) return st;
    }
    if (m->layers == 0) /* no layer: w has no gradient */
        st = mrec_scale(ctx, m->dw, m->w, 0.0f, n);
    if (st) return st;
    return mrec_l2_normalize_rows_back(ctx, m->ego_grad, m->g, m->e[0], m->ego, NORM_EPS, 1, N, d);
}

/* dw back through pruning and the combination: each modality's dalpha (written), C's gradient (written) */
static mrec_status combine_back(grcn *m) {
    mrec_context *ctx = m->ctx;
    int M = m->n_mod;
    int64_t n = (int64_t)n2(m);
    mrec_status st;
    if (m->pruning && (st = mrec_leaky_relu_back(ctx, m->dw, m->dw, m->w_pre, 0.0f, n))) return st;
    if (m->weight_mode == WEIGHT_MEAN) {
        for (int q = 0; q < M; q++)
            if ((st = mrec_scale(ctx, m->mod[q].dalpha, m->dw, 1.0f / M, n))) return st;
        return MREC_OK;
    }
    /* the running maximum backwards: dr is dw; step m: dv_m = relu'(t_m) dr, dr -= dv_m */
    for (int q = M - 1; q >= 0; q--) {
        modality *o = &m->mod[q];
        float *dv = o->dalpha; /* dv, then dα = dv c in place */
        if (q > 0) {
            if ((st = mrec_leaky_relu_back(ctx, dv, m->dw, o->t, 0.0f, n))) return st;
            if ((st = mrec_scale(ctx, m->ev, dv, -1.0f, n)) || (st = mrec_add(ctx, m->dw, m->dw, m->ev, n))) return st;
        } else if ((st = mrec_copy_rows(ctx, dv, (int)n, m->dw, (int)n, 1, (int)n))) {
            return st;
        }
        if (m->weight_mode != WEIGHT_CONFID) continue;
        /* dc_m = dv α_m into column m of dconf_e; dα_m = dv c_m */
        if ((st = mrec_mul(ctx, m->ev, dv, o->alpha, n))) return st;
        if ((st = mrec_copy_rows(ctx, m->dconf_e + q, M, m->ev, 1, (int)n, 1))) return st;
        if ((st = mrec_mul(ctx, dv, dv, o->conf_col, n))) return st;
    }
    if (m->weight_mode != WEIGHT_CONFID) return MREC_OK;
    /* C's rows: each node's list positions summed (A's pattern, columns the positions) */
    mrec_csr p = {.n_rows = m->n_nodes, .n_cols = (int)n, .row_ptr = m->row_ptr, .col = m->conf_pos, .device = ctx->device};
    return mrec_spmm(ctx, m->conf_grad, &p, m->dconf_e, M, 0);
}

/* One modality's gradients from its block of dF and its dalpha (the weights' share, written by combine_back). */
static mrec_status modality_back(grcn *m, modality *q, int index) {
    int U = m->n_users, I = m->n_items, N = m->n_nodes, E = m->n_pairs, k = m->k, R = m->routings;
    int64_t nk = (int64_t)N * k, uk = (int64_t)U * k, n = (int64_t)n2(m);
    mrec_context *ctx = m->ctx;
    float *gim = q->x + (size_t)U * k, *dx = m->dx, *dgim = dx + (size_t)U * k;
    mrec_status st;
    int direct = m->fusion != FUSION_ID; /* with id, x' reaches the loss through the weights only */
    if (direct) {
        /* dx' from F; through x' = x + act(A(α) x): dα += <dpre[row p], x[col p]>, dx = dx' + A(α)^T dpre */
        if (m->fusion == FUSION_CONCAT) st = mrec_copy_rows(ctx, dx, k, m->dfinal + m->dim + (size_t)index * k, m->width, N, k);
        else st = mrec_scale(ctx, dx, m->dfinal, 1.0f / (m->n_mod + 1), nk);
        if (st) return st;
        const float *dpre = dx;
        if (m->has_act) {
            if ((st = mrec_leaky_relu_back(ctx, m->tmp, dx, q->xa, SLOPE, nk))) return st;
            dpre = m->tmp;
        }
        if ((st = mrec_gather_dot(ctx, m->edot, dpre, m->row, q->x, m->col, (int)n, k))) return st;
        if ((st = mrec_add(ctx, q->dalpha, q->dalpha, m->edot, n))) return st;
        if ((st = mirrored(m, m->ev, q->alpha, m->mirror, (int)n, (int)n))) return st;
        mrec_csr at = adj(m, m->ev);
        if ((st = mrec_spmm(ctx, m->t2, &at, dpre, k, 0)) || (st = mrec_add(ctx, dx, dx, m->t2, nk))) return st;
    }
    /* α = the rows' softmax of s, s_p = <x[u_e], x[U + i_e]> (e = p mod E): ds, then the pair's two positions summed,
     * c_e = ds_e + ds_{E+e}, on both of its entries of A: dx += C x */
    if ((st = mrec_segment_softmax_back(ctx, q->dalpha, q->dalpha, q->alpha, m->row_ptr, N))) return st;
    if ((st = mrec_add(ctx, m->ev, q->dalpha, q->dalpha + E, E))) return st;
    if ((st = mirrored(m, m->ev + E, m->ev, m->mirror + E, E, E))) return st;
    mrec_csr c = adj(m, m->ev);
    if ((st = mrec_spmm(ctx, direct ? m->t2 : dx, &c, q->x, k, 0))) return st;
    if (direct && (st = mrec_add(ctx, dx, dx, m->t2, nk))) return st;
    /* the routings in reverse: du runs in dx's first U rows, dgim in its last I */
    float *du = dx;
    for (int t = R - 1; t >= 0; t--) {
        const float *next = t + 1 < R ? q->u[t + 1] : q->x;
        if ((st = mrec_l2_normalize_rows_back(ctx, m->dy, du, next, q->y[t], NORM_EPS, 0, U, k))) return st;
        float *dagg = m->dy;
        if (m->has_act) {
            if ((st = mrec_leaky_relu_back(ctx, m->dagg, m->dy, q->agg[t], SLOPE, uk))) return st;
            dagg = m->dagg;
        }
        /* the aggregate sum_e a_e i_m[i_e]: i_m gets R(a)^T dagg, a gets <dagg[u_e], i_m[i_e]> */
        if ((st = mirrored(m, m->ev, q->a[t], m->mirror + E, E, E))) return st;
        mrec_csr rt = item_rows(m, m->ev);
        if ((st = mrec_spmm(ctx, m->tmp, &rt, dagg, k, 0)) || (st = mrec_add(ctx, dgim, dgim, m->tmp, (int64_t)I * k))) return st;
        if ((st = mrec_gather_dot(ctx, m->edot, dagg, m->row, gim, m->pair_item, E, k))) return st;
        if ((st = mrec_segment_softmax_back(ctx, m->edot, m->edot, q->a[t], m->row_ptr, U))) return st;
        /* the scores <u_t[u_e], i_m[i_e]>: du = dy + R(ds) i_m, dgim += R(ds)^T u_t */
        mrec_csr r = user_rows(m, m->edot);
        if ((st = mrec_spmm(ctx, m->tmp, &r, gim, k, 0)) || (st = mrec_add(ctx, du, m->dy, m->tmp, uk))) return st;
        if ((st = mirrored(m, m->ev, m->edot, m->mirror + E, E, E))) return st;
        rt = item_rows(m, m->ev);
        if ((st = mrec_spmm(ctx, m->tmp, &rt, q->u[t], k, 0)) || (st = mrec_add(ctx, dgim, dgim, m->tmp, (int64_t)I * k))) return st;
    }
    /* u_0 = normalize(G_u^m); i_m = normalize(lrelu(z)), z = f P^T + p */
    if ((st = mrec_l2_normalize_rows_back(ctx, q->gum_grad, du, R ? q->u[0] : q->x, q->gum, NORM_EPS, 0, U, k))) return st;
    if ((st = mrec_l2_normalize_rows_back(ctx, m->tmp, dgim, gim, q->h, NORM_EPS, 0, I, k))) return st;
    if ((st = mrec_leaky_relu_back(ctx, m->tmp, m->tmp, q->z, SLOPE, (int64_t)I * k))) return st;
    if ((st = mrec_gemm(ctx, q->pw_grad, m->tmp, q->feat, NULL, 1, 0, 1, 0, k, q->f, I, k, q->f, q->f))) return st;
    return col_sums(m, q->pb_grad, m->tmp, I, k);
}

/* The batch's step, its loss left in m->bpr.loss on the context's device, in the trainer's two halves
 * (mrec_model.stage, .launch): the host's part (the triples' ids for the scores and the id rows, the users for the
 * preference regularizer, checked and sent up), then the launches. */
static mrec_status grcn_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    grcn *m = self;
    const int32_t *parts[1] = {u};
    int offset[1] = {0};
    mrec_status st = mrec_bpr_ops_stage(&m->bpr, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->width);
    if (!st) st = mrec_bpr_ops_stage(&m->bpr_id, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->dim);
    return st ? st : mrec_batch_rows_stage(&m->rows, m->ctx, m->n_users, 1, parts, offset, n);
}

static mrec_status batch_launch(grcn *m) {
    int d = m->dim, k = m->k, U = m->n_users, n = m->bpr.n;
    int64_t uk = (int64_t)U * k;
    mrec_context *ctx = m->ctx;
    mrec_status st = forward(m);
    /* the batch's scores on F; the squared norms of its id rows on [G_u ; G_i] (rows u, then i, then j), moved
     * beside the scores: the softplus BPR loss and l_w times the mean square of [u, u] and [i, j] */
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS, .weight = 1, .reg_form = MREC_BPR_REG_PAIRS, .reg = m->l_w, .reg_div = n * d};
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->final, m->final);
    if (!st) st = mrec_bpr_ops_gather(&m->bpr_id, m->ego, m->ego);
    if (!st) st = mrec_copy_rows(ctx, m->bpr.dots + 2 * n, 3 * n, m->bpr_id.dots + 2 * n, 3 * n, 1, 3 * n);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    /* ego_grad starts as the regularizer's rows (every row written; its factors to the id rows' ops), dF as the
     * BPR part's */
    if (!st) st = mrec_copy_rows(ctx, m->bpr_id.coef, 3, m->bpr.coef, 3, 1, 3);
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr_id, m->ego_grad, m->ego, 0, MREC_BPR_PARTS_ALL);
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->dfinal, m->final, 1, 0);
    if (st) return st;
    /* the preferences' rows: cnt[v] = how often user v is in the batch; sum_b |G_u^m[u_b]|^2 = <diag(cnt) G_u^m, G_u^m> */
    if ((st = mrec_batch_rows_index(&m->rows))) return st;
    if ((st = mrec_batch_rows_scatter(&m->rows, m->cnt, m->rows.ones, 1))) return st;
    mrec_csr diag = {.n_rows = U, .n_cols = U, .row_ptr = m->diag_ptr, .col = m->diag_col, .val = m->cnt, .device = ctx->device};
    if ((st = id_back(m)) || (st = combine_back(m))) return st;
    for (int q = 0; q < m->n_mod; q++) {
        modality *o = &m->mod[q];
        if ((st = modality_back(m, o, q))) return st;
        /* + 2 cnt[v] G_u^m[v] / (n k), and its loss term */
        if ((st = mrec_spmm(ctx, m->dy, &diag, o->gum, k, 0))) return st;
        if ((st = mrec_loss_dot(ctx, m->bpr.loss, m->dy, o->gum, uk, 1.0f, (double)n * k))) return st;
        if ((st = mrec_scale(ctx, m->dy, m->dy, (float)(2.0 / ((double)n * k)), uk))) return st;
        if ((st = mrec_add(ctx, o->gum_grad, o->gum_grad, m->dy, uk))) return st;
    }
    return MREC_OK;
}

static mrec_status grcn_launch(void *self, const double **loss) {
    grcn *m = self;
    mrec_status st = batch_launch(m);
    *loss = st ? NULL : m->bpr.loss;
    return st;
}

static const double *grcn_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    grcn *m = self;
    m->status = grcn_stage(m, u, i, j, n);
    if (!m->status) m->status = batch_launch(m);
    return m->status ? NULL : m->bpr.loss;
}

static double grcn_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    grcn *m = self;
    return mrec_step_loss(m->ctx, &m->status, grcn_step(self, u, i, j, n));
}

static mrec_status grcn_prepare(void *self) { return forward(self); }

static mrec_status grcn_score(void *self, int u0, int n, float *scores) {
    grcn *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->width, u0, n);
}

static mrec_status grcn_embeddings(void *self, float *users, float *items) {
    grcn *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->width);
}

static void grcn_destroy(void *self) {
    grcn *m = self;
    mrec_bpr_ops_free(&m->bpr), mrec_bpr_ops_free(&m->bpr_id);
    mrec_batch_rows_free(&m->rows);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m);
}

/* Every array from a (a measuring arena counts them). */
static void carve(grcn *m, mrec_arena *a) {
    size_t N = (size_t)m->n_nodes, d = (size_t)m->dim, U = (size_t)m->n_users, I = (size_t)m->n_items, k = (size_t)m->k;
    size_t E = (size_t)m->n_pairs, M = (size_t)m->n_mod, kx = k > d ? k : d, W = (size_t)m->width;
    int confid = m->weight_mode == WEIGHT_CONFID, maxed = m->weight_mode != WEIGHT_MEAN;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
#define I32(count) mrec_arena_alloc(a, sizeof(int32_t) * (count))
#define I64(count) mrec_arena_alloc(a, sizeof(int64_t) * (count))
    m->row_ptr = I64(N + 1), m->item_ptr = I64(I + 1), m->diag_ptr = I64(U + 1), m->iota = I64(2 * E + 1);
    m->col = I32(2 * E + 1), m->row = I32(2 * E + 1), m->pair_item = I32(E + 1), m->mirror = I32(2 * E + 1), m->conf_pos = I32(2 * E + 1);
    m->diag_col = I32(U + 1);
    m->ego = F(N * d), m->ego_grad = F(N * d);
    if (confid) m->conf = F(N * M), m->conf_grad = F(N * M), m->conf_e = F(2 * E * M + 1), m->dconf_e = F(2 * E * M + 1);
    m->w_pre = F(2 * E + 1), m->w = F(2 * E + 1), m->dw = F(2 * E + 1);
    for (int l = 0; l <= m->layers; l++) m->e[l] = F(N * d);
    for (int l = 0; l < m->layers; l++) m->ez[l] = F(N * d), m->ea[l] = m->has_act ? F(N * d) : NULL;
    m->final = F(N * W), m->dfinal = F(N * W);
    m->dx = F(N * kx), m->tmp = F(N * kx), m->t2 = F(N * kx), m->dy = F(U * k), m->dagg = m->has_act ? F(U * k) : NULL;
    m->g = F(N * d), m->dz = F(N * d), m->ev = F(2 * E + 1), m->ev2 = F(2 * E + 1), m->edot = F(2 * E + 1);
    m->ones = F(N), m->cnt = F(U);
    for (int c = 0; c < m->n_mod; c++) {
        modality *q = &m->mod[c];
        size_t f = (size_t)q->f;
        q->feat = F(I * f), q->gum = F(U * k), q->gum_grad = F(U * k);
        q->pw = F(k * f), q->pw_grad = F(k * f), q->pb = F(k), q->pb_grad = F(k);
        q->z = F(I * k), q->h = F(I * k), q->x = F(N * k);
        for (int t = 0; t < m->routings; t++) {
            q->u[t] = F(U * k), q->y[t] = F(U * k), q->a[t] = F(E + 1);
            q->agg[t] = m->has_act ? F(U * k) : NULL;
        }
        q->alpha = F(2 * E + 1), q->dalpha = F(2 * E + 1), q->xa = m->has_act ? F(N * k) : NULL;
        q->conf_col = confid ? F(2 * E + 1) : NULL;
        q->v = F(2 * E + 1), q->t = maxed && c > 0 ? F(2 * E + 1) : NULL;
    }
#undef F
#undef I32
#undef I64
}

static void uniform(float *w, size_t count, double bound, mrec_rng *rng) {
    for (size_t e = 0; e < count; e++) w[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
}

/* xavier-uniform of a (rows, cols) matrix: bound sqrt(6 / (rows + cols)) */
static void xavier(float *w, int rows, int cols, mrec_rng *rng) { uniform(w, (size_t)rows * cols, sqrt(6.0 / (rows + cols)), rng); }

/* A's index on the host: each entry's row, the item rows from 0, the mirror map (entry of the same pair in the other
 * half), the items of the pairs, and which list positions serve a node's confidence. adj: rows sorted, columns
 * increasing in a row, user rows holding items only and item rows users only (mrec_graph_normalized's pattern). */
typedef struct {
    int64_t *item_ptr, *diag_ptr, *iota;
    int32_t *row, *mirror, *pair_item, *conf_pos, *diag_col;
    float *ones;
} host_index;

static void host_index_free(host_index *h) {
    free(h->item_ptr), free(h->diag_ptr), free(h->iota), free(h->row), free(h->mirror), free(h->pair_item), free(h->conf_pos), free(h->diag_col), free(h->ones);
}

static mrec_status host_index_build(host_index *h, const mrec_graph *g, int U, int I) {
    int N = U + I;
    int64_t E = g->row_ptr[U], nnz = g->row_ptr[N];
    memset(h, 0, sizeof *h);
    h->item_ptr = malloc(sizeof(int64_t) * ((size_t)I + 1)), h->diag_ptr = malloc(sizeof(int64_t) * ((size_t)U + 1));
    h->row = malloc(sizeof(int32_t) * (size_t)(nnz + 1)), h->mirror = malloc(sizeof(int32_t) * (size_t)(nnz + 1));
    h->pair_item = malloc(sizeof(int32_t) * (size_t)(E + 1)), h->conf_pos = malloc(sizeof(int32_t) * (size_t)(nnz + 1));
    h->diag_col = malloc(sizeof(int32_t) * ((size_t)U + 1)), h->ones = malloc(sizeof(float) * (size_t)N + 1);
    h->iota = malloc(sizeof(int64_t) * (size_t)(nnz + 1));
    int64_t *fill = malloc(sizeof(int64_t) * ((size_t)U + 1));
    if (!h->item_ptr || !h->diag_ptr || !h->iota || !h->row || !h->mirror || !h->pair_item || !h->conf_pos || !h->diag_col || !h->ones || !fill) {
        free(fill), host_index_free(h);
        return mrec_fail(MREC_ERR_NOMEM, "grcn: the index of %lld graph entries", (long long)nnz);
    }
    mrec_status st = MREC_OK;
    for (int r = 0; r < N && !st; r++)
        for (int64_t p = g->row_ptr[r]; p < g->row_ptr[r + 1] && !st; p++) {
            int c = g->col[p];
            h->row[p] = r;
            if ((r < U) != (c >= U) || c < 0 || c >= N || (p > g->row_ptr[r] && g->col[p - 1] >= c))
                st = mrec_fail(MREC_ERR_ARG, "grcn: graph entry %lld (row %d, column %d) is not of a sorted user-item adjacency", (long long)p, r, c);
            if (r < U) h->pair_item[p] = c - U;
        }
    if (!st && nnz != 2 * E) st = mrec_fail(MREC_ERR_ARG, "grcn: %lld graph entries for %lld pairs", (long long)nnz, (long long)E);
    /* items in increasing order meet each user's pairs in increasing order: fill[u] walks user u's row */
    for (int u = 0; u < U && !st; u++) fill[u] = g->row_ptr[u];
    for (int i = 0; i < I && !st; i++)
        for (int64_t q = g->row_ptr[U + i]; q < g->row_ptr[U + i + 1] && !st; q++) {
            int u = g->col[q];
            int64_t p = fill[u]++;
            if (p >= g->row_ptr[u + 1] || g->col[p] != U + i) {
                st = mrec_fail(MREC_ERR_ARG, "grcn: the graph is not symmetric at user %d, item %d", u, i);
                break;
            }
            h->mirror[p] = (int32_t)q, h->mirror[q] = (int32_t)p;
        }
    for (int64_t p = 0; p < nnz && !st; p++) h->conf_pos[p] = (int32_t)(p < E ? p : E + h->mirror[p]);
    for (int i = 0; i <= I && !st; i++) h->item_ptr[i] = g->row_ptr[U + i] - E;
    for (int u = 0; u <= U; u++) h->diag_ptr[u] = u;
    for (int64_t p = 0; p <= nnz; p++) h->iota[p] = p;
    for (int u = 0; u < U; u++) h->diag_col[u] = u;
    for (int r = 0; r < N; r++) h->ones[r] = 1.0f;
    free(fill);
    if (st) host_index_free(h);
    return st;
}

/* The initial values, drawn on the host in a fixed order (the same on every device), then copied to the device:
 * G_u, G_i, then per modality G_u^m, P_m, p_m, then C; the graph's index with them. */
static mrec_status upload(grcn *m, const mrec_graph *g, const float *const *feat, mrec_rng *rng) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, k = m->k, M = m->n_mod;
    int64_t E = m->n_pairs;
    mrec_context *ctx = m->ctx;
    host_index hx;
    mrec_status st = host_index_build(&hx, g, U, I);
    if (st) return st;
    size_t most = (size_t)N * d > (size_t)N * M ? (size_t)N * d : (size_t)N * M;
    for (int q = 0; q < M; q++) {
        size_t one = (size_t)U * k + (size_t)k * (m->mod[q].f + 1);
        if (one > most) most = one;
    }
    float *h = malloc(sizeof(float) * most);
    if (!h) {
        host_index_free(&hx);
        return mrec_fail(MREC_ERR_NOMEM, "grcn: %zu initial values", most);
    }
    xavier(h, U, d, rng), xavier(h + (size_t)U * d, I, d, rng);
    st = mrec_copy_to_device(ctx, m->ego, h, sizeof(float) * (size_t)N * d);
    for (int q = 0; q < M && !st; q++) {
        modality *o = &m->mod[q];
        size_t gum = (size_t)U * k, pw = (size_t)k * o->f;
        double b = 1.0 / sqrt((double)o->f);
        xavier(h, U, k, rng), uniform(h + gum, pw, b, rng), uniform(h + gum + pw, (size_t)k, b, rng);
        st = mrec_copy_to_device(ctx, o->gum, h, sizeof(float) * gum);
        if (!st) st = mrec_copy_to_device(ctx, o->pw, h + gum, sizeof(float) * pw);
        if (!st) st = mrec_copy_to_device(ctx, o->pb, h + gum + pw, sizeof(float) * (size_t)k);
        if (!st) st = mrec_copy_to_device(ctx, o->feat, feat[q], sizeof(float) * (size_t)I * o->f);
    }
    if (!st && m->conf) {
        xavier(h, N, M, rng);
        st = mrec_copy_to_device(ctx, m->conf, h, sizeof(float) * (size_t)N * M);
    }
    free(h);
    size_t e2 = sizeof(int32_t) * (size_t)(2 * E);
    if (!st) st = mrec_copy_to_device(ctx, m->row_ptr, g->row_ptr, sizeof(int64_t) * ((size_t)N + 1));
    if (!st) st = mrec_copy_to_device(ctx, m->item_ptr, hx.item_ptr, sizeof(int64_t) * ((size_t)I + 1));
    if (!st) st = mrec_copy_to_device(ctx, m->diag_ptr, hx.diag_ptr, sizeof(int64_t) * ((size_t)U + 1));
    if (!st) st = mrec_copy_to_device(ctx, m->diag_col, hx.diag_col, sizeof(int32_t) * (size_t)U);
    if (!st) st = mrec_copy_to_device(ctx, m->iota, hx.iota, sizeof(int64_t) * (size_t)(2 * E + 1));
    if (!st) st = mrec_copy_to_device(ctx, m->ones, hx.ones, sizeof(float) * (size_t)N);
    if (!st) st = mrec_copy_to_device(ctx, m->col, g->col, e2);
    if (!st) st = mrec_copy_to_device(ctx, m->row, hx.row, e2);
    if (!st) st = mrec_copy_to_device(ctx, m->mirror, hx.mirror, e2);
    if (!st) st = mrec_copy_to_device(ctx, m->conf_pos, hx.conf_pos, e2);
    if (!st) st = mrec_copy_to_device(ctx, m->pair_item, hx.pair_item, sizeof(int32_t) * (size_t)E);
    host_index_free(&hx);
    return st;
}

mrec_status mrec_grcn_create(mrec_model *out, const mrec_graph *adj_graph, int n_users, int n_items, const float *const *feat,
                             const int *feat_dim, int n_modalities, int dim, int dim_multimod, int layers, int routings,
                             int weight_mode, int pruning, int has_act, int fusion, float l_w, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    if (adj_graph->n_nodes != n_users + n_items || n_users < 1 || n_items < 1 || layers < 0 || layers > MAX_LAYERS || routings < 0 ||
        routings > MAX_ROUTINGS || dim < 1 || dim_multimod < 1 || n_modalities < 1 || n_modalities > MAX_MOD)
        return mrec_fail(MREC_ERR_ARG,
                         "grcn: graph of %d nodes for %d users + %d items, %d layers (0 to %d), %d routings (0 to %d), sizes %d and %d, "
                         "%d modalities (1 to %d)",
                         adj_graph->n_nodes, n_users, n_items, layers, MAX_LAYERS, routings, MAX_ROUTINGS, dim, dim_multimod, n_modalities,
                         MAX_MOD);
    if (weight_mode < WEIGHT_MEAN || weight_mode > WEIGHT_CONFID || fusion < FUSION_CONCAT || fusion > FUSION_MEAN)
        return mrec_fail(MREC_ERR_ARG, "grcn: weight mode %d, fusion %d", weight_mode, fusion);
    if (fusion == FUSION_MEAN && dim_multimod != dim)
        return mrec_fail(MREC_ERR_ARG, "grcn: fusion mean averages the id and modality embeddings: factors_multimod %d must be factors %d",
                         dim_multimod, dim);
    for (int q = 0; q < n_modalities; q++)
        if (feat_dim[q] < 1) return mrec_fail(MREC_ERR_ARG, "grcn: modality %d has %d features", q, feat_dim[q]);
    int64_t E = adj_graph->row_ptr[n_users], nnz = adj_graph->row_ptr[adj_graph->n_nodes];
    if (E < 1 || 2 * E > 0x7fffffff || nnz != 2 * E)
        return mrec_fail(MREC_ERR_ARG, "grcn: %lld pairs in a graph of %lld entries", (long long)E, (long long)nnz);
    grcn *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "grcn");
    m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items, m->n_pairs = (int)E, m->dim = dim, m->k = dim_multimod;
    m->layers = layers, m->routings = routings, m->n_mod = n_modalities, m->weight_mode = weight_mode, m->pruning = pruning;
    m->has_act = has_act, m->fusion = fusion, m->l_w = l_w, m->ctx = ctx;
    m->width = fusion == FUSION_CONCAT ? dim + n_modalities * dim_multimod : dim;
    for (int q = 0; q < n_modalities; q++) m->mod[q].f = feat_dim[q];
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        free(m);
        return st;
    }
    carve(m, &m->mem);
    if ((st = upload(m, adj_graph, feat, rng)) || (st = forward(m))) {
        grcn_destroy(m);
        return st;
    }
    int p = 0;
#define PARAM(w, g, count) out->param[p] = (w), out->grad[p] = (g), out->size[p++] = (int64_t)(count)
    PARAM(m->ego, m->ego_grad, (size_t)m->n_nodes * dim);
    for (int q = 0; q < n_modalities; q++) {
        modality *o = &m->mod[q];
        PARAM(o->gum, o->gum_grad, (size_t)n_users * dim_multimod);
        PARAM(o->pw, o->pw_grad, (size_t)dim_multimod * o->f), PARAM(o->pb, o->pb_grad, dim_multimod);
    }
    if (m->conf) PARAM(m->conf, m->conf_grad, (size_t)m->n_nodes * n_modalities);
#undef PARAM
    out->n_params = p;
    out->name = "GRCN", out->self = m;
    out->status = &m->status;
    out->loss_grad = grcn_loss_grad, out->step = grcn_step, out->prepare = grcn_prepare, out->score = grcn_score;
    out->stage = grcn_stage, out->launch = grcn_launch;
    out->embed_dim = m->width, out->embeddings = grcn_embeddings;
    out->destroy = grcn_destroy;
    return MREC_OK;
}
