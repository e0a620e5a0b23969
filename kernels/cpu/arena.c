/* arena.c: workspaces carved, not allocated. A model measures its
 * activations with a measuring arena, reserves that once (host or device
 * memory), then carves them per forward pass: no malloc while it runs. */
#include "../mrec_kernels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Large host buffers (activations, packed weights, item features) on 2 MB
 * pages where the kernel offers them on request (transparent huge pages in
 * "madvise" mode): a GEMM streaming a packed weight or gathered feature
 * rows from L3 otherwise misses the TLB at every 4 KB page. */
void *mrec_alloc_large(size_t bytes) {
    enum { HUGE = 2u << 20 };
    if (bytes < 2 * (size_t)HUGE) return aligned_alloc(64, (bytes + 63) / 64 * 64);
    size_t padded = (bytes + HUGE - 1) / HUGE * HUGE;
    void *p = aligned_alloc(HUGE, padded);
#ifdef MADV_HUGEPAGE
    if (p) madvise(p, padded, MADV_HUGEPAGE); /* advice only: no huge pages, no harm */
#endif
    return p;
}

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
        p = mrec_alloc_large(bytes);
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

