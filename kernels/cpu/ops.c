/* ops.c: the fast CPU versions of the element-wise and row ops.
 *
 * Each op is a loop body over a range of elements or rows, run in chunks on
 * the pool. The loops are written so the compiler vectorizes them (-O3);
 * accumulations are in float, in a fixed order per row, so results are
 * reproducible and within a few ulps of the double-precision reference.
 */
#include "../mrec_kernels.h"
#include "parallel.h"
#include "vector_act.h"
#include "../philox.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Below this many elements a chunk is not worth a thread wake-up. */
#define ELEMS_PER_CHUNK 16384

typedef struct {
    float *out;
    const float *a, *b;
    float s, slope;
    mrec_act act;
    int level; /* activations: act_level */
} ew_args;

MREC_VECTOR_CLONES static void add_range(void *arg, int64_t lo, int64_t hi) {
    ew_args *e = arg;
    for (int64_t i = lo; i < hi; i++) e->out[i] = e->a[i] + e->b[i];
}
MREC_VECTOR_CLONES static void mul_range(void *arg, int64_t lo, int64_t hi) {
    ew_args *e = arg;
    for (int64_t i = lo; i < hi; i++) e->out[i] = e->a[i] * e->b[i];
}
MREC_VECTOR_CLONES static void scale_range(void *arg, int64_t lo, int64_t hi) {
    ew_args *e = arg;
    for (int64_t i = lo; i < hi; i++) e->out[i] = e->a[i] * e->s;
}
MREC_VECTOR_CLONES static void fill_range(void *arg, int64_t lo, int64_t hi) {
    ew_args *e = arg;
    for (int64_t i = lo; i < hi; i++) e->out[i] = e->s;
}

void mrec_add_cpu(float *out, const float *a, const float *b, int64_t n, mrec_pool *pool) {
    ew_args e = {.out = out, .a = a, .b = b};
    mrec_parallel_range(pool, n, ELEMS_PER_CHUNK, add_range, &e);
}
void mrec_mul_cpu(float *out, const float *a, const float *b, int64_t n, mrec_pool *pool) {
    ew_args e = {.out = out, .a = a, .b = b};
    mrec_parallel_range(pool, n, ELEMS_PER_CHUNK, mul_range, &e);
}
void mrec_scale_cpu(float *out, const float *a, float s, int64_t n, mrec_pool *pool) {
    ew_args e = {.out = out, .a = a, .s = s};
    mrec_parallel_range(pool, n, ELEMS_PER_CHUNK, scale_range, &e);
}
void mrec_fill_cpu(float *out, float value, int64_t n, mrec_pool *pool) {
    ew_args e = {.out = out, .s = value};
    mrec_parallel_range(pool, n, ELEMS_PER_CHUNK, fill_range, &e);
}

/* GELU(erf) is the hot spot of every BERT and ViT layer after the GEMMs.
 * It is computed as x/2 (2 - E(|x|)) for x >= 0 and x/2 E(|x|) below, with
 * E(u) = erfc(u / sqrt 2) from a table of 32 polynomials (gelu_table.h,
 * tools/golden/gelu_table.py): at most 4.6 ulp from the double-precision
 * GELU on (-8, 8), where 1 + erff(x / sqrt 2) loses every digit to
 * cancellation below x = -3 and libmvec's erff took 31 cycles a vector. The
 * scalar, AVX2 and AVX-512 paths do the same float operations, so every
 * element gets the same bits on every CPU. */
#include "gelu_table.h"

static float gelu_erf_scalar(float x) {
    float u = fabsf(x), e;
    if (u < 8.0f) {
        int i = (int)(u * 4.0f);
        float t = u - ((float)i * 0.25f + 0.125f);
        e = GELU_ERFC[GELU_ERFC_DEGREE][i];
        for (int d = GELU_ERFC_DEGREE - 1; d >= 0; d--) e = fmaf(e, t, GELU_ERFC[d][i]);
    } else {
        e = u >= 8.0f ? 0.0f : u; /* NaN stays NaN */
    }
    return 0.5f * x * (x >= 0.0f ? 2.0f - e : e);
}

/* The first i in [0, n) with s[i] > thr (ordered: NaN never is), or n. */
static int first_above_plain(const float *s, int n, float thr) {
    int i = 0;
    while (i < n && !(s[i] > thr)) i++;
    return i;
}

/* m[b] = the largest number among s[16 b .. 16 b + 15], NaN left out (-inf if all are NaN) */
static void block_max16_plain(float *m, const float *s, int nb) {
    for (int b = 0; b < nb; b++) {
        float best = -INFINITY;
        for (int e = 0; e < 16; e++) best = s[16 * b + e] > best ? s[16 * b + e] : best;
        m[b] = best;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include "transpose16.h"

/* The last, partial vector goes through the same vector function under a
 * mask: every element gets libmvec's bits whatever its position, so a row's
 * values do not depend on the length of the array around it (a text's rows
 * are the same alone and in any batch) nor on how the threads split it. */
__attribute__((target("avx512f"))) static inline __mmask16 tail_mask16(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}
__attribute__((target("avx2"))) static inline __m256i tail_mask8(int64_t left) {
    int r = left >= 8 ? 8 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The table's interval of u: i = (int)(4u), its 32 entries looked up by
 * permutes (a lane's garbage index where u >= 8 or NaN is masked after). */
__attribute__((target("avx512f"))) static void gelu_erf_avx512_rows(float *y, const float *x, int64_t ld, int rows, int64_t n) {
    __m512 lo[GELU_ERFC_DEGREE + 1], hi[GELU_ERFC_DEGREE + 1];
    for (int d = 0; d <= GELU_ERFC_DEGREE; d++) lo[d] = _mm512_load_ps(GELU_ERFC[d]), hi[d] = _mm512_load_ps(GELU_ERFC[d] + 16);
    const __m512 eight = _mm512_set1_ps(8.0f), two = _mm512_set1_ps(2.0f), zero = _mm512_setzero_ps();
    for (int r = 0; r < rows; r++, x += ld, y += ld)
        for (int64_t j = 0; j < n; j += 16) {
            __mmask16 k = tail_mask16(n - j);
            __m512 v = _mm512_maskz_loadu_ps(k, x + j), u = _mm512_abs_ps(v);
            __m512i i = _mm512_cvttps_epi32(_mm512_mul_ps(u, _mm512_set1_ps(4.0f)));
            __m512 t = _mm512_sub_ps(u, _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_set1_ps(0.25f), _mm512_set1_ps(0.125f)));
            __m512 e = _mm512_permutex2var_ps(lo[GELU_ERFC_DEGREE], i, hi[GELU_ERFC_DEGREE]);
            for (int d = GELU_ERFC_DEGREE - 1; d >= 0; d--) e = _mm512_fmadd_ps(e, t, _mm512_permutex2var_ps(lo[d], i, hi[d]));
            e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(u, eight, _CMP_GE_OQ), zero);
            __m512 h = _mm512_mask_sub_ps(e, _mm512_cmp_ps_mask(v, zero, _CMP_GE_OQ), two, e);
            _mm512_mask_storeu_ps(y + j, k, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), h));
        }
}
__attribute__((target("avx512f"))) static int64_t gelu_erf_avx512(float *y, const float *x, int64_t n) {
    gelu_erf_avx512_rows(y, x, 0, 1, n);
    return n;
}

