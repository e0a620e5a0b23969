/* idspace.c: guards against joining tables of one id space to interactions
 * of another. A feature matrix without ids is joined by row number and an id
 * map by its id column; both are right only when they were written for the
 * very ids of the interactions. These checks catch a different count and ids
 * without a row or mapping. They cannot catch two numberings of the same size
 * (Baby's MMRec and DiffMM ids: data/PROVENANCE.md); only provenance can.
 */
#include "mrec_recsys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The integer an id names, or -1 when it is not a plain non-negative integer. */
static long long id_number(const char *name) {
    if (!*name || *name == '-' || *name == '+' || *name == ' ') return -1;
    char *end;
    errno = 0;
    long long v = strtoll(name, &end, 10);
    return *end || errno ? -1 : v;
}

mrec_status mrec_idspace_check_rows(const char *source, int64_t n_rows, const mrec_interactions *x, int items) {
    const char *kind = items ? "item" : "user";
    int n = items ? x->n_items : x->n_users;
    char *const *names = items ? x->item_names : x->user_names;
    if (n_rows != n)
        return mrec_fail(MREC_ERR_SHAPE,
                         "%s: %lld rows for the %d %ss of the interactions; a table without ids is joined by row "
                         "number, which is right only when it was written for these very ids (give the ids beside it)",
                         source, (long long)n_rows, n, kind);
    for (int i = 0; i < n; i++) {
        long long r = id_number(names[i]);
        if (r < 0 || r >= n_rows)
            return mrec_fail(MREC_ERR_FORMAT, "%s: %s '%s' is not a row number of this %lld-row table; its rows cannot "
                             "be joined by row number (give the ids beside it)", source, kind, names[i], (long long)n_rows);
    }
    return MREC_OK;
}

typedef struct {
    char *id;
    int64_t line;
} map_entry;

static int by_id(const void *a, const void *b) { return strcmp(((const map_entry *)a)->id, ((const map_entry *)b)->id); }

static void free_entries(map_entry *e, int64_t n) {
    for (int64_t i = 0; i < n; i++) free(e[i].id);
    free(e);
}

/* Reads column key_column of each tab-separated line (after a header when has_header). */
static mrec_status read_map(const char *path, int has_header, int key_column, map_entry **out, int64_t *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) return mrec_fail(MREC_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    map_entry *e = NULL;
    int64_t n = 0, cap = 0, line_no = 0;
    char line[4096];
    mrec_status st = MREC_OK;
    while (!st && fgets(line, sizeof line, f)) {
        line_no++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %lld is longer than %d bytes", path, (long long)line_no, (int)sizeof line - 2);
            break;
        }
        line[strcspn(line, "\r\n")] = 0;
        if (line_no == 1 && has_header) continue;
        char *field = line;
        for (int c = 0; c < key_column && field; c++) field = strchr(field, '\t') ? strchr(field, '\t') + 1 : NULL;
        if (!field) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %lld has no column %d (tab-separated: original id, then the id)", path,
                           (long long)line_no, key_column + 1);
            break;
        }
        field[strcspn(field, "\t")] = 0;
        if (!*field) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %lld: empty id in column %d", path, (long long)line_no, key_column + 1);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            map_entry *grown = realloc(e, sizeof *e * (size_t)cap);
            if (!grown) {
                st = mrec_fail(MREC_ERR_NOMEM, "%s: %lld ids", path, (long long)cap);
                break;
            }
            e = grown;
        }
        if (!(e[n].id = strdup(field))) st = mrec_fail(MREC_ERR_NOMEM, "%s: line %lld", path, (long long)line_no);
        else e[n++].line = line_no;
    }
    if (!st && ferror(f)) st = mrec_fail(MREC_ERR_IO, "%s: read failed", path);
    fclose(f);
    if (st) {
        free_entries(e, n);
        return st;
    }
    *out = e, *n_out = n;
    return MREC_OK;
}

mrec_status mrec_idmap_check(const char *path, int has_header, int key_column, const mrec_interactions *x, int items) {
    const char *kind = items ? "item" : "user";
    int n_ids = items ? x->n_items : x->n_users;
    char *const *names = items ? x->item_names : x->user_names;
    if (key_column < 0 || key_column > 64) return mrec_fail(MREC_ERR_ARG, "%s: id column %d", path, key_column + 1);
    map_entry *e = NULL;
    int64_t n = 0;
    mrec_status st = read_map(path, has_header, key_column, &e, &n);
    if (st) return st;
    qsort(e, (size_t)n, sizeof *e, by_id);
    for (int64_t i = 1; i < n && !st; i++)
        if (!strcmp(e[i - 1].id, e[i].id))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: %s '%s' is mapped twice (lines %lld and %lld)", path, kind, e[i].id,
                           (long long)(e[i - 1].line < e[i].line ? e[i - 1].line : e[i].line),
                           (long long)(e[i - 1].line < e[i].line ? e[i].line : e[i - 1].line));
    if (!st && n != n_ids)
        st = mrec_fail(MREC_ERR_SHAPE, "%s: %lld %s ids for the %d %ss of the interactions; a map of another id space "
                       "would join the wrong rows", path, (long long)n, kind, n_ids, kind);
    for (int i = 0; i < n_ids && !st; i++) {
        map_entry key = {names[i], 0};
        if (!bsearch(&key, e, (size_t)n, sizeof *e, by_id))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: %s '%s' of the interactions has no mapping", path, kind, names[i]);
    }
    free_entries(e, n);
    return st;
}
