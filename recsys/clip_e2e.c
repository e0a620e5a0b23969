/* clip_e2e.c: CLIP-E2E, a BPR recommender whose item vectors come out of
 * CLIP's towers inside the training loop: the end-to-end setting of "Large
 * Multi-modal Encoders for Recommendation" (Yi et al., 2023).
 *
 *   img_i, txt_i = the towers' unit embeddings of item i's photo and text
 *   item(i)      = W [img_i ; txt_i] + b     (W: dim x 2D, D CLIP's projection_dim)
 *   score(u, i)  = < U_u, item(i) >          (U: n_users x dim, free)
 *   loss         = -mean log(1e-10 + sigmoid(score(u, i+) - score(u, i-)))
 *                  + reg * (|U_b|_F + |item(I_b+)|_F + |item(I_b-)|_F) / n   (MMRec's BPR and EmbLoss)
 *
 * Fusion is mrec's choice: concatenation then a learned linear map, as the
 * paper's host models treat two feature vectors (VBPR concatenates, MMRec's
 * projections are linear); it lets the model weigh image against text.
 *
 * What trains: U, W and b by the trainer's Adam (the config's lr, 1e-3 by
 * default, as MMRec); in each tower the last `blocks` transformer blocks, the
 * final LayerNorm and the projection by AdamW (tower_lr, 1e-5 by default;
 * betas 0.9, 0.999, eps 1e-8; weight decay on matrices only, CLIP's groups).
 * The towers' step is taken inside loss_grad, after both groups' gradients
 * are computed, so the trainer's own step on U, W, b is unchanged; it is the
 * same as one optimizer step of each after one backward.
 *
 * What is frozen is computed once: at creation every item's hidden state
 * entering the first trainable block (nn/mrec_clip_train.h) is kept, so an
 * epoch runs only the trainable blocks of the batch's distinct items. With
 * blocks = 0 nothing of CLIP trains and the kept vectors are the embeddings
 * themselves: a plain model on pre-trained features. Memory: items x (tokens
 * x hidden) floats per tower for the kept states.
 *
 * Scoring recomputes every item's vector once per evaluation (prepare).
 *
 * One path on every device: the op entries (kernels/mrec_kernels.h), with the
 * model's arrays, the kept states, the towers' gradients and both optimizers'
 * moments on the context's device (a GPU context moves the CLIP weights there
 * at creation). A batch on the host is only bookkeeping: its distinct items,
 * their pooled tokens and masks (the towers take those from the host). The
 * BPR step is the one VBPR and BPRMF take (bpr_ops.c): the batch's rows sit
 * in one table T (3n, dim), U_u for each triple then the positives' and the
 * negatives' item vectors, gathered from the distinct items' Z; the rows'
 * gradients are scattered back to U and to Z's rows in batch order.
 */
#include "mrec_clip_e2e.h"
#include "recsys_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    mrec_context *ctx;
    mrec_clip *clip;
    int n_users, n_items, dim, D, T, blocks;
    int first_v, first_t;           /* the towers' first trainable blocks */
    int Tv, Hv, Ht;                 /* vision tokens, the towers' widths */
    float reg;
    /* on the context's device, carved from mem */
    mrec_arena mem;
    float *user, *w, *b;            /* the trainer's parameters: (n_users, dim), (dim, 2D), (dim) */
    float *user_grad, *w_grad, *b_grad;
    float *hid_v, *hid_t;           /* what the frozen part gave: (n_items, Tv, Hv), (n_items, T, Ht); blocks = 0: NULL */
    float *emb;                     /* blocks = 0: (n_items, 2D) the embeddings */
    float *vgrad, *tgrad;           /* the towers' gradients, in their storage layout; blocks = 0: NULL */
    float *moments;                 /* AdamW's, two per trainable weight */
    float *all;                     /* (n_items, dim) for scoring */
    /* host */
    int32_t *pool, *mask;           /* (n_items) the texts' pooled tokens, (n_items, T) their masks or NULL */
    mrec_param_tensor *tensor;      /* the towers' trainable tensors (pointers on the device) */
    int n_tensors;
    mrec_adamw_options adamw;
    uint64_t step;                  /* AdamW's steps taken */
    float **array;                  /* what a checkpoint keeps beside the parameters: each trainable tensor, then the */
    int64_t *array_n;               /* moments; (n_tensors + 1) each */
    /* a batch of up to ntrip triples, so up to cap = 2 ntrip distinct items */
    int ntrip, cap;
    int32_t *slot, *items, *row;    /* host: (n_items) an item's slot or -1, (cap) the distinct items, (2 ntrip) each row's slot */
    int32_t *bpool, *bmask;         /* host: (cap), (cap, T) the distinct items' pooled tokens and masks */
    mrec_arena batch;               /* on the device: */
    int32_t *items_dev;             /* (cap) */
    float *bv, *bt;                 /* (cap, Tv Hv), (cap, T Ht) the distinct items' kept states */
    float *E, *dE;                  /* (cap, 2D) [img ; txt] and its gradient */
    float *dv, *dt;                 /* (cap, D) x 2 a tower's embeddings, then their gradients */
    float *Z, *dZ;                  /* (cap, dim) the item vectors and their gradients */
    float *Tb, *mixed;              /* (3 ntrip, dim) the batch's rows and their gradients */
    void *work_v, *work_t;          /* the trainable tops' activations */
    size_t work_v_bytes, work_t_bytes;
    mrec_batch_rows users, slots;   /* u; the positives' then the negatives' slots */
    mrec_bpr_ops bpr;
    mrec_status status;
} clip_e2e;

