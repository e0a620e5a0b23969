/* context.c: the execution context (it picks the device and owns the pool,
 * the CUDA handles and the workspace). */
#include "../mrec_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mrec_context_options mrec_context_defaults(void) {
    mrec_context_options o = {.device = MREC_WANT_AUTO, .n_threads = 0, .max_simd = MREC_SIMD_AMX,
                              .precision = MREC_PREC_FP32};
    return o;
}

const char *mrec_precision_name(mrec_precision p) {
    return p == MREC_PREC_TF32 ? "tf32" : p == MREC_PREC_BF16 ? "bf16" : "fp32";
}

const char *mrec_device_name(mrec_device device) {
    return device == MREC_DEVICE_CUDA ? "cuda" : "cpu";
}

mrec_status mrec_device_request_parse(const char *name, mrec_device_request *out) {
    static const struct { const char *name; mrec_device_request request; } names[] = {
        {"auto", MREC_WANT_AUTO}, {"cpu", MREC_WANT_CPU}, {"cuda", MREC_WANT_CUDA}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name)) return *out = names[i].request, MREC_OK;
    return mrec_fail(MREC_ERR_ARG, "device '%s' is not auto, cpu or cuda", name ? name : "");
}

mrec_status mrec_precision_parse(const char *name, mrec_precision *out) {
    for (int p = MREC_PREC_FP32; name && p <= MREC_PREC_BF16; p++)
        if (!strcmp(name, mrec_precision_name((mrec_precision)p))) return *out = (mrec_precision)p, MREC_OK;
    return mrec_fail(MREC_ERR_ARG, "precision '%s' is not fp32, tf32 or bf16", name ? name : "");
}

mrec_status mrec_context_create(mrec_context **out, const mrec_context_options *opt) {
    mrec_context_options o = opt ? *opt : mrec_context_defaults();
    *out = NULL;
    /* On the CPU: fp32, or bf16 products in the GEMMs where the CPU has AVX-512 BF16. */
    int cpu_bf16 = o.precision == MREC_PREC_BF16 && mrec_cpu_has_bf16();
    if (o.precision != MREC_PREC_FP32 && !cpu_bf16 && o.device == MREC_WANT_CPU)
        return mrec_fail(MREC_ERR_ARG, "precision %s: %s", mrec_precision_name(o.precision),
                         o.precision == MREC_PREC_BF16 ? "this CPU has no AVX-512 BF16; on it mrec computes in fp32"
                                                       : "runs on the GPU only; the CPU computes in fp32 (or bf16)");
    mrec_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return mrec_fail(MREC_ERR_NOMEM, "context: allocating");
    mrec_status st = mrec_pool_create(&ctx->pool, o.n_threads, o.max_simd);
    if (st) {
        free(ctx);
        return st;
    }
    ctx->device = MREC_DEVICE_CPU;
    if (cpu_bf16) ctx->precision = MREC_PREC_BF16;
    if (o.device != MREC_WANT_CPU) {
        st = mrec_cuda_create(&ctx->cuda, 0);
        if (st == MREC_OK) {
            ctx->device = MREC_DEVICE_CUDA;
            ctx->precision = o.precision;
        } else if (o.device == MREC_WANT_CUDA) {
            mrec_context_destroy(ctx);
            return st; /* the detail says why (no driver, no GPU, CPU-only build) */
        } else {
            int fp32 = o.precision != MREC_PREC_FP32 && !cpu_bf16;
            snprintf(ctx->notice, sizeof ctx->notice, "no usable GPU (%s); running on the CPU%s%s", mrec_error_detail(),
                     fp32 ? " in fp32, not " : "", fp32 ? mrec_precision_name(o.precision) : "");
            mrec_clear_error();
        }
    }
    /* the replay check on request (a developer's run on real data; see mrec_graph_check_enable) */
    const char *check = getenv("MREC_GRAPH_CHECK");
    if (check && !strcmp(check, "1") && ctx->device == MREC_DEVICE_CPU && (st = mrec_graph_check_enable(ctx))) {
        mrec_context_destroy(ctx);
        return st;
    }
    *out = ctx;
    return MREC_OK;
}

mrec_status mrec_context_reserve(mrec_context *ctx, size_t bytes) {
    if (ctx->workspace.base && ctx->workspace.capacity >= bytes) {
        mrec_arena_reset(&ctx->workspace);
        return MREC_OK;
    }
    mrec_arena_release(&ctx->workspace, ctx->cuda);
    return mrec_arena_reserve(&ctx->workspace, bytes, ctx->device, ctx->cuda);
}

/* ---- items side by side (mrec_context_split) ---- */

#define SPLIT_MAX 64 /* threads that take items; a larger pool splits each op instead */

