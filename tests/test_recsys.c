/* test_recsys.c: interaction loading and full-ranking evaluation.
 *
 * Metrics against tools/golden/metrics.py, which computes MMRec's and
 * Elliot's definitions on the same scores and masks: equal to 1e-9 (both
 * sides sum a few dozen doubles; the bound leaves room for summation order
 * only). Loaders against the real MMRec Baby split and the NGCF/LightGCN
 * Gowalla files in ../shared/data (counts from their PROVENANCE), plus
 * malformed lines.
 */
#include "harness.h"
#include "model_checks.h"

#include "../recsys/mrec_recsys.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* ---- metrics ---------------------------------------------------------------- */

typedef struct {
    const float *scores;
    int n_items;
    mrec_context *ctx; /* where the ranking runs: out is its memory */
} matrix_model;

static mrec_status score_rows(void *model, int u0, int n, float *out) {
    matrix_model *m = model;
    return mrec_copy_to_device(m->ctx, out, m->scores + (size_t)u0 * m->n_items, (size_t)n * m->n_items * sizeof *out);
}

/* CSR from a JSON array of per-user lists: item ids, or [item, rating] pairs. */
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
            m->col[at] = cJSON_IsArray(e) ? e->child->valueint : e->valueint;
            m->val[at] = cJSON_IsArray(e) ? (float)e->child->next->valuedouble : 1.0f;
        }
    }
}

static void test_metrics(mrec_context *ctx) {
    FILE *f = fopen("tests/fixtures/metrics/cases.json", "rb");
    if (!t_check(f != NULL, "open tests/fixtures/metrics/cases.json")) return;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cJSON *c = cJSON_ParseWithLength(buf, n);
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
    matrix_model model = {scores, n_items, ctx};
    static const char *settings[2] = {"mmrec", "elliot"};
    for (int s = 0; s < 2; s++) {
        const cJSON *set = cJSON_GetObjectItem(c, settings[s]);
        mrec_eval_spec spec = {.relevant = &test, .masked = {&train, cJSON_IsTrue(cJSON_GetObjectItem(set, "mask_valid")) ? &valid : NULL},
                               .rel_threshold = (float)cJSON_GetObjectItem(set, "threshold")->valuedouble,
                               .block_users = 7};
        for (const cJSON *k = cJSON_GetObjectItem(c, "k")->child; k; k = k->next) spec.k[spec.n_k++] = k->valueint;
        mrec_eval_result r;
        if (!t_status(mrec_evaluate(&r, &spec, score_rows, &model, ctx), MREC_OK, "evaluate %s on %s", settings[s], mrec_device_name(ctx->device))) continue;
        t_check(r.n_users == cJSON_GetObjectItem(set, "n_users")->valueint, "%s on %s: %d users evaluated", settings[s], mrec_device_name(ctx->device), r.n_users);
        int checked = 0, bad = 0;
        for (const cJSON *e = cJSON_GetObjectItem(set, "expected")->child; e; e = e->next) {
            char name[32];
            int K;
            sscanf(e->string, "%31[^@]@%d", name, &K);
            mrec_metric m;
            if (mrec_metric_parse(name, &m) != MREC_OK) continue;
            int ki = 0;
            while (spec.k[ki] != K) ki++;
            double got = r.value[m][ki], want = e->valuedouble;
            if (fabs(got - want) > 1e-9 && bad++ < 5)
                fprintf(stderr, "  %s %s: got %.12f want %.12f\n", settings[s], e->string, got, want);
            checked++;
        }
        t_check(bad == 0 && checked >= 20, "%s on %s: %d of %d metrics differ from the reference", settings[s], mrec_device_name(ctx->device), bad,
                checked);
    }
    /* The accuracy metrics alone (the lists never leave the device) and other block sizes: the same bits; Elliot's
     * beyond-accuracy metrics NaN then. The evaluator kept open gives the same bits twice. */
    mrec_eval_spec spec = {.relevant = &test, .masked = {&train, &valid}, .rel_threshold = 1, .block_users = 7};
    for (const cJSON *k = cJSON_GetObjectItem(c, "k")->child; k; k = k->next) spec.k[spec.n_k++] = k->valueint;
    mrec_eval_result full, part;
    if (t_status(mrec_evaluate(&full, &spec, score_rows, &model, ctx), MREC_OK, "evaluate on %s", mrec_device_name(ctx->device))) {
        int blocks[] = {1, 5, 7, 1000};
        for (int q = 0; q < 8; q++) {
            spec.block_users = blocks[q % 4], spec.accuracy_only = q >= 4;
            mrec_evaluator *ev = NULL;
            mrec_status st = mrec_evaluator_open(&ev, &spec, ctx);
            int same = 1, nan = 1;
            for (int run = 0; run < 2 && !st; run++) {
                st = mrec_evaluator_run(ev, &part, score_rows, &model);
                same &= !st && part.n_users == full.n_users &&
                        !memcmp(part.value, full.value, sizeof(double) * MREC_METRIC_FIRST_BEYOND * MREC_EVAL_MAX_K);
                for (int m = MREC_METRIC_FIRST_BEYOND; m < MREC_METRIC_COUNT; m++) nan &= isnan(part.value[m][0]) == spec.accuracy_only;
            }
            mrec_evaluator_close(ev);
            t_check(!st && same && nan, "%s, blocks of %d users%s: the accuracy metrics' bits, twice (%s)",
                    mrec_device_name(ctx->device), spec.block_users, spec.accuracy_only ? ", accuracy only" : "",
                    st ? mrec_error_detail() : !same ? "differ" : "beyond-accuracy metrics wrong");
        }
    }
    /* Bad cut-offs are refused. */
    mrec_eval_spec bad = {.relevant = &test, .n_k = 2, .k = {10, 5}};
    mrec_eval_result r;
    t_status(mrec_evaluate(&r, &bad, score_rows, &model, ctx), MREC_ERR_ARG, "descending cut-offs");
    mrec_metric m;
    t_status(mrec_metric_parse("auc", &m), MREC_ERR_ARG, "unknown metric");
    mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
    free(scores);
    cJSON_Delete(c);
}

/* mrec_rank_metrics where the context runs against mrec_user_metrics on the host, summed in user order: the same
 * bits. 300 users of graded ratings (two in five under the threshold, a user with none, one whose every pair
 * is relevant), lists of 50 distinct items drawn from 97, the users in blocks of 1, 64 and 300. */
