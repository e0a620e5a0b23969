/* gemm.cu: GEMM on the GPU through cuBLAS and cuBLASLt, with mrec's
 * row-major contract. cuBLAS is column-major, and a row-major (M, N) matrix
 * is a column-major (N, M) one, so C = op(A) op(B) is computed as
 * C^T = op(B)^T op(A)^T with the operands swapped. fp32 stays fp32 (no
 * TF32) in both; a product with a bias goes through cuBLASLt, whose
 * epilogue adds it. */
#include "cuda_internal.h"

#include <cuda_bf16.h>
#include <string.h>

/* C (M, N) += bias (N) broadcast over rows; one thread per element. */
__global__ static void add_bias_rows(float *C, const float *bias, int M, int N, int ldc) {
    size_t at = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (at >= (size_t)M * N) return;
    size_t i = at / N, j = at % N;
    C[i * ldc + j] += bias[j];
}

static mrec_status lt_matmul(void *C, cudaDataType_t c_type, const void *A, const void *B, const void *bias, int act, float slope,
                             float alpha, float beta, cublasComputeType_t compute, cudaDataType_t in_type, int trans_a, int trans_b,
                             int M, int N, int K, int lda, int ldb, int ldc, mrec_cuda *cu, int *no_algo);

extern "C" mrec_status mrec_gemm_cuda(float *C, const float *A, const float *B, const float *bias,
                                      float alpha, float beta, int trans_a, int trans_b,
                                      int M, int N, int K, int lda, int ldb, int ldc, mrec_cuda *cu) {
    if (M <= 0 || N <= 0) return MREC_OK;
    if (bias && K > 0) {
        /* cuBLASLt in full fp32 (compute 32F: no TF32) adds the bias in the product's epilogue, where SGEMM
         * wrote C and a pass of its own read it back (an encoder's every linear layer) */
        int no_algo = 0;
        mrec_status st = lt_matmul(C, CUDA_R_32F, A, B, bias, MREC_GEMM_NO_ACT, 0, alpha, beta, CUBLAS_COMPUTE_32F, CUDA_R_32F, trans_a, trans_b,
                                   M, N, K, lda, ldb, ldc, cu, &no_algo);
        if (!st || !no_algo) return st;
        mrec_clear_error(); /* a shape or alignment cuBLASLt has no algorithm for: SGEMM, then the bias */
    }
    /* K = 0 (C = beta C + bias) allows lda = K = 0, which cuBLAS refuses (it wants >= 1); nothing is read then. */
    if (K == 0) lda = lda > 0 ? lda : 1, ldb = ldb > 0 ? ldb : 1;
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
    if (K == 0) lda = lda > 0 ? lda : 1, ldb = ldb > 0 ? ldb : 1; /* as in mrec_gemm_cuda */
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    return mrec_cublas_check(cublasSgemmStridedBatched(cu->blas, op_b, op_a, N, M, K, &alpha, B, ldb, stride_b, A, lda,
                                                       stride_a, &beta, C, ldc, stride_c, batch),
                             "cublasSgemmStridedBatched");
}

/* ---- cuBLASLt: precisions and fused epilogues ------------------------------- */

/* act < 0: none; else the value passes through mrec_activate first (a feed-forward block's activation) */
__device__ static __nv_bfloat16 to_bf16(float x, int act) {
    return __float2bfloat16_rn(act < 0 ? x : mrec_activate(x, (mrec_act)act, 0.0f)); /* nearest even, as torch's .to(bfloat16) */
}

__global__ static void f32_to_bf16(__nv_bfloat16 *out, const float *in, int act, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = to_bf16(in[i], act);
}

/* Four values a thread: a 16-byte load, an 8-byte store (each bf16 product's activation operand passes here) */
__global__ static void f32_to_bf16_4(__nv_bfloat162 *out, const float4 *in, int act, int64_t n4) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (int64_t)gridDim.x * blockDim.x) {
        float4 v = in[i];
        out[2 * i] = __halves2bfloat162(to_bf16(v.x, act), to_bf16(v.y, act)); /* .x the first: the lower address */
        out[2 * i + 1] = __halves2bfloat162(to_bf16(v.z, act), to_bf16(v.w, act));
    }
}

