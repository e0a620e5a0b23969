/* smore.c: SMORE (Ong and Khong, "Spectrum-based Modality Representation
 * Fusion Graph Convolutional Network for Multimodal Recommendation", WSDM
 * 2025) as its authors' code defines it (kennethorq/SMORE, src/models/smore.py,
 * built on MMRec).
 *
 * Nodes are users then items (N = U + I); E = [E_u ; E_i] the id embeddings.
 * Two modalities, image (v) and text (t), with trained features X_m (I, f_m):
 *   f_m      = X_m T_m^T + t_m                        (X_m: from_pretrained(freeze=False))
 *   F_m      = rfft(f_m) over the d columns, "ortho": K = d / 2 + 1 bins per row
 *   c_v      = irfft(F_v w_v),  c_t = irfft(F_t w_t),  c_f = irfft(F_v F_t w_f)
 *              w_v, w_t, w_f (K) learned complex weights (randn); products bin by bin
 *   S_v, S_t = each item's k most cosine-similar items by the original features
 *              (itself included; image_knn_k and text_knn_k), weighted by the
 *              similarity, normalized v_ij / sqrt(r_i r_j), r the row sums
 *              (MMRec's build_knn_normalized_graph, sparse, "sym"), built once
 *   S_f      = their max-pool: the union of the entries, the larger value where both have one
 *   h_g      = S_g^{n_layers} (E_i * sigmoid(c_g G_g^T + g_g))   g = v, t, f
 *   M_g      = [R h_g ; h_g]                           R: the user-item block of Â
 *   C        = mean(E, Â E, .., Â^{n_ui_layers} E)    the id view (LightGCN)
 *   a_m      = softmax(tanh(M_f Q_m^T + q_m) W_m^T)    over the d columns, m = v, t
 *   p_g      = dropout(sigmoid(C P_g^T + p_g))         while training only
 *   side     = (p_v * a_v * M_v + p_t * a_t * M_t + p_f * M_f) / 3,  final = C + side
 * with Â = D^-1/2 A D^-1/2 over the training pairs (no self-loops, zero
 * degrees give 0). score(u, i) = <final_u, final_i>, and the batch loss is
 *   -mean log sigmoid(pos - neg)
 *   + reg / (2 B) (|final_u|^2 + |final_i|^2 + |final_j|^2)     B: the configured batch size
 *   + cl (InfoNCE(side_I, C_I) + InfoNCE(side_U, C_U))           the batch's positives, users
 * InfoNCE(a, b) = mean_r -log(exp(<â_r, b̂_r>/t) / sum_c exp(<â_r, b̂_c>/t)) over unit rows;
 * the reference fixes t = 0.2. E starts xavier-uniform, the linear layers as
 * nn.Linear (uniform in +-1/sqrt(fan_in)), the complex weights N(0, 1).
 *
 * The transforms are DFT matrices, not an FFT: rfft(x) = x [Cr | Ci] with
 * Cr[j, k] = cos(2 pi j k / d) / sqrt(d), Ci = -sin(..) / sqrt(d), and
 * irfft(Y) = Re Y Gr + Im Y Gi with Gr[k, j] = c_k cos(..) / sqrt(d),
 * Gi = -c_k sin(..) / sqrt(d), c_k = 1 for the zero and (d even) the d / 2
 * bin, else 2: irfft reads only the real part of those two bins, as
 * pocketfft's does. The weight folds into the inverse, irfft(Y w) =
 * Re Y A + Im Y B with A = diag(Re w) Gr + diag(Im w) Gi and
 * B = diag(Re w) Gi - diag(Im w) Gr (K, d), so a view's filter is two GEMMs
 * of (I, K) by (K, d): O(d^2) per item where an FFT would take O(d log d),
 * as much as one of the model's many d x d linear layers (over I rows, not
 * N), and on cuBLAS on a GPU. The gradient of w is the rows' sums of dA * Gr + dB * Gi
 * (real part) and dA * Gi - dB * Gr (imaginary part).
 *
 * Sigmoid is not an op: sigmoid(x) = (1 + tanh(x / 2)) / 2, kept as its tanh
 * u, so y * sigmoid(x) = (y + y u) / 2 and its derivative (1 - u^2) / 4.
 * The dropout masks come from mrec's hash stream (mrec_hash_dropout), keyed
 * by a seed drawn from rng first and the step: the same run for a seed on
 * every device, not torch's draws.
 *
 * One path, through the op entries only: every array (weights, gradients,
 * activations, the graphs, the DFT matrices) is carved from one allocation
 * on the context's device, so the same code trains on the CPU and a GPU;
 * only the loss's numbers come back to the host (the contrastive rows'
 * buffers are a second allocation, grown with the largest batch). The kNN
 * graphs are built on the host once (mrec_mgcn_item_graph: MGCN's, the same
 * MMRec functions) and not cached.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_MOD 2          /* image, text */
#define N_VIEW 3         /* image, text, fusion */

typedef struct {
    int f;                               /* feature size */
    float *feat, *feat_grad;             /* (I, f) trained */
    float *tw, *tw_grad, *tb, *tb_grad;  /* (d, f), (d): image_trs / text_trs */
    float *fm, *dfm;                     /* (I, d) f_m and its gradient */
    float *re, *im, *dre, *dim;          /* (I, K) F_m's parts and their gradients */
} modality;

typedef struct {
    float *w, *w_grad;                   /* (2K) the complex weight: K real parts, then K imaginary parts */
    float *a, *b, *da, *db;              /* (K, d) the inverse transform with w folded in, their gradients */
    mrec_csr w_re, w_im;                 /* (K, K) diag(Re w), diag(Im w) */
    const float *re, *im;                /* (I, K) the spectrum filtered: F_m, or F_v F_t for the fusion */
    float *dre, *dim;                    /* (I, K) its gradient */
    float *conv;                         /* (I, d) c_g */
    float *gw, *gw_grad, *gb, *gb_grad;  /* (d, d), (d): gate_v / gate_t / gate_f */
    float *gt;                           /* (I, d) tanh of half the gate's input */
    float *pw, *pw_grad, *pb, *pb_grad;  /* (d, d), (d): gate_*_prefer */
    float *pt;                           /* (N, d) tanh of half the preference gate's input */
    float *mask;                         /* (N, d) the preference's dropout: 0 or 1 / (1 - p) */
    float *pref;                         /* (N, d) p_g */
    mrec_csr s, s_t;                     /* (I, I) S_g and its transpose */
    float *mv, *dmv;                     /* (N, d) M_g and its gradient */
} view;

