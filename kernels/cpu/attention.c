/* attention.c: multi-head self-attention on the CPU kernels. */
#include "../mrec_kernels.h"

#include <string.h>

size_t mrec_attention_scratch_floats(int B, int T, int heads, int dh) {
    return 3 * (size_t)B * T * heads * dh + (size_t)B * heads * T * T;
}

/* (B, T, nh, dh) <-> (B, nh, T, dh) */
static void to_heads(float *dst, const float *src, int B, int T, int nh, int dh) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++)
                memcpy(dst + (((size_t)b * nh + h) * T + t) * dh, src + (((size_t)b * T + t) * nh + h) * dh, sizeof(float) * (size_t)dh);
}

static void from_heads(float *dst, const float *src, int B, int T, int nh, int dh) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++)
                memcpy(dst + (((size_t)b * T + t) * nh + h) * dh, src + (((size_t)b * nh + h) * T + t) * dh, sizeof(float) * (size_t)dh);
}

void mrec_attention_cpu(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                        const float *head_bias, float scale, int B, int T, int nh, int dh, float *scratch,
                        mrec_pool *pool) {
    size_t n = (size_t)B * T * nh * dh;
    float *qh = scratch, *kh = qh + n, *vh = kh + n, *scores = vh + n;
    to_heads(qh, q, B, T, nh, dh);
    to_heads(kh, k, B, T, nh, dh);
    to_heads(vh, v, B, T, nh, dh);
    int64_t tdh = (int64_t)T * dh, tt = (int64_t)T * T;
    mrec_gemm_batched_cpu(scores, qh, kh, scale, 0, 0, 1, B * nh, T, T, dh, dh, dh, T, tdh, tdh, tt, pool);
    if (head_bias)
        for (int b = 0; b < B; b++) mrec_add_cpu(scores + (size_t)b * nh * tt, scores + (size_t)b * nh * tt, head_bias, nh * tt, pool);
    /* each row of mask_bias serves the nh * T score rows of its sequence */
    mrec_softmax_rows_cpu(scores, scores, mask_bias, B * nh * T, T, nh * T, pool);
    mrec_gemm_batched_cpu(qh, scores, vh, 1, 0, 0, 0, B * nh, T, dh, T, T, dh, dh, tt, tdh, tdh, pool);
    from_heads(out, qh, B, T, nh, dh);
}
