/* test_beyond.c: Elliot's beyond-accuracy metrics and the multiple-testing
 * corrections.
 *
 * Metrics against tools/golden/beyond_metrics.py, which restates Elliot's
 * EFD, EPC, Gini, SEntropy, ItemCoverage, UserCoverage, APLT, ACLT, ARP,
 * PopREO and PopRSP in numpy on the same scores and masks (ties in
 * popularity, users without test items or without a relevant one, lists
 * shorter than the largest K, an item never trained): equal to 1e-9, since
 * both sides sum a few dozen doubles and differ in summation order only.
 * The whole evaluation is run in blocks of 7 users, with 1 and 2 threads.
 * Adjusted p-values against statsmodels' multipletests, to 1e-12 (a product
 * or a quotient per value). Then an Elliot config asking for the benchmark's
 * metrics through the binary in $MREC_BIN: the tables, the report and the
 * stat files with their adjusted columns.
 */
#include "harness.h"

#include "../recsys/mrec_recsys.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    const float *scores;
    int n_items;
} matrix_model;

static mrec_status score_rows(void *model, int u0, int n, float *out) {
    matrix_model *m = model;
    memcpy(out, m->scores + (size_t)u0 * m->n_items, (size_t)n * m->n_items * sizeof *out);
    return MREC_OK;
}

/* CSR from a JSON array of per-user lists of [item, rating]. */
static void csr_from_json(mrec_user_items *m, const cJSON *rows, int n_users, int n_items) {
    m->n_rows = n_users, m->n_cols = n_items;
    m->row_ptr = calloc((size_t)n_users + 1, sizeof *m->row_ptr);
    m->col = malloc(sizeof *m->col * (size_t)n_users * n_items);
    m->val = malloc(sizeof *m->val * (size_t)n_users * n_items);
    int u = 0;
    for (const cJSON *row = rows->child; row; row = row->next, u++) {
        m->row_ptr[u + 1] = m->row_ptr[u];
        for (const cJSON *e = row->child; e; e = e->next) {
            int64_t at = m->row_ptr[u + 1]++;
            m->col[at] = e->child->valueint, m->val[at] = (float)e->child->next->valuedouble;
        }
    }
}

static int close_to(double ref, double out, double tol) { return fabs(ref - out) <= tol + tol * fabs(ref); }

/* "efd@10" -> the metric and the index of 10 among the cut-offs. */
static int metric_at(const char *key, const mrec_eval_spec *spec, mrec_metric *m, int *ki) {
    char name[32];
    int K;
    if (sscanf(key, "%31[a-z_]@%d", name, &K) != 2 || mrec_metric_parse(name, m)) return 0;
    for (*ki = 0; *ki < spec->n_k; (*ki)++)
        if (spec->k[*ki] == K) return 1;
    return 0;
}

