/* test_pgl.c: PGL's local variant as its authors' code defines it (recsys/pgl.c).
 *
 * Training against tools/golden/pgl.py, a PyTorch restatement of the authors'
 * PGL given the same initial weights, graph, features, batches, principal
 * subgraphs (drawn there by torch.multinomial, as the reference draws them)
 * and dropout masks (mrec's hash stream, restated there): FREEDOM's item
 * graph entry by entry (1e-6), the first batch's gradients, the loss at every
 * Adam step and every weight after the last to 1e-4, and the final
 * embeddings on the full graph, for the reference's structure (2 user-item
 * layers, 1 item-graph layer, 30 % of the edges, dropout 0.2, temperature
 * 0.2), another (1 and 2 layers, half the edges, dropout 0.4, temperature
 * 0.5) and one modality without an item-graph layer; the subgraph changes
 * after step 3. Both sides are float32 summing in different orders (dense
 * matrices there, sparse products here); six Adam steps of lr 0.01 leave
 * them ~1e-6 apart, while a wrong term (the renormalization of the
 * subgraph, the unit rows' derivative, a dropout's scale, the contrast's
 * halving) moves them by 1e-3 or more. The edge sampler against
 * torch.multinomial without replacement: how often each edge is kept over
 * 10^5 draws here and 10^6 there (inclusion frequencies from 0.19 to 0.46
 * where a uniform draw would keep every edge 0.30 of the time), within 5
 * standard deviations. Gradients against central finite differences on a
 * d = 4 model with the dropout masks held. The registry's keys and
 * defaults, `mrec train --model pgl --save` on TikTok's real features
 * (skipped without ../shared/data) followed by `mrec recommend --all`, which
 * must give the run's recommendations.tsv, and an Elliot config with
 * PGL.yaml's keys, through the binary in $MREC_BIN.
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

typedef struct {
    cJSON *c, *ref;
    int U, I, d;
    float *feat[2];
    mrec_user_items train;
} fixture;

static const int FEAT_DIM[2] = {6, 5};
static const char *const NAMES[2] = {"visual", "textual"};

static int fixture_open(fixture *fx) {
    memset(fx, 0, sizeof *fx);
    if (!(fx->c = read_fixture_json("tests/fixtures/multimodal/trajectory.json"))) return 0;
    if (!(fx->ref = read_fixture_json("tests/fixtures/multimodal/pgl.json"))) {
        cJSON_Delete(fx->c);
        return 0;
    }
    fx->U = cJSON_GetObjectItem(fx->c, "n_users")->valueint, fx->I = cJSON_GetObjectItem(fx->c, "n_items")->valueint;
    fx->d = cJSON_GetObjectItem(fx->c, "dim")->valueint;
    for (int m = 0; m < 2; m++) {
        fx->feat[m] = malloc(sizeof(float) * (size_t)fx->I * FEAT_DIM[m]);
        fill_floats(fx->feat[m], cJSON_GetObjectItem(fx->c, NAMES[m]));
    }
    build_train(&fx->train, cJSON_GetObjectItem(fx->c, "pairs"), fx->U, fx->I);
    return 1;
}

static void fixture_close(fixture *fx) {
    free(fx->feat[0]), free(fx->feat[1]);
    mrec_user_items_free(&fx->train);
    cJSON_Delete(fx->c), cJSON_Delete(fx->ref);
}

static int num(const cJSON *c, const char *key) { return cJSON_GetObjectItem(c, key)->valueint; }
static float real(const cJSON *c, const char *key) { return (float)cJSON_GetObjectItem(c, key)->valuedouble; }

/* A case's modalities (by name, in its order), their features, sizes and FREEDOM's weights (visual 0.1, the rest 0.9). */
static int case_modalities(const fixture *fx, const cJSON *cs, const float **xs, int *dims, float *w) {
    int n = 0;
    for (const cJSON *v = cJSON_GetObjectItem(cs, "modalities")->child; v && n < 2; v = v->next, n++) {
        int k = !strcmp(v->valuestring, "visual") ? 0 : 1;
        xs[n] = fx->feat[k], dims[n] = FEAT_DIM[k];
    }
    for (int k = 0; k < n; k++) w[k] = n == 1 ? 1.0f : xs[k] == fx->feat[0] ? 0.1f : 0.9f;
    return n;
}

