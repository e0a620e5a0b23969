/* backward.c: the CPU side of training the encoders (kernels/cuda/backward.cu
 * is the GPU side): the backward of every op the CLIP towers use (linear,
 * LayerNorm, the activations, softmax, attention, embeddings, patches, the
 * class and end-of-text rows, CLIP's symmetric cross-entropy), AdamW, the
 * global gradient norm and the learning-rate schedule.
 *
 * Each op has a naive reference in double (the oracle) and a fast variant
 * that splits its work on the pool so that every output element is computed
 * by one task in a fixed order: sums over rows (parameter gradients) are
 * split over columns, never over rows, so the thread count changes no bit.
 * Matrix products go through mrec_gemm_cpu. Nothing here allocates: scratch
 * comes from the caller.
 *
 * References: PyTorch's autograd formulas (torch/csrc/autograd/
 * FunctionsManual.cpp for layer_norm_backward and softmax), torch.optim.AdamW,
 * torch.nn.utils.clip_grad_norm_, HF's CLIPModel.clip_loss.
 */
#include "../mrec_kernels.h"
#include "parallel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Column sums go in blocks this wide, each block's running sums in double on the stack. */
#define COL_BLOCK 64

/* ---- linear ---- */

void mrec_linear_back_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int accumulate,
                          int M, int N, int K) {
    if (dx)
        for (int i = 0; i < M; i++)
            for (int k = 0; k < K; k++) {
                double s = 0;
                for (int j = 0; j < N; j++) s += (double)dy[(size_t)i * N + j] * w[(size_t)j * K + k];
                float *o = dx + (size_t)i * K + k;
                *o = accumulate & MREC_ACC_DX ? (float)(*o + s) : (float)s;
            }
    if (dw)
        for (int j = 0; j < N; j++)
            for (int k = 0; k < K; k++) {
                double s = 0;
                for (int i = 0; i < M; i++) s += (double)dy[(size_t)i * N + j] * x[(size_t)i * K + k];
                float *o = dw + (size_t)j * K + k;
                *o = accumulate & MREC_ACC_PARAMS ? (float)(*o + s) : (float)s;
            }
    if (db)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int i = 0; i < M; i++) s += dy[(size_t)i * N + j];
            db[j] = accumulate & MREC_ACC_PARAMS ? (float)(db[j] + s) : (float)s;
        }
}

typedef struct {
    float *out;
    const float *in;
    int R, C, accumulate;
} colsum_args;

/* out[c] (+)= sum over rows r of in[r, c], rows in order, in double */
static void colsum_range(void *arg, int64_t lo, int64_t hi) {
    const colsum_args *a = arg;
    for (int64_t c0 = lo; c0 < hi; c0 += COL_BLOCK) {
        int nc = (int)(hi - c0 < COL_BLOCK ? hi - c0 : COL_BLOCK);
        double s[COL_BLOCK] = {0};
        for (int r = 0; r < a->R; r++) {
            const float *row = a->in + (size_t)r * a->C + c0;
            for (int c = 0; c < nc; c++) s[c] += row[c];
        }
        for (int c = 0; c < nc; c++) a->out[c0 + c] = a->accumulate ? (float)(a->out[c0 + c] + s[c]) : (float)s[c];
    }
}

static void colsum(float *out, const float *in, int R, int C, int accumulate, mrec_pool *pool) {
    colsum_args a = {out, in, R, C, accumulate};
    mrec_parallel_range(pool, C, COL_BLOCK * (1 + 16384 / (R > 0 ? R : 1) / COL_BLOCK), colsum_range, &a);
}

void mrec_linear_back_cpu(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int accumulate,
                          int M, int N, int K, mrec_pool *pool) {
    /* an empty product: the GEMM is not asked what beta = 0 over K = 0 means */
    if (M == 0 || N == 0) {
        if (dw && !(accumulate & MREC_ACC_PARAMS)) memset(dw, 0, sizeof(float) * (size_t)N * K);
        if (db && !(accumulate & MREC_ACC_PARAMS)) memset(db, 0, sizeof(float) * (size_t)N);
        if (dx && !(accumulate & MREC_ACC_DX)) memset(dx, 0, sizeof(float) * (size_t)M * K);
        return;
    }
    float beta_x = accumulate & MREC_ACC_DX ? 1.0f : 0.0f, beta_w = accumulate & MREC_ACC_PARAMS ? 1.0f : 0.0f;
    if (dx) mrec_gemm_cpu(dx, dy, w, NULL, 1, beta_x, 0, 0, M, K, N, N, K, K, pool);  /* (M, N) @ (N, K) */
    if (dw) mrec_gemm_cpu(dw, dy, x, NULL, 1, beta_w, 1, 0, N, K, M, N, K, K, pool);  /* (M, N)^T @ (M, K) */
    if (db) colsum(db, dy, M, N, (accumulate & MREC_ACC_PARAMS) != 0, pool);
}

/* ---- LayerNorm ---- */

