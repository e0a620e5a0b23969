/* conv.cu: 2-D convolution on the GPU through cuDNN, NCHW fp32 and
 * channels-last bf16, and the channels-last route's own small kernels.
 *
 * A convolution's descriptors and algorithm are made once per shape and
 * mode and kept in the device context (cuDNN's heuristic query costs
 * milliseconds, longer than most of ResNet's convolutions take to run).
 * Three modes: fp32 NCHW with FMA math, exact fp32 as the CPU reference;
 * fp32 NCHW on the tensor cores (TF32: the tf32 and bf16 precisions of
 * mrec_conv2d); bf16 NHWC (mrec_conv2d_nhwc_bf16: bf16 activations between
 * layers, the layout cuDNN's tensor-core kernels read without transposing).
 * The caller supplies the workspace, sized by the _workspace_bytes_cuda
 * entries for each shape, so a forward pass allocates nothing. A
 * convolution with a ReLU is one cuDNN call with its bias, its residual
 * (beta out added) and the ReLU where cuDNN has the fused form; elsewhere
 * the bias and activation are one pass over the output after cuDNN's. In
 * bf16 NHWC, the 1x1 convolutions without a residual and the stem are
 * cuBLASLt products instead, the bias and ReLU in their epilogue.
 */
#include "cuda_internal.h"

#include <cuda_bf16.h>
#include <string.h>

/* A plan's data and math (see the top of the file). */
enum { FP32_NCHW, TF32_NCHW, BF16_NHWC };

struct mrec_conv_plan {
    mrec_conv2d_shape s;
    int mode;
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t algo;
    size_t work; /* bytes of workspace the algorithm needs */
    /* the fused form (conv + beta out + bias, then ReLU, one cuDNN call): made on first use */
    cudnnTensorDescriptor_t bias;
    cudnnDataType_t bias_type; /* bf16 NHWC: bf16 first (as PyTorch passes it), then fp32 */
    cudnnActivationDescriptor_t relu;
    int unfused; /* cuDNN said no to the fused call for this shape: the two passes */
    /* bf16 NHWC, beta 0, as cuBLASLt products with the bias and ReLU in their epilogue (gemm_route): a 1x1
     * convolution with stride 1 is one product of the input's pixels as they lie (im2col_rows 0); a strided
     * 1x1, or a window over 8 input channels (a stem's 3 padded), an explicit im2col of im2col_rows output
     * pixels at a time and a product each. 0: cuDNN's (and always with beta 1: a block's residual). */
    int gemm_route;
    int64_t im2col_rows;
};

/* A stem's columns a chunk at a time: at most this many bytes of them */
#define IM2COL_BYTES ((size_t)32 << 20)
/* The most workspace a cuDNN algorithm may ask for: an FFT's can reach gigabytes, and the encoders' arenas
 * reserve it up front; the implicit GEMM the list falls back to needs none or little. */
#define CONV_WORK_MAX ((size_t)256 << 20)
typedef struct mrec_conv_plan conv_plan;

static void plan_free(conv_plan *p) {
    if (p->x) cudnnDestroyTensorDescriptor(p->x);
    if (p->y) cudnnDestroyTensorDescriptor(p->y);
    if (p->w) cudnnDestroyFilterDescriptor(p->w);
    if (p->conv) cudnnDestroyConvolutionDescriptor(p->conv);
    if (p->bias) cudnnDestroyTensorDescriptor(p->bias);
    if (p->relu) cudnnDestroyActivationDescriptor(p->relu);
}

void mrec_conv_plans_free(mrec_cuda *cu) {
    for (int i = 0; i < cu->n_conv_plans; i++) plan_free(&cu->conv_plans[i]);
    free(cu->conv_plans);
    cu->conv_plans = NULL, cu->n_conv_plans = cu->cap_conv_plans = 0;
}

