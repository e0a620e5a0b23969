/* api.c: the public interface (include/mrec.h) over the library's own
 * parts. An encoder handle owns its context (device, thread pool,
 * workspace) and the loaded towers; the embed calls are the extractors'
 * own, so a program linking libmrec gets the same vectors as `mrec
 * extract-*`. A recommender handle shares a saved model (recsys/saved.c)
 * with its clones and owns a one-thread CPU context and a row of scratch. */
#include "../include/mrec.h"

#include "../extractors/mrec_extract.h"
#include "../extractors/mrec_image_encoder.h"
#include "../nn/mrec_io.h"
#include "../recsys/mrec_recsys.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *mrec_version(void) { return MREC_VERSION; }

struct mrec_encoder {
    mrec_context *ctx;
    int has_text, has_image;
    mrec_text_encoder text;
    mrec_image_encoder image;
};

/* What a model path holds: a folder's config.json model_type says CLIP
 * (both towers), ViT (images) or another (a BERT-family text model); a file,
 * or a folder without config.json, is a torchvision ResNet. */
static mrec_status model_towers(const char *model, int *text, int *image) {
    struct stat sb;
    if (stat(model, &sb) != 0) return mrec_fail(MREC_ERR_IO, "%s: no such file or folder", model);
    *text = 0, *image = 1;
    if (!S_ISDIR(sb.st_mode)) return MREC_OK;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", model) >= (int)sizeof path)
        return mrec_fail(MREC_ERR_ARG, "%s: path too long", model);
    cJSON *j;
    mrec_status st = mrec_read_json_object(path, 1, &j);
    if (st || !j) return st;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    if (!strcmp(t, "clip")) *text = 1;
    else if (strcmp(t, "vit")) *text = 1, *image = 0;
    cJSON_Delete(j);
    return MREC_OK;
}

mrec_status mrec_encoder_open(mrec_encoder **out, const char *model, const mrec_encoder_options *options) {
    if (!out) return mrec_fail(MREC_ERR_ARG, "mrec_encoder_open: no handle to fill");
    *out = NULL;
    if (!model) return mrec_fail(MREC_ERR_ARG, "mrec_encoder_open: no model path");
    mrec_encoder_options opt = options ? *options : (mrec_encoder_options){0};
    if (opt.threads < 0) return mrec_fail(MREC_ERR_ARG, "mrec_encoder_open: threads %d (0 means one per core)", opt.threads);
    if (opt.batch_size < 0 || opt.batch_size > 4096)
        return mrec_fail(MREC_ERR_ARG, "mrec_encoder_open: batch_size %d is outside [1, 4096] (0 means 32)", opt.batch_size);
    mrec_context_options co = mrec_context_defaults();
    co.n_threads = opt.threads;
    mrec_status st = mrec_device_request_parse(opt.device ? opt.device : "auto", &co.device);
    if (!st) st = mrec_precision_parse(opt.precision ? opt.precision : "fp32", &co.precision);
    int text, image;
    if (!st) st = model_towers(model, &text, &image);
    if (st) return st;
    mrec_encoder *e = calloc(1, sizeof *e);
    if (!e) return mrec_fail(MREC_ERR_NOMEM, "%s: encoder", model);
    int batch = opt.batch_size ? opt.batch_size : 32;
    st = mrec_context_create(&e->ctx, &co);
    if (!st && text && !(st = mrec_text_encoder_load(&e->text, model))) {
        e->has_text = 1, e->text.batch_size = batch;
        st = mrec_text_encoder_to_device(&e->text, e->ctx);
    }
    if (!st && image && !(st = mrec_image_encoder_load(&e->image, model, NULL, NULL))) {
        e->has_image = 1, e->image.batch_size = batch, e->image.decode_threads = 2;
        st = mrec_image_encoder_to_device(&e->image, e->ctx);
    }
    if (st) {
        mrec_status keep = st;
        char detail[512];
        snprintf(detail, sizeof detail, "%s", mrec_error_detail());
        mrec_encoder_close(e);
        return mrec_fail(keep, "%s", detail);
    }
    *out = e;
    return MREC_OK;
}

