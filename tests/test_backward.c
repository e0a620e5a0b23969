/* test_backward.c: the backward ops of the encoders, AdamW, the gradient
 * norm and the learning-rate schedule (kernels/cpu/backward.c).
 *
 *   1. Every backward against central finite differences of its forward,
 *      written here in double, of loss = sum(g * forward(x)) for a random g,
 *      on odd small shapes (1, primes, sizes that are no multiple of a tile).
 *      The step is 1e-6 in double, so the difference quotient is good to
 *      ~1e-9 relative; the ops compute in float with sums of up to ~70
 *      terms, so they are held to 2e-4 of the gradient's largest magnitude
 *      plus 1e-4 relative (a few hundred float roundings).
 *   2. Each _cpu against its _ref: bit for bit where the op's contract says
 *      the order is the same (scatters, sums of squares), else 1e-5 of the
 *      scale (float against double sums).
 *   3. The entries on a CPU context against the _cpu variants, bit for bit.
 *   4. PyTorch (tests/fixtures/clip_backward, tools/golden/clip_backward.py):
 *      a pre-LN CLIP encoder layer with causal attention and QuickGELU, and
 *      CLIP's contrastive head, both backwarded through the entries: every
 *      gradient within 1e-4 of its tensor's largest magnitude (float32 ops
 *      against float64 autograd; the block's chains are ~6 ops deep). AdamW
 *      after 3 steps within 1e-6 relative of torch.optim.AdamW (same float
 *      operations, a few ulps apart), clip_grad_norm_ likewise.
 *   5. The CUDA variants against the references when a GPU is present,
 *      "skipped" otherwise; tolerances as in 2 (fp32 cuBLAS, TF32 off).
 */
#include "harness.h"

#include "../kernels/mrec_kernels.h"
#include "../nn/mrec_npy.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 2024;
static mrec_context *ctx;

static float *fmalloc(size_t n) {
    float *p = malloc(sizeof(float) * (n ? n : 1));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static float *frand(size_t n, float lo, float hi) {
    float *p = fmalloc(n);
    t_fill_uniform(p, (int64_t)n, &rng, lo, hi);
    return p;
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* A scalar function of n float parameters (through double), for finite differences. */
typedef double (*loss_fn)(void *arg);

/* d loss / d x[i] for every i by central differences, x perturbed in place (as double in a shadow) */
static void numeric_grad(float *num, double *xd, size_t n, loss_fn f, void *arg) {
    const double h = 1e-6;
    for (size_t i = 0; i < n; i++) {
        double keep = xd[i];
        xd[i] = keep + h;
        double up = f(arg);
        xd[i] = keep - h;
        double down = f(arg);
        xd[i] = keep;
        num[i] = (float)((up - down) / (2 * h));
    }
}

static double *to_double(const float *x, size_t n) {
    double *d = malloc(sizeof(double) * (n ? n : 1));
    if (!d) exit(1);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static void fd_check(const char *what, const float *num, const float *got, size_t n) {
    t_allclose(what, num, got, (int64_t)n, 2e-4 * fmax(max_abs(num, n), 1e-3), 1e-4);
}

/* ---- linear ---- */

typedef struct {
    double *x, *w, *b, *g;
    int M, N, K;
} lin_fd;

static double lin_loss(void *arg) {
    lin_fd *a = arg;
    double s = 0;
    for (int i = 0; i < a->M; i++)
        for (int j = 0; j < a->N; j++) {
            double y = a->b[j];
            for (int k = 0; k < a->K; k++) y += a->x[(size_t)i * a->K + k] * a->w[(size_t)j * a->K + k];
            s += a->g[(size_t)i * a->N + j] * y;
        }
    return s;
}

static void test_linear(void) {
    static const int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {13, 17, 11}, {5, 3, 67}};
    for (int s = 0; s < 4; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        size_t nx = (size_t)M * K, nw = (size_t)N * K, ny = (size_t)M * N;
        float *x = frand(nx, -1, 1), *w = frand(nw, -1, 1), *b = frand(N, -1, 1), *g = frand(ny, -1, 1);
        float *dx = fmalloc(nx), *dw = fmalloc(nw), *db = fmalloc(N), *cx = fmalloc(nx), *cw = fmalloc(nw), *cb = fmalloc(N);
        float *nxg = fmalloc(nx), *nwg = fmalloc(nw), *nbg = fmalloc(N);
        lin_fd a = {to_double(x, nx), to_double(w, nw), to_double(b, N), to_double(g, ny), M, N, K};
        numeric_grad(nxg, a.x, nx, lin_loss, &a), numeric_grad(nwg, a.w, nw, lin_loss, &a), numeric_grad(nbg, a.b, N, lin_loss, &a);
        char what[96];
        mrec_linear_back_ref(dx, dw, db, g, x, w, 0, M, N, K);
        snprintf(what, sizeof what, "linear_back_ref %dx%dx%d: dx, dW, db", M, N, K);
        fd_check(what, nxg, dx, nx), fd_check(what, nwg, dw, nw), fd_check(what, nbg, db, N);
        mrec_linear_back_cpu(cx, cw, cb, g, x, w, 0, M, N, K, ctx->pool);
        snprintf(what, sizeof what, "linear_back_cpu %dx%dx%d: dx, dW, db", M, N, K);
        fd_check(what, nxg, cx, nx), fd_check(what, nwg, cw, nw), fd_check(what, nbg, cb, N);
        /* accumulate: a second call adds the same again */
        mrec_linear_back_cpu(cx, cw, cb, g, x, w, MREC_ACC_DX | MREC_ACC_PARAMS, M, N, K, ctx->pool);
        for (size_t i = 0; i < nw; i++) nwg[i] *= 2;
        for (int i = 0; i < N; i++) nbg[i] *= 2;
        for (size_t i = 0; i < nx; i++) nxg[i] *= 2;
        snprintf(what, sizeof what, "linear_back_cpu %dx%dx%d accumulated twice", M, N, K);
        fd_check(what, nxg, cx, nx), fd_check(what, nwg, cw, nw), fd_check(what, nbg, cb, N);
        float *ex = fmalloc(nx), *ew = fmalloc(nw), *eb = fmalloc(N);
        mrec_linear_back_cpu(cx, cw, cb, g, x, w, 0, M, N, K, ctx->pool);
        t_status(mrec_linear_back(ctx, ex, ew, eb, g, x, w, 0, M, N, K), MREC_OK, "linear_back entry");
        t_check(!memcmp(ex, cx, nx * 4) && !memcmp(ew, cw, nw * 4) && !memcmp(eb, cb, N * 4), "linear_back entry = _cpu %dx%dx%d", M, N, K);
        free(a.x), free(a.w), free(a.b), free(a.g), free(ex), free(ew), free(eb);
        free(x), free(w), free(b), free(g), free(dx), free(dw), free(db), free(cx), free(cw), free(cb), free(nxg), free(nwg), free(nbg);
    }
}

/* ---- LayerNorm ---- */

typedef struct {
    double *x, *w, *b, *g;
    int R, C;
} ln_fd;

static double ln_loss(void *arg) {
    ln_fd *a = arg;
    double s = 0;
    for (int r = 0; r < a->R; r++) {
        const double *x = a->x + (size_t)r * a->C;
        double m = 0, v = 0;
        for (int c = 0; c < a->C; c++) m += x[c];
        m /= a->C;
        for (int c = 0; c < a->C; c++) v += (x[c] - m) * (x[c] - m);
        double rs = 1 / sqrt(v / a->C + 1e-5);
        for (int c = 0; c < a->C; c++) s += a->g[(size_t)r * a->C + c] * ((x[c] - m) * rs * a->w[c] + a->b[c]);
    }
    return s;
}

static void test_layernorm(void) {
    static const int shapes[][2] = {{1, 2}, {3, 7}, {11, 37}, {5, 131}};
    for (int s = 0; s < 4; s++) {
        int R = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)R * C;
        float *x = frand(n, -2, 2), *w = frand(C, 0.5f, 1.5f), *b = frand(C, -1, 1), *g = frand(n, -1, 1);
        float *mean = fmalloc(R), *rstd = fmalloc(R), *cm = fmalloc(R), *cr = fmalloc(R);
        float *dx = fmalloc(n), *dw = fmalloc(C), *db = fmalloc(C), *cx = fmalloc(n), *cw = fmalloc(C), *cb = fmalloc(C);
        float *nx = fmalloc(n), *nw = fmalloc(C), *nb = fmalloc(C);
        ln_fd a = {to_double(x, n), to_double(w, C), to_double(b, C), to_double(g, n), R, C};
        numeric_grad(nx, a.x, n, ln_loss, &a), numeric_grad(nw, a.w, C, ln_loss, &a), numeric_grad(nb, a.b, C, ln_loss, &a);
        mrec_layernorm_stats_ref(mean, rstd, x, 1e-5f, R, C);
        mrec_layernorm_stats_cpu(cm, cr, x, 1e-5f, R, C, ctx->pool);
        t_check(!memcmp(mean, cm, R * 4) && !memcmp(rstd, cr, R * 4), "layernorm_stats_cpu = _ref (%d, %d)", R, C);
        char what[96];
        mrec_layernorm_back_ref(dx, dw, db, g, x, mean, rstd, w, 0, R, C);
        snprintf(what, sizeof what, "layernorm_back_ref (%d, %d): dx, dw, db", R, C);
        fd_check(what, nx, dx, n), fd_check(what, nw, dw, C), fd_check(what, nb, db, C);
        mrec_layernorm_back_cpu(cx, cw, cb, g, x, mean, rstd, w, 0, R, C, ctx->pool);
        snprintf(what, sizeof what, "layernorm_back_cpu (%d, %d): dx, dw, db", R, C);
        fd_check(what, nx, cx, n), fd_check(what, nw, cw, C), fd_check(what, nb, cb, C);
        /* against the size of the terms that cancel in dx (dy w rstd), not dx's own, which is ~0 for C = 2 */
        double terms = max_abs(g, n) * max_abs(w, C) * max_abs(rstd, R);
        t_allclose("layernorm_back_cpu dx = _ref", dx, cx, n, 1e-5 * terms, 1e-5);
        float *ex = fmalloc(n), *ew = fmalloc(C), *eb = fmalloc(C), *em = fmalloc(R), *er = fmalloc(R);
        t_status(mrec_layernorm_stats(ctx, em, er, x, 1e-5f, R, C), MREC_OK, "layernorm_stats entry");
        t_status(mrec_layernorm_back(ctx, ex, ew, eb, g, x, mean, rstd, w, 0, R, C), MREC_OK, "layernorm_back entry");
        t_check(!memcmp(em, cm, R * 4) && !memcmp(ex, cx, n * 4) && !memcmp(ew, cw, C * 4) && !memcmp(eb, cb, C * 4),
                "layernorm entries = _cpu (%d, %d)", R, C);
        free(ex), free(ew), free(eb), free(em), free(er);
        free(a.x), free(a.w), free(a.b), free(a.g), free(x), free(w), free(b), free(g), free(mean), free(rstd), free(cm), free(cr);
        free(dx), free(dw), free(db), free(cx), free(cw), free(cb), free(nx), free(nw), free(nb);
    }
}

/* ---- activations ---- */

static double act_d(mrec_act act, double v) {
    switch (act) {
    case MREC_ACT_GELU_ERF: return 0.5 * v * (1 + erf(v / sqrt(2.0)));
    case MREC_ACT_GELU_TANH: return 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    case MREC_ACT_QUICK_GELU: return v / (1 + exp(-1.702 * v));
    case MREC_ACT_RELU: return v > 0 ? v : 0;
    case MREC_ACT_LEAKY_RELU: return v > 0 ? v : 0.1 * v;
    case MREC_ACT_SILU: return v / (1 + exp(-v));
    default: return tanh(v);
    }
}

static void test_activations(void) {
    const char *names[] = {"gelu_erf", "gelu_tanh", "quick_gelu", "relu", "leaky_relu", "silu", "tanh"};
    int n = 4099; /* past a vector width and a chunk */
    float *x = frand(n, -4, 4), *dy = frand(n, -1, 1), *r = fmalloc(n), *c = fmalloc(n), *num = fmalloc(n), *e = fmalloc(n);
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) < 1e-3f) x[i] = 0.5f; /* away from ReLU's kink, where the difference quotient is not the derivative */
    for (int act = MREC_ACT_GELU_ERF; act <= MREC_ACT_TANH; act++) {
        for (int i = 0; i < n; i++) {
            double h = 1e-6;
            num[i] = (float)(dy[i] * (act_d((mrec_act)act, x[i] + h) - act_d((mrec_act)act, x[i] - h)) / (2 * h));
        }
        char what[96];
        mrec_activation_back_ref(r, dy, x, (mrec_act)act, 0.1f, n);
        snprintf(what, sizeof what, "activation_back_ref %s", names[act]);
        fd_check(what, num, r, n);
        mrec_activation_back_cpu(c, dy, x, (mrec_act)act, 0.1f, n, ctx->pool);
        snprintf(what, sizeof what, "activation_back_cpu %s", names[act]);
        fd_check(what, num, c, n);
        t_allclose(what, r, c, n, 1e-6, 1e-5); /* float erff / expf against double: a few ulps */
        t_status(mrec_activation_back(ctx, e, dy, x, (mrec_act)act, 0.1f, n), MREC_OK, "activation_back entry");
        t_check(!memcmp(e, c, (size_t)n * 4), "activation_back entry = _cpu %s", names[act]);
    }
    memcpy(e, dy, (size_t)n * 4);
    mrec_activation_back_cpu(e, e, x, MREC_ACT_QUICK_GELU, 0, n, ctx->pool);
    mrec_activation_back_cpu(c, dy, x, MREC_ACT_QUICK_GELU, 0, n, ctx->pool);
    t_check(!memcmp(e, c, (size_t)n * 4), "activation_back in place");
    t_status(mrec_activation_back(ctx, e, dy, x, (mrec_act)99, 0, n), MREC_ERR_ARG, "activation_back of an unknown activation");
    free(x), free(dy), free(r), free(c), free(num), free(e);
}

