/* mrec_ops.h: ops on tensors, dispatched to the device the context runs on.
 *
 * A model calls these and runs unchanged on the CPU or the GPU. Each checks
 * dtypes (F32), devices and shapes, then calls mrec_<op>_cpu or
 * mrec_<op>_cuda from kernels/. An op whose CUDA kernel does not exist yet
 * returns MREC_ERR_UNSUPPORTED naming the op, never a wrong answer.
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

#endif
