/* extract_pipeline.c: the extraction runs (text, image, CLIP) from a spec
 * in memory, what they share (the spec defaults, the result in memory), and
 * the matrix a Ducho leaf gets beside it (--matrix), written from the
 * features a run returned. The commands' option tables and help stay with
 * the commands (cmd_extract.c, cmd_extract_image.c, cmd_clip.c), which fill
 * a spec and call a run; the Ducho runner (cmd_ducho.c) fills the same specs
 * from a config.
 */
#include "mrec_extract_pipeline.h"

#include "../extractors/mrec_extract.h"
#include "../extractors/mrec_image_encoder.h"
#include "../nn/mrec_io.h"
#include "../nn/mrec_npy.h"
#include "mrec_tools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

mrec_extract_common mrec_extract_defaults(void) {
    mrec_context_options o = mrec_context_defaults();
    return (mrec_extract_common){.batch_size = 32, .device = o.device, .precision = o.precision};
}

void mrec_extract_result_free(mrec_extract_result *r) {
    if (!r) return;
    for (int i = 0; r->ids && i < r->n_rows; i++) free(r->ids[i]);
    free(r->ids), free(r->features), free(r->text_features), free(r->fused_features);
    r->ids = NULL, r->features = r->text_features = r->fused_features = NULL, r->n_rows = 0;
}

mrec_status mrec_extract_result_keep(mrec_extract_result *r, const char *const *ids, const float *rows, int n, int dim) {
    r->ids = calloc((size_t)n + 1, sizeof *r->ids);
    r->features = malloc(sizeof(float) * ((size_t)n * (size_t)dim + 1));
    if (!r->ids || !r->features) return mrec_fail(MREC_ERR_NOMEM, "%d x %d features", n, dim);
    r->n_rows = n;
    for (int i = 0; i < n; i++)
        if (!(r->ids[i] = strdup(ids[i]))) return mrec_fail(MREC_ERR_NOMEM, "%d ids", n);
    if (n) memcpy(r->features, rows, sizeof(float) * (size_t)n * (size_t)dim);
    return MREC_OK;
}

mrec_status mrec_extract_row_read(const char *path, float *row, int dim) {
    float *v = NULL;
    int nd = 0;
    int64_t s[8];
    mrec_status st = mrec_npy_read_f32(path, &v, &nd, s);
    if (!st && (nd != 2 || s[0] != 1 || s[1] != dim)) st = mrec_fail(MREC_ERR_SHAPE, "%s: not (1, %d)", path, dim);
    if (!st) memcpy(row, v, sizeof(float) * (size_t)dim);
    free(v);
    return st;
}

/* The order of the leaf's file names, "<id>.npy", which is not always the ids' ("a-b.npy" < "a.npy"). */
static const char *const *order_ids;
static int file_name_char(const char *id, size_t len, size_t i) { return (unsigned char)(i < len ? id[i] : i - len < 4 ? ".npy"[i - len] : 0); }
static int by_file_name(const void *a, const void *b) {
    const char *x = order_ids[*(const int *)a], *y = order_ids[*(const int *)b];
    size_t lx = strlen(x), ly = strlen(y);
    for (size_t i = 0;; i++) {
        int cx = file_name_char(x, lx, i), cy = file_name_char(y, ly, i);
        if (cx != cy || !cx) return cx - cy;
    }
}

/* The two files cannot be renamed into place as one, so the order keeps a reader from pairing a matrix with ids
 * that are not its own: the old matrix goes first, then the new ids appear, then the new matrix. A reader that
 * finds LEAF.npy finds its ids beside it. */
mrec_status mrec_extract_matrix_write(const char *leaf, const char *const *ids, const float *rows, int n, int dim) {
    if (!n) return mrec_fail(MREC_ERR_FORMAT, "%s: no .npy files", leaf);
    int *order = malloc(sizeof *order * (size_t)n);
    float *all = malloc(sizeof(float) * (size_t)n * (size_t)dim);
    mrec_status st = order && all ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "%d x %d", n, dim);
    for (int i = 0; !st && i < n; i++) order[i] = i;
    order_ids = ids;
    if (!st) qsort(order, (size_t)n, sizeof *order, by_file_name);
    for (int i = 0; !st && i < n; i++) memcpy(all + (size_t)i * dim, rows + (size_t)order[i] * dim, sizeof(float) * (size_t)dim);
    char npy[4200], ids_path[4200];
    snprintf(npy, sizeof npy, "%s.npy", leaf);
    snprintf(ids_path, sizeof ids_path, "%s_ids.txt", leaf);
    if (!st && unlink(npy) != 0 && errno != ENOENT) st = mrec_fail(MREC_ERR_IO, "%s: cannot remove the old matrix (%s)", npy, strerror(errno));
    if (!st) {
        mrec_atomic_file af;
        if (!(st = mrec_atomic_begin(&af, ids_path))) {
            for (int i = 0; i < n; i++) fprintf(af.f, "%s\n", ids[order[i]]);
            st = mrec_atomic_commit(&af);
        }
    }
    if (!st) st = mrec_npy_write(npy, MREC_NPY_F32, 2, (int64_t[]){n, dim}, all);
    free(order), free(all);
    return st;
}

static int fail(const char *cmd, const char *what, mrec_status st) {
    fprintf(stderr, "mrec %s: %s: %s: %s\n", cmd, what, mrec_strerror(st), mrec_error_detail());
    return st == MREC_ERR_NOMEM ? 3 : 2;
}

/* ---- text: an item table in, one embedding per item out ---- */

