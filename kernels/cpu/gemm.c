/* gemm.c: the fast CPU GEMM (and batched GEMM), BLIS-style.
 *
 * Blocks of op(B) (KC x NC) are packed once into a buffer all threads share;
 * tasks then take row blocks of C (MC rows, split by columns too when there
 * are few), pack their A block (transposes are resolved in packing, once) and
 * sweep the micro-kernel over MR x NR sub-tiles. Every output element is
 * computed by one task in a fixed order, so the result does not depend on
 * scheduling or thread count. A batch of GEMMs instead gives each task one
 * (item, row block) with its own packing: one pool round for all items.
 * The micro-kernel is picked from the pool's SIMD level.
 *
 * Weights that will not change (an encoder at inference) can be packed once
 * (mrec_packs): then B is read from that copy and no call packs it again.
 *
 * It does not: handle strided rows inside a row (elements of a row are
 * contiguous), or mixed precision.
 */
#include "../mrec_kernels.h"
#include "gemm_internal.h"
#include "parallel.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Portable micro-kernel: 4 x 16, written so the compiler can vectorize the
 * inner loop with whatever the baseline ISA offers. */
#define UK_SCALAR_MR 4
#define UK_SCALAR_NR 16
static void ukernel_scalar(int kc, const float *a, const float *b, float *c, int ldc,
                           float alpha, int m, int n, int flags, const mrec_uk_start *start) {
    float acc[UK_SCALAR_MR][UK_SCALAR_NR] = {{0}};
    for (int k = 0; k < kc; k++) {
        for (int i = 0; i < UK_SCALAR_MR; i++) {
            float ai = a[k * UK_SCALAR_MR + i];
            for (int j = 0; j < UK_SCALAR_NR; j++) acc[i][j] += ai * b[k * UK_SCALAR_NR + j];
        }
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float *cij = c + (size_t)i * ldc + j, from = flags & MREC_UK_OVERWRITE ? 0.0f : *cij;
            if (start && start->row_bias) from = start->beta == 0.0f ? start->row_bias[i] : start->beta * *cij + start->row_bias[i];
            else if (start) from = (start->beta == 0.0f ? 0.0f : start->beta * *cij) + (start->bias ? start->bias[j] : 0.0f);
            float v = alpha * acc[i][j] + from;
            *cij = flags & MREC_UK_RELU ? (v > 0.0f ? v : 0.0f) : v;
        }
}

enum { PACK_PLAIN, PACK_AVX512, PACK_AVX2 };

typedef struct {
    float *C;
    const float *A, *B, *bias;
    const int32_t *a_idx, *b_idx; /* rows of A (of B) through an index (mrec_gemm_rows_cpu; not transposed), or NULL */
    float alpha, beta;
    int trans_a, trans_b, M, N, K, lda, ldb, ldc;
    int64_t stride_a, stride_b, stride_c;
    mrec_pool *pool;
    mrec_ukernel_fn ukernel;
    mrec_ukernel_rows_fn ukernel_rows; /* the same shape reading A in place, or NULL */
    int MR, NR;
    int packer; /* which transposing packers: PACK_PLAIN, PACK_AVX512 or PACK_AVX2 */
    int a_rows; /* A read in place by ukernel_rows, not packed (a_block gives A at column p0) */
    /* op(B) packed once (mrec_packs), or NULL: block (p0, j0) of it is at
     * bpacked + p0 * bpacked_n + j0 * kc, panels of (kc, NR) in column order */
    const float *bpacked;
    int64_t bpacked_n;
    /* op(A) packed once (a convolution's weights), or NULL: block (i0, p0)
     * is at apacked_block(), panels of (kc, MR) in row order */
    const float *apacked;
    /* op(B) filled panel by panel by a function (mrec_gemm_filled_cpu), or NULL */
    mrec_gemm_fill_b fill;
    void *fill_arg;
    const float *row_bias; /* one per row of C (a convolution's, per output channel), or NULL */
    const mrec_gemm_images *images; /* C's columns over images (mrec_gemm_filled_images_cpu), or NULL */
    const mrec_act *act;   /* applied to each tile of C once it is whole (mrec_linear_act_cpu), or NULL */
    /* shared-B path: the current (jc, pc) block and how tasks split it */
    float *bpack;
    int j0, nc, p0, kc, m_blocks, j_chunks, j_chunk;
    int task_rows, row_tasks; /* gemm_packed_b: rows of C per task (at most), and how many tasks split them */
} gemm_job;

/* Packs op(A)[i0 : i0+mc, p0 : p0+kc] as ceil(mc/MR) panels of (kc, MR).
 * Writes are sequential; reads walk MR rows (or one row) of A in step. Row
 * i of A is A + idx[i] * lda where there is an index (A not transposed). */
static void pack_a(float *dst, const float *A, int lda, const int32_t *idx, int trans_a, int i0, int mc, int p0,
                   int kc, int MR, int packer) {
    for (int ir = 0; ir < mc; ir += MR) {
        int rows = mc - ir < MR ? mc - ir : MR;
        const float *from = idx ? A + p0 : A + (size_t)(i0 + ir) * lda + p0;
        const int32_t *at = idx ? idx + i0 + ir : NULL;
        if (!trans_a && packer == PACK_AVX512) {
            mrec_pack_a_avx512(dst, from, lda, at, kc, rows, MR);
        } else if (!trans_a && packer == PACK_AVX2) {
            mrec_pack_a_avx2(dst, from, lda, at, kc, rows);
        } else if (packer == PACK_AVX2) {
            mrec_pack_at_avx2(dst, A + (size_t)p0 * lda + i0 + ir, lda, kc, rows);
        } else if (packer == PACK_AVX512) {
            mrec_pack_at_avx512(dst, A + (size_t)p0 * lda + i0 + ir, lda, kc, rows, MR);
        } else if (!trans_a) {
            for (int k = 0; k < kc; k++) {
                float *d = dst + (size_t)k * MR;
                for (int i = 0; i < rows; i++) d[i] = from[(size_t)(at ? at[i] : i) * lda + k];
                for (int i = rows; i < MR; i++) d[i] = 0.0f;
            }
        } else {
            for (int k = 0; k < kc; k++) {
                const float *src = A + (size_t)(p0 + k) * lda + i0 + ir;
                float *d = dst + (size_t)k * MR;
                for (int i = 0; i < rows; i++) d[i] = src[i];
                for (int i = rows; i < MR; i++) d[i] = 0.0f;
            }
        }
        dst += (size_t)kc * MR;
    }
}

/* Packs NR-column panels [panel_lo, panel_hi) of op(B)[p0 : p0+kc, j0 : j0+nc],
 * each as (kc, NR), at dst + panel * kc * NR. Reads follow B's rows: one
 * long contiguous run per k (or NR rows in step when B is transposed). Row
 * k of B is B + idx[k] * ldb where there is an index (B not transposed). */
