/* test_clip_train.c: CLIP's backward pass (nn/clip_train.c) against PyTorch's
 * autograd on transformers' CLIPModel (tests/fixtures/clip_train, made by
 * tools/golden/clip_train.py from the tiny random model of tests/fixtures/clip):
 * the loss of 3 image-text pairs (padded texts, a causal and a padding
 * mask) and the gradient of every weight of both towers and of the logit scale.
 *
 * Tolerance: each gradient within 1e-4 of its tensor's largest magnitude,
 * with a floor of 1e-3 of its tower's largest gradient (a tensor whose
 * gradient is ~0 in exact arithmetic, the key biases, is rounding noise).
 * The C side is float32 through ~40 ops deep; the fixture is float64. Also:
 * the gradients accumulate (a second call doubles them, to float rounding), a short workspace
 * is refused, and a token outside the vocabulary is named.
 */
#include "harness.h"

#include "../nn/mrec_clip_train.h"
#include "../nn/mrec_npy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DIR "tests/fixtures/clip_train/"

static float *fx(const char *name, int64_t want) {
    char path[512];
    snprintf(path, sizeof path, DIR "%s.npy", name);
    float *data = NULL;
    int nd = 0;
    int64_t shape[8];
    if (mrec_npy_read_f32(path, &data, &nd, shape) != MREC_OK) {
        t_check(0, "read %s: %s", path, mrec_error_detail());
        return NULL;
    }
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    if (want >= 0 && n != want) {
        t_check(0, "%s: %lld values, expected %lld", path, (long long)n, (long long)want);
        free(data);
        return NULL;
    }
    return data;
}

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

typedef struct {
    const char *name;
    const float *w;
    int64_t n;
} named;

/* The tower's tensors with their checkpoint names (as nn/clip.c takes them). */
static int tower_names(named *out, const mrec_clip_tower *t, int vision, int D, char names[][128]) {
    const mrec_clip_tower_config *c = &t->cfg;
    int64_t H = c->hidden, I = c->intermediate, n = 0;
    const char *tw = vision ? "vision_model" : "text_model";
#define ADD(ptr, count, ...) (snprintf(names[n], 128, __VA_ARGS__), out[n].name = names[n], out[n].w = (ptr), out[n].n = (count), n++)
    if (vision) {
        int64_t G = c->image_size / c->patch_size;
        ADD(t->embed, H * c->channels * c->patch_size * c->patch_size, "vision_model.embeddings.patch_embedding.weight");
        ADD(t->cls, H, "vision_model.embeddings.class_embedding");
        ADD(t->pos, (1 + G * G) * H, "vision_model.embeddings.position_embedding.weight");
        ADD(t->pre_w, H, "vision_model.pre_layrnorm.weight");
        ADD(t->pre_b, H, "vision_model.pre_layrnorm.bias");
    } else {
        ADD(t->pos, (int64_t)c->max_positions * H, "text_model.embeddings.position_embedding.weight");
    }
    for (int l = 0; l < c->layers; l++) {
        const mrec_vit_layer *L = &t->layer[l];
        ADD(L->ln1_w, H, "%s.encoder.layers.%d.layer_norm1.weight", tw, l);
        ADD(L->ln1_b, H, "%s.encoder.layers.%d.layer_norm1.bias", tw, l);
        ADD(L->q_w, H * H, "%s.encoder.layers.%d.self_attn.q_proj.weight", tw, l);
        ADD(L->q_b, H, "%s.encoder.layers.%d.self_attn.q_proj.bias", tw, l);
        ADD(L->k_w, H * H, "%s.encoder.layers.%d.self_attn.k_proj.weight", tw, l);
        ADD(L->k_b, H, "%s.encoder.layers.%d.self_attn.k_proj.bias", tw, l);
        ADD(L->v_w, H * H, "%s.encoder.layers.%d.self_attn.v_proj.weight", tw, l);
        ADD(L->v_b, H, "%s.encoder.layers.%d.self_attn.v_proj.bias", tw, l);
        ADD(L->o_w, H * H, "%s.encoder.layers.%d.self_attn.out_proj.weight", tw, l);
        ADD(L->o_b, H, "%s.encoder.layers.%d.self_attn.out_proj.bias", tw, l);
        ADD(L->ln2_w, H, "%s.encoder.layers.%d.layer_norm2.weight", tw, l);
        ADD(L->ln2_b, H, "%s.encoder.layers.%d.layer_norm2.bias", tw, l);
        ADD(L->inter_w, I * H, "%s.encoder.layers.%d.mlp.fc1.weight", tw, l);
        ADD(L->inter_b, I, "%s.encoder.layers.%d.mlp.fc1.bias", tw, l);
        ADD(L->out_w, H * I, "%s.encoder.layers.%d.mlp.fc2.weight", tw, l);
        ADD(L->out_b, H, "%s.encoder.layers.%d.mlp.fc2.bias", tw, l);
    }
    ADD(t->post_w, H, "%s.%s.weight", tw, vision ? "post_layernorm" : "final_layer_norm");
    ADD(t->post_b, H, "%s.%s.bias", tw, vision ? "post_layernorm" : "final_layer_norm");
    ADD(t->proj, D * H, vision ? "visual_projection.weight" : "text_projection.weight");
#undef ADD
    return (int)n;
}

