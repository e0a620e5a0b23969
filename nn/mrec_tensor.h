/* mrec_tensor.h: tensors, and carving them from a workspace.
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

/* The first five are what models compute with; the rest are the other
 * element types of safetensors, for files that are only read, listed or
 * converted (mrec convert, mrec inspect). */
typedef enum {
    MREC_F32, MREC_F16, MREC_BF16, MREC_I32, MREC_I64,
    MREC_F64, MREC_I16, MREC_I8, MREC_U8, MREC_BOOL, MREC_U16, MREC_U32, MREC_U64, MREC_F8_E4M3, MREC_F8_E5M2,
    MREC_DTYPE_COUNT
} mrec_dtype;

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
/* MREC_ERR_DTYPE if the name is not one of those above (safetensors' names). */
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

/* ---- tensors in arenas --------------------------------------------------
 * Arenas, the device and the execution context live with the op set
 * (kernels/mrec_kernels.h). */

/* Carves a tensor of the given shape. MREC_ERR_NOMEM names the shortfall. */
mrec_status mrec_arena_tensor(mrec_arena *a, mrec_tensor *t, mrec_dtype dtype, int ndim,
                              const int64_t *shape);

#endif
