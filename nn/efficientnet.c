/* efficientnet.c: ALIGN's image tower, Hugging Face's AlignVisionModel
 * (EfficientNet as ALIGN builds it), forward only, on the op set.
 *
 *   x = swish(bn(conv3x3/2(zero_pad(image, left 0, right 1, top 0, bottom 1))))   the stem, a valid conv
 *   per MBConv block (stage i, repeat j):
 *     y = swish(bn(conv1x1(x)))                  expansion to c_in * expand_ratio (absent for ratio 1)
 *     y = swish(bn(depthwise_kxk/s(y)))          s = 2: zero pad (k/2 - 1, k/2) top/left and bottom/right,
 *                                                (k/2, k/2) for blocks in depthwise_padding; s = 1: "same"
 *     y = y * sigmoid(W_e swish(W_r mean_hw(y) + b_r) + b_e)   squeeze-excite, per channel
 *     y = bn(conv1x1(y)); x = j > 0 ? x + y : y  the residual on every block of a stage but the first
 *   pooled = mean over H, W of x   (AvgPool2d(hidden_dim, ceil_mode) over a smaller map: the mean)
 *   embeds = pooled / |pooled|     (AlignModel's image_embeds; there is no image projection)
 * Repeats per stage: ceil(depth_coefficient * num_block_repeats[i]); only
 * the first block of a stage strides. Dropout and drop-connect are off
 * (inference). Every bn is folded into its conv at load. Images go through
 * one at a time on the CPU (the 1x1 convs are GEMMs over one image's
 * pixels), sixteen at a time on a GPU, where a pass's launches become one
 * CUDA graph. In bf16 on a CPU each expansion hands its output to the
 * depthwise conv in bf16 (mrec_bf16_planes_native).
 * Reference: transformers' models/align/modeling_align.py and
 * configuration_align.py (AlignVisionConfig's defaults are the ones below).
 */
#include "mrec_efficientnet.h"
#include "mrec_hf_config.h"
#include "mrec_io.h"
#include "mrec_safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STAGES 16
#define MAX_BLOCKS 1024    /* align-base has 55 */
#define MAX_CHANNELS 65536 /* align-base's widest expansion is 3840 */
#define MAX_KERNEL 15
#define GPU_GROUP 16

/* ---- config ---- */

typedef struct {
    int n_stages;
    int kernel[MAX_STAGES], stride[MAX_STAGES], repeats[MAX_STAGES], expand[MAX_STAGES];
    int sym_pad[MAX_BLOCKS]; /* 1: block number listed in depthwise_padding */
    double depth;
    float eps;
    int hidden_dim;
} config;

/* obj[key]: a list of n integers in [lo, hi], or def (n_def values) when absent. *n receives the length. */
static mrec_status int_list(const cJSON *obj, const char *file, const char *where, const char *key, const int *def,
                            int n_def, int lo, int hi, int max_n, int *out, int *n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        memcpy(out, def, sizeof(int) * (size_t)n_def);
        *n = n_def;
        return MREC_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > max_n)
        return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s%s\" is not a list of at most %d integers", file, where, key, max_n);
    *n = cJSON_GetArraySize(v);
    for (int i = 0; i < *n; i++) {
        const cJSON *x = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(x) || x->valuedouble != floor(x->valuedouble) || x->valuedouble < lo || x->valuedouble > hi)
            return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s%s\"[%d] is not an integer in [%d, %d]", file, where, key, i, lo, hi);
        out[i] = (int)x->valuedouble;
    }
    return MREC_OK;
}

