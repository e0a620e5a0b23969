/* test_losses.cpp: kernels/cuda/train.cu's BPR, loss and graph-model helpers (and ops.cu's mrec_scale_at) on the
 * emulator, each against its CPU twin. Bit for bit where the project promises the same bits on every device: NGCF's
 * fused layer and its backward, LeakyReLU's backward, the inverse square root, ItemKNN's scores, the evaluation mask,
 * the loss sum, a scaling by a factor in memory, and every "_at" form against its value form. Else with
 * tests/test_cuda.c's and test_cuda_train.c's tolerances: the BPR batch loss (dx 1e-6 relative, the loss 1e-12, the
 * factors 1.2e-7), the loss terms 1e-13, gather_dot 1e-6 + 1e-5 |ref| (nvcc fuses its products), the BPR rows
 * 1e-6 + 1e-6 |ref| (the GPU fuses each product, the CPU rounds it), the segment softmax and the L2 backward
 * 1e-6 + 1e-5 |ref| (sums in double in another order). Each case runs under two schedules that must agree. */
#include "emu_test.h"
#include <algorithm>

static std::vector<float> rnd(size_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (auto &x : v) x = urand(lo, hi);
    return v;
}

static void bpr_batch_loss(int n) {
    std::vector<float> dots(5 * (size_t)n), dx(n), gdx(n);
    for (int k = 0; k < 2 * n; k++) dots[k] = urand(-4, 4);
    for (int k = 0; k < 3 * n; k++) dots[2 * n + k] = (float)(rand_u64() % 1000) / 300.0f;
    if (n > 7) dots[7] = -45.0f, dots[n + 7] = 45.0f; /* pos - neg = -90: past the clamp */
    char what[128];
    for (int form = 0; form <= MREC_BPR_LOG_SIGMOID_1E5; form++)
        for (int reg_form = 0; reg_form <= MREC_BPR_REG_PAIRS; reg_form++)
            for (int later = 0; later < 2; later++) {
                mrec_bpr_spec spec = {(mrec_bpr_form)form, reg_form == 1 ? 0.375f : 1.0f, (mrec_bpr_reg)reg_form, 1e-3f, 2048, later};
                float coef[3] = {-1, -1, -1}, gcoef[3];
                double loss = 0.5, gloss;
                mrec_bpr_batch_loss_cpu(dx.data(), coef, &loss, dots.data(), n, &spec);
                snprintf(what, sizeof what, "bpr_batch_loss n %d form %d reg %d%s", n, form, reg_form, later ? " (a later term)" : "");
                if (!under_schedules(what, 2, gdx.data(), 4 * (size_t)n, [&] {
                        gloss = 0.5, gcoef[0] = gcoef[1] = gcoef[2] = -1;
                        return mrec_bpr_batch_loss_cuda(gdx.data(), gcoef, &gloss, dots.data(), n, &spec, make_cu());
                    }))
                    continue;
                t_allclose(what, dx.data(), gdx.data(), n, 0, 1e-6);
                t_check(fabs(gloss - loss) <= 1e-12 * fabs(loss), "%s: loss %.17g, the CPU %.17g", what, gloss, loss);
                if (reg_form) t_allclose(what, coef, gcoef, 3, 0, 1.2e-7);
            }
}

