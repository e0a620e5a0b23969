/* encoder_bf16.c: the transformers' bf16-activation ops (mrec_kernels.h,
 * "bf16 activations") on the CPU, with AVX-512 BF16. Built with AVX-512
 * F, BW, VL and BF16 and only called when cpuid says the CPU has them
 * (mrec_cpu_has_bf16).
 *
 * A layer's products then read bf16 activations as they lie: two features
 * side by side are one bf16 pair, the operand VDPBF16PS multiplies, so a
 * panel of A is a transposed copy (mrec_gemm_bf16_rows) with nothing
 * rounded, and each output is rounded once, in the product's epilogue.
 * The fp32-activation route rounded every activation again for each
 * product that read it. Where the pool has AMX, the products and the
 * attention's heads run through the tiles (gemm_bf16.c), which read the
 * activations' rows where they lie.
 *
 * An activation of a bf16 value has 65,536 possible inputs: it is a table
 * of their rounded images, made once from the reference's own function, so
 * the GEMM's epilogue and mrec_activation_bf16_cpu give the reference's
 * bits for every input.
 */
#include "../mrec_kernels.h"
#include "gemm_internal.h"
#include "parallel.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

__m512 _ZGVeN16v_expf(__m512 x); /* glibc's libmvec */

static inline __mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

/* ---- activations: a table per function ---- */

#define ACTS (MREC_ACT_TANH + 1)

static _Atomic(uint16_t *) act_tables[ACTS];
static pthread_mutex_t act_lock = PTHREAD_MUTEX_INITIALIZER;

const uint16_t *mrec_bf16_act_table(mrec_act act) {
    if ((unsigned)act >= ACTS) return NULL;
    uint16_t *t = atomic_load(&act_tables[act]);
    if (t) return t;
    pthread_mutex_lock(&act_lock);
    t = atomic_load(&act_tables[act]);
    float *x = t ? NULL : malloc(sizeof(float) * 65536 * 2);
    if (x) {
        /* one entry past the end: the gathers read 4 bytes at each entry */
        t = malloc(sizeof(uint16_t) * (65536 + 1));
        if (t) {
            for (int i = 0; i < 65536; i++) x[i] = mrec_bf16_widen((uint16_t)i);
            mrec_activation_ref(x + 65536, x, act, 0.0f, 65536);
            for (int i = 0; i < 65536; i++) t[i] = mrec_bf16_round(x[65536 + i]);
            t[65536] = 0;
            atomic_store(&act_tables[act], t);
        }
        free(x);
    }
    pthread_mutex_unlock(&act_lock);
    return t;
}

/* 16 bf16 values' images in the table */
static inline __m256i act16(const uint16_t *table, __m256i x) {
    return _mm512_cvtepi32_epi16(_mm512_i32gather_epi32(_mm512_cvtepu16_epi32(x), (const void *)table, 2));
}

typedef struct {
    uint16_t *x;
    const uint16_t *table;
} act_job;

static void act_range(void *arg, int64_t begin, int64_t end) {
    const act_job *a = arg;
    for (int64_t i = begin; i < end; i += 16) {
        __mmask16 k = lanes((int)(end - i < 16 ? end - i : 16));
        _mm256_mask_storeu_epi16(a->x + i, k, act16(a->table, _mm256_maskz_loadu_epi16(k, a->x + i)));
    }
}

mrec_status mrec_activation_bf16_cpu(uint16_t *x, mrec_act act, int64_t n, mrec_pool *pool) {
    act_job a = {x, mrec_bf16_act_table(act)};
    if (!a.table) return mrec_fail(MREC_ERR_NOMEM, "activation_bf16: the table of activation %d", (int)act);
    mrec_parallel_range(pool, n, 1 << 14, act_range, &a);
    return MREC_OK;
}

/* ---- LayerNorm: fp32 in, fp32 and bf16 out ---- */

