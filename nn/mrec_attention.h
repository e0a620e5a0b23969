/* mrec_attention.h: the multi-head self-attention core shared by the
 * transformer encoders (BERT / MPNet, ViT, CLIP).
 *
 *   out (B, T, H) = concat over heads h of softmax(q_h k_h^T * scale + bias) v_h
 *
 * q, k, v are (B, T, H) token-major, as the linear layers leave them, with
 * H = heads * dh. bias = head_bias (heads, T, T), shared by all sequences
 * (MPNet's relative positions), plus mask_bias (B, T) on each key (0 for a
 * real token, -FLT_MAX for padding, as HF builds it); either may be NULL.
 * Heads go first, (B, T, nh, dh) -> (B, nh, T, dh), so one batched GEMM
 * covers every (sequence, head) pair with a single stride.
 */
#ifndef MREC_ATTENTION_H
#define MREC_ATTENTION_H

#include <stddef.h>

#include "../kernels/mrec_kernels.h"

/* Floats of scratch mrec_attention_cpu needs. */
size_t mrec_attention_scratch_floats(int B, int T, int heads, int dh);

void mrec_attention_cpu(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                        const float *head_bias, float scale, int B, int T, int heads, int dh, float *scratch,
                        mrec_pool *pool);

#endif
