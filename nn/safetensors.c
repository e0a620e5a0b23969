/* safetensors.c: validate-then-use reader and atomic writer for safetensors.
 *
 * Nothing in the header is trusted: each number is checked to be a
 * non-negative integer that fits, each size product for overflow, each range
 * against the data section, before a pointer into the mapping is formed.
 */
#include "mrec_safetensors.h"
#include "mrec_hf_config.h"
#include "mrec_io.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *label_of(const mrec_safetensors *st) { return st->path ? st->path : "safetensors"; }

static void free_contents(mrec_safetensors *st) {
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    st->tensors = NULL;
    st->meta_keys = st->meta_values = NULL;
    st->n_tensors = st->n_meta = 0;
}

void mrec_safetensors_close(mrec_safetensors *st) {
    free_contents(st);
    if (st->mapped) mrec_unmap_file(st->map, st->map_size);
    if (st->owned) free(st->map);
    free(st->path);
    memset(st, 0, sizeof *st);
}

/* A JSON number that is an integer in [0, 2^53]: doubles hold those exactly. */
static int as_count(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double v = item->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0 || floor(v) != v) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const mrec_st_entry *)a)->name, ((const mrec_st_entry *)b)->name);
}

static int by_begin(const void *a, const void *b) {
    const mrec_st_entry *x = *(const mrec_st_entry *const *)a, *y = *(const mrec_st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static mrec_status parse_metadata(mrec_safetensors *st, const cJSON *meta) {
    const char *file = label_of(st);
    if (!cJSON_IsObject(meta))
        return mrec_fail(MREC_ERR_FORMAT, "%s: __metadata__ is not an object", file);
    int n = cJSON_GetArraySize(meta);
    st->meta_keys = calloc((size_t)n + 1, sizeof(char *));
    st->meta_values = calloc((size_t)n + 1, sizeof(char *));
    if (!st->meta_keys || !st->meta_values) return mrec_fail(MREC_ERR_NOMEM, "%s: metadata", file);
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv))
            return mrec_fail(MREC_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", file,
                             kv->string);
        st->meta_keys[st->n_meta] = strdup(kv->string);
        st->meta_values[st->n_meta] = strdup(kv->valuestring);
        st->n_meta++;
        if (!st->meta_keys[st->n_meta - 1] || !st->meta_values[st->n_meta - 1])
            return mrec_fail(MREC_ERR_NOMEM, "%s: metadata", file);
    }
    return MREC_OK;
}

