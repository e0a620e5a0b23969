/* test_ops.cpp: kernels/cuda/ops.cu's LayerNorms (warp-per-row and block forms, fp32 and bf16 outputs, with the
 * residual add, in place) against mrec_layernorm_bf16_ref, top-k (topk_filter_kernel, topk32_kernel,
 * topk_kernel) against mrec_topk_rows_ref's lists (ties, NaN, -inf, a filter whose candidates overflow), and
 * mrec_gram_topk_cuda's unit_rows_kernel (through tests/emu/statics.h: the rest of it is cuBLAS's) against
 * mrec_unit_rows_ref bit for bit, as ops.cu claims (zero rows, tiny and huge values). */
#include "emu_test.h"
#include "statics.h"

static void layernorm(int R, int C, int with_b, int inplace, int wb) {
    size_t n = (size_t)R * C;
    float *a = (float *)amalloc(4 * n), *b = (float *)amalloc(4 * n), *w = (float *)amalloc(4 * C), *bias = (float *)amalloc(4 * C);
    float *ref = (float *)malloc(4 * n), *out = (float *)amalloc(4 * n), *acopy = (float *)amalloc(4 * n);
    uint16_t *ref16 = (uint16_t *)malloc(2 * n), *out16 = (uint16_t *)amalloc(2 * n);
    for (size_t i = 0; i < n; i++) a[i] = urand(-3, 3), b[i] = urand(-1, 1);
    for (int c = 0; c < C; c++) w[c] = urand(0.5f, 1.5f), bias[c] = urand(-1, 1);
    const float *W = wb ? w : NULL, *Bi = wb ? bias : NULL;
    mrec_layernorm_bf16_ref(ref, ref16, a, with_b ? b : NULL, W, Bi, 1e-5f, R, C);
    const char *form = C % 128 == 0 && C <= 1024 ? "warp" : "block";
    for (int bf = 0; bf < 2; bf++) {
        float *src = a, *dst = out;
        if (inplace) memcpy(acopy, a, 4 * n), src = dst = acopy;
        int e0 = emu_errors;
        emu_reseed(77 + bf), emu_sched = bf; /* the two forms under the two policies */
        mrec_status st;
        if (bf) st = mrec_layernorm_bf16_cuda(dst, out16, src, with_b ? b : NULL, W, Bi, 1e-5f, R, C, make_cu());
        else if (with_b) st = mrec_add_layernorm_cuda(dst, src, b, W, Bi, 1e-5f, R, C, make_cu());
        else st = mrec_layernorm_cuda(dst, src, W, Bi, 1e-5f, R, C, make_cu());
        t_check(st == MREC_OK && emu_errors == e0, "layernorm: status %d, %d emulator errors", st, emu_errors - e0);
        /* tests/test_cuda.c: fp32 1e-5 + 1e-5 |ref|; bf16 within one step, floor 1e-4 */
        double worst = 0, worst16 = 0;
        for (size_t i = 0; i < n; i++) {
            double e = fabs(dst[i] - ref[i]) / (1e-5 + 1e-5 * fabs(ref[i]));
            if (!(e <= worst)) worst = e;
            if (bf) {
                double x = bf2f(out16[i]), y = bf2f(ref16[i]), e16 = fabs(x - y) / (fabs(y) / 128 + 1e-4);
                if (!(e16 <= worst16)) worst16 = e16;
            }
        }
        t_check(worst <= 1 && worst16 <= 1, "layernorm%s R %d C %d add %d in place %d affine %d (%s form): fp32 %.3g, bf16 %.3g of the bounds",
                bf ? "_bf16" : "", R, C, with_b, inplace, wb, form, worst, worst16);
        if (verbose()) printf("  layernorm%s R %d C %d add %d in place %d affine %d (%s form): fp32 %.3g, bf16 %.3g of the bounds\n",
                              bf ? "_bf16" : "", R, C, with_b, inplace, wb, form, worst, worst16);
    }
    free(a), free(b), free(w), free(bias), free(ref), free(out), free(acopy), free(ref16), free(out16);
}

/* kind: 0 uniform, 1 many ties, 2 NaNs (last), 3 -inf (masked), 4 all tied, 5 the filter's candidates overflow
 * (thread 0's columns beat all others), 6 all NaN */
