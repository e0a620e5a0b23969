/* bench_align.c: ALIGN's image tower (EfficientNet-B7 as Hugging Face builds
 * it for kakaobrain/align-base: 289 x 289 input, 640 features) in images per
 * second at batch 1, 8 and 32, side by side with transformers'
 * AlignVisionModel on PyTorch CPU (bench/peers/align_peer.py) on the same
 * weights and inputs, same threads, in one run: fp32 against fp32, and
 * where the CPU has AVX-512 BF16, mrec's bf16 against torch.autocast bf16.
 * mrec runs as the image extractor does, its weights packed once (the first
 * pass packs them and is not timed). Each figure is the best of 3 passes
 * (of every round: MREC_BENCH_ROUNDS, bench_batches.h); inputs are H&M
 * photos through the hf-align preset.
 *
 *   build/cpu/bench/bench_align [threads [model_dir]]
 *   MREC_FULL_DIR=DIR   DIR/align_b7 (written by the peer, align_peer.py --make DIR/align_b7, if missing)
 *   MREC_PYTHON=...     a Python with torch and transformers
 *   MREC_BENCH_BATCHES="1 8 32"
 *   MREC_BENCH_ROUNDS=3  mrec and the peer in turn 3 times, each keeping its best
 */
#include "../extractors/mrec_preprocess.h"
#include "../nn/mrec_efficientnet.h"
#include "bench_batches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N_IMAGES 32
#define SIZE 289

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    char dir[4096], cmd[8192], path[4200];
    const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
    if (argc > 2) snprintf(dir, sizeof dir, "%s", argv[2]);
    else if (getenv("MREC_FULL_DIR")) snprintf(dir, sizeof dir, "%s/align_b7", getenv("MREC_FULL_DIR"));
    else return fprintf(stderr, "bench_align: set MREC_FULL_DIR (the model goes to DIR/align_b7)\n"), 1;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, R_OK) != 0) {
        snprintf(cmd, sizeof cmd, "%s bench/peers/align_peer.py --make %s", py, dir);
        if (system(cmd) != 0) return fprintf(stderr, "bench_align: could not write %s (%s)\n", dir, cmd), 1;
    }
    /* the inputs: every 50th H&M photo, preprocessed as ALIGN's processor does, written for the peer */
    const char *list = "build/bench_align_images.txt", *inputs = "build/bench_align_inputs.bin";
    snprintf(cmd, sizeof cmd, "find ../shared/data/hm-fashion-sample/images -name '*.jpg' | sort | awk 'NR %% 50 == 1' | head -%d > %s",
             N_IMAGES, list);
    if (system(cmd) != 0) return 1;
    mrec_preprocess pre;
    if (mrec_preprocess_preset(&pre, "hf-align", NULL)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    float *x = malloc(sizeof(float) * 3 * SIZE * SIZE * N_IMAGES);
    FILE *f = fopen(list, "r");
    char line[4096];
    int n = 0;
    while (f && n < N_IMAGES && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        mrec_rgb_image img;
        if (mrec_image_load(line, &img)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
        mrec_preprocess_image(&pre, &img, x + (size_t)n++ * 3 * SIZE * SIZE, NULL);
        mrec_image_free(&img);
    }
    if (f) fclose(f);
    if (n < N_IMAGES) return fprintf(stderr, "bench_align: %d photos (the H&M sample of ../shared/data is needed)\n", n), 1;
    FILE *o = fopen(inputs, "wb");
    if (!o || fwrite(x, sizeof(float), (size_t)3 * SIZE * SIZE * N_IMAGES, o) != (size_t)3 * SIZE * SIZE * N_IMAGES) return 1;
    fclose(o);

    mrec_efficientnet m;
    if (mrec_efficientnet_load(&m, dir)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    mrec_packs *packs;
    if (mrec_packs_create(&packs, m.storage, m.floats)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    mrec_context *ctx[2] = {NULL, NULL}; /* fp32; bf16 where the CPU has AVX-512 BF16 */
    for (int prec = 0; prec < (mrec_cpu_has_bf16() ? 2 : 1); prec++) {
        mrec_context_options co = mrec_context_defaults();
        co.device = MREC_WANT_CPU, co.n_threads = threads, co.precision = prec ? MREC_PREC_BF16 : MREC_PREC_FP32;
        if (mrec_context_create(&ctx[prec], &co) ||
            mrec_context_reserve(ctx[prec], mrec_efficientnet_batch_workspace_bytes(ctx[prec], &m, N_IMAGES, SIZE, SIZE)))
            return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
        ctx[prec]->packs = packs;
    }
    int bs[BENCH_MAX_BATCHES], nb = bench_batches(bs, "1 8 32", 1, N_IMAGES);
    float *emb = malloc(sizeof(float) * (size_t)m.features * N_IMAGES);
    double ours[2][BENCH_MAX_BATCHES] = {{0}}, peer[2][BENCH_MAX_BATCHES] = {{0}}; /* best seconds per image, 0: none */
    char sizes[128];
    for (int prec = 0; prec < 2 && ctx[prec]; prec++) /* the first pass packs the weights: not timed */
        if (mrec_efficientnet_forward(ctx[prec], &m, x, 1, SIZE, SIZE, NULL, emb, NULL)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    for (int round = 0, rounds = bench_rounds(); round < rounds; round++)
        for (int turn = 0; turn < 2; turn++)
            for (int prec = 0; prec < 2 && ctx[prec]; prec++) {
                if (!bench_peer_turn(round, turn)) {
                    for (int k = 0; k < nb; k++)
                        for (int rep = 0; rep < 3; rep++) {
                            double t0 = now();
                            if (mrec_efficientnet_forward(ctx[prec], &m, x, bs[k], SIZE, SIZE, NULL, emb, NULL))
                                return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
                            bench_keep(&ours[prec][k], (now() - t0) / bs[k]);
                        }
                    continue;
                }
                snprintf(cmd, sizeof cmd, "%s bench/peers/align_peer.py %s %d %s%s %s 2>/dev/null", py, dir, threads,
                         prec ? "--bf16 " : "", inputs, bench_batches_text(sizes, sizeof sizes, bs, nb));
                FILE *p = popen(cmd, "r");
                int b;
                double secs;
                while (p && fscanf(p, "%d %lf", &b, &secs) == 2)
                    for (int k = 0; k < nb; k++)
                        if (bs[k] == b) bench_keep(&peer[prec][k], secs);
                if (p) pclose(p);
            }
    printf("bench_align: ALIGN image tower (%d features, %dx%d), %d threads, images/s, best of 3 passes a round, %d round%s\n",
           m.features, SIZE, SIZE, threads, bench_rounds(), bench_rounds() > 1 ? "s" : "");
    printf("%6s %12s %12s %8s %12s %14s %8s\n", "batch", "mrec fp32", "PyTorch", "ratio", "mrec bf16", "autocast bf16", "ratio");
    for (int k = 0; k < nb; k++) {
        printf("%6d", bs[k]);
        for (int prec = 0; prec < 2; prec++)
            if (ctx[prec])
                printf(" %12.2f %*.2f %7.2fx", 1 / ours[prec][k], prec ? 14 : 12, peer[prec][k] > 0 ? 1 / peer[prec][k] : 0,
                       peer[prec][k] > 0 ? peer[prec][k] / ours[prec][k] : 0);
        printf("\n");
    }
    if (!ctx[1]) printf("(no bf16 columns: this CPU has no AVX-512 BF16)\n");
    free(emb), free(x);
    for (int prec = 0; prec < 2; prec++) mrec_context_destroy(ctx[prec]);
    mrec_packs_free(packs); /* before the weights it points into */
    mrec_efficientnet_free(&m);
    return 0;
}