static void gather_and_rows(int n, int d) {
    int Ra = 37, Rb = 53;
    auto A = rnd((size_t)Ra * d, -1, 1), B = rnd((size_t)Rb * d, -1, 1), dxs = rnd(n, -0.5f, 0.5f);
    std::vector<int32_t> ia(n), ib(n), ids(3 * (size_t)n);
    for (int b = 0; b < n; b++) ia[b] = (int32_t)(rand_u64() % Ra), ib[b] = (int32_t)(rand_u64() % Rb);
    for (auto &x : ids) x = (int32_t)(rand_u64() % Rb);
    std::vector<float> ref(n), got(n);
    char what[128];
    snprintf(what, sizeof what, "gather_dot n %d d %d", n, d);
    mrec_gather_dot_ref(ref.data(), A.data(), ia.data(), B.data(), ib.data(), n, d);
    if (under_schedules(what, 2, got.data(), 4 * (size_t)n,
                        [&] { return mrec_gather_dot_cuda(got.data(), A.data(), ia.data(), B.data(), ib.data(), n, d, make_cu()); }))
        t_allclose(what, ref.data(), got.data(), n, 1e-6, 1e-5);
    size_t m = 3 * (size_t)n * d;
    std::vector<float> rr(m), rg(m), ra(m);
    float coef[3] = {0.25f, -0.75f, 1.5f};
    for (int parts = 1; parts < 4; parts++) { /* 1: dx only, 2: coef only, 3: both */
        const float *c = parts & 2 ? coef : NULL, *g = parts & 1 ? dxs.data() : NULL;
        snprintf(what, sizeof what, "bpr_rows n %d d %d parts %d", n, d, parts);
        mrec_bpr_rows_ref(rr.data(), B.data(), ids.data(), g, c, n, d);
        if (!under_schedules(what, 2, rg.data(), 4 * m, [&] { return mrec_bpr_rows_cuda(rg.data(), B.data(), ids.data(), g, c, n, d, make_cu()); }))
            continue;
        t_allclose(what, rr.data(), rg.data(), (int64_t)m, 1e-6, 1e-6);
        if (!c) continue;
        /* the factors in memory, each part switched off in turn: the bits of a factor 0 passed in */
        for (int on = 1; on <= MREC_BPR_PARTS_ALL; on += 3) {
            float zeroed[3];
            for (int q = 0; q < 3; q++) zeroed[q] = on >> q & 1 ? coef[q] : 0.0f;
            snprintf(what, sizeof what, "bpr_rows_at n %d d %d parts %d factors %d", n, d, parts, on);
            emu_reseed(5);
            if (!t_check(mrec_bpr_rows_cuda(rg.data(), B.data(), ids.data(), g, zeroed, n, d, make_cu()) == MREC_OK, "%s: value form", what))
                continue;
            if (under_schedules(what, 2, ra.data(), 4 * m,
                                [&] { return mrec_bpr_rows_at_cuda(ra.data(), B.data(), ids.data(), g, coef, on, n, d, make_cu()); }))
                same_floats(what, ra.data(), rg.data(), m);
        }
    }
}

static void loss_terms(int n) {
    std::vector<double> x(n);
    for (auto &v : x) v = (double)(rand_u64() % 100000) / 7919.0;
    auto c = rnd(n, -1, 1), sq = rnd(n, 0, 2);
    char what[96];
    double ref = 0.25, got;
    mrec_loss_term_cpu(&ref, x.data(), n, 0.05f, 1000.0);
    snprintf(what, sizeof what, "loss_term n %d", n);
    if (under_schedules(what, 2, &got, 8, [&] { got = 0.25; return mrec_loss_term_cuda(&got, x.data(), n, 0.05f, 1000.0, make_cu()); }))
        t_check(fabs(got - ref) <= 1e-13 * fabs(ref), "%s: %.17g, the CPU %.17g", what, got, ref);
    /* the count in memory: the bits of the count as a value; none adds nothing */
    int32_t live = n > 3 ? n - 3 : n, none = 0;
    double want = 0.25, at;
    emu_reseed(9);
    t_check(mrec_loss_term_cuda(&want, x.data(), live, 0.7f, live, make_cu()) == MREC_OK, "loss_term: value form");
    snprintf(what, sizeof what, "loss_term_at live %d", live);
    if (under_schedules(what, 2, &at, 8, [&] { at = 0.25; return mrec_loss_term_at_cuda(&at, x.data(), &live, 0.7f, make_cu()); }))
        t_check(!memcmp(&at, &want, 8), "%s: %.17g, the value form %.17g", what, at, want);
    if (under_schedules("loss_term_at of none", 1, &at, 8, [&] { at = 0.25; return mrec_loss_term_at_cuda(&at, x.data(), &none, 0.7f, make_cu()); }))
        t_check(at == 0.25, "loss_term_at of none adds nothing (%.17g)", at);
    ref = got = 0.125;
    mrec_loss_cos_cpu(&ref, c.data(), n, 0.3f);
    snprintf(what, sizeof what, "loss_cos n %d", n);
    if (under_schedules(what, 2, &got, 8, [&] { got = 0.125; return mrec_loss_cos_cuda(&got, c.data(), n, 0.3f, make_cu()); }))
        t_check(fabs(got - ref) <= 1e-13 * fabs(ref), "%s: %.17g, the CPU %.17g", what, got, ref);
    for (int zero = 0; zero < 2; zero++) {
        if (zero) std::fill(sq.begin(), sq.end(), 0.0f);
        float cf = -1, gf = -1;
        ref = 0.125;
        mrec_loss_norm_cpu(&cf, &ref, sq.data(), n, 1e-3f, 7050);
        snprintf(what, sizeof what, "loss_norm n %d%s", n, zero ? " (a zero table)" : "");
        if (under_schedules(what, 2, &got, 8, [&] { got = 0.125; return mrec_loss_norm_cuda(&gf, &got, sq.data(), n, 1e-3f, 7050, make_cu()); }))
            t_check(fabs(got - ref) <= 1e-13 * fabs(ref) && fabsf(gf - cf) <= 1.2e-7f * cf, "%s: loss %.17g / %.17g, factor %.9g / %.9g", what,
                    got, ref, gf, cf);
        /* the factor read where it was written: ops.cu's scale by a factor in memory, the bits of the value */
        std::vector<float> sref(n), sgot(n);
        mrec_scale_ref(sref.data(), c.data(), gf, n);
        snprintf(what, sizeof what, "scale_at n %d", n);
        if (under_schedules(what, 2, sgot.data(), 4 * (size_t)n, [&] { return mrec_scale_at_cuda(sgot.data(), c.data(), &gf, n, make_cu()); }))
            same_floats(what, sgot.data(), sref.data(), n);
    }
}

