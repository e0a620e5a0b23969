/* bench_depthwise.c: the depthwise convolutions of ALIGN's EfficientNet-B7
 * tower (kakaobrain/align-base at 289 x 289, one image) through the direct
 * kernel (mrec_depthwise_conv2d_cpu) and through the grouped convolution as a GEMM
 * path (mrec_conv2d_cpu with groups = C, on the input padded beforehand),
 * on the same pool. Each shape is validated against the reference first,
 * then timed as the best of 5 runs after a warm-up; GB/s counts one read of
 * the input and one write of the output.
 *
 *   build/cpu/bench/bench_depthwise [threads]
 */
#include "../kernels/mrec_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    mrec_pool *pool;
    if (mrec_pool_create(&pool, threads, mrec_simd_detect())) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    /* the first depthwise conv of each stage that differs: channels, map, kernel, stride, pads */
    static const mrec_depthwise_shape cases[] = {
        {1, 64, 144, 144, 3, 3, 1, 1, 1, 1, 1, 1},  {1, 192, 144, 144, 3, 3, 2, 2, 0, 1, 0, 1},
        {1, 288, 72, 72, 5, 5, 2, 2, 1, 2, 1, 2},   {1, 480, 36, 36, 3, 3, 2, 2, 0, 1, 0, 1},
        {1, 960, 18, 18, 5, 5, 1, 1, 2, 2, 2, 2},   {1, 1344, 18, 18, 5, 5, 2, 2, 1, 2, 1, 2},
        {1, 2304, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1},
        /* and the repeated blocks of the stages with the most multiply-adds */
        {1, 288, 72, 72, 3, 3, 1, 1, 1, 1, 1, 1},   {1, 480, 36, 36, 5, 5, 1, 1, 2, 2, 2, 2},
        {1, 1344, 18, 18, 5, 5, 1, 1, 2, 2, 2, 2},  {1, 2304, 9, 9, 5, 5, 1, 1, 2, 2, 2, 2},
    };
    printf("depthwise conv, %d threads (%s): direct vs grouped conv as a GEMM\n", threads, mrec_simd_name(mrec_simd_detect()));
    printf("%-34s %10s %8s %10s %8s\n", "shape", "direct ms", "GB/s", "GEMM ms", "ratio");
    uint64_t seed = 1;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mrec_depthwise_shape s = cases[c];
        int Ho = mrec_depthwise_out_h(&s), Wo = mrec_depthwise_out_w(&s);
        int Hp = s.H + s.pad_top + s.pad_bottom, Wp = s.W + s.pad_left + s.pad_right;
        size_t nin = (size_t)s.C * s.H * s.W, nout = (size_t)s.C * Ho * Wo, nw = (size_t)s.C * s.KH * s.KW;
        mrec_conv2d_shape g = {1, s.C, Hp, Wp, s.C, s.KH, s.KW, s.stride_h, s.stride_w, 0, 0, s.C};
        float *x = malloc(4 * nin), *xp = calloc((size_t)s.C * Hp * Wp, 4), *w = malloc(4 * nw);
        float *ref = malloc(4 * nout), *out = malloc(4 * nout);
        for (size_t i = 0; i < nin; i++) seed = seed * 6364136223846793005ULL + 1442695040888963407ULL, x[i] = (float)(seed >> 40) / (1 << 24) - 0.5f;
        for (size_t i = 0; i < nw; i++) w[i] = (float)((i * 37) % 17) / 17 - 0.5f;
        for (int p = 0; p < s.C; p++)
            for (int h = 0; h < s.H; h++)
                memcpy(xp + ((size_t)p * Hp + h + s.pad_top) * Wp + s.pad_left, x + ((size_t)p * s.H + h) * s.W, 4 * (size_t)s.W);
        mrec_depthwise_conv2d_ref(ref, x, w, NULL, &s);
        mrec_depthwise_conv2d_cpu(out, x, w, NULL, &s, pool);
        double err = 0;
        for (size_t i = 0; i < nout; i++) err = fmax(err, fabs((double)out[i] - ref[i]));
        if (err > 1e-5) return fprintf(stderr, "case %zu: direct kernel off by %g\n", c, err), 1;
        double best[2] = {1e30, 1e30};
        for (int rep = 0; rep < 6; rep++) {
            double t0 = now();
            mrec_depthwise_conv2d_cpu(out, x, w, NULL, &s, pool);
            double t1 = now();
            mrec_conv2d_cpu(out, xp, w, NULL, &g, NULL, pool);
            double t2 = now();
            if (rep) best[0] = fmin(best[0], t1 - t0), best[1] = fmin(best[1], t2 - t1);
        }
        char name[64];
        snprintf(name, sizeof name, "C=%d %dx%d k%d s%d", s.C, s.H, s.W, s.KH, s.stride_h);
        printf("%-34s %10.3f %8.2f %10.3f %7.1fx\n", name, best[0] * 1e3, 4.0 * (nin + nout) / best[0] / 1e9, best[1] * 1e3,
               best[1] / best[0]);
        free(x), free(xp), free(w), free(ref), free(out);
    }
    mrec_pool_destroy(pool);
    return 0;
}
