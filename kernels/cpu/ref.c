/* ref.c: the naive reference of every op — plain loops, double accumulation.
 *
 * These are the oracles: each fast version (CPU or CUDA) is tested against
 * the function here, never against another fast version. They favour being
 * obviously right over being fast; read them to learn what an op computes.
 */
#include "../mrec_kernels.h"
#include "gemm_internal.h"
#include "../philox.h"

#include <math.h>
#include <string.h>

void mrec_gemm_ref(float *C, const float *A, const float *B, const float *bias,
                   float alpha, float beta, int trans_a, int trans_b,
                   int M, int N, int K, int lda, int ldb, int ldc) {
    mrec_gemm_rows_ref(C, A, NULL, B, NULL, bias, alpha, beta, trans_a, trans_b, M, N, K, lda, ldb, ldc);
}

void mrec_gemm_rows_ref(float *C, const float *A, const int32_t *a_rows, const float *B, const int32_t *b_rows, const float *bias,
                        float alpha, float beta, int trans_a, int trans_b, int M, int N, int K, int lda, int ldb, int ldc) {
    for (int i = 0; i < M; i++) {
        size_t ai = (size_t)(a_rows && !trans_a ? a_rows[i] : i);
        for (int j = 0; j < N; j++) {
            double sum = 0.0;
            for (int k = 0; k < K; k++) {
                size_t bk = (size_t)(b_rows && !trans_b ? b_rows[k] : k);
                double a = trans_a ? A[(size_t)k * lda + i] : A[ai * lda + k];
                double b = trans_b ? B[(size_t)j * ldb + k] : B[bk * ldb + j];
                sum += a * b;
            }
            double c = beta == 0.0f ? 0.0 : (double)beta * C[(size_t)i * ldc + j];
            double out = (double)alpha * sum + c + (bias ? bias[j] : 0.0);
            C[(size_t)i * ldc + j] = (float)out;
        }
    }
}

void mrec_gemm_batched_ref(float *C, const float *A, const float *B,
                           float alpha, float beta, int trans_a, int trans_b,
                           int batch, int M, int N, int K, int lda, int ldb, int ldc,
                           int64_t stride_a, int64_t stride_b, int64_t stride_c) {
    for (int b = 0; b < batch; b++)
        mrec_gemm_ref(C + b * stride_c, A + b * stride_a, B + b * stride_b, NULL, alpha, beta,
                      trans_a, trans_b, M, N, K, lda, ldb, ldc);
}

void mrec_add_ref(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void mrec_mul_ref(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

void mrec_fill_ref(float *out, float value, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = value;
}
void mrec_scale_ref(float *out, const float *a, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] * s;
}

static double activation(double x, mrec_act act, double slope) {
    switch (act) {
    case MREC_ACT_GELU_ERF:   return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case MREC_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case MREC_ACT_QUICK_GELU: return x / (1.0 + exp(-1.702 * x));
    case MREC_ACT_RELU:       return x > 0.0 ? x : 0.0;
    case MREC_ACT_LEAKY_RELU: return x >= 0.0 ? x : slope * x;
    case MREC_ACT_SILU:       return x / (1.0 + exp(-x));
    case MREC_ACT_TANH:       return tanh(x);
    }
    return NAN;
}

void mrec_activation_ref(float *out, const float *in, mrec_act act, float slope, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)activation(in[i], act, slope);
}

void mrec_softmax_rows_ref(float *out, const float *in, const float *mask,
                           int R, int C, int rows_per_mask) {
    for (int r = 0; r < R; r++) {
        const float *x = in + (size_t)r * C;
        const float *m = mask ? mask + (size_t)(r / rows_per_mask) * C : NULL;
        float *y = out + (size_t)r * C;
        double max = -INFINITY;
        for (int c = 0; c < C; c++) {
            double v = (double)x[c] + (m ? m[c] : 0.0);
            if (v > max) max = v;
        }
        double sum = 0.0;
        for (int c = 0; c < C; c++) sum += exp((double)x[c] + (m ? m[c] : 0.0) - max);
        for (int c = 0; c < C; c++) y[c] = (float)(exp((double)x[c] + (m ? m[c] : 0.0) - max) / sum);
    }
}