static int split_threads(const mrec_context *ctx, int n) {
    int T = ctx->device == MREC_DEVICE_CPU && ctx->pool ? mrec_pool_threads(ctx->pool) : 1;
    return T > 1 && T <= SPLIT_MAX && n >= T ? T : 1;
}

static size_t aligned(size_t bytes) { return (bytes + MREC_ARENA_ALIGN - 1) / MREC_ARENA_ALIGN * MREC_ARENA_ALIGN; }

size_t mrec_context_split_bytes(const mrec_context *ctx, int n, size_t item_bytes, size_t all_bytes) {
    int T = split_threads(ctx, n);
    size_t shares = T > 1 ? (size_t)T * aligned(item_bytes) + MREC_ARENA_ALIGN : 0;
    return all_bytes > shares ? all_bytes : shares;
}

/* A thread's first failure: its item (or -1), status and message (mrec_fail's is per thread). */
typedef struct {
    int item;
    mrec_status status;
    char detail[512];
} split_failure;

typedef struct {
    mrec_context *ctx;
    mrec_items_fn fn;
    void *arg;
    mrec_arena *arena;      /* one per thread */
    split_failure *failure; /* one per thread */
} split_job;

static void split_task(void *arg, int item, int thread) {
    split_job *j = arg;
    mrec_context sub = *j->ctx;
    sub.pool = mrec_pool_alone(j->ctx->pool, thread);
    sub.workspace = j->arena[thread];
    /* the replay check follows one stream of launches, as a GPU's capture does; threads side by side interleave
     * theirs, and a GPU never splits (the rest of the items, after the split, keep the check) */
    sub.graph_check = NULL;
    mrec_status st = j->fn(&sub, item, item + 1, j->arg);
    split_failure *f = &j->failure[thread];
    if (st && f->item < 0) f->item = item, f->status = st, snprintf(f->detail, sizeof f->detail, "%s", mrec_error_detail());
}

mrec_status mrec_context_split(mrec_context *ctx, int n, size_t item_bytes, mrec_items_fn fn, void *arg) {
    int T = split_threads(ctx, n);
    size_t bytes = aligned(item_bytes), mark = ctx->workspace.used;
    if (T < 2 || !ctx->workspace.base || ctx->workspace.capacity - ctx->workspace.used < (size_t)T * bytes + MREC_ARENA_ALIGN)
        return fn(ctx, 0, n, arg);
    int items = n / T * T;
    mrec_arena arena[SPLIT_MAX];
    split_failure failure[SPLIT_MAX];
    for (int t = 0; t < T; t++) {
        arena[t] = (mrec_arena){.base = mrec_arena_alloc(&ctx->workspace, bytes), .capacity = bytes, .device = MREC_DEVICE_CPU};
        failure[t].item = -1;
    }
    split_job j = {ctx, fn, arg, arena, failure};
    mrec_pool_run_spread(ctx->pool, split_task, &j, items);
    ctx->workspace.used = mark;
    const split_failure *first = NULL; /* the earliest item's failure: its message names it */
    for (int t = 0; t < T; t++)
        if (failure[t].item >= 0 && (!first || failure[t].item < first->item)) first = &failure[t];
    if (first) return mrec_fail(first->status, "%s", first->detail);
    return items < n ? fn(ctx, items, n, arg) : MREC_OK;
}

static void graph_check_free(struct mrec_graph_check *c);

void mrec_context_destroy(mrec_context *ctx) {
    if (!ctx) return;
    graph_check_free(ctx->graph_check);
    mrec_arena_release(&ctx->workspace, ctx->cuda);
    if (ctx->cuda) mrec_cuda_destroy(ctx->cuda);
    mrec_pool_destroy(ctx->pool);
    free(ctx);
}

/* ---- pipelined transfers on a context (mrec_kernels.h): the GPU's calls,
 * or on the CPU the same contract done at once ---- */

static int on_gpu(const mrec_context *ctx) { return ctx->device == MREC_DEVICE_CUDA; }

mrec_status mrec_host_alloc(mrec_context *ctx, void **ptr, size_t bytes) {
    if (on_gpu(ctx)) return mrec_cuda_host_alloc(ctx->cuda, ptr, bytes);
    *ptr = malloc(bytes ? bytes : 1);
    return *ptr ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "host buffer of %zu bytes", bytes);
}

void mrec_host_free(mrec_context *ctx, void *ptr) {
    if (!ptr) return;
    if (on_gpu(ctx)) mrec_cuda_host_free(ctx->cuda, ptr); /* a failure here leaves nothing to undo */
    else free(ptr);
}

mrec_status mrec_copy_to_device_async(mrec_context *ctx, void *dst, const void *src, size_t bytes, mrec_stream stream) {
    if (on_gpu(ctx)) return mrec_cuda_copy_h2d_async(ctx->cuda, dst, src, bytes, stream);
    if (ctx->in_graph) return mrec_graph_copy_refused(bytes);
    if (bytes && dst != src) memcpy(dst, src, bytes);
    return MREC_OK;
}

