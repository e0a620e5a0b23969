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
 * a padded copy (but on the AVX-512 path for rows of up to 80 columns,
 * below). Each output is bias + the taps in (kh, kw) order in float,
 * whatever the thread count and SIMD level.
 */
#include "../mrec_kernels.h"
#include "gemm_internal.h"
#include "parallel.h"
#include "vector_act.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct {
    float *out;
    const float *in, *gate;
    int HW;
} rows_args;

/* Sixteen partial sums, element i into sum i % 16 (a fixed order, vectorizable, with one add a vector where
 * eight partials kept a chain of adds twice as long), then added as halves of a vector are (mrec_sum16_tree):
 * the same bits on every thread count and SIMD level, and those of mrec_silu_sum_avx512's sums. */
MREC_VECTOR_CLONES static void row_mean_range(void *arg, int64_t lo, int64_t hi) {
    const rows_args *a = arg;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = a->in + r * a->HW;
        float p[16] = {0};
        int i = 0;
        for (; i + 16 <= a->HW; i += 16)
            for (int j = 0; j < 16; j++) p[j] += x[i + j];
        for (int j = 0; i + j < a->HW; j++) p[j] += x[i + j];
        a->out[r] = mrec_sum16_tree(p) / (float)a->HW;
    }
}

typedef struct {
    float *out;
    const float *in, *weight, *bias;
    const mrec_depthwise_shape *s;
    int Ho, Wo;
    int silu;    /* the AVX-512 path: swish on each task's planes */
    float *means; /* the AVX-512 path: each plane's mean after that, or NULL */
    int bf16;     /* a bf16 context's: swish to bf16's precision (mrec_silu_bf16_avx512) */
    const uint16_t *in16; /* the input in bf16 (in NULL then), or NULL */
    void (*wide)(void *, int64_t, int64_t); /* in16's float path, a plane widened at a time (depthwise_range_widened) */
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

/* ---- AVX-512, strides 1 and 2: output rows' sums in registers ----
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
#define DW_NV_MAX 5 /* most vectors of sums a row keeps */

/* What the taps of a block of NV vectors read and keep: per kernel column, per vector */
typedef struct {
    int at[DW_KW_MAX][4];                                      /* lane 0's input column */
    __mmask16 keep[DW_KW_MAX][4], m0[DW_KW_MAX][4], m1[DW_KW_MAX][4]; /* lanes summed; lanes of the two loads */
} dw_taps;

/* The sums of output rows [oh0, oh0 + RW), columns [ow0, ow0 + 16 NV), into the plane */
static inline __attribute__((always_inline, target("avx512f"))) void dw_store(const int RW, const int NV, const dw_args *a,
                                                                             __m512 (*acc)[DW_NV_MAX], int64_t plane, int oh0, int ow0) {
    float *y = a->out + plane * a->Ho * a->Wo + (size_t)oh0 * a->Wo + ow0;
    for (int r = 0; r < RW; r++, y += a->Wo)
        for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(y + 16 * v, span16(0, a->Wo - ow0 - 16 * v), acc[r][v]);
}

/* Swish on planes [lo, hi) while they are in the task's cache, as mrec_activation_cpu takes it at this level
 * (vector_act.h), then their means as mrec_row_mean_cpu takes them. Swish goes over the stored planes, not the
 * sums in registers: there the lanes past a short row (9 or 18 columns) doubled the exponentials. */
static void dw_finish(const dw_args *a, int64_t lo, int64_t hi) {
    int64_t plane = (int64_t)a->Ho * a->Wo;
    if (a->silu && a->means) { /* the sums as swish stores each vector: no second pass over the plane */
        for (int64_t r = lo; r < hi; r++)
            a->means[r] = mrec_silu_sum_avx512(a->out + r * plane, a->out + r * plane, plane, a->bf16) / (float)plane;
        return;
    }
    if (a->silu) (a->bf16 ? mrec_silu_bf16_avx512 : mrec_silu_avx512)(a->out + lo * plane, a->out + lo * plane, (hi - lo) * plane);
    rows_args r = {a->means, a->out, NULL, (int)plane};
    if (a->means) row_mean_range(&r, lo, hi);
}

/* One plane's output rows, columns [ow0, ow0 + 16 NV), stride S: NV and S constants, so the sums stay in
 * registers (indexed by a variable they went through the stack, and on Zen 4 a 512-bit load straight after
 * its store misses the store forwarding) */
static inline __attribute__((always_inline, target("avx512f"))) void dw_block(const int NV, const int S, const dw_args *a,
                                                                             const dw_taps *t, int64_t plane, int ow0) {
    const mrec_depthwise_shape *s = a->s;
    const int W = s->W, KW = s->KW, ch = (int)(plane % s->C);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const float *x = a->in + plane * s->H * W, *w = a->weight + (size_t)ch * s->KH * KW;
    __m512 b = _mm512_set1_ps(a->bias ? a->bias[ch] : 0.0f);
    for (int oh = 0; oh < a->Ho; oh++) {
        __m512 acc[1][DW_NV_MAX];
        for (int v = 0; v < NV; v++) acc[0][v] = b;
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
                    acc[0][v] = _mm512_mask_add_ps(acc[0][v], t->keep[kw][v], acc[0][v], _mm512_mul_ps(wv, in));
                }
            }
        }
        dw_store(1, NV, a, acc, plane, oh, ow0);
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
    dw_finish(a, lo, hi);
}

