/* resize.c: PIL's resampling (libImaging/Resample.c's algorithm, restated). */
#include "mrec_image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double bicubic(double x) {
    const double a = -0.5; /* PIL's choice */
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* For each output position: the first source index, the count, and the
 * fixed-point weights (ksize per position). */
static int coefficients(int in_size, double in0, double in1, int out_size, mrec_resample f, int **bounds_out,
                        int32_t **kk_out) {
    double support_base = f == MREC_RESAMPLE_BICUBIC ? 2.0 : 1.0;
    double scale = (in1 - in0) / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = support_base * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    int *bounds = malloc(sizeof *bounds * (size_t)out_size * 2);
    double *k = malloc(sizeof *k * (size_t)ksize);
    int32_t *kk = malloc(sizeof *kk * (size_t)out_size * ksize);
    if (!bounds || !k || !kk) {
        free(bounds), free(k), free(kk);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = in0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = (f == MREC_RESAMPLE_BICUBIC ? bicubic : bilinear)((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? k[x] / ww : k[x]) : 0.0;
            /* to fixed point, rounding half away from zero as PIL */
            kk[(size_t)xx * ksize + x] = (int32_t)(v < 0 ? -0.5 + v * (1 << PRECISION_BITS) : 0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[xx * 2] = xmin, bounds[xx * 2 + 1] = xmax;
    }
    free(k);
    *bounds_out = bounds, *kk_out = kk;
    return ksize;
}

static uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* acc (n) += p (n) k, in vector lanes: AVX-512 and AVX2 versions where the CPU has them (integer sums, so every
 * version gives the same bits). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void add_row(int32_t *restrict acc, const uint8_t *restrict p, int32_t k, size_t n) {
    for (size_t i = 0; i < n; i++) acc[i] += p[i] * k;
}

/* out (n) = the bytes of the sums acc (n), as clip8, in vector lanes likewise */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static void clip_row(uint8_t *restrict out, const int32_t *restrict acc, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = clip8(acc[i]);
}

static void start_row(int32_t *acc, size_t n) {
    for (size_t i = 0; i < n; i++) acc[i] = 1 << (PRECISION_BITS - 1);
}

/* Rows per strip of the horizontal pass. 32 rows of RGB make a column 96 sums (six AVX-512 vectors) and keep
 * the strip (in_w x 32 pixels) small: strips of 64 and 256 rows read the same and made every image's buffers
 * grow and shrink the heap (a fault per page, a sixth of the time) */
#define STRIP_ROWS 32

/* out (rows, out_w, c): each row of in (from row `offset`), resampled. A strip of rows at a time is laid out by
 * columns (t: in_w columns of STRIP_ROWS pixels), so that each output column is a sum of whole source columns
 * in vector lanes (add_row), as the vertical pass sums rows; the integer sums are exact, so their order leaves
 * the bits as PIL's. t holds in_w * STRIP_ROWS pixels, acc the sums of STRIP_ROWS pixels. */
static void horizontal(uint8_t *out, const uint8_t *in, int rows, int in_w, int out_w, int c, int offset, const int *bounds,
                       const int32_t *kk, int ksize, uint8_t *t, int32_t *acc) {
    for (int y0 = 0; y0 < rows; y0 += STRIP_ROWS) {
        int sr = rows - y0 < STRIP_ROWS ? rows - y0 : STRIP_ROWS;
        size_t col = (size_t)sr * c; /* a column of the strip, in t */
        const uint8_t *src = in + (size_t)(y0 + offset) * in_w * c;
        size_t stride = (size_t)in_w * c;
        for (int x = 0; x < in_w; x++) { /* column x of the strip, written in order */
            uint8_t *d = t + (size_t)x * col;
            const uint8_t *p = src + (size_t)x * c;
            if (c == 3)
                for (int y = 0; y < sr; y++, d += 3, p += stride) d[0] = p[0], d[1] = p[1], d[2] = p[2];
            else
                for (int y = 0; y < sr; y++, d += c, p += stride) memcpy(d, p, (size_t)c);
        }
        for (int xx = 0; xx < out_w; xx++) {
            const int32_t *k = kk + (size_t)xx * ksize;
            const uint8_t *first = t + (size_t)bounds[xx * 2] * col;
            start_row(acc, col);
            for (int x = 0; x < bounds[xx * 2 + 1]; x++) add_row(acc, first + (size_t)x * col, k[x], col);
            uint8_t *o = out + ((size_t)y0 * out_w + xx) * c;
            for (int y = 0; y < sr; y++)
                for (int ch = 0; ch < c; ch++) o[(size_t)y * out_w * c + ch] = clip8(acc[(size_t)y * c + ch]);
        }
    }
}

/* out (out_h, w, c): each column of in resampled, a whole row of sums (acc, w c) at a time so that every tap
 * reads one source row in order (the sums exact, as above). */
static void vertical(uint8_t *out, const uint8_t *in, int out_h, int w, int c, const int *bounds, const int32_t *kk, int ksize,
                     int32_t *acc) {
    size_t row = (size_t)w * c;
    for (int yy = 0; yy < out_h; yy++) {
        const int32_t *k = kk + (size_t)yy * ksize;
        int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
        start_row(acc, row);
        for (int y = 0; y < ymax; y++) add_row(acc, in + (size_t)(y + ymin) * row, k[y], row);
        clip_row(out + (size_t)yy * row, acc, row);
    }
}

mrec_status mrec_resize_u8(uint8_t *out, const uint8_t *in, int h, int w, int c, int oh, int ow, mrec_resample filter,
                           const double *box_in) {
    if (h < 1 || w < 1 || c < 1 || c > 4 || oh < 1 || ow < 1 || oh > 65536 || ow > 65536)
        return mrec_fail(MREC_ERR_ARG, "resize: %dx%dx%d to %dx%d", h, w, c, oh, ow);
    double box[4] = {0, 0, w, h};
    if (box_in) memcpy(box, box_in, sizeof box);
    if (box[0] < 0 || box[1] < 0 || box[2] > w || box[3] > h || box[2] <= box[0] || box[3] <= box[1])
        return mrec_fail(MREC_ERR_ARG, "resize: box (%g, %g, %g, %g) outside a %dx%d image", box[0], box[1], box[2], box[3], w, h);
    int *bh, *bv;
    int32_t *kh, *kv;
    int ksh = coefficients(w, box[0], box[2], ow, filter, &bh, &kh);
    int ksv = ksh ? coefficients(h, box[1], box[3], oh, filter, &bv, &kv) : 0;
    if (!ksh || !ksv) {
        if (ksh) free(bh), free(kh);
        return mrec_fail(MREC_ERR_NOMEM, "resize: coefficients");
    }
    int need_h = ow != w || box[0] != 0 || box[2] != ow, need_v = oh != h || box[1] != 0 || box[3] != oh;
    /* Pillow (since 11) runs the vertical pass first when the height shrinks
     * by more than twice as many pixels as the width; the order changes the
     * 8-bit intermediate, so it is kept */
    int h_first = !(h - oh > 0 && h - oh > (w - ow) * 2);
    uint8_t *tmp = NULL;
    /* the vertical pass's row of sums, or the horizontal pass's column; the horizontal pass's strip by columns */
    size_t sums = STRIP_ROWS, widest = (size_t)(w > ow ? w : ow);
    if (need_v && widest > sums) sums = widest;
    int32_t *acc = malloc(sizeof *acc * sums * c + (need_h ? (size_t)w * STRIP_ROWS * c : 0));
    uint8_t *strip = need_h && acc ? (uint8_t *)(acc + sums * c) : NULL;
    mrec_status st = !acc ? mrec_fail(MREC_ERR_NOMEM, "resize: a row of %d pixels", w) : MREC_OK;
    if (!st && need_h && need_v) {
        size_t rows = h_first ? (size_t)(bv[oh * 2 - 2] + bv[oh * 2 - 1] - bv[0]) : (size_t)oh;
        tmp = malloc(rows * (size_t)(h_first ? ow : w) * c);
        if (!tmp) st = mrec_fail(MREC_ERR_NOMEM, "resize: intermediate of %zu rows", rows);
    }
    if (st) {
    } else if (need_h && need_v && h_first) {
        /* only the rows the vertical pass will read */
        int y_first = bv[0], rows = bv[oh * 2 - 2] + bv[oh * 2 - 1] - y_first;
        for (int i = 0; i < oh; i++) bv[i * 2] -= y_first;
        horizontal(tmp, in, rows, w, ow, c, y_first, bh, kh, ksh, strip, acc);
        vertical(out, tmp, oh, ow, c, bv, kv, ksv, acc);
    } else if (need_h && need_v) {
        vertical(tmp, in, oh, w, c, bv, kv, ksv, acc);
        horizontal(out, tmp, oh, w, ow, c, 0, bh, kh, ksh, strip, acc);
    } else if (need_h) {
        horizontal(out, in, oh, w, ow, c, 0, bh, kh, ksh, strip, acc);
    } else if (need_v) {
        vertical(out, in, oh, w, c, bv, kv, ksv, acc);
    } else {
        memcpy(out, in, (size_t)oh * ow * c);
    }
    free(tmp), free(acc), free(bh), free(kh), free(bv), free(kv);
    return st;
}

int mrec_center_crop_offset(int full, int size) {
    /* Python's round(): ties to even, so (full - size) odd gives .5 cases */
    double x = (full - size) / 2.0;
    return (int)nearbyint(x);
}

void mrec_shorter_side_size(int h, int w, int shorter, int *oh, int *ow) {
    if (h <= w) {
        *oh = shorter;
        *ow = (int)((long long)shorter * w / h);
    } else {
        *ow = shorter;
        *oh = (int)((long long)shorter * h / w);
    }
}

void mrec_to_float_chw(float *out, const uint8_t *in, int h, int w, int c, const float *mean, const float *std) {
    for (int ch = 0; ch < c; ch++)
        for (int i = 0; i < h * w; i++) {
            float x = (float)in[(size_t)i * c + ch] / 255.0f; /* ToTensor: divide in float */
            out[(size_t)ch * h * w + i] = (x - mean[ch]) / std[ch];
        }
}