static void test_metrics(const cJSON *c, mrec_context *ctx, int threads) {
    int n_users = cJSON_GetObjectItem(c, "n_users")->valueint, n_items = cJSON_GetObjectItem(c, "n_items")->valueint;
    float *scores = malloc(sizeof *scores * (size_t)n_users * n_items);
    int u = 0;
    for (const cJSON *row = cJSON_GetObjectItem(c, "scores")->child; row; row = row->next, u++) {
        int i = 0;
        for (const cJSON *v = row->child; v; v = v->next, i++) scores[(size_t)u * n_items + i] = (float)v->valuedouble;
    }
    mrec_user_items train, valid, test;
    csr_from_json(&train, cJSON_GetObjectItem(c, "train"), n_users, n_items);
    csr_from_json(&valid, cJSON_GetObjectItem(c, "valid"), n_users, n_items);
    csr_from_json(&test, cJSON_GetObjectItem(c, "test"), n_users, n_items);
    matrix_model model = {scores, n_items};
    int s = 0;
    for (const cJSON *set = cJSON_GetObjectItem(c, "settings")->child; set; set = set->next, s++) {
        float threshold = (float)cJSON_GetObjectItem(set, "threshold")->valuedouble;
        mrec_eval_spec spec = {.relevant = &test, .masked = {&train, cJSON_IsTrue(cJSON_GetObjectItem(set, "mask_valid")) ? &valid : NULL},
                               .rel_threshold = threshold, .block_users = 7};
        for (const cJSON *k = cJSON_GetObjectItem(c, "k")->child; k; k = k->next) spec.k[spec.n_k++] = k->valueint;
        mrec_eval_result r;
        if (!t_status(mrec_evaluate(&r, &spec, score_rows, &model, ctx), MREC_OK, "evaluate, setting %d, %d threads", s, threads)) continue;
        int checked = 0, bad = 0;
        for (const cJSON *e = cJSON_GetObjectItem(set, "expected")->child; e; e = e->next) {
            mrec_metric m;
            int ki;
            if (!metric_at(e->string, &spec, &m, &ki)) {
                t_check(0, "setting %d: unknown key %s", s, e->string);
                continue;
            }
            double out = r.value[m][ki];
            if (!close_to(e->valuedouble, out, 1e-9) && bad++ < 5)
                fprintf(stderr, "  setting %d: %s: mrec %.12g, Elliot %.12g\n", s, e->string, out, e->valuedouble);
            checked++;
        }
        t_check(checked == 11 * spec.n_k && !bad, "setting %d, %d threads: %d beyond-accuracy values as Elliot's (%d differ)", s, threads,
                checked, bad);

        /* per-user values from the same lists, cut where the masked items begin */
        int kmax = spec.k[spec.n_k - 1];
        int32_t *top = malloc(sizeof *top * (size_t)n_users * kmax), *rel = malloc(sizeof *rel * (size_t)n_items);
        mrec_beyond *b = NULL;
        t_status(mrec_recommend(top, n_users, n_items, kmax, spec.masked, score_rows, &model, ctx), MREC_OK, "recommend");
        t_status(mrec_beyond_open(&b, &train, n_items, spec.k, spec.n_k), MREC_OK, "beyond open");
        const cJSON *lens = cJSON_GetObjectItem(set, "list_len");
        int users = 0, len_bad = 0;
        bad = 0, checked = 0;
        for (const cJSON *pu = cJSON_GetObjectItem(set, "per_user")->child; b && pu; pu = pu->next, users++) {
            int v = atoi(pu->string), n_rel = 0;
            int64_t avail = n_items - (train.row_ptr[v + 1] - train.row_ptr[v]) -
                            (spec.masked[1] ? valid.row_ptr[v + 1] - valid.row_ptr[v] : 0);
            int len = avail < kmax ? (int)avail : kmax;
            len_bad += len != cJSON_GetArrayItem(lens, v)->valueint;
            for (int64_t p = test.row_ptr[v]; p < test.row_ptr[v + 1]; p++)
                if (test.val[p] >= threshold) rel[n_rel++] = test.col[p];
            double m[MREC_METRIC_COUNT][MREC_EVAL_MAX_K];
            mrec_beyond_user(b, m, top + (size_t)v * kmax, len, rel, n_rel);
            for (const cJSON *e = pu->child; e; e = e->next) {
                mrec_metric q;
                int ki;
                if (!metric_at(e->string, &spec, &q, &ki)) continue;
                if (!close_to(e->valuedouble, m[q][ki], 1e-9) && bad++ < 5)
                    fprintf(stderr, "  setting %d: user %d: %s: mrec %.12g, Elliot %.12g\n", s, v, e->string, m[q][ki], e->valuedouble);
                checked++;
            }
        }
        t_check(users > 0 && checked == users * 5 * spec.n_k && !bad && !len_bad,
                "setting %d: per-user EFD, EPC, APLT, ACLT, ARP of %d users (%d values differ, %d list lengths)", s, users, bad, len_bad);
        mrec_beyond_close(b);
        free(top), free(rel);
    }
    mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
    free(scores);
}

