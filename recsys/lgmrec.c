/* lgmrec.c: LGMRec (Guo et al., AAAI 2024) as MMRec defines it
 * (src/models/lgmrec.py, after the authors' code).
 *
 * Nodes are users then items (N = U + I), Â the normalized user-item graph
 * (mrec_graph_normalized), R (U, I) the interaction matrix (ones), D_u the
 * users' degrees. Two modalities m (visual, textual) with fixed features
 * F_m (I, f_m), their transforms W_m (f_m, d) and hyperedge weights
 * H_m (f_m, K), K hyperedges:
 *
 *   local:   C   = mean(E, Â E, .., Â^Lui E),  E = [E_u ; E_i]     (LightGCN)
 *            X_m = Â^Lmm [D_u^-1 R F_m W_m ; F_m W_m]              (users: the mean of their items)
 *   hyper:   A_m = gumbel_softmax(F_m H_m),  B_m = gumbel_softmax(R F_m H_m)   ((I, K), (U, K), tau)
 *            per hypergraph layer: l = A_m^T y,  y = A_m l  (y_0 = C's items);  Z_m = [B_m l ; y]
 *            (A_m, B_m through dropout 1 - keep_rate while training)
 *   fusion:  F = C + n(X_v) + n(X_t) + alpha n(Z_v + Z_t)          n: unit rows (F.normalize)
 *   loss:    mean softplus(s(u, j) - s(u, i))
 *          + cl (ssl(Z_v[users], Z_t) + ssl(Z_v[pos items], Z_t))
 *          + reg (|F_U| + |F_I+| + |F_I-|) / n                    |.|: the batch rows' Frobenius norm
 * with ssl(a, b) = sum_r -log softmax_c(<n(a_r), n(b_c)> / tau)[row's id] over
 * every user (or item) c: InfoNCE between the two modalities' hypergraph
 * views. tau = 0.2 for the Gumbel softmax and the contrast alike, as the
 * reference fixes it. The Gumbel softmax is softmax((x + g) / tau) with
 * g = -log(-log(u)), u uniform in (0, 1).
 *
 * Where it differs from the reference: the Gumbel noise and the dropout are
 * drawn from mrec's counter-based hash stream (mrec_mix64), keyed by the
 * seed and the step, so a run is the same for a seed on any device; ranking
 * uses one fixed draw of the noise (the reference draws afresh at each
 * evaluation). The reference needs a visual and a textual modality; so does
 * mrec (the registry passes those two by name, others are not read). E, W_m
 * and H_m start xavier-uniform, in that order, visual before textual.
 *
 * Backward, by hand: F's gradient from the batch (bpr_ops.c's scatter),
 * then each branch: the unit rows back, Â^Lmm back (Â is symmetric), the
 * users' mean back to the items (R^T), the transforms; n(Z_v + Z_t) and the
 * contrast to Z_m, the hypergraph layers back to C's items and to A_m, B_m,
 * the dropout (the same mask), the softmax, R^T and the features to H_m;
 * last the layer mean back to E.
 *
 * One path, through the op entries only: every array lives on the context's
 * device (the noise too, (U + I) K numbers per modality and step, drawn
 * there by mrec_gumbel_noise), so the same code trains on the CPU and a GPU.
 * Dense (I, K) and (U, K) dependency matrices; the contrast's scores are
 * (batch, U) and (batch, I), never larger.
 */
#include "mrec_recsys.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_MOD 2
#define MAX_HYPER_LAYERS 8
#define NORM_EPS 1e-12f /* F.normalize's floor */
#define TAU 0.2f        /* the reference's self.tau */

typedef struct {
    int f;                          /* feature size */
    float *feat;                    /* (I, f) fixed */
    float *w, *w_grad;              /* (f, d) the transform */
    float *h, *h_grad;              /* (f, K) the hyperedges */
    float *noise;                   /* (I + U, K) Gumbel noise: items, then users */
    float *logit;                   /* (I + U, K) F H, then R F H; after the noise, their Gumbel-softmax input */
    float *dep;                     /* (I + U, K) A, then B: the softmaxes */
    float *drop;                    /* (I + U, K) A, B through dropout */
    float *xi;                      /* (I, d) F W */
    float *hw, *fhw;                /* (f, K + d) [H | W] side by side; (I, K + d) F [H | W]: F read once for both */
    float *x0;                      /* (N, d) [D^-1 R F W ; F W] */
    float *x;                       /* (N, d) Â^Lmm x0 */
    float *y;                       /* (N, d) n(x) */
    float *lat[MAX_HYPER_LAYERS];   /* (K, d) each hypergraph layer's hyperedge embeddings */
    float *iret[MAX_HYPER_LAYERS];  /* (I, d) each layer's item output */
    float *z;                       /* (N, d) [B l ; y_L] */
} modality;

