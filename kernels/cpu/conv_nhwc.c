/* conv_nhwc.c: the channels-last bf16 ops on the CPU (AVX-512 BF16), so a
 * bf16 ResNet keeps bf16 activations (N, H, W, C) between layers here too.
 * Built with -mavx512f -mavx512bf16 and only called when cpuid says the CPU
 * has them (mrec_cpu_has_bf16).
 *
 * Two channels side by side are one bf16 pair, the operand VDPBF16PS
 * multiplies, so the activations are already the GEMM's A: a pixel's row
 * of the unfolded input is, window position by window position, a run of
 * C_in / 2 pairs as the input holds them. No fill rounds or interleaves,
 * each value is read as 2 bytes instead of 4, and each output is rounded
 * once, where the GEMM finishes it (mrec_gemm_bf16_rows). The NCHW fp32
 * route spent a quarter of its bf16 forward on those fills and roundings.
 *
 * A 3x3, stride-1 convolution runs as Winograd F(2x2, 3x3), as conv.c does
 * in NCHW: V = B^T d B per tile and channel, rounded to bf16; 16 GEMMs
 * M_k (tiles, C_out) = V_k U_k^T; Y = A^T M A. Here each transform works on
 * 16 channels at once, one vector, which the channels-last layout lays side
 * by side.
 */
#include "../mrec_kernels.h"
#include "gemm_internal.h"
#include "parallel.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WINO_TILES 256 /* tiles per GEMM to gather images up to, as conv.c */

/* 16 bf16 values from p as fp32 (exact) */
static inline __m512 widen16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

static inline void store16(uint16_t *p, __m512 v) { _mm256_storeu_si256((__m256i *)p, (__m256i)_mm512_cvtneps_pbh(v)); }

/* ---- the direct convolution: an implicit GEMM over the pixels ---- */

typedef struct {
    const uint32_t *in; /* (N, H, W, C_in / 2) pairs */
    const mrec_conv2d_shape *s;
    int Ho, Wo, cp; /* cp: pairs a pixel */
} direct_a;

#define EDGE_RUN 256 /* the longest window row (KW C_in / 2 pairs) taken as one run */

/* The panel of pixel rows [i0, i0 + rows), pairs [p0, p0 + kc) of their
 * windows: pair p is channels 2 c, 2 c + 1 at window position (kh, kw),
 * p = (kh KW + kw) cp + c; outside the input, zeros. A window row (kh) is
 * KW pixels side by side in the input, one run of KW cp pairs, where it
 * lies inside; a row hanging over the edge is made up in `edge` with its
 * zeros. Window rows too long for that go position by position. */
static void direct_fill(void *arg, int item, uint32_t *dst, int mr, int i0, int rows, int p0, int kc) {
    (void)item;
    const direct_a *d = arg;
    const mrec_conv2d_shape *s = d->s;
    const uint32_t *src[16];
    if (s->KH == 1 && s->KW == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 0 && s->pad_w == 0) {
        for (int t = 0; t < mr; t++) src[t] = t < rows ? d->in + (size_t)(i0 + t) * d->cp + p0 : NULL; /* pixels as they lie */
        mrec_bf16_panel_from_rows(dst, mr, src, kc);
        return;
    }
    int n[16], ih0[16], iw0[16], plane = d->Ho * d->Wo;
    for (int t = 0; t < rows; t++) {
        int pix = i0 + t;
        n[t] = pix / plane, ih0[t] = pix % plane / d->Wo * s->stride_h - s->pad_h, iw0[t] = pix % d->Wo * s->stride_w - s->pad_w;
    }
    int whole = s->KW * d->cp <= EDGE_RUN, run = whole ? s->KW * d->cp : d->cp; /* pairs of one run */
    uint32_t edge[16][EDGE_RUN];
    for (int p = p0; p < p0 + kc;) {
        int seg = p / run, off = p % run, len = run - off < p0 + kc - p ? run - off : p0 + kc - p;
        int kh = whole ? seg : seg / s->KW, kw = whole ? 0 : seg % s->KW;
        for (int t = 0; t < mr; t++) {
            src[t] = NULL;
            int ih = ih0[t] + kh, iw = iw0[t] + kw;
            if (t >= rows || ih < 0 || ih >= s->H) continue;
            const uint32_t *row = d->in + ((size_t)n[t] * s->H + ih) * s->W * d->cp;
            if (iw >= 0 && iw + (whole ? s->KW : 1) <= s->W) {
                src[t] = row + (size_t)iw * d->cp + off;
            } else if (whole) {
                for (int k = 0; k < s->KW; k++) {
                    uint32_t *e = edge[t] + k * d->cp;
                    if (iw + k >= 0 && iw + k < s->W) memcpy(e, row + (size_t)(iw + k) * d->cp, sizeof *e * (size_t)d->cp);
                    else memset(e, 0, sizeof *e * (size_t)d->cp);
                }
                src[t] = edge[t] + off;
            }
        }
        mrec_bf16_panel_from_rows(dst + (size_t)(p - p0) * mr, mr, src, len);
        p += len;
    }
}