/* The same with 8-lane permutes: four per coefficient, two blends on bit 3 of
 * the index and one on bit 4 (blendv reads a lane's top bit). */
__attribute__((target("avx2,fma"))) static int64_t gelu_erf_avx2(float *y, const float *x, int64_t n) {
    const __m256 eight = _mm256_set1_ps(8.0f), two = _mm256_set1_ps(2.0f), zero = _mm256_setzero_ps();
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t j = 0; j < n; j += 8) {
        __m256i k = tail_mask8(n - j);
        __m256 v = _mm256_maskload_ps(x + j, k), u = _mm256_andnot_ps(sign, v);
        __m256i i = _mm256_cvttps_epi32(_mm256_mul_ps(u, _mm256_set1_ps(4.0f)));
        __m256 t = _mm256_sub_ps(u, _mm256_fmadd_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(0.25f), _mm256_set1_ps(0.125f)));
        __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(i, 28)), bit4 = _mm256_castsi256_ps(_mm256_slli_epi32(i, 27));
        __m256 e = zero;
        for (int d = GELU_ERFC_DEGREE; d >= 0; d--) {
            const float *c = GELU_ERFC[d];
            __m256 c0 = _mm256_permutevar8x32_ps(_mm256_load_ps(c), i), c1 = _mm256_permutevar8x32_ps(_mm256_load_ps(c + 8), i);
            __m256 c2 = _mm256_permutevar8x32_ps(_mm256_load_ps(c + 16), i), c3 = _mm256_permutevar8x32_ps(_mm256_load_ps(c + 24), i);
            __m256 cd = _mm256_blendv_ps(_mm256_blendv_ps(c0, c1, bit3), _mm256_blendv_ps(c2, c3, bit3), bit4);
            e = d == GELU_ERFC_DEGREE ? cd : _mm256_fmadd_ps(e, t, cd);
        }
        e = _mm256_blendv_ps(e, zero, _mm256_cmp_ps(u, eight, _CMP_GE_OQ));
        __m256 h = _mm256_blendv_ps(e, _mm256_sub_ps(two, e), _mm256_cmp_ps(v, zero, _CMP_GE_OQ));
        _mm256_maskstore_ps(y + j, k, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), h));
    }
    return n;
}

/* SiLU, x / (1 + exp(-x)) (EfficientNet's swish: with scalar expf a quarter
 * of ALIGN's image tower), through libmvec's expf at AVX2 and exp16 below
 * at AVX-512. QuickGELU keeps scalar expf: CLIP's fine-tuning is checked
 * against PyTorch through AdamW, where a few ulps in a gradient that nearly
 * cancels move a step visibly. */
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512 x);
__attribute__((target("avx2"))) __m256 _ZGVdN8v_expf(__m256 x);

/* e^t on 16 lanes: 2^n e^r, n = t log2(e) rounded, r = t - n ln 2 in two
 * parts (Cody and Waite), e^r by Cephes' degree-6 polynomial for expf on
 * |r| <= ln2 / 2, and scalef for the 2^n. t is clamped to [-104, 89] first
 * (past it e^t is 0 or inf in float, and the reduction would lose r); NaN
 * stays NaN. Within 1.01 ulp of e^t over every normal result (a sweep of
 * 23 million floats); swish through it within 2.3 ulp. libmvec's expf took
 * 17 cycles a vector on Zen 4, this 11: swish was 14 % of ALIGN's tower. */
__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 t) {
    t = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), t)); /* NaN passes: the second operand */
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(t, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), t);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

__attribute__((target("avx512f"))) static int64_t sigmoid_mul_avx512(float *y, const float *x, float a, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), na = _mm512_set1_ps(-a);
    int64_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 k = tail_mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_div_ps(v, _mm512_add_ps(one, exp16(_mm512_mul_ps(na, v)))));
    }
    return n;
}

void mrec_silu_avx512(float *y, const float *x, int64_t n) { sigmoid_mul_avx512(y, x, 1.0f, n); }

/* Swish for a bf16 context: mrec_silu16_bf16 (vector_act.h) over the whole vectors and a masked last one */
__attribute__((target("avx512f,avx512dq"))) void mrec_silu_bf16_avx512(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask16(n - i);
        _mm512_mask_storeu_ps(y + i, k, mrec_silu16_bf16(_mm512_maskz_loadu_ps(k, x + i)));
    }
}

/* The sum of what swish stores, element i into lane i % 16 (a lane never holds -0, so the tail's zeros leave
 * it as it is) */
__attribute__((target("avx512f,avx512dq"))) static __m512 silu_sums_bf16(float *y, const float *x, int64_t n) {
    __m512 sums = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask16(n - i);
        __m512 v = _mm512_maskz_mov_ps(k, mrec_silu16_bf16(_mm512_maskz_loadu_ps(k, x + i)));
        _mm512_mask_storeu_ps(y + i, k, v);
        sums = _mm512_add_ps(sums, v);
    }
    return sums;
}

__attribute__((target("avx512f"))) float mrec_silu_sum_avx512(float *y, const float *x, int64_t n, int bf16) {
    const __m512 one = _mm512_set1_ps(1.0f), minus = _mm512_set1_ps(-1.0f);
    __m512 sums = _mm512_setzero_ps();
    if (bf16) sums = silu_sums_bf16(y, x, n);
    else
        for (int64_t i = 0; i < n; i += 16) {
            __mmask16 k = tail_mask16(n - i);
            __m512 v = _mm512_maskz_loadu_ps(k, x + i);
            v = _mm512_maskz_div_ps(k, v, _mm512_add_ps(one, exp16(_mm512_mul_ps(minus, v))));
            _mm512_mask_storeu_ps(y + i, k, v);
            sums = _mm512_add_ps(sums, v);
        }
    _Alignas(64) float p[16];
    _mm512_store_ps(p, sums);
    return mrec_sum16_tree(p);
}

__attribute__((target("avx2"))) static int64_t sigmoid_mul_avx2(float *y, const float *x, float a, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), na = _mm256_set1_ps(-a);
    int64_t i = 0;
    for (; i < n; i += 8) {
        __m256i k = tail_mask8(n - i);
        __m256 v = _mm256_maskload_ps(x + i, k);
        _mm256_maskstore_ps(y + i, k, _mm256_div_ps(v, _mm256_add_ps(one, _ZGVdN8v_expf(_mm256_mul_ps(na, v)))));
    }
    return n;
}

/* tanh (MGCN's and SMORE's attention over modalities, a BERT / ViT pooler)
 * through libmvec's tanhf likewise. */
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_tanhf(__m512 x);
__attribute__((target("avx2"))) __m256 _ZGVdN8v_tanhf(__m256 x);

__attribute__((target("avx512f"))) static int64_t tanh_avx512(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 k = tail_mask16(n - i);
        _mm512_mask_storeu_ps(y + i, k, _ZGVeN16v_tanhf(_mm512_maskz_loadu_ps(k, x + i)));
    }
    return n;
}

