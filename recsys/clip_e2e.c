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
 * Scoring recomputes every item's vector once per evaluation (prepare). Host
 * arrays only: the model runs on a CPU context (the towers' ops would run on
 * a GPU, the BPR part is host loops).
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
    /* the trainer's parameters */
    float *user, *w, *b;            /* (n_users, dim), (dim, 2D), (dim) */
    float *user_grad, *w_grad, *b_grad;
    /* what the frozen part gave, per item */
    float *hid_v, *hid_t;           /* (n_items, Tv, Hv), (n_items, T, Ht); blocks = 0: NULL */
    float *emb;                     /* blocks = 0: (n_items, 2D) the embeddings */
    int32_t *pool, *mask;           /* (n_items) the texts' pooled tokens, (n_items, T) their masks or NULL */
    /* the towers' optimizer */
    float *vgrad, *tgrad;           /* the towers' storage layout */
    mrec_param_tensor *tensor;      /* the trainable ones */
    int n_tensors;
    float *moments;
    mrec_adamw_options adamw;
    int64_t step;
    /* a batch, for up to cap distinct items */
    int cap;
    int32_t *slot, *items, *row;    /* (n_items) an item's slot or -1, (cap) the distinct items, (2 batch) each row's slot */
    float *bv, *bt, *E, *Z, *dZ, *dE, *dv, *dt; /* (cap, Tv Hv), (cap, T Ht), (cap, 2D), (cap, dim) x 2, (cap, 2D), (cap, D) x 2 */
    int32_t *bpool, *bmask;         /* (cap), (cap, T) */
    float *pos, *neg, *dx;          /* (batch) */
    void *work_v, *work_t;
    size_t work_v_bytes, work_t_bytes;
    float *all;                     /* (n_items, dim) for scoring */
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

/* Room for batches of up to n triples (2n distinct items at most), grown when a batch is larger than any before. */
static mrec_status ensure_batch(clip_e2e *m, int n) {
    int cap = 2 * n;
    if (cap <= m->cap) return MREC_OK;
    size_t c = (size_t)cap, D = (size_t)m->D, d = (size_t)m->dim, T = (size_t)m->T;
    free(m->items), free(m->row), free(m->E), free(m->Z), free(m->dZ), free(m->dE), free(m->dv), free(m->dt);
    free(m->bv), free(m->bt), free(m->bpool), free(m->bmask), free(m->pos), free(m->neg), free(m->dx), free(m->work_v), free(m->work_t);
    m->bv = m->bt = NULL, m->bpool = m->bmask = NULL, m->work_v = m->work_t = NULL, m->cap = 0;
    m->items = malloc(c * 4), m->row = malloc(c * 4);
    m->E = malloc(c * 2 * D * 4), m->dE = malloc(c * 2 * D * 4), m->Z = malloc(c * d * 4), m->dZ = malloc(c * d * 4);
    m->dv = malloc(c * D * 4), m->dt = malloc(c * D * 4);
    m->pos = malloc((size_t)n * 4), m->neg = malloc((size_t)n * 4), m->dx = malloc((size_t)n * 4);
    int ok = m->items && m->row && m->E && m->dE && m->Z && m->dZ && m->dv && m->dt && m->pos && m->neg && m->dx;
    if (ok && m->blocks) {
        /* the top runs in chunks of at most 1024 inputs (mrec_clip_tower_top_forward's bound) */
        int chunk = cap < 1024 ? cap : 1024;
        m->bv = malloc(c * (size_t)m->Tv * m->Hv * 4), m->bt = malloc(c * T * (size_t)m->Ht * 4);
        m->bpool = malloc(c * 4), m->bmask = malloc(c * T * 4);
        m->work_v_bytes = mrec_clip_tower_top_workspace_bytes(m->ctx, m->clip, MREC_CLIP_VISION, chunk, m->T, m->first_v);
        m->work_t_bytes = mrec_clip_tower_top_workspace_bytes(m->ctx, m->clip, MREC_CLIP_TEXT, chunk, m->T, m->first_t);
        m->work_v = malloc(m->work_v_bytes), m->work_t = malloc(m->work_t_bytes);
        ok = m->bv && m->bt && m->bpool && m->bmask && m->work_v && m->work_t;
    }
    if (!ok) return mrec_fail(MREC_ERR_NOMEM, "clip-e2e: buffers for a batch of %d triples", n);
    m->cap = cap;
    return MREC_OK;
}

