/* bench_gpu_gowalla.c: BPRMF, LightGCN and NGCF on Gowalla, trained on the
 * GPU: seconds per epoch (training; the evaluation of every user against
 * every item timed apart), beside PyTorch's BPRMF, LightGCN and NGCF on the
 * same GPU (bench/peers/lightgcn_peer.py: MMRec's recipes for BPRMF and
 * LightGCN, NGCF's authors' computation, torch.sparse.mm).
 *
 *   build/cuda/bench/bench_gpu_gowalla [epochs]     (make gpu-check runs it; default 3)
 *   MREC_DATA=DIR      the folder holding gowalla-lightgcn (default ../shared/data, else shared/data)
 *   MREC_PYTHON=...    a Python with torch for the peer (default python3)
 *
 * Gowalla: 29,858 users, 40,981 items, 810,128 training pairs (LightGCN's
 * split). 64-d, batch 2048, Adam at 1e-3, the models' registry defaults
 * (LightGCN: 3 layers). An epoch's seconds are the mean of the epochs after
 * the first, which is given apart (it carries the one-time setup). The peer's
 * epoch is its sampling plus the batches' count times its mean step. First,
 * one propagation alone: the normalized adjacency times 64-wide rows (the
 * SpMM a LightGCN step runs six times). The evaluation's seconds come with
 * the host's share: its work on the top lists (none here: the accuracy
 * metrics are reduced on the GPU, mrec_rank_metrics) and its wait for the
 * GPU (the whole ranking, as the host reads the sums). Without a GPU it
 * says so and measures nothing.
 *
 *   MREC_BENCH_PROFILE="MODEL STEPS"  instead: STEPS training steps of MODEL
 *   after 3 to warm up, inside a profiler range (ncu --profile-from-start off,
 *   as tools/gpu/check.sh runs it), and where the host's time went: the
 *   model's loss and gradient calls, Adam's, and the wait for the device.
 */
#include "bench_data.h"
#include "bench_fit.h"
#include "lightgcn_peer.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* MREC_BENCH_PROFILE: `steps` steps of one model as mrec_fit takes them (the sampler's pairs in order, the loss
 * and gradient, Adam on the active rows), the last `steps` inside a profiler range. */
static int profile_steps(const char *spec, mrec_context *ctx, const mrec_model_inputs *in, const mrec_user_items *train) {
    char name[64];
    int steps = 0;
    if (sscanf(spec, "%63s %d", name, &steps) != 2 || steps < 1 || steps > 1000)
        return fprintf(stderr, "MREC_BENCH_PROFILE=\"%s\": want \"MODEL STEPS\" (e.g. \"lightgcn 20\")\n", spec), 2;
    const mrec_model_entry *e = mrec_model_find(name);
    if (!e) return fprintf(stderr, "MREC_BENCH_PROFILE: no model \"%s\"\n", name), 2;
    mrec_built_model b;
    mrec_bpr_sampler s;
    memset(&s, 0, sizeof s);
    mrec_optimizer adam;
    mrec_adam_init_on(&adam, 1e-3f, 0, ctx);
    mrec_rng rng = {7};
    mrec_status st = bench_build(&b, e, in, ctx);
    if (!st) st = mrec_bpr_sampler_init(&s, train);
    double t_draw = seconds();
    if (!st) mrec_bpr_sampler_epoch(&s, &rng);
    t_draw = seconds() - t_draw;
    mrec_model *m = &b.model;
    for (int q = 0; q < m->n_params && !st; q++) st = mrec_adam_add(&adam, m->param[q], m->grad[q], m->size[q]);
    if (!st && m->epoch_start) st = m->epoch_start(m->self);
    double t_batch = 0, t_wait = 0, t0 = 0, w0 = 0;
    long long replays = 0;
    bench_sum sum;
    memset(&sum, 0, sizeof sum);
    if (!st && !bench_sum_init(&sum, ctx)) st = mrec_fail(MREC_ERR_NOMEM, "%s: the loss's sum", name);
    for (int k = 0; k < 3 + steps && !st; k++) {
        if (k == 3) {
            st = mrec_cuda_sync(ctx->cuda);
            if (!st) st = mrec_cuda_profile(ctx->cuda, 1);
            t0 = seconds(), w0 = mrec_cuda_stage_wait(ctx->cuda), replays = mrec_cuda_graph_launches();
        }
        int64_t at = (int64_t)k * 2048 % (s.n > 2048 ? s.n - 2048 : 1);
        double a = seconds();
        if (!bench_batch(m, &adam, &sum, s.user + at, s.pos + at, s.neg + at, (int)(s.n < 2048 ? s.n : 2048), ctx))
            st = MREC_ERR_ARG; /* mrec_error_detail has its words */
        if (k >= 3) t_batch += seconds() - a;
    }
    double total = 0;
    if (!st) {
        double w = seconds();
        st = mrec_cuda_sync(ctx->cuda);
        t_wait = seconds() - w, total = seconds() - t0;
    }
    mrec_status closed = mrec_cuda_profile(ctx->cuda, 0);
    if (!st) st = closed;
    if (st) fprintf(stderr, "bench_gpu_gowalla: %s: %s\n", name, mrec_error_detail());
    else {
        printf("%s, %d steps of 2048: all of them in %.3f ms (%.3f ms a step), profiled\n", name, steps, total * 1e3, total * 1e3 / steps);
        printf("  host: a batch's call (step, loss, Adam) %.3f ms (of it %.3f ms waiting for upload slots), the final wait %.3f ms in "
               "all; %lld of the %d steps replayed as CUDA graphs; an epoch's draw %.1f ms\n", t_batch * 1e3 / steps,
               (mrec_cuda_stage_wait(ctx->cuda) - w0) * 1e3 / steps, t_wait * 1e3, mrec_cuda_graph_launches() - replays, steps,
               t_draw * 1e3);
    }
    bench_sum_free(&sum);
    mrec_adam_free(&adam);
    mrec_bpr_sampler_free(&s);
    mrec_built_model_free(&b);
    return st ? 1 : 0;
}

