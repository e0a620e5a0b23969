/* test_smore.c: SMORE as its authors' code defines it (recsys/smore.c).
 *
 * Training against tools/golden/smore.py, a PyTorch restatement of the
 * authors' SMORE (torch.fft's rfft / irfft with norm="ortho", the reference's
 * max_pool_fusion) given the same initial weights, graph, features, batches
 * (those of tools/golden/multimodal.py) and dropout masks (mrec's hash
 * stream, restated there): the three item graphs entry by entry (1e-6), the
 * first batch's gradients, the loss at every Adam step and every weight after
 * the last to 1e-4, and the final embeddings, for the authors' Baby structure
 * (4 user-item layers, 1 item layer, dropout 0.1, the regularizer over a
 * configured batch size other than the batch's, d = 8: a d / 2 bin) and
 * another (d = 7: none; 2 item layers, another temperature, no dropout). Both
 * sides are float32 summing in other orders (an FFT and dense matrices there,
 * DFT matrices and sparse products here); six Adam steps of lr 0.01 leave them
 * ~1e-6 apart, while a wrong term (a doubled bin, the imaginary part of the
 * zero bin, a gate's derivative, the column softmax, the mask) moves them by
 * 1e-3 or more. Gradients against central finite differences on d = 4 and
 * d = 5 models (without dropout: each call draws new masks). The fusion
 * graph's max-pool where one graph lacks an entry; the registry's keys and
 * defaults; `mrec train --model smore --save` on TikTok's real features
 * (skipped without ../shared/data) followed by `mrec recommend --all`, which
 * must give the run's recommendations.tsv, and an Elliot config with the
 * authors' keys, through the binary in $MREC_BIN.
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
#include <unistd.h>

typedef struct {
    cJSON *c, *ref;
    int U, I;
    float *feat[2];
    mrec_user_items train;
} fixture;

static const int FEAT_DIM[2] = {6, 5};

static int fixture_open(fixture *fx) {
    memset(fx, 0, sizeof *fx);
    if (!(fx->c = read_fixture_json("tests/fixtures/multimodal/trajectory.json"))) return 0;
    if (!(fx->ref = read_fixture_json("tests/fixtures/multimodal/smore.json"))) {
        cJSON_Delete(fx->c);
        return 0;
    }
    fx->U = cJSON_GetObjectItem(fx->c, "n_users")->valueint, fx->I = cJSON_GetObjectItem(fx->c, "n_items")->valueint;
    static const char *const names[2] = {"visual", "textual"};
    for (int m = 0; m < 2; m++) {
        fx->feat[m] = malloc(sizeof(float) * (size_t)fx->I * FEAT_DIM[m]);
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

static int num(const cJSON *c, const char *key) { return cJSON_GetObjectItem(c, key)->valueint; }
static float real(const cJSON *c, const char *key) { return (float)cJSON_GetObjectItem(c, key)->valuedouble; }

/* The image, text and fusion graphs of a case; the caller frees knn[3]. */
static mrec_status item_graphs(mrec_graph *knn, const fixture *fx, const cJSON *cs, mrec_context *ctx) {
    memset(knn, 0, 3 * sizeof *knn);
    mrec_status st = mrec_mgcn_item_graph(&knn[0], fx->feat[0], fx->I, FEAT_DIM[0], num(cs, "image_knn_k"), ctx);
    if (!st) st = mrec_mgcn_item_graph(&knn[1], fx->feat[1], fx->I, FEAT_DIM[1], num(cs, "text_knn_k"), ctx);
    return st ? st : mrec_smore_fusion_graph(&knn[2], &knn[0], &knn[1]);
}

static void free_graphs(mrec_graph *adj, mrec_graph *knn) {
    mrec_graph_free(adj);
    for (int g = 0; g < 3; g++) mrec_graph_free(&knn[g]);
}

