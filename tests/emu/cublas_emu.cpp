/* cublas_emu.cpp: cuBLAS and cuBLASLt on the CPU, for a whole GPU program run in the emulator (emu_runtime.h):
 * the subset kernels/cuda calls (device.cu, gemm.cu), defined with the C linkage of the real headers.
 *
 * What it emulates:
 *   - handles (cuBLAS: stream, math mode, workspace remembered; cuBLASLt: nothing to hold) and the Lt
 *     descriptors, their contents kept inside the headers' semi-opaque structs; a product is put on its stream
 *     through emu_stream_op with everything it reads copied into it (alpha and beta's values, the descriptors'
 *     contents), so that one captured into a CUDA graph replays as it was called whatever happens to the
 *     descriptors after;
 *   - cublasSgemm, cublasSgemmStridedBatched: column-major, op N or T (C is T on real data), host alpha and
 *     beta, beta 0 reads no C (as in BLAS: C may hold NaN); CUBLAS_TF32_TENSOR_OP_MATH rounds inputs to TF32;
 *   - cublasLtMatmul: D = epilogue(alpha op(A) op(B) + beta C) with column-major layouts of batch 1; A and B
 *     fp32 or bf16, C and D fp32 or bf16 (one type), compute 32F or 32F_FAST_TF32 (fp32 inputs only), scale
 *     fp32, host alpha and beta; epilogues DEFAULT, RELU, BIAS, RELU_BIAS, GELU, GELU_BIAS, the bias a vector
 *     of D's rows (one value a row, the same for every column), of D's type unless BIAS_DATA_TYPE says;
 *   - checks, each an emu_error and an error status: every device pointer inside one live allocation
 *     (emu_device_range, over the exact extent that lds, sizes and batch strides give), the arguments cuBLAS
 *     documents as invalid, shapes that do not agree between the layouts, an output that overlaps an input
 *     or (batched) itself, C == D with different layouts, an operand less aligned than the algorithm was
 *     chosen for (the heuristic's MIN_ALIGNMENT preferences, and the bias pointer the descriptor held then),
 *     or than its element type, a descriptor or algorithm that is not one of these; anything outside the
 *     subset above (attribute, epilogue, type, math mode) is refused by name (CUBLAS_STATUS_NOT_SUPPORTED).
 *
 * Arithmetic: each dot product summed in double (a product of two fp32 values is exact there) and rounded once
 * to fp32; then alpha, beta C, the bias and the activation in fp32 as the GPU's epilogue does them; a bf16 D
 * rounded once from that fp32 value, to nearest even. bf16 inputs widen exactly; TF32 inputs are rounded as
 * cvt.rna.tf32.f32 does (emu_tf32_rna, cuda_emu.cpp: to nearest, ties away from zero, 10 mantissa bits).
 * GELU is the tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): NVIDIA's documentation names
 * the epilogue only "GELU", but PyTorch's addmm, where it cannot take cuBLASLt's GELU epilogue, applies
 * gelu(approximate="tanh") in its place (aten/src/ATen/native/cuda/Blas.cpp), and gemm.cu asks for it for
 * MREC_ACT_GELU_TANH. ReLU is max(x, 0) with fmaxf's NaN rule: a NaN gives 0.
 *
 * Limits (what it does not model):
 *   - no algorithm selection: the heuristic answers one algorithm (workspace 0) for every problem in the
 *     subset, or none for any (EMU_LT_NO_ALGO=1, to take a caller's path for "cuBLASLt has no algorithm"); a
 *     workspace is checked, never used;
 *   - the GPU's accumulation order (tiles, split-K, the tensor cores' internal rounding) is not followed:
 *     results agree with the GPU's within fp32 rounding of the exact product, not bit for bit;
 *   - alpha 0 still multiplies (0 * Inf is NaN here; reference BLAS would skip A and B);
 *   - only what kernels/cuda calls: no other cuBLAS routine, no Lt batches or row-major orders (no
 *     cublasLtMatrixLayoutSetAttribute), no AUX or gradient epilogues, no device-pointer alpha or beta. */
#include "emu_runtime.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

uint32_t emu_tf32_rna(float x); /* cuda_emu.cpp: x rounded to TF32, its bits */

/* The handles' structs, which the headers leave incomplete. */
struct cublasContext {
    uint64_t magic;
    cudaStream_t stream;
    cublasMath_t math;
    void *workspace;
    size_t workspace_bytes;
};
struct cublasLtContext {
    uint64_t magic;
};