/* out (n) bf16 = act(in) (n) fp32, act < 0 for none */
static mrec_status convert_bf16(uint16_t *out, const float *in, int act, int64_t n, mrec_cuda *cu) {
    if (n <= 0) return MREC_OK;
    int wide = n % 4 == 0 && ((uintptr_t)in & 15) == 0 && ((uintptr_t)out & 7) == 0;
    unsigned grid = mrec_grid(wide ? n / 4 : n, 256);
    if (wide) f32_to_bf16_4<<<grid, 256, 0, cu->stream>>>((__nv_bfloat162 *)out, (const float4 *)in, act, n / 4);
    else f32_to_bf16<<<grid, 256, 0, cu->stream>>>((__nv_bfloat16 *)out, in, act, n);
    return MREC_CUDA_LAUNCHED(act < 0 ? "f32_to_bf16" : "activation to bf16");
}

/* out (n) bf16 = in (n) fp32 */
extern "C" mrec_status mrec_f32_to_bf16_cuda(uint16_t *out, const float *in, int64_t n, mrec_cuda *cu) {
    return convert_bf16(out, in, MREC_GEMM_NO_ACT, n, cu);
}

__global__ static void f32_to_bf16_rows(__nv_bfloat16 *out, const float *in, int cols, int ld, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i / cols * ld + i % cols]);
}

/* out (rows, cols) bf16, packed = in (rows, cols) fp32, row stride ld */
static mrec_status pack_bf16(uint16_t *out, const float *in, int rows, int cols, int ld, mrec_cuda *cu) {
    int64_t n = (int64_t)rows * cols;
    if (ld == cols || rows <= 1) return convert_bf16(out, in, MREC_GEMM_NO_ACT, n, cu);
    if (n <= 0) return MREC_OK;
    f32_to_bf16_rows<<<mrec_grid(n, 256), 256, 0, cu->stream>>>((__nv_bfloat16 *)out, in, cols, ld, n);
    return MREC_CUDA_LAUNCHED("f32_to_bf16 (rows)");
}

typedef struct {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulPreference_t pref;
} lt_plan;

static void lt_free(lt_plan *p) {
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->c) cublasLtMatrixLayoutDestroy(p->c);
    if (p->pref) cublasLtMatmulPreferenceDestroy(p->pref);
}

/* The largest power of two up to 256 that divides the address: cuBLASLt
 * assumes 256-byte aligned operands unless told, and an operand inside a
 * larger buffer (a row of a sequence, one weight of a model's block) often
 * is not. */
static uint32_t alignment_of(const void *p) {
    uint32_t a = 256;
    while (a > 1 && (uintptr_t)p % a) a >>= 1;
    return a;
}

/* What cuBLASLt's heuristic answers depends on: the product's shape, types,
 * epilogue and operand alignments. The query costs tens of microseconds of
 * host time, as long as a bf16 product of an encoder's layer takes on the
 * GPU, so its answer is kept per key in the device context, with the
 * descriptors it was asked with: making and destroying five of them around
 * each product was host time a small batch (a single query in mrec serve)
 * waited on; a later product of the key sets only its bias pointer. */
typedef struct {
    int compute, in_type, c_type, trans_a, trans_b, M, N, K, lda, ldb, ldc, epi;
    uint32_t align_a, align_b, align_c, align_bias; /* the heuristic reads the bias pointer's alignment off the descriptor */
} lt_key;

struct mrec_lt_algo {
    lt_key key;
    int found; /* 0: cuBLASLt has no algorithm for it (or the one it gave refused to run) */
    cublasLtMatmulAlgo_t algo;
    lt_plan plan; /* the descriptors (where found) */
};

void mrec_lt_algos_free(mrec_cuda *cu) {
    for (int i = 0; i < cu->n_lt_algos; i++) lt_free(&cu->lt_algos[i].plan);
    free(cu->lt_algos);
    cu->lt_algos = NULL, cu->n_lt_algos = cu->cap_lt_algos = 0;
}

static struct mrec_lt_algo *lt_algo_find(mrec_cuda *cu, const lt_key *k) {
    for (int i = 0; i < cu->n_lt_algos; i++)
        if (!memcmp(&cu->lt_algos[i].key, k, sizeof *k)) return &cu->lt_algos[i];
    return NULL;
}

/* The most answers kept: a text extraction's products change their row count with every batch (its real tokens),
 * so the oldest go first rather than the list growing, and its scan with it, over a catalogue's batches. */
#define LT_ALGOS_MAX 512

