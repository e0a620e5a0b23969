/* cmd_elliot.c: `mrec train CONFIG`: an Elliot experiment file, run as Elliot
 * runs it, with mrec's trainer.
 *
 *   experiment:
 *     dataset: baby                       # {0} in paths becomes this
 *     data_config: {strategy: fixed, train_path: ..., validation_path: ..., test_path: ...,
 *                   side_information: [{dataloader: VisualAttribute, visual_features: FOLDER}, ...]}
 *                  (or strategy: dataset, dataset_path: FILE, with splitting)
 *     prefiltering: [{strategy: global_threshold, threshold: 4}, {strategy: iterative_k_core, core: 5}]
 *                   (also user_k_core, item_k_core, n_rounds_k_core with rounds; applied in order)
 *     splitting: {save_on_disk: True, save_folder: ..., test_splitting: {strategy: random_subsampling,
 *                 test_ratio: 0.2}, validation_splitting: {...}}
 *                (random_subsampling and temporal_hold_out with test_ratio or leave_n_out, random_subsampling and
 *                 random_cross_validation with folds, fixed_timestamp with timestamp: SECONDS|DATE|best; Elliot's
 *                 splitter draw for draw, recsys/split_elliot.c)
 *     top_k: 20
 *     evaluation: {cutoffs: [10, 20], simple_metrics: [Recall, nDCG, HR], relevance_threshold: 0,
 *                  paired_ttest: True, wilcoxon_test: True}
 *     models:
 *       external.LightGCN: {meta: {hyper_opt_alg: grid, validation_rate: 10, validation_metric: Recall@20,
 *                                  save_recs: True, early_stopping: {patience: 5}},
 *                           lr: [0.0005, 0.001], l_w: [1e-5, 1e-2], factors: 64, n_layers: 3, ...}
 *
 * A list-valued hyper-parameter is a grid axis; every grid point is one training run, chosen on the
 * validation metric only (on test only when there is no validation split, as Elliot does then). Outputs,
 * under --out (default results/<dataset>): performance/rec_cutoff_<k>_relthreshold_<t>.tsv (the best grid
 * point of each model, on test), performance/grid_cutoff_<k>.tsv (every point, valid and test),
 * performance/bestmodelparams_cutoff_<k>_relthreshold_<t>.json, performance/stat_paired_ttest_cutoff_<k>.tsv
 * and stat_wilcoxon_test_cutoff_<k>.tsv (p-values between the best models, per metric, over test users),
 * recs/<model>.tsv (user, item, rank) with save_recs, runs/<model>/ (each point's own run folder, as mrec
 * train writes it; runs/<T>/<V>/<model>/ with folds), and report.html. The folder is built beside itself and swapped in whole when the
 * experiment is done. Every point trains through mrec_train and hands its results back in memory; the
 * best point of each model keeps its run (top lists, per-user metrics, curve) for the tables after.
 */
#include "elliot.h"
#include "mrec_options.h"
#include "mrec_parse.h"

#include "../nn/mrec_io.h"
#include "../recsys/mrec_recsys.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { C_OUT, C_WEIGHTS, C_THREADS, C_DEVICE, C_PRECISION, C_CACHE, C_EPOCHS, C_SKIP, C_OVERWRITE, C_RESUME, N_CONFIG_OPTIONS };

