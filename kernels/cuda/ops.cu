/* ops.cu: the element-wise, row-wise and optimizer ops on the GPU.
 *
 * Each op has the contract of its CPU twin in mrec_kernels.h (same shapes,
 * same edge cases: masked softmax rows of -inf give NaN, an id outside the
 * table is an error naming its position, NaN ranks last in top-k). Pointers
 * are device pointers; launches go on the context's stream and are checked.
 * Row reductions run one block per row and accumulate in fp32 with a fixed
 * tree, so a result does not depend on timing: same input, same bits.
 */
#include "cuda_internal.h"

#include <cuda_bf16.h>
#include <math.h>

#define THREADS 256

/* ---- element-wise ------------------------------------------------------- */

/* out[i] = op(a[i], b[i]) (b NULL: op(a[i], 0)), four values a thread in 16-byte loads and stores where every
 * array is 16-byte aligned (vec), then the n % 4 past the last four (or all n otherwise) one a thread, as the
 * activations below do (there the one-value form moved 1.6 TB/s, PyTorch 2.6). A graph model's step runs several
 * of these over its whole table (LightGCN's layer sums). */
template <typename Op>
__global__ static void map_kernel(float *out, const float *a, const float *b, Op op, int64_t n, int vec) {
    const int64_t first = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t n4 = vec ? n / 4 : 0;
    for (int64_t i = first; i < n4; i += stride) {
        float4 x = ((const float4 *)a)[i], y = b ? ((const float4 *)b)[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        ((float4 *)out)[i] = make_float4(op(x.x, y.x), op(x.y, y.y), op(x.z, y.z), op(x.w, y.w));
    }
    for (int64_t i = 4 * n4 + first; i < n; i += stride) out[i] = op(a[i], b ? b[i] : 0.0f);
}

struct add_op {
    __device__ float operator()(float x, float y) const { return x + y; }
};
struct mul_op {
    __device__ float operator()(float x, float y) const { return x * y; }
};
struct scale_op {
    float s;
    __device__ float operator()(float x, float) const { return x * s; }
};
struct scale_at_op { /* the factor in device memory, read by each thread (cached) */
    const float *s;
    __device__ float operator()(float x, float) const { return x * *s; }
};

static int aligned16(const void *a, const void *b, const void *c) { return (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) & 15) == 0; }

template <typename Op>
static mrec_status map(float *out, const float *a, const float *b, Op op, int64_t n, const char *what, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    int vec = aligned16(out, a, b);
    map_kernel<Op><<<mrec_grid(vec ? (n + 3) / 4 : n, THREADS), THREADS, 0, cu->stream>>>(out, a, b, op, n, vec);
    return MREC_CUDA_LAUNCHED(what);
}

__global__ static void fill_kernel(float *out, float value, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = value;
}

/* out, a, b: (n) */
extern "C" mrec_status mrec_add_cuda(float *out, const float *a, const float *b, int64_t n, mrec_cuda *cu) {
    return map(out, a, b, add_op(), n, "add", cu);
}

/* out, a, b: (n) */
extern "C" mrec_status mrec_mul_cuda(float *out, const float *a, const float *b, int64_t n, mrec_cuda *cu) {
    return map(out, a, b, mul_op(), n, "mul", cu);
}

/* out, a: (n) */
extern "C" mrec_status mrec_scale_cuda(float *out, const float *a, float s, int64_t n, mrec_cuda *cu) {
    return map(out, a, (const float *)NULL, scale_op{s}, n, "scale", cu);
}

/* out, a: (n); s: (1) */
extern "C" mrec_status mrec_scale_at_cuda(float *out, const float *a, const float *s, int64_t n, mrec_cuda *cu) {
    return map(out, a, (const float *)NULL, scale_at_op{s}, n, "scale_at", cu);
}

/* out: (n) */
extern "C" mrec_status mrec_fill_cuda(float *out, float value, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    fill_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, value, n);
    return MREC_CUDA_LAUNCHED("fill");
}

__global__ static void activation_kernel(float *out, const float *in, mrec_act act, float slope, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = mrec_activate(in[i], act, slope);
}

/* Four values a thread, in 16-byte loads and stores: the scalar kernel moved a GELU's (4096, 3072) at
 * 1.6 TB/s, PyTorch's at 2.6 */
__global__ static void activation4_kernel(float4 *out, const float4 *in, mrec_act act, float slope, int64_t n4) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
        float4 v = in[i];
        v.x = mrec_activate(v.x, act, slope), v.y = mrec_activate(v.y, act, slope);
        v.z = mrec_activate(v.z, act, slope), v.w = mrec_activate(v.w, act, slope);
        out[i] = v;
    }
}

/* out, in: (n) */
extern "C" mrec_status mrec_activation_cuda(float *out, const float *in, mrec_act act, float slope, int64_t n,
                                            mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    if (n % 4 == 0 && ((uintptr_t)out & 15) == 0 && ((uintptr_t)in & 15) == 0)
        activation4_kernel<<<mrec_grid(n / 4, THREADS), THREADS, 0, cu->stream>>>((float4 *)out, (const float4 *)in, act,
                                                                                 slope, n / 4);
    else
        activation_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, in, act, slope, n);
    return MREC_CUDA_LAUNCHED("activation");
}

/* x (n) bf16 = round(act(x)) in place, eight values a thread where x is 16-byte aligned (the feed-forward
 * activations of a bf16 transformer: (tokens, 3072) values a layer) */
__global__ static void activation_bf16_kernel(__nv_bfloat16 *x, mrec_act act, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        x[i] = __float2bfloat16_rn(mrec_activate(__bfloat162float(x[i]), act, 0.0f));
}

__global__ static void activation_bf16x8_kernel(uint4 *x, mrec_act act, int64_t n8) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += (int64_t)gridDim.x * blockDim.x) {
        uint4 u = x[i];
        __nv_bfloat162 *h = (__nv_bfloat162 *)&u;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float2 f = __bfloat1622float2(h[j]);
            h[j] = __floats2bfloat162_rn(mrec_activate(f.x, act, 0.0f), mrec_activate(f.y, act, 0.0f));
        }
        x[i] = u;
    }
}

extern "C" mrec_status mrec_activation_bf16_cuda(uint16_t *x, mrec_act act, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    if (n % 8 == 0 && ((uintptr_t)x & 15) == 0)
        activation_bf16x8_kernel<<<mrec_grid(n / 8, THREADS), THREADS, 0, cu->stream>>>((uint4 *)x, act, n / 8);
    else
        activation_bf16_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>((__nv_bfloat16 *)x, act, n);
    return MREC_CUDA_LAUNCHED("activation_bf16");
}

/* ---- block reductions ---------------------------------------------------- */

