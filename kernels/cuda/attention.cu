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

#include <cuda_bf16.h>
#include <float.h>
#include <math.h>

#define BQ 64  /* queries a block */
#define BK 64  /* keys a tile */
#define THREADS 128
#define DH_MAX 128

/* Keys and values k0 .. k0 + BK of a (sequence, head) into shared memory, rows of ldk and ldv floats, zeros past
 * the sequence and the head size. */
template <int DHP>
__device__ static void load_tile(float *ks, int ldk, float *vs, int ldv, const float *k, const float *v, size_t seq,
                                 int k0, int T, int H, int dh) {
    for (int i = threadIdx.x; i < BK * DHP; i += THREADS) {
        int j = i / DHP, d = i % DHP;
        bool in = k0 + j < T && d < dh;
        size_t at = seq + (size_t)(k0 + j) * H + d;
        ks[j * ldk + d] = in ? k[at] : 0.0f;
        vs[j * ldv + d] = in ? v[at] : 0.0f;
    }
}

template <int DHP>
__global__ static void __launch_bounds__(THREADS)
    attention_kernel(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                     const float *head_bias, const int32_t *starts, float scale, int T, int nh, int dh) {
    extern __shared__ float smem[];
    float *qs = smem;                /* [BQ][DHP + 1]: +1, rows read together fall in distinct banks */
    float *ks = qs + BQ * (DHP + 1); /* [BK][DHP + 1] */
    float *vs = ks + BK * (DHP + 1); /* [BK][DHP] */
    float *ps = vs + BK * DHP;       /* [BQ][BK + 1]: the tile's probabilities */
    constexpr int DC = DHP / 8;      /* output columns a thread */
    const int t = threadIdx.x, rg = t >> 3, cg = t & 7;
    const int h = blockIdx.y, b = blockIdx.z, H = nh * dh, q0 = blockIdx.x * BQ;
    /* L: this sequence's length (T, or its own without padding); T stays the biases' row stride */
    const int L = starts ? starts[b + 1] - starts[b] : T;
    if (q0 >= L) return; /* the whole block: a shorter sequence than the grid is made for */
    const size_t seq = (starts ? (size_t)starts[b] * H : (size_t)b * T * H) + (size_t)h * dh;
    for (int i = t; i < BQ * DHP; i += THREADS) {
        int r = i / DHP, d = i % DHP;
        qs[r * (DHP + 1) + d] = q0 + r < L && d < dh ? q[seq + (size_t)(q0 + r) * H + d] * scale : 0.0f;
    }
    float acc[4][DC], m[4], l[4];
#pragma unroll
    for (int r = 0; r < 4; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
#pragma unroll
        for (int j = 0; j < DC; j++) acc[r][j] = 0.0f;
    }
    for (int k0 = 0; k0 < L; k0 += BK) {
        __syncthreads(); /* the previous tile is no longer read */
        load_tile<DHP>(ks, DHP + 1, vs, DHP, k, v, seq, k0, L, H, dh);
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
                if (key >= L) s[r][c] = -INFINITY;
                else {
                    if (head_bias && qi < L) s[r][c] += head_bias[((size_t)h * T + qi) * T + key];
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
        if (qi >= L) continue;
        float inv = 1.0f / l[r];
#pragma unroll
        for (int j = 0; j < DC; j++) {
            int d = cg + 8 * j;
            if (d < dh) out[seq + (size_t)qi * H + d] = acc[r][j] * inv;
        }
    }
}

/* ---- TF32 on the tensor cores ---------------------------------------------
 *
 * The contract above, for the tf32 precision: both products of a tile
 * (Q K^T and P V) run as m16n8k8 TF32 MMAs with fp32 accumulation, on the
 * fp32 activations rounded to TF32 (10-bit mantissas: q after its scaling,
 * k, v, and the probabilities). The flash-attention recurrence with the
 * scores and probabilities kept in registers, as in the bf16 kernel below:
 * each of the 4 warps owns 16 of the block's 64 queries, its Q fragments
 * held for the whole kernel; K and V come through shared memory a tile of
 * 64 keys at a time, rounded once as they are stored. The row sums add the
 * rounded probabilities, so the weights of each output sum to one.
 *
 * (The wmma form before it passed every tile's scores and outputs through
 * shared memory, with two lanes a row for the softmax: on an H100 it ran at
 * half the fp32 kernel's speed, 8.8 TFLOP/s at BERT-base's shapes.)
 *
 * Fragment layouts (PTX ISA, mma.m16n8k8 .tf32, g = lane / 4, c = lane % 4):
 * A (16 x 8): (row g, col c), (g + 8, c), (g, c + 4), (g + 8, c + 4);
 * B (8 x 8): (row c, col g), (c + 4, g); C (16 x 8): (row g, cols 2c, 2c+1),
 * (row g + 8, cols 2c, 2c+1). An accumulator of scores holds keys 2c and
 * 2c + 1 of its 8; P V reads them as the A fragment's columns c and c + 4,
 * and V's B fragment takes rows 2c and 2c + 1 to match (a sum over keys
 * does not care about their order).
 */

/* x rounded to TF32 (to nearest, ties away from zero, as cuBLAS's TF32 conversion): its bits as an MMA operand */
__device__ static inline uint32_t tf32_bits(float x) {
    uint32_t r;
#if __CUDA_ARCH__ >= 800
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
#else
    r = __float_as_uint(x);
#endif
    return r;
}

__device__ static inline void mma_tf32(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                       uint32_t b1) {
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

#define LOG2E 1.4426950408889634f /* exp(x) = 2^(x log2 e): the tensor-core kernels' probabilities through exp2f */

/* A warp's tile of scores on the tensor cores, this lane's accumulators s (keys k0 + 8 j + 2 c + (e & 1) of the
 * query rows qrow[e >> 1]): times scale, plus the biases, -inf past the sequence's L keys; mx gets the max of each
 * of the lane's two rows over its quad. */
__device__ static inline void tile_scores(float (&s)[BK / 8][4], float (&mx)[2], float scale, const float *head_bias,
                                          const float *mask_bias, const int (&qrow)[2], int k0, int L, int T, int h, int b,
                                          int c) {
    mx[0] = mx[1] = -INFINITY;
#pragma unroll
    for (int j = 0; j < BK / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int r = e >> 1, key = k0 + j * 8 + 2 * c + (e & 1);
            float x = -INFINITY;
            if (key < L) {
                x = s[j][e] * scale;
                if (head_bias && qrow[r] < L) x += head_bias[((size_t)h * T + qrow[r]) * T + key];
                if (mask_bias) x += mask_bias[(size_t)b * T + key];
            }
            s[j][e] = x, mx[r] = fmaxf(mx[r], x);
        }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    }
}

/* The online softmax's step for the lane's two rows: the tile's sums (this lane's share) added over the quad, the
 * running sums l and the outputs o rescaled from the old maxima m to m_new, and m moved there. */
template <int NJ>
__device__ static inline void online_step(float (&o)[NJ][4], float (&m)[2], float (&l)[2], float (&sum)[2],
                                          const float (&m_new)[2]) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 1);
        sum[r] += __shfl_xor_sync(0xffffffffu, sum[r], 2);
        float rescale = m[r] == -INFINITY ? 0.0f : exp2f((m[r] - m_new[r]) * LOG2E);
        l[r] = l[r] * rescale + sum[r], m[r] = m_new[r];
