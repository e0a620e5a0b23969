/* saved.c: a trained recommender on disk, and back.
 *
 * A saved model is a folder:
 *   model.safetensors  "users" (n_users, d) and "items" (n_items, d), F32:
 *                      the model's scores as their dot products at the best
 *                      epoch (metadata scores "dot"); for ItemKNN instead
 *                      "neighbours.items" (n_items, k) I32 and
 *                      "neighbours.sims" F32, its scores being sums of
 *                      these over the user's items ("neighbours");
 *                      "seen.row_ptr" (n_users + 1) I64 and
 *                      "seen.items" (nnz) I32: each user's training items,
 *                      left out of recommendations; "param.<p>" F32: the
 *                      trained parameters, to train on from them. Its
 *                      metadata: format "mrec-recommender", version, model,
 *                      params, best_epoch, the CRC-32 of every tensor's bytes
 *                      ("crc32.<name>") and of both id files.
 *   users.tsv, items.tsv  "index<TAB>id" per line, index order (as a run's).
 *   model.json         the metadata again, for people and other tools; the
 *                      loader reads only the three files above.
 * The loader checks every tensor's name, type and shape against the counts,
 * every checksum, and the id files line by line, so a truncated, tampered or
 * mismatched folder is refused naming the file and what differs.
 */
#include "mrec_recsys.h"

#include "../nn/mrec_io.h"
#include "../nn/mrec_safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FORMAT_NAME "mrec-recommender"
#define FORMAT_VERSION "1"

static uint32_t crc_of(const void *data, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    for (const Bytef *p = data; n > 0;) { /* crc32 takes a uInt length */
        uInt step = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, step), p += step, n -= step;
    }
    return (uint32_t)c;
}

/* ---- id files ---- */

static mrec_status write_ids(const char *path, char *const *ids, int n, uint32_t *crc) {
    size_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(ids[i]) + 16;
    char *buf = malloc(len + 1);
    if (!buf) return mrec_fail(MREC_ERR_NOMEM, "%s: %d ids", path, n);
    size_t at = 0;
    for (int i = 0; i < n; i++) at += (size_t)snprintf(buf + at, len + 1 - at, "%d\t%s\n", i, ids[i]);
    *crc = crc_of(buf, at);
    mrec_atomic_file af;
    mrec_status st = mrec_atomic_begin(&af, path);
    if (!st) st = mrec_atomic_write(&af, buf, at);
    if (!st) st = mrec_atomic_commit(&af);
    free(buf);
    return st;
}

/* n lines "i<TAB>id", i counting from 0, ids non-empty and unique (the
 * lookup table finds a repeat). */
static mrec_status read_ids(const char *path, int n, uint32_t want_crc, char ***out) {
    *out = NULL;
    void *map;
    size_t size;
    mrec_status st = mrec_map_file(path, &map, &size);
    if (st) return st;
    const char *s = map, *end = s + size;
    char **ids = NULL;
    if (crc_of(s, size) != want_crc)
        st = mrec_fail(MREC_ERR_FORMAT, "%s: checksum differs from the one model.safetensors keeps (changed after saving?)", path);
    else if (!(ids = calloc((size_t)n + 1, sizeof *ids)))
        st = mrec_fail(MREC_ERR_NOMEM, "%s: %d ids", path, n);
    int i = 0;
    for (; !st && s < end && i < n; i++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s)), *tab = memchr(s, '\t', (size_t)(end - s));
        char want[16];
        int wl = snprintf(want, sizeof want, "%d", i);
        if (!nl || !tab || tab > nl || tab - s != wl || memcmp(s, want, (size_t)wl) || nl == tab + 1)
            st = mrec_fail(MREC_ERR_FORMAT, "%s: line %d is not \"%d<TAB>id\"", path, i + 1, i);
        else if (!(ids[i] = strndup(tab + 1, (size_t)(nl - tab - 1))))
            st = mrec_fail(MREC_ERR_NOMEM, "%s", path);
        s = nl ? nl + 1 : end;
    }
    if (!st && (i != n || s != end)) st = mrec_fail(MREC_ERR_FORMAT, "%s: %d ids where model.safetensors has %d", path, i, n);
    mrec_unmap_file(map, size);
    if (st) {
        for (int k = 0; ids && k < n; k++) free(ids[k]);
        free(ids);
        return st;
    }
    *out = ids;
    return MREC_OK;
}

