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

#include <stdint.h>

#include "../kernels/mrec_status.h"

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
