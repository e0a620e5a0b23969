/* cudnn_emu.cpp: the part of cuDNN that kernels/cuda (conv.cu, device.cu) calls, computed on the CPU, for the
 * emulator's whole-program runs (tests/emu/runtime.cpp gives it the streams and the device memory checks).
 *
 * What it emulates: the handle and its stream; 4-d tensor and filter descriptors, NCHW or NHWC (filters KCRS or
 * KRSC), fp32 or bf16; 2-d cross-correlation with padding, stride, dilation and groups, fp32 compute;
 * cudnnConvolutionForward (y = alpha conv(x, w) + beta y, y not read when beta is 0) and
 * cudnnConvolutionBiasActivationForward (y = act(alpha1 conv(x, w) + alpha2 z + bias), ReLU or identity, z may
 * be y itself, z not read when alpha2 is 0). Each call is checked as cuDNN documents it (descriptors that agree,
 * the output's dimensions, the supported data type combinations) and every device pointer against the live
 * allocations; the work is a stream operation that copies the descriptors' contents, so that a captured CUDA
 * graph replays it after the descriptors have changed or gone.
 *
 * Numbers: inputs are read exactly (bf16 widened; fp32 as is, or rounded to tf32 with cvt.rna's rounding where
 * the math type lets cuDNN use the tensor cores on fp32 data: every type but CUDNN_FMA_MATH, as on sm_80 and
 * later); products and sums in double, the result rounded once to the output's type (round to nearest even).
 *
 * What not: one algorithm stands for all (the heuristic query lists the two implicit GEMMs, SUCCESS, no
 * workspace, in the descriptor's math type; other algorithms are refused), so cuDNN's kernel choice, its fp32
 * accumulation order and its workspace needs are not modelled, and results are compared with tolerances;
 * true convolution (CUDNN_CONVOLUTION), compute types but fp32, data types but fp32 and bf16, formats but NCHW
 * and NHWC, and activations but ReLU and identity are refused with an error; the Nd and strided descriptors'
 * functions are not defined here. The fused call's refusals that cuDNN
 * documents (identity with an algorithm other than IMPLICIT_PRECOMP_GEMM, a bias whose type is not the
 * output's) return CUDNN_STATUS_NOT_SUPPORTED silently, as callers probe for them (conv.cu's refused()); every
 * other failure is also an emulator error.
 */
#include "emu_runtime.h"
#include <cudnn.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

uint32_t emu_tf32_rna(float x); /* cuda_emu.cpp: cvt.rna.tf32.f32 */

/* ---- the opaque structures ---- */
struct cudnnContext {
    cudaStream_t stream;
};
struct cudnnTensorStruct {
    bool set;
    cudnnDataType_t type;
    cudnnTensorFormat_t format;
    int n, c, h, w;
};
struct cudnnFilterStruct {
    bool set;
    cudnnDataType_t type;
    cudnnTensorFormat_t format;
    int k, c, r, s; /* c: input channels per group */
};
struct cudnnConvolutionStruct {
    bool set; /* by cudnnSetConvolution2dDescriptor; groups and math type have defaults */
    int pad_h, pad_w, stride_h, stride_w, dil_h, dil_w, groups;
    cudnnDataType_t compute;
    cudnnMathType_t math;
};
struct cudnnActivationStruct {
    bool set;
    cudnnActivationMode_t mode;
    cudnnNanPropagation_t nan;
};

