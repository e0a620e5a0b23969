/* contrast.c: InfoNCE between two views' rows with its gradients, as MGCN,
 * SMORE, PGL and MENTOR use it (F.normalize, then cross-entropy of the
 * cosine logits over temperature against each row's own column).
 *
 *   alpha InfoNCE(a, b) = alpha / n sum_r -log(exp(<â_r, b̂_r>/t) / sum_c exp(<â_r, b̂_c>/t))
 *
 * The (n x n) logits are formed a block of rows at a time, so a contrast
 * over all users never holds users x users. Everything runs through the op
 * entries, where the context does.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "recsys_internal.h"

#define NORM_EPS 1e-12f           /* F.normalize's floor */
/* logits per block of rows: 64 MB on a CPU, 256 MB on a GPU. A block of a few hundred rows leaves its three products
 * short and their pool rounds many: MENTOR's contrast over Baby's 19,445 users in blocks of 215 rows (16 MB) ran its
 * products at 120-180 GFLOP/s on two threads, in blocks of 862 at 190-215, and the whole contrast took 5-9 % less */
#define BLOCK_FLOATS ((int64_t)1 << 24)
#define BLOCK_FLOATS_GPU ((int64_t)1 << 26)

static void carve(mrec_info_nce *c, mrec_arena *a) {
    size_t nw = (size_t)c->cap_n * c->cap_w;
#define F(count) mrec_arena_alloc(a, sizeof(float) * (count))
    c->na = F(nw), c->nb = F(nw), c->ga = F(nw), c->gb = F(nw);
    c->sim = F((size_t)c->cap_sim);
#undef F
    c->closs = mrec_arena_alloc(a, sizeof(double) * (size_t)c->cap_n);
    c->iota = mrec_arena_alloc(a, sizeof(int32_t) * (size_t)c->cap_n);
}

/* Buffers for n rows of width w in blocks of rows, grown when asked for more than ever before: each size to the
 * largest asked for, so that calls of two sizes in turn (MENTOR's users, then its items: fewer rows, taller blocks)
 * do not reallocate at every call. */
static mrec_status reserve(mrec_info_nce *c, mrec_context *ctx, int n, int w, int rows) {
    int64_t sim = (int64_t)rows * n;
    if (c->ctx == ctx && n <= c->cap_n && w <= c->cap_w && sim <= c->cap_sim) return MREC_OK;
    if (c->ctx == ctx) { /* grown: the larger of each */
        n = n > c->cap_n ? n : c->cap_n, w = w > c->cap_w ? w : c->cap_w, sim = sim > c->cap_sim ? sim : c->cap_sim;
    }
    mrec_info_nce_free(c);
    c->ctx = ctx, c->cap_n = n, c->cap_w = w, c->cap_sim = sim;
    mrec_arena measure = mrec_arena_measure();
    carve(c, &measure);
    mrec_status st = mrec_arena_reserve(&c->mem, measure.peak, ctx->device, ctx->cuda);
    int32_t *iota = malloc(sizeof(int32_t) * (size_t)n);
    if (!st && !iota) st = mrec_fail(MREC_ERR_NOMEM, "InfoNCE: %d rows", n);
    if (!st) {
        carve(c, &c->mem);
        for (int r = 0; r < n; r++) iota[r] = r;
        st = mrec_copy_to_device(ctx, c->iota, iota, sizeof(int32_t) * (size_t)n);
    }
    free(iota);
    if (st) mrec_info_nce_free(c);
    return st;
}

/* the rows of a block of logits over n columns */
static int block_of(const mrec_context *ctx, int n, int block_rows) {
    int64_t auto_rows = (ctx->device == MREC_DEVICE_CPU ? BLOCK_FLOATS : BLOCK_FLOATS_GPU) / n;
    int rows = block_rows > 0 ? block_rows : auto_rows < 1 ? 1 : auto_rows > n ? n : (int)auto_rows;
    return rows > n ? n : rows;
}

mrec_status mrec_info_nce_reserve(mrec_info_nce *c, mrec_context *ctx, int n, int w, int block_rows) {
    if (n < 1 || w < 1) return mrec_fail(MREC_ERR_ARG, "InfoNCE: %d rows of width %d", n, w);
    return reserve(c, ctx, n, w, block_of(ctx, n, block_rows));
}

mrec_status mrec_info_nce_run(mrec_info_nce *c, mrec_context *ctx, double *loss_at, float *da, float *db, const float *a,
                              const float *b, int n, int w, float temp, float alpha, int block_rows) {
    if (n < 1 || w < 1) return mrec_fail(MREC_ERR_ARG, "InfoNCE: %d rows of width %d", n, w);
    int rows = block_of(ctx, n, block_rows);
    mrec_status st = reserve(c, ctx, n, w, rows);
    if (!st) st = mrec_l2_normalize_rows(ctx, c->na, a, NORM_EPS, n, w);
    if (!st) st = mrec_l2_normalize_rows(ctx, c->nb, b, NORM_EPS, n, w);
    for (int r0 = 0; r0 < n && !st; r0 += rows) {
        int R = n - r0 < rows ? n - r0 : rows;
        const float *ar = c->na + (size_t)r0 * w;
        /* logits <â_r, b̂_c> / t, the positive at column r0 + r; gradient alpha / n (softmax - onehot), / t for the cosines */
        st = mrec_gemm(ctx, c->sim, ar, c->nb, NULL, 1.0f / temp, 0, 0, 1, R, n, w, w, w, n);
        if (!st) st = mrec_softmax_xent_rows(ctx, c->sim, c->closs + r0, c->sim, c->iota + r0, alpha / ((float)n * temp), R, n);
        /* dâ = G b̂ for the block's rows, db̂ += G^T â over the blocks */
        if (!st) st = mrec_gemm(ctx, c->ga + (size_t)r0 * w, c->sim, c->nb, NULL, 1, 0, 0, 0, R, w, n, n, w, w);
        if (!st) st = mrec_gemm(ctx, c->gb, c->sim, ar, NULL, 1, r0 ? 1.0f : 0.0f, 1, 0, n, w, R, n, w, w);
    }
    /* the rows' losses summed where they are: nothing waits for the device */
    if (!st) st = mrec_loss_term(ctx, loss_at, c->closs, n, alpha, n);
    /* back through the unit rows */
    if (!st) st = mrec_l2_normalize_rows_back(ctx, da, c->ga, c->na, a, NORM_EPS, 0, n, w);
    return st ? st : mrec_l2_normalize_rows_back(ctx, db, c->gb, c->nb, b, NORM_EPS, 0, n, w);
}

void mrec_info_nce_free(mrec_info_nce *c) {
    if (c->ctx && c->mem.base) mrec_arena_release(&c->mem, c->ctx->cuda);
    memset(c, 0, sizeof *c);
}