__attribute__((target("avx2"))) static int64_t tanh_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i < n; i += 8) {
        __m256i k = tail_mask8(n - i);
        _mm256_maskstore_ps(y + i, k, _ZGVdN8v_tanhf(_mm256_maskload_ps(x + i, k)));
    }
    return n;
}

/* expf with the bits of glibc's scalar expf, 16 lanes at a time. The fp32
 * softmax and QuickGELU keep scalar expf's bits (CLIP's fine-tuning is
 * checked against PyTorch through AdamW, where a few ulps move a weight
 * whose gradient nearly cancels), so libmvec's expf will not do for them.
 * This restates glibc's algorithm (the FMA build it runs on every CPU with
 * AVX2) step for step in double precision, with the same fused
 * multiply-adds in the same places: k = round(x 32/ln2) by adding 1.5 2^52,
 * r = x 32/ln2 - k, 2^(k/32) as a table entry for k mod 32 with k's high
 * bits added into its exponent, times 1 + r c2 + r^2 (c1 + r c0). Its edge
 * cases are glibc's: NaN stays NaN, above 88.72 +inf, below -103.97 (and
 * -inf) 0, below -103.28 the least subnormal. test_kernels holds every lane
 * to scalar expf's bits. */
#define EXPF_N 32
/* The bits of 2^(i/32) rounded to double, less i << 47: adding k << 47
 * then puts k / 32 into the exponent (test_kernels recomputes them). */
static const uint64_t expf_table[EXPF_N] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51, 0x3fef72b83c7d517b, 0x3fef54873168b9aa,
    0x3fef387a6e756238, 0x3fef1e9df51fdee1, 0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585, 0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74,
    0x3feea11473eb0187, 0x3feea589994cce13, 0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069, 0x3fef5818dcfba487, 0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};

__attribute__((target("avx512f"))) static inline __m512d expf_core8(__m512d x) {
    const __m512d inv_ln2_n = _mm512_set1_pd(0x1.71547652b82fep+0 * EXPF_N), shift = _mm512_set1_pd(0x1.8p+52);
    const __m512d c0 = _mm512_set1_pd(0x1.c6af84b912394p-5 / EXPF_N / EXPF_N / EXPF_N);
    const __m512d c1 = _mm512_set1_pd(0x1.ebfce50fac4f3p-3 / EXPF_N / EXPF_N), c2 = _mm512_set1_pd(0x1.62e42ff0c52d6p-1 / EXPF_N);
    __m512d kd = _mm512_fmadd_pd(inv_ln2_n, x, shift);
    __m512i ki = _mm512_castpd_si512(kd);
    kd = _mm512_sub_pd(kd, shift);
    __m512d r = _mm512_fmsub_pd(inv_ln2_n, x, kd);
    __m512i idx = _mm512_and_si512(ki, _mm512_set1_epi64(EXPF_N - 1));
    __m512i lo = _mm512_permutex2var_epi64(_mm512_loadu_si512(expf_table), idx, _mm512_loadu_si512(expf_table + 8));
    __m512i hi = _mm512_permutex2var_epi64(_mm512_loadu_si512(expf_table + 16), idx, _mm512_loadu_si512(expf_table + 24));
    __m512i t = _mm512_mask_blend_epi64(_mm512_test_epi64_mask(idx, _mm512_set1_epi64(16)), lo, hi);
    __m512d s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64(ki, 52 - 5)));
    __m512d z = _mm512_fmadd_pd(c0, r, c1), r2 = _mm512_mul_pd(r, r);
    __m512d y = _mm512_fmadd_pd(r, c2, _mm512_set1_pd(1.0));
    return _mm512_mul_pd(_mm512_fmadd_pd(z, r2, y), s);
}

__attribute__((target("avx512f"))) static inline __m512 expf_exact16(__m512 x) {
    __m256 lo = _mm512_cvtpd_ps(expf_core8(_mm512_cvtps_pd(_mm512_castps512_ps256(x))));
    __m256 hi = _mm512_cvtpd_ps(expf_core8(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)))));
    __m512 y = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-0x1.9d1d9ep6f), _CMP_LT_OQ), _mm512_set1_ps(0x1p-149f));
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-0x1.9fe368p6f), _CMP_LT_OQ), _mm512_setzero_ps());
    y = _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, _mm512_set1_ps(0x1.62e42ep6f), _CMP_GT_OQ), _mm512_set1_ps(INFINITY));
    return _mm512_mask_add_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x, x);
}

/* QuickGELU, x / (1 + expf(-1.702 x)), each step the scalar loop's. */
__attribute__((target("avx512f"))) static int64_t quick_gelu_avx512(float *y, const float *x, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), a = _mm512_set1_ps(-1.702f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        _mm512_mask_storeu_ps(y + i, k, _mm512_div_ps(v, _mm512_add_ps(one, expf_exact16(_mm512_mul_ps(a, v)))));
    }
    return n;
}

/* 2: avx512, 1: avx2, 0: none; a benign race, every thread writes the same */
static int vector_level(void) {
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return level;
}

/* The activations' vector width: the pool's SIMD level where the CPU has
 * it (each level is tested on its own pool), the CPU's without a pool. */
static int act_level(const mrec_pool *pool) {
    int cpu = vector_level();
    if (!pool) return cpu;
    mrec_simd s = mrec_pool_simd(pool);
    int level = s >= MREC_SIMD_AVX512 ? 2 : s == MREC_SIMD_AVX2 ? 1 : 0;
    return level < cpu ? level : cpu;
}

static void gelu_erf_rows(float *y, const float *x, int64_t ld, int rows, int64_t n) { gelu_erf_avx512_rows(y, x, ld, rows, n); }

/* How many leading elements a vector path handled: all of them at levels
 * 1 and 2, none at 0 (the scalar loop does them). */
static int64_t gelu_erf_vector(int level, float *y, const float *x, int64_t n) {
    return level == 2 ? gelu_erf_avx512(y, x, n) : level == 1 ? gelu_erf_avx2(y, x, n) : 0;
}
static int64_t sigmoid_mul_vector(int level, float *y, const float *x, float a, int64_t n) {
    return level == 2 ? sigmoid_mul_avx512(y, x, a, n) : level == 1 ? sigmoid_mul_avx2(y, x, a, n) : 0;
}
static int64_t tanh_vector(int level, float *y, const float *x, int64_t n) {
    return level == 2 ? tanh_avx512(y, x, n) : level == 1 ? tanh_avx2(y, x, n) : 0;
}
/* Only with AVX-512: elsewhere the scalar loop runs, with the same bits. */
static int64_t quick_gelu_vector(int level, float *y, const float *x, int64_t n) { return level == 2 ? quick_gelu_avx512(y, x, n) : 0; }