static mrec_status parse_entry(mrec_safetensors *st, const cJSON *obj, mrec_st_entry *e) {
    const char *file = label_of(st), *name = obj->string;
    if (!cJSON_IsObject(obj))
        return mrec_fail(MREC_ERR_FORMAT, "%s: tensor '%s': entry is not an object", file, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(obj, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(obj, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(obj, "data_offsets");
    if (!cJSON_IsString(dtype) || !cJSON_IsArray(shape) || !cJSON_IsArray(offsets))
        return mrec_fail(MREC_ERR_FORMAT,
                         "%s: tensor '%s': needs string \"dtype\", arrays \"shape\" and \"data_offsets\"",
                         file, name);
    if (mrec_dtype_parse(dtype->valuestring, &e->dtype) != MREC_OK)
        return mrec_fail(MREC_ERR_DTYPE, "%s: tensor '%s': dtype \"%s\" is not a safetensors dtype mrec knows (F32 F16 BF16 F64 F8_E4M3 F8_E5M2 I64 I32 I16 I8 U64 U32 U16 U8 BOOL)",
                         file, name, dtype->valuestring);
    e->ndim = cJSON_GetArraySize(shape);
    if (e->ndim > MREC_ST_MAX_DIMS)
        return mrec_fail(MREC_ERR_SHAPE, "%s: tensor '%s': %d dimensions (at most %d)", file, name,
                         e->ndim, MREC_ST_MAX_DIMS);
    uint64_t bytes = mrec_dtype_size(e->dtype);
    int d = 0;
    for (const cJSON *dim = shape->child; dim; dim = dim->next, d++) {
        uint64_t v;
        if (!as_count(dim, &v))
            return mrec_fail(MREC_ERR_SHAPE, "%s: tensor '%s': dimension %d is not a non-negative integer",
                             file, name, d);
        if (v != 0 && bytes > UINT64_MAX / v)
            return mrec_fail(MREC_ERR_SHAPE, "%s: tensor '%s': shape overflows", file, name);
        bytes *= v;
        e->shape[d] = (int64_t)v;
    }
    uint64_t begin, end;
    if (cJSON_GetArraySize(offsets) != 2 || !as_count(offsets->child, &begin) ||
        !as_count(offsets->child->next, &end))
        return mrec_fail(MREC_ERR_FORMAT, "%s: tensor '%s': data_offsets is not [begin, end]", file, name);
    if (begin > end || end > st->data_size)
        return mrec_fail(MREC_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] outside the %" PRIu64
                         "-byte data section", file, name, begin, end, st->data_size);
    if (end - begin != bytes) {
        char shp[128];
        return mrec_fail(MREC_ERR_SHAPE,
                         "%s: tensor '%s': %" PRIu64 " bytes of data, but %s %s needs %" PRIu64, file,
                         name, end - begin, dtype->valuestring,
                         mrec_shape_str(shp, sizeof shp, e->ndim, e->shape), bytes);
    }
    e->begin = begin;
    e->end = end;
    e->data = st->data + begin;
    e->name = strdup(name);
    if (!e->name) return mrec_fail(MREC_ERR_NOMEM, "%s: tensor names", file);
    return MREC_OK;
}

static mrec_status check_unique_and_disjoint(mrec_safetensors *st) {
    const char *file = label_of(st);
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, by_name);
    for (int i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return mrec_fail(MREC_ERR_FORMAT, "%s: tensor '%s' appears twice", file, st->tensors[i].name);
    if (st->n_tensors < 2) return MREC_OK;
    const mrec_st_entry **order = malloc((size_t)st->n_tensors * sizeof *order);
    if (!order) return mrec_fail(MREC_ERR_NOMEM, "%s: checking offsets", file);
    for (int i = 0; i < st->n_tensors; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)st->n_tensors, sizeof *order, by_begin);
    mrec_status status = MREC_OK;
    for (int i = 1; i < st->n_tensors && !status; i++)
        /* Empty tensors occupy nothing and may sit anywhere. */
        if (order[i]->begin < order[i - 1]->end && order[i]->begin != order[i]->end &&
            order[i - 1]->begin != order[i - 1]->end)
            status = mrec_fail(MREC_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", file,
                               order[i - 1]->name, order[i]->name);
    free(order);
    return status;
}

mrec_status mrec_safetensors_parse(mrec_safetensors *st, const void *buf, size_t size,
                                   const char *label) {
    memset(st, 0, sizeof *st);
    st->path = strdup(label ? label : "safetensors");
    if (!st->path) return mrec_fail(MREC_ERR_NOMEM, "safetensors: label");
    st->map = (void *)buf;
    st->map_size = size;
    const char *file = st->path;
    const uint8_t *p = buf;
    if (size < 8)
        return mrec_fail(MREC_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header", file, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | p[i];
    if (n > size - 8)
        return mrec_fail(MREC_ERR_FORMAT, "%s: header length %" PRIu64 " runs past the end of the %zu-byte file",
                         file, n, size);
    if (n > MREC_ST_MAX_HEADER)
        return mrec_fail(MREC_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the 100 MB limit", file, n);
    if (n < 2 || p[8] != '{')
        return mrec_fail(MREC_ERR_FORMAT, "%s: header does not start with '{'", file);
    st->data = p + 8 + n;
    st->data_size = size - 8 - n;

    /* depth-checked, and nothing but the writer's space padding after the object */
    cJSON *root = NULL;
    mrec_status parsed = mrec_json_parse((const char *)p + 8, (size_t)n, file, &root);
    if (parsed) return parsed; /* the detail names the file and the line */
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mrec_fail(MREC_ERR_FORMAT, "%s: header is not a JSON object", file);
    }
    int count = cJSON_GetArraySize(root);
    st->tensors = calloc((size_t)count + 1, sizeof *st->tensors);
    mrec_status status = st->tensors ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "%s: tensor table", file);
    int seen_meta = 0;
    for (const cJSON *item = root->child; item && !status; item = item->next) {
        if (strcmp(item->string, "__metadata__") == 0) {
            status = seen_meta++ ? mrec_fail(MREC_ERR_FORMAT, "%s: __metadata__ appears twice", file)
                                 : parse_metadata(st, item);
            continue;
        }
        status = parse_entry(st, item, &st->tensors[st->n_tensors]);
        if (!status) st->n_tensors++;
    }
    cJSON_Delete(root);
    if (!status) status = check_unique_and_disjoint(st);
    if (status) {
        free_contents(st);
        st->data = NULL;
        st->data_size = 0;
    }
    return status;
}

mrec_status mrec_safetensors_open(mrec_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    void *map;
    size_t size;
    mrec_status status = mrec_map_file(path, &map, &size);
    if (status) return status;
    status = mrec_safetensors_parse(st, map, size, path);
    st->mapped = 1;
    st->map = map;
    st->map_size = size;
    if (status) {
        /* Keep the detail the parser recorded; close does not touch it. */
        mrec_safetensors_close(st);
    }
    return status;
}

const mrec_st_entry *mrec_safetensors_find(const mrec_safetensors *st, const char *name) {
    mrec_st_entry key = {.name = (char *)name};
    return st->n_tensors ? bsearch(&key, st->tensors, (size_t)st->n_tensors, sizeof key, by_name) : NULL;
}

const char *mrec_safetensors_meta(const mrec_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

int64_t mrec_st_entry_numel(const mrec_st_entry *e) {
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

mrec_status mrec_safetensors_expect(const mrec_safetensors *st, const char *name, int ndim,
                                    const int64_t *shape, const mrec_st_entry **out) {
    const mrec_st_entry *e = mrec_safetensors_find(st, name);
    if (out) *out = e;
    if (!e) return mrec_fail(MREC_ERR_NOT_FOUND, "%s: no tensor '%s'", label_of(st), name);
    int same = e->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = e->shape[i] == shape[i];
    if (!same) {
        char want[128], got[128];
        return mrec_fail(MREC_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", label_of(st), name,
                         mrec_shape_str(got, sizeof got, e->ndim, e->shape),
                         mrec_shape_str(want, sizeof want, ndim, shape));
    }
    return MREC_OK;
}

mrec_status mrec_safetensors_read_f32(const mrec_safetensors *st, const char *name, int ndim,
                                      const int64_t *shape, float *out) {
    const mrec_st_entry *e;
    mrec_status status = mrec_safetensors_expect(st, name, ndim, shape, &e);
    if (status) return status;
    if (e->dtype != MREC_F32 && e->dtype != MREC_F16 && e->dtype != MREC_BF16)
        return mrec_fail(MREC_ERR_DTYPE, "%s: tensor '%s' is %s, expected a float type", label_of(st),
                         name, mrec_dtype_name(e->dtype));
    int64_t n = mrec_st_entry_numel(e);
    status = mrec_convert_to_f32(out, e->data, e->dtype, n);
    /* A NaN or infinity in a weight would spread through every output it
     * touches; refuse it here, naming where it is, rather than write NaN features. */
    for (int64_t i = 0; i < n && !status; i++)
        if (!isfinite(out[i]))
            status = mrec_fail(MREC_ERR_FORMAT, "%s: tensor '%s' holds %s at element %lld; weights must be finite",
                               label_of(st), name, isnan(out[i]) ? "NaN" : out[i] > 0 ? "+inf" : "-inf", (long long)i);
    return status;
}

/* ---- writer ------------------------------------------------------------- */

mrec_status mrec_safetensors_write(const char *path, const mrec_st_tensor_in *tensors,
                                   int n_tensors, const char *const *meta_keys,
                                   const char *const *meta_values, int n_meta) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return mrec_fail(MREC_ERR_NOMEM, "%s: building the header", path);
    mrec_status status = MREC_OK;
    if (n_meta > 0) {
        cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < n_meta && meta; i++)
            if (!cJSON_AddStringToObject(meta, meta_keys[i], meta_values[i])) meta = NULL;
        if (!meta) status = mrec_fail(MREC_ERR_NOMEM, "%s: building the header", path);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n_tensors && !status; i++) {
        const mrec_st_tensor_in *t = &tensors[i];
        if (t->ndim < 0 || t->ndim > MREC_ST_MAX_DIMS || mrec_dtype_size(t->dtype) == 0) {
            status = mrec_fail(MREC_ERR_ARG, "%s: tensor '%s': bad dtype or rank", path, t->name);
            break;
        }
        uint64_t bytes = mrec_dtype_size(t->dtype);
        double dims[MREC_ST_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++) {
            bytes *= (uint64_t)t->shape[d];
            dims[d] = (double)t->shape[d];
        }
        cJSON *entry = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = cJSON_CreateDoubleArray(dims, t->ndim);
        if (t->ndim == 0 && !shape) shape = cJSON_CreateArray();
        double range[2] = {(double)offset, (double)(offset + bytes)};
        cJSON *offs = cJSON_CreateDoubleArray(range, 2);
        if (!entry || !shape || !offs || !cJSON_AddStringToObject(entry, "dtype", mrec_dtype_name(t->dtype))) {
            cJSON_Delete(shape);
            cJSON_Delete(offs);
            status = mrec_fail(MREC_ERR_NOMEM, "%s: building the header", path);
            break;
        }
        cJSON_AddItemToObject(entry, "shape", shape);
        cJSON_AddItemToObject(entry, "data_offsets", offs);
        offset += bytes;
    }
    char *json = status ? NULL : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (status) return status;
    if (!json) return mrec_fail(MREC_ERR_NOMEM, "%s: printing the header", path);

    /* Pad the header with spaces so the data section starts 8-byte aligned. */
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    uint8_t prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    mrec_atomic_file af;
    status = mrec_atomic_begin(&af, path);
    if (!status) status = mrec_atomic_write(&af, prefix, 8);
    if (!status) status = mrec_atomic_write(&af, json, len);
    for (size_t i = len; i < padded && !status; i++) status = mrec_atomic_write(&af, " ", 1);
    for (int i = 0; i < n_tensors && !status; i++) {
        uint64_t bytes = mrec_dtype_size(tensors[i].dtype);
        for (int d = 0; d < tensors[i].ndim; d++) bytes *= (uint64_t)tensors[i].shape[d];
        status = mrec_atomic_write(&af, tensors[i].data, (size_t)bytes);
    }
    free(json);
    if (status) {
        if (af.f) mrec_atomic_abort(&af);
        return status;
    }
    return mrec_atomic_commit(&af);
}

mrec_status mrec_weights_take(mrec_weight_loader *l, float **dst, const char *name, int ndim, int64_t d0, int64_t d1,
                              int64_t d2, int64_t d3) {
    char full[512];
    if ((size_t)snprintf(full, sizeof full, "%s%s", l->prefix ? l->prefix : "", name) >= sizeof full)
        return mrec_fail(MREC_ERR_ARG, "%s: tensor name %s%s is too long", l->sf->path, l->prefix, name);
    int64_t shape[4] = {d0, d1, d2, d3}, n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    /* Each tensor starts on a 128-float boundary, so on a GPU every weight and
     * its bf16 twin are aligned as cuBLASLt's fast kernels want them. */
    int64_t pad = (MREC_WEIGHT_ALIGN - l->floats % MREC_WEIGHT_ALIGN) % MREC_WEIGHT_ALIGN;
    *dst = NULL;
    mrec_status st = !l->sf    ? MREC_OK /* re-pointing into a copy of the storage: the tensors were checked */
                     : l->next ? mrec_safetensors_read_f32(l->sf, full, ndim, shape, l->next + pad)
                               : mrec_safetensors_expect(l->sf, full, ndim, shape, NULL);
    if (st) return st;
    if (l->next) *dst = l->next + pad, l->next += pad + n;
    l->floats += pad + n;
    return MREC_OK;
}
