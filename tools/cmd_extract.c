/* cmd_extract.c: `mrec extract-text`: an item table in, one embedding per
 * item out, Ducho- or MMRec-style.
 *
 *   mrec extract-text --model DIR --input FILE --id-column C --text-column C --out DIR
 *                     [--format matrix|per-item] [--pooling mean|cls|pooler|embeds] [--normalize]
 *                     [--layer embeds|projected|pooler (CLIP)]
 *                     [--batch-size 32] [--empty embed|skip] [--threads N] [--overwrite] [--resume]
 *                     [--device auto|cpu|cuda] [--precision fp32|tf32|bf16]
 * matrix:   DIR/text_feat.npy (items, dim), rows in the table's order, and DIR/text_feat_ids.txt
 * per-item: DIR/<id>.npy of shape (1, dim) for each item (Ducho's layout)
 * DIR is an output folder (mrec_out_begin): built beside itself, it appears whole, so the matrix and
 * its ids always come together; per-item runs embed and write in chunks that --resume can skip.
 *
 * This file is the command's front: its options parse into a spec for
 * mrec_extract_text_run (extract_pipeline.c), which does the run.
 */
#include "mrec_extract_pipeline.h"
#include "mrec_options.h"
#include "mrec_tools.h"

#include <stdio.h>
#include <string.h>

enum { T_MODEL, T_INPUT, T_ID, T_TEXT, T_OUT, T_FORMAT, T_POOLING, T_NORMALIZE, T_LAYER, T_EMPTY, T_BATCH, T_THREADS, T_OVERWRITE, T_RESUME,
       T_DEVICE, T_PRECISION, N_OPTIONS };

static const mrec_option OPTIONS[N_OPTIONS] = {
    [T_MODEL] = {"--model", MREC_OPT_PATH, "DIR", "a BERT-family folder (sentence-transformers, Hugging Face, ALIGN, AltCLIP) or a CLIP folder",
                 .allow_dir = 1, .section = "options"},
    [T_INPUT] = {"--input", MREC_OPT_PATH, "FILE", "the item table, CSV or TSV"},
    [T_ID] = {"--id-column", MREC_OPT_TEXT, "C", "the column of item ids"},
    [T_TEXT] = {"--text-column", MREC_OPT_TEXT, "C", "the column of texts"},
    [T_OUT] = {"--out", MREC_OPT_TEXT, "DIR", "the output folder"},
    [T_FORMAT] = {"--format", MREC_OPT_ENUM, "matrix|per-item", "DIR/text_feat.npy and text_feat_ids.txt, or DIR/<id>.npy", "matrix",
                  .choices = "matrix|per-item"},
    [T_POOLING] = {"--pooling", MREC_OPT_ENUM, "mean|cls|pooler|embeds", "a BERT-family model's pooling (embeds: ALIGN's and AltCLIP's projected first token)", "the folder's sentence-transformers setting",
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
