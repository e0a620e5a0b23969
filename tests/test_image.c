/* test_image.c: PIL-exact resizing. tools/golden/images.py ran Pillow's
 * Image.resize on a crop of a photo the repository ships for several sizes,
 * filters and boxes; mrec must give the same bytes: zero difference is the
 * bound, since PIL's fixed-point arithmetic is integer and fully determined.
 * The preprocessing presets run on the shipped photos of
 * tests/data/images; the product and ImageNet photos, which may not be
 * copied here, are checked by digest when ../shared/data is beside the
 * repository (-DSHARED='"/nonexistent/"' runs as a fresh clone would). */
#include "harness.h"

#include "../extractors/mrec_image.h"
#include "../extractors/mrec_preprocess.h"
#include "../nn/mrec_npy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define FIX "tests/fixtures/images/"

static uint8_t *read_u8(const char *path, int64_t *shape) {
    mrec_npy_array a;
    if (mrec_npy_read(path, &a) || a.header.dtype != MREC_NPY_I32 || a.header.ndim != 3) return NULL;
    int64_t n = a.header.shape[0] * a.header.shape[1] * a.header.shape[2];
    uint8_t *out = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) out[i] = (uint8_t)((const int32_t *)a.data)[i];
    memcpy(shape, a.header.shape, 3 * sizeof *shape);
    mrec_npy_free(&a);
    return out;
}

#define VFIX "tests/fixtures/vision/"
#ifndef SHARED
#define SHARED "../shared/data/"
#endif

/* The file of a reference row: shipped rows must be in tests/data; the
 * others are in SHARED or absent (NULL, and the row is skipped). */
static const char *photo(char *buf, size_t n, const char *rel, int shipped) {
    snprintf(buf, n, "%s%s", shipped ? "tests/data/" : SHARED, rel);
    return shipped || access(buf, R_OK) == 0 ? buf : NULL;
}

/* Whole pipeline (decode, preset resize / crop / normalize) on real
 * photos: the torchvision presets must give torchvision's float bytes
 * exactly (crc32 of the float32 output), since torchvision resizes PIL
 * images with PIL. */
static void torchvision_presets(const char *table, int shipped) {
    FILE *f = fopen(table, "r");
    if (!t_check(f != NULL, "%s", table)) return;
    char preset[32], rel[512];
    int oh, ow, absent = 0;
    unsigned want;
    while (fscanf(f, "%31s %511s %d %d %x", preset, rel, &oh, &ow, &want) == 5) {
        char path[600];
        if (!photo(path, sizeof path, rel, shipped)) { /* in ../shared/data only, which is not here */
            absent++;
            continue;
        }
        mrec_preprocess p;
        mrec_rgb_image img;
        if (!t_status(mrec_preprocess_preset(&p, preset, NULL), MREC_OK, "preset %s", preset) ||
            !t_status(mrec_image_load(path, &img), MREC_OK, "decode %s", rel))
            continue;
        int h, w;
        mrec_preprocess_out_size(&p, img.h, img.w, &h, &w);
        float *x = malloc(sizeof(float) * 3 * (size_t)h * w);
        mrec_status st = mrec_preprocess_image(&p, &img, x, NULL);
        unsigned got = st ? 0 : (unsigned)crc32(crc32(0, NULL, 0), (const Bytef *)x, (uInt)(sizeof(float) * 3 * h * w));
        t_check(!st && h == oh && w == ow && got == want, "%s on %s: %dx%d crc %08x, torchvision %dx%d crc %08x", preset, rel, w, h, got,
                ow, oh, want);
        free(x);
        mrec_image_free(&img);
    }
    fclose(f);
    if (absent) t_skip("torchvision presets: %d cases of %s use photos in ../shared/data only, which is not here", absent, table);
}

/* Hugging Face's default processors, configured from their saved
 * preprocessor_config.json (32-pixel sizes). Their uint8 resize differs
 * from PIL's on a few pixels by one level, which after normalization is
 * 1 / (255 std); the bound: at most 1.5 % of values off (0.8-0.9 % at these
 * 32-pixel sizes, where HF also always resizes horizontally first), none by more than
 * one level, the rest equal to 1e-6 (float32 rounding of the fused
 * normalization). */
