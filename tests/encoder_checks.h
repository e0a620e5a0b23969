/* encoder_checks.h: what the encoder tests share: a reference .npy as float32,
 * a comparison scaled to the reference's largest value, and the projected text
 * embeddings of a BERT-family two-tower model (ALIGN, AltCLIP) brought to the
 * host. */
#ifndef MREC_ENCODER_CHECKS_H
#define MREC_ENCODER_CHECKS_H

#include "harness.h"

#include "../nn/mrec_bert.h"
#include "../nn/mrec_npy.h"
#include "../nn/mrec_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A .npy as float32 (malloc'd), its shape into shape when not NULL; NULL if it cannot be read. */
static inline float *load_npy(const char *path, int64_t *shape) {
    float *data = NULL;
    int ndim;
    int64_t s[8];
    if (mrec_npy_read_f32(path, &data, &ndim, s)) return NULL;
    if (shape) memcpy(shape, s, sizeof(int64_t) * (size_t)ndim);
    return data;
}

/* |ref - out| <= 1e-4 x the largest |ref|: float32 sums in another order than PyTorch's */
static inline void compare_scaled(const char *what, const float *ref, const float *out, int64_t n) {
    double scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    t_allclose(what, ref, out, n, 1e-4 * scale, 0);
}

/* The model's text_projection of (B, T) ids on ctx's device (weights moved there first), unnormalized into
 * proj and L2-normalized into unit, both (B, proj_dim) host arrays. */
static inline mrec_status bert_text_embeds(mrec_context *ctx, mrec_bert *m, const int32_t *ids, const int32_t *mask, int B, int T,
                                           float *proj, float *unit) {
    int H = m->cfg.hidden, P = m->cfg.proj_dim;
    size_t ws = mrec_bert_workspace_bytes(m, B, T) + sizeof(float) * ((size_t)B * T * H + 2 * (size_t)B * P) + 4096;
    mrec_status st = mrec_bert_to_device(m, ctx);
    if (!st) st = mrec_context_reserve(ctx, ws);
    if (st) return st;
    size_t mark = ctx->workspace.used;
    float *hidden = mrec_arena_alloc(&ctx->workspace, sizeof(float) * (size_t)B * T * H);
    float *dproj = mrec_arena_alloc(&ctx->workspace, sizeof(float) * (size_t)B * P);
    float *dunit = mrec_arena_alloc(&ctx->workspace, sizeof(float) * (size_t)B * P);
    if (!hidden || !dproj || !dunit) st = mrec_fail(MREC_ERR_NOMEM, "test workspace");
    if (!st) st = mrec_bert_forward(ctx, m, ids, NULL, mask, B, T, hidden, NULL);
    if (!st) st = mrec_bert_project(ctx, m, hidden, B, T, dproj);
    if (!st) st = mrec_l2_normalize_rows(ctx, dunit, dproj, 1e-12f, B, P);
    if (!st) st = mrec_copy_to_host(ctx, proj, dproj, sizeof(float) * (size_t)B * P);
    if (!st) st = mrec_copy_to_host(ctx, unit, dunit, sizeof(float) * (size_t)B * P);
    ctx->workspace.used = mark;
    return st;
}

#endif
