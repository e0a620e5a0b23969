/* vit.c: Hugging Face ViTModel, forward only, on the op set.
 *
 *   x = [cls; patches (B, N, C*P*P) Wp^T + bp] + pos        the P x P, stride P conv as one GEMM
 *   per layer (pre-LayerNorm):
 *     x = x + attention(LN_before(x)) Wo^T + bo
 *     x = x + act(LN_after(x) Wi^T + bi) Wout^T + bout
 *   x = LN(x); cls = x[:, 0]; pooled = tanh(cls Wpool^T + bpool)
 * Dropout is off (inference). Reference: transformers' models/vit/modeling_vit.py.
 * Every step is an op entry; the host only copies each chunk of images in.
 */
#include "mrec_hf_config.h"
#include "mrec_io.h"
#include "mrec_ops.h"
#include "mrec_safetensors.h"
#include "mrec_vit.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- config ---- */

/* config.json's numbers are checked in hf_config.c (mrec_vit_config_parse). */
static mrec_status read_config(mrec_vit_config *c, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j;
    mrec_status st = mrec_read_json_object(path, 0, &j);
    if (st) return st;
    st = mrec_vit_config_parse(c, j, path);
    cJSON_Delete(j);
    return st;
}

/* ---- weights ---- */

static mrec_status take_all(mrec_vit *m, mrec_weight_loader *l) {
    const mrec_vit_config *c = &m->cfg;
    int64_t H = c->hidden, I = c->intermediate, P = c->patch_size, C = c->channels, G = c->image_size / P;
    mrec_status st = mrec_weights_take(l, &m->patch_w, "embeddings.patch_embeddings.projection.weight", 4, H, C, P, P);
    if (!st) st = mrec_weights_take(l, &m->patch_b, "embeddings.patch_embeddings.projection.bias", 1, H, 0, 0, 0);
    if (!st) st = mrec_weights_take(l, &m->cls, "embeddings.cls_token", 3, 1, 1, H, 0);
    if (!st) st = mrec_weights_take(l, &m->pos, "embeddings.position_embeddings", 3, 1, 1 + G * G, H, 0);
    for (int i = 0; i < c->layers && !st; i++) {
        mrec_vit_layer *L = &m->layer[i];
        struct { float **dst; const char *name; int nd; int64_t a, b; int bias_of_qkv; } w[] = {
            {&L->ln1_w, "layernorm_before.weight", 1, H, 0, 0}, {&L->ln1_b, "layernorm_before.bias", 1, H, 0, 0},
            /* Q, K, V weights one after another, then their biases: a bf16 forward multiplies them as one (3 H, H) */
            {&L->q_w, "attention.attention.query.weight", 2, H, H, 0}, {&L->k_w, "attention.attention.key.weight", 2, H, H, 0},
            {&L->v_w, "attention.attention.value.weight", 2, H, H, 0}, {&L->q_b, "attention.attention.query.bias", 1, H, 0, 1},
            {&L->k_b, "attention.attention.key.bias", 1, H, 0, 1}, {&L->v_b, "attention.attention.value.bias", 1, H, 0, 1},
            {&L->o_w, "attention.output.dense.weight", 2, H, H, 0}, {&L->o_b, "attention.output.dense.bias", 1, H, 0, 0},
            {&L->ln2_w, "layernorm_after.weight", 1, H, 0, 0}, {&L->ln2_b, "layernorm_after.bias", 1, H, 0, 0},
            {&L->inter_w, "intermediate.dense.weight", 2, I, H, 0}, {&L->inter_b, "intermediate.dense.bias", 1, I, 0, 0},
            {&L->out_w, "output.dense.weight", 2, H, I, 0}, {&L->out_b, "output.dense.bias", 1, H, 0, 0},
        };
        for (size_t k = 0; k < sizeof w / sizeof w[0] && !st; k++) {
            if (w[k].bias_of_qkv && !c->qkv_bias) continue;
            char n[160];
            snprintf(n, sizeof n, "encoder.layer.%d.%s", i, w[k].name);
            st = mrec_weights_take(l, w[k].dst, n, w[k].nd, w[k].a, w[k].b, 0, 0);
        }
    }
    if (!st) st = mrec_weights_take(l, &m->ln_w, "layernorm.weight", 1, H, 0, 0, 0);
    if (!st) st = mrec_weights_take(l, &m->ln_b, "layernorm.bias", 1, H, 0, 0, 0);
    char pooler[64];
    snprintf(pooler, sizeof pooler, "%spooler.dense.weight", l->prefix);
    /* re-pointing (sf NULL): the pooler is there if the host pass found it */
    if (!st && (l->sf ? mrec_safetensors_find(l->sf, pooler) != NULL : m->pooler_w != NULL)) {
        st = mrec_weights_take(l, &m->pooler_w, "pooler.dense.weight", 2, c->pooler_size, H, 0, 0);
        if (!st) st = mrec_weights_take(l, &m->pooler_b, "pooler.dense.bias", 1, c->pooler_size, 0, 0, 0);
    }
    return st;
}