typedef struct {
    int n_users, n_items, n_nodes, dim, ui_layers, mm_layers, hyper_layers, k;
    float keep, alpha, cl, reg;
    uint64_t seed, step;
    int fixed_noise;
    mrec_context *ctx;
    mrec_arena mem;                 /* everything below that points to memory, on the context's device */
    mrec_csr adj, r, r_t, rm, rm_t; /* Â; R and R^T; D^-1 R and its transpose */
    float *ego, *ego_grad;          /* (N, d) [E_u ; E_i] */
    modality mod[N_MOD];
    float *cge, *ghe, *nghe, *all;  /* (N, d) C, Z_v + Z_t, n(ghe), F */
    float *dall, *dcge, *dghe, *dz, *dz2, *q, *t1, *t2; /* (N, d) gradients and scratch */
    float *dlat;                    /* (K, d) */
    float *ddep, *dlogit;           /* (I + U, K) */
    float *rows;                    /* (I + U) row sums */
    float *ones;                    /* (max(N, K)) */
    /* the batch's contrast, grown with the batch */
    int cap;
    mrec_arena batch;
    float *s, *p, *g, *dp, *dg;     /* (cap, max(U, I)), (cap, d) x 4 */
    double *closs;                  /* (cap) the contrast's per-row losses */
    mrec_batch_rows users, items;
    mrec_bpr_ops bpr;
    mrec_step_keys step_keys;       /* a training step's keys, key_of(step, 0..3), in the context's memory */
    mrec_status status;
} lgmrec;

/* Keys of the step's draws: what 0..1 the modalities' noise, 2..3 their dropout; step ~0 is ranking's. */
static uint64_t key_of(const lgmrec *m, uint64_t step, int what) { return mrec_mix64(m->seed ^ mrec_mix64(step * 8 + (uint64_t)what)); }

/* keys: a training step's keys in the context's memory (the stage drew them), or NULL for step's, as values */
static mrec_status draw_noise(lgmrec *m, uint64_t step, const uint64_t *keys) {
    if (m->fixed_noise) return MREC_OK;
    /* drawn where the model lives: on the host, with two logs a value, it took about half of a GPU step on Baby */
    int64_t n = (int64_t)(m->n_items + m->n_users) * m->k;
    mrec_status st = MREC_OK;
    for (int c = 0; c < N_MOD && !st; c++)
        st = keys ? mrec_gumbel_noise_at(m->ctx, m->mod[c].noise, keys + c, n) : mrec_gumbel_noise(m->ctx, m->mod[c].noise, key_of(m, step, c), n);
    return st;
}

/* out (R, K) = softmax((logit + noise) / tau) by rows; logit (R, K) is left holding the softmax's input */
static mrec_status gumbel_softmax(lgmrec *m, float *out, float *logit, const float *noise, int R) {
    int64_t n = (int64_t)R * m->k;
    mrec_status st = mrec_add(m->ctx, logit, logit, noise, n);
    if (!st) st = mrec_scale(m->ctx, logit, logit, 1.0f / TAU, n);
    return st ? st : mrec_softmax_rows(m->ctx, out, logit, NULL, R, m->k, 1);
}

/* F (m->all) and everything the backward reads: a training step's with its keys in the context's memory (keys; with
 * dropout), or ranking's with step's keys as values (keys NULL; no dropout) */
