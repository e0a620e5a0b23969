/* train.c: the CPU side of what the recommenders' training and evaluation
 * need beside the dense ops (kernels/cuda/train.cu is the GPU side): BPR's
 * gathered dot products, the transposed index of a batch's ids, the
 * evaluation mask, and NGCF's hashed dropout, LeakyReLU and L2 backward and
 * strided row copies. References and fast variants sit together here because
 * they are short; the fast ones split rows over the pool and compute each
 * row as the reference orders it, so the thread count changes no bit.
 */
#include "../mrec_kernels.h"
#include "parallel.h"

#include <math.h>
#include <string.h>

/* ---- gathered dot products ---- */

void mrec_gather_dot_ref(float *out, const float *A, const int32_t *ia, const float *B, const int32_t *ib, int n, int d) {
    for (int b = 0; b < n; b++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)A[(size_t)ia[b] * d + k] * B[(size_t)ib[b] * d + k];
        out[b] = (float)s;
    }
}

typedef struct {
    float *out;
    const float *A, *B;
    const int32_t *ia, *ib;
    int d, avx512;
} gather_dot_args;

#if defined(__x86_64__) && defined(__GNUC__)
#include "transpose16.h"
/* Sixteen pairs at a time with the scalar loop's bits: their products 16 k
 * at a time, transposed so that lane j holds pair j's, then added to the
 * sums in k order. The scalar loop waits on each add (4 cycles a product);
 * here sixteen sums advance per add. */
__attribute__((target("avx512f"))) static int64_t gather_dot_avx512(const gather_dot_args *a, int64_t lo, int64_t hi) {
    int d = a->d;
    for (; lo + 16 <= hi; lo += 16) {
        const float *x[16], *y[16];
        for (int j = 0; j < 16; j++) x[j] = a->A + (size_t)a->ia[lo + j] * d, y[j] = a->B + (size_t)a->ib[lo + j] * d;
        /* the next block's rows, scattered over A and B, while this one sums */
        for (int j = 0; lo + 32 <= hi && j < 16; j++)
            for (int k = 0; k < d; k += 16) {
                _mm_prefetch((const char *)(a->A + (size_t)a->ia[lo + 16 + j] * d + k), _MM_HINT_T0);
                _mm_prefetch((const char *)(a->B + (size_t)a->ib[lo + 16 + j] * d + k), _MM_HINT_T0);
            }
        __m512 s = _mm512_setzero_ps();
        for (int k = 0; k < d; k += 16) {
            int n = d - k < 16 ? d - k : 16;
            __mmask16 m = (__mmask16)((1u << n) - 1);
            __m512 p[16];
            for (int j = 0; j < 16; j++) p[j] = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x[j] + k), _mm512_maskz_loadu_ps(m, y[j] + k));
            transpose16(p);
            for (int c = 0; c < n; c++) s = _mm512_add_ps(s, p[c]);
        }
        _mm512_storeu_ps(a->out + lo, s);
    }
    return lo;
}
#endif

static void gather_dot_range(void *arg, int64_t lo, int64_t hi) {
    const gather_dot_args *a = arg;
#if defined(__x86_64__) && defined(__GNUC__)
    if (a->avx512) lo = gather_dot_avx512(a, lo, hi);
#endif
    for (int64_t b = lo; b < hi; b++) {
        const float *x = a->A + (size_t)a->ia[b] * a->d, *y = a->B + (size_t)a->ib[b] * a->d;
        float s = 0; /* in float, k in order: the sum the models' host loops make */
        for (int k = 0; k < a->d; k++) s += x[k] * y[k];
        a->out[b] = s;
    }
}

void mrec_gather_dot_cpu(float *out, const float *A, const int32_t *ia, const float *B, const int32_t *ib, int n, int d,
                         mrec_pool *pool) {
    gather_dot_args a = {out, A, B, ia, ib, d, mrec_pool_simd(pool) >= MREC_SIMD_AVX512};
    /* at least a 16-pair block a chunk; a chunk's last pairs short of a block take the scalar loop */
    mrec_parallel_range(pool, n, (1 + 4096 / (d > 0 ? d : 1) + 15) / 16 * 16, gather_dot_range, &a);
}

/* ---- the rows of a BPR batch's gradient ---- */

/* Rows [lo, hi) of the 3n; a product rounded, then added (no contraction in ISO C), as mrec_spmm_cpu sums */
static void bpr_rows_range(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef, int n, int d,
                           int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; r++) {
        int b = (int)(r % n), part = (int)(r / n);
        const float *tu = T + (size_t)ids[b] * d, *own = T + (size_t)ids[r] * d;
        const float *ti = T + (size_t)ids[n + b] * d, *tj = T + (size_t)ids[2 * n + b] * d;
        float *y = out + (size_t)r * d;
        for (int k = 0; k < d; k++) y[k] = 0.0f;
        if (part == 0) {
            if (coef)
                for (int k = 0; k < d; k++) y[k] += coef[0] * tu[k];
            if (dx) {
                float g = dx[b], ng = -dx[b];
                for (int k = 0; k < d; k++) y[k] += g * ti[k];
                for (int k = 0; k < d; k++) y[k] += ng * tj[k];
            }
        } else {
            if (dx) {
                float g = part == 1 ? dx[b] : -dx[b];
                for (int k = 0; k < d; k++) y[k] += g * tu[k];
            }
            if (coef)
                for (int k = 0; k < d; k++) y[k] += coef[part] * own[k];
        }
    }
}

void mrec_bpr_rows_ref(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef, int n, int d) {
    bpr_rows_range(out, T, ids, dx, coef, n, d, 0, 3 * (int64_t)n);
}

typedef struct {
    float *out;
    const float *T, *dx, *coef;
    const int32_t *ids;
    int n, d;
} bpr_rows_args;

static void bpr_rows_task(void *arg, int64_t lo, int64_t hi) {
    const bpr_rows_args *a = arg;
    bpr_rows_range(a->out, a->T, a->ids, a->dx, a->coef, a->n, a->d, lo, hi);
}

void mrec_bpr_rows_cpu(float *out, const float *T, const int32_t *ids, const float *dx, const float *coef, int n, int d,
                       mrec_pool *pool) {
    bpr_rows_args a = {out, T, dx, coef, ids, n, d};
    mrec_parallel_range(pool, 3 * (int64_t)n, 1 + 4096 / (d > 0 ? d : 1), bpr_rows_task, &a);
}

