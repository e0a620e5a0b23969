/* test_attention.cpp: kernels/cuda/attention.cu on the emulator: attention_kernel (fp32), attention_tf32_kernel
 * (mma.sync tf32) against mrec_attention_cpu / mrec_attention_varlen_cpu, and attention_bf16_kernel (mma.sync
 * bf16, ldmatrix .trans, cp.async double buffering) against mrec_attention_bf16_ref; padding masks, a sequence
 * all padding, head bias, sequences end to end, head sizes 6 to 128, lengths around the 64-key tiles. */
#include "emu_test.h"
#include <functional>
static mrec_pool *pool;

/* the largest |got - ref| / (atol + rtol |ref|); NaN must meet NaN */
static double close_err(const float *got, const float *ref, int64_t n, double atol, double rtol, int64_t *at) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e;
        if (isnan(got[i]) && isnan(ref[i])) e = 0;
        else if (isnan(got[i]) || isnan(ref[i])) e = INFINITY;
        else e = fabs((double)got[i] - ref[i]) / (atol + rtol * fabs(ref[i]));
        if (e > worst) worst = e, *at = i;
    }
    return worst;
}
/* f under nsched schedules: each within the tolerance of ref, all the same bits */
static void runs(const char *what, int64_t n, const float *ref, double atol, double rtol, int nsched, const std::function<mrec_status(float *)> &f) {
    float *got = (float *)malloc(4 * n), *first = (float *)malloc(4 * n);
    auto sch = schedules(nsched);
    for (size_t s = 0; s < sch.size(); s++) {
        use_schedule(sch[s]);
        for (int64_t i = 0; i < n; i++) got[i] = -12345.0f; /* outputs left unwritten show */
        int e0 = emu_errors;
        mrec_status st = f(got);
        t_check(st == MREC_OK && emu_errors == e0, "%s (schedule %zu): status %d, %d emulator errors", what, s, st, emu_errors - e0);
        int64_t at = 0;
        double e = close_err(got, ref, n, atol, rtol, &at);
        t_check(e <= 1, "%s (schedule %zu): %.3g of the tolerance at %lld: got %.9g, reference %.9g", what, s, e, (long long)at, got[at], ref[at]);
        if (s == 0) {
            memcpy(first, got, 4 * n);
            if (verbose()) printf("  %s: %.3g of the tolerance\n", what, e);
        } else
            t_check(!memcmp(first, got, 4 * n), "%s: schedule %zu gives other bits than schedule 0", what, s);
    }
    free(got), free(first);
}

/* maskmode: 0 none, 1 sequence b keeps T - 3b keys, 2 and the last sequence all padding (NaN rows on both
 * sides), 3 and the last sequence one key */
static void dense(int B, int T, int nh, int dh, int maskmode, int nsched) {
    int H = nh * dh;
    int64_t n = (int64_t)B * T * H;
    float *q = (float *)malloc(4 * n), *k = (float *)malloc(4 * n), *v = (float *)malloc(4 * n), *hb = (float *)malloc(4 * (size_t)nh * T * T);
    float *mb = (float *)malloc(4 * (size_t)B * T), *ref = (float *)malloc(4 * n);
    for (int64_t i = 0; i < n; i++) q[i] = urand(-1, 1), k[i] = urand(-1, 1), v[i] = urand(-1, 1);
    for (int64_t i = 0; i < (int64_t)nh * T * T; i++) hb[i] = urand(-0.5f, 0.5f);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            bool keep = t < T - 3 * b;
            if (maskmode == 2 && b == B - 1) keep = false;
            if (maskmode == 3 && b == B - 1) keep = t == 0;
            mb[b * T + t] = keep ? 0.0f : -FLT_MAX;
        }
    float *scratch = (float *)malloc(sizeof(float) * mrec_attention_scratch_floats(B, T, nh, dh));
    float scale = 1.0f / sqrtf((float)dh);
    for (int bias = 0; bias < 2; bias++) {
        const float *m = maskmode ? mb : NULL, *h = bias ? hb : NULL;
        mrec_attention_cpu(ref, q, k, v, m, h, scale, B, T, nh, dh, scratch, 0, pool);
        char what[128];
        /* tests/test_cuda.c: fp32 1e-5 + 1e-4 |ref|; TF32's 10-bit mantissas 5e-3 + 5e-3 |ref| */
        snprintf(what, sizeof what, "attention fp32 B%d T%d heads %d dh %d mask %d bias %d", B, T, nh, dh, maskmode, bias);
        runs(what, n, ref, 1e-5, 1e-4, nsched, [&](float *out) { return mrec_attention_cuda(out, q, k, v, m, h, scale, B, T, nh, dh, make_cu()); });
        snprintf(what, sizeof what, "attention tf32 B%d T%d heads %d dh %d mask %d bias %d", B, T, nh, dh, maskmode, bias);
        runs(what, n, ref, 5e-3, 5e-3, nsched, [&](float *out) { return mrec_attention_tf32_cuda(out, q, k, v, m, h, scale, B, T, nh, dh, make_cu()); });
    }
    free(q), free(k), free(v), free(hb), free(mb), free(ref), free(scratch);
}

