/* image.c: the image feature extractor: decode threads one batch ahead of
 * the forward pass. */
#include "mrec_image_encoder.h"

#include "../nn/mrec_io.h"

#include <cjson/cJSON.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *mrec_image_layer_name(mrec_image_layer l) {
    static const char *const names[] = {"avgpool", "logits", "cls", "pooler", "embeds", "projected"};
    return names[l];
}

mrec_status mrec_image_model_kind(const char *model, mrec_image_model *kind) {
    *kind = MREC_IMAGE_RESNET;
    struct stat sb;
    if (stat(model, &sb) != 0) return mrec_fail(MREC_ERR_IO, "%s: no such file or folder", model);
    if (!S_ISDIR(sb.st_mode)) return MREC_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model);
    cJSON *j;
    mrec_status st = mrec_read_json_object(path, 1, &j);
    if (st || !j) return st;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    if (!strcmp(t, "vit")) *kind = MREC_IMAGE_VIT;
    else if (!strcmp(t, "clip")) *kind = MREC_IMAGE_CLIP;
    else st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: model_type \"%s\" (mrec extracts images with vit, clip or a ResNet)", path, t);
    cJSON_Delete(j);
    return st;
}

/* The layers each kind has, its default first. */
static const mrec_image_layer LAYERS[3][3] = {
    {MREC_LAYER_AVGPOOL, MREC_LAYER_LOGITS, MREC_LAYER_AVGPOOL},
    {MREC_LAYER_CLS, MREC_LAYER_POOLER, MREC_LAYER_CLS},
    {MREC_LAYER_EMBEDS, MREC_LAYER_PROJECTED, MREC_LAYER_POOLER},
};

mrec_status mrec_image_encoder_load(mrec_image_encoder *e, const char *model, const char *preset, const char *layer) {
    memset(e, 0, sizeof *e);
    e->batch_size = 32, e->decode_threads = 2;
    struct stat sb;
    if (stat(model, &sb) != 0) return mrec_fail(MREC_ERR_IO, "%s: no such file or folder", model);
    mrec_status st = mrec_image_model_kind(model, &e->kind);
    if (st) return st;
    static const char *const names[] = {"ResNet", "ViT", "CLIP"}, *const presets[] = {"ducho-resnet", "hf-vit", "hf-clip"};
    st = e->kind == MREC_IMAGE_VIT    ? mrec_vit_load(&e->vit, model)
         : e->kind == MREC_IMAGE_CLIP ? mrec_clip_load(&e->clip, model, MREC_CLIP_VISION)
                                      : mrec_resnet_load(&e->resnet, model);
    if (st) return st;
    st = mrec_preprocess_preset(&e->pre, preset ? preset : presets[e->kind], S_ISDIR(sb.st_mode) ? model : NULL);
    if (!st && !e->pre.resize_h && !e->pre.crop_h)
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "preset %s gives images of varying sizes; a batch needs one size", e->pre.name);
    int size = e->pre.crop_h ? e->pre.crop_h : e->pre.resize_h, size_w = e->pre.crop_h ? e->pre.crop_w : e->pre.resize_w;
    int want = e->kind == MREC_IMAGE_VIT ? e->vit.cfg.image_size : e->kind == MREC_IMAGE_CLIP ? e->clip.vision.cfg.image_size : 0;
    if (!st && want && (size != want || size_w != want))
        st = mrec_fail(MREC_ERR_SHAPE, "%s: the model takes %dx%d images, preset %s makes %dx%d", model, want, want, e->pre.name, size_w,
                       size);
    e->layer = LAYERS[e->kind][0];
    if (!st && layer) {
        int found = 0;
        for (int l = 0; l < 3; l++)
            if (!strcmp(layer, mrec_image_layer_name(LAYERS[e->kind][l]))) e->layer = LAYERS[e->kind][l], found = 1;
        if (!found)
            st = mrec_fail(MREC_ERR_ARG, "layer \"%s\": a %s has %s", layer, names[e->kind],
                           e->kind == MREC_IMAGE_RESNET ? "avgpool and logits"
                           : e->kind == MREC_IMAGE_VIT  ? "cls and pooler"
                                                        : "embeds, projected and pooler");
    }
    if (!st && e->layer == MREC_LAYER_LOGITS && !e->resnet.fc_w) st = mrec_fail(MREC_ERR_NOT_FOUND, "%s: no fc layer for logits", model);
    if (!st && e->kind == MREC_IMAGE_VIT && e->layer == MREC_LAYER_POOLER && !e->vit.pooler_w)
        st = mrec_fail(MREC_ERR_NOT_FOUND, "%s: no pooler", model);
    if (st) mrec_image_encoder_free(e);
    return st;
}