/* ---- the towers' trainable tensors ---- */

static void add_tensor(clip_e2e *m, float *w, float *grad_base, const float *storage, int64_t n, int decay) {
    mrec_param_tensor *t = &m->tensor[m->n_tensors++];
    t->param = w, t->grad = grad_base + (w - storage), t->n = n, t->decay = decay;
}

/* Blocks [first, layers), the final LayerNorm and the projection of one tower. */
static void tower_tensors(clip_e2e *m, const mrec_clip_tower *tw, float *grad, int first) {
    int64_t H = tw->cfg.hidden, I = tw->cfg.intermediate;
    for (int l = first; l < tw->cfg.layers; l++) {
        const mrec_vit_layer *L = &tw->layer[l];
        struct { float *w; int64_t n; int decay; } part[] = {
            {L->ln1_w, H, 0}, {L->ln1_b, H, 0}, {L->q_w, H * H, 1}, {L->q_b, H, 0}, {L->k_w, H * H, 1}, {L->k_b, H, 0},
            {L->v_w, H * H, 1}, {L->v_b, H, 0}, {L->o_w, H * H, 1}, {L->o_b, H, 0}, {L->ln2_w, H, 0}, {L->ln2_b, H, 0},
            {L->inter_w, I * H, 1}, {L->inter_b, I, 0}, {L->out_w, H * I, 1}, {L->out_b, H, 0},
        };
        for (size_t k = 0; k < sizeof part / sizeof part[0]; k++) add_tensor(m, part[k].w, grad, tw->storage, part[k].n, part[k].decay);
    }
    add_tensor(m, tw->post_w, grad, tw->storage, H, 0);
    add_tensor(m, tw->post_b, grad, tw->storage, H, 0);
    add_tensor(m, tw->proj, grad, tw->storage, (int64_t)m->D * H, 1);
}

/* ---- buffers ---- */

/* n floats of zeros on the context's device (arena memory is not cleared). */
static mrec_status zeros(mrec_context *ctx, float *dst, size_t n) {
    enum { CHUNK = 1 << 16 };
    static const float z[CHUNK];
    mrec_status st = MREC_OK;
    for (size_t at = 0; at < n && !st; at += CHUNK) st = mrec_copy_to_device(ctx, dst + at, z, sizeof(float) * (n - at < CHUNK ? n - at : CHUNK));
    return st;
}

/* A batch's device buffers from a (a measuring arena counts them). */
static void carve_batch(clip_e2e *m, mrec_arena *a) {
    size_t c = (size_t)m->cap, D = (size_t)m->D, d = (size_t)m->dim, t3 = 3 * (size_t)m->ntrip;
    m->items_dev = mrec_arena_alloc(a, sizeof(int32_t) * c);
    m->E = mrec_arena_alloc(a, sizeof(float) * c * 2 * D), m->dE = mrec_arena_alloc(a, sizeof(float) * c * 2 * D);
    m->dv = mrec_arena_alloc(a, sizeof(float) * c * D), m->dt = mrec_arena_alloc(a, sizeof(float) * c * D);
    m->Z = mrec_arena_alloc(a, sizeof(float) * c * d), m->dZ = mrec_arena_alloc(a, sizeof(float) * c * d);
    m->Tb = mrec_arena_alloc(a, sizeof(float) * t3 * d), m->mixed = mrec_arena_alloc(a, sizeof(float) * t3 * d);
    if (!m->blocks) return;
    m->bv = mrec_arena_alloc(a, sizeof(float) * c * (size_t)m->Tv * m->Hv);
    m->bt = mrec_arena_alloc(a, sizeof(float) * c * (size_t)m->T * m->Ht);
    m->work_v = mrec_arena_alloc(a, m->work_v_bytes), m->work_t = mrec_arena_alloc(a, m->work_t_bytes);
}