namespace {

/* A packed 4-d array as the work sees it: dimensions (n, c, h, w) or (k, c, r, s) and their strides in elements. */
struct Layout {
    bool bf16;
    int64_t dim[4], stride[4];
    int64_t count() const { return dim[0] * dim[1] * dim[2] * dim[3]; }
    size_t bytes() const { return (size_t)count() * (bf16 ? 2 : 4); }
    int64_t at(int64_t a, int64_t b, int64_t c, int64_t d) const {
        return a * stride[0] + b * stride[1] + c * stride[2] + d * stride[3];
    }
};

/* NCHW (a filter's KCRS) or NHWC (KRSC): the sizes are always given as (n, c, h, w), the format sets the strides */
Layout layout(cudnnDataType_t type, cudnnTensorFormat_t format, int n, int c, int h, int w) {
    Layout l;
    l.bf16 = type == CUDNN_DATA_BFLOAT16;
    l.dim[0] = n, l.dim[1] = c, l.dim[2] = h, l.dim[3] = w;
    if (format == CUDNN_TENSOR_NHWC) {
        l.stride[1] = 1, l.stride[3] = c, l.stride[2] = (int64_t)w * c, l.stride[0] = (int64_t)h * w * c;
    } else {
        l.stride[3] = 1, l.stride[2] = w, l.stride[1] = (int64_t)h * w, l.stride[0] = (int64_t)c * h * w;
    }
    return l;
}
Layout layout(const cudnnTensorStruct *t) { return layout(t->type, t->format, t->n, t->c, t->h, t->w); }
Layout layout(const cudnnFilterStruct *f) { return layout(f->type, f->format, f->k, f->c, f->r, f->s); }

float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
float load(const void *p, bool bf16, int64_t i) {
    if (!bf16) return ((const float *)p)[i];
    return bits_float((uint32_t)((const uint16_t *)p)[i] << 16);
}

/* double to bf16 with one rounding, to nearest even: first to fp32 rounding to odd (truncate, then set the last
 * bit if anything was cut off), which keeps what the second rounding needs to see, then fp32 to bf16. */
uint16_t bf16_bits(double v) {
    if (isnan(v)) return 0x7fff;
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((double)f != v) {
        if (fabs((double)f) > fabs(v)) u -= 1; /* toward zero by one ulp (an overflow's inf becomes FLT_MAX) */
        u |= 1;
    }
    u += 0x7fffu + (u >> 16 & 1);
    return (uint16_t)(u >> 16);
}
void store(void *p, bool bf16, int64_t i, double v) {
    if (bf16)
        ((uint16_t *)p)[i] = bf16_bits(v);
    else
        ((float *)p)[i] = (float)v;
}

/* Everything one convolution needs when it runs: the descriptors' contents, the scalars' values, the pointers. */
struct ConvJob {
    Layout x, w, y, z, bias;
    int pad_h, pad_w, stride_h, stride_w, dil_h, dil_w, groups;
    bool tf32;
    bool fused;          /* cudnnConvolutionBiasActivationForward: z, bias and the activation */
    float alpha, beta;   /* beta: cudnnConvolutionForward's beta, or the fused call's alpha2 (z's factor) */
    bool relu, relu_nan; /* relu_nan: CUDNN_PROPAGATE_NAN */
    const void *xp, *wp, *zp, *bp;
    void *yp;
};

void run(const ConvJob &j) {
    const int64_t N = j.x.dim[0], C = j.x.dim[1], H = j.x.dim[2], W = j.x.dim[3];
    const int64_t K = j.w.dim[0], Cg = j.w.dim[1], R = j.w.dim[2], S = j.w.dim[3];
    const int64_t Ho = j.y.dim[2], Wo = j.y.dim[3], Kg = K / j.groups;
    /* the operands as floats (exact: bf16 and tf32 are narrower), channels innermost, so each window's channels
     * are one contiguous dot product: x as (n, h, w, c), w as (k, r, s, c) */
    auto operand = [&](float v) { return j.tf32 ? bits_float(emu_tf32_rna(v)) : v; };
    std::vector<float> xs((size_t)(N * H * W * C)), ws((size_t)(K * R * S * Cg));
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t w = 0; w < W; w++)
                for (int64_t c = 0; c < C; c++)
                    xs[(size_t)(((n * H + h) * W + w) * C + c)] = operand(load(j.xp, j.x.bf16, j.x.at(n, c, h, w)));
    for (int64_t k = 0; k < K; k++)
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < S; s++)
                for (int64_t c = 0; c < Cg; c++)
                    ws[(size_t)(((k * R + r) * S + s) * Cg + c)] = operand(load(j.wp, j.w.bf16, j.w.at(k, c, r, s)));
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            const int64_t c0 = k / Kg * Cg; /* the group's first input channel */
            const double b = j.fused ? load(j.bp, j.bias.bf16, j.bias.at(0, k, 0, 0)) : 0.0;
            for (int64_t oh = 0; oh < Ho; oh++)
                for (int64_t ow = 0; ow < Wo; ow++) {
                    double acc = 0.0;
                    for (int64_t r = 0; r < R; r++) {
                        const int64_t ih = oh * j.stride_h - j.pad_h + r * j.dil_h;
                        if (ih < 0 || ih >= H) continue;
                        for (int64_t s = 0; s < S; s++) {
                            const int64_t iw = ow * j.stride_w - j.pad_w + s * j.dil_w;
                            if (iw < 0 || iw >= W) continue;
                            const float *xr = &xs[(size_t)(((n * H + ih) * W + iw) * C + c0)];
                            const float *wr = &ws[(size_t)(((k * R + r) * S + s) * Cg)];
                            for (int64_t c = 0; c < Cg; c++) acc += (double)xr[c] * wr[c];
                        }
                    }
                    const int64_t yi = j.y.at(n, k, oh, ow);
                    double v = (double)j.alpha * acc;
                    if (!j.fused) {
                        if (j.beta != 0.0f) v += (double)j.beta * load(j.yp, j.y.bf16, yi);
                    } else {
                        /* z read before y is written: z may be y */
                        if (j.beta != 0.0f) v += (double)j.beta * load(j.zp, j.z.bf16, j.z.at(n, k, oh, ow));
                        v += b;
                        if (j.relu && !(v > 0.0) && !(isnan(v) && j.relu_nan)) v = 0.0;
                    }
                    store(j.yp, j.y.bf16, yi, v);
                }
        }
}

