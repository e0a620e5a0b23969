/* test_align.c: ALIGN's two towers against Hugging Face.
 *
 * tools/golden/align_vision.py wrote tests/fixtures/align/:
 * - preprocess.tsv: crc32 of the float32 pixel_values of align-base's
 *   processor (EfficientNetImageProcessor, PIL backend: 346 x 346 bilinear,
 *   crop 289, x / 127.5 - 1) on photos of tests/data/images/odd. The hf-align
 *   preset must give the same bytes, from its built-in defaults and from the
 *   saved preprocessor_config.json: PIL's resize is integer arithmetic that
 *   mrec reproduces, and the rescale is float32(x * factor in double) - 1 in
 *   float32 on both sides, so any difference is a bug, not rounding.
 * - tiny/: an AlignVisionModel (real architecture at width 0.125, depth 0.5:
 *   10 blocks, every kernel and stride of the seven stages, one block with
 *   symmetric depthwise padding; random weights and BatchNorm statistics),
 *   its inputs (the same processor at 72 -> 64 on two photos; bit-identical
 *   too) and outputs. Bound: max |error| <= 1e-4 x the largest |value| of the
 *   reference; both sides are float32, folding BatchNorm and other summation
 *   orders move results by ~1e-6 relative, a wrong pad, stride, fold or
 *   gate by 1e-2 or more.
 * tools/golden/align_text.py wrote tests/fixtures/align/text_tiny/: an
 * AlignModel (BERT under text_model. at 2 layers, hidden 8, and
 * text_projection, a Linear with bias on the [CLS] row; bert-base-uncased's
 * vocabulary, align-base's), float16 weights, the tokenizer's ids for the
 * first six item texts padded to 64 (AlignProcessor), get_text_features and
 * text_embeds (normalized). Same bound: 1e-4 x the largest |value|, the
 * weights being float16 values widened exactly on both sides.
 * With a GPU, the depthwise and squeeze-excite kernels against their
 * references and the model on the GPU against the same fixture; without
 * one, those print "skipped".
 */
#include "encoder_checks.h"
#include "harness.h"

#include "../extractors/mrec_extract.h"
#include "../extractors/mrec_image_encoder.h"
#include "../extractors/mrec_preprocess.h"
#include "../kernels/mrec_kernels.h"
#include "../nn/mrec_bert.h"
#include "../nn/mrec_efficientnet.h"
#include "../nn/mrec_npy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define FIX "tests/fixtures/align/"
#define ODD "tests/data/images/odd/"
#define TEXT FIX "text_tiny/"
#define N_TEXTS 6 /* the first lines of tests/data/texts/items.txt in the fixture */

/* align-base's processor on every photo of preprocess.tsv: the crc32 of the float32 output */
static void align_base_processor(const char *model_dir) {
    FILE *f = fopen(FIX "preprocess.tsv", "r");
    if (!t_check(f != NULL, FIX "preprocess.tsv")) return;
    mrec_preprocess p;
    if (!t_status(mrec_preprocess_preset(&p, "hf-align", model_dir), MREC_OK, "hf-align from %s", model_dir ? model_dir : "its defaults")) {
        fclose(f);
        return;
    }
    char rel[512];
    int oh, ow, n = 0;
    unsigned want;
    while (fscanf(f, "%511s %d %d %x", rel, &oh, &ow, &want) == 4) {
        char path[600];
        snprintf(path, sizeof path, ODD "%s", rel);
        mrec_rgb_image img;
        if (!t_status(mrec_image_load(path, &img), MREC_OK, "decode %s", rel)) continue;
        int h, w;
        mrec_preprocess_out_size(&p, img.h, img.w, &h, &w);
        float *x = malloc(sizeof(float) * 3 * (size_t)h * w);
        mrec_status st = mrec_preprocess_image(&p, &img, x, NULL);
        unsigned got = st ? 0 : (unsigned)crc32(crc32(0, NULL, 0), (const Bytef *)x, (uInt)(sizeof(float) * 3 * h * w));
        t_check(!st && h == oh && w == ow && got == want, "hf-align (%s) on %s: %dx%d crc %08x, Hugging Face %dx%d crc %08x",
                model_dir ? "config" : "defaults", rel, w, h, got, ow, oh, want);
        free(x);
        mrec_image_free(&img);
        n++;
    }
    fclose(f);
    t_check(n == 6, "preprocess.tsv lists 6 photos (%d read)", n);
}

static const char *const MODEL_PHOTOS[2] = {"pillow/hopper.jpg", "libjpeg-turbo/testorig.jpg"};

