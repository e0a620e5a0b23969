/* mrec_preprocess.h: the image preprocessing of the encoders' own tools,
 * on top of PIL-exact resizing (mrec_image.h).
 *
 * Presets:
 *   ducho-resnet  Ducho's torchvision pipeline: Resize((224, 224)) bicubic,
 *                 no crop, ToTensor, ImageNet mean/std
 *   torchvision   torchvision's ImageNet eval: Resize(256) bilinear (shorter
 *                 side), CenterCrop(224), ToTensor, ImageNet mean/std
 *   hf-vit        ViTImageProcessor: 224 x 224 bilinear, mean = std = 0.5
 *   hf-clip       CLIPImageProcessor: shortest edge 224 bicubic, center crop
 *                 224, CLIP mean/std
 *   hf-align      EfficientNetImageProcessor as kakaobrain/align-base ships
 *                 it: 346 x 346 bilinear, center crop 289, x / 127.5 - 1
 *                 (rescale_offset), no mean/std
 * The hf- presets read the model folder's preprocessor_config.json when it
 * exists (size, crop_size, resample, do_resize, do_center_crop, do_rescale,
 * rescale_factor, do_normalize, image_mean, image_std; rescale_offset and
 * include_top, EfficientNet's, with include_top false only).
 *
 * What differs between the tools, and is kept: torchvision's CenterCrop
 * offset rounds (ties to even), Hugging Face's truncates; torchvision
 * divides by 255 and then normalizes, Hugging Face folds the rescale into
 * the mean and std ((x - 255 mean) / (255 std)). Hugging Face's default
 * (torchvision-backed) processors resize uint8 tensors with a kernel that
 * differs from PIL on a few pixels by one level; mrec keeps PIL's result.
 */
#ifndef MREC_PREPROCESS_H
#define MREC_PREPROCESS_H

#include "mrec_image.h"

typedef struct {
    char name[32];
    mrec_resample filter;
    int resize_h, resize_w;  /* > 0: straight to this size */
    int shortest_edge;       /* > 0 (instead): the shorter side to this */
    int crop_h, crop_w;      /* 0: no crop */
    int hf;                  /* Hugging Face's crop offset and fused normalization */
    int do_normalize;
    double rescale;          /* 1/255, as the config states it (a double) */
    float mean[3], std[3];
    int rescale_offset;      /* EfficientNet's: x * rescale - 1 (without normalization) */
} mrec_preprocess;

/* Fills p for a preset name; model_dir (or NULL) is where an hf- preset
 * looks for preprocessor_config.json. An unknown name is an error listing
 * the presets. */
mrec_status mrec_preprocess_preset(mrec_preprocess *p, const char *name, const char *model_dir);

/* The output size of an h x w image. */
void mrec_preprocess_out_size(const mrec_preprocess *p, int h, int w, int *oh, int *ow);

/* out (3, oh, ow) float from an RGB image; u8 (oh, ow, 3) receives the
 * resized and cropped bytes when not NULL. */
mrec_status mrec_preprocess_image(const mrec_preprocess *p, const mrec_rgb_image *img, float *out, uint8_t *u8);

#endif