namespace {

const uint64_t BLAS_MAGIC = 0x656d752d626c6173ull, LT_MAGIC = 0x656d752d6c742d68ull, DESC_MAGIC = 0x656d752d6c746f70ull,
               LAYOUT_MAGIC = 0x656d752d6c746c79ull, PREF_MAGIC = 0x656d752d6c747072ull, ALGO_MAGIC = 0x656d752d6c74616cull;

/* What the Lt descriptors hold, copied into (and out of) the headers' semi-opaque structs. */
struct LtDesc {
    uint64_t magic;
    cublasComputeType_t compute;
    cublasOperation_t trans_a, trans_b;
    uint32_t epilogue;
    int32_t bias_type; /* -1: D's type */
    const void *bias;
};
struct LtLayout {
    uint64_t magic;
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct LtPref {
    uint64_t magic;
    uint64_t max_workspace;
    uint32_t align[4]; /* A, B, C, D: bytes */
};
/* The heuristic's answer: the problem's types and the alignments it was asked for */
struct LtAlgo {
    uint64_t magic;
    int32_t compute, ab_type, cd_type;
    uint32_t align[4], align_bias;
};

template <class T, class Opaque> void put(Opaque *o, const T &t) {
    static_assert(sizeof(T) <= sizeof(Opaque) && std::is_trivially_copyable<T>::value, "fits the opaque struct");
    memcpy(o, &t, sizeof t);
}
/* o's contents, and whether they are one of ours (the magic) */
template <class T, class Opaque> bool get(const Opaque *o, T *t, uint64_t magic) {
    static_assert(sizeof(T) <= sizeof(Opaque) && std::is_trivially_copyable<T>::value, "fits the opaque struct");
    if (!o) return false;
    memcpy(t, o, sizeof *t);
    return t->magic == magic;
}

/* emu_error, and the status to return */
__attribute__((format(printf, 2, 3))) cublasStatus_t fail(cublasStatus_t st, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emu_error("%s", msg);
    return st;
}

const char *type_name(int t) {
    switch (t) {
    case CUDA_R_32F: return "CUDA_R_32F";
    case CUDA_R_16BF: return "CUDA_R_16BF";
    case CUDA_R_16F: return "CUDA_R_16F";
    default: return "(a type not emulated)";
    }
}
size_t elem_size(cudaDataType_t t) { return t == CUDA_R_16BF ? 2 : 4; } /* the two types emulated */

float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
uint16_t f32_to_bf16(float f) { /* to nearest, ties to even; a NaN stays a (quiet) NaN */
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)(u >> 16 | 0x40);
    u += 0x7fffu + (u >> 16 & 1);
    return (uint16_t)(u >> 16);
}
float tf32(float x) {
    uint32_t u = emu_tf32_rna(x);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
float gelu_tanh(float x) {
    double v = x;
    return (float)(0.5 * v * (1.0 + tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v))));
}

float load(const void *p, cudaDataType_t t, int64_t i) {
    return t == CUDA_R_16BF ? bf16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}
void store(void *p, cudaDataType_t t, int64_t i, float v) {
    if (t == CUDA_R_16BF) ((uint16_t *)p)[i] = f32_to_bf16(v);
    else ((float *)p)[i] = v;
}

/* A column-major matrix in device memory: element (i, j) of batch b at p[b * stride + j * ld + i] */
struct Matrix {
    const void *p;
    cudaDataType_t type;
    int64_t rows, cols, ld, stride;
};

/* Everything one call computes, by value: what an operation on a stream (or in a graph) holds. */
struct Product {
    int64_t m, n, k, batch;
    float alpha, beta;
    bool tf32;
    bool trans_a, trans_b;
    Matrix a, b, c, d; /* as stored: a is (k, m) when trans_a, else (m, k); b (n, k) when trans_b, else (k, n) */
    bool relu, gelu;
    const void *bias; /* NULL: none */
    cudaDataType_t bias_type;
};

