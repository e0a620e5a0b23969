/* ops_statics.cu: appended to kernels/cuda/ops.cu's emulated copy (tests/emu/statics.h says why). */
#include "statics.h"

/* as mrec_gram_topk_cuda launches it on the rows it has sent up, before its cuBLAS products */
mrec_status emu_unit_rows(float *x, int n, int dim, mrec_cuda *cu) {
    unit_rows_kernel<<<mrec_grid((int64_t)n * 32, THREADS), THREADS, 0, cu->stream>>>(x, n, dim);
    return MREC_CUDA_LAUNCHED("gram top-k: unit rows");
}
