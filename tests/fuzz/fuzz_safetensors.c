/* fuzz_safetensors.c: libFuzzer target for the safetensors header parser.
 * Any input must be accepted or rejected with a status; when accepted,
 * every entry's byte range must lie inside the buffer, its element count
 * must agree with its byte length, and a float tensor read as float32 is
 * either refused (NaN or infinity) or all finite. */
#include "../../nn/mrec_safetensors.h"

#include <math.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrec_safetensors st;
    if (mrec_safetensors_parse(&st, data, size, "fuzz.safetensors") == MREC_OK) {
        for (int i = 0; i < st.n_tensors; i++) {
            const mrec_st_entry *e = &st.tensors[i];
            const uint8_t *p = e->data;
            if (p < data || p + (e->end - e->begin) > data + size) abort();
            if (mrec_safetensors_find(&st, e->name) != e) abort();
            int64_t n = mrec_st_entry_numel(e);
            if (n < 0 || (uint64_t)n * mrec_dtype_size(e->dtype) != e->end - e->begin) abort();
            volatile uint8_t sink = 0;
            for (uint64_t b = 0; b < e->end - e->begin; b++) sink ^= p[b]; /* ASan checks each byte */
            (void)sink;
            if (e->dtype == MREC_I32 || e->dtype == MREC_I64 || n > 4096) continue;
            float out[4096];
            if (mrec_safetensors_read_f32(&st, e->name, e->ndim, e->shape, out) == MREC_OK)
                for (int64_t k = 0; k < n; k++)
                    if (!isfinite(out[k])) abort();
        }
    }
    mrec_safetensors_close(&st);
    return 0;
}