/* Room for batches of up to n triples (2n distinct items at most), grown when a batch is larger than any before. */
static mrec_status ensure_batch(clip_e2e *m, int n) {
    if (n <= m->ntrip) return MREC_OK;
    mrec_context *ctx = m->ctx;
    if (m->batch.base) mrec_arena_release(&m->batch, ctx->cuda);
    free(m->items), free(m->row), free(m->bpool), free(m->bmask);
    m->items = m->row = m->bpool = m->bmask = NULL, m->ntrip = m->cap = 0;
    int cap = 2 * n;
    size_t c = (size_t)cap;
    m->items = malloc(c * 4), m->row = malloc(c * 4), m->bpool = malloc(c * 4), m->bmask = malloc(c * (size_t)m->T * 4);
    if (!m->items || !m->row || !m->bpool || !m->bmask) return mrec_fail(MREC_ERR_NOMEM, "clip-e2e: buffers for a batch of %d triples", n);
    m->ntrip = n, m->cap = cap;
    if (m->blocks) { /* the tops run on at most 1024 inputs at once (mrec_clip_tower_top_forward's bound) */
        int chunk = cap < 1024 ? cap : 1024;
        m->work_v_bytes = mrec_clip_tower_top_workspace_bytes(ctx, m->clip, MREC_CLIP_VISION, chunk, m->T, m->first_v);
        m->work_t_bytes = mrec_clip_tower_top_workspace_bytes(ctx, m->clip, MREC_CLIP_TEXT, chunk, m->T, m->first_t);
    }
    mrec_arena measure = mrec_arena_measure();
    carve_batch(m, &measure);
    mrec_status st = mrec_arena_reserve(&m->batch, measure.peak, ctx->device, ctx->cuda);
    if (st) {
        m->ntrip = m->cap = 0;
        return st;
    }
    carve_batch(m, &m->batch);
    return MREC_OK;
}

/* ---- the item vectors ---- */

/* [img ; txt] rows into E (K, 2D) from the towers' unit embeddings in dv, dt (K, D). */
static mrec_status concat(clip_e2e *m, float *E, int K) {
    int D = m->D;
    mrec_status st = mrec_copy_rows(m->ctx, E, 2 * D, m->dv, D, K, D);
    return st ? st : mrec_copy_rows(m->ctx, E + D, 2 * D, m->dt, D, K, D);
}

/* The batch's distinct items' embeddings E (K, 2D) = [img ; txt], through the trainable tops; the
 * activations stay in the workspaces for the backward (K <= 1024 then). */
static mrec_status embed_items(clip_e2e *m, const int32_t *items, int K, float *E) { /* items checked by the caller */
    mrec_context *ctx = m->ctx;
    int T = m->T;
    mrec_status st = mrec_copy_to_device_staged(ctx, m->items_dev, items, sizeof(int32_t) * (size_t)K);
    if (st) return st;
    if (!m->blocks) return mrec_embedding_checked(ctx, E, m->emb, m->items_dev, K, m->n_items, 2 * m->D);
    for (int k = 0; k < K; k++) {
        m->bpool[k] = m->pool[items[k]];
        if (m->mask) memcpy(m->bmask + (size_t)k * T, m->mask + (size_t)items[k] * T, sizeof(int32_t) * (size_t)T);
    }
    st = mrec_embedding_checked(ctx, m->bv, m->hid_v, m->items_dev, K, m->n_items, m->Tv * m->Hv);
    if (!st) st = mrec_embedding_checked(ctx, m->bt, m->hid_t, m->items_dev, K, m->n_items, T * m->Ht);
    if (!st) st = mrec_clip_tower_top_forward(ctx, m->clip, MREC_CLIP_VISION, m->bv, NULL, NULL, K, T, m->first_v, m->dv, m->work_v,
                                              m->work_v_bytes);
    if (!st) st = mrec_clip_tower_top_forward(ctx, m->clip, MREC_CLIP_TEXT, m->bt, m->bpool, m->mask ? m->bmask : NULL, K, T, m->first_t,
                                              m->dt, m->work_t, m->work_t_bytes);
    return st ? st : concat(m, E, K);
}

