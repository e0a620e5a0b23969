/* test_clip.c: CLIP's towers against Hugging Face's CLIPModel.
 *
 * tools/golden/clip.py ran transformers' CLIPModel (tiny config, real
 * vocabulary size, random weights) on photos shipped in tests/data through
 * CLIPImageProcessor and on item texts written for the tests and captions
 * through CLIPTokenizerFast. The bound is 1e-4 absolute (the bar); both
 * sides are float32 and differ by summation order only, about 1e-6 here.
 * The ids from mrec's own tokenizer must equal HF's exactly. MREC_FULL_DIR
 * (clip.py --full DIR/clip_b16) adds a ViT-B/16-sized CLIP.
 */
#include "harness.h"

#include "../nn/mrec_clip.h"
#include "../nn/mrec_npy.h"
#include "../tokenizers/mrec_tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/clip/"
#define TOKENIZER "tests/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json" /* shipped: every clone runs this */

static char tmp[] = "/tmp/mrec_test_clip_XXXXXX";

static float *load(const char *dir, const char *file, int64_t *shape) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    float *data = NULL;
    int ndim;
    int64_t s[8] = {0};
    if (mrec_npy_read_f32(path, &data, &ndim, s)) return NULL;
    if (shape) memcpy(shape, s, sizeof(int64_t) * (size_t)ndim);
    return data;
}

static int32_t *load_ids(const char *dir, const char *file, int64_t *shape) {
    float *f = load(dir, file, shape);
    if (!f) return NULL;
    int32_t *ids = malloc(sizeof *ids * (size_t)(shape[0] * shape[1]));
    for (int64_t i = 0; i < shape[0] * shape[1]; i++) ids[i] = (int32_t)f[i];
    free(f);
    return ids;
}

static void compare(const char *dir, const char *ref_file, const float *out, int64_t n, const char *what) {
    int64_t s[2];
    float *ref = load(dir, ref_file, s);
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s", dir, what);
    if (t_check(ref && s[0] * s[1] == n, "%s: reference %s", dir, ref_file)) t_allclose(msg, ref, out, n, 1e-4, 0);
    free(ref);
}

