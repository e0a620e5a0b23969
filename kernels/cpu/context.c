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

void mrec_context_destroy(mrec_context *ctx) {
    if (!ctx) return;
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

mrec_status mrec_graph_run(mrec_context *ctx, const void *key, size_t key_bytes, mrec_graph_body body, void *arg) {
    if (!on_gpu(ctx)) {
        ctx->in_graph++;
        mrec_status st = body(ctx, arg);
        ctx->in_graph--;
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
