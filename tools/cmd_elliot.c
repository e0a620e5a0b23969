/* cmd_elliot.c: `mrec train CONFIG`: an Elliot experiment file, run as Elliot
 * runs it, with mrec's trainer.
 *
 *   experiment:
 *     dataset: baby                       # {0} in paths becomes this
 *     data_config: {strategy: fixed, train_path: ..., validation_path: ..., test_path: ...,
 *                   side_information: [{dataloader: VisualAttribute, visual_features: FOLDER}, ...]}
 *                  (or strategy: dataset, dataset_path: FILE, with splitting)
 *     prefiltering: [{strategy: global_threshold, threshold: 4}, {strategy: iterative_k_core, core: 5}]
 *     splitting: {save_on_disk: True, save_folder: ..., test_splitting: {strategy: random_subsampling,
 *                 test_ratio: 0.2}, validation_splitting: {...}}
 *     top_k: 20
 *     evaluation: {cutoffs: [10, 20], simple_metrics: [Recall, nDCG, HR], relevance_threshold: 0,
 *                  paired_ttest: True, wilcoxon_test: True}
 *     models:
 *       external.LightGCN: {meta: {hyper_opt_alg: grid, validation_rate: 10, validation_metric: Recall@20,
 *                                  save_recs: True, early_stopping: {patience: 5}},
 *                           lr: [0.0005, 0.001], l_w: [1e-5, 1e-2], factors: 64, n_layers: 3, ...}
 *
 * A list-valued hyper-parameter is a grid axis; every grid point is one `mrec train` run, chosen on the
 * validation metric only (on test only when there is no validation split, as Elliot does then). Outputs,
 * under --out (default results/<dataset>): performance/rec_cutoff_<k>_relthreshold_<t>.tsv (the best grid
 * point of each model, on test), performance/grid_cutoff_<k>.tsv (every point, valid and test),
 * performance/bestmodelparams_cutoff_<k>_relthreshold_<t>.json, performance/stat_paired_ttest_cutoff_<k>.tsv
 * and stat_wilcoxon_test_cutoff_<k>.tsv (p-values between the best models, per metric, over test users),
 * recs/<model>.tsv (user, item, rank) with save_recs, runs/<model>/ (each point's own mrec train output),
 * and report.html. The folder is built beside itself and swapped in whole when the experiment is done.
 */
#include "elliot.h"
#include "mrec_parse.h"

#include "../nn/mrec_io.h"
#include "../recsys/mrec_recsys.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_results(const char *path, const experiment *e, point *p) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[8192];
    int n_metrics = e->n_metrics, n_cols = n_metrics * e->n_k, got = 0;
    if (!fgets(line, sizeof line, f)) n_cols = 0;
    while (n_cols && fgets(line, sizeof line, f)) {
        char *save, *tok = strtok_r(line, "\t\n", &save);
        int col = 0, is_test = 0;
        double vals[64];
        int nv = 0;
        for (; tok; tok = strtok_r(NULL, "\t\n", &save), col++) {
            if (col == 1) snprintf(p->params, sizeof p->params, "%s", tok);
            if (col == 2) is_test = !strcmp(tok, "test");
            long epoch;
            if (col == 3 && !mrec_parse_int(tok, 0, 100000000, &epoch)) p->best_epoch = (int)epoch;
            /* an unreadable value leaves the row short, and the row is refused below */
            if (col >= 4 && nv < 64 && mrec_parse_double(tok, -1e300, 1e300, &vals[nv]) == MREC_OK) nv++;
        }
        if (nv != n_cols) break;
        for (int i = 0; i < n_metrics; i++)
            for (int j = 0; j < e->n_k; j++) (is_test ? p->test : p->valid)[i][j] = vals[i * e->n_k + j];
        got |= is_test ? 2 : 1;
        if (is_test && !(got & 1)) memcpy(p->valid, p->test, sizeof p->valid); /* no validation split: chosen on test */
    }
    fclose(f);
    return got & 2 ? 0 : -1;
}

/* recs/<name>.tsv: the run's recommendations as Elliot writes them, one (user, item, rank) a line. */
static mrec_status write_recs(const experiment *e, const char *runs, const char *name) {
    char from[4900], to[4900], line[65536];
    snprintf(from, sizeof from, "%s/%s/recommendations.tsv", runs, name);
    snprintf(to, sizeof to, "%s/%s.tsv", e->recs, name);
    FILE *in = fopen(from, "r");
    if (!in) return mrec_fail(MREC_ERR_IO, "%s: cannot read", from);
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, to);
    if (st) return fclose(in), st;
    FILE *o = af.f;
    while (fgets(line, sizeof line, in)) {
        char *save, *user = strtok_r(line, "\t\n", &save);
        int rank = 1;
        for (char *it = strtok_r(NULL, "\t\n", &save); it; it = strtok_r(NULL, "\t\n", &save)) fprintf(o, "%s\t%s\t%d\n", user, it, rank++);
    }
    fclose(in);
    return mrec_atomic_commit(&af);
}