mrec_status mrec_vit_load(mrec_vit *m, const char *dir) {
    memset(m, 0, sizeof *m);
    mrec_status st = read_config(&m->cfg, dir);
    if (st) return st;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    mrec_safetensors sf;
    if ((st = mrec_safetensors_open(&sf, path))) return st;
    /* measure (checking every shape against the config), allocate, read */
    mrec_weight_loader l = {&sf, mrec_safetensors_find(&sf, "vit.embeddings.cls_token") ? "vit." : "", NULL, 0};
    m->layer = calloc((size_t)m->cfg.layers, sizeof *m->layer);
    st = m->layer ? take_all(m, &l) : mrec_fail(MREC_ERR_NOMEM, "%s: %d layers", path, m->cfg.layers);
    if (!st) {
        m->storage = malloc(sizeof(float) * (size_t)l.floats);
        if (!m->storage) st = mrec_fail(MREC_ERR_NOMEM, "%s: %lld parameters", path, (long long)l.floats);
    }
    if (!st) {
        m->floats = l.floats;
        l.next = m->storage, l.floats = 0;
        st = take_all(m, &l);
    }
    mrec_safetensors_close(&sf);
    if (st) mrec_vit_free(m);
    return st;
}

mrec_status mrec_vit_to_device(mrec_vit *m, mrec_context *ctx) {
    float *dev;
    mrec_status st = mrec_weights_place(ctx, m->storage, m->floats, &dev, &m->on);
    if (st) return st;
    m->bf16_acts = mrec_bf16_activations_native(ctx);
    if (!dev) return st; /* the CPU: the weights stay where they are */
    mrec_weight_loader l = {NULL, "", dev, 0};
    st = take_all(m, &l); /* re-points every tensor into the device copy */
    free(m->storage);
    m->storage = dev;
    return st;
}

void mrec_vit_free(mrec_vit *m) {
    mrec_weights_free(m->on, m->storage);
    free(m->layer);
    memset(m, 0, sizeof *m);
}

/* ---- forward ---- */

typedef struct {
    float *images, *patches, *x, *layer;
} activations;

int mrec_vit_chunk(const mrec_context *on) { return on ? MREC_VIT_GPU_CHUNK : MREC_VIT_CHUNK; }

/* h, q, k, v, the attention's output, the feed-forward's hidden rows, and on the CPU the attention's scratch */
size_t mrec_vit_layer_scratch_floats(const mrec_context *on, int B, int T, int H, int I, int heads) {
    size_t BT = (size_t)B * T;
    /* + 128: the bf16 forward's four arrays (half the size) each start on a 128-byte boundary */
    return 5 * BT * H + BT * I + 128 + (on ? 0 : mrec_attention_scratch_floats(B, T, heads, H / heads));
}

static mrec_status carve(mrec_arena *a, activations *t, const mrec_vit *m, int B) {
    const mrec_vit_config *c = &m->cfg;
    int G = c->image_size / c->patch_size, T = 1 + G * G;
    size_t BT = (size_t)B * T, H = (size_t)c->hidden;
    struct { float **p; size_t n; } parts[] = {
        {&t->images, (size_t)B * c->channels * c->image_size * c->image_size},
        {&t->patches, (size_t)B * G * G * c->channels * c->patch_size * c->patch_size},
        {&t->x, BT * H},
        {&t->layer, mrec_vit_layer_scratch_floats(m->on, B, T, c->hidden, c->intermediate, c->heads)},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        *parts[i].p = mrec_arena_alloc(a, parts[i].n * sizeof(float));
        if (!*parts[i].p && a->base)
            return mrec_fail(MREC_ERR_NOMEM, "vit: workspace of %zu bytes is too small for a batch of %d", a->capacity, B);
    }
    return MREC_OK;
}

size_t mrec_vit_workspace_bytes(const mrec_vit *m, int B) {
    int chunk = mrec_vit_chunk(m->on);
    mrec_arena a = mrec_arena_measure();
    activations t;
    carve(&a, &t, m, B < chunk ? B : chunk);
    return a.peak;
}

