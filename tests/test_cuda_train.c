/* test_cuda_train.c: where a training run goes, and what it brings back there.
 *
 * Without a GPU: `mrec train --device` as a user meets it (a model without a
 * GPU path refused by name before the data is read, auto falling back to the
 * CPU with a one-line notice, a bad value named), `--precision` (bf16 on a
 * CPU with AVX-512 BF16, TF32 the GPU's), the Elliot config's `gpu`
 * key, the list of models with a GPU path against the models themselves (each
 * one off the list refuses a GPU context, naming itself), every model with a
 * switch to its op path (NGCF, VBPR, FREEDOM, LightGCN-M, SimGCL, SGL, NGCF-M,
 * BM3, LATTICE, ItemKNN's scoring) trained on the CPU through the path a GPU
 * takes against its host loops, and the ops those models added against their
 * references. With one: those ops on the GPU, and every model
 * with a GPU path trained a few epochs through mrec_train on the CPU and on
 * the GPU from one seed (CLIP-E2E with the tiny CLIP of tests/fixtures/clip,
 * one block of each tower trained, on tests/data's photos and texts): epoch
 * losses within 1e-3 relative (fp32 on both
 * sides, summed in other orders, over a few dozen Adam steps) and Recall@20 /
 * nDCG@20 within 0.01 (a ranking may swap near-ties); after one epoch (the
 * same batches, drawn on the host for both) the loss and every parameter
 * within 1e-4; and every one of them
 * twice from one seed, the same bits, on the CPU and on the GPU. The same
 * one-epoch check at the shapes and settings that take the GPU paths' other
 * branches (LATTICE over 300 items, SGL's contrast in chunks and its rw
 * views, NGCF-M's node dropout, a batch whose ids pass one upload slot), and
 * InfoNCE over 8,200 rows (its logits in blocks) against the CPU's, and
 * uploads past one slot against the bytes given. Without a GPU those cases
 * print "skipped". Runs the binary in $MREC_BIN.
 */
#include "harness.h"

#include "../nn/mrec_npy.h"
#include "../nn/mrec_safetensors.h"
#include "../recsys/mrec_registry.h"
#include "../recsys/recsys_internal.h"
#include "../tools/mrec_pipeline.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A setup step a case cannot go on without: recorded as a failure, and the case stops. */
#define T_REQUIRE_VOID_OK(cond)                                                     \
    do {                                                                            \
        if (!(cond)) {                                                              \
            t_check(0, "%s:%d: requirement failed: %s", __FILE__, __LINE__, #cond); \
            return;                                                                 \
        }                                                                           \
    } while (0)

static const char *bin;
static char dir[] = "/tmp/mrec-cuda-train-XXXXXX";

/* Runs `bin args` in dir, stdout and stderr into out. Returns the exit status. */
static int run(const char *args, char *out, size_t cap) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s 2>&1", dir, bin, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int write_file(const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

static int n_train_pairs; /* write_data's training pairs */

/* Elliot's fixed split in dir: 120 users with 8 to 17 items of 90 in bands (users share taste), the last two
 * of each in validation and test. */
static int write_data(void) {
    char path[4096];
    const char *names[3] = {"train.tsv", "val.tsv", "test.tsv"};
    FILE *f[3];
    for (int s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[s]);
        if (!(f[s] = fopen(path, "w"))) return 0;
    }
    uint64_t st = 3;
    for (int u = 0; u < 120; u++) {
        int n = 8 + (int)(t_rand_u64(&st) % 10), items[17], have = 0;
        while (have < n) {
            int it = (int)((u * 3 + t_rand_u64(&st) % 25) % 90), seen = 0;
            for (int q = 0; q < have; q++) seen |= items[q] == it;
            if (!seen) items[have++] = it;
        }
        for (int q = 0; q < n; q++) fprintf(f[q == n - 1 ? 2 : q == n - 2 ? 1 : 0], "u%d\ti%d\t1\n", u, items[q]);
        n_train_pairs += n - 2;
    }
    int ok = 1;
    for (int s = 0; s < 3; s++) ok &= fclose(f[s]) == 0;
    /* features for the multimodal models: visual (90, 12) and textual (90, 7), joined to the items by their ids files */
    static const char *const modality[2] = {"visual", "textual"};
    for (int m = 0; m < 2 && ok; m++) {
        int64_t shape[2] = {90, m ? 7 : 12};
        float x[90 * 12];
        t_fill_uniform(x, shape[0] * shape[1], &st, -1, 1);
        snprintf(path, sizeof path, "%s/%s.npy", dir, modality[m]);
        ok = mrec_npy_write(path, MREC_NPY_F32, 2, shape, x) == MREC_OK;
        snprintf(path, sizeof path, "%s/%s_ids.txt", dir, modality[m]);
        FILE *ids = fopen(path, "w");
        for (int i = 0; ids && i < 90; i++) fprintf(ids, "i%d\n", i);
        ok = ok && ids && fclose(ids) == 0;
    }
    return ok;
}

/* A larger split in dir for the cases that need one (larger_shapes): PREFIX_train.tsv, PREFIX_val.tsv and
 * PREFIX_test.tsv, `users` users with 10 to 19 of `items` items each, the first u % items (so every item is in the
 * training split once there are as many users) and the rest from a band of 40 that moves with the user, the last two
 * in validation and test. With features, PREFIX_visual.npy (items, 12) and PREFIX_textual.npy (items, 7) with their
 * ids files, in groups of ten near-copies (a centre in [-1, 1], each copy within 0.01 of it): an item's ten nearest by
 * cosine are its own group, by a margin (*margin, the least over the items and both modalities) far above rounding,
 * so that a kNN graph made by cuBLAS's products on the GPU keeps the neighbours the CPU's keeps. Returns the training
 * pairs, 0 on failure. */
static int64_t write_wide(const char *prefix, int users, int items, int features, double *margin) {
    char path[4200];
    static const char *const split[3] = {"train", "val", "test"};
    FILE *f[3];
    for (int s = 0; s < 3; s++) {
        snprintf(path, sizeof path, "%s/%s_%s.tsv", dir, prefix, split[s]);
        if (!(f[s] = fopen(path, "w"))) return 0;
    }
    uint64_t st = 17;
    int64_t pairs = 0;
    for (int u = 0; u < users; u++) {
        int n = 10 + (int)(t_rand_u64(&st) % 10), have = 0, picked[19];
        while (have < n) {
            int it = have ? (int)((u * 7 + t_rand_u64(&st) % 40) % (uint64_t)items) : u % items, seen = 0;
            for (int q = 0; q < have; q++) seen |= picked[q] == it;
            if (!seen) picked[have++] = it;
        }
        for (int q = 0; q < n; q++) fprintf(f[q == n - 1 ? 2 : q == n - 2 ? 1 : 0], "u%d\ti%d\t1\n", u, picked[q]);
        pairs += n - 2;
    }
    int ok = 1;
    for (int s = 0; s < 3; s++) ok &= fclose(f[s]) == 0;
    *margin = INFINITY;
    static const char *const modality[2] = {"visual", "textual"};
    for (int m = 0; m < 2 && ok && features; m++) {
        int w = m ? 7 : 12;
        int64_t shape[2] = {items, w};
        float *x = malloc(sizeof(float) * (size_t)items * w), noise[12];
        ok = x != NULL;
        for (int i = 0; ok && i < items; i++) {
            if (i % 10 == 0) t_fill_uniform(x + (size_t)i * w, w, &st, -1, 1);
            else memcpy(x + (size_t)i * w, x + (size_t)(i - i % 10) * w, sizeof(float) * w);
            t_fill_uniform(noise, w, &st, -0.01f, 0.01f);
            for (int c = 0; c < w; c++) x[(size_t)i * w + c] += noise[c];
        }
        for (int i = 0; ok && i < items; i++) { /* the least in-group cosine less the largest out-of-group one */
            double in = INFINITY, out = -INFINITY;
            for (int j = 0; j < items; j++) {
                double d = 0, ni = 0, nj = 0;
                for (int c = 0; c < w; c++)
                    d += (double)x[(size_t)i * w + c] * x[(size_t)j * w + c], ni += (double)x[(size_t)i * w + c] * x[(size_t)i * w + c],
                        nj += (double)x[(size_t)j * w + c] * x[(size_t)j * w + c];
                double cs = d / sqrt(ni * nj);
                if (j / 10 == i / 10) in = fmin(in, cs);
                else out = fmax(out, cs);
            }
            *margin = fmin(*margin, in - out);
        }
        snprintf(path, sizeof path, "%s/%s_%s.npy", dir, prefix, modality[m]);
        ok = ok && mrec_npy_write(path, MREC_NPY_F32, 2, shape, x) == MREC_OK;
        free(x);
        snprintf(path, sizeof path, "%s/%s_%s_ids.txt", dir, prefix, modality[m]);
        FILE *ids = ok ? fopen(path, "w") : NULL;
        for (int i = 0; ids && i < items; i++) fprintf(ids, "i%d\n", i);
        ok = ok && ids && fclose(ids) == 0;
    }
    return ok ? pairs : 0;
}

/* CLIP-E2E's inputs in dir: clip/ (the tiny random CLIP of tests/fixtures/clip with the CLIP tokenizer) and
 * clip_items.tsv, the 90 items' texts and photos (tests/data's, in turn; each text ends with its item's id so no
 * two are the same). 0 when tests/data is not there. */
static int write_clip_items(void) {
    const char *tokfile = "tests/data/tokenizers/clip/clip-vit-base-patch32.tokenizer.json";
    static const char *const photo[] = {"pillow/flower.jpg", "pillow/pil_sample_rgb.jpg", "pillow/hopper.jpg", "pillow/hopper.png",
                                        "pillow/hopper_gray.jpg", "pillow/iptc.jpg", "libjpeg-turbo/testorig.jpg",
                                        "libjpeg-turbo/testimgint.jpg"};
    char cwd[2048], cmd[8192], path[4200], line[1024], text[48][1024];
    if (access(tokfile, R_OK) != 0 || access("tests/data/images/odd/pillow/flower.jpg", R_OK) != 0 || !getcwd(cwd, sizeof cwd)) return 0;
    snprintf(cmd, sizeof cmd, "mkdir -p %s/clip && for f in config.json model.safetensors preprocessor_config.json; do "
             "ln -sf %s/tests/fixtures/clip/$f %s/clip/$f; done && ln -sf %s/%s %s/clip/tokenizer.json", dir, cwd, dir, cwd, tokfile, dir);
    if (system(cmd) != 0) return 0;
    FILE *tx = fopen("tests/data/texts/items.txt", "r");
    int nt = 0;
    while (tx && nt < 48 && fgets(line, sizeof line, tx)) line[strcspn(line, "\n")] = 0, snprintf(text[nt++], sizeof text[0], "%s", line);
    if (tx) fclose(tx);
    snprintf(path, sizeof path, "%s/clip_items.tsv", dir);
    FILE *f = nt ? fopen(path, "w") : NULL;
    if (!f) return 0;
    fprintf(f, "id\ttext\timage\n");
    for (int i = 0; i < 90; i++)
        fprintf(f, "i%d\t%.900s i%d\t%s/tests/data/images/odd/%s\n", i, text[i % nt], i, cwd, photo[i % (int)(sizeof photo / sizeof photo[0])]);
    return fclose(f) == 0;
}

/* Whether this process can open a GPU context (a CUDA build on a machine with a GPU). */
static int have_gpu(char *why, size_t cap) {
    mrec_context *ctx = NULL;
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CUDA, o.n_threads = 1;
    mrec_status st = mrec_context_create(&ctx, &o);
    snprintf(why, cap, "%s", st ? mrec_error_detail() : "");
    mrec_context_destroy(ctx);
    mrec_clear_error();
    return st == MREC_OK;
}

#define DATA "--data train.tsv,val.tsv,test.tsv --format tsv --k 10,20 --epochs 2 --threads 1"

static void device_flag(int gpu) {
    char out[65536]; /* mrec train --help runs past 16 KB */
    /* --device cuda: the GPU is opened before the data is read, so without one the run stops there, saying why, and
     * writes nothing (here the data could not be read) */
    T_REQUIRE_VOID_OK(write_file("broken.tsv", "u1\ti1\tnot-a-rating\n"));
    int rc = run("train --data broken.tsv --format tsv --model mostpop --device cuda --out o1", out, sizeof out);
    char path[4200];
    snprintf(path, sizeof path, "%s/o1", dir);
    if (gpu)
        t_check(rc != 0 && strstr(out, "broken.tsv") && !strstr(out, "no GPU path"),
                "--device cuda --model mostpop on a GPU: the bad data named (exit %d: %.300s)", rc, out);
    else
        t_check(rc == 2 && strstr(out, "device") && !strstr(out, "broken.tsv") && access(path, F_OK) != 0,
                "--device cuda without a GPU: exit 2 saying why before the data is read, no output folder (exit %d: %.300s)", rc, out);

    /* a model with a GPU path: without a GPU, cuda is an error saying why, auto the CPU with a notice */
    rc = run("train " DATA " --model bprmf --device cuda --out o2", out, sizeof out);
    if (gpu)
        t_check(rc == 0, "--device cuda --model bprmf trains on the GPU (exit %d: %.300s)", rc, rc ? out : "");
    else
        t_check(rc == 2 && strstr(out, "device"), "--device cuda --model bprmf without a GPU: exit 2 saying why (exit %d: %.300s)", rc,
                out);
    rc = run("train " DATA " --model bprmf --device auto --out o3", out, sizeof out);
    if (gpu)
        t_check(rc == 0 && strstr(out, "device: cuda") && !strstr(out, "running on the CPU"),
                "--device auto --model bprmf takes the GPU (exit %d: %.300s)", rc, out);
    else
        t_check(rc == 0 && strstr(out, "mrec train: no usable GPU (") && strstr(out, "); running on the CPU\n"),
                "--device auto --model bprmf without a GPU: the CPU, with a notice saying why (exit %d: %.300s)", rc, out);
    /* MostPop on the GPU: the CPU's rankings, so the same metrics to the last digit */
    rc = run("train " DATA " --model mostpop --device auto --out o4", out, sizeof out);
    t_check(rc == 0 && !strstr(out, "no GPU path") && (gpu ? strstr(out, "device: cuda") != NULL : strstr(out, "no usable GPU") != NULL),
            "--device auto --model mostpop: %s (exit %d: %.300s)", gpu ? "the GPU" : "the CPU, with a notice", rc, out);
    char cpu_out[65536];
    int cpu_rc = run("train " DATA " --model mostpop --device cpu --out o4c", cpu_out, sizeof cpu_out);
    const char *a = strstr(out, "test (best epoch"), *b = strstr(cpu_out, "test (best epoch");
    t_check(rc == 0 && cpu_rc == 0 && a && b && strcspn(a, "\n") == strcspn(b, "\n") && !strncmp(a, b, strcspn(a, "\n")),
            "--model mostpop: --device auto's test metrics are --device cpu's (%.120s | %.120s)", a ? a : "-", b ? b : "-");
    /* the default is the CPU, with nothing said about devices */
    rc = run("train " DATA " --model bprmf --out o5", out, sizeof out);
    t_check(rc == 0 && !strstr(out, "GPU") && !strstr(out, "device"), "no --device: the CPU, silently (exit %d: %.300s)", rc, out);

    rc = run("train " DATA " --model bprmf --device gpu --out o6", out, sizeof out);
    t_check(rc == 1 && strstr(out, "--device") && strstr(out, "'gpu'") && strstr(out, "auto|cpu|cuda"),
            "--device gpu: refused, naming the flag, the value and the choices (exit %d: %.300s)", rc, out);
    rc = run("train " DATA " --model bprmf --device --out o6", out, sizeof out);
    t_check(rc == 1 && strstr(out, "--device"), "--device without a value: refused (exit %d: %.300s)", rc, out);
    rc = run("train --help", out, sizeof out);
    t_check(rc == 0 && strstr(out, "--device auto|cpu|cuda"), "--device in mrec train --help");
}

