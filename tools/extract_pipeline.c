/* extract_pipeline.c: what the extraction runs share: the spec defaults, the
 * result in memory, and the matrix a Ducho leaf gets beside it (--matrix),
 * written from the features a run returned. The runs themselves sit beside
 * their commands (cmd_extract.c, cmd_extract_image.c, cmd_clip.c).
 */
#include "mrec_extract_pipeline.h"

#include "../nn/mrec_io.h"
#include "../nn/mrec_npy.h"
#include "mrec_tools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

mrec_extract_common mrec_extract_defaults(void) {
    mrec_context_options o = mrec_context_defaults();
    return (mrec_extract_common){.batch_size = 32, .device = o.device, .precision = o.precision};
}

void mrec_extract_result_free(mrec_extract_result *r) {
    if (!r) return;
    for (int i = 0; r->ids && i < r->n_rows; i++) free(r->ids[i]);
    free(r->ids), free(r->features), free(r->text_features), free(r->fused_features);
    r->ids = NULL, r->features = r->text_features = r->fused_features = NULL, r->n_rows = 0;
}

mrec_status mrec_extract_result_keep(mrec_extract_result *r, const char *const *ids, const float *rows, int n, int dim) {
    r->ids = calloc((size_t)n + 1, sizeof *r->ids);
    r->features = malloc(sizeof(float) * ((size_t)n * (size_t)dim + 1));
    if (!r->ids || !r->features) return mrec_fail(MREC_ERR_NOMEM, "%d x %d features", n, dim);
    r->n_rows = n;
    for (int i = 0; i < n; i++)
        if (!(r->ids[i] = strdup(ids[i]))) return mrec_fail(MREC_ERR_NOMEM, "%d ids", n);
    if (n) memcpy(r->features, rows, sizeof(float) * (size_t)n * (size_t)dim);
    return MREC_OK;
}

mrec_status mrec_extract_row_read(const char *path, float *row, int dim) {
    float *v = NULL;
    int nd = 0;
    int64_t s[8];
    mrec_status st = mrec_npy_read_f32(path, &v, &nd, s);
    if (!st && (nd != 2 || s[0] != 1 || s[1] != dim)) st = mrec_fail(MREC_ERR_SHAPE, "%s: not (1, %d)", path, dim);
    if (!st) memcpy(row, v, sizeof(float) * (size_t)dim);
    free(v);
    return st;
}

/* The order of the leaf's file names, "<id>.npy", which is not always the ids' ("a-b.npy" < "a.npy"). */
static const char *const *order_ids;
static int file_name_char(const char *id, size_t len, size_t i) { return (unsigned char)(i < len ? id[i] : i - len < 4 ? ".npy"[i - len] : 0); }
static int by_file_name(const void *a, const void *b) {
    const char *x = order_ids[*(const int *)a], *y = order_ids[*(const int *)b];
    size_t lx = strlen(x), ly = strlen(y);
    for (size_t i = 0;; i++) {
        int cx = file_name_char(x, lx, i), cy = file_name_char(y, ly, i);
        if (cx != cy || !cx) return cx - cy;
    }
}

/* The two files cannot be renamed into place as one, so the order keeps a reader from pairing a matrix with ids
 * that are not its own: the old matrix goes first, then the new ids appear, then the new matrix. A reader that
 * finds LEAF.npy finds its ids beside it. */
mrec_status mrec_extract_matrix_write(const char *leaf, const char *const *ids, const float *rows, int n, int dim) {
    if (!n) return mrec_fail(MREC_ERR_FORMAT, "%s: no .npy files", leaf);
    int *order = malloc(sizeof *order * (size_t)n);
    float *all = malloc(sizeof(float) * (size_t)n * (size_t)dim);
    mrec_status st = order && all ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "%d x %d", n, dim);
    for (int i = 0; !st && i < n; i++) order[i] = i;
    order_ids = ids;
    if (!st) qsort(order, (size_t)n, sizeof *order, by_file_name);
    for (int i = 0; !st && i < n; i++) memcpy(all + (size_t)i * dim, rows + (size_t)order[i] * dim, sizeof(float) * (size_t)dim);
    char npy[4200], ids_path[4200];
    snprintf(npy, sizeof npy, "%s.npy", leaf);
    snprintf(ids_path, sizeof ids_path, "%s_ids.txt", leaf);
    if (!st && unlink(npy) != 0 && errno != ENOENT) st = mrec_fail(MREC_ERR_IO, "%s: cannot remove the old matrix (%s)", npy, strerror(errno));
    if (!st) {
        mrec_atomic_file af;
        if (!(st = mrec_atomic_begin(&af, ids_path))) {
            for (int i = 0; i < n; i++) fprintf(af.f, "%s\n", ids[order[i]]);
            st = mrec_atomic_commit(&af);
        }
    }
    if (!st) st = mrec_npy_write(npy, MREC_NPY_F32, 2, (int64_t[]){n, dim}, all);
    free(order), free(all);
    return st;
}
