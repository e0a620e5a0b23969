/* test_kernels.c: every fast CPU op against its naive reference, on odd
 * shapes (1, primes, non-multiples of the SIMD width, large K), on every
 * SIMD level this CPU has and on 1, 2 and 3 threads.
 *
 * Tolerances. GEMM-like ops (gemm, conv) use the standard forward error
 * bound of a K-term float dot product, |err| <= K u sum|a||b| (u = 2^-24),
 * per element, plus a few ulps for alpha, beta and bias: rigorous, so never
 * flaky, and still ~1e4 times smaller than any indexing bug. Element-wise
 * ops with libm functions allow a few ulps (rtol 1e-5) and an absolute 1e-6
 * for outputs near zero, where the formulas cancel. Row reductions allow
 * rtol 1e-5 (float sums of up to 1000 terms). Selection and copies are exact.
 */
#include "harness.h"

#include "../kernels/cpu/gemm_internal.h"
#include "../kernels/cpu/vector_act.h"
#include "../kernels/mrec_kernels.h"
#include "../kernels/philox.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define U 5.9604644775390625e-08 /* 2^-24 */

static mrec_pool *pools[12];
static int n_pools;
static uint64_t rng = 42;

static float *randv(int64_t n, float lo, float hi) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof(float));
    t_fill_uniform(x, n, &rng, lo, hi);
    return x;
}

static float *copyv(const float *x, int64_t n) {
    float *y = malloc((size_t)(n ? n : 1) * sizeof(float));
    memcpy(y, x, (size_t)n * sizeof(float));
    return y;
}

static const char *pool_name(mrec_pool *p) {
    static char buf[64];
    snprintf(buf, sizeof buf, "%s/%dt", mrec_simd_name(mrec_pool_simd(p)), mrec_pool_threads(p));
    return buf;
}

/* ---- GEMM ---------------------------------------------------------------- */

static float bf16_rounded(float f);

/* bf16: mrec_gemm_bf16_cpu against the reference on A and B rounded to bf16
 * (products of bf16 values are exact in fp32, so the fp32 bound holds);
 * packs: B is a weight given in a pack set, packed once. */
static void gemm_case_in(int M, int N, int K, int ta, int tb, int with_bias, float alpha, float beta, int pad, int bf16,
                         int packed) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    int64_t a_n = (int64_t)(ta ? K : M) * lda, b_n = (int64_t)(tb ? N : K) * ldb, c_n = (int64_t)M * ldc;
    float *A = randv(a_n, -1, 1), *B = randv(b_n, -1, 1), *C0 = randv(c_n, -1, 1);
    float *bias = with_bias ? randv(N, -1, 1) : NULL;
    if (beta == 0.0f) C0[0] = NAN; /* beta = 0 must ignore C, NaN included */
    float *ref = copyv(C0, c_n);
    float *Ar = copyv(A, a_n), *Br = copyv(B, b_n);
    for (int64_t i = 0; bf16 && i < a_n; i++) Ar[i] = bf16_rounded(A[i]);
    for (int64_t i = 0; bf16 && i < b_n; i++) Br[i] = bf16_rounded(B[i]);
    mrec_packs *packs = NULL;
    if (packed && mrec_packs_create(&packs, B, b_n) != MREC_OK) packs = NULL;
    mrec_gemm_ref(ref, Ar, Br, bias, alpha, beta, ta, tb, M, N, K, lda, ldb, ldc);

    /* Per-element bound from |A| |B|, |C| and |bias|. */
    float *Aa = copyv(A, a_n), *Ba = copyv(B, b_n), *Ca = copyv(C0, c_n), *ba = bias ? copyv(bias, N) : NULL;
    for (int64_t i = 0; i < a_n; i++) Aa[i] = fabsf(Aa[i]);
    for (int64_t i = 0; i < b_n; i++) Ba[i] = fabsf(Ba[i]);
    for (int64_t i = 0; i < c_n; i++) Ca[i] = isnan(Ca[i]) ? 0 : fabsf(Ca[i]);
    for (int i = 0; ba && i < N; i++) ba[i] = fabsf(ba[i]);
    mrec_gemm_ref(Ca, Aa, Ba, ba, fabsf(alpha), fabsf(beta), ta, tb, M, N, K, lda, ldb, ldc);
    double *tol = malloc((size_t)c_n * sizeof(double));
    for (int64_t i = 0; i < c_n; i++) tol[i] = (K + 8) * U * Ca[i] + 1e-30;

    for (int p = 0; p < n_pools; p++) {
        if (bf16 && mrec_pool_simd(pools[p]) < MREC_SIMD_AVX512) continue; /* AVX-512 BF16, or AMX tiles */
        float *out = copyv(C0, c_n);
        if (!bf16) mrec_gemm_cpu(out, A, B, bias, alpha, beta, ta, tb, M, N, K, lda, ldb, ldc, pools[p]);
        else if (mrec_gemm_bf16_cpu(out, A, B, bias, alpha, beta, ta, tb, M, N, K, lda, ldb, ldc, packs, pools[p]))
            t_check(0, "bf16 gemm failed: %s", mrec_error_detail());
        /* The padding columns of C must be untouched. */
        int pad_ok = 1;
        for (int i = 0; i < M && pad; i++)
            for (int j = N; j < ldc; j++) pad_ok &= memcmp(&out[(int64_t)i * ldc + j], &C0[(int64_t)i * ldc + j], 4) == 0;
        char what[160];
        snprintf(what, sizeof what, "gemm%s%s %s M=%d N=%d K=%d ta=%d tb=%d bias=%d a=%g b=%g pad=%d", bf16 ? " bf16" : "",
                 packs ? " packed" : "", pool_name(pools[p]), M, N, K, ta, tb, with_bias, alpha, beta, pad);
        for (int i = 0; i < M; i++) /* compare only the real columns */
            for (int j = N; j < ldc; j++) out[(int64_t)i * ldc + j] = ref[(int64_t)i * ldc + j];
        t_within(what, ref, out, tol, c_n);
        t_check(pad_ok, "%s: wrote outside the matrix", what);
        free(out);
    }
    if (packed && K > 0) t_check(mrec_packs_bytes(packs) > 0, "gemm bf16: the weight was packed");
    mrec_packs_free(packs);
    free(A), free(B), free(Ar), free(Br), free(C0), free(bias), free(ref), free(Aa), free(Ba), free(Ca), free(ba), free(tol);
}

static void gemm_case(int M, int N, int K, int ta, int tb, int with_bias, float alpha, float beta, int pad) {
    gemm_case_in(M, N, K, ta, tb, with_bias, alpha, beta, pad, 0, 0);
}

/* Round to nearest even, by adding exactly half an ulp of bf16 in double
 * and cutting (an oracle written apart from the kernel's bit trick). */
static float bf16_rounded(float f) {
    if (isnan(f) || isinf(f) || f == 0.0f) return f;
    int e;
    frexp(f, &e);                      /* |f| in [2^(e-1), 2^e) */
    double ulp = ldexp(1.0, e - 8);    /* bf16 keeps 8 significant bits */
    double q = f / ulp, r = nearbyint(q); /* the default rounding mode: to nearest, ties to even */
    return (float)(r * ulp);
}

static void test_gemm_bf16(void) {
    if (!mrec_cpu_has_bf16()) {
        t_skip("bf16 GEMM: this CPU has no AVX-512 BF16");
        float c = 0, a = 1, b = 1;
        t_status(mrec_gemm_bf16_cpu(&c, &a, &b, NULL, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, NULL, pools[0]), MREC_ERR_UNSUPPORTED,
                 "bf16 GEMM without AVX-512 BF16");
        return;
    }
    static const int shapes[][3] = {
        {1, 1, 1}, {1, 7, 3}, {7, 1, 5}, {2, 2, 0}, {13, 17, 19}, {12, 32, 512}, {31, 33, 257},
        {97, 1, 1000}, {1, 385, 300}, {145, 385, 301}, {150, 70, 1025}, {200, 300, 64}, {300, 50, 1100},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                gemm_case_in(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, (ta + tb + (int)s) % 2, 1.0f, 0.0f, 0, 1,
                             tb && s % 2);
    gemm_case_in(37, 41, 43, 0, 1, 1, 0.5f, 1.0f, 3, 1, 0);
    gemm_case_in(37, 41, 43, 1, 0, 0, -2.0f, 0.25f, 5, 1, 0);
    gemm_case_in(64, 768, 768, 0, 1, 1, 1.0f, 0.0f, 0, 1, 1);
    {
        /* The first rows of a 150-row C have the bits those rows alone give: panels 12, 8 or 4 rows wide, a short
         * last one summing fewer rows (on the AVX-512 micro-kernels; AMX's tiles take 32 rows) */
        int N = 70, K = 90;
        float *A = randv((int64_t)150 * K, -1, 1), *B = randv((int64_t)K * N, -1, 1);
        float *all = calloc((size_t)150 * N, 4), *few = calloc((size_t)25 * N, 4);
        for (int p = 0; p < n_pools; p++) {
            if (mrec_pool_simd(pools[p]) != MREC_SIMD_AVX512) continue;
            mrec_gemm_bf16_cpu(all, A, B, NULL, 1.0f, 0.0f, 0, 0, 150, N, K, K, N, N, NULL, pools[p]);
            int same = 1;
            for (int rows = 1; rows <= 25; rows++) {
                mrec_gemm_bf16_cpu(few, A, B, NULL, 1.0f, 0.0f, 0, 0, rows, N, K, K, N, N, NULL, pools[p]);
                same &= memcmp(all, few, (size_t)rows * N * 4) == 0;
            }
            t_check(same, "gemm bf16: the first 1 to 25 rows of 150 differ from those rows alone (%s)", pool_name(pools[p]));
        }
        free(A), free(B), free(all), free(few);
    }
    {
        /* With AMX a whole 32 x 32 corner with alpha 1 sums its k block in C, a step at a time; with alpha 2 the
         * corner sums it in the tiles in one go. The same products in the same order: exactly half the bits of
         * the alpha-2 result (K = 1000 is four steps; 300 rows are several row blocks, the last one partial). */
        int M = 300, N = 96, K = 1000;
        float *A = randv((int64_t)M * K, -1, 1), *B = randv((int64_t)K * N, -1, 1), *bias = randv(N, -1, 1);
        float *c1 = calloc((size_t)M * N, 4), *c2 = calloc((size_t)M * N, 4);
        for (int p = 0; p < n_pools; p++) {
            if (mrec_pool_simd(pools[p]) < MREC_SIMD_AVX512) continue;
            mrec_gemm_bf16_cpu(c1, A, B, NULL, 1.0f, 0.0f, 0, 0, M, N, K, K, N, N, NULL, pools[p]);
            mrec_gemm_bf16_cpu(c2, A, B, NULL, 2.0f, 0.0f, 0, 0, M, N, K, K, N, N, NULL, pools[p]);
            int same = 1;
            for (int64_t i = 0; i < (int64_t)M * N; i++) same &= 2.0f * c1[i] == c2[i];
            t_check(same, "gemm bf16 M=%d N=%d K=%d: alpha 1 in steps is not half of alpha 2 (%s)", M, N, K, pool_name(pools[p]));
            /* and a bias in the first step's start, then C again: C + bias + sum in that order either way */
            mrec_gemm_bf16_cpu(c1, A, B, bias, 1.0f, 0.0f, 0, 0, M, N, K, K, N, N, NULL, pools[p]);
            for (int64_t i = 0; i < (int64_t)M * N; i++) c2[i] = bias[i % N];
            mrec_gemm_bf16_cpu(c2, A, B, NULL, 1.0f, 1.0f, 0, 0, M, N, K, K, N, N, NULL, pools[p]);
            t_check(memcmp(c1, c2, (size_t)M * N * 4) == 0, "gemm bf16 M=%d N=%d K=%d: a bias is not C started from it (%s)", M, N,
                    K, pool_name(pools[p]));
        }
        free(A), free(B), free(bias), free(c1), free(c2);
    }
    /* the oracle's rounding: ties go to the even neighbour */
    t_check(bf16_rounded(1.0f + 0x1p-8f) == 1.0f && bf16_rounded(1.0f + 0x3p-8f) == 1.0f + 0x1p-6f &&
                bf16_rounded(1.0f + 0x1.02p-8f) == 1.0f + 0x1p-7f,
            "bf16 rounding of the oracle");
}

/* The first `rows` rows of a 150-row C (a path over several row blocks, `path`) have the bits the private tiles
 * give those rows alone (a short last panel sums fewer rows than a full one). */
static void rows_as_private_tiles(int rows, int N, int K, const char *path) {
    float *A = randv((int64_t)150 * K, -1, 1), *B = randv((int64_t)K * N, -1, 1);
    float *c150 = calloc((size_t)150 * N, 4), *few = calloc((size_t)rows * N, 4);
    for (int p = 0; p < n_pools; p++) {
        mrec_gemm_cpu(c150, A, B, NULL, 1, 0, 0, 0, 150, N, K, K, N, N, pools[p]);
        mrec_gemm_cpu(few, A, B, NULL, 1, 0, 0, 0, rows, N, K, K, N, N, pools[p]);
        t_check(memcmp(c150, few, (size_t)rows * N * 4) == 0, "gemm N=%d K=%d: %d rows differ between %s and private tiles (%s)",
                N, K, rows, path, pool_name(pools[p]));
    }
    free(A), free(B), free(c150), free(few);
}

static void test_gemm(void) {
    static const int shapes[][3] = {
        {1, 1, 1}, {1, 7, 3}, {7, 1, 5}, {2, 2, 0}, {13, 17, 19}, {6, 16, 256}, {12, 32, 512},
        {31, 33, 257}, {97, 1, 1000}, {1, 385, 300}, {145, 385, 300}, {150, 70, 3001},
        {29, 50, 1100}, {301, 64, 64}, {301, 48, 200}, {64, 203, 600}, {301, 40, 700},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) gemm_case(shapes[s][0], shapes[s][1], shapes[s][2], ta, tb, (ta + tb + (int)s) % 2, 1.0f, 0.0f, 0);
    gemm_case(37, 41, 43, 0, 1, 1, 0.5f, 1.0f, 3);
    gemm_case(37, 41, 43, 1, 0, 0, -2.0f, 0.25f, 5);
    gemm_case(64, 768, 768, 0, 1, 1, 1.0f, 0.0f, 0);
    /* a weight's gradient, X^T dY over a long K: K split into fixed lanes summed in order (one to three row blocks,
     * a start from beta C + bias, padded rows) */
    gemm_case(64, 64, 4700, 1, 0, 0, 1.0f, 0.0f, 0);
    gemm_case(301, 97, 4099, 1, 1, 1, 0.5f, 1.0f, 3);
    gemm_case(5, 384, 6000, 1, 0, 1, -1.0f, 0.25f, 1);
    /* many columns over few row blocks: op(A) packed once, a task per column range */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) gemm_case(150, 800, 300, ta, tb, ta, 1.0f, 0.0f, tb);
    gemm_case(290, 1000, 520, 1, 0, 1, 0.5f, 1.0f, 2);
    /* and a row of C has the bits the private tiles give it (20 rows) */
    rows_as_private_tiles(20, 800, 600, "A packed once");
    /* a shared B and private tiles give a row of C the same bits through many KC blocks and two column blocks */
    rows_as_private_tiles(20, 400, 5500, "the shared B");
    /* every height of a short last panel (M <= MREC_GEMM_FEW_ROWS takes the dot products instead) */
    for (int rows = MREC_GEMM_FEW_ROWS + 1; rows <= 25; rows++) rows_as_private_tiles(rows, 100, 70, "full panels");

    {
        /* up to 64 columns A is read in place, not packed: the same bits as the packed path gives those columns of a
         * wider C, at each SIMD level (a wrong row at a strip's edge, M = 6 k + 1, would show); over several KC
         * blocks too (K = 700: B packed whole, a task per few rows), with A's rows through an index */
        for (int K = 200; K; K = K == 200 ? 700 : 0) {
            int M = 157, N = 80;
            float *A = randv((int64_t)M * K, -1, 1), *B = randv((int64_t)K * N, -1, 1);
            float *wide = calloc((size_t)M * N, 4), *narrow = calloc((size_t)M * 64, 4);
            int32_t *idx = malloc(sizeof(int32_t) * (size_t)M);
            for (int i = 0; i < M; i++) idx[i] = (int32_t)((i * 37 + 11) % 90); /* the first 90 rows, some twice */
            const int32_t *rows = K == 200 ? NULL : idx;
            for (int p = 0; p < n_pools; p++) {
                mrec_gemm_rows_cpu(wide, A, rows, B, NULL, NULL, 1, 0, 0, 0, M, N, K, K, N, N, pools[p]);
                mrec_gemm_rows_cpu(narrow, A, rows, B, NULL, NULL, 1, 0, 0, 0, M, 64, K, K, N, 64, pools[p]);
                int same = 1;
                for (int i = 0; i < M; i++) same &= memcmp(wide + (size_t)i * N, narrow + (size_t)i * 64, 64 * 4) == 0;
                t_check(same, "gemm N=64 (A read in place) and N=80 (A packed), K=%d%s: the first 64 columns differ (%s)", K,
                        rows ? " through an index" : "", pool_name(pools[p]));
            }
            free(A), free(B), free(wide), free(narrow), free(idx);
        }
    }

    /* The result does not depend on the thread count (same SIMD level), at
     * the height that shares a packed B and at one that does not. */
    for (int M = 300; M > 0; M = M == 300 ? 20 : 0) {
        int N = 500, K = 200;
        float *A = randv((int64_t)M * K, -1, 1), *B = randv((int64_t)N * K, -1, 1);
        float *c1 = calloc((size_t)M * N, 4), *c2 = calloc((size_t)M * N, 4);
        for (int p = 0; p < n_pools; p++)
            for (int q = p + 1; q < n_pools; q++) {
                if (mrec_pool_simd(pools[p]) != mrec_pool_simd(pools[q])) continue;
                mrec_gemm_cpu(c1, A, B, NULL, 1, 0, 0, 1, M, N, K, K, K, N, pools[p]);
                mrec_gemm_cpu(c2, A, B, NULL, 1, 0, 0, 1, M, N, K, K, K, N, pools[q]);
                t_check(memcmp(c1, c2, (size_t)M * N * 4) == 0, "gemm bits differ between %d and %d threads (%s)",
                        mrec_pool_threads(pools[p]), mrec_pool_threads(pools[q]), mrec_simd_name(mrec_pool_simd(pools[p])));
            }
        /* nor where K is split into lanes (X^T dY, K long) */
        if (M == 300) {
            int Kl = 4600, Nl = 70;
            float *X = randv((int64_t)Kl * M, -1, 1), *Y = randv((int64_t)Kl * Nl, -1, 1);
            for (int p = 0; p < n_pools; p++)
                for (int q = p + 1; q < n_pools; q++) {
                    if (mrec_pool_simd(pools[p]) != mrec_pool_simd(pools[q])) continue;
                    mrec_gemm_cpu(c1, X, Y, NULL, 1, 0, 1, 0, M, Nl, Kl, M, Nl, Nl, pools[p]);
                    mrec_gemm_cpu(c2, X, Y, NULL, 1, 0, 1, 0, M, Nl, Kl, M, Nl, Nl, pools[q]);
                    t_check(memcmp(c1, c2, (size_t)M * Nl * 4) == 0, "gemm with K in lanes: bits differ between %d and %d threads (%s)",
                            mrec_pool_threads(pools[p]), mrec_pool_threads(pools[q]), mrec_simd_name(mrec_pool_simd(pools[p])));
                }
            free(X), free(Y);
        }
        /* A row of C does not depend on how many rows come with it: scoring
         * users in batches must give the bits of scoring them all at once. */
        if (M == 20)
            for (int p = 0; p < n_pools; p++) {
                float *A300 = randv((int64_t)300 * K, -1, 1), *c300 = calloc((size_t)300 * N, 4);
                memcpy(A300, A, (size_t)M * K * 4);
                mrec_gemm_cpu(c1, A, B, NULL, 1, 0, 0, 1, M, N, K, K, K, N, pools[p]);
                mrec_gemm_cpu(c300, A300, B, NULL, 1, 0, 0, 1, 300, N, K, K, K, N, pools[p]);
                t_check(memcmp(c1, c300, (size_t)M * N * 4) == 0, "gemm rows differ between M=20 and M=300 (%s)",
                        pool_name(pools[p]));
                free(A300), free(c300);
            }
        free(A), free(B), free(c1), free(c2);
    }
}

/* C = alpha op(A) op(B) + beta C + bias, exactly: with small integers in A
 * and B and K within one KC block the sums are exact, alpha is a power of
 * two, so each element rounds once, after beta * C + bias is formed as a
 * prologue pass forms it (beta * C, then + bias, or the row bias). The
 * micro-kernels form that start in their store; this pins their bits on
 * every path (a few rows, private tiles, A read in place, a streamed B,
 * shared B, weights packed once, a filled B with a row bias) and SIMD level.
 * (Bits, save the sign of a zero where nothing starts C.) */
typedef struct {
    const float *B;
    int N;
} fill_rows;

static void fill_from(void *arg, float *dst, int p0, int kc, int j0, int cols, int NR) {
    const fill_rows *f = arg;
    for (int k = 0; k < kc; k++)
        for (int j = 0; j < NR; j++) dst[(size_t)k * NR + j] = j < cols ? f->B[(size_t)(p0 + k) * f->N + j0 + j] : 0.0f;
}

static void test_gemm_start_exact(void) {
    static const int shapes[][3] = {{300, 500, 200}, {20, 500, 200}, {157, 64, 200}, {20, 100, 256}, {5, 40, 30},
                                    {13, 17, 0},     {301, 48, 97},  {37, 41, 43}};
    static const float betas[] = {0.0f, 1.0f, 0.75f}, alphas[] = {1.0f, -0.5f};
    mrec_packs *packs = NULL;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = randv((int64_t)M * K, -8, 8), *B = randv((int64_t)K * N, -8, 8), *bias = randv(N, -1, 1), *rbias = randv(M, -1, 1);
        float *C0 = randv((int64_t)M * N, -1, 1), *got = randv((int64_t)M * N, 0, 0), *want = randv((int64_t)M * N, 0, 0);
        double *acc = calloc((size_t)M * N + 1, sizeof(double));
        for (int64_t i = 0; i < (int64_t)M * K; i++) A[i] = roundf(A[i]);
        for (int64_t i = 0; i < (int64_t)K * N; i++) B[i] = roundf(B[i]);
        for (int i = 0; i < M; i++)
            for (int k = 0; k < K; k++)
                for (int j = 0; j < N; j++) acc[(size_t)i * N + j] += (double)A[(size_t)i * K + k] * B[(size_t)k * N + j];
        /* B as a weight (N x K) for the packed path */
        float *Bt = randv((int64_t)K * N, 0, 0);
        for (int k = 0; k < K; k++)
            for (int j = 0; j < N; j++) Bt[(size_t)j * K + k] = B[(size_t)k * N + j];
        mrec_packs_create(&packs, Bt, (int64_t)K * N);
        for (int way = 0; way < 4; way++) /* 0 bias, 1 none, 2 packed weights with bias, 3 filled with a row bias */
            for (size_t bi = 0; bi < 3; bi++)
                for (size_t ai = 0; ai < 2; ai++) {
                    float alpha = alphas[ai], beta = betas[bi];
                    const float *cb = way == 0 || way == 2 ? bias : NULL, *rb = way == 3 ? rbias : NULL;
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) {
                            float c = C0[(size_t)i * N + j], v = beta == 0.0f ? 0.0f : beta * c;
                            float start = rb ? (beta == 0.0f ? rb[i] : v + rb[i]) : cb ? v + cb[j] : v;
                            want[(size_t)i * N + j] = start + alpha * (float)acc[(size_t)i * N + j];
                        }
                    for (int p = 0; p < n_pools; p++) {
                        memcpy(got, C0, sizeof(float) * (size_t)M * N);
                        fill_rows fr = {B, N};
                        if (way < 2) mrec_gemm_cpu(got, A, B, cb, alpha, beta, 0, 0, M, N, K, K, N, N, pools[p]);
                        else if (way == 2) mrec_gemm_packed_cpu(got, A, Bt, cb, alpha, beta, 0, 1, M, N, K, K, K, N, packs, pools[p]);
                        else mrec_gemm_filled_cpu(got, A, fill_from, &fr, rb, alpha, beta, M, N, K, K, N, NULL, NULL, pools[p]);
                        /* without a start (beta 0, no bias) the kernels store alpha * acc, whose zero's sign differs
                         * between SIMD levels (a product or an FMA with +0) */
                        int same = 1, start = beta != 0.0f || cb || rb;
                        for (int64_t e = 0; e < (int64_t)M * N; e++)
                            same &= memcmp(got + e, want + e, sizeof(float)) == 0 || (!start && got[e] == want[e]);
                        t_check(same,
                                "gemm start M=%d N=%d K=%d way %d alpha=%g beta=%g (%s): not the bits of beta C + bias, then the sum",
                                M, N, K, way, alpha, beta, pool_name(pools[p]));
                    }
                }
        mrec_packs_free(packs);
        free(A), free(B), free(Bt), free(bias), free(rbias), free(C0), free(got), free(want), free(acc);
    }
}

/* A column of C does not depend on how many columns come with it: a tile's last 1 to 4 columns are summed one
 * column at a time (a vector over the rows), the others a vector of columns at a time; plain, packed once and
 * filled (a convolution's 9 x 9 plane is 81 columns), fp32 and bf16 */
static void gemm_columns_way(int way, float *c, const float *A, const float *B, const float *Bt, const float *bias, int M,
                             int N, int K, int W, mrec_packs *packs, mrec_pool *pool) {
    fill_rows fr = {B, W};
    mrec_act relu = MREC_ACT_RELU;
    switch (way) {
    case 0: mrec_gemm_cpu(c, A, B, bias, 1, 0, 0, 0, M, N, K, K, W, N, pool); break;
    case 1: mrec_gemm_packed_cpu(c, A, Bt, bias, 1, 0, 0, 1, M, N, K, K, K, N, packs, pool); break;
    case 2: mrec_gemm_filled_cpu(c, A, fill_from, &fr, NULL, 1, 0, M, N, K, K, N, NULL, NULL, pool); break;
    case 3: mrec_gemm_bf16_cpu(c, A, B, bias, 1, 0, 0, 0, M, N, K, K, W, N, NULL, pool); break;
    case 4: mrec_gemm_bf16_cpu(c, A, Bt, bias, 1, 0, 0, 1, M, N, K, K, K, N, packs, pool); break;
    default: mrec_gemm_bf16_filled(c, A, fill_from, NULL, &fr, bias, 0, &relu, M, N, K, N, NULL, NULL, pool); break;
    }
}

