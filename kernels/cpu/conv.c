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
 *
 * With a pack set, a stride-1 3x3 conv runs as Winograd F(2x2, 3x3)
 * instead (Lavin and Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016): each 2x2 block of output (a tile) is
 *   Y = A^T [ sum_ci (G g G^T) .* (B^T d B) ] A
 * with g a 3x3 filter and d the tile's 4x4 input window. The 16 products
 * summed over ci are 16 GEMMs (C_out x C_in) x (C_in x tiles): 16
 * multiplications per 4 outputs instead of 36. The filters' transform
 * (U = G g G^T) is made once and kept in the pack set, packed for the GEMM.
 */
#include "../mrec_kernels.h"
#include "gemm_internal.h"
#include "parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREFETCH_ROWS 8 /* a pointwise fill asks for the input rows this far ahead */

typedef struct {
    const float *in; /* (C_in/g, H, W) of one image and group; with images, of the first */
    const mrec_conv2d_shape *s;
    int Wo;
    int npix;     /* with the batch as one GEMM (images != 0): its columns per image */
    size_t image; /* floats from one image's input to the next */
} unfold;

/* A 1x1 convolution, stride 1, no padding: col is its input as it lies. */
static int pointwise(const mrec_conv2d_shape *s) {
    return s->KH == 1 && s->KW == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 0 && s->pad_w == 0;
}

/* The (kc, NR) panel of col: rows p0.. (each a (ci, kh, kw)), pixels
 * j0..j0+cols of the image at u->in, into dst (rows NR apart; nothing past
 * cols written). A panel's pixels are runs along output rows; a run reads
 * one stretch of an input row (contiguous with stride 1, every stride-th
 * value otherwise), padding aside. */
MREC_VECTOR_CLONES static void fill_columns(const unfold *u, float *dst, int p0, int kc, int j0, int cols, int NR) {
    const mrec_conv2d_shape *s = u->s;
    if (pointwise(s)) {
        /* pointwise: row k of col is input plane k itself, its pixels in a row. Each row is a short stretch
         * of another plane, too short for the hardware's prefetch: the rows PREFETCH_ROWS ahead are asked
         * for here (the loads were a third of the fill's time, waiting on memory). */
        size_t plane = (size_t)s->H * s->W;
        for (int k = 0; k < kc; k++) {
            const float *restrict src = u->in + (size_t)(p0 + k) * plane + j0;
            if (p0 + k + PREFETCH_ROWS < s->C_in / s->groups)
                for (int j = 0; j < cols; j += 16) __builtin_prefetch(src + PREFETCH_ROWS * plane + j);
            float *restrict d = dst + (size_t)k * NR;
            for (int j = 0; j < cols; j++) d[j] = src[j];
        }
        return;
    }
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
        if (++kw == s->KW) {
            kw = 0;
            if (++kh == s->KH) kh = 0, ci++;
        }
    }
}

/* The unfolding of all of a batch's images as one GEMM's B, and where C's columns of each image lie. */
static unfold whole_batch(const float *in, const mrec_conv2d_shape *s, int Wo, mrec_gemm_images *images) {
    int npix = mrec_conv2d_out_h(s) * Wo;
    *images = (mrec_gemm_images){npix, (int64_t)s->C_out * npix};
    return (unfold){in, s, Wo, npix, (size_t)s->C_in * s->H * s->W};
}

/* The fill of a filled GEMM (mrec_gemm_fill_b): the panel's columns, image by image where the batch is one
 * GEMM (a panel may end one image and begin the next), then zeros up to NR. */
static void fill_panel(void *arg, float *dst, int p0, int kc, int j0, int cols, int NR) {
    const unfold *u = arg;
    if (!u->npix) {
        fill_columns(u, dst, p0, kc, j0, cols, NR);
    } else {
        for (int j = 0, run; j < cols; j += run) {
            int n = (j0 + j) / u->npix, at = (j0 + j) % u->npix;
            run = u->npix - at < cols - j ? u->npix - at : cols - j;
            unfold one = *u;
            one.in += n * u->image;
            fill_columns(&one, dst + j, p0, kc, at, run, NR);
        }
    }
    for (int k = 0; cols < NR && k < kc; k++) memset(dst + (size_t)k * NR + cols, 0, sizeof(float) * (size_t)(NR - cols));
}

