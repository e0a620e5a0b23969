/* bench_train_gpu.c: training time per epoch of every model with a GPU path,
 * on the CPU and on the GPU, from one seed on the same synthetic data.
 *
 *   build/cuda/bench/bench_train_gpu [threads [epochs [users [items]]]]   (make gpu-check runs it, GPU only)
 *   MREC_BENCH_GPU_ONLY=1   the GPU column alone, unchecked against the CPU's
 *   MREC_BENCH_MODELS="a b" those models alone (by registry name)
 *
 * Data: `users` users (default 20,000) with 10 to 49 items each among `items`
 * (default 10,000), in overlapping bands so the models have something to
 * learn; the last item of each user is its test item. 64-d, batch 2048, Adam
 * at 1e-3; the feature models read two modalities of random item features,
 * as on Baby: a 256-d visual one and a 128-d textual one. CLIP-E2E, which
 * trains CLIP's towers on the items' photos and texts, is bench_clip_train's
 * to time. Each model is validated
 * before its time is trusted: the GPU's test Recall@20 must lie within 0.01 of
 * the CPU's after the same epochs (tests/test_cuda_train.c holds the losses
 * to 1e-3). The time is mrec_fit's training time over the epochs (sampling,
 * batches and Adam; one evaluation at the end, timed apart). Without a GPU
 * the CPU column is printed and the GPU one says why it is missing. Last, the
 * kNN item graph of FREEDOM (k 10) from the visual features, built on each
 * device, and whether the two graphs are the same.
 */
#include "bench_fit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The kNN item graph (k 10) of the features on ctx: seconds, or -1 (the graph kept in *g) */
static double knn_time(mrec_graph *g, mrec_context *ctx, const float *feat, int I, int F) {
    const float *xs[1] = {feat};
    int dims[1] = {F};
    float w[1] = {1};
    double t0 = now();
    if (mrec_graph_knn(g, xs, dims, w, 1, I, 10, ctx)) return fprintf(stderr, "knn graph: %s\n", mrec_error_detail()), -1;
    return now() - t0;
}

