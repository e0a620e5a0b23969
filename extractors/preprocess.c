/* preprocess.c: presets and the resize -> crop -> normalize chain. */
#include "mrec_preprocess.h"

#include "../nn/mrec_io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f}, IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};
static const float CLIP_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f}, CLIP_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};
static const float HALF[3] = {0.5f, 0.5f, 0.5f};

static mrec_status json_int(const cJSON *obj, const char *key, int *out, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return MREC_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 65536 || v->valuedouble != floor(v->valuedouble))
        return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s\" is not a size", path, key);
    *out = (int)v->valuedouble;
    return MREC_OK;
}

static mrec_status json_triple(const cJSON *j, const char *key, float *out, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return MREC_OK;
    if (cJSON_IsNumber(v)) { /* HF accepts one value for all channels */
        out[0] = out[1] = out[2] = (float)v->valuedouble;
        return MREC_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
        return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s\" is not a list of 3 numbers", path, key);
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(x)) return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s\"[%d] is not a number", path, key, i);
        out[i] = (float)x->valuedouble;
    }
    for (int i = 0; i < 3; i++) /* 1e300 is a JSON number, and inf as a float */
        if (!isfinite(out[i])) return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s\"[%d] is not a finite float", path, key, i);
    return MREC_OK;
}

/* A do_* switch: true or false when present (a string or a number is no flag). */
static mrec_status json_flag(const cJSON *j, const char *key, int def, int *out, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    *out = def;
    if (!v || cJSON_IsNull(v)) return MREC_OK;
    if (!cJSON_IsBool(v)) return mrec_fail(MREC_ERR_FORMAT, "%s: \"%s\" is not true or false", path, key);
    *out = cJSON_IsTrue(v);
    return MREC_OK;
}

/* Overrides p from preprocessor_config.json, as the HF processor reads it. */
static mrec_status read_hf_config(mrec_preprocess *p, const char *path) {
    cJSON *j;
    mrec_status st = mrec_read_json_object(path, 1, &j);
    if (st || !j) return st; /* none: the preset's defaults */
    int do_resize, do_crop, do_rescale;
    st = json_flag(j, "do_resize", 1, &do_resize, path);
    if (!st) st = json_flag(j, "do_center_crop", p->crop_h > 0, &do_crop, path);
    if (!st) st = json_flag(j, "do_rescale", 1, &do_rescale, path);
    if (!st) st = json_flag(j, "do_normalize", 1, &p->do_normalize, path);
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(j, "size");
    if (st) {
    } else if (!do_resize) {
        p->resize_h = p->resize_w = p->shortest_edge = 0;
    } else if (cJSON_IsNumber(size)) { /* old configs: one int, square */
        st = json_int(j, "size", &p->resize_h, path);
        p->resize_w = p->resize_h, p->shortest_edge = 0;
    } else if (cJSON_IsObject(size)) {
        int h = 0, w = 0, s = 0;
        if (!st) st = json_int(size, "height", &h, path);
        if (!st) st = json_int(size, "width", &w, path);
        if (!st) st = json_int(size, "shortest_edge", &s, path);
        if (!st && cJSON_GetObjectItemCaseSensitive(size, "longest_edge"))
            st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: size.longest_edge (mrec implements height/width and shortest_edge)", path);
        if (!st && s) p->shortest_edge = s, p->resize_h = p->resize_w = 0;
        else if (!st && h && w) p->resize_h = h, p->resize_w = w, p->shortest_edge = 0;
        else if (!st) st = mrec_fail(MREC_ERR_FORMAT, "%s: \"size\" has neither height/width nor shortest_edge", path);
    }
    const cJSON *crop = cJSON_GetObjectItemCaseSensitive(j, "crop_size");
    if (!st && !do_crop) {
        p->crop_h = p->crop_w = 0;
    } else if (!st && cJSON_IsNumber(crop)) {
        st = json_int(j, "crop_size", &p->crop_h, path);
        p->crop_w = p->crop_h;
    } else if (!st && cJSON_IsObject(crop)) {
        st = json_int(crop, "height", &p->crop_h, path);
        if (!st) st = json_int(crop, "width", &p->crop_w, path);
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "resample");
    if (!st && rs && !cJSON_IsNull(rs)) { /* PIL's filter numbers: an integer, not 2.5 read as 2 */
        if (cJSON_IsNumber(rs) && rs->valuedouble == 2) p->filter = MREC_RESAMPLE_BILINEAR;
        else if (cJSON_IsNumber(rs) && rs->valuedouble == 3) p->filter = MREC_RESAMPLE_BICUBIC;
        else if (cJSON_IsNumber(rs))
            st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: resample %g (mrec implements 2 = bilinear and 3 = bicubic)", path, rs->valuedouble);
        else st = mrec_fail(MREC_ERR_FORMAT, "%s: \"resample\" is not a number", path);
    }
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(j, "rescale_factor");
    if (!st && !do_rescale) p->rescale = 1.0;
    else if (!st && rf && !cJSON_IsNull(rf)) {
        if (!cJSON_IsNumber(rf) || !isfinite(rf->valuedouble) || !(rf->valuedouble > 0) || !isfinite((float)rf->valuedouble))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: \"rescale_factor\" is not a finite positive number", path);
        else p->rescale = rf->valuedouble;
    }
    int include_top = 0;
    if (!st) st = json_flag(j, "rescale_offset", p->rescale_offset, &p->rescale_offset, path);
    if (!st) st = json_flag(j, "include_top", 0, &include_top, path);
    if (!st && include_top) /* EfficientNet's classifier input: a second division by the std */
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: \"include_top\" is true (mrec implements ALIGN's processor, which has it false)", path);
    if (!st && p->rescale_offset && p->do_normalize)
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: \"rescale_offset\" with \"do_normalize\" (mrec implements the offset without normalization, as ALIGN)", path);
    if (!st) st = json_triple(j, "image_mean", p->mean, path);
    if (!st) st = json_triple(j, "image_std", p->std, path);
    for (int c = 0; c < 3 && !st; c++)
        if (!(p->std[c] > 0)) st = mrec_fail(MREC_ERR_FORMAT, "%s: image_std[%d] is %g", path, c, p->std[c]);
    cJSON_Delete(j);
    return st;
}