static mrec_status direct_conv(uint16_t *out, const uint16_t *in, const float *weight, const float *bias, float beta, int relu,
                               const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool) {
    int K = s->KH * s->KW * s->C_in;
    void *own;
    const void *wt = mrec_gemm_bf16_wt(packs, weight, s->C_out, K, MREC_PACK_TAG_BF16_NHWC, &own);
    if (!wt) return mrec_fail(MREC_ERR_NOMEM, "conv2d_nhwc_bf16: packing the weights (%d x %d)", s->C_out, K);
    direct_a d = {(const uint32_t *)in, s, mrec_conv2d_out_h(s), mrec_conv2d_out_w(s), s->C_in / 2};
    mrec_gemm_rows_out o = {.c16 = out, .ldc = s->C_out, .bias = bias, .beta = beta, .relu = relu};
    mrec_gemm_bf16_rows(&o, direct_fill, &d, wt, 0, 1, s->N * d.Ho * d.Wo, s->C_out, K, pool);
    free(own);
    return MREC_OK;
}

/* ---- Winograd F(2x2, 3x3), channels last ---- */

static int winograd_fits(const mrec_conv2d_shape *s) {
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    return s->KH == 3 && s->KW == 3 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h <= 2 && s->pad_w <= 2 &&
           s->C_in >= 16 && s->C_out >= 16 && Ho >= 2 && Wo >= 2 && (Ho + 1) / 2 * ((Wo + 1) / 2) > MREC_GEMM_FEW_ROWS;
}

typedef struct {
    const float *w; /* (C_out, 3, 3, C_in) */
    int C_out, C_in;
    size_t bytes; /* of one packed U_k */
} wino_filters;

/* U_k = (G g G^T)_k (C_out, C_in) for k = 0..15, each packed as the GEMM's
 * weight, one after another. */
static int winograd_filters(void *dst, void *arg) {
    const wino_filters *a = arg;
    size_t per = (size_t)a->C_out * a->C_in;
    float *u = malloc(sizeof(float) * 16 * per);
    if (!u) return 0;
    for (int o = 0; o < a->C_out; o++)
        for (int ci = 0; ci < a->C_in; ci++) {
            float uf[16];
            mrec_winograd_filter(a->w + (size_t)o * 9 * a->C_in + ci, (size_t)a->C_in, uf);
            for (int k = 0; k < 16; k++) u[k * per + (size_t)o * a->C_in + ci] = uf[k];
        }
    for (int k = 0; k < 16; k++) mrec_gemm_bf16_pack_wt((char *)dst + k * a->bytes, u + k * per, a->C_out, a->C_in, a->C_in);
    free(u);
    return 1;
}

typedef struct {
    const uint16_t *in; /* the group's images (g, H, W, C_in) */
    uint16_t *v;        /* V (16, rows, C_in) */
    const float *m;     /* M (16, rows, C_out) */
    uint16_t *out;      /* the group's outputs (g, Ho, Wo, C_out) */
    const float *bias;
    float beta;
    int relu;
    const mrec_conv2d_shape *s;
    int th, tw, Ho, Wo, rows;
} wino_pass;

/* The 4x4 window of tile (ty, tx) of image n, channels c .. c + 15, as 16 vectors (zero outside). */
static inline void window16(const wino_pass *a, int n, int ty, int tx, int c, __m512 d[16]) {
    const mrec_conv2d_shape *s = a->s;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            int y = 2 * ty - s->pad_h + i, x = 2 * tx - s->pad_w + j;
            d[4 * i + j] = y >= 0 && y < s->H && x >= 0 && x < s->W ? widen16(a->in + (((size_t)n * s->H + y) * s->W + x) * s->C_in + c)
                                                                   : _mm512_setzero_ps();
        }
}