/* ---- the item vectors ---- */

/* The batch's distinct items' embeddings E (K, 2D) = [img ; txt], through the trainable tops; the
 * activations stay in the workspaces for the backward (K <= 1024 then). */
static mrec_status embed_items(clip_e2e *m, const int32_t *items, int K, float *E) {
    int D = m->D, T = m->T;
    if (!m->blocks) {
        for (int k = 0; k < K; k++) memcpy(E + (size_t)k * 2 * D, m->emb + (size_t)items[k] * 2 * D, sizeof(float) * 2 * (size_t)D);
        return MREC_OK;
    }
    size_t sv = (size_t)m->Tv * m->Hv, stt = (size_t)T * m->Ht;
    for (int k = 0; k < K; k++) {
        int it = items[k];
        memcpy(m->bv + k * sv, m->hid_v + (size_t)it * sv, sizeof(float) * sv);
        memcpy(m->bt + k * stt, m->hid_t + (size_t)it * stt, sizeof(float) * stt);
        m->bpool[k] = m->pool[it];
        if (m->mask) memcpy(m->bmask + (size_t)k * T, m->mask + (size_t)it * T, sizeof(int32_t) * (size_t)T);
    }
    mrec_status st = mrec_clip_tower_top_forward(m->ctx, m->clip, MREC_CLIP_VISION, m->bv, NULL, NULL, K, T, m->first_v, m->dv,
                                                 m->work_v, m->work_v_bytes);
    if (!st) st = mrec_clip_tower_top_forward(m->ctx, m->clip, MREC_CLIP_TEXT, m->bt, m->bpool, m->mask ? m->bmask : NULL, K, T,
                                              m->first_t, m->dt, m->work_t, m->work_t_bytes);
    for (int k = 0; k < K && !st; k++) {
        memcpy(E + (size_t)k * 2 * D, m->dv + (size_t)k * D, sizeof(float) * (size_t)D);
        memcpy(E + (size_t)k * 2 * D + D, m->dt + (size_t)k * D, sizeof(float) * (size_t)D);
    }
    return st;
}

/* Z (K, dim) = E W^T + b */
static mrec_status fuse(clip_e2e *m, float *Z, const float *E, int K) {
    int D2 = 2 * m->D;
    return mrec_gemm(m->ctx, Z, E, m->w, m->b, 1, 0, 0, 1, K, m->dim, D2, D2, D2, m->dim);
}

/* ---- a batch ---- */

