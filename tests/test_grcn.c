/* test_grcn.c: GRCN, the Ducho-meets-Elliot fork's (recsys/grcn.c).
 *
 * Training against tools/golden/grcn.py, a PyTorch restatement of the fork
 * given the same initial weights, graph, features and batches (those of
 * tools/golden/multimodal.py): the loss at every Adam step and every weight
 * after the last agree to 1e-4, the first batch's gradients to 1e-6 + 1e-4
 * relative, for the template's choices (confidences, pruning, the
 * representations side by side, 3 routings, 2 layers) and the other
 * branches (the maximum without pruning, LeakyReLUs, the mean fusion; the
 * mean of the weights, no routing, the id representation alone). Both sides
 * are float32 summing in different orders; six Adam steps of lr 0.01 leave
 * them ~1e-6 apart, and a wrong term (the item rows' weights lined up as the
 * paper has them instead of the fork's list, a regularizer weighted by l_w,
 * a missed routing) moves them by 1e-3 or more. Gradients against central
 * finite differences. The registry's keys and defaults, bad sizes refused by
 * name, a short `mrec train --model grcn` on TikTok's real features (skipped
 * without ../shared/data) and the benchmark's GRCN block in an Elliot config
 * run through the binary in $MREC_BIN.
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
    if (!(fx->ref = read_fixture_json("tests/fixtures/multimodal/grcn.json"))) {
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

static int flag(const cJSON *c, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItem(c, key)); }
static int num(const cJSON *c, const char *key) { return cJSON_GetObjectItem(c, key)->valueint; }

static int choice(const cJSON *c, const char *key, const char *const *names) {
    const char *v = cJSON_GetObjectItem(c, key)->valuestring;
    for (int k = 0; names[k]; k++)
        if (!strcmp(v, names[k])) return k;
    return -1;
}

static const char *const WEIGHT_MODES[] = {"mean", "max", "confid", NULL}, *const FUSIONS[] = {"concat", "id", "mean", NULL};

/* A case of the fixture as mrec's model; dim and k scaled down for the finite differences when small is set. */
static mrec_status create_case(mrec_model *m, mrec_graph *g, const fixture *fx, const cJSON *cs, int small, mrec_rng *rng, mrec_context *ctx) {
    const float *xs[2] = {fx->feat[0], fx->feat[1]};
    int dims[2] = {6, 5}, fusion = choice(cs, "fusion", FUSIONS), d = small ? 3 : fx->d, k = small ? (fusion == 2 ? 3 : 2) : num(cs, "k");
    mrec_status st = mrec_graph_normalized(g, &fx->train);
    if (st) return st;
    return mrec_grcn_create(m, g, fx->U, fx->I, xs, dims, 2, d, k, num(cs, "layers"), num(cs, "routings"), choice(cs, "weight_mode", WEIGHT_MODES),
                            flag(cs, "pruning"), flag(cs, "has_act"), fusion, (float)cJSON_GetObjectItem(cs, "l_w")->valuedouble, rng, ctx);
}

/* Central differences, as model_checks.h's check_gradients, but the model's
 * LeakyReLUs, pruning and maxima put kinks in the loss: a kink within h of an
 * entry makes the central difference the mean of the two sides' slopes while
 * the analytic gradient is one of them. Such an entry is checked against the
 * forward and backward differences: it must equal one of them (a wrong
 * gradient equals none), and such entries must stay few. Where the loss
 * bends sharply (a row of small norm before a normalize) the central
 * difference's O(h^2) error shows: such an entry is checked again at h / 8. */