static void check_tower(const mrec_clip_tower *t, const float *grad, int vision, int D) {
    static named list[256];
    static char names[256][128];
    int n = tower_names(list, t, vision, D, names);
    float *want[256];
    double tower_max = 0;
    for (int i = 0; i < n; i++) {
        char f[160];
        snprintf(f, sizeof f, "d_%s", list[i].name);
        want[i] = fx(f, list[i].n);
        if (want[i]) tower_max = fmax(tower_max, max_abs(want[i], list[i].n));
    }
    for (int i = 0; i < n; i++) {
        if (!want[i]) continue;
        char what[192];
        snprintf(what, sizeof what, "clip gradient %s", list[i].name);
        const float *got = grad + (list[i].w - t->storage);
        t_allclose(what, want[i], got, list[i].n, 1e-4 * fmax(max_abs(want[i], list[i].n), 1e-3 * tower_max), 0);
        free(want[i]);
    }
}

int main(void) {
    t_suite("clip_train");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    mrec_clip m;
    T_REQUIRE(mrec_clip_load(&m, "tests/fixtures/clip", MREC_CLIP_BOTH) == MREC_OK);
    enum { B = 3, T = 7 };
    const mrec_clip_tower_config *vc = &m.vision.cfg;
    float *px = fx("pixel_values", (int64_t)B * vc->channels * vc->image_size * vc->image_size), *idf = fx("input_ids", B * T),
          *mf = fx("attention_mask", B * T), *lv = fx("loss", 1), *dls = fx("d_logit_scale", 1);
    T_REQUIRE(px && idf && mf && lv && dls);
    int32_t ids[B * T], mask[B * T];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)idf[i], mask[i] = (int32_t)mf[i];
    size_t bytes = mrec_clip_train_workspace_bytes(ctx, &m, B, T);
    void *work = malloc(bytes);
    float *vg = calloc((size_t)m.vision.floats, sizeof(float)), *tg = calloc((size_t)m.text.floats, sizeof(float));
    T_REQUIRE(work && vg && tg);
    double loss = 0, dscale = 0;
    t_status(mrec_clip_train_grads(ctx, &m, px, ids, mask, B, T, vg, tg, &dscale, &loss, work, bytes), MREC_OK, "clip backward");
    t_check(fabs(loss - lv[0]) <= 1e-5 * fabs(lv[0]), "clip loss %.9g, torch %.9g", loss, lv[0]);
    t_check(fabs(dscale - dls[0]) <= 1e-4 * fabs(dls[0]) + 1e-7, "d logit_scale %.9g, torch %.9g", dscale, dls[0]);
    check_tower(&m.vision, vg, 1, m.projection_dim);
    check_tower(&m.text, tg, 0, m.projection_dim);
    /* the token embedding's gradient at the batch's ids (zero elsewhere) */
    float *rows = fx("token_rows", -1);
    float *want = fx("d_text_model.embeddings.token_embedding.rows", -1);
    if (rows && want) {
        int H = m.text.cfg.hidden, n_rows = 0;
        const float *g0 = tg + (m.text.embed - m.text.storage);
        for (int i = 0; i < B * T; i++) { /* the distinct ids, counted from the batch */
            int seen = 0;
            for (int j = 0; j < i; j++) seen |= ids[j] == ids[i];
            n_rows += !seen;
        }
        float *got = malloc(sizeof(float) * (size_t)n_rows * H);
        double outside = 0;
        for (int r = 0; r < n_rows; r++) memcpy(got + (size_t)r * H, g0 + (size_t)rows[r] * H, sizeof(float) * H);
        for (int v = 0; v < m.text.cfg.vocab_size; v++) {
            int in = 0;
            for (int r = 0; r < n_rows; r++) in |= (int)rows[r] == v;
            if (!in) outside = fmax(outside, max_abs(g0 + (size_t)v * H, H));
        }
        t_allclose("clip gradient text_model.embeddings.token_embedding.weight at the batch's ids", want, got, (int64_t)n_rows * H,
                   1e-4 * max_abs(want, (int64_t)n_rows * H), 0);
        t_check(outside == 0, "token embedding gradient is 0 outside the batch's ids (max %g)", outside);
        free(got);
    }
    /* accumulation: a second call adds the same gradients again */
    float *vg1 = malloc(sizeof(float) * (size_t)m.vision.floats);
    memcpy(vg1, vg, sizeof(float) * (size_t)m.vision.floats);
    t_status(mrec_clip_train_grads(ctx, &m, px, ids, mask, B, T, vg, tg, &dscale, &loss, work, bytes), MREC_OK, "clip backward again");
    /* the GEMMs add into C blockwise, so twice is 2x up to float rounding */
    for (int64_t i = 0; i < m.vision.floats; i++) vg1[i] *= 2;
    t_allclose("a second call doubles the vision gradients", vg1, vg, m.vision.floats, 1e-9, 1e-5);
    t_status(mrec_clip_train_grads(ctx, &m, px, ids, mask, B, T, vg, tg, &dscale, &loss, work, bytes / 2), MREC_ERR_NOMEM,
             "a short workspace is refused");
    ids[4] = m.text.cfg.vocab_size;
    t_status(mrec_clip_train_grads(ctx, &m, px, ids, mask, B, T, vg, tg, &dscale, &loss, work, bytes), MREC_ERR_ARG,
             "a token outside the vocabulary is named");
    free(px), free(idf), free(mf), free(lv), free(dls), free(rows), free(want), free(work), free(vg), free(tg), free(vg1);
    mrec_clip_free(&m);
    mrec_context_destroy(ctx);
    return t_finish();
}
