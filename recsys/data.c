/* data.c: reading interaction files into dense ids.
 *
 * One reading path for every format (.inter, Elliot TSV and fixed splits,
 * LightGCN adjacency lists): a regular-file check, a line reader with hard
 * caps, field and number checks, then one pass that keeps each (user, item)
 * pair once and checks the splits. The rules are listed in mrec_recsys.h.
 * Nothing is half-loaded: any error frees what was read. Ids are strings;
 * see mrec_recsys.h for how they are numbered.
 */
#include "mrec_recsys.h"
#include "../nn/mrec_io.h"

#include "recsys_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FIELDS 64
#define MAX_ID_BYTES 4096
#define DEFAULT_MAX_LINE ((int64_t)1 << 24)

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
    if (m->n >= (1 << 30)) return -1; /* ids stay well inside int32 and the slot table's size_t math */
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

/* ---- options and notices ---- */

mrec_load_options mrec_load_defaults(void) {
    mrec_load_options o = {.duplicates = MREC_DUPLICATES_DROP, .max_line = DEFAULT_MAX_LINE};
    return o;
}

void mrec_interactions_notice(const mrec_interactions *x, const char *fmt, ...) {
    char line[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* library code prints nothing: the caller's callback shows what loading changed (the counts stay in x) */
    if (x->notice) x->notice(x->notice_ctx, line);
}

/* ---- the growing result ---- */

#define MAX_FILES 3

typedef struct {
    mrec_interactions x;
    int64_t cap;
    id_map users, items;
    int64_t *line;              /* (n) the line of each row, for messages */
    int8_t *file;               /* (n) which of paths[] it came from */
    const char *paths[MAX_FILES];
    int n_files;
    mrec_load_options opt;
    int ts_kind;                /* 0 no timestamp yet, 1 numbers, 2 dates: one kind per file set */
    long ts_kind_line;          /* the line that set it */
} builder;

static void builder_init(builder *b, const mrec_load_options *opt) {
    memset(b, 0, sizeof *b);
    b->opt = opt ? *opt : mrec_load_defaults();
    if (b->opt.max_line <= 0) b->opt.max_line = DEFAULT_MAX_LINE;
}

static mrec_status push(builder *b, const char *user, size_t ul, const char *item, size_t il, float rating, int64_t ts,
                        int split, const char *path, long line) {
    if (b->x.n == b->cap) {
        int64_t cap = b->cap ? b->cap * 2 : 1 << 12;
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
        int64_t *l = realloc(b->line, (size_t)cap * sizeof *l);
        if (l) b->line = l;
        int8_t *f = realloc(b->file, (size_t)cap * sizeof *f);
        if (f) b->file = f;
        if (!u || !i || !r || !t || !s || !l || !f) return mrec_fail(MREC_ERR_NOMEM, "%s: line %ld: out of memory", path, line);
        b->cap = cap;
    }
    int32_t uid = id_map_get(&b->users, user, ul), iid = id_map_get(&b->items, item, il);
    if (uid < 0 || iid < 0)
        return mrec_fail(MREC_ERR_NOMEM, "%s: line %ld: out of memory (or over 2^30 distinct ids)", path, line);
    int64_t k = b->x.n++;
    b->x.user[k] = uid, b->x.item[k] = iid, b->x.rating[k] = rating, b->x.timestamp[k] = ts, b->x.split[k] = (int8_t)split;
    b->line[k] = line, b->file[k] = (int8_t)(b->n_files - 1);
    return MREC_OK;
}

/* A canonical non-negative integer ("0", "17"; not "007" or "-3"), into *v. */
static int as_index(const char *s, long long *v) {
    if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && s[1]) || strlen(s) > 15) return 0;
    long long acc = 0;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p)) return 0;
        acc = acc * 10 + (*p - '0'); /* at most 15 digits: no overflow */
    }
    *v = acc;
    return 1;
}

/* An id's numeric value and its slot: sorted by value, ties (as "01" and "1")
 * by first appearance, so the order is the same on every C library. */
typedef struct {
    long long key;
    int32_t index;
} keyed_id;