static mrec_status read_config(config *c, const char *dir) {
    static const int KERNELS[7] = {3, 3, 5, 3, 5, 5, 3}, STRIDES[7] = {1, 2, 2, 2, 1, 2, 1};
    static const int REPEATS[7] = {1, 2, 2, 3, 3, 4, 1}, EXPANDS[7] = {1, 6, 6, 6, 6, 6, 6};
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *j;
    mrec_status st = mrec_read_json_object(path, 0, &j);
    if (st) return st;
    memset(c, 0, sizeof *c);
    /* an AlignConfig keeps the tower in "vision_config"; an AlignVisionConfig is the tower */
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "vision_config");
    const char *where = cJSON_IsObject(v) ? "vision_config." : "";
    if (!cJSON_IsObject(v)) v = j;
    int n[4], pads[MAX_BLOCKS], n_pads = 0;
    const char *act = "swish", *pooling = "mean", *type = "align";
    st = mrec_json_string(j, path, "", "model_type", "align", &type);
    if (!st && strcmp(type, "align") && strcmp(type, "align_vision_model"))
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: \"model_type\" is \"%s\", not align or align_vision_model", path, type);
    if (!st) st = int_list(v, path, where, "kernel_sizes", KERNELS, 7, 1, MAX_KERNEL, MAX_STAGES, c->kernel, &n[0]);
    if (!st) st = int_list(v, path, where, "strides", STRIDES, 7, 1, 2, MAX_STAGES, c->stride, &n[1]);
    if (!st) st = int_list(v, path, where, "num_block_repeats", REPEATS, 7, 1, MAX_BLOCKS, MAX_STAGES, c->repeats, &n[2]);
    if (!st) st = int_list(v, path, where, "expand_ratios", EXPANDS, 7, 1, 64, MAX_STAGES, c->expand, &n[3]);
    if (!st) st = int_list(v, path, where, "depthwise_padding", NULL, 0, 0, MAX_BLOCKS - 1, MAX_BLOCKS, pads, &n_pads);
    if (!st && (n[0] != n[1] || n[0] != n[2] || n[0] != n[3] || n[0] < 1))
        st = mrec_fail(MREC_ERR_FORMAT, "%s: kernel_sizes, strides, num_block_repeats and expand_ratios have %d, %d, %d and %d stages",
                       path, n[0], n[1], n[2], n[3]);
    for (int i = 0; !st && i < n[0]; i++)
        if (c->kernel[i] % 2 == 0) st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: %skernel_sizes[%d] is %d (odd sizes only, as \"same\" padding needs)", path, where, i, c->kernel[i]);
    c->n_stages = n[0];
    for (int i = 0; !st && i < n_pads; i++) c->sym_pad[pads[i]] = 1;
    const cJSON *dc = cJSON_GetObjectItemCaseSensitive(v, "depth_coefficient");
    c->depth = 3.1;
    if (!st && dc && !cJSON_IsNull(dc)) {
        if (!cJSON_IsNumber(dc) || !(dc->valuedouble > 0 && dc->valuedouble <= 64))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: \"%sdepth_coefficient\" is not a number in (0, 64]", path, where);
        else c->depth = dc->valuedouble;
    }
    if (!st) st = mrec_json_positive(v, path, where, "batch_norm_eps", 1e-3, 1.0, &c->eps);
    if (!st) st = mrec_json_int(v, path, where, "hidden_dim", 0, 2560, 1, 1 << 20, &c->hidden_dim);
    if (!st) st = mrec_json_string(v, path, where, "hidden_act", "swish", &act);
    if (!st && strcmp(act, "swish") && strcmp(act, "silu"))
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: \"%shidden_act\" is \"%s\" (mrec implements swish)", path, where, act);
    if (!st) st = mrec_json_string(v, path, where, "pooling_type", "mean", &pooling);
    if (!st && strcmp(pooling, "mean"))
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: \"%spooling_type\" is \"%s\" (mrec implements mean)", path, where, pooling);
    cJSON_Delete(j);
    return st;
}

/* ---- weights ---- */

/* The blocks' shapes: strides and paddings from the config, widths from the
 * tensors (checked again, with everything else, when they are taken). */