/* Every output of both towers, and the logits, on the fixture's inputs. */
static void towers(mrec_context *ctx, const char *dir) {
    mrec_clip m;
    if (!t_status(mrec_clip_load(&m, dir, MREC_CLIP_BOTH), MREC_OK, "load %s", dir)) return;
    int64_t ps[4], is[2];
    float *pixels = load(dir, "pixel_values.npy", ps);
    int32_t *ids = load_ids(dir, "input_ids.npy", is), *mask = load_ids(dir, "attention_mask.npy", is);
    if (!t_check(pixels && ids && mask, "%s: inputs", dir)) goto done;
    int nI = (int)ps[0], nT = (int)is[0], T = (int)is[1], D = m.projection_dim;
    float *img[3], *txt[3];
    static const char *const names[3] = {"embeds", "projected", "pooler"};
    for (int w = 0; w < 3; w++) {
        img[w] = malloc(sizeof(float) * (size_t)nI * mrec_clip_dim(&m, MREC_CLIP_VISION, w));
        txt[w] = malloc(sizeof(float) * (size_t)nT * mrec_clip_dim(&m, MREC_CLIP_TEXT, w));
        char file[64], what[128];
        snprintf(file, sizeof file, "image_%s.npy", names[w]);
        snprintf(what, sizeof what, "image %s (%d images)", names[w], nI);
        if (t_status(mrec_clip_image_forward(ctx, &m, pixels, nI, w, img[w]), MREC_OK, "%s: image forward", dir))
            compare(dir, file, img[w], (int64_t)nI * mrec_clip_dim(&m, MREC_CLIP_VISION, w), what);
        snprintf(file, sizeof file, "text_%s.npy", names[w]);
        snprintf(what, sizeof what, "text %s (%d texts of %d tokens)", names[w], nT, T);
        if (t_status(mrec_clip_text_forward(ctx, &m, ids, mask, nT, T, w, txt[w]), MREC_OK, "%s: text forward", dir))
            compare(dir, file, txt[w], (int64_t)nT * mrec_clip_dim(&m, MREC_CLIP_TEXT, w), what);
    }
    float *logits = malloc(sizeof(float) * (size_t)nI * nT);
    mrec_clip_logits(&m, img[0], nI, txt[0], nT, logits);
    compare(dir, "logits_per_image.npy", logits, (int64_t)nI * nT, "logits_per_image");
    t_check(ctx->workspace.used == 0, "%s: the workspace is given back", dir);

    /* more texts than a chunk: the rows repeat, each must equal its reference */
    int reps = MREC_CLIP_CHUNK / nT + 2, n = reps * nT;
    int32_t *ids2 = malloc(sizeof *ids2 * (size_t)n * T), *mask2 = malloc(sizeof *mask2 * (size_t)n * T);
    float *out2 = malloc(sizeof(float) * (size_t)n * D);
    for (int r = 0; r < reps; r++) {
        memcpy(ids2 + (size_t)r * nT * T, ids, sizeof *ids * (size_t)nT * T);
        memcpy(mask2 + (size_t)r * nT * T, mask, sizeof *mask * (size_t)nT * T);
    }
    if (t_status(mrec_clip_text_forward(ctx, &m, ids2, mask2, n, T, MREC_CLIP_EMBEDS, out2), MREC_OK, "%d texts", n)) {
        int same = 1;
        for (int r = 0; r < reps; r++) same &= !memcmp(out2 + (size_t)r * nT * D, out2, sizeof(float) * (size_t)nT * D);
        t_check(same, "%d texts in chunks of %d: every copy gives the same rows", n, MREC_CLIP_CHUNK);
        compare(dir, "text_embeds.npy", out2, (int64_t)nT * D, "first chunk of the repeated texts");
    }
    free(ids2), free(mask2), free(out2);
    /* the texts shorter than the longest, alone: their chunk then runs only up to its own last real token (the
     * attention is causal), and each row keeps the bits it had beside the longest (which match the reference) */
    {
        int32_t *ids3 = malloc(sizeof *ids3 * (size_t)nT * T), *mask3 = malloc(sizeof *mask3 * (size_t)nT * T), *row = malloc(sizeof *row * (size_t)nT);
        float *out3 = malloc(sizeof(float) * (size_t)nT * D);
        int k = 0;
        for (int b = 0; b < nT; b++)
            if (!mask[(size_t)b * T + T - 1]) {
                memcpy(ids3 + (size_t)k * T, ids + (size_t)b * T, sizeof *ids * (size_t)T);
                memcpy(mask3 + (size_t)k * T, mask + (size_t)b * T, sizeof *mask * (size_t)T);
                row[k++] = b;
            }
        if (t_check(k > 0, "%s: the fixture has texts shorter than %d tokens", dir, T) &&
            t_status(mrec_clip_text_forward(ctx, &m, ids3, mask3, k, T, MREC_CLIP_EMBEDS, out3), MREC_OK, "%d shorter texts", k)) {
            int same = 1;
            for (int i = 0; i < k; i++) same &= !memcmp(out3 + (size_t)i * D, txt[0] + (size_t)row[i] * D, sizeof(float) * (size_t)D);
            t_check(same, "%s: %d texts shorter than %d tokens, alone: other bits than beside the longest", dir, k, T);
        }
        free(ids3), free(mask3), free(row), free(out3);
    }
    for (int w = 0; w < 3; w++) free(img[w]), free(txt[w]);
    free(logits);
done:
    free(pixels), free(ids), free(mask);
    mrec_clip_free(&m);
}

/* Both towers with bf16 activations between their steps (what a GPU runs in bf16), here through the ops'
 * references: each image's and text's embedding within cosine 0.999 of transformers' fp32 (the bf16
 * bound on final embeddings), and not the fp32 forward's bits (the route ran). */
static void bf16_towers(mrec_context *ctx, const char *dir) {
    mrec_clip m;
    if (!t_status(mrec_clip_load(&m, dir, MREC_CLIP_BOTH), MREC_OK, "load %s", dir)) return;
    int64_t ps[4], is[2], rs[2];
    float *pixels = load(dir, "pixel_values.npy", ps);
    int32_t *ids = load_ids(dir, "input_ids.npy", is), *mask = load_ids(dir, "attention_mask.npy", is);
    for (int tower = 0; tower < 2 && pixels && ids && mask; tower++) {
        int n = tower ? (int)is[0] : (int)ps[0], D = m.projection_dim;
        float *ref = load(dir, tower ? "text_embeds.npy" : "image_embeds.npy", rs), *got = malloc(sizeof(float) * (size_t)n * D),
              *f32 = malloc(sizeof(float) * (size_t)n * D);
        mrec_clip_tower *tw = tower ? &m.text : &m.vision;
        int ok = 1;
        for (int bf16 = 0; bf16 < 2 && ok; bf16++) {
            tw->bf16_acts = bf16;
            ok = t_status(tower ? mrec_clip_text_forward(ctx, &m, ids, mask, n, (int)is[1], MREC_CLIP_EMBEDS, bf16 ? got : f32)
                                : mrec_clip_image_forward(ctx, &m, pixels, n, MREC_CLIP_EMBEDS, bf16 ? got : f32),
                          MREC_OK, "%s: %s forward%s", dir, tower ? "text" : "image", bf16 ? ", bf16 activations" : "");
        }
        tw->bf16_acts = 0;
        if (ok && t_check(ref && rs[0] == n && rs[1] == D, "%s: %s embeddings reference", dir, tower ? "text" : "image")) {
            double worst = 1;
            for (int i = 0; i < n; i++) {
                double rr = 0, gg = 0, rg = 0;
                for (int d = 0; d < D; d++) {
                    double r = ref[(size_t)i * D + d], g = got[(size_t)i * D + d];
                    rr += r * r, gg += g * g, rg += r * g;
                }
                worst = fmin(worst, rg / sqrt(rr * gg));
            }
            t_check(worst >= 0.999, "%s: %s embeddings with bf16 activations, worst cosine %.6f to transformers' fp32", dir,
                    tower ? "text" : "image", worst);
            t_check(memcmp(got, f32, sizeof(float) * (size_t)n * D) != 0, "%s: %s, bf16 activations: not the fp32 forward's bits", dir,
                    tower ? "text" : "image");
            if (getenv("MREC_TEST_VERBOSE")) printf("  %s: %s embeddings, bf16 activations: worst cosine %.8f\n", dir, tower ? "text" : "image", worst);
        }
        free(ref), free(got), free(f32);
    }
    free(pixels), free(ids), free(mask);
    mrec_clip_free(&m);
}

