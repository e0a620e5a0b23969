/* bench_fit.h: one model trained through mrec_fit on a context, timed, and
 * one step as mrec_fit takes it; what the training benches share. */
#ifndef MREC_BENCH_FIT_H
#define MREC_BENCH_FIT_H
#include "../recsys/mrec_registry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A loss sum in the context's memory, as mrec_fit keeps an epoch's (bench_batch adds each batch's there). */
typedef struct {
    mrec_arena mem;
    mrec_loss_sum *at;
    mrec_context *ctx;
} bench_sum;

static inline int bench_sum_init(bench_sum *b, mrec_context *ctx) {
    mrec_loss_sum zero = {.bad = -1};
    memset(b, 0, sizeof *b);
    b->ctx = ctx;
    if (mrec_arena_reserve(&b->mem, sizeof zero, ctx->device, ctx->cuda)) return 0;
    b->at = (mrec_loss_sum *)b->mem.base;
    return mrec_copy_to_device(ctx, b->at, &zero, sizeof zero) == MREC_OK;
}

static inline void bench_sum_free(bench_sum *b) {
    if (b->ctx) mrec_arena_release(&b->mem, b->ctx->cuda);
    memset(b, 0, sizeof *b);
}

/* One training batch as mrec_fit takes it (mrec_fit_batch): the model's step (on a GPU one CUDA graph with what
 * follows, where the model comes in two halves), its loss added to the sum, Adam; nothing waited for. 0 when it
 * failed (mrec_error_detail says why). */
static inline int bench_batch(mrec_model *m, mrec_optimizer *adam, bench_sum *sum, const int32_t *u, const int32_t *i, const int32_t *j,
                              int n, mrec_context *ctx) {
    return mrec_fit_batch(m, adam, sum->at, u, i, j, n, ctx) == MREC_OK;
}

/* e built at its registry defaults and 64-d on ctx, as the training benches time it; b zeroed first, so
 * mrec_built_model_free may take it whether or not this failed */
static inline mrec_status bench_build(mrec_built_model *b, const mrec_model_entry *e, const mrec_model_inputs *in, mrec_context *ctx) {
    mrec_param_values given, p;
    memset(&given, 0, sizeof given);
    memset(b, 0, sizeof *b);
    given.v[MREC_HP_DIM] = (mrec_param_value){.x = {64}, .given = 1};
    mrec_status st = mrec_params_resolve(&p, e, &given);
    return st ? st : mrec_model_build(b, e, in, &p, ctx);
}

typedef struct {
    double seconds_per_epoch, first_epoch, eval_seconds, recall;
    double eval_host, eval_wait; /* of the last evaluation (test): the host's work on the lists, its wait for the device */
    int ok;
} bench_timing;

/* `epochs` epochs of e at 64-d, batch 2048, Adam at lr, one evaluation at the
 * end (Recall@20 on test); the time is mrec_fit's training time per epoch
 * (sampling, batches and Adam), the evaluation's apart: the mean of the
 * epochs after the first where there are some (the first carries one-time
 * setup, given apart in first_epoch). A model without training (ItemKNN) is
 * timed on its scoring, in the epoch's place. */
static inline bench_timing bench_fit(const char *bench, mrec_context *ctx, const mrec_model_entry *e, const mrec_model_inputs *in,
                              const mrec_user_items *train, const mrec_user_items *valid, const mrec_user_items *test,
                              int epochs, float lr) {
    bench_timing t = {0};
    mrec_built_model b;
    mrec_status st = bench_build(&b, e, in, ctx);
    if (st) {
        fprintf(stderr, "%s: %s on %s: %s\n", bench, e->name, mrec_device_name(ctx->device), mrec_error_detail());
        return t;
    }
    mrec_fit_options opt = mrec_fit_defaults();
    opt.epochs = epochs, opt.eval_every = epochs, opt.patience = 1000, opt.batch_size = 2048, opt.lr = lr, opt.seed = 7;
    opt.accuracy_only = 1; /* Recall@20 only, as mrec train with MMRec's metrics: the lists stay on the device */
    int k[1] = {20};
    mrec_fit_result r;
    memset(&r, 0, sizeof r);
    if ((st = mrec_fit(&r, &b.model, train, valid, test, k, 1, 1, &opt, ctx)))
        fprintf(stderr, "%s: %s on %s: %s\n", bench, e->name, mrec_device_name(ctx->device), mrec_error_detail());
    else
        t.ok = 1, t.eval_seconds = r.eval_seconds, t.recall = r.test.value[MREC_METRIC_RECALL][0], t.first_epoch = r.first_epoch_seconds,
        t.eval_host = r.test.host_seconds, t.eval_wait = r.test.wait_seconds,
        t.seconds_per_epoch = r.epochs_run > 1   ? (r.train_seconds - r.first_epoch_seconds) / (r.epochs_run - 1)
                              : r.epochs_run == 1 ? r.train_seconds
                                                  : r.eval_seconds;
    free(r.topk);
    mrec_built_model_free(&b);
    return t;
}
#endif