static mrec_status layout(mrec_efficientnet *m, const config *c, const mrec_safetensors *sf, const char *prefix) {
    char name[200];
    int total = 0;
    for (int i = 0; i < c->n_stages; i++) {
        double r = ceil(c->depth * c->repeats[i]);
        if (r > MAX_BLOCKS - total) return mrec_fail(MREC_ERR_FORMAT, "%s: more than %d blocks", sf->path, MAX_BLOCKS);
        total += (int)r;
    }
    snprintf(name, sizeof name, "%sencoder.blocks.%d.depthwise_conv.depthwise_conv.weight", prefix, total);
    if (mrec_safetensors_find(sf, name))
        return mrec_fail(MREC_ERR_SHAPE, "%s: has \"%s\", but its config makes %d blocks", sf->path, name, total);
    m->block = calloc((size_t)total, sizeof *m->block);
    if (!m->block) return mrec_fail(MREC_ERR_NOMEM, "%s: %d blocks", sf->path, total);
    m->n_blocks = total;
    snprintf(name, sizeof name, "%sembeddings.convolution.weight", prefix);
    const mrec_st_entry *e = mrec_safetensors_find(sf, name);
    if (!e) return mrec_fail(MREC_ERR_NOT_FOUND, "%s: no tensor \"%s\" (is this an ALIGN or AlignVision checkpoint?)", sf->path, name);
    if (e->ndim != 4 || e->shape[0] < 1 || e->shape[0] > MAX_CHANNELS)
        return mrec_fail(MREC_ERR_SHAPE, "%s: \"%s\" should be (C, 3, 3, 3) with C in [1, %d]", sf->path, name, MAX_CHANNELS);
    m->stem_c = (int)e->shape[0];
    int b = 0, c_in = m->stem_c;
    for (int i = 0; i < c->n_stages; i++)
        for (int j = 0; j < (int)ceil(c->depth * c->repeats[i]); j++, b++) {
            mrec_effnet_block *B = &m->block[b];
            B->c_in = c_in, B->k = c->kernel[i], B->stride = j ? 1 : c->stride[i], B->residual = j > 0;
            int half = B->k / 2, lo = B->stride == 2 && !c->sym_pad[b] ? half - 1 : half;
            B->pad_top = B->pad_left = lo, B->pad_bottom = B->pad_right = half;
            /* c_exp from the depthwise conv, c_se from the reduce conv, c_out from the projection */
            static const char *const parts[3] = {"depthwise_conv.depthwise_conv.weight", "squeeze_excite.reduce.weight",
                                                 "projection.project_conv.weight"};
            int *dims[3] = {&B->c_exp, &B->c_se, &B->c_out};
            for (int p = 0; p < 3; p++) {
                snprintf(name, sizeof name, "%sencoder.blocks.%d.%s", prefix, b, parts[p]);
                e = mrec_safetensors_find(sf, name);
                if (!e) return mrec_fail(MREC_ERR_NOT_FOUND, "%s: no tensor \"%s\"", sf->path, name);
                if (e->ndim != 4 || e->shape[0] < 1 || e->shape[0] > MAX_CHANNELS)
                    return mrec_fail(MREC_ERR_SHAPE, "%s: \"%s\" should be 4-D with 1 to %d outputs", sf->path, name, MAX_CHANNELS);
                *dims[p] = (int)e->shape[0];
            }
            snprintf(name, sizeof name, "%sencoder.blocks.%d.expansion.expand_conv.weight", prefix, b);
            int has_expand = mrec_safetensors_find(sf, name) != NULL;
            B->expands = has_expand;
            if (has_expand != (c->expand[i] != 1))
                return mrec_fail(MREC_ERR_SHAPE, "%s: block %d %s \"%s\", but its stage's expand ratio is %d", sf->path, b,
                                 has_expand ? "has" : "lacks", name, c->expand[i]);
            if (!has_expand && B->c_exp != c_in)
                return mrec_fail(MREC_ERR_SHAPE, "%s: block %d does not expand but its depthwise conv has %d channels, not %d",
                                 sf->path, b, B->c_exp, c_in);
            if (B->residual && B->c_out != c_in)
                return mrec_fail(MREC_ERR_SHAPE, "%s: block %d adds its input (%d channels) to its output (%d)", sf->path, b,
                                 c_in, B->c_out);
            c_in = B->c_out;
        }
    m->features = c_in;
    return MREC_OK;
}

/* conv weight (d0, d1, d2, d3) + BatchNorm bn.{weight, bias, running_mean, running_var} (d0): the bias
 * lands in *b, the rest in rest[0..2] */
static mrec_status take_conv_bn(mrec_weight_loader *l, float **w, float **b, float **rest, const char *conv,
                                const char *bn, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    char name[240];
    snprintf(name, sizeof name, "%s.weight", conv);
    mrec_status st = mrec_weights_take(l, w, name, 4, d0, d1, d2, d3);
    static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
    float **dst[4] = {&rest[0], b, &rest[1], &rest[2]};
    for (int i = 0; i < 4 && !st; i++) {
        snprintf(name, sizeof name, "%s.%s", bn, parts[i]);
        st = mrec_weights_take(l, dst[i], name, 1, d0, 0, 0, 0);
    }
    return st;
}