/* ---- a BPR batch's loss ---- */

double mrec_bpr_log_sigmoid_loss(float *dx, const float *pos, const float *neg, int n, double eps) {
    double loss = 0;
    for (int k = 0; k < n; k++) {
        double x = (double)pos[k] - neg[k], sig = 1.0 / (1.0 + exp(-x));
        loss += -log(eps + sig);
        dx[k] = (float)(-(sig * (1.0 - sig)) / (eps + sig) / n);
    }
    return loss / n;
}

double mrec_bpr_loss(float *dx, const float *pos, const float *neg, int n) {
    return mrec_bpr_log_sigmoid_loss(dx, pos, neg, n, 1e-10);
}

double mrec_bpr_softplus_loss(float *dx, const float *pos, const float *neg, int n) {
    double loss = 0;
    for (int b = 0; b < n; b++) {
        double x = (double)pos[b] - neg[b];
        loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); /* softplus(-x), stably */
        dx[b] = (float)(-1.0 / (1.0 + exp(x)) / n);
    }
    return loss / n;
}

double mrec_bpr_clamped_loss(float *dx, const float *pos, const float *neg, int n) {
    double loss = 0;
    for (int b = 0; b < n; b++) {
        double x = fmin(fmax((double)pos[b] - neg[b], -80.0), 1e8);
        loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
        dx[b] = (double)pos[b] - neg[b] < -80.0 ? 0.0f : (float)(-1.0 / (1.0 + exp(x)) / n);
    }
    return loss / n;
}

/* softplus(neg - pos) summed, dx not over n (the fork's SGL) */
static double softplus_sum(float *dx, const float *pos, const float *neg, int n) {
    double loss = 0;
    for (int b = 0; b < n; b++) {
        double x = (double)pos[b] - neg[b];
        loss += x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
        dx[b] = (float)(-1.0 / (1.0 + exp(x)));
    }
    return loss;
}

void mrec_bpr_batch_loss_cpu(float *dx, float *coef, double *loss, const float *dots, int n, const mrec_bpr_spec *spec) {
    const float *pos = dots, *neg = dots + n, *sq = dots + 2 * (size_t)n;
    float reg = spec->reg;
    double l = spec->form == MREC_BPR_SOFTPLUS ? mrec_bpr_softplus_loss(dx, pos, neg, n)
               : spec->form == MREC_BPR_CLAMPED      ? mrec_bpr_clamped_loss(dx, pos, neg, n)
               : spec->form == MREC_BPR_SOFTPLUS_SUM ? softplus_sum(dx, pos, neg, n)
               : spec->form == MREC_BPR_LOG_SIGMOID_1E5 ? mrec_bpr_log_sigmoid_loss(dx, pos, neg, n, 1e-5)
                                                     : mrec_bpr_loss(dx, pos, neg, n);
    if (spec->weight != 1.0f) {
        l = spec->weight * l;
        for (int b = 0; b < n; b++) dx[b] = spec->weight * dx[b];
    }
    if (spec->reg_form == MREC_BPR_REG_NORMS || spec->reg_form == MREC_BPR_REG_SQUARED) {
        double s[3] = {0, 0, 0};
        for (int t = 0; t < 3; t++)
            for (int b = 0; b < n; b++) s[t] += sq[(size_t)t * n + b];
        double nu = sqrt(s[0]), ni = sqrt(s[1]), nj = sqrt(s[2]);
        if (spec->reg_form == MREC_BPR_REG_NORMS) {
            coef[0] = nu > 0 ? (float)(reg / n / nu) : 0, coef[1] = ni > 0 ? (float)(reg / n / ni) : 0;
            coef[2] = nj > 0 ? (float)(reg / n / nj) : 0;
            l += reg * (nu + ni + nj) / n;
        } else {
            coef[0] = coef[1] = coef[2] = reg / n;
            l += reg * (nu * nu + ni * ni + nj * nj) / 2 / n;
        }
    } else if (spec->reg_form == MREC_BPR_REG_SQUARED_ALL) {
        double s = 0;
        for (size_t b = 0; b < 3 * (size_t)n; b++) s += sq[b];
        coef[0] = coef[1] = coef[2] = reg / spec->reg_div;
        l += reg * s / 2 / spec->reg_div;
    } else if (spec->reg_form == MREC_BPR_REG_NORMS_UI) {
        double nu = 0, ni = 0;
        for (int b = 0; b < n; b++) nu += sq[b], ni += sq[n + b];
        nu = sqrt(nu), ni = sqrt(ni);
        coef[0] = nu > 0 ? (float)(reg / n / nu) : 0, coef[1] = ni > 0 ? (float)(reg / n / ni) : 0, coef[2] = 0;
        l += reg * (nu + ni) / n;
    } else if (spec->reg_form == MREC_BPR_REG_PAIRS) {
        double s = 0;
        for (int b = 0; b < n; b++) s += 2.0 * sq[b] + (double)sq[n + b] + (double)sq[2 * (size_t)n + b];
        double half = 2.0 * spec->reg_div;
        coef[0] = (float)(4.0 * reg / half), coef[1] = coef[2] = (float)(2.0 * reg / half);
        l += reg * (s / half);
    }
    *loss = spec->accumulate ? *loss + l : l;
}

void mrec_loss_term_cpu(double *loss, const double *x, int n, float scale, double div) {
    double s = 0;
    for (int r = 0; r < n; r++) s += x[r];
    *loss += scale * s / div;
}

void mrec_loss_term_at_cpu(double *loss, const double *x, const int32_t *live, float scale) {
    if (*live > 0) mrec_loss_term_cpu(loss, x, *live, scale, *live);
}

void mrec_loss_cos_cpu(double *loss, const float *cos, int n, float weight) {
    double c = 0;
    for (int r = 0; r < n; r++) c += cos[r];
    *loss += weight * (1.0 - c / n);
}

void mrec_loss_norm_cpu(float *coef, double *loss, const float *sq, int n, float reg, int div) {
    double s = 0;
    for (int k = 0; k < n; k++) s += sq[k];
    double norm = sqrt(s);
    *coef = norm > 0 ? (float)(reg / div / norm) : 0.0f;
    *loss += reg * norm / div;
}

void mrec_loss_dot_cpu(double *loss, const float *x, const float *y, int64_t n, float scale, double div) {
    double s = 0;
    for (int64_t k = 0; k < n; k++) s += (double)x[k] * y[k];
    *loss += scale * s / div;
}