/* first_above_plain and block_max16_plain, a vector at a time */
__attribute__((target("avx512f"))) static int first_above_avx512(const float *s, int n, float thr) {
    __m512 t = _mm512_set1_ps(thr);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(s + i), t, _CMP_GT_OQ);
        if (m) return i + __builtin_ctz(m);
    }
    return i + first_above_plain(s + i, n - i, thr);
}
__attribute__((target("avx2"))) static int first_above_avx2(const float *s, int n, float thr) {
    __m256 t = _mm256_set1_ps(thr);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + i), t, _CMP_GT_OQ));
        if (m) return i + __builtin_ctz(m);
    }
    return i + first_above_plain(s + i, n - i, thr);
}
__attribute__((target("avx512f"))) static void block_max16_avx512(float *m, const float *s, int nb) {
    __m512 none = _mm512_set1_ps(-INFINITY);
    for (int b = 0; b < nb; b++) {
        __m512 x = _mm512_loadu_ps(s + 16 * b);
        m[b] = _mm512_reduce_max_ps(_mm512_mask_mov_ps(none, _mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), x));
    }
}
static void block_max16(int level, float *m, const float *s, int nb) {
    if (level == 2) block_max16_avx512(m, s, nb);
    else block_max16_plain(m, s, nb);
}
static int first_above(int level, const float *s, int n, float thr) {
    if (level == 2) return first_above_avx512(s, n, thr);
    if (level == 1) return first_above_avx2(s, n, thr);
    return first_above_plain(s, n, thr);
}
#else
static int act_level(const mrec_pool *pool) {
    (void)pool;
    return 0;
}
static void gelu_erf_rows(float *y, const float *x, int64_t ld, int rows, int64_t n) { (void)y, (void)x, (void)ld, (void)rows, (void)n; }
static int64_t gelu_erf_vector(int level, float *y, const float *x, int64_t n) {
    (void)level, (void)y, (void)x, (void)n;
    return 0;
}
static int64_t sigmoid_mul_vector(int level, float *y, const float *x, float a, int64_t n) {
    (void)level, (void)y, (void)x, (void)a, (void)n;
    return 0;
}
static int64_t tanh_vector(int level, float *y, const float *x, int64_t n) {
    (void)level, (void)y, (void)x, (void)n;
    return 0;
}
static int64_t quick_gelu_vector(int level, float *y, const float *x, int64_t n) {
    (void)level, (void)y, (void)x, (void)n;
    return 0;
}
static void block_max16(int level, float *m, const float *s, int nb) {
    (void)level;
    block_max16_plain(m, s, nb);
}
static int first_above(int level, const float *s, int n, float thr) {
    (void)level;
    return first_above_plain(s, n, thr);
}
#endif

/* The piecewise-linear activations, element by element: wide vectors help. */
MREC_VECTOR_CLONES static void relu_range(float *restrict y, const float *restrict x, float slope, int leaky, int64_t n) {
    if (leaky)
        for (int64_t i = 0; i < n; i++) y[i] = x[i] >= 0.0f ? x[i] : slope * x[i];
    else
        for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void act_range(void *arg, int64_t lo, int64_t hi) {
    ew_args *e = arg;
    const float *x = e->a;
    float *y = e->out;
    /* in place (y == x) or apart: restrict holds for each element's own read and write */
    if ((e->act == MREC_ACT_RELU || e->act == MREC_ACT_LEAKY_RELU) && (y == x || y + hi <= x + lo || x + hi <= y + lo)) {
        relu_range(y + lo, x + lo, e->slope, e->act == MREC_ACT_LEAKY_RELU, hi - lo);
        return;
    }
    switch (e->act) {
    case MREC_ACT_GELU_ERF:
        for (int64_t i = lo + gelu_erf_vector(e->level, y + lo, x + lo, hi - lo); i < hi; i++)
            y[i] = gelu_erf_scalar(x[i]);
        break;
    case MREC_ACT_GELU_TANH: {
        const float k = 0.7978845608028654f; /* sqrt(2/pi) */
        for (int64_t i = lo; i < hi; i++)
            y[i] = 0.5f * x[i] * (1.0f + tanhf(k * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
        break;
    }
    case MREC_ACT_QUICK_GELU:
        for (int64_t i = lo + quick_gelu_vector(e->level, y + lo, x + lo, hi - lo); i < hi; i++) y[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
        break;
    case MREC_ACT_RELU:
        for (int64_t i = lo; i < hi; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case MREC_ACT_LEAKY_RELU:
        for (int64_t i = lo; i < hi; i++) y[i] = x[i] >= 0.0f ? x[i] : e->slope * x[i];
        break;
    case MREC_ACT_SILU:
        for (int64_t i = lo + sigmoid_mul_vector(e->level, y + lo, x + lo, 1.0f, hi - lo); i < hi; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    case MREC_ACT_TANH:
        for (int64_t i = lo + tanh_vector(e->level, y + lo, x + lo, hi - lo); i < hi; i++) y[i] = tanhf(x[i]);
        break;
    }
}

void mrec_activation_cpu(float *out, const float *in, mrec_act act, float slope, int64_t n,
                         mrec_pool *pool) {
    ew_args e = {.out = out, .a = in, .act = act, .slope = slope, .level = act_level(pool)};
    mrec_parallel_range(pool, n, ELEMS_PER_CHUNK / 4, act_range, &e);
}

void mrec_activation_rows_cpu(float *c, int64_t ldc, int m, int64_t n, mrec_act act, float slope, const mrec_pool *pool) {
    ew_args e = {.act = act, .slope = slope, .level = act_level(pool)};
    if (act == MREC_ACT_GELU_ERF && e.level == 2) { /* the table in registers once per corner, not once per row */
        gelu_erf_rows(c, c, ldc, m, n);
        return;
    }
    for (int i = 0; i < m; i++) {
        e.out = c + (size_t)i * ldc, e.a = e.out;
        act_range(&e, 0, n);
    }
}

/* ---- row ops ------------------------------------------------------------ */

typedef struct {
    float *out;
    const float *in, *mask, *weight, *bias;
    float eps;
    int C, rows_per_mask;
} row_args;

static int64_t rows_per_chunk(int C) {
    int64_t r = ELEMS_PER_CHUNK / (C > 0 ? C : 1);
    return r > 0 ? r : 1;
}

/* LayerNorm rows 16 lanes at a time where the CPU has AVX-512 (one running
 * sum per row made it the largest op of a bf16 BERT forward after the
 * GEMMs and softmax): sums in 16 lanes. Softmax has a lanes version too,
 * but mrec_softmax_rows_cpu stays scalar: CLIP's fine-tuning is checked
 * against PyTorch through AdamW, and either libmvec's expf or a sum in
 * lanes moves a weight whose gradient nearly cancels past the test's
 * bound. */
#if defined(__x86_64__) && defined(__GNUC__)
#define ROW_MASK(C, c) ((C) - (c) >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << ((C) - (c))) - 1))

__attribute__((target("avx512f"))) static void layernorm_row_avx512(float *y, const float *x, const float *w,
                                                                    const float *b, float eps, int C) {
    __m512 sum = _mm512_setzero_ps();
    for (int c = 0; c < C; c += 16) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(ROW_MASK(C, c), x + c));
    float mean = _mm512_reduce_add_ps(sum) / C;
    __m512 vmean = _mm512_set1_ps(mean), var = _mm512_setzero_ps();
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = ROW_MASK(C, c);
        __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + c), vmean);
        var = _mm512_fmadd_ps(d, d, var);
    }
    __m512 rstd = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(var) / C + eps));
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = ROW_MASK(C, c);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + c), vmean), rstd);
        if (w) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + c));
        if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, b + c));
        _mm512_mask_storeu_ps(y + c, k, v);
    }
}
/* A row's 16 values at y + c, k the lanes present: a whole store where all
 * are, as the next pass's loads find their values forwarded from whole
 * stores only (not from masked ones). */
