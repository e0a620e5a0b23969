/* test_ops.c: the device dispatch layer (nn/mrec_ops.h), the context and
 * arenas, and the CUDA kernels when a GPU is present ("skipped" otherwise).
 *
 * The ops are checked against the kernels' naive references; tolerances as
 * in test_kernels.c (K u sum|a||b| for products). CUDA fp32 GEMM (no TF32)
 * is held to the same bound.
 */
#include "harness.h"

#include "../nn/mrec_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define U 5.9604644775390625e-08

static uint64_t rng = 7;

static void test_context(void) {
    mrec_context_options o = mrec_context_defaults();
    mrec_context *ctx;
    o.device = MREC_WANT_CPU;
    t_status(mrec_context_create(&ctx, &o), MREC_OK, "cpu context");
    t_check(ctx->device == MREC_DEVICE_CPU && ctx->notice[0] == '\0', "cpu context runs on the cpu, no notice");
    mrec_context_destroy(ctx);
    o.device = MREC_WANT_AUTO;
    t_status(mrec_context_create(&ctx, &o), MREC_OK, "auto context");
    if (ctx->device == MREC_DEVICE_CPU)
        t_check(strstr(ctx->notice, "CPU") != NULL, "auto fell back with a notice: '%s'", ctx->notice);
    mrec_context_destroy(ctx);
    o.device = MREC_WANT_CUDA;
    mrec_status st = mrec_context_create(&ctx, &o);
    if (st == MREC_OK) mrec_context_destroy(ctx);
    else t_status(st, MREC_ERR_DEVICE, "cuda context without a GPU is a device error"), t_no_gpu(mrec_error_detail());
}

static void test_arena(void) {
    /* Measure, reserve, carve: the same carving fits exactly. */
    mrec_arena a = mrec_arena_measure();
    mrec_tensor t1, t2;
    int64_t s1[2] = {3, 5}, s2[3] = {2, 7, 9};
    t_status(mrec_arena_tensor(&a, &t1, MREC_F32, 2, s1), MREC_OK, "measure t1");
    t_status(mrec_arena_tensor(&a, &t2, MREC_I64, 3, s2), MREC_OK, "measure t2");
    size_t need = a.peak;
    t_check(need >= 3 * 5 * 4 + 2 * 7 * 9 * 8, "measured %zu bytes", need);
    mrec_arena r;
    t_status(mrec_arena_reserve(&r, need, MREC_DEVICE_CPU, NULL), MREC_OK, "reserve");
    t_status(mrec_arena_tensor(&r, &t1, MREC_F32, 2, s1), MREC_OK, "carve t1");
    t_status(mrec_arena_tensor(&r, &t2, MREC_I64, 3, s2), MREC_OK, "carve t2");
    t_check(t1.data && t2.data && (uintptr_t)t2.data % MREC_ARENA_ALIGN == 0, "carved and aligned");
    t_status(mrec_arena_tensor(&r, &t1, MREC_F32, 2, s1), MREC_ERR_NOMEM, "a third tensor does not fit");
    mrec_arena_reset(&r);
    t_status(mrec_arena_tensor(&r, &t1, MREC_F32, 2, s1), MREC_OK, "after reset");
    int64_t neg[1] = {-1};
    t_status(mrec_arena_tensor(&r, &t1, MREC_F32, 1, neg), MREC_ERR_SHAPE, "negative dimension");
    mrec_arena_release(&r, NULL);
}