/* The eight row sums, then the loss, alpha and beta in double (train.cu's thread 0 finishes with these lines). */
void mrec_moment_align_cpu(float *alpha, float *sums, double *loss, int W, int64_t n, float w) {
    double row[8], mean[4], var[4], total = 0;
    for (int r = 0; r < 8; r++) {
        row[r] = 0;
        for (int c = 0; c < W; c++) row[r] += sums[(size_t)r * W + c];
    }
    for (int a = 0; a < 4; a++) mean[a] = row[2 * a] / (double)n, var[a] = (row[2 * a + 1] - row[2 * a] * row[2 * a] / (double)n) / (double)(n - 1);
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++) total += fabs(var[a] - var[b]) + fabs(mean[a] - mean[b]);
    *loss += w * total;
    for (int a = 0; a < 4; a++) {
        double cv = 0, cm = 0;
        for (int b = 0; b < 4; b++)
            if (b != a) cv += (var[a] > var[b]) - (var[a] < var[b]), cm += (mean[a] > mean[b]) - (mean[a] < mean[b]);
        double al = w * cv * 2.0 / (double)(n - 1), be = w * cm / (double)n - al * mean[a];
        alpha[a] = (float)al;
        for (int c = 0; c < W; c++) sums[(size_t)a * W + c] = (float)be;
    }
}

void mrec_loss_add_cpu(mrec_loss_sum *sum, const double *loss) {
    if (!isfinite(*loss) && sum->bad < 0) sum->bad = sum->batches, sum->bad_loss = *loss;
    sum->sum += *loss;
    sum->batches++;
}

/* ---- the transposed index of a batch ---- */

mrec_status mrec_index_csr_cpu(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, mrec_pool *pool) {
    (void)pool; /* one pass over N and one over V: nothing worth a thread */
    for (int p = 0; p < N; p++)
        if (ids[p] < 0 || ids[p] >= V)
            return mrec_fail(MREC_ERR_ARG, "index: id %d at position %d is outside [0, %d)", ids[p], p, V);
    memset(row_ptr, 0, sizeof *row_ptr * ((size_t)V + 1));
    for (int p = 0; p < N; p++) row_ptr[ids[p] + 1]++;
    for (int v = 0; v < V; v++) row_ptr[v + 1] += row_ptr[v];
    /* positions in increasing order within each id: row_ptr[v] runs ahead as a fill pointer, then is restored */
    for (int p = 0; p < N; p++) pos[row_ptr[ids[p]]++] = p;
    for (int v = V; v > 0; v--) row_ptr[v] = row_ptr[v - 1];
    row_ptr[0] = 0;
    return MREC_OK;
}

/* ---- the evaluation mask ---- */

void mrec_mask_rows_ref(float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R, int C) {
    for (int r = 0; r < R; r++)
        for (int64_t p = row_ptr[u0 + r]; p < row_ptr[u0 + r + 1]; p++)
            if (col[p] >= 0 && col[p] < C) scores[(size_t)r * C + col[p]] = -INFINITY;
}

typedef struct {
    float *scores;
    const int64_t *row_ptr;
    const int32_t *col;
    int u0, C;
} mask_args;

static void mask_range(void *arg, int64_t lo, int64_t hi) {
    const mask_args *a = arg;
    mrec_mask_rows_ref(a->scores + (size_t)lo * a->C, a->row_ptr, a->col, a->u0 + (int)lo, (int)(hi - lo), a->C);
}

void mrec_mask_rows_cpu(float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R, int C,
                        mrec_pool *pool) {
    mask_args a = {scores, row_ptr, col, u0, C};
    mrec_parallel_range(pool, R, 64, mask_range, &a);
}

/* ---- full-ranking accuracy metrics ---- */

size_t mrec_rank_metrics_work_bytes(int R, int n_k) {
    return sizeof(double) * (size_t)(R > 0 ? R : 0) * MREC_RANK_METRICS * (size_t)n_k;
}

typedef struct {
    double *work;
    const int32_t *top;
    const mrec_rank_relevance *rel;
    int u0;
} rank_args;

static void rank_range(void *arg, int64_t lo, int64_t hi) {
    const rank_args *a = arg;
    const mrec_rank_relevance *rel = a->rel;
    int kmax = rel->k[rel->n_k - 1], per = MREC_RANK_METRICS * rel->n_k;
    for (int64_t b = lo; b < hi; b++)
        if (rel->n_rel[a->u0 + b] > 0) mrec_rank_user(a->work + b * per, a->top + b * kmax, rel, a->u0 + (int)b);
}

void mrec_rank_metrics_cpu(mrec_rank_sums *sums, double *work, const int32_t *top, int u0, int R,
                           const mrec_rank_relevance *rel, mrec_pool *pool) {
    rank_args a = {work, top, rel, u0};
    mrec_parallel_range(pool, R, 16, rank_range, &a);
    int per = MREC_RANK_METRICS * rel->n_k;
    for (int b = 0; b < R; b++) {
        if (rel->n_rel[u0 + b] <= 0) continue;
        sums->users++;
        for (int m = 0; m < MREC_RANK_METRICS; m++)
            for (int i = 0; i < rel->n_k; i++) sums->sum[m][i] += work[(size_t)b * per + m * rel->n_k + i];
    }
}

/* ---- NGCF's layers: hashed dropout, LeakyReLU's backward, row copies, L2 backward ---- */

/* recsys' mrec_mix64 (SplitMix64's finalizer), repeated here because kernels know nothing of recsys; the GPU's copy
 * is in train.cu, and the tests hold the three together */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void mrec_hash_dropout_ref(float *out, const float *x, const int32_t *idx, int64_t n, float p, uint64_t key) {
    for (int64_t t = 0; t < n; t++) {
        uint64_t e = idx ? (uint64_t)idx[t] : (uint64_t)t;
        float u = (float)((mix64(key ^ (e * 0x9E3779B97F4A7C15ull)) >> 40) * (1.0 / 16777216.0));
        out[t] = u < p ? 0.0f : x ? x[t] / (1.0f - p) : 1.0f / (1.0f - p);
    }
}

typedef struct {
    float *out;
    const float *x, *y, *z;
    const int32_t *idx;
    float p, s;
    uint64_t key;
    int ld_out, ld_in, C;
    int avx2;   /* the pool may use AVX2 */
    int avx512; /* and AVX-512 */
} ngcf_args;

