/* config.c: YAML files into mrec_cfg trees (libyaml's event parser), and the
 * checked reads the config-driven commands use.
 *
 * A config is hostile input like any other: the tree is built by recursion,
 * so its depth is capped (configs are a few levels deep; 40,000 nested lists
 * would overflow the stack), and so are the file size, the number of nodes
 * and the length of a scalar. */
#include "mrec_config.h"
#include "mrec_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_DEPTH 64               /* maps and lists inside each other */
#define MAX_NODES 100000           /* keys, values and list items in a file */
#define MAX_SCALAR 65536           /* bytes of one key or value */
#define MAX_FILE (16 * 1024 * 1024) /* bytes of a config file */

/* Recursive in depth only, which parse_node bounds by MAX_DEPTH. */
static void node_free(mrec_cfg_node *n) {
    while (n) {
        mrec_cfg_node *next = n->next;
        node_free(n->child);
        free(n->key), free(n->value), free(n);
        n = next;
    }
}

void mrec_cfg_free(mrec_cfg *c) {
    node_free(c->root);
    free(c->path);
    memset(c, 0, sizeof *c);
}

typedef struct {
    yaml_parser_t parser;
    const char *path;
    int n_nodes;
} reader;

static mrec_status next_event(reader *r, yaml_event_t *ev) {
    if (yaml_parser_parse(&r->parser, ev)) return MREC_OK;
    return mrec_fail(MREC_ERR_FORMAT, "%s: line %lu: %s", r->path, (unsigned long)r->parser.problem_mark.line + 1,
                     r->parser.problem ? r->parser.problem : "malformed YAML");
}

/* The node whose first event is ev (consumed), `depth` levels down. */
static mrec_status parse_node(reader *r, yaml_event_t *ev, int depth, mrec_cfg_node **out) {
    *out = NULL;
    int line = (int)ev->start_mark.line + 1;
    if (depth > MAX_DEPTH)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: maps and lists nested more than %d levels deep", r->path, line, MAX_DEPTH);
    if (++r->n_nodes > MAX_NODES) return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: more than %d values in one config", r->path, line, MAX_NODES);
    if (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.length > MAX_SCALAR)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: a value of %zu bytes (at most %d)", r->path, line, ev->data.scalar.length, MAX_SCALAR);
    if (ev->type == YAML_ALIAS_EVENT) return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %d: aliases (*name) are not supported", r->path, line);
    const yaml_char_t *tag = ev->type == YAML_SCALAR_EVENT          ? ev->data.scalar.tag
                             : ev->type == YAML_MAPPING_START_EVENT  ? ev->data.mapping_start.tag
                             : ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.tag
                                                                     : NULL;
    if (tag) return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %d: tags (%s) are not supported", r->path, line, (const char *)tag);
    mrec_cfg_node *n = calloc(1, sizeof *n);
    if (!n) return mrec_fail(MREC_ERR_NOMEM, "%s: config tree", r->path);
    n->line = line;
    mrec_status st = MREC_OK;
    if (ev->type == YAML_SCALAR_EVENT) {
        n->kind = MREC_CFG_SCALAR;
        n->value = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE || ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        if (!n->value) st = mrec_fail(MREC_ERR_NOMEM, "%s: config tree", r->path);
        *out = n;
        return st;
    }
    if (ev->type != YAML_MAPPING_START_EVENT && ev->type != YAML_SEQUENCE_START_EVENT) {
        free(n);
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: unexpected YAML", r->path, line);
    }
    int map = ev->type == YAML_MAPPING_START_EVENT;
    n->kind = map ? MREC_CFG_MAP : MREC_CFG_SEQ;
    mrec_cfg_node **tail = &n->child;
    for (;;) {
        yaml_event_t e;
        if ((st = next_event(r, &e))) break;
        if (e.type == (map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
            yaml_event_delete(&e);
            break;
        }
        char *key = NULL;
        if (map) { /* a key (a scalar), then its value */
            if (e.type != YAML_SCALAR_EVENT || e.data.scalar.length > MAX_SCALAR) {
                unsigned long key_line = (unsigned long)e.start_mark.line + 1;
                st = e.type != YAML_SCALAR_EVENT
                         ? mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %lu: a map key must be plain text", r->path, key_line)
                         : mrec_fail(MREC_ERR_FORMAT, "%s: line %lu: a key of %zu bytes (at most %d)", r->path, key_line, e.data.scalar.length,
                                     MAX_SCALAR);
                yaml_event_delete(&e);
                break;
            }
            key = strndup((const char *)e.data.scalar.value, e.data.scalar.length);
            yaml_event_delete(&e);
            if (!key || (st = next_event(r, &e))) {
                free(key);
                if (!st) st = mrec_fail(MREC_ERR_NOMEM, "%s: config tree", r->path);
                break;
            }
        }
        mrec_cfg_node *child;
        st = parse_node(r, &e, depth + 1, &child);
        yaml_event_delete(&e);
        if (st) {
            free(key);
            break;
        }
        child->key = key;
        *tail = child, tail = &child->next;
    }
    if (st) node_free(n), n = NULL;
    *out = n;
    return st;
}

mrec_status mrec_cfg_parse(mrec_cfg *c, const char *text, size_t len, const char *label) {
    memset(c, 0, sizeof *c);
    reader r = {.path = label};
    yaml_parser_initialize(&r.parser);
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);
    mrec_status st = MREC_OK;
    int docs = 0;
    for (int done = 0; !done && !st;) {
        yaml_event_t ev;
        if ((st = next_event(&r, &ev))) break;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_STREAM_START_EVENT: case YAML_DOCUMENT_END_EVENT: break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) st = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: line %lu: one YAML document per file", label, (unsigned long)ev.start_mark.line + 1);
            break;
        default:
            if (c->root) st = mrec_fail(MREC_ERR_FORMAT, "%s: line %lu: more than one top-level value", label, (unsigned long)ev.start_mark.line + 1);
            else st = parse_node(&r, &ev, 1, &c->root);
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&r.parser);
    if (!st && (!c->root || c->root->kind != MREC_CFG_MAP)) st = mrec_fail(MREC_ERR_FORMAT, "%s: the file holds no map of settings", label);
    if (!st && !(c->path = strdup(label))) st = mrec_fail(MREC_ERR_NOMEM, "%s", label);
    if (st) {
        node_free(c->root);
        c->root = NULL;
    }
    return st;
}