/* The options of mrec train CONFIG and mrec run CONFIG (--weights only for run). */
static const mrec_option CONFIG_OPTIONS[N_CONFIG_OPTIONS] = {
    [C_OUT] = {"--out", MREC_OPT_TEXT, "DIR", "the results folder: built beside itself, it appears whole at the end", "results/<dataset>",
               .section = "options"},
    [C_WEIGHTS] = {"--weights", MREC_OPT_TEXT, "DIR", "where model_name folders are looked up", "weights/ beside the binary"},
    [C_THREADS] = {"--threads", MREC_OPT_INT, "N", "threads", "0 (one per core)", 0, 1024},
    [C_DEVICE] = {"--device", MREC_OPT_ENUM, "auto|cpu|cuda",
                  "where every model trains and ranks (and mrec run extracts), over the config's gpu key: cuda refuses a model "
                  "without a GPU path, auto takes the CPU then", "the config's gpu key (-1: cpu; a GPU number: auto)",
                  .choices = "auto|cpu|cuda"},
    [C_PRECISION] = {"--precision", MREC_OPT_ENUM, "fp32|tf32|bf16",
                     "the GEMMs' precision in training and ranking (and in mrec run's extraction): tf32 on a GPU, bf16 on a GPU or a "
                     "CPU with AVX-512 BF16", "fp32", .choices = "fp32|tf32|bf16"},
    [C_CACHE] = {"--cache", MREC_OPT_TEXT, "DIR|none", "kNN item graphs kept between runs", "$MREC_CACHE, else ~/.cache/mrec"},
    [C_EPOCHS] = {"--epochs", MREC_OPT_INT, "N", "caps every model's epochs (for a quick look)", NULL, 1, 1000000},
    [C_SKIP] = {"--skip-unsupported", MREC_OPT_SWITCH, NULL, "models (and encoders) mrec lacks are listed and left out, not refused"},
    [C_OVERWRITE] = {"--overwrite", MREC_OPT_SWITCH, NULL, "replace an existing DIR (it stays as it was until the new one is whole)"},
    [C_RESUME] = {"--resume", MREC_OPT_SWITCH, NULL, "take up a killed extraction's items; an experiment runs again whole"},
};

int mrec_config_command_args(int argc, char **argv, const char *cmd, const char *usage, const char *notes, mrec_experiment_options *o,
                             const char **config) {
    mrec_option opts[N_CONFIG_OPTIONS];
    int n = 0, with_weights = !strcmp(cmd, "run"), row[N_CONFIG_OPTIONS];
    for (int i = 0; i < N_CONFIG_OPTIONS; i++)
        if (i != C_WEIGHTS || with_weights) row[i] = n, opts[n++] = CONFIG_OPTIONS[i];
    if (!with_weights) row[C_WEIGHTS] = -1;
    mrec_command c = {cmd, usage, notes, opts, n, 1};
    mrec_opt_value v[N_CONFIG_OPTIONS];
    const char *pos[1];
    int n_pos = 0, rc = mrec_options_parse(&c, argc, argv, v, NULL, pos, &n_pos);
    memset(o, 0, sizeof *o);
    *config = NULL;
    if (rc == MREC_OPTS_HELP) return 0;
    if (rc) return rc;
    if (!n_pos) return fprintf(stderr, "mrec %s: a config file is needed (mrec %s CONFIG.yml --help)\n", cmd, cmd), 1;
    *config = pos[0];
    o->out = v[row[C_OUT]].text, o->cache = v[row[C_CACHE]].text;
    if (with_weights) o->weights = v[row[C_WEIGHTS]].text;
    o->threads = (int)v[row[C_THREADS]].i, o->max_epochs = (int)v[row[C_EPOCHS]].i;
    o->skip_unsupported = v[row[C_SKIP]].given;
    o->out_flags = (v[row[C_OVERWRITE]].given ? MREC_OUT_OVERWRITE : 0) | (v[row[C_RESUME]].given ? MREC_OUT_RESUME : 0);
    /* the parser checked both against their choices, so these cannot fail */
    if ((o->device_given = v[row[C_DEVICE]].given)) mrec_device_request_parse(v[row[C_DEVICE]].text, &o->device);
    if ((o->precision_given = v[row[C_PRECISION]].given)) mrec_precision_parse(v[row[C_PRECISION]].text, &o->precision);
    return -1;
}

