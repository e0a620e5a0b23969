/* data.c: reading interaction files into dense ids.
 *
 * Every line is checked: a wrong column count, a non-numeric rating or
 * split label is an error naming the file and the line, and nothing is
 * half-loaded. Ids are strings; see mrec_recsys.h for how they are numbered.
 */
#include "mrec_recsys.h"
#include "../nn/mrec_io.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FIELDS 64

/* ---- string -> dense id (open addressing) ---- */

typedef struct {
    char **names;   /* by id */
    int n, cap_names;
    int32_t *slots; /* id + 1, 0 = empty */
    size_t n_slots;
} id_map;

static uint64_t hash_str(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static int id_map_grow(id_map *m) {
    size_t n_slots = m->n_slots ? m->n_slots * 2 : 1024;
    int32_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return 0;
    for (int id = 0; id < m->n; id++) {
        size_t at = hash_str(m->names[id], strlen(m->names[id])) & (n_slots - 1);
        while (slots[at]) at = (at + 1) & (n_slots - 1);
        slots[at] = id + 1;
    }
    free(m->slots);
    m->slots = slots, m->n_slots = n_slots;
    return 1;
}

/* The id of name (len bytes), adding it if new; -1 on out of memory. */
static int32_t id_map_get(id_map *m, const char *name, size_t len) {
    if ((size_t)(m->n + 1) * 2 > m->n_slots && !id_map_grow(m)) return -1;
    size_t at = hash_str(name, len) & (m->n_slots - 1);
    while (m->slots[at]) {
        const char *s = m->names[m->slots[at] - 1];
        if (strncmp(s, name, len) == 0 && s[len] == '\0') return m->slots[at] - 1;
        at = (at + 1) & (m->n_slots - 1);
    }
    if (m->n == m->cap_names) {
        int cap = m->cap_names ? m->cap_names * 2 : 1024;
        char **names = realloc(m->names, (size_t)cap * sizeof *names);
        if (!names) return -1;
        m->names = names, m->cap_names = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, name, len);
    copy[len] = '\0';
    m->names[m->n] = copy;
    m->slots[at] = m->n + 1;
    return m->n++;
}

/* ---- the growing result ---- */

typedef struct {
    mrec_interactions x;
    int64_t cap;
    id_map users, items;
} builder;

static mrec_status push(builder *b, const char *user, size_t ul, const char *item, size_t il, float rating,
                        int64_t ts, int split, const char *path, long line) {
    if (b->x.n == b->cap) {
        int64_t cap = b->cap ? b->cap * 2 : 1 << 16;
        int32_t *u = realloc(b->x.user, (size_t)cap * sizeof *u);
        if (u) b->x.user = u;
        int32_t *i = realloc(b->x.item, (size_t)cap * sizeof *i);
        if (i) b->x.item = i;
        float *r = realloc(b->x.rating, (size_t)cap * sizeof *r);
        if (r) b->x.rating = r;
        int64_t *t = realloc(b->x.timestamp, (size_t)cap * sizeof *t);
        if (t) b->x.timestamp = t;
        int8_t *s = realloc(b->x.split, (size_t)cap * sizeof *s);
        if (s) b->x.split = s;
        if (!u || !i || !r || !t || !s) return mrec_fail(MREC_ERR_NOMEM, "%s: line %ld: out of memory", path, line);
        b->cap = cap;
    }
    int32_t uid = id_map_get(&b->users, user, ul), iid = id_map_get(&b->items, item, il);
    if (uid < 0 || iid < 0) return mrec_fail(MREC_ERR_NOMEM, "%s: line %ld: out of memory", path, line);
    int64_t k = b->x.n++;
    b->x.user[k] = uid, b->x.item[k] = iid, b->x.rating[k] = rating, b->x.timestamp[k] = ts, b->x.split[k] = (int8_t)split;
    return MREC_OK;
}

/* A canonical non-negative integer ("0", "17"; not "007" or "-3"), into *v. */
static int as_index(const char *s, long long *v) {
    if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && s[1]) || strlen(s) > 15) return 0;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p)) return 0;
    *v = atoll(s);
    return 1;
}