mrec_status mrec_cfg_load(mrec_cfg *c, const char *path) {
    memset(c, 0, sizeof *c);
    /* Opened without blocking and checked to be a regular file, so a FIFO
     * given as the config is refused instead of waiting for a writer. */
    mrec_status st = mrec_check_input_file(path, "the config");
    if (st) return st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) return mrec_fail(MREC_ERR_IO, "the config '%s': cannot open (%s)", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) st = mrec_fail(MREC_ERR_IO, "the config '%s': not a regular file", path);
    else if (sb.st_size > MAX_FILE) st = mrec_fail(MREC_ERR_FORMAT, "the config '%s': %lld bytes, more than a config holds (at most %d)", path,
                                                    (long long)sb.st_size, MAX_FILE);
    char *text = st ? NULL : malloc((size_t)sb.st_size + 1);
    if (!st && !text) st = mrec_fail(MREC_ERR_NOMEM, "the config '%s'", path);
    size_t size = 0;
    while (!st && size < (size_t)sb.st_size) {
        ssize_t got = read(fd, text + size, (size_t)sb.st_size - size);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break; /* a file that shrank is parsed as it now is */
        size += (size_t)got;
    }
    close(fd);
    if (!st) st = mrec_cfg_parse(c, text, size, path);
    free(text);
    return st;
}

const mrec_cfg_node *mrec_cfg_get(const mrec_cfg_node *map, const char *key) {
    for (const mrec_cfg_node *n = map && map->kind == MREC_CFG_MAP ? map->child : NULL; n; n = n->next)
        if (!strcmp(n->key, key)) return n;
    return NULL;
}

int mrec_cfg_count(const mrec_cfg_node *n) {
    int k = 0;
    for (const mrec_cfg_node *e = n && n->kind != MREC_CFG_SCALAR ? n->child : NULL; e; e = e->next) k++;
    return k;
}