/* The hash costs more than the memory it touches (two 64-bit multiplies an
 * element), so with AVX2 it runs four lanes at a time. AVX2 multiplies only
 * 32 x 32 -> 64 bits; the low 64 bits of a 64-bit product are
 * lo(a) lo(b) + ((hi(a) lo(b) + lo(a) hi(b)) << 32), as in C's wrapping
 * multiply. The top 24 bits of a hash are an exact float, so the vectors
 * give the bits of the scalar loop. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

__attribute__((target("avx2"))) static inline __m256i mul64_avx2(__m256i a, __m256i b) {
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b), _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
    return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

__attribute__((target("avx2"))) static inline __m256i mix64_avx2(__m256i z) {
    z = mul64_avx2(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), _mm256_set1_epi64x((long long)0xBF58476D1CE4E5B9ull));
    z = mul64_avx2(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), _mm256_set1_epi64x((long long)0x94D049BB133111EBull));
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

/* hash_dropout_range's elements [lo, lo + 8k); returns where it stopped. */
__attribute__((target("avx2"))) static int64_t hash_dropout_avx2(const ngcf_args *a, int64_t lo, int64_t hi) {
    const __m256i golden = _mm256_set1_epi64x((long long)0x9E3779B97F4A7C15ull), key = _mm256_set1_epi64x((long long)a->key);
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7); /* the low halves of four 64-bit lanes, first */
    const __m256 scale = _mm256_set1_ps(1.0f / 16777216.0f), p = _mm256_set1_ps(a->p), keep = _mm256_set1_ps(1.0f - a->p);
    const __m256 kept_value = _mm256_set1_ps(1.0f / (1.0f - a->p));
    int64_t t = lo;
    for (; t + 8 <= hi; t += 8) {
        __m256i e0, e1;
        if (a->idx) {
            e0 = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(a->idx + t)));
            e1 = _mm256_cvtepi32_epi64(_mm_loadu_si128((const __m128i *)(a->idx + t + 4)));
        } else {
            e0 = _mm256_setr_epi64x(t, t + 1, t + 2, t + 3);
            e1 = _mm256_add_epi64(e0, _mm256_set1_epi64x(4));
        }
        __m256i h0 = _mm256_srli_epi64(mix64_avx2(_mm256_xor_si256(key, mul64_avx2(e0, golden))), 40);
        __m256i h1 = _mm256_srli_epi64(mix64_avx2(_mm256_xor_si256(key, mul64_avx2(e1, golden))), 40);
        __m256i both = _mm256_permute2x128_si256(_mm256_permutevar8x32_epi32(h0, even), _mm256_permutevar8x32_epi32(h1, even), 0x20);
        __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(both), scale);
        __m256 kept = _mm256_cmp_ps(u, p, _CMP_NLT_UQ); /* !(u < p), as the scalar test */
        __m256 v = a->x ? _mm256_div_ps(_mm256_loadu_ps(a->x + t), keep) : kept_value;
        _mm256_storeu_ps(a->out + t, _mm256_and_ps(kept, v));
    }
    return t;
}
#endif

static void hash_dropout_range(void *arg, int64_t lo, int64_t hi) {
    const ngcf_args *a = arg;
#if defined(__x86_64__) && defined(__GNUC__)
    if (a->avx2) lo = hash_dropout_avx2(a, lo, hi);
#endif
    for (int64_t t = lo; t < hi; t++) {
        uint64_t e = a->idx ? (uint64_t)a->idx[t] : (uint64_t)t;
        float u = (float)((mix64(a->key ^ (e * 0x9E3779B97F4A7C15ull)) >> 40) * (1.0 / 16777216.0));
        a->out[t] = u < a->p ? 0.0f : a->x ? a->x[t] / (1.0f - a->p) : 1.0f / (1.0f - a->p);
    }
}

void mrec_hash_dropout_cpu(float *out, const float *x, const int32_t *idx, int64_t n, float p, uint64_t key, mrec_pool *pool) {
    ngcf_args a = {.out = out, .x = x, .idx = idx, .p = p, .key = key, .avx2 = mrec_pool_simd(pool) >= MREC_SIMD_AVX2};
    mrec_parallel_range(pool, n, 4096, hash_dropout_range, &a);
}

void mrec_ngcf_combine_ref(float *e, float *mask, const float *z1, const float *z2, float slope, float p, uint64_t key, int64_t n) {
    mrec_hash_dropout_ref(mask, NULL, NULL, n, p, key);
    for (int64_t t = 0; t < n; t++) {
        float a = z1[t] >= 0.0f ? z1[t] : slope * z1[t], b = z2[t] >= 0.0f ? z2[t] : slope * z2[t];
        e[t] = (a + b) * mask[t];
    }
}

MREC_VECTOR_CLONES static void combine_rows(float *restrict e, const float *restrict mask, const float *restrict z1,
                                            const float *restrict z2, float slope, int64_t n) {
    for (int64_t t = 0; t < n; t++) {
        float a = z1[t] >= 0.0f ? z1[t] : slope * z1[t], b = z2[t] >= 0.0f ? z2[t] : slope * z2[t];
        e[t] = (a + b) * mask[t];
    }
}

static void combine_range(void *arg, int64_t lo, int64_t hi) {
    const ngcf_args *a = arg;
    ngcf_args m = *a; /* the mask first, by the dropout's own loop (x NULL: the mask itself) */
    m.out = (float *)a->z, m.x = NULL, m.idx = NULL;
    hash_dropout_range(&m, lo, hi);
    combine_rows(a->out + lo, a->z + lo, a->x + lo, a->y + lo, a->s, hi - lo);
}

void mrec_ngcf_combine_cpu(float *e, float *mask, const float *z1, const float *z2, float slope, float p, uint64_t key, int64_t n,
                           mrec_pool *pool) {
    ngcf_args a = {.out = e, .x = z1, .y = z2, .z = mask, .p = p, .s = slope, .key = key,
                   .avx2 = mrec_pool_simd(pool) >= MREC_SIMD_AVX2};
    mrec_parallel_range(pool, n, 4096, combine_range, &a);
}

void mrec_ngcf_combine_back_ref(float *dz1, float *dz2, const float *de, const float *mask, const float *z1, const float *z2,
                                float slope, int64_t n) {
    for (int64_t t = 0; t < n; t++) {
        float g = de[t] * mask[t];
        dz1[t] = z1[t] > 0 ? g : slope * g, dz2[t] = z2[t] > 0 ? g : slope * g;
    }
}

