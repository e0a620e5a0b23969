/* bench_recent.c: seconds per training epoch of the five newest multimodal
 * models (MGCN, LGMRec, PGL, SMORE, MENTOR) and of the benchmark fork's GRCN,
 * MMGCN, LightGCN-M, SGL and SimGCL on Baby-sized data, side by side with their reference code restated in
 * PyTorch (bench/peers/recent_peer.py, bench/peers/fork_peer.py), same
 * threads, same run. bench_multimodal does the same for the older models
 * with create calls written out; here each model is built through the
 * registry at its defaults (mrec_model_find, mrec_params_resolve,
 * mrec_model_build), so what is timed is what `mrec train --model X` trains,
 * and the settings printed are the ones the peer must use.
 *
 * Data as bench_multimodal: MMRec's Baby split (19,445 users, 7,050 items,
 * 118,551 training pairs), random features of Baby's sizes (4096-d visual,
 * 384-d textual, uniform in [0, 1), seed 42), written to build/bench_mm/ for
 * the peer. An epoch is ceil(pairs / batch) steps of loss, backward and Adam;
 * the figure is the mean over the timed steps, after one warm-up step (which
 * also runs the model's epoch start: PGL's edge draw), times the steps per
 * epoch. Sampling is left out on both sides; so is building the kNN item
 * graphs (timed apart, "build s").
 *
 *   build/cpu/bench/bench_recent [threads [steps]]
 *   MREC_PYTHON=...   a Python with torch
 *   MREC_BENCH_MODELS="lgmrec pgl"   time only these (mrec and the peer alike)
 *   MREC_PRECISION=bf16              mrec's GEMMs in bf16 (tf32 on the GPU too), as mrec train --precision
 *   MREC_DEVICE=cuda   both sides on the GPU (build/cuda/bench/bench_recent; make gpu-check runs it): mrec on
 *                      a CUDA context, the peers on torch's cuda device; the timed steps back to back
 *                      on both sides as each trainer runs them (the peers read each loss back, as
 *                      MMRec's and Elliot's loops do), timed to the end of the last one's work
 *   MREC_BENCH_PROFILE="MODEL STEPS"   on the GPU instead: STEPS steps of MODEL after one warm-up inside a
 *                      profiler range (ncu --profile-from-start off; tools/gpu/check.sh's "baby MODEL STEPS"),
 *                      and where the host's time went; no peer
 */
#include "../nn/mrec_npy.h"
#include "../recsys/mrec_registry.h"
#include "bench_data.h"
#include "bench_fit.h"

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

#define N_MODELS 10

