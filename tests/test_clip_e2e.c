/* test_clip_e2e.c: CLIP-E2E (recsys/clip_e2e.c) against PyTorch's autograd
 * and optimizers (tests/fixtures/clip_e2e: the inputs, and one safetensors
 * per case with its loss, gradients and trained weights, made by
 * tools/golden/clip_e2e.py from the tiny random CLIP of tests/fixtures/clip):
 * for 0, 1 and 2 trainable blocks per tower, the first batch's loss and the gradients of
 * the users, the fusion and every trainable tower tensor, then every
 * trained weight after three steps (Adam on the users and the fusion,
 * AdamW on the towers). Then: the frozen blocks and embeddings are never
 * written; with 0 blocks nothing of CLIP moves and the item vectors are the
 * fusion of extract-clip's embeddings; bad options are refused; a short
 * training run on a tiny table through mrec_fit.
 *
 * Tolerances. Gradients: within 1e-4 of the tensor's largest magnitude, with
 * a floor of 1e-3 of the largest gradient of its group (the key biases'
 * gradients are 0 in exact arithmetic, rounding noise here); the C side is
 * float32 ~30 ops deep, the fixture float64. Weights after three steps:
 * within 1e-5 (absolute, the weights are O(0.1-1)) plus 1e-5 relative,
 * except where Adam divides rounding noise by its own size: a gradient that
 * is 0 in exact arithmetic (the key biases) takes a step of up to lr there;
 * those tensors are held to 3 lr instead, and say so.
 */
#include "harness.h"

#include "../nn/mrec_safetensors.h"
#include "../recsys/mrec_clip_e2e.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR "tests/fixtures/clip_e2e/"
/* T_REQUIRE for functions that return nothing */
#define NEED(cond)                                              \
    do {                                                        \
        if (!t_check((cond), "%s:%d: %s", __FILE__, __LINE__, #cond)) return; \
    } while (0)
enum { N_ITEMS = 5, T = 7, N_USERS = 4, DIM = 6, N = 4 };

/* A fixture tensor as floats, `want` of them: "n<N>_<key>" is <key> in n<N>.safetensors (the run with N
 * blocks), any other name a tensor of inputs.safetensors; the int32 ones (ids, masks, triples) converted. */
static float *fx(const char *name, int64_t want) {
    char path[512];
    const char *key = name;
    if (name[0] == 'n' && name[1] >= '0' && name[1] <= '9' && name[2] == '_') snprintf(path, sizeof path, DIR "n%c.safetensors", name[1]), key = name + 3;
    else snprintf(path, sizeof path, DIR "inputs.safetensors");
    mrec_safetensors sf;
    if (mrec_safetensors_open(&sf, path) != MREC_OK) {
        t_check(0, "open %s: %s", path, mrec_error_detail());
        return NULL;
    }
    const mrec_st_entry *e = mrec_safetensors_find(&sf, key);
    int64_t n = e ? mrec_st_entry_numel(e) : 0;
    float *data = e && n == want ? malloc(sizeof(float) * (size_t)(n ? n : 1)) : NULL;
    int ok = data != NULL;
    if (!e) t_check(0, "%s: no tensor %s", path, key);
    else if (n != want) t_check(0, "%s: %s has %lld values, expected %lld", path, key, (long long)n, (long long)want);
    else if (ok && e->dtype == MREC_I32)
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, (const char *)e->data + 4 * i, 4);
            data[i] = (float)v;
        }
    else if (ok && mrec_safetensors_read_f32(&sf, key, e->ndim, e->shape, data) != MREC_OK)
        ok = t_check(0, "%s: %s: %s", path, key, mrec_error_detail());
    mrec_safetensors_close(&sf);
    if (!ok) free(data), data = NULL;
    return data;
}

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

typedef struct {
    char name[128];
    float *w;
    int64_t n;
    int key_bias; /* 0 gradient in exact arithmetic */
} named;