static void topk(int R, int C, int k, int kind) {
    size_t n = (size_t)R * C;
    float *s = (float *)malloc(4 * n);
    for (size_t i = 0; i < n; i++) {
        float v = urand(-1, 1);
        if (kind == 1) v = (float)(int)(v * 4);
        if (kind == 2 && rand_u64() % 7 == 0) v = NAN;
        if (kind == 3 && rand_u64() % 3 == 0) v = -INFINITY;
        if (kind == 4) v = 1.0f;
        if (kind == 6) v = NAN;
        s[i] = v;
    }
    if (kind == 5)
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) s[(size_t)r * C + c] = c % 256 == 0 ? 10.0f + urand(0, 1) : urand(-1, 1);
    int32_t *ri = (int32_t *)malloc(4 * R * k), *gi = (int32_t *)malloc(4 * R * k);
    float *rv = (float *)malloc(4 * R * k), *gv = (float *)malloc(4 * R * k);
    mrec_topk_rows_ref(ri, rv, s, R, C, k);
    const char *kern = k <= 32 && C >= 256 ? "topk_filter" : k <= 32 ? "topk32" : "topk";
    for (int sc = 0; sc < 2; sc++) {
        emu_reseed(500 + sc), emu_sched = sc;
        for (int i = 0; i < R * k; i++) gi[i] = -7, gv[i] = -7;
        int e0 = emu_errors;
        mrec_status st = mrec_topk_rows_cuda(gi, gv, s, R, C, k, make_cu());
        t_check(st == MREC_OK && emu_errors == e0, "topk: status %d, %d emulator errors", st, emu_errors - e0);
        /* tests/test_cuda.c: the reference's columns and values, in order */
        int bad = 0, first = -1;
        for (int i = 0; i < R * k; i++)
            if (gi[i] != ri[i] || memcmp(&gv[i], &rv[i], 4)) bad += first < 0 ? (first = i, 1) : 1;
        int f = first < 0 ? 0 : first;
        t_check(bad == 0, "topk %s R %d C %d k %d kind %d: %d of %d entries differ (first at row %d rank %d: got %d %g, reference %d %g)", kern, R, C,
                k, kind, bad, R * k, f / k, f % k, gi[f], gv[f], ri[f], rv[f]);
    }
    free(s), free(ri), free(gi), free(rv), free(gv);
}

/* kind: 0 uniform, 1 every third row zero and one row of a single tiny value, 2 huge values (squares past fp32) */
static void unit_rows(int n, int dim, int kind) {
    size_t len = (size_t)n * dim;
    std::vector<float> x(len), ref(len);
    float *got = (float *)amalloc(4 * len);
    for (size_t i = 0; i < len; i++) x[i] = kind == 2 ? urand(-3e30f, 3e30f) : urand(-1, 1);
    if (kind == 1) {
        for (int r = 0; r < n; r += 3)
            for (int d = 0; d < dim; d++) x[(size_t)r * dim + d] = 0.0f;
        if (n > 1) {
            for (int d = 0; d < dim; d++) x[(size_t)dim + d] = 0.0f;
            x[(size_t)dim + dim / 2] = -3e-39f; /* a subnormal alone (its inverse norm still a float) */
        }
    }
    mrec_unit_rows_ref(ref.data(), x.data(), n, dim);
    char what[96];
    snprintf(what, sizeof what, "unit_rows n %d dim %d kind %d", n, dim, kind);
    if (under_schedules(what, 2, got, 4 * len, [&] {
            memcpy(got, x.data(), 4 * len);
            return emu_unit_rows(got, n, dim, make_cu());
        }))
        same_floats(what, got, ref.data(), len);
    free(got);
}

int main(int argc, char **argv) {
    t_suite("emu_ops");
    if (quick_run(argc, argv)) {
        layernorm(13, 768, 1, 0, 1), layernorm(5, 1000, 1, 1, 1);
        topk(3, 1000, 10, 1), topk(3, 100, 20, 2), topk(2, 300, 100, 0);
        unit_rows(7, 100, 1);
        return t_finish();
    }
    int Cs[] = {384, 512, 768, 1024, 128, 37, 1000, 1152};
    for (int ci = 0; ci < 8; ci++)
        for (int v = 0; v < 4; v++) layernorm(ci < 4 ? 13 : 5, Cs[ci], v & 1, v == 3, v != 1);
    int Cs2[] = {5, 100, 255, 256, 257, 1000, 5000};
    int ks[] = {1, 10, 20, 32, 33, 100, 128};
    for (int ci = 0; ci < 7; ci++)
        for (int ki = 0; ki < 7; ki++) {
            if (ks[ki] > Cs2[ci]) continue;
            for (int kind = 0; kind < 5; kind++) topk(3, Cs2[ci], ks[ki], kind);
            if (ci == 5) topk(2, Cs2[ci], ks[ki], 6);
        }
    topk(1, 256 * 1100, 10, 5), topk(1, 256 * 1100, 32, 5);
    int ns[] = {1, 7, 9, 257}, dims[] = {1, 31, 32, 33, 64, 384, 4096};
    for (int ni = 0; ni < 4; ni++)
        for (int di = 0; di < 7; di++)
            for (int kind = 0; kind < 3; kind++) unit_rows(ns[ni], dims[di], kind);
    int32_t i1;
    float v1, s1 = 0;
    t_check(mrec_topk_rows_cuda(&i1, &v1, &s1, 1, 1000, 129, make_cu()) == MREC_ERR_UNSUPPORTED, "topk: k above 128 is refused");
    return t_finish();
}