static mrec_status take_all(mrec_efficientnet *m, mrec_weight_loader *l) {
    mrec_status st = take_conv_bn(l, &m->stem_w, &m->stem_b, m->stem_rest, "embeddings.convolution", "embeddings.batchnorm",
                                  m->stem_c, 3, 3, 3);
    for (int b = 0; b < m->n_blocks && !st; b++) {
        mrec_effnet_block *B = &m->block[b];
        char conv[160], bn[160];
#define NAMES(c_, n_)                                                                 \
    snprintf(conv, sizeof conv, "encoder.blocks.%d.%s", b, c_), snprintf(bn, sizeof bn, "encoder.blocks.%d.%s", b, n_)
        if (B->expands) {
            NAMES("expansion.expand_conv", "expansion.expand_bn");
            st = take_conv_bn(l, &B->expand_w, &B->expand_b, B->bn_rest[0], conv, bn, B->c_exp, B->c_in, 1, 1);
        }
        NAMES("depthwise_conv.depthwise_conv", "depthwise_conv.depthwise_norm");
        if (!st) st = take_conv_bn(l, &B->dw_w, &B->dw_b, B->bn_rest[1], conv, bn, B->c_exp, 1, B->k, B->k);
        NAMES("squeeze_excite.reduce.weight", "squeeze_excite.reduce.bias");
        if (!st) st = mrec_weights_take(l, &B->se_reduce_w, conv, 4, B->c_se, B->c_exp, 1, 1);
        if (!st) st = mrec_weights_take(l, &B->se_reduce_b, bn, 1, B->c_se, 0, 0, 0);
        NAMES("squeeze_excite.expand.weight", "squeeze_excite.expand.bias");
        if (!st) st = mrec_weights_take(l, &B->se_expand_w, conv, 4, B->c_exp, B->c_se, 1, 1);
        if (!st) st = mrec_weights_take(l, &B->se_expand_b, bn, 1, B->c_exp, 0, 0, 0);
        NAMES("projection.project_conv", "projection.project_bn");
        if (!st) st = take_conv_bn(l, &B->project_w, &B->project_b, B->bn_rest[2], conv, bn, B->c_out, B->c_exp, 1, 1);
#undef NAMES
    }
    return st;
}

/* weight (C, per) and bias = beta are folded in place; var must be >= 0 */
static mrec_status fold(float *w, float *b, float *const *rest, float eps, int C, int64_t per, const char *file,
                        const char *what, int block) {
    for (int c = 0; c < C; c++)
        if (!(rest[2][c] >= 0.0f))
            return mrec_fail(MREC_ERR_FORMAT, "%s: block %d's %s running_var[%d] is %g", file, block, what, c, rest[2][c]);
    mrec_batchnorm_fold(w, b, NULL, rest[0], b, rest[1], rest[2], eps, C, per);
    return MREC_OK;
}

mrec_status mrec_efficientnet_load(mrec_efficientnet *m, const char *dir) {
    memset(m, 0, sizeof *m);
    config c;
    mrec_status st = read_config(&c, dir);
    if (st) return st;
    m->bn_eps = c.eps, m->pool_window = c.hidden_dim;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    mrec_safetensors sf;
    if ((st = mrec_safetensors_open(&sf, path))) return st;
    const char *prefix = mrec_safetensors_find(&sf, "vision_model.embeddings.convolution.weight") ? "vision_model." : "";
    st = layout(m, &c, &sf, prefix);
    /* measure (checking every shape), allocate, read */
    mrec_weight_loader l = {&sf, prefix, NULL, 0};
    if (!st) st = take_all(m, &l);
    if (!st && !(m->storage = malloc(sizeof(float) * (size_t)l.floats)))
        st = mrec_fail(MREC_ERR_NOMEM, "%s: %lld parameters", path, (long long)l.floats);
    if (!st) {
        m->floats = l.floats;
        l.next = m->storage, l.floats = 0;
        st = take_all(m, &l);
    }
    mrec_safetensors_close(&sf);
    if (!st) st = fold(m->stem_w, m->stem_b, m->stem_rest, c.eps, m->stem_c, 27, path, "stem", -1);
    for (int b = 0; b < m->n_blocks && !st; b++) {
        mrec_effnet_block *B = &m->block[b];
        if (B->expands) st = fold(B->expand_w, B->expand_b, B->bn_rest[0], c.eps, B->c_exp, B->c_in, path, "expand_bn", b);
        if (!st) st = fold(B->dw_w, B->dw_b, B->bn_rest[1], c.eps, B->c_exp, (int64_t)B->k * B->k, path, "depthwise_norm", b);
        if (!st) st = fold(B->project_w, B->project_b, B->bn_rest[2], c.eps, B->c_out, B->c_exp, path, "project_bn", b);
    }
    if (st) mrec_efficientnet_free(m);
    return st;
}