typedef struct {
    float *out;
    uint16_t *out16;
    const float *a, *b, *weight, *bias;
    float eps;
    int C;
} ln_job;

/* 16 values of a (+ b) at c as two 8-lane doubles */
static inline void sum16(const float *x, const float *y, int c, __mmask16 k, __m512d *lo, __m512d *hi) {
    __m512 v = _mm512_maskz_loadu_ps(k, x + c);
    *lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    *hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    if (y) {
        __m512 w = _mm512_maskz_loadu_ps(k, y + c);
        *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(w)));
        *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w), 1))));
    }
}

/* The reference's arithmetic, in double, 16 features at a time: only the
 * order of the two sums differs. */
static void ln_range(void *arg, int64_t r0, int64_t r1) {
    const ln_job *j = arg;
    int C = j->C;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->a + r * C, *y = j->b ? j->b + r * C : NULL;
        __m512d s = _mm512_setzero_pd(), lo, hi;
        for (int c = 0; c < C; c += 16) {
            sum16(x, y, c, lanes(C - c), &lo, &hi);
            s = _mm512_add_pd(s, _mm512_add_pd(lo, hi)); /* lanes past C are zeros */
        }
        __m512d mean = _mm512_set1_pd(_mm512_reduce_add_pd(s) / C), var = _mm512_setzero_pd();
        for (int c = 0; c < C; c += 16) {
            __mmask16 k = lanes(C - c);
            sum16(x, y, c, k, &lo, &hi);
            lo = _mm512_maskz_sub_pd((__mmask8)k, lo, mean), hi = _mm512_maskz_sub_pd((__mmask8)(k >> 8), hi, mean);
            var = _mm512_fmadd_pd(lo, lo, _mm512_fmadd_pd(hi, hi, var));
        }
        __m512d rstd = _mm512_set1_pd(1.0 / sqrt(_mm512_reduce_add_pd(var) / C + j->eps));
        for (int c = 0; c < C; c += 16) { /* out may be a or b: these 16 are read before they are written */
            __mmask16 k = lanes(C - c);
            sum16(x, y, c, k, &lo, &hi);
            lo = _mm512_mul_pd(_mm512_sub_pd(lo, mean), rstd), hi = _mm512_mul_pd(_mm512_sub_pd(hi, mean), rstd);
            __m512 w = j->weight ? _mm512_maskz_loadu_ps(k, j->weight + c) : _mm512_set1_ps(1.0f);
            __m512 bb = j->bias ? _mm512_maskz_loadu_ps(k, j->bias + c) : _mm512_setzero_ps();
            lo = _mm512_mul_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(w)));
            hi = _mm512_mul_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(w), 1))));
            lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(bb)));
            hi = _mm512_add_pd(hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(bb), 1))));
            __m512 v = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo))),
                                                          _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1));
            if (j->out) _mm512_mask_storeu_ps(j->out + r * C + c, k, v);
            if (j->out16) _mm256_mask_storeu_epi16(j->out16 + r * C + c, k, (__m256i)_mm512_cvtneps_pbh(v));
        }
    }
}

void mrec_layernorm_bf16_cpu(float *out, uint16_t *out16, const float *a, const float *b, const float *weight, const float *bias,
                             float eps, int R, int C, mrec_pool *pool) {
    ln_job j = {out, out16, a, b, weight, bias, eps, C};
    mrec_parallel_range(pool, R, 1 + 4096 / (C > 0 ? C : 1), ln_range, &j);
}

/* ---- products with bf16 activations ---- */

/* A (M, K) bf16 with K even: row i is K / 2 pairs, the panel a copy */
typedef struct {
    const uint32_t *a;
    int kp;
} rows_a;

static void rows_fill(void *arg, int item, uint32_t *dst, int mr, int i0, int rows, int p0, int kc) {
    (void)item;
    const rows_a *r = arg;
    const uint32_t *src[16];
    for (int t = 0; t < mr; t++) src[t] = t < rows ? r->a + (size_t)(i0 + t) * r->kp + p0 : NULL;
    mrec_bf16_panel_from_rows(dst, mr, src, kc);
}

