/* clip_train.c: the backward pass of CLIP, both towers and the contrastive
 * loss, composed from the op entries. It reads top to bottom as the forward
 * does (nn/clip.c), keeping what the backward reads, then the same steps in
 * reverse:
 *
 *   vision: x0 = [cls; patches Wp^T] + pos; x = pre_LN(x0); layers;
 *           pooled = post_LN(x[:, 0]); e = pooled Wproj^T; e /= |e|
 *   text:   x = tok[ids] + pos; layers (causal + padding masks);
 *           pooled = final_LN(x[:, eos]); e = pooled Wproj^T; e /= |e|
 *   loss:   logits = exp(s) e_img e_txt^T, cross-entropy of rows and columns
 *   layer:  x1 = x + Wo attn(LN1 x) + bo;  out = x1 + W2 act(W1 LN2 x1 + b1) + b2
 *
 * Parameter gradients accumulate (+=) into buffers laid out as the towers'
 * storage; input gradients are carved from the workspace. Attention's
 * probabilities are recomputed in its backward (mrec_attention_back), so a
 * layer keeps 8 (B T, H) and 2 (B T, I) activations and two LayerNorms'
 * statistics. Reference: transformers' models/clip/modeling_clip.py and
 * PyTorch's autograd, which tests/test_clip_train.c compares against.
 */
#include "mrec_clip_train.h"
#include "mrec_safetensors.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* The gradient of a weight: the same offset in the gradient buffer as the weight in the tower's storage. */
#define GRAD(tw, g, w) ((g) + ((w) - (tw)->storage))

/* What one layer keeps from its forward for its backward. */
typedef struct {
    float *x, *h1, *q, *k, *v, *a, *x1, *h2, *pre, *f; /* x: the layer's input (BT, H); pre, f: (BT, I) */
    float *m1, *r1, *m2, *r2;                          /* LayerNorm statistics (BT) */
} layer_acts;

typedef struct {
    int B, T, H, I, heads, D;
    int first, last;                    /* the blocks run forward: [first, last) */
    layer_acts *layer;                  /* last - first + 1: block first's at [0], the last one's x is the stack's output */
    float *x0, *m0, *r0;                /* vision: before pre_layrnorm, and its statistics */
    float *images, *patches;            /* vision */
    int32_t *ids, *mask, *pos, *rows;   /* text inputs and position ids; both: the pooled rows */
    int64_t *tok_ptr, *pos_ptr;         /* text: the batch's index of ids and of positions */
    int32_t *tok_at, *pos_at;
    void *index_work;                   /* mrec_index_csr's workspace */
    size_t index_bytes;
    float *mask_bias, *causal;          /* text */
    float *hp, *mp, *rp, *pooled, *e, *en; /* the pooled rows (B, H), post LN statistics, projection (B, D), normalized */
    float *de_raw;                      /* the gradient of the projection before the norm (B, D) */
    float *dx, *dh, *dq, *dk, *dv, *da, *df, *dpool, *de; /* gradients of the activations */
    void *att_work;
} tower_acts;

typedef struct {
    tower_acts img, txt;
    float *logits, *dlogits, *de_img, *de_txt;
    double *loss_out, *loss_work;
} step_acts;

static void *take(mrec_arena *a, size_t bytes, int *short_of) {
    if (!bytes) return NULL;
    void *p = mrec_arena_alloc(a, bytes);
    if (!p && a->base) *short_of = 1;
    return p;
}

/* One carving for measuring and for use: a measuring arena returns NULL and counts. embeds: the tower's
 * embedding stage runs here (its inputs, and the text's index for its backward); a top from a block does not. */
