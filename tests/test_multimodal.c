/* test_multimodal.c: item features (every layout, missing items, knockout)
 * and the multimodal recommenders: gradients by finite differences and the
 * loss trajectories of tools/golden/multimodal.py's PyTorch runs (1e-4: both
 * sides float32, summed in different orders, ~1e-6 apart).
 */
#include "harness.h"
#include "model_checks.h"

#include "../nn/mrec_npy.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[] = "/tmp/mrec_test_mm_XXXXXX";

/* Four items named "0", "2", "5", "7" (numeric: dense 0..3 keep that order). */
static void four_items(mrec_interactions *x, char **names) {
    memset(x, 0, sizeof *x);
    static const char *const n[4] = {"0", "2", "5", "7"};
    x->n_items = 4;
    x->item_names = names;
    for (int i = 0; i < 4; i++) names[i] = (char *)n[i];
}

static void write_matrix(const char *path, int rows, int dim, float base) {
    float v[64];
    for (int r = 0; r < rows; r++)
        for (int d = 0; d < dim; d++) v[r * dim + d] = base + 10 * r + d;
    int64_t shape[2] = {rows, dim};
    mrec_npy_write(path, MREC_NPY_F32, 2, shape, v);
}

/* Non-finite features: an error naming the row and the item, whichever layout,
 * before the mean of the rows could spread them to other items. */
