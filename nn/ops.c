/* ops.c: the tensor ops: dtype, device and shape checks, then the op's entry
 * (kernels/mrec_kernels.h), which runs it where the context runs. */
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
    return mrec_gemm(ctx, y->data, x->data, w->data, b ? b->data : NULL, 1.0f, 0.0f, 0, 1, (int)M, (int)N, (int)K, (int)K,
                     (int)K, (int)N);
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
    return mrec_gemm_batched(ctx, c->data, a->data, b->data, alpha, 0.0f, 0, trans_b, (int)batch, (int)M, (int)N, (int)K,
                             (int)K, trans_b ? (int)K : (int)N, (int)N, M * K, K * N, M * N);
}

mrec_status mrec_op_add(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *a,
                        const mrec_tensor *b) {
    mrec_status st;
    if ((st = check_f32(ctx, "add", "a", a)) || (st = check_f32(ctx, "add", "b", b)) ||
        (st = check_f32(ctx, "add", "out", out)))
        return st;
    if (!same_shape(a, b) || !same_shape(a, out)) return shape_error("add", "operands must have one shape", b);
    return mrec_add(ctx, out->data, a->data, b->data, mrec_tensor_numel(a));
}

mrec_status mrec_op_activation(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                               mrec_act act, float slope) {
    mrec_status st;
    if ((st = check_f32(ctx, "activation", "input", in)) || (st = check_f32(ctx, "activation", "output", out)))
        return st;
    if (!same_shape(in, out)) return shape_error("activation", "output must have the input's shape", out);
    return mrec_activation(ctx, out->data, in->data, act, slope, mrec_tensor_numel(in));
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
    return mrec_layernorm(ctx, out->data, in->data, weight ? weight->data : NULL, bias ? bias->data : NULL, eps,
                          (int)leading_rows(in), (int)C);
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
    return mrec_softmax_rows(ctx, out->data, in->data, mask ? mask->data : NULL, (int)R, (int)C, (int)rows_per_mask);
}

mrec_status mrec_op_l2_normalize(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                                 float eps) {
    mrec_status st;
    if ((st = check_f32(ctx, "l2_normalize", "input", in)) || (st = check_f32(ctx, "l2_normalize", "output", out)))
        return st;
    if (!same_shape(in, out)) return shape_error("l2_normalize", "output must have the input's shape", out);
    return mrec_l2_normalize_rows(ctx, out->data, in->data, eps, (int)leading_rows(in), (int)last_dim(in));
}

mrec_status mrec_op_mul(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *a,
                        const mrec_tensor *b) {
    mrec_status st;
    if ((st = check_f32(ctx, "mul", "a", a)) || (st = check_f32(ctx, "mul", "b", b)) ||
        (st = check_f32(ctx, "mul", "out", out)))
        return st;
    if (!same_shape(a, b) || !same_shape(a, out)) return shape_error("mul", "operands must have one shape", b);
    return mrec_mul(ctx, out->data, a->data, b->data, mrec_tensor_numel(a));
}

mrec_status mrec_op_scale(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *a, float s) {
    mrec_status st;
    if ((st = check_f32(ctx, "scale", "a", a)) || (st = check_f32(ctx, "scale", "out", out))) return st;
    if (!same_shape(a, out)) return shape_error("scale", "output must have the input's shape", out);
    return mrec_scale(ctx, out->data, a->data, s, mrec_tensor_numel(a));
}

static mrec_status check_i32(const mrec_context *ctx, const char *op, const char *what, const mrec_tensor *t) {
    if (t->dtype != MREC_I32)
        return mrec_fail(MREC_ERR_DTYPE, "%s: %s is %s, expected I32", op, what, mrec_dtype_name(t->dtype));
    if (t->device != ctx->device)
        return mrec_fail(MREC_ERR_DEVICE, "%s: %s is on %s, the context runs on %s", op, what,
                         mrec_device_name(t->device), mrec_device_name(ctx->device));
    return MREC_OK;
}

