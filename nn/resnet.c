/* resnet.c: torchvision's ResNet, forward only, on the op set.
 *
 *   x = maxpool3x3/2(relu(bn1(conv7x7/2(image))))
 *   per block (Bottleneck):  y = relu(bn1(conv1x1(x)))
 *                            y = relu(bn2(conv3x3/s(y)))        stride s on the 3x3 (v1.5)
 *                            x = relu(bn3(conv1x1(y)) + (downsample(x) or x))
 *   per block (BasicBlock):  y = relu(bn1(conv3x3/s(x))); x = relu(bn2(conv3x3(y)) + shortcut)
 *   pooled = mean over H, W of x (AdaptiveAvgPool2d(1) + flatten); logits = fc(pooled)
 * Each bn is folded into its conv at load. On the CPU images go through one
 * at a time: the convolutions are GEMMs over the pixels of one image, which
 * keeps the workspace small (about 20 MB at 224x224) for any batch. On a GPU
 * a pass takes a group of images; in bf16 it runs channels-last, bf16
 * activations (N, H, W, C) between layers (mrec_resnet_channels_last).
 * Reference: torchvision/models/resnet.py.
 */
#include "mrec_resnet.h"
#include "mrec_pytorch.h"
#include "mrec_safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BN_EPS 1e-5f /* nn.BatchNorm2d's default, which torchvision keeps */
#define MAX_CHANNELS 65536 /* resnet50 has 2048; anything past this is a corrupt file */
#define MAX_KERNEL 15      /* torchvision's largest is the 7x7 stem */
#define MAX_CLASSES 1000000
#define MAX_BLOCKS 1024    /* per stage; resnet152 has 36 */

/* ---- loading ---- */

/* conv `name`.weight + bn `bn`.{weight,bias,running_mean,running_var} -> folded conv */
static mrec_status load_conv_bn(const mrec_safetensors *sf, mrec_conv_bn *cv, const char *conv, const char *bn, int c_in,
                                int stride) {
    char name[160];
    snprintf(name, sizeof name, "%s.weight", conv);
    const mrec_st_entry *e = mrec_safetensors_find(sf, name);
    if (!e) return mrec_fail(MREC_ERR_NOT_FOUND, "%s: no tensor \"%s\"", sf->path, name);
    /* The widths come from the file alone, so they are bounded here: an empty
     * tensor of shape (2^40, 0, ...) is a valid safetensors entry. */
    if (e->ndim != 4 || e->shape[1] != c_in || e->shape[2] != e->shape[3] || e->shape[2] % 2 == 0 ||
        e->shape[0] < 1 || e->shape[0] > MAX_CHANNELS || e->shape[2] > MAX_KERNEL)
        return mrec_fail(MREC_ERR_SHAPE, "%s: \"%s\" should be (C_out, %d, k, k) with C_out in [1, %d] and k odd, at most %d",
                         sf->path, name, c_in, MAX_CHANNELS, MAX_KERNEL);
    int64_t shape[4] = {e->shape[0], e->shape[1], e->shape[2], e->shape[3]}, per_out = shape[1] * shape[2] * shape[3];
    cv->c_out = (int)shape[0], cv->c_in = c_in, cv->k = (int)shape[2], cv->stride = stride, cv->pad = cv->k / 2;
    cv->w = malloc(sizeof(float) * (size_t)(shape[0] * per_out));
    cv->b = malloc(sizeof(float) * (size_t)shape[0]);
    float *bnp = malloc(sizeof(float) * 4 * (size_t)shape[0]);
    mrec_status st = cv->w && cv->b && bnp ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "%s: %s", sf->path, name);
    if (!st) st = mrec_safetensors_read_f32(sf, name, 4, shape, cv->w);
    static const char *const parts[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4 && !st; i++) {
        snprintf(name, sizeof name, "%s.%s", bn, parts[i]);
        st = mrec_safetensors_read_f32(sf, name, 1, shape, bnp + (size_t)i * shape[0]);
    }
    if (!st) {
        const float *var = bnp + 3 * shape[0];
        for (int64_t c = 0; c < shape[0] && !st; c++)
            if (!(var[c] >= 0.0f)) st = mrec_fail(MREC_ERR_FORMAT, "%s: %s.running_var[%lld] is %g", sf->path, bn, (long long)c, var[c]);
    }
    if (!st)
        mrec_batchnorm_fold(cv->w, cv->b, NULL, bnp, bnp + shape[0], bnp + 2 * shape[0], bnp + 3 * shape[0], BN_EPS,
                            cv->c_out, per_out);
    free(bnp);
    return st;
}

