/* device.cu: the CUDA device context (stream, cuBLAS and cuDNN handles) and memory.
 *
 * Every CUDA call is checked; a failure becomes MREC_ERR_DEVICE with the
 * CUDA error string in the detail, never an exit. mrec_cuda_create fails
 * cleanly on a machine with the toolkit but no GPU or driver, which is how
 * the CUDA build falls back to the CPU there.
 */
#include "cuda_internal.h"

#include <cuda_profiler_api.h>
#include <string.h>
#include <time.h>

extern "C" int mrec_cuda_compiled(void) { return 1; }

mrec_status mrec_cuda_check(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return MREC_OK;
    return mrec_fail(MREC_ERR_DEVICE, "%s: %s", what, cudaGetErrorString(err));
}

mrec_status mrec_cublas_check(cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return MREC_OK;
    return mrec_fail(MREC_ERR_DEVICE, "%s: cuBLAS status %d", what, (int)st);
}

mrec_status mrec_cudnn_check(cudnnStatus_t st, const char *what) {
    if (st == CUDNN_STATUS_SUCCESS) return MREC_OK;
    return mrec_fail(MREC_ERR_DEVICE, "%s: %s", what, cudnnGetErrorString(st));
}

/* Does nothing: whether the build has code for this GPU is whether its attributes can be read. */
__global__ static void probe_kernel(void) {}