static void loss_add() {
    double ls[5] = {0.75, 1.5, INFINITY, NAN, 2.0};
    mrec_loss_sum sum = {0, 0, 0, -1}, gsum = sum;
    emu_reseed(3);
    bool ok = true;
    for (int b = 0; b < 5; b++) {
        mrec_loss_add_cpu(&sum, &ls[b]);
        int e0 = emu_errors;
        ok &= mrec_loss_add_cuda(&gsum, &ls[b], make_cu()) == MREC_OK && emu_errors == e0;
        ok &= gsum.batches == sum.batches && gsum.bad == sum.bad && !memcmp(&gsum.sum, &sum.sum, 8) && !memcmp(&gsum.bad_loss, &sum.bad_loss, 8);
    }
    t_check(ok && gsum.bad == 2, "loss_add: five batches, the first bad one 2, the CPU's fields after each (%d, %d)", gsum.batches, gsum.bad);
}

/* the users' CSR rows (u0.. ; sorted, distinct), an empty one, columns past C (skipped by the mask) */
static void user_rows(std::vector<int64_t> &rp, std::vector<int32_t> &col, int users, int C, int extra) {
    rp.assign(users + 1, 0), col.clear();
    for (int u = 0; u < users; u++) {
        int cnt = u == 4 ? 0 : (int)(rand_u64() % 40) + (u == 6 ? 60 : 0);
        int c = (int)(rand_u64() % 3);
        for (int q = 0; q < cnt; q++, c += 1 + (int)(rand_u64() % 5)) col.push_back(c % (C + extra));
        std::sort(col.begin() + rp[u], col.end());
        col.erase(std::unique(col.begin() + rp[u], col.end()), col.end());
        rp[u + 1] = (int64_t)col.size();
    }
}

static void eval_ops(int R, int C, int k) {
    int u0 = 3, users = u0 + R + 2;
    std::vector<int64_t> rp;
    std::vector<int32_t> col;
    user_rows(rp, col, users, C, 5);
    auto s = rnd((size_t)R * C, -1, 1);
    std::vector<float> ref = s, got = s;
    char what[96];
    mrec_mask_rows_ref(ref.data(), rp.data(), col.data(), u0, R, C);
    snprintf(what, sizeof what, "mask_rows R %d C %d", R, C);
    if (under_schedules(what, 2, got.data(), 4 * got.size(), [&] {
            std::copy(s.begin(), s.end(), got.begin());
            return mrec_mask_rows_cuda(got.data(), rp.data(), col.data(), u0, R, C, make_cu());
        }))
        same_floats(what, got.data(), ref.data(), ref.size());
    /* ItemKNN: each item's k neighbours (-1 holes), the users' sorted items (no columns past C here) */
    user_rows(rp, col, users, C, 0);
    std::vector<int32_t> nbr((size_t)C * k);
    auto sim = rnd((size_t)C * k, 0, 1);
    for (size_t e = 0; e < nbr.size(); e++) nbr[e] = e % 11 == 5 ? -1 : (int32_t)(rand_u64() % C);
    std::vector<float> kr((size_t)R * C), kg((size_t)R * C);
    mrec_knn_scores_ref(kr.data(), rp.data(), col.data(), nbr.data(), sim.data(), u0, R, C, k);
    snprintf(what, sizeof what, "knn_scores R %d C %d k %d", R, C, k);
    if (under_schedules(what, 2, kg.data(), 4 * kg.size(),
                        [&] { return mrec_knn_scores_cuda(kg.data(), rp.data(), col.data(), nbr.data(), sim.data(), u0, R, C, k, make_cu()); }))
        same_floats(what, kg.data(), kr.data(), kr.size());
}

