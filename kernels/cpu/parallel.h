/* parallel.h: split a range [0, n) into equal chunks on the pool. The split
 * depends only on n and the thread count, and each element is computed the
 * same way in any chunk, so results are identical whatever the scheduling. */
#ifndef MREC_PARALLEL_H
#define MREC_PARALLEL_H

#include "../mrec_kernels.h"

/* Loop bodies that gain from wide vectors are compiled for AVX-512, AVX2
 * and baseline x86-64, the loader picking one for this CPU. Each element is
 * still computed in the same order (vectors run across elements, never
 * across a sum), so every version gives the same bits. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(MREC_NO_CLONES)
#define MREC_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MREC_VECTOR_CLONES
#endif

typedef void (*mrec_range_fn)(void *arg, int64_t begin, int64_t end);

typedef struct {
    mrec_range_fn fn;
    void *arg;
    int64_t n, chunk;
} mrec_range_job;

static void mrec_range_task(void *arg, int task, int thread) {
    (void)thread;
    const mrec_range_job *j = arg;
    int64_t begin = task * j->chunk, end = begin + j->chunk < j->n ? begin + j->chunk : j->n;
    if (begin < end) j->fn(j->arg, begin, end);
}

/* Runs fn over [0, n) in chunks of at least min_chunk elements, at most four
 * chunks per thread so a slow thread does not hold up the rest for long. */
static inline void mrec_parallel_range(mrec_pool *pool, int64_t n, int64_t min_chunk,
                                       mrec_range_fn fn, void *arg) {
    if (n <= 0) return;
    int64_t max_tasks = 4 * (int64_t)mrec_pool_threads(pool);
    int64_t tasks = (n + min_chunk - 1) / min_chunk;
    if (tasks > max_tasks) tasks = max_tasks;
    if (tasks < 1) tasks = 1;
    mrec_range_job j = {fn, arg, n, (n + tasks - 1) / tasks};
    mrec_pool_run(pool, mrec_range_task, &j, (int)((n + j.chunk - 1) / j.chunk));
}

#endif
