/* depthwise.c: depthwise convolution with per-side padding, and the two
 * channel ops of squeeze-excite (a mean per row, a sigmoid gate per row), as
 * EfficientNet's MBConv blocks use them: references and CPU versions.
 *
 * A depthwise conv has one input channel per output channel, so lowering it
 * to a GEMM (mrec_conv2d_cpu with groups = C) runs C GEMMs of one row
 * each and unfolds KH*KW copies of the input: memory-bound twice over. Here
 * each task owns one (image, channel) plane and, for every output row and
 * tap, adds weight * input over the span of columns whose tap lands inside
 * the image, so the inner loop has no branch and vectorizes (contiguous
 * loads at stride 1, strided at stride 2). Borders are the span's ends, not
 * a padded copy. Each output is bias + the taps in (kh, kw) order in float,
 * whatever the thread count.
 */
#include "../mrec_kernels.h"
#include "parallel.h"

#include <math.h>
#include <stdint.h>

static int out_size(int in, int k, int stride, int pad_a, int pad_b) {
    if (in < 1 || k < 1 || stride < 1 || pad_a < 0 || pad_b < 0 || in + pad_a + pad_b < k) return 0;
    return (in + pad_a + pad_b - k) / stride + 1;
}

int mrec_depthwise_out_h(const mrec_depthwise_shape *s) {
    return out_size(s->H, s->KH, s->stride_h, s->pad_top, s->pad_bottom);
}

int mrec_depthwise_out_w(const mrec_depthwise_shape *s) {
    return out_size(s->W, s->KW, s->stride_w, s->pad_left, s->pad_right);
}

void mrec_depthwise_conv2d_ref(float *out, const float *in, const float *weight, const float *bias,
                               const mrec_depthwise_shape *s) {
    int Ho = mrec_depthwise_out_h(s), Wo = mrec_depthwise_out_w(s);
    for (int n = 0; n < s->N; n++)
        for (int c = 0; c < s->C; c++) {
            const float *x = in + ((size_t)n * s->C + c) * s->H * s->W;
            const float *w = weight + (size_t)c * s->KH * s->KW;
            float *y = out + ((size_t)n * s->C + c) * Ho * Wo;
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double acc = bias ? bias[c] : 0.0;
                    for (int kh = 0; kh < s->KH; kh++)
                        for (int kw = 0; kw < s->KW; kw++) {
                            int ih = oh * s->stride_h - s->pad_top + kh, iw = ow * s->stride_w - s->pad_left + kw;
                            if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                            acc += (double)x[(size_t)ih * s->W + iw] * w[kh * s->KW + kw];
                        }
                    y[(size_t)oh * Wo + ow] = (float)acc;
                }
        }
}

typedef struct {
    float *out;
    const float *in, *weight, *bias;
    const mrec_depthwise_shape *s;
    int Ho, Wo;
} dw_args;