#pragma unroll
        for (int j = 0; j < NJ; j++) o[j][2 * r] *= rescale, o[j][2 * r + 1] *= rescale;
    }
}

template <int DHP>
__global__ static void __launch_bounds__(THREADS)
    attention_tf32_kernel(float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                          const float *head_bias, const int32_t *starts, float scale, int T, int nh, int dh) {
#if __CUDA_ARCH__ >= 800
    /* +4 floats: a quad's reads of 8 rows (Q, K) or of 4 pairs of rows (V) fall in distinct banks */
    constexpr int LD = DHP + 4;
    extern __shared__ __align__(16) uint32_t smem_u32[];
    uint32_t *qs = smem_u32, *ks = qs + BQ * LD, *vs = ks + BK * LD; /* TF32 bits */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
    const int h = blockIdx.y, b = blockIdx.z, H = nh * dh, q0 = blockIdx.x * BQ;
    const int L = starts ? starts[b + 1] - starts[b] : T; /* as in attention_kernel */
    if (q0 >= L) return;
    const size_t seq = (starts ? (size_t)starts[b] * H : (size_t)b * T * H) + (size_t)h * dh;
    for (int i = threadIdx.x; i < BQ * DHP; i += THREADS) {
        int r = i / DHP, d = i % DHP;
        qs[r * LD + d] = tf32_bits(q0 + r < L && d < dh ? q[seq + (size_t)(q0 + r) * H + d] * scale : 0.0f);
    }
    __syncthreads();
    uint32_t qf[DHP / 8][4]; /* this warp's 16 queries as A fragments */
    const uint32_t *qw = qs + warp * 16 * LD;
#pragma unroll
    for (int kk = 0; kk < DHP / 8; kk++) {
        qf[kk][0] = qw[g * LD + kk * 8 + c];
        qf[kk][1] = qw[(g + 8) * LD + kk * 8 + c];
        qf[kk][2] = qw[g * LD + kk * 8 + c + 4];
        qf[kk][3] = qw[(g + 8) * LD + kk * 8 + c + 4];
    }
    float o[DHP / 8][4];
#pragma unroll
    for (int j = 0; j < DHP / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const int qrow[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8}; /* the two query rows of this lane */
    const bool active = q0 + warp * 16 < L;                           /* as in the bf16 kernel */
    for (int k0 = 0; k0 < L; k0 += BK) {
        __syncthreads(); /* the previous tile is no longer read */
        for (int i = threadIdx.x; i < BK * DHP; i += THREADS) {
            int j = i / DHP, d = i % DHP;
            bool in = k0 + j < L && d < dh;
            size_t at = seq + (size_t)(k0 + j) * H + d;
            ks[j * LD + d] = tf32_bits(in ? k[at] : 0.0f);
            vs[j * LD + d] = tf32_bits(in ? v[at] : 0.0f);
        }
        __syncthreads();
        if (!active) continue;
        const int keys = L - k0; /* valid keys in this tile (more than BK: all of it) */
        float s[BK / 8][4];      /* S (16, BK) of this warp, 8 keys a fragment */
#pragma unroll
        for (int j = 0; j < BK / 8; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
            if (j * 8 >= keys) continue;
            const uint32_t *kr = ks + (j * 8 + g) * LD + c; /* K^T's column g is K's row g */
#pragma unroll
            for (int kk = 0; kk < DHP / 8; kk++)
                mma_tf32(s[j], qf[kk][0], qf[kk][1], qf[kk][2], qf[kk][3], kr[kk * 8], kr[kk * 8 + 4]);
        }
        /* biases (q came scaled), keys past the sequence; each row's max */
        float mx[2], sum[2] = {0.0f, 0.0f}, m_new[2];
        tile_scores(s, mx, 1.0f, head_bias, mask_bias, qrow, k0, L, T, h, b, c);
        for (int r = 0; r < 2; r++) m_new[r] = fmaxf(m[r], mx[r]);
        /* the probabilities, rounded to TF32 in place as the second product reads them; all -inf so far weighs 0
         * (attention_kernel) */
#pragma unroll
        for (int j = 0; j < BK / 8; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int r = e >> 1;
                float p = m_new[r] != -INFINITY ? exp2f((s[j][e] - m_new[r]) * LOG2E) : 0.0f;
                s[j][e] = __uint_as_float(tf32_bits(p));
                sum[r] += s[j][e];
            }
        online_step(o, m, l, sum, m_new);
        /* O (16, DHP) += P (16, BK) V (BK, DHP), 8 keys a step: this lane's keys 2c and 2c + 1 of the step */
#pragma unroll
        for (int j = 0; j < BK / 8; j++) {
            if (j * 8 >= keys) break;
            const uint32_t a0 = __float_as_uint(s[j][0]), a1 = __float_as_uint(s[j][2]);
            const uint32_t a2 = __float_as_uint(s[j][1]), a3 = __float_as_uint(s[j][3]);
            const uint32_t *vr = vs + (j * 8 + 2 * c) * LD + g;
#pragma unroll
            for (int jd = 0; jd < DHP / 8; jd++) mma_tf32(o[jd], a0, a1, a2, a3, vr[jd * 8], vr[LD + jd * 8]);
        }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (qrow[r] >= L) continue;
        float inv = 1.0f / l[r];
        float *y = out + seq + (size_t)qrow[r] * H;
#pragma unroll
        for (int j = 0; j < DHP / 8; j++) {
            int d = j * 8 + 2 * c;
            if (d < dh) y[d] = o[j][2 * r] * inv;
            if (d + 1 < dh) y[d + 1] = o[j][2 * r + 1] * inv;
        }
    }
#endif /* TF32 MMAs need sm_80; mrec_attention_tf32_cuda runs the fp32 kernel below that */
}

/* ---- bf16 on the tensor cores ----------------------------------------------
 *
 * mrec_attention_bf16_ref's contract: q, k, v and out bf16, rows of stride
 * ld (a packed Q K V product) and H. The flash-attention recurrence with the
 * scores and probabilities kept in registers: each of the 4 warps owns 16 of
 * the block's 64 queries; per tile of 64 keys, S = Q K^T is 8 x (DHP / 16)
 * m16n8k16 bf16 MMAs with fp32 accumulation, the online softmax runs on the
 * accumulators (a row's values sit in the 4 lanes of a quad), and the
 * probabilities, rounded to bf16, are already the A fragments of O += P V
 * (an accumulator's row and column pairs are an A fragment's). Q, K and V
 * go to shared memory as rows, in 16-byte stores; K and V in two stages,
 * the next tile copied by cp.async while this one is used; V's B fragments
 * (two consecutive keys of one column a register) come from a transposing
 * ldmatrix. The row sums add the rounded probabilities, so the weights of
 * each output sum to one.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16, g = lane / 4, c = lane % 4):
 * A (16 x 16) registers: (row g, cols 2c, 2c+1), (g + 8, 2c..), (g, 2c+8..),
 * (g + 8, 2c+8..); B (16 x 8): (rows 2c, 2c+1, col g), (2c+8, 2c+9, col g);
 * C (16 x 8): (row g, cols 2c, 2c+1), (row g + 8, cols 2c, 2c+1).
 */
__device__ static inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if __CUDA_ARCH__ >= 800
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

/* two floats as one register of two bf16, the first in the low half (the lower column) */
__device__ static inline uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&h;
}

