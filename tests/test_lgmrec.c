/* test_lgmrec.c: LGMRec, MMRec's (recsys/lgmrec.c).
 *
 * Training against tools/golden/lgmrec.py, a PyTorch restatement of MMRec's
 * LGMRec given the same initial weights, graph, features, batches (those of
 * tools/golden/multimodal.py) and Gumbel noise (the fixture's, fed through
 * mrec_lgmrec_set_noise), dropout off: the loss at every Adam step and every
 * weight after the last agree to 1e-4, the first batch's gradients to
 * 1e-5 + 1e-4 relative, and the ranking scores after training to 1e-4. Both
 * sides are float32 summing in different orders; six Adam steps of lr 0.01
 * leave them ~1e-6 apart, while a wrong term (the contrast's temperature, a
 * regularizer squared, a missed propagation) moves them by 1e-3 or more.
 * Gradients against central finite differences; the hash stream's noise
 * and dropout the same for a seed and other for another. The registry's keys
 * and defaults (MMRec's yaml, Baby's settings), and `mrec train --model
 * lgmrec` on TikTok's real features (skipped without ../shared/data),
 * saved with --save, whose `mrec recommend --all` gives the run's own
 * recommendations.tsv, and an Elliot config with MMRec's keys, through the
 * binary in $MREC_BIN.
 */
#include "harness.h"
#include "model_checks.h"

#include "../nn/mrec_npy.h"
#include "../recsys/mrec_recsys.h"
#include "../recsys/mrec_registry.h"
#include "../tools/mrec_options.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The shared fixture's graph, features (visual 6-d, textual 5-d) and batches. */
typedef struct {
    cJSON *c, *ref;
    int U, I, d;
    float *feat[2];
    mrec_user_items train;
} fixture;

static int fixture_open(fixture *fx) {
    memset(fx, 0, sizeof *fx);
    if (!(fx->c = read_fixture_json("tests/fixtures/multimodal/trajectory.json"))) return 0;
    if (!(fx->ref = read_fixture_json("tests/fixtures/multimodal/lgmrec.json"))) {
        cJSON_Delete(fx->c);
        return 0;
    }
    fx->U = cJSON_GetObjectItem(fx->c, "n_users")->valueint, fx->I = cJSON_GetObjectItem(fx->c, "n_items")->valueint;
    fx->d = cJSON_GetObjectItem(fx->c, "dim")->valueint;
    static const char *const names[2] = {"visual", "textual"};
    for (int m = 0; m < 2; m++) {
        fx->feat[m] = malloc(sizeof(float) * (size_t)fx->I * (m ? 5 : 6));
        fill_floats(fx->feat[m], cJSON_GetObjectItem(fx->c, names[m]));
    }
    build_train(&fx->train, cJSON_GetObjectItem(fx->c, "pairs"), fx->U, fx->I);
    return 1;
}

static void fixture_close(fixture *fx) {
    free(fx->feat[0]), free(fx->feat[1]);
    mrec_user_items_free(&fx->train);
    cJSON_Delete(fx->c), cJSON_Delete(fx->ref);
}

static int num_i(const cJSON *c, const char *key) { return cJSON_GetObjectItem(c, key)->valueint; }
static float num_f(const cJSON *c, const char *key) { return (float)cJSON_GetObjectItem(c, key)->valuedouble; }

/* A case of the fixture as mrec's model (keep_rate as given), with cl and reg possibly replaced (< 0: the case's). */
static mrec_status create_case(mrec_model *m, mrec_graph *g, const fixture *fx, const cJSON *cs, int dim, float keep, float cl, float reg,
                               mrec_rng *rng, mrec_context *ctx) {
    const float *xs[2] = {fx->feat[0], fx->feat[1]};
    int dims[2] = {6, 5};
    mrec_status st = mrec_graph_normalized(g, &fx->train);
    if (st) return st;
    return mrec_lgmrec_create(m, g, &fx->train, fx->U, fx->I, xs, dims, dim, num_i(cs, "n_ui_layers"), num_i(cs, "n_mm_layers"),
                              num_i(cs, "n_hyper_layer"), num_i(cs, "hyper_num"), keep, num_f(cs, "alpha"), cl < 0 ? num_f(cs, "cl_weight") : cl,
                              reg < 0 ? num_f(cs, "reg_weight") : reg, rng, ctx);
}