static void test_corners(void) {
    /* no users: undefined where Elliot's is (a mean over no users); the counts are 0 */
    int k[2] = {1, 2};
    mrec_beyond *b;
    if (!t_status(mrec_beyond_open(&b, NULL, 3, k, 2), MREC_OK, "beyond open without training pairs")) return;
    double out[MREC_METRIC_COUNT][MREC_EVAL_MAX_K];
    mrec_beyond_result(b, out);
    t_check(isnan(out[MREC_METRIC_EFD][0]) && isnan(out[MREC_METRIC_APLT][1]) && isnan(out[MREC_METRIC_POP_RSP][0]) &&
                out[MREC_METRIC_ITEM_COVERAGE][1] == 0 && out[MREC_METRIC_USER_COVERAGE][0] == 0,
            "no users: means NaN, coverages 0");
    /* an empty list counts 0 for APLT and ARP and is not covered */
    int32_t one[1] = {2};
    mrec_beyond_add(b, 0, one, 0, NULL, 0);
    mrec_beyond_add(b, 1, one, 1, one, 1);
    mrec_beyond_result(b, out);
    t_check(out[MREC_METRIC_USER_COVERAGE][0] == 1 && out[MREC_METRIC_ITEM_COVERAGE][1] == 1 && out[MREC_METRIC_ACLT][0] == 0.5,
            "an empty list: not covered, counted in the means");
    mrec_beyond_close(b);
    t_status(mrec_beyond_open(&b, NULL, 3, k, 0), MREC_ERR_ARG, "no cut-offs refused");
    mrec_metric m;
    t_check(mrec_metric_parse("pop_reo", &m) == MREC_OK && m == MREC_METRIC_POP_REO && !mrec_metric_per_user(m) &&
                mrec_metric_per_user(MREC_METRIC_EFD) && mrec_metric_per_user(MREC_METRIC_RECALL),
            "names and which metrics have per-user values");
}

static void test_adjust(const cJSON *c) {
    const cJSON *a = cJSON_GetObjectItem(c, "adjust");
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(a, "p"));
    double *p = malloc(sizeof *p * (size_t)n), *adj = malloc(sizeof *adj * (size_t)n);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItem(a, "p"), i);
        p[i] = cJSON_IsNull(v) ? NAN : v->valuedouble;
    }
    static const char *const names[3] = {"bonferroni", "holm", "bh"};
    for (int how = 0; how < 3; how++) {
        t_status(mrec_adjust_pvalues(adj, p, n, (mrec_adjust)how), MREC_OK, "adjust %s", names[how]);
        int bad = 0;
        for (int i = 0; i < n; i++) {
            const cJSON *v = cJSON_GetArrayItem(cJSON_GetObjectItem(a, names[how]), i);
            int ok = cJSON_IsNull(v) ? isnan(adj[i]) : close_to(v->valuedouble, adj[i], 1e-12);
            if (!ok && bad++ < 3) fprintf(stderr, "  %s[%d]: mrec %.17g, statsmodels %.17g\n", names[how], i, adj[i], v->valuedouble);
        }
        t_check(!bad, "%s: %d p-values as statsmodels' multipletests (%d differ)", names[how], n, bad);
    }
    t_status(mrec_adjust_pvalues(adj, p, 0, MREC_ADJUST_HOLM), MREC_OK, "an empty family");
    free(p), free(adj);
}