/* The bf16 panel of a pointwise convolution (a fill_pairs): row k of col is
 * input plane k, so two planes' pixels go into the panel rounded and
 * interleaved in one step, image by image. Filling fp32 rows and rounding
 * them after took 5 % of ResNet50's bf16 forward. */
static void fill_pairs_pointwise(void *arg, uint32_t *dst, int p0, int kc, int j0, int cols, int NR) {
    const unfold *u = arg;
    size_t plane = (size_t)u->s->H * u->s->W;
    int K = u->s->C_in / u->s->groups, rows = K - 2 * p0 < 2 * kc ? K - 2 * p0 : 2 * kc;
    for (int j = 0, run; j < cols; j += run) {
        int n = u->npix ? (j0 + j) / u->npix : 0, at = u->npix ? (j0 + j) % u->npix : j0 + j;
        run = u->npix && u->npix - at < cols - j ? u->npix - at : cols - j;
        mrec_gemm_bf16_pair_rows(dst + j, NR, u->in + n * u->image + (size_t)2 * p0 * plane + at, plane, rows, run);
    }
    for (int p = 0; cols < NR && p < kc; p++) memset(dst + (size_t)p * NR + cols, 0, sizeof *dst * (size_t)(NR - cols));
}

/* ---- Winograd F(2x2, 3x3) ------------------------------------------------
 * The transforms, with the 16 elements of a 4x4 tile numbered 4 * row + col:
 *   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]            filter, 3 -> 4
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]            input, 4 -> 4
 *   A^T = [1 1 1 0; 0 1 -1 -1]                               output, 4 -> 2
 * They cost a few additions per value against C_out (or C_in) multiply-adds
 * per value in the GEMMs. Each GEMM is M_k (tiles, C_out) = V_k^T U_k^T, the
 * filters as the packed weight of an inference GEMM (a Linear's W): the few
 * tiles of a small image are then the GEMM's rows, not a half-empty panel
 * of columns. Several images share the GEMMs when each has few tiles. */

#define WINO_MAX_W 512   /* widest input row the transforms' stack rows hold */
#define WINO_TILES 256   /* tiles per GEMM to gather images up to */
#define WINO_CO_BLOCK 16 /* output channels per output-transform task */

/* A conv the Winograd path computes: 3x3, stride 1, no groups, more tiles
 * than the GEMM's few-rows path takes, and enough channels for the GEMMs to
 * outweigh the transforms. */
static int winograd_fits(const mrec_conv2d_shape *s) {
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    return s->KH == 3 && s->KW == 3 && s->stride_h == 1 && s->stride_w == 1 && s->groups == 1 && s->pad_h <= 2 &&
           s->pad_w <= 2 && s->C_out >= 16 && s->C_in >= 16 && Ho >= 2 && Wo >= 2 &&
           (Ho + 1) / 2 * ((Wo + 1) / 2) > MREC_GEMM_FEW_ROWS && s->W + 6 <= WINO_MAX_W;
}

typedef struct {
    const float *w; /* (C_out, C_in, 3, 3) */
    int C_out, C_in, rows;
    size_t bytes; /* of one packed U_k */
    int bf16;     /* U_k rounded to bf16 and packed for mrec_gemm_bf16_item_wt */
    mrec_pool *pool;
} wino_filters;

/* The pack set's copy: U_k (C_out, C_in) for k = 0..15, each packed as the
 * GEMM's weight, one after another. */