static void test_gemm_columns(void) {
    static const int widths[] = {1, 3, 4, 17, 20, 49, 81, 100, 116};
    int M = 61, K = 150, W = 128, nw = (int)(sizeof widths / sizeof widths[0]);
    float *A = randv((int64_t)M * K, -1, 1), *B = randv((int64_t)K * W, -1, 1), *Bt = randv((int64_t)K * W, 0, 0);
    float *wide = calloc((size_t)M * W, 4), *narrow = calloc((size_t)M * W, 4), *bias = randv(W, -1, 1);
    for (int k = 0; k < K; k++)
        for (int j = 0; j < W; j++) Bt[(size_t)j * K + k] = B[(size_t)k * W + j];
    mrec_packs *packs = NULL;
    mrec_packs_create(&packs, Bt, (int64_t)K * W);
    for (int p = 0; p < n_pools; p++)
        for (int way = 0; way < 6; way++) {
            if (way >= 3 && (!mrec_cpu_has_bf16() || mrec_pool_simd(pools[p]) < MREC_SIMD_AVX512)) continue;
            /* the filled bf16 GEMM's bias is a row's (M of them), and it takes a ReLU into its store */
            gemm_columns_way(way, wide, A, B, Bt, bias, M, W, K, W, packs, pools[p]);
            for (int w = 0; w < nw; w++) {
                int N = widths[w], same = 1;
                gemm_columns_way(way, narrow, A, B, Bt, bias, M, N, K, W, packs, pools[p]);
                for (int i = 0; i < M; i++) same &= memcmp(narrow + (size_t)i * N, wide + (size_t)i * W, sizeof(float) * N) == 0;
                t_check(same, "gemm N=%d (way %d) and N=%d: the first %d columns differ (%s)", N, way, W, N, pool_name(pools[p]));
            }
        }
    mrec_packs_free(packs);
    free(A), free(B), free(Bt), free(wide), free(narrow), free(bias);
}

/* A linear layer with its activation is within the naive reference's bound,
 * and done tile by tile gives the bits of
 * the GEMM and then the activation over all of C: every activation, every
 * path (a few rows, private tiles, shared B, weights packed once), fp32 and
 * bf16, every SIMD level. */
static void test_linear_act(void) {
    static const int shapes[][3] = {{3, 70, 50}, {20, 300, 200}, {301, 100, 300}, {197, 1000, 64}, {9, 40, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = randv((int64_t)M * K, -2, 2), *W = randv((int64_t)N * K, -0.3f, 0.3f), *bias = randv(N, -1, 1);
        float *want = randv((int64_t)M * N, 0, 0), *got = randv((int64_t)M * N, 0, 0);
        mrec_packs *packs;
        mrec_packs_create(&packs, W, (int64_t)N * K);
        /* against the naive reference: the GEMM's bound (K u sum |a||b| + |bias| u), times the activations' largest
         * slope (1.13, GELU's), plus a few ulps for the activation itself */
        float *ref = randv((int64_t)M * N, 0, 0), *bound = randv((int64_t)M * N, 0, 0);
        mrec_gemm_ref(ref, A, W, bias, 1, 0, 0, 1, M, N, K, K, K, N);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double sum = 0;
                for (int k = 0; k < K; k++) sum += fabs((double)A[(size_t)i * K + k] * W[(size_t)j * K + k]);
                bound[(size_t)i * N + j] = (float)(1.13 * ((K + 2) * U * sum + U * fabs(bias[j])));
            }
        for (int act = MREC_ACT_GELU_ERF; act <= MREC_ACT_TANH; act++) {
            float *want_ref = randv((int64_t)M * N, 0, 0);
            mrec_activation_ref(want_ref, ref, (mrec_act)act, 0, (int64_t)M * N);
            mrec_linear_act_cpu(got, A, W, bias, (mrec_act)act, M, N, K, packs, pools[0]);
            int bad = 0;
            for (int64_t e = 0; e < (int64_t)M * N; e++)
                bad += !(fabsf(got[e] - want_ref[e]) <= bound[e] + 1e-5f * fabsf(want_ref[e]) + 1e-6f);
            t_check(bad == 0, "linear_act act %d M=%d N=%d K=%d: %d values outside the reference's bound", act, M, N, K, bad);
            free(want_ref);
        }
        free(ref), free(bound);
        for (int act = MREC_ACT_GELU_ERF; act <= MREC_ACT_TANH; act++)
            for (int bf16 = 0; bf16 < 1 + mrec_cpu_has_bf16(); bf16++)
                for (int packed = 0; packed < 2; packed++)
                    for (int p = 0; p < n_pools; p++) {
                        mrec_packs *pk = packed ? packs : NULL;
                        if (bf16) mrec_gemm_bf16_cpu(want, A, W, bias, 1, 0, 0, 1, M, N, K, K, K, N, pk, pools[p]);
                        else mrec_gemm_packed_cpu(want, A, W, bias, 1, 0, 0, 1, M, N, K, K, K, N, pk, pools[p]);
                        if (bf16 && act == MREC_ACT_SILU) /* swish to bf16's precision where what reads it rounds to bf16 */
                            for (int i = 0; i < M; i++) mrec_silu_bf16_avx512(want + (size_t)i * N, want + (size_t)i * N, N);
                        else
                            mrec_activation_cpu(want, want, (mrec_act)act, 0, (int64_t)M * N, pools[p]);
                        memset(got, 0xff, sizeof(float) * (size_t)M * N);
                        if (bf16) mrec_linear_act_bf16_cpu(got, A, W, bias, (mrec_act)act, M, N, K, pk, pools[p]);
                        else mrec_linear_act_cpu(got, A, W, bias, (mrec_act)act, M, N, K, pk, pools[p]);
                        t_check(memcmp(got, want, sizeof(float) * (size_t)M * N) == 0,
                                "linear_act %s act %d M=%d N=%d K=%d%s (%s): not the bits of the GEMM, then the activation",
                                bf16 ? "bf16" : "fp32", act, M, N, K, packed ? " packed" : "", pool_name(pools[p]));
                    }
        mrec_packs_free(packs);
        free(A), free(W), free(bias), free(want), free(got);
    }
}

/* fp32 attention runs each head's product, softmax and product in one task
 * while its scores are in cache; the bits are those of the three passes over
 * all heads (the batched GEMMs and the scalar softmax rows; in bf16 the
 * bf16 products and the softmax in lanes), with a mask, an additive head
 * bias, one head of a few rows, and long sequences. */
static void test_attention_heads(void) {
    static const int shapes[][4] = {{2, 7, 3, 5}, {1, 3, 1, 8}, {3, 197, 12, 64}, {2, 150, 2, 16}, {1, 300, 4, 32}, {2, 1, 2, 4},
                                    {2, 33, 2, 80}, {1, 64, 3, 96}, {1, 77, 2, 63}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], T = shapes[s][1], nh = shapes[s][2], dh = shapes[s][3], ld = nh * dh;
        int64_t n = (int64_t)B * T * ld, tt = (int64_t)T * T;
        float *q = randv(n, -1, 1), *k = randv(n, -1, 1), *v = randv(n, -1, 1), *mask = randv((int64_t)B * T, -3, 0);
        float *hb = randv(nh * tt, -1, 1), *want = randv(n, 0, 0), *got = randv(n, 0, 0);
        float *scores = randv((int64_t)B * nh * tt, 0, 0), *scratch = randv((int64_t)mrec_attention_scratch_floats(B, T, nh, dh), 0, 0);
        for (int with = 0; with < 8; with++) {
            const float *mb = with & 1 ? mask : NULL, *bias = with & 2 ? hb : NULL;
            int bf16 = with >> 2;
            if (bf16 && !mrec_cpu_has_bf16()) break;
            for (int p = 0; p < n_pools; p++) {
                for (int b = 0; b < B; b++)
                    if (!bf16) mrec_gemm_batched_cpu(scores + b * nh * tt, q + (size_t)b * T * ld, k + (size_t)b * T * ld, 0.125f, 0, 0, 1,
                                                     nh, T, T, dh, ld, ld, T, dh, dh, tt, pools[p]);
                    else mrec_gemm_bf16_batched(scores + b * nh * tt, q + (size_t)b * T * ld, k + (size_t)b * T * ld, 0.125f, 0, 1, nh, T,
                                                T, dh, ld, ld, T, dh, dh, tt, pools[p]);
                if (bias)
                    for (int b = 0; b < B; b++) mrec_add_cpu(scores + b * nh * tt, scores + b * nh * tt, bias, nh * tt, pools[p]);
                (bf16 ? mrec_softmax_rows_lanes_cpu : mrec_softmax_rows_cpu)(scores, scores, mb, B * nh * T, T, nh * T, pools[p]);
                for (int b = 0; b < B; b++)
                    if (!bf16) mrec_gemm_batched_cpu(want + (size_t)b * T * ld, scores + b * nh * tt, v + (size_t)b * T * ld, 1, 0, 0, 0, nh,
                                                     T, dh, T, T, ld, ld, tt, dh, dh, pools[p]);
                    else mrec_gemm_bf16_batched(want + (size_t)b * T * ld, scores + b * nh * tt, v + (size_t)b * T * ld, 1, 0, 0, nh, T,
                                                dh, T, T, ld, ld, tt, dh, dh, pools[p]);
                mrec_attention_cpu(got, q, k, v, mb, bias, 0.125f, B, T, nh, dh, scratch, bf16, pools[p]);
                t_check(memcmp(got, want, sizeof(float) * (size_t)n) == 0,
                        "attention%s B=%d T=%d nh=%d dh=%d mask=%d bias=%d (%s): not the bits of the three passes", bf16 ? " bf16" : "",
                        B, T, nh, dh, with & 1, (with >> 1) & 1, pool_name(pools[p]));
            }
        }
        free(q), free(k), free(v), free(mask), free(hb), free(want), free(got), free(scores), free(scratch);
    }
}

/* Sequences of different lengths end to end (a text batch without padding): each sequence's rows hold the bits of
 * mrec_attention_cpu on that sequence alone, with its own L x L bias block made here from the (heads, T, T) table. */
static void test_attention_varlen(void) {
    int lens[4] = {5, 1, 17, 12}, B = 4, T = 17, nh = 3, dh = 8, ld = nh * dh, starts[5] = {0};
    for (int b = 0; b < B; b++) starts[b + 1] = starts[b] + lens[b];
    int64_t n = (int64_t)starts[B] * ld;
    float *q = randv(n, -1, 1), *k = randv(n, -1, 1), *v = randv(n, -1, 1), *hb = randv((int64_t)nh * T * T, -1, 1);
    float *want = randv(n, 0, 0), *got = randv(n, 0, 0), *block = randv((int64_t)nh * T * T, 0, 0);
    float *scratch = randv((int64_t)mrec_attention_varlen_scratch_floats(T, nh, dh), 0, 0);
    for (int with_bias = 0; with_bias < 2; with_bias++)
        for (int p = 0; p < n_pools; p++) {
            for (int b = 0; b < B; b++) {
                int L = lens[b];
                for (int h = 0; h < nh; h++)
                    for (int i = 0; i < L; i++)
                        for (int j = 0; j < L; j++) block[(h * L + i) * L + j] = hb[(h * T + i) * T + j];
                size_t o = (size_t)starts[b] * ld;
                mrec_attention_cpu(want + o, q + o, k + o, v + o, NULL, with_bias ? block : NULL, 0.25f, 1, L, nh, dh, scratch, 0,
                                   pools[p]);
            }
            mrec_attention_varlen_cpu(got, q, k, v, with_bias ? hb : NULL, 0.25f, starts, B, T, nh, dh, scratch, 0, pools[p]);
            t_check(!memcmp(got, want, sizeof(float) * (size_t)n), "attention over sequences end to end%s (%s): each sequence's bits alone",
                    with_bias ? ", head bias" : "", pool_name(pools[p]));
        }
    free(q), free(k), free(v), free(hb), free(want), free(got), free(block), free(scratch);
}

/* The fp32 softmax and QuickGELU run glibc's expf 16 lanes at a time where
 * the CPU has AVX-512, restated to keep scalar expf's bits: each is held to
 * the scalar loop on random bit patterns (every exponent, NaN payloads,
 * infinities, the underflow and overflow edges) and on values around them.
 * (Every one of the 2^32 floats was checked once when it was written.) */
static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static void test_expf_lanes(void) {
    enum { N = 1 << 18 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    uint64_t r = 7;
    static const float edges[] = {0.0f, -0.0f, 88.0f, -88.0f, 0x1.62e42ep6f, 0x1.62e430p6f, -0x1.9fe368p6f, -0x1.9fe36ap6f,
                                  -0x1.9d1d9ep6f, -0x1.9d1da0p6f, -0x1.9d1d9cp6f, INFINITY, -INFINITY, 1e-45f, -1e-45f};
    for (int i = 0; i < N; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = (uint32_t)(r >> 32);
        x[i] = i < (int)(sizeof edges / sizeof edges[0]) ? edges[i] : i % 3 ? bits_float(u) : (float)((int32_t)u) * 0x1p-24f;
    }
    for (int p = 0; p < n_pools; p++) {
        mrec_activation_cpu(y, x, MREC_ACT_QUICK_GELU, 0, N, pools[p]);
        int bad = 0;
        for (int i = 0; i < N; i++) bad += !same_bits(y[i], x[i] / (1.0f + expf(-1.702f * x[i]))) && !(isnan(y[i]) && isnan(x[i]));
        t_check(bad == 0, "QuickGELU (%s): %d of %d values differ from the scalar loop's bits", pool_name(pools[p]), bad, N);
    }
    /* softmax rows of 197 with a mask that sends some entries to -inf and some far below the rest */
    int C = 197, R = N / C;
    float *mask = malloc(sizeof(float) * C);
    for (int c = 0; c < C; c++) mask[c] = c % 7 == 0 ? -INFINITY : c % 5 == 0 ? -1e4f : 0.0f;
    for (int i = 0; i < R * C; i++) x[i] = (float)((int64_t)(i * 2654435761u % 4001) - 2000) * 0.05f;
    /* every fourth row: a 0 (the row's largest) and values across expf's underflow edges, -103.0 to -105.0 */
    for (int rr = 0; rr < R; rr += 4)
        for (int c = 0; c < C; c++) x[(size_t)rr * C + c] = c == 1 ? 0.0f : -103.0f - (float)c * 0.01f;
    /* a mask per 5 rows as well, so the 16-row groups of the vector path straddle masks */
    float *masks = malloc(sizeof(float) * (size_t)(R / 5 + 1) * C);
    for (int i = 0; i < (R / 5 + 1) * C; i++) masks[i] = i % 11 == 3 ? -INFINITY : (float)(i % 13) * -0.7f;
    for (int p = 0; p < 2 * n_pools; p++) {
        int per = p < n_pools ? R : 5;
        const float *mk = p < n_pools ? mask : masks;
        mrec_softmax_rows_cpu(y, x, mk, R, C, per, pools[p % n_pools]);
        int bad = 0;
        float row[256];
        for (int rr = 0; rr < R; rr++) {
            const float *m = mk + (size_t)(rr / per) * C, *in = x + (size_t)rr * C;
            float max = -INFINITY, sum = 0.0f;
            for (int c = 0; c < C; c++) row[c] = in[c] + m[c], max = row[c] > max ? row[c] : max;
            for (int c = 0; c < C; c++) row[c] = expf(row[c] - max), sum += row[c];
            for (int c = 0; c < C; c++) bad += !same_bits(y[(size_t)rr * C + c], row[c] * (1.0f / sum));
        }
        t_check(bad == 0, "softmax rows (%s, a mask per %d rows): %d values differ from the scalar rows' bits",
                pool_name(pools[p % n_pools]), per, bad);
    }
    free(x), free(y), free(mask), free(masks);
}

/* A GEMM over rows taken through an index has the bits of gathering them
 * first: A's rows, B's rows, or both, with duplicates, on every path (a few
 * rows, B shared by row blocks, one row block streaming a long B) and pool. */
/* Large buffers: mapped on 2 MB boundaries (huge pages where granted), small
 * ones from the heap; every byte usable; unmapped again without a trace. */
static void test_alloc_large(void) {
    static const size_t sizes[] = {1, 100, (4u << 20) - 1, 4u << 20, (5u << 20) + 12345, 33u << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        unsigned char *p = mrec_alloc_large(sizes[s]);
        t_check(p != NULL, "alloc_large %zu bytes", sizes[s]);
        if (!p) continue;
        size_t align = sizes[s] >= (4u << 20) ? 2u << 20 : 64;
        t_check((uintptr_t)p % align == 0, "alloc_large %zu bytes: aligned to %zu", sizes[s], align);
        memset(p, 0xA5, sizes[s]);
        t_check(p[0] == 0xA5 && p[sizes[s] - 1] == 0xA5, "alloc_large %zu bytes: written end to end", sizes[s]);
        mrec_free_large(p, sizes[s]);
    }
    mrec_free_large(NULL, 5u << 20); /* as free(NULL) */
}

static void test_gemm_rows(void) {
    static const int shapes[][3] = {{3, 40, 70}, {150, 64, 600}, {64, 300, 700}, {13, 7, 300}, {1, 33, 5}};
    int pool_rows = 97;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        int32_t *ai = malloc(sizeof(int32_t) * M), *bi = malloc(sizeof(int32_t) * K);
        for (int i = 0; i < M; i++) ai[i] = (int32_t)((i * 37 + 11) % pool_rows); /* repeats once M > 97 */
        for (int k = 0; k < K; k++) bi[k] = (int32_t)((k * 53 + 5) % pool_rows);
        int lda = K + 3, ldb = N + 5;
        float *As = randv((int64_t)pool_rows * lda, -1, 1), *Bs = randv((int64_t)pool_rows * ldb, -1, 1);
        float *Ag = malloc(sizeof(float) * (size_t)M * lda), *Bg = malloc(sizeof(float) * (size_t)K * ldb);
        for (int i = 0; i < M; i++) memcpy(Ag + (size_t)i * lda, As + (size_t)ai[i] * lda, sizeof(float) * lda);
        for (int k = 0; k < K; k++) memcpy(Bg + (size_t)k * ldb, Bs + (size_t)bi[k] * ldb, sizeof(float) * ldb);
        float *bias = randv(N, -1, 1), *c0 = randv((int64_t)M * N, -1, 1);
        float *want = malloc(sizeof(float) * (size_t)M * N), *got = malloc(sizeof(float) * (size_t)M * N);
        for (int p = 0; p < n_pools; p++)
            for (int which = 1; which <= 3; which++)
                for (int beta = 0; beta < 2; beta++) {
                    const float *A = which & 1 ? As : Ag, *B = which & 2 ? Bs : Bg;
                    memcpy(want, c0, sizeof(float) * (size_t)M * N), memcpy(got, c0, sizeof(float) * (size_t)M * N);
                    mrec_gemm_cpu(want, Ag, Bg, bias, 0.5f, (float)beta, 0, 0, M, N, K, lda, ldb, N, pools[p]);
                    mrec_gemm_rows_cpu(got, A, which & 1 ? ai : NULL, B, which & 2 ? bi : NULL, bias, 0.5f, (float)beta, 0, 0, M, N,
                                       K, lda, ldb, N, pools[p]);
                    t_check(memcmp(want, got, sizeof(float) * (size_t)M * N) == 0,
                            "gemm_rows M=%d N=%d K=%d (%s, index on %s, beta %d): the bits of gathering first", M, N, K,
                            pool_name(pools[p]), which == 1 ? "A" : which == 2 ? "B" : "both", beta);
                    if (p) continue;
                    /* and the naive reference, within the GEMM's bound (K + 2 ulps of sum |a b| + |beta c| + |bias|) */
                    memcpy(want, c0, sizeof(float) * (size_t)M * N);
                    mrec_gemm_rows_ref(want, A, which & 1 ? ai : NULL, B, which & 2 ? bi : NULL, bias, 0.5f, (float)beta, 0, 0, M,
                                       N, K, lda, ldb, N);
                    int bad = 0;
                    for (int i = 0; i < M; i++)
                        for (int j = 0; j < N; j++) {
                            double bound = fabs(bias[j]) + beta * fabs(c0[(size_t)i * N + j]);
                            for (int k = 0; k < K; k++) bound += 0.5 * fabs((double)Ag[(size_t)i * lda + k] * Bg[(size_t)k * ldb + j]);
                            bad += !(fabsf(got[(size_t)i * N + j] - want[(size_t)i * N + j]) <= (K + 2) * U * bound);
                        }
                    t_check(bad == 0, "gemm_rows M=%d N=%d K=%d (index on %s, beta %d): %d values outside the reference's bound", M,
                            N, K, which == 1 ? "A" : which == 2 ? "B" : "both", beta, bad);
                }
        free(ai), free(bi), free(As), free(Bs), free(Ag), free(Bg), free(bias), free(c0), free(want), free(got);
    }
}

/* GELU(erf) from its erfc table: the same bits at every SIMD level (the
 * scalar loop, AVX2 and AVX-512 do the same float operations), within 6 ulp
 * of the double-precision GELU on (-8, 8) (4.6 measured; 1 + erff(x / sqrt 2)
 * was thousands of ulps off below -3), exactly x from 8 up, a zero below -8
 * (where |GELU| < 5e-15), and the special values as PyTorch's float64 GELU
 * gives them, but -inf: NaN, as -inf * 0. */
static void test_gelu_erf(void) {
    int n = 0, cap = 80000;
    float *x = malloc(sizeof(float) * cap), *y = malloc(sizeof(float) * cap), *y0 = malloc(sizeof(float) * cap);
    for (float v = -9.0f; v <= 9.0f; v += 1.0f / 4096) x[n++] = v;
    for (int i = -33; i <= 33; i++) /* the table's interval edges and their neighbours */
        x[n++] = i * 0.25f, x[n++] = nextafterf(i * 0.25f, -INFINITY), x[n++] = nextafterf(i * 0.25f, INFINITY);
    static const float edges[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 1e-20f, -1e-20f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) x[n++] = edges[i];
    int64_t worst_at = -1;
    double worst = 0;
    for (int p = 0; p < n_pools; p++) {
        mrec_activation_cpu(p ? y : y0, x, MREC_ACT_GELU_ERF, 0, n, pools[p]);
        if (!p) continue;
        int differ = 0;
        for (int i = 0; i < n; i++) differ += memcmp(&y[i], &y0[i], 4) != 0;
        t_check(differ == 0, "gelu_erf (%s): %d of %d values differ from the scalar loop's bits", pool_name(pools[p]), differ, n);
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double v = x[i], want = 0.5 * v * erfc(-v / sqrt(2.0));
        float got = y0[i];
        if (isnan(v) || v == -INFINITY) {
            bad += !isnan(got);
        } else if (v >= 8.0) {
            bad += !same_bits(got, x[i]);
        } else if (v <= -8.0) {
            bad += got != 0.0f;
        } else if (fabs(want) >= FLT_MIN) {
            double ulps = fabs(got - want) / (nextafterf((float)fabs(want), INFINITY) - (float)fabs(want));
            if (ulps > worst) worst = ulps, worst_at = i;
            bad += !(ulps <= 6.0);
        } else {
            bad += !(fabs(got - want) <= FLT_MIN);
        }
    }
    t_check(bad == 0, "gelu_erf: %d of %d values outside 6 ulp of the double GELU (worst %.2f ulp at x = %.9g)", bad, n, worst,
            worst_at >= 0 ? x[worst_at] : 0.0f);
    free(x), free(y), free(y0);
}

/* Weights packed once give the bits of packing per call: every path (a
 * few rows, private tiles, shared B), B spanning several KC and NC blocks,
 * each SIMD level's panel width from one shared pack set, a bias and beta. */
static void test_gemm_packed(void) {
    static const int shapes[][2] = {{385, 300}, {770, 1100}, {33, 7}};
    int64_t floats = 0;
    for (int w = 0; w < 3; w++) floats += (int64_t)shapes[w][0] * shapes[w][1] + 1; /* +1: W not aligned */
    float *storage = randv(floats, -1, 1), *outside = randv((int64_t)385 * 300, -1, 1);
    mrec_packs *packs;
    if (!t_check(mrec_packs_create(&packs, storage, floats) == MREC_OK, "creating a pack set")) return;
    static const int rows[] = {3, 5, 17, 64, 145, 197, 300, 600}; /* 600: over PACKED_B_ROWS, tasks of 144 rows */
    for (int round = 0; round < 2; round++) {
        const float *W = storage;
        for (int w = 0; w < 3; w++) {
            int N = shapes[w][0], K = shapes[w][1];
            float *bias = randv(N, -1, 1);
            for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
                int M = rows[r];
                float *A = randv((int64_t)M * K, -1, 1), *C0 = randv((int64_t)M * N, -1, 1);
                float *want = copyv(C0, (int64_t)M * N), *got = copyv(C0, (int64_t)M * N);
                float beta = r % 2 ? 0.5f : 0.0f;
                for (int p = 0; p < n_pools; p++) {
                    memcpy(want, C0, (size_t)M * N * 4), memcpy(got, C0, (size_t)M * N * 4);
                    mrec_gemm_cpu(want, A, W, r % 3 ? bias : NULL, 1.0f, beta, 0, 1, M, N, K, K, K, N, pools[p]);
                    mrec_gemm_packed_cpu(got, A, W, r % 3 ? bias : NULL, 1.0f, beta, 0, 1, M, N, K, K, K, N, packs, pools[p]);
                    t_check(memcmp(want, got, (size_t)M * N * 4) == 0, "packed gemm bits differ: %s M=%d N=%d K=%d round %d",
                            pool_name(pools[p]), M, N, K, round);
                }
                free(A), free(C0), free(want), free(got);
            }
            free(bias);
            W += (int64_t)N * K + 1;
        }
        /* one copy per weight and panel width, made on first use only */
        static size_t after_first;
        if (round == 0) after_first = mrec_packs_bytes(packs);
        t_check(after_first > 0 && mrec_packs_bytes(packs) == after_first,
                "packed weights: %zu bytes after the first round, %zu after the second", after_first, mrec_packs_bytes(packs));
    }
    /* A B outside the storage, or not nn.Linear's layout, is not packed. */
    size_t before = mrec_packs_bytes(packs);
    float *A = randv(64 * 300, -1, 1), *c = calloc(64 * 385, 4), *want = calloc(64 * 385, 4);
    mrec_gemm_packed_cpu(c, A, outside, NULL, 1, 0, 0, 1, 64, 385, 300, 300, 300, 385, packs, pools[0]);
    mrec_gemm_cpu(want, A, outside, NULL, 1, 0, 0, 1, 64, 385, 300, 300, 300, 385, pools[0]);
    t_check(memcmp(c, want, 64 * 385 * 4) == 0, "packed gemm with B outside the storage differs");
    mrec_gemm_packed_cpu(c, A, storage, NULL, 1, 0, 0, 0, 64, 300, 300, 300, 300, 300, packs, pools[0]);
    mrec_gemm_cpu(want, A, storage, NULL, 1, 0, 0, 0, 64, 300, 300, 300, 300, 300, pools[0]);
    t_check(memcmp(c, want, 64 * 300 * 4) == 0, "packed gemm with B not transposed differs");
    t_check(mrec_packs_bytes(packs) == before, "a B that cannot be packed was packed");
    mrec_gemm_packed_cpu(c, A, storage, NULL, 1, 0, 0, 0, 64, 300, 300, 300, 300, 300, NULL, pools[0]);
    t_check(memcmp(c, want, 64 * 300 * 4) == 0, "packed gemm without a pack set differs");
    mrec_packs_free(packs);
    free(storage), free(outside), free(A), free(c), free(want);
}