mrec_status mrec_preprocess_preset(mrec_preprocess *p, const char *name, const char *model_dir) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->do_normalize = 1, p->rescale = 1.0 / 255.0;
    if (!strcmp(name, "ducho-resnet")) {
        p->filter = MREC_RESAMPLE_BICUBIC, p->resize_h = p->resize_w = 224;
        memcpy(p->mean, IMAGENET_MEAN, sizeof p->mean), memcpy(p->std, IMAGENET_STD, sizeof p->std);
    } else if (!strcmp(name, "torchvision")) {
        p->filter = MREC_RESAMPLE_BILINEAR, p->shortest_edge = 256, p->crop_h = p->crop_w = 224;
        memcpy(p->mean, IMAGENET_MEAN, sizeof p->mean), memcpy(p->std, IMAGENET_STD, sizeof p->std);
    } else if (!strcmp(name, "hf-vit")) {
        p->hf = 1, p->filter = MREC_RESAMPLE_BILINEAR, p->resize_h = p->resize_w = 224;
        memcpy(p->mean, HALF, sizeof p->mean), memcpy(p->std, HALF, sizeof p->std);
    } else if (!strcmp(name, "hf-clip")) {
        p->hf = 1, p->filter = MREC_RESAMPLE_BICUBIC, p->shortest_edge = 224, p->crop_h = p->crop_w = 224;
        memcpy(p->mean, CLIP_MEAN, sizeof p->mean), memcpy(p->std, CLIP_STD, sizeof p->std);
    } else if (!strcmp(name, "hf-align")) {
        /* kakaobrain/align-base: EfficientNetImageProcessor's 346 / 289 sizes, bilinear, 1 / 127.5 with offset */
        p->hf = 1, p->filter = MREC_RESAMPLE_BILINEAR, p->resize_h = p->resize_w = 346, p->crop_h = p->crop_w = 289;
        p->do_normalize = 0, p->rescale = 1.0 / 127.5, p->rescale_offset = 1;
        memcpy(p->mean, HALF, sizeof p->mean), memcpy(p->std, HALF, sizeof p->std);
    } else {
        return mrec_fail(MREC_ERR_ARG, "unknown preprocessing preset \"%s\" (ducho-resnet, torchvision, hf-vit, hf-clip, hf-align)", name);
    }
    if (p->hf && model_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/preprocessor_config.json", model_dir);
        return read_hf_config(p, path);
    }
    return MREC_OK;
}

