/* bench_vision.c: images per second for decode + preprocess (ducho-resnet
 * preset, 128 H&M photos) and for the ResNet50 and ViT-B/16 forward passes
 * at batch 1, 32 and 128, side by side with PIL + torchvision and PyTorch
 * CPU (bench/peers/vision_peer.py) at the same thread count, in one run.
 *
 *   build/cpu/bench/bench_vision [threads [full_dir]]
 *   MREC_FULL_DIR=DIR   full-size random checkpoints (tools/golden/vision.py --full DIR); without
 *                       them, decode + preprocess only
 *   MREC_PYTHON=...     a Python with torch, torchvision, transformers
 *   MREC_BENCH_BATCHES="1 32 128"
 *   MREC_BENCH_ROUNDS=3  mrec and the peer in turn 3 times, each keeping its best (bench_batches.h)
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

/* What mrec times and the peer's command, with both sides' best seconds so far (0: none yet) */
typedef struct {
    char *paths[N_IMAGES];
    int n, nb, batches[BENCH_MAX_BATCHES], models; /* models: ResNet50, ViT-B/16, and in bf16 ViT-B/16, ResNet50 */
    mrec_preprocess pre;
    mrec_context *ctx, *half_ctx; /* fp32; bf16, or NULL without AVX-512 BF16 */
    mrec_resnet r, r16;           /* r16: moved to half_ctx */
    mrec_vit v;                   /* one model for both contexts */
    mrec_packs *packs, *resnet_packs, *resnet16_packs;
    float *x, *feat;
    char peer_cmd[4096];
    double dec, ours[BENCH_MAX_BATCHES][4];           /* seconds for all n photos; per image */
    double peer_dec, peer[BENCH_MAX_BATCHES][4];
} bench;

/* mrec's turn: decode + preprocess of every photo, then each model at each batch size. Each figure is the best
 * of 3 passes (8 below batch 8) and of at least 3 s of passes, as the peer's, so that one busy moment of the
 * host does not slow every pass. Returns 1 on an error (printed). */