mrec_status mrec_efficientnet_to_device(mrec_efficientnet *m, mrec_context *ctx) {
    float *dev;
    mrec_status st = mrec_weights_place(ctx, m->storage, m->floats, &dev, &m->on);
    if (st || !dev) return st;
    mrec_weight_loader l = {NULL, "", dev, 0};
    st = take_all(m, &l); /* re-points every tensor into the device copy */
    free(m->storage);
    m->storage = dev;
    return st;
}

void mrec_efficientnet_free(mrec_efficientnet *m) {
    mrec_weights_free(m->on, m->storage);
    free(m->block);
    memset(m, 0, sizeof *m);
}

/* ---- forward ---- */

static int group_of(const mrec_efficientnet *m) { return m->on ? GPU_GROUP : 1; }

static mrec_conv2d_shape pointwise(int G, int c_in, int c_out, int h, int w) {
    return (mrec_conv2d_shape){G, c_in, h, w, c_out, 1, 1, 1, 1, 0, 0, 1};
}

static mrec_conv2d_shape stem_shape(const mrec_efficientnet *m, int G, int H, int W) {
    return (mrec_conv2d_shape){G, 3, H + 1, W + 1, m->stem_c, 3, 3, 2, 2, 0, 0, 1};
}

static mrec_depthwise_shape dw_shape(const mrec_effnet_block *B, int G, int h, int w) {
    return (mrec_depthwise_shape){G, B->c_exp, h, w, B->k, B->k, B->stride, B->stride,
                                  B->pad_top, B->pad_bottom, B->pad_left, B->pad_right};
}

typedef struct {
    size_t act, se, col; /* floats of the largest activation and squeeze vector; bytes of conv workspace */
    int out_h, out_w;    /* the last feature map */
} sizes;

/* Walks a pass of G images: the largest buffers. ctx NULL: the CPU's sizes. */
static mrec_status plan(const mrec_efficientnet *m, mrec_context *ctx, int G, int H, int W, sizes *z) {
    memset(z, 0, sizeof *z);
    mrec_status st = MREC_OK;
#define SEE_CONV(s_)                                                                     \
    do {                                                                                 \
        mrec_conv2d_shape cs_ = s_;                                                      \
        size_t c_ = 0; /* none on the CPU */                                             \
        if (ctx && !st) st = mrec_conv2d_workspace_bytes(ctx, &cs_, &c_);                \
        z->col = c_ > z->col ? c_ : z->col;                                              \
    } while (0)
#define SEE_ACT(n_) z->act = (size_t)(n_) > z->act ? (size_t)(n_) : z->act
    mrec_conv2d_shape s = stem_shape(m, G, H, W);
    SEE_CONV(s);
    SEE_ACT((size_t)G * 3 * (H + 1) * (W + 1));
    int h = mrec_conv2d_out_h(&s), w = mrec_conv2d_out_w(&s);
    if (h < 1 || w < 1) return mrec_fail(MREC_ERR_ARG, "efficientnet: %dx%d images are too small for the stem", W, H);
    SEE_ACT((size_t)G * m->stem_c * h * w);
    for (int b = 0; b < m->n_blocks && !st; b++) {
        const mrec_effnet_block *B = &m->block[b];
        if (B->expands) SEE_CONV(pointwise(G, B->c_in, B->c_exp, h, w));
        SEE_ACT((size_t)G * B->c_exp * h * w);
        mrec_depthwise_shape d = dw_shape(B, G, h, w);
        int h2 = mrec_depthwise_out_h(&d), w2 = mrec_depthwise_out_w(&d);
        if (h2 < 1 || w2 < 1) return mrec_fail(MREC_ERR_ARG, "efficientnet: %dx%d images are too small for block %d", W, H, b);
        h = h2, w = w2;
        SEE_ACT((size_t)G * B->c_exp * h * w);
        SEE_CONV(pointwise(G, B->c_exp, B->c_out, h, w));
        SEE_ACT((size_t)G * B->c_out * h * w);
        size_t se = (size_t)G * (B->c_exp > B->c_se ? B->c_exp : B->c_se);
        z->se = se > z->se ? se : z->se;
    }
#undef SEE_CONV
#undef SEE_ACT
    z->out_h = h, z->out_w = w;
    return st;
}