static long long *sort_keys;
static int by_key(const void *a, const void *b) {
    long long x = sort_keys[*(const int32_t *)a], y = sort_keys[*(const int32_t *)b];
    return x < y ? -1 : x > y;
}

/* Renumbers ids by numeric value when all names are integers. */
static mrec_status numeric_order(id_map *m, int32_t *ids, int64_t n) {
    long long *keys = malloc((size_t)(m->n ? m->n : 1) * sizeof *keys);
    int32_t *order = malloc((size_t)(m->n ? m->n : 1) * sizeof *order), *rank = malloc((size_t)(m->n ? m->n : 1) * sizeof *rank);
    char **names = malloc((size_t)(m->n ? m->n : 1) * sizeof *names);
    if (!keys || !order || !rank || !names) {
        free(keys), free(order), free(rank), free(names);
        return mrec_fail(MREC_ERR_NOMEM, "renumbering ids");
    }
    int numeric = 1;
    for (int i = 0; i < m->n && numeric; i++) numeric = as_index(m->names[i], &keys[i]);
    if (numeric) {
        for (int i = 0; i < m->n; i++) order[i] = i;
        sort_keys = keys;
        qsort(order, (size_t)m->n, sizeof *order, by_key);
        for (int r = 0; r < m->n; r++) rank[order[r]] = r, names[r] = m->names[order[r]];
        for (int64_t k = 0; k < n; k++) ids[k] = rank[ids[k]];
        memcpy(m->names, names, (size_t)m->n * sizeof *names);
    }
    free(keys), free(order), free(rank), free(names);
    return MREC_OK;
}

static mrec_status finish(builder *b, mrec_interactions *out) {
    mrec_status st = numeric_order(&b->users, b->x.user, b->x.n);
    if (!st) st = numeric_order(&b->items, b->x.item, b->x.n);
    free(b->users.slots), free(b->items.slots);
    b->x.user_names = b->users.names, b->x.item_names = b->items.names;
    b->x.n_users = b->users.n, b->x.n_items = b->items.n;
    if (st) {
        mrec_interactions_free(&b->x);
        return st;
    }
    *out = b->x;
    return MREC_OK;
}

static void abandon(builder *b) {
    free(b->users.slots), free(b->items.slots);
    b->x.user_names = b->users.names, b->x.item_names = b->items.names;
    b->x.n_users = b->users.n, b->x.n_items = b->items.n;
    mrec_interactions_free(&b->x);
}

/* Splits line at sep (in place); returns the field count, at most MAX_FIELDS + 1. */
static int split_fields(char *line, char sep, char **f, size_t *len) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n > MAX_FIELDS) return n;
        f[n] = p;
        char *e = strchr(p, sep);
        len[n] = e ? (size_t)(e - p) : strlen(p);
        n++;
        if (!e) return n;
        *e = '\0';
        p = e + 1;
    }
}

/* Opens a data file; a folder or a missing file is an error naming it. */
static mrec_status open_data(FILE **fp, const char *path) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return mrec_fail(MREC_ERR_IO, "%s: is a folder, expected a file", path);
    *fp = fopen(path, "r");
    if (!*fp) return mrec_fail(MREC_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    return MREC_OK;
}

static void chomp(char *line, ssize_t *n) {
    while (*n > 0 && (line[*n - 1] == '\n' || line[*n - 1] == '\r')) line[--*n] = '\0';
}

static int parse_float(const char *s, float *v) {
    char *end;
    errno = 0;
    *v = strtof(s, &end);
    return end != s && *end == '\0' && errno == 0;
}