/* Keeps the answer for k; the entry takes *plan over (zeroed here) where found, else frees it. */
static mrec_status lt_algo_keep(mrec_cuda *cu, const lt_key *k, int found, const cublasLtMatmulAlgo_t *algo, lt_plan *plan) {
    if (cu->n_lt_algos == LT_ALGOS_MAX) {
        lt_free(&cu->lt_algos[0].plan);
        memmove(cu->lt_algos, cu->lt_algos + 1, sizeof *cu->lt_algos * (size_t)--cu->n_lt_algos);
    }
    if (cu->n_lt_algos == cu->cap_lt_algos) {
        int cap = cu->cap_lt_algos ? 2 * cu->cap_lt_algos : 32;
        struct mrec_lt_algo *grown = (struct mrec_lt_algo *)realloc(cu->lt_algos, sizeof *grown * cap);
        if (!grown) return mrec_fail(MREC_ERR_NOMEM, "cuBLASLt: %d algorithms", cap);
        cu->lt_algos = grown, cu->cap_lt_algos = cap;
    }
    struct mrec_lt_algo *e = &cu->lt_algos[cu->n_lt_algos++];
    memset(e, 0, sizeof *e);
    e->key = *k, e->found = found;
    if (found) e->algo = *algo, e->plan = *plan;
    else lt_free(plan);
    memset(plan, 0, sizeof *plan);
    return MREC_OK;
}

/* C (M, N), row stride ldc, = act(C) in place */
static mrec_status activate(float *C, int act, float slope, int M, int N, int ldc, mrec_cuda *cu) {
    if (ldc == N) return mrec_activation_cuda(C, C, (mrec_act)act, slope, (int64_t)M * N, cu);
    mrec_status st = MREC_OK;
    for (int i = 0; i < M && !st; i++) /* strided rows (ldc > N): one pass per row */
        st = mrec_activation_cuda(C + (size_t)i * ldc, C + (size_t)i * ldc, (mrec_act)act, slope, N, cu);
    return st;
}

/* C (M, N) = act(alpha op(A) op(B) + beta C + bias) through cuBLASLt, the
 * row-major contract of mrec_gemm_cuda; A, B of in_type (fp32 or bf16),
 * fp32 accumulation, compute 32F or 32F_FAST_TF32. C and the bias are fp32,
 * or both bf16 (c_type CUDA_R_16BF, bf16 operands: C rounded once, after the
 * bias and the epilogue's activation). ReLU and the tanh GELU run in the
 * epilogue with the bias; on an fp32 C other activations in one
 * element-wise pass after it (a bf16 C takes only the epilogue's). *no_algo
 * is set (and MREC_ERR_UNSUPPORTED returned) when cuBLASLt has no algorithm
 * for the shape and alignments. */