/* The workspace of a pass: the images, their padded copy, three activations, the squeeze vectors, the
 * convolution workspace, the pooled and normalized features. */
typedef struct {
    float *image, *padded, *buf[3], *se[2], *feat, *emb;
    void *col;
} activations;

static int carve(mrec_arena *a, activations *t, const mrec_efficientnet *m, int G, int H, int W, const sizes *z) {
    int ok = (t->image = mrec_arena_alloc(a, sizeof(float) * (size_t)G * 3 * H * W)) != NULL;
    ok &= (t->padded = mrec_arena_alloc(a, sizeof(float) * (size_t)G * 3 * (H + 1) * (W + 1))) != NULL;
    for (int i = 0; i < 3; i++) ok &= (t->buf[i] = mrec_arena_alloc(a, sizeof(float) * z->act)) != NULL;
    for (int i = 0; i < 2; i++) ok &= (t->se[i] = mrec_arena_alloc(a, sizeof(float) * z->se)) != NULL;
    t->col = z->col ? mrec_arena_alloc(a, z->col) : NULL;
    ok &= !z->col || t->col;
    ok &= (t->feat = mrec_arena_alloc(a, sizeof(float) * (size_t)G * m->features)) != NULL;
    ok &= (t->emb = mrec_arena_alloc(a, sizeof(float) * (size_t)G * m->features)) != NULL;
    return ok;
}

void mrec_efficientnet_out_size(const mrec_efficientnet *m, int h, int w, int *out_h, int *out_w) {
    sizes z;
    *out_h = *out_w = 0;
    if (!plan(m, NULL, 1, h, w, &z)) *out_h = z.out_h, *out_w = z.out_w;
}

size_t mrec_efficientnet_workspace_bytes(const mrec_efficientnet *m, int h, int w) {
    sizes z;
    if (plan(m, m->on, group_of(m), h, w, &z)) return SIZE_MAX; /* the reserve fails, naming the size */
    mrec_arena a = mrec_arena_measure();
    activations t;
    carve(&a, &t, m, group_of(m), h, w, &z);
    return a.peak;
}

/* out (G, c_out, h, w) = conv1x1(in) + bias, then swish if act, in one pass over out */
static mrec_status conv1x1(mrec_context *ctx, float *out, const float *in, const float *wt, const float *bias, int G, int c_in,
                           int c_out, int h, int w, const activations *t, size_t col, int act) {
    mrec_conv2d_shape s = pointwise(G, c_in, c_out, h, w);
    if (act) return mrec_conv2d_act(ctx, out, in, wt, bias, 0.0f, MREC_ACT_SILU, t->col, col, &s);
    return mrec_conv2d(ctx, out, in, wt, bias, t->col, col, &s);
}

