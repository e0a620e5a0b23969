/* mrec_ops.h: ops on tensors, dispatched to the device the context runs on.
 *
 * A model calls these and runs unchanged on the CPU or the GPU. Each checks
 * dtypes (F32), devices and shapes, then calls the op's entry mrec_<op>(ctx,
 * ...) from kernels/, which picks mrec_<op>_cpu or mrec_<op>_cuda. An op
 * without a CUDA kernel returns MREC_ERR_UNSUPPORTED naming the op, never a
 * wrong answer.
 */
#ifndef MREC_OPS_H
#define MREC_OPS_H

#include "mrec_tensor.h"

/* y (..., N) = x (..., K) @ W^T + b, W (N, K), b (N) or NULL: nn.Linear. */
mrec_status mrec_op_linear(mrec_context *ctx, mrec_tensor *y, const mrec_tensor *x,
                           const mrec_tensor *w, const mrec_tensor *b);

/* c (B, M, N) = a (B, M, K) @ op(b), op(b) = b (B, K, N) or b^T with b (B, N, K)
 * when trans_b; scaled by alpha. Rank 2 is a batch of one. */
mrec_status mrec_op_matmul(mrec_context *ctx, mrec_tensor *c, const mrec_tensor *a,
                           const mrec_tensor *b, int trans_b, float alpha);

/* out = a + b, same shapes. In place allowed. */
mrec_status mrec_op_add(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *a,
                        const mrec_tensor *b);

/* Hugging Face's hidden_act names (gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, relu, silu, swish)
 * to an activation; 0 for a name mrec does not implement. Defined in hf_config.c. */
#define MREC_HF_ACT_NAMES "gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, relu, silu"
int mrec_act_from_hf(const char *name, mrec_act *act);

mrec_status mrec_op_activation(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                               mrec_act act, float slope);

/* Over the last dimension; weight and bias (C) or NULL. */
mrec_status mrec_op_layernorm(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                              const mrec_tensor *weight, const mrec_tensor *bias, float eps);

/* Softmax over the last dimension; mask (M, C) or NULL, shared by
 * rows / M consecutive rows (see mrec_softmax_rows_ref). */
mrec_status mrec_op_softmax(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                            const mrec_tensor *mask);

mrec_status mrec_op_l2_normalize(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                                 float eps);

/* out = a * b (same shapes), out = a * s. In place allowed. */
mrec_status mrec_op_mul(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *a,
                        const mrec_tensor *b);
mrec_status mrec_op_scale(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *a, float s);

/* out (N, D) = table (V, D)[ids (N)], ids I32; an id out of range is an error. */
mrec_status mrec_op_embedding(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *table,
                              const mrec_tensor *ids);

/* out (B, D) = mean over T of in (B, T, D) where mask (B, T) (I32) is set;
 * mask NULL means every token. */
mrec_status mrec_op_mean_pool(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                              const mrec_tensor *mask);

/* out (N, C_out, Ho, Wo) = conv2d(in (N, C_in, H, W), weight (C_out, C_in/groups, KH, KW))
 * + bias (C_out) or NULL. The convolution's workspace (on a GPU, cuDNN's) is
 * carved from ctx->workspace and given back before returning. */
mrec_status mrec_op_conv2d(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                           const mrec_tensor *weight, const mrec_tensor *bias, int stride, int pad,
                           int groups);

/* 2-D max / average pooling of in (N, C, H, W), square window. */
mrec_status mrec_op_maxpool2d(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                              int kernel, int stride, int pad);
mrec_status mrec_op_avgpool2d(mrec_context *ctx, mrec_tensor *out, const mrec_tensor *in,
                              int kernel, int stride, int pad, int count_include_pad);

/* Top-k of each row of scores (R, C): idx (R, k) I32 and val (R, k). */
mrec_status mrec_op_topk(mrec_context *ctx, mrec_tensor *idx, mrec_tensor *val,
                         const mrec_tensor *scores);

/* out (R, D) = A (R, Cc) @ X (Cc, D), or with transpose, out (Cc, D) = A^T @ X (R, D). */
mrec_status mrec_op_spmm(mrec_context *ctx, mrec_tensor *out, const mrec_csr *a, const mrec_tensor *x,
                         int transpose);

#endif