void mrec_layernorm_ref(float *out, const float *in, const float *weight, const float *bias,
                        float eps, int R, int C) {
    for (int r = 0; r < R; r++) {
        const float *x = in + (size_t)r * C;
        float *y = out + (size_t)r * C;
        double mean = 0.0, var = 0.0;
        for (int c = 0; c < C; c++) mean += x[c];
        mean /= C;
        for (int c = 0; c < C; c++) var += (x[c] - mean) * (x[c] - mean);
        var /= C;
        double rstd = 1.0 / sqrt(var + eps);
        for (int c = 0; c < C; c++) {
            double v = (x[c] - mean) * rstd;
            if (weight) v *= weight[c];
            if (bias) v += bias[c];
            y[c] = (float)v;
        }
    }
}

void mrec_l2_normalize_rows_ref(float *out, const float *in, float eps, int R, int C) {
    for (int r = 0; r < R; r++) {
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)in[(size_t)r * C + c] * in[(size_t)r * C + c];
        double norm = fmax(sqrt(ss), eps);
        for (int c = 0; c < C; c++) out[(size_t)r * C + c] = (float)(in[(size_t)r * C + c] / norm);
    }
}

mrec_status mrec_embedding_ref(float *out, const float *table, const int32_t *ids,
                               int N, int V, int D) {
    for (int i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return mrec_fail(MREC_ERR_ARG, "embedding: id %d at position %d is outside [0, %d)",
                             ids[i], i, V);
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) out[(size_t)i * D + d] = table[(size_t)ids[i] * D + d];
    return MREC_OK;
}

void mrec_mean_pool_ref(float *out, const float *in, const int32_t *mask, int B, int T, int D) {
    for (int b = 0; b < B; b++) {
        double count = 0.0;
        for (int t = 0; t < T; t++) count += mask ? (mask[(size_t)b * T + t] != 0) : 1;
        if (count < 1e-9) count = 1e-9;
        for (int d = 0; d < D; d++) {
            double sum = 0.0;
            for (int t = 0; t < T; t++)
                if (!mask || mask[(size_t)b * T + t]) sum += in[((size_t)b * T + t) * D + d];
            out[(size_t)b * D + d] = (float)(sum / count);
        }
    }
}

/* a ranks before b: larger value first, NaN last, ties to the lower index. */
static int ranks_before(float va, int ia, float vb, int ib) {
    if (isnan(va)) return isnan(vb) && ia < ib;
    if (isnan(vb)) return 1;
    return va > vb || (va == vb && ia < ib);
}

void mrec_unit_rows_ref(float *out, const float *x, int64_t n, int dim) {
    for (int64_t i = 0; i < n; i++) {
        const float *r = x + i * dim;
        double s = 0;
        for (int d = 0; d < dim; d++) s += (double)r[d] * r[d];
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f; /* a zero row stays zero (MMRec would divide by 0) */
        for (int d = 0; d < dim; d++) out[i * dim + d] = r[d] * inv;
    }
}

void mrec_topk_rows_ref(int32_t *idx, float *val, const float *scores, int R, int C, int k) {
    for (int r = 0; r < R; r++) {
        const float *s = scores + (size_t)r * C;
        int32_t *oi = idx + (size_t)r * k;
        float *ov = val + (size_t)r * k;
        /* Selection: the j-th pick is the best column not picked before. */
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int c = 0; c < C; c++) {
                int taken = 0;
                for (int q = 0; q < j; q++) taken |= oi[q] == c;
                if (!taken && (best < 0 || ranks_before(s[c], c, s[best], best))) best = c;
            }
            oi[j] = best;
            ov[j] = s[best];
        }
    }
}

int mrec_conv2d_out_h(const mrec_conv2d_shape *s) {
    if (s->stride_h <= 0 || s->KH <= 0 || s->H + 2 * s->pad_h < s->KH) return 0;
    return (s->H + 2 * s->pad_h - s->KH) / s->stride_h + 1;
}

int mrec_conv2d_out_w(const mrec_conv2d_shape *s) {
    if (s->stride_w <= 0 || s->KW <= 0 || s->W + 2 * s->pad_w < s->KW) return 0;
    return (s->W + 2 * s->pad_w - s->KW) / s->stride_w + 1;
}

