/* test_pool.c: the worker-thread pool: every task runs exactly once on any
 * number of threads, the default thread count follows the CPU affinity
 * mask, a worker that is stopped (descheduled, or held in a signal handler)
 * never holds up a job, and an idle pool takes no CPU. Items side by side
 * (mrec_context_split): each item once, on the right pool and workspace.
 *
 * No case asserts on elapsed time: a stopped worker is released by a flag
 * the test sets once the job is back, and waits give up only after seconds,
 * so a slow or loaded machine passes and a pool that waits for the stopped
 * worker fails by the flag, not by the clock.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "harness.h"

#include "../kernels/mrec_kernels.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- every task exactly once ---- */

typedef struct {
    atomic_int *runs;     /* (n_tasks) */
    atomic_int bad_thread;
    int n_threads;
} count_job;

static void count_task(void *arg, int task, int thread) {
    count_job *j = arg;
    if (thread < 0 || thread >= j->n_threads) atomic_store(&j->bad_thread, 1);
    atomic_fetch_add(&j->runs[task], 1);
}

static void test_exactly_once(void) {
    enum { MAX_TASKS = 5000 };
    static const int sizes[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64, 100, 255, 1000, MAX_TASKS};
    atomic_int *runs = calloc(MAX_TASKS, sizeof *runs);
    if (!t_check(runs != NULL, "allocating counters")) return;
    for (int threads = 1; threads <= 7; threads++) {
        mrec_pool *pool;
        if (!t_status(mrec_pool_create(&pool, threads, MREC_SIMD_SCALAR), MREC_OK, "pool of %d threads", threads)) continue;
        t_check(mrec_pool_threads(pool) == threads, "pool of %d threads reports %d", threads, mrec_pool_threads(pool));
        count_job j = {runs, 0, threads};
        int wrong = 0, jobs = 0;
        /* many jobs back to back, the sizes cycling from 1 task to thousands */
        for (int round = 0; round < 60 && !wrong; round++)
            for (size_t s = 0; s < sizeof sizes / sizeof *sizes && !wrong; s++) {
                int n = sizes[(s + (size_t)round) % (sizeof sizes / sizeof *sizes)];
                for (int i = 0; i < n; i++) atomic_store(&runs[i], 0);
                mrec_pool_run(pool, count_task, &j, n);
                jobs++;
                for (int i = 0; i < n && !wrong; i++)
                    if (atomic_load(&runs[i]) != 1) {
                        wrong = 1;
                        t_check(0, "%d threads, job %d of %d tasks: task %d ran %d times", threads, jobs, n, i,
                                atomic_load(&runs[i]));
                    }
            }
        if (!wrong) t_check(1, "%d threads: every task of %d jobs ran exactly once", threads, jobs);
        t_check(!atomic_load(&j.bad_thread), "%d threads: thread indices within [0, %d)", threads, threads);
        mrec_pool_run(pool, count_task, &j, 0); /* no tasks: returns at once */
        mrec_pool_destroy(pool);
    }
    free(runs);
}

/* ---- create and destroy ---- */

static void test_destroy(void) {
    mrec_pool *pool;
    /* at once, before a worker may even have started */
    if (t_status(mrec_pool_create(&pool, 4, MREC_SIMD_SCALAR), MREC_OK, "pool of 4")) mrec_pool_destroy(pool);
    atomic_int runs[8];
    count_job j = {runs, 0, 4};
    /* right after a job, while workers still spin */
    if (t_status(mrec_pool_create(&pool, 4, MREC_SIMD_SCALAR), MREC_OK, "pool of 4")) {
        for (int i = 0; i < 8; i++) atomic_store(&runs[i], 0);
        mrec_pool_run(pool, count_task, &j, 8);
        mrec_pool_destroy(pool);
    }
    /* once every worker sleeps */
    if (t_status(mrec_pool_create(&pool, 4, MREC_SIMD_SCALAR), MREC_OK, "pool of 4")) {
        mrec_pool_run(pool, count_task, &j, 8);
        nap_ms(300);
        mrec_pool_run(pool, count_task, &j, 8); /* and it still works after sleeping */
        nap_ms(300);
        mrec_pool_destroy(pool);
    }
    t_check(1, "pools destroyed at once, after a job and when idle");
    mrec_pool_destroy(NULL);
    t_status(mrec_pool_create(&pool, 5000, MREC_SIMD_SCALAR), MREC_ERR_ARG, "5000 threads are refused");
}

