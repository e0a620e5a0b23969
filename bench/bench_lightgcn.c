/* bench_lightgcn.c: BPRMF, LightGCN and NGCF on Gowalla on the CPU, seconds
 * by phase, side by side with plain PyTorch (bench/peers/lightgcn_peer.py)
 * on the same data, threads and recipe (64-d, batch 2048, Adam at 1e-3,
 * each model's registry defaults: LightGCN and NGCF 3 layers, NGCF's 10 %
 * node and message dropout; evaluation of every user against every item
 * with training items masked, top 20).
 *
 *   build/cpu/bench/bench_lightgcn [threads [steps]]    (make bench runs it)
 *   MREC_PYTHON=/path/to/python          the interpreter with torch for the peer
 *   MREC_BENCH_MODELS="lightgcn ngcf"    time only these (default: bprmf lightgcn ngcf)
 *   MREC_DATA=DIR                        the folder holding gowalla-lightgcn (default ../shared/data)
 * Data: gowalla-lightgcn (29,858 users, 40,981 items, 810,128 training
 * pairs). One epoch = sampling + ceil(pairs / 2048) steps; the step time is
 * the mean of `steps` steps after one warm-up step, each step as mrec_fit
 * takes it (the model's loss and gradient, Adam: mrec_fit_batch).
 */
#include "bench_data.h"
#include "bench_fit.h"
#include "lightgcn_peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One model's phases: one epoch's sampling, a mean step, an evaluation; and the test Recall@20 after the steps */
typedef struct {
    double phase[3], recall;
} timing;