static int carve_tower(mrec_arena *a, tower_acts *t, const mrec_context *ctx, const mrec_clip_tower *tw, int vision, int embeds,
                       int B, int T, int D) {
    const mrec_clip_tower_config *c = &tw->cfg;
    int short_of = 0, H = c->hidden, I = c->intermediate, G = vision ? c->image_size / c->patch_size : 0;
    size_t BT = (size_t)B * T, f = sizeof(float);
    memset(t, 0, sizeof *t);
    t->B = B, t->T = T, t->H = H, t->I = I, t->heads = c->heads, t->D = D;
    if (vision && embeds) {
        t->x0 = take(a, BT * H * f, &short_of), t->m0 = take(a, BT * f, &short_of), t->r0 = take(a, BT * f, &short_of);
        t->images = take(a, (size_t)B * c->channels * c->image_size * c->image_size * f, &short_of);
        t->patches = take(a, (size_t)B * G * G * c->channels * c->patch_size * c->patch_size * f, &short_of);
    } else if (!vision) {
        t->mask = take(a, BT * 4, &short_of);
        t->mask_bias = take(a, BT * f, &short_of), t->causal = take(a, (size_t)c->heads * T * T * f, &short_of);
    }
    if (!vision && embeds) {
        t->ids = take(a, BT * 4, &short_of), t->pos = take(a, BT * 4, &short_of);
        t->tok_ptr = take(a, ((size_t)c->vocab_size + 1) * 8, &short_of), t->tok_at = take(a, BT * 4, &short_of);
        t->pos_ptr = take(a, ((size_t)c->max_positions + 1) * 8, &short_of), t->pos_at = take(a, BT * 4, &short_of);
        size_t b1 = 0, b2 = 0;
        mrec_index_csr_workspace_bytes(ctx, (int)BT, c->vocab_size, &b1);
        mrec_index_csr_workspace_bytes(ctx, (int)BT, c->max_positions, &b2);
        t->index_bytes = b1 > b2 ? b1 : b2;
        t->index_work = take(a, t->index_bytes, &short_of);
    }
    t->rows = take(a, (size_t)B * 4, &short_of);
    float **bh[] = {&t->hp, &t->pooled, &t->dpool};
    for (size_t i = 0; i < 3; i++) *bh[i] = take(a, (size_t)B * H * f, &short_of);
    t->mp = take(a, (size_t)B * f, &short_of), t->rp = take(a, (size_t)B * f, &short_of);
    float **bd[] = {&t->e, &t->en, &t->de, &t->de_raw};
    for (size_t i = 0; i < 4; i++) *bd[i] = take(a, (size_t)B * D * f, &short_of);
    float **g[] = {&t->dx, &t->dh, &t->dq, &t->dk, &t->dv, &t->da};
    for (size_t i = 0; i < 6; i++) *g[i] = take(a, BT * H * f, &short_of);
    t->df = take(a, BT * I * f, &short_of);
    size_t fw = mrec_attention_workspace_bytes(ctx, B, T, c->heads, H / c->heads),
           bw = mrec_attention_back_workspace_bytes(ctx, B, T, c->heads, H / c->heads);
    t->att_work = take(a, fw > bw ? fw : bw, &short_of);
    return short_of;
}

static int carve_layers(mrec_arena *a, layer_acts *L, int n, size_t BT, int H, int I) {
    int short_of = 0;
    size_t f = sizeof(float);
    for (int l = 0; l < n; l++) {
        float **bh[] = {&L[l].x, &L[l].h1, &L[l].q, &L[l].k, &L[l].v, &L[l].a, &L[l].x1, &L[l].h2};
        for (size_t i = 0; i < 8; i++) *bh[i] = take(a, BT * H * f, &short_of);
        L[l].pre = take(a, BT * I * f, &short_of), L[l].f = take(a, BT * I * f, &short_of);
        float **st[] = {&L[l].m1, &L[l].r1, &L[l].m2, &L[l].r2};
        for (size_t i = 0; i < 4; i++) *st[i] = take(a, BT * f, &short_of);
    }
    /* the output of the stack: only its x */
    L[n].x = take(a, BT * H * f, &short_of);
    return short_of;
}

static int carve_head(mrec_arena *a, step_acts *s, int B) {
    int short_of = 0;
    s->logits = take(a, (size_t)B * B * sizeof(float), &short_of), s->dlogits = take(a, (size_t)B * B * sizeof(float), &short_of);
    s->loss_out = take(a, 2 * sizeof(double), &short_of), s->loss_work = take(a, 3 * (size_t)B * sizeof(double), &short_of);
    return short_of;
}

#define MAX_LAYERS 64
#define MAX_BATCH 1024 /* pairs (or a tower's inputs) a step: their pooled rows' index lies on the stack */

/* Everything one step uses, in one order for measuring and for carving. Returns nonzero when a real arena is short. */
static int carve_all(mrec_arena *a, step_acts *s, layer_acts *vl, layer_acts *tl, const mrec_clip *m, int B, int T,
                     const mrec_context *ctx) {
    const mrec_clip_tower_config *vc = &m->vision.cfg, *tc = &m->text.cfg;
    int Tv = 1 + (vc->image_size / vc->patch_size) * (vc->image_size / vc->patch_size), short_of = 0;
    short_of |= carve_tower(a, &s->img, ctx, &m->vision, 1, 1, B, Tv, m->projection_dim);
    short_of |= carve_layers(a, vl, vc->layers, (size_t)B * Tv, vc->hidden, vc->intermediate);
    short_of |= carve_tower(a, &s->txt, ctx, &m->text, 0, 1, B, T, m->projection_dim);
    short_of |= carve_layers(a, tl, tc->layers, (size_t)B * T, tc->hidden, tc->intermediate);
    short_of |= carve_head(a, s, B);
    s->img.layer = vl, s->txt.layer = tl;
    s->img.last = vc->layers, s->txt.last = tc->layers; /* first = 0: the whole stack */
    return short_of;
}