mrec_status mrec_vit_layer_forward(mrec_context *ctx, const mrec_vit_layer *L, float *x, int B, int T, int H, int I, int nh,
                                   mrec_act act, float eps, const float *mask_bias, const float *head_bias, float *scratch) {
    int BT = B * T, dh = H / nh;
    float *h = scratch, *q = h + (size_t)BT * H, *k = q + (size_t)BT * H, *v = k + (size_t)BT * H, *att = v + (size_t)BT * H,
          *inter = att + (size_t)BT * H, *work = inter + (size_t)BT * I;
    mrec_status st = mrec_layernorm(ctx, h, x, L->ln1_w, L->ln1_b, eps, BT, H);
    float *const qkv[3] = {q, k, v};
    const float *const w[3] = {L->q_w, L->k_w, L->v_w}, *const bias[3] = {L->q_b, L->k_b, L->v_b};
    if (!st) st = mrec_linear3(ctx, qkv, h, w, bias, BT, H, H);
    if (!st) st = mrec_attention(ctx, att, q, k, v, mask_bias, head_bias, 1.0f / sqrtf((float)dh), B, T, nh, dh, work);
    /* x += att Wo^T + bo: beta 1 accumulates into the residual */
    if (!st) st = mrec_gemm(ctx, x, att, L->o_w, L->o_b, 1, 1, 0, 1, BT, H, H, H, H, H);
    if (!st) st = mrec_layernorm(ctx, h, x, L->ln2_w, L->ln2_b, eps, BT, H);
    /* x += act(h W1^T + b1) W2^T + b2 */
    if (!st) st = mrec_ffn(ctx, x, h, L->inter_w, L->inter_b, act, L->out_w, L->out_b, 1.0f, inter, BT, H, I);
    return st;
}

/* The bf16-activation form of the layer (mrec_kernels.h, "bf16 activations"): LN1 writes the product's bf16
 * operand; Q, K, V in one (3 H, H) product where the weights lie one after another (as the loaders place
 * them), bf16 out; attention on the packed rows; the output product and the second feed-forward product add
 * into the fp32 residual x; the first feed-forward product rounds, then its activation. */
mrec_status mrec_vit_layer_forward_bf16(mrec_context *ctx, const mrec_vit_layer *L, float *x, int B, int T, int H, int I, int nh,
                                        mrec_act act, float eps, const float *mask_bias, const float *head_bias, float *scratch) {
    int BT = B * T, dh = H / nh;
    size_t n = (size_t)BT * H, step = 64; /* bf16 values: 128-byte starts */
    uint16_t *h = (uint16_t *)scratch, *qkv = h + (n + step - 1) / step * step, *att = qkv + (3 * n + step - 1) / step * step,
             *inter = att + (n + step - 1) / step * step;
    mrec_status st = mrec_layernorm_bf16(ctx, NULL, h, x, NULL, L->ln1_w, L->ln1_b, eps, BT, H);
    if (!st) st = mrec_qkv_bf16(ctx, qkv, h, L->q_w, L->k_w, L->v_w, L->q_b, L->k_b, L->v_b, BT, H);
    if (!st)
        st = mrec_attention_bf16(ctx, att, qkv, qkv + H, qkv + 2 * H, 3 * H, mask_bias, head_bias, NULL, NULL, 1.0f / sqrtf((float)dh),
                                 B, T, nh, dh);
    if (!st) st = mrec_linear_bf16(ctx, x, 0, att, L->o_w, L->o_b, MREC_GEMM_NO_ACT, 1.0f, BT, H, H, H);
    if (!st) st = mrec_layernorm_bf16(ctx, NULL, h, x, NULL, L->ln2_w, L->ln2_b, eps, BT, H);
    if (!st) st = mrec_linear_bf16(ctx, inter, 1, h, L->inter_w, L->inter_b, act, 0.0f, BT, I, H, I);
    if (!st) st = mrec_linear_bf16(ctx, x, 0, inter, L->out_w, L->out_b, MREC_GEMM_NO_ACT, 1.0f, BT, H, I, H);
    return st;
}

/* A chunk of B images already on the device (t->images) to its outputs: launches only, so that on a GPU it can
 * be one CUDA graph (mrec_graph_run). */
typedef struct {
    const mrec_vit *m;
    const activations *t;
    int B;
    float *cls, *pooled;
} chunk_args;

