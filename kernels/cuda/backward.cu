/* backward.cu: the GPU side of training the encoders (kernels/cpu/backward.c
 * holds the references and the contracts): the backward of the CLIP towers'
 * ops, CLIP's loss, AdamW and the sum of squares of the gradient norm.
 *
 * Products go to cuBLAS (fp32, through mrec_gemm_cuda and
 * mrec_gemm_batched_cuda: fp32 whatever the context's precision, as on the
 * CPU). Nothing uses float atomics: a sum over rows is a block per 8 columns,
 * 32 interleaved row sets added in a fixed order (the CPU's), a sum along a
 * row is one block reducing in a fixed tree, so the same inputs give the same
 * bits every run.
 */
#include "cuda_internal.h"

#include <math.h>

#define THREADS 256

/* A fixed-tree sum over the block's THREADS threads; every thread gets it. */
__device__ static double block_sum(double v, double *shared) {
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int s = THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
        __syncthreads();
    }
    double r = shared[0];
    __syncthreads();
    return r;
}

__device__ static double block_max(double v, double *shared) {
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int s = THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) shared[threadIdx.x] = fmax(shared[threadIdx.x], shared[threadIdx.x + s]);
        __syncthreads();
    }
    double r = shared[0];
    __syncthreads();
    return r;
}

/* ---- linear ---- */

/* Column sums over many rows (a bias's or a LayerNorm's gradient over B x T rows: 201,728 for CLIP-E2E's ViT at
 * 1,024 items) take a block per COL_TILE columns, its threads COL_GROUPS interleaved sets of rows each (rows g,
 * g + COL_GROUPS, ...), in double, and then the groups' sums in group order: the same sums whatever the timing,
 * where a thread per column left 768 columns three blocks of the GPU. A warp reads 4 rows of 8 columns, whole
 * 32-byte sectors. */
#define COL_TILE 8
#define COL_GROUPS (THREADS / COL_TILE)

/* out[c] (+)= sum over rows of in (R, C) */
__global__ static void colsum_kernel(float *out, const float *in, int R, int C, int accumulate) {
    __shared__ double part[COL_GROUPS][COL_TILE];
    int cl = threadIdx.x % COL_TILE, g = threadIdx.x / COL_TILE, c = blockIdx.x * COL_TILE + cl;
    double s = 0;
    if (c < C)
        for (int64_t r = g; r < R; r += COL_GROUPS) s += in[(size_t)r * C + c];
    part[g][cl] = s;
    __syncthreads();
    if (g == 0 && c < C) {
        double t = 0;
        for (int k = 0; k < COL_GROUPS; k++) t += part[k][cl];
        out[c] = accumulate ? (float)(out[c] + t) : (float)t;
    }
}

static unsigned col_blocks(int C) { return (unsigned)((C + COL_TILE - 1) / COL_TILE); }

/* dx (M, K), dw (N, K), db (N), dy (M, N), x (M, K), w (N, K) */
extern "C" mrec_status mrec_linear_back_cuda(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                                             int accumulate, int M, int N, int K, mrec_cuda *cu) {
    mrec_status st = MREC_OK;
    if (M == 0 || N == 0) {
        if (!(accumulate & MREC_ACC_PARAMS) && dw) st = mrec_cuda_check(cudaMemsetAsync(dw, 0, sizeof(float) * (size_t)N * K, cu->stream), "linear backward");
        if (!st && !(accumulate & MREC_ACC_PARAMS) && db) st = mrec_cuda_check(cudaMemsetAsync(db, 0, sizeof(float) * (size_t)N, cu->stream), "linear backward");
        if (!st && !(accumulate & MREC_ACC_DX) && dx) st = mrec_cuda_check(cudaMemsetAsync(dx, 0, sizeof(float) * (size_t)M * K, cu->stream), "linear backward");
        return st;
    }
    float beta_x = accumulate & MREC_ACC_DX ? 1.0f : 0.0f, beta_w = accumulate & MREC_ACC_PARAMS ? 1.0f : 0.0f;
    if (dx) st = mrec_gemm_cuda(dx, dy, w, NULL, 1, beta_x, 0, 0, M, K, N, N, K, K, cu);
    if (!st && dw) st = mrec_gemm_cuda(dw, dy, x, NULL, 1, beta_w, 1, 0, N, K, M, N, K, K, cu);
    if (!st && db) {
        colsum_kernel<<<col_blocks(N), THREADS, 0, cu->stream>>>(db, dy, M, N, (accumulate & MREC_ACC_PARAMS) != 0);
        st = MREC_CUDA_LAUNCHED("linear backward bias");
    }
    return st;
}