/* Z (K, dim) = E W^T + b */
static mrec_status fuse(clip_e2e *m, float *Z, const float *E, int K) {
    int D2 = 2 * m->D;
    return mrec_gemm(m->ctx, Z, E, m->w, m->b, 1, 0, 0, 1, K, m->dim, D2, D2, D2, m->dim);
}

/* ---- a batch ---- */

/* The batch's loss stays on the context's device (m->bpr.loss). */
static mrec_status batch_loss_grad(clip_e2e *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    mrec_context *ctx = m->ctx;
    int d = m->dim, D = m->D, D2 = 2 * D;
    if (n < 1) return mrec_fail(MREC_ERR_ARG, "clip-e2e: an empty batch");
    for (int r = 0; r < n; r++) {
        if (u[r] < 0 || u[r] >= m->n_users) return mrec_fail(MREC_ERR_ARG, "clip-e2e: user %d of %d", u[r], m->n_users);
        if (i[r] < 0 || i[r] >= m->n_items || j[r] < 0 || j[r] >= m->n_items)
            return mrec_fail(MREC_ERR_ARG, "clip-e2e: items %d and %d of %d", i[r], j[r], m->n_items);
    }
    mrec_status st = ensure_batch(m, n);
    if (st) return st;
    /* the distinct items, in first-seen order; row r < n the positive of triple r, n + r its negative */
    int K = 0;
    for (int r = 0; r < 2 * n; r++) {
        int it = r < n ? i[r] : j[r - n];
        if (m->slot[it] < 0) m->slot[it] = K, m->items[K++] = it;
        m->row[r] = m->slot[it];
    }
    for (int k = 0; k < K; k++) m->slot[m->items[k]] = -1;
    if (K > 1024) return mrec_fail(MREC_ERR_SHAPE, "clip-e2e: %d distinct items in a batch (at most 1024)", K);
    static const int zero[1] = {0};
    const int32_t *row = m->row;
    if ((st = mrec_batch_rows_set(&m->users, ctx, m->n_users, 1, &u, zero, n)) ||
        (st = mrec_batch_rows_set(&m->slots, ctx, m->cap, 1, &row, zero, 2 * n)) || (st = embed_items(m, m->items, K, m->E)) ||
        (st = fuse(m, m->Z, m->E, K)))
        return st;

    /* Tb: the users' rows, then the positives' and the negatives' item vectors; their scores and squared norms */
    st = mrec_embedding_checked(ctx, m->Tb, m->user, m->users.ids, n, m->n_users, d);
    if (!st) st = mrec_embedding_checked(ctx, m->Tb + (size_t)n * d, m->Z, m->slots.ids, 2 * n, m->cap, d);
    const int32_t *iota = m->slots.h_iota;
    /* the BPR loss, EmbLoss over the batch's user rows and item rows (each row as often as it appears; d|X|_F / dX =
     * X / |X|_F), where the scores are */
    mrec_bpr_spec spec = {.form = MREC_BPR_LOG_SIGMOID, .weight = 1, .reg_form = MREC_BPR_REG_NORMS, .reg = m->reg};
    if (!st) st = mrec_bpr_ops_dots(&m->bpr, ctx, m->Tb, m->Tb, iota, iota, iota + n, n, n, 3 * m->ntrip, d);
    if (!st) st = mrec_bpr_ops_loss(&m->bpr, &spec);
    /* each of Tb's rows' gradient; the users' into U's, the items' summed into their slots' rows of dZ */
    if (!st) st = mrec_bpr_ops_scatter_at(&m->bpr, m->mixed, m->Tb, 1, MREC_BPR_PARTS_ALL);
    if (!st) st = mrec_batch_rows_scatter(&m->users, m->user_grad, m->mixed, d);
    if (!st) st = mrec_batch_rows_scatter(&m->slots, m->dZ, m->mixed + (size_t)n * d, d);
    /* the fusion's gradients: W (dim, 2D) = dZ^T E, b = ones^T dZ */
    if (!st) st = mrec_gemm(ctx, m->w_grad, m->dZ, m->E, NULL, 1, 0, 1, 0, d, D2, K, d, D2, D2);
    if (!st) st = mrec_gemm(ctx, m->b_grad, m->slots.ones, m->dZ, NULL, 1, 0, 0, 0, 1, d, K, K, d, d);
    if (st || !m->blocks) return st;
    /* on the CPU a batch whose loss is not finite stops training before any Adam (mrec_fit's rule): the towers'
     * too (on a GPU the loss stays there, and the steps run on to the epoch's end, as the trainer's Adam does) */
    if (ctx->device == MREC_DEVICE_CPU && !isfinite(*m->bpr.loss)) return st;

    /* into the towers: their unit embeddings' gradients (dE = dZ W), back through the trainable tops, then AdamW */
    st = mrec_gemm(ctx, m->dE, m->dZ, m->w, NULL, 1, 0, 0, 0, K, D2, d, d, D2, D2);
    if (!st) st = mrec_copy_rows(ctx, m->dv, D, m->dE, D2, K, D);
    if (!st) st = mrec_copy_rows(ctx, m->dt, D, m->dE + D, D2, K, D);
    /* the backward accumulates: the trainable tensors' gradients start at 0 */
    for (int t = 0; t < m->n_tensors && !st; t++) st = mrec_fill(ctx, m->tensor[t].grad, 0.0f, m->tensor[t].n);
    if (!st) st = mrec_clip_tower_top_backward(ctx, m->clip, MREC_CLIP_VISION, m->dv, K, m->T, m->first_v, m->vgrad, m->work_v, m->work_v_bytes);
    if (!st) st = mrec_clip_tower_top_backward(ctx, m->clip, MREC_CLIP_TEXT, m->dt, K, m->T, m->first_t, m->tgrad, m->work_t, m->work_t_bytes);
    if (!st) st = mrec_adamw_step(ctx, m->tensor, m->n_tensors, &m->adamw, m->adamw.lr, m->step + 1);
    if (!st) m->step++;
    return st;
}

