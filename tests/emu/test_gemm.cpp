/* test_gemm.cpp: kernels/cuda/gemm.cu's own kernels on the emulator (its products are cuBLAS's, not run here),
 * through the launchers of tests/emu/statics.h: f32_to_bf16 and f32_to_bf16_4 (mrec_f32_to_bf16_cuda, and with an
 * activation before the rounding) against the bits of a rounding to nearest even; f32_to_bf16_rows (a strided operand's rows
 * packed, row strides past the width) against a plain loop's bits; add_bias_rows (SGEMM's bias) bit for bit;
 * linear_bf16_plain (the bf16 product where cuBLASLt has no algorithm) against mrec_linear_bf16_ref with
 * tests/test_cuda.c's bounds: fp32 out 1e-4 + 1e-4 |ref|, bf16 out one step plus the roundings the two sides may
 * place differently. Each case under two schedules that must agree. */
#include "emu_test.h"
#include "statics.h"
#include <algorithm>

/* the same bf16 bits, NaN meeting any NaN (the GPU's rounding gives its canonical one) */
static bool same16(const char *what, const uint16_t *got, const uint16_t *ref, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (got[i] != ref[i] && !((got[i] & 0x7fff) > 0x7f80 && (ref[i] & 0x7fff) > 0x7f80)) return t_check(false, "%s: at %zu got %04x, reference %04x", what, i, got[i], ref[i]);
    return t_check(true, "%s", what);
}

/* n values, in at a 16-byte boundary or not (shift), each activation or none */
static void converts(int64_t n, int shift) {
    float *in0 = frnd(n + shift, -4, 4), *in = in0 + shift;
    in[0] = NAN;
    if (n > 2) in[1] = INFINITY, in[2] = 1.00390625f; /* a tie: to even */
    uint16_t *out0 = (uint16_t *)amalloc(2 * (n + (shift ? 4 : 0))), *out = out0 + (shift ? 4 : 0); /* 8-byte aligned either way */
    std::vector<uint16_t> ref(n);
    std::vector<float> act(n);
    char what[96];
    int acts[] = {MREC_GEMM_NO_ACT, MREC_ACT_GELU_ERF, MREC_ACT_RELU};
    for (int a : acts) {
        if (a == MREC_GEMM_NO_ACT) memcpy(act.data(), in, 4 * n);
        else mrec_activation_ref(act.data(), in, (mrec_act)a, 0.0f, n);
        for (int64_t i = 0; i < n; i++) ref[i] = f2bf(act[i]);
        snprintf(what, sizeof what, "f32_to_bf16%s n %lld act %d", !shift && n % 4 == 0 ? "_4" : "", (long long)n, a);
        if (!under_schedules(what, 2, out, 2 * n, [&] {
                return a == MREC_GEMM_NO_ACT ? mrec_f32_to_bf16_cuda(out, in, n, make_cu()) : emu_convert_bf16(out, in, a, n, make_cu());
            }))
            continue;
        if (a == MREC_GEMM_NO_ACT || a == MREC_ACT_RELU) { /* no libm in between: the bits */
            same16(what, out, ref.data(), n);
            continue;
        }
        double worst = 0; /* GELU: tests/test_cuda.c's 1e-6 + 1e-6 before the rounding, so a neighbour at most */
        for (int64_t i = 0; i < n; i++) worst = fmax(worst, isnan(act[i]) ? (out[i] & 0x7fff) > 0x7f80 ? 0 : INFINITY : abs((int)out[i] - (int)ref[i]));
        t_check(worst <= 1, "%s: %g bf16 steps from the reference", what, worst);
    }
    free(in0), free(out0);
}

static void pack_rows(int rows, int cols, int ld) {
    float *in = frnd((size_t)rows * ld, -3, 3);
    uint16_t *out = (uint16_t *)amalloc(2 * (size_t)rows * cols);
    std::vector<uint16_t> ref((size_t)rows * cols);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) ref[(size_t)r * cols + c] = f2bf(in[(size_t)r * ld + c]);
    char what[96];
    snprintf(what, sizeof what, "f32_to_bf16_rows %d x %d, stride %d", rows, cols, ld);
    if (under_schedules(what, 2, out, 2 * ref.size(), [&] { return emu_pack_bf16(out, in, rows, cols, ld, make_cu()); }))
        same16(what, out, ref.data(), ref.size());
    free(in), free(out);
}

static void bias_rows(int M, int N, int ldc) {
    float *C = frnd((size_t)M * ldc, -1, 1), *bias = frnd(N, -1, 1);
    std::vector<float> c0(C, C + (size_t)M * ldc), ref = c0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) ref[(size_t)i * ldc + j] += bias[j];
    char what[96];
    snprintf(what, sizeof what, "add_bias_rows %d x %d, ldc %d", M, N, ldc);
    if (under_schedules(what, 2, C, 4 * c0.size(), [&] {
            memcpy(C, c0.data(), 4 * c0.size());
            return emu_add_bias_rows(C, bias, M, N, ldc, make_cu());
        }))
        same_floats(what, C, ref.data(), ref.size());
    free(C), free(bias);
}

