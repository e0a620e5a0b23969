/* test_vision.c: ResNet against torchvision, ViT against Hugging Face.
 *
 * tools/golden/vision.py ran torchvision's ResNet (narrow stages, real
 * blocks and names, random weights and BatchNorm statistics) and HF's
 * ViTModel (tiny config) on real photos preprocessed by torchvision. The
 * bound is max abs error <= 1e-4 x the largest |value| of the reference:
 * both sides are float32; folding BatchNorm into the convs and a different
 * summation order move results by ~1e-6 relative, a wrong stride, padding,
 * fold or shortcut by 1e-2 or more. MREC_FULL_DIR (vision.py --full DIR)
 * adds full-size resnet50 and ViT-B/16 at 224x224.
 */
#include "harness.h"

#include "../nn/mrec_npy.h"
#include "../nn/mrec_resnet.h"
#include "../nn/mrec_vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/vision/"

static float *load(const char *dir, const char *file, int64_t *shape) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    float *data = NULL;
    int ndim;
    int64_t s[8];
    if (mrec_npy_read_f32(path, &data, &ndim, s)) return NULL;
    if (shape) memcpy(shape, s, sizeof(int64_t) * (size_t)ndim);
    return data;
}

static void compare(const char *what, const float *ref, const float *out, int64_t n) {
    double scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    t_allclose(what, ref, out, n, 1e-4 * scale, 0);
}

/* Images side by side (mrec_context_split): on 2 and 3 threads with the
 * workspace for a pass per thread, the bits of the forward that ran each
 * op on all threads (pooled, logits), the leftover images included (3
 * images on 2 threads); the workspace given back. */
static void split_case(const mrec_resnet *m, mrec_packs *packs, const float *x, int B, int H, int W, const float *pooled,
                       const float *logits, const char *dir) {
    for (int threads = 2; threads <= 3; threads++) {
        mrec_context_options o = mrec_context_defaults();
        o.device = MREC_WANT_CPU, o.n_threads = threads;
        mrec_context *c = NULL;
        float *p = malloc(sizeof(float) * (size_t)B * m->features), *l = logits ? malloc(sizeof(float) * (size_t)B * m->n_classes) : NULL;
        size_t one = mrec_resnet_workspace_bytes(m, H, W);
        if (t_status(mrec_context_create(&c, &o), MREC_OK, "a %d-thread context", threads) &&
            t_check(mrec_resnet_batch_workspace_bytes(c, m, B, H, W) >= (size_t)threads * one, "%s: %d passes' workspace", dir,
                    threads) &&
            t_status(mrec_context_reserve(c, mrec_resnet_batch_workspace_bytes(c, m, B, H, W)), MREC_OK, "workspace") &&
            (c->packs = packs, 1) &&
            t_status(mrec_resnet_forward(c, m, x, B, H, W, p, l), MREC_OK, "%s forward, a pass per thread", dir)) {
            t_check(!memcmp(p, pooled, sizeof(float) * (size_t)B * m->features),
                    "%s, %d images on %d threads side by side: the features' bits differ", dir, B, threads);
            t_check(!l || !memcmp(l, logits, sizeof(float) * (size_t)B * m->n_classes),
                    "%s, %d images on %d threads side by side: the logits' bits differ", dir, B, threads);
            t_check(c->workspace.used == 0, "%s: the workspace is given back after the threads' passes", dir);
        }
        mrec_context_destroy(c);
        free(p), free(l);
    }
}