void mrec_layernorm_stats_ref(float *mean, float *rstd, const float *in, float eps, int R, int C) {
    for (int r = 0; r < R; r++) {
        const float *x = in + (size_t)r * C;
        double m = 0, var = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
        var /= C;
        mean[r] = (float)m;
        rstd[r] = (float)(1.0 / sqrt(var + eps));
    }
}

typedef struct {
    float *dx, *dw, *db, *mean, *rstd;
    const float *dy, *x, *w, *cmean, *crstd;
    float eps;
    int R, C, accumulate, causal;
} ln_args;

static void ln_stats_range(void *arg, int64_t lo, int64_t hi) {
    const ln_args *a = arg;
    mrec_layernorm_stats_ref(a->mean + lo, a->rstd + lo, a->x + (size_t)lo * a->C, a->eps, (int)(hi - lo), a->C);
}

void mrec_layernorm_stats_cpu(float *mean, float *rstd, const float *in, float eps, int R, int C, mrec_pool *pool) {
    ln_args a = {.mean = mean, .rstd = rstd, .x = in, .eps = eps, .C = C};
    mrec_parallel_range(pool, R, 1 + 4096 / (C > 0 ? C : 1), ln_stats_range, &a);
}

void mrec_layernorm_back_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean,
                             const float *rstd, const float *w, int accumulate, int R, int C) {
    if (dx)
        for (int r = 0; r < R; r++) {
            size_t o = (size_t)r * C;
            double sg = 0, sgx = 0;
            for (int c = 0; c < C; c++) {
                double xh = ((double)x[o + c] - mean[r]) * rstd[r], g = (double)dy[o + c] * (w ? w[c] : 1.0);
                sg += g, sgx += g * xh;
            }
            sg /= C, sgx /= C;
            for (int c = 0; c < C; c++) {
                double xh = ((double)x[o + c] - mean[r]) * rstd[r], g = (double)dy[o + c] * (w ? w[c] : 1.0);
                double v = rstd[r] * (g - sg - xh * sgx);
                dx[o + c] = accumulate & MREC_ACC_DX ? (float)(dx[o + c] + v) : (float)v;
            }
        }
    for (int c = 0; c < C; c++) {
        double sw = 0, sb = 0;
        for (int r = 0; r < R; r++) {
            size_t i = (size_t)r * C + c;
            sw += (double)dy[i] * (((double)x[i] - mean[r]) * rstd[r]);
            sb += dy[i];
        }
        if (dw) dw[c] = accumulate & MREC_ACC_PARAMS ? (float)(dw[c] + sw) : (float)sw;
        if (db) db[c] = accumulate & MREC_ACC_PARAMS ? (float)(db[c] + sb) : (float)sb;
    }
}

static void ln_back_rows(void *arg, int64_t lo, int64_t hi) {
    const ln_args *a = arg;
    int C = a->C;
    for (int64_t r = lo; r < hi; r++) {
        const float *x = a->x + r * C, *dy = a->dy + r * C;
        float *dx = a->dx + r * C, m = a->cmean[r], rs = a->crstd[r];
        double sg = 0, sgx = 0; /* the two row means in double: C terms of mixed sign */
        for (int c = 0; c < C; c++) {
            float xh = (x[c] - m) * rs, g = a->w ? dy[c] * a->w[c] : dy[c];
            sg += g, sgx += (double)g * xh;
        }
        float mg = (float)(sg / C), mgx = (float)(sgx / C);
        for (int c = 0; c < C; c++) {
            float xh = (x[c] - m) * rs, g = a->w ? dy[c] * a->w[c] : dy[c];
            float v = rs * (g - mg - xh * mgx);
            dx[c] = a->accumulate & MREC_ACC_DX ? dx[c] + v : v;
        }
    }
}

static void ln_back_cols(void *arg, int64_t lo, int64_t hi) {
    const ln_args *a = arg;
    for (int64_t c0 = lo; c0 < hi; c0 += COL_BLOCK) {
        int nc = (int)(hi - c0 < COL_BLOCK ? hi - c0 : COL_BLOCK);
        double sw[COL_BLOCK] = {0}, sb[COL_BLOCK] = {0};
        for (int r = 0; r < a->R; r++) {
            const float *x = a->x + (size_t)r * a->C + c0, *dy = a->dy + (size_t)r * a->C + c0;
            float m = a->cmean[r], rs = a->crstd[r];
            for (int c = 0; c < nc; c++) sw[c] += (double)dy[c] * ((x[c] - m) * rs), sb[c] += dy[c];
        }
        for (int c = 0; c < nc; c++) {
            if (a->dw) a->dw[c0 + c] = a->accumulate & MREC_ACC_PARAMS ? (float)(a->dw[c0 + c] + sw[c]) : (float)sw[c];
            if (a->db) a->db[c0 + c] = a->accumulate & MREC_ACC_PARAMS ? (float)(a->db[c0 + c] + sb[c]) : (float)sb[c];
        }
    }
}