/* The trainable tensors of one tower for `blocks` (checkpoint names). */
static int trainable(named *out, const mrec_clip_tower *t, int vision, int D, int blocks) {
    int64_t H = t->cfg.hidden, I = t->cfg.intermediate;
    int n = 0;
    const char *tw = vision ? "vision_model" : "text_model";
    for (int l = t->cfg.layers - blocks; l < t->cfg.layers; l++) {
        const mrec_vit_layer *L = &t->layer[l];
        struct { float *w; int64_t n; const char *what; } part[] = {
            {L->ln1_w, H, "layer_norm1.weight"}, {L->ln1_b, H, "layer_norm1.bias"}, {L->q_w, H * H, "self_attn.q_proj.weight"},
            {L->q_b, H, "self_attn.q_proj.bias"}, {L->k_w, H * H, "self_attn.k_proj.weight"}, {L->k_b, H, "self_attn.k_proj.bias"},
            {L->v_w, H * H, "self_attn.v_proj.weight"}, {L->v_b, H, "self_attn.v_proj.bias"}, {L->o_w, H * H, "self_attn.out_proj.weight"},
            {L->o_b, H, "self_attn.out_proj.bias"}, {L->ln2_w, H, "layer_norm2.weight"}, {L->ln2_b, H, "layer_norm2.bias"},
            {L->inter_w, I * H, "mlp.fc1.weight"}, {L->inter_b, I, "mlp.fc1.bias"}, {L->out_w, H * I, "mlp.fc2.weight"},
            {L->out_b, H, "mlp.fc2.bias"},
        };
        for (size_t k = 0; k < sizeof part / sizeof part[0]; k++, n++) {
            snprintf(out[n].name, sizeof out[n].name, "%s.encoder.layers.%d.%s", tw, l, part[k].what);
            out[n].w = part[k].w, out[n].n = part[k].n, out[n].key_bias = !strcmp(part[k].what, "self_attn.k_proj.bias");
        }
    }
    if (blocks > 0) {
        const char *post = vision ? "post_layernorm" : "final_layer_norm";
        snprintf(out[n].name, 128, "%s.%s.weight", tw, post), out[n].w = t->post_w, out[n].n = H, out[n].key_bias = 0, n++;
        snprintf(out[n].name, 128, "%s.%s.bias", tw, post), out[n].w = t->post_b, out[n].n = H, out[n].key_bias = 0, n++;
        snprintf(out[n].name, 128, "%s", vision ? "visual_projection.weight" : "text_projection.weight");
        out[n].w = t->proj, out[n].n = (int64_t)D * H, out[n].key_bias = 0, n++;
    }
    return n;
}

typedef struct {
    float *px;
    int32_t ids[N_ITEMS * T], mask[N_ITEMS * T], trip[3][3][N];
    float *user, *w, *b;
} inputs;

static int load_inputs(inputs *in, const mrec_clip *m) {
    const mrec_clip_tower_config *vc = &m->vision.cfg;
    in->px = fx("pixel_values", (int64_t)N_ITEMS * vc->channels * vc->image_size * vc->image_size);
    float *idf = fx("input_ids", N_ITEMS * T), *mf = fx("attention_mask", N_ITEMS * T), *tr = fx("triples", 3 * 3 * N);
    in->user = fx("user", N_USERS * DIM), in->w = fx("w", DIM * 2 * m->projection_dim), in->b = fx("b", DIM);
    if (!in->px || !idf || !mf || !tr || !in->user || !in->w || !in->b) return 0;
    for (int i = 0; i < N_ITEMS * T; i++) in->ids[i] = (int32_t)idf[i], in->mask[i] = (int32_t)mf[i];
    for (int i = 0; i < 3 * 3 * N; i++) (&in->trip[0][0][0])[i] = (int32_t)tr[i];
    free(idf), free(mf), free(tr);
    return 1;
}

static mrec_status make(mrec_model *model, mrec_clip *m, const inputs *in, int blocks, mrec_context *ctx) {
    mrec_clip_items items = {m, N_ITEMS, T, in->px, in->ids, in->mask};
    mrec_clip_e2e_options o = {.dim = DIM, .reg = 0.01f, .blocks = blocks, .tower_lr = 1e-3f, .tower_decay = 0.1f, .max_batch = N};
    mrec_rng rng = {7};
    mrec_status st = mrec_clip_e2e_create(model, N_USERS, &items, &o, &rng, ctx);
    if (st) return st;
    /* the fixture's users and fusion instead of the model's draws */
    memcpy(model->param[0], in->user, sizeof(float) * N_USERS * DIM);
    memcpy(model->param[1], in->w, sizeof(float) * DIM * 2 * m->projection_dim);
    memcpy(model->param[2], in->b, sizeof(float) * DIM);
    return MREC_OK;
}