static void test_linear(mrec_context *ctx) {
    int M = 6, K = 19, N = 11;
    float *x = malloc(M * K * 4), *w = malloc(N * K * 4), *b = malloc(N * 4), *y = malloc(M * N * 4), *ref = malloc(M * N * 4);
    t_fill_uniform(x, M * K, &rng, -1, 1), t_fill_uniform(w, N * K, &rng, -1, 1), t_fill_uniform(b, N, &rng, -1, 1);
    int64_t xs[3] = {2, 3, K}, ws[2] = {N, K}, bs[1] = {N}, ys[3] = {2, 3, N};
    mrec_tensor tx = mrec_tensor_view(x, MREC_F32, 3, xs), tw = mrec_tensor_view(w, MREC_F32, 2, ws);
    mrec_tensor tb = mrec_tensor_view(b, MREC_F32, 1, bs), ty = mrec_tensor_view(y, MREC_F32, 3, ys);
    t_status(mrec_op_linear(ctx, &ty, &tx, &tw, &tb), MREC_OK, "linear");
    mrec_gemm_ref(ref, x, w, b, 1, 0, 0, 1, M, N, K, K, K, N);
    t_allclose("linear vs gemm_ref", ref, y, M * N, (K + 4) * U * (K + 1), 0);
    int64_t bad[2] = {N, K + 1};
    mrec_tensor tbad = mrec_tensor_view(w, MREC_F32, 2, bad);
    t_status(mrec_op_linear(ctx, &ty, &tx, &tbad, &tb), MREC_ERR_SHAPE, "linear with a mismatched weight");
    t_check(strstr(mrec_error_detail(), "linear") != NULL, "message names the op: %s", mrec_error_detail());
    mrec_tensor ti = tx;
    ti.dtype = MREC_I32;
    t_status(mrec_op_linear(ctx, &ty, &ti, &tw, &tb), MREC_ERR_DTYPE, "linear on I32");
    free(x), free(w), free(b), free(y), free(ref);
}

static void test_tensor_ops(mrec_context *ctx) {
    int B = 3, T = 5, C = 8;
    int64_t n = B * T * C, s3[3] = {B, T, C}, sm[2] = {B, C}, sc[1] = {C};
    float *a = malloc(n * 4), *b = malloc(n * 4), *out = malloc(n * 4), *ref = malloc(n * 4);
    float *mask = malloc(B * C * 4), *w = malloc(C * 4), *bias = malloc(C * 4);
    t_fill_uniform(a, n, &rng, -3, 3), t_fill_uniform(b, n, &rng, -3, 3), t_fill_uniform(mask, B * C, &rng, -5, 0);
    t_fill_uniform(w, C, &rng, 0, 2), t_fill_uniform(bias, C, &rng, -1, 1);
    mrec_tensor ta = mrec_tensor_view(a, MREC_F32, 3, s3), tb = mrec_tensor_view(b, MREC_F32, 3, s3);
    mrec_tensor to = mrec_tensor_view(out, MREC_F32, 3, s3), tm = mrec_tensor_view(mask, MREC_F32, 2, sm);
    mrec_tensor tw = mrec_tensor_view(w, MREC_F32, 1, sc), tbias = mrec_tensor_view(bias, MREC_F32, 1, sc);

    t_status(mrec_op_add(ctx, &to, &ta, &tb), MREC_OK, "add");
    mrec_add_ref(ref, a, b, n);
    t_allclose("op add", ref, out, n, 0, 0);
    t_status(mrec_op_activation(ctx, &to, &ta, MREC_ACT_GELU_ERF, 0), MREC_OK, "gelu");
    mrec_activation_ref(ref, a, MREC_ACT_GELU_ERF, 0, n);
    t_allclose("op gelu", ref, out, n, 1e-6, 1e-5);
    t_status(mrec_op_softmax(ctx, &to, &ta, &tm), MREC_OK, "softmax with a (B, C) mask over (B, T, C)");
    mrec_softmax_rows_ref(ref, a, mask, B * T, C, T);
    t_allclose("op softmax", ref, out, n, 1e-7, 1e-5);
    t_status(mrec_op_layernorm(ctx, &to, &ta, &tw, &tbias, 1e-12f), MREC_OK, "layernorm");
    mrec_layernorm_ref(ref, a, w, bias, 1e-12f, B * T, C);
    t_allclose("op layernorm", ref, out, n, 1e-5, 1e-5);
    t_status(mrec_op_l2_normalize(ctx, &to, &ta, 1e-12f), MREC_OK, "l2_normalize");
    mrec_l2_normalize_rows_ref(ref, a, 1e-12f, B * T, C);
    t_allclose("op l2_normalize", ref, out, n, 1e-7, 1e-5);

    /* matmul: (B, T, C) @ (B, T, C)^T = (B, T, T), the attention score shape. */
    int64_t ss[3] = {B, T, T};
    float *sc_out = malloc(B * T * T * 4), *sc_ref = malloc(B * T * T * 4);
    mrec_tensor ts = mrec_tensor_view(sc_out, MREC_F32, 3, ss);
    t_status(mrec_op_matmul(ctx, &ts, &ta, &tb, 1, 0.5f), MREC_OK, "matmul");
    mrec_gemm_batched_ref(sc_ref, a, b, 0.5f, 0, 0, 1, B, T, T, C, C, C, T, T * C, T * C, T * T);
    t_allclose("op matmul", sc_ref, sc_out, B * T * T, C * U * 9 * 9 * C, 0);
    t_status(mrec_op_matmul(ctx, &ts, &ta, &tb, 0, 1), MREC_ERR_SHAPE, "matmul with inner dims that differ");
    int64_t bad[3] = {B, T, C + 1};
    mrec_tensor tbad = mrec_tensor_view(b, MREC_F32, 3, bad);
    t_status(mrec_op_add(ctx, &to, &ta, &tbad), MREC_ERR_SHAPE, "add of different shapes");
    free(a), free(b), free(out), free(ref), free(mask), free(w), free(bias), free(sc_out), free(sc_ref);
}