static void pack_b(float *dst, const float *B, int ldb, const int32_t *idx, int trans_b, int p0, int kc, int j0,
                   int nc, int NR, int panel_lo, int panel_hi, int packer) {
    if (!trans_b && (packer == PACK_AVX2 || packer == PACK_AVX512)) { /* every AVX-512 CPU has AVX2 */
        int jr = panel_lo * NR;
        mrec_pack_b_avx2(dst + (size_t)panel_lo * kc * NR, (idx ? B : B + (size_t)p0 * ldb) + j0 + jr, ldb, idx ? idx + p0 : NULL, kc,
                         nc - jr, NR, panel_hi - panel_lo, (size_t)kc * NR);
        return;
    }
    if (!trans_b) {
        for (int k = 0; k < kc; k++) {
            const float *src = B + (size_t)(idx ? idx[p0 + k] : p0 + k) * ldb + j0;
            for (int panel = panel_lo; panel < panel_hi; panel++) {
                int jr = panel * NR, cols = nc - jr < NR ? nc - jr : NR;
                float *d = dst + ((size_t)panel * kc + k) * NR;
                memcpy(d, src + jr, sizeof(float) * (size_t)cols); /* a row of B: the panel's row as it is */
                for (int j = cols; j < NR; j++) d[j] = 0.0f;
            }
        }
        return;
    }
    for (int panel = panel_lo; panel < panel_hi; panel++) {
        int jr = panel * NR, cols = nc - jr < NR ? nc - jr : NR;
        const float *src = B + (size_t)(j0 + jr) * ldb + p0;
        float *d = dst + (size_t)panel * kc * NR;
        if (packer == PACK_AVX512) {
            mrec_pack_bt_avx512(d, src, ldb, kc, cols, NR);
            continue;
        }
        if (packer == PACK_AVX2) {
            mrec_pack_bt_avx2(d, src, ldb, kc, cols, NR);
            continue;
        }
        for (int k = 0; k < kc; k++, d += NR) {
            for (int j = 0; j < cols; j++) d[j] = src[(size_t)j * ldb + k];
            for (int j = cols; j < NR; j++) d[j] = 0.0f;
        }
    }
}

/* pack_b for a job: from B, or from the job's fill function. */
static void pack_b_job(const gemm_job *g, float *dst, const float *B, int p0, int kc, int j0, int nc, int panel_lo, int panel_hi) {
    if (!g->fill) {
        pack_b(dst, B, g->ldb, g->b_idx, g->trans_b, p0, kc, j0, nc, g->NR, panel_lo, panel_hi, g->packer);
        return;
    }
    for (int panel = panel_lo; panel < panel_hi; panel++) {
        int jr = panel * g->NR, cols = nc - jr < g->NR ? nc - jr : g->NR;
        g->fill(g->fill_arg, dst + (size_t)panel * kc * g->NR, p0, kc, j0 + jr, cols, g->NR);
    }
}

/* Where block (i0, p0) of a whole packed op(A) lies: row blocks of MC one
 * after another, each holding its KC blocks in turn, every block padded to
 * whole MR panels (MC is a multiple of MR, so block i0 starts at i0 * K). */
static const float *apacked_block(const gemm_job *g, int i0, int mc, int p0) {
    int mcp = (mc + g->MR - 1) / g->MR * g->MR;
    return g->apacked + (int64_t)i0 * g->K + (int64_t)p0 * mcp;
}

/* op(A)[i0 : i0+mc, p0 : p0+kc] packed for the micro-kernel: from the
 * copy packed once, or packed now into the task's scratch. */
static const float *a_block(const gemm_job *g, float *scratch, const float *A, int i0, int mc, int p0, int kc) {
    if (g->apacked) return apacked_block(g, i0, mc, p0);
    if (g->a_rows) return A + p0;
    pack_a(scratch, A, g->lda, g->a_idx, g->trans_a, i0, mc, p0, kc, g->MR, g->packer);
    return scratch;
}

/* With beta = 0 and no bias, the first K slice overwrites C without reading
 * it; otherwise the micro-kernels form beta * C + bias in that slice's
 * store (mrec_uk_start). Only a GEMM with K = 0 needs the prologue pass. */
static int has_start(const gemm_job *g) { return g->beta != 0.0f || g->bias || g->row_bias; }

/* C = beta * C + bias on rows [i0, i0+mc), columns [j0, j0+nc), or with a
 * row bias instead: where no micro-kernel runs (K = 0, a few rows). The
 * micro-kernels' starts (mrec_uk_start) form the same values. */
static void prologue(const gemm_job *g, float *C, int i0, int mc, int j0, int nc) {
    mrec_gemm_prologue(C, g->ldc, g->beta, g->bias, g->row_bias, i0, mc, j0, nc);
}

/* K = 0: C = beta * C + bias (then the activation), and nothing else. */
static void start_only(const gemm_job *g, float *C, int i0, int mc, int j0, int nc) {
    prologue(g, C, i0, mc, j0, nc);
    if (g->act) mrec_gemm_activate(C + (size_t)i0 * g->ldc + j0, g->ldc, mc, nc, *g->act, g->pool);
}

/* Rows of B to fetch into the cache while the micro-kernels run: rows
 * [0, rows) at base + r * ld floats (or base + idx[r] * ld), `width`
 * floats of each. */
typedef struct {
    uintptr_t base; /* an address, not a pointer: nothing is read through it */
    size_t ld;
    int rows, width;
    const int32_t *idx;
} prefetch_plan;

/* The micro-kernel sweep over one packed A block and packed B panels
 * [jr_lo, jr_hi) (columns relative to j0). The A micro-panel (kc x MR)
 * stays in L1 while B panels stream from L2. With a plan, each call is
 * followed by prefetches of its share of the plan's rows. */
static void macro_kernel(const gemm_job *g, float *C, const float *apack, const float *bpack,
                         int i0, int mc, int j0, int jr_lo, int jr_hi, int kc, int first, int last, const prefetch_plan *pf) {
    int from = first && has_start(g);
    /* a ReLU goes into the micro-kernel's store; other activations run on the finished tile */
    int relu = last && g->act && *g->act == MREC_ACT_RELU, flags = (first ? MREC_UK_OVERWRITE : 0) | (relu ? MREC_UK_RELU : 0);
    int calls = ((mc + g->MR - 1) / g->MR) * ((jr_hi - jr_lo + g->NR - 1) / g->NR), call = 0;
    for (int ir = 0; ir < mc; ir += g->MR) {
        int m = mc - ir < g->MR ? mc - ir : g->MR;
        const float *ap = apack + (size_t)(ir / g->MR) * kc * g->MR, *rows[16];
        for (int i = 0; g->a_rows && i < g->MR; i++) { /* rows past m repeat the last */
            int r = i0 + ir + (i < m ? i : m - 1);
            rows[i] = apack + (size_t)(g->a_idx ? g->a_idx[r] : r) * g->lda;
        }
        for (int jr = jr_lo; jr < jr_hi; jr += g->NR, call++) {
            int n = jr_hi - jr < g->NR ? jr_hi - jr : g->NR, run;
            const float *bp = bpack + (size_t)(jr / g->NR) * kc * g->NR;
            float *c = mrec_images_at(g->images, C, g->ldc, i0 + ir, j0 + jr, n, &run);
            int ldc = g->ldc;
            _Alignas(64) float tile[MREC_UK_AVX512_MR * MREC_UK_AVX512_8_NR]; /* a tile over two images */
            if (run < n) mrec_images_tile(g->images, C, g->ldc, i0 + ir, j0 + jr, m, n, c = tile, ldc = g->NR, 0);
            mrec_uk_start st = {g->bias && !g->row_bias ? g->bias + j0 + jr : NULL, g->row_bias ? g->row_bias + i0 + ir : NULL,
                                g->beta};
            if (g->a_rows)
                g->ukernel_rows(kc, rows, bp, c, ldc, g->alpha, m, n, flags, from ? &st : NULL);
            else
                g->ukernel(kc, ap, bp, c, ldc, g->alpha, m, n, flags, from ? &st : NULL);
            if (last && g->act && !relu) mrec_gemm_activate(c, ldc, m, n, *g->act, g->pool);
            if (run < n) mrec_images_tile(g->images, C, g->ldc, i0 + ir, j0 + jr, m, n, tile, g->NR, 1);
            if (pf)
                for (int r = pf->rows * call / calls; r < pf->rows * (call + 1) / calls; r++)
                    for (int j = 0; j < pf->width; j += 16)
                        __builtin_prefetch((const void *)(pf->base + sizeof(float) * ((pf->idx ? (size_t)pf->idx[r] : (size_t)r) * pf->ld + (size_t)j)), 0, 3);
        }
    }
}

