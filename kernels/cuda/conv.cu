/* conv.cu: 2-D convolution (NCHW) on the GPU through cuDNN.
 *
 * The descriptors are set up per call (host-side and cheap); the algorithm
 * is cuDNN's first choice for the shape in fp32 (no TF32: the default math
 * stays exact fp32, as the CPU reference). The caller supplies the
 * workspace, sized by mrec_conv2d_workspace_bytes_cuda once per shape, so a
 * forward pass allocates nothing.
 */
#include "cuda_internal.h"

#include <string.h>

typedef struct {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t algo;
} conv_plan;

static void plan_free(conv_plan *p) {
    if (p->x) cudnnDestroyTensorDescriptor(p->x);
    if (p->y) cudnnDestroyTensorDescriptor(p->y);
    if (p->w) cudnnDestroyFilterDescriptor(p->w);
    if (p->conv) cudnnDestroyConvolutionDescriptor(p->conv);
}

static mrec_status plan_make(conv_plan *p, const mrec_conv2d_shape *s, mrec_cuda *cu) {
    memset(p, 0, sizeof *p);
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    if (Ho <= 0 || Wo <= 0 || s->groups <= 0 || s->C_in % s->groups || s->C_out % s->groups)
        return mrec_fail(MREC_ERR_SHAPE, "conv2d: invalid shape (C_in %d, C_out %d, groups %d, kernel %dx%d on %dx%d)",
                         s->C_in, s->C_out, s->groups, s->KH, s->KW, s->H, s->W);
    mrec_status st = mrec_cudnn_check(cudnnCreateTensorDescriptor(&p->x), "conv2d");
    if (!st) st = mrec_cudnn_check(cudnnCreateTensorDescriptor(&p->y), "conv2d");
    if (!st) st = mrec_cudnn_check(cudnnCreateFilterDescriptor(&p->w), "conv2d");
    if (!st) st = mrec_cudnn_check(cudnnCreateConvolutionDescriptor(&p->conv), "conv2d");
    if (!st) st = mrec_cudnn_check(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s->N,
                                                              s->C_in, s->H, s->W), "conv2d input");
    if (!st) st = mrec_cudnn_check(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s->N,
                                                              s->C_out, Ho, Wo), "conv2d output");
    if (!st) st = mrec_cudnn_check(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s->C_out,
                                                              s->C_in / s->groups, s->KH, s->KW), "conv2d weight");
    /* Cross-correlation is what PyTorch's Conv2d computes. */
    if (!st) st = mrec_cudnn_check(cudnnSetConvolution2dDescriptor(p->conv, s->pad_h, s->pad_w, s->stride_h,
                                                                   s->stride_w, 1, 1, CUDNN_CROSS_CORRELATION,
                                                                   CUDNN_DATA_FLOAT), "conv2d");
    if (!st) st = mrec_cudnn_check(cudnnSetConvolutionGroupCount(p->conv, s->groups), "conv2d groups");
    if (!st) st = mrec_cudnn_check(cudnnSetConvolutionMathType(p->conv, CUDNN_FMA_MATH), "conv2d math");
    if (!st) {
        cudnnConvolutionFwdAlgoPerf_t perf[8];
        int found = 0;
        st = mrec_cudnn_check(cudnnGetConvolutionForwardAlgorithm_v7(cu->dnn, p->x, p->w, p->conv, p->y, 8, &found,
                                                                     perf), "conv2d algorithm");
        int pick = -1;
        for (int i = 0; !st && i < found && pick < 0; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].mathType == CUDNN_FMA_MATH) pick = i;
        /* None listed as FMA (a cuDNN may list its FMA algorithms under another math type): implicit GEMM runs
         * every fp32 shape, and the descriptor's FMA math type keeps tensor cores out. */
        if (!st) p->algo = pick >= 0 ? perf[pick].algo : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    }
    if (st) plan_free(p);
    return st;
}

/* Bytes of workspace mrec_conv2d_cuda needs for this shape (may be 0). */
extern "C" mrec_status mrec_conv2d_workspace_bytes_cuda(size_t *bytes, const mrec_conv2d_shape *s, mrec_cuda *cu) {
    *bytes = 0;
    conv_plan p;
    mrec_status st = plan_make(&p, s, cu);
    if (st) return st;
    st = mrec_cudnn_check(cudnnGetConvolutionForwardWorkspaceSize(cu->dnn, p.x, p.w, p.conv, p.y, p.algo, bytes),
                          "conv2d workspace");
    plan_free(&p);
    return st;
}

/* out (N, C, HW) += bias (C) */
__global__ static void add_channel_bias(float *out, const float *bias, int C, int64_t HW, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] += bias[(i / HW) % C];
}

/* out = conv(in) + bias + beta out. out: (N, C_out, Ho, Wo); in: (N, C_in, H, W); weight: (C_out, C_in / groups,
 * KH, KW); bias: (C_out) or NULL; work: work_bytes of device memory (mrec_conv2d_workspace_bytes_cuda).
 * cuDNN blends beta out into its output itself. */
extern "C" mrec_status mrec_conv2d_cuda(float *out, const float *in, const float *weight, const float *bias, float beta,
                                        void *work, size_t work_bytes, const mrec_conv2d_shape *s, mrec_cuda *cu) {
    if (s->N <= 0) return MREC_OK;
    conv_plan p;
    mrec_status st = plan_make(&p, s, cu);
    if (st) return st;
    size_t need = 0;
    st = mrec_cudnn_check(cudnnGetConvolutionForwardWorkspaceSize(cu->dnn, p.x, p.w, p.conv, p.y, p.algo, &need),
                          "conv2d workspace");
    if (!st && need > work_bytes)
        st = mrec_fail(MREC_ERR_ARG, "conv2d: workspace of %zu bytes, %zu needed", work_bytes, need);
    const float one = 1.0f;
    if (!st) st = mrec_cudnn_check(cudnnConvolutionForward(cu->dnn, &one, p.x, in, p.w, weight, p.conv, p.algo, work,
                                                           need, &beta, p.y, out), "cudnnConvolutionForward");
    plan_free(&p);
    if (st || !bias) return st;
    int64_t HW = (int64_t)mrec_conv2d_out_h(s) * mrec_conv2d_out_w(s), n = (int64_t)s->N * s->C_out * HW;
    int64_t blocks = (n + 255) / 256;
    add_channel_bias<<<(unsigned)(blocks < 65535 * 32 ? blocks : 65535 * 32), 256, 0, cu->stream>>>(out, bias, s->C_out,
                                                                                                 HW, n);
    return MREC_CUDA_LAUNCHED("conv2d bias");
}
