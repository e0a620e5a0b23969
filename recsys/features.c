/* features.c: item features for the multimodal models, in the dataset's
 * dense item order, whatever layout the extractor wrote:
 *
 *   a matrix FILE.npy with an ids file beside it (FILE_ids.txt, or
 *   item_ids.txt in its folder, as mrec's extractors write): joined by id;
 *   a bare matrix: row r is the item whose id is the integer r (MMRec's
 *   image_feat.npy / text_feat.npy, indexed by its dense item ids);
 *   a folder of <id>.npy, shape (d) or (1, d) (Ducho's layout).
 *
 * Items the source lacks get the mean of the present rows (MMRec's rule) and
 * are counted, so the caller can report them or drop those items instead.
 */
#include "mrec_recsys.h"

#include "../nn/mrec_io.h"
#include "../nn/mrec_npy.h"
#include "recsys_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The item names sorted, to find an id's dense index by binary search. */
typedef struct {
    const char *const *names;
    int32_t *order;
    int n;
} name_index;

static const char *const *cmp_names;
static int by_name(const void *a, const void *b) { return strcmp(cmp_names[*(const int32_t *)a], cmp_names[*(const int32_t *)b]); }

static mrec_status index_build(name_index *ix, const mrec_interactions *x) {
    ix->names = (const char *const *)x->item_names, ix->n = x->n_items;
    ix->order = malloc(sizeof *ix->order * (size_t)(x->n_items + 1));
    if (!ix->order) return mrec_fail(MREC_ERR_NOMEM, "features: an index of %d items", x->n_items);
    for (int i = 0; i < x->n_items; i++) ix->order[i] = i;
    cmp_names = ix->names;
    qsort(ix->order, (size_t)x->n_items, sizeof *ix->order, by_name);
    return MREC_OK;
}