bool overlap(const void *a, size_t an, const void *b, size_t bn) {
    const char *p = (const char *)a, *q = (const char *)b;
    return an && bn && p < q + bn && q < p + an;
}

/* the checks cudnnConvolutionForward, the fused call, the heuristic and the workspace query share: descriptors
 * set, types one of the documented configurations, channels and groups agreeing, y the convolution's shape */
cudnnStatus_t check_conv(const char *fn, const cudnnTensorStruct *x, const cudnnFilterStruct *w, const cudnnConvolutionStruct *cd,
                         const cudnnTensorStruct *y) {
    if (!x || !w || !cd || !y || !x->set || !w->set || !cd->set || !y->set) {
        emu_error("%s: a descriptor (x, w, conv or y) is NULL or was never set", fn);
        return CUDNN_STATUS_BAD_PARAM;
    }
    /* FLOAT_CONFIG and PSEUDO_BFLOAT16_CONFIG: x, w and y of one type, fp32 compute */
    if (x->type != w->type || x->type != y->type || cd->compute != CUDNN_DATA_FLOAT) {
        emu_error("%s: data types x %d, w %d, y %d with compute type %d: not a configuration cuDNN supports (x, w and y "
                  "fp32 or bf16 alike, compute fp32)", fn, (int)x->type, (int)w->type, (int)y->type, (int)cd->compute);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    if (x->c != w->c * cd->groups || w->k % cd->groups) {
        emu_error("%s: x has %d channels, the filter %d outputs of %d channels in %d groups", fn, x->c, w->k, w->c, cd->groups);
        return CUDNN_STATUS_BAD_PARAM;
    }
    int64_t span_h = (int64_t)(w->r - 1) * cd->dil_h + 1, span_w = (int64_t)(w->s - 1) * cd->dil_w + 1;
    int64_t ho = ((int64_t)x->h + 2 * cd->pad_h - span_h) / cd->stride_h + 1;
    int64_t wo = ((int64_t)x->w + 2 * cd->pad_w - span_w) / cd->stride_w + 1;
    if (x->h + 2 * cd->pad_h < span_h || x->w + 2 * cd->pad_w < span_w) ho = wo = 0;
    if (ho < 1 || wo < 1 || y->n != x->n || y->c != w->k || y->h != ho || y->w != wo) {
        emu_error("%s: y is (%d, %d, %d, %d), the convolution's output (%d, %d, %lld, %lld)", fn, y->n, y->c, y->h, y->w, x->n, w->k,
                  (long long)ho, (long long)wo);
        return CUDNN_STATUS_BAD_PARAM;
    }
    return CUDNN_STATUS_SUCCESS;
}

bool emulated_algo(cudnnConvolutionFwdAlgo_t algo) {
    return algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM || algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
}

/* the convolution part of a job, and the pointer checks for x, w, y and the workspace */
cudnnStatus_t prepare(const char *fn, ConvJob &j, const cudnnTensorStruct *xd, const void *x, const cudnnFilterStruct *wd, const void *w,
                      const cudnnConvolutionStruct *cd, cudnnConvolutionFwdAlgo_t algo, void *work, size_t work_bytes,
                      const cudnnTensorStruct *yd, void *y) {
    cudnnStatus_t st = check_conv(fn, xd, wd, cd, yd);
    if (st) return st;
    if (!emulated_algo(algo)) {
        emu_error("%s: algorithm %d is not emulated (only IMPLICIT_GEMM and IMPLICIT_PRECOMP_GEMM, the ones listed)", fn, (int)algo);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    j.x = layout(xd), j.w = layout(wd), j.y = layout(yd);
    j.pad_h = cd->pad_h, j.pad_w = cd->pad_w, j.stride_h = cd->stride_h, j.stride_w = cd->stride_w;
    j.dil_h = cd->dil_h, j.dil_w = cd->dil_w, j.groups = cd->groups;
    j.tf32 = xd->type == CUDNN_DATA_FLOAT && cd->math != CUDNN_FMA_MATH;
    j.xp = x, j.wp = w, j.yp = y;
    char what[96];
    snprintf(what, sizeof what, "%s x", fn);
    if (!emu_device_range(x, j.x.bytes(), what)) return CUDNN_STATUS_BAD_PARAM;
    snprintf(what, sizeof what, "%s w", fn);
    if (!emu_device_range(w, j.w.bytes(), what)) return CUDNN_STATUS_BAD_PARAM;
    snprintf(what, sizeof what, "%s y", fn);
    if (!emu_device_range(y, j.y.bytes(), what)) return CUDNN_STATUS_BAD_PARAM;
    snprintf(what, sizeof what, "%s workspace", fn);
    if (work_bytes && !emu_device_range(work, work_bytes, what)) return CUDNN_STATUS_BAD_PARAM;
    if (overlap(y, j.y.bytes(), x, j.x.bytes()) || overlap(y, j.y.bytes(), w, j.w.bytes())) {
        emu_error("%s: y overlaps x or w (the convolution is not in place)", fn);
        return CUDNN_STATUS_BAD_PARAM;
    }
    return CUDNN_STATUS_SUCCESS;
}

/* the bytes a convolution touches, as the next op's, for the runtime's race check */
void touch(const ConvJob &j, const void *work, size_t work_bytes) {
    emu_access(j.xp, j.x.bytes(), false), emu_access(j.wp, j.w.bytes(), false);
    if (work_bytes) emu_access(work, work_bytes, true);
    if (j.fused) {
        emu_access(j.bp, j.bias.bytes(), false);
        if (j.beta != 0.0f) emu_access(j.zp, j.z.bytes(), false);
    }
    emu_access(j.yp, j.y.bytes(), true);
}

cudnnStatus_t bad_param(const char *fn, const char *why) {
    emu_error("%s: %s", fn, why);
    return CUDNN_STATUS_BAD_PARAM;
}

bool known_format(cudnnTensorFormat_t f, const char *fn) {
    if (f == CUDNN_TENSOR_NCHW || f == CUDNN_TENSOR_NHWC) return true;
    emu_error("%s: format %d is not emulated (NCHW and NHWC only)", fn, (int)f);
    return false;
}
bool known_type(cudnnDataType_t t, const char *fn) {
    if (t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_BFLOAT16) return true;
    emu_error("%s: data type %d is not emulated (CUDNN_DATA_FLOAT and CUDNN_DATA_BFLOAT16 only)", fn, (int)t);
    return false;
}

} // namespace

extern "C" {

/* ---- handle ---- */
cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
    if (!handle) return bad_param("cudnnCreate", "handle is NULL");
    *handle = new cudnnContext{0};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
    delete handle;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
    if (!handle) return bad_param("cudnnSetStream", "handle is NULL");
    handle->stream = streamId;
    return CUDNN_STATUS_SUCCESS;
}
const char *cudnnGetErrorString(cudnnStatus_t status) {
    switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    default: break;
    }
#ifdef CUDNN_STATUS_CATEGORY
    /* cuDNN 9's sub-codes: their category */
    switch (CUDNN_STATUS_CATEGORY((int)status)) {
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM (a sub-code)";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED (a sub-code)";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR (a sub-code)";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED (a sub-code)";
    default: break;
    }
#endif
    return "CUDNN_STATUS_UNKNOWN (emulated cuDNN)";
}

