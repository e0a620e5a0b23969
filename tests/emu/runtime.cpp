/* runtime.cpp: the CUDA runtime for a whole GPU program on the CPU emulator (tests/emu/emu_runtime.h): the
 * real kernels/cuda/device.cu and every kernel file run on it, with cuBLAS and cuDNN from
 * tests/emu/cublas_emu.cpp and tests/emu/cudnn_emu.cpp.
 *
 * It is strict where a GPU is lenient, so that what would be a race or a fault there shows here:
 *   - work is deferred: a stream's launches, copies and library calls are queued, and run only when the host
 *     waits for them (cudaStreamSynchronize, cudaEventSynchronize, a copy to pageable memory, which CUDA
 *     makes synchronous, cudaFree, which waits for the device), a stream running another's queue up to an
 *     event it waits on. A host that reads a result before waiting for it reads the old bytes; a host that
 *     rewrites a pinned buffer an upload has not read yet changes what the upload copies. A copy from
 *     pageable memory takes its bytes at the call, as CUDA's staging does. EMU_SCHEDULE runs some streams' work
 *     as it is queued, or at a coin's toss, instead (see policy_of): two streams then run in orders only the
 *     program's waits constrain, which a missing wait between them does not survive;
 *   - memory: every pointer a launch, a copy or a library is given as device memory must lie inside a live
 *     cudaMalloc allocation (pinned host memory passes for a copy's host side only), and cudaFree of anything
 *     else is an error; fresh device memory is NaN bytes (0xff), and a guard after each allocation's end,
 *     checked at its cudaFree and at exit, shows a write past it; freed allocations are kept out of reuse (up
 *     to 1 GiB), so that a stale pointer to one (a graph replayed after a free) is an error; copies and memsets
 *     check their ranges again when they run;
 *   - CUDA graphs: a capture records the stream's work, which runs at each cudaGraphLaunch from the copies
 *     of the arguments taken at capture; a synchronization or an allocation from the capturing thread, a
 *     legacy-stream operation that would wait for a blocking stream being captured, or a wait on an event
 *     recorded outside the capture invalidates it, as CUDA does (cudaStreamCaptureModeThreadLocal);
 *   - a launch's configuration is checked when it is made (a bad one is an error, and cudaGetLastError's);
 *   - races between streams, found when work is queued, whatever order the streams then run in: each op carries
 *     a vector clock (for each stream, how many of its ops are ordered before it: by the stream's own order,
 *     the events it waited for, the legacy stream's implicit waits, and what the host had waited for when it
 *     queued the op); the device bytes an op touches (a copy's or a memset's range, a launch's pointer
 *     arguments: the first element of each, written unless the parameter points to const) are checked
 *     against those other streams' ops touched and are not ordered before it, and an overlap where one of
 *     the two writes is an error naming both (check_touches; cuBLAS's and cuDNN's calls give their operands'
 *     extents, tests/emu/cublas_emu.cpp and cudnn_emu.cpp);
 *   - faults on demand, so that the program's ways out of them run: the N-th allocation failing
 *     (EMU_FAIL_ALLOC=N), the N-th launch refused (EMU_FAIL_LAUNCH=N; tests/emu/faults.sh);
 *   - at exit, work never waited for is run (for its checks), and the count of errors found (emu_errors)
 *     decides the exit status.
 * One GPU, compute capability 9.0. Host threads are serialized by one lock. */
#include "cuda_emu.h"

#include <cuda_profiler_api.h>

#include <unistd.h>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace {

typedef std::function<void()> Op;

/* When a stream's queued work runs (EMU_SCHEDULE): LAZY waits for the host (the default), EAGER runs each op as it is
 * queued, COIN runs the queue so far at a fair coin's toss after each op. Two streams whose policies differ run
 * their work in the order of the program's waits only: a wait missing between them shows under some pairing. */
enum Policy { LAZY, EAGER, COIN };

/* For each stream (its number: 0 the legacy stream, then in order of creation), how many of its ops are ordered
 * before a point of the program; missing entries are 0. */
typedef std::vector<unsigned long long> Clock;
unsigned long long entry(const Clock &c, size_t i) { return i < c.size() ? c[i] : 0; }
void join(Clock &a, const Clock &b) {
    if (a.size() < b.size()) a.resize(b.size());
    for (size_t i = 0; i < b.size(); i++) a[i] = std::max(a[i], b[i]);
}

/* device bytes [lo, hi) an op touches */
struct Span {
    uintptr_t lo, hi;
    bool write;
};