static void free_conv(mrec_conv_bn *cv) {
    free(cv->w), free(cv->b);
    cv->w = cv->b = NULL;
}

/* A conv's input channels as its weight holds them: on the channels-last
 * route the stem's 3 are padded to 8, the tensor cores' smallest width. */
static int cin_of(const mrec_resnet *m, const mrec_conv_bn *cv) {
    return m->channels_last ? (cv->c_in + 7) / 8 * 8 : cv->c_in;
}

/* Every weight array of the model, in a fixed order: stem, blocks (conv1,
 * conv2, conv3, down; w then b), fc. NULL entries are absent ones. conv
 * (or NULL): the conv whose weight a slot is, NULL for the other slots. */
static int weight_slots(mrec_resnet *m, float ***slot, int64_t *n, mrec_conv_bn **conv) {
    int k = 0, blocks = m->n_blocks[0] + m->n_blocks[1] + m->n_blocks[2] + m->n_blocks[3];
#define CONV(cv)                                                                                   \
    do {                                                                                           \
        if (conv) conv[k] = (cv), conv[k + 1] = NULL;                                              \
        slot[k] = &(cv)->w, n[k++] = (int64_t)(cv)->c_out * cin_of(m, cv) * (cv)->k * (cv)->k;     \
        slot[k] = &(cv)->b, n[k++] = (cv)->c_out;                                                  \
    } while (0)
    CONV(&m->stem);
    for (int i = 0; m->block && i < blocks; i++) {
        CONV(&m->block[i].conv1);
        CONV(&m->block[i].conv2);
        CONV(&m->block[i].conv3);
        CONV(&m->block[i].down);
    }
#undef CONV
    if (conv) conv[k] = conv[k + 1] = NULL;
    slot[k] = &m->fc_w, n[k++] = (int64_t)m->n_classes * m->features;
    slot[k] = &m->fc_b, n[k++] = m->n_classes;
    return k;
}

static int n_slots(const mrec_resnet *m) {
    return 2 * 4 * (m->n_blocks[0] + m->n_blocks[1] + m->n_blocks[2] + m->n_blocks[3]) + 4;
}

void mrec_resnet_free(mrec_resnet *m) {
    if (m->storage) {
        mrec_weights_free(m->on, m->storage); /* the arrays all live in it */
    } else {
        int n = m->n_blocks[0] + m->n_blocks[1] + m->n_blocks[2] + m->n_blocks[3];
        free_conv(&m->stem);
        for (int i = 0; m->block && i < n; i++) {
            free_conv(&m->block[i].conv1), free_conv(&m->block[i].conv2);
            free_conv(&m->block[i].conv3), free_conv(&m->block[i].down);
        }
        free(m->fc_w), free(m->fc_b);
    }
    free(m->block);
    memset(m, 0, sizeof *m);
}

/* Gathers the separate host arrays the loader read into one block (128-float
 * aligned offsets, as the other models' loaders lay them out) and points
 * every weight into it: one storage to move to a device, or to pack for the
 * CPU's GEMMs (mrec_packs). */
static mrec_status gather(mrec_resnet *m) {
    int cap = n_slots(m);
    float ***slot = malloc(sizeof *slot * (size_t)cap);
    int64_t *n = malloc(sizeof *n * (size_t)cap), *at = malloc(sizeof *at * (size_t)cap), total = 0;
    mrec_status st = slot && n && at ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "resnet: weight table");
    int k = st ? 0 : weight_slots(m, slot, n, NULL);
    for (int i = 0; i < k; i++) {
        at[i] = total;
        if (*slot[i]) total += (n[i] + MREC_WEIGHT_ALIGN - 1) / MREC_WEIGHT_ALIGN * MREC_WEIGHT_ALIGN;
    }
    float *host = st ? NULL : calloc((size_t)(total ? total : 1), sizeof *host);
    if (!st && !host) st = mrec_fail(MREC_ERR_NOMEM, "resnet: %lld parameters", (long long)total);
    for (int i = 0; !st && i < k; i++)
        if (*slot[i]) memcpy(host + at[i], *slot[i], sizeof(float) * (size_t)n[i]), free(*slot[i]), *slot[i] = host + at[i];
    if (!st) m->storage = host, m->floats = total;
    free(slot), free(n), free(at);
    return st;
}

