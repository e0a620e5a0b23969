/* image.c: the image feature extractor: decode threads fill a host slot
 * (pinned on a GPU) one batch ahead of the forward pass, and on a GPU the
 * slot goes up on the copy stream while the previous batch computes
 * (mrec_batch_pipe.h). */
#include "mrec_image_encoder.h"

#include "../nn/mrec_io.h"
#include "mrec_batch_pipe.h"

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
    else if (!strcmp(t, "clip") || !strcmp(t, "altclip")) *kind = MREC_IMAGE_CLIP; /* AltCLIP's vision tower is CLIP's */
    else if (!strcmp(t, "align") || !strcmp(t, "align_vision_model")) *kind = MREC_IMAGE_ALIGN;
    else st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: model_type \"%s\" (mrec extracts images with vit, clip, altclip, align or a ResNet)", path, t);
    cJSON_Delete(j);
    return st;
}

/* The layers each kind has, its default first. */
static const mrec_image_layer LAYERS[4][3] = {
    {MREC_LAYER_AVGPOOL, MREC_LAYER_LOGITS, MREC_LAYER_AVGPOOL},
    {MREC_LAYER_CLS, MREC_LAYER_POOLER, MREC_LAYER_CLS},
    {MREC_LAYER_EMBEDS, MREC_LAYER_PROJECTED, MREC_LAYER_POOLER},
    {MREC_LAYER_EMBEDS, MREC_LAYER_POOLER, MREC_LAYER_EMBEDS},
};

mrec_status mrec_image_encoder_load(mrec_image_encoder *e, const char *model, const char *preset, const char *layer) {
    memset(e, 0, sizeof *e);
    e->batch_size = 32, e->decode_threads = 2;
    struct stat sb;
    if (stat(model, &sb) != 0) return mrec_fail(MREC_ERR_IO, "%s: no such file or folder", model);
    mrec_status st = mrec_image_model_kind(model, &e->kind);
    if (st) return st;
    static const char *const names[] = {"ResNet", "ViT", "CLIP", "ALIGN"};
    static const char *const presets[] = {"ducho-resnet", "hf-vit", "hf-clip", "hf-align"};
    st = e->kind == MREC_IMAGE_VIT     ? mrec_vit_load(&e->vit, model)
         : e->kind == MREC_IMAGE_CLIP  ? mrec_clip_load(&e->clip, model, MREC_CLIP_VISION)
         : e->kind == MREC_IMAGE_ALIGN ? mrec_efficientnet_load(&e->align, model)
                                       : mrec_resnet_load(&e->resnet, model);
    if (st) return st;
    st = e->kind == MREC_IMAGE_VIT     ? mrec_packs_create(&e->packs, e->vit.storage, e->vit.floats)
         : e->kind == MREC_IMAGE_CLIP  ? mrec_packs_create(&e->packs, e->clip.vision.storage, e->clip.vision.floats)
         : e->kind == MREC_IMAGE_ALIGN ? mrec_packs_create(&e->packs, e->align.storage, e->align.floats)
                                       : mrec_packs_create(&e->packs, e->resnet.storage, e->resnet.floats);
    if (!st) st = mrec_preprocess_preset(&e->pre, preset ? preset : presets[e->kind], S_ISDIR(sb.st_mode) ? model : NULL);
    if (!st && !e->pre.resize_h && !e->pre.crop_h)
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "preset %s gives images of varying sizes; a batch needs one size", e->pre.name);
    e->layer = LAYERS[e->kind][0];
    if (!st && layer) {
        int found = 0;
        for (int l = 0; l < 3; l++)
            if (!strcmp(layer, mrec_image_layer_name(LAYERS[e->kind][l]))) e->layer = LAYERS[e->kind][l], found = 1;
        if (!found)
            st = mrec_fail(MREC_ERR_ARG, "layer \"%s\": a %s has %s", layer, names[e->kind],
                           e->kind == MREC_IMAGE_RESNET  ? "avgpool and logits"
                           : e->kind == MREC_IMAGE_VIT   ? "cls and pooler"
                           : e->kind == MREC_IMAGE_ALIGN ? "embeds and pooler"
                                                         : "embeds, projected and pooler");
    }
    if (!st && e->layer == MREC_LAYER_LOGITS && !e->resnet.fc_w) st = mrec_fail(MREC_ERR_NOT_FOUND, "%s: no fc layer for logits", model);
    if (!st && e->kind == MREC_IMAGE_VIT && e->layer == MREC_LAYER_POOLER && !e->vit.pooler_w)
        st = mrec_fail(MREC_ERR_NOT_FOUND, "%s: no pooler", model);
    if (st) mrec_image_encoder_free(e);
    return st;
}