static int by_key(const void *a, const void *b) {
    const keyed_id *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Renumbers ids by numeric value when all names are integers. */
static mrec_status numeric_order(id_map *m, int32_t *ids, int64_t n) {
    keyed_id *keys = malloc((size_t)(m->n ? m->n : 1) * sizeof *keys);
    int32_t *rank = malloc((size_t)(m->n ? m->n : 1) * sizeof *rank);
    char **names = malloc((size_t)(m->n ? m->n : 1) * sizeof *names);
    if (!keys || !rank || !names) {
        free(keys), free(rank), free(names);
        return mrec_fail(MREC_ERR_NOMEM, "renumbering ids");
    }
    int numeric = 1;
    for (int i = 0; i < m->n && numeric; i++) numeric = as_index(m->names[i], &keys[i].key), keys[i].index = i;
    if (numeric) {
        qsort(keys, (size_t)m->n, sizeof *keys, by_key);
        for (int r = 0; r < m->n; r++) rank[keys[r].index] = r, names[r] = m->names[keys[r].index];
        for (int64_t k = 0; k < n; k++) ids[k] = rank[ids[k]];
        memcpy(m->names, names, (size_t)m->n * sizeof *names);
    }
    free(keys), free(rank), free(names);
    return MREC_OK;
}

/* Hands the builder's arrays to x (or frees them); the line and file columns go. */
static void release(builder *b) {
    free(b->users.slots), free(b->items.slots), free(b->line), free(b->file);
    b->users.slots = b->items.slots = NULL, b->line = NULL, b->file = NULL;
    b->x.user_names = b->users.names, b->x.item_names = b->items.names;
    b->x.n_users = b->users.n, b->x.n_items = b->items.n;
    b->x.notice = b->opt.notice, b->x.notice_ctx = b->opt.notice_ctx;
}

static void abandon(builder *b) {
    release(b);
    mrec_interactions_free(&b->x);
}

static mrec_status finish(builder *b, mrec_interactions *out) {
    mrec_status st = numeric_order(&b->users, b->x.user, b->x.n);
    if (!st) st = numeric_order(&b->items, b->x.item, b->x.n);
    release(b);
    if (st) {
        mrec_interactions_free(&b->x);
        return st;
    }
    *out = b->x;
    return MREC_OK;
}

/* ---- files and lines ---- */

typedef struct {
    FILE *fp;
    const char *path;
    long line_no;
    char *buf;
    size_t len, cap;
    int64_t max;
} reader;

static mrec_status reader_open(reader *r, const char *path, int64_t max_line) {
    memset(r, 0, sizeof *r);
    r->path = path, r->max = max_line;
    return mrec_open_regular(&r->fp, path);
}

static void reader_close(reader *r) {
    if (r->fp) fclose(r->fp);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

/* The next line into r->buf, NUL-terminated, without "\n" or "\r\n"; *got = 0
 * at the end of the file. Read a byte at a time so a NUL or an endless line
 * is caught before it costs memory. */
static mrec_status next_line(reader *r, int *got) {
    *got = 0;
    r->len = 0;
    int c;
    while ((c = getc_unlocked(r->fp)) != EOF && c != '\n') {
        if ((int64_t)r->len >= r->max)
            return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: longer than %lld bytes", r->path, r->line_no + 1, (long long)r->max);
        if (c == '\0')
            return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, byte %zu: a NUL byte; expected text", r->path, r->line_no + 1,
                             r->len + 1);
        if (r->len + 2 > r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 256;
            char *buf = realloc(r->buf, cap);
            if (!buf) return mrec_fail(MREC_ERR_NOMEM, "%s: line %ld: out of memory", r->path, r->line_no + 1);
            r->buf = buf, r->cap = cap;
        }
        r->buf[r->len++] = (char)c;
    }
    if (ferror(r->fp)) return mrec_fail(MREC_ERR_IO, "%s: line %ld: read failed (%s)", r->path, r->line_no + 1, strerror(errno));
    if (c == EOF && r->len == 0) return MREC_OK;
    r->line_no++;
    if (!r->buf) { /* an empty line before any byte was stored */
        if (!(r->buf = malloc(256))) return mrec_fail(MREC_ERR_NOMEM, "%s: out of memory", r->path);
        r->cap = 256;
    }
    if (r->len && r->buf[r->len - 1] == '\r') r->len--;
    r->buf[r->len] = '\0';
    if (r->line_no == 1 && r->len >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 byte-order mark */
        memmove(r->buf, r->buf + 3, r->len - 2);
        r->len -= 3;
    }
    for (size_t k = 0; k < r->len; k++) {
        unsigned char b = (unsigned char)r->buf[k];
        if ((b < 0x20 && b != '\t') || b == 0x7f)
            return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, byte %zu: control character 0x%02x; expected text with tab-separated "
                             "columns and \\n or \\r\\n line ends", r->path, r->line_no, k + 1, b);
    }
    *got = 1;
    return MREC_OK;
}