size_t mrec_clip_train_workspace_bytes(const mrec_context *ctx, const mrec_clip *m, int B, int T) {
    if (m->vision.cfg.layers >= MAX_LAYERS || m->text.cfg.layers >= MAX_LAYERS) return 0;
    mrec_arena a = mrec_arena_measure();
    step_acts s;
    layer_acts vl[MAX_LAYERS], tl[MAX_LAYERS];
    carve_all(&a, &s, vl, tl, m, B, T, ctx);
    return a.peak;
}

/* ---- one layer, forward and backward ---- */

static mrec_status layer_forward(mrec_context *ctx, const mrec_vit_layer *W, layer_acts *L, float *out, const tower_acts *t,
                                 const mrec_clip_tower_config *c, const float *mask_bias, const float *causal) {
    int BT = t->B * t->T, H = t->H, I = t->I, dh = H / t->heads;
    float eps = c->layer_norm_eps;
    mrec_status st = mrec_layernorm_stats(ctx, L->m1, L->r1, L->x, eps, BT, H);
    if (!st) st = mrec_layernorm(ctx, L->h1, L->x, W->ln1_w, W->ln1_b, eps, BT, H);
    if (!st) st = mrec_gemm(ctx, L->q, L->h1, W->q_w, W->q_b, 1, 0, 0, 1, BT, H, H, H, H, H);
    if (!st) st = mrec_gemm(ctx, L->k, L->h1, W->k_w, W->k_b, 1, 0, 0, 1, BT, H, H, H, H, H);
    if (!st) st = mrec_gemm(ctx, L->v, L->h1, W->v_w, W->v_b, 1, 0, 0, 1, BT, H, H, H, H, H);
    if (!st) st = mrec_attention(ctx, L->a, L->q, L->k, L->v, mask_bias, causal, 1.0f / sqrtf((float)dh), t->B, t->T, t->heads, dh,
                                 t->att_work);
    if (!st) st = mrec_copy_rows(ctx, L->x1, H, L->x, H, BT, H); /* the residual */
    if (!st) st = mrec_gemm(ctx, L->x1, L->a, W->o_w, W->o_b, 1, 1, 0, 1, BT, H, H, H, H, H);
    if (!st) st = mrec_layernorm_stats(ctx, L->m2, L->r2, L->x1, eps, BT, H);
    if (!st) st = mrec_layernorm(ctx, L->h2, L->x1, W->ln2_w, W->ln2_b, eps, BT, H);
    if (!st) st = mrec_gemm(ctx, L->pre, L->h2, W->inter_w, W->inter_b, 1, 0, 0, 1, BT, I, H, H, H, I);
    if (!st) st = mrec_activation(ctx, L->f, L->pre, c->act, 0, (int64_t)BT * I);
    if (!st) st = mrec_copy_rows(ctx, out, H, L->x1, H, BT, H);
    if (!st) st = mrec_gemm(ctx, out, L->f, W->out_w, W->out_b, 1, 1, 0, 1, BT, H, I, I, I, H);
    return st;
}

/* t->dx (BT, H): the gradient of the layer's output in, of its input out (the residuals add in place) */
static mrec_status layer_backward(mrec_context *ctx, const mrec_clip_tower *tw, float *grad, const mrec_vit_layer *W,
                                  const layer_acts *L, const tower_acts *t, const float *mask_bias, const float *causal) {
    int BT = t->B * t->T, H = t->H, I = t->I, dh = H / t->heads;
    const int P = MREC_ACC_PARAMS, XP = MREC_ACC_DX | MREC_ACC_PARAMS;
    mrec_status st = mrec_linear_back(ctx, t->df, GRAD(tw, grad, W->out_w), GRAD(tw, grad, W->out_b), t->dx, L->f, W->out_w, P, BT, H, I);
    if (!st) st = mrec_activation_back(ctx, t->df, t->df, L->pre, tw->cfg.act, 0, (int64_t)BT * I);
    if (!st) st = mrec_linear_back(ctx, t->dh, GRAD(tw, grad, W->inter_w), GRAD(tw, grad, W->inter_b), t->df, L->h2, W->inter_w, P, BT, I, H);
    if (!st) st = mrec_layernorm_back(ctx, t->dx, GRAD(tw, grad, W->ln2_w), GRAD(tw, grad, W->ln2_b), t->dh, L->x1, L->m2, L->r2, W->ln2_w,
                                      XP, BT, H);
    if (!st) st = mrec_linear_back(ctx, t->da, GRAD(tw, grad, W->o_w), GRAD(tw, grad, W->o_b), t->dx, L->a, W->o_w, P, BT, H, H);
    if (!st) st = mrec_attention_back(ctx, t->dq, t->dk, t->dv, t->da, L->q, L->k, L->v, mask_bias, causal, 1.0f / sqrtf((float)dh),
                                      t->B, t->T, t->heads, dh, t->att_work);
    if (!st) st = mrec_linear_back(ctx, t->dh, GRAD(tw, grad, W->q_w), GRAD(tw, grad, W->q_b), t->dq, L->h1, W->q_w, P, BT, H, H);
    if (!st) st = mrec_linear_back(ctx, t->dh, GRAD(tw, grad, W->k_w), GRAD(tw, grad, W->k_b), t->dk, L->h1, W->k_w, XP, BT, H, H);
    if (!st) st = mrec_linear_back(ctx, t->dh, GRAD(tw, grad, W->v_w), GRAD(tw, grad, W->v_b), t->dv, L->h1, W->v_w, XP, BT, H, H);
    if (!st) st = mrec_layernorm_back(ctx, t->dx, GRAD(tw, grad, W->ln1_w), GRAD(tw, grad, W->ln1_b), t->dh, L->x, L->m1, L->r1, W->ln1_w,
                                      XP, BT, H);
    return st;
}

