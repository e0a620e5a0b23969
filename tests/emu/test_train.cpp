/* test_train.cpp: kernels/cuda/train.cu's training helpers and ops.cu's Adam on the emulator, each against its
 * CPU twin: bit for bit where the project promises the same bits on every device (Philox dropout, hashed
 * dropout, sign noise, Adam with its factors as values and read from device memory, the index CSR behind the
 * deterministic scatter-add, for ids checked on the device and by the caller, the padded InfoNCE against the
 * plain one), else with tests/test_cuda_train.c's tolerances (Gumbel noise one ulp, softmax cross-entropy
 * 1e-6 + 1e-5 |ref| and its losses 1e-9 + 1e-6 |ref|) or a double's (the loss sums in a fixed tree). Each case
 * runs under two schedules (random, warp priority) that must give the same bits. These kernels use the
 * explicit __fmaf_rn / __fmul_rn / __fadd_rn intrinsics where their bits are promised, so no contraction is
 * modelled here (cuda_emu.h, Limits). */
#include "emu_test.h"
#include <algorithm>
#include <functional>
static mrec_pool *pool;

/* f under two schedules (emu_test.h's under_schedules): the same bytes [p, p + n) from both */
static bool twice(const char *what, void *p, size_t n, const std::function<mrec_status()> &f) { return under_schedules(what, 2, p, n, f); }
static void same_bits(const char *what, const void *got, const void *ref, size_t n) {
    t_check(!memcmp(got, ref, n), "%s: not the CPU's bits", what);
}

static void dropouts(int64_t n) {
    std::vector<float> x(n), ref(n), got(n);
    std::vector<int32_t> idx(n);
    for (int64_t i = 0; i < n; i++) x[i] = urand(-2, 2), idx[i] = (int32_t)(rand_u64() % 100000);
    char what[96];
    float ps[] = {0.0f, 0.1f, 0.5f};
    for (float p : ps) {
        snprintf(what, sizeof what, "dropout (Philox) n %lld p %g", (long long)n, p);
        mrec_dropout_ref(ref.data(), x.data(), p, 1234, 77, n);
        if (twice(what, got.data(), 4 * n, [&] { return mrec_dropout_cuda(got.data(), x.data(), p, 1234, 77, n, make_cu()); }))
            same_bits(what, got.data(), ref.data(), 4 * n);
        for (int form = 0; form < 3; form++) { /* values, the mask (x NULL), renumbered by idx */
            const float *xs = form == 1 ? NULL : x.data();
            const int32_t *is = form == 2 ? idx.data() : NULL;
            snprintf(what, sizeof what, "hash dropout n %lld p %g form %d", (long long)n, p, form);
            mrec_hash_dropout_ref(ref.data(), xs, is, n, p, 99);
            if (twice(what, got.data(), 4 * n, [&] { return mrec_hash_dropout_cuda(got.data(), xs, is, n, p, 99, make_cu()); }))
                same_bits(what, got.data(), ref.data(), 4 * n);
        }
    }
}

static void noises(int R, int C) {
    size_t n = (size_t)R * C;
    std::vector<float> x(n), u(n), ref(n), got(n);
    for (size_t i = 0; i < n; i++) x[i] = (i % 7 == 0) ? 0.0f : urand(-1, 1), u[i] = urand(0, 1);
    char what[96];
    for (int hashed = 0; hashed < 2; hashed++) {
        snprintf(what, sizeof what, "sign noise %d x %d (%s)", R, C, hashed ? "hash stream" : "given draws");
        const float *us = hashed ? NULL : u.data();
        ref = x;
        mrec_sign_noise_ref(ref.data(), us, 0.1f, 5, 1000, R, C);
        if (twice(what, got.data(), 4 * n, [&] {
                got = x;
                return mrec_sign_noise_cuda(got.data(), us, 0.1f, 5, 1000, R, C, make_cu());
            }))
            same_bits(what, got.data(), ref.data(), 4 * n);
    }
    snprintf(what, sizeof what, "Gumbel noise n %zu", n);
    mrec_gumbel_noise_ref(ref.data(), 31, (int64_t)n);
    if (twice(what, got.data(), 4 * n, [&] { return mrec_gumbel_noise_cuda(got.data(), 31, (int64_t)n, make_cu()); })) {
        double worst = 0; /* tests/test_cuda_train.c: one ulp (the GPU's double log is within an ulp of libm's) */
        for (size_t e = 0; e < n; e++) worst = fmax(worst, fabs((double)got[e] - ref[e]) / fmax(fabs((double)ref[e]) * FLT_EPSILON, FLT_MIN));
        t_check(worst <= 1, "%s: %.2f ulp from the reference", what, worst);
    }
}

