/* bert.c: Hugging Face BertModel and MPNetModel (and the text towers of
 * ALIGN and AltCLIP), forward only, on the op set.
 *
 *   x = LayerNorm(word[ids] + position[0..T) + token_type[type_ids])
 *                                      (MPNet, RoBERTa: positions pad + 1, pad + 2, ...
 *                                       over real tokens; MPNet: no token types)
 *   per layer:
 *     q, k, v = x Wq^T + bq, ...                     (B, T, H), heads of size H / nh
 *     p = softmax(q k^T / sqrt(dh) [+ MPNet's relative position bias] + mask_bias)
 *                                                     per (sequence, head), mask_bias =
 *                                                     float32 min on padding keys (as HF)
 *     x = LayerNorm(x + (p v) Wo^T + bo)
 *     x = LayerNorm(x + act(x Wi^T + bi) Wout^T + bout)
 *   pooled = tanh(x[:, 0] Wp^T + bp)
 * Dropout is off (inference). Reference: transformers' modeling_bert.py and
 * modeling_mpnet.py. Every step is an op entry, so the same code runs on the
 * CPU and on a GPU; the host only checks the ids and copies the batch's
 * inputs (ids, types, mask, MPNet's bucket of each distance) once each.
 */
#include "mrec_bert.h"
#include "mrec_hf_config.h"
#include "mrec_io.h"
#include "mrec_ops.h"
#include "mrec_safetensors.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- config ---- */

/* config.json's numbers are checked in hf_config.c (mrec_bert_config_parse). */
static mrec_status read_config(mrec_bert_config *c, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j;
    mrec_status st = mrec_read_json_object(path, 0, &j);
    if (st) return st;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    int align = cJSON_IsString(type) && !strcmp(type->valuestring, "align");
    int altclip = cJSON_IsString(type) && !strcmp(type->valuestring, "altclip");
    if (align || altclip) {
        /* the text tower's sizes in text_config, the projection's width at the top */
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(j, "text_config");
        if (!cJSON_IsObject(tc))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: model_type %s without a \"text_config\" object", path, type->valuestring);
        if (!st) st = mrec_bert_config_parse(c, tc, path);
        if (!st && c->roberta != altclip)
            st = mrec_fail(MREC_ERR_FORMAT, "%s: model_type %s with a text_config of another model", path, type->valuestring);
        if (!st) st = mrec_json_int(j, path, "", "projection_dim", 0, align ? 640 : 768, 1, 65536, &c->proj_dim);
    } else {
        st = mrec_bert_config_parse(c, j, path);
        if (!st && c->roberta) /* the tower alone has no projection to give */
            st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: an AltCLIP text tower alone; mrec reads it from the AltCLIP folder", path);
    }
    cJSON_Delete(j);
    return st;
}

/* ---- weights ---- */