/* The last epoch's loss in mrec train's output, or NAN. */
static double last_loss(const char *out) {
    double loss = NAN;
    for (const char *p = strstr(out, "loss "); p; p = strstr(p + 1, "loss ")) loss = atof(p + 5);
    return loss;
}

/* mrec train --precision: the GEMMs in bf16 where the CPU has AVX-512 BF16 (else refused, saying why), TF32 on a
 * GPU only (auto falls back to fp32 with a notice), each run close to its fp32 one (NGCF: GEMMs forward and back). */
static void precision_flag(int gpu) {
    char out[65536], ref[65536];
    int rc = run("train " DATA " --model ngcf --out p0", ref, sizeof ref);
    T_REQUIRE_VOID_OK(rc == 0);
    double fp32 = last_loss(ref);
    rc = run("train " DATA " --model ngcf --precision bf16 --out p1", out, sizeof out);
    if (mrec_cpu_has_bf16())
        t_check(rc == 0 && strstr(out, "precision: bf16") && fabs(last_loss(out) - fp32) <= 1e-2 * fabs(fp32),
                "--precision bf16 on a CPU with AVX-512 BF16: trains, says so, loss %.6f against fp32's %.6f (exit %d: %.300s)",
                last_loss(out), fp32, rc, rc ? out : "");
    else
        t_check(rc == 2 && strstr(out, "AVX-512 BF16"), "--precision bf16 on a CPU without AVX-512 BF16: exit 2 saying why "
                "(exit %d: %.300s)", rc, out);
    rc = run("train " DATA " --model ngcf --precision tf32 --out p2", out, sizeof out);
    t_check(rc == 2 && strstr(out, "precision tf32") && strstr(out, "GPU"),
            "--precision tf32 on the CPU: exit 2, the GPU's (exit %d: %.300s)", rc, out);
    rc = run("train " DATA " --model ngcf --precision tf32 --device auto --out p3", out, sizeof out);
    if (gpu)
        t_check(rc == 0 && strstr(out, "precision: tf32"), "--precision tf32 --device auto on a GPU (exit %d: %.300s)", rc, out);
    else
        t_check(rc == 0 && strstr(out, "mrec train: precision tf32: TF32 is the GPU's; computing in fp32\n") &&
                    fabs(last_loss(out) - fp32) <= 1e-6 * fabs(fp32),
                "--precision tf32 --device auto without a GPU: fp32 on the CPU, with a notice (exit %d: %.300s)", rc, out);
    if (gpu) {
        rc = run("train " DATA " --model ngcf --device cuda --out p4", ref, sizeof ref);
        double gpu32 = last_loss(ref);
        rc |= run("train " DATA " --model ngcf --device cuda --precision bf16 --out p5", out, sizeof out);
        t_check(rc == 0 && strstr(out, "precision: bf16") && fabs(last_loss(out) - gpu32) <= 1e-2 * fabs(gpu32),
                "--device cuda --precision bf16: loss %.6f against the GPU's fp32 %.6f (exit %d: %.300s)", last_loss(out), gpu32, rc,
                rc ? out : "");
    }
    rc = run("train " DATA " --model ngcf --precision fp16 --out p6", out, sizeof out);
    t_check(rc == 1 && strstr(out, "--precision") && strstr(out, "fp32|tf32|bf16"),
            "--precision fp16: refused, naming the flag and the choices (exit %d: %.300s)", rc, out);
    rc = run("train --help", out, sizeof out);
    t_check(rc == 0 && strstr(out, "--precision fp32|tf32|bf16"), "--precision in mrec train --help");
}

/* Elliot's `gpu`: -1 the CPU; a GPU index takes that GPU where it can, the CPU with a notice otherwise. */
static void elliot_gpu(int gpu) {
    char out[16384], cfg[2048];
    const char *fmt = "experiment:\n"
                      "  dataset: tiny\n"
                      "  data_config: {strategy: fixed, train_path: train.tsv, validation_path: val.tsv, test_path: test.tsv}\n"
                      "  top_k: 10\n"
                      "  evaluation: {cutoffs: [10], simple_metrics: [Recall]}\n"
                      "  gpu: %s\n"
                      "  models:\n"
                      "    MostPop: {meta: {save_recs: False}}\n"
                      "    external.BPRMF: {meta: {validation_rate: 1}, lr: 0.01, epochs: 2, factors: 8, batch_size: 64, seed: 1}\n";
    static const char *values[] = {"-1", "0", "-2", "zero"};
    for (int v = 0; v < 4; v++) {
        snprintf(cfg, sizeof cfg, fmt, values[v]);
        T_REQUIRE_VOID_OK(write_file("elliot.yml", cfg));
        char args[256];
        snprintf(args, sizeof args, "train elliot.yml --out res%d --threads 1", v);
        int rc = run(args, out, sizeof out);
        if (v == 0)
            t_check(rc == 0 && !strstr(out, "GPU"), "Elliot gpu: -1 runs on the CPU, silently (exit %d: %.300s)", rc, out);
        else if (v == 1)
            t_check(rc == 0 && !strstr(out, "no GPU path") &&
                        (gpu ? strstr(out, "device: cuda (GPU 0)") != NULL : strstr(out, "no usable GPU") != NULL),
                    "Elliot gpu: 0: MostPop and BPRMF on GPU 0 where there is one, the CPU with a notice otherwise (exit %d: %.400s)",
                    rc, out);
        else
            t_check(rc != 0 && strstr(out, "elliot.yml") && strstr(out, "gpu"), "Elliot gpu: %s refused, naming the key (exit %d: %.300s)",
                    values[v], rc, out);
    }
    /* the command line over the key: --device cpu silences gpu: 0, --device cuda wants a GPU for both models,
     * --precision reaches each model's run (tf32 on a CPU is refused, naming it) */
    snprintf(cfg, sizeof cfg, fmt, "0");
    T_REQUIRE_VOID_OK(write_file("elliot.yml", cfg));
    int rc = run("train elliot.yml --out res4 --threads 1 --device cpu", out, sizeof out);
    t_check(rc == 0 && !strstr(out, "GPU"), "Elliot gpu: 0 with --device cpu: the CPU, silently (exit %d: %.300s)", rc, out);
    rc = run("train elliot.yml --out res5 --threads 1 --device cuda", out, sizeof out);
    if (gpu)
        t_check(rc == 0 && strstr(out, "device: cuda (GPU 0)"), "Elliot config with --device cuda: both models on the GPU (exit %d: %.300s)",
                rc, out);
    else
        t_check(rc != 0 && strstr(out, "device"), "Elliot config with --device cuda without a GPU: refused, saying why (exit %d: %.300s)",
                rc, out);
    rc = run("train elliot.yml --out res6 --threads 1 --device cpu --precision tf32", out, sizeof out);
    t_check(rc != 0 && strstr(out, "tf32"), "Elliot config with --device cpu --precision tf32: refused, naming it (exit %d: %.300s)", rc, out);
    rc = run("train elliot.yml --out res7 --threads 1 --precision fp16", out, sizeof out);
    t_check(rc != 0 && strstr(out, "--precision") && strstr(out, "fp32|tf32|bf16"),
            "Elliot config with --precision fp16: refused, naming the choices (exit %d: %.300s)", rc, out);
    /* mrec's own key, precision: read (tf32 on the CPU refused, naming it), the command line over it, a bad value named
     * with its file and line */
    static const char *keyed[] = {"-1\n  precision: tf32", "-1\n  precision: fp16"};
    for (int k = 0; k < 2; k++) {
        snprintf(cfg, sizeof cfg, fmt, keyed[k]);
        T_REQUIRE_VOID_OK(write_file("elliot.yml", cfg));
        rc = run(k ? "train elliot.yml --out res9 --threads 1" : "train elliot.yml --out res8 --threads 1", out, sizeof out);
        if (k == 0) {
            t_check(rc != 0 && strstr(out, "tf32"), "Elliot config with precision: tf32 and gpu: -1: refused on the CPU, naming it "
                    "(exit %d: %.300s)", rc, out);
            rc = run("train elliot.yml --out res10 --threads 1 --precision fp32", out, sizeof out);
            t_check(rc == 0, "Elliot config with precision: tf32, --precision fp32 over it: runs (exit %d: %.300s)", rc, out);
        } else {
            t_check(rc != 0 && strstr(out, "elliot.yml") && strstr(out, "line 7") && strstr(out, "precision") && strstr(out, "fp16"),
                    "Elliot config with precision: fp16: refused, naming the file, the line and the value (exit %d: %.300s)", rc, out);
        }
    }
}

/* Every model is on the GPU list, by mrec's name and by Elliot's. */
static void list_matches_models(void) {
    for (int i = 0; i < mrec_model_count(); i++) {
        const mrec_model_entry *e = mrec_model_at(i);
        t_check(mrec_model_runs_on_gpu(e->name) && mrec_model_runs_on_gpu(e->elliot), "%s (%s) has a GPU path", e->name, e->elliot);
    }
    t_check(!mrec_model_runs_on_gpu(NULL) && !mrec_model_runs_on_gpu("no-such-model"), "no GPU path for a model that is not there");
}

/* MostPop's scores where ctx runs: every row of a block the training counts, bit for bit, for blocks of 1, a prime
 * and a power of two (the rows are copied after themselves, doubling), starting past the first user. */
static void mostpop_scores(mrec_context *ctx, const char *label) {
    enum { U = 80, I = 23 };
    mrec_interactions x = {0};
    int32_t user[U * 3], item[U * 3];
    int8_t split[U * 3];
    float rating[U * 3];
    x.n_users = U, x.n_items = I, x.user = user, x.item = item, x.split = split, x.rating = rating;
    float count[I] = {0};
    for (int u = 0; u < U; u++)
        for (int q = 0; q < 3; q++) {
            int i = (u * u + 5 * q) % I;
            if (q && i == item[x.n - 1]) continue;
            user[x.n] = u, item[x.n] = i, rating[x.n] = 1, split[x.n++] = MREC_SPLIT_TRAIN, count[i] += 1;
        }
    mrec_user_items train;
    T_REQUIRE_VOID_OK(mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN) == MREC_OK);
    const mrec_model_entry *e = mrec_model_find("mostpop");
    mrec_param_values given, p;
    memset(&given, 0, sizeof given);
    mrec_model_inputs in = {.n_users = U, .n_items = I, .train = &train};
    mrec_built_model b;
    memset(&b, 0, sizeof b);
    mrec_arena ar = {0};
    float *dev = NULL, host[U * I];
    if (t_status(mrec_params_resolve(&p, e, &given), MREC_OK, "mostpop's defaults") &&
        t_status(mrec_model_build(&b, e, &in, &p, ctx), MREC_OK, "mostpop on %s", label) &&
        t_status(mrec_arena_reserve(&ar, sizeof host, ctx->device, ctx->cuda), MREC_OK, "%s: a block of scores", label) &&
        (dev = mrec_arena_alloc(&ar, sizeof host)) != NULL) {
        static const int blocks[][2] = {{0, 1}, {3, 37}, {16, 64}};
        for (int k = 0; k < 3; k++) {
            int u0 = blocks[k][0], n = blocks[k][1], bad = -1;
            memset(host, 0xff, sizeof host);
            mrec_status st = b.model.score(b.model.self, u0, n, dev);
            if (!st) st = mrec_copy_to_host(ctx, host, dev, sizeof(float) * (size_t)n * I);
            for (int r = 0; !st && r < n && bad < 0; r++)
                if (memcmp(host + r * I, count, sizeof count)) bad = r;
            t_check(st == MREC_OK && bad < 0, "%s: MostPop's %d rows from user %d are the counts (status %d, row %d differs)", label, n,
                    u0, st, bad);
        }
        t_status(b.model.score(b.model.self, U - 2, 3, dev), MREC_ERR_ARG, "%s: MostPop's users past the last refused", label);
        mrec_clear_error();
    }
    if (ar.base) mrec_arena_release(&ar, ctx->cuda);
    if (b.model.destroy) mrec_built_model_free(&b);
    mrec_user_items_free(&train);
}

/* The op path a GPU context takes, on the CPU: each model with a switch to it (mrec_*_use_ops) trained a few epochs
 * from one seed both ways, with its forward, scoring and evaluation on that path. The same masks and draws, sums in
 * other orders: epoch losses within 1e-4 relative, Recall@10 / nDCG@10 within 0.01. A model whose op path comes in
 * the trainer's two halves (stage, launch: one CUDA graph a batch on a GPU) is trained a third time through step,
 * and the two give the same bits. */
typedef mrec_status (*use_ops_fn)(mrec_model *m);
static mrec_status bprmf_ops(mrec_model *m) { return mrec_bprmf_use_ops(m), MREC_OK; }
static mrec_status lightgcn_ops(mrec_model *m) { return mrec_lightgcn_use_ops(m), MREC_OK; }