/* ---- softmax ---- */

typedef struct {
    double *x, *g;
    int R, C, causal;
} sm_fd;

static double sm_loss(void *arg) {
    sm_fd *a = arg;
    double s = 0;
    for (int r = 0; r < a->R; r++) {
        const double *x = a->x + (size_t)r * a->C;
        int n = a->causal ? r % a->C + 1 : a->C;
        double mx = -INFINITY, z = 0;
        for (int c = 0; c < n; c++) mx = fmax(mx, x[c]);
        for (int c = 0; c < n; c++) z += exp(x[c] - mx);
        for (int c = 0; c < n; c++) s += a->g[(size_t)r * a->C + c] * exp(x[c] - mx) / z;
    }
    return s;
}

static void test_softmax(void) {
    static const int shapes[][2] = {{1, 1}, {3, 7}, {22, 11}, {6, 67}};
    for (int s = 0; s < 4; s++)
        for (int causal = 0; causal < 2; causal++) {
            int R = shapes[s][0], C = shapes[s][1];
            size_t n = (size_t)R * C;
            float *x = frand(n, -3, 3), *g = frand(n, -1, 1), *y = fmalloc(n), *r = fmalloc(n), *c = fmalloc(n), *num = fmalloc(n);
            sm_fd a = {to_double(x, n), to_double(g, n), R, C, causal};
            numeric_grad(num, a.x, n, sm_loss, &a);
            /* the forward's output: in double here, masked entries 0 */
            for (int i = 0; i < R; i++) {
                int m = causal ? i % C + 1 : C;
                double mx = -INFINITY, z = 0;
                for (int j = 0; j < m; j++) mx = fmax(mx, a.x[(size_t)i * C + j]);
                for (int j = 0; j < m; j++) z += exp(a.x[(size_t)i * C + j] - mx);
                for (int j = 0; j < C; j++) y[(size_t)i * C + j] = j < m ? (float)(exp(a.x[(size_t)i * C + j] - mx) / z) : 0.0f;
            }
            char what[96];
            mrec_softmax_rows_back_ref(r, g, y, causal, R, C);
            snprintf(what, sizeof what, "softmax_rows_back_ref (%d, %d)%s", R, C, causal ? " causal" : "");
            fd_check(what, num, r, n);
            mrec_softmax_rows_back_cpu(c, g, y, causal, R, C, ctx->pool);
            snprintf(what, sizeof what, "softmax_rows_back_cpu (%d, %d)%s", R, C, causal ? " causal" : "");
            fd_check(what, num, c, n);
            t_allclose(what, r, c, n, 1e-6, 1e-5);
            memcpy(r, g, n * 4);
            t_status(mrec_softmax_rows_back(ctx, r, r, y, causal, R, C), MREC_OK, "softmax_rows_back entry, in place");
            t_check(!memcmp(r, c, n * 4), "softmax_rows_back entry in place = _cpu");
            free(a.x), free(a.g), free(x), free(g), free(y), free(r), free(c), free(num);
        }
}