static void test_bad_features(void) {
    mrec_interactions x;
    char *names[4];
    four_items(&x, names);
    char path[1100], ids[1100];
    mrec_features f;
    float v[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    int64_t shape[2] = {8, 2};
    /* MMRec layout: row 2 is item "2" (items 0, 2, 5, 7 of 8 rows) */
    v[5] = NAN;
    snprintf(path, sizeof path, "%s/nan_feat.npy", tmp);
    mrec_npy_write(path, MREC_NPY_F32, 2, shape, v);
    t_status(mrec_features_load(&f, "visual", path, &x), MREC_ERR_FORMAT, "a NaN feature");
    t_check(strstr(mrec_error_detail(), "nan_feat.npy: row 2 (item '2'), column 1: NaN") != NULL, "names row and item: %s",
            mrec_error_detail());
    /* a NaN in a row no item uses is never read */
    v[5] = 5, v[3] = NAN;
    mrec_npy_write(path, MREC_NPY_F32, 2, shape, v);
    if (t_status(mrec_features_load(&f, "visual", path, &x), MREC_OK, "a NaN in row 1, which no item has")) mrec_features_free(&f);
    /* joined by ids: the row of the matrix and the id on it */
    v[3] = 3, v[8] = INFINITY;
    snprintf(path, sizeof path, "%s/inf_feat.npy", tmp);
    mrec_npy_write(path, MREC_NPY_F32, 2, shape, v);
    snprintf(ids, sizeof ids, "%s/inf_feat_ids.txt", tmp);
    FILE *fp = fopen(ids, "w");
    if (fp) fputs("7\n5\n2\n0\nx\ny\nz\nw\n", fp), fclose(fp);
    if (t_status(mrec_features_load(&f, "visual", path, &x), MREC_OK, "an infinity in row 4, whose id 'x' is no item"))
        mrec_features_free(&f);
    v[8] = 8, v[4] = -INFINITY; /* row 2, named "2" by the ids file */
    mrec_npy_write(path, MREC_NPY_F32, 2, shape, v);
    t_status(mrec_features_load(&f, "visual", path, &x), MREC_ERR_FORMAT, "an infinite feature joined by id");
    t_check(strstr(mrec_error_detail(), "inf_feat.npy: row 2 (item '2'), column 0: infinite") != NULL, "names row and item: %s",
            mrec_error_detail());
    /* Ducho's folder: the item's file */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/nan_items", tmp);
    mkdir(dir, 0755);
    int64_t one[1] = {2};
    float good[2] = {1, 2}, bad[2] = {3, NAN};
    snprintf(path, sizeof path, "%s/0.npy", dir);
    mrec_npy_write(path, MREC_NPY_F32, 1, one, good);
    snprintf(path, sizeof path, "%s/5.npy", dir);
    mrec_npy_write(path, MREC_NPY_F32, 1, one, bad);
    t_status(mrec_features_load(&f, "textual", dir, &x), MREC_ERR_FORMAT, "a NaN in a per-item file");
    t_check(strstr(mrec_error_detail(), "nan_items/5.npy: value 1 (item '5'): NaN") != NULL, "names the file and item: %s",
            mrec_error_detail());
    /* a FIFO where the ids file would be is refused, not waited on */
    snprintf(path, sizeof path, "%s/fifo_feat.npy", tmp);
    mrec_npy_write(path, MREC_NPY_F32, 2, shape, v);
    snprintf(ids, sizeof ids, "%s/fifo_feat_ids.txt", tmp);
    alarm(20);
    if (mkfifo(ids, 0600) == 0) {
        t_status(mrec_features_load(&f, "visual", path, &x), MREC_ERR_IO, "a FIFO as the ids file");
        t_check(strstr(mrec_error_detail(), "fifo_feat_ids.txt: is a FIFO") != NULL, "named: %s", mrec_error_detail());
    }
    alarm(0);
}

static void test_features(void) {
    mrec_interactions x;
    char *names[4];
    four_items(&x, names);
    char path[1100], dir[512];
    mrec_features f;

    /* MMRec: row r is item r (rows of items filtered away are simply unused) */
    snprintf(path, sizeof path, "%s/mmrec.npy", tmp);
    write_matrix(path, 9, 2, 0);
    if (t_status(mrec_features_load(&f, "visual", path, &x), MREC_OK, "bare matrix")) {
        float want[8] = {0, 1, 20, 21, 50, 51, 70, 71};
        t_allclose("rows by item id", want, f.x, 8, 1e-6, 0);
        t_check(f.n_missing == 0 && f.dim == 2, "no item missing (%d)", f.n_missing);
        mrec_features_free(&f);
    }
    /* item 7 past the 6 rows: the matrix numbers items otherwise; an error, not a mean-filled row */
    write_matrix(path, 6, 2, 0);
    t_status(mrec_features_load(&f, "visual", path, &x), MREC_ERR_SHAPE, "an item past the bare matrix's rows");
    t_check(strstr(mrec_error_detail(), "item '7'") != NULL && strstr(mrec_error_detail(), "6 rows") != NULL,
            "the message names the item and the rows: %s", mrec_error_detail());
    /* with ids beside it: rows in any order, unknown ids ignored */
    snprintf(path, sizeof path, "%s/image_feat.npy", tmp);
    write_matrix(path, 3, 2, 100);
    snprintf(dir, sizeof dir, "%s/image_feat_ids.txt", tmp);
    FILE *ids = fopen(dir, "w");
    fputs("7\nnot-an-item\n0\n", ids);
    fclose(ids);
    if (t_status(mrec_features_load(&f, "visual", path, &x), MREC_OK, "matrix with ids")) {
        float want[8] = {120, 121, 110, 111, 110, 111, 100, 101};
        t_allclose("rows joined by id; items 2 and 5 get the mean", want, f.x, 8, 1e-6, 0);
        t_check(f.n_missing == 2, "two items missing (%d)", f.n_missing);
        mrec_features_free(&f);
    }
    ids = fopen(dir, "w");
    fputs("7\n0\n7\n", ids);
    fclose(ids);
    t_status(mrec_features_load(&f, "visual", path, &x), MREC_ERR_FORMAT, "an id twice");
    t_check(strstr(mrec_error_detail(), "line 3") != NULL, "the message names the line: %s", mrec_error_detail());
    ids = fopen(dir, "w");
    fputs("7\n0\n", ids);
    fclose(ids);
    t_status(mrec_features_load(&f, "visual", path, &x), MREC_ERR_SHAPE, "fewer ids than rows");
    /* Ducho: a folder of <id>.npy */
    snprintf(dir, sizeof dir, "%s/per_item", tmp);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/5.npy", dir);
    write_matrix(path, 1, 3, 1);
    snprintf(path, sizeof path, "%s/2.npy", dir);
    write_matrix(path, 1, 3, 4);
    if (t_status(mrec_features_load(&f, "textual", dir, &x), MREC_OK, "per-item folder")) {
        float want[12] = {2.5f, 3.5f, 4.5f, 4, 5, 6, 1, 2, 3, 2.5f, 3.5f, 4.5f};
        t_allclose("per-item files by id", want, f.x, 12, 1e-6, 0);
        mrec_rng rng = {5};
        mrec_features_knockout(&f, 0, &rng);
        float mean[3] = {2.5f, 3.5f, 4.5f};
        int same = 1;
        for (int i = 0; i < 4; i++) same &= fabsf(f.x[i * 3] - mean[0]) < 1e-6f && fabsf(f.x[i * 3 + 2] - mean[2]) < 1e-6f;
        t_check(same, "knockout (constant): every item gets the per-dimension mean");
        mrec_features_free(&f);
    }
    snprintf(path, sizeof path, "%s/7.npy", dir);
    write_matrix(path, 1, 4, 0);
    t_status(mrec_features_load(&f, "textual", dir, &x), MREC_ERR_SHAPE, "a per-item file of another size");
    /* names that are not row numbers need an ids file */
    char *words[4] = {"a", "b", "c", "d"};
    mrec_interactions y = x;
    y.item_names = words;
    snprintf(path, sizeof path, "%s/mmrec.npy", tmp);
    t_status(mrec_features_load(&f, "visual", path, &y), MREC_ERR_FORMAT, "string ids without an ids file");
    t_check(strstr(mrec_error_detail(), "'a'") != NULL, "the message names the item: %s", mrec_error_detail());
    t_status(mrec_features_load(&f, "visual", "no/such.npy", &x), MREC_ERR_IO, "a missing file");
    /* knockout with noise keeps each dimension's mean and spread */
    mrec_features big = {.n_items = 4000, .dim = 2};
    big.x = malloc(sizeof(float) * 8000);
    for (int i = 0; i < 4000; i++) big.x[2 * i] = (float)(i % 10), big.x[2 * i + 1] = 5;
    mrec_rng rng = {9};
    mrec_features_knockout(&big, 1, &rng);
    double m0 = 0, v0 = 0, m1 = 0;
    for (int i = 0; i < 4000; i++) m0 += big.x[2 * i] / 4000.0, m1 += big.x[2 * i + 1] / 4000.0;
    for (int i = 0; i < 4000; i++) v0 += (big.x[2 * i] - m0) * (big.x[2 * i] - m0) / 4000.0;
    t_check(fabs(m0 - 4.5) < 0.2 && fabs(sqrt(v0) - sqrt(8.25)) < 0.2 && fabs(m1 - 5) < 1e-6,
            "knockout (noise): mean %.3f std %.3f (want 4.5, 2.872), a constant dimension stays %.3f", m0, sqrt(v0), m1);
    free(big.x);
}

/* ---- models against PyTorch ---- */

/* skip: parameters not compared after the steps (see test_freedom) */
static void run_steps(mrec_model *m, const cJSON *c, const cJSON *ref, const char *name, unsigned skip, mrec_context *ctx) {
    float lr = (float)cJSON_GetObjectItem(c, "lr")->valuedouble;
    mrec_optimizer adam;
    mrec_adam_init(&adam, lr, 0);
    for (int k = 0; k < m->n_params; k++) mrec_adam_add(&adam, m->param[k], m->grad[k], m->size[k]);
    const cJSON *want = cJSON_GetObjectItem(ref, "losses")->child;
    int step = 0, bad = 0;
    for (const cJSON *b = cJSON_GetObjectItem(c, "batches")->child; b; b = b->next, want = want->next, step++) {
        int32_t t[3][64];
        int nb = 0;
        const cJSON *col = b->child;
        for (int k = 0; k < 3; k++, col = col->next) {
            nb = 0;
            for (const cJSON *v = col->child; v; v = v->next) t[k][nb++] = v->valueint;
        }
        double loss = m->loss_grad(m->self, t[0], t[1], t[2], nb);
        if (fabs(loss - want->valuedouble) > 1e-4 && bad++ < 3)
            fprintf(stderr, "  %s step %d: loss %.7f, PyTorch %.7f\n", name, step, loss, want->valuedouble);
        mrec_adam_step_active(&adam, m->active, ctx);
    }
    t_check(bad == 0 && step == 6, "%s: loss trajectory matches PyTorch (%d of %d steps differ)", name, bad, step);
    int p = 0;
    for (const cJSON *w = cJSON_GetObjectItem(ref, "weights")->child; w; w = w->next, p++) {
        if (skip >> p & 1) continue;
        float *wv = malloc(sizeof(float) * (size_t)m->size[p]);
        fill_floats(wv, w);
        char what[64];
        snprintf(what, sizeof what, "%s parameter %d after 6 steps", name, p);
        t_allclose(what, wv, m->param[p], m->size[p], 1e-4, 0);
        free(wv);
    }
    mrec_adam_free(&adam);
}

/* The trajectory fixture: sizes, features (visual 6-d, textual 5-d), training lists. */
typedef struct {
    cJSON *c;
    int U, I, d;
    float reg;
    mrec_features feat[2];
    mrec_user_items train;
} fixture;

static int fixture_open(fixture *fx) {
    memset(fx, 0, sizeof *fx);
    if (!(fx->c = read_fixture_json("tests/fixtures/multimodal/trajectory.json"))) return 0;
    fx->U = cJSON_GetObjectItem(fx->c, "n_users")->valueint, fx->I = cJSON_GetObjectItem(fx->c, "n_items")->valueint;
    fx->d = cJSON_GetObjectItem(fx->c, "dim")->valueint;
    fx->reg = (float)cJSON_GetObjectItem(fx->c, "reg")->valuedouble;
    static const char *const names[2] = {"visual", "textual"};
    for (int m = 0; m < 2; m++) {
        fx->feat[m] = (mrec_features){.n_items = fx->I, .dim = m ? 5 : 6};
        snprintf(fx->feat[m].name, sizeof fx->feat[m].name, "%s", names[m]);
        fx->feat[m].x = malloc(sizeof(float) * (size_t)fx->I * fx->feat[m].dim);
        fill_floats(fx->feat[m].x, cJSON_GetObjectItem(fx->c, names[m]));
    }
    build_train(&fx->train, cJSON_GetObjectItem(fx->c, "pairs"), fx->U, fx->I);
    return 1;
}

static void fixture_close(fixture *fx) {
    free(fx->feat[0].x), free(fx->feat[1].x);
    mrec_user_items_free(&fx->train);
    cJSON_Delete(fx->c);
}

/* The model's PyTorch reference: initial weights in, the trajectory checked. */
static void against_pytorch(mrec_model *m, const fixture *fx, const char *name, unsigned skip, mrec_context *ctx) {
    const cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(fx->c, "models"), name);
    int p = 0;
    for (const cJSON *w = cJSON_GetObjectItem(ref, "init")->child; w; w = w->next) fill_floats(m->param[p++], w);
    run_steps(m, fx->c, ref, name, skip, ctx);
}