static int parse_int64(const char *s, int64_t *v) {
    char *end;
    errno = 0;
    double d = strtod(s, &end); /* timestamps are sometimes written as floats */
    if (end == s || *end != '\0' || errno || d != d || d < -9e18 || d > 9e18) return 0;
    *v = (int64_t)d;
    return 1;
}

/* Column `name` of the header, accepting "name" and "name:type". */
static int find_column(char **f, int n, const char *const *names) {
    for (int i = 0; i < n; i++)
        for (const char *const *nm = names; *nm; nm++) {
            size_t k = strlen(*nm);
            if (strncmp(f[i], *nm, k) == 0 && (f[i][k] == '\0' || f[i][k] == ':')) return i;
        }
    return -1;
}

mrec_status mrec_load_inter(mrec_interactions *out, const char *path) {
    memset(out, 0, sizeof *out);
    FILE *fp;
    mrec_status st = open_data(&fp, path);
    if (st) return st;
    builder b = {0};
    char *line = NULL, *f[MAX_FIELDS + 1];
    size_t cap = 0, len[MAX_FIELDS + 1];
    ssize_t n;
    long line_no = 0;
    int cu = -1, ci = -1, cr = -1, ct = -1, cs = -1, n_cols = 0;
    char split_col[16] = "x_label"; /* as the header names it */
    static const char *const user_names[] = {"userID", "user_id", "user", NULL};
    static const char *const item_names[] = {"itemID", "item_id", "item", NULL};
    static const char *const rating_names[] = {"rating", NULL};
    static const char *const time_names[] = {"timestamp", NULL};
    static const char *const split_names[] = {"x_label", "split", NULL};
    while (!st && (n = getline(&line, &cap, fp)) >= 0) {
        line_no++;
        chomp(line, &n);
        if (n == 0) continue;
        int k = split_fields(line, '\t', f, len);
        if (line_no == 1) {
            n_cols = k;
            cu = find_column(f, k, user_names), ci = find_column(f, k, item_names);
            cr = find_column(f, k, rating_names), ct = find_column(f, k, time_names), cs = find_column(f, k, split_names);
            if (cs >= 0) snprintf(split_col, sizeof split_col, "%s", f[cs]);
            if (cu < 0 || ci < 0)
                st = mrec_fail(MREC_ERR_FORMAT, "%s: line 1: the header names no user column (userID, user_id) or no "
                               "item column (itemID, item_id)", path);
            continue;
        }
        if (k != n_cols) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: %d columns, the header has %d", path, line_no, k, n_cols);
            break;
        }
        float rating = 1.0f;
        int64_t ts = 0, label = 0;
        if (len[cu] == 0 || len[ci] == 0) st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: empty user or item id", path, line_no);
        else if (cr >= 0 && !parse_float(f[cr], &rating))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: rating '%s' is not a number", path, line_no, f[cr]);
        else if (ct >= 0 && !parse_int64(f[ct], &ts))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: timestamp '%s' is not a number", path, line_no, f[ct]);
        else if (cs >= 0 && (!parse_int64(f[cs], &label) || label < 0 || label > 2))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: %s '%s' is not 0, 1 or 2", path, line_no, split_col, f[cs]);
        else st = push(&b, f[cu], len[cu], f[ci], len[ci], rating, ts, (int)label, path, line_no);
    }
    free(line);
    fclose(fp);
    if (!st && line_no == 0) st = mrec_fail(MREC_ERR_FORMAT, "%s: empty file", path);
    if (st) {
        abandon(&b);
        return st;
    }
    b.x.has_split = cs >= 0, b.x.has_rating = cr >= 0, b.x.has_timestamp = ct >= 0;
    return finish(&b, out);
}