__attribute__((target("avx512f"))) static inline void store_row16(float *y, __mmask16 k, __m512 v) {
    if (k == 0xFFFF) _mm512_storeu_ps(y, v);
    else _mm512_mask_storeu_ps(y, k, v);
}

/* y = x + m (m NULL: x) on a row, 16 lanes at a time; returns the row's
 * maximum, NaN skipped as a scalar comparison skips it. */
__attribute__((target("avx512f"))) static float row_plus_mask_max(float *y, const float *x, const float *m, int C) {
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = ROW_MASK(C, c);
        __m512 v = _mm512_maskz_loadu_ps(k, x + c);
        if (m) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, m + c));
        store_row16(y + c, k, v);
        vmax = _mm512_mask_max_ps(vmax, k, v, vmax);
    }
    return _mm512_reduce_max_ps(vmax);
}

__attribute__((target("avx512f"))) float mrec_softmax_row_exp_lanes(float *y, const float *x, const float *m, int C) {
    __m512 vm = _mm512_set1_ps(row_plus_mask_max(y, x, m, C)), sum = _mm512_setzero_ps();
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = ROW_MASK(C, c);
        __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, y + c), vm));
        store_row16(y + c, k, e);
        sum = _mm512_mask_add_ps(sum, k, sum, e);
    }
    return 1.0f / _mm512_reduce_add_ps(sum);
}

__attribute__((target("avx512f"))) static void softmax_row_avx512(float *y, const float *x, const float *m, int C) {
    __m512 inv = _mm512_set1_ps(mrec_softmax_row_exp_lanes(y, x, m, C));
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = ROW_MASK(C, c);
        store_row16(y + c, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + c), inv));
    }
}
/* The scalar rows (softmax_range) 16 lanes at a time, with their bits: the
 * maximum is the same value in any order (NaN skipped, as the scalar
 * comparison skips it; a zero's sign cannot reach a result), expf is
 * glibc's lane by lane (expf_exact16), and the sum runs in order. */
/* A row's exp(x + m - max) into y, the scalar loop's bits. */
__attribute__((target("avx512f"))) static void exp_row_exact(float *y, const float *x, const float *m, int C) {
    __m512 vm = _mm512_set1_ps(row_plus_mask_max(y, x, m, C));
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = ROW_MASK(C, c);
        _mm512_mask_storeu_ps(y + c, k, expf_exact16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, y + c), vm)));
    }
}
__attribute__((target("avx512f"))) static void scale_row(float *y, int C, float inv) {
    __m512 vi = _mm512_set1_ps(inv);
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = ROW_MASK(C, c);
        _mm512_mask_storeu_ps(y + c, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + c), vi));
    }
}
__attribute__((target("avx512f"))) static void softmax_row_exact_avx512(float *y, const float *x, const float *m, int C) {
    exp_row_exact(y, x, m, C);
    float sum = 0.0f;
    for (int c = 0; c < C; c++) sum += y[c];
    scale_row(y, C, 1.0f / sum);
}
/* Sixteen such rows: the same bits, their sums in one vector, lane r row r,
 * each still added in column order. Summed row by row, each sum was a chain
 * of C dependent adds, most of the row's time (4 % of ViT-B/16 in fp32). */
__attribute__((target("avx512f"))) static void softmax_rows16_exact_avx512(float *y, const float *x, const float *const m[16], int C) {
    for (int r = 0; r < 16; r++) exp_row_exact(y + (size_t)r * C, x + (size_t)r * C, m[r], C);
    __m512i at = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(C));
    __m512 sum = _mm512_setzero_ps();
    for (int c = 0; c < C; c++) sum = _mm512_add_ps(sum, _mm512_i32gather_ps(at, y + c, 4));
    float inv[16];
    _mm512_storeu_ps(inv, _mm512_div_ps(_mm512_set1_ps(1.0f), sum));
    for (int r = 0; r < 16; r++) scale_row(y + (size_t)r * C, C, inv[r]);
}
/* Sixteen rows of mrec_l2_normalize_rows_cpu with its bits: each row's sum of squares still in column order,
 * lane r row r, the columns taken 16 x 16 blocks at a time and turned in registers (the rest gathered); then
 * x / norm. Summed row by row, each sum was a chain of C dependent adds (MMGCN's preference vectors,
 * 19,445 x 384, twice a step). */
__attribute__((target("avx512f"))) static void l2norm_rows16_avx512(float *y, const float *x, float eps, int C) {
    __m512 ss = _mm512_setzero_ps();
    int c = 0;
    for (; c + 16 <= C; c += 16) {
        __m512 t[16];
        for (int r = 0; r < 16; r++) t[r] = _mm512_loadu_ps(x + (size_t)r * C + c);
        transpose16(t);
        for (int j = 0; j < 16; j++) ss = _mm512_add_ps(ss, _mm512_mul_ps(t[j], t[j]));
    }
    __m512i at = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(C));
    for (; c < C; c++) {
        __m512 v = _mm512_i32gather_ps(at, x + c, 4);
        ss = _mm512_add_ps(ss, _mm512_mul_ps(v, v));
    }
    __m512 norm = _mm512_sqrt_ps(ss), veps = _mm512_set1_ps(eps);
    float n[16];
    _mm512_storeu_ps(n, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(norm, veps, _CMP_LT_OQ), norm, veps));
    for (int r = 0; r < 16; r++) {
        __m512 vn = _mm512_set1_ps(n[r]);
        for (c = 0; c < C; c += 16) {
            __mmask16 k = ROW_MASK(C, c);
            _mm512_mask_storeu_ps(y + (size_t)r * C + c, k, _mm512_div_ps(_mm512_maskz_loadu_ps(k, x + (size_t)r * C + c), vn));
        }
    }
}
#define ROWS_AVX512() (vector_level() == 2)
#else
#define l2norm_rows16_avx512(y, x, eps, C) ((void)0)
#define softmax_row_exact_avx512(y, x, m, C) ((void)0)
#define softmax_rows16_exact_avx512(y, x, m, C) ((void)0)
#define softmax_row_avx512(y, x, m, C) ((void)0)
#define ROWS_AVX512() 0
#define layernorm_row_avx512(y, x, w, b, eps, C) ((void)0)
#endif