mrec_status mrec_linear_bf16_cpu(void *C, int c_bf16, const uint16_t *A, const float *W, const float *bias, int act, float beta,
                                 int M, int N, int K, int ldc, mrec_packs *packs, mrec_pool *pool) {
    if (M <= 0 || N <= 0) return MREC_OK;
    if (K % 2 || (uintptr_t)A % 4) { /* rows that are not whole pairs: the reference */
        mrec_linear_bf16_ref(C, c_bf16, A, W, bias, act, beta, M, N, K, ldc);
        return MREC_OK;
    }
    const uint16_t *table = NULL;
    if (c_bf16 && act != MREC_GEMM_NO_ACT && !(table = mrec_bf16_act_table((mrec_act)act)))
        return mrec_fail(MREC_ERR_NOMEM, "linear_bf16: the table of activation %d", act);
    /* the fp32-activation bf16 GEMM's layout and tag: a weight is packed once for both */
    void *own;
    const void *wt = mrec_gemm_bf16_wt(packs, W, N, K, MREC_PACK_TAG_BF16, &own);
    float *rounded = NULL; /* a bf16 C adds the bias rounded to bf16, as autocast's bf16 bias */
    if (wt && c_bf16 && bias && (rounded = malloc(sizeof(float) * (size_t)N)))
        for (int j = 0; j < N; j++) rounded[j] = mrec_bf16_widen(mrec_bf16_round(bias[j]));
    if (!wt || (c_bf16 && bias && !rounded)) {
        free(own);
        return mrec_fail(MREC_ERR_NOMEM, "linear_bf16: packing the weight (%d x %d)", N, K);
    }
    rows_a r = {(const uint32_t *)A, K / 2};
    mrec_gemm_rows_out o = {.c32 = c_bf16 ? NULL : C, .c16 = c_bf16 ? C : NULL, .ldc = ldc, .bias = c_bf16 ? rounded : bias,
                            .beta = beta, .act16 = table};
    if (!mrec_gemm_bf16_rows_amx(&o, r.a, (size_t)r.kp, wt, M, N, K, pool)) mrec_gemm_bf16_rows(&o, rows_fill, &r, wt, 0, 1, M, N, K, pool);
    free(own), free(rounded);
    return MREC_OK;
}

/* ---- attention on bf16 queries, keys and values ---- */

/* One head of one sequence on one thread, QB queries at a time, everything
 * in the thread's scratch:
 *   kt: the keys as panels of 16 (dh / 2 pairs, 16 keys): a query's pair
 *       broadcast times a panel row gives 16 scores a step;
 *   vp: the values two keys to a pair (L / 2 rows of dh pairs): a pair of
 *       weights broadcast times a row gives 16 outputs a step.
 * QB queries share each load of kt and vp, and their QB sums are
 * independent: one query's chain of VDPBF16PS waited on the instruction's
 * latency at every step. The scores are fp32; exp(s - max) is rounded to
 * bf16 as the product with V reads it (PyTorch's flash kernels round their
 * probabilities so), and the sum that divides the output is that of the
 * rounded weights. */
#define QB 8

typedef struct {
    uint16_t *out;
    const uint16_t *q, *k, *v;
    const float *mask_bias, *head_bias;
    const int32_t *starts;
    float scale;
    int ld, T, heads, dh;
    mrec_pool *pool;
} attn_job;

static size_t attn_scratch_floats(int T, int dh) {
    size_t blocks = (size_t)(T + 15) / 16, pairs = (size_t)(T + 1) / 2;
    return blocks * 16 * (dh / 2) + pairs * dh + QB * (blocks * 16 + pairs) + 64;
}