typedef struct {
    float *w1, *w1_grad, *b1, *b1_grad;  /* (d, d), (d): query_v / query_t's first layer */
    float *w2, *w2_grad;                 /* (d, d): its second, no bias */
    float *att;                          /* (N, d) tanh(M_f Q^T + q) */
    float *soft;                         /* (N, d) a_m */
    float *agg;                          /* (N, d) a_m * M_m */
} query;

typedef struct {
    int n_users, n_items, n_nodes, dim, n_bins, ui_layers, item_layers, batch_size;
    float reg, cl, temp, dropout;
    uint64_t seed, step;
    mrec_context *ctx;
    mrec_arena mem;                         /* everything below, on the context's device */
    mrec_csr adj;                           /* (N, N) Â */
    float *ego, *ego_grad;                  /* (N, d) E */
    modality mod[N_MOD];
    view vw[N_VIEW];
    query qr[N_MOD];
    float *cr, *ci;                         /* (d, K) the forward DFT's real and imaginary parts */
    float *gr, *gi;                         /* (K, d) the inverse's */
    float *pre, *pim, *dpre, *dpim;         /* (I, K) F_v F_t, its gradient */
    float *content, *side, *final, *z;      /* (N, d); z = [0 ; h]: user rows stay 0 */
    float *dfinal, *dside, *dcontent;       /* (N, d) */
    float *t1, *t2, *t3, *la, *lb;          /* (N, d) scratch */
    float *s1, *s2;                         /* (I, K) scratch */
    float *k1;                              /* (K, d) scratch */
    float *dei;                             /* (I, d) the items' id gradient from the views */
    float *dot;                             /* (N) */
    float *ones;                            /* (max(N, d)) */
    int64_t *diag_ptr;                      /* (K + 1) 0, 1, .., K */
    int32_t *diag_col;                      /* (K) 0, 1, .., K - 1 */
    /* a batch's contrastive rows: [users ; positives] of side and C, on the device; grown, not per batch */
    mrec_arena batch;
    int cap;
    float *v1, *v2, *d1, *d2;               /* (2 cap, d) side's and C's rows, their gradients */
    mrec_info_nce nce;
    mrec_batch_rows rows;
    mrec_bpr_ops bpr;
    mrec_step_keys step_keys;               /* the step's dropout keys, one a view, in the context's memory */
    mrec_status status;
} smore;

/* out (cols) = beta out + the column sums of g (rows, cols): ones^T g */
static mrec_status col_sums(smore *m, float *out, const float *g, int rows, int cols, float beta) {
    return mrec_gemm(m->ctx, out, m->ones, g, NULL, 1, beta, 0, 0, 1, cols, rows, rows, cols, cols);
}