int mrec_extract_text_run(const mrec_text_extract_spec *spec, mrec_extract_result *res) {
    mrec_extract_result scratch_result;
    if (!res) res = &scratch_result;
    memset(res, 0, sizeof *res);
    const char *model = spec->run.model, *input = spec->input, *id_col = spec->id_column, *text_col = spec->text_column, *out = spec->run.out;
    const char *pooling = spec->pooling, *layer = spec->layer;
    int normalize = spec->normalize, batch = spec->run.batch_size > 0 ? spec->run.batch_size : 32, rc = 0;
    int out_flags = spec->run.out_flags, skip_empty = spec->skip_empty, per_item = spec->run.per_item;
    mrec_context_options o = mrec_context_defaults();
    o.device = spec->run.device, o.precision = spec->run.precision, o.n_threads = spec->run.threads;
    /* the device first: a GPU that cannot be had should not cost reading the table and the model */
    mrec_context *ctx = spec->run.ctx, *own_ctx = NULL;
    mrec_status st = MREC_OK;
    if (!ctx && (st = mrec_context_create(&own_ctx, &o))) return fail("extract-text", "the device", st);
    if (!ctx) ctx = own_ctx;
    if (own_ctx && ctx->notice[0] && (spec->run.device_given || o.precision != MREC_PREC_FP32 || mrec_cuda_compiled()))
        fprintf(stderr, "mrec extract-text: %s\n", ctx->notice);
    mrec_table table;
    if ((st = mrec_table_read(&table, input, 0))) {
        mrec_context_destroy(own_ctx);
        return fail("extract-text", "reading the table", st);
    }
    int ci, ct;
    if ((st = mrec_table_column(&table, id_col, input, &ci)) || (st = mrec_table_column(&table, text_col, input, &ct))) {
        mrec_table_free(&table), mrec_context_destroy(own_ctx);
        return fail("extract-text", "columns", st);
    }
    mrec_text_encoder enc;
    if ((st = mrec_text_encoder_load(&enc, model))) {
        mrec_table_free(&table), mrec_context_destroy(own_ctx);
        return fail("extract-text", "loading the model", st);
    }
    const char *bad = enc.is_clip && pooling ? "--pooling is for BERT-family models; CLIP takes --layer"
                      : !enc.is_clip && layer ? "--layer is for CLIP models; BERT-family ones take --pooling"
                                              : NULL;
    if (enc.is_clip && layer) {
        mrec_clip_output o = MREC_CLIP_EMBEDS;
        while (o <= MREC_CLIP_POOLER && strcmp(layer, mrec_clip_output_name(o))) o++;
        if (o > MREC_CLIP_POOLER) bad = "--layer is embeds, projected or pooler";
        else enc.clip_output = o;
    }
    if (bad) {
        fprintf(stderr, "mrec extract-text: %s\n", bad);
        mrec_text_encoder_free(&enc), mrec_table_free(&table), mrec_context_destroy(own_ctx);
        return 2;
    }
    if (pooling) {
        if (!strcmp(pooling, "mean")) enc.pooling = MREC_POOL_MEAN;
        else if (!strcmp(pooling, "cls")) enc.pooling = MREC_POOL_CLS;
        else if (!strcmp(pooling, "pooler") && enc.bert.pooler_w) enc.pooling = MREC_POOL_POOLER;
        else if (!strcmp(pooling, "embeds") && enc.bert.proj_w) enc.pooling = MREC_POOL_EMBEDS;
        else {
            fprintf(stderr, "mrec extract-text: --pooling %s: %s\n", pooling,
                    !strcmp(pooling, "pooler")   ? "this checkpoint has no pooler"
                    : !strcmp(pooling, "embeds") ? "this checkpoint has no text_projection (ALIGN and AltCLIP have one)"
                                                 : "not mean, cls, pooler or embeds");
            mrec_text_encoder_free(&enc), mrec_table_free(&table), mrec_context_destroy(own_ctx);
            return 2;
        }
    }
    if (pooling && enc.pooling != MREC_POOL_EMBEDS && enc.bert.proj_w) enc.normalize = 0; /* ALIGN and AltCLIP normalize their embeds only */
    if (normalize >= 0) enc.normalize = normalize;
    enc.batch_size = batch;
    /* the rows to embed */
    const char **texts = malloc(sizeof *texts * (size_t)(table.n_rows ? table.n_rows : 1));
    int *rows = malloc(sizeof *rows * (size_t)(table.n_rows ? table.n_rows : 1)), n = 0, n_empty = 0;
    for (int r = 0; texts && rows && r < table.n_rows; r++) {
        const char *t = table.cells[(size_t)r * table.n_cols + ct];
        if (!*t) {
            n_empty++;
            if (skip_empty) continue;
        }
        texts[n] = t, rows[n] = r, n++;
    }
    int D = mrec_text_encoder_dim(&enc);
    float *emb = malloc(sizeof *emb * (size_t)(n ? n : 1) * D);
    if (!texts || !rows || !emb) rc = fail("extract-text", "memory", mrec_fail(MREC_ERR_NOMEM, "%d texts", table.n_rows));
    else if ((st = mrec_text_encoder_to_device(&enc, ctx))) rc = fail("extract-text", "moving the model to the device", st);
    else if (ctx->device != MREC_DEVICE_CPU)
        fprintf(stderr, "mrec extract-text: running on the GPU (%s)\n", mrec_precision_name(ctx->precision));
    for (int i = 0; !rc && per_item && i < n; i++) {
        const char *id = table.cells[(size_t)rows[i] * table.n_cols + ci];
        if (!*id || strchr(id, '/') || !strcmp(id, ".") || !strcmp(id, "..")) {
            fprintf(stderr, "mrec extract-text: %s: row %d: id '%s' cannot be a file name\n", input, rows[i] + 2, id);
            rc = 2;
        }
    }
    const char **item_ids = per_item && !rc ? malloc(sizeof *item_ids * (size_t)(n ? n : 1)) : NULL;
    for (int i = 0; item_ids && i < n; i++) item_ids[i] = table.cells[(size_t)rows[i] * table.n_cols + ci];
    if (per_item && !rc && (st = item_ids ? mrec_check_unique_ids(item_ids, n, input) : mrec_fail(MREC_ERR_NOMEM, "%d ids", n)))
        rc = fail("extract-text", "item ids", st);
    free(item_ids);
    /* the output folder first: a bad path, or a folder in use, should not cost the whole embedding run */
    mrec_out_dir od = {.lock_fd = -1};
    if (!rc && (st = mrec_out_begin(&od, out, out_flags))) rc = fail("extract-text", "the output folder", st);
    struct timespec t0, t1;
    mrec_progress prog;
    mrec_progress_start(&prog, "extract-text", n);
    enc.progress = mrec_progress_update, enc.progress_ctx = &prog;
    mrec_stage_times times = {0};
    enc.times = &times;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!rc && !per_item && (st = mrec_text_encoder_embed(ctx, &enc, texts, n, emb))) rc = fail("extract-text", "embedding", st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double t_write = mrec_now(), embed_secs = 0;
    int kept = 0; /* items a resumed run found written */
    char path[4400];
    if (!rc && !per_item) {
        for (int i = 0; i < n && !rc; i++)
            if ((st = mrec_check_feature_row(emb + (size_t)i * D, D, table.cells[(size_t)rows[i] * table.n_cols + ci], model)))
                rc = fail("extract-text", "checking the features", st);
        int64_t shape[2] = {n, D};
        snprintf(path, sizeof path, "%s/text_feat.npy", od.scratch);
        if (!rc && (st = mrec_npy_write(path, MREC_NPY_F32, 2, shape, emb))) rc = fail("extract-text", "writing", st);
        snprintf(path, sizeof path, "%s/text_feat_ids.txt", od.scratch);
        mrec_atomic_file af;
        if (!rc && (st = mrec_atomic_begin(&af, path))) rc = fail("extract-text", "writing", st);
        for (int i = 0; !rc && i < n; i++) fprintf(af.f, "%s\n", table.cells[(size_t)rows[i] * table.n_cols + ci]);
        if (!rc && (st = mrec_atomic_commit(&af))) rc = fail("extract-text", "writing", st);
    } else if (!rc) {
        /* Chunks of whole batches, each embedded then written: a killed run leaves whole files behind, and
         * --resume redoes a chunk unless all its files verify, with the same batches as an uninterrupted run,
         * so its files are the same bytes. */
        int64_t shape[2] = {1, D};
        int chunk = batch * 8;

        mrec_chunk_progress cp = {&prog, 0, n};
        enc.progress = mrec_chunk_progress_update, enc.progress_ctx = &cp;
        for (int first = 0; first < n && !rc; first += chunk) {
            int m = n - first < chunk ? n - first : chunk, done = 0;
            for (int i = first; od.resumed && i < first + m; i++) {
                snprintf(path, sizeof path, "%s/%s.npy", od.scratch, table.cells[(size_t)rows[i] * table.n_cols + ci]);
                done += mrec_feature_file_ok(path, D);
            }
            if (done == m) {
                for (int i = first; spec->run.keep && !rc && i < first + m; i++) {
                    snprintf(path, sizeof path, "%s/%s.npy", od.scratch, table.cells[(size_t)rows[i] * table.n_cols + ci]);
                    if ((st = mrec_extract_row_read(path, emb + (size_t)i * D, D))) rc = fail("extract-text", "reading a kept item", st);
                }
                kept += m;
                continue;
            }
            cp.offset = first;
            double t = mrec_now();
            if ((st = mrec_text_encoder_embed(ctx, &enc, texts + first, m, emb + (size_t)first * D))) rc = fail("extract-text", "embedding", st);
            embed_secs += mrec_now() - t;
            for (int i = first; !rc && i < first + m; i++) {
                const char *id = table.cells[(size_t)rows[i] * table.n_cols + ci];
                snprintf(path, sizeof path, "%s/%s.npy", od.scratch, id);
                if ((st = mrec_check_feature_row(emb + (size_t)i * D, D, id, model))) rc = fail("extract-text", "checking the features", st);
                else if ((st = mrec_npy_write(path, MREC_NPY_F32, 2, shape, emb + (size_t)i * D))) rc = fail("extract-text", "writing", st);
            }
        }
        if (kept) fprintf(stderr, "mrec extract-text: --resume: kept %d of %d items already written\n", kept, n);
        t_write += embed_secs; /* the write time leaves out the encoding */
    }
    if (!rc && (st = mrec_out_commit(&od))) rc = fail("extract-text", "the output folder", st);
    if (rc) mrec_out_abort(&od);
    if (!rc) {
        double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9 + embed_secs;
        char how[64];
        snprintf(how, sizeof how, "%s%s", enc.is_clip ? "CLIP " : "", enc.is_clip ? mrec_clip_output_name(enc.clip_output)
                                                         : enc.pooling == MREC_POOL_MEAN ? "mean pooling"
                                                         : enc.pooling == MREC_POOL_CLS  ? "cls pooling"
                                                         : enc.pooling == MREC_POOL_EMBEDS ? "text_embeds"
                                                                                         : "pooler");
        fprintf(stderr, "mrec extract-text: %d items embedded (%d-d, %s%s) in %.2f s, %.1f items/s\n", n - kept, D, how,
                enc.normalize ? ", normalized" : "", secs, secs > 0 ? (n - kept) / secs : 0);
        fprintf(stderr, "time: tokenize %.2f CPU-s, encode %.2f s, write %.2f s\n", times.prepare, times.encode, mrec_now() - t_write);
        if (n_empty)
            fprintf(stderr, "mrec extract-text: %d items had empty text: %s\n", n_empty,
                    !skip_empty ? "embedded the empty string" : "left out (not in the output)");
    }
    res->n_items = table.n_rows, res->n_embedded = rc ? 0 : n - kept, res->n_kept = kept, res->n_empty = n_empty, res->dim = D;
    if (!rc && spec->run.keep) {
        /* the rows are the table's cells, which leave with the table */
        for (int i = 0; i < n; i++) texts[i] = table.cells[(size_t)rows[i] * table.n_cols + ci];
        if ((st = mrec_extract_result_keep(res, texts, emb, n, D))) rc = fail("extract-text", "memory", st);
    }
    if (res == &scratch_result) mrec_extract_result_free(res);
    free(texts), free(rows), free(emb);
    mrec_text_encoder_free(&enc); /* before the context its weights may be on */
    mrec_context_destroy(own_ctx);
    mrec_table_free(&table);
    return rc;
}