/* ---- the default thread count ---- */

static void test_default_threads(void) {
    cpu_set_t mine;
    CPU_ZERO(&mine);
    if (sched_getaffinity(0, sizeof mine, &mine) != 0) {
        t_skip("sched_getaffinity failed: no affinity mask to compare with");
        return;
    }
    mrec_pool *pool;
    if (t_status(mrec_pool_create(&pool, 0, MREC_SIMD_SCALAR), MREC_OK, "default pool")) {
        t_check(mrec_pool_threads(pool) == CPU_COUNT(&mine), "default pool has %d threads, the affinity mask %d cores",
                mrec_pool_threads(pool), CPU_COUNT(&mine));
        mrec_pool_destroy(pool);
    }
    /* as under `taskset -c <one core>`: this thread alone restricted to its first core */
    int first = 0;
    while (first < CPU_SETSIZE && !CPU_ISSET(first, &mine)) first++;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) {
        t_skip("sched_setaffinity to one core failed");
        return;
    }
    if (t_status(mrec_pool_create(&pool, 0, MREC_SIMD_SCALAR), MREC_OK, "default pool on one core")) {
        t_check(mrec_pool_threads(pool) == 1, "default pool on one core has %d threads, expected 1", mrec_pool_threads(pool));
        mrec_pool_destroy(pool);
    }
    if (sched_setaffinity(0, sizeof mine, &mine) != 0) t_check(0, "restoring the affinity mask");
}

/* ---- a stopped worker ---- */

/* A worker held in a signal handler is, to the pool, a descheduled thread
 * that holds no task: the job must finish on the other threads. The handler
 * returns when the test releases it, or after 5 s, which only happens when
 * the pool waited for it. */
static atomic_int held, release_worker, released_by_timeout;