mrec_status mrec_resnet_channels_last(mrec_resnet *m) {
    if (m->channels_last) return MREC_OK;
    if (m->on) return mrec_fail(MREC_ERR_ARG, "resnet: the channels-last layout is made from host weights, before mrec_resnet_to_device");
    int cap = n_slots(m);
    float ***slot = malloc(sizeof *slot * (size_t)cap), **from = malloc(sizeof *from * (size_t)cap);
    int64_t *n = malloc(sizeof *n * (size_t)cap);
    mrec_conv_bn **conv = malloc(sizeof *conv * (size_t)cap);
    mrec_status st = slot && from && n && conv ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "resnet: weight table");
    int k = st ? 0 : weight_slots(m, slot, n, conv);
    for (int i = 0; i < k && !st; i++) {
        const mrec_conv_bn *cv = conv[i];
        from[i] = *slot[i];
        if (cv && ((cv != &m->stem && cv->c_in % 8) || cv->c_out % 8))
            st = mrec_fail(MREC_ERR_UNSUPPORTED, "resnet: a conv of %d to %d channels (the channels-last route takes multiples of 8)",
                           cv->c_in, cv->c_out);
    }
    float *host = NULL;
    int64_t total = 0;
    if (!st) {
        m->channels_last = 1; /* the slots' sizes below are the new layout's */
        weight_slots(m, slot, n, conv);
        for (int i = 0; i < k; i++)
            if (from[i]) total += (n[i] + MREC_WEIGHT_ALIGN - 1) / MREC_WEIGHT_ALIGN * MREC_WEIGHT_ALIGN;
        if (!(host = calloc((size_t)(total ? total : 1), sizeof *host))) {
            m->channels_last = 0;
            st = mrec_fail(MREC_ERR_NOMEM, "resnet: %lld parameters", (long long)total);
        }
    }
    int64_t at = 0;
    for (int i = 0; !st && i < k; i++) {
        if (!from[i]) continue;
        float *to = host + at;
        const mrec_conv_bn *cv = conv[i];
        if (cv) { /* (c_out, c_in, k, k) to (c_out, k, k, c_in padded), the padding zero */
            int kk = cv->k * cv->k, cp = cin_of(m, cv);
            for (int o = 0; o < cv->c_out; o++)
                for (int c = 0; c < cv->c_in; c++)
                    for (int r = 0; r < kk; r++) to[((size_t)o * kk + r) * cp + c] = from[i][((size_t)o * cv->c_in + c) * kk + r];
        } else {
            memcpy(to, from[i], sizeof(float) * (size_t)n[i]);
        }
        *slot[i] = to;
        at += (n[i] + MREC_WEIGHT_ALIGN - 1) / MREC_WEIGHT_ALIGN * MREC_WEIGHT_ALIGN;
    }
    if (!st) free(m->storage), m->storage = host, m->floats = total;
    free(slot), free(from), free(n), free(conv);
    return st;
}

static mrec_status plan(const mrec_resnet *m, mrec_context *ctx, int N, int h, int w, size_t *act, size_t *col);

/* The channels-last route on ctx, in bf16: a GPU with bf16 tensor cores whose cuDNN plans every convolution
 * of a 224 x 224 image in it (the plans are kept for the forwards), or a CPU with AVX-512 BF16; the widths
 * are checked by the layout. */
static int channels_last_fits(mrec_resnet *m, mrec_context *ctx) {
    if (ctx->precision != MREC_PREC_BF16 || !mrec_nhwc_bf16_native(ctx)) return 0;
    size_t act, col;
    m->channels_last = 1; /* the route's shapes (the stem's padded channels) */
    mrec_status st = plan(m, ctx, 1, 224, 224, &act, &col);
    m->channels_last = 0;
    if (st) mrec_clear_error();
    return !st;
}