/* ---- attention ---- */

typedef struct {
    double *q, *k, *v, *g;
    const float *mask, *hbias;
    double scale;
    int B, T, nh, dh;
} att_fd;

static double att_loss(void *arg) {
    att_fd *a = arg;
    int H = a->nh * a->dh, T = a->T;
    double s = 0, p[64];
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->nh; h++)
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, z = 0;
                for (int j = 0; j < T; j++) {
                    double d = 0;
                    for (int e = 0; e < a->dh; e++)
                        d += a->q[((size_t)b * T + i) * H + h * a->dh + e] * a->k[((size_t)b * T + j) * H + h * a->dh + e];
                    d = d * a->scale + (a->hbias ? a->hbias[((size_t)h * T + i) * T + j] : 0) + (a->mask ? a->mask[b * T + j] : 0);
                    p[j] = d;
                    mx = fmax(mx, d);
                }
                for (int j = 0; j < T; j++) z += p[j] = exp(p[j] - mx);
                for (int e = 0; e < a->dh; e++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += p[j] / z * a->v[((size_t)b * T + j) * H + h * a->dh + e];
                    s += a->g[((size_t)b * T + i) * H + h * a->dh + e] * o;
                }
            }
    return s;
}

static void test_attention(void) {
    static const int shapes[][4] = {{1, 1, 1, 1}, {2, 5, 3, 4}, {1, 7, 2, 5}, {3, 13, 1, 3}};
    for (int s = 0; s < 4; s++)
        for (int masks = 0; masks < 2; masks++) {
            int B = shapes[s][0], T = shapes[s][1], nh = shapes[s][2], dh = shapes[s][3];
            size_t n = (size_t)B * T * nh * dh;
            float *q = frand(n, -1, 1), *k = frand(n, -1, 1), *v = frand(n, -1, 1), *g = frand(n, -1, 1);
            float *mask = fmalloc((size_t)B * T), *hb = fmalloc((size_t)nh * T * T);
            mrec_causal_bias_ref(hb, nh, T);
            for (int i = 0; i < B * T; i++) mask[i] = (i % T == T - 1 && T > 2) ? -FLT_MAX : 0.0f; /* a padded last token */
            att_fd a = {to_double(q, n), to_double(k, n), to_double(v, n), to_double(g, n), masks ? mask : NULL, masks ? hb : NULL,
                        1 / sqrt((double)dh), B, T, nh, dh};
            float *nq = fmalloc(n), *nk = fmalloc(n), *nv = fmalloc(n);
            numeric_grad(nq, a.q, n, att_loss, &a), numeric_grad(nk, a.k, n, att_loss, &a), numeric_grad(nv, a.v, n, att_loss, &a);
            float *rq = fmalloc(n), *rk = fmalloc(n), *rv = fmalloc(n), *cq = fmalloc(n), *ck = fmalloc(n), *cv = fmalloc(n);
            float scale = (float)a.scale;
            char what[128];
            mrec_attention_back_ref(rq, rk, rv, g, q, k, v, a.mask, a.hbias, scale, B, T, nh, dh);
            snprintf(what, sizeof what, "attention_back_ref B%d T%d %dx%d%s: dq, dk, dv", B, T, nh, dh, masks ? " causal+padding" : "");
            fd_check(what, nq, rq, n), fd_check(what, nk, rk, n), fd_check(what, nv, rv, n);
            float *scratch = fmalloc(mrec_attention_back_scratch_floats(B, T, nh, dh));
            mrec_attention_back_cpu(cq, ck, cv, g, q, k, v, a.mask, a.hbias, scale, B, T, nh, dh, scratch, ctx->pool);
            snprintf(what, sizeof what, "attention_back_cpu B%d T%d %dx%d%s: dq, dk, dv", B, T, nh, dh, masks ? " causal+padding" : "");
            fd_check(what, nq, cq, n), fd_check(what, nk, ck, n), fd_check(what, nv, cv, n);
            size_t bytes = mrec_attention_back_workspace_bytes(ctx, B, T, nh, dh);
            void *work = malloc(bytes);
            float *eq = fmalloc(n), *ek = fmalloc(n), *ev = fmalloc(n);
            t_status(mrec_attention_back(ctx, eq, ek, ev, g, q, k, v, a.mask, a.hbias, scale, B, T, nh, dh, work), MREC_OK,
                     "attention_back entry");
            t_check(!memcmp(eq, cq, n * 4) && !memcmp(ek, ck, n * 4) && !memcmp(ev, cv, n * 4), "attention_back entry = _cpu");
            t_status(mrec_attention_back(ctx, eq, ek, ev, g, q, k, v, NULL, NULL, scale, B, T, nh, dh, NULL), MREC_ERR_ARG,
                     "attention_back without workspace");
            free(work), free(eq), free(ek), free(ev), free(scratch);
            free(a.q), free(a.k), free(a.v), free(a.g), free(q), free(k), free(v), free(g), free(mask), free(hb);
            free(nq), free(nk), free(nv), free(rq), free(rk), free(rv), free(cq), free(ck), free(cv);
        }
}

/* ---- embeddings, patches, class token, gathered rows: linear maps, their adjoints exact ---- */