/* the model's inputs: the same processor at 72 -> 64, bit for bit */
static void tiny_processor(const float *want, int64_t per) {
    mrec_preprocess p;
    if (!t_status(mrec_preprocess_preset(&p, "hf-align", FIX "tiny_processor"), MREC_OK, "hf-align from tiny_processor"))
        return;
    t_check(p.resize_h == 72 && p.crop_h == 64 && p.rescale_offset && !p.do_normalize, "tiny_processor's config is read");
    for (int i = 0; i < 2; i++) {
        char path[600];
        snprintf(path, sizeof path, ODD "%s", MODEL_PHOTOS[i]);
        mrec_rgb_image img;
        if (!t_status(mrec_image_load(path, &img), MREC_OK, "decode %s", MODEL_PHOTOS[i])) continue;
        float *x = malloc(sizeof(float) * (size_t)per);
        int64_t diff = 0;
        if (t_status(mrec_preprocess_image(&p, &img, x, NULL), MREC_OK, "preprocess %s", MODEL_PHOTOS[i]))
            for (int64_t k = 0; k < per; k++) diff += memcmp(&x[k], &want[i * per + k], sizeof(float)) != 0;
        t_check(diff == 0, "hf-align 72 -> 64 on %s: %lld of %lld values differ from Hugging Face's", MODEL_PHOTOS[i],
                (long long)diff, (long long)per);
        free(x);
        mrec_image_free(&img);
    }
}

/* Images side by side (mrec_context_split), an image per thread on 2
 * threads with the workspace for it: the bits of the forward that ran
 * each op on all threads, every output. */
static void split_case(const mrec_efficientnet *m, const float *x, int B, int H, int W, const float *pooled, const float *embeds,
                       const float *last) {
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *c = NULL;
    int oh, ow;
    mrec_efficientnet_out_size(m, H, W, &oh, &ow);
    size_t bytes = sizeof(float) * (size_t)B * m->features, lbytes = bytes * (size_t)oh * ow;
    float *p = malloc(bytes), *e = malloc(bytes), *l = malloc(lbytes);
    if (t_status(mrec_context_create(&c, &o), MREC_OK, "a 2-thread context") &&
        t_check(mrec_efficientnet_batch_workspace_bytes(c, m, B, H, W) >= 2 * mrec_efficientnet_workspace_bytes(m, H, W),
                "the workspace for a pass per thread") &&
        t_status(mrec_context_reserve(c, mrec_efficientnet_batch_workspace_bytes(c, m, B, H, W)), MREC_OK, "workspace") &&
        t_status(mrec_efficientnet_forward(c, m, x, B, H, W, p, e, l), MREC_OK, "tiny, a pass per thread")) {
        t_check(!memcmp(p, pooled, bytes) && !memcmp(e, embeds, bytes) && !memcmp(l, last, lbytes),
                "tiny, %d images on 2 threads side by side: the bits of the forward on all threads", B);
        t_check(c->workspace.used == 0, "tiny: the workspace is given back after the threads' passes");
    }
    mrec_context_destroy(c);
    free(p), free(e), free(l);
}

/* A pass's launches are one CUDA graph on a GPU, captured at its second call under a key and replayed after: on a
 * CPU context with the replay check (mrec_graph_check_enable) four forwards into the same outputs, the photos in
 * turn, must launch what the second did (a host value the key misses would differ), with the first forward's bits. */
static void replay_case(const mrec_efficientnet *m, const float *x, int B, int H, int W, const float *pooled) {
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 1;
    mrec_context *c = NULL;
    size_t bytes = sizeof(float) * (size_t)B * m->features;
    float *p = malloc(bytes), *swapped = malloc(sizeof(float) * (size_t)B * 3 * H * W);
    size_t image = (size_t)3 * H * W;
    for (int i = 0; swapped && i < B; i++) memcpy(swapped + (size_t)i * image, x + (size_t)(B - 1 - i) * image, sizeof(float) * image);
    int ok = p && swapped && t_status(mrec_context_create(&c, &o), MREC_OK, "a 1-thread context") &&
             t_status(mrec_graph_check_enable(c), MREC_OK, "the replay check") &&
             t_status(mrec_context_reserve(c, mrec_efficientnet_workspace_bytes(m, H, W)), MREC_OK, "workspace");
    for (int r = 0; ok && r < 4; r++) {
        ok = t_status(mrec_efficientnet_forward(c, m, r & 1 ? swapped : x, B, H, W, p, NULL, NULL), MREC_OK,
                      "tiny under the replay check, forward %d", r + 1);
        const float *want = pooled; /* the photos in the other order: the rows swap */
        int same = 1;
        for (int i = 0; ok && i < B; i++)
            same &= !memcmp(p + (size_t)i * m->features, want + (size_t)((r & 1) ? B - 1 - i : i) * m->features,
                            sizeof(float) * (size_t)m->features);
        if (ok) t_check(same, "tiny under the replay check, forward %d: the plain forward's bits", r + 1);
    }
    mrec_context_destroy(c);
    free(p), free(swapped);
}