static int usage(FILE *f) {
    fprintf(f,
            "usage: mrec train CONFIG.yml [--out DIR] [--threads N] [--cache DIR|none] [--epochs N] [--skip-unsupported]\n"
            "                             [--overwrite]\n"
            "\n"
            "Runs an Elliot experiment: data_config (fixed train/validation/test files, or a dataset with\n"
            "splitting), prefiltering, evaluation (cutoffs, simple_metrics, relevance_threshold, paired_ttest,\n"
            "wilcoxon_test), top_k, and models with meta (hyper_opt_alg: grid, validation_rate,\n"
            "validation_metric, save_recs, early_stopping). List-valued hyper-parameters are grid axes; the\n"
            "best point of each model is chosen on validation. Writes under DIR (default results/<dataset>):\n"
            "performance/rec_cutoff_<k>_relthreshold_<t>.tsv (best models, test), grid_cutoff_<k>.tsv (every\n"
            "point), bestmodelparams_*.json, stat_paired_ttest_* and stat_wilcoxon_test_* (p-values over test\n"
            "users), recs/<model>.tsv (with save_recs), runs/<model>/ and report.html. --epochs caps every\n"
            "model's epochs (for a quick look). --skip-unsupported lists and leaves out the models mrec lacks\n"
            "(GRCN, SimGCL, ...) instead of refusing the file. Models: MostPop, ItemKNN, BPRMF, LightGCN, NGCF, VBPR, FREEDOM,\n"
            "LATTICE, BM3, NGCFM (with or without Elliot's 'external.' prefix).\n"
            "DIR is built beside itself and appears whole when the experiment is done; an existing DIR is\n"
            "replaced only with --overwrite (it stays as it was until then), and a second run into DIR at the\n"
            "same time is refused.\n");
    return f == stdout ? 0 : 1;
}

/* Runs the experiment under `root` (a whole Elliot file or the experiment section). */
static const char *report_note;