/* A case of the fixture as mrec's model at dim and dropout; adj and knn[3] are the caller's to free. */
static mrec_status create_case(mrec_model *m, mrec_graph *adj, mrec_graph *knn, const fixture *fx, const cJSON *cs, int dim, float dropout,
                               mrec_rng *rng, mrec_context *ctx) {
    const float *xs[2] = {fx->feat[0], fx->feat[1]};
    memset(adj, 0, sizeof *adj);
    mrec_status st = item_graphs(knn, fx, cs, ctx);
    if (!st) st = mrec_mgcn_graph(adj, &fx->train);
    if (st) return st;
    return mrec_smore_create(m, adj, knn, fx->U, fx->I, xs, FEAT_DIM, dim, num(cs, "ui_layers"), num(cs, "item_layers"), real(cs, "reg"),
                             real(cs, "cl"), real(cs, "temp"), dropout, num(cs, "batch_size"), rng, ctx);
}

/* The three item graphs against the reference's dense ones; the max-pool where entries differ in sign or are missing */
static void test_graphs(const fixture *fx, mrec_context *ctx) {
    static const char *const what_graph[3] = {"image", "text", "fusion (max-pool)"};
    for (const cJSON *cs = fx->ref->child; cs; cs = cs->next) {
        mrec_graph knn[3];
        if (!t_status(item_graphs(knn, fx, cs, ctx), MREC_OK, "%s: item graphs", cs->string)) continue;
        const cJSON *want = cJSON_GetObjectItem(cs, "item_graphs")->child;
        for (int g = 0; g < 3 && want; g++, want = want->next) {
            size_t n = (size_t)fx->I * fx->I;
            float *dense = calloc(n, sizeof *dense), *ref = malloc(n * sizeof *ref);
            fill_floats(ref, want);
            int sorted = 1;
            for (int r = 0; r < fx->I; r++)
                for (int64_t e = knn[g].row_ptr[r]; e < knn[g].row_ptr[r + 1]; e++) {
                    dense[(size_t)r * fx->I + knn[g].col[e]] += knn[g].val[e];
                    sorted &= g < 2 || e == knn[g].row_ptr[r] || knn[g].col[e - 1] < knn[g].col[e];
                }
            char what[128];
            snprintf(what, sizeof what, "%s: the %s graph (%lld entries) against the reference's", cs->string, what_graph[g],
                     (long long)knn[g].row_ptr[fx->I]);
            t_allclose(what, ref, dense, (int64_t)n, 1e-6, 1e-5);
            if (g == 2) t_check(sorted, "%s: the fusion graph's rows in increasing column order, each column once", cs->string);
            free(dense), free(ref);
        }
        free_graphs(&(mrec_graph){0}, knn);
    }
    /* by hand: row 0 has (0, 1) only in the image graph with a negative value (kept, not max'ed with an absent 0), (0, 2) in
     * both (the larger), (0, 0) only in the text graph; row 1 empty in one */
    int64_t ip[4] = {0, 2, 3, 3}, tp[4] = {0, 2, 2, 2};
    int32_t ic[3] = {2, 1, 1}, tc[2] = {0, 2};
    float iv[3] = {0.25f, -0.5f, 0.75f}, tv[2] = {0.125f, 0.5f};
    mrec_graph a = {.n_nodes = 3, .row_ptr = ip, .col = ic, .val = iv}, b = {.n_nodes = 3, .row_ptr = tp, .col = tc, .val = tv}, f;
    if (t_status(mrec_smore_fusion_graph(&f, &a, &b), MREC_OK, "fusion of two hand-made graphs")) {
        int ok = f.row_ptr[1] == 3 && f.row_ptr[2] == 4 && f.row_ptr[3] == 4 && f.col[0] == 0 && f.val[0] == 0.125f && f.col[1] == 1 &&
                 f.val[1] == -0.5f && f.col[2] == 2 && f.val[2] == 0.5f && f.col[3] == 1 && f.val[3] == 0.75f;
        t_check(ok, "max-pool: the union, the larger value where both have an entry, a negative one-sided entry kept");
        mrec_graph_free(&f);
    }
    mrec_graph c = {.n_nodes = 1, .row_ptr = tp, .col = tc, .val = tv};
    mrec_status st = mrec_smore_fusion_graph(&f, &a, &c);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "3 and 1 items"), "graphs of other sizes refused: %s", mrec_error_detail());
    ic[1] = 3; /* a column past the items */
    st = mrec_smore_fusion_graph(&f, &a, &b);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "row 0"), "a column past the items refused by row: %s", mrec_error_detail());
}