/* Moves the storage to ctx's device and points every weight into the copy; in bf16, channels-last first
 * where it fits (else NCHW: on a GPU the convolutions in TF32, on a CPU bf16 products of fp32 activations).
 * On the CPU the weights stay in host memory, laid out again (a pack set made before must be made again). */
mrec_status mrec_resnet_to_device(mrec_resnet *m, mrec_context *ctx) {
    if (!m->on && channels_last_fits(m, ctx)) {
        mrec_status st = mrec_resnet_channels_last(m);
        if (st == MREC_ERR_UNSUPPORTED) mrec_clear_error(); /* odd widths */
        else if (st) return st;
    }
    float *dev;
    mrec_status st = mrec_weights_place(ctx, m->storage, m->floats, &dev, &m->on);
    if (st || !dev) return st;
    int cap = n_slots(m);
    float ***slot = malloc(sizeof *slot * (size_t)cap);
    int64_t *n = malloc(sizeof *n * (size_t)cap);
    if (!slot || !n) {
        free(slot), free(n);
        return mrec_fail(MREC_ERR_NOMEM, "resnet: weight table");
    }
    int k = weight_slots(m, slot, n, NULL);
    for (int i = 0; i < k; i++)
        if (*slot[i]) *slot[i] = dev + (*slot[i] - m->storage);
    free(m->storage), free(slot), free(n);
    m->storage = dev;
    return MREC_OK;
}

mrec_status mrec_resnet_load(mrec_resnet *m, const char *path) {
    memset(m, 0, sizeof *m);
    char file[4096];
    struct stat sb;
    snprintf(file, sizeof file, stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) ? "%s/model.safetensors" : "%s", path);
    mrec_safetensors sf;
    mrec_status st = mrec_safetensors_open_any(&sf, file);
    if (st) return st;
    char name[160];
    int total = 0;
    for (int s = 0; s < 4; s++) {
        for (;; m->n_blocks[s]++) {
            snprintf(name, sizeof name, "layer%d.%d.conv1.weight", s + 1, m->n_blocks[s]);
            if (!mrec_safetensors_find(&sf, name)) break;
            if (m->n_blocks[s] == MAX_BLOCKS) {
                mrec_safetensors_close(&sf);
                return mrec_fail(MREC_ERR_SHAPE, "%s: stage layer%d has more than %d blocks", file, s + 1, MAX_BLOCKS);
            }
        }
        if (m->n_blocks[s] == 0) {
            mrec_safetensors_close(&sf);
            return mrec_fail(MREC_ERR_NOT_FOUND, "%s: no tensor \"layer%d.0.conv1.weight\" (is this a torchvision ResNet?)", file, s + 1);
        }
        total += m->n_blocks[s];
    }
    m->bottleneck = mrec_safetensors_find(&sf, "layer1.0.conv3.weight") != NULL;
    m->block = calloc((size_t)total, sizeof *m->block);
    st = m->block ? load_conv_bn(&sf, &m->stem, "conv1", "bn1", 3, 2) : mrec_fail(MREC_ERR_NOMEM, "%s", file);
    int c = m->stem.c_out, b = 0;
    for (int s = 0; s < 4 && !st; s++)
        for (int i = 0; i < m->n_blocks[s] && !st; i++, b++) {
            mrec_resnet_block *B = &m->block[b];
            int stride = s > 0 && i == 0 ? 2 : 1;
            char conv[64], bn[64];
            const char *names[3] = {"1", "2", "3"};
            int n_convs = m->bottleneck ? 3 : 2, c_in = c;
            mrec_conv_bn *convs[3] = {&B->conv1, &B->conv2, &B->conv3};
            for (int k = 0; k < n_convs && !st; k++) {
                /* the stride sits on the 3x3: conv2 of a Bottleneck, conv1 of a BasicBlock */
                int sk = (m->bottleneck ? k == 1 : k == 0) ? stride : 1;
                snprintf(conv, sizeof conv, "layer%d.%d.conv%s", s + 1, i, names[k]);
                snprintf(bn, sizeof bn, "layer%d.%d.bn%s", s + 1, i, names[k]);
                st = load_conv_bn(&sf, convs[k], conv, bn, c_in, sk);
                if (!st) c_in = convs[k]->c_out;
            }
            snprintf(name, sizeof name, "layer%d.%d.downsample.0.weight", s + 1, i);
            if (!st && mrec_safetensors_find(&sf, name)) {
                snprintf(conv, sizeof conv, "layer%d.%d.downsample.0", s + 1, i);
                snprintf(bn, sizeof bn, "layer%d.%d.downsample.1", s + 1, i);
                st = load_conv_bn(&sf, &B->down, conv, bn, c, stride);
                if (!st && (B->down.c_out != c_in || B->down.k != 1))
                    st = mrec_fail(MREC_ERR_SHAPE, "%s: %s is not a 1x1 conv to %d channels", file, conv, c_in);
            } else if (!st && (stride != 1 || c != c_in)) {
                st = mrec_fail(MREC_ERR_NOT_FOUND, "%s: block layer%d.%d changes shape but has no downsample", file, s + 1, i);
            }
            c = c_in;
        }
    m->features = c;
    const mrec_st_entry *fc = mrec_safetensors_find(&sf, "fc.weight");
    if (!st && fc) {
        if (fc->ndim != 2 || fc->shape[1] != c || fc->shape[0] < 1 || fc->shape[0] > MAX_CLASSES) {
            st = mrec_fail(MREC_ERR_SHAPE, "%s: \"fc.weight\" should be (classes, %d) with classes in [1, %d]", file, c,
                           MAX_CLASSES);
        } else {
            int64_t shape[2] = {fc->shape[0], c};
            m->n_classes = (int)shape[0];
            m->fc_w = malloc(sizeof(float) * (size_t)(shape[0] * c));
            m->fc_b = malloc(sizeof(float) * (size_t)shape[0]);
            st = m->fc_w && m->fc_b ? mrec_safetensors_read_f32(&sf, "fc.weight", 2, shape, m->fc_w) : mrec_fail(MREC_ERR_NOMEM, "fc");
            if (!st) st = mrec_safetensors_read_f32(&sf, "fc.bias", 1, shape, m->fc_b);
        }
    }
    mrec_safetensors_close(&sf);
    if (!st) st = gather(m);
    if (st) mrec_resnet_free(m);
    return st;
}