static void test_rank_metrics(mrec_context *ctx) {
    enum { U = 300, I = 97, KMAX = 50 };
    const int k[] = {1, 5, 20, 50}, n_k = 4;
    const float threshold = 3;
    uint64_t rng = 12345;
#define DRAW(n) (int)((rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 33) % (n)
    mrec_user_items rel = {U, I, calloc(U + 1, sizeof(int64_t)), malloc(sizeof(int32_t) * U * I), malloc(sizeof(float) * U * I)};
    int32_t *top = malloc(sizeof *top * U * KMAX);
    for (int u = 0; u < U; u++) {
        int64_t at = rel.row_ptr[u];
        for (int i = 0; i < I; i++)
            if (u != 7 && (u == 8 || DRAW(5) == 0)) rel.col[at] = i, rel.val[at++] = u == 8 ? 4.5f : (float)(1 + DRAW(5)) * 0.75f + 1;
        rel.row_ptr[u + 1] = at;
        int32_t *t = top + (size_t)u * KMAX, seen[I] = {0};
        for (int r = 0; r < KMAX; r++) {
            int i;
            do i = DRAW(I); while (seen[i]);
            seen[i] = 1, t[r] = i;
        }
    }
    /* the host's: each user's gains as the evaluation defines them, then the sums in user order */
    mrec_rank_sums want;
    memset(&want, 0, sizeof want);
    double gain[I], sorted[I];
    for (int u = 0; u < U; u++) {
        int n_rel = 0;
        memset(gain, 0, sizeof gain);
        for (int64_t p = rel.row_ptr[u]; p < rel.row_ptr[u + 1]; p++)
            if (rel.val[p] >= threshold) gain[rel.col[p]] = sorted[n_rel++] = pow(2.0, rel.val[p] - threshold + 1.0) - 1.0;
        for (int a = 1; a < n_rel; a++) /* largest first */
            for (int b = a; b > 0 && sorted[b] > sorted[b - 1]; b--) {
                double x = sorted[b];
                sorted[b] = sorted[b - 1], sorted[b - 1] = x;
            }
        if (!n_rel) continue;
        double m[MREC_METRIC_COUNT][MREC_EVAL_MAX_K];
        mrec_user_metrics(m, top + (size_t)u * KMAX, gain, sorted, n_rel, k, n_k);
        want.users++;
        for (int q = 0; q < MREC_RANK_METRICS; q++)
            for (int i = 0; i < n_k; i++) want.sum[q][i] += m[q][i];
    }
    /* the op's, through an evaluator's relevance: the evaluation of lists that score each user's list first */
    int blocks[] = {1, 64, U};
    for (int b = 0; b < 3; b++) {
        float *scores = malloc(sizeof *scores * U * I);
        for (int u = 0; u < U; u++) {
            for (int i = 0; i < I; i++) scores[(size_t)u * I + i] = -1;
            for (int r = 0; r < KMAX; r++) scores[(size_t)u * I + top[(size_t)u * KMAX + r]] = (float)(KMAX - r);
        }
        matrix_model model = {scores, I, ctx};
        mrec_eval_spec spec = {.relevant = &rel, .n_k = n_k, .rel_threshold = threshold, .block_users = blocks[b], .accuracy_only = 1};
        memcpy(spec.k, k, sizeof k);
        mrec_eval_result r;
        mrec_status st = mrec_evaluate(&r, &spec, score_rows, &model, ctx);
        int same = !st && r.n_users == (int)want.users;
        for (int q = 0; same && q < MREC_RANK_METRICS; q++)
            for (int i = 0; i < n_k; i++) {
                double w = want.sum[q][i] / (double)want.users;
                same &= !memcmp(&r.value[q][i], &w, sizeof w);
            }
        t_check(same, "rank metrics on %s, blocks of %d: the host's bits (%s)",
                mrec_device_name(ctx->device), blocks[b], st ? mrec_error_detail() : "differ");
        free(scores);
    }
#undef DRAW
    mrec_user_items_free(&rel);
    free(top);
}

/* ---- loaders ------------------------------------------------------------------ */

static char tmpdir[] = "/tmp/mrec_test_recsys_XXXXXX";

static const char *write_tmp(const char *name, const char *content) {
    static char path[4][256];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(path[slot], sizeof path[slot], "%s/%s", tmpdir, name);
    FILE *f = fopen(path[slot], "w");
    fputs(content, f);
    fclose(f);
    return path[slot];
}

static void ignore_notice(void *ctx, const char *line) { (void)ctx, (void)line; }