/* One value of the fixture against one of ours; tol from the fixture's scale. */
static void compare(const char *what, const char *file, const float *got, int64_t n, double atol) {
    float *want = fx(file, n);
    if (!want) return;
    t_allclose(what, want, got, n, atol, 0);
    free(want);
}

static double scale_of(const char *file, int64_t n) {
    float *want = fx(file, n);
    double s = want ? max_abs(want, n) : 0;
    free(want);
    return s;
}

/* The golden run for `blocks`: loss and gradients of the first batch, weights after three steps. */
static void golden_run(mrec_clip *m, const inputs *in, int blocks, mrec_context *ctx) {
    char file[256], what[256];
    /* a fresh copy of the weights for each run: the model trains them in place */
    mrec_clip fresh;
    if (!t_check(mrec_clip_load(&fresh, "tests/fixtures/clip", MREC_CLIP_BOTH) == MREC_OK, "load the tiny CLIP")) return;
    (void)m;
    mrec_model model;
    if (t_status(make(&model, &fresh, in, blocks, ctx), MREC_OK, "clip-e2e with %d blocks", blocks) != 1) {
        mrec_clip_free(&fresh);
        return;
    }
    /* the frozen part's bits before training: every tensor but the trainable ones */
    float *v0 = malloc(sizeof(float) * (size_t)fresh.vision.floats), *t0 = malloc(sizeof(float) * (size_t)fresh.text.floats);
    NEED(v0 && t0);
    memcpy(v0, fresh.vision.storage, sizeof(float) * (size_t)fresh.vision.floats);
    memcpy(t0, fresh.text.storage, sizeof(float) * (size_t)fresh.text.floats);

    mrec_optimizer adam;
    mrec_adam_init(&adam, 0.01f, 0);
    for (int p = 0; p < model.n_params; p++) NEED(mrec_adam_add(&adam, model.param[p], model.grad[p], model.size[p]) == MREC_OK);
    static named list[2][64];
    int nl[2] = {trainable(list[0], &fresh.vision, 1, fresh.projection_dim, blocks),
                 trainable(list[1], &fresh.text, 0, fresh.projection_dim, blocks)};
    int D2 = 2 * fresh.projection_dim;
    for (int step = 0; step < 3; step++) {
        double loss = model.loss_grad(model.self, in->trip[step][0], in->trip[step][1], in->trip[step][2], N);
        if (!t_check(!*model.status && isfinite(loss), "clip-e2e (%d blocks) batch %d: %s", blocks, step, mrec_error_detail())) break;
        if (step == 0) {
            float *lv = fx((snprintf(file, sizeof file, "n%d_loss", blocks), file), 1);
            if (lv) t_check(fabs(loss - lv[0]) <= 1e-5 * fabs(lv[0]), "clip-e2e (%d blocks) loss %.9g, torch %.9g", blocks, loss, lv[0]);
            free(lv);
            const char *pn[3] = {"user", "w", "b"};
            int64_t pnn[3] = {N_USERS * DIM, (int64_t)DIM * D2, DIM};
            double gmax = 0;
            for (int p = 0; p < 3; p++) gmax = fmax(gmax, scale_of((snprintf(file, sizeof file, "n%d_d_%s", blocks, pn[p]), file), pnn[p]));
            for (int p = 0; p < 3; p++) {
                snprintf(file, sizeof file, "n%d_d_%s", blocks, pn[p]);
                snprintf(what, sizeof what, "clip-e2e (%d blocks) gradient of %s", blocks, pn[p]);
                compare(what, file, model.grad[p], pnn[p], 1e-4 * fmax(scale_of(file, pnn[p]), 1e-3 * gmax));
            }
            const float *vg, *tg;
            mrec_clip_e2e_tower_grads(&model, &vg, &tg);
            t_check(blocks ? vg && tg : !vg && !tg, "clip-e2e (%d blocks): tower gradients %s", blocks, blocks ? "kept" : "none");
            for (int tw = 0; tw < 2 && blocks; tw++) {
                const mrec_clip_tower *tower = tw ? &fresh.text : &fresh.vision;
                double tmax = 0;
                for (int i = 0; i < nl[tw]; i++)
                    tmax = fmax(tmax, scale_of((snprintf(file, sizeof file, "n%d_d_%.120s", blocks, list[tw][i].name), file), list[tw][i].n));
                for (int i = 0; i < nl[tw]; i++) {
                    snprintf(file, sizeof file, "n%d_d_%.120s", blocks, list[tw][i].name);
                    snprintf(what, sizeof what, "clip-e2e (%d blocks) gradient of %.120s", blocks, list[tw][i].name);
                    compare(what, file, (tw ? tg : vg) + (list[tw][i].w - tower->storage), list[tw][i].n,
                            1e-4 * fmax(scale_of(file, list[tw][i].n), 1e-3 * tmax));
                }
            }
        }
        NEED(mrec_adam_step(&adam, ctx) == MREC_OK);
    }
    /* after three steps */
    const char *pn[3] = {"user", "w", "b"};
    int64_t pnn[3] = {N_USERS * DIM, (int64_t)DIM * D2, DIM};
    for (int p = 0; p < 3; p++) {
        float *want = fx((snprintf(file, sizeof file, "n%d_w_%s", blocks, pn[p]), file), pnn[p]);
        snprintf(what, sizeof what, "clip-e2e (%d blocks) %s after three steps", blocks, pn[p]);
        if (want) t_allclose(what, want, model.param[p], pnn[p], 1e-5, 1e-5);
        free(want);
    }
    for (int tw = 0; tw < 2; tw++)
        for (int i = 0; i < nl[tw]; i++) {
            float *want = fx((snprintf(file, sizeof file, "n%d_w_%.120s", blocks, list[tw][i].name), file), list[tw][i].n);
            snprintf(what, sizeof what, "clip-e2e (%d blocks) %.120s after three steps%s", blocks, list[tw][i].name,
                     list[tw][i].key_bias ? " (a gradient 0 in exact arithmetic: within 3 lr)" : "");
            if (want) t_allclose(what, want, list[tw][i].w, list[tw][i].n, list[tw][i].key_bias ? 3e-3 : 1e-5, 1e-5);
            free(want);
        }
    /* nothing outside the trainable tensors moved: put them back and the storage is the original */
    for (int tw = 0; tw < 2; tw++) {
        const mrec_clip_tower *tower = tw ? &fresh.text : &fresh.vision;
        float *orig = tw ? t0 : v0;
        for (int i = 0; i < nl[tw]; i++) memcpy(list[tw][i].w, orig + (list[tw][i].w - tower->storage), sizeof(float) * (size_t)list[tw][i].n);
        t_check(!memcmp(orig, tower->storage, sizeof(float) * (size_t)tower->floats), "clip-e2e (%d blocks): the %s tower's frozen weights are untouched",
                blocks, tw ? "text" : "vision");
    }
    mrec_adam_free(&adam);
    mrec_model_destroy(&model);
    mrec_clip_free(&fresh);
    free(v0), free(t0);
}