/* ---- images: one feature vector per image ---- */

/* --size, --mean, --std on top of the preset (Ducho's reshape and normalization). */
static mrec_status override_preprocessing(mrec_image_encoder *enc, const mrec_image_extract_spec *spec) {
    mrec_preprocess *p = &enc->pre;
    if (spec->size_h > 0 || spec->size_w > 0) {
        int h = spec->size_h, w = spec->size_w;
        if (h < 8 || h > 4096 || w < 8 || w > 4096) return mrec_fail(MREC_ERR_ARG, "--size wants H,W between 8 and 4096, got '%d,%d'", h, w);
        if (p->crop_h || p->shortest_edge)
            return mrec_fail(MREC_ERR_ARG, "--size: preset %s crops or keeps the aspect ratio; --size is for a straight resize", p->name);
        int want = enc->kind == MREC_IMAGE_VIT ? enc->vit.cfg.image_size : enc->kind == MREC_IMAGE_CLIP ? enc->clip.vision.cfg.image_size : 0;
        if (want && (h != want || w != want))
            return mrec_fail(MREC_ERR_SHAPE, "--size %d,%d: %s takes %dx%d images", h, w, spec->run.model, want, want);
        p->resize_h = h, p->resize_w = w;
    }
    if (spec->normalize_given) {
        for (int c = 0; c < 3; c++)
            if (!(spec->std[c] > 0)) return mrec_fail(MREC_ERR_ARG, "--mean and --std want three numbers each, std > 0");
        memcpy(p->mean, spec->mean, sizeof p->mean), memcpy(p->std, spec->std, sizeof p->std);
        p->do_normalize = 1;
    }
    return MREC_OK;
}