static void test_scatters(void) {
    /* token embedding: ids with repeats and an unused row */
    enum { N = 23, V = 7, D = 13 };
    int32_t ids[N], pos[N];
    int64_t row_ptr[V + 1];
    for (int i = 0; i < N; i++) ids[i] = (i * 5 + i / 3) % (V - 1);
    float *dy = frand((size_t)N * D, -1, 1), *want = frand((size_t)V * D, -1, 1), *r = fmalloc((size_t)V * D),
          *c = fmalloc((size_t)V * D), *e = fmalloc((size_t)V * D);
    memcpy(r, want, sizeof(float) * V * D), memcpy(c, want, sizeof(float) * V * D), memcpy(e, want, sizeof(float) * V * D);
    for (int i = 0; i < N; i++) /* the gradient of sum(dy * table[ids]), row by row in position order */
        for (int d = 0; d < D; d++) want[ids[i] * D + d] += dy[i * D + d];
    t_status(mrec_index_csr_ref(row_ptr, pos, ids, N, V), MREC_OK, "index of the ids");
    mrec_embedding_back_ref(r, dy, row_ptr, pos, V, D);
    mrec_embedding_back_cpu(c, dy, row_ptr, pos, V, D, ctx->pool);
    t_status(mrec_embedding_back(ctx, e, dy, row_ptr, pos, V, D), MREC_OK, "embedding_back entry");
    t_check(!memcmp(want, r, sizeof(float) * V * D), "embedding_back_ref = scatter-add in position order, bit for bit");
    t_check(!memcmp(r, c, sizeof(float) * V * D) && !memcmp(r, e, sizeof(float) * V * D), "embedding_back _cpu, entry = _ref");
    free(dy), free(want), free(r), free(c), free(e);

    /* patches: S = 11 with P = 3 leaves two rows and columns outside every patch */
    for (int s = 0; s < 2; s++) {
        int B = 2, C = 3, S = s ? 11 : 6, P = s ? 3 : 2, G = S / P;
        size_t ni = (size_t)B * C * S * S, np = (size_t)B * G * G * C * P * P;
        float *img = frand(ni, -1, 1), *patches = fmalloc(np), *gp = frand(np, -1, 1), *di = fmalloc(ni), *ci = fmalloc(ni),
              *ei = fmalloc(ni);
        mrec_patchify_ref(patches, img, B, C, S, P);
        mrec_patchify_back_ref(di, gp, B, C, S, P);
        /* adjoint: <gp, patchify(img)> = <patchify_back(gp), img>, and pixels outside patches get 0 */
        double lhs = 0, rhs = 0;
        for (size_t i = 0; i < np; i++) lhs += (double)gp[i] * patches[i];
        for (size_t i = 0; i < ni; i++) rhs += (double)di[i] * img[i];
        int zeros = 1;
        for (size_t i = 0; i < ni; i++) {
            int x = (int)(i % S), y = (int)(i / S % S);
            if ((x >= G * P || y >= G * P) && di[i] != 0.0f) zeros = 0;
        }
        t_check(fabs(lhs - rhs) <= 1e-9 * (1 + fabs(lhs)) && zeros, "patchify_back_ref S %d P %d is the adjoint: %g vs %g", S, P, lhs, rhs);
        mrec_patchify_back_cpu(ci, gp, B, C, S, P, ctx->pool);
        t_status(mrec_patchify_back(ctx, ei, gp, B, C, S, P), MREC_OK, "patchify_back entry");
        t_check(!memcmp(di, ci, ni * 4) && !memcmp(di, ei, ni * 4), "patchify_back _cpu, entry = _ref S %d P %d", S, P);
        free(img), free(patches), free(gp), free(di), free(ci), free(ei);
    }

    /* class token and positions */
    {
        int B = 3, T = 5, H = 67;
        size_t n = (size_t)B * T * H;
        float *g = frand(n, -1, 1), *cls0 = frand(H, -1, 1), *pos0 = frand((size_t)T * H, -1, 1);
        float *rc = fmalloc(H), *rp = fmalloc((size_t)T * H), *cc = fmalloc(H), *cp = fmalloc((size_t)T * H), *ec = fmalloc(H),
              *ep = fmalloc((size_t)T * H), *numc = fmalloc(H), *nump = fmalloc((size_t)T * H);
        memcpy(rc, cls0, H * 4), memcpy(cc, cls0, H * 4), memcpy(ec, cls0, H * 4);
        memcpy(rp, pos0, (size_t)T * H * 4), memcpy(cp, pos0, (size_t)T * H * 4), memcpy(ep, pos0, (size_t)T * H * 4);
        /* d/d cls and d/d pos of sum(g * class_embed(x)): cls reaches row 0 of each sequence, pos[t] row t */
        for (int h = 0; h < H; h++) {
            double s = 0;
            for (int b = 0; b < B; b++) s += g[(size_t)b * T * H + h];
            numc[h] = (float)(cls0[h] + s);
        }
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                double s = 0;
                for (int b = 0; b < B; b++) s += g[((size_t)b * T + t) * H + h];
                nump[(size_t)t * H + h] = (float)(pos0[(size_t)t * H + h] + s);
            }
        mrec_class_embed_back_ref(rc, rp, g, B, T, H);
        mrec_class_embed_back_cpu(cc, cp, g, B, T, H, ctx->pool);
        t_status(mrec_class_embed_back(ctx, ec, ep, g, B, T, H), MREC_OK, "class_embed_back entry");
        t_allclose("class_embed_back_ref dcls", numc, rc, H, 0, 1e-6);
        t_allclose("class_embed_back_ref dpos", nump, rp, (int64_t)T * H, 0, 1e-6);
        t_check(!memcmp(rc, cc, H * 4) && !memcmp(rp, cp, (size_t)T * H * 4) && !memcmp(rc, ec, H * 4) && !memcmp(rp, ep, (size_t)T * H * 4),
                "class_embed_back _cpu, entry = _ref");
        memcpy(cc, cls0, H * 4);
        mrec_class_embed_back_cpu(cc, NULL, g, B, T, H, ctx->pool);
        t_check(!memcmp(rc, cc, H * 4), "class_embed_back_cpu without positions");
        free(g), free(cls0), free(pos0), free(rc), free(rp), free(cc), free(cp), free(ec), free(ep), free(numc), free(nump);
    }

    /* the gathered rows: the end-of-text tokens of 4 sequences of 7, one row named twice */
    {
        int B = 4, T = 7, H = 37;
        int32_t rows[4] = {3, 7 + 6, 14 + 0, 3};
        float *dy = frand((size_t)B * H, -1, 1), *x0 = frand((size_t)B * T * H, -1, 1), *r = fmalloc((size_t)B * T * H),
              *c = fmalloc((size_t)B * T * H), *e = fmalloc((size_t)B * T * H), *want = fmalloc((size_t)B * T * H);
        memcpy(r, x0, (size_t)B * T * H * 4), memcpy(c, x0, (size_t)B * T * H * 4), memcpy(e, x0, (size_t)B * T * H * 4);
        memcpy(want, x0, (size_t)B * T * H * 4);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) want[(size_t)rows[b] * H + h] += dy[(size_t)b * H + h];
        mrec_gather_rows_back_ref(r, dy, rows, B, H);
        mrec_gather_rows_back_cpu(c, dy, rows, B, H, ctx->pool);
        t_status(mrec_gather_rows_back(ctx, e, dy, rows, B, H), MREC_OK, "gather_rows_back entry");
        t_check(!memcmp(want, r, (size_t)B * T * H * 4), "gather_rows_back_ref adds each row in b order");
        t_check(!memcmp(r, c, (size_t)B * T * H * 4) && !memcmp(r, e, (size_t)B * T * H * 4), "gather_rows_back _cpu, entry = _ref");
        free(dy), free(x0), free(r), free(c), free(e), free(want);
    }
}

/* ---- CLIP's loss ---- */

typedef struct {
    double *L;
    int N;
} cl_fd;

static double clip_loss_d(void *arg) {
    cl_fd *a = arg;
    int N = a->N;
    double loss = 0;
    for (int i = 0; i < N; i++) {
        double mr = -INFINITY, mc = -INFINITY, zr = 0, zc = 0;
        for (int j = 0; j < N; j++) mr = fmax(mr, a->L[i * N + j]), mc = fmax(mc, a->L[j * N + i]);
        for (int j = 0; j < N; j++) zr += exp(a->L[i * N + j] - mr), zc += exp(a->L[j * N + i] - mc);
        loss += mr + log(zr) + mc + log(zc) - 2 * a->L[i * N + i];
    }
    return loss / (2.0 * N);
}

static void test_clip_loss(void) {
    static const int sizes[] = {1, 2, 7, 67};
    for (int s = 0; s < 4; s++) {
        int N = sizes[s];
        size_t n = (size_t)N * N;
        float *L = frand(n, -8, 8), *num = fmalloc(n), *r = fmalloc(n), *c = fmalloc(n), *e = fmalloc(n);
        double out_r[2], out_c[2], out_e[2], *work = malloc(sizeof(double) * 3 * N);
        cl_fd a = {to_double(L, n), N};
        numeric_grad(num, a.L, n, clip_loss_d, &a);
        double loss = clip_loss_d(&a);
        /* d loss / d logit_scale, logits = e^s S: the derivative at s of loss(e^(s + h) S / e^s) */
        double h = 1e-6, dscale;
        {
            double *keep = to_double(L, n);
            for (size_t i = 0; i < n; i++) a.L[i] = keep[i] * exp(h);
            double up = clip_loss_d(&a);
            for (size_t i = 0; i < n; i++) a.L[i] = keep[i] * exp(-h);
            dscale = (up - clip_loss_d(&a)) / (2 * h);
            free(keep);
        }
        char what[96];
        mrec_clip_loss_ref(r, out_r, L, N);
        mrec_clip_loss_cpu(c, out_c, L, N, work, ctx->pool);
        snprintf(what, sizeof what, "clip_loss_ref N %d: dlogits", N);
        fd_check(what, num, r, n);
        snprintf(what, sizeof what, "clip_loss_cpu N %d: dlogits", N);
        fd_check(what, num, c, n);
        t_allclose(what, r, c, n, 1e-7, 1e-6);
        t_check(fabs(out_r[0] - loss) <= 1e-12 * (1 + loss) && fabs(out_c[0] - loss) <= 1e-12 * (1 + loss),
                "clip_loss N %d: loss %.15g, ref %.15g, cpu %.15g", N, loss, out_r[0], out_c[0]);
        t_check(fabs(out_r[1] - dscale) <= 1e-6 * (1 + fabs(dscale)) && fabs(out_c[1] - dscale) <= 1e-6 * (1 + fabs(dscale)),
                "clip_loss N %d: d logit_scale %.10g, ref %.10g, cpu %.10g", N, dscale, out_r[1], out_c[1]);
        t_status(mrec_clip_loss(ctx, e, out_e, L, N, work), MREC_OK, "clip_loss entry");
        t_check(!memcmp(e, c, n * 4) && out_e[0] == out_c[0] && out_e[1] == out_c[1], "clip_loss entry = _cpu");
        free(a.L), free(L), free(num), free(r), free(c), free(e), free(work);
    }
    t_status(mrec_clip_loss(ctx, NULL, NULL, NULL, 0, NULL), MREC_ERR_ARG, "clip_loss of an empty batch");
}