static mrec_status lt_matmul(void *C, cudaDataType_t c_type, const void *A, const void *B, const void *bias, int act, float slope,
                             float alpha, float beta, cublasComputeType_t compute, cudaDataType_t in_type, int trans_a, int trans_b,
                             int M, int N, int K, int lda, int ldb, int ldc, mrec_cuda *cu, int *no_algo) {
    if (no_algo) *no_algo = 0;
    if (M <= 0 || N <= 0) return MREC_OK;
    /* A bias that is not 16-byte aligned is added by its own kernel after the product (into an fp32 C). */
    const void *epi_bias = bias && alignment_of(bias) >= 16 ? bias : NULL;
    int c_bf16 = c_type == CUDA_R_16BF;
    if (c_bf16 && ((bias && !epi_bias) || (act >= 0 && act != MREC_ACT_RELU && act != MREC_ACT_GELU_TANH))) {
        if (no_algo) *no_algo = 1; /* the caller's own kernel does it */
        return mrec_fail(MREC_ERR_UNSUPPORTED, "gemm %dx%dx%d to bf16: a bias at %p or activation %d outside the epilogue", M, N, K,
                         bias, act);
    }
    cublasLtEpilogue_t epi = epi_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    int act_after = act >= 0;
    if (act == MREC_ACT_RELU && epi_bias == bias) epi = bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU, act_after = 0;
    if (act == MREC_ACT_GELU_TANH && epi_bias == bias)
        epi = bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU, act_after = 0;
    /* Column-major view: C^T (N, M) = op(B)^T (N, K) op(A)^T (K, M). */
    size_t ws = MREC_LT_WORKSPACE;
    uint32_t align_first = alignment_of(B), align_second = alignment_of(A), align_c = alignment_of(C);
    lt_key key;
    memset(&key, 0, sizeof key); /* no padding bytes left to compare */
    key.compute = (int)compute, key.in_type = (int)in_type, key.trans_a = trans_a, key.trans_b = trans_b;
    key.M = M, key.N = N, key.K = K, key.lda = lda, key.ldb = ldb, key.ldc = ldc, key.epi = (int)epi, key.c_type = (int)c_type;
    key.align_a = align_first, key.align_b = align_second, key.align_c = align_c, key.align_bias = epi_bias ? alignment_of(epi_bias) : 0;
    mrec_status st = MREC_OK;
    if (!lt_algo_find(cu, &key)) { /* the first product of the key: its descriptors, and the heuristic's answer */
        cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
        cudaDataType_t bias_type = c_type; /* a bf16 C takes a bf16 bias, as PyTorch's bf16 linear layers do */
        lt_plan p = {0};
        st = mrec_cublas_check(cublasLtMatmulDescCreate(&p.op, compute, CUDA_R_32F), "cublasLt desc");
        if (!st) st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first), "cublasLt");
        if (!st) st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second), "cublasLt");
        if (!st) st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi), "cublasLt epilogue");
        if (!st && epi_bias) st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type), "cublasLt bias");
        if (!st && epi_bias) st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &epi_bias, sizeof epi_bias), "cublasLt bias");
        /* stored shapes, column-major: B is (N, K) when trans_b else (K, N) row-major, i.e. (K, N) or (N, K) column-major */
        if (!st) st = mrec_cublas_check(cublasLtMatrixLayoutCreate(&p.a, in_type, trans_b ? K : N, trans_b ? N : K, ldb), "cublasLt layout");
        if (!st) st = mrec_cublas_check(cublasLtMatrixLayoutCreate(&p.b, in_type, trans_a ? M : K, trans_a ? K : M, lda), "cublasLt layout");
        if (!st) st = mrec_cublas_check(cublasLtMatrixLayoutCreate(&p.c, c_type, N, M, ldc), "cublasLt layout");
        if (!st) st = mrec_cublas_check(cublasLtMatmulPreferenceCreate(&p.pref), "cublasLt preference");
        if (!st) st = mrec_cublas_check(cublasLtMatmulPreferenceSetAttribute(p.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), "cublasLt");
        if (!st) st = mrec_cublas_check(cublasLtMatmulPreferenceSetAttribute(p.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_first, sizeof align_first), "cublasLt");
        if (!st) st = mrec_cublas_check(cublasLtMatmulPreferenceSetAttribute(p.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_second, sizeof align_second), "cublasLt");
        if (!st) st = mrec_cublas_check(cublasLtMatmulPreferenceSetAttribute(p.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof align_c), "cublasLt");
        if (!st) st = mrec_cublas_check(cublasLtMatmulPreferenceSetAttribute(p.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof align_c), "cublasLt");
        cublasLtMatmulHeuristicResult_t heur;
        int found = 0;
        if (!st) {
            cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(cu->lt, p.op, p.a, p.b, p.c, p.c, p.pref, 1, &heur, &found);
            if (hs == CUBLAS_STATUS_NOT_SUPPORTED) hs = CUBLAS_STATUS_SUCCESS, found = 0;
            st = mrec_cublas_check(hs, "cublasLt heuristic");
        }
        if (p.pref) cublasLtMatmulPreferenceDestroy(p.pref), p.pref = NULL; /* only the query reads it */
        if (!st) st = lt_algo_keep(cu, &key, found, &heur.algo, &p); /* the entry keeps the descriptors */
        lt_free(&p); /* nothing left after a keep; everything after a failure */
    }
    struct mrec_lt_algo *known = st ? NULL : lt_algo_find(cu, &key);
    if (!st && !known->found) {
        if (no_algo) *no_algo = 1;
        st = mrec_fail(MREC_ERR_UNSUPPORTED, "gemm %dx%dx%d: cuBLASLt has no algorithm for it", M, N, K);
    }
    /* this product's bias: the key fixes whether there is one, not where it is */
    if (!st && epi_bias)
        st = mrec_cublas_check(cublasLtMatmulDescSetAttribute(known->plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &epi_bias, sizeof epi_bias),
                               "cublasLt bias");
    if (!st) {
        const lt_plan *p = &known->plan;
        cublasStatus_t ms = cublasLtMatmul(cu->lt, p->op, &alpha, B, p->a, A, p->b, &beta, C, p->c, C, p->c, &known->algo, cu->lt_work,
                                           ws, cu->stream);
        /* a heuristic's answer is no promise that it runs: one that refused is not asked again, the key falls back */
        if (ms == CUBLAS_STATUS_NOT_SUPPORTED) known->found = 0;
        if (ms == CUBLAS_STATUS_NOT_SUPPORTED && no_algo) *no_algo = 1;
        st = mrec_cublas_check(ms, "cublasLtMatmul");
    }
    if (!st && bias && !epi_bias) {
        unsigned blocks = (unsigned)(((size_t)M * N + 255) / 256);
        add_bias_rows<<<blocks, 256, 0, cu->stream>>>((float *)C, (const float *)bias, M, N, ldc);
        st = MREC_CUDA_LAUNCHED("add_bias_rows");
    }
    return st || !act_after ? st : activate((float *)C, act, slope, M, N, ldc, cu);
}