/* One output: sum (the bias) plus its products, the input and weights rounded to bf16 first where bf16. */
static double conv_at(double sum, const float *in, const float *weight, const mrec_conv2d_shape *s, int n, int co, int oh,
                      int ow, int bf16) {
    int cig = s->C_in / s->groups, g = co / (s->C_out / s->groups);
    for (int ci = 0; ci < cig; ci++)
        for (int kh = 0; kh < s->KH; kh++)
            for (int kw = 0; kw < s->KW; kw++) {
                int ih = oh * s->stride_h - s->pad_h + kh, iw = ow * s->stride_w - s->pad_w + kw;
                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                float x = in[(((size_t)n * s->C_in + g * cig + ci) * s->H + ih) * s->W + iw];
                float w = weight[(((size_t)co * cig + ci) * s->KH + kh) * s->KW + kw];
                if (bf16) x = mrec_bf16_widen(mrec_bf16_round(x)), w = mrec_bf16_widen(mrec_bf16_round(w));
                sum += (double)x * w;
            }
    return sum;
}

void mrec_conv2d_ref(float *out, const float *in, const float *weight, const float *bias,
                     const mrec_conv2d_shape *s) {
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    for (int n = 0; n < s->N; n++)
        for (int co = 0; co < s->C_out; co++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++)
                    out[(((size_t)n * s->C_out + co) * Ho + oh) * Wo + ow] =
                        (float)conv_at(bias ? bias[co] : 0.0, in, weight, s, n, co, oh, ow, 0);
}

void mrec_batchnorm_ref(float *out, const float *in, const float *gamma, const float *beta,
                        const float *mean, const float *var, float eps, int N, int C, int HW) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double rstd = 1.0 / sqrt((double)var[c] + eps);
            for (int i = 0; i < HW; i++) {
                size_t at = ((size_t)n * C + c) * HW + i;
                out[at] = (float)((in[at] - (double)mean[c]) * rstd * gamma[c] + beta[c]);
            }
        }
}

void mrec_batchnorm_fold(float *weight, float *bias_out, const float *conv_bias,
                         const float *gamma, const float *beta, const float *mean,
                         const float *var, float eps, int C_out, int64_t per_out) {
    for (int c = 0; c < C_out; c++) {
        double scale = gamma[c] / sqrt((double)var[c] + eps);
        for (int64_t i = 0; i < per_out; i++)
            weight[c * per_out + i] = (float)(weight[c * per_out + i] * scale);
        double b = conv_bias ? conv_bias[c] : 0.0;
        bias_out[c] = (float)((b - mean[c]) * scale + beta[c]);
    }
}

int mrec_pool2d_out_h(const mrec_pool2d_shape *s) {
    if (s->stride_h <= 0 || s->KH <= 0 || s->H + 2 * s->pad_h < s->KH) return 0;
    return (s->H + 2 * s->pad_h - s->KH) / s->stride_h + 1;
}

int mrec_pool2d_out_w(const mrec_pool2d_shape *s) {
    if (s->stride_w <= 0 || s->KW <= 0 || s->W + 2 * s->pad_w < s->KW) return 0;
    return (s->W + 2 * s->pad_w - s->KW) / s->stride_w + 1;
}

static void pool2d_ref(float *out, const float *in, const mrec_pool2d_shape *s, int is_max) {
    int Ho = mrec_pool2d_out_h(s), Wo = mrec_pool2d_out_w(s);
    for (int nc = 0; nc < s->N * s->C; nc++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                double acc = is_max ? -INFINITY : 0.0;
                int count = 0;
                for (int kh = 0; kh < s->KH; kh++)
                    for (int kw = 0; kw < s->KW; kw++) {
                        int ih = oh * s->stride_h - s->pad_h + kh;
                        int iw = ow * s->stride_w - s->pad_w + kw;
                        if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) {
                            count += s->count_include_pad;
                            continue;
                        }
                        double x = in[((size_t)nc * s->H + ih) * s->W + iw];
                        if (is_max) acc = (x > acc || isnan(x)) ? x : acc;
                        else acc += x, count++;
                    }
                out[((size_t)nc * Ho + oh) * Wo + ow] = (float)(is_max ? acc : acc / count);
            }
}

void mrec_maxpool2d_ref(float *out, const float *in, const mrec_pool2d_shape *s) {
    pool2d_ref(out, in, s, 1);
}

void mrec_avgpool2d_ref(float *out, const float *in, const mrec_pool2d_shape *s) {
    pool2d_ref(out, in, s, 0);
}

/* ---- channels-last bf16 ---- */

void mrec_nhwc_bf16_from_nchw_ref(uint16_t *out, const float *in, int N, int C, int HW, int C_pad) {
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++)
            for (int c = 0; c < C_pad; c++)
                out[((size_t)n * HW + p) * C_pad + c] = c < C ? mrec_bf16_round(in[((size_t)n * C + c) * HW + p]) : 0;
}

