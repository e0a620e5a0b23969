/* bench_fit.h: one model trained through mrec_fit on a context, timed, and
 * one step as mrec_fit takes it; what the training benches share. */
#ifndef MREC_BENCH_FIT_H
#define MREC_BENCH_FIT_H
#include "../recsys/mrec_registry.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One training step as mrec_fit takes it: the model's step where it has one
 * (its loss left on the device, nothing waited for), else loss_grad. 0 when
 * the step failed or its loss (read only where loss_grad returns it) is not finite. */
static inline int bench_step(mrec_model *m, const int32_t *u, const int32_t *i, const int32_t *j, int n) {
    if (m->step) return m->step(m->self, u, i, j, n) != NULL;
    return isfinite(m->loss_grad(m->self, u, i, j, n)) && !(m->status && *m->status);
}

typedef struct {
    double seconds_per_epoch, first_epoch, eval_seconds, recall;
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
    mrec_param_values given, p;
    memset(&given, 0, sizeof given);
    given.v[MREC_HP_DIM] = (mrec_param_value){.x = {64}, .given = 1};
    mrec_built_model b;
    memset(&b, 0, sizeof b);
    mrec_status st = mrec_params_resolve(&p, e, &given);
    if (!st) st = mrec_model_build(&b, e, in, &p, ctx);
    if (st) {
        fprintf(stderr, "%s: %s on %s: %s\n", bench, e->name, mrec_device_name(ctx->device), mrec_error_detail());
        return t;
    }
    mrec_fit_options opt = mrec_fit_defaults();
    opt.epochs = epochs, opt.eval_every = epochs, opt.patience = 1000, opt.batch_size = 2048, opt.lr = lr, opt.seed = 7;
    int k[1] = {20};
    mrec_fit_result r;
    memset(&r, 0, sizeof r);
    if ((st = mrec_fit(&r, &b.model, train, valid, test, k, 1, 1, &opt, ctx)))
        fprintf(stderr, "%s: %s on %s: %s\n", bench, e->name, mrec_device_name(ctx->device), mrec_error_detail());
    else
        t.ok = 1, t.eval_seconds = r.eval_seconds, t.recall = r.test.value[MREC_METRIC_RECALL][0], t.first_epoch = r.first_epoch_seconds,
        t.seconds_per_epoch = r.epochs_run > 1   ? (r.train_seconds - r.first_epoch_seconds) / (r.epochs_run - 1)
                              : r.epochs_run == 1 ? r.train_seconds
                                                  : r.eval_seconds;
    free(r.topk);
    mrec_built_model_free(&b);
    return t;
}
#endif
