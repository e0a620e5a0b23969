/* mrec_clip_train.h: the gradients of CLIP's contrastive loss with respect to
 * every weight of both towers and the logit scale, as PyTorch's autograd
 * gives them for transformers' CLIPModel(..., return_loss=True) (dropout off).
 * The forward is recomputed here keeping each layer's activations; the
 * backward runs through the op entries (kernels/mrec_kernels.h, "backward"),
 * so it runs where the context does. No optimizer step: the caller applies
 * mrec_clip_grad_norm / mrec_adamw_step to the gradients.
 */
#ifndef MREC_CLIP_TRAIN_H
#define MREC_CLIP_TRAIN_H

#include "mrec_clip.h"

/* The workspace (on the context's device) one step needs for B pairs of T tokens. */
size_t mrec_clip_train_workspace_bytes(const mrec_context *ctx, const mrec_clip *m, int B, int T);

/* For B image-text pairs (pair i matches image i with text i): images
 * (B, channels, image_size, image_size) and ids, mask (B, T) (host; mask may
 * be NULL). Gradients ACCUMULATE (+=), so the caller zeroes them once per
 * optimizer step and may add several batches: vision_grad (m->vision.floats)
 * and text_grad (m->text.floats), in the towers' storage layout (the gradient
 * of the weight at storage + i is at grad + i), on the context's device;
 * *dlogit_scale (host) likewise. *loss (host) = the batch's loss. work:
 * mrec_clip_train_workspace_bytes(ctx, m, B, T) bytes on the context's device. */
mrec_status mrec_clip_train_grads(mrec_context *ctx, const mrec_clip *m, const float *images, const int32_t *ids,
                                  const int32_t *mask, int B, int T, float *vision_grad, float *text_grad, double *dlogit_scale,
                                  double *loss, void *work, size_t work_bytes);

/* ---- one tower, from a given block (end-to-end recommenders) ----
 *
 * A recommender that trains only the top of a tower computes, once per
 * item, the hidden state entering block `first` (mrec_clip_tower_hidden),
 * then at each step runs blocks [first, layers), the final LayerNorm, the
 * projection and the normalization from that state (top_forward), and takes
 * the gradient of any loss of the unit embeddings back into those weights
 * (top_backward). tower: MREC_CLIP_VISION or MREC_CLIP_TEXT. T: the text
 * tower's tokens (ignored for images: 1 + patches). mrec_clip_train_grads
 * runs the same layers, so a top from block 0 equals the whole tower.
 */

/* HF's text pooling position: the first eos_token_id, or the largest id with the legacy eos 2. */
int mrec_clip_pool_position(const int32_t *ids, int T, int eos_token_id);

size_t mrec_clip_tower_hidden_workspace_bytes(const mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, int B, int T,
                                              int first);
size_t mrec_clip_tower_top_workspace_bytes(const mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, int B, int T,
                                           int first);

/* images (B, C, S, S) or ids, mask (B, T) (host; mask may be NULL) -> hidden (B, tokens, hidden), the
 * input of block `first` (first = 0: the embeddings, after pre_layrnorm for images), on the context's device. */
mrec_status mrec_clip_tower_hidden(mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, const float *images,
                                   const int32_t *ids, const int32_t *mask, int B, int T, int first, float *hidden, void *work,
                                   size_t work_bytes);

/* hidden (B, tokens, hidden) on the device, the input of block `first`; pool (B) host: the pooled token of
 * each text (mrec_clip_pool_position; NULL for images); mask (B, T) host for texts (NULL: all real) ->
 * embeds (B, projection_dim) unit rows on the device (NULL: only kept in work). work keeps the activations
 * the backward reads: top_workspace_bytes of device memory. */
mrec_status mrec_clip_tower_top_forward(mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, const float *hidden,
                                        const int32_t *pool, const int32_t *mask, int B, int T, int first, float *embeds,
                                        void *work, size_t work_bytes);

/* After top_forward on the same work, B, T, first: d_embeds (B, projection_dim) on the device, the loss's
 * gradient of the unit rows -> grad (the tower's storage layout, as mrec_clip_train_grads') ACCUMULATES the
 * gradients of blocks [first, layers), the final LayerNorm and the projection; nothing else is written. */
mrec_status mrec_clip_tower_top_backward(mrec_context *ctx, const mrec_clip *m, mrec_clip_towers tower, const float *d_embeds, int B,
                                         int T, int first, float *grad, void *work, size_t work_bytes);

#endif
