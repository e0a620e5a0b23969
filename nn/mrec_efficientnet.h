/* mrec_efficientnet.h: the EfficientNet image tower of ALIGN, as Hugging
 * Face's AlignVisionModel builds it (kakaobrain/align-base: EfficientNet-B7
 * scaling, width 2.0 and depth 3.1, 55 MBConv blocks, no top conv, 640
 * channels out), forward only.
 *
 * A folder holds config.json (an AlignConfig with its "vision_config", or
 * an AlignVisionConfig) and model.safetensors with Hugging Face's names
 * ("vision_model.embeddings.convolution.weight", ... in a whole AlignModel;
 * without the "vision_model." prefix in an AlignVisionModel). The blocks'
 * strides and paddings come from the config; their widths and kernels from
 * the tensors, checked against the config. Every BatchNorm (eps from the
 * config, 1e-3) is folded into its convolution at load.
 *
 * Outputs: pooled (B, C), the mean of the last feature map, which is
 * AlignVisionModel's pooler_output and AlignModel.get_image_features; and
 * embeds (B, C), AlignModel's image_embeds: ALIGN projects only the text
 * side, so the image embedding is the pooled output L2-normalized.
 */
#ifndef MREC_EFFICIENTNET_H
#define MREC_EFFICIENTNET_H

#include "mrec_tensor.h"

typedef struct {
    int c_in, c_exp, c_se, c_out; /* c_exp == c_in when the block does not expand */
    int k, stride;
    int pad_top, pad_bottom, pad_left, pad_right; /* of the depthwise conv */
    int residual;                 /* x + block(x): every block of a stage but its first */
    int expands;                  /* an expansion conv (the stage's expand ratio is not 1) */
    float *expand_w, *expand_b;   /* (c_exp, c_in) 1x1 conv + folded BatchNorm; NULL without expansion */
    float *dw_w, *dw_b;           /* (c_exp, 1, k, k) depthwise + folded BatchNorm */
    float *se_reduce_w, *se_reduce_b; /* (c_se, c_exp), (c_se) */
    float *se_expand_w, *se_expand_b; /* (c_exp, c_se), (c_exp) */
    float *project_w, *project_b;     /* (c_out, c_exp) 1x1 conv + folded BatchNorm */
    /* the BatchNorms' other tensors, kept in the storage (folding used them) */
    float *bn_rest[3][3];
} mrec_effnet_block;

typedef struct {
    int n_blocks;
    int stem_c;     /* channels out of the stem */
    int features;   /* channels of the last block: the pooled size (640 for align-base) */
    float bn_eps;
    int pool_window; /* hidden_dim: the pooler's AvgPool2d window, the global mean on any smaller map */
    float *stem_w, *stem_b; /* (stem_c, 3, 3, 3) valid 3x3/2 conv after a (0, 1, 0, 1) zero pad, BatchNorm folded */
    float *stem_rest[3];
    mrec_effnet_block *block;
    float *storage; /* every tensor above, one allocation (host, or the device after mrec_efficientnet_to_device) */
    int64_t floats;
    mrec_context *on;
    int float_planes; /* 1: each expansion hands its output to the depthwise conv in float even where
                       * mrec_bf16_planes_native (the same bits; a test compares the two) */
} mrec_efficientnet;

/* Reads dir/config.json and dir/model.safetensors. A missing tensor, a shape
 * that does not chain or disagrees with the config, or a config value out
 * of range is an error naming the file and the tensor or key. */
mrec_status mrec_efficientnet_load(mrec_efficientnet *m, const char *dir);
mrec_status mrec_efficientnet_to_device(mrec_efficientnet *m, mrec_context *ctx);
void mrec_efficientnet_free(mrec_efficientnet *m);

/* Workspace bytes for one forward pass on (h, w) images. */
size_t mrec_efficientnet_workspace_bytes(const mrec_efficientnet *m, int h, int w);
/* Workspace bytes that let a forward of B images on ctx run a pass per
 * thread of a CPU pool side by side (mrec_context_split): the threads'
 * passes, or one pass where it would not split. */
size_t mrec_efficientnet_batch_workspace_bytes(const mrec_context *ctx, const mrec_efficientnet *m, int B, int h, int w);

/* The last feature map's size for (h, w) images (0 x 0 if they are too small). */
void mrec_efficientnet_out_size(const mrec_efficientnet *m, int h, int w, int *out_h, int *out_w);

/* images (B, 3, h, w), host memory, preprocessed (the hf-align preset);
 * pooled and embeds (B, features), last (B, features, out_h, out_w): the
 * last_hidden_state; any may be NULL; on the context's device. */
mrec_status mrec_efficientnet_forward(mrec_context *ctx, const mrec_efficientnet *m, const float *images, int B, int h,
                                      int w, float *pooled, float *embeds, float *last);

#endif
