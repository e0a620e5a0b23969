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
 */
#include "../kernels/mrec_kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int main(void) {
    if (mrec_cuda_create(&cu, 0) != MREC_OK) {
        printf("bench_gpu_ops: no GPU (%s); nothing to measure\n", mrec_error_detail());
        return 0;
    }
    uint64_t seed = 7;
    result res[24];
    int n = 0;

    /* BERT-base at batch 32, sequence 128: rows of 768, attention rows of 128. */
    int R = 32 * 128, C = 768, H = 12, T = 128, I = 3072;
    float *x = dev_random((size_t)R * I, -2, 2, &seed), *y = dev_random((size_t)R * I, 0, 1, &seed);
    float *w = dev_random(C, 0.5f, 1.5f, &seed), *b = dev_random(C, -1, 1, &seed);
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

    const char *py = getenv("MREC_PYTHON") ? getenv("MREC_PYTHON") : "python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s bench/peers/gpu_ops_peer.py %d 2>/dev/null", py, REPS);
    FILE *p = popen(cmd, "r");
    double peer[24] = {0};
    char line[256];
    for (int i = 0; p && i < n && fgets(line, sizeof line, p); i++) peer[i] = atof(line);
    if (p) pclose(p);

    printf("GPU ops, mean of %d calls each (PyTorch: bench/peers/gpu_ops_peer.py, same shapes)\n", REPS);
    printf("%-52s %10s %10s %10s %10s %8s\n", "op", "mrec us", "GB/s", "GFLOP/s", "torch us", "ratio");
    for (int i = 0; i < n; i++) {
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
    return 0;
}
