/* checkpoint.c: a training run's state between two epochs, so that a run
 * stopped on the way (killed, its machine taken back) goes on where it was.
 * mrec_fit writes one after each evaluation and, asked to resume, starts
 * from it: the parameters, Adam's moments and step counts, the sampler's
 * order and generator, the model's own state words and arrays
 * (mrec_model.state, .array: CLIP-E2E's towers and their moments), the
 * best epoch so far with its metrics and what was kept there, and the log
 * so far. The later epochs read nothing else, so a resumed run takes the
 * same steps, and ends with the same bits, as one never stopped.
 *
 * One safetensors file: the arrays as tensors, the numbers in its metadata
 * (doubles printed to 17 digits, which read back to the same bits), and
 * what identifies the run (model, data sizes, seed, batch size, learning
 * rate) checked on reading: a checkpoint of another run is refused, naming
 * the file and what differs.
 */
#include "recsys_internal.h"

#include "../nn/mrec_safetensors.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_META 32

/* ---- writing ---- */

typedef struct {
    mrec_st_tensor_in *t; /* (cap) */
    int64_t *shape;
    char (*names)[32];
    int n, cap, over; /* over: more added than cap (a miscount, refused) */
    const char *key[MAX_META];
    char *value[MAX_META];
    int n_meta;
} writer;

static void add(writer *w, const char *name, mrec_dtype dtype, int64_t n, const void *data) {
    if (w->n == w->cap) {
        w->over = 1;
        return;
    }
    int k = w->n++;
    snprintf(w->names[k], sizeof w->names[k], "%s", name);
    w->shape[k] = n;
    w->t[k] = (mrec_st_tensor_in){w->names[k], dtype, 1, &w->shape[k], data};
}