void run(const Product &g) {
    const int64_t m = g.m, n = g.n, k = g.k;
    /* op(A) by rows and op(B) by columns, k contiguous values each, so that the dot products read in order */
    std::vector<float> a((size_t)(m * k)), b((size_t)(n * k)), out((size_t)(m * n));
    for (int64_t t = 0; t < g.batch; t++) {
        const int64_t oa = t * g.a.stride, ob = t * g.b.stride, oc = t * g.c.stride, od = t * g.d.stride;
        for (int64_t i = 0; i < m; i++)
            for (int64_t p = 0; p < k; p++) {
                float x = load(g.a.p, g.a.type, oa + (g.trans_a ? p + i * g.a.ld : i + p * g.a.ld));
                a[i * k + p] = g.tf32 ? tf32(x) : x;
            }
        for (int64_t j = 0; j < n; j++)
            for (int64_t p = 0; p < k; p++) {
                float x = load(g.b.p, g.b.type, ob + (g.trans_b ? j + p * g.b.ld : p + j * g.b.ld));
                b[j * k + p] = g.tf32 ? tf32(x) : x;
            }
        /* every result before any store: C and D may be one matrix */
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < m; i++) {
                const float *ar = a.data() + i * k, *br = b.data() + j * k;
                double sum = 0.0;
                for (int64_t p = 0; p < k; p++) sum += (double)ar[p] * br[p];
                float x = g.alpha * (float)sum;
                if (g.beta != 0.0f) x += g.beta * load(g.c.p, g.c.type, oc + i + j * g.c.ld);
                if (g.bias) x += load(g.bias, g.bias_type, i);
                if (g.relu) x = x > 0.0f ? x : 0.0f;
                if (g.gelu) x = gelu_tanh(x);
                out[i + j * m] = x;
            }
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < m; i++) store((void *)g.d.p, g.d.type, od + i + j * g.d.ld, out[i + j * m]);
    }
}

/* ---- checks on device memory ---- */

int64_t batches(const Matrix &x, int64_t batch) { return x.stride == 0 ? 1 : batch; } /* stride 0: one matrix, read again */

/* [lo, lo + bytes): from the first element x's `batch` matrices touch to past the last */
std::pair<uintptr_t, size_t> extent(const Matrix &x, int64_t batch) {
    if (x.rows <= 0 || x.cols <= 0 || batch <= 0) return {(uintptr_t)x.p, 0};
    const int64_t es = (int64_t)elem_size(x.type), one = (x.cols - 1) * x.ld + x.rows, last = (batch - 1) * x.stride;
    const int64_t lo = std::min<int64_t>(0, last), hi = std::max<int64_t>(0, last);
    return {(uintptr_t)x.p + (uintptr_t)(lo * es), (size_t)((hi - lo + one) * es)};
}

/* x's bytes (its extent) as the next op's, for the runtime's race check */
void touch(const Matrix &x, int64_t batch, bool write) {
    std::pair<uintptr_t, size_t> e = extent(x, batch);
    emu_access((const void *)e.first, e.second, write);
}

bool in_device(const Matrix &x, int64_t batch, const char *what) {
    std::pair<uintptr_t, size_t> e = extent(x, batch);
    return e.second == 0 || emu_device_range((const void *)e.first, e.second, what);
}

/* x's columns as byte intervals [lo, hi), sorted */
std::vector<std::pair<uintptr_t, uintptr_t>> columns(const Matrix &x, int64_t batch) {
    std::vector<std::pair<uintptr_t, uintptr_t>> s;
    const int64_t es = (int64_t)elem_size(x.type);
    for (int64_t t = 0; t < batch; t++)
        for (int64_t j = 0; j < x.cols; j++) {
            uintptr_t lo = (uintptr_t)x.p + (uintptr_t)((t * x.stride + j * x.ld) * es);
            s.push_back({lo, lo + (uintptr_t)(x.rows * es)});
        }
    std::sort(s.begin(), s.end());
    return s;
}

/* whether an element of x shares a byte with one of y (the columns between them may interleave: the heads of
 * one row-major product, say) */
bool overlap(const Matrix &x, int64_t bx, const Matrix &y, int64_t by) {
    std::pair<uintptr_t, size_t> ex = extent(x, bx), ey = extent(y, by);
    if (!ex.second || !ey.second || ex.first + ex.second <= ey.first || ey.first + ey.second <= ex.first) return false;
    std::vector<std::pair<uintptr_t, uintptr_t>> sx = columns(x, bx), sy = columns(y, by);
    for (size_t i = 0, j = 0; i < sx.size() && j < sy.size();) {
        if (sx[i].first < sy[j].second && sy[j].first < sx[i].second) return true;
        if (sx[i].second <= sy[j].second) i++;
        else j++;
    }
    return false;
}

/* whether two of an output's batches share an element: the GPU writes them at once */
bool overlaps_itself(const Matrix &x, int64_t batch) {
    if (batch <= 1 || x.rows <= 0 || x.cols <= 0) return false;
    if (x.stride == 0) return true;
    std::vector<std::pair<uintptr_t, uintptr_t>> s = columns(x, batch);
    for (size_t i = 1; i < s.size(); i++)
        if (s[i].first < s[i - 1].second) return true;
    return false;
}

uint32_t alignment_of(const void *p) { /* the largest power of two up to 256 that divides p */
    uint32_t a = 256;
    while (a > 1 && (uintptr_t)p % a) a >>= 1;
    return a;
}