/* ---- AVX-512, rows of up to 80 output columns: a zero-padded copy ----
 * On the small late planes (9 and 18 columns, half of EfficientNet-B7's
 * depthwise work) the loop above spent more instructions on its masks than
 * on the arithmetic: each tap's load mask and add mask came back from the
 * stack into a mask register, for every row. Here each plane is first
 * copied into a zero-padded buffer, by phase for stride 2 (the even padded
 * columns, then the odd ones), so that every tap of a row is one plain load
 * at a fixed offset, a product and an add. The taps on the padding add a
 * zero product where the loop above skips them: the same bits, but that a
 * sum of exactly -0 comes out +0. */

#define DW_PAD_FLOATS 16384 /* a task's padded plane, on its stack: 64 KB */
#define DW_PAD_COLUMNS 80   /* the widest output row the path takes: five vectors */

/* floats per padded row of one phase; 0 where the path does not take the shape */
static int dw_pad_row(const mrec_depthwise_shape *s, int Ho, int Wo) {
    int S = s->stride_w, nv = (Wo + 15) / 16, rowf = (16 * nv + s->KW + 15) / 16 * 16, Hp = (Ho - 1) * s->stride_h + s->KH;
    if (Wo > DW_PAD_COLUMNS || (S != 1 && S != 2) || s->KW > DW_KW_MAX) return 0;
    if ((s->pad_left + s->W + S - 1) / S > rowf || (int64_t)Hp * S * rowf > DW_PAD_FLOATS) return 0;
    return rowf;
}

/* One plane's input into buf's rows (padded row ih + pad_top, each S phases of rowf floats); the padding is
 * buf's zeros, written once per task */
__attribute__((target("avx512f"))) static void dwp_fill(const dw_args *a, float *buf, int rowf, int Hp, int64_t plane) {
    const mrec_depthwise_shape *s = a->s;
    const int W = s->W, pl = s->pad_left;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const float *x = a->in + plane * s->H * W;
    for (int ih = 0; ih < s->H && ih + s->pad_top < Hp; ih++) {
        float *row = buf + (size_t)(ih + s->pad_top) * s->stride_w * rowf;
        const float *src = x + (size_t)ih * W;
        if (s->stride_w == 1) {
            for (int j = 0; j < W; j += 16)
                _mm512_mask_storeu_ps(row + pl + j, span16(0, W - j), _mm512_maskz_loadu_ps(span16(0, W - j), src + j));
            continue;
        }
        /* input column iw is padded column iw + pl: phase (iw + pl) % 2, at (iw + pl) / 2 */
        for (int t = 0; 2 * t < W; t += 16) {
            __m512 lo = _mm512_maskz_loadu_ps(span16(0, W - 2 * t), src + 2 * t);
            __m512 hi = _mm512_maskz_loadu_ps(span16(0, W - 2 * t - 16), src + 2 * t + 16);
            _mm512_mask_storeu_ps(row + (pl % 2) * rowf + pl / 2 + t, span16(0, (W - 2 * t + 1) / 2), _mm512_permutex2var_ps(lo, even, hi));
            _mm512_mask_storeu_ps(row + ((pl + 1) % 2) * rowf + (pl + 1) / 2 + t, span16(0, (W - 2 * t) / 2),
                                  _mm512_permutex2var_ps(lo, odd, hi));
        }
    }
}

