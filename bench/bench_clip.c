/* bench_clip.c: CLIP ViT-B/16 (or AltCLIP) image and text embeddings per
 * second on the CPU, side by side with Hugging Face's CLIPModel (AltCLIPModel)
 * on PyTorch CPU (bench/peers/clip_peer.py) at the same thread count, in one
 * run.
 *
 *   build/cpu/bench/bench_clip [threads [model_dir]]
 *   MREC_FULL_DIR=DIR   DIR/clip_b16 from tools/golden/clip.py --full DIR/clip_b16
 *                       (an AltCLIP folder: tools/golden/altclip.py --full DIR/altclip)
 *   MREC_PYTHON=...     a Python with torch and transformers
 *   MREC_BENCH_BATCHES="1 32"
 *   MREC_BENCH_ROUNDS=3  mrec and the peer in turn 3 times, each keeping its best (bench_batches.h)
 *   MREC_BENCH_TEXTS=256  how many texts (AltCLIP's 24-layer XLM-R-large is slow on few cores)
 * Images: the vision tower (its weights packed once, as the image extractor
 * runs it) and the normalization on preprocessed (B, 3, S,
 * S) input. Texts: the first H&M descriptions, tokenized, sorted by length,
 * batched and padded to the longest in each batch, on both sides. Each
 * figure is the best of 3 passes (images: and of at least 3 s of passes, on
 * both sides). Where the CPU has AVX-512 BF16, mrec with
 * --precision bf16 too, alternated with fp32 in the same passes (its route
 * as to_device sets it on a bf16 context), against mrec's own fp32 and
 * against the peer under torch.autocast(bfloat16).
 */
#include "../extractors/mrec_extract.h"
#include "bench_batches.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_TEXTS 256
#define MAX_BATCH 128
#define MIN_SECONDS 3.0 /* of timed image passes per batch size and precision (the peer's too) */