static int index_find(const name_index *ix, const char *name) {
    int lo = 0, hi = ix->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(name, ix->names[ix->order[mid]]);
        if (!c) return ix->order[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return -1;
}

static mrec_status alloc_features(mrec_features *f, int n_items, int dim, const char *source) {
    f->n_items = n_items, f->dim = dim;
    f->x = calloc((size_t)n_items * dim, sizeof *f->x);
    f->present = calloc((size_t)n_items + 1, 1);
    if (!f->x || !f->present) return mrec_fail(MREC_ERR_NOMEM, "%s: %d x %d features", source, n_items, dim);
    return MREC_OK;
}

/* The ids file of a matrix, if there is one (*fp stays NULL when none);
 * only a regular file, so a FIFO in its place cannot hang the load. */
static mrec_status open_ids(FILE **fp, const char *npy, char *path, size_t cap) {
    struct stat sb;
    *fp = NULL;
    size_t n = strlen(npy);
    if (n > 4 && !strcmp(npy + n - 4, ".npy")) {
        snprintf(path, cap, "%.*s_ids.txt", (int)(n - 4), npy);
        if (stat(path, &sb) == 0) return mrec_open_regular(fp, path);
    }
    const char *slash = strrchr(npy, '/');
    snprintf(path, cap, "%.*sitem_ids.txt", slash ? (int)(slash - npy + 1) : 0, npy);
    if (stat(path, &sb) == 0) return mrec_open_regular(fp, path);
    return MREC_OK;
}

static mrec_status check_row(const float *v, int dim, const char *source, long row, const char *item) {
    for (int d = 0; d < dim; d++)
        if (!isfinite(v[d])) {
            if (row >= 0)
                return mrec_fail(MREC_ERR_FORMAT, "%s: row %ld (item '%s'), column %d: %s; features must be finite", source, row,
                                 item, d, isnan(v[d]) ? "NaN" : "infinite");
            return mrec_fail(MREC_ERR_FORMAT, "%s: value %d (item '%s'): %s; features must be finite", source, d, item,
                             isnan(v[d]) ? "NaN" : "infinite");
        }
    return MREC_OK;
}

static mrec_status from_matrix(mrec_features *f, const char *source, const mrec_interactions *x, const name_index *ix) {
    float *m;
    int nd;
    int64_t shape[8];
    mrec_status st = mrec_npy_read_f32(source, &m, &nd, shape);
    if (st) return st;
    if (nd != 2 || shape[0] < 1 || shape[1] < 1 || shape[1] > (1 << 24)) {
        free(m);
        return mrec_fail(MREC_ERR_SHAPE, "%s: features must be a (items, dim) matrix", source);
    }
    int rows = (int)shape[0], dim = (int)shape[1];
    if ((st = alloc_features(f, x->n_items, dim, source))) return free(m), st;
    char ids_path[4200], line[4096];
    FILE *ids;
    if ((st = open_ids(&ids, source, ids_path, sizeof ids_path))) return free(m), st;
    if (ids) { /* row r belongs to the item named on line r */
        int r = 0;
        for (; !st && fgets(line, sizeof line, ids); r++) {
            line[strcspn(line, "\r\n")] = 0;
            if (r >= rows) st = mrec_fail(MREC_ERR_SHAPE, "%s: more ids than the %d rows of %s", ids_path, rows, source);
            int i = st ? -1 : index_find(ix, line);
            if (i >= 0 && f->present[i]) st = mrec_fail(MREC_ERR_FORMAT, "%s: line %d: item '%s' again", ids_path, r + 1, line);
            else if (i >= 0 && !(st = check_row(m + (size_t)r * dim, dim, source, r, line)))
                memcpy(f->x + (size_t)i * dim, m + (size_t)r * dim, sizeof *m * (size_t)dim), f->present[i] = 1;
        }
        if (!st && r != rows) st = mrec_fail(MREC_ERR_SHAPE, "%s: %d ids for the %d rows of %s", ids_path, r, rows, source);
        fclose(ids);
    } else { /* MMRec: row r is item id r */
        for (int i = 0; !st && i < x->n_items; i++) {
            char *end;
            const char *name = x->item_names[i];
            errno = 0;
            long r = strtol(name, &end, 10);
            if (!*name || *end || errno || r < 0)
                st = mrec_fail(MREC_ERR_FORMAT, "%s: item '%s' is not a row number; give the ids beside the matrix (%s)", source,
                               name, ids_path);
            else if (r >= rows) /* the matrix numbers items otherwise: joining by row would be wrong, not partial */
                st = mrec_fail(MREC_ERR_SHAPE, "%s: item '%s' has no row (the matrix has %d rows, one per item id in MMRec's "
                               "layout); give the ids beside the matrix (%s)", source, name, rows, ids_path);
            else if (!(st = check_row(m + (size_t)r * dim, dim, source, r, name)))
                memcpy(f->x + (size_t)i * dim, m + (size_t)r * dim, sizeof *m * (size_t)dim), f->present[i] = 1;
        }
    }
    free(m);
    return st;
}

static mrec_status from_folder(mrec_features *f, const char *source, const mrec_interactions *x) {
    mrec_status st = MREC_OK;
    for (int i = 0; !st && i < x->n_items; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.npy", source, x->item_names[i]);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        float *v;
        int nd;
        int64_t shape[8];
        if ((st = mrec_npy_read_f32(path, &v, &nd, shape))) break;
        int dim = nd == 1 ? (int)shape[0] : nd == 2 && shape[0] == 1 ? (int)shape[1] : -1;
        if (dim < 1) st = mrec_fail(MREC_ERR_SHAPE, "%s: a feature file holds (d) or (1, d)", path);
        else if (!f->x) st = alloc_features(f, x->n_items, dim, source);
        else if (dim != f->dim) st = mrec_fail(MREC_ERR_SHAPE, "%s: %d values, the other items have %d", path, dim, f->dim);
        if (!st) st = check_row(v, dim, path, -1, x->item_names[i]);
        if (!st) memcpy(f->x + (size_t)i * dim, v, sizeof *v * (size_t)dim), f->present[i] = 1;
        free(v);
    }
    if (!st && !f->x) st = mrec_fail(MREC_ERR_NOT_FOUND, "%s: no <id>.npy for any of the %d items", source, x->n_items);
    return st;
}

mrec_status mrec_features_load(mrec_features *f, const char *name, const char *source, const mrec_interactions *x) {
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    struct stat sb;
    if (stat(source, &sb) != 0) return mrec_fail(MREC_ERR_IO, "%s: no such file or folder", source);
    name_index ix = {0};
    mrec_status st;
    if (S_ISDIR(sb.st_mode)) st = from_folder(f, source, x);
    else if (!(st = index_build(&ix, x))) st = from_matrix(f, source, x, &ix);
    free(ix.order);
    if (st) {
        mrec_features_free(f);
        return st;
    }
    /* the mean of the present rows fills the others */
    double *mean = calloc((size_t)f->dim, sizeof *mean);
    if (!mean) return mrec_features_free(f), mrec_fail(MREC_ERR_NOMEM, "features");
    int present = 0;
    for (int i = 0; i < f->n_items; i++)
        if (f->present[i]) {
            present++;
            for (int d = 0; d < f->dim; d++) mean[d] += f->x[(size_t)i * f->dim + d];
        }
    for (int i = 0; i < f->n_items; i++)
        if (!f->present[i])
            for (int d = 0; d < f->dim; d++) f->x[(size_t)i * f->dim + d] = present ? (float)(mean[d] / present) : 0.0f;
    f->n_missing = f->n_items - present;
    free(mean);
    if (!present) {
        mrec_features_free(f);
        return mrec_fail(MREC_ERR_NOT_FOUND, "%s: none of the %d items has features", source, x->n_items);
    }
    /* every present row was checked as it was read; a mean of finite rows can
     * still overflow float */
    for (int64_t k = 0; k < (int64_t)f->n_items * f->dim; k++)
        if (!isfinite(f->x[k])) {
            int i = (int)(k / f->dim);
            st = mrec_fail(MREC_ERR_FORMAT, "%s: item '%s' (dense row %d): the mean of the present rows is not finite", source,
                           x->item_names[i], i);
            mrec_features_free(f);
            return st;
        }
    return MREC_OK;
}

void mrec_features_free(mrec_features *f) {
    free(f->x), free(f->present);
    memset(f, 0, sizeof *f);
}

mrec_status mrec_features_knockout(mrec_features *f, int noise, mrec_rng *rng) {
    double *mean = calloc((size_t)f->dim, sizeof *mean), *sd = calloc((size_t)f->dim, sizeof *sd);
    if (!mean || !sd) return free(mean), free(sd), mrec_fail(MREC_ERR_NOMEM, "knockout");
    int n = f->n_items, D = f->dim;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) mean[d] += f->x[(size_t)i * D + d] / n;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++) sd[d] += (f->x[(size_t)i * D + d] - mean[d]) * (f->x[(size_t)i * D + d] - mean[d]) / n;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < D; d++)
            f->x[(size_t)i * D + d] = (float)(noise ? mean[d] + sqrt(sd[d]) * mrec_rng_normal(rng) : mean[d]);
    free(mean), free(sd);
    return MREC_OK;
}