/* C (M, N) fp32 = act(op(A) op(B) + bias), the row-major contract of
 * mrec_gemm_cuda. A and B are fp32 for FP32 and TF32, bf16 for BF16 (from
 * mrec_f32_to_bf16_cuda; weights converted once at load); accumulation is
 * fp32 in all three. */
extern "C" mrec_status mrec_gemm_ex_cuda(float *C, const void *A, const void *B, const float *bias, int act, float slope,
                                         mrec_precision precision, int trans_a, int trans_b, int M, int N, int K,
                                         int lda, int ldb, int ldc, mrec_cuda *cu) {
    cublasComputeType_t compute = precision == MREC_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    cudaDataType_t in_type = precision == MREC_PREC_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    int no_algo = 0;
    mrec_status st = lt_matmul(C, CUDA_R_32F, A, B, bias, act, slope, 1.0f, 0.0f, compute, in_type, trans_a, trans_b, M, N, K, lda, ldb,
                               ldc, cu, &no_algo);
    if (!st || !no_algo || precision == MREC_PREC_BF16) return st;
    /* fp32 operands cuBLASLt has no algorithm for (odd leading dimensions): cuBLAS's SGEMM, in full fp32 */
    st = mrec_gemm_cuda(C, (const float *)A, (const float *)B, bias, 1.0f, 0.0f, trans_a, trans_b, M, N, K, lda, ldb, ldc, cu);
    return st || act < 0 ? st : activate(C, act, slope, M, N, ldc, cu);
}

/* ---- the GEMM entry's TF32 and bf16 path -------------------------------------- */

/* Elements an operand of `rows` rows of `cols` with stride ld spans. */
static int64_t span(int rows, int cols, int ld) { return rows > 0 && cols > 0 ? (int64_t)(rows - 1) * ld + cols : 0; }

/* The bf16 twin of p[0, n) when p lies inside uploaded weights that have one. */
static const uint16_t *bf16_twin(const mrec_cuda *cu, const float *p, int64_t n) {
    for (int i = 0; i < cu->n_weights; i++) {
        const mrec_cuda_weights *w = &cu->weights[i];
        if (w->bf16 && p >= w->f32 && p + n <= w->f32 + w->n) return w->bf16 + (p - w->f32);
    }
    return NULL;
}

/* Makes the conversion buffer hold at least n bf16 values. It grows once to
 * the largest activation operand a model multiplies, then stays. */
static mrec_status bf16_scratch(mrec_cuda *cu, int64_t n) {
    if ((size_t)n <= cu->bf16_cap) return MREC_OK;
    mrec_status st = mrec_cuda_check(cudaStreamSynchronize(cu->stream), "bf16 buffer");
    if (st) return st;
    if (cu->bf16_buf) cudaFree(cu->bf16_buf);
    cu->bf16_buf = NULL, cu->bf16_cap = 0;
    size_t want = (size_t)n + (size_t)n / 4;
    st = mrec_cuda_alloc(cu->device, (void **)&cu->bf16_buf, want * sizeof(uint16_t), "bf16 operands");
    if (!st) cu->bf16_cap = want;
    return st;
}

/* Device arrays (in[i], n[i] floats) as bf16 operands: each its twin, or
 * rounded into the conversion buffer (grown to hold them, 256-byte aligned
 * one after another). For ops outside a GEMM: a convolution's weight and bias. */
mrec_status mrec_cuda_bf16_operands(const uint16_t **out, const float *const *in, const int64_t *n, int count, mrec_cuda *cu) {
    int64_t need = 0;
    for (int i = 0; i < count; i++)
        if (!(out[i] = in[i] ? bf16_twin(cu, in[i], n[i]) : NULL) && in[i]) need += (n[i] + 127) / 128 * 128;
    mrec_status st = need ? bf16_scratch(cu, need) : MREC_OK;
    int64_t at = 0;
    for (int i = 0; !st && i < count; i++) {
        if (out[i] || !in[i]) continue;
        out[i] = cu->bf16_buf + at;
        st = mrec_f32_to_bf16_cuda(cu->bf16_buf + at, in[i], n[i], cu);
        at += (n[i] + 127) / 128 * 128;
    }
    return st;
}

