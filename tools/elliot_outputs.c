/* elliot_outputs.c: the files an Elliot run leaves, in Elliot's names: the
 * performance tables, the best parameters, the p-values between the best
 * models over the test users and their recommendations, all from what the
 * runs handed back in memory.
 */
#include "elliot.h"
#include "mrec_parse.h"

#include "../nn/mrec_io.h"
#include "../recsys/mrec_recsys.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double elliot_as_printed(double x) {
    char text[64];
    snprintf(text, sizeof text, "%.6f", x);
    return strtod(text, NULL);
}

/* ---- p-values between the best models, per metric, over test users ---- */

/* A run's per-user test metrics as test_per_user.tsv prints them, so the p-values are those a reader of the
 * files gets. */
typedef struct {
    double *v; /* (n, cols) */
    int n, cols;
} per_user;

static mrec_status printed_per_user(const mrec_train_result *r, int cols, per_user *pu) {
    pu->n = r ? r->n_per_user : 0, pu->cols = cols;
    pu->v = malloc(sizeof *pu->v * ((size_t)pu->n * cols + 1));
    if (!pu->v) return mrec_fail(MREC_ERR_NOMEM, "per-user metrics of %d users", pu->n);
    for (size_t i = 0; i < (size_t)pu->n * cols; i++) pu->v[i] = elliot_as_printed(r->per_user[i]);
    return MREC_OK;
}

/* One test's p-values at cut-off ki: stat_<which>_cutoff_<k>.tsv as Elliot writes it, and beside it
 * stat_<which>_adjusted_cutoff_<k>.tsv with the same rows and the p-values adjusted for the number of
 * comparisons in the file (every pair of models times every metric; Bonferroni, Holm, Benjamini-Hochberg).
 * Metrics without a per-user value (Gini, ItemCoverage, ...) have no test and no row. */
static mrec_status write_stat(const experiment *e, const char *which, int wilcoxon, const point *best, per_user *pu, int n_models, int ki) {
    int n_metrics = e->n_metrics, cap = n_models * n_models * n_metrics + 1, n = 0;
    double *p = malloc(sizeof *p * (size_t)cap), *adj = malloc(sizeof *adj * 3 * (size_t)cap);
    int *row = malloc(sizeof *row * 3 * (size_t)cap); /* model a, model b, metric */
    if (!p || !adj || !row) {
        free(p), free(adj), free(row);
        return mrec_fail(MREC_ERR_NOMEM, "p-values of %d models", n_models);
    }
    for (int a = 0; a < n_models; a++)
        for (int b = a + 1; b < n_models; b++) {
            if (pu[a].n != pu[b].n) continue; /* the same users in the same order, or no test */
            double *x = malloc(sizeof *x * (size_t)(pu[a].n + 1)), *y = malloc(sizeof *y * (size_t)(pu[a].n + 1));
            for (int mi = 0; x && y && mi < n_metrics; mi++) {
                if (!mrec_metric_per_user(e->base.metrics[mi])) continue;
                int col = mi * e->n_k + ki;
                for (int u = 0; u < pu[a].n; u++) x[u] = pu[a].v[(size_t)u * pu[a].cols + col], y[u] = pu[b].v[(size_t)u * pu[b].cols + col];
                p[n] = wilcoxon ? mrec_wilcoxon_p(x, y, pu[a].n) : mrec_paired_ttest_p(x, y, pu[a].n);
                row[3 * n] = a, row[3 * n + 1] = b, row[3 * n + 2] = mi, n++;
            }
            free(x), free(y);
        }
    mrec_status st = MREC_OK;
    for (int how = 0; how < 3 && !st; how++) st = mrec_adjust_pvalues(adj + (size_t)how * cap, p, n, (mrec_adjust)how);
    for (int adjusted = 0; adjusted < 2 && !st; adjusted++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/stat_%s%s_cutoff_%d.tsv", e->perf, which, adjusted ? "_adjusted" : "", e->k[ki]);
        mrec_atomic_file af;
        if ((st = mrec_atomic_begin(&af, path))) break;
        fprintf(af.f, "model_a\tmodel_b\tmetric\tp_value%s\n", adjusted ? "\tbonferroni\tholm\tbenjamini_hochberg" : "");
        for (int i = 0; i < n; i++) {
            fprintf(af.f, "%s\t%s\t%s\t%.6g", best[row[3 * i]].name, best[row[3 * i + 1]].name, e->metric_elliot[row[3 * i + 2]], p[i]);
            for (int how = 0; adjusted && how < 3; how++) fprintf(af.f, "\t%.6g", adj[(size_t)how * cap + i]);
            fprintf(af.f, "\n");
        }
        st = mrec_atomic_commit(&af);
    }
    free(p), free(adj), free(row);
    return st;
}

