/* clip.c: CLIP's two towers on the op set, as transformers' CLIPModel computes
 * them. Both towers are stacks of ViT's pre-LayerNorm layer; what differs is
 * around it:
 *
 *   vision: x = [class; patches W_patch^T] + pos; x = pre_layrnorm(x); layers;
 *           pooler = post_layernorm(x[:, 0])
 *   text:   x = tok[ids] + pos; layers (causal mask + padding mask);
 *           pooler = final_layer_norm(x)[:, eos position]
 *   projected = pooler W_proj^T; embeds = projected / ||projected||
 *
 * Dropout is off (inference). Reference: transformers' models/clip/modeling_clip.py.
 * AltCLIP's vision tower (models/altclip/modeling_altclip.py) is the same,
 * under the same names; its text tower is not CLIP's (see mrec_bert.h).
 */
#include "mrec_clip.h"
#include "mrec_hf_config.h"
#include "mrec_io.h"
#include "mrec_ops.h"
#include "mrec_safetensors.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- config ---- */

/* config.json's numbers are checked in hf_config.c (mrec_clip_config_parse). */
static mrec_status read_config(mrec_clip *m, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j;
    mrec_status st = mrec_read_json_object(path, 0, &j);
    if (st) return st;
    st = mrec_clip_config_parse(&m->vision.cfg, &m->text.cfg, &m->projection_dim, j, path);
    cJSON_Delete(j);
    return st;
}

/* ---- weights ---- */

static mrec_status take_tower(mrec_clip_tower *t, mrec_weight_loader *lp, int vision, int D) {
    const mrec_clip_tower_config *c = &t->cfg;
    int64_t H = c->hidden, I = c->intermediate, P = c->patch_size, C = c->channels, G = vision ? c->image_size / P : 0;
    mrec_weight_loader l = *lp;
    const char *tw = vision ? "vision_model" : "text_model";
    char n[192];
    mrec_status st;
    if (vision) {
        st = mrec_weights_take(&l, &t->embed, "vision_model.embeddings.patch_embedding.weight", 4, H, C, P, P);
        if (!st) st = mrec_weights_take(&l, &t->cls, "vision_model.embeddings.class_embedding", 1, H, 0, 0, 0);
        if (!st) st = mrec_weights_take(&l, &t->pos, "vision_model.embeddings.position_embedding.weight", 2, 1 + G * G, H, 0, 0);
        if (!st) st = mrec_weights_take(&l, &t->pre_w, "vision_model.pre_layrnorm.weight", 1, H, 0, 0, 0);
        if (!st) st = mrec_weights_take(&l, &t->pre_b, "vision_model.pre_layrnorm.bias", 1, H, 0, 0, 0);
    } else {
        st = mrec_weights_take(&l, &t->embed, "text_model.embeddings.token_embedding.weight", 2, c->vocab_size, H, 0, 0);
        if (!st) st = mrec_weights_take(&l, &t->pos, "text_model.embeddings.position_embedding.weight", 2, c->max_positions, H, 0, 0);
    }
    for (int i = 0; i < c->layers && !st; i++) {
        mrec_vit_layer *L = &t->layer[i];
        struct { float **dst; const char *name; int nd; int64_t a, b; } w[] = {
            {&L->ln1_w, "layer_norm1.weight", 1, H, 0}, {&L->ln1_b, "layer_norm1.bias", 1, H, 0},
            /* Q, K, V weights one after another, then their biases: a bf16 forward multiplies them as one (3 H, H) */
            {&L->q_w, "self_attn.q_proj.weight", 2, H, H}, {&L->k_w, "self_attn.k_proj.weight", 2, H, H},
            {&L->v_w, "self_attn.v_proj.weight", 2, H, H}, {&L->q_b, "self_attn.q_proj.bias", 1, H, 0},
            {&L->k_b, "self_attn.k_proj.bias", 1, H, 0}, {&L->v_b, "self_attn.v_proj.bias", 1, H, 0},
            {&L->o_w, "self_attn.out_proj.weight", 2, H, H}, {&L->o_b, "self_attn.out_proj.bias", 1, H, 0},
            {&L->ln2_w, "layer_norm2.weight", 1, H, 0}, {&L->ln2_b, "layer_norm2.bias", 1, H, 0},
            {&L->inter_w, "mlp.fc1.weight", 2, I, H}, {&L->inter_b, "mlp.fc1.bias", 1, I, 0},
            {&L->out_w, "mlp.fc2.weight", 2, H, I}, {&L->out_b, "mlp.fc2.bias", 1, H, 0},
        };
        for (size_t k = 0; k < sizeof w / sizeof w[0] && !st; k++) {
            snprintf(n, sizeof n, "%s.encoder.layers.%d.%s", tw, i, w[k].name);
            st = mrec_weights_take(&l, w[k].dst, n, w[k].nd, w[k].a, w[k].b, 0, 0);
        }
    }
    const char *post = vision ? "post_layernorm" : "final_layer_norm";
    snprintf(n, sizeof n, "%s.%s.weight", tw, post);
    if (!st) st = mrec_weights_take(&l, &t->post_w, n, 1, H, 0, 0, 0);
    snprintf(n, sizeof n, "%s.%s.bias", tw, post);
    if (!st) st = mrec_weights_take(&l, &t->post_b, n, 1, H, 0, 0, 0);
    if (!st) st = mrec_weights_take(&l, &t->proj, vision ? "visual_projection.weight" : "text_projection.weight", 2, D, H, 0, 0);
    *lp = l;
    return st;
}

