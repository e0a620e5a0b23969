/* test_elementwise.cpp: kernels/cuda/ops.cu's element-wise and row ops on the emulator against their CPU twins:
 * add, mul, scale and fill (map_kernel's float4 path with its tail, and the scalar path for unaligned arrays) bit
 * for bit; the activations (activation4_kernel and activation_kernel) within tests/test_cuda.c's 1e-6 + 1e-6 |ref|
 * (nvcc contracts the GELUs' polynomials); the bf16 activations (activation_bf16x8_kernel and the scalar one)
 * within one bf16 step; the embedding gather (checked and unchecked, an id outside the table named) bit for bit;
 * mean-pool 1e-6 + 1e-5 |ref|, L2-normalize and the masked softmax (the block kernel and each warp kernel)
 * 1e-7 + 1e-5 |ref|, as tests/test_cuda.c. Sizes: 1, primes, around the warp, the block and the vector widths,
 * real ones; every case under two schedules that must agree. */
#include "emu_test.h"

static void maps(int64_t n, int shift) {
    float *a0 = frnd(n + shift, -3, 3), *b0 = frnd(n + shift, -3, 3), *o0 = frnd(n + shift, 0, 1);
    float *a = a0 + shift, *b = b0 + shift, *o = o0 + shift; /* shift 1: the scalar path */
    std::vector<float> ref(n);
    char what[96];
    const char *form = shift ? "unaligned" : n % 4 ? "float4 and a tail" : "float4";
    for (int op = 0; op < 4; op++) {
        static const char *names[] = {"add", "mul", "scale", "fill"};
        if (op == 0) mrec_add_ref(ref.data(), a, b, n);
        else if (op == 1) mrec_mul_ref(ref.data(), a, b, n);
        else if (op == 2) mrec_scale_ref(ref.data(), a, -0.37f, n);
        else mrec_fill_ref(ref.data(), -2.5f, n);
        snprintf(what, sizeof what, "%s n %lld (%s)", names[op], (long long)n, form);
        if (under_schedules(what, 2, o, 4 * n, [&] {
                auto cu = make_cu();
                return op == 0 ? mrec_add_cuda(o, a, b, n, cu) : op == 1 ? mrec_mul_cuda(o, a, b, n, cu)
                                                              : op == 2 ? mrec_scale_cuda(o, a, -0.37f, n, cu) : mrec_fill_cuda(o, -2.5f, n, cu);
            }))
            same_floats(what, o, ref.data(), n);
    }
    for (int act = MREC_ACT_GELU_ERF; act <= MREC_ACT_TANH; act++) {
        mrec_activation_ref(ref.data(), a, (mrec_act)act, 0.2f, n);
        snprintf(what, sizeof what, "activation %d n %lld (%s)", act, (long long)n, shift || n % 4 ? "scalar" : "float4");
        if (under_schedules(what, 2, o, 4 * n, [&] { return mrec_activation_cuda(o, a, (mrec_act)act, 0.2f, n, make_cu()); }))
            t_allclose(what, ref.data(), o, n, 1e-6, 1e-6);
    }
    /* bf16 in place: eight a thread where n % 8 == 0 and x is aligned */
    uint16_t *x0 = (uint16_t *)amalloc(2 * (n + shift)), *x = x0 + shift;
    std::vector<uint16_t> in(n), r16(n);
    for (int64_t i = 0; i < n; i++) in[i] = f2bf(a[i]);
    in[0] = 0x7fc0; /* a NaN */
    static const mrec_act acts[] = {MREC_ACT_GELU_ERF, MREC_ACT_RELU, MREC_ACT_SILU};
    for (mrec_act act : acts) {
        r16 = in;
        mrec_activation_bf16_ref(r16.data(), act, n);
        snprintf(what, sizeof what, "activation_bf16 %d n %lld (%s)", (int)act, (long long)n, shift || n % 8 ? "scalar" : "x8");
        if (!under_schedules(what, 2, x, 2 * n, [&] {
                memcpy(x, in.data(), 2 * n);
                return mrec_activation_bf16_cuda(x, act, n, make_cu());
            }))
            continue;
        double worst = 0; /* tests/test_cuda.c: within one step, floor 1e-6; NaN stays NaN */
        for (int64_t i = 0; i < n; i++) {
            double g = bf2f(x[i]), r = bf2f(r16[i]);
            if (isnan(r) || isnan(g)) worst = isnan(r) && isnan(g) ? worst : INFINITY;
            else worst = fmax(worst, fabs(g - r) / (fabs(r) / 128 + 1e-6));
        }
        t_check(worst <= 1, "%s: %.3g of a step", what, worst);
    }
    free(a0), free(b0), free(o0), free(x0);
}

