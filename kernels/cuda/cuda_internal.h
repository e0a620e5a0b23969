/* cuda_internal.h: what the .cu files share. Not a public header: only
 * kernels/cuda/ includes it. */
#ifndef MREC_CUDA_INTERNAL_H
#define MREC_CUDA_INTERNAL_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cudnn.h>
#include <cuda_runtime.h>
#include <stdlib.h>

extern "C" {
#include "../mrec_kernels.h"
}

/* cuBLASLt's workspace: 32 MiB covers its Hopper kernels' needs. */
#define MREC_LT_WORKSPACE ((size_t)32 << 20)
#define MREC_BLAS_WORKSPACE ((size_t)32 << 20) /* NVIDIA's figure for Hopper in the cuBLAS guide */

/* A model's weights on the device (mrec_cuda_weights_upload) and their bf16
 * twin, or NULL. */
typedef struct {
    float *f32;
    int64_t n;
    uint16_t *bf16;
} mrec_cuda_weights;

#define MREC_DOT_PARTS 256
struct mrec_cuda {
    int device;
    int sm; /* compute capability, 10 major + minor (90 on Hopper) */
    cudaStream_t stream;      /* every op */
    cudaStream_t copy_stream; /* uploads that overlap the ops (mrec_cuda_copy_h2d_async) */
    cublasHandle_t blas;
    cudnnHandle_t dnn;
    cublasLtHandle_t lt;
    void *lt_work; /* cuBLASLt's workspace, MREC_LT_WORKSPACE bytes */
    void *blas_work; /* cuBLAS's, MREC_BLAS_WORKSPACE bytes (cublasSetWorkspace) */
    int *flag; /* one device int for kernels that report a bad input */
    double *dot_part; /* (MREC_DOT_PARTS) mrec_loss_dot's per-block sums */
    mrec_cuda_weights *weights; /* the uploaded blocks, for bf16 GEMMs to find an operand's twin */
    int n_weights, cap_weights;
    uint16_t *bf16_buf; /* activation operands converted for bf16 GEMMs */
    size_t bf16_cap;    /* its size in values */
    struct mrec_conv_plan *conv_plans; /* cuDNN's descriptors and algorithm per convolution shape (conv.cu) */
    int n_conv_plans, cap_conv_plans;
    struct mrec_lt_algo *lt_algos; /* cuBLASLt's algorithm per product shape (gemm.cu) */
    int n_lt_algos, cap_lt_algos;
    struct mrec_cuda_graph *graphs; /* mrec_cuda_graph_run's keys and graphs (device.cu) */
    int n_graphs, next_graph;
    struct mrec_cuda_block *blocks; /* mrec_cuda_malloc's live allocations and their numbers (device.cu) */
    int n_blocks, cap_blocks;
    unsigned long long n_allocs;    /* allocations made so far: the last one's number */
    void *stage[MREC_STAGE_SLOTS];            /* mrec_cuda_copy_h2d_staged's pinned slots, made when first used */
    cudaEvent_t stage_done[MREC_STAGE_SLOTS]; /* each slot's last copy */
    int stage_next;
    double stage_wait; /* seconds waited for a slot */
};
/* Drops every graph (their launches name weights that are about to change). */
void mrec_cuda_graphs_clear(mrec_cuda *cu);
void mrec_conv_plans_free(mrec_cuda *cu);
void mrec_lt_algos_free(mrec_cuda *cu);
/* Device arrays as bf16 operands: their twins, or rounded into the
 * conversion buffer (gemm.cu); a NULL array gives NULL. */
mrec_status mrec_cuda_bf16_operands(const uint16_t **out, const float *const *in, const int64_t *n, int count, mrec_cuda *cu);

mrec_status mrec_cuda_check(cudaError_t err, const char *what);
/* cudaMalloc of bytes into *ptr (NULL on failure); a full GPU is MREC_ERR_NOMEM saying what was asked and what is free */
mrec_status mrec_cuda_alloc(int device, void **ptr, size_t bytes, const char *what);
mrec_status mrec_cublas_check(cublasStatus_t st, const char *what);
mrec_status mrec_cudnn_check(cudnnStatus_t st, const char *what);

/* One activation, as mrec_activation_ref computes it. */
__device__ inline float mrec_activate(float x, mrec_act act, float slope) {
    switch (act) {
    case MREC_ACT_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case MREC_ACT_GELU_TANH: {
        float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    case MREC_ACT_QUICK_GELU: return x / (1.0f + expf(-1.702f * x));
    case MREC_ACT_RELU: return x > 0.0f ? x : 0.0f; /* as the reference: NaN gives 0 */
    case MREC_ACT_LEAKY_RELU: return x >= 0.0f ? x : x * slope;
    case MREC_ACT_SILU: return x / (1.0f + expf(-x));
    case MREC_ACT_TANH: return tanhf(x);
    }
    return NAN;
}
/* Blocks of `threads` for n items, capped at 2^21: the kernels' grid-stride loops cover the rest. */
static inline unsigned mrec_grid(int64_t n, int threads) {
    int64_t blocks = (n + threads - 1) / threads;
    return (unsigned)(blocks < 65535 * 32 ? blocks : 65535 * 32);
}

/* After every launch: a bad configuration shows up here, not later. */
#define MREC_CUDA_LAUNCHED(what) mrec_cuda_check(cudaGetLastError(), what)

#endif