static mrec_status plan_make(conv_plan *p, const mrec_conv2d_shape *s, int mode, mrec_cuda *cu) {
    memset(p, 0, sizeof *p);
    p->s = *s, p->mode = mode;
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    if (Ho <= 0 || Wo <= 0 || s->groups <= 0 || s->C_in % s->groups || s->C_out % s->groups)
        return mrec_fail(MREC_ERR_SHAPE, "conv2d: invalid shape (C_in %d, C_out %d, groups %d, kernel %dx%d on %dx%d)",
                         s->C_in, s->C_out, s->groups, s->KH, s->KW, s->H, s->W);
    cudnnMathType_t math = mode == FP32_NCHW ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
    /* the sizes go in as (n, c, h, w) whatever the format; the format sets the strides (NHWC filters: (k, r, s, c)) */
    cudnnTensorFormat_t format = mode == BF16_NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    cudnnDataType_t type = mode == BF16_NHWC ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    mrec_status st = mrec_cudnn_check(cudnnCreateTensorDescriptor(&p->x), "conv2d");
    if (!st) st = mrec_cudnn_check(cudnnCreateTensorDescriptor(&p->y), "conv2d");
    if (!st) st = mrec_cudnn_check(cudnnCreateFilterDescriptor(&p->w), "conv2d");
    if (!st) st = mrec_cudnn_check(cudnnCreateConvolutionDescriptor(&p->conv), "conv2d");
    if (!st) st = mrec_cudnn_check(cudnnSetTensor4dDescriptor(p->x, format, type, s->N, s->C_in, s->H, s->W), "conv2d input");
    if (!st) st = mrec_cudnn_check(cudnnSetTensor4dDescriptor(p->y, format, type, s->N, s->C_out, Ho, Wo), "conv2d output");
    if (!st) st = mrec_cudnn_check(cudnnSetFilter4dDescriptor(p->w, type, format, s->C_out, s->C_in / s->groups, s->KH, s->KW),
                                   "conv2d weight");
    /* Cross-correlation is what PyTorch's Conv2d computes; fp32 sums in every mode. */
    if (!st) st = mrec_cudnn_check(cudnnSetConvolution2dDescriptor(p->conv, s->pad_h, s->pad_w, s->stride_h,
                                                                   s->stride_w, 1, 1, CUDNN_CROSS_CORRELATION,
                                                                   CUDNN_DATA_FLOAT), "conv2d");
    if (!st) st = mrec_cudnn_check(cudnnSetConvolutionGroupCount(p->conv, s->groups), "conv2d groups");
    if (!st) st = mrec_cudnn_check(cudnnSetConvolutionMathType(p->conv, math), "conv2d math");
    if (!st) {
        cudnnConvolutionFwdAlgoPerf_t perf[8];
        int found = 0;
        st = mrec_cudnn_check(cudnnGetConvolutionForwardAlgorithm_v7(cu->dnn, p->x, p->w, p->conv, p->y, 8, &found,
                                                                     perf), "conv2d algorithm");
        /* the first that ran in the mode's math (TF32's fp32 data never down-converted to fp16) within the workspace cap */
        int pick = -1;
        for (int i = 0; !st && i < found && pick < 0; i++) {
            bool math_ok = mode == FP32_NCHW ? perf[i].mathType == CUDNN_FMA_MATH
                                             : mode == BF16_NHWC || perf[i].mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
            if (perf[i].status == CUDNN_STATUS_SUCCESS && math_ok && perf[i].memory <= CONV_WORK_MAX) pick = i;
        }
        /* None listed as FMA (a cuDNN may list its FMA algorithms under another math type): implicit GEMM runs
         * every fp32 shape, and the descriptor's FMA math type keeps tensor cores out. */
        if (!st) p->algo = pick >= 0 ? perf[pick].algo : mode == BF16_NHWC ? CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM
                                                                            : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
        /* the algorithm runs in the math type it was listed with (cuDNN picks its kernels by both) */
        if (!st && pick >= 0 && mode != FP32_NCHW)
            st = mrec_cudnn_check(cudnnSetConvolutionMathType(p->conv, perf[pick].mathType), "conv2d math");
    }
    if (!st) st = mrec_cudnn_check(cudnnGetConvolutionForwardWorkspaceSize(cu->dnn, p->x, p->w, p->conv, p->y, p->algo,
                                                                          &p->work), "conv2d workspace");
    /* ResNet50's 7x7 stem on its 3 channels padded to 8: cuDNN's heuristic gave an sm80 kernel that ran at 7 TFLOP/s on
     * an H200 (a quarter of the bf16 forward's kernel time at batch 32); its columns and a product move fewer bytes.
     * A 1x1 convolution is a product already; as one, a downsample's bias joins in the epilogue, where cuDNN's
     * unfused call left it to a pass of its own (9 % of that forward's kernel time). */
    int one_by_one = s->KH == 1 && s->KW == 1 && s->pad_h == 0 && s->pad_w == 0;
    if (!st && mode == BF16_NHWC && s->groups == 1 && s->C_in % 8 == 0 && (one_by_one || (s->C_in == 8 && s->KH * s->KW > 1))) {
        p->gemm_route = 1;
        if (!one_by_one || s->stride_h != 1 || s->stride_w != 1) {
            int64_t K = (int64_t)s->KH * s->KW * s->C_in, rows = (int64_t)s->N * Ho * Wo;
            int64_t most = (int64_t)(IM2COL_BYTES / (2 * (size_t)K));
            p->im2col_rows = rows < most ? rows : most > 0 ? most : 1;
            size_t bytes = (size_t)p->im2col_rows * K * 2;
            p->work = bytes > p->work ? bytes : p->work;
        }
    }
    if (st) plan_free(p);
    return st;
}

