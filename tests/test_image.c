/* test_image.c: PIL-exact resizing. tools/golden/images.py ran Pillow's
 * Image.resize on a real photo crop for several sizes, filters and boxes;
 * mrec must give the same bytes: zero difference is the bound, since PIL's
 * fixed-point arithmetic is integer and fully determined. */
#include "harness.h"

#include "../extractors/mrec_image.h"
#include "../nn/mrec_npy.h"

#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/images/"

static uint8_t *read_u8(const char *path, int64_t *shape) {
    mrec_npy_array a;
    if (mrec_npy_read(path, &a) || a.header.dtype != MREC_NPY_I32 || a.header.ndim != 3) return NULL;
    int64_t n = a.header.shape[0] * a.header.shape[1] * a.header.shape[2];
    uint8_t *out = malloc((size_t)n);
    for (int64_t i = 0; i < n; i++) out[i] = (uint8_t)((const int32_t *)a.data)[i];
    memcpy(shape, a.header.shape, 3 * sizeof *shape);
    mrec_npy_free(&a);
    return out;
}

int main(void) {
    t_suite("image");
    int64_t ish[3];
    uint8_t *in = read_u8(FIX "input.npy", ish);
    T_REQUIRE(in != NULL);
    FILE *f = fopen(FIX "cases.txt", "r");
    T_REQUIRE(f != NULL);
    char name[64], filter[16], box[128];
    int w, h;
    while (fscanf(f, "%63s %d %d %15s %127s", name, &w, &h, filter, box) == 5) {
        char path[256];
        snprintf(path, sizeof path, FIX "%s.npy", name);
        int64_t wsh[3];
        uint8_t *want = read_u8(path, wsh);
        double b[4];
        int has_box = strcmp(box, "-") != 0 && sscanf(box, "%lf,%lf,%lf,%lf", &b[0], &b[1], &b[2], &b[3]) == 4;
        uint8_t *got = malloc((size_t)h * w * 3);
        mrec_status st = mrec_resize_u8(got, in, (int)ish[0], (int)ish[1], 3, h, w,
                                        strcmp(filter, "bicubic") ? MREC_RESAMPLE_BILINEAR : MREC_RESAMPLE_BICUBIC, has_box ? b : NULL);
        int diff = 0, worst = 0;
        for (int64_t i = 0; want && st == MREC_OK && i < (int64_t)h * w * 3; i++) {
            int d = abs((int)got[i] - want[i]);
            diff += d != 0;
            worst = d > worst ? d : worst;
        }
        t_check(want && st == MREC_OK && wsh[0] == h && wsh[1] == w && diff == 0,
                "%s (%dx%d %s%s): %d of %d bytes differ from PIL (max %d)", name, w, h, filter, has_box ? ", box" : "", diff,
                h * w * 3, worst);
        free(want), free(got);
    }
    fclose(f);
    uint8_t out[12];
    double bad_box[4] = {0, 0, 500, 10};
    t_status(mrec_resize_u8(out, in, (int)ish[0], (int)ish[1], 3, 2, 2, MREC_RESAMPLE_BICUBIC, bad_box), MREC_ERR_ARG, "box outside the image");
    t_status(mrec_resize_u8(out, in, (int)ish[0], (int)ish[1], 3, 0, 2, MREC_RESAMPLE_BICUBIC, NULL), MREC_ERR_ARG, "zero height");
    free(in);
    return t_finish();
}