/* A case of the fixture as mrec's model; adj and s are the caller's to free. */
static mrec_status create_case(mrec_model *m, mrec_graph *adj, mrec_graph *s, const fixture *fx, const cJSON *cs, int dim, mrec_rng *rng,
                               mrec_context *ctx) {
    const float *xs[2];
    int dims[2];
    float w[2];
    int n = case_modalities(fx, cs, xs, dims, w);
    memset(adj, 0, sizeof *adj), memset(s, 0, sizeof *s);
    mrec_status st = mrec_graph_normalized(adj, &fx->train);
    if (!st) st = mrec_graph_knn(s, xs, dims, w, n, fx->I, num(cs, "knn_k"), ctx);
    if (st) return st;
    return mrec_pgl_create(m, adj, s, &fx->train, xs, dims, n, dim, num(cs, "layers"), num(cs, "item_layers"), real(cs, "cl"),
                           real(cs, "dropout"), real(cs, "edge_dropout"), real(cs, "temp"), rng, ctx);
}

static void free_graphs(mrec_graph *adj, mrec_graph *s) { mrec_graph_free(adj), mrec_graph_free(s); }

/* FREEDOM's item graph of each case against the reference's dense one */
static void test_item_graph(const fixture *fx, mrec_context *ctx) {
    for (const cJSON *cs = cJSON_GetObjectItem(fx->ref, "cases")->child; cs; cs = cs->next) {
        const float *xs[2];
        int dims[2];
        float w[2];
        int n = case_modalities(fx, cs, xs, dims, w);
        mrec_graph g;
        if (!t_status(mrec_graph_knn(&g, xs, dims, w, n, fx->I, num(cs, "knn_k"), ctx), MREC_OK, "%s: item graph", cs->string)) continue;
        size_t nn = (size_t)fx->I * fx->I;
        float *dense = calloc(nn, sizeof *dense), *ref = malloc(nn * sizeof *ref);
        fill_floats(ref, cJSON_GetObjectItem(cs, "item_graph"));
        for (int r = 0; r < fx->I; r++)
            for (int64_t e = g.row_ptr[r]; e < g.row_ptr[r + 1]; e++) dense[(size_t)r * fx->I + g.col[e]] += g.val[e];
        char what[128];
        snprintf(what, sizeof what, "%s: FREEDOM's item graph (k %d, %d modalities, %lld entries) against the reference's", cs->string,
                 num(cs, "knn_k"), n, (long long)g.row_ptr[fx->I]);
        t_allclose(what, ref, dense, (int64_t)nn, 1e-6, 1e-5);
        free(dense), free(ref), mrec_graph_free(&g);
    }
}

