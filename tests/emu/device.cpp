/* device.cpp: what kernels/cuda/device.cu and the CUDA runtime give the other .cu files, for the emulator's
 * kernel tests (a whole program takes tests/emu/runtime.cpp and the real device.cu instead): device memory is
 * the host's, every call synchronous (a launch runs at once; no graphs), copies are memmove, and a CUDA error
 * (never one here) becomes a status. Products through cuBLAS (mrec_gemm_cuda) are refused (weak: test_gemm
 * links gemm.cu's own, for its static kernels, and never calls it). */
#include "cuda_internal.h"
#include <string.h>

mrec_status mrec_cuda_check(cudaError_t err, const char *what) {
    return err ? mrec_fail(MREC_ERR_DEVICE, "%s: CUDA error %d (emulated)", what, (int)err) : MREC_OK;
}
mrec_status mrec_cuda_alloc(int device, void **ptr, size_t bytes, const char *what) {
    (void)device;
    *ptr = malloc(bytes ? bytes : 1);
    return *ptr ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "%s", what);
}
extern "C" {
mrec_status mrec_cuda_malloc(mrec_cuda *cu, void **ptr, size_t bytes) {
    (void)cu;
    *ptr = malloc(bytes ? bytes : 1);
    return *ptr ? MREC_OK : MREC_ERR_NOMEM;
}
void mrec_cuda_free(mrec_cuda *cu, void *ptr) { (void)cu, free(ptr); }
mrec_status mrec_cuda_copy_h2d(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    (void)cu, memmove(dst, src, bytes);
    return MREC_OK;
}
mrec_status mrec_cuda_copy_d2h(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    (void)cu, memmove(dst, src, bytes);
    return MREC_OK;
}
__attribute__((weak)) mrec_status mrec_gemm_cuda(float *C, const float *A, const float *B, const float *bias, float alpha, float beta, int trans_a, int trans_b,
                           int M, int N, int K, int lda, int ldb, int ldc, mrec_cuda *cu) {
    (void)C, (void)A, (void)B, (void)bias, (void)alpha, (void)beta, (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)lda,
        (void)ldb, (void)ldc, (void)cu;
    return mrec_fail(MREC_ERR_UNSUPPORTED, "mrec_gemm_cuda: cuBLAS is not emulated");
}
}

extern "C" {
cudaError_t cudaFuncSetAttribute(const void *, enum cudaFuncAttribute, int) { return cudaSuccess; }
cudaError_t cudaGetLastError(void) { return cudaSuccess; }
cudaError_t cudaPeekAtLastError(void) { return cudaSuccess; }
const char *cudaGetErrorString(cudaError_t) { return "emulated"; }
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind, cudaStream_t) { memmove(d, s, n); return cudaSuccess; }
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind) { memmove(d, s, n); return cudaSuccess; }
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t) { memset(d, v, n); return cudaSuccess; }
cudaError_t cudaMemset(void *d, int v, size_t n) { memset(d, v, n); return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
}

void emu_stream_op(cudaStream_t, std::function<void()> op, const char *) { op(); }
void emu_access(const void *, size_t, bool) {} /* one stream: nothing to race */
bool emu_device_range(const void *, size_t, const char *) { return true; }
void emu_kernel_pointer(const char *, int, const void *) {}
bool emu_launch_ok(const EmuCfg &, const char *) { return true; } /* emu_run_grid checks the configuration */