static void meta(writer *w, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void meta(writer *w, const char *key, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    w->key[w->n_meta] = key, w->value[w->n_meta++] = strdup(buf);
}

/* n words as "a,b,c" */
static char *words(const uint64_t *v, int n) {
    char *s = malloc((size_t)n * 21 + 1);
    if (!s) return NULL;
    size_t at = 0;
    s[0] = 0;
    for (int i = 0; i < n; i++) at += (size_t)sprintf(s + at, i ? ",%" PRIu64 : "%" PRIu64, v[i]);
    return s;
}

/* What identifies the run: the same on writing and on reading. The device and precision too: the arithmetic
 * differs between them, so a run resumed on another could not end with the bits of one never stopped. */
static void identity(writer *w, const mrec_fit_progress *p, const mrec_context *ctx) {
    const mrec_model *m = p->model;
    const mrec_fit_options *o = p->opt;
    meta(w, "model", "%s", m->name ? m->name : "model");
    meta(w, "users", "%d", p->sampler->train->n_rows);
    meta(w, "items", "%d", p->sampler->train->n_cols);
    meta(w, "pairs", "%" PRId64, p->sampler->n);
    meta(w, "seed", "%" PRIu64, o->seed);
    meta(w, "batch_size", "%d", o->batch_size);
    meta(w, "sampler", "%s", o->sample_users ? "users" : "pairs");
    meta(w, "lr", "%.9g", (double)o->lr);
    meta(w, "weight_decay", "%.9g", (double)o->weight_decay);
    meta(w, "lr_decay", "%.9g:%d", (double)o->lr_decay, o->lr_decay_every);
    meta(w, "select", "%s@%d", mrec_metric_name(o->select_metric), o->select_k);
    meta(w, "keep", "top %d, model %d", o->save_topk > 0 ? o->save_topk : 0, o->keep_model != 0);
    meta(w, "layout", "%d parameters, %d state words, %d arrays", m->n_params, m->n_state, m->n_arrays);
    meta(w, "device", "%s, %s", mrec_device_name(ctx->device), mrec_precision_name(ctx->precision));
}

/* n floats at src (on ctx's device) into a new host copy, added to w as `name`; the copy is left in *host */
static mrec_status add_copy(writer *w, const char *path, const char *name, const float *src, int64_t n, float **host, mrec_context *ctx) {
    if (!(*host = malloc(sizeof(float) * (size_t)(n ? n : 1)))) return mrec_fail(MREC_ERR_NOMEM, "%s: %s (%" PRId64 " floats)", path, name, n);
    add(w, name, MREC_F32, n, *host);
    return mrec_copy_to_host(ctx, *host, src, sizeof(float) * (size_t)n);
}

mrec_status mrec_checkpoint_write(const char *path, const mrec_fit_progress *p, mrec_context *ctx) {
    const mrec_model *m = p->model;
    const mrec_optimizer *a = p->adam;
    const mrec_fit_result *r = p->out;
    /* the host copies: three per parameter (it and Adam's moments), one per array of the model's */
    int n_host = 3 * m->n_params + m->n_arrays, cap = n_host + m->n_params + 10;
    writer *w = calloc(1, sizeof *w);
    float **host = calloc((size_t)n_host + 1, sizeof *host);
    if (w) {
        w->t = calloc((size_t)cap, sizeof *w->t), w->shape = calloc((size_t)cap, sizeof *w->shape);
        w->names = calloc((size_t)cap, sizeof *w->names);
    }
    mrec_status st = w && host && w->t && w->shape && w->names ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "%s: a checkpoint", path);
    if (!st) w->cap = cap;
    /* the parameters and their moments, and the model's arrays, from wherever they live */
    for (int q = 0; q < m->n_params && !st; q++) {
        const float *src[3] = {m->param[q], a->m[q], a->v[q]};
        static const char *const what[3] = {"param", "adam.m", "adam.v"};
        for (int k = 0; k < 3 && !st; k++) {
            char name[32];
            snprintf(name, sizeof name, "%s.%d", what[k], q);
            st = add_copy(w, path, name, src[k], m->size[q], &host[3 * q + k], ctx);
        }
    }
    for (int q = 0; q < m->n_arrays && !st; q++) {
        char name[32];
        snprintf(name, sizeof name, "array.%d", q);
        st = add_copy(w, path, name, m->array[q], m->array_size[q], &host[3 * m->n_params + q], ctx);
    }
    if (!st) {
        const mrec_bpr_sampler *s = p->sampler;
        add(w, "sampler.user", MREC_I32, s->n, s->user);
        add(w, "sampler.pos", MREC_I32, s->n, s->pos);
        add(w, "sampler.users", MREC_I32, s->n_users, s->users);
        add(w, "best.valid", MREC_F64, MREC_METRIC_COUNT * MREC_EVAL_MAX_K, r->valid.value);
        add(w, "best.test", MREC_F64, MREC_METRIC_COUNT * MREC_EVAL_MAX_K, r->test.value);
        int U = s->train->n_rows, I = s->train->n_cols;
        if (r->topk) add(w, "kept.topk", MREC_I32, (int64_t)U * p->opt->save_topk, r->topk);
        if (r->users) add(w, "kept.users", MREC_F32, (int64_t)U * r->embed_dim, r->users);
        if (r->items) add(w, "kept.items", MREC_F32, (int64_t)I * r->embed_dim, r->items);
        if (r->nbr) add(w, "kept.nbr", MREC_I32, (int64_t)I * r->knn_k, r->nbr);
        if (r->sim) add(w, "kept.sim", MREC_F32, (int64_t)I * r->knn_k, r->sim);
        for (int q = 0; q < r->n_params; q++) {
            char name[32];
            snprintf(name, sizeof name, "kept.param.%d", q);
            add(w, name, MREC_F32, m->size[q], r->param[q]);
        }
        identity(w, p, ctx);
        uint64_t state[MREC_MAX_STATE], steps[MREC_MAX_PARAMS];
        for (int k = 0; k < m->n_state; k++) state[k] = *m->state[k];
        for (int q = 0; q < a->n_params; q++) steps[q] = (uint64_t)a->steps[q];
        meta(w, "format", "mrec checkpoint 1");
        meta(w, "epoch", "%d", p->epoch);
        meta(w, "best", "%.17g", p->best);
        meta(w, "best_epoch", "%d", r->best_epoch);
        meta(w, "bad_evals", "%d", p->bad_evals);
        meta(w, "rng", "%" PRIu64, p->rng);
        meta(w, "adam.step", "%" PRId64, a->step);
        w->key[w->n_meta] = "adam.steps", w->value[w->n_meta++] = words(steps, a->n_params);
        w->key[w->n_meta] = "state", w->value[w->n_meta++] = words(state, m->n_state);
        meta(w, "valid.users", "%d", r->valid.n_users);
        meta(w, "test.users", "%d", r->test.n_users);
        meta(w, "embed_dim", "%d", r->embed_dim);
        meta(w, "knn_k", "%d", r->knn_k);
        meta(w, "seconds", "%.17g,%.17g,%.17g", r->train_seconds, r->eval_seconds, r->first_epoch_seconds);
        w->key[w->n_meta] = "log", w->value[w->n_meta++] = strdup(p->log ? p->log : "");
        for (int k = 0; k < w->n_meta && !st; k++)
            if (!w->value[k]) st = mrec_fail(MREC_ERR_NOMEM, "%s: a checkpoint's header", path);
    }
    if (!st && w->over) st = mrec_fail(MREC_ERR_ARG, "%s: more tensors than the %d counted", path, w->cap);
    if (!st) st = mrec_safetensors_write(path, w->t, w->n, w->key, (const char *const *)w->value, w->n_meta);
    for (int k = 0; w && k < w->n_meta; k++) free(w->value[k]);
    for (int k = 0; host && k < n_host; k++) free(host[k]);
    if (w) free(w->t), free(w->shape), free(w->names);
    free(host), free(w);
    return st;
}