mrec_status mrec_image_encoder_to_device(mrec_image_encoder *e, mrec_context *ctx) {
    if (ctx->device != MREC_DEVICE_CPU) mrec_packs_free(e->packs), e->packs = NULL; /* before the host weights go */
    if (e->kind != MREC_IMAGE_RESNET)
        return e->kind == MREC_IMAGE_VIT    ? mrec_vit_to_device(&e->vit, ctx)
               : e->kind == MREC_IMAGE_CLIP ? mrec_clip_to_device(&e->clip, ctx)
                                            : mrec_efficientnet_to_device(&e->align, ctx);
    /* a bf16 CPU context lays the ResNet's weights out again (channels-last): the packs follow the new storage */
    const float *before = e->resnet.storage;
    mrec_status st = mrec_resnet_to_device(&e->resnet, ctx);
    if (!st && ctx->device == MREC_DEVICE_CPU && e->resnet.storage != before) {
        mrec_packs_free(e->packs), e->packs = NULL;
        st = mrec_packs_create(&e->packs, e->resnet.storage, e->resnet.floats);
    }
    return st;
}

void mrec_image_encoder_free(mrec_image_encoder *e) {
    mrec_packs_free(e->packs); /* before the weights it points into */
    if (e->kind == MREC_IMAGE_VIT) mrec_vit_free(&e->vit);
    else if (e->kind == MREC_IMAGE_CLIP) mrec_clip_free(&e->clip);
    else if (e->kind == MREC_IMAGE_ALIGN) mrec_efficientnet_free(&e->align);
    else mrec_resnet_free(&e->resnet);
    memset(e, 0, sizeof *e);
}

static mrec_clip_output clip_output(mrec_image_layer l) {
    return l == MREC_LAYER_EMBEDS ? MREC_CLIP_EMBEDS : l == MREC_LAYER_PROJECTED ? MREC_CLIP_PROJECTED : MREC_CLIP_POOLER;
}

int mrec_image_encoder_dim(const mrec_image_encoder *e) {
    if (e->kind == MREC_IMAGE_CLIP) return mrec_clip_dim(&e->clip, MREC_CLIP_VISION, clip_output(e->layer));
    if (e->kind == MREC_IMAGE_ALIGN) return e->align.features;
    switch (e->layer) {
    case MREC_LAYER_AVGPOOL: return e->resnet.features;
    case MREC_LAYER_LOGITS: return e->resnet.n_classes;
    case MREC_LAYER_CLS: return e->vit.cfg.hidden;
    default: return e->vit.cfg.pooler_size;
    }
}

/* ---- batches decoded one ahead of the forward (mrec_batch_pipe.h) ---- */

/* A slot's batch: images first .. first + count - 1, decoded into the slot by whichever threads claim them. */
typedef struct {
    int first, count, m; /* m: the images that decoded, packed to the front of the slot by finish */
    atomic_int next;
} decode_job;

typedef struct {
    const mrec_image_encoder *enc;
    const char *const *paths;   /* files, or the names of data's images in messages */
    const void *const *data;    /* encoded images in memory (sizes[i] bytes each), or NULL: read paths */
    const size_t *sizes;
    int n, B, h, w;
    int *ok;         /* (n) */
    char **errors;   /* (n) */
    decode_job job[2];
} decode_jobs;