/* out (rows) = the row sums of g (rows, cols): g ones */
static mrec_status row_sums(smore *m, float *out, const float *g, int rows, int cols) {
    return mrec_gemm(m->ctx, out, g, m->ones, NULL, 1, 0, 0, 0, rows, 1, cols, cols, 1, 1);
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

/* out = a * b + sign c * e, all (n); scratch (n) */
static mrec_status mul_pair(mrec_context *ctx, float *out, const float *a, const float *b, float sign, const float *c, const float *e,
                            float *scratch, int64_t n) {
    mrec_status st = mrec_mul(ctx, scratch, c, e, n);
    if (!st && sign < 0) st = mrec_scale(ctx, scratch, scratch, -1.0f, n);
    if (!st) st = mrec_mul(ctx, out, a, b, n);
    return st ? st : mrec_add(ctx, out, out, scratch, n);
}

/* Keys of a step's dropout masks, one per view */
static uint64_t key_of(const smore *m, uint64_t step, int g) { return mrec_mix64(m->seed ^ mrec_mix64(step * 4 + (uint64_t)g)); }

/* final and everything the backward reads; the preferences' dropout only while training, under keys: the step's
 * dropout keys in the context's memory, one a view (the stage drew them); NULL for ranking (no dropout). */
static mrec_status forward(smore *m, const uint64_t *keys) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, K = m->n_bins;
    int64_t nd = (int64_t)N * d, id = (int64_t)I * d, ik = (int64_t)I * K, kd = (int64_t)K * d;
    mrec_context *ctx = m->ctx;
    const float *ei = m->ego + (size_t)U * d;
    float *zi = m->z + (size_t)U * d;
    mrec_status st = mrec_csr_layer_mean(m->content, m->ego, &m->adj, m->ui_layers, d, m->la, m->lb, ctx);
    /* the spectra: f_m = X_m T_m^T + t_m, then its real DFT */
    for (int k = 0; k < N_MOD && !st; k++) {
        modality *q = &m->mod[k];
        st = mrec_gemm(ctx, q->fm, q->feat, q->tw, q->tb, 1, 0, 0, 1, I, d, q->f, q->f, q->f, d);
        if (!st) st = mrec_gemm(ctx, q->re, q->fm, m->cr, NULL, 1, 0, 0, 0, I, K, d, d, K, K);
        if (!st) st = mrec_gemm(ctx, q->im, q->fm, m->ci, NULL, 1, 0, 0, 0, I, K, d, d, K, K);
    }
    /* the fusion's spectrum F_v F_t, bin by bin */
    const modality *v = &m->mod[0], *t = &m->mod[1];
    if (!st) st = mul_pair(ctx, m->pre, v->re, t->re, -1, v->im, t->im, m->s1, ik);
    if (!st) st = mul_pair(ctx, m->pim, v->re, t->im, 1, v->im, t->re, m->s1, ik);
    for (int g = 0; g < N_VIEW && !st; g++) {
        view *w = &m->vw[g];
        /* c_g = irfft(spectrum w): A = diag(Re w) Gr + diag(Im w) Gi, B = diag(Re w) Gi - diag(Im w) Gr */
        if ((st = mrec_spmm(ctx, w->a, &w->w_re, m->gr, d, 0)) || (st = mrec_spmm(ctx, m->k1, &w->w_im, m->gi, d, 0)) ||
            (st = mrec_add(ctx, w->a, w->a, m->k1, kd)))
            break;
        if ((st = mrec_spmm(ctx, w->b, &w->w_re, m->gi, d, 0)) || (st = mrec_spmm(ctx, m->k1, &w->w_im, m->gr, d, 0)) ||
            (st = mrec_scale(ctx, m->k1, m->k1, -1.0f, kd)) || (st = mrec_add(ctx, w->b, w->b, m->k1, kd)))
            break;
        if ((st = mrec_gemm(ctx, w->conv, w->re, w->a, NULL, 1, 0, 0, 0, I, d, K, K, d, d))) break;
        if ((st = mrec_gemm(ctx, w->conv, w->im, w->b, NULL, 1, 1, 0, 0, I, d, K, K, d, d))) break;
        /* h = S_g^{n_layers} (E_i * sigmoid(c_g G^T + g)) */
        if ((st = mrec_gemm(ctx, m->t1, w->conv, w->gw, w->gb, 1, 0, 0, 1, I, d, d, d, d, d))) break;
        if ((st = half_tanh(ctx, w->gt, m->t1, id))) break;
        if ((st = gated(ctx, zi, ei, w->gt, m->t1, id))) break;
        for (int l = 0; l < m->item_layers && !st; l++) {
            st = mrec_spmm(ctx, m->t1, &w->s, zi, d, 0);
            if (!st) st = mrec_copy_rows(ctx, zi, d, m->t1, d, I, d);
        }
        /* M_g = Â [0 ; h] + [0 ; h]: Â's item rows see only user rows (0), its user rows are R h */
        if (st || (st = mrec_spmm(ctx, w->mv, &m->adj, m->z, d, 0)) || (st = mrec_add(ctx, w->mv, w->mv, m->z, nd))) break;
        /* p_g = sigmoid(C P^T + p) * mask */
        if ((st = mrec_gemm(ctx, m->t1, m->content, w->pw, w->pb, 1, 0, 0, 1, N, d, d, d, d, d))) break;
        if ((st = half_tanh(ctx, w->pt, m->t1, nd))) break;
        if ((st = keys ? mrec_hash_dropout_at(ctx, w->mask, NULL, NULL, nd, m->dropout, keys + g)
                       : mrec_hash_dropout(ctx, w->mask, NULL, NULL, nd, 0.0f, 0)))
            break;
        st = gated(ctx, w->pref, w->mask, w->pt, m->t1, nd);
    }
    /* a_m = softmax over the columns of tanh(M_f Q^T + q) W^T; agg_m = a_m * M_m */
    const float *mf = m->vw[2].mv;
    for (int k = 0; k < N_MOD && !st; k++) {
        query *q = &m->qr[k];
        if ((st = mrec_gemm(ctx, m->t1, mf, q->w1, q->b1, 1, 0, 0, 1, N, d, d, d, d, d))) break;
        if ((st = mrec_activation(ctx, q->att, m->t1, MREC_ACT_TANH, 0, nd))) break;
        if ((st = mrec_gemm(ctx, m->t1, q->att, q->w2, NULL, 1, 0, 0, 1, N, d, d, d, d, d))) break;
        if ((st = mrec_softmax_rows(ctx, q->soft, m->t1, NULL, N, d, 1))) break;
        st = mrec_mul(ctx, q->agg, q->soft, m->vw[k].mv, nd);
    }
    /* side = (p_v agg_v + p_t agg_t + p_f M_f) / 3 */
    if (st || (st = mrec_mul(ctx, m->side, m->vw[2].pref, mf, nd))) return st;
    for (int k = 0; k < N_MOD && !st; k++) {
        st = mrec_mul(ctx, m->t1, m->vw[k].pref, m->qr[k].agg, nd);
        if (!st) st = mrec_add(ctx, m->side, m->side, m->t1, nd);
    }
    if (st || (st = mrec_scale(ctx, m->side, m->side, 1.0f / 3.0f, nd))) return st;
    return mrec_add(ctx, m->final, m->content, m->side, nd);
}