static void model_case(mrec_context *ctx, const char *device, const float *x, int B, int H, int W) {
    mrec_efficientnet m;
    if (!t_status(mrec_efficientnet_load(&m, FIX "tiny"), MREC_OK, "load tiny")) return;
    t_check(m.n_blocks == 10 && m.stem_c == 8 && m.features == 40, "tiny: 10 blocks, stem 8, 40 features (%d, %d, %d)",
            m.n_blocks, m.stem_c, m.features);
    t_check(m.block[1].pad_top == 0 && m.block[1].pad_bottom == 1 && m.block[2].pad_top == 2 && m.block[2].pad_bottom == 2 &&
                m.block[3].stride == 2 && m.block[4].stride == 1 && m.block[4].residual && !m.block[3].residual,
            "tiny: strides, residuals, and the paddings (asymmetric, and symmetric for the depthwise_padding block)");
    int64_t ls[4] = {0};
    float *pooled_ref = load_npy(FIX "pooled.npy", NULL), *embeds_ref = load_npy(FIX "embeds.npy", NULL), *last_ref = load_npy(FIX "last_hidden.npy", ls);
    int oh, ow;
    mrec_efficientnet_out_size(&m, H, W, &oh, &ow);
    if (t_check(pooled_ref && embeds_ref && last_ref, "tiny: reference outputs") &&
        t_check(ls[0] == B && ls[1] == m.features && ls[2] == oh && ls[3] == ow, "last_hidden_state is (%d, %d, %d, %d)", B,
                m.features, oh, ow) &&
        t_status(mrec_efficientnet_to_device(&m, ctx), MREC_OK, "tiny to the %s", device)) {
        size_t bytes = sizeof(float) * (size_t)B * m.features, lbytes = bytes * (size_t)oh * ow;
        float *pooled_d = NULL, *embeds_d = NULL, *last_d = NULL, *pooled = malloc(bytes), *embeds = malloc(bytes), *last = malloc(lbytes);
        mrec_status st = mrec_context_reserve(ctx, mrec_efficientnet_workspace_bytes(&m, H, W) + 2 * bytes + lbytes + 4096);
        if (!st) {
            size_t mark = ctx->workspace.used;
            pooled_d = mrec_arena_alloc(&ctx->workspace, bytes), embeds_d = mrec_arena_alloc(&ctx->workspace, bytes);
            last_d = mrec_arena_alloc(&ctx->workspace, lbytes);
            size_t outputs = ctx->workspace.used;
            st = mrec_efficientnet_forward(ctx, &m, x, B, H, W, pooled_d, embeds_d, last_d);
            if (!st) st = mrec_copy_to_host(ctx, last, last_d, lbytes);
            if (!st) st = mrec_copy_to_host(ctx, pooled, pooled_d, bytes);
            if (!st) st = mrec_copy_to_host(ctx, embeds, embeds_d, bytes);
            t_check(ctx->workspace.used == outputs, "%s: the forward pass gives its workspace back", device);
            ctx->workspace.used = mark;
        }
        if (t_status(st, MREC_OK, "tiny forward on the %s", device)) {
            char what[120];
            snprintf(what, sizeof what, "%s: pooler_output = get_image_features (%d x %d)", device, B, m.features);
            compare_scaled(what, pooled_ref, pooled, (int64_t)B * m.features);
            snprintf(what, sizeof what, "%s: image_embeds (pooled, L2-normalized)", device);
            compare_scaled(what, embeds_ref, embeds, (int64_t)B * m.features);
            /* the map before pooling: a shifted window (a wrong pad) moves the mean little, the map much */
            snprintf(what, sizeof what, "%s: last_hidden_state (%d x %d x %d x %d)", device, B, m.features, oh, ow);
            compare_scaled(what, last_ref, last, (int64_t)B * m.features * oh * ow);
            if (ctx->device == MREC_DEVICE_CPU) split_case(&m, x, B, H, W, pooled, embeds, last), replay_case(&m, x, B, H, W, pooled);
        }
        free(pooled), free(embeds), free(last);
    }
    free(pooled_ref), free(embeds_ref), free(last_ref);
    mrec_efficientnet_free(&m);
}