struct Stream {
    int number = 0;                                      /* its entry in a Clock */
    Clock clock;                                         /* what its last queued op is ordered after, itself included */
    std::vector<Span> captured;                          /* the bytes the capture's ops touch */
    Policy policy = LAZY;
    std::deque<std::pair<unsigned long long, Op>> queue; /* (sequence number, op) not yet run */
    unsigned long long issued = 0, done = 0;             /* ops queued so far; ops run so far */
    bool capturing = false, invalid = false;
    bool blocking = true; /* created without cudaStreamNonBlocking: the legacy stream waits for it */
    std::vector<Op> *graph = nullptr;                    /* the capture's ops */
    bool destroyed = false; /* by cudaStreamDestroy: its queued work still runs, and events may still name it */
};

struct Event {
    Clock clock;                   /* what a wait for it is ordered after */
    Stream *stream = nullptr;      /* the stream it was last recorded on (NULL: never, or in a capture) */
    unsigned long long at = 0;     /* complete once that stream has run this many ops */
    bool captured = false;         /* last recorded inside a capture: it stands for graph nodes, and may not be
                                    * waited for or queried from the host (CUDA Programming Guide, stream capture) */
};

struct Graph {
    std::vector<Op> ops;
    std::vector<Span> spans; /* the bytes its ops touch */
};

std::recursive_mutex lock;
Stream legacy; /* stream 0 */
std::vector<Stream *> streams; /* every stream made, for cudaFree's and cudaDeviceSynchronize's wait */
std::map<uintptr_t, size_t> device_mem, pinned_mem; /* live allocations: start -> bytes */
/* freed device allocations, kept (not reused) up to QUARANTINE bytes, oldest released first: a stale pointer to one
 * (a graph replayed after a free, say) is an error rather than a write into whatever took its place */
std::map<uintptr_t, size_t> freed_mem;
std::deque<uintptr_t> freed_order;
size_t freed_bytes;
const size_t QUARANTINE = (size_t)1 << 30;
thread_local cudaError_t last_error = cudaSuccess;
thread_local Stream *thread_capture = nullptr; /* the stream this thread captures; see invalidate_capture */

Stream *stream_of(cudaStream_t s) { return s ? (Stream *)s : &legacy; }

const std::pair<const uintptr_t, size_t> *find(const std::map<uintptr_t, size_t> &m, const void *p) {
    auto it = m.upper_bound((uintptr_t)p);
    if (it == m.begin()) return nullptr;
    --it;
    return (uintptr_t)p < it->first + (it->second ? it->second : 1) ? &*it : nullptr;
}

bool in(const std::map<uintptr_t, size_t> &m, const void *p, size_t bytes) {
    auto a = find(m, p);
    return a && (uintptr_t)p + bytes <= a->first + a->second;
}

/* An allocation's bytes past its end, to its 256-byte boundary and 256 more: a guard pattern, checked when it is
 * freed and at exit, so that a kernel or a copy that wrote past the end shows (a read past it does not). */
const unsigned char GUARD = 0xa5;
size_t padded(size_t bytes) { return (bytes + 255) / 256 * 256 + 256; }
void guard_check(uintptr_t base, size_t bytes) {
    const unsigned char *g = (const unsigned char *)base + bytes;
    for (size_t i = 0; i < padded(bytes) - bytes; i++)
        if (g[i] != GUARD) {
            emu_error("a device allocation of %zu bytes was written past its end (at byte %zu)", bytes, bytes + i);
            return;
        }
}

/* Where p lies in or near device memory that is not its own to use: the guard past a live allocation's end, or
 * a freed allocation; NULL when neither. */
const char *device_shadow(const void *p) {
    auto it = device_mem.upper_bound((uintptr_t)p);
    if (it != device_mem.begin()) {
        --it;
        if ((uintptr_t)p >= it->first + it->second && (uintptr_t)p < it->first + padded(it->second)) return "past the end of a device allocation";
    }
    return find(freed_mem, p) ? "in freed device memory" : nullptr;
}

/* ---- the race check ---- */

Clock host_clock;          /* the ops the host has waited for (one clock for all host threads: it orders them in the
                            * order this run happened to take, which may hide a race between threads, never invent one) */
bool host_moved;           /* since the last pruning */
thread_local std::vector<Span> pending; /* emu_access's bytes, for this thread's next op */

/* The bytes ops touched that a later op might still race with: by start, then the op's stream, its number there,
 * and its name; one entry per (range, stream, write), the latest. */
struct Touch {
    uintptr_t hi;
    int stream;
    unsigned long long at;
    bool write;
    const char *what;
};
std::multimap<uintptr_t, Touch> touches;
uintptr_t widest; /* the longest range recorded, to bound the search */