MREC_VECTOR_CLONES static void depthwise_range(void *arg, int64_t lo, int64_t hi) {
    const dw_args *a = arg;
    const mrec_depthwise_shape *s = a->s;
    const int W = s->W, Wo = a->Wo, sw = s->stride_w, pl = s->pad_left;
    for (int64_t plane = lo; plane < hi; plane++) {
        int c = (int)(plane % s->C);
        const float *x = a->in + plane * s->H * W;
        const float *w = a->weight + (size_t)c * s->KH * s->KW;
        float *y = a->out + plane * a->Ho * Wo;
        float b = a->bias ? a->bias[c] : 0.0f;
        for (int oh = 0; oh < a->Ho; oh++) {
            float *yr = y + (size_t)oh * Wo;
            for (int ow = 0; ow < Wo; ow++) yr[ow] = b;
            for (int kh = 0; kh < s->KH; kh++) {
                int ih = oh * s->stride_h - s->pad_top + kh;
                if (ih < 0 || ih >= s->H) continue;
                const float *xr = x + (size_t)ih * W;
                for (int kw = 0; kw < s->KW; kw++) {
                    /* the columns ow with 0 <= ow * sw - pl + kw < W */
                    int off = kw - pl;
                    int first = off >= 0 ? 0 : (-off + sw - 1) / sw;
                    int last = (W - 1 - off) < 0 ? -1 : (W - 1 - off) / sw;
                    if (last > Wo - 1) last = Wo - 1;
                    float wv = w[kh * s->KW + kw];
                    const float *src = xr + off;
                    if (sw == 1)
                        for (int ow = first; ow <= last; ow++) yr[ow] += wv * src[ow];
                    else
                        for (int ow = first; ow <= last; ow++) yr[ow] += wv * src[(size_t)ow * sw];
                }
            }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* ---- AVX-512, strides 1 and 2: each output row's sums in registers ----
 * The loop above reads and writes the output row once per tap, 25 times
 * for a 5x5 kernel, in spans of 9 to 18 columns on EfficientNet's small
 * late planes (C = 960 at 18 x 18, k5: 1.7 GB/s, 11 GFLOP/s on two
 * threads). Here 64 columns of an output row stay in four registers across
 * all the taps and are stored once. A tap's input is a masked load (stride
 * 2: two loads and their even lanes); the lanes whose tap falls outside
 * the image add nothing, as the loop above skips them, and each tap is a
 * product rounded and then added: the same bits. */

/* lanes [lo, hi) of 16, clamped */
__attribute__((target("avx512f"))) static inline __mmask16 span16(int lo, int hi) {
    lo = lo < 0 ? 0 : lo, hi = hi > 16 ? 16 : hi;
    return hi <= lo ? 0 : (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
}

#define DW_KW_MAX 7 /* widest kernel the path takes (EfficientNet's: 5) */

/* What the taps of a block of NV vectors read and keep: per kernel column, per vector */
typedef struct {
    int at[DW_KW_MAX][4];                                      /* lane 0's input column */
    __mmask16 keep[DW_KW_MAX][4], m0[DW_KW_MAX][4], m1[DW_KW_MAX][4]; /* lanes summed; lanes of the two loads */
} dw_taps;

/* One plane's output rows, columns [ow0, ow0 + 16 NV), stride S: NV and S constants, so the sums stay in
 * registers (indexed by a variable they went through the stack, and on Zen 4 a 512-bit load straight after
 * its store misses the store forwarding) */
static inline __attribute__((always_inline, target("avx512f"))) void dw_block(const int NV, const int S, const dw_args *a,
                                                                             const dw_taps *t, int64_t plane, int ow0) {
    const mrec_depthwise_shape *s = a->s;
    const int W = s->W, Wo = a->Wo, KW = s->KW, ch = (int)(plane % s->C);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const float *x = a->in + plane * s->H * W, *w = a->weight + (size_t)ch * s->KH * KW;
    float *y = a->out + plane * a->Ho * Wo + ow0;
    __m512 b = _mm512_set1_ps(a->bias ? a->bias[ch] : 0.0f);
    for (int oh = 0; oh < a->Ho; oh++, y += Wo) {
        __m512 acc[4] = {b, b, b, b};
        for (int kh = 0; kh < s->KH; kh++) {
            int ih = oh * s->stride_h - s->pad_top + kh;
            if (ih < 0 || ih >= s->H) continue;
            uintptr_t xr = (uintptr_t)(x + (size_t)ih * W); /* lanes outside the row are masked, never read */
            for (int kw = 0; kw < KW; kw++) {
                __m512 wv = _mm512_set1_ps(w[kh * KW + kw]);
                for (int v = 0; v < NV; v++) {
                    const float *p = (const float *)(xr + (intptr_t)t->at[kw][v] * (intptr_t)sizeof(float));
                    __m512 in = _mm512_maskz_loadu_ps(t->m0[kw][v], p);
                    if (S == 2) in = _mm512_permutex2var_ps(in, even, _mm512_maskz_loadu_ps(t->m1[kw][v], p + 16));
                    acc[v] = _mm512_mask_add_ps(acc[v], t->keep[kw][v], acc[v], _mm512_mul_ps(wv, in));
                }
            }
        }
        for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(y + 16 * v, span16(0, Wo - ow0 - 16 * v), acc[v]);
    }
}

__attribute__((target("avx512f"))) static void depthwise_range_avx512(void *arg, int64_t lo, int64_t hi) {
    const dw_args *a = arg;
    const mrec_depthwise_shape *s = a->s;
    const int W = s->W, Wo = a->Wo, sw = s->stride_w;
    for (int ow0 = 0; ow0 < Wo; ow0 += 64) {
        /* what a tap reads and keeps depends on its column only, not on the row: worked out once per block */
        int nv = (Wo - ow0 + 15) / 16 < 4 ? (Wo - ow0 + 15) / 16 : 4;
        dw_taps t;
        for (int kw = 0; kw < s->KW; kw++)
            for (int v = 0; v < nv; v++) {
                int ow = ow0 + 16 * v, c = t.at[kw][v] = ow * sw + kw - s->pad_left;
                __mmask16 out = span16(0, Wo - ow);
                if (sw == 1) t.keep[kw][v] = span16(-c, W - c) & out;
                else t.keep[kw][v] = span16((-c + 1) / 2, W - c <= 0 ? 0 : (W - 1 - c) / 2 + 1) & out; /* lane l: c + 2 l */
                t.m0[kw][v] = span16(-c, W - c), t.m1[kw][v] = span16(-c - 16, W - c - 16);
            }
        for (int64_t plane = lo; plane < hi; plane++) switch (nv * 2 + (sw == 2)) {
            case 2: dw_block(1, 1, a, &t, plane, ow0); break;
            case 3: dw_block(1, 2, a, &t, plane, ow0); break;
            case 4: dw_block(2, 1, a, &t, plane, ow0); break;
            case 5: dw_block(2, 2, a, &t, plane, ow0); break;
            case 6: dw_block(3, 1, a, &t, plane, ow0); break;
            case 7: dw_block(3, 2, a, &t, plane, ow0); break;
            case 8: dw_block(4, 1, a, &t, plane, ow0); break;
            default: dw_block(4, 2, a, &t, plane, ow0); break;
            }
    }
}
#endif

void mrec_depthwise_conv2d_cpu(float *out, const float *in, const float *weight, const float *bias,
                               const mrec_depthwise_shape *s, mrec_pool *pool) {
    dw_args a = {out, in, weight, bias, s, mrec_depthwise_out_h(s), mrec_depthwise_out_w(s)};
    if (a.Ho <= 0 || a.Wo <= 0) return;
#if defined(__x86_64__) && defined(__GNUC__)
    if (mrec_pool_simd(pool) >= MREC_SIMD_AVX512 && (s->stride_w == 1 || s->stride_w == 2) && s->KW <= DW_KW_MAX) {
        mrec_parallel_range(pool, (int64_t)s->N * s->C, 1, depthwise_range_avx512, &a);
        return;
    }
#endif
    mrec_parallel_range(pool, (int64_t)s->N * s->C, 1, depthwise_range, &a);
}

void mrec_row_mean_ref(float *out, const float *in, int R, int HW) {
    for (int r = 0; r < R; r++) {
        double acc = 0;
        for (int i = 0; i < HW; i++) acc += in[(size_t)r * HW + i];
        out[r] = (float)(acc / HW);
    }
}

typedef struct {
    float *out;
    const float *in, *gate;
    int HW;
} rows_args;

/* Eight partial sums (a fixed order, vectorizable), added pairwise, then
 * the tail: the same bits on every thread count and SIMD level. */
MREC_VECTOR_CLONES static void row_mean_range(void *arg, int64_t lo, int64_t hi) {
    const rows_args *a = arg;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = a->in + r * a->HW;
        float p[8] = {0};
        int i = 0;
        for (; i + 8 <= a->HW; i += 8)
            for (int j = 0; j < 8; j++) p[j] += x[i + j];
        float acc = ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]));
        for (; i < a->HW; i++) acc += x[i];
        a->out[r] = acc / (float)a->HW;
    }
}