/* Splits a line at tabs (in place); the field count, or -1 past MAX_FIELDS. */
static int split_tabs(char *line, char **f, size_t *len) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == MAX_FIELDS) return -1;
        f[n] = p;
        char *e = strchr(p, '\t');
        len[n] = e ? (size_t)(e - p) : strlen(p);
        n++;
        if (!e) return n;
        *e = '\0';
        p = e + 1;
    }
}

/* ---- fields ---- */

static mrec_status check_id(const reader *r, int col, const char *what, size_t len) {
    if (len == 0) return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: empty %s id", r->path, r->line_no, col, what);
    if (len > MAX_ID_BYTES)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: %s id of %zu bytes; at most %d", r->path, r->line_no, col, what,
                         len, MAX_ID_BYTES);
    return MREC_OK;
}

/* Only the characters of a decimal number: no spaces, hex, or words like nan. */
static int decimal_chars(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s) && *s != '+' && *s != '-' && *s != '.' && *s != 'e' && *s != 'E') return 0;
    return 1;
}

static int non_finite_word(const char *s) {
    if (*s == '+' || *s == '-') s++;
    return !strcasecmp(s, "nan") || !strcasecmp(s, "inf") || !strcasecmp(s, "infinity");
}

static mrec_status parse_rating(const reader *r, int col, const char *s, float *v) {
    if (non_finite_word(s))
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: rating '%s' is not finite; expected a number", r->path,
                         r->line_no, col, s);
    char *end = NULL;
    double d = 0;
    if (decimal_chars(s)) {
        errno = 0;
        d = strtod(s, &end);
    }
    if (!end || end == s || *end)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: rating '%s' is not a number%s", r->path, r->line_no, col, s,
                         r->line_no == 1 && isalpha((unsigned char)s[0]) ? " (a header? this format has none)" : "");
    if (!isfinite(d) || fabs(d) > FLT_MAX)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: rating '%s' is out of range; expected a finite float", r->path,
                         r->line_no, col, s);
    *v = (float)d;
    return MREC_OK;
}