/* ---- forward ---- */

/* Images per pass: one while the weights are in host memory (the CPU's
 * convolution runs image by image anyway, and the workspace stays small);
 * on a GPU up to 32 at once, which keeps the device busy in the late
 * stages (7 x 7 planes), and a short pass computes only its own images.
 * The channels-last route takes 128 on a GPU (its bf16 activations take
 * half the room, and the tensor cores want long products: the last stage
 * has 49 pixels an image), and CL_CPU_GROUP on the CPU, whose products
 * run over the pass's pixels: a late stage's few per image still fill
 * whole row blocks. */
#define GPU_GROUP 32
#define CL_GPU_GROUP 128
#define CL_CPU_GROUP 4

static int group_of(const mrec_resnet *m) {
    if (m->channels_last) return m->on ? CL_GPU_GROUP : CL_CPU_GROUP;
    return m->on ? GPU_GROUP : 1;
}

static int conv_out(int n, const mrec_conv_bn *cv) {
    return (n + 2 * cv->pad - cv->k) / cv->stride + 1;
}

static mrec_conv2d_shape conv_shape(const mrec_resnet *m, const mrec_conv_bn *cv, int N, int h, int w) {
    return (mrec_conv2d_shape){N, cin_of(m, cv), h, w, cv->c_out, cv->k, cv->k, cv->stride, cv->stride, cv->pad, cv->pad, 1};
}

static mrec_status conv_workspace(const mrec_resnet *m, mrec_context *ctx, const mrec_conv2d_shape *s, size_t *bytes) {
    return m->channels_last ? mrec_conv2d_nhwc_bf16_workspace_bytes(ctx, s, bytes) : mrec_conv2d_workspace_bytes(ctx, s, bytes);
}

/* Walks the shapes of a pass of N images: the largest activation (values)
 * and convolution workspace (bytes: none on the CPU, what cuDNN asks for
 * on a GPU). ctx is the context that runs the model, NULL for the CPU's sizes. */
