/* gemm_bf16.c: GEMM with bf16 products and fp32 sums, on CPUs with
 * AVX-512 BF16 (VDPBF16PS). Built with -mavx512f -mavx512bf16 and only
 * called when cpuid says the CPU has them (mrec_cpu_has_bf16).
 *
 * C = alpha * op(A) op(B) + beta * C + bias, where op(A) and op(B) are
 * rounded to bf16 (round to nearest even, as torch's .to(bfloat16) and
 * CPU autocast do) and every product is summed in fp32. A product of two
 * bf16 values is exact in fp32, so the result is an fp32 sum of exact
 * products: the error bound of an fp32 GEMM on the rounded inputs.
 *
 * VDPBF16PS multiplies pairs: each 32-bit lane holds two bf16 of
 * consecutive k. So both operands are packed in k pairs:
 *   a: (kp, MR) pairs — for each pair p, MR rows' (A[i][2p], A[i][2p+1])
 *   b: (kp, NR) pairs — for each pair p, NR columns' (B[2p][j], B[2p+1][j])
 * an odd K padded with a zero. B is packed whole once per call (in
 * parallel, a task per panel), or taken from a pack set (mrec_packs) where
 * it is a weight packed before. A is packed whole once per call where the
 * tasks split N, or a block at a time by the task that owns its rows.
 * With beta = 0 the bias goes in with the first k block's store (the same
 * bits as writing it into C first, which is what happens otherwise).
 *
 * On CPUs with AMX (pools at MREC_SIMD_AMX) the products go through tiles
 * instead: TDPBF16PS multiplies a 16-row A tile by a 16-column B tile, 16
 * k pairs at a time, into a 16 x 16 fp32 tile, 8 times the work of
 * VDPBF16PS per instruction. A B tile row is 16 columns' pairs, 64 bytes:
 * exactly half a row of the panel layout above, so both paths read one
 * packing of B (its pairs padded with zeros to a multiple of 16, a tile's
 * depth). A tile row of A is one row's 16 pairs, so AMX packs A row by row.
 */
#include "gemm_internal.h"
#include "parallel.h"
#include "transpose16.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

__m512 _ZGVeN16v_expf(__m512 x); /* glibc's libmvec */

#define MR 12   /* rows per micro-kernel; 4 when A has at most 4 rows (a single text or query), 8 where that pads less */
#define MR_MID 8
#define MR_FEW 4
#define NR 32
#define KCP 256 /* k pairs per block: one block for K up to 512 (MiniLM end to end: 1.1-1.45x faster than 128) */
#define MC 96   /* rows per task, a multiple of every height */
#define NCP 8   /* NR panels per task, fewer when that leaves threads idle */
#define AMX_MR 32 /* rows per AMX step: two 16-row A tiles against two 16-column B tiles */
#define AMX_KT 16 /* pairs per tile (64-byte rows) */
#define AMX_KCP 512 /* k pairs per block: each block adds its sums into C once, so fewer of them */
#define AMX_MC 256  /* rows per task: each B panel, from memory, serves up to 8 row steps */
#define AMX_KSUB 128 /* pairs per step over a panel's rows: its 16 KB of B stay in L1 while A streams */
_Static_assert((size_t)AMX_MC * AMX_KCP <= MREC_GEMM_SCRATCH_FLOATS, "a task's A block fits its scratch");

/* pairs rounded up to whole AMX tiles: a B panel's depth on every path (the tail zero) */
static inline int tile_pairs(int kp) { return (kp + AMX_KT - 1) / AMX_KT * AMX_KT; }

/* The pair (x[k], x[k + step]) as one 32-bit lane, k + step past K read as 0. */
static inline uint32_t pair(const float *x, int k, int step, int K) {
    uint32_t lo = mrec_bf16_round(x[(size_t)k * step]), hi = k + 1 < K ? mrec_bf16_round(x[(size_t)(k + 1) * step]) : 0;
    return lo | hi << 16;
}

typedef struct {
    float *C;
    const float *A, *B, *bias;
    float alpha, beta;
    int trans_a, trans_b, M, N, K, lda, ldb, ldc, kp;
    int kb;          /* pairs per B panel: kp rounded up to AMX_KT, the tail zero */
    uint32_t *bpack; /* (panels, kb, NR) pairs */
    uint32_t *apack; /* (row panels, kp, mr) pairs; with AMX (rows, kb) pairs */
    int mr, m_blocks, n_chunks, ncp, amx;
    mrec_pool *pool;
    mrec_gemm_fill_b fill; /* op(B) from a function (mrec_gemm_bf16_filled), or NULL */
    mrec_gemm_fill_pairs fill_pairs; /* or as bf16 pairs straight away */
    void *fill_arg;
    const float *row_bias;
    const uint32_t *a_pairs; /* op(A) given in pairs: pair p of row i at a_pairs[p * lda + i], or NULL */
    const mrec_act *act; /* applied to each tile of C once it is whole, or NULL */
    const mrec_gemm_images *images; /* a filled GEMM's C over images, or NULL */
    uint16_t *c16;                  /* a filled GEMM's C in bf16 (mrec_gemm_bf16_filled_to16), or NULL */
} job;

/* 16 bf16 pairs from two rows of 16 floats (the second NULL: zeros), each
 * rounded by VCVTNEPS2BF16 as A's are; m masks the columns present. */
static inline __m512i pairs16(const float *r0, const float *r1, __mmask16 m) {
    __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, r0)));
    if (!r1) return lo;
    __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, r1)));
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

/* Panel `panel` of op(B): (kb, NR) pairs, columns past N and pairs past kp
 * zero. B not transposed: a pair row is two rows of B, 16 columns at a time.
 * Transposed (a column of op(B) is a row of B): 16 pairs of each of 16
 * columns from 32 consecutive floats, as A's rows are packed, then a
 * transpose in registers. */
static void pack_b_panel(void *arg, int panel, int thread) {
    (void)thread;
    const job *g = arg;
    uint32_t *dst = g->bpack + (size_t)panel * g->kb * NR;
    int j0 = panel * NR, cols = g->N - j0 < NR ? g->N - j0 : NR;
    if (!g->trans_b) {
        for (int p = 0; p < g->kp; p++) {
            const float *r0 = g->B + (size_t)2 * p * g->ldb + j0, *r1 = 2 * p + 1 < g->K ? r0 + g->ldb : NULL;
            for (int h = 0; h < NR; h += 16) {
                int w = cols - h;
                __mmask16 m = w >= 16 ? (__mmask16)0xFFFF : w > 0 ? (__mmask16)((1u << w) - 1) : 0;
                _mm512_storeu_si512(dst + (size_t)p * NR + h, m ? pairs16(r0 + h, r1 ? r1 + h : NULL, m) : _mm512_setzero_si512());
            }
        }
    } else {
        /* the transpose puts pair p of all 16 columns in one register, a row of the panel (attention's keys
         * stored a value at a time were 4 % of ViT-B/16's bf16 forward) */
        int p16 = g->K / 32 * 16; /* pairs read as whole 32-float runs */
        for (int h = 0; h < NR; h += 16) {
            const float *x[16];
            for (int t = 0; t < 16; t++) x[t] = h + t < cols ? g->B + (size_t)(j0 + h + t) * g->ldb : NULL;
            for (int p = 0; p < p16; p += 16) {
                __m512 r[16];
                for (int t = 0; t < 16; t++)
                    r[t] = x[t] ? (__m512)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x[t] + 2 * p + 16), _mm512_loadu_ps(x[t] + 2 * p))
                                : _mm512_setzero_ps();
                transpose16(r);
                for (int t = 0; t < 16; t++) _mm512_storeu_ps((float *)(dst + (size_t)(p + t) * NR + h), r[t]);
            }
            for (int t = 0; t < 16; t++)
                for (int p = p16; p < g->kp; p++) dst[(size_t)p * NR + h + t] = x[t] ? pair(x[t], 2 * p, 1, g->K) : 0;
        }
    }
    memset(dst + (size_t)g->kp * NR, 0, (size_t)(g->kb - g->kp) * NR * sizeof *dst);
}

/* Row `row` of op(A), pairs [p0, p0 + kc), at dst[p * step] (a panel row,
 * step mr; or, for AMX, a row of its own, step 1). A row-major row
 * converts 32 floats at a time: VCVTNE2PS2BF16 rounds to nearest even as
 * mrec_bf16_round does (it flushes denormals to zero, which VDPBF16PS and
 * TDPBF16PS would read as zero anyway). */
static void pack_a_row(uint32_t *dst, size_t mr, const job *g, int row, int p0, int kc) {
    int p = 0;
    if (g->a_pairs) {
        for (; p < kc; p++) dst[(size_t)p * mr] = g->a_pairs[(size_t)(p0 + p) * g->lda + row];
        return;
    }
    if (!g->trans_a) {
        const float *x = g->A + (size_t)row * g->lda + 2 * (size_t)p0;
        int K = g->K - 2 * p0;
        for (; p + 16 <= kc && 2 * p + 32 <= K; p += 16) {
            uint32_t lanes[16];
            __m512bh h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 2 * p + 16), _mm512_loadu_ps(x + 2 * p));
            if (mr == 1) { /* an AMX row: the pairs are contiguous */
                _mm512_storeu_si512(dst + p, (__m512i)h);
                continue;
            }
            _mm512_storeu_si512(lanes, (__m512i)h);
            for (int t = 0; t < 16; t++) dst[(size_t)(p + t) * mr] = lanes[t];
        }
        for (; p < kc; p++) dst[(size_t)p * mr] = pair(x, 2 * p, 1, K);
        return;
    }
    for (; p < kc; p++) dst[(size_t)p * mr] = pair(g->A + row, 2 * (p0 + p), g->lda, g->K);
}

/* Pairs [p0, p0 + p16) (p16 a multiple of 16, each 16 pairs whole runs of
 * 32 floats) of `rows` row-major rows from A's row i (the rest of the mr
 * zero) as a panel of (p16, mr): 16 pairs of every row in registers, one
 * transpose, then each pair row's mr lanes stored in place. Storing pair by
 * pair, row by row, took 7 % of ViT-B/16's bf16 forward at batch 32. */
static void pack_a_panel16(uint32_t *dst, const job *g, int i, int rows, int p0, int p16) {
    const float *x[MR];
    int mr = g->mr;
    for (int t = 0; t < mr; t++) x[t] = t < rows ? g->A + (size_t)(i + t) * g->lda + 2 * (size_t)p0 : NULL;
    for (int p = 0; p < p16; p += 16) {
        __m512 r[16];
        for (int t = 0; t < mr; t++)
            r[t] = x[t] ? (__m512)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x[t] + 2 * p + 16), _mm512_loadu_ps(x[t] + 2 * p))
                        : _mm512_setzero_ps();
        for (int t = mr; t < 16; t++) r[t] = _mm512_setzero_ps();
        transpose16(r);
        for (int t = 0; t < 16; t++) _mm512_mask_storeu_ps((float *)(dst + (size_t)(p + t) * mr), (__mmask16)((1u << mr) - 1), r[t]);
    }
}

/* The same panel (mr <= 16 rows, all kc pairs) of a transposed A, whose
 * row of op(A) is a column of A: pair p of the panel's rows is two rows of
 * A side by side, rounded and interleaved in one step (pairs16); a value at
 * a time took longer than the products it fed (Winograd's V^T U^T). */
