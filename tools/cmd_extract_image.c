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
 *
 * This file is the command's front: its options parse into a spec for
 * mrec_extract_image_run (extract_pipeline.c), which does the run.
 */
#include "mrec_extract_pipeline.h"
#include "mrec_options.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include <stdio.h>
#include <string.h>

enum { I_MODEL, I_IMAGES, I_OUT, I_PRESET, I_LAYER, I_FORMAT, I_ID, I_PATH, I_SIZE, I_MEAN, I_STD, I_BATCH, I_THREADS, I_DECODE, I_STRICT,
       I_OVERWRITE, I_RESUME, I_DEVICE, I_PRECISION, N_OPTIONS };

static const mrec_option OPTIONS[N_OPTIONS] = {
    [I_MODEL] = {"--model", MREC_OPT_PATH, "PATH", "a torchvision ResNet (safetensors) or a Hugging Face ViT or CLIP folder", .allow_dir = 1,
                 .section = "options"},
    [I_IMAGES] = {"--images", MREC_OPT_PATH, "DIR|TABLE", "a folder of .jpg / .jpeg / .png, or a table of ids and paths", .allow_dir = 1},
    [I_OUT] = {"--out", MREC_OPT_TEXT, "DIR", "the output folder"},
    [I_PRESET] = {"--preset", MREC_OPT_TEXT, "NAME", "ducho-resnet, torchvision, hf-vit, hf-clip or hf-align", "the model's"},
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
    [I_DECODE] = {"--decode-threads", MREC_OPT_INT, "N", "threads decoding images a batch ahead of the encoder (at most --threads)", "2", 1, 16},
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
    "(Resize 256 + CenterCrop 224), hf-vit (default for ViT), hf-clip, hf-align (ALIGN); hf- presets read the model's\n"
    "preprocessor_config.json. Images that cannot be decoded are listed and skipped; --strict stops\n"
    "instead, before anything is written. matrix writes DIR/image_feat.npy (one row per item, in\n"
    "item order) and DIR/image_feat_ids.txt; per-item writes DIR/<id>.npy of shape (1, dim).\n"
    "--size resizes straight to H x W (a preset without a crop; Ducho's reshape); --mean and --std\n"
    "replace the preset's normalization (in [0, 1] units, like torchvision's Normalize).\n"
    "DIR is built beside itself and appears whole when the run succeeds; an existing DIR is replaced\n"
    "only with --overwrite (and stays as it was until then). A second run into DIR at the same time is\n"
    "refused. --resume (per-item) takes up the items a killed run finished (or DIR's, when it is\n"
    "complete), keeping the files that verify, and redoes the rest. A NaN or infinite feature stops the\n"
    "run, naming the item, with nothing written. In bf16 ResNet runs channels-last in bf16 (a GPU with bf16\n"
    "tensor cores, a CPU with AVX-512 BF16), elsewhere its convolutions take bf16 products of fp32 activations\n"
    "on a CPU and TF32 on a GPU.\n",
    OPTIONS, N_OPTIONS, 0};

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