mrec_status mrec_copy_to_device_staged(mrec_context *ctx, void *dst, const void *src, size_t bytes) {
    if (on_gpu(ctx)) return mrec_cuda_copy_h2d_staged(ctx->cuda, dst, src, bytes);
    if (ctx->in_graph) return mrec_graph_copy_refused(bytes);
    if (bytes && dst != src) memcpy(dst, src, bytes);
    return MREC_OK;
}

mrec_status mrec_copy_to_host_async(mrec_context *ctx, void *dst, const void *src, size_t bytes, mrec_stream stream) {
    if (on_gpu(ctx)) return mrec_cuda_copy_d2h_async(ctx->cuda, dst, src, bytes, stream);
    if (ctx->in_graph) return mrec_graph_copy_refused(bytes);
    if (bytes && dst != src) memcpy(dst, src, bytes);
    return MREC_OK;
}

mrec_status mrec_graph_copy_refused(size_t bytes) {
    return mrec_fail(MREC_ERR_DEVICE, "a copy of %zu bytes between host and device inside a graph's body (its launches may not copy: "
                     "a captured copy would replay its first source)", bytes);
}

mrec_status mrec_graph_wait_refused(const char *what) {
    return mrec_fail(MREC_ERR_DEVICE, "%s waits for the device inside a graph's body (a capture cannot wait: the graph would never "
                     "be made)", what);
}

typedef struct {
    mrec_graph_body body;
    mrec_context *ctx;
    void *arg;
} graph_thunk;

static mrec_status graph_body(void *arg) {
    graph_thunk *t = arg;
    return t->body(t->ctx, t->arg);
}

/* ---- the replay check (mrec_graph_check_enable) ---- */

#define CHECK_KEYS 16 /* keys kept, as the GPU's graphs; past that the oldest is dropped */

typedef struct {
    unsigned char key[MREC_GRAPH_KEY_MAX];
    size_t len;
    int calls;          /* calls seen since the key was new or its record forgotten */
    long long frees;    /* mrec_arena_cpu_frees() when the record was made */
    uint64_t *hash;     /* (n_ops) the second call's launches, each its arguments' hash */
    const char **name;
    int n_ops;
} check_key;

struct mrec_graph_check {
    check_key keys[CHECK_KEYS];
    int n_keys, next;
    uint64_t *hash; /* the running body's launches */
    const char **name;
    int n_ops, cap;
    int failed;     /* a note could not be kept (memory): nothing is compared */
    int skip;       /* the body stopped early on the CPU's own decision (mrec_graph_check_skip) */
};

static void graph_check_free(struct mrec_graph_check *c) {
    if (!c) return;
    for (int k = 0; k < c->n_keys; k++) free(c->keys[k].hash), free(c->keys[k].name);
    free(c->hash), free(c->name), free(c);
}

mrec_status mrec_graph_check_enable(mrec_context *ctx) {
    if (on_gpu(ctx)) return mrec_fail(MREC_ERR_ARG, "the replay check runs on a CPU context (a GPU replays for real)");
    if (!ctx->graph_check && !(ctx->graph_check = calloc(1, sizeof *ctx->graph_check)))
        return mrec_fail(MREC_ERR_NOMEM, "the replay check");
    return MREC_OK;
}

void mrec_graph_note(mrec_context *ctx, const char *op, const uint64_t *v, int n) {
    struct mrec_graph_check *c = ctx->graph_check;
    if (c->n_ops == c->cap) {
        int cap = c->cap ? 2 * c->cap : 256;
        uint64_t *h = realloc(c->hash, sizeof *h * (size_t)cap);
        if (h) c->hash = h;
        const char **nm = h ? realloc(c->name, sizeof *nm * (size_t)cap) : NULL;
        if (nm) c->name = nm;
        if (!h || !nm) {
            c->failed = 1;
            return;
        }
        c->cap = cap;
    }
    uint64_t x = 0xcbf29ce484222325ull; /* FNV-1a over the op's name and its arguments' bytes */
    for (const char *p = op; *p; p++) x = (x ^ (unsigned char)*p) * 0x100000001b3ull;
    for (int k = 0; k < n; k++)
        for (int b = 0; b < 8; b++) x = (x ^ ((v[k] >> (8 * b)) & 0xff)) * 0x100000001b3ull;
    c->hash[c->n_ops] = x, c->name[c->n_ops++] = op;
}

void mrec_graph_check_skip(mrec_context *ctx) {
    if (ctx->graph_check) ctx->graph_check->skip = 1;
}

