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
 * rows from L3 otherwise misses the TLB at every 4 KB page. They come from
 * mmap, not the heap: advice given to heap memory outlives the buffer, and
 * the small buffers malloc later places there would fault in 2 MB pages,
 * each one zeroed, every time the heap grows back. */
enum { HUGE_PAGE = 2u << 20, LARGE = 2 * HUGE_PAGE };

void *mrec_alloc_large(size_t bytes) {
    if (bytes < LARGE) return aligned_alloc(64, (bytes + 63) / 64 * 64);
    size_t padded = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    /* a huge page's worth more, to start on a 2 MB boundary; the rest is given back */
    char *map = mmap(NULL, padded + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return NULL;
    char *p = (char *)(((uintptr_t)map + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p > map) munmap(map, (size_t)(p - map));
    if (map + HUGE_PAGE > p) munmap(p + padded, (size_t)(map + HUGE_PAGE - p));
#ifdef MADV_HUGEPAGE
    madvise(p, padded, MADV_HUGEPAGE); /* advice only: no huge pages, no harm */
#endif
    return p;
}

void mrec_free_large(void *p, size_t bytes) {
    if (!p) return;
    if (bytes < LARGE) free(p);
    else munmap(p, (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE);
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

static long long cpu_frees; /* mrec_arena_cpu_frees */

long long mrec_arena_cpu_frees(void) { return __atomic_load_n(&cpu_frees, __ATOMIC_RELAXED); }

void mrec_arena_release(mrec_arena *a, void *cuda) {
    if (a->owned) {
        if (a->device == MREC_DEVICE_CUDA) mrec_cuda_free(cuda, a->base);
        else mrec_free_large(a->base, a->capacity), __atomic_add_fetch(&cpu_frees, 1, __ATOMIC_RELAXED);
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