void mrec_layernorm_back_cpu(float *dx, float *dw, float *db, const float *dy, const float *x, const float *mean,
                             const float *rstd, const float *w, int accumulate, int R, int C, mrec_pool *pool) {
    ln_args a = {.dx = dx, .dw = dw, .db = db, .dy = dy, .x = x, .w = w, .cmean = mean, .crstd = rstd, .R = R, .C = C,
                 .accumulate = accumulate};
    if (dx) mrec_parallel_range(pool, R, 1 + 4096 / (C > 0 ? C : 1), ln_back_rows, &a);
    if (dw || db) mrec_parallel_range(pool, C, COL_BLOCK * (1 + 16384 / (R > 0 ? R : 1) / COL_BLOCK), ln_back_cols, &a);
}

/* ---- activations ---- */

#define SQRT_2_OVER_PI 0.7978845608028654
#define INV_SQRT_2PI 0.3989422804014327

void mrec_activation_back_ref(float *dx, const float *dy, const float *x, mrec_act act, float slope, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = x[i], d;
        switch (act) {
        case MREC_ACT_GELU_ERF: d = 0.5 * (1 + erf(v / sqrt(2.0))) + v * exp(-0.5 * v * v) * INV_SQRT_2PI; break;
        case MREC_ACT_GELU_TANH: {
            double t = tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v));
            d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * v * v);
            break;
        }
        case MREC_ACT_QUICK_GELU: {
            double s = 1 / (1 + exp(-1.702 * v));
            d = s + 1.702 * v * s * (1 - s);
            break;
        }
        case MREC_ACT_RELU: d = v > 0; break;
        case MREC_ACT_LEAKY_RELU: d = v > 0 ? 1.0 : slope; break;
        case MREC_ACT_SILU: {
            double s = 1 / (1 + exp(-v));
            d = s * (1 + v * (1 - s));
            break;
        }
        default: { /* MREC_ACT_TANH */
            double t = tanh(v);
            d = 1 - t * t;
        }
        }
        dx[i] = (float)(dy[i] * d);
    }
}

typedef struct {
    float *dx;
    const float *dy, *x;
    mrec_act act;
    float slope;
} act_args;

/* float math, erff / expf / tanhf as the forward's scalar path uses them */
static MREC_VECTOR_CLONES void act_back_range(void *arg, int64_t lo, int64_t hi) {
    const act_args *a = arg;
    const float *x = a->x, *dy = a->dy;
    float *dx = a->dx;
    switch (a->act) {
    case MREC_ACT_GELU_ERF:
        for (int64_t i = lo; i < hi; i++) {
            float v = x[i];
            dx[i] = dy[i] * (0.5f * (1 + erff(v * 0.70710678f)) + v * expf(-0.5f * v * v) * (float)INV_SQRT_2PI);
        }
        break;
    case MREC_ACT_GELU_TANH:
        for (int64_t i = lo; i < hi; i++) {
            float v = x[i], t = tanhf((float)SQRT_2_OVER_PI * (v + 0.044715f * v * v * v));
            dx[i] = dy[i] * (0.5f * (1 + t) + 0.5f * v * (1 - t * t) * (float)SQRT_2_OVER_PI * (1 + 0.134145f * v * v));
        }
        break;
    case MREC_ACT_QUICK_GELU:
        for (int64_t i = lo; i < hi; i++) {
            float v = x[i], s = 1 / (1 + expf(-1.702f * v));
            dx[i] = dy[i] * (s + 1.702f * v * s * (1 - s));
        }
        break;
    case MREC_ACT_RELU:
        for (int64_t i = lo; i < hi; i++) dx[i] = x[i] > 0 ? dy[i] : 0.0f;
        break;
    case MREC_ACT_LEAKY_RELU:
        for (int64_t i = lo; i < hi; i++) dx[i] = x[i] > 0 ? dy[i] : a->slope * dy[i];
        break;
    case MREC_ACT_SILU:
        for (int64_t i = lo; i < hi; i++) {
            float v = x[i], s = 1 / (1 + expf(-v));
            dx[i] = dy[i] * (s * (1 + v * (1 - s)));
        }
        break;
    default:
        for (int64_t i = lo; i < hi; i++) {
            float t = tanhf(x[i]);
            dx[i] = dy[i] * (1 - t * t);
        }
    }
}

void mrec_activation_back_cpu(float *dx, const float *dy, const float *x, mrec_act act, float slope, int64_t n,
                              mrec_pool *pool) {
    act_args a = {dx, dy, x, act, slope};
    mrec_parallel_range(pool, n, 4096, act_back_range, &a);
}

/* ---- softmax ---- */

void mrec_softmax_rows_back_ref(float *dx, const float *dy, const float *y, int causal, int R, int C) {
    for (int r = 0; r < R; r++) {
        size_t o = (size_t)r * C;
        int n = causal ? r % C + 1 : C;
        double s = 0;
        for (int c = 0; c < n; c++) s += (double)y[o + c] * dy[o + c];
        for (int c = 0; c < n; c++) dx[o + c] = (float)(y[o + c] * (dy[o + c] - s));
        for (int c = n; c < C; c++) dx[o + c] = 0.0f;
    }
}