/* ---- LayerNorm ---- */

__global__ static void ln_stats_kernel(float *mean, float *rstd, const float *in, float eps, int C) {
    __shared__ double sh[THREADS];
    const float *x = in + (size_t)blockIdx.x * C;
    double s = 0;
    for (int c = threadIdx.x; c < C; c += THREADS) s += x[c];
    double m = block_sum(s, sh) / C;
    s = 0;
    for (int c = threadIdx.x; c < C; c += THREADS) s += (x[c] - m) * (x[c] - m);
    double var = block_sum(s, sh) / C;
    if (threadIdx.x == 0) mean[blockIdx.x] = (float)m, rstd[blockIdx.x] = (float)(1.0 / sqrt(var + eps));
}

extern "C" mrec_status mrec_layernorm_stats_cuda(float *mean, float *rstd, const float *in, float eps, int R, int C, mrec_cuda *cu) {
    if (R <= 0) return MREC_OK;
    ln_stats_kernel<<<R, THREADS, 0, cu->stream>>>(mean, rstd, in, eps, C);
    return MREC_CUDA_LAUNCHED("layernorm statistics");
}

__global__ static void ln_back_rows_kernel(float *dx, const float *dy, const float *x, const float *mean, const float *rstd,
                                           const float *w, int accumulate, int C) {
    __shared__ double sh[THREADS];
    size_t o = (size_t)blockIdx.x * C;
    float m = mean[blockIdx.x], rs = rstd[blockIdx.x];
    double sg = 0, sgx = 0;
    for (int c = threadIdx.x; c < C; c += THREADS) {
        float xh = (x[o + c] - m) * rs, g = w ? dy[o + c] * w[c] : dy[o + c];
        sg += g, sgx += (double)g * xh;
    }
    float mg = (float)(block_sum(sg, sh) / C), mgx = (float)(block_sum(sgx, sh) / C);
    for (int c = threadIdx.x; c < C; c += THREADS) {
        float xh = (x[o + c] - m) * rs, g = w ? dy[o + c] * w[c] : dy[o + c];
        float v = rs * (g - mg - xh * mgx);
        dx[o + c] = accumulate & MREC_ACC_DX ? dx[o + c] + v : v;
    }
}

/* dw[c] = sum over rows of dy * x-hat, db[c] = sum of dy: the column sums' tiles (colsum_kernel) */
__global__ static void ln_back_cols_kernel(float *dw, float *db, const float *dy, const float *x, const float *mean,
                                           const float *rstd, int accumulate, int R, int C) {
    __shared__ double part[2][COL_GROUPS][COL_TILE];
    int cl = threadIdx.x % COL_TILE, g = threadIdx.x / COL_TILE, c = blockIdx.x * COL_TILE + cl;
    double sw = 0, sb = 0;
    if (c < C)
        for (int64_t r = g; r < R; r += COL_GROUPS) {
            size_t i = (size_t)r * C + c;
            sw += (double)dy[i] * ((x[i] - mean[r]) * rstd[r]), sb += dy[i];
        }
    part[0][g][cl] = sw, part[1][g][cl] = sb;
    __syncthreads();
    if (g == 0 && c < C) {
        double tw = 0, tb = 0;
        for (int k = 0; k < COL_GROUPS; k++) tw += part[0][k][cl], tb += part[1][k][cl];
        if (dw) dw[c] = accumulate & MREC_ACC_PARAMS ? (float)(dw[c] + tw) : (float)tw;
        if (db) db[c] = accumulate & MREC_ACC_PARAMS ? (float)(db[c] + tb) : (float)tb;
    }
}