/* what the host has waited for: every later op is ordered after it */
void waited(const Clock &c) { join(host_clock, c), host_moved = true; }

/* s's next op (number s->issued) ordered: after the host's waits, and for the legacy stream after the blocking
 * streams' queued work (and they after its), as CUDA's legacy stream synchronizes */
void order(Stream *s) {
    join(s->clock, host_clock);
    if (s == &legacy) {
        for (Stream *b : streams)
            if (b->blocking) join(s->clock, b->clock);
    } else if (s->blocking) {
        join(s->clock, legacy.clock);
    }
    if (s->clock.size() <= (size_t)s->number) s->clock.resize(s->number + 1);
    s->clock[s->number] = s->issued;
}

/* op `what` of stream s (its clock set) touching spans: an error for each earlier touch of the same bytes by
 * another stream that is not ordered before it, one of the two writing; then the spans recorded */
void check_touches(Stream *s, const std::vector<Span> &spans, const char *what) {
    if (host_moved) { /* touches the host has waited past are ordered before anything queued from now on */
        for (auto it = touches.begin(); it != touches.end();)
            it = entry(host_clock, it->second.stream) >= it->second.at ? touches.erase(it) : std::next(it);
        host_moved = false;
    }
    for (const Span &p : spans) {
        for (auto it = touches.lower_bound(p.lo > widest ? p.lo - widest : 0); it != touches.end() && it->first < p.hi; ++it) {
            const Touch &t = it->second;
            if (t.stream == s->number || t.hi <= p.lo || !(t.write || p.write) || entry(s->clock, t.stream) >= t.at) continue;
            emu_error("race: %s (stream %d) %s device bytes at %#lx that %s (stream %d) %s, and no wait orders the two",
                      what, s->number, p.write ? "writes" : "reads", (unsigned long)std::max(p.lo, it->first), t.what, t.stream,
                      t.write ? "wrote" : "read");
        }
        bool updated = false;
        for (auto r = touches.equal_range(p.lo); r.first != r.second && !updated; ++r.first) {
            Touch &t = r.first->second;
            if (t.hi == p.hi && t.stream == s->number && t.write == p.write) t.at = s->issued, t.what = what, updated = true;
        }
        if (!updated) touches.insert({p.lo, Touch{p.hi, s->number, s->issued, p.write, what}});
        widest = std::max(widest, p.hi - p.lo);
    }
}

/* Runs stream s's queue up to (and including) the op numbered upto. */
void run_until(Stream *s, unsigned long long upto) {
    while (!s->queue.empty() && s->queue.front().first <= upto) {
        Op op = std::move(s->queue.front().second);
        unsigned long long n = s->queue.front().first;
        s->queue.pop_front();
        op();
        s->done = n;
    }
}
void drain(Stream *s) { run_until(s, s->issued); }

void drain_all() {
    drain(&legacy);
    for (Stream *s : streams) drain(s);
}
/* the host has waited for everything queued */
void waited_all() {
    waited(legacy.clock);
    for (Stream *s : streams) waited(s->clock);
}

/* s's capture invalidated, as CUDA does: cudaStreamEndCapture then fails and device.cu runs the work plainly */
void invalidate(Stream *s, const char *why) {
    s->invalid = true;
    emu_note("a CUDA graph's capture invalidated by %s", why);
}

/* A call the capturing thread may not make while it captures (cudaStreamCaptureModeThreadLocal) */
bool invalidate_capture(const char *why) {
    if (!thread_capture) return false;
    invalidate(thread_capture, why);
    return true;
}

cudaError_t fail(cudaError_t e) { return last_error = e; }
long long launches; /* kernel launches made (EMU_FAIL_LAUNCH) */
void at_exit_once();

/* EMU_FAIL_ALLOC=N: the N-th allocation (cudaMalloc or cudaHostAlloc, counted from 1) fails as a full GPU's would,
 * so that every path out of a failed allocation can be run (tests/emu/faults.sh) */
bool out_of_memory() {
    static long long fail_at = getenv("EMU_FAIL_ALLOC") ? atoll(getenv("EMU_FAIL_ALLOC")) : 0;
    static long long count;
    return fail_at > 0 && ++count == fail_at;
}

/* EMU_SCHEDULE=letters, one per stream made (l: LAZY, e: EAGER, c: COIN), the n-th stream made taking letter
 * (n - 1) mod their count: "le" makes each context's compute stream lazy and its copy stream eager. The legacy
 * stream stays lazy (every call that uses it waits for it). The coins are EmuRng's from EMU_SCHEDULE_SEED (1). */