static mrec_status time_model(timing *t, const mrec_model_entry *e, const mrec_model_inputs *in, const mrec_user_items *test,
                              int steps, mrec_context *ctx) {
    mrec_built_model b;
    mrec_bpr_sampler s;
    memset(&s, 0, sizeof s);
    mrec_optimizer adam;
    bench_sum sum;
    memset(&sum, 0, sizeof sum);
    mrec_rng rng = {1};
    mrec_status st = bench_build(&b, e, in, ctx), ready = mrec_adam_init_on(&adam, 1e-3f, 0, ctx); /* both freed below */
    if (!st) st = ready;
    if (!st) st = mrec_bpr_sampler_init(&s, in->train);
    mrec_model *m = &b.model;
    for (int q = 0; !st && q < m->n_params; q++) st = mrec_adam_add(&adam, m->param[q], m->grad[q], m->size[q]);
    if (!st && !bench_sum_init(&sum, ctx)) st = mrec_fail(MREC_ERR_NOMEM, "%s: the loss's sum", e->name);
    double t0 = now();
    if (!st) mrec_bpr_sampler_epoch(&s, &rng);
    t->phase[0] = now() - t0;
    if (!st && m->epoch_start) st = m->epoch_start(m->self);
    double t_steps = 0;
    for (int k = 0; !st && k <= steps; k++) {
        int64_t at = (int64_t)k * 2048 % (s.n > 2048 ? s.n - 2048 : 1);
        double a = now();
        if (!bench_batch(m, &adam, &sum, s.user + at, s.pos + at, s.neg + at, (int)(s.n < 2048 ? s.n : 2048), ctx))
            st = MREC_ERR_ARG; /* mrec_error_detail has its words */
        if (k) t_steps += now() - a; /* the first step warms up */
    }
    t->phase[1] = t_steps / steps;
    t0 = now();
    mrec_eval_spec spec = {.relevant = test, .masked = {in->train, NULL}, .n_k = 1, .k = {20}, .accuracy_only = 1};
    mrec_eval_result r;
    if (!st && m->prepare) st = m->prepare(m->self);
    if (!st) st = mrec_evaluate(&r, &spec, m->score, m->self, ctx);
    t->phase[2] = now() - t0;
    t->recall = st ? 0 : r.value[MREC_METRIC_RECALL][0];
    bench_sum_free(&sum);
    mrec_adam_free(&adam);
    mrec_bpr_sampler_free(&s);
    mrec_built_model_free(&b);
    return st;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, steps = argc > 2 ? atoi(argv[2]) : 10;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (threads < 1 || steps < 1) return fprintf(stderr, "usage: bench_lightgcn [threads >= 1 [steps >= 1]]\n"), 1;
    char train_path[4200], test_path[4200];
    if (!bench_data_path(train_path, sizeof train_path, "gowalla-lightgcn/train_reconstructed.txt") ||
        !bench_data_path(test_path, sizeof test_path, "gowalla-lightgcn/test.txt"))
        return printf("bench_lightgcn: gowalla-lightgcn not found (MREC_DATA, ../shared/data, shared/data); skipped\n"), 0;
    mrec_interactions x;
    if (mrec_load_lightgcn(&x, train_path)) return fprintf(stderr, "bench_lightgcn: %s\n", mrec_error_detail()), 1;
    mrec_user_items train, test;
    mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN);
    mrec_user_items_build(&test, &x, MREC_SPLIT_TEST);
    mrec_model_inputs in = {.n_users = x.n_users, .n_items = x.n_items, .train = &train};
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = threads;
    mrec_context *ctx;
    if (mrec_context_create(&ctx, &o)) return fprintf(stderr, "bench_lightgcn: %s\n", mrec_error_detail()), 1;
    int64_t pairs = train.row_ptr[train.n_rows], steps_per_epoch = (pairs + 2047) / 2048;
    printf("Gowalla (%d users, %d items, %lld training pairs), 64-d, batch 2048, %d threads, %d timed steps\n", x.n_users,
           x.n_items, (long long)pairs, threads, steps);
    printf("%-10s %-26s %11s %11s %8s\n", "model", "phase", "mrec", "PyTorch", "ratio");

    const char *list = getenv("MREC_BENCH_MODELS") ? getenv("MREC_BENCH_MODELS") : "bprmf lightgcn ngcf";
    char names[256];
    snprintf(names, sizeof names, "%s", list);
    int failed = 0;
    for (char *save = NULL, *name = strtok_r(names, " ,", &save); name; name = strtok_r(NULL, " ,", &save)) {
        const mrec_model_entry *e = mrec_model_find(name);
        if (!e) {
            fprintf(stderr, "bench_lightgcn: no model \"%s\"\n", name);
            failed = 1;
            continue;
        }
        timing t;
        if (time_model(&t, e, &in, &test, steps, ctx)) {
            fprintf(stderr, "bench_lightgcn: %s: %s\n", name, mrec_error_detail());
            failed = 1;
            continue;
        }
        double peer[3];
        lightgcn_peer(peer, train_path, test_path, threads, steps, "cpu", name);
        const char *phases[3] = {"sampling (one epoch)", "train step (batch 2048)", "evaluation (all users)"};
        for (int i = 0; i < 3; i++) {
            if (peer[i] > 0)
                printf("%-10s %-26s %10.3fs %10.3fs %7.2fx\n", i ? "" : name, phases[i], t.phase[i], peer[i], peer[i] / t.phase[i]);
            else
                printf("%-10s %-26s %10.3fs %11s %8s\n", i ? "" : name, phases[i], t.phase[i], "(no peer)", "-");
        }
        double epoch = t.phase[0] + steps_per_epoch * t.phase[1], peer_epoch = peer[0] + steps_per_epoch * peer[1];
        if (peer[1] > 0)
            printf("%-10s %-26s %10.1fs %10.1fs %7.2fx\n", "", "epoch (sampling + steps)", epoch, peer_epoch, peer_epoch / epoch);
        else
            printf("%-10s %-26s %10.1fs\n", "", "epoch (sampling + steps)", epoch);
        printf("%-10s (test Recall@20 after %d steps: %.4f)\n", "", steps + 1, t.recall);
    }
    mrec_user_items_free(&train), mrec_user_items_free(&test);
    mrec_interactions_free(&x);
    mrec_context_destroy(ctx);
    return failed;
}
