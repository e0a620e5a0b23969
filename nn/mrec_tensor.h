/* mrec_tensor.h: tensors, workspaces and the execution context.
 *
 * A tensor is a view: a data pointer plus dtype, device and a contiguous
 * row-major shape of up to four dimensions. It never owns memory; memory is
 * owned by whoever carved it (a weight file, an arena, the caller).
 *
 * Size first, allocate once: a model describes its activations by carving
 * them from an arena. Run the same carving on a measuring arena to learn the
 * size, reserve that once, then carve for real; a forward pass then does no
 * malloc.
 */
#ifndef MREC_TENSOR_H
#define MREC_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/mrec_kernels.h"

typedef enum { MREC_F32, MREC_F16, MREC_BF16, MREC_I32, MREC_I64, MREC_DTYPE_COUNT } mrec_dtype;
typedef enum { MREC_DEVICE_CPU, MREC_DEVICE_CUDA } mrec_device;

#define MREC_MAX_DIMS 4

typedef struct {
    void *data;
    mrec_dtype dtype;
    mrec_device device;
    int ndim;
    int64_t shape[MREC_MAX_DIMS];
} mrec_tensor;

size_t mrec_dtype_size(mrec_dtype dtype);
/* Names as safetensors writes them: "F32", "F16", "BF16", "I32", "I64". */
const char *mrec_dtype_name(mrec_dtype dtype);
/* MREC_ERR_DTYPE if the name is not one of those five. */
mrec_status mrec_dtype_parse(const char *name, mrec_dtype *out);

int64_t mrec_tensor_numel(const mrec_tensor *t);
size_t mrec_tensor_bytes(const mrec_tensor *t);
/* "(2, 3, 4)" into buf; returns buf. */
char *mrec_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);
/* A CPU view of data with the given shape. */
mrec_tensor mrec_tensor_view(void *data, mrec_dtype dtype, int ndim, const int64_t *shape);

/* IEEE half and bfloat16 to float (exact), and float to them (round to
 * nearest even, as PyTorch's .half() and .bfloat16() do). */
float mrec_f16_to_f32(uint16_t h);
float mrec_bf16_to_f32(uint16_t b);
uint16_t mrec_f32_to_f16(float f);
uint16_t mrec_f32_to_bf16(float f);
/* out (n) = in (n) of dtype F32 / F16 / BF16, widened to float. */
mrec_status mrec_convert_to_f32(float *out, const void *in, mrec_dtype dtype, int64_t n);

/* ---- arena ------------------------------------------------------------- */

typedef struct {
    uint8_t *base;       /* NULL while measuring */
    size_t capacity;
    size_t used;         /* bytes handed out since the last reset */
    size_t peak;         /* the most ever used: what to reserve */
    mrec_device device;
    int owned;           /* base was allocated by mrec_arena_reserve */
} mrec_arena;

#define MREC_ARENA_ALIGN 64

/* A measuring arena: allocations return NULL but are counted in peak. */
mrec_arena mrec_arena_measure(void);
/* Allocates `bytes` once (on the device the context runs on). */
mrec_status mrec_arena_reserve(mrec_arena *a, size_t bytes, mrec_device device, void *cuda);
void mrec_arena_release(mrec_arena *a, void *cuda);
void mrec_arena_reset(mrec_arena *a);
/* Carves a 64-byte aligned block; NULL (and no change) if it would not fit,
 * except while measuring, where it always returns NULL and counts. */
void *mrec_arena_alloc(mrec_arena *a, size_t bytes);
/* Carves a tensor of the given shape. MREC_ERR_NOMEM names the shortfall. */
mrec_status mrec_arena_tensor(mrec_arena *a, mrec_tensor *t, mrec_dtype dtype, int ndim,
                              const int64_t *shape);

/* ---- context ----------------------------------------------------------- */

typedef enum { MREC_WANT_AUTO, MREC_WANT_CPU, MREC_WANT_CUDA } mrec_device_request;

typedef struct {
    mrec_device_request device;
    int n_threads;       /* <= 0: one per core */
    mrec_simd max_simd;  /* the highest SIMD level to use (tests pin lower ones) */
} mrec_context_options;

/* Everything a forward pass needs besides weights and inputs: where it runs,
 * the CPU pool, the CUDA handles. No op reaches for hidden global state. */
typedef struct {
    mrec_device device;
    mrec_pool *pool;       /* always present: the CPU does I/O and small ops */
    mrec_cuda *cuda;       /* NULL unless device is MREC_DEVICE_CUDA */
    mrec_arena workspace;  /* activations, on ctx->device; sized by mrec_context_reserve */
    char notice[160];      /* e.g. why "auto" fell back to the CPU, for the tool to print */
} mrec_context;

mrec_context_options mrec_context_defaults(void);
/* MREC_WANT_CUDA fails with MREC_ERR_DEVICE if no GPU can be used;
 * MREC_WANT_AUTO falls back to the CPU and says so in ctx->notice. */
mrec_status mrec_context_create(mrec_context **out, const mrec_context_options *opt);
void mrec_context_destroy(mrec_context *ctx);
/* Makes the workspace at least `bytes` large (on the context's device),
 * releasing the old one; contents are not kept. Call it once, with the
 * size a measuring arena reported for the largest batch. */
mrec_status mrec_context_reserve(mrec_context *ctx, size_t bytes);
const char *mrec_device_name(mrec_device device);

#endif