static void resnet_case(mrec_context *ctx, const char *dir, const char *images) {
    mrec_resnet m;
    if (!t_status(mrec_resnet_load(&m, dir), MREC_OK, "load %s", dir)) return;
    int64_t s[4];
    float *x = load(dir, images, s), *pooled_ref = load(dir, "pooled.npy", NULL), *logits_ref = load(dir, "logits.npy", NULL);
    if (t_check(x && pooled_ref, "%s: fixtures", dir)) {
        int B = (int)s[0], H = (int)s[2], W = (int)s[3];
        float *pooled = malloc(sizeof(float) * (size_t)B * m.features);
        float *logits = m.n_classes ? malloc(sizeof(float) * (size_t)B * m.n_classes) : NULL;
        if (t_status(mrec_context_reserve(ctx, mrec_resnet_workspace_bytes(&m, H, W)), MREC_OK, "workspace") &&
            t_status(mrec_resnet_forward(ctx, &m, x, B, H, W, pooled, logits), MREC_OK, "%s forward", dir)) {
            char what[256];
            snprintf(what, sizeof what, "%s: avgpool features (%d x %d)", dir, B, m.features);
            compare(what, pooled_ref, pooled, (int64_t)B * m.features);
            if (logits_ref && logits) {
                snprintf(what, sizeof what, "%s: fc logits", dir);
                compare(what, logits_ref, logits, (int64_t)B * m.n_classes);
            }
            t_check(ctx->workspace.used == 0, "%s: the workspace is given back", dir);
            /* with the weights in a pack set (as an extractor runs it) the stride-1 3x3 convs run as Winograd */
            mrec_packs *packs = NULL;
            if (t_status(mrec_packs_create(&packs, m.storage, m.floats), MREC_OK, "pack set") &&
                (ctx->packs = packs, 1) &&
                t_status(mrec_resnet_forward(ctx, &m, x, B, H, W, pooled, logits), MREC_OK, "%s forward, packed", dir)) {
                snprintf(what, sizeof what, "%s: avgpool features (%d x %d), weights packed once", dir, B, m.features);
                compare(what, pooled_ref, pooled, (int64_t)B * m.features);
                if (logits_ref && logits) {
                    snprintf(what, sizeof what, "%s: fc logits, weights packed once", dir);
                    compare(what, logits_ref, logits, (int64_t)B * m.n_classes);
                }
                split_case(&m, packs, x, B, H, W, pooled, logits, dir);
            }
            ctx->packs = NULL;
            /* in bf16 (the convolutions' and the fc's products, AVX-512 BF16 or AMX tiles), weights packed once
             * as the extractor packs them: each image's features within cosine 0.999 of torchvision's fp32 */
            if (!mrec_cpu_has_bf16()) t_skip("%s in bf16: this CPU has no AVX-512 BF16", dir);
            for (int simd = MREC_SIMD_AVX512; packs && mrec_cpu_has_bf16() && simd <= (int)mrec_simd_detect(); simd++) {
                mrec_context_options o = mrec_context_defaults();
                o.device = MREC_WANT_CPU, o.precision = MREC_PREC_BF16, o.max_simd = (mrec_simd)simd;
                mrec_context *half = NULL;
                if (!t_status(mrec_context_create(&half, &o), MREC_OK, "a bf16 CPU context") ||
                    !t_status(mrec_context_reserve(half, mrec_resnet_workspace_bytes(&m, H, W)), MREC_OK, "bf16 workspace")) {
                    mrec_context_destroy(half);
                    continue;
                }
                half->packs = packs;
                if (t_status(mrec_resnet_forward(half, &m, x, B, H, W, pooled, NULL), MREC_OK, "%s forward in bf16", dir)) {
                    double worst = 1;
                    for (int b = 0; b < B; b++) {
                        const float *r = pooled_ref + (size_t)b * m.features, *h = pooled + (size_t)b * m.features;
                        double rr = 0, hh = 0, rh = 0;
                        for (int f = 0; f < m.features; f++) rr += (double)r[f] * r[f], hh += (double)h[f] * h[f], rh += (double)r[f] * h[f];
                        double c = rh / sqrt(rr * hh);
                        worst = c < worst ? c : worst;
                    }
                    t_check(worst >= 0.999, "%s in bf16 (%s): worst cosine to torchvision's fp32 features %.6f", dir,
                            mrec_simd_name((mrec_simd)simd), worst);
                    if (getenv("MREC_TEST_VERBOSE"))
                        printf("  %s in bf16 (%s): worst cosine to torchvision's fp32 features %.6f\n", dir,
                               mrec_simd_name((mrec_simd)simd), worst);
                }
                mrec_context_destroy(half);
            }
            mrec_packs_free(packs);
        }
        free(pooled), free(logits);
    }
    free(x), free(pooled_ref), free(logits_ref);
    mrec_resnet_free(&m);
}

