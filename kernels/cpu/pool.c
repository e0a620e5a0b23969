/* pool.c: SIMD detection and the worker-thread pool every fast op runs on.
 *
 * The pool is a parallel-for: mrec_pool_run publishes a job of n_tasks
 * tasks, and the workers and the calling thread claim task indices one at a
 * time from an atomic counter until none is left. The caller then waits only
 * for tasks that were claimed and are still running: a worker that is asleep
 * or descheduled holds no task, so the caller simply runs the tasks itself
 * and returns without it. Which thread runs a task never changes what the
 * task computes (ops split work by the task index, never by the thread, and
 * every task runs in the caller's floating-point mode), so results are the
 * same bits on any number of threads and any scheduling.
 *
 * Idle threads sleep on a futex (a condition variable off Linux). Between
 * two jobs a worker first spins for a while, because a model issues op
 * after op and a wake-up per op would cost more than small ops themselves;
 * the spin is adaptive: each thread doubles its spin when spinning (or a
 * spin as long as the cap) would have caught the next job, and halves it
 * when it would not, so on a busy machine, where a spinning thread only
 * takes time from the thread it waits for, spinning dies out. An idle pool
 * thus sleeps after at most SPIN_MAX_NS and uses no CPU.
 *
 * Threads are not assumed to pay. When other processes keep the cores busy,
 * a worker is often descheduled in the middle of a task and the caller has
 * to wait for it; the pool then measures that running jobs on the caller
 * alone is faster, and does so for a while before it tries threads again
 * (see WINDOW_NS).
 *
 * Each thread also owns a scratch buffer for GEMM packing, so no op
 * allocates while it runs. The default thread count is the number of cores
 * this process may run on (its affinity mask), not the machine's count.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "../mrec_kernels.h"
#include "gemm_internal.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Whether threads pay is measured, not assumed: on a machine busy with
 * other work, a worker may be descheduled holding a task and the caller
 * waits for it, so one thread can beat several. The caller alternates
 * measuring windows, one with threads and one on its own, compares their
 * rates (tasks per second spent in mrec_pool_run; the same ops split into
 * the same tasks either way), then uses the faster mode for a run of
 * windows that doubles while the same mode keeps winning; threads must be
 * THREADS_MARGIN faster to be chosen, as a marginal gain is not worth the
 * cores they take from other work. A window is at
 * least WINDOW_NS of pool time and WINDOW_JOBS jobs. The window on its own
 * is skipped when threads clearly pay (a rate CLEAR_WIN times what the
 * caller's own CPU time per task promises alone), since on a many-core
 * machine it would cost many times its length. */
#define WINDOW_NS 10000000
#define WINDOW_JOBS 16
#define EXPLOIT_START 8
#define EXPLOIT_MAX 256
#define CLEAR_WIN 1.5
#define THREADS_MARGIN 1.1

/* Spin limits between jobs. A futex wake-up takes some 5-50 us to get a
 * sleeping thread running again, so spinning longer than a few of those
 * rarely pays; the start is a middle ground the first jobs correct. */
#define SPIN_MAX_NS 200000
#define SPIN_MIN_NS 2000
#define SPIN_START_NS 50000

/* AMX-TILE and AMX-BF16 (cpuid leaf 7, EDX bits 24 and 22), AVX-512 BF16 for
 * the conversions around them, the OS saving the tile state (XCR0 bits 17
 * and 18), and Linux's leave to use it, asked for once per process. */
static int amx_usable(void) {
#if defined(__x86_64__) && defined(__linux__)
    static int usable = -1;
    if (usable >= 0) return usable;
    unsigned a, b, c, d;
    int ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 24 & 1) && (d >> 22 & 1) &&
             __builtin_cpu_supports("avx512bf16");
    if (ok) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        ok = (lo & (3u << 17)) == (3u << 17);
    }
    /* ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18) */
    if (ok) ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    usable = ok;
    return ok;
#else
    return 0;
#endif
}