mrec_status elliot_write_stats(const experiment *e, const point *best, const mrec_train_result *const *runs, int n_best) {
    if (n_best < 2 || (!e->ttest && !e->wilcoxon)) return MREC_OK;
    per_user pu[MAX_MODELS] = {{0}};
    mrec_status st = MREC_OK;
    for (int i = 0; i < n_best && !st; i++) st = printed_per_user(runs[i], e->n_metrics * e->n_k, &pu[i]);
    for (int ki = 0; ki < e->n_k && !st; ki++) {
        if (e->ttest) st = write_stat(e, "paired_ttest", 0, best, pu, n_best, ki);
        if (!st && e->wilcoxon) st = write_stat(e, "wilcoxon_test", 1, best, pu, n_best, ki);
    }
    for (int i = 0; i < n_best; i++) free(pu[i].v);
    return st;
}

/* ---- recommendations ---- */

mrec_status elliot_write_recs(const experiment *e, const char *name, const mrec_train_result *r) {
    char path[4900];
    snprintf(path, sizeof path, "%s/%s.tsv", e->recs, name);
    if (!r->topk) return mrec_fail(MREC_ERR_ARG, "%s: no top lists were kept", name);
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (st) return st;
    for (int u = 0; u < r->ids.n_users; u++)
        for (int j = 0; j < e->top_k; j++)
            fprintf(af.f, "%s\t%s\t%d\n", r->ids.user_names[u], r->ids.item_names[r->topk[(size_t)u * r->topk_k + j]], j + 1);
    return mrec_atomic_commit(&af);
}

/* ---- tables ---- */

mrec_status elliot_write_tables(const experiment *e, point *const *grid, const int *n_points, const int *best) {
    int n_metrics = e->n_metrics;
    char path[4400];
    mrec_atomic_file af;
    mrec_status st = MREC_OK;
    for (int ki = 0; ki < e->n_k && !st; ki++) {
        snprintf(path, sizeof path, "%s/rec_cutoff_%d_relthreshold_%g.tsv", e->perf, e->k[ki], e->threshold);
        FILE *f = (st = mrec_atomic_begin(&af, path)) ? NULL : af.f;
        if (f) {
            fprintf(f, "model");
            for (int i = 0; i < n_metrics; i++) fprintf(f, "\t%s", e->metric_elliot[i]);
            fputc('\n', f);
            for (int m = 0; m < e->n_models; m++) {
                if (best[m] < 0) continue;
                fprintf(f, "%s", grid[m][best[m]].name);
                for (int i = 0; i < n_metrics; i++) fprintf(f, "\t%.6f", grid[m][best[m]].test[i][ki]);
                fputc('\n', f);
            }
        }
        if (st || (st = mrec_atomic_commit(&af))) break;
        snprintf(path, sizeof path, "%s/grid_cutoff_%d.tsv", e->perf, e->k[ki]);
        f = (st = mrec_atomic_begin(&af, path)) ? NULL : af.f;
        if (f) {
            fprintf(f, "model\tbest_epoch");
            for (int s = 0; s < 2; s++)
                for (int i = 0; i < n_metrics; i++) fprintf(f, "\t%s_%s", s ? "test" : "valid", e->metric_elliot[i]);
            fputc('\n', f);
            for (int m = 0; m < e->n_models; m++)
                for (int g = 0; g < n_points[m]; g++) {
                    const point *p = &grid[m][g];
                    if (p->failed) continue;
                    fprintf(f, "%s\t%d", p->name, p->best_epoch);
                    for (int s = 0; s < 2; s++)
                        for (int i = 0; i < n_metrics; i++) fprintf(f, "\t%.6f", (s ? p->test : p->valid)[i][ki]);
                    fputc('\n', f);
                }
        }
        if (st || (st = mrec_atomic_commit(&af))) break;
        snprintf(path, sizeof path, "%s/bestmodelparams_cutoff_%d_relthreshold_%g.json", e->perf, e->k[ki], e->threshold);
        f = (st = mrec_atomic_begin(&af, path)) ? NULL : af.f;
        if (f) fputc('[', f);
        for (int m = 0, first = 1; f && m < e->n_models; m++) {
            if (best[m] < 0) continue;
            const point *p = &grid[m][best[m]];
            fprintf(f, "%s\n  {\"model\": \"%s\", \"best_epoch\": %d, \"configuration\": {", first ? "" : ",", p->name, p->best_epoch);
            char params[1024];
            snprintf(params, sizeof params, "%s", p->params);
            int firstp = 1;
            for (char *save, *kv = strtok_r(params, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(kv, '=');
                if (!eq) continue;
                *eq = 0;
                fprintf(f, "%s\"%s\": \"%s\"", firstp ? "" : ", ", kv, eq + 1);
                firstp = 0;
            }
            fprintf(f, "}}");
            first = 0;
        }
        if (f) fprintf(f, "\n]\n");
        if (st || (st = mrec_atomic_commit(&af))) break;
    }
    return st;
}