/* mrec_rank_metrics: R users' lists of kmax items from C (holes of items past C and -1), graded gains (some 0),
 * against the CPU variant, the sums' bits; the block added onto sums already there. */
static void rank_metrics(int R, int C) {
    int u0 = 3, users = u0 + R + 2;
    std::vector<int64_t> rp;
    std::vector<int32_t> col;
    user_rows(rp, col, users, C, 0);
    mrec_rank_relevance rel = {};
    rel.n_rows = users, rel.n_k = C >= 10 ? 3 : 1;
    int ks[] = {1, 4, 10};
    for (int i = 0; i < rel.n_k; i++) rel.k[i] = rel.n_k == 1 ? (C < 3 ? C : 3) : ks[i];
    int kmax = rel.k[rel.n_k - 1];
    std::vector<double> gain(col.size() + 1), ideal((size_t)users * rel.n_k * 2), disc(kmax);
    std::vector<int32_t> n_rel(users);
    for (int q = 0; q < kmax; q++) disc[q] = 1.0 / log2(q + 2.0);
    for (int u = 0; u < users; u++) {
        std::vector<double> sorted;
        for (int64_t p = rp[u]; p < rp[u + 1]; p++) {
            gain[p] = rand_u64() % 4 == 0 ? 0.0 : (double)(1 + rand_u64() % 7);
            if (gain[p] > 0) sorted.push_back(gain[p]);
        }
        std::sort(sorted.begin(), sorted.end(), [](double a, double b) { return a > b; });
        n_rel[u] = (int32_t)sorted.size();
        mrec_rank_ideal(&ideal[(size_t)u * rel.n_k * 2], sorted.data(), n_rel[u], disc.data(), rel.k, rel.n_k);
    }
    rel.row_ptr = rp.data(), rel.col = col.data(), rel.gain = gain.data(), rel.n_rel = n_rel.data(), rel.ideal = ideal.data(),
    rel.disc = disc.data();
    std::vector<int32_t> top((size_t)R * kmax);
    for (size_t e = 0; e < top.size(); e++) top[e] = e % 13 == 7 ? -1 : (int32_t)(rand_u64() % (C + 2));
    mrec_rank_sums start = {}, want, got;
    start.sum[2][0] = 0.25, start.users = 4;
    std::vector<double> work(mrec_rank_metrics_work_bytes(R, rel.n_k) / sizeof(double) + 1);
    want = start;
    mrec_pool *pool;
    mrec_pool_create(&pool, 2, MREC_SIMD_SCALAR);
    mrec_rank_metrics_cpu(&want, work.data(), top.data(), u0, R, &rel, pool);
    mrec_pool_destroy(pool);
    char what[96];
    snprintf(what, sizeof what, "rank_metrics R %d C %d kmax %d", R, C, kmax);
    if (under_schedules(what, 2, &got, sizeof got, [&] {
            got = start;
            return mrec_rank_metrics_cuda(&got, work.data(), top.data(), u0, R, &rel, make_cu());
        }))
        t_check(!memcmp(&got, &want, sizeof got) && want.users > start.users, "%s: the CPU's sums, bit for bit (%lld users)", what,
                (long long)want.users);
}