/* ---- tensor descriptors ---- */
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc) {
    if (!tensorDesc) return bad_param("cudnnCreateTensorDescriptor", "tensorDesc is NULL");
    *tensorDesc = new cudnnTensorStruct();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) {
    delete tensorDesc;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format, cudnnDataType_t dataType,
                                         int n, int c, int h, int w) {
    const char *fn = "cudnnSetTensor4dDescriptor";
    if (!tensorDesc) return bad_param(fn, "tensorDesc is NULL");
    if (n < 0 || c < 0 || h < 0 || w < 0) return bad_param(fn, "a negative dimension");
    if (!known_format(format, fn) || !known_type(dataType, fn)) return CUDNN_STATUS_NOT_SUPPORTED;
    *tensorDesc = cudnnTensorStruct{true, dataType, format, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

/* ---- filter descriptors ---- */
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc) {
    if (!filterDesc) return bad_param("cudnnCreateFilterDescriptor", "filterDesc is NULL");
    *filterDesc = new cudnnFilterStruct();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) {
    delete filterDesc;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType, cudnnTensorFormat_t format,
                                         int k, int c, int h, int w) {
    const char *fn = "cudnnSetFilter4dDescriptor";
    if (!filterDesc) return bad_param(fn, "filterDesc is NULL");
    if (k <= 0 || c <= 0 || h <= 0 || w <= 0) return bad_param(fn, "a dimension not positive");
    if (!known_format(format, fn) || !known_type(dataType, fn)) return CUDNN_STATUS_NOT_SUPPORTED;
    *filterDesc = cudnnFilterStruct{true, dataType, format, k, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

/* ---- convolution descriptors ---- */
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc) {
    if (!convDesc) return bad_param("cudnnCreateConvolutionDescriptor", "convDesc is NULL");
    *convDesc = new cudnnConvolutionStruct();
    (*convDesc)->groups = 1, (*convDesc)->math = CUDNN_DEFAULT_MATH; /* cuDNN's defaults */
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) {
    delete convDesc;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode, cudnnDataType_t computeType) {
    const char *fn = "cudnnSetConvolution2dDescriptor";
    if (!convDesc) return bad_param(fn, "convDesc is NULL");
    if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0)
        return bad_param(fn, "a negative padding, or a stride or dilation not positive");
    if (mode != CUDNN_CROSS_CORRELATION) {
        emu_error("%s: mode %d is not emulated (CUDNN_CROSS_CORRELATION only)", fn, (int)mode);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    if (computeType != CUDNN_DATA_FLOAT) {
        emu_error("%s: compute type %d is not emulated (CUDNN_DATA_FLOAT only)", fn, (int)computeType);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    cudnnConvolutionStruct *d = convDesc;
    d->set = true;
    d->pad_h = pad_h, d->pad_w = pad_w, d->stride_h = u, d->stride_w = v, d->dil_h = dilation_h, d->dil_w = dilation_w;
    d->compute = computeType;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount) {
    if (!convDesc || groupCount < 1) return bad_param("cudnnSetConvolutionGroupCount", "convDesc NULL or a group count below 1");
    convDesc->groups = groupCount;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType) {
    if (!convDesc) return bad_param("cudnnSetConvolutionMathType", "convDesc is NULL");
    if (mathType != CUDNN_DEFAULT_MATH && mathType != CUDNN_TENSOR_OP_MATH && mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
        mathType != CUDNN_FMA_MATH)
        return bad_param("cudnnSetConvolutionMathType", "not a math type");
    convDesc->math = mathType;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- activation descriptors ---- */
cudnnStatus_t cudnnCreateActivationDescriptor(cudnnActivationDescriptor_t *activationDesc) {
    if (!activationDesc) return bad_param("cudnnCreateActivationDescriptor", "activationDesc is NULL");
    *activationDesc = new cudnnActivationStruct();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyActivationDescriptor(cudnnActivationDescriptor_t activationDesc) {
    delete activationDesc;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t activationDesc, cudnnActivationMode_t mode,
                                           cudnnNanPropagation_t reluNanOpt, double coef) {
    const char *fn = "cudnnSetActivationDescriptor";
    (void)coef; /* ReLU and identity have none */
    if (!activationDesc) return bad_param(fn, "activationDesc is NULL");
    if (reluNanOpt != CUDNN_NOT_PROPAGATE_NAN && reluNanOpt != CUDNN_PROPAGATE_NAN) return bad_param(fn, "not a NaN option");
    if (mode != CUDNN_ACTIVATION_RELU && mode != CUDNN_ACTIVATION_IDENTITY) {
        emu_error("%s: activation %d is not emulated (ReLU and identity, the fused convolution's)", fn, (int)mode);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    *activationDesc = cudnnActivationStruct{true, mode, reluNanOpt};
    return CUDNN_STATUS_SUCCESS;
}

/* ---- the forward convolution ---- */
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                                                     const cudnnFilterDescriptor_t filterDesc, const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t destDesc, const int requestedAlgoCount,
                                                     int *returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t *perfResults) {
    const char *fn = "cudnnGetConvolutionForwardAlgorithm_v7";
    if (!handle || !returnedAlgoCount || !perfResults || requestedAlgoCount < 1)
        return bad_param(fn, "handle, returnedAlgoCount or perfResults NULL, or requestedAlgoCount below 1");
    cudnnStatus_t st = check_conv(fn, srcDesc, filterDesc, convDesc, destDesc);
    if (st) return st;
    /* the one emulated computation under both implicit GEMMs' names, the precomputed one first (cuDNN's usual
     * pick), each in the descriptor's math type, without workspace */
    const cudnnConvolutionFwdAlgo_t algos[] = {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM};
    int n = requestedAlgoCount < 2 ? requestedAlgoCount : 2;
    for (int i = 0; i < n; i++) {
        cudnnConvolutionFwdAlgoPerf_t p;
        memset(&p, 0, sizeof p);
        p.algo = algos[i], p.status = CUDNN_STATUS_SUCCESS, p.time = 0.001f * (float)(i + 1), p.memory = 0;
        p.determinism = CUDNN_DETERMINISTIC, p.mathType = convDesc->math;
        perfResults[i] = p;
    }
    *returnedAlgoCount = n;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc, const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc, cudnnConvolutionFwdAlgo_t algo, size_t *sizeInBytes) {
    const char *fn = "cudnnGetConvolutionForwardWorkspaceSize";
    if (!handle || !sizeInBytes) return bad_param(fn, "handle or sizeInBytes NULL");
    cudnnStatus_t st = check_conv(fn, xDesc, wDesc, convDesc, yDesc);
    if (st) return st;
    if (!emulated_algo(algo)) {
        emu_error("%s: algorithm %d is not emulated (only IMPLICIT_GEMM and IMPLICIT_PRECOMP_GEMM, the ones listed)", fn, (int)algo);
        return CUDNN_STATUS_NOT_SUPPORTED;
    }
    *sizeInBytes = 0;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc, const void *x,
                                      const cudnnFilterDescriptor_t wDesc, const void *w, const cudnnConvolutionDescriptor_t convDesc,
                                      cudnnConvolutionFwdAlgo_t algo, void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y) {
    const char *fn = "cudnnConvolutionForward";
    if (!handle || !alpha || !beta) return bad_param(fn, "handle, alpha or beta NULL");
    ConvJob j;
    memset(&j, 0, sizeof j);
    cudnnStatus_t st = prepare(fn, j, xDesc, x, wDesc, w, convDesc, algo, workSpace, workSpaceSizeInBytes, yDesc, y);
    if (st) return st;
    j.fused = false;
    j.alpha = *(const float *)alpha, j.beta = *(const float *)beta; /* float for fp32 and bf16 data alike */
    touch(j, workSpace, workSpaceSizeInBytes);
    emu_stream_op(handle->stream, [j]() { run(j); }, fn);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBiasActivationForward(cudnnHandle_t handle, const void *alpha1, const cudnnTensorDescriptor_t xDesc,
                                                    const void *x, const cudnnFilterDescriptor_t wDesc, const void *w,
                                                    const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                                    void *workSpace, size_t workSpaceSizeInBytes, const void *alpha2,
                                                    const cudnnTensorDescriptor_t zDesc, const void *z,
                                                    const cudnnTensorDescriptor_t biasDesc, const void *bias,
                                                    const cudnnActivationDescriptor_t activationDesc, const cudnnTensorDescriptor_t yDesc,
                                                    void *y) {
    const char *fn = "cudnnConvolutionBiasActivationForward";
    if (!handle || !alpha1 || !alpha2) return bad_param(fn, "handle, alpha1 or alpha2 NULL");
    if (!activationDesc || !activationDesc->set) return bad_param(fn, "activationDesc NULL or never set");
    /* EMU_DNN_NO_FUSED=1: the fused form refused for every problem, so that a caller's unfused path runs (make
     * emu-gpu-check runs test_cuda so a second time) */
    static int none = getenv("EMU_DNN_NO_FUSED") && atoi(getenv("EMU_DNN_NO_FUSED"));
    if (none) return CUDNN_STATUS_NOT_SUPPORTED;
    /* the documented refusals, silent: a caller may try the fused form and fall back */
    if (activationDesc->mode == CUDNN_ACTIVATION_IDENTITY && algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM)
        return CUDNN_STATUS_NOT_SUPPORTED;
    ConvJob j;
    memset(&j, 0, sizeof j);
    cudnnStatus_t st = prepare(fn, j, xDesc, x, wDesc, w, convDesc, algo, workSpace, workSpaceSizeInBytes, yDesc, y);
    if (st) return st;
    if (!biasDesc || !biasDesc->set || !zDesc || !zDesc->set) return bad_param(fn, "biasDesc or zDesc NULL or never set");
    if (biasDesc->n != 1 || biasDesc->c != yDesc->c || biasDesc->h != 1 || biasDesc->w != 1) {
        emu_error("%s: bias is (%d, %d, %d, %d), not (1, %d, 1, 1)", fn, biasDesc->n, biasDesc->c, biasDesc->h, biasDesc->w, yDesc->c);
        return CUDNN_STATUS_BAD_PARAM;
    }
    /* the supported configurations give the bias y's type (fp32 with fp32, bf16 with bf16) */
    if (biasDesc->type != yDesc->type) return CUDNN_STATUS_NOT_SUPPORTED;
    if (zDesc->type != yDesc->type || zDesc->n != yDesc->n || zDesc->c != yDesc->c || zDesc->h != yDesc->h || zDesc->w != yDesc->w) {
        emu_error("%s: z (%d, %d, %d, %d) of type %d is not y's shape and type", fn, zDesc->n, zDesc->c, zDesc->h, zDesc->w, (int)zDesc->type);
        return CUDNN_STATUS_BAD_PARAM;
    }
    j.fused = true;
    j.alpha = *(const float *)alpha1, j.beta = *(const float *)alpha2;
    j.relu = activationDesc->mode == CUDNN_ACTIVATION_RELU, j.relu_nan = activationDesc->nan == CUDNN_PROPAGATE_NAN;
    j.z = layout(zDesc), j.bias = layout(biasDesc);
    j.zp = z, j.bp = bias;
    if (!emu_device_range(bias, j.bias.bytes(), "cudnnConvolutionBiasActivationForward bias")) return CUDNN_STATUS_BAD_PARAM;
    if (j.beta != 0.0f) { /* z is read only when it counts */
        if (!emu_device_range(z, j.z.bytes(), "cudnnConvolutionBiasActivationForward z")) return CUDNN_STATUS_BAD_PARAM;
        /* z may be y itself (each output reads its own z first), but not a different view of y's memory */
        bool same = z == y && zDesc->format == yDesc->format;
        if (!same && overlap(z, j.z.bytes(), y, j.y.bytes())) {
            emu_error("%s: z overlaps y without being y (same pointer and layout)", fn);
            return CUDNN_STATUS_BAD_PARAM;
        }
    }
    if (overlap(y, j.y.bytes(), bias, j.bias.bytes())) {
        emu_error("%s: y overlaps the bias", fn);
        return CUDNN_STATUS_BAD_PARAM;
    }
    touch(j, workSpace, workSpaceSizeInBytes);
    emu_stream_op(handle->stream, [j]() { run(j); }, fn);
    return CUDNN_STATUS_SUCCESS;
}

} // extern "C"