/* ---- reading ---- */

static mrec_status need(const mrec_safetensors *f, const char *key, const char **out) {
    *out = mrec_safetensors_meta(f, key);
    return *out ? MREC_OK : mrec_fail(MREC_ERR_FORMAT, "%s: not a checkpoint of mrec train: no '%s'", f->path, key);
}

/* n words of "a,b,c" */
static mrec_status read_words(const mrec_safetensors *f, const char *key, uint64_t *v, int n) {
    const char *s;
    mrec_status st = need(f, key, &s);
    for (int i = 0; !st && i < n; i++) {
        char *end;
        v[i] = strtoull(s, &end, 10);
        if (end == s || (*end != (i + 1 < n ? ',' : '\0')))
            return mrec_fail(MREC_ERR_FORMAT, "%s: '%s' is not %d numbers (this run's model keeps %d)", f->path, key, n, n);
        s = end + (*end == ',');
    }
    if (!st && n == 0 && *s) return mrec_fail(MREC_ERR_FORMAT, "%s: '%s' holds state this run's model does not keep", f->path, key);
    return st;
}

/* Tensor `name` of n elements of dtype into out (host memory), or onto ctx's device (dev). */
static mrec_status take(const mrec_safetensors *f, const char *name, mrec_dtype dtype, int64_t n, void *out, mrec_context *dev) {
    const mrec_st_entry *e;
    mrec_status st = mrec_safetensors_expect(f, name, 1, &n, &e);
    if (!st && e->dtype != dtype)
        st = mrec_fail(MREC_ERR_FORMAT, "%s: %s is %s, not %s", f->path, name, mrec_dtype_name(e->dtype), mrec_dtype_name(dtype));
    size_t bytes = mrec_dtype_size(dtype) * (size_t)n;
    if (!st) st = dev ? mrec_copy_to_device(dev, out, e->data, bytes) : (memcpy(out, e->data, bytes), MREC_OK);
    return st;
}

static int by_key(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The sampler's arrays as read hold what every draw leaves there: training pairs (MMRec's sampler: all of them,
 * in the order the next epoch shuffles; by users: drawn pairs) and the users with pairs in some order. Anything
 * else would send the next draw outside the data, so it is refused. */