extern "C" mrec_status mrec_cuda_create(mrec_cuda **out, int device) {
    *out = NULL;
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) return mrec_cuda_check(err, "looking for a GPU");
    if (device < 0 || device >= count)
        return mrec_fail(MREC_ERR_DEVICE, "GPU %d requested, %d present", device, count);
    mrec_cuda *cu = (mrec_cuda *)calloc(1, sizeof *cu);
    if (!cu) return mrec_fail(MREC_ERR_NOMEM, "cuda: allocating the context");
    cu->device = device;
    mrec_status st = mrec_cuda_check(cudaSetDevice(device), "cudaSetDevice");
    int major = 0, minor = 0;
    if (!st) st = mrec_cuda_check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "compute capability");
    if (!st) st = mrec_cuda_check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "compute capability");
    cu->sm = 10 * major + minor;
    /* a GPU the build has no kernels for (CUDA_ARCH) is no GPU to this build: --device auto then takes the CPU */
    cudaFuncAttributes probe;
    if (!st && cudaFuncGetAttributes(&probe, probe_kernel) != cudaSuccess) {
        cudaGetLastError();
        st = mrec_fail(MREC_ERR_DEVICE, "GPU %d (sm_%d): this build has no kernels for it (make CUDA=1 CUDA_ARCH=%d)", device, cu->sm,
                       cu->sm);
    }
    if (!st) st = mrec_cuda_check(cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking),
                                  "cudaStreamCreate");
    if (!st) st = mrec_cuda_check(cudaStreamCreateWithFlags(&cu->copy_stream, cudaStreamNonBlocking),
                                  "cudaStreamCreate (copy stream)");
    if (!st) st = mrec_cublas_check(cublasCreate(&cu->blas), "cublasCreate");
    if (!st) st = mrec_cublas_check(cublasSetStream(cu->blas, cu->stream), "cublasSetStream");
    /* fp32 stays fp32: TF32 is a separate, opt-in precision. */
    if (!st) st = mrec_cublas_check(cublasSetMathMode(cu->blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
    if (!st) st = mrec_cudnn_check(cudnnCreate(&cu->dnn), "cudnnCreate");
    if (!st) st = mrec_cudnn_check(cudnnSetStream(cu->dnn, cu->stream), "cudnnSetStream");
    if (!st) st = mrec_cuda_alloc(device, (void **)&cu->flag, sizeof *cu->flag, "a flag");
    if (!st) st = mrec_cuda_alloc(device, (void **)&cu->dot_part, sizeof(double) * MREC_DOT_PARTS, "dot products' parts");
    if (!st) st = mrec_cublas_check(cublasLtCreate(&cu->lt), "cublasLtCreate");
    if (!st) st = mrec_cuda_alloc(device, &cu->lt_work, MREC_LT_WORKSPACE, "cuBLASLt workspace");
    /* cuBLAS's own workspace, given rather than left to it: a product captured into a CUDA graph then never asks
     * for memory during the capture, and the graph's replays use this one */
    if (!st) st = mrec_cuda_alloc(device, &cu->blas_work, MREC_BLAS_WORKSPACE, "cuBLAS workspace");
    if (!st) st = mrec_cublas_check(cublasSetWorkspace(cu->blas, cu->blas_work, MREC_BLAS_WORKSPACE), "cublasSetWorkspace");
    if (st) {
        mrec_cuda_destroy(cu);
        return st;
    }
    *out = cu;
    return MREC_OK;
}

extern "C" void mrec_cuda_destroy(mrec_cuda *cu) {
    if (!cu) return;
    for (int i = 0; i < cu->n_weights; i++) { /* a model freed after its context */
        cudaFree(cu->weights[i].f32);
        if (cu->weights[i].bf16) cudaFree(cu->weights[i].bf16);
    }
    free(cu->weights);
    mrec_cuda_graphs_clear(cu);
    free(cu->graphs);
    free(cu->blocks);
    for (int k = 0; k < MREC_STAGE_SLOTS; k++) {
        if (cu->stage_done[k]) cudaEventSynchronize(cu->stage_done[k]), cudaEventDestroy(cu->stage_done[k]);
        if (cu->stage[k]) cudaFreeHost(cu->stage[k]);
    }
    mrec_conv_plans_free(cu);
    mrec_lt_algos_free(cu);
    if (cu->bf16_buf) cudaFree(cu->bf16_buf);
    if (cu->lt_work) cudaFree(cu->lt_work);
    if (cu->blas_work) cudaFree(cu->blas_work);
    if (cu->lt) cublasLtDestroy(cu->lt);
    if (cu->flag) cudaFree(cu->flag);
    if (cu->dot_part) cudaFree(cu->dot_part);
    if (cu->dnn) cudnnDestroy(cu->dnn);
    if (cu->blas) cublasDestroy(cu->blas);
    if (cu->copy_stream) cudaStreamDestroy(cu->copy_stream);
    if (cu->stream) cudaStreamDestroy(cu->stream);
    free(cu);
}

/* An allocation and its number: a graph captured before it was made cannot name it (mrec_cuda_free). */
struct mrec_cuda_block {
    void *ptr;
    unsigned long long n;
};

static void graphs_drop_since(mrec_cuda *cu, unsigned long long n);

/* cudaMalloc; a full GPU is the user's error to act on, so it says what was asked and what there is */
mrec_status mrec_cuda_alloc(int device, void **ptr, size_t bytes, const char *what) {
    cudaError_t err = cudaMalloc(ptr, bytes);
    if (err != cudaSuccess) *ptr = NULL;
    if (err != cudaErrorMemoryAllocation) return mrec_cuda_check(err, what);
    cudaGetLastError(); /* not sticky: cleared, so that the next launch's check does not report it again */
    size_t free_bytes = 0, total = 0;
    if (cudaMemGetInfo(&free_bytes, &total) != cudaSuccess) cudaGetLastError(), free_bytes = total = 0;
    return mrec_fail(MREC_ERR_NOMEM, "GPU %d: %.1f MiB asked (%s), %.1f MiB free of %.1f MiB", device, bytes / 1048576.0, what,
                     free_bytes / 1048576.0, total / 1048576.0);
}

extern "C" mrec_status mrec_cuda_malloc(mrec_cuda *cu, void **ptr, size_t bytes) {
    mrec_status st = mrec_cuda_alloc(cu ? cu->device : 0, ptr, bytes, "device memory");
    if (st || !cu) return st;
    if (cu->n_blocks == cu->cap_blocks) { /* untracked if this fails: its free then drops every graph */
        int cap = cu->cap_blocks ? 2 * cu->cap_blocks : 64;
        mrec_cuda_block *b = (mrec_cuda_block *)realloc(cu->blocks, sizeof *b * (size_t)cap);
        if (!b) return MREC_OK;
        cu->blocks = b, cu->cap_blocks = cap;
    }
    cu->blocks[cu->n_blocks++] = (mrec_cuda_block){*ptr, ++cu->n_allocs};
    return MREC_OK;
}

/* A graph may name the memory freed, and a later allocation may reuse its address for something else: the
 * graphs captured while it lived are dropped. One captured before it was allocated cannot name it (any block
 * that lived at that capture and shared its address was freed first, and dropped the graph then), so an
 * evaluation's buffers, made and freed between two epochs, leave the training batches' graphs alone. */
extern "C" void mrec_cuda_free(mrec_cuda *cu, void *ptr) {
    if (!ptr) return;
    cudaFree(ptr);
    if (!cu) return;
    for (int i = 0; i < cu->n_blocks; i++)
        if (cu->blocks[i].ptr == ptr) {
            unsigned long long n = cu->blocks[i].n;
            cu->blocks[i] = cu->blocks[--cu->n_blocks];
            graphs_drop_since(cu, n);
            return;
        }
    mrec_cuda_graphs_clear(cu); /* not from mrec_cuda_malloc: nothing known of it */
}

/* cudaMemcpyDefault: src may already be on the device (a batch uploaded ahead on the copy stream). */
/* Whether p is memory of a device (not host memory, pinned or not). */
static int on_a_device(const void *p) {
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError(); /* older drivers fail on a pageable pointer: host memory */
        return 0;
    }
    return a.type == cudaMemoryTypeDevice;
}

