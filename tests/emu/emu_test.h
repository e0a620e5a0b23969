/* emu_test.h: what the emulator's test programs share: the project's test harness (tests/harness.h: t_check,
 * t_finish's "suite: N passed, N failed, N skipped"), the emulator's knobs, a device handle, the inputs'
 * fixed-seed generator, bf16 conversions, and the schedules each case runs under.
 *
 * Every test compares an emulated kernel with libmrec's CPU reference, with the tolerance tests/test_cuda.c
 * (or test_cuda_train.c) uses on a real GPU, or bit for bit where the project promises bits; and it runs each
 * case under several schedules (seeds and cp.async modes) and requires the same bits from all of them, and no
 * emulator error. MREC_TEST_VERBOSE=1 prints every case's margin. A program given the argument "quick" runs a
 * few cases only (tests/emu/mutate.sh uses them). */
#pragma once
#include "cuda_emu.h"
#include "cuda_internal.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>
extern "C" {
#include "../harness.h"
#if defined(__SANITIZE_ADDRESS__) /* make emu-check's AddressSanitizer pass: its suites named apart */
#define t_suite(name) t_suite(name "_asan")
#endif
}

static uint64_t input_seed = 20240611; /* the inputs: the same every run */
static inline uint64_t rand_u64() { return t_rand_u64(&input_seed); }
static inline float urand(float lo, float hi) { return t_rand_uniform(&input_seed, lo, hi); }

/* bf16 to nearest even (mrec_bf16_round's rounding; NaN kept quiet), and back */
static inline uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* n bytes, 64-byte aligned (the kernels' vector paths want 16) */
static void *amalloc(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 1)) abort();
    return p;
}
/* n values in [lo, hi), allocated to the byte: the AddressSanitizer pass sees a kernel step past the end */
static float *frnd(size_t n, float lo, float hi) {
    float *p = (float *)amalloc(4 * n);
    for (size_t i = 0; i < n; i++) p[i] = urand(lo, hi);
    return p;
}
static int verbose() { return getenv("MREC_TEST_VERBOSE") != NULL; }
static int quick_run(int argc, char **argv) { return argc > 1 && !strcmp(argv[1], "quick"); }

/* a device handle as device.cu would open it on sm_90: the launch wrappers read cu->sm, cu->stream (0 here),
 * cu->flag (a bad-input report) and cu->dot_part (mrec_loss_dot_cuda's partial sums) */
static mrec_cuda *make_cu() {
    static mrec_cuda cu;
    static int flag;
    static double dot_part[MREC_DOT_PARTS];
    memset(&cu, 0, sizeof cu);
    cu.sm = 90;
    cu.flag = &flag;
    cu.dot_part = dot_part;
    return &cu;
}

/* the schedules of a case: scheduler seed, cp.async mode (in turn lazy, random, eager) and policy (in turn
 * random, warp priority) */
struct Sched {
    unsigned long long seed;
    int cp, policy;
};
static std::vector<Sched> schedules(int n) {
    std::vector<Sched> s;
    for (int i = 0; i < n; i++) s.push_back({(unsigned long long)(1000 + 7 * i), i % 3 == 0 ? 1 : i % 3 == 1 ? 2 : 0, i % 2});
    return s;
}
static void use_schedule(const Sched &s) { emu_reseed(s.seed), emu_cp_mode = s.cp, emu_sched = s.policy; }

/* run f under the first n schedules; the bytes [p, p + bytes) must come out the same from each, f must return
 * `want` with no emulator error. f sets up its own inputs (an output it adds to starts afresh each time). */
static bool under_schedules(const char *what, int n, const void *p, size_t bytes, const std::function<mrec_status()> &f,
                            mrec_status want = MREC_OK) {
    std::vector<unsigned char> first(bytes);
    bool ok = true;
    auto sch = schedules(n);
    for (size_t s = 0; s < sch.size(); s++) {
        use_schedule(sch[s]);
        int e0 = emu_errors;
        mrec_status st = f();
        ok &= t_check(st == want && emu_errors == e0, "%s (schedule %zu): status %d, %d emulator errors", what, s, st, emu_errors - e0);
        if (s == 0) memcpy(first.data(), p, bytes);
        else ok &= t_check(!memcmp(first.data(), p, bytes), "%s: schedule %zu gives other bits than schedule 0", what, s);
    }
    return ok;
}

/* the same float bits, NaN meeting any NaN; the first difference printed */
static bool same_floats(const char *what, const float *got, const float *ref, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(isnan(got[i]) && isnan(ref[i])) && memcmp(&got[i], &ref[i], 4))
            return t_check(false, "%s: not the reference's bits (first at %zu: got %.9g, reference %.9g)", what, i, got[i], ref[i]);
    return t_check(true, "%s", what);
}
