/* mrec_clip.h: Hugging Face CLIPModel, forward only: the vision and the text
 * tower, their projections, and the image-text logits.
 *
 * Reads config.json (CLIPConfig: projection_dim, text_config, vision_config;
 * keys left out take CLIPConfig's defaults) and model.safetensors with HF's
 * names (text_model.*, vision_model.*, visual_projection, text_projection,
 * logit_scale). Weights are widened to float32 at load; either tower can be
 * loaded alone. Shapes follow the config, so ViT-B/32, B/16 and L/14 load.
 *
 *   vision: patches (conv, no bias) + class token, + positions, pre_layrnorm,
 *           pre-LN layers, post_layernorm on the class token -> pooler;
 *   text:   tokens + positions, pre-LN layers under a causal mask (and the
 *           padding mask), final_layer_norm, the state at the end-of-text
 *           token -> pooler (HF's rule: with eos_token_id 2, the legacy
 *           configs, the position of the largest id; otherwise the first
 *           position holding eos_token_id);
 *   projected = pooler W^T (no bias); embeds = projected / ||projected||.
 *
 * An AltCLIP folder (model_type "altclip", BAAI/AltCLIP) loads its vision
 * tower here, a CLIP ViT-L/14 under the same names; its text tower is an
 * XLM-R, which mrec_bert reads, and asking for it here is an error.
 *
 * Devices, as for BERT (mrec_bert.h): mrec_clip_to_device moves the loaded
 * towers to a GPU context once; images and token ids are host memory,
 * copied a chunk at a time; outputs are memory on the context's device.
 */
#ifndef MREC_CLIP_H
#define MREC_CLIP_H

#include "mrec_vit.h"

typedef struct {
    int hidden, layers, heads, intermediate;
    float layer_norm_eps;
    mrec_act act;
    int image_size, patch_size, channels;    /* vision */
    int vocab_size, max_positions, eos_token_id; /* text */
} mrec_clip_tower_config;

/* Fills both towers' configs and projection_dim from a parsed config.json
 * (file names it in messages); keys left out take CLIPConfig's defaults;
 * every number is range-checked, eos_token_id inside the vocabulary. For
 * AltCLIP the text config is left zeroed. */
struct cJSON;
mrec_status mrec_clip_config_parse(mrec_clip_tower_config *vision, mrec_clip_tower_config *text, int *projection_dim,
                                   const struct cJSON *root, const char *file);

typedef struct {
    mrec_clip_tower_config cfg;
    mrec_vit_layer *layer;     /* the same pre-LN layer as ViT's */
    float *embed;              /* vision: patch conv weight (H, C*P*P); text: token embedding (V, H) */
    float *cls;                /* vision: class_embedding (H); text: NULL */
    float *pos;                /* (positions, H) */
    float *pre_w, *pre_b;      /* vision: pre_layrnorm; text: NULL */
    float *post_w, *post_b;    /* vision: post_layernorm; text: final_layer_norm */
    float *proj;               /* (projection_dim, H) */
    float *storage;            /* all of the above (host, or on->device) */
    int64_t floats;
    mrec_context *on;          /* the GPU context holding the weights, NULL for host memory */
    int bf16_acts;             /* its forward keeps bf16 activations, as mrec_vit's */
} mrec_clip_tower;

typedef enum { MREC_CLIP_VISION = 1, MREC_CLIP_TEXT = 2, MREC_CLIP_BOTH = 3 } mrec_clip_towers;

typedef struct {
    mrec_clip_tower vision, text;
    int towers;          /* the loaded ones */
    int projection_dim;
    float logit_scale;   /* as stored (a log); the logits use exp(logit_scale) */
} mrec_clip;

/* What a forward returns per input. */
typedef enum { MREC_CLIP_EMBEDS, MREC_CLIP_PROJECTED, MREC_CLIP_POOLER } mrec_clip_output;

mrec_status mrec_clip_load(mrec_clip *m, const char *dir, mrec_clip_towers towers);
/* Moves the loaded towers' weights to where ctx runs. */
mrec_status mrec_clip_to_device(mrec_clip *m, mrec_context *ctx);
void mrec_clip_free(mrec_clip *m);
int mrec_clip_dim(const mrec_clip *m, mrec_clip_towers tower, mrec_clip_output what);
const char *mrec_clip_output_name(mrec_clip_output what);

/* Inputs go through in chunks of at most this many in host memory, which
 * bounds the workspace; on a GPU ViT's (mrec_vit_chunk). */
#define MREC_CLIP_CHUNK 16
size_t mrec_clip_workspace_bytes(const mrec_clip *m, mrec_clip_towers tower, int B, int T);

/* images (B, channels, image_size, image_size), normalized (host) -> out (B, dim) on the context's device. */
mrec_status mrec_clip_image_forward(mrec_context *ctx, const mrec_clip *m, const float *images, int B, mrec_clip_output what,
                                    float *out);

/* ids, mask (B, T) (host; mask may be NULL: all real), T <= max_positions -> out (B, dim) on the context's device. */
mrec_status mrec_clip_text_forward(mrec_context *ctx, const mrec_clip *m, const int32_t *ids, const int32_t *mask, int B, int T,
                                   mrec_clip_output what, float *out);

/* logits (n_images, n_texts) = exp(logit_scale) * image_embeds . text_embeds (CLIP's logits_per_image), on
 * host embeddings. */
void mrec_clip_logits(const mrec_clip *m, const float *image_embeds, int n_images, const float *text_embeds, int n_texts,
                      float *logits);

#endif