static int winograd_filters(void *dst, void *arg) {
    const wino_filters *a = arg;
    size_t per = (size_t)a->C_out * a->C_in;
    float *u = malloc(sizeof(float) * 16 * per);
    if (!u) return 0;
    for (size_t f = 0; f < per; f++) {
        float uf[16];
        mrec_winograd_filter(a->w + f * 9, 1, uf);
        for (int k = 0; k < 16; k++) u[k * per + f] = uf[k];
    }
    for (int k = 0; k < 16; k++) {
        if (a->bf16) mrec_gemm_bf16_pack_wt((char *)dst + k * a->bytes, u + k * per, a->C_out, a->C_in, a->C_in);
        else mrec_gemm_pack_wt_cpu((float *)((char *)dst + k * a->bytes), u + k * per, a->rows, a->C_out, a->C_in, a->C_in, a->pool);
    }
    free(u);
    return 1;
}

typedef struct {
    float *out;      /* V (16, C_in, rows); or the images' outputs */
    uint32_t *pairs; /* V in bf16 pairs (winograd_input_pairs), or NULL */
    const float *in; /* the images (C_in, H, W); or M (16, rows, C_out) */
    const float *bias;
    const mrec_conv2d_shape *s;
    int th, tw, Ho, Wo, rows; /* rows: tiles of all the images in one GEMM */
    float beta;               /* the output: act(Y + bias + beta * out) */
    const mrec_act *act;
    const mrec_pool *pool; /* its SIMD level for the activation */
    int bf16;              /* a bf16 context: its activation (mrec_gemm_activate_bf16) */
} wino_pass;

/* The 16 rows of V of row ty of tiles of one input plane: v[k * kstride +
 * tx]. The four input rows it reads (zero outside the image), B^T down
 * them, then B across each tile; d and r hold the rows between. */
static inline __attribute__((always_inline)) void winograd_row(const wino_pass *a, const float *plane, int ty, float *v,
                                                              size_t kstride, float d[4][WINO_MAX_W], float r[4][WINO_MAX_W]) {
    const mrec_conv2d_shape *s = a->s;
    int tw = a->tw, wp = 2 * tw + 2; /* padded row: x' = x + pad_w, x' in [0, wp) */
    for (int i = 0; i < 4; i++) { /* the input row, zeros around it */
        int y = 2 * ty - s->pad_h + i, inside = wp - s->pad_w < s->W ? wp - s->pad_w : s->W;
        memset(d[i], 0, sizeof(float) * (size_t)wp);
        if (y >= 0 && y < s->H) memcpy(d[i] + s->pad_w, plane + (size_t)y * s->W, sizeof(float) * (size_t)inside);
    }
    for (int x = 0; x < wp; x++) {
        r[0][x] = d[0][x] - d[2][x];
        r[1][x] = d[1][x] + d[2][x];
        r[2][x] = d[2][x] - d[1][x];
        r[3][x] = d[1][x] - d[3][x];
    }
    for (int i = 0; i < 4; i++) {
        float *o = v + (size_t)(4 * i) * kstride;
        const float *q = r[i];
        for (int tx = 0; tx < tw; tx++) {
            o[tx] = q[2 * tx] - q[2 * tx + 2];
            o[kstride + tx] = q[2 * tx + 1] + q[2 * tx + 2];
            o[2 * kstride + tx] = q[2 * tx + 2] - q[2 * tx + 1];
            o[3 * kstride + tx] = q[2 * tx + 1] - q[2 * tx + 3];
        }
    }
}

/* V (16, C_in, rows) for (image, channel) pairs [lo, hi). The image's tiles
 * are columns [n T, (n + 1) T) of V. */
MREC_VECTOR_CLONES static void winograd_input(void *arg, int64_t lo, int64_t hi) {
    const wino_pass *a = arg;
    const mrec_conv2d_shape *s = a->s;
    size_t T = (size_t)a->th * a->tw, plane_v = (size_t)s->C_in * a->rows;
    float d[4][WINO_MAX_W], r[4][WINO_MAX_W];
    for (int64_t nc = lo; nc < hi; nc++) {
        int n = (int)(nc / s->C_in), ci = (int)(nc % s->C_in);
        const float *plane = a->in + (size_t)nc * s->H * s->W;
        for (int ty = 0; ty < a->th; ty++)
            winograd_row(a, plane, ty, a->out + (size_t)ci * a->rows + n * T + (size_t)ty * a->tw, plane_v, d, r);
    }
}