/* A weight as A (a convolution's C_out x C_in k k), packed once: the bits of
 * packing per call with one row block or several, K across KC blocks, N from
 * a few pixels to more than an NC block, B either way, every SIMD level. */
static void test_gemm_packed_a(void) {
    static const int shapes[][2] = {{64, 27}, {301, 600}, {145, 1}}; /* (M, K); 301: a last row block of 13 */
    static const int cols[] = {1, 7, 49, 400};
    int64_t floats = 0;
    for (int w = 0; w < 3; w++) floats += (int64_t)shapes[w][0] * shapes[w][1] + 3;
    float *storage = randv(floats, -1, 1);
    mrec_packs *packs;
    if (!t_check(mrec_packs_create(&packs, storage, floats) == MREC_OK, "creating a pack set")) return;
    size_t after_first = 0;
    for (int round = 0; round < 2; round++) {
        const float *W = storage;
        for (int w = 0; w < 3; w++) {
            int M = shapes[w][0], K = shapes[w][1];
            float *bias = randv(400, -1, 1);
            for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
                for (int tb = 0; tb < 2; tb++) {
                    int N = cols[c], ldb = tb ? K : N;
                    float *B = randv((int64_t)N * K, -1, 1), *C0 = randv((int64_t)M * N, -1, 1);
                    float *want = copyv(C0, (int64_t)M * N), *got = copyv(C0, (int64_t)M * N);
                    float beta = c % 2 ? 1.0f : 0.0f;
                    for (int p = 0; p < n_pools; p++) {
                        memcpy(want, C0, (size_t)M * N * 4), memcpy(got, C0, (size_t)M * N * 4);
                        mrec_gemm_cpu(want, W, B, tb ? bias : NULL, 1.0f, beta, 0, tb, M, N, K, K, ldb, N, pools[p]);
                        mrec_gemm_packed_cpu(got, W, B, tb ? bias : NULL, 1.0f, beta, 0, tb, M, N, K, K, ldb, N, packs, pools[p]);
                        t_check(memcmp(want, got, (size_t)M * N * 4) == 0,
                                "gemm with A packed once: bits differ, %s M=%d N=%d K=%d trans_b %d round %d", pool_name(pools[p]), M,
                                N, K, tb, round);
                    }
                    free(B), free(C0), free(want), free(got);
                }
            free(bias);
            W += (int64_t)M * K + 3;
        }
        if (round == 0) after_first = mrec_packs_bytes(packs);
        t_check(after_first > 0 && mrec_packs_bytes(packs) == after_first,
                "packed A: %zu bytes after the first round, %zu after the second", after_first, mrec_packs_bytes(packs));
    }
    /* a transposed A, or one with a wider row than K, is read as it is */
    float *B = randv(64 * 300, -1, 1), *c = calloc(64 * 64, 4), *want = calloc(64 * 64, 4);
    size_t before = mrec_packs_bytes(packs);
    mrec_gemm_packed_cpu(c, storage, B, NULL, 1, 0, 1, 0, 64, 64, 27, 64, 64, 64, packs, pools[0]);
    mrec_gemm_cpu(want, storage, B, NULL, 1, 0, 1, 0, 64, 64, 27, 64, 64, 64, pools[0]);
    t_check(memcmp(c, want, 64 * 64 * 4) == 0, "packed gemm with A transposed differs");
    mrec_gemm_packed_cpu(c, storage, B, NULL, 1, 0, 0, 0, 64, 64, 20, 27, 64, 64, packs, pools[0]);
    mrec_gemm_cpu(want, storage, B, NULL, 1, 0, 0, 0, 64, 64, 20, 27, 64, 64, pools[0]);
    t_check(memcmp(c, want, 64 * 64 * 4) == 0, "packed gemm with lda > K differs");
    t_check(mrec_packs_bytes(packs) == before, "an A that cannot be packed was packed");
    mrec_packs_free(packs);
    free(storage), free(B), free(c), free(want);
}

static void test_gemm_batched(void) {
    int batch = 3, M = 17, N = 29, K = 31;
    float *A = randv((int64_t)batch * M * K, -1, 1), *B = randv((int64_t)batch * N * K, -1, 1);
    for (int bcast = 0; bcast < 2; bcast++) {
        int64_t sb = bcast ? 0 : (int64_t)N * K;
        float *ref = calloc((size_t)batch * M * N, 4);
        mrec_gemm_batched_ref(ref, A, B, 1, 0, 0, 1, batch, M, N, K, K, K, N, (int64_t)M * K, sb, (int64_t)M * N);
        for (int p = 0; p < n_pools; p++) {
            float *out = calloc((size_t)batch * M * N, 4);
            mrec_gemm_batched_cpu(out, A, B, 1, 0, 0, 1, batch, M, N, K, K, K, N, (int64_t)M * K, sb, (int64_t)M * N, pools[p]);
            char what[96];
            snprintf(what, sizeof what, "gemm_batched %s broadcast_b=%d", pool_name(pools[p]), bcast);
            t_allclose(what, ref, out, (int64_t)batch * M * N, K * U * K, 0); /* |a||b| <= 1 per term */
            free(out);
        }
        free(ref);
    }
    free(A), free(B);
}

/* ---- element-wise and rows ----------------------------------------------- */

static void test_elementwise(void) {
    static const int64_t sizes[] = {1, 7, 1000, 100003};
    static const char *act_names[] = {"gelu_erf", "gelu_tanh", "quick_gelu", "relu", "leaky_relu", "silu"};
    for (size_t s = 0; s < 4; s++) {
        int64_t n = sizes[s];
        float *a = randv(n, -6, 6), *b = randv(n, -6, 6), *ref = malloc((size_t)n * 4), *out = malloc((size_t)n * 4);
        for (int p = 0; p < n_pools; p++) {
            char what[96];
            mrec_add_ref(ref, a, b, n), mrec_add_cpu(out, a, b, n, pools[p]);
            snprintf(what, sizeof what, "add %s n=%lld", pool_name(pools[p]), (long long)n);
            t_allclose(what, ref, out, n, 0, 0);
            mrec_mul_ref(ref, a, b, n), mrec_mul_cpu(out, a, b, n, pools[p]);
            snprintf(what, sizeof what, "mul %s n=%lld", pool_name(pools[p]), (long long)n);
            t_allclose(what, ref, out, n, 0, 0);
            mrec_scale_ref(ref, a, 0.37f, n), mrec_scale_cpu(out, a, 0.37f, n, pools[p]);
            snprintf(what, sizeof what, "scale %s n=%lld", pool_name(pools[p]), (long long)n);
            t_allclose(what, ref, out, n, 0, 0);
            mrec_fill_ref(ref, -2.5f, n), mrec_fill_cpu(out, -2.5f, n, pools[p]);
            snprintf(what, sizeof what, "fill %s n=%lld", pool_name(pools[p]), (long long)n);
            t_allclose(what, ref, out, n, 0, 0);
            for (int act = 0; act <= MREC_ACT_SILU; act++) {
                mrec_activation_ref(ref, a, (mrec_act)act, 0.01f, n);
                mrec_activation_cpu(out, a, (mrec_act)act, 0.01f, n, pools[p]);
                snprintf(what, sizeof what, "%s %s n=%lld", act_names[act], pool_name(pools[p]), (long long)n);
                t_allclose(what, ref, out, n, 1e-6, 1e-5);
            }
        }
        /* In place gives the same answer. */
        float *inplace = copyv(a, n);
        mrec_activation_cpu(inplace, inplace, MREC_ACT_GELU_ERF, 0, n, pools[0]);
        mrec_activation_cpu(out, a, MREC_ACT_GELU_ERF, 0, n, pools[0]);
        t_allclose("gelu in place", out, inplace, n, 0, 0);
        free(a), free(b), free(ref), free(out), free(inplace);
    }
    /* An element's bits do not depend on where it lies in the array: the
     * vector paths (libmvec's erff, expf, tanhf) must not hand a ragged end
     * to the scalar functions, which round differently. Each slice x[o, o + n)
     * gives the bits of the whole array's y[o, o + n), on every pool. */
    {
        int64_t n_all = 301;
        float *a = randv(n_all, -6, 6), *whole = malloc((size_t)n_all * 4), *part = malloc((size_t)n_all * 4);
        static const int64_t slices[][2] = {{0, 37}, {5, 9}, {16, 1}, {3, 298}, {100, 15}};
        for (int p = 0; p < n_pools; p++)
            for (int act = 0; act <= MREC_ACT_TANH; act++) {
                mrec_activation_cpu(whole, a, (mrec_act)act, 0.01f, n_all, pools[p]);
                int64_t differ = 0;
                for (size_t k = 0; k < sizeof slices / sizeof slices[0]; k++) {
                    int64_t o = slices[k][0], n = slices[k][1];
                    mrec_activation_cpu(part, a + o, (mrec_act)act, 0.01f, n, pools[p]);
                    differ += memcmp(part, whole + o, (size_t)n * 4) != 0;
                }
                t_check(differ == 0, "activation %d %s: a slice gets the whole array's bits (%lld slices differ)", act,
                        pool_name(pools[p]), (long long)differ);
            }
        free(a), free(whole), free(part);
    }
    /* Known values from PyTorch (torch.nn.functional on float64, rounded to float). */
    float x[3] = {-1.0f, 0.5f, 2.0f}, y[3];
    float gelu_erf[3] = {-0.15865525f, 0.34573123f, 1.9544997f};
    float gelu_tanh[3] = {-0.15880801f, 0.34571401f, 1.9545977f};
    float quick[3] = {-0.15420423f, 0.35038844f, 1.9356586f};
    float silu[3] = {-0.26894143f, 0.31122968f, 1.7615942f};
    mrec_activation_cpu(y, x, MREC_ACT_GELU_ERF, 0, 3, pools[0]);
    t_allclose("gelu_erf known values", gelu_erf, y, 3, 0, 1e-6);
    mrec_activation_cpu(y, x, MREC_ACT_GELU_TANH, 0, 3, pools[0]);
    t_allclose("gelu_tanh known values", gelu_tanh, y, 3, 0, 1e-6);
    mrec_activation_cpu(y, x, MREC_ACT_QUICK_GELU, 0, 3, pools[0]);
    t_allclose("quick_gelu known values", quick, y, 3, 0, 1e-6);
    mrec_activation_cpu(y, x, MREC_ACT_SILU, 0, 3, pools[0]);
    t_allclose("silu known values", silu, y, 3, 0, 1e-6);
    /* swish over its whole range on every pool (the AVX-512 one through its own exponential): within 4 ulps of
     * x / (1 + e^-x) in double where that is over 1e-30 (AVX-512: 2.3 at worst; AVX2 through libmvec's expf: 3.5); -0 and x where e^-x is inf and 0; NaN kept */
    {
        int64_t n = 400003;
        float *in = malloc((size_t)n * 4), *out = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) in[i] = -110.0f + 220.0f * (float)i / (float)(n - 1);
        float special[6] = {-200.0f, 200.0f, NAN, -0.0f, INFINITY, -INFINITY};
        memcpy(in, special, sizeof special);
        for (int p = 0; p < n_pools; p++) {
            mrec_activation_cpu(out, in, MREC_ACT_SILU, 0, n, pools[p]);
            double worst = 0;
            int64_t at = 0;
            for (int64_t i = 6; i < n; i++) {
                double want = in[i] / (1.0 + exp(-(double)in[i]));
                float w = (float)want;
                /* below -88.7, e^-x overflows float and x / inf is 0: the ulps of a result under 1e-30 do not count */
                double ulp = nextafterf(fabsf(w), INFINITY) - fabsf(w), err = fabs(want) < 1e-30 ? (fabs(out[i]) > 1e-30) * 1e9
                                                                                                  : fabs(out[i] - want) / ulp;
                if (err > worst) worst = err, at = i;
            }
            t_check(worst <= 4, "swish %s: within 4 ulps over [-110, 110] (worst %.2f at %g)", pool_name(pools[p]), worst, in[at]);
            t_check(out[0] == 0 && signbit(out[0]) && out[1] == 200.0f && isnan(out[2]) && out[3] == 0 && signbit(out[3]) &&
                        out[4] == INFINITY,
                    "swish %s: -200 -> -0, 200 -> 200, NaN -> NaN, -0 -> -0, inf -> inf", pool_name(pools[p]));
        }
        /* swish for bf16 contexts (AVX-512): within 2^-12 relative where x / (1 + e^-x) is over 1e-30, under 1e-30 where
         * it is not; inf and NaN kept */
        if (mrec_cpu_has_bf16()) {
            mrec_silu_bf16_avx512(out, in, n);
            double worst = 0;
            int64_t at = 0;
            for (int64_t i = 6; i < n; i++) {
                double want = in[i] / (1.0 + exp(-(double)in[i]));
                double err = fabs(want) < 1e-30 ? (fabs(out[i]) >= 1e-30) * 1e9 : fabs(out[i] - want) / fabs(want);
                if (err > worst) worst = err, at = i;
            }
            t_check(worst <= 0x1p-12, "swish for bf16: within 2^-12 over [-110, 110] (worst %.3g at %g)", worst, in[at]);
            t_check(fabsf(out[0]) < 1e-30f && fabsf(out[1] - 200.0f) <= 200.0f * 0x1p-12f && isnan(out[2]) && out[3] == 0 &&
                        out[4] == INFINITY,
                    "swish for bf16: -200 -> 0, 200 -> 200, NaN -> NaN, -0 -> 0, inf -> inf");
        } else {
            t_skip("swish for bf16 contexts: this CPU has no AVX-512 BF16");
        }
        free(in), free(out);
    }
}

static void test_rows(void) {
    static const int shapes[][2] = {{1, 1}, {3, 7}, {17, 513}, {64, 1000}, {5, 768}};
    for (size_t s = 0; s < 5; s++) {
        int R = shapes[s][0], C = shapes[s][1];
        int64_t n = (int64_t)R * C;
        float *x = randv(n, -8, 8), *ref = malloc((size_t)n * 4), *out = malloc((size_t)n * 4);
        float *w = randv(C, 0.5f, 1.5f), *b = randv(C, -1, 1);
        float *shifted = copyv(x, n);
        for (int64_t i = 0; i < n; i++) shifted[i] += 3.0f; /* a mean far from 0 */
        int rows_per_mask = R > 1 ? (R % 2 ? R : R / 2) : 1;
        float *mask = randv((int64_t)(R / rows_per_mask) * C, -3, 0);
        for (int c = 0; c < C; c += 3) mask[c] = -INFINITY; /* masked keys */
        if (C > 1) mask[1] = 0.0f;
        int32_t *ids = malloc((size_t)R * 4);
        for (int i = 0; i < R; i++) ids[i] = (int32_t)(t_rand_u64(&rng) % (uint64_t)R);
        for (int p = 0; p < n_pools; p++) {
            char what[96];
            const char *pn = pool_name(pools[p]);
            mrec_softmax_rows_ref(ref, x, NULL, R, C, 1), mrec_softmax_rows_cpu(out, x, NULL, R, C, 1, pools[p]);
            snprintf(what, sizeof what, "softmax %s %dx%d", pn, R, C);
            t_allclose(what, ref, out, n, 1e-7, 1e-5);
            mrec_softmax_rows_ref(ref, x, mask, R, C, rows_per_mask);
            mrec_softmax_rows_cpu(out, x, mask, R, C, rows_per_mask, pools[p]);
            snprintf(what, sizeof what, "softmax+mask %s %dx%d", pn, R, C);
            t_allclose(what, ref, out, n, 1e-7, 1e-5);
            mrec_softmax_rows_lanes_cpu(out, x, mask, R, C, rows_per_mask, pools[p]);
            snprintf(what, sizeof what, "softmax in lanes+mask %s %dx%d", pn, R, C);
            t_allclose(what, ref, out, n, 1e-7, 1e-5);
            mrec_layernorm_ref(ref, shifted, w, b, 1e-12f, R, C), mrec_layernorm_cpu(out, shifted, w, b, 1e-12f, R, C, pools[p]);
            snprintf(what, sizeof what, "layernorm %s %dx%d", pn, R, C);
            t_allclose(what, ref, out, n, 1e-5, 1e-5);
            mrec_layernorm_ref(ref, x, NULL, NULL, 1e-5f, R, C), mrec_layernorm_cpu(out, x, NULL, NULL, 1e-5f, R, C, pools[p]);
            snprintf(what, sizeof what, "layernorm no affine %s %dx%d", pn, R, C);
            t_allclose(what, ref, out, n, 1e-5, 1e-5);
            mrec_l2_normalize_rows_ref(ref, x, 1e-12f, R, C), mrec_l2_normalize_rows_cpu(out, x, 1e-12f, R, C, pools[p]);
            snprintf(what, sizeof what, "l2_normalize %s %dx%d", pn, R, C);
            t_allclose(what, ref, out, n, 1e-7, 1e-5);
            float *eref = malloc((size_t)R * C * 4), *eout = malloc((size_t)R * C * 4);
            t_status(mrec_embedding_ref(eref, x, ids, R, R, C), MREC_OK, "embedding_ref");
            t_status(mrec_embedding_cpu(eout, x, ids, R, R, C, pools[p]), MREC_OK, "embedding %s", pn);
            snprintf(what, sizeof what, "embedding %s %dx%d", pn, R, C);
            t_allclose(what, eref, eout, (int64_t)R * C, 0, 0);
            free(eref), free(eout);
        }
        free(x), free(ref), free(out), free(w), free(b), free(shifted), free(mask), free(ids);
    }
    /* A zero row stays zero under F.normalize; a bad id is an error. */
    float zero[4] = {0}, zout[4] = {1, 1, 1, 1};
    mrec_l2_normalize_rows_cpu(zout, zero, 1e-12f, 1, 4, pools[0]);
    t_allclose("l2_normalize zero row", zero, zout, 4, 0, 0);
    /* Sixteen rows at a time on AVX-512: the bits of the row-by-row loop (the float sum in column order, sqrtf,
     * the eps floor, a division each), widths with and without whole 16-column blocks and columns past them,
     * rows left over, a zero row */
    static const int l2_shapes[][2] = {{37, 384}, {16, 16}, {33, 7}, {20, 67}};
    for (int sh = 0; sh < (int)(sizeof l2_shapes / sizeof l2_shapes[0]); sh++) {
        int R = l2_shapes[sh][0], C = l2_shapes[sh][1];
        float *x = randv((int64_t)R * C, -1, 1), *want = malloc(sizeof(float) * R * C), *got = malloc(sizeof(float) * R * C);
        memset(x + (size_t)3 * C, 0, sizeof(float) * C);
        for (int r = 0; r < R; r++) {
            const float *xr = x + (size_t)r * C;
            float ss = 0.0f;
            for (int c = 0; c < C; c++) ss += xr[c] * xr[c];
            float norm = sqrtf(ss);
            if (norm < 1e-12f) norm = 1e-12f;
            for (int c = 0; c < C; c++) want[(size_t)r * C + c] = xr[c] / norm;
        }
        for (int p = 0; p < n_pools; p++) {
            mrec_l2_normalize_rows_cpu(got, x, 1e-12f, R, C, pools[p]);
            t_check(!memcmp(want, got, sizeof(float) * R * C), "l2_normalize %d x %d %s: the row-by-row loop's bits", R, C,
                    pool_name(pools[p]));
        }
        free(x), free(want), free(got);
    }
    int32_t bad_ids[3] = {0, 5, 1};
    float table[8] = {0}, eout[6];
    t_status(mrec_embedding_cpu(eout, table, bad_ids, 3, 4, 2, pools[0]), MREC_ERR_ARG, "embedding id 5 of 4");
    t_check(strstr(mrec_error_detail(), "position 1") != NULL, "embedding error names the position: %s", mrec_error_detail());
}

static void test_mean_pool(void) {
    int B = 4, T = 9, D = 37;
    float *x = randv((int64_t)B * T * D, -2, 2), ref[4 * 37], out[4 * 37];
    int32_t mask[4 * 9];
    for (int i = 0; i < B * T; i++) mask[i] = (i % T) < (i / T) * 3; /* row 0 all padding */
    for (int p = 0; p < n_pools; p++) {
        mrec_mean_pool_ref(ref, x, mask, B, T, D), mrec_mean_pool_cpu(out, x, mask, B, T, D, pools[p]);
        t_allclose("mean_pool mask", ref, out, B * D, 1e-7, 1e-5);
        mrec_mean_pool_ref(ref, x, NULL, B, T, D), mrec_mean_pool_cpu(out, x, NULL, B, T, D, pools[p]);
        t_allclose("mean_pool no mask", ref, out, B * D, 1e-7, 1e-5);
    }
    float zeros[37] = {0};
    mrec_mean_pool_cpu(out, x, mask, B, T, D, pools[0]);
    t_allclose("mean_pool all-padding row is zero", zeros, out, D, 0, 0);
    free(x);
}

/* mrec_gram_topk_cpu against the whole rows of x x^T (mrec_gemm_ref, then
 * mrec_topk_rows_ref): the same indices and values, bit for bit. x holds
 * small integers so every product and sum is exact whatever the GEMM's
 * path and order; repeated rows make ties, a NaN row NaN columns; sizes
 * around the 512-row blocks; k from 1 to n; with and without values. */
static void test_gram_topk(void) {
    static const int cases[][3] = {{1, 1, 1}, {5, 3, 5}, {17, 7, 4}, {511, 9, 10}, {512, 33, 10}, {513, 1, 3}, {1100, 300, 10},
                                   {1030, 16, 1030}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int n = cases[c][0], dim = cases[c][1], k = cases[c][2];
        float *x = randv((int64_t)n * dim, -4, 4), *S = malloc(sizeof(float) * (size_t)n * n);
        for (int64_t i = 0; i < (int64_t)n * dim; i++) x[i] = roundf(x[i]);
        for (int i = 3; i + 1 < n; i += 5) memcpy(x + (size_t)i * dim, x + (size_t)(i / 2) * dim, sizeof(float) * dim);
        if (n > 10) x[(size_t)7 * dim] = NAN;
        int32_t *ri = malloc(4 * (size_t)n * k), *gi = malloc(4 * (size_t)n * k), *gi2 = malloc(4 * (size_t)n * k);
        float *rv = malloc(4 * (size_t)n * k), *gv = malloc(4 * (size_t)n * k);
        mrec_gemm_ref(S, x, x, NULL, 1, 0, 0, 1, n, n, dim, dim, dim, n);
        mrec_topk_rows_ref(ri, rv, S, n, n, k);
        for (int p = 0; p < n_pools; p++) {
            char what[96];
            snprintf(what, sizeof what, "gram top-k %s n=%d dim=%d k=%d", pool_name(pools[p]), n, dim, k);
            if (!t_status(mrec_gram_topk_cpu(gi, gv, x, n, dim, k, 0, pools[p]), MREC_OK, "%s", what)) continue;
            t_check(!memcmp(ri, gi, 4 * (size_t)n * k), "%s: the indices of the whole rows' top k", what);
            t_check(!memcmp(rv, gv, 4 * (size_t)n * k), "%s: the values of the whole rows' top k", what);
            t_status(mrec_gram_topk_cpu(gi2, NULL, x, n, dim, k, 0, pools[p]), MREC_OK, "%s without values", what);
            t_check(!memcmp(gi, gi2, 4 * (size_t)n * k), "%s: the same indices without values", what);
            /* unit rows: the op's own normalization (over the pool's threads) against the reference's, then the
             * same products: the same bits (gi2 and gv2 hold the first, gi and gv the second) */
            float *xu = malloc(sizeof(float) * (size_t)n * dim), *gv2 = malloc(4 * (size_t)n * k);
            mrec_unit_rows_ref(xu, x, n, dim);
            if (t_status(mrec_gram_topk_cpu(gi2, gv2, xu, n, dim, k, 0, pools[p]), MREC_OK, "%s, rows made unit first", what) &&
                t_status(mrec_gram_topk_cpu(gi, gv, x, n, dim, k, 1, pools[p]), MREC_OK, "%s, unit rows", what))
                t_check(!memcmp(gi2, gi, 4 * (size_t)n * k) && !memcmp(gv2, gv, 4 * (size_t)n * k),
                        "%s, unit rows: the top k of the rows made unit by mrec_unit_rows_ref", what);
            free(xu), free(gv2);
        }
        free(x), free(S), free(ri), free(gi), free(gi2), free(rv), free(gv);
    }
    float one = 1.0f;
    int32_t i2[2];
    t_status(mrec_gram_topk_cpu(i2, NULL, &one, 1, 1, 2, 0, pools[0]), MREC_ERR_ARG, "gram top-k: k above the rows");
}