/* What a batch of images becomes as it comes out of the encoder (mrec_image_encoder.batch_done): its rows
 * checked (no NaN or Inf reaches a file) and, per item, written as <id>.npy. */
typedef struct {
    const char *dir, *const *ids, *model;
    const float *feat;    /* (n, D), the run's rows */
    const int *good;      /* (n) */
    int D, per_item, offset; /* offset: the item the encoder call started at */
    const char *stage;    /* what failed, for the message */
    double secs;          /* time spent here */
} image_rows_out;

static mrec_status image_rows_done(void *arg, int first, int count) {
    image_rows_out *w = arg;
    double t = mrec_now();
    int64_t shape[2] = {1, w->D};
    char path[4400];
    mrec_status st = MREC_OK;
    for (int i = w->offset + first; !st && i < w->offset + first + count; i++) {
        if (!w->good[i]) continue;
        if ((st = mrec_check_feature_row(w->feat + (size_t)i * w->D, w->D, w->ids[i], w->model))) w->stage = "checking the features";
        if (!st && w->per_item) {
            snprintf(path, sizeof path, "%s/%s.npy", w->dir, w->ids[i]);
            if ((st = mrec_npy_write(path, MREC_NPY_F32, 2, shape, w->feat + (size_t)i * w->D))) w->stage = "writing";
        }
    }
    w->secs += mrec_now() - t;
    return st;
}