static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* 40 users on bands of 30 items; MostPop and ItemKNN with the Ducho-meets-Elliot benchmark's metrics. */
static void test_elliot_config(const char *bin) {
    char dir[] = "/tmp/mrec-beyond-XXXXXX", path[4200], cmd[8800];
    if (!t_check(mkdtemp(dir) != NULL, "scratch folder")) return;
    const char *names[3] = {"train.tsv", "val.tsv", "test.tsv"};
    for (int s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[s]);
        FILE *f = fopen(path, "w");
        for (int u = 0; u < 40 && f; u++)
            for (int j = 0; j < 9; j++) {
                int item = (u / 2 + j * 3 + (j % 2)) % 30, split = j < 7 ? 0 : j - 6;
                if (split == s) fprintf(f, "u%d\ti%d\t1\n", u, item);
            }
        if (f) fclose(f);
    }
    snprintf(path, sizeof path, "%s/cfg.yml", dir);
    FILE *f = fopen(path, "w");
    if (f)
        fputs("experiment:\n  dataset: tiny\n  data_config:\n    strategy: fixed\n    train_path: train.tsv\n"
              "    validation_path: val.tsv\n    test_path: test.tsv\n  top_k: 10\n  evaluation:\n    cutoffs: [5, 10]\n"
              "    simple_metrics: [recall, nDCG, EFD, Gini, APLT, itemcoverage]\n    paired_ttest: True\n  models:\n"
              "    MostPop:\n      meta:\n        save_recs: False\n    ItemKNN:\n      neighbors: 5\n",
              f),
            fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && %s train cfg.yml --out res > log.txt 2>&1", dir, bin);
    int st = system(cmd);
    if (t_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mrec train with EFD, Gini, APLT, ItemCoverage in simple_metrics")) {
        snprintf(path, sizeof path, "%s/res/performance/rec_cutoff_10_relthreshold_0.tsv", dir);
        char *t = slurp(path);
        const char *head = "model\tRecall\tnDCG\tEFD\tGini\tAPLT\tItemCoverage\n";
        t_check(t && !strncmp(t, head, strlen(head)), "the performance table's columns, named as Elliot names them (the config says recall, itemcoverage)");
        int cover = 0;
        for (const char *l = t ? strstr(t, "MostPop\t") : NULL; l; l = NULL) {
            double v[6];
            cover = sscanf(l, "MostPop\t%lf\t%lf\t%lf\t%lf\t%lf\t%lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) == 6 && v[5] >= 10 &&
                    v[5] <= 30 && v[5] == floor(v[5]) && v[3] > 0 && v[3] < 1;
        }
        t_check(cover, "MostPop: ItemCoverage@10 a count of 10 to 30 items, Gini@10 within (0, 1)");
        snprintf(path, sizeof path, "%s/res/performance/stat_paired_ttest_adjusted_cutoff_10.tsv", dir);
        t = slurp(path);
        int rows = 0, consistent = 1;
        for (const char *l = t ? strchr(t, '\n') : NULL; l && l[1]; l = strchr(l + 1, '\n')) {
            char a[64], b[64], m[32];
            double p, bon, holm, bh;
            if (sscanf(l + 1, "%63s %63s %31s %lf %lf %lf %lf", a, b, m, &p, &bon, &holm, &bh) != 7) continue;
            rows++;
            consistent &= strcmp(m, "Gini") && strcmp(m, "ItemCoverage") && (isnan(p) || (bon >= holm && holm >= bh && bh >= p - 1e-12));
        }
        head = "model_a\tmodel_b\tmetric\tp_value\tbonferroni\tholm\tbenjamini_hochberg\n";
        t_check(t && !strncmp(t, head, strlen(head)) && rows == 4 &&
                    consistent,
                "adjusted p-values: %d rows (Recall, nDCG, EFD, APLT; no Gini or ItemCoverage), Bonferroni >= Holm >= BH >= p", rows);
        snprintf(path, sizeof path, "%s/res/report.html", dir);
        t = slurp(path);
        t_check(t && strstr(t, "<th>EFD@10</th>") && strstr(t, "ItemCoverage@10 (table)"), "report.html: the new metrics in the table");
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    t_suite("beyond");
    FILE *f = fopen("tests/fixtures/beyond/cases.json", "rb");
    T_REQUIRE(f != NULL);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cJSON *c = cJSON_ParseWithLength(buf, n);
    T_REQUIRE(c != NULL);
    for (int threads = 1; threads <= 2; threads++) {
        mrec_context_options o = mrec_context_defaults();
        o.device = MREC_WANT_CPU, o.n_threads = threads;
        mrec_context *ctx;
        T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
        test_metrics(c, ctx, threads);
        mrec_context_destroy(ctx);
    }
    test_corners();
    test_adjust(c);
    cJSON_Delete(c);
    const char *bin = getenv("MREC_BIN");
    static char abs_bin[4096], cwd[2048];
    if (bin && bin[0] != '/' && getcwd(cwd, sizeof cwd)) snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin), bin = abs_bin;
    if (bin) test_elliot_config(bin);
    else t_skip("MREC_BIN is not set");
    return t_finish();
}