/* Measures the tower against the file (every shape checked), then allocates and reads. */
static mrec_status load_tower(mrec_clip_tower *t, const mrec_safetensors *sf, int vision, int D) {
    mrec_weight_loader l = {sf, "", NULL, 0};
    t->layer = calloc((size_t)t->cfg.layers, sizeof *t->layer);
    if (!t->layer) return mrec_fail(MREC_ERR_NOMEM, "%s: %d layers", sf->path, t->cfg.layers);
    mrec_status st = take_tower(t, &l, vision, D);
    if (st) return st;
    t->storage = malloc(sizeof(float) * (size_t)l.floats);
    if (!t->storage) return mrec_fail(MREC_ERR_NOMEM, "%s: %lld parameters", sf->path, (long long)l.floats);
    t->floats = l.floats;
    l.next = t->storage, l.floats = 0;
    return take_tower(t, &l, vision, D);
}

static mrec_status tower_to_device(mrec_clip_tower *t, mrec_context *ctx, int vision, int D) {
    float *dev;
    mrec_status st = mrec_weights_place(ctx, t->storage, t->floats, &dev, &t->on);
    if (st) return st;
    t->bf16_acts = mrec_bf16_activations_native(ctx);
    if (!dev) return st; /* the CPU: the weights stay where they are */
    mrec_weight_loader l = {NULL, "", dev, 0};
    st = take_tower(t, &l, vision, D); /* re-points every tensor into the device copy */
    free(t->storage);
    t->storage = dev;
    return st;
}

mrec_status mrec_clip_load(mrec_clip *m, const char *dir, mrec_clip_towers towers) {
    memset(m, 0, sizeof *m);
    mrec_status st = read_config(m, dir);
    if (st) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    mrec_safetensors sf;
    if ((st = mrec_safetensors_open(&sf, path))) return st;
    if ((towers & MREC_CLIP_TEXT) && !m->text.cfg.hidden) /* AltCLIP */
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s/config.json: AltCLIP's text tower is an XLM-R, which mrec's text encoder reads "
                       "(extract-text on this folder)", dir);
    if (st) {
        mrec_safetensors_close(&sf);
        return st;
    }
    m->towers = towers;
    if (towers & MREC_CLIP_VISION) st = load_tower(&m->vision, &sf, 1, m->projection_dim);
    if (!st && (towers & MREC_CLIP_TEXT)) st = load_tower(&m->text, &sf, 0, m->projection_dim);
    float scale = 0;
    if (!st && (st = mrec_safetensors_read_f32(&sf, "logit_scale", 0, NULL, &scale)) == MREC_OK) m->logit_scale = scale;
    mrec_safetensors_close(&sf);
    if (st) mrec_clip_free(m);
    return st;
}

mrec_status mrec_clip_to_device(mrec_clip *m, mrec_context *ctx) {
    mrec_status st = MREC_OK;
    if (m->towers & MREC_CLIP_VISION) st = tower_to_device(&m->vision, ctx, 1, m->projection_dim);
    if (!st && (m->towers & MREC_CLIP_TEXT)) st = tower_to_device(&m->text, ctx, 0, m->projection_dim);
    return st;
}