/* W (n floats) as a bf16 operand: its twin, or converted into the conversion
 * buffer at offset at (which the caller has made room for), where a single
 * mrec_gemm_lt_cuda puts it, so the product is the same. */
static mrec_status weight_bf16(const uint16_t **w, mrec_cuda *cu, const float *W, int64_t n, int64_t at) {
    *w = bf16_twin(cu, W, n);
    if (*w) return MREC_OK;
    *w = cu->bf16_buf + at;
    return mrec_f32_to_bf16_cuda(cu->bf16_buf + at, W, n, cu);
}

extern "C" mrec_status mrec_gemm_lt_cuda(float *C, const float *A, const float *B, const float *bias, float alpha, float beta,
                                         mrec_precision precision, int trans_a, int trans_b, int M, int N, int K, int lda,
                                         int ldb, int ldc, mrec_cuda *cu) {
    if (M <= 0 || N <= 0) return MREC_OK;
    /* an empty product (beta C + bias) is the same in every precision: cuBLAS, without a K = 0 layout for cuBLASLt */
    if (K <= 0) return mrec_gemm_cuda(C, A, B, bias, alpha, beta, trans_a, trans_b, M, N, 0, lda, ldb, ldc, cu);
    int no_algo = 0;
    mrec_status st;
    if (precision == MREC_PREC_BF16) {
        int ra = trans_a ? K : M, ca = trans_a ? M : K, rb = trans_b ? N : K, cb = trans_b ? K : N;
        const uint16_t *a = bf16_twin(cu, A, span(ra, ca, lda)), *b = bf16_twin(cu, B, span(rb, cb, ldb));
        /* An operand without a twin is converted packed, its rows one after another: a strided one (a batch's
         * [CLS] rows, T * H apart) would otherwise take the whole span between its rows. */
        int lda_16 = a ? lda : ca, ldb_16 = b ? ldb : cb;
        int64_t at_b = a ? 0 : ((int64_t)ra * ca + 127) / 128 * 128; /* B after A in the buffer, 256-byte aligned */
        st = bf16_scratch(cu, at_b + (b ? 0 : (int64_t)rb * cb));
        if (!st && !a) st = pack_bf16(cu->bf16_buf, A, ra, ca, lda, cu), a = cu->bf16_buf;
        if (!st && !b) st = pack_bf16(cu->bf16_buf + at_b, B, rb, cb, ldb, cu), b = cu->bf16_buf + at_b;
        if (!st)
            st = lt_matmul(C, CUDA_R_32F, a, b, bias, MREC_GEMM_NO_ACT, 0, alpha, beta, CUBLAS_COMPUTE_32F, CUDA_R_16BF, trans_a, trans_b, M,
                           N, K, lda_16, ldb_16, ldc, cu, &no_algo);
    } else {
        cublasComputeType_t compute = precision == MREC_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
        st = lt_matmul(C, CUDA_R_32F, A, B, bias, MREC_GEMM_NO_ACT, 0, alpha, beta, compute, CUDA_R_32F, trans_a, trans_b, M, N, K, lda,
                       ldb, ldc, cu, &no_algo);
    }
    if (st && no_algo) { /* an odd shape or alignment: this one product runs in fp32 */
        mrec_clear_error();
        st = mrec_gemm_cuda(C, A, B, bias, alpha, beta, trans_a, trans_b, M, N, K, lda, ldb, ldc, cu);
    }
    return st;
}

/* ---- three products of one operand in bf16 (attention's Q, K, V) ----------------- */

/* out[i] (R, N) = x (R, K) W[i]^T + b[i] for i = 0, 1, 2 with bf16 operands:
 * x converted once where three mrec_gemm_lt_cuda calls convert it three
 * times; the same conversion and the same products, so the same bits. */
extern "C" mrec_status mrec_linear3_bf16_cuda(float *const out[3], const float *x, const float *const W[3],
                                              const float *const b[3], int R, int N, int K, mrec_cuda *cu) {
    if (R <= 0 || N <= 0 || K <= 0) return MREC_OK;
    int64_t na = (int64_t)R * K, at_w = (na + 127) / 128 * 128, nw = (int64_t)N * K;
    mrec_status st = bf16_scratch(cu, at_w + nw);
    if (!st) st = mrec_f32_to_bf16_cuda(cu->bf16_buf, x, na, cu);
    for (int i = 0; i < 3 && !st; i++) {
        const uint16_t *w;
        if ((st = weight_bf16(&w, cu, W[i], nw, at_w))) break;
        int no_algo = 0;
        st = lt_matmul(out[i], CUDA_R_32F, cu->bf16_buf, w, b[i], MREC_GEMM_NO_ACT, 0, 1.0f, 0.0f, CUBLAS_COMPUTE_32F, CUDA_R_16BF, 0, 1, R, N,
                       K, K, K, N, cu, &no_algo);
        if (st && no_algo) { /* an odd shape: this product in fp32, as mrec_gemm_lt_cuda would */
            mrec_clear_error();
            st = mrec_gemm_cuda(out[i], x, W[i], b[i], 1.0f, 0.0f, 0, 1, R, N, K, K, K, N, cu);
        }
    }
    return st;
}