static double worst_cosine(const float *ref, const float *got, int rows, int cols) {
    double worst = 1;
    for (int b = 0; b < rows; b++) {
        const float *r = ref + (size_t)b * cols, *h = got + (size_t)b * cols;
        double rr = 0, hh = 0, rh = 0;
        for (int f = 0; f < cols; f++) rr += (double)r[f] * r[f], hh += (double)h[f] * h[f], rh += (double)r[f] * h[f];
        double c = rh / sqrt(rr * hh);
        worst = c < worst ? c : worst;
    }
    return worst;
}

/* The channels-last bf16 route: bf16 activations between layers, as autocast
 * keeps them. On ctx (fp32, no pack set) its ops run direct (with AVX-512
 * BF16) or as the references; then, where the CPU has AVX-512 BF16, as the
 * image extractor runs it: a bf16 context's to_device lays the weights out,
 * a pack set over the new storage, Winograd for the 3x3 convolutions. Each
 * image's features and logits within cosine 0.999 of torchvision's fp32,
 * and the weights refused once on a device. */
static void channels_last_run(mrec_context *ctx, mrec_resnet *m, const char *dir, const char *how, const float *x, const int64_t *s,
                              const float *pooled_ref, const float *logits_ref) {
    int B = (int)s[0], H = (int)s[2], W = (int)s[3];
    float *pooled = malloc(sizeof(float) * (size_t)B * m->features);
    float *logits = m->n_classes ? malloc(sizeof(float) * (size_t)B * m->n_classes) : NULL;
    if (t_status(mrec_context_reserve(ctx, mrec_resnet_batch_workspace_bytes(ctx, m, B, H, W)), MREC_OK, "workspace") &&
        t_status(mrec_resnet_forward(ctx, m, x, B, H, W, pooled, logits), MREC_OK, "%s forward, channels-last bf16 %s", dir, how)) {
        double wp = worst_cosine(pooled_ref, pooled, B, m->features);
        t_check(wp >= 0.999, "%s channels-last bf16 %s: worst cosine to torchvision's fp32 features %.6f", dir, how, wp);
        if (logits && logits_ref) {
            double wl = worst_cosine(logits_ref, logits, B, m->n_classes);
            t_check(wl >= 0.999, "%s channels-last bf16 %s: worst cosine to torchvision's fp32 logits %.6f", dir, how, wl);
        }
        if (getenv("MREC_TEST_VERBOSE")) printf("  %s channels-last bf16 %s: worst cosine %.6f\n", dir, how, wp);
        t_check(ctx->workspace.used == 0, "%s: the workspace is given back", dir);
    }
    free(pooled), free(logits);
}

static void channels_last_case(mrec_context *ctx, const char *dir, const char *images) {
    mrec_resnet m;
    if (!t_status(mrec_resnet_load(&m, dir), MREC_OK, "load %s", dir)) return;
    int64_t s[4];
    float *x = load(dir, images, s), *pooled_ref = load(dir, "pooled.npy", NULL), *logits_ref = load(dir, "logits.npy", NULL);
    if (t_check(x && pooled_ref, "%s: fixtures", dir) &&
        t_status(mrec_resnet_channels_last(&m), MREC_OK, "%s: the channels-last layout", dir) &&
        t_status(mrec_resnet_channels_last(&m), MREC_OK, "%s: the channels-last layout, asked for twice", dir))
        channels_last_run(ctx, &m, dir, "(no pack set)", x, s, pooled_ref, logits_ref);
    mrec_resnet_free(&m);
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.precision = MREC_PREC_BF16, o.max_simd = MREC_SIMD_AVX512; /* below AMX, which keeps NCHW */
    mrec_context *half = NULL;
    mrec_packs *packs = NULL;
    if (!mrec_cpu_has_bf16()) {
        t_skip("%s: the CPU's channels-last route needs AVX-512 BF16", dir);
    } else if (x && pooled_ref && t_status(mrec_resnet_load(&m, dir), MREC_OK, "load %s", dir)) {
        if (t_status(mrec_context_create(&half, &o), MREC_OK, "a bf16 CPU context") &&
            t_status(mrec_resnet_to_device(&m, half), MREC_OK, "%s to a bf16 CPU context", dir) &&
            t_check(m.channels_last, "%s: a bf16 CPU context takes the channels-last route", dir) &&
            t_status(mrec_packs_create(&packs, m.storage, m.floats), MREC_OK, "a pack set")) {
            half->packs = packs;
            channels_last_run(half, &m, dir, "(to_device, packed)", x, s, pooled_ref, logits_ref);
        }
        mrec_packs_free(packs);
        mrec_context_destroy(half);
        mrec_resnet_free(&m);
    }
    free(x), free(pooled_ref), free(logits_ref);
}

