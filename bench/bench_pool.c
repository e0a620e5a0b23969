/* bench_pool.c: the thread pool under realistic op sequences, at several
 * thread counts, to see what threads buy (or cost) when the machine is busy.
 *
 *   build/cpu/bench/bench_pool [threads ...]      (default: 1 2)
 *   MREC_BENCH_SECONDS=s                           time per case (default 2)
 *
 * Cases, each timed as the mean over as many iterations as fit in the time
 * (the thread counts take turns, 50 ms each, so a changing background load
 * weighs on all of them alike):
 *   bert-b4-t64   two encoder layers of a small BERT (hidden 384, 12 heads,
 *                 FFN 1536) on 4 sequences of 64 tokens: mid GEMMs, batched
 *                 attention GEMMs, softmax, GELU, residual adds, LayerNorm
 *   bert-b1-t32   the same on one sequence of 32 tokens: many small ops,
 *                 where the cost of handing out work shows most
 *   lightgcn      three propagation layers over a random user-item graph
 *                 (6,000 users, 4,000 items, 120,000 edges, 64-d) forward
 *                 and transposed, an embedding gather and an Adam step
 * Every case is first run on each pool and its output compared to the one
 * thread result, bit for bit. The last line gives the CPU time the idle
 * pools take while they wait between jobs.
 *
 * To see the effect of a busy core, run it beside a spinning process:
 *   taskset -c 0 sh -c 'while :; do :; done' & build/cpu/bench/bench_pool; kill $!
 */