static mrec_status forward(lgmrec *m, uint64_t step, const uint64_t *keys) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, K = m->k;
    int64_t nd = (int64_t)N * d, nk = (int64_t)(I + U) * K;
    mrec_context *ctx = m->ctx;
    mrec_status st = draw_noise(m, step, keys);
    /* C: the collaborative layer mean */
    if (!st) st = mrec_csr_layer_mean(m->cge, m->ego, &m->adj, m->ui_layers, d, m->t1, m->t2, ctx);
    if (st) return st;
    for (int c = 0; c < N_MOD; c++) {
        modality *q = &m->mod[c];
        float *ilog = q->logit, *ulog = q->logit + (size_t)I * K;
        /* F H and F W as one product: F (I x f, 4,096 wide for images) is read once, not twice */
        int kd = K + d;
        if ((st = mrec_copy_rows(ctx, q->hw, kd, q->h, K, q->f, K)) || (st = mrec_copy_rows(ctx, q->hw + K, kd, q->w, d, q->f, d)))
            return st;
        if ((st = mrec_gemm(ctx, q->fhw, q->feat, q->hw, NULL, 1, 0, 0, 0, I, kd, q->f, q->f, kd, kd))) return st;
        if ((st = mrec_copy_rows(ctx, ilog, K, q->fhw, kd, I, K)) || (st = mrec_copy_rows(ctx, q->xi, d, q->fhw + K, kd, I, d)))
            return st;
        /* the dependencies: A = gs(F H), B = gs(R F H), then dropout */
        if ((st = mrec_spmm(ctx, ulog, &m->r, ilog, K, 0))) return st;
        if ((st = gumbel_softmax(m, q->dep, q->logit, q->noise, I + U))) return st;
        if ((st = keys ? mrec_hash_dropout_at(ctx, q->drop, q->dep, NULL, nk, 1.0f - m->keep, keys + 2 + c)
                       : mrec_hash_dropout(ctx, q->drop, q->dep, NULL, nk, 0.0f, key_of(m, step, 2 + c))))
            return st;
        /* the local modality embeddings: items F W, users their items' mean, Lmm propagations */
        if ((st = mrec_spmm(ctx, q->x0, &m->rm, q->xi, d, 0))) return st;
        if ((st = mrec_copy_rows(ctx, q->x0 + (size_t)U * d, d, q->xi, d, I, d))) return st;
        const float *prev = q->x0;
        for (int l = 0; l < m->mm_layers; l++) {
            float *next = l == m->mm_layers - 1 ? q->x : (l % 2 ? m->t2 : m->t1);
            if ((st = mrec_spmm(ctx, next, &m->adj, prev, d, 0))) return st;
            prev = next;
        }
        if (!m->mm_layers && (st = mrec_copy_rows(ctx, q->x, d, q->x0, d, N, d))) return st;
        if ((st = mrec_l2_normalize_rows(ctx, q->y, q->x, NORM_EPS, N, d))) return st;
        /* the hypergraph: l = A^T y, y = A l from C's items; users B l */
        const float *a = q->drop, *b = q->drop + (size_t)I * K, *in = m->cge + (size_t)U * d;
        for (int l = 0; l < m->hyper_layers; l++) {
            float *out = l == m->hyper_layers - 1 ? q->z + (size_t)U * d : q->iret[l + 1];
            if ((st = mrec_gemm(ctx, q->lat[l], a, in, NULL, 1, 0, 1, 0, K, d, I, K, d, d))) return st;
            if ((st = mrec_gemm(ctx, out, a, q->lat[l], NULL, 1, 0, 0, 0, I, d, K, K, d, d))) return st;
            in = out;
        }
        if ((st = mrec_gemm(ctx, q->z, b, q->lat[m->hyper_layers - 1], NULL, 1, 0, 0, 0, U, d, K, K, d, d))) return st;
    }
    /* F = C + n(X_v) + n(X_t) + alpha n(Z_v + Z_t) */
    if ((st = mrec_add(ctx, m->ghe, m->mod[0].z, m->mod[1].z, nd))) return st;
    if ((st = mrec_l2_normalize_rows(ctx, m->nghe, m->ghe, NORM_EPS, N, d))) return st;
    if ((st = mrec_scale(ctx, m->all, m->nghe, m->alpha, nd))) return st;
    if ((st = mrec_add(ctx, m->all, m->all, m->cge, nd))) return st;
    for (int c = 0; c < N_MOD; c++)
        if ((st = mrec_add(ctx, m->all, m->all, m->mod[c].y, nd))) return st;
    return MREC_OK;
}

/* The contrast's arrays for a batch of c from a (a measuring arena counts them). */
static void carve_batch(lgmrec *m, mrec_arena *a, size_t c) {
    size_t wide = (size_t)(m->n_users > m->n_items ? m->n_users : m->n_items), d = (size_t)m->dim;
    m->s = mrec_arena_alloc(a, sizeof(float) * c * wide);
    m->p = mrec_arena_alloc(a, sizeof(float) * c * d), m->g = mrec_arena_alloc(a, sizeof(float) * c * d);
    m->dp = mrec_arena_alloc(a, sizeof(float) * c * d), m->dg = mrec_arena_alloc(a, sizeof(float) * c * d);
    m->closs = mrec_arena_alloc(a, sizeof(double) * c);
}

/* Room for the contrast of a batch of n (grown, never shrunk). */
static mrec_status batch_room(lgmrec *m, int n) {
    if (n <= m->cap) return MREC_OK;
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    memset(&m->batch, 0, sizeof m->batch);
    m->cap = 0;
    mrec_arena measure = mrec_arena_measure();
    carve_batch(m, &measure, (size_t)n);
    mrec_status st = mrec_arena_reserve(&m->batch, measure.peak, m->ctx->device, m->ctx->cuda);
    if (st) return st;
    carve_batch(m, &m->batch, (size_t)n);
    m->cap = n;
    return MREC_OK;
}

/* One side of the contrast: rows ids (r->ids, n of them) of the first view's table zv (R, d) against every row of the
 * second's, its unit rows q (R, d). cl times the loss's sum added to *loss (in the context's memory); dzv (R, d)
 * every row written (the scatter), dq (R, d) overwritten: d loss / d q, cl times. */