int mrec_elliot_run(const mrec_cfg *c, const mrec_cfg_node *root, const mrec_experiment_options *o, mrec_best *best_out) {
    const char *out = o->out, *cache = o->cache, *extra_features = o->features;
    int threads = o->threads, max_epochs = o->max_epochs;
    static experiment e;
    memset(&e, 0, sizeof e);
    e.c = c, e.skip_unsupported = o->skip_unsupported;
    if (extra_features) { /* mrec run: the folders the extraction just wrote, unless side_information names others */
        const char *v = strstr(extra_features, "visual="), *t = strstr(extra_features, "textual=");
        if (v) snprintf(e.visual, sizeof e.visual, "%.*s", (int)strcspn(v + 7, ","), v + 7);
        if (t) snprintf(e.textual, sizeof e.textual, "%.*s", (int)strcspn(t + 8, ","), t + 8);
    }
    mrec_status st = elliot_read(&e, root);
    if (st) {
        fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
        return 2;
    }
    /* the results folder is built beside itself and appears whole (mrec_out_begin); a grid is not resumed */
    char final_out[4096];
    if (out) snprintf(final_out, sizeof final_out, "%s", out);
    else snprintf(final_out, sizeof final_out, "results/%s", e.dataset);
    mrec_out_dir od;
    if ((st = mrec_out_begin(&od, final_out, o->out_flags ? MREC_OUT_OVERWRITE : 0))) {
        fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
        return 2;
    }
    if (snprintf(e.out, sizeof e.out, "%s", od.scratch) >= (int)sizeof e.out) {
        fprintf(stderr, "mrec train: %s: path too long\n", final_out);
        mrec_out_abort(&od);
        return 2;
    }
    snprintf(e.perf, sizeof e.perf, "%s/performance", e.out);
    snprintf(e.recs, sizeof e.recs, "%s/recs", e.out);
    char runs[4200];
    snprintf(runs, sizeof runs, "%s/runs", e.out);
    if ((st = mrec_mkdirs(e.perf)) || (st = mrec_mkdirs(runs)) || (st = mrec_mkdirs(e.recs))) {
        fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
        mrec_out_abort(&od);
        return 2;
    }
    /* cut-offs as mrec train takes them; the selection cut-off is among them */
    char ks[128], th[32], thr[32], ep[32];
    size_t at = 0;
    for (int i = 0; i < e.n_k; i++) at += snprintf(ks + at, sizeof ks - at, "%s%d", i ? "," : "", e.k[i]);
    snprintf(th, sizeof th, "%d", threads);
    snprintf(thr, sizeof thr, "%g", e.threshold);
    snprintf(ep, sizeof ep, "%d", max_epochs);
    static point *grid[MAX_MODELS];
    int n_points[MAX_MODELS] = {0}, best[MAX_MODELS], rc = 0;
    double t0 = mrec_now(), train_s = 0, eval_s = 0;
    int done = 0, total_runs = 0;
    for (int mi = 0; mi < e.n_models; mi++) {
        int t = 1;
        for (int a = 0; a < e.models[mi].n_axes; a++) t *= e.models[mi].axis[a]->kind == MREC_CFG_SEQ ? mrec_cfg_count(e.models[mi].axis[a]) : 1;
        total_runs += t;
    }
    for (int mi = 0; mi < e.n_models && !rc; mi++) {
        model_spec *m = &e.models[mi];
        int sizes[MAX_AXES], pick[MAX_AXES] = {0}, total = 1;
        for (int a = 0; a < m->n_axes; a++) total *= sizes[a] = m->axis[a]->kind == MREC_CFG_SEQ ? mrec_cfg_count(m->axis[a]) : 1;
        grid[mi] = calloc((size_t)total, sizeof *grid[mi]);
        best[mi] = -1;
        for (int g = 0; g < total && !rc; g++) {
            for (int a = m->n_axes - 1, r = g; a >= 0; a--) pick[a] = r % sizes[a], r /= sizes[a];
            point *p = &grid[mi][g];
            elliot_point_name(p->name, sizeof p->name, m, pick);
            char dir[4800], store[4][64], *argv[128];
            snprintf(dir, sizeof dir, "%s/%s", runs, p->name);
            int argc = 0;
            argv[argc++] = "train";
            for (int i = 0; i < e.n_data; i++) argv[argc++] = e.data_argv[i];
            char *fixed[] = {"--model", (char *)m->fam->mrec, "--out", dir, "--k", ks, "--metrics", e.metrics, "--select", m->select,
                             "--threshold", thr, "--threads", th, "--per-user"};
            for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) argv[argc++] = fixed[i];
            if (cache) argv[argc++] = "--cache", argv[argc++] = (char *)cache;
            char topk[32];
            snprintf(topk, sizeof topk, "%d", e.top_k);
            if (m->save_recs) argv[argc++] = "--save-topk", argv[argc++] = topk;
            if ((st = elliot_point_args(&e, m, pick, store, argv, &argc))) {
                fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
                rc = 2;
                break;
            }
            if (max_epochs > 0) argv[argc++] = "--epochs", argv[argc++] = ep; /* the later --epochs wins */
            argv[argc] = NULL;
            printf("== %s (%d/%d)\n", p->name, g + 1, total);
            fflush(stdout);
            int r = mrec_cmd_train(argc, argv);
            char res[4900];
            snprintf(res, sizeof res, "%s/results.tsv", dir);
            if (r || read_results(res, &e, p)) {
                fprintf(stderr, "mrec train: %s failed (exit %d)\n", p->name, r);
                rc = r ? r : 2;
                break;
            }
            int sel = 0, sel_k = 0; /* the selection metric's column */
            char sname[32];
            int sk = 0;
            sscanf(m->select, "%31[^@]@%d", sname, &sk);
            for (int i = 0; i < e.n_metrics; i++)
                if (!strcmp(elliot_metric(e.metric_elliot[i]), sname)) sel = i;
            for (int j = 0; j < e.n_k; j++)
                if (e.k[j] == sk) sel_k = j;
            if (best[mi] < 0 || p->valid[sel][sel_k] > grid[mi][best[mi]].valid[sel][sel_k]) best[mi] = g;
            n_points[mi] = g + 1;
            snprintf(res, sizeof res, "%s/timing.tsv", dir);
            FILE *tf = fopen(res, "r");
            double tr = 0, ev = 0;
            if (tf && fscanf(tf, "%*s %*s %*s %lf %lf", &tr, &ev) == 2) train_s += tr, eval_s += ev;
            if (tf) fclose(tf);
            done++;
            double spent = mrec_now() - t0;
            printf("progress: %d of %d runs, %.0f s, ETA %.0f s\n", done, total_runs, spent, spent / done * (total_runs - done));
        }
    }
    if (!rc && (st = elliot_write_tables(&e, grid, n_points, best))) rc = 2, fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
    /* recs and significance over the best models */
    point bests[MAX_MODELS];
    int nb = 0;
    for (int m = 0; !rc && m < e.n_models; m++) {
        if (best[m] < 0) continue;
        bests[nb++] = grid[m][best[m]];
        if (e.models[m].save_recs && (st = write_recs(&e, runs, grid[m][best[m]].name))) rc = 2, fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
    }
    if (!rc && (st = elliot_write_stats(&e, runs, bests, nb))) rc = 2, fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
    if (!rc) {
        /* the table a user reads first */
        int n_metrics = e.n_metrics;
        printf("\nbest of each model (chosen on %s; test split):\n%-40s", e.models[0].select, "model");
        for (int i = 0; i < n_metrics; i++) printf(" %9s@%-3d", e.metric_elliot[i], e.k[e.n_k - 1]);
        printf("\n");
        for (int m = 0; m < e.n_models; m++) {
            if (best[m] < 0) continue;
            printf("%-40.40s", grid[m][best[m]].name);
            for (int i = 0; i < n_metrics; i++) printf(" %13.4f", grid[m][best[m]].test[i][e.n_k - 1]);
            printf("\n");
        }
        printf("time: %.1f s training, %.1f s evaluating, %.1f s in all (%d runs)\nresults: %s\n", train_s, eval_s, mrec_now() - t0, done,
               final_out);
        const char *names[MAX_MODELS], *metrics[8];
        double values[MAX_MODELS * 8];
        int nm = 0;
        for (int i = 0; i < n_metrics; i++) metrics[i] = e.metric_elliot[i];
        for (int m = 0; m < e.n_models; m++) {
            if (best[m] < 0) continue;
            names[nm] = grid[m][best[m]].name;
            for (int i = 0; i < n_metrics; i++) values[nm * n_metrics + i] = grid[m][best[m]].test[i][e.n_k - 1];
            nm++;
        }
        if (best_out) {
            memset(best_out, 0, sizeof *best_out);
            best_out->n_metrics = n_metrics, best_out->k = e.k[e.n_k - 1];
            for (int i = 0; i < n_metrics; i++) snprintf(best_out->metric[i], sizeof best_out->metric[0], "%s", metrics[i]);
            for (int m = 0; m < nm && m < MREC_MAX_BEST; m++, best_out->n++) {
                snprintf(best_out->model[m], sizeof best_out->model[0], "%s", names[m]);
                for (int i = 0; i < n_metrics; i++) best_out->value[m][i] = values[m * n_metrics + i];
            }
        }
        char title[256];
        snprintf(title, sizeof title, "mrec: %s", e.dataset);
        mrec_report rep = {.out = e.out, .title = title, .runs = runs, .select = e.models[0].select, .models = names, .metrics = metrics,
                           .values = values, .n_models = nm, .n_metrics = n_metrics, .k = e.k[e.n_k - 1], .note = report_note};
        if ((st = mrec_report_write(&rep))) fprintf(stderr, "mrec train: %s\n", mrec_error_detail()), rc = 2;
    }
    if (!rc && (st = mrec_out_commit(&od))) fprintf(stderr, "mrec train: %s\n", mrec_error_detail()), rc = 2;
    mrec_out_abort(&od);
    for (int m = 0; m < e.n_models; m++) free(grid[m]);
    return rc;
}