static void test_against_pytorch(const fixture *fx, mrec_context *ctx) {
    for (const cJSON *cs = fx->ref->child; cs; cs = cs->next) {
        mrec_graph adj, knn[3];
        mrec_model m;
        mrec_rng rng = {1}; /* its first draw keys the dropout, as smore.py assumes */
        int d = num(cs, "dim");
        if (!t_status(create_case(&m, &adj, knn, fx, cs, d, real(cs, "dropout"), &rng, ctx), MREC_OK, "create smore %s", cs->string)) {
            free_graphs(&adj, knn);
            continue;
        }
        /* the same tensors in the same order, with PyTorch's initial values */
        int p = 0, sizes_ok = 1;
        for (const cJSON *w = cJSON_GetObjectItem(cs, "init")->child; w; w = w->next, p++) {
            sizes_ok &= p < m.n_params && cJSON_GetArraySize(w) == m.size[p];
            if (sizes_ok) fill_floats(m.param[p], w);
        }
        if (!t_check(sizes_ok && p == m.n_params, "%s: %d parameter tensors of PyTorch's sizes (mrec has %d)", cs->string, p, m.n_params)) {
            mrec_model_destroy(&m), free_graphs(&adj, knn);
            continue;
        }
        mrec_optimizer adam;
        mrec_adam_init(&adam, real(cs, "lr"), 0);
        for (int k = 0; k < m.n_params; k++) mrec_adam_add(&adam, m.param[k], m.grad[k], m.size[k]);
        const cJSON *want = cJSON_GetObjectItem(cs, "losses")->child;
        int step = 0, bad = 0;
        double worst = 0;
        for (const cJSON *b = cJSON_GetObjectItem(fx->c, "batches")->child; b && want; b = b->next, want = want->next, step++) {
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
        /* the final embeddings after the steps (no dropout: ranking), and scores as their dot products */
        int U = fx->U, I = fx->I;
        float *users = malloc(sizeof(float) * (size_t)(U + I) * d), *items = users + (size_t)U * d;
        float *ref = malloc(sizeof(float) * (size_t)(U + I) * d), *scores = malloc(sizeof(float) * (size_t)I * 2);
        fill_floats(ref, cJSON_GetObjectItem(cs, "final"));
        if (t_status(m.prepare(m.self), MREC_OK, "prepare") && t_status(m.embeddings(m.self, users, items), MREC_OK, "embeddings") &&
            t_status(m.score(m.self, 3, 2, scores), MREC_OK, "score")) {
            char what[96];
            snprintf(what, sizeof what, "%s: final embeddings after 6 steps", cs->string);
            t_allclose(what, ref, users, (int64_t)(U + I) * d, 1e-4, 0);
            double err = 0;
            for (int u = 0; u < 2; u++)
                for (int i = 0; i < I; i++) {
                    double s = 0;
                    for (int e = 0; e < d; e++) s += (double)users[(size_t)(3 + u) * d + e] * items[(size_t)i * d + e];
                    err = fmax(err, fabs(s - scores[(size_t)u * I + i]));
                }
            t_check(err < 1e-5, "%s: scores are the embeddings' dot products (max error %.2g)", cs->string, err);
        }
        free(users), free(ref), free(scores);
        mrec_adam_free(&adam);
        mrec_model_destroy(&m);
        free_graphs(&adj, knn);
    }
    /* finite differences on both cases' structure, d = 4 (a d / 2 bin) and 5 (none); the model is smooth: tanh, sigmoid,
     * softmax, the DFT is linear */
    int dims[2] = {4, 5}, c = 0;
    for (const cJSON *cs = fx->ref->child; cs; cs = cs->next, c++) {
        mrec_graph adj, knn[3];
        mrec_model m;
        mrec_rng rng = {7};
        char what[64];
        snprintf(what, sizeof what, "smore %s d=%d", cs->string, dims[c & 1]);
        if (t_status(create_case(&m, &adj, knn, fx, cs, dims[c & 1], 0.0f, &rng, ctx), MREC_OK, "create %s", what)) {
            check_gradients(&m, what);
            mrec_model_destroy(&m);
        }
        free_graphs(&adj, knn);
    }
    /* dropout draws new masks each batch and none when ranking: two batches' losses differ at the same weights, and
     * prepare's embeddings do not depend on how many batches ran */
    const cJSON *cs = fx->ref->child;
    mrec_graph adj, knn[3];
    mrec_model m;
    mrec_rng rng = {1};
    if (t_status(create_case(&m, &adj, knn, fx, cs, 8, 0.5f, &rng, ctx), MREC_OK, "create with dropout 0.5")) {
        static const int32_t u[4] = {0, 1, 2, 3}, pos[4] = {0, 2, 1, 5}, neg[4] = {3, 5, 4, 0};
        float *e0 = malloc(sizeof(float) * (size_t)(fx->U + fx->I) * 8), *e1 = malloc(sizeof(float) * (size_t)(fx->U + fx->I) * 8);
        double l0 = m.loss_grad(m.self, u, pos, neg, 4), l1 = m.loss_grad(m.self, u, pos, neg, 4);
        m.prepare(m.self), m.embeddings(m.self, e0, e0 + (size_t)fx->U * 8);
        m.loss_grad(m.self, u, pos, neg, 4);
        m.prepare(m.self), m.embeddings(m.self, e1, e1 + (size_t)fx->U * 8);
        t_check(isfinite(l0) && isfinite(l1) && l0 != l1 && !memcmp(e0, e1, sizeof(float) * (size_t)(fx->U + fx->I) * 8),
                "dropout 0.5: batches draw their own masks (losses %.6f, %.6f), ranking none", l0, l1);
        free(e0), free(e1);
        /* bad sizes are refused by name */
        mrec_model_destroy(&m);
        const float *xs[2] = {fx->feat[0], fx->feat[1]};
        mrec_status st = mrec_smore_create(&m, &adj, knn, fx->U + 1, fx->I, xs, FEAT_DIM, 4, 2, 1, 0.1f, 0.1f, 0.2f, 0.1f, 32, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "smore: graph of"), "a graph of other nodes refused: %s", mrec_error_detail());
        st = mrec_smore_create(&m, &adj, knn, fx->U, fx->I, xs, FEAT_DIM, 4, 2, 1, 0.1f, 0.1f, 0.2f, 1.0f, 32, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "dropout 1"), "dropout 1 refused: %s", mrec_error_detail());
        mrec_graph short_graph = knn[2];
        short_graph.n_nodes = fx->I - 1;
        mrec_graph three[3] = {knn[0], knn[1], short_graph};
        st = mrec_smore_create(&m, &adj, three, fx->U, fx->I, xs, FEAT_DIM, 4, 2, 1, 0.1f, 0.1f, 0.2f, 0.1f, 32, &rng, ctx);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "the fusion view"), "a fusion graph of other items refused: %s",
                mrec_error_detail());
    }
    free_graphs(&adj, knn);
}

