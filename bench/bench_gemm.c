/* bench_gemm.c: GEMM throughput at encoder and ResNet shapes, side by side
 * with OpenBLAS in the same run, against the machine's measured FMA peak.
 *
 *   build/cpu/bench/bench_gemm [threads [amx|avx512|avx2|scalar [small|train]]]   (make bench runs it)
 *
 * "small" times the batch-1 shapes (M = 1 to 197) instead of the large ones; "train" a graph
 * recommender's on Baby (26,495 nodes, 7,050 items): weight gradients X^T dY over all the nodes, the
 * visual projection's forward and gradient, the layers' X W.
 *
 * For each shape: validate mrec against a double-precision dot product on
 * sampled elements, warm up, then time both libraries with a monotonic
 * clock (best of the repetitions in 0.3 s, twice each, alternating), and
 * print GFLOP/s, the fraction of peak and mrec / OpenBLAS. "packed" is mrec
 * with B (a weight, x W^T) packed once beforehand, as an encoder at
 * inference runs it (mrec_packs); "-" where B is not such a weight. "bf16"
 * is mrec's bf16 GEMM (products of bf16-rounded inputs, fp32 sums) where
 * the CPU has AVX-512 BF16, its weights packed once likewise; "bf16 amx"
 * the same GEMM through the AMX tiles where the CPU has them (the default
 * level there). Both ratios are against OpenBLAS's fp32.
 * OpenBLAS is used here only; mrec does not link it.
 */
#include "../kernels/mrec_kernels.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One thread's peak: 12 independent accumulators, acc = m * c + acc as in
 * a GEMM micro-kernel, so FMA throughput, not latency, bounds the loop.
 * Uses the widest vectors the pool's SIMD level allows. */
#define FMA12(fma)                                                                          \
    a0 = fma(m, c, a0), a1 = fma(m, c, a1), a2 = fma(m, c, a2), a3 = fma(m, c, a3);          \
    a4 = fma(m, c, a4), a5 = fma(m, c, a5), a6 = fma(m, c, a6), a7 = fma(m, c, a7);          \
    a8 = fma(m, c, a8), a9 = fma(m, c, a9), a10 = fma(m, c, a10), a11 = fma(m, c, a11)

__attribute__((target("avx512f"))) static double peak_avx512(void) {
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    /* Distinct starting values, so the compiler cannot merge the chains. */
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3);
    __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7);
    __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    long iters = 50000000;
    double t0 = now();
    for (long it = 0; it < iters; it++) {
        FMA12(_mm512_fmadd_ps);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));
        __asm__ volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    }
    double t = now() - t0;
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    if (_mm512_reduce_add_ps(s) == 12345.0f) puts("");
    return iters * 12.0 * 32.0 / t / 1e9;
}

__attribute__((target("avx2,fma"))) static double peak_avx2(void) {
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    /* Distinct starting values, so the compiler cannot merge the chains. */
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3);
    __m256 a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7);
    __m256 a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    long iters = 50000000;
    double t0 = now();
    for (long it = 0; it < iters; it++) {
        FMA12(_mm256_fmadd_ps);
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
        __asm__ volatile("" : "+x"(a6), "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));
    }
    double t = now() - t0;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float buf[8];
    _mm256_storeu_ps(buf, s);
    if (buf[0] == 12345.0f) puts("");
    return iters * 12.0 * 16.0 / t / 1e9;
}

typedef struct {
    const char *name;
    int M, N, K, trans_b, trans_a;
} shape;

static const shape shapes[] = {
    {"BERT qkv/out   x W^T", 4096, 768, 768, 1, 0},
    {"BERT ffn up    x W^T", 4096, 3072, 768, 1, 0},
    {"BERT ffn down  x W^T", 4096, 768, 3072, 1, 0},
    {"ResNet stem    W col", 64, 12544, 147, 0, 0},
    {"ResNet 3x3 l1  W col", 64, 3136, 576, 0, 0},
    {"ResNet 1x1 l2  W col", 512, 784, 128, 0, 0},
    {"ResNet 3x3 l3  W col", 256, 196, 2304, 0, 0},
    {"ResNet 1x1 l4  W col", 2048, 49, 512, 0, 0},
    {"CLIP text 1    x W^T", 32, 2048, 512, 1, 0},
    {"ViT-B/16 1     x W^T", 197, 768, 768, 1, 0},
    {"batch-1 gemv   x W^T", 1, 3072, 768, 1, 0},
};