static void resnet_errors(void) {
    mrec_resnet m;
    t_status(mrec_resnet_load(&m, FIX "vit_tiny"), MREC_ERR_NOT_FOUND, "a ViT file is not a ResNet");
    t_check(strstr(mrec_error_detail(), "layer1.0.conv1.weight") != NULL, "the message names the tensor: %s", mrec_error_detail());
    t_status(mrec_resnet_load(&m, FIX "no_such_dir"), MREC_ERR_IO, "a missing file");
}

static void vit_case(mrec_context *ctx, const char *dir, const char *images, const char *ref_dir) {
    mrec_vit m;
    if (!t_status(mrec_vit_load(&m, dir), MREC_OK, "load %s", dir)) return;
    int64_t s[4];
    float *x = load(dir, images, s), *cls_ref = load(ref_dir, "cls.npy", NULL), *pooled_ref = load(ref_dir, "pooled.npy", NULL);
    if (t_check(x && cls_ref && pooled_ref, "%s: fixtures", dir)) {
        int B = (int)s[0], H = m.cfg.hidden;
        float *cls = malloc(sizeof(float) * (size_t)B * H), *pooled = malloc(sizeof(float) * (size_t)B * m.cfg.pooler_size);
        if (t_status(mrec_context_reserve(ctx, mrec_vit_workspace_bytes(&m, B)), MREC_OK, "workspace") &&
            t_status(mrec_vit_forward(ctx, &m, x, B, cls, m.pooler_w ? pooled : NULL), MREC_OK, "%s forward", dir)) {
            char what[256];
            snprintf(what, sizeof what, "%s: last_hidden_state[:, 0] (%d x %d)", dir, B, H);
            compare(what, cls_ref, cls, (int64_t)B * H);
            if (m.pooler_w) {
                snprintf(what, sizeof what, "%s: pooler_output", dir);
                compare(what, pooled_ref, pooled, (int64_t)B * m.cfg.pooler_size);
            } else {
                t_status(mrec_vit_forward(ctx, &m, x, B, NULL, pooled), MREC_ERR_NOT_FOUND, "%s: no pooler, asked for one", dir);
            }
            t_check(ctx->workspace.used == 0, "%s: the workspace is given back", dir);
        }
        free(cls), free(pooled);
    }
    free(x), free(cls_ref), free(pooled_ref);
    mrec_vit_free(&m);
}

/* ViT with bf16 activations between its steps (what a GPU runs in bf16), here through the ops' references:
 * the class rows and the pooler within cosine 0.999 of transformers' fp32, the class rows within one bf16 step
 * of their largest value, and not the fp32 forward's bits (the route ran). */