static void check_gradients_kinked(mrec_model *m, const char *name) {
    static const int32_t u[6] = {0, 1, 2, 3, 4, 1}, pos[6] = {0, 2, 1, 5, 3, 4}, neg[6] = {3, 5, 4, 0, 1, 1};
    int64_t total = 0;
    for (int p = 0; p < m->n_params; p++) total += m->size[p];
    float *grad = malloc((size_t)total * sizeof *grad);
    double at0 = m->loss_grad(m->self, u, pos, neg, 6);
    int64_t at = 0;
    for (int p = 0; p < m->n_params; p++) memcpy(grad + at, m->grad[p], (size_t)m->size[p] * 4), at += m->size[p];
    int bad = 0, kinked = 0, bent = 0;
    at = 0;
    for (int p = 0; p < m->n_params; p++)
        for (int64_t e = 0; e < m->size[p]; e++, at++) {
            float keep = m->param[p][e], h = 1e-3f;
            m->param[p][e] = keep + h;
            double up = m->loss_grad(m->self, u, pos, neg, 6);
            m->param[p][e] = keep - h;
            double down = m->loss_grad(m->self, u, pos, neg, 6);
            m->param[p][e] = keep;
            double step = (double)(keep + h) - keep, central = (up - down) / (2.0 * step), fwd = (up - at0) / step, bwd = (at0 - down) / step;
#define CLOSE(x) (fabs((x) - grad[at]) <= 2e-4 + 1e-2 * fabs(x))
            if (CLOSE(central)) continue;
            if (CLOSE(fwd) || CLOSE(bwd)) {
                kinked++;
                continue;
            }
            /* a sharp bend (a short row before a normalize): the central difference at h / 8 */
            m->param[p][e] = keep + h / 8;
            up = m->loss_grad(m->self, u, pos, neg, 6);
            m->param[p][e] = keep - h / 8;
            down = m->loss_grad(m->self, u, pos, neg, 6);
            m->param[p][e] = keep;
            central = (up - down) / (2.0 * ((double)(keep + h / 8) - keep));
            if (CLOSE(central)) {
                bent++;
                continue;
            }
#undef CLOSE
            if (bad++ < 5)
                fprintf(stderr, "  %s param %d[%lld]: analytic %.6g, central %.6g, forward %.6g, backward %.6g\n", name, p, (long long)e,
                        grad[at], central, fwd, bwd);
        }
    m->loss_grad(m->self, u, pos, neg, 6);
    t_check(bad == 0 && (kinked + bent) * 50 <= total && total > 20,
            "%s: %lld gradients against finite differences, %d wrong, %d at a kink (one side's slope), %d on a sharp bend (h / 8)", name,
            (long long)total, bad, kinked, bent);
    printf("  %s: %lld gradients, %d at a kink, %d on a sharp bend, %d wrong\n", name, (long long)total, kinked, bent, bad);
    free(grad);
}

