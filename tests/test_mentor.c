/* test_mentor.c: MENTOR as its authors' code defines it (recsys/mentor.c).
 *
 * Training against tools/golden/mentor.py, a PyTorch restatement of the
 * authors' MENTOR given the same initial weights, graph, features, batches
 * and perturbation uniforms (mrec's hash stream, restated there): the first
 * batch's gradients, the loss at every Adam step and every weight after the
 * last to 1e-4, and the fused table the reference ranks with (the last
 * training forward's), for the reference's structure (one item-graph layer,
 * noise 0.1, temperature 0.2), another (two item-graph layers, no noise,
 * temperature 0.5, heavier alignment and contrast) and one with no item-graph
 * layer (the items' rows doubled), no contrast and no alignment. Both sides
 * are float32 summing in different orders (dense matrices there, sparse
 * products and blocked logits here); six Adam steps of lr 0.01 leave them
 * ~1e-6 apart (the contrast in one block of rows, and in blocks of 7 rows
 * with partial last blocks), while a wrong term (log2 for ln, the unbiased variance, a
 * missing item-graph doubling, the per-user weights' gradient) moves them by
 * 1e-3 or more. Gradients against central finite differences on a d = 4
 * model with the noise held. The registry's keys and defaults (MENTOR.yaml),
 * `mrec train --model mentor --save` on TikTok's real features (skipped
 * without ../shared/data) followed by `mrec recommend --all`, which must give
 * the run's recommendations.tsv, and an Elliot config with MENTOR.yaml's
 * keys, through the binary in $MREC_BIN.
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
    if (!(fx->ref = read_fixture_json("tests/fixtures/multimodal/mentor.json"))) {
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

/* A case of the fixture as mrec's model; adj and s are the caller's to free. */
static mrec_status create_case(mrec_model *m, mrec_graph *adj, mrec_graph *s, const fixture *fx, const cJSON *cs, int dim, mrec_rng *rng,
                               mrec_context *ctx) {
    const float *xs[2] = {fx->feat[0], fx->feat[1]};
    const float w[2] = {0.1f, 0.9f};
    memset(adj, 0, sizeof *adj), memset(s, 0, sizeof *s);
    mrec_status st = mrec_graph_normalized(adj, &fx->train);
    if (!st) st = mrec_graph_knn(s, xs, FEAT_DIM, w, 2, fx->I, num(cs, "knn_k"), ctx);
    if (st) return st;
    return mrec_mentor_create(m, adj, s, fx->U, fx->I, xs, FEAT_DIM, dim, num(cs, "item_layers"), real(cs, "reg"), real(cs, "align"),
                              real(cs, "mask_g"), real(cs, "temp"), real(cs, "eps"), rng, ctx);
}

static void free_graphs(mrec_graph *adj, mrec_graph *s) { mrec_graph_free(adj), mrec_graph_free(s); }

/* Central differences of the loss against loss_grad's gradients, entry by entry. The loss is not smooth everywhere:
 * LeakyReLU's kink (a hidden unit of a tiny model near 0 for some item), the alignment's absolute values and the
 * noise's signs; where the one-sided differences disagree the point sits on such a kink and is counted, not compared
 * (at most 2 % of the entries may be; a few dozen of ~2,200 are, each hidden unit sitting on one counting for its whole row). The loss (up to ~5 here) is float: its rounding, ~3e-7 an evaluation, over
 * 2h = 2e-3 gives the absolute tolerance 5e-4. */