extern "C" mrec_status mrec_layernorm_back_cuda(float *dx, float *dw, float *db, const float *dy, const float *x,
                                                const float *mean, const float *rstd, const float *w, int accumulate, int R,
                                                int C, mrec_cuda *cu) {
    mrec_status st = MREC_OK;
    if (C <= 0) return MREC_OK; /* nothing to write, and a grid of 0 blocks is a launch error */
    if (dx && R > 0) {
        ln_back_rows_kernel<<<R, THREADS, 0, cu->stream>>>(dx, dy, x, mean, rstd, w, accumulate, C);
        st = MREC_CUDA_LAUNCHED("layernorm backward rows");
    }
    if (!st && (dw || db)) {
        ln_back_cols_kernel<<<col_blocks(C), THREADS, 0, cu->stream>>>(dw, db, dy, x, mean, rstd, accumulate, R, C);
        st = MREC_CUDA_LAUNCHED("layernorm backward columns");
    }
    return st;
}

/* ---- activations ---- */

__global__ static void act_back_kernel(float *dx, const float *dy, const float *x, int act, float slope, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = x[i], d;
        switch (act) {
        case MREC_ACT_GELU_ERF: d = 0.5f * (1 + erff(v * 0.70710678f)) + v * expf(-0.5f * v * v) * 0.3989422804f; break;
        case MREC_ACT_GELU_TANH: {
            float t = tanhf(0.7978845608f * (v + 0.044715f * v * v * v));
            d = 0.5f * (1 + t) + 0.5f * v * (1 - t * t) * 0.7978845608f * (1 + 0.134145f * v * v);
            break;
        }
        case MREC_ACT_QUICK_GELU: {
            float s = 1 / (1 + expf(-1.702f * v));
            d = s + 1.702f * v * s * (1 - s);
            break;
        }
        case MREC_ACT_RELU: d = v > 0 ? 1.0f : 0.0f; break;
        case MREC_ACT_LEAKY_RELU: d = v > 0 ? 1.0f : slope; break;
        case MREC_ACT_SILU: {
            float s = 1 / (1 + expf(-v));
            d = s * (1 + v * (1 - s));
            break;
        }
        default: {
            float t = tanhf(v);
            d = 1 - t * t;
        }
        }
        dx[i] = dy[i] * d;
    }
}

extern "C" mrec_status mrec_activation_back_cuda(float *dx, const float *dy, const float *x, mrec_act act, float slope,
                                                 int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    act_back_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(dx, dy, x, (int)act, slope, n);
    return MREC_CUDA_LAUNCHED("activation backward");
}

/* ---- softmax ---- */

__global__ static void softmax_back_kernel(float *dx, const float *dy, const float *y, int causal, int C) {
    __shared__ double sh[THREADS];
    size_t o = (size_t)blockIdx.x * C;
    int n = causal ? (int)(blockIdx.x % C) + 1 : C;
    double s = 0;
    for (int c = threadIdx.x; c < n; c += THREADS) s += (double)y[o + c] * dy[o + c];
    float sf = (float)block_sum(s, sh);
    for (int c = threadIdx.x; c < C; c += THREADS) dx[o + c] = c < n ? y[o + c] * (dy[o + c] - sf) : 0.0f;
}

extern "C" mrec_status mrec_softmax_rows_back_cuda(float *dx, const float *dy, const float *y, int causal, int R, int C,
                                                   mrec_cuda *cu) {
    if (R <= 0) return MREC_OK;
    softmax_back_kernel<<<R, THREADS, 0, cu->stream>>>(dx, dy, y, causal, C);
    return MREC_CUDA_LAUNCHED("softmax backward");
}

/* ---- attention ---- */

/* (B, T, nh, dh) -> (B, nh, T, dh) when to_heads, else back; one thread per element of the destination */
__global__ static void permute_heads_kernel(float *dst, const float *src, int B, int T, int nh, int dh, int to_heads) {
    int64_t n = (int64_t)B * T * nh * dh;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int d = (int)(i % dh);
        int64_t r = i / dh;
        int64_t a = r % (to_heads ? T : nh), rest = r / (to_heads ? T : nh);
        int64_t bb = rest / (to_heads ? nh : T), mid = rest % (to_heads ? nh : T);
        /* to_heads: i indexes (b, h = mid, t = a); else (b, t = mid, h = a) */
        int64_t t = to_heads ? a : mid, h = to_heads ? mid : a;
        int64_t tok = ((bb * T + t) * nh + h) * dh + d, hd = ((bb * nh + h) * T + t) * dh + d;
        dst[i] = to_heads ? src[tok] : src[hd];
    }
}

/* scores (B, nh, T, T) += head_bias (nh, T, T) */
__global__ static void add_head_bias_kernel(float *scores, const float *bias, int64_t per_seq, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        scores[i] += bias[i % per_seq];
}

