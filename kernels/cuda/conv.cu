/* conv.cu: 2-D convolution (NCHW) on the GPU through cuDNN.
 *
 * A convolution's descriptors and algorithm are made once per shape and
 * precision and kept in the device context (cuDNN's heuristic query costs
 * milliseconds, longer than most of ResNet's convolutions take to run).
 * fp32 keeps cuDNN to FMA math, exact fp32 as the CPU reference; tf32 and
 * bf16 let it use the tensor cores on fp32 data (TF32: the activations stay
 * fp32 between layers, so bf16 asks no more of a convolution than TF32).
 * The caller supplies the workspace, sized by mrec_conv2d_workspace_bytes_cuda
 * for each shape, so a forward pass allocates nothing. The bias and the
 * activation are one pass over the output after cuDNN's; a bottleneck's
 * residual convolution (beta out added, then ReLU) is one cuDNN call with
 * them where cuDNN has a fused form.
 */
#include "cuda_internal.h"

#include <string.h>

struct mrec_conv_plan {
    mrec_conv2d_shape s;
    int tensor_ops;
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t algo;
    size_t work; /* bytes of workspace the algorithm needs */
    /* the residual's fused form (conv + beta out + bias, then ReLU, one cuDNN call): made on first use */
    cudnnTensorDescriptor_t bias;
    cudnnActivationDescriptor_t relu;
    int unfused; /* cuDNN said no to the fused call for this shape: the two passes */
};
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

static mrec_status plan_make(conv_plan *p, const mrec_conv2d_shape *s, int tensor_ops, mrec_cuda *cu) {
    memset(p, 0, sizeof *p);
    p->s = *s, p->tensor_ops = tensor_ops;
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s);
    if (Ho <= 0 || Wo <= 0 || s->groups <= 0 || s->C_in % s->groups || s->C_out % s->groups)
        return mrec_fail(MREC_ERR_SHAPE, "conv2d: invalid shape (C_in %d, C_out %d, groups %d, kernel %dx%d on %dx%d)",
                         s->C_in, s->C_out, s->groups, s->KH, s->KW, s->H, s->W);
    cudnnMathType_t math = tensor_ops ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH;
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
    if (!st) st = mrec_cudnn_check(cudnnSetConvolutionMathType(p->conv, math), "conv2d math");
    if (!st) {
        cudnnConvolutionFwdAlgoPerf_t perf[8];
        int found = 0;
        st = mrec_cudnn_check(cudnnGetConvolutionForwardAlgorithm_v7(cu->dnn, p->x, p->w, p->conv, p->y, 8, &found,
                                                                     perf), "conv2d algorithm");
        int pick = -1;
        for (int i = 0; !st && i < found && pick < 0; i++)
            if (perf[i].status == CUDNN_STATUS_SUCCESS && (tensor_ops || perf[i].mathType == CUDNN_FMA_MATH)) pick = i;
        /* None listed as FMA (a cuDNN may list its FMA algorithms under another math type): implicit GEMM runs
         * every fp32 shape, and the descriptor's FMA math type keeps tensor cores out. */
        if (!st) p->algo = pick >= 0 ? perf[pick].algo : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    }
    if (!st) st = mrec_cudnn_check(cudnnGetConvolutionForwardWorkspaceSize(cu->dnn, p->x, p->w, p->conv, p->y, p->algo,
                                                                          &p->work), "conv2d workspace");
    if (st) plan_free(p);
    return st;
}

/* The residual convolution of a bottleneck, out = ReLU(conv(in) + beta out + bias), as one cuDNN call where
 * it has one: the sum is not written out and read back by a pass of its own. *done 0 (nothing written) where
 * cuDNN has no fused form for the shape, which the plan then remembers. */