/* Output rows [oh0, oh0 + RW) of one plane (NV vectors, stride S: constants) from its padded copy */
static inline __attribute__((always_inline, target("avx512f"))) void dwp_rows(const int RW, const int NV, const int S,
                                                                             const dw_args *a, const float *buf, int rowf,
                                                                             int64_t plane, int oh0) {
    const mrec_depthwise_shape *s = a->s;
    const int KW = s->KW, ch = (int)(plane % s->C);
    const float *w = a->weight + (size_t)ch * s->KH * KW;
    __m512 b = _mm512_set1_ps(a->bias ? a->bias[ch] : 0.0f), acc[8][DW_NV_MAX];
    for (int r = 0; r < RW; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = b;
    for (int kh = 0; kh < s->KH; kh++)
        for (int kw = 0; kw < KW; kw++) {
            __m512 wv = _mm512_set1_ps(w[kh * KW + kw]);
            const float *col = buf + (size_t)(kw % S) * rowf + kw / S;
            for (int r = 0; r < RW; r++) {
                const float *p = col + (size_t)((oh0 + r) * s->stride_h + kh) * S * rowf;
                for (int v = 0; v < NV; v++) acc[r][v] = _mm512_add_ps(acc[r][v], _mm512_mul_ps(wv, _mm512_loadu_ps(p + 16 * v)));
            }
        }
    dw_store(RW, NV, a, acc, plane, oh0, 0);
}

static inline __attribute__((always_inline, target("avx512f"))) void dwp_block(const int NV, const int S, const dw_args *a,
                                                                              const float *buf, int rowf, int64_t plane) {
    int oh = 0;
    for (; oh + 8 / NV <= a->Ho; oh += 8 / NV) dwp_rows(8 / NV, NV, S, a, buf, rowf, plane, oh);
    for (; oh + 2 <= a->Ho; oh += 2) dwp_rows(2, NV, S, a, buf, rowf, plane, oh);
    for (; oh < a->Ho; oh++) dwp_rows(1, NV, S, a, buf, rowf, plane, oh);
}

__attribute__((target("avx512f"))) static void depthwise_range_padded(void *arg, int64_t lo, int64_t hi) {
    const dw_args *a = arg;
    const mrec_depthwise_shape *s = a->s;
    float buf[DW_PAD_FLOATS] __attribute__((aligned(64)));
    int rowf = dw_pad_row(s, a->Ho, a->Wo), Hp = (a->Ho - 1) * s->stride_h + s->KH, nv = (a->Wo + 15) / 16;
    memset(buf, 0, sizeof(float) * (size_t)Hp * s->stride_w * rowf);
    for (int64_t plane = lo; plane < hi; plane++) {
        dwp_fill(a, buf, rowf, Hp, plane);
        switch (nv * 2 + (s->stride_w == 2)) {
        case 2: dwp_block(1, 1, a, buf, rowf, plane); break;
        case 3: dwp_block(1, 2, a, buf, rowf, plane); break;
        case 4: dwp_block(2, 1, a, buf, rowf, plane); break;
        case 5: dwp_block(2, 2, a, buf, rowf, plane); break;
        case 6: dwp_block(3, 1, a, buf, rowf, plane); break;
        case 7: dwp_block(3, 2, a, buf, rowf, plane); break;
        case 8: dwp_block(4, 1, a, buf, rowf, plane); break;
        case 9: dwp_block(4, 2, a, buf, rowf, plane); break;
        case 10: dwp_block(5, 1, a, buf, rowf, plane); break;
        default: dwp_block(5, 2, a, buf, rowf, plane); break;
        }
        dw_finish(a, plane, plane + 1);
    }
}

/* ---- bf16: two rows a dword, through VDPBF16PS ------------------------
 * In a bf16 context (AVX-512 BF16) the padded path's planes and weights are
 * rounded to bf16, as autocast's depthwise conv takes them, and the products
 * summed in float. Each dword of the padded copy holds one column of two
 * consecutive padded rows (row r low, row r + 1 high), so one VDPBF16PS
 * multiplies a pair of taps (kh, kh + 1 at one kw) and adds both to a sum per
 * lane, where the float path loads, multiplies and adds each tap: a 5 x 5
 * kernel takes 15 instructions a vector of sums instead of 25 loads, products
 * and adds. An odd KH's last tap pairs with the row above it at
 * weight 0, a row inside the window, so a non-finite input there makes the
 * sum NaN as the float path's own product with it does. */
#define DWB_PAIRS_MAX 4 /* (DW_KW_MAX + 1) / 2 pairs of rows a kernel column */
#define DWB_ROWS_MAX 9  /* output rows a block keeps the sums of */

/* Pair dwords (a[j], b[j]) of two rows of 32 bf16, for j in the first 16 columns, the last 16, or the even and the
 * odd columns (a stride 2's two phases) */
enum { DWB_FIRST, DWB_LAST, DWB_EVEN, DWB_ODD };
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16"))) __m512i dwb_pairs(__m512i a, __m512i b, int which) {
    static const uint16_t order[4][32] __attribute__((aligned(64))) = {
        {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39, 8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47},
        {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55, 24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63},
        {0, 32, 2, 34, 4, 36, 6, 38, 8, 40, 10, 42, 12, 44, 14, 46, 16, 48, 18, 50, 20, 52, 22, 54, 24, 56, 26, 58, 28, 60, 30, 62},
        {1, 33, 3, 35, 5, 37, 7, 39, 9, 41, 11, 43, 13, 45, 15, 47, 17, 49, 19, 51, 21, 53, 23, 55, 25, 57, 27, 59, 29, 61, 31, 63}};
    return _mm512_permutex2var_epi16(a, _mm512_load_si512(order[which]), b);
}