/* In bf16, V as the GEMMs' A in pairs, rounded here once: (16, C_in / 2
 * rounded up, rows) lanes, each two channels' values of one tile, for
 * (image, channel pair) tasks [lo, hi). The GEMMs then copy their panels
 * instead of rounding and interleaving V's fp32 rows (5 % of ResNet50's
 * bf16 forward), and V is half the bytes. */
MREC_VECTOR_CLONES static void winograd_input_pairs(void *arg, int64_t lo, int64_t hi) {
    const wino_pass *a = arg;
    const mrec_conv2d_shape *s = a->s;
    int kp = (s->C_in + 1) / 2;
    size_t T = (size_t)a->th * a->tw, plane_v = (size_t)kp * a->rows;
    float d[4][WINO_MAX_W], r[4][WINO_MAX_W], v[2][16][WINO_MAX_W / 2];
    for (int64_t np = lo; np < hi; np++) {
        int n = (int)(np / kp), p = (int)(np % kp), chans = s->C_in - 2 * p < 2 ? 1 : 2;
        const float *plane = a->in + ((size_t)n * s->C_in + 2 * (size_t)p) * s->H * s->W;
        for (int ty = 0; ty < a->th; ty++) {
            for (int c = 0; c < chans; c++) winograd_row(a, plane + (size_t)c * s->H * s->W, ty, v[c][0], WINO_MAX_W / 2, d, r);
            uint32_t *o = a->pairs + (size_t)p * a->rows + n * T + (size_t)ty * a->tw;
            for (int k = 0; k < 16; k++)
                mrec_gemm_bf16_pair_rows(o + k * plane_v, 0, v[0][k], (size_t)16 * (WINO_MAX_W / 2), chans, a->tw);
        }
    }
}

/* Y for (image, row of tiles, block of output channels) tasks [lo, hi): A^T
 * down each tile's 4 rows, A across, plus the bias (and beta times the
 * output, then the activation), into two output rows per channel (the last
 * row and column of tiles may hang over the edge). */
MREC_VECTOR_CLONES static void winograd_output(void *arg, int64_t lo, int64_t hi) {
    const wino_pass *a = arg;
    const mrec_conv2d_shape *s = a->s;
    int tw = a->tw, blocks = (s->C_out + WINO_CO_BLOCK - 1) / WINO_CO_BLOCK;
    size_t T = (size_t)a->th * tw, plane_m = (size_t)a->rows * s->C_out;
    float y[WINO_CO_BLOCK][2][WINO_MAX_W];
    for (int64_t task = lo; task < hi; task++) {
        int n = (int)(task / blocks / a->th), ty = (int)(task / blocks % a->th), co0 = (int)(task % blocks) * WINO_CO_BLOCK;
        int cos = s->C_out - co0 < WINO_CO_BLOCK ? s->C_out - co0 : WINO_CO_BLOCK;
        for (int tx = 0; tx < tw; tx++) {
            const float *m = a->in + (n * T + (size_t)ty * tw + tx) * s->C_out + co0;
            float q[4][WINO_CO_BLOCK]; /* the tile's 2x2 outputs, a vector over channels each */
            for (int c = 0; c < cos; c++) {
                float s0[4], s1[4];
                for (int j = 0; j < 4; j++) {
                    float m0 = m[j * plane_m + c], m1 = m[(4 + j) * plane_m + c];
                    float m2 = m[(8 + j) * plane_m + c], m3 = m[(12 + j) * plane_m + c];
                    s0[j] = m0 + m1 + m2;
                    s1[j] = m1 - m2 - m3;
                }
                q[0][c] = s0[0] + s0[1] + s0[2];
                q[1][c] = s0[1] - s0[2] - s0[3];
                q[2][c] = s1[0] + s1[1] + s1[2];
                q[3][c] = s1[1] - s1[2] - s1[3];
            }
            for (int c = 0; c < cos; c++) {
                y[c][0][2 * tx] = q[0][c], y[c][0][2 * tx + 1] = q[1][c];
                y[c][1][2 * tx] = q[2][c], y[c][1][2 * tx + 1] = q[3][c];
            }
        }
        for (int c = 0; c < cos; c++) {
            float b = a->bias ? a->bias[co0 + c] : 0.0f;
            for (int i = 0; i < 2 && 2 * ty + i < a->Ho; i++) {
                float *o = a->out + (((size_t)n * s->C_out + co0 + c) * a->Ho + 2 * ty + i) * a->Wo;
                if (a->beta == 0.0f)
                    for (int x = 0; x < a->Wo; x++) o[x] = y[c][i][x] + b;
                else
                    for (int x = 0; x < a->Wo; x++) o[x] = y[c][i][x] + b + a->beta * o[x];
                if (a->act) (a->bf16 ? mrec_gemm_activate_bf16 : mrec_gemm_activate)(o, a->Wo, 1, a->Wo, *a->act, a->pool);
            }
        }
    }
}