__device__ static float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ static float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum (or max) over the block of THREADS threads; every thread gets the result. */
__device__ static float block_reduce(float v, int is_max) {
    __shared__ float part[THREADS / 32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = is_max ? warp_max(v) : warp_sum(v);
    __syncthreads(); /* part[] may still be read by a previous call */
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = lane < THREADS / 32 ? part[lane] : (is_max ? -INFINITY : 0.0f);
    return is_max ? warp_max(v) : warp_sum(v);
}

/* ---- rows ------------------------------------------------------------------ */

__global__ static void softmax_kernel(float *out, const float *in, const float *mask, int C, int rows_per_mask) {
    int r = blockIdx.x;
    const float *x = in + (size_t)r * C;
    const float *m = mask ? mask + (size_t)(r / rows_per_mask) * C : NULL;
    float *y = out + (size_t)r * C;
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < C; c += THREADS) mx = fmaxf(mx, x[c] + (m ? m[c] : 0.0f));
    mx = block_reduce(mx, 1);
    float sum = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS) sum += expf(x[c] + (m ? m[c] : 0.0f) - mx);
    sum = block_reduce(sum, 0);
    float inv = 1.0f / sum;
    /* exp(-inf - -inf) is NaN: a fully masked row comes out NaN, as in PyTorch. */
    for (int c = threadIdx.x; c < C; c += THREADS) y[c] = expf(x[c] + (m ? m[c] : 0.0f) - mx) * inv;
}

/* Rows of up to 32 V values: a warp a row, its values in registers, read once; the max and the sum are
 * shuffles within the warp, where a block a row waited twice on shared memory and, at 128 values, left half
 * its threads idle (PyTorch's softmax ran a (49152, 128) one in half the time). */
template <int V>
__global__ static void softmax_warp_kernel(float *out, const float *in, const float *mask, int64_t R, int C, int rows_per_mask) {
    const int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x & 31;
    if (r >= R) return; /* the whole warp */
    const float *x = in + r * C, *m = mask ? mask + (r / rows_per_mask) * C : NULL;
    float v[V], mx = -INFINITY, sum = 0.0f;
#pragma unroll
    for (int i = 0; i < V; i++) {
        int c = lane + 32 * i;
        v[i] = c < C ? x[c] + (m ? m[c] : 0.0f) : -INFINITY;
        mx = fmaxf(mx, v[i]);
    }
    mx = warp_max(mx);
#pragma unroll
    for (int i = 0; i < V; i++) {
        v[i] = lane + 32 * i < C ? expf(v[i] - mx) : 0.0f; /* a fully masked row: NaN, as the block kernel gives */
        sum += v[i];
    }
    float inv = 1.0f / warp_sum(sum);
#pragma unroll
    for (int i = 0; i < V; i++)
        if (lane + 32 * i < C) out[r * C + lane + 32 * i] = v[i] * inv;
}

/* out, in: (R, C); mask: (R / rows_per_mask, C) or NULL */
extern "C" mrec_status mrec_softmax_rows_cuda(float *out, const float *in, const float *mask, int R, int C,
                                              int rows_per_mask, mrec_cuda *cu) {
    if (R <= 0 || C <= 0) return MREC_OK;
    if (mask && rows_per_mask <= 0) return mrec_fail(MREC_ERR_ARG, "softmax: rows_per_mask %d", rows_per_mask);
    if (C > 1024) {
        softmax_kernel<<<R, THREADS, 0, cu->stream>>>(out, in, mask, C, rows_per_mask);
        return MREC_CUDA_LAUNCHED("softmax_rows");
    }
    unsigned grid = (unsigned)(((int64_t)R * 32 + THREADS - 1) / THREADS);
    int v = (C + 31) / 32;
    if (v <= 1) softmax_warp_kernel<1><<<grid, THREADS, 0, cu->stream>>>(out, in, mask, R, C, rows_per_mask);
    else if (v <= 2) softmax_warp_kernel<2><<<grid, THREADS, 0, cu->stream>>>(out, in, mask, R, C, rows_per_mask);
    else if (v <= 4) softmax_warp_kernel<4><<<grid, THREADS, 0, cu->stream>>>(out, in, mask, R, C, rows_per_mask);
    else if (v <= 8) softmax_warp_kernel<8><<<grid, THREADS, 0, cu->stream>>>(out, in, mask, R, C, rows_per_mask);
    else if (v <= 16) softmax_warp_kernel<16><<<grid, THREADS, 0, cu->stream>>>(out, in, mask, R, C, rows_per_mask);
    else softmax_warp_kernel<32><<<grid, THREADS, 0, cu->stream>>>(out, in, mask, R, C, rows_per_mask);
    return MREC_CUDA_LAUNCHED("softmax_rows (a warp a row)");
}

__global__ static void layernorm_kernel(float *out, const float *in, const float *w, const float *b, float eps, int C) {
    const float *x = in + (size_t)blockIdx.x * C;
    float *y = out + (size_t)blockIdx.x * C;
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS) s += x[c];
    float mean = block_reduce(s, 0) / C;
    float v = 0.0f; /* two passes, as the reference: no cancellation in E[x^2] - E[x]^2 */
    for (int c = threadIdx.x; c < C; c += THREADS) v += (x[c] - mean) * (x[c] - mean);
    float rstd = rsqrtf(block_reduce(v, 0) / C + eps);
    for (int c = threadIdx.x; c < C; c += THREADS) {
        float t = (x[c] - mean) * rstd;
        if (w) t *= w[c];
        if (b) t += b[c];
        y[c] = t;
    }
}

/* The residual add of a post-norm transformer and its LayerNorm in one
 * kernel: the row's sum is recomputed from a and b in each loop rather than
 * written out and read back, which saves a full pass over memory. */
__global__ static void add_layernorm_kernel(float *out, const float *a, const float *b, const float *w, const float *bias,
                                            float eps, int C) {
    const float *x = a + (size_t)blockIdx.x * C, *y = b + (size_t)blockIdx.x * C;
    float *o = out + (size_t)blockIdx.x * C;
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS) s += x[c] + y[c];
    float mean = block_reduce(s, 0) / C;
    float v = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS) {
        float d = x[c] + y[c] - mean;
        v += d * d;
    }
    float rstd = rsqrtf(block_reduce(v, 0) / C + eps);
    for (int c = threadIdx.x; c < C; c += THREADS) { /* out may alias a or b: each element is read before it is written */
        float t = (x[c] + y[c] - mean) * rstd;
        if (w) t *= w[c];
        if (bias) t += bias[c];
        o[c] = t;
    }
}

/* out = LayerNorm(a + b): out, a, b (R, C), out may be a or b; weight, bias (C) or NULL */
static bool layernorm_by_warps(float *out, __nv_bfloat16 *out16, const float *a, const float *b, const float *weight,
                               const float *bias, float eps, int R, int C, mrec_cuda *cu);

extern "C" mrec_status mrec_add_layernorm_cuda(float *out, const float *a, const float *b, const float *weight,
                                               const float *bias, float eps, int R, int C, mrec_cuda *cu) {
    if (R <= 0 || C <= 0) return MREC_OK;
    if (!layernorm_by_warps(out, NULL, a, b, weight, bias, eps, R, C, cu))
        add_layernorm_kernel<<<R, THREADS, 0, cu->stream>>>(out, a, b, weight, bias, eps, C);
    return MREC_CUDA_LAUNCHED("add_layernorm");
}