static void check_gradients_kinked(mrec_model *m, const char *name) {
    static const int32_t u[6] = {0, 1, 2, 3, 4, 1}, pos[6] = {0, 2, 1, 5, 3, 4}, neg[6] = {3, 5, 4, 0, 1, 1};
    int64_t total = 0, kinks = 0;
    for (int p = 0; p < m->n_params; p++) total += m->size[p];
    float *grad = malloc((size_t)total * sizeof *grad);
    double f0 = m->loss_grad(m->self, u, pos, neg, 6);
    int64_t at = 0;
    for (int p = 0; p < m->n_params; p++) memcpy(grad + at, m->grad[p], (size_t)m->size[p] * 4), at += m->size[p];
    int bad = 0;
    at = 0;
    for (int p = 0; p < m->n_params; p++)
        for (int64_t e = 0; e < m->size[p]; e++, at++) {
            float keep = m->param[p][e], h = 1e-3f;
            m->param[p][e] = keep + h;
            double up = m->loss_grad(m->self, u, pos, neg, 6);
            m->param[p][e] = keep - h;
            double down = m->loss_grad(m->self, u, pos, neg, 6);
            m->param[p][e] = keep;
            double step = (double)(keep + h) - keep, num = (up - down) / (2.0 * step);
            double right = (up - f0) / step, left = (f0 - down) / step;
            if (fabs(right - left) > 1e-3 + 0.02 * fabs(num)) {
                kinks++;
                continue;
            }
            if (fabs(num - grad[at]) > 5e-4 + 1e-2 * fabs(num) && bad++ < 5)
                fprintf(stderr, "  %s param %d[%lld]: analytic %.6g, numeric %.6g\n", name, p, (long long)e, grad[at], num);
        }
    t_check(bad == 0 && total > 20 && kinks * 50 <= total, "%s: %d of %lld gradients differ from finite differences (%lld on kinks)", name,
            bad, (long long)total, (long long)kinks);
    printf("  %s: %lld gradient entries against finite differences, %lld on kinks\n", name, (long long)(total - kinks), (long long)kinks);
    free(grad);
}

