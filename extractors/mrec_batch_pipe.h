/* mrec_batch_pipe.h: batches prepared one ahead of the forward pass.
 *
 * While the caller encodes batch k, producer threads prepare batch k+1
 * (decode and preprocess images, gather token ids) into the other of two
 * host slots: pinned memory on a GPU context, plain memory on the CPU. On
 * a GPU context a prepared batch with bytes to upload goes to its device
 * slot on the context's copy stream, an event marks the upload, and the
 * compute stream waits on that event before the forward reads the batch;
 * releasing a batch records a "consumed" event the next upload into that
 * device slot waits on. On the CPU nothing is uploaded: the forward reads
 * the host slot.
 *
 * A batch's work is split into items by the caller's `work` function, which
 * claims them itself (an atomic counter), so several threads may run it at
 * once: the producer threads, and the caller whenever it would otherwise
 * wait for the batch. Which thread prepares an item never changes what is
 * prepared, so the batches, and the features, are the same bytes with any
 * number of producer threads, including none (the caller prepares each
 * batch when it asks for it: the sequential path).
 *
 * Threads: `producers` (at most 16) start with the pipe and block whenever
 * both slots are prepared, so they compete with the encoder's pool only
 * while they prepare the next batch. The pipe never runs the context's pool.
 *
 * Deliberately not here: more than one batch ahead (a second batch of
 * images ahead would only hold memory; the encoder is the bottleneck or the
 * decoders are), and reordering batches.
 */
#ifndef MREC_BATCH_PIPE_H
#define MREC_BATCH_PIPE_H

#include <stddef.h>

#include "../kernels/mrec_kernels.h"

typedef struct {
    /* once per batch, first, under the pipe's lock: sets up the slot's job (its items, a counter). Must not block. */
    void (*begin)(void *arg, int batch, int slot);
    /* claims items of the batch and prepares them into host until none is left; runs on several threads at once.
     * An error stops the run (an item the run skips, such as a bad image, is recorded by the job, not returned). */
    mrec_status (*work)(void *arg, int batch, int slot, void *host);
    /* once, after every work call of the batch returned: *upload = the leading bytes of host the forward reads
     * (uploaded on a GPU context when the pipe has device slots; 0: nothing to upload). */
    mrec_status (*finish)(void *arg, int batch, int slot, void *host, size_t *upload);
    void *arg;
} mrec_batch_jobs;

typedef struct mrec_batch_pipe mrec_batch_pipe;

/* Where an encoder's time went (mrec_image_encoder.times, mrec_text_encoder.times): seconds, added up over
 * its embed calls. Preparing overlaps encoding, so the parts add up to more than the wall time. */
typedef struct {
    double prepare;        /* decoding + preprocessing images, or tokenizing + gathering texts: CPU seconds of
                            * the threads that did it (a thread waiting for a core does not count) */
    double prepare_caller; /* of prepare, on the encoding thread (it prepares a batch rather than wait for it) */
    double wait;           /* the encoding thread waiting for a batch that other threads are preparing */
    double encode;         /* forward passes, with their outputs back on the host */
    double write;          /* the caller's batch_done: writing one batch while the next encodes */
} mrec_stage_times;

/* Seconds on a monotonic clock, and the calling thread's CPU seconds. */
double mrec_stage_clock(void);
double mrec_stage_thread_seconds(void);

/* host_bytes: a slot's size. dev: two device slots of host_bytes each (carved by the caller from the context's
 * workspace) for the uploads, or NULL (the forward reads the host slot). producers: threads preparing ahead (0: the
 * caller prepares every batch itself). */
mrec_status mrec_batch_pipe_start(mrec_batch_pipe **out, mrec_context *ctx, const mrec_batch_jobs *jobs, int n_batches,
                                  size_t host_bytes, void *const *dev, int producers);
/* Waits for batch `batch` (asked for in order 0, 1, 2, ..., each released before the one two later is asked for),
 * helping prepare it meanwhile. *slot: its slot; *host: its host slot; *input: where the forward reads it (the
 * device slot, with the compute stream made to wait for its upload, or the host slot). A failed preparation comes
 * back here with its detail. */
mrec_status mrec_batch_pipe_next(mrec_batch_pipe *p, int batch, int *slot, void **host, const void **input);
/* The forward that reads the batch is queued: its slot may be prepared again once the compute stream passes here. */
mrec_status mrec_batch_pipe_release(mrec_batch_pipe *p, int batch);
/* Adds the pipe's preparing and waiting so far to t (prepare, prepare_caller, wait); p may be NULL. */
void mrec_batch_pipe_add_times(mrec_batch_pipe *p, mrec_stage_times *t);
/* Stops and joins the producers, waits for uploads in flight, frees the slots. Safe after an error; p may be NULL. */
void mrec_batch_pipe_stop(mrec_batch_pipe *p);

#endif