static const double *clip_e2e_step(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    clip_e2e *m = self;
    m->status = batch_loss_grad(m, u, i, j, n);
    return m->status ? NULL : m->bpr.loss;
}

static double clip_e2e_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    clip_e2e *m = self;
    return mrec_step_loss(m->ctx, &m->status, clip_e2e_step(self, u, i, j, n));
}

/* Every item's vector: the kept embeddings' fusion at once, or the tops in chunks of the batch buffers' size. */
static mrec_status clip_e2e_prepare(void *self) {
    clip_e2e *m = self;
    mrec_context *ctx = m->ctx;
    if (!m->blocks) return fuse(m, m->all, m->emb, m->n_items);
    mrec_status st = m->cap ? MREC_OK : ensure_batch(m, 64); /* a failed growth left none */
    int chunk = m->cap < 1024 ? m->cap : 1024, T = m->T;
    for (int i0 = 0; i0 < m->n_items && !st; i0 += chunk) {
        int K = m->n_items - i0 < chunk ? m->n_items - i0 : chunk;
        st = mrec_clip_tower_top_forward(ctx, m->clip, MREC_CLIP_VISION, m->hid_v + (size_t)i0 * m->Tv * m->Hv, NULL, NULL, K, T, m->first_v,
                                         m->dv, m->work_v, m->work_v_bytes);
        if (!st) st = mrec_clip_tower_top_forward(ctx, m->clip, MREC_CLIP_TEXT, m->hid_t + (size_t)i0 * T * m->Ht, m->pool + i0,
                                                  m->mask ? m->mask + (size_t)i0 * T : NULL, K, T, m->first_t, m->dt, m->work_t,
                                                  m->work_t_bytes);
        if (!st) st = concat(m, m->E, K);
        if (!st) st = fuse(m, m->all + (size_t)i0 * m->dim, m->E, K);
    }
    return st;
}

static mrec_status clip_e2e_score(void *self, int u0, int n, float *scores) {
    clip_e2e *m = self;
    int d = m->dim;
    return mrec_gemm(m->ctx, scores, m->user + (size_t)u0 * d, m->all, NULL, 1, 0, 0, 1, n, m->n_items, d, d, d, m->n_items);
}

static mrec_status clip_e2e_embeddings(void *self, float *users, float *items) {
    clip_e2e *m = self;
    mrec_status st = mrec_copy_to_host(m->ctx, users, m->user, sizeof(float) * (size_t)m->n_users * m->dim);
    return st ? st : mrec_copy_to_host(m->ctx, items, m->all, sizeof(float) * (size_t)m->n_items * m->dim);
}

static void clip_e2e_destroy(void *self) {
    clip_e2e *m = self;
    mrec_bpr_ops_free(&m->bpr);
    mrec_batch_rows_free(&m->users), mrec_batch_rows_free(&m->slots);
    if (m->batch.base) mrec_arena_release(&m->batch, m->ctx->cuda);
    if (m->mem.base) mrec_arena_release(&m->mem, m->ctx->cuda);
    free(m->pool), free(m->mask), free(m->tensor), free(m->array), free(m->array_n);
    free(m->slot), free(m->items), free(m->row), free(m->bpool), free(m->bmask);
    free(m);
}