void mrec_encoder_close(mrec_encoder *e) {
    if (!e) return;
    if (e->has_text) mrec_text_encoder_free(&e->text);
    if (e->has_image) mrec_image_encoder_free(&e->image);
    if (e->ctx) mrec_context_destroy(e->ctx);
    free(e);
}

int mrec_encoder_text_dim(const mrec_encoder *e) { return e && e->has_text ? mrec_text_encoder_dim(&e->text) : 0; }
int mrec_encoder_image_dim(const mrec_encoder *e) { return e && e->has_image ? mrec_image_encoder_dim(&e->image) : 0; }
const char *mrec_encoder_device(const mrec_encoder *e) { return e ? mrec_device_name(e->ctx->device) : "none"; }

/* The checks every embed call makes; rows * dim floats fit in a size_t. */
static mrec_status embed_args(const mrec_encoder *e, const void *in, int n, const float *out, const char *what, int has) {
    if (!e) return mrec_fail(MREC_ERR_ARG, "embed %s: no encoder", what);
    if (!has) return mrec_fail(MREC_ERR_UNSUPPORTED, "embed %s: this model does not take %s", what, what);
    if (n < 0) return mrec_fail(MREC_ERR_ARG, "embed %s: n = %d", what, n);
    if (n > 0 && (!in || !out)) return mrec_fail(MREC_ERR_ARG, "embed %s: %s", what, in ? "no output buffer" : "no inputs");
    return MREC_OK;
}

mrec_status mrec_encoder_embed_texts(mrec_encoder *e, const char *const *texts, int n, float *out) {
    mrec_status st = embed_args(e, texts, n, out, "texts", e && e->has_text);
    for (int i = 0; !st && i < n; i++)
        if (!texts[i]) st = mrec_fail(MREC_ERR_ARG, "embed texts: text %d is NULL", i);
    if (st || n == 0) return st;
    int d = mrec_text_encoder_dim(&e->text);
    float *rows = malloc(sizeof *rows * (size_t)n * d); /* out changes only on success */
    if (!rows) return mrec_fail(MREC_ERR_NOMEM, "embed texts: %d x %d floats", n, d);
    st = mrec_text_encoder_embed(e->ctx, &e->text, texts, n, rows);
    if (!st) memcpy(out, rows, sizeof *rows * (size_t)n * d);
    free(rows);
    return st;
}

/* Files (paths) or encoded images in memory (data, sizes; names for messages). */
static mrec_status embed_images(mrec_encoder *e, const char *const *paths, const void *const *data, const size_t *sizes, int n,
                                float *out) {
    int d = mrec_image_encoder_dim(&e->image);
    float *rows = malloc(sizeof *rows * (size_t)n * d);
    int *ok = malloc(sizeof *ok * (size_t)n);
    char **errors = calloc((size_t)n, sizeof *errors);
    mrec_status st = rows && ok && errors ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "embed images: %d x %d floats", n, d);
    if (!st) st = data ? mrec_image_encoder_embed_encoded(e->ctx, &e->image, data, sizes, paths, n, rows, ok, errors)
                       : mrec_image_encoder_embed(e->ctx, &e->image, paths, n, rows, ok, errors);
    /* the first image that could not be used fails the call, by its own message */
    for (int i = 0; !st && i < n; i++)
        if (!ok[i]) st = mrec_fail(MREC_ERR_FORMAT, "%s", errors[i] ? errors[i] : paths[i]);
    if (!st) memcpy(out, rows, sizeof *rows * (size_t)n * d);
    for (int i = 0; errors && i < n; i++) free(errors[i]);
    free(rows), free(ok), free(errors);
    return st;
}

