/* pool.c: SIMD detection and the worker-thread pool every fast op runs on.
 *
 * The pool is a parallel-for: mrec_pool_run hands out task indices from an
 * atomic counter to the workers and the calling thread, and returns when all
 * are done. Threads are created once. Between jobs a worker spins for a
 * short while before it sleeps on a condition variable, because a model
 * issues op after op and a futex wake-up per op would cost more than small
 * ops themselves. Each thread also owns a scratch buffer for GEMM packing,
 * so no op allocates while it runs.
 */
#include "../mrec_kernels.h"
#include "gemm_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* About a millisecond of spinning before a thread blocks. */
#define SPIN_ROUNDS 20000

mrec_simd mrec_simd_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return MREC_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return MREC_SIMD_AVX2;
#endif
    return MREC_SIMD_SCALAR;
}

const char *mrec_simd_name(mrec_simd simd) {
    switch (simd) {
    case MREC_SIMD_AVX512: return "avx512";
    case MREC_SIMD_AVX2:   return "avx2";
    case MREC_SIMD_SCALAR: return "scalar";
    }
    return "?";
}

struct mrec_pool {
    int n_threads;
    mrec_simd simd;
    pthread_t *threads;   /* n_threads - 1 workers; thread 0 is the caller */
    float **scratch;      /* n_threads buffers of MREC_GEMM_SCRATCH_FLOATS */

    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    _Atomic uint64_t generation; /* bumped once per job */
    atomic_int shutdown;
    atomic_int busy_workers;     /* workers still inside the current job */
    int n_started;        /* workers actually running, for destroy */

    mrec_task_fn fn;
    void *arg;
    int n_tasks;
    atomic_int next_task;
};

typedef struct { mrec_pool *pool; int thread; } worker_arg;

static void run_tasks(mrec_pool *p, int thread) {
    for (;;) {
        int task = atomic_fetch_add_explicit(&p->next_task, 1, memory_order_relaxed);
        if (task >= p->n_tasks) return;
        p->fn(p->arg, task, thread);
    }
}

static void *worker_main(void *varg) {
    worker_arg wa = *(worker_arg *)varg;
    free(varg);
    mrec_pool *p = wa.pool;
    uint64_t seen = 0;
    for (;;) {
        for (int spin = 0; spin < SPIN_ROUNDS && atomic_load_explicit(&p->generation, memory_order_acquire) == seen &&
                           !atomic_load(&p->shutdown);
             spin++)
            cpu_relax();
        if (atomic_load_explicit(&p->generation, memory_order_acquire) == seen) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->shutdown))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->shutdown)) break;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        run_tasks(p, wa.thread);
        if (atomic_fetch_sub_explicit(&p->busy_workers, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

mrec_status mrec_pool_create(mrec_pool **out, int n_threads, mrec_simd simd) {
    *out = NULL;
    if (n_threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 0 ? (int)n : 1;
    }
    if (n_threads > 1024) return mrec_fail(MREC_ERR_ARG, "pool: %d threads is too many", n_threads);
    mrec_simd best = mrec_simd_detect();
    mrec_pool *p = calloc(1, sizeof *p);
    if (!p) return mrec_fail(MREC_ERR_NOMEM, "pool: allocating the pool");
    p->n_threads = n_threads;
    p->simd = simd < best ? simd : best;
    p->scratch = calloc((size_t)n_threads, sizeof *p->scratch);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->scratch || !p->threads) goto nomem;
    for (int t = 0; t < n_threads; t++) {
        p->scratch[t] = aligned_alloc(64, MREC_GEMM_SCRATCH_FLOATS * sizeof(float));
        if (!p->scratch[t]) goto nomem;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int t = 1; t < n_threads; t++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) goto fail_threads;
        wa->pool = p;
        wa->thread = t;
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
    free(p);
    return mrec_fail(MREC_ERR_NOMEM, "pool: allocating %d scratch buffers", n_threads);
}

void mrec_pool_destroy(mrec_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->shutdown, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t <= p->n_started; t++) pthread_join(p->threads[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    for (int t = 0; t < p->n_threads; t++) free(p->scratch[t]);
    free(p->scratch);
    free(p->threads);
    free(p);
}

int mrec_pool_threads(const mrec_pool *p) { return p->n_threads; }
mrec_simd mrec_pool_simd(const mrec_pool *p) { return p->simd; }
void *mrec_pool_scratch(mrec_pool *p, int thread) { return p->scratch[thread]; }

void mrec_pool_run(mrec_pool *p, mrec_task_fn fn, void *arg, int n_tasks) {
    if (n_tasks <= 0) return;
    if (p->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->busy_workers, p->n_threads - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    run_tasks(p, 0);

    for (int spin = 0; spin < SPIN_ROUNDS && atomic_load_explicit(&p->busy_workers, memory_order_acquire) > 0; spin++)
        cpu_relax();
    if (atomic_load_explicit(&p->busy_workers, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->busy_workers) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