static const char NOTES[] =
    "Runs an Elliot experiment: data_config (fixed train/validation/test files, or a dataset with\n"
    "splitting), prefiltering, evaluation (cutoffs, simple_metrics, relevance_threshold, paired_ttest,\n"
    "wilcoxon_test), top_k, and models with meta (hyper_opt_alg: grid, validation_rate,\n"
    "validation_metric, save_recs, save_weights, restore, early_stopping). List-valued\n"
    "hyper-parameters are grid axes; the best point of each model is chosen on validation. Writes\n"
    "under DIR (default results/<dataset>): performance/rec_cutoff_<k>_relthreshold_<t>.tsv (best\n"
    "models, test), grid_cutoff_<k>.tsv (every point), bestmodelparams_*.json, stat_paired_ttest_*\n"
    "and stat_wilcoxon_test_* (p-values over test users; the *_adjusted_* files add Bonferroni, Holm\n"
    "and Benjamini-Hochberg), recs/<model>.tsv (with save_recs), weights/<point>/ (with\n"
    "save_weights: a saved model, as mrec train --save writes it; restore evaluates the weights of\n"
    "the existing DIR without training), runs/<model>/ and report.html. --skip-unsupported lists\n"
    "and leaves out the models mrec lacks (DualGNN, DRAGON, ...) instead of refusing the file.\n"
    "DIR is built beside itself and appears whole when the experiment is done; an existing DIR is\n"
    "replaced only with --overwrite (it stays as it was until then), and a second run into DIR at the\n"
    "same time is refused.\n";

/* The usage line and the models with their Elliot keys, from the registry. */
static const char *usage_lines(void) {
    static char text[8192];
    if (text[0]) return text;
    size_t at = (size_t)snprintf(text, sizeof text,
                                 "usage: mrec train CONFIG.yml [--out DIR] [--threads N] [--device auto|cpu|cuda] [--precision fp32|tf32|bf16]\n"
                                 "                             [--cache DIR|none] [--epochs N] [--skip-unsupported] [--overwrite]\n"
                                 "\nmodels (with or without Elliot's 'external.') and the keys each takes:\n");
    for (int i = 0; i < mrec_model_count() && at < sizeof text; i++) {
        const mrec_model_entry *e = mrec_model_at(i);
        at += (size_t)snprintf(text + at, sizeof text - at, "  %-9s", e->elliot);
        for (int p = 0; p < MREC_MODEL_MAX_PARAMS && at < sizeof text; p++)
            if (e->params[p].elliot) at += (size_t)snprintf(text + at, sizeof text - at, " %s", e->params[p].elliot);
        for (int f = 0; f < MREC_MODEL_MAX_FIXED && e->fixed[f].key && at < sizeof text; f++)
            at += (size_t)snprintf(text + at, sizeof text - at, " %s", e->fixed[f].key);
        if (e->needs != MREC_NEEDS_NONE && at < sizeof text) at += (size_t)snprintf(text + at, sizeof text - at, " modalities loaders");
        if (at < sizeof text) at += (size_t)snprintf(text + at, sizeof text - at, "\n");
    }
    if (at < sizeof text) snprintf(text + at, sizeof text - at, "\n");
    return text;
}


/* Every grid point of every model: its spec built and checked, so a bad value stops the run before the first trains. */
static mrec_status check_points(const experiment *e, int *total_runs) {
    *total_runs = 0;
    for (int mi = 0; mi < e->n_models; mi++) {
        const model_spec *m = &e->models[mi];
        int sizes[MAX_AXES], pick[MAX_AXES] = {0}, total = 1;
        for (int a = 0; a < m->n_axes; a++) total *= sizes[a] = m->axis[a]->kind == MREC_CFG_SEQ ? mrec_cfg_count(m->axis[a]) : 1;
        for (int g = 0; g < total; g++) {
            for (int a = m->n_axes - 1, r = g; a >= 0; a--) pick[a] = r % sizes[a], r /= sizes[a];
            mrec_train_spec s;
            mrec_status st = elliot_point_spec(e, m, pick, &s);
            if (st) return st;
        }
        *total_runs += total;
    }
    return MREC_OK;
}