static void linear_plain(int M, int N, int K, int ldc) {
    std::vector<uint16_t> A((size_t)M * K), W16((size_t)N * K), b16(N);
    float *W = frnd((size_t)N * K, -0.1f, 0.1f), *bias = frnd(N, -1, 1), *prev = frnd((size_t)M * ldc, -1, 1);
    for (auto &a : A) a = f2bf(urand(-1, 1));
    for (size_t i = 0; i < W16.size(); i++) W16[i] = f2bf(W[i]);
    for (int j = 0; j < N; j++) b16[j] = f2bf(bias[j]);
    size_t nc = (size_t)M * ldc;
    std::vector<float> ref(nc), got(nc), pre(nc);
    char what[128];
    for (int beta = 0; beta <= 1; beta++) {
        ref.assign(prev, prev + nc);
        mrec_linear_bf16_ref(ref.data(), 0, A.data(), W, bias, MREC_GEMM_NO_ACT, (float)beta, M, N, K, ldc);
        snprintf(what, sizeof what, "linear_bf16_plain %dx%dx%d ldc %d, fp32 out, beta %d", M, N, K, ldc, beta);
        if (under_schedules(what, 2, got.data(), 4 * nc, [&] {
                got.assign(prev, prev + nc);
                return emu_linear_bf16_plain(got.data(), 0, A.data(), W16.data(), bias, NULL, MREC_GEMM_NO_ACT, (float)beta, M, N, K, ldc, make_cu());
            }))
            t_allclose(what, ref.data(), got.data(), (int64_t)nc, 1e-4, 1e-4); /* the columns past N: untouched, exactly */
    }
    std::fill(pre.begin(), pre.end(), 0.0f);
    mrec_linear_bf16_ref(pre.data(), 0, A.data(), W, NULL, MREC_GEMM_NO_ACT, 0.0f, M, N, K, ldc); /* the product before its bias */
    double scale = 0;
    for (float p : pre) scale = fmax(scale, fabs(p));
    std::vector<uint16_t> r16(nc), g16(nc), start(nc);
    for (auto &s : start) s = f2bf(urand(-1, 1));
    int acts[] = {MREC_GEMM_NO_ACT, MREC_ACT_GELU_ERF, MREC_ACT_RELU, MREC_ACT_QUICK_GELU};
    for (int a : acts) {
        r16 = start;
        mrec_linear_bf16_ref(r16.data(), 1, A.data(), W, bias, a, 0.0f, M, N, K, ldc);
        snprintf(what, sizeof what, "linear_bf16_plain %dx%dx%d ldc %d, bf16 out, act %d", M, N, K, ldc, a);
        if (!under_schedules(what, 2, g16.data(), 2 * nc, [&] {
                g16 = start;
                return emu_linear_bf16_plain(g16.data(), 1, A.data(), W16.data(), NULL, b16.data(), a, 0.0f, M, N, K, ldc, make_cu());
            }))
            continue;
        /* tests/test_cuda.c's bound: a step, a rounding of the product (and before an activation of the sum, through
         * its slope), a floor of a few fp32 ulps of the largest sum; past N the bits left as they were */
        double worst = 0;
        bool kept = true;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < ldc; j++) {
                size_t e = (size_t)i * ldc + j;
                if (j >= N) {
                    kept &= g16[e] == start[e];
                    continue;
                }
                double x = bf2f(g16[e]), y = bf2f(r16[e]), p = fabs(pre[e]), s = pre[e] + bf2f(b16[j]);
                double extra = a == MREC_GEMM_NO_ACT ? p : 1.13 * (p + 2 * fabs(s));
                worst = fmax(worst, fabs(x - y) / (fabs(y) / 128 + extra / 256 + scale / 4096));
            }
        t_check(worst <= 1 && kept, "%s: %.3g of the bound%s", what, worst, kept ? "" : "; columns past N overwritten");
    }
    free(W), free(bias), free(prev);
}

int main(int argc, char **argv) {
    t_suite("emu_gemm");
    int quick = quick_run(argc, argv);
    converts(1001, 0), converts(1000, 0), converts(1000, 1);
    pack_rows(7, 33, 40), bias_rows(7, 33, 40), linear_plain(5, 7, 33, 9);
    if (quick) return t_finish();
    int64_t ns[] = {1, 3, 4, 8, 255, 256, 257, 1028, 4096};
    for (int64_t n : ns) converts(n, 0), converts(n, 1);
    int pr[][3] = {{1, 1, 1}, {2, 1, 2}, {3, 5, 8}, {33, 31, 32}, {9, 257, 300}, {64, 768, 2304}, {2, 1000, 1001}};
    for (auto &p : pr) pack_rows(p[0], p[1], p[2]);
    int br[][3] = {{1, 1, 1}, {3, 255, 255}, {17, 31, 64}, {5, 257, 300}, {4, 768, 768}};
    for (auto &b : br) bias_rows(b[0], b[1], b[2]);
    int lp[][4] = {{1, 1, 1, 1}, {3, 31, 7, 33}, {33, 9, 100, 9}, {2, 257, 64, 260}, {4, 64, 768, 65}};
    for (auto &l : lp) linear_plain(l[0], l[1], l[2], l[3]);
    return t_finish();
}