static void test_loaders(void) {
    mrec_interactions x;
    /* Elliot TSV with string ids: numbered in order of appearance. */
    const char *p = write_tmp("a.tsv", "alice\tbook\t5\t100\nbob\tpen\t3\t200\nalice\tpen\t4\t300\n");
    if (t_status(mrec_load_tsv(&x, p), MREC_OK, "load tsv")) {
        t_check(x.n == 3 && x.n_users == 2 && x.n_items == 2 && strcmp(x.user_names[1], "bob") == 0 &&
                    x.item[2] == 1 && x.rating[0] == 5 && x.timestamp[2] == 300,
                "tsv contents");
        mrec_interactions_free(&x);
    }
    /* Integer ids keep their numeric order. */
    p = write_tmp("b.tsv", "10\t7\n2\t30\n10\t2\n");
    if (t_status(mrec_load_tsv(&x, p), MREC_OK, "load numeric tsv")) {
        t_check(strcmp(x.user_names[0], "2") == 0 && strcmp(x.item_names[0], "2") == 0 && x.user[0] == 1 && x.item[1] == 2,
                "numeric ids sorted");
        mrec_interactions_free(&x);
    }
    /* .inter with a header and extra columns. */
    p = write_tmp("c.inter", "user_id:token\titem_id:token\trating:float\tx_label\tjunk\nu1\ti1\t4\t0\tz\nu1\ti2\t5\t2\tz\n");
    if (t_status(mrec_load_inter(&x, p), MREC_OK, "load inter")) {
        t_check(x.has_split && x.split[1] == MREC_SPLIT_TEST && x.rating[1] == 5, "inter split and rating");
        mrec_interactions_free(&x);
    }
    static const struct { const char *name, *content, *mention; } bad[] = {
        {"bad1.tsv", "a\tb\t5\nc\n", "line 2"},
        {"bad2.tsv", "a\tb\tfive\n", "rating"},
        {"bad3.inter", "userID\titemID\tx_label\n1\t2\t7\n", "x_label"},
        {"bad4.inter", "uid\tiid\n1\t2\n", "header"},
        {"bad5.inter", "userID\titemID\n1\t2\t3\n", "line 2"},
        {"bad6.tsv", "", "no interactions"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = write_tmp(bad[i].name, bad[i].content);
        mrec_status st = strstr(bad[i].name, ".inter") ? mrec_load_inter(&x, p) : mrec_load_tsv(&x, p);
        t_check(st == MREC_ERR_FORMAT && strstr(mrec_error_detail(), bad[i].name) && strstr(mrec_error_detail(), bad[i].mention),
                "%s rejected: %s", bad[i].name, mrec_error_detail());
        if (st == MREC_OK) mrec_interactions_free(&x);
    }
    t_status(mrec_load_tsv(&x, "/nonexistent.tsv"), MREC_ERR_IO, "missing file");
    /* Elliot's fixed splits: ids shared across the files, each pair labelled by its file */
    const char *tr = write_tmp("s_train.tsv", "alice\tbook\t5\nbob\tpen\t3\n");
    const char *va = write_tmp("s_valid.tsv", "alice\tpen\t4\n");
    const char *te = write_tmp("s_test.tsv", "bob\tbook\t2\ncarol\tcup\t1\n");
    if (t_status(mrec_load_tsv_splits(&x, tr, va, te), MREC_OK, "fixed splits")) {
        t_check(x.has_split && x.n == 5 && x.n_users == 3 && x.n_items == 3 && x.split[2] == MREC_SPLIT_VALID &&
                    x.split[3] == MREC_SPLIT_TEST && x.user[2] == x.user[0] && x.item[3] == x.item[0],
                "three files, shared ids, split labels");
        mrec_interactions_free(&x);
    }
    const char *odd = write_tmp("s_odd.tsv", "alice\tbook\n");
    t_status(mrec_load_tsv_splits(&x, tr, NULL, odd), MREC_ERR_FORMAT, "a test file with other columns");
    t_check(strstr(mrec_error_detail(), "s_odd.tsv") && strstr(mrec_error_detail(), "line 1"), "named: %s", mrec_error_detail());
    /* Per-user lists: sorted; a repeated pair is dropped at loading (the first row kept). */
    p = write_tmp("d.tsv", "1\t3\t1\n1\t1\t2\n1\t3\t4\n0\t2\t5\n");
    mrec_load_options quiet = mrec_load_defaults();
    quiet.notice = ignore_notice;
    if (t_status(mrec_load_tsv_opt(&x, p, &quiet), MREC_OK, "load d.tsv")) {
        mrec_user_items m;
        mrec_user_items_build(&m, &x, MREC_SPLIT_TRAIN);
        /* items 1, 2, 3 -> dense 0, 1, 2; user 1 has items 0 and 2, the first row's rating 1 kept */
        t_check(x.n == 3 && x.n_duplicates == 1 && m.row_ptr[2] - m.row_ptr[1] == 2 && m.col[m.row_ptr[1]] == 0 &&
                    m.col[m.row_ptr[1] + 1] == 2 && m.val[m.row_ptr[1] + 1] == 1,
                "user lists sorted, the repeated pair loaded once");
        mrec_user_items_free(&m);
        mrec_interactions_free(&x);
    }
    /* The lists still merge pairs given twice in memory (the last rating wins). */
    int32_t du[3] = {0, 0, 0}, di[3] = {1, 0, 1};
    float dr[3] = {2, 3, 7};
    int8_t ds[3] = {0, 0, 0};
    mrec_interactions twice = {.n = 3, .user = du, .item = di, .rating = dr, .split = ds, .n_users = 1, .n_items = 2};
    mrec_user_items m2;
    if (t_status(mrec_user_items_build(&m2, &twice, MREC_SPLIT_TRAIN), MREC_OK, "user lists of a pair given twice")) {
        t_check(m2.row_ptr[1] == 2 && m2.col[1] == 1 && m2.val[1] == 7, "pairs merged, the last rating kept");
        mrec_user_items_free(&m2);
    }
}

static void test_real_data(void) {
    mrec_interactions x;
    char path[2][512];
    const char *baby = t_data(path[0], sizeof path[0], "amazon-baby-mmrec/baby_split.tsv");
    if (baby) {
        if (t_status(mrec_load_inter(&x, baby), MREC_OK, "load Baby")) {
            int64_t count[3] = {0, 0, 0};
            for (int64_t i = 0; i < x.n; i++) count[x.split[i]]++;
            t_check(x.n_users == 19445 && x.n_items == 7050 && x.n == 160792, "Baby: %d users, %d items, %lld pairs",
                    x.n_users, x.n_items, (long long)x.n);
            t_check(count[0] == 118551 && count[1] == 20559 && count[2] == 21682, "Baby split sizes %lld / %lld / %lld",
                    (long long)count[0], (long long)count[1], (long long)count[2]);
            t_check(strcmp(x.item_names[510], "510") == 0, "dense integer ids kept in numeric order (DiffMM's numbering)");
            mrec_interactions_free(&x);
        }
    } else {
        t_skip("Baby split: amazon-baby-mmrec/baby_split.tsv not found");
    }
    const char *gowalla = t_data(path[1], sizeof path[1], "gowalla-lightgcn/train_reconstructed.txt");
    if (gowalla && t_data(path[0], sizeof path[0], "gowalla-lightgcn/test.txt")) {
        if (t_status(mrec_load_lightgcn(&x, gowalla), MREC_OK, "load Gowalla")) {
            int64_t test = 0;
            for (int64_t i = 0; i < x.n; i++) test += x.split[i] == MREC_SPLIT_TEST;
            t_check(x.n_users == 29858 && x.n_items == 40981 && x.n - test == 810128 && test == 217242,
                    "Gowalla: %d users, %d items, %lld train, %lld test", x.n_users, x.n_items, (long long)(x.n - test),
                    (long long)test);
            mrec_interactions_free(&x);
        }
    } else {
        t_skip("Gowalla: gowalla-lightgcn's train_reconstructed.txt and test.txt not found");
    }
}

/* ---- filters and splits ------------------------------------------------------------------ */

static void test_splits(void) {
    /* users with 5, 9, 10 and 23 interactions, timestamps = item order */
    static const int sizes[4] = {5, 9, 10, 23};
    char content[8192];
    int at = 0;
    for (int u = 0; u < 4; u++)
        for (int i = 0; i < sizes[u]; i++) at += snprintf(content + at, sizeof content - (size_t)at, "u%d\ti%d\t5\t%d\n", u, i, 1000 + i);
    const char *p = write_tmp("s.tsv", content);
    mrec_interactions x;
    if (!t_status(mrec_load_tsv(&x, p), MREC_OK, "load s.tsv")) return;
    static const int want[4][3] = {{3, 1, 1}, {7, 1, 1}, {8, 1, 1}, {19, 2, 2}}; /* MMRec's rule */
    t_status(mrec_split_users(&x, MREC_SPLITTER_MMREC, 0, 0, 0, 42), MREC_OK, "mmrec split");
    int ok = 1;
    int8_t first[64];
    for (int u = 0; u < 4; u++) {
        int c[3] = {0, 0, 0};
        for (int64_t k = 0; k < x.n; k++)
            if (x.user[k] == u) c[x.split[k]]++;
        ok &= c[0] == want[u][0] && c[1] == want[u][1] && c[2] == want[u][2];
    }
    t_check(ok, "MMRec 8:1:1 rule: n < 10 -> n-2/1/1, else int(0.2 n) held out, half valid");
    memcpy(first, x.split, sizeof first);
    mrec_split_users(&x, MREC_SPLITTER_MMREC, 0, 0, 0, 42);
    t_check(memcmp(first, x.split, sizeof first) == 0, "same seed, same split");
    mrec_split_users(&x, MREC_SPLITTER_MMREC, 0, 0, 0, 43);
    t_check(memcmp(first, x.split, sizeof first) != 0, "another seed, another split");
    /* random hold-out 0.2, validation 0.1 of the rest, user with 10: floor(8) kept, floor(7.2) train */
    mrec_split_users(&x, MREC_SPLITTER_RANDOM, 0.2, 0.1, 0, 1);
    int c[3] = {0, 0, 0};
    for (int64_t k = 0; k < x.n; k++)
        if (x.user[k] == 2) c[x.split[k]]++;
    t_check(c[0] == 7 && c[1] == 1 && c[2] == 2, "random hold-out: %d/%d/%d for 10 interactions", c[0], c[1], c[2]);
    /* temporal: the latest go to test */
    mrec_split_users(&x, MREC_SPLITTER_TEMPORAL, 0.2, 0, 0, 1);
    int latest_ok = 1;
    for (int64_t k = 0; k < x.n; k++)
        if (x.user[k] == 3) latest_ok &= (x.split[k] == MREC_SPLIT_TEST) == (x.timestamp[k] >= 1000 + 18); /* floor(23 * 0.8) = 18 kept */
    t_check(latest_ok, "temporal hold-out takes the latest 20%%");
    mrec_split_users(&x, MREC_SPLITTER_LEAVE_N, 0, 1, 1, 1);
    int loo = 0;
    for (int64_t k = 0; k < x.n; k++) loo += x.user[k] == 0 && x.split[k] == MREC_SPLIT_TEST && x.timestamp[k] == 1004;
    t_check(loo == 1, "leave-one-out: the last interaction is the test item");
    t_status(mrec_split_users(&x, MREC_SPLITTER_RANDOM, 1.5, 0, 0, 1), MREC_ERR_ARG, "ratio outside (0, 1)");
    mrec_interactions_free(&x);

    /* Filters on MovieLens-100K: ratings >= 4, 10-core, against counts computed in Python. */
    char path[512];
    const char *ml100k = t_data(path, sizeof path, "ml-100k/raw/u.data");
    if (!ml100k) {
        t_skip("filters on ML-100K: ml-100k/raw/u.data not found");
        return;
    }
    for (int iterative = 0; iterative < 2; iterative++) {
        if (!t_status(mrec_load_tsv(&x, ml100k), MREC_OK, "load u.data")) return;
        t_status(mrec_filter(&x, 4.0f, 10, 10, iterative), MREC_OK, "filter");
        long want_n = iterative ? 52764 : 52866;
        int want_u = iterative ? 887 : 897, want_i = iterative ? 822 : 824;
        t_check(x.n == want_n && x.n_users == want_u && x.n_items == want_i,
                "ml-100k rating >= 4, %s10-core: %lld pairs, %d users, %d items (want %ld, %d, %d)",
                iterative ? "iterative " : "", (long long)x.n, x.n_users, x.n_items, want_n, want_u, want_i);
        mrec_interactions_free(&x);
    }
}

/* ---- ItemKNN on a hand-computed case ------------------------------------------------------ */

static void test_itemknn(mrec_context *ctx) {
    /* u0 {0,1}, u1 {0,1,2}, u2 {2,3}: cos(0,1) = 1, cos(0,2) = cos(1,2) = 0.5, cos(2,3) = 1/sqrt 2 */
    int64_t row_ptr[4] = {0, 2, 5, 7};
    int32_t col[7] = {0, 1, 0, 1, 2, 2, 3};
    float val[7] = {1, 1, 1, 1, 1, 1, 1};
    mrec_user_items train = {3, 4, row_ptr, col, val};
    mrec_model m;
    if (!t_status(mrec_itemknn_create(&m, &train, 2, ctx), MREC_OK, "itemknn")) return;
    float scores[3 * 4];
    m.score(m.self, 0, 3, scores);
    /* k = 2: item 2 keeps 3 (0.707) and 0 (0.5, the lower of two ties) */
    float want_u2[4] = {0.5f, 0.5f, 0.70710678f, 0.70710678f}, want_u0[4] = {1.0f, 1.0f, 0.5f, 0.0f};
    t_allclose("itemknn scores of u2", want_u2, scores + 8, 4, 1e-6, 0);
    t_allclose("itemknn scores of u0", want_u0, scores, 4, 1e-6, 0);
    mrec_model_destroy(&m);
    t_status(mrec_itemknn_create(&m, &train, 9, ctx), MREC_ERR_ARG, "k larger than the item count");
}

/* ---- gradients by finite differences ------------------------------------------------- */

static void test_gradients(mrec_context *ctx) {
    /* 5 users, 6 items */
    mrec_user_items train = {5, 6, NULL, NULL, NULL};
    int64_t row_ptr[6] = {0, 2, 4, 5, 7, 9};
    int32_t col[9] = {0, 1, 2, 4, 1, 5, 0, 3, 4};
    float val[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    train.row_ptr = row_ptr, train.col = col, train.val = val;
    mrec_rng rng = {3};
    mrec_model m;
    if (t_status(mrec_bprmf_create(&m, 5, 6, 4, 0.3f, &rng, ctx), MREC_OK, "bprmf")) {
        for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 20; /* away from the flat start */
        for (int64_t e = 0; e < m.size[1]; e++) m.param[1][e] *= 20;
        check_gradients(&m, "bprmf");
        mrec_bprmf_use_ops(&m); /* the GPU's path, on the CPU */
        check_gradients(&m, "bprmf through the op entries");
        mrec_model_destroy(&m);
    }
    mrec_graph g;
    if (t_status(mrec_graph_normalized(&g, &train), MREC_OK, "graph")) {
        /* the degree normalization: user 0 (2 items) and item 0 (users 0, 3) */
        t_check(g.n_nodes == 11 && g.row_ptr[1] == 2 && g.col[0] == 5 && fabsf(g.val[0] - 0.5f) < 1e-6f, "normalized adjacency");
        for (int layers = 0; layers <= 3; layers += 3)
            if (t_status(mrec_lightgcn_create(&m, &g, 5, 6, 4, layers, 0.3f, &rng, ctx), MREC_OK, "lightgcn")) {
                for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 5;
                check_gradients(&m, layers ? "lightgcn (3 layers)" : "lightgcn (0 layers)");
                mrec_lightgcn_use_authors_loss(&m);
                check_gradients(&m, layers ? "lightgcn, authors' loss (3 layers)" : "lightgcn, authors' loss (0 layers)");
                mrec_lightgcn_use_ops(&m);
                check_gradients(&m, layers ? "lightgcn, authors' loss (3 layers), op entries"
                                           : "lightgcn, authors' loss (0 layers), op entries");
                mrec_model_destroy(&m);
            }
        for (int layers = 0; layers <= 3; layers += 3)
            if (t_status(mrec_lightgcn_create(&m, &g, 5, 6, 4, layers, 0.3f, &rng, ctx), MREC_OK, "lightgcn")) {
                for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 5;
                mrec_lightgcn_use_ops(&m);
                check_gradients(&m, layers ? "lightgcn (3 layers), op entries" : "lightgcn (0 layers), op entries");
                mrec_model_destroy(&m);
            }
        mrec_graph_free(&g);
    }
    if (t_status(mrec_graph_mean_self(&g, &train), MREC_OK, "mean graph with self-loops")) {
        /* user 0: itself and items 0, 1 -> 1/3 each, diagonal first */
        t_check(g.row_ptr[1] == 3 && g.col[0] == 0 && g.col[1] == 5 && fabsf(g.val[0] - 1.0f / 3) < 1e-7f, "D^-1 (A + I)");
        if (t_status(mrec_ngcf_create(&m, &g, 5, 6, 4, 2, 0.1f, 0, 0, &rng, ctx), MREC_OK, "ngcf")) {
            for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 5;
            check_gradients(&m, "ngcf (2 layers, no dropout)");
            /* the op path against the host loops' gradients just checked: its loss sums the scores in float, too
             * coarse for finite differences at these scales */
            static const int32_t u[6] = {0, 1, 2, 3, 4, 1}, pos[6] = {0, 2, 1, 5, 3, 4}, neg[6] = {3, 5, 4, 0, 1, 1};
            double lh = m.loss_grad(m.self, u, pos, neg, 6);
            int64_t total = 0;
            for (int p = 0; p < m.n_params; p++) total += m.size[p];
            float *host = malloc(sizeof(float) * (size_t)total), *ops = malloc(sizeof(float) * (size_t)total);
            for (int p = 0, at = 0; p < m.n_params; at += (int)m.size[p], p++) memcpy(host + at, m.grad[p], sizeof(float) * (size_t)m.size[p]);
            if (t_status(mrec_ngcf_use_ops(&m), MREC_OK, "ngcf's op path")) {
                double lo = m.loss_grad(m.self, u, pos, neg, 6);
                for (int p = 0, at = 0; p < m.n_params; at += (int)m.size[p], p++) memcpy(ops + at, m.grad[p], sizeof(float) * (size_t)m.size[p]);
                t_check(fabs(lo - lh) <= 1e-5 * fabs(lh), "ngcf through the op entries: the host loops' loss (%.8f, %.8f)", lo, lh);
                t_allclose("ngcf through the op entries: the host loops' gradients", host, ops, total, 1e-5, 1e-4);
            }
            free(host), free(ops);
            mrec_model_destroy(&m);
        }
        /* the op path draws the host loops' masks: with dropout, the same losses and gradients step after step
         * (float sums in other orders: 1e-5) */
        {
            static const int32_t u[4] = {0, 1, 2, 4}, pos[4] = {0, 2, 1, 5}, neg[4] = {3, 5, 4, 1};
            mrec_model mm[2];
            int made = 0;
            for (int path = 0; path < 2; path++) {
                mrec_rng r = {5};
                if (t_status(mrec_ngcf_create(&mm[path], &g, 5, 6, 4, 2, 0.1f, 0.4f, 0.3f, &r, ctx), MREC_OK, "ngcf with dropout"))
                    made++;
            }
            if (made == 2 && t_status(mrec_ngcf_use_ops(&mm[1]), MREC_OK, "ngcf's op path")) {
                int same = 1;
                double l0 = 0, l1 = 0;
                for (int step = 0; step < 3 && same; step++) {
                    l0 = mm[0].loss_grad(mm[0].self, u, pos, neg, 4), l1 = mm[1].loss_grad(mm[1].self, u, pos, neg, 4);
                    same = fabs(l0 - l1) <= 1e-5 * fabs(l0);
                    for (int p = 0; p < mm[0].n_params && same; p++)
                        for (int64_t e = 0; e < mm[0].size[p] && same; e++)
                            same = fabsf(mm[0].grad[p][e] - mm[1].grad[p][e]) <= 1e-5f + 1e-4f * fabsf(mm[0].grad[p][e]);
                }
                t_check(same, "ngcf with dropout: the op path's losses and gradients follow the host loops' (%.8f, %.8f)", l0, l1);
            }
            for (int path = 0; path < made; path++) mrec_model_destroy(&mm[path]);
        }
        /* with dropout: masks change from step to step, not with the thread count */
        static const int32_t u[3] = {0, 1, 2}, pos[3] = {0, 2, 1}, neg[3] = {3, 5, 4};
        double loss[2][2];
        for (int t = 0; t < 2; t++) {
            mrec_context_options o = mrec_context_defaults();
            o.device = MREC_WANT_CPU, o.n_threads = t + 1;
            mrec_context *c1;
            mrec_context_create(&c1, &o);
            mrec_rng r = {11};
            if (mrec_ngcf_create(&m, &g, 5, 6, 4, 2, 0.1f, 0.3f, 0.3f, &r, c1) == MREC_OK) {
                loss[t][0] = m.loss_grad(m.self, u, pos, neg, 3);
                loss[t][1] = m.loss_grad(m.self, u, pos, neg, 3);
                mrec_model_destroy(&m);
            }
            mrec_context_destroy(c1);
        }
        t_check(loss[0][0] == loss[1][0] && loss[0][1] == loss[1][1], "ngcf dropout: same losses on 1 and 2 threads");
        t_check(loss[0][0] != loss[0][1], "ngcf dropout: a new mask each step");
        mrec_graph_free(&g);
    }
}

/* ---- training parity with PyTorch -------------------------------------------------------- */

/* Same initial weights and batches as tools/golden/recsys.py: the loss at
 * every Adam step and the final embeddings agree to 1e-4 (float32 on both
 * sides, summed in different orders: differences are ~1e-6). */
static void test_trajectory(mrec_context *ctx) {
    cJSON *c = read_fixture_json("tests/fixtures/recsys/trajectory.json");
    if (!c) return;
    int U = cJSON_GetObjectItem(c, "n_users")->valueint, I = cJSON_GetObjectItem(c, "n_items")->valueint;
    int d = cJSON_GetObjectItem(c, "dim")->valueint;
    float lr = (float)cJSON_GetObjectItem(c, "lr")->valuedouble, reg = (float)cJSON_GetObjectItem(c, "reg")->valuedouble;
    /* the training pairs -> user lists -> graph */
    mrec_user_items train;
    build_train(&train, cJSON_GetObjectItem(c, "pairs"), U, I);
    mrec_graph g, gm;
    mrec_graph_normalized(&g, &train);
    mrec_graph_mean_self(&gm, &train);
    static const char *names[3] = {"bprmf", "lightgcn", "ngcf"};
    for (int run = 0; run < 6; run++) {
        /* runs 3 to 5: the three through the op entries, the path a GPU context takes */
        int which = run % 3, ops = run >= 3;
        const cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "models"), names[which]);
        mrec_rng rng = {1};
        mrec_model m;
        int layers = cJSON_GetObjectItem(ref, "layers")->valueint;
        mrec_status st = which == 2 ? mrec_ngcf_create(&m, &gm, U, I, d, layers, reg, 0, 0, &rng, ctx)
                         : which   ? mrec_lightgcn_create(&m, &g, U, I, d, layers, reg, &rng, ctx)
                                   : mrec_bprmf_create(&m, U, I, d, reg, &rng, ctx);
        if (!t_status(st, MREC_OK, "create %s", names[which])) continue;
        if (ops && which == 0) mrec_bprmf_use_ops(&m);
        if (ops && which == 1) mrec_lightgcn_use_ops(&m);
        if (ops && which == 2 && !t_status(mrec_ngcf_use_ops(&m), MREC_OK, "ngcf's op path")) {
            mrec_model_destroy(&m);
            continue;
        }
        const char *via = ops ? " through the op entries" : "";
        /* PyTorch's initial weights; LightGCN and NGCF keep users then items in one table */
        fill_floats(m.param[0], cJSON_GetObjectItem(c, "user0"));
        fill_floats(which ? m.param[0] + (size_t)U * d : m.param[1], cJSON_GetObjectItem(c, "item0"));
        if (which == 2) {
            int t = 1;
            for (const cJSON *w = cJSON_GetObjectItem(c, "ngcf_weights0")->child; w; w = w->next) fill_floats(m.param[t++], w);
        }
        mrec_optimizer adam;
        mrec_adam_init(&adam, lr, 0);
        for (int p = 0; p < m.n_params; p++) mrec_adam_add(&adam, m.param[p], m.grad[p], m.size[p]);
        const cJSON *want = cJSON_GetObjectItem(ref, "losses")->child;
        int step = 0, bad = 0;
        for (const cJSON *b = cJSON_GetObjectItem(c, "batches")->child; b; b = b->next, want = want->next, step++) {
            int32_t us[64], ps[64], ns[64];
            int nb = 0;
            for (const cJSON *v = b->child->child; v; v = v->next) us[nb++] = v->valueint;
            nb = 0;
            for (const cJSON *v = b->child->next->child; v; v = v->next) ps[nb++] = v->valueint;
            nb = 0;
            for (const cJSON *v = b->child->next->next->child; v; v = v->next) ns[nb++] = v->valueint;
            double loss = m.loss_grad(m.self, us, ps, ns, nb);
            if (fabs(loss - want->valuedouble) > 1e-4 && bad++ < 3)
                fprintf(stderr, "  %s%s step %d: loss %.7f, PyTorch %.7f\n", names[which], via, step, loss, want->valuedouble);
            mrec_adam_step(&adam, ctx);
        }
        t_check(bad == 0 && step == 6, "%s%s: loss trajectory matches PyTorch (%d of %d steps differ)", names[which], via, bad,
                step);
        float *wu = malloc(sizeof *wu * (size_t)U * d), *wi = malloc(sizeof *wi * (size_t)I * d);
        fill_floats(wu, cJSON_GetObjectItem(ref, "user"));
        fill_floats(wi, cJSON_GetObjectItem(ref, "item"));
        char what[96];
        snprintf(what, sizeof what, "%s users after 6 steps%s", names[which], via);
        t_allclose(what, wu, m.param[0], (int64_t)U * d, 1e-4, 0);
        snprintf(what, sizeof what, "%s items after 6 steps%s", names[which], via);
        t_allclose(what, wi, which ? m.param[0] + (size_t)U * d : m.param[1], (int64_t)I * d, 1e-4, 0);
        if (which == 2) {
            int t = 1;
            for (const cJSON *w = cJSON_GetObjectItem(ref, "weights")->child; w; w = w->next, t++) {
                float want[64 * 64];
                fill_floats(want, w);
                snprintf(what, sizeof what, "ngcf weight %d after 6 steps%s", t, via);
                t_allclose(what, want, m.param[t], m.size[t], 1e-4, 0);
            }
        }
        free(wu), free(wi);
        mrec_adam_free(&adam);
        mrec_model_destroy(&m);
    }
    mrec_graph_free(&g);
    mrec_graph_free(&gm);
    mrec_user_items_free(&train);
    cJSON_Delete(c);
}