static void attn_task(void *arg, int task, int thread) {
    const attn_job *a = arg;
    int b = task / a->heads, h = task % a->heads, dh = a->dh, dp = dh / 2, H = a->heads * dh, T = a->T;
    size_t row0 = a->starts ? (size_t)a->starts[b] : (size_t)b * T;
    int L = a->starts ? a->starts[b + 1] - a->starts[b] : T, blocks = (L + 15) / 16, pairs = (L + 1) / 2;
    if (L <= 0) return;
    uint32_t *kt = (uint32_t *)mrec_pool_scratch(a->pool, thread), *vp = kt + (size_t)blocks * 16 * dp;
    float *s = (float *)(vp + (size_t)pairs * dh); /* QB rows of blocks * 16 scores */
    uint32_t *p32 = (uint32_t *)(s + (size_t)QB * blocks * 16); /* QB rows of `pairs` weight pairs */
    const uint16_t *q = a->q + row0 * a->ld + (size_t)h * dh, *k = a->k + row0 * a->ld + (size_t)h * dh;
    const uint16_t *v = a->v + row0 * a->ld + (size_t)h * dh;
    for (int kb = 0; kb < blocks; kb++) {
        const uint32_t *src[16];
        for (int t = 0; t < 16; t++) src[t] = kb * 16 + t < L ? (const uint32_t *)(k + (size_t)(kb * 16 + t) * a->ld) : NULL;
        mrec_bf16_panel_from_rows(kt + (size_t)kb * 16 * dp, 16, src, dp);
    }
    for (int j = 0; j < pairs; j++) /* keys 2 j and 2 j + 1 side by side, 16 features at a time */
        for (int d = 0; d < dh; d += 16) {
            __mmask16 m = lanes(dh - d);
            __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, v + (size_t)2 * j * a->ld + d));
            __m512i hi = 2 * j + 1 < L ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, v + (size_t)(2 * j + 1) * a->ld + d))
                                       : _mm512_setzero_si512();
            _mm512_mask_storeu_epi32(vp + (size_t)j * dh + d, m, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    for (int r = 0; r < QB; r++) p32[(size_t)r * pairs + pairs - 1] = 0; /* an odd last key's partner weighs nothing */
    __m512 scale = _mm512_set1_ps(a->scale);
    const float *mb = a->mask_bias && !a->starts ? a->mask_bias + (size_t)b * T : NULL;
    for (int i0 = 0; i0 < L; i0 += QB) {
        int nq = L - i0 < QB ? L - i0 : QB;
        const uint32_t *qi[QB]; /* past the last query, the last again: its sums are computed and dropped */
        for (int r = 0; r < QB; r++) qi[r] = (const uint32_t *)(q + (size_t)(i0 + (r < nq ? r : nq - 1)) * a->ld);
        __m512 vmax[QB];
        for (int r = 0; r < QB; r++) vmax[r] = _mm512_set1_ps(-INFINITY);
        for (int kb = 0; kb < blocks; kb++) {
            const uint32_t *panel = kt + (size_t)kb * 16 * dp;
            __m512 acc[QB];
            for (int r = 0; r < QB; r++) acc[r] = _mm512_setzero_ps();
            for (int p = 0; p < dp; p++) {
                __m512bh kv = (__m512bh)_mm512_loadu_si512(panel + p * 16);
#pragma GCC unroll 8
                for (int r = 0; r < QB; r++) acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_set1_epi32((int)qi[r][p]), kv);
            }
            __mmask16 m = lanes(L - kb * 16);
            for (int r = 0; r < nq; r++) {
                __m512 x = _mm512_mul_ps(acc[r], scale);
                if (a->head_bias) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, a->head_bias + ((size_t)h * T + i0 + r) * T + kb * 16));
                if (mb) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, mb + kb * 16));
                _mm512_storeu_ps(s + ((size_t)r * blocks + kb) * 16, x);
                vmax[r] = _mm512_mask_max_ps(vmax[r], m, x, vmax[r]);
            }
        }
        float inv[QB];
        for (int r = 0; r < nq; r++) {
            __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax[r])), sum = _mm512_setzero_ps();
            for (int kb = 0; kb < blocks; kb++) {
                __mmask16 m = lanes(L - kb * 16);
                __m512 e = _mm512_maskz_mov_ps(m, _ZGVeN16v_expf(_mm512_sub_ps(_mm512_loadu_ps(s + ((size_t)r * blocks + kb) * 16), mx)));
                __m256i rounded = (__m256i)_mm512_cvtneps_pbh(e);
                sum = _mm512_add_ps(sum, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(rounded), 16)));
                _mm256_mask_storeu_epi16((uint16_t *)(p32 + (size_t)r * pairs) + kb * 16, m, rounded);
            }
            inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
        }
        const uint32_t *pr[QB];
        for (int r = 0; r < QB; r++) pr[r] = p32 + (size_t)(r < nq ? r : nq - 1) * pairs;
        for (int d = 0; d < dh; d += 16) {
            __mmask16 m = lanes(dh - d);
            __m512 acc[QB];
            for (int r = 0; r < QB; r++) acc[r] = _mm512_setzero_ps();
            for (int j = 0; j < pairs; j++) {
                __m512bh vv = (__m512bh)_mm512_maskz_loadu_epi32(m, vp + (size_t)j * dh + d);
#pragma GCC unroll 8
                for (int r = 0; r < QB; r++) acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_set1_epi32((int)pr[r][j]), vv);
            }
            for (int r = 0; r < nq; r++)
                _mm256_mask_storeu_epi16(a->out + (row0 + i0 + r) * H + (size_t)h * dh + d, m,
                                         (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(acc[r], _mm512_set1_ps(inv[r]))));
        }
    }
}