static void pack_a_panel_t(uint32_t *dst, const job *g, int i, int rows, int p0, int kc) {
    __mmask16 load = (__mmask16)((1u << rows) - 1), keep = (__mmask16)((1u << g->mr) - 1);
    for (int p = 0; p < kc; p++) {
        int k = 2 * (p0 + p);
        const float *r0 = g->A + (size_t)k * g->lda + i, *r1 = k + 1 < g->K ? r0 + g->lda : NULL;
        _mm512_mask_storeu_epi32(dst + (size_t)p * g->mr, keep, pairs16(r0, r1, load));
    }
}

/* Rows [i0, i0 + mc), pairs [p0, p0 + kc) as mr-row panels of (kc, mr). */
static void pack_a_block(uint32_t *dst, const job *g, int i0, int mc, int p0, int kc) {
    if (g->a_pairs) { /* a copy: a panel's pair row is mr consecutive lanes of a pair row of A */
        for (int ir = 0; ir < mc; ir += g->mr, dst += (size_t)kc * g->mr) {
            __mmask16 rows = (__mmask16)((1u << (mc - ir < g->mr ? mc - ir : g->mr)) - 1);
            const uint32_t *src = g->a_pairs + (size_t)p0 * g->lda + i0 + ir;
            for (int p = 0; p < kc; p++)
                _mm512_mask_storeu_epi32(dst + (size_t)p * g->mr, (__mmask16)((1u << g->mr) - 1),
                                         _mm512_maskz_loadu_epi32(rows, src + (size_t)p * g->lda));
        }
        return;
    }
    if (g->trans_a) {
        for (int ir = 0; ir < mc; ir += g->mr, dst += (size_t)kc * g->mr)
            pack_a_panel_t(dst, g, i0 + ir, mc - ir < g->mr ? mc - ir : g->mr, p0, kc);
        return;
    }
    /* pairs taken 16 at a time through the transpose: whole 32-float runs of a row-major A */
    int whole = g->K - 2 * p0 < 2 * kc ? (g->K - 2 * p0) / 2 : kc, p16 = g->mr >= MR_MID ? whole / 16 * 16 : 0;
    for (int ir = 0; ir < mc; ir += g->mr, dst += (size_t)kc * g->mr) {
        int rows = mc - ir < g->mr ? mc - ir : g->mr;
        if (p16) pack_a_panel16(dst, g, i0 + ir, rows, p0, p16);
        for (int i = 0; i < g->mr; i++) {
            uint32_t *d = dst + (size_t)p16 * g->mr + i;
            if (i < rows) {
                if (p16 < kc) pack_a_row(d, (size_t)g->mr, g, i0 + ir + i, p0 + p16, kc - p16);
            } else {
                for (int p = p16; p < kc; p++) d[(size_t)(p - p16) * g->mr] = 0;
            }
        }
    }
}

/* All of op(A) as mr-row panels of (kp, mr) pairs, a task per panel. */
static void pack_a_panel(void *arg, int panel, int thread) {
    (void)thread;
    const job *g = arg;
    int i0 = panel * g->mr;
    pack_a_block(g->apack + (size_t)i0 * g->kp, g, i0, g->M - i0 < g->mr ? g->M - i0 : g->mr, 0, g->kp);
}

/* C's (m x n) corner (n <= NR) from the sums acc (rows NR apart): alpha *
 * acc + bias (overwrite; bias NULL: none; or row_bias, one per row), or C +
 * alpha * acc. With beta = 0 the bias goes in here, as the prologue would
 * have put it in C first: the same one rounding. */
static void write_corner(float *c, int ldc, const float *acc, float alpha, const float *bias, const float *row_bias, int m,
                         int n, int overwrite) {
    __m512 va = _mm512_set1_ps(alpha);
    for (int v = 0; v < 2; v++) {
        int cols = n - 16 * v;
        if (cols <= 0) break;
        __mmask16 mask = cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
        __m512 vb = bias ? _mm512_maskz_loadu_ps(mask, bias + 16 * v) : _mm512_setzero_ps();
        for (int i = 0; i < m; i++) {
            float *ci = c + (size_t)i * ldc + 16 * v;
            __m512 sum = _mm512_load_ps(acc + (size_t)i * NR + 16 * v);
            if (row_bias) vb = _mm512_set1_ps(row_bias[i]);
            __m512 out = overwrite ? (bias || row_bias ? _mm512_fmadd_ps(va, sum, vb) : _mm512_mul_ps(va, sum))
                                   : _mm512_fmadd_ps(va, sum, _mm512_maskz_loadu_ps(mask, ci));
            _mm512_mask_storeu_ps(ci, mask, out);
        }
    }
}

/* Column j of C's corner from its sums over the rows (sum[i], i < m), with the arithmetic of the micro-kernel's
 * vector store, a value at a time; out of line, as a tile with single columns is a row's last */
static __attribute__((noinline)) void store_column(float *c, int ldc, const float *sum, float alpha, const float *bias,
                                                   const float *row_bias, int m, int j, int flags) {
    _Alignas(64) float out[16] = {0}; /* the lanes past m too: swish reads all sixteen */
    for (int i = 0; i < m; i++) {
        float b = row_bias ? row_bias[i] : bias ? bias[j] : 0.0f, *cij = c + (size_t)i * ldc + j;
        out[i] = flags & MREC_UK_OVERWRITE ? (bias || row_bias ? fmaf(alpha, sum[i], b) : alpha * sum[i]) : fmaf(alpha, sum[i], *cij);
        if (flags & MREC_UK_RELU) out[i] = out[i] > 0.0f ? out[i] : 0.0f; /* NaN as 0, as the vectors' max */
    }
    if (flags & MREC_UK_SILU_BF16) _mm512_store_ps(out, mrec_silu16_bf16(_mm512_load_ps(out)));
    if (flags & MREC_UK_OUT_BF16) { /* rounded as the vectors are */
        _Alignas(32) uint16_t half[16];
        _mm256_store_si256((__m256i *)half, (__m256i)_mm512_cvtneps_pbh(_mm512_load_ps(out)));
        for (int i = 0; i < m; i++) ((uint16_t *)c)[(size_t)i * ldc + j] = half[i];
        return;
    }
    for (int i = 0; i < m; i++) c[(size_t)i * ldc + j] = out[i];
}

/* acc (mr x NR) = sum over kc pairs of a^T b, written into C's (m x n)
 * corner as write_corner writes it (MREC_UK_OVERWRITE in flags: overwrite),
 * then the ReLU where flags has MREC_UK_RELU, or bf16's swish where it has
 * MREC_UK_SILU_BF16 (gemm_internal.h), in the registers before the store. A's
 * panels are `as` rows wide; the mr rows summed (at least m) may be fewer, so
 * a short last panel does not run over its padding. NV vectors of columns,
 * then TC single columns as vectors over the rows (gemm_avx512.c's kernels
 * say why). */
static inline __attribute__((always_inline)) void ukernel(const int mr, const int as, const int NV, const int TC, int kc,
                                                         const uint32_t *a, const uint32_t *b, float *c, int ldc, float alpha,
                                                         const float *bias, const float *row_bias, int m, int n, int flags) {
    __m512 acc[MR][2], col[4];
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int t = 0; t < TC; t++) col[t] = _mm512_setzero_ps();
    for (int p = 0; p < kc; p++) {
        __m512bh bv[2];
        for (int v = 0; v < NV; v++) bv[v] = (__m512bh)_mm512_loadu_si512(b + (size_t)p * NR + 16 * v);
        /* B's panel 32 pairs ahead, as the fp32 kernel's: at batch 1 a packed weight streams from memory, and
         * the hardware prefetcher stops at each 4 KB page (MPNet in bf16 at batch 1 on Zen 4: 4-6 % faster) */
        for (int v = 0; v < NV + (TC > 0); v++) _mm_prefetch((const char *)(b + (size_t)(p + 32) * NR + 16 * v), _MM_HINT_T0);
        if (TC) { /* the panel row's pairs by plain loads (a masked load kept the sums above in memory) */
            const uint32_t *ap = a + (size_t)p * as;
            __m512i av = as == 4 ? _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *)ap))
                                 : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)ap));
            if (as > 8) av = _mm512_inserti32x4(av, _mm_loadu_si128((const __m128i *)(ap + 8)), 2);
            for (int t = 0; t < TC; t++)
                col[t] = _mm512_dpbf16_ps(col[t], (__m512bh)av, (__m512bh)_mm512_set1_epi32((int)b[(size_t)p * NR + 16 * NV + t]));
        }
        for (int i = 0; i < mr; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[(size_t)p * as + i]);
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
        }
    }
    /* write_corner's arithmetic, from the registers: a sum stored and loaded back at once missed the store
     * forwarding of a 512-bit load on Zen 4 (write_corner was 6 % of ViT-B/16's bf16 forward) */
    __m512 va = _mm512_set1_ps(alpha);
    __mmask16 mask[2] = {n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1),
                         n >= NR ? (__mmask16)0xFFFF : n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : 0};
    __m512 vb[2] = {bias ? _mm512_maskz_loadu_ps(mask[0], bias) : _mm512_setzero_ps(),
                    bias ? _mm512_maskz_loadu_ps(mask[1], bias + 16) : _mm512_setzero_ps()};
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        if (i >= m) break;
        float *ci = c + (size_t)i * ldc;
        uint16_t *ci16 = (uint16_t *)c + (size_t)i * ldc; /* MREC_UK_OUT_BF16 */
        if (row_bias) vb[0] = vb[1] = _mm512_set1_ps(row_bias[i]);
        for (int v = 0; v < NV; v++) {
            if (!mask[v]) break;
            __m512 out = flags & MREC_UK_OVERWRITE
                             ? (bias || row_bias ? _mm512_fmadd_ps(va, acc[i][v], vb[v]) : _mm512_mul_ps(va, acc[i][v]))
                             : _mm512_fmadd_ps(va, acc[i][v], _mm512_maskz_loadu_ps(mask[v], ci + 16 * v));
            if (flags & MREC_UK_RELU) out = _mm512_max_ps(out, _mm512_setzero_ps());
            if (flags & MREC_UK_SILU_BF16) out = mrec_silu16_bf16(out);
            if (flags & MREC_UK_OUT_BF16) _mm256_mask_storeu_epi16(ci16 + 16 * v, mask[v], (__m256i)_mm512_cvtneps_pbh(out));
            else _mm512_mask_storeu_ps(ci + 16 * v, mask[v], out);
        }
    }
    _Alignas(64) float sum[4][16];
#pragma GCC unroll 4
    for (int t = 0; t < TC; t++) _mm512_store_ps(sum[t], col[t]); /* unrolled: col indexed by a variable lives in memory */
    for (int t = 0; t < TC && 16 * NV + t < n; t++)
        store_column(c, ldc, sum[t], alpha, bias, row_bias, m < mr ? m : mr, 16 * NV + t, flags);
}

typedef void (*ukernel_fn)(int kc, const uint32_t *a, const uint32_t *b, float *c, int ldc, float alpha, const float *bias,
                           const float *row_bias, int m, int n, int flags);

#define UKERNEL(NAME, ROWS, AS, NV, TC)                                                                                \
    static __attribute__((noinline)) void NAME(int kc, const uint32_t *a, const uint32_t *b, float *c, int ldc, float alpha, \
                                               const float *bias, const float *row_bias, int m, int n, int flags) {    \
        ukernel(ROWS, AS, NV, TC, kc, a, b, c, ldc, alpha, bias, row_bias, m, n, flags);                               \
    }
