/* test_mmgcn.c: MMGCN, the Ducho-meets-Elliot fork's (recsys/mmgcn.c).
 *
 * Training against tools/golden/mmgcn.py, a PyTorch restatement of the fork
 * given the same initial weights, graph, features and batches (those of
 * tools/golden/multimodal.py): the loss at every Adam step and every weight
 * after the last agree to 1e-4, for the template's choices (sum, ids, mean
 * pooling, one modality projected, two layers) and the others (side by side,
 * no ids, summed neighbours, both projected). Both sides are float32 summing
 * in different orders; six Adam steps of lr 0.01 leave them ~1e-6 apart, and
 * a wrong term (a missed regularizer, the ids left out, a layer's slope)
 * moves them by 1e-3 or more. Gradients against central finite differences.
 * The registry's keys and defaults, factors_multimod's None, and a short
 * `mrec train --model mmgcn` on TikTok's real features (skipped without
 * ../shared/data) and an Elliot config naming external.MMGCN run through
 * the binary in $MREC_BIN.
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

/* The shared fixture's graph, features (visual 6-d, textual 5-d) and batches; with `extra` items after its own that
 * no one has chosen (their features those of its first item). */
typedef struct {
    cJSON *c, *ref;
    int U, I, d, extra;
    float *feat[2];
    mrec_user_items train;
} fixture;

static int fixture_open(fixture *fx, int extra) {
    memset(fx, 0, sizeof *fx);
    if (!(fx->c = read_fixture_json("tests/fixtures/multimodal/trajectory.json"))) return 0;
    if (!(fx->ref = read_fixture_json("tests/fixtures/multimodal/mmgcn.json"))) {
        cJSON_Delete(fx->c);
        return 0;
    }
    fx->U = cJSON_GetObjectItem(fx->c, "n_users")->valueint, fx->I = cJSON_GetObjectItem(fx->c, "n_items")->valueint;
    fx->d = cJSON_GetObjectItem(fx->c, "dim")->valueint;
    static const char *const names[2] = {"visual", "textual"};
    for (int m = 0; m < 2; m++) {
        size_t f = m ? 5 : 6;
        fx->feat[m] = malloc(sizeof(float) * (size_t)(fx->I + extra) * f);
        fill_floats(fx->feat[m], cJSON_GetObjectItem(fx->c, names[m]));
        for (int i = fx->I; i < fx->I + extra; i++) memcpy(fx->feat[m] + (size_t)i * f, fx->feat[m], sizeof(float) * f);
    }
    fx->I += extra, fx->extra = extra;
    build_train(&fx->train, cJSON_GetObjectItem(fx->c, "pairs"), fx->U, fx->I);
    return 1;
}

static void fixture_close(fixture *fx) {
    free(fx->feat[0]), free(fx->feat[1]);
    mrec_user_items_free(&fx->train);
    cJSON_Delete(fx->c), cJSON_Delete(fx->ref);
}

static int flag(const cJSON *c, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItem(c, key)); }

/* A case of the fixture as mrec's model: its projections, layers, choices. */
static mrec_status create_case(mrec_model *m, mrec_graph *g, const fixture *fx, const cJSON *cs, int dim, mrec_rng *rng, mrec_context *ctx) {
    const float *xs[2] = {fx->feat[0], fx->feat[1]};
    int dims[2] = {6, 5}, proj[2], k = 0;
    for (const cJSON *v = cJSON_GetObjectItem(cs, "multimod")->child; v && k < 2; v = v->next, k++) proj[k] = cJSON_IsNull(v) ? 0 : v->valueint;
    const char *agg = cJSON_GetObjectItem(cs, "aggregation")->valuestring;
    mrec_status st = mrec_graph_mmgcn(g, &fx->train, !strcmp(agg, "mean"));
    if (st) return st;
    return mrec_mmgcn_create(m, g, fx->U, fx->I, xs, dims, proj, 2, dim, cJSON_GetObjectItem(cs, "layers")->valueint, flag(cs, "concat"),
                             flag(cs, "has_id"), (float)cJSON_GetObjectItem(cs, "l_w")->valuedouble, rng, ctx);
}

/* Central differences, as model_checks.h's check_gradients, but the model's
 * LeakyReLUs put kinks in the loss: a pre-activation within h of 0 makes the
 * central difference the mean of the two sides' slopes while the analytic
 * gradient is one of them. An entry is then checked against the forward and
 * backward differences: it must equal one of them (a wrong gradient equals
 * none), and such entries must stay few (a kink is where few entries are). */
