/* mrec_npy.h: NumPy .npy arrays, the format of Ducho and MMRec features.
 *
 * Reads format versions 1.0, 2.0 and 3.0; writes 1.0. Little-endian float16/32/64 and int32/64, C order. The
 * header is a Python dict literal and is parsed as hostile input: known keys
 * only, bounded rank and sizes, and the data length must match the shape.
 */
#ifndef MREC_NPY_H
#define MREC_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/mrec_status.h"

typedef enum { MREC_NPY_F16, MREC_NPY_F32, MREC_NPY_F64, MREC_NPY_I32, MREC_NPY_I64 } mrec_npy_dtype;

#define MREC_NPY_MAX_DIMS 8

typedef struct {
    mrec_npy_dtype dtype;
    int ndim;
    int64_t shape[MREC_NPY_MAX_DIMS];
    size_t data_offset;     /* bytes from the start of the file to the data */
    uint64_t data_bytes;    /* element count x element size */
} mrec_npy_header;

size_t mrec_npy_dtype_size(mrec_npy_dtype dtype);
/* "<f4" and so on. */
const char *mrec_npy_descr(mrec_npy_dtype dtype);

/* Parses the header at the start of buf (size bytes, the whole file or at
 * least its header). label names the file in messages. The data length is
 * not checked here; mrec_npy_read does that. */
mrec_status mrec_npy_parse_header(const void *buf, size_t size, mrec_npy_header *h,
                                  const char *label);

/* An array read into memory. data is malloc'd: free with mrec_npy_free. */
typedef struct {
    mrec_npy_header header;
    void *data;
} mrec_npy_array;

mrec_status mrec_npy_read(const char *path, mrec_npy_array *out);
/* Reads any supported dtype and converts it to float32 (int64 and float64
 * lose precision past float's 24-bit mantissa, as numpy's astype does). */
mrec_status mrec_npy_read_f32(const char *path, float **data, int *ndim, int64_t *shape);
void mrec_npy_free(mrec_npy_array *a);

/* Writes data (numel x size bytes, little-endian) atomically. */
mrec_status mrec_npy_write(const char *path, mrec_npy_dtype dtype, int ndim, const int64_t *shape,
                           const void *data);

#endif