/* One MBConv block on x (G, c_in, h, w); *out receives the buffer holding its output, *h, *w its size. */
static mrec_status block_forward(mrec_context *ctx, const mrec_effnet_block *B, const activations *t, size_t col, float *x,
                                 float **out, float *free1, float *free2, int G, int *h, int *w, int half) {
    mrec_status st = MREC_OK;
    mrec_depthwise_shape d = dw_shape(B, G, *h, *w);
    int h2 = mrec_depthwise_out_h(&d), w2 = mrec_depthwise_out_w(&d);
    int64_t R = (int64_t)G * B->c_exp, HW = (int64_t)h2 * w2;
    /* the expansion, then the depthwise conv with squeeze-excite's per-channel means (G, c_exp); in bf16 on a CPU
     * the expansion's output goes over as bf16, the values the depthwise conv would round it to */
    if (B->expands && half) {
        mrec_conv2d_shape s = pointwise(G, B->c_in, B->c_exp, *h, *w);
        st = mrec_conv2d_to_bf16(ctx, (uint16_t *)free1, x, B->expand_w, B->expand_b, MREC_ACT_SILU, &s);
        if (!st)
            st = mrec_depthwise_conv2d_act_from_bf16(ctx, free2, (const uint16_t *)free1, B->dw_w, B->dw_b, MREC_ACT_SILU, t->se[0],
                                                     &d);
    } else {
        const float *y = x;
        if (B->expands) {
            st = conv1x1(ctx, free1, x, B->expand_w, B->expand_b, G, B->c_in, B->c_exp, *h, *w, t, col, 1);
            y = free1;
        }
        if (!st) st = mrec_depthwise_conv2d_act(ctx, free2, y, B->dw_w, B->dw_b, MREC_ACT_SILU, t->se[0], &d);
    }
    /* squeeze-excite: the means -> (G, c_se) -> swish -> (G, c_exp) -> sigmoid gate */
    if (!st) st = mrec_gemm(ctx, t->se[1], t->se[0], B->se_reduce_w, B->se_reduce_b, 1, 0, 0, 1, G, B->c_se, B->c_exp,
                            B->c_exp, B->c_exp, B->c_se);
    if (!st) st = mrec_activation(ctx, t->se[1], t->se[1], MREC_ACT_SILU, 0, (int64_t)G * B->c_se);
    if (!st) st = mrec_gemm(ctx, t->se[0], t->se[1], B->se_expand_w, B->se_expand_b, 1, 0, 0, 1, G, B->c_exp, B->c_se,
                            B->c_se, B->c_se, B->c_exp);
    if (!st) st = mrec_sigmoid_gate_rows(ctx, free2, free2, t->se[0], (int)R, (int)HW);
    /* projection into the buffer the expansion used (free1), then the residual */
    if (!st) st = conv1x1(ctx, free1, free2, B->project_w, B->project_b, G, B->c_exp, B->c_out, h2, w2, t, col, 0);
    if (!st && B->residual) st = mrec_add(ctx, free1, free1, x, (int64_t)G * B->c_out * HW);
    *out = free1, *h = h2, *w = w2;
    return st;
}

/* A forward's inputs and outputs, for the passes over a share of the images. */
typedef struct {
    const mrec_efficientnet *m;
    const float *images;
    int H, W;
    float *pooled, *embeds, *last;
} forward_args;

size_t mrec_efficientnet_batch_workspace_bytes(const mrec_context *ctx, const mrec_efficientnet *m, int B, int h, int w) {
    size_t pass = mrec_efficientnet_workspace_bytes(m, h, w); /* a pass is G images, whatever the share */
    return mrec_context_split_bytes(ctx, B, pass, pass);
}

/* One pass of G images already on the device (t->image), n of them kept: everything from the stem's padded copy
 * to the outputs, launches only, so that on a GPU it can be one CUDA graph (mrec_graph_run): 55 blocks of about ten
 * launches each are ALIGN's, whose launch costs would otherwise leave the GPU idle between short kernels. */
typedef struct {
    const forward_args *f;
    const activations *t;
    const sizes *z;
    int i0, n;
} pass_args;

static mrec_status pass_body(mrec_context *ctx, void *arg) {
    const pass_args *p = arg;
    const forward_args *f = p->f;
    const mrec_efficientnet *m = f->m;
    const activations *t = p->t;
    int G = group_of(m), C = m->features, H = f->H, W = f->W, n = p->n, i0 = p->i0, h = H, w = W;
    size_t plane_p = (size_t)(H + 1) * (W + 1);
    float *x = t->buf[0], *f1 = t->buf[1], *f2 = t->buf[2];
    mrec_status st = MREC_OK;
    for (int q = 0; q < n * 3 && !st; q++) /* into the zero-padded planes: one row and one column more */
        st = mrec_copy_rows(ctx, t->padded + q * plane_p, W + 1, t->image + (size_t)q * H * W, W, H, W);
    mrec_conv2d_shape s = stem_shape(m, G, H, W);
    if (!st) st = mrec_conv2d_act(ctx, x, t->padded, m->stem_w, m->stem_b, 0.0f, MREC_ACT_SILU, t->col, p->z->col, &s);
    h = mrec_conv2d_out_h(&s), w = mrec_conv2d_out_w(&s);
    int half = mrec_bf16_planes_native(ctx) && !m->float_planes;
    for (int b = 0; b < m->n_blocks && !st; b++) {
        float *y;
        st = block_forward(ctx, &m->block[b], t, p->z->col, x, &y, f1, f2, G, &h, &w, half);
        /* the output becomes the next input; the old input is free */
        f1 = x, x = y;
    }
    size_t map = (size_t)C * h * w;
    if (!st && f->last) st = mrec_copy_rows(ctx, f->last + i0 * map, (int)map, x, (int)map, n, (int)map);
    if (!st) st = mrec_row_mean(ctx, t->feat, x, G * C, h * w);
    if (!st && f->pooled) st = mrec_copy_rows(ctx, f->pooled + (size_t)i0 * C, C, t->feat, C, n, C);
    /* HF divides by the norm with no floor; 1e-12 only keeps an all-zero row at zero instead of NaN */
    if (!st && f->embeds) st = mrec_l2_normalize_rows(ctx, t->emb, t->feat, 1e-12f, G, C);
    if (!st && f->embeds) st = mrec_copy_rows(ctx, f->embeds + (size_t)i0 * C, C, t->emb, C, n, C);
    return st;
}

