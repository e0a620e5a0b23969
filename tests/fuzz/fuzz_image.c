/* fuzz_image.c: libFuzzer target for image decoding (JPEG through
 * libjpeg-turbo, PNG through the chunk check and stb_image). An accepted
 * image has a size inside the limits and a buffer of that size; a refused
 * one leaves nothing allocated. */
#include "../../extractors/mrec_image.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mrec_rgb_image img;
    if (mrec_image_decode(data, size, "fuzz", &img) == MREC_OK) {
        if (img.w < 1 || img.h < 1 || (int64_t)img.w * img.h > MREC_IMAGE_MAX_PIXELS) abort();
        volatile uint8_t last = img.rgb[(size_t)img.w * img.h * 3 - 1];
        (void)last;
        mrec_image_free(&img);
    } else if (img.rgb) {
        abort();
    }
    return 0;
}