/* ---- id lookup: open addressing over FNV-1a ---- */

static uint32_t fnv(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static mrec_status index_ids(mrec_saved_index *ix, char *const *ids, int n, const char *file) {
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n) cap <<= 1;
    ix->slot = malloc(sizeof *ix->slot * cap), ix->mask = cap - 1, ix->ids = ids;
    if (!ix->slot) return mrec_fail(MREC_ERR_NOMEM, "%s: index of %d ids", file, n);
    for (uint32_t k = 0; k < cap; k++) ix->slot[k] = -1;
    for (int i = 0; i < n; i++) {
        uint32_t k = fnv(ids[i]) & ix->mask;
        for (; ix->slot[k] >= 0; k = (k + 1) & ix->mask)
            if (!strcmp(ids[ix->slot[k]], ids[i]))
                return mrec_fail(MREC_ERR_FORMAT, "%s: id \"%s\" on lines %d and %d", file, ids[i], ix->slot[k] + 1, i + 1);
        ix->slot[k] = i;
    }
    return MREC_OK;
}

int mrec_saved_find(const mrec_saved_index *ix, const char *id) {
    if (!ix->slot || !id) return -1;
    for (uint32_t k = fnv(id) & ix->mask; ix->slot[k] >= 0; k = (k + 1) & ix->mask)
        if (!strcmp(ix->ids[ix->slot[k]], id)) return ix->slot[k];
    return -1;
}

/* ---- writing ---- */

