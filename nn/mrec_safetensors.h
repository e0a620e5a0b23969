/* mrec_safetensors.h: Hugging Face safetensors, read (memory-mapped) and
 * written.
 *
 * Layout: 8 bytes little-endian N, N bytes of JSON header, then the data.
 * The header maps each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end]} (offsets relative to the data section), plus an optional
 * "__metadata__" object of strings.
 *
 * Every entry is validated before any offset is used: header inside the
 * file, known dtype, shape of non-negative integers, begin <= end inside
 * the data section, end - begin = dtype size x element count, names unique,
 * ranges not overlapping; the header JSON nested at most
 * MREC_JSON_MAX_DEPTH deep with only spaces after it. A failure names the file, the tensor and the
 * problem (mrec_error_detail).
 */
#ifndef MREC_SAFETENSORS_H
#define MREC_SAFETENSORS_H

#include "mrec_tensor.h"

#define MREC_ST_MAX_DIMS 8
#define MREC_ST_MAX_HEADER (100u << 20) /* the format's own limit: 100 MB */

typedef struct {
    char *name;
    mrec_dtype dtype;
    int ndim;
    int64_t shape[MREC_ST_MAX_DIMS];
    uint64_t begin, end;   /* byte range in the data section */
    const void *data;      /* into the mapping; aligned only if the writer aligned it */
} mrec_st_entry;

typedef struct {
    char *path;            /* for messages */
    void *map;             /* the whole file, read-only */
    size_t map_size;
    int mapped;            /* 1 if map came from mmap (else borrowed memory) */
    int owned;             /* 1 if map was allocated for st (a converted checkpoint), freed at close */
    const uint8_t *data;   /* the data section */
    uint64_t data_size;
    int n_tensors;
    mrec_st_entry *tensors; /* sorted by name */
    int n_meta;
    char **meta_keys, **meta_values;
} mrec_safetensors;

/* Maps and validates a file. On failure *st is left empty (safe to close). */
mrec_status mrec_safetensors_open(mrec_safetensors *st, const char *path);
/* Validates a file already in memory (borrowed, must outlive st); label
 * names it in messages. This is what the fuzzer drives. */
mrec_status mrec_safetensors_parse(mrec_safetensors *st, const void *buf, size_t size,
                                   const char *label);
void mrec_safetensors_close(mrec_safetensors *st);

/* NULL if there is no tensor of that name. */
const mrec_st_entry *mrec_safetensors_find(const mrec_safetensors *st, const char *name);
/* The value of a __metadata__ key, or NULL. */
const char *mrec_safetensors_meta(const mrec_safetensors *st, const char *key);
int64_t mrec_st_entry_numel(const mrec_st_entry *e);

/* Looks up `name` and checks it has exactly the shape (ndim, shape); a
 * missing tensor or another shape is an error naming file and tensor. */
mrec_status mrec_safetensors_expect(const mrec_safetensors *st, const char *name, int ndim,
                                    const int64_t *shape, const mrec_st_entry **out);
/* Copies tensor `name` (F32, F16 or BF16) into out as float32, checking its
 * shape as mrec_safetensors_expect does. A NaN or infinite value is an error
 * (MREC_ERR_FORMAT) naming the tensor and the element: weights are refused
 * at load rather than turned into NaN features. */
mrec_status mrec_safetensors_read_f32(const mrec_safetensors *st, const char *name, int ndim,
                                      const int64_t *shape, float *out);

/* A model's weights in one float storage, read in two passes: a measuring
 * pass (next NULL) checks every tensor's name and shape against the file and
 * counts floats, so nothing is allocated for a config that does not match;
 * then the caller allocates `floats` floats, sets next to them and takes the
 * same tensors again, which copies them (widened to F32, checked finite).
 * Each tensor starts at a multiple of MREC_WEIGHT_ALIGN floats.
 *
 * A third pass with sf NULL and next at a copy of the storage (on a GPU)
 * reads nothing and only re-points every tensor into the copy: the same
 * takes in the same order land at the same offsets. */
#define MREC_WEIGHT_ALIGN 128
typedef struct {
    const mrec_safetensors *sf; /* NULL: re-point into next, read nothing */
    const char *prefix; /* put before every name: "" or a model prefix such as "bert." */
    float *next;        /* where the next tensor goes; NULL while measuring */
    int64_t floats;     /* floats taken so far, padding included */
} mrec_weight_loader;

/* Takes tensor prefix + name, of ndim dimensions d0..d3 (the unused ones 0),
 * into the storage; *dst points at it (NULL while measuring). */
mrec_status mrec_weights_take(mrec_weight_loader *l, float **dst, const char *name, int ndim, int64_t d0, int64_t d1,
                              int64_t d2, int64_t d3);

/* ---- where the weights live ----------------------------------------------
 * A model loads into host memory. mrec_weights_place moves a loaded storage
 * to where ctx runs: on the GPU *dev becomes one device allocation holding a
 * copy (the caller re-points its tensors there with a third loader pass,
 * then frees the host storage) and *on = ctx; on the CPU *dev = NULL and
 * nothing changes. The model then runs only on contexts of that device:
 * mrec_weights_check names the mismatch otherwise. mrec_weights_free frees a
 * storage wherever it lives. A model on a GPU is freed before its context. */
mrec_status mrec_weights_place(mrec_context *ctx, const float *storage, int64_t floats, float **dev, mrec_context **on);
mrec_status mrec_weights_check(const mrec_context *ctx, const mrec_context *on, const char *model);
/* 1 when ctx reads weights from host memory as they were loaded (the CPU). */
int mrec_weights_on_host(const mrec_context *ctx);
void mrec_weights_free(mrec_context *on, float *storage);

/* ---- writing ----------------------------------------------------------- */

typedef struct {
    const char *name;
    mrec_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;      /* numel x dtype size bytes, little-endian */
} mrec_st_tensor_in;

/* Writes tensors in the order given, data 8-byte aligned, header padded
 * with spaces as the reference writer does. meta_keys / meta_values may be
 * NULL when n_meta is 0. Written through mrec_atomic_begin and renamed, so a reader
 * never sees half a file. */
mrec_status mrec_safetensors_write(const char *path, const mrec_st_tensor_in *tensors,
                                   int n_tensors, const char *const *meta_keys,
                                   const char *const *meta_values, int n_meta);

#endif
