/* bench_multimodal.c: seconds per training epoch of the multimodal models on
 * Baby-sized data (MMRec's Amazon Baby split: 19,445 users, 7,050 items,
 * 118,551 training pairs; LightGCN, VBPR, FREEDOM, LATTICE, BM3, NGCF-M; random features of Baby's sizes, 4096-d visual
 * and 384-d textual, since the real ones are not available), side by side
 * with MMRec's models restated in PyTorch (bench/peers/multimodal_peer.py),
 * same threads, same run. An epoch is ceil(pairs / 2048) steps of loss,
 * backward and Adam; the figure is the mean over the timed steps, times the
 * steps per epoch (LATTICE: plus its first step, which rebuilds the learned
 * graph). Sampling is left out on both sides. LATTICE's memory is the peak
 * resident size it adds (getrusage), ours sparse, MMRec's dense items x items.
 * Then an evaluation as each trainer runs one after an epoch, timed apart:
 * LightGCN's forward over the graph and the full ranking of every test user
 * (scores against all 7,050 items, training items masked, the top 20, Recall
 * and nDCG@20), mrec_evaluate beside MMRec's full-sort evaluation (the
 * scores in batches of 4,096 users, masked with -1e10, torch.topk, the
 * metrics in numpy on the host as MMRec's TopKEvaluator computes them). The
 * other models rank the same way after their own forward, which their step
 * already times.
 *
 *   build/cpu/bench/bench_multimodal [threads [steps]]
 *   MREC_PYTHON=...   a Python with torch
 *   MREC_BENCH_MODELS="VBPR NGCF-M"   time only these of mrec's (a profile of one)
 *   MREC_PRECISION=bf16  mrec's GEMMs in bf16 (tf32 on the GPU too), as mrec train --precision; the peer in fp32
 *   MREC_DEVICE=cuda  both sides on the GPU (build/cuda/bench/bench_multimodal; make gpu-check runs it):
 *                     mrec on a CUDA context, the peer's models and data on torch's cuda device; the
 *                     timed steps run back to back on both sides as each trainer runs them (mrec's
 *                     losses stay on the device, the peer reads each back as MMRec's trainer does),
 *                     timed to the end of the last one's work; no memory row (bench/elec_size.sh)
 */
#include "../nn/mrec_npy.h"
#include "bench_data.h"
#include "../recsys/mrec_recsys.h"
#include "bench_fit.h"

#include <math.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Waits for the work queued on a GPU context (a step's time ends there); nothing on the CPU. */
static mrec_status wait_device(mrec_context *ctx) {
    return ctx->device == MREC_DEVICE_CUDA ? mrec_cuda_sync(ctx->cuda) : MREC_OK;
}

/* mean seconds per step over `steps` batches after two warm-up ones (on a GPU the first runs a two-halved model's
 * launches as they are, the second captures them, as in each of mrec_fit's epochs), taken back to back as mrec_fit
 * takes them (mrec_fit_batch, no wait between) and timed to the end of the last one's work; *busy: the share of that
 * time the host spent issuing them, its waits for upload slots (the GPU behind) left out: near 1, the launches bound
 * the steps, not the GPU */
