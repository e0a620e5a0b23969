/* items.c: which image belongs to which item: a folder of image files (the
 * id is the file name up to its first dot, Ducho's rule) or an id/path
 * table. */
#include "mrec_extract.h"
#include "mrec_image_encoder.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static mrec_status add_item(mrec_image_list *l, int *cap, const char *id, size_t id_len, const char *path) {
    if (l->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        char **a = realloc(l->ids, sizeof *a * (size_t)*cap);
        if (a) l->ids = a;
        char **b = a ? realloc(l->paths, sizeof *b * (size_t)*cap) : NULL;
        if (!b) return mrec_fail(MREC_ERR_NOMEM, "listing %d images", l->n);
        l->paths = b;
    }
    l->ids[l->n] = strndup(id, id_len);
    l->paths[l->n] = strdup(path);
    if (!l->ids[l->n] || !l->paths[l->n]) {
        free(l->ids[l->n]), free(l->paths[l->n]);
        return mrec_fail(MREC_ERR_NOMEM, "listing %d images", l->n);
    }
    l->n++;
    return MREC_OK;
}

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static mrec_status scan(mrec_image_list *l, int *cap, const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (!d) return mrec_fail(MREC_ERR_IO, "%s: cannot open (%s)", dir, strerror(errno));
    mrec_status st = MREC_OK;
    for (struct dirent *e; !st && (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode) && depth < 8) st = scan(l, cap, path, depth + 1);
        else if (S_ISREG(sb.st_mode) && has_image_ext(e->d_name)) st = add_item(l, cap, e->d_name, strcspn(e->d_name, "."), path);
    }
    closedir(d);
    return st;
}

static mrec_status read_table(mrec_image_list *l, int *cap, const char *file, const char *id_col, const char *path_col) {
    mrec_table t;
    mrec_status st = mrec_table_read(&t, file, 0);
    if (st) return st;
    int ci = 0, cp = 1;
    if (id_col) st = mrec_table_column(&t, id_col, file, &ci);
    if (!st && path_col) st = mrec_table_column(&t, path_col, file, &cp);
    if (!st && t.n_cols < 2) st = mrec_fail(MREC_ERR_FORMAT, "%s: needs an id and a path column", file);
    const char *slash = strrchr(file, '/');
    int base = slash ? (int)(slash - file) : 0;
    for (int r = 0; !st && r < t.n_rows; r++) {
        const char *id = t.cells[(size_t)r * t.n_cols + ci], *p = t.cells[(size_t)r * t.n_cols + cp];
        char path[4096];
        if (p[0] == '/' || !slash) snprintf(path, sizeof path, "%s", p);
        else snprintf(path, sizeof path, "%.*s/%s", base, file, p);
        st = add_item(l, cap, id, strlen(id), path);
    }
    mrec_table_free(&t);
    return st;
}

static int by_id(const void *a, const void *b) {
    const char *const *x = a, *const *y = b;
    int c = strcmp(x[0], y[0]);
    return c ? c : strcmp(x[1], y[1]);
}

/* A folder's items are put in id order; a table keeps its own, and its
 * duplicates are found on a sorted copy. */
mrec_status mrec_image_list_read(mrec_image_list *l, const char *source, const char *id_col, const char *path_col) {
    memset(l, 0, sizeof *l);
    struct stat sb;
    if (stat(source, &sb) != 0) return mrec_fail(MREC_ERR_IO, "%s: no such file or folder", source);
    int cap = 0, folder = S_ISDIR(sb.st_mode);
    mrec_status st = folder ? scan(l, &cap, source, 0) : read_table(l, &cap, source, id_col, path_col);
    if (!st && l->n == 0) st = mrec_fail(MREC_ERR_FORMAT, "%s: no .jpg, .jpeg or .png images", source);
    char **pairs = st ? NULL : malloc(sizeof *pairs * 2 * (size_t)l->n);
    if (!st && !pairs) st = mrec_fail(MREC_ERR_NOMEM, "sorting %d images", l->n);
    for (int i = 0; !st && i < l->n; i++) {
        const char *id = l->ids[i];
        if (!*id || strchr(id, '/') || !strcmp(id, ".."))
            st = mrec_fail(MREC_ERR_FORMAT, "id '%s' (%s) cannot be a file name", id, l->paths[i]);
        pairs[2 * i] = l->ids[i], pairs[2 * i + 1] = l->paths[i];
    }
    if (!st) qsort(pairs, (size_t)l->n, 2 * sizeof *pairs, by_id);
    for (int i = 1; !st && i < l->n; i++)
        if (!strcmp(pairs[2 * i], pairs[2 * i - 2]))
            st = mrec_fail(MREC_ERR_FORMAT, "id '%s' is given by both %s and %s", pairs[2 * i], pairs[2 * i - 1], pairs[2 * i + 1]);
    for (int i = 0; !st && folder && i < l->n; i++) l->ids[i] = pairs[2 * i], l->paths[i] = pairs[2 * i + 1];
    free(pairs);
    if (st) mrec_image_list_free(l);
    return st;
}

void mrec_image_list_free(mrec_image_list *l) {
    for (int i = 0; i < l->n; i++) free(l->ids[i]), free(l->paths[i]);
    free(l->ids), free(l->paths);
    memset(l, 0, sizeof *l);
}