static void varlen(const int *lens, int B, int T, int nh, int dh) {
    int H = nh * dh;
    std::vector<int32_t> starts(B + 1, 0);
    for (int b = 0; b < B; b++) starts[b + 1] = starts[b] + lens[b];
    int64_t n = (int64_t)starts[B] * H;
    float *q = (float *)malloc(4 * n), *k = (float *)malloc(4 * n), *v = (float *)malloc(4 * n), *hb = (float *)malloc(4 * (size_t)nh * T * T);
    float *ref = (float *)malloc(4 * n), *scratch = (float *)malloc(sizeof(float) * mrec_attention_varlen_scratch_floats(T, nh, dh));
    for (int64_t i = 0; i < n; i++) q[i] = urand(-1, 1), k[i] = urand(-1, 1), v[i] = urand(-1, 1);
    for (int64_t i = 0; i < (int64_t)nh * T * T; i++) hb[i] = urand(-0.5f, 0.5f);
    float scale = 1.0f / sqrtf((float)dh);
    for (int bias = 0; bias < 2; bias++)
        for (int tf32 = 0; tf32 < 2; tf32++) {
            mrec_attention_varlen_cpu(ref, q, k, v, bias ? hb : NULL, scale, starts.data(), B, T, nh, dh, scratch, 0, pool);
            char what[128];
            snprintf(what, sizeof what, "attention varlen%s B%d (T %d) heads %d dh %d bias %d", tf32 ? " tf32" : "", B, T, nh, dh, bias);
            runs(what, n, ref, tf32 ? 5e-3 : 1e-5, tf32 ? 5e-3 : 1e-4, 2, [&](float *out) {
                return mrec_attention_varlen_cuda(out, q, k, v, bias ? hb : NULL, starts.data(), scale, B, T, nh, dh, tf32, make_cu());
            });
        }
    free(q), free(k), free(v), free(hb), free(ref), free(scratch);
}

/* the largest |a - b| in bf16 steps of the reference (|b| / 128) plus a floor */
static double bf16_steps(const uint16_t *x, const uint16_t *y, int64_t n, double floor, int64_t *at) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = bf2f(x[i]), b = bf2f(y[i]), e;
        if (isnan(a) && isnan(b)) e = 0;
        else e = isfinite(a) ? fabs(a - b) / (fabs(b) / 128 + floor) : INFINITY;
        if (e > worst) worst = e, *at = i;
    }
    return worst;
}

/* attention_bf16_kernel; mode: 0 plain, 1 mask, 2 mask with a sequence all masked but key 0, 3 sequences end
 * to end (starts); ldpad: 0 packed q|k|v rows, 8 padded (the 16-byte path), 3 odd (the scalar path) */