static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Whether MREC_BENCH_MODELS (names apart by spaces or commas) names the model; all of them without it. */
static int picked(const char *name) {
    const char *list = getenv("MREC_BENCH_MODELS");
    if (!list || !*list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += n) {
        int starts = p == list || p[-1] == ' ' || p[-1] == ',', ends = p[n] == '\0' || p[n] == ' ' || p[n] == ',';
        if (starts && ends) return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 0, epochs = argc > 2 ? atoi(argv[2]) : 2;
    /* MREC_BENCH_GPU_ONLY: the GPU column alone (the CPU's takes minutes; make gpu-check sets it) */
    int gpu_only = getenv("MREC_BENCH_GPU_ONLY") != NULL;
    setvbuf(stdout, NULL, _IOLBF, 0); /* a run stopped at a time limit keeps its finished rows */
    int U = argc > 3 ? atoi(argv[3]) : 20000, I = argc > 4 ? atoi(argv[4]) : 10000, F = 256;
    if (epochs < 1 || U < 10 || I < 100) {
        fprintf(stderr, "usage: bench_train_gpu [threads [epochs >= 1 [users >= 10 [items >= 100]]]]\n");
        return 1;
    }
    /* the interactions: each user's items from a band of 200 around u * I / U, the last one held out */
    mrec_interactions x = {0};
    size_t cap = (size_t)U * 49;
    x.n_users = U, x.n_items = I;
    x.user = malloc(sizeof *x.user * cap), x.item = malloc(sizeof *x.item * cap), x.rating = malloc(sizeof *x.rating * cap);
    x.split = malloc(cap);
    const int FT = 128; /* the textual modality's width */
    float *feat = malloc(sizeof(float) * (size_t)I * F), *text = malloc(sizeof(float) * (size_t)I * FT);
    float *both = malloc(sizeof(float) * (size_t)I * (F + FT));
    uint8_t *seen = calloc((size_t)I, 1);
    if (!x.user || !x.item || !x.rating || !x.split || !feat || !text || !both || !seen)
        return fprintf(stderr, "bench_train_gpu: out of memory\n"), 1;
    uint64_t s = 1;
    for (int u = 0; u < U; u++) {
        int n = 10 + (int)(mix(&s) % 40), first = (int)x.n;
        while ((int)x.n - first < n) {
            int32_t it = (int32_t)(((int64_t)u * I / U + (int64_t)(mix(&s) % 200)) % I);
            if (seen[it]) continue;
            seen[it] = 1;
            x.user[x.n] = u, x.item[x.n] = it, x.rating[x.n] = 1, x.split[x.n++] = MREC_SPLIT_TRAIN;
        }
        for (int q = first; q < (int)x.n; q++) seen[x.item[q]] = 0;
        x.split[x.n - 1] = MREC_SPLIT_TEST;
    }
    for (size_t q = 0; q < (size_t)I * F; q++) feat[q] = (float)((mix(&s) >> 40) * (1.0 / 16777216.0) - 0.5);
    for (size_t q = 0; q < (size_t)I * FT; q++) text[q] = (float)((mix(&s) >> 40) * (1.0 / 16777216.0) - 0.5);
    for (int i = 0; i < I; i++) { /* the two side by side, as mrec train hands them to a model */
        memcpy(both + (size_t)i * (F + FT), feat + (size_t)i * F, sizeof(float) * F);
        memcpy(both + (size_t)i * (F + FT) + F, text + (size_t)i * FT, sizeof(float) * FT);
    }
    mrec_user_items train, valid, test;
    mrec_user_items_build(&train, &x, MREC_SPLIT_TRAIN);
    mrec_user_items_build(&valid, &x, MREC_SPLIT_VALID);
    mrec_user_items_build(&test, &x, MREC_SPLIT_TEST);
    mrec_features modality[2] = {{.n_items = I, .dim = F, .x = feat}, {.n_items = I, .dim = FT, .x = text}};
    snprintf(modality[0].name, sizeof modality[0].name, "visual");
    snprintf(modality[1].name, sizeof modality[1].name, "textual");
    mrec_model_inputs in = {.n_users = U, .n_items = I, .train = &train, .feat = modality, .n_feat = 2, .item_feat = both,
                            .feat_dim = F + FT};

    mrec_context *cpu = NULL, *gpu = NULL;
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU, o.n_threads = threads;
    if (mrec_context_create(&cpu, &o)) return fprintf(stderr, "bench_train_gpu: %s\n", mrec_error_detail()), 1;
    o.device = MREC_WANT_CUDA;
    char why[200] = "";
    if (mrec_context_create(&gpu, &o)) snprintf(why, sizeof why, "%s", mrec_error_detail()), mrec_clear_error();
    int failed = 0;
    if (gpu_only && !gpu) {
        printf("bench_train_gpu: GPU only, and no GPU (%s); nothing to measure\n", why);
        goto done;
    }
    printf("training, %d users, %d items, %lld pairs, 64-d, batch 2048, %d epoch(s); CPU on %d threads\n", U, I,
           (long long)train.row_ptr[train.n_rows], epochs, mrec_pool_threads(cpu->pool));
    printf("%-10s %14s %14s %8s %18s\n", "model", "CPU s/epoch", "GPU s/epoch", "ratio", "Recall@20 CPU/GPU");
    for (int i = 0; i < mrec_model_count(); i++) {
        const mrec_model_entry *e = mrec_model_at(i);
        if (!mrec_model_runs_on_gpu(e->name) || !picked(e->name) || !strcmp(e->name, "clip-e2e")) continue;
        bench_timing c = {0}, d = {0};
        if (!gpu_only) c = bench_fit("bench_train_gpu", cpu, e, &in, &train, &valid, &test, epochs, 1e-3f);
        if (gpu) d = bench_fit("bench_train_gpu", gpu, e, &in, &train, &valid, &test, epochs, 1e-3f);
        int valid_gpu = d.ok && c.ok && fabs(d.recall - c.recall) <= 0.01;
        if (gpu_only) { /* no CPU run to hold the GPU's to */
            failed |= !d.ok;
            if (d.ok) printf("%-10s %14s %14.3f %8s %8s / %.4f\n", e->name, "-", d.seconds_per_epoch, "-", "-", d.recall);
            else printf("%-10s %14s %14s\n", e->name, "-", "failed"); /* why: on stderr, above */
            continue;
        }
        failed |= !c.ok || (gpu && !valid_gpu);
        if (gpu)
            printf("%-10s %14.3f %14.3f %7.1fx %8.4f / %.4f%s\n", e->name, c.seconds_per_epoch, d.seconds_per_epoch,
                   d.seconds_per_epoch > 0 ? c.seconds_per_epoch / d.seconds_per_epoch : 0, c.recall, d.recall,
                   valid_gpu ? "" : "  (GPU result off: time not trusted)");
        else
            printf("%-10s %14.3f %14s %8s %8.4f\n", e->name, c.seconds_per_epoch, "-", "-", c.recall);
    }
    printf("(a model without training, as itemknn, shows its scoring time in the s/epoch columns; clip-e2e: bench_clip_train)\n");
    {
        mrec_graph g[2] = {{0}};
        double tc = gpu_only ? 0 : knn_time(&g[0], cpu, feat, I, F), tg = gpu ? knn_time(&g[1], gpu, feat, I, F) : 0;
        int64_t nnz = g[0].row_ptr ? g[0].row_ptr[I] : -1;
        int same = !gpu_only && gpu && tc >= 0 && tg >= 0 && nnz == g[1].row_ptr[I] &&
                   !memcmp(g[0].col, g[1].col, sizeof(int32_t) * (size_t)nnz) && !memcmp(g[0].val, g[1].val, sizeof(float) * (size_t)nnz);
        failed |= tc < 0 || tg < 0;
        char cs[32] = "-", gs[32] = "-";
        if (!gpu_only) snprintf(cs, sizeof cs, "%.3f", tc);
        if (gpu) snprintf(gs, sizeof gs, "%.3f", tg);
        printf("kNN item graph, %d items x %d-d, k 10: CPU %s s, GPU %s s%s\n", I, F, cs, gs,
               !gpu_only && gpu ? (same ? ", the same graph" : ", graphs differ (near-ties)") : "");
        mrec_graph_free(&g[0]), mrec_graph_free(&g[1]);
    }
    if (!gpu) printf("GPU: skipped (%s)\n", why);
done:
    mrec_context_destroy(cpu), mrec_context_destroy(gpu);
    mrec_user_items_free(&train), mrec_user_items_free(&valid), mrec_user_items_free(&test);
    free(x.user), free(x.item), free(x.rating), free(x.split), free(feat), free(text), free(both), free(seen);
    return failed;
}
