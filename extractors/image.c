/* image.c: the image feature extractor: decode threads one batch ahead of
 * the forward pass. */
#include "mrec_image_encoder.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *mrec_image_layer_name(mrec_image_layer l) {
    static const char *const names[] = {"avgpool", "logits", "cls", "pooler"};
    return names[l];
}

static int is_vit_folder(const char *model) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", model);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, "\"vit\"") != NULL;
}

mrec_status mrec_image_encoder_load(mrec_image_encoder *e, const char *model, const char *preset, const char *layer) {
    memset(e, 0, sizeof *e);
    e->batch_size = 32, e->decode_threads = 2;
    struct stat sb;
    if (stat(model, &sb) != 0) return mrec_fail(MREC_ERR_IO, "%s: no such file or folder", model);
    e->is_vit = S_ISDIR(sb.st_mode) && is_vit_folder(model);
    mrec_status st = e->is_vit ? mrec_vit_load(&e->vit, model) : mrec_resnet_load(&e->resnet, model);
    if (st) return st;
    st = mrec_preprocess_preset(&e->pre, preset ? preset : e->is_vit ? "hf-vit" : "ducho-resnet", S_ISDIR(sb.st_mode) ? model : NULL);
    if (!st && !e->pre.resize_h && !e->pre.crop_h)
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "preset %s gives images of varying sizes; a batch needs one size", e->pre.name);
    int size = e->pre.crop_h ? e->pre.crop_h : e->pre.resize_h, size_w = e->pre.crop_h ? e->pre.crop_w : e->pre.resize_w;
    if (!st && e->is_vit && (size != e->vit.cfg.image_size || size_w != e->vit.cfg.image_size))
        st = mrec_fail(MREC_ERR_SHAPE, "%s: the model takes %dx%d images, preset %s makes %dx%d", model, e->vit.cfg.image_size,
                       e->vit.cfg.image_size, e->pre.name, size_w, size);
    e->layer = e->is_vit ? MREC_LAYER_CLS : MREC_LAYER_AVGPOOL;
    if (!st && layer) {
        int found = 0;
        for (int l = 0; l < 4; l++)
            if (!strcmp(layer, mrec_image_layer_name(l))) e->layer = l, found = 1;
        int fits = e->is_vit ? e->layer >= MREC_LAYER_CLS : e->layer <= MREC_LAYER_LOGITS;
        if (!found || !fits)
            st = mrec_fail(MREC_ERR_ARG, "layer \"%s\": a %s has %s", layer, e->is_vit ? "ViT" : "ResNet",
                           e->is_vit ? "cls and pooler" : "avgpool and logits");
    }
    if (!st && e->layer == MREC_LAYER_LOGITS && !e->resnet.fc_w) st = mrec_fail(MREC_ERR_NOT_FOUND, "%s: no fc layer for logits", model);
    if (!st && e->layer == MREC_LAYER_POOLER && !e->vit.pooler_w) st = mrec_fail(MREC_ERR_NOT_FOUND, "%s: no pooler", model);
    if (st) mrec_image_encoder_free(e);
    return st;
}

void mrec_image_encoder_free(mrec_image_encoder *e) {
    if (e->is_vit) mrec_vit_free(&e->vit);
    else mrec_resnet_free(&e->resnet);
    memset(e, 0, sizeof *e);
}

int mrec_image_encoder_dim(const mrec_image_encoder *e) {
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
    size_t need = e->is_vit ? mrec_vit_workspace_bytes(&e->vit.cfg, B) : mrec_resnet_workspace_bytes(&e->resnet, h, w);
    mrec_status st = ctx->workspace.capacity - ctx->workspace.used >= need ? MREC_OK : mrec_context_reserve(ctx, need);
    if (st) return st;
    decode_job jobs[2];
    float *pix = malloc(sizeof(float) * plane * B * 2), *feats = malloc(sizeof(float) * (size_t)B * D);
    if (!pix || !feats) {
        free(pix), free(feats);
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
            if (e->is_vit)
                st = mrec_vit_forward(ctx, &e->vit, j->pixels, m, e->layer == MREC_LAYER_CLS ? feats : NULL,
                                      e->layer == MREC_LAYER_POOLER ? feats : NULL);
            else
                st = mrec_resnet_forward(ctx, &e->resnet, j->pixels, m, h, w, e->layer == MREC_LAYER_AVGPOOL ? feats : NULL,
                                         e->layer == MREC_LAYER_LOGITS ? feats : NULL);
        }
        for (int i = 0, r = 0; !st && i < j->count; i++)
            if (j->ok[i]) memcpy(out + (size_t)(first + i) * D, feats + (size_t)r++ * D, sizeof(float) * (size_t)D);
        cur ^= 1;
    }
    decode_wait(&jobs[0]), decode_wait(&jobs[1]); /* after a failed forward, one may still run */
    free(pix), free(feats);
    return st;
}