static void vit_bf16_case(mrec_context *ctx, const char *dir, const char *images, const char *ref_dir) {
    mrec_vit m;
    if (!t_status(mrec_vit_load(&m, dir), MREC_OK, "load %s", dir)) return;
    int64_t s[4];
    float *x = load(dir, images, s), *cls_ref = load(ref_dir, "cls.npy", NULL), *pooled_ref = load(ref_dir, "pooled.npy", NULL);
    if (t_check(x && cls_ref && pooled_ref, "%s: fixtures", dir)) {
        int B = (int)s[0], H = m.cfg.hidden, P = m.cfg.pooler_size;
        float *cls = malloc(sizeof(float) * (size_t)B * H), *pooled = malloc(sizeof(float) * (size_t)B * P);
        float *cls32 = malloc(sizeof(float) * (size_t)B * H);
        int ok = t_status(mrec_context_reserve(ctx, mrec_vit_workspace_bytes(&m, B)), MREC_OK, "workspace") &&
                 t_status(mrec_vit_forward(ctx, &m, x, B, cls32, NULL), MREC_OK, "%s forward, fp32", dir);
        m.bf16_acts = 1;
        if (ok && t_status(mrec_vit_forward(ctx, &m, x, B, cls, m.pooler_w ? pooled : NULL), MREC_OK, "%s forward, bf16 activations", dir)) {
            double wc = worst_cosine(cls_ref, cls, B, H);
            t_check(wc >= 0.999, "%s bf16 activations: worst cosine to transformers' fp32 class rows %.6f", dir, wc);
            if (m.pooler_w) {
                double wp = worst_cosine(pooled_ref, pooled, B, P);
                t_check(wp >= 0.999, "%s bf16 activations: worst cosine to transformers' fp32 pooler %.6f", dir, wp);
            }
            t_check(memcmp(cls, cls32, sizeof(float) * (size_t)B * H) != 0, "%s bf16 activations: not the fp32 forward's bits", dir);
            /* the fp32 residual stream keeps the cosine near 1 even for a wrong layer (a ReLU for the GELU: 0.9998);
             * the largest error, within one bf16 step of the largest value (2^-8 of it), tells them apart (0.0005 of
             * 2.2 here, 0.05 with that ReLU) */
            double err = 0, top = 0;
            for (int64_t i = 0; i < (int64_t)B * H; i++) err = fmax(err, fabs(cls[i] - cls_ref[i])), top = fmax(top, fabs(cls_ref[i]));
            t_check(err <= top / 256, "%s bf16 activations: class rows off transformers' fp32 by %.3g, over one bf16 step of %.3g", dir,
                    err, top);
            if (getenv("MREC_TEST_VERBOSE")) printf("  %s bf16 activations: worst cosine %.8f, largest error %.3g of %.3g\n", dir, wc, err, top);
            t_check(ctx->workspace.used == 0, "%s: the workspace is given back", dir);
        }
        free(cls), free(pooled), free(cls32);
    }
    free(x), free(cls_ref), free(pooled_ref);
    mrec_vit_free(&m);
}

int main(void) {
    t_suite("vision");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    resnet_case(ctx, FIX "resnet_tiny", "../images_64x72.npy");
    resnet_case(ctx, FIX "resnet_basic", "../images_64x72.npy");
    channels_last_case(ctx, FIX "resnet_tiny", "../images_64x72.npy");
    channels_last_case(ctx, FIX "resnet_basic", "../images_64x72.npy");
    resnet_errors();
    vit_case(ctx, FIX "vit_tiny", "../images_32.npy", FIX "vit_tiny");
    vit_case(ctx, FIX "vit_prefixed", "../images_32.npy", FIX "vit_tiny");
    vit_bf16_case(ctx, FIX "vit_tiny", "../images_32.npy", FIX "vit_tiny");
    mrec_vit v;
    t_status(mrec_vit_load(&v, FIX "resnet_tiny"), MREC_ERR_IO, "a folder without config.json");
    const char *full = getenv("MREC_FULL_DIR");
    if (full) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/resnet50", full);
        resnet_case(ctx, dir, "../images_224.npy");
        channels_last_case(ctx, dir, "../images_224.npy");
        snprintf(dir, sizeof dir, "%s/vit_b16", full);
        vit_case(ctx, dir, "../images_224.npy", dir);
    } else {
        t_skip("full-size resnet50 and ViT-B/16: set MREC_FULL_DIR (tools/golden/vision.py --full DIR)");
    }
    mrec_context_destroy(ctx);
    return t_finish();
}