#include "../kernels/mrec_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECK(x)                                                                              \
    do {                                                                                      \
        if (!(x)) {                                                                           \
            fprintf(stderr, "%s:%d: %s failed (%s)\n", __FILE__, __LINE__, #x, mrec_error_detail()); \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

static double now(clock_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xFFFFFF) / (float)0x1000000 - 0.5f;
}
static float *rand_floats(size_t n, float scale) {
    float *p = aligned_alloc(64, (n * sizeof *p + 63) / 64 * 64); /* as the arenas align */
    CHECK(p);
    for (size_t i = 0; i < n; i++) p[i] = scale * frand();
    return p;
}

/* ---- a small BERT encoder ---- */

enum { HID = 384, HEADS = 12, DH = HID / HEADS, FFN = 1536, LAYERS = 2 };

typedef struct {
    int B, T;
    float *w_qkv, *b_qkv, *w_o, *b_o, *w_1, *b_1, *w_2, *b_2, *ln_w, *ln_b; /* shared by the layers */
    float *x, *qkv, *q, *k, *v, *scores, *ctx, *attn, *h, *tmp;
} bert;

static void bert_init(bert *m, int B, int T) {
    size_t M = (size_t)B * T;
    m->B = B, m->T = T;
    m->w_qkv = rand_floats((size_t)3 * HID * HID, 0.1f), m->b_qkv = rand_floats(3 * HID, 0.1f);
    m->w_o = rand_floats((size_t)HID * HID, 0.1f), m->b_o = rand_floats(HID, 0.1f);
    m->w_1 = rand_floats((size_t)FFN * HID, 0.1f), m->b_1 = rand_floats(FFN, 0.1f);
    m->w_2 = rand_floats((size_t)HID * FFN, 0.05f), m->b_2 = rand_floats(HID, 0.1f);
    m->ln_w = rand_floats(HID, 1.0f), m->ln_b = rand_floats(HID, 0.1f);
    m->x = rand_floats(M * HID, 1.0f);
    m->qkv = rand_floats(M * 3 * HID, 0), m->q = rand_floats(M * HID, 0), m->k = rand_floats(M * HID, 0);
    m->v = rand_floats(M * HID, 0), m->ctx = rand_floats(M * HID, 0), m->attn = rand_floats(M * HID, 0);
    m->scores = rand_floats((size_t)B * HEADS * T * T, 0);
    m->h = rand_floats(M * FFN, 0), m->tmp = rand_floats(M * HID, 0);
}

static void bert_free(bert *m) {
    float *all[] = {m->w_qkv, m->b_qkv, m->w_o, m->b_o, m->w_1, m->b_1, m->w_2, m->b_2, m->ln_w, m->ln_b,
                    m->x, m->qkv, m->q, m->k, m->v, m->scores, m->ctx, m->attn, m->h, m->tmp};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) free(all[i]);
}

/* out = layers applied to in; in is left as it was. */
static void bert_forward(bert *m, float *out, const float *in, mrec_pool *pool) {
    int B = m->B, T = m->T, M = B * T;
    memcpy(out, in, sizeof(float) * M * HID);
    for (int l = 0; l < LAYERS; l++) {
        mrec_gemm_cpu(m->qkv, out, m->w_qkv, m->b_qkv, 1, 0, 0, 1, M, 3 * HID, HID, HID, HID, 3 * HID, pool);
        /* (B, T, 3, H, DH) -> three (B, H, T, DH) */
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int h = 0; h < HEADS; h++) {
                    const float *row = m->qkv + ((size_t)b * T + t) * 3 * HID + h * DH;
                    size_t dst = (((size_t)b * HEADS + h) * T + t) * DH;
                    memcpy(m->q + dst, row, DH * sizeof(float));
                    memcpy(m->k + dst, row + HID, DH * sizeof(float));
                    memcpy(m->v + dst, row + 2 * HID, DH * sizeof(float));
                }
        mrec_gemm_batched_cpu(m->scores, m->q, m->k, 0.17677669f, 0, 0, 1, B * HEADS, T, T, DH, DH, DH, T,
                              (int64_t)T * DH, (int64_t)T * DH, (int64_t)T * T, pool);
        mrec_softmax_rows_cpu(m->scores, m->scores, NULL, B * HEADS * T, T, 1, pool);
        mrec_gemm_batched_cpu(m->ctx, m->scores, m->v, 1, 0, 0, 0, B * HEADS, T, DH, T, T, DH, DH,
                              (int64_t)T * T, (int64_t)T * DH, (int64_t)T * DH, pool);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < HEADS; h++)
                for (int t = 0; t < T; t++)
                    memcpy(m->attn + ((size_t)b * T + t) * HID + h * DH, m->ctx + (((size_t)b * HEADS + h) * T + t) * DH,
                           DH * sizeof(float));
        mrec_gemm_cpu(m->tmp, m->attn, m->w_o, m->b_o, 1, 0, 0, 1, M, HID, HID, HID, HID, HID, pool);
        mrec_add_cpu(m->tmp, m->tmp, out, (int64_t)M * HID, pool);
        mrec_layernorm_cpu(out, m->tmp, m->ln_w, m->ln_b, 1e-12f, M, HID, pool);
        mrec_gemm_cpu(m->h, out, m->w_1, m->b_1, 1, 0, 0, 1, M, FFN, HID, HID, HID, FFN, pool);
        mrec_activation_cpu(m->h, m->h, MREC_ACT_GELU_ERF, 0, (int64_t)M * FFN, pool);
        mrec_gemm_cpu(m->tmp, m->h, m->w_2, m->b_2, 1, 0, 0, 1, M, HID, FFN, FFN, FFN, HID, pool);
        mrec_add_cpu(m->tmp, m->tmp, out, (int64_t)M * HID, pool);
        mrec_layernorm_cpu(out, m->tmp, m->ln_w, m->ln_b, 1e-12f, M, HID, pool);
    }
}

/* ---- LightGCN-like propagation ---- */

enum { USERS = 6000, ITEMS = 4000, PER_USER = 20, DIM = 64, BATCH = 2048 };

typedef struct {
    int64_t *row_ptr;
    int32_t *col, *ids;
    float *val, *emb, *layer_u, *layer_i, *sum, *grad, *adam_m, *adam_v, *picked;
} graph;