static void softmax_back_range(void *arg, int64_t lo, int64_t hi) {
    const ln_args *a = arg;
    int C = a->C;
    for (int64_t r = lo; r < hi; r++) {
        const float *y = a->x + r * C, *dy = a->dy + r * C;
        float *dx = a->dx + r * C;
        int n = a->causal ? (int)(r % C) + 1 : C;
        double s = 0;
        for (int c = 0; c < n; c++) s += (double)y[c] * dy[c];
        float sf = (float)s;
        for (int c = 0; c < n; c++) dx[c] = y[c] * (dy[c] - sf);
        for (int c = n; c < C; c++) dx[c] = 0.0f;
    }
}

void mrec_softmax_rows_back_cpu(float *dx, const float *dy, const float *y, int causal, int R, int C, mrec_pool *pool) {
    ln_args a = {.dx = dx, .dy = dy, .x = y, .C = C, .causal = causal};
    mrec_parallel_range(pool, R, 1 + 4096 / (C > 0 ? C : 1), softmax_back_range, &a);
}

/* ---- attention ---- */

void mrec_attention_back_ref(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                             const float *v, const float *mask_bias, const float *head_bias, float scale, int B, int T,
                             int heads, int dh) {
    int H = heads * dh;
    size_t tt = (size_t)T * T, n = (size_t)B * T * H;
    /* per (sequence, head): probabilities and their gradient, and the three gradients in double */
    double *p = malloc(sizeof(double) * (2 * tt + 3 * (size_t)T * dh)), *ds = p + tt, *gq = ds + tt, *gk = gq + (size_t)T * dh,
           *gv = gk + (size_t)T * dh;
    if (!p) { /* an oracle that cannot run says so loudly: NaN everywhere */
        for (size_t i = 0; i < n; i++) dq[i] = dk[i] = dv[i] = NAN;
        return;
    }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < heads; h++) {
#define AT(m, t, d) ((double)(m)[((size_t)b * T + (t)) * H + (size_t)h * dh + (d)])
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, z = 0;
                for (int j = 0; j < T; j++) {
                    double s = 0;
                    for (int d = 0; d < dh; d++) s += AT(q, i, d) * AT(k, j, d);
                    s = s * scale + (head_bias ? head_bias[((size_t)h * T + i) * T + j] : 0) +
                        (mask_bias ? mask_bias[(size_t)b * T + j] : 0);
                    p[(size_t)i * T + j] = s;
                    if (s > mx) mx = s;
                }
                for (int j = 0; j < T; j++) z += p[(size_t)i * T + j] = exp(p[(size_t)i * T + j] - mx);
                double r = 0;
                for (int j = 0; j < T; j++) {
                    p[(size_t)i * T + j] /= z;
                    double dp = 0;
                    for (int d = 0; d < dh; d++) dp += AT(dout, i, d) * AT(v, j, d);
                    ds[(size_t)i * T + j] = dp;
                    r += p[(size_t)i * T + j] * dp;
                }
                for (int j = 0; j < T; j++) ds[(size_t)i * T + j] = p[(size_t)i * T + j] * (ds[(size_t)i * T + j] - r);
            }
            for (int i = 0; i < T; i++)
                for (int d = 0; d < dh; d++) {
                    double sq = 0, sk = 0, sv = 0;
                    for (int j = 0; j < T; j++) {
                        sq += ds[(size_t)i * T + j] * AT(k, j, d);
                        sk += ds[(size_t)j * T + i] * AT(q, j, d);
                        sv += p[(size_t)j * T + i] * AT(dout, j, d);
                    }
                    gq[(size_t)i * dh + d] = sq * scale, gk[(size_t)i * dh + d] = sk * scale, gv[(size_t)i * dh + d] = sv;
                }
            for (int i = 0; i < T; i++)
                for (int d = 0; d < dh; d++) {
                    size_t o = ((size_t)b * T + i) * H + (size_t)h * dh + d;
                    dq[o] = (float)gq[(size_t)i * dh + d], dk[o] = (float)gk[(size_t)i * dh + d], dv[o] = (float)gv[(size_t)i * dh + d];
                }
#undef AT
        }
    free(p);
}

size_t mrec_attention_back_scratch_floats(int B, int T, int heads, int dh) {
    return 7 * (size_t)B * T * heads * dh + 2 * (size_t)B * heads * T * T;
}

/* (B, T, nh, dh) <-> (B, nh, T, dh) */
static void heads_first(float *dst, const float *src, int B, int T, int nh, int dh) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++)
                memcpy(dst + (((size_t)b * nh + h) * T + t) * dh, src + (((size_t)b * T + t) * nh + h) * dh, sizeof(float) * (size_t)dh);
}

