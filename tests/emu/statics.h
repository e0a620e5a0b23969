/* statics.h: launchers for static kernels of kernels/cuda/gemm.cu, conv.cu and ops.cu that only their cuBLAS(Lt)
 * and cuDNN routes reach (not emulated), so that the emulator's tests run them directly. gemm_statics.cu,
 * conv_statics.cu and ops_statics.cu define them; the Makefile appends each, transformed, to its kernel file's
 * emulated copy, where the static kernels are in scope. Each launches as the kernel file's own route does. */
#pragma once
#include "cuda_internal.h"

/* gemm.cu */
mrec_status emu_convert_bf16(uint16_t *out, const float *in, int act, int64_t n, mrec_cuda *cu); /* f32_to_bf16(_4) */
mrec_status emu_pack_bf16(uint16_t *out, const float *in, int rows, int cols, int ld, mrec_cuda *cu); /* f32_to_bf16_rows */
mrec_status emu_add_bias_rows(float *C, const float *bias, int M, int N, int ldc, mrec_cuda *cu);
mrec_status emu_linear_bf16_plain(void *C, int c_bf16, const uint16_t *A, const uint16_t *W, const float *bias, const uint16_t *bias16,
                                  int act, float beta, int M, int N, int K, int ldc, mrec_cuda *cu);
/* conv.cu */
mrec_status emu_bias_act_nchw(float *out, const float *bias, int act, int C, int64_t HW, int64_t n, mrec_cuda *cu); /* bias_act(4) */
mrec_status emu_bias_act_nhwc(uint16_t *out, const float *bias, int relu, int C, int64_t n, mrec_cuda *cu);        /* bias_act_nhwc(8) */
mrec_status emu_im2col_nhwc8(uint16_t *rows, const uint16_t *in, const mrec_conv2d_shape *s, int64_t r0, int m, mrec_cuda *cu);
/* ops.cu */
mrec_status emu_unit_rows(float *x, int n, int dim, mrec_cuda *cu); /* unit_rows_kernel, mrec_gram_topk_cuda's first step */