/* Images [lo, hi): G a pass, from ctx's workspace. */
static mrec_status passes(mrec_context *ctx, int lo, int hi, void *arg) {
    const forward_args *f = arg;
    const mrec_efficientnet *m = f->m;
    int G = group_of(m), H = f->H, W = f->W;
    sizes z;
    mrec_status st = plan(m, m->on, G, H, W, &z);
    if (st) return st;
    size_t mark = ctx->workspace.used;
    activations t;
    if (!carve(&ctx->workspace, &t, m, G, H, W, &z)) {
        ctx->workspace.used = mark;
        return mrec_fail(MREC_ERR_NOMEM, "efficientnet: workspace of %zu bytes is too small for %dx%d images",
                         ctx->workspace.capacity, W, H);
    }
    size_t image = (size_t)3 * H * W, plane_p = (size_t)(H + 1) * (W + 1);
    /* the stem's zero pad: one more row and column, zeros written once per call (mrec_mask_bias with no mask
     * writes zeros), the images' rows copied inside each pass */
    st = mrec_mask_bias(ctx, t.padded, NULL, (int64_t)G * 3 * plane_p);
    /* the images go up, then the pass's launches, on a GPU one graph from the second time the same pass comes (the
     * same buffers, outputs and sizes) */
    for (int i0 = lo; i0 < hi && !st; i0 += G) {
        int n = hi - i0 < G ? hi - i0 : G;
        st = mrec_copy_to_device(ctx, t.image, f->images + i0 * image, sizeof(float) * image * n);
        pass_args p = {f, &t, &z, i0, n};
        struct {
            const void *model, *workspace, *pooled, *embeds, *last;
            size_t used;
            int n, H, W, precision;
        } key;
        memset(&key, 0, sizeof key); /* the padding too: the key is compared as bytes */
        size_t map = (size_t)m->features * z.out_h * z.out_w;
        key.model = m, key.workspace = ctx->workspace.base, key.used = mark;
        key.pooled = f->pooled ? f->pooled + (size_t)i0 * m->features : NULL;
        key.embeds = f->embeds ? f->embeds + (size_t)i0 * m->features : NULL;
        key.last = f->last ? f->last + i0 * map : NULL;
        key.n = n, key.H = H, key.W = W, key.precision = (int)ctx->precision;
        if (!st) st = mrec_graph_run(ctx, &key, sizeof key, pass_body, &p);
    }
    ctx->workspace.used = mark;
    return st;
}

mrec_status mrec_efficientnet_forward(mrec_context *ctx, const mrec_efficientnet *m, const float *images, int B, int H,
                                      int W, float *pooled, float *embeds, float *last) {
    mrec_status st = mrec_weights_check(ctx, m->on, "efficientnet");
    if (st) return st;
    if (B < 1 || H < 1 || W < 1 || H > 8192 || W > 8192)
        return mrec_fail(MREC_ERR_ARG, "efficientnet: batch of %d images of %dx%d", B, H, W);
    sizes z;
    if ((st = plan(m, m->on, group_of(m), H, W, &z))) return st;
    if (z.out_h > m->pool_window || z.out_w > m->pool_window) /* AvgPool2d(hidden_dim) is then no global mean */
        return mrec_fail(MREC_ERR_UNSUPPORTED, "efficientnet: a %dx%d last feature map is wider than the pooling window %d (hidden_dim)",
                         z.out_w, z.out_h, m->pool_window);
    forward_args f = {m, images, H, W, pooled, embeds, last};
    return mrec_context_split(ctx, B, mrec_efficientnet_workspace_bytes(m, H, W), passes, &f);
}