void mrec_row_mean_cpu(float *out, const float *in, int R, int HW, mrec_pool *pool) {
    rows_args a = {out, in, NULL, HW};
    mrec_parallel_range(pool, R, 1, row_mean_range, &a);
}

void mrec_sigmoid_gate_rows_ref(float *out, const float *in, const float *gate, int R, int HW) {
    for (int r = 0; r < R; r++) {
        double g = 1.0 / (1.0 + exp(-(double)gate[r]));
        for (int i = 0; i < HW; i++) out[(size_t)r * HW + i] = (float)(in[(size_t)r * HW + i] * g);
    }
}

MREC_VECTOR_CLONES static void sigmoid_gate_range(void *arg, int64_t lo, int64_t hi) {
    const rows_args *a = arg;
    for (int64_t r = lo; r < hi; r++) {
        float g = 1.0f / (1.0f + expf(-a->gate[r]));
        const float *x = a->in + r * a->HW;
        float *y = a->out + r * a->HW;
        for (int i = 0; i < a->HW; i++) y[i] = x[i] * g;
    }
}

void mrec_sigmoid_gate_rows_cpu(float *out, const float *in, const float *gate, int R, int HW, mrec_pool *pool) {
    rows_args a = {out, in, gate, HW};
    mrec_parallel_range(pool, R, 1, sigmoid_gate_range, &a);
}
