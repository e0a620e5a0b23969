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
 * build) the program prints one "skipped" line per case.
 */
#include "harness.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/mrec_kernels.h"
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
        mrec_mul_ref(ref, a, b, n);
        if (t_status(mrec_mul_cuda(dout, da, db, n, cu), MREC_OK, "mul") && down(got, dout, 4 * n))
            snprintf(what, sizeof what, "mul n=%lld", (long long)n), t_allclose(what, ref, got, n, 0, 0);
        mrec_scale_ref(ref, a, 0.125f, n);
        if (t_status(mrec_scale_cuda(dout, da, 0.125f, n, cu), MREC_OK, "scale") && down(got, dout, 4 * n))
            snprintf(what, sizeof what, "scale n=%lld", (long long)n), t_allclose(what, ref, got, n, 0, 0);
        const char *names[] = {"gelu_erf", "gelu_tanh", "quick_gelu", "relu", "leaky_relu", "silu"};
        for (int act = MREC_ACT_GELU_ERF; act <= MREC_ACT_SILU; act++) {
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
    int shapes[][2] = {{1, 1}, {3, 31}, {7, 33}, {5, 255}, {2, 257}, {12 * 197, 197}, {64, 768}, {3, 3072}};
    for (int si = 0; si < 8; si++) {
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
    int shapes[][3] = {{1, 1, 1}, {3, 50, 50}, {5, 1000, 20}, {4, 7050, 100}, {2, 40000, 128}, {9, 257, 10}};
    for (int si = 0; si < 6; si++) {
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
    t_status(mrec_topk_rows_cuda(NULL, NULL, NULL, 1, 1000, 129, cu), MREC_ERR_UNSUPPORTED, "k above 128 is refused");
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
        mrec_status st = mrec_conv2d_workspace_bytes_cuda(&bytes, s, cu);
        if (!st && bytes) st = mrec_cuda_malloc(cu, &work, bytes);
        if (t_status(st, MREC_OK, "conv2d workspace") && t_status(mrec_conv2d_cuda(dout, din, dw, db, work, bytes, s, cu),
                                                                  MREC_OK, "conv2d case %d", si) &&
            down(got, dout, 4 * no)) {
            char what[96];
            mrec_conv2d_ref(ref, in, w, bias, s);
            snprintf(what, sizeof what, "conv2d case %d (%d->%d, %dx%d, groups %d)", si, s->C_in, s->C_out, s->KH, s->KW,
                     s->groups);
            t_allclose(what, ref, got, no, 1e-5, 1e-5);
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

static void test_sparse_adam_batched(void) {
    /* A random CSR (R, Cc) with some empty rows, D off the warp size. */
    int R = 301, Cc = 517, D = 67;
    int64_t *rp = malloc(8 * (size_t)(R + 1));
    int32_t *col = malloc(4 * (size_t)R * 40);
    rp[0] = 0;
    for (int r = 0; r < R; r++) {
        int deg = r % 11 == 0 ? 0 : (int)(t_rand_u64(&seed) % 40);
        for (int e = 0; e < deg; e++) col[rp[r] + e] = (int32_t)(t_rand_u64(&seed) % Cc);
        rp[r + 1] = rp[r] + deg;
    }
    int64_t nnz = rp[R];
    float *val = rnd(nnz, -1, 1), *X = rnd((int64_t)Cc * D, -1, 1), *ref = malloc(4 * (size_t)R * D), *got = malloc(4 * (size_t)R * D);
    int64_t *drp = up(rp, 8 * (size_t)(R + 1));
    int32_t *dcol = up(col, 4 * (size_t)nnz);
    float *dval = up(val, 4 * (size_t)nnz), *dX = up(X, 4 * (size_t)Cc * D), *dout = up(ref, 4 * (size_t)R * D);
    mrec_spmm_ref(ref, rp, col, val, X, R, Cc, D);
    if (t_status(mrec_spmm_cuda(dout, drp, dcol, dval, dX, R, Cc, D, cu), MREC_OK, "spmm") && down(got, dout, 4 * (size_t)R * D))
        t_allclose("spmm weighted", ref, got, (int64_t)R * D, 1e-5, 1e-5);
    mrec_spmm_ref(ref, rp, col, NULL, X, R, Cc, D);
    if (t_status(mrec_spmm_cuda(dout, drp, dcol, NULL, dX, R, Cc, D, cu), MREC_OK, "spmm") && down(got, dout, 4 * (size_t)R * D))
        t_allclose("spmm pattern only", ref, got, (int64_t)R * D, 1e-5, 1e-5);
    mrec_cuda_free(cu, drp), mrec_cuda_free(cu, dcol), mrec_cuda_free(cu, dval), mrec_cuda_free(cu, dX), mrec_cuda_free(cu, dout);
    free(rp), free(col), free(val), free(X), free(ref), free(got);

    int64_t n = 10007;
    float *p = rnd(n, -1, 1), *m = rnd(n, -0.1f, 0.1f), *v = rnd(n, 0, 0.01f), *grad = rnd(n, -1, 1);
    float *dp = up(p, 4 * n), *dm = up(m, 4 * n), *dv = up(v, 4 * n), *dg = up(grad, 4 * n), *gp = malloc(4 * n);
    for (int step = 1; step <= 3; step++) {
        mrec_adam_ref(p, m, v, grad, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, step, n);
        t_status(mrec_adam_cuda(dp, dm, dv, dg, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, step, n, cu), MREC_OK, "adam step %d", step);
    }
    if (down(gp, dp, 4 * n)) t_allclose("adam, 3 steps", p, gp, n, 1e-6, 1e-5);
    mrec_cuda_free(cu, dp), mrec_cuda_free(cu, dm), mrec_cuda_free(cu, dv), mrec_cuda_free(cu, dg);
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
    double loss = mrec_bpr_loss(dx, pos_s, neg_s, B), gloss = 0;
    float *duser = up(user, 4 * (size_t)U * d), *ditem = up(item, 4 * (size_t)I * d), *dpos_s = up(pos_s, 4 * (size_t)B),
          *dneg_s = up(neg_s, 4 * (size_t)B), *ddx = up(dx, 4 * (size_t)B);
    int32_t *dbu = up(bu, 4 * (size_t)B), *dbi = up(bi, 4 * (size_t)B);
    double *dloss = up(&gloss, sizeof gloss);
    if (t_status(mrec_gather_dot_cuda(dpos_s, duser, dbu, ditem, dbi, B, d, cu), MREC_OK, "gather_dot") && down(gp, dpos_s, 4 * (size_t)B))
        t_allclose("BPR positive scores", pos_s, gp, B, 1e-6, 1e-5);
    mrec_cuda_copy_h2d(cu, dpos_s, pos_s, 4 * (size_t)B);
    if (t_status(mrec_bpr_loss_cuda(ddx, dloss, dpos_s, dneg_s, B, cu), MREC_OK, "bpr loss") && down(gdx, ddx, 4 * (size_t)B) &&
        down(&gloss, dloss, sizeof gloss)) {
        t_allclose("BPR loss gradient", dx, gdx, B, 0, 1e-6); /* double exp/log of two libraries, rounded to float */
        t_check(fabs(gloss - loss) <= 1e-12 * fabs(loss), "BPR loss %.15g on the GPU, %.15g on the CPU", gloss, loss);
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
            mrec_attention_cpu(ref, q, k, v, mb, with_bias ? hb : NULL, scale, B, T, nh, dh, scratch, pool);
            char what[96];
            snprintf(what, sizeof what, "attention B%d T%d heads %d dh %d%s", B, T, nh, dh, with_bias ? " + head bias" : "");
            if (t_status(mrec_attention_cuda(dout, dq, dk, dv, dmb, with_bias ? dhb : NULL, scale, B, T, nh, dh, cu), MREC_OK,
                         "%s", what) &&
                down(got, dout, 4 * n))
                t_allclose(what, ref, got, n, 1e-5, 1e-4);
        }
        mrec_cuda_free(cu, dq), mrec_cuda_free(cu, dk), mrec_cuda_free(cu, dv), mrec_cuda_free(cu, dhb);
        mrec_cuda_free(cu, dmb), mrec_cuda_free(cu, dout);
        free(q), free(k), free(v), free(hb), free(mb), free(ref), free(got), free(scratch);
    }
    t_status(mrec_attention_cuda(NULL, NULL, NULL, NULL, NULL, NULL, 1, 1, 4, 2, 129, cu), MREC_ERR_UNSUPPORTED,
             "a head size above 128 is refused");
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
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    T_REQUIRE_VOID(mrec_context_create(&ctx[0], &o) == MREC_OK);
    o.device = MREC_WANT_CUDA;
    if (!t_status(mrec_context_create(&ctx[1], &o), MREC_OK, "a CUDA context")) {
        mrec_context_destroy(ctx[0]);
        return;
    }
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
            if (ok && d == 1) ok = down(got[d][i], outs[i]->data, mrec_tensor_bytes(outs[i]));
        }
        if (d == 1) {
            mrec_cuda_free(c->cuda, drp), mrec_cuda_free(c->cuda, dtrp), mrec_cuda_free(c->cuda, dcol);
            mrec_cuda_free(c->cuda, dtcol), mrec_cuda_free(c->cuda, dval), mrec_cuda_free(c->cuda, dtval);
        }
    }
    t_allclose("op layer: linear, gelu, layernorm, masked softmax, l2 on the GPU", got[0][0], got[1][0], (int64_t)R * N,
               1e-4, 1e-4);
    t_allclose("op layer: conv2d and maxpool on the GPU", got[0][1], got[1][1], 2 * 8 * 5 * 5, 1e-4, 1e-4);
    t_allclose("op layer: A^T (A X) on the GPU with the kept transpose", got[0][2], got[1][2], 4 * 33, 1e-4, 1e-4);
    for (int d = 0; d < 2; d++) {
        for (int i = 0; i < 3; i++) free(got[d][i]);
        mrec_context_destroy(ctx[d]);
    }
    free(x), free(w), free(b), free(g), free(mask), free(img), free(cw), free(cb), free(X);
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
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    T_REQUIRE_VOID(mrec_context_create(&ctx[0], &o) == MREC_OK);
    o.device = MREC_WANT_CUDA;
    if (!t_status(mrec_context_create(&ctx[1], &o), MREC_OK, "a CUDA context")) {
        mrec_context_destroy(ctx[0]);
        return;
    }
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

int main(void) {
    t_suite("cuda");
    mrec_status st = mrec_cuda_create(&cu, 0);
    if (st != MREC_OK) {
        t_check(st == MREC_ERR_DEVICE, "no GPU is a device error, not a crash (%d)", st);
        t_skip("GPU ops against their references: %s", mrec_error_detail());
        return t_finish();
    }
    T_REQUIRE(mrec_pool_create(&pool, 1, MREC_SIMD_AVX512) == MREC_OK);
    test_elementwise();
    test_rows();
    test_gather_pool();
    test_topk();
    test_conv_pool();
    test_sparse_adam_batched();
    test_gemm_ex();
    test_training();
    test_attention();
    test_op_layer();
    test_recommenders();
    mrec_cuda_destroy(cu);
    mrec_pool_destroy(pool);
    return t_finish();
}