static mrec_status batch_loss_grad(clip_e2e *m, double *loss_out, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    int d = m->dim, D = m->D, D2 = 2 * D;
    mrec_status st = ensure_batch(m, n);
    if (st) return st;
    for (int r = 0; r < n; r++) {
        if (u[r] < 0 || u[r] >= m->n_users) return mrec_fail(MREC_ERR_ARG, "clip-e2e: user %d of %d", u[r], m->n_users);
        if (i[r] < 0 || i[r] >= m->n_items || j[r] < 0 || j[r] >= m->n_items)
            return mrec_fail(MREC_ERR_ARG, "clip-e2e: items %d and %d of %d", i[r], j[r], m->n_items);
    }
    /* the distinct items, in first-seen order; row r < n the positive of triple r, n + r its negative */
    int K = 0;
    for (int r = 0; r < 2 * n; r++) {
        int it = r < n ? i[r] : j[r - n];
        if (m->slot[it] < 0) m->slot[it] = K, m->items[K++] = it;
        m->row[r] = m->slot[it];
    }
    for (int k = 0; k < K; k++) m->slot[m->items[k]] = -1;
    if (K > 1024) return mrec_fail(MREC_ERR_SHAPE, "clip-e2e: %d distinct items in a batch (at most 1024)", K);
    if ((st = embed_items(m, m->items, K, m->E)) || (st = fuse(m, m->Z, m->E, K))) return st;

    /* scores, the BPR loss, EmbLoss over the batch's user rows and item rows (each row as often as it appears) */
    double su = 0, sp = 0, sn = 0;
    for (int r = 0; r < n; r++) {
        const float *eu = m->user + (size_t)u[r] * d, *zi = m->Z + (size_t)m->row[r] * d, *zj = m->Z + (size_t)m->row[n + r] * d;
        double p = 0, q = 0;
        for (int k = 0; k < d; k++) {
            p += (double)eu[k] * zi[k], q += (double)eu[k] * zj[k];
            su += (double)eu[k] * eu[k], sp += (double)zi[k] * zi[k], sn += (double)zj[k] * zj[k];
        }
        m->pos[r] = (float)p, m->neg[r] = (float)q;
    }
    double loss = mrec_bpr_loss(m->dx, m->pos, m->neg, n), nu = sqrt(su), np_ = sqrt(sp), nn = sqrt(sn);
    *loss_out = loss + m->reg * (nu + np_ + nn) / n;
    /* d|X|_F / dX = X / |X|_F */
    float cu = nu > 0 ? (float)(m->reg / n / nu) : 0, ci = np_ > 0 ? (float)(m->reg / n / np_) : 0, cj = nn > 0 ? (float)(m->reg / n / nn) : 0;
    memset(m->user_grad, 0, sizeof(float) * (size_t)m->n_users * d);
    memset(m->dZ, 0, sizeof(float) * (size_t)K * d);
    for (int r = 0; r < n; r++) {
        const float *eu = m->user + (size_t)u[r] * d, *zi = m->Z + (size_t)m->row[r] * d, *zj = m->Z + (size_t)m->row[n + r] * d;
        float *gu = m->user_grad + (size_t)u[r] * d, *gi = m->dZ + (size_t)m->row[r] * d, *gj = m->dZ + (size_t)m->row[n + r] * d, g = m->dx[r];
        for (int k = 0; k < d; k++) {
            gu[k] += g * (zi[k] - zj[k]) + cu * eu[k];
            gi[k] += g * eu[k] + ci * zi[k];
            gj[k] += -g * eu[k] + cj * zj[k];
        }
    }
    /* the fusion's gradients: W (dim, 2D) = dZ^T E, b = the column sums of dZ; E's = dZ W */
    if ((st = mrec_gemm(m->ctx, m->w_grad, m->dZ, m->E, NULL, 1, 0, 1, 0, d, D2, K, d, D2, D2))) return st;
    memset(m->b_grad, 0, sizeof(float) * (size_t)d);
    for (int k = 0; k < K; k++)
        for (int c = 0; c < d; c++) m->b_grad[c] += m->dZ[(size_t)k * d + c];
    if (!m->blocks) return MREC_OK;

    /* into the towers: their unit embeddings' gradients, back through the trainable tops, then AdamW */
    if ((st = mrec_gemm(m->ctx, m->dE, m->dZ, m->w, NULL, 1, 0, 0, 0, K, D2, d, d, D2, D2))) return st;
    for (int k = 0; k < K; k++) {
        memcpy(m->dv + (size_t)k * D, m->dE + (size_t)k * D2, sizeof(float) * (size_t)D);
        memcpy(m->dt + (size_t)k * D, m->dE + (size_t)k * D2 + D, sizeof(float) * (size_t)D);
    }
    for (int t = 0; t < m->n_tensors; t++) memset(m->tensor[t].grad, 0, sizeof(float) * (size_t)m->tensor[t].n);
    st = mrec_clip_tower_top_backward(m->ctx, m->clip, MREC_CLIP_VISION, m->dv, K, m->T, m->first_v, m->vgrad, m->work_v, m->work_v_bytes);
    if (!st) st = mrec_clip_tower_top_backward(m->ctx, m->clip, MREC_CLIP_TEXT, m->dt, K, m->T, m->first_t, m->tgrad, m->work_t, m->work_t_bytes);
    if (!st) st = mrec_adamw_step(m->ctx, m->tensor, m->n_tensors, &m->adamw, m->adamw.lr, ++m->step);
    return st;
}

