/* test_conv.cpp: kernels/cuda/conv.cu's channels-last helpers on the emulator, each against its reference's
 * bits (tests/test_cuda.c requires the same): nchw3_to_nhwc8_bf16 / nchw_to_nhwc_bf16 (the layout change),
 * maxpool_nhwc8 / maxpool_nhwc (NaN and -inf inputs), mean_hw_nhwc. The convolutions themselves are cuDNN's and
 * cuBLASLt's, not emulated; the static kernels around them, through tests/emu/statics.h's launchers, against
 * plain loops here: im2col_nhwc8 (a chunk of output pixels' windows, zeros outside the image) and bias_act_nhwc8 /
 * bias_act_nhwc (bias, ReLU, rounded to bf16 again) bit for bit, bias_act4 / bias_act (NCHW) bit for bit without an
 * activation or with ReLU, within tests/test_cuda.c's 1e-6 + 1e-6 |ref| with GELU and swish (libm, contraction). */
#include "emu_test.h"
#include "statics.h"

/* the same bits; NaN meets any NaN */
static bool same16(const uint16_t *a, const uint16_t *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        bool na = (a[i] & 0x7fff) > 0x7f80, nb = (b[i] & 0x7fff) > 0x7f80;
        if (na != nb || (!na && a[i] != b[i])) {
            fprintf(stderr, "  first difference at %zu: got %04x, reference %04x\n", i, a[i], b[i]);
            return false;
        }
    }
    return true;
}

/* the windows of output pixels [r0, r0 + m) of the channels-last input, zeros outside it, in chunks as the conv
 * takes them */
static void im2col(mrec_conv2d_shape s, int chunk) {
    int Ho = mrec_conv2d_out_h(&s), Wo = mrec_conv2d_out_w(&s), K = s.KH * s.KW * s.C_in;
    int64_t rows = (int64_t)s.N * Ho * Wo;
    size_t ni = (size_t)s.N * s.H * s.W * s.C_in;
    uint16_t *in = (uint16_t *)amalloc(2 * ni), *got = (uint16_t *)amalloc(2 * (size_t)chunk * K);
    for (size_t i = 0; i < ni; i++) in[i] = f2bf(urand(-3, 3));
    std::vector<uint16_t> ref((size_t)chunk * K);
    char what[128];
    bool ok = true;
    for (int64_t r0 = 0; r0 < rows && ok; r0 += chunk) {
        int m = (int)(rows - r0 < chunk ? rows - r0 : chunk);
        for (int q = 0; q < m; q++) {
            int64_t r = r0 + q, img = r / ((int64_t)Ho * Wo);
            int oh = (int)(r / Wo % Ho), ow = (int)(r % Wo);
            for (int kh = 0; kh < s.KH; kh++)
                for (int kw = 0; kw < s.KW; kw++)
                    for (int c = 0; c < s.C_in; c++) {
                        int ih = oh * s.stride_h - s.pad_h + kh, iw = ow * s.stride_w - s.pad_w + kw;
                        bool inside = ih >= 0 && ih < s.H && iw >= 0 && iw < s.W;
                        ref[(size_t)q * K + ((size_t)kh * s.KW + kw) * s.C_in + c] = inside ? in[((img * s.H + ih) * s.W + iw) * s.C_in + c] : 0;
                    }
        }
        snprintf(what, sizeof what, "im2col_nhwc8 N %d C_in %d %dx%d k %dx%d s %d p %d, pixels %lld.. (%d)", s.N, s.C_in, s.H, s.W, s.KH, s.KW,
                 s.stride_h, s.pad_h, (long long)r0, m);
        ok = under_schedules(what, 2, got, 2 * (size_t)m * K, [&] { return emu_im2col_nhwc8(got, in, &s, r0, m, make_cu()); }) &&
             t_check(!memcmp(got, ref.data(), 2 * (size_t)m * K), "%s: the windows' bits", what);
    }
    free(in), free(got);
}