static void bf16(int B, int T, int nh, int dh, int ldpad, int mode, int bias, int nsched) {
    int H = nh * dh, ld = 3 * H + ldpad, rows = B * T;
    std::vector<int32_t> starts(B + 1, 0);
    if (mode == 3) {
        for (int b = 0; b < B; b++) starts[b + 1] = starts[b] + (T - 3 * b > 0 ? T - 3 * b : 1);
        rows = starts[B];
    }
    uint16_t *qkv = (uint16_t *)amalloc(2 * (size_t)rows * ld);
    for (int64_t i = 0; i < (int64_t)rows * ld; i++) qkv[i] = f2bf(urand(-2, 2));
    float *mb = (float *)malloc(4 * (size_t)B * T), *hb = (float *)malloc(4 * (size_t)nh * T * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            bool masked = t >= T - 3 * b;
            if (mode == 2 && b == B - 1) masked = t > 0;
            mb[b * T + t] = masked ? -FLT_MAX : 0.0f;
        }
    for (int64_t i = 0; i < (int64_t)nh * T * T; i++) hb[i] = urand(-1, 1);
    const float *mask = (mode == 1 || mode == 2) ? mb : NULL, *head = bias ? hb : NULL;
    const int32_t *st = mode == 3 ? starts.data() : NULL;
    int64_t n = (int64_t)rows * H;
    uint16_t *ref = (uint16_t *)malloc(2 * n), *got = (uint16_t *)malloc(2 * n), *first = (uint16_t *)malloc(2 * n);
    float scale = 1.0f / sqrtf((float)dh);
    mrec_attention_bf16_ref(ref, qkv, qkv + H, qkv + 2 * H, ld, mask, head, st, scale, B, T, nh, dh);
    char what[160];
    snprintf(what, sizeof what, "attention_bf16 B %d T %d heads %d dh %d ld %d (%s) mode %d bias %d", B, T, nh, dh, ld,
             (dh % 8 == 0 && ld % 8 == 0) ? "16-byte" : "scalar", mode, bias);
    auto sch = schedules(nsched);
    for (size_t s = 0; s < sch.size(); s++) {
        use_schedule(sch[s]);
        for (int64_t i = 0; i < n; i++) got[i] = 0x7fbf; /* a NaN: rows left unwritten show */
        int e0 = emu_errors;
        mrec_status r = mrec_attention_bf16_cuda(got, qkv, qkv + H, qkv + 2 * H, ld, mask, head, st, scale, B, T, nh, dh, make_cu());
        t_check(r == MREC_OK && emu_errors == e0, "%s (schedule %zu): status %d, %d emulator errors", what, s, r, emu_errors - e0);
        /* tests/test_cuda.c: a bf16 step, and 2^-8 of the largest |v| (2) for the probabilities' rounding */
        int64_t at = 0;
        double e = bf16_steps(got, ref, n, 2.0 / 256, &at);
        t_check(e <= 1, "%s (schedule %zu, cp.async mode %d): %.3g of the bound at row %lld col %lld: got %g, reference %g", what, s, sch[s].cp,
                e, (long long)(at / H), (long long)(at % H), bf2f(got[at]), bf2f(ref[at]));
        if (s == 0) {
            memcpy(first, got, 2 * n);
            if (verbose()) printf("  %s: %.3g of the bound\n", what, e);
        } else
            t_check(!memcmp(first, got, 2 * n), "%s: schedule %zu (cp.async mode %d) gives other bits than schedule 0", what, s, sch[s].cp);
    }
    free(qkv), free(mb), free(hb), free(ref), free(got), free(first);
}

int main(int argc, char **argv) {
    t_suite("emu_attention");
    mrec_pool_create(&pool, 1, MREC_SIMD_SCALAR);
    if (quick_run(argc, argv)) {
        dense(2, 65, 2, 64, 1, 2);
        bf16(2, 130, 2, 64, 0, 1, 1, 3), bf16(2, 65, 2, 32, 8, 3, 0, 3);
        return t_finish();
    }
    int Ts[] = {1, 7, 63, 64, 65, 128, 197, 200};
    int dhs[] = {64, 32, 128, 48, 6};
    for (int di = 0; di < 5; di++)
        for (int ti = 0; ti < 8; ti++) {
            int T = Ts[ti], dh = dhs[di];
            dense(T >= 128 ? 2 : 3, T, T >= 128 ? 2 : 3, dh, (ti + di) % 4, 2);
        }
    dense(4, 33, 12, 32, 2, 2);
    int lens[5] = {1, 37, 64, 65, 128};
    varlen(lens, 5, 128, 2, 64);
    int lens2[4] = {7, 200, 1, 129};
    varlen(lens2, 4, 200, 2, 48);

    int dhs16[] = {64, 32, 128, 48, 80, 6};
    for (int di = 0; di < 6; di++)
        for (int ti = 0; ti < 8; ti++) {
            int dh = dhs16[di], T = Ts[ti];
            int nh = T >= 128 ? 2 : (di == 0 ? 12 : 3), B = T >= 197 ? 2 : 3;
            int mode = (ti + di) % 4, bias = (ti + di) % 2, ldpad = ti % 3 == 0 ? 0 : ti % 3 == 1 ? 8 : 3;
            bf16(B, T, nh, dh, ldpad, mode, bias, T >= 128 ? 2 : 3);
            if (T == 200 || T == 65) bf16(B, T, nh, dh, 0, 2, 1, 2); /* the sequence all masked but one key */
        }
    return t_finish();
}