static void softmax_range(void *arg, int64_t lo, int64_t hi) {
    row_args *a = arg;
    int C = a->C;
    int64_t r = lo;
    if (ROWS_AVX512() && (int64_t)C * 16 <= INT32_MAX) /* the gather's offsets are 32-bit */
        for (; r + 16 <= hi; r += 16) {
            const float *m[16];
            for (int i = 0; i < 16; i++) m[i] = a->mask ? a->mask + ((r + i) / a->rows_per_mask) * C : NULL;
            softmax_rows16_exact_avx512(a->out + r * C, a->in + r * C, m, C);
        }
    for (; r < hi; r++) {
        const float *x = a->in + r * C;
        const float *m = a->mask ? a->mask + (r / a->rows_per_mask) * C : NULL;
        float *y = a->out + r * C;
        if (ROWS_AVX512()) {
            softmax_row_exact_avx512(y, x, m, C);
            continue;
        }
        float max = -INFINITY;
        for (int c = 0; c < C; c++) {
            y[c] = m ? x[c] + m[c] : x[c];
            max = y[c] > max ? y[c] : max;
        }
        float sum = 0.0f;
        for (int c = 0; c < C; c++) {
            y[c] = expf(y[c] - max);
            sum += y[c];
        }
        float inv = 1.0f / sum;
        for (int c = 0; c < C; c++) y[c] *= inv;
    }
}

void mrec_softmax_rows_cpu(float *out, const float *in, const float *mask,
                           int R, int C, int rows_per_mask, mrec_pool *pool) {
    row_args a = {.out = out, .in = in, .mask = mask, .C = C, .rows_per_mask = rows_per_mask};
    mrec_parallel_range(pool, R, rows_per_chunk(C), softmax_range, &a);
}

void mrec_softmax_rows_span_cpu(float *out, const float *in, const float *mask, int R, int C, int rows_per_mask) {
    row_args a = {.out = out, .in = in, .mask = mask, .C = C, .rows_per_mask = rows_per_mask};
    softmax_range(&a, 0, R);
}

static void softmax_lanes_range(void *arg, int64_t lo, int64_t hi) {
    row_args *a = arg;
    if (!ROWS_AVX512()) {
        softmax_range(arg, lo, hi);
        return;
    }
    for (int64_t r = lo; r < hi; r++)
        softmax_row_avx512(a->out + r * a->C, a->in + r * a->C, a->mask ? a->mask + (r / a->rows_per_mask) * a->C : NULL, a->C);
}

void mrec_softmax_rows_lanes_cpu(float *out, const float *in, const float *mask,
                                 int R, int C, int rows_per_mask, mrec_pool *pool) {
    row_args a = {.out = out, .in = in, .mask = mask, .C = C, .rows_per_mask = rows_per_mask};
    mrec_parallel_range(pool, R, rows_per_chunk(C), softmax_lanes_range, &a);
}

void mrec_softmax_rows_lanes_span_cpu(float *out, const float *in, const float *mask, int R, int C, int rows_per_mask) {
    row_args a = {.out = out, .in = in, .mask = mask, .C = C, .rows_per_mask = rows_per_mask};
    softmax_lanes_range(&a, 0, R);
}

static void layernorm_range(void *arg, int64_t lo, int64_t hi) {
    row_args *a = arg;
    int C = a->C;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = a->in + r * C;
        float *y = a->out + r * C;
        if (ROWS_AVX512()) {
            layernorm_row_avx512(y, x, a->weight, a->bias, a->eps, C);
            continue;
        }
        float sum = 0.0f;
        for (int c = 0; c < C; c++) sum += x[c];
        float mean = sum / C;
        float var = 0.0f;
        for (int c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
        float rstd = 1.0f / sqrtf(var / C + a->eps);
        for (int c = 0; c < C; c++) {
            float v = (x[c] - mean) * rstd;
            if (a->weight) v *= a->weight[c];
            if (a->bias) v += a->bias[c];
            y[c] = v;
        }
    }
}

void mrec_layernorm_cpu(float *out, const float *in, const float *weight, const float *bias,
                        float eps, int R, int C, mrec_pool *pool) {
    row_args a = {.out = out, .in = in, .weight = weight, .bias = bias, .eps = eps, .C = C};
    mrec_parallel_range(pool, R, rows_per_chunk(C), layernorm_range, &a);
}

static void l2norm_range(void *arg, int64_t lo, int64_t hi) {
    row_args *a = arg;
    int C = a->C;
    if (ROWS_AVX512() && (int64_t)C * 16 <= INT32_MAX) /* the gather's offsets are 32-bit */
        for (; lo + 16 <= hi; lo += 16) l2norm_rows16_avx512(a->out + lo * C, a->in + lo * C, a->eps, C);
    for (int64_t r = lo; r < hi; r++) {
        const float *x = a->in + r * C;
        float *y = a->out + r * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float norm = sqrtf(ss);
        if (norm < a->eps) norm = a->eps;
        for (int c = 0; c < C; c++) y[c] = x[c] / norm;
    }
}

void mrec_l2_normalize_rows_cpu(float *out, const float *in, float eps, int R, int C,
                                mrec_pool *pool) {
    row_args a = {.out = out, .in = in, .eps = eps, .C = C};
    mrec_parallel_range(pool, R, rows_per_chunk(C), l2norm_range, &a);
}

typedef struct {
    float *out;
    const float *table;
    const int32_t *ids;
    int D;
} gather_args;

static void gather_range(void *arg, int64_t lo, int64_t hi) {
    gather_args *g = arg;
    for (int64_t i = lo; i < hi; i++)
        memcpy(g->out + i * g->D, g->table + (int64_t)g->ids[i] * g->D, (size_t)g->D * sizeof(float));
}