/* Rows r0 .. r0 + rows of a head (columns 0 .. dh of x + row * ld) into shared memory as rows of
 * LD bf16, zeros past n valid rows and past dh. vec: 16-byte loads (dh and ld multiples of 8, x 16-byte
 * aligned). */
template <int DHP>
__device__ static void load_rows_bf16(__nv_bfloat16 *dst, int LD, const __nv_bfloat16 *x, int ld, size_t row0, int n, int rows,
                                      int dh, bool vec) {
    const __nv_bfloat16 zero = __float2bfloat16_rn(0.0f);
    for (int i = threadIdx.x; i < rows * (DHP / 8); i += THREADS) {
        int j = i / (DHP / 8), d0 = i % (DHP / 8) * 8;
        uint4 raw;
        __nv_bfloat16 *e = (__nv_bfloat16 *)&raw;
        const __nv_bfloat16 *src = x + (row0 + j) * (size_t)ld + d0;
        if (j < n && vec && d0 < dh) {
            raw = *(const uint4 *)src;
        } else {
#pragma unroll
            for (int u = 0; u < 8; u++) e[u] = j < n && d0 + u < dh ? src[u] : zero;
        }
        *(uint4 *)(dst + j * LD + d0) = raw; /* LD and d0 multiples of 8: 16-byte aligned */
    }
}