/* Drawing the next epoch's triples on a helper thread (sample_ahead, on by default on a GPU) gives the same
 * triples as drawing them in turn: the same epoch losses and the same trained weights, for both samplers. */
static void fit_losses(void *arg, const char *line) {
    double *l = arg;
    const char *at = strstr(line, "loss ");
    if (at && l[0] < 8) l[1 + (int)l[0]++] = atof(at + 5);
}

static void test_sample_ahead(mrec_context *ctx) {
    enum { U = 120, I = 90, PER = 7 };
    int64_t ptr[U + 1], tptr[U + 1];
    int32_t col[U * PER], tcol[U];
    float one[U * PER];
    for (int u = 0; u < U; u++) {
        ptr[u] = (int64_t)u * PER, tptr[u] = u;
        for (int e = 0; e < PER; e++) col[u * PER + e] = (int32_t)((u * 3 + e * 11) % I); /* distinct per user, sorted below */
        for (int a = 1; a < PER; a++) /* rows sorted, as mrec_user_items keeps them */
            for (int b = a; b > 0 && col[u * PER + b - 1] > col[u * PER + b]; b--) {
                int32_t t = col[u * PER + b];
                col[u * PER + b] = col[u * PER + b - 1], col[u * PER + b - 1] = t;
            }
        tcol[u] = (int32_t)((u * 3 + 5) % I);
        for (int e = 0; e < PER; e++) one[u * PER + e] = 1;
    }
    ptr[U] = (int64_t)U * PER, tptr[U] = U;
    mrec_user_items train = {U, I, ptr, col, one}, test = {U, I, tptr, tcol, one};
    for (int by_users = 0; by_users < 2; by_users++) {
        double losses[2][9] = {{0}};
        float *w[2] = {NULL, NULL};
        size_t bytes = 0; /* of every parameter, one after another */
        mrec_fit_result r[2];
        int ok = 1;
        for (int ahead = 0; ahead < 2; ahead++) {
            mrec_rng rng = {5};
            mrec_model m;
            if (!t_status(mrec_bprmf_create(&m, U, I, 8, 1e-4f, &rng, ctx), MREC_OK, "bprmf")) return;
            mrec_fit_options opt = mrec_fit_defaults();
            opt.epochs = 4, opt.batch_size = 64, opt.lr = 0.01f, opt.sample_users = by_users, opt.sample_ahead = ahead, opt.select_k = 10;
            opt.log = fit_losses, opt.log_ctx = losses[ahead];
            int k[1] = {10};
            memset(&r[ahead], 0, sizeof r[ahead]);
            ok &= t_status(mrec_fit(&r[ahead], &m, &train, NULL, &test, k, 1, 1, &opt, ctx), MREC_OK, "fit, sample_ahead %d", ahead);
            bytes = 0;
            for (int p = 0; p < m.n_params; p++) bytes += sizeof(float) * (size_t)m.size[p];
            w[ahead] = malloc(bytes);
            for (size_t p = 0, at = 0; w[ahead] && p < (size_t)m.n_params; at += sizeof(float) * (size_t)m.size[p++])
                memcpy((char *)w[ahead] + at, m.param[p], sizeof(float) * (size_t)m.size[p]);
            ok &= w[ahead] != NULL;
            mrec_model_destroy(&m);
        }
        t_check(ok && losses[0][0] == 4 && !memcmp(losses[0], losses[1], sizeof losses[0]) && !memcmp(w[0], w[1], bytes) &&
                    !memcmp(r[0].test.value, r[1].test.value, sizeof r[0].test.value),
                "%s: the next epoch drawn on a helper thread gives the same losses (%.6f .. %.6f), weights and metrics",
                by_users ? "sample_users" : "shuffled pairs", losses[1][1], losses[1][4]);
        free(w[0]), free(w[1]), free(r[0].topk), free(r[1].topk);
    }
}

