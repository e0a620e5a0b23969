/* arena.c: workspaces carved, not allocated. A model measures its
 * activations with a measuring arena, reserves that once (host or device
 * memory), then carves them per forward pass: no malloc while it runs. */
#include "../mrec_kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

mrec_arena mrec_arena_measure(void) {
    mrec_arena a = {0};
    return a;
}

mrec_status mrec_arena_reserve(mrec_arena *a, size_t bytes, mrec_device device, void *cuda) {
    memset(a, 0, sizeof *a);
    a->device = device;
    if (bytes == 0) bytes = MREC_ARENA_ALIGN;
    bytes = (bytes + MREC_ARENA_ALIGN - 1) / MREC_ARENA_ALIGN * MREC_ARENA_ALIGN;
    void *p = NULL;
    if (device == MREC_DEVICE_CUDA) {
        mrec_status st = mrec_cuda_malloc(cuda, &p, bytes);
        if (st) return st;
    } else {
        p = aligned_alloc(MREC_ARENA_ALIGN, bytes);
        if (!p) return mrec_fail(MREC_ERR_NOMEM, "arena: cannot reserve %zu bytes", bytes);
    }
    a->base = p;
    a->capacity = bytes;
    a->owned = 1;
    return MREC_OK;
}

void mrec_arena_release(mrec_arena *a, void *cuda) {
    if (a->owned) {
        if (a->device == MREC_DEVICE_CUDA) mrec_cuda_free(cuda, a->base);
        else free(a->base);
    }
    memset(a, 0, sizeof *a);
}

void mrec_arena_reset(mrec_arena *a) { a->used = 0; }

void *mrec_arena_alloc(mrec_arena *a, size_t bytes) {
    size_t start = (a->used + MREC_ARENA_ALIGN - 1) / MREC_ARENA_ALIGN * MREC_ARENA_ALIGN;
    if (bytes > SIZE_MAX - start) return NULL;
    size_t end = start + bytes;
    if (!a->base) {
        a->used = end;
        if (end > a->peak) a->peak = end;
        return NULL;
    }
    if (end > a->capacity) return NULL;
    a->used = end;
    if (end > a->peak) a->peak = end;
    return a->base + start;
}