/* ---- AdamW, the norm, the schedule ---- */

static void test_optimizer(void) {
    int64_t n = 10007;
    float *p0 = frand(n, -1, 1), *g = frand(n, -1, 1), *pr = fmalloc(n), *pc = fmalloc(n), *mr = fmalloc(n), *mc = fmalloc(n),
          *vr = fmalloc(n), *vc = fmalloc(n);
    memcpy(pr, p0, n * 4), memcpy(pc, p0, n * 4);
    memset(mr, 0, n * 4), memset(mc, 0, n * 4), memset(vr, 0, n * 4), memset(vc, 0, n * 4);
    for (int step = 1; step <= 3; step++) {
        mrec_adamw_ref(pr, mr, vr, g, 0.01, 0.9, 0.98, 1e-6, 0.2, step, n);
        mrec_adamw_cpu(pc, mc, vc, g, 0.01, 0.9, 0.98, 1e-6, 0.2, step, n, ctx->pool);
    }
    /* float against double: the update lr m / (sqrt v + eps) is ~1e-2, good to a few float ulps of the parameter */
    t_allclose("adamw_cpu = _ref after 3 steps", pr, pc, n, 1e-6, 1e-6);
    t_status(mrec_adamw(ctx, pc, mc, vc, g, 0.01, 0.9, 0.98, 1e-6, 0.2, 0, n), MREC_ERR_ARG, "adamw at step 0");
    double sr = 0.5, sc = 0.5, se = 0.5;
    mrec_sum_squares_ref(&sr, g, n);
    mrec_sum_squares_cpu(&sc, g, n, ctx->pool);
    t_status(mrec_sum_squares(ctx, &se, g, n), MREC_OK, "sum_squares entry");
    double want = 0.5;
    for (int64_t i = 0; i < n; i++) want += (double)g[i] * g[i];
    t_check(sr == sc && sr == se && fabs(sr - want) <= 1e-12 * want, "sum_squares adds to out, the same bits: %.17g %.17g %.17g", sr, sc, se);
    free(p0), free(g), free(pr), free(pc), free(mr), free(mc), free(vr), free(vc);

    /* the schedule: warm-up 10 steps to 1e-3, cosine to 1e-5 at 110 */
    struct { int64_t step; double want; } pts[] = {{0, 0}, {5, 5e-4}, {10, 1e-3}, {60, (1e-3 + 1e-5) / 2}, {110, 1e-5}, {500, 1e-5},
                                                   {35, 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + cos(M_PI * 0.25))}};
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        double lr = mrec_lr_warmup_cosine(pts[i].step, 10, 110, 1e-3, 1e-5);
        t_check(fabs(lr - pts[i].want) <= 1e-15, "lr at step %lld: %.17g, expected %.17g", (long long)pts[i].step, lr, pts[i].want);
    }
    t_check(mrec_lr_warmup_cosine(3, 0, 0, 1e-3, 0) == 0, "no warm-up, no decay steps: the floor");
}

/* ---- PyTorch ---- */

static float *fx(const char *name, int64_t want) {
    char path[512];
    snprintf(path, sizeof path, "tests/fixtures/clip_backward/%s.npy", name);
    float *data = NULL;
    int nd = 0;
    int64_t shape[8];
    if (mrec_npy_read_f32(path, &data, &nd, shape) != MREC_OK) {
        t_check(0, "read %s: %s", path, mrec_error_detail());
        return NULL;
    }
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    if (n != want) {
        t_check(0, "%s: %lld values, expected %lld", path, (long long)n, (long long)want);
        free(data);
        return NULL;
    }
    return data;
}

/* 1e-4 of the tensor's largest magnitude: float32 ops against float64 autograd. A gradient that is zero in
 * exact arithmetic (the key bias: softmax ignores a constant added to a row of scores) is float rounding
 * noise, ~1e-7 here; the floor 1e-6 is 1e-4 of the block's typical gradient, 0.01. */
static void golden_check(const char *what, const float *want, const float *got, int64_t n) {
    if (want) t_allclose(what, want, got, n, 1e-4 * fmax(max_abs(want, (size_t)n), 0.01), 0);
}

enum { GB = 2, GT = 5, GH = 12, GNH = 3, GI = 20 };
static const char *block_names[16] = {
    "layer_norm1.weight", "layer_norm1.bias", "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight",
    "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.out_proj.weight",
    "self_attn.out_proj.bias", "layer_norm2.weight", "layer_norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
    "mlp.fc2.bias"};

static void test_golden_block(void) {
    const int BT = GB * GT, H = GH, I = GI, dh = GH / GNH;
    int64_t sizes[16] = {H, H, H * H, H, H * H, H, H * H, H, H * H, H, H, H, I * H, I, H * I, H};
    float *w[16], *dw[16], *want[16];
    char name[128];
    int ok = 1;
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof name, "block_%s", block_names[i]);
        ok &= (w[i] = fx(name, sizes[i])) != NULL;
        snprintf(name, sizeof name, "block_d_%s", block_names[i]);
        ok &= (want[i] = fx(name, sizes[i])) != NULL;
        dw[i] = fmalloc(sizes[i]);
    }
    float *x = fx("block_x", BT * H), *dy = fx("block_dy", BT * H), *out_want = fx("block_out", BT * H), *dx_want = fx("block_d_x", BT * H);
    if (!ok || !x || !dy || !out_want || !dx_want) return;
    enum { L1W, L1B, QW, QB, KW, KB, VW, VB, OW, OB, L2W, L2B, F1W, F1B, F2W, F2B };
    /* forward through the entries, keeping what the backward reads */
    float *h1 = fmalloc(BT * H), *q = fmalloc(BT * H), *k = fmalloc(BT * H), *v = fmalloc(BT * H), *a = fmalloc(BT * H),
          *x1 = fmalloc(BT * H), *h2 = fmalloc(BT * H), *pre = fmalloc(BT * I), *f = fmalloc(BT * I), *out = fmalloc(BT * H);
    float m1[GB * GT], r1[GB * GT], m2[GB * GT], r2[GB * GT], causal[GNH * GT * GT];
    float scale = 1 / sqrtf((float)dh);
    size_t wb = mrec_attention_workspace_bytes(ctx, GB, GT, GNH, dh), bb = mrec_attention_back_workspace_bytes(ctx, GB, GT, GNH, dh);
    void *work = malloc(wb > bb ? wb : bb);
    mrec_status st = mrec_causal_bias(ctx, causal, GNH, GT);
    if (!st) st = mrec_layernorm_stats(ctx, m1, r1, x, 1e-5f, BT, H);
    if (!st) st = mrec_layernorm(ctx, h1, x, w[L1W], w[L1B], 1e-5f, BT, H);
    if (!st) st = mrec_gemm(ctx, q, h1, w[QW], w[QB], 1, 0, 0, 1, BT, H, H, H, H, H);
    if (!st) st = mrec_gemm(ctx, k, h1, w[KW], w[KB], 1, 0, 0, 1, BT, H, H, H, H, H);
    if (!st) st = mrec_gemm(ctx, v, h1, w[VW], w[VB], 1, 0, 0, 1, BT, H, H, H, H, H);
    if (!st) st = mrec_attention(ctx, a, q, k, v, NULL, causal, scale, GB, GT, GNH, dh, work);
    if (!st) memcpy(x1, x, sizeof(float) * BT * H);
    if (!st) st = mrec_gemm(ctx, x1, a, w[OW], w[OB], 1, 1, 0, 1, BT, H, H, H, H, H);
    if (!st) st = mrec_layernorm_stats(ctx, m2, r2, x1, 1e-5f, BT, H);
    if (!st) st = mrec_layernorm(ctx, h2, x1, w[L2W], w[L2B], 1e-5f, BT, H);
    if (!st) st = mrec_gemm(ctx, pre, h2, w[F1W], w[F1B], 1, 0, 0, 1, BT, I, H, H, H, I);
    if (!st) st = mrec_activation(ctx, f, pre, MREC_ACT_QUICK_GELU, 0, (int64_t)BT * I);
    if (!st) memcpy(out, x1, sizeof(float) * BT * H);
    if (!st) st = mrec_gemm(ctx, out, f, w[F2W], w[F2B], 1, 1, 0, 1, BT, H, I, I, I, H);
    t_status(st, MREC_OK, "golden block forward");
    golden_check("golden block forward output", out_want, out, BT * H);
    /* backward, top to bottom */
    float *df = fmalloc(BT * I), *dh2 = fmalloc(BT * H), *dx1 = fmalloc(BT * H), *da = fmalloc(BT * H), *dq = fmalloc(BT * H),
          *dk = fmalloc(BT * H), *dv = fmalloc(BT * H), *dh1 = fmalloc(BT * H), *dx = fmalloc(BT * H);
    st = mrec_linear_back(ctx, df, dw[F2W], dw[F2B], dy, f, w[F2W], 0, BT, H, I);
    if (!st) st = mrec_activation_back(ctx, df, df, pre, MREC_ACT_QUICK_GELU, 0, (int64_t)BT * I);
    if (!st) st = mrec_linear_back(ctx, dh2, dw[F1W], dw[F1B], df, h2, w[F1W], 0, BT, I, H);
    if (!st) memcpy(dx1, dy, sizeof(float) * BT * H); /* the residual */
    if (!st) st = mrec_layernorm_back(ctx, dx1, dw[L2W], dw[L2B], dh2, x1, m2, r2, w[L2W], MREC_ACC_DX, BT, H);
    if (!st) st = mrec_linear_back(ctx, da, dw[OW], dw[OB], dx1, a, w[OW], 0, BT, H, H);
    if (!st) st = mrec_attention_back(ctx, dq, dk, dv, da, q, k, v, NULL, causal, scale, GB, GT, GNH, dh, work);
    if (!st) st = mrec_linear_back(ctx, dh1, dw[QW], dw[QB], dq, h1, w[QW], 0, BT, H, H);
    /* k and v add into q's input gradient; their own weights' gradients are fresh */
    if (!st) st = mrec_linear_back(ctx, dh1, dw[KW], dw[KB], dk, h1, w[KW], MREC_ACC_DX, BT, H, H);
    if (!st) st = mrec_linear_back(ctx, dh1, dw[VW], dw[VB], dv, h1, w[VW], MREC_ACC_DX, BT, H, H);
    if (!st) memcpy(dx, dx1, sizeof(float) * BT * H);
    if (!st) st = mrec_layernorm_back(ctx, dx, dw[L1W], dw[L1B], dh1, x, m1, r1, w[L1W], MREC_ACC_DX, BT, H);
    t_status(st, MREC_OK, "golden block backward");
    golden_check("golden block d x", dx_want, dx, BT * H);
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof name, "golden block d %s", block_names[i]);
        golden_check(name, want[i], dw[i], sizes[i]);
    }
    for (int i = 0; i < 16; i++) free(w[i]), free(dw[i]), free(want[i]);
    free(x), free(dy), free(out_want), free(dx_want), free(h1), free(q), free(k), free(v), free(a), free(x1), free(h2), free(pre),
        free(f), free(out), free(df), free(dh2), free(dx1), free(da), free(dq), free(dk), free(dv), free(dh1), free(dx), free(work);
}