static mrec_status plan(const mrec_resnet *m, mrec_context *ctx, int N, int h, int w, size_t *act, size_t *col) {
    *act = 0, *col = 0;
    mrec_status st = MREC_OK;
#define SEE(cv, hh, ww)                                                                                            \
    do {                                                                                                           \
        mrec_conv2d_shape s_ = conv_shape(m, cv, N, hh, ww);                                                      \
        size_t c_ = 0, a_ = (size_t)N * (cv)->c_out * conv_out(hh, cv) * conv_out(ww, cv);                        \
        if (ctx && !st) st = conv_workspace(m, ctx, &s_, &c_);                                                    \
        *col = c_ > *col ? c_ : *col, *act = a_ > *act ? a_ : *act;                                                \
    } while (0)
    SEE(&m->stem, h, w);
    h = conv_out(h, &m->stem), w = conv_out(w, &m->stem);
    h = (h + 2 - 3) / 2 + 1, w = (w + 2 - 3) / 2 + 1; /* maxpool 3x3/2, pad 1 */
    int n = m->n_blocks[0] + m->n_blocks[1] + m->n_blocks[2] + m->n_blocks[3];
    for (int b = 0; b < n; b++) {
        const mrec_resnet_block *B = &m->block[b];
        const mrec_conv_bn *convs[3] = {&B->conv1, &B->conv2, m->bottleneck ? &B->conv3 : NULL};
        int hh = h, ww = w;
        for (int k = 0; k < 3 && convs[k]; k++) {
            SEE(convs[k], hh, ww);
            hh = conv_out(hh, convs[k]), ww = conv_out(ww, convs[k]);
        }
        if (B->down.w) SEE(&B->down, h, w);
        h = hh, w = ww;
    }
#undef SEE
    return st;
}

/* The workspace of a pass: the images (and on the channels-last route
 * their bf16 copy, channels padded), the convolution workspace, four
 * activations (float, or bf16 on the channels-last route), the pooled
 * features and the logits. */
typedef struct {
    float *image, *feat, *logit;
    uint16_t *image_cl;
    void *buf[4], *col;
} activations;

static int carve(mrec_arena *a, activations *t, const mrec_resnet *m, int G, int h, int w, size_t act, size_t col) {
    size_t value = m->channels_last ? sizeof(uint16_t) : sizeof(float);
    int ok = (t->image = mrec_arena_alloc(a, sizeof(float) * (size_t)G * 3 * h * w)) != NULL;
    t->image_cl = m->channels_last ? mrec_arena_alloc(a, sizeof(uint16_t) * (size_t)G * h * w * cin_of(m, &m->stem)) : NULL;
    ok &= !m->channels_last || t->image_cl;
    t->col = col ? mrec_arena_alloc(a, col) : NULL;
    ok &= !col || t->col;
    for (int i = 0; i < 4; i++) ok &= (t->buf[i] = mrec_arena_alloc(a, act * value)) != NULL;
    ok &= (t->feat = mrec_arena_alloc(a, sizeof(float) * (size_t)G * m->features)) != NULL;
    t->logit = m->n_classes ? mrec_arena_alloc(a, sizeof(float) * (size_t)G * m->n_classes) : NULL;
    return ok && (!m->n_classes || t->logit);
}

size_t mrec_resnet_workspace_bytes(const mrec_resnet *m, int h, int w) {
    size_t act, col, act1, col1;
    if (plan(m, m->on, group_of(m), h, w, &act, &col)) return SIZE_MAX; /* the reserve fails, naming the size */
    /* a single image may get other algorithms than a full pass: room for either */
    if (plan(m, m->on, 1, h, w, &act1, &col1)) return SIZE_MAX;
    col = col1 > col ? col1 : col;
    mrec_arena a = mrec_arena_measure();
    activations t;
    carve(&a, &t, m, group_of(m), h, w, act, col);
    return a.peak;
}

/* How a conv's output is finished: as is (a downsample), ReLU, or ReLU
 * after adding the shortcut that out already holds (a block's last conv). */
enum { PLAIN, RELU, ADD_RELU };

/* out = conv(in) + folded bias, finished as `finish` says, in one pass over out; *h, *w become
 * the output size. col holds col_bytes of convolution workspace. out and in: float (N, C, H, W),
 * or bf16 (N, H, W, C) on the channels-last route. */