/* Gradients of every parameter from dfinal, dside (the contrastive part) and dcontent (its other part). */
static mrec_status backward(smore *m) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, K = m->n_bins;
    int64_t nd = (int64_t)N * d, id = (int64_t)I * d, ik = (int64_t)I * K, kd = (int64_t)K * d;
    mrec_context *ctx = m->ctx;
    const float *ei = m->ego + (size_t)U * d;
    float *ds = m->t3;
    view *vf = &m->vw[2];
    mrec_status st;
    /* side and C both reach final; ds = d side / 3 reaches each term */
    if ((st = mrec_add(ctx, m->dside, m->dside, m->dfinal, nd)) || (st = mrec_add(ctx, m->dcontent, m->dcontent, m->dfinal, nd))) return st;
    if ((st = mrec_scale(ctx, ds, m->dside, 1.0f / 3.0f, nd))) return st;
    /* p_f * M_f: dM_f = ds p_f; the preference's gradient ds M_f, left in t2 for its gate below */
    if ((st = mrec_mul(ctx, vf->dmv, ds, vf->pref, nd))) return st;
    for (int g = N_VIEW - 1; g >= 0; g--) {
        view *w = &m->vw[g];
        if (g < N_MOD) { /* p_m * a_m * M_m: dM_m = ds p_m a_m, d a_m = ds p_m M_m, d p_m = ds agg_m */
            query *q = &m->qr[g];
            if ((st = mrec_mul(ctx, m->t1, ds, w->pref, nd)) || (st = mrec_mul(ctx, w->dmv, m->t1, q->soft, nd))) return st;
            if ((st = mrec_mul(ctx, m->t1, m->t1, w->mv, nd))) return st;
            /* the softmax over the columns: dx = a (da - <a, da>) */
            if ((st = mrec_mul(ctx, m->t2, m->t1, q->soft, nd)) || (st = row_sums(m, m->dot, m->t2, N, d))) return st;
            if ((st = mrec_gemm(ctx, m->t1, m->dot, m->ones, NULL, -1, 1, 0, 0, N, d, 1, 1, d, d))) return st;
            if ((st = mrec_mul(ctx, m->t1, m->t1, q->soft, nd))) return st;
            /* x = att W^T: dW = dx^T att, datt = dx W; att = tanh(M_f Q^T + q): dy = datt (1 - att^2) */
            if ((st = mrec_gemm(ctx, q->w2_grad, m->t1, q->att, NULL, 1, 0, 1, 0, d, d, N, d, d, d))) return st;
            if ((st = mrec_gemm(ctx, m->t2, m->t1, q->w2, NULL, 1, 0, 0, 0, N, d, d, d, d, d))) return st;
            if ((st = mrec_mul(ctx, m->t1, m->t2, q->att, nd)) || (st = mrec_mul(ctx, m->t1, m->t1, q->att, nd))) return st;
            if ((st = mrec_scale(ctx, m->t1, m->t1, -1.0f, nd)) || (st = mrec_add(ctx, m->t2, m->t2, m->t1, nd))) return st;
            if ((st = mrec_gemm(ctx, q->w1_grad, m->t2, vf->mv, NULL, 1, 0, 1, 0, d, d, N, d, d, d))) return st;
            if ((st = col_sums(m, q->b1_grad, m->t2, N, d, 0))) return st;
            if ((st = mrec_gemm(ctx, vf->dmv, m->t2, q->w1, NULL, 1, 1, 0, 0, N, d, d, d, d, d))) return st;
            if ((st = mrec_mul(ctx, m->t2, ds, q->agg, nd))) return st;
        } else if ((st = mrec_mul(ctx, m->t2, ds, vf->mv, nd))) {
            return st;
        }
        /* p = sigmoid(C P^T + p) * mask: through the mask and the sigmoid; dP = dy^T C, dC += dy P */
        if ((st = mrec_mul(ctx, m->t2, m->t2, w->mask, nd)) || (st = sigmoid_back(ctx, m->t2, m->t2, w->pt, m->t1, nd))) return st;
        if ((st = mrec_gemm(ctx, w->pw_grad, m->t2, m->content, NULL, 1, 0, 1, 0, d, d, N, d, d, d))) return st;
        if ((st = col_sums(m, w->pb_grad, m->t2, N, d, 0))) return st;
        if ((st = mrec_gemm(ctx, m->dcontent, m->t2, w->pw, NULL, 1, 1, 0, 0, N, d, d, d, d, d))) return st;
    }
    for (int g = 0; g < N_VIEW; g++) {
        view *w = &m->vw[g];
        /* M_g = Â z + z: dz = Â dM + dM (Â symmetric), its item rows dh */
        float *dh = m->t2 + (size_t)U * d;
        if ((st = mrec_spmm(ctx, m->t2, &m->adj, w->dmv, d, 0)) || (st = mrec_add(ctx, m->t2, m->t2, w->dmv, nd))) return st;
        for (int l = 0; l < m->item_layers; l++) {
            if ((st = mrec_spmm(ctx, m->t1, &w->s, dh, d, 1)) || (st = mrec_copy_rows(ctx, dh, d, m->t1, d, I, d))) return st;
        }
        /* h0 = E_i * sigmoid(c G^T + g): E_i gets dh sigmoid, the gate dh E_i */
        if ((st = gated(ctx, g ? m->t3 : m->dei, dh, w->gt, m->t1, id))) return st;
        if (g && (st = mrec_add(ctx, m->dei, m->dei, m->t3, id))) return st;
        if ((st = mrec_mul(ctx, m->t3, dh, ei, id)) || (st = sigmoid_back(ctx, m->t3, m->t3, w->gt, m->t1, id))) return st;
        if ((st = mrec_gemm(ctx, w->gw_grad, m->t3, w->conv, NULL, 1, 0, 1, 0, d, d, I, d, d, d))) return st;
        if ((st = col_sums(m, w->gb_grad, m->t3, I, d, 0))) return st;
        float *dconv = m->t1;
        if ((st = mrec_gemm(ctx, dconv, m->t3, w->gw, NULL, 1, 0, 0, 0, I, d, d, d, d, d))) return st;
        /* c = Re Y A + Im Y B: dA = Re Y^T dc, dB = Im Y^T dc, dRe Y = dc A^T, dIm Y = dc B^T */
        if ((st = mrec_gemm(ctx, w->da, w->re, dconv, NULL, 1, 0, 1, 0, K, d, I, K, d, d))) return st;
        if ((st = mrec_gemm(ctx, w->db, w->im, dconv, NULL, 1, 0, 1, 0, K, d, I, K, d, d))) return st;
        if ((st = mrec_gemm(ctx, w->dre, dconv, w->a, NULL, 1, 0, 0, 1, I, K, d, d, d, K))) return st;
        if ((st = mrec_gemm(ctx, w->dim, dconv, w->b, NULL, 1, 0, 0, 1, I, K, d, d, d, K))) return st;
        /* d Re w = rows of dA Gr + dB Gi, d Im w = rows of dA Gi - dB Gr */
        if ((st = mul_pair(ctx, m->k1, w->da, m->gr, 1, w->db, m->gi, m->t3, kd)) || (st = row_sums(m, w->w_grad, m->k1, K, d))) return st;
        if ((st = mul_pair(ctx, m->k1, w->da, m->gi, -1, w->db, m->gr, m->t3, kd)) || (st = row_sums(m, w->w_grad + K, m->k1, K, d))) return st;
    }
    /* the fusion's spectrum F_v F_t: dF_v += dP conj(F_t), dF_t += dP conj(F_v) */
    modality *v = &m->mod[0], *t = &m->mod[1];
    for (int k = 0; k < N_MOD; k++) {
        modality *q = &m->mod[k];
        const modality *o = k ? v : t;
        if ((st = mul_pair(ctx, m->s2, m->dpre, o->re, 1, m->dpim, o->im, m->s1, ik)) || (st = mrec_add(ctx, q->dre, q->dre, m->s2, ik))) return st;
        if ((st = mul_pair(ctx, m->s2, m->dpim, o->re, -1, m->dpre, o->im, m->s1, ik)) || (st = mrec_add(ctx, q->dim, q->dim, m->s2, ik))) return st;
    }
    for (int k = 0; k < N_MOD; k++) {
        modality *q = &m->mod[k];
        /* F = f [Cr | Ci]: df = dRe F Cr^T + dIm F Ci^T; f = X T^T + t: dT = df^T X, dX = df T */
        if ((st = mrec_gemm(ctx, q->dfm, q->dre, m->cr, NULL, 1, 0, 0, 1, I, d, K, K, K, d))) return st;
        if ((st = mrec_gemm(ctx, q->dfm, q->dim, m->ci, NULL, 1, 1, 0, 1, I, d, K, K, K, d))) return st;
        if ((st = mrec_gemm(ctx, q->tw_grad, q->dfm, q->feat, NULL, 1, 0, 1, 0, d, q->f, I, d, q->f, q->f))) return st;
        if ((st = col_sums(m, q->tb_grad, q->dfm, I, d, 0))) return st;
        if ((st = mrec_gemm(ctx, q->feat_grad, q->dfm, q->tw, NULL, 1, 0, 0, 0, I, q->f, d, d, q->f, q->f))) return st;
    }
    /* C = LightGCN's mean over E: dE = its backward; the items' rows add the views' share */
    if ((st = mrec_csr_layer_mean_back(m->ego_grad, m->dcontent, &m->adj, 1, m->ui_layers, d, m->la, m->lb, ctx))) return st;
    return mrec_add(ctx, m->ego_grad + (size_t)U * d, m->ego_grad + (size_t)U * d, m->dei, id);
}