/* 32 values of a row from x (bf16) or x32 (float, rounded to nearest even), the lanes off m, lo and hi zeros */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16"))) __m512i dwb_row32(const uint16_t *x, const float *x32,
                                                                                                       __mmask32 m, __mmask16 lo,
                                                                                                       __mmask16 hi) {
    if (x) return _mm512_maskz_loadu_epi16(m, x);
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x32 + 16), _mm512_maskz_loadu_ps(lo, x32)); /* [lo | hi] */
}

/* One plane into buf: pair row r (padded rows r, r + 1) at buf + r * S * rowd, phase p at + p * rowd; the padding
 * is buf's zeros, written once per task (every plane writes the same dwords). A strip of 32 input columns at a
 * time down the plane: each input row rounded once (or read as it is in bf16), then paired with the row above
 * it (the padding above the first row and below the last pairs with zeros). */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void dwb_fill(const dw_args *a, uint32_t *buf, int rowd, int Hp,
                                                                             int64_t plane) {
    const mrec_depthwise_shape *s = a->s;
    const int W = s->W, H = s->H, pl = s->pad_left, pt = s->pad_top, S = s->stride_w;
    /* pair rows [first, end) hold an input row: padded rows pt - 1 .. pt + H - 1 begin them, within Hp - 1 */
    int first = pt > 0 ? pt - 1 : 0, end = pt + H < Hp - 1 ? pt + H : Hp - 1;
    for (int c = 0; c < W; c += 32) {
        /* stride 1: input column c + i at padded column pl + c + i; stride 2: phase (c + i + pl) % 2 at (c + i + pl) / 2 */
        uint32_t *at0 = buf + (S == 1 ? (size_t)(pl + c) : (size_t)(pl % 2) * rowd + (pl + c) / 2);
        uint32_t *at1 = S == 1 ? at0 + 16 : buf + (size_t)((pl + 1) % 2) * rowd + (pl + c + 1) / 2;
        __mmask16 m0 = S == 1 ? span16(0, W - c) : span16(0, (W - c + 1) / 2), m1 = S == 1 ? span16(0, W - c - 16) : span16(0, (W - c) / 2);
        __mmask16 lo = span16(0, W - c), hi = span16(0, W - c - 16);
        __mmask32 m = W - c >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << (W - c)) - 1);
        const uint16_t *x = a->in16 ? a->in16 + (size_t)plane * H * W + c : NULL;
        const float *x32 = a->in16 ? NULL : a->in + (size_t)plane * H * W + c;
        __m512i prev = _mm512_setzero_si512();
        for (int r = first; r < end + 1; r++) {
            int ih = r - pt; /* padded row r is input row ih */
            __m512i cur = ih < 0 || ih >= H ? _mm512_setzero_si512()
                                            : dwb_row32(x ? x + (size_t)ih * W : NULL, x32 ? x32 + (size_t)ih * W : NULL, m, lo, hi);
            if (r > first) { /* pair row r - 1: padded rows r - 1 and r */
                size_t off = (size_t)(r - 1) * S * rowd;
                _mm512_mask_storeu_epi32(at0 + off, m0, dwb_pairs(prev, cur, S == 1 ? DWB_FIRST : DWB_EVEN));
                if (m1) _mm512_mask_storeu_epi32(at1 + off, m1, dwb_pairs(prev, cur, S == 1 ? DWB_LAST : DWB_ODD));
            }
            prev = cur;
        }
    }
}