/* a whole tile (two vectors of columns) of the fewest of 4, 8 and 12 rows that holds m */
UKERNEL(ukernel_12_of_12, 12, 12, 2, 0)
UKERNEL(ukernel_8_of_12, 8, 12, 2, 0)
UKERNEL(ukernel_4_of_12, 4, 12, 2, 0)
UKERNEL(ukernel_8_of_8, 8, 8, 2, 0)
UKERNEL(ukernel_4_of_8, 4, 8, 2, 0)
UKERNEL(ukernel_4_of_4, 4, 4, 2, 0)
/* a row's last tile, narrower, over all the panel's rows: one vector, one or up to four single columns, or both
 * (as the fp32 kernels: a 9 x 9 plane's 81 columns were three whole tiles) */
#define TAILS(AS)                                                                                                      \
    UKERNEL(tail_##AS##_1_0, AS, AS, 1, 0)                                                                             \
    UKERNEL(tail_##AS##_0_1, AS, AS, 0, 1)                                                                             \
    UKERNEL(tail_##AS##_1_1, AS, AS, 1, 1)                                                                             \
    UKERNEL(tail_##AS##_0_4, AS, AS, 0, 4)                                                                             \
    UKERNEL(tail_##AS##_1_4, AS, AS, 1, 4)                                                                             \
    static const ukernel_fn tails_##AS[5] = {tail_##AS##_1_0, tail_##AS##_0_1, tail_##AS##_1_1, tail_##AS##_0_4,        \
                                             tail_##AS##_1_4};
TAILS(12)
TAILS(8)
TAILS(4)
#undef TAILS
#undef UKERNEL

/* The micro-kernel for m rows and n columns of a panel mr wide. A whole tile runs the fewest of 4, 8 and 12 rows
 * that holds m, a narrower one all mr; a tile's last 1 to 4 columns (n % 16) run as single columns, more as a
 * masked vector. Each sum adds the same products in the same order whichever runs it, so the bits do not
 * depend on it. */
static ukernel_fn ukernel_of(int mr, int m, int n) {
    int rem = n % 16;
    if (n > NR - 16 && (rem == 0 || rem > 4)) {
        if (mr == MR) return m <= MR_FEW ? ukernel_4_of_12 : m <= MR_MID ? ukernel_8_of_12 : ukernel_12_of_12;
        if (mr == MR_MID) return m <= MR_FEW ? ukernel_4_of_8 : ukernel_8_of_8;
        return ukernel_4_of_4;
    }
    const ukernel_fn *t = mr == MR ? tails_12 : mr == MR_MID ? tails_8 : tails_4;
    if (rem == 0 || rem > 4) return t[0];         /* one vector */
    if (rem == 1) return t[n > 16 ? 2 : 1];       /* a column, after a vector or alone */
    return t[n > 16 ? 4 : 3];                     /* up to four columns (the panel's past n are zeros) */
}

/* Rows per micro-kernel for M rows of A: the tiles' 32 where AMX runs them; 4 for a single text or query; 8
 * where that computes a tenth fewer padding rows than 12 (a text of 40 tokens: 40 rows, not 48), else 12,
 * whose 24 sums a step reuse each B load more. */
static int rows_per_kernel(int M, int amx) {
    if (amx) return AMX_MR;
    if (M <= MR_FEW) return MR_FEW;
    int by12 = (M + MR - 1) / MR * MR, by8 = (M + MR_MID - 1) / MR_MID * MR_MID;
    return by8 * 10 < by12 * 9 ? MR_MID : MR;
}

/* Where row block b begins (b = m_blocks: M): the rows shared evenly among the blocks in whole micro-kernel
 * heights (at most MC, or AMX_MC, rows each where there are several blocks). */
static int block_row(const job *g, int b) {
    int64_t units = (g->M + g->mr - 1) / g->mr, at = b * units / g->m_blocks * g->mr;
    return at < g->M ? (int)at : g->M;
}

/* One task: rows [i0, i0 + rows), panels [q0, q0 + ncp). */
static void tile(void *arg, int task, int thread) {
    const job *g = arg;
    int i0 = block_row(g, task / g->n_chunks), q0 = task % g->n_chunks * g->ncp;
    int mc = block_row(g, task / g->n_chunks + 1) - i0, panels = (g->N + NR - 1) / NR;
    int q1 = q0 + g->ncp < panels ? q0 + g->ncp : panels;
    /* C = beta * C + bias first where C is read; else the first k block writes alpha * acc + bias */
    int pro = g->beta != 0.0f || g->K == 0;
    if (pro) {
        int j_hi = q1 * NR < g->N ? q1 * NR : g->N;
        mrec_gemm_prologue(g->C, g->ldc, g->beta, g->bias, NULL, i0, mc, q0 * NR, j_hi - q0 * NR);
        if (g->K == 0 && g->act) mrec_gemm_activate_bf16(g->C + (size_t)i0 * g->ldc + q0 * NR, g->ldc, mc, j_hi - q0 * NR, *g->act, g->pool);
    }
    uint32_t *own_a = g->apack ? NULL : (uint32_t *)mrec_pool_scratch(g->pool, thread);
    for (int p0 = 0; p0 < g->kp; p0 += KCP) {
        int kc = g->kp - p0 < KCP ? g->kp - p0 : KCP;
        if (own_a) pack_a_block(own_a, g, i0, mc, p0, kc);
        for (int q = q0; q < q1; q++) {
            const uint32_t *bp = g->bpack + ((size_t)q * g->kb + p0) * NR;
            int n = g->N - q * NR < NR ? g->N - q * NR : NR;
            /* A's panels: kc pairs apart in the task's block, all kp in the whole packing */
            const uint32_t *ap = own_a ? own_a : g->apack + ((size_t)i0 * g->kp + (size_t)p0 * g->mr);
            size_t a_step = own_a ? (size_t)kc : (size_t)g->kp;
            const float *bias = g->bias && !pro ? g->bias + q * NR : NULL;
            for (int ir = 0; ir < mc; ir += g->mr) {
                float *c = g->C + (size_t)(i0 + ir) * g->ldc + q * NR;
                int m = mc - ir < g->mr ? mc - ir : g->mr;
                int last = p0 + kc >= g->kp, relu = last && g->act && *g->act == MREC_ACT_RELU;
                int silu = last && g->act && *g->act == MREC_ACT_SILU;
                ukernel_of(g->mr, m, n)(kc, ap + (size_t)ir * a_step, bp, c, g->ldc, g->alpha, bias, NULL, m, n,
                   (p0 == 0 && !pro ? MREC_UK_OVERWRITE : 0) | (relu ? MREC_UK_RELU : 0) | (silu ? MREC_UK_SILU_BF16 : 0));
                if (last && g->act && !relu && !silu) mrec_gemm_activate_bf16(c, g->ldc, m, n, *g->act, g->pool);
            }
        }
    }
}

/* ---- AMX ------------------------------------------------------------------ */

/* Rows [i0, i0 + rows) of op(A), pairs [p0, p0 + kc), as rows of `stride`
 * pairs (kc rounded up to a tile's depth, the tail zero); rows past M zero,
 * up to a whole AMX_MR. */
static void pack_a_rows_amx(uint32_t *dst, size_t stride, const job *g, int i0, int rows, int p0, int kc) {
    int padded = (rows + AMX_MR - 1) / AMX_MR * AMX_MR;
    for (int i = 0; i < padded; i++, dst += stride) {
        int p = 0;
        if (i < rows) pack_a_row(dst, 1, g, i0 + i, p0, kc), p = kc;
        memset(dst + p, 0, (stride - (size_t)p) * sizeof *dst);
    }
}

static void pack_a_panel_amx(void *arg, int panel, int thread) {
    (void)thread;
    const job *g = arg;
    int i0 = panel * AMX_MR;
    pack_a_rows_amx(g->apack + (size_t)i0 * g->kb, (size_t)g->kb, g, i0, g->M - i0 < AMX_MR ? g->M - i0 : AMX_MR, 0,
                    g->kp);
}

/* The tile shapes, loaded by each thread before its first tile instruction:
 * tiles 0-1 A (16 rows x 16 pairs), 2-3 B (16 pairs x 16 columns), 4-7 C
 * (16 x 16 fp32); every one 16 rows of 64 bytes. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static void amx_configure(void) {
    tile_config cfg = {.palette = 1};
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
}

/* Tiles 4-7 (a 32 x 32 corner) += rows a (lda pairs apart) times the panel b, over kt pairs (whole tiles).
 * Each load just before the first product that needs it: tiles are not renamed, so a load waits for the
 * products still reading its tile, and four loads up front left the unit idle until all four had arrived
 * (5-15 % at ViT-B/16's shapes). */
static inline __attribute__((always_inline)) void amx_products(int kt, const uint32_t *a, size_t lda, const uint32_t *b) {
    for (int p = 0; p < kt; p += AMX_KT) {
        _tile_loadd(0, a + p, lda * 4);
        _tile_loadd(2, b + (size_t)p * NR, NR * 4);
        _tile_dpbf16ps(4, 0, 2);
        _tile_loadd(3, b + (size_t)p * NR + 16, NR * 4);
        _tile_dpbf16ps(5, 0, 3);
        _tile_loadd(1, a + 16 * lda + p, lda * 4);
        _tile_dpbf16ps(6, 1, 2);
        _tile_dpbf16ps(7, 1, 3);
    }
}

/* A strip of 32 queries (rows a, lda pairs apart) against `keys` panels of keys (kq pairs each) as its raw
 * scores (rows ldr floats apart), every panel's stored before any is read back. */
static void amx_strip_scores(float *raw, int ldr, const uint32_t *a, size_t lda, const uint32_t *kpan, int kq, int keys) {
    for (int j = 0; j < keys; j++) {
        float *c = raw + (size_t)j * NR;
        _tile_zero(4);
        _tile_zero(5);
        _tile_zero(6);
        _tile_zero(7);
        amx_products(kq, a, lda, kpan + (size_t)j * kq * NR);
        _tile_stored(4, c, ldr * 4);
        _tile_stored(5, c + 16, ldr * 4);
        _tile_stored(6, c + 16 * (size_t)ldr, ldr * 4);
        _tile_stored(7, c + 16 * (size_t)ldr + 16, ldr * 4);
    }
}

/* C's (m x n) corner (m <= 32, n <= 32) gets the sum over kt pairs (a
 * multiple of AMX_KT) of rows a (row stride lda pairs) times the panel b,
 * as the AVX-512 micro-kernel writes it: alpha * sum + bias (overwrite;
 * bias NULL: none; or row_bias, one per row) or C + alpha * sum. A whole
 * 32 x 32 corner with alpha 1 is summed in the C tiles themselves: they
 * start from the bias (init: the corner's 32 x 32 bias values) or zero, or
 * from C, and are stored straight into C. Other corners go through a
 * buffer. */
static void ukernel_amx(int kt, const uint32_t *a, size_t lda, const uint32_t *b, float *c, int ldc, float alpha,
                        const float *bias, const float *row_bias, const float (*init)[NR], int m, int n, int overwrite) {
    int direct = m == AMX_MR && n == NR && alpha == 1.0f;
    if (direct && !overwrite) {
        _tile_loadd(4, c, ldc * 4);
        _tile_loadd(5, c + 16, ldc * 4);
        _tile_loadd(6, c + 16 * (size_t)ldc, ldc * 4);
        _tile_loadd(7, c + 16 * (size_t)ldc + 16, ldc * 4);
    } else if (direct && (bias || row_bias)) {
        _tile_loadd(4, &init[0][0], NR * 4);
        _tile_loadd(5, &init[0][16], NR * 4);
        _tile_loadd(6, &init[16][0], NR * 4);
        _tile_loadd(7, &init[16][16], NR * 4);
    } else {
        _tile_zero(4);
        _tile_zero(5);
        _tile_zero(6);
        _tile_zero(7);
    }
    amx_products(kt, a, lda, b);
    if (direct) {
        _tile_stored(4, c, ldc * 4);
        _tile_stored(5, c + 16, ldc * 4);
        _tile_stored(6, c + 16 * (size_t)ldc, ldc * 4);
        _tile_stored(7, c + 16 * (size_t)ldc + 16, ldc * 4);
        return;
    }
    _Alignas(64) float acc[AMX_MR][NR];
    _tile_stored(4, &acc[0][0], NR * 4);
    _tile_stored(5, &acc[0][16], NR * 4);
    _tile_stored(6, &acc[16][0], NR * 4);
    _tile_stored(7, &acc[16][16], NR * 4);
    write_corner(c, ldc, &acc[0][0], alpha, bias, row_bias, m, n, overwrite);
}

/* One task as tile() splits them, through the tiles. */
static void tile_amx(void *arg, int task, int thread) {
    const job *g = arg;
    int i0 = block_row(g, task / g->n_chunks), q0 = task % g->n_chunks * g->ncp;
    int mc = block_row(g, task / g->n_chunks + 1) - i0, panels = (g->N + NR - 1) / NR;
    int q1 = q0 + g->ncp < panels ? q0 + g->ncp : panels;
    int pro = g->beta != 0.0f || g->K == 0;
    if (pro) {
        int j_hi = q1 * NR < g->N ? q1 * NR : g->N;
        mrec_gemm_prologue(g->C, g->ldc, g->beta, g->bias, NULL, i0, mc, q0 * NR, j_hi - q0 * NR);
        if (g->K == 0 && g->act) mrec_gemm_activate_bf16(g->C + (size_t)i0 * g->ldc + q0 * NR, g->ldc, mc, j_hi - q0 * NR, *g->act, g->pool);
    }
    amx_configure();
    _Alignas(64) float bias_rows[AMX_MR][NR];
    uint32_t *own_a = g->apack ? NULL : (uint32_t *)mrec_pool_scratch(g->pool, thread);
    for (int p0 = 0; p0 < g->kp; p0 += AMX_KCP) {
        int kc = g->kp - p0 < AMX_KCP ? g->kp - p0 : AMX_KCP;
        int kt = tile_pairs(kc); /* the zero tail of A and B adds nothing */
        if (own_a) pack_a_rows_amx(own_a, (size_t)kt, g, i0, mc, p0, kc);
        const uint32_t *ap = own_a ? own_a : g->apack + (size_t)i0 * g->kb + p0;
        size_t lda = own_a ? (size_t)kt : (size_t)g->kb;
        for (int q = q0; q < q1; q++) {
            const uint32_t *bp = g->bpack + ((size_t)q * g->kb + p0) * NR;
            int n = g->N - q * NR < NR ? g->N - q * NR : NR;
            const float *bias = g->bias && !pro ? g->bias + q * NR : NULL;
            if (bias && p0 == 0 && n == NR)
                for (int r = 0; r < AMX_MR; r++) memcpy(bias_rows[r], bias, sizeof bias_rows[r]);
            /* A 32 x 32 corner with alpha 1 sums in C itself, so it can take its k block in steps of AMX_KSUB:
             * a step's B stays in L1 across all the rows (at ViT-B/16's shapes the whole block per corner
             * read A and B both from L2, 28 % of the tiles' peak). The same products in the same order as one
             * step: the same bits. Other corners sum the whole block in the tiles, at the first step. */
            int full = n == NR && g->alpha == 1.0f;
            for (int s0 = 0; s0 < kt; s0 += AMX_KSUB) {
                int st = kt - s0 < AMX_KSUB ? kt - s0 : AMX_KSUB, last = p0 + kc >= g->kp && s0 + st >= kt;
                for (int ir = 0; ir < mc; ir += AMX_MR) {
                    float *c = g->C + (size_t)(i0 + ir) * g->ldc + q * NR;
                    int m = mc - ir < AMX_MR ? mc - ir : AMX_MR;
                    if (full && m == AMX_MR)
                        ukernel_amx(st, ap + (size_t)ir * lda + s0, lda, bp + (size_t)s0 * NR, c, g->ldc, 1.0f, bias, NULL,
                                    (const float(*)[NR])bias_rows, m, n, s0 == 0 && p0 == 0 && !pro);
                    else if (s0 == 0)
                        ukernel_amx(kt, ap + (size_t)ir * lda, lda, bp, c, g->ldc, g->alpha, bias, NULL,
                                    (const float(*)[NR])bias_rows, m, n, p0 == 0 && !pro);
                    if (last && g->act) mrec_gemm_activate_bf16(c, g->ldc, m, n, *g->act, g->pool);
                }
            }
        }
    }
    _tile_release();
}

static int pack_whole_b(void *dst, void *arg) {
    job *g = arg;
    g->bpack = dst;
    mrec_pool_run(g->pool, pack_b_panel, g, (g->N + NR - 1) / NR);
    return 1;
}

int mrec_gemm_bf16_run(float *C, const float *A, const float *B, const float *bias, float alpha, float beta, int trans_a,
                       int trans_b, int M, int N, int K, int lda, int ldb, int ldc, const mrec_act *act, mrec_packs *packs,
                       mrec_pool *pool) {
    if (M <= 0 || N <= 0) return 1;
    job g = {.C = C, .A = A, .B = B, .bias = bias, .alpha = alpha, .beta = beta, .trans_a = trans_a, .trans_b = trans_b,
             .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .kp = (K + 1) / 2, .pool = pool, .act = act};
    g.kb = tile_pairs(g.kp);
    int panels = (N + NR - 1) / NR;
    size_t bytes = (size_t)panels * (g.kb ? g.kb : 1) * NR * sizeof(uint32_t);
    const void *cached = NULL;
    void *own = NULL;
    if (packs && trans_b && ldb == K && K > 0) cached = mrec_packs_cached(packs, B, N, K, MREC_PACK_TAG_BF16, bytes, pack_whole_b, &g);
    if (cached) {
        g.bpack = (uint32_t *)cached;
    } else {
        if (!(own = aligned_alloc(64, (bytes + 63) / 64 * 64))) return 0;
        pack_whole_b(own, &g);
    }
    /* AMX where the pool has it and A has more rows than a few: for a single
     * text or query the 32-row tiles would compute mostly padding. */
    g.amx = mrec_pool_simd(pool) >= MREC_SIMD_AMX && M > MR_FEW;
    /* Many row blocks: a task per row block, all of N, packing its A block by
     * block into its scratch. Few: tasks split N too, so A is packed once for
     * them all beforehand, in the first scratch buffer when it fits (no task
     * uses scratch then). */
    g.mr = rows_per_kernel(M, g.amx);
    g.m_blocks = (M + (g.amx ? AMX_MC : MC) - 1) / (g.amx ? AMX_MC : MC);
    int threads = mrec_pool_threads(pool);
    void *own_a = NULL;
    if (g.m_blocks >= 2 * threads) {
        /* blocks in a multiple of the threads (17 blocks of 96 rows on two threads, ViT-B/16 at batch 8, kept one
         * thread a block longer than the other) */
        g.m_blocks = (g.m_blocks + threads - 1) / threads * threads;
        g.ncp = panels;
    } else {
        /* every task takes all the rows, so each column of B is read by one task only: at batch 1 a large
         * model's weights come from memory once per forward (ViT-B/16 in bf16 at batch 1 on two threads:
         * 21.2-21.5 -> 25.5-25.7 images/s) */
        g.m_blocks = 1;
        int a_panels = (M + g.mr - 1) / g.mr;
        size_t a_bytes = (size_t)a_panels * g.mr * (g.kb ? g.kb : 1) * sizeof(uint32_t);
        if (a_bytes <= MREC_GEMM_SCRATCH_FLOATS * sizeof(float)) g.apack = mrec_pool_scratch(pool, 0);
        else if (!(g.apack = own_a = aligned_alloc(64, (a_bytes + 63) / 64 * 64))) return free(own), 0;
        mrec_pool_run(pool, g.amx ? pack_a_panel_amx : pack_a_panel, &g, a_panels);
        for (g.ncp = NCP; g.ncp > 1 && g.m_blocks * ((panels + g.ncp - 1) / g.ncp) < 4 * threads;) g.ncp /= 2;
    }
    g.n_chunks = (panels + g.ncp - 1) / g.ncp;
    mrec_pool_run(pool, g.amx ? tile_amx : tile, &g, g.m_blocks * g.n_chunks);
    free(own), free(own_a);
    return 1;
}

/* ---- a convolution: A the weights, op(B) filled --------------------------
 * The unfolded input exists only as the panels its fill function writes, a
 * KC block at a time, so each panel is filled once: a task owns a range of
 * B panels and runs every row of A over them. A (the weights) is packed
 * whole, into the pack set where it lies in one. */

#define FILLED_NCP 4 /* B panels per task at most (mrec_panel_tasks): their pairs and one fp32 panel fit a thread's scratch */
#define FILL_PAIRS 16 /* pairs filled in fp32 and rounded at a time: 4 KB of rows */
_Static_assert((FILLED_NCP + 2) * AMX_KCP * NR <= MREC_GEMM_SCRATCH_FLOATS && AMX_KCP >= KCP, "filled_task's scratch");

/* Pairs [p0, p0 + kc) of op(B)'s columns [j0, j0 + cols) as one panel
 * (kt, NR), the pairs past kc zero: the fp32 rows from fill into tmp, two
 * rows at a time rounded and interleaved (pairs16).
 * An odd K's last pair has a zero second row. */
static void fill_pairs(const job *g, uint32_t *dst, float *tmp, int p0, int kc, int kt, int j0, int cols) {
    if (g->fill_pairs) {
        g->fill_pairs(g->fill_arg, dst, p0, kc, j0, cols, NR);
        memset(dst + (size_t)kc * NR, 0, (size_t)(kt - kc) * NR * sizeof *dst);
        return;
    }
    /* FILL_PAIRS pairs at a time, so the fp32 rows are read back from L1: the whole block's (64 KB at 256
     * pairs) went out to L2 and back, and the fill was a quarter of ResNet50's bf16 forward */
    for (int c0 = 0; c0 < kc; c0 += FILL_PAIRS) {
        int cc = kc - c0 < FILL_PAIRS ? kc - c0 : FILL_PAIRS;
        int k0 = 2 * (p0 + c0), rows = g->K - k0 < 2 * cc ? g->K - k0 : 2 * cc;
        g->fill(g->fill_arg, tmp, k0, rows, j0, cols, NR);
        for (int p = 0; p < cc; p++) {
            const float *r0 = tmp + (size_t)2 * p * NR, *r1 = r0 + NR;
            int second = 2 * p + 1 < rows;
            for (int h = 0; h < NR; h += 16)
                _mm512_storeu_si512(dst + (size_t)(c0 + p) * NR + h, pairs16(r0 + h, second ? r1 + h : NULL, (__mmask16)0xFFFF));
        }
    }
    memset(dst + (size_t)kc * NR, 0, (size_t)(kt - kc) * NR * sizeof *dst);
}

void mrec_gemm_bf16_pair_rows(uint32_t *dst, int nr, const float *x, size_t ld, int rows, int cols) {
    for (int p = 0; 2 * p < rows; p++) {
        const float *r0 = x + (size_t)2 * p * ld, *r1 = 2 * p + 1 < rows ? r0 + ld : NULL;
        if (2 * p + 9 < rows) /* rows of other planes: too far apart for the hardware's prefetch */
            for (int h = 0; h < cols; h += 16) __builtin_prefetch(r0 + 8 * ld + h), __builtin_prefetch(r0 + 9 * ld + h);
        for (int h = 0; h < cols; h += 16) {
            __mmask16 m = cols - h >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - h)) - 1);
            _mm512_mask_storeu_epi32(dst + (size_t)p * nr + h, m, pairs16(r0 + h, r1 ? r1 + h : NULL, m));
        }
    }
}

void mrec_bf16_round_array(uint16_t *out, const float *in, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        _mm256_mask_storeu_epi16(out + i, k, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(k, in + i)));
    }
}

