/* attention.cu: fused multi-head self-attention for the encoders, fp32.
 *
 * Same contract as mrec_attention_cpu (nn/mrec_attention.h):
 *   out (B, T, H) = concat over heads of softmax(q_h k_h^T * scale + head_bias + mask_bias) v_h
 * with q, k, v (B, T, H) token-major, H = heads * dh, head_bias (heads, T, T)
 * or NULL, mask_bias (B, T) or NULL (0 or -FLT_MAX per key).
 *
 * Why fused: the unfused path (head split copies, a batched GEMM, softmax
 * over a (B, heads, T, T) score tensor, a second GEMM, a merge copy) moves
 * the score tensor through memory twice and needs a scratch of
 * 3 B T H + B heads T^2 floats; at encoder sizes (T <= 512, dh <= 128) one
 * kernel that streams keys through shared memory with an online softmax
 * (the flash-attention recurrence) reads q, k, v once and writes out once.
 *
 * Layout: a block of 8 warps serves 8 queries of one (sequence, head); keys
 * and values come through shared memory 32 at a time. Lane j scores key j of
 * the tile; the running max and sum follow the online-softmax update; each
 * lane accumulates the output dimensions d = lane, lane + 32, ... Reading the
 * queries' heads in place (stride H) replaces the head-split copies.
 */
#include "cuda_internal.h"

#include <float.h>
#include <math.h>

#define WARPS 8
#define KEYS 32
#define DH_MAX 128

__global__ static void attention_kernel(float *out, const float *q, const float *k, const float *v,
                                        const float *mask_bias, const float *head_bias, float scale, int T, int nh,
                                        int dh) {
    __shared__ float ks[KEYS][DH_MAX + 1]; /* +1: lanes reading one column hit distinct banks */
    __shared__ float vs[KEYS][DH_MAX];
    __shared__ float qs[WARPS][DH_MAX];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int h = blockIdx.y, b = blockIdx.z, H = nh * dh;
    int qi = blockIdx.x * WARPS + warp;
    bool active = qi < T;
    const size_t seq = (size_t)b * T * H;
    if (active)
        for (int d = lane; d < dh; d += 32) qs[warp][d] = q[seq + (size_t)qi * H + h * dh + d] * scale;
    float acc[DH_MAX / 32];
    for (int i = 0; i < DH_MAX / 32; i++) acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int k0 = 0; k0 < T; k0 += KEYS) {
        int nk = T - k0 < KEYS ? T - k0 : KEYS;
        __syncthreads(); /* the previous tile is no longer read */
        for (int i = threadIdx.x; i < KEYS * dh; i += WARPS * 32) {
            int j = i / dh, d = i % dh;
            bool in = j < nk;
            size_t at = seq + (size_t)(k0 + j) * H + h * dh + d;
            ks[j][d] = in ? k[at] : 0.0f;
            vs[j][d] = in ? v[at] : 0.0f;
        }
        __syncthreads();
        if (!active) continue;
        float s = -INFINITY;
        if (lane < nk) {
            s = 0.0f;
            for (int d = 0; d < dh; d++) s += qs[warp][d] * ks[lane][d];
            if (head_bias) s += head_bias[((size_t)h * T + qi) * T + k0 + lane];
            if (mask_bias) s += mask_bias[(size_t)b * T + k0 + lane];
        }
        float tile_max = s;
        for (int o = 16; o > 0; o >>= 1) tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, o));
        float m_new = fmaxf(m, tile_max);
        /* Every score so far -inf (e.g. a causal and a padding bias, -FLT_MAX each, add to -inf): exp(-inf - -inf)
         * would be NaN and poison the row although later keys count. Weigh them 0; a row that stays all -inf ends
         * with l = 0 and comes out NaN, as the CPU's softmax gives it. */
        float p = lane < nk && m_new != -INFINITY ? expf(s - m_new) : 0.0f;
        float tile_sum = p;
        for (int o = 16; o > 0; o >>= 1) tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, o);
        float rescale = m == -INFINITY ? 0.0f : expf(m - m_new);
        l = l * rescale + tile_sum;
        m = m_new;
        for (int i = 0; i < DH_MAX / 32; i++) acc[i] *= rescale;
        for (int j = 0; j < nk; j++) {
            float pj = __shfl_sync(0xffffffffu, p, j);
            for (int i = 0, d = lane; i < DH_MAX / 32 && d < dh; i++, d += 32) acc[i] += pj * vs[j][d];
        }
    }
    if (!active) return;
    float inv = 1.0f / l;
    for (int i = 0, d = lane; i < DH_MAX / 32 && d < dh; i++, d += 32)
        out[seq + (size_t)qi * H + h * dh + d] = acc[i] * inv;
}

/* out, q, k, v: (B, T, heads * dh); mask_bias: (B, T) or NULL; head_bias: (heads, T, T) or NULL */
extern "C" mrec_status mrec_attention_cuda(float *out, const float *q, const float *k, const float *v,
                                           const float *mask_bias, const float *head_bias, float scale, int B, int T,
                                           int heads, int dh, mrec_cuda *cu) {
    if (B <= 0 || T <= 0) return MREC_OK;
    if (heads <= 0 || dh <= 0 || dh > DH_MAX)
        return mrec_fail(MREC_ERR_UNSUPPORTED, "attention on the GPU: head size %d (1 to %d supported)", dh, DH_MAX);
    if (heads > 65535 || B > 65535) return mrec_fail(MREC_ERR_ARG, "attention: %d sequences of %d heads", B, heads);
    dim3 grid((unsigned)((T + WARPS - 1) / WARPS), (unsigned)heads, (unsigned)B);
    attention_kernel<<<grid, WARPS * 32, 0, cu->stream>>>(out, q, k, v, mask_bias, head_bias, scale, T, heads, dh);
    return MREC_CUDA_LAUNCHED("attention");
}