static void test_topk(void) {
    static const int cases[][3] = {{1, 1, 1}, {3, 10, 10}, {5, 100, 1}, {7, 1000, 20}, {2, 50, 49}};
    for (size_t s = 0; s < 5; s++) {
        int R = cases[s][0], C = cases[s][1], k = cases[s][2];
        float *x = randv((int64_t)R * C, -1, 1);
        for (int i = 0; i < R * C; i += 7) x[i] = 0.25f; /* ties */
        if (R * C > 5) x[3] = NAN, x[4] = INFINITY;
        int32_t *ri = malloc((size_t)R * k * 4), *oi = malloc((size_t)R * k * 4);
        float *rv = malloc((size_t)R * k * 4), *ov = malloc((size_t)R * k * 4);
        mrec_topk_rows_ref(ri, rv, x, R, C, k);
        for (int p = 0; p < n_pools; p++) {
            mrec_topk_rows_cpu(oi, ov, x, R, C, k, pools[p]);
            t_check(memcmp(ri, oi, (size_t)R * k * 4) == 0, "topk indices %s R=%d C=%d k=%d", pool_name(pools[p]), R, C, k);
            t_allclose("topk values", rv, ov, (int64_t)R * k, 0, 0);
        }
        free(x), free(ri), free(oi), free(rv), free(ov);
    }
    /* The bar from the blocks' maxima and the heap's vector scan: NaN among the first k (a NaN root), masked items
     * (-inf), runs of one value tied with the bar, a row of one value (too many at the bar), fewer numbers than k
     * (a bar of -inf), widths not a multiple of 8 or 16 */
    {
        int R = 8, C = 333, k = 20;
        float *x = randv((int64_t)R * C, -1, 1);
        for (int c = 0; c < C; c++) {
            if (c % 3 == 0) x[c] = -INFINITY;                    /* row 0: a third masked */
            x[C + c] = (float)(c % 5);                            /* row 1: five values, many ties */
            if (c < k && c % 4 == 0) x[2 * C + c] = NAN;          /* row 2: NaN roots */
            if (c % 11 == 0) x[3 * C + c] = NAN;                  /* row 3: NaN throughout */
            x[4 * C + c] = c < 40 ? -INFINITY : x[4 * C + c];     /* row 4: the heap fills with -inf */
            x[5 * C + c] = (float)(C - c);                        /* row 5: descending: nothing enters late */
            x[6 * C + c] = 0.5f;                                  /* row 6: one value (more at the bar than kept) */
            x[7 * C + c] = c % 70 == 3 ? (float)c : NAN;          /* row 7: 5 numbers, NaN ranked after them */
        }
        int32_t *ri = malloc((size_t)R * k * 4), *oi = malloc((size_t)R * k * 4);
        float *rv = malloc((size_t)R * k * 4), *ov = malloc((size_t)R * k * 4);
        mrec_topk_rows_ref(ri, rv, x, R, C, k);
        for (int p = 0; p < n_pools; p++) {
            mrec_topk_rows_cpu(oi, ov, x, R, C, k, pools[p]);
            t_check(memcmp(ri, oi, (size_t)R * k * 4) == 0, "topk indices, NaN / -inf / ties %s", pool_name(pools[p]));
            t_check(memcmp(rv, ov, (size_t)R * k * 4) == 0, "topk values, NaN / -inf / ties %s", pool_name(pools[p]));
        }
        free(x), free(ri), free(oi), free(rv), free(ov);
    }
    float s[6] = {1, 3, 3, NAN, 2, 3};
    int32_t idx[6];
    float val[6];
    mrec_topk_rows_cpu(idx, val, s, 1, 6, 6, pools[0]);
    int32_t want[6] = {1, 2, 5, 4, 0, 3};
    t_check(memcmp(idx, want, sizeof want) == 0, "topk order: ties to the lower index, NaN last (%d %d %d %d %d %d)",
            idx[0], idx[1], idx[2], idx[3], idx[4], idx[5]);
}

/* ---- convolution, batchnorm, pooling ------------------------------------- */

/* mrec_conv2d_act (fp32, or bf16 with ref from rounded operands), weights
 * packed per call or from a pack set: with beta 1 and ReLU against
 * relu(ref + r) for a residual r (the conv's bound `tol`, plus the one
 * rounding of adding r, |r| <= 1); with beta 0 the bits of the plain conv
 * and then the activation (C's old values, NaN here, ignored; bf16's swish
 * mrec_silu_bf16_avx512). */
static void conv_act_checks(const char *what, mrec_conv2d_shape s, const float *x, const float *w, const float *b,
                            const float *ref, double tol, int bf16, mrec_packs *packs, mrec_pool *pool) {
    int64_t out_n = (int64_t)s.N * s.C_out * mrec_conv2d_out_h(&s) * mrec_conv2d_out_w(&s);
    float *r = randv(out_n, -1, 1), *got = copyv(r, out_n), *want = malloc((size_t)out_n * 4), *plain = malloc((size_t)out_n * 4);
    mrec_status st = bf16 ? mrec_conv2d_act_bf16_cpu(got, x, w, b, 1.0f, MREC_ACT_RELU, &s, packs, pool)
                          : (mrec_conv2d_act_cpu(got, x, w, b, 1.0f, MREC_ACT_RELU, &s, packs, pool), MREC_OK);
    for (int64_t i = 0; i < out_n; i++) want[i] = ref[i] + r[i] > 0.0f ? ref[i] + r[i] : 0.0f;
    char msg[240];
    snprintf(msg, sizeof msg, "%s%s, + residual, ReLU", what, packs ? ", packed" : "");
    if (t_status(st, MREC_OK, "%s", msg)) t_allclose(msg, want, got, out_n, tol + (tol + 2) * U, 0);
    static const mrec_act acts[] = {MREC_ACT_RELU, MREC_ACT_SILU};
    for (int a = 0; a < 2; a++) {
        for (int64_t i = 0; i < out_n; i++) got[i] = NAN;
        st = bf16 ? mrec_conv2d_bf16_cpu(plain, x, w, b, &s, packs, pool) : (mrec_conv2d_cpu(plain, x, w, b, &s, packs, pool), MREC_OK);
        if (!st && bf16 && acts[a] == MREC_ACT_SILU) /* swish to bf16's precision where what reads it rounds to bf16 */
            mrec_silu_bf16_avx512(plain, plain, out_n);
        else if (!st)
            mrec_activation_cpu(plain, plain, acts[a], 0.0f, out_n, pool);
        if (!st)
            st = bf16 ? mrec_conv2d_act_bf16_cpu(got, x, w, b, 0.0f, acts[a], &s, packs, pool)
                      : (mrec_conv2d_act_cpu(got, x, w, b, 0.0f, acts[a], &s, packs, pool), MREC_OK);
        snprintf(msg, sizeof msg, "%s%s, %s in the conv's pass", what, packs ? ", packed" : "", a ? "SiLU" : "ReLU");
        if (t_status(st, MREC_OK, "%s", msg))
            t_check(!memcmp(plain, got, (size_t)out_n * 4), "%s: bits differ from the conv then the activation", msg);
    }
    free(r), free(got), free(want), free(plain);
}

static void conv_case(mrec_conv2d_shape s, int with_bias) {
    int Ho = mrec_conv2d_out_h(&s), Wo = mrec_conv2d_out_w(&s);
    int64_t in_n = (int64_t)s.N * s.C_in * s.H * s.W, k = (int64_t)(s.C_in / s.groups) * s.KH * s.KW;
    int64_t w_n = s.C_out * k, out_n = (int64_t)s.N * s.C_out * Ho * Wo;
    float *x = randv(in_n, -1, 1), *w = randv(w_n, -1, 1), *b = with_bias ? randv(s.C_out, -1, 1) : NULL;
    float *ref = malloc((size_t)out_n * 4), *out = malloc((size_t)out_n * 4);
    mrec_conv2d_ref(ref, x, w, b, &s);
    /* the same GEMM over an unfolded input written out in full: the panels
     * gathered straight from the input must give its bits */
    int cig = s.C_in / s.groups, cog = s.C_out / s.groups, npix = Ho * Wo;
    float *col = malloc((size_t)k * npix * 4), *unfolded = malloc((size_t)out_n * 4), *again = malloc((size_t)out_n * 4);
    for (int n = 0; n < s.N; n++)
        for (int g = 0; g < s.groups; g++) {
            for (int64_t r = 0; r < k; r++)
                for (int q = 0; q < npix; q++) {
                    int ci = (int)(r / (s.KH * s.KW)), kh = (int)(r / s.KW % s.KH), kw = (int)(r % s.KW);
                    int ih = q / Wo * s.stride_h - s.pad_h + kh, iw = q % Wo * s.stride_w - s.pad_w + kw;
                    col[r * npix + q] = ih < 0 || ih >= s.H || iw < 0 || iw >= s.W
                                            ? 0.0f
                                            : x[(((size_t)n * s.C_in + g * cig + ci) * s.H + ih) * s.W + iw];
                }
            float *y = unfolded + ((size_t)n * s.C_out + (size_t)g * cog) * npix;
            for (int co = 0; co < cog; co++)
                for (int q = 0; q < npix; q++) y[(size_t)co * npix + q] = b ? b[g * cog + co] : 0.0f;
            mrec_gemm_cpu(y, w + (size_t)g * cog * k, col, NULL, 1, 1, 0, 0, cog, npix, (int)k, (int)k, npix, npix, pools[0]);
        }
    mrec_packs *packs = NULL;
    float *wino_level[8] = {NULL}; /* Winograd's output, first per SIMD level */
    t_check(mrec_packs_create(&packs, w, w_n) == MREC_OK, "conv2d: creating a pack set");
    for (int p = 0; p < n_pools; p++) {
        mrec_conv2d_cpu(out, x, w, b, &s, NULL, pools[p]);
        char what[160];
        snprintf(what, sizeof what, "conv2d %s N=%d Ci=%d %dx%d Co=%d k=%dx%d s=%d p=%d g=%d", pool_name(pools[p]), s.N,
                 s.C_in, s.H, s.W, s.C_out, s.KH, s.KW, s.stride_h, s.pad_h, s.groups);
        t_allclose(what, ref, out, out_n, (k + 2) * U * (k + 1), 0); /* |x||w| <= 1 per term, |b| <= 1 */
        if (p == 0 && cog > MREC_GEMM_FEW_ROWS) /* fewer rows take the GEMM's dot-product path */
            t_check(memcmp(out, unfolded, (size_t)out_n * 4) == 0, "%s: bits differ from the GEMM on the unfolded input", what);
        /* the weights packed once (twice over: packing, then the kept copy) give the same bits; a stride-1 3x3
         * conv with a pack set runs as Winograd F(2x2, 3x3) instead: other bits, each output a sum of 9 of the
         * 16 tile products (each |U| <= 2.25 |w|, |V| <= 4 |x|), so 36x the direct bound, and the same bits
         * on the second call as on the first */
        int winograd = s.KH == 3 && s.KW == 3 && s.stride_h == 1 && s.stride_w == 1 && s.groups == 1 && s.C_out >= 16 &&
                       s.C_in >= 16 && (Ho + 1) / 2 * ((Wo + 1) / 2) > MREC_GEMM_FEW_ROWS;
        conv_act_checks(what, s, x, w, b, ref, (k + 2) * U * (k + 1), 0, NULL, pools[p]);
        if (packs) conv_act_checks(what, s, x, w, b, ref, (winograd ? 36 : 1) * (k + 2) * U * (k + 1), 0, packs, pools[p]);
        float *first = winograd ? malloc((size_t)out_n * 4) : NULL;
        for (int round = 0; round < 2 && packs; round++) {
            mrec_conv2d_cpu(again, x, w, b, &s, packs, pools[p]);
            if (!winograd) {
                t_check(memcmp(out, again, (size_t)out_n * 4) == 0, "%s: bits differ with the weights packed once", what);
            } else if (round == 0) {
                char wwhat[200];
                snprintf(wwhat, sizeof wwhat, "%s, Winograd", what);
                t_allclose(wwhat, ref, again, out_n, 36 * (k + 2) * U * (k + 1), 0);
                memcpy(first, again, (size_t)out_n * 4);
                /* its 16 GEMMs run a task each, on one thread: the bits of every thread count of a SIMD level */
                mrec_simd level = mrec_pool_simd(pools[p]);
                if (!wino_level[level]) wino_level[level] = copyv(again, out_n);
                else t_check(!memcmp(wino_level[level], again, (size_t)out_n * 4), "%s: bits differ from another thread count", wwhat);
            } else {
                t_check(memcmp(first, again, (size_t)out_n * 4) == 0, "%s: Winograd's bits differ on the second call", what);
            }
        }
        free(first);
    }
    for (int l = 0; l < 8; l++) free(wino_level[l]);
    mrec_packs_free(packs);
    free(x), free(w), free(b), free(ref), free(out), free(again), free(col), free(unfolded);
}

static void test_conv(void) {
    conv_case((mrec_conv2d_shape){1, 3, 17, 19, 8, 7, 7, 2, 2, 3, 3, 1}, 0);   /* ResNet stem */
    conv_case((mrec_conv2d_shape){2, 5, 9, 8, 7, 3, 3, 1, 1, 1, 1, 1}, 1);     /* 3x3 same */
    conv_case((mrec_conv2d_shape){2, 6, 7, 7, 9, 1, 1, 1, 1, 0, 0, 1}, 1);     /* 1x1 */
    conv_case((mrec_conv2d_shape){1, 6, 9, 9, 4, 1, 1, 2, 2, 0, 0, 1}, 0);     /* downsample 1x1 s2 */
    conv_case((mrec_conv2d_shape){1, 4, 8, 8, 6, 3, 3, 2, 2, 1, 1, 2}, 1);     /* groups 2 */
    conv_case((mrec_conv2d_shape){1, 5, 6, 7, 5, 3, 3, 1, 1, 1, 1, 5}, 1);     /* depthwise */
    conv_case((mrec_conv2d_shape){1, 3, 32, 32, 16, 16, 16, 16, 16, 0, 0, 1}, 1); /* ViT patches */
    /* panels across output rows, K over several KC blocks, C_out over several row blocks */
    conv_case((mrec_conv2d_shape){1, 32, 20, 23, 150, 3, 3, 1, 1, 1, 1, 1}, 1);
    conv_case((mrec_conv2d_shape){2, 3, 11, 13, 6, 5, 3, 2, 1, 2, 1, 1}, 1);    /* KH != KW, strides and pads differ */
    conv_case((mrec_conv2d_shape){1, 2, 5, 5, 5, 3, 3, 1, 1, 3, 3, 1}, 0);      /* padding wider than the kernel */
    /* Winograd with a pack set: a ResNet stage's shape, odd sizes (tiles over the edge), no padding and two
     * images in one GEMM, five images in groups of four and one */
    conv_case((mrec_conv2d_shape){1, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1}, 1);
    conv_case((mrec_conv2d_shape){1, 16, 7, 9, 40, 3, 3, 1, 1, 1, 1, 1}, 1);
    conv_case((mrec_conv2d_shape){2, 24, 8, 11, 17, 3, 3, 1, 1, 0, 0, 1}, 0);
    conv_case((mrec_conv2d_shape){5, 16, 16, 16, 20, 3, 3, 1, 1, 1, 1, 1}, 1);
    conv_case((mrec_conv2d_shape){1, 300, 5, 6, 150, 3, 3, 1, 1, 1, 1, 1}, 1); /* K over two KC blocks, two row blocks */
    /* the batch as one GEMM (weights packed): 49 pixels an image, so tiles span two images; K over two KC blocks */
    conv_case((mrec_conv2d_shape){3, 300, 7, 7, 40, 1, 1, 1, 1, 0, 0, 1}, 1);
    conv_case((mrec_conv2d_shape){4, 20, 9, 9, 24, 3, 3, 2, 2, 1, 1, 1}, 1);    /* strided 3x3: 25 pixels an image */
}

/* Many small bf16 GEMMs (a bf16 context's attention heads), each item
 * against the reference on rounded inputs within the fp32 bound, items laid
 * out as attention lays heads (in one matrix, dh apart); the same bits on
 * every thread count of a SIMD level; an item too big for a thread's
 * scratch is refused with nothing written. */
static void bf16_batched_case(int batch, int M, int N, int K, int tb, float alpha) {
    int lda = batch * K, ldb = tb ? batch * K : batch * N, ldc = batch * N;
    int64_t a_n = (int64_t)M * lda, b_n = (int64_t)(tb ? N : K) * ldb, c_n = (int64_t)M * ldc;
    float *A = randv(a_n, -1, 1), *B = randv(b_n, -1, 1), *Ar = copyv(A, a_n), *Br = copyv(B, b_n);
    for (int64_t i = 0; i < a_n; i++) Ar[i] = bf16_rounded(A[i]);
    for (int64_t i = 0; i < b_n; i++) Br[i] = bf16_rounded(B[i]);
    float *ref = calloc((size_t)c_n, 4), *out = malloc((size_t)c_n * 4), *first[4] = {NULL};
    for (int b = 0; b < batch; b++)
        mrec_gemm_ref(ref + (size_t)b * N, Ar + (size_t)b * K, Br + (size_t)b * (tb ? K : N), NULL, alpha, 0, 0, tb, M, N, K, lda,
                      ldb, ldc);
    for (int p = 0; p < n_pools; p++) {
        mrec_simd level = mrec_pool_simd(pools[p]);
        if (level < MREC_SIMD_AVX512) continue;
        char what[128];
        snprintf(what, sizeof what, "bf16 batched gemm %s batch=%d M=%d N=%d K=%d tb=%d", pool_name(pools[p]), batch, M, N, K, tb);
        for (int64_t i = 0; i < c_n; i++) out[i] = NAN; /* beta 0: every element written */
        if (!t_check(mrec_gemm_bf16_batched(out, A, B, alpha, 0, tb, batch, M, N, K, lda, ldb, ldc, K, tb ? K : N, N, pools[p]),
                     "%s: accepted", what))
            continue;
        t_allclose(what, ref, out, c_n, (K + 8) * U * K * fabsf(alpha), 0); /* |a||b| <= 1 per term */
        if (!first[level]) first[level] = copyv(out, c_n);
        else t_check(!memcmp(first[level], out, (size_t)c_n * 4), "%s: bits differ from another thread count", what);
    }
    for (int i = 0; i < 4; i++) free(first[i]);
    free(A), free(B), free(Ar), free(Br), free(ref), free(out);
}

static void test_gemm_bf16_batched(void) {
    if (!mrec_cpu_has_bf16()) {
        t_skip("bf16 batched GEMM: this CPU has no AVX-512 BF16");
        return;
    }
    bf16_batched_case(3, 197, 197, 64, 1, 0.125f); /* a ViT's scores: q k^T, scaled */
    bf16_batched_case(2, 197, 64, 197, 0, 1.0f);   /* probabilities times v: odd K */
    bf16_batched_case(2, 3, 40, 33, 1, 1.0f);      /* 3 rows: the 4-row kernel */
    bf16_batched_case(4, 33, 31, 16, 0, -2.0f);
    float c = 7.0f, a = 1.0f;
    t_check(!mrec_gemm_bf16_batched(&c, &a, &a, 1, 0, 1, 1, 64, 4096, 4096, 4096, 4096, 4096, 0, 0, 0, pools[0]) && c == 7.0f,
            "bf16 batched gemm: an item over a thread's scratch is refused, nothing written");
}

/* mrec_conv2d_to_bf16_cpu against the float-output bf16 convolution (no pack set) rounded as VCVTNEPS2BF16
 * rounds: the same bits where both sum K in one block (K up to 512) or the float route serves it (groups, K past
 * 1024, an activation the store does not take), else within one bf16 step (the float route sums K in blocks of
 * 512, adding each block's sum into C; the bf16 store's sums run through K in one chain). With a pack set
 * (where a 3x3 conv would run Winograd in float) the same bits as without. */
static void conv_to_bf16_checks(const char *what, mrec_conv2d_shape s, const float *x, const float *w, const float *b,
                                mrec_packs *packs, int winograd, double tol, mrec_pool *pool) {
    int64_t out_n = (int64_t)s.N * s.C_out * mrec_conv2d_out_h(&s) * mrec_conv2d_out_w(&s), k = (int64_t)(s.C_in / s.groups) * s.KH * s.KW;
    static const int acts[4] = {MREC_GEMM_NO_ACT, MREC_ACT_SILU, MREC_ACT_RELU, MREC_ACT_GELU_ERF};
    float *full = malloc((size_t)out_n * 4);
    uint16_t *want = malloc((size_t)out_n * 2), *got = malloc((size_t)out_n * 2), *ref = malloc((size_t)out_n * 2);
    for (int a = 0; a < 4; a++) {
        char w2[240];
        snprintf(w2, sizeof w2, "%s, to bf16 with activation %d", what, acts[a]);
        mrec_status st = acts[a] == MREC_GEMM_NO_ACT ? mrec_conv2d_bf16_cpu(full, x, w, b, &s, NULL, pool)
                                                     : mrec_conv2d_act_bf16_cpu(full, x, w, b, 0.0f, (mrec_act)acts[a], &s, NULL, pool);
        if (!t_status(st, MREC_OK, "%s: the float route", w2)) continue;
        mrec_bf16_round_array(want, full, out_n);
        int exact = s.groups != 1 || k <= 512 || k > 1024 || acts[a] == MREC_ACT_GELU_ERF;
        for (int with = 0; with < 1 + (packs && !winograd); with++) {
            for (int64_t i = 0; i < out_n; i++) got[i] = 0x7fc1; /* every output must be written */
            if (!t_status(mrec_conv2d_to_bf16_cpu(got, x, w, b, acts[a], &s, with ? packs : NULL, pool), MREC_OK, "%s", w2)) continue;
            int64_t off = 0;
            for (int64_t i = 0; i < out_n; i++) {
                if (got[i] == want[i]) continue;
                float g = mrec_bf16_widen(got[i]), f = mrec_bf16_widen(want[i]), m = fmaxf(fmaxf(fabsf(g), fabsf(f)), FLT_MIN);
                off += exact || !(fabsf(g - f) <= ldexpf(1.0f, ilogbf(m) - 7));
            }
            t_check(off == 0, "%s%s: %lld of %lld outputs off the float route's %s", w2, with ? ", packed" : "", (long long)off,
                    (long long)out_n, exact ? "bits" : "by more than one bf16 step");
            if (with) continue;
            /* against the reference: the float sums' bound tol, through an activation of slope under 1.13, then
             * two roundings to bf16 of values that close: one bf16 step apart at most */
            mrec_conv2d_to_bf16_ref(ref, x, w, b, acts[a], &s);
            off = 0;
            for (int64_t i = 0; i < out_n; i++) {
                float g = mrec_bf16_widen(got[i]), r = mrec_bf16_widen(ref[i]), m = fmaxf(fmaxf(fabsf(g), fabsf(r)), FLT_MIN);
                off += !(fabsf(g - r) <= 1.13 * tol + 0x1p-20 + ldexpf(1.0f, ilogbf(m) - 7)); /* FLT_MIN: ilogb(0) is INT_MIN */
            }
            t_check(off == 0, "%s: %lld of %lld outputs off the reference by more than the bound", w2, (long long)off, (long long)out_n);
        }
    }
    free(full), free(want), free(got), free(ref);
}

/* The bf16 convolution against the reference on the input and weights
 * rounded to bf16 (exact products, fp32 sums: the fp32 bound), on every
 * pool with AVX-512 BF16 (AMX pools through the tiles); the same bits with
 * the weights packed per call, packed once, and on every thread count of
 * one SIMD level. */
static void conv_bf16_case(mrec_conv2d_shape s, int with_bias) {
    int Ho = mrec_conv2d_out_h(&s), Wo = mrec_conv2d_out_w(&s);
    int64_t in_n = (int64_t)s.N * s.C_in * s.H * s.W, k = (int64_t)(s.C_in / s.groups) * s.KH * s.KW;
    int64_t w_n = s.C_out * k, out_n = (int64_t)s.N * s.C_out * Ho * Wo;
    float *x = randv(in_n, -1, 1), *w = randv(w_n, -1, 1), *b = with_bias ? randv(s.C_out, -1, 1) : NULL;
    float *xr = malloc((size_t)in_n * 4), *wr = malloc((size_t)w_n * 4), *ref = malloc((size_t)out_n * 4);
    float *out = malloc((size_t)out_n * 4), *again = malloc((size_t)out_n * 4), *first[4] = {NULL};
    for (int64_t i = 0; i < in_n; i++) xr[i] = bf16_rounded(x[i]);
    for (int64_t i = 0; i < w_n; i++) wr[i] = bf16_rounded(w[i]);
    mrec_conv2d_ref(ref, xr, wr, b, &s);
    /* A stride-1 3x3 conv with a pack set runs as Winograd F(2x2, 3x3), as in fp32, with the 16 products in
     * bf16: U = G w G^T and V = B^T x B are rounded, not w and x. Each output sums 9 C_in products
     * (|U| <= 2.25 |w|, |V| <= 4 |x|), each within 2^-8 of its size after the two roundings, and ref's own
     * rounding of x and w adds 2^-8 per term of its 9 C_in: that bound, which holds for any inputs. Random
     * inputs make the error far smaller: its RMS must stay within 2^-6 of the outputs' RMS (2^-7.8 measured
     * at 33 to 512 channels, against 2^-9 or so for rounding x and w alone), which a wrong tile, channel or
     * rounding would far exceed. */
    int winograd = s.KH == 3 && s.KW == 3 && s.stride_h == 1 && s.stride_w == 1 && s.groups == 1 && s.C_out >= 16 &&
                   s.C_in >= 16 && (Ho + 1) / 2 * ((Wo + 1) / 2) > MREC_GEMM_FEW_ROWS;
    double direct_tol = (k + 2) * U * (k + 1), packed_tol = winograd ? (81.0 + 9.0) * s.C_in * 0x1p-8 : direct_tol;
    mrec_packs *packs = NULL;
    float *first_packed[4] = {NULL};
    t_check(mrec_packs_create(&packs, w, w_n) == MREC_OK, "bf16 conv2d: creating a pack set");
    for (int p = 0; p < n_pools; p++) {
        mrec_simd level = mrec_pool_simd(pools[p]);
        if (level < MREC_SIMD_AVX512) continue;
        char what[160];
        snprintf(what, sizeof what, "conv2d bf16 %s N=%d Ci=%d %dx%d Co=%d k=%dx%d s=%d p=%d g=%d", pool_name(pools[p]), s.N,
                 s.C_in, s.H, s.W, s.C_out, s.KH, s.KW, s.stride_h, s.pad_h, s.groups);
        if (!t_status(mrec_conv2d_bf16_cpu(out, x, w, b, &s, NULL, pools[p]), MREC_OK, "%s", what)) continue;
        t_allclose(what, ref, out, out_n, direct_tol, 0); /* |x||w| <= 1 per term, |b| <= 1 */
        conv_act_checks(what, s, x, w, b, ref, direct_tol, 1, NULL, pools[p]);
        conv_act_checks(what, s, x, w, b, ref, packed_tol, 1, packs, pools[p]);
        conv_to_bf16_checks(what, s, x, w, b, packs, winograd, direct_tol, pools[p]);
        float *packed = malloc((size_t)out_n * 4);
        for (int round = 0; round < 2; round++) {
            float *dst = round ? again : packed;
            t_status(mrec_conv2d_bf16_cpu(dst, x, w, b, &s, packs, pools[p]), MREC_OK, "%s, packed", what);
            if (!winograd)
                t_check(!memcmp(out, dst, (size_t)out_n * 4), "%s: bits differ with the weights packed once (round %d)", what, round);
        }
        t_check(!memcmp(packed, again, (size_t)out_n * 4), "%s: bits differ between two calls with the weights packed", what);
        if (winograd) {
            double err = 0, size = 0;
            for (int64_t i = 0; i < out_n; i++) err += ((double)packed[i] - ref[i]) * ((double)packed[i] - ref[i]), size += (double)ref[i] * ref[i];
            t_allclose(what, ref, packed, out_n, packed_tol, 0);
            t_check(err <= 0x1p-12 * size, "%s, Winograd: error RMS %.3g of the outputs' RMS (at most 2^-6)", what, sqrt(err / size));
        }
        if (!first[level]) first[level] = copyv(out, out_n), first_packed[level] = copyv(packed, out_n);
        else
            t_check(!memcmp(first[level], out, (size_t)out_n * 4) && !memcmp(first_packed[level], packed, (size_t)out_n * 4),
                    "%s: bits differ from another thread count", what);
        free(packed);
    }
    mrec_packs_free(packs);
    for (int i = 0; i < 4; i++) free(first[i]), free(first_packed[i]);
    free(x), free(w), free(b), free(xr), free(wr), free(ref), free(out), free(again);
}