mrec_status mrec_cfg_check_keys(const mrec_cfg *c, const mrec_cfg_node *map, const char *where, const char *const *allowed) {
    if (!map || map->kind != MREC_CFG_MAP)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s must be a map of settings", c->path, map ? map->line : 0, where);
    for (const mrec_cfg_node *n = map->child; n; n = n->next) {
        int known = 0;
        for (int k = 0; allowed[k] && !known; k++) known = !strcmp(n->key, allowed[k]);
        if (!known) {
            char list[512];
            int at = 0;
            for (int k = 0; allowed[k] && at < (int)sizeof list; k++) at += snprintf(list + at, sizeof list - at, "%s%s", k ? ", " : "", allowed[k]);
            return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: unknown key '%s' in %s (known: %s)", c->path, n->line, n->key, where, list);
        }
        for (const mrec_cfg_node *m = map->child; m != n; m = m->next)
            if (!strcmp(m->key, n->key))
                return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: key '%s' again in %s (first on line %d)", c->path, n->line, n->key, where,
                                 m->line);
    }
    return MREC_OK;
}

/* map[key] as a scalar; NULL and MREC_OK when absent and optional */
static mrec_status scalar(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, int required, const mrec_cfg_node **out) {
    *out = mrec_cfg_get(map, key);
    if (!*out) return required ? mrec_fail(MREC_ERR_FORMAT, "%s: line %d: '%s' is required here", c->path, map ? map->line : 0, key) : MREC_OK;
    if ((*out)->kind != MREC_CFG_SCALAR)
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: '%s' must be a single value, not a %s", c->path, (*out)->line, key,
                         (*out)->kind == MREC_CFG_MAP ? "map" : "list");
    return MREC_OK;
}

mrec_status mrec_cfg_string(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, int required, const char **out) {
    const mrec_cfg_node *n;
    mrec_status st = scalar(c, map, key, required, &n);
    if (!st && n) *out = n->value;
    return st;
}

mrec_status mrec_cfg_node_number(const mrec_cfg *c, const mrec_cfg_node *n, const char *what, double lo, double hi, double *out) {
    double v = 0;
    if (n->kind != MREC_CFG_SCALAR || n->quoted || mrec_parse_double(n->value, -DBL_MAX, DBL_MAX, &v))
        return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s must be a number, not '%s'", c->path, n->line, what,
                         n->kind == MREC_CFG_SCALAR ? n->value : n->kind == MREC_CFG_MAP ? "a map" : "a list");
    if (v < lo || v > hi) return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s = %g is outside [%g, %g]", c->path, n->line, what, v, lo, hi);
    *out = v;
    return MREC_OK;
}

mrec_status mrec_cfg_number(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, int required, double lo, double hi,
                            double *out) {
    const mrec_cfg_node *n;
    mrec_status st = scalar(c, map, key, required, &n);
    return st || !n ? st : mrec_cfg_node_number(c, n, key, lo, hi, out);
}

mrec_status mrec_cfg_int(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, int required, long lo, long hi, long *out) {
    double v = 0;
    const mrec_cfg_node *n;
    mrec_status st = scalar(c, map, key, required, &n);
    if (st || !n) return st;
    long whole;
    if (!n->quoted && !mrec_parse_int(n->value, LONG_MIN, LONG_MAX, &whole)) { /* exact, past 2^53 too */
        if (whole < lo || whole > hi)
            return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s = %ld is outside [%ld, %ld]", c->path, n->line, key, whole, lo, hi);
        *out = whole;
        return MREC_OK;
    }
    if ((st = mrec_cfg_node_number(c, n, key, (double)lo, (double)hi, &v))) return st;
    if (v != floor(v)) return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s must be a whole number, not %s", c->path, n->line, key, n->value);
    *out = (long)v;
    return MREC_OK;
}

mrec_status mrec_cfg_bool(const mrec_cfg *c, const mrec_cfg_node *map, const char *key, int required, int *out) {
    const mrec_cfg_node *n;
    mrec_status st = scalar(c, map, key, required, &n);
    if (st || !n) return st;
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes"}, *const no[] = {"false", "False", "FALSE", "no", "No"};
    for (int k = 0; k < 5 && !n->quoted; k++) {
        if (!strcmp(n->value, yes[k])) return *out = 1, MREC_OK;
        if (!strcmp(n->value, no[k])) return *out = 0, MREC_OK;
    }
    return mrec_fail(MREC_ERR_FORMAT, "%s: line %d: %s must be true or false, not '%s'", c->path, n->line, key, n->value);
}