static void test_golden_loss(void) {
    enum { N = 6, D = 8 };
    float *img = fx("loss_img", N * D), *txt = fx("loss_txt", N * D), *s = fx("loss_logit_scale", 1), *lv = fx("loss_value", 1),
          *di_want = fx("loss_d_img", N * D), *dt_want = fx("loss_d_txt", N * D), *ds_want = fx("loss_d_logit_scale", 1);
    if (!img || !txt || !s || !lv || !di_want || !dt_want || !ds_want) return;
    float in[N * D], tn[N * D], L[N * N], G[N * N], dinn[N * D], dtn[N * D], di[N * D], dt[N * D];
    double out[2], work[3 * N];
    float e = expf(s[0]);
    mrec_status st = mrec_l2_normalize_rows(ctx, in, img, 1e-12f, N, D);
    if (!st) st = mrec_l2_normalize_rows(ctx, tn, txt, 1e-12f, N, D);
    if (!st) st = mrec_gemm(ctx, L, in, tn, NULL, e, 0, 0, 1, N, N, D, D, D, N); /* rows: images */
    if (!st) st = mrec_clip_loss(ctx, G, out, L, N, work);
    if (!st) st = mrec_gemm(ctx, dinn, G, tn, NULL, e, 0, 0, 0, N, D, N, N, D, D);
    if (!st) st = mrec_gemm(ctx, dtn, G, in, NULL, e, 0, 1, 0, N, D, N, N, D, D);
    if (!st) st = mrec_l2_normalize_rows_back(ctx, di, dinn, in, img, 1e-12f, 0, N, D);
    if (!st) st = mrec_l2_normalize_rows_back(ctx, dt, dtn, tn, txt, 1e-12f, 0, N, D);
    t_status(st, MREC_OK, "golden contrastive head");
    t_check(fabs(out[0] - lv[0]) <= 1e-6 * fabs(lv[0]), "golden clip loss %.9g, torch %.9g", out[0], lv[0]);
    t_check(fabs(out[1] - ds_want[0]) <= 1e-4 * fabs(ds_want[0]), "golden d logit_scale %.9g, torch %.9g", out[1], ds_want[0]);
    golden_check("golden d image features", di_want, di, N * D);
    golden_check("golden d text features", dt_want, dt, N * D);
    free(img), free(txt), free(s), free(lv), free(di_want), free(dt_want), free(ds_want);
}

static void test_golden_optimizer(void) {
    float *w = fx("adamw_w0", 35), *b = fx("adamw_b0", 5), *w3 = fx("adamw_w3", 35), *b3 = fx("adamw_b3", 5), *mw3 = fx("adamw_mw3", 35),
          *vw3 = fx("adamw_vw3", 35), *gw[3], *gb[3];
    char name[64];
    int ok = w && b && w3 && b3 && mw3 && vw3;
    for (int s = 0; s < 3; s++) {
        snprintf(name, sizeof name, "adamw_gw%d", s + 1);
        ok &= (gw[s] = fx(name, 35)) != NULL;
        snprintf(name, sizeof name, "adamw_gb%d", s + 1);
        ok &= (gb[s] = fx(name, 5)) != NULL;
    }
    if (!ok) return;
    float mw[35] = {0}, vw[35] = {0}, mb[5] = {0}, vb[5] = {0}, grad_w[35], grad_b[5];
    mrec_param_tensor t[2] = {{w, mw, vw, grad_w, 35, 1}, {b, mb, vb, grad_b, 5, 0}};
    mrec_adamw_options o = {0.01, 0.9, 0.98, 1e-6, 0.2};
    mrec_status st = MREC_OK;
    for (int s = 0; s < 3 && !st; s++) {
        memcpy(grad_w, gw[s], sizeof grad_w), memcpy(grad_b, gb[s], sizeof grad_b);
        st = mrec_adamw_step(ctx, t, 2, &o, o.lr, s + 1);
    }
    t_status(st, MREC_OK, "adamw steps");
    /* the same float operations as torch's single-tensor AdamW: a few ulps */
    t_allclose("adamw weight (decayed) after 3 steps = torch.optim.AdamW", w3, w, 35, 1e-7, 1e-6);
    t_allclose("adamw bias (no decay) after 3 steps = torch.optim.AdamW", b3, b, 5, 1e-7, 1e-6);
    t_allclose("adamw first moment", mw3, mw, 35, 1e-8, 1e-6);
    t_allclose("adamw second moment", vw3, vw, 35, 1e-9, 1e-6);
    for (int s = 0; s < 3; s++) free(gw[s]), free(gb[s]);
    free(w), free(b), free(w3), free(b3), free(mw3), free(vw3);

    int64_t sizes[3] = {36, 13, 30};
    float *g[3], *want[3], *norm = fx("clip_norm", 1);
    ok = norm != NULL;
    mrec_param_tensor pt[3];
    memset(pt, 0, sizeof pt);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "clip_g%d", i);
        ok &= (g[i] = fx(name, sizes[i])) != NULL;
        snprintf(name, sizeof name, "clip_clipped%d", i);
        ok &= (want[i] = fx(name, sizes[i])) != NULL;
        pt[i].grad = g[i], pt[i].n = sizes[i];
    }
    if (!ok) return;
    double total = 0, dwork;
    t_status(mrec_clip_grad_norm(ctx, pt, 3, 1.0f, &total, &dwork), MREC_OK, "clip_grad_norm");
    t_check(fabs(total - norm[0]) <= 1e-6 * norm[0] && norm[0] > 1, "clip_grad_norm: norm %.9g, torch %.9g", total, norm[0]);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "clip_grad_norm: gradient %d = torch's clipped", i);
        t_allclose(name, want[i], g[i], sizes[i], 1e-7, 1e-6);
    }
    /* under the limit nothing changes */
    float keep[36];
    memcpy(keep, g[0], sizeof keep);
    t_status(mrec_clip_grad_norm(ctx, pt, 1, 1e6f, &total, &dwork), MREC_OK, "clip_grad_norm under the limit");
    t_check(!memcmp(keep, g[0], sizeof keep), "clip_grad_norm under the limit leaves the gradients");
    for (int i = 0; i < 3; i++) free(g[i]), free(want[i]);
    free(norm);
}

