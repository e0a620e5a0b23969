/* bench_lightgcn.c: LightGCN epoch time on CPU, by phase, side by side with
 * plain PyTorch (bench/peers/lightgcn_peer.py) on the same data, threads and
 * recipe (3 layers, 64-d, batch 2048, Adam; evaluation of every user
 * against every item with training items masked, top 20).
 *
 *   build/cpu/bench/bench_lightgcn [threads [steps]]    (make bench runs it)
 *   MREC_PYTHON=/path/to/python                          the interpreter with torch for the peer
 * Data: ../shared/data/gowalla-lightgcn (29,858 users, 40,981 items,
 * 810,128 training pairs). One epoch = sampling + ceil(pairs / 2048) steps;
 * the step time is the mean of `steps` steps after one warm-up step.
 */
#include "../recsys/mrec_recsys.h"
#include "lightgcn_peer.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TRAIN "../shared/data/gowalla-lightgcn/train_reconstructed.txt"
#define TEST "../shared/data/gowalla-lightgcn/test.txt"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, steps = argc > 2 ? atoi(argv[2]) : 10;
    mrec_interactions x;
    if (mrec_load_lightgcn(&x, TRAIN)) {
        fprintf(stderr, "bench_lightgcn: %s\n", mrec_error_detail());
        return 1;
    }
    mrec_user_items train, test;
    mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN);
    mrec_user_items_build(&test, &x, MREC_SPLIT_TEST);
    mrec_graph g;
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = threads;
    mrec_context *ctx;
    mrec_graph_normalized(&g, &train);
    if (mrec_context_create(&ctx, &o)) return 1;
    mrec_rng rng = {1};
    mrec_model m;
    mrec_lightgcn_create(&m, &g, x.n_users, x.n_items, 64, 3, 1e-4f, &rng, ctx);
    mrec_bpr_sampler s;
    mrec_optimizer adam;
    mrec_bpr_sampler_init(&s, &train);
    mrec_adam_init(&adam, 1e-3f, 0);
    mrec_adam_add(&adam, m.param[0], m.grad[0], m.size[0]);

    double t0 = now();
    mrec_bpr_sampler_epoch(&s, &rng);
    double t_sample = now() - t0, t_steps = 0;
    for (int b = 0; b <= steps; b++) {
        double t = now();
        m.loss_grad(m.self, s.user + (int64_t)b * 2048, s.pos + (int64_t)b * 2048, s.neg + (int64_t)b * 2048, 2048);
        mrec_adam_step(&adam, ctx);
        if (b) t_steps += now() - t; /* the first step warms up */
    }
    double t_step = t_steps / steps;
    t0 = now();
    m.prepare(m.self);
    mrec_eval_spec spec = {.relevant = &test, .masked = {&train, NULL}, .n_k = 1, .k = {20}};
    mrec_eval_result r;
    mrec_evaluate(&r, &spec, m.score, m.self, ctx);
    double t_eval = now() - t0;
    int steps_per_epoch = (int)((s.n + 2047) / 2048);

    double peer[3];
    lightgcn_peer(peer, TRAIN, TEST, threads, steps, "cpu", "lightgcn");

    printf("LightGCN on Gowalla (%d users, %d items, %lld training pairs), 3 layers, 64-d, %d threads\n", x.n_users,
           x.n_items, (long long)s.n, threads);
    printf("%-28s %12s %12s %8s\n", "phase", "mrec", "PyTorch", "ratio");
    const char *names[3] = {"sampling (one epoch)", "train step (batch 2048)", "evaluation (all users)"};
    double ours[3] = {t_sample, t_step, t_eval};
    for (int i = 0; i < 3; i++) {
        if (peer[i] > 0) printf("%-28s %11.3fs %11.3fs %7.2fx\n", names[i], ours[i], peer[i], peer[i] / ours[i]);
        else printf("%-28s %11.3fs %12s %8s\n", names[i], ours[i], "(no peer)", "-");
    }
    double epoch = t_sample + steps_per_epoch * t_step, peer_epoch = peer[0] + steps_per_epoch * peer[1];
    if (peer[1] > 0)
        printf("%-28s %11.1fs %11.1fs %7.2fx\n", "epoch (sampling + steps)", epoch, peer_epoch, peer_epoch / epoch);
    else
        printf("%-28s %11.1fs\n", "epoch (sampling + steps)", epoch);
    printf("(test recall@20 after %d steps: %.4f)\n", steps + 1, r.value[MREC_METRIC_RECALL][0]);
    mrec_model_destroy(&m);
    mrec_bpr_sampler_free(&s);
    mrec_adam_free(&adam);
    mrec_graph_free(&g);
    mrec_user_items_free(&train), mrec_user_items_free(&test);
    mrec_interactions_free(&x);
    mrec_context_destroy(ctx);
    return 0;
}
