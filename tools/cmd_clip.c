/* cmd_clip.c: `mrec extract-clip` (visual and textual CLIP features per item,
 * paired by item id) and `mrec clip-scores` (the image x text similarity of
 * a few files and captions, to eyeball a checkpoint).
 *
 *   mrec extract-clip --model DIR --images DIR|TABLE --input FILE --id-column C --text-column C --out DIR
 *                     [--layer embeds|projected|pooler] [--fusion concat|sum|mul|mean] [--format matrix|per-item]
 *                     [--image-id-column C] [--path-column C] [--preset hf-clip] [--batch-size 32]
 *                     [--threads N] [--decode-threads 2] [--strict] [--device auto|cpu|cuda] [--precision fp32|tf32|bf16]
 *   mrec clip-scores --model DIR --image FILE [--image FILE ...] --text CAPTION [--text CAPTION ...]
 *                    [--device auto|cpu|cuda] [--precision fp32|tf32|bf16]
 *
 * Ducho pairs the i-th image file with the i-th text row, which misaligns as
 * soon as the table is not sorted like the file names; here the text table
 * lists the items and each finds its image by id.
 */
#include "../extractors/mrec_extract.h"
#include "../extractors/mrec_image_encoder.h"
#include "../nn/mrec_io.h"
#include "../nn/mrec_npy.h"
#include "mrec_extract_pipeline.h"
#include "mrec_options.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { C_MODEL, C_IMAGES, C_INPUT, C_ID, C_TEXT, C_OUT, C_LAYER, C_FUSION, C_FORMAT, C_IMAGE_ID, C_PATH, C_PRESET, C_BATCH, C_THREADS,
       C_DECODE, C_STRICT, C_OVERWRITE, C_RESUME, C_DEVICE, C_PRECISION, N_OPTIONS };

static const mrec_option OPTIONS[N_OPTIONS] = {
    [C_MODEL] = {"--model", MREC_OPT_PATH, "DIR", "a Hugging Face CLIPModel folder", .allow_dir = 1, .section = "options"},
    [C_IMAGES] = {"--images", MREC_OPT_PATH, "DIR|TABLE", "a folder of images (id = file name up to the first dot) or an id/path table",
                  .allow_dir = 1},
    [C_INPUT] = {"--input", MREC_OPT_PATH, "FILE", "the item table, CSV or TSV: it lists the items"},
    [C_ID] = {"--id-column", MREC_OPT_TEXT, "C", "the table's column of item ids"},
    [C_TEXT] = {"--text-column", MREC_OPT_TEXT, "C", "the table's column of texts"},
    [C_OUT] = {"--out", MREC_OPT_TEXT, "DIR", "the output folder"},
    [C_LAYER] = {"--layer", MREC_OPT_TEXT, "embeds|projected|pooler", "the towers' output", "embeds"},
    [C_FUSION] = {"--fusion", MREC_OPT_ENUM, "concat|sum|mul|mean", "also the two fused, as Ducho fuses them", .choices = "concat|sum|mul|mean"},
    [C_FORMAT] = {"--format", MREC_OPT_ENUM, "matrix|per-item", "matrices and DIR/item_ids.txt, or DIR/visual/<id>.npy and textual/<id>.npy",
                  "matrix", .choices = "matrix|per-item"},
    [C_IMAGE_ID] = {"--image-id-column", MREC_OPT_TEXT, "C", "an image table's column of ids", "the first"},
    [C_PATH] = {"--path-column", MREC_OPT_TEXT, "C", "an image table's column of paths", "the second"},
    [C_PRESET] = {"--preset", MREC_OPT_TEXT, "NAME", "the image preprocessing", "hf-clip"},
    [C_BATCH] = {"--batch-size", MREC_OPT_INT, "N", "items per batch", "32", 1, 4096},
    [C_THREADS] = {"--threads", MREC_OPT_INT, "N", "threads", "0 (one per core)", 0, 1024},
    [C_DECODE] = {"--decode-threads", MREC_OPT_INT, "N", "threads decoding images ahead of the encoder", "2", 1, 16},
    [C_STRICT] = {"--strict", MREC_OPT_SWITCH, NULL, "an item without a usable image stops the run, before anything is written"},
    [C_OVERWRITE] = {"--overwrite", MREC_OPT_SWITCH, NULL, "replace an existing DIR (it stays as it was until the new one is whole)"},
    [C_RESUME] = {"--resume", MREC_OPT_SWITCH, NULL, "accepted; extract-clip runs again whole"},
    [C_DEVICE] = MREC_OPTION_DEVICE,
    [C_PRECISION] = MREC_OPTION_PRECISION,
};