/* V = B^T d B of one tile, 16 channels a vector (B^T as in conv.c) */
static inline void input_transform(__m512 d[16], __m512 v[16]) {
    __m512 r[16];
    for (int j = 0; j < 4; j++) { /* B^T down the columns */
        r[j] = _mm512_sub_ps(d[j], d[8 + j]);
        r[4 + j] = _mm512_add_ps(d[4 + j], d[8 + j]);
        r[8 + j] = _mm512_sub_ps(d[8 + j], d[4 + j]);
        r[12 + j] = _mm512_sub_ps(d[4 + j], d[12 + j]);
    }
    for (int i = 0; i < 16; i += 4) { /* then B across each row */
        v[i] = _mm512_sub_ps(r[i], r[i + 2]);
        v[i + 1] = _mm512_add_ps(r[i + 1], r[i + 2]);
        v[i + 2] = _mm512_sub_ps(r[i + 2], r[i + 1]);
        v[i + 3] = _mm512_sub_ps(r[i + 1], r[i + 3]);
    }
}

/* V for (image, row of tiles) tasks [lo, hi); a channel count not a
 * multiple of 16 has its last channels a value at a time. */
static void winograd_input(void *arg, int64_t lo, int64_t hi) {
    const wino_pass *a = arg;
    const mrec_conv2d_shape *s = a->s;
    size_t plane = (size_t)a->rows * s->C_in;
    for (int64_t task = lo; task < hi; task++) {
        int n = (int)(task / a->th), ty = (int)(task % a->th);
        for (int tx = 0; tx < a->tw; tx++) {
            size_t tile = ((size_t)n * a->th + ty) * a->tw + tx;
            uint16_t *v = a->v + tile * s->C_in;
            int c = 0;
            for (; c + 16 <= s->C_in; c += 16) {
                __m512 d[16], t[16];
                window16(a, n, ty, tx, c, d);
                input_transform(d, t);
                for (int k = 0; k < 16; k++) store16(v + k * plane + c, t[k]);
            }
            for (; c < s->C_in; c++) {
                float d[16], r[16];
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) {
                        int y = 2 * ty - s->pad_h + i, x = 2 * tx - s->pad_w + j;
                        d[4 * i + j] = y >= 0 && y < s->H && x >= 0 && x < s->W
                                           ? mrec_bf16_widen(a->in[(((size_t)n * s->H + y) * s->W + x) * s->C_in + c])
                                           : 0.0f;
                    }
                for (int j = 0; j < 4; j++)
                    r[j] = d[j] - d[8 + j], r[4 + j] = d[4 + j] + d[8 + j], r[8 + j] = d[8 + j] - d[4 + j], r[12 + j] = d[4 + j] - d[12 + j];
                for (int i = 0; i < 16; i += 4) {
                    float t[4] = {r[i] - r[i + 2], r[i + 1] + r[i + 2], r[i + 2] - r[i + 1], r[i + 1] - r[i + 3]};
                    for (int j = 0; j < 4; j++) v[(i + j) * plane + c] = mrec_bf16_round(t[j]);
                }
            }
        }
    }
}

/* A's panel for GEMM k: tiles' rows of V_k, pairs as they lie */
static void winograd_fill(void *arg, int item, uint32_t *dst, int mr, int i0, int rows, int p0, int kc) {
    const wino_pass *a = arg;
    const uint32_t *v = (const uint32_t *)(a->v + (size_t)item * a->rows * a->s->C_in);
    const uint32_t *src[16];
    for (int t = 0; t < mr; t++) src[t] = t < rows ? v + (size_t)(i0 + t) * (a->s->C_in / 2) + p0 : NULL;
    mrec_bf16_panel_from_rows(dst, mr, src, kc);
}

/* One output: round(relu(y + bias + beta old)) */
static inline float finish1(const wino_pass *a, float y, int co, const uint16_t *o) {
    if (a->bias) y += a->bias[co];
    if (a->beta != 0.0f) y = fmaf(a->beta, mrec_bf16_widen(*o), y);
    return a->relu ? (y > 0.0f ? y : 0.0f) : y;
}

/* Y = A^T M A for (image, row of tiles) tasks [lo, hi), plus the bias, beta
 * times the output and the ReLU, each output rounded once (the last row and
 * column of tiles may hang over the edge). */