static void graph_init(graph *g) {
    g->row_ptr = malloc((USERS + 1) * sizeof *g->row_ptr);
    g->col = malloc((size_t)USERS * PER_USER * sizeof *g->col);
    g->ids = malloc(BATCH * sizeof *g->ids);
    CHECK(g->row_ptr && g->col && g->ids);
    for (int u = 0; u <= USERS; u++) g->row_ptr[u] = (int64_t)u * PER_USER;
    for (size_t e = 0; e < (size_t)USERS * PER_USER; e++) g->col[e] = (int32_t)((frand() + 0.5f) * (ITEMS - 1));
    for (int i = 0; i < BATCH; i++) g->ids[i] = (int32_t)((frand() + 0.5f) * (USERS + ITEMS - 1));
    g->val = rand_floats((size_t)USERS * PER_USER, 0.1f);
    g->emb = rand_floats((size_t)(USERS + ITEMS) * DIM, 0.2f);
    g->layer_u = rand_floats((size_t)USERS * DIM, 0), g->layer_i = rand_floats((size_t)ITEMS * DIM, 0);
    g->sum = rand_floats((size_t)(USERS + ITEMS) * DIM, 0), g->grad = rand_floats((size_t)(USERS + ITEMS) * DIM, 1e-3f);
    g->adam_m = rand_floats((size_t)(USERS + ITEMS) * DIM, 0), g->adam_v = rand_floats((size_t)(USERS + ITEMS) * DIM, 0);
    g->picked = rand_floats((size_t)BATCH * DIM, 0);
}

static void graph_free(graph *g) {
    free(g->row_ptr), free(g->col), free(g->ids), free(g->val), free(g->emb), free(g->layer_u), free(g->layer_i);
    free(g->sum), free(g->grad), free(g->adam_m), free(g->adam_v), free(g->picked);
}

/* One training-like step; out receives the propagated sum. */
static void graph_step(graph *g, float *param, float *out, int64_t step, mrec_pool *pool) {
    size_t n = (size_t)(USERS + ITEMS) * DIM;
    memcpy(out, param, n * sizeof(float));
    const float *eu = param, *ei = param + (size_t)USERS * DIM;
    for (int l = 0; l < 3; l++) {
        mrec_spmm_cpu(g->layer_u, g->row_ptr, g->col, g->val, ei, USERS, ITEMS, DIM, pool);
        mrec_spmm_t_cpu(g->layer_i, g->row_ptr, g->col, g->val, eu, USERS, ITEMS, DIM, pool);
        mrec_add_cpu(out, out, g->layer_u, (int64_t)USERS * DIM, pool);
        mrec_add_cpu(out + (size_t)USERS * DIM, out + (size_t)USERS * DIM, g->layer_i, (int64_t)ITEMS * DIM, pool);
        eu = g->layer_u, ei = g->layer_i;
    }
    mrec_scale_cpu(out, out, 0.25f, (int64_t)n, pool);
    CHECK(mrec_embedding_cpu(g->picked, out, g->ids, BATCH, USERS + ITEMS, DIM, pool) == MREC_OK);
    mrec_adam_cpu(param, g->adam_m, g->adam_v, g->grad, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, step, (int64_t)n, pool);
}

/* ---- the cases ---- */

typedef struct {
    const char *name;
    bert *m;
    graph *g;
    float *in, *out;
    size_t n_out;
    float *param0, *param;
} bench_case;

static void run_case(bench_case *c, mrec_pool *pool, int64_t step) {
    if (c->m) {
        bert_forward(c->m, c->out, c->in, pool);
    } else {
        memcpy(c->param, c->param0, sizeof(float) * (size_t)(USERS + ITEMS) * DIM);
        graph_step(c->g, c->param, c->out, step, pool);
    }
}