int mrec_extract_image_run(const mrec_image_extract_spec *spec, mrec_extract_result *res) {
    mrec_extract_result scratch_result;
    if (!res) res = &scratch_result;
    memset(res, 0, sizeof *res);
    const char *model = spec->run.model, *images = spec->images, *out = spec->run.out;
    int batch = spec->run.batch_size > 0 ? spec->run.batch_size : 32, per_item = spec->run.per_item, out_flags = spec->run.out_flags;
    int decode_threads = spec->decode_threads > 0 ? spec->decode_threads : 2, strict = spec->strict;
    mrec_context_options o = mrec_context_defaults();
    o.device = spec->run.device, o.precision = spec->run.precision, o.n_threads = spec->run.threads;
    /* the device first: a GPU that cannot be had should not cost listing the images and loading the model */
    mrec_context *ctx = spec->run.ctx, *own_ctx = NULL;
    mrec_status st = MREC_OK;
    if (!ctx && (st = mrec_context_create(&own_ctx, &o))) return fail("extract-image", "the device", st);
    if (!ctx) ctx = own_ctx;
    if (own_ctx && ctx->notice[0] && (spec->run.device_given || o.precision != MREC_PREC_FP32 || mrec_cuda_compiled()))
        fprintf(stderr, "mrec extract-image: %s\n", ctx->notice);
    mrec_image_list items;
    if ((st = mrec_image_list_read(&items, images, spec->id_column, spec->path_column))) {
        mrec_context_destroy(own_ctx);
        return fail("extract-image", "listing the images", st);
    }
    int rc = 0;
    mrec_image_encoder enc;
    int loaded = 0;
    if (!rc && (st = mrec_image_encoder_load(&enc, model, spec->preset, spec->layer))) rc = fail("extract-image", "loading the model", st);
    loaded = !rc;
    if (!rc) enc.batch_size = batch, enc.decode_threads = decode_threads;
    if (!rc && (st = override_preprocessing(&enc, spec))) rc = fail("extract-image", "preprocessing", st);
    int n = items.n, D = loaded ? mrec_image_encoder_dim(&enc) : 0;
    float *feat = malloc(sizeof *feat * (size_t)(n + 1) * (D + 1));
    int *good = malloc(sizeof *good * (size_t)(n + 1));
    char **errors = calloc((size_t)n + 1, sizeof *errors);
    if (!rc && (!feat || !good || !errors)) rc = fail("extract-image", "memory", mrec_fail(MREC_ERR_NOMEM, "%d items", n));
    if (!rc && (st = mrec_image_encoder_to_device(&enc, ctx))) rc = fail("extract-image", "moving the model to the device", st);
    if (!rc && ctx->device != MREC_DEVICE_CPU)
        fprintf(stderr, "mrec extract-image: running on the GPU (%s)\n", mrec_precision_name(ctx->precision));
    for (int i = 0; !rc && per_item && i < n; i++) {
        const char *id = items.ids[i];
        if (!*id || strchr(id, '/') || !strcmp(id, ".") || !strcmp(id, "..")) {
            fprintf(stderr, "mrec extract-image: %s: item %d: id '%s' cannot be a file name\n", images, i + 1, id);
            rc = 2;
        }
    }
    if (per_item && !rc && (st = mrec_check_unique_ids((const char *const *)items.ids, n, images))) rc = fail("extract-image", "item ids", st);
    /* the output folder first: a bad path, or a folder in use, should not cost the whole run */
    mrec_out_dir od = {.lock_fd = -1};
    if (!rc && (st = mrec_out_begin(&od, out, out_flags))) rc = fail("extract-image", "the output folder", st);
    struct timespec t0, t1;
    mrec_progress prog;
    mrec_progress_start(&prog, "extract-image", n);
    if (loaded) enc.progress = mrec_progress_update, enc.progress_ctx = &prog;
    /* per-item: chunks of whole batches; each batch's files are written as it comes out of the encoder (while
     * the next one encodes and decodes), so a killed run leaves whole files behind; --resume keeps a chunk only
     * if all its files verify and encodes the rest in runs of chunks that start on a chunk, so with the batches
     * of an uninterrupted run, and its files are the same bytes */
    int chunk = per_item ? batch * 8 : n, kept = 0;
    mrec_chunk_progress cp = {&prog, 0, n};
    if (loaded && per_item) enc.progress = mrec_chunk_progress_update, enc.progress_ctx = &cp;
    image_rows_out w = {.dir = od.scratch, .ids = (const char *const *)items.ids, .model = model, .feat = feat, .good = good, .D = D,
                        .per_item = per_item};
    if (loaded) enc.batch_done = image_rows_done, enc.batch_done_ctx = &w;
    mrec_stage_times times = {0};
    enc.times = &times;
    double embed_secs = 0;
    char path[4400];
    for (int i = 0; !rc && i < n; i++) good[i] = 0, errors[i] = NULL;
    for (int first = 0, first_done = -1; !rc && first < n;) {
        /* the chunk at `first` is kept when a resumed run finds it whole; else a run of chunks up to the next kept one */
        int last = first;
        while (last < n && last != first_done) { /* a chunk found whole is not read twice */
            int m = n - last < chunk ? n - last : chunk, done = 0;
            for (int i = last; od.resumed && i < last + m; i++) {
                snprintf(path, sizeof path, "%s/%s.npy", od.scratch, items.ids[i]);
                done += mrec_feature_file_ok(path, D);
            }
            if (od.resumed && done == m) {
                first_done = last;
                break;
            }
            last += m;
        }
        if (last == first) { /* first_done == first */
            int m = n - first < chunk ? n - first : chunk;
            for (int i = first; i < first + m; i++) good[i] = 1;
            for (int i = first; spec->run.keep && !rc && i < first + m; i++) {
                snprintf(path, sizeof path, "%s/%s.npy", od.scratch, items.ids[i]);
                if ((st = mrec_extract_row_read(path, feat + (size_t)i * D, D))) rc = fail("extract-image", "reading a kept item", st);
            }
            kept += m;
            first += m;
            continue;
        }
        cp.offset = w.offset = first, w.stage = NULL;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if ((st = mrec_image_encoder_embed(ctx, &enc, (const char *const *)items.paths + first, last - first, feat + (size_t)first * D,
                                           good + first, errors + first)))
            rc = fail("extract-image", w.stage ? w.stage : "extracting", st);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        embed_secs += (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        first = last;
    }
    embed_secs -= w.secs; /* the writing inside it is reported as writing */
    double write_secs = w.secs;
    if (kept) fprintf(stderr, "mrec extract-image: --resume: kept %d of %d items already written\n", kept, n);
    double t_write = mrec_now();
    int n_ok = 0;
    for (int i = 0; !rc && i < n; i++) n_ok += good[i];
    if (!rc && n_ok < n) {
        fprintf(stderr, "mrec extract-image: %d of %d images could not be used%s:\n", n - n_ok, n, strict ? "" : " (skipped)");
        for (int i = 0; i < n; i++)
            if (!good[i]) fprintf(stderr, "  %s: %s\n", items.ids[i], errors[i] ? errors[i] : "error");
        if (strict) {
            fprintf(stderr, "mrec extract-image: --strict: nothing written\n");
            rc = 2;
        } else if (n_ok == 0) { /* skipping every item leaves nothing to use: a failed run, not an empty output */
            fprintf(stderr, "mrec extract-image: no image could be used; nothing written\n");
            rc = 2;
        }
    }
    if (!rc && !per_item) {
        /* pack the good rows */
        for (int i = 0, r = 0; i < n; i++)
            if (good[i]) memmove(feat + (size_t)r++ * D, feat + (size_t)i * D, sizeof(float) * (size_t)D);
        int64_t shape[2] = {n_ok, D};
        snprintf(path, sizeof path, "%s/image_feat.npy", od.scratch);
        if ((st = mrec_npy_write(path, MREC_NPY_F32, 2, shape, feat))) rc = fail("extract-image", "writing", st);
        snprintf(path, sizeof path, "%s/image_feat_ids.txt", od.scratch);
        mrec_atomic_file af;
        if (!rc && (st = mrec_atomic_begin(&af, path))) rc = fail("extract-image", "writing", st);
        for (int i = 0; !rc && i < n; i++)
            if (good[i]) fprintf(af.f, "%s\n", items.ids[i]);
        if (!rc && (st = mrec_atomic_commit(&af))) rc = fail("extract-image", "writing", st);
    }
    if (!rc && (st = mrec_out_commit(&od))) rc = fail("extract-image", "the output folder", st);
    if (rc) mrec_out_abort(&od);
    if (!rc) {
        double secs = embed_secs;
        fprintf(stderr, "mrec extract-image: %d images (%d-d %s, preset %s) in %.2f s, %.1f images/s\n", n_ok - kept, D,
                mrec_image_layer_name(enc.layer), enc.pre.name, secs, secs > 0 ? (n - kept) / secs : 0);
        /* decoding runs beside the forward passes: its thread-seconds overlap the encoding */
        fprintf(stderr,
                "time: decode + preprocess %.2f CPU-s (%.2f of them on the encoding thread), encode %.2f s, waiting for "
                "decoded images %.2f s, write %.2f s\n",
                times.prepare, times.prepare_caller, times.encode, times.wait, write_secs + mrec_now() - t_write);
    }
    res->n_items = n, res->n_embedded = rc ? 0 : n_ok - kept, res->n_kept = kept, res->n_skipped = rc ? 0 : n - n_ok, res->dim = D;
    if (!rc && spec->run.keep) {
        /* the good rows, packed (the matrix format packed them already) */
        int r = 0;
        for (int i = 0; per_item && i < n; i++)
            if (good[i]) memmove(feat + (size_t)r * D, feat + (size_t)i * D, sizeof(float) * (size_t)D), r++;
        const char **ids = malloc(sizeof *ids * (size_t)(n_ok + 1));
        r = 0;
        for (int i = 0; ids && i < n; i++)
            if (good[i]) ids[r++] = items.ids[i];
        if ((st = ids ? mrec_extract_result_keep(res, ids, feat, n_ok, D) : mrec_fail(MREC_ERR_NOMEM, "%d ids", n_ok))) rc = fail("extract-image", "memory", st);
        free(ids);
    }
    if (res == &scratch_result) mrec_extract_result_free(res);
    for (int i = 0; errors && i < n; i++) free(errors[i]);
    mrec_image_list_free(&items);
    free(feat), free(good), free(errors);
    if (loaded) mrec_image_encoder_free(&enc); /* before the context its weights may be on */
    mrec_context_destroy(own_ctx);
    return rc;
}

/* ---- CLIP: image and text features per item, paired by id ---- */

/* ---- pairing rows with images by id ---- */

static const char *const *sort_keys;
static int by_key(const void *a, const void *b) { return strcmp(sort_keys[*(const int *)a], sort_keys[*(const int *)b]); }

/* row_image[r] = the index in `images` of row r's image, or -1. Returns the
 * number of images that matched no row. A repeated id in the table is an error. */
static mrec_status pair_by_id(const char *const *row_ids, int n_rows, const mrec_image_list *images, const char *table,
                              int *row_image, int *unmatched) {
    int *order = malloc(sizeof *order * (size_t)(n_rows ? n_rows : 1));
    if (!order) return mrec_fail(MREC_ERR_NOMEM, "%d rows", n_rows);
    for (int r = 0; r < n_rows; r++) order[r] = r, row_image[r] = -1;
    sort_keys = row_ids;
    qsort(order, (size_t)n_rows, sizeof *order, by_key);
    mrec_status st = MREC_OK;
    for (int i = 1; !st && i < n_rows; i++)
        if (!strcmp(row_ids[order[i]], row_ids[order[i - 1]]))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: item '%s' is on rows %d and %d", table, row_ids[order[i]],
                           (order[i - 1] < order[i] ? order[i - 1] : order[i]) + 2, (order[i - 1] < order[i] ? order[i] : order[i - 1]) + 2);
    *unmatched = 0;
    for (int k = 0; !st && k < images->n; k++) {
        int lo = 0, hi = n_rows - 1, found = -1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2, c = strcmp(images->ids[k], row_ids[order[mid]]);
            if (!c) {
                found = order[mid];
                break;
            }
            if (c < 0) hi = mid - 1;
            else lo = mid + 1;
        }
        if (found >= 0) row_image[found] = k;
        else ++*unmatched;
    }
    free(order);
    return st;
}