/* mrec_adam_cuda (the factors as values) and mrec_adam_at_cuda (the factors read from k in device memory, sent
 * before each step as a replayed graph's step takes them) side by side over the same steps: each the bits of
 * mrec_adam_cpu, as ops.cu claims, and of each other; mrec_adam_at_cpu the same bits as mrec_adam_cpu */
static void adam(int64_t n, int shift, int64_t first_step) {
    size_t bytes = 4 * (size_t)(n + 4);
    float *p0 = (float *)amalloc(bytes), *m0 = (float *)amalloc(bytes), *v0 = (float *)amalloc(bytes), *g = (float *)amalloc(bytes);
    float *q0 = (float *)amalloc(bytes), *mq0 = (float *)amalloc(bytes), *vq0 = (float *)amalloc(bytes), *k = (float *)amalloc(8);
    float *p = p0 + shift, *m = m0 + shift, *v = v0 + shift; /* shift: the scalar path */
    float *q = q0 + shift, *mq = mq0 + shift, *vq = vq0 + shift;
    std::vector<float> rp(n), rm(n), rv(n), ap(n), am(n), av(n);
    for (int64_t i = 0; i < n; i++) {
        p[i] = q[i] = rp[i] = ap[i] = urand(-1, 1), m[i] = mq[i] = rm[i] = am[i] = urand(-0.1f, 0.1f);
        v[i] = vq[i] = rv[i] = av[i] = urand(0, 0.01f), g[i] = urand(-1, 1);
    }
    char what[96];
    for (int64_t step = first_step; step < first_step + 3; step++) {
        mrec_adam_cpu(rp.data(), rm.data(), rv.data(), g, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, step, n, pool);
        mrec_adam_factors(k, 1e-3f, 0.9f, 0.999f, step);
        mrec_adam_at_cpu(ap.data(), am.data(), av.data(), g, k, 0.9f, 0.999f, 1e-8f, 1e-4f, n, pool);
        snprintf(what, sizeof what, "adam n %lld%s step %lld", (long long)n, shift ? " unaligned" : "", (long long)step);
        t_check(rp == ap && rm == am && rv == av, "%s: mrec_adam_at_cpu not mrec_adam_cpu's bits", what);
        for (int at = 0; at < 2; at++) {
            emu_reseed(40 + step), emu_sched = at;
            int e0 = emu_errors;
            mrec_status st = at ? mrec_adam_at_cuda(q, mq, vq, g, k, 0.9f, 0.999f, 1e-8f, 1e-4f, n, make_cu())
                                : mrec_adam_cuda(p, m, v, g, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, step, n, make_cu());
            t_check(st == MREC_OK && emu_errors == e0, "%s%s: status %d, %d emulator errors", what, at ? " (factors in memory)" : "", st, emu_errors - e0);
        }
        t_check(!memcmp(p, rp.data(), 4 * n) && !memcmp(m, rm.data(), 4 * n) && !memcmp(v, rv.data(), 4 * n), "%s: not mrec_adam_cpu's bits", what);
        t_check(!memcmp(q, rp.data(), 4 * n) && !memcmp(mq, rm.data(), 4 * n) && !memcmp(vq, rv.data(), 4 * n),
                "%s, factors in memory: not mrec_adam_cpu's bits", what);
        t_check(!memcmp(q, p, 4 * n) && !memcmp(mq, m, 4 * n) && !memcmp(vq, v, 4 * n), "%s: the two GPU forms differ", what);
    }
    free(p0), free(m0), free(v0), free(g), free(q0), free(mq0), free(vq0), free(k);
}