/* A model whose loss stays where its step ran (mrec_model.step): mrec_fit adds the batches' losses there and reads
 * them once an epoch. BPRMF through the op entries against its host loops, on the same batches: the epoch losses (the
 * scores summed in double there, in float here: 1e-6), and a learning rate that makes a batch's loss infinite stops
 * both at the same epoch and batch, the error naming them. */
static void test_loss_on_device(mrec_context *ctx) {
    enum { U = 60, I = 50, PER = 5 };
    int64_t ptr[U + 1], tptr[U + 1];
    int32_t col[U * PER], tcol[U];
    float one[U * PER];
    for (int u = 0; u <= U; u++) ptr[u] = (int64_t)u * PER, tptr[u] = u;
    for (int u = 0; u < U; u++) {
        for (int e = 0; e < PER; e++) col[u * PER + e] = (int32_t)((u * 7 + e * 11) % I), one[u * PER + e] = 1;
        tcol[u] = (int32_t)((u * 3 + 1) % I);
    }
    for (int u = 0; u < U; u++) /* distinct items in each row, ascending */
        for (int a = 1; a < PER; a++)
            for (int b = a; b > 0 && col[u * PER + b] < col[u * PER + b - 1]; b--) {
                int32_t t = col[u * PER + b];
                col[u * PER + b] = col[u * PER + b - 1], col[u * PER + b - 1] = t;
            }
    mrec_user_items train = {U, I, ptr, col, one}, test = {U, I, tptr, tcol, one};
    double losses[2][9] = {{0}};
    char errors[2][256] = {"", ""};
    for (int path = 0; path < 2; path++)
        for (int blow = 0; blow < 2; blow++) {
            mrec_rng rng = {9};
            mrec_model m;
            if (!t_status(mrec_bprmf_create(&m, U, I, 8, 1e-3f, &rng, ctx), MREC_OK, "bprmf")) return;
            if (path) mrec_bprmf_use_ops(&m);
            t_check(m.step != NULL, "bprmf: a step that leaves its loss where it ran");
            mrec_fit_options opt = mrec_fit_defaults();
            opt.epochs = 3, opt.batch_size = 32, opt.lr = blow ? 1e30f : 0.01f, opt.select_k = 10, opt.sample_ahead = 0;
            opt.log = fit_losses, opt.log_ctx = losses[path];
            int k[1] = {10};
            mrec_fit_result r;
            mrec_status st = mrec_fit(&r, &m, &train, NULL, &test, k, 1, 1, &opt, ctx);
            if (blow) {
                t_check(st == MREC_ERR_ARG, "bprmf (%s), learning rate 1e30: training stops", path ? "op path" : "host loops");
                snprintf(errors[path], sizeof errors[path], "%s", mrec_error_detail());
            } else {
                t_status(st, MREC_OK, "bprmf (%s): three epochs", path ? "op path" : "host loops");
            }
            mrec_fit_result_free(&r);
            mrec_model_destroy(&m);
        }
    int close = losses[0][0] == 3 && losses[1][0] == 3;
    for (int e = 1; e <= 3; e++) close &= fabs(losses[1][e] - losses[0][e]) <= 1e-6 * fabs(losses[0][e]);
    t_check(close, "bprmf: the epoch losses summed where the op path ran equal the host loops' (%.8f %.8f, %.8f %.8f)", losses[0][1],
            losses[1][1], losses[0][3], losses[1][3]);
    const char *at = strstr(errors[1], "at epoch");
    t_check(at && strstr(errors[0], "at epoch") && !strcmp(at, strstr(errors[0], "at epoch")),
            "bprmf: an infinite loss stops both paths at the same batch (\"%s\", \"%s\")", errors[0], errors[1]);
}