/* The case's recorded Gumbel noise into the model. */
static int set_noise(mrec_model *m, const fixture *fx, const cJSON *cs) {
    size_t n = (size_t)(fx->U + fx->I) * num_i(cs, "hyper_num");
    float *noise[2] = {malloc(sizeof(float) * n), malloc(sizeof(float) * n)};
    const cJSON *g = cJSON_GetObjectItem(cs, "noise")->child;
    int ok = g && g->next && cJSON_GetArraySize(g) == (int)n;
    if (ok) fill_floats(noise[0], g), fill_floats(noise[1], g->next);
    ok = ok && t_status(mrec_lgmrec_set_noise(m, (const float *const *)noise), MREC_OK, "%s: the recorded noise", cs->string);
    free(noise[0]), free(noise[1]);
    return ok;
}

/* The fixture's batch b as (u, i, j); the batch size */
static int batch_of(const cJSON *b, int32_t t[3][64]) {
    int nb = 0;
    const cJSON *col = b->child;
    for (int k = 0; k < 3; k++, col = col->next) {
        nb = 0;
        for (const cJSON *v = col->child; v && nb < 64; v = v->next) t[k][nb++] = v->valueint;
    }
    return nb;
}

static void test_against_pytorch(mrec_context *ctx) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    for (const cJSON *cs = fx.ref->child; cs; cs = cs->next) {
        mrec_graph g;
        mrec_model m;
        mrec_rng rng = {1};
        if (!t_status(create_case(&m, &g, &fx, cs, fx.d, 1.0f, -1, -1, &rng, ctx), MREC_OK, "create lgmrec %s", cs->string)) continue;
        /* the same tensors in the same order, with PyTorch's initial values */
        int p = 0, sizes_ok = 1;
        for (const cJSON *w = cJSON_GetObjectItem(cs, "init")->child; w; w = w->next, p++) {
            sizes_ok &= p < m.n_params && cJSON_GetArraySize(w) == m.size[p];
            if (sizes_ok) fill_floats(m.param[p], w);
        }
        if (!t_check(sizes_ok && p == m.n_params, "%s: %d parameter tensors of PyTorch's sizes (mrec has %d)", cs->string, p, m.n_params) ||
            !set_noise(&m, &fx, cs)) {
            mrec_model_destroy(&m), mrec_graph_free(&g);
            continue;
        }
        mrec_optimizer adam;
        mrec_adam_init(&adam, num_f(cs, "lr"), 0);
        for (int k = 0; k < m.n_params; k++) mrec_adam_add(&adam, m.param[k], m.grad[k], m.size[k]);
        const cJSON *want = cJSON_GetObjectItem(cs, "losses")->child;
        int step = 0, bad = 0;
        double worst = 0;
        mrec_fp_mode before = mrec_flush_subnormals_begin(); /* the steps as training runs them (mrec_fit_batch) */
        for (const cJSON *b = cJSON_GetObjectItem(fx.c, "batches")->child; b && want; b = b->next, want = want->next, step++) {
            int32_t t[3][64];
            int nb = batch_of(b, t);
            double loss = m.loss_grad(m.self, t[0], t[1], t[2], nb), err = fabs(loss - want->valuedouble);
            worst = fmax(worst, err);
            if (!(err <= 1e-4) && bad++ < 3) fprintf(stderr, "  %s step %d: loss %.7f, PyTorch %.7f\n", cs->string, step, loss, want->valuedouble);
            if (step == 0) { /* the first batch's gradients against autograd's */
                int q = 0;
                for (const cJSON *gr = cJSON_GetObjectItem(cs, "grad0")->child; gr && q < m.n_params; gr = gr->next, q++) {
                    float *gv = malloc(sizeof(float) * (size_t)m.size[q]);
                    fill_floats(gv, gr);
                    char what[96];
                    snprintf(what, sizeof what, "%s gradient %d of the first batch", cs->string, q);
                    /* 1e-5 absolute: the contrast sums over the batch (deep's loss is ~47), so a gradient is a sum
                     * of terms ~50 times its size, each rounded in float32 (~3e-6 apart seen) */
                    t_allclose(what, gv, m.grad[q], m.size[q], 1e-5, 1e-4);
                    free(gv);
                }
            }
            mrec_adam_step_active(&adam, m.active, ctx);
        }
        mrec_flush_subnormals_end(before);
        t_check(bad == 0 && step == 6, "%s: loss at each of %d Adam steps within 1e-4 of PyTorch (worst %.2g)", cs->string, step, worst);
        printf("  %s: losses over %d Adam steps at most %.2g from PyTorch's\n", cs->string, step, worst);
        p = 0;
        for (const cJSON *w = cJSON_GetObjectItem(cs, "weights")->child; w; w = w->next, p++) {
            float *wv = malloc(sizeof(float) * (size_t)m.size[p]);
            fill_floats(wv, w);
            char what[96];
            snprintf(what, sizeof what, "%s parameter %d after 6 steps", cs->string, p);
            t_allclose(what, wv, m.param[p], m.size[p], 1e-4, 0);
            free(wv);
        }
        /* ranking: the first three users against every item, PyTorch's forward with the same noise */
        float *scores = malloc(sizeof(float) * (size_t)fx.I * 3), *ref = malloc(sizeof(float) * (size_t)fx.I * 3);
        float *users = malloc(sizeof(float) * (size_t)fx.U * fx.d), *items = malloc(sizeof(float) * (size_t)fx.I * fx.d);
        fill_floats(ref, cJSON_GetObjectItem(cs, "scores"));
        if (t_status(m.prepare(m.self), MREC_OK, "prepare") && t_status(m.score(m.self, 0, 3, scores), MREC_OK, "score") &&
            t_status(m.embeddings(m.self, users, items), MREC_OK, "embeddings")) {
            char what[96];
            snprintf(what, sizeof what, "%s: scores of users 0..2 after training", cs->string);
            t_allclose(what, ref, scores, (int64_t)fx.I * 3, 1e-4, 1e-4);
            double err = 0;
            for (int u = 0; u < 3; u++)
                for (int i = 0; i < fx.I; i++) {
                    double s = 0;
                    for (int e = 0; e < fx.d; e++) s += (double)users[(size_t)u * fx.d + e] * items[(size_t)i * fx.d + e];
                    err = fmax(err, fabs(s - scores[(size_t)u * fx.I + i]));
                }
            t_check(err < 1e-5, "%s: scores are the embeddings' dot products (max error %.2g)", cs->string, err);
        }
        free(scores), free(ref), free(users), free(items);
        mrec_adam_free(&adam);
        mrec_model_destroy(&m);
        mrec_graph_free(&g);
    }
    /* finite differences, d = 4, both cases' structure; cl and reg small enough that the loss stays near 1, where
     * float32 central differences of step 1e-3 are good to ~1e-4 */
    for (const cJSON *cs = fx.ref->child; cs; cs = cs->next) {
        mrec_graph g;
        mrec_model m;
        mrec_rng rng = {7};
        char what[64];
        snprintf(what, sizeof what, "lgmrec %s d=4", cs->string);
        if (t_status(create_case(&m, &g, &fx, cs, 4, 1.0f, 0.02f, 0.05f, &rng, ctx), MREC_OK, "create %s", what)) {
            if (set_noise(&m, &fx, cs)) check_gradients(&m, what);
            mrec_model_destroy(&m);
        }
        mrec_graph_free(&g);
    }
    fixture_close(&fx);
}