static mrec_status fused_residual(conv_plan *p, float *out, const float *in, const float *weight, const float *bias, float beta,
                                  void *work, mrec_cuda *cu, int *done) {
    *done = 0;
    if (p->unfused) return MREC_OK;
    mrec_status st = MREC_OK;
    if (!p->bias) {
        st = mrec_cudnn_check(cudnnCreateTensorDescriptor(&p->bias), "conv2d bias");
        if (!st) st = mrec_cudnn_check(cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, p->s.C_out, 1, 1),
                                       "conv2d bias");
        if (!st) st = mrec_cudnn_check(cudnnCreateActivationDescriptor(&p->relu), "conv2d relu");
        if (!st) st = mrec_cudnn_check(cudnnSetActivationDescriptor(p->relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0),
                                       "conv2d relu");
        if (st) return st;
    }
    const float one = 1.0f;
    /* z is out itself: its old values, beta times, join the sum before it is overwritten */
    cudnnStatus_t cs = cudnnConvolutionBiasActivationForward(cu->dnn, &one, p->x, in, p->w, weight, p->conv, p->algo, work, p->work,
                                                             &beta, p->y, out, p->bias, bias, p->relu, p->y, out);
    /* no fused kernel for the shape, or a cuDNN that will not take out as z too: the two passes, from now on */
    if (cs == CUDNN_STATUS_NOT_SUPPORTED || cs == CUDNN_STATUS_BAD_PARAM) return p->unfused = 1, MREC_OK;
    st = mrec_cudnn_check(cs, "cudnnConvolutionBiasActivationForward");
    if (!st) *done = 1;
    return st;
}

/* The plan for a shape, made on first use. */
static mrec_status plan_get(const conv_plan **out, const mrec_conv2d_shape *s, mrec_precision prec, mrec_cuda *cu) {
    int tensor_ops = prec != MREC_PREC_FP32;
    for (int i = 0; i < cu->n_conv_plans; i++)
        if (cu->conv_plans[i].tensor_ops == tensor_ops && !memcmp(&cu->conv_plans[i].s, s, sizeof *s))
            return *out = &cu->conv_plans[i], MREC_OK;
    if (cu->n_conv_plans == cu->cap_conv_plans) {
        int cap = cu->cap_conv_plans ? 2 * cu->cap_conv_plans : 32;
        conv_plan *grown = (conv_plan *)realloc(cu->conv_plans, sizeof *grown * cap);
        if (!grown) return mrec_fail(MREC_ERR_NOMEM, "conv2d: %d plans", cap);
        cu->conv_plans = grown, cu->cap_conv_plans = cap;
    }
    conv_plan *p = &cu->conv_plans[cu->n_conv_plans];
    mrec_status st = plan_make(p, s, tensor_ops, cu);
    if (st) return st;
    cu->n_conv_plans++;
    return *out = p, MREC_OK;
}

/* Bytes of workspace mrec_conv2d_cuda needs for this shape in this precision (may be 0). */
extern "C" mrec_status mrec_conv2d_workspace_bytes_cuda(size_t *bytes, const mrec_conv2d_shape *s, mrec_precision prec,
                                                        mrec_cuda *cu) {
    *bytes = 0;
    const conv_plan *p;
    mrec_status st = plan_get(&p, s, prec, cu);
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
    const conv_plan *p;
    mrec_status st = plan_get(&p, s, prec, cu);
    if (!st && p->work > work_bytes)
        st = mrec_fail(MREC_ERR_ARG, "conv2d: workspace of %zu bytes, %zu needed", work_bytes, p->work);
    if (!st && act == MREC_ACT_RELU && bias && beta != 0.0f) {
        int done = 0;
        st = fused_residual((conv_plan *)p, out, in, weight, bias, beta, work, cu, &done);
        if (st || done) return st;
    }
    const float one = 1.0f;
    if (!st) st = mrec_cudnn_check(cudnnConvolutionForward(cu->dnn, &one, p->x, in, p->w, weight, p->conv, p->algo, work,
                                                           p->work, &beta, p->y, out), "cudnnConvolutionForward");
    if (st || (!bias && act < 0)) return st;
    int64_t HW = (int64_t)mrec_conv2d_out_h(s) * mrec_conv2d_out_w(s), n = (int64_t)s->N * s->C_out * HW;
    if (HW % 4 == 0 && ((uintptr_t)out & 15) == 0) {
        int64_t blocks = (n / 4 + 255) / 256;
        bias_act4<<<(unsigned)(blocks < 65535 * 32 ? blocks : 65535 * 32), 256, 0, cu->stream>>>((float4 *)out, bias, act,
                                                                                               s->C_out, HW / 4, n / 4);
    } else {
        int64_t blocks = (n + 255) / 256;
        bias_act<<<(unsigned)(blocks < 65535 * 32 ? blocks : 65535 * 32), 256, 0, cu->stream>>>(out, bias, act, s->C_out,
                                                                                              HW, n);
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