static void model_errors(void) {
    mrec_efficientnet m;
    t_status(mrec_efficientnet_load(&m, "tests/fixtures/vision/vit_tiny"), MREC_ERR_UNSUPPORTED, "a ViT folder is no ALIGN");
    t_check(strstr(mrec_error_detail(), "model_type") != NULL, "the message names the key: %s", mrec_error_detail());
    t_status(mrec_efficientnet_load(&m, "tests/fixtures/align/no_such_dir"), MREC_ERR_IO, "a missing folder");
    /* tiny's weights under configs that disagree with them: each error names the file and what disagrees */
    static const struct { const char *from, *to, *says; mrec_status want; } cases[] = {
        {"\"depth_coefficient\": 0.5", "\"depth_coefficient\": 1.0", "block 7 adds its input", MREC_ERR_SHAPE},
        {"\"depth_coefficient\": 0.5", "\"depth_coefficient\": 0.25", "config makes 7 blocks", MREC_ERR_SHAPE},
        {"\"expand_ratios\": [\n    1,", "\"expand_ratios\": [\n    6,", "expand ratio is 6", MREC_ERR_SHAPE},
        {"\"kernel_sizes\": [\n    3,", "\"kernel_sizes\": [\n    5,", "depthwise_conv.depthwise_conv.weight", MREC_ERR_SHAPE},
        {"\"hidden_act\": \"swish\"", "\"hidden_act\": \"relu\"", "hidden_act", MREC_ERR_UNSUPPORTED},
        {"\"pooling_type\": \"mean\"", "\"pooling_type\": \"max\"", "pooling_type", MREC_ERR_UNSUPPORTED},
        {"\"strides\": [\n    1,", "\"strides\": [\n    3,", "strides\"[0]", MREC_ERR_FORMAT},
    };
    FILE *f = fopen(FIX "tiny/config.json", "rb");
    char cfg[4096], dir[] = "/tmp/mrec-align-cfg-XXXXXX", path[4200], link[4200];
    size_t n = f ? fread(cfg, 1, sizeof cfg - 1, f) : 0;
    if (f) fclose(f);
    cfg[n] = 0;
    if (!t_check(n > 0 && mkdtemp(dir) != NULL, "tiny's config and a temporary folder")) return;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!realpath(FIX "tiny/model.safetensors", link) || symlink(link, path) != 0) {
        t_check(0, "link tiny's weights into %s", dir);
        return;
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *at = strstr(cfg, cases[c].from), edited[4300];
        if (!t_check(at != NULL, "tiny's config.json has %s", cases[c].from)) continue;
        snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - cfg), cfg, cases[c].to, at + strlen(cases[c].from));
        snprintf(path, sizeof path, "%s/config.json", dir);
        f = fopen(path, "wb");
        if (!f) continue;
        fputs(edited, f);
        fclose(f);
        t_status(mrec_efficientnet_load(&m, dir), cases[c].want, "tiny's weights with %s", cases[c].to);
        t_check(strstr(mrec_error_detail(), cases[c].says) != NULL, "the message says \"%s\": %s", cases[c].says, mrec_error_detail());
    }
    snprintf(path, sizeof path, "rm -rf %s", dir);
    if (system(path) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* The extractor end to end: photos in (decode, the hf-align preset from the folder's
 * preprocessor_config.json, the forward), features out, for both layers. */
static void encoder_case(void) {
    const char *paths[2] = {ODD "pillow/hopper.jpg", ODD "libjpeg-turbo/testorig.jpg"};
    static const char *const layers[2] = {NULL, "pooler"}, *const refs[2] = {FIX "embeds.npy", FIX "pooled.npy"};
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    mrec_context *ctx;
    if (!t_status(mrec_context_create(&ctx, &o), MREC_OK, "a CPU context")) return;
    for (int l = 0; l < 2; l++) {
        mrec_image_encoder enc;
        if (!t_status(mrec_image_encoder_load(&enc, FIX "tiny", NULL, layers[l]), MREC_OK, "the image encoder on tiny")) continue;
        t_check(enc.kind == MREC_IMAGE_ALIGN && !strcmp(enc.pre.name, "hf-align") && enc.pre.crop_h == 64 &&
                    enc.layer == (l ? MREC_LAYER_POOLER : MREC_LAYER_EMBEDS),
                "an ALIGN folder: hf-align from its preprocessor_config.json, layer %s", mrec_image_layer_name(enc.layer));
        int D = mrec_image_encoder_dim(&enc), ok[2] = {0, 0};
        char *errors[2] = {NULL, NULL};
        float *out = calloc(2 * (size_t)D, sizeof(float)), *ref = load_npy(refs[l], NULL);
        if (t_status(mrec_image_encoder_embed(ctx, &enc, paths, 2, out, ok, errors), MREC_OK, "embed two photos") &&
            t_check(ok[0] && ok[1] && ref && D == 40, "both photos encoded, 40 features")) {
            char what[120];
            snprintf(what, sizeof what, "extractor, layer %s, against Hugging Face", mrec_image_layer_name(enc.layer));
            compare_scaled(what, ref, out, 2 * (int64_t)D);
            /* in bf16 (the EfficientNet's convolutions and the GEMMs; AVX-512 BF16, or AMX tiles): each photo's
             * features within cosine 0.999 of Hugging Face's fp32 */
            if (!mrec_cpu_has_bf16()) t_skip("ALIGN's image tower in bf16: this CPU has no AVX-512 BF16");
            for (int simd = MREC_SIMD_AVX512; mrec_cpu_has_bf16() && simd <= (int)mrec_simd_detect(); simd++) {
                mrec_context_options h = o;
                h.precision = MREC_PREC_BF16, h.max_simd = (mrec_simd)simd;
                mrec_context *half = NULL;
                if (!t_status(mrec_context_create(&half, &h), MREC_OK, "a bf16 CPU context")) continue;
                if (t_status(mrec_image_encoder_embed(half, &enc, paths, 2, out, ok, errors), MREC_OK, "embed two photos in bf16")) {
                    double worst = 1;
                    for (int i = 0; i < 2; i++) {
                        double rr = 0, hh = 0, rh = 0;
                        for (int d = 0; d < D; d++) {
                            double r = ref[(size_t)i * D + d], v = out[(size_t)i * D + d];
                            rr += r * r, hh += v * v, rh += r * v;
                        }
                        worst = fmin(worst, rh / sqrt(rr * hh));
                    }
                    t_check(worst >= 0.999, "ALIGN layer %s in bf16 (%s): worst cosine to Hugging Face's fp32 %.6f",
                            mrec_image_layer_name(enc.layer), mrec_simd_name((mrec_simd)simd), worst);
                    /* the expansions handed to the depthwise convs in bf16 (without AMX) or in float: the same bits
                     * (tiny's expansions sum K in one block either way) */
                    t_check(mrec_bf16_planes_native(half) == (simd < MREC_SIMD_AMX), "bf16 planes on %s: %d",
                            mrec_simd_name((mrec_simd)simd), mrec_bf16_planes_native(half));
                    float *planes = malloc(2 * (size_t)D * sizeof(float));
                    enc.align.float_planes = 1;
                    if (t_status(mrec_image_encoder_embed(half, &enc, paths, 2, planes, ok, errors), MREC_OK, "in bf16, float planes"))
                        t_check(!memcmp(planes, out, 2 * (size_t)D * sizeof(float)), "ALIGN layer %s in bf16 (%s): the bits with "
                                "the expansions in float", mrec_image_layer_name(enc.layer), mrec_simd_name((mrec_simd)simd));
                    enc.align.float_planes = 0;
                    free(planes);
                }
                mrec_context_destroy(half);
            }
        }
        free(errors[0]), free(errors[1]), free(out), free(ref);
        mrec_image_encoder_free(&enc);
    }
    mrec_image_encoder enc;
    t_status(mrec_image_encoder_load(&enc, FIX "tiny", NULL, "cls"), MREC_ERR_ARG, "ALIGN has no cls layer");
    t_check(strstr(mrec_error_detail(), "embeds and pooler") != NULL, "the message lists ALIGN's layers: %s", mrec_error_detail());
    mrec_context_destroy(ctx);
}

/* ---- the text tower ---- */

/* text_tiny's model on the fixture's ids: the projection against
 * get_text_features, normalized against text_embeds. */
static void text_model_case(mrec_context *ctx, const char *device) {
    int64_t s[2] = {0};
    float *fids = load_npy(TEXT "ref_ids.npy", s), *fmask = load_npy(TEXT "ref_mask.npy", NULL);
    float *feats = load_npy(TEXT "ref_features.npy", NULL), *embeds = load_npy(TEXT "ref_embeds.npy", NULL);
    mrec_bert m;
    if (!t_check(fids && fmask && feats && embeds && s[0] == N_TEXTS && s[1] == 64, "text_tiny's references") ||
        !t_status(mrec_bert_load(&m, TEXT), MREC_OK, "mrec_bert_load on an AlignModel folder")) {
        free(fids), free(fmask), free(feats), free(embeds);
        return;
    }
    t_check(m.cfg.proj_dim == 40 && m.proj_w && m.proj_b && m.pooler_w && m.cfg.hidden == 8 && m.cfg.layers == 2,
            "ALIGN: text_config's BERT, projection_dim 40, text_projection with its bias");
    int B = N_TEXTS, T = 64, P = m.cfg.proj_dim;
    int32_t ids[N_TEXTS * 64], mask[N_TEXTS * 64];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)fids[i], mask[i] = (int32_t)fmask[i];
    float *host = malloc(sizeof(float) * 2 * (size_t)B * P);
    mrec_status st = host ? bert_text_embeds(ctx, &m, ids, mask, B, T, host, host + B * P) : MREC_ERR_NOMEM;
    if (t_status(st, MREC_OK, "ALIGN text forward and projection on the %s", device)) {
        char what[96];
        snprintf(what, sizeof what, "%s: text_projection([CLS]) against get_text_features", device);
        compare_scaled(what, feats, host, (int64_t)B * P);
        snprintf(what, sizeof what, "%s: normalized against AlignModel's text_embeds", device);
        compare_scaled(what, embeds, host + B * P, (int64_t)B * P);
    }
    mrec_bert_free(&m);
    free(host), free(fids), free(fmask), free(feats), free(embeds);
}

