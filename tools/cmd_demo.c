/* cmd_demo.c: `mrec demo`: the whole job on the data that ships in data/,
 * in a few minutes on two cores, next to the published numbers.
 *
 * 1. Amazon Baby (MMRec's Baby interactions, DiffMM's split): MostPop, BPRMF
 *    and LightGCN from an Elliot config. Their test Recall@20 / nDCG@20 are
 *    printed beside MMRec's table, which shares the data but not the split
 *    (DiffMM re-split MMRec's interactions at random), and their values on
 *    x_label 1, the file DiffMM tests on, beside DiffMM's Table 1, which was
 *    measured on this very split.
 * 2. H&M (a real purchase sample with product texts), when the MiniLM
 *    checkpoint is in weights/: an mrec run config extracts text features
 *    and trains BPRMF, VBPR and FREEDOM on a leave-one-out split.
 * The configs are written to the output folder first, so the run can be read
 * and repeated with `mrec train` / `mrec run`; the demo runs them as those
 * commands do and prints the results they hand back.
 */
#include "../nn/mrec_io.h"
#include "mrec_options.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { D_OUT, D_DATA, D_WEIGHTS, D_THREADS, N_DEMO_OPTIONS };

static const mrec_option OPTIONS[N_DEMO_OPTIONS] = {
    [D_OUT] = {"--out", MREC_OPT_TEXT, "DIR", "results, the configs used and report.html", "mrec-demo", .section = "options"},
    [D_DATA] = {"--data", MREC_OPT_TEXT, "DIR", "the folder holding baby/ and hm/", "data/ beside weights/"},
    [D_WEIGHTS] = {"--weights", MREC_OPT_TEXT, "DIR", "checkpoints", "weights/ beside the binary"},
    [D_THREADS] = {"--threads", MREC_OPT_INT, "N", "threads", "0 (one per core)", 0, 1024},
};

static const mrec_command DEMO = {
    "demo", "usage: mrec demo [--out DIR] [--data DIR] [--weights DIR] [--threads N]\n",
    "Trains MostPop, BPRMF and LightGCN on Amazon Baby (data/baby: MMRec's Baby interactions, DiffMM's\n"
    "split) with few epochs and prints test Recall@20 and nDCG@20 next to MMRec's published values (same\n"
    "data, other split), and the values on DiffMM's test file next to DiffMM's (same split); then, when\n"
    "weights/sentence-transformers/all-MiniLM-L6-v2 exists (make weights), extracts text features\n"
    "of the H&M sample (data/hm) and trains BPRMF, VBPR and FREEDOM with them.\n",
    OPTIONS, N_DEMO_OPTIONS, 0};

static int write_text(const char *path, const char *text) {
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (!st) {
        fputs(text, af.f);
        st = mrec_atomic_commit(&af);
    }
    if (st) fprintf(stderr, "mrec demo: %s\n", mrec_error_detail());
    return !st;
}

/* Prints model, Recall@20, nDCG@20 of the best models (test, or with valid their validation values);
 * published[i] = {model, Recall, nDCG} under the heading pub_label. */
static void print_results(const mrec_best *b, int valid, const char *pub_label, const char *const published[][3], int n_pub) {
    printf("\n%-12s %10s %10s   %s\n", "model", "Recall@20", "nDCG@20", n_pub ? pub_label : "");
    for (int m = 0; m < b->n; m++) {
        char name[512];
        snprintf(name, sizeof name, "%s", b->model[m]);
        name[strcspn(name, "_")] = 0;
        const char *pr = "", *pn = "";
        for (int i = 0; i < n_pub; i++)
            if (!strcmp(published[i][0], name)) pr = published[i][1], pn = published[i][2];
        const double *v = valid ? b->valid[m] : b->value[m];
        printf("%-12s %10.4f %10.4f   %s%s%s\n", name, v[0], v[1], pr, *pr ? " / " : "", pn);
    }
}