static void test_vbpr(mrec_context *ctx) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    int I = fx.I;
    float *feat = malloc(sizeof(float) * (size_t)I * 11);
    for (int i = 0; i < I; i++) { /* MMRec's order: textual, then visual */
        memcpy(feat + (size_t)i * 11, fx.feat[1].x + (size_t)i * 5, sizeof(float) * 5);
        memcpy(feat + (size_t)i * 11 + 5, fx.feat[0].x + (size_t)i * 6, sizeof(float) * 6);
    }
    mrec_rng rng = {1};
    mrec_model m;
    if (t_status(mrec_vbpr_create(&m, fx.U, I, fx.d, fx.reg, feat, 11, &rng, ctx), MREC_OK, "create vbpr")) {
        against_pytorch(&m, &fx, "vbpr", 0, ctx);
        mrec_model_destroy(&m);
    }
    /* the op path a GPU context takes, on this CPU context */
    mrec_rng ro = {1};
    if (t_status(mrec_vbpr_create(&m, fx.U, I, fx.d, fx.reg, feat, 11, &ro, ctx), MREC_OK, "create vbpr") &&
        t_status(mrec_vbpr_use_ops(&m), MREC_OK, "vbpr's op path"))
    {
        const cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(fx.c, "models"), "vbpr");
        int p = 0;
        for (const cJSON *w = cJSON_GetObjectItem(ref, "init")->child; w; w = w->next) fill_floats(m.param[p++], w);
        run_steps(&m, fx.c, ref, "vbpr through the op entries", 0, ctx);
    }
    if (m.self) mrec_model_destroy(&m);
    /* gradients on a 5-user, 6-item problem, weights scaled away from the flat start */
    for (int ops = 0; ops < 2; ops++) {
        mrec_rng r2 = {3};
        if (t_status(mrec_vbpr_create(&m, 5, 6, 4, 0.3f, feat, 11, &r2, ctx), MREC_OK, "small vbpr")) {
            for (int k = 0; k < 2; k++)
                for (int64_t e = 0; e < m.size[k]; e++) m.param[k][e] *= 10;
            for (int64_t e = 0; e < m.size[3]; e++) m.param[3][e] = 0.1f * (float)(e + 1);
            if (!ops || t_status(mrec_vbpr_use_ops(&m), MREC_OK, "vbpr's op path"))
                check_gradients(&m, ops ? "vbpr through the op entries" : "vbpr");
            mrec_model_destroy(&m);
        }
    }
    free(feat);
    fixture_close(&fx);
}