mrec_status mrec_saved_write(const char *dir, const mrec_saved_model *m) {
    int knn = m->knn_k > 0;
    if (knn ? !m->nbr || !m->sim : m->dim < 1 || !m->users || !m->items)
        return mrec_fail(MREC_ERR_UNSUPPORTED, "%s: the %s has neither vectors nor neighbour lists to save", dir, m->model);
    if (m->n_params > MREC_MAX_PARAMS) return mrec_fail(MREC_ERR_ARG, "%s: %d parameters", dir, m->n_params);
    char path[4200];
    uint32_t ucrc, icrc;
    snprintf(path, sizeof path, "%s/users.tsv", dir);
    mrec_status st = write_ids(path, m->user_ids, m->n_users, &ucrc);
    snprintf(path, sizeof path, "%s/items.tsv", dir);
    if (!st) st = write_ids(path, m->item_ids, m->n_items, &icrc);
    if (st) return st;

    enum { FIXED = 4 };
    int n_t = FIXED + m->n_params;
    int64_t nnz = m->seen_ptr[m->n_users];
    /* what the scores are made of: the vectors, or the neighbour lists */
    int64_t shapes[FIXED + MREC_MAX_PARAMS][2] = {{m->n_users, m->dim}, {m->n_items, m->dim}, {m->n_users + 1}, {nnz}};
    char names[FIXED + MREC_MAX_PARAMS][32] = {"users", "items", "seen.row_ptr", "seen.items"};
    mrec_st_tensor_in t[FIXED + MREC_MAX_PARAMS] = {
        {names[0], MREC_F32, 2, shapes[0], m->users},
        {names[1], MREC_F32, 2, shapes[1], m->items},
        {names[2], MREC_I64, 1, shapes[2], m->seen_ptr},
        {names[3], MREC_I32, 1, shapes[3], m->seen},
    };
    size_t bytes[FIXED + MREC_MAX_PARAMS] = {sizeof(float) * (size_t)m->n_users * m->dim, sizeof(float) * (size_t)m->n_items * m->dim,
                                             sizeof(int64_t) * ((size_t)m->n_users + 1), sizeof(int32_t) * (size_t)nnz};
    if (knn) {
        snprintf(names[0], sizeof names[0], "neighbours.items"), snprintf(names[1], sizeof names[1], "neighbours.sims");
        shapes[0][0] = shapes[1][0] = m->n_items, shapes[0][1] = shapes[1][1] = m->knn_k;
        t[0] = (mrec_st_tensor_in){names[0], MREC_I32, 2, shapes[0], m->nbr};
        t[1] = (mrec_st_tensor_in){names[1], MREC_F32, 2, shapes[1], m->sim};
        bytes[0] = sizeof(int32_t) * (size_t)m->n_items * m->knn_k, bytes[1] = sizeof(float) * (size_t)m->n_items * m->knn_k;
    }
    for (int p = 0; p < m->n_params; p++) {
        snprintf(names[FIXED + p], sizeof names[0], "param.%d", p);
        shapes[FIXED + p][0] = m->size[p], bytes[FIXED + p] = sizeof(float) * (size_t)m->size[p];
        t[FIXED + p] = (mrec_st_tensor_in){names[FIXED + p], MREC_F32, 1, shapes[FIXED + p], m->param[p]};
    }
    /* metadata: what the model is, and a checksum of everything */
    enum { MAX_META = 8 + FIXED + MREC_MAX_PARAMS };
    char keys[MAX_META][48], vals[MAX_META][512];
    int n_meta = 0;
#define META(...) snprintf(vals[n_meta++], sizeof vals[0], __VA_ARGS__)
    snprintf(keys[n_meta], sizeof keys[0], "format"), META(FORMAT_NAME);
    snprintf(keys[n_meta], sizeof keys[0], "version"), META(FORMAT_VERSION);
    snprintf(keys[n_meta], sizeof keys[0], "model"), META("%s", m->model);
    snprintf(keys[n_meta], sizeof keys[0], "params"), META("%s", m->params);
    snprintf(keys[n_meta], sizeof keys[0], "scores"), META(knn ? "neighbours" : "dot");
    snprintf(keys[n_meta], sizeof keys[0], "best_epoch"), META("%d", m->best_epoch);
    snprintf(keys[n_meta], sizeof keys[0], "crc32.users.tsv"), META("%08" PRIx32, ucrc);
    snprintf(keys[n_meta], sizeof keys[0], "crc32.items.tsv"), META("%08" PRIx32, icrc);
    for (int k = 0; k < n_t; k++) snprintf(keys[n_meta], sizeof keys[0], "crc32.%s", names[k]), META("%08" PRIx32, crc_of(t[k].data, bytes[k]));
#undef META
    const char *kp[MAX_META], *vp[MAX_META];
    for (int k = 0; k < n_meta; k++) kp[k] = keys[k], vp[k] = vals[k];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st = mrec_safetensors_write(path, t, n_t, kp, vp, n_meta);
    if (st) return st;

    /* model.json: the same, for people */
    snprintf(path, sizeof path, "%s/model.json", dir);
    mrec_atomic_file af;
    if ((st = mrec_atomic_begin(&af, path))) return st;
    fprintf(af.f, "{\n  \"format\": \"%s\",\n  \"version\": %s,\n  \"model\": \"%s\",\n  \"params\": \"%s\",\n", FORMAT_NAME,
            FORMAT_VERSION, m->model, m->params);
    fprintf(af.f, "  \"best_epoch\": %d,\n  \"users\": %d,\n  \"items\": %d,\n  \"scores\": \"%s\",\n  \"%s\": %d,\n",
            m->best_epoch, m->n_users, m->n_items, knn ? "neighbours" : "dot", knn ? "neighbours" : "dim", knn ? m->knn_k : m->dim);
    fprintf(af.f, "  \"training_pairs\": %" PRId64 ",\n", nnz);
    fprintf(af.f, "  \"parameters\": [");
    for (int p = 0; p < m->n_params; p++) fprintf(af.f, "%s%" PRId64, p ? ", " : "", m->size[p]);
    fprintf(af.f, "]\n}\n");
    return mrec_atomic_commit(&af);
}

/* ---- reading ---- */

static mrec_status meta_crc(const mrec_safetensors *st, const char *name, uint32_t *crc) {
    char key[64];
    snprintf(key, sizeof key, "crc32.%s", name);
    const char *v = mrec_safetensors_meta(st, key);
    char *end;
    errno = 0;
    unsigned long c = v ? strtoul(v, &end, 16) : 0;
    if (!v || !*v || *end || errno || c > 0xffffffffUL)
        return mrec_fail(MREC_ERR_FORMAT, "%s: metadata %s is %s", st->path, key, v ? "not a CRC-32" : "missing");
    *crc = (uint32_t)c;
    return MREC_OK;
}

/* The tensor's bytes against the checksum written with it. */
static mrec_status check_crc(const mrec_safetensors *st, const mrec_st_entry *e) {
    uint32_t want;
    mrec_status s = meta_crc(st, e->name, &want);
    if (!s && crc_of(e->data, (size_t)(e->end - e->begin)) != want)
        s = mrec_fail(MREC_ERR_FORMAT, "%s: tensor %s: checksum differs (the file changed after saving)", st->path, e->name);
    return s;
}

