/* npy.c: .npy header parser, reader and writer.
 *
 * The header dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * is read by a small recursive-descent parser that accepts exactly what
 * numpy writes (and reasonable spacing), nothing more.
 */
#include "mrec_npy.h"
#include "mrec_io.h"
#include "mrec_tensor.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_HEADER (1u << 20)

static const struct { const char *descr; size_t size; } npy_types[] = {
    [MREC_NPY_F16] = {"<f2", 2}, [MREC_NPY_F32] = {"<f4", 4}, [MREC_NPY_F64] = {"<f8", 8},
    [MREC_NPY_I32] = {"<i4", 4}, [MREC_NPY_I64] = {"<i8", 8},
};

size_t mrec_npy_dtype_size(mrec_npy_dtype dtype) { return npy_types[dtype].size; }
const char *mrec_npy_descr(mrec_npy_dtype dtype) { return npy_types[dtype].descr; }

typedef struct {
    const char *s, *end, *label;
} cursor;

static void skip_space(cursor *c) {
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t')) c->s++;
}

static int eat(cursor *c, char ch) {
    skip_space(c);
    if (c->s < c->end && *c->s == ch) {
        c->s++;
        return 1;
    }
    return 0;
}

/* A quoted string (single or double quotes, no escapes) into buf. */
static int read_string(cursor *c, char *buf, size_t cap) {
    skip_space(c);
    if (c->s >= c->end || (*c->s != '\'' && *c->s != '"')) return 0;
    char q = *c->s++;
    size_t n = 0;
    while (c->s < c->end && *c->s != q) {
        if (n + 1 >= cap || *c->s == '\\') return 0;
        buf[n++] = *c->s++;
    }
    if (c->s >= c->end) return 0;
    c->s++;
    buf[n] = '\0';
    return 1;
}

static mrec_status bad(const cursor *c, const char *what) {
    return mrec_fail(MREC_ERR_FORMAT, "%s: .npy header: %s", c->label, what);
}

static mrec_status read_shape(cursor *c, mrec_npy_header *h) {
    if (!eat(c, '(')) return bad(c, "shape is not a tuple");
    h->ndim = 0;
    for (;;) {
        skip_space(c);
        if (eat(c, ')')) return MREC_OK;
        if (h->ndim == MREC_NPY_MAX_DIMS) return bad(c, "more than 8 dimensions");
        if (c->s >= c->end || !isdigit((unsigned char)*c->s)) return bad(c, "shape holds a non-integer");
        int64_t v = 0;
        while (c->s < c->end && isdigit((unsigned char)*c->s)) {
            if (v > (INT64_C(1) << 40)) return bad(c, "dimension too large");
            v = v * 10 + (*c->s++ - '0');
        }
        if (c->s < c->end && *c->s == 'L') c->s++; /* Python 2 longs */
        h->shape[h->ndim++] = v;
        if (!eat(c, ',')) {
            if (eat(c, ')')) return MREC_OK;
            return bad(c, "shape tuple is malformed");
        }
    }
}

mrec_status mrec_npy_parse_header(const void *buf, size_t size, mrec_npy_header *h,
                                  const char *label) {
    memset(h, 0, sizeof *h);
    const uint8_t *p = buf;
    if (size < 10 || memcmp(p, "\x93NUMPY", 6) != 0)
        return mrec_fail(MREC_ERR_FORMAT, "%s: not a .npy file (bad magic)", label);
    int major = p[6];
    size_t header_len, prefix;
    if (major == 1) {
        header_len = (size_t)p[8] | (size_t)p[9] << 8;
        prefix = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return mrec_fail(MREC_ERR_FORMAT, "%s: .npy header truncated", label);
        header_len = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
        prefix = 12;
    } else {
        return mrec_fail(MREC_ERR_FORMAT, "%s: .npy format version %d.%d is not supported", label, major, p[7]);
    }
    if (header_len > NPY_MAX_HEADER || header_len > size - prefix)
        return mrec_fail(MREC_ERR_FORMAT, "%s: .npy header length %zu runs past the end of the file",
                         label, header_len);
    cursor c = {(const char *)p + prefix, (const char *)p + prefix + header_len, label};
    int have_descr = 0, have_order = 0, have_shape = 0;
    if (!eat(&c, '{')) return bad(&c, "not a dict");
    for (;;) {
        if (eat(&c, '}')) break;
        char key[32], val[32];
        if (!read_string(&c, key, sizeof key) || !eat(&c, ':')) return bad(&c, "expected 'key':");
        /* a second value for a key would silently replace the first */
        if ((!strcmp(key, "descr") && have_descr) || (!strcmp(key, "fortran_order") && have_order) ||
            (!strcmp(key, "shape") && have_shape))
            return mrec_fail(MREC_ERR_FORMAT, "%s: .npy header: key '%s' appears twice", label, key);
        if (strcmp(key, "descr") == 0) {
            if (!read_string(&c, val, sizeof val)) return bad(&c, "descr is not a string");
            int found = 0;
            for (int t = 0; t <= MREC_NPY_I64 && !found; t++)
                if (strcmp(val, npy_types[t].descr) == 0) h->dtype = (mrec_npy_dtype)t, found = 1;
            if (!found)
                return mrec_fail(MREC_ERR_DTYPE, "%s: .npy dtype '%s' is not one of <f2 <f4 <f8 <i4 <i8",
                                 label, val);
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            skip_space(&c);
            if ((size_t)(c.end - c.s) >= 5 && memcmp(c.s, "False", 5) == 0) c.s += 5;
            else if ((size_t)(c.end - c.s) >= 4 && memcmp(c.s, "True", 4) == 0)
                return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: .npy array is in Fortran order; mrec reads C order",
                                 label);
            else return bad(&c, "fortran_order is not False or True");
            have_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            mrec_status st = read_shape(&c, h);
            if (st) return st;
            have_shape = 1;
        } else {
            return mrec_fail(MREC_ERR_FORMAT, "%s: .npy header has unknown key '%s'", label, key);
        }
        if (!eat(&c, ',')) {
            if (eat(&c, '}')) break;
            return bad(&c, "expected ',' or '}'");
        }
    }
    if (!have_descr || !have_order || !have_shape)
        return bad(&c, "needs descr, fortran_order and shape");
    uint64_t bytes = npy_types[h->dtype].size;
    for (int i = 0; i < h->ndim; i++) {
        if (h->shape[i] != 0 && bytes > UINT64_MAX / (uint64_t)h->shape[i])
            return bad(&c, "shape overflows");
        bytes *= (uint64_t)h->shape[i];
    }
    h->data_offset = prefix + header_len;
    h->data_bytes = bytes;
    return MREC_OK;
}