/* 16 bytes from global to shared memory without passing through registers (cp.async, sm_80 on): the copy
 * runs while the block computes; bytes 0 writes 16 zero bytes (the source is not read, but must be an address
 * the kernel may read). commit closes a group of copies; wait<N> waits until at most N groups are in flight. */
__device__ static inline void cp_async16(void *smem, const void *gmem, int bytes) {
#if __CUDA_ARCH__ >= 800
    uint32_t at = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(at), "l"(gmem), "r"(bytes));
#endif
}
__device__ static inline void cp_async_commit(void) {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ static inline void cp_async_wait(void) {
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

/* load_rows_bf16's rows through cp.async (its vec case: dh and ld multiples of 8, x 16-byte aligned), zeros past
 * n rows and past dh; a zero-filled copy names the first row's start, which exists. */
template <int DHP>
__device__ static void issue_rows_bf16(__nv_bfloat16 *dst, int LD, const __nv_bfloat16 *x, int ld, size_t row0, int n, int rows,
                                       int dh) {
    for (int i = threadIdx.x; i < rows * (DHP / 8); i += THREADS) {
        int j = i / (DHP / 8), d0 = i % (DHP / 8) * 8;
        bool real = j < n && d0 < dh;
        cp_async16(dst + j * LD + d0, x + (row0 + (real ? j : 0)) * (size_t)ld + (real ? d0 : 0), real ? 16 : 0);
    }
}

/* Four 8 x 8 bf16 matrices from shared memory, each transposed: this lane gives the address of row lane % 8 of
 * matrix lane / 8 (16 bytes, 16-byte aligned) and receives, of each matrix, the elements (2c, g) and (2c + 1, g)
 * as one register: a B fragment's half when the stored rows are the product's k. */
__device__ static inline void ldmatrix_x4_trans(uint32_t (&r)[4], const __nv_bfloat16 *row) {
#if __CUDA_ARCH__ >= 800
    uint32_t at = (uint32_t)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(at));
#endif
}

template <int DHP>
__global__ static void __launch_bounds__(THREADS)
    attention_bf16_kernel(__nv_bfloat16 *out, const __nv_bfloat16 *q, const __nv_bfloat16 *k, const __nv_bfloat16 *v, int ld,
                          const float *mask_bias, const float *head_bias, const int32_t *starts, float scale, int T, int nh, int dh,
                          bool vec) {
#if __CUDA_ARCH__ >= 800
    /* +8 bf16: a quad's 32-bit reads of consecutive rows, and an ldmatrix's 8 rows, fall in distinct banks */
    constexpr int LD = DHP + 8;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    /* Q, then two stages of a K tile and a V tile: the next tile's copies run while this one is used */
    __nv_bfloat16 *qs = (__nv_bfloat16 *)smem_raw, *kv = qs + BQ * LD;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, c = lane & 3;
    const int h = blockIdx.y, b = blockIdx.z, H = nh * dh, q0 = blockIdx.x * BQ;
    const int L = starts ? starts[b + 1] - starts[b] : T;
    if (q0 >= L) return;
    const size_t row0 = starts ? (size_t)starts[b] : (size_t)b * T; /* the sequence's first row */
    const size_t col = (size_t)h * dh;
    load_rows_bf16<DHP>(qs, LD, q + col, ld, row0 + q0, L - q0, BQ, dh, vec);
    __syncthreads();
    uint32_t qf[DHP / 16][4]; /* this warp's 16 queries as A fragments */
    const __nv_bfloat16 *qw = qs + warp * 16 * LD;
#pragma unroll
    for (int kk = 0; kk < DHP / 16; kk++) {
        qf[kk][0] = *(const uint32_t *)(qw + g * LD + kk * 16 + 2 * c);
        qf[kk][1] = *(const uint32_t *)(qw + (g + 8) * LD + kk * 16 + 2 * c);
        qf[kk][2] = *(const uint32_t *)(qw + g * LD + kk * 16 + 8 + 2 * c);
        qf[kk][3] = *(const uint32_t *)(qw + (g + 8) * LD + kk * 16 + 8 + 2 * c);
    }
    float o[DHP / 8][4];
#pragma unroll
    for (int j = 0; j < DHP / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const int qrow[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8}; /* the two query rows of this lane */
    /* A warp whose 16 queries are all past the sequence (the last block of a 197-token one has 5 rows) only
     * helps load the tiles; past the last key, a tile's 8-key and 16-key steps are skipped (their scores are
     * -inf, their probabilities 0). Both conditions are the same in every lane of a warp. */
    const bool active = q0 + warp * 16 < L;
    /* tile k0's K and V into stage `at` (2 BK rows of LD from kv): by cp.async where the rows allow 16-byte
     * copies, else loaded (then nothing overlaps) */
    auto fetch = [&](int at, int k0) {
        __nv_bfloat16 *kd = kv + (size_t)at * 2 * BK * LD, *vd = kd + BK * LD;
        if (vec) {
            issue_rows_bf16<DHP>(kd, LD, k + col, ld, row0 + k0, L - k0, BK, dh);
            issue_rows_bf16<DHP>(vd, LD, v + col, ld, row0 + k0, L - k0, BK, dh);
            cp_async_commit();
        } else {
            load_rows_bf16<DHP>(kd, LD, k + col, ld, row0 + k0, L - k0, BK, dh, vec);
            load_rows_bf16<DHP>(vd, LD, v + col, ld, row0 + k0, L - k0, BK, dh, vec);
        }
    };
    fetch(0, 0);
    for (int k0 = 0, stage = 0; k0 < L; k0 += BK, stage ^= 1) {
        __syncthreads(); /* the other stage was read last time round and may be filled now */
        const bool next = k0 + BK < L;
        if (next) fetch(stage ^ 1, k0 + BK);
        if (vec && next) cp_async_wait<1>(); /* this tile's group done, the next one's may still run */
        else if (vec) cp_async_wait<0>();
        __syncthreads(); /* this tile is in shared memory, every thread's part of it */
        const __nv_bfloat16 *ks = kv + (size_t)stage * 2 * BK * LD, *vs = ks + BK * LD;
        if (!active) continue;
        const int keys = L - k0; /* valid keys in this tile (more than BK: all of it) */
        float s[BK / 8][4]; /* S (16, BK) of this warp, 8 keys a fragment */
#pragma unroll
        for (int j = 0; j < BK / 8; j++) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
            if (j * 8 >= keys) continue;
            const __nv_bfloat16 *kr = ks + (j * 8 + g) * LD + 2 * c;
#pragma unroll
            for (int kk = 0; kk < DHP / 16; kk++)
                mma_bf16(s[j], qf[kk], *(const uint32_t *)(kr + kk * 16), *(const uint32_t *)(kr + kk * 16 + 8));
        }
        /* scale, biases, keys past the sequence; each row's max */
        float mx[2];
        tile_scores(s, mx, scale, head_bias, mask_bias, qrow, k0, L, T, h, b, c);
        /* the probabilities, rounded as the second product reads them; all -inf so far weighs 0 (attention_kernel) */
        uint32_t pf[BK / 8][2];
        float sum[2] = {0.0f, 0.0f}, m_new[2];
#pragma unroll
        for (int r = 0; r < 2; r++) m_new[r] = fmaxf(m[r], mx[r]);
#pragma unroll
        for (int j = 0; j < BK / 8; j++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float p0 = m_new[r] != -INFINITY ? exp2f((s[j][2 * r] - m_new[r]) * LOG2E) : 0.0f;
                float p1 = m_new[r] != -INFINITY ? exp2f((s[j][2 * r + 1] - m_new[r]) * LOG2E) : 0.0f;
                pf[j][r] = pack_bf16(p0, p1);
                float2 back = __bfloat1622float2(*(__nv_bfloat162 *)&pf[j][r]);
                sum[r] += back.x + back.y;
            }
        online_step(o, m, l, sum, m_new);
        /* O (16, DHP) += P (16, BK) V (BK, DHP), 16 keys a step; V's B fragments for two 8-column blocks at a
         * time by one transposing ldmatrix from V's rows: lanes 0-7 address keys 0-7 of block j, 8-15 keys 8-15
         * of block j, 16-31 the same of block j + 1 */
        const int lk = ((lane >> 3) & 1) * 8 + (lane & 7), lcol = (lane >> 4) * 8;
#pragma unroll
        for (int kc = 0; kc < BK / 16; kc++) {
            if (kc * 16 >= keys) break;
            const uint32_t a[4] = {pf[2 * kc][0], pf[2 * kc][1], pf[2 * kc + 1][0], pf[2 * kc + 1][1]};
#pragma unroll
            for (int j = 0; j < DHP / 8; j += 2) {
                uint32_t bf[4];
                ldmatrix_x4_trans(bf, vs + (kc * 16 + lk) * LD + j * 8 + lcol);
                mma_bf16(o[j], a, bf[0], bf[1]);
                mma_bf16(o[j + 1], a, bf[2], bf[3]);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (qrow[r] >= L) continue;
        float inv = 1.0f / l[r];
        __nv_bfloat16 *y = out + (row0 + qrow[r]) * (size_t)H + col;
#pragma unroll
        for (int j = 0; j < DHP / 8; j++) {
            int d = j * 8 + 2 * c;
            if (d < dh) y[d] = __float2bfloat16_rn(o[j][2 * r] * inv);
            if (d + 1 < dh) y[d + 1] = __float2bfloat16_rn(o[j][2 * r + 1] * inv);
        }
    }
#endif /* bf16 MMAs need sm_80: mrec_attention_bf16_cuda refuses below that */
}

static size_t smem_bf16(int dhp) { return sizeof(__nv_bfloat16) * (size_t)(BQ + 4 * BK) * (dhp + 8); }

extern "C" mrec_status mrec_attention_bf16_cuda(uint16_t *out, const uint16_t *q, const uint16_t *k, const uint16_t *v, int ld,
                                                const float *mask_bias, const float *head_bias, const int32_t *dev_starts,
                                                float scale, int B, int T, int heads, int dh, mrec_cuda *cu) {
    if (B <= 0 || T <= 0) return MREC_OK;
    if (heads <= 0 || dh <= 0 || dh > DH_MAX)
        return mrec_fail(MREC_ERR_UNSUPPORTED, "attention_bf16 on the GPU: head size %d (1 to %d supported)", dh, DH_MAX);
    if (heads > 65535 || B > 65535) return mrec_fail(MREC_ERR_ARG, "attention_bf16: %d sequences of %d heads", B, heads);
    if (cu->sm < 80) return mrec_fail(MREC_ERR_UNSUPPORTED, "attention_bf16: bf16 tensor cores need compute capability 8.0 (this GPU: %d.%d)",
                                      cu->sm / 10, cu->sm % 10);
    if (ld < heads * dh) return mrec_fail(MREC_ERR_ARG, "attention_bf16: row stride %d under %d x %d", ld, heads, dh);
    int dhp = dh <= 32 ? 32 : dh <= 64 ? 64 : 128;
    bool vec = dh % 8 == 0 && ld % 8 == 0 && ((uintptr_t)q & 15) == 0 && ((uintptr_t)k & 15) == 0 && ((uintptr_t)v & 15) == 0;
    typedef void (*fn)(__nv_bfloat16 *, const __nv_bfloat16 *, const __nv_bfloat16 *, const __nv_bfloat16 *, int, const float *,
                       const float *, const int32_t *, float, int, int, int, bool);
    fn kernel = dhp == 32 ? attention_bf16_kernel<32> : dhp == 64 ? attention_bf16_kernel<64> : attention_bf16_kernel<128>;
    size_t smem = smem_bf16(dhp);
    mrec_status st = mrec_cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                                     "attention_bf16: shared memory");
    if (st) return st;
    dim3 grid((unsigned)((T + BQ - 1) / BQ), (unsigned)heads, (unsigned)B);
    kernel<<<grid, THREADS, smem, cu->stream>>>((__nv_bfloat16 *)out, (const __nv_bfloat16 *)q, (const __nv_bfloat16 *)k,
                                                (const __nv_bfloat16 *)v, ld, mask_bias, head_bias, dev_starts, scale, T, heads, dh,
                                                vec);
    return MREC_CUDA_LAUNCHED("attention_bf16");
}

/* ---- launches ----------------------------------------------------------------- */

typedef void (*attention_fn)(float *, const float *, const float *, const float *, const float *, const float *, const int32_t *,
                             float, int, int, int);

/* Shared memory of a block, by kernel and padded head size */
static size_t smem_fp32(int dhp) { return sizeof(float) * (BQ * (dhp + 1) + BK * (dhp + 1) + BK * dhp + BQ * (BK + 1)); }
static size_t smem_tf32(int dhp) { return sizeof(float) * (size_t)(BQ + 2 * BK) * (dhp + 4); }

/* Either kernel over (query blocks, heads, sequences), the head size padded to 32, 64 or 128; starts (B + 1) for
 * sequences laid end to end, or NULL. */
static mrec_status attention(int tf32, float *out, const float *q, const float *k, const float *v, const float *mask_bias,
                             const float *head_bias, const int32_t *starts, float scale, int B, int T, int heads, int dh,
                             mrec_cuda *cu) {
    if (B <= 0 || T <= 0) return MREC_OK;
    if (heads <= 0 || dh <= 0 || dh > DH_MAX)
        return mrec_fail(MREC_ERR_UNSUPPORTED, "attention on the GPU: head size %d (1 to %d supported)", dh, DH_MAX);
    if (heads > 65535 || B > 65535) return mrec_fail(MREC_ERR_ARG, "attention: %d sequences of %d heads", B, heads);
    tf32 = tf32 && cu->sm >= 80; /* TF32 MMAs need Ampere or later: the fp32 kernel below that */
    int dhp = dh <= 32 ? 32 : dh <= 64 ? 64 : 128;
    attention_fn kernel = dhp == 32   ? (tf32 ? attention_tf32_kernel<32> : attention_kernel<32>)
                          : dhp == 64 ? (tf32 ? attention_tf32_kernel<64> : attention_kernel<64>)
                                      : (tf32 ? attention_tf32_kernel<128> : attention_kernel<128>);
    size_t smem = tf32 ? smem_tf32(dhp) : smem_fp32(dhp);
    mrec_status st = mrec_cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem),
                                     "attention: shared memory");
    if (st) return st;
    dim3 grid((unsigned)((T + BQ - 1) / BQ), (unsigned)heads, (unsigned)B);
    kernel<<<grid, THREADS, smem, cu->stream>>>(out, q, k, v, mask_bias, head_bias, starts, scale, T, heads, dh);
    return MREC_CUDA_LAUNCHED(tf32 ? "attention (tf32)" : "attention");
}

