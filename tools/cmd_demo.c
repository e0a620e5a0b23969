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
 * and repeated with `mrec train` / `mrec run`.
 */
#include "../nn/mrec_io.h"
#include "mrec_parse.h"
#include "mrec_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(FILE *f) {
    fprintf(f,
            "usage: mrec demo [--out DIR] [--data DIR] [--weights DIR] [--threads N]\n"
            "\n"
            "Trains MostPop, BPRMF and LightGCN on Amazon Baby (data/baby: MMRec's Baby interactions, DiffMM's\n"
            "split) with few epochs and prints test Recall@20 and nDCG@20 next to MMRec's published values (same\n"
            "data, other split), and the values on DiffMM's test file next to DiffMM's (same split); then, when\n"
            "weights/sentence-transformers/all-MiniLM-L6-v2 exists (make weights), extracts text features\n"
            "of the H&M sample (data/hm) and trains BPRMF, VBPR and FREEDOM with them. Results, the configs\n"
            "used and report.html go to DIR (default mrec-demo).\n");
    return f == stdout ? 0 : 1;
}

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

/* Prints model, Recall@20, nDCG@20 from a table of DIR/performance: rec_cutoff_20_relthreshold_0.tsv
 * (model, test Recall, test nDCG) with col 1, or grid_cutoff_20.tsv (model, best epoch, valid Recall,
 * valid nDCG, ...) with col 2; published[i] = {model, Recall, nDCG} under the heading pub_label. */
static void print_results(const char *dir, const char *table, int col, const char *pub_label,
                          const char *const published[][3], int n_pub) {
    char path[4400], line[4096];
    snprintf(path, sizeof path, "%s/performance/%s", dir, table);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("(no results: %s is missing)\n", path);
        return;
    }
    printf("\n%-12s %10s %10s   %s\n", "model", "Recall@20", "nDCG@20", n_pub ? pub_label : "");
    while (fgets(line, sizeof line, f)) {
        char *field[16];
        int n = 0;
        for (char *tok = strtok(line, "\t\r\n"); tok && n < 16; tok = strtok(NULL, "\t\r\n")) field[n++] = tok;
        if (n < col + 2 || !strcmp(field[0], "model")) continue;
        char name[512], *end0, *end1;
        double v[2] = {strtod(field[col], &end0), strtod(field[col + 1], &end1)};
        if (*end0 || *end1) continue;
        snprintf(name, sizeof name, "%s", field[0]);
        name[strcspn(name, "_")] = 0;
        const char *pr = "", *pn = "";
        for (int i = 0; i < n_pub; i++)
            if (!strcmp(published[i][0], name)) pr = published[i][1], pn = published[i][2];
        printf("%-12s %10.4f %10.4f   %s%s%s\n", name, v[0], v[1], pr, *pr ? " / " : "", pn);
    }
    fclose(f);
}

int mrec_cmd_demo(int argc, char **argv) {
    const char *out = "mrec-demo", *data = NULL, *weights = NULL;
    char threads[16] = "0";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout);
        int takes_value = !strcmp(argv[i], "--out") || !strcmp(argv[i], "--data") || !strcmp(argv[i], "--weights") || !strcmp(argv[i], "--threads");
        if (takes_value && mrec_opt_missing("demo", argv[i], i + 1 < argc ? argv[i + 1] : NULL)) return 1;
        int n_threads;
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--weights") && i + 1 < argc) weights = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) { /* checked here, before anything runs */
            if (mrec_opt_int("demo", argv[i], argv[i + 1], 0, 1024, &n_threads)) return 1;
            snprintf(threads, sizeof threads, "%d", n_threads), i++;
        }
        else {
            fprintf(stderr, "mrec demo: unexpected '%s'\n", argv[i]);
            return usage(stderr);
        }
    }
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
    /* the demo's folder is its own: a second demo replaces the first one's results */
    char *args[] = {"train", path, "--out", res, "--threads", threads, "--cache", "none", "--overwrite", NULL};
    int rc = mrec_cmd_experiment(9, args);
    if (rc) return rc;
    static const char *const mmrec[][3] = {{"BPRMF", ".0575", ".0249"}, {"LightGCN", ".0754", ".0328"}};
    static const char *const diffmm[][3] = {{"BPRMF", ".0440", ".0200"}, {"LightGCN", ".0698", ".0319"}};
    printf("\nTest (x_label 2, test.tsv), epoch chosen on x_label 1 (MMRec's protocol):");
    print_results(res, "rec_cutoff_20_relthreshold_0.tsv", 1, "MMRec, published (same data, other split)", mmrec, 2);
    printf("\nDiffMM's test file (x_label 1, val.tsv; DiffMM never reads x_label 2), best epoch on it:");
    print_results(res, "grid_cutoff_20.tsv", 2, "DiffMM Table 1 (same split; MF-BPR for BPRMF)", diffmm, 2);
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
        char *run_args[] = {"run", path, "--out", res, "--threads", threads, "--cache", "none", "--weights", (char *)weights, "--overwrite", NULL};
        rc = mrec_cmd_run(11, run_args);
        if (rc) return rc;
        snprintf(res, sizeof res, "%s/hm/all-MiniLM-L6-v2", out);
        print_results(res, "rec_cutoff_20_relthreshold_0.tsv", 1, "", NULL, 0);
    }
    printf("\ndemo done in %.0f s; configs, tables and report.html under %s/\n", mrec_now() - t0, out);
    return 0;
}
