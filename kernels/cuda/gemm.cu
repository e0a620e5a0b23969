/* gemm.cu: fp32 GEMM on the GPU through cuBLAS, with mrec's row-major
 * contract. cuBLAS is column-major, and a row-major (M, N) matrix is a
 * column-major (N, M) one, so C = op(A) op(B) is computed as
 * C^T = op(B)^T op(A)^T with the operands swapped. */
#include "cuda_internal.h"

/* C (M, N) += bias (N) broadcast over rows; one thread per element. */
__global__ static void add_bias_rows(float *C, const float *bias, int M, int N, int ldc) {
    size_t at = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (at >= (size_t)M * N) return;
    size_t i = at / N, j = at % N;
    C[i * ldc + j] += bias[j];
}

extern "C" mrec_status mrec_gemm_cuda(float *C, const float *A, const float *B, const float *bias,
                                      float alpha, float beta, int trans_a, int trans_b,
                                      int M, int N, int K, int lda, int ldb, int ldc, mrec_cuda *cu) {
    if (M <= 0 || N <= 0) return MREC_OK;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    mrec_status st = mrec_cublas_check(
        cublasSgemm(cu->blas, op_b, op_a, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc),
        "cublasSgemm");
    if (st || !bias) return st;
    unsigned blocks = (unsigned)(((size_t)M * N + 255) / 256);
    add_bias_rows<<<blocks, 256, 0, cu->stream>>>(C, bias, M, N, ldc);
    return MREC_CUDA_LAUNCHED("add_bias_rows");
}

/* For b < batch: C_b (M, N) = alpha op(A_b) op(B_b) + beta C_b, with
 * X_b = X + b * stride_x (elements; 0 broadcasts). One cuBLAS call. */
extern "C" mrec_status mrec_gemm_batched_cuda(float *C, const float *A, const float *B, float alpha, float beta,
                                              int trans_a, int trans_b, int batch, int M, int N, int K, int lda,
                                              int ldb, int ldc, int64_t stride_a, int64_t stride_b, int64_t stride_c,
                                              mrec_cuda *cu) {
    if (batch <= 0 || M <= 0 || N <= 0) return MREC_OK;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    return mrec_cublas_check(cublasSgemmStridedBatched(cu->blas, op_b, op_a, N, M, K, &alpha, B, ldb, stride_b, A, lda,
                                                       stride_a, &beta, C, ldc, stride_c, batch),
                             "cublasSgemmStridedBatched");
}