static void winograd_output(void *arg, int64_t lo, int64_t hi) {
    const wino_pass *a = arg;
    const mrec_conv2d_shape *s = a->s;
    size_t plane = (size_t)a->rows * s->C_out;
    for (int64_t task = lo; task < hi; task++) {
        int n = (int)(task / a->th), ty = (int)(task % a->th);
        for (int tx = 0; tx < a->tw; tx++) {
            const float *m = a->m + (((size_t)n * a->th + ty) * a->tw + tx) * s->C_out;
            uint16_t *o[4] = {NULL, NULL, NULL, NULL}; /* (dy, dx) = (0, 0), (0, 1), (1, 0), (1, 1) */
            for (int q = 0; q < 4; q++) {
                int y = 2 * ty + q / 2, x = 2 * tx + q % 2;
                if (y < a->Ho && x < a->Wo) o[q] = a->out + (((size_t)n * a->Ho + y) * a->Wo + x) * s->C_out;
            }
            int c = 0;
            for (; c + 16 <= s->C_out; c += 16) {
                __m512 s0[4], s1[4], y[4];
                for (int j = 0; j < 4; j++) {
                    __m512 m0 = _mm512_loadu_ps(m + j * plane + c), m1 = _mm512_loadu_ps(m + (4 + j) * plane + c);
                    __m512 m2 = _mm512_loadu_ps(m + (8 + j) * plane + c), m3 = _mm512_loadu_ps(m + (12 + j) * plane + c);
                    s0[j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
                    s1[j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
                }
                y[0] = _mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]);
                y[1] = _mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]);
                y[2] = _mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]);
                y[3] = _mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]);
                __m512 b = a->bias ? _mm512_loadu_ps(a->bias + c) : _mm512_setzero_ps();
                for (int q = 0; q < 4; q++) {
                    if (!o[q]) continue;
                    __m512 v = _mm512_add_ps(y[q], b);
                    if (a->beta != 0.0f) v = _mm512_fmadd_ps(_mm512_set1_ps(a->beta), widen16(o[q] + c), v);
                    if (a->relu) v = _mm512_max_ps(v, _mm512_setzero_ps()); /* a NaN gives 0, as the fp32 ReLU */
                    store16(o[q] + c, v);
                }
            }
            for (; c < s->C_out; c++) {
                float s0[4], s1[4];
                for (int j = 0; j < 4; j++) {
                    float m0 = m[j * plane + c], m1 = m[(4 + j) * plane + c], m2 = m[(8 + j) * plane + c], m3 = m[(12 + j) * plane + c];
                    s0[j] = m0 + m1 + m2, s1[j] = m1 - m2 - m3;
                }
                float y[4] = {s0[0] + s0[1] + s0[2], s0[1] - s0[2] - s0[3], s1[0] + s1[1] + s1[2], s1[1] - s1[2] - s1[3]};
                for (int q = 0; q < 4; q++)
                    if (o[q]) o[q][c] = mrec_bf16_round(finish1(a, y[q], c, o[q] + c));
            }
        }
    }
}

/* 0 (nothing written) when the filters' transform or the room for V and M cannot be had. */
static int winograd_conv(uint16_t *out, const uint16_t *in, const float *weight, const float *bias, float beta, int relu,
                         const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool) {
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s), th = (Ho + 1) / 2, tw = (Wo + 1) / 2, T = th * tw;
    int group = T >= WINO_TILES ? 1 : (WINO_TILES + T - 1) / T;
    if (group > s->N) group = s->N;
    wino_filters f = {weight, s->C_out, s->C_in, (mrec_gemm_bf16_wt_bytes(s->C_out, s->C_in) + 63) / 64 * 64};
    const char *u = mrec_packs_cached(packs, weight, s->C_out, s->C_in * 9, MREC_PACK_TAG_BF16_WINOGRAD_NHWC, 16 * f.bytes,
                                      winograd_filters, &f);
    if (!u) return 0;
    size_t rows_max = (size_t)group * T;
    uint16_t *v = malloc(sizeof(uint16_t) * 16 * rows_max * s->C_in);
    float *m = malloc(sizeof(float) * 16 * rows_max * s->C_out);
    if (!v || !m) return free(v), free(m), 0;
    for (int n0 = 0; n0 < s->N; n0 += group) {
        int g = s->N - n0 < group ? s->N - n0 : group, rows = g * T;
        wino_pass a = {in + (size_t)n0 * s->H * s->W * s->C_in, v, m, out + (size_t)n0 * Ho * Wo * s->C_out, bias, beta, relu, s,
                       th, tw, Ho, Wo, rows};
        mrec_parallel_range(pool, (int64_t)g * th, 1, winograd_input, &a);
        mrec_gemm_rows_out o = {.c32 = m, .item_stride = (int64_t)rows * s->C_out, .ldc = s->C_out};
        mrec_gemm_bf16_rows(&o, winograd_fill, &a, u, f.bytes, 16, rows, s->C_out, s->C_in, pool);
        mrec_parallel_range(pool, (int64_t)g * th, 1, winograd_output, &a);
    }
    free(v), free(m);
    return 1;
}