static int time_mrec(bench *B) {
    double dec = 1e30, dec_spent = 0;
    for (int rep = 0; rep < 3 || dec_spent < MIN_SECONDS; rep++) {
        double t0 = now();
        for (int i = 0; i < B->n; i++) {
            mrec_rgb_image img;
            if (mrec_image_load(B->paths[i], &img)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
            mrec_preprocess_image(&B->pre, &img, B->x + (size_t)i * 3 * 224 * 224, NULL);
            mrec_image_free(&img);
        }
        double t = now() - t0;
        dec = t < dec ? t : dec, dec_spent += t;
    }
    bench_keep(&B->dec, dec);
    for (int k = 0; k < B->nb; k++) {
        int b = B->batches[k];
        for (int m = 0; m < B->models; m++) {
            double best = 1e30;
            mrec_context *c = m < 2 ? B->ctx : B->half_ctx;
            c->packs = m == 0 ? B->resnet_packs : m == 3 ? B->resnet16_packs : B->packs;
            /* ViT's route as mrec_vit_to_device sets it on each context: in bf16, bf16 activations between its
             * steps where the CPU has AVX-512 BF16 without AMX (one model serves both contexts here) */
            B->v.bf16_acts = m == 2 && mrec_bf16_activations_native(c);
            if (m == 2) mrec_vit_forward(c, &B->v, B->x, b, B->feat, NULL); /* the weights rounded and packed */
            if (m == 3) mrec_resnet_forward(c, &B->r16, B->x, b, 224, 224, B->feat, NULL);
            double spent = 0;
            for (int rep = 0; rep < (b >= 8 ? 3 : 8) || spent < MIN_SECONDS; rep++) {
                double t0 = now();
                if (m == 0) mrec_resnet_forward(c, &B->r, B->x, b, 224, 224, B->feat, NULL);
                else if (m == 3) mrec_resnet_forward(c, &B->r16, B->x, b, 224, 224, B->feat, NULL);
                else mrec_vit_forward(c, &B->v, B->x, b, B->feat, NULL);
                double t = now() - t0;
                spent += t, t /= b;
                best = t < best ? t : best;
            }
            bench_keep(&B->ours[k][m], best);
        }
    }
    return 0;
}

/* The peer's turn (bench/peers/vision_peer.py, the same thread count), its figures read from its output */
static void run_peer(bench *B) {
    FILE *p = popen(B->peer_cmd, "r");
    char what[32];
    int pb;
    double secs;
    while (p && fscanf(p, "%31s", what) == 1) {
        if (!strcmp(what, "decode") && fscanf(p, "%lf", &secs) == 1) {
            bench_keep(&B->peer_dec, secs);
            continue;
        }
        if (fscanf(p, "%d %lf", &pb, &secs) != 2) break;
        for (int k = 0; k < B->nb; k++)
            if (B->batches[k] == pb)
                bench_keep(&B->peer[k][!strcmp(what, "resnet50") ? 0 : !strcmp(what, "vit_b16") ? 1 : !strcmp(what, "vit_b16_bf16") ? 2 : 3], secs);
    }
    if (p) pclose(p);
}

/* The models, their contexts and their packed weights, as the image extractor holds them. Returns 1 on an error
 * (printed). */
static int load_models(bench *B, const char *full, int threads) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/resnet50", full);
    if (mrec_resnet_load(&B->r, dir)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    snprintf(dir, sizeof dir, "%s/vit_b16", full);
    if (mrec_vit_load(&B->v, dir)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = threads;
    if (mrec_context_create(&B->ctx, &o)) return 1;
    size_t ws = mrec_resnet_batch_workspace_bytes(B->ctx, &B->r, N_IMAGES, 224, 224), wv = mrec_vit_workspace_bytes(&B->v, N_IMAGES);
    mrec_context_reserve(B->ctx, ws > wv ? ws : wv);
    o.precision = MREC_PREC_BF16;
    /* bf16 ResNet50 as the image extractor runs it: its own copy moved to the bf16 context, which lays it out
     * channels-last (bf16 activations between layers) where the CPU has AVX-512 BF16 */
    snprintf(dir, sizeof dir, "%s/resnet50", full);
    if (mrec_resnet_load(&B->r16, dir)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    if (mrec_cpu_has_bf16() && mrec_context_create(&B->half_ctx, &o) == MREC_OK) {
        if (mrec_resnet_to_device(&B->r16, B->half_ctx)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
        size_t w16 = mrec_resnet_batch_workspace_bytes(B->half_ctx, &B->r16, N_IMAGES, 224, 224);
        mrec_context_reserve(B->half_ctx, w16 > wv ? w16 : wv);
    }
    /* the weights packed once, as the image extractor packs them */
    if (mrec_packs_create(&B->packs, B->v.storage, B->v.floats) || mrec_packs_create(&B->resnet_packs, B->r.storage, B->r.floats) ||
        mrec_packs_create(&B->resnet16_packs, B->r16.storage, B->r16.floats))
        return 1;
    B->models = B->half_ctx ? 4 : 2;
    return 0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *full = argc > 2 ? argv[2] : getenv("MREC_FULL_DIR");
    if (!full) fprintf(stderr, "bench_vision: decode + preprocess only (MREC_FULL_DIR: tools/golden/vision.py --full DIR)\n");
    static bench B; /* its arrays are large for the stack */
    /* the image list: every 13th H&M photo */
    const char *list = "build/bench_vision_images.txt";
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "find ../shared/data/hm-fashion-sample/images -name '*.jpg' | sort | awk 'NR %% 13 == 1' | head -%d > %s",
             N_IMAGES, list);
    if (system(cmd) != 0) return 1;
    FILE *f = fopen(list, "r");
    char line[4096];
    while (f && B.n < N_IMAGES && fgets(line, sizeof line, f)) line[strcspn(line, "\n")] = 0, B.paths[B.n++] = strdup(line);
    if (f) fclose(f);
    mrec_preprocess_preset(&B.pre, "ducho-resnet", NULL);
    B.x = malloc(sizeof(float) * 3 * 224 * 224 * N_IMAGES);
    if (full && load_models(&B, full, threads)) return 1;
    B.nb = bench_batches(B.batches, "1 32 128", 1, N_IMAGES);
    B.feat = malloc(sizeof(float) * 2048 * N_IMAGES);
    bench_peer_command(B.peer_cmd, sizeof B.peer_cmd, "vision_peer.py", full ? full : "-", list, threads, B.half_ctx != NULL, B.batches,
                       B.nb);
    for (int round = 0, rounds = bench_rounds(); round < rounds; round++)
        for (int turn = 0; turn < 2; turn++)
            if (bench_peer_turn(round, turn)) run_peer(&B);
            else if (time_mrec(&B)) return 1;
    printf("bench_vision: %d threads, %d H&M photos, best of %d round%s\n", threads, B.n, bench_rounds(), bench_rounds() > 1 ? "s" : "");
    printf("%-28s %12s %12s %8s\n", "", "mrec img/s", "peer img/s", "ratio");
    printf("%-28s %12.1f %12.1f %7.2fx\n", "decode+preprocess (ducho)", B.n / B.dec, B.peer_dec > 0 ? B.n / B.peer_dec : 0,
           B.peer_dec > 0 ? B.peer_dec / B.dec : 0);
    for (int k = 0; k < B.nb; k++)
        for (int m = 0; m < B.models; m++) {
            char label[64];
            static const char *const names[4] = {"ResNet50", "ViT-B/16", "ViT-B/16 bf16", "ResNet50 bf16"};
            double ours = B.ours[k][m], peer = B.peer[k][m];
            snprintf(label, sizeof label, "%s batch %d", names[m], B.batches[k]);
            printf("%-28s %12.2f %12.2f %7.2fx\n", label, 1 / ours, peer > 0 ? 1 / peer : 0, peer > 0 ? peer / ours : 0);
        }
    if (B.models) {
        mrec_context_destroy(B.ctx);
        mrec_context_destroy(B.half_ctx);
        mrec_packs_free(B.packs), mrec_packs_free(B.resnet_packs), mrec_packs_free(B.resnet16_packs);
        mrec_resnet_free(&B.r), mrec_resnet_free(&B.r16), mrec_vit_free(&B.v);
    }
    for (int i = 0; i < B.n; i++) free(B.paths[i]);
    free(B.x), free(B.feat);
    return 0;
}