/* The remaining ops through the dispatch layer, each against its reference. */
static void test_more_ops(mrec_context *ctx) {
    /* conv2d + pools on a small image batch, workspace from the context. */
    int64_t xs[4] = {2, 4, 9, 10}, ws[4] = {6, 2, 3, 3}, bs[1] = {6}, ys[4] = {2, 6, 5, 5};
    float *x = malloc(2 * 4 * 90 * 4), *w = malloc(6 * 2 * 9 * 4), *b = malloc(6 * 4);
    float *y = malloc(2 * 6 * 25 * 4), *ref = malloc(2 * 6 * 25 * 4);
    t_fill_uniform(x, 2 * 4 * 90, &rng, -1, 1), t_fill_uniform(w, 6 * 18, &rng, -1, 1), t_fill_uniform(b, 6, &rng, -1, 1);
    mrec_tensor tx = mrec_tensor_view(x, MREC_F32, 4, xs), tw = mrec_tensor_view(w, MREC_F32, 4, ws);
    mrec_tensor tb = mrec_tensor_view(b, MREC_F32, 1, bs), ty = mrec_tensor_view(y, MREC_F32, 4, ys);
    mrec_conv2d_shape cs = {2, 4, 9, 10, 6, 3, 3, 2, 2, 1, 1, 2};
    t_status(mrec_op_conv2d(ctx, &ty, &tx, &tw, &tb, 2, 1, 2), MREC_OK, "conv2d");
    mrec_conv2d_ref(ref, x, w, b, &cs);
    t_allclose("op conv2d", ref, y, 2 * 6 * 25, 20 * U * 19, 0);
    t_check(ctx->workspace.used == 0, "conv2d gave its workspace back");
    t_status(mrec_op_conv2d(ctx, &ty, &tx, &tw, &tb, 1, 1, 2), MREC_ERR_SHAPE, "conv2d output of the wrong size");
    mrec_context_reserve(ctx, 64);
    mrec_arena_release(&ctx->workspace, NULL);
    /* the CPU gathers the unfolded input panel by panel: no workspace at all */
    memset(y, 0, 2 * 6 * 25 * 4);
    t_status(mrec_op_conv2d(ctx, &ty, &tx, &tw, &tb, 2, 1, 2), MREC_OK, "conv2d without workspace");
    t_allclose("op conv2d without workspace", ref, y, 2 * 6 * 25, 20 * U * 19, 0);
    int64_t ps[4] = {2, 4, 5, 5};
    float *p = malloc(2 * 4 * 25 * 4), *pref = malloc(2 * 4 * 25 * 4);
    mrec_tensor tp = mrec_tensor_view(p, MREC_F32, 4, ps);
    mrec_pool2d_shape pshape = {2, 4, 9, 10, 3, 3, 2, 2, 1, 1, 1};
    t_status(mrec_op_maxpool2d(ctx, &tp, &tx, 3, 2, 1), MREC_OK, "maxpool2d");
    mrec_maxpool2d_ref(pref, x, &pshape);
    t_allclose("op maxpool2d", pref, p, 2 * 4 * 25, 0, 0);
    t_status(mrec_op_avgpool2d(ctx, &tp, &tx, 3, 2, 1, 1), MREC_OK, "avgpool2d");
    mrec_avgpool2d_ref(pref, x, &pshape);
    t_allclose("op avgpool2d", pref, p, 2 * 4 * 25, 1e-6, 1e-5);
    t_status(mrec_op_maxpool2d(ctx, &tp, &tx, 3, 2, 2), MREC_ERR_SHAPE, "padding over half the window");

    /* embedding, mean_pool, mul, scale, topk */
    int32_t ids[6] = {3, 0, 2, 2, 1, 3}, mask[6] = {1, 1, 0, 1, 1, 1};
    int64_t tabs[2] = {4, 5}, is[2] = {2, 3}, es[3] = {2, 3, 5}, ms[2] = {2, 5};
    float table[20], e[30], eref[30], m[10], mref[10];
    t_fill_uniform(table, 20, &rng, -1, 1);
    mrec_tensor ttab = mrec_tensor_view(table, MREC_F32, 2, tabs), tids = mrec_tensor_view(ids, MREC_I32, 2, is);
    mrec_tensor te = mrec_tensor_view(e, MREC_F32, 3, es), tmask = mrec_tensor_view(mask, MREC_I32, 2, is);
    mrec_tensor tm = mrec_tensor_view(m, MREC_F32, 2, ms);
    t_status(mrec_op_embedding(ctx, &te, &ttab, &tids), MREC_OK, "embedding");
    mrec_embedding_ref(eref, table, ids, 6, 4, 5);
    t_allclose("op embedding", eref, e, 30, 0, 0);
    ids[4] = 4;
    t_status(mrec_op_embedding(ctx, &te, &ttab, &tids), MREC_ERR_ARG, "embedding id past the vocabulary");
    t_status(mrec_op_mean_pool(ctx, &tm, &te, &tmask), MREC_OK, "mean_pool");
    mrec_mean_pool_ref(mref, e, mask, 2, 3, 5);
    t_allclose("op mean_pool", mref, m, 10, 1e-7, 1e-5);
    t_status(mrec_op_mean_pool(ctx, &tm, &te, &tids), MREC_OK, "mean_pool with ids as a mask (I32)");
    t_status(mrec_op_mean_pool(ctx, &tm, &te, &ttab), MREC_ERR_DTYPE, "mean_pool with an F32 mask");
    t_status(mrec_op_mul(ctx, &te, &te, &te), MREC_OK, "mul in place");
    for (int i = 0; i < 30; i++) eref[i] *= eref[i];
    t_allclose("op mul", eref, e, 30, 0, 0);
    t_status(mrec_op_scale(ctx, &te, &te, -2.0f), MREC_OK, "scale");
    for (int i = 0; i < 30; i++) eref[i] *= -2.0f;
    t_allclose("op scale", eref, e, 30, 0, 0);
    int64_t ks[2] = {6, 2}, ss[2] = {6, 5};
    int32_t ki[12], kref[12];
    float kv[12], kvref[12];
    mrec_tensor tscores = mrec_tensor_view(e, MREC_F32, 2, ss), tki = mrec_tensor_view(ki, MREC_I32, 2, ks);
    mrec_tensor tkv = mrec_tensor_view(kv, MREC_F32, 2, ks);
    t_status(mrec_op_topk(ctx, &tki, &tkv, &tscores), MREC_OK, "topk");
    mrec_topk_rows_ref(kref, kvref, e, 6, 5, 2);
    t_check(memcmp(ki, kref, sizeof ki) == 0, "op topk indices");

    /* spmm both ways, and a malformed CSR */
    int64_t rp[4] = {0, 2, 2, 5};
    int32_t col[5] = {0, 3, 1, 2, 3};
    float val[5] = {1, -2, 0.5f, 3, 1}, X[4 * 3], XT[3 * 3], o[4 * 3], oref[4 * 3];
    t_fill_uniform(X, 12, &rng, -1, 1), t_fill_uniform(XT, 9, &rng, -1, 1);
    mrec_csr A = {3, 4, rp, col, val, MREC_DEVICE_CPU, NULL};
    t_status(mrec_csr_validate(&A), MREC_OK, "valid csr");
    int64_t xs4[2] = {4, 3}, xs3[2] = {3, 3};
    mrec_tensor tX = mrec_tensor_view(X, MREC_F32, 2, xs4), tXT = mrec_tensor_view(XT, MREC_F32, 2, xs3);
    mrec_tensor to3 = mrec_tensor_view(o, MREC_F32, 2, xs3), to4 = mrec_tensor_view(o, MREC_F32, 2, xs4);
    t_status(mrec_op_spmm(ctx, &to3, &A, &tX, 0), MREC_OK, "spmm");
    mrec_spmm_ref(oref, rp, col, val, X, 3, 4, 3);
    t_allclose("op spmm", oref, o, 9, 1e-6, 1e-6);
    t_status(mrec_op_spmm(ctx, &to4, &A, &tXT, 1), MREC_OK, "spmm transposed");
    mrec_spmm_t_ref(oref, rp, col, val, XT, 3, 4, 3);
    t_allclose("op spmm_t", oref, o, 12, 1e-6, 1e-6);
    t_status(mrec_op_spmm(ctx, &to4, &A, &tX, 0), MREC_ERR_SHAPE, "spmm with x of the wrong height");
    col[3] = 4;
    t_status(mrec_csr_validate(&A), MREC_ERR_FORMAT, "csr column out of range");
    free(x), free(w), free(b), free(y), free(ref), free(p), free(pref);
}