typedef struct {
    float *dz1, *dz2;
    const float *de, *mask, *z1, *z2;
    float slope;
} combine_back_args;

MREC_VECTOR_CLONES static void combine_back_rows(float *restrict dz1, float *restrict dz2, const float *restrict de,
                                                 const float *restrict mask, const float *restrict z1, const float *restrict z2,
                                                 float slope, int64_t n) {
    for (int64_t t = 0; t < n; t++) {
        float g = de[t] * mask[t];
        dz1[t] = z1[t] > 0 ? g : slope * g, dz2[t] = z2[t] > 0 ? g : slope * g;
    }
}

static void combine_back_range(void *arg, int64_t lo, int64_t hi) {
    const combine_back_args *a = arg;
    combine_back_rows(a->dz1 + lo, a->dz2 + lo, a->de + lo, a->mask + lo, a->z1 + lo, a->z2 + lo, a->slope, hi - lo);
}

void mrec_ngcf_combine_back_cpu(float *dz1, float *dz2, const float *de, const float *mask, const float *z1, const float *z2,
                                float slope, int64_t n, mrec_pool *pool) {
    combine_back_args a = {dz1, dz2, de, mask, z1, z2, slope};
    mrec_parallel_range(pool, n, 8192, combine_back_range, &a);
}

void mrec_leaky_relu_back_ref(float *dz, const float *dy, const float *z, float slope, int64_t n) {
    for (int64_t t = 0; t < n; t++) dz[t] = z[t] > 0 ? dy[t] : slope * dy[t];
}

/* The reference's loop, compiled for wide vectors (element by element: the same bits). */
MREC_VECTOR_CLONES static void leaky_back_rows(float *dz, const float *dy, const float *z, float slope, int64_t n) {
    for (int64_t t = 0; t < n; t++) dz[t] = z[t] > 0 ? dy[t] : slope * dy[t];
}

static void leaky_back_range(void *arg, int64_t lo, int64_t hi) {
    const ngcf_args *a = arg;
    leaky_back_rows(a->out + lo, a->x + lo, a->z + lo, a->s, hi - lo);
}

void mrec_leaky_relu_back_cpu(float *dz, const float *dy, const float *z, float slope, int64_t n, mrec_pool *pool) {
    ngcf_args a = {.out = dz, .x = dy, .z = z, .s = slope};
    mrec_parallel_range(pool, n, 8192, leaky_back_range, &a);
}

