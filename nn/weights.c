/* weights.c: where a model's weights live. Models load into host memory
 * (nn/safetensors.c); these helpers move a loaded storage to the device a
 * context runs on and check that a forward pass runs where its weights
 * are, so the model files themselves never name a device. */
#include "mrec_safetensors.h"

#include <stdlib.h>

mrec_status mrec_weights_place(mrec_context *ctx, const float *storage, int64_t floats, float **dev, mrec_context **on) {
    *dev = NULL;
    if (*on == ctx) return MREC_OK; /* already there */
    if (*on) return mrec_fail(MREC_ERR_DEVICE, "weights: already on another context's %s", mrec_device_name((*on)->device));
    mrec_status st = mrec_weights_upload(ctx, dev, storage, floats); /* NULL on the CPU: the host copy serves */
    if (!st && *dev) *on = ctx;
    return st;
}

mrec_status mrec_weights_check(const mrec_context *ctx, const mrec_context *on, const char *model) {
    if (on ? on == ctx : ctx->device == MREC_DEVICE_CPU) return MREC_OK;
    return mrec_fail(MREC_ERR_DEVICE, "%s: the weights are in %s memory and the context runs on %s (move them with mrec_%s_to_device)",
                     model, on ? mrec_device_name(on->device) : "host", mrec_device_name(ctx->device), model);
}

int mrec_weights_on_host(const mrec_context *ctx) { return ctx->device == MREC_DEVICE_CPU; }

void mrec_weights_free(mrec_context *on, float *storage) {
    if (on) mrec_weights_release(on, storage);
    else free(storage);
}