static void test_cuda_gemm(void) {
    mrec_cuda *cu;
    if (mrec_cuda_create(&cu, 0) != MREC_OK) {
        t_no_gpu(mrec_error_detail());
        t_skip("CUDA gemm: %s", mrec_error_detail());
        mrec_clear_error();
        return;
    }
    static const int shapes[][3] = {{1, 1, 1}, {13, 17, 19}, {128, 768, 768}, {97, 3, 1000}};
    for (size_t s = 0; s < 4; s++)
        for (int tb = 0; tb < 2; tb++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            size_t an = (size_t)M * K, bn = (size_t)N * K, cn = (size_t)M * N;
            float *A = malloc(an * 4), *B = malloc(bn * 4), *bias = malloc(N * 4), *C = malloc(cn * 4), *ref = malloc(cn * 4);
            t_fill_uniform(A, an, &rng, -1, 1), t_fill_uniform(B, bn, &rng, -1, 1), t_fill_uniform(bias, N, &rng, -1, 1);
            mrec_gemm_ref(ref, A, B, bias, 1, 0, 0, tb, M, N, K, K, tb ? K : N, N);
            void *dA, *dB, *dbias, *dC;
            int ok = !mrec_cuda_malloc(cu, &dA, an * 4) && !mrec_cuda_malloc(cu, &dB, bn * 4) &&
                     !mrec_cuda_malloc(cu, &dbias, N * 4) && !mrec_cuda_malloc(cu, &dC, cn * 4);
            ok = ok && !mrec_cuda_copy_h2d(cu, dA, A, an * 4) && !mrec_cuda_copy_h2d(cu, dB, B, bn * 4) &&
                 !mrec_cuda_copy_h2d(cu, dbias, bias, N * 4);
            ok = ok && !mrec_gemm_cuda(dC, dA, dB, dbias, 1, 0, 0, tb, M, N, K, K, tb ? K : N, N, cu);
            ok = ok && !mrec_cuda_copy_d2h(cu, C, dC, cn * 4);
            if (t_check(ok, "cuda gemm %dx%dx%d ran: %s", M, N, K, mrec_error_detail())) {
                char what[64];
                snprintf(what, sizeof what, "cuda gemm %dx%dx%d tb=%d", M, N, K, tb);
                t_allclose(what, ref, C, cn, (K + 4) * U * (K + 1), 0);
            }
            mrec_cuda_free(cu, dA), mrec_cuda_free(cu, dB), mrec_cuda_free(cu, dbias), mrec_cuda_free(cu, dC);
            free(A), free(B), free(bias), free(C), free(ref);
        }
    /* fp32 means no TF32: 1 + 2^-12 is exact in fp32 and every partial sum of 768 of them stays exact in any
     * order, where TF32's 10-bit mantissa rounds each to 1 (768 short by 0.1875) */
    {
        enum { M = 4, N = 4, K = 768 };
        static float A[M * K], B[N * K], C[M * N];
        for (int i = 0; i < M * K; i++) A[i] = 1.0f + 0x1p-12f;
        for (int i = 0; i < N * K; i++) B[i] = 1.0f;
        void *dA = NULL, *dB = NULL, *dC = NULL;
        int ok = !mrec_cuda_malloc(cu, &dA, sizeof A) && !mrec_cuda_malloc(cu, &dB, sizeof B) && !mrec_cuda_malloc(cu, &dC, sizeof C) &&
                 !mrec_cuda_copy_h2d(cu, dA, A, sizeof A) && !mrec_cuda_copy_h2d(cu, dB, B, sizeof B) &&
                 !mrec_gemm_cuda(dC, dA, dB, NULL, 1, 0, 0, 1, M, N, K, K, K, N, cu) && !mrec_cuda_copy_d2h(cu, C, dC, sizeof C);
        if (t_check(ok, "cuda gemm of exact sums ran: %s", mrec_error_detail())) {
            int exact = 1;
            for (int i = 0; i < M * N; i++) exact &= C[i] == 768.0f + 768 * 0x1p-12f;
            t_check(exact, "cuda gemm in fp32 keeps the bits TF32 drops: %.9g, want %.9g", C[0], 768.0f + 768 * 0x1p-12f);
        }
        mrec_cuda_free(cu, dA), mrec_cuda_free(cu, dB), mrec_cuda_free(cu, dC);
    }
    mrec_cuda_destroy(cu);
}