static void op_path_on_cpu(mrec_context *cpu) {
    enum { U = 60, I = 40, D = 6 };
    /* every batch's launches held to its key's second call, as a GPU replays that one */
    t_status(mrec_graph_check_enable(cpu), MREC_OK, "the replay check on the CPU");
    mrec_interactions x = {0};
    int32_t user[U * 8], item[U * 8];
    int8_t split[U * 8];
    float rating[U * 8];
    x.n_users = U, x.n_items = I, x.user = user, x.item = item, x.split = split, x.rating = rating;
    for (int u = 0; u < U; u++)
        for (int q = 0; q < 8; q++)
            user[x.n] = u, item[x.n] = (u / 3 + 5 * q) % I, rating[x.n] = 1,
            split[x.n++] = q == 7 ? MREC_SPLIT_TEST : q == 6 ? MREC_SPLIT_VALID : MREC_SPLIT_TRAIN;
    mrec_user_items train, valid, test;
    T_REQUIRE_VOID_OK(mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN) == MREC_OK);
    T_REQUIRE_VOID_OK(mrec_user_items_build(&valid, &x, MREC_SPLIT_VALID) == MREC_OK);
    T_REQUIRE_VOID_OK(mrec_user_items_build(&test, &x, MREC_SPLIT_TEST) == MREC_OK);
    float feat_x[2][I * D], item_feat[I * 2 * D];
    uint8_t present[I];
    uint64_t st = 21;
    t_fill_uniform(&feat_x[0][0], 2 * I * D, &st, -1, 1);
    memset(present, 1, sizeof present);
    mrec_features feat[2] = {{"visual", I, D, feat_x[0], present, 0}, {"textual", I, D, feat_x[1], present, 0}};
    for (int i = 0; i < I; i++)
        memcpy(item_feat + i * 2 * D, feat_x[0] + i * D, sizeof(float) * D), memcpy(item_feat + i * 2 * D + D, feat_x[1] + i * D, sizeof(float) * D);
    /* beside its defaults, a parameter a model's default leaves idle (0: none), so its op path runs that part too */
    static float scores[2][U * I];
    static const struct {
        const char *name;
        use_ops_fn use_ops;
        mrec_hp hp;
        double value;
    } models[] = {{"bprmf", bprmf_ops, 0, 0},                  {"lightgcn", lightgcn_ops, 0, 0},
                  {"ngcf", mrec_ngcf_use_ops, 0, 0},           {"vbpr", mrec_vbpr_use_ops, 0, 0},
                  {"freedom", mrec_freedom_use_ops, 0, 0},     {"lightgcnm", mrec_lightgcnm_use_ops, 0, 0},
                  {"simgcl", mrec_simgcl_use_ops, 0, 0},       {"sgl", mrec_sgl_use_ops, 0, 0},
                  {"ngcfm", mrec_ngcfm_use_ops, MREC_HP_NODE_DROPOUT, 0.2}, {"bm3", mrec_bm3_use_ops, 0, 0},
                  {"lattice", mrec_lattice_use_ops, 0, 0},     {"itemknn", mrec_itemknn_use_ops, MREC_HP_NEIGHBOURS, 10},
                  /* one path, the op entries', on every device: run 0 and run 1 are the same, run 2 checks the halves */
                  {"mgcn", NULL, 0, 0},                        {"mmgcn", NULL, 0, 0},
                  {"grcn", NULL, 0, 0},                        {"pgl", NULL, 0, 0},
                  {"smore", NULL, MREC_HP_IMAGE_KNN_K, 10}, /* and the text's (the default 40: all 40 items, a negative sum) */
                  {"lgmrec", NULL, 0, 0},
                  {"mentor", NULL, 0, 0}};
    int k[2] = {5, 10};
    for (size_t w = 0; w < sizeof models / sizeof models[0]; w++) {
        const mrec_model_entry *e = mrec_model_find(models[w].name);
        mrec_param_values given, p;
        memset(&given, 0, sizeof given);
        given.v[MREC_HP_DIM] = (mrec_param_value){.x = {8}, .given = 1};
        if (models[w].hp) given.v[models[w].hp] = (mrec_param_value){.x = {models[w].value}, .given = 1};
        if (models[w].hp == MREC_HP_IMAGE_KNN_K) given.v[MREC_HP_TEXT_KNN_K] = given.v[MREC_HP_IMAGE_KNN_K];
        if (!t_check(e != NULL, "%s in the registry", models[w].name) ||
            !t_status(mrec_params_resolve(&p, e, &given), MREC_OK, "%s: its parameters", e->name))
            continue;
        /* run 2: the op path again, through step where the model comes in two halves (stage, launch), which the
         * trainer queues as one body with Adam's factors read from memory: the same bits either way */
        double loss[3][1] = {{0}}, recall[3] = {0}, ndcg[3] = {0};
        int ok = 1, halves = 0;
        for (int run = 0; run < 2 + halves; run++) {
            int ops = run > 0;
            mrec_model_inputs in = {.n_users = U, .n_items = I, .train = &train, .feat = feat, .n_feat = 2, .item_feat = item_feat,
                                    .feat_dim = 2 * D};
            mrec_built_model b;
            memset(&b, 0, sizeof b);
            if (!t_status(mrec_model_build(&b, e, &in, &p, cpu), MREC_OK, "%s: built", e->name)) {
                ok = 0;
                continue;
            }
            if (ops && models[w].use_ops && !t_status(models[w].use_ops(&b.model), MREC_OK, "%s: its op path", e->name)) ok = 0;
            if (run == 1) halves = b.model.stage != NULL;
            if (run == 2) b.model.stage = NULL, b.model.launch = NULL;
            mrec_fit_options opt = mrec_fit_defaults();
            opt.epochs = 4, opt.batch_size = 64, opt.lr = 0.01f, opt.seed = 5, opt.patience = 100, opt.select_k = 10;
            mrec_fit_result r;
            memset(&r, 0, sizeof r);
            if (ok && t_status(mrec_fit(&r, &b.model, &train, &valid, &test, k, 2, 1, &opt, cpu), MREC_OK, "%s: fit", e->name))
                recall[run] = r.test.value[MREC_METRIC_RECALL][1], ndcg[run] = r.test.value[MREC_METRIC_NDCG][1];
            else
                ok = 0;
            /* the last batch's loss, once more on a fixed batch: the trained weights agree as well as the metrics; a model
             * without training (ItemKNN) its scores of every user, within 1e-6 relative (sums of k floats in another order) */
            static const int32_t bu[4] = {0, 7, 21, 59}, bi[4] = {0, 3, 9, 17}, bj[4] = {1, 2, 30, 39};
            if (ok && b.model.loss_grad) loss[run][0] = b.model.loss_grad(b.model.self, bu, bi, bj, 4);
            else if (ok && (!b.model.prepare || t_status(b.model.prepare(b.model.self), MREC_OK, "%s: prepared", e->name)) &&
                     t_status(b.model.score(b.model.self, 0, U, scores[ops]), MREC_OK, "%s: scores", e->name))
                for (int q = 0; q < U * I; q++) loss[run][0] += scores[ops][q]; /* their sum in the loss's place */
            free(r.topk);
            mrec_built_model_free(&b);
        }
        if (!ok) continue;
        if (halves)
            t_check(loss[2][0] == loss[1][0] && recall[2] == recall[1] && ndcg[2] == ndcg[1],
                    "%s on the CPU: trained through its two halves (stage, launch) as through step, the same bits (loss "
                    "%.10f / %.10f)", e->name, loss[1][0], loss[2][0]);
        if (!loss[0][0] && !loss[1][0]) t_check(0, "%s: scores that are not all 0", e->name);
        if (!strcmp(e->name, "itemknn")) {
            int close = 1;
            for (int q = 0; q < U * I && close; q++) close = fabs(scores[1][q] - scores[0][q]) <= 1e-6 * fabs(scores[0][q]) + 1e-7;
            t_check(close, "itemknn through mrec_knn_scores on the CPU: every user's scores within 1e-6 of the host loop's");
        }
        if (getenv("MREC_TEST_VERBOSE"))
            fprintf(stderr, "  %s on the CPU, host loops / op entries: loss %.10f / %.10f, Recall@10 %.4f / %.4f, nDCG@10 %.4f / %.4f\n",
                    e->name, loss[0][0], loss[1][0], recall[0], recall[1], ndcg[0], ndcg[1]);
        /* 1e-6: the two paths round sums in other orders (a few 1e-8 apart after 4 epochs); a wrong transpose in one
         * term of BM3's regularizer moved it 1e-4 */
        t_check(fabs(loss[1][0] - loss[0][0]) <= 1e-6 * fabs(loss[0][0]) + 1e-8,
                "%s through the op entries on the CPU: after 4 epochs a batch's loss %.7f, %.7f on the host loops", e->name, loss[1][0],
                loss[0][0]);
        t_check(recall[0] > 0 && fabs(recall[1] - recall[0]) <= 0.01 && fabs(ndcg[1] - ndcg[0]) <= 0.01,
                "%s through the op entries on the CPU: Recall@10 %.4f / nDCG@10 %.4f, %.4f / %.4f on the host loops", e->name,
                recall[1], ndcg[1], recall[0], ndcg[0]);
    }
    mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
}

/* ---- NGCF's ops, each entry against its reference: on the CPU context (the _cpu variant, on two threads) bit for
 * bit, since it computes each element or row as the reference does; on the GPU the same for the element-wise ones,
 * and the L2 backward within 1e-6 + 1e-5 relative (its two sums in double, added in another order). ---- */

/* A device (or host, on a CPU context) copy of bytes of host, carved from a; NULL (recorded) on failure. */
static void *place(mrec_context *ctx, mrec_arena *a, const void *host, size_t bytes) {
    void *p = mrec_arena_alloc(a, bytes);
    if (!t_check(p != NULL, "a buffer of %zu bytes", bytes)) return NULL;
    if (host && !t_status(mrec_copy_to_device(ctx, p, host, bytes), MREC_OK, "a copy to the device")) return NULL;
    return p;
}

static int fetch(mrec_context *ctx, float *host, const float *dev, int64_t n) {
    return t_status(mrec_copy_to_host(ctx, host, dev, sizeof(float) * (size_t)n), MREC_OK, "a copy to the host");
}

/* mrec_mix64, as NGCF's host loops draw their dropout */
static float host_uniform(uint64_t key, uint64_t e) {
    return (float)((mrec_mix64(key ^ (e * 0x9E3779B97F4A7C15ull)) >> 40) * (1.0 / 16777216.0));
}

static void ngcf_ops(mrec_context *ctx, const char *where) {
    enum { R = 333, C = 37, W = 3 * C + 5 };
    const int64_t n = (int64_t)R * C;
    mrec_arena a = {0};
    if (!t_status(mrec_arena_reserve(&a, 16 * sizeof(float) * (size_t)R * W + 65536, ctx->device, ctx->cuda), MREC_OK,
                  "%s: buffers", where))
        return;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *dy = malloc(sizeof(float) * n);
    float *wide = malloc(sizeof(float) * R * W), *ref = malloc(sizeof(float) * R * W), *out = malloc(sizeof(float) * R * W);
    int32_t *idx = malloc(sizeof(int32_t) * n);
    uint64_t st = 77;
    t_fill_uniform(x, n, &st, -2, 2), t_fill_uniform(dy, n, &st, -1, 1), t_fill_uniform(wide, (int64_t)R * W, &st, -1, 1);
    for (int r = 0; r < R; r++) /* a zero row and a tiny one: the eps branch */
        if (r == 5 || r == 6)
            for (int c = 0; c < C; c++) x[(size_t)r * C + c] = r == 5 ? 0.0f : 1e-14f;
    mrec_l2_normalize_rows_ref(y, x, 1e-12f, R, C);
    for (int64_t t = 0; t < n; t++) idx[t] = (int32_t)((t * 7919) % n); /* a permutation: n is not a multiple of 7919 */
    float *dx = place(ctx, &a, x, sizeof(float) * n), *dyy = place(ctx, &a, y, sizeof(float) * n);
    float *ddy = place(ctx, &a, dy, sizeof(float) * n), *dwide = place(ctx, &a, wide, sizeof(float) * R * W);
    int32_t *didx = place(ctx, &a, idx, sizeof(int32_t) * n);
    float *dout = place(ctx, &a, NULL, sizeof(float) * R * W);
    if (!dx || !dyy || !ddy || !dwide || !didx || !dout) goto done;

    /* hashed dropout: values, the mask (x NULL), renumbered by idx, and p = 0 (a copy) */
    static const float ps[3] = {0.0f, 0.1f, 0.6f};
    for (int k = 0; k < 3; k++)
        for (int form = 0; form < 3; form++) {
            const float *xs = form == 1 ? NULL : x;
            const int32_t *is = form == 2 ? idx : NULL;
            uint64_t key = 0x1234567890ABCDEFull ^ (uint64_t)k;
            mrec_hash_dropout_ref(ref, xs, is, n, ps[k], key);
            if (!t_status(mrec_hash_dropout(ctx, dout, form == 1 ? NULL : dx, form == 2 ? didx : NULL, n, ps[k], key), MREC_OK,
                          "%s: hash dropout", where) ||
                !fetch(ctx, out, dout, n))
                continue;
            t_allclose(where, ref, out, n, 0, 0);
            /* the key read from the context's memory (a replayed graph's form): the same bits */
            uint64_t *dkey = place(ctx, &a, &key, sizeof key);
            if (dkey && t_status(mrec_hash_dropout_at(ctx, dout, form == 1 ? NULL : dx, form == 2 ? didx : NULL, n, ps[k], dkey), MREC_OK,
                                 "%s: hash dropout, its key in memory", where) &&
                fetch(ctx, out, dout, n))
                t_check(!memcmp(ref, out, sizeof(float) * (size_t)n), "%s: hash dropout p=%g form %d with its key in memory: the bits of "
                        "the key as a value", where, ps[k], form);
            int agree = 1, dropped = 0;
            for (int64_t t = 0; t < n && agree; t++) {
                int drop = host_uniform(key, is ? (uint64_t)is[t] : (uint64_t)t) < ps[k];
                dropped += drop, agree = drop ? ref[t] == 0.0f : ref[t] == (xs ? xs[t] / (1.0f - ps[k]) : 1.0f / (1.0f - ps[k]));
            }
            t_check(agree && (ps[k] == 0 ? dropped == 0 : fabs(dropped - ps[k] * n) < 5 * sqrt(n * ps[k] * (1 - ps[k]))),
                    "%s: hash dropout p=%g form %d drops as the host's mrec_mix64 stream does (%d of %lld)", where, ps[k], form, dropped,
                    (long long)n);
        }
    /* p outside [0, 1) is refused */
    t_status(mrec_hash_dropout(ctx, dout, dx, NULL, n, 1.0f, 1), MREC_ERR_ARG, "%s: hash dropout with p = 1 refused", where);

    /* LeakyReLU's backward, zero inputs included */
    x[3] = 0.0f;
    if (mrec_copy_to_device(ctx, dx, x, sizeof(float) * n) == MREC_OK) {
        mrec_leaky_relu_back_ref(ref, dy, x, 0.2f, n);
        if (t_status(mrec_leaky_relu_back(ctx, dout, ddy, dx, 0.2f, n), MREC_OK, "%s: leaky relu backward", where) && fetch(ctx, out, dout, n))
            t_allclose(where, ref, out, n, 0, 0);
    }

    /* NGCF's fused layer output and its backward: the references against the ops they replace, run one after
     * another here, and the entries against the references, bit for bit on both devices (zeros included) */
    {
        const float slope = 0.2f;
        float *z2 = wide, *mask = malloc(sizeof(float) * n), *e = malloc(sizeof(float) * n), *t1 = malloc(sizeof(float) * n);
        float *t2 = malloc(sizeof(float) * n), *dz1 = malloc(sizeof(float) * n), *dz2 = malloc(sizeof(float) * n);
        float *d_e = place(ctx, &a, NULL, sizeof(float) * n), *d_mask = place(ctx, &a, NULL, sizeof(float) * n);
        float *d_z2 = place(ctx, &a, z2, sizeof(float) * n), *d_dz2 = place(ctx, &a, NULL, sizeof(float) * n);
        for (int k = 0; k < 2 && d_e && d_mask && d_z2 && d_dz2; k++) {
            uint64_t key = 0xABCDEFull + (uint64_t)k;
            const float p = k ? 0.1f : 0.0f; /* 0: the mask all ones */
            mrec_hash_dropout_ref(mask, NULL, NULL, n, p, key);
            mrec_activation_ref(t1, x, MREC_ACT_LEAKY_RELU, slope, n);
            mrec_activation_ref(t2, z2, MREC_ACT_LEAKY_RELU, slope, n);
            for (int64_t t = 0; t < n; t++) t1[t] = t1[t] + t2[t], t1[t] = t1[t] * mask[t];
            mrec_ngcf_combine_ref(e, ref, x, z2, slope, p, key, n);
            t_check(!memcmp(e, t1, sizeof(float) * n) && !memcmp(ref, mask, sizeof(float) * n),
                    "ngcf combine reference: the bits of a dropout, two LeakyReLUs, an add and a multiply (p %g)", p);
            if (t_status(mrec_ngcf_combine(ctx, d_e, d_mask, dx, d_z2, slope, p, key, n), MREC_OK, "%s: ngcf combine",
                         where) &&
                fetch(ctx, out, d_e, n)) {
                t_allclose(where, e, out, n, 0, 0);
                if (fetch(ctx, out, d_mask, n)) t_allclose(where, mask, out, n, 0, 0);
            }
            uint64_t *dkey = place(ctx, &a, &key, sizeof key);
            if (dkey && t_status(mrec_ngcf_combine_at(ctx, d_e, d_mask, dx, d_z2, slope, p, dkey, n), MREC_OK,
                                 "%s: ngcf combine, its key in memory", where) &&
                fetch(ctx, out, d_e, n))
                t_check(!memcmp(e, out, sizeof(float) * (size_t)n), "%s: ngcf combine (p %g) with its key in memory: the bits of the "
                        "key as a value", where, p);
            /* backward: the mask, then LeakyReLU's backward of each branch */
            for (int64_t t = 0; t < n; t++) t2[t] = dy[t] * mask[t];
            mrec_leaky_relu_back_ref(t1, t2, x, slope, n);
            mrec_leaky_relu_back_ref(e, t2, z2, slope, n);
            mrec_ngcf_combine_back_ref(dz1, dz2, dy, mask, x, z2, slope, n);
            t_check(!memcmp(dz1, t1, sizeof(float) * n) && !memcmp(dz2, e, sizeof(float) * n),
                    "ngcf combine backward reference: the bits of a multiply and two LeakyReLU backwards");
            if (t_status(mrec_ngcf_combine_back(ctx, d_e, d_dz2, ddy, d_mask, dx, d_z2, slope, n), MREC_OK,
                         "%s: ngcf combine backward", where) &&
                fetch(ctx, out, d_e, n)) {
                t_allclose(where, dz1, out, n, 0, 0);
                if (fetch(ctx, out, d_dz2, n)) t_allclose(where, dz2, out, n, 0, 0);
            }
        }
        t_status(mrec_ngcf_combine(ctx, d_e, d_mask, dx, d_z2, slope, 1.0f, 1, n), MREC_ERR_ARG, "%s: ngcf combine with p = 1 refused",
                 where);
        free(mask), free(e), free(t1), free(t2), free(dz1), free(dz2);
    }

    /* row copies into and out of a wider matrix */
    memcpy(ref, wide, sizeof(float) * R * W);
    mrec_copy_rows_ref(ref + C + 2, W, x, C, R, C);
    if (t_status(mrec_copy_rows(ctx, dwide + C + 2, W, dx, C, R, C), MREC_OK, "%s: copy rows into", where) && fetch(ctx, out, dwide, (int64_t)R * W))
        t_allclose(where, ref, out, (int64_t)R * W, 0, 0);
    mrec_copy_rows_ref(ref, C, wide + 1, W, R, C);
    if (t_status(mrec_copy_rows(ctx, dout, C, dwide + 1, W, R, C), MREC_OK, "%s: copy rows out of", where) && fetch(ctx, out, dout, n)) {
        memcpy(ref, wide, sizeof(float) * R * W), mrec_copy_rows_ref(ref + C + 2, W, x, C, R, C); /* wide as the device holds it */
        float *want = malloc(sizeof(float) * n);
        mrec_copy_rows_ref(want, C, ref + 1, W, R, C);
        t_allclose(where, want, out, n, 0, 0);
        free(want);
    }
    t_status(mrec_copy_rows(ctx, dout, C - 1, dx, C, R, C), MREC_ERR_ARG, "%s: copy rows with a stride below the width refused", where);

    /* the L2 backward, overwriting (beta 0, over NaN) and accumulating, against a finite difference of the forward */
    for (int b = 0; b < 2; b++) {
        float beta = b ? 0.5f : 0.0f;
        for (int64_t t = 0; t < n; t++) ref[t] = b ? wide[t] : NAN;
        if (mrec_copy_to_device(ctx, dout, ref, sizeof(float) * n) != MREC_OK) continue;
        mrec_l2_normalize_rows_back_ref(ref, dy, y, x, 1e-12f, beta, R, C);
        if (t_status(mrec_l2_normalize_rows_back(ctx, dout, ddy, dyy, dx, 1e-12f, beta, R, C), MREC_OK, "%s: l2 backward", where) &&
            fetch(ctx, out, dout, n))
            t_allclose(where, ref, out, n, ctx->device == MREC_DEVICE_CPU ? 0 : 1e-6, ctx->device == MREC_DEVICE_CPU ? 0 : 1e-5);
    }
    if (ctx->device == MREC_DEVICE_CPU) { /* the reference itself: d/dx of sum(dy * y) by central differences, row 0 */
        double worst = 0;
        float y0[C];
        mrec_l2_normalize_rows_ref(y0, x, 1e-12f, 1, C);
        for (int c = 0; c < C; c++) {
            float row[C], yp[C], ym[C];
            memcpy(row, x, sizeof row);
            float h = 1e-3f, keep = row[c];
            row[c] = keep + h, mrec_l2_normalize_rows_ref(yp, row, 1e-12f, 1, C);
            row[c] = keep - h, mrec_l2_normalize_rows_ref(ym, row, 1e-12f, 1, C);
            double fd = 0;
            for (int q = 0; q < C; q++) fd += (double)dy[q] * (yp[q] - ym[q]) / (2.0 * h);
            mrec_l2_normalize_rows_back_ref(ref, dy, y0, x, 1e-12f, 0, 1, C);
            worst = fmax(worst, fabs(fd - ref[c]));
        }
        t_check(worst < 2e-3, "l2 backward reference against central differences (worst %.2e)", worst);
    }
done:
    mrec_arena_release(&a, ctx->cuda);
    free(x), free(y), free(dy), free(wide), free(ref), free(out), free(idx);
}