static void test_against_pytorch(const fixture *fx, mrec_context *ctx) {
    /* each case in one block of the contrast's rows, then the first two in blocks of 7 (30 users, 25 items: partial last blocks) */
    for (int pass = 0; pass < 2; pass++)
    for (const cJSON *cs = cJSON_GetObjectItem(fx->ref, "cases")->child; cs; cs = cs->next) {
        if (pass && !strcmp(cs->string, "plain")) continue;
        mrec_graph adj, s;
        mrec_model m;
        mrec_rng rng = {1};
        if (!t_status(create_case(&m, &adj, &s, fx, cs, fx->d, &rng, ctx), MREC_OK, "create mentor %s", cs->string)) {
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
        t_status(mrec_mentor_set_noise_seed(&m, (uint64_t)cJSON_GetObjectItem(cs, "noise_seed")->valuedouble, 0), MREC_OK, "noise seed");
        t_status(mrec_mentor_set_block_rows(&m, pass ? 7 : 0), MREC_OK, "blocks");
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
        printf("  %s%s: losses over %d Adam steps at most %.2g from PyTorch's\n", cs->string, pass ? ", blocks of 7 rows" : "", step, worst);
        p = 0;
        for (const cJSON *w = cJSON_GetObjectItem(cs, "weights")->child; w; w = w->next, p++) {
            float *wv = malloc(sizeof(float) * (size_t)m.size[p]);
            fill_floats(wv, w);
            char what[96];
            snprintf(what, sizeof what, "%s parameter %d after 6 steps", cs->string, p);
            t_allclose(what, wv, m.param[p], m.size[p], 1e-4, 0);
            free(wv);
        }
        /* the table the reference ranks with: the last training forward's (before the last step), not recomputed */
        int U = fx->U, I = fx->I, W = m.embed_dim;
        float *users = malloc(sizeof(float) * (size_t)(U + I) * W), *items = users + (size_t)U * W;
        float *ref = malloc(sizeof(float) * (size_t)(U + I) * W), *scores = malloc(sizeof(float) * (size_t)I * 2);
        t_check(cJSON_GetArraySize(cJSON_GetObjectItem(cs, "final")) == (U + I) * W, "%s: embeddings %d wide", cs->string, W);
        fill_floats(ref, cJSON_GetObjectItem(cs, "final"));
        if (t_status(m.prepare(m.self), MREC_OK, "prepare") && t_status(m.embeddings(m.self, users, items), MREC_OK, "embeddings") &&
            t_status(m.score(m.self, 3, 2, scores), MREC_OK, "score")) {
            char what[96];
            snprintf(what, sizeof what, "%s: the last training forward's fused table, ranked with", cs->string);
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
    /* finite differences, d = 4, on every case's structure, the noise held (the loss is smooth away from sign changes) */
    for (const cJSON *cs = cJSON_GetObjectItem(fx->ref, "cases")->child; cs; cs = cs->next) {
        mrec_graph adj, s;
        mrec_model m;
        mrec_rng rng = {7};
        char what[64];
        snprintf(what, sizeof what, "mentor %s d=4", cs->string);
        if (t_status(create_case(&m, &adj, &s, fx, cs, 4, &rng, ctx), MREC_OK, "create %s", what)) {
            mrec_mentor_set_noise_seed(&m, 11, 1);
            check_gradients_kinked(&m, what);
            mrec_model_destroy(&m);
        }
        free_graphs(&adj, &s);
    }
}

/* Before any batch, prepare computes the table once; bad sizes and arguments are refused by name */
static void test_refusals(const fixture *fx, mrec_context *ctx) {
    mrec_graph adj, s;
    mrec_model m;
    mrec_rng rng = {1};
    const cJSON *cs = cJSON_GetObjectItem(cJSON_GetObjectItem(fx->ref, "cases"), "mentor");
    if (!t_status(create_case(&m, &adj, &s, fx, cs, 4, &rng, ctx), MREC_OK, "create")) {
        free_graphs(&adj, &s);
        return;
    }
    float *scores = malloc(sizeof(float) * (size_t)fx->I);
    int finite = t_status(m.prepare(m.self), MREC_OK, "prepare before training") && t_status(m.score(m.self, 0, 1, scores), MREC_OK, "score");
    for (int i = 0; i < fx->I && finite; i++) finite = isfinite(scores[i]) && scores[i] != 0;
    t_check(finite, "an untrained MENTOR ranks with a table computed by prepare");
    free(scores);
    mrec_model_destroy(&m);
    const float *xs[2] = {fx->feat[0], fx->feat[1]};
    mrec_status st = mrec_mentor_create(&m, &adj, &s, fx->U - 1, fx->I, xs, FEAT_DIM, 4, 1, 0.1f, 0.1f, 0.1f, 0.2f, 0.1f, &rng, ctx);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "mentor: graphs of"), "a graph of other nodes refused: %s", mrec_error_detail());
    st = mrec_mentor_create(&m, &adj, &s, fx->U, fx->I, xs, FEAT_DIM, 4, 1, 0.1f, 0.1f, 0.1f, 0.0f, 0.1f, &rng, ctx);
    t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "temperature 0"), "temperature 0 refused: %s", mrec_error_detail());
    mrec_model other;
    if (t_status(mrec_bprmf_create(&other, fx->U, fx->I, 4, 0, &rng, ctx), MREC_OK, "bprmf")) {
        st = mrec_mentor_set_noise_seed(&other, 1, 0);
        t_check(st == MREC_ERR_ARG && strstr(mrec_error_detail(), "not MENTOR"), "the hook given another model refuses it: %s", mrec_error_detail());
        mrec_model_destroy(&other);
    }
    free_graphs(&adj, &s);
}