static mrec_status take_all(mrec_bert *m, mrec_weight_loader *l) {
    const mrec_bert_config *c = &m->cfg;
    int64_t H = c->hidden, I = c->intermediate;
    mrec_status st = mrec_weights_take(l, &m->word, "embeddings.word_embeddings.weight", 2, c->vocab_size, H, 0, 0);
    if (!st) st = mrec_weights_take(l, &m->position, "embeddings.position_embeddings.weight", 2, c->max_positions, H, 0, 0);
    if (!st && !c->mpnet)
        st = mrec_weights_take(l, &m->token_type, "embeddings.token_type_embeddings.weight", 2, c->type_vocab, H, 0, 0);
    if (!st && c->mpnet)
        st = mrec_weights_take(l, &m->rel_bias, "encoder.relative_attention_bias.weight", 2, c->rel_buckets, c->heads, 0, 0);
    if (!st) st = mrec_weights_take(l, &m->emb_ln_w, "embeddings.LayerNorm.weight", 1, H, 0, 0, 0);
    if (!st) st = mrec_weights_take(l, &m->emb_ln_b, "embeddings.LayerNorm.bias", 1, H, 0, 0, 0);
    for (int i = 0; i < c->layers && !st; i++) {
        mrec_bert_layer *L = &m->layer[i];
        int mp = c->mpnet;
        struct { float **dst; const char *name; int nd; int64_t a, b; } w[] = {
            /* Q, K, V weights one after another, then their biases: a bf16 forward multiplies them as one (3 H, H) */
            {&L->q_w, mp ? "attention.attn.q.weight" : "attention.self.query.weight", 2, H, H},
            {&L->k_w, mp ? "attention.attn.k.weight" : "attention.self.key.weight", 2, H, H},
            {&L->v_w, mp ? "attention.attn.v.weight" : "attention.self.value.weight", 2, H, H},
            {&L->q_b, mp ? "attention.attn.q.bias" : "attention.self.query.bias", 1, H, 0},
            {&L->k_b, mp ? "attention.attn.k.bias" : "attention.self.key.bias", 1, H, 0},
            {&L->v_b, mp ? "attention.attn.v.bias" : "attention.self.value.bias", 1, H, 0},
            {&L->attn_out_w, mp ? "attention.attn.o.weight" : "attention.output.dense.weight", 2, H, H},
            {&L->attn_out_b, mp ? "attention.attn.o.bias" : "attention.output.dense.bias", 1, H, 0},
            {&L->attn_ln_w, mp ? "attention.LayerNorm.weight" : "attention.output.LayerNorm.weight", 1, H, 0},
            {&L->attn_ln_b, mp ? "attention.LayerNorm.bias" : "attention.output.LayerNorm.bias", 1, H, 0},
            {&L->inter_w, "intermediate.dense.weight", 2, I, H}, {&L->inter_b, "intermediate.dense.bias", 1, I, 0},
            {&L->out_w, "output.dense.weight", 2, H, I},         {&L->out_b, "output.dense.bias", 1, H, 0},
            {&L->out_ln_w, "output.LayerNorm.weight", 1, H, 0},  {&L->out_ln_b, "output.LayerNorm.bias", 1, H, 0},
        };
        for (size_t k = 0; k < sizeof w / sizeof w[0] && !st; k++) {
            char n[128];
            snprintf(n, sizeof n, "encoder.layer%s.%d.%s", m->layers_plural ? "s" : "", i, w[k].name);
            st = mrec_weights_take(l, w[k].dst, n, w[k].nd, w[k].a, w[k].b, 0, 0);
        }
    }
    char pooler[64];
    snprintf(pooler, sizeof pooler, "%spooler.dense.weight", l->prefix);
    /* re-pointing (sf NULL): the pooler is there if the host pass found it */
    if (!st && (l->sf ? mrec_safetensors_find(l->sf, pooler) != NULL : m->pooler_w != NULL)) {
        st = mrec_weights_take(l, &m->pooler_w, "pooler.dense.weight", 2, H, H, 0, 0);
        if (!st) st = mrec_weights_take(l, &m->pooler_b, "pooler.dense.bias", 1, H, 0, 0, 0);
    }
    const char *prefix = l->prefix;
    if (!st && c->project_dim) { /* AltCLIP: pre_LN and transformation beside text_model.roberta. */
        int64_t D = c->project_dim;
        l->prefix = "text_model.";
        st = mrec_weights_take(l, &m->pre_ln_w, "pre_LN.weight", 1, H, 0, 0, 0);
        if (!st) st = mrec_weights_take(l, &m->pre_ln_b, "pre_LN.bias", 1, H, 0, 0, 0);
        if (!st) st = mrec_weights_take(l, &m->trans_w, "transformation.weight", 2, D, H, 0, 0);
        if (!st) st = mrec_weights_take(l, &m->trans_b, "transformation.bias", 1, D, 0, 0, 0);
    }
    if (!st && c->proj_dim) { /* the projection sits beside text_model., not in it */
        l->prefix = "";
        st = mrec_weights_take(l, &m->proj_w, "text_projection.weight", 2, c->proj_dim, c->project_dim ? c->project_dim : H, 0, 0);
        if (!st && !c->project_dim) st = mrec_weights_take(l, &m->proj_b, "text_projection.bias", 1, c->proj_dim, 0, 0, 0);
    }
    l->prefix = prefix;
    return st;
}

