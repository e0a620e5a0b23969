/* test_backward.cpp: kernels/cuda/backward.cu's column sums on the emulator: colsum_kernel (mrec_linear_back_cuda's
 * bias gradient) and ln_back_cols_kernel (mrec_layernorm_back_cuda's weight and bias gradients), overwriting and
 * accumulating, against mrec_linear_back_cpu / mrec_layernorm_back_cpu. */
#include "emu_test.h"
static mrec_pool *pool;

/* 1e-6 absolute and relative: the sums of at most 1000 terms of magnitude under 3 in their orders agree far
 * closer; a wrong or missing term is off by far more */
static void cmp(const char *what, const float *got, const float *ref, int n) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]) / (1e-6 + 1e-6 * fabs(ref[i]));
        if (!(e <= worst)) worst = e;
    }
    t_check(worst <= 1, "%s: %.3g of 1e-6 absolute and relative", what, worst);
    if (verbose()) printf("  %s: %.3g of 1e-6\n", what, worst);
}

int main(int argc, char **argv) {
    t_suite("emu_backward");
    mrec_pool_create(&pool, 1, MREC_SIMD_SCALAR);
    int quick = quick_run(argc, argv);
    int Rs[] = {1, 31, 32, 33, 1000}, Cs[] = {1, 7, 8, 9, 768};
    for (int ri = 0; ri < 5; ri++)
        for (int ci = 0; ci < 5; ci++) {
            int R = Rs[ri], C = Cs[ci];
            if (quick && (R != 33 || C != 768)) continue;
            size_t n = (size_t)R * C;
            float *dy = (float *)malloc(4 * n), *x = (float *)malloc(4 * n), *mean = (float *)malloc(4 * R), *rstd = (float *)malloc(4 * R);
            for (size_t i = 0; i < n; i++) dy[i] = urand(-1, 1), x[i] = urand(-3, 3);
            mrec_layernorm_stats_ref(mean, rstd, x, 1e-5f, R, C);
            float *g1 = (float *)malloc(4 * C), *g2 = (float *)malloc(4 * C), *r1 = (float *)malloc(4 * C), *r2 = (float *)malloc(4 * C);
            for (int acc = 0; acc < 2; acc++) {
                char what[96];
                for (int c = 0; c < C; c++) g1[c] = r1[c] = acc ? urand(-1, 1) : NAN, g2[c] = r2[c] = acc ? urand(-1, 1) : NAN;
                mrec_linear_back_cpu(NULL, NULL, r1, dy, NULL, NULL, acc ? MREC_ACC_PARAMS : 0, R, C, 4, pool);
                int e0 = emu_errors;
                emu_reseed(11 + acc), emu_sched = acc;
                mrec_status st = mrec_linear_back_cuda(NULL, NULL, g1, dy, NULL, NULL, acc ? MREC_ACC_PARAMS : 0, R, C, 4, make_cu());
                t_check(st == MREC_OK && emu_errors == e0, "colsum: status %d, %d emulator errors", st, emu_errors - e0);
                snprintf(what, sizeof what, "colsum R %d C %d accumulate %d", R, C, acc);
                cmp(what, g1, r1, C);
                for (int c = 0; c < C; c++) g1[c] = r1[c] = acc ? urand(-1, 1) : NAN;
                mrec_layernorm_back_cpu(NULL, r1, r2, dy, x, mean, rstd, NULL, acc ? MREC_ACC_PARAMS : 0, R, C, pool);
                e0 = emu_errors;
                st = mrec_layernorm_back_cuda(NULL, g1, g2, dy, x, mean, rstd, NULL, acc ? MREC_ACC_PARAMS : 0, R, C, make_cu());
                t_check(st == MREC_OK && emu_errors == e0, "ln_back_cols: status %d, %d emulator errors", st, emu_errors - e0);
                snprintf(what, sizeof what, "ln_back_cols dw R %d C %d accumulate %d", R, C, acc);
                cmp(what, g1, r1, C);
                snprintf(what, sizeof what, "ln_back_cols db R %d C %d accumulate %d", R, C, acc);
                cmp(what, g2, r2, C);
            }
            free(dy), free(x), free(mean), free(rstd), free(g1), free(g2), free(r1), free(r2);
        }
    return t_finish();
}