static mrec_status conv(mrec_context *ctx, const mrec_resnet *m, void *out, const void *in, const mrec_conv_bn *cv, int N, int *h,
                        int *w, void *col, size_t col_bytes, int finish) {
    mrec_conv2d_shape s = conv_shape(m, cv, N, *h, *w);
    *h = conv_out(*h, cv), *w = conv_out(*w, cv);
    float beta = finish == ADD_RELU ? 1.0f : 0.0f;
    if (m->channels_last) return mrec_conv2d_nhwc_bf16(ctx, out, in, cv->w, cv->b, beta, finish != PLAIN, col, col_bytes, &s);
    if (finish == PLAIN) return mrec_conv2d(ctx, out, in, cv->w, cv->b, col, col_bytes, &s);
    return mrec_conv2d_act(ctx, out, in, cv->w, cv->b, beta, MREC_ACT_RELU, col, col_bytes, &s);
}

/* A forward's inputs and outputs, for the passes over a share of the images. */
typedef struct {
    const mrec_resnet *m;
    const float *images;
    int H, W;
    float *pooled, *logits;
} forward_args;

size_t mrec_resnet_batch_workspace_bytes(const mrec_context *ctx, const mrec_resnet *m, int B, int h, int w) {
    size_t pass = mrec_resnet_workspace_bytes(m, h, w); /* a pass is G images, whatever the share */
    return mrec_context_split_bytes(ctx, B, pass, pass);
}

/* One pass of n images already on the device (t->image): everything from the
 * channels-last copy to the pooled features (and logits), launches only, so
 * that on a GPU it can be one CUDA graph (mrec_graph_run). */
typedef struct {
    const forward_args *f;
    const activations *t;
    int i0, n;
    size_t cb;
} pass_args;

static mrec_status pass_body(mrec_context *ctx, void *arg) {
    const pass_args *p = arg;
    const forward_args *f = p->f;
    const mrec_resnet *m = f->m;
    const activations *t = p->t;
    int n = p->n, i0 = p->i0, H = f->H, W = f->W, cl = m->channels_last, C = m->features;
    int n_blocks = m->n_blocks[0] + m->n_blocks[1] + m->n_blocks[2] + m->n_blocks[3];
    size_t cb = p->cb;
    void *x = t->buf[0], *t1 = t->buf[1], *t2 = t->buf[2], *down = t->buf[3];
    int h = H, w = W;
    mrec_status st = MREC_OK;
    if (cl) st = mrec_nhwc_bf16_from_nchw(ctx, t->image_cl, t->image, n, m->stem.c_in, H * W, cin_of(m, &m->stem));
    if (!st) st = conv(ctx, m, t1, cl ? (const void *)t->image_cl : t->image, &m->stem, n, &h, &w, t->col, cb, RELU);
    mrec_pool2d_shape ps = {n, m->stem.c_out, h, w, 3, 3, 2, 2, 1, 1, 1};
    if (!st) st = cl ? mrec_maxpool2d_nhwc_bf16(ctx, x, t1, &ps) : mrec_maxpool2d(ctx, x, t1, &ps);
    h = mrec_pool2d_out_h(&ps), w = mrec_pool2d_out_w(&ps);
    for (int b = 0; b < n_blocks && !st; b++) {
        const mrec_resnet_block *Bk = &m->block[b];
        int hh = h, ww = w, hd = h, wd = w;
        /* the shortcut: x itself, or its downsample; the last conv adds onto it in place, and the sum is the
         * block's output (x is read by nothing after the first conv and the downsample) */
        void *sum = x;
        if (Bk->down.w) {
            st = conv(ctx, m, down, x, &Bk->down, n, &hd, &wd, t->col, cb, PLAIN);
            sum = down, down = x; /* x's buffer is free once the block's convs have read it */
        }
        if (!st) st = conv(ctx, m, t1, x, &Bk->conv1, n, &hh, &ww, t->col, cb, RELU);
        if (m->bottleneck) {
            if (!st) st = conv(ctx, m, t2, t1, &Bk->conv2, n, &hh, &ww, t->col, cb, RELU);
            if (!st) st = conv(ctx, m, sum, t2, &Bk->conv3, n, &hh, &ww, t->col, cb, ADD_RELU);
        } else if (!st) {
            st = conv(ctx, m, sum, t1, &Bk->conv2, n, &hh, &ww, t->col, cb, ADD_RELU);
        }
        x = sum;
        h = hh, w = ww;
    }
    /* AdaptiveAvgPool2d(1): the mean of each channel plane, a pooling window the size of the plane */
    mrec_pool2d_shape gap = {n, C, h, w, h, w, 1, 1, 0, 0, 1};
    if (!st) st = cl ? mrec_mean_hw_nhwc_bf16(ctx, t->feat, x, n, h * w, C) : mrec_avgpool2d(ctx, t->feat, x, &gap);
    if (!st && f->pooled) st = mrec_copy_rows(ctx, f->pooled + (size_t)i0 * C, C, t->feat, C, n, C);
    if (!st && f->logits)
        st = mrec_gemm(ctx, t->logit, t->feat, m->fc_w, m->fc_b, 1, 0, 0, 1, n, m->n_classes, C, C, C, m->n_classes);
    if (!st && f->logits) st = mrec_copy_rows(ctx, f->logits + (size_t)i0 * m->n_classes, m->n_classes, t->logit, m->n_classes, n, m->n_classes);
    return st;
}