/* MPNet's bucket of a relative position (memory - context), computed in
 * float32 in the same order as transformers' relative_position_bucket. */
static int rel_bucket(int relative, int buckets, int max_distance) {
    int ret = 0, n = -relative;
    buckets /= 2;
    if (n < 0) ret += buckets;
    n = n < 0 ? -n : n;
    int max_exact = buckets / 2;
    if (n < max_exact) return ret + n;
    float v = logf((float)n / (float)max_exact) / (float)log((double)max_distance / max_exact) * (float)(buckets - max_exact);
    int large = max_exact + (int)v;
    return ret + (large < buckets - 1 ? large : buckets - 1);
}

/* MPNet: the bucket of every distance a sequence can have, once at load;
 * a batch of T tokens uses the 2T - 1 around distance 0. */
static mrec_status bucket_table(mrec_bert *m) {
    int P = m->cfg.max_positions;
    m->rel_buckets = malloc(sizeof *m->rel_buckets * (2 * (size_t)P - 1));
    if (!m->rel_buckets) return mrec_fail(MREC_ERR_NOMEM, "mpnet: %d relative positions", 2 * P - 1);
    for (int d = -(P - 1); d <= P - 1; d++) m->rel_buckets[d + P - 1] = rel_bucket(d, m->cfg.rel_buckets, 128);
    return MREC_OK;
}

/* Where the encoder's tensors are: a tower of a two-tower model always under
 * its name; a plain encoder under its model's prefix or under none. */
static const char *tower_prefix(const mrec_bert_config *c) {
    return c->project_dim ? "text_model.roberta." : c->proj_dim ? "text_model." : c->mpnet ? "mpnet." : "bert.";
}

mrec_status mrec_bert_load(mrec_bert *m, const char *dir) {
    memset(m, 0, sizeof *m);
    mrec_status st = read_config(&m->cfg, dir);
    if (st) return st;
    const mrec_bert_config *c = &m->cfg;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    mrec_safetensors sf;
    if ((st = mrec_safetensors_open(&sf, path))) return st;
    const char *prefix = tower_prefix(c);
    char probe[128];
    snprintf(probe, sizeof probe, "%sembeddings.word_embeddings.weight", prefix);
    mrec_weight_loader l = {&sf, mrec_safetensors_find(&sf, probe) || c->proj_dim ? prefix : "", NULL, 0};
    snprintf(probe, sizeof probe, "%sencoder.layers.0.intermediate.dense.weight", l.prefix);
    m->layers_plural = mrec_safetensors_find(&sf, probe) != NULL;
    m->layer = calloc((size_t)c->layers, sizeof *m->layer);
    st = m->layer ? take_all(m, &l) : mrec_fail(MREC_ERR_NOMEM, "%s: %d layers", path, c->layers);
    if (!st) {
        m->storage = malloc((size_t)l.floats * sizeof(float));
        if (!m->storage) st = mrec_fail(MREC_ERR_NOMEM, "%s: %lld parameters", path, (long long)l.floats);
    }
    if (!st) {
        m->floats = l.floats;
        l.next = m->storage, l.floats = 0;
        st = take_all(m, &l);
    }
    mrec_safetensors_close(&sf);
    if (!st && c->mpnet) st = bucket_table(m);
    if (st) mrec_bert_free(m);
    return st;
}