mrec_simd mrec_simd_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return amx_usable() ? MREC_SIMD_AMX : MREC_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MREC_SIMD_AVX2;
#endif
    return MREC_SIMD_SCALAR;
}

/* ---- the floating-point mode: subnormals flushed or kept ----
 * SSE's control bits (MXCSR without its six sticky exception flags): FTZ
 * (bit 15) writes a subnormal result as zero, DAZ (bit 6) reads a
 * subnormal input as zero. */
#if defined(__x86_64__) || defined(__i386__)
#define FP_FLAGS 0x3Fu
#define FP_FLUSH 0x8040u
static unsigned fp_mode_get(void) { return _mm_getcsr() & ~FP_FLAGS; }
static void fp_mode_set(unsigned mode) { _mm_setcsr((_mm_getcsr() & FP_FLAGS) | (mode & ~FP_FLAGS)); }
#else
#define FP_FLUSH 0u
static unsigned fp_mode_get(void) { return 0; }
static void fp_mode_set(unsigned mode) { (void)mode; }
#endif

mrec_fp_mode mrec_flush_subnormals_begin(void) {
    mrec_fp_mode before = {fp_mode_get()};
    fp_mode_set(before.bits | FP_FLUSH);
    return before;
}

/* FTZ and DAZ as they were; the rounding mode and the exception masks stay as they are */
void mrec_flush_subnormals_end(mrec_fp_mode before) { fp_mode_set((fp_mode_get() & ~FP_FLUSH) | (before.bits & FP_FLUSH)); }

int mrec_flushing_subnormals(void) { return FP_FLUSH && (fp_mode_get() & FP_FLUSH) == FP_FLUSH; }

const char *mrec_simd_name(mrec_simd simd) {
    switch (simd) {
    case MREC_SIMD_AMX:    return "amx";
    case MREC_SIMD_AVX512: return "avx512";
    case MREC_SIMD_AVX2:   return "avx2";
    case MREC_SIMD_SCALAR: return "scalar";
    }
    return "?";
}

struct mrec_pool {
    int n_threads;
    mrec_simd simd;
    pthread_t *threads; /* n_threads - 1 workers; thread 0 is the caller */
    float **scratch;    /* n_threads buffers of MREC_GEMM_SCRATCH_FLOATS */
    int n_started;      /* workers actually running, for destroy */
    struct mrec_pool *alone; /* n_threads one-thread views (mrec_pool_alone), or NULL in a view */

    /* The job. The caller writes these before it publishes `remaining`; a
     * thread reads them only after it has claimed a task, and the job cannot
     * end (so the caller cannot rewrite them) before that task is done. */
    mrec_task_fn fn;
    void *arg;
    int n_tasks;
    unsigned fp_mode; /* the caller's floating-point mode (fp_mode_get), which every task of the job runs in */

    /* Tasks not yet claimed: task n_tasks - r goes to whoever takes r > 0.
     * It may go below zero (every thread's last, failed claim); publishing
     * the next job stores a fresh count. */
    _Alignas(64) atomic_llong remaining;
    _Alignas(64) atomic_int done;   /* tasks of the current job that have finished */
    atomic_int caller_sleeping;     /* the caller sleeps on `done` */
    _Alignas(64) atomic_uint job_seq; /* bumped per job and at shutdown; workers sleep on it */
    atomic_int sleepers;            /* workers asleep on job_seq, so a job wakes them only when needed */
    atomic_int shutdown;

    /* only where there is no futex */
    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* Only the caller touches these, on a line of their own. */
    _Alignas(64) int caller_spin_ns; /* its adaptive spin while workers finish */
    enum { MEASURE_THREADS, MEASURE_SOLO, EXPLOIT } phase; /* whether threads pay: see WINDOW_NS */
    int solo;                        /* jobs run on the caller alone */
    int window_jobs, exploit_left, exploit_len, last_solo;
    int64_t window_ns, window_tasks, window_own_ns, window_own_tasks;
    double threads_rate;             /* tasks per ns in the last window with threads */
};