/* cuDNN has no fused kernel for this call (cuDNN 9 refines both codes into sub-codes, 3001 "shape", 3003 "data
 * type", 2008 "shape mismatch", ...: their category is what says so). */
static bool refused(cudnnStatus_t cs) {
#ifdef CUDNN_STATUS_CATEGORY
    int category = CUDNN_STATUS_CATEGORY((int)cs);
#else
    int category = (int)cs;
#endif
    return category == CUDNN_STATUS_NOT_SUPPORTED || category == CUDNN_STATUS_BAD_PARAM;
}

/* out = ReLU(conv(in) + beta out + bias) as one cuDNN call where it has one (a bottleneck's residual
 * convolution with beta 1, and in bf16 NHWC every convolution with a ReLU): the sum is not written out and
 * read back by a pass of its own. bias: fp32; bias16: its bf16 copy (bf16 NHWC). *done 0 (nothing written)
 * where cuDNN has no fused form for the shape, which the plan then remembers. */
static mrec_status fused_relu(conv_plan *p, void *out, const void *in, const void *weight, const float *bias, const uint16_t *bias16,
                              float beta, void *work, mrec_cuda *cu, int *done) {
    *done = 0;
    mrec_status st = MREC_OK;
    if (!p->relu) {
        st = mrec_cudnn_check(cudnnCreateTensorDescriptor(&p->bias), "conv2d bias");
        if (!st) st = mrec_cudnn_check(cudnnCreateActivationDescriptor(&p->relu), "conv2d relu");
        if (!st) st = mrec_cudnn_check(cudnnSetActivationDescriptor(p->relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0),
                                       "conv2d relu");
        p->bias_type = p->mode == BF16_NHWC ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
        if (!st) st = mrec_cudnn_check(cudnnSetTensor4dDescriptor(p->bias, p->mode == BF16_NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW,
                                                                  p->bias_type, 1, p->s.C_out, 1, 1), "conv2d bias");
        if (st) return st;
    }
    const float one = 1.0f; /* scaling factors are float for fp32 and bf16 data alike */
    while (!p->unfused) {
        const void *b = p->bias_type == CUDNN_DATA_BFLOAT16 ? (const void *)bias16 : (const void *)bias;
        /* z is out itself: its old values, beta times, join the sum before it is overwritten */
        cudnnStatus_t cs = cudnnConvolutionBiasActivationForward(cu->dnn, &one, p->x, in, p->w, weight, p->conv, p->algo, work, p->work,
                                                                 &beta, p->y, out, p->bias, b, p->relu, p->y, out);
        if (!refused(cs)) {
            st = mrec_cudnn_check(cs, "cudnnConvolutionBiasActivationForward");
            if (!st) *done = 1;
            return st;
        }
        /* refused: a bf16 bias may be the reason (then fp32), else no fused kernel for the shape, or a cuDNN that
         * will not take out as z too: the two passes, from now on */
        if (p->bias_type == CUDNN_DATA_BFLOAT16) {
            p->bias_type = CUDNN_DATA_FLOAT;
            st = mrec_cudnn_check(cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, p->s.C_out, 1, 1),
                                  "conv2d bias");
            if (st) return st;
        } else {
            p->unfused = 1;
        }
    }
    return MREC_OK;
}