/* The degree-sensitive draw: how often each edge is kept, against torch.multinomial's frequencies */
static void test_sampler(const fixture *fx, mrec_context *ctx) {
    const cJSON *smp = cJSON_GetObjectItem(fx->ref, "sampler"), *cs = cJSON_GetObjectItem(cJSON_GetObjectItem(fx->ref, "cases"), "pgl");
    int E = cJSON_GetArraySize(cJSON_GetObjectItem(smp, "frequency")), keep = num(smp, "keep");
    double ref_draws = cJSON_GetObjectItem(smp, "draws")->valuedouble;
    if (!t_check(E == fx->train.row_ptr[fx->U] && real(smp, "edge_dropout") == real(cs, "edge_dropout"), "the sampler's fixture: %d edges", E)) return;
    mrec_graph adj, s;
    mrec_model m;
    mrec_rng rng = {3};
    if (!t_status(create_case(&m, &adj, &s, fx, cs, fx->d, &rng, ctx), MREC_OK, "create pgl")) {
        free_graphs(&adj, &s);
        return;
    }
    enum { DRAWS = 100000 };
    double *count = calloc((size_t)E, sizeof *count), *ref = malloc(sizeof(double) * (size_t)E);
    int64_t *kept = malloc(sizeof(int64_t) * (size_t)E), n = 0;
    int shape_ok = 1;
    for (int r = 0; r < DRAWS && shape_ok; r++) {
        shape_ok = mrec_pgl_draw_edges(&m, kept, &n) == MREC_OK && n == keep;
        for (int64_t e = 0; e < n && shape_ok; e++) {
            shape_ok = kept[e] >= 0 && kept[e] < E && (e == 0 || kept[e] > kept[e - 1]);
            count[kept[e]]++;
        }
    }
    t_check(shape_ok, "each draw keeps int(%d x 0.3) = %d distinct edges, in increasing order", E, keep);
    int e = 0, bad = 0;
    double worst = 0, spread = 0, uniform = (double)keep / E;
    for (const cJSON *v = cJSON_GetObjectItem(smp, "frequency")->child; v; v = v->next, e++) ref[e] = v->valuedouble;
    for (e = 0; e < E; e++) {
        double p = ref[e], got = count[e] / DRAWS, sd = sqrt(p * (1 - p) * (1.0 / DRAWS + 1.0 / ref_draws));
        worst = fmax(worst, fabs(got - p) / sd), spread = fmax(spread, fabs(p - uniform) / sd);
        if (fabs(got - p) > 5 * sd && bad++ < 3) fprintf(stderr, "  edge %d kept %.4f of the draws, torch.multinomial %.4f\n", e, got, p);
    }
    t_check(bad == 0, "every edge kept as often as torch.multinomial keeps it, within 5 sd (worst %.2f sd over %d edges)", worst, E);
    t_check(spread > 20, "the check tells a degree-sensitive draw from a uniform one: an edge %.0f sd from %.3f", spread, uniform);
    printf("  sampler: %d edges, inclusion within %.2f sd of torch.multinomial's (a uniform draw: %.0f sd off)\n", E, worst, spread);
    free(count), free(ref), free(kept);
    mrec_model_destroy(&m);
    free_graphs(&adj, &s);
}

static int64_t *sample_of(const cJSON *cs, int which, int64_t *n) {
    const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(cs, "samples"), which);
    int64_t *kept = malloc(sizeof(int64_t) * ((size_t)cJSON_GetArraySize(s) + 1));
    *n = 0;
    for (const cJSON *v = s->child; v; v = v->next) kept[(*n)++] = v->valueint;
    return kept;
}