mrec_status mrec_bert_to_device(mrec_bert *m, mrec_context *ctx) {
    float *dev;
    mrec_status st = mrec_weights_place(ctx, m->storage, m->floats, &dev, &m->on);
    if (st) return st;
    m->bf16_acts = mrec_bf16_activations_native(ctx);
    if (!dev) return st; /* the CPU: the weights stay where they are */
    mrec_weight_loader l = {NULL, m->cfg.proj_dim ? tower_prefix(&m->cfg) : "", dev, 0};
    st = take_all(m, &l); /* re-points every tensor into the device copy */
    free(m->storage);
    m->storage = dev;
    return st;
}

void mrec_bert_free(mrec_bert *m) {
    mrec_weights_free(m->on, m->storage);
    free(m->layer);
    free(m->rel_buckets);
    memset(m, 0, sizeof *m);
}

/* ---- forward ---- */

typedef struct {
    float *x, *q, *k, *v, *attn, *ctx, *tmp, *inter, *mask_bias, *pos_bias;
    uint16_t *h16, *qkv16, *ctx16, *inter16; /* the bf16 forward's (layer_bf16), in place of q .. inter but tmp */
    int32_t *ids, *types, *mask, *pos, *buckets, *starts; /* the batch's inputs, copied from the host */
} activations;

/* Floats of the CPU attention's scratch: for the padded batch or for a sequence at a time without padding
 * (none on a GPU: its attention is one fused kernel) */
static size_t attention_scratch(const mrec_bert *m, int B, int T) {
    const mrec_bert_config *c = &m->cfg;
    if (m->on) return 1;
    int dh = c->hidden / c->heads;
    size_t padded = mrec_attention_scratch_floats(B, T, c->heads, dh), varlen = mrec_attention_varlen_scratch_floats(T, c->heads, dh);
    return padded > varlen ? padded : varlen;
}

/* Carves the activations (bf16: those of the bf16 forward); with a measuring arena this only counts. */
static mrec_status carve(mrec_arena *a, activations *t, const mrec_bert *m, int B, int T, int bf16) {
    const mrec_bert_config *c = &m->cfg;
    size_t BT = (size_t)B * T, H = (size_t)c->hidden, I = (size_t)c->intermediate;
    memset(t, 0, sizeof *t);
    struct { float **p; size_t n; } parts[] = {
        {&t->x, BT * H}, {&t->tmp, BT * H}, {&t->mask_bias, BT}, {&t->pos_bias, c->mpnet ? (size_t)c->heads * T * T : 1},
        {&t->q, bf16 ? 0 : BT * H}, {&t->k, bf16 ? 0 : BT * H}, {&t->v, bf16 ? 0 : BT * H},
        {&t->attn, bf16 ? 0 : attention_scratch(m, B, T)}, {&t->ctx, bf16 ? 0 : BT * H}, {&t->inter, bf16 ? 0 : BT * I},
        /* the bf16 arrays, in floats */
        {(float **)&t->h16, bf16 ? (BT * H + 1) / 2 : 0}, {(float **)&t->qkv16, bf16 ? (3 * BT * H + 1) / 2 : 0},
        {(float **)&t->ctx16, bf16 ? (BT * H + 1) / 2 : 0}, {(float **)&t->inter16, bf16 ? (BT * I + 1) / 2 : 0},
    };
    struct { int32_t **p; size_t n; } ints[] = {
        {&t->ids, BT}, {&t->types, BT}, {&t->mask, BT}, {&t->pos, BT}, {&t->buckets, c->mpnet ? 2 * (size_t)T - 1 : 1},
        {&t->starts, (size_t)B + 1},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (!parts[i].n) continue;
        *parts[i].p = mrec_arena_alloc(a, parts[i].n * sizeof(float));
        if (!*parts[i].p && a->base)
            return mrec_fail(MREC_ERR_NOMEM, "bert: workspace of %zu bytes is too small for batch %d x %d", a->capacity, B, T);
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        *ints[i].p = mrec_arena_alloc(a, ints[i].n * sizeof(int32_t));
        if (!*ints[i].p && a->base)
            return mrec_fail(MREC_ERR_NOMEM, "bert: workspace of %zu bytes is too small for batch %d x %d", a->capacity, B, T);
    }
    return MREC_OK;
}