/* ---- subnormals flushed while training ----
 * A model that notes, in its step, whether the thread flushes subnormals and what a subnormal product gives on the
 * pool (the ops' threads): mrec_fit's batches and mrec_fit_batch train with them flushed; its evaluations (the
 * model's scores) keep the caller's mode, as mrec recommend ranks; and the caller has its own mode back after, an
 * error's return included. */
typedef struct {
    int steps, flushed, kept, scored, scored_flushed;
    mrec_context *ctx;
} mode_probe;

static void tiny_products(void *arg, int task, int thread) {
    (void)thread;
    volatile float a = 1e-20f, b = 1e-20f;
    ((float *)arg)[task] = a * b; /* 1e-40: subnormal, or 0 where flushed */
}

static double probe_loss(void *self, const int32_t *user, const int32_t *pos, const int32_t *neg, int n) {
    (void)user, (void)pos, (void)neg, (void)n;
    mode_probe *p = self;
    float out[16];
    mrec_pool_run(p->ctx->pool, tiny_products, out, 16);
    int zero = 1;
    for (int t = 0; t < 16; t++) zero &= out[t] == 0.0f;
    p->steps++, p->flushed += mrec_flushing_subnormals() && zero, p->kept += !mrec_flushing_subnormals() && !zero;
    return p->steps == 5 ? NAN : 0.5; /* the fifth step stops training */
}