static void test_conv_bf16(void) {
    if (!mrec_cpu_has_bf16()) {
        float z = 0;
        mrec_conv2d_shape s = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1};
        t_status(mrec_conv2d_bf16_cpu(&z, &z, &z, NULL, &s, NULL, pools[0]), MREC_ERR_UNSUPPORTED, "bf16 conv2d without AVX-512 BF16");
        t_skip("bf16 conv2d: this CPU has no AVX-512 BF16");
        return;
    }
    conv_bf16_case((mrec_conv2d_shape){1, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1}, 1);   /* npix 196: a partial panel; Winograd packed */
    conv_bf16_case((mrec_conv2d_shape){3, 40, 9, 13, 24, 3, 3, 1, 1, 1, 1, 1}, 1);    /* Winograd: odd sizes, images grouped, 12-row tails */
    conv_bf16_case((mrec_conv2d_shape){1, 33, 16, 16, 70, 3, 3, 1, 1, 0, 0, 1}, 0);   /* Winograd: odd K (33 channels), no padding */
    conv_bf16_case((mrec_conv2d_shape){3, 600, 7, 7, 40, 1, 1, 1, 1, 0, 0, 1}, 1);   /* the batch as one GEMM: tiles over two images, two k blocks */
    conv_bf16_case((mrec_conv2d_shape){4, 20, 9, 9, 24, 3, 3, 2, 2, 1, 1, 1}, 1);    /* strided 3x3, the batch as one GEMM */
    conv_bf16_case((mrec_conv2d_shape){1, 256, 7, 7, 100, 1, 1, 1, 1, 0, 0, 1}, 0);   /* M not a multiple of 32 or 12 */
    conv_bf16_case((mrec_conv2d_shape){1, 130, 6, 5, 40, 3, 3, 1, 1, 1, 1, 1}, 1);    /* K 1170: three AMX k blocks' worth of pairs */
    conv_bf16_case((mrec_conv2d_shape){2, 8, 9, 11, 3, 3, 3, 2, 1, 1, 0, 1}, 1);      /* 3 rows: the 4-row panels */
    conv_bf16_case((mrec_conv2d_shape){1, 12, 8, 8, 10, 3, 3, 1, 1, 1, 1, 2}, 1);     /* groups */
    conv_bf16_case((mrec_conv2d_shape){2, 33, 5, 7, 20, 1, 1, 1, 1, 0, 0, 1}, 1);     /* pointwise, odd K: a pair with one plane */
    conv_bf16_case((mrec_conv2d_shape){1, 18, 6, 6, 8, 1, 1, 1, 1, 0, 0, 2}, 0);      /* pointwise groups of 9 channels */
    conv_bf16_case((mrec_conv2d_shape){1, 600, 4, 4, 70, 3, 3, 1, 1, 1, 1, 1}, 1);    /* K 5400: over 1024 pairs */
    conv_bf16_case((mrec_conv2d_shape){2, 3, 20, 18, 64, 7, 7, 2, 2, 3, 3, 1}, 1);    /* a stem: odd K (147), after scratch that holds other rows */
    conv_bf16_case((mrec_conv2d_shape){1, 48, 17, 19, 40, 1, 1, 1, 1, 0, 0, 1}, 1);   /* EfficientNet's expansions: single columns */
    conv_bf16_case((mrec_conv2d_shape){2, 640, 3, 3, 30, 1, 1, 1, 1, 0, 0, 1}, 1);    /* K 640 over two images */
}

static void test_batchnorm(void) {
    int N = 2, C = 5, H = 6, W = 7;
    float *x = randv(N * C * H * W, -2, 2), *g = randv(C, 0.5f, 2), *be = randv(C, -1, 1);
    float *mean = randv(C, -1, 1), *var = randv(C, 0.1f, 3);
    float ref[2 * 5 * 42], out[2 * 5 * 42];
    mrec_batchnorm_ref(ref, x, g, be, mean, var, 1e-5f, N, C, H * W);
    for (int p = 0; p < n_pools; p++) {
        mrec_batchnorm_cpu(out, x, g, be, mean, var, 1e-5f, N, C, H * W, pools[p]);
        t_allclose("batchnorm", ref, out, N * C * H * W, 1e-6, 1e-5);
    }
    /* conv then batchnorm equals the folded conv. */
    mrec_conv2d_shape s = {N, C, H, W, 4, 3, 3, 1, 1, 1, 1, 1};
    float *w = randv(4 * C * 9, -1, 1), *cb = randv(4, -1, 1), conv[2 * 4 * 42], bn[2 * 4 * 42], folded[2 * 4 * 42];
    mrec_conv2d_ref(conv, x, w, cb, &s);
    mrec_batchnorm_ref(bn, conv, g, be, mean, var, 1e-5f, N, 4, H * W);
    float fb[4];
    mrec_batchnorm_fold(w, fb, cb, g, be, mean, var, 1e-5f, 4, C * 9);
    mrec_conv2d_ref(folded, x, w, fb, &s);
    t_allclose("batchnorm fold", bn, folded, 2 * 4 * 42, 1e-5, 1e-5);
    free(x), free(g), free(be), free(mean), free(var), free(w), free(cb);
}

static void test_pool2d(void) {
    mrec_pool2d_shape shapes[] = {
        {2, 3, 11, 12, 3, 3, 2, 2, 1, 1, 1}, /* ResNet max pool */
        {1, 4, 7, 7, 7, 7, 1, 1, 0, 0, 1},   /* global average */
        {1, 2, 9, 8, 3, 3, 2, 2, 1, 1, 0},   /* padding not counted */
        {1, 1, 5, 5, 2, 2, 2, 2, 0, 0, 1},
    };
    for (size_t i = 0; i < 4; i++) {
        mrec_pool2d_shape s = shapes[i];
        int64_t in_n = (int64_t)s.N * s.C * s.H * s.W, out_n = (int64_t)s.N * s.C * mrec_pool2d_out_h(&s) * mrec_pool2d_out_w(&s);
        float *x = randv(in_n, -3, 3), *ref = malloc((size_t)out_n * 4), *out = malloc((size_t)out_n * 4);
        for (int p = 0; p < n_pools; p++) {
            mrec_maxpool2d_ref(ref, x, &s), mrec_maxpool2d_cpu(out, x, &s, pools[p]);
            t_allclose("maxpool2d", ref, out, out_n, 0, 0);
            mrec_avgpool2d_ref(ref, x, &s), mrec_avgpool2d_cpu(out, x, &s, pools[p]);
            t_allclose("avgpool2d", ref, out, out_n, 1e-6, 1e-5);
        }
        free(x), free(ref), free(out);
    }
    /* max pooling bit for bit: NaNs with payloads, +0 and -0 ties, -inf, on strides 1 to 3, padding, a
     * window wider than the stride, rows wider than a vector */
    mrec_pool2d_shape more[] = {
        {1, 3, 23, 37, 3, 3, 2, 2, 1, 1, 1}, {2, 2, 9, 40, 2, 3, 1, 1, 0, 1, 1}, {1, 2, 13, 50, 3, 5, 3, 3, 1, 2, 1},
        {1, 1, 4, 4, 3, 3, 1, 1, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        mrec_pool2d_shape s = more[i];
        int64_t in_n = (int64_t)s.N * s.C * s.H * s.W, out_n = (int64_t)s.N * s.C * mrec_pool2d_out_h(&s) * mrec_pool2d_out_w(&s);
        float *x = randv(in_n, -3, 3), *ref = malloc((size_t)out_n * 4), *out = malloc((size_t)out_n * 4);
        for (int64_t j = 0; j < in_n; j++) {
            uint64_t r = t_rand_u64(&rng) % 16;
            uint32_t bits = r == 0 ? 0x7fc00000u + (uint32_t)j : r == 1 ? 0xffc00001u : r < 5 ? 0x80000000u : r < 8 ? 0u : 0;
            if (r == 8) x[j] = -INFINITY;
            else if (r < 8) memcpy(&x[j], &bits, 4);
        }
        mrec_maxpool2d_ref(ref, x, &s);
        for (int p = 0; p < n_pools; p++) {
            mrec_maxpool2d_cpu(out, x, &s, pools[p]);
            t_check(!memcmp(ref, out, (size_t)out_n * 4), "maxpool2d bits, %s, shape %zu (NaN, signed zeros)", pool_name(pools[p]), i);
        }
        free(x), free(ref), free(out);
    }
}

/* ---- channels-last bf16 ------------------------------------------------------ */

/* x (n) rounded to bf16 in place: the references then see exact inputs on both layouts */
static void round_bf16_inplace(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = mrec_bf16_widen(mrec_bf16_round(x[i]));
}

/* The channels-last references against the NCHW fp32 ones on the same (bf16-exact) values: the layout
 * change, the channels' padding, a convolution with its bias, residual and ReLU within one bf16 rounding
 * of the fp32 result (sums in another order), max pooling and the mean bit for bit or to float rounding;
 * and the entries' checks. */
static void channels_last_case(mrec_conv2d_shape s, int C_pad, int with_bias) {
    int Ho = mrec_conv2d_out_h(&s), Wo = mrec_conv2d_out_w(&s), HW = s.H * s.W, HWo = Ho * Wo;
    int64_t ni = (int64_t)s.N * s.C_in * HW, nw = (int64_t)s.C_out * s.C_in * s.KH * s.KW, no = (int64_t)s.N * s.C_out * HWo;
    float *x = randv(ni, -2, 2), *w = randv(nw, -0.5f, 0.5f), *b = with_bias ? randv(s.C_out, -1, 1) : NULL;
    round_bf16_inplace(x, ni);
    /* the channels-last weight: (C_out, KH, KW, C_pad), the padding zero; fp32 values the op rounds itself */
    int kk = s.KH * s.KW;
    float *wcl = calloc((size_t)s.C_out * kk * C_pad, sizeof *wcl);
    for (int o = 0; o < s.C_out; o++)
        for (int c = 0; c < s.C_in; c++)
            for (int r = 0; r < kk; r++) wcl[((size_t)o * kk + r) * C_pad + c] = w[((size_t)o * s.C_in + c) * kk + r];
    float *wr = copyv(w, nw), *ref = malloc(sizeof(float) * (size_t)no), *prev = randv(no, -1, 1);
    round_bf16_inplace(wr, nw), round_bf16_inplace(prev, no);
    uint16_t *xcl = malloc(2 * (size_t)s.N * HW * C_pad), *ycl = malloc(2 * (size_t)no);
    mrec_nhwc_bf16_from_nchw_ref(xcl, x, s.N, s.C_in, HW, C_pad);
    int layout = 1;
    for (int n = 0; n < s.N; n++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C_pad; c++)
                layout &= mrec_bf16_widen(xcl[((size_t)n * HW + p) * C_pad + c]) == (c < s.C_in ? x[((size_t)n * s.C_in + c) * HW + p] : 0.0f);
    t_check(layout, "nhwc_bf16_from_nchw: %d channels padded to %d, %d x %d", s.C_in, C_pad, s.H, s.W);
    mrec_conv2d_shape scl = s;
    scl.C_in = C_pad;
    mrec_conv2d_ref(ref, x, wr, b, &s);
    for (int beta = 0; beta <= 1; beta++)
        for (int relu = 0; relu <= 1; relu++) {
            for (int n = 0; n < s.N; n++) /* the old output, channels-last, for the residual */
                for (int c = 0; c < s.C_out; c++)
                    for (int p = 0; p < HWo; p++)
                        ycl[((size_t)n * HWo + p) * s.C_out + c] = mrec_bf16_round(prev[((size_t)n * s.C_out + c) * HWo + p]);
            mrec_conv2d_nhwc_bf16_ref(ycl, xcl, wcl, b, (float)beta, relu, &scl);
            double worst = 0;
            for (int n = 0; n < s.N; n++)
                for (int c = 0; c < s.C_out; c++)
                    for (int p = 0; p < HWo; p++) {
                        size_t i = ((size_t)n * s.C_out + c) * HWo + p;
                        float want = ref[i] + (beta ? prev[i] : 0.0f);
                        want = relu ? (want > 0 ? want : 0.0f) : want;
                        double err = fabs(mrec_bf16_widen(ycl[((size_t)n * HWo + p) * s.C_out + c]) - want);
                        worst = fmax(worst, err / (fabs(want) + 1e-3));
                    }
            t_check(worst <= 1.0 / 256, "conv2d_nhwc_bf16 %d->%d (padded %d) %dx%d/%d on %dx%d, bias %d, beta %d, relu %d: "
                    "relative error %.3g (one bf16 rounding: 2^-8)", s.C_in, s.C_out, C_pad, s.KH, s.KW, s.stride_h, s.H, s.W,
                    with_bias, beta, relu, worst);
        }
    /* max pooling (ResNet's 3x3/2) and the mean over the planes, of the last output */
    mrec_pool2d_shape ps = {s.N, s.C_out, Ho, Wo, 3, 3, 2, 2, 1, 1, 1};
    int Hp = mrec_pool2d_out_h(&ps), Wp = mrec_pool2d_out_w(&ps);
    if (Hp > 0 && Wp > 0) {
        float *plain = malloc(sizeof(float) * (size_t)no), *pooled = malloc(sizeof(float) * (size_t)s.N * s.C_out * Hp * Wp);
        uint16_t *pcl = malloc(2 * (size_t)s.N * s.C_out * Hp * Wp);
        for (int n = 0; n < s.N; n++)
            for (int c = 0; c < s.C_out; c++)
                for (int p = 0; p < HWo; p++)
                    plain[((size_t)n * s.C_out + c) * HWo + p] = mrec_bf16_widen(ycl[((size_t)n * HWo + p) * s.C_out + c]);
        mrec_maxpool2d_ref(pooled, plain, &ps);
        mrec_maxpool2d_nhwc_bf16_ref(pcl, ycl, &ps);
        int same = 1;
        for (int n = 0; n < s.N; n++)
            for (int c = 0; c < s.C_out; c++)
                for (int p = 0; p < Hp * Wp; p++)
                    same &= mrec_bf16_widen(pcl[((size_t)n * Hp * Wp + p) * s.C_out + c]) == pooled[((size_t)n * s.C_out + c) * Hp * Wp + p];
        t_check(same, "maxpool2d_nhwc_bf16 on %dx%d x %d: the values of the NCHW max pooling", Ho, Wo, s.C_out);
        float *mean = malloc(sizeof(float) * (size_t)s.N * s.C_out), *avg = malloc(sizeof(float) * (size_t)s.N * s.C_out);
        mrec_pool2d_shape gap = {s.N, s.C_out, Ho, Wo, Ho, Wo, 1, 1, 0, 0, 1};
        mrec_avgpool2d_ref(avg, plain, &gap);
        mrec_mean_hw_nhwc_bf16_ref(mean, ycl, s.N, HWo, s.C_out);
        t_allclose("mean_hw_nhwc_bf16 against the NCHW average pool", avg, mean, (int64_t)s.N * s.C_out, 1e-6, 1e-6);
        free(plain), free(pooled), free(pcl), free(mean), free(avg);
    }
    free(x), free(w), free(b), free(wcl), free(wr), free(ref), free(prev), free(xcl), free(ycl);
}

/* The bf16-activation references against the fp32 ones on the same (bf16-exact) values: the LayerNorm's
 * fp32 output to float rounding and its bf16 copy that output rounded; a product's fp32 output to float
 * rounding, its bf16 output the fp32 one (with the bias rounded) rounded, an activation applied to those
 * values and rounded; attention on packed rows within one bf16 rounding of the fp32 attention's, padded
 * with a mask and a head bias, and sequences end to end; and the entries' argument checks. */
static void test_bf16_activations(void) {
    int R = 11, C = 24, N = 20, K = 24;
    float *a = randv((int64_t)R * C, -2, 2), *b = randv((int64_t)R * C, -2, 2), *w = randv(C, 0.5f, 1.5f), *bias = randv(C, -1, 1);
    float *want = randv((int64_t)R * C, 0, 0), *sum = randv((int64_t)R * C, 0, 0), *got = randv((int64_t)R * C, 0, 0);
    uint16_t *got16 = malloc(2 * (size_t)R * C);
    for (int with_b = 0; with_b < 2; with_b++) {
        for (int64_t i = 0; i < (int64_t)R * C; i++) sum[i] = with_b ? a[i] + b[i] : a[i];
        mrec_layernorm_ref(want, sum, w, bias, 1e-5f, R, C);
        mrec_layernorm_bf16_ref(got, got16, a, with_b ? b : NULL, w, bias, 1e-5f, R, C);
        t_allclose(with_b ? "layernorm_bf16 (a + b): the fp32 output" : "layernorm_bf16: the fp32 output", want, got, (int64_t)R * C,
                   1e-5, 1e-5);
        int same = 1;
        for (int64_t i = 0; i < (int64_t)R * C; i++) same &= got16[i] == mrec_bf16_round(got[i]);
        t_check(same, "layernorm_bf16%s: the bf16 output is the fp32 one rounded", with_b ? " (a + b)" : "");
    }
    /* in place on a, with no fp32 output asked for */
    float *a2 = copyv(a, (int64_t)R * C);
    mrec_layernorm_bf16_ref(a2, NULL, a2, b, w, bias, 1e-5f, R, C);
    mrec_layernorm_bf16_ref(got, NULL, a, b, w, bias, 1e-5f, R, C);
    t_check(!memcmp(a2, got, sizeof(float) * (size_t)R * C), "layernorm_bf16 in place on a: the values out of place");

    /* products */
    float *x = randv((int64_t)R * K, -1, 1), *W = randv((int64_t)N * K, -0.5f, 0.5f), *lb = randv(N, -1, 1);
    round_bf16_inplace(x, (int64_t)R * K);
    uint16_t *x16 = malloc(2 * (size_t)R * K), *y16 = malloc(2 * (size_t)R * (N + 3));
    for (int64_t i = 0; i < (int64_t)R * K; i++) x16[i] = mrec_bf16_round(x[i]);
    float *Wr = copyv(W, (int64_t)N * K), *lbr = copyv(lb, N);
    round_bf16_inplace(Wr, (int64_t)N * K), round_bf16_inplace(lbr, N);
    float *ref = randv((int64_t)R * N, 0, 0), *prev = randv((int64_t)R * (N + 3), -1, 1), *y = copyv(prev, (int64_t)R * (N + 3));
    mrec_gemm_ref(ref, x, Wr, lb, 1, 0, 0, 1, R, N, K, K, K, N);
    mrec_linear_bf16_ref(y, 0, x16, W, lb, MREC_GEMM_NO_ACT, 1.0f, R, N, K, N + 3); /* beta 1, a wider row: ldc */
    double worst = 0;
    for (int i = 0; i < R; i++)
        for (int j = 0; j < N + 3; j++) {
            float want_ij = j < N ? ref[(size_t)i * N + j] + prev[(size_t)i * (N + 3) + j] : prev[(size_t)i * (N + 3) + j];
            worst = fmax(worst, fabs(y[(size_t)i * (N + 3) + j] - want_ij));
        }
    t_check(worst <= 1e-5, "linear_bf16, fp32 out, beta 1, ldc %d: off the fp32 product of the rounded values by %.3g", N + 3, worst);
    mrec_gemm_ref(ref, x, Wr, lbr, 1, 0, 0, 1, R, N, K, K, K, N);
    mrec_act acts[3] = {(mrec_act)MREC_GEMM_NO_ACT, MREC_ACT_GELU_ERF, MREC_ACT_RELU};
    for (int ai = 0; ai < 3; ai++) {
        mrec_linear_bf16_ref(y16, 1, x16, W, lb, acts[ai], 0.0f, R, N, K, N);
        int off = 0;
        for (int64_t i = 0; i < (int64_t)R * N; i++) {
            uint16_t once = mrec_bf16_round(ref[i]);
            float after = mrec_bf16_widen(once);
            if (ai) mrec_activation_ref(&after, &after, acts[ai], 0, 1);
            uint16_t want16 = ai ? mrec_bf16_round(after) : once;
            off += abs((int)y16[i] - (int)want16) > 1; /* the double sum may round the other way at a tie */
        }
        t_check(!off, "linear_bf16, bf16 out, activation %d: %d values more than one bf16 step from the rounded fp32 product", ai, off);
    }
    uint16_t *act16 = malloc(2 * (size_t)R * N);
    memcpy(act16, y16, 2 * (size_t)R * N);
    mrec_activation_bf16_ref(act16, MREC_ACT_QUICK_GELU, (int64_t)R * N);
    int same = 1;
    for (int64_t i = 0; i < (int64_t)R * N; i++) {
        float v = mrec_bf16_widen(y16[i]);
        mrec_activation_ref(&v, &v, MREC_ACT_QUICK_GELU, 0, 1);
        same &= act16[i] == mrec_bf16_round(v);
    }
    t_check(same, "activation_bf16: the fp32 activation of the widened values, rounded");

    /* attention: packed rows (ld 3 H) against the fp32 attention on the widened values */
    int B = 3, T = 13, nh = 2, dh = 6, H = nh * dh, ld = 3 * H;
    int64_t rows = (int64_t)B * T;
    float *qkv = randv(rows * ld, -1.5f, 1.5f), *hb = randv((int64_t)nh * T * T, -1, 1), *mb = randv(rows, 0, 0);
    round_bf16_inplace(qkv, rows * ld);
    for (int bb = 0; bb < B; bb++)
        for (int t = 0; t < T; t++) mb[bb * T + t] = t >= T - 2 * bb ? -FLT_MAX : 0.0f; /* sequence b ends 2 b early */
    uint16_t *qkv16 = malloc(2 * (size_t)rows * ld), *o16 = malloc(2 * (size_t)rows * H);
    for (int64_t i = 0; i < rows * ld; i++) qkv16[i] = mrec_bf16_round(qkv[i]);
    float *q = randv(rows * H, 0, 0), *k = randv(rows * H, 0, 0), *v = randv(rows * H, 0, 0), *o = randv(rows * H, 0, 0);
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < H; c++)
            q[r * H + c] = qkv[r * ld + c], k[r * H + c] = qkv[r * ld + H + c], v[r * H + c] = qkv[r * ld + 2 * H + c];
    float *scratch = randv((int64_t)mrec_attention_scratch_floats(B, T, nh, dh) + (int64_t)mrec_attention_varlen_scratch_floats(T, nh, dh),
                           0, 0);
    for (int with = 0; with < 4; with++) {
        const float *mask = with & 1 ? mb : NULL, *head = with & 2 ? hb : NULL;
        mrec_attention_cpu(o, q, k, v, mask, head, 0.4f, B, T, nh, dh, scratch, 0, pools[0]);
        mrec_attention_bf16_ref(o16, qkv16, qkv16 + H, qkv16 + 2 * H, ld, mask, head, NULL, 0.4f, B, T, nh, dh);
        worst = 0;
        for (int64_t i = 0; i < rows * H; i++) worst = fmax(worst, fabs(mrec_bf16_widen(o16[i]) - o[i]) / (fabs(o[i]) + 1e-2));
        t_check(worst <= 1.0 / 256, "attention_bf16 padded, mask %d, head bias %d: relative error %.3g (one bf16 rounding: 2^-8)",
                with & 1, with >> 1, worst);
    }
    int starts[4] = {0, 13, 14, 22}; /* lengths 13, 1, 8 */
    mrec_attention_varlen_cpu(o, q, k, v, hb, 0.4f, starts, 3, T, nh, dh, scratch, 0, pools[0]);
    mrec_attention_bf16_ref(o16, qkv16, qkv16 + H, qkv16 + 2 * H, ld, NULL, hb, starts, 0.4f, 3, T, nh, dh);
    worst = 0;
    for (int64_t i = 0; i < (int64_t)starts[3] * H; i++) worst = fmax(worst, fabs(mrec_bf16_widen(o16[i]) - o[i]) / (fabs(o[i]) + 1e-2));
    t_check(worst <= 1.0 / 256, "attention_bf16 over sequences end to end, head bias: relative error %.3g", worst);

    /* the entries refuse what the references do not define */
    mrec_context_options opt = mrec_context_defaults();
    opt.device = MREC_WANT_CPU, opt.n_threads = 1;
    mrec_context *cpu = NULL;
    if (!mrec_context_create(&cpu, &opt)) {
        t_check(mrec_linear_bf16(cpu, y, 0, x16, W, lb, MREC_ACT_RELU, 0.0f, R, N, K, N) == MREC_ERR_ARG,
                "linear_bf16: an activation on an fp32 output is refused");
        t_check(mrec_linear_bf16(cpu, y16, 1, x16, W, lb, MREC_GEMM_NO_ACT, 1.0f, R, N, K, N) == MREC_ERR_ARG,
                "linear_bf16: beta on a bf16 output is refused");
        t_check(mrec_attention_bf16(cpu, o16, qkv16, qkv16 + H, qkv16 + 2 * H, ld, mb, NULL, starts, NULL, 0.4f, 3, T, nh, dh) ==
                    MREC_ERR_ARG,
                "attention_bf16: host starts without device starts (and with a mask) are refused");
        t_check(!mrec_bf16_activations_native(cpu), "bf16 activations: not the route of an fp32 context");
        /* EfficientNet's bf16 handoff: a bf16 context's ops */
        mrec_conv2d_shape cs = {1, 2, 3, 3, 2, 1, 1, 1, 1, 0, 0, 1};
        mrec_depthwise_shape ds = {1, 2, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1};
        float cw[4] = {1, 0, 0, 1}, dw[18] = {0}, dout[18], means[2];
        uint16_t planes[18] = {0};
        t_check(!mrec_bf16_planes_native(cpu), "bf16 planes: not the route of an fp32 context");
        t_check(mrec_conv2d_to_bf16(cpu, planes, x, cw, NULL, MREC_ACT_SILU, &cs) == MREC_ERR_UNSUPPORTED,
                "conv2d to bf16: refused in an fp32 context");
        t_check(mrec_depthwise_conv2d_act_from_bf16(cpu, dout, planes, dw, NULL, MREC_ACT_SILU, means, &ds) == MREC_ERR_UNSUPPORTED,
                "depthwise conv from bf16: refused in an fp32 context");
        mrec_context_destroy(cpu);
    }
    opt.precision = MREC_PREC_BF16;
    if (!mrec_context_create(&cpu, &opt)) {
        t_check(mrec_bf16_activations_native(cpu) == mrec_cpu_has_bf16(),
                "bf16 activations: the route of a bf16 CPU context exactly where the CPU has AVX-512 BF16 (AMX too)");
        t_check(mrec_bf16_planes_native(cpu) == (mrec_cpu_has_bf16() && mrec_pool_simd(cpu->pool) < MREC_SIMD_AMX),
                "bf16 planes: the route of a bf16 CPU context where the CPU has AVX-512 BF16 and no AMX");
        mrec_conv2d_shape cs = {1, 2, 3, 3, 2, 1, 1, 1, 1, 0, 0, 1};
        mrec_depthwise_shape bad = {1, 2, 2, 2, 5, 5, 1, 1, 0, 0, 0, 0}; /* no output */
        float cw[4] = {1, 0, 0, 1}, dw[50] = {0}, dout[8];
        uint16_t planes[18] = {0};
        t_check(mrec_conv2d_to_bf16(cpu, planes, x, cw, NULL, 99, &cs) == MREC_ERR_ARG, "conv2d to bf16: an unknown activation");
        t_check(mrec_depthwise_conv2d_act_from_bf16(cpu, dout, planes, dw, NULL, MREC_ACT_SILU, NULL, &bad) == MREC_ERR_ARG,
                "depthwise conv from bf16: a shape with no output: %s", mrec_error_detail());
        mrec_context_destroy(cpu);
    }
    free(a), free(b), free(w), free(bias), free(want), free(sum), free(got), free(got16), free(a2);
    free(x), free(W), free(lb), free(x16), free(y16), free(Wr), free(lbr), free(ref), free(prev), free(y), free(act16);
    free(qkv), free(hb), free(mb), free(qkv16), free(o16), free(q), free(k), free(v), free(o), free(scratch);
}