/* A filled GEMM's (m x n) tile at row i, column j from tile (rows NR apart) into its bf16 C, each value rounded
 * as the micro-kernel's store rounds it */
static void tile_to16(const job *g, int i, int j, int m, int n, const float *tile) {
    for (int c = 0, run; c < n; c += run) {
        uint16_t *at = g->c16 + mrec_images_offset(g->images, g->ldc, i, j + c, n - c, &run);
        for (int r = 0; r < m; r++)
            for (int t = 0; t < run; t += 16) {
                __mmask16 k = run - t >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (run - t)) - 1);
                __m256i h = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(k, tile + (size_t)r * NR + c + t));
                _mm256_mask_storeu_epi16(at + (size_t)r * g->ldc + t, k, h);
            }
    }
}

/* One task: B panels [q0, q0 + ncp), all rows. The first KC block writes
 * its sums plus the row bias (the AMX tiles start from it), every later
 * block adds its sums. */
static void filled_task(void *arg, int task, int thread) {
    const job *g = arg;
    int panels = (g->N + NR - 1) / NR, q0 = (int)((int64_t)task * panels / g->n_chunks);
    int q1 = (int)((int64_t)(task + 1) * panels / g->n_chunks);
    int kcp = g->amx ? AMX_KCP : g->c16 ? g->kp : KCP; /* bf16 C: one block of k (kp <= AMX_KCP) */
    uint32_t *bpack = (uint32_t *)mrec_pool_scratch(g->pool, thread);
    float *tmp = (float *)(bpack + (size_t)FILLED_NCP * kcp * NR);
    _Alignas(64) float init[AMX_MR][NR]; /* a row panel's bias, for the tiles */
    if (g->amx) amx_configure();
    for (int p0 = 0; p0 < g->kp; p0 += kcp) {
        int kc = g->kp - p0 < kcp ? g->kp - p0 : kcp, kt = g->amx ? tile_pairs(kc) : kc;
        for (int q = q0; q < q1; q++)
            fill_pairs(g, bpack + (size_t)(q - q0) * kt * NR, tmp, p0, kc, kt, q * NR, g->N - q * NR < NR ? g->N - q * NR : NR);
        int overwrite = p0 == 0;
        for (int ir = 0; ir < g->M; ir += g->mr) {
            int m = g->M - ir < g->mr ? g->M - ir : g->mr;
            /* beta = 0: the first block overwrites C with its sums plus the row bias; else the tile becomes
             * beta C + row_bias just before, while it is in cache, and every block adds to it */
            int fresh = overwrite && g->beta == 0.0f;
            const float *rb = g->row_bias && fresh ? g->row_bias + ir : NULL;
            if (rb && g->amx && m == AMX_MR)
                for (int r = 0; r < AMX_MR; r++)
                    for (int j = 0; j < NR; j++) init[r][j] = rb[r];
            for (int q = q0; q < q1; q++) {
                const uint32_t *bp = bpack + (size_t)(q - q0) * kt * NR;
                int n = g->N - q * NR < NR ? g->N - q * NR : NR, run, ldc = g->ldc;
                int64_t at = mrec_images_offset(g->images, g->ldc, ir, q * NR, n, &run);
                float *c = g->c16 ? (float *)(g->c16 + at) : g->C + at;
                /* a tile over two images, or AMX's into a bf16 C, goes through a buffer (bf16 C: nothing to read) */
                _Alignas(64) float tile[AMX_MR * NR];
                int buffered = run < n || (g->c16 && g->amx);
                if (buffered && g->c16) c = tile, ldc = NR;
                else if (buffered) mrec_images_tile(g->images, g->C, g->ldc, ir, q * NR, m, n, c = tile, ldc = NR, 0);
                if (overwrite && !fresh) mrec_gemm_prologue(c, ldc, g->beta, NULL, g->row_bias ? g->row_bias + ir : NULL, 0, m, 0, n);
                /* the AVX-512 micro-kernels take a ReLU or swish into their store, and a bf16 C */
                int last = p0 + kc >= g->kp, relu = !g->amx && last && g->act && *g->act == MREC_ACT_RELU;
                int silu = !g->amx && last && g->act && *g->act == MREC_ACT_SILU;
                int flags = (fresh ? MREC_UK_OVERWRITE : 0) | (relu ? MREC_UK_RELU : 0) | (silu ? MREC_UK_SILU_BF16 : 0) |
                            (g->c16 && !buffered ? MREC_UK_OUT_BF16 : 0);
                if (g->amx)
                    ukernel_amx(kt, g->apack + (size_t)ir * g->kb + p0, (size_t)g->kb, bp, c, ldc, 1.0f, NULL, rb,
                                (const float(*)[NR])init, m, n, fresh);
                else
                    ukernel_of(g->mr, m, n)(kc, g->apack + (size_t)ir * g->kp + (size_t)p0 * g->mr, bp, c, ldc, 1.0f, NULL, rb, m, n,
                                      flags);
                if (last && g->act && !relu && !silu) mrec_gemm_activate_bf16(c, ldc, m, n, *g->act, g->pool);
                if (buffered && g->c16) tile_to16(g, ir, q * NR, m, n, tile);
                else if (buffered) mrec_images_tile(g->images, g->C, g->ldc, ir, q * NR, m, n, tile, NR, 1);
            }
        }
    }
    if (g->amx) _tile_release();
}

