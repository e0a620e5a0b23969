/* cuda_stub.c: the CUDA entry points of a CPU-only build. Each reports that
 * this build has no GPU support, so callers fall back or fail cleanly. */
#include "../mrec_kernels.h"

#include <stddef.h>

int mrec_cuda_compiled(void) { return 0; }

mrec_status mrec_cuda_create(mrec_cuda **out, int device) {
    (void)device;
    *out = NULL;
    return mrec_fail(MREC_ERR_DEVICE, "this build has no CUDA support (rebuild with make CUDA=1)");
}

void mrec_cuda_destroy(mrec_cuda *cu) { (void)cu; }

static mrec_status no_cuda(void) {
    return mrec_fail(MREC_ERR_DEVICE, "this build has no CUDA support");
}

mrec_status mrec_cuda_malloc(mrec_cuda *cu, void **ptr, size_t bytes) {
    (void)cu, (void)bytes;
    *ptr = NULL;
    return no_cuda();
}
void mrec_cuda_free(mrec_cuda *cu, void *ptr) { (void)cu, (void)ptr; }
mrec_status mrec_cuda_copy_h2d(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    (void)cu, (void)dst, (void)src, (void)bytes;
    return no_cuda();
}
mrec_status mrec_cuda_copy_d2h(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    (void)cu, (void)dst, (void)src, (void)bytes;
    return no_cuda();
}
mrec_status mrec_cuda_sync(mrec_cuda *cu) {
    (void)cu;
    return no_cuda();
}
mrec_status mrec_gemm_cuda(float *C, const float *A, const float *B, const float *bias,
                           float alpha, float beta, int trans_a, int trans_b,
                           int M, int N, int K, int lda, int ldb, int ldc, mrec_cuda *cu) {
    (void)C, (void)A, (void)B, (void)bias, (void)alpha, (void)beta, (void)trans_a, (void)trans_b;
    (void)M, (void)N, (void)K, (void)lda, (void)ldb, (void)ldc, (void)cu;
    return no_cuda();
}