void mrec_conv2d_nhwc_bf16_ref(uint16_t *out, const uint16_t *in, const float *weight, const float *bias, float beta, int relu,
                               const mrec_conv2d_shape *s) {
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s), Ci = s->C_in;
    for (int n = 0; n < s->N; n++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++)
                for (int co = 0; co < s->C_out; co++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int kh = 0; kh < s->KH; kh++)
                        for (int kw = 0; kw < s->KW; kw++) {
                            int ih = oh * s->stride_h - s->pad_h + kh, iw = ow * s->stride_w - s->pad_w + kw;
                            if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                            const uint16_t *x = in + (((size_t)n * s->H + ih) * s->W + iw) * Ci;
                            const float *w = weight + (((size_t)co * s->KH + kh) * s->KW + kw) * Ci;
                            for (int c = 0; c < Ci; c++)
                                acc += (double)mrec_bf16_widen(x[c]) * mrec_bf16_widen(mrec_bf16_round(w[c]));
                        }
                    uint16_t *y = out + (((size_t)n * Ho + oh) * Wo + ow) * s->C_out + co;
                    if (beta != 0.0f) acc += (double)beta * mrec_bf16_widen(*y);
                    if (relu) acc = acc > 0.0 ? acc : 0.0; /* NaN gives 0, as the fp32 ReLU */
                    *y = mrec_bf16_round((float)acc);
                }
}

/* The expansion's output as autocast hands it on: the conv of the input and weights rounded to bf16 (bias in
 * float), then act, then rounded to bf16. */
void mrec_conv2d_to_bf16_ref(uint16_t *out, const float *in, const float *weight, const float *bias, int act,
                             const mrec_conv2d_shape *s) {
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    for (int n = 0; n < s->N; n++)
        for (int co = 0; co < s->C_out; co++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double sum = conv_at(bias ? bias[co] : 0.0, in, weight, s, n, co, oh, ow, 1);
                    if (act != MREC_GEMM_NO_ACT) sum = activation(sum, (mrec_act)act, 0.0);
                    out[(((size_t)n * s->C_out + co) * Ho + oh) * Wo + ow] = mrec_bf16_round((float)sum);
                }
}

/* One output of a depthwise conv's plane: acc (the bias) plus its products, x (H, W) in float or, where x is
 * NULL, x16 in bf16; the weights w (KH, KW) rounded to bf16 first where round_w. */
static double depthwise_at(double acc, const float *x, const uint16_t *x16, const float *w, int round_w,
                           const mrec_depthwise_shape *s, int oh, int ow) {
    for (int kh = 0; kh < s->KH; kh++)
        for (int kw = 0; kw < s->KW; kw++) {
            int ih = oh * s->stride_h - s->pad_top + kh, iw = ow * s->stride_w - s->pad_left + kw;
            if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
            size_t at = (size_t)ih * s->W + iw;
            float wk = round_w ? mrec_bf16_widen(mrec_bf16_round(w[kh * s->KW + kw])) : w[kh * s->KW + kw];
            acc += (double)(x ? x[at] : mrec_bf16_widen(x16[at])) * wk;
        }
    return acc;
}

void mrec_depthwise_conv2d_ref(float *out, const float *in, const float *weight, const float *bias,
                               const mrec_depthwise_shape *s) {
    int Ho = mrec_depthwise_out_h(s), Wo = mrec_depthwise_out_w(s);
    for (int p = 0; p < s->N * s->C; p++) { /* p: plane n * C + c */
        const float *x = in + (size_t)p * s->H * s->W, *w = weight + (size_t)(p % s->C) * s->KH * s->KW;
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++)
                out[((size_t)p * Ho + oh) * Wo + ow] = (float)depthwise_at(bias ? bias[p % s->C] : 0.0, x, NULL, w, 0, s, oh, ow);
    }
}

/* The depthwise conv that takes it: the bf16 input widened, the weights rounded to bf16 (bias in float), act, and
 * with means (N * C, or NULL) each output plane's mean. */