size_t mrec_bert_workspace_bytes(const mrec_bert *m, int B, int T) {
    mrec_arena a = mrec_arena_measure();
    activations t;
    carve(&a, &t, m, B, T, m->bf16_acts);
    return a.peak;
}

/* A token's position id: its index, or for MPNet and RoBERTa the padding id
 * plus its rank among the sequence's real tokens (real counts them). */
static int position_of(const mrec_bert_config *c, int32_t id, int t, int *real) {
    if (!c->mpnet && !c->roberta) return t;
    return id != c->pad_token_id ? c->pad_token_id + ++*real : c->pad_token_id;
}

/* The ids arrive on the host: they are checked there, before any is copied,
 * so the ops can index with them. MPNet's positions count real tokens, so a
 * long sequence can run past the table even when T fits. */
static mrec_status check_ids(const mrec_bert *m, const int32_t *ids, const int32_t *type_ids, int B, int T) {
    const mrec_bert_config *c = &m->cfg;
    for (int b = 0; b < B; b++) {
        int real = 0;
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            int32_t id = ids[i], tt = type_ids ? type_ids[i] : 0;
            if (id < 0 || id >= c->vocab_size || tt < 0 || tt >= c->type_vocab)
                return mrec_fail(MREC_ERR_ARG, "bert: token %d (type %d) at position %d is outside the vocabulary of %d", id, tt, i,
                                 c->vocab_size);
            int pos = position_of(c, id, t, &real);
            if (pos < 0 || pos >= c->max_positions)
                return mrec_fail(MREC_ERR_ARG, "%s: position %d at token %d is past max_position_embeddings %d",
                                 c->mpnet ? "mpnet" : "roberta", pos, i, c->max_positions);
        }
    }
    return MREC_OK;
}

/* The batch without its padding, on the host: each sequence's length and its
 * real tokens' ids, types and positions end to end (N in all). Only where
 * every row of mask is ones then zeros (Hugging Face pads on the right), each
 * with a real token, and some padding exists; else nothing is made. */
typedef struct {
    int *len, N;
    int32_t *ids, *types, *pos;
    int32_t *starts; /* (B + 1): sequence b is tokens starts[b] .. starts[b + 1] */
} unpadded;

static mrec_status unpad(const mrec_bert_config *c, const int32_t *ids, const int32_t *type_ids, const int32_t *mask, int B,
                         int T, unpadded *u) {
    *u = (unpadded){0};
    int N = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *row = mask + (size_t)b * T;
        int n = 0;
        while (n < T && row[n]) n++;
        for (int t = n; t < T; t++)
            if (row[t]) return MREC_OK; /* a hole or left padding: the padded path */
        if (n == 0) return MREC_OK;
        N += n;
    }
    if (N == B * T) return MREC_OK;
    u->len = malloc(sizeof *u->len * (size_t)B);
    u->ids = malloc(sizeof *u->ids * (3 * (size_t)N + B + 1));
    if (!u->len || !u->ids) {
        free(u->len), free(u->ids), *u = (unpadded){0};
        return mrec_fail(MREC_ERR_NOMEM, "bert: the unpadded ids of %d tokens", N);
    }
    u->types = u->ids + N, u->pos = u->ids + 2 * (size_t)N, u->starts = u->ids + 3 * (size_t)N, u->N = N;
    for (int b = 0, at = 0; b < B; b++) {
        u->starts[b] = at;
        int real = 0, n = 0;
        for (; n < T && mask[(size_t)b * T + n]; n++, at++) {
            int32_t id = ids[(size_t)b * T + n];
            u->ids[at] = id;
            u->types[at] = type_ids ? type_ids[(size_t)b * T + n] : 0;
            u->pos[at] = position_of(c, id, n, &real);
        }
        u->len[b] = n;
    }
    u->starts[B] = N;
    return MREC_OK;
}

