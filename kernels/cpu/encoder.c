/* encoder.c: the encoders' steps around their layers (mrec_kernels.h,
 * "encoders"): the naive references and the CPU versions side by side.
 *
 * These ops move data more than they compute, so the fast versions are the
 * reference loops split over the pool. The CPU versions compute each value
 * with the same float expression the models' host loops used before these
 * ops existed (word + type + position, in that order), so outputs did not
 * change by a bit when the models moved onto them. The references add in
 * double, as every _ref does.
 */
#include "../mrec_kernels.h"
#include "parallel.h"

#include <float.h>
#include <string.h>

/* ---- references ---------------------------------------------------------- */

void mrec_embedding_sum_ref(float *out, const float *word, const int32_t *ids, const float *type, const int32_t *type_ids,
                            const float *position, const int32_t *pos, int N, int H) {
    for (int i = 0; i < N; i++) {
        const float *w = word + (size_t)ids[i] * H, *p = position + (size_t)pos[i] * H;
        const float *y = type ? type + (size_t)(type_ids ? type_ids[i] : 0) * H : NULL;
        for (int h = 0; h < H; h++) out[(size_t)i * H + h] = (float)((double)w[h] + (y ? y[h] : 0.0) + p[h]);
    }
}

void mrec_position_ids_ref(int32_t *pos, const int32_t *ids, int pad_id, int B, int T) {
    for (int b = 0; b < B; b++) {
        int real = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            if (pad_id < 0) pos[i] = t;
            else pos[i] = ids[i] != pad_id ? pad_id + ++real : pad_id;
        }
    }
}

void mrec_mask_bias_ref(float *out, const int32_t *mask, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = mask && !mask[i] ? -FLT_MAX : 0.0f;
}

void mrec_rel_bias_ref(float *out, const float *table, const int32_t *bucket, int heads, int T) {
    for (int h = 0; h < heads; h++)
        for (int q = 0; q < T; q++)
            for (int k = 0; k < T; k++) out[((size_t)h * T + q) * T + k] = table[(size_t)bucket[k - q + T - 1] * heads + h];
}

void mrec_causal_bias_ref(float *out, int heads, int T) {
    for (int h = 0; h < heads; h++)
        for (int q = 0; q < T; q++)
            for (int k = 0; k < T; k++) out[((size_t)h * T + q) * T + k] = k > q ? -FLT_MAX : 0.0f;
}

void mrec_patchify_ref(float *out, const float *images, int B, int C, int S, int P) {
    int G = S / P;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++)
                for (int c = 0; c < C; c++)
                    for (int y = 0; y < P; y++)
                        for (int x = 0; x < P; x++)
                            out[((((size_t)b * G + gy) * G + gx) * C + c) * P * P + (size_t)y * P + x] =
                                images[(((size_t)b * C + c) * S + (size_t)gy * P + y) * S + (size_t)gx * P + x];
}

void mrec_class_embed_ref(float *x, const float *cls, const float *pos, int B, int T, int H) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                float *v = x + ((size_t)b * T + t) * H + h;
                *v = (float)((double)(t == 0 ? cls[h] : *v) + pos[(size_t)t * H + h]);
            }
}

void mrec_copy_rows_ref(float *out, int ld_out, const float *in, int ld_in, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) out[(size_t)r * ld_out + c] = in[(size_t)r * ld_in + c];
}

/* ---- CPU ----------------------------------------------------------------- */

#define ELEMS_PER_CHUNK 16384

static int64_t rows_per_chunk(int64_t row) {
    int64_t r = ELEMS_PER_CHUNK / (row > 0 ? row : 1);
    return r > 0 ? r : 1;
}

typedef struct {
    float *out;
    const float *word, *type, *position;
    const int32_t *ids, *type_ids, *pos;
    int H;
} embed_args;

static void embed_range(void *arg, int64_t lo, int64_t hi) {
    const embed_args *a = arg;
    int H = a->H;
    for (int64_t i = lo; i < hi; i++) {
        const float *w = a->word + (size_t)a->ids[i] * H, *p = a->position + (size_t)a->pos[i] * H;
        float *x = a->out + (size_t)i * H;
        if (a->type) {
            const float *y = a->type + (size_t)(a->type_ids ? a->type_ids[i] : 0) * H;
            for (int h = 0; h < H; h++) x[h] = w[h] + y[h] + p[h];
        } else {
            for (int h = 0; h < H; h++) x[h] = w[h] + p[h];
        }
    }
}

void mrec_embedding_sum_cpu(float *out, const float *word, const int32_t *ids, const float *type, const int32_t *type_ids,
                            const float *position, const int32_t *pos, int N, int H, mrec_pool *pool) {
    embed_args a = {out, word, type, position, ids, type_ids, pos, H};
    mrec_parallel_range(pool, N, rows_per_chunk(H), embed_range, &a);
}