/* The op entries on a CPU context run the _cpu variants: same bits. A
 * CUDA context without a GPU cannot be made here, so the entries' GPU side
 * is exercised by test_cuda on a machine with one. */
static void test_entries(mrec_context *ctx) {
    uint64_t seed = 11;
    enum { R = 7, C = 45, N = R * C };
    float x[N], y[N], w[C], b[C], want[N], got[N];
    t_fill_uniform(x, N, &seed, -2, 2), t_fill_uniform(y, N, &seed, -2, 2);
    t_fill_uniform(w, C, &seed, 0.5f, 1.5f), t_fill_uniform(b, C, &seed, -1, 1);
    mrec_layernorm_cpu(want, x, w, b, 1e-5f, R, C, ctx->pool);
    t_status(mrec_layernorm(ctx, got, x, w, b, 1e-5f, R, C), MREC_OK, "layernorm entry");
    t_check(!memcmp(want, got, sizeof want), "layernorm entry = layernorm_cpu, bit for bit");
    mrec_add_cpu(want, x, y, N, ctx->pool);
    mrec_layernorm_cpu(want, want, w, b, 1e-5f, R, C, ctx->pool);
    memcpy(got, x, sizeof got);
    t_status(mrec_add_layernorm(ctx, got, got, y, w, b, 1e-5f, R, C), MREC_OK, "add_layernorm entry, in place");
    t_check(!memcmp(want, got, sizeof want), "add_layernorm entry = add then layernorm, in place");
    mrec_gemm_cpu(want, x, y, NULL, 1, 0, 0, 1, R, R, C, C, C, R, ctx->pool);
    t_status(mrec_gemm(ctx, got, x, y, NULL, 1, 0, 0, 1, R, R, C, C, C, R), MREC_OK, "gemm entry");
    t_check(!memcmp(want, got, sizeof(float) * R * R), "gemm entry = gemm_cpu");
    /* the gathered GEMM: x's rows reversed through an index, as x reversed */
    int32_t rev[R];
    float xr[N];
    for (int i = 0; i < R; i++) rev[i] = R - 1 - i, memcpy(xr + i * C, x + (R - 1 - i) * C, sizeof(float) * C);
    mrec_gemm_cpu(want, xr, y, b, 1, 0, 0, 1, R, R, C, C, C, R, ctx->pool);
    t_status(mrec_gemm_rows(ctx, got, x, rev, y, NULL, b, 1, 0, 0, 1, R, R, C, C, C, R), MREC_OK, "gemm_rows entry");
    t_check(!memcmp(want, got, sizeof(float) * R * R), "gemm_rows entry = gemm_cpu on the gathered rows");
    t_status(mrec_gemm_rows(ctx, got, x, rev, y, NULL, NULL, 1, 0, 1, 1, R, R, C, R, C, R), MREC_ERR_ARG,
             "gemm_rows: an index on a transposed A is refused");
    t_status(mrec_gemm_rows(ctx, got, x, NULL, y, rev, NULL, 1, 0, 0, 1, R, R, C, C, C, R), MREC_ERR_ARG,
             "gemm_rows: an index on a transposed B is refused");
    /* attention through the entry, with the workspace it asks for */
    int B = 2, T = 5, heads = 3, dh = 4, H = heads * dh;
    float q[2 * 5 * 12], k[2 * 5 * 12], v[2 * 5 * 12], ao[2 * 5 * 12], ar[2 * 5 * 12];
    t_fill_uniform(q, B * T * H, &seed, -1, 1), t_fill_uniform(k, B * T * H, &seed, -1, 1), t_fill_uniform(v, B * T * H, &seed, -1, 1);
    size_t bytes = mrec_attention_workspace_bytes(ctx, B, T, heads, dh);
    void *work = malloc(bytes);
    mrec_attention_cpu(ar, q, k, v, NULL, NULL, 0.5f, B, T, heads, dh, work, 0, ctx->pool);
    t_status(mrec_attention(ctx, ao, q, k, v, NULL, NULL, 0.5f, B, T, heads, dh, work), MREC_OK, "attention entry");
    t_check(bytes > 0 && !memcmp(ar, ao, sizeof ao), "attention entry = attention_cpu");
    t_status(mrec_attention(ctx, ao, q, k, v, NULL, NULL, 0.5f, B, T, heads, dh, NULL), MREC_ERR_ARG, "attention without workspace");
    free(work);
    /* A^T X on the CPU needs no kept transpose */
    int64_t rp[4] = {0, 2, 3, 4};
    int32_t col[4] = {0, 1, 1, 0};
    float val[4] = {1, 2, 3, 4}, X[3 * 2] = {1, 2, 3, 4, 5, 6}, out[2 * 2], ref[2 * 2];
    mrec_csr A = {3, 2, rp, col, val, MREC_DEVICE_CPU, NULL};
    mrec_spmm_t_ref(ref, rp, col, val, X, 3, 2, 2);
    t_status(mrec_spmm(ctx, out, &A, X, 2, 1), MREC_OK, "spmm entry, transposed");
    t_allclose("spmm entry transposed = the reference", ref, out, 4, 0, 0);
    t_status(mrec_dropout(ctx, got, x, 1.0f, 1, 0, N), MREC_ERR_ARG, "dropout with p = 1 is refused");
}