static mrec_status contrast(lgmrec *m, double *loss, float *dzv, float *dq, const float *zv, const float *q, const mrec_batch_rows *r,
                            int n, int R) {
    int d = m->dim;
    mrec_context *ctx = m->ctx;
    mrec_status st;
    if ((st = mrec_embedding_checked(ctx, m->g, zv, r->ids, n, R, d))) return st;
    if ((st = mrec_l2_normalize_rows(ctx, m->p, m->g, NORM_EPS, n, d))) return st;
    /* s = p q^T / tau; g = cl (softmax(s) - onehot(id)) */
    if ((st = mrec_gemm(ctx, m->s, m->p, q, NULL, 1.0f / TAU, 0, 0, 1, n, R, d, d, d, R))) return st;
    if ((st = mrec_softmax_xent_rows(ctx, m->s, m->closs, m->s, r->ids, m->cl, n, R))) return st;
    if ((st = mrec_loss_term(ctx, loss, m->closs, n, m->cl, 1.0))) return st;
    /* dp = g q / tau, dq = g^T p / tau; p = n(zv rows) */
    if ((st = mrec_gemm(ctx, m->dp, m->s, q, NULL, 1.0f / TAU, 0, 0, 0, n, d, R, R, d, d))) return st;
    if ((st = mrec_gemm(ctx, dq, m->s, m->p, NULL, 1.0f / TAU, 0, 1, 0, R, d, n, R, d, d))) return st;
    if ((st = mrec_l2_normalize_rows_back(ctx, m->dg, m->dp, m->p, m->g, NORM_EPS, 0, n, d))) return st;
    return mrec_batch_rows_scatter(r, dzv, m->dg, d);
}

/* One modality's hypergraph back from dz (N, d): C's items' share into m->dcge, then H's gradient. */
static mrec_status hyper_back(lgmrec *m, modality *q, const float *dz, const uint64_t *keys) {
    int d = m->dim, U = m->n_users, I = m->n_items, K = m->k, L = m->hyper_layers;
    int64_t nk = (int64_t)(I + U) * K;
    mrec_context *ctx = m->ctx;
    mrec_status st;
    const float *a = q->drop, *b = q->drop + (size_t)I * K;
    float *da = m->ddep, *db = m->ddep + (size_t)I * K;
    /* users: z_u = B l_{L-1}: dB = dz_u l^T, dl = B^T dz_u */
    if ((st = mrec_gemm(ctx, db, dz, q->lat[L - 1], NULL, 1, 0, 0, 1, U, K, d, d, d, K))) return st;
    if ((st = mrec_gemm(ctx, m->dlat, b, dz, NULL, 1, 0, 1, 0, K, d, U, K, d, d))) return st;
    /* items, layer by layer: y_{l+1} = A l_l, l_l = A^T y_l */
    const float *dy = dz + (size_t)U * d;
    float *dnext = m->t1, *dother = m->t2;
    for (int l = L - 1; l >= 0; l--) {
        const float *in = l ? q->iret[l] : m->cge + (size_t)U * d;
        if ((st = mrec_gemm(ctx, m->dlat, a, dy, NULL, 1, l == L - 1, 1, 0, K, d, I, K, d, d))) return st;
        if ((st = mrec_gemm(ctx, da, dy, q->lat[l], NULL, 1, l != L - 1, 0, 1, I, K, d, d, d, K))) return st;
        if ((st = mrec_gemm(ctx, da, in, m->dlat, NULL, 1, 1, 0, 1, I, K, d, d, d, K))) return st;
        if ((st = mrec_gemm(ctx, dnext, a, m->dlat, NULL, 1, 0, 0, 0, I, d, K, K, d, d))) return st;
        dy = dnext;
        float *swap = dnext;
        dnext = dother, dother = swap;
    }
    if ((st = mrec_add(ctx, m->dcge + (size_t)U * d, m->dcge + (size_t)U * d, dy, (int64_t)I * d))) return st;
    /* the dropout's mask (the same key), then the softmax: dx = y (dy - <y, dy>) / tau */
    if ((st = mrec_hash_dropout_at(ctx, m->ddep, m->ddep, NULL, nk, 1.0f - m->keep, keys + 2 + (int)(q - m->mod)))) return st;
    if ((st = mrec_mul(ctx, m->dlogit, q->dep, m->ddep, nk))) return st;
    if ((st = mrec_gemm(ctx, m->rows, m->dlogit, m->ones, NULL, 1, 0, 0, 0, I + U, 1, K, K, 1, 1))) return st;
    if ((st = mrec_gemm(ctx, m->ddep, m->rows, m->ones, NULL, -1, 1, 0, 0, I + U, K, 1, 1, K, K))) return st;
    if ((st = mrec_mul(ctx, m->dlogit, q->dep, m->ddep, nk))) return st;
    if ((st = mrec_scale(ctx, m->dlogit, m->dlogit, 1.0f / TAU, nk))) return st;
    /* B's logits are R (F H): back to the items', then dH = F^T dlogit_i */
    if ((st = mrec_spmm(ctx, m->ddep, &m->r, m->dlogit + (size_t)I * K, K, 1))) return st;
    if ((st = mrec_add(ctx, m->dlogit, m->dlogit, m->ddep, (int64_t)I * K))) return st;
    return mrec_gemm(ctx, q->h_grad, q->feat, m->dlogit, NULL, 1, 0, 1, 0, q->f, K, I, q->f, K, K);
}