/* The LayerNorm of a bf16 transformer: out16 = LayerNorm(a + b) rounded (b
 * NULL: of a), out the fp32 values where not NULL. The row (a + b) is read
 * three times, as in add_layernorm_kernel; out may alias a or b. */
__global__ static void layernorm_bf16_kernel(float *out, __nv_bfloat16 *out16, const float *a, const float *b, const float *w,
                                             const float *bias, float eps, int C) {
    const float *x = a + (size_t)blockIdx.x * C, *y = b ? b + (size_t)blockIdx.x * C : NULL;
    float s = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS) s += y ? x[c] + y[c] : x[c];
    float mean = block_reduce(s, 0) / C;
    float v = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS) {
        float d = (y ? x[c] + y[c] : x[c]) - mean;
        v += d * d;
    }
    float rstd = rsqrtf(block_reduce(v, 0) / C + eps);
    for (int c = threadIdx.x; c < C; c += THREADS) {
        float t = ((y ? x[c] + y[c] : x[c]) - mean) * rstd;
        if (w) t *= w[c];
        if (bias) t += bias[c];
        if (out) out[(size_t)blockIdx.x * C + c] = t;
        if (out16) out16[(size_t)blockIdx.x * C + c] = __float2bfloat16_rn(t);
    }
}

/* The same with a warp a row and the row in its registers, V float4s a lane (C = 128 V: the encoders' 384, 512,
 * 768 and 1,024): each value is read once, 16 bytes at a time, and the sums are the warp's shuffles, with no
 * block barrier. A block of THREADS threads took a 768-wide row at 3 values a thread, and a ViT-B/16 LayerNorm
 * at batch 32 ran at half the memory's rate. a, b, out, weight and bias 16-byte aligned, out16 8-byte; the fp32
 * LayerNorms (out16 NULL) take it too. */