mrec_status mrec_embedding_cpu(float *out, const float *table, const int32_t *ids,
                               int N, int V, int D, mrec_pool *pool) {
    for (int i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return mrec_fail(MREC_ERR_ARG, "embedding: id %d at position %d is outside [0, %d)",
                             ids[i], i, V);
    gather_args g = {out, table, ids, D};
    mrec_parallel_range(pool, N, rows_per_chunk(D), gather_range, &g);
    return MREC_OK;
}

typedef struct {
    float *out;
    const float *in;
    const int32_t *mask;
    int T, D;
} pool_args;

static void mean_pool_range(void *arg, int64_t lo, int64_t hi) {
    pool_args *p = arg;
    int T = p->T, D = p->D;
    for (int64_t b = lo; b < hi; b++) {
        float *y = p->out + b * D;
        float count = 0.0f;
        for (int d = 0; d < D; d++) y[d] = 0.0f;
        for (int t = 0; t < T; t++) {
            if (p->mask && !p->mask[b * T + t]) continue;
            const float *x = p->in + (b * T + t) * D;
            for (int d = 0; d < D; d++) y[d] += x[d];
            count += 1.0f;
        }
        if (count < 1e-9f) count = 1e-9f;
        for (int d = 0; d < D; d++) y[d] /= count;
    }
}

void mrec_mean_pool_cpu(float *out, const float *in, const int32_t *mask, int B, int T, int D,
                        mrec_pool *pool) {
    pool_args p = {out, in, mask, T, D};
    mrec_parallel_range(pool, B, 1, mean_pool_range, &p);
}

/* ---- top-k: a bounded min-heap per row ---------------------------------- */

typedef struct {
    int32_t *idx;
    float *val;
    const float *scores;
    int C, k, level;
} topk_args;

/* a ranks before b: larger value first, NaN last, ties to the lower index. */
static int ranks_before(float va, int ia, float vb, int ib) {
    if (isnan(va)) return isnan(vb) && ia < ib;
    if (isnan(vb)) return 1;
    return va > vb || (va == vb && ia < ib);
}

static void swap_entry(float *v, int32_t *ix, int a, int b) {
    float tv = v[a]; v[a] = v[b]; v[b] = tv;
    int32_t ti = ix[a]; ix[a] = ix[b]; ix[b] = ti;
}

/* The heap's root is its worst entry, so a candidate only has to beat it. */
static void sift_down(float *hv, int32_t *hi, int n, int at) {
    for (;;) {
        int l = 2 * at + 1, r = l + 1, worst = at;
        if (l < n && ranks_before(hv[worst], hi[worst], hv[l], hi[l])) worst = l;
        if (r < n && ranks_before(hv[worst], hi[worst], hv[r], hi[r])) worst = r;
        if (worst == at) return;
        swap_entry(hv, hi, at, worst);
        at = worst;
    }
}

static void heapify(float *hv, int32_t *hi, int n) {
    for (int at = n / 2 - 1; at >= 0; at--) sift_down(hv, hi, n, at);
}

/* A candidate for a heap of k with n entries so far: the first k fill it
 * (a heap once full), then each one that ranks before the worst replaces it. */
static void heap_offer(float *hv, int32_t *hi, int *n, int k, float v, int id) {
    if (*n < k) {
        hv[*n] = v, hi[*n] = id;
        if (++*n == k) heapify(hv, hi, k);
    } else if (ranks_before(v, id, hv[0], hi[0])) {
        hv[0] = v, hi[0] = id;
        sift_down(hv, hi, k, 0);
    }
}

/* The n entries best first: heapified if fewer than k came, then the worst
 * moved to the back until sorted. */
static void heap_sorted(float *hv, int32_t *hi, int n, int k) {
    if (n < k) heapify(hv, hi, n);
    for (int e = n - 1; e > 0; e--) swap_entry(hv, hi, 0, e), sift_down(hv, hi, e, 0);
}

/* Reorders the n entries so that the best k (0 < k <= n) come first and the k-th best is at k - 1: a quickselect
 * on the rank order, which is total (ties go to the lower index), so the best k are one set. */
static void select_best(float *v, int32_t *ix, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        swap_entry(v, ix, lo + (hi - lo) / 2, hi);
        float pv = v[hi];
        int32_t pi = ix[hi];
        int at = lo;
        for (int e = lo; e < hi; e++)
            if (ranks_before(v[e], ix[e], pv, pi)) swap_entry(v, ix, e, at++);
        swap_entry(v, ix, at, hi);
        if (at == k - 1) return;
        if (at > k - 1) hi = at - 1;
        else lo = at + 1;
    }
}

/* The k-th largest of m[0, n) (n >= k; no NaN), m reordered: select_best's quickselect on values alone, for the
 * blocks' maxima (no indices to carry, no NaN to test; select_best there made a row's top-k a tenth slower). */
static float kth_largest(float *m, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        float t = m[lo + (hi - lo) / 2];
        m[lo + (hi - lo) / 2] = m[hi], m[hi] = t;
        int at = lo;
        for (int e = lo; e < hi; e++)
            if (m[e] > t) {
                float u = m[e]; m[e] = m[at]; m[at++] = u;
            }
        m[hi] = m[at], m[at] = t;
        if (at == k - 1) break;
        if (at > k - 1) hi = at - 1;
        else lo = at + 1;
    }
    return m[k - 1];
}

/* Every score to a heap of k, skipping (a vector at a time) those that cannot enter: once the heap is full, a
 * later score enters only if it is above the root's value (ties go to the lower index, which the root has; NaN
 * ranks last). Returns how many entries (C if below k). */
static int topk_heap(float *val, int32_t *idx, const float *s, int C, int k, int level) {
    int n = 0, c = 0;
    for (; c < C && n < k; c++) heap_offer(val, idx, &n, k, s[c], c);
    while (c < C) {
        if (isnan(val[0])) { /* a NaN root: any number beats it */
            heap_offer(val, idx, &n, k, s[c], c), c++;
            continue;
        }
        c += first_above(level, s + c, C - c, val[0]);
        if (c < C) heap_offer(val, idx, &n, k, s[c], c), c++;
    }
    heap_sorted(val, idx, n, k);
    return n;
}

/* One row's best k, best first, from a bar: the k-th largest of the 16-wide blocks' maxima is a number that at
 * least k scores reach, so each of the best k is at or above it. The scores at or above it (a few more than k)
 * are gathered in index order, and the best k of them selected and sorted by rank. False where that does not
 * apply (fewer than k whole blocks, a bar of -inf from NaN and masked scores, more than cap at the bar). */
static int topk_bar(float *val, int32_t *idx, const float *s, int C, int k, int level, float *bv, int32_t *bi, int cap,
                    float *m) {
    int nb = C / 16, n = 0;
    if (nb < k) return 0;
    block_max16(level, m, s, nb);
    float bar = kth_largest(m, nb, k);
    /* a bar within the least normal of zero: the float just below it is subnormal, which DAZ (a training batch's mode,
     * mrec_flush_subnormals_begin) reads as zero */
    if (!(bar > -INFINITY) || fabsf(bar) <= FLT_MIN) return 0;
    float below = nextafterf(bar, -INFINITY); /* x > below exactly where x >= bar */
    for (int c = first_above(level, s, C, below); c < C; c += 1 + first_above(level, s + c + 1, C - c - 1, below)) {
        if (n == cap) return 0;
        bv[n] = s[c], bi[n++] = c;
    }
    select_best(bv, bi, n, k);
    heapify(bv, bi, k), heap_sorted(bv, bi, k, k); /* best first */
    memcpy(val, bv, sizeof(float) * (size_t)k), memcpy(idx, bi, sizeof(int32_t) * (size_t)k);
    return 1;
}

static void topk_range(void *arg, int64_t lo, int64_t hi) {
    topk_args *t = arg;
    int k = t->k, cap = 4 * k + 64;
    float *bv = malloc(sizeof(float) * ((size_t)cap + (size_t)t->C / 16));       /* the gathered, then the maxima */
    int32_t *bi = malloc(sizeof(int32_t) * (size_t)cap);
    for (int64_t r = lo; r < hi; r++) {
        const float *s = t->scores + r * t->C;
        float *val = t->val + r * k;
        int32_t *idx = t->idx + r * k;
        if (!bv || !bi || !topk_bar(val, idx, s, t->C, k, t->level, bv, bi, cap, bv + cap)) topk_heap(val, idx, s, t->C, k, t->level);
    }
    free(bv), free(bi);
}

void mrec_topk_rows_cpu(int32_t *idx, float *val, const float *scores, int R, int C, int k,
                        mrec_pool *pool) {
    if (k <= 0) return;
    topk_args t = {idx, val, scores, C, k, act_level(pool)};
    mrec_parallel_range(pool, R, 1, topk_range, &t);
}

/* ---- top-k of a Gram matrix ---------------------------------------------------
 * Each row's k largest entries of S = x x^T without S: blocks S[I, J], J >= I,
 * each one GEMM (x packed once, in a pack set of its own), feed the running
 * top-k of I's rows and, since S[j, i] = S[i, j], of J's rows: half the
 * products of forming every row. Both orientations sum the same products in
 * the same order, so the halves are exact. */

