/* test_graph_cl.c: SimGCL and SGL, the graph contrastive models of the
 * Ducho-meets-Elliot benchmark's fork, and its multimodal LightGCN-M.
 *
 * Gradients against central finite differences with the randomness held
 * (SimGCL's noise fixed, SGL's views drawn only at an epoch's start).
 * Training against tools/golden/graph_cl.py, a PyTorch restatement of the
 * fork given the same initial weights, batches, noise draws and views: the
 * loss at every Adam step and the embeddings after the last agree to 1e-4
 * (float32 on both sides in different orders; the differences are ~1e-6).
 * Then a seeded run gives the same losses twice, and a short run on
 * ML-100K from ../shared/data prints its Recall@20 (checked only for
 * being a number above chance).
 */
#include "harness.h"
#include "model_checks.h"

#include "../nn/mrec_npy.h"
#include "../recsys/mrec_recsys.h"
#include "../recsys/mrec_registry.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DATA "../shared/data/"

/* 5 users, 6 items: the graph check_gradients' batches run on */
static int64_t row_ptr[6] = {0, 2, 4, 5, 7, 9};
static int32_t col[9] = {0, 1, 2, 4, 1, 5, 0, 3, 4};
static float val[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};

static void test_gradients(mrec_context *ctx) {
    mrec_user_items train = {5, 6, row_ptr, col, val};
    mrec_graph g;
    if (!t_status(mrec_graph_normalized(&g, &train), MREC_OK, "graph")) return;
    mrec_model m;
    mrec_rng rng = {3};
    for (int layers = 1; layers <= 3; layers += 2)
        if (t_status(mrec_simgcl_create(&m, &g, 5, 6, 4, layers, 0.3f, 0.1f, 0.5f, 0.2f, &rng, ctx), MREC_OK, "simgcl")) {
            for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 5;
            mrec_simgcl_set_noise(&m, NULL);
            check_gradients(&m, layers == 1 ? "simgcl (1 layer)" : "simgcl (3 layers)");
            mrec_model_destroy(&m);
        }
    /* without the contrastive terms (weight 0) the views are skipped: what is left still checks */
    if (t_status(mrec_simgcl_create(&m, &g, 5, 6, 4, 2, 0.3f, 0.1f, 0, 0.2f, &rng, ctx), MREC_OK, "simgcl, reg_cl 0")) {
        for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 5;
        check_gradients(&m, "simgcl (reg_cl 0)");
        mrec_model_destroy(&m);
    }
    if (t_status(mrec_sgl_create(&m, &g, &train, 4, 2, 0.3f, 0, 0.3f, 0.5f, 1, &rng, ctx), MREC_OK, "sgl, ssl_reg 0")) {
        for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 5;
        check_gradients(&m, "sgl (ssl_reg 0)");
        mrec_model_destroy(&m);
    }
    /* layers 0: E0 is not in SimGCL's mean, so nothing would be left */
    t_status(mrec_simgcl_create(&m, &g, 5, 6, 4, 0, 0.3f, 0.1f, 0.5f, 0.2f, &rng, ctx), MREC_ERR_ARG, "simgcl with no layer is refused");
    static const char *aug[3] = {"nd", "ed", "rw"};
    for (int a = 0; a < 3; a++)
        if (t_status(mrec_sgl_create(&m, &g, &train, 4, 2, 0.3f, 0.5f, 0.3f, 0.5f, a, &rng, ctx), MREC_OK, "sgl %s", aug[a])) {
            for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 5;
            char name[32];
            snprintf(name, sizeof name, "sgl (%s, 2 layers)", aug[a]);
            check_gradients(&m, name);
            mrec_model_destroy(&m);
        }
    /* LightGCN-M: two modalities averaged or summed, or one (concat) */
    float f0[6 * 5], f1[6 * 3];
    uint64_t seed = 5;
    t_fill_uniform(f0, 30, &seed, -1, 1), t_fill_uniform(f1, 18, &seed, -1, 1);
    const float *fs[2] = {f0, f1};
    int dims[2] = {5, 3};
    static const char *agg[3] = {"mean", "sum", "one modality"};
    for (int a = 0; a < 3; a++)
        if (t_status(mrec_lightgcnm_create(&m, &g, 5, 6, fs, dims, a == 2 ? 1 : 2, a == 1, 4, 2, 0.3f, &rng, ctx), MREC_OK, "lightgcnm")) {
            for (int64_t e = 0; e < m.size[0]; e++) m.param[0][e] *= 5;
            char name[48];
            snprintf(name, sizeof name, "lightgcnm (%s, 2 layers)", agg[a]);
            check_gradients(&m, name);
            mrec_model_destroy(&m);
        }
    mrec_graph_free(&g);
}