/* The plan for a shape, made on first use. */
static mrec_status plan_get(conv_plan **out, const mrec_conv2d_shape *s, int mode, mrec_cuda *cu) {
    for (int i = 0; i < cu->n_conv_plans; i++)
        if (cu->conv_plans[i].mode == mode && !memcmp(&cu->conv_plans[i].s, s, sizeof *s))
            return *out = &cu->conv_plans[i], MREC_OK;
    if (cu->n_conv_plans == cu->cap_conv_plans) {
        int cap = cu->cap_conv_plans ? 2 * cu->cap_conv_plans : 32;
        conv_plan *grown = (conv_plan *)realloc(cu->conv_plans, sizeof *grown * cap);
        if (!grown) return mrec_fail(MREC_ERR_NOMEM, "conv2d: %d plans", cap);
        cu->conv_plans = grown, cu->cap_conv_plans = cap;
    }
    conv_plan *p = &cu->conv_plans[cu->n_conv_plans];
    mrec_status st = plan_make(p, s, mode, cu);
    if (st) return st;
    cu->n_conv_plans++;
    return *out = p, MREC_OK;
}

/* Bytes of workspace mrec_conv2d_cuda needs for this shape in this precision (may be 0). */
extern "C" mrec_status mrec_conv2d_workspace_bytes_cuda(size_t *bytes, const mrec_conv2d_shape *s, mrec_precision prec,
                                                        mrec_cuda *cu) {
    *bytes = 0;
    conv_plan *p;
    mrec_status st = plan_get(&p, s, prec == MREC_PREC_FP32 ? FP32_NCHW : TF32_NCHW, cu);
    if (!st) *bytes = p->work;
    return st;
}

/* out (N, C, HW) = act(out + bias[c]); act < 0: none. HW4 = HW / 4 when the planes are whole float4s. */
__global__ static void bias_act(float *out, const float *bias, int act, int C, int64_t HW, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = out[i] + (bias ? bias[(i / HW) % C] : 0.0f);
        out[i] = act < 0 ? v : mrec_activate(v, (mrec_act)act, 0.0f);
    }
}

__global__ static void bias_act4(float4 *out, const float *bias, int act, int C, int64_t HW4, int64_t n4) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
        float b = bias ? bias[(i / HW4) % C] : 0.0f;
        float4 v = out[i];
        v.x += b, v.y += b, v.z += b, v.w += b;
        if (act >= 0) {
            v.x = mrec_activate(v.x, (mrec_act)act, 0.0f), v.y = mrec_activate(v.y, (mrec_act)act, 0.0f);
            v.z = mrec_activate(v.z, (mrec_act)act, 0.0f), v.w = mrec_activate(v.w, (mrec_act)act, 0.0f);
        }
        out[i] = v;
    }
}

/* out = act(conv(in) + bias + beta out), act < 0 for none. out: (N, C_out, Ho, Wo); in: (N, C_in, H, W);
 * weight: (C_out, C_in / groups, KH, KW); bias: (C_out) or NULL; work: work_bytes of device memory
 * (mrec_conv2d_workspace_bytes_cuda). cuDNN blends beta out into its output itself. */