/* The 16 GEMMs M_k (rows, C_out) = V_k^T U_k^T: a task each, on its thread
 * alone. One pool round for all 16 instead of one each, and equal tasks,
 * where each GEMM split over the threads left them waiting at its end (the
 * bits do not depend on the threads). */
typedef struct {
    float *m;
    const float *v;
    const char *u;
    size_t bytes; /* of one packed U_k */
    int rows, C_in, C_out, bf16;
    mrec_pool *pool;
} wino_gemms;

static void winograd_gemm_task(void *arg, int k, int thread) {
    const wino_gemms *j = arg;
    if (j->bf16) {
        size_t plane_v = (size_t)(j->C_in + 1) / 2 * j->rows;
        mrec_gemm_bf16_item_pairs_wt(j->m + (size_t)k * j->rows * j->C_out, (const uint32_t *)j->v + k * plane_v,
                                     j->u + k * j->bytes, j->rows, j->C_out, j->C_in, j->rows, j->C_out, j->pool, thread);
        return;
    }
    mrec_gemm_bpacked_cpu(j->m + (size_t)k * j->rows * j->C_out, j->v + (size_t)k * j->C_in * j->rows, 1, j->rows,
                          (const float *)(j->u + k * j->bytes), j->rows, j->C_out, j->C_in, j->C_out,
                          mrec_pool_alone(j->pool, thread));
}

/* The Winograd conv, a group of images at a time; 0 (nothing written) when
 * the filters' transform or the workspace cannot be had. In bf16 the 16
 * GEMMs take bf16 operands: V and U rounded (the transforms stay fp32), so
 * the error is that of rounding the transformed tiles, not the inputs (the
 * bound in test_kernels). */
