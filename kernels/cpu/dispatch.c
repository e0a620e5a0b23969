/* dispatch.c: one public entry per op, mrec_<op>(ctx, ...), that runs the
 * op where the context runs: mrec_<op>_cpu on its pool, or mrec_<op>_cuda
 * on its stream (device pointers then). Models call only these entries, so
 * a model file does not know where it runs. An op with no GPU kernel
 * returns MREC_ERR_UNSUPPORTED naming the op; nothing falls back to the
 * host behind the caller's back.
 *
 * The shapes and contracts are those of the variants (mrec_kernels.h).
 */
#include "../mrec_kernels.h"

#include <stdlib.h>
#include <string.h>

static int on_gpu(const mrec_context *ctx) { return ctx->device == MREC_DEVICE_CUDA; }

/* ---- the replay check (mrec_graph_check_enable): inside a CPU body with the check on, an entry notes its
 * arguments as a GPU's capture would freeze them: a pointer's address, a number's bits, a CSR's arrays and
 * sizes, a BPR spec's fields. NOTE(ctx, a, b, ...) takes up to 20 arguments of any of those types. ---- */

static uint64_t note_u(uint64_t x) { return x; }
static uint64_t note_p(const volatile void *p) { return (uint64_t)(uintptr_t)p; }
static uint64_t note_f(float x) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}
static uint64_t note_d(double x) {
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}
static uint64_t note_mix(uint64_t h, uint64_t x) { return (h ^ x) * 0x100000001b3ull; }
static uint64_t note_csr(const mrec_csr *a) {
    if (!a) return 0;
    uint64_t h = note_mix(note_mix(0xcbf29ce484222325ull, (uint64_t)a->n_rows), (uint64_t)a->n_cols);
    h = note_mix(note_mix(note_mix(h, note_p(a->row_ptr)), note_p(a->col)), note_p(a->val));
    return note_mix(h, note_p(a->transposed));
}
static uint64_t note_spec(const mrec_bpr_spec *b) {
    if (!b) return 0;
    uint64_t h = note_mix(note_mix(0xcbf29ce484222325ull, (uint64_t)b->form), note_f(b->weight));
    h = note_mix(note_mix(h, (uint64_t)b->reg_form), note_f(b->reg));
    return note_mix(note_mix(h, (uint64_t)b->reg_div), (uint64_t)b->accumulate);
}
#define NOTE_ONE(x)                                                                                                   \
    _Generic((x), float: note_f, double: note_d, const mrec_csr *: note_csr, mrec_csr *: note_csr,                     \
             const mrec_bpr_spec *: note_spec, int: note_u, unsigned: note_u, long: note_u, unsigned long: note_u,   \
             long long: note_u, unsigned long long: note_u, default: note_p)(x)
/* NOTE_ONE over each argument (up to 20) */
#define NOTE_N(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, _19, _20, n, ...) n
#define NOTE_1(a) NOTE_ONE(a)
#define NOTE_2(a, ...) NOTE_ONE(a), NOTE_1(__VA_ARGS__)
#define NOTE_3(a, ...) NOTE_ONE(a), NOTE_2(__VA_ARGS__)
#define NOTE_4(a, ...) NOTE_ONE(a), NOTE_3(__VA_ARGS__)
#define NOTE_5(a, ...) NOTE_ONE(a), NOTE_4(__VA_ARGS__)
#define NOTE_6(a, ...) NOTE_ONE(a), NOTE_5(__VA_ARGS__)
#define NOTE_7(a, ...) NOTE_ONE(a), NOTE_6(__VA_ARGS__)
#define NOTE_8(a, ...) NOTE_ONE(a), NOTE_7(__VA_ARGS__)
#define NOTE_9(a, ...) NOTE_ONE(a), NOTE_8(__VA_ARGS__)
#define NOTE_10(a, ...) NOTE_ONE(a), NOTE_9(__VA_ARGS__)
#define NOTE_11(a, ...) NOTE_ONE(a), NOTE_10(__VA_ARGS__)
#define NOTE_12(a, ...) NOTE_ONE(a), NOTE_11(__VA_ARGS__)
#define NOTE_13(a, ...) NOTE_ONE(a), NOTE_12(__VA_ARGS__)
#define NOTE_14(a, ...) NOTE_ONE(a), NOTE_13(__VA_ARGS__)
#define NOTE_15(a, ...) NOTE_ONE(a), NOTE_14(__VA_ARGS__)
#define NOTE_16(a, ...) NOTE_ONE(a), NOTE_15(__VA_ARGS__)
#define NOTE_17(a, ...) NOTE_ONE(a), NOTE_16(__VA_ARGS__)
#define NOTE_18(a, ...) NOTE_ONE(a), NOTE_17(__VA_ARGS__)
#define NOTE_19(a, ...) NOTE_ONE(a), NOTE_18(__VA_ARGS__)
#define NOTE_20(a, ...) NOTE_ONE(a), NOTE_19(__VA_ARGS__)
#define NOTE_ALL(...)                                                                                                   \
    NOTE_N(__VA_ARGS__, NOTE_20, NOTE_19, NOTE_18, NOTE_17, NOTE_16, NOTE_15, NOTE_14, NOTE_13, NOTE_12, NOTE_11,     \
           NOTE_10, NOTE_9, NOTE_8, NOTE_7, NOTE_6, NOTE_5, NOTE_4, NOTE_3, NOTE_2, NOTE_1, 0)(__VA_ARGS__)
#define NOTE(ctx, ...)                                                                                                  \
    do {                                                                                                                \
        if ((ctx)->graph_check && (ctx)->in_graph) {                                                                    \
            const uint64_t note_v[] = {NOTE_ALL(__VA_ARGS__)};                                                          \
            mrec_graph_note(ctx, __func__, note_v, (int)(sizeof note_v / sizeof note_v[0]));                             \
        }                                                                                                               \
    } while (0)