static mrec_status take(const mrec_safetensors *st, const char *name, mrec_dtype dtype, int ndim, const int64_t *shape,
                        void **out) {
    const mrec_st_entry *e;
    mrec_status s = mrec_safetensors_expect(st, name, ndim, shape, &e);
    if (!s && e->dtype != dtype) s = mrec_fail(MREC_ERR_DTYPE, "%s: tensor %s has another element type than mrec saves", st->path, name);
    if (!s) s = check_crc(st, e);
    if (s) return s;
    size_t n = (size_t)(e->end - e->begin);
    if (!(*out = malloc(n ? n : 1))) return mrec_fail(MREC_ERR_NOMEM, "%s: tensor %s", st->path, name);
    memcpy(*out, e->data, n);
    return MREC_OK;
}

static mrec_status meta_int(const mrec_safetensors *st, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    const char *v = mrec_safetensors_meta(st, key);
    char *end;
    errno = 0;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || errno || x < lo || x > hi)
        return mrec_fail(MREC_ERR_FORMAT, "%s: metadata %s is %s", st->path, key, v ? "out of range" : "missing");
    *out = x;
    return MREC_OK;
}

/* For each item j, the items i keeping it as a neighbour with sim(i, j), in
 * the order ItemKNN's scoring walks them (i, then rank, ascending), so that
 * a user's sums are added in the same order and come out the same bits. */
static mrec_status transpose_neighbours(mrec_saved_model *m, const char *path) {
    size_t ik = (size_t)m->n_items * m->knn_k;
    int64_t *fill = calloc((size_t)m->n_items + 1, sizeof *fill);
    m->by_ptr = calloc((size_t)m->n_items + 1, sizeof *m->by_ptr);
    m->by_item = malloc(sizeof *m->by_item * (ik + 1)), m->by_sim = malloc(sizeof *m->by_sim * (ik + 1));
    if (!fill || !m->by_ptr || !m->by_item || !m->by_sim) {
        free(fill);
        return mrec_fail(MREC_ERR_NOMEM, "%s: neighbour lists", path);
    }
    for (size_t e = 0; e < ik; e++)
        if (m->nbr[e] >= 0) m->by_ptr[m->nbr[e] + 1]++;
    for (int j = 0; j < m->n_items; j++) m->by_ptr[j + 1] += m->by_ptr[j];
    for (int i = 0; i < m->n_items; i++)
        for (int r = 0; r < m->knn_k; r++) {
            int j = m->nbr[(size_t)i * m->knn_k + r];
            if (j < 0) continue;
            int64_t at = m->by_ptr[j] + fill[j]++;
            m->by_item[at] = i, m->by_sim[at] = m->sim[(size_t)i * m->knn_k + r];
        }
    free(fill);
    return MREC_OK;
}