static double clip_e2e_loss_grad(void *self, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    clip_e2e *m = self;
    double loss = NAN;
    m->status = batch_loss_grad(m, &loss, u, i, j, n);
    return m->status ? NAN : loss;
}

/* Every item's vector, in chunks of the batch buffers' size. */
static mrec_status clip_e2e_prepare(void *self) {
    clip_e2e *m = self;
    mrec_status st = m->cap ? MREC_OK : ensure_batch(m, 64);
    int chunk = m->cap < 1024 ? m->cap : 1024;
    for (int i0 = 0; i0 < m->n_items && !st; i0 += chunk) {
        int K = m->n_items - i0 < chunk ? m->n_items - i0 : chunk;
        for (int k = 0; k < K; k++) m->items[k] = i0 + k;
        st = embed_items(m, m->items, K, m->E);
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
    memcpy(users, m->user, sizeof(float) * (size_t)m->n_users * m->dim);
    memcpy(items, m->all, sizeof(float) * (size_t)m->n_items * m->dim);
    return MREC_OK;
}

static void clip_e2e_destroy(void *self) {
    clip_e2e *m = self;
    free(m->user), free(m->w), free(m->b), free(m->user_grad), free(m->w_grad), free(m->b_grad);
    free(m->hid_v), free(m->hid_t), free(m->emb), free(m->pool), free(m->mask);
    free(m->vgrad), free(m->tgrad), free(m->tensor), free(m->moments);
    free(m->slot), free(m->items), free(m->row), free(m->E), free(m->Z), free(m->dZ), free(m->dE), free(m->dv), free(m->dt);
    free(m->bv), free(m->bt), free(m->bpool), free(m->bmask), free(m->pos), free(m->neg), free(m->dx), free(m->work_v), free(m->work_t);
    free(m->all);
    free(m);
}

/* ---- creation: the frozen part, once ---- */

/* Every item through the frozen bottom of both towers: the hidden states entering the first trainable
 * blocks, or with blocks = 0 the whole towers' embeddings (the same ops, from block `layers`). */
static mrec_status run_frozen(clip_e2e *m, const mrec_clip_items *in) {
    const mrec_clip_tower_config *vc = &m->clip->vision.cfg;
    int T = m->T, C = MREC_CLIP_CHUNK, D = m->D;
    int fv = m->blocks ? m->first_v : vc->layers, ft = m->blocks ? m->first_t : m->clip->text.cfg.layers;
    size_t img = (size_t)vc->channels * vc->image_size * vc->image_size, sv = (size_t)m->Tv * m->Hv, stt = (size_t)T * m->Ht;
    size_t hb = mrec_clip_tower_hidden_workspace_bytes(m->ctx, m->clip, MREC_CLIP_VISION, C, T, fv);
    size_t hb2 = mrec_clip_tower_hidden_workspace_bytes(m->ctx, m->clip, MREC_CLIP_TEXT, C, T, ft);
    size_t tb = m->blocks ? 0 : mrec_clip_tower_top_workspace_bytes(m->ctx, m->clip, MREC_CLIP_VISION, C, T, fv);
    size_t tb2 = m->blocks ? 0 : mrec_clip_tower_top_workspace_bytes(m->ctx, m->clip, MREC_CLIP_TEXT, C, T, ft);
    size_t wb = hb > hb2 ? hb : hb2;
    wb = wb > tb ? wb : tb, wb = wb > tb2 ? wb : tb2;
    void *work = malloc(wb);
    float *hv = m->blocks ? NULL : malloc(sizeof(float) * C * sv), *ht = m->blocks ? NULL : malloc(sizeof(float) * C * stt);
    float *e = m->blocks ? NULL : malloc(sizeof(float) * C * D);
    mrec_status st = work && (m->blocks || (hv && ht && e)) ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "clip-e2e: the towers' workspace");
    for (int i0 = 0; i0 < m->n_items && !st; i0 += C) {
        int B = m->n_items - i0 < C ? m->n_items - i0 : C;
        const int32_t *mask = in->mask ? in->mask + (size_t)i0 * T : NULL;
        float *to_v = m->blocks ? m->hid_v + i0 * sv : hv, *to_t = m->blocks ? m->hid_t + i0 * stt : ht;
        st = mrec_clip_tower_hidden(m->ctx, m->clip, MREC_CLIP_VISION, in->images + i0 * img, NULL, NULL, B, T, fv, to_v, work, wb);
        if (!st) st = mrec_clip_tower_hidden(m->ctx, m->clip, MREC_CLIP_TEXT, NULL, in->ids + (size_t)i0 * T, mask, B, T, ft, to_t, work, wb);
        if (st || m->blocks) continue;
        /* frozen towers: the heads once, kept as features */
        for (int k = 0; k < 2 && !st; k++) {
            st = k ? mrec_clip_tower_top_forward(m->ctx, m->clip, MREC_CLIP_TEXT, ht, m->pool + i0, mask, B, T, ft, e, work, wb)
                   : mrec_clip_tower_top_forward(m->ctx, m->clip, MREC_CLIP_VISION, hv, NULL, NULL, B, T, fv, e, work, wb);
            for (int b = 0; b < B && !st; b++) memcpy(m->emb + ((size_t)(i0 + b) * 2 + k) * D, e + (size_t)b * D, sizeof(float) * (size_t)D);
        }
    }
    free(work), free(hv), free(ht), free(e);
    return st;
}

