/* test_decode.c: JPEG / PNG decoding against PIL's Image.open().convert('RGB').
 *
 * tools/golden/decode.py decoded every photo and odd file under
 * ../shared/data/images (and every 8th H&M photo) with PIL and wrote the
 * size and the crc32 of the RGB bytes, or PIL's error. The bound is zero:
 * the same libjpeg-turbo IDCT and upsampling, PNG being lossless. Where PIL
 * fails, mrec must fail with a message naming the file; where PIL decodes,
 * mrec must give the same bytes. tests/data ships the small, permissively
 * licensed part of those files, so every clone sweeps those; with ../shared
 * beside the repository the sweep covers all.
 */
#include "harness.h"

#include "../extractors/mrec_image.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* Files PIL decodes and mrec refuses on purpose, and why. */
static const char *const stricter[] = {
    /* an IDAT chunk declaring 1 GiB in a 79-byte file: PIL inflates the bytes that are there */
    "images/odd/libpng/testpngs-crashers/huge_IDAT.png",
};

static int is_stricter(const char *rel) {
    for (size_t i = 0; i < sizeof stricter / sizeof *stricter; i++)
        if (!strcmp(rel, stricter[i])) return 1;
    return 0;
}

static void sweep(void) {
    FILE *f = fopen("tests/fixtures/images/decode.tsv", "r");
    if (!f) {
        t_check(0, "tests/fixtures/images/decode.tsv is missing");
        return;
    }
    char line[1024];
    int files = 0, same = 0, both_fail = 0, absent = 0; /* stricter files count in neither */
    while (fgets(line, sizeof line, f)) {
        char rel[512], kind[16], ws[16], hs[16], crc_s[600];
        if (sscanf(line, "%511[^\t]\t%15[^\t]\t%15[^\t]\t%15[^\t]\t%599[^\n]", rel, kind, ws, hs, crc_s) != 5) continue;
        char path[600];
        if (!t_data(path, sizeof path, rel)) { /* not shipped, and ../shared is not beside the repository */
            absent++;
            continue;
        }
        mrec_rgb_image img;
        mrec_status st = mrec_image_load(path, &img);
        files++;
        if (!strcmp(kind, "error")) {
            int named = st != MREC_OK && strstr(mrec_error_detail(), path) != NULL;
            both_fail += named;
            t_check(named, "%s: PIL fails (%s), mrec %s", rel, crc_s, st ? mrec_error_detail() : "decoded it");
            if (getenv("MREC_TEST_VERBOSE") && st) printf("  %s -> %s\n", rel, mrec_error_detail());
        } else if (is_stricter(rel)) {
            t_check(st != MREC_OK && strstr(mrec_error_detail(), path) != NULL, "%s: refused with a message", rel);
        } else {
            int w = atoi(ws), h = atoi(hs);
            uint32_t want = (uint32_t)strtoul(crc_s, NULL, 16), got = 0;
            if (st == MREC_OK) got = (uint32_t)crc32(crc32(0, NULL, 0), img.rgb, (uInt)((size_t)img.w * img.h * 3));
            int ok = st == MREC_OK && img.w == w && img.h == h && got == want;
            same += ok;
            t_check(ok, "%s: PIL gives %dx%d crc %08x, mrec %s %dx%d crc %08x", rel, w, h, want, st ? mrec_error_detail() : "",
                    st ? 0 : img.w, st ? 0 : img.h, got);
        }
        if (st == MREC_OK) mrec_image_free(&img);
    }
    fclose(f);
    printf("  decode sweep: %d files, %d equal to PIL to the byte, %d refused as PIL refuses them\n", files, same, both_fail);
    t_check(files >= 100, "the sweep reached the shipped images at least (%d files)", files);
    if (absent) t_skip("%d files of the decode references are in ../shared/data only", absent);
}

/* Every prefix cut of a real JPEG and PNG either decodes or fails cleanly;
 * never reads out of bounds (the SAN build checks that). */
static void truncations(const char *rel) {
    char path[600];
    FILE *f = t_data(path, sizeof path, rel) ? fopen(path, "rb") : NULL;
    if (!t_check(f != NULL, "%s for the truncation test", rel)) return;
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int failed_cleanly = 0, cuts = 0;
    for (size_t cut = 0; cut < n; cut += n / 97 + 1, cuts++) {
        mrec_rgb_image img;
        mrec_status st = mrec_image_decode(buf, cut, "cut", &img);
        failed_cleanly += st != MREC_OK && img.rgb == NULL && strstr(mrec_error_detail(), "cut") != NULL;
        if (!st) mrec_image_free(&img);
    }
    t_check(failed_cleanly == cuts, "%s: %d of %d truncated copies refused with a message", rel, failed_cleanly, cuts);
}

int main(void) {
    t_suite("decode");
    sweep();
    truncations("images/odd/pillow/flower.jpg");
    truncations("images/odd/pillow/app13-multiple.jpg"); /* progressive */
    truncations("images/odd/pillow/pil123rgba.png");     /* interlaced */
    mrec_rgb_image img;
    t_status(mrec_image_decode((const uint8_t *)"GIF89a....", 10, "x.gif", &img), MREC_ERR_UNSUPPORTED, "a GIF is refused");
    t_check(strstr(mrec_error_detail(), "x.gif") != NULL, "the message names the file: %s", mrec_error_detail());
    t_status(mrec_image_load("no/such/file.jpg", &img), MREC_ERR_IO, "a missing file");
    return t_finish();
}