Policy policy_of(size_t number) {
    static const char *letters = getenv("EMU_SCHEDULE") && *getenv("EMU_SCHEDULE") ? getenv("EMU_SCHEDULE") : "l";
    char c = letters[(number - 1) % strlen(letters)];
    if (c != 'l' && c != 'e' && c != 'c') emu_error("EMU_SCHEDULE=%s: a letter %c, not l, e or c", letters, c);
    return c == 'e' ? EAGER : c == 'c' ? COIN : LAZY;
}
bool coin() {
    static EmuRng rng;
    static bool seeded = (rng.seed(getenv("EMU_SCHEDULE_SEED") ? strtoull(getenv("EMU_SCHEDULE_SEED"), NULL, 10) : 1), true);
    (void)seeded;
    return rng() & 1;
}

} // namespace

void emu_stream_op(cudaStream_t st, std::function<void()> op, const char *what) {
    std::lock_guard<std::recursive_mutex> g(lock);
    Stream *s = stream_of(st);
    if (s == &legacy) /* the legacy stream would wait for a blocking stream being captured: not allowed */
        for (Stream *c : streams)
            if (c->capturing && c->blocking) invalidate(c, "an operation on the legacy stream"), fail(cudaErrorStreamCaptureImplicit);
    static int trace = getenv("EMU_TRACE") && atoi(getenv("EMU_TRACE")); /* 1: each op's name as it is queued */
    if (trace) fprintf(stderr, "EMU TRACE %s %s%s\n", s == &legacy ? "legacy" : "stream", s->capturing ? "captured " : "", what);
    std::vector<Span> spans;
    spans.swap(pending);
    if (s->capturing) {
        s->graph->push_back(std::move(op));
        s->captured.insert(s->captured.end(), spans.begin(), spans.end());
        return;
    }
    s->queue.emplace_back(++s->issued, std::move(op));
    order(s);
    check_touches(s, spans, what);
    static int at_once = getenv("EMU_SYNC") && atoi(getenv("EMU_SYNC")); /* 1: no deferral, to tell what it changes */
    if (at_once || s->policy == EAGER || (s->policy == COIN && coin())) drain(s);
}

void emu_access(const void *p, size_t bytes, bool write) {
    if (bytes) pending.push_back(Span{(uintptr_t)p, (uintptr_t)p + bytes, write});
}

bool emu_device_range(const void *p, size_t bytes, const char *what) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (!bytes || in(device_mem, p, bytes)) return true;
    auto a = find(device_mem, p);
    if (a)
        emu_error("%s: %zu bytes at offset %zu of a %zu-byte allocation run past its end", what, bytes,
                  (size_t)((uintptr_t)p - a->first), a->second);
    else
        emu_error("%s: %p (%zu bytes) is %s", what, p, bytes,
                  device_shadow(p) ? device_shadow(p) : find(pinned_mem, p) ? "pinned host memory, not device memory" : "not device memory");
    return false;
}

void emu_kernel_pointer(const char *kernel, int arg, const void *p) {
    std::lock_guard<std::recursive_mutex> g(lock);
    auto before = find(device_mem, (const char *)p - 1); /* one past an allocation's end: an empty range's start */
    if (find(device_mem, p) || (before && before->first + before->second == (uintptr_t)p)) return;
    const char *shadow = device_shadow(p);
    emu_error("%s: argument %d (%p) is %s", kernel, arg, p,
              shadow ? shadow : find(pinned_mem, p) ? "pinned host memory, not device memory" : "not device memory");
}

bool emu_launch_ok(const EmuCfg &c, const char *name) {
    /* EMU_FAIL_LAUNCH=N: the N-th launch (counted from 1) fails as one asking too much of the GPU would, so that
     * every launch's check is run (tests/emu/faults.sh); EMU_COUNT_LAUNCHES=1 prints the count at exit */
    static long long fail_at = getenv("EMU_FAIL_LAUNCH") ? atoll(getenv("EMU_FAIL_LAUNCH")) : 0;
    std::lock_guard<std::recursive_mutex> g(lock);
    at_exit_once();
    if (++launches == fail_at) {
        bool captured = stream_of(c.stream)->capturing;
        emu_note("launch %lld (%s) refused (EMU_FAIL_LAUNCH)%s", launches, name, captured ? ", inside a CUDA graph's capture" : "");
        if (captured) invalidate(stream_of(c.stream), "a refused launch");
        return fail(cudaErrorLaunchOutOfResources), false;
    }
    size_t threads = (size_t)c.block.x * c.block.y * c.block.z;
    bool ok = c.grid.x && c.grid.y && c.grid.z && threads && threads <= 1024 && c.grid.y <= 65535 && c.grid.z <= 65535 &&
              c.block.z <= 64 && c.smem <= 227 * 1024;
    if (!ok) {
        emu_error("%s: launch of grid (%u, %u, %u), block (%u, %u, %u), %zu bytes of shared memory: an invalid configuration", name,
                  c.grid.x, c.grid.y, c.grid.z, c.block.x, c.block.y, c.block.z, c.smem);
        fail(cudaErrorInvalidConfiguration);
    }
    return ok;
}

