/* fuzz_safetensors.c: libFuzzer target for the safetensors header parser.
 * Any input must be accepted or rejected with a status; when accepted,
 * every entry's byte range must lie inside the buffer. */
#include "../../nn/mrec_safetensors.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrec_safetensors st;
    if (mrec_safetensors_parse(&st, data, size, "fuzz.safetensors") == MREC_OK) {
        for (int i = 0; i < st.n_tensors; i++) {
            const mrec_st_entry *e = &st.tensors[i];
            const uint8_t *p = e->data;
            if (p < data || p + (e->end - e->begin) > data + size) abort();
            if (mrec_safetensors_find(&st, e->name) != e) abort();
            volatile uint8_t sink = 0;
            for (uint64_t b = 0; b < e->end - e->begin; b++) sink ^= p[b]; /* ASan checks each byte */
            (void)sink;
        }
    }
    mrec_safetensors_close(&st);
    return 0;
}