static void tokens_first(float *dst, const float *src, int B, int T, int nh, int dh) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++)
                memcpy(dst + (((size_t)b * T + t) * nh + h) * dh, src + (((size_t)b * nh + h) * T + t) * dh, sizeof(float) * (size_t)dh);
}

void mrec_attention_back_cpu(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                             const float *v, const float *mask_bias, const float *head_bias, float scale, int B, int T,
                             int nh, int dh, float *scratch, mrec_pool *pool) {
    size_t n = (size_t)B * T * nh * dh;
    int64_t tdh = (int64_t)T * dh, tt = (int64_t)T * T;
    int bh = B * nh;
    float *qh = scratch, *kh = qh + n, *vh = kh + n, *doh = vh + n, *gq = doh + n, *gk = gq + n, *gv = gk + n;
    float *p = gv + n, *dp = p + (size_t)bh * tt;
    heads_first(qh, q, B, T, nh, dh), heads_first(kh, k, B, T, nh, dh);
    heads_first(vh, v, B, T, nh, dh), heads_first(doh, dout, B, T, nh, dh);
    /* the forward's probabilities again, as mrec_attention_cpu makes them */
    mrec_gemm_batched_cpu(p, qh, kh, scale, 0, 0, 1, bh, T, T, dh, dh, dh, T, tdh, tdh, tt, pool);
    if (head_bias)
        for (int b = 0; b < B; b++) mrec_add_cpu(p + (size_t)b * nh * tt, p + (size_t)b * nh * tt, head_bias, nh * tt, pool);
    mrec_softmax_rows_cpu(p, p, mask_bias, bh * T, T, nh * T, pool);
    /* dV = P^T dO;  dP = dO V^T;  dS = softmax'(dP);  dQ = scale dS K;  dK = scale dS^T Q */
    mrec_gemm_batched_cpu(gv, p, doh, 1, 0, 1, 0, bh, T, dh, T, T, dh, dh, tt, tdh, tdh, pool);
    mrec_gemm_batched_cpu(dp, doh, vh, 1, 0, 0, 1, bh, T, T, dh, dh, dh, T, tdh, tdh, tt, pool);
    mrec_softmax_rows_back_cpu(dp, dp, p, 0, bh * T, T, pool);
    mrec_gemm_batched_cpu(gq, dp, kh, scale, 0, 0, 0, bh, T, dh, T, T, dh, dh, tt, tdh, tdh, pool);
    mrec_gemm_batched_cpu(gk, dp, qh, scale, 0, 1, 0, bh, T, dh, T, T, dh, dh, tt, tdh, tdh, pool);
    tokens_first(dq, gq, B, T, nh, dh), tokens_first(dk, gk, B, T, nh, dh), tokens_first(dv, gv, B, T, nh, dh);
}

/* ---- embeddings, patches, class token, gathered rows ---- */

void mrec_embedding_back_ref(float *dtable, const float *dy, const int64_t *row_ptr, const int32_t *pos, int V, int D) {
    for (int id = 0; id < V; id++)
        for (int64_t e = row_ptr[id]; e < row_ptr[id + 1]; e++)
            for (int d = 0; d < D; d++) dtable[(size_t)id * D + d] += dy[(size_t)pos[e] * D + d];
}

typedef struct {
    float *out, *out2;
    const float *in;
    const int64_t *row_ptr;
    const int32_t *idx;
    int B, C, S, P, T, H;
} scatter_args;

static void embedding_back_range(void *arg, int64_t lo, int64_t hi) {
    const scatter_args *a = arg;
    for (int64_t id = lo; id < hi; id++) {
        float *row = a->out + id * a->H;
        for (int64_t e = a->row_ptr[id]; e < a->row_ptr[id + 1]; e++) {
            const float *g = a->in + (size_t)a->idx[e] * a->H;
            for (int d = 0; d < a->H; d++) row[d] += g[d];
        }
    }
}

void mrec_embedding_back_cpu(float *dtable, const float *dy, const int64_t *row_ptr, const int32_t *pos, int V, int D,
                             mrec_pool *pool) {
    scatter_args a = {.out = dtable, .in = dy, .row_ptr = row_ptr, .idx = pos, .H = D};
    mrec_parallel_range(pool, V, 1 + 1024 / (D > 0 ? D : 1), embedding_back_range, &a);
}

void mrec_patchify_back_ref(float *dimages, const float *dpatches, int B, int C, int S, int P) {
    int G = S / P;
    memset(dimages, 0, sizeof(float) * (size_t)B * C * S * S);
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++)
                for (int c = 0; c < C; c++)
                    for (int y = 0; y < P; y++)
                        for (int x = 0; x < P; x++)
                            dimages[(((size_t)b * C + c) * S + (size_t)gy * P + y) * S + (size_t)gx * P + x] =
                                dpatches[((((size_t)b * G + gy) * G + gx) * C + c) * P * P + (size_t)y * P + x];
}