/* ---- CUDA ---- */

static mrec_cuda *cu;

static void *up(const void *host, size_t bytes) {
    void *d = NULL;
    if (mrec_cuda_malloc(cu, &d, bytes ? bytes : 4)) return NULL;
    if (host && mrec_cuda_copy_h2d(cu, d, host, bytes)) return NULL;
    return d;
}

static int down(void *host, const void *dev, size_t bytes) { return mrec_cuda_copy_d2h(cu, host, dev, bytes) == MREC_OK; }

static void test_cuda(void) {
    if (mrec_cuda_create(&cu, 0) != MREC_OK) {
        t_no_gpu(mrec_error_detail());
        t_skip("CUDA backward ops: %s", mrec_error_detail());
        mrec_clear_error();
        return;
    }
    int M = 13, N = 17, K = 67, R = 11, C = 37;
    /* linear */
    {
        float *x = frand((size_t)M * K, -1, 1), *w = frand((size_t)N * K, -1, 1), *dy = frand((size_t)M * N, -1, 1);
        float *rx = fmalloc((size_t)M * K), *rw = fmalloc((size_t)N * K), *rb = fmalloc(N), *gx = fmalloc((size_t)M * K),
              *gw = fmalloc((size_t)N * K), *gb = fmalloc(N);
        mrec_linear_back_ref(rx, rw, rb, dy, x, w, 0, M, N, K);
        float *dx_ = up(NULL, 4 * (size_t)M * K), *dw_ = up(NULL, 4 * (size_t)N * K), *db_ = up(NULL, 4 * N);
        int ok = !mrec_linear_back_cuda(dx_, dw_, db_, up(dy, 4 * (size_t)M * N), up(x, 4 * (size_t)M * K), up(w, 4 * (size_t)N * K), 0, M,
                                        N, K, cu);
        ok = ok && down(gx, dx_, 4 * (size_t)M * K) && down(gw, dw_, 4 * (size_t)N * K) && down(gb, db_, 4 * N);
        if (t_check(ok, "cuda linear_back ran: %s", mrec_error_detail())) {
            t_allclose("cuda linear_back dx", rx, gx, (int64_t)M * K, 1e-5 * max_abs(rx, (size_t)M * K), 1e-5);
            t_allclose("cuda linear_back dW", rw, gw, (int64_t)N * K, 1e-5 * max_abs(rw, (size_t)N * K), 1e-5);
            t_allclose("cuda linear_back db", rb, gb, N, 1e-6, 1e-6);
        }
        free(x), free(w), free(dy), free(rx), free(rw), free(rb), free(gx), free(gw), free(gb);
    }
    /* LayerNorm, activations, softmax */
    {
        size_t n = (size_t)R * C;
        float *x = frand(n, -2, 2), *w = frand(C, 0.5f, 1.5f), *dy = frand(n, -1, 1), mean[11], rstd[11], gmean[11], grstd[11];
        float *rx = fmalloc(n), *rw = fmalloc(C), *rb = fmalloc(C), *gx = fmalloc(n), *gw = fmalloc(C), *gb = fmalloc(C);
        mrec_layernorm_stats_ref(mean, rstd, x, 1e-5f, R, C);
        mrec_layernorm_back_ref(rx, rw, rb, dy, x, mean, rstd, w, 0, R, C);
        float *x_ = up(x, 4 * n), *w_ = up(w, 4 * C), *dy_ = up(dy, 4 * n), *m_ = up(NULL, 4 * R), *r_ = up(NULL, 4 * R), *dx_ = up(NULL, 4 * n),
              *dw_ = up(NULL, 4 * C), *db_ = up(NULL, 4 * C);
        int ok = !mrec_layernorm_stats_cuda(m_, r_, x_, 1e-5f, R, C, cu) && down(gmean, m_, 4 * R) && down(grstd, r_, 4 * R);
        ok = ok && !mrec_layernorm_back_cuda(dx_, dw_, db_, dy_, x_, m_, r_, w_, 0, R, C, cu);
        ok = ok && down(gx, dx_, 4 * n) && down(gw, dw_, 4 * C) && down(gb, db_, 4 * C);
        if (t_check(ok, "cuda layernorm backward ran: %s", mrec_error_detail())) {
            t_allclose("cuda layernorm_stats mean", mean, gmean, R, 1e-6, 1e-6);
            t_allclose("cuda layernorm_stats rstd", rstd, grstd, R, 0, 1e-6);
            t_allclose("cuda layernorm_back dx", rx, gx, n, 1e-5 * max_abs(rx, n), 1e-5);
            t_allclose("cuda layernorm_back dw", rw, gw, C, 1e-5 * max_abs(rw, C), 1e-5);
            t_allclose("cuda layernorm_back db", rb, gb, C, 1e-5 * max_abs(rb, C), 1e-5);
        }
        for (int act = MREC_ACT_GELU_ERF; act <= MREC_ACT_TANH; act++) {
            mrec_activation_back_ref(rx, dy, x, (mrec_act)act, 0.1f, n);
            ok = !mrec_activation_back_cuda(dx_, dy_, x_, (mrec_act)act, 0.1f, n, cu) && down(gx, dx_, 4 * n);
            if (t_check(ok, "cuda activation_back %d ran: %s", act, mrec_error_detail())) t_allclose("cuda activation_back", rx, gx, n, 1e-6, 1e-5);
        }
        for (int causal = 0; causal < 2; causal++) {
            float *y = fmalloc(n);
            mrec_softmax_rows_ref(y, x, NULL, R, C, 1);
            float *y_ = up(y, 4 * n);
            mrec_softmax_rows_back_ref(rx, dy, y, causal, R, C);
            ok = !mrec_softmax_rows_back_cuda(dx_, dy_, y_, causal, R, C, cu) && down(gx, dx_, 4 * n);
            if (t_check(ok, "cuda softmax_rows_back ran: %s", mrec_error_detail())) t_allclose("cuda softmax_rows_back", rx, gx, n, 1e-6, 1e-5);
            free(y);
        }
        free(x), free(w), free(dy), free(rx), free(rw), free(rb), free(gx), free(gw), free(gb);
    }
    /* attention */
    {
        int B = 2, T = 7, nh = 3, dh = 5;
        size_t n = (size_t)B * T * nh * dh;
        float *q = frand(n, -1, 1), *k = frand(n, -1, 1), *v = frand(n, -1, 1), *g = frand(n, -1, 1), *hb = fmalloc((size_t)nh * T * T);
        mrec_causal_bias_ref(hb, nh, T);
        float *r[3] = {fmalloc(n), fmalloc(n), fmalloc(n)}, *o[3] = {fmalloc(n), fmalloc(n), fmalloc(n)};
        mrec_attention_back_ref(r[0], r[1], r[2], g, q, k, v, NULL, hb, 0.45f, B, T, nh, dh);
        float *d[3] = {up(NULL, 4 * n), up(NULL, 4 * n), up(NULL, 4 * n)};
        void *work = up(NULL, mrec_attention_back_workspace_bytes_cuda(B, T, nh, dh));
        int ok = !mrec_attention_back_cuda(d[0], d[1], d[2], up(g, 4 * n), up(q, 4 * n), up(k, 4 * n), up(v, 4 * n), NULL,
                                           up(hb, 4 * (size_t)nh * T * T), 0.45f, B, T, nh, dh, work, cu);
        for (int i = 0; i < 3; i++) ok = ok && down(o[i], d[i], 4 * n);
        if (t_check(ok, "cuda attention_back ran: %s", mrec_error_detail()))
            for (int i = 0; i < 3; i++) t_allclose("cuda attention_back dq, dk, dv", r[i], o[i], n, 1e-5 * max_abs(r[i], n), 1e-5);
        for (int i = 0; i < 3; i++) free(r[i]), free(o[i]);
        free(q), free(k), free(v), free(g), free(hb);
    }
    /* scatters: embedding, patches, class token, rows */
    {
        enum { NT = 23, V = 7, D = 13 };
        int32_t ids[NT], pos[NT];
        int64_t row_ptr[V + 1];
        for (int i = 0; i < NT; i++) ids[i] = (i * 5 + i / 3) % (V - 1);
        mrec_index_csr_ref(row_ptr, pos, ids, NT, V);
        float *dy = frand((size_t)NT * D, -1, 1), *t0 = frand((size_t)V * D, -1, 1), *got = fmalloc((size_t)V * D);
        float *t_ = up(t0, 4 * (size_t)V * D);
        mrec_embedding_back_ref(t0, dy, row_ptr, pos, V, D);
        int ok = !mrec_embedding_back_cuda(t_, up(dy, 4 * (size_t)NT * D), up(row_ptr, sizeof row_ptr), up(pos, sizeof pos), V, D, cu) &&
                 down(got, t_, 4 * (size_t)V * D);
        t_check(ok && !memcmp(got, t0, 4 * (size_t)V * D), "cuda embedding_back = _ref, bit for bit");
        free(dy), free(t0), free(got);
        int B = 2, Cc = 3, S = 11, P = 3, G = S / P;
        size_t ni = (size_t)B * Cc * S * S, np = (size_t)B * G * G * Cc * P * P;
        float *gp = frand(np, -1, 1), *ri = fmalloc(ni), *gi = fmalloc(ni), *di_ = up(NULL, 4 * ni);
        mrec_patchify_back_ref(ri, gp, B, Cc, S, P);
        ok = !mrec_patchify_back_cuda(di_, up(gp, 4 * np), B, Cc, S, P, cu) && down(gi, di_, 4 * ni);
        t_check(ok && !memcmp(ri, gi, 4 * ni), "cuda patchify_back = _ref, bit for bit");
        free(gp), free(ri), free(gi);
        int T = 5, H = 67;
        float *dx = frand((size_t)B * T * H, -1, 1), *rc = frand(H, -1, 1), *rp = frand((size_t)T * H, -1, 1), *gc = fmalloc(H),
              *gpos = fmalloc((size_t)T * H);
        float *c_ = up(rc, 4 * H), *p_ = up(rp, 4 * (size_t)T * H);
        mrec_class_embed_back_ref(rc, rp, dx, B, T, H);
        ok = !mrec_class_embed_back_cuda(c_, p_, up(dx, 4 * (size_t)B * T * H), B, T, H, cu) && down(gc, c_, 4 * H) &&
             down(gpos, p_, 4 * (size_t)T * H);
        t_check(ok && !memcmp(rc, gc, 4 * H) && !memcmp(rp, gpos, 4 * (size_t)T * H), "cuda class_embed_back = _ref, bit for bit");
        int32_t rows[3] = {4, 9, 4};
        float *gy = frand(3 * (size_t)H, -1, 1);
        float *x_ = up(dx, 4 * (size_t)B * T * H);
        mrec_gather_rows_back_ref(dx, gy, rows, 3, H);
        float *back = fmalloc((size_t)B * T * H);
        ok = !mrec_gather_rows_back_cuda(x_, up(gy, 4 * 3 * (size_t)H), up(rows, sizeof rows), 3, H, cu) && down(back, x_, 4 * (size_t)B * T * H);
        t_check(ok && !memcmp(back, dx, 4 * (size_t)B * T * H), "cuda gather_rows_back = _ref, bit for bit");
        free(dx), free(rc), free(rp), free(gc), free(gpos), free(gy), free(back);
    }
    /* CLIP's loss, AdamW, sum of squares */
    {
        int Nn = 67;
        size_t n = (size_t)Nn * Nn;
        float *L = frand(n, -8, 8), *r = fmalloc(n), *g = fmalloc(n);
        double ro[2], go[2];
        mrec_clip_loss_ref(r, ro, L, Nn);
        float *g_ = up(NULL, 4 * n);
        double *o_ = up(NULL, 16), *w_ = up(NULL, 24 * (size_t)Nn);
        int ok = !mrec_clip_loss_cuda(g_, o_, up(L, 4 * n), Nn, w_, cu) && down(g, g_, 4 * n) && down(go, o_, 16);
        if (t_check(ok, "cuda clip_loss ran: %s", mrec_error_detail())) {
            t_allclose("cuda clip_loss dlogits", r, g, n, 1e-7, 1e-6);
            /* the d scale to 1e-8: the reference rounds a row's term to float before adding its column's, the GPU (as
             * the CPU op) adds them in double (2e-9 apart here, up to 3e-9 over other draws) */
            t_check(fabs(go[0] - ro[0]) <= 1e-12 * (1 + ro[0]) && fabs(go[1] - ro[1]) <= 1e-8 * (1 + fabs(ro[1])),
                    "cuda clip_loss %.15g, d scale %.15g; ref %.15g, %.15g", go[0], go[1], ro[0], ro[1]);
        }
        free(L), free(r), free(g);
        int64_t m = 10007;
        float *p = frand(m, -1, 1), *gr = frand(m, -1, 1), *pm = fmalloc(m), *pv = fmalloc(m), *pc = fmalloc(m), *mc = fmalloc(m),
              *vc = fmalloc(m), *out = fmalloc(m);
        memset(pm, 0, 4 * m), memset(pv, 0, 4 * m), memcpy(pc, p, 4 * m), memset(mc, 0, 4 * m), memset(vc, 0, 4 * m);
        float *p_ = up(p, 4 * m), *m_ = up(pm, 4 * m), *v_ = up(pv, 4 * m), *gr_ = up(gr, 4 * m);
        ok = 1;
        for (int s = 1; s <= 3; s++) {
            mrec_adamw_cpu(pc, mc, vc, gr, 0.01, 0.9, 0.98, 1e-6, 0.2, s, m, ctx->pool);
            ok = ok && !mrec_adamw_cuda(p_, m_, v_, gr_, 0.01, 0.9, 0.98, 1e-6, 0.2, s, m, cu);
        }
        ok = ok && down(out, p_, 4 * m);
        /* the same float operations, uncontracted */
        t_check(ok && !memcmp(pc, out, 4 * m), "cuda adamw = adamw_cpu, bit for bit: %s", ok ? "" : mrec_error_detail());
        double zero = 0.25, sq_r = 0.25, sq_g;
        double *s_ = up(&zero, 8);
        mrec_sum_squares_ref(&sq_r, gr, m);
        ok = !mrec_sum_squares_cuda(s_, gr_, m, cu) && down(&sq_g, s_, 8);
        t_check(ok && fabs(sq_g - sq_r) <= 1e-12 * sq_r, "cuda sum_squares %.17g, ref %.17g", sq_g, sq_r);
        free(p), free(gr), free(pm), free(pv), free(pc), free(mc), free(vc), free(out);
    }
    /* the small device buffers above are left to the process exit: a test, not a long-lived caller */
    mrec_cuda_destroy(cu);
}

int main(void) {
    t_suite("backward");
    mrec_context_options o = mrec_context_defaults();
    o.device = MREC_WANT_CPU;
    o.n_threads = 2;
    T_REQUIRE(mrec_context_create(&ctx, &o) == MREC_OK);
    test_linear();
    test_layernorm();
    test_activations();
    test_softmax();
    test_attention();
    test_scatters();
    test_clip_loss();
    test_optimizer();
    test_golden_block();
    test_golden_loss();
    test_golden_optimizer();
    test_cuda(); /* its AdamW reference runs on ctx's pool */
    mrec_context_destroy(ctx);
    return t_finish();
}