static int winograd_conv(float *out, const float *in, const float *weight, const float *bias, float beta, const mrec_act *act,
                         const mrec_conv2d_shape *s, int bf16, mrec_packs *packs, mrec_pool *pool) {
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s), th = (Ho + 1) / 2, tw = (Wo + 1) / 2, T = th * tw;
    int group = T >= WINO_TILES ? 1 : (WINO_TILES + T - 1) / T;
    if (group > s->N) group = s->N;
    /* The packed layout may depend on the GEMM's rows: the full groups' and the last one's. */
    const char *u[2] = {NULL, NULL};
    size_t bytes[2];
    for (int last = 0; last < 2; last++) {
        int rows = (last ? s->N - (s->N - 1) / group * group : group) * T;
        wino_filters f = {weight, s->C_out, s->C_in, rows, 0, bf16, pool};
        int tag = MREC_PACK_TAG_BF16_WINOGRAD; /* bf16: one layout for any rows */
        if (bf16) f.bytes = mrec_gemm_bf16_wt_bytes(s->C_out, s->C_in);
        else tag = MREC_PACK_TAG_WINOGRAD + mrec_gemm_b_layout(rows, s->C_out, s->C_in, pool, &f.bytes);
        f.bytes = bytes[last] = (f.bytes + 63) / 64 * 64; /* each U_k on a cache line */
        u[last] = mrec_packs_cached(packs, weight, s->C_out, s->C_in * 9, tag, 16 * f.bytes, winograd_filters, &f);
        if (!u[last]) return 0;
    }
    size_t rows_max = (size_t)group * T;
    float *v = malloc(sizeof(float) * 16 * (size_t)(s->C_in + s->C_out) * rows_max);
    if (!v) return 0;
    float *m = v + 16 * (size_t)s->C_in * rows_max;
    for (int n0 = 0; n0 < s->N; n0 += group) {
        int g = s->N - n0 < group ? s->N - n0 : group, rows = g * T, last = n0 + group >= s->N;
        wino_pass pin = {v, bf16 ? (uint32_t *)v : NULL, in + (size_t)n0 * s->C_in * s->H * s->W, NULL, s, th, tw, Ho, Wo, rows,
                         0.0f, NULL, pool, bf16};
        if (bf16) mrec_parallel_range(pool, (int64_t)g * ((s->C_in + 1) / 2), 1, winograd_input_pairs, &pin);
        else mrec_parallel_range(pool, (int64_t)g * s->C_in, 1, winograd_input, &pin);
        wino_gemms gj = {m, v, u[last], bytes[last], rows, s->C_in, s->C_out, bf16, pool};
        mrec_pool_run(pool, winograd_gemm_task, &gj, 16);
        wino_pass pout = {out + (size_t)n0 * s->C_out * Ho * Wo, NULL, m, bias, s, th, tw, Ho, Wo, rows, beta, act, pool, bf16};
        mrec_parallel_range(pool, (int64_t)g * th * ((s->C_out + WINO_CO_BLOCK - 1) / WINO_CO_BLOCK), 1, winograd_output,
                            &pout);
    }
    free(v);
    return 1;
}

/* out = act(conv(in) + bias + beta out), act NULL for none: a GEMM per image and group, or Winograd. */
static void conv2d_run(float *out, const float *in, const float *weight, const float *bias, float beta, const mrec_act *act,
                       const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool) {
    if (packs && winograd_fits(s) && winograd_conv(out, in, weight, bias, beta, act, s, 0, packs, pool)) return;
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    int cig = s->C_in / s->groups, cog = s->C_out / s->groups;
    int krows = cig * s->KH * s->KW, npix = Ho * Wo;
    /* the batch as one GEMM where the weights are packed: whole panels and enough tasks at a late layer's few pixels */
    mrec_gemm_images images;
    unfold all = whole_batch(in, s, Wo, &images);
    if (s->groups == 1 && s->N > 1 &&
        mrec_gemm_filled_images_cpu(out, weight, fill_panel, &all, bias, beta, s->C_out, s->N * npix, krows, &images, act, packs, pool))
        return;
    for (int n = 0; n < s->N; n++) {
        for (int g = 0; g < s->groups; g++) {
            unfold u = {in + ((size_t)n * s->C_in + (size_t)g * cig) * s->H * s->W, s, Wo, 0, 0};
            float *y = out + ((size_t)n * s->C_out + (size_t)g * cog) * npix;
            /* the bias is per output channel: per row of C */
            mrec_gemm_filled_cpu(y, weight + (size_t)g * cog * krows, fill_panel, &u, bias ? bias + g * cog : NULL, 1.0f, beta,
                                 cog, npix, krows, krows, npix, act, packs, pool);
        }
    }
}

void mrec_conv2d_cpu(float *out, const float *in, const float *weight, const float *bias, const mrec_conv2d_shape *s,
                     mrec_packs *packs, mrec_pool *pool) {
    conv2d_run(out, in, weight, bias, 0.0f, NULL, s, packs, pool);
}

void mrec_conv2d_act_cpu(float *out, const float *in, const float *weight, const float *bias, float beta, mrec_act act,
                         const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool) {
    conv2d_run(out, in, weight, bias, beta, &act, s, packs, pool);
}