/* All of A in the layout the task reads: AMX rows of kb pairs, or panels. */
static int pack_whole_a(void *dst, void *arg) {
    job *g = arg;
    g->apack = dst;
    if (g->amx) mrec_pool_run(g->pool, pack_a_panel_amx, g, (g->M + AMX_MR - 1) / AMX_MR);
    else mrec_pool_run(g->pool, pack_a_panel, g, (g->M + g->mr - 1) / g->mr);
    return 1;
}

/* A filled GEMM g (its A, fill and C set) on the pool: A packed or taken from packs, then the tasks. 0 where
 * memory for packing A runs out. */
static int filled_run(job *g, mrec_packs *packs) {
    g->kb = tile_pairs(g->kp);
    g->amx = mrec_pool_simd(g->pool) >= MREC_SIMD_AMX && g->M > MR_FEW;
    g->mr = rows_per_kernel(g->M, g->amx);
    size_t a_bytes = g->amx ? (size_t)(g->M + AMX_MR - 1) / AMX_MR * AMX_MR * g->kb * sizeof(uint32_t)
                            : (size_t)(g->M + g->mr - 1) / g->mr * g->mr * g->kp * sizeof(uint32_t);
    const void *cached = packs ? mrec_packs_cached(packs, g->A, g->M, g->K, MREC_PACK_TAG_BF16_A - g->mr, a_bytes, pack_whole_a, g)
                               : NULL;
    void *own = NULL;
    if (cached) {
        g->apack = (uint32_t *)cached;
    } else {
        if (!(own = aligned_alloc(64, (a_bytes + 63) / 64 * 64))) return 0;
        pack_whole_a(own, g);
    }
    g->n_chunks = mrec_panel_tasks((g->N + NR - 1) / NR, FILLED_NCP, mrec_pool_threads(g->pool));
    mrec_pool_run(g->pool, filled_task, g, g->n_chunks);
    free(own);
    return 1;
}

int mrec_gemm_bf16_filled(float *C, const float *A, mrec_gemm_fill_b fill, mrec_gemm_fill_pairs pairs, void *fill_arg,
                          const float *row_bias, float beta, const mrec_act *act, int M, int N, int K, int ldc,
                          const mrec_gemm_images *images, mrec_packs *packs, mrec_pool *pool) {
    if (M <= 0 || N <= 0) return 1;
    job g = {.C = C, .A = A, .alpha = 1.0f, .beta = beta, .M = M, .N = N, .K = K, .lda = K, .ldc = ldc, .kp = (K + 1) / 2,
             .pool = pool, .fill = fill, .fill_pairs = pairs, .fill_arg = fill_arg, .row_bias = row_bias, .act = act,
             .images = images};
    if (K <= 0 && images) return 0; /* the caller goes image by image */
    if (K <= 0) { /* no products: beta C plus the bias, then the activation */
        mrec_gemm_prologue(C, ldc, beta, NULL, row_bias, 0, M, 0, N);
        if (act) mrec_gemm_activate_bf16(C, ldc, M, N, *act, pool);
        return 1;
    }
    return filled_run(&g, packs);
}

int mrec_gemm_bf16_filled_to16(uint16_t *C, const float *A, mrec_gemm_fill_b fill, mrec_gemm_fill_pairs pairs, void *fill_arg,
                               const float *row_bias, const mrec_act *act, int M, int N, int K, int ldc,
                               const mrec_gemm_images *images, mrec_packs *packs, mrec_pool *pool) {
    _Static_assert(MREC_GEMM_BF16_TO16_MAX_K <= 2 * AMX_KCP, "a bf16 C's sums in one block of k");
    if (M <= 0 || N <= 0) return 1;
    if (K <= 0 || K > MREC_GEMM_BF16_TO16_MAX_K || (act && *act != MREC_ACT_RELU && *act != MREC_ACT_SILU)) return 0;
    job g = {.c16 = C, .A = A, .alpha = 1.0f, .M = M, .N = N, .K = K, .lda = K, .ldc = ldc, .kp = (K + 1) / 2, .pool = pool,
             .fill = fill, .fill_pairs = pairs, .fill_arg = fill_arg, .row_bias = row_bias, .act = act, .images = images};
    return filled_run(&g, packs);
}

/* ---- many small GEMMs (attention's heads) --------------------------------
 * An item is too small to share among threads: each is a task on one
 * thread, which packs B_b whole and A_b a row panel at a time into its
 * scratch, with no pool round of its own. */

typedef struct {
    job g;
    int64_t stride_a, stride_b, stride_c;
} batched_job;

/* One item, g, on the calling thread; its B packed here into the thread's
 * scratch, or given packed (g.bpack set). */
static void item_run(job g, int thread) {
    int panels = (g.N + NR - 1) / NR;
    uint32_t *apack = (uint32_t *)mrec_pool_scratch(g.pool, thread);
    if (!g.bpack) {
        g.bpack = apack;
        apack += (size_t)panels * g.kb * NR;
        for (int q = 0; q < panels; q++) pack_b_panel(&g, q, thread);
    }
    if (g.amx) amx_configure();
    for (int i0 = 0; i0 < g.M; i0 += g.mr) {
        int m = g.M - i0 < g.mr ? g.M - i0 : g.mr;
        if (g.amx) pack_a_rows_amx(apack, (size_t)g.kb, &g, i0, m, 0, g.kp);
        else pack_a_block(apack, &g, i0, m, 0, g.kp);
        for (int q = 0; q < panels; q++) {
            const uint32_t *bp = g.bpack + (size_t)q * g.kb * NR;
            float *c = g.C + (size_t)i0 * g.ldc + q * NR;
            int n = g.N - q * NR < NR ? g.N - q * NR : NR;
            if (g.amx) ukernel_amx(g.kb, apack, (size_t)g.kb, bp, c, g.ldc, g.alpha, NULL, NULL, NULL, m, n, 1);
            else ukernel_of(g.mr, m, n)(g.kp, apack, bp, c, g.ldc, g.alpha, NULL, NULL, m, n, MREC_UK_OVERWRITE);
        }
    }
    if (g.amx) _tile_release();
}