/* From the host it waits for the copy, so that src may change at once; from the device (a batch uploaded ahead)
 * the copy is queued on the stream like any op and the host goes on: nothing on the host reads either buffer, and
 * a wait there would drain the stream, the previous batch's forward with it, before this one's launches. */
extern "C" mrec_status mrec_cuda_copy_h2d(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    int from_device = on_a_device(src);
    mrec_status st = mrec_cuda_check(cudaMemcpyAsync(dst, src, bytes, from_device ? cudaMemcpyDeviceToDevice : cudaMemcpyDefault,
                                                     cu->stream),
                                     "copy to GPU");
    return st || from_device ? st : mrec_cuda_check(cudaStreamSynchronize(cu->stream), "copy to GPU");
}

extern "C" mrec_status mrec_cuda_copy_d2h(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    mrec_status st = mrec_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu->stream),
                                     "copy from GPU");
    return st ? st : mrec_cuda_check(cudaStreamSynchronize(cu->stream), "copy from GPU");
}

extern "C" mrec_status mrec_cuda_sync(mrec_cuda *cu) {
    return mrec_cuda_check(cudaStreamSynchronize(cu->stream), "cudaStreamSynchronize");
}

extern "C" mrec_status mrec_cuda_profile(mrec_cuda *cu, int on) {
    mrec_status st = mrec_cuda_sync(cu);
    if (!st) st = mrec_cuda_check(on ? cudaProfilerStart() : cudaProfilerStop(), on ? "cudaProfilerStart" : "cudaProfilerStop");
    return st;
}

/* ---- pipelined transfers (mrec_kernels.h) ---- */

static cudaStream_t stream_of(mrec_cuda *cu, mrec_stream s) { return s == MREC_STREAM_COPY ? cu->copy_stream : cu->stream; }

/* The current device is per host thread: a producer thread has to select it. */
static mrec_status on_device(mrec_cuda *cu) {
    if (!cu) return mrec_fail(MREC_ERR_ARG, "cuda: no device context");
    return mrec_cuda_check(cudaSetDevice(cu->device), "cudaSetDevice");
}