/* ---- one large GEMM: B packed once per (jc, pc) block, shared by all ---- */

static void pack_b_task(void *arg, int task, int thread) {
    (void)thread;
    const gemm_job *g = arg;
    pack_b_job(g, g->bpack, g->B, g->p0, g->kc, g->j0, g->nc, task, task + 1);
}

static void shared_b_task(void *arg, int task, int thread) {
    const gemm_job *g = arg;
    int ib = task / g->j_chunks, jb = task % g->j_chunks;
    int i0 = ib * MREC_GEMM_MC, mc = g->M - i0 < MREC_GEMM_MC ? g->M - i0 : MREC_GEMM_MC;
    int jr_lo = jb * g->j_chunk, jr_hi = jr_lo + g->j_chunk < g->nc ? jr_lo + g->j_chunk : g->nc;
    if (jr_lo >= jr_hi) return;
    if (g->kc == 0) {
        start_only(g, g->C, i0, mc, g->j0 + jr_lo, jr_hi - jr_lo);
        return;
    }
    const float *apack = a_block(g, mrec_pool_scratch(g->pool, thread), g->A, i0, mc, g->p0, g->kc);
    macro_kernel(g, g->C, apack, g->bpack, i0, mc, g->j0, jr_lo, jr_hi, g->kc, g->p0 == 0, g->p0 + g->kc >= g->K, NULL);
}

static void gemm_shared_b(gemm_job *g) {
    g->bpack = (float *)mrec_pool_scratch(g->pool, 0) + (size_t)MREC_GEMM_MC * MREC_GEMM_KC;
    for (g->j0 = 0; g->j0 < g->N; g->j0 += MREC_GEMM_NC) {
        g->nc = g->N - g->j0 < MREC_GEMM_NC ? g->N - g->j0 : MREC_GEMM_NC;
        /* enough tasks for every thread twice over, so uneven row blocks even out */
        int panels = (g->nc + g->NR - 1) / g->NR, want = 2 * mrec_pool_threads(g->pool);
        int split = g->m_blocks >= want ? 1 : (want + g->m_blocks - 1) / g->m_blocks;
        if (split > panels) split = panels;
        g->j_chunk = (panels + split - 1) / split * g->NR;
        g->j_chunks = (g->nc + g->j_chunk - 1) / g->j_chunk;
        for (g->p0 = 0; g->p0 < g->K || g->p0 == 0; g->p0 += MREC_GEMM_KC) {
            g->kc = g->K - g->p0 < MREC_GEMM_KC ? g->K - g->p0 : MREC_GEMM_KC;
            if (g->bpacked)
                g->bpack = (float *)g->bpacked + g->p0 * g->bpacked_n + (int64_t)g->j0 * g->kc;
            else if (g->kc > 0)
                mrec_pool_run(g->pool, pack_b_task, g, panels);
            mrec_pool_run(g->pool, shared_b_task, g, g->m_blocks * g->j_chunks);
            if (g->K == 0) break;
        }
    }
}

/* ---- one large GEMM over a B packed whole beforehand (a weight) ---------
 * No B to pack, so no pool round per (NC, KC) block: one round, a task per
 * (row block, column range). Each task packs its A block once per KC block
 * and sweeps its columns NC at a time; the rounds above would pack the same
 * A block again for every NC block (12 % of BERT's FFN GEMM on one thread).
 * Each element of C still sums its KC blocks in order: the same bits. */

/* Where row task t begins (t = row_tasks: M): blocks of task_rows over a packed A, else the rows shared evenly in
 * whole micro-kernel heights. */
static int task_row(const gemm_job *g, int t) {
    if (g->apacked) return t * g->task_rows < g->M ? t * g->task_rows : g->M;
    int64_t units = (g->M + g->MR - 1) / g->MR, at = t * units / g->row_tasks * g->MR;
    return at < g->M ? (int)at : g->M;
}

static void packed_b_task(void *arg, int task, int thread) {
    const gemm_job *g = arg;
    int ib = task / g->j_chunks, jb = task % g->j_chunks;
    int i0 = task_row(g, ib), mc = task_row(g, ib + 1) - i0;
    int j_lo = jb * g->j_chunk, j_hi = j_lo + g->j_chunk < g->N ? j_lo + g->j_chunk : g->N;
    if (j_lo >= j_hi) return;
    float *scratch = mrec_pool_scratch(g->pool, thread); /* K > 0: B is packed */
    for (int p0 = 0; p0 < g->K; p0 += MREC_GEMM_KC) {
        int kc = g->K - p0 < MREC_GEMM_KC ? g->K - p0 : MREC_GEMM_KC;
        const float *apack = a_block(g, scratch, g->A, i0, mc, p0, kc);
        for (int j0 = j_lo; j0 < j_hi; j0 += MREC_GEMM_NC) {
            int nc = j_hi - j0 < MREC_GEMM_NC ? j_hi - j0 : MREC_GEMM_NC;
            const float *bpack = g->bpacked + p0 * g->bpacked_n + (int64_t)j0 * kc;
            macro_kernel(g, g->C, apack, bpack, i0, mc, j0, 0, nc, kc, p0 == 0, p0 + kc >= g->K, NULL);
        }
    }
}

/* Up to this many rows (a sequence, an image's patches) a task takes all of
 * them, so each weight column is read from memory by one task only: at
 * batch 1 a large model's weights come from memory once per forward, and
 * ViT's FFN GEMM (197 rows) on two threads ran at 266 GFLOP/s with its
 * weights re-read per 144-row block, 347 with them in cache. Its A block
 * (the rows by KC) then fills the thread's scratch, which the packed B
 * leaves free. */
#define PACKED_B_ROWS 512
/* Rows per task where A is read in place through several KC blocks (gemm_whole_b): a multiple of every MR. */
#define NARROW_ROWS 24
_Static_assert((PACKED_B_ROWS + 16) * MREC_GEMM_KC <= MREC_GEMM_SCRATCH_FLOATS, "an A block of PACKED_B_ROWS fits the scratch");

/* All of op(A)'s rows as one block, a task per KC block: block (0, p0) at
 * apacked_block(g, 0, M, p0). */
static void pack_rows_task(void *arg, int task, int thread) {
    (void)thread;
    const gemm_job *g = arg;
    int p0 = task * MREC_GEMM_KC, kc = g->K - p0 < MREC_GEMM_KC ? g->K - p0 : MREC_GEMM_KC;
    pack_a((float *)apacked_block(g, 0, g->M, p0), g->A, g->lda, g->a_idx, g->trans_a, 0, g->M, p0, kc, g->MR, g->packer);
}