/* out, q, k, v: (B, T, heads * dh); mask_bias: (B, T) or NULL; head_bias: (heads, T, T) or NULL */
extern "C" mrec_status mrec_attention_cuda(float *out, const float *q, const float *k, const float *v,
                                           const float *mask_bias, const float *head_bias, float scale, int B, int T,
                                           int heads, int dh, mrec_cuda *cu) {
    return attention(0, out, q, k, v, mask_bias, head_bias, NULL, scale, B, T, heads, dh, cu);
}

/* The same, its products in TF32 */
extern "C" mrec_status mrec_attention_tf32_cuda(float *out, const float *q, const float *k, const float *v,
                                                const float *mask_bias, const float *head_bias, float scale, int B, int T,
                                                int heads, int dh, mrec_cuda *cu) {
    return attention(1, out, q, k, v, mask_bias, head_bias, NULL, scale, B, T, heads, dh, cu);
}

/* B sequences laid end to end, sequence b rows starts[b] .. starts[b + 1] (device memory), none longer than T;
 * head_bias (heads, T, T) or NULL, a sequence of length L reading its top-left L x L block; no mask. One launch
 * for the batch, where a launch per sequence left most of the GPU idle at a text's few dozen tokens. */
extern "C" mrec_status mrec_attention_varlen_cuda(float *out, const float *q, const float *k, const float *v,
                                                  const float *head_bias, const int32_t *starts, float scale, int B, int T,
                                                  int heads, int dh, int tf32, mrec_cuda *cu) {
    return attention(tf32, out, q, k, v, NULL, head_bias, starts, scale, B, T, heads, dh, cu);
}