static mrec_status conv(float *out, const float *in, const float *weight, const float *bias, float beta, int act,
                        mrec_precision prec, void *work, size_t work_bytes, const mrec_conv2d_shape *s, mrec_cuda *cu) {
    if (s->N <= 0) return MREC_OK;
    conv_plan *p;
    mrec_status st = plan_get(&p, s, prec == MREC_PREC_FP32 ? FP32_NCHW : TF32_NCHW, cu);
    if (!st && p->work > work_bytes)
        st = mrec_fail(MREC_ERR_ARG, "conv2d: workspace of %zu bytes, %zu needed", work_bytes, p->work);
    if (!st && act == MREC_ACT_RELU && bias && beta != 0.0f) {
        int done = 0;
        st = fused_relu(p, out, in, weight, bias, NULL, beta, work, cu, &done);
        if (st || done) return st;
    }
    const float one = 1.0f;
    if (!st) st = mrec_cudnn_check(cudnnConvolutionForward(cu->dnn, &one, p->x, in, p->w, weight, p->conv, p->algo, work,
                                                           p->work, &beta, p->y, out), "cudnnConvolutionForward");
    if (st || (!bias && act < 0)) return st;
    int64_t HW = (int64_t)mrec_conv2d_out_h(s) * mrec_conv2d_out_w(s), n = (int64_t)s->N * s->C_out * HW;
    if (HW % 4 == 0 && ((uintptr_t)out & 15) == 0) {
        bias_act4<<<mrec_grid(n / 4, 256), 256, 0, cu->stream>>>((float4 *)out, bias, act, s->C_out, HW / 4, n / 4);
    } else {
        bias_act<<<mrec_grid(n, 256), 256, 0, cu->stream>>>(out, bias, act, s->C_out, HW, n);
    }
    return MREC_CUDA_LAUNCHED("conv2d bias and activation");
}

/* out = conv(in) + bias + beta out */
extern "C" mrec_status mrec_conv2d_cuda(float *out, const float *in, const float *weight, const float *bias, float beta,
                                        mrec_precision prec, void *work, size_t work_bytes, const mrec_conv2d_shape *s,
                                        mrec_cuda *cu) {
    return conv(out, in, weight, bias, beta, -1, prec, work, work_bytes, s, cu);
}

/* out = act(conv(in) + bias + beta out) */
extern "C" mrec_status mrec_conv2d_act_cuda(float *out, const float *in, const float *weight, const float *bias,
                                            float beta, mrec_act act, mrec_precision prec, void *work,
                                            size_t work_bytes, const mrec_conv2d_shape *s, mrec_cuda *cu) {
    return conv(out, in, weight, bias, beta, (int)act, prec, work, work_bytes, s, cu);
}

/* ---- channels-last bf16 ------------------------------------------------------ */

/* out (N, HW, C_pad) bf16 = in (N, C, HW): a thread a pixel, reading each channel's plane at its pixel
 * (neighbouring threads, neighbouring pixels) and writing the pixel's C_pad values together. */
__global__ static void nchw_to_nhwc_bf16(__nv_bfloat16 *out, const float *in, int C, int64_t HW, int C_pad, int64_t pixels) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < pixels; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = i / HW, p = i % HW;
        for (int c = 0; c < C_pad; c++)
            out[i * C_pad + c] = __float2bfloat16_rn(c < C ? in[(n * C + c) * HW + p] : 0.0f);
    }
}

extern "C" int mrec_cuda_bf16_native(const mrec_cuda *cu) { return cu->sm >= 80; }

/* The same for a stem's 3 channels padded to 8: each pixel's 8 values in one 16-byte store (out 16-byte aligned), where
 * 2-byte stores 16 bytes apart took 8 store instructions a warp each */
__global__ static void nchw3_to_nhwc8_bf16(uint4 *out, const float *in, int64_t HW, int64_t pixels) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < pixels; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t n = i / HW, p = i % HW;
        const float *x = in + n * 3 * HW + p;
        uint4 v;
        __nv_bfloat162 *h = (__nv_bfloat162 *)&v;
        h[0] = __floats2bfloat162_rn(x[0], x[HW]);
        h[1] = __floats2bfloat162_rn(x[2 * HW], 0.0f);
        h[2] = h[3] = __floats2bfloat162_rn(0.0f, 0.0f);
        out[i] = v;
    }
}

extern "C" mrec_status mrec_nhwc_bf16_from_nchw_cuda(uint16_t *out, const float *in, int N, int C, int HW, int C_pad, mrec_cuda *cu) {
    int64_t pixels = (int64_t)N * HW;
    if (pixels <= 0) return MREC_OK;
    if (C == 3 && C_pad == 8 && ((uintptr_t)out & 15) == 0)
        nchw3_to_nhwc8_bf16<<<mrec_grid(pixels, 256), 256, 0, cu->stream>>>((uint4 *)out, in, HW, pixels);
    else
        nchw_to_nhwc_bf16<<<mrec_grid(pixels, 256), 256, 0, cu->stream>>>((__nv_bfloat16 *)out, in, C, HW, C_pad, pixels);
    return MREC_CUDA_LAUNCHED("nhwc_bf16_from_nchw");
}

