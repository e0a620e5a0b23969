/* gemm_internal.h: what the GEMM driver shares with its micro-kernels.
 *
 * The driver (gemm.c) packs blocks of op(A) into row panels of MR rows and
 * blocks of op(B) into column panels of NR columns, zero-padded at the
 * edges, so a micro-kernel always sees the same layout:
 *   a: (kc, MR) — for each k, MR consecutive values of one column of A
 *   b: (kc, NR) — for each k, NR consecutive values of one row of B
 * and adds alpha * a^T b into the (m, n) corner of C (m <= MR, n <= NR), or,
 * with MREC_UK_OVERWRITE in its flags, stores it there without reading C, or
 * on the first K block stores it plus beta * C + bias (mrec_uk_start). With
 * MREC_UK_RELU (the last K block of a GEMM followed by a ReLU) it stores
 * max(x, 0) instead, NaN as 0 (mrec_activation_cpu's ReLU), so no pass
 * after the store reads each value back.
 */
#ifndef MREC_GEMM_INTERNAL_H
#define MREC_GEMM_INTERNAL_H

#include "../mrec_kernels.h"
#include "vector_act.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* f to bf16, round to nearest even (torch's .to(torch.bfloat16)); NaN stays NaN. */
static inline uint16_t mrec_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* out[i] = in[i] rounded as VCVTNEPS2BF16 rounds it (the bf16 GEMM's stores): nearest even; on CPUs with
 * AVX-512 BF16 only */
void mrec_bf16_round_array(uint16_t *out, const float *in, int64_t n);

static inline float mrec_bf16_widen(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Cache blocking: an A block (MC x KC) stays in L2, a B panel (KC x NR) in
 * L1, a B block (KC x NC) in L2/L3. MC is a multiple of every MR below. */
#define MREC_GEMM_MC 144
#define MREC_GEMM_KC 256
#define MREC_GEMM_NC 384
#define MREC_GEMM_SCRATCH_FLOATS \
    ((size_t)MREC_GEMM_MC * MREC_GEMM_KC + (size_t)MREC_GEMM_KC * (MREC_GEMM_NC + 32))

/* What C starts from on the first K block, where the GEMM has a beta or a
 * bias: beta * C + bias[j] (or + row_bias[i]), the values
 * mrec_gemm_prologue would have written into C first. The micro-kernel
 * forms them in its store instead, C = alpha * acc + start: the same bits,
 * and C goes through the cache once (a pass of its own was 3 % of a ViT
 * forward). bias and row_bias point at the tile's first column and row;
 * at most one of them is set. */
typedef struct {
    const float *bias, *row_bias;
    float beta;
} mrec_uk_start;

enum {
    MREC_UK_OVERWRITE = 1,
    MREC_UK_RELU = 2,
    MREC_UK_SILU_BF16 = 4, /* the bf16 kernels: mrec_silu16_bf16 */
    MREC_UK_OUT_BF16 = 8   /* the bf16 kernels, overwriting: c is bf16 storage (uint16_t), each value rounded to nearest even */
};

/* C's (m, n) corner = alpha * acc + start (start set), = alpha * acc
 * (MREC_UK_OVERWRITE), or += alpha * acc; then the ReLU (MREC_UK_RELU). */
typedef void (*mrec_ukernel_fn)(int kc, const float *a, const float *b, float *c, int ldc,
                                float alpha, int m, int n, int flags, const mrec_uk_start *start);
/* The same sums with A read in place: a[i] is row i's first element (rows
 * past m repeat row m - 1; their sums are never stored). Where B has few
 * panels, packing A costs more than the strided reads. */
typedef void (*mrec_ukernel_rows_fn)(int kc, const float *const *a, const float *b, float *c, int ldc,
                                     float alpha, int m, int n, int flags, const mrec_uk_start *start);

/* avx2 + fma: 6 rows x 16 columns (12 ymm accumulators). */
#define MREC_UK_AVX2_MR 6
#define MREC_UK_AVX2_NR 16
void mrec_ukernel_avx2(int kc, const float *a, const float *b, float *c, int ldc,
                       float alpha, int m, int n, int flags, const mrec_uk_start *start);
void mrec_ukernel_avx2_rows(int kc, const float *const *a, const float *b, float *c, int ldc,
                            float alpha, int m, int n, int flags, const mrec_uk_start *start);

/* avx512f: 12 rows x 32 columns (24 zmm accumulators), and 8 x 48 for M a
 * multiple of 8 but not of 12. */
#define MREC_UK_AVX512_MR 12
#define MREC_UK_AVX512_NR 32
void mrec_ukernel_avx512(int kc, const float *a, const float *b, float *c, int ldc,
                         float alpha, int m, int n, int flags, const mrec_uk_start *start);
#define MREC_UK_AVX512_8_MR 8
#define MREC_UK_AVX512_8_NR 48
void mrec_ukernel_avx512_8x48(int kc, const float *a, const float *b, float *c, int ldc,
                              float alpha, int m, int n, int flags, const mrec_uk_start *start);
void mrec_ukernel_avx512_rows(int kc, const float *const *a, const float *b, float *c, int ldc,
                              float alpha, int m, int n, int flags, const mrec_uk_start *start);
void mrec_ukernel_avx512_8x48_rows(int kc, const float *const *a, const float *b, float *c, int ldc,
                                   float alpha, int m, int n, int flags, const mrec_uk_start *start);

/* One NR-wide panel of a transposed B: dst (kc, NR) with dst[k][j] =
 * src[j * ldb + k] for j < cols, zero beyond (avx512f). */
void mrec_pack_bt_avx512(float *dst, const float *src, int ldb, int kc, int cols, int NR);
/* The same with 8 x 8 blocks (avx2). */
void mrec_pack_bt_avx2(float *dst, const float *src, int ldb, int kc, int cols, int NR);
/* One MR-row panel of a row-major A: dst (kc, MR) with dst[k][i] =
 * src[r_i * lda + k] for i < rows, zero beyond, where r_i = idx[i] (rows
 * through an index: a gather in the packing) or i (idx NULL); MR <= 16
 * (avx512f). */
void mrec_pack_a_avx512(float *dst, const float *src, int lda, const int32_t *idx, int kc, int rows, int MR);
void mrec_pack_at_avx512(float *dst, const float *src, int lda, int kc, int rows, int MR); /* op(A) = A^T */
/* The same for the avx2 kernel's MR = 6, through 8 x 8 register transposes. */
void mrec_pack_a_avx2(float *dst, const float *src, int lda, const int32_t *idx, int kc, int rows);
void mrec_pack_at_avx2(float *dst, const float *src, int lda, int kc, int rows); /* op(A) = A^T */
/* Panels [0, panels) of a row-major B: panel p at dst + p * panel_stride,
 * (kc, NR) with dst[k][j] = src[r_k * ldb + p * NR + j] for p * NR + j <
 * cols, zero beyond, r_k = idx[k] or k (idx NULL); NR a multiple of 8. */
void mrec_pack_b_avx2(float *dst, const float *src, int ldb, const int32_t *idx, int kc, int cols, int NR, int panels,
                      size_t panel_stride);

/* C = beta * C + bias on rows [i0, i0+mc), columns [j0, j0+nc), before a
 * GEMM adds alpha * op(A) op(B) (beta = 0 ignores C, NaN included). bias is
 * one per column, or row_bias one per row (a convolution's); at most one of
 * them is set. */
static inline void mrec_gemm_prologue(float *C, int ldc, float beta, const float *bias, const float *row_bias, int i0, int mc,
                                      int j0, int nc) {
    for (int i = 0; i < mc; i++) {
        float *c = C + (size_t)(i0 + i) * ldc + j0;
        for (int j = 0; j < nc; j++) {
            float v = beta == 0.0f ? 0.0f : beta * c[j];
            c[j] = bias ? v + bias[j0 + j] : row_bias ? v + row_bias[i0 + i] : v;
        }
    }
}

/* act on C's (m x n) corner at c, once its sums are whole (a linear layer's
 * activation, applied to each tile while it is in cache). ReLU inline: a
 * call per row of a tile cost as much as the ReLU's own pass over memory.
 * The others at the pool's SIMD level, as mrec_activation_cpu on it. */
static inline void mrec_gemm_activate(float *c, int ldc, int m, int n, mrec_act act, const struct mrec_pool *pool) {
    if (act == MREC_ACT_RELU) {
        for (int i = 0; i < m; i++) {
            float *restrict r = c + (size_t)i * ldc;
            for (int j = 0; j < n; j++) r[j] = r[j] > 0.0f ? r[j] : 0.0f; /* NaN to 0, as mrec_activation_cpu */
        }
        return;
    }
    mrec_activation_rows_cpu(c, ldc, m, n, act, 0.0f, pool);
}

/* The same in a bf16 context (AVX-512 BF16), where what reads C next rounds it to bf16: swish to that precision
 * (mrec_silu_bf16_avx512), the others as above */
static inline void mrec_gemm_activate_bf16(float *c, int ldc, int m, int n, mrec_act act, const struct mrec_pool *pool) {
    if (act != MREC_ACT_SILU) {
        mrec_gemm_activate(c, ldc, m, n, act, pool);
        return;
    }
    for (int i = 0; i < m; i++) mrec_silu_bf16_avx512(c + (size_t)i * ldc, c + (size_t)i * ldc, n);
}

/* op(B) from a function instead of a matrix: fill(arg, dst, p0, kc, j0,
 * cols, NR) writes the (kc, NR) panel of op(B) rows [p0, p0 + kc), columns
 * [j0, j0 + cols), zero past cols. A convolution fills panels straight from
 * its input (an implicit im2col) and never writes the unfolded matrix. Its
 * bias is one per row of C (row_bias, or NULL): C = act(alpha op(A) op(B) +
 * beta C + row_bias), act NULL for none. Same contract as
 * mrec_gemm_packed_cpu otherwise (A may be packed once). */
struct mrec_packs;
struct mrec_pool;
typedef void (*mrec_gemm_fill_b)(void *arg, float *dst, int p0, int kc, int j0, int cols, int NR);
void mrec_gemm_filled_cpu(float *C, const float *A, mrec_gemm_fill_b fill, void *fill_arg, const float *row_bias, float alpha,
                          float beta, int M, int N, int K, int lda, int ldc, const mrec_act *act, struct mrec_packs *packs,
                          struct mrec_pool *pool);

/* A filled GEMM's C over several images (a convolution's batch as one
 * GEMM, so a late layer's few pixels per image still make whole panels and
 * enough tasks): column j of row i is pixel j % cols of image j / cols, at
 * C + (j / cols) * image + i * ldc + j % cols (ldc = cols: an NCHW output).
 * A micro-kernel's tile that spans two images goes through a small buffer
 * (mrec_images_tile); any other is written in place. */
typedef struct {
    int cols;      /* columns (pixels) per image */
    int64_t image; /* floats from one image's C to the next */
} mrec_gemm_images;

/* Where C's row i, column j lies (elements from C), and how many columns from j lie in the same image (at most n). */
static inline int64_t mrec_images_offset(const mrec_gemm_images *im, int ldc, int i, int j, int n, int *run) {
    if (!im) return *run = n, (int64_t)i * ldc + j;
    int at = j % im->cols;
    *run = im->cols - at < n ? im->cols - at : n;
    return (j / im->cols) * im->image + (int64_t)i * ldc + at;
}

static inline float *mrec_images_at(const mrec_gemm_images *im, float *C, int ldc, int i, int j, int n, int *run) {
    return C + mrec_images_offset(im, ldc, i, j, n, run);
}

/* C's (m x n) tile at row i, column j into buf (rows NR apart), or back. */
static inline void mrec_images_tile(const mrec_gemm_images *im, float *C, int ldc, int i, int j, int m, int n, float *buf, int NR,
                                    int out) {
    for (int c = 0, run; c < n; c += run) {
        float *at = mrec_images_at(im, C, ldc, i, j + c, n - c, &run);
        for (int r = 0; r < m; r++)
            for (int t = 0; t < run; t++) {
                float *x = at + (size_t)r * ldc + t, *b = buf + (size_t)r * NR + c + t;
                if (out) *x = *b;
                else *b = *x;
            }
    }
}

/* How many tasks split `panels` column panels, at most `most` each: at least two per thread where there are
 * panels enough, a multiple of the threads, task t taking panels [t panels / tasks, (t + 1) panels / tasks).
 * Chunks of `most` left a remainder: 13 panels as 4 + 4 + 4 + 1 kept one thread 8 panels, the other 5. */
static inline int mrec_panel_tasks(int panels, int most, int threads) {
    int tasks = (panels + most - 1) / most;
    if (tasks < 2 * threads) tasks = 2 * threads;
    tasks = (tasks + threads - 1) / threads * threads;
    return tasks < panels ? tasks : panels;
}

/* mrec_gemm_filled_cpu with C over images (images->cols * images' count = N); 0 (nothing written) where the
 * weights are not packed in `packs` (that path alone takes images), or K is 0. */
int mrec_gemm_filled_images_cpu(float *C, const float *A, mrec_gemm_fill_b fill, void *fill_arg, const float *row_bias, float beta,
                                int M, int N, int K, const mrec_gemm_images *images, const mrec_act *act,
                                struct mrec_packs *packs, struct mrec_pool *pool);

/* A pack set's copy of weight w (N, K) in one layout (tag), made on first
 * use by make(dst, arg) into `bytes` bytes (make returns 0 if it could not:
 * nothing is kept); NULL when w is outside the set's storage or memory runs
 * out. Holds the set's lock while it packs. */
#define MREC_PACK_TAG_BF16 (-1)
#define MREC_PACK_TAG_BF16_A (-100) /* minus the row panel's height */
#define MREC_PACK_TAG_WINOGRAD (-1000000) /* plus the A layout's tag */
#define MREC_PACK_TAG_BF16_WINOGRAD (-2000000) /* Winograd's U in bf16 (mrec_gemm_bf16_pack_wt) */
#define MREC_PACK_TAG_BF16_NHWC (-3000000) /* a channels-last conv's (C_out, KH KW C_in) weight, mrec_gemm_bf16_pack_wt */
#define MREC_PACK_TAG_BF16_WINOGRAD_NHWC (-4000000) /* its Winograd U, from the channels-last weight */
const void *mrec_packs_cached(struct mrec_packs *p, const float *w, int N, int K, int tag, size_t bytes,
                              int (*make)(void *dst, void *arg), void *arg);

/* A weight packed by its caller (a convolution's filters after a transform):
 * mrec_gemm_b_layout gives the tag and bytes of the packed op(B) = W^T of a
 * W (N, K) for an M x N x K GEMM on `pool`; mrec_gemm_pack_wt_cpu writes that
 * copy of a row-major W (row stride ldw); mrec_gemm_bpacked_cpu then computes
 * C (M, N) = op(A) W^T, overwriting C, with op(A) = A (M, K) or, if trans_a,
 * A^T for A (K, M), row stride lda. M must exceed MREC_GEMM_FEW_ROWS. */
int mrec_gemm_b_layout(int M, int N, int K, struct mrec_pool *pool, size_t *bytes);
void mrec_gemm_pack_wt_cpu(float *dst, const float *W, int M, int N, int K, int ldw, struct mrec_pool *pool);
void mrec_gemm_bpacked_cpu(float *C, const float *A, int trans_a, int lda, const float *bpacked, int M, int N, int K, int ldc,
                           struct mrec_pool *pool);

/* One item of mrec_gemm_batched_cpu (beta 0) on the calling thread, a task
 * of `pool` numbered `thread`, whose scratch it uses: the bits that item
 * gets in a batch of `batch`, with no pool round of its own (attention runs
 * a head's products and softmax in one task while its scores are in cache). */
void mrec_gemm_item_cpu(float *C, const float *A, const float *B, float alpha, int trans_a, int trans_b, int batch, int M, int N,
                        int K, int lda, int ldb, int ldc, struct mrec_pool *pool, int thread);

/* One item of mrec_gemm_bf16_batched on the calling thread (as
 * mrec_gemm_item_cpu), where mrec_gemm_bf16_item_fits says its packing fits
 * a thread's scratch; else nothing is written. */
int mrec_gemm_bf16_item_fits(int M, int N, int K, struct mrec_pool *pool);
void mrec_gemm_bf16_item(float *C, const float *A, const float *B, float alpha, int trans_a, int trans_b, int M, int N, int K,
                         int lda, int ldb, int ldc, struct mrec_pool *pool, int thread);

/* One head of attention in a bf16 context on the calling thread, through the
 * AMX tiles, 32 queries at a time: out (T, dh) = softmax(scale q k^T +
 * head_bias + mask) v, with q, k, v and out rows ld floats apart, head_bias
 * (T, T) or NULL, mask (T) or NULL. The bits of the two items and the
 * softmax that attention runs otherwise (mrec_gemm_bf16_item, then
 * mrec_softmax_rows_lanes_span_cpu), where mrec_attention_head_amx_fits
 * says the pool has the tiles and the head fits a thread's scratch; the
 * scores of 32 queries stay in L1 in place of a T x T buffer in L2. */
int mrec_attention_head_amx_fits(int T, int dh, struct mrec_pool *pool);
void mrec_attention_head_amx(float *out, const float *q, const float *k, const float *v, const float *mask, const float *head_bias,
                             float scale, int T, int dh, int ld, struct mrec_pool *pool, int thread);
/* The first two passes of a row of mrec_softmax_rows_lanes_span_cpu (ops.c,
 * CPUs with AVX-512): y = exp(x + m - max) (m NULL: none); returns 1 / the
 * sum, by which the softmax multiplies y. */
float mrec_softmax_row_exp_lanes(float *y, const float *x, const float *m, int C);

/* gemm_bf16.c (AVX-512 BF16): the GEMM with bf16 products and fp32 sums,
 * then act on each tile of C once it is whole (act NULL: none); 0 when
 * memory for packing B runs out (nothing written). */
struct mrec_pool;
int mrec_gemm_bf16_run(float *C, const float *A, const float *B, const float *bias, float alpha, float beta, int trans_a,
                       int trans_b, int M, int N, int K, int lda, int ldb, int ldc, const mrec_act *act,
                       struct mrec_packs *packs, struct mrec_pool *pool);
/* C_b = alpha op(A_b) op(B_b) for b < batch, item b at A + b stride_a and so
 * on, in bf16 (beta 0, no bias): a task per item on one thread (attention's
 * heads). 0 (nothing written) where an item's packing does not fit a
 * thread's scratch, or K is 0: the caller computes it in fp32. */
int mrec_gemm_bf16_batched(float *C, const float *A, const float *B, float alpha, int trans_a, int trans_b, int batch, int M,
                           int N, int K, int lda, int ldb, int ldc, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                           struct mrec_pool *pool);
/* A weight W (N, K) row-major, the B^T of C = op(A) W^T, rounded to bf16
 * and packed once (mrec_gemm_bf16_wt_bytes bytes, 64-byte aligned), then
 * one such GEMM on the calling thread from that copy (beta 0, no bias; M,
 * N, K > 0): the packing of its A needs only a few rows of the thread's
 * scratch. Winograd's 16 products per tile in bf16. */
size_t mrec_gemm_bf16_wt_bytes(int N, int K);
void mrec_gemm_bf16_pack_wt(void *dst, const float *W, int N, int K, int ldw);
/* W (N, K) as mrec_gemm_bf16_pack_wt packs it: from packs, under tag, where
 * W lies in them (packed on first use), else packed into *own (the caller
 * frees it; NULL when none was needed). NULL when memory runs out. */
const void *mrec_gemm_bf16_wt(struct mrec_packs *packs, const float *W, int N, int K, int tag, void **own);
void mrec_gemm_bf16_item_wt(float *C, const float *A, int trans_a, const void *wt, int M, int N, int K, int lda, int ldc,
                            struct mrec_pool *pool, int thread);
/* The same with op(A) given as bf16 pairs, rounded before: pair p (columns
 * 2p, 2p + 1) of row i of op(A) at A[p * lda + i]. */
void mrec_gemm_bf16_item_pairs_wt(float *C, const uint32_t *A, const void *wt, int M, int N, int K, int lda, int ldc,
                                  struct mrec_pool *pool, int thread);
/* A convolution's GEMM in bf16: C (M, N) = act(A op(B) + beta C + row_bias)
 * (row_bias NULL: none; act NULL: none), A (M, K) row-major with lda = K (the
 * weights, packed once where they lie in packs), op(B) filled in fp32 panel
 * by panel by fill (as for mrec_gemm_filled_cpu) and rounded to bf16, or,
 * where pairs is not NULL, written as bf16 pairs by pairs(arg, dst, p0, kc,
 * j0, cols, NR) (pair rows [p0, p0 + kc) of the panel, the lanes past cols
 * zero). C over images where images is not NULL (then ldc = images->cols);
 * 0 when memory for packing A runs out (nothing written). */
typedef void (*mrec_gemm_fill_pairs)(void *arg, uint32_t *dst, int p0, int kc, int j0, int cols, int NR);
int mrec_gemm_bf16_filled(float *C, const float *A, mrec_gemm_fill_b fill, mrec_gemm_fill_pairs pairs, void *fill_arg,
                          const float *row_bias, float beta, const mrec_act *act, int M, int N, int K, int ldc,
                          const mrec_gemm_images *images, struct mrec_packs *packs, struct mrec_pool *pool);
/* The same with C in bf16 (uint16_t, each value rounded to nearest even once whole, after act), beta 0: act
 * NULL, ReLU or swish, and K at most MREC_GEMM_BF16_TO16_MAX_K (C's sums in one block of k). 0 where it does
 * not apply or memory for packing A runs out (nothing written): the caller computes C in fp32 and rounds it. */
#define MREC_GEMM_BF16_TO16_MAX_K 1024
int mrec_gemm_bf16_filled_to16(uint16_t *C, const float *A, mrec_gemm_fill_b fill, mrec_gemm_fill_pairs pairs, void *fill_arg,
                               const float *row_bias, const mrec_act *act, int M, int N, int K, int ldc,
                               const mrec_gemm_images *images, struct mrec_packs *packs, struct mrec_pool *pool);
/* Rows [0, rows) of a row-major x (row stride ld), columns [0, cols), as
 * (rows + 1) / 2 pair rows of a bf16 B panel at dst (stride NR; an odd
 * last row paired with zero; lanes [cols, NR) untouched): for a fill_pairs
 * whose rows of op(B) lie in its input as they are, with no fp32 copy. */
void mrec_gemm_bf16_pair_rows(uint32_t *dst, int NR, const float *x, size_t ld, int rows, int cols);

/* Winograd F(2x2, 3x3)'s filter transform (Lavin and Gray, 2016): the
 * 4x4 U = G g G^T, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1], of a 3x3
 * filter g whose tap (kh, kw) is g[(3 kh + kw) step] (step 1 in NCHW
 * weights, C_in in channels-last ones); u[4 r + c]. */
static inline void mrec_winograd_filter(const float *g, size_t step, float u[16]) {
    float t[4][3]; /* G g */
    for (int c = 0; c < 3; c++) {
        float g0 = g[c * step], g1 = g[(3 + c) * step], g2 = g[(6 + c) * step];
        t[0][c] = g0, t[1][c] = 0.5f * (g0 + g1 + g2), t[2][c] = 0.5f * (g0 - g1 + g2), t[3][c] = g2;
    }
    for (int r = 0; r < 4; r++) { /* (G g) G^T */
        u[4 * r] = t[r][0];
        u[4 * r + 1] = 0.5f * (t[r][0] + t[r][1] + t[r][2]);
        u[4 * r + 2] = 0.5f * (t[r][0] - t[r][1] + t[r][2]);
        u[4 * r + 3] = t[r][2];
    }
}

/* Where mrec_gemm_bf16_rows writes C (M, N), rows ldc apart, items
 * item_stride apart: fp32 (c32 = sum + bias + beta C) or bf16 (c16 =
 * round(relu(sum + bias + beta C)), then, where act16 is not NULL,
 * act16[that]: a bf16 activation's table, mrec_bf16_act_table). bias (N) or
 * NULL; relu 0 or 1. */
typedef struct {
    float *c32;
    uint16_t *c16;
    int64_t item_stride;
    int ldc;
    const float *bias;
    float beta;
    int relu;
    const uint16_t *act16;
} mrec_gemm_rows_out;

/* C (M, N) = A B for each of `batch` items, in bf16 products and fp32
 * sums, A's rows as bf16 pairs from fill(arg, item, dst, mr, i0, rows, p0,
 * kc): the panel (kc, mr) of rows [i0, i0 + rows) and pairs [p0, p0 + kc),
 * dst[p * mr + t], rows past `rows` zero. B is item's packed weight
 * (mrec_gemm_bf16_pack_wt of B^T (N, K)) at wt + item * wt_stride bytes.
 * C as `out` says. */
typedef void (*mrec_gemm_fill_a)(void *arg, int item, uint32_t *dst, int mr, int i0, int rows, int p0, int kc);
void mrec_gemm_bf16_rows(const mrec_gemm_rows_out *out, mrec_gemm_fill_a fill, void *arg, const void *wt, size_t wt_stride,
                         int batch, int M, int N, int K, struct mrec_pool *pool);
/* The same where A's rows lie in memory as bf16 pairs (row i's pairs at a + i * lda) and the pool has AMX
 * tiles: they read A in place. 0 (nothing written) where it does not apply: no tiles, a few rows, or K
 * not whole tiles (a multiple of 32). */
int mrec_gemm_bf16_rows_amx(const mrec_gemm_rows_out *out, const uint32_t *a, size_t lda, const void *wt, int M, int N, int K,
                            struct mrec_pool *pool);
/* One head of mrec_attention_bf16_cpu through AMX tiles, on the calling thread: L queries, keys and values
 * (rows ld apart, the head's first feature first) into out (rows ldo apart); mask (L) or NULL, head_bias
 * (L rows ldh apart) or NULL. _fits: the pool has the tiles and a head of T x dh fits the thread's scratch. */
int mrec_attention_bf16_amx_fits(int T, int dh, struct mrec_pool *pool);
void mrec_attention_head_bf16_amx(uint16_t *out, size_t ldo, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                                  const float *mask, const float *head_bias, int ldh, float scale, int L, int dh,
                                  struct mrec_pool *pool, int thread);
/* A panel (kc, mr) of pairs from mr rows of pairs (rows[t] at the panel's
 * first pair of row t; NULL: a row of zeros), for a fill. */
void mrec_bf16_panel_from_rows(uint32_t *dst, int mr, const uint32_t *const *rows, int kc);

#endif