template <int V>
__global__ static void layernorm_bf16_warp(float *out, __nv_bfloat16 *out16, const float *a, const float *b, const float *w,
                                           const float *bias, float eps, int R) {
    constexpr int C = 128 * V;
    const int row = (int)(((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (row >= R) return; /* a whole warp leaves together: its rows are its own */
    const float4 *x = (const float4 *)(a + (size_t)row * C), *y = b ? (const float4 *)(b + (size_t)row * C) : NULL;
    float4 v[V];
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < V; i++) {
        v[i] = x[i * 32 + lane];
        if (y) {
            float4 t = y[i * 32 + lane];
            v[i].x += t.x, v[i].y += t.y, v[i].z += t.z, v[i].w += t.w;
        }
        s += v[i].x + v[i].y + v[i].z + v[i].w;
    }
    const float mean = warp_sum(s) / C;
    float q = 0.0f;
#pragma unroll
    for (int i = 0; i < V; i++) {
        float dx = v[i].x - mean, dy = v[i].y - mean, dz = v[i].z - mean, dw = v[i].w - mean;
        q += dx * dx + dy * dy + dz * dz + dw * dw;
    }
    const float rstd = rsqrtf(warp_sum(q) / C + eps);
#pragma unroll
    for (int i = 0; i < V; i++) { /* out may alias a or b: the row is in registers before anything is written */
        int c4 = i * 32 + lane;
        float4 t = {(v[i].x - mean) * rstd, (v[i].y - mean) * rstd, (v[i].z - mean) * rstd, (v[i].w - mean) * rstd};
        if (w) {
            float4 g = ((const float4 *)w)[c4];
            t.x *= g.x, t.y *= g.y, t.z *= g.z, t.w *= g.w;
        }
        if (bias) {
            float4 g = ((const float4 *)bias)[c4];
            t.x += g.x, t.y += g.y, t.z += g.z, t.w += g.w;
        }
        if (out) ((float4 *)(out + (size_t)row * C))[c4] = t;
        if (out16) {
            __nv_bfloat162 h[2] = {__floats2bfloat162_rn(t.x, t.y), __floats2bfloat162_rn(t.z, t.w)};
            ((uint2 *)(out16 + (size_t)row * C))[c4] = *(const uint2 *)h;
        }
    }
}

static bool aligned(const void *p, uintptr_t to) { return ((uintptr_t)p & (to - 1)) == 0; }

/* LayerNorm(a + b) (b NULL: of a) by layernorm_bf16_warp where the width and the alignments allow; 0 where they
 * do not (nothing launched). */
static bool layernorm_by_warps(float *out, __nv_bfloat16 *out16, const float *a, const float *b, const float *weight,
                               const float *bias, float eps, int R, int C, mrec_cuda *cu) {
    typedef void (*warp_fn)(float *, __nv_bfloat16 *, const float *, const float *, const float *, const float *, float, int);
    static const warp_fn by_v[9] = {NULL,
                                    layernorm_bf16_warp<1>,
                                    layernorm_bf16_warp<2>,
                                    layernorm_bf16_warp<3>,
                                    layernorm_bf16_warp<4>,
                                    layernorm_bf16_warp<5>,
                                    layernorm_bf16_warp<6>,
                                    layernorm_bf16_warp<7>,
                                    layernorm_bf16_warp<8>};
    bool fits = C % 128 == 0 && C / 128 <= 8 && R <= 65535 * THREADS && aligned(a, 16) && aligned(b, 16) && aligned(out, 16) &&
                aligned(weight, 16) && aligned(bias, 16) && aligned(out16, 8);
    if (fits) by_v[C / 128]<<<mrec_grid((int64_t)R * 32, THREADS), THREADS, 0, cu->stream>>>(out, out16, a, b, weight, bias, eps, R);
    return fits;
}

extern "C" mrec_status mrec_layernorm_bf16_cuda(float *out, uint16_t *out16, const float *a, const float *b, const float *weight,
                                                const float *bias, float eps, int R, int C, mrec_cuda *cu) {
    if (R <= 0 || C <= 0) return MREC_OK;
    if (!layernorm_by_warps(out, (__nv_bfloat16 *)out16, a, b, weight, bias, eps, R, C, cu))
        layernorm_bf16_kernel<<<R, THREADS, 0, cu->stream>>>(out, (__nv_bfloat16 *)out16, a, b, weight, bias, eps, C);
    return MREC_CUDA_LAUNCHED("layernorm_bf16");
}

/* out, in: (R, C); weight, bias: (C) or NULL */
extern "C" mrec_status mrec_layernorm_cuda(float *out, const float *in, const float *weight, const float *bias,
                                           float eps, int R, int C, mrec_cuda *cu) {
    if (R <= 0 || C <= 0) return MREC_OK;
    if (!layernorm_by_warps(out, NULL, in, NULL, weight, bias, eps, R, C, cu))
        layernorm_kernel<<<R, THREADS, 0, cu->stream>>>(out, in, weight, bias, eps, C);
    return MREC_CUDA_LAUNCHED("layernorm");
}

__global__ static void l2_normalize_kernel(float *out, const float *in, float eps, int C) {
    const float *x = in + (size_t)blockIdx.x * C;
    float *y = out + (size_t)blockIdx.x * C;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += THREADS) ss += x[c] * x[c];
    float norm = fmaxf(sqrtf(block_reduce(ss, 0)), eps);
    for (int c = threadIdx.x; c < C; c += THREADS) y[c] = x[c] / norm;
}

/* out, in: (R, C) */
extern "C" mrec_status mrec_l2_normalize_rows_cuda(float *out, const float *in, float eps, int R, int C,
                                                   mrec_cuda *cu) {
    if (R <= 0 || C <= 0) return MREC_OK;
    l2_normalize_kernel<<<R, THREADS, 0, cu->stream>>>(out, in, eps, C);
    return MREC_CUDA_LAUNCHED("l2_normalize_rows");
}

/* Rows with a bad id are left unwritten and the lowest bad position is
 * recorded in *bad (initialised to N), so the error can name it. */
__global__ static void embedding_kernel(float *out, const float *table, const int32_t *ids, int N, int V, int D,
                                        int *bad) {
    int i = blockIdx.x;
    int id = ids[i];
    if (id < 0 || id >= V) { /* bad NULL: the caller checked the ids, and a row it missed is left as it was */
        if (threadIdx.x == 0 && bad) atomicMin(bad, i);
        return;
    }
    for (int d = threadIdx.x; d < D; d += blockDim.x) out[(size_t)i * D + d] = table[(size_t)id * D + d];
}

/* out: (N, D); table: (V, D); ids: (N). Reads back one int to check the ids,
 * so it synchronizes the stream. */
extern "C" mrec_status mrec_embedding_cuda(float *out, const float *table, const int32_t *ids, int N, int V, int D,
                                           mrec_cuda *cu) {
    if (N <= 0 || D <= 0) return MREC_OK;
    int host_bad = N;
    mrec_status st = mrec_cuda_check(cudaMemcpyAsync(cu->flag, &host_bad, sizeof host_bad, cudaMemcpyHostToDevice,
                                                     cu->stream), "embedding: flag");
    if (!st) {
        embedding_kernel<<<N, D < THREADS ? ((D + 31) / 32) * 32 : THREADS, 0, cu->stream>>>(out, table, ids, N, V, D,
                                                                                            cu->flag);
        st = MREC_CUDA_LAUNCHED("embedding");
    }
    if (!st) st = mrec_cuda_check(cudaMemcpyAsync(&host_bad, cu->flag, sizeof host_bad, cudaMemcpyDeviceToHost,
                                                  cu->stream), "embedding: flag");
    if (!st) st = mrec_cuda_check(cudaStreamSynchronize(cu->stream), "embedding");
    if (st || host_bad >= N) return st;
    int32_t id = 0;
    st = mrec_cuda_check(cudaMemcpy(&id, ids + host_bad, sizeof id, cudaMemcpyDeviceToHost), "embedding: id");
    return st ? st : mrec_fail(MREC_ERR_ARG, "embedding: id %d at position %d is outside [0, %d)", id, host_bad, V);
}

/* The same gather for ids the caller has checked: no flag, no wait. */
extern "C" mrec_status mrec_embedding_checked_cuda(float *out, const float *table, const int32_t *ids, int N, int V, int D,
                                                   mrec_cuda *cu) {
    if (N <= 0 || D <= 0) return MREC_OK;
    embedding_kernel<<<N, D < THREADS ? ((D + 31) / 32) * 32 : THREADS, 0, cu->stream>>>(out, table, ids, N, V, D, NULL);
    return MREC_CUDA_LAUNCHED("embedding of checked ids");
}

/* One thread per (b, d): tokens are summed in order, as the reference. A
 * grid-stride loop: mrec_grid caps the grid. */
__global__ static void mean_pool_kernel(float *out, const float *in, const int32_t *mask, int B, int T, int D) {
    for (int64_t at = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; at < (int64_t)B * D; at += (int64_t)gridDim.x * blockDim.x) {
        int b = (int)(at / D), d = (int)(at % D);
        float sum = 0.0f, count = 0.0f;
        for (int t = 0; t < T; t++) {
            if (mask && !mask[(size_t)b * T + t]) continue;
            sum += in[((size_t)b * T + t) * D + d];
            count += 1.0f;
        }
        out[at] = sum / fmaxf(count, 1e-9f);
    }
}

/* out: (B, D); in: (B, T, D); mask: (B, T) or NULL */
extern "C" mrec_status mrec_mean_pool_cuda(float *out, const float *in, const int32_t *mask, int B, int T, int D,
                                           mrec_cuda *cu) {
    if (B <= 0 || D <= 0) return MREC_OK;
    mean_pool_kernel<<<mrec_grid((int64_t)B * D, THREADS), THREADS, 0, cu->stream>>>(out, in, mask, B, T, D);
    return MREC_CUDA_LAUNCHED("mean_pool");
}

/* ---- top-k ---------------------------------------------------------------- */

/* The reference's order: larger first, NaN last, ties to the lower column. */
__device__ static bool ranks_before(float va, int ia, float vb, int ib) {
    if (isnan(va)) return isnan(vb) && ia < ib;
    if (isnan(vb)) return true;
    return va > vb || (va == vb && ia < ib);
}

#define TOPK_MAX MREC_TOPK_GPU_MAX

/* The better of two (value, column) candidates, column -1 for none; the
 * order is total, so every lane of a butterfly ends on the same one. */
__device__ static void keep_better(float &v, int &i, int &t, float ov, int oi, int ot) {
    if (oi >= 0 && (i < 0 || ranks_before(ov, oi, v, i))) v = ov, i = oi, t = ot;
}

__device__ static void warp_best(float &v, int &i, int &t) {
    for (int o = 16; o > 0; o >>= 1)
        keep_better(v, i, t, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o),
                    __shfl_xor_sync(0xffffffffu, t, o));
}

/* The best of the block's candidates, one a thread (column -1 for none): a
 * butterfly in each warp, then one over the warps' bests, two block barriers.
 * Thread 0 writes it to *idx, *val; every thread gets the winner's number. */
__device__ static int block_best(float v, int i, int32_t *idx, float *val) {
    __shared__ float wv[THREADS / 32];
    __shared__ int wi[THREADS / 32], wt[THREADS / 32], winner;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int t = threadIdx.x;
    warp_best(v, i, t);
    if (lane == 0) wv[warp] = v, wi[warp] = i, wt[warp] = t;
    __syncthreads();
    if (warp == 0) {
        v = lane < THREADS / 32 ? wv[lane] : NAN, i = lane < THREADS / 32 ? wi[lane] : -1;
        t = lane < THREADS / 32 ? wt[lane] : -1;
        warp_best(v, i, t);
        if (lane == 0) *idx = i, *val = v, winner = t;
    }
    __syncthreads();
    return winner; /* read by all before any thread's next call can write it (after that call's first barrier) */
}

/* One block per row. Each thread keeps the best k of its strided columns,
 * sorted, in local memory; then k rounds pick the best of the threads' list
 * heads, in order (block_best: two block barriers a round; a shared-memory
 * tree took sixteen). */