/* An Elliot config (run: an mrec run config) written by the demo, run with its results in memory. */
static int run_config(const char *path, int run, const mrec_experiment_options *o, mrec_best *best) {
    mrec_cfg c;
    if (mrec_cfg_load(&c, path)) {
        fprintf(stderr, "mrec demo: %s\n", mrec_error_detail());
        return 2;
    }
    int rc = run ? mrec_run_config(&c, o, best) : mrec_elliot_run(&c, c.root, o, best);
    mrec_cfg_free(&c);
    return rc;
}

int mrec_cmd_demo(int argc, char **argv) {
    mrec_opt_value v[N_DEMO_OPTIONS];
    int rc = mrec_options_parse(&DEMO, argc, argv, v, NULL, NULL, NULL);
    if (rc == MREC_OPTS_HELP) return 0;
    if (rc) return rc;
    const char *out = v[D_OUT].given ? v[D_OUT].text : "mrec-demo", *data = v[D_DATA].text, *weights = v[D_WEIGHTS].text;
    /* the demo's folders are its own: a second demo replaces the first one's results */
    mrec_experiment_options o = {.threads = (int)v[D_THREADS].i, .cache = "none", .out_flags = MREC_OUT_OVERWRITE};
    mrec_best best;
    /* data/ beside weights/ (the repository's, for bin/mrec) */
    char data_dir[4200], path[4400], config[16384];
    if (!weights) weights = mrec_weights_dir();
    if (data) snprintf(data_dir, sizeof data_dir, "%s", data);
    else snprintf(data_dir, sizeof data_dir, "%.*s/data", (int)(strrchr(mrec_weights_dir(), '/') - mrec_weights_dir()), mrec_weights_dir());
    snprintf(path, sizeof path, "%s/baby/train.tsv", data_dir);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "mrec demo: %s: not found; run from the repository (bin/mrec) or give --data DIR\n", path);
        return 2;
    }
    if (mrec_mkdirs(out)) {
        fprintf(stderr, "mrec demo: %s\n", mrec_error_detail());
        return 2;
    }
    double t0 = mrec_now();
    printf("mrec demo, part 1: Amazon Baby (19,445 users, 7,050 items): MMRec's Baby interactions, DiffMM's split\n"
           "(DiffMM re-split MMRec's interactions at random with MMRec's per-user sizes; MMRec's own split was drawn\n"
           "without a seed and cannot be rebuilt, so MMRec's table shares the data, not the test set).\n"
           "BPRMF 30 epochs, LightGCN 20 epochs (MMRec trains up to 1000 with early stopping; bench/reproduce.sh\n"
           "runs that), so the values land near, not on, the published ones.\n\n");
    snprintf(config, sizeof config,
             "experiment:\n"
             "  dataset: baby\n"
             "  data_config:\n"
             "    strategy: fixed\n"
             "    train_path: %s/baby/train.tsv\n"
             "    validation_path: %s/baby/val.tsv\n"
             "    test_path: %s/baby/test.tsv\n"
             "  top_k: 20\n"
             "  evaluation:\n"
             "    cutoffs: [20]\n"
             "    simple_metrics: [Recall, nDCGRendle2020]\n"
             "  models:\n"
             "    MostPop:\n"
             "      meta: {validation_metric: Recall@20}\n"
             "    BPRMF:\n"
             "      meta: {validation_rate: 10, validation_metric: Recall@20}\n"
             "      lr: 0.001\n"
             "      l_w: 0.1\n"
             "      epochs: 30\n"
             "      factors: 64\n"
             "      batch_size: 2048\n"
             "      seed: 999\n"
             "    LightGCN:\n"
             "      meta: {validation_rate: 5, validation_metric: Recall@20}\n"
             "      lr: 0.01\n"
             "      l_w: 0.01\n"
             "      n_layers: 3\n"
             "      epochs: 20\n"
             "      factors: 64\n"
             "      batch_size: 2048\n"
             "      seed: 999\n",
             data_dir, data_dir, data_dir);
    snprintf(path, sizeof path, "%s/baby.yml", out);
    if (!write_text(path, config)) return 2;
    char res[4400];
    snprintf(res, sizeof res, "%s/baby", out);
    o.out = res;
    if ((rc = run_config(path, 0, &o, &best))) return rc;
    static const char *const mmrec[][3] = {{"BPRMF", ".0575", ".0249"}, {"LightGCN", ".0754", ".0328"}};
    static const char *const diffmm[][3] = {{"BPRMF", ".0440", ".0200"}, {"LightGCN", ".0698", ".0319"}};
    printf("\nTest (x_label 2, test.tsv), epoch chosen on x_label 1 (MMRec's protocol):");
    print_results(&best, 0, "MMRec, published (same data, other split)", mmrec, 2);
    printf("\nDiffMM's test file (x_label 1, val.tsv; DiffMM never reads x_label 2), best epoch on it:");
    print_results(&best, 1, "DiffMM Table 1 (same split; MF-BPR for BPRMF)", diffmm, 2);
    printf("\nThe spread from one random split to another: bench/reproduce.sh baby-draws-demo trains BPRMF and LightGCN\n"
           "on 5 draws of MMRec's rule and says whether each published value lies within it (README, Amazon Baby).\n");

    /* part 2: multimodal, with the text encoder if present */
    char minilm[4400];
    snprintf(minilm, sizeof minilm, "%s/sentence-transformers/all-MiniLM-L6-v2/model.safetensors", weights);
    if (access(minilm, R_OK) != 0) {
        printf("\npart 2 (features and multimodal models) needs %s:\n"
               "`make weights` downloads it (or weights/fetch sentence-transformers/all-MiniLM-L6-v2).\n",
               minilm);
    } else {
        printf("\nmrec demo, part 2: H&M sample (721 customers, 1,674 articles): MiniLM text features, then BPRMF, VBPR\n"
               "and FREEDOM, each customer's last purchase held out for test and the one before for validation.\n"
               "No published numbers exist for this sample.\n\n");
        snprintf(config, sizeof config,
                 "extract:\n"
                 "  dataset_path: %s/hm\n"
                 "  textual:\n"
                 "    items:\n"
                 "      input_path: items.tsv\n"
                 "      item_column: item\n"
                 "      text_column: description\n"
                 "      output_path: %s/hm_features\n"
                 "      model:\n"
                 "        - {model_name: sentence-transformers/all-MiniLM-L6-v2, output_layers: 1, backend: sentence_transformers}\n"
                 "experiment:\n"
                 "  dataset: hm\n"
                 "  data_config: {strategy: dataset, dataset_path: %s/hm/interactions.tsv}\n"
                 "  splitting:\n"
                 "    test_splitting: {strategy: temporal_hold_out, leave_n_out: 1}\n"
                 "    validation_splitting: {strategy: temporal_hold_out, leave_n_out: 1}\n"
                 "  top_k: 20\n"
                 "  evaluation: {cutoffs: [20], simple_metrics: [Recall, nDCGRendle2020]}\n"
                 "  models:\n"
                 "    BPRMF: {meta: {validation_rate: 10, validation_metric: Recall@20}, lr: 0.005, l_w: 1e-4, epochs: 100, factors: 64,\n"
                 "            batch_size: 512, seed: 999}\n"
                 "    VBPR: {meta: {validation_rate: 10, validation_metric: Recall@20}, lr: 0.005, l_w: 1e-4, epochs: 100, factors: 64,\n"
                 "           batch_size: 512, seed: 999}\n"
                 "    FREEDOM: {meta: {validation_rate: 10, validation_metric: Recall@20}, lr: 0.005, l_w: 1e-4, epochs: 100, factors: 64,\n"
                 "              batch_size: 512, seed: 999}\n",
                 data_dir, out, data_dir);
        snprintf(path, sizeof path, "%s/hm.yml", out);
        if (!write_text(path, config)) return 2;
        snprintf(res, sizeof res, "%s/hm", out);
        o.out = res, o.weights = weights;
        if ((rc = run_config(path, 1, &o, &best))) return rc;
        print_results(&best, 0, "", NULL, 0);
    }
    printf("\ndemo done in %.0f s; configs, tables and report.html under %s/\n", mrec_now() - t0, out);
    return 0;
}