/* The same task through the tiles (mrec_attention_head_bf16_amx) */
static void attn_task_amx(void *arg, int task, int thread) {
    const attn_job *a = arg;
    int b = task / a->heads, h = task % a->heads, dh = a->dh, H = a->heads * dh, T = a->T;
    size_t row0 = a->starts ? (size_t)a->starts[b] : (size_t)b * T, at = row0 * a->ld + (size_t)h * dh;
    int L = a->starts ? a->starts[b + 1] - a->starts[b] : T;
    if (L <= 0) return;
    mrec_attention_head_bf16_amx(a->out + row0 * H + (size_t)h * dh, (size_t)H, a->q + at, a->k + at, a->v + at, a->ld,
                                 a->mask_bias && !a->starts ? a->mask_bias + (size_t)b * T : NULL,
                                 a->head_bias ? a->head_bias + (size_t)h * T * T : NULL, T, a->scale, L, dh, a->pool, thread);
}

mrec_status mrec_attention_bf16_cpu(uint16_t *out, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                                    const float *mask_bias, const float *head_bias, const int32_t *starts, float scale, int B,
                                    int T, int heads, int dh, mrec_pool *pool) {
    if (B <= 0 || T <= 0 || heads <= 0 || dh <= 0) return MREC_OK;
    /* pairs need even head widths and strides; a very long sequence's panels must fit a thread's scratch */
    if (dh % 2 || ld % 2 || (uintptr_t)q % 4 || (uintptr_t)k % 4 || attn_scratch_floats(T, dh) > MREC_GEMM_SCRATCH_FLOATS) {
        mrec_attention_bf16_ref(out, q, k, v, ld, mask_bias, head_bias, starts, scale, B, T, heads, dh);
        return MREC_OK;
    }
    attn_job a = {out, q, k, v, mask_bias, head_bias, starts, scale, ld, T, heads, dh, pool};
    mrec_pool_run(pool, mrec_attention_bf16_amx_fits(T, dh, pool) ? attn_task_amx : attn_task, &a, B * heads);
    return MREC_OK;
}