mrec_status mrec_op_embedding(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *table,
                              const mrec_tensor *ids) {
    mrec_status st;
    if ((st = check_f32(ctx, "embedding", "table", table)) || (st = check_f32(ctx, "embedding", "output", out)) ||
        (st = check_i32(ctx, "embedding", "ids", ids)))
        return st;
    if (table->ndim != 2) return shape_error("embedding", "table must be (V, D)", table);
    int64_t N = mrec_tensor_numel(ids), D = table->shape[1];
    if (mrec_tensor_numel(out) != N * D || last_dim(out) != D)
        return shape_error("embedding", "output must be (..., D) with one row per id", out);
    return mrec_embedding(ctx, out->data, table->data, ids->data, (int)N, (int)table->shape[0], (int)D);
}

mrec_status mrec_op_mean_pool(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                              const mrec_tensor *mask) {
    mrec_status st;
    if ((st = check_f32(ctx, "mean_pool", "input", in)) || (st = check_f32(ctx, "mean_pool", "output", out)) ||
        (mask && (st = check_i32(ctx, "mean_pool", "mask", mask))))
        return st;
    if (in->ndim != 3) return shape_error("mean_pool", "input must be (B, T, D)", in);
    int64_t B = in->shape[0], T = in->shape[1], D = in->shape[2];
    if (out->ndim != 2 || out->shape[0] != B || out->shape[1] != D) return shape_error("mean_pool", "output must be (B, D)", out);
    if (mask && (mask->ndim != 2 || mask->shape[0] != B || mask->shape[1] != T))
        return shape_error("mean_pool", "mask must be (B, T)", mask);
    return mrec_mean_pool(ctx, out->data, in->data, mask ? mask->data : NULL, (int)B, (int)T, (int)D);
}

mrec_status mrec_op_conv2d(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                           const mrec_tensor *weight, const mrec_tensor *bias, int stride, int pad,
                           int groups) {
    const char *op = "conv2d";
    mrec_status st;
    if ((st = check_f32(ctx, op, "input", in)) || (st = check_f32(ctx, op, "weight", weight)) ||
        (st = check_f32(ctx, op, "output", out)) || (bias && (st = check_f32(ctx, op, "bias", bias))))
        return st;
    if (in->ndim != 4) return shape_error(op, "input must be (N, C, H, W)", in);
    if (weight->ndim != 4) return shape_error(op, "weight must be (C_out, C_in / groups, KH, KW)", weight);
    if (groups <= 0 || stride <= 0 || pad < 0 || in->shape[1] % groups || weight->shape[0] % groups ||
        weight->shape[1] * groups != in->shape[1])
        return shape_error(op, "weight's input channels times groups must equal the input's channels", weight);
    mrec_conv2d_shape s = {(int)in->shape[0], (int)in->shape[1], (int)in->shape[2], (int)in->shape[3],
                           (int)weight->shape[0], (int)weight->shape[2], (int)weight->shape[3],
                           stride, stride, pad, pad, groups};
    int Ho = mrec_conv2d_out_h(&s), Wo = mrec_conv2d_out_w(&s);
    if (Ho <= 0 || Wo <= 0) return shape_error(op, "kernel larger than the padded input", in);
    if (out->ndim != 4 || out->shape[0] != s.N || out->shape[1] != s.C_out || out->shape[2] != Ho || out->shape[3] != Wo)
        return shape_error(op, "output must be (N, C_out, Ho, Wo)", out);
    if (bias && mrec_tensor_numel(bias) != s.C_out) return shape_error(op, "bias must be (C_out)", bias);
    size_t mark = ctx->workspace.used, need = 0;
    if ((st = mrec_conv2d_workspace_bytes(ctx, &s, &need))) return st;
    void *work = need ? mrec_arena_alloc(&ctx->workspace, need) : NULL;
    if (need && !work)
        return mrec_fail(MREC_ERR_NOMEM, "conv2d: needs %zu bytes of workspace, %zu of %zu are free", need,
                         ctx->workspace.capacity - ctx->workspace.used, ctx->workspace.capacity);
    st = mrec_conv2d(ctx, out->data, in->data, weight->data, bias ? bias->data : NULL, work, need, &s);
    ctx->workspace.used = mark;
    return st;
}