static void hf_presets(const char *dir, const char *preset) {
    FILE *f = fopen(VFIX "preprocess_images.txt", "r");
    float *want;
    int nd;
    int64_t sh[8];
    char cfg[256];
    snprintf(cfg, sizeof cfg, VFIX "%s/pixel_values.npy", dir);
    if (!t_check(f && !mrec_npy_read_f32(cfg, &want, &nd, sh), "%s fixtures", dir)) {
        if (f) fclose(f);
        return;
    }
    snprintf(cfg, sizeof cfg, VFIX "%s", dir);
    mrec_preprocess p;
    t_status(mrec_preprocess_preset(&p, preset, cfg), MREC_OK, "%s from %s", preset, cfg);
    char rel[512];
    int64_t n_img = 0, per = sh[1] * sh[2] * sh[3], off = 0, total = 0;
    double worst = 0;
    while (n_img < sh[0] && fscanf(f, "%511s", rel) == 1) {
        char path[600];
        mrec_rgb_image img;
        photo(path, sizeof path, rel, 1); /* every photo of this list is shipped */
        if (!t_status(mrec_image_load(path, &img), MREC_OK, "decode %s", rel)) {
            n_img++;
            continue;
        }
        int h, w;
        mrec_preprocess_out_size(&p, img.h, img.w, &h, &w);
        float *x = malloc(sizeof(float) * (size_t)per);
        if (t_check(h == sh[2] && w == sh[3] && !mrec_preprocess_image(&p, &img, x, NULL), "%s on %s: %dx%d", preset, rel, w, h)) {
            const float *r = want + n_img * per;
            for (int64_t i = 0; i < per; i++) {
                double d = fabs((double)x[i] - r[i]), level = 1.0 / (255.0 * p.std[i / (per / 3)]);
                worst = fmax(worst, d / level);
                off += d > 1e-6;
                total++;
            }
        }
        free(x);
        mrec_image_free(&img);
        n_img++;
    }
    int listed_all = fscanf(f, "%511s", rel) == EOF;
    fclose(f);
    free(want);
    /* the reference is HF's PIL backend (what transformers 4, and so Ducho, ran): equal up to float rounding */
    t_check(n_img == sh[0] && listed_all && total == n_img * per && off == 0 && worst <= 1e-3,
            "%s: %lld of %lld values differ from Hugging Face's processor, worst by %.3f levels", preset, (long long)off, (long long)total, worst);
    if (getenv("MREC_TEST_VERBOSE"))
        printf("  %s: %lld of %lld values differ from HF, worst %.3f levels\n", preset, (long long)off, (long long)total, worst);
}

/* The same processor on the product and ImageNet photos, whose pixels may
 * not be copied here: shared_levels.tsv holds, per photo, the crc32 of
 * Hugging Face's output turned back into its 8-bit levels,
 * round((x * std + mean) * 255) as uint8 (3, h, w). One level is 1 / (255
 * std) after normalization, so float rounding (1e-6) cannot move a level:
 * equal digests mean the same resize and crop to the byte. */
