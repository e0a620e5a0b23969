/* fuzz_convert.c: libFuzzer target for the PyTorch checkpoint reader
 * (nn/mrec_pytorch.h): the restricted unpickler, the zip and legacy
 * containers and the tensor bounds checks.
 *
 * An input starting with "PK" is a zip checkpoint as it is. Anything else is
 * the body of a legacy checkpoint (the object's pickle, the storage keys'
 * pickle, the storages) behind a fixed legacy header, so mutations reach the
 * unpickler without first having to match a zip's CRC. Any input must be
 * accepted or refused with a status; when accepted, every tensor must lie
 * inside its storage: each is copied out, and the sanitizer checks every byte
 * read. */
#include "../../nn/mrec_pytorch.h"

#include <stdlib.h>
#include <string.h>

/* The magic number, protocol 1001 and an empty system-info dict, as pickles. */
static const uint8_t LEGACY_HEADER[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e,
                                        0x80, 0x02, 'M',  0xe9, 0x03, '.',  0x80, 0x02, '}',  '.'};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int zip = size >= 2 && data[0] == 'P' && data[1] == 'K';
    size_t n = zip ? size : sizeof LEGACY_HEADER + size;
    uint8_t *buf = malloc(n ? n : 1); /* exactly n bytes: a read past them is caught */
    if (!buf) return 0;
    if (zip) {
        memcpy(buf, data, size);
    } else {
        memcpy(buf, LEGACY_HEADER, sizeof LEGACY_HEADER);
        memcpy(buf + sizeof LEGACY_HEADER, data, size);
    }
    mrec_pytorch pt;
    if (mrec_pytorch_parse(&pt, buf, n, "fuzz.pth", NULL) == MREC_OK) {
        for (int i = 0; i < pt.n_tensors; i++) {
            const mrec_pt_tensor *t = &pt.tensors[i];
            if (!t->name || !t->name[0] || t->ndim < 0 || t->ndim > MREC_ST_MAX_DIMS) abort();
            if (t->storage < 0 || t->storage >= pt.n_storages || !pt.storages[t->storage].data) abort();
            uint64_t bytes = mrec_pt_tensor_bytes(t);
            if (bytes > (1u << 24)) continue; /* a stride-0 view may be huge; the checks before are what count */
            void *out = malloc(bytes ? bytes : 1);
            if (out) mrec_pytorch_copy(&pt, i, out);
            free(out);
        }
        mrec_pytorch_close(&pt);
    }
    free(buf);
    return 0;
}