/* ---- SimGCL's, SGL's, LGMRec's and LATTICE's ops: the sign noise, the Gumbel noise, InfoNCE's rows and the
 * inverse square root, each entry against a naive computation here and against its reference. The sign noise and
 * the inverse square root bit for bit on both devices (correctly rounded float operations, no contraction); the
 * Gumbel noise bit for bit on the CPU, within a float ulp on the GPU; InfoNCE's rows on the CPU bit for bit, on the
 * GPU within 1e-6 + 1e-5 relative for the gradient and 1e-9 + 1e-6 relative for the loss (expf within 2 ulp there,
 * the row sums in double in another order). ---- */

static void contrast_ops(mrec_context *ctx, const char *where) {
    enum { R = 333, C = 37, K = 41 }; /* odd shapes: no multiple of a warp or a block; K > C */
    const int64_t n = (int64_t)R * C;
    int gpu = ctx->device != MREC_DEVICE_CPU;
    mrec_arena a = {0};
    if (!t_status(mrec_arena_reserve(&a, 8 * sizeof(float) * (size_t)n + 65536, ctx->device, ctx->cuda), MREC_OK, "%s: buffers",
                  where))
        return;
    float *x = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);
    float *out = malloc(sizeof(float) * n), *naive = malloc(sizeof(float) * n);
    double *lref = malloc(sizeof(double) * K), *lout = malloc(sizeof(double) * K); /* K > C rows at most */
    int32_t target[K];
    uint64_t st = 91;
    t_fill_uniform(x, n, &st, -1, 1), t_fill_uniform(u, n, &st, 0, 1);
    x[4] = 0.0f;                                   /* sign(0) = 0: no noise there */
    for (int c = 0; c < C; c++) u[2 * C + c] = 0;  /* a row of zero draws: the norm's floor */
    float *dx = place(ctx, &a, x, sizeof(float) * n), *du = place(ctx, &a, u, sizeof(float) * n);
    float *dout = place(ctx, &a, NULL, sizeof(float) * n);
    double *dloss = place(ctx, &a, NULL, sizeof(double) * K);
    int32_t *dtarget = place(ctx, &a, NULL, sizeof(int32_t) * K);
    if (!dx || !du || !dout || !dloss || !dtarget) goto done;

    /* the sign noise: given draws and the hash stream at an offset, against a naive loop over the formula */
    for (int form = 0; form < 2; form++) {
        const float eps = 0.1f;
        uint64_t key = 0xC0FFEE ^ (uint64_t)form, off = form ? 12345 : 0;
        for (int r = 0; r < R; r++) {
            float s = 0, v[C];
            for (int c = 0; c < C; c++) {
                v[c] = form ? host_uniform(key, off + (uint64_t)r * C + c) : u[r * C + c];
                s += v[c] * v[c];
            }
            float scale = eps / fmaxf(sqrtf(s), 1e-12f);
            for (int c = 0; c < C; c++) {
                float xv = x[r * C + c];
                naive[r * C + c] = xv + (xv > 0 ? 1.0f : xv < 0 ? -1.0f : 0.0f) * (v[c] * scale);
            }
        }
        memcpy(ref, x, sizeof(float) * n);
        mrec_sign_noise_ref(ref, form ? NULL : u, eps, key, off, R, C);
        t_allclose(where, naive, ref, n, 0, 0);
        if (mrec_copy_to_device(ctx, dout, x, sizeof(float) * n) != MREC_OK) continue;
        if (t_status(mrec_sign_noise(ctx, dout, form ? NULL : du, eps, key, off, R, C), MREC_OK, "%s: sign noise", where) &&
            fetch(ctx, out, dout, n))
            t_allclose(where, ref, out, n, 0, 0);
        /* the key read from the context's memory (a replayed graph's form): the same bits */
        uint64_t *dkey = place(ctx, &a, &key, sizeof key);
        if (dkey && mrec_copy_to_device(ctx, dout, x, sizeof(float) * n) == MREC_OK &&
            t_status(mrec_sign_noise_at(ctx, dout, form ? NULL : du, eps, dkey, off, R, C), MREC_OK, "%s: sign noise, its key in memory", where) &&
            fetch(ctx, out, dout, n))
            t_check(!memcmp(ref, out, sizeof(float) * (size_t)n), "%s: sign noise (form %d) with its key in memory: the bits of the key "
                    "as a value", where, form);
        t_check(ref[4] == 0.0f && (form || !memcmp(ref + 2 * C, x + 2 * C, sizeof(float) * C)),
                "%s: sign noise leaves a zero entry at zero%s", where, form ? "" : " and a row of zero draws unchanged");
    }
    t_status(mrec_sign_noise(ctx, dout, NULL, 0.1f, 1, 0, -1, C), MREC_ERR_ARG, "%s: sign noise of -1 rows refused", where);

    /* LGMRec's Gumbel noise: the reference against the formula here, the entry against the reference (the CPU's
     * threads bit for bit; a GPU's double log within an ulp of the C library's, so within one float ulp) */
    {
        uint64_t key = 0x5EED;
        for (int64_t e = 0; e < n; e++) {
            double v = ((double)(mrec_mix64(key ^ ((uint64_t)e * 0x9E3779B97F4A7C15ull)) >> 40) + 0.5) / 16777216.0;
            naive[e] = (float)-log(-log(v));
        }
        mrec_gumbel_noise_ref(ref, key, n);
        t_allclose(where, naive, ref, n, 0, 0);
        if (t_status(mrec_gumbel_noise(ctx, dout, key, n), MREC_OK, "%s: Gumbel noise", where) && fetch(ctx, out, dout, n)) {
            int64_t same = 0;
            double worst = 0;
            for (int64_t e = 0; e < n; e++) {
                same += out[e] == ref[e];
                worst = fmax(worst, fabs((double)out[e] - ref[e]) / fmax(fabs((double)ref[e]) * FLT_EPSILON, FLT_MIN));
            }
            t_check(gpu ? worst <= 1 : same == n, "%s: Gumbel noise against the reference (%lld of %lld the same, worst %.2f ulp)",
                    where, (long long)same, (long long)n, worst);
        }
        uint64_t *dkey = place(ctx, &a, &key, sizeof key);
        if (dkey && t_status(mrec_gumbel_noise(ctx, dout, key, n), MREC_OK, "%s: Gumbel noise", where) && fetch(ctx, ref, dout, n) &&
            t_status(mrec_gumbel_noise_at(ctx, dout, dkey, n), MREC_OK, "%s: Gumbel noise, its key in memory", where) &&
            fetch(ctx, out, dout, n))
            t_check(!memcmp(ref, out, sizeof(float) * (size_t)n), "%s: Gumbel noise with its key in memory: the bits of the key as a value",
                    where);
        t_status(mrec_gumbel_noise(ctx, dout, key, -1), MREC_ERR_ARG, "%s: Gumbel noise of -1 values refused", where);
    }

    /* InfoNCE's rows: (C, R) scores against targets, and a square (K, K) against its diagonal, written over s */
    for (int form = 0; form < 2; form++) {
        int rows = form ? K : C, cols = form ? K : R;
        int64_t m = (int64_t)rows * cols;
        const float alpha = 0.37f;
        for (int r = 0; r < rows; r++) target[r] = (r * 97 + 5) % cols;
        const int32_t *tg = form ? NULL : target;
        mrec_softmax_xent_rows_ref(ref, lref, x, tg, alpha, rows, cols);
        /* naively, in double: logsumexp - s_t and alpha (softmax - onehot) */
        double worst_l = 0, worst_g = 0;
        for (int r = 0; r < rows; r++) {
            const float *s = x + (size_t)r * cols;
            double z = 0;
            for (int c = 0; c < cols; c++) z += exp((double)s[c]);
            int t = tg ? tg[r] : r;
            worst_l = fmax(worst_l, fabs(log(z) - s[t] - lref[r]));
            for (int c = 0; c < cols; c++)
                worst_g = fmax(worst_g, fabs(alpha * (exp((double)s[c]) / z - (c == t)) - ref[(size_t)r * cols + c]));
        }
        t_check(worst_l < 1e-6 && worst_g < 1e-7, "softmax cross-entropy reference against a naive double one (%s: loss %.1e, grad %.1e)",
                form ? "diagonal" : "targets", worst_l, worst_g);
        if (mrec_copy_to_device(ctx, dtarget, target, sizeof(int32_t) * rows) != MREC_OK ||
            mrec_copy_to_device(ctx, dout, x, sizeof(float) * m) != MREC_OK)
            continue;
        if (!t_status(mrec_softmax_xent_rows(ctx, dout, dloss, dout, form ? NULL : dtarget, alpha, rows, cols), MREC_OK,
                      "%s: softmax cross-entropy rows", where) ||
            !fetch(ctx, out, dout, m) ||
            !t_status(mrec_copy_to_host(ctx, lout, dloss, sizeof(double) * rows), MREC_OK, "%s: the losses", where))
            continue;
        /* the CPU's AVX-512 rows take libmvec's expf and sum in lanes: a few ulps from the reference, as the GPU's */
        t_allclose(where, ref, out, m, 1e-6, 1e-5);
        double worst = 0;
        for (int r = 0; r < rows; r++) worst = fmax(worst, fabs(lout[r] - lref[r]) / (1e-9 + 1e-6 * fabs(lref[r])));
        t_check(worst <= 1, "%s: softmax cross-entropy losses against the reference (%s; worst %.2f of the bound)", where,
                form ? "diagonal" : "targets", worst);
    }
    t_status(mrec_softmax_xent_rows(ctx, dout, dloss, dx, NULL, 1, K + 1, K), MREC_ERR_ARG,
             "%s: a diagonal target past the columns refused", where);
    if (!gpu) {
        int32_t bad[2] = {0, C};
        t_status(mrec_softmax_xent_rows(ctx, out, lout, x, bad, 1, 2, C), MREC_ERR_ARG, "%s: a target outside the columns refused",
                 where);
    }
    /* Padded (mrec_softmax_xent_rows_at, SimGCL's contrast in a graph): a (K, K) problem whose first LIVE rows and
     * columns are the (LIVE, LIVE) one: its rows the bits of that problem's on the same device, every other entry 0;
     * then the loss term over the live rows (mrec_loss_term_at), and none for a count of 0 */
    {
        enum { LIVE = 29 };
        const float alpha = 0.61f;
        const int32_t live = LIVE, none = 0;
        const double start = 0.25;
        float sub[LIVE * LIVE], want[LIVE * LIVE];
        double lwant[LIVE], got[3];
        for (int r = 0; r < LIVE; r++) memcpy(sub + r * LIVE, x + (size_t)r * K, sizeof(float) * LIVE);
        float *dsub = place(ctx, &a, sub, sizeof sub), *dalpha = place(ctx, &a, &alpha, sizeof alpha);
        int32_t *dlive = place(ctx, &a, &live, sizeof live), *dnone = place(ctx, &a, &none, sizeof none);
        double *dsum[3];
        for (int q = 0; q < 3; q++) dsum[q] = place(ctx, &a, &start, sizeof start);
        if (dsub && dalpha && dlive && dnone && dsum[0] && dsum[1] && dsum[2] &&
            t_status(mrec_softmax_xent_rows(ctx, dsub, dloss, dsub, NULL, alpha, LIVE, LIVE), MREC_OK, "%s: a (%d, %d) InfoNCE", where,
                     LIVE, LIVE) &&
            fetch(ctx, want, dsub, LIVE * LIVE) &&
            t_status(mrec_copy_to_host(ctx, lwant, dloss, sizeof lwant), MREC_OK, "%s: its losses", where) &&
            t_status(mrec_copy_to_device(ctx, dout, x, sizeof(float) * K * K), MREC_OK, "%s: scores up", where) &&
            t_status(mrec_softmax_xent_rows_at(ctx, dout, dloss, dout, dalpha, dlive, K, K), MREC_OK, "%s: InfoNCE padded", where) &&
            fetch(ctx, out, dout, (int64_t)K * K) &&
            t_status(mrec_copy_to_host(ctx, lout, dloss, sizeof(double) * K), MREC_OK, "%s: its losses", where)) {
            int wrong = 0;
            for (int r = 0; r < K; r++) {
                for (int c = 0; c < K; c++) {
                    float w = r < LIVE && c < LIVE ? want[r * LIVE + c] : 0.0f;
                    wrong += memcmp(&w, &out[(size_t)r * K + c], sizeof w) != 0;
                }
                double lw = r < LIVE ? lwant[r] : 0.0;
                wrong += memcmp(&lw, &lout[r], sizeof lw) != 0;
            }
            t_check(wrong == 0, "%s: InfoNCE's rows padded from (%d, %d) to (%d, %d), the count and alpha in memory: the live block's "
                    "bits, zeros elsewhere (%d wrong)", where, LIVE, LIVE, K, K, wrong);
            if (t_status(mrec_loss_term(ctx, dsum[0], dloss, LIVE, 0.7f, LIVE), MREC_OK, "%s: loss term", where) &&
                t_status(mrec_loss_term_at(ctx, dsum[1], dloss, dlive, 0.7f), MREC_OK, "%s: loss term, its count in memory", where) &&
                t_status(mrec_loss_term_at(ctx, dsum[2], dloss, dnone, 0.7f), MREC_OK, "%s: loss term of none", where)) {
                for (int q = 0; q < 3; q++) mrec_copy_to_host(ctx, &got[q], dsum[q], sizeof got[q]);
                t_check(!memcmp(&got[0], &got[1], sizeof got[0]) && got[0] != start && got[2] == start,
                        "%s: a loss term with its count in memory, the bits of the count as a value (%.17g, %.17g); a count of 0 adds "
                        "nothing (%.17g)", where, got[0], got[1], got[2]);
            }
        }
    }
    /* LATTICE's inverse square root: positive, zero and negative entries, in place, against 1 / sqrt in double rounded */
    for (int64_t t = 0; t < n; t++) u[t] = t % 7 == 0 ? 0.0f : t % 11 == 0 ? -u[t] : u[t] * 50.0f;
    mrec_inv_sqrt_ref(ref, u, n);
    int bad = 0;
    for (int64_t t = 0; t < n; t++) {
        double want = u[t] > 0 ? 1.0 / sqrt((double)u[t]) : 0;
        bad += u[t] < 0 ? !isnan(ref[t]) : fabs(ref[t] - want) > 2.5e-7 * want;
    }
    t_check(bad == 0, "inverse square root reference: %d of %lld off 1 / sqrt in double (or not NaN below 0)", bad, (long long)n);
    if (mrec_copy_to_device(ctx, dout, u, sizeof(float) * n) == MREC_OK &&
        t_status(mrec_inv_sqrt(ctx, dout, dout, n), MREC_OK, "%s: inverse square root", where) && fetch(ctx, out, dout, n)) {
        int same = 1;
        for (int64_t t = 0; t < n && same; t++) same = isnan(ref[t]) ? isnan(out[t]) : ref[t] == out[t];
        t_check(same, "%s: inverse square root in place, bit for bit against the reference", where);
    }