mrec_status mrec_npy_read(const char *path, mrec_npy_array *out) {
    memset(out, 0, sizeof *out);
    void *map;
    size_t size;
    mrec_status st = mrec_map_file(path, &map, &size);
    if (st) return st;
    st = mrec_npy_parse_header(map, size, &out->header, path);
    if (!st && out->header.data_bytes != size - out->header.data_offset)
        st = mrec_fail(MREC_ERR_FORMAT, "%s: .npy data is %zu bytes, shape and dtype need %llu", path,
                       size - out->header.data_offset, (unsigned long long)out->header.data_bytes);
    if (!st) {
        out->data = malloc(out->header.data_bytes ? (size_t)out->header.data_bytes : 1);
        if (!out->data) st = mrec_fail(MREC_ERR_NOMEM, "%s: %llu bytes of data", path,
                                       (unsigned long long)out->header.data_bytes);
        else memcpy(out->data, (const uint8_t *)map + out->header.data_offset, (size_t)out->header.data_bytes);
    }
    mrec_unmap_file(map, size);
    return st;
}

void mrec_npy_free(mrec_npy_array *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

mrec_status mrec_npy_read_f32(const char *path, float **data, int *ndim, int64_t *shape) {
    mrec_npy_array a;
    *data = NULL;
    mrec_status st = mrec_npy_read(path, &a);
    if (st) return st;
    int64_t n = 1;
    for (int i = 0; i < a.header.ndim; i++) n *= a.header.shape[i];
    float *out = malloc(n ? (size_t)n * sizeof(float) : 1);
    if (!out) {
        mrec_npy_free(&a);
        return mrec_fail(MREC_ERR_NOMEM, "%s: converting to float32", path);
    }
    for (int64_t i = 0; i < n; i++) {
        switch (a.header.dtype) {
        case MREC_NPY_F16: out[i] = mrec_f16_to_f32(((const uint16_t *)a.data)[i]); break;
        case MREC_NPY_F32: out[i] = ((const float *)a.data)[i]; break;
        case MREC_NPY_F64: out[i] = (float)((const double *)a.data)[i]; break;
        case MREC_NPY_I32: out[i] = (float)((const int32_t *)a.data)[i]; break;
        case MREC_NPY_I64: out[i] = (float)((const int64_t *)a.data)[i]; break;
        }
    }
    *ndim = a.header.ndim;
    memcpy(shape, a.header.shape, sizeof a.header.shape[0] * (size_t)a.header.ndim);
    *data = out;
    mrec_npy_free(&a);
    return MREC_OK;
}

mrec_status mrec_npy_write(const char *path, mrec_npy_dtype dtype, int ndim, const int64_t *shape,
                           const void *data) {
    if (ndim < 0 || ndim > MREC_NPY_MAX_DIMS)
        return mrec_fail(MREC_ERR_ARG, "%s: %d dimensions (at most %d)", path, ndim, MREC_NPY_MAX_DIMS);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     npy_types[dtype].descr);
    uint64_t bytes = npy_types[dtype].size;
    for (int i = 0; i < ndim; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld, ", (long long)shape[i]);
        bytes *= (uint64_t)shape[i];
    }
    if (ndim > 1) n -= 2; /* numpy writes (3, 4) but (3,) */
    else if (ndim == 1) n -= 1;
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* numpy leaves room for the first dimension to grow to 21 digits, so a
     * file can be appended to in place; do the same to write identical bytes. */
    if (ndim > 0) {
        int digits = snprintf(NULL, 0, "%lld", (long long)shape[0]);
        for (int i = digits; i < 21; i++) dict[n++] = ' ';
        dict[n] = '\0';
    }
    /* magic + version + length + dict + padding + '\n' is a multiple of 64. */
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t header_len = padded - 10;
    uint8_t prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                          (uint8_t)(header_len & 0xFF), (uint8_t)(header_len >> 8)};
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (st) return st;
    st = mrec_atomic_write(&af, prefix, sizeof prefix);
    if (!st) st = mrec_atomic_write(&af, dict, (size_t)n);
    for (size_t i = 10 + (size_t)n; i < padded - 1 && !st; i++) st = mrec_atomic_write(&af, " ", 1);
    if (!st) st = mrec_atomic_write(&af, "\n", 1);
    if (!st) st = mrec_atomic_write(&af, data, (size_t)bytes);
    if (st) {
        mrec_atomic_abort(&af);
        return st;
    }
    return mrec_atomic_commit(&af);
}