static const mrec_command COMMAND = {
    "extract-clip",
    "usage: mrec extract-clip --model DIR --images DIR|TABLE --input FILE --id-column C --text-column C --out DIR [options]\n",
    "Extracts CLIP image and text features for each item of the table (FILE), pairing each row\n"
    "with its image by item id: --images is a folder (id = file name up to the first dot) or an\n"
    "id/path table. Layers: embeds (image_embeds / text_embeds: projected, L2-normalized; Ducho's\n"
    "choice), projected (get_image_features / get_text_features) or pooler. Items without an image,\n"
    "images without an item and images that cannot be decoded are counted and listed, and left out;\n"
    "--strict stops instead, before anything is written.\n"
    "matrix writes DIR/image_feat.npy, DIR/text_feat.npy (rows in table order) and DIR/item_ids.txt;\n"
    "per-item writes DIR/visual/<id>.npy and DIR/textual/<id>.npy of shape (1, dim). --fusion adds\n"
    "DIR/<fusion>_feat.npy (or DIR/visual_textual_<fusion>/<id>.npy): concat, or the element-wise\n"
    "sum, product or mean of the two (equal sizes needed), as Ducho fuses them.\n"
    "DIR is built beside itself and appears whole when the run succeeds; an existing DIR is replaced\n"
    "only with --overwrite (and stays as it was until then); a second run into DIR at the same time\n"
    "is refused. A NaN or infinite feature stops the run, naming the item, with nothing written.\n",
    OPTIONS, N_OPTIONS, 0};

static int fail(const char *cmd, const char *what, mrec_status st) {
    fprintf(stderr, "mrec %s: %s: %s: %s\n", cmd, what, mrec_strerror(st), mrec_error_detail());
    return st == MREC_ERR_NOMEM ? 3 : 2;
}

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