/* one task per image row (b, c, row): a contiguous run of S pixels */
static void patchify_back_range(void *arg, int64_t lo, int64_t hi) {
    const scatter_args *a = arg;
    int C = a->C, S = a->S, P = a->P, G = S / P;
    for (int64_t r = lo; r < hi; r++) {
        int yy = (int)(r % S), c = (int)(r / S % C), b = (int)(r / S / C);
        float *out = a->out + r * S;
        if (yy >= G * P) {
            memset(out, 0, sizeof(float) * (size_t)S);
            continue;
        }
        int gy = yy / P, y = yy % P;
        for (int gx = 0; gx < G; gx++)
            memcpy(out + (size_t)gx * P, a->in + ((((size_t)b * G + gy) * G + gx) * C + c) * P * P + (size_t)y * P,
                   sizeof(float) * (size_t)P);
        for (int x = G * P; x < S; x++) out[x] = 0.0f;
    }
}

void mrec_patchify_back_cpu(float *dimages, const float *dpatches, int B, int C, int S, int P, mrec_pool *pool) {
    scatter_args a = {.out = dimages, .in = dpatches, .B = B, .C = C, .S = S, .P = P};
    mrec_parallel_range(pool, (int64_t)B * C * S, 1 + 8192 / (S > 0 ? S : 1), patchify_back_range, &a);
}

void mrec_class_embed_back_ref(float *dcls, float *dpos, const float *dx, int B, int T, int H) {
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            double s = 0;
            for (int b = 0; b < B; b++) s += dx[((size_t)b * T + t) * H + h];
            if (dpos) dpos[(size_t)t * H + h] += (float)s;
            if (t == 0 && dcls) dcls[h] += (float)s;
        }
}

/* over the T*H columns of dx seen as (B, T*H): each column summed over b in order */
static void class_back_range(void *arg, int64_t lo, int64_t hi) {
    const scatter_args *a = arg;
    int64_t TH = (int64_t)a->T * a->H;
    for (int64_t c0 = lo; c0 < hi; c0 += COL_BLOCK) {
        int nc = (int)(hi - c0 < COL_BLOCK ? hi - c0 : COL_BLOCK);
        double s[COL_BLOCK] = {0};
        for (int b = 0; b < a->B; b++)
            for (int c = 0; c < nc; c++) s[c] += a->in[b * TH + c0 + c];
        for (int c = 0; c < nc; c++) {
            if (a->out2) a->out2[c0 + c] += (float)s[c];
            if (a->out && c0 + c < a->H) a->out[c0 + c] += (float)s[c];
        }
    }
}

void mrec_class_embed_back_cpu(float *dcls, float *dpos, const float *dx, int B, int T, int H, mrec_pool *pool) {
    scatter_args a = {.out = dcls, .out2 = dpos, .in = dx, .B = B, .T = T, .H = H};
    /* without dpos only the first H columns are wanted */
    mrec_parallel_range(pool, dpos ? (int64_t)T * H : H, COL_BLOCK * (1 + 16384 / (B > 0 ? B : 1) / COL_BLOCK), class_back_range,
                        &a);
}

void mrec_gather_rows_back_ref(float *dx, const float *dy, const int32_t *rows, int B, int H) {
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) dx[(size_t)rows[b] * H + h] += dy[(size_t)b * H + h];
}

/* split over columns, so a row named twice is summed in b order by one task */
static void gather_back_range(void *arg, int64_t lo, int64_t hi) {
    const scatter_args *a = arg;
    for (int b = 0; b < a->B; b++)
        for (int64_t h = lo; h < hi; h++) a->out[(size_t)a->idx[b] * a->H + h] += a->in[(size_t)b * a->H + h];
}

void mrec_gather_rows_back_cpu(float *dx, const float *dy, const int32_t *rows, int B, int H, mrec_pool *pool) {
    scatter_args a = {.out = dx, .in = dy, .idx = rows, .B = B, .H = H};
    mrec_parallel_range(pool, H, 1 + 16384 / (B > 0 ? B : 1), gather_back_range, &a);
}

/* ---- CLIP's symmetric cross-entropy ---- */

void mrec_clip_loss_ref(float *dlogits, double *out, const float *logits, int N) {
    double loss = 0, dscale = 0;
    for (int i = 0; i < N; i++) { /* rows: each image against every text */
        double mx = -INFINITY, z = 0;
        for (int j = 0; j < N; j++) mx = fmax(mx, logits[(size_t)i * N + j]);
        for (int j = 0; j < N; j++) z += exp(logits[(size_t)i * N + j] - mx);
        loss += mx + log(z) - logits[(size_t)i * N + i];
        for (int j = 0; j < N; j++) dlogits[(size_t)i * N + j] = (float)((exp(logits[(size_t)i * N + j] - mx) / z - (i == j)) / (2.0 * N));
    }
    for (int j = 0; j < N; j++) { /* columns: each text against every image */
        double mx = -INFINITY, z = 0;
        for (int i = 0; i < N; i++) mx = fmax(mx, logits[(size_t)i * N + j]);
        for (int i = 0; i < N; i++) z += exp(logits[(size_t)i * N + j] - mx);
        loss += mx + log(z) - logits[(size_t)j * N + j];
        for (int i = 0; i < N; i++) {
            size_t o = (size_t)i * N + j;
            double g = (double)dlogits[o] + (exp(logits[o] - mx) / z - (i == j)) / (2.0 * N);
            dlogits[o] = (float)g;
            dscale += g * logits[o];
        }
    }
    out[0] = loss / (2.0 * N);
    out[1] = dscale;
}