static void check_gradients_kinked(mrec_model *m, const char *name) {
    static const int32_t u[6] = {0, 1, 2, 3, 4, 1}, pos[6] = {0, 2, 1, 5, 3, 4}, neg[6] = {3, 5, 4, 0, 1, 1};
    int64_t total = 0;
    for (int p = 0; p < m->n_params; p++) total += m->size[p];
    float *grad = malloc((size_t)total * sizeof *grad);
    double at0 = m->loss_grad(m->self, u, pos, neg, 6);
    int64_t at = 0;
    for (int p = 0; p < m->n_params; p++) memcpy(grad + at, m->grad[p], (size_t)m->size[p] * 4), at += m->size[p];
    int bad = 0, kinked = 0;
    at = 0;
    for (int p = 0; p < m->n_params; p++)
        for (int64_t e = 0; e < m->size[p]; e++, at++) {
            float keep = m->param[p][e], h = 1e-3f;
            m->param[p][e] = keep + h;
            double up = m->loss_grad(m->self, u, pos, neg, 6);
            m->param[p][e] = keep - h;
            double down = m->loss_grad(m->self, u, pos, neg, 6);
            m->param[p][e] = keep;
            double step = (double)(keep + h) - keep, num = (up - down) / (2.0 * step), fwd = (up - at0) / step, bwd = (at0 - down) / step;
#define CLOSE(x) (fabs((x) - grad[at]) <= 2e-4 + 1e-2 * fabs(x))
            if (CLOSE(num)) continue;
            if (CLOSE(fwd) || CLOSE(bwd)) {
                kinked++;
                continue;
            }
#undef CLOSE
            if (bad++ < 5)
                fprintf(stderr, "  %s param %d[%lld]: analytic %.6g, central %.6g, forward %.6g, backward %.6g\n", name, p, (long long)e, grad[at],
                        num, fwd, bwd);
        }
    m->loss_grad(m->self, u, pos, neg, 6);
    t_check(bad == 0 && kinked * 50 <= total && total > 20,
            "%s: %lld gradients against finite differences, %d wrong, %d at a LeakyReLU kink (one side's slope)", name, (long long)total, bad,
            kinked);
    printf("  %s: %lld gradients, %d at a kink, %d wrong\n", name, (long long)total, kinked, bad);
    free(grad);
}

/* With extra items (none chosen), the items outnumber the users and the layers' products run over the users' rows
 * (mrec_mmgcn_create's side); the other items' losses, gradients and weights are unchanged: the extra rows of
 * [G_u ; G_i] come after PyTorch's and keep mrec's values. */