namespace {
/* the exit status: the errors the emulator found fail the program, whatever its own tests said */
void report_at_exit() {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (getenv("EMU_COUNT_LAUNCHES") && atoi(getenv("EMU_COUNT_LAUNCHES"))) fprintf(stderr, "EMU launches: %lld\n", launches);
    unsigned long long pending = legacy.issued - legacy.done;
    for (Stream *s : streams) pending += s->issued - s->done;
    if (pending) emu_note("%llu operations never waited for at exit: run now, for their checks", pending);
    drain_all();
    for (auto &a : device_mem) guard_check(a.first, a.second);
    size_t live = device_mem.size();
    if (live) emu_note("%zu device allocations live at exit", live);
    if (emu_errors) {
        fprintf(stderr, "cuda emulator: %d error(s) found\n", emu_errors);
        fflush(stdout);
        _exit(1);
    }
}
/* registered at the first allocation or stream, after every static object is made, so that it runs before any
 * is destroyed (the emulator's own, which a drained launch uses) */
void at_exit_once() {
    static bool done = false;
    if (!done) done = true, atexit(report_at_exit);
}
} // namespace

extern "C" {

/* ---- device and errors ---- */
cudaError_t cudaGetDeviceCount(int *count) { return *count = 1, cudaSuccess; }
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int *device) { return *device = 0, cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device) {
    if (device) return fail(cudaErrorInvalidDevice);
    switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = 132; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = 227 * 1024; return cudaSuccess;
    default: emu_error("cudaDeviceGetAttribute: attribute %d not emulated", (int)attr); return fail(cudaErrorInvalidValue);
    }
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory (emulated)";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch (emulated)";
    case cudaErrorInvalidValue: return "invalid argument (emulated)";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture (emulated)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing (emulated)";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream (emulated)";
    default: return "CUDA error (emulated)";
    }
}
cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes *attr, const void *) {
    memset(attr, 0, sizeof *attr);
    attr->maxThreadsPerBlock = 1024, attr->ptxVersion = attr->binaryVersion = 90;
    return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void *, enum cudaFuncAttribute, int) { return cudaSuccess; }
cudaError_t cudaProfilerStart(void) { return cudaSuccess; }
cudaError_t cudaProfilerStop(void) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (invalidate_capture("cudaDeviceSynchronize")) return fail(cudaErrorStreamCaptureUnsupported);
    for (Stream *s : streams) /* a device wait from any thread invalidates every capture */
        if (s->capturing) return invalidate(s, "cudaDeviceSynchronize from another thread"), fail(cudaErrorStreamCaptureUnsupported);
    drain_all(), waited_all();
    return cudaSuccess;
}