static void gemm_packed_b(gemm_job *g, int from_memory) {
    /* A few rows are one row block that the tasks split by columns, a task per thread, and each task would pack
     * all of A again. From three threads A is packed once for them all instead (ViT-B/16 at batch 1 packed each
     * activation four times, 6 % of its forward); on two, each packing its own into its own cache was faster
     * (197 x 768 x 768: 1.24 -> 1.19 ms, 1.66 -> 1.36 in a slow spell of the host). Without the memory, each
     * task packs its own. A B just packed is in cache, and rows split between the threads as well as columns
     * balance better (256 x 196 columns: 7 panels in 4 tasks). */
    float *own = NULL;
    int threads = mrec_pool_threads(g->pool), one_block = from_memory && !g->apacked && g->M <= PACKED_B_ROWS;
    if (one_block && !g->a_rows && threads > 2 && g->N > g->NR && g->K > 0) {
        size_t bytes = sizeof(float) * (size_t)((g->M + g->MR - 1) / g->MR * g->MR) * g->K;
        if ((own = aligned_alloc(64, (bytes + 63) / 64 * 64))) {
            g->apacked = own;
            mrec_pool_run(g->pool, pack_rows_task, g, (g->K + MREC_GEMM_KC - 1) / MREC_GEMM_KC);
        }
    }
    g->task_rows = one_block ? g->M : g->a_rows && g->K > MREC_GEMM_KC ? NARROW_ROWS : MREC_GEMM_MC;
    int row_tasks = (g->M + g->task_rows - 1) / g->task_rows;
    /* Row blocks in a multiple of the threads, each a whole number of micro-kernel rows: 11 blocks of 144 on two
     * threads (ViT-B/16 at batch 8) kept one thread a block longer than the other. A packed A keeps its blocks. */
    if (!g->apacked && row_tasks > 1) row_tasks = (row_tasks + threads - 1) / threads * threads;
    g->row_tasks = row_tasks;
    /* enough tasks for every thread twice over, as gemm_shared_b, or one each for one block; a range is whole NR
     * panels */
    int panels = (g->N + g->NR - 1) / g->NR, want = (one_block ? 1 : 2) * threads;
    int split = row_tasks >= want ? 1 : (want + row_tasks - 1) / row_tasks;
    if (split > panels) split = panels;
    g->j_chunk = (panels + split - 1) / split * g->NR;
    g->j_chunks = (g->N + g->j_chunk - 1) / g->j_chunk;
    mrec_pool_run(g->pool, packed_b_task, g, row_tasks * g->j_chunks);
    if (own) free(own), g->apacked = NULL;
}

#define B_CHUNK 64

/* ---- tiles with private packing ---------------------------------------
 * One task per (batch item, MC x NC tile of C), packing its own A and B.
 * Used for batches (attention has many small GEMMs, and one pool round for
 * all of them beats rounds per item) and when C has too few row blocks to
 * share a packed B (then each column tile's B is packed by one task only). */

static void private_task(void *arg, int task, int thread) {
    const gemm_job *g = arg;
    int per_item = g->m_blocks * g->j_chunks;
    int b = task / per_item, t = task % per_item;
    int panels = (g->N + g->NR - 1) / g->NR, jb = t % g->j_chunks;
    int i0 = (t / g->j_chunks) * MREC_GEMM_MC, j0 = (int)((int64_t)jb * panels / g->j_chunks) * g->NR;
    int j1 = (int)((int64_t)(jb + 1) * panels / g->j_chunks) * g->NR;
    int mc = g->M - i0 < MREC_GEMM_MC ? g->M - i0 : MREC_GEMM_MC, nc = (j1 < g->N ? j1 : g->N) - j0;
    const float *A = g->A + b * g->stride_a, *B = g->B ? g->B + b * g->stride_b : NULL; /* no B: filled (g->fill) */
    float *C = g->C + b * g->stride_c;
    float *apack = mrec_pool_scratch(g->pool, thread);
    float *bpack = apack + (size_t)MREC_GEMM_MC * MREC_GEMM_KC;
    if (g->K == 0) start_only(g, C, i0, mc, j0, nc);
    /* One row block of C over a long row-major B (a weight's gradient, x^T y with x tall): each element of B meets
     * few rows of A, so reading B costs as much as the arithmetic. B is packed B_CHUNK columns at a time, and the
     * micro-kernels on one chunk prefetch the next chunk's rows, so some of the reads overlap the arithmetic
     * (64 x 4096 x 7050 on one thread: 46-51 -> 54-57 GFLOP/s). */
    int stream = g->m_blocks == 1 && B && !g->bpacked && !g->trans_b && g->packer != PACK_PLAIN && nc > B_CHUNK;
    int chunk = (B_CHUNK + g->NR - 1) / g->NR * g->NR; /* whole panels: 64 columns of 48-wide panels computed 96 */
    for (int p0 = 0; p0 < g->K; p0 += MREC_GEMM_KC) {
        int kc = g->K - p0 < MREC_GEMM_KC ? g->K - p0 : MREC_GEMM_KC;
        const float *ap = a_block(g, apack, A, i0, mc, p0, kc);
        int first = p0 == 0, last = p0 + kc >= g->K;
        if (stream) {
            for (int jc = 0; jc < nc; jc += chunk) {
                int w = nc - jc < chunk ? nc - jc : chunk, next = nc - jc - w < chunk ? nc - jc - w : chunk;
                prefetch_plan pf = {(uintptr_t)((g->b_idx ? B : B + (size_t)p0 * g->ldb) + j0 + jc + w), (size_t)g->ldb, kc, next,
                                    g->b_idx ? g->b_idx + p0 : NULL};
                pack_b_job(g, bpack, B, p0, kc, j0 + jc, w, 0, (w + g->NR - 1) / g->NR);
                macro_kernel(g, C, ap, bpack, i0, mc, j0 + jc, 0, w, kc, first, last, next > 0 ? &pf : NULL);
            }
            continue;
        }
        if (g->bpacked)
            bpack = (float *)g->bpacked + p0 * g->bpacked_n + (int64_t)j0 * kc;
        else
            pack_b_job(g, bpack, B, p0, kc, j0, nc, 0, (nc + g->NR - 1) / g->NR);
        macro_kernel(g, C, ap, bpack, i0, mc, j0, 0, nc, kc, first, last, NULL);
    }
}

/* ---- a few rows: dot products or row updates, no packing ----------------
 * With M below a micro-kernel's height, packing costs more than it saves
 * and the micro-kernel would compute mostly padding. 16 partial sums keep
 * the loops vectorizable without reassociating (no -ffast-math). */

#define FEW_ROWS MREC_GEMM_FEW_ROWS

/* Columns of C per pass over the rows in the dot-product loop: their rows
 * of B (FEW_ROWS_JB x K) stay in L1/L2 while every row of A meets them,
 * instead of B streaming from memory once per row of C. */
#define FEW_ROWS_JB 8

MREC_VECTOR_CLONES static void few_rows_task(void *arg, int task, int thread) {
    (void)thread;
    const gemm_job *g = arg;
    int j_lo = task * g->j_chunk, j_hi = j_lo + g->j_chunk < g->N ? j_lo + g->j_chunk : g->N;
    for (int i = 0; i < g->M; i++) prologue(g, g->C, i, 1, j_lo, j_hi - j_lo);
    if (g->trans_b && !g->trans_a) {
        for (int jb = j_lo; jb < j_hi; jb += FEW_ROWS_JB) {
            int jb_hi = jb + FEW_ROWS_JB < j_hi ? jb + FEW_ROWS_JB : j_hi;
            for (int i = 0; i < g->M; i++) {
                const float *a = g->A + (size_t)(g->a_idx ? g->a_idx[i] : i) * g->lda;
                float *c = g->C + (size_t)i * g->ldc;
                for (int j = jb; j < jb_hi; j++) {
                    const float *b = g->B + (size_t)j * g->ldb;
                    float part[16] = {0};
                    int k = 0;
                    for (; k + 16 <= g->K; k += 16)
                        for (int t = 0; t < 16; t++) part[t] += a[k + t] * b[k + t];
                    float sum = 0.0f;
                    for (int t = 0; t < 16; t++) sum += part[t];
                    for (; k < g->K; k++) sum += a[k] * b[k];
                    c[j] += g->alpha * sum;
                }
            }
        }
        if (g->act) mrec_gemm_activate(g->C + j_lo, g->ldc, g->M, j_hi - j_lo, *g->act, g->pool);
        return;
    }
    for (int i = 0; i < g->M; i++) {
        float *c = g->C + (size_t)i * g->ldc;
        /* c[j_lo:j_hi] += alpha * sum_k a[i][k] * op(B)[k][j_lo:j_hi] */
        for (int k = 0; k < g->K; k++) {
            float a = g->alpha * (g->trans_a ? g->A[(size_t)k * g->lda + i]
                                             : g->A[(size_t)(g->a_idx ? g->a_idx[i] : i) * g->lda + k]);
            if (!g->trans_b) {
                const float *b = g->B + (size_t)(g->b_idx ? g->b_idx[k] : k) * g->ldb;
                for (int j = j_lo; j < j_hi; j++) c[j] += a * b[j];
            } else {
                for (int j = j_lo; j < j_hi; j++) c[j] += a * g->B[(size_t)j * g->ldb + k];
            }
        }
    }
    if (g->act) mrec_gemm_activate(g->C + j_lo, g->ldc, g->M, j_hi - j_lo, *g->act, g->pool);
}