static void hold_handler(int sig) {
    (void)sig;
    atomic_store(&held, 1);
    for (int i = 0; i < 5000 && !atomic_load(&release_worker); i++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    if (!atomic_load(&release_worker)) atomic_store(&released_by_timeout, 1);
}

typedef struct {
    pthread_t worker;
    atomic_int have_worker;
    atomic_int runs;
} find_job;

static void find_worker_task(void *arg, int task, int thread) {
    (void)task;
    find_job *j = arg;
    if (thread == 1 && !atomic_exchange(&j->have_worker, 1)) j->worker = pthread_self();
    atomic_fetch_add(&j->runs, 1);
    nap_ms(1); /* long enough that thread 1 gets to take one */
}

static void test_stopped_worker(void) {
    mrec_pool *pool;
    if (!t_status(mrec_pool_create(&pool, 2, MREC_SIMD_SCALAR), MREC_OK, "pool of 2")) return;
    find_job j = {0};
    for (int tries = 0; tries < 200 && !atomic_load(&j.have_worker); tries++) mrec_pool_run(pool, find_worker_task, &j, 16);
    if (!atomic_load(&j.have_worker)) {
        t_skip("the worker thread never ran a task; cannot stop it");
        mrec_pool_destroy(pool);
        return;
    }
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = hold_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    atomic_store(&held, 0), atomic_store(&release_worker, 0), atomic_store(&released_by_timeout, 0);
    pthread_kill(j.worker, SIGUSR1);
    for (int i = 0; i < 5000 && !atomic_load(&held); i++) nap_ms(1);
    if (!t_check(atomic_load(&held), "the worker entered the signal handler")) {
        atomic_store(&release_worker, 1);
        mrec_pool_destroy(pool);
        sigaction(SIGUSR1, &old, NULL);
        return;
    }
    /* jobs while the worker is held: the caller runs them alone */
    atomic_int runs[64];
    count_job c = {runs, 0, 2};
    for (int i = 0; i < 64; i++) atomic_store(&runs[i], 0);
    for (int k = 0; k < 20; k++) mrec_pool_run(pool, count_task, &c, 64);
    atomic_store(&release_worker, 1);
    int all = 1;
    for (int i = 0; i < 64; i++) all &= atomic_load(&runs[i]) == 20;
    t_check(all, "20 jobs of 64 tasks ran while the worker was stopped");
    t_check(!atomic_load(&released_by_timeout),
            "the jobs finished without the stopped worker (the pool waited until its 5 s hold ran out)");
    /* and the worker rejoins afterwards */
    find_job again = {0};
    for (int tries = 0; tries < 200 && !atomic_load(&again.have_worker); tries++)
        mrec_pool_run(pool, find_worker_task, &again, 16);
    t_check(atomic_load(&again.have_worker), "the worker runs tasks again once released");
    mrec_pool_destroy(pool);
    sigaction(SIGUSR1, &old, NULL);
}

/* A worker stopped inside a task (its first one) holds only that task: all
 * the other tasks of the job finish on the other threads meanwhile. */
typedef struct {
    atomic_int finished, worker_started, seen_when_released, timed_out;
    int n_tasks;
} slow_job;

static void slow_first_task(void *arg, int task, int thread) {
    (void)task;
    slow_job *j = arg;
    if (thread == 1 && !atomic_exchange(&j->worker_started, 1)) {
        int i = 0;
        while (atomic_load(&j->finished) < j->n_tasks - 1 && i++ < 5000) nap_ms(1);
        if (atomic_load(&j->finished) < j->n_tasks - 1) atomic_store(&j->timed_out, 1);
        atomic_store(&j->seen_when_released, atomic_load(&j->finished));
    } else {
        struct timespec ts = {0, 50000L}; /* tasks long enough for sleeping workers to wake and join */
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&j->finished, 1);
}

static void test_worker_stuck_in_task(void) {
    for (int threads = 2; threads <= 4; threads++) {
        mrec_pool *pool;
        if (!t_status(mrec_pool_create(&pool, threads, MREC_SIMD_SCALAR), MREC_OK, "pool of %d", threads)) continue;
        int tried = 0, checked = 0;
        for (; tried < 50 && !checked; tried++) {
            slow_job j = {.n_tasks = 256};
            mrec_pool_run(pool, slow_first_task, &j, j.n_tasks);
            t_check(atomic_load(&j.finished) == j.n_tasks, "%d threads: all %d tasks ran", threads, j.n_tasks);
            if (!atomic_load(&j.worker_started)) continue; /* thread 1 came too late to take a task: again */
            checked = 1;
            t_check(!atomic_load(&j.timed_out) && atomic_load(&j.seen_when_released) == j.n_tasks - 1,
                    "%d threads: %d of the %d other tasks finished while thread 1 was stuck in its first", threads,
                    atomic_load(&j.seen_when_released), j.n_tasks - 1);
        }
        if (!checked) t_skip("%d threads: thread 1 never took a task in %d jobs", threads, tried);
        mrec_pool_destroy(pool);
    }
}

/* ---- an idle pool ---- */

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_idle_cpu(void) {
    mrec_pool *pool;
    if (!t_status(mrec_pool_create(&pool, 4, MREC_SIMD_SCALAR), MREC_OK, "pool of 4")) return;
    atomic_int runs[64];
    count_job j = {runs, 0, 4};
    for (int k = 0; k < 100; k++) mrec_pool_run(pool, count_task, &j, 64);
    /* Workers may spin a fraction of a millisecond after the last job, then
     * sleep: 400 ms of idling must cost well under 40 ms of CPU (a pool that
     * kept spinning would take up to 1.2 s). */
    double c0 = cpu_seconds();
    nap_ms(400);
    double used = cpu_seconds() - c0;
    t_check(used < 0.040, "an idle pool of 4 threads used %.1f ms of CPU in 400 ms", 1e3 * used);
    mrec_pool_destroy(pool);
}

/* ---- items side by side ---- */

typedef struct {
    int n, fail_at;        /* the item whose fn fails, or -1 */
    atomic_int seen[64];   /* per item: how many calls covered it */
    atomic_int alone_calls; /* calls on a one-thread pool */
    atomic_int calls;
    size_t share;
} split_probe;

static size_t probe_share(int items, void *arg) {
    const split_probe *p = arg;
    return p->share * (size_t)items;
}

static mrec_status probe_items(mrec_context *ctx, int lo, int hi, void *arg) {
    split_probe *p = arg;
    atomic_fetch_add(&p->calls, 1);
    if (mrec_pool_threads(ctx->pool) == 1) atomic_fetch_add(&p->alone_calls, 1);
    /* the share is this call's own: all of it can be carved and written */
    size_t need = p->share * (size_t)(hi - lo), mark = ctx->workspace.used;
    unsigned char *w = mrec_arena_alloc(&ctx->workspace, need);
    if (!w) return mrec_fail(MREC_ERR_NOMEM, "probe: no room for %zu bytes", need);
    memset(w, 0xab, need);
    ctx->workspace.used = mark;
    for (int i = lo; i < hi; i++) {
        atomic_fetch_add(&p->seen[i], 1);
        if (i == p->fail_at) return mrec_fail(MREC_ERR_FORMAT, "probe: item %d is bad", i);
    }
    return MREC_OK;
}

static void test_split(void) {
    for (int threads = 1; threads <= 4; threads++)
        for (int n = 1; n <= 9; n++)
            for (int room = 0; room < 2; room++) {
                mrec_context_options o = mrec_context_defaults();
                o.device = MREC_WANT_CPU, o.n_threads = threads;
                mrec_context *ctx = NULL;
                if (!t_status(mrec_context_create(&ctx, &o), MREC_OK, "a %d-thread context", threads)) continue;
                split_probe p = {.n = n, .fail_at = -1, .share = 1000};
                /* room: what a split needs; else only what one call over all items needs */
                size_t bytes = room ? mrec_context_split_bytes(ctx, n, probe_share(1, &p), probe_share(n, &p)) : probe_share(n, &p) + 64;
                mrec_context_reserve(ctx, bytes);
                /* it splits where the T shares (each aligned to 64 bytes) fit the free workspace */
                size_t shares = (size_t)threads * ((p.share + 63) / 64 * 64) + 64;
                int splits = threads > 1 && n >= threads && ctx->workspace.capacity >= shares;
                t_check(!room || splits || threads == 1 || n < threads, "split: the bytes it asks for let %d items split on %d threads",
                        n, threads);
                mrec_status st = mrec_context_split(ctx, n, probe_share(1, &p), probe_items, &p);
                int once = 1;
                for (int i = 0; i < n; i++) once &= atomic_load(&p.seen[i]) == 1;
                t_check(st == MREC_OK && once, "split: %d items on %d threads (room %d): each item once", n, threads, room);
                int items = n / threads * threads, want_calls = splits ? items + (n != items) : 1;
                t_check(atomic_load(&p.calls) == want_calls && atomic_load(&p.alone_calls) == (splits ? items : threads == 1),
                        "split: %d items on %d threads (room %d): %d calls, %d on one-thread pools", n, threads, room,
                        atomic_load(&p.calls), atomic_load(&p.alone_calls));
                t_check(ctx->workspace.used == 0, "split: the workspace is given back");
                /* a failing item: its error and message come back from whichever thread ran it */
                split_probe bad = {.n = n, .fail_at = n - 1, .share = 1000};
                st = mrec_context_split(ctx, n, probe_share(1, &bad), probe_items, &bad);
                char want[64];
                snprintf(want, sizeof want, "probe: item %d is bad", n - 1);
                t_check(st == MREC_ERR_FORMAT && !strcmp(mrec_error_detail(), want),
                        "split: %d items on %d threads: the failure comes back (%d: %s)", n, threads, st, mrec_error_detail());
                t_check(ctx->workspace.used == 0, "split: the workspace is given back after a failure");
                mrec_context_destroy(ctx);
            }
    /* a thread's view of the pool: one thread, that thread's scratch */
    mrec_pool *pool = NULL;
    if (t_status(mrec_pool_create(&pool, 3, MREC_SIMD_SCALAR), MREC_OK, "a 3-thread pool")) {
        for (int t = 0; t < 3; t++)
            t_check(mrec_pool_threads(mrec_pool_alone(pool, t)) == 1 &&
                        mrec_pool_scratch(mrec_pool_alone(pool, t), 0) == mrec_pool_scratch(pool, t),
                    "thread %d's view: one thread, its scratch", t);
        mrec_pool_destroy(pool);
    }
}

/* ---- every task in the caller's floating-point mode ----
 * Each task multiplies two tiny floats whose product (1e-40) is subnormal, and reads a subnormal through a product:
 * with the caller flushing (mrec_flush_subnormals_begin) both are 0 on every thread; without, neither is. The jobs
 * alternate the two modes, so a worker carrying the last job's mode over fails. */

typedef struct {
    float *out;     /* (n_tasks, 2) */
    float a, b, s;  /* a * b subnormal; s subnormal */
} tiny_job;

static void tiny_task(void *arg, int task, int thread) {
    (void)thread;
    tiny_job *j = arg;
    volatile float a = j->a, b = j->b, s = j->s, one = 1.0f; /* volatile: no product folded away */
    j->out[2 * task] = a * b;
    j->out[2 * task + 1] = s * one;
}

static void test_fp_mode(void) {
#if defined(__x86_64__) || defined(__i386__)
    enum { TASKS = 64 };
    float out[2 * TASKS];
    tiny_job j = {out, 1e-20f, 1e-20f, 1e-40f};
    t_check(!mrec_flushing_subnormals(), "a fresh thread keeps subnormals");
    for (int threads = 1; threads <= 4; threads++) {
        mrec_pool *pool;
        if (!t_status(mrec_pool_create(&pool, threads, MREC_SIMD_SCALAR), MREC_OK, "pool of %d threads", threads)) continue;
        int wrong = 0;
        for (int round = 0; round < 40 && !wrong; round++) {
            int flush = round % 2;
            mrec_fp_mode before = {0};
            if (flush) before = mrec_flush_subnormals_begin();
            memset(out, 0xFF, sizeof out);
            mrec_pool_run(pool, tiny_task, &j, TASKS);
            if (flush) mrec_flush_subnormals_end(before);
            for (int t = 0; t < 2 * TASKS && !wrong; t++)
                if ((out[t] == 0.0f) != flush) {
                    wrong = 1;
                    t_check(0, "%d threads, round %d, task %d: %s %g where the caller %s subnormals", threads, round, t / 2,
                            t % 2 ? "a subnormal read as" : "a subnormal product made", (double)out[t],
                            flush ? "flushes" : "keeps");
                }
        }
        t_check(!wrong, "%d threads: every task in its caller's mode, 40 jobs alternating", threads);
        t_check(!mrec_flushing_subnormals(), "%d threads: the caller's mode back after each job", threads);
        mrec_pool_destroy(pool);
    }
    /* ending with a mode never begun (zeros) touches FTZ and DAZ only: no exception unmasked, nothing raised */
    mrec_fp_mode zeros = {0};
    mrec_flush_subnormals_begin();
    mrec_flush_subnormals_end(zeros);
    volatile float big = 1e30f, zero = 0.0f;
    volatile float over = big * big, inf = 1.0f / zero; /* overflow and a division by zero, masked as before */
    t_check(!mrec_flushing_subnormals() && over > 1e38f && inf > 1e38f, "end with a zeroed mode: subnormals kept, exceptions still masked");
#else
    t_skip("subnormals flushed: x86 only");
#endif
}

int main(void) {
    t_suite("pool");
    test_exactly_once();
    test_destroy();
    test_default_threads();
    test_stopped_worker();
    test_worker_stuck_in_task();
    test_idle_cpu();
    test_split();
    test_fp_mode();
    return t_finish();
}