typedef struct {
    float *g;
    const float *L;
    double *rlse, *clse, *part;
    int N;
} clip_args;

static void clip_rows_lse(void *arg, int64_t lo, int64_t hi) {
    const clip_args *a = arg;
    for (int64_t i = lo; i < hi; i++) {
        const float *row = a->L + i * a->N;
        double mx = -INFINITY, z = 0;
        for (int j = 0; j < a->N; j++) mx = fmax(mx, row[j]);
        for (int j = 0; j < a->N; j++) z += exp(row[j] - mx);
        a->rlse[i] = mx + log(z);
    }
}

static void clip_cols_lse(void *arg, int64_t lo, int64_t hi) {
    const clip_args *a = arg;
    for (int64_t j0 = lo; j0 < hi; j0 += COL_BLOCK) {
        int nc = (int)(hi - j0 < COL_BLOCK ? hi - j0 : COL_BLOCK);
        double mx[COL_BLOCK], z[COL_BLOCK] = {0};
        for (int c = 0; c < nc; c++) mx[c] = -INFINITY;
        for (int i = 0; i < a->N; i++)
            for (int c = 0; c < nc; c++) mx[c] = fmax(mx[c], a->L[(size_t)i * a->N + j0 + c]);
        for (int i = 0; i < a->N; i++)
            for (int c = 0; c < nc; c++) z[c] += exp(a->L[(size_t)i * a->N + j0 + c] - mx[c]);
        for (int c = 0; c < nc; c++) a->clse[j0 + c] = mx[c] + log(z[c]);
    }
}

static void clip_grad_rows(void *arg, int64_t lo, int64_t hi) {
    const clip_args *a = arg;
    double w = 1.0 / (2.0 * a->N);
    for (int64_t i = lo; i < hi; i++) {
        const float *row = a->L + i * a->N;
        double s = 0;
        for (int j = 0; j < a->N; j++) {
            double g = (exp(row[j] - a->rlse[i]) + exp(row[j] - a->clse[j]) - 2.0 * (i == j)) * w;
            a->g[i * a->N + j] = (float)g;
            s += g * row[j];
        }
        a->part[i] = s;
    }
}

void mrec_clip_loss_cpu(float *dlogits, double *out, const float *logits, int N, double *work, mrec_pool *pool) {
    clip_args a = {dlogits, logits, work, work + N, work + 2 * (size_t)N, N};
    mrec_parallel_range(pool, N, 1 + 4096 / (N > 0 ? N : 1), clip_rows_lse, &a);
    mrec_parallel_range(pool, N, COL_BLOCK, clip_cols_lse, &a);
    mrec_parallel_range(pool, N, 1 + 4096 / (N > 0 ? N : 1), clip_grad_rows, &a);
    double loss = 0, dscale = 0;
    for (int i = 0; i < N; i++) loss += work[i] + work[N + i] - 2.0 * logits[(size_t)i * N + i], dscale += work[2 * (size_t)N + i];
    out[0] = N > 0 ? loss / (2.0 * N) : 0;
    out[1] = dscale;
}

/* ---- AdamW, the gradient norm, the schedule ---- */

void mrec_adamw_ref(float *param, float *m, float *v, const float *grad, double lr, double beta1, double beta2, double eps,
                    double weight_decay, int64_t step, int64_t n) {
    double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    for (int64_t i = 0; i < n; i++) {
        double p = param[i] * (1 - lr * weight_decay), g = grad[i];
        double mi = beta1 * m[i] + (1 - beta1) * g, vi = beta2 * v[i] + (1 - beta2) * g * g;
        p -= lr / bc1 * mi / (sqrt(vi) / sqrt(bc2) + eps);
        param[i] = (float)p, m[i] = (float)mi, v[i] = (float)vi;
    }
}

typedef struct {
    float *param, *m, *v;
    const float *grad;
    float decay, w1, b2, w2, step_size, bc2_sqrt, eps;
} adamw_args;

/* float, in torch's order: p.mul_(1 - lr wd); m.lerp_(g, 1 - b1); v.mul_(b2).addcmul_(g, g, 1 - b2);
 * p.addcdiv_(m, sqrt(v) / sqrt(bc2) + eps, -lr / bc1), each scalar a double rounded once to float as torch's
 * CPU kernels take it */