/* The area of C rounded up to whole MR x NR tiles. */
static int64_t padded_area(int M, int N, int MR, int NR) {
    return (int64_t)((M + MR - 1) / MR * MR) * ((N + NR - 1) / NR * NR);
}

/* The micro-kernel and packers for the pool's SIMD level (and, with
 * AVX-512, the shape that computes the least zero padding for this M x N). */
static void pick_kernel(gemm_job *g) {
    switch (mrec_pool_simd(g->pool)) {
    case MREC_SIMD_AMX: /* the tiles hold bf16 products only */
    case MREC_SIMD_AVX512:
        g->packer = PACK_AVX512;
        if (padded_area(g->M, g->N, MREC_UK_AVX512_8_MR, MREC_UK_AVX512_8_NR) <
            padded_area(g->M, g->N, MREC_UK_AVX512_MR, MREC_UK_AVX512_NR))
            g->ukernel = mrec_ukernel_avx512_8x48, g->ukernel_rows = mrec_ukernel_avx512_8x48_rows, g->MR = MREC_UK_AVX512_8_MR,
            g->NR = MREC_UK_AVX512_8_NR;
        else
            g->ukernel = mrec_ukernel_avx512, g->ukernel_rows = mrec_ukernel_avx512_rows, g->MR = MREC_UK_AVX512_MR,
            g->NR = MREC_UK_AVX512_NR;
        break;
    case MREC_SIMD_AVX2:
        g->packer = PACK_AVX2;
        g->ukernel = mrec_ukernel_avx2, g->ukernel_rows = mrec_ukernel_avx2_rows, g->MR = MREC_UK_AVX2_MR, g->NR = MREC_UK_AVX2_NR;
        break;
    default:
        g->packer = PACK_PLAIN;
        g->ukernel = ukernel_scalar, g->ukernel_rows = NULL, g->MR = UK_SCALAR_MR, g->NR = UK_SCALAR_NR;
        break;
    }
}

/* A row-major A with few B panels to reuse its packed copy (N up to
 * A_ROWS_MAX_N) is read in place: at N = 64 (a recommender's N x 64 by
 * 64 x 64 layers) packing took a quarter of the time. */
#define A_ROWS_MAX_N 64

static void prepare(gemm_job *g) {
    pick_kernel(g);
    g->a_rows = g->ukernel_rows && !g->trans_a && !g->apacked && g->N <= A_ROWS_MAX_N;
    g->m_blocks = (g->M + MREC_GEMM_MC - 1) / MREC_GEMM_MC;
}

static int pack_whole_b(void *dst, void *arg);

/* ---- op(B) packed whole first, then one round over it ---------------------
 * Shared-B rounds take two pool rounds per (NC, KC) block, each with its row blocks, and a row block of
 * MC split in two leaves one thread waiting at every round's end (256 x 196 x 2304, a ResNet 3x3 layer:
 * 18 rounds of 4 uneven tasks). Where op(B) packed is at most WHOLE_B_FLOATS, it is packed whole in one
 * round and gemm_packed_b takes the rest in one more. A narrow A read in place (VBPR's item features
 * times its 64 x 4480 projection) is the same case: each row of A then streams from memory in order
 * through every KC block (7050 x 64 x 4480 on two threads: 18.3 -> 15.2 ms). Each element of C sums the
 * same panels' products in the same order: the same bits. False without the memory. */
#define WHOLE_B_FLOATS (4 << 20)

static int gemm_whole_b(gemm_job *g) {
    int64_t n_pad = ((int64_t)g->N + g->NR - 1) / g->NR * g->NR;
    if (g->K <= 0 || n_pad * g->K > WHOLE_B_FLOATS || (g->a_rows && g->K <= MREC_GEMM_KC)) return 0;
    float *own = aligned_alloc(64, (size_t)n_pad * g->K * sizeof(float));
    if (!own) return 0;
    pack_whole_b(own, g);
    g->bpacked = own, g->bpacked_n = n_pad;
    gemm_packed_b(g, 0);
    g->bpacked = NULL;
    free(own);
    return 1;
}

/* ---- few rows of C, many columns: op(A) packed once, a task per column range ----
 * Shared-B rounds pack each A block again for every NC block of columns, and take two pool rounds per
 * (NC, KC) block: a projection's gradient, 256 x 4096 over 7050 items, ran 616 rounds, a sixth of its time
 * spent waiting in them. Where op(A) packed is at most A_ONCE_FLOATS it is packed once, and each task takes
 * a range of columns through every KC block, packing its own B: one round. Each element of C sums the same
 * panels' products in the same order: the same bits. */
#define A_ONCE_FLOATS (4 << 20)

static int pack_whole_a(void *dst, void *arg);

static void a_once_task(void *arg, int task, int thread) {
    const gemm_job *g = arg;
    int j0 = task * g->j_chunk, nc = g->N - j0 < g->j_chunk ? g->N - j0 : g->j_chunk;
    float *bpack = (float *)mrec_pool_scratch(g->pool, thread) + (size_t)MREC_GEMM_MC * MREC_GEMM_KC;
    for (int p0 = 0; p0 < g->K; p0 += MREC_GEMM_KC) {
        int kc = g->K - p0 < MREC_GEMM_KC ? g->K - p0 : MREC_GEMM_KC;
        pack_b_job(g, bpack, g->B, p0, kc, j0, nc, 0, (nc + g->NR - 1) / g->NR);
        for (int i0 = 0; i0 < g->M; i0 += MREC_GEMM_MC) {
            int mc = g->M - i0 < MREC_GEMM_MC ? g->M - i0 : MREC_GEMM_MC;
            macro_kernel(g, g->C, apacked_block(g, i0, mc, p0), bpack, i0, mc, j0, 0, nc, kc, p0 == 0, p0 + kc >= g->K, NULL);
        }
    }
}

/* False where it does not apply (a few column blocks, op(A) large or given packed) or without the memory. */
static int gemm_a_once(gemm_job *g) {
    int64_t m_pad = ((int64_t)g->M + g->MR - 1) / g->MR * g->MR;
    if (g->apacked || g->a_rows || g->N <= 2 * MREC_GEMM_NC || g->K <= 0 || m_pad * g->K > A_ONCE_FLOATS) return 0;
    float *own = aligned_alloc(64, ((size_t)m_pad * g->K * sizeof(float) + 63) / 64 * 64); /* a multiple of the alignment */
    if (!own) return 0;
    pack_whole_a(own, g);
    g->apacked = own;
    g->j_chunk = MREC_GEMM_NC / 2 / g->NR * g->NR; /* more tasks than column blocks, so the threads end together */
    mrec_pool_run(g->pool, a_once_task, g, (g->N + g->j_chunk - 1) / g->j_chunk);
    g->apacked = NULL;
    free(own);
    return 1;
}

/* ---- a weight's gradient: a small C over a long K --------------------------
 * dW = X^T dY with X and dY (K x M), (K x N) tall (K the graph's 26,495 nodes, M and N 64-384): C has one to
 * three row blocks and one column block, so the tiles above split its columns between the threads, and each
 * thread packs all of op(A) for its half (64 x 64 x 26495 on two threads: 127 GFLOP/s; 384 x 384: 229, its
 * shared-B rounds two pool rounds per KC block). Here K is cut into SPLIT_K_LANES fixed ranges instead, a task
 * each, which sums its range into a private C; then C = start + P_0 + P_1 + ... in lane order. The lanes do
 * not depend on the thread count, so neither do the bits. */