static mrec_status write_ids(const char *path, const char *const *ids, int n) {
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (st) return st;
    for (int i = 0; i < n; i++) fprintf(af.f, "%s\n", ids[i]);
    return mrec_atomic_commit(&af);
}

/* No NaN or Inf reaches a file: each row is checked, naming its item. */
static mrec_status check_rows(const char *const *ids, const float *x, int n, int D, const char *model) {
    mrec_status st = MREC_OK;
    for (int i = 0; i < n && !st; i++) st = mrec_check_feature_row(x + (size_t)i * D, D, ids[i], model);
    return st;
}

/* out (n, fused dim) from the two feature matrices, as Ducho's fusions */
static void fuse(const char *how, const float *v, int Dv, const float *t, int Dt, int n, float *out) {
    for (int i = 0; i < n; i++) {
        const float *a = v + (size_t)i * Dv, *b = t + (size_t)i * Dt;
        if (!strcmp(how, "concat")) {
            memcpy(out + (size_t)i * (Dv + Dt), a, sizeof(float) * (size_t)Dv);
            memcpy(out + (size_t)i * (Dv + Dt) + Dv, b, sizeof(float) * (size_t)Dt);
            continue;
        }
        float *o = out + (size_t)i * Dv;
        for (int d = 0; d < Dv; d++)
            o[d] = !strcmp(how, "sum") ? a[d] + b[d] : !strcmp(how, "mul") ? a[d] * b[d] : (a[d] + b[d]) / 2;
    }
}

static mrec_status write_rows(const char *dir, const char *const *ids, const float *x, int n, int D) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return mrec_fail(MREC_ERR_IO, "%s: cannot create (%s)", dir, strerror(errno));
    int64_t shape[2] = {1, D};
    char path[4096];
    mrec_status st = MREC_OK;
    for (int i = 0; i < n && !st; i++) {
        if (!*ids[i] || strchr(ids[i], '/') || !strcmp(ids[i], ".") || !strcmp(ids[i], ".."))
            return mrec_fail(MREC_ERR_ARG, "item id '%s' cannot be a file name", ids[i]);
        snprintf(path, sizeof path, "%s/%s.npy", dir, ids[i]);
        st = mrec_npy_write(path, MREC_NPY_F32, 2, shape, x + (size_t)i * D);
    }
    return st;
}