/* ---- the towers ---- */

/* blocks [t->first, t->last): layer[0].x in, layer[last - first].x out */
static mrec_status stack_forward(mrec_context *ctx, const mrec_clip_tower *tw, tower_acts *t, const float *mask_bias, const float *causal) {
    mrec_status st = MREC_OK;
    for (int l = t->first; l < t->last && !st; l++) {
        layer_acts *L = &t->layer[l - t->first];
        st = layer_forward(ctx, &tw->layer[l], L, L[1].x, t, &tw->cfg, mask_bias, causal);
    }
    return st;
}

/* the pooled rows of the stack's output -> LN -> projection -> unit rows */
static mrec_status head_forward(mrec_context *ctx, const mrec_clip_tower *tw, tower_acts *t, const int32_t *rows_host) {
    int B = t->B, H = t->H, D = t->D;
    float eps = tw->cfg.layer_norm_eps;
    const float *x = t->layer[t->last - t->first].x;
    /* the rows (checked by the caller) go up without a wait and are gathered in one launch, not one a row, with no
     * check read back (mrec_embedding_checked) */
    mrec_status st = mrec_copy_to_device_staged(ctx, t->rows, rows_host, sizeof(int32_t) * (size_t)B);
    if (!st) st = mrec_embedding_checked(ctx, t->hp, x, t->rows, B, B * t->T, H);
    if (!st) st = mrec_layernorm_stats(ctx, t->mp, t->rp, t->hp, eps, B, H);
    if (!st) st = mrec_layernorm(ctx, t->pooled, t->hp, tw->post_w, tw->post_b, eps, B, H);
    if (!st) st = mrec_gemm(ctx, t->e, t->pooled, tw->proj, NULL, 1, 0, 0, 1, B, D, H, H, H, D);
    if (!st) st = mrec_l2_normalize_rows(ctx, t->en, t->e, 0, B, D);
    return st;
}

/* t->de (B, D), the gradient of the unit rows -> t->dx (BT, H), the gradient of the stack's output */
static mrec_status head_backward(mrec_context *ctx, const mrec_clip_tower *tw, float *grad, tower_acts *t) {
    int B = t->B, H = t->H, D = t->D, BT = t->B * t->T;
    mrec_status st = mrec_l2_normalize_rows_back(ctx, t->de_raw, t->de, t->en, t->e, 0, 0, B, D);
    if (!st) st = mrec_linear_back(ctx, t->dpool, GRAD(tw, grad, tw->proj), NULL, t->de_raw, t->pooled, tw->proj, MREC_ACC_PARAMS, B, D, H);
    if (!st) st = mrec_layernorm_back(ctx, t->dh, GRAD(tw, grad, tw->post_w), GRAD(tw, grad, tw->post_b), t->dpool, t->hp, t->mp, t->rp,
                                      tw->post_w, MREC_ACC_PARAMS, B, H);
    /* dx = 0 except at the pooled rows: zeros as 0 times the stack's output, finite after a forward whose loss is
     * (a NaN there makes the loss NaN anyway) */
    if (!st) st = mrec_scale(ctx, t->dx, t->layer[t->last - t->first].x, 0.0f, (int64_t)BT * H);
    if (!st) st = mrec_gather_rows_back(ctx, t->dx, t->dh, t->rows, B, H);
    return st;
}

/* t->dx: the gradient of block last - 1's output in, of block first's input out */
static mrec_status stack_backward(mrec_context *ctx, const mrec_clip_tower *tw, float *grad, tower_acts *t, const float *mask_bias,
                                  const float *causal) {
    mrec_status st = MREC_OK;
    for (int l = t->last - 1; l >= t->first && !st; l--)
        st = layer_backward(ctx, tw, grad, &tw->layer[l], &t->layer[l - t->first], t, mask_bias, causal);
    return st;
}