static void bias_acts(int N, int C, int HW) {
    size_t n = (size_t)N * C * HW;
    float *bias = (float *)amalloc(4 * C), *out = (float *)amalloc(4 * (n + 4));
    std::vector<float> x(n), ref(n);
    for (int c = 0; c < C; c++) bias[c] = urand(-1, 1);
    for (auto &v : x) v = urand(-3, 3);
    char what[96];
    int acts[] = {MREC_GEMM_NO_ACT, MREC_ACT_RELU, MREC_ACT_GELU_ERF, MREC_ACT_SILU};
    for (int with_bias = 0; with_bias < 2; with_bias++)
        for (int a : acts) {
            const float *b = with_bias ? bias : NULL;
            for (size_t i = 0; i < n; i++) ref[i] = x[i] + (b ? b[i / HW % C] : 0.0f);
            if (a != MREC_GEMM_NO_ACT) mrec_activation_ref(ref.data(), ref.data(), (mrec_act)a, 0.0f, (int64_t)n);
            snprintf(what, sizeof what, "bias_act%s N %d C %d HW %d bias %d act %d", HW % 4 ? "" : "4", N, C, HW, with_bias, a);
            if (!under_schedules(what, 2, out, 4 * n, [&] {
                    memcpy(out, x.data(), 4 * n);
                    return emu_bias_act_nchw(out, b, a, C, HW, (int64_t)n, make_cu());
                }))
                continue;
            if (a == MREC_GEMM_NO_ACT || a == MREC_ACT_RELU) t_check(!memcmp(out, ref.data(), 4 * n), "%s: the bits", what);
            else t_allclose(what, ref.data(), out, (int64_t)n, 1e-6, 1e-6);
        }
    /* channels-last bf16: (N * HW pixels, C) */
    uint16_t *o16 = (uint16_t *)amalloc(2 * (n + 8));
    std::vector<uint16_t> x16(n), r16(n);
    for (size_t i = 0; i < n; i++) x16[i] = f2bf(x[i]);
    x16[0] = 0x7fc0;
    for (int with_bias = 0; with_bias < 2; with_bias++)
        for (int relu = 0; relu < 2; relu++) {
            const float *b = with_bias ? bias : NULL;
            for (size_t i = 0; i < n; i++) {
                float v = bf2f(x16[i]) + (b ? b[i % C] : 0.0f);
                r16[i] = f2bf(relu ? (v > 0.0f ? v : 0.0f) : v);
            }
            snprintf(what, sizeof what, "bias_act_nhwc%s pixels %d C %d bias %d relu %d", C % 8 ? "" : "8", N * HW, C, with_bias, relu);
            if (under_schedules(what, 2, o16, 2 * n, [&] {
                    memcpy(o16, x16.data(), 2 * n);
                    return emu_bias_act_nhwc(o16, b, relu, C, (int64_t)n, make_cu());
                }))
                t_check(same16(o16, r16.data(), n), "%s: the bits", what);
        }
    free(bias), free(out), free(o16);
}