/* The hash stream: the same seed the same losses (noise and dropout drawn), another seed others; ranking's noise
 * is one fixed draw (two prepares, the same scores). */
static void test_noise(mrec_context *ctx) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    const cJSON *cs = fx.ref->child;
    double loss[3][4];
    float scores[2][25];
    for (int r = 0; r < 3; r++) {
        mrec_graph g;
        mrec_model m;
        mrec_rng rng = {r == 2 ? 5u : 3u};
        for (int s = 0; s < 4; s++) loss[r][s] = NAN;
        if (!t_status(create_case(&m, &g, &fx, cs, fx.d, 0.5f, -1, -1, &rng, ctx), MREC_OK, "create lgmrec, keep_rate 0.5")) {
            mrec_graph_free(&g);
            continue;
        }
        int s = 0;
        for (const cJSON *b = cJSON_GetObjectItem(fx.c, "batches")->child; b && s < 4; b = b->next, s++) {
            int32_t t[3][64];
            int nb = batch_of(b, t);
            loss[r][s] = m.loss_grad(m.self, t[0], t[1], t[2], nb);
        }
        if (r == 0) {
            m.prepare(m.self), m.score(m.self, 0, 1, scores[0]);
            m.prepare(m.self), m.score(m.self, 0, 1, scores[1]);
            t_check(!memcmp(scores[0], scores[1], sizeof scores[0]), "two rankings of one model give the same scores");
        }
        mrec_model_destroy(&m);
        mrec_graph_free(&g);
    }
    int same = 1, other = 0, finite = 1, moves = 0;
    for (int s = 0; s < 4; s++) {
        same &= loss[0][s] == loss[1][s], other |= loss[0][s] != loss[2][s], finite &= isfinite(loss[0][s]) && isfinite(loss[2][s]);
        moves |= s && loss[0][s] != loss[0][0];
    }
    t_check(finite && same && other && moves, "dropout and noise from the seed: the same seed %.6f %.6f, another %.6f %.6f", loss[0][0],
            loss[1][0], loss[2][0], loss[2][1]);
    /* bad sizes are refused by name */
    mrec_graph g;
    mrec_model m;
    mrec_rng rng = {1};
    const float *xs[2] = {fx.feat[0], fx.feat[1]};
    int dims[2] = {6, 5};
    if (t_status(mrec_graph_normalized(&g, &fx.train), MREC_OK, "graph")) {
        mrec_status st = mrec_lgmrec_create(&m, &g, &fx.train, fx.U, fx.I, xs, dims, 8, 2, 2, 0, 4, 0.5f, 0.3f, 1e-4f, 1e-6f, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "lgmrec") && strstr(mrec_error_detail(), "hypergraph layers"),
                "0 hypergraph layers refused: %s", mrec_error_detail());
        st = mrec_lgmrec_create(&m, &g, &fx.train, fx.U + 1, fx.I, xs, dims, 8, 2, 2, 1, 4, 0.5f, 0.3f, 1e-4f, 1e-6f, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "graph of"), "a graph of other nodes refused: %s", mrec_error_detail());
        mrec_graph_free(&g);
    }
    fixture_close(&fx);
}