static void carve_batch(smore *m, mrec_arena *a) {
    size_t c = (size_t)m->cap, d = (size_t)m->dim;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
    m->v1 = F(2 * c * d), m->v2 = F(2 * c * d), m->d1 = F(2 * c * d), m->d2 = F(2 * c * d);
#undef F
}

/* Buffers for batches of up to n triples, grown when a batch is larger than any before. */
static mrec_status ensure_batch(smore *m, int n) {
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
static mrec_status info_nce(smore *m, double *loss_at, float *da, float *db, const float *a, const float *b, int n) {
    return mrec_info_nce_run(&m->nce, m->ctx, loss_at, da, db, a, b, n, m->dim, m->temp, m->cl, 0);
}

/* The batch's loss stays on the context's device (m->bpr.loss): BPR and its regularizer, then the contrast's two terms
 * added there. In the trainer's two halves (mrec_model.stage, .launch): the host's part (buffers grown, the step's
 * dropout keys drawn and the step counted, the batch's triples and contrast rows [users ; U + positives] checked, all
 * sent up), then the launches. */
static mrec_status smore_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    smore *m = self;
    const int32_t *parts[2] = {u, i};
    const int offset[2] = {0, m->n_users};
    uint64_t keys[N_VIEW];
    for (int g = 0; g < N_VIEW; g++) keys[g] = key_of(m, m->step, g);
    m->step++; /* each batch its own masks, whatever happens */
    mrec_status st = ensure_batch(m, n);
    if (!st) st = mrec_info_nce_reserve(&m->nce, m->ctx, n, m->dim, 0);
    if (!st) st = mrec_step_keys_send(&m->step_keys, m->ctx, keys, N_VIEW);
    if (!st) st = mrec_bpr_ops_stage(&m->bpr, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->dim);
    return st ? st : mrec_batch_rows_stage(&m->rows, m->ctx, m->n_nodes, 2, parts, offset, n);
}

static mrec_status smore_launch(void *self, const double **loss) {
    smore *m = self;
    int d = m->dim, N = m->n_nodes, n = m->bpr.n;
    mrec_context *ctx = m->ctx;
    *loss = NULL;
    mrec_status st = forward(m, m->step_keys.at);
    /* BPR on final's rows, and their squared norms over the configured batch size (the reference's self.batch_size) */
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

static const double *smore_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    smore *m = self;
    const double *loss = NULL;
    m->status = smore_stage(m, u, i, j, n);
    if (!m->status) m->status = smore_launch(m, &loss);
    return m->status ? NULL : loss;
}

static double smore_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    smore *m = self;
    return mrec_step_loss(m->ctx, &m->status, smore_step(self, u, i, j, n));
}

/* ranking: no dropout (the reference's eval mode) */
static mrec_status smore_prepare(void *self) { return forward(self, NULL); }