mrec_status mrec_image_encoder_to_device(mrec_image_encoder *e, mrec_context *ctx) {
    return e->kind == MREC_IMAGE_VIT    ? mrec_vit_to_device(&e->vit, ctx)
           : e->kind == MREC_IMAGE_CLIP ? mrec_clip_to_device(&e->clip, ctx)
                                        : mrec_resnet_to_device(&e->resnet, ctx);
}

void mrec_image_encoder_free(mrec_image_encoder *e) {
    if (e->kind == MREC_IMAGE_VIT) mrec_vit_free(&e->vit);
    else if (e->kind == MREC_IMAGE_CLIP) mrec_clip_free(&e->clip);
    else mrec_resnet_free(&e->resnet);
    memset(e, 0, sizeof *e);
}

static mrec_clip_output clip_output(mrec_image_layer l) {
    return l == MREC_LAYER_EMBEDS ? MREC_CLIP_EMBEDS : l == MREC_LAYER_PROJECTED ? MREC_CLIP_PROJECTED : MREC_CLIP_POOLER;
}

int mrec_image_encoder_dim(const mrec_image_encoder *e) {
    if (e->kind == MREC_IMAGE_CLIP) return mrec_clip_dim(&e->clip, MREC_CLIP_VISION, clip_output(e->layer));
    switch (e->layer) {
    case MREC_LAYER_AVGPOOL: return e->resnet.features;
    case MREC_LAYER_LOGITS: return e->resnet.n_classes;
    case MREC_LAYER_CLS: return e->vit.cfg.hidden;
    default: return e->vit.cfg.pooler_size;
    }
}

/* ---- decoding a batch on worker threads ---- */

typedef struct {
    const mrec_image_encoder *enc;
    const char *const *paths;
    int first, count, h, w;
    float *pixels;     /* (count, 3, h, w) */
    int *ok;           /* (count) */
    char **errors;     /* (count) */
    atomic_int next;
    pthread_t threads[16];
    int n_threads, running;
} decode_job;

static void *decode_worker(void *arg) {
    decode_job *j = arg;
    size_t plane = (size_t)3 * j->h * j->w;
    for (int i; (i = atomic_fetch_add(&j->next, 1)) < j->count;) {
        mrec_rgb_image img;
        const char *path = j->paths[j->first + i];
        mrec_status st = mrec_image_load(path, &img);
        if (!st) {
            int oh, ow;
            mrec_preprocess_out_size(&j->enc->pre, img.h, img.w, &oh, &ow);
            st = oh == j->h && ow == j->w ? mrec_preprocess_image(&j->enc->pre, &img, j->pixels + (size_t)i * plane, NULL)
                                          : mrec_fail(MREC_ERR_SHAPE, "%s: preprocessed to %dx%d, not %dx%d", path, ow, oh, j->w, j->h);
            mrec_image_free(&img);
        }
        j->ok[i] = st == MREC_OK;
        if (st) {
            size_t n = strlen(mrec_error_detail()) + 64;
            j->errors[j->first + i] = malloc(n);
            if (j->errors[j->first + i]) snprintf(j->errors[j->first + i], n, "%s (%s)", mrec_error_detail(), mrec_strerror(st));
        }
    }
    return NULL;
}

static void decode_start(decode_job *j) {
    atomic_store(&j->next, 0);
    j->n_threads = 0, j->running = 1;
    int want = j->enc->decode_threads < 1 ? 1 : j->enc->decode_threads > 16 ? 16 : j->enc->decode_threads;
    for (int t = 0; t < want; t++)
        if (pthread_create(&j->threads[j->n_threads], NULL, decode_worker, j) == 0) j->n_threads++;
    if (!j->n_threads) decode_worker(j); /* no threads: decode here */
}

static void decode_wait(decode_job *j) {
    for (int t = 0; j->running && t < j->n_threads; t++) pthread_join(j->threads[t], NULL);
    j->running = 0;
}