/* One post-LN layer with bf16 activations (mrec_kernels.h, "bf16 activations"), from t->h16, x's bf16 copy:
 * Q, K, V in one (3 H, H) product, bf16 out; attention on the packed rows (starts: the sequences without
 * padding, else padded with t->mask_bias); each block's output product in fp32 into t->tmp, then the
 * residual and LayerNorm into x (or `to`) and, where `more` layers follow, its bf16 copy into t->h16. */
static mrec_status layer_bf16(mrec_context *ctx, const mrec_bert *m, const mrec_bert_layer *L, const activations *t,
                              const int32_t *starts, int B, int T, int R, float *to, int more) {
    const mrec_bert_config *c = &m->cfg;
    int H = c->hidden, I = c->intermediate, nh = c->heads, dh = H / nh;
    float eps = c->layer_norm_eps;
    mrec_status st = mrec_qkv_bf16(ctx, t->qkv16, t->h16, L->q_w, L->k_w, L->v_w, L->q_b, L->k_b, L->v_b, R, H);
    if (!st)
        st = mrec_attention_bf16(ctx, t->ctx16, t->qkv16, t->qkv16 + H, t->qkv16 + 2 * H, 3 * H, starts ? NULL : t->mask_bias,
                                 c->mpnet ? t->pos_bias : NULL, starts, starts ? t->starts : NULL, 1.0f / sqrtf((float)dh), B, T, nh, dh);
    if (!st) st = mrec_linear_bf16(ctx, t->tmp, 0, t->ctx16, L->attn_out_w, L->attn_out_b, MREC_GEMM_NO_ACT, 0.0f, R, H, H, H);
    if (!st) st = mrec_layernorm_bf16(ctx, t->x, t->h16, t->x, t->tmp, L->attn_ln_w, L->attn_ln_b, eps, R, H);
    if (!st) st = mrec_linear_bf16(ctx, t->inter16, 1, t->h16, L->inter_w, L->inter_b, c->act, 0.0f, R, I, H, I);
    if (!st) st = mrec_linear_bf16(ctx, t->tmp, 0, t->inter16, L->out_w, L->out_b, MREC_GEMM_NO_ACT, 0.0f, R, H, I, H);
    if (!st) st = mrec_layernorm_bf16(ctx, to, more ? t->h16 : NULL, t->x, t->tmp, L->out_ln_w, L->out_ln_b, eps, R, H);
    return st;
}