static void test_against_pytorch(mrec_context *ctx) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    for (const cJSON *cs = fx.ref->child; cs; cs = cs->next) {
        mrec_graph g;
        mrec_model m;
        mrec_rng rng = {1};
        if (!t_status(create_case(&m, &g, &fx, cs, 0, &rng, ctx), MREC_OK, "create grcn %s", cs->string)) {
            mrec_graph_free(&g);
            continue;
        }
        /* the same tensors in the same order, with PyTorch's initial values */
        int p = 0, sizes_ok = 1;
        for (const cJSON *w = cJSON_GetObjectItem(cs, "init")->child; w; w = w->next, p++) {
            sizes_ok &= p < m.n_params && cJSON_GetArraySize(w) == m.size[p];
            if (sizes_ok) fill_floats(m.param[p], w);
        }
        if (!t_check(sizes_ok && p == m.n_params, "%s: %d parameter tensors of PyTorch's sizes (mrec has %d)", cs->string, p, m.n_params)) {
            mrec_model_destroy(&m), mrec_graph_free(&g);
            continue;
        }
        /* the confidences (the last tensor, confid only) as the fixture has them: stepped by Adam, or held (adam_conf false) */
        int confid = !strcmp(cJSON_GetObjectItem(cs, "weight_mode")->valuestring, "confid");
        const cJSON *adam_conf = cJSON_GetObjectItem(cs, "adam_conf");
        mrec_optimizer adam;
        mrec_adam_init(&adam, (float)cJSON_GetObjectItem(cs, "lr")->valuedouble, 0);
        for (int k = 0; k < m.n_params; k++)
            if (!(confid && k == m.n_params - 1 && adam_conf && !cJSON_IsTrue(adam_conf))) mrec_adam_add(&adam, m.param[k], m.grad[k], m.size[k]);
        const cJSON *want = cJSON_GetObjectItem(cs, "losses")->child;
        int step = 0, bad = 0;
        double worst = 0;
        for (const cJSON *b = cJSON_GetObjectItem(fx.c, "batches")->child; b && want; b = b->next, want = want->next, step++) {
            int32_t t[3][64];
            int nb = 0;
            const cJSON *col = b->child;
            for (int k = 0; k < 3; k++, col = col->next) {
                nb = 0;
                for (const cJSON *v = col->child; v && nb < 64; v = v->next) t[k][nb++] = v->valueint;
            }
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
                    if (confid && q == m.n_params - 1) {
                        /* the confidences: the items' rows exactly; a user's scale its own row of A, which the next
                         * normalize undoes, so their true gradient is often 0 and both sides hold rounding noise there,
                         * amplified by the row's small norm (seen up to 5e-3) */
                        int64_t users = (int64_t)fx.U * 2;
                        t_allclose(what, gv + users, m.grad[q] + users, m.size[q] - users, 1e-6, 1e-4);
                        snprintf(what, sizeof what, "%s gradient %d of the first batch, the users' rows (noise)", cs->string, q);
                        t_allclose(what, gv, m.grad[q], users, 2e-2, 0);
                    } else {
                        t_allclose(what, gv, m.grad[q], m.size[q], 1e-6, 1e-4);
                    }
                    free(gv);
                }
            }
            mrec_adam_step_active(&adam, m.active, ctx);
        }
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
        /* scoring: the representation's dot products, the same after prepare as the embeddings say */
        int D = m.embed_dim;
        float *scores = malloc(sizeof(float) * (size_t)fx.I * 2), *users = malloc(sizeof(float) * (size_t)fx.U * D);
        float *items = malloc(sizeof(float) * (size_t)fx.I * D);
        if (t_status(m.prepare(m.self), MREC_OK, "prepare") && t_status(m.score(m.self, 3, 2, scores), MREC_OK, "score") &&
            t_status(m.embeddings(m.self, users, items), MREC_OK, "embeddings")) {
            double err = 0;
            for (int u = 0; u < 2; u++)
                for (int i = 0; i < fx.I; i++) {
                    double s = 0;
                    for (int e = 0; e < D; e++) s += (double)users[(size_t)(3 + u) * D + e] * items[(size_t)i * D + e];
                    err = fmax(err, fabs(s - scores[(size_t)u * fx.I + i]));
                }
            int want_d = !strcmp(cJSON_GetObjectItem(cs, "fusion")->valuestring, "concat") ? fx.d + 2 * num(cs, "k") : fx.d;
            t_check(err < 1e-5 && D == want_d, "%s: scores are the %d-wide embeddings' dot products (max error %.2g)", cs->string, D, err);
        }
        free(scores), free(users), free(items);
        mrec_adam_free(&adam);
        mrec_model_destroy(&m);
        mrec_graph_free(&g);
    }
    /* finite differences on each case's structure, at small sizes */
    for (const cJSON *cs = fx.ref->child; cs; cs = cs->next) {
        mrec_graph g;
        mrec_model m;
        mrec_rng rng = {7};
        char what[64];
        snprintf(what, sizeof what, "grcn %s, small", cs->string);
        if (t_status(create_case(&m, &g, &fx, cs, 1, &rng, ctx), MREC_OK, "create %s", what)) {
            check_gradients_kinked(&m, what);
            mrec_model_destroy(&m);
        }
        mrec_graph_free(&g);
    }
    fixture_close(&fx);
}

/* bad sizes and settings are refused by name */
static void test_refusals(void) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    mrec_graph g;
    mrec_model m;
    mrec_rng rng = {1};
    const float *xs[2] = {fx.feat[0], fx.feat[1]};
    int dims[2] = {6, 5};
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 1;
    mrec_context *ctx;
    if (t_status(mrec_graph_normalized(&g, &fx.train), MREC_OK, "graph") && t_status(mrec_context_create(&ctx, &o), MREC_OK, "context")) {
        mrec_status st = mrec_grcn_create(&m, &g, fx.U, fx.I, xs, dims, 2, 8, 4, 9, 3, 2, 1, 0, 0, 0.1f, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "grcn") && strstr(mrec_error_detail(), "layers"), "9 layers refused: %s",
                mrec_error_detail());
        st = mrec_grcn_create(&m, &g, fx.U + 1, fx.I, xs, dims, 2, 8, 4, 2, 3, 2, 1, 0, 0, 0.1f, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "graph of"), "a graph of other nodes refused: %s", mrec_error_detail());
        st = mrec_grcn_create(&m, &g, fx.U, fx.I, xs, dims, 2, 8, 4, 2, 3, 2, 1, 0, 2, 0.1f, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "factors_multimod 4 must be factors 8"),
                "fusion mean with factors_multimod 4 and factors 8 refused: %s", mrec_error_detail());
        /* a graph that is not a sorted user-item adjacency (an item row pointing at an item) */
        int32_t keep = g.col[g.row_ptr[fx.U]];
        g.col[g.row_ptr[fx.U]] = fx.U + 1;
        st = mrec_grcn_create(&m, &g, fx.U, fx.I, xs, dims, 2, 8, 4, 2, 3, 2, 1, 0, 0, 0.1f, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "user-item adjacency"), "a broken graph refused: %s", mrec_error_detail());
        g.col[g.row_ptr[fx.U]] = keep;
        mrec_context_destroy(ctx);
    }
    mrec_graph_free(&g);
    fixture_close(&fx);
}