static mrec_status smore_score(void *self, int u0, int n, float *scores) {
    smore *m = self;
    return mrec_score_final(m->ctx, scores, m->final, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status smore_embeddings(void *self, float *users, float *items) {
    smore *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->final, m->n_users, m->n_items, m->dim);
}

static void smore_destroy(void *self) {
    smore *m = self;
    mrec_bpr_ops_free(&m->bpr);
    mrec_batch_rows_free(&m->rows);
    mrec_step_keys_free(&m->step_keys);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    mrec_info_nce_free(&m->nce);
    free(m);
}

/* Every array from a (a measuring arena counts them), the graphs' too: Â of adj_nnz entries, S_g of s_nnz[g]. */
static void carve(smore *m, mrec_arena *a, int64_t adj_nnz, const int64_t *s_nnz) {
    size_t N = (size_t)m->n_nodes, d = (size_t)m->dim, I = (size_t)m->n_items, K = (size_t)m->n_bins;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
    m->ego = F(N * d), m->ego_grad = F(N * d);
    m->cr = F(d * K), m->ci = F(d * K), m->gr = F(K * d), m->gi = F(K * d);
    m->pre = F(I * K), m->pim = F(I * K), m->dpre = F(I * K), m->dpim = F(I * K), m->s1 = F(I * K), m->s2 = F(I * K);
    m->content = F(N * d), m->side = F(N * d), m->final = F(N * d), m->z = F(N * d);
    m->dfinal = F(N * d), m->dside = F(N * d), m->dcontent = F(N * d);
    m->t1 = F(N * d), m->t2 = F(N * d), m->t3 = F(N * d), m->la = F(N * d), m->lb = F(N * d), m->dei = F(I * d), m->k1 = F(K * d);
    m->dot = F(N), m->ones = F(N > d ? N : d);
    for (int k = 0; k < N_MOD; k++) {
        modality *q = &m->mod[k];
        size_t f = (size_t)q->f;
        q->feat = F(I * f), q->feat_grad = F(I * f), q->tw = F(d * f), q->tw_grad = F(d * f), q->tb = F(d), q->tb_grad = F(d);
        q->fm = F(I * d), q->dfm = F(I * d), q->re = F(I * K), q->im = F(I * K), q->dre = F(I * K), q->dim = F(I * K);
        query *r = &m->qr[k];
        r->w1 = F(d * d), r->w1_grad = F(d * d), r->b1 = F(d), r->b1_grad = F(d), r->w2 = F(d * d), r->w2_grad = F(d * d);
        r->att = F(N * d), r->soft = F(N * d), r->agg = F(N * d);
    }
    for (int g = 0; g < N_VIEW; g++) {
        view *w = &m->vw[g];
        w->w = F(2 * K), w->w_grad = F(2 * K), w->a = F(K * d), w->b = F(K * d), w->da = F(K * d), w->db = F(K * d);
        w->conv = F(I * d), w->gw = F(d * d), w->gw_grad = F(d * d), w->gb = F(d), w->gb_grad = F(d), w->gt = F(I * d);
        w->pw = F(d * d), w->pw_grad = F(d * d), w->pb = F(d), w->pb_grad = F(d), w->pt = F(N * d), w->mask = F(N * d);
        w->pref = F(N * d), w->mv = F(N * d), w->dmv = F(N * d);
        w->s = mrec_graph_carve(a, (int)I, (int)I, s_nnz[g], m->ctx->device);
        w->s_t = mrec_graph_carve(a, (int)I, (int)I, s_nnz[g], m->ctx->device);
    }
#undef F
    m->adj = mrec_graph_carve(a, (int)N, (int)N, adj_nnz, m->ctx->device);
    m->diag_ptr = mrec_arena_alloc(a, sizeof(int64_t) * (K + 1)), m->diag_col = mrec_arena_alloc(a, sizeof(int32_t) * K);
    /* the views' spectra: the modalities' own, the fusion's product */
    for (int k = 0; k < N_MOD; k++)
        m->vw[k].re = m->mod[k].re, m->vw[k].im = m->mod[k].im, m->vw[k].dre = m->mod[k].dre, m->vw[k].dim = m->mod[k].dim;
    m->vw[2].re = m->pre, m->vw[2].im = m->pim, m->vw[2].dre = m->dpre, m->vw[2].dim = m->dpim;
}

mrec_status mrec_smore_fusion_graph(mrec_graph *out, const mrec_graph *image, const mrec_graph *text) {
    memset(out, 0, sizeof *out);
    int n = image->n_nodes;
    if (text->n_nodes != n) return mrec_fail(MREC_ERR_ARG, "smore fusion graph: %d and %d items", n, text->n_nodes);
    int64_t most = image->row_ptr[n] + text->row_ptr[n];
    out->n_nodes = n;
    out->row_ptr = malloc(sizeof *out->row_ptr * ((size_t)n + 1));
    out->col = malloc(sizeof *out->col * (size_t)(most ? most : 1)), out->val = malloc(sizeof *out->val * (size_t)(most ? most : 1));
    int32_t *seen = malloc(sizeof *seen * (size_t)n); /* a column's place in the row being built, or -1 */
    if (!out->row_ptr || !out->col || !out->val || !seen) {
        free(seen), mrec_graph_free(out);
        return mrec_fail(MREC_ERR_NOMEM, "smore fusion graph: %d items, %lld entries", n, (long long)most);
    }
    for (int c = 0; c < n; c++) seen[c] = -1;
    for (int s = 0; s < 2; s++) {
        const mrec_graph *g = s ? text : image;
        for (int r = 0; r < n; r++)
            for (int64_t e = g->row_ptr[r]; e < g->row_ptr[r + 1]; e++)
                if (g->col[e] < 0 || g->col[e] >= n) {
                    free(seen), mrec_graph_free(out);
                    return mrec_fail(MREC_ERR_ARG, "smore fusion graph: the %s graph's row %d has column %d of %d items", s ? "text" : "image", r,
                                     g->col[e], n);
                }
    }
    int64_t at = 0;
    out->row_ptr[0] = 0;
    const mrec_graph *g2[2] = {image, text};
    for (int r = 0; r < n; r++) {
        int64_t start = at;
        for (int s = 0; s < 2; s++)
            for (int64_t e = g2[s]->row_ptr[r]; e < g2[s]->row_ptr[r + 1]; e++) {
                int32_t c = g2[s]->col[e];
                if (seen[c] >= 0) {
                    float *v = &out->val[start + seen[c]];
                    if (g2[s]->val[e] > *v) *v = g2[s]->val[e];
                } else {
                    seen[c] = (int32_t)(at - start), out->col[at] = c, out->val[at++] = g2[s]->val[e];
                }
            }
        /* columns in increasing order (torch's coalesce): an insertion sort of the row's few entries */
        for (int64_t e = start + 1; e < at; e++) {
            int32_t c = out->col[e];
            float v = out->val[e];
            int64_t q = e;
            for (; q > start && out->col[q - 1] > c; q--) out->col[q] = out->col[q - 1], out->val[q] = out->val[q - 1];
            out->col[q] = c, out->val[q] = v;
        }
        for (int64_t e = start; e < at; e++) seen[out->col[e]] = -1;
        out->row_ptr[r + 1] = at;
    }
    free(seen);
    return MREC_OK;
}

static void uniform(float *w, size_t count, double bound, mrec_rng *rng) {
    for (size_t e = 0; e < count; e++) w[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
}

static mrec_status upload_graph(mrec_context *ctx, const mrec_csr *dst, const mrec_graph *g) {
    mrec_csr src = mrec_graph_csr(g);
    src.n_rows = dst->n_rows, src.n_cols = dst->n_cols;
    return mrec_graph_upload(ctx, dst, &src);
}

/* The DFT matrices of d columns and K bins (see the header): cr, ci (d, K), gr, gi (K, d) in h (4 K d). */
static void dft_matrices(float *h, int d, int K) {
    float *cr = h, *ci = cr + (size_t)d * K, *gr = ci + (size_t)d * K, *gi = gr + (size_t)K * d;
    double scale = 1.0 / sqrt((double)d);
    for (int j = 0; j < d; j++)
        for (int k = 0; k < K; k++) {
            long r = ((long)j * k) % d; /* the angle reduced first: exact zeros and signs where they belong */
            double a = 6.283185307179586 * (double)r / d, c = cos(a) * scale, s = -sin(a) * scale;
            int edge = k == 0 || 2 * k == d;
            if (edge) s = 0; /* the zero and d / 2 bins of a real signal have no imaginary part */
            cr[(size_t)j * K + k] = (float)c, ci[(size_t)j * K + k] = (float)s;
            gr[(size_t)k * d + j] = (float)(edge ? c : 2 * c), gi[(size_t)k * d + j] = (float)(edge ? s : 2 * s);
        }
}

/* Initial values drawn on the host in a fixed order (the same on every device): E (xavier), per modality T, t,
 * the three complex weights (N(0, 1), real and imaginary part of each bin in turn), per view G, g, P, p, per
 * modality's query Q, q, W; the features, graphs and constants with them. */
static mrec_status upload(smore *m, const mrec_graph *adj, const mrec_graph *item_graph, const float *const *feat, mrec_rng *rng) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, K = m->n_bins;
    mrec_context *ctx = m->ctx;
    size_t most = (size_t)N * d + 1;
    for (int k = 0; k < N_MOD; k++)
        if ((size_t)d * m->mod[k].f > most) most = (size_t)d * m->mod[k].f;
    if ((size_t)4 * K * d > most) most = (size_t)4 * K * d;
    if ((size_t)2 * (K + 1) > most) most = (size_t)2 * (K + 1);
    float *h = malloc(sizeof(float) * most);
    if (!h) return mrec_fail(MREC_ERR_NOMEM, "smore: %zu initial values", most);
    mrec_status st = MREC_OK;
    uniform(h, (size_t)U * d, sqrt(6.0 / (U + d)), rng), uniform(h + (size_t)U * d, (size_t)I * d, sqrt(6.0 / (I + d)), rng);
    st = mrec_copy_to_device(ctx, m->ego, h, sizeof(float) * (size_t)N * d);
    double bd = 1.0 / sqrt((double)d);
    for (int k = 0; k < N_MOD && !st; k++) {
        modality *q = &m->mod[k];
        uniform(h, (size_t)d * q->f, 1.0 / sqrt((double)q->f), rng);
        st = mrec_copy_to_device(ctx, q->tw, h, sizeof(float) * (size_t)d * q->f);
        uniform(h, (size_t)d, 1.0 / sqrt((double)q->f), rng);
        if (!st) st = mrec_copy_to_device(ctx, q->tb, h, sizeof(float) * (size_t)d);
        if (!st) st = mrec_copy_to_device(ctx, q->feat, feat[k], sizeof(float) * (size_t)I * q->f);
    }
    for (int g = 0; g < N_VIEW && !st; g++) {
        for (int k = 0; k < K; k++) h[k] = (float)mrec_rng_normal(rng), h[K + k] = (float)mrec_rng_normal(rng);
        st = mrec_copy_to_device(ctx, m->vw[g].w, h, sizeof(float) * 2 * (size_t)K);
    }
    for (int g = 0; g < N_VIEW && !st; g++) {
        view *w = &m->vw[g];
        float *dst[4] = {w->gw, w->gb, w->pw, w->pb};
        size_t cnt[4] = {(size_t)d * d, (size_t)d, (size_t)d * d, (size_t)d};
        for (int t = 0; t < 4 && !st; t++) {
            uniform(h, cnt[t], bd, rng);
            st = mrec_copy_to_device(ctx, dst[t], h, sizeof(float) * cnt[t]);
        }
        if (!st) st = upload_graph(ctx, &w->s, &item_graph[g]);
        mrec_graph t = {0};
        if (!st) st = mrec_graph_transpose(&t, &item_graph[g]);
        if (!st) st = upload_graph(ctx, &w->s_t, &t);
        mrec_graph_free(&t);
        w->s.transposed = &w->s_t;
    }
    for (int k = 0; k < N_MOD && !st; k++) {
        query *q = &m->qr[k];
        float *dst[3] = {q->w1, q->b1, q->w2};
        size_t cnt[3] = {(size_t)d * d, (size_t)d, (size_t)d * d};
        for (int t = 0; t < 3 && !st; t++) {
            uniform(h, cnt[t], bd, rng);
            st = mrec_copy_to_device(ctx, dst[t], h, sizeof(float) * cnt[t]);
        }
    }
    if (!st) st = upload_graph(ctx, &m->adj, adj);
    m->adj.transposed = &m->adj; /* symmetric */
    dft_matrices(h, d, K);
    if (!st) st = mrec_copy_to_device(ctx, m->cr, h, sizeof(float) * (size_t)d * K);
    if (!st) st = mrec_copy_to_device(ctx, m->ci, h + (size_t)d * K, sizeof(float) * (size_t)d * K);
    if (!st) st = mrec_copy_to_device(ctx, m->gr, h + (size_t)2 * d * K, sizeof(float) * (size_t)d * K);
    if (!st) st = mrec_copy_to_device(ctx, m->gi, h + (size_t)3 * d * K, sizeof(float) * (size_t)d * K);
    /* z's user rows stay 0; the ones; the diagonal's pattern */
    memset(h, 0, sizeof(float) * (size_t)U * d);
    if (!st) st = mrec_copy_to_device(ctx, m->z, h, sizeof(float) * (size_t)U * d);
    size_t n_ones = (size_t)(N > d ? N : d);
    for (size_t e = 0; e < n_ones; e++) h[e] = 1.0f;
    if (!st) st = mrec_copy_to_device(ctx, m->ones, h, sizeof(float) * n_ones);
    int64_t *ptr = (int64_t *)h;
    for (int r = 0; r <= K; r++) ptr[r] = r;
    if (!st) st = mrec_copy_to_device(ctx, m->diag_ptr, ptr, sizeof(int64_t) * ((size_t)K + 1));
    int32_t *col = (int32_t *)h;
    for (int r = 0; r < K; r++) col[r] = r;
    if (!st) st = mrec_copy_to_device(ctx, m->diag_col, col, sizeof(int32_t) * (size_t)K);
    for (int g = 0; g < N_VIEW; g++) {
        view *w = &m->vw[g];
        w->w_re = (mrec_csr){.n_rows = K, .n_cols = K, .row_ptr = m->diag_ptr, .col = m->diag_col, .val = w->w, .device = ctx->device};
        w->w_im = w->w_re, w->w_im.val = w->w + K;
        w->w_re.transposed = &w->w_re, w->w_im.transposed = &w->w_im;
    }
    free(h);
    return st;
}

mrec_status mrec_smore_create(mrec_model *out, const mrec_graph *adj, const mrec_graph *item_graph, int n_users, int n_items,
                              const float *const *feat, const int *feat_dim, int dim, int ui_layers, int item_layers, float reg, float cl,
                              float temp, float dropout, int batch_size, mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    if (adj->n_nodes != n_users + n_items || dim < 1 || ui_layers < 0 || ui_layers > 16 || item_layers < 0 || item_layers > 16 ||
        batch_size < 1 || !(temp > 0) || !(dropout >= 0 && dropout < 1))
        return mrec_fail(MREC_ERR_ARG,
                         "smore: graph of %d nodes for %d users + %d items, %d and %d layers (0 to 16), batch size %d, temperature %g, "
                         "dropout %g (in [0, 1))",
                         adj->n_nodes, n_users, n_items, ui_layers, item_layers, batch_size, temp, dropout);
    for (int g = 0; g < N_VIEW; g++)
        if ((g < N_MOD && feat_dim[g] < 1) || item_graph[g].n_nodes != n_items)
            return mrec_fail(MREC_ERR_ARG, "smore: %s view has %d features and an item graph of %d nodes for %d items",
                             g == 0 ? "the image" : g == 1 ? "the text" : "the fusion", g < N_MOD ? feat_dim[g] : 0, item_graph[g].n_nodes,
                             n_items);
    smore *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "smore");
    m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items, m->dim = dim, m->n_bins = dim / 2 + 1;
    m->ui_layers = ui_layers, m->item_layers = item_layers, m->batch_size = batch_size, m->reg = reg, m->cl = cl, m->temp = temp;
    m->dropout = dropout, m->ctx = ctx;
    m->seed = mrec_rng_next(rng); /* the first draw: the dropout's key */
    int64_t s_nnz[N_VIEW];
    for (int k = 0; k < N_MOD; k++) m->mod[k].f = feat_dim[k];
    for (int g = 0; g < N_VIEW; g++) s_nnz[g] = item_graph[g].row_ptr[n_items];
    int64_t adj_nnz = adj->row_ptr[adj->n_nodes];
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, adj_nnz, s_nnz);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        free(m);
        return st;
    }
    carve(m, &m->mem, adj_nnz, s_nnz);
    if ((st = upload(m, adj, item_graph, feat, rng)) || (st = forward(m, NULL))) {
        smore_destroy(m);
        return st;
    }
    int p = 0;