int main(int argc, char **argv) {
    t_suite("emu_conv");
    int quick = quick_run(argc, argv);
    /* N, C_in, H, W, C_out, KH, KW, stride h, w, pad h, w, groups */
    mrec_conv2d_shape cs[] = {{2, 8, 7, 9, 16, 3, 3, 1, 1, 1, 1, 1}, {1, 16, 11, 10, 8, 3, 3, 2, 2, 1, 1, 1}, {1, 8, 17, 17, 8, 7, 7, 2, 2, 3, 3, 1},
                              {2, 24, 5, 5, 8, 5, 5, 1, 1, 2, 2, 1}, {1, 8, 1, 1, 8, 1, 1, 1, 1, 0, 0, 1}};
    for (int i = 0; i < (quick ? 2 : 5); i++) im2col(cs[i], i == 1 ? 1000 : 37);
    bias_acts(2, 8, 36), bias_acts(1, 3, 37);
    if (!quick) bias_acts(1, 1, 1), bias_acts(3, 64, 49), bias_acts(2, 5, 256), bias_acts(1, 256, 4);
    int shapes[][4] = {{2, 3, 37, 8}, {3, 3, 224 * 7, 8}, {2, 5, 33, 8}, {1, 3, 10, 3}}; /* N, C, HW, C_pad */
    for (auto &sh : shapes) {
        int N = sh[0], C = sh[1], HW = sh[2], Cp = sh[3];
        float *in = (float *)malloc(4 * (size_t)N * C * HW);
        for (int i = 0; i < N * C * HW; i++) in[i] = urand(-3, 3);
        in[0] = NAN;
        uint16_t *ref = (uint16_t *)malloc(2 * (size_t)N * HW * Cp), *got = (uint16_t *)amalloc(2 * (size_t)N * HW * Cp);
        mrec_nhwc_bf16_from_nchw_ref(ref, in, N, C, HW, Cp);
        int e0 = emu_errors;
        mrec_status st = mrec_nhwc_bf16_from_nchw_cuda(got, in, N, C, HW, Cp, make_cu());
        t_check(st == MREC_OK && emu_errors == e0 && same16(got, ref, (size_t)N * HW * Cp), "nhwc_bf16_from_nchw N %d C %d HW %d C_pad %d (%s): the reference's bits",
                N, C, HW, Cp, C == 3 && Cp == 8 ? "nchw3_to_nhwc8" : "scalar");
        free(in), free(ref), free(got);
    }
    /* N, C, H, W, KH, KW, stride h, w, pad h, w, dilation */
    mrec_pool2d_shape ps[] = {{2, 64, 13, 11, 3, 3, 2, 2, 1, 1, 1}, {1, 16, 7, 7, 2, 2, 2, 2, 0, 0, 1}, {2, 12, 9, 8, 3, 3, 2, 2, 1, 1, 1},
                              {1, 8, 5, 5, 3, 3, 1, 1, 1, 1, 1}};
    for (auto &p : ps) {
        int Ho = mrec_pool2d_out_h(&p), Wo = mrec_pool2d_out_w(&p);
        size_t ni = (size_t)p.N * p.H * p.W * p.C, no = (size_t)p.N * Ho * Wo * p.C;
        uint16_t *in = (uint16_t *)amalloc(2 * ni), *ref = (uint16_t *)malloc(2 * no), *got = (uint16_t *)amalloc(2 * no);
        for (size_t i = 0; i < ni; i++) in[i] = f2bf(urand(-3, 3));
        in[5] = 0x7fc0, in[ni - 1] = 0xff80; /* a NaN, a -inf */
        mrec_maxpool2d_nhwc_bf16_ref(ref, in, &p);
        int e0 = emu_errors;
        mrec_status st = mrec_maxpool2d_nhwc_bf16_cuda(got, in, &p, make_cu());
        t_check(st == MREC_OK && emu_errors == e0 && same16(got, ref, no), "maxpool2d_nhwc_bf16 N %d C %d %dx%d k%d s%d p%d (%s): the reference's bits",
                p.N, p.C, p.H, p.W, p.KH, p.stride_h, p.pad_h, p.C % 8 == 0 ? "maxpool_nhwc8" : "scalar");
        int HW = p.H * p.W;
        float *mr = (float *)malloc(4 * p.N * p.C), *mg = (float *)malloc(4 * p.N * p.C);
        in[5] = f2bf(1.0f);
        mrec_mean_hw_nhwc_bf16_ref(mr, in, p.N, HW, p.C);
        e0 = emu_errors;
        st = mrec_mean_hw_nhwc_bf16_cuda(mg, in, p.N, HW, p.C, make_cu());
        t_check(st == MREC_OK && emu_errors == e0 && !memcmp(mr, mg, 4 * p.N * p.C), "mean_hw_nhwc_bf16 N %d HW %d C %d: the reference's bits", p.N, HW, p.C);
        free(in), free(ref), free(got), free(mr), free(mg);
    }
    return t_finish();
}