mrec_status mrec_conv2d_nhwc_bf16_cpu(uint16_t *out, const uint16_t *in, const float *weight, const float *bias, float beta,
                                      int relu, const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool) {
    if (s->C_in % 2) return mrec_fail(MREC_ERR_SHAPE, "conv2d_nhwc_bf16: %d input channels (pairs need an even count)", s->C_in);
    if (packs && winograd_fits(s) && winograd_conv(out, in, weight, bias, beta, relu, s, packs, pool)) return MREC_OK;
    return direct_conv(out, in, weight, bias, beta, relu, s, packs, pool);
}

/* ---- pooling ---- */

typedef struct {
    uint16_t *out;
    const uint16_t *in;
    const mrec_pool2d_shape *s;
    int Ho, Wo;
} pool_pass;

/* max over the window as the reference takes it: a NaN wins */
static inline float max1(float acc, float x) { return x > acc || isnan(x) ? x : acc; }

static void maxpool_rows(void *arg, int64_t lo, int64_t hi) {
    const pool_pass *a = arg;
    const mrec_pool2d_shape *s = a->s;
    for (int64_t r = lo; r < hi; r++) {
        int n = (int)(r / a->Ho), oh = (int)(r % a->Ho);
        for (int ow = 0; ow < a->Wo; ow++) {
            uint16_t *o = a->out + (((size_t)n * a->Ho + oh) * a->Wo + ow) * s->C;
            int c = 0;
            for (; c + 16 <= s->C; c += 16) {
                __m512 acc = _mm512_set1_ps(-INFINITY);
                for (int kh = 0; kh < s->KH; kh++)
                    for (int kw = 0; kw < s->KW; kw++) {
                        int ih = oh * s->stride_h - s->pad_h + kh, iw = ow * s->stride_w - s->pad_w + kw;
                        if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                        __m512 x = widen16(a->in + (((size_t)n * s->H + ih) * s->W + iw) * s->C + c);
                        __mmask16 take = _mm512_cmp_ps_mask(x, acc, _CMP_GT_OQ) | _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
                        acc = _mm512_mask_mov_ps(acc, take, x);
                    }
                store16(o + c, acc); /* a bf16 value or -inf: exact */
            }
            for (; c < s->C; c++) {
                float acc = -INFINITY;
                for (int kh = 0; kh < s->KH; kh++)
                    for (int kw = 0; kw < s->KW; kw++) {
                        int ih = oh * s->stride_h - s->pad_h + kh, iw = ow * s->stride_w - s->pad_w + kw;
                        if (ih >= 0 && ih < s->H && iw >= 0 && iw < s->W)
                            acc = max1(acc, mrec_bf16_widen(a->in[(((size_t)n * s->H + ih) * s->W + iw) * s->C + c]));
                    }
                o[c] = mrec_bf16_round(acc);
            }
        }
    }
}

void mrec_maxpool2d_nhwc_bf16_cpu(uint16_t *out, const uint16_t *in, const mrec_pool2d_shape *s, mrec_pool *pool) {
    pool_pass a = {out, in, s, mrec_pool2d_out_h(s), mrec_pool2d_out_w(s)};
    mrec_parallel_range(pool, (int64_t)s->N * a.Ho, 1, maxpool_rows, &a);
}

/* The mean over HW, each channel summed in pixel order in fp32 as the
 * reference does (the same bits), 16 channels a vector. */
void mrec_mean_hw_nhwc_bf16_cpu(float *out, const uint16_t *in, int N, int HW, int C) {
    for (int n = 0; n < N; n++) {
        const uint16_t *x = in + (size_t)n * HW * C;
        float *o = out + (size_t)n * C;
        int c = 0;
        for (; c + 16 <= C; c += 16) {
            __m512 sum = _mm512_setzero_ps();
            for (int p = 0; p < HW; p++) sum = _mm512_add_ps(sum, widen16(x + (size_t)p * C + c));
            _mm512_storeu_ps(o + c, _mm512_div_ps(sum, _mm512_set1_ps((float)HW)));
        }
        for (; c < C; c++) {
            float sum = 0.0f;
            for (int p = 0; p < HW; p++) sum += mrec_bf16_widen(x[(size_t)p * C + c]);
            o[c] = sum / (float)HW;
        }
    }
}

/* (N, C, HW) fp32 to (N, HW, C_pad) bf16, a pixel at a time (the images: 3 channels) */
void mrec_nhwc_bf16_from_nchw_cpu(uint16_t *out, const float *in, int N, int C, int HW, int C_pad) {
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++) {
            uint16_t *o = out + ((size_t)n * HW + p) * C_pad;
            for (int c = 0; c < C; c++) o[c] = mrec_bf16_round(in[((size_t)n * C + c) * HW + p]);
            memset(o + C, 0, sizeof *o * (size_t)(C_pad - C));
        }
}