/* Both towers' route: bf16 activations between their steps, or not (one model serves both contexts) */
static void set_route(mrec_text_encoder *enc, mrec_clip *vis, int bf16_acts) {
    vis->vision.bf16_acts = bf16_acts;
    if (enc->is_clip) enc->clip.text.bf16_acts = bf16_acts;
    else enc->bert.bf16_acts = bf16_acts;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One pass of the vision tower over b images, its weights packed once as the image extractor runs it:
 * its seconds, or -1 */
static double image_pass(mrec_context *c, mrec_clip *vis, mrec_packs *packs, const float *x, int b, float *out) {
    double t0 = now();
    c->packs = packs;
    mrec_status st = mrec_clip_image_forward(c, vis, x, b, MREC_CLIP_EMBEDS, out);
    c->packs = NULL;
    return st ? -1 : now() - t0;
}

/* What mrec times and the peers' commands, with both sides' best seconds per image or text so far (0: none yet) */
typedef struct {
    const char *texts[N_TEXTS];
    int n, nb, batches[BENCH_MAX_BATCHES], half_route;
    mrec_context *ctx, *half_ctx; /* fp32; bf16, or NULL without AVX-512 BF16 */
    mrec_text_encoder enc;
    mrec_clip vis;
    mrec_packs *vis_packs;
    float *x, *out;
    char peer_cmd[2][8192];                         /* fp32, autocast bf16 ("" where mrec has no bf16) */
    double ours[BENCH_MAX_BATCHES][2], half[BENCH_MAX_BATCHES][2]; /* [batch][image, text] */
    double peer[2][BENCH_MAX_BATCHES][2];           /* [fp32, autocast bf16][batch][image, text] */
} bench;

/* mrec's turn: both towers at each batch size, fp32 and bf16 alternated in the same passes. Returns 1 on an
 * error (printed). */
static int time_mrec(bench *B) {
    for (int k = 0; k < B->nb; k++) {
        int b = B->batches[k];
        double best[2][2] = {{1e30, 1e30}, {1e30, 1e30}}; /* [precision][image, text] */
        double spent[2] = {0, 0};                           /* in timed image passes, per precision */
        B->enc.batch_size = b;
        for (int rep = 0; rep < 4; rep++) /* the first pass of each precision packs the weights: not counted */
            for (int prec = 0; prec < (B->half_ctx ? 2 : 1); prec++) {
                mrec_context *c = prec ? B->half_ctx : B->ctx;
                set_route(&B->enc, &B->vis, prec ? B->half_route : 0);
                double ti = image_pass(c, &B->vis, B->vis_packs, B->x, b, B->out), t1 = now();
                if (ti < 0 || mrec_text_encoder_embed(c, &B->enc, B->texts, B->n, B->out))
                    return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
                double tt = now() - t1;
                if (!rep) continue;
                spent[prec] += ti;
                best[prec][0] = ti / b < best[prec][0] ? ti / b : best[prec][0];
                best[prec][1] = tt / B->n < best[prec][1] ? tt / B->n : best[prec][1];
            }
        /* more image passes where those were short, to 3 s of them, as the peer: one busy moment of the host
         * can slow a few short passes together */
        for (int prec = 0; prec < (B->half_ctx ? 2 : 1); prec++) {
            set_route(&B->enc, &B->vis, prec ? B->half_route : 0);
            while (spent[prec] < MIN_SECONDS) {
                double ti = image_pass(prec ? B->half_ctx : B->ctx, &B->vis, B->vis_packs, B->x, b, B->out);
                if (ti < 0) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
                spent[prec] += ti;
                best[prec][0] = ti / b < best[prec][0] ? ti / b : best[prec][0];
            }
        }
        for (int m = 0; m < 2; m++) {
            bench_keep(&B->ours[k][m], best[0][m]);
            if (B->half_ctx) bench_keep(&B->half[k][m], best[1][m]);
        }
    }
    return 0;
}

/* The peer's turn (bench/peers/clip_peer.py, the same thread count), in fp32 and, where mrec has bf16, under
 * autocast: its figures read from its output */
static void run_peer(bench *B) {
    for (int prec = 0; prec < 2 && B->peer_cmd[prec][0]; prec++) {
        FILE *p = popen(B->peer_cmd[prec], "r");
        double secs;
        char what[16];
        int pb;
        while (p && fscanf(p, "%15s %d %lf", what, &pb, &secs) == 3)
            for (int k = 0; k < B->nb; k++)
                if (B->batches[k] == pb) bench_keep(&B->peer[prec][k][strcmp(what, "image") ? 1 : 0], secs);
        if (p) pclose(p);
    }
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    char dir[4096];
    if (argc > 2) snprintf(dir, sizeof dir, "%s", argv[2]);
    else if (getenv("MREC_FULL_DIR")) snprintf(dir, sizeof dir, "%s/clip_b16", getenv("MREC_FULL_DIR"));
    else return fprintf(stderr, "bench_clip: set MREC_FULL_DIR (tools/golden/clip.py --full DIR/clip_b16)\n"), 1;
    int want_texts = getenv("MREC_BENCH_TEXTS") ? atoi(getenv("MREC_BENCH_TEXTS")) : N_TEXTS;
    if (want_texts < 1 || want_texts > N_TEXTS) want_texts = N_TEXTS;
    /* the texts: the first non-empty H&M descriptions */
    const char *list = "build/bench_clip_texts.txt";
    mrec_table t;
    if (mrec_table_read(&t, "../shared/data/hm-fashion-sample/original/articles_train_sample.csv", 0))
        return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    int col;
    if (mrec_table_column(&t, "detail_desc", "articles", &col)) return 1;
    static bench B; /* its arrays are large for the stack */
    FILE *f = fopen(list, "w");
    for (int r = 0; f && r < t.n_rows && B.n < want_texts; r++) {
        const char *s = t.cells[(size_t)r * t.n_cols + col];
        if (!*s || strchr(s, '\n')) continue;
        B.texts[B.n++] = s;
        fprintf(f, "%s\n", s);
    }
    if (f) fclose(f);

    mrec_text_encoder *enc = &B.enc;
    mrec_clip *vis = &B.vis;
    if (mrec_text_encoder_load(enc, dir)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    if (mrec_clip_load(vis, dir, MREC_CLIP_VISION)) return fprintf(stderr, "%s\n", mrec_error_detail()), 1;
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = threads;
    if (mrec_context_create(&B.ctx, &o)) return 1;
    /* the vision tower's weights packed once, as the image extractor packs them */
    if (mrec_packs_create(&B.vis_packs, vis->vision.storage, vis->vision.floats)) return 1;
    int S = vis->vision.cfg.image_size, D = vis->projection_dim;
    B.x = malloc(sizeof(float) * 3 * S * S * MAX_BATCH), B.out = malloc(sizeof(float) * D * N_TEXTS);
    for (size_t i = 0; i < (size_t)3 * S * S * MAX_BATCH; i++) B.x[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    B.nb = bench_batches(B.batches, "1 32", 1, MAX_BATCH);
    o.precision = MREC_PREC_BF16;
    if (mrec_cpu_has_bf16() && mrec_context_create(&B.half_ctx, &o) == MREC_OK) {
        if (mrec_clip_to_device(vis, B.half_ctx) == MREC_OK && mrec_text_encoder_to_device(enc, B.half_ctx) == MREC_OK)
            B.half_route = vis->vision.bf16_acts;
        else mrec_context_destroy(B.half_ctx), B.half_ctx = NULL;
    }
    for (int prec = 0; prec < 1 + (B.half_ctx != NULL); prec++)
        bench_peer_command(B.peer_cmd[prec], sizeof B.peer_cmd[prec], "clip_peer.py", dir, list, threads, prec, B.batches, B.nb);
    for (int round = 0, rounds = bench_rounds(); round < rounds; round++)
        for (int turn = 0; turn < 2; turn++)
            if (bench_peer_turn(round, turn)) run_peer(&B);
            else if (time_mrec(&B)) return 1;
    mrec_context_destroy(B.half_ctx);
    int n = B.n, nb = B.nb;
    printf("bench_clip: %d threads, %s %dx%d patch %d, %d H&M texts, best of %d round%s\n", threads, enc->is_clip ? "CLIP" : "AltCLIP",
           S, S, vis->vision.cfg.patch_size, n, bench_rounds(), bench_rounds() > 1 ? "s" : "");
    printf("%-24s %10s %10s %7s %10s %12s %7s %10s\n", "", "mrec /s", "peer /s", "ratio", "mrec bf16", "peer bf16 /s", "ratio",
           "bf16/fp32");
    for (int k = 0; k < nb; k++)
        for (int m = 0; m < 2; m++) {
            char label[64];
            double p32 = B.peer[0][k][m], p16 = B.peer[1][k][m], *ours = B.ours[k], *half = B.half[k];
            snprintf(label, sizeof label, "%s batch %d", m ? "text embeds" : "image embeds", B.batches[k]);
            printf("%-24s %10.2f %10.2f %6.2fx", label, 1 / ours[m], p32 > 0 ? 1 / p32 : 0, p32 > 0 ? p32 / ours[m] : 0);
            if (half[m] > 0)
                printf(" %10.2f %12.2f %6.2fx %9.2fx", 1 / half[m], p16 > 0 ? 1 / p16 : 0, p16 > 0 ? p16 / half[m] : 0, ours[m] / half[m]);
            printf("\n");
        }
    mrec_context_destroy(B.ctx);
    mrec_packs_free(B.vis_packs); /* before the weights it points into */
    mrec_clip_free(vis);
    mrec_text_encoder_free(enc);
    mrec_table_free(&t);
    free(B.x), free(B.out);
    return 0;
}