static void test_against_pytorch(mrec_context *ctx, int extra) {
    fixture fx;
    if (!fixture_open(&fx, extra)) return;
    int64_t more = (int64_t)extra * fx.d; /* [G_u ; G_i]'s floats past PyTorch's */
    for (const cJSON *cs = fx.ref->child; cs; cs = cs->next) {
        mrec_graph g;
        mrec_model m;
        mrec_rng rng = {1};
        if (!t_status(create_case(&m, &g, &fx, cs, fx.d, &rng, ctx), MREC_OK, "create mmgcn %s", cs->string)) continue;
        /* the same tensors in the same order, with PyTorch's initial values */
        int p = 0, sizes_ok = 1;
        for (const cJSON *w = cJSON_GetObjectItem(cs, "init")->child; w; w = w->next, p++) {
            sizes_ok &= p < m.n_params && cJSON_GetArraySize(w) == m.size[p] - (p ? 0 : more);
            if (sizes_ok) fill_floats(m.param[p], w);
        }
        if (!t_check(sizes_ok && p == m.n_params, "%s: %d parameter tensors of PyTorch's sizes (mrec has %d)", cs->string, p, m.n_params)) {
            mrec_model_destroy(&m), mrec_graph_free(&g);
            continue;
        }
        mrec_optimizer adam;
        mrec_adam_init(&adam, (float)cJSON_GetObjectItem(cs, "lr")->valuedouble, 0);
        for (int k = 0; k < m.n_params; k++) mrec_adam_add(&adam, m.param[k], m.grad[k], m.size[k]);
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
                for (const cJSON *g = cJSON_GetObjectItem(cs, "grad0")->child; g && q < m.n_params; g = g->next, q++) {
                    int64_t size = m.size[q] - (q ? 0 : more);
                    float *gv = malloc(sizeof(float) * (size_t)size);
                    fill_floats(gv, g);
                    char what[96];
                    snprintf(what, sizeof what, "%s%s gradient %d of the first batch", cs->string, extra ? " (more items)" : "", q);
                    t_allclose(what, gv, m.grad[q], size, 1e-6, 1e-4);
                    free(gv);
                }
            }
            mrec_adam_step_active(&adam, m.active, ctx);
        }
        const char *more_items = extra ? " with more items than users" : "";
        t_check(bad == 0 && step == 6, "%s%s: loss at each of %d Adam steps within 1e-4 of PyTorch (worst %.2g)", cs->string, more_items, step,
                worst);
        printf("  %s%s: losses over %d Adam steps at most %.2g from PyTorch's\n", cs->string, more_items, step, worst);
        p = 0;
        for (const cJSON *w = cJSON_GetObjectItem(cs, "weights")->child; w; w = w->next, p++) {
            int64_t size = m.size[p] - (p ? 0 : more);
            float *wv = malloc(sizeof(float) * (size_t)size);
            fill_floats(wv, w);
            char what[96];
            snprintf(what, sizeof what, "%s%s parameter %d after 6 steps", cs->string, more_items, p);
            t_allclose(what, wv, m.param[p], size, 1e-4, 0);
            free(wv);
        }
        /* scoring: the propagated rows' dot products, the same after prepare as the embeddings say */
        float *scores = malloc(sizeof(float) * (size_t)fx.I * 2), *users = malloc(sizeof(float) * (size_t)fx.U * fx.d);
        float *items = malloc(sizeof(float) * (size_t)fx.I * fx.d);
        if (t_status(m.prepare(m.self), MREC_OK, "prepare") && t_status(m.score(m.self, 3, 2, scores), MREC_OK, "score") &&
            t_status(m.embeddings(m.self, users, items), MREC_OK, "embeddings")) {
            double err = 0;
            for (int u = 0; u < 2; u++)
                for (int i = 0; i < fx.I; i++) {
                    double s = 0;
                    for (int e = 0; e < fx.d; e++) s += (double)users[(size_t)(3 + u) * fx.d + e] * items[(size_t)i * fx.d + e];
                    err = fmax(err, fabs(s - scores[(size_t)u * fx.I + i]));
                }
            t_check(err < 1e-5, "%s: scores are the embeddings' dot products (max error %.2g)", cs->string, err);
        }
        free(scores), free(users), free(items);
        mrec_adam_free(&adam);
        mrec_model_destroy(&m);
        mrec_graph_free(&g);
    }
    /* finite differences, d = 4, on both cases' structure */
    for (const cJSON *cs = fx.ref->child; cs; cs = cs->next) {
        mrec_graph g;
        mrec_model m;
        mrec_rng rng = {7};
        char what[64];
        snprintf(what, sizeof what, "mmgcn %s d=4%s", cs->string, extra ? ", more items" : "");
        if (t_status(create_case(&m, &g, &fx, cs, 4, &rng, ctx), MREC_OK, "create %s", what)) {
            check_gradients_kinked(&m, what);
            mrec_model_destroy(&m);
        }
        mrec_graph_free(&g);
    }
    fixture_close(&fx);
}

/* Â: mean divides a row by its degree, add keeps ones; no self-loops */
static void test_graph(void) {
    fixture fx;
    if (!fixture_open(&fx, 0)) return;
    mrec_graph mean, add;
    if (t_status(mrec_graph_mmgcn(&mean, &fx.train, 1), MREC_OK, "mean graph") && t_status(mrec_graph_mmgcn(&add, &fx.train, 0), MREC_OK, "add graph")) {
        int bad = 0;
        for (int r = 0; r < mean.n_nodes; r++) {
            double s = 0;
            int64_t lo = mean.row_ptr[r], hi = mean.row_ptr[r + 1];
            for (int64_t e = lo; e < hi; e++) s += mean.val[e], bad += add.val[e] != 1.0f || mean.col[e] == r;
            bad += hi > lo && fabs(s - 1) > 1e-6;
        }
        t_check(bad == 0 && mean.row_ptr[mean.n_nodes] == 2 * fx.train.row_ptr[fx.U], "mean rows sum to 1, add's entries are 1, %lld entries",
                (long long)mean.row_ptr[mean.n_nodes]);
        mrec_graph_free(&mean), mrec_graph_free(&add);
    }
    /* bad sizes are refused by name */
    mrec_graph g;
    mrec_model m;
    mrec_rng rng = {1};
    const float *xs[1] = {fx.feat[0]};
    int dims[1] = {6}, proj[1] = {0};
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 1;
    mrec_context *ctx;
    if (t_status(mrec_graph_mmgcn(&g, &fx.train, 1), MREC_OK, "graph") && t_status(mrec_context_create(&ctx, &o), MREC_OK, "context")) {
        mrec_status st = mrec_mmgcn_create(&m, &g, fx.U, fx.I, xs, dims, proj, 1, 8, 0, 0, 1, 0.1f, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "mmgcn") && strstr(mrec_error_detail(), "layers"), "0 layers refused: %s",
                mrec_error_detail());
        st = mrec_mmgcn_create(&m, &g, fx.U + 1, fx.I, xs, dims, proj, 1, 8, 2, 0, 1, 0.1f, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "graph of"), "a graph of other nodes refused: %s", mrec_error_detail());
        int32_t keep = g.col[0]; /* user 0's first item, made user 1 */
        g.col[0] = 1;
        st = mrec_mmgcn_create(&m, &g, fx.U, fx.I, xs, dims, proj, 1, 8, 2, 0, 1, 0.1f, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "node 0 to node 1, both users"), "an entry joining two users refused: %s",
                mrec_error_detail());
        g.col[0] = keep;
        mrec_context_destroy(ctx);
    }
    mrec_graph_free(&g);
    fixture_close(&fx);
}