extern "C" size_t mrec_attention_back_workspace_bytes_cuda(int B, int T, int heads, int dh) {
    return sizeof(float) * (7 * (size_t)B * T * heads * dh + 2 * (size_t)B * heads * T * T);
}

extern "C" mrec_status mrec_attention_back_cuda(float *dq, float *dk, float *dv, const float *dout, const float *q,
                                                const float *k, const float *v, const float *mask_bias,
                                                const float *head_bias, float scale, int B, int T, int nh, int dh,
                                                void *work, mrec_cuda *cu) {
    if (B <= 0 || T <= 0 || nh <= 0 || dh <= 0) return MREC_OK; /* empty outputs; a grid of 0 blocks would fail */
    size_t n = (size_t)B * T * nh * dh;
    int64_t tdh = (int64_t)T * dh, tt = (int64_t)T * T;
    int bh = B * nh;
    float *qh = (float *)work, *kh = qh + n, *vh = kh + n, *doh = vh + n, *gq = doh + n, *gk = gq + n, *gv = gk + n;
    float *p = gv + n, *dp = p + (size_t)bh * tt;
    const float *src[4] = {q, k, v, dout};
    float *dst[4] = {qh, kh, vh, doh};
    mrec_status st = MREC_OK;
    for (int i = 0; i < 4 && !st; i++) {
        permute_heads_kernel<<<mrec_grid((int64_t)n, THREADS), THREADS, 0, cu->stream>>>(dst[i], src[i], B, T, nh, dh, 1);
        st = MREC_CUDA_LAUNCHED("attention backward: heads first");
    }
    /* the forward's probabilities again */
    if (!st) st = mrec_gemm_batched_cuda(p, qh, kh, scale, 0, 0, 1, bh, T, T, dh, dh, dh, T, tdh, tdh, tt, cu);
    if (!st && head_bias) {
        add_head_bias_kernel<<<mrec_grid((int64_t)bh * tt, THREADS), THREADS, 0, cu->stream>>>(p, head_bias, (int64_t)nh * tt,
                                                                                         (int64_t)bh * tt);
        st = MREC_CUDA_LAUNCHED("attention backward: head bias");
    }
    if (!st) st = mrec_softmax_rows_cuda(p, p, mask_bias, bh * T, T, nh * T, cu);
    /* dV = P^T dO;  dP = dO V^T;  dS = softmax'(dP);  dQ = scale dS K;  dK = scale dS^T Q */
    if (!st) st = mrec_gemm_batched_cuda(gv, p, doh, 1, 0, 1, 0, bh, T, dh, T, T, dh, dh, tt, tdh, tdh, cu);
    if (!st) st = mrec_gemm_batched_cuda(dp, doh, vh, 1, 0, 0, 1, bh, T, T, dh, dh, dh, T, tdh, tdh, tt, cu);
    if (!st) st = mrec_softmax_rows_back_cuda(dp, dp, p, 0, bh * T, T, cu);
    if (!st) st = mrec_gemm_batched_cuda(gq, dp, kh, scale, 0, 0, 0, bh, T, dh, T, T, dh, dh, tt, tdh, tdh, cu);
    if (!st) st = mrec_gemm_batched_cuda(gk, dp, qh, scale, 0, 1, 0, bh, T, dh, T, T, dh, dh, tt, tdh, tdh, cu);
    const float *hsrc[3] = {gq, gk, gv};
    float *hdst[3] = {dq, dk, dv};
    for (int i = 0; i < 3 && !st; i++) {
        permute_heads_kernel<<<mrec_grid((int64_t)n, THREADS), THREADS, 0, cu->stream>>>(hdst[i], hsrc[i], B, T, nh, dh, 0);
        st = MREC_CUDA_LAUNCHED("attention backward: tokens first");
    }
    return st;
}

/* ---- embeddings, patches, class token, gathered rows ---- */

/* one thread per (id, d): the positions of the id in order */
__global__ static void embedding_back_kernel(float *dtable, const float *dy, const int64_t *row_ptr, const int32_t *pos, int V,
                                             int D) {
    int64_t n = (int64_t)V * D;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t id = i / D;
        int d = (int)(i % D);
        float s = dtable[i];
        for (int64_t e = row_ptr[id]; e < row_ptr[id + 1]; e++) s += dy[(size_t)pos[e] * D + d];
        dtable[i] = s;
    }
}