/* The registry: the authors' keys and their best Baby settings */
static void test_registry(void) {
    const mrec_model_entry *e = mrec_model_find("SMORE");
    if (!t_check(e != NULL && e == mrec_model_find("smore"), "SMORE is in the registry by both names")) return;
    static const char *const keys[] = {"embedding_size", "n_ui_layers", "n_layers", "lr", "lr_sched", "reg_weight", "image_knn_k",
                                       "text_knn_k", "cl_loss", "temperature", "dropout_rate", "batch_size", "seed", "epochs", NULL};
    int all = 1;
    for (int k = 0; keys[k]; k++) all &= mrec_model_param_elliot(e, keys[k]) != NULL;
    t_check(all && (e->flags & MREC_MODEL_TRAINS) && (e->flags & MREC_MODEL_GPU),
            "the authors' keys are hyper-parameters; it trains, on a GPU context too");
    mrec_param_values p;
    if (t_status(mrec_params_resolve(&p, e, NULL), MREC_OK, "smore defaults"))
        t_check(mrec_hp_int(&p, MREC_HP_DIM) == 64 && mrec_hp_int(&p, MREC_HP_LAYERS) == 4 && mrec_hp_int(&p, MREC_HP_ITEM_LAYERS) == 1 &&
                    mrec_hp_real(&p, MREC_HP_LR) == 0.001f && mrec_hp_item(&p, MREC_HP_LR_DECAY, 0) == 0.96f &&
                    mrec_hp_item(&p, MREC_HP_LR_DECAY, 1) == 50 && mrec_hp_real(&p, MREC_HP_REG) == 1e-4f &&
                    mrec_hp_int(&p, MREC_HP_IMAGE_KNN_K) == 40 && mrec_hp_int(&p, MREC_HP_TEXT_KNN_K) == 15 &&
                    mrec_hp_real(&p, MREC_HP_CL_WEIGHT) == 0.01f && mrec_hp_real(&p, MREC_HP_TEMP) == 0.2f &&
                    mrec_hp_real(&p, MREC_HP_PREF_DROPOUT) == 0.1f && mrec_hp_int(&p, MREC_HP_BATCH_SIZE) == 2048 &&
                    mrec_hp_u64(&p, MREC_HP_SEED) == 999,
                "the authors' Baby settings: embedding 64, n_ui_layers 4, n_layers 1, lr 0.001 decayed 0.96 every 50, reg 1e-4, "
                "image_knn_k 40, text_knn_k 15, cl 0.01, temperature 0.2, dropout 0.1; batch 2048, seed 999");
    mrec_param_values given;
    memset(&given, 0, sizeof given);
    given.v[MREC_HP_PREF_DROPOUT] = (mrec_param_value){.x = {1}, .given = 1};
    mrec_status st = mrec_params_resolve(&p, e, &given);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "pref_dropout"), "dropout 1 refused by name: %s", mrec_error_detail());
}

