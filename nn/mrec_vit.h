/* mrec_vit.h: Hugging Face ViTModel, forward only.
 *
 * Reads config.json (image_size, patch_size, num_channels, hidden_size,
 * num_hidden_layers, num_attention_heads, intermediate_size, hidden_act,
 * layer_norm_eps, qkv_bias, pooler_output_size, pooler_act) and
 * model.safetensors with HF's names, bare (ViTModel) or under "vit."
 * (ViTForImageClassification). Weights are widened to float32 at load.
 * Position embeddings are used as stored: images must be image_size square
 * (HF's interpolate_pos_encoding is not implemented).
 *
 * Devices, as for BERT (mrec_bert.h): mrec_vit_to_device moves the weights to
 * a GPU context once; images are host memory, copied a chunk at a time;
 * outputs are memory on the context's device.
 */
#ifndef MREC_VIT_H
#define MREC_VIT_H

#include "mrec_tensor.h"

typedef struct {
    int image_size, patch_size, channels, hidden, layers, heads, intermediate, pooler_size;
    float layer_norm_eps;
    mrec_act act;
    int qkv_bias;
} mrec_vit_config;

/* Fills c from a parsed config.json (file names it in messages); keys left
 * out take ViTConfig's defaults; every number is range-checked. */
struct cJSON;
mrec_status mrec_vit_config_parse(mrec_vit_config *c, const struct cJSON *root, const char *file);

typedef struct {
    float *ln1_w, *ln1_b;                     /* layernorm_before (H) */
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* (H, H), (H) or NULL without qkv_bias */
    float *o_w, *o_b;                         /* attention.output.dense */
    float *ln2_w, *ln2_b;                     /* layernorm_after (H) */
    float *inter_w, *inter_b, *out_w, *out_b; /* (I, H), (I), (H, I), (H) */
} mrec_vit_layer;

typedef struct {
    mrec_vit_config cfg;
    float *patch_w, *patch_b;  /* (H, C * P * P) (the conv weight flattened), (H) */
    float *cls, *pos;          /* (H), (1 + patches, H) */
    mrec_vit_layer *layer;
    float *ln_w, *ln_b;        /* final layernorm */
    float *pooler_w, *pooler_b; /* (pooler_size, H), NULL if the file has no pooler */
    float *storage;             /* all of the above (host, or on->device) */
    int64_t floats;
    mrec_context *on;           /* the GPU context holding the weights, NULL for host memory */
    int bf16_acts;              /* its forward keeps bf16 activations (mrec_vit_layer_forward_bf16): set by
                                 * mrec_vit_to_device where mrec_bf16_activations_native (a test sets it on the CPU) */
} mrec_vit;

mrec_status mrec_vit_load(mrec_vit *m, const char *dir);
mrec_status mrec_vit_to_device(mrec_vit *m, mrec_context *ctx);
void mrec_vit_free(mrec_vit *m);

/* Images go through in chunks of at most this many, which bounds the
 * workspace: 16 in host memory (the CPU attention's scratch grows with the
 * square of the tokens), 128 on a GPU, where the attention needs no scratch
 * and longer products fill the tensor cores' waves (16 ViT-B/16 images are
 * 3,152 rows: 150 tiles of 128 x 128 on 132 SMs, a second wave nearly idle). */
#define MREC_VIT_CHUNK 16
#define MREC_VIT_GPU_CHUNK 128
/* The chunk for weights on `on` (a model's on: its GPU context, NULL for host memory). */
int mrec_vit_chunk(const mrec_context *on);
size_t mrec_vit_workspace_bytes(const mrec_vit *m, int B);

/* images (B, channels, image_size, image_size), normalized, host memory.
 * cls (B, H) = last_hidden_state[:, 0]; pooled (B, pooler_size) =
 * pooler_output (an error if asked for and the file has no pooler); either
 * may be NULL; both on the context's device. */
mrec_status mrec_vit_forward(mrec_context *ctx, const mrec_vit *m, const float *images, int B, float *cls, float *pooled);

/* Shared with CLIP's towers, which are the same pre-LayerNorm layers. */

/* One layer, in place on x (B*T, H): x += Wo attn(LN1(x)); x += W2 act(W1 LN2(x)). mask_bias (B, T)
 * and head_bias (heads, T, T) as in mrec_attention_cpu (kernels/mrec_kernels.h; either may be NULL). q/k/v biases may be NULL. */
size_t mrec_vit_layer_scratch_floats(const mrec_context *on, int B, int T, int H, int I, int heads);
mrec_status mrec_vit_layer_forward(mrec_context *ctx, const mrec_vit_layer *L, float *x, int B, int T, int H, int I, int heads,
                                   mrec_act act, float eps, const float *mask_bias, const float *head_bias, float *scratch);
/* The same layer with bf16 activations between its steps, PyTorch's bf16 autocast (mrec_kernels.h, "bf16
 * activations"): x stays fp32; the same scratch. For a context in bf16. */
mrec_status mrec_vit_layer_forward_bf16(mrec_context *ctx, const mrec_vit_layer *L, float *x, int B, int T, int H, int I, int heads,
                                        mrec_act act, float eps, const float *mask_bias, const float *head_bias, float *scratch);

#endif