/* A number of seconds, or a date (mrec_parse_date) in a column of dates; a column mixing the two is an error. */
static mrec_status parse_timestamp(builder *b, const reader *r, int col, const char *s, int64_t *v) {
    int kind = strspn(s, "0123456789") == 4 && s[4] == '-' ? 2 : 1; /* YYYY-...: a date, or nothing valid */
    if (b->ts_kind && kind != b->ts_kind)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: timestamp '%s' is %s, line %ld has %s; one kind per column",
                         r->path, r->line_no, col, s, kind == 2 ? "a date" : "not a date", b->ts_kind_line,
                         b->ts_kind == 2 ? "a date" : "a number");
    if (!b->ts_kind) b->ts_kind = kind, b->ts_kind_line = r->line_no, b->x.timestamp_dates = kind == 2;
    if (kind == 2) {
        if (!mrec_parse_date(s, v) && *v < 0)
            return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: timestamp '%s' is before 1970-01-01; expected seconds >= 0",
                             r->path, r->line_no, col, s);
        if (!mrec_parse_date(s, v)) return MREC_OK;
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: timestamp '%s' is not a date; expected YYYY-MM-DD[(T| )HH:MM[:SS[.f]]]"
                         "[Z|+HH:MM], a day that exists", r->path, r->line_no, col, s);
    }
    char *end = NULL;
    int whole = decimal_chars(s) && strspn(s, "0123456789+-") == strlen(s);
    if (whole) { /* integers as integers: past 2^53 a double would round them */
        errno = 0;
        long long t = strtoll(s, &end, 10);
        if (end != s && !*end) {
            if (errno == ERANGE || t < 0)
                return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: timestamp '%s' is %s; expected whole seconds >= 0",
                                 r->path, r->line_no, col, s, errno == ERANGE ? "out of range" : "negative");
            *v = t;
            return MREC_OK;
        }
    } else if (decimal_chars(s)) { /* "978300760.0", "9.7e8" */
        errno = 0;
        double d = strtod(s, &end);
        if (end != s && !*end) {
            if (!isfinite(d) || d < 0 || d >= 9.2e18 || d != floor(d))
                return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: timestamp '%s' is %s; expected whole seconds >= 0",
                                 r->path, r->line_no, col, s, d < 0 ? "negative" : d != floor(d) ? "not whole" : "out of range");
            *v = (int64_t)d;
            return MREC_OK;
        }
    }
    return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: timestamp '%s' is not a number%s", r->path, r->line_no, col, s,
                     non_finite_word(s) ? " (not finite)" : " or a date (YYYY-MM-DD[ HH:MM:SS])");
}

static mrec_status parse_label(const reader *r, int col, const char *name, const char *s, int *v) {
    if ((s[0] == '0' || s[0] == '1' || s[0] == '2') && !s[1]) {
        *v = s[0] - '0';
        return MREC_OK;
    }
    return mrec_fail(MREC_ERR_FORMAT, "%s: line %ld, column %d: %s '%s' is not 0 (train), 1 (valid) or 2 (test)", r->path,
                     r->line_no, col, name, s);
}

/* ---- the three formats ---- */

/* Column `name` of the header, accepting "name" and "name:type". */
static int find_column(char **f, int n, const char *const *names) {
    for (int i = 0; i < n; i++)
        for (const char *const *nm = names; *nm; nm++) {
            size_t k = strlen(*nm);
            if (strncmp(f[i], *nm, k) == 0 && (f[i][k] == '\0' || f[i][k] == ':')) return i;
        }
    return -1;
}

/* MMRec's .inter into b, and which optional columns its header names. */
static mrec_status read_inter(builder *b, const char *path, int *has_rating, int *has_time, int *has_split) {
    reader r;
    mrec_status st = reader_open(&r, path, b->opt.max_line);
    if (st) return st;
    b->paths[b->n_files++] = path;
    char *f[MAX_FIELDS];
    size_t len[MAX_FIELDS];
    int cu = -1, ci = -1, cr = -1, ct = -1, cs = -1, n_cols = 0, got;
    long header_line = 0;
    char split_col[64] = "x_label"; /* as the header names it */
    static const char *const user_names[] = {"userID", "user_id", "user", NULL};
    static const char *const item_names[] = {"itemID", "item_id", "item", NULL};
    static const char *const rating_names[] = {"rating", NULL};
    static const char *const time_names[] = {"timestamp", NULL};
    static const char *const split_names[] = {"x_label", "split", NULL};
    while (!st && !(st = next_line(&r, &got)) && got) {
        if (r.len == 0) continue;
        int k = split_tabs(r.buf, f, len);
        if (k < 0) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: more than %d columns", path, r.line_no, MAX_FIELDS);
            break;
        }
        if (!header_line) {
            header_line = r.line_no, n_cols = k;
            cu = find_column(f, k, user_names), ci = find_column(f, k, item_names);
            cr = find_column(f, k, rating_names), ct = find_column(f, k, time_names), cs = find_column(f, k, split_names);
            if (cs >= 0) snprintf(split_col, sizeof split_col, "%s", f[cs]);
            if (cu < 0 || ci < 0)
                st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: the header names no user column (userID, user_id, user) or no "
                               "item column (itemID, item_id, item)", path, r.line_no);
            continue;
        }
        if (k != n_cols) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: %d columns, the header (line %ld) has %d", path, r.line_no, k,
                           header_line, n_cols);
            break;
        }
        float rating = 1.0f;
        int64_t ts = 0;
        int label = 0;
        if ((st = check_id(&r, cu + 1, "user", len[cu])) || (st = check_id(&r, ci + 1, "item", len[ci]))) break;
        if (cr >= 0 && (st = parse_rating(&r, cr + 1, f[cr], &rating))) break;
        if (cr >= 0) b->x.rating_decimal |= strpbrk(f[cr], ".eE") != NULL; /* pandas' float column */
        if (ct >= 0 && (st = parse_timestamp(b, &r, ct + 1, f[ct], &ts))) break;
        if (cs >= 0 && (st = parse_label(&r, cs + 1, split_col, f[cs], &label))) break;
        st = push(b, f[cu], len[cu], f[ci], len[ci], rating, ts, label, path, r.line_no);
    }
    if (!st && !header_line) st = mrec_fail(MREC_ERR_FORMAT, "%s: empty file; expected a header and rows", path);
    else if (!st && b->x.n == 0) st = mrec_fail(MREC_ERR_FORMAT, "%s: a header (line %ld) and no interactions", path, header_line);
    reader_close(&r);
    *has_rating = cr >= 0, *has_time = ct >= 0, *has_split = cs >= 0;
    return st;
}