extern "C" mrec_status mrec_cuda_host_alloc(mrec_cuda *cu, void **ptr, size_t bytes) {
    *ptr = NULL;
    mrec_status st = on_device(cu);
    if (st) return st;
    cudaError_t err = cudaHostAlloc(ptr, bytes ? bytes : 1, cudaHostAllocDefault);
    if (err != cudaSuccess) {
        *ptr = NULL;
        if (err == cudaErrorMemoryAllocation) return cudaGetLastError(), mrec_fail(MREC_ERR_NOMEM, "pinned host memory: %zu bytes asked", bytes);
        return mrec_fail(MREC_ERR_DEVICE, "cudaHostAlloc of %zu bytes: %s", bytes, cudaGetErrorString(err));
    }
    return MREC_OK;
}

extern "C" mrec_status mrec_cuda_host_free(mrec_cuda *cu, void *ptr) {
    if (!ptr) return MREC_OK;
    mrec_status st = on_device(cu);
    return st ? st : mrec_cuda_check(cudaFreeHost(ptr), "cudaFreeHost");
}

extern "C" mrec_status mrec_cuda_copy_h2d_async(mrec_cuda *cu, void *dst, const void *src, size_t bytes, mrec_stream s) {
    mrec_status st = on_device(cu);
    if (st || !bytes) return st;
    return mrec_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_of(cu, s)), "async copy to GPU");
}

extern "C" mrec_status mrec_cuda_copy_h2d_staged(mrec_cuda *cu, void *dst, const void *src, size_t bytes) {
    mrec_status st = on_device(cu);
    if (st || !bytes) return st;
    /* a captured copy would replay the slot as it was then: a graph's body has its inputs uploaded before it */
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(cu->stream, &capturing) == cudaSuccess && capturing != cudaStreamCaptureStatusNone)
        return mrec_fail(MREC_ERR_DEVICE, "an upload inside a CUDA graph's capture");
    if (bytes > MREC_STAGE_BYTES) {
        /* From pageable memory an async copy returns once the driver has staged src; from pinned memory (a
         * pipeline's slot, handed back to its producer when this returns) it would read src later, so that goes
         * through the ring a slot at a time */
        cudaPointerAttributes at;
        if (cudaPointerGetAttributes(&at, src) != cudaSuccess) cudaGetLastError(), at.type = cudaMemoryTypeUnregistered;
        if (at.type != cudaMemoryTypeHost)
            return mrec_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, cu->stream), "copy to GPU");
        for (size_t done = 0; done < bytes && !st; done += MREC_STAGE_BYTES)
            st = mrec_cuda_copy_h2d_staged(cu, (char *)dst + done, (const char *)src + done,
                                           bytes - done < MREC_STAGE_BYTES ? bytes - done : MREC_STAGE_BYTES);
        return st;
    }
    int k = cu->stage_next;
    if (!cu->stage[k]) {
        st = mrec_cuda_host_alloc(cu, &cu->stage[k], MREC_STAGE_BYTES);
        if (!st) st = mrec_cuda_check(cudaEventCreateWithFlags(&cu->stage_done[k], cudaEventDisableTiming), "cudaEventCreate (upload slot)");
        if (st) {
            if (cu->stage[k]) cudaFreeHost(cu->stage[k]);
            cu->stage[k] = NULL, cu->stage_done[k] = NULL;
            return st;
        }
    } else { /* returns at once unless the GPU is eight uploads behind (not cudaEventQuery, whose "not ready" may
              * linger as the thread's last error for the next launch's check to report) */
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        st = mrec_cuda_check(cudaEventSynchronize(cu->stage_done[k]), "waiting for an upload slot");
        clock_gettime(CLOCK_MONOTONIC, &b);
        cu->stage_wait += (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
        if (st) return st;
    }
    memcpy(cu->stage[k], src, bytes);
    st = mrec_cuda_check(cudaMemcpyAsync(dst, cu->stage[k], bytes, cudaMemcpyHostToDevice, cu->stream), "copy to GPU");
    if (!st) st = mrec_cuda_check(cudaEventRecord(cu->stage_done[k], cu->stream), "upload slot");
    cu->stage_next = (k + 1) % MREC_STAGE_SLOTS;
    return st;
}

