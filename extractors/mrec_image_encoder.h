/* mrec_image_encoder.h: image files in, one feature vector per image out,
 * as Ducho's visual extraction: decode (PIL-exact), a preprocessing preset,
 * a ResNet, ViT or CLIP vision forward.
 *
 * The model path is a torchvision ResNet safetensors file (or a folder with
 * model.safetensors and no config.json), or a Hugging Face folder whose
 * config.json says model_type "vit", "clip" or "align" (ALIGN's image
 * tower; "align_vision_model" too). Layers: ResNet avgpool
 * (default) or logits; ViT cls (last_hidden_state[:, 0], default) or pooler;
 * CLIP embeds (image_embeds: projected and L2-normalized, default),
 * projected (get_image_features) or pooler (post_layernorm class token);
 * ALIGN embeds (image_embeds: the pooled output L2-normalized, default) or
 * pooler (pooler_output = get_image_features: ALIGN has no image projection).
 *
 * Decoding and preprocessing run on producer threads, one batch ahead of
 * the forward pass, so they overlap it (mrec_batch_pipe.h): into pinned
 * memory on a GPU context, whose upload then overlaps the previous batch's
 * forward on the copy stream. An image that fails to decode is reported
 * (its error kept per item) and skipped, never zero-filled.
 */
#ifndef MREC_IMAGE_ENCODER_H
#define MREC_IMAGE_ENCODER_H

#include "../nn/mrec_clip.h"
#include "../nn/mrec_efficientnet.h"
#include "../nn/mrec_resnet.h"
#include "../nn/mrec_vit.h"
#include "mrec_batch_pipe.h"
#include "mrec_preprocess.h"

typedef enum {
    MREC_LAYER_AVGPOOL, MREC_LAYER_LOGITS,  /* ResNet */
    MREC_LAYER_CLS, MREC_LAYER_POOLER,      /* ViT; CLIP has pooler too */
    MREC_LAYER_EMBEDS, MREC_LAYER_PROJECTED /* CLIP */
} mrec_image_layer;

typedef enum { MREC_IMAGE_RESNET, MREC_IMAGE_VIT, MREC_IMAGE_CLIP, MREC_IMAGE_ALIGN } mrec_image_model;

typedef struct {
    mrec_image_model kind;
    mrec_resnet resnet;
    mrec_vit vit;
    mrec_clip clip;     /* the vision tower only */
    mrec_efficientnet align; /* ALIGN's image tower */
    mrec_preprocess pre;
    mrec_image_layer layer;
    int batch_size;
    int decode_threads; /* producer threads, at most the context's pool threads (--threads); 0: decode in the caller, in turn */
    void (*progress)(void *ctx, int done, int total); /* after each batch, when set */
    void *progress_ctx;
    /* after each batch, when set: rows [first, first + count) of the call's out and ok are final (the caller
     * may write them while the next batch encodes and the one after decodes); an error stops the run */
    mrec_status (*batch_done)(void *ctx, int first, int count);
    void *batch_done_ctx;
    /* the weights packed once for the CPU's GEMMs, as they are first used (see mrec_packs): they cost about
     * the bytes of the weights used as nn.Linear's W or as convolutions' weights again; NULL on a GPU or to do without */
    mrec_packs *packs;
    mrec_stage_times *times; /* when set, each embed call adds where its time went (decoding is "prepare") */
} mrec_image_encoder;

/* What the model path holds: a folder's config.json model_type (vit, clip,
 * align, align_vision_model; another is an error), else a ResNet. */
mrec_status mrec_image_model_kind(const char *model, mrec_image_model *kind);

/* layer NULL: the model's default. preset NULL: ducho-resnet for a ResNet,
 * hf-vit for a ViT, hf-clip for CLIP, hf-align for ALIGN (a folder's
 * preprocessor_config.json refines it). The preprocessing (enc->pre) may be
 * changed before embedding; a ViT's or CLIP's image size is checked then. */
mrec_status mrec_image_encoder_load(mrec_image_encoder *enc, const char *model, const char *preset, const char *layer);
/* Moves the model's weights to where ctx runs, once, before embedding on a
 * GPU context (nothing to do on the CPU). */
mrec_status mrec_image_encoder_to_device(mrec_image_encoder *enc, mrec_context *ctx);
/* Frees the encoder (before the context its weights are on). */
void mrec_image_encoder_free(mrec_image_encoder *enc);
int mrec_image_encoder_dim(const mrec_image_encoder *enc);
const char *mrec_image_layer_name(mrec_image_layer layer);

/* out (n, dim), host memory: row i is image i's features when ok[i]; the
 * forward runs where ctx does and only the features come back; a failed image
 * leaves its row untouched, ok[i] = 0 and errors[i] a malloc'd message
 * (the caller frees it). Returns an error only for what stops the run
 * (memory, the model). */
mrec_status mrec_image_encoder_embed(mrec_context *ctx, const mrec_image_encoder *enc, const char *const *paths, int n,
                                     float *out, int *ok, char **errors);
/* The same for encoded images in memory: data[i] (sizes[i] bytes of JPEG or
 * PNG), named names[i] in the messages. */
mrec_status mrec_image_encoder_embed_encoded(mrec_context *ctx, const mrec_image_encoder *enc, const void *const *data,
                                             const size_t *sizes, const char *const *names, int n, float *out, int *ok,
                                             char **errors);

/* ---- which image belongs to which item ---- */

typedef struct {
    char **ids, **paths; /* (n) */
    int n;
} mrec_image_list;

/* source: a folder, searched recursively for .jpg / .jpeg / .png, an item's
 * id being the file name up to its first dot (Ducho's rule), items in id
 * order; or a CSV / TSV table whose id_col and path_col (NULL: the first two
 * columns) give id and path, relative paths taken from the table's folder,
 * items in table order. An id given twice, an id that cannot be a file name
 * and an empty source are errors naming them. */
mrec_status mrec_image_list_read(mrec_image_list *l, const char *source, const char *id_col, const char *path_col);
void mrec_image_list_free(mrec_image_list *l);

#endif