/* One Elliot TSV into b, every pair labelled split; *n_cols must agree across files. */
static mrec_status read_tsv(builder *b, const char *path, int split, int *n_cols) {
    FILE *fp;
    mrec_status st = open_data(&fp, path);
    if (st) return st;
    char *line = NULL, *f[MAX_FIELDS + 1];
    size_t cap = 0, len[MAX_FIELDS + 1];
    ssize_t n;
    long line_no = 0;
    int64_t before = b->x.n;
    while (!st && (n = getline(&line, &cap, fp)) >= 0) {
        line_no++;
        chomp(line, &n);
        if (n == 0) continue;
        int k = split_fields(line, '\t', f, len);
        if (k < 2 || k > 4 || (*n_cols && k != *n_cols)) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: %d columns; expected user, item [, rating [, timestamp]] "
                           "on every line alike", path, line_no, k);
            break;
        }
        *n_cols = k;
        float rating = 1.0f;
        int64_t ts = 0;
        if (len[0] == 0 || len[1] == 0) st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: empty user or item id", path, line_no);
        else if (k >= 3 && !parse_float(f[2], &rating))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: rating '%s' is not a number", path, line_no, f[2]);
        else if (k == 4 && !parse_int64(f[3], &ts))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: timestamp '%s' is not a number", path, line_no, f[3]);
        else st = push(b, f[0], len[0], f[1], len[1], rating, ts, split, path, line_no);
    }
    free(line);
    fclose(fp);
    if (!st && b->x.n == before) st = mrec_fail(MREC_ERR_FORMAT, "%s: no interactions", path);
    return st;
}

mrec_status mrec_load_tsv_splits(mrec_interactions *out, const char *train, const char *valid, const char *test) {
    memset(out, 0, sizeof *out);
    builder b = {0};
    int n_cols = 0;
    mrec_status st = read_tsv(&b, train, MREC_SPLIT_TRAIN, &n_cols);
    if (!st && valid) st = read_tsv(&b, valid, MREC_SPLIT_VALID, &n_cols);
    if (!st && test) st = read_tsv(&b, test, MREC_SPLIT_TEST, &n_cols);
    if (st) {
        abandon(&b);
        return st;
    }
    b.x.has_rating = n_cols >= 3, b.x.has_timestamp = n_cols == 4, b.x.has_split = test != NULL;
    return finish(&b, out);
}

mrec_status mrec_load_tsv(mrec_interactions *out, const char *path) { return mrec_load_tsv_splits(out, path, NULL, NULL); }

/* Lines "user item item ..." (spaces) into builder with the given split. */
static mrec_status read_adjacency(builder *b, const char *path, int split) {
    FILE *fp;
    mrec_status st = open_data(&fp, path);
    if (st) return st;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long line_no = 0;
    while (!st && (n = getline(&line, &cap, fp)) >= 0) {
        line_no++;
        chomp(line, &n);
        char *p = line, *user = NULL;
        size_t ulen = 0;
        while (!st && *p) {
            while (*p == ' ' || *p == '\t') p++;
            if (!*p) break;
            char *tok = p;
            while (*p && *p != ' ' && *p != '\t') p++;
            size_t tlen = (size_t)(p - tok);
            if (!user) user = tok, ulen = tlen;
            else st = push(b, user, ulen, tok, tlen, 1.0f, 0, split, path, line_no);
        }
    }
    free(line);
    fclose(fp);
    return st;
}

mrec_status mrec_load_lightgcn(mrec_interactions *out, const char *path) {
    memset(out, 0, sizeof *out);
    char train[4096], test[4096];
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(train, sizeof train, "%s/train.txt", path);
        snprintf(test, sizeof test, "%s/test.txt", path);
    } else {
        /* a training file (train.txt, or a renamed one); test.txt sits beside it */
        const char *slash = strrchr(path, '/');
        snprintf(train, sizeof train, "%s", path);
        snprintf(test, sizeof test, "%.*stest.txt", slash ? (int)(slash - path + 1) : 0, path);
    }
    builder b = {0};
    mrec_status st = read_adjacency(&b, train, MREC_SPLIT_TRAIN);
    if (!st) st = read_adjacency(&b, test, MREC_SPLIT_TEST);
    if (!st && b.x.n == 0) st = mrec_fail(MREC_ERR_FORMAT, "%s: no interactions", train);
    if (st) {
        abandon(&b);
        return st;
    }
    b.x.has_split = 1;
    return finish(&b, out);
}