void mrec_depthwise_conv2d_act_from_bf16_ref(float *out, const uint16_t *in, const float *weight, const float *bias,
                                             mrec_act act, float *means, const mrec_depthwise_shape *s) {
    int Ho = mrec_depthwise_out_h(s), Wo = mrec_depthwise_out_w(s);
    for (int p = 0; p < s->N * s->C; p++) {
        const uint16_t *x = in + (size_t)p * s->H * s->W;
        const float *w = weight + (size_t)(p % s->C) * s->KH * s->KW;
        float *y = out + (size_t)p * Ho * Wo;
        double plane = 0.0;
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                double acc = depthwise_at(bias ? bias[p % s->C] : 0.0, NULL, x, w, 1, s, oh, ow);
                y[(size_t)oh * Wo + ow] = (float)activation(acc, act, 0.0);
                plane += y[(size_t)oh * Wo + ow];
            }
        if (means) means[p] = (float)(plane / ((double)Ho * Wo));
    }
}

void mrec_maxpool2d_nhwc_bf16_ref(uint16_t *out, const uint16_t *in, const mrec_pool2d_shape *s) {
    int Ho = mrec_pool2d_out_h(s), Wo = mrec_pool2d_out_w(s);
    for (int n = 0; n < s->N; n++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++)
                for (int c = 0; c < s->C; c++) {
                    float acc = -INFINITY;
                    for (int kh = 0; kh < s->KH; kh++)
                        for (int kw = 0; kw < s->KW; kw++) {
                            int ih = oh * s->stride_h - s->pad_h + kh, iw = ow * s->stride_w - s->pad_w + kw;
                            if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                            float x = mrec_bf16_widen(in[(((size_t)n * s->H + ih) * s->W + iw) * s->C + c]);
                            acc = (x > acc || isnan(x)) ? x : acc;
                        }
                    out[(((size_t)n * Ho + oh) * Wo + ow) * s->C + c] = mrec_bf16_round(acc);
                }
}

void mrec_mean_hw_nhwc_bf16_ref(float *out, const uint16_t *in, int N, int HW, int C) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            float sum = 0.0f;
            for (int p = 0; p < HW; p++) sum += mrec_bf16_widen(in[((size_t)n * HW + p) * C + c]);
            out[(size_t)n * C + c] = sum / (float)HW;
        }
}

/* ---- bf16 activations ---- */

void mrec_layernorm_bf16_ref(float *out, uint16_t *out16, const float *a, const float *b, const float *weight, const float *bias,
                             float eps, int R, int C) {
    for (int r = 0; r < R; r++) {
        const float *x = a + (size_t)r * C, *y = b ? b + (size_t)r * C : NULL;
        double mean = 0.0, var = 0.0;
        for (int c = 0; c < C; c++) mean += (double)x[c] + (y ? y[c] : 0.0);
        mean /= C;
        for (int c = 0; c < C; c++) {
            double d = (double)x[c] + (y ? y[c] : 0.0) - mean;
            var += d * d;
        }
        double rstd = 1.0 / sqrt(var / C + eps);
        for (int c = 0; c < C; c++) { /* out may be a or b: element c is read before it is written */
            double v = ((double)x[c] + (y ? y[c] : 0.0) - mean) * rstd;
            if (weight) v *= weight[c];
            if (bias) v += bias[c];
            if (out) out[(size_t)r * C + c] = (float)v;
            if (out16) out16[(size_t)r * C + c] = mrec_bf16_round((float)v);
        }
    }
}

void mrec_linear_bf16_ref(void *C, int c_bf16, const uint16_t *A, const float *W, const float *bias, int act, float beta, int M,
                          int N, int K, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double sum = 0.0;
            for (int k = 0; k < K; k++)
                sum += (double)mrec_bf16_widen(A[(size_t)i * K + k]) * mrec_bf16_widen(mrec_bf16_round(W[(size_t)j * K + k]));
            if (c_bf16) {
                uint16_t *y = (uint16_t *)C + (size_t)i * ldc + j;
                if (bias) sum += mrec_bf16_widen(mrec_bf16_round(bias[j]));
                *y = mrec_bf16_round((float)sum);
                if (act != MREC_GEMM_NO_ACT) *y = mrec_bf16_round((float)activation(mrec_bf16_widen(*y), (mrec_act)act, 0.0));
            } else {
                float *y = (float *)C + (size_t)i * ldc + j;
                if (bias) sum += bias[j];
                if (beta != 0.0f) sum += (double)beta * *y;
                *y = (float)sum;
            }
        }
}

void mrec_activation_bf16_ref(uint16_t *x, mrec_act act, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = mrec_bf16_round((float)activation(mrec_bf16_widen(x[i]), act, 0.0));
}

