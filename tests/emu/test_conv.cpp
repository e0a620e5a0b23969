/* test_conv.cpp: kernels/cuda/conv.cu's channels-last helpers on the emulator, each against its reference's
 * bits (tests/test_cuda.c requires the same): nchw3_to_nhwc8_bf16 / nchw_to_nhwc_bf16 (the layout change),
 * maxpool_nhwc8 / maxpool_nhwc (NaN and -inf inputs), mean_hw_nhwc. The convolutions themselves are cuDNN's and
 * cuBLASLt's, not emulated. */
#include "emu_test.h"

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

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    t_suite("emu_conv");
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