/* ---- a transformer's feed-forward block in bf16 -------------------------------- */

/* out (R, H) = beta out + act(x W1^T + b1) W2^T + b2 with bf16 operands and
 * fp32 accumulation; hidden (R, I) fp32 receives the first product. The
 * activation writes the second product's bf16 operand directly: the values
 * of mrec_linear_act, its output converted, then mrec_gemm_lt_cuda, without
 * the fp32 activations' write and read back in between. */
extern "C" mrec_status mrec_ffn_bf16_cuda(float *out, const float *x, const float *W1, const float *b1, mrec_act act,
                                          const float *W2, const float *b2, float beta, float *hidden, int R, int H, int I,
                                          mrec_cuda *cu) {
    if (R <= 0 || H <= 0 || I <= 0) return MREC_OK;
    mrec_status st = mrec_gemm_lt_cuda(hidden, x, W1, b1, 1.0f, 0.0f, MREC_PREC_BF16, 0, 1, R, I, H, H, H, I, cu);
    int64_t n = (int64_t)R * I, at_w = (n + 127) / 128 * 128; /* W2's conversion, if it has no twin, after the operand */
    /* the buffer may grow (and move) here; the first product read it before, in stream order */
    if (!st) st = bf16_scratch(cu, at_w + (int64_t)H * I);
    const uint16_t *w = NULL;
    if (!st) st = weight_bf16(&w, cu, W2, (int64_t)H * I, at_w);
    if (!st) st = convert_bf16(cu->bf16_buf, hidden, act, n, cu); /* the activation, rounded: the second product's operand */
    if (st) return st;
    int no_algo = 0;
    st = lt_matmul(out, CUDA_R_32F, cu->bf16_buf, w, b2, MREC_GEMM_NO_ACT, 0, 1.0f, beta, CUBLAS_COMPUTE_32F, CUDA_R_16BF, 0, 1, R, H, I, I, I,
                   H, cu, &no_algo);
    if (!st || !no_algo) return st;
    /* no bf16 algorithm for the shape: the activation in fp32 in place, then the product in fp32 */
    mrec_clear_error();
    st = mrec_activation_cuda(hidden, hidden, act, 0.0f, n, cu);
    return st ? st : mrec_gemm_cuda(out, hidden, W2, b2, 1.0f, beta, 0, 1, R, H, I, I, I, H, cu);
}

/* ---- a product of a bf16 transformer: bf16 activations in, fp32 or bf16 out -------- */

/* The product of mrec_linear_bf16_cuda where cuBLASLt has no algorithm (odd
 * row strides): one thread an output, fp32 sums, then the epilogue's steps in
 * its order. Slow, and only for shapes no encoder has. */
__global__ static void linear_bf16_plain(void *C, int c_bf16, const __nv_bfloat16 *A, const __nv_bfloat16 *W, const float *bias,
                                         const __nv_bfloat16 *bias16, int act, float beta, int M, int N, int K, int ldc) {
    for (int64_t at = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; at < (int64_t)M * N; at += (int64_t)gridDim.x * blockDim.x) {
        int i = (int)(at / N), j = (int)(at % N);
        float sum = 0.0f;
        for (int k = 0; k < K; k++) sum += __bfloat162float(A[(size_t)i * K + k]) * __bfloat162float(W[(size_t)j * K + k]);
        if (c_bf16) {
            __nv_bfloat16 *y = (__nv_bfloat16 *)C + (size_t)i * ldc + j;
            *y = __float2bfloat16_rn(sum + (bias16 ? __bfloat162float(bias16[j]) : 0.0f));
            if (act >= 0) *y = __float2bfloat16_rn(mrec_activate(__bfloat162float(*y), (mrec_act)act, 0.0f));
        } else {
            float *y = (float *)C + (size_t)i * ldc + j;
            *y = sum + (bias ? bias[j] : 0.0f) + (beta != 0.0f ? beta * *y : 0.0f);
        }
    }
}