/* The embeddings into t->layer[0].x: images (B, C, S, S) host for the vision tower (patches, class token,
 * positions, pre_layrnorm); ids and mask (B, T) host for the text one (tokens + positions; its attention
 * biases are set here too). */
static mrec_status embed_forward(mrec_context *ctx, const mrec_clip_tower *tw, int vision, tower_acts *t, const float *images,
                                 const int32_t *ids, const int32_t *mask) {
    const mrec_clip_tower_config *c = &tw->cfg;
    int B = t->B, T = t->T, H = t->H;
    mrec_status st = MREC_OK;
    if (vision) {
        int S = c->image_size, P = c->patch_size, N = (S / P) * (S / P), K = c->channels * P * P;
        st = mrec_copy_to_device(ctx, t->images, images, sizeof(float) * (size_t)B * c->channels * S * S);
        if (!st) st = mrec_patchify(ctx, t->patches, t->images, B, c->channels, S, P);
        for (int b = 0; b < B && !st; b++)
            st = mrec_gemm(ctx, t->x0 + ((size_t)b * T + 1) * H, t->patches + (size_t)b * N * K, tw->embed, NULL, 1, 0, 0, 1, N, H, K, K,
                           K, H);
        if (!st) st = mrec_class_embed(ctx, t->x0, tw->cls, tw->pos, B, T, H);
        if (!st) st = mrec_layernorm_stats(ctx, t->m0, t->r0, t->x0, c->layer_norm_eps, B * T, H);
        if (!st) st = mrec_layernorm(ctx, t->layer[0].x, t->x0, tw->pre_w, tw->pre_b, c->layer_norm_eps, B * T, H);
        return st;
    }
    size_t n_ids = sizeof(int32_t) * (size_t)B * T;
    st = mrec_copy_to_device(ctx, t->ids, ids, n_ids);
    if (!st && mask) st = mrec_copy_to_device(ctx, t->mask, mask, n_ids);
    if (!st) st = mrec_position_ids(ctx, t->pos, NULL, -1, B, T);
    if (!st) st = mrec_embedding_sum(ctx, t->layer[0].x, tw->embed, t->ids, NULL, NULL, tw->pos, t->pos, B * T, H);
    if (!st) st = mrec_mask_bias(ctx, t->mask_bias, mask ? t->mask : NULL, (int64_t)B * T);
    if (!st) st = mrec_causal_bias(ctx, t->causal, c->heads, T);
    return st;
}

/* The text tower's attention biases alone, for a forward that starts past the embeddings. */
static mrec_status text_biases(mrec_context *ctx, const mrec_clip_tower *tw, tower_acts *t, const int32_t *mask) {
    int64_t BT = (int64_t)t->B * t->T;
    mrec_status st = mask ? mrec_copy_to_device_staged(ctx, t->mask, mask, sizeof(int32_t) * (size_t)BT) : MREC_OK;
    if (!st) st = mrec_mask_bias(ctx, t->mask_bias, mask ? t->mask : NULL, BT);
    if (!st) st = mrec_causal_bias(ctx, t->causal, tw->cfg.heads, t->T);
    return st;
}

int mrec_clip_pool_position(const int32_t *ids, int T, int eos_token_id) {
    int best = 0;
    for (int t = 1; t < T; t++)
        if (eos_token_id == 2 ? ids[t] > ids[best] : ids[t] == eos_token_id && ids[best] != eos_token_id) best = t;
    return best;
}