static mrec_status conv2d_bf16_run(float *out, const float *in, const float *weight, const float *bias, float beta,
                                   const mrec_act *act, const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool) {
    if (!mrec_cpu_has_bf16()) return mrec_fail(MREC_ERR_UNSUPPORTED, "bf16 conv2d: this CPU has no AVX-512 BF16");
    /* Winograd here too: at ResNet50's 3x3 convolutions the direct bf16 products ran no faster than fp32's Winograd */
    if (packs && winograd_fits(s) && winograd_conv(out, in, weight, bias, beta, act, s, 1, packs, pool)) return MREC_OK;
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    int cig = s->C_in / s->groups, cog = s->C_out / s->groups;
    int krows = cig * s->KH * s->KW, npix = Ho * Wo;
    mrec_gemm_fill_pairs pairs = pointwise(s) ? fill_pairs_pointwise : NULL;
    if (s->groups == 1 && s->N > 1 && krows > 0) { /* the batch as one GEMM, as conv2d_run */
        mrec_gemm_images images;
        unfold all = whole_batch(in, s, Wo, &images);
        if (!mrec_gemm_bf16_filled(out, weight, fill_panel, pairs, &all, bias, beta, act, s->C_out, s->N * npix, krows, npix,
                                   &images, packs, pool))
            return mrec_fail(MREC_ERR_NOMEM, "bf16 conv2d: packing the weights (%d x %d)", cog, krows);
        return MREC_OK;
    }
    for (int n = 0; n < s->N; n++)
        for (int g = 0; g < s->groups; g++) {
            unfold u = {in + ((size_t)n * s->C_in + (size_t)g * cig) * s->H * s->W, s, Wo, 0, 0};
            float *y = out + ((size_t)n * s->C_out + (size_t)g * cog) * npix;
            if (!mrec_gemm_bf16_filled(y, weight + (size_t)g * cog * krows, fill_panel, pairs, &u, bias ? bias + g * cog : NULL,
                                       beta, act, cog, npix, krows, npix, NULL, packs, pool))
                return mrec_fail(MREC_ERR_NOMEM, "bf16 conv2d: packing the weights (%d x %d)", cog, krows);
        }
    return MREC_OK;
}

/* out = conv2d_bf16_run(in) rounded to bf16, through a float copy: where the bf16-output GEMM does not apply */
static mrec_status conv2d_to16_through_float(uint16_t *out, const float *in, const float *weight, const float *bias,
                                             const mrec_act *act, const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool) {
    int64_t n = (int64_t)s->N * s->C_out * mrec_conv2d_out_h(s) * mrec_conv2d_out_w(s);
    float *full = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!full) return mrec_fail(MREC_ERR_NOMEM, "bf16 conv2d: %lld outputs in float", (long long)n);
    mrec_status st = conv2d_bf16_run(full, in, weight, bias, 0.0f, act, s, packs, pool);
    if (!st) mrec_bf16_round_array(out, full, n);
    free(full);
    return st;
}

mrec_status mrec_conv2d_to_bf16_cpu(uint16_t *out, const float *in, const float *weight, const float *bias, int act,
                                    const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool) {
    if (!mrec_cpu_has_bf16()) return mrec_fail(MREC_ERR_UNSUPPORTED, "bf16 conv2d: this CPU has no AVX-512 BF16");
    mrec_act a = (mrec_act)act, *pa = act == MREC_GEMM_NO_ACT ? NULL : &a;
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s), npix = Ho * Wo, krows = s->C_in * s->KH * s->KW;
    if (s->groups != 1 || s->N < 1 || npix < 1) return conv2d_to16_through_float(out, in, weight, bias, pa, s, packs, pool);
    mrec_gemm_fill_pairs pairs = pointwise(s) ? fill_pairs_pointwise : NULL;
    mrec_gemm_images images, *im = NULL;
    unfold u = {in, s, Wo, 0, 0};
    if (s->N > 1) u = whole_batch(in, s, Wo, &images), im = &images; /* the batch as one GEMM, as conv2d_run */
    if (mrec_gemm_bf16_filled_to16(out, weight, fill_panel, pairs, &u, bias, pa, s->C_out, s->N * npix, krows, npix, im, packs,
                                   pool))
        return MREC_OK;
    return conv2d_to16_through_float(out, in, weight, bias, pa, s, packs, pool);
}