/* The registry: the fork's keys, the template's defaults, factors_multimod's None */
static void test_registry(void) {
    const mrec_model_entry *e = mrec_model_find("external.MMGCN");
    if (!t_check(e != NULL && e == mrec_model_find("mmgcn"), "MMGCN is in the registry by both names")) return;
    static const char *const keys[] = {"lr", "epochs", "factors", "batch_size", "l_w", "num_layers", "factors_multimod", "aggregation",
                                       "concatenation", "has_id", "seed", NULL};
    int all = 1;
    for (int k = 0; keys[k]; k++) all &= mrec_model_param_elliot(e, keys[k]) != NULL;
    t_check(all && e->needs == MREC_NEEDS_ANY && (e->flags & MREC_MODEL_TRAINS), "every Elliot key of the fork is a hyper-parameter");
    mrec_param_values p;
    if (t_status(mrec_params_resolve(&p, e, NULL), MREC_OK, "mmgcn defaults"))
        t_check(mrec_hp_int(&p, MREC_HP_LAYERS) == 3 && mrec_hp_int(&p, MREC_HP_DIM) == 64 && mrec_hp_item(&p, MREC_HP_MULTIMOD_DIMS, 0) == 256 &&
                    mrec_hp_item(&p, MREC_HP_MULTIMOD_DIMS, 1) == 0 && mrec_hp_int(&p, MREC_HP_GCN_AGGR) == 0 && mrec_hp_int(&p, MREC_HP_CONCAT) == 0 &&
                    mrec_hp_int(&p, MREC_HP_HAS_ID) == 1 && mrec_hp_int(&p, MREC_HP_BATCH_SIZE) == 1024 && mrec_hp_u64(&p, MREC_HP_SEED) == 123 &&
                    mrec_hp_int(&p, MREC_HP_EPOCHS) == 200 && mrec_hp_int(&p, MREC_HP_SAMPLER) == 0,
                "the template's num_layers 3, factors 64, (256, None), mean, no concatenation, has_id, batch 1024, seed 123, 200 epochs");
    mrec_param_value v;
    char text[64];
    mrec_status st = mrec_param_parse(MREC_HP_MULTIMOD_DIMS, "(256, None)", &v);
    mrec_param_format(text, sizeof text, MREC_HP_MULTIMOD_DIMS, &v);
    t_check(!st && v.x[0] == 256 && v.x[1] == 0 && !strcmp(text, "256:None"), "(256, None) reads as 256 and none: %s", text);
    st = mrec_param_parse(MREC_HP_MULTIMOD_DIMS, "None:32", &v);
    t_check(!st && v.x[0] == 0 && v.x[1] == 32, "None:32 on the command line");
    st = mrec_param_parse(MREC_HP_MULTIMOD_DIMS, "(256, Nil)", &v);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "Nil"), "(256, Nil) refused: %s", mrec_error_detail());
    st = mrec_param_parse(MREC_HP_CONCAT, "True", &v);
    t_check(!st && v.x[0] == 1, "concatenation True");
    st = mrec_param_parse(MREC_HP_GCN_AGGR, "max", &v);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "mean"), "aggregation max refused: %s", mrec_error_detail());
}

