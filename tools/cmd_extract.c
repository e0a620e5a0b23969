/* cmd_extract.c: `mrec extract-text`: an item table in, one embedding per
 * item out, Ducho- or MMRec-style.
 *
 *   mrec extract-text --model DIR --input FILE --id-column C --text-column C --out DIR
 *                     [--format matrix|per-item] [--pooling mean|cls|pooler] [--normalize]
 *                     [--layer embeds|projected|pooler (CLIP)]
 *                     [--batch-size 32] [--empty embed|skip] [--threads N] [--overwrite] [--resume]
 *                     [--device auto|cpu|cuda] [--precision fp32|tf32|bf16]
 * matrix:   DIR/text_feat.npy (items, dim), rows in the table's order, and DIR/text_feat_ids.txt
 * per-item: DIR/<id>.npy of shape (1, dim) for each item (Ducho's layout)
 * DIR is an output folder (mrec_out_begin): built beside itself, it appears whole, so the matrix and
 * its ids always come together; per-item runs embed and write in chunks that --resume can skip.
 */
#include "../extractors/mrec_extract.h"
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

enum { T_MODEL, T_INPUT, T_ID, T_TEXT, T_OUT, T_FORMAT, T_POOLING, T_NORMALIZE, T_LAYER, T_EMPTY, T_BATCH, T_THREADS, T_OVERWRITE, T_RESUME,
       T_DEVICE, T_PRECISION, N_OPTIONS };

static const mrec_option OPTIONS[N_OPTIONS] = {
    [T_MODEL] = {"--model", MREC_OPT_PATH, "DIR", "a BERT-family folder (sentence-transformers or Hugging Face) or a CLIP folder",
                 .allow_dir = 1, .section = "options"},
    [T_INPUT] = {"--input", MREC_OPT_PATH, "FILE", "the item table, CSV or TSV"},
    [T_ID] = {"--id-column", MREC_OPT_TEXT, "C", "the column of item ids"},
    [T_TEXT] = {"--text-column", MREC_OPT_TEXT, "C", "the column of texts"},
    [T_OUT] = {"--out", MREC_OPT_TEXT, "DIR", "the output folder"},
    [T_FORMAT] = {"--format", MREC_OPT_ENUM, "matrix|per-item", "DIR/text_feat.npy and text_feat_ids.txt, or DIR/<id>.npy", "matrix",
                  .choices = "matrix|per-item"},
    [T_POOLING] = {"--pooling", MREC_OPT_ENUM, "mean|cls|pooler", "a BERT-family model's pooling", "the folder's sentence-transformers setting",
                   .choices = "mean|cls|pooler"},
    [T_NORMALIZE] = {"--normalize", MREC_OPT_SWITCH, NULL, "L2-normalize each embedding", "the folder's sentence-transformers setting"},
    [T_LAYER] = {"--layer", MREC_OPT_ENUM, "embeds|projected|pooler", "a CLIP model's output", "embeds", .choices = "embeds|projected|pooler"},
    [T_EMPTY] = {"--empty", MREC_OPT_ENUM, "embed|skip", "an empty text is embedded as the empty string, or left out", "embed",
                 .choices = "embed|skip"},
    [T_BATCH] = {"--batch-size", MREC_OPT_INT, "N", "texts per batch", "32", 1, 4096},
    [T_THREADS] = {"--threads", MREC_OPT_INT, "N", "threads", "0 (one per core)", 0, 1024},
    [T_OVERWRITE] = {"--overwrite", MREC_OPT_SWITCH, NULL, "replace an existing DIR (it stays as it was until the new one is whole)"},
    [T_RESUME] = {"--resume", MREC_OPT_SWITCH, NULL, "per-item: take up the items a killed run finished"},
    [T_DEVICE] = MREC_OPTION_DEVICE,
    [T_PRECISION] = MREC_OPTION_PRECISION,
};

static const mrec_command COMMAND = {
    "extract-text",
    "usage: mrec extract-text --model DIR --input FILE --id-column C --text-column C --out DIR [options]\n",
    "Embeds the text column of a CSV / TSV item table with a BERT-family model folder\n"
    "(sentence-transformers or Hugging Face) or a CLIP folder. Pooling, normalization and the\n"
    "maximum length default to the folder's sentence-transformers settings; CLIP gives text_embeds\n"
    "(--layer embeds: projected and L2-normalized, as Ducho saves them), projected or pooler. matrix writes DIR/text_feat.npy\n"
    "(one row per item, in table order) and DIR/text_feat_ids.txt; per-item writes DIR/<id>.npy.\n"
    "Empty texts are embedded as the empty string (--empty embed) or left out (--empty skip);\n"
    "either way they are counted on standard error. DIR is built beside itself and appears whole when\n"
    "the run succeeds; an existing DIR is replaced only with --overwrite (and stays as it was until\n"
    "then). A second run into DIR at the same time is refused. --resume (per-item) takes up the items a\n"
    "killed run finished (or DIR's, when it is complete), keeping the files that verify, and redoes the rest.\n"
    "A NaN or infinite feature stops the run, naming the item, with nothing written.\n",
    OPTIONS, N_OPTIONS, 0};