static mrec_status chunk_body(mrec_context *ctx, void *arg) {
    const chunk_args *a = arg;
    const mrec_vit *m = a->m;
    const activations *t = a->t;
    const mrec_vit_config *c = &m->cfg;
    float *cls = a->cls, *pooled = a->pooled;
    int B = a->B, H = c->hidden, P = c->patch_size, S = c->image_size, G = S / P, N = G * G, T = 1 + N, K = c->channels * P * P;
    mrec_status st = mrec_patchify(ctx, t->patches, t->images, B, c->channels, S, P);
    /* the patch embeddings of the batch in one product (into the layers' scratch, free until they run), then
     * each image's N rows to rows 1..N of its sequence: one copy of B rows of N x H, a sequence apart */
    if (!st) st = mrec_gemm(ctx, t->layer, t->patches, m->patch_w, m->patch_b, 1, 0, 0, 1, B * N, H, K, K, K, H);
    if (!st) st = mrec_copy_rows(ctx, t->x + H, T * H, t->layer, N * H, B, N * H);
    if (!st) st = mrec_class_embed(ctx, t->x, m->cls, m->pos, B, T, H);
    int bf16 = m->bf16_acts;
    for (int l = 0; l < c->layers && !st; l++)
        st = (bf16 ? mrec_vit_layer_forward_bf16 : mrec_vit_layer_forward)(ctx, &m->layer[l], t->x, B, T, H, c->intermediate, c->heads,
                                                                           c->act, c->layer_norm_eps, NULL, NULL, t->layer);
    /* the final LayerNorm is needed only on the cls rows: gathered (stride T * H), then normalized together */
    float *h = t->layer, *rows = t->layer + (size_t)B * H;
    if (!st) st = mrec_copy_rows(ctx, rows, H, t->x, T * H, B, H);
    if (!st) st = mrec_layernorm(ctx, h, rows, m->ln_w, m->ln_b, c->layer_norm_eps, B, H);
    if (!st && cls) st = mrec_copy_rows(ctx, cls, H, h, H, B, H);
    if (!st && pooled) {
        st = mrec_gemm(ctx, pooled, h, m->pooler_w, m->pooler_b, 1, 0, 0, 1, B, c->pooler_size, H, H, H, c->pooler_size);
        if (!st) st = mrec_activation(ctx, pooled, pooled, MREC_ACT_TANH, 0, (int64_t)B * c->pooler_size);
    }
    return st;
}

/* The images up, then the chunk's launches: on a GPU one graph from the second time the same chunk comes (the
 * same workspace, outputs and size) */
static mrec_status forward_chunk(mrec_context *ctx, const mrec_vit *m, const activations *t, const float *images, int B,
                                 float *cls, float *pooled) {
    const mrec_vit_config *c = &m->cfg;
    mrec_status st = mrec_copy_to_device(ctx, t->images, images, sizeof(float) * (size_t)B * c->channels * c->image_size * c->image_size);
    chunk_args a = {m, t, B, cls, pooled};
    struct {
        const void *model, *images, *cls, *pooled;
        size_t carved; /* where the activations end: another chunk size lays them out elsewhere */
        int B, precision;
    } key;
    memset(&key, 0, sizeof key); /* the padding too: the key is compared as bytes */
    key.model = m, key.images = t->images, key.cls = cls, key.pooled = pooled, key.carved = ctx->workspace.used, key.B = B,
    key.precision = (int)ctx->precision;
    return st ? st : mrec_graph_run(ctx, &key, sizeof key, chunk_body, &a);
}

mrec_status mrec_vit_forward(mrec_context *ctx, const mrec_vit *m, const float *images, int B, float *cls, float *pooled) {
    const mrec_vit_config *c = &m->cfg;
    mrec_status st = mrec_weights_check(ctx, m->on, "vit");
    if (st) return st;
    if (B < 1) return mrec_fail(MREC_ERR_ARG, "vit: batch of %d images", B);
    if (pooled && !m->pooler_w) return mrec_fail(MREC_ERR_NOT_FOUND, "vit: this checkpoint has no pooler");
    size_t mark = ctx->workspace.used;
    int chunk = mrec_vit_chunk(m->on);
    activations t;
    if ((st = carve(&ctx->workspace, &t, m, B < chunk ? B : chunk))) return st;
    size_t img = (size_t)c->channels * c->image_size * c->image_size;
    for (int b0 = 0; b0 < B && !st; b0 += chunk) {
        int n = B - b0 < chunk ? B - b0 : chunk;
        st = forward_chunk(ctx, m, &t, images + b0 * img, n, cls ? cls + (size_t)b0 * c->hidden : NULL,
                           pooled ? pooled + (size_t)b0 * c->pooler_size : NULL);
    }
    ctx->workspace.used = mark;
    return st;
}