/* One modality's local branch back from dF: dX = n'(dF), Â^Lmm back, the users' mean back, dW = F^T dX_i. */
static mrec_status local_back(lgmrec *m, modality *q) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes;
    mrec_context *ctx = m->ctx;
    mrec_status st = mrec_l2_normalize_rows_back(ctx, m->dz, m->dall, q->y, q->x, NORM_EPS, 0, N, d);
    if (st) return st;
    float *cur = m->dz, *other = m->dz2;
    for (int l = 0; l < m->mm_layers; l++) { /* Â is symmetric: Â^T = Â */
        if ((st = mrec_spmm(ctx, other, &m->adj, cur, d, 0))) return st;
        float *swap = cur;
        cur = other, other = swap;
    }
    /* x0 = [D^-1 R xi ; xi] */
    if ((st = mrec_spmm(ctx, m->t1, &m->rm, cur, d, 1))) return st;
    if ((st = mrec_add(ctx, m->t1, m->t1, cur + (size_t)U * d, (int64_t)I * d))) return st;
    return mrec_gemm(ctx, q->w_grad, q->feat, m->t1, NULL, 1, 0, 1, 0, q->f, d, I, q->f, d, d);
}

/* The batch's step, its loss left in m->bpr.loss on the context's device, in the trainer's two halves
 * (mrec_model.stage, .launch): the host's part (the step counted, its noise and dropout keys drawn, the batch's
 * triples and the contrast's users and positives checked, all sent up), then the launches. */
static mrec_status lgmrec_stage(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lgmrec *m = self;
    const int32_t *ui[2] = {u, i};
    const int zero = 0;
    uint64_t step = m->step++, keys[4];
    for (int w = 0; w < 4; w++) keys[w] = key_of(m, step, w);
    mrec_status st = mrec_step_keys_send(&m->step_keys, m->ctx, keys, 4);
    if (!st) st = mrec_bpr_ops_stage(&m->bpr, m->ctx, u, i, j, n, m->n_users, m->n_nodes, m->dim);
    if (!st) st = batch_room(m, n);
    if (!st) st = mrec_batch_rows_stage(&m->users, m->ctx, m->n_users, 1, ui, &zero, n);
    return st ? st : mrec_batch_rows_stage(&m->items, m->ctx, m->n_items, 1, ui + 1, &zero, n);
}

static mrec_status batch_launch(lgmrec *m) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, n = m->bpr.n;
    int64_t nd = (int64_t)N * d;
    mrec_context *ctx = m->ctx;
    const uint64_t *keys = m->step_keys.at;
    mrec_status st = forward(m, 0, keys);
    /* the softplus BPR loss and reg (|U_b| + |I_b| + |J_b|) / n; d |X| / dX = X / |X| (0 where X is 0, the
     * subgradient torch takes) */
    mrec_bpr_spec spec = {.form = MREC_BPR_SOFTPLUS, .weight = 1, .reg_form = MREC_BPR_REG_NORMS, .reg = m->reg};
    if (!st) st = mrec_bpr_ops_gather(&m->bpr, m->all, m->all);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->dall, m->all, 1, MREC_BPR_PARTS_ALL);
    if (st) return st;
    /* the contrast: users, then positive items, of Z_v against Z_t's unit rows */
    if ((st = mrec_batch_rows_index(&m->users))) return st;
    if ((st = mrec_batch_rows_index(&m->items))) return st;
    modality *v = &m->mod[0], *t = &m->mod[1];
    double *loss = m->bpr.loss;
    if ((st = mrec_l2_normalize_rows(ctx, m->q, t->z, NORM_EPS, N, d))) return st;
    if ((st = contrast(m, loss, m->dz2, m->t2, v->z, m->q, &m->users, n, U))) return st;
    if ((st = contrast(m, loss, m->dz2 + (size_t)U * d, m->t2 + (size_t)U * d, v->z + (size_t)U * d, m->q + (size_t)U * d, &m->items, n, I)))
        return st;
    /* dZ_t (cl) = n'(dq) into dghe's room for now */
    if ((st = mrec_l2_normalize_rows_back(ctx, m->t1, m->t2, m->q, t->z, NORM_EPS, 0, N, d))) return st;
    /* dC = dF; dghe = alpha n'(dF); dZ_v = dghe + its contrast, dZ_t = dghe + its */
    if ((st = mrec_copy_rows(ctx, m->dcge, d, m->dall, d, N, d))) return st;
    if ((st = mrec_scale(ctx, m->dz, m->dall, m->alpha, nd))) return st;
    if ((st = mrec_l2_normalize_rows_back(ctx, m->dghe, m->dz, m->nghe, m->ghe, NORM_EPS, 0, N, d))) return st;
    if ((st = mrec_add(ctx, m->dz2, m->dz2, m->dghe, nd))) return st;
    /* dZ_t into dghe: hyper_back takes t1 and t2 as scratch */
    if ((st = mrec_add(ctx, m->dghe, m->dghe, m->t1, nd))) return st;
    if ((st = hyper_back(m, v, m->dz2, keys))) return st;
    if ((st = hyper_back(m, t, m->dghe, keys))) return st;
    for (int c = 0; c < N_MOD; c++)
        if ((st = local_back(m, &m->mod[c]))) return st;
    return mrec_csr_layer_mean_back(m->ego_grad, m->dcge, &m->adj, 1, m->ui_layers, d, m->t1, m->t2, ctx);
}

