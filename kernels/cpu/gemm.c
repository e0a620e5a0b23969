/* gemm.c: the fast CPU GEMM (and batched GEMM), BLIS-style.
 *
 * C is cut into tiles of MC x NC; each tile is one task on the pool, so
 * threads never share an output element and the result does not depend on
 * scheduling or thread count. Inside a task, for each KC slice of K, the
 * task packs its A block and B block into its own scratch (transposes are
 * resolved here, once) and sweeps the micro-kernel over MR x NR sub-tiles.
 * The micro-kernel is picked from the pool's SIMD level.
 *
 * It does not: handle strided rows inside a row (elements of a row are
 * contiguous), or mixed precision.
 */
#include "../mrec_kernels.h"
#include "gemm_internal.h"

#include <string.h>

/* Portable micro-kernel: 4 x 16, written so the compiler can vectorize the
 * inner loop with whatever the baseline ISA offers. */
#define UK_SCALAR_MR 4
#define UK_SCALAR_NR 16
static void ukernel_scalar(int kc, const float *a, const float *b, float *c, int ldc,
                           float alpha, int m, int n) {
    float acc[UK_SCALAR_MR][UK_SCALAR_NR] = {{0}};
    for (int k = 0; k < kc; k++) {
        for (int i = 0; i < UK_SCALAR_MR; i++) {
            float ai = a[k * UK_SCALAR_MR + i];
            for (int j = 0; j < UK_SCALAR_NR; j++) acc[i][j] += ai * b[k * UK_SCALAR_NR + j];
        }
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) c[(size_t)i * ldc + j] += alpha * acc[i][j];
}

typedef struct {
    float *C;
    const float *A, *B, *bias;
    float alpha, beta;
    int trans_a, trans_b, M, N, K, lda, ldb, ldc;
    int64_t stride_a, stride_b, stride_c;
    int m_blocks, n_blocks;
    mrec_pool *pool;
    mrec_ukernel_fn ukernel;
    int MR, NR;
} gemm_job;

/* Packs op(A)[i0 : i0+mc, p0 : p0+kc] as ceil(mc/MR) panels of (kc, MR). */
static void pack_a(float *dst, const float *A, int lda, int trans_a, int i0, int mc, int p0,
                   int kc, int MR) {
    for (int ir = 0; ir < mc; ir += MR) {
        int rows = mc - ir < MR ? mc - ir : MR;
        if (!trans_a) {
            /* A is (M, K): read each row contiguously, write with stride MR. */
            for (int i = 0; i < rows; i++) {
                const float *src = A + (size_t)(i0 + ir + i) * lda + p0;
                for (int k = 0; k < kc; k++) dst[k * MR + i] = src[k];
            }
        } else {
            /* A is (K, M): each k gives MR contiguous values. */
            for (int k = 0; k < kc; k++) {
                const float *src = A + (size_t)(p0 + k) * lda + i0 + ir;
                for (int i = 0; i < rows; i++) dst[k * MR + i] = src[i];
            }
        }
        for (int i = rows; i < MR; i++)
            for (int k = 0; k < kc; k++) dst[k * MR + i] = 0.0f;
        dst += (size_t)kc * MR;
    }
}

/* Packs op(B)[p0 : p0+kc, j0 : j0+nc] as ceil(nc/NR) panels of (kc, NR). */
static void pack_b(float *dst, const float *B, int ldb, int trans_b, int p0, int kc, int j0,
                   int nc, int NR) {
    for (int jr = 0; jr < nc; jr += NR) {
        int cols = nc - jr < NR ? nc - jr : NR;
        if (!trans_b) {
            for (int k = 0; k < kc; k++) {
                const float *src = B + (size_t)(p0 + k) * ldb + j0 + jr;
                float *d = dst + (size_t)k * NR;
                memcpy(d, src, (size_t)cols * sizeof(float));
                for (int j = cols; j < NR; j++) d[j] = 0.0f;
            }
        } else {
            /* B is (N, K): read each row of B contiguously. */
            for (int j = 0; j < cols; j++) {
                const float *src = B + (size_t)(j0 + jr + j) * ldb + p0;
                for (int k = 0; k < kc; k++) dst[k * NR + j] = src[k];
            }
            for (int j = cols; j < NR; j++)
                for (int k = 0; k < kc; k++) dst[k * NR + j] = 0.0f;
        }
        dst += (size_t)kc * NR;
    }
}