static void hf_presets_shared(const char *dir, const char *preset) {
    char path[600], rel[512];
    snprintf(path, sizeof path, VFIX "%s/shared_levels.tsv", dir);
    FILE *f = fopen(path, "r");
    if (!t_check(f != NULL, "%s", path)) return;
    snprintf(path, sizeof path, VFIX "%s", dir);
    mrec_preprocess p;
    if (!t_status(mrec_preprocess_preset(&p, preset, path), MREC_OK, "%s from %s", preset, path)) return (void)fclose(f);
    int oh, ow, absent = 0, rows = 0;
    unsigned want;
    while (fscanf(f, "%511s %d %d %x", rel, &oh, &ow, &want) == 4) {
        rows++;
        if (!photo(path, sizeof path, rel, 0)) {
            absent++;
            continue;
        }
        mrec_rgb_image img;
        if (!t_status(mrec_image_load(path, &img), MREC_OK, "decode %s", rel)) continue;
        int h, w;
        mrec_preprocess_out_size(&p, img.h, img.w, &h, &w);
        float *x = malloc(sizeof(float) * 3 * (size_t)h * w);
        uint8_t *levels = malloc(3 * (size_t)h * w);
        mrec_status st = mrec_preprocess_image(&p, &img, x, NULL);
        for (int64_t i = 0; !st && i < 3 * (int64_t)h * w; i++) {
            int c = (int)(i / ((int64_t)h * w));
            double v = nearbyint(((double)x[i] * p.std[c] + p.mean[c]) * 255.0);
            levels[i] = (uint8_t)fmin(255, fmax(0, v));
        }
        unsigned got = st ? 0 : (unsigned)crc32(crc32(0, NULL, 0), levels, (uInt)(3 * h * w));
        t_check(!st && h == oh && w == ow && got == want, "%s on %s: %dx%d, levels crc %08x, Hugging Face %dx%d crc %08x", preset, rel, w, h,
                got, ow, oh, want);
        free(x), free(levels);
        mrec_image_free(&img);
    }
    fclose(f);
    t_check(rows > 0, "%s: %s lists the photos", preset, dir);
    if (absent) t_skip("%s: %d product and ImageNet photos are in ../shared/data only, which is not here", preset, absent);
}

/* A Hugging Face processor's preprocessor_config.json is read as hostile
 * input: a value of the wrong type or out of range is an error naming the
 * file and the key, never read as something else (2.5 as 2, "yes" as false,
 * 1e300 as inf). */
static void bad_preprocessor_configs(void) {
    static const struct { const char *json, *key; mrec_status want; } cases[] = {
        {"{\"resample\": 2.5}", "resample", MREC_ERR_UNSUPPORTED},
        {"{\"resample\": \"bicubic\"}", "resample", MREC_ERR_FORMAT},
        {"{\"resample\": 0}", "resample", MREC_ERR_UNSUPPORTED},
        {"{\"rescale_factor\": 1e300}", "rescale_factor", MREC_ERR_FORMAT},
        {"{\"rescale_factor\": -0.5}", "rescale_factor", MREC_ERR_FORMAT},
        {"{\"rescale_factor\": \"1/255\"}", "rescale_factor", MREC_ERR_FORMAT},
        {"{\"image_std\": [1e300, 1, 1]}", "image_std", MREC_ERR_FORMAT},
        {"{\"image_std\": [0, 1, 1]}", "image_std", MREC_ERR_FORMAT},
        {"{\"image_mean\": [0.5, 0.5]}", "image_mean", MREC_ERR_FORMAT},
        {"{\"image_mean\": [0.5, \"a\", 0.5]}", "image_mean", MREC_ERR_FORMAT},
        {"{\"do_resize\": \"yes\"}", "do_resize", MREC_ERR_FORMAT},
        {"{\"do_normalize\": 1}", "do_normalize", MREC_ERR_FORMAT},
        {"{\"do_rescale\": []}", "do_rescale", MREC_ERR_FORMAT},
        {"{\"size\": 2.5}", "size", MREC_ERR_FORMAT},
        {"{\"size\": {\"height\": 0, \"width\": 32}}", "height", MREC_ERR_FORMAT},
        {"{\"crop_size\": 1e9}", "crop_size", MREC_ERR_FORMAT},
        {"{\"size\": {\"longest_edge\": 32}}", "longest_edge", MREC_ERR_UNSUPPORTED},
        {"[1, 2, 3]", "preprocessor_config.json", MREC_ERR_FORMAT},
    };
    char dir[] = "/tmp/mrec_test_pre_XXXXXX", path[256];
    if (!t_check(mkdtemp(dir) != NULL, "a scratch folder")) return;
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(path, "w");
        if (!f) continue;
        fputs(cases[i].json, f);
        fclose(f);
        mrec_preprocess p;
        mrec_status st = mrec_preprocess_preset(&p, "hf-clip", dir);
        t_check(st == cases[i].want && strstr(mrec_error_detail(), path) && strstr(mrec_error_detail(), cases[i].key),
                "preprocessor_config %s: %s, want %s naming the file and '%s'", cases[i].json, st ? mrec_error_detail() : "accepted",
                mrec_strerror(cases[i].want), cases[i].key);
    }
    FILE *f = fopen(path, "w");
    if (f) fputs("{\"resample\": 3, \"do_resize\": true, \"rescale_factor\": 0.00392156862745098, \"image_std\": 0.5}", f), fclose(f);
    mrec_preprocess p;
    t_status(mrec_preprocess_preset(&p, "hf-clip", dir), MREC_OK, "a well-formed preprocessor_config.json (one std for all channels)");
    remove(path);
    rmdir(dir);
}