int mrec_elliot_run(const mrec_cfg *c, const mrec_cfg_node *root, const mrec_experiment_options *o, mrec_best *best_out) {
    const char *out = o->out, *extra_features = o->features;
    static experiment e;
    memset(&e, 0, sizeof e);
    e.c = c, e.skip_unsupported = o->skip_unsupported;
    if (extra_features) { /* mrec run: the folders the extraction just wrote, unless side_information names others */
        const char *v = strstr(extra_features, "visual="), *t = strstr(extra_features, "textual=");
        if (v) snprintf(e.visual, sizeof e.visual, "%.*s", (int)strcspn(v + 7, ","), v + 7);
        if (t) snprintf(e.textual, sizeof e.textual, "%.*s", (int)strcspn(t + 8, ","), t + 8);
    }
    int total_runs = 0;
    mrec_status st = elliot_read(&e, root);
    if (!st) st = check_points(&e, &total_runs);
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
    /* Elliot's folds: each grid point trains on every (test fold, validation fold); its results are the mean over
     * the validation folds of a test fold, and a model's best is the best point of the test fold whose best point
     * is best (run.py: the argmin of the losses across test folds, each fold's own search first). */
    int n_test = e.folds[0] > 0 ? e.folds[0] : 1, n_valid = e.folds[1] > 0 ? e.folds[1] : 1, folded = n_test * n_valid > 1;
    static point *grid[MAX_MODELS];
    static mrec_train_result best_run[MAX_MODELS]; /* the best point's run of each model (its last validation fold) */
    memset(best_run, 0, sizeof best_run);
    int n_points[MAX_MODELS] = {0}, best[MAX_MODELS], best_fold[MAX_MODELS] = {0}, rc = 0;
    double t0 = mrec_now(), train_s = 0, eval_s = 0;
    int done = 0;
    total_runs *= n_test * n_valid;
    for (int mi = 0; mi < e.n_models && !rc; mi++) {
        model_spec *m = &e.models[mi];
        int sizes[MAX_AXES], pick[MAX_AXES] = {0}, total = 1;
        for (int a = 0; a < m->n_axes; a++) total *= sizes[a] = m->axis[a]->kind == MREC_CFG_SEQ ? mrec_cfg_count(m->axis[a]) : 1;
        grid[mi] = calloc((size_t)total * n_test, sizeof *grid[mi]);
        best[mi] = -1;
        if (!grid[mi]) rc = 3, fprintf(stderr, "mrec train: out of memory for %d grid points\n", total);
        for (int gt = 0; gt < total * n_test && !rc; gt++) {
            int t = gt / total, g = gt % total;
            for (int a = m->n_axes - 1, r = g; a >= 0; a--) pick[a] = r % sizes[a], r /= sizes[a];
            point *p = &grid[mi][gt];
            elliot_point_name(p->name, sizeof p->name, m, pick);
            double test_sum[8][MAX_K] = {{0}}, valid_sum[8][MAX_K] = {{0}};
            mrec_train_result r;
            memset(&r, 0, sizeof r);
            mrec_train_spec s;
            for (int v = 0; v < n_valid && !rc; v++) {
                elliot_point_spec(&e, m, pick, &s); /* checked above */
                if (o->max_epochs > 0) s.params.v[MREC_HP_EPOCHS] = (mrec_param_value){.x = {o->max_epochs}, .given = 1};
                s.threads = o->threads, s.cache = o->cache, s.log = mrec_train_log_stdout, s.notice = mrec_train_notice_stderr;
                if (o->device_given) s.device = o->device;
                if (o->precision_given) s.precision = o->precision;
                s.split_fold[0] = t, s.split_fold[1] = v;
                if (folded) printf("== %s (%d/%d, test fold %d of %d, validation fold %d of %d)\n", p->name, g + 1, total, t + 1, n_test,
                                   v + 1, n_valid);
                else printf("== %s (%d/%d)\n", p->name, g + 1, total);
                fflush(stdout);
                /* Elliot's restore: the weights a previous run of this experiment saved, evaluated without training */
                char weights_in[8400], weights_out[8400];
                snprintf(weights_in, sizeof weights_in, "%s/weights/%s", final_out, p->name);
                snprintf(weights_out, sizeof weights_out, "%s/weights/%s", e.out, p->name);
                if (m->restore) s.restore = weights_in, s.restore_only = 1;
                /* the point's own folder, as mrec train writes it (runs/T/V/<point> with folds) */
                char dir[4400 + 520], parent[4400];
                snprintf(parent, sizeof parent, folded ? "%s/%d/%d" : "%s", runs, t, v);
                snprintf(dir, sizeof dir, "%s/%s", parent, p->name);
                mrec_out_dir pod = {.lock_fd = -1};
                mrec_train_result_free(&r); /* the previous validation fold's */
                memset(&r, 0, sizeof r);
                if ((st = mrec_mkdirs(parent)) || (st = mrec_out_begin(&pod, dir, 0)))
                    rc = mrec_train_fail("train", &(mrec_train_result){.stage = "the output folder"}, st);
                if (!rc && (st = mrec_train(&s, &r))) rc = mrec_train_fail("train", &r, st);
                if (!rc && (st = mrec_train_write(pod.scratch, &s, &r))) rc = mrec_train_fail("train", &(mrec_train_result){.stage = "writing"}, st);
                if (!rc && (st = mrec_out_commit(&pod))) rc = mrec_train_fail("train", &(mrec_train_result){.stage = "the output folder"}, st);
                mrec_out_abort(&pod);
                /* Elliot's save_weights: weights/<point>/, a saved model (mrec recommend, serve and restore read it) */
                if (!rc && m->save_weights && ((st = mrec_mkdirs(weights_out)) || (st = mrec_train_save(weights_out, &r))))
                    rc = mrec_train_fail("train", &(mrec_train_result){.stage = "save_weights"}, st);
                if (rc) break;
                for (int i = 0; i < e.n_metrics; i++)
                    for (int j = 0; j < e.n_k; j++) {
                        test_sum[i][j] += r.test.value[s.metrics[i]][j];
                        /* no validation split: chosen on test, as Elliot does then */
                        valid_sum[i][j] += r.selected_on_test ? r.test.value[s.metrics[i]][j] : r.valid.value[s.metrics[i]][j];
                    }
                train_s += r.train_seconds, eval_s += r.eval_seconds;
                done++;
                double spent = mrec_now() - t0;
                printf("progress: %d of %d runs, %.0f s, ETA %.0f s\n", done, total_runs, spent, spent / done * (total_runs - done));
            }
            if (rc) {
                fprintf(stderr, "mrec train: %s failed (exit %d)\n", p->name, rc);
                mrec_train_result_free(&r);
                break;
            }
            snprintf(p->params, sizeof p->params, "%s", r.params);
            p->best_epoch = r.best_epoch;
            for (int i = 0; i < e.n_metrics; i++)
                for (int j = 0; j < e.n_k; j++)
                    p->test[i][j] = elliot_as_printed(test_sum[i][j] / n_valid), p->valid[i][j] = elliot_as_printed(valid_sum[i][j] / n_valid);
            int sel = 0, sel_k = 0; /* the selection metric's column */
            for (int i = 0; i < e.n_metrics; i++)
                if (s.metrics[i] == m->select_metric) sel = i;
            for (int j = 0; j < e.n_k; j++)
                if (e.k[j] == m->select_k) sel_k = j;
            /* the first best in (test fold, point) order is run.py's choice: each fold's first best, then the first best fold */
            if (best[mi] < 0 || p->valid[sel][sel_k] > grid[mi][best_fold[mi] * total + best[mi]].valid[sel][sel_k]) {
                best[mi] = g, best_fold[mi] = t;
                mrec_train_result_free(&best_run[mi]);
                best_run[mi] = r;
            } else {
                mrec_train_result_free(&r);
            }
        }
        if (!rc) n_points[mi] = total;
        if (!rc && folded && best[mi] >= 0) printf("%s: the best point is in test fold %d of %d\n", m->name, best_fold[mi] + 1, n_test);
    }
    /* the tables are the chosen test fold's, as Elliot writes that fold's search */
    point *tables[MAX_MODELS];
    for (int mi = 0; mi < e.n_models; mi++) tables[mi] = grid[mi] ? grid[mi] + (size_t)best_fold[mi] * n_points[mi] : NULL;
    if (!rc && (st = elliot_write_tables(&e, tables, n_points, best))) rc = 2, fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
    /* recs and significance over the best models */
    point bests[MAX_MODELS];
    const mrec_train_result *best_runs[MAX_MODELS];
    int nb = 0;
    for (int m = 0; !rc && m < e.n_models; m++) {
        if (best[m] < 0) continue;
        bests[nb] = tables[m][best[m]], best_runs[nb++] = &best_run[m];
        if (e.models[m].save_recs && (st = elliot_write_recs(&e, tables[m][best[m]].name, &best_run[m])))
            rc = 2, fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
    }
    if (!rc && (st = elliot_write_stats(&e, bests, best_runs, nb))) rc = 2, fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
    if (!rc) {
        /* the table a user reads first */
        int n_metrics = e.n_metrics;
        printf("\nbest of each model (chosen on %s; test split):\n%-40s", e.models[0].select, "model");
        for (int i = 0; i < n_metrics; i++) printf(" %9s@%-3d", e.metric_elliot[i], e.k[e.n_k - 1]);
        printf("\n");
        for (int m = 0; m < e.n_models; m++) {
            if (best[m] < 0) continue;
            printf("%-40.40s", tables[m][best[m]].name);
            for (int i = 0; i < n_metrics; i++) printf(" %13.4f", tables[m][best[m]].test[i][e.n_k - 1]);
            printf("\n");
        }
        printf("time: %.1f s training, %.1f s evaluating, %.1f s in all (%d runs)\nresults: %s\n", train_s, eval_s, mrec_now() - t0, done,
               final_out);
        const char *names[MAX_MODELS], *metrics[8];
        const mrec_history_point *history[MAX_MODELS];
        double values[MAX_MODELS * 8], valid[MAX_MODELS * 8];
        int nm = 0, n_history[MAX_MODELS];
        for (int i = 0; i < n_metrics; i++) metrics[i] = e.metric_elliot[i];
        for (int m = 0; m < e.n_models; m++) {
            if (best[m] < 0) continue;
            names[nm] = tables[m][best[m]].name;
            history[nm] = best_run[m].history, n_history[nm] = best_run[m].n_history;
            for (int i = 0; i < n_metrics; i++)
                values[nm * n_metrics + i] = tables[m][best[m]].test[i][e.n_k - 1], valid[nm * n_metrics + i] = tables[m][best[m]].valid[i][e.n_k - 1];
            nm++;
        }
        if (best_out) {
            memset(best_out, 0, sizeof *best_out);
            best_out->n_metrics = n_metrics, best_out->k = e.k[e.n_k - 1];
            for (int i = 0; i < n_metrics; i++) snprintf(best_out->metric[i], sizeof best_out->metric[0], "%s", metrics[i]);
            for (int m = 0; m < nm && m < MREC_MAX_BEST; m++, best_out->n++) {
                snprintf(best_out->model[m], sizeof best_out->model[0], "%s", names[m]);
                for (int i = 0; i < n_metrics; i++) best_out->value[m][i] = values[m * n_metrics + i], best_out->valid[m][i] = valid[m * n_metrics + i];
            }
        }
        char title[256];
        snprintf(title, sizeof title, "mrec: %s", e.dataset);
        mrec_report rep = {.out = e.out, .title = title, .select = e.models[0].select, .history = history, .n_history = n_history,
                           .models = names, .metrics = metrics, .values = values, .n_models = nm, .n_metrics = n_metrics,
                           .k = e.k[e.n_k - 1]};
        if ((st = mrec_report_write(&rep))) fprintf(stderr, "mrec train: %s\n", mrec_error_detail()), rc = 2;
    }
    if (!rc && (st = mrec_out_commit(&od))) fprintf(stderr, "mrec train: %s\n", mrec_error_detail()), rc = 2;
    mrec_out_abort(&od);
    for (int m = 0; m < e.n_models; m++) free(grid[m]), grid[m] = NULL, mrec_train_result_free(&best_run[m]);
    return rc;
}

int mrec_cmd_experiment(int argc, char **argv) {
    const char *config;
    mrec_experiment_options o;
    int how = mrec_config_command_args(argc, argv, "train", usage_lines(), NOTES, &o, &config);
    if (how >= 0) return how;
    mrec_cfg c;
    if (mrec_cfg_load(&c, config)) {
        fprintf(stderr, "mrec train: %s\n", mrec_error_detail());
        return 2;
    }
    int rc = mrec_elliot_run(&c, c.root, &o, NULL);
    mrec_cfg_free(&c);
    return rc;
}
