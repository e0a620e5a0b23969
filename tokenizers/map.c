/* map.c: the string -> id hash map (open addressing, linear probing) and
 * the error detail shared by the tokenizer files. */
#include "tok_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char detail[512];

mrec_tok_status tok_fail(mrec_tok_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return st;
}

const char *mrec_tok_error_detail(void) { return detail; }

const char *mrec_tok_strerror(mrec_tok_status st) {
    switch (st) {
    case MREC_TOK_OK:              return "ok";
    case MREC_TOK_ERR_NOMEM:       return "out of memory";
    case MREC_TOK_ERR_IO:          return "I/O error";
    case MREC_TOK_ERR_FORMAT:      return "malformed tokenizer file";
    case MREC_TOK_ERR_UNSUPPORTED: return "unsupported tokenizer";
    case MREC_TOK_ERR_ARG:         return "invalid argument";
    case MREC_TOK_ERR_SPACE:       return "buffer too small";
    }
    return "unknown status";
}

uint64_t tok_hash(const void *p, size_t n) {
    /* FNV-1a, then a final mix so linear probing sees spread-out slots. */
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

static int grow(tok_map *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    char **keys = calloc(cap, sizeof *keys);
    uint32_t *lens = malloc(cap * sizeof *lens);
    int32_t *vals = malloc(cap * sizeof *vals);
    if (!keys || !lens || !vals) {
        free(keys), free(lens), free(vals);
        return 0;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t at = tok_hash(m->keys[i], m->lens[i]) & (cap - 1);
        while (keys[at]) at = (at + 1) & (cap - 1);
        keys[at] = m->keys[i];
        lens[at] = m->lens[i];
        vals[at] = m->vals[i];
    }
    free(m->keys), free(m->lens), free(m->vals);
    m->keys = keys, m->lens = lens, m->vals = vals, m->cap = cap;
    return 1;
}

int tok_map_put(tok_map *m, const char *key, size_t len, int32_t val) {
    if ((m->n + 1) * 2 > m->cap && !grow(m)) return 0;
    size_t at = tok_hash(key, len) & (m->cap - 1);
    if (len > UINT32_MAX) return 0;
    while (m->keys[at]) {
        if (m->lens[at] == len && memcmp(m->keys[at], key, len) == 0) {
            m->vals[at] = val;
            return 1;
        }
        at = (at + 1) & (m->cap - 1);
    }
    char *k = malloc(len + 1);
    if (!k) return 0;
    memcpy(k, key, len);
    k[len] = '\0';
    m->keys[at] = k;
    m->lens[at] = (uint32_t)len;
    m->vals[at] = val;
    m->n++;
    if (len > m->max_len) m->max_len = len;
    return 1;
}

int32_t tok_map_get(const tok_map *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    size_t at = tok_hash(key, len) & (m->cap - 1);
    while (m->keys[at]) {
        if (m->lens[at] == len && memcmp(m->keys[at], key, len) == 0) return m->vals[at];
        at = (at + 1) & (m->cap - 1);
    }
    return -1;
}

void tok_map_free(tok_map *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys), free(m->lens), free(m->vals);
    memset(m, 0, sizeof *m);
}