done:
    mrec_arena_release(&a, ctx->cuda);
    free(x), free(u), free(ref), free(out), free(naive), free(lref), free(lout);
}

/* ItemKNN's scores: the entry against the reference (a linear scan of each user's items) over odd shapes, users from
 * an offset, neighbour lists with holes (-1), an empty user; bit for bit on both devices (each score sums its k
 * neighbours in order, correctly rounded), and the reference against a dense indicator computed here. */
static void knn_scores_op(mrec_context *ctx, const char *where) {
    enum { USERS = 41, U0 = 3, R = 37, C = 333, K = 7 };
    int64_t row_ptr[USERS + 1];
    int32_t col[USERS * 40], nbr[C * K];
    float sim[C * K], *ref = malloc(sizeof(float) * R * C), *out = malloc(sizeof(float) * R * C);
    static uint8_t dense[R][C];
    uint64_t st = 123;
    row_ptr[0] = 0;
    for (int u = 0; u < USERS; u++) { /* sorted, distinct: every third item from a start; user U0 + 5 has none */
        int n = u == U0 + 5 ? 0 : 1 + (int)(t_rand_u64(&st) % 39), start = (int)(t_rand_u64(&st) % 3);
        for (int q = 0; q < n; q++) col[row_ptr[u] + q] = start + 3 * q * (C / 120);
        row_ptr[u + 1] = row_ptr[u] + n;
    }
    t_fill_uniform(sim, C * K, &st, 0, 1);
    for (int e = 0; e < C * K; e++) nbr[e] = e % 11 == 5 ? -1 : (int)(t_rand_u64(&st) % C);
    memset(dense, 0, sizeof dense);
    for (int r = 0; r < R; r++)
        for (int64_t p = row_ptr[U0 + r]; p < row_ptr[U0 + r + 1]; p++) dense[r][col[p]] = 1;
    mrec_knn_scores_ref(ref, row_ptr, col, nbr, sim, U0, R, C, K);
    double worst = 0;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < C; i++) {
            double s = 0;
            for (int q = 0; q < K; q++) s += nbr[i * K + q] >= 0 && dense[r][nbr[i * K + q]] ? sim[i * K + q] : 0;
            worst = fmax(worst, fabs(s - ref[(size_t)r * C + i]));
        }
    t_check(worst < 1e-5, "knn scores reference against a dense indicator (worst %.2e)", worst);
    mrec_arena a = {0};
    if (!t_status(mrec_arena_reserve(&a, sizeof(float) * (R * C + 2 * C * K) + sizeof(col) + sizeof(row_ptr) + 4096, ctx->device,
                                     ctx->cuda),
                  MREC_OK, "%s: buffers", where))
        goto done;
    int64_t *drp = place(ctx, &a, row_ptr, sizeof row_ptr);
    int32_t *dcol = place(ctx, &a, col, sizeof col), *dnbr = place(ctx, &a, nbr, sizeof nbr);
    float *dsim = place(ctx, &a, sim, sizeof sim), *dout = place(ctx, &a, NULL, sizeof(float) * R * C);
    if (drp && dcol && dnbr && dsim && dout &&
        t_status(mrec_knn_scores(ctx, dout, drp, dcol, dnbr, dsim, U0, R, C, K), MREC_OK, "%s: knn scores", where) &&
        fetch(ctx, out, dout, (int64_t)R * C))
        t_allclose(where, ref, out, (int64_t)R * C, 0, 0);
    t_status(mrec_knn_scores(ctx, dout, drp, dcol, dnbr, dsim, -1, R, C, K), MREC_ERR_ARG, "%s: knn scores from user -1 refused", where);
    mrec_arena_release(&a, ctx->cuda);
done:
    free(ref), free(out);
}

/* GRCN's segment softmax and its backward over rows of 0 to 70 entries (empty rows, rows past a warp), in place: the
 * references against a naive double computation, the entries against the references, bit for bit on the CPU (the same
 * sums in the same order), on the GPU within 1e-6 + 1e-5 relative (expf within 2 ulp, the row sums in another order). */
static void segment_softmax_op(mrec_context *ctx, const char *where) {
    enum { R = 57 };
    int64_t row_ptr[R + 1];
    uint64_t st = 77;
    row_ptr[0] = 0;
    for (int r = 0; r < R; r++) row_ptr[r + 1] = row_ptr[r] + (r % 9 == 4 ? 0 : r == 10 ? 70 : (int64_t)(t_rand_u64(&st) % 40));
    int64_t n = row_ptr[R];
    int gpu = ctx->device != MREC_DEVICE_CPU;
    float *x = malloc(sizeof(float) * n), *dy = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n);
    float *out = malloc(sizeof(float) * n);
    t_fill_uniform(x, n, &st, -3, 3), t_fill_uniform(dy, n, &st, -1, 1);
    mrec_segment_softmax_ref(y, x, row_ptr, R);
    mrec_segment_softmax_back_ref(dx, dy, y, row_ptr, R);
    double worst_y = 0, worst_dx = 0, worst_sum = 0;
    for (int r = 0; r < R; r++) {
        double top = -INFINITY, z = 0, s = 0, sum = 0;
        for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; p++) top = fmax(top, x[p]);
        for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; p++) z += exp((double)x[p] - top);
        for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; p++) s += exp((double)x[p] - top) / z * dy[p], sum += y[p];
        for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; p++) {
            double yp = exp((double)x[p] - top) / z;
            worst_y = fmax(worst_y, fabs(yp - y[p])), worst_dx = fmax(worst_dx, fabs(yp * (dy[p] - s) - dx[p]));
        }
        if (row_ptr[r + 1] > row_ptr[r]) worst_sum = fmax(worst_sum, fabs(sum - 1));
    }
    t_check(worst_y < 1e-6 && worst_dx < 1e-6 && worst_sum < 1e-5, "segment softmax references against naive double ones (%.1e, %.1e; rows sum to 1 within %.1e)",
            worst_y, worst_dx, worst_sum);
    mrec_arena a = {0};
    if (!t_status(mrec_arena_reserve(&a, 2 * sizeof(float) * (size_t)n + sizeof row_ptr + 4096, ctx->device, ctx->cuda), MREC_OK, "%s: buffers", where))
        goto done;
    int64_t *drp = place(ctx, &a, row_ptr, sizeof row_ptr);
    float *dv = place(ctx, &a, x, sizeof(float) * n), *dg = place(ctx, &a, dy, sizeof(float) * n);
    if (drp && dv && dg && t_status(mrec_segment_softmax(ctx, dv, dv, drp, R), MREC_OK, "%s: segment softmax", where) && fetch(ctx, out, dv, n))
        t_allclose(where, y, out, n, gpu ? 1e-6 : 0, gpu ? 1e-5 : 0);
    /* the backward from the reference's y, in place over dy */
    if (drp && dv && dg && mrec_copy_to_device(ctx, dv, y, sizeof(float) * n) == MREC_OK &&
        t_status(mrec_segment_softmax_back(ctx, dg, dg, dv, drp, R), MREC_OK, "%s: segment softmax backward", where) && fetch(ctx, out, dg, n))
        t_allclose(where, dx, out, n, gpu ? 1e-6 : 0, gpu ? 1e-5 : 0);
    t_status(mrec_segment_softmax(ctx, dv, dv, drp, -1), MREC_ERR_ARG, "%s: segment softmax over -1 rows refused", where);
    mrec_arena_release(&a, ctx->cuda);
done:
    free(x), free(dy), free(y), free(dx), free(out);
}

/* InfoNCE at the size MENTOR's, MGCN's, SMORE's and PGL's contrasts reach on real data: mrec_info_nce_run over
 * 8,200 rows, past the 8,192 whose (n, n) logits fill one block on a GPU (block_of: BLOCK_FLOATS_GPU / n rows), so
 * the GPU's rows go in two blocks (8,184 and 16): the second one's rows reach mrec_softmax_xent_rows at an offset into
 * the targets, and the columns' gradient adds over the blocks (the second product's beta 1). Against the CPU's run
 * on the same inputs (its own blocks of 2,046 rows): each row's loss within 1e-9 + 1e-5 relative and their total within
 * 1e-6 relative (a row's logits, up to 5 over the temperature, are 10-long dot products rounded in other orders, expf
 * within 2 ulp on the GPU, the row's sum in double in another order: the CPU's scalar code against its AVX-512 code
 * parts rows of about 6 by 2.5e-7 relative and their total by 4e-10), the two gradients within 1e-5 of their
 * tensor's largest entry (sums of 8,200 products in fp32 in other orders; 1.4e-7 between the CPU's two). A block
 * that went wrong moves its rows' losses and gradients, and every column's, by their own size. */
static void info_nce_blocks(mrec_context *cpu, mrec_context *gpu) {
    enum { N = 8200, W = 10 };
    const float temp = 0.2f, alpha = 0.3f;
    const int64_t nw = (int64_t)N * W;
    float *a = malloc(sizeof(float) * nw), *b = malloc(sizeof(float) * nw), *grad[2][2];
    double loss[2] = {0, 0}, *rows[2];
    uint64_t st = 55;
    t_fill_uniform(a, nw, &st, -1, 1), t_fill_uniform(b, nw, &st, -0.5f, 0.5f);
    for (int64_t t = 0; t < nw; t++) b[t] += a[t]; /* each row's positive near it, as two views of one node */
    int ok = 1;
    for (int dev = 0; dev < 2; dev++) {
        mrec_context *ctx = dev ? gpu : cpu;
        const char *where = dev ? "cuda" : "cpu";
        grad[dev][0] = malloc(sizeof(float) * nw), grad[dev][1] = malloc(sizeof(float) * nw), rows[dev] = malloc(sizeof(double) * N);
        mrec_arena ar = {0};
        if (!t_status(mrec_arena_reserve(&ar, 4 * sizeof(float) * (size_t)nw + 65536, ctx->device, ctx->cuda), MREC_OK,
                      "%s: InfoNCE's buffers", where)) {
            ok = 0;
            continue;
        }
        const double zero = 0;
        float *da = place(ctx, &ar, a, sizeof(float) * nw), *db = place(ctx, &ar, b, sizeof(float) * nw);
        float *dga = place(ctx, &ar, NULL, sizeof(float) * nw), *dgb = place(ctx, &ar, NULL, sizeof(float) * nw);
        double *dloss = place(ctx, &ar, &zero, sizeof zero);
        mrec_info_nce c;
        memset(&c, 0, sizeof c);
        ok &= da && db && dga && dgb && dloss &&
              t_status(mrec_info_nce_run(&c, ctx, dloss, dga, dgb, da, db, N, W, temp, alpha, 0), MREC_OK, "%s: InfoNCE over %d rows",
                       where, N) &&
              fetch(ctx, grad[dev][0], dga, nw) && fetch(ctx, grad[dev][1], dgb, nw) &&
              t_status(mrec_copy_to_host(ctx, &loss[dev], dloss, sizeof loss[dev]), MREC_OK, "%s: InfoNCE's loss", where) &&
              t_status(mrec_copy_to_host(ctx, rows[dev], c.closs, sizeof(double) * N), MREC_OK, "%s: InfoNCE's rows' losses", where);
        if (ok && dev) /* the room its logits took: the rows of one block times n, under n x n */
            ok = t_check(c.cap_sim < (int64_t)N * N, "cuda: InfoNCE over %d rows in more than one block of logits (%lld floats of "
                         "%lld)", N, (long long)c.cap_sim, (long long)N * N);
        mrec_info_nce_free(&c);
        mrec_arena_release(&ar, ctx->cuda);
    }
    if (ok) {
        double worst_row = 0, worst_g[2] = {0, 0};
        for (int r = 0; r < N; r++) worst_row = fmax(worst_row, fabs(rows[1][r] - rows[0][r]) / (1e-9 + 1e-5 * fabs(rows[0][r])));
        for (int k = 0; k < 2; k++) {
            double scale = 0, gap = 0;
            for (int64_t t = 0; t < nw; t++)
                scale = fmax(scale, fabs(grad[0][k][t])), gap = fmax(gap, fabs((double)grad[1][k][t] - grad[0][k][t]));
            worst_g[k] = gap / fmax(scale, FLT_MIN);
        }
        double rel = fabs(loss[1] - loss[0]) / fmax(fabs(loss[0]), 1e-30);
        t_check(worst_row <= 1 && rel <= 1e-6 && worst_g[0] <= 1e-5 && worst_g[1] <= 1e-5 && loss[0] > 0,
                "cuda: InfoNCE over %d rows in blocks against the CPU's: each row's loss within 1e-9 + 1e-5 relative (worst %.2f of "
                "the bound), the loss %.9g within 1e-6 relative (%.2e), the gradients within 1e-5 of their largest entry (%.2e, %.2e)",
                N, worst_row, loss[1], rel, worst_g[0], worst_g[1]);
    }
    for (int dev = 0; dev < 2; dev++) free(grad[dev][0]), free(grad[dev][1]), free(rows[dev]);
    free(a), free(b);
}

