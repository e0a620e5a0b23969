/* mrec_image.h: image preprocessing identical to PIL, the ground truth of
 * Ducho, torchvision and Hugging Face processors.
 *
 * mrec_resize_u8 is PIL's Image.resize for 8-bit images: a separable
 * convolution, horizontal pass then vertical, whose support widens with the
 * downscale factor (antialiasing), with coefficients normalized per output
 * pixel, turned into 22-bit fixed point, and rounded as PIL rounds; the
 * intermediate image is 8-bit, as in PIL. The output equals PIL's to the
 * byte.
 */
#ifndef MREC_IMAGE_H
#define MREC_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/mrec_status.h"

/* ---- decode (decode.c) ---- */

/* Limits checked on the header, before any pixel buffer is allocated.
 * Pixels: PIL's Image.MAX_IMAGE_PIXELS is 89,478,485; above it PIL warns
 * (DecompressionBombWarning), above twice it PIL refuses the image
 * (DecompressionBombError). mrec refuses where PIL refuses and, being a
 * library that does not print, does not warn. Sides: PIL has no limit of
 * its own; 65,500 is JPEG's (libjpeg's JPEG_MAX_DIMENSION) and keeps every
 * later row and offset computation inside an int. File: PNG data goes to
 * stb_image as an int-sized buffer. */
#ifndef MREC_IMAGE_MAX_PIXELS /* the image fuzzer builds with a lower one */
#define MREC_IMAGE_MAX_PIXELS ((int64_t)2 * 89478485)
#endif
#define MREC_IMAGE_MAX_SIDE 65500
#define MREC_IMAGE_MAX_FILE_BYTES ((int64_t)2147483647)

typedef struct {
    uint8_t *rgb; /* (h, w, 3), malloc'd */
    int h, w;
} mrec_rgb_image;

/* A JPEG or PNG file's bytes to 8-bit RGB as PIL's
 * Image.open(f).convert('RGB') gives them (decode.c says what that means
 * for gray, alpha, palettes, CMYK and 16-bit). name is used in errors.
 * The format is read from the bytes, never from the name (as PIL does: a
 * PNG called x.jpg decodes). Anything else (MREC_ERR_UNSUPPORTED), an empty,
 * corrupt or truncated file, or one over the size limits (MREC_ERR_FORMAT)
 * is an error naming the file and what is wrong; nothing is allocated then.
 * mrec_image_load refuses a path that is not a regular file (a FIFO, a
 * device, a directory, a socket) at once with MREC_ERR_IO, without reading
 * from it, so a pipe given as an image cannot block the run. */
mrec_status mrec_image_decode(const uint8_t *data, size_t size, const char *name, mrec_rgb_image *img);
mrec_status mrec_image_load(const char *path, mrec_rgb_image *img);
void mrec_image_free(mrec_rgb_image *img);

/* ---- resize and normalize (resize.c) ---- */

typedef enum { MREC_RESAMPLE_BILINEAR, MREC_RESAMPLE_BICUBIC } mrec_resample;

/* out (oh, ow, c) = in (h, w, c) resized; box = {x0, y0, x1, y1}, the source
 * region as PIL's box argument (NULL: the whole image). */
mrec_status mrec_resize_u8(uint8_t *out, const uint8_t *in, int h, int w, int c, int oh, int ow, mrec_resample filter,
                           const double *box);

/* torchvision's CenterCrop / HF's center crop offset for cropping `size`
 * out of `full`: int(round((full - size) / 2.0)), Python rounding (half to even). */
int mrec_center_crop_offset(int full, int size);

/* The shorter side scaled to `shorter` (torchvision Resize(int), HF's
 * shortest_edge): the longer side is int(shorter * long / short), truncated,
 * as torchvision computes it. */
void mrec_shorter_side_size(int h, int w, int shorter, int *oh, int *ow);

/* out (c, h, w) float = (in (h, w, c) / 255 - mean[c]) / std[c]: ToTensor +
 * Normalize, channels first. */
void mrec_to_float_chw(float *out, const uint8_t *in, int h, int w, int c, const float *mean, const float *std);

#endif