static void test_against_pytorch(const fixture *fx, mrec_context *ctx) {
    for (const cJSON *cs = cJSON_GetObjectItem(fx->ref, "cases")->child; cs; cs = cs->next) {
        mrec_graph adj, s;
        mrec_model m;
        mrec_rng rng = {1};
        if (!t_status(create_case(&m, &adj, &s, fx, cs, fx->d, &rng, ctx), MREC_OK, "create pgl %s", cs->string)) {
            free_graphs(&adj, &s);
            continue;
        }
        /* the same tensors in the same order, with PyTorch's initial values */
        int p = 0, sizes_ok = 1;
        for (const cJSON *w = cJSON_GetObjectItem(cs, "init")->child; w; w = w->next, p++) {
            sizes_ok &= p < m.n_params && cJSON_GetArraySize(w) == m.size[p];
            if (sizes_ok) fill_floats(m.param[p], w);
        }
        if (!t_check(sizes_ok && p == m.n_params, "%s: %d parameter tensors of PyTorch's sizes (mrec has %d)", cs->string, p, m.n_params)) {
            mrec_model_destroy(&m), free_graphs(&adj, &s);
            continue;
        }
        t_status(mrec_pgl_set_dropout_seed(&m, (uint64_t)cJSON_GetObjectItem(cs, "dropout_seed")->valuedouble, 0), MREC_OK, "dropout seed");
        mrec_optimizer adam;
        mrec_adam_init(&adam, real(cs, "lr"), 0);
        for (int k = 0; k < m.n_params; k++) mrec_adam_add(&adam, m.param[k], m.grad[k], m.size[k]);
        const cJSON *want = cJSON_GetObjectItem(cs, "losses")->child;
        int step = 0, bad = 0;
        double worst = 0;
        for (const cJSON *b = cJSON_GetObjectItem(fx->c, "batches")->child; b && want; b = b->next, want = want->next, step++) {
            if (step == 0 || step == 3) { /* the subgraph the reference drew for these steps */
                int64_t n, *kept = sample_of(cs, step / 3, &n);
                t_status(mrec_pgl_set_edges(&m, kept, n), MREC_OK, "%s: the principal subgraph of step %d", cs->string, step);
                free(kept);
            }
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
                    float *gv = malloc(sizeof(float) * (size_t)m.size[q]);
                    fill_floats(gv, g);
                    char what[96];
                    snprintf(what, sizeof what, "%s gradient %d of the first batch", cs->string, q);
                    t_allclose(what, gv, m.grad[q], m.size[q], 1e-6, 1e-4);
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
        /* the final embeddings on the full graph after the steps, and scores as their dot products */
        int U = fx->U, I = fx->I, W = m.embed_dim;
        float *users = malloc(sizeof(float) * (size_t)(U + I) * W), *items = users + (size_t)U * W;
        float *ref = malloc(sizeof(float) * (size_t)(U + I) * W), *scores = malloc(sizeof(float) * (size_t)I * 2);
        t_check(cJSON_GetArraySize(cJSON_GetObjectItem(cs, "final")) == (U + I) * W, "%s: embeddings %d wide", cs->string, W);
        fill_floats(ref, cJSON_GetObjectItem(cs, "final"));
        if (t_status(m.prepare(m.self), MREC_OK, "prepare") && t_status(m.embeddings(m.self, users, items), MREC_OK, "embeddings") &&
            t_status(m.score(m.self, 3, 2, scores), MREC_OK, "score")) {
            char what[96];
            snprintf(what, sizeof what, "%s: final embeddings on the full graph after 6 steps", cs->string);
            t_allclose(what, ref, users, (int64_t)(U + I) * W, 1e-4, 0);
            double err = 0;
            for (int u = 0; u < 2; u++)
                for (int i = 0; i < I; i++) {
                    double sc = 0;
                    for (int e = 0; e < W; e++) sc += (double)users[(size_t)(3 + u) * W + e] * items[(size_t)i * W + e];
                    err = fmax(err, fabs(sc - scores[(size_t)u * I + i]));
                }
            t_check(err < 1e-5, "%s: scores are the embeddings' dot products (max error %.2g)", cs->string, err);
        }
        free(users), free(ref), free(scores);
        mrec_adam_free(&adam);
        mrec_model_destroy(&m);
        free_graphs(&adj, &s);
    }
    /* finite differences, d = 4, on every case's structure, the masks held (the model is smooth there: unit rows, softmax) */
    for (const cJSON *cs = cJSON_GetObjectItem(fx->ref, "cases")->child; cs; cs = cs->next) {
        mrec_graph adj, s;
        mrec_model m;
        mrec_rng rng = {7};
        char what[64];
        snprintf(what, sizeof what, "pgl %s d=4", cs->string);
        if (t_status(create_case(&m, &adj, &s, fx, cs, 4, &rng, ctx), MREC_OK, "create %s", what)) {
            mrec_pgl_set_dropout_seed(&m, 11, 1);
            check_gradients(&m, what);
            mrec_model_destroy(&m);
        }
        free_graphs(&adj, &s);
    }
}

/* Bad sizes and arguments are refused by name */
static void test_refusals(const fixture *fx, mrec_context *ctx) {
    mrec_graph adj, s;
    mrec_model m;
    mrec_rng rng = {1};
    const cJSON *cs = cJSON_GetObjectItem(cJSON_GetObjectItem(fx->ref, "cases"), "pgl");
    if (!t_status(create_case(&m, &adj, &s, fx, cs, 4, &rng, ctx), MREC_OK, "create")) {
        free_graphs(&adj, &s);
        return;
    }
    int64_t unsorted[3] = {4, 2, 9}, outside[2] = {3, 100000};
    mrec_status st = mrec_pgl_set_edges(&m, unsorted, 3);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "entry 1 (2)"), "edges out of order refused by entry: %s", mrec_error_detail());
    st = mrec_pgl_set_edges(&m, outside, 2);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "entry 1 (100000)"), "an edge past the last refused by entry: %s", mrec_error_detail());
    mrec_model_destroy(&m);
    const float *xs[2] = {fx->feat[0], fx->feat[1]};
    mrec_user_items wider = fx->train;
    wider.n_rows = fx->U - 1; /* a graph of other nodes */
    st = mrec_pgl_create(&m, &adj, &s, &wider, xs, FEAT_DIM, 2, 4, 2, 1, 0.1f, 0.2f, 0.7f, 0.2f, &rng, ctx);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "pgl: graphs of"), "a graph of other nodes refused: %s", mrec_error_detail());
    st = mrec_pgl_create(&m, &adj, &s, &fx->train, xs, FEAT_DIM, 2, 4, 2, 1, 0.1f, 0.2f, 0.7f, 0.0f, &rng, ctx);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "temperature 0"), "temperature 0 refused: %s", mrec_error_detail());
    st = mrec_pgl_create(&m, &adj, &s, &fx->train, xs, FEAT_DIM, 2, 4, 2, 1, 0.1f, 0.2f, 1.0f, 0.2f, &rng, ctx);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "edge dropout 1"), "edge dropout 1 (no edge left) refused: %s", mrec_error_detail());
    /* the hooks name the model they were given */
    mrec_model other;
    if (t_status(mrec_bprmf_create(&other, fx->U, fx->I, 4, 0, &rng, ctx), MREC_OK, "bprmf")) {
        st = mrec_pgl_set_dropout_seed(&other, 1, 0);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "not PGL"), "a hook given another model refuses it: %s", mrec_error_detail());
        mrec_model_destroy(&other);
    }
    free_graphs(&adj, &s);
}