static void test_freedom(mrec_context *ctx) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    const cJSON *c = fx.c;
    int I = fx.I, d = fx.d;
    float reg = fx.reg;
    mrec_features *feat = fx.feat;
    /* the kNN item graph, built a block at a time, equals MMRec's dense construction */
    mrec_graph s;
    const float *xs[2] = {feat[0].x, feat[1].x};
    int dims[2] = {6, 5};
    float weights[2] = {0.1f, 0.9f};
    if (t_status(mrec_graph_knn(&s, xs, dims, weights, 2, I, 3, ctx), MREC_OK, "knn graph")) {
        float *dense = calloc((size_t)I * I, sizeof *dense), *want = malloc(sizeof(float) * (size_t)I * I);
        for (int r = 0; r < I; r++)
            for (int64_t e = s.row_ptr[r]; e < s.row_ptr[r + 1]; e++) dense[(size_t)r * I + s.col[e]] = s.val[e];
        fill_floats(want, cJSON_GetObjectItem(c, "freedom_item_graph"));
        t_allclose("kNN item graph (k 3, visual 0.1 + textual 0.9) vs MMRec's dense construction", want, dense, (int64_t)I * I, 1e-7, 0);
        free(dense), free(want);
    }
    /* the cache: a second build reads the file; changed features or a damaged file build anew */
    int from = -1;
    mrec_graph g1, g2;
    if (t_status(mrec_graph_knn_cached(&g1, xs, dims, weights, 2, I, 3, tmp, &from, ctx), MREC_OK, "cached build") && !from &&
        t_status(mrec_graph_knn_cached(&g2, xs, dims, weights, 2, I, 3, tmp, &from, ctx), MREC_OK, "cached read")) {
        t_check(from == 1 && g1.row_ptr[I] == g2.row_ptr[I] && !memcmp(g1.col, g2.col, sizeof *g1.col * (size_t)g1.row_ptr[I]) &&
                    !memcmp(g1.val, g2.val, sizeof *g1.val * (size_t)g1.row_ptr[I]),
                "the cached graph is read back the same");
        mrec_graph_free(&g2);
        feat[1].x[7] += 1e-3f;
        mrec_graph_knn_cached(&g2, xs, dims, weights, 2, I, 3, tmp, &from, ctx);
        t_check(from == 0, "changed features do not reuse the cached graph");
        feat[1].x[7] -= 1e-3f;
        mrec_graph_free(&g2);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "for f in %s/knn-*.bin; do printf 'garbage' | dd of=$f bs=1 seek=200 conv=notrunc 2>/dev/null; done", tmp);
        if (system(cmd) == 0 && t_status(mrec_graph_knn_cached(&g2, xs, dims, weights, 2, I, 3, tmp, &from, ctx), MREC_OK, "damaged"))
            t_check(!memcmp(g1.col, g2.col, sizeof *g1.col * (size_t)g1.row_ptr[I]), "a damaged file is rebuilt (from cache: %d)", from);
        mrec_graph_free(&g1), mrec_graph_free(&g2);
    }
    mrec_user_items train = fx.train;
    mrec_graph full;
    mrec_graph_normalized(&full, &train);
    mrec_rng rng = {1};
    mrec_model m;
    if (t_status(mrec_freedom_create(&m, &full, &s, &train, feat, 2, d, 2, reg, 0, &rng, ctx), MREC_OK, "create freedom")) {
        /* The projections' biases (parameters 2 and 5) have a gradient that is zero in exact
         * arithmetic (a bias adds the same to a positive's and a negative's score), so Adam moves
         * them by rounding noise, in PyTorch as here: they are not compared. */
        against_pytorch(&m, &fx, "freedom", 1u << 2 | 1u << 5, ctx);
        mrec_model_destroy(&m);
    }
    /* the op path a GPU context takes, on this CPU context */
    mrec_rng ro = {1};
    if (t_status(mrec_freedom_create(&m, &full, &s, &train, feat, 2, d, 2, reg, 0, &ro, ctx), MREC_OK, "create freedom") &&
        t_status(mrec_freedom_use_ops(&m), MREC_OK, "freedom's op path")) {
        const cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "models"), "freedom");
        int p = 0;
        for (const cJSON *w = cJSON_GetObjectItem(ref, "init")->child; w; w = w->next) fill_floats(m.param[p++], w);
        run_steps(&m, c, ref, "freedom through the op entries", 1u << 2 | 1u << 5, ctx);
    }
    if (m.self) mrec_model_destroy(&m);
    /* with pruning: the op path prunes as the host loops do (the same draws), so the losses agree step after step */
    {
        static const int32_t u[4] = {0, 1, 2, 3}, pi[4] = {1, 2, 3, 4}, ni[4] = {5, 6, 7, 8};
        mrec_model mm[2];
        int made = 0;
        for (int path = 0; path < 2; path++) {
            mrec_rng r = {9};
            if (t_status(mrec_freedom_create(&mm[path], &full, &s, &train, feat, 2, d, 2, reg, 0.3f, &r, ctx), MREC_OK, "freedom, dropout 0.3"))
                made++;
        }
        if (made == 2 && t_status(mrec_freedom_use_ops(&mm[1]), MREC_OK, "freedom's op path")) {
            int same = 1;
            double l0 = 0, l1 = 0;
            for (int epoch = 0; epoch < 3 && same; epoch++) {
                same = mm[0].epoch_start(mm[0].self) == MREC_OK && mm[1].epoch_start(mm[1].self) == MREC_OK;
                l0 = mm[0].loss_grad(mm[0].self, u, pi, ni, 4), l1 = mm[1].loss_grad(mm[1].self, u, pi, ni, 4);
                same = same && fabs(l0 - l1) <= 1e-5 * fabs(l0);
                for (int p = 0; p < mm[0].n_params && same; p++)
                    for (int64_t e = 0; e < mm[0].size[p] && same; e++)
                        same = fabsf(mm[0].grad[p][e] - mm[1].grad[p][e]) <= 1e-6f + 1e-4f * fabsf(mm[0].grad[p][e]);
            }
            t_check(same, "freedom with pruning: the op path's losses and gradients follow the host loops' (%.8f, %.8f)", l0, l1);
        }
        for (int path = 0; path < made; path++) mrec_model_destroy(&mm[path]);
    }
    /* edge pruning: each epoch a different sample, the loss stays finite */
    mrec_rng r3 = {7};
    if (t_status(mrec_freedom_create(&m, &full, &s, &train, feat, 2, d, 2, reg, 0.5f, &r3, ctx), MREC_OK, "freedom, dropout 0.5")) {
        static const int32_t u[4] = {0, 1, 2, 3}, pi[4] = {1, 2, 3, 4}, ni[4] = {5, 6, 7, 8};
        double l1 = NAN, l2 = NAN;
        if (t_status(m.epoch_start(m.self), MREC_OK, "prune")) l1 = m.loss_grad(m.self, u, pi, ni, 4);
        if (t_status(m.epoch_start(m.self), MREC_OK, "prune again")) l2 = m.loss_grad(m.self, u, pi, ni, 4);
        t_check(isfinite(l1) && isfinite(l2) && l1 != l2, "two pruned graphs give two losses (%.6f, %.6f)", l1, l2);
        mrec_model_destroy(&m);
    }
    /* gradients on the first 5 users and 6 items' worth of the same graph */
    mrec_rng r2 = {3};
    if (t_status(mrec_freedom_create(&m, &full, &s, &train, feat, 2, 4, 2, 0.7f, 0, &r2, ctx), MREC_OK, "freedom d=4")) {
        for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 10;
        check_gradients(&m, "freedom");
        if (t_status(mrec_freedom_use_ops(&m), MREC_OK, "freedom's op path")) check_gradients(&m, "freedom through the op entries");
        mrec_model_destroy(&m);
    }
    mrec_graph_free(&full), mrec_graph_free(&s);
    fixture_close(&fx);
}