__global__ static void topk_kernel(int32_t *idx, float *val, const float *scores, int C, int k) {
    const float *s = scores + (size_t)blockIdx.x * C;
    float lv[TOPK_MAX];
    int li[TOPK_MAX];
    int n = 0;
    for (int c = threadIdx.x; c < C; c += THREADS) {
        float v = s[c];
        if (n == k && !ranks_before(v, c, lv[k - 1], li[k - 1])) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && ranks_before(v, c, lv[j - 1], li[j - 1])) lv[j] = lv[j - 1], li[j] = li[j - 1], j--;
        lv[j] = v, li[j] = c;
    }
    for (int out = 0, head = 0; out < k; out++) {
        size_t at = (size_t)blockIdx.x * k + out;
        if (block_best(head < n ? lv[head] : NAN, head < n ? li[head] : -1, idx + at, val + at) == (int)threadIdx.x) head++;
    }
}

/* a ranks before b, an empty slot (column -1) after everything */
__device__ static bool better(float va, int ia, float vb, int ib) {
    return ia >= 0 && (ib < 0 || ranks_before(va, ia, vb, ib));
}

/* k <= 32, as evaluation asks (top 10, 20): each thread's best 32 columns in
 * registers, sorted, every index a constant once unrolled. The list above
 * lives in local memory, a kilobyte a thread, and its inserts went out to
 * L2: 0.23x PyTorch's torch.topk on Gowalla's scores. A column that ranks
 * before a thread's 32nd is carried down the list by compare-and-swap; the
 * merge takes the winner's head and shifts its list up. One block a row. */
__device__ static void topk32_row(int32_t *idx, float *val, const float *s, int C, int k) {
    float lv[32];
    int li[32];
#pragma unroll
    for (int j = 0; j < 32; j++) lv[j] = NAN, li[j] = -1;
    for (int c = threadIdx.x; c < C; c += THREADS) {
        float v = s[c];
        int ci = c;
        if (!better(v, ci, lv[31], li[31])) continue;
#pragma unroll
        for (int j = 0; j < 32; j++)
            if (better(v, ci, lv[j], li[j])) {
                float tv = lv[j];
                int ti = li[j];
                lv[j] = v, li[j] = ci, v = tv, ci = ti;
            }
    }
    for (int out = 0; out < k; out++) {
        if (block_best(lv[0], li[0], idx + out, val + out) == (int)threadIdx.x) {
#pragma unroll
            for (int j = 0; j < 31; j++) lv[j] = lv[j + 1], li[j] = li[j + 1];
            lv[31] = NAN, li[31] = -1;
        }
    }
}

__global__ static void __launch_bounds__(THREADS) topk32_kernel(int32_t *idx, float *val, const float *scores, int C, int k) {
    topk32_row(idx + (size_t)blockIdx.x * k, val + (size_t)blockIdx.x * k, scores + (size_t)blockIdx.x * C, C, k);
}

/* Rows of at least THREADS columns, k <= 32 (evaluation's): a filter first. Each thread's best column is one
 * element, so the k-th best of the THREADS threads' bests, T, has at least k columns ranking at or before it:
 * the top k are among those. A second read of the row (from L2, mostly) gathers them into shared memory, and each
 * candidate's place is the count of candidates ranking before it. On a row of scores that is a few dozen
 * candidates, where topk32_row's every column ran its 32 compare-and-swaps (every warp had a lane inserting,
 * with 160 columns a thread on Gowalla's rows): 2.0 ms for 1024 x 40,981 on an H100, 82 GB/s. A row whose
 * candidates overflow (its best columns gathered on few threads) falls back to topk32_row. */
#define TOPK_CANDIDATES 1024
__global__ static void __launch_bounds__(THREADS) topk_filter_kernel(int32_t *idx, float *val, const float *scores, int C, int k) {
    __shared__ float cv[TOPK_CANDIDATES], mv[THREADS];
    __shared__ int ci[TOPK_CANDIDATES], mi[THREADS], count, ti;
    __shared__ float tv;
    const float *s = scores + (size_t)blockIdx.x * C;
    idx += (size_t)blockIdx.x * k, val += (size_t)blockIdx.x * k;
    const int t = threadIdx.x;
    float bv = NAN;
    int bi = -1;
    for (int c = t; c < C; c += THREADS) {
        float v = s[c];
        if (better(v, c, bv, bi)) bv = v, bi = c;
    }
    mv[t] = bv, mi[t] = bi;
    if (t == 0) count = 0;
    __syncthreads();
    int rank = 0; /* among the threads' bests, all real (C >= THREADS); the order is total, so one thread has k - 1 */
    for (int j = 0; j < THREADS; j++) rank += better(mv[j], mi[j], bv, bi);
    if (rank == k - 1) tv = bv, ti = bi;
    __syncthreads();
    const float Tv = tv;
    const int Ti = ti;
    for (int c = t; c < C; c += THREADS) {
        float v = s[c];
        if (!better(Tv, Ti, v, c)) {
            int slot = atomicAdd(&count, 1);
            if (slot < TOPK_CANDIDATES) cv[slot] = v, ci[slot] = c;
        }
    }
    __syncthreads();
    const int n = count;
    if (n > TOPK_CANDIDATES) { /* the same for every thread of the block */
        topk32_row(idx, val, s, C, k);
        return;
    }
    for (int a = t; a < n; a += THREADS) {
        int r = 0;
        for (int j = 0; j < n; j++) r += better(cv[j], ci[j], cv[a], ci[a]);
        if (r < k) idx[r] = ci[a], val[r] = cv[a];
    }
}

/* idx, val: (R, k); scores: (R, C); k <= min(C, 128) */
extern "C" mrec_status mrec_topk_rows_cuda(int32_t *idx, float *val, const float *scores, int R, int C, int k,
                                           mrec_cuda *cu) {
    if (R <= 0 || k <= 0) return MREC_OK;
    if (k > C) return mrec_fail(MREC_ERR_ARG, "topk: k %d is larger than the row (%d)", k, C);
    if (k > TOPK_MAX) return mrec_fail(MREC_ERR_UNSUPPORTED, "topk on the GPU: k %d is above %d", k, TOPK_MAX);
    if (k <= 32 && C >= THREADS) topk_filter_kernel<<<R, THREADS, 0, cu->stream>>>(idx, val, scores, C, k);
    else if (k <= 32) topk32_kernel<<<R, THREADS, 0, cu->stream>>>(idx, val, scores, C, k);
    else topk_kernel<<<R, THREADS, 0, cu->stream>>>(idx, val, scores, C, k);
    return MREC_CUDA_LAUNCHED("topk_rows");
}

/* The kNN graph's selection on the GPU: x (n, dim), idx and val (n, k) are
 * host memory, as for mrec_gram_topk_cpu (the graph is built once, before
 * training). x goes up once (its rows made unit there when asked: one
 * host thread took longer over them than the GPU over all the rest); S =
 * x x^T is made a block of rows at a time (cuBLAS, fp32) and each block
 * reduced to its rows' top k by the kernels above, so the device holds a
 * block of S, never all of it; the lists come
 * back once at the end. A row's top k is that of its whole row of S, ties to
 * the lower column, NaN last; the products' rounding is cuBLAS's, so a
 * near-tie may fall the other way from the CPU's. */