mrec_status mrec_saved_read(mrec_saved_model *m, const char *dir) {
    memset(m, 0, sizeof *m);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    mrec_safetensors st;
    mrec_status s = mrec_safetensors_open(&st, path);
    if (s) return s;
    const char *format = mrec_safetensors_meta(&st, "format"), *version = mrec_safetensors_meta(&st, "version");
    const char *model = mrec_safetensors_meta(&st, "model"), *params = mrec_safetensors_meta(&st, "params");
    if (!format || strcmp(format, FORMAT_NAME))
        s = mrec_fail(MREC_ERR_FORMAT, "%s: not a saved mrec recommender (metadata format is %s%s%s)", path, format ? "\"" : "",
                      format ? format : "missing", format ? "\"" : "");
    else if (!version || strcmp(version, FORMAT_VERSION))
        s = mrec_fail(MREC_ERR_UNSUPPORTED, "%s: saved in format version %s; this mrec reads version %s", path,
                      version ? version : "(none)", FORMAT_VERSION);
    else if (!model || !params || strlen(model) >= sizeof m->model || strlen(params) >= sizeof m->params)
        s = mrec_fail(MREC_ERR_FORMAT, "%s: metadata model or params missing or too long", path);
    if (!s) {
        snprintf(m->model, sizeof m->model, "%s", model), snprintf(m->params, sizeof m->params, "%s", params);
        int64_t best = 0;
        if (!(s = meta_int(&st, "best_epoch", 0, INT32_MAX, &best))) m->best_epoch = (int)best;
    }
    /* what the scores are made of; the counts come from those tensors' shapes, then everything is checked against them */
    const char *scores = s ? NULL : mrec_safetensors_meta(&st, "scores");
    int knn = scores && !strcmp(scores, "neighbours");
    if (!s && (!scores || (!knn && strcmp(scores, "dot"))))
        s = mrec_fail(MREC_ERR_FORMAT, "%s: metadata scores is %s (dot or neighbours)", path, scores ? scores : "missing");
    const mrec_st_entry *rp = s ? NULL : mrec_safetensors_find(&st, "seen.row_ptr");
    if (!s && (!rp || rp->ndim != 1 || rp->shape[0] < 2 || rp->shape[0] > INT32_MAX))
        s = mrec_fail(MREC_ERR_SHAPE, "%s: seen.row_ptr must be (n_users + 1)", path);
    if (!s) m->n_users = (int)(rp->shape[0] - 1);
    if (!s && knn) {
        const mrec_st_entry *a = mrec_safetensors_find(&st, "neighbours.items"), *b = mrec_safetensors_find(&st, "neighbours.sims");
        if (!a || !b || a->ndim != 2 || b->ndim != 2 || a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1] || a->shape[0] < 1 ||
            a->shape[0] >= INT32_MAX || a->shape[1] < 1 || a->shape[1] > a->shape[0])
            s = mrec_fail(MREC_ERR_SHAPE, "%s: neighbours.items and neighbours.sims must be (n_items, k) tensors", path);
        if (!s) m->n_items = (int)a->shape[0], m->knn_k = (int)a->shape[1];
        int64_t sk[2] = {m->n_items, m->knn_k};
        if (!s) s = take(&st, "neighbours.items", MREC_I32, 2, sk, (void **)&m->nbr);
        if (!s) s = take(&st, "neighbours.sims", MREC_F32, 2, sk, (void **)&m->sim);
        for (size_t e = 0; !s && e < (size_t)m->n_items * m->knn_k; e++)
            if (m->nbr[e] < -1 || m->nbr[e] >= m->n_items || !isfinite(m->sim[e]))
                s = mrec_fail(MREC_ERR_FORMAT, "%s: neighbour %zu of item %zu is not an item or its similarity not finite", path,
                              e % (size_t)m->knn_k, e / (size_t)m->knn_k);
    } else if (!s) {
        const mrec_st_entry *u = mrec_safetensors_find(&st, "users"), *i = mrec_safetensors_find(&st, "items");
        if (!u || !i || u->ndim != 2 || i->ndim != 2 || u->shape[1] != i->shape[1] || u->shape[0] != m->n_users || i->shape[0] < 1 ||
            i->shape[0] >= INT32_MAX || u->shape[1] < 1 || u->shape[1] > (1 << 20))
            s = mrec_fail(MREC_ERR_SHAPE, "%s: users and items must be (n_users, d) and (n_items, d) tensors", path);
        if (!s) m->n_items = (int)i->shape[0], m->dim = (int)u->shape[1];
        int64_t su[2] = {m->n_users, m->dim}, si[2] = {m->n_items, m->dim};
        if (!s) s = take(&st, "users", MREC_F32, 2, su, (void **)&m->users);
        if (!s) s = take(&st, "items", MREC_F32, 2, si, (void **)&m->items);
    }
    int64_t sp[1] = {(int64_t)m->n_users + 1};
    if (!s) s = take(&st, "seen.row_ptr", MREC_I64, 1, sp, (void **)&m->seen_ptr);
    const mrec_st_entry *seen = s ? NULL : mrec_safetensors_find(&st, "seen.items");
    if (!s && (!seen || seen->ndim != 1 || m->seen_ptr[0] != 0 || m->seen_ptr[m->n_users] != seen->shape[0]))
        s = mrec_fail(MREC_ERR_SHAPE, "%s: seen.items does not match seen.row_ptr", path);
    for (int64_t r = 0; !s && r < m->n_users; r++)
        if (m->seen_ptr[r + 1] < m->seen_ptr[r]) s = mrec_fail(MREC_ERR_FORMAT, "%s: seen.row_ptr decreases at user %lld", path, (long long)r);
    if (!s) s = take(&st, "seen.items", MREC_I32, 1, seen->shape, (void **)&m->seen);
    for (int64_t e = 0; !s && e < m->seen_ptr[m->n_users]; e++)
        if (m->seen[e] < 0 || m->seen[e] >= m->n_items)
            s = mrec_fail(MREC_ERR_FORMAT, "%s: seen.items[%lld] = %d is not an item", path, (long long)e, m->seen[e]);
    /* the parameters: param.0, param.1, ... as many as there are */
    for (int p = 0; !s && p < MREC_MAX_PARAMS; p++) {
        char name[32];
        snprintf(name, sizeof name, "param.%d", p);
        const mrec_st_entry *e = mrec_safetensors_find(&st, name);
        if (!e) break;
        if (e->ndim != 1) {
            s = mrec_fail(MREC_ERR_SHAPE, "%s: %s is not 1-d", path, name);
            break;
        }
        m->size[p] = e->shape[0];
        if (!(s = take(&st, name, MREC_F32, 1, e->shape, (void **)&m->param[p]))) m->n_params = p + 1;
    }
    for (int k = 0; !s && k < st.n_tensors; k++) { /* nothing else: a name we do not know is a file we do not understand */
        const char *n = st.tensors[k].name;
        int known = (knn ? !strcmp(n, "neighbours.items") || !strcmp(n, "neighbours.sims") : !strcmp(n, "users") || !strcmp(n, "items")) ||
                    !strcmp(n, "seen.row_ptr") || !strcmp(n, "seen.items");
        int p;
        char tail;
        if (!known && sscanf(n, "param.%d%c", &p, &tail) == 1 && p >= 0 && p < m->n_params) known = 1;
        if (!known) s = mrec_fail(MREC_ERR_FORMAT, "%s: unexpected tensor %s", path, n);
    }
    uint32_t ucrc = 0, icrc = 0;
    if (!s) s = meta_crc(&st, "users.tsv", &ucrc);
    if (!s) s = meta_crc(&st, "items.tsv", &icrc);
    mrec_safetensors_close(&st);
    if (!s) snprintf(path, sizeof path, "%s/users.tsv", dir), s = read_ids(path, m->n_users, ucrc, &m->user_ids);
    if (!s) s = index_ids(&m->user_index, m->user_ids, m->n_users, path);
    if (!s) snprintf(path, sizeof path, "%s/items.tsv", dir), s = read_ids(path, m->n_items, icrc, &m->item_ids);
    if (!s) s = index_ids(&m->item_index, m->item_ids, m->n_items, path);
    if (!s && knn) s = transpose_neighbours(m, path);
    if (!s && !knn && !(m->item_unit = malloc(sizeof *m->item_unit * (size_t)m->n_items * m->dim)))
        s = mrec_fail(MREC_ERR_NOMEM, "%s: unit vectors of %d items", dir, m->n_items);
    for (int i = 0; !s && !knn && i < m->n_items; i++) { /* for mrec_saved_similar; a zero vector is similar to nothing */
        const float *v = m->items + (size_t)i * m->dim;
        double ss = 0;
        for (int d = 0; d < m->dim; d++) ss += (double)v[d] * v[d];
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int d = 0; d < m->dim; d++) m->item_unit[(size_t)i * m->dim + d] = v[d] * inv;
    }
    if (s) {
        mrec_status keep = s;
        char detail[1024];
        snprintf(detail, sizeof detail, "%s", mrec_error_detail());
        mrec_saved_free(m);
        return mrec_fail(keep, "%s", detail);
    }
    return MREC_OK;
}