/* The randomness is the model's own: the same seed gives the same losses,
 * a new epoch's views (SGL) and each step's noise (SimGCL) change them. */
static void test_seeded(mrec_context *ctx) {
    mrec_user_items train = {5, 6, row_ptr, col, val};
    mrec_graph g;
    if (!t_status(mrec_graph_normalized(&g, &train), MREC_OK, "graph")) return;
    static const int32_t u[3] = {0, 1, 2}, pos[3] = {0, 2, 1}, neg[3] = {3, 5, 4};
    for (int which = 0; which < 2; which++) {
        double loss[2][2];
        for (int t = 0; t < 2; t++) {
            mrec_rng rng = {7};
            mrec_model m;
            mrec_status st = which ? mrec_sgl_create(&m, &g, &train, 4, 2, 0.1f, 0.5f, 0.3f, 0.2f, 1, &rng, ctx)
                                   : mrec_simgcl_create(&m, &g, 5, 6, 4, 2, 0.1f, 0.1f, 0.5f, 0.2f, &rng, ctx);
            if (!t_status(st, MREC_OK, "create")) return;
            loss[t][0] = m.loss_grad(m.self, u, pos, neg, 3);
            if (m.epoch_start) m.epoch_start(m.self);
            loss[t][1] = m.loss_grad(m.self, u, pos, neg, 3);
            mrec_model_destroy(&m);
        }
        const char *name = which ? "sgl" : "simgcl";
        t_check(loss[0][0] == loss[1][0] && loss[0][1] == loss[1][1], "%s: the same seed gives the same losses", name);
        t_check(loss[0][0] != loss[0][1], "%s: new draws give another loss (%.7f, %.7f)", name, loss[0][0], loss[0][1]);
    }
    mrec_graph_free(&g);
}

/* Views that keep no pair at all (every edge dropped) leave the views at E0 / (L + 1): a finite loss, no failure. */
static void test_empty_views(mrec_context *ctx) {
    mrec_user_items train = {5, 6, row_ptr, col, val};
    mrec_graph g;
    if (!t_status(mrec_graph_normalized(&g, &train), MREC_OK, "graph")) return;
    static const int32_t u[3] = {0, 1, 2}, pos[3] = {0, 2, 1}, neg[3] = {3, 5, 4};
    mrec_rng rng = {9};
    mrec_model m;
    if (t_status(mrec_sgl_create(&m, &g, &train, 4, 2, 0.1f, 0.5f, 0.99f, 0.2f, 1, &rng, ctx), MREC_OK, "sgl, 99%% of the edges dropped")) {
        double loss = m.loss_grad(m.self, u, pos, neg, 3);
        t_check(isfinite(loss) && m.epoch_start(m.self) == MREC_OK, "sgl with empty views: loss %g", loss);
        mrec_model_destroy(&m);
    }
    mrec_graph_free(&g);
}

/* The benchmark's configs name the models by Elliot class and keys: every key
 * of its SimGCL template and of the fork's SGL and LightGCN-M is taken. */
