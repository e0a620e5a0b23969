/* bench_vision.c: images per second for decode + preprocess (ducho-resnet
 * preset, 128 H&M photos) and for the ResNet50 and ViT-B/16 forward passes
 * at batch 1, 32 and 128, side by side with PIL + torchvision and PyTorch
 * CPU (bench/peers/vision_peer.py) at the same thread count, in one run.
 *
 *   build/cpu/bench/bench_vision [threads [full_dir]]
 *   MREC_FULL_DIR=DIR   full-size random checkpoints (tools/golden/vision.py --full DIR)
 *   MREC_PYTHON=...     a Python with torch, torchvision, transformers
 *   MREC_BENCH_BATCHES="1 32 128"
 * Each figure is the best of 3 passes (8 below batch 8) and of at least
 * 3 s of passes, the peer's likewise. Both models run
 * as the image encoder runs them, their weights packed once (mrec_packs). Where the CPU has AVX-512
 * BF16, "ViT-B/16 bf16" and "ResNet50 bf16" rows: mrec with --precision bf16
 * against PyTorch under torch.autocast(bfloat16).
 */
#include "../extractors/mrec_preprocess.h"
#include "../nn/mrec_resnet.h"
#include "../nn/mrec_vit.h"
#include "bench_batches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_IMAGES 128
#define MIN_SECONDS 3.0 /* of passes, per model and batch size (the peer's too) */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *full = argc > 2 ? argv[2] : getenv("MREC_FULL_DIR");
    if (!full) {
        fprintf(stderr, "bench_vision: set MREC_FULL_DIR (tools/golden/vision.py --full DIR)\n");
        return 1;
    }
    /* the image list: every 13th H&M photo */
    const char *list = "build/bench_vision_images.txt";
    char cmd[4096], sizes[128];
    snprintf(cmd, sizeof cmd, "find ../shared/data/hm-fashion-sample/images -name '*.jpg' | sort | awk 'NR %% 13 == 1' | head -%d > %s",
             N_IMAGES, list);
    if (system(cmd) != 0) return 1;
    char *paths[N_IMAGES];
    int n = 0;
    FILE *f = fopen(list, "r");
    char line[4096];
    while (f && n < N_IMAGES && fgets(line, sizeof line, f)) line[strcspn(line, "\n")] = 0, paths[n++] = strdup(line);
    if (f) fclose(f);
    mrec_preprocess pre;
    mrec_preprocess_preset(&pre, "ducho-resnet", NULL);
    float *x = malloc(sizeof(float) * 3 * 224 * 224 * N_IMAGES);
    double dec = 1e30, dec_spent = 0;
    for (int rep = 0; rep < 3 || dec_spent < MIN_SECONDS; rep++) {
        double t0 = now();
        for (int i = 0; i < n; i++) {
            mrec_rgb_image img;
            if (mrec_image_load(paths[i], &img)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
            mrec_preprocess_image(&pre, &img, x + (size_t)i * 3 * 224 * 224, NULL);
            mrec_image_free(&img);
        }
        double t = now() - t0;
        dec = t < dec ? t : dec, dec_spent += t;
    }
    char dir[4096];
    mrec_resnet r;
    mrec_vit v;
    snprintf(dir, sizeof dir, "%s/resnet50", full);
    if (mrec_resnet_load(&r, dir)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    snprintf(dir, sizeof dir, "%s/vit_b16", full);
    if (mrec_vit_load(&v, dir)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = threads;
    mrec_context *ctx;
    if (mrec_context_create(&ctx, &o)) return 1;
    size_t ws = mrec_resnet_batch_workspace_bytes(ctx, &r, N_IMAGES, 224, 224), wv = mrec_vit_workspace_bytes(&v, N_IMAGES);
    mrec_context_reserve(ctx, ws > wv ? ws : wv);
    mrec_context *half_ctx = NULL;
    o.precision = MREC_PREC_BF16;
    /* bf16 ResNet50 as the image extractor runs it: its own copy moved to the bf16 context, which lays it out
     * channels-last (bf16 activations between layers) where the CPU has AVX-512 BF16 */
    mrec_resnet r16;
    snprintf(dir, sizeof dir, "%s/resnet50", full);
    if (mrec_resnet_load(&r16, dir)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    if (mrec_cpu_has_bf16() && mrec_context_create(&half_ctx, &o) == MREC_OK) {
        if (mrec_resnet_to_device(&r16, half_ctx)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
        size_t w16 = mrec_resnet_batch_workspace_bytes(half_ctx, &r16, N_IMAGES, 224, 224);
        mrec_context_reserve(half_ctx, w16 > wv ? w16 : wv);
    }
    mrec_packs *packs, *resnet_packs, *resnet16_packs; /* the weights packed once, as the image extractor packs them */
    if (mrec_packs_create(&packs, v.storage, v.floats) || mrec_packs_create(&resnet_packs, r.storage, r.floats) ||
        mrec_packs_create(&resnet16_packs, r16.storage, r16.floats))
        return 1;
    int batches[BENCH_MAX_BATCHES], nb = bench_batches(batches, "1 32 128", 1, N_IMAGES);
    double ours[BENCH_MAX_BATCHES][4] = {{0}};
    int models = half_ctx ? 4 : 2; /* ResNet50, ViT-B/16, and in bf16 ViT-B/16, ResNet50 */
    float *feat = malloc(sizeof(float) * 2048 * N_IMAGES);
    for (int k = 0; k < nb; k++) {
        int b = batches[k];
        for (int m = 0; m < models; m++) {
            double best = 1e30;
            mrec_context *c = m < 2 ? ctx : half_ctx;
            c->packs = m == 0 ? resnet_packs : m == 3 ? resnet16_packs : packs;
            /* ViT's route as mrec_vit_to_device sets it on each context: in bf16, bf16 activations between its
             * steps where the CPU has AVX-512 BF16 without AMX (one model serves both contexts here) */
            v.bf16_acts = m == 2 && mrec_bf16_activations_native(c);
            if (m == 2) mrec_vit_forward(c, &v, x, b, feat, NULL); /* the weights rounded and packed */
            if (m == 3) mrec_resnet_forward(c, &r16, x, b, 224, 224, feat, NULL);
            /* as the peer: the best of 3 passes (8 below batch 8) and of 3 s of them at least, so that one
             * busy moment of the host does not slow every pass */
            double spent = 0;
            for (int rep = 0; rep < (b >= 8 ? 3 : 8) || spent < MIN_SECONDS; rep++) {
                double t0 = now();
                if (m == 0) mrec_resnet_forward(c, &r, x, b, 224, 224, feat, NULL);
                else if (m == 3) mrec_resnet_forward(c, &r16, x, b, 224, 224, feat, NULL);
                else mrec_vit_forward(c, &v, x, b, feat, NULL);
                double t = now() - t0;
                spent += t, t /= b;
                best = t < best ? t : best;
            }
            ours[k][m] = best;
        }
    }
    /* the peer, same thread count */
    const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
    snprintf(cmd, sizeof cmd, "%s bench/peers/vision_peer.py %s %s %d %s%s 2>/dev/null", py, full, list, threads,
             half_ctx ? "bf16 " : "", bench_batches_text(sizes, sizeof sizes, batches, nb));
    FILE *p = popen(cmd, "r");
    double peer_dec = 0, peer[BENCH_MAX_BATCHES][4] = {{0}};
    char what[32];
    int pb;
    double secs;
    while (p && fscanf(p, "%31s", what) == 1) {
        if (!strcmp(what, "decode") && fscanf(p, "%lf", &peer_dec) == 1) continue;
        if (fscanf(p, "%d %lf", &pb, &secs) != 2) break;
        for (int k = 0; k < nb; k++)
            if (batches[k] == pb)
                peer[k][!strcmp(what, "resnet50") ? 0 : !strcmp(what, "vit_b16") ? 1 : !strcmp(what, "vit_b16_bf16") ? 2 : 3] = secs;
    }
    if (p) pclose(p);
    printf("bench_vision: %d threads, %d H&M photos\n", threads, n);
    printf("%-28s %12s %12s %8s\n", "", "mrec img/s", "peer img/s", "ratio");
    printf("%-28s %12.1f %12.1f %7.2fx\n", "decode+preprocess (ducho)", n / dec, peer_dec > 0 ? n / peer_dec : 0, peer_dec > 0 ? peer_dec / dec : 0);
    for (int k = 0; k < nb; k++)
        for (int m = 0; m < models; m++) {
            char label[64];
            static const char *const names[4] = {"ResNet50", "ViT-B/16", "ViT-B/16 bf16", "ResNet50 bf16"};
            snprintf(label, sizeof label, "%s batch %d", names[m], batches[k]);
            printf("%-28s %12.2f %12.2f %7.2fx\n", label, 1 / ours[k][m], peer[k][m] > 0 ? 1 / peer[k][m] : 0,
                   peer[k][m] > 0 ? peer[k][m] / ours[k][m] : 0);
        }
    mrec_context_destroy(ctx);
    mrec_context_destroy(half_ctx);
    mrec_packs_free(packs), mrec_packs_free(resnet_packs), mrec_packs_free(resnet16_packs);
    mrec_resnet_free(&r), mrec_resnet_free(&r16), mrec_vit_free(&v);
    for (int i = 0; i < n; i++) free(paths[i]);
    free(x), free(feat);
    return 0;
}