/* A graph's body on a CPU context: it runs, and a copy between host and device inside it is refused as a GPU's
 * capture refuses it (a captured copy would replay its first source), with every kind of copy; so is an op that
 * waits for a GPU (the ids' check of an embedding or an index read back, an event's wait), where the checked forms
 * run; outside, copies work. */
typedef struct {
    int kind, ran;
    float src[4], dst[4];
    int64_t ptr[5];
    int32_t ids[2], pos[2];
    mrec_event *ev;
} copy_body_arg;

static mrec_status copy_body(mrec_context *ctx, void *arg) {
    copy_body_arg *a = arg;
    a->ran = 1;
    switch (a->kind) {
    case 0: return MREC_OK;
    case 1: return mrec_copy_to_device(ctx, a->dst, a->src, sizeof a->src);
    case 2: return mrec_copy_to_host(ctx, a->dst, a->src, sizeof a->src);
    case 3: return mrec_copy_to_device_staged(ctx, a->dst, a->src, sizeof a->src);
    case 4: return mrec_copy_to_device_async(ctx, a->dst, a->src, sizeof a->src, MREC_STREAM_COMPUTE);
    case 5: return mrec_copy_to_host_async(ctx, a->dst, a->src, sizeof a->src, MREC_STREAM_COMPUTE);
    case 6: return mrec_embedding(ctx, a->dst, a->src, a->ids, 2, 2, 2);
    case 7: return mrec_index_csr(ctx, a->ptr, a->pos, a->ids, 2, 4, NULL, 0);
    case 8: return mrec_event_sync(ctx, a->ev);
    default: { /* the forms that read nothing back */
        mrec_status st = mrec_embedding_checked(ctx, a->dst, a->src, a->ids, 2, 2, 2);
        return st ? st : mrec_index_csr_prechecked(ctx, a->ptr, a->pos, a->ids, 2, 4, NULL, 0);
    }
    }
}

