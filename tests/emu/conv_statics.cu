/* conv_statics.cu: appended to kernels/cuda/conv.cu's emulated copy (tests/emu/statics.h says why). */
#include "statics.h"

/* as conv() launches them after cuDNN's convolution: four values a thread where the planes are whole float4s */
mrec_status emu_bias_act_nchw(float *out, const float *bias, int act, int C, int64_t HW, int64_t n, mrec_cuda *cu) {
    if (HW % 4 == 0 && ((uintptr_t)out & 15) == 0)
        bias_act4<<<mrec_grid(n / 4, 256), 256, 0, cu->stream>>>((float4 *)out, bias, act, C, HW / 4, n / 4);
    else
        bias_act<<<mrec_grid(n, 256), 256, 0, cu->stream>>>(out, bias, act, C, HW, n);
    return MREC_CUDA_LAUNCHED("conv2d bias and activation");
}

/* as mrec_conv2d_nhwc_bf16_cuda launches them after cuDNN's convolution */
mrec_status emu_bias_act_nhwc(uint16_t *out, const float *bias, int relu, int C, int64_t n, mrec_cuda *cu) {
    if (C % 8 == 0 && ((uintptr_t)out & 15) == 0)
        bias_act_nhwc8<<<mrec_grid(n / 8, 256), 256, 0, cu->stream>>>((uint4 *)out, bias, relu, C, n / 8);
    else
        bias_act_nhwc<<<mrec_grid(n, 256), 256, 0, cu->stream>>>((__nv_bfloat16 *)out, bias, relu, C, n);
    return MREC_CUDA_LAUNCHED("conv2d_nhwc_bf16 bias and ReLU");
}

/* as mrec_conv2d_nhwc_bf16_cuda launches it for a chunk of m output pixels from pixel r0 */
mrec_status emu_im2col_nhwc8(uint16_t *rows, const uint16_t *in, const mrec_conv2d_shape *s, int64_t r0, int m, mrec_cuda *cu) {
    int Ho = mrec_conv2d_out_h(s), Wo = mrec_conv2d_out_w(s), K = s->KH * s->KW * s->C_in;
    int64_t n8 = (int64_t)m * K / 8;
    im2col_nhwc8<<<mrec_grid(n8, 256), 256, 0, cu->stream>>>((uint4 *)rows, (const uint4 *)in, *s, Ho, Wo, r0, n8);
    return MREC_CUDA_LAUNCHED("conv2d_nhwc_bf16 columns");
}