/* One Elliot TSV into b, every pair labelled split; *n_cols must agree across files. */
static mrec_status read_tsv(builder *b, const char *path, int split, int *n_cols) {
    reader r;
    mrec_status st = reader_open(&r, path, b->opt.max_line);
    if (st) return st;
    b->paths[b->n_files++] = path;
    char *f[MAX_FIELDS];
    size_t len[MAX_FIELDS];
    int64_t before = b->x.n;
    int got;
    while (!st && !(st = next_line(&r, &got)) && got) {
        if (r.len == 0) continue;
        int k = split_tabs(r.buf, f, len);
        if (k < 0) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: more than %d columns; expected 2 to 4: user, item [, rating [, "
                           "timestamp]]", path, r.line_no, MAX_FIELDS);
            break;
        }
        if (k < 2 || k > 4) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: %d column%s; expected 2 to 4: user, item [, rating [, timestamp]]",
                           path, r.line_no, k, k == 1 ? " (no tab)" : "s");
            break;
        }
        if (*n_cols && k != *n_cols) {
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %ld: %d columns, the rows before have %d; every line alike", path, r.line_no,
                           k, *n_cols);
            break;
        }
        *n_cols = k;
        float rating = 1.0f;
        int64_t ts = 0;
        if ((st = check_id(&r, 1, "user", len[0])) || (st = check_id(&r, 2, "item", len[1]))) break;
        if (k >= 3 && (st = parse_rating(&r, 3, f[2], &rating))) break;
        if (k >= 3) b->x.rating_decimal |= strpbrk(f[2], ".eE") != NULL; /* pandas' float column */
        if (k == 4 && (st = parse_timestamp(b, &r, 4, f[3], &ts))) break;
        st = push(b, f[0], len[0], f[1], len[1], rating, ts, split, path, r.line_no);
    }
    if (!st && b->x.n == before)
        st = mrec_fail(MREC_ERR_FORMAT, "%s: %s; expected rows of user, item [, rating [, timestamp]]", path,
                       r.line_no ? "no interactions, only blank lines" : "empty file, no interactions");
    reader_close(&r);
    return st;
}

/* Lines "user item item ..." (spaces or tabs) into b with the given split. */
static mrec_status read_adjacency(builder *b, const char *path, int split) {
    reader r;
    mrec_status st = reader_open(&r, path, b->opt.max_line);
    if (st) return st;
    b->paths[b->n_files++] = path;
    int64_t before = b->x.n;
    int got;
    while (!st && !(st = next_line(&r, &got)) && got) {
        char *p = r.buf, *user = NULL;
        size_t ulen = 0;
        for (int col = 1; !st && *p; col++) {
            while (*p == ' ' || *p == '\t') p++;
            if (!*p) break;
            char *tok = p;
            while (*p && *p != ' ' && *p != '\t') p++;
            size_t tlen = (size_t)(p - tok);
            if ((st = check_id(&r, col, col == 1 ? "user" : "item", tlen))) break;
            if (!user) user = tok, ulen = tlen;
            else st = push(b, user, ulen, tok, tlen, 1.0f, 0, split, path, r.line_no);
        }
    }
    if (!st && b->x.n == before)
        st = mrec_fail(MREC_ERR_FORMAT, "%s: %s; expected lines of user item item ...", path,
                       r.line_no ? "no interactions" : "empty file, no interactions");
    reader_close(&r);
    return st;
}