/* Batch-1 inference: one sequence or image, M from 1 to ~200 rows, at the
 * encoders' projections (x W^T) and ResNet's last 1x1 convolutions. */
static const shape small_shapes[] = {
    {"1   x W^T", 1, 768, 768, 1, 0},      {"1   x W^T", 1, 2304, 768, 1, 0},     {"1   x W^T", 1, 3072, 768, 1, 0},
    {"1   x W^T", 1, 768, 3072, 1, 0},     {"8   x W^T", 8, 768, 768, 1, 0},      {"8   x W^T", 8, 2304, 768, 1, 0},
    {"8   x W^T", 8, 3072, 768, 1, 0},     {"8   x W^T", 8, 768, 3072, 1, 0},     {"32  x W^T", 32, 768, 768, 1, 0},
    {"32  x W^T", 32, 2304, 768, 1, 0},    {"32  x W^T", 32, 3072, 768, 1, 0},    {"32  x W^T", 32, 768, 3072, 1, 0},
    {"32  x W^T", 32, 384, 384, 1, 0},     {"32  x W^T", 32, 1536, 384, 1, 0},    {"32  x W^T", 32, 384, 1536, 1, 0},
    {"49  x W^T", 49, 768, 768, 1, 0},     {"49  x W^T", 49, 3072, 768, 1, 0},    {"49  1x1 conv", 49, 2048, 512, 1, 0},
    {"128 x W^T", 128, 768, 768, 1, 0},    {"128 x W^T", 128, 2304, 768, 1, 0},   {"128 x W^T", 128, 3072, 768, 1, 0},
    {"128 x W^T", 128, 768, 3072, 1, 0},   {"128 x W^T", 128, 384, 384, 1, 0},    {"128 x W^T", 128, 1536, 384, 1, 0},
    {"128 x W^T", 128, 384, 1536, 1, 0},   {"197 x W^T", 197, 768, 768, 1, 0},    {"197 x W^T", 197, 2304, 768, 1, 0},
    {"197 x W^T", 197, 3072, 768, 1, 0},   {"197 x W^T", 197, 768, 3072, 1, 0},   {"196 1x1 conv", 196, 1024, 256, 1, 0},
};

/* Training a graph recommender (MMGCN's shapes on Baby): X^T dY sums over all 26,495 nodes (or 7,050 items). */
static const shape train_shapes[] = {
    {"X^T dY  (nodes)", 64, 64, 26495, 0, 1},   {"X^T dY  (nodes)", 64, 384, 26495, 0, 1},
    {"X^T dY  (nodes)", 384, 384, 26495, 0, 1}, {"X^T dY  (items)", 256, 4096, 7050, 0, 1},
    {"f P^T   (items)", 7050, 256, 4096, 1, 0}, {"X W     (nodes)", 26495, 64, 64, 0, 0},
    {"X W     (nodes)", 26495, 384, 384, 0, 0},
};

/* GFLOP/s of the fastest of the repetitions in 0.3 s (at least 3): on a
 * shared machine the best run is the one least disturbed. */