extern "C" double mrec_cuda_stage_wait(const mrec_cuda *cu) { return cu ? cu->stage_wait : 0; }

extern "C" mrec_status mrec_cuda_copy_d2h_async(mrec_cuda *cu, void *dst, const void *src, size_t bytes, mrec_stream s) {
    mrec_status st = on_device(cu);
    if (st || !bytes) return st;
    return mrec_cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_of(cu, s)), "async copy from GPU");
}

extern "C" mrec_status mrec_cuda_event_create(mrec_cuda *cu, mrec_event **ev) {
    *ev = NULL;
    mrec_status st = on_device(cu);
    cudaEvent_t e = NULL;
    if (!st) st = mrec_cuda_check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    if (!st) *ev = (mrec_event *)e;
    return st;
}

extern "C" mrec_status mrec_cuda_event_destroy(mrec_cuda *cu, mrec_event *ev) {
    if (!ev) return MREC_OK;
    mrec_status st = on_device(cu);
    return st ? st : mrec_cuda_check(cudaEventDestroy((cudaEvent_t)ev), "cudaEventDestroy");
}

extern "C" mrec_status mrec_cuda_event_record(mrec_cuda *cu, mrec_event *ev, mrec_stream s) {
    if (!ev) return mrec_fail(MREC_ERR_ARG, "cuda: recording a NULL event");
    mrec_status st = on_device(cu);
    return st ? st : mrec_cuda_check(cudaEventRecord((cudaEvent_t)ev, stream_of(cu, s)), "cudaEventRecord");
}

extern "C" mrec_status mrec_cuda_stream_wait(mrec_cuda *cu, mrec_stream s, mrec_event *ev) {
    if (!ev) return mrec_fail(MREC_ERR_ARG, "cuda: waiting on a NULL event");
    mrec_status st = on_device(cu);
    return st ? st : mrec_cuda_check(cudaStreamWaitEvent(stream_of(cu, s), (cudaEvent_t)ev, 0), "cudaStreamWaitEvent");
}

extern "C" mrec_status mrec_cuda_event_sync(mrec_cuda *cu, mrec_event *ev) {
    if (!ev) return mrec_fail(MREC_ERR_ARG, "cuda: synchronizing on a NULL event");
    mrec_status st = on_device(cu);
    return st ? st : mrec_cuda_check(cudaEventSynchronize((cudaEvent_t)ev), "cudaEventSynchronize");
}

extern "C" mrec_status mrec_cuda_stream_sync(mrec_cuda *cu, mrec_stream s) {
    mrec_status st = on_device(cu);
    return st ? st : mrec_cuda_check(cudaStreamSynchronize(stream_of(cu, s)), "cudaStreamSynchronize");
}

/* ---- CUDA graphs (mrec_kernels.h, mrec_graph_run) ---- */

#define GRAPHS 16 /* keys kept; past that the oldest is dropped */

static long long graph_launches; /* mrec_cuda_graph_launches */

enum { GRAPH_SEEN, GRAPH_READY, GRAPH_REFUSED };

struct mrec_cuda_graph {
    unsigned char key[MREC_GRAPH_KEY_MAX + 3 * sizeof(void *)];
    size_t len;
    int state;
    cudaGraphExec_t exec;         /* GRAPH_READY */
    unsigned long long allocs;    /* cu->n_allocs when captured: blocks numbered above it came later */
};

void mrec_cuda_graphs_clear(mrec_cuda *cu) {
    for (int i = 0; i < cu->n_graphs; i++)
        if (cu->graphs[i].exec) cudaGraphExecDestroy(cu->graphs[i].exec);
    cu->n_graphs = cu->next_graph = 0;
}