/* The registry: PGL.yaml's keys, its values and the authors' Baby run's */
static void test_registry(void) {
    const mrec_model_entry *e = mrec_model_find("PGL");
    if (!t_check(e != NULL && e == mrec_model_find("pgl"), "PGL is in the registry by both names")) return;
    static const char *const keys[] = {"factors", "n_ui_layers", "n_mm_layers", "knn_k", "reg_weight", "dropout", "lr", "lr_sched",
                                       "batch_size", "seed", "epochs", NULL};
    int all = 1;
    for (int k = 0; keys[k]; k++) all &= mrec_model_param_elliot(e, keys[k]) != NULL;
    t_check(all && mrec_model_fixed(e, "mode") && mrec_model_fixed(e, "mm_image_weight") && mrec_model_fixed(e, "feat_embed_dim") &&
                e->needs == MREC_NEEDS_ANY && (e->flags & MREC_MODEL_TRAINS) && (e->flags & MREC_MODEL_GPU) && (e->flags & MREC_MODEL_GRAPH_CACHE),
            "PGL.yaml's keys are hyper-parameters or fixed; it trains, on a GPU context too, its item graph cached");
    mrec_param_values p;
    if (t_status(mrec_params_resolve(&p, e, NULL), MREC_OK, "pgl defaults"))
        t_check(mrec_hp_int(&p, MREC_HP_DIM) == 64 && mrec_hp_int(&p, MREC_HP_LAYERS) == 2 && mrec_hp_int(&p, MREC_HP_ITEM_LAYERS) == 1 &&
                    mrec_hp_int(&p, MREC_HP_KNN_K) == 10 && mrec_hp_real(&p, MREC_HP_CL_WEIGHT) == 0.05f &&
                    mrec_hp_real(&p, MREC_HP_TARGET_DROPOUT) == 0.2f && mrec_hp_real(&p, MREC_HP_EDGE_DROPOUT) == 0.7f &&
                    mrec_hp_real(&p, MREC_HP_TEMP) == 0.2f && mrec_hp_real(&p, MREC_HP_LR) == 0.001f &&
                    mrec_hp_item(&p, MREC_HP_LR_DECAY, 0) == 0.96f && mrec_hp_item(&p, MREC_HP_LR_DECAY, 1) == 50 &&
                    mrec_hp_int(&p, MREC_HP_BATCH_SIZE) == 2048 && mrec_hp_u64(&p, MREC_HP_SEED) == 999,
                "PGL.yaml's embedding 64, n_ui_layers 2, n_mm_layers 1, knn_k 10, lr 0.001 decayed 0.96 every 50; the Baby run's "
                "reg_weight 0.05 and dropout 0.2; the code's 30 %% of the edges and temperature 0.2; batch 2048, seed 999");
}