static double time_steps(mrec_model *m, mrec_bpr_sampler *s, mrec_optimizer *adam, int steps, mrec_context *ctx, double *busy) {
    double t0 = 0, w0 = 0;
    bench_sum sum;
    if (!bench_sum_init(&sum, ctx)) return fprintf(stderr, "bench_multimodal: %s\n", mrec_error_detail()), NAN;
    for (int k = 0; k < steps + 2; k++) {
        int64_t at = (int64_t)k * 2048 % (s->n - 2048);
        if ((m->epoch_start && k == 0 && m->epoch_start(m->self)) ||
            !bench_batch(m, adam, &sum, s->user + at, s->pos + at, s->neg + at, 2048, ctx)) {
            fprintf(stderr, "bench_multimodal: %s: %s\n", m->name, mrec_error_detail());
            bench_sum_free(&sum);
            return NAN;
        }
        if (k == 1) wait_device(ctx), t0 = now(), w0 = mrec_cuda_stage_wait(ctx->cuda);
    }
    double issued = now() - t0 - (mrec_cuda_stage_wait(ctx->cuda) - w0);
    mrec_status st = wait_device(ctx);
    double t = now() - t0;
    bench_sum_free(&sum);
    if (st) return fprintf(stderr, "bench_multimodal: %s: %s\n", m->name, mrec_error_detail()), NAN;
    *busy = t > 0 ? issued / t : 0;
    return t / steps;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, steps = argc > 2 ? atoi(argv[2]) : 10;
    char data[4200];
    if (!bench_data_path(data, sizeof data, "amazon-baby-mmrec/baby_split.tsv"))
        return printf("bench_multimodal: amazon-baby-mmrec/baby_split.tsv not found (MREC_DATA, ../shared/data, shared/data)\n"), 0;
    mrec_interactions x;
    if (mrec_load_inter(&x, data)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    mrec_user_items train, test;
    mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN);
    mrec_user_items_build(&test, &x, MREC_SPLIT_TEST);
    int U = x.n_users, I = x.n_items;
    int64_t pairs = train.row_ptr[U];
    int per_epoch = (int)((pairs + 2047) / 2048);
    /* random features, written out so the peer trains on the same numbers */
    mkdir("build/bench_mm", 0755);
    mrec_rng rng = {42};
    mrec_features feat[2] = {{.name = "visual", .n_items = I, .dim = 4096}, {.name = "textual", .n_items = I, .dim = 384}};
    const char *files[2] = {"build/bench_mm/image_feat.npy", "build/bench_mm/text_feat.npy"};
    for (int m = 0; m < 2; m++) {
        feat[m].x = malloc(sizeof(float) * (size_t)I * feat[m].dim);
        for (size_t k = 0; k < (size_t)I * feat[m].dim; k++) feat[m].x[k] = (float)mrec_rng_uniform(&rng);
        int64_t shape[2] = {I, feat[m].dim};
        if (mrec_npy_write(files[m], MREC_NPY_F32, 2, shape, feat[m].x)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    }
    const char *device = getenv("MREC_DEVICE") && !strcmp(getenv("MREC_DEVICE"), "cuda") ? "cuda" : "cpu";
    int gpu = !strcmp(device, "cuda");
    mrec_context_options o = mrec_context_defaults();
    o.device = gpu ? MREC_WANT_CUDA : MREC_WANT_CPU, o.n_threads = threads;
    /* MREC_PRECISION=tf32|bf16: mrec's GEMMs so (mrec train --precision); the peer stays fp32 */
    if (getenv("MREC_PRECISION") && mrec_precision_parse(getenv("MREC_PRECISION"), &o.precision))
        return fprintf(stderr, "MREC_PRECISION: %s\n", mrec_error_detail()), 1;
    mrec_context *ctx;
    if (mrec_context_create(&ctx, &o)) return fprintf(stderr, "bench_multimodal: %s\n", mrec_error_detail()), 1;
    mrec_bpr_sampler s;
    mrec_bpr_sampler_init(&s, &train);
    mrec_bpr_sampler_epoch(&s, &rng);
    mrec_graph full, item_graph;
    mrec_graph_normalized(&full, &train);
    const float *xs[2] = {feat[0].x, feat[1].x};
    int dims[2] = {4096, 384};
    float w[2] = {0.1f, 0.9f};
    double t0 = now();
    if (mrec_graph_knn(&item_graph, xs, dims, w, 2, I, 10, ctx) || wait_device(ctx))
        return fprintf(stderr, "bench_multimodal: the kNN item graph: %s\n", mrec_error_detail()), 1;
    double knn_s = now() - t0, knn_first = knn_s;
    if (gpu) { /* the first build paid for the GPU's start-up (cuBLAS's kernels loaded on first use); the peer's
                * products are warm by its kNN graph: timed again */
        mrec_graph_free(&item_graph);
        t0 = now();
        if (mrec_graph_knn(&item_graph, xs, dims, w, 2, I, 10, ctx) || wait_device(ctx))
            return fprintf(stderr, "bench_multimodal: the kNN item graph: %s\n", mrec_error_detail()), 1;
        knn_s = now() - t0;
    }
    float *cat = mrec_alloc_large(sizeof(float) * (size_t)I * (4096 + 384)); /* as the command line holds them */
    for (int i = 0; i < I; i++) { /* MMRec's VBPR: textual, then visual */
        memcpy(cat + (size_t)i * 4480, feat[1].x + (size_t)i * 384, sizeof(float) * 384);
        memcpy(cat + (size_t)i * 4480 + 384, feat[0].x + (size_t)i * 4096, sizeof(float) * 4096);
    }
    const char *names[6] = {"LightGCN", "VBPR", "FREEDOM", "LATTICE", "BM3", "NGCF-M"};
    double ours[6], busy[6] = {0}, lattice_mb = 0, eval_s = 0;
    mrec_eval_result eval_r = {0};
    mrec_graph mean_self;
    mrec_graph_mean_self(&mean_self, &train);
    /* LATTICE first, so its peak memory is its own */
    const char *only = getenv("MREC_BENCH_MODELS");
    for (int w4 = 0; w4 < 6; w4++) {
        int which = w4 == 0 ? 3 : w4 <= 3 ? w4 - 1 : w4;
        ours[which] = 0;
        if (only && !strstr(only, names[which])) continue;
        mrec_model m;
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        mrec_status st = which == 0   ? mrec_lightgcn_create(&m, &full, U, I, 64, 2, 1e-4f, &rng, ctx)
                         : which == 1 ? mrec_vbpr_create(&m, U, I, 64, 1e-3f, cat, 4480, &rng, ctx)
                         : which == 2 ? mrec_freedom_create(&m, &full, &item_graph, &train, feat, 2, 64, 2, 1e-3f, 0.8f, &rng, ctx)
                         : which == 3 ? mrec_lattice_create(&m, &mean_self, feat, 2, U, 64, 10, 0.9f, 1e-4f, 2048, &rng, ctx)
                         : which == 4 ? mrec_bm3_create(&m, &full, feat, 2, U, 64, 1, 0.1f, 2.0f, 0.3f, &rng, ctx)
                                      : mrec_ngcfm_create(&m, &mean_self, U, I, cat, 4480, 64, 3, 0.01f, 0.5f, 0, &rng, ctx);
        if (st) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
        mrec_optimizer adam;
        mrec_adam_init_on(&adam, 1e-3f, 0, ctx); /* the moments where the context runs */
        for (int p = 0; p < m.n_params && !st; p++) st = mrec_adam_add(&adam, m.param[p], m.grad[p], m.size[p]);
        if (st) return fprintf(stderr, "bench_multimodal: %s: %s\n", names[which], mrec_error_detail()), 1;
        /* LATTICE rebuilds its learned graph once per epoch: time that step apart */
        if (which == 3) {
            bench_sum sum;
            int ok = bench_sum_init(&sum, ctx);
            double t1 = now(); /* the graph's build, then one batch as mrec_fit takes it */
            ok = ok && m.epoch_start(m.self) == MREC_OK && bench_batch(&m, &adam, &sum, s.user, s.pos, s.neg, 2048, ctx) &&
                 wait_device(ctx) == MREC_OK;
            bench_sum_free(&sum);
            if (!ok) return fprintf(stderr, "bench_multimodal: LATTICE's first step: %s\n", mrec_error_detail()), 1;
            double build = now() - t1;
            ours[which] = time_steps(&m, &s, &adam, steps, ctx, &busy[which]) * (per_epoch - 1) + build;
            getrusage(RUSAGE_SELF, &r1);
            lattice_mb = (r1.ru_maxrss - r0.ru_maxrss) / 1024.0;
        } else {
            ours[which] = time_steps(&m, &s, &adam, steps, ctx, &busy[which]) * per_epoch;
        }
        if (which == 0) { /* an evaluation after the epoch: the forward, then the full ranking (the second of two: the
                           * first pays for the ranking's buffers) */
            mrec_eval_spec spec = {.relevant = &test, .masked = {&train, NULL}, .n_k = 1, .k = {20}, .accuracy_only = 1};
            for (int rep = 0; rep < 2; rep++) {
                double t1 = now();
                mrec_status est = m.prepare ? m.prepare(m.self) : MREC_OK;
                if (!est) est = mrec_evaluate(&eval_r, &spec, m.score, m.self, ctx);
                if (est) return fprintf(stderr, "bench_multimodal: evaluation: %s\n", mrec_error_detail()), 1;
                eval_s = now() - t1;
            }
        }
        mrec_adam_free(&adam);
        mrec_model_destroy(&m);
    }
    const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s bench/peers/multimodal_peer.py %s %d %d %s 2>/dev/null", py, data, threads, steps, device);
    FILE *p = popen(cmd, "r");
    double peer[6] = {0}, secs, peer_knn = 0, peer_lattice_mb = 0, peer_build = 0, peer_eval = 0;
    char what[32];
    while (p && fscanf(p, "%31s %lf", what, &secs) == 2) {
        if (!strcmp(what, "knn")) peer_knn = secs;
        if (!strcmp(what, "lattice_mb")) peer_lattice_mb = secs;
        if (!strcmp(what, "lattice_build")) peer_build = secs;
        if (!strcmp(what, "eval")) peer_eval = secs;
        for (int k = 0; k < 6; k++)
            if (!strcmp(what, names[k])) peer[k] = k == 3 ? secs * (per_epoch - 1) + peer_build : secs * per_epoch;
    }
    if (p) pclose(p);
    char where[32];
    snprintf(where, sizeof where, gpu ? "the GPU, both sides" : "%d threads", threads);
    printf("bench_multimodal: %s, Baby (%d users, %d items, %lld pairs: %d steps of 2048 per epoch)\n", where, U, I,
           (long long)pairs, per_epoch);
    printf("%-28s %12s %12s %8s\n", "", "mrec s", "peer s", "ratio");
    printf("%-28s %12.2f %12.2f %7.2fx\n", "kNN item graph (k 10)", knn_s, peer_knn, knn_s > 0 && peer_knn > 0 ? peer_knn / knn_s : 0);
    if (gpu) printf("%-28s %12.2f   (the first build on the context, with the GPU's start-up)\n", "kNN item graph, first", knn_first);
    for (int k = 0; k < 6; k++) {
        printf("%-28s %12.2f %12.2f %7.2fx", names[k], ours[k], peer[k], peer[k] > 0 && ours[k] > 0 ? peer[k] / ours[k] : 0);
        if (gpu) printf("   host busy %.0f %% of it", 100 * busy[k]);
        printf("\n");
    }
    if (eval_s > 0)
        printf("%-28s %12.2f %12.2f %7.2fx   (LightGCN's forward, %d test users ranked over every item; R@20 %.4f)\n",
               "evaluation", eval_s, peer_eval, peer_eval > 0 ? peer_eval / eval_s : 0, eval_r.n_users,
               eval_r.value[MREC_METRIC_RECALL][0]);
    if (!gpu)
        printf("%-28s %12.0f %12.0f   (MB of peak memory added by building and training it)\n", "LATTICE memory", lattice_mb,
               peer_lattice_mb);
    for (int k = 0; k < 6; k++) /* a model that failed (said above) fails the run */
        if (isnan(ours[k])) return 1;
    return 0;
}