/* ---- the bf16-activation ops on the CPU (encoder_bf16.c) against their references ---- */

/* LayerNorm: the reference's double arithmetic in another order of the sums, so the fp32 output within
 * 2^-22 of its size (a few fp32 steps) and the bf16 one the fp32 one rounded (or its neighbour at a tie). */
static void layernorm_bf16_cpu_case(int R, int C, int with_b, int affine) {
    int64_t n = (int64_t)R * C;
    float *a = randv(n, -3, 5), *b = with_b ? randv(n, -2, 2) : NULL, *w = affine ? randv(C, 0.5f, 1.5f) : NULL;
    float *bias = affine ? randv(C, -1, 1) : NULL, *want = randv(n, 0, 0), *got = randv(n, 0, 0);
    uint16_t *want16 = malloc(2 * (size_t)n), *got16 = malloc(2 * (size_t)n);
    mrec_layernorm_bf16_ref(want, want16, a, b, w, bias, 1e-5f, R, C);
    for (int p = 0; p < n_pools; p++) {
        if (mrec_pool_simd(pools[p]) < MREC_SIMD_AVX512) continue;
        mrec_layernorm_bf16_cpu(got, got16, a, b, w, bias, 1e-5f, R, C, pools[p]);
        double worst = 0;
        int off = 0;
        for (int64_t i = 0; i < n; i++) {
            worst = fmax(worst, fabs(got[i] - want[i]) / (fabs(want[i]) + 1e-3));
            off += got16[i] != mrec_bf16_round(got[i]) || abs((int)got16[i] - (int)want16[i]) > 1;
        }
        t_check(worst <= 0x1p-22 && !off, "layernorm_bf16_cpu %s %dx%d%s%s: relative error %.3g, %d bf16 outputs off", pool_name(pools[p]), R,
                C, with_b ? ", a + b" : "", affine ? ", affine" : "", worst, off);
    }
    /* in place on b, only the bf16 output */
    float *b2 = with_b ? copyv(b, n) : NULL;
    if (b2) {
        mrec_layernorm_bf16_cpu(b2, NULL, a, b2, w, bias, 1e-5f, R, C, pools[n_pools - 1]);
        mrec_layernorm_bf16_cpu(got, NULL, a, b, w, bias, 1e-5f, R, C, pools[n_pools - 1]);
        t_check(!memcmp(b2, got, sizeof(float) * (size_t)n), "layernorm_bf16_cpu %dx%d in place on b: the values out of place", R, C);
    }
    free(a), free(b), free(w), free(bias), free(want), free(got), free(want16), free(got16), free(b2);
}

/* A product: fp32 sums in another order than the reference's doubles, so an fp32 output within 2^-16 of the
 * products' magnitude, a bf16 one the same value or its neighbour (and through an activation the image of
 * either), or, where the sum cancels, a bf16 value within the fp32 sums' error bound of the exact sum. Packed once in a pack set or on each call, with the same bits; the bits do not depend on the
 * thread count (AMX's tiles sum in another order than VDPBF16PS: the bits are compared within a SIMD level). */
static void linear_bf16_cpu_case(int M, int N, int K) {
    int64_t nx = (int64_t)M * K, ldc = N + 5;
    float *x = randv(nx, -1, 1), *W = randv((int64_t)N * K, -0.5f, 0.5f), *lb = randv(N, -1, 1), *prev = randv(M * ldc, -1, 1);
    uint16_t *x16 = malloc(2 * (size_t)nx), *ref16 = malloc(2 * (size_t)(M * ldc)), *got16 = malloc(2 * (size_t)(M * ldc));
    uint16_t *first16 = NULL;
    float *ref = randv(M * ldc, 0, 0), *got = randv(M * ldc, 0, 0), *first = NULL;
    for (int64_t i = 0; i < nx; i++) x16[i] = mrec_bf16_round(x[i]);
    double bound = 0x1p-16 * K; /* |x| <= 1, |w| <= 0.5: the sums' magnitude is at most K / 2 */
    mrec_packs *packs = NULL;
    t_check(mrec_packs_create(&packs, W, (int64_t)N * K) == MREC_OK, "linear_bf16: a pack set");
    mrec_act acts[4] = {(mrec_act)MREC_GEMM_NO_ACT, MREC_ACT_GELU_ERF, MREC_ACT_QUICK_GELU, MREC_ACT_GELU_TANH};
    for (int p = 0; p < n_pools; p++) {
        if (mrec_pool_simd(pools[p]) < MREC_SIMD_AVX512) continue;
        if (p && mrec_pool_simd(pools[p]) != mrec_pool_simd(pools[p - 1])) { /* a new SIMD level: new bits */
            free(first), free(first16);
            first = NULL, first16 = NULL;
        }
        for (int packed = 0; packed < 2; packed++) {
            mrec_packs *pk = packed ? packs : NULL;
            char what[160];
            for (int beta = 0; beta < 2; beta++)
                for (int with_bias = 0; with_bias < 2; with_bias++) {
                    snprintf(what, sizeof what, "linear_bf16_cpu %s %dx%dx%d%s, fp32 out, beta %d, bias %d", pool_name(pools[p]), M, N, K,
                             packed ? ", packed" : "", beta, with_bias);
                    memcpy(ref, prev, sizeof(float) * (size_t)(M * ldc)), memcpy(got, prev, sizeof(float) * (size_t)(M * ldc));
                    mrec_linear_bf16_ref(ref, 0, x16, W, with_bias ? lb : NULL, MREC_GEMM_NO_ACT, (float)beta, M, N, K, (int)ldc);
                    if (!t_status(mrec_linear_bf16_cpu(got, 0, x16, W, with_bias ? lb : NULL, MREC_GEMM_NO_ACT, (float)beta, M, N, K,
                                                       (int)ldc, pk, pools[p]),
                                  MREC_OK, "%s", what))
                        continue;
                    double worst = 0;
                    for (int64_t i = 0; i < M * ldc; i++) worst = fmax(worst, fabs(got[i] - ref[i]));
                    t_check(worst <= bound, "%s: off the reference by %.3g (bound %.3g), the columns past N untouched", what, worst, bound);
                    if (beta && with_bias) {
                        if (!first) first = copyv(got, M * ldc);
                        else t_check(!memcmp(first, got, sizeof(float) * (size_t)(M * ldc)), "%s: bits differ from another pool", what);
                    }
                }
            for (int ai = 0; ai < 4; ai++) {
                snprintf(what, sizeof what, "linear_bf16_cpu %s %dx%dx%d%s, bf16 out, activation %d", pool_name(pools[p]), M, N, K,
                         packed ? ", packed" : "", ai);
                for (int64_t i = 0; i < M * ldc; i++) ref16[i] = got16[i] = mrec_bf16_round(prev[i]);
                mrec_linear_bf16_ref(ref16, 1, x16, W, lb, acts[ai], 0.0f, M, N, K, (int)ldc);
                if (!t_status(mrec_linear_bf16_cpu(got16, 1, x16, W, lb, acts[ai], 0.0f, M, N, K, (int)ldc, pk, pools[p]), MREC_OK, "%s",
                              what))
                    continue;
                /* the sum before its activation, from the reference without one, either neighbour allowed */
                uint16_t *pre = malloc(2 * (size_t)(M * ldc));
                memcpy(pre, got16, 2 * (size_t)(M * ldc));
                mrec_linear_bf16_ref(pre, 1, x16, W, lb, MREC_GEMM_NO_ACT, 0.0f, M, N, K, (int)ldc);
                const uint16_t *table = ai ? mrec_bf16_act_table(acts[ai]) : NULL;
                int off = 0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < ldc; j++) {
                        size_t at = (size_t)i * ldc + j;
                        if (j >= N) {
                            off += got16[at] != mrec_bf16_round(prev[at]);
                            continue;
                        }
                        int ok = 0;
                        for (int d = -1; d <= 1; d++) {
                            uint16_t v = (uint16_t)(pre[at] + d);
                            ok |= got16[at] == (table ? table[v] : v);
                        }
                        if (!ok) { /* a sum that cancels: any bf16 value within the fp32 sums' bound of the exact sum */
                            double sum = mrec_bf16_widen(mrec_bf16_round(lb[j])), mag = fabs(sum);
                            for (int k = 0; k < K; k++) {
                                double t = (double)mrec_bf16_widen(x16[(size_t)i * K + k]) *
                                           mrec_bf16_widen(mrec_bf16_round(W[(size_t)j * K + k]));
                                sum += t, mag += fabs(t);
                            }
                            double e = (K + 2) * 0x1p-24 * mag;
                            for (int v = 0; v < 65536 && !ok; v++)
                                ok = fabs(mrec_bf16_widen((uint16_t)v) - sum) <= e && got16[at] == (table ? table[v] : v);
                        }
                        off += !ok;
                    }
                t_check(!off, "%s: %d values neither the reference's nor a neighbour's image", what, off);
                free(pre);
                if (ai == 1) {
                    if (!first16) first16 = memcpy(malloc(2 * (size_t)(M * ldc)), got16, 2 * (size_t)(M * ldc));
                    else t_check(!memcmp(first16, got16, 2 * (size_t)(M * ldc)), "%s: bits differ from another pool", what);
                }
            }
        }
    }
    mrec_packs_free(packs);
    free(x), free(W), free(lb), free(prev), free(x16), free(ref16), free(got16), free(first16), free(ref), free(got), free(first);
}

/* Attention: fp32 scores, then probabilities rounded to bf16 for the product with V, so an output within
 * 2^-7 of the larger of its size and the head's largest |v| (a bf16 step of each weight, then the output's
 * rounding). Padded with a mask and a head bias, and end to end. */
static void attention_bf16_cpu_case(int B, int T, int nh, int dh) {
    int H = nh * dh, ld = 3 * H;
    int64_t rows = (int64_t)B * T;
    float *qkv = randv(rows * ld, -2, 2), *hb = randv((int64_t)nh * T * T, -1, 1), *mb = randv(rows, 0, 0);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) mb[b * T + t] = t >= T - 3 * b ? -FLT_MAX : 0.0f; /* sequence b ends 3 b early */
    uint16_t *qkv16 = malloc(2 * (size_t)rows * ld), *ref = malloc(2 * (size_t)rows * H), *got = malloc(2 * (size_t)rows * H);
    double vmax = 0;
    for (int64_t i = 0; i < rows * ld; i++) qkv16[i] = mrec_bf16_round(qkv[i]), vmax = fmax(vmax, fabs(qkv[i]));
    int starts[5] = {0, T, T + 1, 2 * T - 3, 2 * T + 4}, S = B < 4 ? B : 4; /* lengths T, 1, T - 4, 7 */
    if (S == 4 && starts[4] > rows) S = 3;
    for (int p = 0; p < n_pools; p++) {
        if (mrec_pool_simd(pools[p]) < MREC_SIMD_AVX512) continue;
        for (int with = 0; with < 5; with++) {
            const float *mask = with == 1 || with == 3 ? mb : NULL, *head = with >= 2 ? hb : NULL;
            const int32_t *st = with == 4 ? starts : NULL;
            int n = st ? S : B;
            int64_t out_rows = st ? starts[S] : rows;
            memset(ref, 0, 2 * (size_t)rows * H), memset(got, 0, 2 * (size_t)rows * H);
            mrec_attention_bf16_ref(ref, qkv16, qkv16 + H, qkv16 + 2 * H, ld, mask, head, st, 0.3f, n, T, nh, dh);
            mrec_attention_bf16_cpu(got, qkv16, qkv16 + H, qkv16 + 2 * H, ld, mask, head, st, 0.3f, n, T, nh, dh, pools[p]);
            double worst = 0;
            for (int64_t i = 0; i < out_rows * H; i++) {
                double r = mrec_bf16_widen(ref[i]);
                worst = fmax(worst, fabs(mrec_bf16_widen(got[i]) - r) / fmax(fabs(r), vmax));
            }
            t_check(worst <= 1.0 / 128, "attention_bf16_cpu %s B=%d T=%d %dx%d, %s%s%s: error %.3g of max(|out|, max |v|) (bound 2^-7)",
                    pool_name(pools[p]), n, T, nh, dh, st ? "end to end" : "padded", mask ? ", mask" : "", head ? ", head bias" : "", worst);
        }
    }
    free(qkv), free(hb), free(mb), free(qkv16), free(ref), free(got);
}

static void test_bf16_activations_cpu(void) {
    if (!mrec_cpu_has_bf16()) {
        t_skip("bf16 activations on the CPU: this CPU has no AVX-512 BF16");
        return;
    }
    layernorm_bf16_cpu_case(7, 24, 0, 1);
    layernorm_bf16_cpu_case(37, 389, 1, 1); /* past 16s */
    layernorm_bf16_cpu_case(5, 768, 1, 0);  /* no weight and bias */
    linear_bf16_cpu_case(1, 20, 24);        /* a single row */
    linear_bf16_cpu_case(37, 300, 64);      /* two column blocks, 8-row panels */
    linear_bf16_cpu_case(130, 48, 1030);    /* three k blocks, two row blocks */
    linear_bf16_cpu_case(290, 330, 1088);   /* with AMX read in place: two row blocks, a short last strip, two k blocks */
    linear_bf16_cpu_case(64, 40, 32);       /* whole strips only, one tile deep, a short last panel */
    linear_bf16_cpu_case(5, 3, 2);
    /* every bf16 value through each activation: the reference's bits */
    uint16_t *all = malloc(2 * 65536), *want = malloc(2 * 65536);
    for (int act = MREC_ACT_GELU_ERF; act <= MREC_ACT_TANH; act++) {
        for (int i = 0; i < 65536; i++) all[i] = want[i] = (uint16_t)i;
        mrec_activation_bf16_ref(want, (mrec_act)act, 65536);
        t_status(mrec_activation_bf16_cpu(all, (mrec_act)act, 65535, pools[n_pools - 1]), MREC_OK, "activation_bf16_cpu %d", act);
        t_check(!memcmp(all, want, 2 * 65535) && all[65535] == 65535,
                "activation_bf16_cpu %d over every bf16 value: the reference's bits, nothing written past n", act);
    }
    t_check(mrec_bf16_act_table((mrec_act)99) == NULL, "an unknown activation has no table");
    free(all), free(want);
    attention_bf16_cpu_case(3, 13, 2, 6);   /* odd lengths, a head narrower than 16 */
    attention_bf16_cpu_case(4, 40, 12, 32); /* MiniLM's heads */
    attention_bf16_cpu_case(2, 70, 3, 64);  /* BERT's heads, keys over five panels */
    attention_bf16_cpu_case(2, 197, 2, 64); /* ViT-B/16's: with AMX, six whole strips of queries read in place and a short one */
    attention_bf16_cpu_case(2, 50, 2, 80);  /* with AMX, a head of whole pairs but not whole tiles: copied */
}

/* The CPU's channels-last ops against the references, on every pool with AVX-512 BF16: the convolution
 * direct (no pack set) and, where a pack set is given, as Winograd for a 3x3 stride-1 one, with a bias, a
 * residual and the ReLU; max pooling and the mean bit for bit. Direct, the sums are fp32 in another order
 * than the reference's doubles, so an output may round to the neighbouring bf16 value: within 2^-7 of its
 * size. Winograd rounds the transformed tiles and filters instead (conv_bf16_case's bound): the error's RMS
 * within 2^-6 of the outputs'. The bits do not depend on the thread count. */
static void nhwc_cpu_case(mrec_conv2d_shape s, int with_bias) {
    int Ho = mrec_conv2d_out_h(&s), Wo = mrec_conv2d_out_w(&s);
    int64_t ni = (int64_t)s.N * s.H * s.W * s.C_in, nw = (int64_t)s.C_out * s.KH * s.KW * s.C_in, no = (int64_t)s.N * Ho * Wo * s.C_out;
    float *x = randv(ni, -2, 2), *w = randv(nw, -0.5f, 0.5f), *b = with_bias ? randv(s.C_out, -1, 1) : NULL, *prev = randv(no, -1, 1);
    uint16_t *x16 = malloc(2 * (size_t)ni), *ref = malloc(2 * (size_t)no), *got = malloc(2 * (size_t)no), *first[2] = {NULL, NULL};
    for (int64_t i = 0; i < ni; i++) x16[i] = mrec_bf16_round(x[i]);
    int winograd = s.KH == 3 && s.KW == 3 && s.stride_h == 1 && s.stride_w == 1 && s.C_in >= 16 && s.C_out >= 16 &&
                   (Ho + 1) / 2 * ((Wo + 1) / 2) > MREC_GEMM_FEW_ROWS;
    mrec_packs *packs = NULL;
    t_check(mrec_packs_create(&packs, w, nw) == MREC_OK, "nhwc: a pack set");
    for (int p = 0; p < n_pools; p++) {
        if (mrec_pool_simd(pools[p]) < MREC_SIMD_AVX512) continue;
        for (int packed = 0; packed < 2; packed++)
            for (int beta = 0; beta <= 1; beta++)
                for (int relu = 0; relu <= 1; relu++) {
                    char what[200];
                    snprintf(what, sizeof what, "conv2d_nhwc_bf16_cpu %s N=%d %d->%d %dx%d/%d on %dx%d%s, beta %d, relu %d", pool_name(pools[p]),
                             s.N, s.C_in, s.C_out, s.KH, s.KW, s.stride_h, s.H, s.W, packed && winograd ? ", Winograd" : packed ? ", packed" : "",
                             beta, relu);
                    for (int64_t i = 0; i < no; i++) ref[i] = got[i] = mrec_bf16_round(prev[i]);
                    mrec_conv2d_nhwc_bf16_ref(ref, x16, w, b, (float)beta, relu, &s);
                    if (!t_status(mrec_conv2d_nhwc_bf16_cpu(got, x16, w, b, (float)beta, relu, &s, packed ? packs : NULL, pools[p]), MREC_OK,
                                  "%s", what))
                        continue;
                    double worst = 0, err = 0, size = 0;
                    for (int64_t i = 0; i < no; i++) {
                        double r = mrec_bf16_widen(ref[i]), g = mrec_bf16_widen(got[i]);
                        worst = fmax(worst, fabs(g - r) / (fabs(r) + 1e-3)), err += (g - r) * (g - r), size += r * r;
                    }
                    if (packed && winograd)
                        t_check(err <= 0x1p-12 * size, "%s: error RMS %.3g of the outputs' RMS (at most 2^-6)", what, sqrt(err / size));
                    else
                        t_check(worst <= 1.0 / 128, "%s: relative error %.3g (one bf16 step: 2^-7)", what, worst);
                    if (beta && relu) {
                        if (!first[packed]) first[packed] = memcpy(malloc(2 * (size_t)no), got, 2 * (size_t)no);
                        else t_check(!memcmp(first[packed], got, 2 * (size_t)no), "%s: bits differ from another pool", what);
                    }
                }
    }
    /* ResNet's max pooling and the mean over the planes, of the last output */
    mrec_pool2d_shape ps = {s.N, s.C_out, Ho, Wo, 3, 3, 2, 2, 1, 1, 1};
    int Hp = mrec_pool2d_out_h(&ps), Wp = mrec_pool2d_out_w(&ps);
    got[0] = 0x7fc0, got[no - 1] = 0xff80; /* a NaN and -inf among them */
    if (Hp > 0 && Wp > 0) {
        int64_t np = (int64_t)s.N * Hp * Wp * s.C_out;
        uint16_t *pr = malloc(2 * (size_t)np), *pg = malloc(2 * (size_t)np);
        mrec_maxpool2d_nhwc_bf16_ref(pr, got, &ps);
        mrec_maxpool2d_nhwc_bf16_cpu(pg, got, &ps, pools[n_pools - 1]);
        t_check(!memcmp(pr, pg, 2 * (size_t)np), "maxpool2d_nhwc_bf16_cpu on %dx%d x %d: the reference's bits", Ho, Wo, s.C_out);
        free(pr), free(pg);
    }
    float *mr = malloc(sizeof(float) * (size_t)s.N * s.C_out), *mg = malloc(sizeof(float) * (size_t)s.N * s.C_out);
    got[0] = 0;
    mrec_mean_hw_nhwc_bf16_ref(mr, got, s.N, Ho * Wo, s.C_out);
    mrec_mean_hw_nhwc_bf16_cpu(mg, got, s.N, Ho * Wo, s.C_out);
    t_check(!memcmp(mr, mg, sizeof(float) * (size_t)s.N * s.C_out), "mean_hw_nhwc_bf16_cpu over %d pixels x %d: the reference's bits",
            Ho * Wo, s.C_out);
    mrec_packs_free(packs);
    free(x), free(w), free(b), free(prev), free(x16), free(ref), free(got), free(first[0]), free(first[1]), free(mr), free(mg);
}

static void test_channels_last(void) {
    channels_last_case((mrec_conv2d_shape){2, 3, 17, 19, 8, 7, 7, 2, 2, 3, 3, 1}, 8, 1); /* ResNet's stem, padded */
    channels_last_case((mrec_conv2d_shape){3, 16, 9, 7, 8, 3, 3, 1, 1, 1, 1, 1}, 16, 1);
    channels_last_case((mrec_conv2d_shape){1, 8, 10, 10, 24, 1, 1, 2, 2, 0, 0, 1}, 8, 0); /* a downsample */
    channels_last_case((mrec_conv2d_shape){2, 5, 6, 5, 3, 3, 3, 2, 2, 1, 1, 1}, 5, 1);    /* odd widths: the references take any */
    if (mrec_cpu_has_bf16()) {
        nhwc_cpu_case((mrec_conv2d_shape){2, 8, 17, 19, 64, 7, 7, 2, 2, 3, 3, 1}, 1);   /* ResNet's stem, padded: 4-pair runs */
        nhwc_cpu_case((mrec_conv2d_shape){3, 64, 9, 11, 48, 3, 3, 1, 1, 1, 1, 1}, 1);   /* Winograd over images */
        nhwc_cpu_case((mrec_conv2d_shape){2, 40, 8, 7, 24, 3, 3, 1, 1, 1, 1, 1}, 0);    /* Winograd: channels past 16s, odd width */
        nhwc_cpu_case((mrec_conv2d_shape){5, 96, 7, 7, 40, 1, 1, 1, 1, 0, 0, 1}, 1);    /* pointwise: 245 rows, three row blocks */
        nhwc_cpu_case((mrec_conv2d_shape){1, 64, 10, 10, 272, 1, 1, 2, 2, 0, 0, 1}, 1); /* a downsample: two column blocks */
        nhwc_cpu_case((mrec_conv2d_shape){1, 128, 9, 9, 32, 3, 3, 2, 2, 1, 1, 1}, 1);   /* 576 pairs: three k blocks */
        nhwc_cpu_case((mrec_conv2d_shape){1, 192, 7, 7, 24, 3, 3, 2, 2, 1, 1, 1}, 0);   /* window rows over 256 pairs: by position */
        nhwc_cpu_case((mrec_conv2d_shape){1, 6, 3, 3, 2, 3, 3, 1, 1, 1, 1, 1}, 1);      /* tiny: 4-row panels, 2 columns */
    } else {
        t_skip("channels-last bf16 on the CPU: this CPU has no AVX-512 BF16");
    }
    /* the entries on a CPU context: the references, and the shapes they refuse */
    mrec_context *ctx;
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 1;
    if (!t_status(mrec_context_create(&ctx, &o), MREC_OK, "a CPU context")) return;
    float x[2 * 3 * 4] = {0};
    uint16_t a[64] = {0}, y[64];
    t_status(mrec_nhwc_bf16_from_nchw(ctx, a, x, 2, 3, 4, 2), MREC_ERR_ARG, "3 channels padded to 2");
    mrec_conv2d_shape grouped = {1, 4, 2, 2, 4, 1, 1, 1, 1, 0, 0, 2};
    t_status(mrec_conv2d_nhwc_bf16(ctx, y, a, x, NULL, 0.0f, 0, NULL, 0, &grouped), MREC_ERR_SHAPE, "a grouped channels-last convolution");
    mrec_pool2d_shape wide = {1, 2, 2, 2, 5, 5, 1, 1, 0, 0, 1};
    t_status(mrec_maxpool2d_nhwc_bf16(ctx, y, a, &wide), MREC_ERR_SHAPE, "a pooling window wider than the input");
    t_status(mrec_mean_hw_nhwc_bf16(ctx, x, a, 1, 0, 2), MREC_ERR_SHAPE, "the mean over no pixels");
    mrec_conv2d_shape one = {1, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 1};
    float w1[4] = {1, 0, 0, 1}, b1[2] = {0.5f, -4};
    for (int i = 0; i < 8; i++) a[i] = mrec_bf16_round((float)i);
    size_t bytes = 1;
    if (t_status(mrec_conv2d_nhwc_bf16_workspace_bytes(ctx, &one, &bytes), MREC_OK, "workspace bytes") &&
        t_check(bytes == 0, "no workspace on the CPU") &&
        t_status(mrec_conv2d_nhwc_bf16(ctx, y, a, w1, b1, 0.0f, 1, NULL, 0, &one), MREC_OK, "an identity 1x1 convolution")) {
        int ok = 1;
        for (int p = 0; p < 4; p++) /* pixel p holds (2p, 2p + 1): + 0.5, then + (-4) and the ReLU */
            ok &= mrec_bf16_widen(y[2 * p]) == 2 * p + 0.5f && mrec_bf16_widen(y[2 * p + 1]) == (2 * p - 3 > 0 ? 2 * p - 3 : 0);
        t_check(ok, "the entry's identity convolution: bias per channel, then the ReLU");
    }
    mrec_context_destroy(ctx);
}