static void test_registry_keys(void) {
    static const struct {
        const char *cls, *keys[12];
    } want[] = {
        {"external.SimGCL", {"lr", "epochs", "factors", "batch_size", "l_w", "n_layers", "eps", "reg_cl", "seed"}},
        {"external.SGL", {"lr", "epochs", "factors", "batch_size", "l_w", "n_layers", "ssl_temp", "ssl_reg", "ssl_ratio", "sampling", "seed"}},
        {"external.LightGCNM", {"lr", "epochs", "factors", "batch_size", "l_w", "n_layers", "aggregation", "seed"}},
    };
    for (size_t c = 0; c < sizeof want / sizeof want[0]; c++) {
        const mrec_model_entry *e = mrec_model_find(want[c].cls);
        if (!t_check(e != NULL, "%s is in the registry", want[c].cls)) continue;
        int all = 1;
        for (int k = 0; want[c].keys[k]; k++) all &= mrec_model_param_elliot(e, want[c].keys[k]) != NULL;
        t_check(all, "%s: every Elliot key of the fork is a hyper-parameter", want[c].cls);
    }
    /* SimGCL's defaults are the template's */
    mrec_param_values p;
    const mrec_model_entry *e = mrec_model_find("simgcl");
    if (e && t_status(mrec_params_resolve(&p, e, NULL), MREC_OK, "simgcl defaults"))
        t_check(mrec_hp_int(&p, MREC_HP_LAYERS) == 3 && mrec_hp_int(&p, MREC_HP_BATCH_SIZE) == 1024 && mrec_hp_real(&p, MREC_HP_EPS) == 0.1f &&
                    mrec_hp_real(&p, MREC_HP_REG) == 1e-4f && mrec_hp_int(&p, MREC_HP_EPOCHS) == 200 && mrec_hp_u64(&p, MREC_HP_SEED) == 123,
                "simgcl: the benchmark template's n_layers, batch_size, eps, l_w, epochs and seed");
}

/* mrec train on an Elliot config with the benchmark's SimGCL block (its grid
 * of reg_cl, epochs cut to 2), the fork's SGL and LightGCN-M: all three
 * run, none is left out. Runs the binary in $MREC_BIN. */
