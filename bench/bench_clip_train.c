/* bench_clip_train.c: one CLIP training step (forward, backward of the
 * symmetric contrastive loss through both towers, global-norm clipping and
 * AdamW), samples per second on the CPU, side by side with Hugging Face's
 * CLIPModel on PyTorch CPU (bench/peers/clip_train_peer.py) doing the same
 * step on the same weights and inputs, same threads, in one run; and the
 * memory a step takes on both sides.
 *
 *   build/cpu/bench/bench_clip_train [threads [clip_dir]]
 *   MREC_FULL_DIR=DIR   DIR/clip_b16 from tools/golden/clip.py --full DIR/clip_b16
 *   MREC_PYTHON=...     a Python with torch and transformers
 *   MREC_BENCH_BATCHES="8 32 64"   pairs per step; MREC_BENCH_STEPS=3 timed steps (after one warm-up)
 *
 * The step is mrec finetune-clip's (mrec_finetune_accumulate, then
 * mrec_finetune_apply: clip at 1.0, AdamW betas (0.9, 0.98), eps 1e-6, weight
 * decay 0.2 on the weight matrices); the peer's is CLIPModel(return_loss=True),
 * backward, clip_grad_norm_(1.0), torch.optim.AdamW with the same groups.
 * Inputs: images uniform in [-1, 1) (preprocessed size), texts of 32 tokens
 * (random ids, the end-of-text id last), the same bytes on both sides.
 * Memory: mrec's is counted (weights, gradients, two moments, the step's
 * workspace), and the process's peak resident size is printed beside it;
 * the peer prints its own peak resident size (it holds the same four copies
 * of the weights plus autograd's saved activations).
 */
#include "../tools/mrec_finetune.h"
#include "bench_batches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define T_TOKENS 32

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_mb(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_maxrss / 1024.0;
}

/* xorshift, so that the peer can draw the same inputs (it reads them from the files written here) */
static uint64_t next(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    char dir[4096];
    if (argc > 2) snprintf(dir, sizeof dir, "%s", argv[2]);
    else if (getenv("MREC_FULL_DIR")) snprintf(dir, sizeof dir, "%s/clip_b16", getenv("MREC_FULL_DIR"));
    else return fprintf(stderr, "bench_clip_train: set MREC_FULL_DIR (tools/golden/clip.py --full DIR/clip_b16)\n"), 1;
    int steps = getenv("MREC_BENCH_STEPS") ? atoi(getenv("MREC_BENCH_STEPS")) : 3;
    if (steps < 1) steps = 1;

    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = threads;
    mrec_context *ctx;
    if (mrec_context_create(&ctx, &o)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    printf("bench_clip_train: %s, %d threads, %d timed steps after one warm-up, texts of %d tokens\n", dir, threads, steps, T_TOKENS);
    printf("%6s %14s %14s %8s %12s %12s %12s\n", "batch", "mrec pairs/s", "torch pairs/s", "ratio", "mrec MB", "mrec peak MB",
           "torch peak MB");
    int batches[BENCH_MAX_BATCHES], nb = bench_batches(batches, "8 32", 2, 4096);
    for (int bi = 0; bi < nb; bi++) {
        long B = batches[bi];
        mrec_clip m;
        if (mrec_clip_load(&m, dir, MREC_CLIP_BOTH) || mrec_clip_to_device(&m, ctx)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
        int S = m.vision.cfg.image_size, C = m.vision.cfg.channels, V = m.text.cfg.vocab_size;
        size_t n_img = (size_t)B * C * S * S;
        float *images = malloc(sizeof(float) * n_img);
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * T_TOKENS);
        uint64_t seed = 0x9E3779B97F4A7C15ull;
        for (size_t i = 0; i < n_img; i++) images[i] = (float)((next(&seed) >> 40) / 16777216.0 * 2.0 - 1.0);
        for (long i = 0; i < B * T_TOKENS; i++) ids[i] = (int32_t)(1 + next(&seed) % (uint64_t)(V - 2));
        for (long i = 0; i < B; i++) ids[i * T_TOKENS + T_TOKENS - 1] = V - 1; /* the end-of-text id: the highest */
        FILE *f = fopen("build/bench_clip_train.bin", "wb");
        if (f) {
            fwrite(images, sizeof(float), n_img, f);
            fwrite(ids, sizeof(int32_t), (size_t)B * T_TOKENS, f);
            fclose(f);
        }
        mrec_finetune ft;
        mrec_finetune_options fo = {1e-5, 0.2, 1.0, 0, 0};
        if (mrec_finetune_init(&ft, ctx, &m, &fo, (int)B, T_TOKENS)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
        double held = (double)sizeof(float) * 4 * (double)(m.vision.floats + m.text.floats) + (double)ft.work_bytes;
        double t = 0, loss = 0;
        for (int k = 0; k <= steps; k++) {
            double t0 = now();
            if (mrec_finetune_accumulate(&ft, images, ids, NULL, (int)B, T_TOKENS, &loss) || mrec_finetune_apply(&ft, 1e-5))
                return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
            if (k) t += now() - t0;
        }
        double ours = B * steps / t, peak = peak_mb();
        mrec_finetune_free(&ft);
        mrec_clip_free(&m);
        free(images), free(ids);

        const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "%s bench/peers/clip_train_peer.py %s %d %ld %d %d build/bench_clip_train.bin 2>/dev/null", py, dir,
                 threads, B, T_TOKENS, steps);
        FILE *p = popen(cmd, "r");
        double secs = 0, torch_mb = 0;
        if (!p || fscanf(p, "%lf %lf", &secs, &torch_mb) != 2) secs = 0;
        if (p) pclose(p);
        double theirs = secs > 0 ? B / secs : 0;
        printf("%6ld %14.2f %14.2f %7.2fx %12.0f %12.0f %12.0f\n", B, ours, theirs, theirs > 0 ? ours / theirs : 0, held / 1048576.0,
               peak, torch_mb);
        fflush(stdout);
    }
    mrec_context_destroy(ctx);
    return 0;
}