static double time_it(int which, const shape *s, float *C, const float *A, const float *B, mrec_packs *packs,
                      mrec_pool *pool) {
    int ldb = s->trans_b ? s->K : s->N, lda = s->trans_a ? s->M : s->K;
    double elapsed = 0, best = 1e30;
    int reps = 0;
    while (elapsed < 0.3 || reps < 3) {
        double t0 = now();
        if (which == 0)
            mrec_gemm_cpu(C, A, B, NULL, 1, 0, s->trans_a, s->trans_b, s->M, s->N, s->K, lda, ldb, s->N, pool);
        else if (which == 3)
            mrec_gemm_bf16_cpu(C, A, B, NULL, 1, 0, s->trans_a, s->trans_b, s->M, s->N, s->K, lda, ldb, s->N, packs, pool);
        else if (which == 2)
            mrec_gemm_packed_cpu(C, A, B, NULL, 1, 0, s->trans_a, s->trans_b, s->M, s->N, s->K, lda, ldb, s->N, packs, pool);
        else
            cblas_sgemm(CblasRowMajor, s->trans_a ? CblasTrans : CblasNoTrans, s->trans_b ? CblasTrans : CblasNoTrans, s->M, s->N,
                        s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        double t = now() - t0;
        elapsed += t;
        best = t < best ? t : best;
        reps++;
    }
    return 2.0 * s->M * s->N * s->K / best / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    mrec_simd want = MREC_SIMD_AMX;
    if (argc > 2)
        want = strcmp(argv[2], "avx2") == 0     ? MREC_SIMD_AVX2
               : strcmp(argv[2], "scalar") == 0 ? MREC_SIMD_SCALAR
               : strcmp(argv[2], "avx512") == 0 ? MREC_SIMD_AVX512
                                                : want;
    mrec_pool *pool;
    if (mrec_pool_create(&pool, threads, want) != MREC_OK) {
        fprintf(stderr, "bench_gemm: %s\n", mrec_error_detail());
        return 1;
    }
    openblas_set_num_threads(threads);
    mrec_simd simd = mrec_pool_simd(pool);
    double peak1 = simd >= MREC_SIMD_AVX512 ? peak_avx512() : simd == MREC_SIMD_AVX2 ? peak_avx2() : 0;
    double peak = peak1 * threads;
    printf("GEMM fp32, %d threads, mrec kernel %s; FMA peak %.1f GFLOP/s (%.1f per thread, measured)\n", threads,
           mrec_simd_name(simd), peak, peak1);
    /* bf16 through AVX-512 BF16 on a pool pinned below AMX, and through the
     * AMX tiles on the main pool where it has them */
    int bf16 = mrec_cpu_has_bf16(), amx = simd == MREC_SIMD_AMX;
    mrec_pool *pool_bf16 = pool;
    if (amx && mrec_pool_create(&pool_bf16, threads, MREC_SIMD_AVX512) != MREC_OK) {
        fprintf(stderr, "bench_gemm: %s\n", mrec_error_detail());
        return 1;
    }
    printf("%-22s %5s %5s %5s  %9s %6s  %9s  %6s  %9s  %6s", "shape", "M", "N", "K", "mrec", "%peak", "OpenBLAS", "ratio",
           "packed", "ratio");
    if (bf16) printf("  %9s  %6s", "bf16", "ratio");
    if (amx) printf("  %9s  %6s", "bf16 amx", "ratio");
    printf("\n");
    double log_ratio = 0, log_packed = 0;
    int n_packed = 0;
    int small = argc > 3 && strcmp(argv[3], "small") == 0, train = argc > 3 && strcmp(argv[3], "train") == 0;
    const shape *list = small ? small_shapes : train ? train_shapes : shapes;
    int n = small   ? (int)(sizeof small_shapes / sizeof small_shapes[0])
            : train ? (int)(sizeof train_shapes / sizeof train_shapes[0])
                    : (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < n; i++) {
        const shape *s = &list[i];
        size_t a_n = (size_t)s->M * s->K, b_n = (size_t)s->K * s->N, c_n = (size_t)s->M * s->N;
        float *A = malloc(a_n * 4), *B = malloc(b_n * 4), *C = malloc(c_n * 4);
        for (size_t j = 0; j < a_n; j++) A[j] = (float)((j * 7919) % 1000) / 1000.0f - 0.5f;
        for (size_t j = 0; j < b_n; j++) B[j] = (float)((j * 104729) % 1000) / 1000.0f - 0.5f;
        /* Validate mrec on sampled elements against a double dot product. */
        int ldb = s->trans_b ? s->K : s->N, lda = s->trans_a ? s->M : s->K;
        mrec_gemm_cpu(C, A, B, NULL, 1, 0, s->trans_a, s->trans_b, s->M, s->N, s->K, lda, ldb, s->N, pool);
        for (int q = 0; q < 64; q++) {
            int r = (int)((q * 2654435761u) % (unsigned)s->M), c = (int)((q * 40503u + 17) % (unsigned)s->N);
            double want = 0, mag = 0;
            for (int k = 0; k < s->K; k++) {
                double b = s->trans_b ? B[(size_t)c * s->K + k] : B[(size_t)k * s->N + c];
                double a = s->trans_a ? A[(size_t)k * s->M + r] : A[(size_t)r * s->K + k];
                want += a * b;
                mag += fabs(a * b);
            }
            if (fabs(want - C[(size_t)r * s->N + c]) > s->K * 6e-8 * mag + 1e-6) {
                printf("%s: INVALID at (%d, %d): %g vs %g\n", s->name, r, c, C[(size_t)r * s->N + c], want);
                return 1;
            }
        }
        mrec_packs *packs = NULL;
        if (s->trans_b && mrec_packs_create(&packs, B, (int64_t)b_n) != MREC_OK) packs = NULL;
        time_it(0, s, C, A, B, packs, pool); /* warm-up; the first packed call packs */
        time_it(1, s, C, A, B, packs, pool);
        if (packs) time_it(2, s, C, A, B, packs, pool);
        double ours = time_it(0, s, C, A, B, packs, pool), blas = time_it(1, s, C, A, B, packs, pool);
        double ours2 = time_it(0, s, C, A, B, packs, pool), blas2 = time_it(1, s, C, A, B, packs, pool);
        double packed = packs ? time_it(2, s, C, A, B, packs, pool) : 0;
        double half = 0, tiles = 0;
        if (bf16) {
            time_it(3, s, C, A, B, packs, pool_bf16); /* the first call packs */
            half = time_it(3, s, C, A, B, packs, pool_bf16);
            double half2 = time_it(3, s, C, A, B, packs, pool_bf16);
            half = half2 > half ? half2 : half;
        }
        if (amx) {
            tiles = time_it(3, s, C, A, B, packs, pool);
            double tiles2 = time_it(3, s, C, A, B, packs, pool);
            tiles = tiles2 > tiles ? tiles2 : tiles;
        }
        double packed2 = packs ? time_it(2, s, C, A, B, packs, pool) : 0;
        ours = ours2 > ours ? ours2 : ours;
        blas = blas2 > blas ? blas2 : blas;
        packed = packed2 > packed ? packed2 : packed;
        log_ratio += log(ours / blas);
        printf("%-22s %5d %5d %5d  %9.1f %5.0f%%  %9.1f  %5.2fx", s->name, s->M, s->N, s->K, ours,
               peak > 0 ? 100 * ours / peak : 0, blas, ours / blas);
        if (packs) {
            log_packed += log(packed / blas), n_packed++;
            printf("  %9.1f  %5.2fx", packed, packed / blas);
        } else {
            printf("  %9s  %6s", "-", "-");
        }
        if (bf16) printf("  %9.1f  %5.2fx", half, half / blas);
        if (amx) printf("  %9.1f  %5.2fx", tiles, tiles / blas);
        printf("\n");
        mrec_packs_free(packs);
        free(A), free(B), free(C);
    }
    printf("geometric mean mrec / OpenBLAS: %.2fx", exp(log_ratio / n));
    if (n_packed) printf("; packed weights / OpenBLAS on the x W^T shapes: %.2fx", exp(log_packed / n_packed));
    printf("\n");
    if (pool_bf16 != pool) mrec_pool_destroy(pool_bf16);
    mrec_pool_destroy(pool);
    return 0;
}