/* ---- memory ---- */
cudaError_t cudaMalloc(void **p, size_t bytes) {
    std::lock_guard<std::recursive_mutex> g(lock);
    at_exit_once();
    *p = NULL;
    if (invalidate_capture("cudaMalloc")) return fail(cudaErrorStreamCaptureUnsupported);
    if (out_of_memory()) return fail(cudaErrorMemoryAllocation);
    /* NaN-filled, as fresh device memory is garbage: a read before any write shows */
    void *m = aligned_alloc(256, padded(bytes));
    if (!m) return fail(cudaErrorMemoryAllocation);
    static int fill = getenv("EMU_DEVICE_FILL") ? atoi(getenv("EMU_DEVICE_FILL")) : 0xff; /* 0 to tell a read before a write */
    memset(m, fill, bytes);
    memset((char *)m + bytes, GUARD, padded(bytes) - bytes);
    device_mem[(uintptr_t)m] = bytes;
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) { /* an H200's memory, less what is allocated here */
    std::lock_guard<std::recursive_mutex> g(lock);
    size_t used = 0;
    for (auto &a : device_mem) used += padded(a.second);
    *total = (size_t)143771 << 20, *free_bytes = used < *total ? *total - used : 0;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (!p) return cudaSuccess;
    if (invalidate_capture("cudaFree")) return fail(cudaErrorStreamCaptureUnsupported);
    drain_all(), waited_all(); /* cudaFree waits for the device */
    auto it = device_mem.find((uintptr_t)p);
    if (it == device_mem.end()) {
        emu_error("cudaFree(%p): not an allocation of cudaMalloc", p);
        return fail(cudaErrorInvalidValue);
    }
    guard_check(it->first, it->second);
    freed_mem[it->first] = it->second, freed_order.push_back(it->first), freed_bytes += padded(it->second);
    memset(p, 0xff, it->second); /* a read through a stale pointer that escapes the checks reads NaN */
    device_mem.erase(it);
    while (freed_bytes > QUARANTINE && !freed_order.empty()) {
        uintptr_t old = freed_order.front();
        freed_order.pop_front();
        freed_bytes -= padded(freed_mem[old]);
        freed_mem.erase(old);
        free((void *)old);
    }
    return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int) {
    std::lock_guard<std::recursive_mutex> g(lock);
    at_exit_once();
    *p = NULL;
    if (out_of_memory()) return fail(cudaErrorMemoryAllocation);
    *p = malloc(bytes ? bytes : 1);
    if (!*p) return fail(cudaErrorMemoryAllocation);
    pinned_mem[(uintptr_t)*p] = bytes;
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }
cudaError_t cudaFreeHost(void *p) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (!p) return cudaSuccess;
    drain_all(), waited_all(); /* a pending copy may still read it */
    auto it = pinned_mem.find((uintptr_t)p);
    if (it == pinned_mem.end()) {
        emu_error("cudaFreeHost(%p): not an allocation of cudaHostAlloc", p);
        return fail(cudaErrorInvalidValue);
    }
    pinned_mem.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p) {
    std::lock_guard<std::recursive_mutex> g(lock);
    memset(a, 0, sizeof *a);
    if (find(device_mem, p)) a->type = cudaMemoryTypeDevice, a->devicePointer = (void *)p;
    else if (find(pinned_mem, p)) a->type = cudaMemoryTypeHost, a->hostPointer = (void *)p, a->devicePointer = (void *)p;
    else a->type = cudaMemoryTypeUnregistered;
    return cudaSuccess;
}

/* A copy's two sides checked, and the op queued: a pageable source is read now (CUDA stages it before
 * returning), a pageable destination makes the call wait for the copy (as CUDA's does). */