static mrec_status lgmrec_launch(void *self, const double **loss) {
    lgmrec *m = self;
    mrec_status st = batch_launch(m);
    *loss = st ? NULL : m->bpr.loss;
    return st;
}

static const double *lgmrec_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lgmrec *m = self;
    m->status = lgmrec_stage(m, u, i, j, n);
    if (!m->status) m->status = batch_launch(m);
    return m->status ? NULL : m->bpr.loss;
}

static double lgmrec_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    lgmrec *m = self;
    return mrec_step_loss(m->ctx, &m->status, lgmrec_step(self, u, i, j, n));
}

/* ranking: no dropout, one fixed draw of the noise */
static mrec_status lgmrec_prepare(void *self) {
    lgmrec *m = self;
    return forward(m, ~(uint64_t)0, NULL);
}

static mrec_status lgmrec_score(void *self, int u0, int n, float *scores) {
    lgmrec *m = self;
    return mrec_score_final(m->ctx, scores, m->all, m->n_users, m->n_items, m->dim, u0, n);
}

static mrec_status lgmrec_embeddings(void *self, float *users, float *items) {
    lgmrec *m = self;
    return mrec_final_to_host(m->ctx, users, items, m->all, m->n_users, m->n_items, m->dim);
}

static void lgmrec_destroy(void *self) {
    lgmrec *m = self;
    mrec_bpr_ops_free(&m->bpr);
    mrec_batch_rows_free(&m->users), mrec_batch_rows_free(&m->items);
    mrec_step_keys_free(&m->step_keys);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m);
}

/* Every array from a (a measuring arena counts them), the graphs' too. */
static void carve(lgmrec *m, mrec_arena *a, int64_t adj_nnz, int64_t r_nnz) {
    size_t N = (size_t)m->n_nodes, d = (size_t)m->dim, U = (size_t)m->n_users, I = (size_t)m->n_items, K = (size_t)m->k;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
    m->ego = F(N * d), m->ego_grad = F(N * d);
    m->cge = F(N * d), m->ghe = F(N * d), m->nghe = F(N * d), m->all = F(N * d);
    m->dall = F(N * d), m->dcge = F(N * d), m->dghe = F(N * d), m->dz = F(N * d), m->dz2 = F(N * d), m->q = F(N * d);
    m->t1 = F(N * d), m->t2 = F(N * d);
    m->dlat = F(K * d), m->ddep = F((I + U) * K), m->dlogit = F((I + U) * K), m->rows = F(I + U);
    m->ones = F(N > K ? N : K);
    for (int c = 0; c < N_MOD; c++) {
        modality *q = &m->mod[c];
        size_t f = (size_t)q->f;
        q->feat = F(I * f), q->w = F(f * d), q->w_grad = F(f * d), q->h = F(f * K), q->h_grad = F(f * K);
        q->noise = F((I + U) * K), q->logit = F((I + U) * K), q->dep = F((I + U) * K), q->drop = F((I + U) * K);
        q->xi = F(I * d), q->hw = F(f * (K + d)), q->fhw = F(I * (K + d)), q->x0 = F(N * d), q->x = F(N * d), q->y = F(N * d), q->z = F(N * d);
        for (int l = 0; l < m->hyper_layers; l++) q->lat[l] = F(K * d), q->iret[l] = l ? F(I * d) : NULL;
    }
#undef F
    mrec_device dev = m->ctx->device;
    m->adj = mrec_graph_carve(a, m->n_nodes, m->n_nodes, adj_nnz, dev);
    m->r = mrec_graph_carve(a, m->n_users, m->n_items, r_nnz, dev), m->r_t = mrec_graph_carve(a, m->n_items, m->n_users, r_nnz, dev);
    m->rm = mrec_graph_carve(a, m->n_users, m->n_items, r_nnz, dev), m->rm_t = mrec_graph_carve(a, m->n_items, m->n_users, r_nnz, dev);
}

/* xavier-uniform of a (rows, cols) matrix: bound sqrt(6 / (rows + cols)) */
static void xavier(float *w, int rows, int cols, mrec_rng *rng) {
    double bound = sqrt(6.0 / (rows + cols));
    for (size_t e = 0; e < (size_t)rows * cols; e++) w[e] = (float)(bound * (2 * mrec_rng_uniform(rng) - 1));
}

/* R (ones), D^-1 R (1 / (degree + 1e-7), as the reference's num_inters) and their transposes, on the host. */
typedef struct {
    int64_t *ptr, *t_ptr;
    int32_t *col, *t_col;
    float *one, *mean, *t_mean;
} interactions;