static void rows(int R, int C) {
    size_t n = (size_t)R * C;
    float *x = frnd(n, -6, 6), *out = frnd(n, 0, 1);
    int rpm = R % 3 == 0 ? 3 : 1, mrows = R / rpm;
    std::vector<float> mask((size_t)mrows * C), ref(n);
    for (size_t i = 0; i < mask.size(); i++) mask[i] = i % 7 == 3 && C > 1 ? -INFINITY : 0.0f;
    if (C > 1 && mrows > 1)
        for (int c = 0; c < C; c++) mask[(size_t)C + c] = -INFINITY; /* a fully masked row: NaN */
    char what[96];
    const char *form = C > 1024 ? "block" : "warp";
    for (int masked = 0; masked < 2; masked++) {
        const float *m = masked ? mask.data() : NULL;
        mrec_softmax_rows_ref(ref.data(), x, m, R, C, rpm);
        snprintf(what, sizeof what, "softmax_rows %d x %d%s (%s)", R, C, masked ? " masked" : "", form);
        if (under_schedules(what, 2, out, 4 * n, [&] { return mrec_softmax_rows_cuda(out, x, m, R, C, rpm, make_cu()); }))
            t_allclose(what, ref.data(), out, (int64_t)n, 1e-7, 1e-5);
    }
    if (R > 2)
        for (int c = 0; c < C; c++) x[(size_t)2 * C + c] = 0.0f; /* a zero row: the eps floor */
    mrec_l2_normalize_rows_ref(ref.data(), x, 1e-12f, R, C);
    snprintf(what, sizeof what, "l2_normalize_rows %d x %d", R, C);
    if (under_schedules(what, 2, out, 4 * n, [&] { return mrec_l2_normalize_rows_cuda(out, x, 1e-12f, R, C, make_cu()); }))
        t_allclose(what, ref.data(), out, (int64_t)n, 1e-7, 1e-5);
    free(x), free(out);
}

static void gathers(int N, int V, int D) {
    float *table = frnd((size_t)V * D, -1, 1), *out = frnd((size_t)N * D, 0, 1);
    std::vector<int32_t> ids(N);
    for (auto &i : ids) i = (int32_t)(rand_u64() % V);
    std::vector<float> ref((size_t)N * D);
    mrec_embedding_ref(ref.data(), table, ids.data(), N, V, D);
    char what[96];
    for (int checked = 0; checked < 2; checked++) {
        snprintf(what, sizeof what, "embedding%s N %d V %d D %d", checked ? "_checked" : "", N, V, D);
        if (under_schedules(what, 2, out, 4 * (size_t)N * D, [&] {
                memset(out, 0, 4 * (size_t)N * D);
                return checked ? mrec_embedding_checked_cuda(out, table, ids.data(), N, V, D, make_cu())
                               : mrec_embedding_cuda(out, table, ids.data(), N, V, D, make_cu());
            }))
            same_floats(what, out, ref.data(), (size_t)N * D);
    }
    if (N > 3) { /* the lowest bad position named; other rows still written */
        ids[N - 1] = -1, ids[N / 2] = V;
        snprintf(what, sizeof what, "embedding N %d V %d D %d: ids outside the table", N, V, D);
        if (under_schedules(what, 2, out, 4 * (size_t)N * D, [&] {
                memset(out, 0, 4 * (size_t)N * D);
                return mrec_embedding_cuda(out, table, ids.data(), N, V, D, make_cu());
            }, MREC_ERR_ARG)) {
            char want[64];
            snprintf(want, sizeof want, "position %d ", N / 2);
            t_check(strstr(mrec_error_detail(), want) != NULL, "%s: the error names %s(%s)", what, want, mrec_error_detail());
        }
    }
    free(table), free(out);
}

static void mean_pool(int B, int T, int D) {
    float *in = frnd((size_t)B * T * D, -2, 2), *out = frnd((size_t)B * D, 0, 1);
    std::vector<int32_t> mask((size_t)B * T);
    for (int i = 0; i < B * T; i++) mask[i] = B > 2 && i / T == 2 ? 0 : (int)(i % T < 1 + T * 2 / 3);
    std::vector<float> ref((size_t)B * D);
    char what[96];
    for (int masked = 0; masked < 2; masked++) {
        const int32_t *m = masked ? mask.data() : NULL;
        mrec_mean_pool_ref(ref.data(), in, m, B, T, D);
        snprintf(what, sizeof what, "mean_pool B %d T %d D %d%s", B, T, D, masked ? " masked" : "");
        if (under_schedules(what, 2, out, 4 * (size_t)B * D, [&] { return mrec_mean_pool_cuda(out, in, m, B, T, D, make_cu()); }))
            t_allclose(what, ref.data(), out, (int64_t)B * D, 1e-6, 1e-5);
    }
    free(in), free(out);
}

int main(int argc, char **argv) {
    t_suite("emu_elementwise");
    if (quick_run(argc, argv)) {
        maps(1001, 0), maps(1000, 0), maps(1000, 1), rows(7, 33), rows(3, 1031), gathers(37, 50, 33), mean_pool(3, 13, 37);
        return t_finish();
    }
    int64_t ns[] = {1, 3, 4, 8, 31, 32, 33, 255, 256, 257, 1001, 8000};
    for (int64_t n : ns) maps(n, 0), maps(n, 1);
    maps(4099, 0);
    int rc[][2] = {{1, 1}, {3, 31}, {7, 33}, {3, 64}, {4, 100}, {5, 255}, {2, 257}, {6, 197}, {4, 768}, {3, 1024}, {3, 1031}, {2, 3072}};
    for (auto &s : rc) rows(s[0], s[1]);
    gathers(1, 1, 1), gathers(37, 50, 33), gathers(13, 7, 256), gathers(5, 9, 300), gathers(9, 100, 768);
    mean_pool(1, 1, 1), mean_pool(3, 13, 37), mean_pool(4, 7, 300);
    return t_finish();
}