/* One propagation of LightGCN's: the normalized adjacency (both directions) times 64-wide rows, alone, the mean of
 * 20 after one; the bytes are those of the rows gathered (one per entry) and written. */
/* An epoch's BPR triples drawn on the host (mrec_fit draws the next epoch's on a helper thread while the GPU trains
 * this one): the mean of three draws, to set beside the GPU's epoch. A draw longer than the epoch would leave the GPU
 * waiting, and the triples would then be worth drawing on the device. */
static double host_draw(const mrec_user_items *train) {
    mrec_bpr_sampler s;
    if (mrec_bpr_sampler_init(&s, train)) return fprintf(stderr, "sampler: %s\n", mrec_error_detail()), 0;
    mrec_rng rng = {999};
    mrec_bpr_sampler_epoch(&s, &rng); /* the first touches the pages */
    double t0 = seconds();
    for (int k = 0; k < 3; k++) mrec_bpr_sampler_epoch(&s, &rng);
    double t = (seconds() - t0) / 3;
    mrec_bpr_sampler_free(&s);
    return t;
}

static void spmm_alone(mrec_context *ctx, const mrec_user_items *train) {
    mrec_graph g;
    if (mrec_graph_normalized(&g, train)) return (void)fprintf(stderr, "spmm: %s\n", mrec_error_detail());
    int n = g.n_nodes, d = 64;
    int64_t nnz = g.row_ptr[n];
    float *x = malloc(sizeof(float) * (size_t)n * d);
    for (int64_t i = 0; x && i < (int64_t)n * d; i++) x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    void *rp = NULL, *col = NULL, *val = NULL, *dx = NULL, *dy = NULL;
    mrec_cuda *cu = ctx->cuda;
    mrec_status st = x ? MREC_OK : mrec_fail(MREC_ERR_NOMEM, "spmm");
    if (!st) st = mrec_cuda_malloc(cu, &rp, sizeof(int64_t) * ((size_t)n + 1));
    if (!st) st = mrec_cuda_malloc(cu, &col, sizeof(int32_t) * (size_t)nnz);
    if (!st) st = mrec_cuda_malloc(cu, &val, sizeof(float) * (size_t)nnz);
    if (!st) st = mrec_cuda_malloc(cu, &dx, sizeof(float) * (size_t)n * d);
    if (!st) st = mrec_cuda_malloc(cu, &dy, sizeof(float) * (size_t)n * d);
    if (!st) st = mrec_cuda_copy_h2d(cu, rp, g.row_ptr, sizeof(int64_t) * ((size_t)n + 1));
    if (!st) st = mrec_cuda_copy_h2d(cu, col, g.col, sizeof(int32_t) * (size_t)nnz);
    if (!st) st = mrec_cuda_copy_h2d(cu, val, g.val, sizeof(float) * (size_t)nnz);
    if (!st) st = mrec_cuda_copy_h2d(cu, dx, x, sizeof(float) * (size_t)n * d);
    double t0 = 0;
    for (int r = 0; r <= 20 && !st; r++) {
        if (r == 1 && !(st = mrec_cuda_sync(cu))) t0 = seconds();
        if (!st) st = mrec_spmm_cuda(dy, rp, col, val, dx, n, n, d, cu);
    }
    if (!st) st = mrec_cuda_sync(cu);
    double each = (seconds() - t0) / 20;
    if (st) fprintf(stderr, "spmm: %s\n", mrec_error_detail());
    else
        printf("spmm, the adjacency (%d x %d, %lld entries) x 64-wide rows: %.3f ms (%.0f GB/s of rows gathered and written)\n", n, n,
               (long long)nnz, each * 1e3, ((double)nnz + n) * d * 4 / each * 1e-9);
    mrec_cuda_free(cu, rp), mrec_cuda_free(cu, col), mrec_cuda_free(cu, val), mrec_cuda_free(cu, dx), mrec_cuda_free(cu, dy);
    free(x);
    mrec_graph_free(&g);
}