#define GRAM_BLOCK 512

typedef struct {
    int32_t *idx; /* heaps of row0.. */
    float *val;
    int *count;
    const float *s; /* candidate c of row r at s[r rs + c cs], index col0 + c */
    int64_t rs, cs;
    int C, col0, k;
} merge_args;

static void merge_range(void *arg, int64_t lo, int64_t hi) {
    const merge_args *m = arg;
    for (int64_t r = lo; r < hi; r++)
        for (int c = 0; c < m->C; c++)
            heap_offer(m->val + r * m->k, m->idx + r * m->k, &m->count[r], m->k, m->s[r * m->rs + c * m->cs], m->col0 + c);
}

static void finish_range(void *arg, int64_t lo, int64_t hi) {
    const merge_args *m = arg;
    for (int64_t r = lo; r < hi; r++) heap_sorted(m->val + r * m->k, m->idx + r * m->k, m->count[r], m->k);
}

typedef struct {
    float *out;
    const float *x;
    int dim;
} unit_args;

static void unit_range(void *arg, int64_t lo, int64_t hi) {
    const unit_args *u = arg;
    mrec_unit_rows_ref(u->out + lo * u->dim, u->x + lo * u->dim, hi - lo, u->dim);
}

mrec_status mrec_gram_topk_cpu(int32_t *idx, float *val, const float *x, int n, int dim, int k, int unit_rows, mrec_pool *pool) {
    if (n <= 0 || k <= 0) return MREC_OK;
    if (k > n) return mrec_fail(MREC_ERR_ARG, "gram top-k: k = %d of %d rows", k, n);
    float *unit = unit_rows ? malloc(sizeof(float) * (size_t)n * dim) : NULL;
    if (unit) {
        unit_args u = {unit, x, dim};
        mrec_parallel_range(pool, n, 64, unit_range, &u);
        x = unit;
    }
    float *s = malloc(sizeof(float) * GRAM_BLOCK * GRAM_BLOCK), *own = val ? NULL : malloc(sizeof(float) * (size_t)n * k);
    int *count = calloc((size_t)n, sizeof *count);
    mrec_packs *packs = NULL;
    if (!s || (!val && !own) || !count || (unit_rows && !unit) || mrec_packs_create(&packs, x, (int64_t)n * dim)) {
        free(s), free(own), free(count), free(unit);
        return mrec_fail(MREC_ERR_NOMEM, "gram top-k: %d rows", n);
    }
    if (!val) val = own;
    for (int i0 = 0; i0 < n; i0 += GRAM_BLOCK) {
        int ri = n - i0 < GRAM_BLOCK ? n - i0 : GRAM_BLOCK;
        for (int j0 = i0; j0 < n; j0 += GRAM_BLOCK) {
            int rj = n - j0 < GRAM_BLOCK ? n - j0 : GRAM_BLOCK;
            mrec_gemm_packed_cpu(s, x + (size_t)i0 * dim, x + (size_t)j0 * dim, NULL, 1.0f, 0.0f, 0, 1, ri, rj, dim, dim, dim,
                                 rj, packs, pool);
            merge_args rows = {idx + (size_t)i0 * k, val + (size_t)i0 * k, count + i0, s, rj, 1, rj, j0, k};
            mrec_parallel_range(pool, ri, 16, merge_range, &rows);
            if (j0 == i0) continue;
            merge_args cols = {idx + (size_t)j0 * k, val + (size_t)j0 * k, count + j0, s, 1, rj, ri, i0, k};
            mrec_parallel_range(pool, rj, 16, merge_range, &cols);
        }
    }
    merge_args all = {idx, val, count, NULL, 0, 0, 0, 0, k};
    mrec_parallel_range(pool, n, 64, finish_range, &all);
    mrec_packs_free(packs);
    free(s), free(own), free(count), free(unit);
    return MREC_OK;
}

/* ---- Adam ------------------------------------------------------------------ */

typedef struct {
    float *param, *m, *v;
    const float *grad;
    float beta1, beta2, eps, wd, step_size, bias2_sqrt;
} adam_args;

MREC_VECTOR_CLONES static void adam_range(void *arg, int64_t lo, int64_t hi) {
    /* Locals and restrict: through a->, every store might change a->beta1 and the loop stays scalar. */
    const adam_args *a = arg;
    float *restrict param = a->param, *restrict m = a->m, *restrict v = a->v;
    const float *restrict grad = a->grad;
    const float beta1 = a->beta1, beta2 = a->beta2, eps = a->eps, wd = a->wd, step_size = a->step_size,
                bias2_sqrt = a->bias2_sqrt;
    for (int64_t i = lo; i < hi; i++) {
        float g = grad[i] + wd * param[i];
        m[i] = beta1 * m[i] + (1 - beta1) * g;
        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        param[i] -= step_size * m[i] / (sqrtf(v[i]) / bias2_sqrt + eps);
    }
}

void mrec_adam_cpu(float *param, float *m, float *v, const float *grad, float lr, float beta1, float beta2, float eps,
                   float weight_decay, int64_t step, int64_t n, mrec_pool *pool) {
    /* bias corrections in double, as PyTorch computes them in Python floats */
    double bias1 = 1.0 - pow(beta1, (double)step), bias2 = 1.0 - pow(beta2, (double)step);
    adam_args a = {param, m, v, grad, beta1, beta2, eps, weight_decay, (float)(lr / bias1), (float)sqrt(bias2)};
    mrec_parallel_range(pool, n, ELEMS_PER_CHUNK, adam_range, &a);
}

void mrec_adam_factors(float k[2], float lr, float beta1, float beta2, int64_t step) {
    double bias1 = 1.0 - pow(beta1, (double)step), bias2 = 1.0 - pow(beta2, (double)step);
    k[0] = (float)(lr / bias1), k[1] = (float)sqrt(bias2);
}

void mrec_adam_at_cpu(float *param, float *m, float *v, const float *grad, const float *k, float beta1, float beta2,
                      float eps, float weight_decay, int64_t n, mrec_pool *pool) {
    adam_args a = {param, m, v, grad, beta1, beta2, eps, weight_decay, k[0], k[1]};
    mrec_parallel_range(pool, n, ELEMS_PER_CHUNK, adam_range, &a);
}

/* ---- dropout ------------------------------------------------------------------ */

typedef struct {
    float *out;
    const float *in;
    float p, keep_scale;
    uint64_t seed, offset;
} dropout_args;

static void dropout_range(void *arg, int64_t lo, int64_t hi) {
    dropout_args *a = arg;
    for (int64_t i = lo; i < hi; i++)
        a->out[i] = mrec_philox_uniform((uint64_t)i, a->offset, a->seed) >= a->p ? a->in[i] * a->keep_scale : 0.0f;
}

void mrec_dropout_cpu(float *out, const float *in, float p, uint64_t seed, uint64_t offset, int64_t n,
                      mrec_pool *pool) {
    dropout_args a = {out, in, p, (float)(1.0 / (1.0 - p)), seed, offset};
    mrec_parallel_range(pool, n, ELEMS_PER_CHUNK, dropout_range, &a);
}