/* mrec train --model pgl --save on TikTok (one epoch, small sizes), then mrec recommend --all from the saved model */
static void test_train_tiktok(const char *bin, const char *dir) {
    const char *tk = "../shared/data/tiktok-mmssl";
    char path[4400], cmd[9000], out[65536];
    snprintf(path, sizeof path, "%s/tiktok_split.tsv", tk);
    if (access(path, R_OK) != 0) {
        t_skip("mrec train --model pgl on TikTok: %s not found", path);
        return;
    }
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --model pgl --epochs 1 --dim 16 --batch-size 4096 --k 20 --metrics recall --threads 2 --save-topk 20 "
             "--cache %s/cache --features visual=%s/original_diffmm/image_feat.npy,acoustic=%s/original_diffmm/audio_feat.npy "
             "--out %s/run --save %s/model 2>&1",
             bin, path, dir, tk, tk, dir, dir);
    int rc = t_run(cmd, out, sizeof out);
    const char *r = strstr(out, "recall@20=");
    double recall = r ? atof(r + 10) : -1;
    /* 6710 items: chance is 20 / 6710 of the test items, 0.003 */
    t_check(rc == 0 && strstr(out, "PGL") && strstr(out, "edge_dropout=0.7") && strstr(out, "cl=0.05") &&
                strstr(out, "features=visual:0.1+acoustic:0.9") && isfinite(recall) && recall > 0.003,
            "mrec train --model pgl on TikTok (visual, acoustic), one epoch: exit %d, recall@20 %.4f%s%.900s", rc, recall, rc ? "\n" : "",
            rc ? out : "");
    printf("  TikTok, PGL one epoch (d 16 per modality): recall@20 %.4f\n", recall);
    if (rc) return;
    snprintf(cmd, sizeof cmd, "%s recommend %s/model --all --out %s/recs.tsv 2>&1", bin, dir, dir);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0, "mrec recommend --all from the saved PGL: exit %d %.600s", rc, out);
    snprintf(path, sizeof path, "%s/recs.tsv", dir);
    char *got = t_slurp(path), *folded = got ? t_recs_rows(got) : NULL;
    snprintf(path, sizeof path, "%s/run/recommendations.tsv", dir);
    char *want = t_slurp(path);
    t_check(folded && want && strlen(want) > 1000 && !strcmp(folded, want),
            "mrec recommend --all from the saved PGL equals the run's recommendations.tsv (%zu bytes)", want ? strlen(want) : 0);
    free(got), free(folded), free(want);
}