/* ---- creation: the frozen part, once ---- */

/* The model's arrays on the device from a (a measuring arena counts them). */
static void carve(clip_e2e *m, mrec_arena *a, int64_t tower_weights) {
    size_t nu = (size_t)m->n_users * m->dim, nw = (size_t)m->dim * 2 * m->D, ni = (size_t)m->n_items, f = sizeof(float);
    m->user = mrec_arena_alloc(a, f * nu), m->user_grad = mrec_arena_alloc(a, f * nu);
    m->w = mrec_arena_alloc(a, f * nw), m->w_grad = mrec_arena_alloc(a, f * nw);
    m->b = mrec_arena_alloc(a, f * m->dim), m->b_grad = mrec_arena_alloc(a, f * m->dim);
    m->all = mrec_arena_alloc(a, f * ni * m->dim);
    if (!m->blocks) {
        m->emb = mrec_arena_alloc(a, f * ni * 2 * m->D);
        return;
    }
    m->hid_v = mrec_arena_alloc(a, f * ni * m->Tv * m->Hv), m->hid_t = mrec_arena_alloc(a, f * ni * m->T * m->Ht);
    m->vgrad = mrec_arena_alloc(a, f * (size_t)m->clip->vision.floats), m->tgrad = mrec_arena_alloc(a, f * (size_t)m->clip->text.floats);
    m->moments = mrec_arena_alloc(a, f * 2 * (size_t)tower_weights);
}

/* Every item through the frozen bottom of both towers: the hidden states entering the first trainable
 * blocks, or with blocks = 0 the whole towers' embeddings (the same ops, from block `layers`). */
static mrec_status run_frozen(clip_e2e *m, const mrec_clip_items *in) {
    mrec_context *ctx = m->ctx;
    const mrec_clip_tower_config *vc = &m->clip->vision.cfg;
    int T = m->T, C = MREC_CLIP_CHUNK, D = m->D;
    int fv = m->blocks ? m->first_v : vc->layers, ft = m->blocks ? m->first_t : m->clip->text.cfg.layers;
    size_t img = (size_t)vc->channels * vc->image_size * vc->image_size, sv = (size_t)m->Tv * m->Hv, stt = (size_t)T * m->Ht;
    size_t hb = mrec_clip_tower_hidden_workspace_bytes(ctx, m->clip, MREC_CLIP_VISION, C, T, fv);
    size_t hb2 = mrec_clip_tower_hidden_workspace_bytes(ctx, m->clip, MREC_CLIP_TEXT, C, T, ft);
    size_t tb = m->blocks ? 0 : mrec_clip_tower_top_workspace_bytes(ctx, m->clip, MREC_CLIP_VISION, C, T, fv);
    size_t tb2 = m->blocks ? 0 : mrec_clip_tower_top_workspace_bytes(ctx, m->clip, MREC_CLIP_TEXT, C, T, ft);
    size_t wb = hb > hb2 ? hb : hb2;
    wb = wb > tb ? wb : tb, wb = wb > tb2 ? wb : tb2;
    /* on the device: the workspace, and with frozen towers a chunk's hidden states and embeddings */
    size_t bytes[4] = {wb, m->blocks ? 0 : sizeof(float) * C * sv, m->blocks ? 0 : sizeof(float) * C * stt, m->blocks ? 0 : sizeof(float) * C * D};
    mrec_arena scratch = {0}, measure = mrec_arena_measure();
    for (int k = 0; k < 4; k++) mrec_arena_alloc(&measure, bytes[k]);
    mrec_status st = mrec_arena_reserve(&scratch, measure.peak, ctx->device, ctx->cuda);
    if (st) return st;
    void *work = mrec_arena_alloc(&scratch, bytes[0]);
    float *hv = mrec_arena_alloc(&scratch, bytes[1]), *ht = mrec_arena_alloc(&scratch, bytes[2]), *e = mrec_arena_alloc(&scratch, bytes[3]);
    for (int i0 = 0; i0 < m->n_items && !st; i0 += C) {
        int B = m->n_items - i0 < C ? m->n_items - i0 : C;
        const int32_t *mask = in->mask ? in->mask + (size_t)i0 * T : NULL;
        float *to_v = m->blocks ? m->hid_v + i0 * sv : hv, *to_t = m->blocks ? m->hid_t + i0 * stt : ht;
        st = mrec_clip_tower_hidden(ctx, m->clip, MREC_CLIP_VISION, in->images + i0 * img, NULL, NULL, B, T, fv, to_v, work, wb);
        if (!st) st = mrec_clip_tower_hidden(ctx, m->clip, MREC_CLIP_TEXT, NULL, in->ids + (size_t)i0 * T, mask, B, T, ft, to_t, work, wb);
        if (st || m->blocks) continue;
        /* frozen towers: the heads once, kept as features */
        for (int k = 0; k < 2 && !st; k++) {
            st = k ? mrec_clip_tower_top_forward(ctx, m->clip, MREC_CLIP_TEXT, ht, m->pool + i0, mask, B, T, ft, e, work, wb)
                   : mrec_clip_tower_top_forward(ctx, m->clip, MREC_CLIP_VISION, hv, NULL, NULL, B, T, fv, e, work, wb);
            if (!st) st = mrec_copy_rows(ctx, m->emb + ((size_t)i0 * 2 + k) * D, 2 * D, e, D, B, D);
        }
    }
    mrec_arena_release(&scratch, ctx->cuda);
    return st;
}