static mrec_status interactions_build(interactions *x, const mrec_user_items *train, int U, int I) {
    int64_t nnz = train->row_ptr[U];
    memset(x, 0, sizeof *x);
    x->ptr = train->row_ptr, x->col = train->col;
    x->t_ptr = calloc((size_t)I + 1, sizeof *x->t_ptr), x->t_col = malloc(sizeof(int32_t) * (size_t)(nnz + 1));
    x->one = malloc(sizeof(float) * (size_t)(nnz + 1)), x->mean = malloc(sizeof(float) * (size_t)(nnz + 1));
    x->t_mean = malloc(sizeof(float) * (size_t)(nnz + 1));
    if (!x->t_ptr || !x->t_col || !x->one || !x->mean || !x->t_mean) return mrec_fail(MREC_ERR_NOMEM, "lgmrec: %lld interactions", (long long)nnz);
    for (int u = 0; u < U; u++) {
        int64_t lo = train->row_ptr[u], hi = train->row_ptr[u + 1];
        for (int64_t e = lo; e < hi; e++) {
            if (train->col[e] < 0 || train->col[e] >= I) return mrec_fail(MREC_ERR_ARG, "lgmrec: user %d has item %d of %d", u, train->col[e], I);
            x->one[e] = 1.0f, x->mean[e] = (float)(1.0 / ((double)(hi - lo) + 1e-7));
            x->t_ptr[train->col[e] + 1]++;
        }
    }
    for (int i = 0; i < I; i++) x->t_ptr[i + 1] += x->t_ptr[i];
    int64_t *at = malloc(sizeof(int64_t) * ((size_t)I + 1));
    if (!at) return mrec_fail(MREC_ERR_NOMEM, "lgmrec: %d items", I);
    memcpy(at, x->t_ptr, sizeof(int64_t) * ((size_t)I + 1));
    for (int u = 0; u < U; u++) /* users in order: each item's users sorted */
        for (int64_t e = train->row_ptr[u]; e < train->row_ptr[u + 1]; e++) {
            int64_t k = at[train->col[e]]++;
            x->t_col[k] = u, x->t_mean[k] = x->mean[e];
        }
    free(at);
    return MREC_OK;
}

static void interactions_free(interactions *x) { free(x->t_ptr), free(x->t_col), free(x->one), free(x->mean), free(x->t_mean); }

/* The initial values, drawn on the host in a fixed order (E_u, E_i, then per modality W, H), copied to the device with
 * the features and the graphs. */
static mrec_status upload(lgmrec *m, const mrec_graph *adj, const mrec_user_items *train, const float *const *feat, mrec_rng *rng) {
    int d = m->dim, U = m->n_users, I = m->n_items, N = m->n_nodes, K = m->k;
    mrec_context *ctx = m->ctx;
    size_t most = (size_t)N * d + (size_t)N + (size_t)K;
    for (int c = 0; c < N_MOD; c++)
        if ((size_t)m->mod[c].f * (d + K) > most) most = (size_t)m->mod[c].f * (d + K);
    float *h = malloc(sizeof(float) * most);
    if (!h) return mrec_fail(MREC_ERR_NOMEM, "lgmrec: %zu initial values", most);
    xavier(h, U, d, rng), xavier(h + (size_t)U * d, I, d, rng);
    mrec_status st = mrec_copy_to_device(ctx, m->ego, h, sizeof(float) * (size_t)N * d);
    size_t n_ones = (size_t)(N > K ? N : K);
    for (size_t r = 0; r < n_ones; r++) h[r] = 1.0f;
    if (!st) st = mrec_copy_to_device(ctx, m->ones, h, sizeof(float) * n_ones);
    for (int c = 0; c < N_MOD && !st; c++) {
        modality *q = &m->mod[c];
        xavier(h, q->f, d, rng), xavier(h + (size_t)q->f * d, q->f, K, rng);
        st = mrec_copy_to_device(ctx, q->w, h, sizeof(float) * (size_t)q->f * d);
        if (!st) st = mrec_copy_to_device(ctx, q->h, h + (size_t)q->f * d, sizeof(float) * (size_t)q->f * K);
        if (!st) st = mrec_copy_to_device(ctx, q->feat, feat[c], sizeof(float) * (size_t)I * q->f);
    }
    free(h);
    interactions x;
    if (!st) st = interactions_build(&x, train, U, I);
    else memset(&x, 0, sizeof x);
    if (!st) {
        mrec_csr g = mrec_graph_csr(adj);
        mrec_csr r = {.n_rows = U, .n_cols = I, .row_ptr = x.ptr, .col = x.col, .val = x.one};
        mrec_csr rm = {.n_rows = U, .n_cols = I, .row_ptr = x.ptr, .col = x.col, .val = x.mean};
        mrec_csr rt = {.n_rows = I, .n_cols = U, .row_ptr = x.t_ptr, .col = x.t_col, .val = x.one};
        mrec_csr rmt = {.n_rows = I, .n_cols = U, .row_ptr = x.t_ptr, .col = x.t_col, .val = x.t_mean};
        st = mrec_graph_upload(ctx, &m->adj, &g);
        if (!st) st = mrec_graph_upload(ctx, &m->r, &r);
        if (!st) st = mrec_graph_upload(ctx, &m->r_t, &rt);
        if (!st) st = mrec_graph_upload(ctx, &m->rm, &rm);
        if (!st) st = mrec_graph_upload(ctx, &m->rm_t, &rmt);
    }
    interactions_free(&x);
    m->adj.transposed = &m->adj, m->r.transposed = &m->r_t, m->rm.transposed = &m->rm_t;
    return st;
}