#define SPLIT_K_LANES 8

typedef struct {
    gemm_job lane;   /* the job for one lane: C, ldc, no start, no activation */
    const gemm_job *g;
    float *parts;    /* SPLIT_K_LANES x (M x N) */
    int blocks;      /* KC blocks in K */
} split_k_job;

static void split_k_lane(void *arg, int task, int thread) {
    const split_k_job *s = arg;
    gemm_job lane = s->lane;
    lane.C = s->parts + (size_t)task * lane.M * lane.N;
    float *apack = mrec_pool_scratch(lane.pool, thread), *bpack = apack + (size_t)MREC_GEMM_MC * MREC_GEMM_KC;
    int lo = task * s->blocks / SPLIT_K_LANES, hi = (task + 1) * s->blocks / SPLIT_K_LANES;
    for (int kb = lo; kb < hi; kb++) {
        int p0 = kb * MREC_GEMM_KC, kc = lane.K - p0 < MREC_GEMM_KC ? lane.K - p0 : MREC_GEMM_KC;
        pack_b_job(&lane, bpack, lane.B, p0, kc, 0, lane.N, 0, (lane.N + lane.NR - 1) / lane.NR);
        for (int i0 = 0; i0 < lane.M; i0 += MREC_GEMM_MC) {
            int mc = lane.M - i0 < MREC_GEMM_MC ? lane.M - i0 : MREC_GEMM_MC;
            const float *ap = a_block(&lane, apack, lane.A, i0, mc, p0, kc);
            macro_kernel(&lane, lane.C, ap, bpack, i0, mc, 0, 0, lane.N, kc, kb == lo, 0, NULL);
        }
    }
}

static void split_k_sum(void *arg, int task, int thread) {
    (void)thread;
    const split_k_job *s = arg;
    const gemm_job *g = s->g;
    int rows = (g->M + 3) / 4, i0 = task * rows, i1 = i0 + rows < g->M ? i0 + rows : g->M;
    size_t part = (size_t)g->M * g->N;
    if (i0 >= i1) return;
    if (has_start(g)) prologue(g, g->C, i0, i1 - i0, 0, g->N);
    for (int i = i0; i < i1; i++) {
        float *c = g->C + (size_t)i * g->ldc;
        const float *p = s->parts + (size_t)i * g->N;
        if (!has_start(g)) memcpy(c, p, sizeof(float) * (size_t)g->N);
        for (int l = has_start(g) ? 0 : 1; l < SPLIT_K_LANES; l++)
            for (int j = 0; j < g->N; j++) c[j] += p[l * part + j];
    }
}

/* True where it ran: op(A) transposed (a gradient's X^T), C small enough to keep eight copies, K long enough
 * for every lane to have two KC blocks, and the memory for them. */
static int gemm_split_k(gemm_job *g) {
    if (!g->trans_a || g->apacked || g->bpacked || g->fill || g->act || g->M <= FEW_ROWS || g->M > 3 * MREC_GEMM_MC ||
        g->N > MREC_GEMM_NC || g->K < 2 * SPLIT_K_LANES * MREC_GEMM_KC)
        return 0;
    split_k_job s = {.lane = *g, .g = g, .blocks = (g->K + MREC_GEMM_KC - 1) / MREC_GEMM_KC};
    s.parts = aligned_alloc(64, ((size_t)SPLIT_K_LANES * g->M * g->N * sizeof(float) + 63) / 64 * 64);
    if (!s.parts) return 0;
    s.lane.beta = 0, s.lane.bias = NULL, s.lane.row_bias = NULL, s.lane.ldc = g->N;
    mrec_pool_run(g->pool, split_k_lane, &s, SPLIT_K_LANES);
    mrec_pool_run(g->pool, split_k_sum, &s, 4);
    free(s.parts);
    return 1;
}

/* ---- a convolution's GEMM: A (the weights) packed once, op(B) filled ------
 * Shared-B rounds take two pool rounds per (NC, KC) block: 18 for one image
 * of a 1x1 convolution at 56 x 56 with K = 64, the threads waiting at the
 * end of every one. Here a task owns a range of B
 * panels and fills each once per KC block into its scratch, then runs every
 * row of the packed A over them: one round. Each element of C sums the same
 * panels' products in the same order: the same bits. */
#define FILLED_NCP 4 /* B panels per task at most (mrec_panel_tasks) */
_Static_assert((size_t)FILLED_NCP * MREC_GEMM_KC * MREC_UK_AVX512_8_NR <= MREC_GEMM_SCRATCH_FLOATS, "a task's B panels fit its scratch");

static void filled_task(void *arg, int task, int thread) {
    const gemm_job *g = arg;
    int panels = (g->N + g->NR - 1) / g->NR, q1 = (int)((int64_t)(task + 1) * panels / g->j_chunks);
    int j0 = (int)((int64_t)task * panels / g->j_chunks) * g->NR, nc = (q1 * g->NR < g->N ? q1 * g->NR : g->N) - j0;
    float *bpack = (float *)mrec_pool_scratch(g->pool, thread);
    for (int p0 = 0; p0 < g->K; p0 += MREC_GEMM_KC) {
        int kc = g->K - p0 < MREC_GEMM_KC ? g->K - p0 : MREC_GEMM_KC;
        pack_b_job(g, bpack, NULL, p0, kc, j0, nc, 0, (nc + g->NR - 1) / g->NR);
        for (int i0 = 0; i0 < g->M; i0 += MREC_GEMM_MC) {
            int mc = g->M - i0 < MREC_GEMM_MC ? g->M - i0 : MREC_GEMM_MC;
            macro_kernel(g, g->C, apacked_block(g, i0, mc, p0), bpack, i0, mc, j0, 0, nc, kc, p0 == 0, p0 + kc >= g->K, NULL);
        }
    }
}

static void gemm_filled(gemm_job *g) {
    g->j_chunks = mrec_panel_tasks((g->N + g->NR - 1) / g->NR, FILLED_NCP, mrec_pool_threads(g->pool));
    mrec_pool_run(g->pool, filled_task, g, g->j_chunks);
}

static void gemm_run(gemm_job *g, int batch) {
    if (g->M <= 0 || g->N <= 0 || batch <= 0) return;
    prepare(g);
    int threads = mrec_pool_threads(g->pool);
    if (batch == 1 && g->M <= FEW_ROWS && !g->fill) { /* a filled B exists only as panels */
        int chunks = 4 * threads;
        g->j_chunk = (g->N + chunks - 1) / chunks;
        if (g->j_chunk < 64) g->j_chunk = 64;
        mrec_pool_run(g->pool, few_rows_task, g, (g->N + g->j_chunk - 1) / g->j_chunk);
    } else if (batch == 1 && g->fill && g->apacked && g->K > 0) {
        gemm_filled(g);
    } else if (batch == 1 && gemm_split_k(g)) {
    } else if (batch == 1 && g->bpacked) {
        gemm_packed_b(g, 1);
    } else if (batch == 1 && g->m_blocks >= 2) {
        if (!gemm_whole_b(g) && !gemm_a_once(g))
            gemm_shared_b(g); /* one packing of B for all row blocks */
    } else {
        /* Column tiles of about NC, whole NR panels each, as many as make the tasks a multiple of the threads
         * while they are few: 64 x 3136 in 9 tiles kept one thread a tile longer than the other. */
        int items = batch * g->m_blocks, panels = (g->N + g->NR - 1) / g->NR, tiles = (g->N + MREC_GEMM_NC - 1) / MREC_GEMM_NC;
        while ((int64_t)items * tiles % threads && tiles < panels && (int64_t)items * tiles < 8 * threads) tiles++;
        g->j_chunks = tiles < panels ? tiles : panels;
        mrec_pool_run(g->pool, private_task, g, batch * g->m_blocks * g->j_chunks);
    }
}