static MREC_VECTOR_CLONES void adamw_range(void *arg, int64_t lo, int64_t hi) {
    /* Locals and restrict: through a->, every store might change a->w1 and the loop stays scalar. */
    const adamw_args *a = arg;
    float *restrict param = a->param, *restrict m_ = a->m, *restrict v_ = a->v;
    const float *restrict grad = a->grad;
    const float decay = a->decay, w1 = a->w1, b2 = a->b2, w2 = a->w2, step_size = a->step_size, bc2_sqrt = a->bc2_sqrt,
                eps = a->eps;
    for (int64_t i = lo; i < hi; i++) {
        float g = grad[i], p = param[i] * decay;
        float m = m_[i] + w1 * (g - m_[i]);
        float v = v_[i] * b2 + w2 * g * g;
        float d = sqrtf(v) / bc2_sqrt + eps;
        param[i] = p + step_size * m / d;
        m_[i] = m, v_[i] = v;
    }
}

void mrec_adamw_cpu(float *param, float *m, float *v, const float *grad, double lr, double beta1, double beta2, double eps,
                    double weight_decay, int64_t step, int64_t n, mrec_pool *pool) {
    double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    adamw_args a = {param, m, v, grad, (float)(1 - lr * weight_decay), (float)(1 - beta1), (float)beta2, (float)(1 - beta2),
                    (float)(-lr / bc1), (float)sqrt(bc2), (float)eps};
    mrec_parallel_range(pool, n, 8192, adamw_range, &a);
}

#define SQ_BLOCK 4096

void mrec_sum_squares_ref(double *out, const float *x, int64_t n) {
    double total = 0;
    for (int64_t b = 0; b < n; b += SQ_BLOCK) {
        double s = 0;
        for (int64_t i = b; i < n && i < b + SQ_BLOCK; i++) s += (double)x[i] * x[i];
        total += s;
    }
    *out += total;
}

typedef struct {
    double *part;
    const float *x;
    int64_t n;
} sq_args;

static void sq_range(void *arg, int64_t lo, int64_t hi) {
    const sq_args *a = arg;
    for (int64_t b = lo; b < hi; b++) {
        double s = 0;
        for (int64_t i = b * SQ_BLOCK; i < a->n && i < (b + 1) * SQ_BLOCK; i++) s += (double)a->x[i] * a->x[i];
        a->part[b] = s;
    }
}

void mrec_sum_squares_cpu(double *out, const float *x, int64_t n, mrec_pool *pool) {
    /* block sums on the stack in rounds of 256 blocks, added in block order: the reference's bits */
    double part[256], total = 0;
    int64_t blocks = (n + SQ_BLOCK - 1) / SQ_BLOCK;
    for (int64_t b0 = 0; b0 < blocks; b0 += 256) {
        int64_t nb = blocks - b0 < 256 ? blocks - b0 : 256;
        sq_args a = {part, x + b0 * SQ_BLOCK, n - b0 * SQ_BLOCK};
        mrec_parallel_range(pool, nb, 1, sq_range, &a);
        for (int64_t b = 0; b < nb; b++) total += part[b];
    }
    *out += total;
}

double mrec_lr_warmup_cosine(int64_t step, int64_t warmup, int64_t total, double peak, double min_lr) {
    if (step < warmup) return peak * (double)step / (double)warmup;
    double p = total > warmup ? (double)(step - warmup) / (double)(total - warmup) : 1.0;
    if (p > 1) p = 1;
    if (p < 0) p = 0;
    return min_lr + (peak - min_lr) * 0.5 * (1 + cos(M_PI * p));
}

/* ---- the optimizer over a model's tensors: compositions of the entries ---- */

mrec_status mrec_adamw_step(mrec_context *ctx, const mrec_param_tensor *t, int n_tensors, const mrec_adamw_options *o,
                            double lr, int64_t step) {
    for (int i = 0; i < n_tensors; i++) {
        mrec_status st = mrec_adamw(ctx, t[i].param, t[i].m, t[i].v, t[i].grad, lr, o->beta1, o->beta2, o->eps,
                                    t[i].decay ? o->weight_decay : 0.0, step, t[i].n);
        if (st) return st;
    }
    return MREC_OK;
}

mrec_status mrec_clip_grad_norm(mrec_context *ctx, const mrec_param_tensor *t, int n_tensors, float max_norm,
                                double *total_norm, double *work) {
    double zero = 0, sum = 0;
    mrec_status st = mrec_copy_to_device(ctx, work, &zero, sizeof zero);
    for (int i = 0; i < n_tensors && !st; i++) st = mrec_sum_squares(ctx, work, t[i].grad, t[i].n);
    if (!st) st = mrec_copy_to_host(ctx, &sum, work, sizeof sum);
    if (st) return st;
    *total_norm = sqrt(sum);
    /* torch: coef = max_norm / (norm + 1e-6), clamped to 1; a coefficient of 1 changes nothing, so it is skipped */
    double coef = max_norm / (*total_norm + 1e-6);
    for (int i = 0; i < n_tensors && !st && coef < 1.0; i++) st = mrec_scale(ctx, t[i].grad, t[i].grad, (float)coef, t[i].n);
    return st;
}