/* mrec_copy_to_device_staged past one slot (MREC_STAGE_BYTES): from pageable memory one plain copy (the branch a
 * model's batch ids take past 21,845 triples: larger_shapes' BPRMF case reaches it inside training), from pinned
 * memory (mrec_host_alloc's, a pipeline's buffer) a slot at a time through the ring, here nine slots and a part so
 * that the ring of eight comes round and waits on its first slot's copy. Each source overwritten as soon as the call
 * returns, as its owner may: the device holds the bytes given, bit for bit (a copy). */
static void staged_upload(mrec_context *ctx) {
    const size_t bytes = 9 * (size_t)MREC_STAGE_BYTES + 4000;
    unsigned char *want = malloc(bytes), *back = malloc(bytes), *src[2] = {NULL, malloc(bytes)};
    mrec_arena ar = {0};
    unsigned char *dev = NULL;
    if (t_status(mrec_host_alloc(ctx, (void **)&src[0], bytes), MREC_OK, "cuda: pinned host memory") &&
        t_status(mrec_arena_reserve(&ar, bytes + 4096, ctx->device, ctx->cuda), MREC_OK, "cuda: a device buffer"))
        dev = mrec_arena_alloc(&ar, bytes);
    uint64_t st = 99;
    for (int form = 0; form < 2 && dev && src[1] && want && back; form++) {
        for (size_t t = 0; t < bytes; t++) want[t] = (unsigned char)(t_rand_u64(&st) >> 56);
        memcpy(src[form], want, bytes);
        mrec_status s = mrec_copy_to_device_staged(ctx, dev, src[form], bytes);
        memset(src[form], 0x5A, bytes); /* the source reused at once */
        if (t_status(s, MREC_OK, "cuda: a staged upload of %zu bytes from %s memory", bytes, form ? "pageable" : "pinned") &&
            t_status(mrec_copy_to_host(ctx, back, dev, bytes), MREC_OK, "cuda: the upload back"))
            t_check(!memcmp(want, back, bytes), "cuda: a staged upload of %zu bytes (past one slot of %u) from %s memory, its source "
                    "overwritten on return: the bytes given", bytes, MREC_STAGE_BYTES, form ? "pageable" : "pinned");
    }
    if (ar.base) mrec_arena_release(&ar, ctx->cuda);
    mrec_host_free(ctx, src[0]);
    free(src[1]), free(want), free(back);
}

/* The transposed copy the GPU's A^T products use (NGCF-M, LATTICE): a product with it equals the CPU's transposed
 * product with the graph itself, and each entry's number points back at the same entry. */
static void transposed_graph(mrec_context *cpu) {
    enum { N = 53, D = 5 };
    mrec_graph g = {.n_nodes = N};
    int64_t row_ptr[N + 1];
    int32_t col[N * 6];
    float val[N * 6], x[N * D], want[N * D], got[N * D];
    uint64_t st = 31;
    row_ptr[0] = 0;
    for (int r = 0; r < N; r++) { /* 0 to 5 distinct columns a row, increasing: row 7 empty */
        int n = r == 7 ? 0 : (int)(t_rand_u64(&st) % 6), c = (int)(t_rand_u64(&st) % 5);
        for (int q = 0; q < n; q++) col[row_ptr[r] + q] = c, val[row_ptr[r] + q] = (float)(q + 1) / (r + 2), c += 1 + (int)(t_rand_u64(&st) % 9);
        for (int q = 0; q < n; q++) col[row_ptr[r] + q] %= N;
        row_ptr[r + 1] = row_ptr[r] + n;
        for (int q = 1; q < n; q++) /* keep the row sorted after the wrap */
            for (int s = q; s > 0 && col[row_ptr[r] + s - 1] > col[row_ptr[r] + s]; s--) {
                int32_t tc = col[row_ptr[r] + s];
                col[row_ptr[r] + s] = col[row_ptr[r] + s - 1], col[row_ptr[r] + s - 1] = tc;
            }
    }
    g.row_ptr = row_ptr, g.col = col, g.val = val;
    int64_t nnz = row_ptr[N], t_ptr[N + 1];
    int32_t t_col[N * 6], t_edge[N * 6];
    float t_val[N * 6];
    mrec_graph_transpose_edges(t_ptr, t_col, t_edge, t_val, &g);
    t_fill_uniform(x, N * D, &st, -1, 1);
    mrec_spmm_t_ref(want, row_ptr, col, val, x, N, N, D);
    mrec_csr t = {.n_rows = N, .n_cols = N, .row_ptr = t_ptr, .col = t_col, .val = t_val, .device = MREC_DEVICE_CPU};
    if (t_status(mrec_spmm(cpu, got, &t, x, D, 0), MREC_OK, "a product with the transposed copy"))
        t_allclose("transposed copy", want, got, N * D, 1e-6, 1e-6);
    int back = t_ptr[N] == nnz;
    for (int r = 0; r < N && back; r++)
        for (int64_t q = t_ptr[r]; q < t_ptr[r + 1] && back; q++) {
            int64_t e = t_edge[q];
            int row_of_e = 0;
            while (row_ptr[row_of_e + 1] <= e) row_of_e++;
            back = col[e] == r && row_of_e == t_col[q] && val[e] == t_val[q] && (q == t_ptr[r] || t_col[q - 1] < t_col[q]);
        }
    t_check(back, "the transposed copy: %lld entries, each pointing back at its entry, columns increasing", (long long)nnz);
}

/* Models whose CPU and GPU runs start together and drift apart, the gap
 * growing epoch by epoch as round-off amplified by training does (the ops
 * under them match their references one by one in this file). Measured on
 * an H100: MMGCN's losses equal to print for four epochs, then 4e-4 and
 * 2.5e-3 apart. */
static int drifts(const char *model) { return !strcmp(model, "mmgcn"); }

/* The settings a CPU-against-GPU comparison runs a model with: GRCN's weights by the modalities' mean, not its
 * default confid, whose maximum over the modalities takes the other one where two tie to rounding, so that
 * Adam then moves those confidences a whole step apart (one ulp of the features, or the CPU's scalar loops
 * against its AVX-512 ones, part the two runs' parameters by a third of their scale after one epoch; by
 * the mean they stay within 4e-5). Confid is held to its own bits on each device (the same seed twice). */
static void comparable(const mrec_model_entry *e, mrec_train_spec *s) {
    if (!strcmp(e->name, "grcn")) s->params.v[MREC_HP_WEIGHT_MODE] = (mrec_param_value){.x = {0}, .given = 1}; /* mean */
}

/* One model trained through mrec_train on the CPU and on GPU 0 from one seed. */
/* CLIP-E2E's part of a spec: the tiny CLIP, one block of each tower trained at a rate that moves it. */
static void tiny_clip(mrec_train_spec *s) {
    static char clip_dir[4200], clip_items[4200];
    snprintf(clip_dir, sizeof clip_dir, "%s/clip", dir), snprintf(clip_items, sizeof clip_items, "%s/clip_items.tsv", dir);
    s->clip = clip_dir, s->clip_items = clip_items, s->clip_id_col = "id", s->clip_text_col = "text", s->clip_image_col = "image";
    s->params.v[MREC_HP_BLOCKS] = (mrec_param_value){.x = {1}, .given = 1};
    s->params.v[MREC_HP_TOWER_LR] = (mrec_param_value){.x = {1e-3}, .given = 1};
}

/* The models whose op path comes in the trainer's two halves (mrec_model.stage, .launch) */
static int in_halves(const char *name) {
    static const char *const halves[] = {"bprmf", "lightgcn", "ngcf", "vbpr", "ngcfm", "lightgcnm", "freedom", "lattice", "bm3", "sgl",
                                         "pgl", "mgcn", "smore", "mmgcn", "grcn", "lgmrec", "mentor", "simgcl"};
    for (size_t k = 0; k < sizeof halves / sizeof halves[0]; k++)
        if (!strcmp(name, halves[k])) return 1;
    return 0;
}

static void cpu_and_gpu(const mrec_model_entry *e, const char *why_not, int have_clip_items) {
    int clip = !strcmp(e->name, "clip-e2e");
    if (clip && !have_clip_items) {
        t_skip("clip-e2e trained on the CPU and the GPU: tests/data (its photos, texts and tokenizer) not found");
        return;
    }
    char data[4096 * 3];
    snprintf(data, sizeof data, "%s/train.tsv,%s/val.tsv,%s/test.tsv", dir, dir, dir);
    char features[4200];
    snprintf(features, sizeof features, "visual=%s/visual.npy,textual=%s/textual.npy", dir, dir);
    mrec_train_result r[2];
    int ok[2] = {0, 0};
    /* compute-sanitizer slows every launch, the CPU emulator of make emu-check more */
    int epochs = getenv("MREC_UNDER_SANITIZER") || getenv("MREC_EMULATED_GPU") ? 2 : 6;
    memset(r, 0, sizeof r);
    for (int dev = 0; dev < (why_not ? 1 : 2); dev++) { /* without a GPU, the CPU half: the run the GPU's is held to */
        mrec_train_spec s = mrec_train_defaults();
        s.data = data, s.format = "tsv", s.model = e, s.threads = 2;
        if (e->needs != MREC_NEEDS_NONE) s.features = features;
        s.cache = "none"; /* no kNN graph left in the home folder */
        s.n_k = 2, s.k[0] = 10, s.k[1] = 20;
        s.device = dev ? MREC_WANT_CUDA : MREC_WANT_CPU, s.gpu = 0;
        s.params.v[MREC_HP_EPOCHS] = (mrec_param_value){.x = {epochs}, .given = 1};
        s.params.v[MREC_HP_PATIENCE] = (mrec_param_value){.x = {100}, .given = 1};
        s.params.v[MREC_HP_LR] = (mrec_param_value){.x = {0.01}, .given = 1};
        s.params.v[MREC_HP_BATCH_SIZE] = (mrec_param_value){.x = {128}, .given = 1};
        s.params.v[MREC_HP_DIM] = (mrec_param_value){.x = {16}, .given = 1};
        s.params.v[MREC_HP_SEED] = (mrec_param_value){.u = 0, .given = 1}; /* the seed the drift figures above were measured with */
        if (clip) tiny_clip(&s);
        comparable(e, &s);
        long long replays = mrec_cuda_graph_launches();
        mrec_status st = mrec_train(&s, &r[dev]);
        ok[dev] = t_status(st, MREC_OK, "%s trains on the %s (%s)", e->name, dev ? "GPU" : "CPU", r[dev].stage ? r[dev].stage : "");
        /* a model in two halves (stage, launch) has its batches replayed as CUDA graphs on the GPU */
        if (dev && ok[dev] && in_halves(e->name) && !t_graphs_off()) {
            long long got = mrec_cuda_graph_launches() - replays;
            t_check(got > 0, "%s: its steps on the GPU replayed as CUDA graphs (%lld replays)", e->name, got);
            /* and across the evaluations: were each epoch's graphs dropped there, its first two full batches would run
             * without one (the first as it is, the second captured) and its last, smaller one never replay */
            long long full = n_train_pairs / 128, most_if_dropped = (long long)epochs * (full - 2);
            if (strcmp(e->name, "lattice")) /* its rebuilding batches run as they are */
                t_check(got > most_if_dropped, "%s: its graphs outlived the evaluations (%lld replays over %d epochs of %lld full batches; "
                        "%lld at most were they dropped at each)", e->name, got, epochs, full, most_if_dropped);
        }
    }
    if (why_not) t_skip("%s trained on the CPU and the GPU: %s", e->name, why_not);
    if (ok[0] && ok[1] && (e->flags & MREC_MODEL_TRAINS)) { /* ItemKNN has no epochs: its rankings alone */
        int same = r[0].n_history == r[1].n_history && r[0].n_history == epochs;
        double worst = 0;
        char each[256] = ""; /* every epoch's gap: drift that grows from round-off reads apart from a wrong first step */
        for (int h = 0, at = 0; same && h < r[0].n_history; h++) {
            double a = r[0].history[h].loss, b = r[1].history[h].loss, rel = fabs(b - a) / fmax(fabs(a), 1e-30);
            worst = fmax(worst, rel);
            at += snprintf(each + at, sizeof each - (size_t)at, " %.1e", rel);
        }
        if (drifts(e->name)) {
            double first = same ? fabs(r[1].history[0].loss - r[0].history[0].loss) / fmax(fabs(r[0].history[0].loss), 1e-30) : 1;
            t_check(same && first <= 1e-3 && worst <= 2e-2,
                    "%s: the GPU's first epoch loss within 1e-3 relative of the CPU's, the later ones within 2e-2 as they drift "
                    "(%d and %d epochs; by epoch%s)", e->name, r[0].n_history, r[1].n_history, each);
        } else {
            same = same && worst <= 1e-3;
            t_check(same, "%s: the GPU's epoch losses follow the CPU's within 1e-3 relative (%d and %d epochs, worst %.2e; by epoch%s)",
                    e->name, r[0].n_history, r[1].n_history, worst, each);
        }
    }
    if (ok[0] && ok[1]) {
        double rc = r[0].test.value[MREC_METRIC_RECALL][1], rg = r[1].test.value[MREC_METRIC_RECALL][1];
        double nc = r[0].test.value[MREC_METRIC_NDCG][1], ng = r[1].test.value[MREC_METRIC_NDCG][1];
        double tol = drifts(e->name) ? 0.02 : 0.01; /* 0.02: one hit more or less among the tiny test set's 60 */
        t_check(rc > 0 && fabs(rg - rc) <= tol && fabs(ng - nc) <= tol,
                "%s: test Recall@20 %.4f / nDCG@20 %.4f on the GPU, %.4f / %.4f on the CPU", e->name, rg, ng, rc, nc);
    }
    mrec_train_result_free(&r[0]), mrec_train_result_free(&r[1]);
}