static mrec_status check_order(const char *path, const mrec_bpr_sampler *s, int by_users) {
    const mrec_user_items *t = s->train;
    int64_t n = s->n;
    uint64_t *got = malloc(sizeof *got * (size_t)(n + 1)), *want = malloc(sizeof *want * (size_t)(n + 1));
    mrec_status st = got && want ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "%s: checking the sampler's %" PRId64 " pairs", path, n);
    for (int64_t k = 0; k < n && !st; k++) {
        if (s->user[k] < 0 || s->user[k] >= t->n_rows || s->pos[k] < 0 || s->pos[k] >= t->n_cols)
            st = mrec_fail(MREC_ERR_FORMAT, "%s: sampler pair %" PRId64 " is (user %d, item %d), outside %d users and %d items", path, k,
                           s->user[k], s->pos[k], t->n_rows, t->n_cols);
        else if (!mrec_user_has_item(t, s->user[k], s->pos[k]))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: sampler pair %" PRId64 " (user %d, item %d) is not a training pair", path, k, s->user[k], s->pos[k]);
        got[k] = (uint64_t)s->user[k] << 32 | (uint32_t)s->pos[k];
    }
    for (int u = 0, k = 0; u < t->n_rows && !st && !by_users; u++)
        for (int64_t e = t->row_ptr[u]; e < t->row_ptr[u + 1]; e++) want[k++] = (uint64_t)u << 32 | (uint32_t)t->col[e];
    if (!st && !by_users) {
        qsort(got, (size_t)n, sizeof *got, by_key), qsort(want, (size_t)n, sizeof *want, by_key);
        if (memcmp(got, want, sizeof *got * (size_t)n))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: the sampler's pairs are not this run's training pairs", path);
    }
    /* the users with pairs: increasing in the training rows, each once in the file's order */
    for (int k = 0, u = 0; k < s->n_users && !st; k++) {
        while (u < t->n_rows && t->row_ptr[u + 1] == t->row_ptr[u]) u++;
        got[k] = (uint64_t)(uint32_t)s->users[k], want[k] = (uint64_t)u++;
    }
    if (!st) {
        qsort(got, (size_t)s->n_users, sizeof *got, by_key);
        if (memcmp(got, want, sizeof *got * (size_t)s->n_users))
            st = mrec_fail(MREC_ERR_FORMAT, "%s: the sampler's users are not this run's users with training pairs", path);
    }
    free(got), free(want);
    return st;
}

/* ids (n) each in [lo, hi) */
static mrec_status check_ids(const char *path, const char *name, const int32_t *ids, int64_t n, int lo, int hi) {
    for (int64_t k = 0; k < n; k++)
        if (ids[k] < lo || ids[k] >= hi) return mrec_fail(MREC_ERR_FORMAT, "%s: %s[%" PRId64 "] is %d, outside [%d, %d)", path, name, k, ids[k], lo, hi);
    return MREC_OK;
}