extern "C" mrec_status mrec_embedding_back_cuda(float *dtable, const float *dy, const int64_t *row_ptr, const int32_t *pos,
                                                int V, int D, mrec_cuda *cu) {
    if ((int64_t)V * D <= 0) return MREC_OK;
    embedding_back_kernel<<<mrec_grid((int64_t)V * D, THREADS), THREADS, 0, cu->stream>>>(dtable, dy, row_ptr, pos, V, D);
    return MREC_CUDA_LAUNCHED("embedding backward");
}

/* one thread per pixel of dimages (B, C, S, S) */
__global__ static void patchify_back_kernel(float *dimages, const float *dpatches, int B, int C, int S, int P) {
    int64_t n = (int64_t)B * C * S * S;
    int G = S / P;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int xx = (int)(i % S), yy = (int)(i / S % S), c = (int)(i / S / S % C);
        int64_t b = i / S / S / C;
        if (xx >= G * P || yy >= G * P) {
            dimages[i] = 0.0f;
            continue;
        }
        int gy = yy / P, y = yy % P, gx = xx / P, x = xx % P;
        dimages[i] = dpatches[(((b * G + gy) * G + gx) * C + c) * P * P + (int64_t)y * P + x];
    }
}

extern "C" mrec_status mrec_patchify_back_cuda(float *dimages, const float *dpatches, int B, int C, int S, int P, mrec_cuda *cu) {
    int64_t n = (int64_t)B * C * S * S;
    if (n <= 0) return MREC_OK;
    patchify_back_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(dimages, dpatches, B, C, S, P);
    return MREC_CUDA_LAUNCHED("patch backward");
}

/* one thread per column of dx seen as (B, T*H) */
__global__ static void class_back_kernel(float *dcls, float *dpos, const float *dx, int B, int64_t cols, int64_t TH, int H) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    double s = 0;
    for (int b = 0; b < B; b++) s += dx[b * TH + c];
    if (dpos) dpos[c] += (float)s;
    if (dcls && c < H) dcls[c] += (float)s;
}

extern "C" mrec_status mrec_class_embed_back_cuda(float *dcls, float *dpos, const float *dx, int B, int T, int H, mrec_cuda *cu) {
    int64_t cols = dpos ? (int64_t)T * H : H;
    if (cols <= 0) return MREC_OK;
    class_back_kernel<<<mrec_grid(cols, THREADS), THREADS, 0, cu->stream>>>(dcls, dpos, dx, B, cols, (int64_t)T * H, H);
    return MREC_CUDA_LAUNCHED("class embedding backward");
}

/* one thread per column h, rows b in order (a row named twice gets both, in order) */
__global__ static void gather_back_kernel(float *dx, const float *dy, const int32_t *rows, int B, int H) {
    int h = blockIdx.x * blockDim.x + threadIdx.x;
    if (h >= H) return;
    for (int b = 0; b < B; b++) dx[(size_t)rows[b] * H + h] += dy[(size_t)b * H + h];
}

extern "C" mrec_status mrec_gather_rows_back_cuda(float *dx, const float *dy, const int32_t *rows, int B, int H, mrec_cuda *cu) {
    if (B <= 0 || H <= 0) return MREC_OK;
    gather_back_kernel<<<mrec_grid(H, THREADS), THREADS, 0, cu->stream>>>(dx, dy, rows, B, H);
    return MREC_CUDA_LAUNCHED("gathered rows backward");
}

/* ---- CLIP's loss ---- */

__global__ static void clip_rows_kernel(double *rlse, const float *L, int N) {
    __shared__ double sh[THREADS];
    const float *row = L + (size_t)blockIdx.x * N;
    double mx = -INFINITY;
    for (int j = threadIdx.x; j < N; j += THREADS) mx = fmax(mx, (double)row[j]);
    mx = block_max(mx, sh);
    double z = 0;
    for (int j = threadIdx.x; j < N; j += THREADS) z += exp(row[j] - mx);
    z = block_sum(z, sh);
    if (threadIdx.x == 0) rlse[blockIdx.x] = mx + log(z);
}

__global__ static void clip_cols_kernel(double *clse, const float *L, int N) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= N) return;
    double mx = -INFINITY, z = 0;
    for (int i = 0; i < N; i++) mx = fmax(mx, (double)L[(size_t)i * N + j]);
    for (int i = 0; i < N; i++) z += exp(L[(size_t)i * N + j] - mx);
    clse[j] = mx + log(z);
}