/* The registry: MMRec's keys, its yaml's defaults and Baby's settings */
static void test_registry(void) {
    const mrec_model_entry *e = mrec_model_find("LGMRec");
    if (!t_check(e != NULL && e == mrec_model_find("lgmrec"), "LGMRec is in the registry by both names")) return;
    static const char *const keys[] = {"embedding_size", "n_ui_layers", "n_mm_layers", "n_hyper_layer", "hyper_num", "keep_rate", "alpha",
                                       "cl_weight", "reg_weight", "lr", "batch_size", "seed", "epochs", NULL};
    int all = 1;
    for (int k = 0; keys[k]; k++) all &= mrec_model_param_elliot(e, keys[k]) != NULL;
    t_check(all && e->needs == MREC_NEEDS_VISUAL_TEXTUAL && (e->flags & MREC_MODEL_TRAINS) && mrec_model_fixed(e, "feat_embed_dim") &&
                mrec_model_fixed(e, "cf_model"),
            "every key of MMRec's LGMRec.yaml is a hyper-parameter or held at mrec's value");
    mrec_param_values p;
    if (t_status(mrec_params_resolve(&p, e, NULL), MREC_OK, "lgmrec defaults"))
        t_check(mrec_hp_int(&p, MREC_HP_DIM) == 64 && mrec_hp_int(&p, MREC_HP_LAYERS) == 2 && mrec_hp_int(&p, MREC_HP_MM_LAYERS) == 2 &&
                    mrec_hp_int(&p, MREC_HP_HYPER_LAYERS) == 1 && mrec_hp_int(&p, MREC_HP_HYPER_NUM) == 4 &&
                    mrec_hp_real(&p, MREC_HP_KEEP_RATE) == 0.5f && mrec_hp_real(&p, MREC_HP_ALPHA) == 0.3f &&
                    mrec_hp_real(&p, MREC_HP_CL_WEIGHT) == 1e-4f && mrec_hp_real(&p, MREC_HP_REG) == 1e-6f &&
                    mrec_hp_real(&p, MREC_HP_LR) == 0.001f && mrec_hp_int(&p, MREC_HP_BATCH_SIZE) == 2048,
                "MMRec's 64, 2 and 2 layers, Baby's 1 hypergraph layer, 4 hyperedges, keep 0.5, alpha 0.3; cl 1e-4, reg 1e-6");
    mrec_param_value v;
    mrec_status st = mrec_param_parse(MREC_HP_KEEP_RATE, "0", &v);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "(0, 1]"), "keep_rate 0 refused: %s", mrec_error_detail());
    st = mrec_param_parse(MREC_HP_HYPER_NUM, "64", &v);
    t_check(!st && v.x[0] == 64, "hyper_num 64 (Clothing's)");
}