#define PARAM(w, g, count) out->param[p] = (w), out->grad[p] = (g), out->size[p++] = (int64_t)(count)
    PARAM(m->ego, m->ego_grad, (size_t)m->n_nodes * dim);
    for (int k = 0; k < N_MOD; k++) {
        modality *q = &m->mod[k];
        PARAM(q->feat, q->feat_grad, (size_t)n_items * q->f);
        PARAM(q->tw, q->tw_grad, (size_t)dim * q->f), PARAM(q->tb, q->tb_grad, dim);
    }
    for (int g = 0; g < N_VIEW; g++) {
        view *w = &m->vw[g];
        PARAM(w->w, w->w_grad, 2 * m->n_bins);
        PARAM(w->gw, w->gw_grad, (size_t)dim * dim), PARAM(w->gb, w->gb_grad, dim);
        PARAM(w->pw, w->pw_grad, (size_t)dim * dim), PARAM(w->pb, w->pb_grad, dim);
    }
    for (int k = 0; k < N_MOD; k++) {
        query *q = &m->qr[k];
        PARAM(q->w1, q->w1_grad, (size_t)dim * dim), PARAM(q->b1, q->b1_grad, dim), PARAM(q->w2, q->w2_grad, (size_t)dim * dim);
    }
#undef PARAM
    out->n_params = p;
    out->name = "SMORE", out->self = m;
    out->state[0] = &m->step, out->n_state = 1; /* for a checkpoint */
    out->status = &m->status;
    out->loss_grad = smore_loss_grad, out->step = smore_step, out->prepare = smore_prepare, out->score = smore_score;
    out->stage = smore_stage, out->launch = smore_launch;
    out->embed_dim = dim, out->embeddings = smore_embeddings;
    out->destroy = smore_destroy;
    return MREC_OK;
}