/* Output rows [oh0, oh0 + RW) of one plane (NV vectors, stride S: constants) from its pair-row copy; wp: the weight
 * pairs, (KH + 1) / 2 by KW, pair q over padded rows row[q] and row[q] + 1 of the window. K: the kernel's height
 * as a constant (stride_h = S then), or 0 to read both from the shape. With the window a constant, each distinct
 * pair row of a kernel column is loaded once and added into every sum that reads it (output row r's pair q reads
 * pair row r S + row[q], the same as row r + 1's pair q - 1 at stride 1), where a load per product made the loop
 * wait on its loads (a 5 x 5 kernel over nine rows: 13 loads a column, not 27). Each sum adds its products in
 * (kw, q) order. */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16"))) void
dwb_rows(const int RW, const int NV, const int S, const int K, const dw_args *a, const uint32_t *buf, int rowd,
         const uint32_t *wp, const int *row, float bias, int64_t plane, int oh0) {
    const mrec_depthwise_shape *s = a->s;
    const int KW = s->KW, KH = K ? K : s->KH, pairs = (KH + 1) / 2, sh = K ? S : s->stride_h;
    __m512 acc[DWB_ROWS_MAX][DW_NV_MAX];
    for (int r = 0; r < RW; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_set1_ps(bias);
    const uint32_t *top = buf + (size_t)oh0 * sh * S * rowd;
    for (int kw = 0; kw < KW; kw++) {
        const uint32_t *col = top + (size_t)(kw % S) * rowd + kw / S;
        __m512bh wv[DWB_PAIRS_MAX];
        for (int q = 0; q < pairs; q++) wv[q] = (__m512bh)_mm512_set1_epi32((int)wp[q * KW + kw]);
        if (K) {
            /* pair row j once, into every sum that reads it (r S + at(q) = j); the loops unrolled, so that the
             * sums' indices are constants and the sums stay in registers */
            const int last = (RW - 1) * S + K - 2;
#pragma GCC unroll 32
            for (int j = 0; j <= last; j++) {
                __m512bh x[DW_NV_MAX];
#pragma GCC unroll 8
                for (int v = 0; v < NV; v++) x[v] = (__m512bh)_mm512_loadu_si512(col + (size_t)j * S * rowd + 16 * v);
#pragma GCC unroll 8
                for (int q = 0; q < pairs; q++) {
                    int d = j - (2 * q + 1 < K ? 2 * q : K - 2);
                    if (d < 0 || d % S || d / S >= RW) continue;
#pragma GCC unroll 8
                    for (int v = 0; v < NV; v++) acc[d / S][v] = _mm512_dpbf16_ps(acc[d / S][v], x[v], wv[q]);
                }
            }
            continue;
        }
        for (int q = 0; q < pairs; q++)
            for (int r = 0; r < RW; r++) {
                const uint32_t *p = col + (size_t)(r * sh + row[q]) * S * rowd;
                for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], (__m512bh)_mm512_loadu_si512(p + 16 * v), wv[q]);
            }
    }
    dw_store(RW, NV, a, acc, plane, oh0, 0);
}