static void test_lattice(mrec_context *ctx) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    mrec_graph g;
    mrec_graph_mean_self(&g, &fx.train);
    mrec_rng rng = {1};
    mrec_model m;
    if (t_status(mrec_lattice_create(&m, &g, fx.feat, 2, fx.U, fx.d, 3, 0.9f, fx.reg, 32, &rng, ctx), MREC_OK, "create lattice")) {
        m.epoch_start(m.self); /* one epoch: the graph is learned at the first batch, detached after */
        against_pytorch(&m, &fx, "lattice", 0, ctx);
        mrec_model_destroy(&m);
    }
    mrec_rng r2 = {3};
    /* k = every item: no selection boundary for a finite difference to cross */
    if (t_status(mrec_lattice_create(&m, &g, fx.feat, 2, fx.U, 4, fx.I, 0.9f, 0.7f, 6, &r2, ctx), MREC_OK, "lattice d=4")) {
        mrec_lattice_rebuild_every_batch(&m);
        for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 10;
        m.param[m.n_params - 1][0] = 0.9f; /* unequal modality weights */
        check_gradients(&m, "lattice (graph rebuilt at each batch)");
        mrec_model_destroy(&m);
    }
    mrec_graph_free(&g);
    fixture_close(&fx);
}

static void test_bm3(mrec_context *ctx) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    mrec_graph g;
    mrec_graph_normalized(&g, &fx.train);
    mrec_rng rng = {1};
    mrec_model m;
    if (t_status(mrec_bm3_create(&m, &g, fx.feat, 2, fx.U, fx.d, 2, fx.reg, 2.0f, 0, &rng, ctx), MREC_OK, "create bm3")) {
        against_pytorch(&m, &fx, "bm3", 0, ctx);
        mrec_model_destroy(&m);
    }
    mrec_rng r2 = {3};
    if (t_status(mrec_bm3_create(&m, &g, fx.feat, 2, fx.U, 4, 2, 0.7f, 2.0f, 0, &r2, ctx), MREC_OK, "bm3 d=4")) {
        for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 10;
        mrec_bm3_freeze_targets(&m); /* the targets carry no gradient: hold them for the finite differences */
        check_gradients(&m, "bm3 (targets held)");
        mrec_model_destroy(&m);
    }
    /* dropout draws new targets at each call: the loss changes, stays finite */
    mrec_rng r3 = {5};
    if (t_status(mrec_bm3_create(&m, &g, fx.feat, 2, fx.U, fx.d, 2, fx.reg, 2.0f, 0.5f, &r3, ctx), MREC_OK, "bm3 with dropout")) {
        static const int32_t u[4] = {0, 1, 2, 3}, it[4] = {1, 2, 3, 4};
        double l1 = m.loss_grad(m.self, u, it, it, 4), l2 = m.loss_grad(m.self, u, it, it, 4);
        t_check(isfinite(l1) && isfinite(l2) && l1 != l2, "dropped-out targets differ between calls (%.6f, %.6f)", l1, l2);
        mrec_model_destroy(&m);
    }
    mrec_graph_free(&g);
    fixture_close(&fx);
}