void mrec_clip_free(mrec_clip *m) {
    mrec_weights_free(m->vision.on, m->vision.storage), free(m->vision.layer);
    mrec_weights_free(m->text.on, m->text.storage), free(m->text.layer);
    memset(m, 0, sizeof *m);
}

int mrec_clip_dim(const mrec_clip *m, mrec_clip_towers tower, mrec_clip_output what) {
    if (what != MREC_CLIP_POOLER) return m->projection_dim;
    return tower == MREC_CLIP_VISION ? m->vision.cfg.hidden : m->text.cfg.hidden;
}

const char *mrec_clip_output_name(mrec_clip_output what) {
    static const char *const names[] = {"embeds", "projected", "pooler"};
    return names[what];
}

/* ---- forward ---- */

typedef struct {
    float *x, *layer, *images, *patches, *mask_bias, *causal, *pooled;
    int32_t *ids, *mask, *pos; /* the text chunk's inputs, copied from the host */
    int32_t *rows;             /* (B) the text chunk's pooled rows of x */
} activations;

/* Inputs a chunk: MREC_CLIP_CHUNK in host memory, ViT's GPU chunk on a GPU (mrec_vit_chunk) */
typedef mrec_status (*layer_fn)(mrec_context *, const mrec_vit_layer *, float *, int, int, int, int, int, mrec_act, float,
                                const float *, const float *, float *);

/* ViT's pre-LN layer, with bf16 activations where the tower keeps them */
static layer_fn layer_forward(const mrec_clip_tower *tw) {
    return tw->bf16_acts ? mrec_vit_layer_forward_bf16 : mrec_vit_layer_forward;
}

static int chunk_of(const mrec_clip_tower *tw) { return tw->on ? mrec_vit_chunk(tw->on) : MREC_CLIP_CHUNK; }

static mrec_status carve(mrec_arena *a, activations *t, const mrec_clip_tower *tw, int vision, int B, int T) {
    const mrec_clip_tower_config *c = &tw->cfg;
    int G = vision ? c->image_size / c->patch_size : 0;
    size_t BT = (size_t)B * T, H = (size_t)c->hidden;
    memset(t, 0, sizeof *t);
    struct { float **p; size_t n; } parts[] = {
        {&t->x, BT * H},
        {&t->layer, mrec_vit_layer_scratch_floats(tw->on, B, T, c->hidden, c->intermediate, c->heads)},
        {&t->pooled, 2 * (size_t)B * H},
        {&t->images, vision ? (size_t)B * c->channels * c->image_size * c->image_size : 0},
        {&t->patches, vision ? (size_t)B * G * G * c->channels * c->patch_size * c->patch_size : 0},
        {&t->mask_bias, vision ? 0 : BT},
        {&t->causal, vision ? 0 : (size_t)c->heads * T * T},
    };
    struct { int32_t **p; size_t n; } ints[] = {
        {&t->ids, vision ? 0 : BT}, {&t->mask, vision ? 0 : BT}, {&t->pos, vision ? 0 : BT}, {&t->rows, vision ? 0 : (size_t)B}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (!parts[i].n) continue;
        *parts[i].p = mrec_arena_alloc(a, parts[i].n * sizeof(float));
        if (!*parts[i].p && a->base)
            return mrec_fail(MREC_ERR_NOMEM, "clip: workspace of %zu bytes is too small for a batch of %d", a->capacity, B);
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (!ints[i].n) continue;
        *ints[i].p = mrec_arena_alloc(a, ints[i].n * sizeof(int32_t));
        if (!*ints[i].p && a->base)
            return mrec_fail(MREC_ERR_NOMEM, "clip: workspace of %zu bytes is too small for a batch of %d", a->capacity, B);
    }
    return MREC_OK;
}

size_t mrec_clip_workspace_bytes(const mrec_clip *m, mrec_clip_towers tower, int B, int T) {
    int vision = tower == MREC_CLIP_VISION;
    const mrec_clip_tower *tw = vision ? &m->vision : &m->text;
    const mrec_clip_tower_config *c = &tw->cfg;
    if (vision) T = 1 + (c->image_size / c->patch_size) * (c->image_size / c->patch_size);
    int chunk = chunk_of(tw);
    mrec_arena a = mrec_arena_measure();
    activations t;
    carve(&a, &t, tw, vision, B < chunk ? B : chunk, T);
    return a.peak;
}