/* mrec train --model smore --save on TikTok (one epoch, small sizes), then mrec recommend --all from the saved model */
static void test_train_tiktok(const char *bin, const char *dir) {
    const char *tk = "../shared/data/tiktok-mmssl";
    char path[4400], cmd[9000], out[65536];
    snprintf(path, sizeof path, "%s/tiktok_split.tsv", tk);
    if (access(path, R_OK) != 0) {
        t_skip("mrec train --model smore on TikTok: %s not found", path);
        return;
    }
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --model smore --epochs 1 --dim 16 --batch-size 4096 --k 20 --metrics recall --threads 2 --save-topk 20 "
             "--features visual=%s/original_diffmm/image_feat.npy,acoustic=%s/original_diffmm/audio_feat.npy --out %s/run --save %s/model 2>&1",
             bin, path, tk, tk, dir, dir);
    int rc = t_run(cmd, out, sizeof out);
    const char *r = strstr(out, "recall@20=");
    double recall = r ? atof(r + 10) : -1;
    /* 6710 items: chance is 20 / 6710 of the test items, 0.003 */
    t_check(rc == 0 && strstr(out, "SMORE") && strstr(out, "visual k=40, acoustic k=15") && strstr(out, "dropout=0.1") && isfinite(recall) &&
                recall > 0.01,
            "mrec train --model smore on TikTok (visual, acoustic), one epoch: exit %d, recall@20 %.4f%s%.900s", rc, recall, rc ? "\n" : "",
            rc ? out : "");
    printf("  TikTok, SMORE one epoch (d 16): recall@20 %.4f\n", recall);
    if (rc) return;
    snprintf(cmd, sizeof cmd, "%s recommend %s/model --all --out %s/recs.tsv 2>&1", bin, dir, dir);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0, "mrec recommend --all from the saved SMORE: exit %d %.600s", rc, out);
    snprintf(path, sizeof path, "%s/recs.tsv", dir);
    char *got = t_slurp(path), *folded = got ? t_recs_rows(got) : NULL;
    snprintf(path, sizeof path, "%s/run/recommendations.tsv", dir);
    char *want = t_slurp(path);
    t_check(folded && want && strlen(want) > 1000 && !strcmp(folded, want),
            "mrec recommend --all from the saved SMORE equals the run's recommendations.tsv (%zu bytes)", want ? strlen(want) : 0);
    free(got), free(folded), free(want);
}