mrec_status mrec_image_encoder_embed(mrec_context *ctx, const mrec_image_encoder *e, const char *const *paths, int n, float *out,
                                     int *ok, char **errors) {
    int B = e->batch_size < 1 ? 1 : e->batch_size, h = e->pre.crop_h ? e->pre.crop_h : e->pre.resize_h,
        w = e->pre.crop_h ? e->pre.crop_w : e->pre.resize_w, D = mrec_image_encoder_dim(e);
    size_t plane = (size_t)3 * h * w;
    /* the workspace: the batch's features on the device, then the model's activations */
    size_t feat_bytes = sizeof(float) * (size_t)B * D, need = feat_bytes + MREC_ARENA_ALIGN;
    need += e->kind == MREC_IMAGE_VIT    ? mrec_vit_workspace_bytes(&e->vit.cfg, B)
            : e->kind == MREC_IMAGE_CLIP ? mrec_clip_workspace_bytes(&e->clip, MREC_CLIP_VISION, B, 0)
                                         : mrec_resnet_workspace_bytes(&e->resnet, h, w);
    mrec_status st = ctx->workspace.capacity - ctx->workspace.used >= need ? MREC_OK : mrec_context_reserve(ctx, need);
    if (st) return st;
    size_t mark = ctx->workspace.used;
    float *dfeats = mrec_arena_alloc(&ctx->workspace, feat_bytes);
    decode_job jobs[2];
    float *pix = malloc(sizeof(float) * plane * B * 2), *feats = malloc(feat_bytes);
    if (!pix || !feats || !dfeats) {
        free(pix), free(feats);
        ctx->workspace.used = mark;
        return mrec_fail(MREC_ERR_NOMEM, "image batch of %d", B);
    }
    for (int i = 0; i < n; i++) errors[i] = NULL, ok[i] = 0;
    for (int k = 0; k < 2; k++) jobs[k] = (decode_job){.enc = e, .paths = paths, .h = h, .w = w, .pixels = pix + (size_t)k * plane * B, .errors = errors};
    int cur = 0;
    if (n > 0) {
        jobs[0].first = 0, jobs[0].count = n < B ? n : B, jobs[0].ok = ok;
        decode_start(&jobs[0]);
    }
    for (int first = 0; first < n && !st; first += B) {
        decode_job *j = &jobs[cur], *next = &jobs[cur ^ 1];
        decode_wait(j);
        if (first + B < n) { /* the next batch decodes while this one runs */
            next->first = first + B, next->count = n - first - B < B ? n - first - B : B, next->ok = ok + first + B;
            decode_start(next);
        }
        /* pack the images that decoded, run them, scatter the rows back */
        int m = 0;
        for (int i = 0; i < j->count; i++)
            if (j->ok[i]) {
                if (m != i) memcpy(j->pixels + (size_t)m * plane, j->pixels + (size_t)i * plane, sizeof(float) * plane);
                m++;
            }
        if (m) {
            if (e->kind == MREC_IMAGE_CLIP)
                st = mrec_clip_image_forward(ctx, &e->clip, j->pixels, m, clip_output(e->layer), dfeats);
            else if (e->kind == MREC_IMAGE_VIT)
                st = mrec_vit_forward(ctx, &e->vit, j->pixels, m, e->layer == MREC_LAYER_CLS ? dfeats : NULL,
                                      e->layer == MREC_LAYER_POOLER ? dfeats : NULL);
            else
                st = mrec_resnet_forward(ctx, &e->resnet, j->pixels, m, h, w, e->layer == MREC_LAYER_AVGPOOL ? dfeats : NULL,
                                         e->layer == MREC_LAYER_LOGITS ? dfeats : NULL);
            if (!st) st = mrec_copy_to_host(ctx, feats, dfeats, sizeof(float) * (size_t)m * D);
        }
        for (int i = 0, r = 0; !st && i < j->count; i++)
            if (j->ok[i]) memcpy(out + (size_t)(first + i) * D, feats + (size_t)r++ * D, sizeof(float) * (size_t)D);
        if (!st && e->progress) e->progress(e->progress_ctx, first + j->count, n);
        cur ^= 1;
    }
    decode_wait(&jobs[0]), decode_wait(&jobs[1]); /* after a failed forward, one may still run */
    ctx->workspace.used = mark;
    free(pix), free(feats);
    return st;
}