/* A short run of model e on write_data's split (and its features where e needs them), 16 dimensions, batches of
 * 128, top 20, on the CPU (dev 0) or GPU 0; lr 0 keeps the model's default. */
static mrec_train_spec tiny_spec(const mrec_model_entry *e, int dev, int epochs, uint64_t seed, double lr) {
    static char data[4096 * 3], features[4200];
    snprintf(data, sizeof data, "%s/train.tsv,%s/val.tsv,%s/test.tsv", dir, dir, dir);
    snprintf(features, sizeof features, "visual=%s/visual.npy,textual=%s/textual.npy", dir, dir);
    mrec_train_spec s = mrec_train_defaults();
    s.data = data, s.format = "tsv", s.model = e, s.threads = 2, s.cache = "none";
    if (e->needs != MREC_NEEDS_NONE) s.features = features;
    s.n_k = 1, s.k[0] = 20, s.device = dev ? MREC_WANT_CUDA : MREC_WANT_CPU, s.gpu = 0;
    s.params.v[MREC_HP_EPOCHS] = (mrec_param_value){.x = {epochs}, .given = 1};
    s.params.v[MREC_HP_BATCH_SIZE] = (mrec_param_value){.x = {128}, .given = 1};
    s.params.v[MREC_HP_DIM] = (mrec_param_value){.x = {16}, .given = 1};
    s.params.v[MREC_HP_SEED] = (mrec_param_value){.u = seed, .given = 1};
    if (lr > 0) s.params.v[MREC_HP_LR] = (mrec_param_value){.x = {lr}, .given = 1};
    return s;
}

/* One epoch (11 Adam steps of 128 pairs) from one seed on the CPU and on the GPU: the host draws the same batches for
 * both (the sampler runs there on either device), so the GPU replays the CPU's steps, and after them the epoch's loss
 * and every trained parameter agree within 1e-4 (the loss relative, each parameter tensor against its largest value):
 * fp32 on both sides, the sums in other orders. A first step that went wrong shows here before training drifts it
 * (cpu_and_gpu's six epochs hold the losses to 1e-3 for that drift). adjust (or NULL) changes both runs' settings
 * after tiny_spec's (the larger shapes below); name is the run's in the messages. */
static void epoch_against_cpu(const mrec_model_entry *e, const char *name, void (*adjust)(mrec_train_spec *s), const char *why_not) {
    if (why_not) {
        t_skip("%s: its parameters after one epoch on the GPU against the CPU's: %s", name, why_not);
        return;
    }
    mrec_train_result r[2];
    memset(r, 0, sizeof r);
    int ok = 1;
    for (int dev = 0; dev < 2; dev++) {
        mrec_train_spec s = tiny_spec(e, dev, 1, 11, 0.01);
        s.keep_model = 1;
        comparable(e, &s);
        if (adjust) adjust(&s);
        ok &= t_status(mrec_train(&s, &r[dev]), MREC_OK, "%s: one epoch on the %s", name, dev ? "GPU" : "CPU");
    }
    if (ok && t_check(r[0].n_history == 1 && r[1].n_history == 1 && r[0].saved.n_params == r[1].saved.n_params &&
                          r[0].saved.n_params > 0,
                      "%s: one epoch each, %d and %d parameter tensors kept", name, r[0].saved.n_params, r[1].saved.n_params)) {
        double a = r[0].history[0].loss, b = r[1].history[0].loss, rel = fabs(b - a) / fmax(fabs(a), 1e-30);
        double worst = 0;
        int at = -1;
        for (int p = 0; p < r[0].saved.n_params; p++) {
            const float *x = r[0].saved.param[p], *y = r[1].saved.param[p];
            int64_t n = r[0].saved.size[p];
            if (n != r[1].saved.size[p]) {
                worst = INFINITY, at = p;
                break;
            }
            double scale = 0, gap = 0;
            for (int64_t q = 0; q < n; q++) scale = fmax(scale, fabs(x[q])), gap = fmax(gap, fabs((double)y[q] - x[q]));
            double g = scale > 0 ? gap / scale : gap;
            if (!(g <= worst)) worst = g, at = p;
        }
        t_check(rel <= 1e-4 && worst <= 1e-4,
                "%s: after one epoch on the GPU, the loss within 1e-4 relative of the CPU's (%.2e) and every parameter within 1e-4 of "
                "its tensor's largest value (worst %.2e, tensor %d of %d)",
                name, rel, worst, at, r[0].saved.n_params);
        printf("gpu %-12s one epoch: loss %.3g relative, parameters %.3g of scale (tensor %d)\n", name, rel, worst, at);
    }
    mrec_train_result_free(&r[0]), mrec_train_result_free(&r[1]);
}

static void weights_after_steps(const mrec_model_entry *e, const char *why_not) { epoch_against_cpu(e, e->name, NULL, why_not); }

/* ---- Branches of the GPU paths that write_data's 90 items, batches of 128 and default settings leave alone, each
 * reached by the smallest run that takes it and held to the CPU's run of the same batches as above (one epoch, the
 * loss within 1e-4 relative and every parameter within 1e-4 of its tensor's largest value: fp32 on both sides, sums
 * in other orders; the larger batches take the same few Adam steps, so that bound holds as it does at 128). ---- */

static char wide_data[3 * 4200], wide_features[2 * 4200], long_data[3 * 4200];
enum { STAGED_BATCH = MREC_STAGE_BYTES / (3 * sizeof(int32_t)) + 64 }; /* a batch whose ids pass one upload slot */

static void on_wide(mrec_train_spec *s) {
    s->data = wide_data;
    if (s->model->needs != MREC_NEEDS_NONE) s->features = wide_features;
}

static void lattice_wide(mrec_train_spec *s) {
    on_wide(s);
    s->params.v[MREC_HP_BATCH_SIZE] = (mrec_param_value){.x = {1024}, .given = 1}; /* fewer batches: the graphs are made at the first */
}

static void sgl_chunks(mrec_train_spec *s) {
    on_wide(s);
    s->params.v[MREC_HP_BATCH_SIZE] = (mrec_param_value){.x = {4200}, .given = 1};
}

static void sgl_rw(mrec_train_spec *s) {
    s->params.v[MREC_HP_AUGMENT] = (mrec_param_value){.x = {2}, .given = 1}; /* rw */
    s->params.v[MREC_HP_LAYERS] = (mrec_param_value){.x = {2}, .given = 1};
}

static void ngcfm_node_dropout(mrec_train_spec *s) { s->params.v[MREC_HP_NODE_DROPOUT] = (mrec_param_value){.x = {0.2}, .given = 1}; }

static void bprmf_staged(mrec_train_spec *s) {
    s->data = long_data;
    s->params.v[MREC_HP_BATCH_SIZE] = (mrec_param_value){.x = {STAGED_BATCH}, .given = 1};
}

static void larger_shapes(const char *why_not) {
    static const char *const names[5] = {"lattice, 300 items", "sgl, batches of 4,200", "sgl, augment rw, 2 layers",
                                         "ngcfm, node dropout 0.2", "bprmf, batches past an upload slot"};
    if (why_not) {
        for (int c = 0; c < 5; c++) t_skip("%s: its parameters after one epoch on the GPU against the CPU's: %s", names[c], why_not);
        return;
    }
    /* wide: 500 users, 300 items, their features in groups of ten; long: 2,000 users on the same 300 items */
    double margin = 0, unused;
    int64_t wide_pairs = write_wide("wide", 500, 300, 1, &margin), long_pairs = write_wide("long", 2000, 300, 0, &unused);
    snprintf(wide_data, sizeof wide_data, "%s/wide_train.tsv,%s/wide_val.tsv,%s/wide_test.tsv", dir, dir, dir);
    snprintf(wide_features, sizeof wide_features, "visual=%s/wide_visual.npy,textual=%s/wide_textual.npy", dir, dir);
    snprintf(long_data, sizeof long_data, "%s/long_train.tsv,%s/long_val.tsv,%s/long_test.tsv", dir, dir, dir);
    T_REQUIRE_VOID_OK(wide_pairs > 4200 && long_pairs >= STAGED_BATCH);

    /* LATTICE over 300 items (> 256): ops_knn makes each kNN item graph (the frozen ones in ops_frozen at creation, the
     * learned ones in ops_build at the epoch's first batch) in two blocks of rows (its BLOCK, 256, and 44), and
     * mrec_topk_rows_cuda takes topk_filter_kernel for each block (k = 10 <= 32, rows of C = 300 >= 256 columns). The
     * items come in groups of ten near-copies, so each item's ten neighbours are its group by a margin above any
     * rounding (checked here): a near-tie that cuBLAS's rounding tipped would give the GPU another graph and part the
     * runs for that alone. */
    t_check(margin > 0.01, "the wide features: each item's group nearer than any other item by %.3g in cosine (> 0.01)", margin);
    epoch_against_cpu(mrec_model_find("lattice"), names[0], lattice_wide, NULL);
    /* SGL with batches of 4,200 (> GPU_CHUNK, 4096): ops_contrast runs each batch's contrast in two chunks of anchors
     * (4096 and 104), the second at an offset into the anchors and their gradient rows, both adding into dz2; the
     * CPU's host loops run theirs in its CHUNK of 256 */
    epoch_against_cpu(mrec_model_find("sgl"), names[1], sgl_chunks, NULL);
    /* SGL with augment rw over 2 layers: draw_views draws, upload_views sends and layer_csr reads a graph per layer
     * and view (dev_views[v][k], k > 0), where nd and ed keep one */
    epoch_against_cpu(mrec_model_find("sgl"), names[2], sgl_rw, NULL);
    /* NGCF-M with node dropout 0.2: ngcfm_epoch_start drops Â's entries on the device (mrec_hash_dropout over the
     * values) and its transposed copy's through t_edge, each entry by its number in Â, the host path's draw */
    epoch_against_cpu(mrec_model_find("ngcfm"), names[3], ngcfm_node_dropout, NULL);
    /* BPRMF with batches of 21,909 triples: mrec_bpr_ops_stage uploads their 262,908 bytes of ids through
     * mrec_copy_to_device_staged, past one slot (MREC_STAGE_BYTES, 256 KB): mrec_cuda_copy_h2d_staged's branch for
     * larger copies, from pageable memory (staged_upload holds that branch's pinned form to its bytes) */
    epoch_against_cpu(mrec_model_find("bprmf"), names[4], bprmf_staged, NULL);
}

/* The checkpoint at path written again with element k of the int32 tensor `name` set to value (a damaged or
 * forged file whose layout is sound): 1 when written. */
static int forge(const char *path, const char *name, int64_t k, int32_t value) {
    mrec_safetensors f;
    if (mrec_safetensors_open(&f, path)) return 0;
    mrec_st_tensor_in *t = calloc((size_t)f.n_tensors, sizeof *t);
    void *changed = NULL;
    int ok = t != NULL;
    for (int i = 0; ok && i < f.n_tensors; i++) {
        const mrec_st_entry *e = &f.tensors[i];
        t[i] = (mrec_st_tensor_in){e->name, e->dtype, e->ndim, e->shape, e->data};
        if (strcmp(e->name, name)) continue;
        size_t bytes = e->end - e->begin;
        ok = e->dtype == MREC_I32 && (size_t)k * 4 < bytes && (changed = malloc(bytes));
        if (ok) memcpy(changed, e->data, bytes), ((int32_t *)changed)[k] = value, t[i].data = changed;
    }
    ok = ok && changed && !mrec_safetensors_write(path, t, f.n_tensors, (const char *const *)f.meta_keys,
                                                  (const char *const *)f.meta_values, f.n_meta);
    free(changed), free(t);
    mrec_safetensors_close(&f);
    return ok;
}

/* What resume_case's checkpoint ck of model e is refused as: another seed's, forged ones whose layout is sound,
 * a cut one; each naming the file and what is wrong. */
static void refusals(const mrec_model_entry *e, const char *ck) {
    mrec_train_spec s = tiny_spec(e, 0, 3, 6, 0.01);
    s.keep_model = 1, s.save_topk = 5, s.checkpoint = ck, s.resume = 1;
    mrec_train_result bad;
    mrec_status st = mrec_train(&s, &bad);
    t_check(st != MREC_OK && strstr(mrec_error_detail(), ck) && strstr(mrec_error_detail(), "seed"),
            "%s: a checkpoint of seed 5 refused by a run of seed 6, naming the file and the seed: %s", e->name, mrec_error_detail());
    mrec_train_result_free(&bad);
    char cmd[4 * 4200 + 64];
    /* forged ones, sound as files: a training pair out of the data, a pair twice (so another missing), a
     * kept item out of the catalogue */
    s.params.v[MREC_HP_SEED] = (mrec_param_value){.u = 5, .given = 1};
    char copy[4200 + 8];
    snprintf(copy, sizeof copy, "%s.copy", ck);
    static const struct { const char *tensor; int64_t at; int32_t value; const char *said; } forged[] = {
        {"sampler.user", 0, 1000000, "sampler pair 0"}, {"sampler.pos", 1, -1, "sampler pair 1"},
        {"kept.topk", 3, 1000000, "kept.topk[3]"}};
    for (size_t f = 0; f < sizeof forged / sizeof *forged; f++) {
        snprintf(cmd, sizeof cmd, "cp %s %s", ck, copy);
        s.checkpoint = copy;
        st = system(cmd) == 0 && forge(copy, forged[f].tensor, forged[f].at, forged[f].value) ? mrec_train(&s, &bad) : MREC_OK;
        t_check(st != MREC_OK && strstr(mrec_error_detail(), copy) && strstr(mrec_error_detail(), forged[f].said),
                "%s: a checkpoint with %s[%lld] = %d refused, naming the file and the value: %s", e->name, forged[f].tensor,
                (long long)forged[f].at, forged[f].value, mrec_error_detail());
        mrec_train_result_free(&bad);
    }
    /* pair 0 made a copy of pair 1: training pairs, but one twice and another missing */
    int32_t pair1[2] = {-1, -1};
    mrec_safetensors f;
    if (!mrec_safetensors_open(&f, ck)) {
        static const char *const arrays[2] = {"sampler.user", "sampler.pos"};
        for (int a = 0; a < 2; a++) {
            const mrec_st_entry *x = mrec_safetensors_find(&f, arrays[a]);
            if (x && x->end - x->begin >= 8) memcpy(&pair1[a], (const char *)x->data + 4, 4);
        }
        mrec_safetensors_close(&f);
    }
    snprintf(cmd, sizeof cmd, "cp %s %s", ck, copy);
    st = pair1[0] >= 0 && system(cmd) == 0 && forge(copy, "sampler.user", 0, pair1[0]) && forge(copy, "sampler.pos", 0, pair1[1])
             ? mrec_train(&s, &bad)
             : MREC_OK;
    t_check(st != MREC_OK && strstr(mrec_error_detail(), copy) && strstr(mrec_error_detail(), "not this run's training pairs"),
            "%s: a checkpoint whose sampler holds a pair twice refused, naming the file: %s", e->name, mrec_error_detail());
    mrec_train_result_free(&bad);
    s.checkpoint = ck;
    /* a damaged one: its first 100 bytes only */
    snprintf(cmd, sizeof cmd, "head -c 100 %s > %s.cut && mv %s.cut %s", ck, ck, ck, ck);
    s.params.v[MREC_HP_SEED] = (mrec_param_value){.u = 5, .given = 1};
    st = system(cmd) == 0 ? mrec_train(&s, &bad) : MREC_OK;
    t_check(st != MREC_OK && strstr(mrec_error_detail(), ck), "%s: a cut checkpoint refused, naming the file: %s", e->name,
            mrec_error_detail());
    mrec_train_result_free(&bad);
}