/* pooled (B, H) -> out (B, dim): the projection, then the norm, as asked */
static mrec_status head(mrec_context *ctx, const mrec_clip_tower *tw, int D, const float *pooled, int B, mrec_clip_output what,
                        float *out) {
    int H = tw->cfg.hidden;
    if (what == MREC_CLIP_POOLER) return mrec_copy_rows(ctx, out, H, pooled, H, B, H);
    mrec_status st = mrec_gemm(ctx, out, pooled, tw->proj, NULL, 1, 0, 0, 1, B, D, H, H, H, D);
    if (!st && what == MREC_CLIP_EMBEDS) st = mrec_l2_normalize_rows(ctx, out, out, 0, B, D);
    return st;
}

/* A chunk of B images already on the device (t->images) to its outputs: launches only, so that on a GPU it can
 * be one CUDA graph (mrec_graph_run). */
typedef struct {
    const mrec_clip *m;
    const activations *t;
    int B;
    mrec_clip_output what;
    float *out;
} image_args;

static mrec_status image_body(mrec_context *ctx, void *arg) {
    const image_args *a = arg;
    const mrec_clip *m = a->m;
    const activations *t = a->t;
    const mrec_clip_tower *tw = &m->vision;
    const mrec_clip_tower_config *c = &tw->cfg;
    int B = a->B, H = c->hidden, P = c->patch_size, S = c->image_size, G = S / P, N = G * G, T = 1 + N, K = c->channels * P * P;
    mrec_clip_output what = a->what;
    float *out = a->out, *h = t->pooled + (size_t)B * H;
    mrec_status st = mrec_patchify(ctx, t->patches, t->images, B, c->channels, S, P);
    /* the batch's patch embeddings in one product (into the layers' scratch), then each image's N rows after
     * its class row: one copy of B rows of N x H, a sequence apart */
    if (!st) st = mrec_gemm(ctx, t->layer, t->patches, tw->embed, NULL, 1, 0, 0, 1, B * N, H, K, K, K, H);
    if (!st) st = mrec_copy_rows(ctx, t->x + H, T * H, t->layer, N * H, B, N * H);
    if (!st) st = mrec_class_embed(ctx, t->x, tw->cls, tw->pos, B, T, H);
    /* pre_layrnorm, in place: each row is read whole before it is written */
    if (!st) st = mrec_layernorm(ctx, t->x, t->x, tw->pre_w, tw->pre_b, c->layer_norm_eps, B * T, H);
    for (int l = 0; l < c->layers && !st; l++)
        st = layer_forward(tw)(ctx, &tw->layer[l], t->x, B, T, H, c->intermediate, c->heads, c->act, c->layer_norm_eps, NULL, NULL,
                                    t->layer);
    if (!st) st = mrec_copy_rows(ctx, h, H, t->x, T * H, B, H); /* the class token of each image */
    if (!st) st = mrec_layernorm(ctx, t->pooled, h, tw->post_w, tw->post_b, c->layer_norm_eps, B, H);
    if (!st) st = head(ctx, tw, m->projection_dim, t->pooled, B, what, out);
    return st;
}

/* The images up, then the chunk's launches: on a GPU one graph from the second time the same chunk comes (the
 * same workspace, outputs and size) */
static mrec_status image_chunk(mrec_context *ctx, const mrec_clip *m, const activations *t, const float *images, int B,
                               mrec_clip_output what, float *out) {
    const mrec_clip_tower_config *c = &m->vision.cfg;
    mrec_status st = mrec_copy_to_device(ctx, t->images, images, sizeof(float) * (size_t)B * c->channels * c->image_size * c->image_size);
    image_args a = {m, t, B, what, out};
    struct {
        const void *model, *images, *out;
        size_t carved; /* where the activations end: another chunk size lays them out elsewhere */
        int B, what, precision;
    } key;
    memset(&key, 0, sizeof key); /* the padding too: the key is compared as bytes */
    key.model = m, key.images = t->images, key.out = out, key.carved = ctx->workspace.used, key.B = B, key.what = (int)what,
    key.precision = (int)ctx->precision;
    return st ? st : mrec_graph_run(ctx, &key, sizeof key, image_body, &a);
}

/* HF's pooling position: the largest id (eos_token_id 2, legacy configs) or
 * the first eos_token_id; argmax's first-maximum rule either way, so a row
 * without eos pools position 0. */
static int eos_position(const int32_t *ids, int T, int eos_token_id) {
    int best = 0;
    for (int t = 1; t < T; t++)
        if (eos_token_id == 2 ? ids[t] > ids[best] : ids[t] == eos_token_id && ids[best] != eos_token_id) best = t;
    return best;
}