/* ---- sleeping and waking --------------------------------------------------
 * wait_word(w, v) returns when *w may differ from v (spurious returns are
 * allowed, callers loop); wake_word(w, n) wakes up to n of its waiters. */

#if defined(__linux__)
static void wait_word(mrec_pool *p, void *word, unsigned value) {
    (void)p;
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}
static void wake_word(mrec_pool *p, void *word, int n) {
    (void)p;
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
#else
static void wait_word(mrec_pool *p, void *word, unsigned value) {
    pthread_mutex_lock(&p->mu);
    if (atomic_load((atomic_uint *)word) == value) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
static void wake_word(mrec_pool *p, void *word, int n) {
    (void)word, (void)n;
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
#endif

static int64_t clock_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* Spins while *word == value, for at most *spin_ns; returns whether it saw
 * a change. The clock is read once every 64 pauses to keep the loop light. */
static int spin_while_equal(const atomic_uint *word, unsigned value, int spin_ns, int64_t start) {
    for (int i = 1; spin_ns > 0; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != value) return 1;
        cpu_relax();
        if (!(i & 63) && now_ns() - start > spin_ns) break;
    }
    return atomic_load_explicit(word, memory_order_acquire) != value;
}

/* The adaptive rule: waited_ns is how long the change took to come. */
static int next_spin(int spin_ns, int64_t waited_ns) {
    if (waited_ns <= SPIN_MAX_NS) {
        int grown = spin_ns < SPIN_MIN_NS ? SPIN_MIN_NS : 2 * spin_ns;
        return grown > SPIN_MAX_NS ? SPIN_MAX_NS : grown;
    }
    return spin_ns / 2 < SPIN_MIN_NS ? 0 : spin_ns / 2;
}

/* ---- running tasks ---- */

/* Claims and runs tasks until none is left. Each finished task counts in
 * `done`; the one that finishes the job wakes the caller if it sleeps. */
static int run_tasks(mrec_pool *p, int thread) {
    unsigned mode = fp_mode_get();
    for (int ran = 0;; ran++) {
        long long r = atomic_fetch_sub_explicit(&p->remaining, 1, memory_order_acq_rel);
        if (r <= 0) return ran;
        int n_tasks = p->n_tasks; /* read after the claim: stable until this task is done */
        if (p->fp_mode != mode) fp_mode_set(mode = p->fp_mode); /* on a worker: the caller's mode */
        p->fn(p->arg, n_tasks - (int)r, thread);
        /* nothing of the job may be read after this: the caller may move on */
        if (atomic_fetch_add(&p->done, 1) + 1 == n_tasks && atomic_load(&p->caller_sleeping))
            wake_word(p, &p->done, 1);
    }
}

static void *worker_main(void *varg) {
    void **wa = varg;
    mrec_pool *p = wa[0];
    int thread = (int)(intptr_t)wa[1];
    free(varg);
    unsigned seen = 0;
    int spin_ns = SPIN_START_NS;
    for (;;) {
        /* wait for a job other than the last one seen */
        int64_t start = now_ns();
        if (spin_while_equal(&p->job_seq, seen, spin_ns, start)) {
            spin_ns = next_spin(spin_ns, now_ns() - start);
        } else {
            /* the sleeper count is raised before job_seq is read again, and
             * the caller bumps job_seq before it reads the count: one of the
             * two sees the other, so no job goes unnoticed */
            atomic_fetch_add(&p->sleepers, 1);
            while (atomic_load(&p->job_seq) == seen) wait_word(p, &p->job_seq, seen);
            atomic_fetch_sub(&p->sleepers, 1);
            spin_ns = next_spin(spin_ns, now_ns() - start);
        }
        seen = atomic_load(&p->job_seq);
        if (atomic_load(&p->shutdown)) break;
        run_tasks(p, thread);
    }
    return NULL;
}

/* The cores this process may run on; sysconf's online count where the
 * affinity mask cannot be read. */
static int default_threads(void) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

mrec_status mrec_pool_create(mrec_pool **out, int n_threads, mrec_simd simd) {
    *out = NULL;
    if (n_threads <= 0) n_threads = default_threads();
    if (n_threads > 1024) return mrec_fail(MREC_ERR_ARG, "pool: %d threads is too many (at most 1024)", n_threads);
    mrec_simd best = mrec_simd_detect();
    mrec_pool *p = aligned_alloc(64, (sizeof *p + 63) / 64 * 64);
    if (!p) return mrec_fail(MREC_ERR_NOMEM, "pool: allocating the pool");
    memset(p, 0, sizeof *p);
    p->n_threads = n_threads;
    p->simd = simd < best ? simd : best;
    p->caller_spin_ns = SPIN_START_NS;
    p->exploit_len = EXPLOIT_START;
    p->scratch = calloc((size_t)n_threads, sizeof *p->scratch);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->scratch || !p->threads) goto nomem;
    for (int t = 0; t < n_threads; t++) {
        p->scratch[t] = aligned_alloc(64, MREC_GEMM_SCRATCH_FLOATS * sizeof(float));
        if (!p->scratch[t]) goto nomem;
    }
    /* thread t's view: a pool of one thread, thread t's scratch, no workers of its own */
    p->alone = aligned_alloc(64, (size_t)n_threads * sizeof *p->alone);
    if (!p->alone) goto nomem;
    memset(p->alone, 0, (size_t)n_threads * sizeof *p->alone);
    for (int t = 0; t < n_threads; t++) {
        mrec_pool *v = &p->alone[t];
        v->n_threads = 1, v->simd = p->simd, v->scratch = &p->scratch[t];
        v->caller_spin_ns = SPIN_START_NS, v->exploit_len = EXPLOIT_START;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int t = 1; t < n_threads; t++) {
        void **wa = malloc(2 * sizeof *wa);
        if (!wa) goto fail_threads;
        wa[0] = p, wa[1] = (void *)(intptr_t)t;
        if (pthread_create(&p->threads[t], NULL, worker_main, wa) != 0) {
            free(wa);
            goto fail_threads;
        }
        p->n_started++;
    }
    *out = p;
    return MREC_OK;

fail_threads:
    mrec_pool_destroy(p);
    return mrec_fail(MREC_ERR_NOMEM, "pool: cannot start %d threads", n_threads);
nomem:
    if (p->scratch)
        for (int t = 0; t < n_threads; t++) free(p->scratch[t]);
    free(p->scratch);
    free(p->threads);
    free(p->alone);
    free(p);
    return mrec_fail(MREC_ERR_NOMEM, "pool: allocating %d scratch buffers", n_threads);
}

void mrec_pool_destroy(mrec_pool *p) {
    if (!p) return;
    atomic_store(&p->shutdown, 1);
    atomic_fetch_add(&p->job_seq, 1);
    wake_word(p, &p->job_seq, INT_MAX);
    for (int t = 1; t <= p->n_started; t++) pthread_join(p->threads[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    for (int t = 0; t < p->n_threads; t++) free(p->scratch[t]);
    free(p->scratch);
    free(p->threads);
    free(p->alone);
    free(p);
}

int mrec_pool_threads(const mrec_pool *p) { return p->n_threads; }
mrec_simd mrec_pool_simd(const mrec_pool *p) { return p->simd; }
void *mrec_pool_scratch(mrec_pool *p, int thread) { return p->scratch[thread]; }
mrec_pool *mrec_pool_alone(mrec_pool *p, int thread) { return p->alone ? &p->alone[thread] : p; }

/* Counts a job of n_tasks that took ns in the current window and, when the
 * window is full, moves to the next phase. */
static void account(mrec_pool *p, int64_t ns, int n_tasks) {
    p->window_ns += ns, p->window_tasks += n_tasks;
    if (++p->window_jobs < WINDOW_JOBS || p->window_ns < WINDOW_NS) return;
    double rate = (double)p->window_tasks / (double)p->window_ns;
    double own_rate = p->window_own_tasks ? (double)p->window_own_tasks / (double)p->window_own_ns : 0;
    p->window_ns = p->window_tasks = p->window_own_ns = p->window_own_tasks = 0, p->window_jobs = 0;
    if (p->phase == EXPLOIT) {
        if (--p->exploit_left <= 0) p->phase = MEASURE_THREADS, p->solo = 0;
        return;
    }
    if (p->phase == MEASURE_THREADS) {
        p->threads_rate = rate;
        if (!(own_rate > 0 && rate > CLEAR_WIN * own_rate)) { /* threads do not clearly pay: try without */
            p->phase = MEASURE_SOLO, p->solo = 1;
            return;
        }
    }
    int solo = p->phase == MEASURE_SOLO && THREADS_MARGIN * rate > p->threads_rate;
    p->exploit_len = solo == p->last_solo ? (2 * p->exploit_len < EXPLOIT_MAX ? 2 * p->exploit_len : EXPLOIT_MAX) : EXPLOIT_START;
    p->last_solo = p->solo = solo;
    p->exploit_left = p->exploit_len;
    p->phase = EXPLOIT;
}

/* A job on the pool. judged: a job of small tasks, counted in the judgement
 * of whether threads pay (and run solo when they do not); else a job of
 * whole passes, always on the threads and left out of it. */
static void run_job(mrec_pool *p, mrec_task_fn fn, void *arg, int n_tasks, int judged) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    int64_t start = now_ns();
    if (p->solo && judged) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        account(p, now_ns() - start, n_tasks);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    p->fp_mode = fp_mode_get();
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->remaining, n_tasks, memory_order_release);
    atomic_fetch_add(&p->job_seq, 1);
    /* wake only the sleepers this job can use; spinning workers need none */
    int sleeping = atomic_load(&p->sleepers);
    if (sleeping > 0) wake_word(p, &p->job_seq, sleeping < n_tasks - 1 ? sleeping : n_tasks - 1);

    /* the caller's CPU time for its own tasks, when judging threads: wall
     * time would count the time it was descheduled while workers ran */
    int measure = judged && p->phase == MEASURE_THREADS;
    int64_t own_cpu = measure ? clock_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
    int mine = run_tasks(p, 0);
    if (measure) p->window_own_ns += clock_ns(CLOCK_THREAD_CPUTIME_ID) - own_cpu, p->window_own_tasks += mine;

    /* Every task is claimed; wait for those still running on workers. */
    int64_t own_done = now_ns();
    if (atomic_load(&p->done) != n_tasks) {
        for (int i = 1; judged && p->caller_spin_ns > 0; i++) {
            if (atomic_load_explicit(&p->done, memory_order_acquire) == n_tasks) break;
            cpu_relax();
            if (!(i & 63) && now_ns() - own_done > p->caller_spin_ns) break;
        }
        int d = atomic_load(&p->done);
        if (d != n_tasks) {
            /* sleeping frees this core for a descheduled worker that holds a task */
            atomic_store(&p->caller_sleeping, 1);
            while ((d = atomic_load(&p->done)) != n_tasks) wait_word(p, &p->done, (unsigned)d);
            atomic_store(&p->caller_sleeping, 0);
        }
    }
    if (!judged) return;
    int64_t end = now_ns();
    if (end > own_done) p->caller_spin_ns = next_spin(p->caller_spin_ns, end - own_done);
    account(p, end - start, n_tasks);
}

void mrec_pool_run(mrec_pool *p, mrec_task_fn fn, void *arg, int n_tasks) { run_job(p, fn, arg, n_tasks, 1); }
void mrec_pool_run_spread(mrec_pool *p, mrec_task_fn fn, void *arg, int n_tasks) { run_job(p, fn, arg, n_tasks, 0); }
