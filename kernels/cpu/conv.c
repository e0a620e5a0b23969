/* conv.c: fast CPU convolution (implicit im2col + GEMM), BatchNorm and
 * 2-D pooling.
 *
 * A conv of one image and one group is a GEMM:
 *   out (C_out/g, Ho*Wo) = weight (C_out/g, C_in/g*KH*KW) @ col (C_in/g*KH*KW, Ho*Wo)
 * where col is the unfolded input (im2col). col is never written: the GEMM
 * asks for it panel by panel (NR pixels, KC rows of col at a time) and
 * fill_panel gathers each panel straight from the input, so the unfolded
 * matrix (9x the input for a 3x3 conv) costs neither memory nor a pass.
 * The weights, packed for the GEMM, come from the pack set when they are in
 * it (an encoder at inference) and are packed again per call otherwise.
 */
#include "../mrec_kernels.h"
#include "gemm_internal.h"
#include "parallel.h"

#include <math.h>
#include <string.h>

typedef struct {
    const float *in; /* (C_in/g, H, W) of one image and group */
    const mrec_conv2d_shape *s;
    int Wo;
} unfold;

/* The (kc, NR) panel of col: rows p0.. (each a (ci, kh, kw)), pixels
 * j0..j0+cols. A panel's pixels are runs along output rows; a run reads
 * one stretch of an input row (contiguous with stride 1, every stride-th
 * value otherwise), padding aside. */
MREC_VECTOR_CLONES static void fill_panel(void *arg, float *dst, int p0, int kc, int j0, int cols, int NR) {
    const unfold *u = arg;
    const mrec_conv2d_shape *s = u->s;
    int kw = p0 % s->KW, kh = p0 / s->KW % s->KH, ci = p0 / s->KW / s->KH; /* of row p0 + k, stepped below */
    int oh0 = j0 / u->Wo, ow0 = j0 % u->Wo, sw = s->stride_w;
    for (int k = 0; k < kc; k++) {
        const float *plane = u->in + (size_t)ci * s->H * s->W;
        float *d = dst + (size_t)k * NR;
        for (int j = 0, oh = oh0, ow = ow0; j < cols; oh++, ow = 0) {
            int run = cols - j < u->Wo - ow ? cols - j : u->Wo - ow;
            int ih = oh * s->stride_h - s->pad_h + kh, iw0 = ow * s->stride_w - s->pad_w + kw;
            if (ih < 0 || ih >= s->H) {
                memset(d + j, 0, sizeof(float) * (size_t)run);
            } else {
                /* iw = iw0 + t * stride is inside the row for t in [lo, hi): zeros around one copy, no test per pixel */
                int lo, hi;
                if (sw == 1)
                    lo = iw0 < 0 ? -iw0 : 0, hi = iw0 < s->W ? s->W - iw0 : 0;
                else
                    lo = iw0 < 0 ? (-iw0 + sw - 1) / sw : 0, hi = iw0 < s->W ? (s->W - iw0 + sw - 1) / sw : 0;
                if (hi > run) hi = run;
                if (lo > hi) lo = hi;
                float *restrict o = d + j;
                for (int t = 0; t < lo; t++) o[t] = 0.0f;
                if (hi > lo) {
                    const float *restrict src = plane + (size_t)ih * s->W + (iw0 + lo * sw);
                    if (sw == 1)
                        for (int t = 0; t < hi - lo; t++) o[lo + t] = src[t];
                    else if (sw == 2) /* a constant stride: the compiler loads whole vectors and keeps every other value */
                        for (int t = 0; t < hi - lo; t++) o[lo + t] = src[2 * t];
                    else
                        for (int t = 0; t < hi - lo; t++) o[lo + t] = src[t * sw];
                }
                for (int t = hi; t < run; t++) o[t] = 0.0f;
            }
            j += run;
        }
        for (int j = cols; j < NR; j++) d[j] = 0.0f;
        if (++kw == s->KW) {
            kw = 0;
            if (++kh == s->KH) kh = 0, ci++;
        }
    }
}

void mrec_conv2d_cpu(float *out, const float *in, const float *weight, const float *bias, const mrec_conv2d_shape *s,
                     mrec_packs *packs, mrec_pool *pool) {
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    int cig = s->C_in / s->groups, cog = s->C_out / s->groups;
    int krows = cig * s->KH * s->KW, npix = Ho * Wo;
    for (int n = 0; n < s->N; n++) {
        for (int g = 0; g < s->groups; g++) {
            unfold u = {in + ((size_t)n * s->C_in + (size_t)g * cig) * s->H * s->W, s, Wo};
            float *y = out + ((size_t)n * s->C_out + (size_t)g * cog) * npix;
            /* The bias is per output row, GEMM's per column: put it in C first. */
            for (int co = 0; co < cog; co++) {
                float b = bias ? bias[g * cog + co] : 0.0f;
                for (int p = 0; p < npix; p++) y[(size_t)co * npix + p] = b;
            }
            mrec_gemm_filled_cpu(y, weight + (size_t)g * cog * krows, fill_panel, &u, NULL, 1.0f, 1.0f, cog, npix, krows, krows,
                                 npix, packs, pool);
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