/* ---- one row per pair ---- */

typedef struct {
    uint64_t pair;
    int64_t ts, row;
    int split;
} row_key;

/* By pair, then the row that wins: earliest split, earliest time, first read. */
static int by_pair(const void *a, const void *b) {
    const row_key *x = a, *y = b;
    if (x->pair != y->pair) return x->pair < y->pair ? -1 : 1;
    if (x->split != y->split) return x->split < y->split ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

static const char *split_name(int s) { return s == MREC_SPLIT_TRAIN ? "train" : s == MREC_SPLIT_VALID ? "valid" : "test"; }

/* Keeps one row per (user, item) pair, or fails on the first repeat. */
static mrec_status one_row_per_pair(builder *b, int has_time) {
    int64_t n = b->x.n;
    if (n == 0) return MREC_OK;
    row_key *keys = malloc(sizeof *keys * (size_t)n);
    uint8_t *keep = malloc((size_t)n);
    if (!keys || !keep) {
        free(keys), free(keep);
        return mrec_fail(MREC_ERR_NOMEM, "%s: checking %lld rows for repeated pairs", b->x.source, (long long)n);
    }
    for (int64_t k = 0; k < n; k++) {
        keys[k].pair = (uint64_t)(uint32_t)b->x.user[k] << 32 | (uint32_t)b->x.item[k];
        keys[k].ts = has_time ? b->x.timestamp[k] : 0, keys[k].row = k, keys[k].split = b->x.split[k];
    }
    qsort(keys, (size_t)n, sizeof *keys, by_pair);
    int64_t same = 0, cross = 0;
    mrec_status st = MREC_OK;
    for (int64_t k = 0, first = 0; k < n && !st; k++) {
        if (k == 0 || keys[k].pair != keys[k - 1].pair) {
            first = k;
            keep[keys[k].row] = 1;
            continue;
        }
        int64_t kept = keys[first].row, row = keys[k].row;
        keep[row] = 0;
        if (keys[k].split == keys[first].split) same++;
        else cross++;
        if (b->opt.duplicates == MREC_DUPLICATES_ERROR) {
            /* name the two rows in reading order */
            int64_t a = kept < row ? kept : row, z = kept < row ? row : kept;
            const char *ua = b->users.names[b->x.user[a]], *ia = b->items.names[b->x.item[a]];
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %lld: user '%.64s', item '%.64s' again (first on line %lld of %s)%s",
                           b->paths[b->file[z]], (long long)b->line[z], ua, ia, (long long)b->line[a], b->paths[b->file[a]],
                           keys[k].split != keys[first].split ? "; a pair in two splits" : "");
        }
    }
    free(keys);
    if (!st && (same || cross)) {
        int64_t w = 0;
        for (int64_t k = 0; k < n; k++) {
            if (!keep[k]) continue;
            b->x.user[w] = b->x.user[k], b->x.item[w] = b->x.item[k], b->x.rating[w] = b->x.rating[k];
            b->x.timestamp[w] = b->x.timestamp[k], b->x.split[w] = b->x.split[k], b->line[w] = b->line[k], b->file[w] = b->file[k];
            w++;
        }
        b->x.n = w;
        b->x.n_duplicates = same, b->x.n_cross_split = cross;
        mrec_interactions probe = {.notice = b->opt.notice, .notice_ctx = b->opt.notice_ctx};
        if (same)
            mrec_interactions_notice(&probe, "%s: %lld repeated (user, item) rows dropped; kept the %s of each pair", b->x.source,
                                     (long long)same, has_time ? "earliest (by timestamp, then line)" : "first");
        if (cross)
            mrec_interactions_notice(&probe, "%s: %lld rows dropped whose (user, item) pair is already in an earlier split "
                                     "(train, valid, test); each pair stays in one split", b->x.source, (long long)cross);
    }
    free(keep);
    return st;
}