static void test_config(void) {
    const char *bin = getenv("MREC_BIN");
    if (!bin) {
        t_skip("mrec train CONFIG: MREC_BIN is not set");
        return;
    }
    char dir[] = "/tmp/mrec-graph-cl-XXXXXX", cwd[2048], path[4200], abs_bin[4200];
    if (!t_check(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL, "a scratch folder")) return;
    if (bin[0] != '/') snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin), bin = abs_bin;
    /* 60 users on bands of 40 items; 8-d item features in a folder of <id>.npy */
    const char *names[3] = {"train.tsv", "val.tsv", "test.tsv"};
    for (int s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[s]);
        FILE *f = fopen(path, "w");
        for (int u = 0; u < 60 && f; u++)
            for (int j = 0; j < 8; j++) {
                int item = (u / 3 + j * 2 + (j % 2)) % 40, split = j < 6 ? 0 : j - 5;
                if (split == s) fprintf(f, "u%d\ti%d\t1\n", u, item);
            }
        if (f) fclose(f);
    }
    snprintf(path, sizeof path, "%s/feat", dir);
    mkdir(path, 0755);
    uint64_t seed = 11;
    for (int i = 0; i < 40; i++) {
        float x[8];
        int64_t shape[1] = {8};
        t_fill_uniform(x, 8, &seed, -1, 1);
        snprintf(path, sizeof path, "%s/feat/i%d.npy", dir, i);
        mrec_npy_write(path, MREC_NPY_F32, 1, shape, x);
    }
    const char *config = "experiment:\n"
                         "  dataset: tiny\n"
                         "  data_config:\n"
                         "    strategy: fixed\n"
                         "    train_path: train.tsv\n"
                         "    validation_path: val.tsv\n"
                         "    test_path: test.tsv\n"
                         "    side_information:\n"
                         "      - dataloader: VisualAttribute\n"
                         "        visual_features: feat\n"
                         "  top_k: 20\n"
                         "  evaluation:\n"
                         "    cutoffs: [10, 20]\n"
                         "    simple_metrics: [Recall, nDCG]\n"
                         "  models:\n"
                         "    external.SimGCL:\n"
                         "      meta:\n"
                         "        hyper_opt_alg: grid\n"
                         "        verbose: True\n"
                         "        save_weights: False\n"
                         "        validation_rate: 10\n"
                         "        validation_metric: Recall@20\n"
                         "        restore: False\n"
                         "      lr: [ 0.001 ]\n"
                         "      epochs: 2\n"
                         "      factors: 64\n"
                         "      batch_size: 1024\n"
                         "      l_w: 1e-4\n"
                         "      n_layers: 3\n"
                         "      eps: 0.1\n"
                         "      reg_cl: [0.5, 2]\n"
                         "      seed: 123\n"
                         "    external.SGL:\n"
                         "      lr: 0.001\n"
                         "      epochs: 2\n"
                         "      factors: 16\n"
                         "      l_w: 0.01\n"
                         "      n_layers: 2\n"
                         "      ssl_temp: 0.2\n"
                         "      ssl_reg: 0.1\n"
                         "      ssl_ratio: 0.1\n"
                         "      sampling: ed\n"
                         "    external.LightGCNM:\n"
                         "      lr: 0.001\n"
                         "      epochs: 2\n"
                         "      factors: 16\n"
                         "      l_w: 0.01\n"
                         "      n_layers: 1\n"
                         "      normalize: True\n"
                         "      aggregation: mean\n"
                         "      modalities: ('visual',)\n"
                         "      loaders: ('VisualAttribute',)\n";
    snprintf(path, sizeof path, "%s/cl.yml", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs(config, f), fclose(f);
    char cmd[9000], out[65536];
    snprintf(cmd, sizeof cmd, "cd %s && %s train cl.yml --out res --threads 1 2>&1", dir, bin);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = 0;
    int st = p ? pclose(p) : -1, rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    t_check(rc == 0 && strstr(out, "SimGCL dim=64,layers=3") && strstr(out, "reg_cl=2") && strstr(out, "augment=ed") &&
                strstr(out, "LightGCN-M") && !strstr(out, "left out"),
            "mrec train on the benchmark's SimGCL block, SGL and LightGCN-M: exit %d, %.600s", rc, rc ? out : "");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

static int read_ints(int32_t *dst, const cJSON *arr) {
    int n = 0;
    for (const cJSON *v = arr->child; v; v = v->next) dst[n++] = v->valueint;
    return n;
}

static void test_trajectory(mrec_context *ctx) {
    cJSON *c = read_fixture_json("tests/fixtures/graph_cl/trajectory.json");
    if (!c) return;
    int U = cJSON_GetObjectItem(c, "n_users")->valueint, I = cJSON_GetObjectItem(c, "n_items")->valueint;
    int d = cJSON_GetObjectItem(c, "dim")->valueint, layers = cJSON_GetObjectItem(c, "layers")->valueint;
    mrec_user_items train;
    const cJSON *pairs = cJSON_GetObjectItem(c, "pairs");
    build_train(&train, pairs, U, I);
    int n_pairs = cJSON_GetArraySize(pairs);
    mrec_graph g;
    mrec_graph_normalized(&g, &train);
    size_t total = (size_t)(U + I) * d;
    float *noise = malloc(sizeof *noise * 2 * (size_t)layers * total), *want = malloc(sizeof *want * total);
    uint8_t *keep = malloc(2 * (size_t)n_pairs);
    static const char *names[2] = {"simgcl", "sgl"};
    for (int which = 0; which < 2; which++) {
        const cJSON *ref = cJSON_GetObjectItem(c, names[which]);
        float l_w = (float)cJSON_GetObjectItem(ref, "l_w")->valuedouble, temp = (float)cJSON_GetObjectItem(ref, "temp")->valuedouble;
        float lr = (float)cJSON_GetObjectItem(ref, "lr")->valuedouble;
        mrec_rng rng = {1};
        mrec_model m;
        mrec_status st = which ? mrec_sgl_create(&m, &g, &train, d, layers, l_w, (float)cJSON_GetObjectItem(ref, "ssl_reg")->valuedouble,
                                                 0.1f, temp, 1, &rng, ctx)
                               : mrec_simgcl_create(&m, &g, U, I, d, layers, l_w, (float)cJSON_GetObjectItem(ref, "eps")->valuedouble,
                                                    (float)cJSON_GetObjectItem(ref, "reg_cl")->valuedouble, temp, &rng, ctx);
        if (!t_status(st, MREC_OK, "create %s", names[which])) continue;
        fill_floats(m.param[0], cJSON_GetObjectItem(c, "ego0"));
        mrec_optimizer adam;
        mrec_adam_init(&adam, lr, 0);
        mrec_adam_add(&adam, m.param[0], m.grad[0], m.size[0]);
        const cJSON *loss_ref = cJSON_GetObjectItem(ref, "losses")->child;
        const cJSON *draw = cJSON_GetObjectItem(ref, which ? "keep" : "noise")->child;
        int step = 0, bad = 0;
        for (const cJSON *b = cJSON_GetObjectItem(c, "batches")->child; b; b = b->next, step++) {
            int32_t us[64], ps[64], ns[64];
            int nb = read_ints(us, b->child);
            read_ints(ps, b->child->next);
            read_ints(ns, b->child->next->next);
            if (which) {
                int e = 0;
                for (const cJSON *v = draw->child; v; v = v->next) keep[e++] = (uint8_t)v->valueint;
                st = mrec_sgl_set_views(&m, keep);
            } else {
                fill_floats(noise, draw);
                mrec_simgcl_set_noise(&m, noise);
            }
            double loss = m.loss_grad(m.self, us, ps, ns, nb);
            if ((st || fabs(loss - loss_ref->valuedouble) > 1e-4) && bad++ < 3)
                fprintf(stderr, "  %s step %d: loss %.7f, PyTorch %.7f\n", names[which], step, loss, loss_ref->valuedouble);
            mrec_adam_step(&adam, ctx);
            draw = draw->next, loss_ref = loss_ref->next;
        }
        t_check(bad == 0 && step == 5, "%s: loss trajectory matches PyTorch (%d of %d steps differ)", names[which], bad, step);
        fill_floats(want, cJSON_GetObjectItem(ref, "ego"));
        char what[64];
        snprintf(what, sizeof what, "%s embeddings after 5 steps", names[which]);
        t_allclose(what, want, m.param[0], (int64_t)total, 1e-4, 0);
        mrec_adam_free(&adam);
        mrec_model_destroy(&m);
    }
    /* LightGCN-M: users, then per modality its features, projection weight and bias */
    const cJSON *ref = cJSON_GetObjectItem(c, "lightgcnm");
    float *feats[2];
    int dims[2], k = 0;
    for (const cJSON *f = cJSON_GetObjectItem(ref, "feat_dims")->child; f; f = f->next, k++) dims[k] = f->valueint;
    k = 0;
    for (const cJSON *f = cJSON_GetObjectItem(ref, "feats")->child; f; f = f->next, k++) {
        feats[k] = malloc(sizeof(float) * (size_t)I * dims[k]);
        fill_floats(feats[k], f);
    }
    mrec_rng rng = {1};
    mrec_model m;
    const float *fs[2] = {feats[0], feats[1]};
    float l_w = (float)cJSON_GetObjectItem(ref, "l_w")->valuedouble, lr = (float)cJSON_GetObjectItem(ref, "lr")->valuedouble;
    if (t_status(mrec_lightgcnm_create(&m, &g, U, I, fs, dims, 2, 0, d, layers, l_w, &rng, ctx), MREC_OK, "create lightgcnm")) {
        fill_floats(want, cJSON_GetObjectItem(c, "ego0")); /* the users' rows come first */
        memcpy(m.param[0], want, sizeof(float) * (size_t)U * d);
        const cJSON *w = cJSON_GetObjectItem(ref, "w0")->child, *b = cJSON_GetObjectItem(ref, "b0")->child;
        for (int q = 0; q < 2; q++, w = w->next, b = b->next) fill_floats(m.param[2 + 3 * q], w), fill_floats(m.param[3 + 3 * q], b);
        mrec_optimizer adam;
        mrec_adam_init(&adam, lr, 0);
        for (int p = 0; p < m.n_params; p++) mrec_adam_add(&adam, m.param[p], m.grad[p], m.size[p]);
        const cJSON *loss_ref = cJSON_GetObjectItem(ref, "losses")->child;
        int step = 0, bad = 0;
        for (const cJSON *bt = cJSON_GetObjectItem(c, "batches")->child; bt; bt = bt->next, step++, loss_ref = loss_ref->next) {
            int32_t us[64], ps[64], ns[64];
            int nb = read_ints(us, bt->child);
            read_ints(ps, bt->child->next);
            read_ints(ns, bt->child->next->next);
            double loss = m.loss_grad(m.self, us, ps, ns, nb);
            if (fabs(loss - loss_ref->valuedouble) > 1e-4 && bad++ < 3)
                fprintf(stderr, "  lightgcnm step %d: loss %.7f, PyTorch %.7f\n", step, loss, loss_ref->valuedouble);
            mrec_adam_step(&adam, ctx);
        }
        t_check(bad == 0 && step == 5, "lightgcnm: loss trajectory matches PyTorch (%d of %d steps differ)", bad, step);
        int p = 0;
        for (const cJSON *v = cJSON_GetObjectItem(ref, "params")->child; v; v = v->next, p++) {
            float *wv = malloc(sizeof(float) * (size_t)m.size[p]);
            fill_floats(wv, v);
            char what[64];
            snprintf(what, sizeof what, "lightgcnm parameter %d after 5 steps", p);
            t_allclose(what, wv, m.param[p], m.size[p], 1e-4, 0);
            free(wv);
        }
        t_check(p == m.n_params, "lightgcnm: %d parameters, PyTorch %d", m.n_params, p);
        mrec_adam_free(&adam);
        mrec_model_destroy(&m);
    }
    free(feats[0]), free(feats[1]);
    free(noise), free(want), free(keep);
    mrec_graph_free(&g);
    mrec_user_items_free(&train);
    cJSON_Delete(c);
}

/* A few epochs on ML-100K (MMRec's split rule): Recall@20 printed, checked
 * against chance only, since a few epochs say nothing about the paper's numbers. */
static void test_real_data(mrec_context *ctx) {
    const char *path = DATA "ml-100k/raw/u.data";
    if (access(path, R_OK) != 0) {
        t_skip("ml-100k: %s is not there", path);
        return;
    }
    mrec_interactions x;
    mrec_load_options quiet = mrec_load_defaults();
    quiet.notice = NULL;
    if (!t_status(mrec_load_tsv_opt(&x, path, &quiet), MREC_OK, "load u.data")) return;
    if (!t_status(mrec_split_mmrec_draw(&x, 999), MREC_OK, "split")) return;
    mrec_user_items train, valid, test;
    mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN);
    mrec_user_items_build(&valid, &x, MREC_SPLIT_VALID);
    mrec_user_items_build(&test, &x, MREC_SPLIT_TEST);
    mrec_graph g;
    mrec_graph_normalized(&g, &train);
    for (int which = 0; which < 2; which++) {
        mrec_rng rng = {123};
        mrec_model m;
        mrec_status st = which ? mrec_sgl_create(&m, &g, &train, 64, 2, 1e-4f, 0.1f, 0.1f, 0.2f, 1, &rng, ctx)
                               : mrec_simgcl_create(&m, &g, x.n_users, x.n_items, 64, 2, 1e-4f, 0.1f, 0.5f, 0.2f, &rng, ctx);
        if (!t_status(st, MREC_OK, "create on ml-100k")) continue;
        mrec_fit_options opt = mrec_fit_defaults();
        opt.epochs = 2, opt.lr = 0.001f, opt.batch_size = which ? 2048 : 1024, opt.seed = 123;
        int k[1] = {20};
        mrec_fit_result r;
        st = mrec_fit(&r, &m, &train, &valid, &test, k, 1, 0, &opt, ctx);
        double recall = r.test.value[MREC_METRIC_RECALL][0];
        printf("  %s on ml-100k, 2 epochs: test Recall@20 %.4f, valid %.4f (%.1f s training)\n", which ? "sgl" : "simgcl", recall,
               r.valid.value[MREC_METRIC_RECALL][0], r.train_seconds);
        /* a random ranking finds about 20 / 1682 of a user's test items */
        t_check(!st && recall > 3 * 20.0 / x.n_items && recall <= 1,
                "%s on ml-100k: test Recall@20 %.4f above chance", which ? "sgl" : "simgcl", recall);
        free(r.topk);
        mrec_model_destroy(&m);
    }
    mrec_graph_free(&g);
    mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
    mrec_interactions_free(&x);
}

int main(void) {
    t_suite("graph_cl");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_gradients(ctx);
    test_seeded(ctx);
    test_empty_views(ctx);
    test_registry_keys();
    test_config();
    test_trajectory(ctx);
    test_real_data(ctx);
    mrec_context_destroy(ctx);
    return t_finish();
}