/* out (n values, channels-last, C a pixel) = [relu](out + bias[c]), rounded to bf16 again */
__global__ static void bias_act_nhwc(__nv_bfloat16 *out, const float *bias, int relu, int C, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = __bfloat162float(out[i]) + (bias ? bias[i % C] : 0.0f);
        out[i] = __float2bfloat16_rn(relu ? (v > 0.0f ? v : 0.0f) : v);
    }
}

/* The same, 8 channels a thread in one 16-byte load and store (C a multiple of 8, out 16-byte aligned): the
 * pass is bound by memory, and 2-byte accesses left most of its bandwidth unused. n8 = n / 8. */
__global__ static void bias_act_nhwc8(uint4 *out, const float *bias, int relu, int C, int64_t n8) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += (int64_t)gridDim.x * blockDim.x) {
        uint4 raw = out[i];
        __nv_bfloat162 *h = (__nv_bfloat162 *)&raw;
        int c0 = (int)(i * 8 % C);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float2 v = __bfloat1622float2(h[u]);
            if (bias) v.x += bias[c0 + 2 * u], v.y += bias[c0 + 2 * u + 1];
            if (relu) v.x = v.x > 0.0f ? v.x : 0.0f, v.y = v.y > 0.0f ? v.y : 0.0f;
            h[u] = __floats2bfloat162_rn(v.x, v.y);
        }
        out[i] = raw;
    }
}

extern "C" mrec_status mrec_conv2d_nhwc_bf16_workspace_bytes_cuda(size_t *bytes, const mrec_conv2d_shape *s, mrec_cuda *cu) {
    *bytes = 0;
    conv_plan *p;
    mrec_status st = plan_get(&p, s, BF16_NHWC, cu);
    if (!st) *bytes = p->work;
    return st;
}

/* rows (pixels r0 .. r0 + n8 / (KH KW C_in / 8) of the output, then (KH, KW, C_in)) bf16: each output pixel's
 * window of the channels-last input, zeros where it leaves the image; a thread 8 channels (C_in a multiple of 8,
 * in and rows 16-byte aligned). The rows times the weight (C_out, KH KW C_in) are the convolution. */
__global__ static void im2col_nhwc8(uint4 *rows, const uint4 *in, mrec_conv2d_shape s, int Ho, int Wo, int64_t r0, int64_t n8) {
    const int C8 = s.C_in / 8;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t t = i / C8;
        int c8 = (int)(i % C8), kw = (int)(t % s.KW);
        t /= s.KW;
        int kh = (int)(t % s.KH);
        int64_t r = r0 + t / s.KH, img = r / ((int64_t)Ho * Wo);
        int ow = (int)(r % Wo), oh = (int)(r / Wo % Ho);
        int ih = oh * s.stride_h - s.pad_h + kh, iw = ow * s.stride_w - s.pad_w + kw;
        bool inside = ih >= 0 && ih < s.H && iw >= 0 && iw < s.W;
        rows[i] = inside ? in[((img * s.H + ih) * s.W + iw) * C8 + c8] : make_uint4(0, 0, 0, 0);
    }
}

/* out (N, Ho, Wo, C_out) bf16 = [relu](conv(in (N, H, W, C_in) bf16, weight (C_out, KH, KW, C_in)) + bias + beta out).
 * The weight and bias are read from their bf16 twins (or rounded into the conversion buffer first). */