void mrec_interactions_free(mrec_interactions *x) {
    free(x->user), free(x->item), free(x->rating), free(x->timestamp), free(x->split);
    for (int i = 0; x->user_names && i < x->n_users; i++) free(x->user_names[i]);
    for (int i = 0; x->item_names && i < x->n_items; i++) free(x->item_names[i]);
    free(x->user_names), free(x->item_names);
    memset(x, 0, sizeof *x);
}

mrec_status mrec_write_id_map(const mrec_interactions *x, int items, const char *path) {
    mrec_atomic_file af; /* a temporary name of its own beside path, renamed on commit */
    mrec_status st = mrec_atomic_begin(&af, path);
    if (st) return st;
    int n = items ? x->n_items : x->n_users;
    char **names = items ? x->item_names : x->user_names;
    for (int i = 0; i < n; i++) fprintf(af.f, "%d\t%s\n", i, names[i]);
    return mrec_atomic_commit(&af);
}

/* ---- per-user lists ---- */

static const int32_t *sort_items;
static int by_item(const void *a, const void *b) {
    int32_t x = sort_items[*(const int64_t *)a], y = sort_items[*(const int64_t *)b];
    if (x != y) return x < y ? -1 : 1;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    return i < j ? -1 : i > j; /* keep file order among duplicates */
}

mrec_status mrec_user_items_build(mrec_user_items *out, const mrec_interactions *x, mrec_split split) {
    memset(out, 0, sizeof *out);
    out->n_rows = x->n_users, out->n_cols = x->n_items;
    out->row_ptr = calloc((size_t)x->n_users + 1, sizeof *out->row_ptr);
    int64_t *order = malloc((size_t)(x->n ? x->n : 1) * sizeof *order), *fill = calloc((size_t)x->n_users + 1, sizeof *fill);
    out->col = malloc((size_t)(x->n ? x->n : 1) * sizeof *out->col);
    out->val = malloc((size_t)(x->n ? x->n : 1) * sizeof *out->val);
    if (!out->row_ptr || !order || !fill || !out->col || !out->val) {
        free(order), free(fill), mrec_user_items_free(out);
        return mrec_fail(MREC_ERR_NOMEM, "building user lists");
    }
    for (int64_t k = 0; k < x->n; k++)
        if (x->split[k] == (int)split) out->row_ptr[x->user[k] + 1]++;
    for (int u = 0; u < x->n_users; u++) out->row_ptr[u + 1] += out->row_ptr[u];
    for (int64_t k = 0; k < x->n; k++)
        if (x->split[k] == (int)split) order[out->row_ptr[x->user[k]] + fill[x->user[k]]++] = k;
    /* Sort each row by item, merge duplicates (the last rating wins). */
    sort_items = x->item;
    int64_t w = 0;
    for (int u = 0; u < x->n_users; u++) {
        int64_t lo = out->row_ptr[u], hi = out->row_ptr[u + 1];
        qsort(order + lo, (size_t)(hi - lo), sizeof *order, by_item);
        out->row_ptr[u] = w;
        for (int64_t k = lo; k < hi; k++) {
            int32_t item = x->item[order[k]];
            if (w > out->row_ptr[u] && out->col[w - 1] == item) out->val[w - 1] = x->rating[order[k]];
            else out->col[w] = item, out->val[w] = x->rating[order[k]], w++;
        }
    }
    out->row_ptr[x->n_users] = w;
    free(order), free(fill);
    return MREC_OK;
}

void mrec_user_items_free(mrec_user_items *m) {
    free(m->row_ptr), free(m->col), free(m->val);
    memset(m, 0, sizeof *m);
}
