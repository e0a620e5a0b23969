/* ops.c: shape checks and device dispatch for the tensor ops. */
#include "mrec_ops.h"

#include <string.h>

static mrec_status check_f32(const mrec_context *ctx, const char *op, const char *what,
                             const mrec_tensor *t) {
    if (t->dtype != MREC_F32)
        return mrec_fail(MREC_ERR_DTYPE, "%s: %s is %s, expected F32", op, what, mrec_dtype_name(t->dtype));
    if (t->device != ctx->device)
        return mrec_fail(MREC_ERR_DEVICE, "%s: %s is on %s, the context runs on %s", op, what,
                         mrec_device_name(t->device), mrec_device_name(ctx->device));
    return MREC_OK;
}

static mrec_status shape_error(const char *op, const char *what, const mrec_tensor *t) {
    char buf[96];
    return mrec_fail(MREC_ERR_SHAPE, "%s: %s; got %s", op, what,
                     mrec_shape_str(buf, sizeof buf, t->ndim, t->shape));
}

static int same_shape(const mrec_tensor *a, const mrec_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static int64_t last_dim(const mrec_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
static int64_t leading_rows(const mrec_tensor *t) { return mrec_tensor_numel(t) / (last_dim(t) ? last_dim(t) : 1); }

static mrec_status no_cuda_kernel(const char *op) {
    return mrec_fail(MREC_ERR_UNSUPPORTED, "%s has no CUDA kernel yet", op);
}

mrec_status mrec_op_linear(mrec_context *ctx, mrec_tensor *y, const mrec_tensor *x,
                           const mrec_tensor *w, const mrec_tensor *b) {
    const char *op = "linear";
    mrec_status st;
    if ((st = check_f32(ctx, op, "input", x)) || (st = check_f32(ctx, op, "weight", w)) ||
        (st = check_f32(ctx, op, "output", y)) || (b && (st = check_f32(ctx, op, "bias", b))))
        return st;
    if (w->ndim != 2) return shape_error(op, "weight must be (N, K)", w);
    int64_t N = w->shape[0], K = w->shape[1], M = leading_rows(x);
    if (last_dim(x) != K) return shape_error(op, "input's last dimension must match weight's K", x);
    if (last_dim(y) != N || leading_rows(y) != M) return shape_error(op, "output must be (..., N)", y);
    if (b && (b->ndim != 1 || b->shape[0] != N)) return shape_error(op, "bias must be (N)", b);
    const float *bias = b ? b->data : NULL;
    if (ctx->device == MREC_DEVICE_CUDA)
        return mrec_gemm_cuda(y->data, x->data, w->data, bias, 1.0f, 0.0f, 0, 1, (int)M, (int)N, (int)K,
                              (int)K, (int)K, (int)N, ctx->cuda);
    mrec_gemm_cpu(y->data, x->data, w->data, bias, 1.0f, 0.0f, 0, 1, (int)M, (int)N, (int)K, (int)K,
                  (int)K, (int)N, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_op_matmul(mrec_context *ctx, mrec_tensor *c, const mrec_tensor *a,
                           const mrec_tensor *b, int trans_b, float alpha) {
    const char *op = "matmul";
    mrec_status st;
    if ((st = check_f32(ctx, op, "a", a)) || (st = check_f32(ctx, op, "b", b)) ||
        (st = check_f32(ctx, op, "c", c)))
        return st;
    if (a->ndim < 2 || a->ndim > 3 || b->ndim != a->ndim || c->ndim != a->ndim)
        return shape_error(op, "operands must all be rank 2 or all rank 3", a);
    int r = a->ndim;
    int64_t batch = r == 3 ? a->shape[0] : 1, M = a->shape[r - 2], K = a->shape[r - 1];
    int64_t N = trans_b ? b->shape[r - 2] : b->shape[r - 1];
    int64_t Kb = trans_b ? b->shape[r - 1] : b->shape[r - 2];
    if (Kb != K || (r == 3 && b->shape[0] != batch)) return shape_error(op, "b does not match a", b);
    if (c->shape[r - 2] != M || c->shape[r - 1] != N || (r == 3 && c->shape[0] != batch))
        return shape_error(op, "c must be (batch, M, N)", c);
    if (ctx->device == MREC_DEVICE_CUDA) {
        if (batch != 1) return no_cuda_kernel("batched matmul");
        return mrec_gemm_cuda(c->data, a->data, b->data, NULL, alpha, 0.0f, 0, trans_b, (int)M, (int)N,
                              (int)K, (int)K, trans_b ? (int)K : (int)N, (int)N, ctx->cuda);
    }
    mrec_gemm_batched_cpu(c->data, a->data, b->data, alpha, 0.0f, 0, trans_b, (int)batch, (int)M, (int)N,
                          (int)K, (int)K, trans_b ? (int)K : (int)N, (int)N, M * K, K * N, M * N,
                          ctx->pool);
    return MREC_OK;
}

mrec_status mrec_op_add(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *a,
                        const mrec_tensor *b) {
    mrec_status st;
    if ((st = check_f32(ctx, "add", "a", a)) || (st = check_f32(ctx, "add", "b", b)) ||
        (st = check_f32(ctx, "add", "out", out)))
        return st;
    if (!same_shape(a, b) || !same_shape(a, out)) return shape_error("add", "operands must have one shape", b);
    if (ctx->device == MREC_DEVICE_CUDA) return no_cuda_kernel("add");
    mrec_add_cpu(out->data, a->data, b->data, mrec_tensor_numel(a), ctx->pool);
    return MREC_OK;
}

mrec_status mrec_op_activation(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                               mrec_act act, float slope) {
    mrec_status st;
    if ((st = check_f32(ctx, "activation", "input", in)) || (st = check_f32(ctx, "activation", "output", out)))
        return st;
    if (!same_shape(in, out)) return shape_error("activation", "output must have the input's shape", out);
    if (ctx->device == MREC_DEVICE_CUDA) return no_cuda_kernel("activation");
    mrec_activation_cpu(out->data, in->data, act, slope, mrec_tensor_numel(in), ctx->pool);
    return MREC_OK;
}

mrec_status mrec_op_layernorm(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                              const mrec_tensor *weight, const mrec_tensor *bias, float eps) {
    mrec_status st;
    if ((st = check_f32(ctx, "layernorm", "input", in)) || (st = check_f32(ctx, "layernorm", "output", out)) ||
        (weight && (st = check_f32(ctx, "layernorm", "weight", weight))) ||
        (bias && (st = check_f32(ctx, "layernorm", "bias", bias))))
        return st;
    int64_t C = last_dim(in);
    if (!same_shape(in, out)) return shape_error("layernorm", "output must have the input's shape", out);
    if (weight && mrec_tensor_numel(weight) != C) return shape_error("layernorm", "weight must be (C)", weight);
    if (bias && mrec_tensor_numel(bias) != C) return shape_error("layernorm", "bias must be (C)", bias);
    if (ctx->device == MREC_DEVICE_CUDA) return no_cuda_kernel("layernorm");
    mrec_layernorm_cpu(out->data, in->data, weight ? weight->data : NULL, bias ? bias->data : NULL, eps,
                       (int)leading_rows(in), (int)C, ctx->pool);
    return MREC_OK;
}

mrec_status mrec_op_softmax(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                            const mrec_tensor *mask) {
    mrec_status st;
    if ((st = check_f32(ctx, "softmax", "input", in)) || (st = check_f32(ctx, "softmax", "output", out)) ||
        (mask && (st = check_f32(ctx, "softmax", "mask", mask))))
        return st;
    int64_t C = last_dim(in), R = leading_rows(in), rows_per_mask = 1;
    if (!same_shape(in, out)) return shape_error("softmax", "output must have the input's shape", out);
    if (mask) {
        int64_t mrows = leading_rows(mask);
        if (last_dim(mask) != C || mrows == 0 || R % mrows != 0)
            return shape_error("softmax", "mask must be (M, C) with M dividing the rows", mask);
        rows_per_mask = R / mrows;
    }
    if (ctx->device == MREC_DEVICE_CUDA) return no_cuda_kernel("softmax");
    mrec_softmax_rows_cpu(out->data, in->data, mask ? mask->data : NULL, (int)R, (int)C, (int)rows_per_mask,
                          ctx->pool);
    return MREC_OK;
}

mrec_status mrec_op_l2_normalize(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                                 float eps) {
    mrec_status st;
    if ((st = check_f32(ctx, "l2_normalize", "input", in)) || (st = check_f32(ctx, "l2_normalize", "output", out)))
        return st;
    if (!same_shape(in, out)) return shape_error("l2_normalize", "output must have the input's shape", out);
    if (ctx->device == MREC_DEVICE_CUDA) return no_cuda_kernel("l2_normalize");
    mrec_l2_normalize_rows_cpu(out->data, in->data, eps, (int)leading_rows(in), (int)last_dim(in), ctx->pool);
    return MREC_OK;
}
