/* depthwise.cu: depthwise convolution with per-side padding and the channel
 * ops of squeeze-excite on the GPU (contracts: mrec_kernels.h; CPU versions
 * and references: kernels/cpu/depthwise.c).
 *
 * The depthwise conv is memory-bound (KH*KW multiply-adds per output), so
 * one thread computes one output from the input in global memory, read
 * through the read-only cache, its channel's taps in the same (kh, kw) order
 * as the CPU. Consecutive threads are consecutive columns of a row, so the
 * loads of a tap coalesce. The row mean gives each row one block that sums
 * in a fixed tree (deterministic, no atomics).
 */
#include "cuda_internal.h"

/* out (N, C, Ho, Wo); in (N, C, H, W); weight (C, KH, KW); bias (C) or NULL; act < 0: none, else an
 * mrec_act taken on each sum before its store */
__global__ static void depthwise_kernel(float *__restrict__ out, const float *__restrict__ in,
                                        const float *__restrict__ weight, const float *__restrict__ bias,
                                        mrec_depthwise_shape s, int Ho, int Wo, int64_t n, int act) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int ow = (int)(i % Wo);
        int oh = (int)(i / Wo % Ho);
        int64_t plane = i / ((int64_t)Wo * Ho);
        int c = (int)(plane % s.C);
        const float *x = in + plane * s.H * s.W;
        const float *w = weight + (size_t)c * s.KH * s.KW;
        float acc = bias ? __ldg(bias + c) : 0.0f;
        for (int kh = 0; kh < s.KH; kh++) {
            int ih = oh * s.stride_h - s.pad_top + kh;
            if (ih < 0 || ih >= s.H) continue;
            for (int kw = 0; kw < s.KW; kw++) {
                int iw = ow * s.stride_w - s.pad_left + kw;
                if (iw < 0 || iw >= s.W) continue;
                acc = fmaf(__ldg(w + kh * s.KW + kw), __ldg(x + (size_t)ih * s.W + iw), acc);
            }
        }
        out[i] = act < 0 ? acc : mrec_activate(acc, (mrec_act)act, 0.0f);
    }
}

static mrec_status depthwise(float *out, const float *in, const float *weight, const float *bias, int act,
                             const mrec_depthwise_shape *s, mrec_cuda *cu) {
    int Ho = mrec_depthwise_out_h(s), Wo = mrec_depthwise_out_w(s);
    int64_t n = (int64_t)s->N * s->C * Ho * Wo;
    if (n <= 0) return MREC_OK;
    depthwise_kernel<<<mrec_grid(n, 256), 256, 0, cu->stream>>>(out, in, weight, bias, *s, Ho, Wo, n, act);
    return MREC_CUDA_LAUNCHED("depthwise conv2d");
}

extern "C" mrec_status mrec_depthwise_conv2d_cuda(float *out, const float *in, const float *weight, const float *bias,
                                                  const mrec_depthwise_shape *s, mrec_cuda *cu) {
    return depthwise(out, in, weight, bias, -1, s, cu);
}

extern "C" mrec_status mrec_depthwise_conv2d_act_cuda(float *out, const float *in, const float *weight, const float *bias,
                                                      mrec_act act, float *means, const mrec_depthwise_shape *s, mrec_cuda *cu) {
    mrec_status st = depthwise(out, in, weight, bias, (int)act, s, cu);
    if (!st && means)
        st = mrec_row_mean_cuda(means, out, s->N * s->C, mrec_depthwise_out_h(s) * mrec_depthwise_out_w(s), cu);
    return st;
}

/* one block of 256 threads per row: strided partial sums, then a tree */
__global__ static void row_mean_kernel(float *out, const float *in, int R, int HW) {
    __shared__ float part[256];
    for (int r = blockIdx.x; r < R; r += gridDim.x) {
        const float *x = in + (size_t)r * HW;
        float acc = 0.0f;
        for (int i = threadIdx.x; i < HW; i += blockDim.x) acc += x[i];
        part[threadIdx.x] = acc;
        __syncthreads();
        for (int half = blockDim.x / 2; half > 0; half /= 2) {
            if ((int)threadIdx.x < half) part[threadIdx.x] += part[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0) out[r] = part[0] / (float)HW;
        __syncthreads();
    }
}

extern "C" mrec_status mrec_row_mean_cuda(float *out, const float *in, int R, int HW, mrec_cuda *cu) {
    if (R <= 0) return MREC_OK;
    row_mean_kernel<<<(unsigned)(R < 65535 ? R : 65535), 256, 0, cu->stream>>>(out, in, R, HW);
    return MREC_CUDA_LAUNCHED("row mean");
}

__global__ static void sigmoid_gate_kernel(float *out, const float *in, const float *gate, int HW, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = gate[i / HW];
        out[i] = in[i] * (1.0f / (1.0f + expf(-g)));
    }
}

extern "C" mrec_status mrec_sigmoid_gate_rows_cuda(float *out, const float *in, const float *gate, int R, int HW,
                                                   mrec_cuda *cu) {
    int64_t n = (int64_t)R * HW;
    if (n <= 0) return MREC_OK;
    sigmoid_gate_kernel<<<mrec_grid(n, 256), 256, 0, cu->stream>>>(out, in, gate, HW, n);
    return MREC_CUDA_LAUNCHED("sigmoid gate");
}