/* ---- sparse --------------------------------------------------------------- */

static void test_spmm(void) {
    int R = 37, Cc = 23;
    int64_t row_ptr[38];
    int32_t col[37 * 23];
    float val[37 * 23];
    int64_t nnz = 0;
    for (int r = 0; r < R; r++) {
        row_ptr[r] = nnz;
        if (r % 5 == 0) continue; /* empty rows */
        for (int c = 0; c < Cc; c++)
            if (t_rand_u64(&rng) % 4 == 0) col[nnz] = c, val[nnz] = t_rand_uniform(&rng, -1, 1), nnz++;
    }
    row_ptr[R] = nnz;
    /* up to 128 a row sums in registers on AVX-512, wider rows in strips of 128 (a last strip of 2, 44 or
     * 128 columns): every pool's bits are the first's (scalar) */
    static const int dims[] = {1, 17, 64, 128, 130, 300, 384};
    for (int di = 0; di < 7; di++) {
        int D = dims[di];
        float *X = randv((int64_t)Cc * D, -1, 1), *Xt = randv((int64_t)R * D, -1, 1);
        float *ref = malloc((size_t)R * D * 4), *out = malloc((size_t)R * D * 4), *first = malloc((size_t)R * D * 4);
        float *reft = malloc((size_t)Cc * D * 4), *outt = malloc((size_t)Cc * D * 4);
        for (int weighted = 0; weighted < 2; weighted++) {
            const float *v = weighted ? val : NULL;
            mrec_spmm_ref(ref, row_ptr, col, v, X, R, Cc, D);
            mrec_spmm_t_ref(reft, row_ptr, col, v, Xt, R, Cc, D);
            for (int p = 0; p < n_pools; p++) {
                char what[96];
                for (int64_t i = 0; i < (int64_t)R * D; i++) out[i] = NAN; /* every element written, by every pool */
                mrec_spmm_cpu(out, row_ptr, col, v, X, R, Cc, D, pools[p]);
                snprintf(what, sizeof what, "spmm %s D=%d weighted=%d", pool_name(pools[p]), D, weighted);
                t_allclose(what, ref, out, (int64_t)R * D, Cc * U * Cc, 0);
                if (p == 0) memcpy(first, out, (size_t)R * D * 4);
                else t_check(!memcmp(first, out, (size_t)R * D * 4), "%s: the bits of %s", what, pool_name(pools[0]));
                /* with the layer sum: out's bits, and the sum's those of an add and then a scaling of them, in place
                 * and not, at a scale of 1 and of a last layer's 1/4 */
                float *sum_in = randv((int64_t)R * D, -1, 1), *sum = malloc((size_t)R * D * 4), *want = malloc((size_t)R * D * 4);
                for (int k = 0; k < 2; k++) {
                    float scale = k ? 0.25f : 1.0f;
                    for (int64_t i = 0; i < (int64_t)R * D; i++) want[i] = (sum_in[i] + first[i]) * scale, out[i] = sum[i] = NAN;
                    mrec_spmm_sum_cpu(out, sum, sum_in, scale, row_ptr, col, v, X, R, Cc, D, pools[p]);
                    t_check(!memcmp(first, out, (size_t)R * D * 4) && !memcmp(want, sum, (size_t)R * D * 4),
                            "spmm_sum %s D=%d weighted=%d scale %g: spmm's bits, then an add's and a scaling's", pool_name(pools[p]), D,
                            weighted, scale);
                }
                memcpy(sum, sum_in, (size_t)R * D * 4);
                mrec_spmm_sum_cpu(out, sum, sum, 0.25f, row_ptr, col, v, X, R, Cc, D, pools[p]);
                t_check(!memcmp(want, sum, (size_t)R * D * 4), "spmm_sum %s D=%d weighted=%d: in place", pool_name(pools[p]), D, weighted);
                free(sum_in), free(sum), free(want);
                for (int64_t i = 0; i < (int64_t)Cc * D; i++) outt[i] = NAN;
                mrec_spmm_t_cpu(outt, row_ptr, col, v, Xt, R, Cc, D, pools[p]);
                snprintf(what, sizeof what, "spmm_t %s D=%d weighted=%d", pool_name(pools[p]), D, weighted);
                t_allclose(what, reft, outt, (int64_t)Cc * D, R * U * R, 0);
            }
        }
        free(X), free(Xt), free(ref), free(out), free(first), free(reft), free(outt);
    }
}

static void test_adam(void) {
    int64_t n = 10007;
    float *g = randv(n, -1, 1), *p0 = randv(n, -1, 1);
    for (int p = 0; p < n_pools; p++) {
        float *pr = copyv(p0, n), *pc = copyv(p0, n), *mr = calloc(n, 4), *vr = calloc(n, 4), *mc = calloc(n, 4), *vc = calloc(n, 4);
        for (int step = 1; step <= 5; step++) {
            mrec_adam_ref(pr, mr, vr, g, 1e-2f, 0.9f, 0.999f, 1e-8f, 1e-4f, step, n);
            mrec_adam_cpu(pc, mc, vc, g, 1e-2f, 0.9f, 0.999f, 1e-8f, 1e-4f, step, n, pools[p]);
        }
        /* float vs double moments: a few ulps of the parameter after 5 steps */
        t_allclose("adam parameters", pr, pc, n, 1e-6, 1e-5);
        t_allclose("adam second moments", vr, vc, n, 1e-9, 1e-5);
        /* the same steps with their factors read from memory (a replayed graph's form): mrec_adam_cpu's bits */
        float *pa = copyv(p0, n), *ma = calloc(n, 4), *va = calloc(n, 4), k[2];
        for (int step = 1; step <= 5; step++) {
            mrec_adam_factors(k, 1e-2f, 0.9f, 0.999f, step);
            mrec_adam_at_cpu(pa, ma, va, g, k, 0.9f, 0.999f, 1e-8f, 1e-4f, n, pools[p]);
        }
        t_check(!memcmp(pa, pc, 4 * (size_t)n) && !memcmp(ma, mc, 4 * (size_t)n) && !memcmp(va, vc, 4 * (size_t)n),
                "adam with its factors from memory, %s: mrec_adam_cpu's bits after 5 steps", pool_name(pools[p]));
        free(pa), free(ma), free(va);
        free(pr), free(pc), free(mr), free(vr), free(mc), free(vc);
    }
    free(g), free(p0);
}

/* Philox4x32-10 against the known-answer vectors of its authors' Random123
 * (counter, key -> output), then dropout: the CPU op equals the reference bit
 * for bit on every pool, keeps about 1 - p of the elements, scales them by
 * 1 / (1 - p), and a new offset gives a new mask. */
#define T_REQUIRE_VOID(cond)                                                        \
    do {                                                                            \
        if (!(cond)) {                                                              \
            t_check(0, "%s:%d: requirement failed: %s", __FILE__, __LINE__, #cond); \
            return;                                                                 \
        }                                                                           \
    } while (0)

static void test_dropout(void) {
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {~0u, ~0u, ~0u, ~0u, ~0u, ~0u, 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        const uint32_t *k = kat[i];
        mrec_philox_block b = mrec_philox4x32(k[0] | (uint64_t)k[1] << 32, k[2] | (uint64_t)k[3] << 32, k[4] | (uint64_t)k[5] << 32);
        t_check(b.v[0] == k[6] && b.v[1] == k[7] && b.v[2] == k[8] && b.v[3] == k[9], "philox4x32-10 known answer %d", i);
    }
    int64_t n = 100003;
    float *in = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
    uint64_t seed = 99;
    t_fill_uniform(in, n, &seed, 0.5f, 2.0f);
    mrec_dropout_ref(ref, in, 0.3f, 42, 7, n);
    int64_t kept = 0;
    int scaled = 1;
    for (int64_t i = 0; i < n; i++)
        if (ref[i] != 0) kept++, scaled &= ref[i] == in[i] * (float)(1.0 / 0.7);
    t_check(fabs((double)kept / n - 0.7) < 0.005 && scaled, "dropout p=0.3 keeps %.4f of the elements, scaled by 1/0.7", (double)kept / n);
    for (int p = 0; p < n_pools; p++) {
        mrec_dropout_cpu(out, in, 0.3f, 42, 7, n, pools[p]);
        t_check(!memcmp(out, ref, sizeof(float) * n), "dropout on pool %d equals the reference bit for bit", p);
    }
    mrec_dropout_cpu(out, in, 0.3f, 42, 8, n, pools[0]);
    t_check(memcmp(out, ref, sizeof(float) * n) != 0, "another offset gives another mask");
    mrec_dropout_cpu(out, in, 0.0f, 42, 7, n, pools[0]);
    t_check(!memcmp(out, in, sizeof(float) * n), "p = 0 copies");
    free(in), free(ref), free(out);
}

/* The transposed index of a batch's ids: each row lists its positions in
 * order, and spmm over it scatter-adds gradient rows as a plain loop does. */
static void test_index_csr(void) {
    int N = 1000, V = 37, D = 5;
    int32_t *ids = malloc(sizeof(int32_t) * N), *pos = malloc(sizeof(int32_t) * N);
    int64_t *rp = malloc(sizeof(int64_t) * (V + 1));
    uint64_t seed = 5;
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(t_rand_u64(&seed) % (V - 2)); /* the last two rows stay empty */
    T_REQUIRE_VOID(mrec_index_csr_ref(rp, pos, ids, N, V) == MREC_OK);
    int ok = rp[0] == 0 && rp[V] == N && rp[V - 1] == N;
    for (int v = 0; v < V; v++)
        for (int64_t e = rp[v]; e < rp[v + 1]; e++) ok &= ids[pos[e]] == v && (e == rp[v] || pos[e] > pos[e - 1]);
    t_check(ok, "index: each id's positions, in order");
    float *g = malloc(sizeof(float) * N * D), *want = calloc((size_t)V * D, sizeof(float)), *got = malloc(sizeof(float) * V * D);
    t_fill_uniform(g, (int64_t)N * D, &seed, -1, 1);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) want[ids[i] * D + d] += g[i * D + d];
    mrec_spmm_ref(got, rp, pos, NULL, g, V, N, D);
    /* the loop adds in float, the reference spmm in double: ~30 terms of magnitude 1 */
    t_allclose("scatter-add of gradient rows through the index", want, got, (int64_t)V * D, 1e-5, 1e-6);
    ids[17] = V;
    t_status(mrec_index_csr_ref(rp, pos, ids, N, V), MREC_ERR_ARG, "an id outside the table");
    t_check(strstr(mrec_error_detail(), "position 17") != NULL, "the error names the position: %s", mrec_error_detail());
    free(ids), free(pos), free(rp), free(g), free(want), free(got);
}

/* The recommenders' gathers, batch index and evaluation mask: the CPU
 * variants against their references on every pool. The gathered dots sum d
 * float products (the bound of a d-term dot product); the index and the
 * mask are exact. */
static void test_training_ops(void) {
    int n = 517, Ra = 41, Rb = 29, d = 67;
    float *A = randv((int64_t)Ra * d, -1, 1), *B = randv((int64_t)Rb * d, -1, 1);
    float *ref = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
    int32_t *ia = malloc(sizeof(int32_t) * n), *ib = malloc(sizeof(int32_t) * n);
    for (int b = 0; b < n; b++) ia[b] = (int32_t)(t_rand_u64(&rng) % Ra), ib[b] = (int32_t)(t_rand_u64(&rng) % Rb);
    /* 16 pairs at a time on AVX-512, each sum still in k order: every pool's bits are the first's, for d below,
     * at and past a multiple of 16 */
    float *first = malloc(sizeof(float) * n);
    for (int dd = 0; dd < 3; dd++) {
        int dk = dd == 0 ? d : dd == 1 ? 16 : 5;
        mrec_gather_dot_ref(ref, A, ia, B, ib, n, dk);
        for (int p = 0; p < n_pools; p++) {
            mrec_gather_dot_cpu(out, A, ia, B, ib, n, dk, pools[p]);
            char what[96];
            snprintf(what, sizeof what, "gather_dot %s d=%d", pool_name(pools[p]), dk);
            t_allclose(what, ref, out, n, dk * U * dk, 0);
            if (p == 0) memcpy(first, out, sizeof(float) * n);
            else t_check(!memcmp(first, out, sizeof(float) * n), "%s: the bits of %s", what, pool_name(pools[0]));
        }
    }
    free(first);
    /* The rows of a BPR batch's gradient against what they replace: the sparse product W [T_u; T_i; T_j] with W's
     * few entries a row in the same order (coef first in the user's row, the BPR entries first in the items'),
     * bit for bit, with and without each part, on every pool */
    {
        int nb = 37, R = 50, dw = 19;
        float *T = randv((int64_t)R * dw, -1, 1), *dxv = randv(nb, -0.5f, 0.5f), coef[3] = {0.25f, -0.75f, 1.5f};
        int32_t *ids = malloc(sizeof(int32_t) * 3 * nb), *wc = malloc(sizeof(int32_t) * 7 * nb);
        int64_t *wp = malloc(sizeof(int64_t) * (3 * nb + 1));
        float *wv = malloc(sizeof(float) * 7 * nb), *rows = malloc(sizeof(float) * 3 * nb * dw);
        float *want = malloc(sizeof(float) * 3 * nb * dw), *got = malloc(sizeof(float) * 3 * nb * dw);
        for (int r = 0; r < 3 * nb; r++) ids[r] = (int32_t)(t_rand_u64(&rng) % R);
        ids[5] = ids[nb + 5] = ids[2 * nb + 5]; /* a triple whose rows are one row */
        for (int r = 0; r < 3 * nb; r++) memcpy(rows + (size_t)r * dw, T + (size_t)ids[r] * dw, sizeof(float) * dw);
        for (int parts = 1; parts < 4; parts++) {
            const float *dx = parts & 1 ? dxv : NULL, *c = parts & 2 ? coef : NULL;
            int64_t e = 0;
            for (int r = 0; r < 3 * nb; r++) {
                int b = r % nb, part = r / nb;
                wp[r] = e;
                if (c && part == 0) wc[e] = b, wv[e++] = c[0];
                if (dx && part == 0) wc[e] = nb + b, wv[e++] = dx[b], wc[e] = 2 * nb + b, wv[e++] = -dx[b];
                if (dx && part > 0) wc[e] = b, wv[e++] = part == 1 ? dx[b] : -dx[b];
                if (c && part > 0) wc[e] = part * nb + b, wv[e++] = c[part];
            }
            wp[3 * nb] = e;
            mrec_spmm_cpu(want, wp, wc, wv, rows, 3 * nb, 3 * nb, dw, pools[0]);
            mrec_bpr_rows_ref(got, T, ids, dx, c, nb, dw);
            t_check(!memcmp(want, got, sizeof(float) * 3 * nb * dw), "bpr rows (%s%s): the bits of the sparse product",
                    dx ? "dx" : "", c ? " coef" : "");
            for (int p = 0; p < n_pools; p++) {
                mrec_bpr_rows_cpu(got, T, ids, dx, c, nb, dw, pools[p]);
                t_check(!memcmp(want, got, sizeof(float) * 3 * nb * dw), "bpr rows (%s%s) %s: the bits of the sparse product",
                        dx ? "dx" : "", c ? " coef" : "", pool_name(pools[p]));
            }
        }
        free(T), free(dxv), free(ids), free(wc), free(wp), free(wv), free(rows), free(want), free(got);
    }
    /* a BPR batch's loss where its scores are: each form, weight and regularizer against the formulas written out
     * here (MMRec's -log(1e-10 + sigmoid(x)), the authors' softplus(-x), the three regularizers), a zero norm's
     * factor, a later term added to the first; then the run's sum with a NaN batch in it */
    {
        int nb = 41;
        float *dots = randv(5 * nb, -2, 2), dx[41], coef[3], want_c[3];
        for (int b = 2 * nb; b < 5 * nb; b++) dots[b] = fabsf(dots[b]);
        for (int b = 4 * nb; b < 5 * nb; b++) dots[b] = 0.0f; /* the negatives' norms: all zero */
        dots[0] = -50.0f, dots[nb] = 50.0f;                  /* pos - neg -100: past the clamp's -80 */
        const float *pos = dots, *neg = dots + nb, *sq = dots + 2 * nb;
        double s[3] = {0, 0, 0};
        for (int t = 0; t < 3; t++)
            for (int b = 0; b < nb; b++) s[t] += sq[t * nb + b];
        for (int form = 0; form <= MREC_BPR_LOG_SIGMOID_1E5; form++)
            for (int reg_form = 0; reg_form <= MREC_BPR_REG_PAIRS; reg_form++) {
                mrec_bpr_spec spec = {.form = form, .weight = reg_form == 1 ? 0.375f : 1.0f, .reg_form = reg_form, .reg = 0.01f,
                                      .reg_div = 64};
                double want = 0, loss = 0;
                int dx_ok = 1;
                mrec_bpr_batch_loss_cpu(dx, coef, &loss, dots, nb, &spec);
                for (int b = 0; b < nb; b++) {
                    double x = (double)pos[b] - neg[b], sig = 1 / (1 + exp(-x)), g;
                    if (form == MREC_BPR_CLAMPED) {
                        double c = x < -80 ? -80 : x;
                        want += c > 0 ? log1p(exp(-c)) : -c + log1p(exp(c)), g = x < -80 ? 0 : -(1 - sig) / nb;
                    } else if (form == MREC_BPR_SOFTPLUS || form == MREC_BPR_SOFTPLUS_SUM) {
                        want += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)), g = -(1 - sig) / (form == MREC_BPR_SOFTPLUS ? nb : 1);
                    } else {
                        double eps = form == MREC_BPR_LOG_SIGMOID_1E5 ? 1e-5 : 1e-10;
                        want += -log(eps + sig), g = -sig * (1 - sig) / (eps + sig) / nb;
                    }
                    dx_ok &= fabs(dx[b] - spec.weight * g) <= 1e-6 * fabs(g) + 1e-40; /* past the clamp: a subnormal */
                }
                want = spec.weight * want / (form == MREC_BPR_SOFTPLUS_SUM ? 1 : nb);
                double r = spec.reg;
                if (reg_form == MREC_BPR_REG_NORMS) {
                    want += r * (sqrt(s[0]) + sqrt(s[1]) + sqrt(s[2])) / nb;
                    for (int t = 0; t < 3; t++) want_c[t] = s[t] > 0 ? (float)(r / nb / sqrt(s[t])) : 0.0f;
                } else if (reg_form == MREC_BPR_REG_SQUARED) {
                    want += r * (s[0] + s[1] + s[2]) / 2 / nb;
                    for (int t = 0; t < 3; t++) want_c[t] = (float)(r / nb);
                } else if (reg_form == MREC_BPR_REG_SQUARED_ALL) {
                    want += r * (s[0] + s[1] + s[2]) / 2 / 64;
                    for (int t = 0; t < 3; t++) want_c[t] = (float)(r / 64);
                } else if (reg_form == MREC_BPR_REG_NORMS_UI) {
                    want += r * (sqrt(s[0]) + sqrt(s[1])) / nb;
                    for (int t = 0; t < 2; t++) want_c[t] = (float)(r / nb / sqrt(s[t]));
                    want_c[2] = 0;
                } else if (reg_form == MREC_BPR_REG_PAIRS) { /* the mean square of [u, u] and [i, j], n d = 64 */
                    want += r * (2 * s[0] + s[1] + s[2]) / (2 * 64);
                    want_c[0] = (float)(4 * r / 128), want_c[1] = want_c[2] = (float)(2 * r / 128);
                }
                t_check(fabs(loss - want) <= 1e-12 * fabs(want), "bpr batch loss form %d reg %d: %.15g, the formula %.15g", form,
                        reg_form, loss, want);
                t_check(dx_ok, "bpr batch loss form %d reg %d: dx", form, reg_form);
                if (reg_form)
                    t_check(fabsf(coef[0] - want_c[0]) <= 1e-6f * want_c[0] && fabsf(coef[1] - want_c[1]) <= 1e-6f * want_c[1] &&
                                fabsf(coef[2] - want_c[2]) <= 1e-6f * want_c[2] && (reg_form != 1 || coef[2] == 0.0f),
                            "bpr batch loss form %d reg %d: the row factors (%g %g %g)", form, reg_form, coef[0], coef[1], coef[2]);
                if (reg_form == MREC_BPR_REG_NORMS_UI) t_check(coef[2] == 0.0f, "bpr batch loss NORMS_UI: no factor on the negatives");
                spec.accumulate = 1;
                double twice = loss;
                mrec_bpr_batch_loss_cpu(dx, coef, &twice, dots, nb, &spec);
                t_check(twice == loss + loss, "bpr batch loss form %d reg %d: a later term adds to the first", form, reg_form);
            }
        mrec_loss_sum sum = {.bad = -1};
        double l[4] = {0.5, 0.25, NAN, 1.0};
        for (int b = 0; b < 4; b++) mrec_loss_add_cpu(&sum, &l[b]);
        t_check(sum.batches == 4 && sum.bad == 2 && isnan(sum.bad_loss) && isnan(sum.sum), "loss sum: the first bad batch, 2 (%d)",
                sum.bad);
        double rows[3] = {0.5, 1.25, 2.0}, term = 1.0;
        mrec_loss_term_cpu(&term, rows, 3, 0.5f, 4.0);
        t_check(term == 1.0 + 0.5 * 3.75 / 4.0, "loss term: 1 + 0.5 (0.5 + 1.25 + 2) / 4 (%.17g)", term);
        float cosv[4] = {0.5f, -0.25f, 1.0f, 0.75f}, sq3[3] = {1.0f, 2.0f, 6.0f}, zero[3] = {0, 0, 0}, nf = -1;
        term = 0.5;
        mrec_loss_cos_cpu(&term, cosv, 4, 0.25f);
        t_check(term == 0.5 + 0.25 * (1.0 - 2.0 / 4), "cosine loss: 0.5 + 0.25 (1 - mean cos) (%.17g)", term);
        term = 0;
        mrec_loss_norm_cpu(&nf, &term, sq3, 3, 0.5f, 7);
        t_check(fabs(term - 0.5 * 3.0 / 7) <= 1e-15 && nf == (float)(0.5f / 7 / 3.0), "norm regularizer: 0.5 |x| / 7 with |x| 3, factor %g",
                nf);
        mrec_loss_norm_cpu(&nf, &term, zero, 3, 0.5f, 7);
        t_check(nf == 0.0f, "norm regularizer: a zero table's factor is 0, not inf (%g)", nf);
        term = 1;
        mrec_loss_dot_cpu(&term, cosv, sq3, 3, 0.5f, 2.0);
        t_check(term == 1 + 0.5 * (0.5 - 0.5 + 6.0) / 2.0, "loss dot: 1 + 0.5 (x . y) / 2 (%.17g)", term);
        /* MENTOR's moment alignment: four 2 x 3 tables (n = 6 entries each), their moments by hand (two passes) */
        {
            enum { W = 3, NE = 6 };
            float tab[4][NE], sums[8 * W], alpha[4];
            double mean[4], var[4], want = 0.25;
            for (int a = 0; a < 4; a++) {
                double s1 = 0, s2 = 0;
                float *r = randv(NE, -1, 1); /* random: no two tables' moments tie, where a sign would flip */
                for (int e = 0; e < NE; e++) tab[a][e] = r[e] * (float)(a + 1), s1 += tab[a][e];
                free(r);
                mean[a] = s1 / NE;
                for (int e = 0; e < NE; e++) s2 += (tab[a][e] - mean[a]) * (tab[a][e] - mean[a]);
                var[a] = s2 / (NE - 1);
                for (int c = 0; c < W; c++) {
                    float x = tab[a][c], y = tab[a][W + c]; /* column c: rows 0 and 1 */
                    sums[(2 * a) * W + c] = x + y, sums[(2 * a + 1) * W + c] = x * x + y * y;
                }
            }
            for (int a = 0; a < 4; a++)
                for (int b = a + 1; b < 4; b++) want += 0.1 * (fabs(var[a] - var[b]) + fabs(mean[a] - mean[b]));
            term = 0.25;
            mrec_moment_align_cpu(alpha, sums, &term, W, NE, 0.1f);
            int ok = fabs(term - want) <= 1e-6;
            for (int a = 0; a < 4; a++) {
                /* d/dx of sum_b |var_a - var_b| + |mean_a - mean_b| = sign-sums times 2 (x - mean_a) / (n - 1) and 1 / n */
                double cv = 0, cm = 0;
                for (int b = 0; b < 4; b++)
                    if (b != a) cv += (var[a] > var[b]) - (var[a] < var[b]), cm += (mean[a] > mean[b]) - (mean[a] < mean[b]);
                for (int e = 0; e < NE; e++) {
                    double g = 0.1 * (cv * 2 * (tab[a][e] - mean[a]) / (NE - 1) + cm / NE);
                    ok &= fabs(alpha[a] * tab[a][e] + sums[a * W + e % W] - g) <= 1e-6;
                    }
            }
            t_check(ok, "moment alignment: the loss (%.9g, by hand %.9g) and alpha x + beta, the gradient by hand", term, want);
        }
        mrec_context_options o = mrec_context_defaults();
        o.device = MREC_WANT_CPU, o.n_threads = 1;
        mrec_context *cpu = NULL;
        if (t_status(mrec_context_create(&cpu, &o), MREC_OK, "a CPU context")) {
            double loss;
            mrec_bpr_spec spec = {.form = MREC_BPR_LOG_SIGMOID, .weight = 1, .reg_form = MREC_BPR_REG_NORMS, .reg = 0.1f};
            t_status(mrec_bpr_batch_loss(cpu, dx, NULL, &loss, dots, nb, &spec), MREC_ERR_ARG, "bpr loss: a regularizer without coef");
            spec.reg_form = MREC_BPR_REG_SQUARED_ALL;
            t_status(mrec_bpr_batch_loss(cpu, dx, coef, &loss, dots, nb, &spec), MREC_ERR_ARG, "bpr loss: a divisor of 0");
            t_status(mrec_bpr_batch_loss(cpu, dx, coef, &loss, dots, 0, &spec), MREC_ERR_ARG, "bpr loss: an empty batch");
            spec.reg_form = MREC_BPR_REG_PAIRS;
            t_status(mrec_bpr_batch_loss(cpu, dx, coef, &loss, dots, nb, &spec), MREC_ERR_ARG, "bpr loss: PAIRS with a divisor of 0");
            float al[4], sm[8];
            t_status(mrec_moment_align(cpu, al, sm, &loss, 1, 1, 0.1f), MREC_ERR_ARG, "moment alignment: one entry has no variance");
            /* the factors of some parts only: the bits of the host's factors with 0 for the others */
            int R = 23, w = 9;
            float *T = randv((int64_t)R * w, -1, 1), *want = malloc(sizeof(float) * 3 * nb * w), *got = malloc(sizeof(float) * 3 * nb * w);
            float f[3] = {0.5f, -0.25f, 2.0f};
            int32_t *ids = malloc(sizeof(int32_t) * 3 * nb);
            for (int r = 0; r < 3 * nb; r++) ids[r] = (int32_t)(t_rand_u64(&rng) % R);
            for (int parts = 1; parts < 8; parts++) {
                float zeroed[3] = {parts & 1 ? f[0] : 0.0f, parts & 2 ? f[1] : 0.0f, parts & 4 ? f[2] : 0.0f};
                mrec_bpr_rows_ref(want, T, ids, dx, zeroed, nb, w);
                t_status(mrec_bpr_rows_at(cpu, got, T, ids, dx, f, parts, nb, w), MREC_OK, "bpr rows, parts %d", parts);
                t_check(!memcmp(want, got, sizeof(float) * 3 * nb * w), "bpr rows, the factors of parts %d: the bits of 0 for the others",
                        parts);
            }
            free(T), free(want), free(got), free(ids);
            mrec_context_destroy(cpu);
        }
        free(dots);
    }
    /* L2 normalization's backward: sixteen rows at a time on AVX-512 with the reference's bits (16 x 16 blocks
     * turned in registers, the columns past them gathered, the next rows fetched ahead), rows left over, a zero
     * row (below eps), beta 0 and 1; widths with and without a block, with and without columns left over */
    static const int l2_shapes[][2] = {{29, 67}, {70, 384}, {33, 16}, {17, 5}, {1, 256}};
    for (int sh = 0; sh < (int)(sizeof l2_shapes / sizeof l2_shapes[0]); sh++) {
        int R = l2_shapes[sh][0], C = l2_shapes[sh][1];
        float *x = randv((int64_t)R * C, -1, 1), *dy = randv((int64_t)R * C, -1, 1), *y = malloc(sizeof(float) * R * C);
        float *want = malloc(sizeof(float) * R * C), *got = malloc(sizeof(float) * R * C), *dx0 = randv((int64_t)R * C, -1, 1);
        for (int c = 0; c < C; c++) x[(R > 3 ? 3 : 0) * C + c] = 0.0f;
        for (int r = 0; r < R; r++) {
            double ss = 0;
            for (int c = 0; c < C; c++) ss += (double)x[r * C + c] * x[r * C + c];
            for (int c = 0; c < C; c++) y[r * C + c] = ss > 0 ? (float)(x[r * C + c] / sqrt(ss)) : 0.0f;
        }
        for (int beta = 0; beta < 2; beta++) {
            memcpy(want, dx0, sizeof(float) * R * C);
            mrec_l2_normalize_rows_back_ref(want, dy, y, x, 1e-12f, (float)beta, R, C);
            for (int p = 0; p < n_pools; p++) {
                memcpy(got, dx0, sizeof(float) * R * C);
                mrec_l2_normalize_rows_back_cpu(got, dy, y, x, 1e-12f, (float)beta, R, C, pools[p]);
                t_check(!memcmp(want, got, sizeof(float) * R * C), "l2 backward %d x %d %s beta %d: the reference's bits", R, C,
                        pool_name(pools[p]), beta);
            }
        }
        free(x), free(dy), free(y), free(want), free(got), free(dx0);
    }
    /* the index: the reference's bits, ids repeated, rows left empty, an id out of range refused */
    int N = 1000, V = 37;
    int32_t *ids = malloc(sizeof(int32_t) * N), *pos_ref = malloc(sizeof(int32_t) * N), *pos = malloc(sizeof(int32_t) * N);
    int64_t *rp_ref = malloc(sizeof(int64_t) * (V + 1)), *rp = malloc(sizeof(int64_t) * (V + 1));
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(t_rand_u64(&rng) % (V - 2));
    mrec_index_csr_ref(rp_ref, pos_ref, ids, N, V);
    for (int p = 0; p < n_pools; p++) {
        int ok = mrec_index_csr_cpu(rp, pos, ids, N, V, pools[p]) == MREC_OK;
        t_check(ok && !memcmp(rp, rp_ref, sizeof(int64_t) * (V + 1)) && !memcmp(pos, pos_ref, sizeof(int32_t) * N),
                "index_csr %s equals the reference", pool_name(pools[p]));
    }
    t_check(mrec_index_csr_cpu(rp, pos, ids, 0, V, pools[0]) == MREC_OK && rp[0] == 0 && rp[V] == 0, "index of no ids");
    ids[17] = -1;
    t_status(mrec_index_csr_cpu(rp, pos, ids, N, V, pools[0]), MREC_ERR_ARG, "index_csr: an id outside the table");
    t_check(strstr(mrec_error_detail(), "position 17") != NULL, "the error names the position: %s", mrec_error_detail());
    /* the mask: users 3 .. 3 + R - 1 of 9, some with no items, a column past the scores skipped */
    int R = 5, C = 71;
    int64_t mrp[10] = {0, 2, 2, 5, 9, 9, 14, 15, 15, 18};
    int32_t mcol[18] = {1, 2, 0, 70, 3, 5, 6, 70, 71, 0, 1, 2, 3, 69, 64, 7, 8, 9};
    float *sc = randv((int64_t)R * C, -1, 1), *sref = copyv(sc, (int64_t)R * C), *sout = malloc(sizeof(float) * R * C);
    mrec_mask_rows_ref(sref, mrp, mcol, 3, R, C);
    int masked = 0;
    for (int i = 0; i < R * C; i++) masked += sref[i] == -INFINITY;
    t_check(masked == 9, "mask: the 9 items of users 3 to 7 inside the scores set to -inf (%d)", masked);
    for (int p = 0; p < n_pools; p++) {
        memcpy(sout, sc, sizeof(float) * R * C);
        mrec_mask_rows_cpu(sout, mrp, mcol, 3, R, C, pools[p]);
        t_check(!memcmp(sout, sref, sizeof(float) * R * C), "mask_rows %s equals the reference", pool_name(pools[p]));
    }
    free(A), free(B), free(ref), free(out), free(ia), free(ib), free(ids), free(pos_ref), free(pos), free(rp_ref), free(rp);
    free(sc), free(sref), free(sout);
}