static mrec_status forward(mrec_context *ctx, const mrec_bert *m, const int32_t *ids, const int32_t *type_ids, const int32_t *mask,
                           int B, int T, float *hidden, float *pooled, int skip_padding) {
    const mrec_bert_config *c = &m->cfg;
    mrec_status st = mrec_weights_check(ctx, m->on, "bert");
    if (st) return st;
    if (T < 1 || T > c->max_positions || B < 1)
        return mrec_fail(MREC_ERR_ARG, "bert: batch %d x %d tokens (at most %d positions)", B, T, c->max_positions);
    if (pooled && !m->pooler_w) return mrec_fail(MREC_ERR_NOT_FOUND, "bert: this checkpoint has no pooler");
    if ((st = check_ids(m, ids, type_ids, B, T))) return st;
    unpadded u = {0};
    if (skip_padding && mask && (st = unpad(c, ids, type_ids, mask, B, T, &u))) return st;
    /* R token rows: all B T, or without padding the N real ones */
    int H = c->hidden, I = c->intermediate, nh = c->heads, dh = H / nh, BT = B * T, R = u.len ? u.N : BT;
    size_t mark = ctx->workspace.used, n_ids = sizeof(int32_t) * (size_t)R;
    int bf16 = m->bf16_acts;
    activations t;
    if ((st = carve(&ctx->workspace, &t, m, B, T, bf16))) {
        free(u.len), free(u.ids);
        return st;
    }
    /* embeddings: word + token type + position, then LayerNorm. The inputs go up without waiting for the work
     * queued before (a forward behind another queues behind it, the GPU never idle between them) */
    if (u.len) {
        st = mrec_copy_to_device_staged(ctx, t.ids, u.ids, n_ids);
        if (!st && type_ids) st = mrec_copy_to_device_staged(ctx, t.types, u.types, n_ids);
        if (!st) st = mrec_copy_to_device_staged(ctx, t.pos, u.pos, n_ids);
    } else {
        st = mrec_copy_to_device_staged(ctx, t.ids, ids, n_ids);
        if (!st && type_ids) st = mrec_copy_to_device_staged(ctx, t.types, type_ids, n_ids);
        if (!st && mask) st = mrec_copy_to_device_staged(ctx, t.mask, mask, n_ids);
        if (!st) st = mrec_position_ids(ctx, t.pos, t.ids, c->mpnet || c->roberta ? c->pad_token_id : -1, B, T);
        if (!st) st = mrec_mask_bias(ctx, t.mask_bias, mask ? t.mask : NULL, BT);
    }
    if (!st)
        st = mrec_embedding_sum(ctx, t.x, m->word, t.ids, m->token_type, type_ids ? t.types : NULL, m->position, t.pos, R, H);
    if (!st && c->mpnet) { /* bias (nh, T, T), shared by all layers and sequences (a shorter one reads its top-left) */
        st = mrec_copy_to_device_staged(ctx, t.buckets, m->rel_buckets + (c->max_positions - T), sizeof(int32_t) * (2 * (size_t)T - 1));
        if (!st) st = mrec_rel_bias(ctx, t.pos_bias, m->rel_bias, t.buckets, nh, T);
    }
    if (!st && u.len) st = mrec_copy_to_device_staged(ctx, t.starts, u.starts, sizeof(int32_t) * ((size_t)B + 1));
    if (!st && bf16) st = mrec_layernorm_bf16(ctx, t.x, t.h16, t.x, NULL, m->emb_ln_w, m->emb_ln_b, c->layer_norm_eps, R, H);
    else if (!st) st = mrec_layernorm(ctx, t.x, t.x, m->emb_ln_w, m->emb_ln_b, c->layer_norm_eps, R, H);
    float scale = 1.0f / sqrtf((float)dh);
    for (int l = 0; bf16 && l < c->layers && !st; l++)
        st = layer_bf16(ctx, m, &m->layer[l], &t, u.len ? u.starts : NULL, B, T, R, l + 1 == c->layers && !u.len ? hidden : t.x,
                        l + 1 < c->layers);
    for (int l = 0; !bf16 && l < c->layers && !st; l++) {
        const mrec_bert_layer *L = &m->layer[l];
        float *const qkv[3] = {t.q, t.k, t.v};
        const float *const w[3] = {L->q_w, L->k_w, L->v_w}, *const bias[3] = {L->q_b, L->k_b, L->v_b};
        st = mrec_linear3(ctx, qkv, t.x, w, bias, R, H, H);
        if (!st && u.len) /* each sequence over its own tokens, all in one call */
            st = mrec_attention_varlen(ctx, t.ctx, t.q, t.k, t.v, c->mpnet ? t.pos_bias : NULL, scale, u.starts, t.starts, B, T, nh,
                                       dh, t.attn);
        else if (!st)
            st = mrec_attention(ctx, t.ctx, t.q, t.k, t.v, t.mask_bias, c->mpnet ? t.pos_bias : NULL, scale, B, T, nh, dh, t.attn);
        /* the residual and the LayerNorm in one pass (on a GPU; the CPU adds, then normalizes while the sum is in cache) */
        if (!st) st = mrec_gemm(ctx, t.tmp, t.ctx, L->attn_out_w, L->attn_out_b, 1, 0, 0, 1, R, H, H, H, H, H);
        if (!st) st = mrec_add_layernorm(ctx, t.x, t.tmp, t.x, L->attn_ln_w, L->attn_ln_b, c->layer_norm_eps, R, H);
        if (!st) st = mrec_ffn(ctx, t.tmp, t.x, L->inter_w, L->inter_b, c->act, L->out_w, L->out_b, 0.0f, t.inter, R, H, I);
        float *to = l + 1 == c->layers && !u.len ? hidden : t.x;
        if (!st) st = mrec_add_layernorm(ctx, to, t.tmp, t.x, L->out_ln_w, L->out_ln_b, c->layer_norm_eps, R, H);
    }
    /* back to (B, T, H), padding rows zero */
    if (!st && u.len) st = mrec_fill(ctx, hidden, 0.0f, (int64_t)BT * H);
    for (int b = 0, at = 0; u.len && b < B && !st; at += u.len[b++])
        st = mrec_copy_rows(ctx, hidden + (size_t)b * T * H, H, t.x + (size_t)at * H, H, u.len[b], H);
    /* pooled = tanh([CLS] rows Wp^T + bp); the [CLS] rows are stride T * H in hidden */
    if (!st && pooled) st = mrec_gemm(ctx, pooled, hidden, m->pooler_w, m->pooler_b, 1, 0, 0, 1, B, H, H, T * H, H, H);
    if (!st && pooled) st = mrec_activation(ctx, pooled, pooled, MREC_ACT_TANH, 0, (int64_t)B * H);
    ctx->workspace.used = mark;
    free(u.len), free(u.ids);
    return st;
}