/* mrec train --model lgmrec on TikTok, one epoch, saved; recommend --all from the saved model gives the run's lists.
 * TikTok has no textual features here (see its PROVENANCE.md): the acoustic ones take the textual slot. */
static void test_train_tiktok(const char *bin, const char *dir) {
    const char *tk = "../shared/data/tiktok-mmssl";
    char path[4400], cmd[9000], out[65536];
    snprintf(path, sizeof path, "%s/tiktok_split.tsv", tk);
    if (access(path, R_OK) != 0) {
        t_skip("mrec train --model lgmrec on TikTok: %s not found", path);
        return;
    }
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --model lgmrec --epochs 1 --dim 16 --batch-size 4096 --k 20 --metrics recall --threads 2 "
             "--features visual=%s/original_diffmm/image_feat.npy,textual=%s/original_diffmm/audio_feat.npy "
             "--save-topk 20 --out %s/run --save %s/model 2>&1",
             bin, path, tk, tk, dir, dir);
    int rc = t_run(cmd, out, sizeof out);
    const char *r = strstr(out, "recall@20=");
    double recall = r ? atof(r + 10) : -1;
    /* 6710 items: chance is 20 / 6710 of the test items, 0.003 */
    t_check(rc == 0 && strstr(out, "LGMRec") && strstr(out, "hyper_num=4") && isfinite(recall) && recall > 0,
            "mrec train --model lgmrec on TikTok (visual, acoustic as textual), one epoch: exit %d, recall@20 %.4f%s%.600s", rc, recall,
            rc ? "\n" : "", rc ? out : "");
    printf("  TikTok, LGMRec one epoch (d 16): recall@20 %.4f\n", recall);
    if (rc) return;
    snprintf(cmd, sizeof cmd, "%s recommend %s/model --all --out %s/recs.tsv 2>&1", bin, dir, dir);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0, "mrec recommend --all from the saved LGMRec: exit %d %.300s", rc, out);
    snprintf(path, sizeof path, "%s/recs.tsv", dir);
    char *got = t_slurp(path), *folded = got ? t_recs_rows(got) : NULL;
    snprintf(path, sizeof path, "%s/run/recommendations.tsv", dir);
    char *want = t_slurp(path);
    t_check(folded && want && strlen(want) > 1000 && !strcmp(folded, want),
            "the saved LGMRec's recommend --all equals the run's recommendations.tsv (%zu bytes)", want ? strlen(want) : 0);
    free(got), free(folded), free(want);
}