static cudaError_t copy(void *d, const void *s, size_t n, enum cudaMemcpyKind kind, cudaStream_t st, const char *what) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (!n) return cudaSuccess;
    bool d_dev = find(device_mem, d), s_dev = find(device_mem, s);
    bool d_pin = find(pinned_mem, d), s_pin = find(pinned_mem, s);
    /* an address just past a device allocation, or in a freed one, is no host memory (cudaMemcpyDefault would take it
     * for one) */
    for (const void *x : {(const void *)d, s})
        if (!find(device_mem, x) && device_shadow(x)) {
            emu_error("%s: %p is %s", what, x, device_shadow(x));
            return fail(cudaErrorInvalidValue);
        }
    if ((kind == cudaMemcpyHostToDevice && (!d_dev || s_dev)) || (kind == cudaMemcpyDeviceToHost && (d_dev || !s_dev)) ||
        (kind == cudaMemcpyDeviceToDevice && (!d_dev || !s_dev)) || (kind == cudaMemcpyHostToHost && (d_dev || s_dev))) {
        emu_error("%s: kind %d from %s to %s memory", what, (int)kind, s_dev ? "device" : "host", d_dev ? "device" : "host");
        return fail(cudaErrorInvalidValue);
    }
    if ((d_dev && !emu_device_range(d, n, what)) || (s_dev && !emu_device_range(s, n, what))) return fail(cudaErrorInvalidValue);
    if ((d_pin && !in(pinned_mem, d, n)) || (s_pin && !in(pinned_mem, s, n))) {
        emu_error("%s: %zu bytes past the end of a pinned buffer", what, n);
        return fail(cudaErrorInvalidValue);
    }
    Stream *sq = stream_of(st);
    if (d_dev) emu_access(d, n, true);
    if (s_dev) emu_access(s, n, false);
    if (!s_dev && !s_pin) { /* pageable source: its bytes now */
        std::shared_ptr<std::vector<unsigned char>> snap = std::make_shared<std::vector<unsigned char>>((const unsigned char *)s,
                                                                                                        (const unsigned char *)s + n);
        if (sq->capturing) emu_error("%s: a copy from pageable memory inside a CUDA graph's capture", what);
        emu_stream_op(st, [d, snap, n, d_dev, what]() {
            if (!d_dev || emu_device_range(d, n, what)) memcpy(d, snap->data(), n); /* again when it runs: a graph's replay */
        }, what);
    } else {
        emu_stream_op(st, [d, s, n, d_dev, s_dev, what]() {
            if ((!d_dev || emu_device_range(d, n, what)) && (!s_dev || emu_device_range(s, n, what))) memmove(d, s, n);
        }, what);
    }
    if (!d_dev && !d_pin) {
        if (sq->capturing) emu_error("%s: a copy to pageable memory inside a CUDA graph's capture", what);
        else drain(sq), waited(sq->clock);
    }
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind kind, cudaStream_t st) {
    return copy(d, s, n, kind, st, "cudaMemcpyAsync");
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind kind) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (invalidate_capture("cudaMemcpy")) return fail(cudaErrorStreamCaptureImplicit);
    cudaError_t e = copy(d, s, n, kind, 0, "cudaMemcpy");
    drain(&legacy), waited(legacy.clock); /* synchronous, on the legacy stream: not ordered after the non-blocking streams' work */
    return e;
}
cudaError_t cudaMemcpy2DAsync(void *d, size_t dpitch, const void *s, size_t spitch, size_t width, size_t height,
                              enum cudaMemcpyKind kind, cudaStream_t st) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (!height || !width) return cudaSuccess;
    if (dpitch < width || spitch < width) return fail(cudaErrorInvalidPitchValue);
    size_t dn = dpitch * (height - 1) + width, sn = spitch * (height - 1) + width;
    bool d_dev = find(device_mem, d), s_dev = find(device_mem, s);
    if ((d_dev && !emu_device_range(d, dn, "cudaMemcpy2DAsync")) || (s_dev && !emu_device_range(s, sn, "cudaMemcpy2DAsync")))
        return fail(cudaErrorInvalidValue);
    if (!d_dev || !s_dev) {
        emu_error("cudaMemcpy2DAsync: only device to device is emulated (kind %d)", (int)kind);
        return fail(cudaErrorInvalidValue);
    }
    emu_access(d, dn, true), emu_access(s, sn, false);
    emu_stream_op(st, [=]() {
        for (size_t r = 0; r < height; r++) memmove((char *)d + r * dpitch, (const char *)s + r * spitch, width);
    }, "cudaMemcpy2DAsync");
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st) {
    if (!n) return cudaSuccess;
    if (!emu_device_range(d, n, "cudaMemsetAsync")) return fail(cudaErrorInvalidValue);
    emu_access(d, n, true);
    emu_stream_op(st, [=]() {
        if (emu_device_range(d, n, "cudaMemsetAsync")) memset(d, v, n); /* again when it runs: a graph's replay */
    }, "cudaMemsetAsync");
    return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (invalidate_capture("cudaMemset")) return fail(cudaErrorStreamCaptureImplicit);
    cudaError_t e = cudaMemsetAsync(d, v, n, 0);
    drain(&legacy), waited(legacy.clock);
    return e;
}