void mrec_gemm_cpu(float *C, const float *A, const float *B, const float *bias,
                   float alpha, float beta, int trans_a, int trans_b,
                   int M, int N, int K, int lda, int ldb, int ldc, mrec_pool *pool) {
    gemm_job g = {
        .C = C, .A = A, .B = B, .bias = bias, .alpha = alpha, .beta = beta,
        .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
        .lda = lda, .ldb = ldb, .ldc = ldc, .pool = pool,
    };
    gemm_run(&g, 1);
}

void mrec_gemm_rows_cpu(float *C, const float *A, const int32_t *a_rows, const float *B, const int32_t *b_rows, const float *bias,
                        float alpha, float beta, int trans_a, int trans_b, int M, int N, int K, int lda, int ldb, int ldc,
                        mrec_pool *pool) {
    gemm_job g = {
        .C = C, .A = A, .B = B, .bias = bias, .a_idx = trans_a ? NULL : a_rows, .b_idx = trans_b ? NULL : b_rows,
        .alpha = alpha, .beta = beta, .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
        .lda = lda, .ldb = ldb, .ldc = ldc, .pool = pool,
    };
    gemm_run(&g, 1);
}

void mrec_gemm_item_cpu(float *C, const float *A, const float *B, float alpha, int trans_a, int trans_b, int batch, int M, int N,
                        int K, int lda, int ldb, int ldc, mrec_pool *pool, int thread) {
    gemm_job g = {
        .C = C, .A = A, .B = B, .alpha = alpha, .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
        .lda = lda, .ldb = ldb, .ldc = ldc, .pool = pool,
    };
    if (M <= 0 || N <= 0) return;
    prepare(&g);
    /* the path gemm_run takes for a batch of `batch`: dot products for a single item of a few rows, else tiles (a
     * single tall item shares its packed B among tasks, with the tiles' bits) */
    if (batch == 1 && M <= FEW_ROWS) {
        g.j_chunk = N;
        few_rows_task(&g, 0, thread);
        return;
    }
    g.j_chunks = (N + MREC_GEMM_NC - 1) / MREC_GEMM_NC;
    for (int t = 0; t < g.m_blocks * g.j_chunks; t++) private_task(&g, t, thread);
}

void mrec_gemm_batched_cpu(float *C, const float *A, const float *B,
                           float alpha, float beta, int trans_a, int trans_b,
                           int batch, int M, int N, int K, int lda, int ldb, int ldc,
                           int64_t stride_a, int64_t stride_b, int64_t stride_c,
                           mrec_pool *pool) {
    gemm_job g = {
        .C = C, .A = A, .B = B, .alpha = alpha, .beta = beta,
        .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
        .lda = lda, .ldb = ldb, .ldc = ldc,
        .stride_a = stride_a, .stride_b = stride_b, .stride_c = stride_c, .pool = pool,
    };
    gemm_run(&g, batch);
}

/* ---- weights packed once ----------------------------------------------- */

typedef struct {
    const float *w; /* (N, K), row-major: op(B) = w^T */
    int N, K, tag;  /* tag: the layout (the fp32 micro-kernel's, or bf16 pairs) */
    void *data;
    size_t bytes;
} packed_b;

struct mrec_packs {
    const float *lo, *hi; /* the storage: only B inside it is packed */
    packed_b *item;
    int n, cap;
    size_t bytes;
    pthread_mutex_t lock; /* two contexts may run one model at once */
};

mrec_status mrec_packs_create(mrec_packs **out, const float *storage, int64_t floats) {
    *out = NULL;
    mrec_packs *p = calloc(1, sizeof *p);
    if (!p) return mrec_fail(MREC_ERR_NOMEM, "packs: allocating the table");
    p->lo = storage, p->hi = storage + floats;
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return MREC_OK;
}

void mrec_packs_free(mrec_packs *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) mrec_free_large(p->item[i].data, p->item[i].bytes);
    free(p->item);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

size_t mrec_packs_bytes(mrec_packs *p) {
    if (!p) return 0;
    pthread_mutex_lock(&p->lock);
    size_t bytes = p->bytes;
    pthread_mutex_unlock(&p->lock);
    return bytes;
}

const void *mrec_packs_cached(mrec_packs *p, const float *w, int N, int K, int tag, size_t bytes,
                              int (*make)(void *dst, void *arg), void *arg) {
    if (w < p->lo || w + (int64_t)N * K > p->hi) return NULL;
    pthread_mutex_lock(&p->lock);
    for (int i = 0; i < p->n; i++) {
        packed_b *e = &p->item[i];
        if (e->w == w && e->N == N && e->K == K && e->tag == tag) {
            pthread_mutex_unlock(&p->lock);
            return e->data;
        }
    }
    bytes = (bytes + 63) / 64 * 64;
    packed_b e = {w, N, K, tag, mrec_alloc_large(bytes), bytes};
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        packed_b *item = realloc(p->item, (size_t)cap * sizeof *item);
        if (item) p->item = item, p->cap = cap;
    }
    const void *data = NULL;
    if (e.data && p->n < p->cap && make(e.data, arg)) {
        p->item[p->n++] = e;
        p->bytes += bytes;
        data = e.data;
    } else {
        mrec_free_large(e.data, bytes);
    }
    pthread_mutex_unlock(&p->lock);
    return data;
}

/* The fp32 micro-kernel's layout of all of op(B): one pool round, a task
 * per (KC block, panel); block (p0, j0) at p0 * Npad + j0 * kc. */
static void pack_whole_b_task(void *arg, int task, int thread) {
    (void)thread;
    const gemm_job *g = arg;
    int panels = (int)(g->bpacked_n / g->NR), p0 = task / panels * MREC_GEMM_KC, panel = task % panels;
    int kc = g->K - p0 < MREC_GEMM_KC ? g->K - p0 : MREC_GEMM_KC;
    pack_b_job(g, (float *)g->bpacked + p0 * g->bpacked_n, g->B, p0, kc, 0, g->N, panel, panel + 1);
}

static int pack_whole_b(void *dst, void *arg) {
    gemm_job pack = *(const gemm_job *)arg;
    pack.bpacked = dst, pack.bpacked_n = ((int64_t)pack.N + pack.NR - 1) / pack.NR * pack.NR;
    int k_blocks = (pack.K + MREC_GEMM_KC - 1) / MREC_GEMM_KC;
    mrec_pool_run(pack.pool, pack_whole_b_task, &pack, k_blocks * (int)(pack.bpacked_n / pack.NR));
    return 1;
}

/* The same for all of op(A): a task per (row block, KC block), each at
 * apacked_block()'s place. */
static void pack_a_task(void *arg, int task, int thread) {
    (void)thread;
    const gemm_job *g = arg;
    int k_blocks = (g->K + MREC_GEMM_KC - 1) / MREC_GEMM_KC;
    int i0 = task / k_blocks * MREC_GEMM_MC, p0 = task % k_blocks * MREC_GEMM_KC;
    int mc = g->M - i0 < MREC_GEMM_MC ? g->M - i0 : MREC_GEMM_MC, kc = g->K - p0 < MREC_GEMM_KC ? g->K - p0 : MREC_GEMM_KC;
    pack_a((float *)apacked_block(g, i0, mc, p0), g->A, g->lda, g->a_idx, g->trans_a, i0, mc, p0, kc, g->MR, g->packer);
}