void mrec_l2_normalize_rows_back_ref(float *dx, const float *dy, const float *y, const float *x, float eps, float beta, int R,
                                     int C) {
    for (int r = 0; r < R; r++) {
        size_t o = (size_t)r * C;
        double ss = 0, ydy = 0;
        for (int c = 0; c < C; c++) ss += (double)x[o + c] * x[o + c], ydy += (double)y[o + c] * dy[o + c];
        double norm = sqrt(ss);
        for (int c = 0; c < C; c++) {
            float g = norm > eps ? (float)((dy[o + c] - y[o + c] * ydy) / norm) : (float)(dy[o + c] / (double)eps);
            dx[o + c] = beta == 0.0f ? g : beta * dx[o + c] + g;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
/* Up to 8 floats (m) with AVX-512F alone (the 256-bit masked load is AVX-512VL). */
__attribute__((target("avx512f"))) static inline __m256 load8(__mmask16 m, const float *p) {
    return _mm512_castps512_ps256(_mm512_maskz_loadu_ps(m, p));
}

/* The rows' gradients from their sums (norm, y . dy), 8 columns at a time: the reference's double operations.
 * The divisions bound this part, so it fetches the next rows' x, y and dy (n of each from `next`; -1 at
 * the end: none), which the sums then read from cache. */
__attribute__((target("avx512f"))) static void l2_back_rows(const ngcf_args *a, int64_t lo, int n, const double *norm,
                                                           const double *yd, int64_t next) {
    int C = a->C;
    for (int i = 0; i < n; i++) {
        if (next >= 0) {
            size_t p = (size_t)(next + i) * C;
            for (int c = 0; c < C; c += 16) {
                _mm_prefetch((const char *)(a->z + p + c), _MM_HINT_T0);
                _mm_prefetch((const char *)(a->y + p + c), _MM_HINT_T0);
                _mm_prefetch((const char *)(a->x + p + c), _MM_HINT_T0);
            }
        }
        size_t o = (size_t)(lo + i) * C;
        const float *dyr = a->x + o, *yr = a->y + o;
        float *dx = a->out + o;
        int far = norm[i] > a->p;
        __m512d nv = _mm512_set1_pd(far ? norm[i] : (double)a->p), s = _mm512_set1_pd(yd[i]);
        for (int c = 0; c < C; c += 8) {
            __mmask16 m = (__mmask16)(C - c >= 8 ? 0xFF : (1u << (C - c)) - 1);
            __m512d dyv = _mm512_cvtps_pd(load8(m, dyr + c));
            __m512d num = far ? _mm512_sub_pd(dyv, _mm512_mul_pd(_mm512_cvtps_pd(load8(m, yr + c)), s)) : dyv;
            __m256 g = _mm512_cvtpd_ps(_mm512_div_pd(num, nv));
            if (a->s != 0.0f) g = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(a->s), load8(m, dx + c)), g);
            _mm512_mask_storeu_ps(dx + c, m, _mm512_castps256_ps512(g));
        }
    }
}

/* A zmm of 16 floats as two of 8 doubles: lanes 0-7, 8-15. */
__attribute__((target("avx512f"))) static inline __m512d lo_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
__attribute__((target("avx512f"))) static inline __m512d hi_pd(__m512 v) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* Sixteen rows at a time with the reference's bits: lane i sums row i's squares and y * dy in double, column by
 * column as the reference does, so sixteen sums advance per add where the reference waits on each. The columns
 * come 16 x 16 blocks at a time, turned in registers (a gather per column cost twice as much), the last C % 16
 * gathered. Then each row's gradient, the same double operations. */
__attribute__((target("avx512f"))) static int64_t l2_back_avx512(const ngcf_args *a, int64_t lo, int64_t hi) {
    int C = a->C;
    if ((int64_t)16 * C > INT32_MAX) return lo;
    __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(C));
    const float *src[3] = {a->z, a->y, a->x}; /* x, y, dy */
    for (; lo + 16 <= hi; lo += 16) {
        size_t o = (size_t)lo * C;
        __m512d ss[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()}, ydy[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
        int c = 0;
        for (; c + 16 <= C; c += 16) {
            __m512 t[3][16];
            for (int k = 0; k < 3; k++) {
                for (int i = 0; i < 16; i++) t[k][i] = _mm512_loadu_ps(src[k] + o + (size_t)i * C + c);
                transpose16(t[k]);
            }
            for (int j = 0; j < 16; j++) {
                __m512d x0 = lo_pd(t[0][j]), x1 = hi_pd(t[0][j]);
                ss[0] = _mm512_add_pd(ss[0], _mm512_mul_pd(x0, x0)), ss[1] = _mm512_add_pd(ss[1], _mm512_mul_pd(x1, x1));
                ydy[0] = _mm512_add_pd(ydy[0], _mm512_mul_pd(lo_pd(t[1][j]), lo_pd(t[2][j])));
                ydy[1] = _mm512_add_pd(ydy[1], _mm512_mul_pd(hi_pd(t[1][j]), hi_pd(t[2][j])));
            }
        }
        for (; c < C; c++) {
            __m512 x = _mm512_i32gather_ps(idx, src[0] + o + c, 4), y = _mm512_i32gather_ps(idx, src[1] + o + c, 4);
            __m512 dy = _mm512_i32gather_ps(idx, src[2] + o + c, 4);
            ss[0] = _mm512_add_pd(ss[0], _mm512_mul_pd(lo_pd(x), lo_pd(x))), ss[1] = _mm512_add_pd(ss[1], _mm512_mul_pd(hi_pd(x), hi_pd(x)));
            ydy[0] = _mm512_add_pd(ydy[0], _mm512_mul_pd(lo_pd(y), lo_pd(dy)));
            ydy[1] = _mm512_add_pd(ydy[1], _mm512_mul_pd(hi_pd(y), hi_pd(dy)));
        }
        double norm[16], yd[16];
        _mm512_storeu_pd(norm, _mm512_sqrt_pd(ss[0])), _mm512_storeu_pd(norm + 8, _mm512_sqrt_pd(ss[1]));
        _mm512_storeu_pd(yd, ydy[0]), _mm512_storeu_pd(yd + 8, ydy[1]);
        l2_back_rows(a, lo, 16, norm, yd, lo + 32 <= hi ? lo + 16 : -1);
    }
    return lo;
}
#endif

static void l2_back_range(void *arg, int64_t lo, int64_t hi) {
    const ngcf_args *a = arg;
#if defined(__x86_64__) && defined(__GNUC__)
    if (a->avx512) lo = l2_back_avx512(a, lo, hi);
#endif
    size_t o = (size_t)lo * a->C;
    mrec_l2_normalize_rows_back_ref(a->out + o, a->x + o, a->y + o, a->z + o, a->p, a->s, (int)(hi - lo), a->C);
}

void mrec_l2_normalize_rows_back_cpu(float *dx, const float *dy, const float *y, const float *x, float eps, float beta, int R,
                                     int C, mrec_pool *pool) {
    ngcf_args a = {.out = dx, .x = dy, .y = y, .z = x, .p = eps, .s = beta, .C = C, .avx512 = mrec_pool_simd(pool) >= MREC_SIMD_AVX512};
    mrec_parallel_range(pool, R, 1 + 4096 / (C > 0 ? C : 1), l2_back_range, &a);
}

/* ---- the contrastive graph models: SimGCL's sign noise, InfoNCE's rows ---- */

static float hash_uniform(uint64_t key, uint64_t e) {
    return (float)((mix64(key ^ (e * 0x9E3779B97F4A7C15ull)) >> 40) * (1.0 / 16777216.0));
}

void mrec_sign_noise_ref(float *x, const float *u, float eps, uint64_t key, uint64_t offset, int R, int C) {
    for (int r = 0; r < R; r++) {
        float *row = x + (size_t)r * C, s = 0;
        uint64_t e0 = offset + (uint64_t)r * (uint64_t)C;
        for (int c = 0; c < C; c++) {
            float v = u ? u[(size_t)r * C + c] : hash_uniform(key, e0 + (uint64_t)c);
            s += v * v;
        }
        float scale = eps / fmaxf(sqrtf(s), 1e-12f);
        for (int c = 0; c < C; c++) {
            float v = u ? u[(size_t)r * C + c] : hash_uniform(key, e0 + (uint64_t)c);
            row[c] += (float)((row[c] > 0) - (row[c] < 0)) * (v * scale);
        }
    }
}

typedef struct {
    float *x, *g;
    double *loss;
    const float *u, *s;
    const int32_t *target;
    float eps;
    uint64_t key, offset;
    int C, live;
} cl_args;

static void sign_noise_range(void *arg, int64_t lo, int64_t hi) {
    const cl_args *a = arg;
    size_t o = (size_t)lo * a->C;
    mrec_sign_noise_ref(a->x + o, a->u ? a->u + o : NULL, a->eps, a->key, a->offset + o, (int)(hi - lo), a->C);
}

void mrec_sign_noise_cpu(float *x, const float *u, float eps, uint64_t key, uint64_t offset, int R, int C, mrec_pool *pool) {
    cl_args a = {.x = x, .u = u, .eps = eps, .key = key, .offset = offset, .C = C};
    mrec_parallel_range(pool, R, 1 + 4096 / (C > 0 ? C : 1), sign_noise_range, &a);
}

static float gumbel_one(uint64_t key, int64_t e) {
    double u = ((double)(mix64(key ^ ((uint64_t)e * 0x9E3779B97F4A7C15ull)) >> 40) + 0.5) * (1.0 / 16777216.0);
    return (float)-log(-log(u));
}

void mrec_gumbel_noise_ref(float *out, uint64_t key, int64_t n) {
    for (int64_t e = 0; e < n; e++) out[e] = gumbel_one(key, e);
}

static void gumbel_range(void *arg, int64_t lo, int64_t hi) {
    const cl_args *a = arg;
    for (int64_t e = lo; e < hi; e++) a->x[e] = gumbel_one(a->key, e);
}

void mrec_gumbel_noise_cpu(float *out, uint64_t key, int64_t n, mrec_pool *pool) {
    cl_args a = {.x = out, .key = key};
    mrec_parallel_range(pool, n, 4096, gumbel_range, &a);
}

void mrec_softmax_xent_rows_ref(float *g, double *loss, const float *s, const int32_t *target, float alpha, int R, int C) {
    for (int r = 0; r < R; r++) {
        const float *in = s + (size_t)r * C;
        float *out = g + (size_t)r * C, top = in[0];
        for (int c = 1; c < C; c++) top = in[c] > top ? in[c] : top;
        int t = target ? target[r] : r;
        float at_t = in[t];
        double z = 0;
        for (int c = 0; c < C; c++) {
            float e = expf(in[c] - top);
            out[c] = e, z += e; /* out may be in: in[c] is read before */
        }
        loss[r] = top + log(z) - at_t;
        float scale = (float)(alpha / z);
        for (int c = 0; c < C; c++) out[c] *= scale;
        out[t] -= alpha;
    }
}

/* One row of mrec_softmax_xent_rows_ref 16 lanes at a time where the CPU
 * has AVX-512 (scalar expf made it most of an InfoNCE step): libmvec's expf
 * (within a few ulps of scalar expf), the sum z in double in 8 lanes. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512 x);

__attribute__((target("avx512f"))) static void xent_row_avx512(float *out, double *loss, const float *in, int t, float alpha,
                                                              int C) {
    __m512 vtop = _mm512_set1_ps(-INFINITY);
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = C - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c)) - 1);
        vtop = _mm512_mask_max_ps(vtop, k, vtop, _mm512_maskz_loadu_ps(k, in + c));
    }
    float top = _mm512_reduce_max_ps(vtop), at_t = in[t];
    __m512 vt = _mm512_set1_ps(top);
    __m512d z0 = _mm512_setzero_pd(), z1 = _mm512_setzero_pd();
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = C - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c)) - 1);
        __m512 e = _mm512_maskz_mov_ps(k, _ZGVeN16v_expf(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, in + c), vt)));
        _mm512_mask_storeu_ps(out + c, k, e); /* out may be in: in[c .. c + 15] were read */
        z0 = _mm512_add_pd(z0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        z1 = _mm512_add_pd(z1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    double z = _mm512_reduce_add_pd(_mm512_add_pd(z0, z1));
    *loss = top + log(z) - at_t;
    __m512 scale = _mm512_set1_ps((float)(alpha / z));
    for (int c = 0; c < C; c += 16) {
        __mmask16 k = C - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c)) - 1);
        _mm512_mask_storeu_ps(out + c, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, out + c), scale));
    }
    out[t] -= alpha;
}