static void gemm_task(void *arg, int task, int thread) {
    const gemm_job *g = arg;
    int per_batch = g->m_blocks * g->n_blocks;
    int b = task / per_batch, t = task % per_batch;
    int i0 = (t / g->n_blocks) * MREC_GEMM_MC, j0 = (t % g->n_blocks) * MREC_GEMM_NC;
    int mc = g->M - i0 < MREC_GEMM_MC ? g->M - i0 : MREC_GEMM_MC;
    int nc = g->N - j0 < MREC_GEMM_NC ? g->N - j0 : MREC_GEMM_NC;
    const float *A = g->A + b * g->stride_a;
    const float *B = g->B + b * g->stride_b;
    float *C = g->C + b * g->stride_c;

    /* Prologue: C = beta * C + bias on this tile. */
    for (int i = 0; i < mc; i++) {
        float *c = C + (size_t)(i0 + i) * g->ldc + j0;
        for (int j = 0; j < nc; j++) {
            float v = g->beta == 0.0f ? 0.0f : g->beta * c[j];
            c[j] = g->bias ? v + g->bias[j0 + j] : v;
        }
    }

    float *apack = mrec_pool_scratch(g->pool, thread);
    float *bpack = apack + (size_t)MREC_GEMM_MC * MREC_GEMM_KC;
    for (int p0 = 0; p0 < g->K; p0 += MREC_GEMM_KC) {
        int kc = g->K - p0 < MREC_GEMM_KC ? g->K - p0 : MREC_GEMM_KC;
        pack_b(bpack, B, g->ldb, g->trans_b, p0, kc, j0, nc, g->NR);
        pack_a(apack, A, g->lda, g->trans_a, i0, mc, p0, kc, g->MR);
        for (int jr = 0; jr < nc; jr += g->NR) {
            int n = nc - jr < g->NR ? nc - jr : g->NR;
            const float *bp = bpack + (size_t)(jr / g->NR) * kc * g->NR;
            for (int ir = 0; ir < mc; ir += g->MR) {
                int m = mc - ir < g->MR ? mc - ir : g->MR;
                const float *ap = apack + (size_t)(ir / g->MR) * kc * g->MR;
                g->ukernel(kc, ap, bp, C + (size_t)(i0 + ir) * g->ldc + j0 + jr, g->ldc,
                           g->alpha, m, n);
            }
        }
    }
}

static void gemm_run(gemm_job *g, int batch) {
    if (g->M <= 0 || g->N <= 0 || batch <= 0) return;
    switch (mrec_pool_simd(g->pool)) {
    case MREC_SIMD_AVX512:
        g->ukernel = mrec_ukernel_avx512, g->MR = MREC_UK_AVX512_MR, g->NR = MREC_UK_AVX512_NR;
        break;
    case MREC_SIMD_AVX2:
        g->ukernel = mrec_ukernel_avx2, g->MR = MREC_UK_AVX2_MR, g->NR = MREC_UK_AVX2_NR;
        break;
    default:
        g->ukernel = ukernel_scalar, g->MR = UK_SCALAR_MR, g->NR = UK_SCALAR_NR;
        break;
    }
    g->m_blocks = (g->M + MREC_GEMM_MC - 1) / MREC_GEMM_MC;
    g->n_blocks = (g->N + MREC_GEMM_NC - 1) / MREC_GEMM_NC;
    mrec_pool_run(g->pool, gemm_task, g, batch * g->m_blocks * g->n_blocks);
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