/* ---- cuBLAS ---- */

bool op_ok(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

cublasStatus_t sgemm(const char *what, cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                     const float *alpha, const float *A, int lda, long long stride_a, const float *B, int ldb, long long stride_b,
                     const float *beta, float *C, int ldc, long long stride_c, int batch) {
    if (!h || h->magic != BLAS_MAGIC) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "%s: handle %p is not a live cuBLAS handle", what, (void *)h);
    if (!op_ok(transa) || !op_ok(transb))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: operations %d, %d (N, T or C)", what, (int)transa, (int)transb);
    if (m < 0 || n < 0 || k < 0 || batch < 0)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: m %d, n %d, k %d, batch %d", what, m, n, k, batch);
    if (!alpha || !beta) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: alpha or beta is NULL", what);
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    /* the leading dimensions cuBLAS requires: at least the stored rows, and 1 */
    if (lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: lda %d, ldb %d, ldc %d for op(A) (%d, %d)%s, op(B) (%d, %d)%s", what, lda, ldb,
                    ldc, m, k, ta ? " transposed" : "", k, n, tb ? " transposed" : "");
    if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;

    Product g;
    g.m = m, g.n = n, g.k = k, g.batch = batch, g.alpha = *alpha, g.beta = *beta;
    g.tf32 = (h->math & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) == CUBLAS_TF32_TENSOR_OP_MATH;
    g.trans_a = ta, g.trans_b = tb;
    g.a = {A, CUDA_R_32F, ta ? k : m, ta ? m : k, lda, stride_a};
    g.b = {B, CUDA_R_32F, tb ? n : k, tb ? k : n, ldb, stride_b};
    g.c = {C, CUDA_R_32F, m, n, ldc, stride_c};
    g.d = g.c;
    g.relu = g.gelu = false, g.bias = NULL, g.bias_type = CUDA_R_32F;

    char name[96];
    const bool reads_ab = k > 0;
    const struct {
        const Matrix &x;
        bool used;
        const char *name;
    } ops[3] = {{g.a, reads_ab, "A"}, {g.b, reads_ab, "B"}, {g.c, true, "C"}};
    for (const auto &o : ops) {
        if (!o.used) continue;
        if ((uintptr_t)o.x.p % sizeof(float))
            return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: %s at %p is not aligned to its fp32 elements", what, o.name, o.x.p);
        snprintf(name, sizeof name, "%s %s", what, o.name);
        if (!in_device(o.x, batches(o.x, batch), name)) return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (overlaps_itself(g.c, batch))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: C's %d batches (stride %lld, ldc %d) overlap each other", what, batch, stride_c, ldc);
    if (reads_ab && (overlap(g.c, batch, g.a, batches(g.a, batch)) || overlap(g.c, batch, g.b, batches(g.b, batch))))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: C at %p overlaps A at %p or B at %p (undefined on the GPU)", what, (void *)C,
                    (const void *)A, (const void *)B);
    if (reads_ab) touch(g.a, batches(g.a, batch), false), touch(g.b, batches(g.b, batch), false);
    touch(g.c, batch, true);
    emu_stream_op(h->stream, [g]() { run(g); }, what);
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuBLASLt ---- */

bool lt_handle_ok(cublasLtHandle_t h) { return h && h->magic == LT_MAGIC; }

uint32_t epilogue_bias(uint32_t e) { return e & CUBLASLT_EPILOGUE_BIAS; }

/* The problem the descriptors give, checked: op(A) (m, k) op(B) (k, n) into C and D (m, n). Shared by the
 * heuristic and the product. */
cublasStatus_t lt_problem(const char *what, const LtDesc &op, const LtLayout &a, const LtLayout &b, const LtLayout &c, const LtLayout &d,
                          int64_t *m, int64_t *n, int64_t *k) {
    const bool ta = op.trans_a != CUBLAS_OP_N, tb = op.trans_b != CUBLAS_OP_N;
    const bool ab_ok = a.type == b.type && (a.type == CUDA_R_32F || a.type == CUDA_R_16BF);
    const bool cd_ok = c.type == d.type && (d.type == CUDA_R_32F || d.type == CUDA_R_16BF);
    /* fp32 inputs give fp32 out; bf16 inputs fp32 or bf16; TF32 is for fp32 inputs (cuBLASLt's type table) */
    if (!ab_ok || !cd_ok || (a.type == CUDA_R_32F && d.type != CUDA_R_32F) || (op.compute == CUBLAS_COMPUTE_32F_FAST_TF32 && a.type != CUDA_R_32F))
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: A %s, B %s, C %s, D %s with compute type %d: not a combination emulated", what,
                    type_name(a.type), type_name(b.type), type_name(c.type), type_name(d.type), (int)op.compute);
    *m = (int64_t)d.rows, *n = (int64_t)d.cols, *k = (int64_t)(ta ? a.rows : a.cols);
    const uint64_t a_m = ta ? a.cols : a.rows, b_k = tb ? b.cols : b.rows, b_n = tb ? b.rows : b.cols;
    if (a_m != d.rows || b_k != (uint64_t)*k || b_n != d.cols || c.rows != d.rows || c.cols != d.cols)
        return fail(CUBLAS_STATUS_INVALID_VALUE,
                    "%s: shapes disagree: A (%llu, %llu)%s, B (%llu, %llu)%s, C (%llu, %llu), D (%llu, %llu)", what,
                    (unsigned long long)a.rows, (unsigned long long)a.cols, ta ? " transposed" : "", (unsigned long long)b.rows,
                    (unsigned long long)b.cols, tb ? " transposed" : "", (unsigned long long)c.rows, (unsigned long long)c.cols,
                    (unsigned long long)d.rows, (unsigned long long)d.cols);
    const LtLayout *l[4] = {&a, &b, &c, &d};
    for (int i = 0; i < 4; i++)
        if (l[i]->ld < std::max<int64_t>(1, (int64_t)l[i]->rows) || l[i]->rows > INT32_MAX || l[i]->cols > INT32_MAX)
            return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: %c's layout (%llu, %llu) with ld %lld (ld must be >= rows and >= 1)", what, "ABCD"[i],
                        (unsigned long long)l[i]->rows, (unsigned long long)l[i]->cols, (long long)l[i]->ld);
    /* "Bias vector elements are the same type as the elements of output matrix (Dtype)" but for int8 and fp8 kernels */
    if (epilogue_bias(op.epilogue) && op.bias_type != -1 && op.bias_type != (int32_t)d.type)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: a bias of %s for D of %s: not emulated", what, type_name(op.bias_type), type_name(d.type));
    return CUBLAS_STATUS_SUCCESS;
}