static void ngcf(int64_t n) {
    auto z1 = rnd(n, -2, 2), z2 = rnd(n, -2, 2), de = rnd(n, -1, 1);
    z1[0] = 0.0f, z2[n > 1 ? 1 : 0] = -0.0f; /* the branches at 0 */
    std::vector<float> e(n), m(n), ge(n), gm(n), d1(n), d2(n), g1(n), g2(n);
    char what[96];
    const float slope = 0.2f;
    float ps[] = {0.0f, 0.1f, 0.6f};
    for (float p : ps) {
        uint64_t key = 0xABCDEFull ^ (uint64_t)(p * 10);
        mrec_ngcf_combine_ref(e.data(), m.data(), z1.data(), z2.data(), slope, p, key, n);
        snprintf(what, sizeof what, "ngcf_combine n %lld p %g", (long long)n, p);
        if (under_schedules(what, 2, ge.data(), 4 * n,
                            [&] { return mrec_ngcf_combine_cuda(ge.data(), gm.data(), z1.data(), z2.data(), slope, p, key, n, make_cu()); }))
            same_floats(what, ge.data(), e.data(), n), same_floats(what, gm.data(), m.data(), n);
        snprintf(what, sizeof what, "ngcf_combine_at n %lld p %g", (long long)n, p);
        if (under_schedules(what, 1, ge.data(), 4 * n,
                            [&] { return mrec_ngcf_combine_at_cuda(ge.data(), gm.data(), z1.data(), z2.data(), slope, p, &key, n, make_cu()); }))
            same_floats(what, ge.data(), e.data(), n);
        mrec_ngcf_combine_back_ref(d1.data(), d2.data(), de.data(), m.data(), z1.data(), z2.data(), slope, n);
        snprintf(what, sizeof what, "ngcf_combine_back n %lld p %g", (long long)n, p);
        if (under_schedules(what, 2, g1.data(), 4 * n, [&] {
                return mrec_ngcf_combine_back_cuda(g1.data(), g2.data(), de.data(), m.data(), z1.data(), z2.data(), slope, n, make_cu());
            }))
            same_floats(what, g1.data(), d1.data(), n), same_floats(what, g2.data(), d2.data(), n);
    }
    mrec_leaky_relu_back_ref(d1.data(), de.data(), z1.data(), slope, n);
    snprintf(what, sizeof what, "leaky_relu_back n %lld", (long long)n);
    if (under_schedules(what, 2, g1.data(), 4 * n, [&] { return mrec_leaky_relu_back_cuda(g1.data(), de.data(), z1.data(), slope, n, make_cu()); }))
        same_floats(what, g1.data(), d1.data(), n);
    /* the hash streams with their keys in memory: the bits of the key as a value */
    uint64_t key = 0x1234567890ABCDEFull;
    mrec_hash_dropout_ref(d1.data(), z1.data(), NULL, n, 0.3f, key);
    snprintf(what, sizeof what, "hash_dropout_at n %lld", (long long)n);
    if (under_schedules(what, 1, g1.data(), 4 * n, [&] { return mrec_hash_dropout_at_cuda(g1.data(), z1.data(), NULL, n, 0.3f, &key, make_cu()); }))
        same_floats(what, g1.data(), d1.data(), n);
    snprintf(what, sizeof what, "gumbel_noise_at n %lld", (long long)n);
    emu_reseed(11);
    t_check(mrec_gumbel_noise_cuda(d1.data(), key, n, make_cu()) == MREC_OK, "%s: value form", what);
    if (under_schedules(what, 1, g1.data(), 4 * n, [&] { return mrec_gumbel_noise_at_cuda(g1.data(), &key, n, make_cu()); }))
        same_floats(what, g1.data(), d1.data(), n);
    int R = (int)(n / 7 ? n / 7 : 1), C = (int)(n / R);
    snprintf(what, sizeof what, "sign_noise_at %d x %d", R, C);
    d1 = z2, mrec_sign_noise_ref(d1.data(), NULL, 0.1f, key, 17, R, C);
    if (under_schedules(what, 1, g1.data(), 4 * (size_t)R * C, [&] {
            g1 = z2;
            return mrec_sign_noise_at_cuda(g1.data(), NULL, 0.1f, &key, 17, R, C, make_cu());
        }))
        same_floats(what, g1.data(), d1.data(), (size_t)R * C);
    /* LATTICE's inverse square root: positive, zero and negative entries, in place */
    for (int64_t t = 0; t < n; t++) d2[t] = t % 7 == 0 ? 0.0f : t % 11 == 0 ? -fabsf(z1[t]) : fabsf(z1[t]) * 50.0f;
    mrec_inv_sqrt_ref(d1.data(), d2.data(), n);
    snprintf(what, sizeof what, "inv_sqrt n %lld (in place)", (long long)n);
    if (under_schedules(what, 2, g1.data(), 4 * n, [&] {
            g1 = d2;
            return mrec_inv_sqrt_cuda(g1.data(), g1.data(), n, make_cu());
        }))
        same_floats(what, g1.data(), d1.data(), n);
}