/* Drops the graphs captured once block n had been allocated; their keys stay, so the next call captures anew. */
static void graphs_drop_since(mrec_cuda *cu, unsigned long long n) {
    for (int i = 0; i < cu->n_graphs; i++) {
        mrec_cuda_graph *g = &cu->graphs[i];
        if (g->state != GRAPH_READY || g->allocs < n) continue;
        cudaGraphExecDestroy(g->exec);
        g->exec = NULL, g->state = GRAPH_SEEN;
    }
}

/* Runs fn(arg) for real; a capture that failed leaves no error behind it. */
static mrec_status run_plain(mrec_cuda_graph *g, mrec_status (*fn)(void *), void *arg) {
    g->state = GRAPH_REFUSED;
    cudaGetLastError();
    mrec_clear_error();
    return fn(arg);
}

extern "C" mrec_status mrec_cuda_graph_run(mrec_cuda *cu, const void *key, size_t key_bytes, mrec_status (*fn)(void *), void *arg) {
    static int off = -1;
    if (off < 0) off = getenv("MREC_CUDA_GRAPHS") && !strcmp(getenv("MREC_CUDA_GRAPHS"), "0");
    if (off || key_bytes > MREC_GRAPH_KEY_MAX) return fn(arg);
    /* the key, and the context's scratch a launch may name: the bf16 conversion buffer moves when it grows */
    unsigned char full[sizeof ((mrec_cuda_graph *)0)->key];
    const void *scratch[3] = {cu->bf16_buf, (const void *)(uintptr_t)cu->bf16_cap, cu->lt_work};
    memcpy(full, key, key_bytes);
    memcpy(full + key_bytes, scratch, sizeof scratch);
    size_t len = key_bytes + sizeof scratch;
    mrec_cuda_graph *g = NULL;
    for (int i = 0; i < cu->n_graphs && !g; i++)
        if (cu->graphs[i].len == len && !memcmp(cu->graphs[i].key, full, len)) g = &cu->graphs[i];
    if (!g) { /* first seen: noted, and run as it is */
        if (!cu->graphs && !(cu->graphs = (mrec_cuda_graph *)calloc(GRAPHS, sizeof *cu->graphs))) return fn(arg);
        if (cu->n_graphs < GRAPHS) g = &cu->graphs[cu->n_graphs++];
        else {
            g = &cu->graphs[cu->next_graph], cu->next_graph = (cu->next_graph + 1) % GRAPHS;
            if (g->exec) cudaGraphExecDestroy(g->exec);
        }
        memcpy(g->key, full, len);
        g->len = len, g->state = GRAPH_SEEN, g->exec = NULL;
        return fn(arg);
    }
    if (g->state == GRAPH_REFUSED) return fn(arg);
    if (g->state == GRAPH_SEEN) { /* the second call: captured, then replayed */
        cudaGraph_t graph = NULL;
        unsigned long long allocs = cu->n_allocs;
        if (cudaStreamBeginCapture(cu->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return run_plain(g, fn, arg);
        mrec_status st = fn(arg);
        cudaError_t end = cudaStreamEndCapture(cu->stream, &graph);
        cudaGraphExec_t exec = NULL;
        bool made = !st && end == cudaSuccess && graph && cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
        if (graph) cudaGraphDestroy(graph);
        if (!made) return run_plain(g, fn, arg);
        g->exec = exec, g->state = GRAPH_READY, g->allocs = allocs;
    }
    mrec_status st = mrec_cuda_check(cudaGraphLaunch(g->exec, cu->stream), "cudaGraphLaunch");
    if (!st) __atomic_add_fetch(&graph_launches, 1, __ATOMIC_RELAXED);
    return st;
}

extern "C" long long mrec_cuda_graph_launches(void) { return __atomic_load_n(&graph_launches, __ATOMIC_RELAXED); }

extern "C" int mrec_cuda_graph_count(const mrec_cuda *cu) {
    int n = 0;
    for (int i = 0; i < cu->n_graphs; i++) n += cu->graphs[i].state == GRAPH_READY;
    return n;
}
