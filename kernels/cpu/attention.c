/* attention.c: multi-head self-attention on the CPU kernels. */
#include "../mrec_kernels.h"
#include "gemm_internal.h"


size_t mrec_attention_scratch_floats(int B, int T, int heads, int dh) {
    (void)dh;
    return (size_t)B * heads * T * T;
}

/* q, k, v and out are (B, T, nh, dh): head h of sequence b is a (T, dh)
 * matrix at b * T * nh * dh + h * dh with rows nh * dh apart, which the
 * batched GEMM reads and writes in place (a batch of nh heads dh apart per
 * sequence), so no head is copied out and back. */
void mrec_attention_cpu(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                        const float *head_bias, float scale, int B, int T, int nh, int dh, float *scratch,
                        int bf16, mrec_pool *pool) {
    float *scores = scratch; /* (B, nh, T, T) */
    int ld = nh * dh;
    int64_t tt = (int64_t)T * T;
    size_t seq = (size_t)T * ld;
    /* In a bf16 context both products take bf16 operands, as autocast's matmuls do; the softmax between stays fp32
     * (16 lanes). Each falls back to fp32 where its packing does not fit a thread's scratch (very long sequences). */
    bf16 = bf16 && mrec_cpu_has_bf16();
    for (int b = 0; b < B; b++)
        if (!bf16 || !mrec_gemm_bf16_batched(scores + (size_t)b * nh * tt, q + b * seq, k + b * seq, scale, 0, 1, nh, T, T, dh,
                                             ld, ld, T, dh, dh, tt, pool))
            mrec_gemm_batched_cpu(scores + (size_t)b * nh * tt, q + b * seq, k + b * seq, scale, 0, 0, 1, nh, T, T, dh, ld, ld,
                                  T, dh, dh, tt, pool);
    if (head_bias)
        for (int b = 0; b < B; b++) mrec_add_cpu(scores + (size_t)b * nh * tt, scores + (size_t)b * nh * tt, head_bias, nh * tt, pool);
    /* each row of mask_bias serves the nh * T score rows of its sequence */
    (bf16 ? mrec_softmax_rows_lanes_cpu : mrec_softmax_rows_cpu)(scores, scores, mask_bias, B * nh * T, T, nh * T, pool);
    for (int b = 0; b < B; b++)
        if (!bf16 || !mrec_gemm_bf16_batched(out + b * seq, scores + (size_t)b * nh * tt, v + b * seq, 1, 0, 0, nh, T, dh, T,
                                             T, ld, ld, tt, dh, dh, pool))
            mrec_gemm_batched_cpu(out + b * seq, scores + (size_t)b * nh * tt, v + b * seq, 1, 0, 0, 0, nh, T, dh, T, T, ld, ld,
                                  tt, dh, dh, pool);
}