/* All output rows of one plane: blocks of DWB_ROWS(NV) rows, the last one moved up to end at the last row (it
 * writes again some rows the one before wrote, with the same sums); fewer rows than a block one at a time */
#define DWB_ROWS(NV) ((NV) == 1 ? 9 : (NV) == 2 ? 6 : (NV) == 3 ? 4 : (NV) == 4 ? 3 : 2)
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16"))) void
dwb_block(const int NV, const int S, const int K, const dw_args *a, const uint32_t *buf, int rowd, const uint32_t *wp,
          const int *row, float bias, int64_t plane) {
    const int RW = DWB_ROWS(NV);
    if (a->Ho < RW) {
        for (int oh = 0; oh < a->Ho; oh++) dwb_rows(1, NV, S, K, a, buf, rowd, wp, row, bias, plane, oh);
        return;
    }
    for (int oh = 0; oh < a->Ho; oh += RW)
        dwb_rows(RW, NV, S, K, a, buf, rowd, wp, row, bias, plane, oh + RW <= a->Ho ? oh : a->Ho - RW);
}

/* dwb_block with NV and S constants, for one kernel height K (or 0: any) */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512bf16"))) void
dwb_plane(const int K, int nv, const dw_args *a, const uint32_t *buf, int rowd, const uint32_t *wp, const int *row, float bias,
          int64_t plane) {
    switch (nv * 2 + (a->s->stride_w == 2)) {
    case 2: dwb_block(1, 1, K, a, buf, rowd, wp, row, bias, plane); break;
    case 3: dwb_block(1, 2, K, a, buf, rowd, wp, row, bias, plane); break;
    case 4: dwb_block(2, 1, K, a, buf, rowd, wp, row, bias, plane); break;
    case 5: dwb_block(2, 2, K, a, buf, rowd, wp, row, bias, plane); break;
    case 6: dwb_block(3, 1, K, a, buf, rowd, wp, row, bias, plane); break;
    case 7: dwb_block(3, 2, K, a, buf, rowd, wp, row, bias, plane); break;
    case 8: dwb_block(4, 1, K, a, buf, rowd, wp, row, bias, plane); break;
    case 9: dwb_block(4, 2, K, a, buf, rowd, wp, row, bias, plane); break;
    case 10: dwb_block(5, 1, K, a, buf, rowd, wp, row, bias, plane); break;
    default: dwb_block(5, 2, K, a, buf, rowd, wp, row, bias, plane); break;
    }
}

__attribute__((target("avx512f,avx512bw,avx512bf16"))) static void depthwise_range_bf16(void *arg, int64_t lo, int64_t hi) {
    const dw_args *a = arg;
    const mrec_depthwise_shape *s = a->s;
    uint32_t buf[DW_PAD_FLOATS] __attribute__((aligned(64)));
    int rowd = dw_pad_row(s, a->Ho, a->Wo), Hp = (a->Ho - 1) * s->stride_h + s->KH, nv = (a->Wo + 15) / 16;
    int KH = s->KH, KW = s->KW, pairs = (KH + 1) / 2, row[DWB_PAIRS_MAX];
    for (int q = 0; q < pairs; q++) row[q] = 2 * q + 1 < KH ? 2 * q : KH - 2; /* an odd KH's last: rows KH - 2, KH - 1 */
    memset(buf, 0, sizeof(uint32_t) * (size_t)(Hp - 1) * s->stride_w * rowd);
    for (int64_t plane = lo; plane < hi; plane++) {
        int ch = (int)(plane % s->C);
        const float *w = a->weight + (size_t)ch * KH * KW;
        uint32_t wp[DWB_PAIRS_MAX * DW_KW_MAX];
        for (int q = 0; q < pairs; q++)
            for (int kw = 0; kw < KW; kw++) {
                int top = row[q];
                float lo_w = 2 * q + 1 < KH ? w[top * KW + kw] : 0.0f, hi_w = w[(top + 1) * KW + kw];
                wp[q * KW + kw] = (uint32_t)mrec_bf16_round(lo_w) | (uint32_t)mrec_bf16_round(hi_w) << 16;
            }
        float bias = a->bias ? a->bias[ch] : 0.0f;
        dwb_fill(a, buf, rowd, Hp, plane);
        /* EfficientNet's 3 x 3 and 5 x 5 kernels with the window a constant (their strides are square) */
        int k = s->stride_h == s->stride_w ? KH : 0;
        if (k == 3) dwb_plane(3, nv, a, buf, rowd, wp, row, bias, plane);
        else if (k == 5) dwb_plane(5, nv, a, buf, rowd, wp, row, bias, plane);
        else dwb_plane(0, nv, a, buf, rowd, wp, row, bias, plane);
        dw_finish(a, plane, plane + 1);
    }
}