/* An Elliot config naming PGL with PGL.yaml's keys, a grid over reg_weight (epochs cut to 2) */
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
    uint64_t seed = 13;
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
                         "    PGL:\n"
                         "      meta:\n"
                         "        verbose: True\n"
                         "        validation_rate: 1\n"
                         "        validation_metric: Recall@20\n"
                         "      lr: 0.001\n"
                         "      epochs: 2\n"
                         "      factors: 16\n"
                         "      feat_embed_dim: 16\n"
                         "      n_ui_layers: 2\n"
                         "      n_mm_layers: 1\n"
                         "      knn_k: 5\n"
                         "      mm_image_weight: 0.1\n"
                         "      lambda_coeff: 0.9\n"
                         "      mode: local\n"
                         "      reg_weight: [ 0.05, 0.5 ]\n"
                         "      dropout: 0.2\n"
                         "      lr_sched: (0.96, 50)\n"
                         "      batch_size: 64\n"
                         "      seed: 999\n";
    snprintf(path, sizeof path, "%s/pgl.yml", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs(config, f), fclose(f);
    char cmd[9000], out[65536];
    snprintf(cmd, sizeof cmd, "cd %s && %s train pgl.yml --out res --threads 1 --cache cache 2>&1", dir, bin);
    int rc = t_run(cmd, out, sizeof out);
    int rows = 0;
    for (const char *s = out; (s = strstr(s, "PGL dim=16,layers=2,item_layers=1,knn_k=5")); s++) rows++;
    t_check(rc == 0 && rows >= 2 && strstr(out, "cl=0.5") && strstr(out, "dropout=0.2") && strstr(out, "features=visual:0.1+textual:0.9"),
            "mrec train on an Elliot config naming PGL with PGL.yaml's keys (a grid of 2): exit %d, %d rows%s%.900s", rc, rows,
            rc ? "\n" : "", rc ? out : "");
    /* the global variant is not mrec's */
    const char *at = strstr(config, "mode: local");
    char bad[2048];
    snprintf(bad, sizeof bad, "%.*smode: global%s", (int)(at - config), config, at + strlen("mode: local"));
    snprintf(path, sizeof path, "%s/pgl_global.yml", dir);
    if ((f = fopen(path, "w"))) fputs(bad, f), fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && %s train pgl_global.yml --out res2 --threads 1 2>&1", dir, bin);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc != 0 && strstr(out, "mode") && strstr(out, "local"), "mode: global refused, naming the key: exit %d %.300s", rc, out);
}

static void test_cli(void) {
    const char *bin = getenv("MREC_BIN");
    if (!bin) {
        t_skip("mrec train --model pgl: MREC_BIN is not set");
        return;
    }
    char dir[] = "/tmp/mrec-pgl-XXXXXX", cwd[2048], abs_bin[4200], cmd[4400], out[65536];
    if (!t_check(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL, "a scratch folder")) return;
    if (bin[0] != '/') snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin), bin = abs_bin;
    snprintf(cmd, sizeof cmd, "%s train --help 2>&1", bin);
    int rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "pgl") && strstr(out, "--edge-dropout"), "mrec train --help lists pgl and --edge-dropout");
    test_train_tiktok(bin, dir);
    test_config(bin, dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    t_suite("pgl");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_registry();
    fixture fx;
    if (fixture_open(&fx)) {
        test_item_graph(&fx, ctx);
        test_sampler(&fx, ctx);
        test_against_pytorch(&fx, ctx);
        test_refusals(&fx, ctx);
        fixture_close(&fx);
    }
    mrec_context_destroy(ctx);
    test_cli();
    return t_finish();
}