bool get_all(cublasLtMatmulDesc_t opd, cublasLtMatrixLayout_t ad, cublasLtMatrixLayout_t bd, cublasLtMatrixLayout_t cd,
             cublasLtMatrixLayout_t dd, LtDesc *op, LtLayout *a, LtLayout *b, LtLayout *c, LtLayout *d) {
    return get(opd, op, DESC_MAGIC) && get(ad, a, LAYOUT_MAGIC) && get(bd, b, LAYOUT_MAGIC) && get(cd, c, LAYOUT_MAGIC) &&
           get(dd, d, LAYOUT_MAGIC);
}

} // namespace

extern "C" {

/* ---- cuBLAS ---- */

cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    if (!handle) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasCreate: handle is NULL");
    *handle = new (std::nothrow) cublasContext{BLAS_MAGIC, 0, CUBLAS_DEFAULT_MATH, NULL, 0};
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle || handle->magic != BLAS_MAGIC)
        return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasDestroy: %p is not a live cuBLAS handle", (void *)handle);
    handle->magic = 0; /* a later use of it is then seen (while the memory is not reused) */
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle || handle->magic != BLAS_MAGIC)
        return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetStream: %p is not a live cuBLAS handle", (void *)handle);
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle || handle->magic != BLAS_MAGIC)
        return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetMathMode: %p is not a live cuBLAS handle", (void *)handle);
    int base = (int)mode & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_PEDANTIC_MATH && base != CUBLAS_TF32_TENSOR_OP_MATH)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "cublasSetMathMode: mode %d not emulated (DEFAULT, PEDANTIC, TF32_TENSOR_OP)", (int)mode);
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

