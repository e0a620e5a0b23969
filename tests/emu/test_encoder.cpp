/* test_encoder.cpp: kernels/cuda/encoder.cu's steps around an encoder's layers and kernels/cuda/depthwise.cu's
 * convolution and squeeze-excite ops on the emulator. The encoder ops (embedding_sum, position_ids, mask_bias,
 * rel_bias and causal_bias, patchify, class_embed) are claimed bit-equal to their CPU twins and are compared bit for
 * bit; the depthwise ones with tests/test_align.c's tolerances against the double references: the conv 1e-5 +
 * 1e-5 |ref|, with swish and the planes' means 2e-5 + 2e-5 |ref|, row_mean 1e-5 + 1e-5 |ref|, the sigmoid gate
 * 1e-6 + 1e-6 |ref| (the kernel's float sums against double ones). Each case under two schedules that must agree.
 * mrec_copy_rows_cuda is one cudaMemcpy2DAsync, no kernel: not run here. */
#include "emu_test.h"
#include <algorithm>

static std::vector<float> rnd(size_t n, float lo, float hi) {
    std::vector<float> v(n);
    for (auto &x : v) x = urand(lo, hi);
    return v;
}
static bool same_ints(const char *what, const int32_t *got, const int32_t *ref, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (got[i] != ref[i]) return t_check(false, "%s: at %zu got %d, reference %d", what, i, got[i], ref[i]);
    return t_check(true, "%s", what);
}

static void embedding_sum(int N, int H) {
    int V = 50, TV = 2, P = 64;
    auto word = rnd((size_t)V * H, -1, 1), type = rnd((size_t)TV * H, -1, 1), position = rnd((size_t)P * H, -1, 1);
    std::vector<int32_t> ids(N), tids(N), pos(N);
    for (int i = 0; i < N; i++) ids[i] = (int32_t)(rand_u64() % V), tids[i] = i % TV, pos[i] = (int32_t)(i % P);
    std::vector<float> ref((size_t)N * H), got((size_t)N * H);
    char what[96];
    for (int form = 0; form < 3; form++) { /* type ids; type 0 for all; no type table */
        const float *t = form == 2 ? NULL : type.data();
        const int32_t *ti = form == 0 ? tids.data() : NULL;
        mrec_embedding_sum_ref(ref.data(), word.data(), ids.data(), t, ti, position.data(), pos.data(), N, H);
        snprintf(what, sizeof what, "embedding_sum N %d H %d form %d", N, H, form);
        if (under_schedules(what, 2, got.data(), 4 * got.size(), [&] {
                return mrec_embedding_sum_cuda(got.data(), word.data(), ids.data(), t, ti, position.data(), pos.data(), N, H, make_cu());
            }))
            same_floats(what, got.data(), ref.data(), ref.size());
    }
}

static void positions_and_masks(int B, int T) {
    size_t n = (size_t)B * T;
    std::vector<int32_t> ids(n), mask(n), ref(n), got(n);
    for (size_t i = 0; i < n; i++) ids[i] = i % 5 == 3 || (i / T == 1 && i % T > 2) ? 1 : 2 + (int32_t)(rand_u64() % 100), mask[i] = ids[i] != 1;
    char what[96];
    for (int pad = -1; pad <= 1; pad += 2) {
        mrec_position_ids_ref(ref.data(), ids.data(), pad, B, T);
        snprintf(what, sizeof what, "position_ids B %d T %d pad %d", B, T, pad);
        if (under_schedules(what, 2, got.data(), 4 * n, [&] { return mrec_position_ids_cuda(got.data(), ids.data(), pad, B, T, make_cu()); }))
            same_ints(what, got.data(), ref.data(), n);
    }
    std::vector<float> fr(n), fg(n);
    for (int withmask = 0; withmask < 2; withmask++) {
        const int32_t *m = withmask ? mask.data() : NULL;
        mrec_mask_bias_ref(fr.data(), m, (int64_t)n);
        snprintf(what, sizeof what, "mask_bias n %zu%s", n, withmask ? "" : " (no mask)");
        if (under_schedules(what, 2, fg.data(), 4 * n, [&] { return mrec_mask_bias_cuda(fg.data(), m, (int64_t)n, make_cu()); }))
            same_floats(what, fg.data(), fr.data(), n);
    }
}

