/* conv.c: fast CPU convolution (im2col + GEMM), BatchNorm and 2-D pooling.
 *
 * A conv of one image and one group is a GEMM:
 *   out (C_out/g, Ho*Wo) = weight (C_out/g, C_in/g*KH*KW) @ col (C_in/g*KH*KW, Ho*Wo)
 * where col is the unfolded input (im2col). A 1x1, stride-1, unpadded conv
 * needs no unfolding: col is the input itself. The caller provides col's
 * memory (mrec_conv2d_workspace_floats), sized once for the largest layer.
 */
#include "../mrec_kernels.h"
#include "parallel.h"

#include <math.h>
#include <string.h>

static int is_pointwise(const mrec_conv2d_shape *s) {
    return s->KH == 1 && s->KW == 1 && s->stride_h == 1 && s->stride_w == 1 &&
           s->pad_h == 0 && s->pad_w == 0;
}

size_t mrec_conv2d_workspace_floats(const mrec_conv2d_shape *s) {
    if (is_pointwise(s)) return 0;
    size_t rows = (size_t)(s->C_in / s->groups) * s->KH * s->KW;
    return rows * (size_t)mrec_conv2d_out_h(s) * (size_t)mrec_conv2d_out_w(s);
}

typedef struct {
    float *col;
    const float *in; /* (C_in/g, H, W) of one image and group */
    const mrec_conv2d_shape *s;
    int Ho, Wo;
} im2col_args;

/* One row of col per (ci, kh, kw). */
static void im2col_range(void *arg, int64_t lo, int64_t hi) {
    im2col_args *a = arg;
    const mrec_conv2d_shape *s = a->s;
    for (int64_t row = lo; row < hi; row++) {
        int kw = (int)(row % s->KW), kh = (int)(row / s->KW % s->KH), ci = (int)(row / s->KW / s->KH);
        const float *plane = a->in + (size_t)ci * s->H * s->W;
        float *dst = a->col + (size_t)row * a->Ho * a->Wo;
        for (int oh = 0; oh < a->Ho; oh++) {
            int ih = oh * s->stride_h - s->pad_h + kh;
            float *d = dst + (size_t)oh * a->Wo;
            if (ih < 0 || ih >= s->H) {
                memset(d, 0, (size_t)a->Wo * sizeof(float));
                continue;
            }
            const float *src = plane + (size_t)ih * s->W;
            for (int ow = 0; ow < a->Wo; ow++) {
                int iw = ow * s->stride_w - s->pad_w + kw;
                d[ow] = (iw >= 0 && iw < s->W) ? src[iw] : 0.0f;
            }
        }
    }
}

void mrec_conv2d_cpu(float *out, const float *in, const float *weight, const float *bias,
                     float *work, const mrec_conv2d_shape *s, mrec_pool *pool) {
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    int cig = s->C_in / s->groups, cog = s->C_out / s->groups;
    int krows = cig * s->KH * s->KW, npix = Ho * Wo;
    for (int n = 0; n < s->N; n++) {
        for (int g = 0; g < s->groups; g++) {
            const float *x = in + ((size_t)n * s->C_in + (size_t)g * cig) * s->H * s->W;
            float *y = out + ((size_t)n * s->C_out + (size_t)g * cog) * npix;
            const float *col = x;
            if (!is_pointwise(s)) {
                im2col_args a = {work, x, s, Ho, Wo};
                mrec_parallel_range(pool, krows, 1, im2col_range, &a);
                col = work;
            }
            /* The bias is per output row, GEMM's per column: put it in C first. */
            for (int co = 0; co < cog; co++) {
                float b = bias ? bias[g * cog + co] : 0.0f;
                for (int p = 0; p < npix; p++) y[(size_t)co * npix + p] = b;
            }
            mrec_gemm_cpu(y, weight + (size_t)g * cog * krows, col, NULL, 1.0f, 1.0f, 0, 0,
                          cog, npix, krows, krows, npix, npix, pool);
        }
    }
}

typedef struct {
    float *out;
    const float *in, *gamma, *beta, *mean, *var;
    float eps;
    int C, HW;
} bn_args;

MREC_VECTOR_CLONES static void batchnorm_range(void *arg, int64_t lo, int64_t hi) {
    bn_args *a = arg;
    for (int64_t plane = lo; plane < hi; plane++) {
        int c = (int)(plane % a->C);
        float rstd = 1.0f / sqrtf(a->var[c] + a->eps);
        float scale = rstd * a->gamma[c], shift = a->beta[c] - a->mean[c] * scale;
        const float *x = a->in + plane * a->HW;
        float *y = a->out + plane * a->HW;
        for (int i = 0; i < a->HW; i++) y[i] = x[i] * scale + shift;
    }
}

void mrec_batchnorm_cpu(float *out, const float *in, const float *gamma, const float *beta,
                        const float *mean, const float *var, float eps, int N, int C, int HW,
                        mrec_pool *pool) {
    bn_args a = {out, in, gamma, beta, mean, var, eps, C, HW};
    mrec_parallel_range(pool, (int64_t)N * C, 1, batchnorm_range, &a);
}

typedef struct {
    float *out;
    const float *in;
    const mrec_pool2d_shape *s;
    int Ho, Wo, is_max;
} pool2d_args;

static void pool2d_range(void *arg, int64_t lo, int64_t hi) {
    pool2d_args *a = arg;
    const mrec_pool2d_shape *s = a->s;
    for (int64_t plane = lo; plane < hi; plane++) {
        const float *x = a->in + plane * s->H * s->W;
        float *y = a->out + plane * a->Ho * a->Wo;
        for (int oh = 0; oh < a->Ho; oh++)
            for (int ow = 0; ow < a->Wo; ow++) {
                int h0 = oh * s->stride_h - s->pad_h, w0 = ow * s->stride_w - s->pad_w;
                int h1 = h0 + s->KH, w1 = w0 + s->KW;
                int count = s->count_include_pad ? s->KH * s->KW : 0;
                h0 = h0 < 0 ? 0 : h0, w0 = w0 < 0 ? 0 : w0;
                h1 = h1 > s->H ? s->H : h1, w1 = w1 > s->W ? s->W : w1;
                float acc = a->is_max ? -INFINITY : 0.0f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) {
                        float v = x[(size_t)ih * s->W + iw];
                        if (a->is_max) acc = (v > acc || isnan(v)) && !isnan(acc) ? v : acc;
                        else acc += v;
                    }
                if (!a->is_max && !s->count_include_pad) count = (h1 - h0) * (w1 - w0);
                y[(size_t)oh * a->Wo + ow] = a->is_max ? acc : acc / (float)count;
            }
    }
}

static void pool2d_cpu(float *out, const float *in, const mrec_pool2d_shape *s, int is_max,
                       mrec_pool *pool) {
    pool2d_args a = {out, in, s, mrec_pool2d_out_h(s), mrec_pool2d_out_w(s), is_max};
    mrec_parallel_range(pool, (int64_t)s->N * s->C, 1, pool2d_range, &a);
}

void mrec_maxpool2d_cpu(float *out, const float *in, const mrec_pool2d_shape *s, mrec_pool *pool) {
    pool2d_cpu(out, in, s, 1, pool);
}

void mrec_avgpool2d_cpu(float *out, const float *in, const mrec_pool2d_shape *s, mrec_pool *pool) {
    pool2d_cpu(out, in, s, 0, pool);
}
