/* gemm_statics.cu: appended to kernels/cuda/gemm.cu's emulated copy (tests/emu/statics.h says why). */
#include "statics.h"

mrec_status emu_convert_bf16(uint16_t *out, const float *in, int act, int64_t n, mrec_cuda *cu) { return convert_bf16(out, in, act, n, cu); }

mrec_status emu_pack_bf16(uint16_t *out, const float *in, int rows, int cols, int ld, mrec_cuda *cu) {
    return pack_bf16(out, in, rows, cols, ld, cu);
}

/* as mrec_gemm_cuda launches it after cublasSgemm */
mrec_status emu_add_bias_rows(float *C, const float *bias, int M, int N, int ldc, mrec_cuda *cu) {
    unsigned blocks = (unsigned)(((size_t)M * N + 255) / 256);
    add_bias_rows<<<blocks, 256, 0, cu->stream>>>(C, bias, M, N, ldc);
    return MREC_CUDA_LAUNCHED("add_bias_rows");
}

/* as mrec_linear_bf16_cuda launches it where cuBLASLt has no algorithm */
mrec_status emu_linear_bf16_plain(void *C, int c_bf16, const uint16_t *A, const uint16_t *W, const float *bias, const uint16_t *bias16,
                                  int act, float beta, int M, int N, int K, int ldc, mrec_cuda *cu) {
    linear_bf16_plain<<<mrec_grid((int64_t)M * N, 256), 256, 0, cu->stream>>>(C, c_bf16, (const __nv_bfloat16 *)A, (const __nv_bfloat16 *)W, bias,
                                                                          (const __nv_bfloat16 *)bias16, act, beta, M, N, K, ldc);
    return MREC_CUDA_LAUNCHED("linear_bf16 (plain)");
}