mrec_status mrec_clip_e2e_create(mrec_model *out, int n_users, const mrec_clip_items *in, const mrec_clip_e2e_options *o,
                                 mrec_rng *rng, mrec_context *ctx) {
    memset(out, 0, sizeof *out);
    mrec_status st = mrec_recsys_host_only(ctx, "clip-e2e");
    if (st) return st;
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
    clip_e2e *m = calloc(1, sizeof *m);
    if (!m) return mrec_fail(MREC_ERR_NOMEM, "clip-e2e");
    int G = vc->image_size / vc->patch_size;
    m->ctx = ctx, m->clip = clip, m->n_users = n_users, m->n_items = in->n_items, m->dim = o->dim, m->D = clip->projection_dim;
    m->T = in->T, m->blocks = o->blocks, m->reg = o->reg, m->first_v = vc->layers - o->blocks, m->first_t = tc->layers - o->blocks;
    m->Tv = 1 + G * G, m->Hv = vc->hidden, m->Ht = tc->hidden;
    m->adamw = (mrec_adamw_options){o->tower_lr, 0.9, 0.999, 1e-8, o->tower_decay};
    size_t nu = (size_t)n_users * o->dim, nw = (size_t)o->dim * 2 * m->D, ni = (size_t)in->n_items;
    m->user = malloc(nu * 4), m->w = malloc(nw * 4), m->b = calloc((size_t)o->dim, 4);
    m->user_grad = calloc(nu, 4), m->w_grad = calloc(nw, 4), m->b_grad = calloc((size_t)o->dim, 4);
    m->pool = malloc(ni * 4), m->slot = malloc(ni * 4), m->all = malloc(ni * (size_t)o->dim * 4);
    if (in->mask) m->mask = malloc(ni * (size_t)in->T * 4);
    int ok = m->user && m->w && m->b && m->user_grad && m->w_grad && m->b_grad && m->pool && m->slot && m->all && (!in->mask || m->mask);
    if (ok && o->blocks) {
        m->hid_v = malloc(ni * m->Tv * m->Hv * 4), m->hid_t = malloc(ni * in->T * m->Ht * 4);
        m->vgrad = calloc((size_t)clip->vision.floats, 4), m->tgrad = calloc((size_t)clip->text.floats, 4);
        m->tensor = calloc((size_t)o->blocks * 32 + 6, sizeof *m->tensor);
        ok = m->hid_v && m->hid_t && m->vgrad && m->tgrad && m->tensor;
    } else if (ok) {
        ok = (m->emb = malloc(ni * 2 * m->D * 4)) != NULL;
    }
    if (!ok) {
        clip_e2e_destroy(m);
        return mrec_fail(MREC_ERR_NOMEM, "clip-e2e: %d users, %d items (the towers' kept states)", n_users, in->n_items);
    }
    for (size_t k = 0; k < ni; k++) m->slot[k] = -1, m->pool[k] = mrec_clip_pool_position(in->ids + k * in->T, in->T, tc->eos_token_id);
    if (in->mask) memcpy(m->mask, in->mask, ni * (size_t)in->T * 4);
    if (o->blocks) {
        tower_tensors(m, &clip->vision, m->vgrad, m->first_v);
        tower_tensors(m, &clip->text, m->tgrad, m->first_t);
        int64_t total = 0;
        for (int t = 0; t < m->n_tensors; t++) total += m->tensor[t].n;
        if (!(m->moments = calloc(2 * (size_t)total, 4))) {
            clip_e2e_destroy(m);
            return mrec_fail(MREC_ERR_NOMEM, "clip-e2e: AdamW's moments for %lld weights", (long long)total);
        }
        float *at = m->moments;
        for (int t = 0; t < m->n_tensors; t++) m->tensor[t].m = at, m->tensor[t].v = at + m->tensor[t].n, at += 2 * m->tensor[t].n;
    }
    /* U xavier-uniform, W xavier-normal, b zero (VBPR's initializations) */
    double bu = sqrt(6.0 / (n_users + o->dim)), sw = sqrt(2.0 / (2 * m->D + o->dim));
    for (size_t k = 0; k < nu; k++) m->user[k] = (float)(bu * (2 * mrec_rng_uniform(rng) - 1));
    for (size_t k = 0; k < nw; k++) m->w[k] = (float)(sw * mrec_rng_normal(rng));
    if ((st = ensure_batch(m, o->max_batch > 0 ? o->max_batch : 64)) || (st = run_frozen(m, in))) {
        clip_e2e_destroy(m);
        return st;
    }
    out->name = "CLIP-E2E", out->self = m, out->n_params = 3;
    out->param[0] = m->user, out->grad[0] = m->user_grad, out->size[0] = (int64_t)nu;
    out->param[1] = m->w, out->grad[1] = m->w_grad, out->size[1] = (int64_t)nw;
    out->param[2] = m->b, out->grad[2] = m->b_grad, out->size[2] = o->dim;
    out->status = &m->status;
    out->loss_grad = clip_e2e_loss_grad, out->prepare = clip_e2e_prepare, out->score = clip_e2e_score, out->destroy = clip_e2e_destroy;
    out->embed_dim = o->dim, out->embeddings = clip_e2e_embeddings;
    return MREC_OK;
}

void mrec_clip_e2e_tower_grads(const mrec_model *model, const float **vision, const float **text) {
    const clip_e2e *m = model->self;
    *vision = m->vgrad, *text = m->tgrad;
}
