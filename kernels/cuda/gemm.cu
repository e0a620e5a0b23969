/* gemm.cu: fp32 GEMM on the GPU through cuBLAS, with mrec's row-major
 * contract. cuBLAS is column-major, and a row-major (M, N) matrix is a
 * column-major (N, M) one, so C = op(A) op(B) is computed as
 * C^T = op(B)^T op(A)^T with the operands swapped. */
#include "cuda_internal.h"

#include <cuda_bf16.h>

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

/* ---- cuBLASLt: precisions and fused epilogues ------------------------------- */

__global__ static void f32_to_bf16(__nv_bfloat16 *out, const float *in, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i]); /* round to nearest even, as torch's .to(bfloat16) */
}

/* out (n) bf16 = in (n) fp32 */
extern "C" mrec_status mrec_f32_to_bf16_cuda(uint16_t *out, const float *in, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    int64_t blocks = (n + 255) / 256;
    f32_to_bf16<<<(unsigned)(blocks < 65535 * 32 ? blocks : 65535 * 32), 256, 0, cu->stream>>>((__nv_bfloat16 *)out, in, n);
    return MREC_CUDA_LAUNCHED("f32_to_bf16");
}

typedef struct {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
} lt_plan;

static void lt_free(lt_plan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
}

/* C (M, N) fp32 = act(op(A) op(B) + bias), the row-major contract of
 * mrec_gemm_cuda. A and B are fp32 for FP32 and TF32, bf16 for BF16 (from
 * mrec_f32_to_bf16_cuda; weights converted once at load); accumulation is
 * fp32 in all three. ReLU, and the tanh GELU, run in cuBLASLt's epilogue with
 * the bias; other activations in one element-wise pass after it. */
extern "C" mrec_status mrec_gemm_ex_cuda(float *C, const void *A, const void *B, const float *bias, int act, float slope,
                                         mrec_precision precision, int trans_a, int trans_b, int M, int N, int K,
                                         int lda, int ldb, int ldc, mrec_cuda *cu) {
    if (M <= 0 || N <= 0) return MREC_OK;
    cublasComputeType_t compute = precision == MREC_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    cudaDataType_t in_type = precision == MREC_PREC_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasLtEpilogue_t epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    int act_after = act >= 0;
    if (act == MREC_ACT_RELU) epi = bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU, act_after = 0;
    if (act == MREC_ACT_GELU_TANH) epi = bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU, act_after = 0;
    /* Column-major view: C^T (N, M) = op(B)^T (N, K) op(A)^T (K, M). */
    cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cudaDataType_t bias_type = CUDA_R_32F;
    lt_plan p = {0};
    mrec_status st = mrec_cublas_check(cublasLtMatmulDescCreate(&p.op, compute, CUDA_R_32F), "cublasLt desc");
    if (!st) st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first), "cublasLt");
    if (!st) st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second), "cublasLt");
    if (!st) st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "cublasLt epilogue");
    if (!st && bias) st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias), "cublasLt bias");
    if (!st && bias) st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type), "cublasLt bias");
    /* stored shapes, column-major: B is (N, K) when trans_b else (K, N) row-major, i.e. (K, N) or (N, K) column-major */
    if (!st) st = mrec_cublas_check(cublasLtMatrixLayoutCreate(&p.a, in_type, trans_b ? K : N, trans_b ? N : K, ldb), "cublasLt layout");
    if (!st) st = mrec_cublas_check(cublasLtMatrixLayoutCreate(&p.b, in_type, trans_a ? M : K, trans_a ? K : M, lda), "cublasLt layout");
    if (!st) st = mrec_cublas_check(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, N, M, ldc), "cublasLt layout");
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    size_t ws = MREC_LT_WORKSPACE;
    if (!st) st = mrec_cublas_check(cublasLtMatmulPreferenceCreate(&pref), "cublasLt preference");
    if (!st) st = mrec_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), "cublasLt");
    if (!st) st = mrec_cublas_check(cublasLtMatmulAlgoGetHeuristic(cu->lt, p.op, p.a, p.b, p.c, p.c, pref, 1, &heur, &found), "cublasLt heuristic");
    if (!st && found == 0) st = mrec_fail(MREC_ERR_UNSUPPORTED, "gemm %dx%dx%d: cuBLASLt has no algorithm for it", M, N, K);
    const float alpha = 1.0f, beta = 0.0f;
    if (!st) st = mrec_cublas_check(cublasLtMatmul(cu->lt, p.op, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &heur.algo,
                                                   cu->lt_work, ws, cu->stream), "cublasLtMatmul");
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    lt_free(&p);
    if (st || !act_after) return st;
    if (ldc == N) return mrec_activation_cuda(C, C, (mrec_act)act, slope, (int64_t)M * N, cu);
    for (int i = 0; i < M && !st; i++) /* strided rows (ldc > N): one pass per row */
        st = mrec_activation_cuda(C + (size_t)i * ldc, C + (size_t)i * ldc, (mrec_act)act, slope, N, cu);
    return st;
}