/* mrec train --model mmgcn on TikTok: one epoch, small sizes, a number comes out */
static void test_train_tiktok(const char *bin, const char *dir) {
    const char *tk = "../shared/data/tiktok-mmssl";
    char path[512], cmd[9000], out[65536];
    snprintf(path, sizeof path, "%s/tiktok_split.tsv", tk);
    if (access(path, R_OK) != 0) {
        t_skip("mrec train --model mmgcn on TikTok: %s not found", path);
        return;
    }
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --model mmgcn --epochs 1 --dim 16 --layers 2 --multimod-dims 32:None --lr 0.001 --batch-size 8192 "
             "--k 20 --metrics recall --threads 2 --features visual=%s/original_diffmm/image_feat.npy,acoustic=%s/original_diffmm/audio_feat.npy "
             "--out %s/tiktok 2>&1",
             bin, path, tk, tk, dir);
    int rc = t_run(cmd, out, sizeof out);
    const char *r = strstr(out, "recall@20=");
    double recall = r ? atof(r + 10) : -1;
    /* 6710 items: chance is 20 / 6710 of the test items, 0.003 */
    t_check(rc == 0 && strstr(out, "MMGCN") && strstr(out, "multimod=32:None") && isfinite(recall) && recall > 0,
            "mrec train --model mmgcn on TikTok (visual projected to 32, acoustic as it is), one epoch: exit %d, recall@20 %.4f%s%.600s", rc,
            recall, rc ? "\n" : "", rc ? out : "");
    printf("  TikTok, MMGCN one epoch (d 16, 2 layers): recall@20 %.4f\n", recall);
}

/* An Elliot config naming external.MMGCN with the template's block (epochs cut to 2) */
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
                         "    external.MMGCN:\n"
                         "      meta:\n"
                         "        hyper_opt_alg: grid\n"
                         "        verbose: True\n"
                         "        save_weights: False\n"
                         "        save_recs: False\n"
                         "        validation_rate: 1\n"
                         "        validation_metric: Recall@20\n"
                         "        restore: False\n"
                         "      lr: [ 0.001, 0.01 ]\n"
                         "      epochs: 2\n"
                         "      num_layers: 3\n"
                         "      factors: 16\n"
                         "      factors_multimod: (32, None)\n"
                         "      batch_size: 1024\n"
                         "      aggregation: mean\n"
                         "      concatenation: False\n"
                         "      has_id: True\n"
                         "      modalities: ('visual', 'textual')\n"
                         "      loaders: ('VisualAttribute','TextualAttribute')\n"
                         "      l_w: [ 1e-5, 1e-2 ]\n"
                         "      seed: 123\n";
    snprintf(path, sizeof path, "%s/mmgcn.yml", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs(config, f), fclose(f);
    char cmd[9000], out[65536];
    snprintf(cmd, sizeof cmd, "cd %s && %s train mmgcn.yml --out res --threads 1 2>&1", dir, bin);
    int rc = t_run(cmd, out, sizeof out);
    int rows = 0;
    for (const char *s = out; (s = strstr(s, "MMGCN dim=16,layers=3")); s++) rows++;
    t_check(rc == 0 && rows >= 4 && strstr(out, "multimod=32:None") && strstr(out, "features=visual+textual") && !strstr(out, "left out"),
            "mrec train on an Elliot config naming external.MMGCN (a grid of 4): exit %d, %d rows%s%.900s", rc, rows, rc ? "\n" : "", rc ? out : "");
    /* a bad value is refused by key and line */
    snprintf(path, sizeof path, "%s/bad.yml", dir);
    f = fopen(path, "w");
    if (f) {
        const char *at = strstr(config, "      concatenation: False\n");
        fprintf(f, "%.*s      concatenation: maybe\n%s", (int)(at - config), config, at + strlen("      concatenation: False\n"));
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "cd %s && %s train bad.yml --out res2 2>&1", dir, bin);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc != 0 && strstr(out, "concatenation") && strstr(out, "line 34"), "concatenation: maybe refused by key and line: %.300s", out);
}

static void test_cli(void) {
    const char *bin = getenv("MREC_BIN");
    if (!bin) {
        t_skip("mrec train --model mmgcn and an Elliot config: MREC_BIN is not set");
        return;
    }
    char dir[] = "/tmp/mrec-mmgcn-XXXXXX", cwd[2048], abs_bin[4200], cmd[4400], out[65536];
    if (!t_check(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL, "a scratch folder")) return;
    if (bin[0] != '/') snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin), bin = abs_bin;
    snprintf(cmd, sizeof cmd, "%s train --help 2>&1", bin);
    int rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "mmgcn") && strstr(out, "--multimod-dims") && strstr(out, "--has-id"), "mrec train --help lists mmgcn and its options");
    test_train_tiktok(bin, dir);
    test_config(bin, dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    t_suite("mmgcn");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_registry();
    test_graph();
    test_against_pytorch(ctx, 0);
    test_against_pytorch(ctx, 10);
    mrec_context_destroy(ctx);
    test_cli();
    return t_finish();
}