int mrec_config_command_args(int argc, char **argv, const char *cmd, int with_weights, mrec_experiment_options *o, const char **config) {
    memset(o, 0, sizeof *o);
    *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 0;
        int takes_value = !strcmp(argv[i], "--out") || (with_weights && !strcmp(argv[i], "--weights")) || !strcmp(argv[i], "--threads") ||
                          !strcmp(argv[i], "--cache") || !strcmp(argv[i], "--epochs");
        if (takes_value && mrec_opt_missing(cmd, argv[i], i + 1 < argc ? argv[i + 1] : NULL)) return 1;
        if (!strcmp(argv[i], "--out") && i + 1 < argc) o->out = argv[++i];
        else if (with_weights && !strcmp(argv[i], "--weights") && i + 1 < argc) o->weights = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if (mrec_opt_int(cmd, argv[i], argv[i + 1], 0, 1024, &o->threads)) return 1;
            i++;
        }
        else if (!strcmp(argv[i], "--cache") && i + 1 < argc) o->cache = argv[++i];
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) {
            if (mrec_opt_int(cmd, argv[i], argv[i + 1], 1, 1000000, &o->max_epochs)) return 1;
            i++;
        }
        else if (!strcmp(argv[i], "--skip-unsupported")) o->skip_unsupported = 1;
        else if (mrec_out_flag(argv[i], &o->out_flags)) continue;
        else if (argv[i][0] != '-' && !*config) *config = argv[i];
        else return fprintf(stderr, "mrec %s: unexpected '%s'\n", cmd, argv[i]), 1;
    }
    return *config ? -1 : 1;
}

int mrec_cmd_experiment(int argc, char **argv) {
    const char *config;
    mrec_experiment_options o;
    int how = mrec_config_command_args(argc, argv, "train", 0, &o, &config);
    if (how >= 0) return usage(how ? stderr : stdout);
    mrec_cfg c;
    if (mrec_cfg_load(&c, config)) {
        fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
        return 2;
    }
    int rc = mrec_elliot_run(&c, c.root, &o, NULL);
    mrec_cfg_free(&c);
    return rc;
}