int mrec_extract_clip_run(const mrec_clip_extract_spec *spec, mrec_extract_result *res) {
    mrec_extract_result scratch_result;
    if (!res) res = &scratch_result;
    memset(res, 0, sizeof *res);
    const char *model = spec->run.model, *images = spec->images, *input = spec->input, *out = spec->run.out, *fusion = spec->fusion;
    int batch = spec->run.batch_size > 0 ? spec->run.batch_size : 32, out_flags = spec->run.out_flags;
    int decode_threads = spec->decode_threads > 0 ? spec->decode_threads : 2, strict = spec->strict;
    mrec_context_options o = mrec_context_defaults();
    o.device = spec->run.device, o.precision = spec->run.precision, o.n_threads = spec->run.threads;

    mrec_image_model kind;
    mrec_status st = mrec_image_model_kind(model, &kind);
    if (st) return fail("extract-clip", "the model", st);
    if (kind != MREC_IMAGE_CLIP) {
        fprintf(stderr, "mrec extract-clip: %s: not a CLIP folder (config.json model_type \"clip\")\n", model);
        return 2;
    }

    /* the items (table rows) and their images */
    mrec_table table;
    st = mrec_table_read(&table, input, 0);
    if (st) return fail("extract-clip", "reading the table", st);
    int ci, ct, rc = 0;
    if ((st = mrec_table_column(&table, spec->id_column, input, &ci)) || (st = mrec_table_column(&table, spec->text_column, input, &ct))) {
        mrec_table_free(&table);
        return fail("extract-clip", "columns", st);
    }
    int n_rows = table.n_rows;
    const char **row_ids = malloc(sizeof *row_ids * (size_t)(n_rows + 1));
    int *row_image = malloc(sizeof *row_image * (size_t)(n_rows + 1)), unmatched = 0;
    mrec_image_list list = {0};
    if (!row_ids || !row_image) rc = fail("extract-clip", "memory", mrec_fail(MREC_ERR_NOMEM, "%d rows", n_rows));
    for (int r = 0; !rc && r < n_rows; r++) {
        row_ids[r] = table.cells[(size_t)r * table.n_cols + ci];
        if (!*row_ids[r] || strchr(row_ids[r], '/') || !strcmp(row_ids[r], ".") || !strcmp(row_ids[r], "..")) {
            fprintf(stderr, "mrec extract-clip: %s: row %d: id '%s' cannot be a file name\n", input, r + 2, row_ids[r]);
            rc = 2;
        }
    }
    if (!rc && (st = mrec_image_list_read(&list, images, spec->image_id_column, spec->path_column))) rc = fail("extract-clip", "listing the images", st);
    if (!rc && (st = pair_by_id(row_ids, n_rows, &list, input, row_image, &unmatched))) rc = fail("extract-clip", "pairing", st);

    /* the paired items, in table order */
    int n = 0, n_no_image = 0;
    int *rows = malloc(sizeof *rows * (size_t)(n_rows + 1));
    const char **paths = malloc(sizeof *paths * (size_t)(n_rows + 1)), **texts = malloc(sizeof *texts * (size_t)(n_rows + 1));
    if (!rc && (!rows || !paths || !texts)) rc = fail("extract-clip", "memory", mrec_fail(MREC_ERR_NOMEM, "%d rows", n_rows));
    for (int r = 0; !rc && r < n_rows; r++) {
        if (row_image[r] < 0) {
            if (n_no_image++ < 5) fprintf(stderr, "mrec extract-clip: item '%s' (row %d) has no image\n", row_ids[r], r + 2);
            continue;
        }
        rows[n] = r, paths[n] = list.paths[row_image[r]], texts[n] = table.cells[(size_t)r * table.n_cols + ct], n++;
    }
    if (!rc && (n_no_image || unmatched)) {
        fprintf(stderr, "mrec extract-clip: %d of %d items have no image; %d of %d images belong to no item%s\n", n_no_image, n_rows,
                unmatched, list.n, strict ? "" : " (left out)");
        if (strict) {
            fprintf(stderr, "mrec extract-clip: --strict: nothing written\n");
            rc = 2;
        }
    }
    if (!rc && n == 0) {
        fprintf(stderr, "mrec extract-clip: no item of %s has an image in %s\n", input, images);
        rc = 2;
    }

    /* the device, then the two towers on it */
    mrec_context *ctx = spec->run.ctx, *own_ctx = NULL;
    if (!rc && !ctx && (st = mrec_context_create(&own_ctx, &o))) rc = fail("extract-clip", "the device", st);
    if (!ctx) ctx = own_ctx;
    if (!rc && own_ctx && ctx->notice[0] && (spec->run.device_given || o.precision != MREC_PREC_FP32 || mrec_cuda_compiled()))
        fprintf(stderr, "mrec extract-clip: %s\n", ctx->notice);
    mrec_image_encoder venc;
    mrec_text_encoder tenc;
    int v_loaded = 0, t_loaded = 0;
    if (!rc && (st = mrec_image_encoder_load(&venc, model, spec->preset, spec->layer))) rc = fail("extract-clip", "loading the vision tower", st);
    v_loaded = !rc;
    if (!rc && (st = mrec_text_encoder_load(&tenc, model))) rc = fail("extract-clip", "loading the text tower", st);
    t_loaded = !rc;
    if (!rc && ((st = mrec_image_encoder_to_device(&venc, ctx)) || (st = mrec_text_encoder_to_device(&tenc, ctx))))
        rc = fail("extract-clip", "moving the towers to the device", st);
    if (!rc && ctx->device != MREC_DEVICE_CPU)
        fprintf(stderr, "mrec extract-clip: running on the GPU (%s)\n", mrec_precision_name(ctx->precision));
    if (!rc) {
        venc.batch_size = batch, venc.decode_threads = decode_threads, tenc.batch_size = batch;
        tenc.clip_output = venc.layer == MREC_LAYER_EMBEDS ? MREC_CLIP_EMBEDS : venc.layer == MREC_LAYER_PROJECTED ? MREC_CLIP_PROJECTED
                                                                                                                  : MREC_CLIP_POOLER;
    }
    int Dv = v_loaded ? mrec_image_encoder_dim(&venc) : 0, Dt = t_loaded ? mrec_text_encoder_dim(&tenc) : 0;
    if (!rc && fusion && strcmp(fusion, "concat") && Dv != Dt) {
        fprintf(stderr, "mrec extract-clip: --fusion %s needs equal sizes; %s gives %d (image) and %d (text)\n", fusion,
                mrec_image_layer_name(venc.layer), Dv, Dt);
        rc = 2;
    }

    float *vis = malloc(sizeof(float) * (size_t)(n + 1) * (Dv + 1)), *txt = malloc(sizeof(float) * (size_t)(n + 1) * (Dt + 1));
    int *good = malloc(sizeof *good * (size_t)(n + 1));
    char **errors = calloc((size_t)n + 1, sizeof *errors);
    if (!rc && (!vis || !txt || !good || !errors)) rc = fail("extract-clip", "memory", mrec_fail(MREC_ERR_NOMEM, "%d items", n));
    /* the output folder first: a bad path, or a folder in use, should not cost the whole run */
    mrec_out_dir od = {.lock_fd = -1};
    if (!rc && (st = mrec_out_begin(&od, out, out_flags & MREC_OUT_OVERWRITE))) rc = fail("extract-clip", "the output folder", st);
    struct timespec t0, t1, t2;
    mrec_progress pv, pt;
    mrec_progress_start(&pv, "extract-clip images", n);
    venc.progress = mrec_progress_update, venc.progress_ctx = &pv;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!rc && (st = mrec_image_encoder_embed(ctx, &venc, paths, n, vis, good, errors))) rc = fail("extract-clip", "images", st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    mrec_progress_start(&pt, "extract-clip texts", n);
    tenc.progress = mrec_progress_update, tenc.progress_ctx = &pt;
    if (!rc && (st = mrec_text_encoder_embed(ctx, &tenc, texts, n, txt))) rc = fail("extract-clip", "texts", st);
    clock_gettime(CLOCK_MONOTONIC, &t2);

    /* drop the items whose image failed, keeping the two matrices aligned */
    int kept = 0, n_empty = 0;
    const char **ids = malloc(sizeof *ids * (size_t)(n + 1));
    if (!rc && !ids) rc = fail("extract-clip", "memory", mrec_fail(MREC_ERR_NOMEM, "%d items", n));
    for (int i = 0; !rc && i < n; i++) {
        if (!good[i]) {
            fprintf(stderr, "  %s: %s\n", row_ids[rows[i]], errors[i] ? errors[i] : "error");
            continue;
        }
        n_empty += !*texts[i];
        memmove(vis + (size_t)kept * Dv, vis + (size_t)i * Dv, sizeof(float) * (size_t)Dv);
        memmove(txt + (size_t)kept * Dt, txt + (size_t)i * Dt, sizeof(float) * (size_t)Dt);
        ids[kept++] = row_ids[rows[i]];
    }
    if (!rc && kept < n) {
        fprintf(stderr, "mrec extract-clip: %d of %d images could not be used%s\n", n - kept, n, strict ? "" : " (items left out)");
        if (strict) {
            fprintf(stderr, "mrec extract-clip: --strict: nothing written\n");
            rc = 2;
        }
    }
    int Df = fusion ? (!strcmp(fusion, "concat") ? Dv + Dt : Dv) : 0;
    float *fused = fusion && !rc ? malloc(sizeof(float) * (size_t)(kept + 1) * Df) : NULL;
    if (fusion && !rc && !fused) rc = fail("extract-clip", "memory", mrec_fail(MREC_ERR_NOMEM, "%d fused rows", kept));
    if (fused) fuse(fusion, vis, Dv, txt, Dt, kept, fused);
    if (!rc && ((st = check_rows(ids, vis, kept, Dv, model)) || (st = check_rows(ids, txt, kept, Dt, model)) ||
                (fused && (st = check_rows(ids, fused, kept, Df, model)))))
        rc = fail("extract-clip", "checking the features", st);
    char path[4400];
    out = od.scratch;
    if (!rc && !spec->run.per_item) {
        int64_t sv[2] = {kept, Dv}, stx[2] = {kept, Dt}, sf[2] = {kept, Df};
        snprintf(path, sizeof path, "%s/image_feat.npy", out);
        st = mrec_npy_write(path, MREC_NPY_F32, 2, sv, vis);
        snprintf(path, sizeof path, "%s/text_feat.npy", out);
        if (!st) st = mrec_npy_write(path, MREC_NPY_F32, 2, stx, txt);
        snprintf(path, sizeof path, "%s/%s_feat.npy", out, fusion ? fusion : "");
        if (!st && fused) st = mrec_npy_write(path, MREC_NPY_F32, 2, sf, fused);
        snprintf(path, sizeof path, "%s/item_ids.txt", out);
        if (!st) st = write_ids(path, ids, kept);
        if (st) rc = fail("extract-clip", "writing", st);
    } else if (!rc) {
        snprintf(path, sizeof path, "%s/visual", out);
        st = write_rows(path, ids, vis, kept, Dv);
        snprintf(path, sizeof path, "%s/textual", out);
        if (!st) st = write_rows(path, ids, txt, kept, Dt);
        snprintf(path, sizeof path, "%s/visual_textual_%s", out, fusion ? fusion : "");
        if (!st && fused) st = write_rows(path, ids, fused, kept, Df);
        if (st) rc = fail("extract-clip", "writing", st);
    }
    if (!rc && (st = mrec_out_commit(&od))) rc = fail("extract-clip", "the output folder", st);
    if (rc) mrec_out_abort(&od);
    if (!rc) {
        double si = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9, stt = (t2.tv_sec - t1.tv_sec) + (t2.tv_nsec - t1.tv_nsec) * 1e-9;
        fprintf(stderr, "mrec extract-clip: %d items (%d-d image, %d-d text %s%s%s): images %.2f s (%.1f/s), texts %.2f s (%.1f/s)\n",
                kept, Dv, Dt, mrec_image_layer_name(venc.layer), fusion ? ", fused by " : "", fusion ? fusion : "", si,
                si > 0 ? n / si : 0, stt, stt > 0 ? n / stt : 0);
        if (n_empty) fprintf(stderr, "mrec extract-clip: %d items had empty text: embedded the empty string\n", n_empty);
    }
    res->n_items = n_rows, res->n_embedded = rc ? 0 : kept, res->n_skipped = rc ? 0 : n_rows - kept, res->n_empty = n_empty;
    res->dim = Dv, res->dim_text = Dt, res->dim_fused = Df;
    if (!rc && spec->run.keep) {
        res->text_features = malloc(sizeof(float) * ((size_t)kept * Dt + 1));
        res->fused_features = fused ? malloc(sizeof(float) * ((size_t)kept * Df + 1)) : NULL;
        if ((st = res->text_features && (!fused || res->fused_features) ? mrec_extract_result_keep(res, ids, vis, kept, Dv)
                                                                        : mrec_fail(MREC_ERR_NOMEM, "%d items", kept)))
            rc = fail("extract-clip", "memory", st);
        if (!rc) memcpy(res->text_features, txt, sizeof(float) * (size_t)kept * Dt);
        if (!rc && fused) memcpy(res->fused_features, fused, sizeof(float) * (size_t)kept * Df);
    }
    if (res == &scratch_result) mrec_extract_result_free(res);
    for (int i = 0; errors && i < n; i++) free(errors[i]);
    free(vis), free(txt), free(good), free(errors), free(ids), free(fused), free(rows), free(paths), free(texts);
    free(row_ids), free(row_image);
    if (v_loaded) mrec_image_encoder_free(&venc); /* before the context their weights may be on */
    if (t_loaded) mrec_text_encoder_free(&tenc);
    mrec_context_destroy(own_ctx);
    mrec_image_list_free(&list);
    mrec_table_free(&table);
    return rc;
}