/* blocks = 0: the item vectors are W [extract-clip's image embeds ; text embeds] + b */
static void frozen_is_features(mrec_clip *m, const inputs *in, mrec_context *ctx) {
    mrec_model model;
    if (t_status(make(&model, m, in, 0, ctx), MREC_OK, "clip-e2e with 0 blocks") != 1) return;
    int D = m->projection_dim;
    float img[N_ITEMS * 64], txt[N_ITEMS * 64], want[N_ITEMS * DIM], got_u[N_USERS * DIM], got[N_ITEMS * DIM];
    NEED(D <= 64);
    t_status(mrec_clip_image_forward(ctx, m, in->px, N_ITEMS, MREC_CLIP_EMBEDS, img), MREC_OK, "extract-clip's image embeds");
    t_status(mrec_clip_text_forward(ctx, m, in->ids, in->mask, N_ITEMS, T, MREC_CLIP_EMBEDS, txt), MREC_OK, "extract-clip's text embeds");
    for (int i = 0; i < N_ITEMS; i++)
        for (int k = 0; k < DIM; k++) {
            double s = in->b[k];
            for (int c = 0; c < D; c++) s += (double)in->w[k * 2 * D + c] * img[i * D + c] + (double)in->w[k * 2 * D + D + c] * txt[i * D + c];
            want[i * DIM + k] = (float)s;
        }
    t_status(model.prepare(model.self), MREC_OK, "clip-e2e prepare");
    t_status(model.embeddings(model.self, got_u, got), MREC_OK, "clip-e2e embeddings");
    /* the same weights through nn/clip.c's forward and the training path's: float rounding apart */
    t_allclose("clip-e2e with 0 blocks scores the fusion of extract-clip's embeddings", want, got, N_ITEMS * DIM, 1e-5, 1e-5);
    mrec_model_destroy(&model);
}