void mrec_saved_free(mrec_saved_model *m) {
    free(m->users), free(m->items), free(m->item_unit), free(m->seen_ptr), free(m->seen);
    free(m->nbr), free(m->sim), free(m->by_ptr), free(m->by_item), free(m->by_sim);
    for (int p = 0; p < m->n_params; p++) free(m->param[p]);
    for (int k = 0; m->user_ids && k < m->n_users; k++) free(m->user_ids[k]);
    for (int k = 0; m->item_ids && k < m->n_items; k++) free(m->item_ids[k]);
    free(m->user_ids), free(m->item_ids), free(m->user_index.slot), free(m->item_index.slot);
    memset(m, 0, sizeof *m);
}

/* ---- answering from a saved model ---- */

/* ItemKNN's sums for user u, in its order: the user's items ascending, each one's keepers in turn. */
static void neighbour_row(const mrec_saved_model *m, int u, float *row) {
    memset(row, 0, sizeof *row * (size_t)m->n_items);
    for (int64_t q = m->seen_ptr[u]; q < m->seen_ptr[u + 1]; q++) {
        int j = m->seen[q];
        for (int64_t p = m->by_ptr[j]; p < m->by_ptr[j + 1]; p++) row[m->by_item[p]] += m->by_sim[p];
    }
}