/* Images [lo, hi): G a pass, from ctx's workspace. */
static mrec_status passes(mrec_context *ctx, int lo, int hi, void *arg) {
    const forward_args *f = arg;
    const mrec_resnet *m = f->m;
    int G = group_of(m), H = f->H, W = f->W;
    size_t act, cb, act_n, cb_n, mark = ctx->workspace.used;
    mrec_status st = plan(m, m->on, G, H, W, &act, &cb);
    /* a short last pass may get other algorithms (mrec_resnet_workspace_bytes has room for a single image's) */
    int last = (hi - lo) % G;
    if (!st && last && !(st = plan(m, m->on, last, H, W, &act_n, &cb_n))) cb = cb_n > cb ? cb_n : cb;
    if (st) return st;
    activations t;
    if (!carve(&ctx->workspace, &t, m, G, H, W, act, cb)) {
        ctx->workspace.used = mark;
        return mrec_fail(MREC_ERR_NOMEM, "resnet: workspace of %zu bytes is too small for %dx%d images", ctx->workspace.capacity, H, W);
    }
    size_t image = (size_t)3 * H * W;
    /* G images a pass, the last one n: the images go up, then the pass's launches, on a GPU one graph from the
     * second time the same pass comes (the same images' buffer, outputs and sizes) */
    for (int i0 = lo; i0 < hi && !st; i0 += G) {
        int n = hi - i0 < G ? hi - i0 : G;
        st = mrec_copy_to_device(ctx, t.image, f->images + i0 * image, sizeof(float) * image * n);
        pass_args p = {f, &t, i0, n, cb};
        struct {
            const void *model, *workspace, *pooled, *logits;
            size_t used, cb;
            int n, H, W, precision;
        } key;
        memset(&key, 0, sizeof key); /* the padding too: the key is compared as bytes */
        key.model = m, key.workspace = ctx->workspace.base, key.used = mark, key.cb = cb;
        key.pooled = f->pooled ? f->pooled + (size_t)i0 * m->features : NULL;
        key.logits = f->logits ? f->logits + (size_t)i0 * m->n_classes : NULL;
        key.n = n, key.H = H, key.W = W, key.precision = (int)ctx->precision;
        if (!st) st = mrec_graph_run(ctx, &key, sizeof key, pass_body, &p);
    }
    ctx->workspace.used = mark;
    return st;
}

mrec_status mrec_resnet_forward(mrec_context *ctx, const mrec_resnet *m, const float *images, int B, int H, int W,
                                float *pooled, float *logits) {
    mrec_status st = mrec_weights_check(ctx, m->on, "resnet");
    if (st) return st;
    if (B < 1 || H < 32 || W < 32 || H > 8192 || W > 8192)
        return mrec_fail(MREC_ERR_ARG, "resnet: batch of %d images of %dx%d (at least 32x32)", B, H, W);
    if (logits && !m->fc_w) return mrec_fail(MREC_ERR_NOT_FOUND, "resnet: this checkpoint has no fc layer");
    forward_args f = {m, images, H, W, pooled, logits};
    return mrec_context_split(ctx, B, mrec_resnet_workspace_bytes(m, H, W), passes, &f);
}
