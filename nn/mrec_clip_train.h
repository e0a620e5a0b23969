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

#endif
