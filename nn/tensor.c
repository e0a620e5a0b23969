/* tensor.c: dtypes, shapes, half-precision conversion, tensors carved from arenas. */
#include "mrec_tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtypes[MREC_DTYPE_COUNT] = {
    [MREC_F32] = {"F32", 4}, [MREC_F16] = {"F16", 2}, [MREC_BF16] = {"BF16", 2},
    [MREC_I32] = {"I32", 4}, [MREC_I64] = {"I64", 8}, [MREC_F64] = {"F64", 8},
    [MREC_I16] = {"I16", 2}, [MREC_I8] = {"I8", 1}, [MREC_U8] = {"U8", 1},
    [MREC_BOOL] = {"BOOL", 1}, [MREC_U16] = {"U16", 2}, [MREC_U32] = {"U32", 4},
    [MREC_U64] = {"U64", 8}, [MREC_F8_E4M3] = {"F8_E4M3", 1}, [MREC_F8_E5M2] = {"F8_E5M2", 1},
};

size_t mrec_dtype_size(mrec_dtype dtype) {
    return (unsigned)dtype < MREC_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

const char *mrec_dtype_name(mrec_dtype dtype) {
    return (unsigned)dtype < MREC_DTYPE_COUNT ? dtypes[dtype].name : "?";
}

mrec_status mrec_dtype_parse(const char *name, mrec_dtype *out) {
    for (int d = 0; d < MREC_DTYPE_COUNT; d++)
        if (strcmp(name, dtypes[d].name) == 0) {
            *out = (mrec_dtype)d;
            return MREC_OK;
        }
    return MREC_ERR_DTYPE;
}

int64_t mrec_tensor_numel(const mrec_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t mrec_tensor_bytes(const mrec_tensor *t) {
    return (size_t)mrec_tensor_numel(t) * mrec_dtype_size(t->dtype);
}

char *mrec_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t at = 0;
    at += (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (at < cap) snprintf(buf + at, cap - at, ndim == 1 ? ",)" : ")");
    return buf;
}

mrec_tensor mrec_tensor_view(void *data, mrec_dtype dtype, int ndim, const int64_t *shape) {
    mrec_tensor t = {.data = data, .dtype = dtype, .device = MREC_DEVICE_CPU, .ndim = ndim};
    for (int i = 0; i < ndim && i < MREC_MAX_DIMS; i++) t.shape[i] = shape[i];
    return t;
}

/* ---- half precision ---------------------------------------------------- */

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float mrec_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    if (exp == 0x1F) return bits_to_f32(sign | 0x7F800000u | (mant << 13)); /* inf, NaN */
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float */
        float v = (float)mant * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

float mrec_bf16_to_f32(uint16_t b) { return bits_to_f32((uint32_t)b << 16); }

uint16_t mrec_f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7FFFu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

uint16_t mrec_f32_to_f16(float f) {
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return sign | 0x7E00;          /* NaN */
    if (a >= 0x477FF000u) return sign | 0x7C00;         /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {
        /* Result is subnormal or zero: scale so the half's ulp (2^-24) is 1
         * and let the FPU round to nearest even. */
        float v = bits_to_f32(a) * 16777216.0f;         /* * 2^24, exact */
        uint32_t m = (uint32_t)__builtin_nearbyintf(v);
        return sign | (uint16_t)m;                      /* m == 0x400 is the smallest normal */
    }
    /* Normal: round the 13 dropped bits to nearest even. */
    uint32_t rounded = a + 0xFFFu + ((a >> 13) & 1);
    return sign | (uint16_t)((rounded - 0x38000000u) >> 13);
}

mrec_status mrec_convert_to_f32(float *out, const void *in, mrec_dtype dtype, int64_t n) {
    switch (dtype) {
    case MREC_F32:
        memcpy(out, in, (size_t)n * sizeof(float));
        return MREC_OK;
    case MREC_F16: {
        const uint8_t *p = in; /* may be unaligned inside a mapped file */
        for (int64_t i = 0; i < n; i++) out[i] = mrec_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return MREC_OK;
    }
    case MREC_BF16: {
        const uint8_t *p = in;
        for (int64_t i = 0; i < n; i++) out[i] = mrec_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return MREC_OK;
    }
    default:
        return mrec_fail(MREC_ERR_DTYPE, "cannot convert %s to F32", mrec_dtype_name(dtype));
    }
}

mrec_status mrec_arena_tensor(mrec_arena *a, mrec_tensor *t, mrec_dtype dtype, int ndim,
                              const int64_t *shape) {
    if (ndim < 0 || ndim > MREC_MAX_DIMS)
        return mrec_fail(MREC_ERR_SHAPE, "arena: %d dimensions (at most %d)", ndim, MREC_MAX_DIMS);
    *t = mrec_tensor_view(NULL, dtype, ndim, shape);
    t->device = a->device;
    size_t bytes = mrec_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && bytes > SIZE_MAX / (size_t)shape[i]))
            return mrec_fail(MREC_ERR_SHAPE, "arena: dimension %lld is out of range", (long long)shape[i]);
        bytes *= (size_t)shape[i];
    }
    t->data = mrec_arena_alloc(a, bytes);
    if (!t->data && a->base)
        return mrec_fail(MREC_ERR_NOMEM, "arena: %zu bytes requested with %zu of %zu used",
                         bytes, a->used, a->capacity);
    return MREC_OK;
}