static void batched_task(void *arg, int item, int thread) {
    const batched_job *bj = arg;
    job g = bj->g;
    g.A += item * bj->stride_a, g.B += item * bj->stride_b, g.C += item * bj->stride_c;
    item_run(g, thread);
}

/* The job of an item, and whether its packing fits a thread's scratch. */
static int item_job(job *g, float *C, const float *A, const float *B, float alpha, int trans_a, int trans_b, int M, int N, int K,
                    int lda, int ldb, int ldc, mrec_pool *pool) {
    *g = (job){.C = C, .A = A, .B = B, .alpha = alpha, .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
               .lda = lda, .ldb = ldb, .ldc = ldc, .kp = (K + 1) / 2, .pool = pool};
    g->kb = tile_pairs(g->kp);
    g->amx = mrec_pool_simd(pool) >= MREC_SIMD_AMX && M > MR_FEW;
    g->mr = rows_per_kernel(M, g->amx);
    size_t need = ((size_t)(N + NR - 1) / NR * NR + (size_t)g->mr) * g->kb * sizeof(uint32_t);
    return K > 0 && need <= MREC_GEMM_SCRATCH_FLOATS * sizeof(float);
}

int mrec_gemm_bf16_item_fits(int M, int N, int K, mrec_pool *pool) {
    job g;
    return M > 0 && N > 0 && item_job(&g, NULL, NULL, NULL, 1.0f, 0, 0, M, N, K, 0, 0, 0, pool);
}

void mrec_gemm_bf16_item(float *C, const float *A, const float *B, float alpha, int trans_a, int trans_b, int M, int N, int K,
                         int lda, int ldb, int ldc, mrec_pool *pool, int thread) {
    job g;
    if (M > 0 && N > 0 && item_job(&g, C, A, B, alpha, trans_a, trans_b, M, N, K, lda, ldb, ldc, pool)) item_run(g, thread);
}

/* ---- one attention head through the tiles ---------------------------------
 * The keys and values are packed once per head, as the items pack them;
 * then each strip of 32 queries runs its scores, their softmax and their
 * product with the values while the strip's scores are in L1. The scores
 * leave the tiles unscaled into their own buffer and are scaled in a pass
 * of their own: scaled on the way out (write_corner) they were read back
 * right behind the tile stores, and waiting on those stores was 38 % of
 * the scores' product at ViT-B/16's heads. */

typedef struct {
    int kq, kt;     /* pairs of a query (dh) and of a key row of the weights (T), in whole tiles */
    int keys, cols; /* key panels (T) and output panels (dh) */
    int lds;        /* floats per row of scaled scores: T rounded up to 64-byte rows */
    size_t floats; /* the scratch the head uses */
} head_shape;

static head_shape head_layout(int T, int dh) {
    head_shape h = {tile_pairs((dh + 1) / 2), tile_pairs((T + 1) / 2), (T + NR - 1) / NR, (dh + NR - 1) / NR, (T + 15) / 16 * 16, 0};
    /* key panels, value panels, a strip of queries, its raw and its scaled scores, its weights */
    h.floats = (size_t)h.keys * h.kq * NR + (size_t)h.cols * h.kt * NR + (size_t)AMX_MR * h.kq + (size_t)AMX_MR * h.keys * NR +
               (size_t)AMX_MR * h.lds + (size_t)AMX_MR * h.kt;
    return h;
}

/* The lanes of 16 that hold values when n remain (none, some, or all) */
static inline __mmask16 lanes16(int n) { return n >= 16 ? (__mmask16)0xFFFF : n > 0 ? (__mmask16)((1u << n) - 1) : 0; }

int mrec_attention_head_amx_fits(int T, int dh, mrec_pool *pool) {
    return mrec_pool_simd(pool) >= MREC_SIMD_AMX && T > MR_FEW && dh > 0 && head_layout(T, dh).floats <= MREC_GEMM_SCRATCH_FLOATS;
}

void mrec_attention_head_amx(float *out, const float *q, const float *k, const float *v, const float *mask, const float *head_bias,
                             float scale, int T, int dh, int ld, mrec_pool *pool, int thread) {
    head_shape h = head_layout(T, dh);
    uint32_t *kpan = (uint32_t *)mrec_pool_scratch(pool, thread), *vpan = kpan + (size_t)h.keys * h.kq * NR,
             *qa = vpan + (size_t)h.cols * h.kt * NR;
    float *raw = (float *)(qa + (size_t)AMX_MR * h.kq), *s = raw + (size_t)AMX_MR * h.keys * NR;
    uint32_t *pa = (uint32_t *)(s + (size_t)AMX_MR * h.lds);
    /* the items' jobs: k^T and v as B, packed whole; a strip of q and of the weights as A */
    job keys = {.B = k, .trans_b = 1, .N = T, .K = dh, .ldb = ld, .kp = (dh + 1) / 2, .kb = h.kq, .bpack = kpan};
    job vals = {.B = v, .trans_b = 0, .N = dh, .K = T, .ldb = ld, .kp = (T + 1) / 2, .kb = h.kt, .bpack = vpan};
    job qs = {.lda = ld, .K = dh, .kp = (dh + 1) / 2};
    for (int j = 0; j < h.keys; j++) pack_b_panel(&keys, j, thread);
    for (int c = 0; c < h.cols; c++) pack_b_panel(&vals, c, thread);
    amx_configure();
    for (int i0 = 0; i0 < T; i0 += AMX_MR) {
        int m = T - i0 < AMX_MR ? T - i0 : AMX_MR, ldr = h.keys * NR;
        qs.A = q + (size_t)i0 * ld;
        pack_a_rows_amx(qa, (size_t)h.kq, &qs, 0, m, 0, qs.kp);
        amx_strip_scores(raw, ldr, qa, (size_t)h.kq, kpan, h.kq, h.keys);
        /* scale times the sum, then the head's bias, two roundings as the item and the head task make them;
         * then the softmax's row (mrec_softmax_rows_lanes_span_cpu), its last pass rounding straight into
         * the weights' pairs, as the item's packing rounds them. Rows on 64-byte boundaries and whole
         * stores, so that each pass's loads are forwarded from the last one's stores: rows T floats apart,
         * and masked stores, left the packing of the weights waiting on half its loads. */
        __m512 va = _mm512_set1_ps(scale);
        for (int r = 0; r < m; r++) {
            const float *hb = head_bias ? head_bias + (size_t)(i0 + r) * T : NULL;
            float *sr = s + (size_t)r * h.lds;
            for (int c = 0; c < T; c += 16) {
                __m512 x = _mm512_mul_ps(va, _mm512_loadu_ps(raw + (size_t)r * ldr + c));
                if (hb) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(lanes16(T - c), hb + c));
                _mm512_store_ps(sr + c, x);
            }
            __m512 inv = _mm512_set1_ps(mrec_softmax_row_exp_lanes(sr, sr, mask, T));
            uint32_t *pr = pa + (size_t)r * h.kt;
            for (int p = 0; p < h.kt; p += 16) {
                int c = 2 * p;
                __m512 wl = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes16(T - c), sr + c), inv),
                       wh = _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes16(T - c - 16), sr + c + 16), inv);
                _mm512_store_si512(pr + p, (__m512i)_mm512_cvtne2ps_pbh(wh, wl));
            }
        }
        if (m < AMX_MR) memset(pa + (size_t)m * h.kt, 0, (size_t)(AMX_MR - m) * h.kt * sizeof *pa);
        for (int c = 0; c < h.cols; c++) {
            int n = dh - c * NR < NR ? dh - c * NR : NR;
            ukernel_amx(h.kt, pa, (size_t)h.kt, vpan + (size_t)c * h.kt * NR, out + (size_t)i0 * ld + c * NR, ld, 1.0f, NULL, NULL,
                        NULL, m, n, 1);
        }
    }
    _tile_release();
}

/* ---- one head of bf16 queries, keys and values through the tiles ----------
 * mrec_attention_bf16_cpu's head, its arithmetic unchanged (fp32 scores,
 * exp(s - max) rounded to bf16, the sum of the rounded weights dividing the
 * output), with both products in the tiles as mrec_attention_head_amx runs
 * them: keys and values packed once a head, then a strip of 32 queries at
 * a time. The queries are bf16 pairs already: a whole strip of a head dh a
 * multiple of 32 wide is read where it lies. */

typedef struct {
    int dp, kq, kt, keys, cols; /* pairs of a query, the same in whole tiles, key pairs in whole tiles, key and output panels */
    size_t floats;              /* the scratch: key and value panels, a strip's queries, scores, weights and sums */
} bf16_head_shape;

static bf16_head_shape bf16_head_layout(int T, int dh) {
    bf16_head_shape h = {dh / 2, tile_pairs(dh / 2), tile_pairs((T + 1) / 2), (T + NR - 1) / NR, (dh + NR - 1) / NR, 0};
    h.floats = (size_t)h.keys * h.kq * NR + (size_t)h.cols * h.kt * NR + (size_t)AMX_MR * (h.kq + (size_t)h.keys * NR + h.kt + NR);
    return h;
}

int mrec_attention_bf16_amx_fits(int T, int dh, mrec_pool *pool) {
    return mrec_pool_simd(pool) >= MREC_SIMD_AMX && T > MR_FEW && dh > 0 && dh % 2 == 0 &&
           bf16_head_layout(T, dh).floats <= MREC_GEMM_SCRATCH_FLOATS;
}