/* rows_host (B): host scratch for the pooled rows */
static mrec_status text_chunk(mrec_context *ctx, const mrec_clip *m, const activations *t, const int32_t *ids, const int32_t *mask,
                              int32_t *rows_host, int B, int T, mrec_clip_output what, float *out) {
    const mrec_clip_tower *tw = &m->text;
    const mrec_clip_tower_config *c = &tw->cfg;
    int H = c->hidden;
    size_t n_ids = sizeof(int32_t) * (size_t)B * T;
    /* the ids arrive on the host: checked there, before the ops index with them */
    for (int i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return mrec_fail(MREC_ERR_ARG, "clip: token %d at position %d is outside the vocabulary of %d", ids[i], i, c->vocab_size);
    /* the ids, the mask and the pooled rows go up without waiting for the previous chunk's forward */
    for (int b = 0; b < B; b++) rows_host[b] = b * T + eos_position(ids + (size_t)b * T, T, c->eos_token_id);
    mrec_status st = mrec_copy_to_device_staged(ctx, t->ids, ids, n_ids);
    if (!st && mask) st = mrec_copy_to_device_staged(ctx, t->mask, mask, n_ids);
    if (!st) st = mrec_copy_to_device_staged(ctx, t->rows, rows_host, sizeof(int32_t) * (size_t)B);
    if (!st) st = mrec_position_ids(ctx, t->pos, NULL, -1, B, T);
    if (!st) st = mrec_embedding_sum(ctx, t->x, tw->embed, t->ids, NULL, NULL, tw->pos, t->pos, B * T, H);
    if (!st) st = mrec_mask_bias(ctx, t->mask_bias, mask ? t->mask : NULL, (int64_t)B * T);
    if (!st) st = mrec_causal_bias(ctx, t->causal, c->heads, T); /* query i sees keys j <= i */
    for (int l = 0; l < c->layers && !st; l++)
        st = layer_forward(tw)(ctx, &tw->layer[l], t->x, B, T, H, c->intermediate, c->heads, c->act, c->layer_norm_eps,
                                    t->mask_bias, t->causal, t->layer);
    /* final_layer_norm acts per row, so only the pooled rows need it */
    float *h = t->pooled + (size_t)B * H;
    if (!st) st = mrec_embedding_checked(ctx, h, t->x, t->rows, B, B * T, H); /* in range as made: no check to wait for */
    if (!st) st = mrec_layernorm(ctx, t->pooled, h, tw->post_w, tw->post_b, c->layer_norm_eps, B, H);
    if (!st) st = head(ctx, tw, m->projection_dim, t->pooled, B, what, out);
    return st;
}

/* Grows the workspace when nothing else holds part of it. */
static mrec_status ensure(mrec_context *ctx, size_t need) {
    mrec_arena *a = &ctx->workspace;
    if (a->base && a->capacity - a->used >= need) return MREC_OK;
    if (a->used) return mrec_fail(MREC_ERR_NOMEM, "clip: %zu workspace bytes needed, %zu free", need, a->capacity - a->used);
    return mrec_context_reserve(ctx, need);
}

static mrec_status check(mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, int B) {
    if (!(m->towers & tower))
        return mrec_fail(MREC_ERR_ARG, "clip: the %s tower was not loaded", tower == MREC_CLIP_VISION ? "vision" : "text");
    mrec_status st = mrec_weights_check(ctx, tower == MREC_CLIP_VISION ? m->vision.on : m->text.on, "clip");
    if (st) return st;
    if (B < 1) return mrec_fail(MREC_ERR_ARG, "clip: batch of %d", B);
    return MREC_OK;
}

mrec_status mrec_clip_image_forward(mrec_context *ctx, const mrec_clip *m, const float *images, int B, mrec_clip_output what,
                                    float *out) {
    mrec_status st = check(ctx, m, MREC_CLIP_VISION, B);
    if (st) return st;
    const mrec_clip_tower_config *c = &m->vision.cfg;
    size_t mark = ctx->workspace.used, img = (size_t)c->channels * c->image_size * c->image_size;
    int G = c->image_size / c->patch_size, D = mrec_clip_dim(m, MREC_CLIP_VISION, what);
    activations t;
    if ((st = ensure(ctx, mrec_clip_workspace_bytes(m, MREC_CLIP_VISION, B, 0)))) return st;
    mark = ctx->workspace.used;
    int chunk = chunk_of(&m->vision);
    if ((st = carve(&ctx->workspace, &t, &m->vision, 1, B < chunk ? B : chunk, 1 + G * G))) return st;
    for (int b0 = 0; b0 < B && !st; b0 += chunk) {
        int n = B - b0 < chunk ? B - b0 : chunk;
        st = image_chunk(ctx, m, &t, images + b0 * img, n, what, out + (size_t)b0 * D);
    }
    ctx->workspace.used = mark;
    return st;
}

/* The positions a chunk of rows needs: up to its last real token, or its pooled one where that lies later. The
 * attention is causal, so no position sees the padding after it: the rest can go (a chunk of short texts in a
 * batch padded to a long one ran the whole length). */
static int chunk_length(const int32_t *ids, const int32_t *mask, int n, int T, int eos_token_id) {
    int len = 1;
    for (int b = 0; b < n; b++) {
        int last = mask ? 0 : T - 1;
        for (int t = T - 1; mask && t > 0; t--)
            if (mask[(size_t)b * T + t]) {
                last = t;
                break;
            }
        int pooled = eos_position(ids + (size_t)b * T, T, eos_token_id);
        last = pooled > last ? pooled : last;
        len = last + 1 > len ? last + 1 : len;
    }
    return len;
}

mrec_status mrec_clip_text_forward(mrec_context *ctx, const mrec_clip *m, const int32_t *ids, const int32_t *mask, int B, int T,
                                   mrec_clip_output what, float *out) {
    mrec_status st = check(ctx, m, MREC_CLIP_TEXT, B);
    if (st) return st;
    if (T < 1 || T > m->text.cfg.max_positions)
        return mrec_fail(MREC_ERR_SHAPE, "clip: %d tokens; the text tower takes 1 to %d", T, m->text.cfg.max_positions);
    size_t mark = ctx->workspace.used;
    int D = mrec_clip_dim(m, MREC_CLIP_TEXT, what);
    activations t;
    if ((st = ensure(ctx, mrec_clip_workspace_bytes(m, MREC_CLIP_TEXT, B, T)))) return st;
    mark = ctx->workspace.used;
    int chunk = chunk_of(&m->text), n0 = B < chunk ? B : chunk;
    if ((st = carve(&ctx->workspace, &t, &m->text, 0, n0, T))) return st;
    /* a chunk shorter than T: its ids and mask at its own length */
    int32_t *cut = malloc(sizeof(int32_t) * (2 * (size_t)n0 * T + (size_t)n0)), *rows = NULL; /* rows: the chunk's pooled rows */
    if (!cut) st = mrec_fail(MREC_ERR_NOMEM, "clip: a chunk of %d x %d ids", n0, T);
    else rows = cut + 2 * (size_t)n0 * T;
    for (int b0 = 0; b0 < B && !st; b0 += chunk) {
        int n = B - b0 < chunk ? B - b0 : chunk;
        const int32_t *ci = ids + (size_t)b0 * T, *cm = mask ? mask + (size_t)b0 * T : NULL;
        int L = chunk_length(ci, cm, n, T, m->text.cfg.eos_token_id);
        if (L < T) {
            int32_t *to_ids = cut, *to_mask = cm ? cut + (size_t)n * L : NULL;
            for (int b = 0; b < n; b++) {
                memcpy(to_ids + (size_t)b * L, ci + (size_t)b * T, sizeof(int32_t) * (size_t)L);
                if (cm) memcpy(to_mask + (size_t)b * L, cm + (size_t)b * T, sizeof(int32_t) * (size_t)L);
            }
            ci = to_ids, cm = to_mask;
        }
        st = text_chunk(ctx, m, &t, ci, cm, rows, n, L, what, out + (size_t)b0 * D);
    }
    free(cut);
    ctx->workspace.used = mark;
    return st;
}

void mrec_clip_logits(const mrec_clip *m, const float *image_embeds, int n_images, const float *text_embeds, int n_texts,
                      float *logits) {
    float scale = expf(m->logit_scale);
    int D = m->projection_dim;
    for (int i = 0; i < n_images; i++)
        for (int j = 0; j < n_texts; j++) {
            float dot = 0;
            for (int d = 0; d < D; d++) dot += image_embeds[(size_t)i * D + d] * text_embeds[(size_t)j * D + d];
            logits[(size_t)i * n_texts + j] = dot * scale;
        }
}