#define GRAM_BLOCK_BYTES ((size_t)256 << 20)

/* x (n, dim) in place: each row divided by its norm as mrec_unit_rows_ref (the sum of squares in double, so the
 * same floats as the host's: the squares are exact in double and the sums differ by their order alone). A warp
 * a row. */
__global__ static void unit_rows_kernel(float *x, int64_t n, int dim) {
    const int lane = threadIdx.x & 31;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; r < n; r += (int64_t)gridDim.x * blockDim.x / 32) {
        float *row = x + r * dim;
        double s = 0;
        for (int d = lane; d < dim; d += 32) s += (double)row[d] * row[d];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int d = lane; d < dim; d += 32) row[d] *= inv;
    }
}

extern "C" mrec_status mrec_gram_topk_cuda(int32_t *idx, float *val, const float *x, int n, int dim, int k, int unit_rows,
                                           mrec_cuda *cu) {
    if (n <= 0 || k <= 0) return MREC_OK;
    if (k > n) return mrec_fail(MREC_ERR_ARG, "gram top-k: k = %d of %d rows", k, n);
    if (k > TOPK_MAX) return mrec_fail(MREC_ERR_UNSUPPORTED, "gram top-k on the GPU: k %d is above %d", k, TOPK_MAX);
    size_t rows = GRAM_BLOCK_BYTES / (sizeof(float) * (size_t)n);
    int block = rows < 1 ? 1 : rows > (size_t)n ? n : (int)rows;
    float *dx = NULL, *ds = NULL, *dv = NULL;
    int32_t *di = NULL;
    mrec_status st = mrec_cuda_malloc(cu, (void **)&dx, sizeof(float) * (size_t)n * dim);
    if (!st) st = mrec_cuda_malloc(cu, (void **)&ds, sizeof(float) * (size_t)block * n);
    if (!st) st = mrec_cuda_malloc(cu, (void **)&di, sizeof(int32_t) * (size_t)n * k);
    if (!st) st = mrec_cuda_malloc(cu, (void **)&dv, sizeof(float) * (size_t)n * k);
    if (!st) st = mrec_cuda_copy_h2d(cu, dx, x, sizeof(float) * (size_t)n * dim);
    if (!st && unit_rows) {
        unit_rows_kernel<<<mrec_grid((int64_t)n * 32, THREADS), THREADS, 0, cu->stream>>>(dx, n, dim);
        st = MREC_CUDA_LAUNCHED("gram top-k: unit rows");
    }
    for (int r0 = 0; r0 < n && !st; r0 += block) {
        int r = n - r0 < block ? n - r0 : block;
        st = mrec_gemm_cuda(ds, dx + (size_t)r0 * dim, dx, NULL, 1.0f, 0.0f, 0, 1, r, n, dim, dim, dim, n, cu);
        if (!st) st = mrec_topk_rows_cuda(di + (size_t)r0 * k, dv + (size_t)r0 * k, ds, r, n, k, cu);
    }
    if (!st) st = mrec_cuda_copy_d2h(cu, idx, di, sizeof(int32_t) * (size_t)n * k);
    if (!st && val) st = mrec_cuda_copy_d2h(cu, val, dv, sizeof(float) * (size_t)n * k);
    mrec_cuda_free(cu, dx), mrec_cuda_free(cu, ds), mrec_cuda_free(cu, di), mrec_cuda_free(cu, dv);
    return st;
}

/* ---- batchnorm and pooling (NCHW) ----------------------------------------------- */

__global__ static void batchnorm_kernel(float *out, const float *in, const float *gamma, const float *beta,
                                        const float *mean, const float *var, float eps, int C, int HW, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int c = (int)((i / HW) % C);
        out[i] = (in[i] - mean[c]) * rsqrtf(var[c] + eps) * gamma[c] + beta[c];
    }
}

/* out, in: (N, C, HW); gamma, beta, mean, var: (C) */
extern "C" mrec_status mrec_batchnorm_cuda(float *out, const float *in, const float *gamma, const float *beta,
                                           const float *mean, const float *var, float eps, int N, int C, int HW,
                                           mrec_cuda *cu) {
    int64_t n = (int64_t)N * C * HW;
    if (n <= 0) return MREC_OK;
    batchnorm_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, in, gamma, beta, mean, var, eps, C, HW, n);
    return MREC_CUDA_LAUNCHED("batchnorm");
}

__global__ static void pool2d_kernel(float *out, const float *in, mrec_pool2d_shape s, int Ho, int Wo, int is_max) {
    int64_t n = (int64_t)s.N * s.C * Ho * Wo;
    for (int64_t at = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; at < n; at += (int64_t)gridDim.x * blockDim.x) {
        int ow = (int)(at % Wo), oh = (int)(at / Wo % Ho);
        int64_t nc = at / ((int64_t)Wo * Ho);
        float acc = is_max ? -INFINITY : 0.0f;
        int count = 0;
        for (int kh = 0; kh < s.KH; kh++)
            for (int kw = 0; kw < s.KW; kw++) {
                int ih = oh * s.stride_h - s.pad_h + kh, iw = ow * s.stride_w - s.pad_w + kw;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) {
                    count += s.count_include_pad;
                    continue;
                }
                float x = in[((size_t)nc * s.H + ih) * s.W + iw];
                if (is_max) acc = (x > acc || isnan(x)) ? x : acc; /* NaN wins, as in PyTorch */
                else acc += x, count++;
            }
        out[at] = is_max ? acc : acc / count;
    }
}

static mrec_status pool2d_cuda(float *out, const float *in, const mrec_pool2d_shape *s, int is_max, mrec_cuda *cu) {
    int Ho = mrec_pool2d_out_h(s), Wo = mrec_pool2d_out_w(s);
    if (Ho <= 0 || Wo <= 0) return mrec_fail(MREC_ERR_SHAPE, "pool2d: the window does not fit the input");
    int64_t n = (int64_t)s->N * s->C * Ho * Wo;
    if (n <= 0) return MREC_OK;
    pool2d_kernel<<<mrec_grid(n, THREADS), THREADS, 0, cu->stream>>>(out, in, *s, Ho, Wo, is_max);
    return MREC_CUDA_LAUNCHED(is_max ? "maxpool2d" : "avgpool2d");
}

/* out: (N, C, Ho, Wo); in: (N, C, H, W) */
extern "C" mrec_status mrec_maxpool2d_cuda(float *out, const float *in, const mrec_pool2d_shape *s, mrec_cuda *cu) {
    return pool2d_cuda(out, in, s, 1, cu);
}

extern "C" mrec_status mrec_avgpool2d_cuda(float *out, const float *in, const mrec_pool2d_shape *s, mrec_cuda *cu) {
    return pool2d_cuda(out, in, s, 0, cu);
}

/* ---- sparse ----------------------------------------------------------------- */

/* One warp per row, lanes across D; each output is summed over the row's
 * entries in order, so the result is deterministic (no atomics). Rows in a
 * grid-stride loop: the grid is capped at 2^21 blocks (16.7M rows). The
 * general form, for widths the vector form below does not take. */