static mrec_status probe_scores(void *self, int u0, int n, float *scores) {
    (void)u0;
    mode_probe *p = self;
    p->scored++, p->scored_flushed += mrec_flushing_subnormals();
    memset(scores, 0, sizeof *scores * (size_t)n * 3);
    return MREC_OK;
}

static void test_subnormals(mrec_context *ctx) {
#if defined(__x86_64__) || defined(__i386__)
    int64_t ptr[3] = {0, 1, 2};
    int32_t tr_col[2] = {0, 1}, te_col[2] = {2, 0};
    float ones[2] = {1, 1}, w[4] = {0}, g[4] = {0};
    mrec_user_items train = {2, 3, ptr, tr_col, ones}, test = {2, 3, ptr, te_col, ones};
    mode_probe probe = {.ctx = ctx};
    mrec_model m = {.name = "probe", .self = &probe, .n_params = 1, .param = {w}, .grad = {g}, .size = {4},
                    .loss_grad = probe_loss, .score = probe_scores};
    mrec_fit_options opt = mrec_fit_defaults();
    opt.epochs = 2, opt.batch_size = 1, opt.select_k = 1, opt.sample_ahead = 0;
    int k[1] = {1};
    mrec_fit_result r;
    t_status(mrec_fit(&r, &m, &train, NULL, &test, k, 1, 1, &opt, ctx), MREC_OK, "fit: two epochs of the probe");
    mrec_fit_result_free(&r);
    t_check(probe.steps == 4 && probe.flushed == 4, "fit: all %d steps flushed subnormals, the pool's threads too (%d)", probe.steps,
            probe.flushed);
    t_check(!mrec_flushing_subnormals(), "fit: the caller's mode back after training");
    t_check(probe.scored > 0 && probe.scored_flushed == 0, "fit: its %d evaluations' scores in the caller's mode", probe.scored);
    opt.epochs = 3;
    t_check(mrec_fit(&r, &m, &train, NULL, &test, k, 1, 1, &opt, ctx) == MREC_ERR_ARG, "fit: a NaN loss stops the probe");
    mrec_fit_result_free(&r);
    t_check(probe.steps == 5 && probe.flushed == 5 && !mrec_flushing_subnormals(),
            "fit: flushed until the error, the caller's mode back after it");
    mrec_optimizer adam;
    mrec_adam_init(&adam, 0.01f, 0);
    mrec_adam_add(&adam, w, g, 4);
    mrec_loss_sum sum = {.bad = -1}; /* a CPU context's sum: in host memory */
    int32_t u = 0, i = 0, j = 1;
    t_status(mrec_fit_batch(&m, &adam, &sum, &u, &i, &j, 1, ctx), MREC_OK, "fit_batch: one batch of the probe");
    t_check(probe.flushed == 6 && !mrec_flushing_subnormals(), "fit_batch: its step flushed, the caller's mode back after");
    mrec_adam_free(&adam);
    probe_loss(&probe, &u, &i, &j, 1);
    t_check(probe.kept == 1, "outside training the pool's threads keep subnormals");
    /* a row's top k whose k-th best is 0 (most scores 0, as ItemKNN's and LATTICE's graph rows can be): the same
     * items flushed or not; the bar just below 0 is a subnormal, which DAZ reads as 0 */
    enum { C = 640, K = 20 };
    float row[C], val[2][K];
    int32_t idx[2][K];
    for (int c = 0; c < C; c++) row[c] = c % 97 == 3 ? 1.0f + c : 0.0f;
    for (int flush = 0; flush < 2; flush++) {
        mrec_fp_mode before = {0};
        if (flush) before = mrec_flush_subnormals_begin();
        t_status(mrec_topk_rows(ctx, idx[flush], val[flush], row, 1, C, K), MREC_OK, "top %d of a row of zeros and a few scores", K);
        if (flush) mrec_flush_subnormals_end(before);
    }
    t_check(!memcmp(idx[0], idx[1], sizeof idx[0]) && !memcmp(val[0], val[1], sizeof val[0]) && idx[0][K - 1] == 13,
            "top %d with subnormals flushed: the same items (last %d, %d)", K, idx[0][K - 1], idx[1][K - 1]);
#else
    (void)ctx;
    t_skip("subnormals flushed in training: x86 only");
#endif
}

int main(void) {
    t_suite("recsys");
    T_REQUIRE(mkdtemp(tmpdir) != NULL);
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_metrics(ctx);
    /* the same on a GPU, where the host computes a block's metrics while the device ranks the next (blocks of 7) */
    mrec_context *gpu = NULL;
    o.device = MREC_WANT_CUDA;
    test_rank_metrics(ctx);
    if (mrec_context_create(&gpu, &o) == MREC_OK) test_metrics(gpu), test_rank_metrics(gpu), mrec_context_destroy(gpu);
    else t_no_gpu(mrec_error_detail()), t_skip("the metrics on a GPU context: %s", mrec_error_detail());
    o.device = MREC_WANT_CPU;
    test_gradients(ctx);
    test_itemknn(ctx);
    test_trajectory(ctx);
    test_sample_ahead(ctx);
    test_loss_on_device(ctx);
    test_subnormals(ctx);
    test_loaders();
    test_splits();
    test_real_data();
    mrec_context_destroy(ctx);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_finish();
}