/* Remembered, never used; cuBLAS requires it 256-byte aligned. */
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes) {
    if (!handle || handle->magic != BLAS_MAGIC)
        return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetWorkspace: %p is not a live cuBLAS handle", (void *)handle);
    if (bytes && (!workspace || (uintptr_t)workspace % 256))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasSetWorkspace: workspace %p of %zu bytes is not 256-byte aligned", workspace, bytes);
    if (bytes && !emu_device_range(workspace, bytes, "cublasSetWorkspace")) return CUBLAS_STATUS_INVALID_VALUE;
    handle->workspace = workspace, handle->workspace_bytes = bytes;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
                           const float *alpha, const float *A, int lda, const float *B, int ldb, const float *beta, float *C,
                           int ldc) {
    return sgemm("cublasSgemm", handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                                         int k, const float *alpha, const float *A, int lda, long long int strideA, const float *B,
                                         int ldb, long long int strideB, const float *beta, float *C, int ldc,
                                         long long int strideC, int batchCount) {
    return sgemm("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc,
                 strideC, batchCount);
}

/* ---- cuBLASLt ---- */

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
    if (!handle) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate: handle is NULL");
    *handle = new (std::nothrow) cublasLtContext{LT_MAGIC};
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!lt_handle_ok(handle)) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtDestroy: %p is not a live cuBLASLt handle", (void *)handle);
    handle->magic = 0;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute, cudaDataType_t scale) {
    if (!desc) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescCreate: desc is NULL");
    *desc = NULL;
    if ((compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32) || scale != CUDA_R_32F)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "cublasLtMatmulDescCreate: compute type %d, scale type %s not emulated (32F or 32F_FAST_TF32, CUDA_R_32F)",
                    (int)compute, type_name(scale));
    cublasLtMatmulDesc_t d = new (std::nothrow) cublasLtMatmulDescOpaque_t();
    if (!d) return CUBLAS_STATUS_ALLOC_FAILED;
    put(d, LtDesc{DESC_MAGIC, compute, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, -1, NULL});
    *desc = d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    LtDesc op;
    if (!get(desc, &op, DESC_MAGIC)) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescDestroy: %p is not a live descriptor", (void *)desc);
    memset(desc, 0, sizeof *desc);
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t size) {
    const char *what = "cublasLtMatmulDescSetAttribute";
    LtDesc op;
    if (!get(desc, &op, DESC_MAGIC)) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: %p is not a live descriptor", what, (void *)desc);
    size_t want;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: want = sizeof(int32_t); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: want = sizeof(uint32_t); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: want = sizeof(void *); break;
    default: return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: attribute %d not emulated", what, (int)attr);
    }
    /* cuBLASLt refuses a size other than the attribute's */
    if (!buf || size != want) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: attribute %d given %zu bytes at %p, takes %zu", what, (int)attr, size, buf, want);
    int32_t i32;
    uint32_t u32;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
        memcpy(&i32, buf, sizeof i32);
        if (!op_ok((cublasOperation_t)i32)) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: operation %d", what, (int)i32);
        (attr == CUBLASLT_MATMUL_DESC_TRANSA ? op.trans_a : op.trans_b) = (cublasOperation_t)i32;
        break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
        memcpy(&u32, buf, sizeof u32);
        switch (u32) {
        case CUBLASLT_EPILOGUE_DEFAULT:
        case CUBLASLT_EPILOGUE_RELU:
        case CUBLASLT_EPILOGUE_BIAS:
        case CUBLASLT_EPILOGUE_RELU_BIAS:
        case CUBLASLT_EPILOGUE_GELU:
        case CUBLASLT_EPILOGUE_GELU_BIAS: op.epilogue = u32; break;
        default: return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: epilogue %u not emulated", what, u32);
        }
        break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
        memcpy(&i32, buf, sizeof i32);
        if (i32 != -1 && i32 != CUDA_R_32F && i32 != CUDA_R_16BF)
            return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: bias type %s not emulated", what, type_name(i32));
        op.bias_type = i32;
        break;
    default: memcpy(&op.bias, buf, sizeof op.bias); break; /* CUBLASLT_MATMUL_DESC_BIAS_POINTER */
    }
    put(desc, op);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld) {
    if (!layout) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatrixLayoutCreate: layout is NULL");
    *layout = NULL;
    cublasLtMatrixLayout_t l = new (std::nothrow) cublasLtMatrixLayoutOpaque_t();
    if (!l) return CUBLAS_STATUS_ALLOC_FAILED;
    put(l, LtLayout{LAYOUT_MAGIC, type, rows, cols, ld}); /* checked where used: cuBLASLt's types and ld rules are per product */
    *layout = l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    LtLayout l;
    if (!get(layout, &l, LAYOUT_MAGIC))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatrixLayoutDestroy: %p is not a live layout", (void *)layout);
    memset(layout, 0, sizeof *layout);
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceCreate: pref is NULL");
    *pref = new (std::nothrow) cublasLtMatmulPreferenceOpaque_t();
    if (!*pref) return CUBLAS_STATUS_ALLOC_FAILED;
    put(*pref, LtPref{PREF_MAGIC, 0, {256, 256, 256, 256}}); /* the documented defaults */
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    LtPref p;
    if (!get(pref, &p, PREF_MAGIC))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceDestroy: %p is not a live preference", (void *)pref);
    memset(pref, 0, sizeof *pref);
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size) {
    const char *what = "cublasLtMatmulPreferenceSetAttribute";
    LtPref p;
    if (!get(pref, &p, PREF_MAGIC)) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: %p is not a live preference", what, (void *)pref);
    size_t want;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: want = sizeof(uint64_t); break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: want = sizeof(uint32_t); break;
    default: return fail(CUBLAS_STATUS_NOT_SUPPORTED, "%s: attribute %d not emulated", what, (int)attr);
    }
    if (!buf || size != want) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: attribute %d given %zu bytes at %p, takes %zu", what, (int)attr, size, buf, want);
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) memcpy(&p.max_workspace, buf, sizeof p.max_workspace);
    else memcpy(&p.align[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES], buf, sizeof(uint32_t));
    put(pref, p);
    return CUBLAS_STATUS_SUCCESS;
}