static void bad_options(mrec_clip *m, const inputs *in, mrec_context *ctx) {
    mrec_model model;
    mrec_rng rng = {1};
    mrec_clip_items items = {m, N_ITEMS, T, in->px, in->ids, in->mask};
    mrec_clip_e2e_options o = {.dim = DIM, .reg = 0, .blocks = 3, .tower_lr = 1e-5f, .max_batch = N};
    t_status(mrec_clip_e2e_create(&model, N_USERS, &items, &o, &rng, ctx), MREC_ERR_ARG, "more trainable blocks than a tower has");
    t_check(strstr(mrec_error_detail(), "3 trainable blocks") != NULL, "the message names the blocks: %s", mrec_error_detail());
    int32_t ids[N_ITEMS * T];
    memcpy(ids, in->ids, sizeof ids);
    ids[2 * T + 1] = m->text.cfg.vocab_size;
    items.ids = ids, o.blocks = 1;
    t_status(mrec_clip_e2e_create(&model, N_USERS, &items, &o, &rng, ctx), MREC_ERR_ARG, "a token outside the vocabulary");
    t_check(strstr(mrec_error_detail(), "item 2") != NULL, "the message names the item: %s", mrec_error_detail());
    /* a batch naming an item past the table: a NaN loss and the status; the next batch is whole */
    items.ids = in->ids;
    if (t_status(mrec_clip_e2e_create(&model, N_USERS, &items, &o, &rng, ctx), MREC_OK, "clip-e2e with 1 block")) {
        int32_t u[2] = {0, 1}, i[2] = {1, 2}, j[2] = {3, N_ITEMS};
        double loss = model.loss_grad(model.self, u, i, j, 2);
        t_check(isnan(loss) && *model.status == MREC_ERR_ARG, "an item past the table: NaN and a status (%g, %d)", loss, *model.status);
        j[1] = 4;
        loss = model.loss_grad(model.self, u, i, j, 2);
        t_check(isfinite(loss) && *model.status == MREC_OK, "then a good batch trains (%g)", loss);
        mrec_model_destroy(&model);
    }
}

/* A few epochs through the trainer on a tiny table: 4 users, 5 items, one test item each. */
static void end_to_end(const inputs *in, mrec_context *ctx) {
    mrec_clip m;
    NEED(mrec_clip_load(&m, "tests/fixtures/clip", MREC_CLIP_BOTH) == MREC_OK);
    int64_t tr_ptr[N_USERS + 1] = {0, 2, 4, 6, 8}, te_ptr[N_USERS + 1] = {0, 1, 2, 3, 4};
    int32_t tr_col[8] = {0, 1, 1, 2, 2, 3, 0, 4}, te_col[4] = {2, 3, 4, 1};
    float ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    mrec_user_items train = {N_USERS, N_ITEMS, tr_ptr, tr_col, ones}, test = {N_USERS, N_ITEMS, te_ptr, te_col, ones};
    mrec_model model;
    if (t_status(make(&model, &m, in, 1, ctx), MREC_OK, "clip-e2e for a run") != 1) return;
    float v_before = m.vision.proj[0], v_frozen = m.vision.layer[0].q_w[0];
    mrec_fit_options o = mrec_fit_defaults();
    o.epochs = 5, o.batch_size = 3, o.lr = 0.01f, o.seed = 3, o.select_k = 2;
    int k[1] = {2};
    mrec_fit_result r;
    memset(&r, 0, sizeof r);
    t_status(mrec_fit(&r, &model, &train, NULL, &test, k, 1, 0, &o, ctx), MREC_OK, "clip-e2e trains for 5 epochs");
    t_check(r.epochs_run == 5, "5 epochs run (%d)", r.epochs_run);
    t_check(m.vision.proj[0] != v_before, "the vision projection trained");
    t_check(m.vision.layer[0].q_w[0] == v_frozen, "the frozen block did not");
    t_check(isfinite(r.test.value[0][0]) && r.test.value[0][0] >= 0 && r.test.value[0][0] <= 1, "a test metric in [0, 1]: %g",
            r.test.value[0][0]);
    mrec_fit_result_free(&r);
    mrec_model_destroy(&model);
    mrec_clip_free(&m);
}

