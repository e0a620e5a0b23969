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
 * Layout: a block of 128 threads serves 64 queries of one (sequence, head);
 * keys and values come through shared memory 64 at a time. The 64 x 64
 * scores of a tile are a small GEMM over the head dimension: thread
 * (rg, cg) = (t / 8, t % 8) holds the 4 x 8 scores of queries 4 rg .. 4 rg + 3
 * and keys cg, cg + 8, ..., so each shared-memory read feeds several FMAs
 * (the one-query-per-warp layout before it read two values per FMA and ran
 * at a quarter of PyTorch's speed). The eight threads of a query row share
 * its running max and sum through shuffles, write its probabilities to
 * shared memory, and accumulate the output columns cg, cg + 8, ... of their
 * four queries. The head dimension is padded to 32, 64 or 128 with zeros.
 * Reading the queries' heads in place (stride H) replaces the head-split
 * copies.
 */
#include "cuda_internal.h"

#include <float.h>
#include <math.h>

#define BQ 64  /* queries a block */
#define BK 64  /* keys a tile */
#define THREADS 128
#define DH_MAX 128

template <int DHP>
__global__ static void __launch_bounds__(THREADS)
    attention_kernel(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                     const float *head_bias, float scale, int T, int nh, int dh) {
    extern __shared__ float smem[];
    float *qs = smem;                /* [BQ][DHP + 1]: +1, rows read together fall in distinct banks */
    float *ks = qs + BQ * (DHP + 1); /* [BK][DHP + 1] */
    float *vs = ks + BK * (DHP + 1); /* [BK][DHP] */
    float *ps = vs + BK * DHP;       /* [BQ][BK + 1]: the tile's probabilities */
    constexpr int DC = DHP / 8;      /* output columns a thread */
    const int t = threadIdx.x, rg = t >> 3, cg = t & 7;
    const int h = blockIdx.y, b = blockIdx.z, H = nh * dh, q0 = blockIdx.x * BQ;
    const size_t seq = (size_t)b * T * H + (size_t)h * dh;
    for (int i = t; i < BQ * DHP; i += THREADS) {
        int r = i / DHP, d = i % DHP;
        qs[r * (DHP + 1) + d] = q0 + r < T && d < dh ? q[seq + (size_t)(q0 + r) * H + d] * scale : 0.0f;
    }
    float acc[4][DC], m[4], l[4];
#pragma unroll
    for (int r = 0; r < 4; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
        for (int j = 0; j < DC; j++) acc[r][j] = 0.0f;
    }
    for (int k0 = 0; k0 < T; k0 += BK) {
        __syncthreads(); /* the previous tile is no longer read */
        for (int i = t; i < BK * DHP; i += THREADS) {
            int j = i / DHP, d = i % DHP;
            bool in = k0 + j < T && d < dh;
            size_t at = seq + (size_t)(k0 + j) * H + d;
            ks[j * (DHP + 1) + d] = in ? k[at] : 0.0f;
            vs[j * DHP + d] = in ? v[at] : 0.0f;
        }
        __syncthreads();
        float s[4][8];
#pragma unroll
        for (int r = 0; r < 4; r++)
#pragma unroll
            for (int c = 0; c < 8; c++) s[r][c] = 0.0f;
#pragma unroll 4
        for (int d = 0; d < DHP; d++) {
            float a[4], kk[8];
#pragma unroll
            for (int r = 0; r < 4; r++) a[r] = qs[(rg * 4 + r) * (DHP + 1) + d];
#pragma unroll
            for (int c = 0; c < 8; c++) kk[c] = ks[(cg + 8 * c) * (DHP + 1) + d];
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int c = 0; c < 8; c++) s[r][c] += a[r] * kk[c];
        }
#pragma unroll
        for (int r = 0; r < 4; r++) {
            int qi = q0 + rg * 4 + r;
            float mx = -INFINITY;
#pragma unroll
            for (int c = 0; c < 8; c++) {
                int key = k0 + cg + 8 * c;
                if (key >= T) s[r][c] = -INFINITY;
                else {
                    if (head_bias && qi < T) s[r][c] += head_bias[((size_t)h * T + qi) * T + key];
                    if (mask_bias) s[r][c] += mask_bias[(size_t)b * T + key];
                }
                mx = fmaxf(mx, s[r][c]);
            }
#pragma unroll
            for (int o = 1; o < 8; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            float m_new = fmaxf(m[r], mx), sum = 0.0f;
            /* Every score so far -inf (e.g. a causal and a padding bias, -FLT_MAX each, add to -inf): exp(-inf -
             * -inf) would be NaN and poison the row although later keys count. Weigh them 0; a row that stays all
             * -inf ends with l = 0 and comes out NaN, as the CPU's softmax gives it. */
#pragma unroll
            for (int c = 0; c < 8; c++) {
                float p = m_new != -INFINITY ? expf(s[r][c] - m_new) : 0.0f;
                ps[(rg * 4 + r) * (BK + 1) + cg + 8 * c] = p;
                sum += p;
            }
#pragma unroll
            for (int o = 1; o < 8; o <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            float rescale = m[r] == -INFINITY ? 0.0f : expf(m[r] - m_new);
            l[r] = l[r] * rescale + sum, m[r] = m_new;
#pragma unroll
            for (int j = 0; j < DC; j++) acc[r][j] *= rescale;
        }
        __syncwarp(); /* a row's probabilities are written and read by the eight lanes of its group alone */
#pragma unroll 4
        for (int kk = 0; kk < BK; kk++) {
            float p[4];
#pragma unroll
            for (int r = 0; r < 4; r++) p[r] = ps[(rg * 4 + r) * (BK + 1) + kk];
#pragma unroll
            for (int j = 0; j < DC; j++) {
                float vv = vs[kk * DHP + cg + 8 * j];
#pragma unroll
                for (int r = 0; r < 4; r++) acc[r][j] += p[r] * vv;
            }
        }
    }
#pragma unroll
    for (int r = 0; r < 4; r++) {
        int qi = q0 + rg * 4 + r;
        if (qi >= T) continue;
        float inv = 1.0f / l[r];
#pragma unroll
        for (int j = 0; j < DC; j++) {
            int d = cg + 8 * j;
            if (d < dh) out[seq + (size_t)qi * H + d] = acc[r][j] * inv;
        }
    }
}

template <int DHP>
static mrec_status launch(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                          const float *head_bias, float scale, int B, int T, int heads, int dh, mrec_cuda *cu) {
    size_t smem = sizeof(float) * (BQ * (DHP + 1) + BK * (DHP + 1) + BK * DHP + BQ * (BK + 1));
    mrec_status st = mrec_cuda_check(cudaFuncSetAttribute(attention_kernel<DHP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                          (int)smem), "attention: shared memory");
    if (st) return st;
    dim3 grid((unsigned)((T + BQ - 1) / BQ), (unsigned)heads, (unsigned)B);
    attention_kernel<DHP><<<grid, THREADS, smem, cu->stream>>>(out, q, k, v, mask_bias, head_bias, scale, T, heads, dh);
    return MREC_CUDA_LAUNCHED("attention");
}

/* out, q, k, v: (B, T, heads * dh); mask_bias: (B, T) or NULL; head_bias: (heads, T, T) or NULL */
extern "C" mrec_status mrec_attention_cuda(float *out, const float *q, const float *k, const float *v,
                                           const float *mask_bias, const float *head_bias, float scale, int B, int T,
                                           int heads, int dh, mrec_cuda *cu) {
    if (B <= 0 || T <= 0) return MREC_OK;
    if (heads <= 0 || dh <= 0 || dh > DH_MAX)
        return mrec_fail(MREC_ERR_UNSUPPORTED, "attention on the GPU: head size %d (1 to %d supported)", dh, DH_MAX);
    if (heads > 65535 || B > 65535) return mrec_fail(MREC_ERR_ARG, "attention: %d sequences of %d heads", B, heads);
    if (dh <= 32) return launch<32>(out, q, k, v, mask_bias, head_bias, scale, B, T, heads, dh, cu);
    if (dh <= 64) return launch<64>(out, q, k, v, mask_bias, head_bias, scale, B, T, heads, dh, cu);
    return launch<128>(out, q, k, v, mask_bias, head_bias, scale, B, T, heads, dh, cu);
}