/* One algorithm for every problem emulated: it records what it was chosen for, which cublasLtMatmul checks. */
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t opd, cublasLtMatrixLayout_t ad,
                                              cublasLtMatrixLayout_t bd, cublasLtMatrixLayout_t cd, cublasLtMatrixLayout_t dd,
                                              cublasLtMatmulPreference_t prefd, int requested, cublasLtMatmulHeuristicResult_t results[],
                                              int *returned) {
    const char *what = "cublasLtMatmulAlgoGetHeuristic";
    if (returned) *returned = 0;
    if (!lt_handle_ok(handle)) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "%s: %p is not a live cuBLASLt handle", what, (void *)handle);
    if (requested <= 0 || !results || !returned)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: %d results asked for, into %p, count at %p", what, requested, (void *)results, (void *)returned);
    LtDesc op;
    LtLayout a, b, c, d;
    LtPref pref{PREF_MAGIC, 0, {256, 256, 256, 256}};
    if (!get_all(opd, ad, bd, cd, dd, &op, &a, &b, &c, &d) || (prefd && !get(prefd, &pref, PREF_MAGIC)))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: a descriptor, layout or preference that is not a live one", what);
    int64_t m, n, k;
    cublasStatus_t st = lt_problem(what, op, a, b, c, d, &m, &n, &k);
    if (st) return st;
    /* EMU_LT_NO_ALGO=1: no algorithm for any problem, as cuBLASLt answers where it has none, so that a caller's
     * fallbacks run (make emu-gpu-check runs test_cuda so a second time) */
    static int none = getenv("EMU_LT_NO_ALGO") && atoi(getenv("EMU_LT_NO_ALGO"));
    if (none) return CUBLAS_STATUS_NOT_SUPPORTED;
    LtAlgo algo{ALGO_MAGIC, (int32_t)op.compute, (int32_t)a.type, (int32_t)d.type, {pref.align[0], pref.align[1], pref.align[2], pref.align[3]},
                /* the heuristic reads the bias pointer's alignment off the descriptor (cublasLt.h) */
                epilogue_bias(op.epilogue) ? alignment_of(op.bias) : 1u};
    memset(&results[0], 0, sizeof results[0]);
    put(&results[0].algo, algo);
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t opd, const void *alpha, const void *A, cublasLtMatrixLayout_t ad,
                              const void *B, cublasLtMatrixLayout_t bd, const void *beta, const void *C, cublasLtMatrixLayout_t cd, void *D,
                              cublasLtMatrixLayout_t dd, const cublasLtMatmulAlgo_t *algop, void *workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
    const char *what = "cublasLtMatmul";
    if (!lt_handle_ok(handle)) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "%s: %p is not a live cuBLASLt handle", what, (void *)handle);
    LtDesc op;
    LtLayout a, b, c, d;
    if (!get_all(opd, ad, bd, cd, dd, &op, &a, &b, &c, &d))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: a descriptor or layout that is not a live one", what);
    if (!alpha || !beta) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: alpha or beta is NULL", what);
    int64_t m, n, k;
    cublasStatus_t st = lt_problem(what, op, a, b, c, d, &m, &n, &k);
    if (st) return st;

    Product g;
    g.m = m, g.n = n, g.k = k, g.batch = 1;
    memcpy(&g.alpha, alpha, sizeof g.alpha); /* scale type fp32, host pointers: their values now */
    memcpy(&g.beta, beta, sizeof g.beta);
    g.tf32 = op.compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    g.trans_a = op.trans_a != CUBLAS_OP_N, g.trans_b = op.trans_b != CUBLAS_OP_N;
    g.a = {A, a.type, (int64_t)a.rows, (int64_t)a.cols, a.ld, 0};
    g.b = {B, b.type, (int64_t)b.rows, (int64_t)b.cols, b.ld, 0};
    g.c = {C, c.type, (int64_t)c.rows, (int64_t)c.cols, c.ld, 0};
    g.d = {D, d.type, (int64_t)d.rows, (int64_t)d.cols, d.ld, 0};
    g.relu = (op.epilogue & CUBLASLT_EPILOGUE_RELU) != 0, g.gelu = (op.epilogue & CUBLASLT_EPILOGUE_GELU) != 0;
    g.bias = epilogue_bias(op.epilogue) ? op.bias : NULL;
    g.bias_type = op.bias_type == -1 ? d.type : (cudaDataType_t)op.bias_type;
    const bool reads_ab = k > 0, reads_c = g.beta != 0.0f;

    if (epilogue_bias(op.epilogue) && !op.bias) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: epilogue %u without a bias pointer", what, op.epilogue);
    /* "in-place (C == D) takes Cdesc == Ddesc" */
    if (C == D && c.ld != d.ld)
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: C and D are one matrix (%p) with ld %lld and %lld", what, D, (long long)c.ld, (long long)d.ld);

    LtAlgo algo = {};
    if (algop) {
        if (!get(algop, &algo, ALGO_MAGIC)) return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: the algorithm is not one cublasLtMatmulAlgoGetHeuristic gave", what);
        if (algo.compute != (int32_t)op.compute || algo.ab_type != (int32_t)a.type || algo.cd_type != (int32_t)d.type)
            return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: the algorithm was chosen for compute %d, %s inputs, %s output; used for %d, %s, %s", what,
                        (int)algo.compute, type_name(algo.ab_type), type_name(algo.cd_type), (int)op.compute, type_name(a.type), type_name(d.type));
    }
    const struct {
        const Matrix &x;
        bool used;
        uint32_t align;
        const char *name;
    } ops[4] = {{g.a, reads_ab, algop ? algo.align[0] : 1, "A"},
                {g.b, reads_ab, algop ? algo.align[1] : 1, "B"},
                {g.c, reads_c, algop ? algo.align[2] : 1, "C"},
                {g.d, true, algop ? algo.align[3] : 1, "D"}};
    char name[64];
    for (const auto &o : ops) {
        if (!o.used || m == 0 || n == 0) continue;
        if ((uintptr_t)o.x.p % elem_size(o.x.type) || alignment_of(o.x.p) < std::min<uint32_t>(o.align, 256))
            return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: %s at %p is %u-byte aligned; the algorithm was chosen for %u (%s elements)", what, o.name,
                        o.x.p, alignment_of(o.x.p), o.align, type_name(o.x.type));
        snprintf(name, sizeof name, "%s %s", what, o.name);
        if (!in_device(o.x, 1, name)) return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (g.bias && m > 0 && n > 0) {
        if ((uintptr_t)g.bias % elem_size(g.bias_type) || (algop && alignment_of(g.bias) < std::min<uint32_t>(algo.align_bias, 256)))
            return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: the bias at %p is %u-byte aligned; the algorithm was chosen for %u", what, g.bias,
                        alignment_of(g.bias), algop ? algo.align_bias : 1);
        if (!emu_device_range(g.bias, (size_t)m * elem_size(g.bias_type), "cublasLtMatmul bias")) return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (workspace_bytes) {
        if (!workspace || (uintptr_t)workspace % 256)
            return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: workspace %p of %zu bytes is not 256-byte aligned", what, workspace, workspace_bytes);
        if (!emu_device_range(workspace, workspace_bytes, "cublasLtMatmul workspace")) return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    /* D written while A, B, the bias (and another C) are read: undefined on the GPU, whose blocks run at once */
    const Matrix bias_m = {g.bias, g.bias_type, m, 1, m, 0};
    if ((reads_ab && (overlap(g.d, 1, g.a, 1) || overlap(g.d, 1, g.b, 1))) || (g.bias && overlap(g.d, 1, bias_m, 1)) ||
        (reads_c && C != D && overlap(g.d, 1, g.c, 1)))
        return fail(CUBLAS_STATUS_INVALID_VALUE, "%s: D at %p overlaps an input (A %p, B %p, C %p, bias %p)", what, D, A, B, C, g.bias);
    if (reads_ab) touch(g.a, 1, false), touch(g.b, 1, false);
    if (reads_c) touch(g.c, 1, false);
    if (g.bias) touch(bias_m, 1, false);
    if (workspace_bytes) emu_access(workspace, workspace_bytes, true);
    touch(g.d, 1, true);
    emu_stream_op(stream, [g]() { run(g); }, what);
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