/* After the pairs are settled: each split file still has rows (pre-split data). */
static mrec_status files_kept_rows(const builder *b, const int *file_split) {
    int64_t count[MAX_FILES] = {0};
    for (int64_t k = 0; k < b->x.n; k++) count[b->file[k]]++;
    for (int f = 0; f < b->n_files; f++)
        if (!count[f])
            return mrec_fail(MREC_ERR_FORMAT, "%s: no %s pairs left: every one is already in an earlier split", b->paths[f],
                             split_name(file_split[f]));
    return MREC_OK;
}

mrec_status mrec_check_split(const mrec_interactions *x, int want_valid) {
    const char *src = x->source[0] ? x->source : "the interactions";
    int64_t count[3] = {0, 0, 0};
    for (int64_t k = 0; k < x->n; k++)
        if (x->split[k] >= 0 && x->split[k] <= 2) count[x->split[k]]++;
    if (!count[MREC_SPLIT_TRAIN]) return mrec_fail(MREC_ERR_FORMAT, "%s: no training pairs; nothing to train on", src);
    if (!count[MREC_SPLIT_TEST]) return mrec_fail(MREC_ERR_FORMAT, "%s: no test pairs; nothing to evaluate", src);
    if (want_valid && !count[MREC_SPLIT_VALID]) return mrec_fail(MREC_ERR_FORMAT, "%s: no validation pairs", src);
    uint8_t *u_trained = calloc((size_t)x->n_users + 1, 1), *i_trained = calloc((size_t)x->n_items + 1, 1);
    if (!u_trained || !i_trained) {
        free(u_trained), free(i_trained);
        return mrec_fail(MREC_ERR_NOMEM, "%s: checking the split", src);
    }
    for (int64_t k = 0; k < x->n; k++)
        if (x->split[k] == MREC_SPLIT_TRAIN) u_trained[x->user[k]] = 1, i_trained[x->item[k]] = 1;
    int cold_u = 0, cold_i = 0;
    for (int u = 0; u < x->n_users; u++) cold_u += !u_trained[u];
    for (int i = 0; i < x->n_items; i++) cold_i += !i_trained[i];
    free(u_trained), free(i_trained);
    if (cold_u || cold_i)
        mrec_interactions_notice(x, "%s: %d of %d users and %d of %d items have no training pairs: kept and scored as the "
                                 "reference frameworks do, never trained", src, cold_u, x->n_users, cold_i, x->n_items);
    return MREC_OK;
}

/* Settles pairs, numbers the ids and checks the split: the common end of every loader. */
static mrec_status conclude(builder *b, mrec_interactions *out, int has_time, const int *file_split) {
    mrec_status st = one_row_per_pair(b, has_time);
    if (!st && file_split) st = files_kept_rows(b, file_split);
    if (st) {
        abandon(b);
        return st;
    }
    if ((st = finish(b, out))) return st;
    int64_t negative = 0;
    for (int64_t k = 0; k < out->n; k++) negative += out->rating[k] < 0;
    if (negative)
        mrec_interactions_notice(out, "%s: %lld rows have a negative rating: kept as given (the models take every row as an "
                                 "interaction; a prefilter rating:X drops those below X)", out->source[0] ? out->source : "the interactions",
                                 (long long)negative);
    if (out->has_split && !b->opt.resplit && (st = mrec_check_split(out, 0))) {
        mrec_interactions_free(out);
        return st;
    }
    return MREC_OK;
}

/* "train + valid + test" for messages; a name too long for the field ends in "...". */
static void set_source(builder *b, const char *a, const char *bb, const char *c) {
    size_t cap = sizeof b->x.source;
    if (snprintf(b->x.source, cap, "%s%s%s%s%s", a, bb ? " + " : "", bb ? bb : "", c ? " + " : "", c ? c : "") >= (int)cap)
        memcpy(b->x.source + cap - 4, "...", 4);
}