int main(int argc, char **argv) {
    int epochs = argc > 1 ? atoi(argv[1]) : 3;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (epochs < 1) return fprintf(stderr, "usage: bench_gpu_gowalla [epochs >= 1]\n"), 1;
    char train_path[4200], test_path[4200];
    if (!bench_data_path(train_path, sizeof train_path, "gowalla-lightgcn/train_reconstructed.txt") ||
        !bench_data_path(test_path, sizeof test_path, "gowalla-lightgcn/test.txt"))
        return printf("bench_gpu_gowalla: gowalla-lightgcn not found (MREC_DATA, ../shared/data, shared/data)\n"), 0;
    mrec_context *gpu;
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CUDA;
    if (mrec_context_create(&gpu, &o)) return printf("bench_gpu_gowalla: no GPU (%s); nothing to measure\n", mrec_error_detail()), 0;
    mrec_interactions x;
    if (mrec_load_lightgcn(&x, train_path)) {
        fprintf(stderr, "bench_gpu_gowalla: %s\n", mrec_error_detail());
        mrec_context_destroy(gpu);
        return 1;
    }
    mrec_user_items train, valid, test;
    mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN);
    mrec_user_items_build(&valid, &x, MREC_SPLIT_VALID);
    mrec_user_items_build(&test, &x, MREC_SPLIT_TEST);
    mrec_model_inputs in = {.n_users = x.n_users, .n_items = x.n_items, .train = &train};
    long long pairs = (long long)train.row_ptr[train.n_rows];
    const char *profile = getenv("MREC_BENCH_PROFILE");
    if (profile) {
        int rc = profile_steps(profile, gpu, &in, &train);
        mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
        mrec_interactions_free(&x);
        mrec_context_destroy(gpu);
        return rc;
    }
    printf("Gowalla on the GPU: %d users, %d items, %lld training pairs, 64-d, batch 2048, %d epoch(s)\n", x.n_users, x.n_items,
           pairs, epochs);
    spmm_alone(gpu, &train);
    double draw = host_draw(&train);
    printf("an epoch's triples drawn on the host: %.3f s (overlapped with the epoch before on the GPU: the GPU waits only "
           "where an epoch below takes less)\n", draw);
    printf("%-10s %14s %14s %14s %14s %10s\n", "model", "train s/epoch", "first epoch s", "eval s", "(host, wait)", "Recall@20");
    const char *models[] = {"bprmf", "lightgcn", "ngcf"};
    double epoch[3] = {0}, eval[3] = {0};
    int failed = 0;
    for (int i = 0; i < 3; i++) {
        const mrec_model_entry *e = mrec_model_find(models[i]);
        bench_timing t = e ? bench_fit("bench_gpu_gowalla", gpu, e, &in, &train, &valid, &test, epochs, 1e-3f) : (bench_timing){0};
        failed |= !t.ok;
        if (t.ok)
            printf("%-10s %14.3f %14.3f %14.3f  %5.3f, %5.3f %10.4f\n", models[i], t.seconds_per_epoch, t.first_epoch, t.eval_seconds,
                   t.eval_host, t.eval_wait, t.recall);
        else printf("%-10s %14s\n", models[i], "failed");
        if (t.ok) epoch[i] = t.seconds_per_epoch, eval[i] = t.eval_seconds;
    }
    for (int i = 0; i < 3; i++) {
        const char *label = i == 0 ? "BPRMF" : i == 1 ? "LightGCN" : "NGCF";
        double peer[3];
        lightgcn_peer(peer, train_path, test_path, 16, 20, "cuda", models[i]);
        double peer_epoch = peer[0] + (double)((pairs + 2047) / 2048) * peer[1];
        if (peer[1] > 0 && epoch[i] > 0)
            printf("PyTorch %s on the same GPU: %.3f s an epoch (%.3f sampling + %lld steps of %.5f), eval %.3f s; "
                   "mrec %.1fx, eval %.1fx\n",
                   label, peer_epoch, peer[0], (pairs + 2047) / 2048, peer[1], peer[2], peer_epoch / epoch[i],
                   eval[i] > 0 ? peer[2] / eval[i] : 0);
        else
            printf("PyTorch %s: no peer (MREC_PYTHON with torch and a GPU)\n", label);
    }
    mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
    mrec_interactions_free(&x);
    mrec_context_destroy(gpu);
    return failed;
}