mrec_status mrec_lgmrec_create(mrec_model *out, const mrec_graph *adj, const mrec_user_items *train, int n_users, int n_items,
                               const float *const *feat, const int *feat_dim, int dim, int ui_layers, int mm_layers, int hyper_layers,
                               int hyper_num, float keep_rate, float alpha, float cl_weight, float reg_weight, mrec_rng *rng,
                               mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    if (adj->n_nodes != n_users + n_items || train->n_rows != n_users || dim < 1 || ui_layers < 0 || mm_layers < 0 || hyper_layers < 1 ||
        hyper_layers > MAX_HYPER_LAYERS || hyper_num < 1 || !(keep_rate > 0 && keep_rate <= 1))
        return mrec_fail(MREC_ERR_ARG,
                         "lgmrec: graph of %d nodes for %d users + %d items (%d training rows), dim %d, layers %d and %d, "
                         "%d hypergraph layers (1 to %d), %d hyperedges, keep_rate %g (in (0, 1])",
                         adj->n_nodes, n_users, n_items, train->n_rows, dim, ui_layers, mm_layers, hyper_layers, MAX_HYPER_LAYERS, hyper_num,
                         (double)keep_rate);
    for (int c = 0; c < N_MOD; c++)
        if (!feat[c] || feat_dim[c] < 1) return mrec_fail(MREC_ERR_ARG, "lgmrec: modality %d has %d features", c, feat_dim[c]);
    lgmrec *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "lgmrec");
    m->n_users = n_users, m->n_items = n_items, m->n_nodes = n_users + n_items, m->dim = dim;
    m->ui_layers = ui_layers, m->mm_layers = mm_layers, m->hyper_layers = hyper_layers, m->k = hyper_num;
    m->keep = keep_rate, m->alpha = alpha, m->cl = cl_weight, m->reg = reg_weight, m->ctx = ctx;
    for (int c = 0; c < N_MOD; c++) m->mod[c].f = feat_dim[c];
    int64_t adj_nnz = adj->row_ptr[adj->n_nodes], r_nnz = train->row_ptr[n_users];
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, adj_nnz, r_nnz);
    mrec_status st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        free(m);
        return st;
    }
    carve(m, &m->mem, adj_nnz, r_nnz);
    st = upload(m, adj, train, feat, rng);
    m->seed = mrec_rng_next(rng);
    if (st || (st = lgmrec_prepare(m))) {
        lgmrec_destroy(m);
        return st;
    }
    int p = 0;
#define PARAM(w, g, count) out->param[p] = (w), out->grad[p] = (g), out->size[p++] = (int64_t)(count)
    PARAM(m->ego, m->ego_grad, (size_t)m->n_nodes * dim);
    for (int c = 0; c < N_MOD; c++) {
        modality *q = &m->mod[c];
        PARAM(q->w, q->w_grad, (size_t)q->f * dim);
        PARAM(q->h, q->h_grad, (size_t)q->f * hyper_num);
    }
#undef PARAM
    out->n_params = p;
    out->name = "LGMRec", out->self = m;
    out->state[0] = &m->step, out->n_state = 1; /* for a checkpoint */
    out->status = &m->status;
    out->loss_grad = lgmrec_loss_grad, out->step = lgmrec_step, out->prepare = lgmrec_prepare, out->score = lgmrec_score;
    out->stage = lgmrec_stage, out->launch = lgmrec_launch;
    out->embed_dim = dim, out->embeddings = lgmrec_embeddings;
    out->destroy = lgmrec_destroy;
    return MREC_OK;
}

mrec_status mrec_lgmrec_set_noise(mrec_model *model, const float *const *noise) {
    if (!model->name || strcmp(model->name, "LGMRec") || !model->self)
        return mrec_fail(MREC_ERR_ARG, "lgmrec noise: the model is %s, not LGMRec", model->name ? model->name : "unnamed");
    lgmrec *m = model->self;
    size_t n = (size_t)(m->n_items + m->n_users) * m->k;
    for (int c = 0; c < N_MOD; c++) {
        mrec_status st = mrec_copy_to_device(m->ctx, m->mod[c].noise, noise[c], sizeof(float) * n);
        if (st) return st;
    }
    m->fixed_noise = 1;
    return lgmrec_prepare(m);
}