static void xent(int R, int C, int diagonal) {
    size_t n = (size_t)R * C;
    std::vector<float> s(n), ref(n), got(n);
    std::vector<double> lref(R), lgot(R);
    std::vector<int32_t> target(R);
    for (size_t i = 0; i < n; i++) s[i] = urand(-5, 5);
    for (int r = 0; r < R; r++) target[r] = (int32_t)(rand_u64() % C);
    const int32_t *t = diagonal ? NULL : target.data();
    mrec_softmax_xent_rows_ref(ref.data(), lref.data(), s.data(), t, 0.5f, R, C);
    char what[96];
    snprintf(what, sizeof what, "softmax_xent_rows %d x %d (%s)", R, C, diagonal ? "diagonal" : "targets");
    /* the diagonal form in place (g = s), as InfoNCE calls it */
    if (!twice(what, got.data(), 4 * n, [&] {
            const float *in = s.data();
            if (diagonal) got = s, in = got.data();
            return mrec_softmax_xent_rows_cuda(got.data(), lgot.data(), in, t, 0.5f, R, C, make_cu());
        }))
        return;
    double wg = 0, wl = 0;
    for (size_t i = 0; i < n; i++) wg = fmax(wg, fabs((double)got[i] - ref[i]) / (1e-6 + 1e-5 * fabs(ref[i])));
    for (int r = 0; r < R; r++) wl = fmax(wl, fabs(lgot[r] - lref[r]) / (1e-9 + 1e-6 * fabs(lref[r])));
    t_check(wg <= 1 && wl <= 1, "%s: gradient %.3g, losses %.3g of the bounds", what, wg, wl);
    if (!diagonal || R != C) return;
    /* padded: a (K, K) problem of which the first live rows and columns are the (live, live) one */
    int live = R - 5;
    float alpha = 0.5f;
    std::vector<float> sub((size_t)live * live), gsub((size_t)live * live), gat(n);
    std::vector<double> lsub(live), lat(R);
    for (int r = 0; r < live; r++)
        for (int c = 0; c < live; c++) sub[(size_t)r * live + c] = s[(size_t)r * C + c];
    snprintf(what, sizeof what, "softmax_xent_rows_at %d of %d", live, R);
    if (!twice(what, gat.data(), 4 * n, [&] {
            return mrec_softmax_xent_rows_at_cuda(gat.data(), lat.data(), s.data(), &alpha, &live, R, C, make_cu());
        }))
        return;
    emu_reseed(3);
    t_check(mrec_softmax_xent_rows_cuda(gsub.data(), lsub.data(), sub.data(), NULL, alpha, live, live, make_cu()) == MREC_OK, "%s: the plain one", what);
    bool same = true;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            float want = r < live && c < live ? gsub[(size_t)r * live + c] : 0.0f;
            same &= !memcmp(&gat[(size_t)r * C + c], &want, 4);
        }
    for (int r = 0; r < R; r++) {
        double want = r < live ? lsub[r] : 0.0;
        same &= !memcmp(&lat[r], &want, 8);
    }
    t_check(same, "%s: not the bits of the plain one over the live problem, zeros elsewhere", what);
}