/* The same 8 lanes at a time with AVX2 (libmvec's 8-lane expf), the
 * row's last C % 8 values through a padded block. */
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256 x);

__attribute__((target("avx2,fma"))) static void xent_row_avx2(float *out, double *loss, const float *in, int t, float alpha, int C) {
    int full = C / 8 * 8, rest = C - full;
    float pad[8];
    for (int c = 0; c < 8; c++) pad[c] = c < rest ? in[full + c] : -INFINITY;
    __m256 vtop = _mm256_loadu_ps(pad);
    for (int c = 0; c < full; c += 8) vtop = _mm256_max_ps(vtop, _mm256_loadu_ps(in + c));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vtop), _mm256_extractf128_ps(vtop, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    float top = _mm_cvtss_f32(_mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1))), at_t = in[t];
    __m256 vt = _mm256_set1_ps(top);
    __m256d z0 = _mm256_setzero_pd(), z1 = _mm256_setzero_pd();
    for (int c = 0; c <= full; c += 8) {
        const float *src = c < full ? in + c : pad; /* the padding's -inf gives e = 0 */
        if (c == full && !rest) break;
        __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(src), vt));
        if (c < full) _mm256_storeu_ps(out + c, e); /* out may be in: in[c .. c + 7] were read */
        else _mm256_storeu_ps(pad, e);
        z0 = _mm256_add_pd(z0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        z1 = _mm256_add_pd(z1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double zs[4];
    _mm256_storeu_pd(zs, _mm256_add_pd(z0, z1));
    double z = (zs[0] + zs[1]) + (zs[2] + zs[3]);
    *loss = top + log(z) - at_t;
    float scale = (float)(alpha / z);
    __m256 vs = _mm256_set1_ps(scale);
    for (int c = 0; c < full; c += 8) _mm256_storeu_ps(out + c, _mm256_mul_ps(_mm256_loadu_ps(out + c), vs));
    for (int c = 0; c < rest; c++) out[full + c] = pad[c] * scale;
    out[t] -= alpha;
}

/* 2: AVX-512, 1: AVX2 and FMA, 0: neither */
static int xent_level(void) {
    static int level = -1; /* a benign race: every thread writes the same */
    if (level < 0) {
        __builtin_cpu_init();
        level = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    }
    return level;
}
#else
#define xent_level() 0
#define xent_row_avx512(out, loss, in, t, alpha, C) ((void)0)
#define xent_row_avx2(out, loss, in, t, alpha, C) ((void)0)
#endif

/* One row of C scores against its target t, by the widest instructions the CPU has. */
static void xent_row(float *g, double *loss, const float *s, int32_t t, float alpha, int C) {
    int level = xent_level();
    if (level == 2) xent_row_avx512(g, loss, s, t, alpha, C);
    else if (level == 1) xent_row_avx2(g, loss, s, t, alpha, C);
    else mrec_softmax_xent_rows_ref(g, loss, s, &t, alpha, 1, C);
}

static void xent_range(void *arg, int64_t lo, int64_t hi) {
    const cl_args *a = arg;
    for (int64_t r = lo; r < hi; r++) /* the diagonal (no targets): row r's target is r */
        xent_row(a->g + (size_t)r * a->C, a->loss + r, a->s + (size_t)r * a->C, a->target ? a->target[r] : (int32_t)r, a->eps, a->C);
}

/* The live rows as rows of live columns (their pitch C); the rest zeros. */
static void xent_live_range(void *arg, int64_t lo, int64_t hi) {
    const cl_args *a = arg;
    for (int64_t r = lo; r < hi; r++) {
        float *g = a->g + (size_t)r * a->C;
        int zeros_from = r < a->live ? a->live : 0;
        if (r < a->live) xent_row(g, a->loss + r, a->s + (size_t)r * a->C, (int32_t)r, a->eps, a->live);
        else a->loss[r] = 0;
        memset(g + zeros_from, 0, sizeof(float) * (size_t)(a->C - zeros_from));
    }
}

void mrec_softmax_xent_rows_cpu(float *g, double *loss, const float *s, const int32_t *target, float alpha, int R, int C,
                                mrec_pool *pool) {
    cl_args a = {.g = g, .loss = loss, .s = s, .target = target, .eps = alpha, .C = C};
    mrec_parallel_range(pool, R, 1 + 4096 / (C > 0 ? C : 1), xent_range, &a);
}

void mrec_softmax_xent_rows_at_cpu(float *g, double *loss, const float *s, const float *alpha, const int32_t *live, int R, int C,
                                   mrec_pool *pool) {
    int n = *live < 0 ? 0 : *live > R ? R : *live;
    cl_args a = {.g = g, .loss = loss, .s = s, .eps = *alpha, .C = C, .live = n > C ? C : n};
    mrec_parallel_range(pool, R, 1 + 4096 / (C > 0 ? C : 1), xent_live_range, &a);
}

/* ---- LATTICE's normalized Laplacian ---- */

void mrec_inv_sqrt_ref(float *out, const float *in, int64_t n) {
    for (int64_t t = 0; t < n; t++) out[t] = in[t] > 0 ? 1.0f / sqrtf(in[t]) : in[t] == 0 ? 0.0f : NAN;
}

static void inv_sqrt_range(void *arg, int64_t lo, int64_t hi) {
    const cl_args *a = arg;
    mrec_inv_sqrt_ref(a->x + lo, a->s + lo, hi - lo);
}

void mrec_inv_sqrt_cpu(float *out, const float *in, int64_t n, mrec_pool *pool) {
    cl_args a = {.x = out, .s = in};
    mrec_parallel_range(pool, n, 8192, inv_sqrt_range, &a);
}

/* ---- ItemKNN's scores ---- */

void mrec_knn_scores_ref(float *scores, const int64_t *row_ptr, const int32_t *col, const int32_t *nbr, const float *sim, int u0,
                         int R, int C, int k) {
    for (int r = 0; r < R; r++) {
        int64_t lo = row_ptr[u0 + r], hi = row_ptr[u0 + r + 1];
        for (int i = 0; i < C; i++) {
            float s = 0;
            for (int t = 0; t < k; t++) {
                int j = nbr[(size_t)i * k + t], has = 0;
                for (int64_t p = lo; p < hi && j >= 0 && !has; p++) has = col[p] == j;
                if (has) s += sim[(size_t)i * k + t];
            }
            scores[(size_t)r * C + i] = s;
        }
    }
}

typedef struct {
    float *scores;
    const int64_t *row_ptr;
    const int32_t *col, *nbr;
    const float *sim;
    int u0, C, k;
} knn_scores_args;

/* whether j is among col[lo, hi) (sorted): a binary search, the same answer as the reference's scan */
static int has_item(const int32_t *col, int64_t lo, int64_t hi, int j) {
    int64_t a = lo, b = hi;
    while (a < b) {
        int64_t mid = a + (b - a) / 2;
        if (col[mid] < j) a = mid + 1;
        else b = mid;
    }
    return a < hi && col[a] == j;
}

static void knn_scores_range(void *arg, int64_t lo_r, int64_t hi_r) {
    const knn_scores_args *a = arg;
    for (int64_t r = lo_r; r < hi_r; r++) {
        int64_t lo = a->row_ptr[a->u0 + r], hi = a->row_ptr[a->u0 + r + 1];
        for (int i = 0; i < a->C; i++) {
            float s = 0;
            for (int t = 0; t < a->k; t++) {
                int j = a->nbr[(size_t)i * a->k + t];
                if (j >= 0 && has_item(a->col, lo, hi, j)) s += a->sim[(size_t)i * a->k + t];
            }
            a->scores[(size_t)r * a->C + i] = s;
        }
    }
}

void mrec_knn_scores_cpu(float *scores, const int64_t *row_ptr, const int32_t *col, const int32_t *nbr, const float *sim, int u0,
                         int R, int C, int k, mrec_pool *pool) {
    knn_scores_args a = {scores, row_ptr, col, nbr, sim, u0, C, k};
    mrec_parallel_range(pool, R, 1, knn_scores_range, &a);
}

/* ---- GRCN's edge attention: a softmax per CSR row ---- */

void mrec_segment_softmax_ref(float *y, const float *x, const int64_t *row_ptr, int R) {
    for (int r = 0; r < R; r++) {
        int64_t lo = row_ptr[r], hi = row_ptr[r + 1];
        if (lo >= hi) continue;
        float top = x[lo];
        for (int64_t p = lo + 1; p < hi; p++) top = x[p] > top ? x[p] : top;
        double z = 0;
        for (int64_t p = lo; p < hi; p++) {
            float e = expf(x[p] - top);
            y[p] = e, z += e; /* y may be x: x[p] is read before */
        }
        for (int64_t p = lo; p < hi; p++) y[p] = (float)(y[p] / z);
    }
}

void mrec_segment_softmax_back_ref(float *dx, const float *dy, const float *y, const int64_t *row_ptr, int R) {
    for (int r = 0; r < R; r++) {
        int64_t lo = row_ptr[r], hi = row_ptr[r + 1];
        double s = 0;
        for (int64_t p = lo; p < hi; p++) s += (double)y[p] * dy[p];
        for (int64_t p = lo; p < hi; p++) dx[p] = (float)(y[p] * (dy[p] - s)); /* dx may be dy: dy[p] is read before */
    }
}

typedef struct {
    float *out;
    const float *in, *y;
    const int64_t *row_ptr;
} segment_args;

/* rows lo..hi as the reference computes them: the same bits whatever the split */
static void segment_softmax_range(void *arg, int64_t lo, int64_t hi) {
    const segment_args *a = arg;
    mrec_segment_softmax_ref(a->out, a->in, a->row_ptr + lo, (int)(hi - lo));
}

static void segment_softmax_back_range(void *arg, int64_t lo, int64_t hi) {
    const segment_args *a = arg;
    mrec_segment_softmax_back_ref(a->out, a->in, a->y, a->row_ptr + lo, (int)(hi - lo));
}

void mrec_segment_softmax_cpu(float *y, const float *x, const int64_t *row_ptr, int R, mrec_pool *pool) {
    segment_args a = {y, x, NULL, row_ptr};
    mrec_parallel_range(pool, R, 256, segment_softmax_range, &a);
}

void mrec_segment_softmax_back_cpu(float *dx, const float *dy, const float *y, const int64_t *row_ptr, int R, mrec_pool *pool) {
    segment_args a = {dx, dy, y, row_ptr};
    mrec_parallel_range(pool, R, 256, segment_softmax_back_range, &a);
}