/* ---- a bf16 input where the pair rows do not take the shape ----
 * Each plane is widened into the task's stack and the float path runs on it as a one-channel conv: no copy
 * of the whole input (16 MB for ALIGN's 192 planes of 144 x 144, whose stride-2 pair rows outgrow a task's
 * buffer), and the same bits as the float path on the widened input. */
#define DW_WIDE_FLOATS 32768 /* the widest plane widened on the stack: 128 KB */

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void depthwise_range_widened(void *arg, int64_t lo, int64_t hi) {
    const dw_args *a = arg;
    const mrec_depthwise_shape *s = a->s;
    float buf[DW_WIDE_FLOATS] __attribute__((aligned(64)));
    int64_t hw = (int64_t)s->H * s->W, out = (int64_t)a->Ho * a->Wo;
    mrec_depthwise_shape one = *s;
    one.N = 1, one.C = 1;
    for (int64_t plane = lo; plane < hi; plane++) {
        const uint16_t *x = a->in16 + plane * hw;
        for (int64_t i = 0; i < hw; i += 16) {
            __mmask16 k = hw - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (hw - i)) - 1);
            __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, x + i));
            _mm512_mask_storeu_ps(buf + i, k, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
        }
        int ch = (int)(plane % s->C);
        dw_args p = *a;
        p.out = a->out + plane * out, p.in = buf, p.in16 = NULL, p.s = &one;
        p.weight = a->weight + (size_t)ch * s->KH * s->KW, p.bias = a->bias ? a->bias + ch : NULL;
        p.means = a->means ? a->means + plane : NULL;
        a->wide(&p, 0, 1);
    }
}

/* The pair-row path takes the shape (in a bf16 context, the CPU with AVX-512 BF16) */
static int takes_pairs(const mrec_depthwise_shape *s) {
    return dw_pad_row(s, mrec_depthwise_out_h(s), mrec_depthwise_out_w(s)) > 0 && s->KH >= 2; /* stride 1 or 2, KW <= 7 */
}
#endif

/* act < 0: none; means NULL: none; bf16: the bf16 path where it takes the shape (the CPU has AVX-512 BF16), with
 * the input in bf16 (in16, in NULL) where it does */
