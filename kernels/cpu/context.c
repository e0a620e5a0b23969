/* context.c: the execution context (it picks the device and owns the pool,
 * the CUDA handles and the workspace). */
#include "../mrec_kernels.h"

#include <stdio.h>
#include <stdlib.h>

mrec_context_options mrec_context_defaults(void) {
    mrec_context_options o = {.device = MREC_WANT_AUTO, .n_threads = 0, .max_simd = MREC_SIMD_AVX512};
    return o;
}

const char *mrec_device_name(mrec_device device) {
    return device == MREC_DEVICE_CUDA ? "cuda" : "cpu";
}

mrec_status mrec_context_create(mrec_context **out, const mrec_context_options *opt) {
    mrec_context_options o = opt ? *opt : mrec_context_defaults();
    *out = NULL;
    mrec_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return mrec_fail(MREC_ERR_NOMEM, "context: allocating");
    mrec_status st = mrec_pool_create(&ctx->pool, o.n_threads, o.max_simd);
    if (st) {
        free(ctx);
        return st;
    }
    ctx->device = MREC_DEVICE_CPU;
    if (o.device != MREC_WANT_CPU) {
        st = mrec_cuda_create(&ctx->cuda, 0);
        if (st == MREC_OK) {
            ctx->device = MREC_DEVICE_CUDA;
        } else if (o.device == MREC_WANT_CUDA) {
            mrec_context_destroy(ctx);
            return st; /* the detail says why (no driver, no GPU, CPU-only build) */
        } else {
            snprintf(ctx->notice, sizeof ctx->notice, "no usable GPU (%s); running on the CPU",
                     mrec_error_detail());
            mrec_clear_error();
        }
    }
    *out = ctx;
    return MREC_OK;
}

mrec_status mrec_context_reserve(mrec_context *ctx, size_t bytes) {
    if (ctx->workspace.base && ctx->workspace.capacity >= bytes) {
        mrec_arena_reset(&ctx->workspace);
        return MREC_OK;
    }
    mrec_arena_release(&ctx->workspace, ctx->cuda);
    return mrec_arena_reserve(&ctx->workspace, bytes, ctx->device, ctx->cuda);
}

void mrec_context_destroy(mrec_context *ctx) {
    if (!ctx) return;
    mrec_arena_release(&ctx->workspace, ctx->cuda);
    if (ctx->cuda) mrec_cuda_destroy(ctx->cuda);
    mrec_pool_destroy(ctx->pool);
    free(ctx);
}