mrec_status mrec_encoder_embed_images(mrec_encoder *e, const char *const *paths, int n, float *out) {
    mrec_status st = embed_args(e, paths, n, out, "images", e && e->has_image);
    for (int i = 0; !st && i < n; i++)
        if (!paths[i]) st = mrec_fail(MREC_ERR_ARG, "embed images: path %d is NULL", i);
    return st || n == 0 ? st : embed_images(e, paths, NULL, NULL, n, out);
}

mrec_status mrec_encoder_embed_image_data(mrec_encoder *e, const void *const *data, const size_t *sizes, int n, float *out) {
    mrec_status st = embed_args(e, data, n, out, "images", e && e->has_image);
    if (!st && n > 0 && !sizes) st = mrec_fail(MREC_ERR_ARG, "embed images: no sizes");
    for (int i = 0; !st && i < n; i++)
        if (!data[i] || !sizes[i]) st = mrec_fail(MREC_ERR_ARG, "embed images: image %d is %s", i, data[i] ? "empty" : "NULL");
    if (st || n == 0) return st;
    char **names = calloc((size_t)n, sizeof *names), (*store)[24] = malloc(sizeof *store * (size_t)n);
    if (!names || !store) st = mrec_fail(MREC_ERR_NOMEM, "embed images: %d names", n);
    for (int i = 0; !st && i < n; i++) snprintf(store[i], sizeof store[i], "image %d", i), names[i] = store[i];
    if (!st) st = embed_images(e, (const char *const *)names, data, sizes, n, out);
    free(names), free(store);
    return st;
}

/* ---- recommenders ---- */

typedef struct {
    mrec_saved_model m;
    atomic_int refs;
} shared_model;

struct mrec_recommender {
    shared_model *shared;
    mrec_context *ctx; /* one thread: a request is one user's row */
    float *rows;       /* (MREC_SAVED_ROWS, n_items) scratch */
};

static mrec_status recommender_handle(mrec_recommender **out, shared_model *sm) {
    mrec_recommender *r = calloc(1, sizeof *r);
    if (!r) return mrec_fail(MREC_ERR_NOMEM, "recommender");
    r->shared = sm;
    mrec_context_options co = mrec_context_defaults();
    co.device = MREC_WANT_CPU, co.n_threads = 1;
    mrec_status st = mrec_context_create(&r->ctx, &co);
    if (!st && !(r->rows = malloc(sizeof *r->rows * MREC_SAVED_ROWS * (size_t)sm->m.n_items)))
        st = mrec_fail(MREC_ERR_NOMEM, "recommender: rows of %d scores", sm->m.n_items);
    if (st) {
        mrec_context_destroy(r->ctx), free(r);
        return st;
    }
    atomic_fetch_add(&sm->refs, 1);
    *out = r;
    return MREC_OK;
}

mrec_status mrec_recommender_open(mrec_recommender **out, const char *dir) {
    if (!out) return mrec_fail(MREC_ERR_ARG, "mrec_recommender_open: no handle to fill");
    *out = NULL;
    if (!dir) return mrec_fail(MREC_ERR_ARG, "mrec_recommender_open: no folder");
    shared_model *sm = calloc(1, sizeof *sm);
    if (!sm) return mrec_fail(MREC_ERR_NOMEM, "%s", dir);
    atomic_init(&sm->refs, 0);
    mrec_status st = mrec_saved_read(&sm->m, dir);
    if (!st) st = recommender_handle(out, sm);
    if (st) {
        mrec_saved_free(&sm->m), free(sm);
        return st;
    }
    return MREC_OK;
}

mrec_status mrec_recommender_clone(mrec_recommender **out, const mrec_recommender *r) {
    if (!out || !r) return mrec_fail(MREC_ERR_ARG, "mrec_recommender_clone: %s", out ? "no recommender" : "no handle to fill");
    *out = NULL;
    return recommender_handle(out, r->shared);
}

void mrec_recommender_close(mrec_recommender *r) {
    if (!r) return;
    if (atomic_fetch_sub(&r->shared->refs, 1) == 1) mrec_saved_free(&r->shared->m), free(r->shared);
    mrec_context_destroy(r->ctx);
    free(r->rows), free(r);
}