/* The registry: the fork's keys, the template's values as defaults */
static void test_registry(void) {
    const mrec_model_entry *e = mrec_model_find("external.GRCN");
    if (!t_check(e != NULL && e == mrec_model_find("grcn") && e == mrec_model_find("GRCN"), "GRCN is in the registry by both names")) return;
    static const char *const keys[] = {"lr", "epochs", "num_layers", "num_routings", "factors", "factors_multimod", "batch_size", "weight_mode",
                                       "pruning", "has_act", "fusion_mode", "l_w", "seed", NULL};
    int all = 1;
    for (int k = 0; keys[k]; k++) all &= mrec_model_param_elliot(e, keys[k]) != NULL;
    t_check(all && mrec_model_fixed(e, "aggregation") && e->needs == MREC_NEEDS_ANY && (e->flags & MREC_MODEL_TRAINS) &&
                (e->flags & MREC_MODEL_GPU),
            "every Elliot key of the fork is a hyper-parameter (aggregation held: the fork reads it nowhere)");
    mrec_param_values p;
    if (t_status(mrec_params_resolve(&p, e, NULL), MREC_OK, "grcn defaults"))
        t_check(mrec_hp_int(&p, MREC_HP_LAYERS) == 2 && mrec_hp_int(&p, MREC_HP_ROUTINGS) == 3 && mrec_hp_int(&p, MREC_HP_DIM) == 64 &&
                    mrec_hp_int(&p, MREC_HP_MULTIMOD_DIM) == 128 && mrec_hp_int(&p, MREC_HP_WEIGHT_MODE) == 2 && mrec_hp_int(&p, MREC_HP_PRUNING) == 1 &&
                    mrec_hp_int(&p, MREC_HP_HAS_ACT) == 0 && mrec_hp_int(&p, MREC_HP_FUSION) == 0 && mrec_hp_real(&p, MREC_HP_LR) == 1e-4f &&
                    mrec_hp_real(&p, MREC_HP_REG) == 1e-5f && mrec_hp_int(&p, MREC_HP_BATCH_SIZE) == 1024 && mrec_hp_u64(&p, MREC_HP_SEED) == 123 &&
                    mrec_hp_int(&p, MREC_HP_EPOCHS) == 200 && mrec_hp_int(&p, MREC_HP_SAMPLER) == 0,
                "the template's num_layers 2, num_routings 3, factors 64, factors_multimod 128, confid, pruning, no activation, concat, "
                "lr 1e-4, l_w 1e-5, batch 1024, seed 123, 200 epochs, every pair once an epoch");
    mrec_param_value v;
    mrec_status st = mrec_param_parse(MREC_HP_WEIGHT_MODE, "confid", &v);
    t_check(!st && v.x[0] == 2, "weight_mode confid");
    st = mrec_param_parse(MREC_HP_FUSION, "sum", &v);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "concat"), "fusion_mode sum refused: %s", mrec_error_detail());
}

/* mrec train --model grcn on TikTok: two epochs, small sizes, a number comes out */
static void test_train_tiktok(const char *bin, const char *dir) {
    const char *tk = "../shared/data/tiktok-mmssl";
    char path[512], cmd[9000], out[65536];
    snprintf(path, sizeof path, "%s/tiktok_split.tsv", tk);
    if (access(path, R_OK) != 0) {
        t_skip("mrec train --model grcn on TikTok: %s not found", path);
        return;
    }
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --model grcn --epochs 2 --dim 16 --multimod-dim 16 --lr 0.001 --batch-size 8192 "
             "--k 20 --metrics recall --threads 2 --features visual=%s/original_diffmm/image_feat.npy,acoustic=%s/original_diffmm/audio_feat.npy "
             "--out %s/tiktok 2>&1",
             bin, path, tk, tk, dir);
    int rc = t_run(cmd, out, sizeof out);
    const char *r = strstr(out, "recall@20=");
    double recall = r ? atof(r + 10) : -1;
    /* 6710 items: chance is 20 / 6710 of the test items, 0.003 */
    t_check(rc == 0 && strstr(out, "GRCN") && strstr(out, "weight_mode=confid") && isfinite(recall) && recall > 0,
            "mrec train --model grcn on TikTok (visual and acoustic), two epochs: exit %d, recall@20 %.4f%s%.600s", rc, recall, rc ? "\n" : "",
            rc ? out : "");
    printf("  TikTok, GRCN two epochs (d 16, k 16): recall@20 %.4f\n", recall);
}

