/* device.cu: the CUDA device context (stream, cuBLAS and cuDNN handles) and memory.
 *
 * Every CUDA call is checked; a failure becomes MREC_ERR_DEVICE with the
 * CUDA error string in the detail, never an exit. mrec_cuda_create fails
 * cleanly on a machine with the toolkit but no GPU or driver, which is how
 * the CUDA build falls back to the CPU there.
 */
#include "cuda_internal.h"

extern "C" int mrec_cuda_compiled(void) { return 1; }

mrec_status mrec_cuda_check(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return MREC_OK;
    return mrec_fail(MREC_ERR_DEVICE, "%s: %s", what, cudaGetErrorString(err));
}

mrec_status mrec_cublas_check(cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return MREC_OK;
    return mrec_fail(MREC_ERR_DEVICE, "%s: cuBLAS status %d", what, (int)st);
}

mrec_status mrec_cudnn_check(cudnnStatus_t st, const char *what) {
    if (st == CUDNN_STATUS_SUCCESS) return MREC_OK;
    return mrec_fail(MREC_ERR_DEVICE, "%s: %s", what, cudnnGetErrorString(st));
}

extern "C" mrec_status mrec_cuda_create(mrec_cuda **out, int device) {
    *out = NULL;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) return mrec_cuda_check(err, "looking for a GPU");
    if (device < 0 || device >= count)
        return mrec_fail(MREC_ERR_DEVICE, "GPU %d requested, %d present", device, count);
    mrec_cuda *cu = (mrec_cuda *)calloc(1, sizeof *cu);
    if (!cu) return mrec_fail(MREC_ERR_NOMEM, "cuda: allocating the context");
    cu->device = device;
    mrec_status st = mrec_cuda_check(cudaSetDevice(device), "cudaSetDevice");
    if (!st) st = mrec_cuda_check(cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking),
                                  "cudaStreamCreate");
    if (!st) st = mrec_cublas_check(cublasCreate(&cu->blas), "cublasCreate");
    if (!st) st = mrec_cublas_check(cublasSetStream(cu->blas, cu->stream), "cublasSetStream");
    /* fp32 stays fp32: TF32 is a separate, opt-in precision. */
    if (!st) st = mrec_cublas_check(cublasSetMathMode(cu->blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    if (!st) st = mrec_cudnn_check(cudnnCreate(&cu->dnn), "cudnnCreate");
    if (!st) st = mrec_cudnn_check(cudnnSetStream(cu->dnn, cu->stream), "cudnnSetStream");
    if (!st) st = mrec_cuda_check(cudaMalloc((void **)&cu->flag, sizeof *cu->flag), "cudaMalloc");
    if (!st) st = mrec_cublas_check(cublasLtCreate(&cu->lt), "cublasLtCreate");
    if (!st) st = mrec_cuda_check(cudaMalloc(&cu->lt_work, MREC_LT_WORKSPACE), "cudaMalloc (cuBLASLt workspace)");
    if (st) {
        mrec_cuda_destroy(cu);
        return st;
    }
    *out = cu;
    return MREC_OK;
}

extern "C" void mrec_cuda_destroy(mrec_cuda *cu) {
    if (!cu) return;
    for (int i = 0; i < cu->n_weights; i++) { /* a model freed after its context */
        cudaFree(cu->weights[i].f32);
        if (cu->weights[i].bf16) cudaFree(cu->weights[i].bf16);
    }
    free(cu->weights);
    if (cu->bf16_buf) cudaFree(cu->bf16_buf);
    if (cu->lt_work) cudaFree(cu->lt_work);
    if (cu->lt) cublasLtDestroy(cu->lt);
    if (cu->flag) cudaFree(cu->flag);
    if (cu->dnn) cudnnDestroy(cu->dnn);
    if (cu->blas) cublasDestroy(cu->blas);
    if (cu->stream) cudaStreamDestroy(cu->stream);
    free(cu);
}

extern "C" mrec_status mrec_cuda_malloc(mrec_cuda *cu, void **ptr, size_t bytes) {
    (void)cu;
    *ptr = NULL;
    return mrec_cuda_check(cudaMalloc(ptr, bytes), "cudaMalloc");
}

extern "C" void mrec_cuda_free(mrec_cuda *cu, void *ptr) {
    (void)cu;
    if (ptr) cudaFree(ptr);
}

extern "C" mrec_status mrec_cuda_copy_h2d(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    mrec_status st = mrec_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu->stream),
                                     "copy to GPU");
    return st ? st : mrec_cuda_check(cudaStreamSynchronize(cu->stream), "copy to GPU");
}

extern "C" mrec_status mrec_cuda_copy_d2h(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    mrec_status st = mrec_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu->stream),
                                     "copy from GPU");
    return st ? st : mrec_cuda_check(cudaStreamSynchronize(cu->stream), "copy from GPU");
}

extern "C" mrec_status mrec_cuda_sync(mrec_cuda *cu) {
    return mrec_cuda_check(cudaStreamSynchronize(cu->stream), "cudaStreamSynchronize");
}