void mrec_attention_bf16_ref(uint16_t *out, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                             const float *mask_bias, const float *head_bias, const int32_t *starts, float scale, int B, int T,
                             int heads, int dh) {
    int H = heads * dh;
    double s[T > 0 ? T : 1];
    for (int b = 0; b < B; b++) {
        size_t row0 = starts ? (size_t)starts[b] : (size_t)b * T;
        int L = starts ? starts[b + 1] - starts[b] : T;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < L; i++) {
                const uint16_t *qi = q + (row0 + i) * ld + (size_t)h * dh;
                double max = -INFINITY;
                for (int j = 0; j < L; j++) {
                    const uint16_t *kj = k + (row0 + j) * ld + (size_t)h * dh;
                    double dot = 0.0;
                    for (int d = 0; d < dh; d++) dot += (double)mrec_bf16_widen(qi[d]) * mrec_bf16_widen(kj[d]);
                    s[j] = dot * scale;
                    if (head_bias) s[j] += head_bias[((size_t)h * T + i) * T + j];
                    if (mask_bias && !starts) s[j] += mask_bias[(size_t)b * T + j];
                    if (s[j] > max) max = s[j];
                }
                double sum = 0.0;
                for (int j = 0; j < L; j++) sum += s[j] = exp(s[j] - max);
                for (int d = 0; d < dh; d++) {
                    double o = 0.0;
                    for (int j = 0; j < L; j++) o += s[j] * mrec_bf16_widen(v[(row0 + j) * ld + (size_t)h * dh + d]);
                    out[(row0 + i) * H + (size_t)h * dh + d] = mrec_bf16_round((float)(o / sum));
                }
            }
    }
}

void mrec_spmm_ref(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                   const float *X, int R, int Cc, int D) {
    (void)Cc;
    for (int r = 0; r < R; r++)
        for (int d = 0; d < D; d++) {
            double sum = 0.0;
            for (int64_t e = row_ptr[r]; e < row_ptr[r + 1]; e++)
                sum += (val ? val[e] : 1.0) * X[(size_t)col[e] * D + d];
            out[(size_t)r * D + d] = (float)sum;
        }
}

void mrec_spmm_t_ref(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                     const float *X, int R, int Cc, int D) {
    for (int c = 0; c < Cc; c++)
        for (int d = 0; d < D; d++) {
            double sum = 0.0;
            for (int r = 0; r < R; r++)
                for (int64_t e = row_ptr[r]; e < row_ptr[r + 1]; e++)
                    if (col[e] == c) sum += (val ? val[e] : 1.0) * X[(size_t)r * D + d];
            out[(size_t)c * D + d] = (float)sum;
        }
}

void mrec_adam_ref(float *param, float *m, float *v, const float *grad, float lr, float beta1, float beta2, float eps,
                   float weight_decay, int64_t step, int64_t n) {
    double bias1 = 1.0 - pow(beta1, (double)step), bias2 = 1.0 - pow(beta2, (double)step);
    for (int64_t i = 0; i < n; i++) {
        double g = (double)grad[i] + (double)weight_decay * param[i];
        m[i] = (float)(beta1 * (double)m[i] + (1.0 - beta1) * g);
        v[i] = (float)(beta2 * (double)v[i] + (1.0 - beta2) * g * g);
        param[i] = (float)(param[i] - lr / bias1 * m[i] / (sqrt((double)v[i]) / sqrt(bias2) + eps));
    }
}

void mrec_dropout_ref(float *out, const float *in, float p, uint64_t seed, uint64_t offset, int64_t n) {
    float scale = (float)(1.0 / (1.0 - p)); /* one float scale, as torch: every device gives the same bits */
    for (int64_t i = 0; i < n; i++) out[i] = mrec_philox_uniform((uint64_t)i, offset, seed) >= p ? in[i] * scale : 0.0f;
}

mrec_status mrec_index_csr_ref(int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V) {
    for (int p = 0; p < N; p++)
        if (ids[p] < 0 || ids[p] >= V)
            return mrec_fail(MREC_ERR_ARG, "index: id %d at position %d is outside [0, %d)", ids[p], p, V);
    memset(row_ptr, 0, sizeof *row_ptr * ((size_t)V + 1));
    for (int p = 0; p < N; p++) row_ptr[ids[p] + 1]++;
    for (int v = 0; v < V; v++) row_ptr[v + 1] += row_ptr[v];
    for (int v = 0; v < V; v++) /* fill in position order: a stable counting sort */
        for (int p = 0, at = (int)row_ptr[v]; p < N && at < row_ptr[v + 1]; p++)
            if (ids[p] == v) pos[at++] = p;
    return MREC_OK;
}