__global__ static void clip_grad_kernel(float *g, double *part, const float *L, const double *rlse, const double *clse, int N) {
    __shared__ double sh[THREADS];
    int i = blockIdx.x;
    const float *row = L + (size_t)i * N;
    double w = 1.0 / (2.0 * N), s = 0;
    for (int j = threadIdx.x; j < N; j += THREADS) {
        double v = (exp(row[j] - rlse[i]) + exp(row[j] - clse[j]) - 2.0 * (i == j)) * w;
        g[(size_t)i * N + j] = (float)v;
        s += v * row[j];
    }
    s = block_sum(s, sh);
    if (threadIdx.x == 0) part[i] = s;
}

/* one thread: the 2 N row and column terms and N partial sums, in index order */
__global__ static void clip_total_kernel(double *out, const double *work, const float *L, int N) {
    double loss = 0, dscale = 0;
    for (int i = 0; i < N; i++) loss += work[i] + work[N + i] - 2.0 * L[(size_t)i * N + i], dscale += work[2 * (size_t)N + i];
    out[0] = loss / (2.0 * N);
    out[1] = dscale;
}

extern "C" mrec_status mrec_clip_loss_cuda(float *dlogits, double *out, const float *logits, int N, double *work, mrec_cuda *cu) {
    if (N <= 0) return mrec_fail(MREC_ERR_ARG, "clip loss: a batch of %d pairs", N);
    clip_rows_kernel<<<N, THREADS, 0, cu->stream>>>(work, logits, N);
    mrec_status st = MREC_CUDA_LAUNCHED("clip loss rows");
    if (st) return st;
    clip_cols_kernel<<<mrec_grid(N, THREADS), THREADS, 0, cu->stream>>>(work + N, logits, N);
    if ((st = MREC_CUDA_LAUNCHED("clip loss columns"))) return st;
    clip_grad_kernel<<<N, THREADS, 0, cu->stream>>>(dlogits, work + 2 * (size_t)N, logits, work, work + N, N);
    if ((st = MREC_CUDA_LAUNCHED("clip loss gradient"))) return st;
    clip_total_kernel<<<1, 1, 0, cu->stream>>>(out, work, logits, N);
    return MREC_CUDA_LAUNCHED("clip loss total");
}

/* ---- AdamW and the sum of squares ---- */

/* the float operations of mrec_adamw_cpu (torch's order); __fmul_rn / __fadd_rn keep nvcc from contracting them into
 * fused multiply-adds, so the GPU gives the CPU's bits */
__global__ static void adamw_kernel(float *param, float *m, float *v, const float *grad, float decay, float w1, float b2, float w2,
                                    float step_size, float bc2_sqrt, float eps, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = grad[i], p = __fmul_rn(param[i], decay);
        float mi = __fadd_rn(m[i], __fmul_rn(w1, __fsub_rn(g, m[i])));
        float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(w2, g), g));
        float d = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        param[i] = __fadd_rn(p, __fdiv_rn(__fmul_rn(step_size, mi), d));
        m[i] = mi, v[i] = vi;
    }
}

extern "C" mrec_status mrec_adamw_cuda(float *param, float *m, float *v, const float *grad, double lr, double beta1, double beta2,
                                       double eps, double weight_decay, int64_t step, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    adamw_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(param, m, v, grad, (float)(1 - lr * weight_decay), (float)(1 - beta1),
                                                             (float)beta2, (float)(1 - beta2), (float)(-lr / bc1), (float)sqrt(bc2),
                                                             (float)eps, n);
    return MREC_CUDA_LAUNCHED("adamw");
}

/* One block: each thread sums a strided share in double, then the fixed tree.
 * One block is enough beside a training step's GEMMs, and it needs no
 * scratch for partial sums. */
__global__ static void sum_squares_kernel(double *out, const float *x, int64_t n) {
    __shared__ double sh[THREADS];
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += THREADS) s += (double)x[i] * x[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) *out += s;
}

extern "C" mrec_status mrec_sum_squares_cuda(double *out, const float *x, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    sum_squares_kernel<<<1, THREADS, 0, cu->stream>>>(out, x, n);
    return MREC_CUDA_LAUNCHED("sum of squares");
}