const char *mrec_recommender_model(const mrec_recommender *r) { return r ? r->shared->m.model : NULL; }
int mrec_recommender_n_users(const mrec_recommender *r) { return r ? r->shared->m.n_users : 0; }
int mrec_recommender_n_items(const mrec_recommender *r) { return r ? r->shared->m.n_items : 0; }
const char *mrec_recommender_user_id(const mrec_recommender *r, int u) {
    return r && u >= 0 && u < r->shared->m.n_users ? r->shared->m.user_ids[u] : NULL;
}
const char *mrec_recommender_item_id(const mrec_recommender *r, int i) {
    return r && i >= 0 && i < r->shared->m.n_items ? r->shared->m.item_ids[i] : NULL;
}

/* The checks of a request, and the index of its user or item. */
static mrec_status lookup(const mrec_recommender *r, const char *id, int is_item, int *index) {
    if (!r) return mrec_fail(MREC_ERR_ARG, "no recommender");
    if (!id) return mrec_fail(MREC_ERR_ARG, "no %s id", is_item ? "item" : "user");
    const mrec_saved_model *m = &r->shared->m;
    if ((*index = mrec_saved_find(is_item ? &m->item_index : &m->user_index, id)) < 0)
        return mrec_fail(MREC_ERR_NOT_FOUND, "%s \"%.200s\" is not in the model", is_item ? "item" : "user", id);
    return MREC_OK;
}

static mrec_status top_args(int k, const int *items, const float *scores, const int *n) {
    if (k < 1) return mrec_fail(MREC_ERR_ARG, "k = %d (at least 1)", k);
    if (!items || !scores || !n) return mrec_fail(MREC_ERR_ARG, "no buffer for the items, the scores or their count");
    return MREC_OK;
}

/* int and int32_t are the same on the platforms mrec builds for; checked here once */
_Static_assert(sizeof(int) == sizeof(int32_t), "item indices are int32_t inside, int outside");

mrec_status mrec_recommender_recommend(mrec_recommender *r, const char *user, int k, int *items, float *scores, int *n) {
    int u;
    mrec_status st = top_args(k, items, scores, n);
    if (!st) st = lookup(r, user, 0, &u);
    if (st) return st;
    const mrec_saved_model *m = &r->shared->m;
    if (k > m->n_items) k = m->n_items;
    return mrec_saved_recommend(m, r->ctx, u, k, (int32_t *)items, scores, n, r->rows);
}

mrec_status mrec_recommender_similar(mrec_recommender *r, const char *item, int k, int *items, float *sims, int *n) {
    int i;
    mrec_status st = top_args(k, items, sims, n);
    if (!st) st = lookup(r, item, 1, &i);
    if (st) return st;
    const mrec_saved_model *m = &r->shared->m;
    if (k > m->n_items) k = m->n_items;
    return mrec_saved_similar(m, r->ctx, i, k, (int32_t *)items, sims, n, r->rows);
}

mrec_status mrec_recommender_score(mrec_recommender *r, const char *user, const char *const *items, int n, float *scores) {
    int u;
    mrec_status st = lookup(r, user, 0, &u);
    if (!st && n < 0) st = mrec_fail(MREC_ERR_ARG, "score: n = %d", n);
    if (!st && n > 0 && (!items || !scores)) st = mrec_fail(MREC_ERR_ARG, "score: %s", items ? "no output buffer" : "no items");
    const mrec_saved_model *m = st ? NULL : &r->shared->m;
    for (int k = 0, i; !st && k < n; k++) st = lookup(r, items[k], 1, &i);
    if (st || n == 0) return st;
    float *row;
    if ((st = mrec_saved_user_scores(m, r->ctx, u, r->rows, &row))) return st;
    for (int k = 0; k < n; k++) scores[k] = row[mrec_saved_find(&m->item_index, items[k])];
    return MREC_OK;
}
