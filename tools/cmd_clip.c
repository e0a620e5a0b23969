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
 *
 * This file is the command's front: its options parse into a spec for
 * mrec_extract_clip_run (extract_pipeline.c), which does the run.
 */
#include "../extractors/mrec_extract.h"
#include "../extractors/mrec_image_encoder.h"
#include "mrec_extract_pipeline.h"
#include "mrec_options.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    [C_DECODE] = {"--decode-threads", MREC_OPT_INT, "N", "threads decoding images a batch ahead of the encoder (at most --threads)", "2", 1, 16},
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