static void losses(int64_t n) {
    std::vector<float> x(n), y(n);
    for (int64_t i = 0; i < n; i++) x[i] = urand(-1, 1), y[i] = urand(-1, 1);
    double ref = 0.25, got = 0.25;
    mrec_loss_dot_cpu(&ref, x.data(), y.data(), n, 0.5f, 3.0);
    char what[96];
    snprintf(what, sizeof what, "loss_dot n %lld", (long long)n);
    /* products and sums in double in a fixed tree against in order: a few ulps of a double */
    if (twice(what, &got, 8, [&] {
            got = 0.25;
            return mrec_loss_dot_cuda(&got, x.data(), y.data(), n, 0.5f, 3.0, make_cu());
        }))
        t_check(fabs(got - ref) <= 1e-12 * fabs(ref) + 1e-15, "%s: %.17g, the CPU %.17g", what, got, ref);
    /* moment alignment: 4 tables' column sums (8, W) */
    int W = 37;
    int64_t rows = 50;
    std::vector<float> sums(8 * W), sref, alpha(4), aref(4);
    for (int a = 0; a < 4; a++)
        for (int c = 0; c < W; c++) {
            double S = 0, Q = 0;
            for (int64_t r = 0; r < rows; r++) {
                float e = urand(-1, 1) * (1 + a);
                S += e, Q += (double)e * e;
            }
            sums[(2 * a) * W + c] = (float)S, sums[(2 * a + 1) * W + c] = (float)Q;
        }
    sref = sums;
    double lr = 0, lg = 0;
    mrec_moment_align_cpu(aref.data(), sref.data(), &lr, W, rows * W, 0.3f);
    std::vector<float> work;
    snprintf(what, sizeof what, "moment_align W %d", W);
    if (twice(what, sums.data(), 4 * sums.size(), [&] {
            work = sums;
            lg = 0;
            mrec_status st = mrec_moment_align_cuda(alpha.data(), work.data(), &lg, W, rows * W, 0.3f, make_cu());
            return st;
        })) {
        double worst = 0; /* each row's sum in a fixed tree against in order, in double: float results within an ulp or two */
        for (int a = 0; a < 4; a++) worst = fmax(worst, fabs((double)alpha[a] - aref[a]) / (1e-12 + 1e-6 * fabs(aref[a])));
        for (int i = 0; i < 4 * W; i++) worst = fmax(worst, fabs((double)work[i] - sref[i]) / (1e-12 + 1e-6 * fabs(sref[i])));
        worst = fmax(worst, fabs(lg - lr) / (1e-15 + 1e-9 * fabs(lr)));
        t_check(worst <= 1, "%s: %.3g of the bounds (alpha, the rows' gradients, the loss)", what, worst);
    }
}

/* the index CSR (a stable sort; the deterministic scatter-add's order) against mrec_index_csr_ref */
static void index_csr(int N, int V) {
    std::vector<int32_t> ids(N), pos(N), rpos(N);
    std::vector<int64_t> rp(V + 1), rrp(V + 1);
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(rand_u64() % V);
    mrec_index_csr_ref(rrp.data(), rpos.data(), ids.data(), N, V);
    size_t bytes = 0;
    mrec_index_csr_workspace_bytes_cuda(&bytes, N, V);
    std::vector<unsigned char> work(bytes);
    char what[64];
    for (int checked = 0; checked < 2; checked++) {
        snprintf(what, sizeof what, "index_csr%s N %d V %d", checked ? "_checked" : "", N, V);
        if (twice(what, pos.data(), 4 * N, [&] {
                std::fill(rp.begin(), rp.end(), -1), std::fill(pos.begin(), pos.end(), -1);
                return checked ? mrec_index_csr_checked_cuda(rp.data(), pos.data(), ids.data(), N, V, work.data(), bytes, make_cu())
                               : mrec_index_csr_cuda(rp.data(), pos.data(), ids.data(), N, V, work.data(), bytes, make_cu());
            }))
            t_check(rp == rrp && pos == rpos, "%s: not the reference's rows", what);
    }
    if (N == 0) return;
    ids[N / 2] = V; /* a bad id is refused */
    emu_reseed(9);
    t_check(mrec_index_csr_cuda(rp.data(), pos.data(), ids.data(), N, V, work.data(), bytes, make_cu()) == MREC_ERR_ARG, "%s: an id out of range refused", what);
}

int main(int argc, char **argv) {
    t_suite("emu_train");
    mrec_pool_create(&pool, 1, MREC_SIMD_SCALAR);
    int quick = quick_run(argc, argv);
    dropouts(quick ? 1000 : 10007);
    noises(13, quick ? 7 : 64);
    adam(quick ? 1001 : 10007, 0, 1), adam(1003, 1, 1);
    if (!quick) {
        int64_t ns[] = {1, 3, 4, 5, 255, 256, 257, 1023, 1024};
        for (int64_t n : ns) adam(n, 0, n % 2 ? 1 : 1000), adam(n, 1, 7);
        adam(768 * 3072 / 8, 0, 2); /* a slice of an encoder layer's weight */
    }
    xent(37, 37, 1), xent(20, 300, 0);
    if (!quick) xent(64, 64, 1), xent(5, 2000, 0);
    losses(quick ? 1000 : 100003);
    index_csr(quick ? 300 : 5000, 97);
    if (!quick) index_csr(1, 1), index_csr(0, 5), index_csr(257, 1), index_csr(31, 1000), index_csr(4096, 2048 + 1);
    return t_finish();
}