/* An Elliot config with the benchmark's GRCN block as config_templates.py writes it (epochs cut to 2, sizes to 16) */
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
                         "  backend: pytorch\n"
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
                         "    cutoffs: [ 20 ]\n"
                         "    simple_metrics: [ Recall, Precision, nDCG, HR ]\n"
                         "  gpu: 0\n"
                         "  external_models_path: ../external/models/__init__.py\n"
                         "  models:\n"
                         "    external.GRCN:\n"
                         "      meta:\n"
                         "        hyper_opt_alg: grid\n"
                         "        verbose: True\n"
                         "        save_weights: False\n"
                         "        save_recs: False\n"
                         "        validation_rate: 1\n"
                         "        validation_metric: Recall@20\n"
                         "        restore: False\n"
                         "      lr: [0.001, 0.01]\n"
                         "      epochs: 2\n"
                         "      num_layers: 2\n"
                         "      num_routings: 3\n"
                         "      factors: 16\n"
                         "      factors_multimod: 16\n"
                         "      batch_size: 1024\n"
                         "      aggregation: add\n"
                         "      weight_mode: confid\n"
                         "      pruning: True\n"
                         "      has_act: False\n"
                         "      fusion_mode: concat\n"
                         "      modalities: ('visual', 'textual')\n"
                         "      l_w: [1e-5, 1e-2]\n"
                         "      seed: 123\n";
    snprintf(path, sizeof path, "%s/grcn.yml", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs(config, f), fclose(f);
    char cmd[9000], out[65536];
    snprintf(cmd, sizeof cmd, "cd %s && %s train grcn.yml --out res --threads 1 2>&1", dir, bin);
    int rc = t_run(cmd, out, sizeof out);
    int rows = 0;
    for (const char *s = out; (s = strstr(s, "GRCN dim=16,layers=2,routings=3,multimod=16")); s++) rows++;
    t_check(rc == 0 && rows >= 4 && strstr(out, "weight_mode=confid,pruning=True,has_act=False,fusion=concat") &&
                strstr(out, "features=visual+textual") && !strstr(out, "left out"),
            "mrec train on the benchmark's GRCN block (a grid of 4): exit %d, %d rows%s%.900s", rc, rows, rc ? "\n" : "", rc ? out : "");
    /* an aggregation the fork would ignore is refused by key and line */
    snprintf(path, sizeof path, "%s/bad.yml", dir);
    f = fopen(path, "w");
    if (f) {
        const char *at = strstr(config, "      aggregation: add\n");
        fprintf(f, "%.*s      aggregation: mean\n%s", (int)(at - config), config, at + strlen("      aggregation: add\n"));
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "cd %s && %s train bad.yml --out res2 2>&1", dir, bin);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc != 0 && strstr(out, "aggregation") && strstr(out, "line 37"), "aggregation: mean refused by key and line: %.300s", out);
}

static void test_cli(void) {
    const char *bin = getenv("MREC_BIN");
    if (!bin) {
        t_skip("mrec train --model grcn and an Elliot config: MREC_BIN is not set");
        return;
    }
    char dir[] = "/tmp/mrec-grcn-XXXXXX", cwd[2048], abs_bin[4200], cmd[4400], out[65536];
    if (!t_check(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL, "a scratch folder")) return;
    if (bin[0] != '/') snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin), bin = abs_bin;
    snprintf(cmd, sizeof cmd, "%s train --help 2>&1", bin);
    int rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "grcn") && strstr(out, "--routings") && strstr(out, "--weight-mode") && strstr(out, "--fusion"),
            "mrec train --help lists grcn and its options");
    test_train_tiktok(bin, dir);
    test_config(bin, dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    t_suite("grcn");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_registry();
    test_refusals();
    test_against_pytorch(ctx);
    mrec_context_destroy(ctx);
    test_cli();
    return t_finish();
}