/* The first n lines of the item texts (malloc'd, in *buf). */
static int item_texts(char **buf, const char **texts, int n) {
    *buf = t_slurp("tests/data/texts/items.txt");
    int k = 0;
    for (char *p = *buf; p && *p && k < n; k++) {
        texts[k] = p;
        char *nl = strchr(p, '\n');
        if (!nl) { k++; break; }
        *nl = 0, p = nl + 1;
    }
    return k;
}

/* The text extractor end to end: the tokenizer's ids against transformers',
 * then texts in, AlignModel's text_embeds out. */
static void text_encoder_case(void) {
    char *buf;
    const char *texts[N_TEXTS];
    int n = item_texts(&buf, texts, N_TEXTS);
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    mrec_context *ctx;
    mrec_text_encoder e;
    if (!t_check(n == N_TEXTS, "six item texts") || !t_status(mrec_context_create(&ctx, &o), MREC_OK, "a CPU context")) {
        free(buf);
        return;
    }
    if (t_status(mrec_text_encoder_load(&e, TEXT), MREC_OK, "the text encoder on text_tiny")) {
        t_check(e.pooling == MREC_POOL_EMBEDS && e.normalize && e.max_length == 64 && mrec_text_encoder_dim(&e) == 40,
                "an ALIGN folder: projected, normalized, cut at 64, 40-d");
        int32_t ids[N_TEXTS * 64], mask[N_TEXTS * 64], lens[N_TEXTS];
        mrec_tok_options opt = mrec_tok_defaults();
        opt.max_length = 64;
        float *want = load_npy(TEXT "ref_ids.npy", NULL), *ref = load_npy(TEXT "ref_embeds.npy", NULL);
        int same = !mrec_tokenizer_encode_batch(e.tok, texts, NULL, N_TEXTS, &opt, 64, ids, NULL, mask, lens) && want;
        for (int i = 0; same && i < N_TEXTS * 64; i++) same = mask[i] ? ids[i] == (int32_t)want[i] : want[i] == 0;
        t_check(same, "WordPiece ids of six item texts equal transformers' BertTokenizer's");
        float out[N_TEXTS * 40];
        if (ref && t_status(mrec_text_encoder_embed(ctx, &e, texts, N_TEXTS, out), MREC_OK, "embed six texts"))
            compare_scaled("text extractor with ALIGN against Hugging Face's text_embeds", ref, out, N_TEXTS * 40);
        free(want), free(ref);
        mrec_text_encoder_free(&e);
    }
    mrec_context_destroy(ctx);
    free(buf);
}