/* ---- streams and events ---- */
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
    std::lock_guard<std::recursive_mutex> g(lock);
    at_exit_once();
    Stream *n = new Stream;
    n->blocking = !(flags & cudaStreamNonBlocking);
    streams.push_back(n);
    n->number = (int)streams.size();
    n->policy = policy_of(streams.size());
    *s = (cudaStream_t)n;
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t st) {
    std::lock_guard<std::recursive_mutex> g(lock);
    Stream *s = stream_of(st);
    if (s == &legacy || s->destroyed) return fail(cudaErrorInvalidResourceHandle);
    if (s->capturing) {
        emu_error("cudaStreamDestroy of a stream being captured");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    /* it returns at once and its queued work completes later (cudaStreamDestroy): the object is kept, so that the
     * work still runs when the host waits for the device, and events recorded on it still name it */
    s->destroyed = true;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t st) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (invalidate_capture("cudaStreamSynchronize")) return fail(cudaErrorStreamCaptureUnsupported);
    if (stream_of(st)->capturing) /* from another thread: the stream being captured may not be waited for */
        return invalidate(stream_of(st), "cudaStreamSynchronize on its stream from another thread"), fail(cudaErrorStreamCaptureUnsupported);
    drain(stream_of(st)), waited(stream_of(st)->clock);
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int) {
    std::lock_guard<std::recursive_mutex> g(lock);
    *e = (cudaEvent_t) new Event;
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    std::lock_guard<std::recursive_mutex> g(lock);
    delete (Event *)e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t st) {
    std::lock_guard<std::recursive_mutex> g(lock);
    Event *e = (Event *)ev;
    Stream *s = stream_of(st);
    if (s->capturing) { /* it now stands for the capture's nodes so far (no event node without cudaEventRecordExternal) */
        e->stream = nullptr, e->captured = true;
        return cudaSuccess;
    }
    e->stream = s, e->at = s->issued, e->captured = false, e->clock = s->clock;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t ev) {
    std::lock_guard<std::recursive_mutex> g(lock);
    if (invalidate_capture("cudaEventSynchronize")) return fail(cudaErrorStreamCaptureUnsupported);
    Event *e = (Event *)ev;
    if (e->captured) {
        emu_error("cudaEventSynchronize on an event recorded inside a CUDA graph's capture");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    if (e->stream) run_until(e->stream, e->at), waited(e->clock);
    return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t ev) {
    std::lock_guard<std::recursive_mutex> g(lock);
    Event *e = (Event *)ev;
    if (e->captured) {
        emu_error("cudaEventQuery on an event recorded inside a CUDA graph's capture");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    /* not ready until the host waits: a program that polls must wait in the end */
    if (e->stream && e->stream->done < e->at) return cudaErrorNotReady;
    if (e->stream) waited(e->clock);
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t st, cudaEvent_t ev, unsigned int) {
    std::lock_guard<std::recursive_mutex> g(lock);
    Event *e = (Event *)ev;
    if (e->captured && !stream_of(st)->capturing) { /* it would join the capture: not emulated, and not done here */
        emu_error("cudaStreamWaitEvent on an event recorded inside a CUDA graph's capture, from a stream outside it");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    if (!e->stream) return cudaSuccess;
    if (stream_of(st)->capturing) /* an event from outside the capture, without cudaEventWaitExternal: not allowed */
        return invalidate(stream_of(st), "a wait on an event recorded outside it"), fail(cudaErrorStreamCaptureIsolation);
    Stream *from = e->stream;
    unsigned long long at = e->at;
    emu_stream_op(st, [from, at]() { run_until(from, at); }, "cudaStreamWaitEvent");
    join(stream_of(st)->clock, e->clock); /* what the stream queues next is ordered after the event */
    return cudaSuccess;
}

/* ---- CUDA graphs ---- */
cudaError_t cudaStreamBeginCapture(cudaStream_t st, enum cudaStreamCaptureMode) {
    std::lock_guard<std::recursive_mutex> g(lock);
    Stream *s = stream_of(st);
    if (s == &legacy || s->capturing || thread_capture) return fail(cudaErrorIllegalState);
    s->capturing = true, s->invalid = false, s->graph = new std::vector<Op>, s->captured.clear();
    thread_capture = s;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t st, cudaGraph_t *graph) {
    std::lock_guard<std::recursive_mutex> g(lock);
    Stream *s = stream_of(st);
    *graph = NULL;
    if (!s->capturing) return fail(cudaErrorIllegalState);
    if (thread_capture != s) return fail(cudaErrorStreamCaptureWrongThread);
    s->capturing = false, thread_capture = nullptr;
    std::vector<Op> *ops = s->graph;
    s->graph = nullptr;
    if (s->invalid) {
        delete ops;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    Graph *gr = new Graph;
    gr->ops = std::move(*ops), gr->spans.swap(s->captured);
    delete ops;
    *graph = (cudaGraph_t)gr;
    return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t st, enum cudaStreamCaptureStatus *status) {
    std::lock_guard<std::recursive_mutex> g(lock);
    Stream *s = stream_of(st);
    *status = !s->capturing ? cudaStreamCaptureStatusNone : s->invalid ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long) {
    std::lock_guard<std::recursive_mutex> g(lock);
    Graph *copy = new Graph(*(Graph *)graph);
    *exec = (cudaGraphExec_t)copy;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    std::lock_guard<std::recursive_mutex> g(lock);
    delete (Graph *)graph;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    std::lock_guard<std::recursive_mutex> g(lock);
    delete (Graph *)exec;
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t st) {
    std::lock_guard<std::recursive_mutex> g(lock);
    Graph *gr = (Graph *)exec;
    std::shared_ptr<std::vector<Op>> ops = std::make_shared<std::vector<Op>>(gr->ops); /* the graph may be destroyed first */
    for (const Span &p : gr->spans) emu_access((const void *)p.lo, p.hi - p.lo, p.write);
    emu_stream_op(st, [ops]() {
        for (Op &op : *ops) op();
    }, "cudaGraphLaunch");
    return cudaSuccess;
}

} // extern "C"