/* An Elliot config naming LGMRec with MMRec's keys (a grid over hyper_num), and a bad value refused by key and line */
static void test_config(const char *bin, const char *dir) {
    char path[4200];
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
    uint64_t seed = 11;
    for (int m = 0; m < 2; m++) {
        snprintf(path, sizeof path, "%s/%s", dir, m ? "text" : "img");
        mkdir(path, 0755);
        for (int i = 0; i < 40; i++) {
            float x[12];
            int64_t shape[1] = {m ? 12 : 8};
            t_fill_uniform(x, 12, &seed, -1, 1);
            snprintf(path, sizeof path, "%s/%s/i%d.npy", dir, m ? "text" : "img", i);
            mrec_npy_write(path, MREC_NPY_F32, 1, shape, x);
        }
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
                         "        visual_features: img\n"
                         "      - dataloader: TextualAttribute\n"
                         "        textual_features: text\n"
                         "  top_k: 20\n"
                         "  evaluation:\n"
                         "    cutoffs: [10, 20]\n"
                         "    simple_metrics: [Recall, nDCG]\n"
                         "  models:\n"
                         "    LGMRec:\n"
                         "      meta:\n"
                         "        verbose: True\n"
                         "        validation_rate: 1\n"
                         "        validation_metric: Recall@20\n"
                         "      lr: 0.001\n"
                         "      epochs: 2\n"
                         "      embedding_size: 16\n"
                         "      feat_embed_dim: 16\n"
                         "      cf_model: lightgcn\n"
                         "      n_ui_layers: 2\n"
                         "      n_mm_layers: 2\n"
                         "      n_hyper_layer: 1\n"
                         "      hyper_num: [4, 8]\n"
                         "      keep_rate: 0.5\n"
                         "      alpha: 0.3\n"
                         "      cl_weight: 1e-04\n"
                         "      reg_weight: 1e-06\n"
                         "      batch_size: 64\n"
                         "      seed: 999\n";
    snprintf(path, sizeof path, "%s/lgmrec.yml", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs(config, f), fclose(f);
    char cmd[9000], out[65536];
    snprintf(cmd, sizeof cmd, "cd %s && %s train lgmrec.yml --out res --threads 1 2>&1", dir, bin);
    int rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "LGMRec dim=16,layers=2,mm_layers=2,hyper_layers=1,hyper_num=4") && strstr(out, "hyper_num=8") &&
                strstr(out, "features=visual+textual") && !strstr(out, "left out"),
            "mrec train on an Elliot config naming LGMRec with MMRec's keys (a grid of 2): exit %d%s%.900s", rc, rc ? "\n" : "", rc ? out : "");
    /* feat_embed_dim must be embedding_size: refused by key and line */
    snprintf(path, sizeof path, "%s/bad.yml", dir);
    f = fopen(path, "w");
    if (f) {
        const char *at = strstr(config, "      feat_embed_dim: 16\n");
        fprintf(f, "%.*s      feat_embed_dim: 32\n%s", (int)(at - config), config, at + strlen("      feat_embed_dim: 16\n"));
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "cd %s && %s train bad.yml --out res2 2>&1", dir, bin);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc != 0 && strstr(out, "feat_embed_dim") && strstr(out, "line 26"), "feat_embed_dim 32 refused by key and line: %.300s", out);
}

static void test_cli(void) {
    const char *bin = getenv("MREC_BIN");
    if (!bin) {
        t_skip("mrec train --model lgmrec: MREC_BIN is not set");
        return;
    }
    char dir[] = "/tmp/mrec-lgmrec-XXXXXX", cwd[2048], abs_bin[4200], cmd[4400], out[65536];
    if (!t_check(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL, "a scratch folder")) return;
    if (bin[0] != '/') snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin), bin = abs_bin;
    snprintf(cmd, sizeof cmd, "%s train --help 2>&1", bin);
    int rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "lgmrec") && strstr(out, "--hyper-num") && strstr(out, "--keep-rate"),
            "mrec train --help lists lgmrec and its options");
    test_train_tiktok(bin, dir);
    test_config(bin, dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    t_suite("lgmrec");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_registry();
    test_against_pytorch(ctx);
    test_noise(ctx);
    mrec_context_destroy(ctx);
    test_cli();
    return t_finish();
}