mrec_status mrec_load_inter_opt(mrec_interactions *out, const char *path, const mrec_load_options *opt) {
    memset(out, 0, sizeof *out);
    builder b;
    builder_init(&b, opt);
    set_source(&b, path, NULL, NULL);
    int has_rating, has_time, has_split;
    mrec_status st = read_inter(&b, path, &has_rating, &has_time, &has_split);
    if (st) {
        abandon(&b);
        return st;
    }
    b.x.has_split = has_split, b.x.has_rating = has_rating, b.x.has_timestamp = has_time;
    return conclude(&b, out, has_time, NULL);
}

mrec_status mrec_load_tsv_splits_opt(mrec_interactions *out, const char *train, const char *valid, const char *test,
                                     const mrec_load_options *opt) {
    memset(out, 0, sizeof *out);
    builder b;
    builder_init(&b, opt);
    set_source(&b, train, valid ? valid : test, valid ? test : NULL);
    int n_cols = 0, file_split[MAX_FILES] = {MREC_SPLIT_TRAIN, 0, 0};
    mrec_status st = read_tsv(&b, train, MREC_SPLIT_TRAIN, &n_cols);
    if (!st && valid) file_split[b.n_files] = MREC_SPLIT_VALID, st = read_tsv(&b, valid, MREC_SPLIT_VALID, &n_cols);
    if (!st && test) file_split[b.n_files] = MREC_SPLIT_TEST, st = read_tsv(&b, test, MREC_SPLIT_TEST, &n_cols);
    if (st) {
        abandon(&b);
        return st;
    }
    b.x.has_rating = n_cols >= 3, b.x.has_timestamp = n_cols == 4, b.x.has_split = test != NULL;
    return conclude(&b, out, n_cols == 4, b.n_files > 1 ? file_split : NULL);
}

mrec_status mrec_load_tsv_opt(mrec_interactions *out, const char *path, const mrec_load_options *opt) {
    return mrec_load_tsv_splits_opt(out, path, NULL, NULL, opt);
}

mrec_status mrec_load_lightgcn_opt(mrec_interactions *out, const char *path, const mrec_load_options *opt) {
    memset(out, 0, sizeof *out);
    char train[4096], test[4096];
    struct stat sb;
    int n;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(train, sizeof train, "%s/train.txt", path);
        n = snprintf(test, sizeof test, "%s/test.txt", path);
    } else {
        /* a training file (train.txt, or a renamed one); test.txt sits beside it */
        const char *slash = strrchr(path, '/');
        snprintf(train, sizeof train, "%s", path);
        n = snprintf(test, sizeof test, "%.*stest.txt", slash ? (int)(slash - path + 1) : 0, path);
    }
    if (n < 0 || (size_t)n >= sizeof test || strlen(path) + 10 >= sizeof train)
        return mrec_fail(MREC_ERR_ARG, "%.200s...: path too long", path);
    builder b;
    builder_init(&b, opt);
    set_source(&b, train, test, NULL);
    static const int file_split[MAX_FILES] = {MREC_SPLIT_TRAIN, MREC_SPLIT_TEST, 0};
    mrec_status st = read_adjacency(&b, train, MREC_SPLIT_TRAIN);
    if (!st) st = read_adjacency(&b, test, MREC_SPLIT_TEST);
    if (st) {
        abandon(&b);
        return st;
    }
    b.x.has_split = 1;
    return conclude(&b, out, 0, file_split);
}

mrec_status mrec_load_inter(mrec_interactions *out, const char *path) { return mrec_load_inter_opt(out, path, NULL); }
mrec_status mrec_load_tsv(mrec_interactions *out, const char *path) { return mrec_load_tsv_opt(out, path, NULL); }
mrec_status mrec_load_tsv_splits(mrec_interactions *out, const char *train, const char *valid, const char *test) {
    return mrec_load_tsv_splits_opt(out, train, valid, test, NULL);
}
mrec_status mrec_load_lightgcn(mrec_interactions *out, const char *path) { return mrec_load_lightgcn_opt(out, path, NULL); }

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