static void l2_back(int R, int C) {
    size_t n = (size_t)R * C;
    auto x = rnd(n, -2, 2), dy = rnd(n, -1, 1), start = rnd(n, -1, 1);
    for (int c = 0; c < C && R > 2; c++) x[c] = 0.0f, x[(size_t)C + c] = 1e-14f; /* the eps branch */
    std::vector<float> y(n), ref(n), got(n);
    mrec_l2_normalize_rows_ref(y.data(), x.data(), 1e-12f, R, C);
    char what[96];
    for (int b = 0; b < 2; b++) {
        float beta = b ? 0.5f : 0.0f;
        for (size_t i = 0; i < n; i++) ref[i] = b ? start[i] : NAN; /* beta 0 ignores dx's contents */
        mrec_l2_normalize_rows_back_ref(ref.data(), dy.data(), y.data(), x.data(), 1e-12f, beta, R, C);
        snprintf(what, sizeof what, "l2_normalize_rows_back R %d C %d beta %g", R, C, beta);
        if (under_schedules(what, 2, got.data(), 4 * n, [&] {
                for (size_t i = 0; i < n; i++) got[i] = b ? start[i] : NAN;
                return mrec_l2_normalize_rows_back_cuda(got.data(), dy.data(), y.data(), x.data(), 1e-12f, beta, R, C, make_cu());
            }))
            t_allclose(what, ref.data(), got.data(), (int64_t)n, 1e-6, 1e-5);
    }
}

static void segment_softmax(int R) {
    std::vector<int64_t> rp(R + 1, 0);
    for (int r = 0; r < R; r++) rp[r + 1] = rp[r] + (r % 9 == 4 ? 0 : r == 10 ? 70 : r == 11 ? 32 : r == 12 ? 33 : (int64_t)(rand_u64() % 40));
    size_t n = (size_t)rp[R];
    auto x = rnd(n, -3, 3), dy = rnd(n, -1, 1);
    std::vector<float> y(n), dx(n), got(n);
    mrec_segment_softmax_ref(y.data(), x.data(), rp.data(), R);
    mrec_segment_softmax_back_ref(dx.data(), dy.data(), y.data(), rp.data(), R);
    char what[96];
    snprintf(what, sizeof what, "segment_softmax R %d (in place)", R);
    if (under_schedules(what, 2, got.data(), 4 * n, [&] {
            got = x;
            return mrec_segment_softmax_cuda(got.data(), got.data(), rp.data(), R, make_cu());
        }))
        t_allclose(what, y.data(), got.data(), (int64_t)n, 1e-6, 1e-5);
    snprintf(what, sizeof what, "segment_softmax_back R %d (in place)", R);
    if (under_schedules(what, 2, got.data(), 4 * n, [&] {
            got = dy;
            return mrec_segment_softmax_back_cuda(got.data(), got.data(), y.data(), rp.data(), R, make_cu());
        }))
        t_allclose(what, dx.data(), got.data(), (int64_t)n, 1e-6, 1e-5);
}

int main(int argc, char **argv) {
    t_suite("emu_losses");
    if (quick_run(argc, argv)) {
        bpr_batch_loss(257), gather_and_rows(97, 33), loss_terms(1000), ngcf(1000), eval_ops(9, 100, 5), rank_metrics(9, 100), segment_softmax(20), l2_back(9, 37);
        return t_finish();
    }
    int ns[] = {1, 7, 255, 256, 257, 2048};
    for (int n : ns) bpr_batch_loss(n);
    int gd[][2] = {{1, 1}, {97, 33}, {31, 64}, {257, 31}, {5, 130}};
    for (auto &g : gd) gather_and_rows(g[0], g[1]);
    int ln[] = {1, 255, 257, 1000};
    for (int n : ln) loss_terms(n);
    loss_add();
    int64_t nn[] = {1, 255, 1021, 4099};
    for (int64_t n : nn) ngcf(n);
    eval_ops(1, 1, 1), eval_ops(37, 333, 7), eval_ops(9, 1000, 3);
    rank_metrics(1, 1), rank_metrics(37, 333), rank_metrics(300, 1000);
    l2_back(1, 1), l2_back(33, 37), l2_back(9, 300);
    segment_softmax(3), segment_softmax(57);
    return t_finish();
}