/* An Elliot config naming SMORE with the authors' keys, a grid over dropout_rate (epochs cut to 2); one modality refused */
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
            t_fill_uniform(x, 12, &seed, 0, 1); /* nonnegative: every similarity sum is too */
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
                         "      - dataloader: TextualAttribute\n"
                         "        textual_features: text\n"
                         "      - dataloader: VisualAttribute\n"
                         "        visual_features: img\n"
                         "  top_k: 20\n"
                         "  evaluation:\n"
                         "    cutoffs: [10, 20]\n"
                         "    simple_metrics: [Recall, nDCG]\n"
                         "  models:\n"
                         "    SMORE:\n"
                         "      meta:\n"
                         "        verbose: True\n"
                         "        validation_rate: 1\n"
                         "        validation_metric: Recall@20\n"
                         "      lr: 0.001\n"
                         "      epochs: 2\n"
                         "      embedding_size: 16\n"
                         "      n_ui_layers: 3\n"
                         "      n_layers: 1\n"
                         "      image_knn_k: 10\n"
                         "      text_knn_k: 5\n"
                         "      reg_weight: 1e-4\n"
                         "      cl_loss: 0.01\n"
                         "      temperature: 0.2\n"
                         "      dropout_rate: [ 0, 0.1 ]\n"
                         "      lr_sched: (0.96, 50)\n"
                         "      batch_size: 64\n"
                         "      seed: 999\n";
    snprintf(path, sizeof path, "%s/smore.yml", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs(config, f), fclose(f);
    char cmd[9000], out[65536];
    snprintf(cmd, sizeof cmd, "cd %s && %s train smore.yml --out res --threads 1 2>&1", dir, bin);
    int rc = t_run(cmd, out, sizeof out);
    int rows = 0;
    for (const char *s = out; (s = strstr(s, "SMORE dim=16,layers=3,item_layers=1")); s++) rows++;
    /* the textual modality listed first: the visual one still takes the image role */
    t_check(rc == 0 && rows >= 2 && strstr(out, "image_knn_k=10,text_knn_k=5") && strstr(out, "dropout=0.1") &&
                strstr(out, "visual k=10, textual k=5"),
            "mrec train on an Elliot config naming SMORE with the authors' keys (a grid of 2): exit %d, %d rows%s%.900s", rc, rows, rc ? "\n" : "",
            rc ? out : "");
    snprintf(cmd, sizeof cmd,
             "cd %s && %s train --data train.tsv,val.tsv,test.tsv --format tsv --model smore --features visual=img --epochs 1 --out one 2>&1", dir,
             bin);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc != 0 && strstr(out, "smore needs two modalities"), "SMORE with one modality refused by name: exit %d, %.300s", rc, out);
}

static void test_cli(void) {
    const char *bin = getenv("MREC_BIN");
    if (!bin) {
        t_skip("mrec train --model smore: MREC_BIN is not set");
        return;
    }
    char dir[] = "/tmp/mrec-smore-XXXXXX", cwd[2048], abs_bin[4200], cmd[4400], out[65536];
    if (!t_check(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL, "a scratch folder")) return;
    if (bin[0] != '/') snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin), bin = abs_bin;
    snprintf(cmd, sizeof cmd, "%s train --help 2>&1", bin);
    int rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "smore") && strstr(out, "--image-knn-k") && strstr(out, "--text-knn-k") && strstr(out, "--pref-dropout"),
            "mrec train --help lists smore, --image-knn-k, --text-knn-k and --pref-dropout");
    test_train_tiktok(bin, dir);
    test_config(bin, dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    t_suite("smore");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_registry();
    fixture fx;
    if (fixture_open(&fx)) {
        test_graphs(&fx, ctx);
        test_against_pytorch(&fx, ctx);
        fixture_close(&fx);
    }
    mrec_context_destroy(ctx);
    test_cli();
    return t_finish();
}