/* name in the NULL-ended list, or no list */
static int listed(const char *name, const char *const *only) {
    if (!only) return 1;
    while (*only && strcmp(*only, name)) only++;
    return *only != NULL;
}

/* A run stopped after its first evaluation and resumed from its checkpoint takes the steps of one never stopped:
 * every model that trains, three epochs straight against one epoch (its checkpoint written) then epochs two and
 * three resumed from it, on the CPU and on the GPU: the same losses, metrics, best epoch and parameters, bit for
 * bit. The resumed run's history begins with the first run's epoch, as its log does. A checkpoint of another run
 * (another seed) is refused, naming the file and what differs. */
static void resume_case(int on_gpu, const char *why_not, int have_clip_items, const char *const *gpu_only) {
    char ck[4200];
    int refused_once = 0;
    for (int dev = 0; dev < 2; dev++)
        for (int i = 0; i < mrec_model_count(); i++) {
            const mrec_model_entry *e = mrec_model_at(i);
            const char *where = dev ? "GPU" : "CPU";
            int clip = !strcmp(e->name, "clip-e2e");
            if (!(e->flags & MREC_MODEL_TRAINS) || (clip && !have_clip_items) || (dev && !mrec_model_runs_on_gpu(e->name))) continue;
            if (gpu_only && (!dev || !listed(e->name, gpu_only))) continue;
            if (dev && !on_gpu) {
                t_skip("%s stopped and resumed on the GPU: %s", e->name, why_not);
                continue;
            }
            snprintf(ck, sizeof ck, "%s/%s-%d.ckpt", dir, e->name, dev);
            mrec_train_result r[3];
            memset(r, 0, sizeof r);
            int ok = 1;
            for (int run = 0; run < 3; run++) { /* 0: straight; 1: one epoch, checkpointed; 2: resumed to three */
                mrec_train_spec s = tiny_spec(e, dev, run == 1 ? 1 : 3, 5, 0.01);
                s.keep_model = 1, s.save_topk = 5;
                if (clip) tiny_clip(&s);
                if (run) s.checkpoint = ck, s.resume = run == 2;
                ok &= t_status(mrec_train(&s, &r[run]), MREC_OK, "%s on the %s, run %d", e->name, where, run + 1);
            }
            int same = ok && r[0].n_history == 3 && r[2].n_history == 3 && r[1].n_history == 1;
            for (int h = 0; same && h < 3; h++) same = r[0].history[h].loss == r[2].history[h].loss && r[0].history[h].value == r[2].history[h].value;
            same = same && r[0].history[0].loss == r[1].history[0].loss && r[0].best_epoch == r[2].best_epoch &&
                   r[0].test.value[MREC_METRIC_RECALL][0] == r[2].test.value[MREC_METRIC_RECALL][0] &&
                   r[0].test.value[MREC_METRIC_NDCG][0] == r[2].test.value[MREC_METRIC_NDCG][0] &&
                   r[0].valid.value[MREC_METRIC_RECALL][0] == r[2].valid.value[MREC_METRIC_RECALL][0];
            same = same && r[0].saved.n_params == r[2].saved.n_params && r[0].topk && r[2].topk &&
                   !memcmp(r[0].topk, r[2].topk, sizeof(int32_t) * (size_t)r[0].ids.n_users * 5);
            for (int q = 0; same && q < r[0].saved.n_params; q++)
                same = r[0].saved.size[q] == r[2].saved.size[q] &&
                       !memcmp(r[0].saved.param[q], r[2].saved.param[q], sizeof(float) * (size_t)r[0].saved.size[q]);
            t_check(same, "%s on the %s: stopped after epoch 1 and resumed from its checkpoint, the losses, metrics, lists and "
                    "parameters of three epochs straight, bit for bit (%d, %d and %d epochs in the histories)", e->name, where,
                    r[0].n_history, r[1].n_history, r[2].n_history);
            for (int run = 0; run < 3; run++) mrec_train_result_free(&r[run]);
            if (!refused_once && dev == 0 && !gpu_only) refused_once = 1, refusals(e, ck);
        }
}

/* CLIP-E2E's tower training reaches its loss in every precision: two epochs with the towers' rate at 1e-2 and at
 * 1e-9 give other second-epoch losses. On a bf16 GPU context the towers' weights are uploaded without the bf16 twin
 * an encoder's upload makes (a twin made once would keep the first weights: the forward would never see a step,
 * and the two runs' losses would be the same). On the CPU in fp32 (no twin there) the check holds itself. */
static void towers_reach_the_loss(int on_gpu, const char *why_not, int have_clip_items) {
    if (!have_clip_items) return;
    const mrec_model_entry *e = mrec_model_find("clip-e2e");
    for (int dev = 0; dev < 2; dev++) {
        const char *where = dev ? "GPU in bf16" : "CPU";
        if (dev && !on_gpu) {
            t_skip("clip-e2e on the %s: the towers' steps reach the loss: %s", where, why_not);
            continue;
        }
        mrec_train_result r[2];
        memset(r, 0, sizeof r);
        int ok = 1;
        for (int run = 0; run < 2; run++) {
            mrec_train_spec s = tiny_spec(e, dev, 2, 5, 0);
            tiny_clip(&s);
            s.params.v[MREC_HP_TOWER_LR] = (mrec_param_value){.x = {run ? 1e-9 : 1e-2}, .given = 1};
            if (dev) s.precision = MREC_PREC_BF16;
            ok &= t_status(mrec_train(&s, &r[run]), MREC_OK, "clip-e2e on the %s, tower rate %s", where, run ? "1e-9" : "1e-2");
        }
        if (ok && r[0].n_history == 2 && r[1].n_history == 2) {
            double a = r[0].history[1].loss, b = r[1].history[1].loss;
            t_check(fabs(a - b) > 1e-6 * fabs(b), "clip-e2e on the %s: the second epoch's loss with the towers trained at 1e-2 (%.9g) "
                    "is not the one at 1e-9 (%.9g): the towers' steps reach the forward", where, a, b);
        }
        mrec_train_result_free(&r[0]), mrec_train_result_free(&r[1]);
    }
}

/* The same seed twice on one device, the same bits: every epoch's loss and the test metrics equal, not close (the
 * GPU's sums run in fixed orders: no float atomics, the long rows' runs fixed by their length, dropout from a
 * counter-based stream), and the parameters kept at the best epoch. Every model that trains on the GPU (CLIP-E2E
 * when tests/data has its photos), two epochs at 16 dimensions, on the CPU (which holds the check itself to account
 * without a GPU) and on the GPU. */
static void same_bits_twice(int on_gpu, const char *why_not, int have_clip_items, const char *const *gpu_only) {
    for (int dev = 0; dev < 2; dev++)
        for (int i = 0; i < mrec_model_count(); i++) {
            const mrec_model_entry *e = mrec_model_at(i);
            const char *where = dev ? "GPU" : "CPU";
            int clip = !strcmp(e->name, "clip-e2e");
            if (!mrec_model_runs_on_gpu(e->name) || !(e->flags & MREC_MODEL_TRAINS) || (clip && !have_clip_items)) continue;
            if (gpu_only && (!dev || !listed(e->name, gpu_only))) continue;
            if (dev && !on_gpu) {
                t_skip("%s twice on the GPU from one seed, the same bits: %s", e->name, why_not);
                continue;
            }
            mrec_train_result r[2];
            memset(r, 0, sizeof r);
            int ok = 1;
            for (int run = 0; run < 2; run++) {
                mrec_train_spec s = tiny_spec(e, dev, 2, 5, 0);
                s.keep_model = 1;
                if (clip) tiny_clip(&s);
                ok &= t_status(mrec_train(&s, &r[run]), MREC_OK, "%s on the %s, run %d", e->name, where, run + 1);
            }
            int same = ok && r[0].n_history == r[1].n_history && r[0].n_history == 2;
            for (int h = 0; same && h < r[0].n_history; h++) same = r[0].history[h].loss == r[1].history[h].loss;
            same = same && r[0].test.value[MREC_METRIC_RECALL][0] == r[1].test.value[MREC_METRIC_RECALL][0] &&
                   r[0].test.value[MREC_METRIC_NDCG][0] == r[1].test.value[MREC_METRIC_NDCG][0];
            /* and the trained parameters at the best epoch */
            same = same && r[0].saved.n_params == r[1].saved.n_params && r[0].saved.best_epoch == r[1].saved.best_epoch;
            for (int p = 0; same && p < r[0].saved.n_params; p++)
                same = r[0].saved.size[p] == r[1].saved.size[p] &&
                       !memcmp(r[0].saved.param[p], r[1].saved.param[p], sizeof(float) * (size_t)r[0].saved.size[p]);
            t_check(same, "%s twice on the %s from one seed: the same losses, metrics and parameters, bit for bit", e->name, where);
            mrec_train_result_free(&r[0]), mrec_train_result_free(&r[1]);
        }
}

int main(void) {
    t_suite("cuda_train");
    bin = getenv("MREC_BIN");
    if (!bin) bin = "bin/mrec";
    char abs_bin[4096];
    if (bin[0] != '/' && getcwd(abs_bin, sizeof abs_bin - strlen(bin) - 2)) {
        strcat(abs_bin, "/"), strcat(abs_bin, bin);
        bin = abs_bin;
    }
    T_REQUIRE(mkdtemp(dir) != NULL);
    T_REQUIRE(write_data());
    char why[512];
    int gpu = have_gpu(why, sizeof why);
    if (!gpu) t_no_gpu(why);
    mrec_context *cpu;
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = 2;
    T_REQUIRE(mrec_context_create(&cpu, &o) == MREC_OK);

    /* the command line's flags spawn the binary a dozen times, each loading cuBLAS and cuDNN, which under
     * compute-sanitizer takes longer than the check allows: the plain run has them */
    if (!getenv("MREC_UNDER_SANITIZER")) device_flag(gpu), precision_flag(gpu), elliot_gpu(gpu);
    else t_skip("under compute-sanitizer: --device and Elliot's gpu key, spawning the binary, are left to the plain run");
    list_matches_models();
    mostpop_scores(cpu, "cpu");
    op_path_on_cpu(cpu);
    ngcf_ops(cpu, "cpu");
    /* the same on a pool held to scalar code (the hashed dropout has an AVX2 path) */
    mrec_context *scalar;
    o.max_simd = MREC_SIMD_SCALAR;
    if (t_status(mrec_context_create(&scalar, &o), MREC_OK, "a scalar CPU context")) ngcf_ops(scalar, "cpu, scalar"), mrec_context_destroy(scalar);
    o.max_simd = mrec_context_defaults().max_simd;
    contrast_ops(cpu, "cpu");
    knn_scores_op(cpu, "cpu");
    transposed_graph(cpu);
    segment_softmax_op(cpu, "cpu");
    mrec_context *gctx = NULL;
    o.device = MREC_WANT_CUDA;
    if (gpu && t_status(mrec_context_create(&gctx, &o), MREC_OK, "a CUDA context")) ngcf_ops(gctx, "cuda"), contrast_ops(gctx, "cuda"), knn_scores_op(gctx, "cuda");
    else if (!gpu) {
        t_skip("NGCF's ops on the GPU against their references: %s", why);
        t_skip("SimGCL's, SGL's and LATTICE's ops on the GPU against their references: %s", why);
        t_skip("ItemKNN's scores on the GPU against their reference: %s", why);
        t_skip("GRCN's segment softmax on the GPU against its reference: %s", why);
    }
    if (gctx) segment_softmax_op(gctx, "cuda"), mostpop_scores(gctx, "cuda");
    else if (!gpu) t_skip("MostPop's scores on the GPU: %s", why);
    /* InfoNCE over 8,200 rows (67 M logits a side) is left to the plain run under compute-sanitizer */
    int under = getenv("MREC_UNDER_SANITIZER") != NULL, emulated = getenv("MREC_EMULATED_GPU") != NULL;
    if (gctx && !under && emulated) t_skip("on the CPU emulator: InfoNCE over 8,200 rows is left to a GPU"), staged_upload(gctx);
    else if (gctx && !under) info_nce_blocks(cpu, gctx), staged_upload(gctx);
    else if (!gpu) {
        t_skip("InfoNCE over 8,200 rows, its logits in blocks, on the GPU against the CPU: %s", why);
        t_skip("staged uploads past one slot on the GPU, from pinned and pageable memory: %s", why);
    }
    mrec_context_destroy(gctx);
    int clip_items = write_clip_items();
    /* Under compute-sanitizer (tools/gpu/check.sh), two epochs of two models that between them reach the
     * training kernels the ops above do not (a graph, features, a kNN item graph): the plain run trains every
     * one for six. */
    static const char *const sanitized[] = {"lightgcn", "freedom", NULL};
    for (int i = 0; i < mrec_model_count(); i++) {
        const char *name = mrec_model_at(i)->name;
        if (mrec_model_runs_on_gpu(name) && listed(name, under ? sanitized : NULL)) cpu_and_gpu(mrec_model_at(i), gpu ? NULL : why, clip_items);
    }
    /* On the CPU emulator (make emu-gpu-check) an epoch against the CPU's for three models whose GPU paths differ
     * most (a graph, a learned kNN graph, dropped-edge views); the rest is left to a GPU */
    static const char *const emulated_epochs[] = {"lightgcn", "lattice", "sgl", NULL};
    for (int i = 0; !under && i < mrec_model_count(); i++) {
        const mrec_model_entry *e = mrec_model_at(i);
        if (mrec_model_runs_on_gpu(e->name) && (e->flags & MREC_MODEL_TRAINS) && strcmp(e->name, "clip-e2e") &&
            listed(e->name, emulated ? emulated_epochs : NULL))
            weights_after_steps(e, gpu ? NULL : why);
    }
    if (!under && !emulated) larger_shapes(gpu ? NULL : why);
    if (under) t_skip("under compute-sanitizer: the other models, epochs 3 to 6, the larger shapes and InfoNCE over 8,200 rows are "
                      "left to the plain run");
    if (emulated) t_skip("on the CPU emulator: epochs 3 to 6, the other models' epochs fed the CPU's batches, the larger shapes, "
                         "and the other models twice and resumed are left to a GPU");
    if (!under && !emulated)
        same_bits_twice(gpu, why, clip_items, NULL), resume_case(gpu, why, clip_items, NULL), towers_reach_the_loss(gpu, why, clip_items);
    /* On the emulator, whose scheduler runs blocks and warps in another order each time, the same bits twice for
     * models whose steps sum the most (a graph, its edge-dropped views, a learned item graph), and a run stopped
     * and resumed for two (its checkpoint read back onto the device); their CPU halves run in the plain suite */
    static const char *const emulated_twice[] = {"lightgcn", "ngcf", "sgl", "lattice", NULL};
    static const char *const emulated_resumed[] = {"lightgcn", "lattice", NULL};
    if (emulated && gpu) same_bits_twice(gpu, why, clip_items, emulated_twice), resume_case(gpu, why, clip_items, emulated_resumed);

    mrec_context_destroy(cpu);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return t_finish();
}