/* mrec_linear_bf16_ref's contract. The weight (and for a bf16 C the bias) is
 * its bf16 twin or converted; a bf16 C gets the bias and a ReLU in cuBLASLt's
 * epilogue, another activation in one pass over C after it. */
extern "C" mrec_status mrec_linear_bf16_cuda(void *C, int c_bf16, const uint16_t *A, const float *W, const float *bias, int act,
                                             float beta, int M, int N, int K, int ldc, mrec_cuda *cu) {
    if (M <= 0 || N <= 0) return MREC_OK;
    if (K <= 0) return mrec_fail(MREC_ERR_ARG, "linear_bf16: %d x %d from K = %d", M, N, K);
    const float *in[2] = {W, c_bf16 ? bias : NULL};
    int64_t n[2] = {(int64_t)N * K, N};
    const uint16_t *ops[2];
    mrec_status st = mrec_cuda_bf16_operands(ops, in, n, 2, cu);
    if (st) return st;
    int relu = act == MREC_ACT_RELU, no_algo = 0;
    st = lt_matmul(C, c_bf16 ? CUDA_R_16BF : CUDA_R_32F, A, ops[0], c_bf16 ? (const void *)ops[1] : (const void *)bias,
                   relu ? MREC_ACT_RELU : MREC_GEMM_NO_ACT, 0, 1.0f, beta, CUBLAS_COMPUTE_32F, CUDA_R_16BF, 0, 1, M, N, K, K, K, ldc,
                   cu, &no_algo);
    if (st && no_algo) {
        mrec_clear_error();
        linear_bf16_plain<<<mrec_grid((int64_t)M * N, 256), 256, 0, cu->stream>>>(
            C, c_bf16, (const __nv_bfloat16 *)A, (const __nv_bfloat16 *)ops[0], bias, (const __nv_bfloat16 *)ops[1], act, beta, M, N, K, ldc);
        return MREC_CUDA_LAUNCHED("linear_bf16 (plain)");
    }
    if (st || !c_bf16 || act == MREC_GEMM_NO_ACT || relu) return st;
    if (ldc == N) return mrec_activation_bf16_cuda((uint16_t *)C, (mrec_act)act, (int64_t)M * N, cu);
    for (int i = 0; i < M && !st; i++) st = mrec_activation_bf16_cuda((uint16_t *)C + (size_t)i * ldc, (mrec_act)act, N, cu);
    return st;
}

/* ---- weights on the device ------------------------------------------------------ */

extern "C" mrec_status mrec_cuda_weights_upload(mrec_cuda *cu, float **out, const float *host, int64_t n, int with_bf16) {
    *out = NULL;
    if (n <= 0) return mrec_fail(MREC_ERR_ARG, "weights: %lld floats", (long long)n);
    if (cu->n_weights == cu->cap_weights) {
        int cap = cu->cap_weights ? 2 * cu->cap_weights : 8;
        mrec_cuda_weights *w = (mrec_cuda_weights *)realloc(cu->weights, sizeof *w * (size_t)cap);
        if (!w) return mrec_fail(MREC_ERR_NOMEM, "weights: the block table");
        cu->weights = w, cu->cap_weights = cap;
    }
    mrec_cuda_weights w = {NULL, n, NULL};
    mrec_status st = mrec_cuda_alloc(cu->device, (void **)&w.f32, sizeof(float) * (size_t)n, "weights");
    if (!st) st = mrec_cuda_copy_h2d(cu, w.f32, host, sizeof(float) * (size_t)n);
    if (!st && with_bf16) st = mrec_cuda_alloc(cu->device, (void **)&w.bf16, sizeof(uint16_t) * (size_t)n, "bf16 weights");
    if (!st && with_bf16) st = mrec_f32_to_bf16_cuda(w.bf16, w.f32, n, cu);
    if (!st) st = mrec_cuda_sync(cu);
    if (st) {
        if (w.f32) cudaFree(w.f32);
        if (w.bf16) cudaFree(w.bf16);
        return st;
    }
    mrec_cuda_graphs_clear(cu);
    cu->weights[cu->n_weights++] = w;
    *out = w.f32;
    return MREC_OK;
}

extern "C" void mrec_cuda_weights_free(mrec_cuda *cu, float *weights) {
    for (int i = 0; i < cu->n_weights; i++)
        if (cu->weights[i].f32 == weights) {
            mrec_cuda_graphs_clear(cu);
            cudaFree(cu->weights[i].f32);
            if (cu->weights[i].bf16) cudaFree(cu->weights[i].bf16);
            cu->weights[i] = cu->weights[--cu->n_weights];
            return;
        }
}