/* ---- depthwise convolution and squeeze-excite's row ops ------------------ */

/* The fast version against its reference; then both against the grouped
 * convolution (groups = C) on an explicitly zero-padded input, which is what
 * per-side padding means. Tolerance: each output is a sum of KH*KW + 1 terms
 * of size <= 1, rounded once per term in float. */
static void depthwise_case(mrec_depthwise_shape s, int with_bias) {
    int Ho = mrec_depthwise_out_h(&s), Wo = mrec_depthwise_out_w(&s);
    if (!t_check(Ho > 0 && Wo > 0, "depthwise case has an output")) return;
    int64_t in_n = (int64_t)s.N * s.C * s.H * s.W, out_n = (int64_t)s.N * s.C * Ho * Wo, k = s.KH * s.KW;
    float *x = randv(in_n, -1, 1), *w = randv(s.C * k, -1, 1), *b = with_bias ? randv(s.C, -1, 1) : NULL;
    float *ref = malloc((size_t)out_n * 4), *out = malloc((size_t)out_n * 4), *grp = malloc((size_t)out_n * 4);
    double tol = (k + 2) * U * (k + 1);
    char what[200];
    snprintf(what, sizeof what, "N=%d C=%d %dx%d k=%dx%d s=%d,%d pad t%d b%d l%d r%d", s.N, s.C, s.H, s.W, s.KH, s.KW,
             s.stride_h, s.stride_w, s.pad_top, s.pad_bottom, s.pad_left, s.pad_right);
    mrec_depthwise_conv2d_ref(ref, x, w, b, &s);
    /* grouped conv on the padded input, stride as given, no padding of its own */
    int Hp = s.H + s.pad_top + s.pad_bottom, Wp = s.W + s.pad_left + s.pad_right;
    float *xp = calloc((size_t)s.N * s.C * Hp * Wp, 4);
    for (int p = 0; p < s.N * s.C; p++)
        for (int h = 0; h < s.H; h++)
            memcpy(xp + ((size_t)p * Hp + h + s.pad_top) * Wp + s.pad_left, x + ((size_t)p * s.H + h) * s.W, 4 * (size_t)s.W);
    mrec_conv2d_shape g = {s.N, s.C, Hp, Wp, s.C, s.KH, s.KW, s.stride_h, s.stride_w, 0, 0, s.C};
    t_check(mrec_conv2d_out_h(&g) == Ho && mrec_conv2d_out_w(&g) == Wo, "depthwise %s: output size of the grouped conv", what);
    mrec_conv2d_cpu(grp, xp, w, b, &g, NULL, pools[0]);
    char w2[320];
    snprintf(w2, sizeof w2, "depthwise ref = grouped conv2d on the padded input, %s", what);
    t_allclose(w2, grp, ref, out_n, tol, 0);
    /* every pool (SIMD level, threads) gives the first pool's bits: each output is the bias plus each tap's
     * rounded product, in (kh, kw) order, on every path (the padded copy of the AVX-512 path adds the zero
     * products of the padding, which only a sum of exactly -0 would tell) */
    float *first = malloc((size_t)out_n * 4);
    for (int p = 0; p < n_pools; p++) {
        for (int64_t i = 0; i < out_n; i++) out[i] = NAN; /* every output must be written */
        mrec_depthwise_conv2d_cpu(out, x, w, b, &s, pools[p]);
        snprintf(w2, sizeof w2, "depthwise cpu %s %s", pool_name(pools[p]), what);
        t_allclose(w2, ref, out, out_n, tol, 0);
        if (p == 0) memcpy(first, out, (size_t)out_n * 4);
        else t_check(memcmp(first, out, (size_t)out_n * 4) == 0, "depthwise cpu %s %s: the bits of %s", pool_name(pools[p]), what,
                     pool_name(pools[0]));
        /* with an activation and the planes' means: the bits of the conv, mrec_activation_cpu and
         * mrec_row_mean_cpu on the same pool (swish and the means are taken in the conv's tasks on the AVX-512
         * path, the others follow the conv) */
        static const mrec_act acts[] = {MREC_ACT_SILU, MREC_ACT_RELU};
        int planes = s.N * s.C;
        for (int a = 0; a < 2; a++) {
            float *fused = malloc((size_t)out_n * 4), *means = malloc((size_t)planes * 4), *want = malloc((size_t)planes * 4);
            for (int64_t i = 0; i < out_n; i++) fused[i] = NAN;
            mrec_depthwise_conv2d_act_cpu(fused, x, w, b, acts[a], a ? NULL : means, &s, pools[p]);
            mrec_activation_cpu(out, out, acts[a], 0.0f, out_n, pools[p]);
            t_check(memcmp(fused, out, (size_t)out_n * 4) == 0, "depthwise + %s in one pass, cpu %s %s: the bits of the two passes",
                    a ? "relu" : "swish", pool_name(pools[p]), what);
            if (!a) {
                mrec_row_mean_cpu(want, out, planes, Ho * Wo, pools[p]);
                t_check(memcmp(means, want, (size_t)planes * 4) == 0, "depthwise + swish + means, cpu %s %s: the bits of mrec_row_mean_cpu",
                        pool_name(pools[p]), what);
                /* and against the references in turn: swish's slope is under 1.1, a mean adds HW rounded terms */
                float *naive = malloc((size_t)out_n * 4);
                mrec_activation_ref(naive, ref, MREC_ACT_SILU, 0.0f, out_n);
                mrec_row_mean_ref(want, naive, planes, Ho * Wo);
                snprintf(w2, sizeof w2, "depthwise + swish cpu %s %s against the references", pool_name(pools[p]), what);
                t_allclose(w2, naive, fused, out_n, 1.1 * tol + 1e-6, 1e-5);
                snprintf(w2, sizeof w2, "depthwise + swish, means cpu %s %s against the references", pool_name(pools[p]), what);
                t_allclose(w2, want, means, planes, 1.1 * tol + (Ho * Wo + 2) * U * (k + 2), 1e-5);
                free(naive);
            }
            mrec_depthwise_conv2d_cpu(out, x, w, b, &s, pools[p]);
            free(fused), free(means), free(want);
        }
    }
    free(first);
    /* bf16 (AVX-512 BF16): against the reference on the input and weights rounded to bf16, where every product
     * is exact in float and only the sums round (the shapes the bf16 path does not take run the float path on the
     * unrounded input: the bound of a bf16 rounding of each term); then swish and the means, whose bits are those
     * of mrec_activation_cpu and mrec_row_mean_cpu on the AVX-512 pool */
    if (mrec_cpu_has_bf16()) {
        float *xr = malloc((size_t)in_n * 4), *wr = malloc((size_t)s.C * k * 4), *half = malloc((size_t)out_n * 4);
        float *conv = malloc((size_t)out_n * 4), *refb = malloc((size_t)out_n * 4);
        int planes = s.N * s.C;
        float *means = malloc((size_t)planes * 4), *want = malloc((size_t)planes * 4);
        for (int64_t i = 0; i < in_n; i++) xr[i] = bf16_rounded(x[i]);
        for (int64_t i = 0; i < s.C * k; i++) wr[i] = bf16_rounded(w[i]);
        mrec_depthwise_conv2d_ref(conv, xr, wr, b, &s);
        mrec_activation_ref(refb, conv, MREC_ACT_RELU, 0.0f, out_n); /* ReLU: no larger a difference */
        mrec_pool *p512 = NULL;
        for (int p = 0; p < n_pools; p++)
            if (mrec_pool_simd(pools[p]) == MREC_SIMD_AVX512) p512 = pools[p];
        for (int a = 0; a < 2 && p512; a++) {
            for (int64_t i = 0; i < out_n; i++) half[i] = NAN;
            mrec_status st = mrec_depthwise_conv2d_act_bf16_cpu(half, x, w, b, a ? MREC_ACT_SILU : MREC_ACT_RELU, a ? means : NULL, &s, p512);
            snprintf(w2, sizeof w2, "depthwise bf16 + %s %s", a ? "swish + means" : "relu", what);
            if (!t_status(st, MREC_OK, w2)) break;
            if (!a) {
                t_allclose(w2, refb, half, out_n, tol + (k + 1) * 2 * 0x1p-8, 0); /* loose only where it ran in float */
                int64_t off = 0;
                for (int64_t i = 0; i < out_n; i++) off += fabsf(half[i] - refb[i]) > tol;
                if (Wo <= 80 && s.KH >= 2) t_check(off == 0, "%s: %lld outputs past the float sums' bound", w2, (long long)off);
                continue;
            }
            /* swish's slope is under 1.1, and bf16's swish within 2^-12; the means are mrec_row_mean_cpu's of what was
             * stored */
            mrec_activation_ref(out, conv, MREC_ACT_SILU, 0.0f, out_n);
            t_allclose(w2, out, half, out_n, 1.1 * (Wo <= 80 && s.KH >= 2 ? tol : tol + (k + 1) * 2 * 0x1p-8) + 1e-6, 0x1p-12);
            mrec_row_mean_cpu(want, half, planes, Ho * Wo, p512);
            t_check(memcmp(means, want, (size_t)planes * 4) == 0, "%s: the means' bits", w2);
        }
        /* the input in bf16: the bits of the float input rounded to it, swish and the means too */
        uint16_t *x16 = malloc((size_t)in_n * 2);
        float *m16 = malloc((size_t)planes * 4), *got = malloc((size_t)out_n * 4);
        float *refo = malloc((size_t)out_n * 4), *refm = malloc((size_t)planes * 4);
        for (int64_t i = 0; i < in_n; i++) x16[i] = mrec_bf16_round(x[i]);
        for (int a = 0; a < 2 && p512; a++) {
            mrec_act act = a ? MREC_ACT_SILU : MREC_ACT_RELU;
            for (int64_t i = 0; i < out_n; i++) got[i] = NAN;
            mrec_status st = mrec_depthwise_conv2d_act_bf16_cpu(half, xr, w, b, act, a ? means : NULL, &s, p512);
            mrec_status st16 = mrec_depthwise_conv2d_act_from_bf16_cpu(got, x16, w, b, act, a ? m16 : NULL, &s, p512);
            snprintf(w2, sizeof w2, "depthwise from bf16 + %s %s", a ? "swish + means" : "relu", what);
            if (!t_status(st, MREC_OK, "%s: the float input", w2) || !t_status(st16, MREC_OK, "%s", w2)) continue;
            t_check(!memcmp(got, half, (size_t)out_n * 4), "%s: the bits of the rounded float input", w2);
            if (a) t_check(!memcmp(m16, means, (size_t)planes * 4), "%s: the means' bits", w2);
            /* against the reference, bounds as above (the means: a mean of outputs within them, summed in float) */
            mrec_depthwise_conv2d_act_from_bf16_ref(refo, x16, w, b, act, a ? refm : NULL, &s);
            double bound = Wo <= 80 && s.KH >= 2 ? tol : tol + (k + 1) * 2 * 0x1p-8;
            t_allclose(w2, refo, got, out_n, 1.1 * bound + 1e-6, a ? 0x1p-12 : 0);
            if (a) t_allclose(w2, refm, m16, planes, 1.1 * bound + 1e-6 + Ho * Wo * U, 0x1p-12);
        }
        free(x16), free(m16), free(got), free(refo), free(refm);
        free(xr), free(wr), free(half), free(means), free(want), free(conv), free(refb);
    }
    if (s.pad_top == s.pad_bottom && s.pad_left == s.pad_right && s.pad_top == s.pad_left) {
        /* symmetric padding: the grouped conv with its own padding too */
        mrec_conv2d_shape gs = {s.N, s.C, s.H, s.W, s.C, s.KH, s.KW, s.stride_h, s.stride_w, s.pad_top, s.pad_left, s.C};
        mrec_conv2d_cpu(grp, x, w, b, &gs, NULL, pools[n_pools - 1]);
        snprintf(w2, sizeof w2, "depthwise = grouped conv2d (symmetric pad), %s", what);
        t_allclose(w2, ref, grp, out_n, tol, 0);
    }
    free(x), free(w), free(b), free(ref), free(out), free(grp), free(xp);
}

static void test_depthwise(void) {
    /* stride 1 "same" and stride 2 padded as TensorFlow / EfficientNet pads (one more at the bottom and right) */
    depthwise_case((mrec_depthwise_shape){2, 5, 9, 11, 3, 3, 1, 1, 1, 1, 1, 1}, 1);
    depthwise_case((mrec_depthwise_shape){1, 7, 13, 10, 5, 5, 1, 1, 2, 2, 2, 2}, 0);
    depthwise_case((mrec_depthwise_shape){2, 3, 12, 9, 3, 3, 2, 2, 0, 1, 0, 1}, 1);
    depthwise_case((mrec_depthwise_shape){1, 6, 11, 14, 5, 5, 2, 2, 1, 2, 1, 2}, 1);
    depthwise_case((mrec_depthwise_shape){1, 4, 17, 7, 3, 5, 2, 1, 0, 2, 3, 1}, 1); /* mixed everything */
    depthwise_case((mrec_depthwise_shape){3, 2, 5, 5, 5, 5, 2, 2, 0, 0, 0, 0}, 0);  /* one output column */
    depthwise_case((mrec_depthwise_shape){1, 9, 40, 37, 3, 3, 1, 1, 1, 1, 1, 1}, 1); /* long rows: the vector body */
    /* the padded copy: rows summed together (fp32: eight of one vector, four of two, then two, then one) */
    depthwise_case((mrec_depthwise_shape){2, 3, 19, 18, 5, 5, 1, 1, 2, 2, 2, 2}, 1);
    depthwise_case((mrec_depthwise_shape){1, 4, 23, 9, 3, 3, 1, 1, 1, 1, 1, 1}, 1);
    depthwise_case((mrec_depthwise_shape){1, 3, 38, 36, 5, 5, 2, 2, 1, 2, 1, 2}, 0);
    depthwise_case((mrec_depthwise_shape){1, 2, 9, 75, 3, 3, 1, 1, 1, 1, 1, 1}, 1); /* five vectors a row */
    /* bf16: kernels other than 3 x 3 and 5 x 5 (the window read from the shape), an even height, a block of rows
     * moved up to end at the last row (Ho 11, nine rows a block), one output row at a time (Ho 4) */
    depthwise_case((mrec_depthwise_shape){1, 3, 15, 20, 7, 7, 1, 1, 3, 3, 3, 3}, 1);
    depthwise_case((mrec_depthwise_shape){1, 2, 10, 30, 4, 3, 2, 2, 1, 2, 1, 1}, 1);
    depthwise_case((mrec_depthwise_shape){1, 3, 21, 15, 5, 5, 2, 2, 1, 2, 1, 2}, 0);
    depthwise_case((mrec_depthwise_shape){2, 2, 4, 13, 3, 3, 1, 1, 1, 1, 1, 1}, 1);
    /* rows past 64 columns: blocks of four vectors and a short last block, strides 1 and 2 */
    depthwise_case((mrec_depthwise_shape){1, 3, 6, 150, 3, 3, 1, 1, 1, 1, 1, 1}, 1);
    depthwise_case((mrec_depthwise_shape){2, 2, 7, 145, 5, 5, 2, 2, 1, 2, 1, 2}, 1);
    depthwise_case((mrec_depthwise_shape){1, 2, 5, 101, 5, 3, 1, 2, 2, 2, 0, 1}, 0);
    /* a bf16 input: a plane widened on a task's stack (above), and one past it (the whole input widened) */
    depthwise_case((mrec_depthwise_shape){1, 2, 182, 181, 3, 3, 2, 2, 0, 1, 0, 1}, 1);
    mrec_depthwise_shape bad = {1, 2, 2, 2, 5, 5, 1, 1, 1, 1, 1, 1};
    t_check(mrec_depthwise_out_h(&bad) == 0, "depthwise: a kernel wider than the padded input has no output");
    bad = (mrec_depthwise_shape){1, 2, 8, 8, 3, 3, 1, 1, -1, 1, 1, 1};
    t_check(mrec_depthwise_out_h(&bad) == 0, "depthwise: a negative pad is invalid");

    int R = 13, HW = 37;
    float *x = randv((int64_t)R * HW, -2, 3), *gate = randv(R, -4, 4);
    float *ref = malloc(sizeof(float) * R * HW), *out = malloc(sizeof(float) * R * HW);
    mrec_row_mean_ref(ref, x, R, HW);
    for (int p = 0; p < n_pools; p++) {
        mrec_row_mean_cpu(out, x, R, HW, pools[p]);
        char what[80];
        snprintf(what, sizeof what, "row mean %s", pool_name(pools[p]));
        t_allclose(what, ref, out, R, 3 * HW * U, 0); /* |x| <= 3, HW float adds */
    }
    mrec_sigmoid_gate_rows_ref(ref, x, gate, R, HW);
    for (int p = 0; p < n_pools; p++) {
        memcpy(out, x, sizeof(float) * R * HW);
        mrec_sigmoid_gate_rows_cpu(out, out, gate, R, HW, pools[p]); /* in place */
        char what[80];
        snprintf(what, sizeof what, "sigmoid gate %s", pool_name(pools[p]));
        t_allclose(what, ref, out, (int64_t)R * HW, 3 * 8 * U, 4 * U); /* expf and one division */
    }
    free(x), free(gate), free(ref), free(out);
}

int main(void) {
    t_suite("kernels");
    mrec_simd best = mrec_simd_detect();
    static const int threads[] = {1, 2, 3};
    for (int simd = 0; simd <= (int)best; simd++)
        for (int t = 0; t < 3; t++) {
            mrec_status st = mrec_pool_create(&pools[n_pools], threads[t], (mrec_simd)simd);
            T_REQUIRE(st == MREC_OK);
            n_pools++;
        }
    for (int simd = (int)best + 1; simd <= MREC_SIMD_AMX; simd++)
        t_skip("%s kernels: this CPU does not support them", mrec_simd_name((mrec_simd)simd));
    test_gemm();
    test_gemm_start_exact();
    test_linear_act();
    test_attention_heads();
    test_attention_varlen();
    test_expf_lanes();
    test_gelu_erf();
    test_alloc_large();
    test_gemm_rows();
    test_gemm_packed();
    test_gemm_packed_a();
    test_gemm_bf16();
    test_conv_bf16();
    test_gemm_bf16_batched();
    test_gemm_batched();
    test_elementwise();
    test_rows();
    test_mean_pool();
    test_topk();
    test_gram_topk();
    test_conv();
    test_batchnorm();
    test_pool2d();
    test_channels_last();
    test_bf16_activations();
    test_bf16_activations_cpu();
    test_spmm();
    test_adam();
    test_dropout();
    test_index_csr();
    test_training_ops();
    test_depthwise();
    test_gemm_columns();
    for (int p = 0; p < n_pools; p++) mrec_pool_destroy(pools[p]);
    return t_finish();
}