/* ---- mrec train --model clip-e2e on a tiny table of freely licensed photos ---- */

static const char *PHOTOS[] = {"pillow/flower.jpg", "pillow/pil_sample_rgb.jpg", "pillow/hopper.jpg", "pillow/hopper.png",
                               "pillow/hopper_gray.jpg", "pillow/iptc.jpg", "libjpeg-turbo/testorig.jpg", "libjpeg-turbo/testimgint.jpg"};
enum { CLI_ITEMS = 8, CLI_USERS = 6 };

static void command(void) {
    const char *bin = getenv("MREC_BIN"), *tokfile = "tests/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json";
    if (!bin || access(bin, X_OK) != 0) {
        t_skip("mrec train --model clip-e2e: MREC_BIN is not set (tests/run.sh sets it)");
        return;
    }
    if (access(tokfile, R_OK) != 0 || access("tests/data/images/odd/pillow/flower.jpg", R_OK) != 0) {
        t_skip("mrec train --model clip-e2e: tests/data not found");
        return;
    }
    char dir[64] = "/tmp/mrec-clip-e2e-XXXXXX", cwd[2048], cmd[16384], out[16384], path[512], line[4096];
    if (!t_check(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL, "a temporary folder")) return;
    char abs_bin[4200]; /* the Elliot run starts in the temporary folder */
    if (bin[0] != '/') snprintf(abs_bin, sizeof abs_bin, "%s/%s", cwd, bin), bin = abs_bin;
    snprintf(cmd, sizeof cmd, "mkdir %s/model && for f in config.json model.safetensors preprocessor_config.json; do "
             "ln -s %s/tests/fixtures/clip/$f %s/model/$f; done && ln -s %s/%s %s/model/tokenizer.json", dir, cwd, dir, cwd, tokfile, dir);
    NEED(system(cmd) == 0);
    /* items.tsv: id, text, photo (absolute); inter.tsv: each user 4 items, the last two for validation and test */
    snprintf(path, sizeof path, "%s/items.tsv", dir);
    FILE *f = fopen(path, "w"), *tx = fopen("tests/data/texts/items.txt", "r");
    NEED(f && tx);
    fprintf(f, "id\ttext\timage\n");
    for (int i = 0; i < CLI_ITEMS && fgets(line, sizeof line, tx); i++) {
        line[strcspn(line, "\n")] = 0;
        fprintf(f, "it%d\t%s\t%s/tests/data/images/odd/%s\n", i, line, cwd, PHOTOS[i]);
    }
    fclose(tx);
    NEED(fclose(f) == 0);
    snprintf(path, sizeof path, "%s/inter.tsv", dir);
    NEED((f = fopen(path, "w")) != NULL);
    for (int u = 0; u < CLI_USERS; u++)
        for (int k = 0; k < 4; k++) fprintf(f, "u%d\tit%d\t1\t%d\n", u, (u + 2 * k) % CLI_ITEMS, 1000 + k);
    NEED(fclose(f) == 0);
    const char *common = "--format tsv --split leave:1:valid --model clip-e2e --id-column id --text-column text --image-column image "
                         "--epochs 3 --batch-size 4 --k 2 --select recall@2 --threads 2";
    for (int blocks = 0; blocks <= 1; blocks++) {
        snprintf(cmd, sizeof cmd, "%s train --data %s/inter.tsv --clip %s/model --items %s/items.tsv %s --blocks %d --out %s/run%d 2>&1", bin,
                 dir, dir, dir, common, blocks, dir, blocks);
        int rc = t_run(cmd, out, sizeof out);
        char want[64];
        snprintf(want, sizeof want, "blocks=%d", blocks);
        t_check(rc == 0 && strstr(out, "CLIP items:") && strstr(out, want) && strstr(out, "test (best epoch"),
                "mrec train --model clip-e2e --blocks %d trains and reports (rc %d)\n%.2000s", blocks, rc, out);
    }
    /* an Elliot experiment: CLIPItems in side_information, CLIPE2E with a grid of two block depths */
    snprintf(path, sizeof path, "%s/e2e.yml", dir);
    NEED((f = fopen(path, "w")) != NULL);
    fprintf(f, "experiment:\n"
               "  dataset: tiny\n"
               "  data_config:\n"
               "    strategy: dataset\n"
               "    dataset_path: inter.tsv\n"
               "    side_information:\n"
               "      - {dataloader: CLIPItems, clip_model: model, items_path: items.tsv, id_column: id, text_column: text, image_column: image}\n"
               "  splitting:\n"
               "    test_splitting: {strategy: temporal_hold_out, leave_n_out: 1}\n"
               "  top_k: 2\n"
               "  evaluation: {cutoffs: [2], simple_metrics: [Recall]}\n"
               "  models:\n"
               "    CLIPE2E: {meta: {validation_rate: 1, validation_metric: Recall@2}, epochs: 2, batch_size: 4, blocks: [0, 2], tower_lr: 0.001}\n");
    NEED(fclose(f) == 0);
    snprintf(cmd, sizeof cmd, "cd %s && %s train e2e.yml --out res --threads 2 2>&1", dir, bin);
    int rc = t_run(cmd, out, sizeof out);
    t_check(rc == 0 && strstr(out, "blocks=0") && strstr(out, "blocks=2") && strstr(out, "tower_lr=0.001"),
            "an Elliot config with CLIPItems trains CLIPE2E over a grid of 2 (rc %d)\n%.2000s", rc, out);
    /* an item of the data without a photo and text in the table is named */
    snprintf(path, sizeof path, "%s/inter.tsv", dir);
    NEED((f = fopen(path, "a")) != NULL);
    fprintf(f, "u0\tnowhere\t1\t999\nu1\tnowhere\t1\t999\n");
    NEED(fclose(f) == 0);
    snprintf(cmd, sizeof cmd, "%s train --data %s/inter.tsv --clip %s/model --items %s/items.tsv %s --out %s/run-bad 2>&1", bin, dir, dir, dir,
             common, dir);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc != 0 && strstr(out, "item 'nowhere'"), "an item missing from --items is named (rc %d)\n%.1000s", rc, out);
    /* the model without its items, and the items without --clip */
    snprintf(cmd, sizeof cmd, "%s train --data %s/inter.tsv --format tsv --split leave:1:valid --model clip-e2e --epochs 1 --out %s/run-none 2>&1",
             bin, dir, dir);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc != 0 && strstr(out, "clip-e2e needs a CLIP model"), "clip-e2e without --clip says what it needs (rc %d)\n%.1000s", rc, out);
    snprintf(cmd, sizeof cmd, "%s train --data %s/inter.tsv %s --out %s/run-none 2>&1", bin, dir, common, dir);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc != 0 && strstr(out, "go with --clip DIR"), "--items without --clip is refused (rc %d)\n%.1000s", rc, out);
    snprintf(cmd, sizeof cmd, "%s train --data %s/inter.tsv --format tsv --split leave:1:valid --model bprmf --clip %s/model --out %s/run-bpr 2>&1",
             bin, dir, dir, dir);
    rc = t_run(cmd, out, sizeof out);
    t_check(rc != 0 && strstr(out, "--clip goes with --model clip-e2e"), "--clip with another model is refused (rc %d)\n%.1000s", rc, out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) t_check(0, "removing %s", dir);
}

int main(void) {
    t_suite("clip_e2e");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    mrec_clip m;
    T_REQUIRE(mrec_clip_load(&m, "tests/fixtures/clip", MREC_CLIP_BOTH) == MREC_OK);
    inputs in;
    T_REQUIRE(load_inputs(&in, &m));
    for (int blocks = 0; blocks <= 2; blocks++) golden_run(&m, &in, blocks, ctx);
    frozen_is_features(&m, &in, ctx);
    bad_options(&m, &in, ctx);
    end_to_end(&in, ctx);
    command();
    free(in.px), free(in.user), free(in.w), free(in.b);
    mrec_clip_free(&m);
    mrec_context_destroy(ctx);
    return t_finish();
}
