/* test_spmm.cpp: kernels/cuda/ops.cu's sparse products (spmm_kernel, spmm_vec4_kernel, through
 * mrec_spmm_sum_cuda) on the emulator: against mrec_spmm_ref within tests/test_cuda.c's bounds, against the
 * bits of the order the kernels document (a fused multiply-add chain in entry order; a row of more than 8 G
 * entries split into THREADS / G runs added in run order), the same bits under every schedule, and the layer
 * sum (total = (total_in + out) * scale) bit for bit, in place too. */
#include "emu_test.h"
#include <string>

/* the vector form's plan as ops.cu makes it: G lanes a row, CH float4 slices a lane; 0 for the general form */
static int plan(int D, const void *a, const void *b, const void *c, const void *d, int *G) {
    if (D % 4 || ((uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d) % 16) return 0;
    int D4 = D / 4, g = 4;
    while (g < 32 && g < D4) g *= 2;
    int ch = (D4 + g - 1) / g;
    if (ch > 4) return 0;
    *G = g;
    return ch;
}
/* the vector form's documented order, on the host */
static void model(float *out, const int64_t *rp, const int32_t *col, const float *val, const float *X, int R, int D, int G) {
    int ROWS = 256 / G, LONG = 8 * G; /* ops.cu's THREADS is 256 */
    for (int r = 0; r < R; r++)
        for (int d = 0; d < D; d++) {
            int64_t lo = rp[r], hi = rp[r + 1];
            auto run = [&](int64_t a, int64_t b) {
                float s = 0.0f;
                for (int64_t e = a; e < b; e++) s = fmaf(val ? val[e] : 1.0f, X[(size_t)col[e] * D + d], s);
                return s;
            };
            if (hi - lo <= LONG) out[(size_t)r * D + d] = run(lo, hi);
            else {
                int64_t len = (hi - lo + ROWS - 1) / ROWS;
                float t = 0;
                for (int g = 0; g < ROWS; g++) {
                    int64_t a = lo + g * len < hi ? lo + g * len : hi, b = a + len < hi ? a + len : hi;
                    float u = run(a, b);
                    t = g == 0 ? u : t + u;
                }
                out[(size_t)r * D + d] = t;
            }
        }
}

int main(int argc, char **argv) {
    t_suite("emu_spmm");
    int quick = quick_run(argc, argv);
    int Cc = 1500;
    int degs[] = {0, 1, 5, 8, 33, 128, 129, 700, 1415, 0, 31, 32, 256, 257, 65, 64, 17, 3};
    int nd = sizeof degs / sizeof *degs, R = nd + 40;
    std::vector<int64_t> rp(R + 1, 0);
    for (int r = 0; r < R; r++) rp[r + 1] = rp[r] + (r < nd ? degs[r] : (int)(rand_u64() % 40));
    int64_t nnz = rp[R];
    std::vector<int32_t> col(nnz);
    std::vector<float> val(nnz);
    for (int64_t e = 0; e < nnz; e++) col[e] = (int32_t)(rand_u64() % Cc), val[e] = urand(-1, 1);
    int widths[] = {1, 3, 4, 8, 12, 16, 32, 64, 100, 128, 200, 256, 384, 512, 516, 64};
    int nw = sizeof widths / sizeof *widths;
    for (int wi = 0; wi < nw; wi++) {
        int D = widths[wi], shifted = wi == nw - 1; /* the last: X one float off its alignment (the general form) */
        if (quick && D != 64 && D != 100) continue;
        size_t nx = (size_t)Cc * D + 1, no = (size_t)R * D;
        float *Xb = (float *)amalloc(4 * nx), *X = Xb + shifted;
        for (size_t i = 0; i < nx; i++) Xb[i] = urand(-1, 1);
        float *out = (float *)amalloc(4 * no), *ref = (float *)malloc(4 * no), *mod = (float *)malloc(4 * no);
        float *tin = (float *)amalloc(4 * no), *tot = (float *)amalloc(4 * no), *first = (float *)malloc(4 * no);
        double *tol = (double *)malloc(sizeof(double) * no);
        for (int weighted = 0; weighted < 2; weighted++) {
            const float *v = weighted ? val.data() : NULL;
            int G = 0, ch = plan(D, out, X, tot, tin, &G);
            char what[128];
            snprintf(what, sizeof what, "spmm D %d%s %s (%s)", D, shifted ? " X unaligned" : "", weighted ? "weighted" : "pattern",
                     ch ? (std::string("vec4 G=") + std::to_string(G) + " CH=" + std::to_string(ch == 3 ? 4 : ch)).c_str() : "general");
            mrec_spmm_ref(ref, rp.data(), col.data(), v, X, R, Cc, D);
            if (ch) model(mod, rp.data(), col.data(), v, X, R, D, G);
            /* tests/test_cuda.c's spmm_bounds: 1e-5 absolute and relative, and 3.5 standard deviations of another
             * order's rounding, 2^-24 sqrt(deg) of the terms' magnitudes */
            for (int r = 0; r < R; r++)
                for (int d = 0; d < D; d++) {
                    double mag = 0;
                    for (int64_t e = rp[r]; e < rp[r + 1]; e++) mag += fabs((v ? v[e] : 1.0) * X[(size_t)col[e] * D + d]);
                    size_t i = (size_t)r * D + d;
                    tol[i] = 1e-5 + 1e-5 * fabs(ref[i]) + 3.5 * ldexp(1.0, -24) * sqrt((double)(rp[r + 1] - rp[r])) * mag;
                }
            auto sch = schedules(2);
            for (size_t s = 0; s < sch.size(); s++) {
                use_schedule(sch[s]);
                for (size_t i = 0; i < no; i++) tin[i] = urand(-1, 1), out[i] = NAN, tot[i] = NAN;
                int e0 = emu_errors;
                mrec_status st = mrec_spmm_sum_cuda(out, tot, tin, 0.25f, rp.data(), col.data(), v, X, R, Cc, D, make_cu());
                t_check(st == MREC_OK && emu_errors == e0, "%s: status %d, %d emulator errors", what, st, emu_errors - e0);
                double worst = 0;
                int64_t at = 0, mod_diff = 0, tot_bad = 0;
                for (size_t i = 0; i < no; i++) {
                    double e = isnan(out[i]) ? INFINITY : fabs(out[i] - ref[i]) / tol[i];
                    if (e > worst) worst = e, at = (int64_t)i;
                    if (ch && memcmp(&out[i], &mod[i], 4)) mod_diff++;
                    float want = (tin[i] + out[i]) * 0.25f;
                    if (memcmp(&tot[i], &want, 4)) tot_bad++;
                }
                t_check(worst <= 1, "%s: %.3g of the bound at row %lld col %lld (got %.9g, reference %.9g)", what, worst, (long long)(at / D),
                        (long long)(at % D), out[at], ref[at]);
                t_check(tot_bad == 0, "%s: %lld layer-sum outputs not (total_in + out) * scale", what, (long long)tot_bad);
                if (ch) t_check(mod_diff == 0, "%s: %lld outputs differ from the documented order's bits", what, (long long)mod_diff);
                if (s == 0) {
                    memcpy(first, out, 4 * no);
                    if (verbose()) printf("  %s: %.3g of the bound\n", what, worst);
                } else
                    t_check(!memcmp(first, out, 4 * no), "%s: schedule %zu gives other bits than schedule 0", what, s);
            }
            /* in place: total and total_in the same array */
            emu_reseed(5);
            for (size_t i = 0; i < no; i++) tin[i] = urand(-1, 1);
            memcpy(tot, tin, 4 * no);
            mrec_spmm_sum_cuda(out, tot, tot, 0.25f, rp.data(), col.data(), v, X, R, Cc, D, make_cu());
            int64_t bad = 0;
            for (size_t i = 0; i < no; i++) {
                float w = (tin[i] + out[i]) * 0.25f;
                bad += memcmp(&w, &tot[i], 4) != 0;
            }
            t_check(bad == 0 && !memcmp(first, out, 4 * no), "%s: in place, %lld layer-sum outputs wrong, or other product bits", what, (long long)bad);
        }
        free(Xb), free(out), free(ref), free(mod), free(tin), free(tot), free(first), free(tol);
    }
    return t_finish();
}
