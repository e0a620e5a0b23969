/* test_pool.cpp: kernels/cuda/ops.cu's NCHW batchnorm and pooling on the emulator against their CPU twins
 * (kernels/cpu/conv.c): batchnorm_kernel against mrec_batchnorm_cpu within tests/test_cuda.c's 1e-6 + 1e-5 |ref|
 * (rsqrtf and another order of the operations); pool2d_kernel as max pooling against mrec_maxpool2d_cpu bit for
 * bit, NaN propagated (both of the CPU's forms: its row copies and, for rows over 2048 wide, the plain loop), and as
 * average pooling, count_include_pad 0 and 1, against mrec_avgpool2d_cpu within tests/test_cuda.c's 1e-6 + 1e-6
 * |ref|. Shapes: 1, primes, around the block (256 threads) and the vector widths, padding, strides and windows
 * larger than the stride, a window of the whole image, and the sizes of a ResNet's stem; every case under two
 * schedules that must agree, and a window that does not fit refused. */
#include "emu_test.h"
#include <string>

static mrec_pool *pool;

static void batchnorm(int N, int C, int HW) {
    size_t n = (size_t)N * C * HW;
    float *x = frnd(n, -2, 2), *out = frnd(n, 0, 1), *g = frnd(C, 0.5f, 2), *b = frnd(C, -1, 1), *mu = frnd(C, -1, 1), *var = frnd(C, 0.01f, 2);
    std::vector<float> ref(n);
    mrec_batchnorm_cpu(ref.data(), x, g, b, mu, var, 1e-5f, N, C, HW, pool);
    char what[96];
    snprintf(what, sizeof what, "batchnorm N %d C %d HW %d", N, C, HW);
    if (under_schedules(what, 2, out, 4 * n, [&] { return mrec_batchnorm_cuda(out, x, g, b, mu, var, 1e-5f, N, C, HW, make_cu()); }))
        t_allclose(what, ref.data(), out, (int64_t)n, 1e-6, 1e-5);
    free(x), free(out), free(g), free(b), free(mu), free(var);
}

/* max pooling with NaN and -inf among the inputs (bits), then average pooling on finite ones (tolerance) */
static void pool2d(mrec_pool2d_shape s) {
    int Ho = mrec_pool2d_out_h(&s), Wo = mrec_pool2d_out_w(&s);
    size_t ni = (size_t)s.N * s.C * s.H * s.W, no = (size_t)s.N * s.C * Ho * Wo;
    float *in = frnd(ni, -3, 3), *out = frnd(no, 0, 1);
    std::vector<float> ref(no);
    for (size_t i = 0; i < ni; i++) {
        uint64_t r = rand_u64() % 97;
        if (r == 0) in[i] = NAN;
        else if (r == 1) in[i] = -INFINITY;
    }
    if (ni > 2) in[ni / 2] = NAN, in[ni / 2 + 1] = -NAN; /* NaNs of both signs side by side */
    char what[160];
    snprintf(what, sizeof what, "N %d C %d %dx%d k %dx%d s %dx%d p %dx%d (out %dx%d)", s.N, s.C, s.H, s.W, s.KH, s.KW, s.stride_h, s.stride_w,
             s.pad_h, s.pad_w, Ho, Wo);
    std::string base = what;
    mrec_maxpool2d_cpu(ref.data(), in, &s, pool);
    snprintf(what, sizeof what, "maxpool2d %s", base.c_str());
    if (under_schedules(what, 2, out, 4 * no, [&] { return mrec_maxpool2d_cuda(out, in, &s, make_cu()); }))
        same_floats(what, out, ref.data(), no);
    for (size_t i = 0; i < ni; i++)
        if (!isfinite(in[i])) in[i] = urand(-3, 3);
    for (int cip = 0; cip < 2; cip++) {
        s.count_include_pad = cip;
        mrec_avgpool2d_cpu(ref.data(), in, &s, pool);
        snprintf(what, sizeof what, "avgpool2d %s count_include_pad %d", base.c_str(), cip);
        if (under_schedules(what, 2, out, 4 * no, [&] { return mrec_avgpool2d_cuda(out, in, &s, make_cu()); }))
            t_allclose(what, ref.data(), out, (int64_t)no, 1e-6, 1e-6);
    }
    free(in), free(out);
}

int main(int argc, char **argv) {
    t_suite("emu_pool");
    mrec_pool_create(&pool, 1, MREC_SIMD_SCALAR);
    /* N, C, H, W, KH, KW, stride_h, stride_w, pad_h, pad_w, count_include_pad (set per case) */
    static const mrec_pool2d_shape quick[] = {{2, 5, 13, 11, 3, 3, 2, 2, 1, 1, 1}, {1, 4, 6, 9, 2, 3, 2, 1, 1, 1, 0}};
    static const mrec_pool2d_shape shapes[] = {
        {2, 5, 13, 11, 3, 3, 2, 2, 1, 1, 1},  /* tests/test_cuda.c's three */
        {1, 3, 7, 7, 7, 7, 1, 1, 0, 0, 1},    /* the whole image */
        {1, 4, 6, 9, 2, 3, 2, 1, 1, 1, 0},
        {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},    /* one value */
        {3, 1, 5, 1, 2, 1, 1, 1, 1, 0, 1},    /* one column, padding above and below only */
        {1, 7, 17, 31, 3, 3, 1, 1, 1, 1, 1},  /* stride 1, windows overlapping: 3689 outputs */
        {2, 3, 16, 16, 2, 2, 2, 2, 0, 0, 1},  /* 1.5 blocks of outputs, no padding */
        {1, 1, 32, 32, 3, 3, 2, 2, 1, 1, 1},  /* 256 outputs: one block */
        {1, 1, 33, 33, 3, 3, 2, 2, 1, 1, 1},  /* 289: a block and a bit */
        {1, 2, 11, 13, 5, 4, 3, 2, 2, 1, 1},  /* unequal windows, strides and padding */
        {1, 3, 8, 8, 4, 4, 4, 4, 2, 2, 1},    /* padding of half the window */
        {1, 2, 3, 2101, 2, 3, 1, 1, 0, 1, 1}, /* rows over 2048: the CPU's plain loop */
        {1, 64, 112, 112, 3, 3, 2, 2, 1, 1, 1}, /* a ResNet's stem: 64 channels of 112x112 to 56x56 */
    };
    bool q = quick_run(argc, argv);
    for (const mrec_pool2d_shape &s : q ? std::vector<mrec_pool2d_shape>(quick, quick + 2)
                                        : std::vector<mrec_pool2d_shape>(shapes, shapes + sizeof shapes / sizeof *shapes))
        pool2d(s);
    batchnorm(2, 7, 33); /* tests/test_cuda.c's */
    if (!q) {
        batchnorm(1, 1, 1), batchnorm(1, 3, 1), batchnorm(3, 1, 257), batchnorm(1, 5, 255), batchnorm(2, 64, 49);
        batchnorm(1, 64, 56 * 56), batchnorm(2, 2048, 7 * 7); /* ResNet's sizes */
    }
    mrec_pool2d_shape bad = {1, 1, 2, 2, 5, 5, 1, 1, 0, 0, 1};
    float x[4] = {0}, y[1];
    emu_reseed(3);
    t_check(mrec_maxpool2d_cuda(y, x, &bad, make_cu()) == MREC_ERR_SHAPE, "pool2d: a window larger than the padded image is refused");
    mrec_pool_destroy(pool);
    return t_finish();
}