mrec_status mrec_conv2d_bf16_cpu(float *out, const float *in, const float *weight, const float *bias,
                                 const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool) {
    return conv2d_bf16_run(out, in, weight, bias, 0.0f, NULL, s, packs, pool);
}

mrec_status mrec_conv2d_act_bf16_cpu(float *out, const float *in, const float *weight, const float *bias, float beta,
                                     mrec_act act, const mrec_conv2d_shape *s, mrec_packs *packs, mrec_pool *pool) {
    return conv2d_bf16_run(out, in, weight, bias, beta, &act, s, packs, pool);
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
                        if (a->is_max) acc = v > acc || isnan(v) ? v : acc; /* PyTorch's rule: the last NaN */
                        else acc += v;
                    }
                if (!a->is_max && !s->count_include_pad) count = (h1 - h0) * (w1 - w0);
                y[(size_t)oh * a->Wo + ow] = a->is_max ? acc : acc / (float)count;
            }
    }
}

/* Max pooling, a row of outputs at a time: each input row of the windows is
 * copied once between -inf borders, and every output of the row then takes
 * its window's values in the order above (row by row, left to right) from
 * those copies, all outputs together in vector lanes. A value replaces the
 * maximum if it is greater or NaN (PyTorch's rule: a NaN wins, the last NaN
 * if several, the first of equal values), so -inf where the window leaves
 * the image changes nothing: the bits of skipping those places. */
#define MAXPOOL_ROW 2048 /* widest padded row the stack copy holds */

static int maxpool_rows_fit(const mrec_pool2d_shape *s, int Wo) {
    return (int64_t)(Wo - 1) * s->stride_w + s->KW <= MAXPOOL_ROW;
}

MREC_VECTOR_CLONES static void maxpool_range(void *arg, int64_t lo, int64_t hi) {
    pool2d_args *a = arg;
    const mrec_pool2d_shape *s = a->s;
    int sw = s->stride_w, wide = (a->Wo - 1) * sw + s->KW; /* padded row: x' = iw + pad_w */
    float row[MAXPOOL_ROW];
    for (int64_t plane = lo; plane < hi; plane++) {
        const float *x = a->in + plane * s->H * s->W;
        float *y = a->out + plane * a->Ho * a->Wo;
        for (int oh = 0; oh < a->Ho; oh++) {
            float *restrict acc = y + (size_t)oh * a->Wo;
            for (int ow = 0; ow < a->Wo; ow++) acc[ow] = -INFINITY;
            int h0 = oh * s->stride_h - s->pad_h, h1 = h0 + s->KH;
            for (int ih = h0 < 0 ? 0 : h0; ih < h1 && ih < s->H; ih++) {
                const float *src = x + (size_t)ih * s->W;
                for (int t = 0; t < wide; t++) {
                    int iw = t - s->pad_w;
                    row[t] = iw >= 0 && iw < s->W ? src[iw] : -INFINITY;
                }
                for (int kw = 0; kw < s->KW; kw++) {
                    const float *restrict r = row + kw;
                    for (int ow = 0; ow < a->Wo; ow++) {
                        float v = r[ow * sw], m = acc[ow];
                        acc[ow] = v > m || v != v ? v : m;
                    }
                }
            }
        }
    }
}

static void pool2d_cpu(float *out, const float *in, const mrec_pool2d_shape *s, int is_max,
                       mrec_pool *pool) {
    pool2d_args a = {out, in, s, mrec_pool2d_out_h(s), mrec_pool2d_out_w(s), is_max};
    int rows = is_max && a.Wo > 0 && maxpool_rows_fit(s, a.Wo);
    mrec_parallel_range(pool, (int64_t)s->N * s->C, 1, rows ? maxpool_range : pool2d_range, &a);
}

void mrec_maxpool2d_cpu(float *out, const float *in, const mrec_pool2d_shape *s, mrec_pool *pool) {
    pool2d_cpu(out, in, s, 1, pool);
}

void mrec_avgpool2d_cpu(float *out, const float *in, const mrec_pool2d_shape *s, mrec_pool *pool) {
    pool2d_cpu(out, in, s, 0, pool);
}
