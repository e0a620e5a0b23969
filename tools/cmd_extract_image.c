/* cmd_extract_image.c: `mrec extract-image`: image files in, one feature
 * vector per item out, Ducho- or MMRec-style.
 *
 *   mrec extract-image --model PATH --images DIR|TABLE --out DIR [--preset NAME]
 *                      [--layer avgpool|logits|cls|pooler] [--format matrix|per-item]
 *                      [--batch-size 32] [--threads N] [--decode-threads 2] [--strict]
 *                      [--size H,W] [--mean R,G,B --std R,G,B] [--overwrite] [--resume]
 *                      [--device auto|cpu|cuda] [--precision fp32|tf32|bf16]
 * DIR is an output folder (mrec_out_begin): built beside itself, it appears
 * whole; per-item runs decode, encode and write in chunks --resume can skip.
 * A folder is searched recursively for .jpg / .jpeg / .png; an item's id is
 * the file name up to its first dot (Ducho's rule), items in id order. A
 * table (CSV / TSV with a header) names the id and path columns (--id-column,
 * --path-column; the first two by default); relative paths are taken from
 * the table's folder.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { I_MODEL, I_IMAGES, I_OUT, I_PRESET, I_LAYER, I_FORMAT, I_ID, I_PATH, I_SIZE, I_MEAN, I_STD, I_BATCH, I_THREADS, I_DECODE, I_STRICT,
       I_OVERWRITE, I_RESUME, I_DEVICE, I_PRECISION, N_OPTIONS };

static const mrec_option OPTIONS[N_OPTIONS] = {
    [I_MODEL] = {"--model", MREC_OPT_PATH, "PATH", "a torchvision ResNet (safetensors) or a Hugging Face ViT or CLIP folder", .allow_dir = 1,
                 .section = "options"},
    [I_IMAGES] = {"--images", MREC_OPT_PATH, "DIR|TABLE", "a folder of .jpg / .jpeg / .png, or a table of ids and paths", .allow_dir = 1},
    [I_OUT] = {"--out", MREC_OPT_TEXT, "DIR", "the output folder"},
    [I_PRESET] = {"--preset", MREC_OPT_TEXT, "NAME", "ducho-resnet, torchvision, hf-vit or hf-clip", "the model's"},
    [I_LAYER] = {"--layer", MREC_OPT_TEXT, "NAME", "avgpool or logits (ResNet), cls or pooler (ViT)", "avgpool, cls"},
    [I_FORMAT] = {"--format", MREC_OPT_ENUM, "matrix|per-item", "DIR/image_feat.npy and image_feat_ids.txt, or DIR/<id>.npy", "matrix",
                  .choices = "matrix|per-item"},
    [I_ID] = {"--id-column", MREC_OPT_TEXT, "C", "a table's column of ids", "the first"},
    [I_PATH] = {"--path-column", MREC_OPT_TEXT, "C", "a table's column of paths", "the second"},
    [I_SIZE] = {"--size", MREC_OPT_TEXT, "H,W", "a straight resize to H x W (Ducho's reshape), each in [8, 4096]"},
    [I_MEAN] = {"--mean", MREC_OPT_TEXT, "R,G,B", "the normalization's mean, in [0, 1] units (with --std)"},
    [I_STD] = {"--std", MREC_OPT_TEXT, "R,G,B", "the normalization's std, each > 0 (with --mean)"},
    [I_BATCH] = {"--batch-size", MREC_OPT_INT, "N", "images per batch", "32", 1, 4096},
    [I_THREADS] = {"--threads", MREC_OPT_INT, "N", "threads", "0 (one per core)", 0, 1024},
    [I_DECODE] = {"--decode-threads", MREC_OPT_INT, "N", "threads decoding images ahead of the encoder", "2", 1, 16},
    [I_STRICT] = {"--strict", MREC_OPT_SWITCH, NULL, "an image that cannot be decoded stops the run, before anything is written"},
    [I_OVERWRITE] = {"--overwrite", MREC_OPT_SWITCH, NULL, "replace an existing DIR (it stays as it was until the new one is whole)"},
    [I_RESUME] = {"--resume", MREC_OPT_SWITCH, NULL, "per-item: take up the items a killed run finished"},
    [I_DEVICE] = MREC_OPTION_DEVICE,
    [I_PRECISION] = MREC_OPTION_PRECISION,
};

static const mrec_command COMMAND = {
    "extract-image", "usage: mrec extract-image --model PATH --images DIR|TABLE --out DIR [options]\n",
    "Extracts visual features with a torchvision ResNet (safetensors) or a Hugging Face ViT folder.\n"
    "Presets: ducho-resnet (default for ResNet: bicubic 224x224, ImageNet statistics), torchvision\n"
    "(Resize 256 + CenterCrop 224), hf-vit (default for ViT), hf-clip; hf- presets read the model's\n"
    "preprocessor_config.json. Images that cannot be decoded are listed and skipped; --strict stops\n"
    "instead, before anything is written. matrix writes DIR/image_feat.npy (one row per item, in\n"
    "item order) and DIR/image_feat_ids.txt; per-item writes DIR/<id>.npy of shape (1, dim).\n"
    "--size resizes straight to H x W (a preset without a crop; Ducho's reshape); --mean and --std\n"
    "replace the preset's normalization (in [0, 1] units, like torchvision's Normalize).\n"
    "DIR is built beside itself and appears whole when the run succeeds; an existing DIR is replaced\n"
    "only with --overwrite (and stays as it was until then). A second run into DIR at the same time is\n"
    "refused. --resume (per-item) takes up the items a killed run finished (or DIR's, when it is\n"
    "complete), keeping the files that verify, and redoes the rest. A NaN or infinite feature stops the\n"
    "run, naming the item, with nothing written. ResNet's convolutions stay fp32 at every --precision.\n",
    OPTIONS, N_OPTIONS, 0};

static int fail(const char *what, mrec_status st) {
    fprintf(stderr, "mrec extract-image: %s: %s: %s\n", what, mrec_strerror(st), mrec_error_detail());
    return st == MREC_ERR_NOMEM ? 3 : 2;
}

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

/* The command's front: the option table into a spec. */
int mrec_cmd_extract_image(int argc, char **argv) {
    mrec_opt_value v[N_OPTIONS];
    int parsed = mrec_options_parse(&COMMAND, argc, argv, v, NULL, NULL, NULL);
    if (parsed == MREC_OPTS_HELP) return 0;
    if (parsed) return parsed;
    mrec_image_extract_spec s = {.run = mrec_extract_defaults()};
    s.run.model = v[I_MODEL].text, s.images = v[I_IMAGES].text, s.run.out = v[I_OUT].text, s.preset = v[I_PRESET].text, s.layer = v[I_LAYER].text;
    s.run.per_item = v[I_FORMAT].given && !strcmp(v[I_FORMAT].text, "per-item");
    s.id_column = v[I_ID].text, s.path_column = v[I_PATH].text;
    if (v[I_BATCH].given) s.run.batch_size = (int)v[I_BATCH].i;
    s.run.threads = (int)v[I_THREADS].i;
    s.decode_threads = v[I_DECODE].given ? (int)v[I_DECODE].i : 2, s.strict = v[I_STRICT].given;
    s.run.out_flags = (v[I_OVERWRITE].given ? MREC_OUT_OVERWRITE : 0) | (v[I_RESUME].given ? MREC_OUT_RESUME : 0);
    mrec_context_options o = mrec_context_defaults();
    s.run.device_given = mrec_options_device(&v[I_DEVICE], &v[I_PRECISION], &o);
    s.run.device = o.device, s.run.precision = o.precision;
    /* --size, --mean and --std are checked now, applied once the model is loaded */
    const int rows[3] = {I_SIZE, I_MEAN, I_STD};
    double x[3][3];
    for (int k = 0; k < 3; k++) {
        if (v[rows[k]].given && mrec_parse_reals(v[rows[k]].text, k ? 3 : 2, k == 0 ? 8 : k == 2 ? 1e-6 : -1e3, k ? 1e3 : 4096, x[k]))
            return fprintf(stderr, "mrec extract-image: %s: %s\n", OPTIONS[rows[k]].flag, mrec_error_detail()), 1;
    }
    if (!s.run.model || !s.images || !s.run.out) {
        fprintf(stderr, "mrec extract-image: --model, --images and --out are needed (mrec extract-image --help)\n");
        return 1;
    }
    if (v[I_SIZE].given && (x[0][0] != (int)x[0][0] || x[0][1] != (int)x[0][1])) {
        fprintf(stderr, "mrec extract-image: preprocessing: %s: --size wants H,W between 8 and 4096, got '%s'\n",
                mrec_strerror(MREC_ERR_ARG), v[I_SIZE].text);
        return 2;
    }
    if (v[I_SIZE].given) s.size_h = (int)x[0][0], s.size_w = (int)x[0][1];
    if (!v[I_MEAN].given != !v[I_STD].given) {
        fprintf(stderr, "mrec extract-image: preprocessing: %s: --mean and --std go together\n", mrec_strerror(MREC_ERR_ARG));
        return 2;
    }
    s.normalize_given = v[I_MEAN].given;
    for (int c = 0; s.normalize_given && c < 3; c++) s.mean[c] = (float)x[1][c], s.std[c] = (float)x[2][c];
    return mrec_extract_image_run(&s, NULL);
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
    if (!ctx && (st = mrec_context_create(&own_ctx, &o))) return fail("the device", st);
    if (!ctx) ctx = own_ctx;
    if (own_ctx && ctx->notice[0] && (spec->run.device_given || o.precision != MREC_PREC_FP32 || mrec_cuda_compiled()))
        fprintf(stderr, "mrec extract-image: %s\n", ctx->notice);
    mrec_image_list items;
    if ((st = mrec_image_list_read(&items, images, spec->id_column, spec->path_column))) {
        mrec_context_destroy(own_ctx);
        return fail("listing the images", st);
    }
    int rc = 0;
    mrec_image_encoder enc;
    int loaded = 0;
    if (!rc && (st = mrec_image_encoder_load(&enc, model, spec->preset, spec->layer))) rc = fail("loading the model", st);
    loaded = !rc;
    if (!rc) enc.batch_size = batch, enc.decode_threads = decode_threads;
    if (!rc && (st = override_preprocessing(&enc, spec))) rc = fail("preprocessing", st);
    int n = items.n, D = loaded ? mrec_image_encoder_dim(&enc) : 0;
    float *feat = malloc(sizeof *feat * (size_t)(n + 1) * (D + 1));
    int *good = malloc(sizeof *good * (size_t)(n + 1));
    char **errors = calloc((size_t)n + 1, sizeof *errors);
    if (!rc && (!feat || !good || !errors)) rc = fail("memory", mrec_fail(MREC_ERR_NOMEM, "%d items", n));
    if (!rc && (st = mrec_image_encoder_to_device(&enc, ctx))) rc = fail("moving the model to the device", st);
    if (!rc && ctx->device != MREC_DEVICE_CPU)
        fprintf(stderr, "mrec extract-image: running on the GPU (%s)\n", mrec_precision_name(ctx->precision));
    for (int i = 0; !rc && per_item && i < n; i++) {
        const char *id = items.ids[i];
        if (!*id || strchr(id, '/') || !strcmp(id, ".") || !strcmp(id, "..")) {
            fprintf(stderr, "mrec extract-image: %s: item %d: id '%s' cannot be a file name\n", images, i + 1, id);
            rc = 2;
        }
    }
    if (per_item && !rc && (st = mrec_check_unique_ids((const char *const *)items.ids, n, images))) rc = fail("item ids", st);
    /* the output folder first: a bad path, or a folder in use, should not cost the whole run */
    mrec_out_dir od = {.lock_fd = -1};
    if (!rc && (st = mrec_out_begin(&od, out, out_flags))) rc = fail("the output folder", st);
    struct timespec t0, t1;
    mrec_progress prog;
    mrec_progress_start(&prog, "extract-image", n);
    if (loaded) enc.progress = mrec_progress_update, enc.progress_ctx = &prog;
    /* per-item: chunks of whole batches, each encoded then written, so a killed run leaves whole files
     * behind; --resume redoes a chunk unless all its files verify, with the batches of an uninterrupted
     * run, so its files are the same bytes */
    int chunk = per_item ? batch * 8 : n, kept = 0;
    mrec_chunk_progress cp = {&prog, 0, n};
    if (loaded && per_item) enc.progress = mrec_chunk_progress_update, enc.progress_ctx = &cp;
    int64_t shape1[2] = {1, D};
    double embed_secs = 0, write_secs = 0;
    char path[4400];
    for (int i = 0; !rc && i < n; i++) good[i] = 0, errors[i] = NULL;
    for (int first = 0; !rc && first < n; first += chunk) {
        int m = n - first < chunk ? n - first : chunk, done = 0;
        for (int i = first; od.resumed && i < first + m; i++) {
            snprintf(path, sizeof path, "%s/%s.npy", od.scratch, items.ids[i]);
            done += mrec_feature_file_ok(path, D);
        }
        if (od.resumed && done == m) {
            for (int i = first; i < first + m; i++) good[i] = 1;
            for (int i = first; spec->run.keep && !rc && i < first + m; i++) {
                snprintf(path, sizeof path, "%s/%s.npy", od.scratch, items.ids[i]);
                if ((st = mrec_extract_row_read(path, feat + (size_t)i * D, D))) rc = fail("reading a kept item", st);
            }
            kept += m;
            continue;
        }
        cp.offset = first;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if ((st = mrec_image_encoder_embed(ctx, &enc, (const char *const *)items.paths + first, m, feat + (size_t)first * D, good + first,
                                           errors + first)))
            rc = fail("extracting", st);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        embed_secs += (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        double t = mrec_now();
        for (int i = first; !rc && i < first + m; i++)
            if (good[i] && (st = mrec_check_feature_row(feat + (size_t)i * D, D, items.ids[i], model))) rc = fail("checking the features", st);
        for (int i = first; !rc && per_item && i < first + m; i++) {
            if (!good[i]) continue;
            snprintf(path, sizeof path, "%s/%s.npy", od.scratch, items.ids[i]);
            if ((st = mrec_npy_write(path, MREC_NPY_F32, 2, shape1, feat + (size_t)i * D))) rc = fail("writing", st);
        }
        write_secs += mrec_now() - t;
    }
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
        if ((st = mrec_npy_write(path, MREC_NPY_F32, 2, shape, feat))) rc = fail("writing", st);
        snprintf(path, sizeof path, "%s/image_feat_ids.txt", od.scratch);
        mrec_atomic_file af;
        if (!rc && (st = mrec_atomic_begin(&af, path))) rc = fail("writing", st);
        for (int i = 0; !rc && i < n; i++)
            if (good[i]) fprintf(af.f, "%s\n", items.ids[i]);
        if (!rc && (st = mrec_atomic_commit(&af))) rc = fail("writing", st);
    }
    if (!rc && (st = mrec_out_commit(&od))) rc = fail("the output folder", st);
    if (rc) mrec_out_abort(&od);
    if (!rc) {
        double secs = embed_secs;
        fprintf(stderr, "mrec extract-image: %d images (%d-d %s, preset %s) in %.2f s, %.1f images/s\n", n_ok - kept, D,
                mrec_image_layer_name(enc.layer), enc.pre.name, secs, secs > 0 ? (n - kept) / secs : 0);
        fprintf(stderr, "time: decode + encode %.2f s (decoding overlaps the forward passes), write %.2f s\n", secs, write_secs + mrec_now() - t_write);
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
        if ((st = ids ? mrec_extract_result_keep(res, ids, feat, n_ok, D) : mrec_fail(MREC_ERR_NOMEM, "%d ids", n_ok))) rc = fail("memory", st);
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