/* A folder holding `config` as config.json beside the fixture's weights. */
static const char *variant(const char *config) {
    static char dir[256];
    char cwd[512], cmd[2048];
    snprintf(dir, sizeof dir, "%s/%s", tmp, config);
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp " FIX "%s %s/config.json && ln -sf %s/" FIX "model.safetensors %s/model.safetensors",
             dir, config, dir, cwd, dir);
    return system(cmd) == 0 ? dir : NULL;
}

static void pooling_rules(mrec_context *ctx) {
    int64_t s[2];
    int32_t *ids = load_ids(FIX, "noeos_ids.npy", s);
    if (!t_check(ids != NULL, "noeos_ids.npy")) return;
    const char *cases[2][2] = {{FIX, "noeos_projected.npy"}, {NULL, "noeos_projected_legacy.npy"}};
    cases[1][0] = variant("config_legacy.json");
    if (!t_check(cases[1][0] != NULL, "a folder for config_legacy.json")) return free(ids);
    for (int c = 0; c < 2; c++) {
        mrec_clip m;
        if (!t_status(mrec_clip_load(&m, cases[c][0], MREC_CLIP_TEXT), MREC_OK, "load %s", cases[c][0])) continue;
        float out[64];
        if (t_status(mrec_clip_text_forward(ctx, &m, ids, NULL, (int)s[0], (int)s[1], MREC_CLIP_PROJECTED, out), MREC_OK, "no eos"))
            compare(FIX, cases[c][1], out, s[0] * m.projection_dim,
                    c ? "eos_token_id 2: pooled at the largest id" : "eos_token_id 49407: pooled at the first eos (none: position 0)");
        mrec_clip_free(&m);
    }
    free(ids);
}

static void gelu(mrec_context *ctx) {
    const char *dir = variant("config_gelu.json");
    mrec_clip m;
    if (!t_check(dir != NULL, "a folder for config_gelu.json")) return;
    if (!t_status(mrec_clip_load(&m, dir, MREC_CLIP_BOTH), MREC_OK, "load the gelu variant")) return;
    int64_t ps[4], is[2];
    float *pixels = load(FIX, "pixel_values.npy", ps);
    int32_t *ids = load_ids(FIX, "input_ids.npy", is), *mask = load_ids(FIX, "attention_mask.npy", is);
    float *img = malloc(sizeof(float) * (size_t)ps[0] * m.projection_dim), *txt = malloc(sizeof(float) * (size_t)is[0] * m.projection_dim);
    if (t_status(mrec_clip_image_forward(ctx, &m, pixels, (int)ps[0], MREC_CLIP_EMBEDS, img), MREC_OK, "gelu image forward"))
        compare(FIX, "image_embeds_gelu.npy", img, ps[0] * m.projection_dim, "hidden_act gelu: image_embeds");
    if (t_status(mrec_clip_text_forward(ctx, &m, ids, mask, (int)is[0], (int)is[1], MREC_CLIP_EMBEDS, txt), MREC_OK, "gelu text forward"))
        compare(FIX, "text_embeds_gelu.npy", txt, is[0] * m.projection_dim, "hidden_act gelu: text_embeds");
    free(pixels), free(ids), free(mask), free(img), free(txt);
    mrec_clip_free(&m);
}