static int fail(const char *what, mrec_status st) {
    fprintf(stderr, "mrec extract-text: %s: %s: %s\n", what, mrec_strerror(st), mrec_error_detail());
    return st == MREC_ERR_NOMEM ? 3 : 2;
}

/* The command's front: the option table into a spec. */
int mrec_cmd_extract_text(int argc, char **argv) {
    mrec_opt_value v[N_OPTIONS];
    int rc = mrec_options_parse(&COMMAND, argc, argv, v, NULL, NULL, NULL);
    if (rc == MREC_OPTS_HELP) return 0;
    if (rc) return rc;
    mrec_text_extract_spec s = {.run = mrec_extract_defaults()};
    s.run.model = v[T_MODEL].text, s.input = v[T_INPUT].text, s.id_column = v[T_ID].text, s.text_column = v[T_TEXT].text, s.run.out = v[T_OUT].text;
    s.run.per_item = v[T_FORMAT].given && !strcmp(v[T_FORMAT].text, "per-item");
    s.pooling = v[T_POOLING].text, s.layer = v[T_LAYER].text, s.skip_empty = v[T_EMPTY].given && !strcmp(v[T_EMPTY].text, "skip");
    s.normalize = v[T_NORMALIZE].given ? 1 : -1;
    if (v[T_BATCH].given) s.run.batch_size = (int)v[T_BATCH].i;
    s.run.threads = (int)v[T_THREADS].i;
    s.run.out_flags = (v[T_OVERWRITE].given ? MREC_OUT_OVERWRITE : 0) | (v[T_RESUME].given ? MREC_OUT_RESUME : 0);
    mrec_context_options o = mrec_context_defaults();
    s.run.device_given = mrec_options_device(&v[T_DEVICE], &v[T_PRECISION], &o);
    s.run.device = o.device, s.run.precision = o.precision;
    if (!s.run.model || !s.input || !s.id_column || !s.text_column || !s.run.out) {
        fprintf(stderr, "mrec extract-text: --model, --input, --id-column, --text-column and --out are needed (mrec extract-text --help)\n");
        return 1;
    }
    return mrec_extract_text_run(&s, NULL);
}

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
    if (!ctx && (st = mrec_context_create(&own_ctx, &o))) return fail("the device", st);
    if (!ctx) ctx = own_ctx;
    if (own_ctx && ctx->notice[0] && (spec->run.device_given || o.precision != MREC_PREC_FP32 || mrec_cuda_compiled()))
        fprintf(stderr, "mrec extract-text: %s\n", ctx->notice);
    mrec_table table;
    if ((st = mrec_table_read(&table, input, 0))) {
        mrec_context_destroy(own_ctx);
        return fail("reading the table", st);
    }
    int ci, ct;
    if ((st = mrec_table_column(&table, id_col, input, &ci)) || (st = mrec_table_column(&table, text_col, input, &ct))) {
        mrec_table_free(&table), mrec_context_destroy(own_ctx);
        return fail("columns", st);
    }
    mrec_text_encoder enc;
    if ((st = mrec_text_encoder_load(&enc, model))) {
        mrec_table_free(&table), mrec_context_destroy(own_ctx);
        return fail("loading the model", st);
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
        else {
            fprintf(stderr, "mrec extract-text: --pooling %s: %s\n", pooling,
                    strcmp(pooling, "pooler") ? "not mean, cls or pooler" : "this checkpoint has no pooler");
            mrec_text_encoder_free(&enc), mrec_table_free(&table), mrec_context_destroy(own_ctx);
            return 2;
        }
    }
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
    if (!texts || !rows || !emb) rc = fail("memory", mrec_fail(MREC_ERR_NOMEM, "%d texts", table.n_rows));
    else if ((st = mrec_text_encoder_to_device(&enc, ctx))) rc = fail("moving the model to the device", st);
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
        rc = fail("item ids", st);
    free(item_ids);
    /* the output folder first: a bad path, or a folder in use, should not cost the whole embedding run */
    mrec_out_dir od = {.lock_fd = -1};
    if (!rc && (st = mrec_out_begin(&od, out, out_flags))) rc = fail("the output folder", st);
    struct timespec t0, t1;
    mrec_progress prog;
    mrec_progress_start(&prog, "extract-text", n);
    enc.progress = mrec_progress_update, enc.progress_ctx = &prog;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!rc && !per_item && (st = mrec_text_encoder_embed(ctx, &enc, texts, n, emb))) rc = fail("embedding", st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double t_write = mrec_now(), embed_secs = 0;
    int kept = 0; /* items a resumed run found written */
    char path[4400];
    if (!rc && !per_item) {
        for (int i = 0; i < n && !rc; i++)
            if ((st = mrec_check_feature_row(emb + (size_t)i * D, D, table.cells[(size_t)rows[i] * table.n_cols + ci], model)))
                rc = fail("checking the features", st);
        int64_t shape[2] = {n, D};
        snprintf(path, sizeof path, "%s/text_feat.npy", od.scratch);
        if (!rc && (st = mrec_npy_write(path, MREC_NPY_F32, 2, shape, emb))) rc = fail("writing", st);
        snprintf(path, sizeof path, "%s/text_feat_ids.txt", od.scratch);
        mrec_atomic_file af;
        if (!rc && (st = mrec_atomic_begin(&af, path))) rc = fail("writing", st);
        for (int i = 0; !rc && i < n; i++) fprintf(af.f, "%s\n", table.cells[(size_t)rows[i] * table.n_cols + ci]);
        if (!rc && (st = mrec_atomic_commit(&af))) rc = fail("writing", st);
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
                    if ((st = mrec_extract_row_read(path, emb + (size_t)i * D, D))) rc = fail("reading a kept item", st);
                }
                kept += m;
                continue;
            }
            cp.offset = first;
            double t = mrec_now();
            if ((st = mrec_text_encoder_embed(ctx, &enc, texts + first, m, emb + (size_t)first * D))) rc = fail("embedding", st);
            embed_secs += mrec_now() - t;
            for (int i = first; !rc && i < first + m; i++) {
                const char *id = table.cells[(size_t)rows[i] * table.n_cols + ci];
                snprintf(path, sizeof path, "%s/%s.npy", od.scratch, id);
                if ((st = mrec_check_feature_row(emb + (size_t)i * D, D, id, model))) rc = fail("checking the features", st);
                else if ((st = mrec_npy_write(path, MREC_NPY_F32, 2, shape, emb + (size_t)i * D))) rc = fail("writing", st);
            }
        }
        if (kept) fprintf(stderr, "mrec extract-text: --resume: kept %d of %d items already written\n", kept, n);
        t_write += embed_secs; /* the write time leaves out the encoding */
    }
    if (!rc && (st = mrec_out_commit(&od))) rc = fail("the output folder", st);
    if (rc) mrec_out_abort(&od);
    if (!rc) {
        double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9 + embed_secs;
        char how[64];
        snprintf(how, sizeof how, "%s%s", enc.is_clip ? "CLIP " : "", enc.is_clip ? mrec_clip_output_name(enc.clip_output)
                                                         : enc.pooling == MREC_POOL_MEAN ? "mean pooling"
                                                         : enc.pooling == MREC_POOL_CLS  ? "cls pooling"
                                                                                         : "pooler");
        fprintf(stderr, "mrec extract-text: %d items embedded (%d-d, %s%s) in %.2f s, %.1f items/s\n", n - kept, D, how,
                enc.normalize ? ", normalized" : "", secs, secs > 0 ? (n - kept) / secs : 0);
        fprintf(stderr, "time: tokenize + encode %.2f s, write %.2f s\n", secs, mrec_now() - t_write);
        if (n_empty)
            fprintf(stderr, "mrec extract-text: %d items had empty text: %s\n", n_empty,
                    !skip_empty ? "embedded the empty string" : "left out (not in the output)");
    }
    res->n_items = table.n_rows, res->n_embedded = rc ? 0 : n - kept, res->n_kept = kept, res->n_empty = n_empty, res->dim = D;
    if (!rc && spec->run.keep) {
        /* the rows are the table's cells, which leave with the table */
        for (int i = 0; i < n; i++) texts[i] = table.cells[(size_t)rows[i] * table.n_cols + ci];
        if ((st = mrec_extract_result_keep(res, texts, emb, n, D))) rc = fail("memory", st);
    }
    if (res == &scratch_result) mrec_extract_result_free(res);
    free(texts), free(rows), free(emb);
    mrec_text_encoder_free(&enc); /* before the context its weights may be on */
    mrec_context_destroy(own_ctx);
    mrec_table_free(&table);
    return rc;
}