extern "C" mrec_status mrec_conv2d_nhwc_bf16_cuda(uint16_t *out, const uint16_t *in, const float *weight, const float *bias,
                                                  float beta, int relu, void *work, size_t work_bytes, const mrec_conv2d_shape *s,
                                                  mrec_cuda *cu) {
    if (s->N <= 0) return MREC_OK;
    conv_plan *p;
    mrec_status st = plan_get(&p, s, BF16_NHWC, cu);
    if (!st && p->work > work_bytes)
        st = mrec_fail(MREC_ERR_ARG, "conv2d_nhwc_bf16: workspace of %zu bytes, %zu needed", work_bytes, p->work);
    int act = relu ? MREC_ACT_RELU : MREC_GEMM_NO_ACT;
    if (!st && p->gemm_route && !p->im2col_rows && beta == 0.0f)
        /* a 1x1 with stride 1: the input's pixels (rows of C_in) times the weight (C_out, C_in) are the output's */
        return mrec_linear_bf16_cuda(out, 1, in, weight, bias, act, 0.0f, s->N * s->H * s->W, s->C_out, s->C_in, s->C_out, cu);
    if (!st && p->im2col_rows && beta == 0.0f && ((uintptr_t)in & 15) == 0 && ((uintptr_t)work & 15) == 0) {
        /* the columns of a chunk of output pixels, then their product with the weight, its bias and ReLU in
         * cuBLASLt's epilogue: out's rows (pixels) of C_out are the channels-last output itself */
        int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s), K = s->KH * s->KW * s->C_in;
        int64_t rows = (int64_t)s->N * Ho * Wo;
        for (int64_t r0 = 0; r0 < rows && !st; r0 += p->im2col_rows) {
            int m = (int)(rows - r0 < p->im2col_rows ? rows - r0 : p->im2col_rows);
            int64_t n8 = (int64_t)m * K / 8;
            im2col_nhwc8<<<mrec_grid(n8, 256), 256, 0, cu->stream>>>((uint4 *)work, (const uint4 *)in, *s, Ho, Wo, r0, n8);
            st = MREC_CUDA_LAUNCHED("conv2d_nhwc_bf16 columns");
            if (!st)
                st = mrec_linear_bf16_cuda(out + (size_t)r0 * s->C_out, 1, (const uint16_t *)work, weight, bias, act, 0.0f, m,
                                           s->C_out, K, s->C_out, cu);
        }
        return st;
    }
    const float *arrays[2] = {weight, relu ? bias : NULL};
    const int64_t sizes[2] = {(int64_t)s->C_out * s->KH * s->KW * s->C_in, s->C_out};
    const uint16_t *w16[2] = {NULL, NULL};
    if (!st) st = mrec_cuda_bf16_operands(w16, arrays, sizes, 2, cu);
    if (!st && relu && bias) {
        int done = 0;
        st = fused_relu(p, out, in, w16[0], bias, w16[1], beta, work, cu, &done);
        if (st || done) return st;
    }
    const float one = 1.0f;
    if (!st) st = mrec_cudnn_check(cudnnConvolutionForward(cu->dnn, &one, p->x, in, p->w, w16[0], p->conv, p->algo, work, p->work, &beta,
                                                           p->y, out), "cudnnConvolutionForward (bf16 NHWC)");
    if (st || (!bias && !relu)) return st;
    int64_t n = (int64_t)s->N * mrec_conv2d_out_h(s) * mrec_conv2d_out_w(s) * s->C_out;
    if (s->C_out % 8 == 0 && ((uintptr_t)out & 15) == 0)
        bias_act_nhwc8<<<mrec_grid(n / 8, 256), 256, 0, cu->stream>>>((uint4 *)out, bias, relu, s->C_out, n / 8);
    else
        bias_act_nhwc<<<mrec_grid(n, 256), 256, 0, cu->stream>>>((__nv_bfloat16 *)out, bias, relu, s->C_out, n);
    return MREC_CUDA_LAUNCHED("conv2d_nhwc_bf16 bias and ReLU");
}

/* A thread an output value; neighbouring threads, neighbouring channels of one pixel. */
__global__ static void maxpool_nhwc(__nv_bfloat16 *out, const __nv_bfloat16 *in, mrec_pool2d_shape s, int Ho, int Wo, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int c = (int)(i % s.C);
        int64_t pix = i / s.C;
        int ow = (int)(pix % Wo), oh = (int)(pix / Wo % Ho);
        int64_t img = pix / ((int64_t)Wo * Ho);
        float acc = -INFINITY;
        for (int kh = 0; kh < s.KH; kh++)
            for (int kw = 0; kw < s.KW; kw++) {
                int ih = oh * s.stride_h - s.pad_h + kh, iw = ow * s.stride_w - s.pad_w + kw;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                float x = __bfloat162float(in[((img * s.H + ih) * s.W + iw) * s.C + c]);
                acc = (x > acc || isnan(x)) ? x : acc;
            }
        out[i] = __float2bfloat16_rn(acc);
    }
}