/* mrec's tokenizer on the same texts gives HF's ids, padded to the longest. */
static void tokenizer_ids(void) {
    if (access(TOKENIZER, R_OK) != 0) {
        t_check(0, "CLIP ids from mrec's tokenizer: %s is missing", TOKENIZER);
        return;
    }
    mrec_tokenizer *tok;
    if (!t_check(mrec_tokenizer_load(&tok, TOKENIZER) == MREC_TOK_OK, "load the CLIP tokenizer")) return;
    int64_t s[2];
    int32_t *want = load_ids(FIX, "input_ids.npy", s), *wmask = load_ids(FIX, "attention_mask.npy", s);
    FILE *f = fopen(FIX "texts.txt", "r");
    char *texts[64], line[8192];
    int n = 0;
    while (f && n < 64 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        texts[n++] = strdup(line);
    }
    if (f) fclose(f);
    int L = (int)s[1];
    int32_t *ids = malloc(sizeof *ids * (size_t)n * L), *mask = malloc(sizeof *mask * (size_t)n * L), lens[64];
    mrec_tok_options o = mrec_tok_defaults();
    if (t_check(n == s[0], "%d texts for %lld rows", n, (long long)s[0]) &&
        t_check(mrec_tokenizer_encode_batch(tok, (const char *const *)texts, NULL, n, &o, L, ids, NULL, mask, lens) == MREC_TOK_OK,
                "encode"))
        t_check(!memcmp(ids, want, sizeof *ids * (size_t)n * L) && !memcmp(mask, wmask, sizeof *mask * (size_t)n * L),
                "ids and masks equal CLIPTokenizerFast's (%d texts, one cut at 77)", n);
    for (int i = 0; i < n; i++) free(texts[i]);
    free(ids), free(mask), free(want), free(wmask);
    mrec_tokenizer_free(tok);
}

static void errors(mrec_context *ctx) {
    mrec_clip m;
    t_status(mrec_clip_load(&m, "tests/fixtures/vision/vit_tiny", MREC_CLIP_BOTH), MREC_ERR_UNSUPPORTED, "a ViT folder is not CLIP");
    t_check(strstr(mrec_error_detail(), "model_type") != NULL, "the message names model_type: %s", mrec_error_detail());
    t_status(mrec_clip_load(&m, FIX "nowhere", MREC_CLIP_BOTH), MREC_ERR_IO, "a missing folder");
    /* weights of another shape: the vision tower of vit_tiny's config is not this file's */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/bad && printf '{\"model_type\": \"clip\", \"projection_dim\": 16}' > %s/bad/config.json && "
             "cp " FIX "model.safetensors %s/bad/", tmp, tmp, tmp);
    if (!t_check(system(cmd) == 0, "a folder with a mismatched config")) return;
    snprintf(cmd, sizeof cmd, "%s/bad", tmp);
    t_status(mrec_clip_load(&m, cmd, MREC_CLIP_VISION), MREC_ERR_SHAPE, "config and weights disagree");
    t_check(strstr(mrec_error_detail(), "vision_model.embeddings.patch_embedding.weight") != NULL, "the message names the tensor: %s",
            mrec_error_detail());
    if (!t_status(mrec_clip_load(&m, FIX, MREC_CLIP_TEXT), MREC_OK, "the text tower alone")) return;
    float x[3 * 32 * 32] = {0}, out[64];
    t_status(mrec_clip_image_forward(ctx, &m, x, 1, MREC_CLIP_EMBEDS, out), MREC_ERR_ARG, "the vision tower was not loaded");
    int32_t ids[78] = {49406, 320, 49407}, bad[3] = {49406, 49408, 49407};
    t_status(mrec_clip_text_forward(ctx, &m, ids, NULL, 1, 78, MREC_CLIP_EMBEDS, out), MREC_ERR_SHAPE, "78 tokens");
    t_status(mrec_clip_text_forward(ctx, &m, bad, NULL, 1, 3, MREC_CLIP_EMBEDS, out), MREC_ERR_ARG, "an id past the vocabulary");
    t_check(ctx->workspace.used == 0, "the workspace is given back after an error");
    mrec_clip_free(&m);
}

int main(void) {
    t_suite("clip");
    T_REQUIRE(mkdtemp(tmp) != NULL);
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    towers(ctx, FIX);
    bf16_towers(ctx, FIX);
    pooling_rules(ctx);
    gelu(ctx);
    tokenizer_ids();
    errors(ctx);
    const char *full = getenv("MREC_FULL_DIR");
    if (full) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/clip_b16", full);
        towers(ctx, dir);
        bf16_towers(ctx, dir);
    } else {
        t_skip("ViT-B/16-sized CLIP: set MREC_FULL_DIR (tools/golden/clip.py --full DIR/clip_b16)");
    }
    mrec_context_destroy(ctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return t_finish();
}