__global__ static void spmm_kernel(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                                   const float *X, int R, int D, float *total, const float *total_in, float scale) {
    int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
    int lane = threadIdx.x & 31;
    for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; r < R; r += warps) {
        int64_t lo = row_ptr[r], hi = row_ptr[r + 1];
        for (int d = lane; d < D; d += 32) {
            float sum = 0.0f;
            for (int64_t e = lo; e < hi; e++) sum = __fmaf_rn(val ? val[e] : 1.0f, X[(size_t)col[e] * D + d], sum); /* as spmm_run */
            size_t at = (size_t)r * D + d;
            out[at] = sum;
            if (total) total[at] = __fmul_rn(__fadd_rn(total_in[at], sum), scale);
        }
    }
}

/* The layer sum's slice: (s + o) * scale, an add and then a scaling, each rounded. */
__device__ __forceinline__ static float4 layer_sum(float4 s, float4 o, float scale) {
    return make_float4(__fmul_rn(__fadd_rn(s.x, o.x), scale), __fmul_rn(__fadd_rn(s.y, o.y), scale),
                       __fmul_rn(__fadd_rn(s.z, o.z), scale), __fmul_rn(__fadd_rn(s.w, o.w), scale));
}

/* The same sums for D a multiple of 4 (recommenders' embeddings: 64 wide),
 * G lanes a row, each lane CH float4 slices of it. In the kernel above each
 * lane walked the row's entries alone, a load of the entry before each load
 * of X, and a 64-wide row twice: latency, not bandwidth, set its pace. Here
 * the group reads G entries at once (one coalesced load), hands each one's
 * column and value round by shuffles, and the X loads of several entries
 * are in flight together. Each output is summed over the entries in order,
 * one fused multiply-add after another, as in the kernel above.
 *
 * A block owns THREADS / G consecutive rows. A row of more than 8 G entries
 * (Gowalla's most connected items have 1,415) would keep its group, and its
 * block, busy long after the rest: the whole block takes such a row after
 * its short ones, each group one of THREADS / G equal runs of its entries,
 * and the runs' sums are added in run order. Those rows' bits differ from
 * one sum in order, and depend on nothing but the row's length. */
template <int G, int CH>
__device__ __forceinline__ static void spmm_run(float4 acc[CH], int64_t lo, int64_t hi, const int32_t *col, const float *val, const float4 *X,
                                int D4, const int slice[CH], int sub, unsigned mask) {
#pragma unroll
    for (int k = 0; k < CH; k++) acc[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int64_t e0 = lo; e0 < hi; e0 += G) {
        int n = hi - e0 < G ? (int)(hi - e0) : G, c = 0;
        float v = 1.0f;
        if (sub < n) c = __ldg(col + e0 + sub), v = val ? __ldg(val + e0 + sub) : 1.0f;
#pragma unroll 8
        for (int j = 0; j < n; j++) {
            int cj = __shfl_sync(mask, c, j, G);
            float vj = __shfl_sync(mask, v, j, G);
            const float4 *x = X + (size_t)cj * D4;
#pragma unroll
            for (int k = 0; k < CH; k++) {
                float4 xv = __ldg(x + slice[k]);
                acc[k].x = fmaf(vj, xv.x, acc[k].x), acc[k].y = fmaf(vj, xv.y, acc[k].y);
                acc[k].z = fmaf(vj, xv.z, acc[k].z), acc[k].w = fmaf(vj, xv.w, acc[k].w);
            }
        }
    }
}

template <int G, int CH>
__global__ static void spmm_vec4_kernel(float4 *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                                        const float4 *X, int R, int D4, float4 *total, const float4 *total_in, float scale) {
    constexpr int ROWS = THREADS / G, LONG = 8 * G;
    extern __shared__ float4 runs[]; /* (ROWS, D4): a long row's run sums, a group's each */
    const int lane = threadIdx.x & 31, sub = lane & (G - 1), group = threadIdx.x / G;
    const unsigned mask = G == 32 ? 0xffffffffu : ((1u << G) - 1) << (lane - sub);
    /* a lane past the row's end reads the last slice again and stores nothing: no branch between the loads */
    int slice[CH];
#pragma unroll
    for (int k = 0; k < CH; k++) slice[k] = sub + k * G < D4 ? sub + k * G : D4 - 1;
    float4 acc[CH];
    for (int64_t r0 = (int64_t)blockIdx.x * ROWS; r0 < R; r0 += (int64_t)gridDim.x * ROWS) {
        int64_t r = r0 + group;
        if (r < R && row_ptr[r + 1] - row_ptr[r] <= LONG) {
            spmm_run<G, CH>(acc, row_ptr[r], row_ptr[r + 1], col, val, X, D4, slice, sub, mask);
#pragma unroll
            for (int k = 0; k < CH; k++)
                if (sub + k * G < D4) {
                    size_t at = (size_t)r * D4 + sub + k * G;
                    out[at] = acc[k];
                    if (total) total[at] = layer_sum(total_in[at], acc[k], scale);
                }
        }
        /* the long rows, every thread of the block on each (the test is the same for all: the barriers are reached
         * by all or none) */
        for (int64_t q = r0; q < r0 + ROWS && q < R; q++) {
            int64_t lo = row_ptr[q], hi = row_ptr[q + 1];
            if (hi - lo <= LONG) continue;
            int64_t len = (hi - lo + ROWS - 1) / ROWS, a = lo + group * len < hi ? lo + group * len : hi;
            spmm_run<G, CH>(acc, a, a + len < hi ? a + len : hi, col, val, X, D4, slice, sub, mask);
#pragma unroll
            for (int k = 0; k < CH; k++)
                if (sub + k * G < D4) runs[group * D4 + sub + k * G] = acc[k];
            __syncthreads();
            for (int d = threadIdx.x; d < D4; d += THREADS) {
                float4 t = runs[d];
                for (int g = 1; g < ROWS; g++) {
                    float4 u = runs[g * D4 + d];
                    t.x += u.x, t.y += u.y, t.z += u.z, t.w += u.w;
                }
                out[(size_t)q * D4 + d] = t;
                if (total) total[(size_t)q * D4 + d] = layer_sum(total_in[(size_t)q * D4 + d], t, scale);
            }
            __syncthreads();
        }
    }
}

template <int G, int CH>
static void spmm_vec4(float *out, const int64_t *row_ptr, const int32_t *col, const float *val, const float *X, int R, int D,
                      float *total, const float *total_in, float scale, mrec_cuda *cu) {
    size_t shared = sizeof(float4) * (THREADS / G) * (size_t)(D / 4);
    spmm_vec4_kernel<G, CH><<<mrec_grid((int64_t)R * G, THREADS), THREADS, shared, cu->stream>>>(
        (float4 *)out, row_ptr, col, val, (const float4 *)X, R, D / 4, (float4 *)total, (const float4 *)total_in, scale);
}

/* The vector form's lanes a row and slices a lane for D4 float4s (0: the general form): a whole warp from
 * 32 slices up, at most 4 slices a lane. */
