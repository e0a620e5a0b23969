/* pipe.c: two host slots, producer threads one batch ahead of the forward,
 * and on a GPU context the uploads on the copy stream (mrec_batch_pipe.h).
 *
 * A slot goes FREE -> WORKING (begun; threads claim its items) -> FINISHING
 * (the last thread out packs it and queues its upload) -> READY or FAILED,
 * and back to FREE when the caller releases it. Batch k always uses slot
 * k % 2, so at most one batch is prepared ahead of the one being encoded.
 */
#include "mrec_batch_pipe.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PRODUCERS 16

enum { SLOT_FREE, SLOT_WORKING, SLOT_FINISHING, SLOT_READY, SLOT_FAILED };

typedef struct {
    int batch, state;
    int active;    /* threads inside work() */
    int exhausted; /* a work() call returned: no item is left to claim */
    size_t upload; /* bytes queued on the copy stream, 0: the forward reads the host slot */
    mrec_status st;
    char detail[512];
    int uploaded_recorded, consumed_recorded;
} slot_state;

struct mrec_batch_pipe {
    mrec_context *ctx;
    mrec_batch_jobs jobs;
    int n_batches, next_begin, stop, failed;
    void *host[2], *dev[2];
    size_t host_bytes;
    mrec_event *uploaded[2], *consumed[2];
    slot_state slot[2];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t threads[MAX_PRODUCERS];
    int n_threads;
    double prepare, prepare_caller, wait; /* seconds, under mu (mrec_stage_times) */
};