static void depthwise(float *out, const float *in, const uint16_t *in16, const float *weight, const float *bias, int act,
                      float *means, const mrec_depthwise_shape *s, int bf16, mrec_pool *pool) {
    dw_args a = {out, in, weight, bias, s, mrec_depthwise_out_h(s), mrec_depthwise_out_w(s), 0, NULL, bf16, in16, NULL};
    if (a.Ho <= 0 || a.Wo <= 0) return;
    int64_t planes = (int64_t)s->N * s->C, plane = (int64_t)a.Ho * a.Wo;
#if defined(__x86_64__) && defined(__GNUC__)
    int padded = dw_pad_row(s, a.Ho, a.Wo) > 0, pairs = bf16 && takes_pairs(s);
    if (pairs || (mrec_pool_simd(pool) >= MREC_SIMD_AVX512 && (s->stride_w == 1 || s->stride_w == 2) && s->KW <= DW_KW_MAX)) {
        a.silu = act == MREC_ACT_SILU, a.means = act < 0 || a.silu ? means : NULL;
        void (*range)(void *, int64_t, int64_t) = pairs ? depthwise_range_bf16 : padded ? depthwise_range_padded : depthwise_range_avx512;
        if (in16 && !pairs) a.wide = range, range = depthwise_range_widened; /* mrec_depthwise_conv2d_act_from_bf16_cpu: fits */
        mrec_parallel_range(pool, planes, 1, range, &a);
        if (act >= 0 && !a.silu) mrec_activation_cpu(out, out, (mrec_act)act, 0.0f, planes * plane, pool);
        if (means && !a.means) mrec_row_mean_cpu(means, out, (int)planes, (int)plane, pool);
        return;
    }
#endif
    mrec_parallel_range(pool, planes, 1, depthwise_range, &a);
    if (act >= 0) mrec_activation_cpu(out, out, (mrec_act)act, 0.0f, planes * plane, pool);
    if (means) mrec_row_mean_cpu(means, out, (int)planes, (int)plane, pool);
}

void mrec_depthwise_conv2d_cpu(float *out, const float *in, const float *weight, const float *bias,
                               const mrec_depthwise_shape *s, mrec_pool *pool) {
    depthwise(out, in, NULL, weight, bias, -1, NULL, s, 0, pool);
}

void mrec_depthwise_conv2d_act_cpu(float *out, const float *in, const float *weight, const float *bias, mrec_act act,
                                   float *means, const mrec_depthwise_shape *s, mrec_pool *pool) {
    depthwise(out, in, NULL, weight, bias, (int)act, means, s, 0, pool);
}

mrec_status mrec_depthwise_conv2d_act_bf16_cpu(float *out, const float *in, const float *weight, const float *bias, mrec_act act,
                                               float *means, const mrec_depthwise_shape *s, mrec_pool *pool) {
    if (!mrec_cpu_has_bf16()) return mrec_fail(MREC_ERR_UNSUPPORTED, "bf16 depthwise conv: this CPU has no AVX-512 BF16");
    depthwise(out, in, NULL, weight, bias, (int)act, means, s, 1, pool);
    return MREC_OK;
}

mrec_status mrec_depthwise_conv2d_act_from_bf16_cpu(float *out, const uint16_t *in, const float *weight, const float *bias,
                                                    mrec_act act, float *means, const mrec_depthwise_shape *s, mrec_pool *pool) {
    if (!mrec_cpu_has_bf16()) return mrec_fail(MREC_ERR_UNSUPPORTED, "bf16 depthwise conv: this CPU has no AVX-512 BF16");
#if defined(__x86_64__) && defined(__GNUC__)
    /* the pair rows, or the AVX-512 float path on each plane widened where it fits a task's stack */
    if (takes_pairs(s) || ((int64_t)s->H * s->W <= DW_WIDE_FLOATS && mrec_pool_simd(pool) >= MREC_SIMD_AVX512 &&
                           (s->stride_w == 1 || s->stride_w == 2) && s->KW <= DW_KW_MAX)) {
        depthwise(out, NULL, in, weight, bias, (int)act, means, s, 1, pool);
        return MREC_OK;
    }
#endif
    /* else the float path on the whole input widened */
    int64_t n = (int64_t)s->N * s->C * s->H * s->W;
    float *wide = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!wide) return mrec_fail(MREC_ERR_NOMEM, "bf16 depthwise conv: %lld inputs in float", (long long)n);
    for (int64_t i = 0; i < n; i++) wide[i] = mrec_bf16_widen(in[i]);
    depthwise(out, wide, NULL, weight, bias, (int)act, means, s, 1, pool);
    free(wide);
    return MREC_OK;
}

void mrec_row_mean_ref(float *out, const float *in, int R, int HW) {
    for (int r = 0; r < R; r++) {
        double acc = 0;
        for (int i = 0; i < HW; i++) acc += in[(size_t)r * HW + i];
        out[r] = (float)(acc / HW);
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