static void resized_size(const mrec_preprocess *p, int h, int w, int *rh, int *rw) {
    if (p->resize_h) *rh = p->resize_h, *rw = p->resize_w;
    else if (p->shortest_edge) mrec_shorter_side_size(h, w, p->shortest_edge, rh, rw);
    else *rh = h, *rw = w;
}

void mrec_preprocess_out_size(const mrec_preprocess *p, int h, int w, int *oh, int *ow) {
    resized_size(p, h, w, oh, ow);
    if (p->crop_h) *oh = p->crop_h, *ow = p->crop_w;
}

mrec_status mrec_preprocess_image(const mrec_preprocess *p, const mrec_rgb_image *img, float *out, uint8_t *u8_out) {
    int rh, rw, oh, ow;
    resized_size(p, img->h, img->w, &rh, &rw);
    mrec_preprocess_out_size(p, img->h, img->w, &oh, &ow);
    if (p->rescale_offset && p->do_normalize) /* e.g. --mean/--std on hf-align */
        return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: a mean and std after the offset rescale (x / 127.5 - 1) is not implemented", p->name);
    if (p->crop_h && (p->crop_h > rh || p->crop_w > rw))
        return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: a %dx%d crop of a %dx%d image would need padding", p->name, p->crop_w, p->crop_h, rw, rh);
    uint8_t *resized = (rh == img->h && rw == img->w) ? img->rgb : malloc((size_t)rh * rw * 3);
    if (!resized) return mrec_fail(MREC_ERR_NOMEM, "%s: %dx%d image", p->name, rw, rh);
    mrec_status st = resized == img->rgb ? MREC_OK : mrec_resize_u8(resized, img->rgb, img->h, img->w, 3, rh, rw, p->filter, NULL);
    if (!st) {
        /* Each output value depends only on its byte and channel: the 3 x 256 values, each by the formula of the
         * reference (its float divisions and all), then looked up; the same bits for a fraction of the divisions */
        float value[3][256];
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++) {
                if (p->rescale_offset) {
                    /* HF: float32(uint8 * factor in double), then - 1 in float32 */
                    value[c][v] = (float)(v * p->rescale) - 1.0f;
                } else if (!p->do_normalize) {
                    value[c][v] = (float)(v * p->rescale);
                } else if (p->hf) {
                    /* HF folds the rescale into the statistics: float32 mean * (1 / factor) */
                    float f = (float)(1.0 / p->rescale), m = p->mean[c] * f, s = p->std[c] * f;
                    value[c][v] = ((float)v - m) / s;
                } else {
                    value[c][v] = ((float)v / 255.0f - p->mean[c]) / p->std[c];
                }
            }
        /* torchvision: int(round((full - size) / 2)); Hugging Face: (full - size) // 2 */
        int top = p->hf ? (rh - oh) / 2 : mrec_center_crop_offset(rh, oh), left = p->hf ? (rw - ow) / 2 : mrec_center_crop_offset(rw, ow);
        size_t plane = (size_t)oh * ow;
        for (int y = 0; y < oh; y++) {
            const uint8_t *row = resized + ((size_t)(y + top) * rw + left) * 3;
            if (u8_out) memcpy(u8_out + (size_t)y * ow * 3, row, (size_t)ow * 3);
            for (int c = 0; c < 3; c++) {
                float *dst = out + c * plane + (size_t)y * ow;
                for (int x = 0; x < ow; x++) dst[x] = value[c][row[3 * x + c]];
            }
        }
    }
    if (resized != img->rgb) free(resized);
    return st;
}