int main(void) {
    t_suite("image");
    bad_preprocessor_configs();
    int64_t ish[3];
    uint8_t *in = read_u8(FIX "input.npy", ish);
    T_REQUIRE(in != NULL);
    FILE *f = fopen(FIX "cases.txt", "r");
    T_REQUIRE(f != NULL);
    char name[64], filter[16], box[128];
    int w, h;
    while (fscanf(f, "%63s %d %d %15s %127s", name, &w, &h, filter, box) == 5) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s.npy", name);
        int64_t wsh[3];
        uint8_t *want = read_u8(path, wsh);
        double b[4];
        int has_box = strcmp(box, "-") != 0 && sscanf(box, "%lf,%lf,%lf,%lf", &b[0], &b[1], &b[2], &b[3]) == 4;
        uint8_t *got = malloc((size_t)h * w * 3);
        mrec_status st = mrec_resize_u8(got, in, (int)ish[0], (int)ish[1], 3, h, w,
                                        strcmp(filter, "bicubic") ? MREC_RESAMPLE_BILINEAR : MREC_RESAMPLE_BICUBIC, has_box ? b : NULL);
        int diff = 0, worst = 0;
        for (int64_t i = 0; want && st == MREC_OK && i < (int64_t)h * w * 3; i++) {
            int d = abs((int)got[i] - want[i]);
            diff += d != 0;
            worst = d > worst ? d : worst;
        }
        t_check(want && st == MREC_OK && wsh[0] == h && wsh[1] == w && diff == 0,
                "%s (%dx%d %s%s): %d of %d bytes differ from PIL (max %d)", name, w, h, filter, has_box ? ", box" : "", diff,
                h * w * 3, worst);
        free(want), free(got);
    }
    fclose(f);
    /* torchvision: Resize(64) (shorter side, bilinear) + CenterCrop(56) + ToTensor + Normalize */
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
    int oh, ow;
    mrec_shorter_side_size((int)ish[0], (int)ish[1], 64, &oh, &ow);
    uint8_t *r = malloc((size_t)oh * ow * 3), *c = malloc(56 * 56 * 3);
    mrec_resize_u8(r, in, (int)ish[0], (int)ish[1], 3, oh, ow, MREC_RESAMPLE_BILINEAR, NULL);
    int top = mrec_center_crop_offset(oh, 56), left = mrec_center_crop_offset(ow, 56);
    for (int y = 0; y < 56; y++) memcpy(c + (size_t)y * 56 * 3, r + ((size_t)(y + top) * ow + left) * 3, 56 * 3);
    float got[3 * 56 * 56], *want;
    int nd;
    int64_t sh[8];
    mrec_to_float_chw(got, c, 56, 56, 3, mean, stdv);
    if (t_check(!mrec_npy_read_f32(FIX "torchvision_64_56.npy", &want, &nd, sh) && sh[1] == 56, "torchvision reference")) {
        /* float32 divide and normalize on both sides: identical up to one rounding */
        t_allclose("torchvision Resize(64) + CenterCrop(56) + Normalize", want, got, 3 * 56 * 56, 1e-6, 0);
        free(want);
    }
    /* Ducho: straight to 48x48 bicubic, then ToTensor + Normalize */
    uint8_t d[48 * 48 * 3];
    float dg[3 * 48 * 48];
    mrec_resize_u8(d, in, (int)ish[0], (int)ish[1], 3, 48, 48, MREC_RESAMPLE_BICUBIC, NULL);
    mrec_to_float_chw(dg, d, 48, 48, 3, mean, stdv);
    if (t_check(!mrec_npy_read_f32(FIX "ducho_48.npy", &want, &nd, sh) && sh[1] == 48, "Ducho reference")) {
        t_allclose("Ducho Resize((48, 48), bicubic) + Normalize", want, dg, 3 * 48 * 48, 1e-6, 0);
        free(want);
    }
    /* One channel, and four: each channel is summed alone, so each plane of the RGB resize above (the Ducho
     * fixture's bytes) comes back from a one-channel image of that plane, and RGB + a constant alpha gives the
     * same RGB bytes; both passes run (48 x 48 from the fixture's size) */
    int64_t px = ish[0] * ish[1];
    uint8_t *plane = malloc((size_t)px * 4), one[48 * 48], four[48 * 48 * 4];
    int same1 = 1, same4 = 1;
    for (int ch = 0; ch < 3; ch++) {
        for (int64_t i = 0; i < px; i++) plane[i] = in[i * 3 + ch];
        t_status(mrec_resize_u8(one, plane, (int)ish[0], (int)ish[1], 1, 48, 48, MREC_RESAMPLE_BICUBIC, NULL), MREC_OK, "one channel");
        for (int i = 0; i < 48 * 48; i++) same1 &= one[i] == d[i * 3 + ch];
    }
    for (int64_t i = 0; i < px; i++) memcpy(plane + i * 4, in + i * 3, 3), plane[i * 4 + 3] = 200;
    t_status(mrec_resize_u8(four, plane, (int)ish[0], (int)ish[1], 4, 48, 48, MREC_RESAMPLE_BICUBIC, NULL), MREC_OK, "four channels");
    for (int i = 0; i < 48 * 48; i++) same4 &= !memcmp(four + i * 4, d + i * 3, 3) && four[i * 4 + 3] == 200;
    t_check(same1, "a one-channel resize gives each RGB plane's bytes");
    t_check(same4, "a four-channel resize gives the RGB bytes and keeps a constant alpha");
    free(plane);
    free(r), free(c);
    t_check(mrec_center_crop_offset(85, 56) == 14 && mrec_center_crop_offset(7, 2) == 2 && mrec_center_crop_offset(9, 2) == 4,
            "center crop offsets round half to even, as Python's round");
    uint8_t out[12];
    double bad_box[4] = {0, 0, 500, 10};
    t_status(mrec_resize_u8(out, in, (int)ish[0], (int)ish[1], 3, 2, 2, MREC_RESAMPLE_BICUBIC, bad_box), MREC_ERR_ARG, "box outside the image");
    t_status(mrec_resize_u8(out, in, (int)ish[0], (int)ish[1], 3, 0, 2, MREC_RESAMPLE_BICUBIC, NULL), MREC_ERR_ARG, "zero height");
    free(in);
    mrec_preprocess p;
    t_status(mrec_preprocess_preset(&p, "imagenet", NULL), MREC_ERR_ARG, "an unknown preset");
    t_check(strstr(mrec_error_detail(), "hf-clip") != NULL, "the message lists the presets: %s", mrec_error_detail());
    torchvision_presets(VFIX "preprocess.tsv", 1);
    torchvision_presets(VFIX "preprocess_shared.tsv", 0);
    hf_presets("hf_vit_32", "hf-vit");
    hf_presets("hf_clip_32", "hf-clip");
    hf_presets_shared("hf_vit_32", "hf-vit");
    hf_presets_shared("hf_clip_32", "hf-clip");
    return t_finish();
}