/* name is one of the words of list ("mgcn" is not in "mmgcn") */
static int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, steps = argc > 2 ? atoi(argv[2]) : 10;
    if (threads < 1 || steps < 1) return fprintf(stderr, "usage: bench_recent [threads >= 1 [steps >= 1]]\n"), 1;
    char data[4200];
    if (!bench_data_path(data, sizeof data, "amazon-baby-mmrec/baby_split.tsv"))
        return printf("bench_recent: amazon-baby-mmrec/baby_split.tsv not found (MREC_DATA, ../shared/data, shared/data)\n"), 0;
    mrec_interactions x;
    if (mrec_load_inter(&x, data)) return fprintf(stderr, "bench_recent: %s\n", mrec_error_detail()), 1;
    mrec_user_items train;
    mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN);
    int U = x.n_users, I = x.n_items;
    int64_t pairs = train.row_ptr[U];
    /* the same random features as bench_multimodal, written out so the peer trains on the same numbers */
    mkdir("build", 0755);
    mkdir("build/bench_mm", 0755);
    mrec_rng rng = {42};
    mrec_features feat[2] = {{.name = "visual", .n_items = I, .dim = 4096}, {.name = "textual", .n_items = I, .dim = 384}};
    const char *files[2] = {"build/bench_mm/image_feat.npy", "build/bench_mm/text_feat.npy"};
    for (int m = 0; m < 2; m++) {
        feat[m].x = malloc(sizeof(float) * (size_t)I * feat[m].dim);
        if (!feat[m].x) return fprintf(stderr, "bench_recent: out of memory\n"), 1;
        for (size_t k = 0; k < (size_t)I * feat[m].dim; k++) feat[m].x[k] = (float)mrec_rng_uniform(&rng);
        int64_t shape[2] = {I, feat[m].dim};
        if (mrec_npy_write(files[m], MREC_NPY_F32, 2, shape, feat[m].x)) return fprintf(stderr, "bench_recent: %s\n", mrec_error_detail()), 1;
    }
    const char *device = getenv("MREC_DEVICE") && !strcmp(getenv("MREC_DEVICE"), "cuda") ? "cuda" : "cpu";
    int gpu = !strcmp(device, "cuda");
    mrec_context_options o = mrec_context_defaults();
    o.device = gpu ? MREC_WANT_CUDA : MREC_WANT_CPU, o.n_threads = threads;
    /* MREC_PRECISION=tf32|bf16: mrec's GEMMs so (mrec train --precision); the peer stays fp32 */
    if (getenv("MREC_PRECISION") && mrec_precision_parse(getenv("MREC_PRECISION"), &o.precision))
        return fprintf(stderr, "MREC_PRECISION: %s\n", mrec_error_detail()), 1;
    mrec_context *ctx;
    if (mrec_context_create(&ctx, &o)) return fprintf(stderr, "bench_recent: %s\n", mrec_error_detail()), 1;
    mrec_bpr_sampler s;
    mrec_bpr_sampler_init(&s, &train);
    mrec_bpr_sampler_epoch(&s, &rng);

    const char *names[N_MODELS] = {"mgcn", "lgmrec", "pgl", "smore", "mentor", "grcn", "mmgcn", "lightgcnm", "sgl", "simgcl"};
    /* the profile mode: one model's steps in a profiler range, any model of the registry (bench_multimodal's too) */
    const char *profile = getenv("MREC_BENCH_PROFILE");
    char profiled[64] = "";
    if (profile) {
        if (!gpu) return fprintf(stderr, "bench_recent: MREC_BENCH_PROFILE wants MREC_DEVICE=cuda\n"), 1;
        if (sscanf(profile, "%63s %d", profiled, &steps) != 2 || steps < 1 || steps > 1000)
            return fprintf(stderr, "MREC_BENCH_PROFILE=\"%s\": want \"MODEL STEPS\" (e.g. \"mentor 5\")\n", profile), 2;
        names[0] = profiled;
    }
    double ours[N_MODELS] = {0}, build[N_MODELS] = {0}, busy[N_MODELS] = {0};
    int per_epoch[N_MODELS] = {0}, batch_used[N_MODELS] = {0};
    char where[32];
    snprintf(where, sizeof where, gpu ? "the GPU, both sides" : "%d threads", threads);
    printf("bench_recent: %s, Baby (%d users, %d items, %lld pairs), each model at mrec's defaults:\n", where, U, I,
           (long long)pairs);
    const char *only = profile ? profiled : getenv("MREC_BENCH_MODELS");
    for (int k = 0; k < (profile ? 1 : N_MODELS); k++) {
        if (only && !listed(only, names[k])) continue;
        const mrec_model_entry *e = mrec_model_find(names[k]);
        mrec_param_values given, p;
        memset(&given, 0, sizeof given);
        if (!e) return fprintf(stderr, "bench_recent: no model \"%s\"\n", names[k]), 1;
        if (mrec_params_resolve(&p, e, &given)) return fprintf(stderr, "bench_recent: %s: %s\n", names[k], mrec_error_detail()), 1;
        int batch = mrec_hp_int(&p, MREC_HP_BATCH_SIZE);
        if (batch > s.n) return fprintf(stderr, "bench_recent: %s: batch %d exceeds the %lld pairs\n", names[k], batch, (long long)s.n), 1;
        /* no cache: the kNN graphs are built here and timed apart */
        mrec_model_inputs in = {.n_users = U, .n_items = I, .train = &train, .feat = feat, .n_feat = 2};
        mrec_built_model b;
        memset(&b, 0, sizeof b);
        double t0 = now();
        if (mrec_model_build(&b, e, &in, &p, ctx)) return fprintf(stderr, "bench_recent: %s: %s\n", names[k], mrec_error_detail()), 1;
        if (gpu) mrec_cuda_sync(ctx->cuda);
        build[k] = now() - t0;
        char desc[512];
        mrec_model_describe(desc, sizeof desc, e, &p, feat, 2, -1);
        printf("  %-7s %s\n", e->elliot, desc);
        mrec_model *m = &b.model;
        mrec_optimizer adam;
        mrec_adam_init_on(&adam, mrec_hp_real(&p, MREC_HP_LR), 0, ctx);
        for (int q = 0; q < m->n_params; q++)
            if (mrec_adam_add(&adam, m->param[q], m->grad[q], m->size[q])) return fprintf(stderr, "bench_recent: %s\n", mrec_error_detail()), 1;
        /* two warm-up batches (with the epoch's start; on a GPU a two-halved model's second captures its graph), then
         * `steps` timed ones back to back, as mrec_fit runs them (mrec_fit_batch), timed to the end of the last one's
         * work on the device */
        double t = 0, t_step = 0, t_wait = 0, w0 = 0;
        bench_sum sum;
        if (!bench_sum_init(&sum, ctx)) return fprintf(stderr, "bench_recent: %s\n", mrec_error_detail()), 1;
        for (int step = 0; step < steps + 2; step++) {
            int64_t at = (int64_t)step * batch % (s.n - batch + 1);
            if (m->epoch_start && step == 0 && m->epoch_start(m->self)) return fprintf(stderr, "bench_recent: %s\n", mrec_error_detail()), 1;
            double a = now();
            if (!bench_batch(m, &adam, &sum, s.user + at, s.pos + at, s.neg + at, batch, ctx))
                return fprintf(stderr, "bench_recent: %s: %s\n", names[k], mrec_error_detail()), 1;
            if (step > 1) t_step += now() - a;
            if (step == 1) {
                if (gpu) mrec_cuda_sync(ctx->cuda);
                if (profile && mrec_cuda_profile(ctx->cuda, 1)) return fprintf(stderr, "bench_recent: %s\n", mrec_error_detail()), 1;
                t = now(), w0 = mrec_cuda_stage_wait(ctx->cuda);
            }
        }
        t_wait = now();
        if (gpu && mrec_cuda_sync(ctx->cuda)) return fprintf(stderr, "bench_recent: %s: %s\n", names[k], mrec_error_detail()), 1;
        t_wait = now() - t_wait, t = now() - t;
        if (profile) {
            if (mrec_cuda_profile(ctx->cuda, 0)) return fprintf(stderr, "bench_recent: %s\n", mrec_error_detail()), 1;
            printf("%s on Baby, %d steps of %d: all of them in %.3f ms (%.3f ms a step), profiled\n", e->elliot, steps, batch, t * 1e3,
                   t * 1e3 / steps);
            printf("  host: a batch's call (step, loss, Adam) %.3f ms (of it %.3f ms waiting for upload slots), the final wait %.3f ms "
                   "in all; %lld graph replays in the process\n", t_step * 1e3 / steps, (mrec_cuda_stage_wait(ctx->cuda) - w0) * 1e3 / steps,
                   t_wait * 1e3, mrec_cuda_graph_launches());
            bench_sum_free(&sum);
            mrec_adam_free(&adam);
            mrec_built_model_free(&b);
            mrec_context_destroy(ctx);
            return 0;
        }
        double slot_wait = mrec_cuda_stage_wait(ctx->cuda) - w0; /* the host blocked on the GPU, not issuing */
        busy[k] = t > 0 ? (t_step - slot_wait) / t : 0;
        per_epoch[k] = (int)((pairs + batch - 1) / batch), batch_used[k] = batch;
        ours[k] = t / steps * per_epoch[k];
        bench_sum_free(&sum);
        mrec_adam_free(&adam);
        mrec_built_model_free(&b);
    }

    fflush(stdout); /* the header before anything the peer prints */
    const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
    double peer[N_MODELS] = {0}, peer_build[N_MODELS] = {0}, secs;
    static const char *const peers[] = {"recent_peer.py", "fork_peer.py"};
    for (int q = 0; q < 2; q++) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "%s bench/peers/%s %s %d %d %s", py, peers[q], data, threads, steps, device);
        FILE *pp = popen(cmd, "r");
        char what[32];
        while (pp && fscanf(pp, "%31s %lf", what, &secs) == 2)
            for (int k = 0; k < N_MODELS; k++) {
                char b[40];
                snprintf(b, sizeof b, "%s_build", names[k]);
                if (!strcmp(what, names[k])) peer[k] = secs * per_epoch[k];
                if (!strcmp(what, b)) peer_build[k] = secs;
            }
        if (pp && pclose(pp)) fprintf(stderr, "bench_recent: the peer (%s) failed; its columns are 0\n", cmd);
    }
    printf("mean of %d timed steps after two warm-up ones, times the steps of an epoch\n", steps);
    printf("%-8s %12s %12s %8s %10s %10s %12s\n", "", "mrec s/ep", "PyTorch s/ep", "ratio", "build s", "peer bld s", "steps x batch");
    for (int k = 0; k < N_MODELS; k++) {
        if (!per_epoch[k]) continue; /* not timed (MREC_BENCH_MODELS) */
        printf("%-8s %12.2f %12.2f %7.2fx %10.2f %10.2f %7d x %d", mrec_model_find(names[k])->elliot, ours[k], peer[k],
               peer[k] > 0 && ours[k] > 0 ? peer[k] / ours[k] : 0, build[k], peer_build[k], per_epoch[k], batch_used[k]);
        if (gpu) printf("  %5.0f %%", 100 * busy[k]);
        printf("\n");
    }
    printf("(ratio: PyTorch's seconds over mrec's; above 1, mrec is faster%s)\n",
           gpu ? "; %: the share of mrec's time the host spent issuing the steps, near 100 where its launches bound them" : "");
    mrec_context_destroy(ctx);
    return 0;
}