/* Malformed ALIGN folders: text_tiny's weights under a broken config.json. */
static void text_errors(void) {
    char dir[] = "/tmp/mrec-align-text-XXXXXX", cmd[4096], path[4200];
    if (!t_check(mkdtemp(dir) != NULL, "a temporary folder")) return;
    static const struct { const char *sed, *says; } cases[] = {
        {"s/\"projection_dim\": 40/\"projection_dim\": 41/", "text_projection.weight"},
        {"s/\"projection_dim\": 40/\"projection_dim\": 0/", "projection_dim"},
        {"s/\"text_config\"/\"txt_config\"/", "text_config"},
        {"s/\"hidden_size\": 8/\"hidden_size\": 16/", "text_model.embeddings.word_embeddings.weight"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(cmd, sizeof cmd, "cp " TEXT "model.safetensors %s/ && sed '%s' " TEXT "config.json > %s/config.json", dir,
                 cases[k].sed, dir);
        if (!t_check(system(cmd) == 0, "%s", cmd)) break;
        mrec_bert m;
        mrec_status st = mrec_bert_load(&m, dir);
        if (!st) mrec_bert_free(&m);
        snprintf(path, sizeof path, "%s/", dir);
        t_check(st != MREC_OK && strstr(mrec_error_detail(), cases[k].says) && strstr(mrec_error_detail(), path),
                "config.json edited by %s is refused naming the file and %s: %s", cases[k].sed, cases[k].says, mrec_error_detail());
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* mrec extract-image on a folder of the two photos (sorted: hopper, testorig) */
static void cli_case(void) {
    const char *bin = getenv("MREC_BIN");
    if (!bin) {
        t_skip("mrec extract-image with ALIGN: MREC_BIN is not set (tests/run.sh sets it)");
        return;
    }
    char dir[] = "/tmp/mrec-align-XXXXXX", cmd[8192], path[4200];
    if (!t_check(mkdtemp(dir) != NULL, "a temporary folder")) return;
    snprintf(cmd, sizeof cmd, "mkdir %s/photos && ln -s \"$PWD/" ODD "pillow/hopper.jpg\" %s/photos/ && "
             "ln -s \"$PWD/" ODD "libjpeg-turbo/testorig.jpg\" %s/photos/ && "
             "%s extract-image --model " FIX "tiny --images %s/photos --batch-size 1 --out %s/out > %s/log 2>&1",
             dir, dir, dir, bin, dir, dir, dir);
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/out/image_feat.npy", dir);
    int64_t sh[2] = {0};
    float *feat = load_npy(path, sh), *ref = load_npy(FIX "embeds.npy", NULL);
    if (t_check(rc == 0 && feat && ref && sh[0] == 2 && sh[1] == 40, "extract-image --model tiny writes (2, 40): rc %d", rc))
        compare_scaled("mrec extract-image with ALIGN, against Hugging Face's image_embeds", ref, feat, 80);
    free(feat), free(ref);
    /* a Ducho config: the visual section runs the image tower, a textual one the text tower */
    static const char *const sections[2] = {
        "visual:\n  items:\n    input_path: photos\n    output_path: v\n    model: [{model_name: tiny, output_layers: 1}]\n",
        "textual:\n  items:\n    input_path: meta.tsv\n    item_column: item\n    text_column: text\n    output_path: t\n"
        "    model: [{model_name: text_tiny, output_layers: 1}]\n"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/ducho%d.yml", dir, k);
        FILE *f = fopen(path, "w");
        if (!t_check(f != NULL, "%s", path)) break;
        fprintf(f, "dataset_path: %s\ngpu list: -1\n%s", dir, sections[k]);
        fclose(f);
        snprintf(cmd, sizeof cmd, "printf 'item\\ttext\\ni0\\t' > %s/meta.tsv && head -n 1 tests/data/texts/items.txt >> %s/meta.tsv && "
                 "%s extract %s --weights " FIX " > %s/log 2>&1", dir, dir, bin, path, dir);
        rc = system(cmd);
        if (k == 0) {
            snprintf(path, sizeof path, "%s/v/torch/tiny/1/testorig.npy", dir);
            float *row = load_npy(path, sh), *want = load_npy(FIX "embeds.npy", NULL);
            if (t_check(rc == 0 && row && want && sh[0] == 1 && sh[1] == 40, "mrec extract: a Ducho visual section with ALIGN"))
                compare_scaled("mrec extract (Ducho): testorig.npy against Hugging Face", want + 40, row, 40);
            free(row), free(want);
        } else {
            char found[4400] = "";
            snprintf(cmd, sizeof cmd, "find %s/t -name i0.npy", dir);
            t_run(cmd, found, sizeof found);
            found[strcspn(found, "\n")] = 0;
            float *row = *found ? load_npy(found, sh) : NULL, *want = load_npy(TEXT "ref_embeds.npy", NULL);
            if (t_check(rc == 0 && row && want && sh[0] == 1 && sh[1] == 40, "mrec extract: a Ducho textual section with ALIGN (%s)",
                        found))
                compare_scaled("mrec extract (Ducho): ALIGN's text_embeds of an item text against Hugging Face", want, row, 40);
            free(row), free(want);
        }
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* the GPU kernels against their references, odd shapes */
static void gpu_kernels(mrec_context *g) {
    mrec_depthwise_shape cases[] = {{2, 5, 9, 11, 3, 3, 1, 1, 1, 1, 1, 1}, {1, 6, 11, 14, 5, 5, 2, 2, 1, 2, 1, 2},
                                    {2, 3, 12, 9, 3, 3, 2, 2, 0, 1, 0, 1}, {1, 4, 17, 7, 3, 5, 2, 1, 0, 2, 3, 1}};
    uint64_t seed = 7;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mrec_depthwise_shape s = cases[c];
        int Ho = mrec_depthwise_out_h(&s), Wo = mrec_depthwise_out_w(&s);
        size_t nin = (size_t)s.N * s.C * s.H * s.W, nout = (size_t)s.N * s.C * Ho * Wo, nw = (size_t)s.C * s.KH * s.KW;
        float *x = malloc(4 * nin), *w = malloc(4 * nw), *b = malloc(4 * (size_t)s.C), *ref = malloc(4 * nout), *out = malloc(4 * nout);
        t_fill_uniform(x, (int64_t)nin, &seed, -1, 1), t_fill_uniform(w, (int64_t)nw, &seed, -1, 1), t_fill_uniform(b, s.C, &seed, -1, 1);
        mrec_depthwise_conv2d_ref(ref, x, w, b, &s);
        size_t mark = g->workspace.used;
        float *dx = mrec_arena_alloc(&g->workspace, 4 * nin), *dw = mrec_arena_alloc(&g->workspace, 4 * nw);
        float *db = mrec_arena_alloc(&g->workspace, 4 * (size_t)s.C), *dy = mrec_arena_alloc(&g->workspace, 4 * nout);
        mrec_status st = dx && dw && db && dy ? MREC_OK : MREC_ERR_NOMEM;
        if (!st) st = mrec_copy_to_device(g, dx, x, 4 * nin);
        if (!st) st = mrec_copy_to_device(g, dw, w, 4 * nw);
        if (!st) st = mrec_copy_to_device(g, db, b, 4 * (size_t)s.C);
        if (!st) st = mrec_depthwise_conv2d(g, dy, dx, dw, db, &s);
        if (!st) st = mrec_copy_to_host(g, out, dy, 4 * nout);
        if (t_status(st, MREC_OK, "depthwise conv on the GPU, case %zu", c))
            t_allclose("depthwise conv2d_cuda", ref, out, (int64_t)nout, 1e-5, 1e-5);
        /* with swish in the kernel and the planes' means: the reference's outputs through swish in double */
        int planes = s.N * s.C;
        float *dm = mrec_arena_alloc(&g->workspace, 4 * (size_t)planes), means[64], want[64];
        if (!st) st = dm ? mrec_depthwise_conv2d_act(g, dy, dx, dw, db, MREC_ACT_SILU, dm, &s) : MREC_ERR_NOMEM;
        if (!st) st = mrec_copy_to_host(g, out, dy, 4 * nout);
        if (!st) st = mrec_copy_to_host(g, means, dm, 4 * (size_t)planes);
        for (size_t i = 0; i < nout; i++) ref[i] = (float)(ref[i] / (1.0 + exp(-(double)ref[i])));
        mrec_row_mean_ref(want, ref, planes, Ho * Wo);
        if (t_status(st, MREC_OK, "depthwise conv + swish + means on the GPU, case %zu", c)) {
            t_allclose("depthwise conv2d_act_cuda (swish)", ref, out, (int64_t)nout, 2e-5, 2e-5);
            t_allclose("depthwise conv2d_act_cuda (means)", want, means, planes, 2e-5, 2e-5);
        }
        g->workspace.used = mark;
        free(x), free(w), free(b), free(ref), free(out);
    }
    int R = 37, HW = 333;
    float *x = malloc(4 * (size_t)R * HW), *gate = malloc(4 * (size_t)R), *ref = malloc(4 * (size_t)R * HW), *out = malloc(4 * (size_t)R * HW);
    t_fill_uniform(x, (int64_t)R * HW, &seed, -2, 2), t_fill_uniform(gate, R, &seed, -4, 4);
    size_t mark = g->workspace.used;
    float *dx = mrec_arena_alloc(&g->workspace, 4 * (size_t)R * HW), *dg = mrec_arena_alloc(&g->workspace, 4 * (size_t)R);
    float *dy = mrec_arena_alloc(&g->workspace, 4 * (size_t)R * HW);
    mrec_status st = dx && dg && dy ? MREC_OK : MREC_ERR_NOMEM;
    if (!st) st = mrec_copy_to_device(g, dx, x, 4 * (size_t)R * HW);
    if (!st) st = mrec_copy_to_device(g, dg, gate, 4 * (size_t)R);
    if (!st) st = mrec_row_mean(g, dy, dx, R, HW);
    if (!st) st = mrec_copy_to_host(g, out, dy, 4 * (size_t)R);
    mrec_row_mean_ref(ref, x, R, HW);
    if (t_status(st, MREC_OK, "row mean on the GPU")) t_allclose("row_mean_cuda", ref, out, R, 1e-5, 1e-5);
    if (!st) st = mrec_sigmoid_gate_rows(g, dy, dx, dg, R, HW);
    if (!st) st = mrec_copy_to_host(g, out, dy, 4 * (size_t)R * HW);
    mrec_sigmoid_gate_rows_ref(ref, x, gate, R, HW);
    if (t_status(st, MREC_OK, "sigmoid gate on the GPU")) t_allclose("sigmoid_gate_rows_cuda", ref, out, (int64_t)R * HW, 1e-6, 1e-6);
    g->workspace.used = mark;
    free(x), free(gate), free(ref), free(out);
}

int main(void) {
    t_suite("align");
    align_base_processor(NULL);
    align_base_processor(FIX "align_base_processor");
    int64_t s[4];
    float *x = load_npy(FIX "tiny_processor/pixel_values.npy", s);
    if (t_check(x && s[0] == 2 && s[1] == 3, "the model's inputs")) {
        int B = (int)s[0], H = (int)s[2], W = (int)s[3];
        tiny_processor(x, (int64_t)3 * H * W);
        mrec_context_options o = mrec_context_defaults();
        o.device = MREC_WANT_CPU;
        mrec_context *ctx;
        T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
        model_case(ctx, "CPU", x, B, H, W);
        mrec_context_destroy(ctx);
        o.device = MREC_WANT_CUDA;
        if (mrec_context_create(&ctx, &o) == MREC_OK) {
            T_REQUIRE(mrec_context_reserve(ctx, 64 << 20) == MREC_OK);
            gpu_kernels(ctx);
            model_case(ctx, "GPU", x, B, H, W);
            mrec_context_destroy(ctx);
        } else {
            t_no_gpu(mrec_error_detail());
            t_skip("depthwise conv, row mean, sigmoid gate and the ALIGN tower on the GPU: %s", mrec_error_detail());
        }
    }
    free(x);
    {
        mrec_context_options o = mrec_context_defaults();
        mrec_context *ctx;
        o.device = MREC_WANT_CPU;
        if (t_status(mrec_context_create(&ctx, &o), MREC_OK, "a CPU context")) {
            text_model_case(ctx, "CPU");
            mrec_context_destroy(ctx);
        }
        o.device = MREC_WANT_CUDA;
        if (mrec_context_create(&ctx, &o) == MREC_OK) {
            text_model_case(ctx, "GPU");
            mrec_context_destroy(ctx);
        } else {
            t_no_gpu(mrec_error_detail());
            t_skip("the ALIGN text tower on the GPU: %s", mrec_error_detail());
        }
    }
    model_errors();
    encoder_case();
    text_errors();
    text_encoder_case();
    cli_case();
    return t_finish();
}