/* The registry: MENTOR.yaml's keys and values */
static void test_registry(void) {
    const mrec_model_entry *e = mrec_model_find("MENTOR");
    if (!t_check(e != NULL && e == mrec_model_find("mentor"), "MENTOR is in the registry by both names")) return;
    static const char *const keys[] = {"embedding_size", "n_mm_layers", "knn_k", "reg_weight", "align_weight", "mask_weight_g", "temp",
                                       "learning_rate", "batch_size", "seed", "epochs", NULL};
    int all = 1;
    for (int k = 0; keys[k]; k++) all &= mrec_model_param_elliot(e, keys[k]) != NULL;
    t_check(all && mrec_model_fixed(e, "feat_embed_dim") && mrec_model_fixed(e, "n_layers") && mrec_model_fixed(e, "mm_image_weight") &&
                mrec_model_fixed(e, "dropout") && mrec_model_fixed(e, "mask_weight_f") && e->needs == MREC_NEEDS_VISUAL_TEXTUAL &&
                (e->flags & MREC_MODEL_TRAINS) && (e->flags & MREC_MODEL_GPU) && (e->flags & MREC_MODEL_GRAPH_CACHE),
            "MENTOR.yaml's keys are hyper-parameters or fixed; it needs visual and textual features, trains, on a GPU context too, its item graph cached");
    mrec_param_values p;
    if (t_status(mrec_params_resolve(&p, e, NULL), MREC_OK, "mentor defaults"))
        t_check(mrec_hp_int(&p, MREC_HP_DIM) == 64 && mrec_hp_int(&p, MREC_HP_ITEM_LAYERS) == 1 && mrec_hp_int(&p, MREC_HP_KNN_K) == 10 &&
                    mrec_hp_real(&p, MREC_HP_REG) == 1e-3f && mrec_hp_real(&p, MREC_HP_ALIGN_WEIGHT) == 0.1f &&
                    mrec_hp_real(&p, MREC_HP_CL_WEIGHT) == 1e-4f && mrec_hp_real(&p, MREC_HP_TEMP) == 0.2f &&
                    mrec_hp_real(&p, MREC_HP_EPS) == 0.1f && mrec_hp_real(&p, MREC_HP_LR) == 1e-4f &&
                    mrec_hp_item(&p, MREC_HP_LR_DECAY, 0) == 1.0f && mrec_hp_int(&p, MREC_HP_BATCH_SIZE) == 2048 &&
                    mrec_hp_u64(&p, MREC_HP_SEED) == 999,
                "MENTOR.yaml's embedding 64, n_mm_layers 1, knn_k 10, reg_weight 1e-3, align_weight 0.1, lr 1e-4 (no decay); the first "
                "points of its mask_weight_g and temp grids (1e-4, 0.2); the code's noise 0.1; batch 2048, seed 999");
}

/* mrec train --model mentor --save on TikTok (one epoch, small sizes; its acoustic features in the textual slot: the data
 * set ships no text), then mrec recommend --all from the saved model */
static void test_train_tiktok(const char *bin, const char *dir) {
    const char *tk = "../shared/data/tiktok-mmssl";
    char path[4400], cmd[9000], out[65536];
    snprintf(path, sizeof path, "%s/tiktok_split.tsv", tk);
    if (access(path, R_OK) != 0) {
        t_skip("mrec train --model mentor on TikTok: %s not found", path);
        return;
    }
    snprintf(cmd, sizeof cmd,
             "%s train --data %s --model mentor --epochs 1 --dim 8 --batch-size 8192 --lr 0.001 --k 20 --metrics recall --threads 2 "
             "--save-topk 20 --cache %s/cache --features visual=%s/original_diffmm/image_feat.npy,textual=%s/original_diffmm/audio_feat.npy "
             "--out %s/run --save %s/model 2>&1",
             bin, path, dir, tk, tk, dir, dir);
    int rc = t_run(cmd, out, sizeof out);
    const char *r = strstr(out, "recall@20=");
    double recall = r ? atof(r + 10) : -1;
    /* 6710 items: chance is 20 / 6710 of the test items, 0.003 */
    t_check(rc == 0 && strstr(out, "MENTOR") && strstr(out, "align=0.1") && strstr(out, "eps=0.1") && isfinite(recall) && recall > 0.003,
            "mrec train --model mentor on TikTok, one epoch: exit %d, recall@20 %.4f%s%.900s", rc, recall, rc ? "\n" : "", rc ? out : "");
    printf("  TikTok, MENTOR one epoch (d 8): recall@20 %.4f\n", recall);
    if (rc) return;
    snprintf(cmd, sizeof cmd, "%s recommend %s/model --all --out %s/recs.tsv 2>&1", bin, dir, dir);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0, "mrec recommend --all from the saved MENTOR: exit %d %.600s", rc, out);
    snprintf(path, sizeof path, "%s/recs.tsv", dir);
    char *got = t_slurp(path), *folded = got ? t_recs_rows(got) : NULL;
    snprintf(path, sizeof path, "%s/run/recommendations.tsv", dir);
    char *want = t_slurp(path);
    t_check(folded && want && strlen(want) > 1000 && !strcmp(folded, want),
            "mrec recommend --all from the saved MENTOR equals the run's recommendations.tsv (%zu bytes)", want ? strlen(want) : 0);
    free(got), free(folded), free(want);
}