static void biases(int heads, int T) {
    int buckets = 32;
    auto table = rnd((size_t)buckets * heads, -1, 1);
    std::vector<int32_t> bucket(2 * (size_t)T - 1);
    for (auto &b : bucket) b = (int32_t)(rand_u64() % buckets);
    size_t n = (size_t)heads * T * T;
    std::vector<float> ref(n), got(n);
    char what[96];
    mrec_rel_bias_ref(ref.data(), table.data(), bucket.data(), heads, T);
    snprintf(what, sizeof what, "rel_bias heads %d T %d", heads, T);
    if (under_schedules(what, 2, got.data(), 4 * n, [&] { return mrec_rel_bias_cuda(got.data(), table.data(), bucket.data(), heads, T, make_cu()); }))
        same_floats(what, got.data(), ref.data(), n);
    mrec_causal_bias_ref(ref.data(), heads, T);
    snprintf(what, sizeof what, "causal_bias heads %d T %d", heads, T);
    if (under_schedules(what, 2, got.data(), 4 * n, [&] { return mrec_causal_bias_cuda(got.data(), heads, T, make_cu()); }))
        same_floats(what, got.data(), ref.data(), n);
}

static void vit(int B, int C, int S, int P, int H) {
    auto img = rnd((size_t)B * C * S * S, -1, 1);
    int G = S / P;
    size_t n = (size_t)B * G * G * C * P * P;
    std::vector<float> ref(n), got(n);
    char what[96];
    mrec_patchify_ref(ref.data(), img.data(), B, C, S, P);
    snprintf(what, sizeof what, "patchify B %d C %d S %d P %d", B, C, S, P);
    if (under_schedules(what, 2, got.data(), 4 * n, [&] { return mrec_patchify_cuda(got.data(), img.data(), B, C, S, P, make_cu()); }))
        same_floats(what, got.data(), ref.data(), n);
    if (P > 1)
        t_check(mrec_patchify_cuda(got.data(), img.data(), B, C, S + 1, P, make_cu()) == MREC_ERR_SHAPE, "patchify: %d-pixel images in %d-pixel patches refused",
                S + 1, P);
    int T = G * G + 1;
    auto x = rnd((size_t)B * T * H, -1, 1), cls = rnd(H, -1, 1), pos = rnd((size_t)T * H, -1, 1);
    std::vector<float> xr = x, xg((size_t)B * T * H);
    mrec_class_embed_ref(xr.data(), cls.data(), pos.data(), B, T, H);
    snprintf(what, sizeof what, "class_embed B %d T %d H %d", B, T, H);
    if (under_schedules(what, 2, xg.data(), 4 * xg.size(), [&] {
            std::copy(x.begin(), x.end(), xg.begin());
            return mrec_class_embed_cuda(xg.data(), cls.data(), pos.data(), B, T, H, make_cu());
        }))
        same_floats(what, xg.data(), xr.data(), xr.size());
}