static void test_graph_body(mrec_context *ctx) {
    int key = 1;
    mrec_event *ev = NULL;
    t_status(mrec_event_create(ctx, &ev), MREC_OK, "an event");
    for (int kind = 0; kind < 10; kind++) {
        copy_body_arg a = {.kind = kind, .src = {1, 2, 3, 4}, .ids = {1, 0}, .ev = ev};
        mrec_status st = mrec_graph_run(ctx, &key, sizeof key, copy_body, &a);
        if (kind == 0) t_check(st == MREC_OK && a.ran, "a graph's body runs on the CPU");
        else if (kind == 9)
            t_check(st == MREC_OK && a.dst[0] == 3 && a.ptr[4] == 2, "the checked embedding and the prechecked index run in a graph's "
                    "body: %s", st ? mrec_error_detail() : "");
        else
            t_check(st == MREC_ERR_DEVICE && strstr(mrec_error_detail(), "inside a graph's body") && a.dst[0] == 0 && a.ptr[1] == 0,
                    "a copy or a wait inside a graph's body is refused on the CPU (kind %d): %s", kind, mrec_error_detail());
    }
    mrec_event_destroy(ctx, ev);
    copy_body_arg a = {.src = {1, 2, 3, 4}};
    t_check(ctx->in_graph == 0 && mrec_copy_to_device(ctx, a.dst, a.src, sizeof a.src) == MREC_OK && a.dst[3] == 4,
            "after the body, copies work again");
}

int main(void) {
    t_suite("ops");
    test_context();
    test_arena();
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    o.n_threads = 2;
    mrec_context *ctx;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_graph_body(ctx);
    t_status(mrec_context_reserve(ctx, 1000), MREC_OK, "reserve a workspace");
    t_check(ctx->workspace.capacity >= 1000 && ctx->workspace.device == MREC_DEVICE_CPU, "workspace on the cpu");
    t_status(mrec_context_reserve(ctx, 500), MREC_OK, "a smaller reserve keeps the workspace");
    t_check(ctx->workspace.capacity >= 1000, "kept");
    test_linear(ctx);
    test_tensor_ops(ctx);
    test_more_ops(ctx);
    test_entries(ctx);
    mrec_context_destroy(ctx);
    test_cuda_gemm();
    return t_finish();
}