mrec_status mrec_saved_score(void *scorer, int u0, int n, float *scores) {
    const mrec_saved_scorer *s = scorer;
    const mrec_saved_model *m = s->m;
    if (m->knn_k > 0) {
        for (int b = 0; b < n; b++) neighbour_row(m, u0 + b, scores + (size_t)b * m->n_items);
        return MREC_OK;
    }
    return mrec_gemm(s->ctx, scores, m->users + (size_t)u0 * m->dim, m->items, NULL, 1, 0, 0, 1, n, m->n_items, m->dim, m->dim,
                     m->dim, m->n_items);
}

/* The best k of row (n_items), items whose score is -inf left out: *n of them. */
static mrec_status best_of_row(mrec_context *ctx, const float *row, int n_items, int k, int32_t *items, float *scores, int *n) {
    if (k > n_items) k = n_items;
    mrec_status st = mrec_topk_rows(ctx, items, scores, row, 1, n_items, k);
    int kept = 0;
    while (!st && kept < k && scores[kept] != -INFINITY) kept++;
    *n = st ? 0 : kept;
    return st;
}

/* mrec_recommend scored u in a block of MREC_RANK_BLOCK users (the last
 * one shorter), and a GEMM row's bits depend only on whether its GEMM had
 * at most MREC_GEMM_FEW_ROWS rows; so u is scored in a GEMM of the same
 * kind, of 1 or FEW_ROWS + 1 rows. */
mrec_status mrec_saved_user_scores(const mrec_saved_model *m, mrec_context *ctx, int u, float *rows, float **row) {
    if (m->knn_k > 0) return neighbour_row(m, u, rows), *row = rows, MREC_OK;
    int u0 = u / MREC_RANK_BLOCK * MREC_RANK_BLOCK, in_block = m->n_users - u0 < MREC_RANK_BLOCK ? m->n_users - u0 : MREC_RANK_BLOCK;
    int tall = in_block > MREC_GEMM_FEW_ROWS, first = u;
    if (tall && first + MREC_GEMM_FEW_ROWS + 1 > m->n_users) first = m->n_users - (MREC_GEMM_FEW_ROWS + 1);
    mrec_saved_scorer s = {m, ctx};
    *row = rows + (size_t)(u - first) * m->n_items;
    return mrec_saved_score(&s, first, tall ? MREC_GEMM_FEW_ROWS + 1 : 1, rows);
}

mrec_status mrec_saved_recommend(const mrec_saved_model *m, mrec_context *ctx, int user, int k, int32_t *items, float *scores,
                                 int *n, float *rows) {
    float *row;
    mrec_status st = mrec_saved_user_scores(m, ctx, user, rows, &row);
    if (!st) st = mrec_mask_rows(ctx, row, m->seen_ptr, m->seen, user, 1, m->n_items);
    return st ? st : best_of_row(ctx, row, m->n_items, k, items, scores, n);
}

mrec_status mrec_saved_similar(const mrec_saved_model *m, mrec_context *ctx, int item, int k, int32_t *items, float *sims, int *n,
                               float *row) {
    if (m->knn_k > 0) { /* ItemKNN's own neighbours, best first */
        int kept = 0;
        for (int r = 0; r < m->knn_k && kept < k; r++) {
            int j = m->nbr[(size_t)item * m->knn_k + r];
            if (j >= 0) items[kept] = j, sims[kept++] = m->sim[(size_t)item * m->knn_k + r];
        }
        *n = kept;
        return MREC_OK;
    }
    mrec_status st = mrec_gemm(ctx, row, m->item_unit + (size_t)item * m->dim, m->item_unit, NULL, 1, 0, 0, 1, 1, m->n_items, m->dim,
                               m->dim, m->dim, m->n_items);
    if (st) return st;
    row[item] = -INFINITY; /* not similar to itself */
    return best_of_row(ctx, row, m->n_items, k, items, sims, n);
}