mrec_status mrec_checkpoint_read(const char *path, mrec_fit_progress *p, char **log, mrec_context *ctx) {
    mrec_model *m = p->model;
    mrec_optimizer *a = p->adam;
    mrec_fit_result *r = p->out;
    *log = NULL;
    mrec_safetensors f;
    mrec_status st = mrec_safetensors_open(&f, path);
    if (st) return st;
    const char *v;
    if (!(st = need(&f, "format", &v)) && strcmp(v, "mrec checkpoint 1"))
        st = mrec_fail(MREC_ERR_FORMAT, "%s: format '%s', not this version's 'mrec checkpoint 1'", path, v);
    /* the same run: every identifying value as this one would write it */
    writer *w = st ? NULL : calloc(1, sizeof *w);
    if (!st && !w) st = mrec_fail(MREC_ERR_NOMEM, "%s: reading", path);
    if (!st) identity(w, p, ctx);
    for (int k = 0; w && k < w->n_meta && !st; k++) {
        if (!w->value[k]) st = mrec_fail(MREC_ERR_NOMEM, "%s: reading", path);
        else if (!(st = need(&f, w->key[k], &v)) && strcmp(v, w->value[k]))
            st = mrec_fail(MREC_ERR_ARG, "%s: a checkpoint of another run: its %s is %s, this run's %s", path, w->key[k], v, w->value[k]);
    }
    for (int k = 0; w && k < w->n_meta; k++) free(w->value[k]);
    free(w);
    /* the numbers */
    long long epoch = 0, best_epoch = 0, bad = 0, step = 0, vu = 0, tu = 0, dim = 0, knn = 0;
    unsigned long long rng = 0;
    double best = 0, secs[3] = {0};
    static const char *const ints[] = {"epoch", "best_epoch", "bad_evals", "adam.step", "valid.users", "test.users", "embed_dim", "knn_k"};
    long long *into[] = {&epoch, &best_epoch, &bad, &step, &vu, &tu, &dim, &knn};
    for (size_t k = 0; k < sizeof ints / sizeof *ints && !st; k++)
        if (!(st = need(&f, ints[k], &v)) && sscanf(v, "%lld", into[k]) != 1)
            st = mrec_fail(MREC_ERR_FORMAT, "%s: '%s' is not a number", path, ints[k]);
    if (!st && !(st = need(&f, "rng", &v)) && sscanf(v, "%llu", &rng) != 1) st = mrec_fail(MREC_ERR_FORMAT, "%s: 'rng' is not a number", path);
    if (!st && !(st = need(&f, "best", &v)) && sscanf(v, "%lf", &best) != 1) st = mrec_fail(MREC_ERR_FORMAT, "%s: 'best' is not a number", path);
    if (!st && !(st = need(&f, "seconds", &v)) && sscanf(v, "%lf,%lf,%lf", &secs[0], &secs[1], &secs[2]) != 3)
        st = mrec_fail(MREC_ERR_FORMAT, "%s: 'seconds' is not three numbers", path);
    /* each number in the range a run leaves it in */
    if (!st && (epoch < 1 || epoch > 1000000000))
        st = mrec_fail(MREC_ERR_FORMAT, "%s: epoch %lld", path, epoch);
    else if (!st && (best_epoch < 0 || best_epoch > epoch || bad < 0 || bad > epoch))
        st = mrec_fail(MREC_ERR_FORMAT, "%s: best epoch %lld and %lld evaluations without gain after epoch %lld", path, best_epoch, bad, epoch);
    else if (!st && (vu < 0 || vu > p->sampler->train->n_rows || tu < 0 || tu > p->sampler->train->n_rows))
        st = mrec_fail(MREC_ERR_FORMAT, "%s: %lld validation and %lld test users of %d", path, vu, tu, p->sampler->train->n_rows);
    else if (!st && (step < 0 || !isfinite(best) || !(secs[0] >= 0 && secs[1] >= 0 && secs[2] >= 0 && secs[0] + secs[1] + secs[2] < 1e15)))
        st = mrec_fail(MREC_ERR_FORMAT, "%s: Adam's step %lld, best value %g, seconds %g, %g, %g", path, step, best, secs[0], secs[1], secs[2]);
    uint64_t state[MREC_MAX_STATE], steps[MREC_MAX_PARAMS];
    if (!st) st = read_words(&f, "state", state, m->n_state);
    if (!st) st = read_words(&f, "adam.steps", steps, a->n_params);
    for (int q = 0; q < a->n_params && !st; q++)
        if (steps[q] > (uint64_t)step) st = mrec_fail(MREC_ERR_FORMAT, "%s: parameter %d took %" PRIu64 " of %lld steps", path, q, steps[q], step);
    /* the arrays: parameters and moments onto the device, the sampler's order, the best epoch's metrics and keeps */
    for (int q = 0; q < m->n_params && !st; q++) {
        char name[32];
        snprintf(name, sizeof name, "param.%d", q), st = take(&f, name, MREC_F32, m->size[q], m->param[q], ctx);
        if (!st) snprintf(name, sizeof name, "adam.m.%d", q), st = take(&f, name, MREC_F32, m->size[q], a->m[q], ctx);
        if (!st) snprintf(name, sizeof name, "adam.v.%d", q), st = take(&f, name, MREC_F32, m->size[q], a->v[q], ctx);
    }
    for (int q = 0; q < m->n_arrays && !st; q++) {
        char name[32];
        snprintf(name, sizeof name, "array.%d", q), st = take(&f, name, MREC_F32, m->array_size[q], m->array[q], ctx);
    }
    mrec_bpr_sampler *s = p->sampler;
    if (!st) st = take(&f, "sampler.user", MREC_I32, s->n, s->user, NULL);
    if (!st) st = take(&f, "sampler.pos", MREC_I32, s->n, s->pos, NULL);
    if (!st) st = take(&f, "sampler.users", MREC_I32, s->n_users, s->users, NULL);
    if (!st) st = check_order(path, s, p->opt->sample_users);
    if (!st) st = take(&f, "best.valid", MREC_F64, MREC_METRIC_COUNT * MREC_EVAL_MAX_K, r->valid.value, NULL);
    if (!st) st = take(&f, "best.test", MREC_F64, MREC_METRIC_COUNT * MREC_EVAL_MAX_K, r->test.value, NULL);
    int U = s->train->n_rows, I = s->train->n_cols;
    /* what the best epoch kept, as this run keeps it: there is a best epoch once an evaluation gave a number */
    int kept_any = best_epoch >= 1;
    if (!st && p->opt->save_topk > 0 && kept_any) {
        if (!(r->topk = malloc(sizeof *r->topk * (size_t)U * p->opt->save_topk))) st = mrec_fail(MREC_ERR_NOMEM, "%s: kept.topk", path);
        else st = take(&f, "kept.topk", MREC_I32, (int64_t)U * p->opt->save_topk, r->topk, NULL);
        if (!st) st = check_ids(path, "kept.topk", r->topk, (int64_t)U * p->opt->save_topk, 0, I);
    }
    if (!st && p->opt->keep_model && kept_any) {
        /* keep_model's choice: the embeddings where the model has them, else the neighbour lists where it has those */
        int emb = m->embeddings && m->embed_dim > 0, nbrs = !emb && m->neighbours && m->knn_k > 0;
        if (emb && dim != m->embed_dim)
            st = mrec_fail(MREC_ERR_FORMAT, "%s: embeddings of %lld dimensions kept; the model's have %d", path, dim, m->embed_dim);
        if (!st && nbrs && knn != m->knn_k)
            st = mrec_fail(MREC_ERR_FORMAT, "%s: %lld neighbours an item kept; the model keeps %d", path, knn, m->knn_k);
        r->embed_dim = emb && !st ? (int)dim : 0, r->knn_k = nbrs && !st ? (int)knn : 0;
        struct { const char *name; void **to; int64_t n; mrec_dtype t; int wanted; } kept[] = {
            {"kept.users", (void **)&r->users, (int64_t)U * dim, MREC_F32, emb},
            {"kept.items", (void **)&r->items, (int64_t)I * dim, MREC_F32, emb},
            {"kept.nbr", (void **)&r->nbr, (int64_t)I * knn, MREC_I32, nbrs},
            {"kept.sim", (void **)&r->sim, (int64_t)I * knn, MREC_F32, nbrs}};
        for (size_t k = 0; k < sizeof kept / sizeof *kept && !st; k++) {
            if (!kept[k].wanted) continue;
            if (!(*kept[k].to = malloc(mrec_dtype_size(kept[k].t) * (size_t)kept[k].n))) st = mrec_fail(MREC_ERR_NOMEM, "%s: %s", path, kept[k].name);
            else st = take(&f, kept[k].name, kept[k].t, kept[k].n, *kept[k].to, NULL);
        }
        if (!st && r->nbr) st = check_ids(path, "kept.nbr", r->nbr, (int64_t)I * knn, -1, I);
        for (int64_t e = 0; !st && r->sim && e < (int64_t)I * knn; e++)
            if (!isfinite(r->sim[e])) st = mrec_fail(MREC_ERR_FORMAT, "%s: kept.sim[%" PRId64 "] is %g", path, e, (double)r->sim[e]);
        for (int q = 0; q < m->n_params && !st; q++) {
            char name[32];
            snprintf(name, sizeof name, "kept.param.%d", q);
            if (!(r->param[q] = malloc(sizeof(float) * (size_t)m->size[q]))) st = mrec_fail(MREC_ERR_NOMEM, "%s: %s", path, name);
            else r->n_params = q + 1, st = take(&f, name, MREC_F32, m->size[q], r->param[q], NULL);
        }
    }
    if (!st && !(st = need(&f, "log", &v)) && !(*log = strdup(v))) st = mrec_fail(MREC_ERR_NOMEM, "%s: the log", path);
    if (!st) {
        for (int k = 0; k < m->n_state; k++) *m->state[k] = state[k];
        a->step = step;
        for (int q = 0; q < a->n_params; q++) a->steps[q] = (int64_t)steps[q];
        p->epoch = (int)epoch, p->best = best, p->bad_evals = (int)bad, p->rng = rng;
        r->best_epoch = (int)best_epoch, r->epochs_run = (int)epoch, r->valid.n_users = (int)vu, r->test.n_users = (int)tu;
        r->train_seconds = secs[0], r->eval_seconds = secs[1], r->first_epoch_seconds = secs[2];
    }
    mrec_safetensors_close(&f);
    if (st) free(*log), *log = NULL;
    return st;
}