/* The same, 8 channels a thread: 16-byte loads of each window pixel's 8 channels (C a multiple of 8, in and
 * out 16-byte aligned). n8 = outputs / 8. The maximum is taken in bf16, which orders as the floats do; a NaN
 * wins, as in maxpool_nhwc. */
__global__ static void maxpool_nhwc8(uint4 *out, const uint4 *in, mrec_pool2d_shape s, int Ho, int Wo, int64_t n8) {
    const int C8 = s.C / 8;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n8; i += (int64_t)gridDim.x * blockDim.x) {
        int c8 = (int)(i % C8);
        int64_t pix = i / C8;
        int ow = (int)(pix % Wo), oh = (int)(pix / Wo % Ho);
        int64_t img = pix / ((int64_t)Wo * Ho);
        float acc[8];
#pragma unroll
        for (int u = 0; u < 8; u++) acc[u] = -INFINITY;
        for (int kh = 0; kh < s.KH; kh++)
            for (int kw = 0; kw < s.KW; kw++) {
                int ih = oh * s.stride_h - s.pad_h + kh, iw = ow * s.stride_w - s.pad_w + kw;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                uint4 raw = in[((img * s.H + ih) * s.W + iw) * C8 + c8];
                const __nv_bfloat16 *x = (const __nv_bfloat16 *)&raw;
#pragma unroll
                for (int u = 0; u < 8; u++) {
                    float v = __bfloat162float(x[u]);
                    acc[u] = (v > acc[u] || isnan(v)) ? v : acc[u];
                }
            }
        uint4 res;
        __nv_bfloat16 *y = (__nv_bfloat16 *)&res;
#pragma unroll
        for (int u = 0; u < 8; u++) y[u] = __float2bfloat16_rn(acc[u]);
        out[i] = res;
    }
}

extern "C" mrec_status mrec_maxpool2d_nhwc_bf16_cuda(uint16_t *out, const uint16_t *in, const mrec_pool2d_shape *s, mrec_cuda *cu) {
    int Ho = mrec_pool2d_out_h(s), Wo = mrec_pool2d_out_w(s);
    int64_t n = (int64_t)s->N * Ho * Wo * s->C;
    if (n <= 0) return MREC_OK;
    if (s->C % 8 == 0 && ((uintptr_t)out & 15) == 0 && ((uintptr_t)in & 15) == 0)
        maxpool_nhwc8<<<mrec_grid(n / 8, 256), 256, 0, cu->stream>>>((uint4 *)out, (const uint4 *)in, *s, Ho, Wo, n / 8);
    else
        maxpool_nhwc<<<mrec_grid(n, 256), 256, 0, cu->stream>>>((__nv_bfloat16 *)out, (const __nv_bfloat16 *)in, *s, Ho, Wo, n);
    return MREC_CUDA_LAUNCHED("maxpool2d_nhwc_bf16");
}

/* A thread an (image, channel): the pixels summed in order, as the reference, so the bits match it. */
__global__ static void mean_hw_nhwc(float *out, const __nv_bfloat16 *in, int HW, int C, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t img = i / C;
        int c = (int)(i % C);
        float sum = 0.0f;
        for (int p = 0; p < HW; p++) sum = __fadd_rn(sum, __bfloat162float(in[(img * HW + p) * C + c]));
        out[i] = __fdiv_rn(sum, (float)HW);
    }
}

extern "C" mrec_status mrec_mean_hw_nhwc_bf16_cuda(float *out, const uint16_t *in, int N, int HW, int C, mrec_cuda *cu) {
    int64_t n = (int64_t)N * C;
    if (n <= 0) return MREC_OK;
    mean_hw_nhwc<<<mrec_grid(n, 256), 256, 0, cu->stream>>>(out, (const __nv_bfloat16 *)in, HW, C, n);
    return MREC_CUDA_LAUNCHED("mean_hw_nhwc_bf16");
}