static mrec_status pool2d(mrec_context *ctx, const char *op, mrec_tensor *out, const mrec_tensor *in, int kernel,
                          int stride, int pad, int count_include_pad, int is_max) {
    mrec_status st;
    if ((st = check_f32(ctx, op, "input", in)) || (st = check_f32(ctx, op, "output", out))) return st;
    if (in->ndim != 4) return shape_error(op, "input must be (N, C, H, W)", in);
    mrec_pool2d_shape s = {(int)in->shape[0], (int)in->shape[1], (int)in->shape[2], (int)in->shape[3],
                           kernel, kernel, stride, stride, pad, pad, count_include_pad};
    int Ho = mrec_pool2d_out_h(&s), Wo = mrec_pool2d_out_w(&s);
    if (Ho <= 0 || Wo <= 0 || pad < 0 || 2 * pad > kernel)
        return shape_error(op, "window, stride or padding does not fit the input", in);
    if (out->ndim != 4 || out->shape[0] != s.N || out->shape[1] != s.C || out->shape[2] != Ho || out->shape[3] != Wo)
        return shape_error(op, "output must be (N, C, Ho, Wo)", out);
    return is_max ? mrec_maxpool2d(ctx, out->data, in->data, &s) : mrec_avgpool2d(ctx, out->data, in->data, &s);
}

mrec_status mrec_op_maxpool2d(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                              int kernel, int stride, int pad) {
    return pool2d(ctx, "maxpool2d", out, in, kernel, stride, pad, 1, 1);
}

mrec_status mrec_op_avgpool2d(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                              int kernel, int stride, int pad, int count_include_pad) {
    return pool2d(ctx, "avgpool2d", out, in, kernel, stride, pad, count_include_pad, 0);
}

mrec_status mrec_op_topk(mrec_context *ctx, mrec_tensor *idx, mrec_tensor *val,
                         const mrec_tensor *scores) {
    mrec_status st;
    if ((st = check_f32(ctx, "topk", "scores", scores)) || (st = check_f32(ctx, "topk", "values", val)) ||
        (st = check_i32(ctx, "topk", "indices", idx)))
        return st;
    if (scores->ndim != 2) return shape_error("topk", "scores must be (R, C)", scores);
    int64_t R = scores->shape[0], C = scores->shape[1], k = last_dim(idx);
    if (idx->ndim != 2 || idx->shape[0] != R || k > C || k < 1)
        return shape_error("topk", "indices must be (R, k) with 1 <= k <= C", idx);
    if (!same_shape(idx, val)) return shape_error("topk", "values must have the indices' shape", val);
    return mrec_topk_rows(ctx, idx->data, val->data, scores->data, (int)R, (int)C, (int)k);
}

mrec_status mrec_op_spmm(mrec_context *ctx, mrec_tensor *out, const mrec_csr *a, const mrec_tensor *x,
                         int transpose) {
    mrec_status st;
    if ((st = check_f32(ctx, "spmm", "x", x)) || (st = check_f32(ctx, "spmm", "output", out))) return st;
    if (a->device != ctx->device) return mrec_fail(MREC_ERR_DEVICE, "spmm: the sparse matrix is on another device");
    int64_t in_rows = transpose ? a->n_rows : a->n_cols, out_rows = transpose ? a->n_cols : a->n_rows;
    if (x->ndim != 2 || x->shape[0] != in_rows) return shape_error("spmm", "x's rows must match the sparse matrix", x);
    if (out->ndim != 2 || out->shape[0] != out_rows || out->shape[1] != x->shape[1])
        return shape_error("spmm", "output must be (rows of the product, D)", out);
    return mrec_spmm(ctx, out->data, a, x->data, (int)x->shape[1], transpose);
}