static int pack_whole_a(void *dst, void *arg) {
    gemm_job pack = *(const gemm_job *)arg;
    pack.apacked = dst;
    int k_blocks = (pack.K + MREC_GEMM_KC - 1) / MREC_GEMM_KC;
    mrec_pool_run(pack.pool, pack_a_task, &pack, (pack.M + MREC_GEMM_MC - 1) / MREC_GEMM_MC * k_blocks);
    return 1;
}

/* Pack-set tags of the fp32 layouts: B by packer and NR, A by packer and MR. */
static int tag_b(const gemm_job *g) { return g->packer * 1000 + g->NR; }
static int tag_a(const gemm_job *g) { return 100000 + g->packer * 1000 + g->MR; }

/* A convolution's weights are its A (C_out x C_in k k, row-major): taken
 * from the pack set, packed on first use. */
static void use_packed_a(gemm_job *g, mrec_packs *packs) {
    if (!packs || g->trans_a || g->lda != g->K || g->M <= FEW_ROWS || g->N <= 0 || g->K <= 0) return;
    pick_kernel(g);
    int64_t m_pad = ((int64_t)g->M + g->MR - 1) / g->MR * g->MR;
    g->apacked = mrec_packs_cached(packs, g->A, g->M, g->K, tag_a(g), (size_t)m_pad * g->K * sizeof(float), pack_whole_a, g);
}

static void packed_run(gemm_job *g, mrec_packs *packs) {
    /* A few rows take the dot-product path, which reads B as it is. */
    if (packs && g->trans_b && g->ldb == g->K && g->M > FEW_ROWS && g->N > 0 && g->K > 0) {
        pick_kernel(g);
        g->bpacked_n = ((int64_t)g->N + g->NR - 1) / g->NR * g->NR;
        g->bpacked = mrec_packs_cached(packs, g->B, g->N, g->K, tag_b(g), (size_t)g->bpacked_n * g->K * sizeof(float),
                                       pack_whole_b, g);
    }
    use_packed_a(g, packs);
    gemm_run(g, 1);
}

void mrec_gemm_packed_cpu(float *C, const float *A, const float *B, const float *bias,
                          float alpha, float beta, int trans_a, int trans_b,
                          int M, int N, int K, int lda, int ldb, int ldc, mrec_packs *packs, mrec_pool *pool) {
    gemm_job g = {
        .C = C, .A = A, .B = B, .bias = bias, .alpha = alpha, .beta = beta,
        .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
        .lda = lda, .ldb = ldb, .ldc = ldc, .pool = pool,
    };
    packed_run(&g, packs);
}

void mrec_linear_act_cpu(float *C, const float *A, const float *W, const float *bias, mrec_act act, int M, int N, int K,
                         mrec_packs *packs, mrec_pool *pool) {
    gemm_job g = {
        .C = C, .A = A, .B = W, .bias = bias, .alpha = 1.0f, .trans_b = 1, .M = M, .N = N, .K = K,
        .lda = K, .ldb = K, .ldc = N, .pool = pool, .act = &act,
    };
    packed_run(&g, packs);
}

int mrec_gemm_filled_images_cpu(float *C, const float *A, mrec_gemm_fill_b fill, void *fill_arg, const float *row_bias, float beta,
                                int M, int N, int K, const mrec_gemm_images *images, const mrec_act *act, mrec_packs *packs,
                                mrec_pool *pool) {
    gemm_job g = {
        .C = C, .A = A, .alpha = 1.0f, .beta = beta, .M = M, .N = N, .K = K, .lda = K, .ldc = images->cols,
        .pool = pool, .fill = fill, .fill_arg = fill_arg, .row_bias = row_bias, .act = act, .images = images,
    };
    use_packed_a(&g, packs);
    if (!g.apacked || M <= 0 || N <= 0 || K <= 0) return 0;
    prepare(&g);
    gemm_filled(&g);
    return 1;
}

void mrec_gemm_filled_cpu(float *C, const float *A, mrec_gemm_fill_b fill, void *fill_arg, const float *row_bias,
                          float alpha, float beta, int M, int N, int K, int lda, int ldc, const mrec_act *act, mrec_packs *packs,
                          mrec_pool *pool) {
    gemm_job g = {
        .C = C, .A = A, .alpha = alpha, .beta = beta, .M = M, .N = N, .K = K, .lda = lda, .ldc = ldc,
        .pool = pool, .fill = fill, .fill_arg = fill_arg, .row_bias = row_bias, .act = act,
    };
    use_packed_a(&g, packs);
    gemm_run(&g, 1);
}

int mrec_gemm_b_layout(int M, int N, int K, mrec_pool *pool, size_t *bytes) {
    gemm_job g = {.M = M, .N = N, .K = K, .pool = pool};
    pick_kernel(&g);
    *bytes = (size_t)((N + g.NR - 1) / g.NR * g.NR) * (size_t)K * sizeof(float);
    return tag_b(&g);
}

void mrec_gemm_pack_wt_cpu(float *dst, const float *W, int M, int N, int K, int ldw, mrec_pool *pool) {
    gemm_job g = {.B = W, .trans_b = 1, .M = M, .N = N, .K = K, .ldb = ldw, .pool = pool};
    pick_kernel(&g);
    pack_whole_b(dst, &g);
}

void mrec_gemm_bpacked_cpu(float *C, const float *A, int trans_a, int lda, const float *bpacked, int M, int N, int K, int ldc,
                           mrec_pool *pool) {
    gemm_job g = {
        .C = C, .A = A, .alpha = 1.0f, .beta = 0.0f, .trans_a = trans_a, .trans_b = 1, .M = M, .N = N, .K = K,
        .lda = lda, .ldb = K, .ldc = ldc, .pool = pool, .bpacked = bpacked,
    };
    pick_kernel(&g);
    g.bpacked_n = ((int64_t)N + g.NR - 1) / g.NR * g.NR;
    if (M > FEW_ROWS) gemm_run(&g, 1); /* fewer rows would take the dot-product path, which reads B unpacked */
}

int mrec_cpu_has_bf16(void) {
#if defined(__x86_64__) && (defined(__clang__) || __GNUC__ >= 10)
    __builtin_cpu_init();
    /* every CPU with AVX-512 BF16 has BW and VL, whose 16-bit masked loads and stores the bf16 kernels use, and DQ,
     * whose VREDUCEPS bf16's swish takes */
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

mrec_status mrec_gemm_bf16_cpu(float *C, const float *A, const float *B, const float *bias,
                               float alpha, float beta, int trans_a, int trans_b,
                               int M, int N, int K, int lda, int ldb, int ldc, mrec_packs *packs, mrec_pool *pool) {
    if (!mrec_cpu_has_bf16()) return mrec_fail(MREC_ERR_UNSUPPORTED, "bf16 GEMM: this CPU has no AVX-512 BF16");
    if (!mrec_gemm_bf16_run(C, A, B, bias, alpha, beta, trans_a, trans_b, M, N, K, lda, ldb, ldc, NULL, packs, pool))
        return mrec_fail(MREC_ERR_NOMEM, "bf16 GEMM: packing B (%d x %d)", K, N);
    return MREC_OK;
}

mrec_status mrec_linear_act_bf16_cpu(float *C, const float *A, const float *W, const float *bias, mrec_act act, int M, int N,
                                     int K, mrec_packs *packs, mrec_pool *pool) {
    if (!mrec_cpu_has_bf16()) return mrec_fail(MREC_ERR_UNSUPPORTED, "bf16 GEMM: this CPU has no AVX-512 BF16");
    if (!mrec_gemm_bf16_run(C, A, W, bias, 1.0f, 0.0f, 0, 1, M, N, K, K, K, N, &act, packs, pool))
        return mrec_fail(MREC_ERR_NOMEM, "bf16 GEMM: packing B (%d x %d)", K, N);
    return MREC_OK;
}