/* After a body's call under key: the second call's launches kept, a later call's compared with them. */
static mrec_status graph_check_call(struct mrec_graph_check *c, const void *key, size_t len) {
    if (c->skip) return MREC_OK;
    check_key *e = NULL;
    for (int k = 0; k < c->n_keys && !e; k++)
        if (c->keys[k].len == len && !memcmp(c->keys[k].key, key, len)) e = &c->keys[k];
    long long frees = mrec_arena_cpu_frees();
    if (!e) {
        if (c->n_keys < CHECK_KEYS) e = &c->keys[c->n_keys++];
        else e = &c->keys[c->next], c->next = (c->next + 1) % CHECK_KEYS;
        free(e->hash), free(e->name);
        memset(e, 0, sizeof *e);
        memcpy(e->key, key, len), e->len = len;
    }
    if (e->calls >= 2 && e->frees != frees) e->calls = 1; /* memory freed: a GPU would capture this call anew */
    if (++e->calls < 2 || c->failed) return MREC_OK;
    if (e->calls == 2) { /* the call a GPU captures */
        free(e->hash), free(e->name);
        e->hash = malloc(sizeof *e->hash * (size_t)(c->n_ops + 1)), e->name = malloc(sizeof *e->name * (size_t)(c->n_ops + 1));
        if (!e->hash || !e->name) {
            free(e->hash), free(e->name), e->hash = NULL, e->name = NULL, e->calls = 0;
            return MREC_OK;
        }
        if (c->n_ops) memcpy(e->hash, c->hash, sizeof *e->hash * (size_t)c->n_ops), memcpy(e->name, c->name, sizeof *e->name * (size_t)c->n_ops);
        e->n_ops = c->n_ops, e->frees = frees;
        return MREC_OK;
    }
    int at = 0;
    while (at < c->n_ops && at < e->n_ops && c->hash[at] == e->hash[at]) at++;
    if (at == c->n_ops && at == e->n_ops) return MREC_OK;
    return mrec_fail(MREC_ERR_DEVICE, "a graph's body launched differently from its captured call (call %d under its key): launch %d "
                     "of %d, %s, %s; a GPU's replay would have run the captured one", e->calls, at + 1, c->n_ops,
                     at < c->n_ops ? c->name[at] : "none (fewer launches)",
                     at < e->n_ops ? "with other arguments or another op" : "one more than captured");
}

mrec_status mrec_graph_run(mrec_context *ctx, const void *key, size_t key_bytes, mrec_graph_body body, void *arg) {
    if (!on_gpu(ctx)) {
        struct mrec_graph_check *c = ctx->graph_check;
        if (c) c->n_ops = 0, c->failed = 0, c->skip = 0;
        ctx->in_graph++;
        mrec_status st = body(ctx, arg);
        ctx->in_graph--;
        if (!st && c && key_bytes <= MREC_GRAPH_KEY_MAX) st = graph_check_call(c, key, key_bytes);
        return st;
    }
    graph_thunk t = {body, ctx, arg};
    return mrec_cuda_graph_run(ctx->cuda, key, key_bytes, graph_body, &t);
}

mrec_status mrec_event_create(mrec_context *ctx, mrec_event **ev) {
    *ev = NULL;
    return on_gpu(ctx) ? mrec_cuda_event_create(ctx->cuda, ev) : MREC_OK;
}

void mrec_event_destroy(mrec_context *ctx, mrec_event *ev) {
    if (ev && on_gpu(ctx)) mrec_cuda_event_destroy(ctx->cuda, ev);
}

mrec_status mrec_event_record(mrec_context *ctx, mrec_event *ev, mrec_stream stream) {
    return on_gpu(ctx) ? mrec_cuda_event_record(ctx->cuda, ev, stream) : MREC_OK;
}

mrec_status mrec_stream_wait(mrec_context *ctx, mrec_stream stream, mrec_event *ev) {
    return on_gpu(ctx) ? mrec_cuda_stream_wait(ctx->cuda, stream, ev) : MREC_OK;
}

mrec_status mrec_event_sync(mrec_context *ctx, mrec_event *ev) {
    if (!on_gpu(ctx) && ctx->in_graph) return mrec_graph_wait_refused("an event's wait");
    return on_gpu(ctx) ? mrec_cuda_event_sync(ctx->cuda, ev) : MREC_OK;
}

mrec_status mrec_events_settle(mrec_context *ctx, mrec_event *const *ev, int n, mrec_status st) {
    if (!on_gpu(ctx)) return st;
    char why[512]; /* mrec_error_detail's size */
    snprintf(why, sizeof why, "%s", mrec_error_detail()); /* a wait on a failed stream would say only that */
    for (int i = 0; i < n; i++)
        if (ev[i]) mrec_cuda_event_sync(ctx->cuda, ev[i]);
    mrec_fail(st, "%s", why);
    return st;
}