mrec_status mrec_clip_e2e_create(mrec_model *out, int n_users, const mrec_clip_items *in, const mrec_clip_e2e_options *o,
                                 mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_clip *clip = in->clip;
    if (!clip || clip->towers != MREC_CLIP_BOTH) return mrec_fail(MREC_ERR_ARG, "clip-e2e: a CLIP model with both towers");
    const mrec_clip_tower_config *vc = &clip->vision.cfg, *tc = &clip->text.cfg;
    if (o->blocks < 0 || o->blocks > vc->layers || o->blocks > tc->layers)
        return mrec_fail(MREC_ERR_ARG, "clip-e2e: %d trainable blocks; the towers have %d (vision) and %d (text)", o->blocks, vc->layers,
                         tc->layers);
    if (n_users < 1 || in->n_items < 1 || o->dim < 1 || in->T < 1 || in->T > tc->max_positions)
        return mrec_fail(MREC_ERR_ARG, "clip-e2e: %d users, %d items, dim %d, texts of %d tokens (1 to %d)", n_users, in->n_items, o->dim,
                         in->T, tc->max_positions);
    for (int64_t k = 0; k < (int64_t)in->n_items * in->T; k++)
        if (in->ids[k] < 0 || in->ids[k] >= tc->vocab_size)
            return mrec_fail(MREC_ERR_ARG, "clip-e2e: item %lld's text: token %d outside the vocabulary of %d", (long long)(k / in->T),
                             in->ids[k], tc->vocab_size);
    /* the towers' weights where the context runs (nothing moves on a CPU, or when they are there already); with
     * blocks to train, without the bf16 twin a bf16 context's upload makes: AdamW's steps and a resumed checkpoint
     * change the fp32 weights, which a twin made once would not follow, so bf16 products convert them as they are */
    mrec_precision precision = ctx->precision;
    if (o->blocks) ctx->precision = MREC_PREC_FP32;
    mrec_status st = mrec_clip_to_device(clip, ctx);
    ctx->precision = precision;
    if (st) return st;
    clip_e2e *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "clip-e2e");
    int G = vc->image_size / vc->patch_size;
    m->ctx = ctx, m->clip = clip, m->n_users = n_users, m->n_items = in->n_items, m->dim = o->dim, m->D = clip->projection_dim;
    m->T = in->T, m->blocks = o->blocks, m->reg = o->reg, m->first_v = vc->layers - o->blocks, m->first_t = tc->layers - o->blocks;
    m->Tv = 1 + G * G, m->Hv = vc->hidden, m->Ht = tc->hidden;
    m->adamw = (mrec_adamw_options){o->tower_lr, 0.9, 0.999, 1e-8, o->tower_decay};
    size_t nu = (size_t)n_users * o->dim, nw = (size_t)o->dim * 2 * m->D, ni = (size_t)in->n_items;
    m->pool = malloc(ni * 4), m->slot = malloc(ni * 4);
    if (in->mask) m->mask = malloc(ni * (size_t)in->T * 4);
    size_t most = (size_t)o->blocks * 32 + 6; /* tensors: 16 a block of each tower, 3 after the blocks */
    if (o->blocks) {
        m->tensor = calloc(most, sizeof *m->tensor);
        m->array = calloc(most + 1, sizeof *m->array), m->array_n = calloc(most + 1, sizeof *m->array_n);
    }
    float *host = malloc(sizeof(float) * (nu > nw ? nu : nw));
    if (!m->pool || !m->slot || (in->mask && !m->mask) || (o->blocks && (!m->tensor || !m->array || !m->array_n)) || !host) {
        free(host), clip_e2e_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "clip-e2e: %d users, %d items", n_users, in->n_items);
    }
    for (size_t k = 0; k < ni; k++) m->slot[k] = -1, m->pool[k] = mrec_clip_pool_position(in->ids + k * in->T, in->T, tc->eos_token_id);
    if (in->mask) memcpy(m->mask, in->mask, ni * (size_t)in->T * 4);
    /* on the device: the parameters, the kept states (items x (tokens x hidden) floats per tower), the towers' gradients and moments */
    int64_t tower_weights = 0;
    if (o->blocks) {
        /* counted first (the gradients' place is known once carved), listed again below */
        tower_tensors(m, &clip->vision, clip->vision.storage, m->first_v);
        tower_tensors(m, &clip->text, clip->text.storage, m->first_t);
        for (int t = 0; t < m->n_tensors; t++) tower_weights += m->tensor[t].n;
        m->n_tensors = 0;
    }
    mrec_arena measure = mrec_arena_measure();
    carve(m, &measure, tower_weights);
    if ((st = mrec_arena_reserve(&m->mem, measure.peak, ctx->device, ctx->cuda))) {
        free(host), clip_e2e_destroy(m);
        return st;
    }
    carve(m, &m->mem, tower_weights);
    if (o->blocks) {
        tower_tensors(m, &clip->vision, m->vgrad, m->first_v);
        tower_tensors(m, &clip->text, m->tgrad, m->first_t);
        float *at = m->moments;
        for (int t = 0; t < m->n_tensors; t++) m->tensor[t].m = at, m->tensor[t].v = at + m->tensor[t].n, at += 2 * m->tensor[t].n;
        for (int t = 0; t < m->n_tensors; t++) m->array[t] = m->tensor[t].param, m->array_n[t] = m->tensor[t].n;
        m->array[m->n_tensors] = m->moments, m->array_n[m->n_tensors] = 2 * tower_weights;
        st = zeros(ctx, m->vgrad, (size_t)clip->vision.floats);
        if (!st) st = zeros(ctx, m->tgrad, (size_t)clip->text.floats);
        if (!st) st = zeros(ctx, m->moments, 2 * (size_t)tower_weights);
    }
    /* U xavier-uniform, W xavier-normal, b zero (VBPR's initializations), drawn on the host */
    double bu = sqrt(6.0 / (n_users + o->dim)), sw = sqrt(2.0 / (2 * m->D + o->dim));
    for (size_t k = 0; k < nu; k++) host[k] = (float)(bu * (2 * mrec_rng_uniform(rng) - 1));
    if (!st) st = mrec_copy_to_device(ctx, m->user, host, sizeof(float) * nu);
    for (size_t k = 0; k < nw; k++) host[k] = (float)(sw * mrec_rng_normal(rng));
    if (!st) st = mrec_copy_to_device(ctx, m->w, host, sizeof(float) * nw);
    free(host);
    if (!st) st = zeros(ctx, m->b, (size_t)o->dim);
    if (!st) st = zeros(ctx, m->user_grad, nu);
    if (!st) st = zeros(ctx, m->w_grad, nw);
    if (!st) st = zeros(ctx, m->b_grad, (size_t)o->dim);
    if (!st) st = ensure_batch(m, o->max_batch > 0 ? o->max_batch : 64);
    if (!st) st = run_frozen(m, in);
    if (st) {
        clip_e2e_destroy(m);
        return st;
    }
    out->name = "CLIP-E2E", out->self = m, out->n_params = 3;
    out->state[0] = &m->step, out->n_state = 1; /* for a checkpoint, with the towers' weights and moments */
    out->array = m->array, out->array_size = m->array_n, out->n_arrays = o->blocks ? m->n_tensors + 1 : 0;
    out->param[0] = m->user, out->grad[0] = m->user_grad, out->size[0] = (int64_t)nu;
    out->param[1] = m->w, out->grad[1] = m->w_grad, out->size[1] = (int64_t)nw;
    out->param[2] = m->b, out->grad[2] = m->b_grad, out->size[2] = o->dim;
    out->status = &m->status;
    out->loss_grad = clip_e2e_loss_grad, out->step = clip_e2e_step, out->prepare = clip_e2e_prepare, out->score = clip_e2e_score, out->destroy = clip_e2e_destroy;
    out->embed_dim = o->dim, out->embeddings = clip_e2e_embeddings;
    return MREC_OK;
}

void mrec_clip_e2e_tower_grads(const mrec_model *model, const float **vision, const float **text) {
    const clip_e2e *m = model->self;
    *vision = m->vgrad, *text = m->tgrad;
}