mrec_status mrec_clip_train_grads(mrec_context *ctx, const mrec_clip *m, const float *images, const int32_t *ids,
                                  const int32_t *mask, int B, int T, float *vision_grad, float *text_grad, double *dlogit_scale,
                                  double *loss, void *work, size_t work_bytes) {
    if (m->towers != MREC_CLIP_BOTH) return mrec_fail(MREC_ERR_ARG, "clip training: both towers must be loaded");
    if (B < 1 || B > MAX_BATCH || T < 1 || T > m->text.cfg.max_positions)
        return mrec_fail(MREC_ERR_SHAPE, "clip training: %d pairs of %d tokens (1 to %d pairs, 1 to %d tokens)", B, T, MAX_BATCH,
                         m->text.cfg.max_positions);
    mrec_status st = mrec_weights_check(ctx, m->vision.on, "clip");
    if (!st) st = mrec_weights_check(ctx, m->text.on, "clip");
    if (st) return st;
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= m->text.cfg.vocab_size)
            return mrec_fail(MREC_ERR_ARG, "clip training: token %d at position %d is outside the vocabulary of %d", ids[i], i,
                             m->text.cfg.vocab_size);
    const mrec_clip_tower *vt = &m->vision, *tt = &m->text;
    const mrec_clip_tower_config *vc = &vt->cfg, *tc = &tt->cfg;
    int S = vc->image_size, P = vc->patch_size, G = S / P, N = G * G, Tv = 1 + N, K = vc->channels * P * P, D = m->projection_dim;
    if (vc->layers >= MAX_LAYERS || tc->layers >= MAX_LAYERS)
        return mrec_fail(MREC_ERR_UNSUPPORTED, "clip training: more than %d layers", MAX_LAYERS - 1);
    mrec_arena a = {.base = work, .capacity = work_bytes, .device = ctx->device};
    step_acts s;
    layer_acts vl[MAX_LAYERS], tl[MAX_LAYERS];
    if (!work || carve_all(&a, &s, vl, tl, m, B, T, ctx))
        return mrec_fail(MREC_ERR_NOMEM, "clip training: workspace of %zu bytes, %zu needed", work_bytes,
                         mrec_clip_train_workspace_bytes(ctx, m, B, T));
    tower_acts *vi = &s.img, *tx = &s.txt;
    int Hv = vc->hidden, Ht = tc->hidden;

    /* vision forward */
    int32_t rows[MAX_BATCH]; /* B <= MAX_BATCH, checked above */
    st = embed_forward(ctx, vt, 1, vi, images, NULL, NULL);
    if (!st) st = stack_forward(ctx, vt, vi, NULL, NULL);
    for (int b = 0; b < B; b++) rows[b] = b * Tv; /* the class tokens */
    if (!st) st = head_forward(ctx, vt, vi, rows);

    /* text forward */
    if (!st) st = embed_forward(ctx, tt, 0, tx, NULL, ids, mask);
    if (!st) st = stack_forward(ctx, tt, tx, tx->mask_bias, tx->causal);
    for (int b = 0; b < B; b++) rows[b] = b * T + mrec_clip_pool_position(ids + (size_t)b * T, T, tc->eos_token_id);
    if (!st) st = head_forward(ctx, tt, tx, rows);

    /* the loss: logits (images, texts) = e^s e_img e_txt^T */
    float scale = expf(m->logit_scale);
    double out[2] = {0, 0};
    if (!st) st = mrec_gemm(ctx, s.logits, vi->en, tx->en, NULL, scale, 0, 0, 1, B, B, D, D, D, B);
    if (!st) st = mrec_clip_loss(ctx, s.dlogits, s.loss_out, s.logits, B, s.loss_work);
    if (!st) st = mrec_copy_to_host(ctx, out, s.loss_out, sizeof out);
    if (st) return st;
    *loss = out[0];
    *dlogit_scale += out[1];
    st = mrec_gemm(ctx, vi->de, s.dlogits, tx->en, NULL, scale, 0, 0, 0, B, D, B, B, D, D);
    if (!st) st = mrec_gemm(ctx, tx->de, s.dlogits, vi->en, NULL, scale, 0, 1, 0, B, D, B, B, D, D);

    /* text backward */
    if (!st) st = head_backward(ctx, tt, text_grad, tx);
    if (!st) st = stack_backward(ctx, tt, text_grad, tx, tx->mask_bias, tx->causal);
    /* the ids were checked on the host above, the positions are 0 .. T - 1: indexed without reading a check back */
    if (!st) st = mrec_index_csr_prechecked(ctx, tx->tok_ptr, tx->tok_at, tx->ids, B * T, tc->vocab_size, tx->index_work, tx->index_bytes);
    if (!st) st = mrec_embedding_back(ctx, GRAD(tt, text_grad, tt->embed), tx->dx, tx->tok_ptr, tx->tok_at, tc->vocab_size, Ht);
    if (!st) st = mrec_index_csr_prechecked(ctx, tx->pos_ptr, tx->pos_at, tx->pos, B * T, tc->max_positions, tx->index_work, tx->index_bytes);
    if (!st) st = mrec_embedding_back(ctx, GRAD(tt, text_grad, tt->pos), tx->dx, tx->pos_ptr, tx->pos_at, tc->max_positions, Ht);

    /* vision backward */
    if (!st) st = head_backward(ctx, vt, vision_grad, vi);
    if (!st) st = stack_backward(ctx, vt, vision_grad, vi, NULL, NULL);
    /* pre_layrnorm is not on a residual path: its input gradient is fresh */
    if (!st) st = mrec_layernorm_back(ctx, vi->dh, GRAD(vt, vision_grad, vt->pre_w), GRAD(vt, vision_grad, vt->pre_b), vi->dx, vi->x0,
                                      vi->m0, vi->r0, vt->pre_w, MREC_ACC_PARAMS, B * Tv, Hv);
    if (!st) st = mrec_class_embed_back(ctx, GRAD(vt, vision_grad, vt->cls), GRAD(vt, vision_grad, vt->pos), vi->dh, B, Tv, Hv);
    for (int b = 0; b < B && !st; b++)
        st = mrec_linear_back(ctx, NULL, GRAD(vt, vision_grad, vt->embed), NULL, vi->dh + ((size_t)b * Tv + 1) * Hv,
                              vi->patches + (size_t)b * N * K, vt->embed, MREC_ACC_PARAMS, N, Hv, K);
    return st;
}

