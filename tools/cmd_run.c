/* cmd_run.c: `mrec run CONFIG`: extraction and experiment in one file.
 *
 *   extract:      # a Ducho config (mrec extract)
 *     dataset_path: data/hm
 *     textual: {items: {input_path: items.tsv, item_column: item, text_column: description,
 *               model: [{model_name: sentence-transformers/all-MiniLM-L6-v2}]}}
 *   experiment:   # an Elliot experiment (mrec train), without side_information
 *     dataset: hm
 *     ...
 *
 * The extraction runs first; its output folders become the experiment's
 * features, so no path is written twice. With several extractors per
 * modality, the experiment runs once per combination (each visual with each
 * textual), in OUT/<combination>/, so the models can be compared across
 * extractors; OUT/summary.tsv lists them all.
 */
#include "../nn/mrec_io.h"
#include "mrec_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] = "usage: mrec run CONFIG.yml [--out DIR] [--weights DIR] [--threads N] [--device auto|cpu|cuda]\n"
                            "                           [--precision fp32|tf32|bf16] [--cache DIR|none] [--epochs N]\n"
                            "                           [--skip-unsupported] [--overwrite] [--resume]\n";

static const char NOTES[] =
    "Runs the extract: section (a Ducho config, as mrec extract) and then the experiment: section\n"
    "(an Elliot experiment, as mrec train) with the extracted features as side information: once\n"
    "per combination of a visual and a textual extractor, in DIR/<visual>+<textual>/ (DIR defaults\n"
    "to results/<dataset>). Multimodal models use what the combination gives. DIR and each extracted\n"
    "folder are built beside themselves and appear whole; existing ones are replaced only with\n"
    "--overwrite, and a second run into them at the same time is refused. --resume takes up the items\n"
    "of a killed extraction (see mrec extract); the experiment is run again whole.\n";

/* The short name of an extractor for folder names: its model_name's last part. */
static const char *short_name(const char *model) {
    const char *slash = strrchr(model, '/');
    return slash ? slash + 1 : model;
}