/* The command's front: the option table into a spec. */
int mrec_cmd_extract_clip(int argc, char **argv) {
    mrec_opt_value v[N_OPTIONS];
    int parsed = mrec_options_parse(&COMMAND, argc, argv, v, NULL, NULL, NULL);
    if (parsed == MREC_OPTS_HELP) return 0;
    if (parsed) return parsed;
    mrec_clip_extract_spec s = {.run = mrec_extract_defaults()};
    s.run.model = v[C_MODEL].text, s.images = v[C_IMAGES].text, s.input = v[C_INPUT].text, s.id_column = v[C_ID].text;
    s.text_column = v[C_TEXT].text, s.run.out = v[C_OUT].text, s.layer = v[C_LAYER].text, s.fusion = v[C_FUSION].text;
    s.run.per_item = v[C_FORMAT].given && !strcmp(v[C_FORMAT].text, "per-item");
    s.image_id_column = v[C_IMAGE_ID].text, s.path_column = v[C_PATH].text, s.preset = v[C_PRESET].text;
    if (v[C_BATCH].given) s.run.batch_size = (int)v[C_BATCH].i;
    s.run.threads = (int)v[C_THREADS].i;
    s.decode_threads = v[C_DECODE].given ? (int)v[C_DECODE].i : 2, s.strict = v[C_STRICT].given;
    s.run.out_flags = (v[C_OVERWRITE].given ? MREC_OUT_OVERWRITE : 0) | (v[C_RESUME].given ? MREC_OUT_RESUME : 0);
    mrec_context_options o = mrec_context_defaults();
    s.run.device_given = mrec_options_device(&v[C_DEVICE], &v[C_PRECISION], &o);
    s.run.device = o.device, s.run.precision = o.precision;
    if (!s.run.model || !s.images || !s.input || !s.id_column || !s.text_column || !s.run.out) {
        fprintf(stderr, "mrec extract-clip: --model, --images, --input, --id-column, --text-column and --out are needed "
                        "(mrec extract-clip --help)\n");
        return 1;
    }
    return mrec_extract_clip_run(&s, NULL);
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

/* ---- clip-scores ---- */

int mrec_cmd_clip_scores(int argc, char **argv) {
    const char *model = NULL, *image[64], *text[64];
    int n_images = 0, n_texts = 0, threads = 0, device_set = 0;
    mrec_context_options o = mrec_context_defaults();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: mrec clip-scores --model DIR --image FILE [--image FILE ...] --text CAPTION [--text CAPTION ...]\n"
                   "                        [--threads N] [--device auto|cpu|cuda] [--precision fp32|tf32|bf16]\n"
                   "\n"
                   "Prints CLIP's zero-shot table: for each image, logits_per_image against each caption and\n"
                   "their softmax over the captions (up to 64 of each). --device and --precision as for\n"
                   "extract-clip: auto (the default) runs on a GPU when there is one, else on the CPU with a notice.\n");
            return 0;
        }
        if (mrec_opt_missing("clip-scores", a, v)) return 1;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--image") && n_images < 64) image[n_images++] = v;
        else if (!strcmp(a, "--text") && n_texts < 64) text[n_texts++] = v;
        else if (!strcmp(a, "--threads")) { if (mrec_opt_int("clip-scores", a, v, 0, 1024, &threads)) return 1; }
        else if (!strcmp(a, "--device")) {
            if (mrec_device_request_parse(v, &o.device)) return fprintf(stderr, "mrec clip-scores: --device: %s\n", mrec_error_detail()), 1;
            device_set = 1;
        }
        else if (!strcmp(a, "--precision")) {
            if (mrec_precision_parse(v, &o.precision)) return fprintf(stderr, "mrec clip-scores: --precision: %s\n", mrec_error_detail()), 1;
        }
        else {
            fprintf(stderr, "mrec clip-scores: unknown option '%s' (or more than 64 images or captions)\n", a);
            return 1;
        }
        i++;
    }
    if (!model || !n_images || !n_texts) {
        fprintf(stderr, "usage: mrec clip-scores --model DIR --image FILE [--image FILE ...] --text CAPTION [--text CAPTION ...]\n");
        return 1;
    }
    for (int i = -1; i < n_images; i++) /* a FIFO would block the reader */
        if (i < 0 ? mrec_check_input(model, "--model", 1) : mrec_check_input(image[i], "--image", 0))
            return fprintf(stderr, "mrec clip-scores: %s\n", mrec_error_detail()), 2;
    mrec_context *ctx = NULL;
    o.n_threads = threads;
    mrec_status st = mrec_context_create(&ctx, &o);
    if (st) return fail("clip-scores", "the device", st);
    if (ctx->notice[0] && (device_set || o.precision != MREC_PREC_FP32 || mrec_cuda_compiled())) fprintf(stderr, "mrec clip-scores: %s\n", ctx->notice);
    mrec_image_encoder venc;
    mrec_text_encoder tenc;
    if ((st = mrec_image_encoder_load(&venc, model, NULL, "embeds"))) {
        mrec_context_destroy(ctx);
        return fail("clip-scores", "loading the vision tower", st);
    }
    if ((st = mrec_text_encoder_load(&tenc, model))) {
        mrec_image_encoder_free(&venc), mrec_context_destroy(ctx);
        return fail("clip-scores", "loading the text tower", st);
    }
    int D = mrec_image_encoder_dim(&venc), ok[64], rc = 0;
    char *errors[64] = {0};
    float *vis = malloc(sizeof(float) * 64 * D), *txt = malloc(sizeof(float) * 64 * D), logits[64 * 64];
    if (!vis || !txt) rc = fail("clip-scores", "memory", mrec_fail(MREC_ERR_NOMEM, "embeddings"));
    if (!rc && ((st = mrec_image_encoder_to_device(&venc, ctx)) || (st = mrec_text_encoder_to_device(&tenc, ctx))))
        rc = fail("clip-scores", "moving the towers to the device", st);
    if (!rc && (st = mrec_image_encoder_embed(ctx, &venc, image, n_images, vis, ok, errors))) rc = fail("clip-scores", "images", st);
    for (int i = 0; !rc && i < n_images; i++)
        if (!ok[i]) {
            fprintf(stderr, "mrec clip-scores: %s\n", errors[i] ? errors[i] : image[i]);
            rc = 2;
        }
    for (int i = 0; i < n_images; i++) free(errors[i]);
    if (!rc && (st = mrec_text_encoder_embed(ctx, &tenc, text, n_texts, txt))) rc = fail("clip-scores", "texts", st);
    if (!rc) {
        mrec_clip_logits(&venc.clip, vis, n_images, txt, n_texts, logits);
        printf("logit scale %.4f (exp %.2f)\n", venc.clip.logit_scale, exp(venc.clip.logit_scale));
        for (int i = 0; i < n_images; i++) {
            printf("%s\n", image[i]);
            double max = logits[i * n_texts], sum = 0;
            for (int j = 1; j < n_texts; j++) max = fmax(max, logits[i * n_texts + j]);
            for (int j = 0; j < n_texts; j++) sum += exp(logits[i * n_texts + j] - max);
            for (int j = 0; j < n_texts; j++)
                printf("  %8.4f  %6.4f  %s\n", logits[i * n_texts + j], exp(logits[i * n_texts + j] - max) / sum, text[j]);
        }
    }
    free(vis), free(txt);
    mrec_image_encoder_free(&venc); /* before the context their weights may be on */
    mrec_text_encoder_free(&tenc);
    mrec_context_destroy(ctx);
    return rc;
}
