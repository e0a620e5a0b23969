/* bench_gpu_gowalla.c: BPRMF, LightGCN and NGCF on Gowalla, trained on the
 * GPU: seconds per epoch (training; the evaluation of every user against
 * every item timed apart), beside PyTorch's LightGCN on the same GPU
 * (bench/peers/lightgcn_peer.py: MMRec's recipe, torch.sparse.mm).
 *
 *   build/cuda/bench/bench_gpu_gowalla [epochs]     (make gpu-check runs it; default 3)
 *   MREC_DATA=DIR      the folder holding gowalla-lightgcn (default ../shared/data, else shared/data)
 *   MREC_PYTHON=...    a Python with torch for the peer (default python3)
 *
 * Gowalla: 29,858 users, 40,981 items, 810,128 training pairs (LightGCN's
 * split). 64-d, batch 2048, Adam at 1e-3, the models' registry defaults
 * (LightGCN: 3 layers). The peer's epoch is its sampling plus the batches'
 * count times its mean step. Without a GPU it says so and measures nothing.
 */
#include "bench_data.h"
#include "bench_fit.h"
#include "lightgcn_peer.h"

#include <stdlib.h>
#include <unistd.h>

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
    printf("Gowalla on the GPU: %d users, %d items, %lld training pairs, 64-d, batch 2048, %d epoch(s)\n", x.n_users, x.n_items,
           pairs, epochs);
    printf("%-10s %14s %14s %10s\n", "model", "train s/epoch", "eval s", "Recall@20");
    const char *models[] = {"bprmf", "lightgcn", "ngcf"};
    double lightgcn_epoch = 0, lightgcn_eval = 0;
    int failed = 0;
    for (int i = 0; i < 3; i++) {
        const mrec_model_entry *e = mrec_model_find(models[i]);
        bench_timing t = e ? bench_fit("bench_gpu_gowalla", gpu, e, &in, &train, &valid, &test, epochs, 1e-3f) : (bench_timing){0};
        failed |= !t.ok;
        if (t.ok) printf("%-10s %14.3f %14.3f %10.4f\n", models[i], t.seconds_per_epoch, t.eval_seconds, t.recall);
        else printf("%-10s %14s\n", models[i], "failed");
        if (i == 1) lightgcn_epoch = t.seconds_per_epoch, lightgcn_eval = t.eval_seconds;
    }
    double peer[3];
    lightgcn_peer(peer, train_path, test_path, 16, 20, "cuda");
    double peer_epoch = peer[0] + (double)((pairs + 2047) / 2048) * peer[1];
    if (peer[1] > 0 && lightgcn_epoch > 0)
        printf("PyTorch LightGCN on the same GPU: %.3f s an epoch (%.3f sampling + %lld steps of %.5f), eval %.3f s; "
               "mrec %.1fx, eval %.1fx\n",
               peer_epoch, peer[0], (pairs + 2047) / 2048, peer[1], peer[2], peer_epoch / lightgcn_epoch,
               lightgcn_eval > 0 ? peer[2] / lightgcn_eval : 0);
    else
        printf("PyTorch LightGCN: no peer (MREC_PYTHON with torch and a GPU)\n");
    mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
    mrec_interactions_free(&x);
    mrec_context_destroy(gpu);
    return failed;
}