static void depthwise(mrec_depthwise_shape s) {
    int Ho = mrec_depthwise_out_h(&s), Wo = mrec_depthwise_out_w(&s), planes = s.N * s.C;
    size_t nin = (size_t)planes * s.H * s.W, nout = (size_t)planes * Ho * Wo;
    auto x = rnd(nin, -1, 1), w = rnd((size_t)s.C * s.KH * s.KW, -1, 1), b = rnd(s.C, -1, 1);
    std::vector<float> ref(nout), got(nout), want(planes), means(planes);
    char what[128];
    snprintf(what, sizeof what, "depthwise N %d C %d %dx%d k %dx%d s %d,%d pad %d %d %d %d", s.N, s.C, s.H, s.W, s.KH, s.KW, s.stride_h,
             s.stride_w, s.pad_top, s.pad_bottom, s.pad_left, s.pad_right);
    for (int bias = 0; bias < 2; bias++) {
        const float *bp = bias ? b.data() : NULL;
        mrec_depthwise_conv2d_ref(ref.data(), x.data(), w.data(), bp, &s);
        if (under_schedules(what, 2, got.data(), 4 * nout, [&] { return mrec_depthwise_conv2d_cuda(got.data(), x.data(), w.data(), bp, &s, make_cu()); }))
            t_allclose(what, ref.data(), got.data(), (int64_t)nout, 1e-5, 1e-5);
    }
    /* with swish and the planes' means: the reference's outputs through swish in double */
    for (size_t i = 0; i < nout; i++) ref[i] = (float)(ref[i] / (1.0 + exp(-(double)ref[i])));
    mrec_row_mean_ref(want.data(), ref.data(), planes, Ho * Wo);
    if (under_schedules(what, 2, got.data(), 4 * nout, [&] {
            return mrec_depthwise_conv2d_act_cuda(got.data(), x.data(), w.data(), b.data(), MREC_ACT_SILU, means.data(), &s, make_cu());
        })) {
        t_allclose(what, ref.data(), got.data(), (int64_t)nout, 2e-5, 2e-5);
        t_allclose(what, want.data(), means.data(), planes, 2e-5, 2e-5);
    }
}

static void squeeze_excite(int R, int HW) {
    auto x = rnd((size_t)R * HW, -2, 2), gate = rnd(R, -4, 4);
    std::vector<float> ref((size_t)R * HW), got((size_t)R * HW);
    char what[96];
    mrec_row_mean_ref(ref.data(), x.data(), R, HW);
    snprintf(what, sizeof what, "row_mean R %d HW %d", R, HW);
    if (under_schedules(what, 2, got.data(), 4 * (size_t)R, [&] { return mrec_row_mean_cuda(got.data(), x.data(), R, HW, make_cu()); }))
        t_allclose(what, ref.data(), got.data(), R, 1e-5, 1e-5);
    mrec_sigmoid_gate_rows_ref(ref.data(), x.data(), gate.data(), R, HW);
    snprintf(what, sizeof what, "sigmoid_gate_rows R %d HW %d (in place)", R, HW);
    if (under_schedules(what, 2, got.data(), 4 * got.size(), [&] {
            std::copy(x.begin(), x.end(), got.begin());
            return mrec_sigmoid_gate_rows_cuda(got.data(), got.data(), gate.data(), R, HW, make_cu());
        }))
        t_allclose(what, ref.data(), got.data(), (int64_t)R * HW, 1e-6, 1e-6);
}

int main(int argc, char **argv) {
    t_suite("emu_encoder");
    int quick = quick_run(argc, argv);
    embedding_sum(37, 33), positions_and_masks(3, 37), biases(3, 37), vit(2, 3, 12, 4, 33);
    depthwise({2, 5, 9, 11, 3, 3, 1, 1, 1, 1, 1, 1}), squeeze_excite(37, 333);
    if (quick) return t_finish();
    embedding_sum(1, 1), embedding_sum(5, 768), embedding_sum(257, 31);
    positions_and_masks(1, 1), positions_and_masks(65, 13);
    biases(1, 1), biases(12, 33);
    vit(1, 1, 1, 1, 1), vit(1, 3, 32, 16, 64), vit(2, 3, 14, 7, 257);
    mrec_depthwise_shape cases[] = {{1, 6, 11, 14, 5, 5, 2, 2, 1, 2, 1, 2}, {2, 3, 12, 9, 3, 3, 2, 2, 0, 1, 0, 1}, {1, 4, 17, 7, 3, 5, 2, 1, 0, 2, 3, 1},
                                    {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, {1, 32, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1}};
    for (auto &s : cases) depthwise(s);
    squeeze_excite(1, 1), squeeze_excite(3, 255), squeeze_excite(5, 257), squeeze_excite(2, 3000);
    return t_finish();
}