void mrec_attention_head_bf16_amx(uint16_t *out, size_t ldo, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                                  const float *mask, const float *head_bias, int ldh, float scale, int L, int dh, mrec_pool *pool,
                                  int thread) {
    bf16_head_shape h = bf16_head_layout(L, dh);
    uint32_t *kpan = (uint32_t *)mrec_pool_scratch(pool, thread), *vpan = kpan + (size_t)h.keys * h.kq * NR,
             *qa = vpan + (size_t)h.cols * h.kt * NR;
    float *raw = (float *)(qa + (size_t)AMX_MR * h.kq); /* a strip's scores, keys * NR a row */
    uint32_t *pa = (uint32_t *)(raw + (size_t)AMX_MR * h.keys * NR); /* its weights, kt pairs a row */
    float *acc = (float *)(pa + (size_t)AMX_MR * h.kt); /* (AMX_MR, NR) sums of weights times values */
    int ldr = h.keys * NR;
    /* keys: panel j's pair row p is pair p of its 32 keys, 16 keys' 16 pairs through a transpose */
    for (int j = 0; j < h.keys; j++)
        for (int half = 0; half < NR; half += 16) {
            const uint32_t *rows[16];
            for (int t = 0; t < 16; t++) {
                int key = j * NR + half + t;
                rows[t] = key < L ? (const uint32_t *)(k + (size_t)key * ld) : NULL;
            }
            for (int p = 0; p < h.kq; p += 16) {
                __mmask16 m = lanes16(h.dp - p);
                __m512 r[16];
                for (int t = 0; t < 16; t++) r[t] = rows[t] ? _mm512_maskz_loadu_ps(m, rows[t] + p) : _mm512_setzero_ps();
                transpose16(r);
                for (int t = 0; t < 16; t++) _mm512_storeu_ps((float *)(kpan + ((size_t)j * h.kq + p + t) * NR + half), r[t]);
            }
        }
    /* values: panel c's pair row p is keys 2 p and 2 p + 1 of its 32 features side by side */
    for (int c = 0; c < h.cols; c++)
        for (int p = 0; p < h.kt; p++)
            for (int half = 0; half < NR; half += 16) {
                int d = c * NR + half;
                __mmask16 m = lanes16(dh - d);
                __m512i lo = 2 * p < L ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, v + (size_t)2 * p * ld + d)) : _mm512_setzero_si512();
                __m512i hi = 2 * p + 1 < L ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, v + (size_t)(2 * p + 1) * ld + d))
                                           : _mm512_setzero_si512();
                _mm512_storeu_si512(vpan + ((size_t)c * h.kt + p) * NR + half, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
            }
    amx_configure();
    __m512 va = _mm512_set1_ps(scale);
    for (int i0 = 0; i0 < L; i0 += AMX_MR) {
        int m = L - i0 < AMX_MR ? L - i0 : AMX_MR;
        const uint32_t *qs = (const uint32_t *)(q + (size_t)i0 * ld);
        size_t ldq = (size_t)ld / 2;
        if (m < AMX_MR || h.kq != h.dp) { /* a copy, zero past the head's pairs and the strip's rows */
            for (int r = 0; r < AMX_MR; r++) {
                uint32_t *d = qa + (size_t)r * h.kq;
                int have = r < m ? h.dp : 0;
                if (have) memcpy(d, qs + (size_t)r * ldq, sizeof *d * (size_t)have);
                memset(d + have, 0, sizeof *d * (size_t)(h.kq - have));
            }
            qs = qa, ldq = (size_t)h.kq;
        }
        amx_strip_scores(raw, ldr, qs, ldq, kpan, h.kq, h.keys);
        /* a row's scores as the AVX-512 head makes them (times the scale, then the head's and the mask's
         * biases), their exponentials rounded straight into the weights' pairs, and the sum of the rounded */
        float inv[AMX_MR];
        for (int r = 0; r < m; r++) {
            float *x = raw + (size_t)r * ldr;
            const float *hb = head_bias ? head_bias + (size_t)(i0 + r) * ldh : NULL;
            __m512 vmax = _mm512_set1_ps(-INFINITY), sum = _mm512_setzero_ps();
            for (int c = 0; c < L; c += 16) {
                __mmask16 lanes = lanes16(L - c);
                __m512 s = _mm512_mul_ps(_mm512_loadu_ps(x + c), va);
                if (hb) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(lanes, hb + c));
                if (mask) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(lanes, mask + c));
                _mm512_storeu_ps(x + c, s);
                vmax = _mm512_mask_max_ps(vmax, lanes, s, vmax);
            }
            __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
            uint32_t *w = pa + (size_t)r * h.kt;
            for (int c = 0; c < 2 * h.kt; c += 32) {
                __m512 e0 = _mm512_maskz_mov_ps(lanes16(L - c), _ZGVeN16v_expf(_mm512_sub_ps(_mm512_loadu_ps(x + c), mx)));
                __m512 e1 = _mm512_maskz_mov_ps(lanes16(L - c - 16), _ZGVeN16v_expf(_mm512_sub_ps(_mm512_loadu_ps(x + c + 16), mx)));
                __m512i e = (__m512i)_mm512_cvtne2ps_pbh(e1, e0); /* keys c .. c + 31 in order: 16 pairs */
                _mm512_storeu_si512(w + c / 2, e);
                sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_slli_epi32(e, 16)));           /* the even keys */
                sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_and_si512(e, _mm512_set1_epi32((int)0xFFFF0000u)))); /* the odd */
            }
            inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
        }
        if (m < AMX_MR) memset(pa + (size_t)m * h.kt, 0, (size_t)(AMX_MR - m) * h.kt * sizeof *pa);
        for (int c = 0; c < h.cols; c++) {
            ukernel_amx(h.kt, pa, (size_t)h.kt, vpan + (size_t)c * h.kt * NR, acc, NR, 1.0f, NULL, NULL, NULL, AMX_MR, NR, 1);
            for (int r = 0; r < m; r++)
                for (int half = 0; half < NR; half += 16) {
                    int d = c * NR + half;
                    __mmask16 lanes = lanes16(dh - d);
                    if (!lanes) break;
                    __m512 o = _mm512_mul_ps(_mm512_load_ps(acc + (size_t)r * NR + half), _mm512_set1_ps(inv[r]));
                    _mm256_mask_storeu_epi16(out + (size_t)(i0 + r) * ldo + d, lanes, (__m256i)_mm512_cvtneps_pbh(o));
                }
        }
    }
    _tile_release();
}

size_t mrec_gemm_bf16_wt_bytes(int N, int K) {
    int kb = tile_pairs((K + 1) / 2);
    return (size_t)(N + NR - 1) / NR * NR * (size_t)(kb ? kb : 1) * sizeof(uint32_t);
}

void mrec_gemm_bf16_pack_wt(void *dst, const float *B, int N, int K, int ldb) {
    job g = {.B = B, .trans_b = 1, .N = N, .K = K, .ldb = ldb, .kp = (K + 1) / 2, .bpack = dst};
    g.kb = tile_pairs(g.kp);
    for (int q = 0; q < (N + NR - 1) / NR; q++) pack_b_panel(&g, q, 0);
}

typedef struct {
    const float *w;
    int N, K;
} wt_args;

static int pack_wt(void *dst, void *arg) {
    const wt_args *a = arg;
    mrec_gemm_bf16_pack_wt(dst, a->w, a->N, a->K, a->K);
    return 1;
}

const void *mrec_gemm_bf16_wt(mrec_packs *packs, const float *W, int N, int K, int tag, void **own) {
    size_t bytes = mrec_gemm_bf16_wt_bytes(N, K);
    wt_args a = {W, N, K};
    const void *wt = packs ? mrec_packs_cached(packs, W, N, K, tag, bytes, pack_wt, &a) : NULL;
    *own = NULL;
    if (!wt && (*own = aligned_alloc(64, (bytes + 63) / 64 * 64))) pack_wt(*own, &a), wt = *own;
    return wt;
}

void mrec_gemm_bf16_item_wt(float *C, const float *A, int trans_a, const void *wt, int M, int N, int K, int lda, int ldc,
                            mrec_pool *pool, int thread) {
    job g;
    if (M <= 0 || N <= 0 || K <= 0) return;
    item_job(&g, C, A, NULL, 1.0f, trans_a, 1, M, N, K, lda, K, ldc, pool);
    g.bpack = (uint32_t *)wt;
    item_run(g, thread);
}

void mrec_gemm_bf16_item_pairs_wt(float *C, const uint32_t *A, const void *wt, int M, int N, int K, int lda, int ldc,
                                  mrec_pool *pool, int thread) {
    job g;
    if (M <= 0 || N <= 0 || K <= 0) return;
    item_job(&g, C, NULL, NULL, 1.0f, 1, 1, M, N, K, lda, K, ldc, pool);
    g.a_pairs = A;
    g.bpack = (uint32_t *)wt;
    item_run(g, thread);
}

/* ---- A's rows from a function, C in fp32 or bf16 (channels-last convolutions, bf16 activations) ----
 * Activations that are bf16 already come as pairs (two channels, or two
 * features, side by side): a panel of A is a copy, with no rounding. A task
 * is a block of at most ROWS_MC rows and ROWS_NC columns of one item; with
 * a bf16 C, or an fp32 C with a residual, its sums stay in the task's
 * scratch until the last k block, and the epilogue finishes each output
 * once: after the bias, the residual and the ReLU, then the activation. */
#define ROWS_MC 96
#define ROWS_NC 256
_Static_assert((size_t)ROWS_MC * (KCP + ROWS_NC) <= MREC_GEMM_SCRATCH_FLOATS, "rows_task's scratch");

typedef struct {
    mrec_gemm_fill_a fill;
    void *arg;
    const char *wt;
    size_t wt_stride;
    mrec_gemm_rows_out out;
    int M, N, kp, kb, mr;
    int mc, nc, row_blocks, col_blocks; /* rows and columns a block, and the blocks of rows and of columns */
    int group;                          /* column blocks a task */
    mrec_pool *pool;
} rows_job;

void mrec_bf16_panel_from_rows(uint32_t *dst, int mr, const uint32_t *const *rows, int kc) {
    int p = 0;
    for (; p < kc && mr >= MR_MID; p += 16) { /* 16 pairs of every row through a transpose, the last ones masked */
        int w = kc - p < 16 ? kc - p : 16;
        __mmask16 m = (__mmask16)((1u << w) - 1);
        __m512 r[16];
        for (int t = 0; t < 16; t++) r[t] = t < mr && rows[t] ? _mm512_maskz_loadu_ps(m, rows[t] + p) : _mm512_setzero_ps();
        transpose16(r);
        for (int t = 0; t < w; t++) _mm512_mask_storeu_ps((float *)(dst + (size_t)(p + t) * mr), (__mmask16)((1u << mr) - 1), r[t]);
    }
    for (; p < kc; p++)
        for (int t = 0; t < mr; t++) dst[(size_t)p * mr + t] = rows[t] ? rows[t][p] : 0;
}

/* 16 bf16 values as fp32 (exact) */
static inline __m512 widen16(const uint16_t *p, __mmask16 k) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
}

/* Sums (m, n) at acc (rows ROWS_NC apart) into C's corner (rows o->ldc
 * apart, bias already at its first column) as mrec_gemm_rows_out says. */
static void rows_epilogue(const mrec_gemm_rows_out *o, float *c32, uint16_t *c16, const float *acc, const float *bias, int m, int n) {
    __m512 beta = _mm512_set1_ps(o->beta);
    for (int i = 0; i < m; i++) {
        const float *a = acc + (size_t)i * ROWS_NC;
        for (int j = 0; j < n; j += 16) {
            __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
            __m512 v = _mm512_maskz_loadu_ps(k, a + j);
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + j));
            if (c32) {
                float *y = c32 + (size_t)i * o->ldc + j;
                if (o->beta != 0.0f) v = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(k, y), v);
                _mm512_mask_storeu_ps(y, k, v);
                continue;
            }
            uint16_t *y = c16 + (size_t)i * o->ldc + j;
            if (o->beta != 0.0f) v = _mm512_fmadd_ps(beta, widen16(y, k), v);
            if (o->relu) v = _mm512_max_ps(v, _mm512_setzero_ps()); /* a NaN gives 0, as the fp32 ReLU */
            __m256i r = (__m256i)_mm512_cvtneps_pbh(v);
            if (o->act16) /* the rounded value's image, from the table: 4 bytes gathered at 2 r, the low 2 kept */
                r = _mm512_cvtepi32_epi16(_mm512_i32gather_epi32(_mm512_cvtepu16_epi32(r), (const void *)o->act16, 2));
            _mm256_mask_storeu_epi16(y, k, r);
        }
    }
}

/* One task: a block of rows of one item, over `group` blocks of columns. With
 * one k block, A's panel is filled once for them all; each micro-kernel's
 * tile is finished by the epilogue as soon as its last k block is summed,
 * while it is still in L1. */