/* An Elliot config naming MENTOR with MENTOR.yaml's keys, a grid over mask_weight_g (epochs cut to 2) */
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
                         "    MENTOR:\n"
                         "      meta:\n"
                         "        verbose: True\n"
                         "        validation_rate: 1\n"
                         "        validation_metric: Recall@20\n"
                         "      embedding_size: 16\n"
                         "      feat_embed_dim: 16\n"
                         "      n_mm_layers: 1\n"
                         "      n_layers: 2\n"
                         "      knn_k: 5\n"
                         "      mm_image_weight: 0.1\n"
                         "      learning_rate: 0.001\n"
                         "      reg_weight: 0.001\n"
                         "      dropout: 0.5\n"
                         "      mask_weight_f: 1.5\n"
                         "      mask_weight_g: [ 0.0001, 0.001 ]\n"
                         "      align_weight: 0.1\n"
                         "      temp: 0.2\n"
                         "      epochs: 2\n"
                         "      batch_size: 64\n"
                         "      seed: 999\n";
    snprintf(path, sizeof path, "%s/mentor.yml", dir);
    FILE *f = fopen(path, "w");
    if (f) fputs(config, f), fclose(f);
    char cmd[9000], out[65536];
    snprintf(cmd, sizeof cmd, "cd %s && %s train mentor.yml --out res --threads 1 --cache cache 2>&1", dir, bin);
    int rc = t_run(cmd, out, sizeof out);
    int rows = 0;
    for (const char *s = out; (s = strstr(s, "MENTOR dim=16,item_layers=1,knn_k=5")); s++) rows++;
    t_check(rc == 0 && rows >= 2 && strstr(out, "cl=0.001") && strstr(out, "cl=0.0001") && strstr(out, "lr=0.001"),
            "mrec train on an Elliot config naming MENTOR with MENTOR.yaml's keys (a grid of 2): exit %d, %d rows%s%.900s", rc, rows,
            rc ? "\n" : "", rc ? out : "");
    /* a dropout other than the yaml's would change the reference's gradient-free term only: refused, naming the key */
    const char *at = strstr(config, "dropout: 0.5");
    char bad[2048];
    snprintf(bad, sizeof bad, "%.*sdropout: 0.3%s", (int)(at - config), config, at + strlen("dropout: 0.5"));
    snprintf(path, sizeof path, "%s/mentor_dropout.yml", dir);
    if ((f = fopen(path, "w"))) fputs(bad, f), fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && %s train mentor_dropout.yml --out res2 --threads 1 2>&1", dir, bin);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc != 0 && strstr(out, "dropout"), "dropout 0.3 refused, naming the key: exit %d %.300s", rc, out);
}

static void test_cli(void) {
    const char *bin = getenv("MREC_BIN");
    if (!bin) {
        t_skip("mrec train --model mentor: MREC_BIN is not set");
        return;
    }
    char dir[] = "/tmp/mrec-mentor-XXXXXX", cwd[2048], abs_bin[4200], cmd[4400], out[65536];
    if (!t_check(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL, "a scratch folder")) return;
    if (bin[0] != '/') snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin), bin = abs_bin;
    snprintf(cmd, sizeof cmd, "%s train --help 2>&1", bin);
    int rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "mentor") && strstr(out, "--align-weight"), "mrec train --help lists mentor and --align-weight");
    test_train_tiktok(bin, dir);
    test_config(bin, dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    t_suite("mentor");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_registry();
    fixture fx;
    if (fixture_open(&fx)) {
        test_against_pytorch(&fx, ctx);
        test_refusals(&fx, ctx);
        fixture_close(&fx);
    }
    mrec_context_destroy(ctx);
    test_cli();
    return t_finish();
}