void mrec_position_ids_cpu(int32_t *pos, const int32_t *ids, int pad_id, int B, int T, mrec_pool *pool) {
    (void)pool; /* B * T integers: not worth a thread */
    mrec_position_ids_ref(pos, ids, pad_id, B, T);
}

typedef struct {
    float *out;
    const int32_t *mask;
} mask_args;

static void mask_range(void *arg, int64_t lo, int64_t hi) {
    const mask_args *a = arg;
    for (int64_t i = lo; i < hi; i++) a->out[i] = a->mask && !a->mask[i] ? -FLT_MAX : 0.0f;
}

void mrec_mask_bias_cpu(float *out, const int32_t *mask, int64_t n, mrec_pool *pool) {
    mask_args a = {out, mask};
    mrec_parallel_range(pool, n, ELEMS_PER_CHUNK, mask_range, &a);
}

typedef struct {
    float *out;
    const float *table;
    const int32_t *bucket;
    int heads, T;
} bias_args;

/* one task range over the (heads * T) query rows */
static void rel_range(void *arg, int64_t lo, int64_t hi) {
    const bias_args *a = arg;
    int T = a->T;
    for (int64_t r = lo; r < hi; r++) {
        int h = (int)(r / T), q = (int)(r % T);
        float *y = a->out + (size_t)r * T;
        for (int k = 0; k < T; k++) y[k] = a->table[(size_t)a->bucket[k - q + T - 1] * a->heads + h];
    }
}

static void causal_range(void *arg, int64_t lo, int64_t hi) {
    const bias_args *a = arg;
    int T = a->T;
    for (int64_t r = lo; r < hi; r++) {
        int q = (int)(r % T);
        float *y = a->out + (size_t)r * T;
        for (int k = 0; k < T; k++) y[k] = k > q ? -FLT_MAX : 0.0f;
    }
}

void mrec_rel_bias_cpu(float *out, const float *table, const int32_t *bucket, int heads, int T, mrec_pool *pool) {
    bias_args a = {out, table, bucket, heads, T};
    mrec_parallel_range(pool, (int64_t)heads * T, rows_per_chunk(T), rel_range, &a);
}

void mrec_causal_bias_cpu(float *out, int heads, int T, mrec_pool *pool) {
    bias_args a = {out, NULL, NULL, heads, T};
    mrec_parallel_range(pool, (int64_t)heads * T, rows_per_chunk(T), causal_range, &a);
}

typedef struct {
    float *out;
    const float *images;
    int C, S, P;
} patch_args;

/* one task range over the B * G * G patches; each patch is C * P rows of P pixels */
static void patch_range(void *arg, int64_t lo, int64_t hi) {
    const patch_args *a = arg;
    int C = a->C, S = a->S, P = a->P, G = S / P;
    for (int64_t at = lo; at < hi; at++) {
        int64_t b = at / ((int64_t)G * G);
        int gy = (int)(at / G % G), gx = (int)(at % G);
        float *row = a->out + (size_t)at * C * P * P;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < P; y++)
                memcpy(row + ((size_t)c * P + y) * P, a->images + (((size_t)b * C + c) * S + (size_t)gy * P + y) * S + (size_t)gx * P,
                       sizeof(float) * (size_t)P);
    }
}

void mrec_patchify_cpu(float *out, const float *images, int B, int C, int S, int P, mrec_pool *pool) {
    int G = S / P;
    patch_args a = {out, images, C, S, P};
    mrec_parallel_range(pool, (int64_t)B * G * G, rows_per_chunk((int64_t)C * P * P), patch_range, &a);
}

typedef struct {
    float *x;
    const float *cls, *pos;
    int T, H;
} class_args;

/* one task range over the B * T rows */
static void class_range(void *arg, int64_t lo, int64_t hi) {
    const class_args *a = arg;
    int T = a->T, H = a->H;
    for (int64_t r = lo; r < hi; r++) {
        float *x = a->x + (size_t)r * H;
        const float *p = a->pos + (size_t)(r % T) * H;
        if (r % T == 0)
            for (int h = 0; h < H; h++) x[h] = a->cls[h] + p[h];
        else
            for (int h = 0; h < H; h++) x[h] = x[h] + p[h];
    }
}

void mrec_class_embed_cpu(float *x, const float *cls, const float *pos, int B, int T, int H, mrec_pool *pool) {
    class_args a = {x, cls, pos, T, H};
    mrec_parallel_range(pool, (int64_t)B * T, rows_per_chunk(H), class_range, &a);
}

void mrec_copy_rows_cpu(float *out, int ld_out, const float *in, int ld_in, int rows, int cols, mrec_pool *pool) {
    (void)pool; /* a few rows per call (one per sequence): memory bound and small */
    for (int r = 0; r < rows; r++) memcpy(out + (size_t)r * ld_out, in + (size_t)r * ld_in, sizeof(float) * (size_t)cols);
}