/* ---- one tower from a given block: the frozen bottom once, the trainable top per step ---- */

/* One tower's carving for blocks [first, last) over B inputs (T tokens; the vision tower's own count); embeds as
 * in carve_tower (the frozen bottom embeds, the trainable top starts from its hidden states). */
static int carve_one(mrec_arena *a, tower_acts *t, layer_acts *L, const mrec_context *ctx, const mrec_clip *m, int vision, int embeds,
                     int B, int T, int first, int last) {
    const mrec_clip_tower *tw = vision ? &m->vision : &m->text;
    int short_of = carve_tower(a, t, ctx, tw, vision, embeds, B, T, m->projection_dim);
    short_of |= carve_layers(a, L, last - first, (size_t)B * T, tw->cfg.hidden, tw->cfg.intermediate);
    t->layer = L, t->first = first, t->last = last;
    return short_of;
}

/* The tower's token count: the vision tower's from its config, the text tower's as given. */
static int tokens_of(const mrec_clip *m, int vision, int T) {
    int G = m->vision.cfg.image_size / m->vision.cfg.patch_size;
    return vision ? 1 + G * G : T;
}

/* Arguments every tower entry checks; *tw the tower. */
static mrec_status tower_args(mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, int B, int T, int first,
                              const mrec_clip_tower **tw) {
    if (tower != MREC_CLIP_VISION && tower != MREC_CLIP_TEXT) return mrec_fail(MREC_ERR_ARG, "clip tower: vision or text, one at a time");
    if (!(m->towers & tower)) return mrec_fail(MREC_ERR_ARG, "clip tower: the %s tower is not loaded", tower == MREC_CLIP_VISION ? "vision" : "text");
    *tw = tower == MREC_CLIP_VISION ? &m->vision : &m->text;
    const mrec_clip_tower_config *c = &(*tw)->cfg;
    if (c->layers >= MAX_LAYERS) return mrec_fail(MREC_ERR_UNSUPPORTED, "clip tower: more than %d layers", MAX_LAYERS - 1);
    if (first < 0 || first > c->layers) return mrec_fail(MREC_ERR_ARG, "clip tower: block %d of a tower of %d", first, c->layers);
    if (B < 1 || B > MAX_BATCH || (tower == MREC_CLIP_TEXT && (T < 1 || T > c->max_positions)))
        return mrec_fail(MREC_ERR_SHAPE, "clip tower: %d inputs of %d tokens (1 to %d inputs, 1 to %d tokens)", B, T, MAX_BATCH,
                         c->max_positions);
    return mrec_weights_check(ctx, (*tw)->on, "clip");
}

/* The workspace of blocks [lo, hi) of a tower (hi -1: the trainable top, which starts from hidden states and
 * does not embed), measured by carving it. */
static size_t blocks_workspace_bytes(const mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, int B, int T, int lo,
                                     int hi) {
    int vision = tower == MREC_CLIP_VISION;
    const mrec_clip_tower *tw = vision ? &m->vision : &m->text;
    if (tw->cfg.layers >= MAX_LAYERS || lo < 0 || lo > tw->cfg.layers) return 0;
    mrec_arena a = mrec_arena_measure();
    tower_acts t;
    layer_acts L[MAX_LAYERS];
    carve_one(&a, &t, L, ctx, m, vision, hi >= 0, B, tokens_of(m, vision, T), lo, hi < 0 ? tw->cfg.layers : hi);
    return a.peak;
}

size_t mrec_clip_tower_hidden_workspace_bytes(const mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, int B, int T,
                                              int first) {
    const mrec_clip_tower *tw = tower == MREC_CLIP_VISION ? &m->vision : &m->text;
    if (first < 0 || first > tw->cfg.layers) return 0;
    return blocks_workspace_bytes(ctx, m, tower, B, T, 0, first);
}

size_t mrec_clip_tower_top_workspace_bytes(const mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, int B, int T,
                                           int first) {
    return blocks_workspace_bytes(ctx, m, tower, B, T, first, -1);
}