int mrec_run_config(const mrec_cfg *c, const mrec_experiment_options *o, mrec_best *all) {
    const char *out = o->out;
    static const char *const top[] = {"extract", "experiment", NULL};
    mrec_status st = mrec_cfg_check_keys(c, c->root, "the run config", top);
    const mrec_cfg_node *ex = mrec_cfg_get(c->root, "extract"), *xp = mrec_cfg_get(c->root, "experiment");
    if (!st && (!ex || !xp)) st = mrec_fail(MREC_ERR_FORMAT, "%s: a run config has an extract: and an experiment: section", c->path);
    if (!st && mrec_cfg_get(xp, "data_config") && mrec_cfg_get(mrec_cfg_get(xp, "data_config"), "side_information"))
        st = mrec_fail(MREC_ERR_FORMAT, "%s: line %d: in a run config the features come from extract:; leave side_information out", c->path,
                       mrec_cfg_get(mrec_cfg_get(xp, "data_config"), "side_information")->line);
    if (st) {
        fprintf(stderr, "mrec run: %s\n", mrec_error_detail());
        return 2;
    }
    static mrec_extracted got;
    mrec_ducho_options xo = mrec_ducho_defaults();
    xo.weights = o->weights, xo.threads = o->threads, xo.skip_unsupported = o->skip_unsupported, xo.out_flags = o->out_flags;
    if (o->device_given) xo.device = o->device, xo.device_given = 1;
    if (o->precision_given) xo.precision = o->precision, xo.precision_given = 1;
    int rc = mrec_ducho_run(c, ex, &xo, &got);
    if (rc) return rc;
    /* combinations: each visual with each textual; one modality alone when the other is absent */
    int vis[MREC_MAX_EXTRACTED], txt[MREC_MAX_EXTRACTED], nv = 0, nt = 0;
    for (int i = 0; i < got.n; i++) {
        if (!strcmp(got.modality[i], "visual")) vis[nv++] = i;
        if (!strcmp(got.modality[i], "textual")) txt[nt++] = i;
    }
    const char *dataset = "run";
    mrec_cfg_string(c, xp, "dataset", 0, &dataset);
    char final_base[4096], base[4200], summary[4400];
    snprintf(final_base, sizeof final_base, "%s", out ? out : "");
    if (!out) snprintf(final_base, sizeof final_base, "results/%s", dataset);
    /* the results folder is built beside itself and appears whole (mrec_out_begin) */
    mrec_out_dir od;
    if ((st = mrec_out_begin(&od, final_base, o->out_flags ? MREC_OUT_OVERWRITE : 0))) {
        fprintf(stderr, "mrec run: %s\n", mrec_error_detail());
        return 2;
    }
    snprintf(base, sizeof base, "%s", od.scratch);
    snprintf(summary, sizeof summary, "%s/summary.tsv", base);
    mrec_atomic_file sum_file;
    if ((st = mrec_atomic_begin(&sum_file, summary))) {
        fprintf(stderr, "mrec run: %s\n", mrec_error_detail());
        mrec_out_abort(&od);
        return 2;
    }
    FILE *sum = sum_file.f;
    fprintf(sum, "features\tmodel\tmetric@k\tvalue\n");
    /* the report across extractors: a row per (model, features) */
    static char rows[64][300];
    static double values[64 * 8];
    const char *row_names[64], *short_names[64], *metrics[8];
    static char shorts[64][160];
    int n_rows = 0;
    mrec_best best = {0};
    if (all) memset(all, 0, sizeof *all);
    for (int a = 0; a < (nv ? nv : 1) && !rc; a++)
        for (int b = 0; b < (nt ? nt : 1) && !rc; b++) {
            char features[8400] = "", label[600] = "", dir[4800];
            if (nv) snprintf(features, sizeof features, "visual=%s", got.folder[vis[a]]);
            if (nt) snprintf(features + strlen(features), sizeof features - strlen(features), "%stextual=%s", nv ? "," : "", got.folder[txt[b]]);
            snprintf(label, sizeof label, "%s%s%s", nv ? short_name(got.model[vis[a]]) : "", nv && nt ? "+" : "", nt ? short_name(got.model[txt[b]]) : "");
            snprintf(dir, sizeof dir, "%s/%s", base, label);
            printf("\n=== features: %s\n", label);
            mrec_experiment_options eo = *o;
            eo.out = dir, eo.features = features, eo.out_flags = 0; /* a fresh folder inside ours */
            rc = mrec_elliot_run(c, xp, &eo, &best);
            for (int m = 0; !rc && all && m < best.n && all->n < MREC_MAX_BEST; m++, all->n++) { /* the combinations one after another */
                all->n_metrics = best.n_metrics, all->k = best.k;
                memcpy(all->metric, best.metric, sizeof all->metric);
                memcpy(all->model[all->n], best.model[m], sizeof all->model[0]);
                memcpy(all->value[all->n], best.value[m], sizeof all->value[0]), memcpy(all->valid[all->n], best.valid[m], sizeof all->valid[0]);
            }
            for (int m = 0; !rc && m < best.n && n_rows < 64; m++, n_rows++) {
                snprintf(rows[n_rows], sizeof rows[0], "%s [%s]", best.model[m], label);
                snprintf(shorts[n_rows], sizeof shorts[0], "%.*s %s", (int)strcspn(best.model[m], "_"), best.model[m], label);
                row_names[n_rows] = rows[n_rows], short_names[n_rows] = shorts[n_rows];
                for (int i = 0; i < best.n_metrics; i++) {
                    values[n_rows * best.n_metrics + i] = best.value[m][i];
                    if (sum) fprintf(sum, "%s\t%s\t%s@%d\t%.6f\n", label, best.model[m], best.metric[i], best.k, best.value[m][i]);
                }
            }
        }
    if (!rc && (st = mrec_atomic_commit(&sum_file))) fprintf(stderr, "mrec run: %s\n", mrec_error_detail()), rc = 2;
    if (rc) mrec_atomic_abort(&sum_file);
    if (!rc && n_rows) {
        for (int i = 0; i < best.n_metrics; i++) metrics[i] = best.metric[i];
        char title[256];
        snprintf(title, sizeof title, "mrec run: %s, models x extractors", dataset);
        mrec_report rep = {.out = base, .title = title, .select = "", .models = row_names,
                           .short_names = short_names, .metrics = metrics, .values = values, .n_models = n_rows,
                           .n_metrics = best.n_metrics, .k = best.k,
                           .note = "Each bar group is a model's best grid point with one combination of extractors; the validation curves are "
                                   "in each combination's folder."};
        if (mrec_report_write(&rep)) fprintf(stderr, "mrec run: %s\n", mrec_error_detail()), rc = 2;
        else printf("\nreport across extractors: %s/report.html; table: %s/summary.tsv\n", final_base, final_base);
    }
    if (!rc && (st = mrec_out_commit(&od))) fprintf(stderr, "mrec run: %s\n", mrec_error_detail()), rc = 2;
    mrec_out_abort(&od);
    return rc;
}

int mrec_cmd_run(int argc, char **argv) {
    const char *config;
    mrec_experiment_options o;
    int how = mrec_config_command_args(argc, argv, "run", USAGE, NOTES, &o, &config);
    if (how >= 0) return how;
    mrec_cfg c;
    if (mrec_cfg_load(&c, config)) {
        fprintf(stderr, "mrec run: %s\n", mrec_error_detail());
        return 2;
    }
    int rc = mrec_run_config(&c, &o, NULL);
    mrec_cfg_free(&c);
    return rc;
}