static void decode_begin(void *arg, int batch, int slot) {
    decode_jobs *d = arg;
    decode_job *j = &d->job[slot];
    j->first = batch * d->B, j->count = d->n - j->first < d->B ? d->n - j->first : d->B, j->m = 0;
    atomic_store(&j->next, 0);
}

static mrec_status decode_work(void *arg, int batch, int slot, void *host) {
    (void)batch;
    decode_jobs *d = arg;
    decode_job *j = &d->job[slot];
    float *pixels = host; /* (count, 3, h, w) */
    size_t plane = (size_t)3 * d->h * d->w;
    for (int i; (i = atomic_fetch_add(&j->next, 1)) < j->count;) {
        mrec_rgb_image img;
        int item = j->first + i;
        const char *path = d->paths[item];
        mrec_status st = d->data ? mrec_image_decode(d->data[item], d->sizes[item], path, &img) : mrec_image_load(path, &img);
        if (!st) {
            int oh, ow;
            mrec_preprocess_out_size(&d->enc->pre, img.h, img.w, &oh, &ow);
            st = oh == d->h && ow == d->w ? mrec_preprocess_image(&d->enc->pre, &img, pixels + (size_t)i * plane, NULL)
                                          : mrec_fail(MREC_ERR_SHAPE, "%s: preprocessed to %dx%d, not %dx%d", path, ow, oh, d->w, d->h);
            mrec_image_free(&img);
        }
        d->ok[item] = st == MREC_OK;
        if (st) { /* the item is reported and skipped by the caller, not a failure of the batch */
            size_t len = strlen(mrec_error_detail()) + 64;
            d->errors[item] = malloc(len);
            if (d->errors[item]) snprintf(d->errors[item], len, "%s (%s)", mrec_error_detail(), mrec_strerror(st));
        }
    }
    return MREC_OK;
}

/* The images that decoded, packed to the front in item order: what the forward reads. */
static mrec_status decode_finish(void *arg, int batch, int slot, void *host, size_t *upload) {
    (void)batch;
    decode_jobs *d = arg;
    decode_job *j = &d->job[slot];
    float *pixels = host;
    size_t plane = (size_t)3 * d->h * d->w;
    int m = 0;
    for (int i = 0; i < j->count; i++)
        if (d->ok[j->first + i]) {
            if (m != i) memcpy(pixels + (size_t)m * plane, pixels + (size_t)i * plane, sizeof(float) * plane);
            m++;
        }
    j->m = m;
    *upload = sizeof(float) * plane * (size_t)m;
    return MREC_OK;
}

/* Producer threads: the decode threads asked for, but no more than the encoder's pool has (--threads): the
 * producers run while the pool encodes, and the caller decodes too when it waits. 0 asked: none (sequential). */
static int producer_threads(const mrec_context *ctx, int asked) {
    int pool = ctx->pool ? mrec_pool_threads(ctx->pool) : 1;
    if (asked < 1) return 0;
    return asked < pool ? asked : pool < 1 ? 1 : pool;
}