mrec_status mrec_clip_tower_hidden(mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, const float *images,
                                   const int32_t *ids, const int32_t *mask, int B, int T, int first, float *hidden, void *work,
                                   size_t work_bytes) {
    const mrec_clip_tower *tw;
    mrec_status st = tower_args(ctx, m, tower, B, T, first, &tw);
    if (st) return st;
    int vision = tower == MREC_CLIP_VISION, Tk = tokens_of(m, vision, T), H = tw->cfg.hidden;
    if (!vision)
        for (int i = 0; i < B * T; i++)
            if (ids[i] < 0 || ids[i] >= tw->cfg.vocab_size)
                return mrec_fail(MREC_ERR_ARG, "clip tower: token %d at position %d is outside the vocabulary of %d", ids[i], i,
                                 tw->cfg.vocab_size);
    mrec_arena a = {.base = work, .capacity = work_bytes, .device = ctx->device};
    tower_acts t;
    layer_acts L[MAX_LAYERS];
    if (!work || carve_one(&a, &t, L, ctx, m, vision, 1, B, Tk, 0, first))
        return mrec_fail(MREC_ERR_NOMEM, "clip tower: workspace of %zu bytes, %zu needed", work_bytes,
                         mrec_clip_tower_hidden_workspace_bytes(ctx, m, tower, B, T, first));
    st = embed_forward(ctx, tw, vision, &t, images, ids, mask);
    if (!st) st = stack_forward(ctx, tw, &t, vision ? NULL : t.mask_bias, vision ? NULL : t.causal);
    if (!st) st = mrec_copy_rows(ctx, hidden, H, L[first].x, H, B * Tk, H);
    return st;
}

mrec_status mrec_clip_tower_top_forward(mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, const float *hidden,
                                        const int32_t *pool, const int32_t *mask, int B, int T, int first, float *embeds,
                                        void *work, size_t work_bytes) {
    const mrec_clip_tower *tw;
    mrec_status st = tower_args(ctx, m, tower, B, T, first, &tw);
    if (st) return st;
    int vision = tower == MREC_CLIP_VISION, Tk = tokens_of(m, vision, T), H = tw->cfg.hidden, D = m->projection_dim;
    int32_t rows[MAX_BATCH]; /* B <= MAX_BATCH, checked by tower_args */
    for (int b = 0; b < B; b++) {
        int p = vision ? 0 : pool[b];
        if (p < 0 || p >= Tk) return mrec_fail(MREC_ERR_ARG, "clip tower: input %d pools token %d of %d", b, p, Tk);
        rows[b] = b * Tk + p;
    }
    mrec_arena a = {.base = work, .capacity = work_bytes, .device = ctx->device};
    tower_acts t;
    layer_acts L[MAX_LAYERS];
    if (!work || carve_one(&a, &t, L, ctx, m, vision, 0, B, Tk, first, tw->cfg.layers))
        return mrec_fail(MREC_ERR_NOMEM, "clip tower: workspace of %zu bytes, %zu needed", work_bytes,
                         mrec_clip_tower_top_workspace_bytes(ctx, m, tower, B, T, first));
    st = mrec_copy_rows(ctx, L[0].x, H, hidden, H, B * Tk, H);
    if (!st && !vision) st = text_biases(ctx, tw, &t, mask);
    if (!st) st = stack_forward(ctx, tw, &t, vision ? NULL : t.mask_bias, vision ? NULL : t.causal);
    if (!st) st = head_forward(ctx, tw, &t, rows);
    if (!st && embeds) st = mrec_copy_rows(ctx, embeds, D, t.en, D, B, D);
    return st;
}

mrec_status mrec_clip_tower_top_backward(mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, const float *d_embeds, int B,
                                         int T, int first, float *grad, void *work, size_t work_bytes) {
    const mrec_clip_tower *tw;
    mrec_status st = tower_args(ctx, m, tower, B, T, first, &tw);
    if (st) return st;
    int vision = tower == MREC_CLIP_VISION, Tk = tokens_of(m, vision, T), D = m->projection_dim;
    /* the same carving as the forward's finds its activations where it left them */
    mrec_arena a = {.base = work, .capacity = work_bytes, .device = ctx->device};
    tower_acts t;
    layer_acts L[MAX_LAYERS];
    if (!work || carve_one(&a, &t, L, ctx, m, vision, 0, B, Tk, first, tw->cfg.layers))
        return mrec_fail(MREC_ERR_NOMEM, "clip tower: workspace of %zu bytes, %zu needed", work_bytes,
                         mrec_clip_tower_top_workspace_bytes(ctx, m, tower, B, T, first));
    st = mrec_copy_rows(ctx, t.de, D, d_embeds, D, B, D);
    if (!st) st = head_backward(ctx, tw, grad, &t);
    if (!st) st = stack_backward(ctx, tw, grad, &t, vision ? NULL : t.mask_bias, vision ? NULL : t.causal);
    return st;
}