mrec_status mrec_gemm(mrec_context *ctx, float *C, const float *A, const float *B, const float *bias, float alpha,
                      float beta, int trans_a, int trans_b, int M, int N, int K, int lda, int ldb, int ldc) {
    NOTE(ctx, C, A, B, bias, alpha, beta, trans_a, trans_b, M, N, K, lda, ldb, ldc);
    if (on_gpu(ctx) && ctx->precision != MREC_PREC_FP32)
        return mrec_gemm_lt_cuda(C, A, B, bias, alpha, beta, ctx->precision, trans_a, trans_b, M, N, K, lda, ldb, ldc,
                                 ctx->cuda);
    if (on_gpu(ctx)) return mrec_gemm_cuda(C, A, B, bias, alpha, beta, trans_a, trans_b, M, N, K, lda, ldb, ldc, ctx->cuda);
    if (ctx->precision == MREC_PREC_BF16)
        return mrec_gemm_bf16_cpu(C, A, B, bias, alpha, beta, trans_a, trans_b, M, N, K, lda, ldb, ldc, ctx->packs, ctx->pool);
    mrec_gemm_packed_cpu(C, A, B, bias, alpha, beta, trans_a, trans_b, M, N, K, lda, ldb, ldc, ctx->packs, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_gemm_rows(mrec_context *ctx, float *C, const float *A, const int32_t *a_rows, const float *B,
                           const int32_t *b_rows, const float *bias, float alpha, float beta, int trans_a, int trans_b, int M,
                           int N, int K, int lda, int ldb, int ldc) {
    if (on_gpu(ctx)) return mrec_fail(MREC_ERR_UNSUPPORTED, "gemm_rows (a GEMM over gathered rows) on the GPU");
    if ((a_rows && trans_a) || (b_rows && trans_b))
        return mrec_fail(MREC_ERR_ARG, "gemm_rows: an index on a transposed operand (%s)", a_rows && trans_a ? "A" : "B");
    mrec_gemm_rows_cpu(C, A, a_rows, B, b_rows, bias, alpha, beta, trans_a, trans_b, M, N, K, lda, ldb, ldc, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_linear_act(mrec_context *ctx, float *C, const float *A, const float *W, const float *bias, mrec_act act,
                            int M, int N, int K) {
    if (on_gpu(ctx)) {
        mrec_status st = mrec_gemm(ctx, C, A, W, bias, 1, 0, 0, 1, M, N, K, K, K, N);
        return st ? st : mrec_activation(ctx, C, C, act, 0, (int64_t)M * N);
    }
    if (ctx->precision == MREC_PREC_BF16) return mrec_linear_act_bf16_cpu(C, A, W, bias, act, M, N, K, ctx->packs, ctx->pool);
    mrec_linear_act_cpu(C, A, W, bias, act, M, N, K, ctx->packs, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_linear3(mrec_context *ctx, float *const out[3], const float *x, const float *const W[3], const float *const b[3],
                         int R, int N, int K) {
    if (on_gpu(ctx) && ctx->precision == MREC_PREC_BF16) return mrec_linear3_bf16_cuda(out, x, W, b, R, N, K, ctx->cuda);
    mrec_status st = MREC_OK;
    for (int i = 0; i < 3 && !st; i++) st = mrec_gemm(ctx, out[i], x, W[i], b[i], 1, 0, 0, 1, R, N, K, K, K, N);
    return st;
}

mrec_status mrec_ffn(mrec_context *ctx, float *out, const float *x, const float *W1, const float *b1, mrec_act act,
                     const float *W2, const float *b2, float beta, float *hidden, int R, int H, int I) {
    if (on_gpu(ctx) && ctx->precision == MREC_PREC_BF16)
        return mrec_ffn_bf16_cuda(out, x, W1, b1, act, W2, b2, beta, hidden, R, H, I, ctx->cuda);
    mrec_status st = mrec_linear_act(ctx, hidden, x, W1, b1, act, R, I, H);
    return st ? st : mrec_gemm(ctx, out, hidden, W2, b2, 1, beta, 0, 1, R, H, I, I, I, H);
}

mrec_status mrec_gemm_batched(mrec_context *ctx, float *C, const float *A, const float *B, float alpha, float beta,
                              int trans_a, int trans_b, int batch, int M, int N, int K, int lda, int ldb, int ldc,
                              int64_t stride_a, int64_t stride_b, int64_t stride_c) {
    NOTE(ctx, C, A, B, alpha, beta, trans_a, trans_b, batch, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c);
    if (on_gpu(ctx))
        return mrec_gemm_batched_cuda(C, A, B, alpha, beta, trans_a, trans_b, batch, M, N, K, lda, ldb, ldc, stride_a,
                                      stride_b, stride_c, ctx->cuda);
    mrec_gemm_batched_cpu(C, A, B, alpha, beta, trans_a, trans_b, batch, M, N, K, lda, ldb, ldc, stride_a, stride_b,
                          stride_c, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_add(mrec_context *ctx, float *out, const float *a, const float *b, int64_t n) {
    NOTE(ctx, out, a, b, n);
    if (on_gpu(ctx)) return mrec_add_cuda(out, a, b, n, ctx->cuda);
    mrec_add_cpu(out, a, b, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_mul(mrec_context *ctx, float *out, const float *a, const float *b, int64_t n) {
    NOTE(ctx, out, a, b, n);
    if (on_gpu(ctx)) return mrec_mul_cuda(out, a, b, n, ctx->cuda);
    mrec_mul_cpu(out, a, b, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_scale(mrec_context *ctx, float *out, const float *a, float s, int64_t n) {
    NOTE(ctx, out, a, s, n);
    if (on_gpu(ctx)) return mrec_scale_cuda(out, a, s, n, ctx->cuda);
    mrec_scale_cpu(out, a, s, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_fill(mrec_context *ctx, float *out, float value, int64_t n) {
    NOTE(ctx, out, value, n);
    if (on_gpu(ctx)) return mrec_fill_cuda(out, value, n, ctx->cuda);
    mrec_fill_cpu(out, value, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_activation(mrec_context *ctx, float *out, const float *in, mrec_act act, float slope, int64_t n) {
    NOTE(ctx, out, in, act, slope, n);
    if (on_gpu(ctx)) return mrec_activation_cuda(out, in, act, slope, n, ctx->cuda);
    mrec_activation_cpu(out, in, act, slope, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_softmax_rows(mrec_context *ctx, float *out, const float *in, const float *mask, int R, int C,
                              int rows_per_mask) {
    NOTE(ctx, out, in, mask, R, C, rows_per_mask);
    if (on_gpu(ctx)) return mrec_softmax_rows_cuda(out, in, mask, R, C, rows_per_mask, ctx->cuda);
    mrec_softmax_rows_cpu(out, in, mask, R, C, rows_per_mask, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_layernorm(mrec_context *ctx, float *out, const float *in, const float *weight, const float *bias,
                           float eps, int R, int C) {
    if (on_gpu(ctx)) return mrec_layernorm_cuda(out, in, weight, bias, eps, R, C, ctx->cuda);
    mrec_layernorm_cpu(out, in, weight, bias, eps, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_add_layernorm(mrec_context *ctx, float *out, const float *a, const float *b, const float *weight,
                               const float *bias, float eps, int R, int C) {
    if (on_gpu(ctx)) return mrec_add_layernorm_cuda(out, a, b, weight, bias, eps, R, C, ctx->cuda);
    /* two passes on the CPU, where the sum stays in cache between them */
    mrec_add_cpu(out, a, b, (int64_t)R * C, ctx->pool);
    mrec_layernorm_cpu(out, out, weight, bias, eps, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_l2_normalize_rows(mrec_context *ctx, float *out, const float *in, float eps, int R, int C) {
    NOTE(ctx, out, in, eps, R, C);
    if (on_gpu(ctx)) return mrec_l2_normalize_rows_cuda(out, in, eps, R, C, ctx->cuda);
    mrec_l2_normalize_rows_cpu(out, in, eps, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_embedding(mrec_context *ctx, float *out, const float *table, const int32_t *ids, int N, int V,
                           int D) {
    if (on_gpu(ctx)) return mrec_embedding_cuda(out, table, ids, N, V, D, ctx->cuda);
    if (ctx->in_graph) return mrec_graph_wait_refused("an embedding gather reading its ids' check back");
    return mrec_embedding_cpu(out, table, ids, N, V, D, ctx->pool);
}

mrec_status mrec_embedding_checked(mrec_context *ctx, float *out, const float *table, const int32_t *ids, int N, int V,
                                   int D) {
    NOTE(ctx, out, table, ids, N, V, D);
    if (on_gpu(ctx)) return mrec_embedding_checked_cuda(out, table, ids, N, V, D, ctx->cuda);
    return mrec_embedding_cpu(out, table, ids, N, V, D, ctx->pool);
}

mrec_status mrec_mean_pool(mrec_context *ctx, float *out, const float *in, const int32_t *mask, int B, int T, int D) {
    if (on_gpu(ctx)) return mrec_mean_pool_cuda(out, in, mask, B, T, D, ctx->cuda);
    mrec_mean_pool_cpu(out, in, mask, B, T, D, ctx->pool);
    return MREC_OK;
}

/* A GPU context's top k past its kernel's list: the scores to the host, the lists there, back up (the same lists) */
static mrec_status topk_rows_on_host(mrec_context *ctx, int32_t *idx, float *val, const float *scores, int R, int C, int k) {
    size_t n = (size_t)R * C, nk = (size_t)R * k;
    float *s = malloc(n * sizeof *s), *v = malloc(nk * sizeof *v);
    int32_t *i = malloc(nk * sizeof *i);
    mrec_status st = s && v && i ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "topk: %d rows of %d scores on the host", R, C);
    if (!st) st = mrec_copy_to_host(ctx, s, scores, n * sizeof *s);
    if (!st) mrec_topk_rows_cpu(i, v, s, R, C, k, ctx->pool);
    if (!st) st = mrec_copy_to_device(ctx, idx, i, nk * sizeof *i);
    if (!st && val) st = mrec_copy_to_device(ctx, val, v, nk * sizeof *v);
    free(s), free(v), free(i);
    return st;
}

mrec_status mrec_topk_rows(mrec_context *ctx, int32_t *idx, float *val, const float *scores, int R, int C, int k) {
    if (on_gpu(ctx) && k > MREC_TOPK_GPU_MAX && k <= C && R > 0) return topk_rows_on_host(ctx, idx, val, scores, R, C, k);
    if (on_gpu(ctx)) return mrec_topk_rows_cuda(idx, val, scores, R, C, k, ctx->cuda);
    mrec_topk_rows_cpu(idx, val, scores, R, C, k, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_gram_topk(mrec_context *ctx, int32_t *idx, float *val, const float *x, int n, int dim, int k, int unit_rows) {
    if (on_gpu(ctx) && k <= MREC_TOPK_GPU_MAX) return mrec_gram_topk_cuda(idx, val, x, n, dim, k, unit_rows, ctx->cuda);
    return mrec_gram_topk_cpu(idx, val, x, n, dim, k, unit_rows, ctx->pool);
}

size_t mrec_attention_workspace_bytes(const mrec_context *ctx, int B, int T, int heads, int dh) {
    return on_gpu(ctx) ? 0 : mrec_attention_scratch_floats(B, T, heads, dh) * sizeof(float);
}

mrec_status mrec_attention(mrec_context *ctx, float *out, const float *q, const float *k, const float *v,
                           const float *mask_bias, const float *head_bias, float scale, int B, int T, int heads, int dh,
                           void *work) {
    if (on_gpu(ctx) && ctx->precision != MREC_PREC_FP32)
        return mrec_attention_tf32_cuda(out, q, k, v, mask_bias, head_bias, scale, B, T, heads, dh, ctx->cuda);
    if (on_gpu(ctx)) return mrec_attention_cuda(out, q, k, v, mask_bias, head_bias, scale, B, T, heads, dh, ctx->cuda);
    if (!work) return mrec_fail(MREC_ERR_ARG, "attention: no workspace (mrec_attention_workspace_bytes)");
    mrec_attention_cpu(out, q, k, v, mask_bias, head_bias, scale, B, T, heads, dh, work, ctx->precision == MREC_PREC_BF16,
                       ctx->pool);
    return MREC_OK;
}

size_t mrec_attention_varlen_workspace_bytes(const mrec_context *ctx, int T, int heads, int dh) {
    return on_gpu(ctx) ? 0 : mrec_attention_varlen_scratch_floats(T, heads, dh) * sizeof(float);
}

mrec_status mrec_attention_varlen(mrec_context *ctx, float *out, const float *q, const float *k, const float *v,
                                  const float *head_bias, float scale, const int32_t *starts, const int32_t *dev_starts, int B,
                                  int T, int heads, int dh, void *work) {
    if (on_gpu(ctx))
        return mrec_attention_varlen_cuda(out, q, k, v, head_bias, dev_starts, scale, B, T, heads, dh,
                                          ctx->precision != MREC_PREC_FP32, ctx->cuda);
    if (!work) return mrec_fail(MREC_ERR_ARG, "attention: no workspace (mrec_attention_varlen_workspace_bytes)");
    mrec_attention_varlen_cpu(out, q, k, v, head_bias, scale, starts, B, T, heads, dh, work, ctx->precision == MREC_PREC_BF16,
                              ctx->pool);
    return MREC_OK;
}

mrec_status mrec_conv2d_workspace_bytes(const mrec_context *ctx, const mrec_conv2d_shape *s, size_t *bytes) {
    if (on_gpu(ctx)) return mrec_conv2d_workspace_bytes_cuda(bytes, s, ctx->precision, ctx->cuda);
    *bytes = 0; /* the CPU gathers the unfolded input panel by panel */
    return MREC_OK;
}

mrec_status mrec_conv2d(mrec_context *ctx, float *out, const float *in, const float *weight, const float *bias,
                        void *work, size_t work_bytes, const mrec_conv2d_shape *s) {
    if (on_gpu(ctx)) return mrec_conv2d_cuda(out, in, weight, bias, 0.0f, ctx->precision, work, work_bytes, s, ctx->cuda);
    (void)work, (void)work_bytes;
    if (ctx->precision == MREC_PREC_BF16) return mrec_conv2d_bf16_cpu(out, in, weight, bias, s, ctx->packs, ctx->pool);
    mrec_conv2d_cpu(out, in, weight, bias, s, ctx->packs, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_conv2d_act(mrec_context *ctx, float *out, const float *in, const float *weight, const float *bias,
                            float beta, mrec_act act, void *work, size_t work_bytes, const mrec_conv2d_shape *s) {
    if (on_gpu(ctx)) return mrec_conv2d_act_cuda(out, in, weight, bias, beta, act, ctx->precision, work, work_bytes, s, ctx->cuda);
    (void)work, (void)work_bytes;
    if (ctx->precision == MREC_PREC_BF16)
        return mrec_conv2d_act_bf16_cpu(out, in, weight, bias, beta, act, s, ctx->packs, ctx->pool);
    mrec_conv2d_act_cpu(out, in, weight, bias, beta, act, s, ctx->packs, ctx->pool);
    return MREC_OK;
}

int mrec_bf16_planes_native(const mrec_context *ctx) {
    return !on_gpu(ctx) && ctx->precision == MREC_PREC_BF16 && mrec_cpu_has_bf16() && mrec_pool_simd(ctx->pool) < MREC_SIMD_AMX;
}

mrec_status mrec_conv2d_to_bf16(mrec_context *ctx, uint16_t *out, const float *in, const float *weight, const float *bias, int act,
                                const mrec_conv2d_shape *s) {
    if (on_gpu(ctx) || ctx->precision != MREC_PREC_BF16)
        return mrec_fail(MREC_ERR_UNSUPPORTED, "conv2d to bf16: a bf16 context on the CPU only (mrec_bf16_planes_native)");
    if (act != MREC_GEMM_NO_ACT && (act < 0 || act > MREC_ACT_TANH)) return mrec_fail(MREC_ERR_ARG, "conv2d to bf16: activation %d", act);
    return mrec_conv2d_to_bf16_cpu(out, in, weight, bias, act, s, ctx->packs, ctx->pool);
}

mrec_status mrec_batchnorm(mrec_context *ctx, float *out, const float *in, const float *gamma, const float *beta,
                           const float *mean, const float *var, float eps, int N, int C, int HW) {
    if (on_gpu(ctx)) return mrec_batchnorm_cuda(out, in, gamma, beta, mean, var, eps, N, C, HW, ctx->cuda);
    mrec_batchnorm_cpu(out, in, gamma, beta, mean, var, eps, N, C, HW, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_maxpool2d(mrec_context *ctx, float *out, const float *in, const mrec_pool2d_shape *s) {
    if (on_gpu(ctx)) return mrec_maxpool2d_cuda(out, in, s, ctx->cuda);
    mrec_maxpool2d_cpu(out, in, s, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_avgpool2d(mrec_context *ctx, float *out, const float *in, const mrec_pool2d_shape *s) {
    if (on_gpu(ctx)) return mrec_avgpool2d_cuda(out, in, s, ctx->cuda);
    mrec_avgpool2d_cpu(out, in, s, ctx->pool);
    return MREC_OK;
}

/* ---- channels-last bf16 ---------------------------------------------------- */

mrec_status mrec_nhwc_bf16_from_nchw(mrec_context *ctx, uint16_t *out, const float *in, int N, int C, int HW, int C_pad) {
    if (C_pad < C) return mrec_fail(MREC_ERR_ARG, "nhwc_bf16_from_nchw: %d channels padded to %d", C, C_pad);
    if (on_gpu(ctx)) return mrec_nhwc_bf16_from_nchw_cuda(out, in, N, C, HW, C_pad, ctx->cuda);
    mrec_nhwc_bf16_from_nchw_cpu(out, in, N, C, HW, C_pad);
    return MREC_OK;
}

/* On a CPU with AMX tiles the NCHW route keeps them (its products run on the tiles, the channels-last
 * ones on VDPBF16PS alone). */
int mrec_nhwc_bf16_native(const mrec_context *ctx) {
    return on_gpu(ctx) ? mrec_cuda_bf16_native(ctx->cuda) : mrec_cpu_has_bf16() && mrec_pool_simd(ctx->pool) < MREC_SIMD_AMX;
}

mrec_status mrec_conv2d_nhwc_bf16_workspace_bytes(const mrec_context *ctx, const mrec_conv2d_shape *s, size_t *bytes) {
    if (on_gpu(ctx)) return mrec_conv2d_nhwc_bf16_workspace_bytes_cuda(bytes, s, ctx->cuda);
    *bytes = 0;
    return MREC_OK;
}

mrec_status mrec_conv2d_nhwc_bf16(mrec_context *ctx, uint16_t *out, const uint16_t *in, const float *weight, const float *bias,
                                  float beta, int relu, void *work, size_t work_bytes, const mrec_conv2d_shape *s) {
    if (s->groups != 1 || mrec_conv2d_out_h(s) <= 0 || mrec_conv2d_out_w(s) <= 0)
        return mrec_fail(MREC_ERR_SHAPE, "conv2d_nhwc_bf16: kernel %dx%d on %dx%d, groups %d (one group only)", s->KH, s->KW, s->H,
                         s->W, s->groups);
    if (on_gpu(ctx)) return mrec_conv2d_nhwc_bf16_cuda(out, in, weight, bias, beta, relu, work, work_bytes, s, ctx->cuda);
    (void)work, (void)work_bytes;
    if (mrec_cpu_has_bf16() && s->C_in % 2 == 0)
        return mrec_conv2d_nhwc_bf16_cpu(out, in, weight, bias, beta, relu, s, ctx->packs, ctx->pool);
    mrec_conv2d_nhwc_bf16_ref(out, in, weight, bias, beta, relu, s);
    return MREC_OK;
}

mrec_status mrec_maxpool2d_nhwc_bf16(mrec_context *ctx, uint16_t *out, const uint16_t *in, const mrec_pool2d_shape *s) {
    if (mrec_pool2d_out_h(s) <= 0 || mrec_pool2d_out_w(s) <= 0)
        return mrec_fail(MREC_ERR_SHAPE, "maxpool2d_nhwc_bf16: the window does not fit the input");
    if (on_gpu(ctx)) return mrec_maxpool2d_nhwc_bf16_cuda(out, in, s, ctx->cuda);
    if (mrec_cpu_has_bf16()) mrec_maxpool2d_nhwc_bf16_cpu(out, in, s, ctx->pool);
    else mrec_maxpool2d_nhwc_bf16_ref(out, in, s);
    return MREC_OK;
}

mrec_status mrec_mean_hw_nhwc_bf16(mrec_context *ctx, float *out, const uint16_t *in, int N, int HW, int C) {
    if (HW <= 0) return mrec_fail(MREC_ERR_SHAPE, "mean_hw_nhwc_bf16: %d pixels", HW);
    if (on_gpu(ctx)) return mrec_mean_hw_nhwc_bf16_cuda(out, in, N, HW, C, ctx->cuda);
    if (mrec_cpu_has_bf16()) mrec_mean_hw_nhwc_bf16_cpu(out, in, N, HW, C);
    else mrec_mean_hw_nhwc_bf16_ref(out, in, N, HW, C);
    return MREC_OK;
}

/* ---- bf16 activations ------------------------------------------------------ */

int mrec_bf16_activations_native(const mrec_context *ctx) {
    return ctx->precision == MREC_PREC_BF16 && (on_gpu(ctx) ? mrec_cuda_bf16_native(ctx->cuda) : mrec_cpu_has_bf16());
}

mrec_status mrec_layernorm_bf16(mrec_context *ctx, float *out, uint16_t *out16, const float *a, const float *b, const float *weight,
                                const float *bias, float eps, int R, int C) {
    if (on_gpu(ctx)) return mrec_layernorm_bf16_cuda(out, out16, a, b, weight, bias, eps, R, C, ctx->cuda);
    if (mrec_cpu_has_bf16()) mrec_layernorm_bf16_cpu(out, out16, a, b, weight, bias, eps, R, C, ctx->pool);
    else mrec_layernorm_bf16_ref(out, out16, a, b, weight, bias, eps, R, C);
    return MREC_OK;
}

mrec_status mrec_linear_bf16(mrec_context *ctx, void *C, int c_bf16, const uint16_t *A, const float *W, const float *bias, int act,
                             float beta, int M, int N, int K, int ldc) {
    if (ldc < N || (c_bf16 && beta != 0.0f) || (!c_bf16 && act != MREC_GEMM_NO_ACT))
        return mrec_fail(MREC_ERR_ARG, "linear_bf16: %s output with ldc %d < N %d, beta %g or an activation", c_bf16 ? "bf16" : "fp32",
                         ldc, N, beta);
    if (on_gpu(ctx)) return mrec_linear_bf16_cuda(C, c_bf16, A, W, bias, act, beta, M, N, K, ldc, ctx->cuda);
    if (mrec_cpu_has_bf16()) return mrec_linear_bf16_cpu(C, c_bf16, A, W, bias, act, beta, M, N, K, ldc, ctx->packs, ctx->pool);
    mrec_linear_bf16_ref(C, c_bf16, A, W, bias, act, beta, M, N, K, ldc);
    return MREC_OK;
}

mrec_status mrec_qkv_bf16(mrec_context *ctx, uint16_t *qkv, const uint16_t *x, const float *q_w, const float *k_w, const float *v_w,
                          const float *q_b, const float *k_b, const float *v_b, int R, int H) {
    size_t w = (size_t)H * H;
    int packed = k_w == q_w + w && v_w == k_w + w && (q_b ? k_b == q_b + H && v_b == k_b + H : !k_b && !v_b);
    if (packed) return mrec_linear_bf16(ctx, qkv, 1, x, q_w, q_b, MREC_GEMM_NO_ACT, 0.0f, R, 3 * H, H, 3 * H);
    const float *W[3] = {q_w, k_w, v_w}, *b[3] = {q_b, k_b, v_b};
    mrec_status st = MREC_OK;
    for (int i = 0; i < 3 && !st; i++) st = mrec_linear_bf16(ctx, qkv + (size_t)i * H, 1, x, W[i], b[i], MREC_GEMM_NO_ACT, 0.0f, R, H, H, 3 * H);
    return st;
}

mrec_status mrec_activation_bf16(mrec_context *ctx, uint16_t *x, mrec_act act, int64_t n) {
    if (on_gpu(ctx)) return mrec_activation_bf16_cuda(x, act, n, ctx->cuda);
    if (mrec_cpu_has_bf16()) return mrec_activation_bf16_cpu(x, act, n, ctx->pool);
    mrec_activation_bf16_ref(x, act, n);
    return MREC_OK;
}

mrec_status mrec_attention_bf16(mrec_context *ctx, uint16_t *out, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                                const float *mask_bias, const float *head_bias, const int32_t *starts, const int32_t *dev_starts,
                                float scale, int B, int T, int heads, int dh) {
    if (!starts != !dev_starts || (starts && mask_bias))
        return mrec_fail(MREC_ERR_ARG, "attention_bf16: starts on the host and the device together, and no mask with them");
    if (on_gpu(ctx))
        return mrec_attention_bf16_cuda(out, q, k, v, ld, mask_bias, head_bias, dev_starts, scale, B, T, heads, dh, ctx->cuda);
    if (mrec_cpu_has_bf16())
        return mrec_attention_bf16_cpu(out, q, k, v, ld, mask_bias, head_bias, starts, scale, B, T, heads, dh, ctx->pool);
    mrec_attention_bf16_ref(out, q, k, v, ld, mask_bias, head_bias, starts, scale, B, T, heads, dh);
    return MREC_OK;
}

/* ---- encoders ------------------------------------------------------------- */

mrec_status mrec_embedding_sum(mrec_context *ctx, float *out, const float *word, const int32_t *ids, const float *type,
                               const int32_t *type_ids, const float *position, const int32_t *pos, int N, int H) {
    if (on_gpu(ctx)) return mrec_embedding_sum_cuda(out, word, ids, type, type_ids, position, pos, N, H, ctx->cuda);
    mrec_embedding_sum_cpu(out, word, ids, type, type_ids, position, pos, N, H, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_position_ids(mrec_context *ctx, int32_t *pos, const int32_t *ids, int pad_id, int B, int T) {
    if (on_gpu(ctx)) return mrec_position_ids_cuda(pos, ids, pad_id, B, T, ctx->cuda);
    mrec_position_ids_cpu(pos, ids, pad_id, B, T, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_mask_bias(mrec_context *ctx, float *out, const int32_t *mask, int64_t n) {
    if (on_gpu(ctx)) return mrec_mask_bias_cuda(out, mask, n, ctx->cuda);
    mrec_mask_bias_cpu(out, mask, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_rel_bias(mrec_context *ctx, float *out, const float *table, const int32_t *bucket, int heads, int T) {
    if (on_gpu(ctx)) return mrec_rel_bias_cuda(out, table, bucket, heads, T, ctx->cuda);
    mrec_rel_bias_cpu(out, table, bucket, heads, T, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_causal_bias(mrec_context *ctx, float *out, int heads, int T) {
    if (on_gpu(ctx)) return mrec_causal_bias_cuda(out, heads, T, ctx->cuda);
    mrec_causal_bias_cpu(out, heads, T, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_patchify(mrec_context *ctx, float *out, const float *images, int B, int C, int S, int P) {
    if (P < 1 || S % P) return mrec_fail(MREC_ERR_SHAPE, "patchify: %dx%d images do not split into %dx%d patches", S, S, P, P);
    if (on_gpu(ctx)) return mrec_patchify_cuda(out, images, B, C, S, P, ctx->cuda);
    mrec_patchify_cpu(out, images, B, C, S, P, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_class_embed(mrec_context *ctx, float *x, const float *cls, const float *pos, int B, int T, int H) {
    if (on_gpu(ctx)) return mrec_class_embed_cuda(x, cls, pos, B, T, H, ctx->cuda);
    mrec_class_embed_cpu(x, cls, pos, B, T, H, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_copy_rows(mrec_context *ctx, float *out, int ld_out, const float *in, int ld_in, int rows, int cols) {
    NOTE(ctx, out, ld_out, in, ld_in, rows, cols);
    if (rows < 0 || cols < 0 || ld_out < cols || ld_in < cols)
        return mrec_fail(MREC_ERR_ARG, "copy_rows: %d rows of %d with strides %d and %d", rows, cols, ld_out, ld_in);
    if (on_gpu(ctx)) return mrec_copy_rows_cuda(out, ld_out, in, ld_in, rows, cols, ctx->cuda);
    mrec_copy_rows_cpu(out, ld_out, in, ld_in, rows, cols, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_copy_to_device(mrec_context *ctx, void *dst, const void *src, size_t bytes) {
    if (on_gpu(ctx)) return bytes ? mrec_cuda_copy_h2d(ctx->cuda, dst, src, bytes) : MREC_OK;
    if (ctx->in_graph) return mrec_graph_copy_refused(bytes);
    if (bytes && dst != src) memcpy(dst, src, bytes);
    return MREC_OK;
}

mrec_status mrec_copy_to_host(mrec_context *ctx, void *dst, const void *src, size_t bytes) {
    if (on_gpu(ctx)) return bytes ? mrec_cuda_copy_d2h(ctx->cuda, dst, src, bytes) : MREC_OK;
    if (ctx->in_graph) return mrec_graph_copy_refused(bytes);
    if (bytes && dst != src) memcpy(dst, src, bytes);
    return MREC_OK;
}

mrec_status mrec_weights_upload(mrec_context *ctx, float **out, const float *host, int64_t n) {
    *out = NULL;
    if (!on_gpu(ctx)) return MREC_OK; /* the CPU reads the host copy */
    return mrec_cuda_weights_upload(ctx->cuda, out, host, n, ctx->precision == MREC_PREC_BF16);
}

void mrec_weights_release(mrec_context *ctx, float *weights) {
    if (on_gpu(ctx) && weights) mrec_cuda_weights_free(ctx->cuda, weights);
}

/* ---- sparse and training ------------------------------------------------------ */

mrec_status mrec_spmm(mrec_context *ctx, float *out, const mrec_csr *a, const float *X, int D, int transpose) {
    NOTE(ctx, out, a, X, D, transpose);
    return mrec_spmm_sum(ctx, out, NULL, NULL, 1.0f, a, X, D, transpose);
}

mrec_status mrec_spmm_sum(mrec_context *ctx, float *out, float *sum, const float *sum_in, float scale, const mrec_csr *a,
                          const float *X, int D, int transpose) {
    NOTE(ctx, out, sum, sum_in, scale, a, X, D, transpose);
    if (a->device != ctx->device) return mrec_fail(MREC_ERR_DEVICE, "spmm: the sparse matrix is on another device");
    if (on_gpu(ctx)) {
        /* A^T @ X runs as a plain product on the transpose, so the sums need no atomics */
        const mrec_csr *m = transpose ? a->transposed : a;
        if (!m) return mrec_fail(MREC_ERR_UNSUPPORTED, "spmm of a matrix without its transpose (mrec_csr.transposed) on the GPU");
        int rows = transpose ? a->n_cols : a->n_rows, cols = transpose ? a->n_rows : a->n_cols;
        if (m->device != ctx->device || m->n_rows != rows || m->n_cols != cols)
            return mrec_fail(MREC_ERR_SHAPE, "spmm: the transpose kept with the matrix does not match it");
        return mrec_spmm_sum_cuda(out, sum, sum_in, scale, m->row_ptr, m->col, m->val, X, m->n_rows, m->n_cols, D, ctx->cuda);
    }
    /* A^T X over the transpose kept with A (its rows A's columns, each in A's row order, as mrec_spmm_t_cpu
     * would sort them: the same bits), else over one sorted now, the sum then a pass of its own. A kept as its
     * own transpose (symmetric) is sorted now too: its rows' order need not be that one. */
    const mrec_csr *t = a->transposed;
    if (!transpose) {
        mrec_spmm_sum_cpu(out, sum, sum_in, scale, a->row_ptr, a->col, a->val, X, a->n_rows, a->n_cols, D, ctx->pool);
    } else if (t && t != a && t->device == ctx->device && t->n_rows == a->n_cols && t->n_cols == a->n_rows) {
        mrec_spmm_sum_cpu(out, sum, sum_in, scale, t->row_ptr, t->col, t->val, X, t->n_rows, t->n_cols, D, ctx->pool);
    } else {
        int64_t n = (int64_t)a->n_cols * D;
        mrec_spmm_t_cpu(out, a->row_ptr, a->col, a->val, X, a->n_rows, a->n_cols, D, ctx->pool);
        if (sum) mrec_add_cpu(sum, sum_in, out, n, ctx->pool), mrec_scale_cpu(sum, sum, scale, n, ctx->pool);
    }
    return MREC_OK;
}

mrec_status mrec_adam(mrec_context *ctx, float *param, float *m, float *v, const float *grad, float lr, float beta1,
                      float beta2, float eps, float weight_decay, int64_t step, int64_t n) {
    NOTE(ctx, param, m, v, grad, lr, beta1, beta2, eps, weight_decay, step, n);
    if (on_gpu(ctx)) return mrec_adam_cuda(param, m, v, grad, lr, beta1, beta2, eps, weight_decay, step, n, ctx->cuda);
    mrec_adam_cpu(param, m, v, grad, lr, beta1, beta2, eps, weight_decay, step, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_adam_at(mrec_context *ctx, float *param, float *m, float *v, const float *grad, const float *k, float beta1,
                         float beta2, float eps, float weight_decay, int64_t n) {
    NOTE(ctx, param, m, v, grad, k, beta1, beta2, eps, weight_decay, n);
    if (on_gpu(ctx)) return mrec_adam_at_cuda(param, m, v, grad, k, beta1, beta2, eps, weight_decay, n, ctx->cuda);
    mrec_adam_at_cpu(param, m, v, grad, k, beta1, beta2, eps, weight_decay, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_dropout(mrec_context *ctx, float *out, const float *in, float p, uint64_t seed, uint64_t offset,
                         int64_t n) {
    NOTE(ctx, out, in, p, seed, offset, n);
    if (!(p >= 0.0f && p < 1.0f)) return mrec_fail(MREC_ERR_ARG, "dropout: p %g is outside [0, 1)", p);
    if (on_gpu(ctx)) return mrec_dropout_cuda(out, in, p, seed, offset, n, ctx->cuda);
    mrec_dropout_cpu(out, in, p, seed, offset, n, ctx->pool);
    return MREC_OK;
}

/* ---- training and sparse ops ---------------------------------------------------- */

mrec_status mrec_bpr_rows(mrec_context *ctx, float *out, const float *T, const int32_t *ids, const float *dx,
                          const float *coef, int n, int d) {
    NOTE(ctx, out, T, ids, dx, coef, n, d);
    if (n <= 0 || d <= 0) return MREC_OK;
    if (on_gpu(ctx)) return mrec_bpr_rows_cuda(out, T, ids, dx, coef, n, d, ctx->cuda);
    mrec_bpr_rows_cpu(out, T, ids, dx, coef, n, d, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_bpr_rows_at(mrec_context *ctx, float *out, const float *T, const int32_t *ids, const float *dx,
                             const float *coef, int parts, int n, int d) {
    NOTE(ctx, out, T, ids, dx, coef, parts, n, d);
    if (n <= 0 || d <= 0) return MREC_OK;
    if (on_gpu(ctx)) return mrec_bpr_rows_at_cuda(out, T, ids, dx, coef, parts, n, d, ctx->cuda);
    float c[3]; /* the factors are in host memory here */
    for (int p = 0; coef && p < 3; p++) c[p] = parts >> p & 1 ? coef[p] : 0.0f;
    mrec_bpr_rows_cpu(out, T, ids, dx, coef ? c : NULL, n, d, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_bpr_batch_loss(mrec_context *ctx, float *dx, float *coef, double *loss, const float *dots, int n,
                                const mrec_bpr_spec *spec) {
    NOTE(ctx, dx, coef, loss, dots, n, spec);
    if (n < 1) return mrec_fail(MREC_ERR_ARG, "bpr loss: an empty batch");
    if (spec->reg_form != MREC_BPR_REG_NONE && !coef) return mrec_fail(MREC_ERR_ARG, "bpr loss: a regularizer without coef");
    if ((spec->reg_form == MREC_BPR_REG_SQUARED_ALL || spec->reg_form == MREC_BPR_REG_PAIRS) && spec->reg_div < 1)
        return mrec_fail(MREC_ERR_ARG, "bpr loss: the regularizer's divisor is %d", spec->reg_div);
    if (on_gpu(ctx)) return mrec_bpr_batch_loss_cuda(dx, coef, loss, dots, n, spec, ctx->cuda);
    mrec_bpr_batch_loss_cpu(dx, coef, loss, dots, n, spec);
    return MREC_OK;
}

mrec_status mrec_loss_add(mrec_context *ctx, mrec_loss_sum *sum, const double *loss) {
    NOTE(ctx, sum, loss);
    if (on_gpu(ctx)) return mrec_loss_add_cuda(sum, loss, ctx->cuda);
    mrec_loss_add_cpu(sum, loss);
    return MREC_OK;
}

mrec_status mrec_loss_term(mrec_context *ctx, double *loss, const double *x, int n, float scale, double div) {
    NOTE(ctx, loss, x, n, scale, div);
    if (n < 0 || !(div != 0)) return mrec_fail(MREC_ERR_ARG, "loss term: %d values over %g", n, div);
    if (on_gpu(ctx)) return mrec_loss_term_cuda(loss, x, n, scale, div, ctx->cuda);
    mrec_loss_term_cpu(loss, x, n, scale, div);
    return MREC_OK;
}

mrec_status mrec_loss_term_at(mrec_context *ctx, double *loss, const double *x, const int32_t *live, float scale) {
    NOTE(ctx, loss, x, live, scale);
    if (on_gpu(ctx)) return mrec_loss_term_at_cuda(loss, x, live, scale, ctx->cuda);
    mrec_loss_term_at_cpu(loss, x, live, scale);
    return MREC_OK;
}

mrec_status mrec_loss_cos(mrec_context *ctx, double *loss, const float *cos, int n, float weight) {
    NOTE(ctx, loss, cos, n, weight);
    if (n < 1) return mrec_fail(MREC_ERR_ARG, "cosine loss of %d rows", n);
    if (on_gpu(ctx)) return mrec_loss_cos_cuda(loss, cos, n, weight, ctx->cuda);
    mrec_loss_cos_cpu(loss, cos, n, weight);
    return MREC_OK;
}

mrec_status mrec_loss_norm(mrec_context *ctx, float *coef, double *loss, const float *sq, int n, float reg, int div) {
    NOTE(ctx, coef, loss, sq, n, reg, div);
    if (n < 0 || div < 1) return mrec_fail(MREC_ERR_ARG, "norm regularizer: %d sums over %d", n, div);
    if (on_gpu(ctx)) return mrec_loss_norm_cuda(coef, loss, sq, n, reg, div, ctx->cuda);
    mrec_loss_norm_cpu(coef, loss, sq, n, reg, div);
    return MREC_OK;
}

mrec_status mrec_loss_dot(mrec_context *ctx, double *loss, const float *x, const float *y, int64_t n, float scale, double div) {
    NOTE(ctx, loss, x, y, n, scale, div);
    if (n < 0 || !(div != 0)) return mrec_fail(MREC_ERR_ARG, "loss dot: %lld products over %g", (long long)n, div);
    if (on_gpu(ctx)) return mrec_loss_dot_cuda(loss, x, y, n, scale, div, ctx->cuda);
    mrec_loss_dot_cpu(loss, x, y, n, scale, div);
    return MREC_OK;
}

mrec_status mrec_moment_align(mrec_context *ctx, float *alpha, float *sums, double *loss, int W, int64_t n, float w) {
    NOTE(ctx, alpha, sums, loss, W, n, w);
    if (W < 1 || n < 2) return mrec_fail(MREC_ERR_ARG, "moment alignment: %d columns, %lld entries a table", W, (long long)n);
    if (on_gpu(ctx)) return mrec_moment_align_cuda(alpha, sums, loss, W, n, w, ctx->cuda);
    mrec_moment_align_cpu(alpha, sums, loss, W, n, w);
    return MREC_OK;
}

mrec_status mrec_scale_at(mrec_context *ctx, float *out, const float *a, const float *s, int64_t n) {
    NOTE(ctx, out, a, s, n);
    if (on_gpu(ctx)) return mrec_scale_at_cuda(out, a, s, n, ctx->cuda);
    mrec_scale_cpu(out, a, *s, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_gather_dot(mrec_context *ctx, float *out, const float *A, const int32_t *ia, const float *B,
                            const int32_t *ib, int n, int d) {
    NOTE(ctx, out, A, ia, B, ib, n, d);
    if (on_gpu(ctx)) return mrec_gather_dot_cuda(out, A, ia, B, ib, n, d, ctx->cuda);
    mrec_gather_dot_cpu(out, A, ia, B, ib, n, d, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_index_csr_workspace_bytes(const mrec_context *ctx, int N, int V, size_t *bytes) {
    if (on_gpu(ctx)) return mrec_index_csr_workspace_bytes_cuda(bytes, N, V);
    *bytes = 0;
    return MREC_OK;
}

mrec_status mrec_index_csr(mrec_context *ctx, int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V, void *work,
                           size_t work_bytes) {
    if (on_gpu(ctx)) return mrec_index_csr_cuda(row_ptr, pos, ids, N, V, work, work_bytes, ctx->cuda);
    if (ctx->in_graph) return mrec_graph_wait_refused("an index reading its ids' check back");
    return mrec_index_csr_cpu(row_ptr, pos, ids, N, V, ctx->pool);
}

mrec_status mrec_ids_check(const int32_t *host_ids, int N, int V) {
    for (int p = 0; p < N; p++)
        if (host_ids[p] < 0 || host_ids[p] >= V)
            return mrec_fail(MREC_ERR_ARG, "index: id %d at position %d is outside [0, %d)", host_ids[p], p, V);
    return MREC_OK;
}

mrec_status mrec_index_csr_prechecked(mrec_context *ctx, int64_t *row_ptr, int32_t *pos, const int32_t *ids, int N, int V,
                                      void *work, size_t work_bytes) {
    NOTE(ctx, row_ptr, pos, ids, N, V, work, work_bytes);
    if (!on_gpu(ctx)) return mrec_index_csr_cpu(row_ptr, pos, ids, N, V, ctx->pool); /* checks as it goes */
    return mrec_index_csr_checked_cuda(row_ptr, pos, ids, N, V, work, work_bytes, ctx->cuda);
}

mrec_status mrec_index_csr_host_checked(mrec_context *ctx, int64_t *row_ptr, int32_t *pos, const int32_t *ids,
                                        const int32_t *host_ids, int N, int V, void *work, size_t work_bytes) {
    mrec_status st = on_gpu(ctx) ? mrec_ids_check(host_ids, N, V) : MREC_OK;
    return st ? st : mrec_index_csr_prechecked(ctx, row_ptr, pos, ids, N, V, work, work_bytes);
}

mrec_status mrec_mask_rows(mrec_context *ctx, float *scores, const int64_t *row_ptr, const int32_t *col, int u0, int R,
                           int C) {
    NOTE(ctx, scores, row_ptr, col, u0, R, C);
    if (on_gpu(ctx)) return mrec_mask_rows_cuda(scores, row_ptr, col, u0, R, C, ctx->cuda);
    mrec_mask_rows_cpu(scores, row_ptr, col, u0, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_rank_metrics(mrec_context *ctx, mrec_rank_sums *sums, double *work, const int32_t *top, int u0, int R,
                              const mrec_rank_relevance *rel) {
    NOTE(ctx, sums, work, top, u0, R, rel);
    if (rel->n_k < 1 || rel->n_k > MREC_RANK_MAX_K || u0 < 0 || R < 0 || u0 > rel->n_rows - R)
        return mrec_fail(MREC_ERR_ARG, "rank metrics: users %d .. %d of %d, %d cut-offs", u0, u0 + R, rel->n_rows, rel->n_k);
    if (on_gpu(ctx)) return mrec_rank_metrics_cuda(sums, work, top, u0, R, rel, ctx->cuda);
    mrec_rank_metrics_cpu(sums, work, top, u0, R, rel, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_hash_dropout(mrec_context *ctx, float *out, const float *x, const int32_t *idx, int64_t n, float p,
                              uint64_t key) {
    NOTE(ctx, out, x, idx, n, p, key);
    if (!(p >= 0.0f && p < 1.0f)) return mrec_fail(MREC_ERR_ARG, "hash dropout: p %g is outside [0, 1)", p);
    if (on_gpu(ctx)) return mrec_hash_dropout_cuda(out, x, idx, n, p, key, ctx->cuda);
    mrec_hash_dropout_cpu(out, x, idx, n, p, key, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_ngcf_combine(mrec_context *ctx, float *e, float *mask, const float *z1, const float *z2, float slope, float p,
                              uint64_t key, int64_t n) {
    NOTE(ctx, e, mask, z1, z2, slope, p, key, n);
    if (!(p >= 0.0f && p < 1.0f)) return mrec_fail(MREC_ERR_ARG, "ngcf combine: p %g is outside [0, 1)", p);
    if (n < 0) return mrec_fail(MREC_ERR_ARG, "ngcf combine: %lld values", (long long)n);
    if (on_gpu(ctx)) return mrec_ngcf_combine_cuda(e, mask, z1, z2, slope, p, key, n, ctx->cuda);
    mrec_ngcf_combine_cpu(e, mask, z1, z2, slope, p, key, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_hash_dropout_at(mrec_context *ctx, float *out, const float *x, const int32_t *idx, int64_t n, float p,
                                 const uint64_t *key) {
    NOTE(ctx, out, x, idx, n, p, key);
    if (!(p >= 0.0f && p < 1.0f)) return mrec_fail(MREC_ERR_ARG, "hash dropout: p %g is outside [0, 1)", p);
    if (on_gpu(ctx)) return mrec_hash_dropout_at_cuda(out, x, idx, n, p, key, ctx->cuda);
    mrec_hash_dropout_cpu(out, x, idx, n, p, *key, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_ngcf_combine_at(mrec_context *ctx, float *e, float *mask, const float *z1, const float *z2, float slope, float p,
                                 const uint64_t *key, int64_t n) {
    NOTE(ctx, e, mask, z1, z2, slope, p, key, n);
    if (!(p >= 0.0f && p < 1.0f)) return mrec_fail(MREC_ERR_ARG, "ngcf combine: p %g is outside [0, 1)", p);
    if (n < 0) return mrec_fail(MREC_ERR_ARG, "ngcf combine: %lld values", (long long)n);
    if (on_gpu(ctx)) return mrec_ngcf_combine_at_cuda(e, mask, z1, z2, slope, p, key, n, ctx->cuda);
    mrec_ngcf_combine_cpu(e, mask, z1, z2, slope, p, *key, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_ngcf_combine_back(mrec_context *ctx, float *dz1, float *dz2, const float *de, const float *mask, const float *z1,
                                   const float *z2, float slope, int64_t n) {
    NOTE(ctx, dz1, dz2, de, mask, z1, z2, slope, n);
    if (n < 0) return mrec_fail(MREC_ERR_ARG, "ngcf combine backward: %lld values", (long long)n);
    if (on_gpu(ctx)) return mrec_ngcf_combine_back_cuda(dz1, dz2, de, mask, z1, z2, slope, n, ctx->cuda);
    mrec_ngcf_combine_back_cpu(dz1, dz2, de, mask, z1, z2, slope, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_leaky_relu_back(mrec_context *ctx, float *dz, const float *dy, const float *z, float slope, int64_t n) {
    NOTE(ctx, dz, dy, z, slope, n);
    if (on_gpu(ctx)) return mrec_leaky_relu_back_cuda(dz, dy, z, slope, n, ctx->cuda);
    mrec_leaky_relu_back_cpu(dz, dy, z, slope, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_l2_normalize_rows_back(mrec_context *ctx, float *dx, const float *dy, const float *y, const float *x,
                                        float eps, float beta, int R, int C) {
    NOTE(ctx, dx, dy, y, x, eps, beta, R, C);
    if (on_gpu(ctx)) return mrec_l2_normalize_rows_back_cuda(dx, dy, y, x, eps, beta, R, C, ctx->cuda);
    mrec_l2_normalize_rows_back_cpu(dx, dy, y, x, eps, beta, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_sign_noise(mrec_context *ctx, float *x, const float *u, float eps, uint64_t key, uint64_t offset, int R, int C) {
    NOTE(ctx, x, u, eps, key, offset, R, C);
    if (R < 0 || C < 0) return mrec_fail(MREC_ERR_ARG, "sign noise: a (%d, %d) matrix", R, C);
    if (on_gpu(ctx)) return mrec_sign_noise_cuda(x, u, eps, key, offset, R, C, ctx->cuda);
    mrec_sign_noise_cpu(x, u, eps, key, offset, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_sign_noise_at(mrec_context *ctx, float *x, const float *u, float eps, const uint64_t *key, uint64_t offset, int R,
                               int C) {
    NOTE(ctx, x, u, eps, key, offset, R, C);
    if (R < 0 || C < 0) return mrec_fail(MREC_ERR_ARG, "sign noise: a (%d, %d) matrix", R, C);
    if (on_gpu(ctx)) return mrec_sign_noise_at_cuda(x, u, eps, key, offset, R, C, ctx->cuda);
    mrec_sign_noise_cpu(x, u, eps, *key, offset, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_gumbel_noise_at(mrec_context *ctx, float *out, const uint64_t *key, int64_t n) {
    NOTE(ctx, out, key, n);
    if (n < 0) return mrec_fail(MREC_ERR_ARG, "Gumbel noise: %lld values", (long long)n);
    if (on_gpu(ctx)) return mrec_gumbel_noise_at_cuda(out, key, n, ctx->cuda);
    mrec_gumbel_noise_cpu(out, *key, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_gumbel_noise(mrec_context *ctx, float *out, uint64_t key, int64_t n) {
    NOTE(ctx, out, key, n);
    if (n < 0) return mrec_fail(MREC_ERR_ARG, "Gumbel noise: %lld values", (long long)n);
    if (on_gpu(ctx)) return mrec_gumbel_noise_cuda(out, key, n, ctx->cuda);
    mrec_gumbel_noise_cpu(out, key, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_softmax_xent_rows(mrec_context *ctx, float *g, double *loss, const float *s, const int32_t *target, float alpha,
                                   int R, int C) {
    NOTE(ctx, g, loss, s, target, alpha, R, C);
    if (R < 0 || C < 1 || (!target && R > C))
        return mrec_fail(MREC_ERR_ARG, "softmax cross-entropy: (%d, %d) scores%s", R, C, target ? "" : " against their diagonal");
    if (on_gpu(ctx)) return mrec_softmax_xent_rows_cuda(g, loss, s, target, alpha, R, C, ctx->cuda);
    if (target && ctx->device == MREC_DEVICE_CPU)
        for (int r = 0; r < R; r++)
            if (target[r] < 0 || target[r] >= C)
                return mrec_fail(MREC_ERR_ARG, "softmax cross-entropy: target %d of row %d is outside [0, %d)", target[r], r, C);
    mrec_softmax_xent_rows_cpu(g, loss, s, target, alpha, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_softmax_xent_rows_at(mrec_context *ctx, float *g, double *loss, const float *s, const float *alpha, const int32_t *live,
                                      int R, int C) {
    NOTE(ctx, g, loss, s, alpha, live, R, C);
    if (R < 0 || C < 1) return mrec_fail(MREC_ERR_ARG, "softmax cross-entropy: (%d, %d) scores", R, C);
    if (on_gpu(ctx)) return mrec_softmax_xent_rows_at_cuda(g, loss, s, alpha, live, R, C, ctx->cuda);
    mrec_softmax_xent_rows_at_cpu(g, loss, s, alpha, live, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_inv_sqrt(mrec_context *ctx, float *out, const float *in, int64_t n) {
    NOTE(ctx, out, in, n);
    if (n < 0) return mrec_fail(MREC_ERR_ARG, "inverse square root of %lld values", (long long)n);
    if (on_gpu(ctx)) return mrec_inv_sqrt_cuda(out, in, n, ctx->cuda);
    mrec_inv_sqrt_cpu(out, in, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_knn_scores(mrec_context *ctx, float *scores, const int64_t *row_ptr, const int32_t *col, const int32_t *nbr,
                            const float *sim, int u0, int R, int C, int k) {
    if (u0 < 0 || R < 0 || C < 0 || k < 1) return mrec_fail(MREC_ERR_ARG, "knn scores: users %d + %d, %d items, k %d", u0, R, C, k);
    if (on_gpu(ctx)) return mrec_knn_scores_cuda(scores, row_ptr, col, nbr, sim, u0, R, C, k, ctx->cuda);
    mrec_knn_scores_cpu(scores, row_ptr, col, nbr, sim, u0, R, C, k, ctx->pool);
    return MREC_OK;
}

/* ---- backward: training the encoders ---------------------------------------------- */

mrec_status mrec_linear_back(mrec_context *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                             const float *w, int accumulate, int M, int N, int K) {
    NOTE(ctx, dx, dw, db, dy, x, w, accumulate, M, N, K);
    if (M < 0 || N < 0 || K < 0) return mrec_fail(MREC_ERR_ARG, "linear backward: (%d, %d) x (%d, %d)", M, K, N, K);
    if (on_gpu(ctx)) return mrec_linear_back_cuda(dx, dw, db, dy, x, w, accumulate, M, N, K, ctx->cuda);
    mrec_linear_back_cpu(dx, dw, db, dy, x, w, accumulate, M, N, K, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_layernorm_stats(mrec_context *ctx, float *mean, float *rstd, const float *in, float eps, int R, int C) {
    if (R < 0 || C < 1) return mrec_fail(MREC_ERR_ARG, "layernorm statistics: (%d, %d) rows", R, C);
    if (on_gpu(ctx)) return mrec_layernorm_stats_cuda(mean, rstd, in, eps, R, C, ctx->cuda);
    mrec_layernorm_stats_cpu(mean, rstd, in, eps, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_layernorm_back(mrec_context *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                                const float *mean, const float *rstd, const float *w, int accumulate, int R, int C) {
    if (R < 0 || C < 1) return mrec_fail(MREC_ERR_ARG, "layernorm backward: (%d, %d) rows", R, C);
    if (on_gpu(ctx)) return mrec_layernorm_back_cuda(dx, dw, db, dy, x, mean, rstd, w, accumulate, R, C, ctx->cuda);
    mrec_layernorm_back_cpu(dx, dw, db, dy, x, mean, rstd, w, accumulate, R, C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_activation_back(mrec_context *ctx, float *dx, const float *dy, const float *x, mrec_act act, float slope,
                                 int64_t n) {
    NOTE(ctx, dx, dy, x, act, slope, n);
    if ((int)act < MREC_ACT_GELU_ERF || (int)act > MREC_ACT_TANH) return mrec_fail(MREC_ERR_ARG, "activation backward: unknown activation %d", (int)act);
    if (on_gpu(ctx)) return mrec_activation_back_cuda(dx, dy, x, act, slope, n, ctx->cuda);
    mrec_activation_back_cpu(dx, dy, x, act, slope, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_softmax_rows_back(mrec_context *ctx, float *dx, const float *dy, const float *y, int causal, int R, int C) {
    if (R < 0 || C < 1) return mrec_fail(MREC_ERR_ARG, "softmax backward: (%d, %d) rows", R, C);
    if (on_gpu(ctx)) return mrec_softmax_rows_back_cuda(dx, dy, y, causal, R, C, ctx->cuda);
    mrec_softmax_rows_back_cpu(dx, dy, y, causal, R, C, ctx->pool);
    return MREC_OK;
}

size_t mrec_attention_back_workspace_bytes(const mrec_context *ctx, int B, int T, int heads, int dh) {
    if (on_gpu(ctx)) return mrec_attention_back_workspace_bytes_cuda(B, T, heads, dh);
    return sizeof(float) * mrec_attention_back_scratch_floats(B, T, heads, dh);
}

mrec_status mrec_attention_back(mrec_context *ctx, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const float *mask_bias, const float *head_bias, float scale,
                                int B, int T, int heads, int dh, void *work) {
    if (B < 0 || T < 1 || heads < 1 || dh < 1)
        return mrec_fail(MREC_ERR_ARG, "attention backward: B %d, T %d, %d heads of %d", B, T, heads, dh);
    if (!work) return mrec_fail(MREC_ERR_ARG, "attention backward: no workspace (mrec_attention_back_workspace_bytes)");
    if (on_gpu(ctx))
        return mrec_attention_back_cuda(dq, dk, dv, dout, q, k, v, mask_bias, head_bias, scale, B, T, heads, dh, work, ctx->cuda);
    mrec_attention_back_cpu(dq, dk, dv, dout, q, k, v, mask_bias, head_bias, scale, B, T, heads, dh, work, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_embedding_back(mrec_context *ctx, float *dtable, const float *dy, const int64_t *row_ptr, const int32_t *pos,
                                int V, int D) {
    NOTE(ctx, dtable, dy, row_ptr, pos, V, D);
    if (V < 0 || D < 0) return mrec_fail(MREC_ERR_ARG, "embedding backward: a (%d, %d) table", V, D);
    if (on_gpu(ctx)) return mrec_embedding_back_cuda(dtable, dy, row_ptr, pos, V, D, ctx->cuda);
    mrec_embedding_back_cpu(dtable, dy, row_ptr, pos, V, D, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_patchify_back(mrec_context *ctx, float *dimages, const float *dpatches, int B, int C, int S, int P) {
    if (B < 0 || C < 1 || P < 1 || S < P) return mrec_fail(MREC_ERR_ARG, "patch backward: %d images %dx%dx%d, patch %d", B, C, S, S, P);
    if (on_gpu(ctx)) return mrec_patchify_back_cuda(dimages, dpatches, B, C, S, P, ctx->cuda);
    mrec_patchify_back_cpu(dimages, dpatches, B, C, S, P, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_class_embed_back(mrec_context *ctx, float *dcls, float *dpos, const float *dx, int B, int T, int H) {
    if (B < 0 || T < 1 || H < 0) return mrec_fail(MREC_ERR_ARG, "class embedding backward: (%d, %d, %d)", B, T, H);
    if (on_gpu(ctx)) return mrec_class_embed_back_cuda(dcls, dpos, dx, B, T, H, ctx->cuda);
    mrec_class_embed_back_cpu(dcls, dpos, dx, B, T, H, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_gather_rows_back(mrec_context *ctx, float *dx, const float *dy, const int32_t *rows, int B, int H) {
    NOTE(ctx, dx, dy, rows, B, H);
    if (B < 0 || H < 0) return mrec_fail(MREC_ERR_ARG, "gathered rows backward: (%d, %d)", B, H);
    if (on_gpu(ctx)) return mrec_gather_rows_back_cuda(dx, dy, rows, B, H, ctx->cuda);
    mrec_gather_rows_back_cpu(dx, dy, rows, B, H, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_clip_loss(mrec_context *ctx, float *dlogits, double *out, const float *logits, int N, double *work) {
    if (N < 1) return mrec_fail(MREC_ERR_ARG, "clip loss: a batch of %d pairs", N);
    if (!work) return mrec_fail(MREC_ERR_ARG, "clip loss: no workspace (3 N doubles)");
    if (on_gpu(ctx)) return mrec_clip_loss_cuda(dlogits, out, logits, N, work, ctx->cuda);
    mrec_clip_loss_cpu(dlogits, out, logits, N, work, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_adamw(mrec_context *ctx, float *param, float *m, float *v, const float *grad, double lr, double beta1,
                       double beta2, double eps, double weight_decay, int64_t step, int64_t n) {
    if (step < 1) return mrec_fail(MREC_ERR_ARG, "adamw: step %lld (steps count from 1)", (long long)step);
    if (on_gpu(ctx)) return mrec_adamw_cuda(param, m, v, grad, lr, beta1, beta2, eps, weight_decay, step, n, ctx->cuda);
    mrec_adamw_cpu(param, m, v, grad, lr, beta1, beta2, eps, weight_decay, step, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_sum_squares(mrec_context *ctx, double *out, const float *x, int64_t n) {
    NOTE(ctx, out, x, n);
    if (on_gpu(ctx)) return mrec_sum_squares_cuda(out, x, n, ctx->cuda);
    mrec_sum_squares_cpu(out, x, n, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_segment_softmax(mrec_context *ctx, float *y, const float *x, const int64_t *row_ptr, int R) {
    NOTE(ctx, y, x, row_ptr, R);
    if (R < 0) return mrec_fail(MREC_ERR_ARG, "segment softmax over %d rows", R);
    if (on_gpu(ctx)) return mrec_segment_softmax_cuda(y, x, row_ptr, R, ctx->cuda);
    mrec_segment_softmax_cpu(y, x, row_ptr, R, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_segment_softmax_back(mrec_context *ctx, float *dx, const float *dy, const float *y, const int64_t *row_ptr, int R) {
    NOTE(ctx, dx, dy, y, row_ptr, R);
    if (R < 0) return mrec_fail(MREC_ERR_ARG, "segment softmax backward over %d rows", R);
    if (on_gpu(ctx)) return mrec_segment_softmax_back_cuda(dx, dy, y, row_ptr, R, ctx->cuda);
    mrec_segment_softmax_back_cpu(dx, dy, y, row_ptr, R, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_depthwise_conv2d(mrec_context *ctx, float *out, const float *in, const float *weight,
                                  const float *bias, const mrec_depthwise_shape *s) {
    if (s->N < 0 || s->C < 1 || mrec_depthwise_out_h(s) < 1 || mrec_depthwise_out_w(s) < 1)
        return mrec_fail(MREC_ERR_ARG, "depthwise conv: invalid shape N=%d C=%d %dx%d k=%dx%d stride %dx%d pad %d,%d,%d,%d",
                         s->N, s->C, s->H, s->W, s->KH, s->KW, s->stride_h, s->stride_w, s->pad_top, s->pad_bottom,
                         s->pad_left, s->pad_right);
    if (on_gpu(ctx)) return mrec_depthwise_conv2d_cuda(out, in, weight, bias, s, ctx->cuda);
    mrec_depthwise_conv2d_cpu(out, in, weight, bias, s, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_depthwise_conv2d_act(mrec_context *ctx, float *out, const float *in, const float *weight,
                                      const float *bias, mrec_act act, float *means, const mrec_depthwise_shape *s) {
    if (s->N < 0 || s->C < 1 || mrec_depthwise_out_h(s) < 1 || mrec_depthwise_out_w(s) < 1)
        return mrec_depthwise_conv2d(ctx, out, in, weight, bias, s); /* its error */
    if (on_gpu(ctx)) return mrec_depthwise_conv2d_act_cuda(out, in, weight, bias, act, means, s, ctx->cuda);
    if (ctx->precision == MREC_PREC_BF16) return mrec_depthwise_conv2d_act_bf16_cpu(out, in, weight, bias, act, means, s, ctx->pool);
    mrec_depthwise_conv2d_act_cpu(out, in, weight, bias, act, means, s, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_depthwise_conv2d_act_from_bf16(mrec_context *ctx, float *out, const uint16_t *in, const float *weight,
                                                const float *bias, mrec_act act, float *means, const mrec_depthwise_shape *s) {
    if (on_gpu(ctx) || ctx->precision != MREC_PREC_BF16)
        return mrec_fail(MREC_ERR_UNSUPPORTED, "depthwise conv from bf16: a bf16 context on the CPU only (mrec_bf16_planes_native)");
    if (s->N < 0 || s->C < 1 || mrec_depthwise_out_h(s) < 1 || mrec_depthwise_out_w(s) < 1)
        return mrec_fail(MREC_ERR_ARG, "depthwise conv from bf16: N %d, C %d, a %dx%d output", s->N, s->C, mrec_depthwise_out_w(s),
                         mrec_depthwise_out_h(s));
    return mrec_depthwise_conv2d_act_from_bf16_cpu(out, in, weight, bias, act, means, s, ctx->pool);
}

mrec_status mrec_row_mean(mrec_context *ctx, float *out, const float *in, int R, int HW) {
    NOTE(ctx, out, in, R, HW);
    if (R < 0 || HW < 1) return mrec_fail(MREC_ERR_ARG, "row mean: %d rows of %d", R, HW);
    if (on_gpu(ctx)) return mrec_row_mean_cuda(out, in, R, HW, ctx->cuda);
    mrec_row_mean_cpu(out, in, R, HW, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_sigmoid_gate_rows(mrec_context *ctx, float *out, const float *in, const float *gate, int R, int HW) {
    NOTE(ctx, out, in, gate, R, HW);
    if (R < 0 || HW < 0) return mrec_fail(MREC_ERR_ARG, "sigmoid gate: %d rows of %d", R, HW);
    if (on_gpu(ctx)) return mrec_sigmoid_gate_rows_cuda(out, in, gate, R, HW, ctx->cuda);
    mrec_sigmoid_gate_rows_cpu(out, in, gate, R, HW, ctx->pool);
    return MREC_OK;
}