double mrec_stage_clock(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

double mrec_stage_thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* With the lock held: a slot to work on (batch `only` when >= 0), beginning the next batch when its slot is
 * free; -1 when there is nothing to do now. */
static int pick(mrec_batch_pipe *p, int only) {
    int best = -1;
    for (int s = 0; s < 2; s++) {
        slot_state *q = &p->slot[s];
        if (q->state == SLOT_WORKING && !q->exhausted && (only < 0 || q->batch == only) && (best < 0 || q->batch < p->slot[best].batch))
            best = s;
    }
    if (best >= 0) return best;
    int k = p->next_begin, s = k % 2;
    if (p->failed || k >= p->n_batches || (only >= 0 && k != only) || p->slot[s].state != SLOT_FREE) return -1;
    p->slot[s] = (slot_state){.batch = k, .state = SLOT_WORKING, .uploaded_recorded = p->slot[s].uploaded_recorded,
                              .consumed_recorded = p->slot[s].consumed_recorded};
    p->next_begin++;
    p->jobs.begin(p->jobs.arg, k, s);
    return s;
}

/* The upload of a finished batch: after the forward that last read this device slot, on the copy stream. */
static mrec_status upload(mrec_batch_pipe *p, int s, size_t bytes) {
    mrec_status st = MREC_OK;
    if (p->slot[s].consumed_recorded) st = mrec_stream_wait(p->ctx, MREC_STREAM_COPY, p->consumed[s]);
    if (!st) st = mrec_copy_to_device_async(p->ctx, p->dev[s], p->host[s], bytes, MREC_STREAM_COPY);
    if (!st) st = mrec_event_record(p->ctx, p->uploaded[s], MREC_STREAM_COPY);
    return st;
}

/* Adds a stretch of preparing to the totals, with the lock held. */
static void count_prepare(mrec_batch_pipe *p, double secs, int caller) {
    p->prepare += secs;
    if (caller) p->prepare_caller += secs;
}

/* With the lock held, returns with it held: works on slot s, and finishes it when this thread is the last out.
 * caller: the thread is the encoding thread, inside next(). */
static void run_slot(mrec_batch_pipe *p, int s, int caller) {
    slot_state *q = &p->slot[s];
    int batch = q->batch;
    q->active++;
    pthread_mutex_unlock(&p->mu);
    double t0 = mrec_stage_thread_seconds();
    mrec_status st = p->jobs.work(p->jobs.arg, batch, s, p->host[s]);
    char detail[512] = "";
    if (st) snprintf(detail, sizeof detail, "%s", mrec_error_detail()); /* the detail is this thread's */
    double t1 = mrec_stage_thread_seconds();
    pthread_mutex_lock(&p->mu);
    count_prepare(p, t1 - t0, caller);
    q->exhausted = 1;
    if (st && !q->st) q->st = st, memcpy(q->detail, detail, sizeof detail);
    if (--q->active || q->state != SLOT_WORKING) return;
    q->state = SLOT_FINISHING;
    pthread_mutex_unlock(&p->mu);
    size_t bytes = 0;
    st = q->st;
    t0 = mrec_stage_thread_seconds();
    if (!st) st = p->jobs.finish(p->jobs.arg, batch, s, p->host[s], &bytes);
    if (!st && bytes > p->host_bytes) st = mrec_fail(MREC_ERR_ARG, "batch %d: %zu bytes to upload, the slot holds %zu", batch, bytes, p->host_bytes);
    if (!st && bytes && p->dev[0]) st = upload(p, s, bytes);
    if (st && !q->st) snprintf(detail, sizeof detail, "%s", mrec_error_detail());
    t1 = mrec_stage_thread_seconds();
    pthread_mutex_lock(&p->mu);
    count_prepare(p, t1 - t0, caller);
    if (st && !q->st) q->st = st, memcpy(q->detail, detail, sizeof detail);
    if (!st && bytes && p->dev[0]) q->upload = bytes, q->uploaded_recorded = 1;
    q->state = st ? SLOT_FAILED : SLOT_READY;
    if (st) p->failed = 1; /* no new batch begins after a failure */
    pthread_cond_broadcast(&p->cv);
}

static void *producer(void *arg) {
    mrec_batch_pipe *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        int s = pick(p, -1);
        if (s < 0) pthread_cond_wait(&p->cv, &p->mu);
        else run_slot(p, s, 0);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

mrec_status mrec_batch_pipe_start(mrec_batch_pipe **out, mrec_context *ctx, const mrec_batch_jobs *jobs, int n_batches,
                                  size_t host_bytes, void *const *dev, int producers) {
    *out = NULL;
    if (n_batches < 0 || !jobs || !jobs->begin || !jobs->work || !jobs->finish)
        return mrec_fail(MREC_ERR_ARG, "batch pipe: %d batches, jobs %s", n_batches, jobs ? "incomplete" : "missing");
    mrec_batch_pipe *p = calloc(1, sizeof *p);
    if (!p) return mrec_fail(MREC_ERR_NOMEM, "batch pipe");
    p->ctx = ctx, p->jobs = *jobs, p->n_batches = n_batches, p->host_bytes = host_bytes;
    for (int s = 0; s < 2; s++) p->slot[s].batch = -1, p->dev[s] = dev && ctx->device != MREC_DEVICE_CPU ? dev[s] : NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    mrec_status st = MREC_OK;
    for (int s = 0; s < 2 && !st; s++) st = mrec_host_alloc(ctx, &p->host[s], host_bytes);
    for (int s = 0; s < 2 && !st && p->dev[0]; s++) {
        if (!(st = mrec_event_create(ctx, &p->uploaded[s]))) st = mrec_event_create(ctx, &p->consumed[s]);
    }
    if (dev && ctx->device != MREC_DEVICE_CPU && !st && (!dev[0] || !dev[1])) st = mrec_fail(MREC_ERR_ARG, "batch pipe: a device slot is NULL");
    int want = producers < 0 ? 0 : producers > MAX_PRODUCERS ? MAX_PRODUCERS : producers;
    if (want > n_batches) want = n_batches; /* a thread more than there are batches would only wait */
    for (int t = 0; !st && t < want; t++)
        if (pthread_create(&p->threads[p->n_threads], NULL, producer, p) == 0) p->n_threads++;
    /* no thread at all still works: the caller prepares each batch in next() */
    if (st) {
        mrec_batch_pipe_stop(p);
        return st;
    }
    *out = p;
    return MREC_OK;
}

mrec_status mrec_batch_pipe_next(mrec_batch_pipe *p, int batch, int *slot, void **host, const void **input) {
    int s = batch % 2;
    if (batch < 0 || batch >= p->n_batches) return mrec_fail(MREC_ERR_ARG, "batch pipe: batch %d of %d", batch, p->n_batches);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        slot_state *q = &p->slot[s];
        if (q->batch == batch && (q->state == SLOT_READY || q->state == SLOT_FAILED)) break;
        if (p->failed && !(q->batch == batch && q->state != SLOT_FREE)) { /* an earlier batch failed; this one never begins */
            pthread_mutex_unlock(&p->mu);
            return mrec_fail(MREC_ERR_ARG, "batch pipe: batch %d asked for after a failed batch", batch);
        }
        int t = pick(p, batch);
        if (t >= 0) {
            run_slot(p, t, 1); /* help rather than wait */
        } else {
            double t0 = mrec_stage_clock();
            pthread_cond_wait(&p->cv, &p->mu);
            p->wait += mrec_stage_clock() - t0;
        }
    }
    slot_state *q = &p->slot[s];
    mrec_status st = q->st;
    char detail[512];
    memcpy(detail, q->detail, sizeof detail);
    size_t up = q->upload;
    pthread_mutex_unlock(&p->mu);
    if (st) return mrec_fail(st, "%s", detail);
    *slot = s, *host = p->host[s], *input = p->host[s];
    if (up) { /* the compute stream waits for the upload, the host does not */
        if ((st = mrec_stream_wait(p->ctx, MREC_STREAM_COMPUTE, p->uploaded[s]))) return st;
        *input = p->dev[s];
    }
    return MREC_OK;
}

mrec_status mrec_batch_pipe_release(mrec_batch_pipe *p, int batch) {
    int s = batch % 2;
    mrec_status st = MREC_OK;
    pthread_mutex_lock(&p->mu);
    slot_state *q = &p->slot[s];
    if (q->batch != batch || (q->state != SLOT_READY && q->state != SLOT_FAILED))
        st = mrec_fail(MREC_ERR_ARG, "batch pipe: releasing batch %d, which is not ready", batch);
    int uploaded = q->uploaded_recorded;
    pthread_mutex_unlock(&p->mu);
    if (st) return st;
    /* the host slot is rewritten next: its upload must be over; the device slot waits for the forward */
    if (uploaded && (st = mrec_event_sync(p->ctx, p->uploaded[s]))) return st;
    if (p->dev[0] && (st = mrec_event_record(p->ctx, p->consumed[s], MREC_STREAM_COMPUTE))) return st;
    pthread_mutex_lock(&p->mu);
    if (p->dev[0]) q->consumed_recorded = 1;
    q->state = SLOT_FREE, q->upload = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return MREC_OK;
}

void mrec_batch_pipe_add_times(mrec_batch_pipe *p, mrec_stage_times *t) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    t->prepare += p->prepare, t->prepare_caller += p->prepare_caller, t->wait += p->wait;
    pthread_mutex_unlock(&p->mu);
}

void mrec_batch_pipe_stop(mrec_batch_pipe *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->n_threads; t++) pthread_join(p->threads[t], NULL);
    /* nothing may still read the host slots when they are freed */
    for (int s = 0; s < 2; s++)
        if (p->slot[s].uploaded_recorded) mrec_event_sync(p->ctx, p->uploaded[s]);
    for (int s = 0; s < 2; s++) {
        mrec_host_free(p->ctx, p->host[s]);
        mrec_event_destroy(p->ctx, p->uploaded[s]);
        mrec_event_destroy(p->ctx, p->consumed[s]);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