mrec_status mrec_bert_forward(mrec_context *ctx, const mrec_bert *m, const int32_t *ids, const int32_t *type_ids,
                              const int32_t *mask, int B, int T, float *hidden, float *pooled) {
    return forward(ctx, m, ids, type_ids, mask, B, T, hidden, pooled, 0);
}

mrec_status mrec_bert_forward_unpadded(mrec_context *ctx, const mrec_bert *m, const int32_t *ids, const int32_t *type_ids,
                                       const int32_t *mask, int B, int T, float *hidden, float *pooled) {
    return forward(ctx, m, ids, type_ids, mask, B, T, hidden, pooled, 1);
}

mrec_status mrec_bert_project(mrec_context *ctx, const mrec_bert *m, const float *hidden, int B, int T, float *out) {
    const mrec_bert_config *c = &m->cfg;
    if (!m->proj_w) return mrec_fail(MREC_ERR_NOT_FOUND, "bert: this checkpoint has no text_projection");
    mrec_status st = mrec_weights_check(ctx, m->on, "bert");
    if (st) return st;
    int H = c->hidden, P = c->proj_dim, D = c->project_dim;
    /* the [CLS] rows are stride T * H in hidden */
    if (!D) return mrec_gemm(ctx, out, hidden, m->proj_w, m->proj_b, 1, 0, 0, 1, B, P, H, T * H, H, P);
    /* AltCLIP: pre_LN, transformation and the projection on the first rows only (HF normalizes and
     * transforms every token, then keeps the first: the same numbers) */
    size_t mark = ctx->workspace.used;
    float *cls = mrec_arena_alloc(&ctx->workspace, sizeof(float) * (size_t)B * H);
    float *mid = mrec_arena_alloc(&ctx->workspace, sizeof(float) * (size_t)B * D);
    if (!cls || !mid) st = mrec_fail(MREC_ERR_NOMEM, "bert: workspace too small for the projection of %d texts", B);
    if (!st) st = mrec_copy_rows(ctx, cls, H, hidden, T * H, B, H);
    if (!st) st = mrec_layernorm(ctx, cls, cls, m->pre_ln_w, m->pre_ln_b, c->layer_norm_eps, B, H);
    if (!st) st = mrec_gemm(ctx, mid, cls, m->trans_w, m->trans_b, 1, 0, 0, 1, B, D, H, H, H, D);
    if (!st) st = mrec_gemm(ctx, out, mid, m->proj_w, NULL, 1, 0, 0, 1, B, P, D, D, D, P);
    ctx->workspace.used = mark;
    return st;
}