static mrec_status embed(mrec_context *ctx, const mrec_image_encoder *e, const char *const *paths, const void *const *data,
                         const size_t *sizes, int n, float *out, int *ok, char **errors) {
    int B = e->batch_size < 1 ? 1 : e->batch_size, h = e->pre.crop_h ? e->pre.crop_h : e->pre.resize_h,
        w = e->pre.crop_h ? e->pre.crop_w : e->pre.resize_w, D = mrec_image_encoder_dim(e);
    /* checked here, not at the load: the caller may set the size after it (mrec extract-image --size) */
    int want = e->kind == MREC_IMAGE_VIT ? e->vit.cfg.image_size : e->kind == MREC_IMAGE_CLIP ? e->clip.vision.cfg.image_size : 0;
    if (want && (h != want || w != want))
        return mrec_fail(MREC_ERR_SHAPE, "the model takes %dx%d images, the preprocessing (preset %s) makes %dx%d", want, want, e->pre.name, w, h);
    size_t plane = (size_t)3 * h * w, slot_bytes = sizeof(float) * plane * (size_t)B;
    int on_gpu = ctx->device != MREC_DEVICE_CPU;
    /* the workspace: the batch's features on the device, on a GPU the two upload slots, then the model's activations */
    size_t feat_bytes = sizeof(float) * (size_t)B * D, need = feat_bytes + MREC_ARENA_ALIGN;
    if (on_gpu) need += 2 * (slot_bytes + MREC_ARENA_ALIGN);
    need += e->kind == MREC_IMAGE_VIT    ? mrec_vit_workspace_bytes(&e->vit, B)
            : e->kind == MREC_IMAGE_CLIP  ? mrec_clip_workspace_bytes(&e->clip, MREC_CLIP_VISION, B, 0)
            : e->kind == MREC_IMAGE_ALIGN ? mrec_efficientnet_batch_workspace_bytes(ctx, &e->align, B, h, w)
                                          : mrec_resnet_batch_workspace_bytes(ctx, &e->resnet, B, h, w);
    mrec_status st = ctx->workspace.capacity - ctx->workspace.used >= need ? MREC_OK : mrec_context_reserve(ctx, need);
    if (st) return st;
    size_t mark = ctx->workspace.used;
    float *dfeats = mrec_arena_alloc(&ctx->workspace, feat_bytes);
    void *dev[2] = {NULL, NULL};
    if (on_gpu) dev[0] = mrec_arena_alloc(&ctx->workspace, slot_bytes), dev[1] = mrec_arena_alloc(&ctx->workspace, slot_bytes);
    /* two batches' features back on the host, pinned on a GPU, so the copy back is asynchronous: batch k's are waited
     * for (and written) once batch k + 1 is queued behind it, so the GPU does not idle while the host takes them */
    float *feats = NULL;
    mrec_event *back[2] = {NULL, NULL};
    if (!dfeats || (on_gpu && (!dev[0] || !dev[1]))) st = mrec_fail(MREC_ERR_NOMEM, "image batch of %d", B);
    if (!st) st = mrec_host_alloc(ctx, (void **)&feats, 2 * feat_bytes);
    if (!st) st = mrec_event_create(ctx, &back[0]);
    if (!st) st = mrec_event_create(ctx, &back[1]);
    for (int i = 0; i < n; i++) errors[i] = NULL, ok[i] = 0;
    decode_jobs d = {.enc = e, .paths = paths, .data = data, .sizes = sizes, .n = n, .B = B, .h = h, .w = w, .ok = ok, .errors = errors};
    mrec_batch_jobs jobs = {decode_begin, decode_work, decode_finish, &d};
    mrec_batch_pipe *pipe = NULL;
    int n_batches = (n + B - 1) / B;
    mrec_packs *caller_packs = ctx->packs;
    ctx->packs = e->packs;
    if (!st) st = mrec_batch_pipe_start(&pipe, ctx, &jobs, n_batches, slot_bytes, on_gpu ? dev : NULL, producer_threads(ctx, e->decode_threads));
    double encode = 0, write = 0;
    int slot;
    void *host;
    const void *pixels;
    int prev_first = 0, prev_count = 0, prev_m = 0; /* the batch queued last, whose features are still to be taken */
    for (int k = 0; k <= n_batches && !st; k++) {
        double t0 = mrec_stage_clock();
        int first = 0, count = 0, m = 0;
        mrec_status queued = MREC_OK; /* this batch's failure: said once the batch before it is taken and written */
        if (k < n_batches && !(queued = mrec_batch_pipe_next(pipe, k, &slot, &host, &pixels))) {
            t0 = mrec_stage_clock();
            /* the job's numbers now: once released, the slot takes batch k + 2 */
            first = d.job[slot].first, count = d.job[slot].count, m = d.job[slot].m;
            if (m) {
                if (e->kind == MREC_IMAGE_CLIP)
                    queued = mrec_clip_image_forward(ctx, &e->clip, pixels, m, clip_output(e->layer), dfeats);
                else if (e->kind == MREC_IMAGE_ALIGN)
                    queued = mrec_efficientnet_forward(ctx, &e->align, pixels, m, h, w, e->layer == MREC_LAYER_POOLER ? dfeats : NULL,
                                                       e->layer == MREC_LAYER_EMBEDS ? dfeats : NULL, NULL);
                else if (e->kind == MREC_IMAGE_VIT)
                    queued = mrec_vit_forward(ctx, &e->vit, pixels, m, e->layer == MREC_LAYER_CLS ? dfeats : NULL,
                                              e->layer == MREC_LAYER_POOLER ? dfeats : NULL);
                else
                    queued = mrec_resnet_forward(ctx, &e->resnet, pixels, m, h, w, e->layer == MREC_LAYER_AVGPOOL ? dfeats : NULL,
                                                 e->layer == MREC_LAYER_LOGITS ? dfeats : NULL);
                /* only the features come back, queued behind the forward (the next batch's forward, queued behind this
                 * copy, may then overwrite dfeats) */
                if (!queued)
                    queued = mrec_copy_to_host_async(ctx, feats + (size_t)(k & 1) * B * D, dfeats, sizeof(float) * (size_t)m * D,
                                                     MREC_STREAM_COMPUTE);
                if (!queued) queued = mrec_event_record(ctx, back[k & 1], MREC_STREAM_COMPUTE);
            }
            mrec_status rel = mrec_batch_pipe_release(pipe, k); /* the next batch may go up while this one finishes */
            if (!queued) queued = rel;
        }
        /* the batch before this one: its features, now that this one is queued behind it, then written (also when
         * this one failed: what was done is kept) */
        double t1 = mrec_stage_clock();
        if (k > 0) {
            const float *done = feats + (size_t)((k - 1) & 1) * B * D;
            if (prev_m) st = mrec_event_sync(ctx, back[(k - 1) & 1]);
            for (int i = 0, r = 0; !st && i < prev_count; i++)
                if (ok[prev_first + i]) memcpy(out + (size_t)(prev_first + i) * D, done + (size_t)r++ * D, sizeof(float) * (size_t)D);
            t1 = mrec_stage_clock();
            if (!st && e->batch_done) st = e->batch_done(e->batch_done_ctx, prev_first, prev_count), write += mrec_stage_clock() - t1;
            if (!st && e->progress) e->progress(e->progress_ctx, prev_first + prev_count, n);
        }
        encode += t1 - t0;
        if (!st) st = queued;
        prev_first = first, prev_count = count, prev_m = m;
    }
    if (e->times) mrec_batch_pipe_add_times(pipe, e->times), e->times->encode += encode, e->times->write += write;
    if (st) mrec_events_settle(ctx, back, 2, st); /* a failure may leave a batch's copy into feats queued */
    mrec_batch_pipe_stop(pipe); /* after a failure, waits for the batch the producers were on */
    mrec_event_destroy(ctx, back[0]), mrec_event_destroy(ctx, back[1]);
    mrec_host_free(ctx, feats);
    ctx->packs = caller_packs;
    ctx->workspace.used = mark;
    return st;
}

mrec_status mrec_image_encoder_embed(mrec_context *ctx, const mrec_image_encoder *e, const char *const *paths, int n, float *out,
                                     int *ok, char **errors) {
    return embed(ctx, e, paths, NULL, NULL, n, out, ok, errors);
}

mrec_status mrec_image_encoder_embed_encoded(mrec_context *ctx, const mrec_image_encoder *e, const void *const *data,
                                             const size_t *sizes, const char *const *names, int n, float *out, int *ok,
                                             char **errors) {
    return embed(ctx, e, names, data, sizes, n, out, ok, errors);
}