static int spmm_vec4_plan(int D, const void *out, const void *X, const void *total, const void *total_in, int *lanes) {
    if (D % 4 || ((uintptr_t)out | (uintptr_t)X | (uintptr_t)total | (uintptr_t)total_in) % 16) return 0;
    int D4 = D / 4, G = 4;
    while (G < 32 && G < D4) G *= 2;
    int ch = (D4 + G - 1) / G;
    if (ch > 4) return 0;
    *lanes = G;
    return ch == 3 ? 4 : ch;
}

/* out: (R, D) = A (R, Cc) @ X (Cc, D), then total = (total_in + out) * scale where total is not NULL (a graph
 * model's layer sum, mrec_spmm_sum_cpu's contract). */
extern "C" mrec_status mrec_spmm_sum_cuda(float *out, float *total, const float *total_in, float scale, const int64_t *row_ptr,
                                          const int32_t *col, const float *val, const float *X, int R, int Cc, int D, mrec_cuda *cu) {
    (void)Cc;
    if (R <= 0 || D <= 0) return MREC_OK;
    int G = 0, ch = spmm_vec4_plan(D, out, X, total, total_in, &G);
    switch (ch * 100 + G) {
    case 104: spmm_vec4<4, 1>(out, row_ptr, col, val, X, R, D, total, total_in, scale, cu); break;
    case 108: spmm_vec4<8, 1>(out, row_ptr, col, val, X, R, D, total, total_in, scale, cu); break;
    case 116: spmm_vec4<16, 1>(out, row_ptr, col, val, X, R, D, total, total_in, scale, cu); break;
    case 132: spmm_vec4<32, 1>(out, row_ptr, col, val, X, R, D, total, total_in, scale, cu); break;
    case 232: spmm_vec4<32, 2>(out, row_ptr, col, val, X, R, D, total, total_in, scale, cu); break;
    case 432: spmm_vec4<32, 4>(out, row_ptr, col, val, X, R, D, total, total_in, scale, cu); break;
    default:
        spmm_kernel<<<mrec_grid((int64_t)R * 32, THREADS), THREADS, 0, cu->stream>>>(out, row_ptr, col, val, X, R, D, total, total_in,
                                                                                      scale);
    }
    return MREC_CUDA_LAUNCHED("spmm");
}

/* out: (R, D) = A (R, Cc) @ X (Cc, D); A in CSR. The transposed product runs
 * as this one on A's transpose (kept by the caller, built once per graph):
 * a scatter with atomics would make the sums depend on timing. */
extern "C" mrec_status mrec_spmm_cuda(float *out, const int64_t *row_ptr, const int32_t *col, const float *val,
                                      const float *X, int R, int Cc, int D, mrec_cuda *cu) {
    return mrec_spmm_sum_cuda(out, NULL, NULL, 1.0f, row_ptr, col, val, X, R, Cc, D, cu);
}

/* ---- optimizer ------------------------------------------------------------------ */

/* One parameter's step: mrec_adam_cpu's arithmetic in its order (torch's step_size * m / (sqrt(v) / bias2_sqrt +
 * eps)), each operation rounded on its own so that nvcc contracts nothing into an FMA: the CPU's bits. */
__device__ __forceinline__ static void adam_one(float &p, float &mi, float &vi, float grad, float beta1, float beta2, float eps,
                                                float wd, float step_size, float bias2_sqrt) {
    float g = __fadd_rn(grad, __fmul_rn(wd, p));
    mi = __fadd_rn(__fmul_rn(beta1, mi), __fmul_rn(1.0f - beta1, g));
    vi = __fadd_rn(__fmul_rn(beta2, vi), __fmul_rn(__fmul_rn(1.0f - beta2, g), g));
    p = __fsub_rn(p, __fdiv_rn(__fmul_rn(step_size, mi), __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bias2_sqrt), eps)));
}

/* Four parameters a thread in 16-byte loads and stores where the four arrays are 16-byte aligned (vec), then the
 * n % 4 past the last four (or all n otherwise) one a thread: it reads four arrays and writes three over a whole
 * table each step. The step's factors (mrec_adam_factors) come as values, or from k (2) in device memory where k is
 * given, read when the kernel runs (a replayed graph's step takes its own). */
__global__ static void adam_kernel(float *param, float *m, float *v, const float *grad, const float *k, float step_size,
                                   float bias2_sqrt, float beta1, float beta2, float eps, float wd, int64_t n, int vec) {
    const int64_t first = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, stride = (int64_t)gridDim.x * blockDim.x;
    const int64_t n4 = vec ? n / 4 : 0;
    if (k) step_size = k[0], bias2_sqrt = k[1];
    for (int64_t i = first; i < n4; i += stride) {
        float4 p = ((float4 *)param)[i], mi = ((float4 *)m)[i], vi = ((float4 *)v)[i], g = ((const float4 *)grad)[i];
        adam_one(p.x, mi.x, vi.x, g.x, beta1, beta2, eps, wd, step_size, bias2_sqrt);
        adam_one(p.y, mi.y, vi.y, g.y, beta1, beta2, eps, wd, step_size, bias2_sqrt);
        adam_one(p.z, mi.z, vi.z, g.z, beta1, beta2, eps, wd, step_size, bias2_sqrt);
        adam_one(p.w, mi.w, vi.w, g.w, beta1, beta2, eps, wd, step_size, bias2_sqrt);
        ((float4 *)param)[i] = p, ((float4 *)m)[i] = mi, ((float4 *)v)[i] = vi;
    }
    for (int64_t i = 4 * n4 + first; i < n; i += stride)
        adam_one(param[i], m[i], v[i], grad[i], beta1, beta2, eps, wd, step_size, bias2_sqrt);
}

static mrec_status adam_launch(float *param, float *m, float *v, const float *grad, const float *k, float step_size,
                               float bias2_sqrt, float beta1, float beta2, float eps, float wd, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    int vec = aligned16(param, m, v) && aligned16(grad, grad, grad);
    adam_kernel<<<mrec_grid(vec ? (n + 3) / 4 : n, THREADS), THREADS, 0, cu->stream>>>(param, m, v, grad, k, step_size, bias2_sqrt,
                                                                                     beta1, beta2, eps, wd, n, vec);
    return MREC_CUDA_LAUNCHED("adam");
}

/* param, m, v, grad: (n) */
extern "C" mrec_status mrec_adam_cuda(float *param, float *m, float *v, const float *grad, float lr, float beta1,
                                      float beta2, float eps, float weight_decay, int64_t step, int64_t n,
                                      mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    if (step < 1) return mrec_fail(MREC_ERR_ARG, "adam: step %lld (steps count from 1)", (long long)step);
    float k[2];
    mrec_adam_factors(k, lr, beta1, beta2, step);
    return adam_launch(param, m, v, grad, NULL, k[0], k[1], beta1, beta2, eps, weight_decay, n, cu);
}

extern "C" mrec_status mrec_adam_at_cuda(float *param, float *m, float *v, const float *grad, const float *k, float beta1,
                                         float beta2, float eps, float weight_decay, int64_t n, mrec_cuda *cu) {
    return adam_launch(param, m, v, grad, k, 0.0f, 1.0f, beta1, beta2, eps, weight_decay, n, cu);
}
