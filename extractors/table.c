/* table.c: CSV / TSV item tables with a header row. */
#include "mrec_extract.h"

#include "../nn/mrec_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TABLE (1u << 30)

static int grow(char ***v, int *cap, int need) {
    if (need <= *cap) return 1;
    int c = *cap ? *cap * 2 : 256;
    while (c < need) c *= 2;
    char **p = realloc(*v, (size_t)c * sizeof *p);
    if (!p) return 0;
    *v = p, *cap = c;
    return 1;
}

void mrec_table_free(mrec_table *t) {
    for (int i = 0; t->header && i < t->n_cols; i++) free(t->header[i]);
    for (long i = 0; t->cells && i < (long)t->n_rows * t->n_cols; i++) free(t->cells[i]);
    free(t->header), free(t->cells);
    memset(t, 0, sizeof *t);
}

mrec_status mrec_table_read(mrec_table *t, const char *path, char sep) {
    memset(t, 0, sizeof *t);
    if (!sep) {
        size_t n = strlen(path);
        sep = (n > 4 && (!strcmp(path + n - 4, ".tsv") || !strcmp(path + n - 4, ".tab"))) ? '\t' : ',';
    }
    FILE *f;
    mrec_status open_st = mrec_open_regular(&f, path); /* a FIFO would block, a folder fail midway */
    if (open_st) return open_st;
    char **fields = NULL, **cells = NULL;
    int n_fields = 0, cap_fields = 0, cap_cells = 0, n_cells = 0;
    char *field = NULL;
    size_t flen = 0, fcap = 0, total = 0;
    long line = 1, row_line = 1;
    int quoted = 0, c, at_field_start = 1;
    mrec_status st = MREC_OK;
    for (;;) {
        c = fgetc(f);
        if (++total > MAX_TABLE) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: larger than %u bytes", path, MAX_TABLE);
            break;
        }
        if (quoted) {
            if (c == EOF) {
                st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: a quoted field is never closed", path, row_line);
                break;
            }
            if (c == '"') {
                int d = fgetc(f);
                if (d == '"') c = '"';
                else {
                    quoted = 0;
                    if (d != EOF) ungetc(d, f);
                    continue;
                }
            }
            if (c == '\n') line++;
        } else if (c == '"' && at_field_start && sep == ',') {
            quoted = 1;
            at_field_start = 0;
            continue;
        } else if (c == sep || c == '\n' || c == EOF) {
            if (c == EOF && n_fields == 0 && flen == 0 && at_field_start) break; /* end after a final newline */
            if (flen && field[flen - 1] == '\r' && c != sep) flen--;
            char *copy = malloc(flen + 1);
            if (!copy || !grow(&fields, &cap_fields, n_fields + 1)) {
                free(copy);
                st = mrec_fail(MREC_ERR_NOMEM, "%s", path);
                break;
            }
            memcpy(copy, field ? field : "", flen);
            copy[flen] = '\0';
            fields[n_fields++] = copy;
            flen = 0;
            at_field_start = 1;
            if (c == sep) continue;
            /* end of a row */
            if (!t->header) {
                t->header = fields, t->n_cols = n_fields;
                fields = NULL, cap_fields = 0;
            } else if (n_fields == 1 && fields[0][0] == '\0') {
                free(fields[0]); /* a blank line */
            } else if (n_fields != t->n_cols) {
                st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: %d fields, the header has %d", path, row_line, n_fields, t->n_cols);
                break;
            } else {
                if (!grow(&cells, &cap_cells, n_cells + n_fields)) {
                    st = mrec_fail(MREC_ERR_NOMEM, "%s", path);
                    break;
                }
                memcpy(cells + n_cells, fields, (size_t)n_fields * sizeof *fields);
                n_cells += n_fields;
                t->n_rows++;
            }
            n_fields = 0;
            line++;
            row_line = line;
            if (c == EOF) break;
            continue;
        }
        at_field_start = 0;
        if (flen + 2 > fcap) {
            fcap = fcap ? fcap * 2 : 256;
            char *p = realloc(field, fcap);
            if (!p) {
                st = mrec_fail(MREC_ERR_NOMEM, "%s", path);
                break;
            }
            field = p;
        }
        field[flen++] = (char)c;
    }
    fclose(f);
    free(field);
    for (int i = 0; st && i < n_fields; i++) free(fields[i]);
    free(fields);
    t->cells = cells;
    if (!st && !t->header) st = mrec_fail(MREC_ERR_FORMAT, "%s: empty file (a header row is needed)", path);
    if (st) mrec_table_free(t);
    return st;
}

mrec_status mrec_table_column(const mrec_table *t, const char *name, const char *path, int *col) {
    for (int i = 0; i < t->n_cols; i++)
        if (!strcmp(t->header[i], name)) {
            *col = i;
            return MREC_OK;
        }
    return mrec_fail(MREC_ERR_NOT_FOUND, "%s: no column '%s' in the header", path, name);
}
