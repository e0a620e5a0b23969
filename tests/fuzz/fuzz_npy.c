/* fuzz_npy.c: libFuzzer target for the .npy header parser. Accepted
 * headers must describe data that starts inside the buffer. */
#include "../../nn/mrec_npy.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrec_npy_header h;
    if (mrec_npy_parse_header(data, size, &h, "fuzz.npy") == MREC_OK) {
        if (h.data_offset > size) abort();
        if (h.ndim < 0 || h.ndim > MREC_NPY_MAX_DIMS) abort();
    }
    return 0;
}