static void test_ngcfm(mrec_context *ctx) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    int I = fx.I;
    float *feat = malloc(sizeof(float) * (size_t)I * 11);
    for (int i = 0; i < I; i++) { /* the fork's concat: visual, then textual */
        memcpy(feat + (size_t)i * 11, fx.feat[0].x + (size_t)i * 6, sizeof(float) * 6);
        memcpy(feat + (size_t)i * 11 + 6, fx.feat[1].x + (size_t)i * 5, sizeof(float) * 5);
    }
    mrec_graph g;
    mrec_graph_mean_self(&g, &fx.train);
    mrec_rng rng = {1};
    mrec_model m;
    if (t_status(mrec_ngcfm_create(&m, &g, fx.U, I, feat, 11, fx.d, 2, fx.reg, 0, 0, &rng, ctx), MREC_OK, "create ngcfm")) {
        against_pytorch(&m, &fx, "ngcfm", 0, ctx);
        mrec_model_destroy(&m);
    }
    /* Elliot's sampling: distinct users within a batch, positives theirs, negatives not */
    mrec_bpr_sampler smp;
    if (t_status(mrec_bpr_sampler_init(&smp, &fx.train), MREC_OK, "sampler")) {
        mrec_rng sr = {11};
        mrec_bpr_sampler_epoch_users(&smp, &sr, 8);
        int bad = 0;
        for (int64_t k = 0; k < smp.n; k++) {
            int u = smp.user[k], has_pos = 0, has_neg = 0;
            for (int64_t e = fx.train.row_ptr[u]; e < fx.train.row_ptr[u + 1]; e++)
                has_pos |= fx.train.col[e] == smp.pos[k], has_neg |= fx.train.col[e] == smp.neg[k];
            for (int64_t q = k - k % 8; q < k; q++) bad += smp.user[q] == u;
            bad += !has_pos || has_neg;
        }
        t_check(bad == 0, "user sampling: %lld triples in batches of 8, %d problems", (long long)smp.n, bad);
        mrec_bpr_sampler_free(&smp);
    }
    /* node dropout: a new dropped graph each epoch, the loss changes and stays finite */
    mrec_rng r3 = {9};
    if (t_status(mrec_ngcfm_create(&m, &g, fx.U, I, feat, 11, fx.d, 2, fx.reg, 0, 0.3f, &r3, ctx), MREC_OK, "ngcfm, node dropout")) {
        static const int32_t u[4] = {0, 1, 2, 3}, pi[4] = {1, 2, 3, 4}, ni[4] = {5, 6, 7, 8};
        double l1 = NAN, l2 = NAN;
        if (t_status(m.epoch_start(m.self), MREC_OK, "drop")) l1 = m.loss_grad(m.self, u, pi, ni, 4);
        if (t_status(m.epoch_start(m.self), MREC_OK, "drop again")) l2 = m.loss_grad(m.self, u, pi, ni, 4);
        t_check(isfinite(l1) && isfinite(l2) && l1 != l2, "two dropped graphs give two losses (%.6f, %.6f)", l1, l2);
        mrec_model_destroy(&m);
    }
    mrec_rng r2 = {3};
    if (t_status(mrec_ngcfm_create(&m, &g, fx.U, I, feat, 11, 4, 2, 0.7f, 0, 0, &r2, ctx), MREC_OK, "ngcfm d=4")) {
        check_gradients(&m, "ngcfm");
        mrec_model_destroy(&m);
    }
    mrec_graph_free(&g);
    free(feat);
    fixture_close(&fx);
}

int main(void) {
    t_suite("multimodal");
    T_REQUIRE(mkdtemp(tmp) != NULL);
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_features();
    test_bad_features();
    test_vbpr(ctx);
    test_freedom(ctx);
    test_lattice(ctx);
    test_bm3(ctx);
    test_ngcfm(ctx);
    mrec_context_destroy(ctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return t_finish();
}