int main(int argc, char **argv) {
    int threads[16] = {1, 2}, n_threads = 2;
    if (argc > 1) {
        n_threads = 0;
        for (int a = 1; a < argc && n_threads < 16; a++) threads[n_threads++] = atoi(argv[a]);
    }
    const char *secs_env = getenv("MREC_BENCH_SECONDS");
    double seconds = secs_env ? atof(secs_env) : 2.0;
    if (!(seconds > 0)) seconds = 2.0;

    bert big, small;
    graph g;
    bert_init(&big, 4, 64);
    bert_init(&small, 1, 32);
    graph_init(&g);
    size_t n_graph = (size_t)(USERS + ITEMS) * DIM;
    bench_case cases[3] = {
        {"bert-b4-t64", &big, NULL, rand_floats((size_t)4 * 64 * HID, 1), NULL, (size_t)4 * 64 * HID, NULL, NULL},
        {"bert-b1-t32", &small, NULL, rand_floats((size_t)32 * HID, 1), NULL, (size_t)32 * HID, NULL, NULL},
        {"lightgcn", NULL, &g, NULL, NULL, n_graph, g.emb, rand_floats(n_graph, 0)},
    };
    float *expect[3];
    for (int c = 0; c < 3; c++) {
        cases[c].out = malloc(cases[c].n_out * sizeof(float));
        expect[c] = malloc(cases[c].n_out * sizeof(float));
        CHECK(cases[c].out && expect[c]);
    }
    /* the one-thread result every pool must reproduce */
    mrec_pool *ref;
    CHECK(mrec_pool_create(&ref, 1, MREC_SIMD_AVX512) == MREC_OK);
    for (int c = 0; c < 3; c++) {
        run_case(&cases[c], ref, 1);
        memcpy(expect[c], cases[c].out, cases[c].n_out * sizeof(float));
    }
    mrec_pool_destroy(ref);

    printf("bench_pool: %.1f s per case and thread count, SIMD %s\n", seconds, mrec_simd_name(mrec_simd_detect()));
    mrec_pool *pools[16];
    for (int t = 0; t < n_threads; t++) {
        CHECK(mrec_pool_create(&pools[t], threads[t], MREC_SIMD_AVX512) == MREC_OK);
        for (int c = 0; c < 3; c++) {
            run_case(&cases[c], pools[t], 1);
            if (memcmp(cases[c].out, expect[c], cases[c].n_out * sizeof(float))) {
                fprintf(stderr, "bench_pool: %s on %d threads differs from one thread\n", cases[c].name, mrec_pool_threads(pools[t]));
                return 1;
            }
        }
    }
    /* The pools take turns in slices of about 50 ms, so that a load that
     * comes and goes on the machine weighs on every thread count alike. */
    printf("%-12s", "case");
    for (int t = 0; t < n_threads; t++) printf("  %2d thr ms/iter (cpu/wall)", mrec_pool_threads(pools[t]));
    printf("\n");
    for (int c = 0; c < 3; c++) {
        double wall[16] = {0}, cpu[16] = {0};
        int iters[16] = {0};
        for (int slice = 0; slice * 0.05 < seconds; slice++)
            for (int t = 0; t < n_threads; t++) {
                double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID), elapsed = 0;
                while (elapsed < 0.05) {
                    run_case(&cases[c], pools[t], 1);
                    iters[t]++;
                    elapsed = now(CLOCK_MONOTONIC) - t0;
                }
                wall[t] += elapsed;
                cpu[t] += now(CLOCK_PROCESS_CPUTIME_ID) - c0;
            }
        printf("%-12s", cases[c].name);
        for (int t = 0; t < n_threads; t++) printf("  %14.3f (%4.2f)     ", 1e3 * wall[t] / iters[t], cpu[t] / wall[t]);
        printf("\n");
        fflush(stdout);
    }
    /* idle pools: CPU time over a quiet half second after a job */
    for (int t = 0; t < n_threads; t++) run_case(&cases[1], pools[t], 1);
    double c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    usleep(500000);
    printf("idle: %.3f ms of CPU in 500 ms for all %d pools\n", 1e3 * (now(CLOCK_PROCESS_CPUTIME_ID) - c0), n_threads);
    for (int t = 0; t < n_threads; t++) mrec_pool_destroy(pools[t]);
    for (int c = 0; c < 3; c++) free(cases[c].out), free(expect[c]), free(cases[c].in);
    free(cases[2].param);
    bert_free(&big), bert_free(&small), graph_free(&g);
    return 0;
}