static void rows_task(void *arg, int task, int thread) {
    const rows_job *r = arg;
    const mrec_gemm_rows_out *o = &r->out;
    int groups = (r->col_blocks + r->group - 1) / r->group, per = r->row_blocks * groups;
    int item = task / per, rb = task % per / groups, cb0 = task % groups * r->group;
    int i0 = rb * r->mc, m = r->M - i0 < r->mc ? r->M - i0 : r->mc;
    if (m <= 0) return;
    uint32_t *apack = (uint32_t *)mrec_pool_scratch(r->pool, thread);
    float *acc = (float *)(apack + (size_t)ROWS_MC * KCP);
    const uint32_t *wt = (const uint32_t *)(r->wt + (size_t)item * r->wt_stride);
    int direct = o->c32 && o->beta == 0.0f; /* the micro-kernel writes C, with the bias, at once */
    for (int cb = cb0; cb < cb0 + r->group && cb < r->col_blocks; cb++) {
        int j0 = cb * r->nc, n = r->N - j0 < r->nc ? r->N - j0 : r->nc;
        size_t at = (size_t)item * o->item_stride + (size_t)i0 * o->ldc + j0;
        const float *bias = o->bias ? o->bias + j0 : NULL;
        float *c = direct ? o->c32 + at : acc;
        int ldc = direct ? o->ldc : ROWS_NC;
        for (int p0 = 0; p0 < r->kp; p0 += KCP) {
            int kc = r->kp - p0 < KCP ? r->kp - p0 : KCP, last = p0 + kc >= r->kp;
            if (cb == cb0 || r->kp > KCP)
                for (int ir = 0; ir < m; ir += r->mr)
                    r->fill(r->arg, item, apack + (size_t)ir * kc, r->mr, i0 + ir, m - ir < r->mr ? m - ir : r->mr, p0, kc);
            for (int q = 0; q < n; q += NR) {
                const uint32_t *bp = wt + ((size_t)(j0 + q) / NR * r->kb + p0) * NR;
                for (int ir = 0; ir < m; ir += r->mr) {
                    int mt = m - ir < r->mr ? m - ir : r->mr, nt = n - q < NR ? n - q : NR;
                    ukernel_of(r->mr, mt, nt)(kc, apack + (size_t)ir * kc, bp, c + (size_t)ir * ldc + q, ldc, 1.0f,
                                      direct && bias && p0 == 0 ? bias + q : NULL, NULL, mt, nt, p0 == 0 ? MREC_UK_OVERWRITE : 0);
                    if (last && !direct) {
                        size_t tile = at + (size_t)ir * o->ldc + q;
                        rows_epilogue(o, o->c32 ? o->c32 + tile : NULL, o->c16 ? o->c16 + tile : NULL, acc + (size_t)ir * ROWS_NC + q,
                                      bias ? bias + q : NULL, mt, nt);
                    }
                }
            }
        }
    }
}

/* Columns per block (whole panels, at most ROWS_NC) for N columns beside `rows` blocks of rows: blocks of
 * equal width, and where there are few tasks (a single text: one block of rows), as many blocks as make the
 * tasks a multiple of the threads: MiniLM's (40, 384) output as blocks of 256 and 128 columns left a thread
 * idle a third of the time. */
static int column_width(int N, int rows, int threads) {
    int col_panels = (N + NR - 1) / NR, blocks = (col_panels + ROWS_NC / NR - 1) / (ROWS_NC / NR);
    if (rows * blocks < 4 * threads && rows * blocks % threads) {
        int more = blocks;
        while (rows * more % threads && more < col_panels) more++;
        if (rows * more % threads == 0) blocks = more;
    }
    return (col_panels + blocks - 1) / blocks * NR;
}

void mrec_gemm_bf16_rows(const mrec_gemm_rows_out *out, mrec_gemm_fill_a fill, void *arg, const void *wt, size_t wt_stride,
                         int batch, int M, int N, int K, mrec_pool *pool) {
    if (batch <= 0 || M <= 0 || N <= 0 || K <= 0) return;
    rows_job r = {.fill = fill, .arg = arg, .wt = wt, .wt_stride = wt_stride, .out = *out, .M = M, .N = N, .kp = (K + 1) / 2,
                  .pool = pool};
    r.kb = tile_pairs(r.kp); /* the packed weight's panel depth */
    r.mr = rows_per_kernel(M, 0);
    r.row_blocks = (M + ROWS_MC - 1) / ROWS_MC;
    int panels = (M + r.mr - 1) / r.mr;
    r.mc = (panels + r.row_blocks - 1) / r.row_blocks * r.mr; /* the rows shared evenly, in whole panels */
    r.row_blocks = (M + r.mc - 1) / r.mc;
    int threads = mrec_pool_threads(pool);
    r.nc = column_width(N, batch * r.row_blocks, threads);
    r.col_blocks = (N + r.nc - 1) / r.nc;
    /* with one k block and rows enough for the threads, a task takes all the columns: A's panel is filled
     * once, not once per block of columns (5 % of MiniLM's bf16 forward at batch 128) */
    r.group = r.kp <= KCP && batch * r.row_blocks >= 2 * threads ? r.col_blocks : 1;
    mrec_pool_run(pool, rows_task, &r, batch * r.row_blocks * ((r.col_blocks + r.group - 1) / r.group));
}

/* ---- bf16 rows in place through the tiles ---------------------------------
 * A transformer's bf16 activations are rows of pairs already, and a tile of
 * A is 16 rows of 16 pairs: the tiles read A where it lies, with no packing
 * (packing the fp32 activations' rows was 6 % of ViT-B/16's bf16 forward).
 * A task is a block of rows, in strips of AMX_MR, and of columns. Its sums
 * stay in its scratch across the k blocks, ROWS_NC floats a row, so the
 * epilogue (rows_epilogue) finishes each panel once, straight after its
 * last step; as in tile_amx, a step's AMX_KSUB pairs of B stay in L1 while
 * the strips pass. A last strip of fewer rows is copied, zero-padded, a k
 * block at a time: a tile past the last row would read past the array. */

typedef struct {
    const uint32_t *a;
    size_t lda;
    const uint32_t *wt;
    mrec_gemm_rows_out out;
    int M, N, kp, kb, mc, nc, col_blocks;
    mrec_pool *pool;
} amx_rows_job;

static void amx_rows_task(void *arg, int task, int thread) {
    const amx_rows_job *r = arg;
    const mrec_gemm_rows_out *o = &r->out;
    int i0 = task / r->col_blocks * r->mc, m = r->M - i0 < r->mc ? r->M - i0 : r->mc;
    int j0 = task % r->col_blocks * r->nc, n = r->N - j0 < r->nc ? r->N - j0 : r->nc;
    if (m <= 0 || n <= 0) return;
    float *acc = (float *)mrec_pool_scratch(r->pool, thread); /* (AMX_MC, ROWS_NC) */
    uint32_t *tail = (uint32_t *)(acc + (size_t)AMX_MC * ROWS_NC); /* (AMX_MR, AMX_KCP) */
    int whole = m / AMX_MR * AMX_MR;
    amx_configure();
    for (int p0 = 0; p0 < r->kp; p0 += AMX_KCP) {
        int kc = r->kp - p0 < AMX_KCP ? r->kp - p0 : AMX_KCP; /* whole tiles, as kp is */
        if (whole < m) {
            for (int i = 0; i < m - whole; i++)
                memcpy(tail + (size_t)i * kc, r->a + (size_t)(i0 + whole + i) * r->lda + p0, sizeof *tail * (size_t)kc);
            memset(tail + (size_t)(m - whole) * kc, 0, sizeof *tail * (size_t)(AMX_MR - (m - whole)) * kc);
        }
        for (int q = 0; q < n; q += NR) {
            const uint32_t *bp = r->wt + ((size_t)(j0 + q) / NR * r->kb + p0) * NR;
            size_t at = (size_t)i0 * o->ldc + j0 + q;
            if (p0 + kc >= r->kp) /* the panel's outputs toward L2 while its last sums run: rows a row of C apart */
                for (size_t i = 0; i < (size_t)m; i++) {
                    if (o->c32) _mm_prefetch((const char *)(o->c32 + at + i * o->ldc), _MM_HINT_T1),
                        _mm_prefetch((const char *)(o->c32 + at + i * o->ldc + 16), _MM_HINT_T1);
                    else _mm_prefetch((const char *)(o->c16 + at + i * o->ldc), _MM_HINT_T1);
                }
            for (int s0 = 0; s0 < kc; s0 += AMX_KSUB) {
                int st = kc - s0 < AMX_KSUB ? kc - s0 : AMX_KSUB;
                for (int ir = 0; ir < m; ir += AMX_MR) {
                    const uint32_t *a = ir < whole ? r->a + (size_t)(i0 + ir) * r->lda + p0 + s0 : tail + s0;
                    ukernel_amx(st, a, ir < whole ? r->lda : (size_t)kc, bp + (size_t)s0 * NR, acc + (size_t)ir * ROWS_NC + q, ROWS_NC,
                                1.0f, NULL, NULL, NULL, AMX_MR, NR, p0 == 0 && s0 == 0);
                }
            }
            if (p0 + kc >= r->kp)
                rows_epilogue(o, o->c32 ? o->c32 + at : NULL, o->c16 ? o->c16 + at : NULL, acc + q, o->bias ? o->bias + j0 + q : NULL, m,
                              n - q < NR ? n - q : NR);
        }
    }
    _tile_release();
}
_Static_assert((size_t)AMX_MC * ROWS_NC + (size_t)AMX_MR * AMX_KCP <= MREC_GEMM_SCRATCH_FLOATS, "amx_rows_task's scratch");

int mrec_gemm_bf16_rows_amx(const mrec_gemm_rows_out *out, const uint32_t *a, size_t lda, const void *wt, int M, int N, int K,
                            mrec_pool *pool) {
    int kp = (K + 1) / 2;
    if (mrec_pool_simd(pool) < MREC_SIMD_AMX || M <= MR_FEW || N <= 0 || K <= 0 || kp % AMX_KT) return 0;
    amx_rows_job r = {.a = a, .lda = lda, .wt = wt, .out = *out, .M = M, .N = N, .kp = kp, .kb = tile_pairs(kp), .pool = pool};
    /* the rows shared evenly among blocks of at most AMX_MC, in whole strips */
    int strips = (M + AMX_MR - 1) / AMX_MR, row_blocks = (M + AMX_MC - 1) / AMX_MC;
    r.mc = (strips + row_blocks - 1) / row_blocks * AMX_MR;
    row_blocks = (M + r.mc - 1) / r.mc;
    r.nc = column_width(N, row_blocks, mrec_pool_threads(pool));
    r.col_blocks = (N + r.nc - 1) / r.nc;
    mrec_pool_run(pool, amx_rows_task, &r, row_blocks * r.col_blocks);
    return 1;
}

int mrec_gemm_bf16_batched(float *C, const float *A, const float *B, float alpha, int trans_a, int trans_b, int batch, int M,
                           int N, int K, int lda, int ldb, int ldc, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                           mrec_pool *pool) {
    if (batch <= 0 || M <= 0 || N <= 0) return 1;
    batched_job bj = {.stride_a = stride_a, .stride_b = stride_b, .stride_c = stride_c};
    if (!item_job(&bj.g, C, A, B, alpha, trans_a, trans_b, M, N, K, lda, ldb, ldc, pool)) return 0;
    mrec_pool_run(pool, batched_task, &bj, batch);
    return 1;
}
